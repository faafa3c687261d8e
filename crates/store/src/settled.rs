//! Charges kept per (portfolio, business-local month).
//!
//! Charges are a pure function of the events, but not of one event: a
//! late status, a window opened before the month, the portfolio's monthly
//! tier counter all reach across contacts and days. So charges are kept
//! per (portfolio, month) and *settled* — recomputed by the engine from
//! the events that month depends on ([`wameter_core::settlement`]) and
//! replaced as a whole. A write of new events records which months they
//! left unsettled, in the same transaction; a settler lists those marks,
//! settles their months and deletes exactly the marks it listed. A mark
//! written meanwhile survives and its month is settled again, so kept
//! charges are never older than the marks say.
//!
//! The store does the bookkeeping; the computation is the caller's (the
//! meter, `wameter-meter`), given to [`crate::Store::settle`] as a closure.
//!
//! "Replaced as a whole" is what a reader sees; what is written is only the
//! difference ([`changes`]). A round typically re-prices a month of which
//! a handful of charges are new: rewriting all of them made every round
//! write the whole month, and every other write (a webhook, a guarded
//! send's record) wait behind that transaction.

use std::collections::HashMap;
use std::hash::Hash;

use jiff::Timestamp;
use wameter_core::settlement::{Month, months_touched};
pub use wameter_meter::records::{ChargeFacts, ChargeRow, KeptFacts, Settled, WarningRow};

/// A month some new event may have changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsettledMark {
    /// Row id (the settler deletes by id).
    pub id: i64,
    /// Business phone number id (`''`: the event named none).
    pub business: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The lowest event id the write that left it stored (`0`: from the
    /// first event; see the `V7` migration).
    pub first_event_id: i64,
}

/// One (portfolio, month) to settle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleJob {
    /// The portfolio whose monthly counters the charges share.
    pub portfolio: String,
    /// `YYYY-MM`, business-local.
    pub month: String,
    /// The portfolio's business phone numbers: whose events are read.
    pub businesses: Vec<String>,
    /// Events from (UNIX microseconds, inclusive).
    pub since_us: i64,
    /// Events until (exclusive).
    pub until_us: i64,
    /// The marks this settles: deleted in the same transaction.
    pub marks: Vec<i64>,
    /// `Some(id)`: an incremental round. The caller kept the month's engine
    /// state from an earlier round, so only the events from this id on are
    /// read (with the other halves of their messages, as always), the kept
    /// charges are not, and [`Settled`] says what changed rather than
    /// everything. `None`: the month is settled whole.
    pub from_event_id: Option<i64>,
}

/// The `charges` table's typed columns, in [`ChargeFacts`]'s field order
/// (both backends read them in this order).
pub(crate) const FACT_COLUMNS: &str = "kind, messaging_account, user_id, local_date, pricing_model, category, pricing_type, direction, billable, market, currency, amount, quantity, tier, ruleset, rule, template, opens_conversation, delivered_nanos";

/// The columns [`wameter_meter::sums::FactsRef`] reads, in its order
/// (`charge_sums`).
pub(crate) const SUM_COLUMNS: &str = "business, delivered_at_us, message_id, kind, messaging_account, local_date, pricing_model, category, pricing_type, direction, billable, market, currency, amount, quantity, delivered_nanos";

/// The rows to delete and add to turn what is kept into what is wanted.
#[derive(Debug, PartialEq, Eq)]
pub struct Changes<K> {
    /// Keys (row ids) of kept rows no longer wanted.
    pub remove: Vec<K>,
    /// Indices into the wanted rows of those not kept yet, in order.
    pub add: Vec<usize>,
}

impl<K> Changes<K> {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

/// Compares kept rows (each with the key that deletes it) with the wanted
/// ones as multisets: equal rows stay, the rest are removed or added.
/// Applying the result to `kept` gives `wanted` (as a multiset; order is a
/// query's business, not the table's).
pub fn changes<K, T: Eq + Hash>(
    kept: impl IntoIterator<Item = (K, T)>,
    wanted: &[T],
) -> Changes<K> {
    // How many of each wanted row are still missing.
    let mut missing: HashMap<&T, usize> = HashMap::with_capacity(wanted.len());
    for row in wanted {
        *missing.entry(row).or_default() += 1;
    }
    let mut remove = Vec::new();
    for (key, row) in kept {
        match missing.get_mut(&row) {
            Some(count) if *count > 0 => *count -= 1,
            _ => remove.push(key),
        }
    }
    let mut add = Vec::new();
    for (index, row) in wanted.iter().enumerate() {
        if let Some(count) = missing.get_mut(row).filter(|count| **count > 0) {
            *count -= 1;
            add.push(index);
        }
    }
    Changes { remove, add }
}

/// Which kept charges a query wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeSlice {
    /// `None`: every business.
    pub businesses: Option<Vec<String>>,
    /// Delivered from (UNIX microseconds, inclusive).
    pub from_us: i64,
    /// Delivered until (exclusive).
    pub to_us: i64,
    /// The months whose warnings to return (`YYYY-MM`, inclusive; `None`:
    /// all).
    pub months: Option<(String, String)>,
}

