//! Messaging accounts (Meta's account model of 2026; docs/rules.md §16
//! and its sources): one business number
//! billed through several Messaging accounts. Money follows the account a
//! message names (its currency, time zone and id); the customer service
//! window and the 2026-10 service allowance stay with the number; volume
//! tiers stay with the portfolio.

use wameter_core::account::{Business, MessagingAccount};
use wameter_core::event::{DeliveryStatus, Event, EventKind, Origin, StatusDetail};
use wameter_core::money::Currency;
use wameter_core::ratecard::TierBook;

use super::support::*;

const BR: &str = "+5511999990000";
const IN: &str = "+919876543210";

/// Number `B`: first Messaging account `W` (USD, UTC); a partner's `M`
/// (EUR, Europe/Berlin).
fn shared_number() -> World {
    let mut number = business(B, "UTC", "USD");
    number.waba = "W".into();
    number.portfolio = "P".into();
    number.messaging_accounts.push(MessagingAccount {
        id: "M".into(),
        currency: Currency::parse("EUR").unwrap(),
        timezone: jiff::tz::TimeZone::get("Europe/Berlin").unwrap(),
    });
    World::with_businesses(vec![number])
}

/// Names `account` on the outbound event just logged (the send's
/// `messaging_account_id`).
fn through(log: &mut Log, account: &str) {
    match log.events.last_mut() {
        Some(Event {
            kind: EventKind::Outbound {
                messaging_account, ..
            },
            ..
        }) => *messaging_account = Some(account.into()),
        other => panic!("not an outbound: {other:?}"),
    }
}

/// A send delivered at once, through `account` when given.
fn send(
    log: &mut Log,
    id: &str,
    at: jiff::Timestamp,
    user: &str,
    category: Option<wameter_core::category::TemplateCategory>,
    account: Option<&str>,
) {
    log.outbound(B, id, at, user, category);
    if let Some(account) = account {
        through(log, account);
    }
    log.status(id, at, DeliveryStatus::Delivered);
}

/// A delivery status as Meta's webhook to `account` carries it (`entry[].id`).
fn delivered_via(log: &mut Log, id: &str, at: &str, account: &str) {
    let detail = StatusDetail {
        business: Some(B.into()),
        messaging_account: Some(account.into()),
        ..StatusDetail::default()
    };
    log.line += 1;
    let origin = Origin {
        source: 0,
        line: log.line,
    };
    log.events.push(Event {
        at: t(at),
        origin,
        kind: EventKind::Status {
            id: id.into(),
            status: DeliveryStatus::Delivered,
            error: None,
            detail: Some(Box::new(detail)),
        },
    });
}

/// platform-2026 §2.6: "a charge goes to the Messaging account of the
/// sending app … one number can serve Messaging accounts in different
/// currencies". The same template from one number costs the EUR card's
/// rate through `M` and the USD card's through `W`.
#[test]
fn money_follows_the_messaging_account_a_send_names() {
    let world = shared_number();
    let mut log = Log::default();
    send(
        &mut log,
        "first",
        t("2026-08-03T10:00:00Z"),
        BR,
        Some(MKT),
        None,
    );
    send(
        &mut log,
        "partner",
        t("2026-08-03T10:05:00Z"),
        BR,
        Some(MKT),
        Some("M"),
    );
    let report = world.replay(&log);
    let (first, partner) = (charge(&report, "first"), charge(&report, "partner"));
    assert_eq!(
        (
            first.currency.to_string(),
            first.amount,
            first.messaging_account.as_deref()
        ),
        ("USD".to_string(), dec("0.0625"), None)
    );
    assert_eq!(
        (
            partner.currency.to_string(),
            partner.amount,
            partner.messaging_account.as_deref()
        ),
        ("EUR".to_string(), dec("0.0518"), Some("M"))
    );
    assert_eq!(
        partner.trail.explained().expect("explained").timezone,
        "Europe/Berlin"
    );
    assert!(
        partner
            .trail
            .explained()
            .expect("explained")
            .rate_card
            .as_deref()
            .is_some_and(|card| card.contains("EUR")),
        "{:?}",
        partner.trail.explained().expect("explained").rate_card
    );
}

/// Meta's statuses go to the account that sent the message (its webhook's
/// `entry[].id`): without the send's own field, that names the payer. The
/// send's field wins when both are there.
#[test]
fn the_webhook_entry_names_the_payer_when_the_send_does_not() {
    let world = shared_number();
    let mut log = Log::default();
    log.outbound(B, "via-webhook", t("2026-08-03T10:00:00Z"), BR, Some(MKT));
    delivered_via(&mut log, "via-webhook", "2026-08-03T10:00:05Z", "M");
    log.outbound(B, "send-wins", t("2026-08-03T11:00:00Z"), BR, Some(MKT));
    through(&mut log, "W");
    delivered_via(&mut log, "send-wins", "2026-08-03T11:00:05Z", "M");
    let report = world.replay(&log);
    assert_eq!(charge(&report, "via-webhook").currency.to_string(), "EUR");
    assert_eq!(charge(&report, "send-wins").currency.to_string(), "USD");
}

/// The local date, so the month and the card, is the Messaging account's:
/// 23:30 UTC on 31 August is 1 September in Berlin.
#[test]
fn the_local_date_is_the_messaging_accounts() {
    let world = shared_number();
    let mut log = Log::default();
    send(
        &mut log,
        "late",
        t("2026-08-31T23:30:00Z"),
        BR,
        Some(MKT),
        Some("M"),
    );
    let report = world.replay(&log);
    assert_eq!(charge(&report, "late").local_date.to_string(), "2026-09-01");
}

