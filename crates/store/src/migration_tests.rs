//! V6 (event keys scoped by business, issue 18) on a store written by the
//! previous version: `tests/data/v5-store.db` (see its README), opened by
//! this version on SQLite, and copied row for row into a V5 PostgreSQL
//! schema then migrated. Both must keep every event, give each the key
//! this version computes for it (so a redelivery is still a duplicate),
//! and give the sends in flight their business.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::record::{Batch, Written};
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

/// What V6 must have made of the fixture's keys.
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
        assert_eq!(new, &expected, "{kind} {old}");
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
        after.iter().any(
            |(_, _, key)| key == "status/106540352242922/wamid.out-3/read/2026-02-10T13:30:00Z"
        )
    );
    assert!(
        after
            .iter()
            .any(|(_, _, key)| key == "status//wamid.out-4/read/2026-02-10T13:00:00Z")
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
    let events: Vec<_> = lines
        .iter()
        .map(
            |line| match wameter_log::parse_line(line, Default::default()).unwrap() {
                wameter_log::Parsed::Event(event) => event,
                other => panic!("{line}: {other:?}"),
            },
        )
        .collect();
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
    let dir = std::env::temp_dir().join(format!("wameter-store-v6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_v6_rewrites_the_previous_versions_keys_without_losing_an_event() {
    let Some(url) = crate::test_postgres::server_url("migration") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(crate::test_postgres::fresh_database(
        &url,
        &format!("wameter_v6_{}", std::process::id()),
    ));
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
