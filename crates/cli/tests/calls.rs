//! Calling API charges through the real binary (issue 23; docs/rules.md
//! §13): Meta's `calls` webhooks and canonical `call` lines in `replay`,
//! `explain` of a call, calling rates given, checked and imported, and
//! `serve` answering what `replay` answers for the same webhooks.

mod common;
#[path = "common/server.rs"]
mod server;

use server::{API_TOKEN, Server, Start, bodies, fresh_dir, postgres_database, shuffle, sqlite_in};

fn calls_log() -> std::path::PathBuf {
    common::root().join("crates/cli/tests/data/calls/meta-calls.ndjson")
}

fn replay(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["replay", "--json"];
    all.extend_from_slice(args);
    common::json(&common::wameter(&all))
}

/// NOTES.md §10 through Meta's webhooks: 120 s → 20 pulses → 0.0206 USD,
/// 56 s → 0.0103 (its redelivery counted once), a FAILED call with 20 s
/// billed and marked uncertain, a call never picked up and a user's call
/// free, Georgia after 2026-10-01 from the Rest of CEE card.
#[test]
fn meta_call_webhooks_are_priced_and_explained() {
    let log = calls_log();
    let document = replay(&[log.to_str().unwrap()]);
    let calls = document["calls"].as_array().unwrap();
    let summary: Vec<(String, bool, String)> = calls
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap().to_string(),
                c["billable"].as_bool().unwrap(),
                c["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("wacid.k120", true, "0.0206"),
        ("wacid.k56", true, "0.0103"),
        ("wacid.kfail", true, "0.00412"),
        ("wacid.kmiss", false, "0"),
        ("wacid.uic", false, "0"),
        ("wacid.ge61", true, "0.01045"),
    ];
    assert_eq!(
        summary,
        expected.map(|(id, billable, amount)| (id.to_string(), billable, amount.to_string()))
    );
    assert_eq!(calls[2]["uncertain"], true);
    assert_eq!(calls[5]["market"], "Rest of Central & Eastern Europe");
    assert_eq!(calls[5]["rates_partial"], true);
    // totals.amount is the sum over charges and calls (interfaces §4).
    assert_eq!(document["totals"]["amount"], "0.04547");
    assert_eq!(document["totals"]["billable_calls"], 4);
    insta::assert_json_snapshot!("meta_calls_document", document["calls"]);

    let output = common::wameter(&["explain", log.to_str().unwrap(), "--message", "wacid.kfail"]);
    let text = common::stdout(&output);
    assert!(output.status.success(), "{}", common::stderr(&output));
    for line in [
        "Call wacid.kfail",
        "connected        20 s → 4 pulse(s) of 6 s",
        "ended            failed (error 138021)",
        "billable         true (uncertain)",
        "amount           0.00412 USD",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
}

/// A business-initiated call to a market with no calling rate is an error
/// naming the flag; `--call-rates` supplies it; a wrong layout is refused
/// naming the right flag; `rates check` and `rates import` take calling
/// files, and an import is used by later commands.
#[test]
fn calling_rates_are_given_checked_and_imported() {
    let dir = common::fresh("calls", "rates");
    let log = dir.join("brazil.ndjson");
    std::fs::write(
        &log,
        "{\"type\":\"call\",\"at\":\"2026-08-03T10:00:00-03:00\",\"business\":\"B\",\"user\":\"+5511999990000\",\"id\":\"wacid.br\",\"direction\":\"business_initiated\",\"duration\":90}\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let refused = common::wameter(&["replay", log]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        common::stderr(&refused).contains("no calling rate for Brazil in USD on 2026-08-03"),
        "{}",
        common::stderr(&refused)
    );
    assert!(common::stderr(&refused).contains("--call-rates"));

    let rates = dir.join("brazil-calls.csv");
    std::fs::write(&rates, "effective,currency,market,minutes_from,minutes_to,rate_per_minute\n2026-07-01,USD,Brazil,0,50000,0.0200\n2026-07-01,USD,Brazil,50001,,0.0150\n").unwrap();
    let rates = rates.to_str().unwrap();
    let document = replay(&[log, "--call-rates", rates]);
    assert_eq!(
        document["calls"][0]["amount"], "0.03",
        "15 pulses × 0.0200 / 10"
    );
    assert_eq!(document["calls"][0]["rates_file"], rates);

    let wrong = common::wameter(&["replay", log, "--rates", rates]);
    assert!(
        common::stderr(&wrong).contains("is calling rates; pass it with --call-rates"),
        "{}",
        common::stderr(&wrong)
    );

    let bad = dir.join("bad-calls.csv");
    std::fs::write(&bad, "effective,currency,market,minutes_from,minutes_to,rate_per_minute\n2026-07-01,USD,Brazil,0,50000,0.02\n2026-07-01,USD,Brazil,40000,,x\n").unwrap();
    let checked = common::wameter(&["rates", "check", bad.to_str().unwrap()]);
    assert_eq!(checked.status.code(), Some(1));
    let text = common::stdout(&checked);
    assert!(text.contains("row 3, column `rate_per_minute`"), "{text}");

    let home = dir.join("home");
    let imported = common::wameter_home(&home, &["rates", "import", rates]);
    assert!(imported.status.success(), "{}", common::stderr(&imported));
    assert!(
        common::stdout(&imported).contains("imported calling rates as"),
        "{}",
        common::stdout(&imported)
    );
    let listed = common::stdout(&common::wameter_home(&home, &["rates", "list"]));
    assert!(
        listed.contains("calling rates: USD Brazil from 2026-07-01, 2 band(s)"),
        "{listed}"
    );
    assert!(
        listed.contains("calling rates: USD Rest of Africa from 2026-07-01, 6 band(s)")
            && listed.contains("partial"),
        "{listed}"
    );
    let output = common::wameter_home(&home, &["replay", "--json", log]);
    assert_eq!(common::json(&output)["calls"][0]["amount"], "0.03");

    // `rates coverage` lists calling rates beside the cards: the built-in
    // fragments (each a range until the market's next block) and the import.
    let coverage = common::wameter_home(
        &home,
        &[
            "rates",
            "coverage",
            "--currency",
            "USD",
            "--from",
            "2026-01-01",
            "--json",
        ],
    );
    assert!(coverage.status.success(), "{}", common::stderr(&coverage));
    let ranges: Vec<String> = common::json(&coverage)["calling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}",
                r["currency"], r["market"], r["from"], r["to"], r["bands"], r["status"]
            )
        })
        .collect();
    assert_eq!(
        ranges,
        [
            r#""USD" "Brazil" "2026-07-01" null 2 "full""#,
            r#""USD" "Rest of Africa" "2026-01-01" "2026-07-01" 1 "partial""#,
            r#""USD" "Rest of Africa" "2026-07-01" "2026-10-01" 6 "partial""#,
            r#""USD" "Rest of Africa" "2026-10-01" null 6 "partial""#,
            r#""USD" "Rest of Central & Eastern Europe" "2026-10-01" null 6 "partial""#,
        ],
        "INR India is another currency; ranges start at --from"
    );
}

