//! The guard (`wameter serve --upstream`) against the sandbox as upstream,
//! both real binaries over HTTP: the sandbox's webhooks go to the server,
//! as Meta's would, and sends go through the server's send path.

mod common;
#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sandbox::{App, PHONE, Sandbox, USER, WABA};
use serde_json::{Value, json};
use server::{Server, Start};

const USER2: &str = "+5511988880000";

fn fresh(name: &str) -> PathBuf {
    common::fresh("guard", name)
}

/// The business (São Paulo, USD), client `acme` with markups, and two
/// budgets: a soft one of 0.02 and a hard stop of 0.03 (Brazil utility is
/// 0.0068 USD: the fifth template would take it to 0.034).
fn accounts(dir: &Path) -> String {
    let path = dir.join("accounts.toml");
    std::fs::write(
        &path,
        format!(
            r#"[[business]]
phone_number_id = "{PHONE}"
waba = "{WABA}"
timezone = "America/Sao_Paulo"
currency = "USD"

[[client]]
name = "acme"
wabas = ["{WABA}"]
[[client.markup]]
categories = ["utility"]
percent = "20"
fee = "0.01"
[[client.markup]]
percent = "50"

[[budget]]
name = "acme-soft"
client = "acme"
amount = "0.02"

[[budget]]
name = "waba-hard"
waba = "{WABA}"
amount = "0.03"
hard_stop = true
thresholds = [100]
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A sandbox whose webhooks go to a server guarding sends to it.
struct Pair {
    sandbox: Sandbox,
    server: Server,
}

fn start_pair(
    dir: &Path,
    database: String,
    accounts: &str,
    sandbox_args: &[&str],
    server_args: &[&str],
) -> Pair {
    let listen = common::free_port();
    let webhook = format!("http://{listen}/webhook");
    let mut args = vec!["--webhook-url", &webhook, "--accounts", accounts];
    args.extend_from_slice(sandbox_args);
    let sandbox = Sandbox::start_signing(dir, &args, server::SECRET);
    let mut extra: Vec<String> = [
        "--listen",
        &listen,
        "--upstream",
        &sandbox.base,
        "--accounts",
        accounts,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    extra.extend(server_args.iter().map(|s| s.to_string()));
    let server = Server::start(Start {
        dir,
        database,
        extra,
    });
    Pair { sandbox, server }
}

/// A send through the guard: status, headers, JSON body.
fn send(server: &Server, body: Value) -> (u16, ureq::http::HeaderMap, Value) {
    post_graph(server, &format!("/v23.0/{PHONE}/messages"), body)
}

/// A Graph POST through the guard with the app's token.
fn post_graph(server: &Server, path: &str, body: Value) -> (u16, ureq::http::HeaderMap, Value) {
    let mut response = server
        .agent
        .post(&server.url(path))
        .header("Authorization", "Bearer app-token")
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .expect("guard answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn text(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hi"}})
}

fn hello_world(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}})
}

fn header<'a>(headers: &'a ureq::http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

fn charge_of(server: &Server, id: &str) -> Option<Value> {
    server.get_json("/v1/charges")["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message_id"] == id)
        .cloned()
}

fn budget<'a>(budgets: &'a Value, name: &str) -> &'a Value {
    budgets["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no budget {name}: {budgets}"))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn the_guard_refuses_bills_budgets_and_alerts() {
    let dir = fresh("main");
    refuses_bills_budgets_and_alerts(&dir, server::sqlite_in(&dir));
}

/// The same with the store in PostgreSQL, which the guard reads rather than
/// keeping pairs in memory.
#[test]
fn the_guard_refuses_bills_budgets_and_alerts_on_postgres() {
    let Some(database) = server::postgres_database("guard_main") else {
        return;
    };
    refuses_bills_budgets_and_alerts(&fresh("main-postgres"), database);
}

