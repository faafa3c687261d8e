//! Calling API charges through the engine (docs/rules.md §14; sources:
//! `data/calling/NOTES.md` and those of rules §14): calls open
//! the customer service window, are priced per portfolio × market ×
//! business-local month, and do not depend on the order or the copies of
//! the events.

use proptest::prelude::*;
use wameter_core::engine::Report;
use wameter_core::event::{CallDirection, Event, Origin};

use super::incremental::{BASES, build, shuffle, step, world};
use super::support::*;

const KENYA: &str = "+254700000001";

/// NOTES §4, PRC: "the customer service window starts or refreshes when a
/// user calls the business regardless of if you accept the call or not".
#[test]
fn a_users_unanswered_call_opens_the_window_for_a_free_reply() {
    let mut log = Log::default();
    log.call(
        "wacid.u",
        t("2026-08-03T10:00:00Z"),
        KENYA,
        CallDirection::UserInitiated,
        0,
    )
    .send("w1", t("2026-08-03T11:00:00Z"), KENYA, None);
    let report = World::builtin().replay(&log);
    assert_eq!(
        charge(&report, "w1").rule,
        "free-form-free",
        "{}",
        charge(&report, "w1").reason
    );
    assert_eq!(report.calls[0].rule, "user-initiated-free");
}

/// NOTES §4: a business call the user accepts opens the window; one never
/// picked up does not.
#[test]
fn only_an_accepted_business_call_opens_the_window() {
    let mut accepted = Log::default();
    accepted
        .call(
            "wacid.b",
            t("2026-08-03T10:00:00Z"),
            KENYA,
            CallDirection::BusinessInitiated,
            30,
        )
        .send("w1", t("2026-08-03T11:00:00Z"), KENYA, None);
    let report = World::builtin().replay(&accepted);
    assert_eq!(charge(&report, "w1").rule, "free-form-free");
    assert_eq!(
        report.calls[0].amount,
        dec("0.0051500"),
        "5 pulses × 0.0103 / 10"
    );

    let mut missed = Log::default();
    missed
        .call(
            "wacid.b",
            t("2026-08-03T10:00:00Z"),
            KENYA,
            CallDirection::BusinessInitiated,
            0,
        )
        .send("w1", t("2026-08-03T11:00:00Z"), KENYA, None);
    let report = World::builtin().replay(&missed);
    assert!(
        charge(&report, "w1")
            .reason
            .contains("no customer service window was open"),
        "{}",
        charge(&report, "w1").reason
    );
    assert!(!report.calls[0].billable);
}

