//! Exports (issue 24; docs/interfaces.md, "Exports"): every charge, call
//! and agent usage as one typed table, from `replay --format csv|parquet`
//! and from `serve`'s `/v1/charges?format=csv|parquet`, read back by the
//! tools analysts use — DuckDB and pandas (`scripts/analytics-for-tests.sh`)
//! — whose sums by currency must equal the replay's totals to the last
//! digit. A token scoped to one WABA downloads that WABA's rows only.

mod common;
#[path = "common/server.rs"]
mod server;

use std::path::Path;
use std::str::FromStr;

use rust_decimal::Decimal;
use server::*;

const ACCOUNTS: &str = r#"
[[business]]
phone_number_id = "100000000000001"
waba = "W-USD"
currency = "USD"
timezone = "America/Sao_Paulo"

[[business]]
phone_number_id = "200000000000002"
waba = "W-EUR"
currency = "EUR"
timezone = "Europe/Berlin"

[[client]]
name = "acme"
wabas = ["W-USD"]
[[client.markup]]
percent = "10"
fee = "0.001"
"#;

const EUR_TOKEN: &str = "token-of-the-euro-waba";

/// August 2026: Brazil marketing and utility templates from a USD and a
/// EUR business, a reply in the window, a business call to Kenya (USD
/// calling rates are built in) and Meta Business Agent tokens.
const LOG: &str = r#"{"type":"inbound","at":"2026-08-03T12:00:00Z","business":"100000000000001","user":"+5511999990001","id":"wamid.in1"}
{"type":"outbound","at":"2026-08-03T12:05:00Z","business":"100000000000001","user":"+5511999990001","id":"wamid.reply1"}
{"type":"status","at":"2026-08-03T12:05:02Z","id":"wamid.reply1","status":"delivered"}
{"type":"outbound","at":"2026-08-04T09:00:00Z","business":"100000000000001","user":"+5511999990001","id":"wamid.promo1","template":{"name":"promo","category":"marketing"}}
{"type":"status","at":"2026-08-04T09:00:03Z","id":"wamid.promo1","status":"delivered"}
{"type":"outbound","at":"2026-08-05T09:00:00Z","business":"100000000000001","user":"+5511999990002","id":"wamid.order1","template":{"name":"order","category":"utility"}}
{"type":"status","at":"2026-08-05T09:00:03Z","id":"wamid.order1","status":"read"}
{"type":"outbound","at":"2026-08-04T09:00:00Z","business":"200000000000002","user":"+5511999990003","id":"wamid.promo2","template":{"name":"promo","category":"marketing"}}
{"type":"status","at":"2026-08-04T09:00:03Z","id":"wamid.promo2","status":"delivered"}
{"type":"outbound","at":"2026-08-06T09:00:00Z","business":"200000000000002","user":"+5511999990004","id":"wamid.promo3","template":{"name":"promo","category":"marketing"}}
{"type":"status","at":"2026-08-06T09:00:03Z","id":"wamid.promo3","status":"delivered"}
{"type":"call","at":"2026-08-07T10:00:00Z","business":"100000000000001","user":"+254700000001","id":"wacid.k1","direction":"business_initiated","duration":56,"status":"completed"}
{"type":"agent_usage","at":"2026-08-08T12:00:00Z","business":"100000000000001","user":"+5511999990001","id":"wamid.agent1","tokens":21500}
"#;

fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let accounts = dir.join("accounts.toml");
    std::fs::write(&accounts, ACCOUNTS).unwrap();
    std::fs::write(
        dir.join("wameter.toml"),
        format!(
            "accounts = \"accounts.toml\"\n\n[[tokens]]\nname = \"euro\"\ntoken = \"{EUR_TOKEN}\"\nwabas = [\"W-EUR\"]\n"
        ),
    )
    .unwrap();
    let log = dir.join("traffic.ndjson");
    std::fs::write(&log, LOG).unwrap();
    (accounts, log)
}

