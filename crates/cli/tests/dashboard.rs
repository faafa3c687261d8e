//! The dashboard in a real browser (issue 24): Debian's Chromium driven by
//! Playwright (`scripts/browser-for-tests.sh`, `tests/dashboard/check.py`)
//! signs in to `wameter serve`, opens every page on a laptop and a phone
//! screen, checks the overview's numbers against `/v1/charges`, follows a
//! contact to its timeline, downloads CSVs, signs out, and signs in again
//! with a token scoped to one WABA that must never see another's numbers.
//! Screenshots are kept under `target/screenshots/`.
//!
//! The store is seeded as production fills it: an app sends through the
//! guard (`serve --upstream`) to the sandbox, whose signed webhooks come
//! back to `serve`. The traffic holds a template Meta re-categorises
//! (utility → marketing) between two sends, a free-form send the guard
//! refuses for a closed window and the same send made past the guard (the
//! sandbox fails it with 131047), a second WABA whose own token must see
//! only it (billed in USD too: no card prices EUR after 2026-10), a
//! business call to Kenya, and users who wrote two hours and an hour ago
//! (so windows close within the day).

mod common;
#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use sandbox::Sandbox;
use serde_json::{Value, json};
use server::*;

const USD_PHONE: &str = "106540352242922";
const USD_WABA: &str = "102290129340398";
const SHOP_PHONE: &str = "200000000000002";
const SHOP_WABA: &str = "W-SHOP";

const ACCOUNTS: &str = r#"
[[business]]
phone_number_id = "106540352242922"
waba = "102290129340398"
currency = "USD"
timezone = "America/Sao_Paulo"

[[business]]
phone_number_id = "200000000000002"
waba = "W-SHOP"
currency = "USD"
timezone = "Europe/Berlin"

[[budget]]
name = "usd-monthly"
waba = "102290129340398"
amount = "5.00"
"#;

const SHOP_TOKEN: &str = "token-of-the-shop-waba";

/// Users: Brazil unless named otherwise.
const REPLIED: &str = "+5511999990001";
const NEW_CUSTOMER: &str = "+5511999990002";
const AFTER_UPDATE: &str = "+5511999990003";
const WENT_QUIET: &str = "+5511999990004";
const RECENT: &str = "+5511977770000";
const KENYA: &str = "+254700000001";

/// A Graph API POST with the app's token: status and JSON body.
fn graph(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, ureq::http::HeaderMap, Value) {
    let mut response = agent
        .post(url)
        .header("Authorization", "Bearer app-token")
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .expect("answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.body_mut().read_to_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, headers, body)
}

fn template(to: &str, name: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "template",
        "template": {"name": name, "language": {"code": "en_US"}}})
}

fn text(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hello"}})
}

