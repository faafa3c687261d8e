//! The dashboard in a real browser (issue 24): Debian's Chromium driven by
//! Playwright (`scripts/browser-for-tests.sh`, `tests/dashboard/check.py`)
//! signs in to `wameter serve`, opens every page on a laptop and a phone
//! screen, checks the overview's numbers against `/v1/charges`, follows a
//! contact to its timeline, downloads CSVs, signs out, and signs in again
//! with a token scoped to one WABA that must never see another's numbers.
//! Screenshots are kept under `target/screenshots/`.
//!
//! The store holds Meta-shaped webhooks with a template Meta re-categorised
//! (`tests/data/meta/`), a send refused for a closed window (131047), a
//! second WABA billed in EUR, a call, agent tokens, and a user who wrote an
//! hour ago (so a window closes within the day).

mod common;
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use server::*;

const ACCOUNTS: &str = r#"
[[business]]
phone_number_id = "106540352242922"
waba = "102290129340398"
currency = "USD"
timezone = "America/Sao_Paulo"

[[business]]
phone_number_id = "200000000000002"
waba = "W-EUR"
currency = "EUR"
timezone = "Europe/Berlin"

[[budget]]
name = "usd-monthly"
waba = "102290129340398"
amount = "5.00"
"#;

const EUR_TOKEN: &str = "token-of-the-euro-waba";

fn log(now: jiff::Timestamp) -> String {
    let hour_ago = now - jiff::SignedDuration::from_hours(1);
    format!(
        r#"{{"type":"outbound","at":"2026-08-04T09:00:00Z","business":"200000000000002","user":"+5511999990003","id":"wamid.eur1","template":{{"name":"promo","category":"marketing"}}}}
{{"type":"status","at":"2026-08-04T09:00:03Z","id":"wamid.eur1","status":"delivered"}}
{{"type":"outbound","at":"2026-08-06T09:00:00Z","business":"200000000000002","user":"+5511999990004","id":"wamid.eur2","template":{{"name":"promo","category":"marketing"}}}}
{{"type":"status","at":"2026-08-06T09:00:03Z","id":"wamid.eur2","status":"delivered"}}
{{"type":"outbound","at":"2026-08-05T09:00:00Z","business":"106540352242922","user":"+5511999990009","id":"wamid.late"}}
{{"type":"status","at":"2026-08-05T09:00:01Z","id":"wamid.late","status":"failed","error":131047}}
{{"type":"call","at":"2026-08-07T10:00:00Z","business":"106540352242922","user":"+254700000001","id":"wacid.k1","direction":"business_initiated","duration":56,"status":"completed"}}
{{"type":"agent_usage","at":"2026-08-08T12:00:00Z","business":"106540352242922","user":"+5511999990001","id":"wamid.agent1","tokens":21500}}
{{"type":"inbound","at":"{hour_ago}","business":"106540352242922","user":"+5511977770000","id":"wamid.recent"}}
"#
    )
}

