//! Reconciliation: Meta's verdicts against the engine's. Verdicts that are
//! the engine's own must all agree; changing one must yield exactly one
//! discrepancy; the cause names what the log shows.

use proptest::prelude::*;
use std::collections::BTreeMap;
use wameter_core::charge::Charge;
use wameter_core::engine::Engine;
use wameter_core::event::{
    DeliveryStatus, Event, EventKind, MetaConversation, MetaPricing, Origin, StatusDetail,
};
use wameter_core::market::MarketTable;
use wameter_core::ratecard::RateBook;

use wameter_core::reconcile::{agreement, meta_verdicts, reconcile};

use super::properties::{build, step};
use super::support::*;

/// A `delivered` status carrying `charge` as Meta's verdict.
fn verdict_of(charge: &Charge, category: &str) -> Event {
    let pricing = MetaPricing {
        billable: Some(charge.billable),
        pricing_model: Some(charge.pricing_model.as_str().into()),
        pricing_type: (charge.pricing_model.as_str() == "PMP")
            .then(|| charge.pricing_type.as_str().into()),
        category: category.into(),
        cost: None,
    };
    let conversation = charge.conversation_id.as_ref().map(|id| MetaConversation {
        id: Some(format!("meta-{id}").into()),
        ..MetaConversation::default()
    });
    Event {
        at: charge.delivered_at,
        origin: Origin { source: 1, line: 1 },
        kind: EventKind::Status {
            id: Box::from(&*charge.message_id),
            status: DeliveryStatus::Delivered,
            error: None,
            detail: Some(Box::new(StatusDetail {
                pricing: Some(pricing),
                conversation,
                ..StatusDetail::default()
            })),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_engines_own_verdicts_agree_and_one_change_is_one_discrepancy(
        steps in prop::collection::vec(step(), 1..50),
        pick in any::<prop::sample::Index>(),
    ) {
        let world = World::builtin();
        let engine = Engine::new(&world.accounts, &world.rates, &world.tiers, MarketTable::builtin());
        let log = build(&steps);
        let report = engine.replay(log.events.clone());
        prop_assume!(!report.charges.is_empty());
        let mut events = log.events.clone();
        events.extend(report.charges.iter().map(|c| verdict_of(c, c.category.as_str())));
        let verdicts = meta_verdicts(&events);
        let agreed = reconcile(&engine, events.clone(), &[]);
        prop_assert_eq!(agreed.compared, report.charges.len() as u64);
        prop_assert_eq!(agreed.agreements, agreed.compared);
        prop_assert!(agreed.discrepancies.is_empty(), "{:#?}", agreed.discrepancies);
        // From the charges alone (as the server's meter keeps them): the
        // same count per share.
        let charges: Vec<&Charge> = agreed.report.charges.iter().collect();
        let shares: BTreeMap<_, u64> = agreed.shares.iter().map(|(key, share)| (key.clone(), share.compared)).collect();
        prop_assert_eq!(agreement(&charges, &verdicts, &[], |_| true), Some(shares));

        let changed = pick.get(&report.charges);
        let other = if changed.category.as_str() == "marketing" { "utility" } else { "marketing" };
        let mut events = log.events.clone();
        events.extend(report.charges.iter().map(|c| verdict_of(c, if c.message_id == changed.message_id { other } else { c.category.as_str() })));
        let verdicts = meta_verdicts(&events);
        let one = reconcile(&engine, events, &[]);
        let charges: Vec<&Charge> = one.report.charges.iter().collect();
        prop_assert_eq!(agreement(&charges, &verdicts, &[], |_| true), None);
        prop_assert_eq!(one.discrepancies.len(), 1);
        prop_assert_eq!(&*one.discrepancies[0].message_id, &*changed.message_id);
        prop_assert_eq!(&one.discrepancies[0].fields, &vec!["category"]);
    }
}

#[test]
fn cbp_conversation_grouping_differences_are_named() {
    let world = World {
        rates: RateBook::new(vec![card(USD_CBP_2023)]),
        ..World::builtin()
    };
    let engine = Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        MarketTable::builtin(),
    );
    let mut log = Log::default();
    // Two marketing templates to an Indonesian number 2 h apart: one conversation for the engine.
    log.send("w1", t("2023-07-03T10:00:00Z"), "+6281234567890", Some(MKT));
    log.send("w2", t("2023-07-03T12:00:00Z"), "+6281234567890", Some(MKT));
    let report = engine.replay(log.events.clone());
    assert_eq!(
        report.charges[0].conversation_id,
        report.charges[1].conversation_id
    );
    let mut events = log.events.clone();
    let mut second = verdict_of(&report.charges[1], "marketing");
    // Meta put the second message in a conversation of its own.
    if let EventKind::Status {
        detail: Some(detail),
        ..
    } = &mut second.kind
    {
        detail.conversation = Some(MetaConversation {
            id: Some("meta-other".into()),
            ..MetaConversation::default()
        });
    }
    events.push(verdict_of(&report.charges[0], "marketing"));
    events.push(second);
    // The charges alone see the grouping difference too, in either order.
    let verdicts = meta_verdicts(&events);
    let mut charges: Vec<&Charge> = report.charges.iter().collect();
    assert_eq!(agreement(&charges, &verdicts, &[], |_| true), None);
    charges.reverse();
    assert_eq!(agreement(&charges, &verdicts, &[], |_| true), None);
    let result = reconcile(&engine, events, &[]);
    assert_eq!(result.discrepancies.len(), 1);
    let d = &result.discrepancies[0];
    assert_eq!(&*d.message_id, "w2");
    assert_eq!(d.fields, ["conversation"]);
    assert!(
        d.cause
            .starts_with("conversation grouping: the engine counted this message in conversation"),
        "{}",
        d.cause
    );
}

#[test]
fn a_window_meta_saw_but_the_log_lacks_is_the_cause() {
    let world = World::builtin();
    let engine = Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        MarketTable::builtin(),
    );
    let mut log = Log::default();
    log.send(
        "w1",
        t("2026-02-10T10:00:00Z"),
        "+5511999990000",
        Some(UTIL),
    );
    let report = engine.replay(log.events.clone());
    assert_eq!(report.charges[0].pricing_type.as_str(), "regular");
    let mut verdict = verdict_of(&report.charges[0], "utility");
    if let EventKind::Status {
        detail: Some(detail),
        ..
    } = &mut verdict.kind
    {
        let pricing = detail.pricing.as_mut().unwrap();
        pricing.pricing_type = Some("free_customer_service".into());
        pricing.billable = Some(false);
    }
    let mut events = log.events.clone();
    events.push(verdict);
    let result = reconcile(&engine, events, &[]);
    let d = &result.discrepancies[0];
    assert_eq!(d.fields, ["type", "billable"]);
    assert!(
        d.cause
            .starts_with("window: Meta saw an open customer service window"),
        "{}",
        d.cause
    );
    assert!(d.cause.contains("none in the log"), "{}", d.cause);
}

