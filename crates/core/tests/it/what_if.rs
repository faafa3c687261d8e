//! What-if re-pricing: a May 2025 (CBP) log priced as if per-message pricing
//! had applied, checked against sums worked out by hand.

use jiff::civil::date;
use wameter_core::engine::{Engine, WhatIf};
use wameter_core::market::MarketTable;
use wameter_core::ratecard::RateBook;
use wameter_core::ruleset::Ruleset;

use crate::support::*;

/// Three Indonesian users on 2025-05-12 (UTC):
/// - u1: two marketing templates an hour apart;
/// - u2: writes, gets a utility template inside the window;
/// - u3: writes, gets a free-form reply.
fn may_2025() -> Log {
    let mut log = Log::default();
    log.send("m1", t("2025-05-12T10:00:00Z"), "+6281100000001", Some(MKT))
        .send("m2", t("2025-05-12T11:00:00Z"), "+6281100000001", Some(MKT))
        .inbound(t("2025-05-12T09:00:00Z"), "+6281100000002")
        .send(
            "u1",
            t("2025-05-12T09:30:00Z"),
            "+6281100000002",
            Some(UTIL),
        )
        .inbound(t("2025-05-12T09:00:00Z"), "+6281100000003")
        .send("s1", t("2025-05-12T09:10:00Z"), "+6281100000003", None);
    log
}

fn world() -> World {
    // Meta's June-2023 USD rows (the only verbatim CBP rows we have) standing
    // in for the card in force in May 2025, plus the built-in cards.
    let cbp = card(&USD_CBP_2023.replace("June 1, 2023", "February 1, 2025"));
    let mut cards = RateBook::builtin().cards().to_vec();
    cards.push(cbp);
    World {
        rates: RateBook::new(cards),
        ..World::builtin()
    }
}

#[test]
fn may_2025_as_meta_priced_it_under_cbp() {
    let report = world().replay(&may_2025());
    // One marketing conversation (0.0411) covers m1 and m2; the utility
    // template opens a utility conversation (0.0200); the free-form reply
    // opens a service conversation, free since 2024-11-01.
    assert_eq!(
        verdict(&report, "m1"),
        (
            "marketing".into(),
            "regular".into(),
            "0.0411".into(),
            "template-opens-conversation".into()
        )
    );
    assert_eq!(verdict(&report, "m2").2, "0");
    assert_eq!(verdict(&report, "u1").2, "0.02");
    assert_eq!(verdict(&report, "s1").2, "0");
    assert_eq!(total(&report), dec("0.0611"));
}

#[test]
fn may_2025_as_if_per_message_pricing_applied() {
    let world = world();
    let mut engine = Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        MarketTable::builtin(),
    );
    engine.what_if = WhatIf {
        ruleset: Some(Ruleset::Pmp2025),
        rates_on: Some(date(2026, 1, 1)),
    };
    let report = engine.replay(may_2025().events);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // Each marketing template pays 0.0411 (2026-01 card); utility inside the
    // window and the free-form reply are free.
    assert_eq!(
        verdict(&report, "m1"),
        (
            "marketing".into(),
            "regular".into(),
            "0.0411".into(),
            "marketing-template".into()
        )
    );
    assert_eq!(verdict(&report, "m2").2, "0.0411");
    assert_eq!(
        verdict(&report, "u1"),
        (
            "utility".into(),
            "free_customer_service".into(),
            "0".into(),
            "utility-inside-csw".into()
        )
    );
    assert_eq!(verdict(&report, "s1").1, "free_customer_service");
    assert_eq!(total(&report), dec("0.0822"));
    assert!(report.charges.iter().all(|c| c.ruleset == Ruleset::Pmp2025));

    // Without `rates_on`, no USD per-message card covers May 2025: an error
    // naming what is missing, never a guess.
    engine.what_if.rates_on = None;
    let report = engine.replay(may_2025().events);
    assert_eq!(report.errors.len(), 2);
    assert!(
        report.errors[0]
            .message
            .contains("no PMP rate card in USD covers 2025-05-12"),
        "{}",
        report.errors[0].message
    );
}