/// Fills a `serve` through the guard and the sandbox (see the module
/// docs); returns once every webhook the sandbox wrote is stored.
fn seed_through_the_sandbox(server: &Server, sandbox: &Sandbox) {
    let send = |phone: &str, body: Value| {
        graph(
            &server.agent,
            &server.url(&format!("/v23.0/{phone}/messages")),
            &body,
        )
    };
    let sent = |phone: &str, body: Value| -> String {
        let (status, headers, answer) = send(phone, body);
        assert_eq!(status, 200, "{answer}");
        let category = headers
            .get("x-wameter-category")
            .map(|v| v.to_str().unwrap().to_string());
        format!(
            "{}:{}",
            answer["messages"][0]["id"].as_str().unwrap(),
            category.unwrap_or_default()
        )
    };
    let inbound = |phone: &str, user: &str| {
        let (status, answer) = sandbox.post(
            "/_sandbox/inbound",
            &json!({"business": phone, "user": user, "text": "hello"}),
        );
        assert_eq!(status, 200, "{answer}");
    };
    for (waba, name, category) in [
        (USD_WABA, "order_update", "UTILITY"),
        (SHOP_WABA, "promo", "MARKETING"),
    ] {
        let (status, created) = sandbox.post(
            &format!("/v23.0/{waba}/message_templates"),
            &json!({"name": name, "language": "en_US", "category": category,
                "components": [{"type": "BODY", "text": "Your order is on its way."}]}),
        );
        assert_eq!(
            (status, &created["status"]),
            (200, &json!("APPROVED")),
            "{created}"
        );
    }

    // Three days ago one user writes and is never answered; two hours ago
    // (the guard reads windows by the wall clock) another writes.
    inbound(USD_PHONE, WENT_QUIET);
    advance_to(
        sandbox,
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2),
    );
    inbound(USD_PHONE, REPLIED);
    delivered(sandbox);
    sent(USD_PHONE, text(REPLIED));
    assert!(sent(USD_PHONE, template(REPLIED, "order_update")).ends_with(":utility"));
    assert!(sent(USD_PHONE, template(NEW_CUSTOMER, "order_update")).ends_with(":utility"));
    sandbox.advance(60);
    let (status, changed) = sandbox.post(
        "/_sandbox/templates/category",
        &json!({"waba": USD_WABA, "name": "order_update", "category": "MARKETING"}),
    );
    assert_eq!(status, 200, "{changed}");
    delivered(sandbox);
    // The guard forgot the template's category when Meta's update came.
    assert!(sent(USD_PHONE, template(AFTER_UPDATE, "order_update")).ends_with(":marketing"));
    for user in ["+5511999990005", "+5511999990006"] {
        assert!(sent(SHOP_PHONE, template(user, "promo")).ends_with(":marketing"));
    }
    // A business call to Kenya, answered after 5 s, 56 s long (calls go
    // straight to the sandbox: the guard guards messages).
    let calls = sandbox.url(&format!("/v23.0/{USD_PHONE}/calls"));
    let (status, _, placed) = graph(
        &sandbox.agent,
        &calls,
        &json!({"messaging_product": "whatsapp", "to": KENYA, "action": "connect",
            "session": {"sdp_type": "offer", "sdp": "v=0"}}),
    );
    assert_eq!(status, 200, "{placed}");
    let call = placed["calls"][0]["id"].as_str().unwrap().to_string();
    sandbox.advance(5);
    let (status, answered) = sandbox.post(&format!("/_sandbox/calls/{call}/answer"), &json!({}));
    assert_eq!(status, 200, "{answered}");
    sandbox.advance(56);
    let (status, _, ended) = graph(
        &sandbox.agent,
        &calls,
        &json!({"messaging_product": "whatsapp", "call_id": call, "action": "terminate"}),
    );
    assert_eq!(status, 200, "{ended}");

    // An hour before now, one more user writes.
    advance_to(
        sandbox,
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1),
    );
    inbound(USD_PHONE, RECENT);
    advance_to(sandbox, jiff::Timestamp::now());
    // The user who went quiet three days ago: the guard refuses a
    // free-form message with Meta's own error; sent past the guard, the
    // sandbox accepts it and fails it with 131047, as Meta does.
    let (status, _, refused) = send(USD_PHONE, text(WENT_QUIET));
    assert_eq!(
        (status, &refused["error"]["code"]),
        (400, &json!(131_047)),
        "{refused}"
    );
    let (status, accepted) = sandbox.text(WENT_QUIET, "hello");
    assert_eq!(status, 200, "{accepted}");
    sandbox.advance(5);
    delivered(sandbox);
}