fn run(args: &[&str]) -> std::process::Output {
    let output = common::wameter(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        common::stderr(&output)
    );
    output
}

/// The replay document's totals: currency → exact amount.
fn totals(document: &serde_json::Value) -> Vec<(String, Decimal)> {
    document["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["currency"].as_str().unwrap().to_string(),
                Decimal::from_str(t["amount"].as_str().unwrap())
                    .unwrap()
                    .normalize(),
            )
        })
        .collect()
}

/// Sums of a CSV export by currency, read in Rust: the oracle that does not
/// need Python.
fn csv_sums(csv: &str) -> Vec<(String, Decimal)> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (currency, amount) = (column("currency"), column("amount"));
    let mut sums = std::collections::BTreeMap::<String, Decimal>::new();
    for record in reader.records() {
        let record = record.unwrap();
        *sums.entry(record[currency].to_string()).or_default() +=
            Decimal::from_str(&record[amount]).unwrap();
    }
    sums.into_iter().map(|(c, a)| (c, a.normalize())).collect()
}

/// What DuckDB and pandas read from the files: per file and reader, the
/// sums by currency (exact decimals as text), the row count and the types.
const READ_BACK: &str = r#"
import json, sys
from decimal import Decimal
import duckdb, pandas as pd
out = {}
for path in sys.argv[1:]:
    source = f"read_csv('{path}', types={{'amount': 'DECIMAL(38,10)'}})" if path.endswith('.csv') else f"'{path}'"
    rows = duckdb.sql(f"select currency, sum(amount)::varchar, count(*) from {source} group by currency order by currency").fetchall()
    types = dict(duckdb.sql(f"select column_name, column_type from (describe select * from {source})").fetchall())
    kinds = sorted(r[0] for r in duckdb.sql(f"select distinct kind from {source}").fetchall())
    if path.endswith('.csv'):
        frame = pd.read_csv(path, dtype={'amount': str}, keep_default_na=False)
    else:
        frame = pd.read_parquet(path)
    pandas = {}
    for currency, amount in zip(frame['currency'], frame['amount']):
        pandas[currency] = pandas.get(currency, Decimal(0)) + Decimal(str(amount))
    out[path] = {
        "duckdb": {c: str(Decimal(s).normalize()) for c, s, _ in rows},
        "rows": sum(n for _, _, n in rows),
        "pandas": {c: str(a.normalize()) for c, a in pandas.items()},
        "pandas_rows": len(frame),
        "types": {k: types[k] for k in ("amount", "at", "local_date", "billable", "quantity")},
        "kinds": kinds,
    }
print(json.dumps(out), flush=True)
# Skip the interpreter's teardown: DuckDB's and Arrow's thread pools
# sometimes abort it ("terminate called without an active exception")
# when several of these run at once, after the answer is out.
import os
os._exit(0)
"#;

/// Runs a read-back script on `files` with the analytics Python
/// (`None`: skipped for want of it), and reads the JSON it prints.
fn python_json(script: &str, files: &[&Path]) -> Option<serde_json::Value> {
    let python = common::test_dependency(
        "WAMETER_TEST_ANALYTICS_PYTHON",
        "scripts/analytics-for-tests.sh",
        "the DuckDB and pandas export tests",
    )?;
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

fn read_back(files: &[&Path]) -> Option<serde_json::Value> {
    python_json(READ_BACK, files)
}

fn as_sums(value: &serde_json::Value) -> Vec<(String, Decimal)> {
    let mut sums: Vec<(String, Decimal)> = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(c, a)| (c.clone(), Decimal::from_str(a.as_str().unwrap()).unwrap()))
        .collect();
    sums.sort();
    sums
}

