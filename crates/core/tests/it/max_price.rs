//! Max-price marketing (Marketing Messages API; docs/rules.md §15, Meta's
//! max-price page): a send Meta reports `pricing.cost` for is
//! charged that cost, with the card rate beside it; without a cost (or in
//! another currency) the card prices it.

use wameter_core::event::{
    DeliveryStatus, Event, EventKind, MetaCost, MetaPricing, Origin, StatusDetail,
};
use wameter_core::money::Currency;

use super::support::*;

const BR: &str = "+5511999990000";

fn priced(log: &mut Log, id: &str, at: &str, status: DeliveryStatus, cost: Option<(&str, &str)>) {
    let cost = cost.map(|(amount, currency)| MetaCost {
        amount: dec(amount),
        currency: Currency::parse(currency).unwrap(),
    });
    let pricing = MetaPricing {
        billable: Some(true),
        pricing_model: Some("PMP".into()),
        pricing_type: Some("regular".into()),
        category: "marketing_lite".into(),
        cost,
    };
    let detail = StatusDetail {
        business: Some(B.into()),
        recipient: None,
        pricing: Some(pricing),
        conversation: None,
        messaging_account: None,
    };
    log.events.push(Event {
        at: t(at),
        origin: Origin {
            source: 0,
            line: log.events.len() as u32 + 1,
        },
        kind: EventKind::Status {
            id: id.into(),
            status,
            error: None,
            detail: Some(Box::new(detail)),
        },
    });
}

/// platform-2026 §5.15: a max-price send with `cost.amount` 0.035 USD is
/// charged 0.035, the card's Brazil marketing rate (0.0625 on the October
/// 2026 card) shown beside it.
#[test]
fn a_max_price_send_is_charged_metas_cost() {
    let mut log = Log::default();
    log.outbound(B, "m1", t("2026-11-02T10:00:00Z"), BR, Some(MKT));
    priced(
        &mut log,
        "m1",
        "2026-11-02T10:00:01Z",
        DeliveryStatus::Sent,
        Some(("0.050", "USD")),
    );
    priced(
        &mut log,
        "m1",
        "2026-11-02T10:00:05Z",
        DeliveryStatus::Delivered,
        Some(("0.035", "USD")),
    );
    priced(
        &mut log,
        "m1",
        "2026-11-02T10:05:00Z",
        DeliveryStatus::Read,
        Some(("0.036", "USD")),
    );
    let report = World::builtin().replay(&log);
    let charge = charge(&report, "m1");
    assert_eq!(
        (charge.rule, charge.amount),
        ("max-price", dec("0.035")),
        "{}",
        charge.reason
    );
    assert!(
        charge.reason.contains("the card rate would be 0.0625 USD"),
        "{}",
        charge.reason
    );
    assert_eq!(
        charge.trail.explained().expect("explained").rate,
        Some(dec("0.0625"))
    );
}

/// Only a delivery status's cost counts: on `sent` it is Meta's forecast.
/// A cost in another currency than the business's is noted, not used.
#[test]
fn a_cost_on_sent_or_in_another_currency_leaves_the_card_price() {
    let mut log = Log::default();
    log.outbound(B, "m1", t("2026-11-02T10:00:00Z"), BR, Some(MKT));
    priced(
        &mut log,
        "m1",
        "2026-11-02T10:00:01Z",
        DeliveryStatus::Sent,
        Some(("0.050", "USD")),
    );
    log.status("m1", t("2026-11-02T10:00:05Z"), DeliveryStatus::Delivered);
    log.outbound(B, "m2", t("2026-11-02T11:00:00Z"), BR, Some(MKT));
    priced(
        &mut log,
        "m2",
        "2026-11-02T11:00:05Z",
        DeliveryStatus::Delivered,
        Some(("0.030", "EUR")),
    );
    let report = World::builtin().replay(&log);
    assert_eq!(verdict(&report, "m1").2, "0.0625");
    let m2 = charge(&report, "m2");
    assert_eq!(m2.amount, dec("0.0625"));
    assert!(
        m2.trail.notes.iter().any(|n| n.contains("0.03 EUR")),
        "{:?}",
        m2.trail.notes
    );
}

/// Order does not matter: the earliest delivery status with a cost wins,
/// wherever it is in the log.
#[test]
fn the_earliest_delivery_cost_wins_in_any_order() {
    let mut log = Log::default();
    log.outbound(B, "m1", t("2026-11-02T10:00:00Z"), BR, Some(MKT));
    priced(
        &mut log,
        "m1",
        "2026-11-02T10:05:00Z",
        DeliveryStatus::Read,
        Some(("0.036", "USD")),
    );
    priced(
        &mut log,
        "m1",
        "2026-11-02T10:00:05Z",
        DeliveryStatus::Delivered,
        Some(("0.035", "USD")),
    );
    let forward = World::builtin().replay(&log);
    log.events.reverse();
    let backward = World::builtin().replay(&log);
    assert_eq!(charge(&forward, "m1").amount, dec("0.035"));
    assert_eq!(charge(&backward, "m1").amount, dec("0.035"));
}