/// D17 — Meta's verdict on one business's message is never compared with
/// another business's message of the same wamid.
#[test]
fn a_verdict_is_compared_with_its_own_business_message_only() {
    const OTHER: &str = "200000000000001";
    let world = World::builtin();
    let engine = Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        MarketTable::builtin(),
    );
    let mut log = Log::default();
    log.send(
        "shared",
        t("2026-02-10T10:00:00Z"),
        "+5511999990000",
        Some(UTIL),
    );
    let report = engine.replay(log.events.clone());
    let named = |business: &str, category: &str| {
        let mut verdict = verdict_of(&report.charges[0], category);
        if let EventKind::Status {
            detail: Some(detail),
            ..
        } = &mut verdict.kind
        {
            detail.business = Some(business.into());
        }
        verdict
    };
    // The other business's status says marketing; this business's own says utility.
    let mut events = log.events.clone();
    events.extend([named(OTHER, "marketing"), named(B, "utility")]);
    let result = reconcile(&engine, events, &[]);
    assert_eq!(
        (result.compared, result.agreements),
        (1, 1),
        "{:?}",
        result.discrepancies
    );
    assert!(result.drift.is_empty(), "{:?}", result.drift);
    // With only the other business's verdict, this message has none.
    let mut events = log.events.clone();
    events.push(named(OTHER, "marketing"));
    let result = reconcile(&engine, events, &[]);
    assert_eq!((result.compared, result.without_verdict), (0, 1));
}

