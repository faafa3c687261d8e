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
//! server's meter), given to [`crate::Store::settle`] as a closure.

use jiff::Timestamp;
use wameter_core::settlement::{Month, months_touched};

/// A month some new event may have changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsettledMark {
    /// Row id (the settler deletes by id).
    pub id: i64,
    /// Business phone number id (`''`: the event named none).
    pub business: String,
    /// `YYYY-MM`.
    pub month: String,
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
}

/// One charge as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRow {
    /// Business phone number id.
    pub business: String,
    /// Delivery instant, UNIX microseconds (range queries only).
    pub delivered_at_us: i64,
    /// The message's wamid.
    pub message_id: String,
    /// The charge as the `replay --json` document prints it.
    pub line: String,
}

/// A warning the engine gave while settling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarningRow {
    /// Business of the event warned about (`None`: none or unknown).
    pub business: Option<String>,
    /// The stored event warned about.
    pub event_id: Option<i64>,
    /// Stable code.
    pub code: String,
    /// The sentence.
    pub message: String,
    /// Messages a counting warning covers (1 otherwise).
    pub count: i64,
}

/// What a settle computed for its (portfolio, month).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// The month's charges of the portfolio's businesses.
    pub charges: Vec<ChargeRow>,
    /// The warnings.
    pub warnings: Vec<WarningRow>,
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

/// The months to mark unsettled for events stored between two instants
/// (UNIX microseconds): when the kept charges were settled with other
/// accounts or rate cards, everything is settled again.
pub fn months_spanned(first_us: i64, last_us: i64) -> Vec<String> {
    let instant = |us: i64| Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH);
    let (Some(&first), Some(&last)) = (months_touched(instant(first_us)).first(), months_touched(instant(last_us)).last()) else {
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

    #[test]
    fn every_month_between_two_events_is_spanned() {
        let us = |text: &str| text.parse::<Timestamp>().unwrap().as_microsecond();
        assert_eq!(months_spanned(us("2025-06-15T00:00:00Z"), us("2025-08-30T00:00:00Z")), ["2025-06", "2025-07", "2025-08", "2025-09"]);
        assert_eq!(months_spanned(us("2025-06-15T00:00:00Z"), us("2025-06-15T00:00:00Z")), ["2025-06"]);
    }
}
