//! An incremental settle round ([`SettleJob::from_event_id`]) on both
//! backends: it reads the events stored from the given id, with the new
//! halves of older messages in scope, and writes exactly the changes it is
//! given (upserts by message, removals, the month's warnings), deleting its
//! marks.

use crate::record::Batch;
use crate::settled::{ChargeFacts, ChargeRow, ChargeSlice, SettleJob, Settled, WarningRow};
use crate::{DatabaseUrl, Store};
use wameter_meter::sums::{ChargeSum, ChargeSums, FactsRef};

/// The events of canonical lines (each must be one).
pub(crate) fn events(lines: &[&str]) -> Vec<wameter_core::event::Event> {
    lines
        .iter()
        .map(
            |line| match wameter_log::parse_line(line, Default::default()).unwrap() {
                wameter_log::Parsed::Event(event) => event,
                other => panic!("{line}: {other:?}"),
            },
        )
        .collect()
}

fn charge(id: &str, amount: &str) -> ChargeRow {
    ChargeRow {
        business: "B".into(),
        delivered_at_us: 0,
        message_id: id.into(),
        line: format!(r#"{{"message_id":"{id}","amount":"{amount}"}}"#),
        facts: ChargeFacts {
            kind: "message".into(),
            messaging_account: None,
            user: "+5511999990000".into(),
            local_date: "2025-07-10".into(),
            pricing_model: Some("PMP".into()),
            category: "utility".into(),
            pricing_type: Some("regular".into()),
            direction: None,
            billable: true,
            market: Some("Brazil".into()),
            currency: "USD".into(),
            amount: amount.into(),
            quantity: 1,
            tier: Some("0:250000".into()),
            ruleset: "pmp-2025-07".into(),
            rule: "utility-outside-csw".into(),
            template: Some("t".into()),
            opens_conversation: true,
            delivered_nanos: 999,
        },
    }
}

fn warning(n: i64) -> WarningRow {
    WarningRow {
        business: None,
        event_id: Some(n),
        code: "note".into(),
        message: format!("warning {n}"),
        count: 1,
    }
}

/// The ids of the marks left so far.
async fn mark_ids(store: &Store) -> Vec<i64> {
    let marks = store.unsettled(100).await.unwrap();
    marks.iter().map(|mark| mark.id).collect()
}

async fn round(store: &Store) {
    let first = [
        r#"{"type":"outbound","at":"2025-07-10T10:00:00Z","business":"B","user":"+5511999990000","id":"m1","template":{"name":"t","category":"utility"}}"#,
        r#"{"type":"status","at":"2025-07-10T10:00:05Z","business":"B","id":"m1","status":"delivered"}"#,
        r#"{"type":"outbound","at":"2025-07-10T11:00:00Z","business":"OTHER","user":"+5511999990000","id":"o1"}"#,
    ];
    store
        .write(Batch::new(None, &events(&first), &[]))
        .await
        .unwrap();
    let job = |marks: Vec<i64>, from_event_id: Option<i64>| SettleJob {
        portfolio: "P".into(),
        month: "2025-07".into(),
        businesses: vec!["B".into()],
        since_us: 0,
        until_us: i64::MAX,
        marks,
        from_event_id,
    };
    let marks = mark_ids(store).await;
    store
        .settle(job(marks, None), |rows| {
            assert_eq!(rows.len(), 2, "B's events only: {rows:?}");
            Settled {
                charges: vec![charge("m1", "0.01"), charge("gone", "0.02")],
                warnings: vec![warning(1), warning(3)],
                removed: vec![],
                warnings_removed: vec![],
            }
        })
        .await
        .unwrap();
    let last = store
        .events_after(0, 100, None)
        .await
        .unwrap()
        .last()
        .unwrap()
        .id;

    let second = [
        // A status naming no business, of a message stored a round before.
        r#"{"type":"status","at":"2025-07-10T10:00:03Z","id":"m1","status":"delivered"}"#,
        r#"{"type":"outbound","at":"2025-07-11T10:00:00Z","business":"B","user":"+5511999990000","id":"m2"}"#,
        r#"{"type":"status","at":"2025-07-11T10:00:05Z","business":"B","id":"m2","status":"delivered"}"#,
        r#"{"type":"status","at":"2025-07-11T11:00:05Z","business":"OTHER","id":"o1","status":"delivered"}"#,
    ];
    store
        .write(Batch::new(None, &events(&second), &[]))
        .await
        .unwrap();
    let marks = store.unsettled(100).await.unwrap();
    assert!(!marks.is_empty());
    let from = last + 1;
    let mut wanted: Vec<String> = events(&second[..3])
        .iter()
        .map(wameter_log::event_line)
        .collect();
    wanted.sort();
    store
        .settle(
            job(marks.iter().map(|mark| mark.id).collect(), Some(from)),
            move |rows| {
                let mut lines: Vec<String> = rows.iter().map(|row| row.line.to_string()).collect();
                lines.sort();
                assert_eq!(
                    lines, wanted,
                    "the new events of B, and the new status of B's older message"
                );
                Settled {
                    charges: vec![charge("m1", "0.015"), charge("m2", "0.03")],
                    warnings: vec![warning(2)],
                    removed: vec![("B".into(), "gone".into())],
                    warnings_removed: vec![warning(1)],
                }
            },
        )
        .await
        .unwrap();
    let slice = crate::settled::ChargeSlice {
        businesses: None,
        from_us: i64::MIN,
        to_us: i64::MAX,
        months: None,
    };
    let mut kept: Vec<(String, String)> = store
        .charges(slice.clone())
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.message_id, row.line))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            ("m1".to_string(), charge("m1", "0.015").line),
            ("m2".to_string(), charge("m2", "0.03").line)
        ],
        "upserted by message, removed gone"
    );
    let mut facts: Vec<(String, ChargeFacts)> = store
        .charge_facts(slice.clone())
        .await
        .unwrap()
        .into_iter()
        .map(|kept| (kept.message_id, kept.facts))
        .collect();
    facts.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        facts,
        [
            ("m1".to_string(), charge("m1", "0.015").facts),
            ("m2".to_string(), charge("m2", "0.03").facts)
        ],
        "the typed columns read back as written"
    );
    assert_eq!(
        store.charge_months().await.unwrap(),
        [("P".to_string(), "2025-07".to_string())]
    );
    let mut of_month: Vec<(String, ChargeFacts)> = store
        .month_facts("P".into(), "2025-07".into())
        .await
        .unwrap()
        .into_iter()
        .map(|kept| (kept.message_id, kept.facts))
        .collect();
    of_month.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(of_month, facts, "one month's typed columns");
    assert!(
        store
            .month_facts("P".into(), "2025-08".into())
            .await
            .unwrap()
            .is_empty()
    );
    let mut warnings: Vec<Option<i64>> = store
        .charge_warnings(slice)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.event_id)
        .collect();
    warnings.sort();
    assert_eq!(
        warnings,
        [Some(2), Some(3)],
        "warnings added and removed, the others kept"
    );
    assert!(
        store.unsettled(100).await.unwrap().is_empty(),
        "the round's marks deleted"
    );
}