/// D16 — a value Meta added later is kept as it came and reconciled as
/// unknown, never an error.
#[test]
fn a_value_meta_added_later_is_reconciled_as_unknown() {
    let world = World::builtin();
    let engine = Engine::new(
        &world.accounts,
        &world.rates,
        &world.tiers,
        MarketTable::builtin(),
    );
    let mut log = Log::default();
    log.send(
        "n1",
        t("2026-02-10T10:00:00Z"),
        "+5511999990000",
        Some(UTIL),
    );
    let report = engine.replay(log.events.clone());
    let mut verdict = verdict_of(&report.charges[0], "utility");
    if let EventKind::Status {
        detail: Some(detail),
        ..
    } = &mut verdict.kind
    {
        detail.pricing.as_mut().unwrap().pricing_type = Some("brand_new_type".into());
    }
    let mut events = log.events.clone();
    events.push(verdict);
    let result = reconcile(&engine, events, &[]);
    let d = &result.discrepancies[0];
    assert_eq!(d.fields, ["type"]);
    assert_eq!(
        d.meta.pricing.pricing_type.as_deref(),
        Some("brand_new_type")
    );
    assert!(
        d.cause
            .starts_with("unknown: Meta's value `brand_new_type`"),
        "{}",
        d.cause
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The per-(business, month) shares add up to the whole: counts,
    /// every discrepancy once and in its own share, and drift lines whose
    /// parts sum to each template's line.
    #[test]
    fn the_shares_add_up_to_the_reconciliation(
        steps in prop::collection::vec(step(), 1..60),
        flips in prop::collection::vec(any::<bool>(), 60),
    ) {
        let world = World::builtin();
        let engine = Engine::new(&world.accounts, &world.rates, &world.tiers, MarketTable::builtin());
        let log = build(&steps);
        let report = engine.replay(log.events.clone());
        let mut events = log.events.clone();
        events.extend(report.charges.iter().zip(flips.iter().cycle()).map(|(c, flip)| {
            let other = if c.category.as_str() == "marketing" { "utility" } else { "marketing" };
            verdict_of(c, if *flip { other } else { c.category.as_str() })
        }));
        let verdicts = meta_verdicts(&events);
        let result = reconcile(&engine, events, &[]);
        // From the charges alone: the counts when all agree and nothing
        // drifted, else nothing (the caller reconciles in full).
        let charges: Vec<&Charge> = result.report.charges.iter().collect();
        let counts: BTreeMap<_, u64> = result.shares.iter().map(|(key, share)| (key.clone(), share.compared)).collect();
        let all_agree = result.discrepancies.is_empty() && result.drift.is_empty();
        prop_assert_eq!(agreement(&charges, &verdicts, &[], |_| true), all_agree.then_some(counts));
        // Asked for one month's shares: only those need agree.
        let first_month = result.shares.keys().next().map(|(_, _, month)| *month);
        let wanted = |key: &wameter_core::reconcile::ShareKey| Some(key.2) == first_month;
        let month_counts: BTreeMap<_, u64> = result.shares.iter().filter(|(key, _)| wanted(key)).map(|(key, share)| (key.clone(), share.compared)).collect();
        let month_agrees = result.shares.iter().filter(|(key, _)| wanted(key)).all(|(_, share)| share.discrepancies.is_empty() && share.drift.is_empty());
        prop_assert_eq!(agreement(&charges, &verdicts, &[], wanted), month_agrees.then_some(month_counts));
        let shares = result.shares.values();
        prop_assert_eq!(shares.clone().map(|s| s.compared).sum::<u64>(), result.compared);
        prop_assert_eq!(shares.clone().map(|s| s.agreements).sum::<u64>(), result.agreements);
        let mut seen: Vec<usize> = Vec::new();
        for ((business, account, month), share) in &result.shares {
            for &index in &share.discrepancies {
                let charge = &result.discrepancies[index].engine;
                prop_assert_eq!(&*charge.business, &**business);
                prop_assert_eq!(charge.messaging_account.as_deref(), account.as_deref());
                prop_assert_eq!(wameter_core::settlement::Month::of(charge.local_date), *month);
                seen.push(index);
            }
        }
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..result.discrepancies.len()).collect::<Vec<_>>());
        for line in &result.drift {
            let parts: Vec<_> = result
                .shares
                .values()
                .flat_map(|s| &s.drift)
                .filter(|p| p.key() == line.key())
                .collect();
            prop_assert_eq!(parts.iter().map(|p| p.messages).sum::<u64>(), line.messages);
            prop_assert_eq!(parts.iter().map(|p| p.amount_as_sent).sum::<rust_decimal::Decimal>(), line.amount_as_sent);
            prop_assert_eq!(parts.iter().map(|p| p.amount_as_priced).sum::<rust_decimal::Decimal>(), line.amount_as_priced);
        }
        for part in result.shares.values().flat_map(|s| &s.drift) {
            prop_assert!(result.drift.iter().any(|l| l.key() == part.key()));
        }
    }
}