/// PRC: bands accrue per portfolio and business-local month: two numbers
/// of one portfolio share them; the month turns at the business's midnight.
#[test]
fn minutes_accrue_per_portfolio_and_local_month() {
    let mut b1 = business(B, "Africa/Nairobi", "USD");
    b1.portfolio = "P".into();
    let mut world = World::with_businesses(vec![b1]);
    let bands = "effective,currency,market,minutes_from,minutes_to,rate_per_minute\n2026-08-01,USD,Rest of Africa,0,2,0.0100\n2026-08-01,USD,Rest of Africa,3,,0.0050\n";
    world.call_rates = world
        .call_rates
        .with(wameter_core::ratecard::calling::CallRateBook::parse_csv("c.csv", bands).unwrap());
    let mut log = Log::default();
    // 2 minutes in August (Nairobi), then 1 more crossing into band 2 on
    // 31 August 21:30 UTC — already 1 September in Nairobi: a new month.
    log.call(
        "a",
        t("2026-08-31T10:00:00Z"),
        KENYA,
        CallDirection::BusinessInitiated,
        120,
    )
    .call(
        "b",
        t("2026-08-31T20:30:00Z"),
        KENYA,
        CallDirection::BusinessInitiated,
        60,
    )
    .call(
        "c",
        t("2026-08-31T21:30:00Z"),
        KENYA,
        CallDirection::BusinessInitiated,
        60,
    );
    let report = world.replay(&log);
    let tiers: Vec<(&str, Option<&str>, String)> = report
        .calls
        .iter()
        .map(|c| {
            (
                &*c.call_id,
                c.tier.as_deref(),
                c.amount.normalize().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tiers,
        [
            ("a", Some("0:2"), "0.02".to_string()),
            ("b", Some("3:MAX"), "0.005".to_string()),
            ("c", Some("0:2"), "0.01".to_string())
        ]
    );
}

/// A log priced in two parts, the second carrying the first's counters
/// (`Report::counters` → `Engine::month_to_date`), bands its calls as the
/// whole log does: the minutes of the month so far count.
#[test]
fn a_second_part_of_a_log_counts_on_from_the_first_parts_minutes() {
    let mut b1 = business(B, "Africa/Nairobi", "USD");
    b1.portfolio = "P".into();
    let mut world = World::with_businesses(vec![b1]);
    let bands = "effective,currency,market,minutes_from,minutes_to,rate_per_minute\n2026-08-01,USD,Rest of Africa,0,2,0.0100\n2026-08-01,USD,Rest of Africa,3,,0.0050\n";
    world.call_rates = world
        .call_rates
        .with(wameter_core::ratecard::calling::CallRateBook::parse_csv("c.csv", bands).unwrap());
    let mut log = Log::default();
    log.call(
        "a",
        t("2026-08-10T10:00:00Z"),
        KENYA,
        CallDirection::BusinessInitiated,
        120,
    )
    .call(
        "b",
        t("2026-08-11T10:00:00Z"),
        KENYA,
        CallDirection::BusinessInitiated,
        60,
    );
    let whole = world.replay(&log);
    let engine = world.engine();
    let first = engine.replay(log.events[..1].to_vec());
    assert_eq!(
        first
            .counters
            .call_units
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [20],
        "20 pulses reached"
    );
    let second = wameter_core::engine::Engine {
        month_to_date: Some(&first.counters),
        ..engine
    }
    .replay(log.events[1..].to_vec());
    assert_eq!(second.calls[0].tier.as_deref(), Some("3:MAX"));
    assert_eq!(second.calls[0].amount, whole.calls[1].amount);
    assert_eq!(second.counters.call_units, whole.counters.call_units);
}

/// The engine's call charges without where each was read.
fn calls(report: &Report) -> Vec<String> {
    report
        .calls
        .iter()
        .map(|c| {
            format!(
                "{:?}",
                wameter_core::rules::calling::CallCharge {
                    origin: Origin::default(),
                    ..c.clone()
                }
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Issue 23: the order and the copies of call events do not change
    /// call charges.
    #[test]
    fn call_order_and_duplicates_do_not_change_call_charges(steps in prop::collection::vec(step(), 1..60), base in 0..BASES.len(), seed in any::<u64>()) {
        let world = world(false);
        let engine = world.engine();
        let number = |mut events: Vec<Event>| {
            for (line, event) in events.iter_mut().enumerate() {
                event.origin = Origin { source: 0, line: line as u32 + 1 };
            }
            events
        };
        let events = number(build(BASES[base], &steps));
        let reference = engine.replay(events.clone());
        let mut shuffled = events.clone();
        shuffle(&mut shuffled, seed);
        let mut doubled = number(shuffled.clone());
        doubled.extend(shuffled.iter().cloned());
        // Call errors only: the messages' own order rules (a scoped id's
        // spelling comes from its pair's first event) are tested elsewhere.
        let call_errors = |report: &Report| -> Vec<(String, String)> {
            let mut errors: Vec<(String, String)> =
                report.errors.iter().filter(|e| e.message_id.starts_with('c')).map(|e| (e.message_id.to_string(), e.message.clone())).collect();
            // Listed in the order they were read.
            errors.sort();
            errors
        };
        for other in [engine.replay(number(shuffled)), engine.replay(doubled)] {
            prop_assert_eq!(calls(&other), calls(&reference));
            prop_assert_eq!(call_errors(&other), call_errors(&reference));
        }
    }
}
