//! The incremental meter answers what a replay answers: for any log, fed in
//! any order and any split, after every batch its report equals
//! `Engine::replay` of the events given so far, and the changes it returns
//! name every charge that moved.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use wameter_core::category::TemplateCategory;
use wameter_core::engine::Report;
use wameter_core::event::{
    AgentUsage, Call, CallDirection, CallStatus, DeliveryStatus, EntryPoint, Event, EventKind,
    MetaCost, MetaPricing, Origin, StatusDetail, UserId, outbounds_from_pricing,
};
use wameter_core::incremental::MeterState;
use wameter_core::ratecard::TierBook;
use wameter_core::ratecard::calling::CallRateBook;

use super::support::*;

/// The last two are business-scoped ids without a country prefix, whose
/// country only some events give; they differ in their last byte only, so
/// a timeline's grouping, which keys such an id by its first bytes, must
/// compare the ids themselves.
const USERS: [&str; 7] = [
    "+5511999990000",
    "+919876543210",
    "+919811111111",
    "+6281234567890",
    "+12125550100",
    "user.9373795779eb",
    "user.9373795779ec",
];
/// Three listed numbers in two portfolios (b1 and b2 share one), in three
/// time zones, and one number not in the accounts.
const BUSINESSES: [&str; 4] = ["b1", "b2", "b3", "b4"];
/// The Messaging account a step may name, by business: b1 and b3 have a
/// second one (in another time zone for b1), b2 and b4 none, so theirs is
/// unknown and changes nothing.
const MESSAGING_ACCOUNTS: [&str; 4] = ["M1", "M2", "M3", "M4"];
/// Starts of the logs: CBP 2023, a PMP month edge, the 2026-10 rules.
pub(super) const BASES: [&str; 3] = [
    "2023-07-30T00:00:00Z",
    "2026-01-30T00:00:00Z",
    "2026-10-30T00:00:00Z",
];

#[derive(Debug, Clone)]
pub(super) enum Step {
    Inbound {
        business: usize,
        user: usize,
        minute: i64,
        ad: bool,
    },
    Send {
        business: usize,
        user: usize,
        minute: i64,
        category: Option<u8>,
        delay: i64,
        outcome: u8,
        logged: u8,
    },
    /// A call: `kind` 0–1 user-initiated, 2–5 business-initiated (2: never
    /// connected; 5: ended `failed`); `again` logs a second copy that
    /// lasts longer and is read later (a conflicting redelivery).
    Call {
        business: usize,
        user: usize,
        minute: i64,
        kind: u8,
        seconds: u32,
        again: bool,
    },
    /// Meta Business Agent tokens, named by a wamid that may be a send's
    /// (then that free-form message is the agent's, not a service one).
    Agent {
        business: usize,
        user: usize,
        minute: i64,
        message: usize,
        tokens: u64,
    },
}

pub(super) fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..BUSINESSES.len(),
            0..USERS.len(),
            0..6_000i64,
            proptest::bool::weighted(0.15)
        )
            .prop_map(|(business, user, minute, ad)| Step::Inbound {
                business,
                user,
                minute,
                ad
            }),
        (
            0..BUSINESSES.len(),
            0..USERS.len(),
            0..6_000i64,
            proptest::option::of(0..3u8),
            0..120i64,
            0..12u8,
            0..6u8
        )
            .prop_map(
                |(business, user, minute, category, delay, outcome, logged)| Step::Send {
                    business,
                    user,
                    minute,
                    category,
                    delay,
                    outcome,
                    logged
                }
            ),
        (
            0..BUSINESSES.len(),
            0..USERS.len(),
            0..6_000i64,
            0..6u8,
            1..900u32,
            proptest::bool::weighted(0.1)
        )
            .prop_map(
                |(business, user, minute, kind, seconds, again)| Step::Call {
                    business,
                    user,
                    minute,
                    kind,
                    seconds,
                    again
                }
            ),
        (
            0..BUSINESSES.len(),
            0..USERS.len(),
            0..6_000i64,
            0..35usize,
            0..50_000u64
        )
            .prop_map(|(business, user, minute, message, tokens)| Step::Agent {
                business,
                user,
                minute,
                message,
                tokens
            }),
    ]
}

