//! V6 (event keys scoped by business, issue 18) on a store written by the
//! previous version: `tests/data/v5-store.db` (see its README), opened by
//! this version on SQLite, and copied row for row into a V5 PostgreSQL
//! schema then migrated. Both must keep every event, give each the key
//! this version computes for it (so a redelivery is still a duplicate),
//! and give the sends in flight their business.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::record::{Batch, Written};
use crate::settle_tests::events;
use crate::{Store, StoreError};

/// Events the fixture holds: 16 from webhooks, 7 sends, 2 status lines.
const EVENTS: usize = 26;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v5-store.db")
}

/// (kind, business, dedupe key) of every event, by id.
type KeyRows = Vec<(String, Option<String>, String)>;

fn sqlite_keys(conn: &Connection) -> KeyRows {
    let mut statement = conn
        .prepare("SELECT kind, business, dedupe_key FROM events ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What V14 makes of a V6 key with a message, `{kind}/{business}/{wamid}{rest}`
/// (the fixture's wamids hold no `/`): the message first, lengths in bytes.
fn by_message(kind: &str, business: Option<&str>, v6: &str) -> String {
    let business = business.unwrap_or("");
    let after = v6.strip_prefix(&format!("{kind}/{business}/")).unwrap();
    let (id, rest) = after.split_at(after.find('/').unwrap_or(after.len()));
    format!(
        "{}:{id}/{kind}/{}:{business}{rest}",
        id.len(),
        business.len()
    )
}

/// What V6, then V14, must have made of the fixture's keys.
fn check_keys(before: &KeyRows, after: &KeyRows) {
    assert_eq!(before.len(), EVENTS, "the fixture");
    assert_eq!(after.len(), EVENTS, "no event lost or merged");
    for ((kind, _, old), (_, business, new)) in before.iter().zip(after) {
        let expected = match kind.as_str() {
            "status" => format!(
                "status/{}/{}",
                business.as_deref().unwrap_or(""),
                old.strip_prefix("status/").unwrap()
            ),
            "outbound" => format!(
                "outbound/{}/{}",
                business.as_deref().unwrap(),
                old.strip_prefix("outbound/").unwrap()
            ),
            _ => old.clone(),
        };
        assert_eq!(
            new,
            &by_message(kind, business.as_deref(), &expected),
            "{kind} {old}"
        );
    }
    // The status line that named its business but no recipient now says
    // whose it is; the one naming none still names none.
    let businesses: Vec<Option<&str>> = after
        .iter()
        .filter(|(kind, ..)| kind == "status")
        .map(|(_, b, _)| b.as_deref())
        .collect();
    assert_eq!(
        businesses.iter().filter(|b| b.is_none()).count(),
        1,
        "{businesses:?}"
    );
    assert!(
        after.iter().any(|(_, _, key)| key
            == "11:wamid.out-3/status/15:106540352242922/read/2026-02-10T13:30:00Z")
    );
    assert!(
        after
            .iter()
            .any(|(_, _, key)| key == "11:wamid.out-4/status/0:/read/2026-02-10T13:00:00Z")
    );
}

/// Writes every stored event again as this version reads it: all must be
/// duplicates of what the migration kept.
/// Writes `lines` again through `store`, on `runtime`: a PostgreSQL store's
/// writer task lives on the runtime that opened it.
fn rewritten(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    lines: Vec<String>,
) -> Result<Written, StoreError> {
    let events = events(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    runtime.block_on(store.write(Batch::new(None, &events, &[])))
}

fn sqlite_lines(conn: &Connection) -> Vec<String> {
    let mut statement = conn.prepare("SELECT line FROM events ORDER BY id").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn sqlite_v6_rewrites_the_previous_versions_keys_without_losing_an_event() {
    let scratch = tempfile::Builder::new()
        .prefix("wameter-store-v6-")
        .tempdir()
        .unwrap();
    let dir = scratch.path();
    let path = dir.join("wameter.db");
    std::fs::copy(fixture(), &path).unwrap();
    let before = sqlite_keys(&Connection::open(&path).unwrap());

    let store = Store::Sqlite(crate::sqlite::SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    check_keys(&before, &sqlite_keys(&conn));
    let flights: Vec<(String, String)> = conn
        .prepare("SELECT message_id, business FROM in_flight ORDER BY message_id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        flights,
        [
            ("wamid.lost".to_string(), String::new()),
            ("wamid.out-7".to_string(), "106540352242922".to_string())
        ]
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let written = rewritten(&runtime, &store, sqlite_lines(&conn)).unwrap();
    assert_eq!(
        (written.accepted, written.duplicates),
        (0, EVENTS as u64),
        "every stored event keeps the key this version gives it"
    );
    drop(store);
}

/// A runtime and a fresh database named after `test`, when a PostgreSQL
/// server is given to the tests.
fn fresh_postgres(test: &str) -> Option<(tokio::runtime::Runtime, String)> {
    let url = crate::test_postgres::server_url("migration")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(crate::test_postgres::fresh_database(
        &url,
        &format!("wameter_{test}_{}", std::process::id()),
    ));
    Some((runtime, url))
}

#[test]
fn postgres_v6_rewrites_the_previous_versions_keys_without_losing_an_event() {
    let Some((runtime, url)) = fresh_postgres("v6") else {
        return;
    };
    let sqlite = Connection::open(fixture()).unwrap();
    let before = sqlite_keys(&sqlite);

    // The previous version's schema, holding the previous version's rows.
    runtime.block_on(async {
        let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        crate::postgres::embedded::migrations::runner().set_target(refinery::Target::Version(5)).run_async(&mut client).await.unwrap();
        let mut bodies = sqlite.prepare("SELECT id, received_at_us, sha256, outcome, reason, body FROM webhook_bodies ORDER BY id").unwrap();
        type BodyRow = (i64, i64, String, String, Option<String>, Vec<u8>);
        let bodies: Vec<BodyRow> =
            bodies.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))).unwrap().map(Result::unwrap).collect();
        for (id, at, sha, outcome, reason, body) in &bodies {
            client
                .execute("INSERT INTO webhook_bodies (id, received_at_us, sha256, outcome, reason, body) VALUES ($1, $2, $3, $4, $5, $6)", &[id, at, sha, outcome, reason, body])
                .await
                .unwrap();
        }
        let mut events = sqlite.prepare("SELECT id, dedupe_key, kind, business, user_id, message_id, at_us, line, webhook_id FROM events ORDER BY id").unwrap();
        type EventRow = (i64, String, String, Option<String>, Option<String>, Option<String>, i64, String, Option<i64>);
        let events: Vec<EventRow> = events
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (id, key, kind, business, user, message, at, line, webhook) in &events {
            client
                .execute(
                    "INSERT INTO events (id, dedupe_key, kind, business, user_id, message_id, at_us, line, webhook_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[id, key, kind, business, user, message, at, line, webhook],
                )
                .await
                .unwrap();
        }
        client.batch_execute("SELECT setval('events_id_seq', (SELECT max(id) FROM events)); SELECT setval('webhook_bodies_id_seq', (SELECT max(id) FROM webhook_bodies))").await.unwrap();
        let mut flights = sqlite.prepare("SELECT message_id, waba, amount, sent_at_us FROM in_flight").unwrap();
        let flights: Vec<(String, String, String, i64)> = flights.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect();
        for (message, waba, amount, at) in &flights {
            client.execute("INSERT INTO in_flight (message_id, waba, amount, sent_at_us) VALUES ($1, $2, $3, $4)", &[message, waba, amount, at]).await.unwrap();
        }
    });

    let store = Store::Postgres(
        runtime
            .block_on(crate::postgres::PostgresStore::open(&url))
            .unwrap(),
    );
    let (after, lines, flights) = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT kind, business, dedupe_key, line FROM events ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        let after: KeyRows = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let lines: Vec<String> = rows.iter().map(|r| r.get(3)).collect();
        let flights: Vec<(String, String)> = client
            .query(
                "SELECT message_id, business FROM in_flight ORDER BY message_id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        (after, lines, flights)
    });
    check_keys(&before, &after);
    assert_eq!(
        flights,
        [
            ("wamid.lost".to_string(), String::new()),
            ("wamid.out-7".to_string(), "106540352242922".to_string())
        ]
    );
    let written = rewritten(&runtime, &store, lines).unwrap();
    assert_eq!(
        (written.accepted, written.duplicates),
        (0, EVENTS as u64),
        "every stored event keeps the key this version gives it"
    );
}

/// Events of every kind with a message, and ids and businesses that hold
/// what the keys use as punctuation (`/`, `:`, digits) and more than one
/// byte a character: the keys' lengths are bytes on both sides.
const V13_LINES: [&str; 9] = [
    r#"{"type":"inbound","at":"2026-02-10T10:00:00Z","business":"B/1:2","user":"+5511999990000","id":"wamid.é/1:0x"}"#,
    r#"{"type":"inbound","at":"2026-02-10T10:00:01Z","business":"B/1:2","user":"+5511999990000"}"#,
    r#"{"type":"outbound","at":"2026-02-10T10:01:00Z","business":"B/1:2","user":"+5511999990000","id":"12:wamid/3"}"#,
    r#"{"type":"status","at":"2026-02-10T10:01:02Z","business":"B/1:2","id":"12:wamid/3","status":"delivered"}"#,
    r#"{"type":"status","at":"2026-02-10T10:01:03Z","id":"12:wamid/3","status":"read"}"#,
    r#"{"type":"outbound","at":"2026-02-10T10:02:00Z","business":"ÿ","user":"+5511999990000","id":"1"}"#,
    r#"{"type":"status","at":"2026-02-10T10:02:01Z","business":"ÿ","id":"1","status":"delivered"}"#,
    r#"{"type":"call","at":"2026-02-10T10:03:00Z","business":"B/1:2","user":"+5511999990000","id":"wacid.é/1","direction":"user_initiated","duration":12}"#,
    r#"{"type":"agent_usage","at":"2026-02-10T10:04:00Z","business":"B/1:2","user":"+5511999990000","id":"agent/1","tokens":100}"#,
];

/// The key V13 gave an event, from the key this version gives it:
/// `{kind}/{business}/{id}{rest}` for a message's events, else the same.
fn v13_key(key: &str) -> String {
    let Some((id_bytes, after)) = key
        .split_once(':')
        .filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
    else {
        return key.to_string();
    };
    let (id, after) = after.split_at(id_bytes.parse().unwrap());
    let (kind, after) = after[1..].split_once('/').unwrap();
    let (business_bytes, after) = after.split_once(':').unwrap();
    let (business, rest) = after.split_at(business_bytes.parse().unwrap());
    format!("{kind}/{business}/{id}{rest}")
}

fn v13_events() -> Vec<wameter_core::event::Event> {
    events(&V13_LINES)
}

/// What the store must answer after V14 about the events of `V13_LINES`:
/// every key is this version's, so a redelivery is a duplicate, and each
/// message's halves and senders are found by the new keys.
fn check_v14(runtime: &tokio::runtime::Runtime, store: &Store, keys: Vec<String>) {
    let records: Vec<_> = v13_events()
        .iter()
        .map(crate::record::EventRecord::new)
        .collect();
    let expected: Vec<String> = records.iter().map(|r| r.dedupe_key.clone()).collect();
    assert_eq!(keys, expected);
    assert!(
        expected
            .iter()
            .any(|key| key.starts_with("10:12:wamid/3/status/0:/read/")),
        "{expected:?}"
    );
    let senders = runtime
        .block_on(store.message_senders(vec!["12:wamid/3".into(), "1".into(), "12".into()]))
        .unwrap();
    assert_eq!(
        senders
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            ("1".to_string(), "ÿ".to_string()),
            ("12:wamid/3".to_string(), "B/1:2".to_string())
        ]
        .into_iter()
        .collect()
    );
    // A span holding the statuses only brings their send along.
    let at = |line: usize| crate::record::EventRecord::new(&v13_events()[line]).at_us;
    let events = runtime
        .block_on(store.events(crate::EventScope::Businesses {
            businesses: None,
            since_us: at(3),
            until_us: at(5),
            from_id: 0,
        }))
        .unwrap();
    let lines: Vec<&str> = events.iter().map(|e| &*e.line).collect();
    let expected: Vec<String> = v13_events()[2..5]
        .iter()
        .map(|e| crate::record::EventRecord::new(e).line)
        .collect();
    assert_eq!(lines, expected, "the send of statuses in the span");
    let written = runtime
        .block_on(store.write(Batch::new(None, &v13_events(), &[])))
        .unwrap();
    assert_eq!(
        (written.accepted, written.duplicates),
        (0, V13_LINES.len() as u64),
        "every stored event keeps the key this version gives it"
    );
}

#[test]
fn sqlite_v14_puts_the_message_first_in_every_key() {
    let scratch = tempfile::Builder::new()
        .prefix("wameter-store-v14-")
        .tempdir()
        .unwrap();
    let dir = scratch.path();
    let path = dir.join("wameter.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        crate::sqlite::embedded::migrations::runner()
            .set_target(refinery::Target::Version(13))
            .run(&mut conn)
            .unwrap();
        let mut insert = conn
            .prepare("INSERT INTO events (dedupe_key, kind, business, user_id, message_id, at_us, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .unwrap();
        for record in v13_events().iter().map(crate::record::EventRecord::new) {
            insert
                .execute(rusqlite::params![
                    v13_key(&record.dedupe_key),
                    record.kind,
                    record.business,
                    record.user,
                    record.message_id,
                    record.at_us,
                    record.line
                ])
                .unwrap();
        }
    }
    let store = Store::Sqlite(crate::sqlite::SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let keys: Vec<String> = conn
        .prepare("SELECT dedupe_key FROM events ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    check_v14(&runtime, &store, keys);
    // SQLite text may hold a NUL, where its `length` stops and
    // `octet_length` does not: a message whose id holds one is still
    // found by its key.
    let pair = [
        r#"{"type":"outbound","at":"2026-03-01T10:00:00Z","business":"B","user":"+5511999990000","id":"a\u0000b"}"#,
        r#"{"type":"status","at":"2026-03-01T10:00:02Z","business":"B","id":"a\u0000b","status":"delivered"}"#,
    ];
    let events = events(&pair);
    runtime
        .block_on(store.write(Batch::new(None, &events, &[])))
        .unwrap();
    let status_at = crate::record::EventRecord::new(&events[1]).at_us;
    let found = runtime
        .block_on(store.events(crate::EventScope::Businesses {
            businesses: Some(vec!["B".into()]),
            since_us: status_at,
            until_us: status_at + 1,
            from_id: 0,
        }))
        .unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    drop(store);
}

#[test]
fn postgres_v14_puts_the_message_first_in_every_key() {
    let Some((runtime, url)) = fresh_postgres("v14") else {
        return;
    };
    runtime.block_on(async {
        let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        crate::postgres::embedded::migrations::runner()
            .set_target(refinery::Target::Version(13))
            .run_async(&mut client)
            .await
            .unwrap();
        for record in v13_events().iter().map(crate::record::EventRecord::new) {
            client
                .execute(
                    "INSERT INTO events (dedupe_key, kind, business, user_id, message_id, at_us, line) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&v13_key(&record.dedupe_key), &record.kind, &record.business, &record.user, &record.message_id, &record.at_us, &record.line],
                )
                .await
                .unwrap();
        }
    });
    let store = Store::Postgres(
        runtime
            .block_on(crate::postgres::PostgresStore::open(&url))
            .unwrap(),
    );
    let keys = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query("SELECT dedupe_key FROM events ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect::<Vec<String>>()
    });
    check_v14(&runtime, &store, keys);
}
