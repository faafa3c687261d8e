//! Windows: the customer service window, free entry points and CBP
//! conversations, as seen by one (business phone number, user) pair.
//!
//! All intervals are half-open, `[opened_at, closes_at)`: a message delivered
//! exactly 24 h after the user's last message is outside (decision D5).

use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};

/// Length of the customer service window and of every CBP conversation.
pub const DAY: SignedDuration = SignedDuration::from_hours(24);

/// Free entry points last 72 h from 2023-03-01 (BSP-reported date, decision
/// D6); 24 h before.
pub const FEP_72H_FROM: Date = date(2023, 3, 1);

/// From this business-local date, free entry points may stay open for up
/// to 7 days: reported by several readers of Meta's main pricing page
/// (and Wati) from 2026-09-28, while Meta's non-template page still says
/// 72 h. Applied only with `free_entry_point_7_days` (decision D12).
pub const FEP_7_DAYS_REPORTED_FROM: Date = date(2026, 9, 28);

/// Length of a free entry point window opened on a business-local date;
/// `seven_days`: the accounts file's `free_entry_point_7_days`.
pub fn free_entry_point_length(opened_on: Date, seven_days: bool) -> SignedDuration {
    if opened_on < FEP_72H_FROM {
        DAY
    } else if seven_days && opened_on >= FEP_7_DAYS_REPORTED_FROM {
        SignedDuration::from_hours(7 * 24)
    } else {
        SignedDuration::from_hours(72)
    }
}

/// A half-open time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Start (inclusive).
    pub opened_at: Timestamp,
    /// End (exclusive).
    pub closes_at: Timestamp,
}

impl Window {
    /// A window of `length` from `opened_at`.
    pub fn starting(opened_at: Timestamp, length: SignedDuration) -> Window {
        Window {
            opened_at,
            closes_at: opened_at + length,
        }
    }

    /// Whether `at` falls inside.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.opened_at <= at && at < self.closes_at
    }
}

/// CBP v2 conversation slots, one per category that can be open at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Slot {
    Marketing = 0,
    Utility = 1,
    Authentication = 2,
    Service = 3,
}

/// What the engine remembers about one (business phone number, user) pair.
///
/// Kept small on purpose (see `docs/PERFORMANCE.md`): conversation expiry is
/// derived from the opening instant, and conversation ids from the pair and
/// the opening instant.
#[derive(Clone, Debug, Default)]
pub(crate) struct ContactState {
    /// The user's last message or call.
    pub last_inbound_at: Option<Timestamp>,
    /// An entry-point inbound not yet answered (decision D6).
    pub pending_entry_point_at: Option<Timestamp>,
    /// The current or last free entry point window.
    pub free_entry_point: Option<Window>,
    /// Whether that window was opened under a conversation-based ruleset.
    pub free_entry_point_cbp: bool,
    /// CBP v1: the one open conversation (opening instant, user-initiated?).
    pub v1_conversation: Option<(Timestamp, bool)>,
    /// CBP v2: opening instant of the conversation of each category.
    pub v2_conversations: [Option<Timestamp>; 4],
}

impl ContactState {
    /// The customer service window open at `at`, if any.
    pub fn customer_service_window(&self, at: Timestamp) -> Option<Window> {
        self.last_inbound_at
            .map(|opened| Window::starting(opened, DAY))
            .filter(|w| w.contains(at))
    }

    /// The free entry point window open at `at`, if any.
    pub fn open_free_entry_point(&self, at: Timestamp) -> Option<Window> {
        self.free_entry_point.filter(|w| w.contains(at))
    }

    /// Records an inbound message or call.
    pub fn inbound(&mut self, at: Timestamp, entry_point: bool) {
        self.last_inbound_at = Some(self.last_inbound_at.map_or(at, |last| last.max(at)));
        // An entry point during an open free entry point neither extends it
        // nor starts a second one (decision D6).
        if entry_point && self.open_free_entry_point(at).is_none() {
            self.pending_entry_point_at = Some(at);
        }
    }

