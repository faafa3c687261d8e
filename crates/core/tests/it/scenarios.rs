//! Meta's worked scenarios (docs/rules.md §13, W1–W12) and the engine's
//! decisions (docs/rules.md D1–D14), each with its source. Amounts are
//! computed by hand from the cards named in each test.

use wameter_core::category::PricingModel;
use wameter_core::event::DeliveryStatus;
use wameter_core::ratecard::{RateBook, TierBook};

use super::support::*;

const ID_USER: &str = "+6281234567890"; // Indonesia
const BR_USER: &str = "+5511999990000"; // Brazil
const IN_USER: &str = "+919876543210"; // India

fn cbp_2023_world() -> World {
    World {
        rates: RateBook::new(vec![card(USD_CBP_2023)]),
        ..World::builtin()
    }
}

/// W1 — CBP v2, categories don't merge [M-CBP]. Indonesia, June-2023 USD card.
#[test]
fn w1_cbp_categories_do_not_merge() {
    let base = "2023-07-10T00:00:00Z";
    let mut log = Log::default();
    log.send("m1", h(base, 0), ID_USER, Some(MKT))
        .send("u1", h(base, 4), ID_USER, Some(UTIL))
        .send("u2", h(base, 10), ID_USER, Some(UTIL));
    let report = cbp_2023_world().replay(&log);
    assert_eq!(
        verdict(&report, "m1"),
        (
            "marketing".into(),
            "regular".into(),
            "0.0411".into(),
            "template-opens-conversation".into()
        )
    );
    assert_eq!(
        verdict(&report, "u1"),
        (
            "utility".into(),
            "regular".into(),
            "0.02".into(),
            "template-opens-conversation".into()
        )
    );
    assert_eq!(
        verdict(&report, "u2"),
        (
            "utility".into(),
            "regular".into(),
            "0".into(),
            "template-inside-same-category-conversation".into()
        )
    );
    assert_eq!(
        charge(&report, "u2").conversation_id,
        charge(&report, "u1").conversation_id
    );
    assert_eq!(total(&report), dec("0.0611"));
    assert_eq!(
        report
            .charges
            .iter()
            .filter(|c| c.opens_conversation)
            .count(),
        2
    );
}

/// W2 — CBP v2, a service conversation opens only when nothing is open [M-CBP].
#[test]
fn w2_service_conversation_only_when_nothing_is_open() {
    let base = "2023-07-10T00:00:00Z";
    let mut log = Log::default();
    log.send("m1", h(base, 0), ID_USER, Some(MKT))
        .inbound(h(base, 4), ID_USER)
        .send("f1", h(base, 5), ID_USER, None)
        .send("f2", h(base, 25), ID_USER, None)
        .send("f3", h(base, 26), ID_USER, None);
    let report = cbp_2023_world().replay(&log);
    let f1 = charge(&report, "f1");
    assert_eq!(
        (
            f1.category.as_str(),
            f1.opens_conversation,
            &f1.conversation_id
        ),
        ("marketing", false, &charge(&report, "m1").conversation_id)
    );
    // h25: the marketing conversation expired at h24: a service conversation
    // opens; it is the first of the month, so it uses the free tier (D7).
    assert_eq!(
        verdict(&report, "f2"),
        (
            "service".into(),
            "free_tier".into(),
            "0".into(),
            "service-conversation-opened".into()
        )
    );
    assert!(
        charge(&report, "f2").billable,
        "Meta: free-tier conversations are billable"
    );
    assert_eq!(
        verdict(&report, "f3"),
        (
            "service".into(),
            "free_tier".into(),
            "0".into(),
            "free-form-inside-open-conversation".into()
        )
    );
    assert_eq!(
        report
            .charges
            .iter()
            .filter(|c| c.opens_conversation)
            .count(),
        2
    );
    assert_eq!(total(&report), dec("0.0411"));
}

/// D7 — the first 1,000 service conversations per WABA per month are free,
/// in opening order; the 1,001st is charged; the count resets monthly.
#[test]
fn d7_free_tier_is_1000_service_conversations_per_waba_per_month() {
    let mut log = Log::default();
    for i in 0..1_001 {
        let user = format!("+62812{i:07}");
        let at = t("2023-07-10T00:00:00Z") + jiff::SignedDuration::from_secs(i * 2);
        log.inbound(at, &user).send(
            &format!("s{i}"),
            at + jiff::SignedDuration::from_secs(1),
            &user,
            None,
        );
    }
    log.send("m1", t("2023-07-20T00:00:00Z"), ID_USER, Some(MKT));
    log.inbound(t("2023-08-01T00:00:00Z"), ID_USER).send(
        "aug",
        t("2023-08-01T00:00:01Z"),
        ID_USER,
        None,
    );
    let report = cbp_2023_world().replay(&log);
    assert_eq!(verdict(&report, "s999").1, "free_tier");
    assert_eq!(
        verdict(&report, "s1000"),
        (
            "service".into(),
            "regular".into(),
            "0.019".into(),
            "service-conversation-opened".into()
        )
    );
    assert_eq!(
        verdict(&report, "m1").1,
        "regular",
        "marketing never uses the free tier"
    );
    assert_eq!(
        verdict(&report, "aug").1,
        "free_tier",
        "a new month starts a new free tier"
    );
    assert_eq!(total(&report), dec("0.0190") + dec("0.0411"));
}

