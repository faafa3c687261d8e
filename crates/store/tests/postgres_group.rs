//! PostgreSQL group commit (`postgres::group`) against one write per
//! transaction: whatever the writes, queued together so that they commit as
//! one group, the database ends up as it does when each is written and
//! committed alone, and every caller hears what its own write did.
//!
//! Needs `WAMETER_TEST_POSTGRES` (scripts/postgres-for-tests.sh); skipped
//! with a note locally without it, a failure in CI.

use proptest::prelude::*;
use wameter_core::event::{
    DeliveryStatus, Event, EventKind, InboundKind, Origin, StatusDetail, UserId,
};
use wameter_store::{Batch, DatabaseUrl, InFlightRow, Store, StoreError, WebhookRecord, Written};

const BUSINESSES: [&str; 2] = ["111", "222"];
const USERS: [&str; 3] = ["+15550001", "+15550002", "+15550003"];

#[derive(Clone, Debug)]
enum Op {
    Inbound {
        pair: (usize, usize),
        at: i64,
    },
    /// `hold`: the send holds budget (a guarded send).
    Outbound {
        pair: (usize, usize),
        message: usize,
        at: i64,
        hold: bool,
    },
    /// `names`: the business it names.
    Status {
        message: usize,
        status: usize,
        at: i64,
        names: Option<usize>,
    },
}

fn pair() -> impl Strategy<Value = (usize, usize)> {
    (0..BUSINESSES.len(), 0..USERS.len())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (pair(), 0..40i64).prop_map(|(pair, at)| Op::Inbound { pair, at }),
        (pair(), 0..6usize, 0..40i64, any::<bool>()).prop_map(|(pair, message, at, hold)| {
            Op::Outbound {
                pair,
                message,
                at,
                hold,
            }
        }),
        (
            0..6usize,
            0..4usize,
            0..40i64,
            proptest::option::of(0..BUSINESSES.len())
        )
            .prop_map(|(message, status, at, names)| Op::Status {
                message,
                status,
                at,
                names
            }),
    ]
}

fn at(second: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_750_000_000 + second * 3_600).unwrap()
}

fn event(op: &Op) -> Event {
    let user = |i: usize| UserId::parse(USERS[i]).unwrap();
    let (kind, second) = match op {
        Op::Inbound { pair: (b, u), at } => (
            EventKind::Inbound {
                business: BUSINESSES[*b].into(),
                user: user(*u),
                id: None,
                entry_point: None,
                kind: InboundKind::Message,
            },
            at,
        ),
        Op::Outbound {
            pair: (b, u),
            message,
            at,
            ..
        } => (
            EventKind::Outbound {
                business: BUSINESSES[*b].into(),
                user: user(*u),
                id: format!("wamid.{message}").into(),
                template: None,
                messaging_account: None,
            },
            at,
        ),
        Op::Status {
            message,
            status,
            names,
            at,
        } => (
            EventKind::Status {
                id: format!("wamid.{message}").into(),
                status: [
                    DeliveryStatus::Sent,
                    DeliveryStatus::Delivered,
                    DeliveryStatus::Read,
                    DeliveryStatus::Failed,
                ][*status],
                error: None,
                detail: names.map(|b| {
                    Box::new(StatusDetail {
                        business: Some(BUSINESSES[b].into()),
                        recipient: None,
                        pricing: None,
                        conversation: None,
                        messaging_account: None,
                    })
                }),
            },
            at,
        ),
    };
    Event {
        at: at(*second),
        origin: Origin::default(),
        kind,
    }
}

/// One webhook's write: a body (so webhook ids are drawn too), its events,
/// and the budget its guarded sends hold.
fn batch(ops: &[Op], body: usize) -> Batch {
    let events: Vec<Event> = ops.iter().map(event).collect();
    let webhook = WebhookRecord::new(format!("body {body}").into_bytes(), at(0));
    let mut batch = Batch::new(Some(webhook), &events, &[]);
    for op in ops {
        if let Op::Outbound {
            pair: (b, _),
            message,
            at: second,
            hold: true,
        } = op
        {
            batch.in_flight.push(InFlightRow {
                message_id: format!("wamid.{message}"),
                business: BUSINESSES[*b].into(),
                waba: format!("WABA-{}", BUSINESSES[*b]),
                amount: "0.01".into(),
                sent_at_us: at(*second).as_microsecond(),
            });
        }
    }
    batch
}

/// What a write did, without the body id (drawn differently by design).
fn outcome(written: &Written) -> (u64, u64, u64, bool) {
    (
        written.accepted,
        written.duplicates,
        written.deliveries,
        written.webhook_id.is_some(),
    )
}