fn refuses_bills_budgets_and_alerts(dir: &Path, database: String) {
    let dir = dir.to_path_buf();
    let accounts = accounts(&dir);
    let alerts = App::start(None, 0);
    // The sandbox starts 26 hours ago, so the user's message is 26 hours
    // old by the wall clock the guard reads; the sandbox clock then jumps
    // to now, and statuses land in this month.
    let start = jiff::Timestamp::from_second(unix_now() - 26 * 3600)
        .unwrap()
        .to_string();
    let pair = start_pair(
        &dir,
        database,
        &accounts,
        &["--clock-start", &start],
        &[
            "--alert-url",
            &alerts.url,
            "--safety-margin",
            "2m",
            "--record-wait",
            "30s",
        ],
    );
    let (sandbox, server) = (&pair.sandbox, &pair.server);
    sandbox.inbound(USER, json!({}));
    sandbox.advance(26 * 3600);
    common::eventually("the user's message stored", || {
        (server.get_json(&format!("/v1/windows/{PHONE}/{USER}"))["last_inbound_at"].is_string())
            .then_some(())
    });

    // Refused at once with Meta's own body, nothing forwarded.
    let (status, headers, body) = send(server, text(USER));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 131_047);
    assert_eq!(body["error"]["message"], "(#131047) Re-engagement message");
    assert_eq!(header(&headers, "x-wameter-window-closes-at"), "closed");
    let sent: Vec<Value> = sandbox
        .get("/_sandbox/events")
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        sent.iter().all(|e| e["type"] != "outbound"),
        "nothing forwarded: {sent:?}"
    );

    // A template is allowed, estimated, recorded and billed.
    let (status, headers, body) = send(server, hello_world(USER));
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-wameter-category"), "utility");
    assert_eq!(header(&headers, "x-wameter-billable"), "true");
    assert_eq!(header(&headers, "x-wameter-estimated-cost"), "0.0068");
    assert_eq!(header(&headers, "x-wameter-currency"), "USD");
    assert_eq!(
        header(&headers, "x-wameter-recorded"),
        "true",
        "with a 30 s record wait, the answer waits for the commit"
    );
    let timing = header(&headers, "server-timing");
    assert!(
        timing.starts_with("upstream;dur=") && timing.contains(", wameter;dur="),
        "{timing}"
    );
    let first = body["messages"][0]["id"].as_str().unwrap().to_string();
    let recorded = server.all_events(server::API_TOKEN);
    assert!(
        recorded
            .iter()
            .any(|line| line.contains(&first) && line.contains("\"category\":\"utility\"")),
        "{recorded:?}"
    );
    let charge = common::eventually("the template charged", || charge_of(server, &first));
    assert_eq!(
        (charge["amount"].as_str(), charge["category"].as_str()),
        (Some("0.0068"), Some("utility"))
    );

    // A user inside the window gets a free-form reply, free.
    sandbox.inbound(USER2, json!({}));
    common::eventually("the second user's message stored", || {
        (server.get_json(&format!("/v1/windows/{PHONE}/{USER2}"))["customer_service_window"]["open"]
            == true)
            .then_some(())
    });
    let (status, headers, body) = send(server, text(USER2));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            header(&headers, "x-wameter-category"),
            header(&headers, "x-wameter-billable")
        ),
        ("service", "false")
    );
    assert_eq!(header(&headers, "x-wameter-estimated-cost"), "0");
    assert_ne!(header(&headers, "x-wameter-window-closes-at"), "closed");

    // Three more templates fit the hard stop of 0.03 (4 × 0.0068 = 0.0272);
    // a fifth would make 0.034 and is refused, naming the budget.
    let mut ids = vec![first];
    for _ in 0..3 {
        let (status, _, body) = send(server, hello_world(USER));
        assert_eq!(status, 200, "{body}");
        ids.push(body["messages"][0]["id"].as_str().unwrap().to_string());
    }
    let (status, _, body) = send(server, hello_world(USER));
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], 131_042);
    let details = body["error"]["error_data"]["details"].as_str().unwrap();
    assert!(
        details.contains("budget `waba-hard`") && details.contains("0.034"),
        "{details}"
    );
    for id in &ids {
        common::eventually("every template charged", || charge_of(server, id));
    }

    // Charged spend 0.0272: the soft budget of 0.02 crossed 50 %, 80 % and
    // 100 %, the hard one not its 100 %; each alert fired once.
    let received = common::eventually("three alerts", || {
        let got = alerts.received.lock().unwrap().clone();
        (got.len() >= 3).then_some(got)
    });
    std::thread::sleep(Duration::from_millis(2500));
    let received_later = alerts.received.lock().unwrap().clone();
    assert_eq!(
        received_later.len(),
        3,
        "no alert twice: {received_later:?}"
    );
    let mut crossed: Vec<(String, u64)> = received
        .iter()
        .map(|r| {
            let alert: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                r.signature.as_deref(),
                Some(server::sign(r.body.as_bytes()).as_str()),
                "signed with the app secret"
            );
            (
                alert["budget"].as_str().unwrap().to_string(),
                alert["threshold_percent"].as_u64().unwrap(),
            )
        })
        .collect();
    crossed.sort();
    assert_eq!(
        crossed,
        vec![
            ("acme-soft".into(), 50),
            ("acme-soft".into(), 80),
            ("acme-soft".into(), 100)
        ]
    );

    let budgets = server.get_json("/v1/budgets");
    let soft = budget(&budgets, "acme-soft");
    assert_eq!(
        (
            soft["spent"].as_str(),
            soft["in_flight"].as_str(),
            soft["remaining"].as_str()
        ),
        (Some("0.0272"), Some("0"), Some("-0.0072"))
    );
    let thresholds: Vec<bool> = soft["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["crossed"] == true)
        .collect();
    assert_eq!(thresholds, vec![true, true, true]);
    assert!(soft["thresholds"][0]["alert_delivered_at"].is_string());
    let hard = budget(&budgets, "waba-hard");
    assert_eq!(
        (hard["spent"].as_str(), hard["hard_stop"].as_bool()),
        (Some("0.0272"), Some(true))
    );
    assert_eq!(hard["thresholds"][0]["crossed"], false);
    let forecast: f64 = soft["forecast"].as_str().unwrap().parse().unwrap();
    assert!(
        forecast >= 0.0272,
        "the forecast is at least the spend: {forecast}"
    );

    // The invoice, from what the server recorded: four utility templates
    // at 0.0068 + 20 % (0.00136) + 0.01 fee = 0.01816 each, 0.07264 in all;
    // the free service reply carries no markup and no fee.
    let month = soft["month"].as_str().unwrap().to_string();
    let log = dir.join("recorded.ndjson");
    std::fs::write(&log, server.all_events(server::API_TOKEN).join("\n")).unwrap();
    let home = dir.join("home");
    let output = common::wameter_home(
        &home,
        &[
            "invoice",
            "--client",
            "acme",
            "--month",
            &month,
            "--accounts",
            &accounts,
            "--format",
            "json",
            log.to_str().unwrap(),
        ],
    );
    let invoice = common::json(&output);
    assert_eq!(invoice["currency"], "USD");
    assert_eq!(invoice["timezone"], "America/Sao_Paulo");
    let total = &invoice["total"];
    assert_eq!(
        (total["messages"].as_u64(), total["billable"].as_u64()),
        (Some(5), Some(4))
    );
    assert_eq!(
        (
            total["meta_cost"].as_str(),
            total["markup"].as_str(),
            total["fees"].as_str(),
            total["client_cost"].as_str()
        ),
        (
            Some("0.0272"),
            Some("0.00544"),
            Some("0.04"),
            Some("0.07264")
        )
    );
    let csv = common::stdout(&common::wameter_home(
        &home,
        &[
            "invoice",
            "--client",
            "acme",
            "--month",
            &month,
            "--accounts",
            &accounts,
            log.to_str().unwrap(),
        ],
    ));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "client,month,currency,category,market,messages,billable,meta_cost,markup,fees,client_cost"
    );
    assert!(
        rows.contains(
            &format!("acme,{month},USD,utility,Brazil,4,4,0.0272,0.00544,0.04,0.07264").as_str()
        ),
        "{csv}"
    );
    assert!(
        rows.contains(&format!("acme,{month},USD,service,Brazil,1,0,0,0,0,0").as_str()),
        "{csv}"
    );
    assert_eq!(
        rows.last().unwrap(),
        &format!("acme,{month},USD,total,,5,4,0.0272,0.00544,0.04,0.07264")
    );
}