/// W3 — CBP v2 free entry point timing [M-CBP]: ad at 10:00, template reply
/// at 22:00 opens a 72 h free entry point conversation; nothing is charged.
#[test]
fn w3_free_entry_point_makes_everything_free_for_72_hours() {
    let mut log = Log::default();
    log.ad_click(t("2023-07-10T10:00:00Z"), ID_USER)
        .send("m1", t("2023-07-10T22:00:00Z"), ID_USER, Some(MKT))
        .send("f1", t("2023-07-11T09:00:00Z"), ID_USER, None)
        .send("u1", t("2023-07-12T22:00:00Z"), ID_USER, Some(UTIL))
        .send("m2", t("2023-07-13T22:00:00Z"), ID_USER, Some(MKT));
    let report = cbp_2023_world().replay(&log);
    for id in ["m1", "f1", "u1"] {
        let c = charge(&report, id);
        assert_eq!(
            (c.category.as_str(), c.pricing_type.as_str(), c.billable),
            ("referral_conversion", "free_entry_point", false),
            "{id}"
        );
    }
    assert!(charge(&report, "m1").opens_conversation);
    assert_eq!(
        charge(&report, "u1")
            .trail
            .explained()
            .expect("explained")
            .free_entry_point
            .unwrap()
            .closes_at,
        t("2023-07-13T22:00:00Z")
    );
    // Exactly 72 h after the reply the window is closed (D5).
    assert_eq!(
        verdict(&report, "m2"),
        (
            "marketing".into(),
            "regular".into(),
            "0.0411".into(),
            "template-opens-conversation".into()
        )
    );
}

/// W4 — PMP, four messages, two charges [M-PMP]. Brazil, USD card of 2026-01-01.
#[test]
fn w4_pmp_four_messages_two_charges() {
    let base = "2026-02-02T00:00:00Z";
    let mut log = Log::default();
    log.send("m1", h(base, 0), BR_USER, Some(MKT))
        .inbound(h(base, 2), BR_USER)
        .send("f1", h(base, 3), BR_USER, None)
        .send("u1", h(base, 4), BR_USER, Some(UTIL))
        .send("u2", h(base, 30), BR_USER, Some(UTIL));
    let report = World::builtin().replay(&log);
    assert_eq!(
        verdict(&report, "m1"),
        (
            "marketing".into(),
            "regular".into(),
            "0.0625".into(),
            "marketing-template".into()
        )
    );
    assert_eq!(
        verdict(&report, "f1"),
        (
            "service".into(),
            "free_customer_service".into(),
            "0".into(),
            "free-form-free".into()
        )
    );
    assert_eq!(
        verdict(&report, "u1"),
        (
            "utility".into(),
            "free_customer_service".into(),
            "0".into(),
            "utility-inside-csw".into()
        )
    );
    assert_eq!(
        verdict(&report, "u2"),
        (
            "utility".into(),
            "regular".into(),
            "0.0068".into(),
            "utility-outside-csw".into()
        )
    );
    assert_eq!(
        charge(&report, "u1").reason,
        "utility template delivered inside the customer service window opened 2026-02-02T02:00:00Z"
    );
    assert_eq!(total(&report), dec("0.0693"));
    assert_eq!(report.charges.iter().filter(|c| c.billable).count(), 2);
    assert!(
        report
            .charges
            .iter()
            .all(|c| c.pricing_model == PricingModel::Pmp && c.ruleset.id() == "pmp-2025-07")
    );
}

fn eur_2022_world() -> World {
    World::with_businesses(vec![business(B, "UTC", "EUR")])
}