/// Notices read back by WABA and date: a scoped read leaves out other
/// WABAs' notices and those of no WABA.
async fn notices(store: &Store) {
    let lines = [
        r#"{"type":"template_category_update","at":"2026-12-01T10:00:00Z","waba":"W1","template_name":"order_update","previous_category":"utility","new_category":"marketing"}"#,
        r#"{"type":"template_category_update","at":"2026-12-02T10:00:00Z","waba":"W2","template_name":"promo","new_category":"utility"}"#,
        r#"{"type":"template_category_update","at":"2026-12-03T10:00:00Z","template_name":"nobody","new_category":"utility"}"#,
        r#"{"type":"template_category_update","at":"2027-01-01T10:00:00Z","waba":"W1","template_name":"later","new_category":"utility"}"#,
    ];
    let parsed: Vec<wameter_core::notice::Notice> = lines
        .iter()
        .map(
            |line| match wameter_log::parse_line(line, Default::default()).unwrap() {
                wameter_log::Parsed::Notice(notice) => *notice,
                other => panic!("{line}: {other:?}"),
            },
        )
        .collect();
    store.write(Batch::new(None, &[], &parsed)).await.unwrap();
    let until = jiff::Timestamp::from_second(1_798_761_600).unwrap(); // 2027-01-01
    let names = |read: Vec<String>| -> Vec<String> {
        read.iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["template_name"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let all = store
        .notices(None, i64::MIN, until.as_microsecond())
        .await
        .unwrap();
    assert_eq!(names(all), ["order_update", "promo", "nobody"]);
    let scoped = store
        .notices(Some(vec!["W1".into()]), i64::MIN, i64::MAX)
        .await
        .unwrap();
    assert_eq!(names(scoped), ["order_update", "later"]);
}

/// Runs `test` on a fresh SQLite store.
fn on_sqlite<F: std::future::Future<Output = ()>>(name: &str, test: impl FnOnce(Store) -> F) {
    let scratch = tempfile::Builder::new()
        .prefix(&format!("wameter-store-{name}-"))
        .tempdir()
        .unwrap();
    let dir = scratch.path();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(
            &DatabaseUrl::parse(&format!("sqlite://{}", dir.join("store.db").display())).unwrap(),
        )
        .await
        .unwrap();
        test(store).await;
    });
}