pub(super) fn build(base: &str, steps: &[Step]) -> Vec<Event> {
    let base = t(base);
    let at = |minute: i64| base + jiff::SignedDuration::from_mins(minute);
    let mut log = Log::default();
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Inbound {
                business,
                user,
                minute,
                ad,
            } => {
                log.inbound_from(
                    BUSINESSES[*business],
                    at(*minute),
                    USERS[*user],
                    ad.then_some(EntryPoint::Ad),
                );
            }
            Step::Agent {
                business,
                user,
                minute,
                message,
                tokens,
            } => {
                let messaging_account =
                    (*minute % 3 == 0).then(|| MESSAGING_ACCOUNTS[*business].into());
                let usage = AgentUsage {
                    business: BUSINESSES[*business].into(),
                    user: UserId::parse(USERS[*user]).unwrap(),
                    id: format!("w{message}").into(),
                    tokens: *tokens,
                    messaging_account,
                };
                log.events.push(Event {
                    at: at(*minute),
                    origin: Origin::default(),
                    kind: EventKind::AgentUsage(Box::new(usage)),
                });
            }
            Step::Call {
                business,
                user,
                minute,
                kind,
                seconds,
                again,
            } => {
                let direction = if *kind < 2 {
                    CallDirection::UserInitiated
                } else {
                    CallDirection::BusinessInitiated
                };
                let duration_seconds = if *kind == 2 { 0 } else { *seconds };
                let status = if *kind == 5 {
                    CallStatus::Failed
                } else {
                    CallStatus::default_for(duration_seconds)
                };
                let call = Call {
                    business: BUSINESSES[*business].into(),
                    user: UserId::parse(USERS[*user]).unwrap(),
                    id: format!("c{index}").into(),
                    direction,
                    duration_seconds,
                    status,
                    error: None,
                    messaging_account: (*minute % 3 == 0)
                        .then(|| MESSAGING_ACCOUNTS[*business].into()),
                };
                if *again {
                    let longer = Call {
                        duration_seconds: duration_seconds + 6,
                        ..call.clone()
                    };
                    log.events.push(Event {
                        at: at(*minute + 1),
                        origin: Origin::default(),
                        kind: EventKind::Call(Box::new(longer)),
                    });
                }
                log.events.push(Event {
                    at: at(*minute),
                    origin: Origin::default(),
                    kind: EventKind::Call(Box::new(call)),
                });
            }
            Step::Send {
                business,
                user,
                minute,
                category,
                delay,
                outcome,
                logged,
            } => {
                // The send names its Messaging account, or only its
                // statuses' webhooks do, or nothing does.
                let (sent_through, webhooks_through) = match delay % 4 {
                    0 => (Some(MESSAGING_ACCOUNTS[*business]), None),
                    1 => (None, Some(MESSAGING_ACCOUNTS[*business])),
                    _ => (None, None),
                };
                let business = BUSINESSES[*business];
                // Ids repeat across businesses: a message is its business's.
                let id = format!("w{}", index / 2);
                let category = category.map(|c| {
                    [
                        TemplateCategory::Marketing,
                        TemplateCategory::Utility,
                        TemplateCategory::Authentication,
                    ][c as usize]
                });
                // Mostly logged; else only Meta's priced statuses say what
                // was sent (sometimes a category other than the template's).
                if *logged > 1 {
                    log.outbound(business, &id, at(*minute), USERS[*user], category);
                    if let (
                        Some(account),
                        Some(Event {
                            kind:
                                EventKind::Outbound {
                                    messaging_account, ..
                                },
                            ..
                        }),
                    ) = (sent_through, log.events.last_mut())
                    {
                        *messaging_account = Some(account.into());
                    }
                }
                let delivered = at(*minute) + jiff::SignedDuration::from_secs(*delay);
                let read = delivered + jiff::SignedDuration::from_secs(30);
                if *logged < 3 {
                    let priced = category.map_or("service", |c| {
                        if *logged == 1 {
                            "marketing"
                        } else {
                            c.as_str()
                        }
                    });
                    let detail = StatusDetail {
                        business: Some(business.into()),
                        recipient: Some(UserId::parse(USERS[*user]).unwrap()),
                        pricing: Some(MetaPricing {
                            billable: Some(true),
                            pricing_model: Some("PMP".into()),
                            pricing_type: Some("regular".into()),
                            category: priced.into(),
                            cost: None,
                        }),
                        conversation: None,
                        messaging_account: webhooks_through.map(Box::from),
                    };
                    for at in [delivered - jiff::SignedDuration::from_secs(1), read] {
                        let kind = EventKind::Status {
                            id: id.as_str().into(),
                            status: DeliveryStatus::Sent,
                            error: None,
                            detail: Some(Box::new(detail.clone())),
                        };
                        log.events.push(Event {
                            at,
                            origin: Origin::default(),
                            kind,
                        });
                    }
                }
                // A max-price marketing send: Meta's cost on its delivery
                // (and, differently, on its read) decides its charge.
                if *outcome == 2 && category == Some(TemplateCategory::Marketing) && *delay % 2 == 0
                {
                    for (at, status, amount) in [
                        (delivered, DeliveryStatus::Delivered, "0.0300"),
                        (read, DeliveryStatus::Read, "0.0310"),
                    ] {
                        let cost = MetaCost {
                            amount: amount.parse().unwrap(),
                            currency: wameter_core::money::Currency::USD,
                        };
                        let pricing = MetaPricing {
                            billable: Some(true),
                            pricing_model: Some("PMP".into()),
                            pricing_type: Some("regular".into()),
                            category: "marketing_lite".into(),
                            cost: Some(cost),
                        };
                        let detail = StatusDetail {
                            business: Some(business.into()),
                            recipient: None,
                            pricing: Some(pricing),
                            conversation: None,
                            messaging_account: None,
                        };
                        log.events.push(Event {
                            at,
                            origin: Origin::default(),
                            kind: EventKind::Status {
                                id: id.as_str().into(),
                                status,
                                error: None,
                                detail: Some(Box::new(detail)),
                            },
                        });
                    }
                    continue;
                }
                match outcome {
                    0 => log.status(&id, delivered, DeliveryStatus::Failed),
                    1 => log.status(&id, delivered, DeliveryStatus::Read),
                    2 => log.status_of(business, &id, delivered, DeliveryStatus::Delivered),
                    3 => log
                        .status_of(business, &id, read, DeliveryStatus::Read)
                        .status(&id, delivered, DeliveryStatus::Delivered),
                    4 => log.status(&id, delivered, DeliveryStatus::Failed).status(
                        &id,
                        read,
                        DeliveryStatus::Read,
                    ),
                    5 => &mut log,
                    _ => log
                        .status(&id, delivered, DeliveryStatus::Delivered)
                        .status(&id, read, DeliveryStatus::Read),
                };
            }
        }
    }
    // Every third event naming the scoped id says its country beside it.
    for (index, event) in log.events.iter_mut().enumerate() {
        if let EventKind::Inbound { user, .. } | EventKind::Outbound { user, .. } = &mut event.kind
            && index % 3 == 0
        {
            *user = user.clone().with_country("IN");
        }
    }
    log.events
}