/// Moves the sandbox's clock forward to `when`.
fn advance_to(sandbox: &Sandbox, when: jiff::Timestamp) {
    let clock: jiff::Timestamp = sandbox.get_json("/_sandbox/clock")["now"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    sandbox.advance((when.as_second() - clock.as_second()).max(0));
}

/// Waits until the sandbox has no status left to write and no webhook
/// left to deliver (`serve` answers a webhook only once it is stored).
fn delivered(sandbox: &Sandbox) {
    common::eventually("the sandbox's webhooks delivered", || {
        let summary = sandbox.get_json("/_sandbox");
        (summary["planned_statuses"] == 0
            && summary["webhooks"]["pending"] == 0
            && summary["webhooks"]["abandoned"] == 0)
            .then_some(())
    });
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
        format!("accounts = \"accounts.toml\"\n\n[[tokens]]\nname = \"shop\"\ntoken = \"{SHOP_TOKEN}\"\nwabas = [\"{SHOP_WABA}\"]\n"),
    )
    .unwrap();
    let accounts = dir.join("accounts.toml").display().to_string();
    let listen = common::free_port();
    let three_days_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72);
    let sandbox = Sandbox::start_signing(
        &dir,
        &[
            "--webhook-url",
            &format!("http://{listen}/webhook"),
            "--accounts",
            &accounts,
            "--clock-start",
            &three_days_ago.to_string(),
        ],
        server::SECRET,
    );
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![
            "--listen".into(),
            listen,
            "--upstream".into(),
            sandbox.base.clone(),
        ],
    });
    seed_through_the_sandbox(&server, &sandbox);

    // What the store holds: the re-categorised template charged at each
    // category, and the refused message failed with 131047.
    let charges = server.get_json("/v1/charges");
    let order_updates: Vec<(&str, &str)> = charges["charges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["template"] == "order_update")
        .map(|c| {
            (
                c["category"].as_str().unwrap(),
                &c["local_date"].as_str().unwrap()[..7],
            )
        })
        .collect();
    let categories: Vec<&str> = order_updates.iter().map(|(c, _)| *c).collect();
    assert_eq!(categories, ["utility", "utility", "marketing"], "{charges}");
    let chart_month = order_updates[0].1.to_string();
    let stored = server.all_events(API_TOKEN);
    assert!(
        stored
            .iter()
            .any(|line| line.contains("\"status\":\"failed\"") && line.contains("131047")),
        "{stored:?}"
    );

    let (status, all) = server.get("/v1/charges?format=csv", Some(API_TOKEN));
    assert_eq!(status, 200, "{all}");
    let (status, scoped) = server.get("/v1/charges?format=csv", Some(SHOP_TOKEN));
    assert_eq!(status, 200, "{scoped}");
    let totals_all = totals(&all);
    let totals_scoped = totals(&scoped);
    assert!(
        !totals_scoped.is_empty() && totals_scoped != totals_all,
        "the shop's charges are some of all: {scoped}\n{all}"
    );
    let expected = serde_json::json!({
        "token": API_TOKEN,
        "scoped_token": SHOP_TOKEN,
        "totals": totals_all,
        "scoped_totals": totals_scoped,
        "scoped_waba": SHOP_WABA,
        "chart_month": chart_month,
        "pages": {
            format!("/overview?month={chart_month}"): ["Templates that cost most", "order_update"],
            "/allowance".to_string(): ["Free service allowance"],
            "/calls".to_string(): ["Rest of Africa"],
            "/windows".to_string(): [RECENT, "customer service window"],
            format!("/reconciliation?month={chart_month}"): ["Meta's template category updates", "order_update", "marketing"],
            format!("/contact/{USD_PHONE}/%2B{}", &WENT_QUIET[1..]): ["131047"],
        },
        "window_user": RECENT,
        // The USD number, its WABA's users and its money.
        "hidden": [USD_PHONE, RECENT, "Rest of Africa", "order_update", USD_WABA],
        "hidden_contact": format!("/contact/{USD_PHONE}/%2B{}", &RECENT[1..]),
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

/// `(label, value)` of each figure of a dashboard page.
fn figures(page: &str) -> Vec<(String, String)> {
    page.split("<div class=\"figure\"><b>")
        .skip(1)
        .filter_map(|rest| {
            let (value, rest) = rest.split_once("</b><span>")?;
            let (label, _) = rest.split_once("</span>")?;
            Some((label.to_string(), value.to_string()))
        })
        .collect()
}

/// A dashboard page with the session cookie of the all-WABA token.
/// The reconciliation page's "compared with Meta's pricing" figure.
fn compared(page: &str) -> String {
    figures(page)
        .into_iter()
        .find(|(label, _)| label.starts_with("compared with Meta"))
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no comparison figure: {page}"))
}

fn page(server: &Server, path: &str) -> String {
    let mut response = server
        .agent
        .get(&server.url(path))
        .header("Cookie", &format!("wameter_token={API_TOKEN}"))
        .call()
        .expect("server answers");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.body_mut().read_to_string().unwrap()
}

/// `n` delivered marketing templates to Brazil in November 2026, each
/// with Meta's pricing on its status.
fn november(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                r#"{{"type":"outbound","at":"2026-11-{day:02}T12:00:00Z","business":"{USD_PHONE}","user":"+55119999{i:05}","id":"wamid.nov{i}","template":{{"name":"promo","category":"marketing"}}}}
{{"type":"status","at":"2026-11-{day:02}T12:00:03Z","business":"{USD_PHONE}","id":"wamid.nov{i}","status":"delivered","pricing":{{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}}}}
"#,
                day = 1 + i % 28
            )
        })
        .collect()
}

/// After new events are stored, the overview shows them at once (its rows
/// are read again from the months settled since), and the reconciliation
/// shows the last one computed, saying when, until the newer one is ready
/// (SQLite); on PostgreSQL every view is computed afresh. Neither keeps
/// showing old numbers.
#[test]
fn the_dashboard_follows_new_events() {
    let dir = fresh_dir("dashboard-follows");
    follows_new_events(&dir, sqlite_in(&dir), true);
}

#[test]
fn the_dashboard_follows_new_events_on_postgres() {
    let Some(database) = postgres_database("dashboard_follows") else {
        return;
    };
    follows_new_events(&fresh_dir("dashboard-follows-postgres"), database, false);
}