/// W5 — CBP v1 (2022), Meta's scenarios [S-KATA]. Brazil, EUR card of 2022.
#[test]
fn w5_cbp_2022_user_and_business_initiated() {
    let mut log = Log::default();
    // (b) user asks at 13:13, bot replies at once (UIC); next day 15:45 a
    // shipping template: BIC.
    log.inbound(t("2022-03-01T13:13:00Z"), BR_USER)
        .send("b1", t("2022-03-01T13:13:30Z"), BR_USER, None)
        .send("b2", t("2022-03-02T15:45:00Z"), BR_USER, Some(UTIL));
    // (c) two templates within 24 h: one BIC.
    let other = "+5521988887777";
    log.send("c1", t("2022-03-05T08:00:00Z"), other, Some(MKT))
        .send("c2", t("2022-03-05T13:00:00Z"), other, Some(UTIL));
    // (d) BIC; user replies within 24 h and the business answers: still one
    // BIC; user replies after 24 h and the business answers: + one UIC.
    let third = "+5531977776666";
    log.send("d1", t("2022-03-10T08:00:00Z"), third, Some(MKT))
        .inbound(t("2022-03-10T11:00:00Z"), third)
        .send("d2", t("2022-03-10T11:30:00Z"), third, None)
        .inbound(t("2022-03-11T14:00:00Z"), third)
        .send("d3", t("2022-03-11T14:30:00Z"), third, None);
    let report = eur_2022_world().replay(&log);
    let categories = |ids: &[&str]| {
        ids.iter()
            .map(|id| {
                (
                    charge(&report, id).category.as_str(),
                    charge(&report, id).opens_conversation,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        categories(&["b1", "b2"]),
        [("user_initiated", true), ("business_initiated", true)]
    );
    assert_eq!(
        categories(&["c1", "c2"]),
        [("business_initiated", true), ("business_initiated", false)]
    );
    assert_eq!(
        categories(&["d1", "d2", "d3"]),
        [
            ("business_initiated", true),
            ("business_initiated", false),
            ("user_initiated", true)
        ]
    );
    // All five conversations are inside the 1,000 free per month (D7).
    assert!(
        report
            .charges
            .iter()
            .all(|c| c.pricing_type.as_str() == "free_tier"
                && c.billable
                && c.currency.code() == "EUR")
    );
    assert!(
        report
            .charges
            .iter()
            .all(|c| c.ruleset.id() == "cbp-2022-02")
    );
}

/// Two messages delivered to one user at one instant: the lesser wamid
/// is first in the pair's timeline, whichever the log gave first, so it
/// is the one that opens the conversation.
#[test]
fn ties_of_one_instant_in_a_timeline_go_by_wamid() {
    for ids in [["wamid.a", "wamid.b"], ["wamid.b", "wamid.a"]] {
        let mut log = Log::default();
        for id in ids {
            log.send(id, t("2022-03-05T08:00:00Z"), BR_USER, Some(MKT));
        }
        let report = eur_2022_world().replay(&log);
        assert!(charge(&report, "wamid.a").opens_conversation, "{ids:?}");
        assert!(!charge(&report, "wamid.b").opens_conversation, "{ids:?}");
    }
}

/// D7 (2022) — the 1,001st conversation of any kind is charged.
#[test]
fn d7_cbp_2022_free_tier_counts_every_conversation() {
    let mut log = Log::default();
    for i in 0..1_001 {
        let user = format!("+55119{i:08}");
        log.send(
            &format!("t{i}"),
            t("2022-03-01T00:00:00Z") + jiff::SignedDuration::from_secs(i),
            &user,
            Some(MKT),
        );
    }
    let report = eur_2022_world().replay(&log);
    assert_eq!(verdict(&report, "t999").1, "free_tier");
    assert_eq!(
        verdict(&report, "t1000"),
        (
            "business_initiated".into(),
            "regular".into(),
            "0.0414".into(),
            "business-initiated-conversation-opened".into()
        )
    );
    assert_eq!(total(&report), dec("0.0414"));
}

/// W6 — CBP v2, a template inside a service conversation opens its own
/// conversation [M-CBP]; service is free from 2024-11-01 (D8).
#[test]
fn w6_template_inside_service_conversation() {
    let mut log = Log::default();
    log.inbound(t("2024-12-02T09:00:00Z"), ID_USER)
        .send("f1", t("2024-12-02T09:05:00Z"), ID_USER, None)
        .send("u1", t("2024-12-02T10:05:00Z"), ID_USER, Some(UTIL))
        .send("f2", t("2024-12-02T11:00:00Z"), ID_USER, None);
    let report = cbp_2023_world().replay(&log);
    assert_eq!(
        verdict(&report, "f1"),
        (
            "service".into(),
            "free_customer_service".into(),
            "0".into(),
            "service-conversation-opened-free".into()
        )
    );
    assert!(!charge(&report, "f1").billable);
    assert_eq!(
        verdict(&report, "u1"),
        (
            "utility".into(),
            "regular".into(),
            "0.02".into(),
            "template-opens-conversation".into()
        )
    );
    // f2 joins the earliest open conversation (service) and inherits "free".
    let f2 = charge(&report, "f2");
    assert_eq!(
        (f2.category.as_str(), f2.pricing_type.as_str(), f2.billable),
        ("service", "free_customer_service", false)
    );
    assert_eq!(total(&report), dec("0.02"));
}

fn tier_world(tiers: &str, businesses: Vec<wameter_core::account::Business>) -> World {
    let mut world = World::with_businesses(businesses);
    world.tiers = TierBook::new(TierBook::parse_simple_csv("tiers.csv", tiers).unwrap());
    world
}

/// W7 (1) — graduated volume tiers; only charged messages count [M-PMP].
/// Bands are illustrative (no real tier file is available).
#[test]
fn w7_volume_tiers_are_graduated_and_count_only_charged_messages() {
    let tiers = "effective,currency,market,category,from,to,rate\n2026-01-01,USD,India,utility,0,2,0.0014\n2026-01-01,USD,India,utility,3,,0.0010\n";
    let mut log = Log::default();
    log.send("u1", t("2026-02-03T00:00:00Z"), IN_USER, Some(UTIL))
        .send("u2", t("2026-02-04T00:00:00Z"), "+919811111111", Some(UTIL))
        .inbound(t("2026-02-05T00:00:00Z"), IN_USER)
        .send("free", t("2026-02-05T00:01:00Z"), IN_USER, Some(UTIL))
        .send("u3", t("2026-02-07T00:00:00Z"), "+919822222222", Some(UTIL))
        .send("u4", t("2026-02-08T00:00:00Z"), IN_USER, Some(UTIL))
        .send("m1", t("2026-02-09T00:00:00Z"), IN_USER, Some(MKT));
    let report = tier_world(tiers, vec![]).replay(&log);
    let tiers_of = |id| {
        (
            charge(&report, id).tier.clone(),
            wameter_core::money::format_amount(charge(&report, id).amount),
        )
    };
    assert_eq!(tiers_of("u1"), (Some("0:2".into()), "0.0014".into()));
    assert_eq!(tiers_of("u2"), (Some("0:2".into()), "0.0014".into()));
    assert_eq!(tiers_of("free"), (None, "0".into()));
    assert_eq!(tiers_of("u3"), (Some("3:MAX".into()), "0.001".into()));
    assert_eq!(tiers_of("u4"), (Some("3:MAX".into()), "0.001".into()));
    assert_eq!(
        tiers_of("m1"),
        (None, "0.0118".into()),
        "marketing has no tiers"
    );
}

/// W7 (2) — authentication and authentication-international share one
/// counter (D10): the tier reached applies to the auth-intl rate.
#[test]
fn w7_auth_international_continues_the_authentication_counter() {
    let tiers = "effective,currency,market,category,from,to,rate\n\
2026-01-01,USD,India,authentication,0,1,0.0014\n2026-01-01,USD,India,authentication,2,,0.0012\n\
2026-01-01,USD,India,authentication_international,0,1,0.028\n2026-01-01,USD,India,authentication_international,2,,0.025\n";
    let mut indonesian = business(B, "UTC", "USD");
    indonesian.primary_country = Some("ID".into());
    indonesian.auth_international_from = Some(t("2026-02-15T00:00:00Z"));
    let mut log = Log::default();
    log.send("a1", t("2026-02-10T00:00:00Z"), IN_USER, Some(AUTH))
        .send("a2", t("2026-02-16T00:00:00Z"), IN_USER, Some(AUTH));
    let report = tier_world(tiers, vec![indonesian]).replay(&log);
    assert_eq!(verdict(&report, "a1").0, "authentication");
    assert_eq!(
        (verdict(&report, "a2").0, verdict(&report, "a2").2),
        ("authentication_international".into(), "0.025".into())
    );
    assert_eq!(charge(&report, "a2").tier.as_deref(), Some("2:MAX"));
    assert_eq!(total(&report), dec("0.0264"));
}

/// W7 (3) — a portfolio whose WABAs are in different time zones accrues two
/// months in parallel around the month boundary [M-PMP Example 3].
#[test]
fn w7_months_follow_each_wabas_time_zone() {
    let tiers = "effective,currency,market,category,from,to,rate\n2026-01-01,USD,India,utility,0,1,0.0014\n2026-01-01,USD,India,utility,2,,0.0010\n";
    let mut a = business("A", "America/Los_Angeles", "USD");
    a.portfolio = "p".into();
    let mut b = business("B", "Asia/Kolkata", "USD");
    b.portfolio = "p".into();
    let mut log = Log::default();
    log.send_from("A", "a-feb", t("2026-02-20T00:00:00Z"), IN_USER, Some(UTIL))
        // 2026-03-01T05:00Z is still February in Los Angeles, March in Kolkata.
        .send_from(
            "A",
            "a-late-feb",
            t("2026-03-01T05:00:00Z"),
            "+919811111111",
            Some(UTIL),
        )
        .send_from(
            "B",
            "b-march",
            t("2026-03-01T05:00:00Z"),
            "+919822222222",
            Some(UTIL),
        );
    let report = tier_world(tiers, vec![a, b]).replay(&log);
    assert_eq!(
        charge(&report, "a-late-feb").tier.as_deref(),
        Some("2:MAX"),
        "second charged utility message of February"
    );
    assert_eq!(
        charge(&report, "b-march").tier.as_deref(),
        Some("0:1"),
        "first of March for the portfolio"
    );
    assert_eq!(
        total(&report),
        dec("0.0014") + dec("0.0010") + dec("0.0014")
    );
}

/// W10 — authentication-international (D9) [M-AUTHINTL]. USD card 2026-01-01:
/// Indonesia auth 0.025, India auth 0.0014, India auth-intl 0.028.
#[test]
fn w10_authentication_international_needs_eligibility_and_a_foreign_recipient() {
    let mut eligible = business(B, "UTC", "USD");
    eligible.primary_country = Some("ID".into());
    eligible.auth_international_from = Some(t("2026-02-10T00:00:00Z"));
    let mut log = Log::default();
    log.send("before", t("2026-02-09T00:00:00Z"), IN_USER, Some(AUTH))
        .send("domestic", t("2026-02-11T00:00:00Z"), ID_USER, Some(AUTH))
        .send("abroad", t("2026-02-11T00:00:00Z"), IN_USER, Some(AUTH))
        .send("no-rate", t("2026-02-11T00:00:00Z"), BR_USER, Some(AUTH));
    let report = World::with_businesses(vec![eligible]).replay(&log);
    assert_eq!(
        (verdict(&report, "before").0, verdict(&report, "before").2),
        ("authentication".into(), "0.0014".into())
    );
    assert_eq!(
        (
            verdict(&report, "domestic").0,
            verdict(&report, "domestic").2
        ),
        ("authentication".into(), "0.025".into())
    );
    assert_eq!(
        (verdict(&report, "abroad").0, verdict(&report, "abroad").2),
        ("authentication_international".into(), "0.028".into())
    );
    assert_eq!(
        verdict(&report, "no-rate").0,
        "authentication",
        "Brazil has no auth-intl rate"
    );
    // Without eligibility, India is always domestic-priced.
    let report = World::builtin().replay(&log);
    assert_eq!(
        (verdict(&report, "abroad").0, verdict(&report, "abroad").2),
        ("authentication".into(), "0.0014".into())
    );
}

/// W11 / D13 — a CBP utility conversation open at the switch keeps covering
/// utility templates until it expires [M-PMP]. WABA in Asia/Jakarta (UTC+7).
#[test]
fn w11_cbp_conversation_survives_the_switch_to_pmp() {
    let mut world = World::with_businesses(vec![business(B, "Asia/Jakarta", "USD")]);
    world.rates = RateBook::new(vec![card(USD_CBP_2023), card(USD_PMP_2025_ILLUSTRATIVE)]);
    let mut log = Log::default();
    log.send("u1", t("2025-06-30T13:00:00Z"), ID_USER, Some(UTIL)) // 20:00 local, June 30
        .send("u2", t("2025-07-01T03:00:00Z"), ID_USER, Some(UTIL)) // 10:00 local, July 1
        .send("m1", t("2025-07-01T02:00:00Z"), ID_USER, Some(MKT))
        .send("u3", t("2025-07-01T13:00:00Z"), ID_USER, Some(UTIL)); // 20:00 local: expired
    let report = world.replay(&log);
    assert_eq!(
        (
            charge(&report, "u1").pricing_model,
            verdict(&report, "u1").2
        ),
        (PricingModel::Cbp, "0.02".into())
    );
    let u2 = charge(&report, "u2");
    assert_eq!(
        (u2.pricing_model, u2.rule, &u2.conversation_id),
        (
            PricingModel::Cbp,
            "cbp-conversation-continues-after-switch",
            &charge(&report, "u1").conversation_id
        )
    );
    assert_eq!(
        verdict(&report, "m1"),
        (
            "marketing".into(),
            "regular".into(),
            "0.0411".into(),
            "marketing-template".into()
        )
    );
    assert_eq!(charge(&report, "m1").pricing_model, PricingModel::Pmp);
    assert_eq!(
        verdict(&report, "u3"),
        (
            "utility".into(),
            "regular".into(),
            "0.025".into(),
            "utility-outside-csw".into()
        )
    );
    assert_eq!(total(&report), dec("0.0861"));
}

/// W12 / D12 — 2026-10 (confirmed on Meta's pages): one Indian number, 3,350 delivered
/// service messages in October: 1,000 free, 2,350 × 0.0014 USD = 3.29 USD.
#[test]
fn w12_service_messages_charged_after_1000_per_number_per_month() {
    let mut log = Log::default();
    for i in 0..3_350 {
        let user = format!("+9198{i:08}");
        let at = t("2026-10-05T00:00:00Z") + jiff::SignedDuration::from_secs(i * 10);
        log.inbound(at, &user).send(
            &format!("s{i}"),
            at + jiff::SignedDuration::from_secs(5),
            &user,
            None,
        );
    }
    let report = World::builtin().replay(&log);
    assert_eq!(verdict(&report, "s999").1, "free_customer_service");
    assert_eq!(
        verdict(&report, "s1000"),
        (
            "service".into(),
            "regular".into(),
            "0.0014".into(),
            "service-message-charged".into()
        )
    );
    assert_eq!(report.charges.iter().filter(|c| c.billable).count(), 2_350);
    assert_eq!(total(&report), dec("3.29"));
    assert!(
        report
            .charges
            .iter()
            .all(|c| c.ruleset.status() == "confirmed")
    );
    assert!(!report.warnings.iter().any(|w| w.code == "reported_rules"));
    // What stays open is said on the charges it touches: the allowance's time zone.
    assert!(
        charge(&report, "s1000")
            .reason
            .contains("Meta does not say which time zone resets it"),
        "{}",
        charge(&report, "s1000").reason
    );
    assert!(
        charge(&report, "s5")
            .reason
            .contains("Meta does not say which time zone resets it")
    );
}

/// D12 — free entry points answered from 2026-09-28 last 72 h unless
/// `free_entry_point_7_days` is set, and the reason says which applied.
#[test]
fn d12_the_7_day_free_entry_point_is_a_dated_option() {
    let mut log = Log::default();
    log.ad_click(t("2026-10-05T00:00:00Z"), IN_USER)
        .send("reply", t("2026-10-05T00:10:00Z"), IN_USER, Some(MKT))
        .send("day4", t("2026-10-09T00:00:00Z"), IN_USER, Some(MKT));
    let mut world = World::builtin();
    let report = world.replay(&log);
    assert_eq!(verdict(&report, "reply").1, "free_entry_point");
    assert!(
        charge(&report, "reply")
            .reason
            .contains("72 h, as Meta's non-template page says"),
        "{}",
        charge(&report, "reply").reason
    );
    assert_eq!(verdict(&report, "day4").1, "regular", "after 72 h");
    world.accounts.options.free_entry_point_7_days = true;
    let report = world.replay(&log);
    assert_eq!(
        verdict(&report, "day4").1,
        "free_entry_point",
        "inside 7 days"
    );
    assert!(
        charge(&report, "day4")
            .reason
            .contains("7 days: `free_entry_point_7_days`"),
        "{}",
        charge(&report, "day4").reason
    );
    // Before 2026-09-28 the option changes nothing.
    let mut early = Log::default();
    early
        .ad_click(t("2026-09-01T00:00:00Z"), IN_USER)
        .send("reply", t("2026-09-01T00:10:00Z"), IN_USER, Some(MKT))
        .send("day4", t("2026-09-05T00:00:00Z"), IN_USER, Some(MKT));
    let report = world.replay(&early);
    assert_eq!(verdict(&report, "day4").1, "regular");
    assert!(!charge(&report, "reply").reason.contains("7 days"));
}

/// D12 — utility templates inside the window are charged from 2026-10-01
/// unless `utility_free_in_csw` is set.
#[test]
fn d12_utility_inside_window_is_configurable() {
    let mut log = Log::default();
    log.inbound(t("2026-10-05T00:00:00Z"), IN_USER).send(
        "u1",
        t("2026-10-05T00:10:00Z"),
        IN_USER,
        Some(UTIL),
    );
    let mut world = World::builtin();
    let report = world.replay(&log);
    assert_eq!(
        verdict(&report, "u1"),
        (
            "utility".into(),
            "regular".into(),
            "0.0014".into(),
            "utility-inside-csw-charged".into()
        )
    );
    world.accounts.options.utility_free_in_csw = true;
    let report = world.replay(&log);
    assert_eq!(
        verdict(&report, "u1"),
        (
            "utility".into(),
            "free_customer_service".into(),
            "0".into(),
            "utility-inside-csw".into()
        )
    );
}

/// D5 — windows are half-open: exactly 24 h after the last inbound is outside.
#[test]
fn d5_window_boundary_is_exclusive() {
    let mut log = Log::default();
    log.inbound(t("2026-02-02T10:00:00Z"), BR_USER)
        .send("inside", t("2026-02-03T09:59:59Z"), BR_USER, Some(UTIL))
        .send("edge", t("2026-02-03T10:00:00Z"), BR_USER, Some(UTIL));
    let report = World::builtin().replay(&log);
    assert_eq!(verdict(&report, "inside").1, "free_customer_service");
    assert_eq!(verdict(&report, "edge").1, "regular");
}

/// D2 — eras switch at 00:00 in the business's time zone. São Paulo is UTC−3.
#[test]
fn d2_era_boundary_uses_the_business_time_zone() {
    let mut world = World::with_businesses(vec![business(B, "America/Sao_Paulo", "USD")]);
    world.rates = RateBook::new(vec![card(USD_CBP_2023), card(USD_PMP_2025_ILLUSTRATIVE)]);
    let mut log = Log::default();
    log.send("june", t("2025-07-01T02:59:59Z"), ID_USER, Some(MKT))
        .send(
            "july",
            t("2025-07-01T03:00:00Z"),
            "+6281299999999",
            Some(MKT),
        );
    let report = world.replay(&log);
    assert_eq!(
        (
            charge(&report, "june").ruleset.id(),
            charge(&report, "june").pricing_model
        ),
        ("cbp-2023-06", PricingModel::Cbp)
    );
    assert_eq!(
        (
            charge(&report, "july").ruleset.id(),
            charge(&report, "july").pricing_model
        ),
        ("pmp-2025-07", PricingModel::Pmp)
    );
}

/// D3 — the delivery instant decides: sent under CBP, delivered under PMP.
#[test]
fn d3_delivery_time_decides_the_rules() {
    let mut world = World::builtin();
    world.rates = RateBook::new(vec![card(USD_CBP_2023), card(USD_PMP_2025_ILLUSTRATIVE)]);
    let mut log = Log::default();
    log.outbound(B, "late", t("2025-06-30T23:00:00Z"), ID_USER, Some(MKT))
        .status("late", t("2025-07-01T00:00:05Z"), DeliveryStatus::Delivered);
    let report = world.replay(&log);
    assert_eq!(charge(&report, "late").ruleset.id(), "pmp-2025-07");
    assert_eq!(
        charge(&report, "late").delivered_at,
        t("2025-07-01T00:00:05Z")
    );
}

/// D6 — a reply after 24 h opens no free entry point; an entry point during
/// an open one neither extends it nor starts another. PMP, Brazil.
#[test]
fn d6_free_entry_point_rules() {
    let mut log = Log::default();
    log.ad_click(t("2026-02-02T00:00:00Z"), BR_USER).send(
        "late",
        t("2026-02-03T00:00:00Z"),
        BR_USER,
        Some(MKT),
    );
    let other = "+5521988887777";
    log.ad_click(t("2026-02-02T00:00:00Z"), other)
        .send("reply", t("2026-02-02T01:00:00Z"), other, Some(MKT))
        .ad_click(t("2026-02-04T02:00:00Z"), other)
        .send("after", t("2026-02-05T01:00:00Z"), other, Some(MKT));
    let report = World::builtin().replay(&log);
    assert_eq!(verdict(&report, "late").1, "regular");
    assert_eq!(verdict(&report, "reply").1, "free_entry_point");
    assert_eq!(
        verdict(&report, "after"),
        (
            "marketing".into(),
            "regular".into(),
            "0.0625".into(),
            "marketing-template".into()
        )
    );
}

/// D6 — before 2023-03-01 free entry points lasted 24 h.
#[test]
fn d6_free_entry_point_was_24_hours_before_march_2023() {
    let mut log = Log::default();
    log.ad_click(t("2023-02-10T00:00:00Z"), BR_USER)
        .send("reply", t("2023-02-10T01:00:00Z"), BR_USER, None)
        .send("next-day", t("2023-02-11T01:00:00Z"), BR_USER, Some(MKT));
    let report = eur_2022_world().replay(&log);
    assert_eq!(verdict(&report, "reply").1, "free_entry_point");
    assert_eq!(
        charge(&report, "reply")
            .trail
            .explained()
            .expect("explained")
            .free_entry_point
            .unwrap()
            .closes_at,
        t("2023-02-11T01:00:00Z")
    );
    assert_eq!(
        charge(&report, "next-day").category.as_str(),
        "business_initiated"
    );
}

/// D1 — before 2022-02-01 there is a clear error, not a guess.
#[test]
fn d1_notification_era_is_an_error() {
    let mut log = Log::default();
    log.send("old", t("2022-01-31T12:00:00Z"), BR_USER, Some(MKT));
    let report = World::builtin().replay(&log);
    assert!(report.charges.is_empty());
    assert!(
        report.errors[0].message.contains("unsupported era"),
        "{:?}",
        report.errors
    );
}

/// Interfaces §1 — `read` without `delivered` counts as delivered at the read
/// time; failed messages cost nothing; duplicate statuses are idempotent;
/// a status for an unknown id is reported.
#[test]
fn statuses_read_failed_duplicates_unknown() {
    let mut log = Log::default();
    log.outbound(
        B,
        "read-only",
        t("2026-02-02T00:00:00Z"),
        BR_USER,
        Some(MKT),
    )
    .status("read-only", t("2026-02-02T00:05:00Z"), DeliveryStatus::Read)
    .outbound(B, "failed", t("2026-02-02T00:00:00Z"), BR_USER, Some(MKT))
    .status("failed", t("2026-02-02T00:00:02Z"), DeliveryStatus::Failed)
    .send("dup", t("2026-02-02T01:00:00Z"), BR_USER, Some(MKT))
    .status("dup", t("2026-02-02T01:00:00Z"), DeliveryStatus::Delivered)
    .status(
        "ghost",
        t("2026-02-02T01:00:00Z"),
        DeliveryStatus::Delivered,
    );
    let report = World::builtin().replay(&log);
    assert_eq!(
        charge(&report, "read-only").delivered_at,
        t("2026-02-02T00:05:00Z")
    );
    assert!(report.charges.iter().all(|c| &*c.message_id != "failed"));
    assert_eq!(report.charges.len(), 2);
    assert_eq!(report.stats.failed, 1);
    assert_eq!(report.stats.duplicates, 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.code == "unknown_status_id" && w.message.contains("ghost"))
    );
    assert_eq!(total(&report), dec("0.125"));
}

/// An inbound message read twice is one: without a wamid only an identical
/// event is a repeat (same pair, instant, entry point and kind); with one,
/// the business and wamid say it, whatever the instant. Each repeat is
/// counted once and opens no second window.
#[test]
fn inbound_repeats_are_one_message() {
    const OTHER: &str = "200000000000001";
    let at = t("2026-02-02T00:00:00Z");
    let mut log = Log::default();
    log.inbound(at, BR_USER)
        .inbound(at, BR_USER)
        // Not repeats: another instant, an ad click, another business.
        .inbound(h("2026-02-02T00:00:00Z", 1), BR_USER)
        .ad_click(at, BR_USER)
        .inbound_from(OTHER, at, BR_USER, None)
        .inbound_with_id(B, "wamid.in.1", h("2026-02-03T00:00:00Z", 0), BR_USER)
        // The same wamid later (a redelivered webhook) is a repeat; under
        // another business it is that business's own message.
        .inbound_with_id(B, "wamid.in.1", h("2026-02-03T00:00:00Z", 30), BR_USER)
        .inbound_with_id(OTHER, "wamid.in.1", h("2026-02-03T00:00:00Z", 0), BR_USER)
        // A service reply 30 hours after the wamid's first copy: outside
        // the window, which the repeat 30 hours later did not reopen.
        .send("reply", h("2026-02-03T00:00:00Z", 30), BR_USER, None);
    let report = World::builtin().replay(&log);
    assert_eq!(report.stats.duplicates, 2);
    assert_eq!(report.stats.events, log.events.len() as u64);
    let reply = charge(&report, "reply");
    assert!(
        reply.trail.notes.iter().any(|note| note.contains("window")),
        "{:?}",
        reply.trail.notes
    );
}

/// D17 — a status is its business's: one naming business A never counts
/// for business B's message of the same wamid (it is a status for an
/// unknown message), while one naming no business (a canonical line) is
/// matched by wamid alone. A repeat of the same status in both forms is
/// one status.
#[test]
fn d17_a_status_is_matched_to_its_own_business_message_only() {
    const OTHER: &str = "200000000000001";
    let at = t("2026-02-02T00:00:00Z");
    let later = t("2026-02-02T00:05:00Z");
    let mut log = Log::default();
    log.outbound(B, "shared", at, BR_USER, Some(MKT))
        // Another business claims the same wamid delivered earlier, and failed.
        .status_of(
            OTHER,
            "shared",
            t("2026-02-02T00:01:00Z"),
            DeliveryStatus::Delivered,
        )
        .status_of(
            OTHER,
            "shared",
            t("2026-02-02T00:02:00Z"),
            DeliveryStatus::Failed,
        )
        .status_of(B, "shared", later, DeliveryStatus::Delivered)
        // The same status again as a canonical line: a duplicate.
        .status("shared", later, DeliveryStatus::Delivered)
        .outbound(B, "canonical", at, BR_USER, Some(MKT))
        .status("canonical", later, DeliveryStatus::Read);
    let report = World::builtin().replay(&log);
    assert_eq!(
        charge(&report, "shared").delivered_at,
        later,
        "the other business's earlier delivery is not this message's"
    );
    assert_eq!(charge(&report, "shared").business.as_ref(), B);
    assert_eq!(charge(&report, "canonical").delivered_at, later);
    assert_eq!(report.charges.len(), 2);
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.code == "failed_after_delivery"),
        "{:?}",
        report.warnings
    );
    let unknown: Vec<&str> = report
        .warnings
        .iter()
        .filter(|w| w.code == "unknown_status_id")
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].contains("shared") && unknown[0].contains(OTHER),
        "{unknown:?}"
    );
    assert_eq!(report.stats.duplicates, 1);

    // The other business's own send of that wamid is its own message,
    // with its own statuses.
    log.outbound(OTHER, "shared", at, "+5511999990001", Some(UTIL));
    let report = World::builtin().replay(&log);
    let of = |business: &str| {
        report
            .charges
            .iter()
            .find(|c| &*c.message_id == "shared" && c.business.as_ref() == business)
            .unwrap()
    };
    assert_eq!(of(B).delivered_at, later);
    assert_eq!(of(OTHER).delivered_at, t("2026-02-02T00:01:00Z"));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.code == "failed_after_delivery"),
        "the other business's message failed after its delivery"
    );
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.code == "unknown_status_id" || w.code == "conflicting_outbound"),
        "{:?}",
        report.warnings
    );
}