#[test]
fn replay_exports_read_back_by_duckdb_and_pandas_sum_to_the_totals() {
    let dir = common::fresh("exports", "replay");
    let (accounts, log) = setup(&dir);
    let (accounts, log) = (accounts.to_str().unwrap(), log.to_str().unwrap());
    let document = common::json(&run(&["replay", log, "--accounts", accounts, "--json"]));
    let expected = totals(&document);
    assert_eq!(expected.len(), 2, "USD and EUR: {document:#}");
    let items = document["charges"].as_array().unwrap().len()
        + document["calls"].as_array().unwrap().len()
        + document["agent_usage"].as_array().map_or(0, Vec::len);
    assert_eq!(items, 7, "5 messages, 1 call, 1 agent usage: {document:#}");

    let csv_file = dir.join("charges.csv");
    let parquet_file = dir.join("charges.parquet");
    run(&[
        "replay",
        log,
        "--accounts",
        accounts,
        "--format",
        "csv",
        "-o",
        csv_file.to_str().unwrap(),
    ]);
    run(&[
        "replay",
        log,
        "--accounts",
        accounts,
        "--format",
        "parquet",
        "-o",
        parquet_file.to_str().unwrap(),
    ]);
    // To standard output, CSV is the same bytes as the file.
    let csv = std::fs::read_to_string(&csv_file).unwrap();
    assert_eq!(
        common::stdout(&run(&[
            "replay",
            log,
            "--accounts",
            accounts,
            "--format",
            "csv"
        ])),
        csv
    );
    assert_eq!(
        csv.lines().count(),
        items + 1,
        "a header and a row each:\n{csv}"
    );
    assert!(
        csv.starts_with("kind,id,business,messaging_account,user,at,local_date,month,"),
        "{csv}"
    );
    assert_eq!(csv_sums(&csv), expected);
    let agent = csv.lines().find(|l| l.starts_with("agent_usage,")).unwrap();
    assert!(agent.contains(",21500,token,"), "{agent}");
    let call = csv.lines().find(|l| l.starts_with("call,")).unwrap();
    assert!(
        call.contains(",business_initiated,") && call.contains(",10,pulse,"),
        "{call}"
    );

    // `--json` and `--format` are one choice.
    let both = common::wameter(&["replay", log, "--json", "--format", "csv"]);
    assert_eq!(both.status.code(), Some(2), "{}", common::stderr(&both));

    let Some(read) = read_back(&[&csv_file, &parquet_file]) else {
        return;
    };
    for file in [&csv_file, &parquet_file] {
        let got = &read[file.to_str().unwrap()];
        assert_eq!(
            as_sums(&got["duckdb"]),
            expected,
            "DuckDB, {}: {got:#}",
            file.display()
        );
        assert_eq!(
            as_sums(&got["pandas"]),
            expected,
            "pandas, {}: {got:#}",
            file.display()
        );
        assert_eq!(got["rows"].as_u64(), Some(items as u64));
        assert_eq!(got["pandas_rows"].as_u64(), Some(items as u64));
        assert_eq!(
            got["kinds"],
            serde_json::json!(["agent_usage", "call", "message"])
        );
    }
    let types = &read[parquet_file.to_str().unwrap()]["types"];
    assert_eq!(
        types,
        &serde_json::json!({"amount": "DECIMAL(38,4)", "at": "TIMESTAMP WITH TIME ZONE", "local_date": "DATE", "billable": "BOOLEAN", "quantity": "BIGINT"}),
        "typed columns; the scale is the largest any amount has (0.0625)"
    );
}

#[test]
fn serve_exports_what_replay_exports() {
    let dir = fresh_dir("exports");
    serve_exports(&dir, sqlite_in(&dir));
}