/// `[rules]` decides the two points Meta leaves open (docs/rules.md §14).
#[test]
fn the_open_calling_questions_are_configurable() {
    let dir = common::fresh("calls", "rules");
    let accounts = dir.join("accounts.toml");
    std::fs::write(&accounts, "[rules]\nfailed_calls_free = true\n").unwrap();
    let document = replay(&[
        calls_log().to_str().unwrap(),
        "--accounts",
        accounts.to_str().unwrap(),
    ]);
    let failed = document["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call_id"] == "wacid.kfail")
        .unwrap()
        .clone();
    assert_eq!(
        (failed["billable"].as_bool(), failed["rule"].as_str()),
        (Some(false), Some("failed-not-billed"))
    );
}

#[test]
fn serve_answers_what_replay_answers_for_call_webhooks() {
    let dir = fresh_dir("calls");
    serve_matches_replay(&dir, sqlite_in(&dir));
}

#[test]
fn serve_answers_what_replay_answers_for_call_webhooks_on_postgres() {
    let Some(database) = postgres_database("calls") else {
        return;
    };
    let dir = fresh_dir("calls-pg");
    serve_matches_replay(&dir, database);
}

fn serve_matches_replay(dir: &std::path::Path, database: String) {
    let server = Server::start(Start {
        dir,
        database,
        extra: vec![],
    });
    let mut twice: Vec<String> = bodies(&calls_log())
        .iter()
        .flat_map(|b| [b.clone(), b.clone()])
        .collect();
    shuffle(&mut twice, 0xca11);
    for body in &twice {
        assert_eq!(server.post_signed(body.as_bytes()), 200, "{body}");
    }
    let served = server.get_json("/v1/charges");
    let replayed = replay(&[calls_log().to_str().unwrap()]);
    assert_eq!(served["calls"], replayed["calls"]);
    assert_eq!(served["totals"], replayed["totals"]);
    // The cost report has calls as a category of their own.
    let costs = server.get_json("/v1/reports/costs?group_by=category");
    let row = costs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "call")
        .unwrap()
        .clone();
    assert_eq!(
        (
            row["calls"].as_u64(),
            row["billable_calls"].as_u64(),
            row["amount"].as_str()
        ),
        (Some(6), Some(4), Some("0.04547"))
    );
    // By model and type: calls are `calling`, typed by their direction.
    let costs = server.get_json("/v1/reports/costs?group_by=category,pricing_model,type,market");
    let call_rows: Vec<&serde_json::Value> = costs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["category"] == "call")
        .collect();
    assert!(
        call_rows.iter().all(|r| r["pricing_model"] == "calling"
            && ["business_initiated", "user_initiated"].contains(&r["type"].as_str().unwrap())
            && !r["market"].as_str().unwrap().is_empty()
            && r["messages"] == 0),
        "{call_rows:?}"
    );
    assert_eq!(
        call_rows
            .iter()
            .map(|r| r["calls"].as_u64().unwrap())
            .sum::<u64>(),
        6
    );
    // A call of another month, posted later, re-prices nothing else.
    let (status, _) = server.post_events(
        "{\"type\":\"call\",\"at\":\"2026-08-20T10:00:00Z\",\"business\":\"106540352242922\",\"user\":\"+254700000009\",\"id\":\"wacid.late\",\"direction\":\"business_initiated\",\"duration\":6}\n",
        API_TOKEN,
    );
    assert_eq!(status, 200);
    let served = server.get_json("/v1/charges");
    assert_eq!(
        served["totals"]["amount"], "0.0465",
        "plus one pulse at 0.0103 / 10"
    );
    server.kill();
}