/// How a store finds a [`ChargeSlice`]'s charges: each shape is its own
/// statement, so that its plan fits it. One statement for all three
/// (`business list is NULL OR business in it`) was planned as a scan of
/// every kept charge: SQLite plans a statement once, whatever is bound
/// (stable plans, `sqlite.rs`), and a plan that must also serve "every
/// business" cannot start from the business index. A day's charges then
/// read all the months kept (docs/PERFORMANCE.md, session 52).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SliceShape {
    /// Some businesses: their part of the delivery index
    /// (`charges_by_delivery`, business then instant).
    Businesses,
    /// Every business, a span of deliveries: the delivery instant index
    /// (`charges_by_delivered_at`).
    Span,
    /// Every business, every delivery: the table in storage order (walking
    /// an index would add a lookup per row).
    Everything,
}

impl ChargeSlice {
    pub(crate) fn shape(&self) -> SliceShape {
        match &self.businesses {
            Some(_) => SliceShape::Businesses,
            None if self.from_us == i64::MIN && self.to_us == i64::MAX => SliceShape::Everything,
            None => SliceShape::Span,
        }
    }
}

/// The months to mark unsettled for events stored between two instants
/// (UNIX microseconds): when the kept charges were settled with other
/// accounts or rate cards, everything is settled again.
pub fn months_spanned(first_us: i64, last_us: i64) -> Vec<String> {
    let instant = |us: i64| Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH);
    let (Some(&first), Some(&last)) = (
        months_touched(instant(first_us)).first(),
        months_touched(instant(last_us)).last(),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut month: Month = first;
    while month <= last {
        out.push(month.to_string());
        month = month.next();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_differences_are_written() {
        let kept = [(10, "a"), (11, "b"), (12, "c"), (13, "c")];
        let wanted = ["a", "c", "d", "b2"];
        assert_eq!(
            changes(kept, &wanted),
            Changes {
                remove: vec![11, 13],
                add: vec![2, 3]
            }
        );
        assert!(changes([(1, "x")], &["x"]).is_empty());
        assert_eq!(
            changes([(1, "x")], &[] as &[&str]),
            Changes {
                remove: vec![1],
                add: vec![]
            }
        );
        assert_eq!(
            changes(Vec::<(i64, &str)>::new(), &["x", "x"]),
            Changes {
                remove: vec![],
                add: vec![0, 1]
            }
        );
    }

    proptest! {
        /// Kept rows, minus those removed, plus those added, are the wanted
        /// rows; and nothing equal to a wanted row is both removed and added.
        #[test]
        fn applying_changes_gives_the_wanted_rows(kept in prop::collection::vec(0u8..6, 0..30), wanted in prop::collection::vec(0u8..6, 0..30)) {
            let keyed: Vec<(usize, u8)> = kept.iter().copied().enumerate().collect();
            let diff = changes(keyed.clone(), &wanted);
            let mut result: Vec<u8> = keyed.iter().filter(|(key, _)| !diff.remove.contains(key)).map(|(_, row)| *row).collect();
            result.extend(diff.add.iter().map(|&index| wanted[index]));
            result.sort_unstable();
            let mut expected = wanted.clone();
            expected.sort_unstable();
            prop_assert_eq!(result, expected);
            for &key in &diff.remove {
                let row = keyed[key].1;
                prop_assert!(!diff.add.iter().any(|&index| wanted[index] == row), "row {} both removed and added", row);
            }
        }
    }

    #[test]
    fn every_month_between_two_events_is_spanned() {
        let us = |text: &str| text.parse::<Timestamp>().unwrap().as_microsecond();
        assert_eq!(
            months_spanned(us("2025-06-15T00:00:00Z"), us("2025-08-30T00:00:00Z")),
            ["2025-06", "2025-07", "2025-08", "2025-09"]
        );
        assert_eq!(
            months_spanned(us("2025-06-15T00:00:00Z"), us("2025-06-15T00:00:00Z")),
            ["2025-06"]
        );
    }
}