/// Totals by month and currency of a `/v1/charges?format=csv` answer.
fn totals(csv: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (month, currency, amount) = (at("month"), at("currency"), at("amount"));
    let mut sums: BTreeMap<String, BTreeMap<String, Decimal>> = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        *sums
            .entry(record[month].to_string())
            .or_default()
            .entry(record[currency].to_string())
            .or_default() += Decimal::from_str(&record[amount]).unwrap();
    }
    sums.into_iter()
        .map(|(m, by)| {
            (
                m,
                by.into_iter()
                    .map(|(c, a)| (c, a.normalize().to_string()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn the_dashboard_shows_what_the_api_answers_in_a_browser() {
    let Some(python) = common::test_dependency(
        "WAMETER_TEST_BROWSER_PYTHON",
        "scripts/browser-for-tests.sh",
        "the dashboard's browser test",
    ) else {
        return;
    };
    let dir = fresh_dir("dashboard");
    std::fs::write(dir.join("accounts.toml"), ACCOUNTS).unwrap();
    std::fs::write(
        dir.join("wameter.toml"),
        format!("accounts = \"accounts.toml\"\n\n[[tokens]]\nname = \"euro\"\ntoken = \"{EUR_TOKEN}\"\nwabas = [\"W-EUR\"]\n"),
    )
    .unwrap();
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![],
    });
    let data = common::root().join("crates/cli/tests/data/meta");
    for file in ["webhooks.ndjson", "sends.ndjson"] {
        let text = std::fs::read_to_string(data.join(file)).unwrap();
        let (status, answer) = server.post_events(&text, API_TOKEN);
        assert_eq!(
            (status, &answer["rejected"]),
            (200, &serde_json::json!([])),
            "{file}: {answer}"
        );
    }
    let (status, answer) = server.post_events(&log(jiff::Timestamp::now()), API_TOKEN);
    assert_eq!(
        (status, &answer["rejected"]),
        (200, &serde_json::json!([])),
        "{answer}"
    );

    let (status, all) = server.get("/v1/charges?format=csv", Some(API_TOKEN));
    assert_eq!(status, 200, "{all}");
    let (status, scoped) = server.get("/v1/charges?format=csv", Some(EUR_TOKEN));
    assert_eq!(status, 200, "{scoped}");
    let totals_all = totals(&all);
    assert_eq!(
        totals_all.keys().collect::<Vec<_>>(),
        ["2026-02", "2026-08"],
        "{all}"
    );
    let expected = serde_json::json!({
        "token": API_TOKEN,
        "scoped_token": EUR_TOKEN,
        "totals": totals_all,
        "scoped_totals": totals(&scoped),
        "scoped_waba": "W-EUR",
        "chart_month": "2026-02",
        "pages": {
            "/overview?month=2026-02": ["Templates that cost most", "order_update"],
            "/allowance": ["Free service allowance"],
            "/calls": ["Rest of Africa"],
            "/windows": ["+5511977770000", "customer service window"],
            "/reconciliation?month=2026-02": ["order_update", "re-categorised"],
        },
        "window_user": "+5511977770000",
        // The USD number, its WABA's users and its money.
        "hidden": ["106540352242922", "+5511977770000", "Rest of Africa", "order_update", "USD"],
        "hidden_contact": "/contact/106540352242922/%2B5511977770000",
    });
    let expected_file = dir.join("expected.json");
    std::fs::write(&expected_file, expected.to_string()).unwrap();
    let shots = common::root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let output = std::process::Command::new(python)
        .arg(common::root().join("crates/cli/tests/dashboard/check.py"))
        .args([
            &server.base,
            expected_file.to_str().unwrap(),
            shots.to_str().unwrap(),
        ])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for shot in [
        "overview",
        "overview-phone",
        "allowance",
        "calls",
        "windows",
        "reconciliation",
        "contact",
        "reconciliation-phone",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}

/// `replay --html FILE`: the overview as one file that needs nothing else
/// (no script, stylesheet, image or link to fetch), whose headline is the
/// replay's total for the month it shows.
#[test]
fn replay_html_is_one_self_contained_report() {
    let dir = common::fresh("dashboard", "html");
    let html = dir.join("report.html");
    let sample = common::root().join("examples/sample.ndjson");
    let accounts = common::root().join("examples/accounts.toml");
    let args = [
        "replay",
        sample.to_str().unwrap(),
        "--accounts",
        accounts.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--month",
        "2026-02",
        "--format",
        "csv",
    ];
    let output = common::wameter(&args);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let text = std::fs::read_to_string(&html).unwrap();
    let february: Decimal = totals(&common::stdout(&output))["2026-02"]["USD"]
        .parse()
        .unwrap();
    assert!(
        text.contains(&format!("<b>{} USD</b>", february.normalize())),
        "the headline is February's total {february}: {text}"
    );
    assert!(
        text.contains("<svg") && text.contains("Month by month"),
        "{text}"
    );
    for outside in ["<script", "<link", " src=", "href=\"http", "url("] {
        assert!(
            !text.contains(outside),
            "{outside} in a self-contained file"
        );
    }
    let bad = common::wameter(&[
        "replay",
        sample.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--month",
        "Feb",
    ]);
    assert!(
        common::stderr(&bad).contains("--month Feb: expected YYYY-MM"),
        "{}",
        common::stderr(&bad)
    );
}