#[test]
fn failed_sends_are_never_charged_and_category_updates_are_seen() {
    let dir = fresh("failures");
    failures_and_category_updates(&dir, server::sqlite_in(&dir));
}

#[test]
fn failed_sends_are_never_charged_and_category_updates_are_seen_on_postgres() {
    let Some(database) = server::postgres_database("guard_failures") else {
        return;
    };
    failures_and_category_updates(&fresh("failures-postgres"), database);
}

fn failures_and_category_updates(dir: &Path, database: String) {
    let dir = dir.to_path_buf();
    let accounts = sandbox::accounts(&dir);
    // The default record wait (none): the answer goes out before the commit.
    let pair = start_pair(
        &dir,
        database,
        &accounts,
        &["--failure-percent", "100"],
        &[],
    );
    let (sandbox, server) = (&pair.sandbox, &pair.server);

    // Accepted upstream, then failed (131026): recorded, never charged.
    let (status, headers, body) = send(server, hello_world(USER));
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-wameter-billable"), "true");
    assert_eq!(
        header(&headers, "x-wameter-recorded"),
        "pending",
        "by default the answer does not wait for the commit"
    );
    let id = body["messages"][0]["id"].as_str().unwrap().to_string();
    common::eventually("the failure stored", || {
        let events = server.all_events(server::API_TOKEN);
        events
            .iter()
            .any(|line| line.contains(&id) && line.contains("\"failed\""))
            .then_some(())
    });
    assert!(
        charge_of(server, &id).is_none(),
        "a failed send is never charged"
    );
    // The pending record was queued before the answer, so it committed
    // before the failure that came after it.
    let recorded = server.all_events(server::API_TOKEN);
    assert!(
        recorded
            .iter()
            .any(|line| line.contains(&id) && line.contains("\"outbound\"")),
        "the send was recorded: {recorded:?}"
    );

    // Meta moves hello_world to marketing: the guard looks it up again.
    let (status, answer) = sandbox.post(
        "/_sandbox/templates/category",
        &json!({"waba": WABA, "name": "hello_world", "language": "en_US", "category": "marketing"}),
    );
    assert_eq!(status, 200, "{answer}");
    common::eventually("the new category used", || {
        let (status, headers, _) = send(server, hello_world(USER));
        (status == 200 && header(&headers, "x-wameter-category") == "marketing").then_some(())
    });
}