/// Runs `test` on a fresh PostgreSQL database (skipped, with a note,
/// without one outside CI).
fn on_postgres<F: std::future::Future<Output = ()>>(name: &str, test: impl FnOnce(Store) -> F) {
    let Some(url) = crate::test_postgres::server_url(name) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let database = crate::test_postgres::fresh_database(
            &url,
            &format!("wameter_{name}_{}", std::process::id()),
        )
        .await;
        let store = Store::open(&DatabaseUrl::parse(&database).unwrap())
            .await
            .unwrap();
        test(store).await;
    });
}

#[test]
fn sqlite_incremental_round() {
    on_sqlite("round", |store| async move { round(&store).await });
}

#[test]
fn postgres_incremental_round() {
    on_postgres("round", |store| async move { round(&store).await });
}

#[test]
fn sqlite_notices_read_back() {
    on_sqlite("notices", |store| async move { notices(&store).await });
}

#[test]
fn postgres_notices_read_back() {
    on_postgres("notices", |store| async move { notices(&store).await });
}

/// The business numbers with contacts: each once, in order, however many
/// users each has (read one seek per number, not one row per contact).
async fn businesses(store: &Store) {
    let mut lines = Vec::new();
    for (n, business) in ["B2", "B1", "B10", "B2", "B1", "B2"].iter().enumerate() {
        lines.push(format!(
            r#"{{"type":"inbound","at":"2025-07-10T10:00:{n:02}Z","business":"{business}","user":"+55119999900{n:02}"}}"#
        ));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    store
        .write(Batch::new(None, &events(&lines), &[]))
        .await
        .unwrap();
    assert_eq!(store.businesses().await.unwrap(), ["B1", "B10", "B2"]);
}

#[test]
fn sqlite_businesses_read_back() {
    on_sqlite(
        "businesses",
        |store| async move { businesses(&store).await },
    );
}

#[test]
fn postgres_businesses_read_back() {
    on_postgres(
        "businesses",
        |store| async move { businesses(&store).await },
    );
}

/// `charge_sums` reads each kept row in place and sums it as
/// [`ChargeSums`](wameter_meter::sums::ChargeSums) sums the rows
/// `charge_facts` reads whole: same groups, counts, exact totals, and the
/// same rows named unreadable; rows `keep` refuses are neither counted nor
/// named.
async fn sums(store: &Store) {
    let line = r#"{"type":"outbound","at":"2025-07-10T10:00:00Z","business":"B","user":"+5511999990000","id":"m0"}"#;
    store
        .write(Batch::new(None, &events(&[line]), &[]))
        .await
        .unwrap();
    let marks = mark_ids(store).await;
    let mut charges = vec![
        charge("m1", "0.0068"),
        charge("m2", "0.0068"),
        charge("m3", "0.1"),
        charge("bad", "not money"),
        charge("hidden", "5"),
        charge("hidden-bad", "?"),
    ];
    charges[1].facts.billable = false;
    charges[2].facts.messaging_account = Some("W2".into());
    charges[2].facts.category = "marketing".into();
    for hidden in &mut charges[4..] {
        hidden.business = "HIDDEN".into();
    }
    let settled = Settled {
        charges,
        warnings: vec![],
        removed: vec![],
        warnings_removed: vec![],
    };
    let job = SettleJob {
        portfolio: "P".into(),
        month: "2025-07".into(),
        businesses: vec!["B".into(), "HIDDEN".into()],
        since_us: 0,
        until_us: i64::MAX,
        marks,
        from_event_id: None,
    };
    store.settle(job, move |_| settled).await.unwrap();
    let slice = ChargeSlice {
        businesses: None,
        from_us: i64::MIN,
        to_us: i64::MAX,
        months: None,
    };
    let keep = |business: &str, _: Option<&str>| business != "HIDDEN";
    let (mut summed, unreadable) = store.charge_sums(slice.clone(), keep).await.unwrap();
    let mut expected = ChargeSums::default();
    for kept in store.charge_facts(slice).await.unwrap() {
        if keep(&kept.business, kept.facts.messaging_account.as_deref()) {
            expected.add(&FactsRef::of(&kept));
        }
    }
    let (mut expected, expected_unreadable) = expected.finish();
    let order = |sums: &mut Vec<ChargeSum>| {
        sums.sort_by(|a, b| {
            (&a.category, a.billable, &a.messaging_account).cmp(&(
                &b.category,
                b.billable,
                &b.messaging_account,
            ))
        })
    };
    order(&mut summed);
    order(&mut expected);
    assert_eq!(summed, expected);
    assert_eq!(unreadable, expected_unreadable);
    assert_eq!(
        summed.iter().map(|sum| sum.count).collect::<Vec<_>>(),
        [1, 1, 1],
        "free m2, billable m1, m3 of W2: {summed:?}"
    );
    assert_eq!(unreadable, ["bad: kept amount \"not money\" does not read"]);
}

#[test]
fn sqlite_sums_read_in_place() {
    on_sqlite("sums", |store| async move { sums(&store).await });
}

#[test]
fn postgres_sums_read_in_place() {
    on_postgres("sums", |store| async move { sums(&store).await });
}