/// Meta Business Agent tokens (`agent_usage` lines): priced at USD 2 per
/// million from 2026-08-01, listed under `agent_usage`, in `totals`, kept
/// by `serve` (a category of its own in the cost report), and an
/// unpriceable currency is an error naming it.
#[test]
fn agent_usage_is_priced_listed_and_served() {
    let dir = common::fresh("calls", "agent");
    let log = dir.join("agent.ndjson");
    let lines = "{\"type\":\"agent_usage\",\"at\":\"2026-08-03T12:00:00Z\",\"business\":\"B\",\"user\":\"+5511999990000\",\"id\":\"wamid.a1\",\"tokens\":21500}\n\
                 {\"type\":\"agent_usage\",\"at\":\"2026-08-03T12:00:00Z\",\"business\":\"B\",\"user\":\"+5511999990000\",\"id\":\"wamid.a1\",\"tokens\":21500}\n\
                 {\"type\":\"agent_usage\",\"at\":\"2026-07-20T12:00:00Z\",\"business\":\"B\",\"user\":\"+5511999990000\",\"id\":\"wamid.a0\",\"tokens\":5000}\n";
    std::fs::write(&log, lines).unwrap();
    let document = replay(&[log.to_str().unwrap()]);
    let usages = document["agent_usage"].as_array().unwrap();
    assert_eq!(usages.len(), 2, "copies count once: {usages:?}");
    assert_eq!(
        (usages[1]["amount"].as_str(), usages[1]["rule"].as_str()),
        (Some("0.043"), Some("agent-tokens"))
    );
    assert_eq!(usages[0]["billable"], false, "before 2026-08-01");
    assert_eq!(document["totals"]["amount"], "0.043");

    let bad = dir.join("bad.ndjson");
    std::fs::write(&bad, "{\"type\":\"agent_usage\",\"at\":\"2026-08-03T12:00:00Z\",\"business\":\"B\",\"user\":\"+5511999990000\",\"id\":\"x\",\"tokens\":-1}\n").unwrap();
    let output = common::wameter(&["replay", bad.to_str().unwrap(), "--strict"]);
    assert!(
        common::stderr(&output)
            .contains("line 1: field `tokens`: `-1` is not a whole number of tokens"),
        "{}",
        common::stderr(&output)
    );

    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![],
    });
    let (status, _) = server.post_events(lines, API_TOKEN);
    assert_eq!(status, 200);
    let served = server.get_json("/v1/charges");
    assert_eq!(served["agent_usage"], document["agent_usage"]);
    assert_eq!(served["totals"], document["totals"]);
    let costs = server.get_json("/v1/reports/costs?group_by=category");
    let row = costs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "meta_business_agent")
        .unwrap()
        .clone();
    assert_eq!(row["amount"], "0.043");
    // By model and type: `tokens`, `regular` when billed, `free` before
    // 2026-08-01; no market, counted in neither messages nor calls.
    let costs = server.get_json("/v1/reports/costs?group_by=category,pricing_model,type,market");
    let agent: Vec<(String, String, String, String, u64, u64)> = costs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_string();
            (
                text("pricing_model"),
                text("type"),
                text("market"),
                text("amount"),
                r["messages"].as_u64().unwrap(),
                r["calls"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        agent,
        [
            ("tokens".into(), "free".into(), "".into(), "0".into(), 0, 0),
            (
                "tokens".into(),
                "regular".into(),
                "".into(),
                "0.043".into(),
                0,
                0
            )
        ]
    );
    server.kill();
}