/// platform-2026 §1.5: the window "belongs to the phone-number–user pair,
/// not to one Messaging account". A user writes to the number; a
/// free-form reply through the partner's account is inside that window
/// (free under PMP 2025).
#[test]
fn the_customer_service_window_belongs_to_the_number() {
    let world = shared_number();
    let mut log = Log::default();
    log.inbound(t("2026-07-02T09:00:00Z"), BR);
    send(
        &mut log,
        "reply",
        t("2026-07-02T09:10:00Z"),
        BR,
        None,
        Some("M"),
    );
    let report = world.replay(&log);
    let reply = charge(&report, "reply");
    assert!(
        reply
            .trail
            .explained()
            .expect("explained")
            .customer_service_window
            .is_some()
    );
    assert_eq!(
        (
            reply.billable,
            reply.amount,
            reply.messaging_account.as_deref()
        ),
        (false, dec("0"), Some("M"))
    );
}

/// platform-2026 §1.2/§5.6: the 1,000 free service messages are the
/// number's, shared by its Messaging accounts: 600 through each, and the
/// 1,001st — whichever account it goes through — is charged. (No EUR
/// card covers 2026-11, so `M` bills in USD here.)
#[test]
fn the_service_allowance_is_shared_by_the_numbers_accounts() {
    let mut number = business(B, "UTC", "USD");
    number.waba = "W".into();
    number.messaging_accounts.push(MessagingAccount {
        id: "M".into(),
        currency: Currency::USD,
        timezone: jiff::tz::TimeZone::get("Europe/Berlin").unwrap(),
    });
    let world = World::with_businesses(vec![number]);
    let mut log = Log::default();
    let base = t("2026-11-02T00:00:00Z");
    for n in 0..1_200i64 {
        let at = base + jiff::SignedDuration::from_mins(n);
        log.inbound(at, BR);
        send(
            &mut log,
            &format!("s{n}"),
            at + jiff::SignedDuration::from_secs(10),
            BR,
            None,
            (n % 2 == 1).then_some("M"),
        );
    }
    let report = world.replay(&log);
    let charged: Vec<&str> = report
        .charges
        .iter()
        .filter(|c| c.billable)
        .map(|c| &*c.message_id)
        .collect();
    assert_eq!(
        charged.len(),
        200,
        "the allowance is counted once for the number"
    );
    assert_eq!(charged[0], "s1000");
    assert_eq!(charge(&report, "s1000").messaging_account.as_deref(), None);
    assert_eq!(
        charge(&report, "s1001").messaging_account.as_deref(),
        Some("M")
    );
    assert!(
        charge(&report, "s1001")
            .trail
            .explained()
            .expect("explained")
            .counter
            .as_deref()
            .is_some_and(|c| c.contains("#1002")),
        "{:?}",
        charge(&report, "s1001")
            .trail
            .explained()
            .expect("explained")
            .counter
    );
}

/// platform-2026 §5.6: tiers are the portfolio's. Utility messages to
/// India through either account climb one ladder (USD for both here).
#[test]
fn volume_tiers_count_the_portfolio_across_accounts() {
    let mut number = business(B, "UTC", "USD");
    number.waba = "W".into();
    number.portfolio = "P".into();
    number.messaging_accounts.push(MessagingAccount {
        id: "M".into(),
        currency: Currency::USD,
        timezone: jiff::tz::TimeZone::UTC,
    });
    let mut world = World::with_businesses(vec![number]);
    let tiers = "effective,currency,market,category,from,to,rate\n2026-01-01,USD,India,utility,0,2,0.0014\n2026-01-01,USD,India,utility,3,,0.0010\n";
    world.tiers = TierBook::new(TierBook::parse_simple_csv("tiers.csv", tiers).unwrap());
    let mut log = Log::default();
    for (n, account) in ["W", "M", "M"].iter().enumerate() {
        send(
            &mut log,
            &format!("u{n}"),
            t("2026-11-02T10:00:00Z") + jiff::SignedDuration::from_mins(n as i64),
            IN,
            Some(UTIL),
            Some(account),
        );
    }
    let report = world.replay(&log);
    assert_eq!(verdict(&report, "u1").2, "0.0014");
    assert_eq!(
        verdict(&report, "u2").2,
        "0.001",
        "{}",
        charge(&report, "u2").reason
    );
}

/// An account the number does not have: billed through its first, and
/// said. With one account there is nothing to choose, so nothing is said.
#[test]
fn an_unknown_account_is_billed_through_the_first_and_said() {
    let world = shared_number();
    let mut log = Log::default();
    send(
        &mut log,
        "stray",
        t("2026-11-02T10:00:00Z"),
        BR,
        Some(MKT),
        Some("X"),
    );
    let report = world.replay(&log);
    let stray = charge(&report, "stray");
    assert_eq!(
        (
            stray.currency.to_string(),
            stray.messaging_account.as_deref()
        ),
        ("USD".to_string(), None)
    );
    assert!(
        report.warnings.iter().any(|w| w
            .message
            .contains("Messaging account X is none of business number")),
        "{:?}",
        report.warnings
    );

    let single = World::with_businesses(vec![Business {
        waba: "W".into(),
        ..business(B, "UTC", "USD")
    }]);
    let report = single.replay(&log);
    assert!(
        report
            .warnings
            .iter()
            .all(|w| !w.message.contains("Messaging account")),
        "{:?}",
        report.warnings
    );
}