/// The background reconciler keeps the months reconciled without a view
/// asking (SQLite): after each write it reconciles the month again, and the
/// page then answers from what it kept — no view computes one
/// (`wameter_reconciliations_total{by="view"}` stays absent) — with the
/// new numbers. Fails if pages computed their own, or if the reconciler
/// stopped after its first round.
#[test]
fn the_reconciler_keeps_months_reconciled_without_a_view() {
    let dir = fresh_dir("dashboard-reconciler");
    std::fs::write(dir.join("accounts.toml"), ACCOUNTS).unwrap();
    std::fs::write(dir.join("wameter.toml"), "accounts = \"accounts.toml\"\n").unwrap();
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![],
    });
    let reconciled = |by: &str| -> u64 {
        let metrics = server.get("/metrics", None).1;
        let name = format!("wameter_reconciliations_total{{by=\"{by}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .map_or(0, |count| count.trim().parse().unwrap())
    };
    for (from, n, expected) in [(0, 3, "3"), (3, 2, "5")] {
        let before = reconciled("reconciler");
        let (status, answer) = server.post_events(&november(from, n), API_TOKEN);
        assert_eq!((status, &answer["rejected"]), (200, &json!([])), "{answer}");
        common::eventually("the reconciler's round after the write", || {
            (reconciled("reconciler") > before).then_some(())
        });
        let shown = page(&server, "/reconciliation?month=2026-11");
        assert_eq!(compared(&shown), expected, "{shown}");
        assert!(!shown.contains("Reconciled at"), "{shown}");
        assert_eq!(reconciled("view"), 0, "the page answered from the kept one");
    }
    // Every message agrees with Meta: the rounds after the writes answered
    // from the settler's kept state of the month, without a replay.
    let from_state = || -> u64 {
        let metrics = server.get("/metrics", None).1;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("wameter_reconciliations_from_kept_state_total "))
            .map_or(0, |count| count.trim().parse().unwrap())
    };
    let agreed = from_state();
    assert!(agreed >= 2, "{agreed}");
    // Meta prices one more message otherwise: that month is reconciled
    // from its events, and the page names the message and the cause.
    let odd = november(5, 1).replace("wamid.nov5", "wamid.odd").replacen(
        r#""type":"regular","category":"marketing""#,
        r#""type":"regular","category":"utility""#,
        1,
    );
    let before = reconciled("reconciler");
    let (status, answer) = server.post_events(&odd, API_TOKEN);
    assert_eq!((status, &answer["rejected"]), (200, &json!([])), "{answer}");
    common::eventually("the reconciler's round after the odd one", || {
        (reconciled("reconciler") > before).then_some(())
    });
    let shown = page(&server, "/reconciliation?month=2026-11");
    let shown_figures = figures(&shown);
    assert_eq!(compared(&shown), "6", "{shown}");
    assert!(
        shown_figures.contains(&("differ".to_string(), "1".to_string())),
        "{shown_figures:?}"
    );
    assert!(
        shown.contains("wamid.odd") && shown.contains("template re-categorised"),
        "{shown}"
    );
    assert_eq!(from_state(), agreed, "reconciled from the events");
}

fn follows_new_events(dir: &std::path::Path, database: String, sqlite: bool) {
    std::fs::write(dir.join("accounts.toml"), ACCOUNTS).unwrap();
    std::fs::write(dir.join("wameter.toml"), "accounts = \"accounts.toml\"\n").unwrap();
    let server = Server::start(Start {
        dir,
        database,
        extra: vec![],
    });
    let headline = |server: &Server| -> (String, String) {
        let (status, csv) = server.get("/v1/charges?format=csv", Some(API_TOKEN));
        assert_eq!(status, 200, "{csv}");
        let total = &totals(&csv)["2026-11"]["USD"];
        let shown = figures(&page(server, "/overview?month=2026-11"));
        (format!("{total} USD"), shown[0].1.clone())
    };

    let (status, answer) = server.post_events(&november(0, 3), API_TOKEN);
    assert_eq!((status, &answer["rejected"]), (200, &json!([])), "{answer}");
    let (total, shown) = headline(&server);
    assert_eq!(shown, total);
    let first = page(&server, "/reconciliation?month=2026-11");
    assert_eq!(compared(&first), "3");
    assert!(
        !first.contains("Reconciled at"),
        "the first view waits for it"
    );

    let (status, answer) = server.post_events(&november(3, 2), API_TOKEN);
    assert_eq!((status, &answer["rejected"]), (200, &json!([])), "{answer}");
    let (total_after, shown) = headline(&server);
    assert_ne!(total_after, total, "two more charges");
    assert_eq!(shown, total_after, "the overview shows them at once");
    let next = page(&server, "/reconciliation?month=2026-11");
    if sqlite {
        assert!(
            (compared(&next) == "3" && next.contains("Reconciled at"))
                || (compared(&next) == "5" && !next.contains("Reconciled at")),
            "the last one, saying when, or the new one: {next}"
        );
    } else {
        assert_eq!(compared(&next), "5", "computed afresh");
        assert!(!next.contains("Reconciled at"));
    }
    common::eventually("the newer reconciliation", || {
        let fresh = page(&server, "/reconciliation?month=2026-11");
        (compared(&fresh) == "5" && !fresh.contains("Reconciled at")).then_some(())
    });
}