    /// Called for every delivered business message, before the era's rules:
    /// the first reply to an entry point opens a free entry point window if
    /// it is delivered within 24 h of the entry point. Returns true when this
    /// delivery opened it.
    pub fn answer_entry_point(
        &mut self,
        at: Timestamp,
        opened_on: Date,
        cbp: bool,
        seven_days: bool,
    ) -> bool {
        if self.open_free_entry_point(at).is_some() {
            return false;
        }
        let Some(entry_at) = self.pending_entry_point_at.take() else {
            return false;
        };
        if at < entry_at + DAY {
            self.free_entry_point = Some(Window::starting(
                at,
                free_entry_point_length(opened_on, seven_days),
            ));
            self.free_entry_point_cbp = cbp;
            true
        } else {
            false
        }
    }

    /// The CBP v2 conversation open in a slot at `at`, as its window.
    pub fn v2_open(&self, slot: Slot, at: Timestamp) -> Option<Window> {
        self.v2_conversations[slot as usize]
            .map(|opened| Window::starting(opened, DAY))
            .filter(|w| w.contains(at))
    }

    /// The CBP v1 conversation open at `at`.
    pub fn v1_open(&self, at: Timestamp) -> Option<(Window, bool)> {
        self.v1_conversation
            .map(|(opened, user_initiated)| (Window::starting(opened, DAY), user_initiated))
            .filter(|(w, _)| w.contains(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn customer_service_window_is_half_open_and_refreshed() {
        let mut state = ContactState::default();
        state.inbound(t("2025-07-01T10:00:00Z"), false);
        assert!(
            state
                .customer_service_window(t("2025-07-01T10:00:00Z"))
                .is_some()
        );
        assert!(
            state
                .customer_service_window(t("2025-07-02T09:59:59Z"))
                .is_some()
        );
        assert!(
            state
                .customer_service_window(t("2025-07-02T10:00:00Z"))
                .is_none(),
            "D5: t+24h is outside"
        );
        state.inbound(t("2025-07-02T09:00:00Z"), false);
        assert_eq!(
            state
                .customer_service_window(t("2025-07-02T10:00:00Z"))
                .unwrap()
                .closes_at,
            t("2025-07-03T09:00:00Z")
        );
    }

    #[test]
    fn entry_point_needs_a_reply_within_24_hours() {
        let mut state = ContactState::default();
        state.inbound(t("2025-07-01T10:00:00Z"), true);
        assert!(!state.answer_entry_point(
            t("2025-07-02T10:00:00Z"),
            date(2025, 7, 2),
            false,
            false
        ));
        assert!(state.free_entry_point.is_none());
        // The trigger was used up by that late reply.
        assert!(!state.answer_entry_point(
            t("2025-07-02T10:00:01Z"),
            date(2025, 7, 2),
            false,
            false
        ));
    }

    #[test]
    fn entry_point_window_starts_at_the_reply_and_is_not_extended() {
        let mut state = ContactState::default();
        state.inbound(t("2025-07-01T10:00:00Z"), true);
        assert!(state.answer_entry_point(
            t("2025-07-01T22:00:00Z"),
            date(2025, 7, 1),
            false,
            false
        ));
        let window = state.free_entry_point.unwrap();
        assert_eq!(window.closes_at, t("2025-07-04T22:00:00Z"));
        state.inbound(t("2025-07-02T10:00:00Z"), true);
        assert!(!state.answer_entry_point(
            t("2025-07-02T11:00:00Z"),
            date(2025, 7, 2),
            false,
            false
        ));
        assert_eq!(state.free_entry_point.unwrap(), window);
    }

    #[test]
    fn entry_point_windows_were_24_hours_before_march_2023() {
        assert_eq!(free_entry_point_length(date(2023, 2, 28), false), DAY);
        assert_eq!(
            free_entry_point_length(date(2023, 3, 1), false),
            SignedDuration::from_hours(72)
        );
        assert_eq!(
            free_entry_point_length(date(2026, 10, 5), false),
            SignedDuration::from_hours(72)
        );
        assert_eq!(
            free_entry_point_length(date(2026, 9, 27), true),
            SignedDuration::from_hours(72)
        );
        assert_eq!(
            free_entry_point_length(date(2026, 9, 28), true),
            SignedDuration::from_hours(168)
        );
    }
}

#[cfg(test)]
mod size {
    /// The per-pair state must stay small: 10 M contacts should fit in a few
    /// GiB (issue target: ≤ 256 bytes per tracked pair).
    #[test]
    fn contact_state_fits_in_256_bytes() {
        let size = std::mem::size_of::<super::ContactState>();
        eprintln!("ContactState: {size} bytes");
        assert!(size <= 256, "ContactState is {size} bytes");
    }
}