/// Every table a write changes, as comparable text.
async fn tables(url: &str) -> Vec<Vec<String>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut out = Vec::new();
    for sql in [
        "SELECT dedupe_key || ' ' || kind || ' ' || coalesce(business, '-') || ' ' || coalesce(user_id, '-') || ' ' || at_us || ' ' || line || ' ' || (SELECT body FROM webhook_bodies w WHERE w.id = e.webhook_id)::text FROM events e ORDER BY 1",
        "SELECT business || ' ' || user_id || ' ' || first_event_at_us || ' ' || last_event_at_us || ' ' || coalesce(last_inbound_at_us::text, '-') || ' ' || events FROM contacts ORDER BY 1",
        "SELECT DISTINCT business || ' ' || month FROM unsettled ORDER BY 1",
        "SELECT business || ' ' || message_id || ' ' || waba || ' ' || amount || ' ' || sent_at_us FROM in_flight ORDER BY 1",
        "SELECT body::text || ' ' || outcome FROM webhook_bodies ORDER BY 1",
        "SELECT (SELECT body FROM webhook_bodies w WHERE w.id = r.webhook_id)::text FROM relay_outbox r ORDER BY 1",
    ] {
        out.push(
            client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect(),
        );
    }
    out
}

async fn reset(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("TRUNCATE events, notices, contacts, unsettled, in_flight, relay_outbox, webhook_bodies RESTART IDENTITY CASCADE")
        .await
        .unwrap();
}

/// Two fresh databases on the test cluster, or `None` (skipped) without one.
fn databases(runtime: &tokio::runtime::Runtime, test: &str) -> Option<(String, String)> {
    let Ok(url) = std::env::var("WAMETER_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("WAMETER_TEST_ALL").is_none(),
            "scripts/test.sh must set WAMETER_TEST_POSTGRES"
        );
        eprintln!(
            "WAMETER_TEST_POSTGRES is not set: PostgreSQL group-commit test skipped (scripts/postgres-for-tests.sh starts one)"
        );
        return None;
    };
    let base = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(base, _)| base)
        .to_string();
    let names = [
        format!("wameter_{test}_grouped_{}", std::process::id()),
        format!("wameter_{test}_alone_{}", std::process::id()),
    ];
    runtime.block_on(async {
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for name in &names {
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .await
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        }
    });
    Some((
        format!("{base}/{}", names[0]),
        format!("{base}/{}", names[1]),
    ))
}

fn open(runtime: &tokio::runtime::Runtime, url: &str) -> Store {
    runtime
        .block_on(Store::open(&DatabaseUrl::parse(url).unwrap()))
        .unwrap()
}

#[test]
fn a_group_commits_what_one_write_at_a_time_does() {
    // One thread: nothing runs the writer task until every write of a case
    // is queued, so each case's writes are taken as one group.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some((grouped_url, alone_url)) = databases(&runtime, "group") else {
        return;
    };
    let (grouped, alone) = (open(&runtime, &grouped_url), open(&runtime, &alone_url));
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(writes in proptest::collection::vec(proptest::collection::vec(op(), 0..5), 1..12))| {
        runtime.block_on(async { reset(&grouped_url).await; reset(&alone_url).await });
        let batches: Vec<Batch> = writes.iter().enumerate().map(|(i, ops)| batch(ops, i)).collect();
        let queued: Vec<_> = batches.iter().cloned().map(|batch| grouped.queue(batch)).collect();
        let together: Vec<Written> = runtime.block_on(async {
            let mut out = Vec::new();
            for queued in queued {
                out.push(grouped.committed(queued).await.unwrap());
            }
            out
        });
        let one_by_one: Vec<Written> = batches.into_iter().map(|batch| runtime.block_on(alone.write(batch)).unwrap()).collect();
        prop_assert_eq!(together.iter().map(outcome).collect::<Vec<_>>(), one_by_one.iter().map(outcome).collect::<Vec<_>>());
        let (a, b) = runtime.block_on(async { (tables(&grouped_url).await, tables(&alone_url).await) });
        prop_assert_eq!(a, b);
    });
}

#[test]
fn a_write_the_database_refuses_fails_alone() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some((url, _)) = databases(&runtime, "refused") else {
        return;
    };
    let store = open(&runtime, &url);
    // PostgreSQL's text cannot hold U+0000; SQLite's can, so a business
    // carrying one is a write only PostgreSQL refuses.
    let poisoned = Event {
        at: at(1),
        origin: Origin::default(),
        kind: EventKind::Inbound {
            business: "11\u{0}1".into(),
            user: UserId::parse(USERS[0]).unwrap(),
            id: None,
            entry_point: None,
            kind: InboundKind::Message,
        },
    };
    let good = |i: i64| {
        batch(
            &[Op::Inbound {
                pair: (0, (i % 3) as usize),
                at: i,
            }],
            i as usize,
        )
    };
    let queued = [
        store.queue(good(1)),
        store.queue(Batch::new(None, &[poisoned], &[])),
        store.queue(good(2)),
    ];
    let answers: Vec<Result<Written, StoreError>> = runtime.block_on(async {
        let mut out = Vec::new();
        for queued in queued {
            out.push(store.committed(queued).await);
        }
        out
    });
    assert_eq!(
        answers[0].as_ref().map(|w| w.accepted).ok(),
        Some(1),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(answers[1], Err(StoreError::Write(_))),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        answers[2].as_ref().map(|w| w.accepted).ok(),
        Some(1),
        "{:?}",
        answers[2]
    );
    let events = runtime.block_on(tables(&url)).swap_remove(0);
    assert_eq!(events.len(), 2, "{events:?}");
}