/// Rate cards — a date without a card is an error naming what is missing.
#[test]
fn missing_card_is_an_error_not_a_guess() {
    let mut log = Log::default();
    // Between the 2023-06 card (until Meta's 2024-06-01 change) and the 2024-10 one.
    log.send("m1", t("2024-08-01T00:00:00Z"), BR_USER, Some(MKT));
    let report = World::builtin().replay(&log);
    assert!(report.charges.is_empty());
    let message = &report.errors[0].message;
    assert!(
        message
            .contains("no CBP rate card in USD covers 2024-08-01; the nearest are usd-2023-06-01"),
        "{message}"
    );
    assert!(message.contains("`wameter rates import FILE`"), "{message}");
}

/// A free-form message delivered with no window open is still rated, with a
/// note: Meta would have refused it (131047).
#[test]
fn free_form_outside_window_is_flagged() {
    let mut log = Log::default();
    log.send("f1", t("2026-02-02T00:00:00Z"), BR_USER, None);
    let report = World::builtin().replay(&log);
    assert_eq!(verdict(&report, "f1").1, "free_customer_service");
    assert!(report.warnings.iter().any(|w| w.message.contains("131047")));
}

/// `Engine::windows_at` (what `GET /v1/windows` answers) agrees with the
/// replay's own walk: the window a reply was decided in is the window the
/// question sees at the same instant, and only what happened before the
/// instant counts (D5 half-open, D6 free entry point from the first reply).
#[test]
fn windows_at_an_instant_follow_the_replay_walk() {
    let world = World::builtin();
    let engine = wameter_core::engine::Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        wameter_core::market::MarketTable::builtin(),
    );
    let mut log = Log::default();
    log.ad_click(t("2025-07-01T10:00:00Z"), "+6281234567890")
        .send(
            "wamid.reply",
            t("2025-07-01T10:30:00Z"),
            "+6281234567890",
            None,
        );
    let prepared = wameter_core::engine::prepare(log.events.clone());
    let contact = &prepared.contacts[0];
    let at = |text: &str| engine.windows_at(contact, t(text));

    let before = at("2025-07-01T09:00:00Z");
    assert_eq!(
        before,
        wameter_core::engine::ContactWindows::default(),
        "nothing before the first event"
    );

    let pending = at("2025-07-01T10:10:00Z");
    assert_eq!(
        pending.customer_service_window.map(|w| w.closes_at),
        Some(t("2025-07-02T10:00:00Z"))
    );
    assert_eq!(pending.free_entry_point, None, "not answered yet");
    assert_eq!(
        pending.pending_entry_point_at,
        Some(t("2025-07-01T10:00:00Z"))
    );

    // The reply at 10:30 is not yet counted at 10:30 (it is the one being
    // asked about), and is just after.
    assert_eq!(at("2025-07-01T10:30:00Z").free_entry_point, None);
    let answered = at("2025-07-01T10:30:01Z");
    assert_eq!(
        answered.free_entry_point.map(|w| w.closes_at),
        Some(t("2025-07-04T10:30:00Z"))
    );
    assert_eq!(answered.pending_entry_point_at, None);

    let next_day = at("2025-07-02T10:00:00Z");
    assert_eq!(
        next_day.customer_service_window, None,
        "half-open: closed at exactly 24 h"
    );
    assert!(next_day.free_entry_point.is_some());

    // The replay decided the reply inside the same windows.
    let report = world.replay(&log);
    assert_eq!(
        charge(&report, "wamid.reply")
            .trail
            .explained()
            .expect("explained")
            .free_entry_point
            .map(|w| w.closes_at),
        Some(t("2025-07-04T10:30:00Z"))
    );
}
