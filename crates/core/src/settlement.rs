//! Which events a month's charges depend on, and which months an event can
//! change: the contract between the engine and anything that keeps charges
//! per month (the server's materialised `charges` table).
//!
//! A month's charges depend on more than the month's events: a window
//! opened just before the month starts can make a reply in it free, and
//! the business's time zone moves the month's edges by up to 14 hours
//! either way. So a month is settled from the events of a wider span,
//! [`settle_span`], and an event marks as unsettled every month whose span
//! contains it, [`months_touched`]. The two are defined by the same
//! arithmetic so they cannot disagree (a unit test checks it instant by
//! instant across month edges).
//!
//! Months here are UTC calendar months widened by a day on each side, which
//! covers every business time zone; the charges kept for a month are those
//! whose business-local delivery date falls in it.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// How far before an instant events can still decide its charges: the
/// longest window that reaches into it (a free entry point, 72 h, opened by
/// a reply sent up to 24 h after the ad click) plus a margin.
pub const LOOK_BACK: SignedDuration = SignedDuration::from_hours(5 * 24);

/// How far a business's local month edge lies from the UTC one at most
/// (UTC−12 to UTC+14), rounded up to a day.
const ZONE_MARGIN: SignedDuration = SignedDuration::from_hours(24);

/// A calendar month, written `YYYY-MM` (as the `month` of reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(Date);

impl Month {
    /// The month of a date.
    pub fn of(date: Date) -> Month {
        Month(date.first_of_month())
    }

    /// The UTC month of an instant.
    pub fn of_instant(at: Timestamp) -> Month {
        Month::of(TimeZone::UTC.to_datetime(at).date())
    }

    /// Reads `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        Date::new(year.parse().ok()?, month.parse().ok()?, 1)
            .ok()
            .map(Month)
    }

    /// The next month.
    pub fn next(self) -> Month {
        Month(self.0.saturating_add(1.month()))
    }

    /// The month before.
    pub fn previous(self) -> Month {
        Month(self.0.saturating_sub(1.month()))
    }

    /// Its first day.
    pub fn first_day(self) -> Date {
        self.0
    }

    /// Its first instant in UTC.
    pub fn start_utc(self) -> Timestamp {
        TimeZone::UTC
            .to_timestamp(self.0.to_datetime(Time::midnight()))
            .unwrap_or(Timestamp::MIN)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.0.year(), self.0.month())
    }
}

/// The events a month's charges are computed from: those at instants in
/// `[since, until)` (plus, as for any slice, the other half of a message
/// that straddles an edge). `since` lies [`LOOK_BACK`] and a day before the
/// UTC month starts, so monthly counters start from zero where they should
/// and every window reaching into the month is seen; `until` a day after
/// it ends, so a business east or west of UTC has its whole local month.
pub fn settle_span(month: Month) -> (Timestamp, Timestamp) {
    let since = month
        .start_utc()
        .checked_sub(ZONE_MARGIN)
        .and_then(|t| t.checked_sub(LOOK_BACK))
        .unwrap_or(Timestamp::MIN);
    let until = month
        .next()
        .start_utc()
        .checked_add(ZONE_MARGIN)
        .unwrap_or(Timestamp::MAX);
    (since, until)
}

/// The months whose [`settle_span`] contains `at`: the months whose
/// charges an event at `at` can change. One or two months.
pub fn months_touched(at: Timestamp) -> Vec<Month> {
    // `at` is in month M's span iff start(M) − margin − look-back ≤ at <
    // start(M+1) + margin, i.e. M runs from the month of (at − margin) to
    // the month of (at + margin + look-back).
    let first = Month::of_instant(at.checked_sub(ZONE_MARGIN).unwrap_or(at));
    let last = Month::of_instant(
        at.checked_add(ZONE_MARGIN)
            .and_then(|t| t.checked_add(LOOK_BACK))
            .unwrap_or(at),
    );
    let mut months = vec![first];
    while *months.last().unwrap_or(&last) < last {
        let next = months[months.len() - 1].next();
        months.push(next);
    }
    months
}

/// The months a slice `[from, to)` of deliveries (business-local months,
/// so widened by a day each side) can fall in, as an inclusive range.
pub fn months_of_slice(from: Timestamp, to: Timestamp) -> (Month, Month) {
    (
        Month::of_instant(from.checked_sub(ZONE_MARGIN).unwrap_or(from)),
        Month::of_instant(to.checked_add(ZONE_MARGIN).unwrap_or(to)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn months_read_and_print_as_reports_do() {
        let month = Month::parse("2025-07").unwrap();
        assert_eq!(month.to_string(), "2025-07");
        assert_eq!(month.next().to_string(), "2025-08");
        assert_eq!(
            Month::parse("2025-12").unwrap().next().to_string(),
            "2026-01"
        );
        assert_eq!(month.start_utc(), at("2025-07-01T00:00:00Z"));
        for bad in ["2025-7", "25-07", "2025-13", "2025/07", ""] {
            assert_eq!(Month::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_month_is_settled_from_look_back_before_to_a_day_after() {
        let (since, until) = settle_span(Month::parse("2025-07").unwrap());
        assert_eq!(since, at("2025-06-25T00:00:00Z"));
        assert_eq!(until, at("2025-08-02T00:00:00Z"));
    }

    #[test]
    fn an_event_touches_exactly_the_months_whose_span_holds_it() {
        // Every hour across two month edges: the months an event marks are
        // exactly those that would read it when settled.
        let months: Vec<Month> = ["2025-05", "2025-06", "2025-07", "2025-08", "2025-09"]
            .iter()
            .map(|m| Month::parse(m).unwrap())
            .collect();
        let mut instant = at("2025-06-20T00:30:00Z");
        while instant < at("2025-08-05T00:00:00Z") {
            let touched = months_touched(instant);
            for month in &months {
                let (since, until) = settle_span(*month);
                let reads = since <= instant && instant < until;
                assert_eq!(touched.contains(month), reads, "{instant} and {month}");
            }
            instant = instant.checked_add(SignedDuration::from_mins(61)).unwrap();
        }
        assert_eq!(
            months_touched(at("2025-07-15T12:00:00Z")),
            vec![Month::parse("2025-07").unwrap()]
        );
        assert_eq!(
            months_touched(at("2025-07-28T12:00:00Z")).len(),
            2,
            "late in the month reaches into the next"
        );
    }

    #[test]
    fn a_slice_covers_the_local_months_around_it() {
        let (first, last) = months_of_slice(at("2025-07-01T00:00:00Z"), at("2025-08-01T00:00:00Z"));
        assert_eq!(
            (first.to_string(), last.to_string()),
            ("2025-06".into(), "2025-08".into())
        );
    }
}
