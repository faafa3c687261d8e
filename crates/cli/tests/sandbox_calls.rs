//! The sandbox's Calling API (issue 23): Meta's Manage Calls path for the
//! business, the control API for the simulated user, `calls` webhooks, and
//! calls priced on the sandbox clock. The end-to-end oracle: the sandbox's
//! webhooks posted to `serve` give the charges `replay` gives for the
//! sandbox's own log, calls included.

mod common;
#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/server.rs"]
mod server;

use sandbox::*;
use serde_json::{Value, json};

const KENYA: &str = "+254700000001";

fn fresh(name: &str) -> std::path::PathBuf {
    let dir = common::temp_dir(&format!("sandbox-calls-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home")).unwrap();
    dir
}

fn calls_path() -> String {
    format!("/v23.0/{PHONE}/calls")
}

fn connect(sandbox: &Sandbox, to: &str) -> (u16, Value) {
    sandbox.post(&calls_path(), &json!({"messaging_product": "whatsapp", "to": to, "action": "connect", "session": {"sdp_type": "offer", "sdp": "v=0"}, "biz_opaque_callback_data": "campaign-7"}))
}

fn act(sandbox: &Sandbox, id: &str, action: &str) -> (u16, Value) {
    sandbox.post(
        &calls_path(),
        &json!({"messaging_product": "whatsapp", "call_id": id, "action": action}),
    )
}

fn user(sandbox: &Sandbox, id: &str, what: &str) -> Value {
    let (status, answer) = sandbox.post(&format!("/_sandbox/calls/{id}/{what}"), &json!({}));
    assert_eq!(status, 200, "{what}: {answer}");
    answer
}

/// The `calls` change values the sandbox wrote, in order.
fn call_webhooks(sandbox: &Sandbox) -> Vec<Value> {
    sandbox
        .webhooks()
        .into_iter()
        .filter(|body| body.pointer("/entry/0/changes/0/field") == Some(&json!("calls")))
        .map(|body| body.pointer("/entry/0/changes/0/value").cloned().unwrap())
        .collect()
}

/// A business call rings, the user answers, talks 56 s, the business hangs
/// up: RINGING, connect, ACCEPTED, then a terminate with `duration` 56 and
/// the opaque data; priced 10 pulses on the sandbox clock, as `replay`
/// prices the sandbox's log. A user's call opens the window for a free
/// reply, and a business call the user lets ring out is free.
#[test]
fn business_and_user_calls_ring_connect_end_and_are_priced() {
    let dir = fresh("flow");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-08-03T10:00:00Z",
        ],
    );

    let (status, placed) = connect(&sandbox, KENYA);
    assert_eq!(status, 200, "{placed}");
    let id = placed["calls"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(placed["messaging_product"], "whatsapp");
    sandbox.advance(5);
    user(&sandbox, &id, "answer");
    sandbox.advance(56);
    let (status, ended) = act(&sandbox, &id, "terminate");
    assert_eq!((status, &ended), (200, &json!({"success": true})));
    let (status, again) = act(&sandbox, &id, "terminate");
    assert_eq!(status, 400, "an ended call cannot end again: {again}");

    let hooks = call_webhooks(&sandbox);
    let kinds: Vec<String> = hooks
        .iter()
        .map(
            |v| match (v.pointer("/statuses/0/status"), v.pointer("/calls/0/event")) {
                (Some(status), _) => format!("status {}", status.as_str().unwrap()),
                (_, Some(event)) => format!("call {}", event.as_str().unwrap()),
                _ => panic!("{v}"),
            },
        )
        .collect();
    assert_eq!(
        kinds,
        [
            "status RINGING",
            "call connect",
            "status ACCEPTED",
            "call terminate"
        ]
    );
    let terminate = &hooks[3]["calls"][0];
    assert_eq!(terminate["direction"], "BUSINESS_INITIATED");
    assert_eq!(terminate["to"], "254700000001");
    assert_eq!(terminate["duration"], 56);
    assert_eq!(terminate["biz_opaque_callback_data"], "campaign-7");
    assert_eq!(
        terminate["start_time"], "1785751205",
        "2026-08-03T10:00:05Z, when the user answered"
    );

    // A user calls; the business picks up after 3 s, 20 s talk, the user hangs up.
    let (status, called) = sandbox.post(
        "/_sandbox/calls",
        &json!({"business": PHONE, "user": "+254700000002"}),
    );
    assert_eq!(status, 200, "{called}");
    let uic = called["id"].as_str().unwrap().to_string();
    sandbox.advance(3);
    assert_eq!(act(&sandbox, &uic, "accept").0, 200);
    sandbox.advance(20);
    user(&sandbox, &uic, "hang_up");
    // The window the call opened lets a free-form reply through, free.
    let (status, reply) = sandbox.text("+254700000002", "Thanks for calling");
    assert_eq!(status, 200, "{reply}");
    // A business call nobody answers.
    let (_, missed) = connect(&sandbox, "+254700000003");
    let missed = missed["calls"][0]["id"].as_str().unwrap().to_string();
    sandbox.advance(30);
    assert_eq!(act(&sandbox, &missed, "terminate").0, 200);
    sandbox.advance(10);

    let charges = sandbox.get_json("/_sandbox/charges");
    let calls: Vec<(String, String, bool, String)> = charges["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap().into(),
                c["direction"].as_str().unwrap().into(),
                c["billable"].as_bool().unwrap(),
                c["amount"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (
                id.clone(),
                "business_initiated".into(),
                true,
                "0.0103".into()
            ),
            (uic.clone(), "user_initiated".into(), false, "0".into()),
            (
                missed.clone(),
                "business_initiated".into(),
                false,
                "0".into()
            ),
        ]
    );
    assert_eq!(
        charges["charges"][0]["rule"], "free-form-free",
        "{}",
        charges["charges"][0]
    );
    assert_eq!(charges["totals"]["amount"], "0.0103");

    // The sandbox's own log replays to the same document.
    let (_, log) = sandbox.get("/_sandbox/events");
    let path = dir.join("events.ndjson");
    std::fs::write(&path, &log).unwrap();
    let replayed = common::json(&common::wameter_home(
        &dir.join("home"),
        &[
            "replay",
            path.to_str().unwrap(),
            "--accounts",
            &accounts,
            "--json",
        ],
    ));
    assert_eq!(replayed["calls"], charges["calls"]);
    assert_eq!(replayed["totals"], charges["totals"]);
}