/// `reconcile --analytics` with `call_analytics` (COUNT, COST,
/// AVERAGE_DURATION by country, direction, tier) and with
/// `pricing_analytics` MARKETING_LITE buckets against max-price costs.
#[test]
fn call_and_marketing_lite_analytics_reconcile() {
    let analytics = common::root().join("crates/cli/tests/data/calls/call_analytics.json");
    let output = common::wameter(&[
        "reconcile",
        calls_log().to_str().unwrap(),
        "--analytics",
        analytics.to_str().unwrap(),
        "--json",
    ]);
    let document = common::json(&output);
    assert_eq!(
        (
            document["analytics"]["buckets"].as_u64(),
            document["analytics"]["differences"].as_u64()
        ),
        (Some(2), Some(0)),
        "{}",
        document["analytics"]
    );
    // Meta saying 4 calls where the log has 3 is a difference.
    let dir = common::fresh("calls", "analytics");
    let differing = dir.join("differing.json");
    std::fs::write(
        &differing,
        std::fs::read_to_string(&analytics)
            .unwrap()
            .replace("\"count\":3", "\"count\":4"),
    )
    .unwrap();
    let document = common::json(&common::wameter(&[
        "reconcile",
        calls_log().to_str().unwrap(),
        "--analytics",
        differing.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(document["analytics"]["differences"], 1);

    // Two max-price deliveries (0.035 and 0.030 USD) against a MARKETING_LITE bucket.
    let log = dir.join("lite.ndjson");
    let status = |id: &str, cost: &str| {
        format!(
            "{{\"type\":\"status\",\"at\":\"2026-11-02T10:00:05Z\",\"id\":\"{id}\",\"status\":\"delivered\",\"business\":\"B\",\"user\":\"+5511999990000\",\"pricing\":{{\"billable\":true,\"pricing_model\":\"PMP\",\"type\":\"regular\",\"category\":\"marketing_lite\",\"cost\":{{\"amount\":{cost},\"currency\":\"USD\"}}}}}}\n"
        )
    };
    std::fs::write(
        &log,
        format!("{}{}", status("m1", "0.035"), status("m2", "0.030")),
    )
    .unwrap();
    let lite = dir.join("pricing_analytics.json");
    std::fs::write(&lite, r#"{"pricing_analytics":{"data":[{"data_points":[{"start":1793577600,"end":1793664000,"country":"BR","pricing_type":"REGULAR","pricing_category":"MARKETING_LITE","volume":2,"cost":0.065}]}]}}"#).unwrap();
    let document = common::json(&common::wameter(&[
        "reconcile",
        log.to_str().unwrap(),
        "--analytics",
        lite.to_str().unwrap(),
        "--json",
    ]));
    let line = &document["analytics"]["lines"][0];
    assert_eq!(
        (
            line["category"].as_str(),
            line["engine"]["cost"].as_str(),
            line["within_tolerance"].as_bool()
        ),
        (Some("marketing_lite"), Some("0.065"), Some(true)),
        "{}",
        document["analytics"]
    );
}

/// A calling campaign quoted before it is placed: 1,000 minutes to Rest of
/// Africa after 49,500 this month cross into the second band halfway
/// (500 one-minute calls at 0.0103, 500 at 0.0084).
#[test]
fn a_calling_campaign_is_quoted_by_band() {
    let output = common::wameter(&[
        "quote",
        "--call-minutes",
        "Rest of Africa=1000",
        "--date",
        "2026-11-02",
        "--month-to-date",
        "Rest of Africa=49500",
        "--json",
    ]);
    let document = common::json(&output);
    let bands: Vec<(String, u64, String)> = document["markets"][0]["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["tier"].as_str().unwrap().into(),
                b["calls"].as_u64().unwrap(),
                b["amount"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        bands,
        [
            ("0:50000".to_string(), 500, "5.15".to_string()),
            ("50001:250000".to_string(), 500, "4.2".to_string())
        ]
    );
    assert_eq!(document["total"], "9.35");
    let unknown = common::wameter(&[
        "quote",
        "--call-minutes",
        "Brazil=10",
        "--date",
        "2026-11-02",
    ]);
    assert!(
        common::stderr(&unknown).contains("no calling rate for Brazil"),
        "{}",
        common::stderr(&unknown)
    );
}