#[test]
fn serve_exports_what_replay_exports_on_postgres() {
    let Some(database) = postgres_database("exports") else {
        return;
    };
    let dir = fresh_dir("exports-pg");
    serve_exports(&dir, database);
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

fn serve_exports(dir: &Path, database: String) {
    let (accounts, log) = setup(dir);
    let server = Server::start(Start {
        dir,
        database,
        extra: vec![],
    });
    let (status, body) = server.post_events(LOG, API_TOKEN);
    assert_eq!(status, 200, "{body}");
    let (accounts, log) = (accounts.to_str().unwrap(), log.to_str().unwrap());
    let replayed = common::stdout(&run(&[
        "replay",
        log,
        "--accounts",
        accounts,
        "--format",
        "csv",
    ]));

    let (status, by_query) = server.get("/v1/charges?format=csv", Some(API_TOKEN));
    assert_eq!(status, 200, "{by_query}");
    assert_eq!(
        sorted_lines(&by_query),
        sorted_lines(&replayed),
        "the same rows as replay"
    );
    let mut response = server
        .agent
        .get(&server.url("/v1/charges"))
        .header("Authorization", &format!("Bearer {API_TOKEN}"))
        .header("Accept", "text/csv")
        .call()
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        "text/csv; charset=utf-8"
    );
    assert_eq!(response.body_mut().read_to_string().unwrap(), by_query);

    let mut response = server
        .agent
        .get(&server.url("/v1/charges?format=parquet"))
        .header("Authorization", &format!("Bearer {API_TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let parquet = response
        .body_mut()
        .with_config()
        .limit(1 << 24)
        .read_to_vec()
        .unwrap();
    assert_eq!(&parquet[..4], b"PAR1");
    let parquet_file = dir.join("served.parquet");
    std::fs::write(&parquet_file, parquet).unwrap();

    let (status, body) = server.get("/v1/charges?format=xml", Some(API_TOKEN));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("\"bad_request\"") || body.contains("format"),
        "{body}"
    );
    let (status, body) = server.get("/v1/reports/costs?format=parquet", Some(API_TOKEN));
    assert_eq!(
        status, 400,
        "a cost report is not a table of charges: {body}"
    );

    // A scoped token downloads its WABA's rows only.
    let (status, euro) = server.get("/v1/charges?format=csv", Some(EUR_TOKEN));
    assert_eq!(status, 200, "{euro}");
    let rows: Vec<&str> = euro.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{euro}");
    assert!(
        rows.iter()
            .all(|r| r.contains(",200000000000002,") && r.contains(",EUR,")),
        "{euro}"
    );

    // The cost report as CSV: its JSON rows, in the same order.
    let report = server.get_json("/v1/reports/costs?group_by=month,category");
    let (status, costs) = server.get(
        "/v1/reports/costs?group_by=month,category&format=csv",
        Some(API_TOKEN),
    );
    assert_eq!(status, 200, "{costs}");
    let mut lines = costs.lines();
    assert_eq!(
        lines.next(),
        Some("month,category,currency,messages,billable_messages,calls,billable_calls,amount")
    );
    let from_json: Vec<String> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{},{},{},{},{},{},{},{}",
                r["month"].as_str().unwrap(),
                r["category"].as_str().unwrap(),
                r["currency"].as_str().unwrap(),
                r["messages"],
                r["billable_messages"],
                r["calls"].as_u64().unwrap_or(0),
                r["billable_calls"].as_u64().unwrap_or(0),
                r["amount"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(lines.map(String::from).collect::<Vec<_>>(), from_json);

    let Some(read) = read_back(&[&parquet_file]) else {
        return;
    };
    let document = common::json(&run(&["replay", log, "--accounts", accounts, "--json"]));
    assert_eq!(
        as_sums(&read[parquet_file.to_str().unwrap()]["duckdb"]),
        totals(&document)
    );
}

/// What DuckDB reads from a Parquet file: rows and column types.
const DESCRIBE: &str = r#"
import json, sys, os
import duckdb
path = sys.argv[1]
types = dict(duckdb.sql(f"select column_name, column_type from (describe select * from '{path}')").fetchall())
rows = duckdb.sql(f"select count(*) from '{path}'").fetchone()[0]
print(json.dumps({"rows": rows, "types": types}), flush=True)
os._exit(0)
"#;

fn describe(file: &Path) -> Option<serde_json::Value> {
    python_json(DESCRIBE, &[file])
}

/// `events`, `reconcile` and `invoice` take `--format csv|parquet` too:
/// the rows their other formats print, typed.
#[test]
fn events_reconcile_and_invoice_export_their_rows() {
    let dir = common::fresh("exports", "others");
    let (accounts, log) = setup(&dir);
    let (accounts, log) = (accounts.to_str().unwrap(), log.to_str().unwrap());

    // events: one row per canonical event, in the order the lines print.
    let lines = common::stdout(&run(&["events", log]));
    let csv = common::stdout(&run(&["events", log, "--format", "csv"]));
    assert_eq!(csv.lines().count(), lines.lines().count() + 1, "{csv}");
    let types: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let expected: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, expected);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("agent_usage,") && l.contains(",21500,")),
        "{csv}"
    );
    let events_file = dir.join("events.parquet");
    run(&[
        "events",
        log,
        "--format",
        "parquet",
        "-o",
        events_file.to_str().unwrap(),
    ]);

    // reconcile: Meta's verdicts against the engine's, one row per discrepancy.
    // (Meta's webhooks and the app's sends: a template Meta re-categorised.)
    let data = common::root().join("crates/cli/tests/data/meta");
    let (webhooks, sends) = (data.join("webhooks.ndjson"), data.join("sends.ndjson"));
    let (webhooks, sends) = (webhooks.to_str().unwrap(), sends.to_str().unwrap());
    let document = common::json(&run(&["reconcile", webhooks, sends, "--json"]));
    let discrepancies = document["discrepancies"].as_array().unwrap();
    assert!(
        !discrepancies.is_empty(),
        "the fixture has discrepancies: {document:#}"
    );
    let csv = common::stdout(&run(&["reconcile", webhooks, sends, "--format", "csv"]));
    let ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let expected: Vec<&str> = discrepancies
        .iter()
        .map(|d| d["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected, "{csv}");
    let reconcile_file = dir.join("reconcile.parquet");
    run(&[
        "reconcile",
        webhooks,
        sends,
        "--format",
        "parquet",
        "-o",
        reconcile_file.to_str().unwrap(),
    ]);

    // invoice: the CSV it always printed, and the same rows typed.
    let args = [
        "invoice",
        log,
        "--accounts",
        accounts,
        "--client",
        "acme",
        "--month",
        "2026-08",
    ];
    let csv = common::stdout(&run(&args));
    assert!(csv.starts_with("client,month,currency,category,market,messages,billable,meta_cost,markup,fees,client_cost\n"), "{csv}");
    let invoice_file = dir.join("invoice.parquet");
    let mut with_parquet = args.to_vec();
    with_parquet.extend(["--format", "parquet", "-o", invoice_file.to_str().unwrap()]);
    run(&with_parquet);

    let Some(events) = describe(&events_file) else {
        return;
    };
    assert_eq!(events["rows"].as_u64(), Some(lines.lines().count() as u64));
    assert_eq!(events["types"]["at"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(events["types"]["tokens"], "BIGINT");
    let reconcile = describe(&reconcile_file).unwrap();
    assert_eq!(reconcile["rows"].as_u64(), Some(discrepancies.len() as u64));
    assert!(
        reconcile["types"]["engine_amount"]
            .as_str()
            .unwrap()
            .starts_with("DECIMAL(38,")
    );
    let invoice = describe(&invoice_file).unwrap();
    assert_eq!(
        invoice["rows"].as_u64(),
        Some(csv.lines().count() as u64 - 1)
    );
    assert!(
        invoice["types"]["client_cost"]
            .as_str()
            .unwrap()
            .starts_with("DECIMAL(38,")
    );
    assert_eq!(invoice["types"]["messages"], "BIGINT");
}