/// Graph's refusals: unknown or ended calls, a business trying to answer
/// its own call, a user's action on a business call it cannot take, and
/// business calls from a country Meta does not allow them from (138013).
#[test]
fn calls_are_refused_as_graph_refuses_them() {
    let dir = fresh("refusals");
    let accounts = dir.join("accounts.toml");
    std::fs::write(&accounts, format!("[[business]]\nphone_number_id = \"{PHONE}\"\nwaba = \"{WABA}\"\nprimary_country = \"US\"\n[[business]]\nphone_number_id = \"222\"\nprimary_country = \"BR\"\n")).unwrap();
    let accounts = accounts.display().to_string();
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-08-03T10:00:00Z",
        ],
    );
    let (status, refused) = connect(&sandbox, KENYA);
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], 138013);
    let (status, unknown) = act(&sandbox, "wacid.nope", "terminate");
    assert_eq!(status, 400);
    assert!(
        unknown["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("no call of that id"),
        "{unknown}"
    );
    let (status, placed) = sandbox.post("/v23.0/222/calls", &json!({"messaging_product": "whatsapp", "to": KENYA, "action": "connect", "session": {"sdp_type": "offer", "sdp": "v=0"}}));
    assert_eq!(status, 200, "{placed}");
    let id = placed["calls"][0]["id"].as_str().unwrap();
    let (status, own) = sandbox.post(
        "/v23.0/222/calls",
        &json!({"messaging_product": "whatsapp", "call_id": id, "action": "accept"}),
    );
    assert_eq!(status, 400);
    assert!(
        own["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("answered by the user"),
        "{own}"
    );
    let (status, other) = act(&sandbox, id, "terminate");
    assert_eq!(status, 400, "another business's call: {other}");
    let (status, _) = sandbox.post(&format!("/_sandbox/calls/{id}/dance"), &json!({}));
    assert_eq!(status, 400);
    user(&sandbox, id, "reject");
    let hooks = call_webhooks(&sandbox);
    assert_eq!(hooks.last().unwrap()["calls"][0]["event"], "terminate");
    assert_eq!(hooks[hooks.len() - 2]["statuses"][0]["status"], "REJECTED");
}

fn create_template(sandbox: &Sandbox, name: &str, bid_amount: Option<u64>) {
    let mut body = json!({"name": name, "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "Sale today"}]});
    if let Some(bid) = bid_amount {
        body["optimization_spec"] =
            json!({"bid_amount": bid, "bid_strategy": "LOWEST_COST_WITH_BID_CAP"});
    }
    let (status, created) = sandbox.post(&format!("/v23.0/{WABA}/message_templates"), &body);
    assert_eq!(status, 200, "{created}");
}

fn marketing_message(sandbox: &Sandbox, to: &str, name: &str) -> (u16, Value) {
    sandbox.post(&format!("/v23.0/{PHONE}/marketing_messages"), &json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": name, "language": {"code": "en_US"}}}))
}

/// The Marketing Messages API (docs/rules.md §15 and its sources): a template
/// with a max price (`optimization_spec.bid_amount` 1000 = USD 0.01 per
/// message) is charged what Meta reports in `pricing.cost` on `delivered`
/// — the sandbox's stand-in is the lower of the card rate and the max
/// price — with `marketing_lite` as the category; one without a max price
/// pays the card rate; a max-price template through `/messages` is 131061.
#[test]
fn max_price_sends_carry_metas_cost_and_are_charged_it() {
    let dir = fresh("max-price");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-11-02T10:00:00Z",
        ],
    );
    create_template(&sandbox, "capped", Some(1000));
    create_template(&sandbox, "plain", None);
    let (status, refused) = sandbox.template(USER, "capped", "en_US");
    assert_eq!(
        (status, refused["error"]["code"].as_u64()),
        (400, Some(131_061)),
        "{refused}"
    );
    let (status, utility) = marketing_message(&sandbox, USER, "hello_world");
    assert_eq!(
        status, 400,
        "a utility template through the MM API: {utility}"
    );
    let (status, capped) = marketing_message(&sandbox, USER, "capped");
    assert_eq!(status, 200, "{capped}");
    let capped = capped["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, plain) = marketing_message(&sandbox, USER, "plain");
    let plain = plain["messages"][0]["id"].as_str().unwrap().to_string();
    sandbox.advance(10);
    let delivered = sandbox
        .statuses_of(&capped)
        .into_iter()
        .find(|s| s["status"] == "delivered")
        .unwrap();
    assert_eq!(
        delivered["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "marketing_lite", "cost": {"amount": 0.01, "currency": "USD"}})
    );
    let sent = sandbox
        .statuses_of(&capped)
        .into_iter()
        .find(|s| s["status"] == "sent")
        .unwrap();
    assert!(
        sent["pricing"].get("cost").is_none(),
        "no cost on `sent`: {sent}"
    );
    let plain_delivered = sandbox
        .statuses_of(&plain)
        .into_iter()
        .find(|s| s["status"] == "delivered")
        .unwrap();
    assert_eq!(plain_delivered["pricing"]["category"], "marketing_lite");
    assert!(plain_delivered["pricing"].get("cost").is_none());
    let charges = sandbox.get_json("/_sandbox/charges");
    let of = |id: &str| {
        charges["charges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["message_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (of(&capped)["rule"].as_str(), of(&capped)["amount"].as_str()),
        (Some("max-price"), Some("0.01"))
    );
    // Brazil marketing on the October 2026 USD card.
    assert_eq!(of(&plain)["amount"], "0.0625");
}

/// Issue 23's end-to-end test: the sandbox's calls and messages (max-price
/// marketing included), posted as webhooks to `serve`, give the charges
/// and calls `replay` gives for the sandbox's own log.
#[test]
fn sandbox_calls_through_serve_match_the_replay_of_the_sandbox_log() {
    let dir = fresh("e2e");
    let accounts = accounts(&dir);
    let listen = common::free_port();
    let webhook = format!("http://{listen}/webhook");
    let server = server::Server::start(server::Start {
        dir: &dir,
        database: server::sqlite_in(&dir),
        extra: ["--listen", &listen, "--accounts", &accounts]
            .map(String::from)
            .to_vec(),
    });
    let sandbox = Sandbox::start_signing(
        &dir,
        &[
            "--webhook-url",
            &webhook,
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-08-03T10:00:00Z",
        ],
        server::SECRET,
    );
    for n in 0..4 {
        let (_, placed) = connect(&sandbox, &format!("+25470000001{n}"));
        let id = placed["calls"][0]["id"].as_str().unwrap().to_string();
        sandbox.advance(2);
        if n != 3 {
            user(&sandbox, &id, "answer");
            sandbox.advance(40 + 17 * n);
        }
        act(&sandbox, &id, "terminate");
    }
    let (_, called) = sandbox.post(
        "/_sandbox/calls",
        &json!({"business": PHONE, "user": "+254700000020"}),
    );
    sandbox.advance(5);
    user(&sandbox, called["id"].as_str().unwrap(), "hang_up");
    let (status, reply) = sandbox.text("+254700000020", "Sorry we missed you");
    assert_eq!(status, 200, "{reply}");
    let (status, template) = sandbox.template("+254700000011", "hello_world", "en_US");
    assert_eq!(status, 200, "{template}");
    create_template(&sandbox, "capped", Some(1000));
    for to in ["+254700000012", "+5511999990001"] {
        let (status, sent) = marketing_message(&sandbox, to, "capped");
        assert_eq!(status, 200, "{sent}");
    }
    sandbox.advance(60);
    common::eventually("every webhook delivered", || {
        (sandbox.get_json("/_sandbox")["webhooks"]["pending"] == 0).then_some(())
    });

    let (_, log) = sandbox.get("/_sandbox/events");
    let path = dir.join("events.ndjson");
    std::fs::write(&path, &log).unwrap();
    let replayed = common::json(&common::wameter_home(
        &dir.join("home"),
        &[
            "replay",
            path.to_str().unwrap(),
            "--accounts",
            &accounts,
            "--json",
        ],
    ));
    assert_eq!(replayed["calls"].as_array().unwrap().len(), 5);
    let served = server.get_json("/v1/charges");
    assert_eq!(served["calls"], replayed["calls"]);
    assert_eq!(
        served["charges"].as_array().unwrap().len(),
        replayed["charges"].as_array().unwrap().len()
    );
    let amounts = |doc: &Value| {
        doc["charges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["message_id"].clone(),
                    c["amount"].clone(),
                    c["rule"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(amounts(&served), amounts(&replayed));
    let rules: Vec<&str> = replayed["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules.iter().filter(|r| **r == "max-price").count(),
        2,
        "{rules:?}"
    );
    assert_eq!(served["totals"], replayed["totals"]);
    server.kill();
}