/// `conflicted`: b4 is listed too, in WABA W1 (b1's) but another
/// portfolio, which a real account cannot be but a file can say.
pub(super) fn world(conflicted: bool) -> World {
    let mut b1 = business("b1", "UTC", "USD");
    let mut b2 = business("b2", "Asia/Kolkata", "USD");
    let mut b3 = business("b3", "America/Sao_Paulo", "USD");
    let mut b4 = business("b4", "UTC", "USD");
    for (business, waba, portfolio) in [
        (&mut b1, "W1", "P1"),
        (&mut b2, "W2", "P1"),
        (&mut b3, "W3", "P2"),
        (&mut b4, "W1", "P3"),
    ] {
        business.waba = waba.into();
        business.portfolio = portfolio.into();
    }
    let mut businesses = vec![b1, b2, b3];
    if conflicted {
        businesses.push(b4);
    }
    // A second Messaging account for b1 (another time zone: other local
    // dates and months for its money) and for b3.
    b1_b3_accounts(&mut businesses);
    let mut world = World::with_businesses(businesses);
    // Small bands, so that the shared counters decide prices.
    let tiers = "effective,currency,market,category,from,to,rate\n2026-01-01,USD,India,utility,0,2,0.0014\n2026-01-01,USD,India,utility,3,,0.0010\n";
    world.tiers = TierBook::new(TierBook::parse_simple_csv("tiers.csv", tiers).unwrap());
    // Calling rates with a small first band for every market the users
    // are in, so that the portfolio's minutes decide prices.
    let mut calls =
        String::from("effective,currency,market,minutes_from,minutes_to,rate_per_minute\n");
    for market in ["Brazil", "India", "Indonesia", "North America", "Other"] {
        calls.push_str(&format!(
            "2025-08-01,USD,{market},0,3,0.0100\n2025-08-01,USD,{market},4,,0.0050\n"
        ));
    }
    world.call_rates = world
        .call_rates
        .with(CallRateBook::parse_csv("calls.csv", &calls).unwrap());
    world
}