/// Sends upstream accepted but not yet delivered hold their budget across a
/// restart: the store keeps them with their records until the outcome.
#[test]
fn sends_in_flight_hold_their_budget_across_a_restart() {
    let dir = fresh("in-flight");
    in_flight_across_a_restart(&dir, server::sqlite_in(&dir));
}

#[test]
fn sends_in_flight_hold_their_budget_across_a_restart_on_postgres() {
    let Some(database) = server::postgres_database("guard_in_flight") else {
        return;
    };
    in_flight_across_a_restart(&fresh("in-flight-postgres"), database);
}

fn in_flight_across_a_restart(dir: &Path, database: String) {
    let dir = dir.to_path_buf();
    let accounts = dir.join("accounts.toml");
    std::fs::write(
        &accounts,
        format!(
            "[[business]]\nphone_number_id = \"{PHONE}\"\nwaba = \"{WABA}\"\ntimezone = \"America/Sao_Paulo\"\ncurrency = \"USD\"\n\n\
             [[budget]]\nname = \"cap\"\nwaba = \"{WABA}\"\namount = \"0.02\"\nhard_stop = true\n"
        ),
    )
    .unwrap();
    let accounts = accounts.display().to_string();
    // Statuses an hour out on the sandbox clock: nothing is delivered
    // until the test moves the clock.
    // The answers wait for their records (and what they hold): the test is
    // about a restart, not about a crash between an answer and its commit.
    let pair = start_pair(
        &dir,
        database.clone(),
        &accounts,
        &["--sent-after", "3600", "--delivered-after", "3600"],
        &["--record-wait", "30s"],
    );
    let Pair { sandbox, server } = pair;
    let listen = server.base.trim_start_matches("http://").to_string();
    for _ in 0..2 {
        let (status, _, body) = send(&server, hello_world(USER));
        assert_eq!(status, 200, "{body}");
    }
    server.kill();

    let restart = |database: &str| {
        let extra = [
            "--listen",
            &listen,
            "--upstream",
            &sandbox.base,
            "--accounts",
            &accounts,
        ]
        .map(String::from)
        .to_vec();
        Server::start(Start {
            dir: &dir,
            database: database.to_string(),
            extra,
        })
    };
    let server = restart(&database);
    let in_flight = |server: &Server| {
        budget(&server.get_json("/v1/budgets"), "cap")["in_flight"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        in_flight(&server),
        "0.0136",
        "the two undelivered templates still count"
    );
    let (status, _, body) = send(&server, hello_world(USER));
    assert_eq!(
        status, 402,
        "0.0136 in flight + 0.0068 is over 0.02: {body}"
    );
    assert!(
        body["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("in flight 0.0136"),
        "{body}"
    );

    // Delivered: charged, and no longer in flight, here or after a restart.
    sandbox.advance(3600);
    common::eventually("both charged", || {
        let hard = budget(&server.get_json("/v1/budgets"), "cap").clone();
        (hard["spent"] == "0.0136").then_some(())
    });
    assert_eq!(in_flight(&server), "0");
    server.kill();
    let server = restart(&database);
    assert_eq!(
        in_flight(&server),
        "0",
        "delivered sends are not taken back as in flight"
    );
}

/// A call through the guard (`POST …/calls`): status, headers, JSON body.
fn call(server: &Server, phone: &str, body: Value) -> (u16, ureq::http::HeaderMap, Value) {
    post_graph(server, &format!("/v23.0/{phone}/calls"), body)
}

fn connect(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "action": "connect", "session": {"sdp_type": "offer", "sdp": "v=0"}})
}

/// Issue 23: the guard refuses a business call from a number in a country
/// Meta allows none from (138013, nothing forwarded), and puts calls under
/// hard-stop budgets: a connected call counts once it ends, and a call
/// whose first minute would cross the budget is refused (402).
#[test]
fn the_guard_refuses_forbidden_calls_and_holds_calls_to_budgets() {
    let dir = fresh("calls");
    let accounts = dir.join("accounts.toml");
    std::fs::write(
        &accounts,
        format!(
            "[[business]]\nphone_number_id = \"{PHONE}\"\nwaba = \"{WABA}\"\ncurrency = \"USD\"\n\n[[business]]\nphone_number_id = \"333\"\nprimary_country = \"US\"\n\n[[budget]]\nname = \"calls-hard\"\nwaba = \"{WABA}\"\namount = \"0.03\"\nhard_stop = true\n"
        ),
    )
    .unwrap();
    let accounts = accounts.display().to_string();
    let pair = start_pair(&dir, server::sqlite_in(&dir), &accounts, &[], &[]);
    let (status, _, refused) = call(&pair.server, "333", connect("+254700000001"));
    assert_eq!(
        (status, refused["error"]["code"].as_u64()),
        (400, Some(138_013)),
        "{refused}"
    );
    assert!(
        refused["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .starts_with("refused by wameter"),
        "{refused}"
    );
    assert_eq!(
        pair.sandbox.get_json("/_sandbox")["events"],
        0,
        "nothing reached upstream"
    );

    // Kenya, 0.0103 USD a minute: a 120 s call costs 0.0206.
    let (status, headers, placed) = call(&pair.server, PHONE, connect("+254700000001"));
    assert_eq!(status, 200, "{placed}");
    assert_eq!(header(&headers, "x-wameter-call-rate-per-minute"), "0.0103");
    let id = placed["calls"][0]["id"].as_str().unwrap().to_string();
    let (status, answer) = pair
        .sandbox
        .post(&format!("/_sandbox/calls/{id}/answer"), &json!({}));
    assert_eq!(status, 200, "{answer}");
    pair.sandbox.advance(120);
    let (status, _, ended) = call(
        &pair.server,
        PHONE,
        json!({"messaging_product": "whatsapp", "call_id": id, "action": "terminate"}),
    );
    assert_eq!(status, 200, "{ended}");
    common::eventually("the call counted in the budget", || {
        let budgets = pair.server.get_json("/v1/budgets");
        (budget(&budgets, "calls-hard")["spent"] == "0.0206").then_some(())
    });
    // 0.0206 + a first minute of 0.0103 would be 0.0309: over 0.03.
    let (status, _, blocked) = call(&pair.server, PHONE, connect("+254700000002"));
    assert_eq!(status, 402, "{blocked}");
    assert!(
        blocked["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("budget `calls-hard`"),
        "{blocked}"
    );
}

/// Max-price marketing through the guard (docs/rules.md §15 and its
/// sources): before the status, a Marketing Messages API send
/// of a template with a max price (`optimization_spec.bid_amount` 2000 =
/// USD 0.02 a message) is estimated as the range up to it, and a hard-stop
/// budget holds that top: with 0.03, a second such send (0.02 + 0.02) is
/// refused. Once delivered, the charge is Meta's `pricing.cost`.
#[test]
fn max_price_sends_are_estimated_up_to_the_bid_and_held_to_budgets() {
    let dir = fresh("max-price");
    let accounts = dir.join("accounts.toml");
    std::fs::write(
        &accounts,
        format!("[[business]]\nphone_number_id = \"{PHONE}\"\nwaba = \"{WABA}\"\ncurrency = \"USD\"\n\n[[budget]]\nname = \"hard\"\nwaba = \"{WABA}\"\namount = \"0.03\"\nhard_stop = true\n"),
    )
    .unwrap();
    let accounts = accounts.display().to_string();
    let pair = start_pair(&dir, server::sqlite_in(&dir), &accounts, &[], &[]);
    let template = json!({"name": "capped", "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "Sale"}],
        "optimization_spec": {"bid_amount": 2000, "bid_strategy": "LOWEST_COST_WITH_BID_CAP"}});
    let (status, created) = pair
        .sandbox
        .post(&format!("/v23.0/{WABA}/message_templates"), &template);
    assert_eq!(status, 200, "{created}");
    let capped = |to: &str| json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": "capped", "language": {"code": "en_US"}}});
    let path = format!("/v23.0/{PHONE}/marketing_messages");

    let (status, headers, sent) = post_graph(&pair.server, &path, capped(USER));
    assert_eq!(status, 200, "{sent}");
    assert_eq!(header(&headers, "x-wameter-estimated-cost"), "0.02");
    assert_eq!(header(&headers, "x-wameter-estimated-cost-range"), "0-0.02");
    assert_eq!(header(&headers, "x-wameter-rule"), "max-price");
    assert_eq!(header(&headers, "x-wameter-category"), "marketing");
    let id = sent["messages"][0]["id"].as_str().unwrap().to_string();

    let (status, _, refused) = post_graph(&pair.server, &path, capped(USER2));
    assert_eq!(status, 402, "{refused}");
    assert!(
        refused["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("budget `hard`"),
        "{refused}"
    );

    // Delivered: Meta's cost (the sandbox's lower of card and max price).
    pair.sandbox.advance(60);
    let charge = common::eventually("the max-price send charged", || {
        charge_of(&pair.server, &id)
    });
    assert_eq!(
        (charge["rule"].as_str(), charge["amount"].as_str()),
        (Some("max-price"), Some("0.02")),
        "{charge}"
    );
}