fn b1_b3_accounts(businesses: &mut [wameter_core::account::Business]) {
    use wameter_core::account::MessagingAccount;
    let usd = wameter_core::money::Currency::USD;
    businesses[0].messaging_accounts.push(MessagingAccount {
        id: "M1".into(),
        currency: usd,
        timezone: jiff::tz::TimeZone::get("Asia/Tokyo").unwrap(),
    });
    businesses[2].messaging_accounts.push(MessagingAccount {
        id: "M3".into(),
        currency: usd,
        timezone: jiff::tz::TimeZone::UTC,
    });
}

pub(super) fn shuffle(events: &mut [Event], seed: u64) {
    let mut state = seed | 1;
    for i in (1..events.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        events.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

fn charges_by_message(report: &Report) -> BTreeMap<(String, String), String> {
    report
        .charges
        .iter()
        .map(|c| {
            (
                (c.business.to_string(), c.message_id.to_string()),
                format!("{c:?}"),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn incremental_equals_replay_after_every_batch(
        steps in prop::collection::vec(step(), 1..70),
        base in 0..BASES.len(),
        shuffled in any::<bool>(),
        seed in any::<u64>(),
        cuts in prop::collection::vec(1..12usize, 1..20),
        checkpoint_every in 1..5usize,
        conflicted in proptest::bool::weighted(0.25),
        doubled in proptest::bool::weighted(0.3),
        lines_first in any::<bool>(),
    ) {
        let world = world(conflicted);
        let engine = world.engine();
        let mut events = build(BASES[base], &steps);
        if doubled {
            // Every line twice (a log read twice, webhooks redelivered).
            events.extend(events.clone());
        }
        // Lines numbered before the shuffle or after it: events need not
        // arrive in the order of where they were read (files given in
        // another order, webhooks stored out of order).
        let number = |events: &mut Vec<Event>| {
            for (line, event) in events.iter_mut().enumerate() {
                event.origin = Origin { source: 0, line: line as u32 + 1 };
            }
        };
        if lines_first {
            number(&mut events);
        }
        if shuffled {
            shuffle(&mut events, seed);
        }
        if !lines_first {
            number(&mut events);
        }

        let mut meter = MeterState::new(&engine).checkpoint_every(checkpoint_every);
        let mut given = 0;
        let mut before = Report::default();
        for cut in cuts.iter().cycle() {
            if given == events.len() { break; }
            let batch = &events[given..(given + cut).min(events.len())];
            given += batch.len();
            let changes = meter.apply(&engine, batch.iter().cloned());
            // What the front ends replay: the log and its stand-in outbounds.
            let mut given_events = events[..given].to_vec();
            given_events.extend(outbounds_from_pricing(&given_events));
            let replayed = engine.replay(given_events);
            let report = meter.report();
            prop_assert_eq!(&report, &replayed, "after {} of {} events", given, events.len());
            // The findings alone (what a settle round asks) are the report's.
            prop_assert_eq!(meter.findings(), meter.charges_and_findings().1);

            // Every charge that appeared, changed or went away is named.
            let (old, new) = (charges_by_message(&before), charges_by_message(&report));
            let named: BTreeSet<(String, String)> = changes.messages.iter().map(|(b, id)| (b.to_string(), id.to_string())).collect();
            prop_assert_eq!(named.len(), changes.messages.len(), "each change named once");
            for key in old.keys().chain(new.keys()) {
                if old.get(key) != new.get(key) {
                    prop_assert!(named.contains(key), "{key:?} changed but was not named");
                }
            }
            // The charges it says rest on an inferred outbound are those
            // whose message it says so of.
            let mut inferred: Vec<String> = meter.inferred_charges().map(|c| format!("{}/{}", c.business, c.message_id)).collect();
            inferred.sort();
            let mut expected: Vec<String> =
                report.charges.iter().filter(|c| meter.is_inferred(&c.business, &c.message_id)).map(|c| format!("{}/{}", c.business, c.message_id)).collect();
            expected.sort();
            prop_assert_eq!(inferred, expected);
            // And each named charge is the one the state answers for it.
            for (business, id) in &named {
                let answered = meter.charge(business, id).and_then(|charge| charge.ok()).map(|charge| format!("{charge:?}"));
                prop_assert_eq!(answered.as_ref(), new.get(&(business.clone(), id.clone())));
            }
            before = report;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Settling on demand answers what settling every batch answers: after
    /// any batch, settling through any messages, in any order, gives each
    /// the charge the replay of the events so far gives it, and settling
    /// everything gives the replay's report. Charges asked for
    /// out of delivery order exercise the partial settlings (a rewind that
    /// stops short of the frontier, a resumption past it).
    #[test]
    fn settling_on_demand_answers_what_the_replay_does(
        steps in prop::collection::vec(step(), 1..70),
        base in 0..BASES.len(),
        seed in any::<u64>(),
        cuts in prop::collection::vec(1..12usize, 1..20),
        checkpoint_every in 1..5usize,
        conflicted in proptest::bool::weighted(0.25),
        asked in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        settle_all_every in 1..4usize,
    ) {
        let world = world(conflicted);
        let engine = world.engine();
        let mut events = build(BASES[base], &steps);
        shuffle(&mut events, seed);
        for (line, event) in events.iter_mut().enumerate() {
            event.origin = Origin { source: 0, line: line as u32 + 1 };
        }

        let mut meter = MeterState::new(&engine)
            .checkpoint_every(checkpoint_every)
            .settling_on_demand();
        let mut given = 0;
        for (round, cut) in cuts.iter().cycle().enumerate() {
            if given == events.len() { break; }
            let batch = &events[given..(given + cut).min(events.len())];
            given += batch.len();
            let changes = meter.apply(&engine, batch.iter().cloned());
            prop_assert!(changes.messages.is_empty(), "an on-demand state reports no changes");
            let mut given_events = events[..given].to_vec();
            given_events.extend(outbounds_from_pricing(&given_events));
            let replayed = engine.replay(given_events);
            let expected = charges_by_message(&replayed);
            let keys: Vec<&(String, String)> = expected.keys().collect();
            if !keys.is_empty() {
                for index in &asked {
                    let (business, id) = keys[index.index(keys.len())];
                    meter.settle_through(&engine, business, id);
                    let answered = meter.charge(business, id).and_then(|charge| charge.ok()).map(|charge| format!("{charge:?}"));
                    prop_assert_eq!(answered.as_ref(), expected.get(&(business.clone(), id.clone())), "{}/{} after {} of {} events", business, id, given, events.len());
                }
            }
            if round % settle_all_every == 0 || given == events.len() {
                let changes = meter.settle(&engine);
                prop_assert!(changes.messages.is_empty());
                prop_assert_eq!(&meter.report(), &replayed, "after {} of {} events", given, events.len());
            }
        }
    }
}
