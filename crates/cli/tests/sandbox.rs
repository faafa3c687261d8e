//! `wameter sandbox` through its real interfaces: the binary is started as a
//! developer would start it and spoken to over HTTP with Meta's bodies
//! (interfaces §6).
//!
//! Two oracles: Meta's OpenAPI schemas (derived into
//! `crates/sandbox/tests/data/meta-openapi/`) for every request, response
//! and webhook; and `wameter replay --json` of the sandbox's own event log
//! for every charge.

mod common;
#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/server.rs"]
mod server;

use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sandbox::*;
use serde_json::{Value, json};
use sha2::Sha256;

fn fresh(name: &str) -> PathBuf {
    let dir = common::temp_dir(&format!("sandbox-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home")).unwrap();
    dir
}

/// `GET /_sandbox/charges` must equal `wameter replay --json` of `GET
/// /_sandbox/events` with the same accounts: charges and totals.
fn assert_replay_agrees(sandbox: &Sandbox, dir: &Path, accounts: &str) -> Value {
    let (status, log) = sandbox.get("/_sandbox/events");
    assert_eq!(status, 200);
    let path = dir.join("sandbox-events.ndjson");
    std::fs::write(&path, &log).unwrap();
    let replayed = common::json(&common::wameter_home(
        &dir.join("home"),
        &[
            "replay",
            path.to_str().unwrap(),
            "--accounts",
            accounts,
            "--json",
        ],
    ));
    let charges = sandbox.get_json("/_sandbox/charges");
    assert_eq!(
        charges["charges"], replayed["charges"],
        "sandbox charges differ from the replay of its log:\n{log}"
    );
    assert_eq!(charges["totals"], replayed["totals"]);
    charges
}

fn charge_of<'a>(charges: &'a Value, id: &str) -> Option<&'a Value> {
    charges["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message_id"] == id)
}

fn wamid(answer: &Value) -> String {
    answer["messages"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no wamid in {answer}"))
        .to_string()
}

/// Like `serve`, the sandbox turns off the huge pages the binary's
/// allocator asks for (`without_huge_pages` in main.rs).
#[test]
#[cfg(target_os = "linux")]
fn the_sandbox_runs_without_transparent_huge_pages() {
    let dir = fresh("huge-pages");
    let accounts = sandbox::accounts(&dir);
    let sandbox = Sandbox::start(&dir, &["--accounts", &accounts]);
    assert_eq!(common::huge_pages_enabled(sandbox.child.id()), "0");
}

#[test]
fn a_user_writes_the_app_replies_the_window_closes_and_only_a_template_gets_through() {
    let dir = fresh("scenario");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-02-10T12:00:00Z",
        ],
    );

    let inbound = sandbox.inbound(USER, json!({"text": "Where is my order?"}));
    assert_eq!(inbound["at"], "2026-02-10T12:00:00Z");
    let (status, reply) = sandbox.text(USER, "On its way!");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["contacts"][0],
        json!({"input": USER, "wa_id": "5511999990000"})
    );
    let reply = wamid(&reply);
    sandbox.advance(10);
    let statuses = sandbox.statuses_of(&reply);
    let names: Vec<&str> = statuses
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sent", "delivered"]);
    assert_eq!(
        statuses[1]["pricing"],
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"})
    );

    // 25 hours later the window is closed: Meta accepts the free-form
    // message, then fails it with 131047.
    sandbox.advance(25 * 3600);
    let (status, late) = sandbox.text(USER, "Anything else?");
    assert_eq!(status, 200, "{late}");
    let late = wamid(&late);
    let (status, template) = sandbox.template(USER, "hello_world", "en_US");
    assert_eq!(status, 200, "{template}");
    assert_eq!(template["messages"][0]["message_status"], "accepted");
    let template = wamid(&template);
    sandbox.advance(10);

    let failed = sandbox.statuses_of(&late);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(failed[0]["errors"][0]["code"], 131_047);
    assert_eq!(failed[0]["errors"][0]["title"], "Re-engagement message");
    assert!(failed[0].get("pricing").is_none());

    let delivered = sandbox.statuses_of(&template);
    assert_eq!(
        delivered
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["sent", "delivered"]
    );
    for status in &delivered {
        assert_eq!(
            status["pricing"],
            json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"})
        );
        // Graph v23: a PMP status still carries a per-message conversation.
        assert_eq!(status["conversation"]["origin"]["type"], "utility");
    }

    let charges = assert_replay_agrees(&sandbox, &dir, &accounts);
    assert!(
        charge_of(&charges, &late).is_none(),
        "a failed message is never charged"
    );
    assert_eq!(charge_of(&charges, &reply).unwrap()["amount"], "0");
    let billed = charge_of(&charges, &template).unwrap();
    assert_eq!(
        (
            billed["category"].as_str(),
            billed["billable"].as_bool(),
            billed["market"].as_str()
        ),
        (Some("utility"), Some(true), Some("Brazil"))
    );
    // Meta's card in force on 2026-02-11 (usd-2026-01-01): Brazil utility 0.0068 USD.
    assert_eq!(billed["amount"], "0.0068");
    assert_eq!(charges["totals"]["amount"], "0.0068");
}

#[test]
fn with_sync_reengagement_the_send_is_refused_at_once() {
    let dir = fresh("sync");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(&dir, &["--accounts", &accounts, "--reengagement", "sync"]);
    sandbox.inbound(USER, json!({}));
    assert_eq!(sandbox.text(USER, "inside").0, 200);
    sandbox.advance(24 * 3600);
    let (status, error) = sandbox.text(USER, "outside");
    assert_eq!(status, 400);
    let error = &error["error"];
    assert_eq!(error["code"], 131_047);
    assert_eq!(error["message"], "(#131047) Re-engagement message");
    assert_eq!(error["type"], "OAuthException");
    assert!(
        error["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("24 hours")
    );
    assert!(error["fbtrace_id"].is_string());
    // Nothing was logged for the refused send.
    let (_, log) = sandbox.get("/_sandbox/events");
    assert_eq!(
        log.lines().filter(|l| l.contains("\"outbound\"")).count(),
        1
    );
}

#[test]
fn templates_are_validated_like_meta_and_recategorised_through_the_control_api() {
    let dir = fresh("templates");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(&dir, &["--accounts", &accounts, "--token", "app-token"]);
    let listed = sandbox.get_json(&format!("/v23.0/{WABA}/message_templates"));
    let hello = &listed["data"][0];
    assert_eq!(
        (
            hello["name"].as_str(),
            hello["language"].as_str(),
            hello["category"].as_str(),
            hello["status"].as_str()
        ),
        (
            Some("hello_world"),
            Some("en_US"),
            Some("UTILITY"),
            Some("APPROVED")
        )
    );

    let order_update = json!({"name": "order_update", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Order {{1}} ships on {{2}}."}]});
    let (status, created) =
        sandbox.post(&format!("/v23.0/{WABA}/message_templates"), &order_update);
    assert_eq!(
        (
            status,
            created["status"].as_str(),
            created["category"].as_str()
        ),
        (200, Some("APPROVED"), Some("UTILITY"))
    );
    let (status, again) = sandbox.post(&format!("/v23.0/{WABA}/message_templates"), &order_update);
    assert_eq!(
        (status, again["error"]["error_subcode"].as_u64()),
        (400, Some(2_388_024))
    );

    let send = |language: &str, parameters: usize| {
        let parameters: Vec<Value> = (0..parameters)
            .map(|i| json!({"type": "text", "text": format!("p{i}")}))
            .collect();
        sandbox.send(json!({"messaging_product": "whatsapp", "to": USER, "type": "template", "template": {
            "name": "order_update", "language": {"code": language}, "components": [{"type": "body", "parameters": parameters}]}}))
    };
    let (status, error) = send("en_US", 1);
    assert_eq!(
        (status, error["error"]["code"].as_u64()),
        (400, Some(132_000)),
        "{error}"
    );
    assert_eq!(
        error["error"]["error_data"]["details"],
        "body: number of localizable_params (1) does not match the expected number of params (2)"
    );
    let (status, error) = send("pt_BR", 2);
    assert_eq!(
        (status, error["error"]["code"].as_u64()),
        (400, Some(132_001)),
        "{error}"
    );
    let (status, error) = sandbox.template(USER, "no_such_template", "en_US");
    assert_eq!(
        (status, error["error"]["code"].as_u64()),
        (400, Some(132_001)),
        "{error}"
    );
    let (status, first) = send("en_US", 2);
    assert_eq!(status, 200, "{first}");

    // Meta moves the template to marketing: the app hears of it, and the
    // next send is a marketing message.
    let (status, changed) = sandbox.post(
        "/_sandbox/templates/category",
        &json!({"waba": WABA, "name": "order_update", "category": "MARKETING"}),
    );
    assert_eq!(
        (status, changed["changed"].as_u64()),
        (200, Some(1)),
        "{changed}"
    );
    let update = sandbox
        .webhooks()
        .into_iter()
        .find(|body| {
            body.pointer("/entry/0/changes/0/field") == Some(&json!("template_category_update"))
        })
        .expect("a template_category_update webhook");
    let value = &update["entry"][0]["changes"][0]["value"];
    assert_eq!(
        (
            value["previous_category"].as_str(),
            value["new_category"].as_str(),
            value["message_template_name"].as_str()
        ),
        (Some("UTILITY"), Some("MARKETING"), Some("order_update"))
    );
    assert_eq!(update["entry"][0]["id"], WABA);
    let (status, second) = send("en_US", 2);
    assert_eq!(status, 200, "{second}");
    sandbox.advance(10);
    let charges = assert_replay_agrees(&sandbox, &dir, &accounts);
    assert_eq!(
        charge_of(&charges, &wamid(&first)).unwrap()["category"],
        "utility"
    );
    assert_eq!(
        charge_of(&charges, &wamid(&second)).unwrap()["category"],
        "marketing"
    );
    // wameter's own webhook reader understands the update.
    let path = dir.join("update.json");
    std::fs::write(&path, update.to_string()).unwrap();
    let events = common::stdout(&common::wameter_home(
        &dir.join("home"),
        &["events", path.to_str().unwrap()],
    ));
    assert!(
        events.contains("template_category_update") && events.contains("marketing"),
        "{events}"
    );

    // Meta pauses, then rejects the template: it cannot be sent, and the
    // app hears of each review.
    for (status, code) in [
        ("PAUSED", 132_015),
        ("DISABLED", 132_016),
        ("REJECTED", 132_001),
    ] {
        let (answer, body) = sandbox.post(
            "/_sandbox/templates/status",
            &json!({"waba": WABA, "name": "order_update", "status": status}),
        );
        assert_eq!(answer, 200, "{body}");
        let (answer, error) = send("en_US", 2);
        assert_eq!(
            (answer, error["error"]["code"].as_u64()),
            (400, Some(code)),
            "{status}: {error}"
        );
    }
    let reviews: Vec<Value> = sandbox
        .webhooks()
        .into_iter()
        .filter(|body| {
            body.pointer("/entry/0/changes/0/field")
                == Some(&json!("message_template_status_update"))
        })
        .map(|body| body["entry"][0]["changes"][0]["value"]["event"].clone())
        .collect();
    assert_eq!(
        reviews,
        [json!("PAUSED"), json!("DISABLED"), json!("REJECTED")]
    );

    // Tokens, unknown objects and paths, the clock.
    let mut response = sandbox
        .agent
        .get(&sandbox.url(&format!("/v23.0/{PHONE}")))
        .header("Authorization", "Bearer wrong")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(sandbox.get_json(&format!("/v23.0/{PHONE}"))["id"], PHONE);
    let (status, body) = sandbox.get("/v23.0/123456");
    assert_eq!(status, 400);
    assert!(body.contains("\"error_subcode\":33"), "{body}");
    let (status, body) = sandbox.get("/v23.0/a/b/c");
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":2500"), "{body}");
    // A method a known path does not take is a Graph error, not an empty
    // 405 that clients crash parsing (issue 22).
    let mut response = sandbox
        .agent
        .delete(&sandbox.url(&format!("/v23.0/{PHONE}")))
        .header("Authorization", "Bearer app-token")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert_eq!(body["error"]["error_subcode"], 33, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported delete request"),
        "{body}"
    );
    // The token as Graph also takes it: `?access_token=`, percent-encoded.
    assert_eq!(
        sandbox
            .agent
            .get(&sandbox.url(&format!("/v23.0/{PHONE}?access_token=app%2Dtoken")))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        sandbox
            .agent
            .get(&sandbox.url(&format!("/v23.0/{PHONE}?access_token=wrong")))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        sandbox
            .agent
            .get(&sandbox.url(&format!("/v23.0/{PHONE}")))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // A form body, as Graph takes it: objects as JSON text in their field.
    let form = format!(
        "messaging_product=whatsapp&to={USER}&type=template&template=%7B%22name%22%3A%22hello_world%22%2C%22language%22%3A%7B%22code%22%3A%22en_US%22%7D%7D"
    );
    let mut response = sandbox
        .agent
        .post(&sandbox.url(&format!("/v23.0/{PHONE}/messages?access_token=app-token")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form.as_bytes())
        .unwrap();
    let answer = response.body_mut().read_to_string().unwrap();
    assert_eq!(response.status().as_u16(), 200, "{answer}");
    assert!(answer.contains("wamid."), "{answer}");
    // A body over the size limit is a Graph error too, not plain text.
    // (Raw TCP: the answer comes before the body is read, which an HTTP
    // client that writes the whole body first sees as a broken pipe.)
    let body = {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(sandbox.base.trim_start_matches("http://")).unwrap();
        let size = 5 << 20;
        let head = format!(
            "POST /v23.0/{PHONE}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer app-token\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(&vec![b'a'; size]);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        serde_json::from_str::<Value>(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    };
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert!(
        body["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("length limit"),
        "{body}"
    );
    let (status, body) = sandbox.post("/_sandbox/clock", &json!({"set": "2020-01-01T00:00:00Z"}));
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only moves forward")
    );
}

#[test]
fn status_objects_follow_the_era_and_graph_version_at_the_sandbox_clock() {
    // CBP (2024-11, the built-in USD card of 2024-10-01): conversations
    // with an expiration on `sent`.
    let dir = fresh("cbp");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2024-11-18T12:00:00Z",
        ],
    );
    let (_, sent) = sandbox.template(USER, "hello_world", "en_US");
    sandbox.advance(10);
    let statuses = sandbox.statuses_of(&wamid(&sent));
    assert_eq!(
        statuses[0]["pricing"],
        json!({"billable": true, "pricing_model": "CBP", "category": "utility"})
    );
    assert_eq!(statuses[0]["conversation"]["origin"]["type"], "utility");
    let expires: i64 = statuses[0]["conversation"]["expiration_timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let delivered: i64 = statuses[1]["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        expires,
        delivered + 24 * 3600,
        "the conversation lasts 24 h from its opening delivery"
    );
    assert!(
        statuses[1]["conversation"]
            .get("expiration_timestamp")
            .is_none()
    );
    assert_replay_agrees(&sandbox, &dir, &accounts);
    drop(sandbox);

    // PMP (2026-02): v24 drops `conversation` outside a free entry point,
    // v23 keeps one per message; an ad click opens a free entry point.
    let dir = fresh("pmp");
    let accounts = sandbox::accounts(&dir);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-02-02T12:00:00Z",
        ],
    );
    let marketing = json!({"name": "spring_sale", "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "Sale!"}]});
    assert_eq!(
        sandbox
            .post(&format!("/v24.0/{WABA}/message_templates"), &marketing)
            .0,
        200
    );
    let template = json!({"messaging_product": "whatsapp", "to": USER, "type": "template", "template": {"name": "spring_sale", "language": {"code": "en_US"}}});
    let (_, v24) = sandbox.post(&format!("/v24.0/{PHONE}/messages"), &template);
    let (_, v23) = sandbox.post(&format!("/v23.0/{PHONE}/messages"), &template);
    let ad_user = "+5511988887777";
    sandbox.inbound(ad_user, json!({"entry_point": "ad"}));
    let (_, fep) = sandbox.post(&format!("/v24.0/{PHONE}/messages"), &json!({"messaging_product": "whatsapp", "to": ad_user, "type": "text", "text": {"body": "Thanks for clicking!"}}));
    sandbox.advance(10);
    let v24 = sandbox.statuses_of(&wamid(&v24));
    assert_eq!(
        v24[1]["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "marketing"})
    );
    assert!(v24[1].get("conversation").is_none(), "{}", v24[1]);
    assert!(
        sandbox.statuses_of(&wamid(&v23))[1]
            .get("conversation")
            .is_some()
    );
    let fep = sandbox.statuses_of(&wamid(&fep));
    assert_eq!(fep[1]["pricing"]["type"], "free_entry_point");
    assert_eq!(
        fep[1]["conversation"]["origin"]["type"],
        "referral_conversion"
    );
    // The user message webhook carries Meta's referral object.
    assert!(sandbox.webhooks().iter().any(|body| {
        body.pointer("/entry/0/changes/0/value/messages/0/referral/source_type")
            == Some(&json!("ad"))
    }));
    assert_replay_agrees(&sandbox, &dir, &accounts);
}

#[test]
fn cbp_2022_conversations_are_business_initiated_and_failures_are_never_billed() {
    // CBP v1 (2022, EUR card of 2022-02-01): one business-initiated
    // conversation per template, opened by its delivery.
    let dir = fresh("cbp-2022");
    let accounts = dir.join("accounts-eur.toml");
    std::fs::write(&accounts, format!("[[business]]\nphone_number_id = \"{PHONE}\"\nwaba = \"{WABA}\"\ntimezone = \"Europe/Berlin\"\ncurrency = \"EUR\"\n")).unwrap();
    let accounts = accounts.display().to_string();
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2022-06-01T09:00:00Z",
        ],
    );
    let (_, sent) = sandbox.template("+4915112345678", "hello_world", "en_US");
    sandbox.advance(10);
    let statuses = sandbox.statuses_of(&wamid(&sent));
    assert_eq!(
        statuses[0]["pricing"],
        json!({"billable": true, "pricing_model": "CBP", "category": "business_initiated"})
    );
    assert_eq!(
        statuses[0]["conversation"]["origin"]["type"],
        "business_initiated"
    );
    let charges = assert_replay_agrees(&sandbox, &dir, &accounts);
    assert_eq!(charges["totals"]["currency"], "EUR");
    drop(sandbox);

    // --failure-percent 100: every message is sent, then fails with 131026,
    // and nothing is charged.
    let dir = fresh("failures");
    let accounts = sandbox::accounts(&dir);
    let sandbox = Sandbox::start(&dir, &["--accounts", &accounts, "--failure-percent", "100"]);
    let (_, sent) = sandbox.template(USER, "hello_world", "en_US");
    sandbox.advance(10);
    let statuses = sandbox.statuses_of(&wamid(&sent));
    assert_eq!(
        statuses
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["sent", "failed"]
    );
    assert_eq!(statuses[1]["errors"][0]["code"], 131_026);
    assert!(
        statuses.iter().all(|s| s.get("pricing").is_none()),
        "a message that will fail carries no billing: {statuses:?}"
    );
    let charges = assert_replay_agrees(&sandbox, &dir, &accounts);
    assert_eq!(charges["charges"], json!([]));
}

fn verify(body: &str, signature: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    signature == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn webhooks_are_verified_signed_and_retried_until_the_app_takes_them() {
    let dir = fresh("delivery");
    let accounts = accounts(&dir);
    // The app refuses its first two webhooks (it is "down").
    let app = App::start(Some("verify-me"), 2);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--webhook-url",
            &app.url,
            "--verify-token",
            "verify-me",
        ],
    );
    sandbox.inbound(USER, json!({}));
    sandbox.text(USER, "hi");
    sandbox.advance(10);
    let written = sandbox.webhooks();
    assert_eq!(written.len(), 3, "user message, sent, delivered");
    let received = app.wait_for(written.len());
    assert!(app.handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(app.refused.load(std::sync::atomic::Ordering::SeqCst), 2);
    for got in &received {
        assert!(
            verify(&got.body, got.signature.as_deref().expect("signed")),
            "bad signature on {}",
            got.body
        );
    }
    let mut got: Vec<Value> = received
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let mut want = written.clone();
    got.sort_by_key(Value::to_string);
    want.sort_by_key(Value::to_string);
    assert_eq!(got, want, "every webhook arrives exactly once");
    let outbox = sandbox.get_json("/_sandbox/webhooks");
    assert!(
        outbox
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["state"] == "delivered"),
        "{outbox}"
    );
    assert!(
        outbox
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["attempts"].as_u64() > Some(1)),
        "some webhook needed a retry"
    );
}

#[test]
fn fault_injection_duplicates_every_webhook() {
    let dir = fresh("faults");
    let accounts = accounts(&dir);
    let app = App::start(None, 0);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--webhook-url",
            &app.url,
            "--duplicate-percent",
            "100",
            "--delay-ms-max",
            "200",
            "--reorder-percent",
            "100",
        ],
    );
    sandbox.inbound(USER, json!({}));
    sandbox.text(USER, "hi");
    sandbox.advance(10);
    let received = app.wait_for(6);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        app.received.lock().unwrap().len(),
        6,
        "each of the 3 webhooks exactly twice"
    );
    let mut bodies: Vec<&str> = received.iter().map(|r| r.body.as_str()).collect();
    bodies.sort();
    for pair in bodies.chunks(2) {
        assert_eq!(pair[0], pair[1]);
    }
}

#[test]
fn state_survives_a_restart_with_a_database() {
    let dir = fresh("restart");
    let accounts = accounts(&dir);
    let database = dir.join("sandbox.db").display().to_string();
    let args = [
        "--accounts",
        accounts.as_str(),
        "--database",
        database.as_str(),
        "--clock-start",
        "2026-03-02T09:00:00Z",
    ];
    let sandbox = Sandbox::start(&dir, &args);
    sandbox.inbound(USER, json!({}));
    let (_, first) = sandbox.text(USER, "hi");
    let custom =
        json!({"name": "kept", "language": "en_US", "category": "UTILITY", "components": []});
    assert_eq!(
        sandbox
            .post(&format!("/v23.0/{WABA}/message_templates"), &custom)
            .0,
        200
    );
    sandbox.advance(3600);
    let (_, before) = sandbox.get("/_sandbox/events");
    let clock_before = sandbox.get_json("/_sandbox/clock")["now"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    drop(sandbox);

    let sandbox = Sandbox::start(&dir, &args);
    let (_, after) = sandbox.get("/_sandbox/events");
    assert_eq!(before, after);
    let clock_after = sandbox.get_json("/_sandbox/clock")["now"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert!(
        clock_after >= clock_before,
        "--clock-start does not rewind a sandbox with history"
    );
    let names: Vec<Value> = sandbox.get_json(&format!("/v23.0/{WABA}/message_templates"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("hello_world"), json!("kept")]);
    // The window the user opened is still open, and wamids are not reused.
    let (status, second) = sandbox.text(USER, "still here");
    assert_eq!(status, 200);
    assert_ne!(wamid(&first), wamid(&second));
    sandbox.advance(10);
    assert_eq!(
        sandbox.statuses_of(&wamid(&second)).last().unwrap()["status"],
        "delivered"
    );
    assert_replay_agrees(&sandbox, &dir, &accounts);
}

/// A status carries the price its message has when the status is sent:
/// `sent` the price foreseen for the planned delivery, `delivered` the one
/// after everything that happened before it. Here the user writes between
/// the two (so the delivery falls inside the customer service window, where
/// a utility template is free), and the sandbox restarts in between: the
/// delivered status and `GET /_sandbox/charges` agree with a replay.
#[test]
fn a_user_message_before_a_planned_delivery_reprices_it_across_a_restart() {
    let dir = fresh("reprice");
    let accounts = accounts(&dir);
    let database = dir.join("sandbox.db").display().to_string();
    let args = [
        "--accounts",
        accounts.as_str(),
        "--database",
        database.as_str(),
        "--clock-start",
        "2026-02-10T12:00:00Z",
        "--delivered-after",
        "3600",
    ];
    let sandbox = Sandbox::start(&dir, &args);
    let (status, template) = sandbox.template(USER, "hello_world", "en_US");
    assert_eq!(status, 200, "{template}");
    let template = wamid(&template);
    sandbox.advance(10);
    let sent = sandbox.statuses_of(&template);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"})
    );
    sandbox.inbound(USER, json!({"text": "Is that my code?"}));
    drop(sandbox);

    let sandbox = Sandbox::start(&dir, &args);
    sandbox.advance(3600);
    let statuses = sandbox.statuses_of(&template);
    assert_eq!(
        statuses
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["sent", "delivered"]
    );
    assert_eq!(
        statuses[1]["pricing"],
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "utility"})
    );
    let charges = assert_replay_agrees(&sandbox, &dir, &accounts);
    let charge = charge_of(&charges, &template).unwrap();
    assert_eq!(
        (charge["type"].as_str(), charge["amount"].as_str()),
        (Some("free_customer_service"), Some("0"))
    );
}

/// Meta's OpenAPI schemas, derived (see the folder's PROVENANCE.md).
struct Schemas(Value);

impl Schemas {
    fn load() -> Schemas {
        let path = common::root().join("crates/sandbox/tests/data/meta-openapi/schemas.json");
        Schemas(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
    }

    fn errors(&self, root: &str, instance: &Value) -> Vec<String> {
        let mut schema = self.0["roots"][root].clone();
        assert!(schema.is_object(), "no schema {root}");
        schema["$defs"] = self.0["$defs"].clone();
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    fn check(&self, root: &str, instance: &Value) {
        let errors = self.errors(root, instance);
        assert!(errors.is_empty(), "{root}: {errors:#?}\n{instance:#}");
    }
}

#[test]
fn requests_responses_and_webhooks_conform_to_meta_s_openapi_schemas() {
    let schemas = Schemas::load();
    let examples: Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::root().join("crates/sandbox/tests/data/meta-openapi/examples.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = fresh("conformance");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(&dir, &["--accounts", &accounts]);
    sandbox.inbound(USER, json!({}));

    // Meta's own examples pass the derived schema — except where Meta's
    // spec contradicts itself, listed here with the contradiction, so that
    // a derivation that loses fields shows up as a new failure.
    const META_CONTRADICTIONS: [(&str, &str); 9] = [
        (
            "Send Catalog Template Message",
            "button index 0 is a number, the schema says string; sub_type CATALOG is not in its enum",
        ),
        (
            "Send Flow Template Message",
            "sub_type flow is not in the enum quick_reply, url, catalog",
        ),
        (
            "Send Location Message",
            "latitude/longitude are numbers, the schema says string",
        ),
        (
            "Send Reply to Location Message",
            "latitude/longitude are numbers, the schema says string",
        ),
        (
            "Send Multi-Product Message",
            "header type is the placeholder <HEADER_TYPE>",
        ),
        (
            "Send Order Details Message",
            "interactive type order_details is not in the schema's enum",
        ),
        (
            "Send Order Status Message",
            "interactive type order_status is not in the schema's enum",
        ),
        (
            "Send Sample Issue Resolution Template",
            "button index 0 and 1 are numbers, the schema says string",
        ),
        (
            "Send typing indicator and read receipt",
            "a read receipt is not a message schema at all",
        ),
    ];
    let failing: Vec<&str> = examples
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, example)| !schemas.errors("send_message_request", example).is_empty())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        failing,
        META_CONTRADICTIONS
            .map(|(name, _)| name)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (name, example) in examples.as_object().unwrap() {
        let mut body = example.clone();
        if body.get("to").is_some() {
            body["to"] = json!(USER);
        }
        // Meta's examples hold placeholders (`<http(s)://audio-url>`) where
        // an app has a real link.
        for media in ["image", "audio", "video", "document", "sticker"] {
            if let Some(link) = body.pointer_mut(&format!("/{media}/link"))
                && !link.as_str().unwrap().starts_with("https://")
            {
                *link = json!(format!("https://example.com/{media}"));
            }
        }
        let (status, answer) = sandbox.send(body);
        if status == 200 {
            if answer.get("success").is_none() {
                schemas.check("send_message_response", &answer);
            }
            accepted.push(name.clone());
        } else {
            schemas.check("error_response", &answer);
            refused.push((
                name.clone(),
                answer["error"]["error_data"]["details"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    // Every free-form type the sandbox supports goes through as Meta shows it.
    for wanted in [
        "Send Text Message",
        "Send Reply to Text Message",
        "Send Image Message by URL",
        "Send Audio Message by URL",
        "Send Video Message by URL",
        "Send Document Message by URL",
        "Send Sticker Message by URL",
        "Send Reply with Reaction Message",
        "Send Reply Button",
        "Send List Message",
        "Send Location Message",
        "Send Contact Message",
        "Send Test Message",
    ] {
        assert!(
            accepted.iter().any(|a| a == wanted),
            "{wanted} refused: {refused:#?}"
        );
    }
    // What is refused is refused for a reason the sandbox states: media by
    // an id nobody uploaded, templates it does not have, read receipts of
    // messages it never saw.
    for (name, details) in &refused {
        assert!(
            details.contains("no media of that id")
                || details.contains("does not exist in")
                || details.contains("message_id"),
            "{name}: {details}"
        );
    }

    sandbox.advance(10);
    let webhooks = sandbox.webhooks();
    assert!(webhooks.len() > 20);
    for body in &webhooks {
        schemas.check("webhook", body);
        let value = &body["entry"][0]["changes"][0]["value"];
        if value.get("statuses").is_some() {
            schemas.check("status_value", value);
        } else {
            schemas.check("incoming_message_value", value);
        }
    }

    let created = json!({"name": "conformance", "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "Hi {{1}}"}]});
    schemas.check("template_create_request", &created);
    let (status, answer) = sandbox.post(&format!("/v23.0/{WABA}/message_templates"), &created);
    assert_eq!(status, 200);
    schemas.check("template_create_response", &answer);
    schemas.check(
        "templates_list_response",
        &sandbox.get_json(&format!("/v23.0/{WABA}/message_templates")),
    );
    schemas.check(
        "phone_number",
        &sandbox.get_json(&format!("/v23.0/{PHONE}")),
    );
    // The schemas are not vacuous: a wrong body fails them.
    let broken = std::panic::catch_unwind(|| {
        schemas.check("send_message_response", &json!({"messages": "wamid"}))
    });
    assert!(broken.is_err());
}

/// Runs a client script that drives the sandbox and prints a JSON summary
/// as its last line; fails with everything it said when it fails.
fn client_summary(client: &str, mut command: std::process::Command) -> Value {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{client}'s script runs: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "{client} against the sandbox failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// pywa, a WhatsApp client library from PyPI, sends every kind (text,
/// templates, buttons, a list, a location, a reaction, contacts, media by
/// link, and an image uploaded, described, downloaded, sent by id, deleted)
/// through the sandbox (base URL redirected) and its own webhook handler
/// verifies and parses the sandbox's signed webhooks
/// (`crates/cli/tests/pywa/sandbox_client.py` says what is checked).
#[test]
fn pywa_sends_through_the_sandbox_and_accepts_its_webhooks() {
    let Some(python) = common::test_dependency(
        "WAMETER_TEST_PYTHON",
        "scripts/pywa-for-tests.sh",
        "pywa against the sandbox",
    ) else {
        return;
    };
    let mut command = std::process::Command::new(python);
    command
        .arg(common::root().join("crates/cli/tests/pywa/sandbox_client.py"))
        .arg(env!("CARGO_BIN_EXE_wameter"));
    let summary = client_summary("pywa", command);
    assert_eq!(summary["pywa"], "ok");
    assert_eq!(
        summary["billed"], "0.0068",
        "hello_world to Brazil, utility, card usd-2026-10-01"
    );
}

/// heyoo, a WhatsApp wrapper from PyPI, sends through the sandbox with its
/// two URL attributes pointed at it: a text, a template, and media
/// uploaded, downloaded, sent by id and deleted
/// (`crates/cli/tests/heyoo/sandbox_client.py`).
#[test]
fn heyoo_sends_and_uploads_media_through_the_sandbox() {
    let Some(python) = common::test_dependency(
        "WAMETER_TEST_PYTHON",
        "scripts/pywa-for-tests.sh",
        "heyoo against the sandbox",
    ) else {
        return;
    };
    let mut command = std::process::Command::new(python);
    command
        .arg(common::root().join("crates/cli/tests/heyoo/sandbox_client.py"))
        .arg(env!("CARGO_BIN_EXE_wameter"));
    let summary = client_summary("heyoo", command);
    assert_eq!(summary["heyoo"], "ok");
    assert_eq!(summary["sent"], 3, "a text, a template and an image by id");
    assert_eq!(summary["downloaded"], 3000);
}

/// whatsapp-api-js, a WhatsApp client library from npm, verifies the
/// sandbox's webhooks with its own handler: users writing in Portuguese,
/// Hindi and emoji arrive signed as Meta signs (non-ASCII as `\uXXXX`, the
/// form that library hashes) with their text intact
/// (`crates/cli/tests/whatsapp-api-js/sandbox_webhooks.mjs`). Raw UTF-8
/// bodies failed its check on every such message (issue 22). A reply
/// button tapped in reply to a message, and a photo, arrive in Meta's shape.
#[test]
fn whatsapp_api_js_verifies_the_sandboxs_webhooks_in_any_language() {
    let Some(library) = common::test_dependency(
        "WAMETER_TEST_WHATSAPP_API_JS",
        "scripts/whatsapp-api-js-for-tests.sh",
        "whatsapp-api-js against the sandbox",
    ) else {
        return;
    };
    let mut command = std::process::Command::new("node");
    command
        .arg(common::root().join("crates/cli/tests/whatsapp-api-js/sandbox_webhooks.mjs"))
        .arg(env!("CARGO_BIN_EXE_wameter"))
        .arg(library);
    let summary = client_summary("whatsapp-api-js", command);
    assert_eq!(summary["whatsapp-api-js"], "ok");
    assert_eq!(
        summary["verified"], 5,
        "three texts, a button reply and an image"
    );
}

/// whatsapp-api-js sends through the sandbox with the shim its own options
/// allow (`ponyfill.fetch`): every message kind it builds (text, template,
/// buttons, list, location, reaction, contacts, media by link), and media
/// uploaded, described, downloaded, sent by id and deleted
/// (`crates/cli/tests/whatsapp-api-js/sandbox_send.mjs`).
#[test]
fn whatsapp_api_js_sends_and_uploads_media_through_the_sandbox() {
    let Some(library) = common::test_dependency(
        "WAMETER_TEST_WHATSAPP_API_JS",
        "scripts/whatsapp-api-js-for-tests.sh",
        "whatsapp-api-js against the sandbox",
    ) else {
        return;
    };
    let mut command = std::process::Command::new("node");
    command
        .arg(common::root().join("crates/cli/tests/whatsapp-api-js/sandbox_send.mjs"))
        .arg(env!("CARGO_BIN_EXE_wameter"))
        .arg(library);
    let summary = client_summary("whatsapp-api-js", command);
    assert_eq!(summary["whatsapp-api-js"], "ok");
    assert_eq!(
        summary["sent"], 12,
        "a text, a template, buttons, a list, a location, a reaction, contacts, four media by link, an image by id"
    );
    assert_eq!(summary["downloaded"], 4096);
}

/// No clock move can panic the sandbox (issue 22): an advance past what a
/// timestamp holds, or a date centuries away, is a 400, and the sandbox
/// goes on serving; a `--database` keeps only clocks it can read back.
#[test]
fn an_impossible_clock_move_is_a_400_and_the_sandbox_goes_on() {
    let dir = fresh("clock-bounds");
    let database = dir.join("sandbox.db");
    let sandbox = Sandbox::start(&dir, &["--database", database.to_str().unwrap()]);
    for body in [
        json!({"advance_seconds": i64::MAX}),
        json!({"advance_seconds": i64::MIN}),
        json!({"set": "9999-12-30T00:00:00Z"}),
    ] {
        let (status, answer) = sandbox.post("/_sandbox/clock", &body);
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, answer) = sandbox.post("/_sandbox/clock", &json!({"set": "2200-01-01T00:00:00Z"}));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = sandbox.post("/_sandbox/clock", &json!({"advance_seconds": i64::MAX}));
    assert_eq!(status, 400, "{answer}");
    assert!(
        sandbox.advance(60)["now"]
            .as_str()
            .unwrap()
            .starts_with("2200-01-01T00:01"),
        "still serving, clock intact"
    );
    drop(sandbox);
    // It starts again on the same database, at the clock it kept.
    let again = Sandbox::start(&dir, &["--database", database.to_str().unwrap()]);
    assert!(
        again.advance(0)["now"]
            .as_str()
            .unwrap()
            .starts_with("2200-01-01")
    );
}

/// A multipart form as clients send an upload: `messaging_product`, `type`
/// and the file part.
fn upload(sandbox: &Sandbox, mime_type: &str, part_type: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "wameter-test-boundary";
    let mut body = Vec::new();
    for (name, value) in [("messaging_product", "whatsapp"), ("type", mime_type)] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: {part_type}\r\n\r\n").as_bytes());
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = sandbox
        .agent
        .post(&sandbox.url(&format!("/v23.0/{PHONE}/media")))
        .header("Authorization", "Bearer app-token")
        .header(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send(&body[..])
        .expect("sandbox answers");
    let text = response.body_mut().read_to_string().unwrap();
    (
        response.status().as_u16(),
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[test]
fn media_is_uploaded_described_downloaded_sent_by_id_and_deleted_like_graph() {
    use sha2::Digest;
    let dir = fresh("media");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-02-10T12:00:00Z",
        ],
    );
    sandbox.inbound(USER, json!({"text": "Send me the photo"}));

    // A JPEG's first bytes; the sandbox does not decode images.
    let photo: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0]
        .iter()
        .copied()
        .chain((0..5000u32).map(|i| (i % 251) as u8))
        .collect();
    let (status, uploaded) = upload(&sandbox, "image/jpeg", "application/octet-stream", &photo);
    assert_eq!(status, 200, "{uploaded}");
    let id = uploaded["id"].as_str().unwrap().to_string();
    assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
    // Each answer as Meta's OpenAPI description has it.
    let schemas = Schemas::load();
    schemas.check("media_upload_response", &uploaded);

    let described = sandbox.get_json(&format!("/v23.0/{id}"));
    schemas.check("media_url_response", &described);
    assert_eq!(described["mime_type"], "image/jpeg");
    assert_eq!(
        described["file_size"],
        photo.len().to_string(),
        "a string, as Graph writes it"
    );
    assert_eq!(
        described["sha256"],
        hex::encode(sha2::Sha256::digest(&photo))
    );
    let url = described["url"].as_str().unwrap();
    let path = &url[url.find("/_sandbox/").unwrap()..];
    let mut response = sandbox
        .agent
        .get(&sandbox.url(path))
        .header("Authorization", "Bearer app-token")
        .call()
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(
        response.body_mut().read_to_vec().unwrap(),
        photo,
        "the bytes uploaded"
    );
    // Another number's id check, as `?phone_number_id=` asks.
    let (status, _) = sandbox.get(&format!("/v23.0/{id}?phone_number_id=999"));
    assert_ne!(status, 200);

    let image = |id: &str| json!({"messaging_product": "whatsapp", "to": USER, "type": "image", "image": {"id": id, "caption": "Here"}});
    let (status, sent) = sandbox.send(image(&id));
    assert_eq!(status, 200, "{sent}");
    let (status, refused) = sandbox.send(image("2000000000000999"));
    assert_eq!(status, 400);
    assert!(
        refused["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("2000000000000999"),
        "{refused}"
    );
    let (status, refused) = sandbox.send(json!({"messaging_product": "whatsapp", "to": USER, "type": "sticker", "sticker": {"id": id}}));
    assert_eq!(status, 400, "a JPEG is no sticker: {refused}");
    let (status, sent) = sandbox.send(json!({"messaging_product": "whatsapp", "to": USER, "type": "document", "document": {"id": id}}));
    assert_eq!(status, 200, "a document may be any upload: {sent}");

    // Meta's types and sizes.
    let (status, refused) = upload(&sandbox, "image/gif", "image/gif", b"GIF89a");
    assert_eq!(
        (status, refused["error"]["code"].as_u64()),
        (400, Some(131053)),
        "{refused}"
    );
    let (status, refused) = upload(&sandbox, "image/png", "image/png", &vec![0u8; 5_000_001]);
    assert_eq!(
        (status, refused["error"]["code"].as_u64()),
        (400, Some(131053)),
        "{refused}"
    );

    let mut response = sandbox
        .agent
        .delete(&sandbox.url(&format!("/v23.0/{id}")))
        .header("Authorization", "Bearer app-token")
        .call()
        .unwrap();
    let deleted: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(deleted, json!({"success": true}));
    schemas.check("media_delete_response", &deleted);
    let (status, gone) = sandbox.get(&format!("/v23.0/{id}"));
    assert_ne!(status, 200, "{gone}");
    let (status, _) = sandbox.send(image(&id));
    assert_eq!(status, 400, "a deleted upload cannot be sent");
}

/// Graph versions as Meta serves them (issue 22): one past its end at the
/// sandbox clock is served as the oldest still available (Meta's automatic
/// upgrade), so an SDK pinned to v14.0 (heyoo's default) still sends, and
/// its statuses take that version's shape; one Meta has not released is an
/// unknown path.
#[test]
fn graph_versions_are_served_as_meta_serves_them() {
    let dir = fresh("versions");
    let accounts = accounts(&dir);
    // v23 ends 2027-10-08: at this clock, v14 and v23 are served as v24,
    // whose statuses carry no `conversation` outside a free entry point.
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2027-11-02T12:00:00Z",
        ],
    );
    let hello = json!({"messaging_product": "whatsapp", "to": USER, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let (status, sent) = sandbox.post(&format!("/v14.0/{PHONE}/messages"), &hello);
    assert_eq!(status, 200, "{sent}");
    let sent = wamid(&sent);
    sandbox.advance(10);
    let statuses = sandbox.statuses_of(&sent);
    assert!(!statuses.is_empty());
    for status in &statuses {
        assert!(
            status.get("conversation").is_none(),
            "served as v24: {status}"
        );
    }
    let (status, unknown) = sandbox.post(&format!("/v99.0/{PHONE}/messages"), &hello);
    assert_eq!(
        (status, unknown["error"]["code"].as_u64()),
        (404, Some(2500)),
        "{unknown}"
    );
    assert!(
        unknown["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("not a Graph API version"),
        "{unknown}"
    );
}

/// The 2026-10 rules on the wire (platform-2026 §1.2 and §5.14): a number's
/// first 1,000 service deliveries of a month carry `free_customer_service`,
/// the 1,001st `regular` and a price, as Meta's status webhooks do; the
/// sandbox's charges agree with a replay of its log.
#[test]
fn the_1001st_service_delivery_of_a_month_is_regular() {
    let dir = fresh("allowance");
    let accounts = accounts(&dir);
    let sandbox = Sandbox::start(
        &dir,
        &[
            "--accounts",
            &accounts,
            "--clock-start",
            "2026-11-02T12:00:00Z",
        ],
    );
    sandbox.inbound(USER, json!({"text": "Hi"}));
    let mut sent = Vec::new();
    for n in 0..1001 {
        let (status, answer) = sandbox.text(USER, &format!("reply {n}"));
        assert_eq!(status, 200, "{answer}");
        sent.push(wamid(&answer));
        sandbox.advance(1);
    }
    sandbox.advance(600);
    let types: std::collections::HashMap<String, Value> = sandbox
        .webhooks()
        .iter()
        .filter_map(|body| body.pointer("/entry/0/changes/0/value/statuses/0").cloned())
        .filter(|status| status["status"] == "delivered")
        .map(|status| {
            (
                status["id"].as_str().unwrap().to_string(),
                status["pricing"].clone(),
            )
        })
        .collect();
    assert_eq!(types.len(), 1001);
    let free = sent[..1000]
        .iter()
        .filter(|id| types[*id]["type"] == "free_customer_service")
        .count();
    assert_eq!(free, 1000);
    assert_eq!(
        types[&sent[1000]],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "service"})
    );
    let charges = assert_replay_agrees(&sandbox, &dir, &accounts);
    let last = charge_of(&charges, &sent[1000]).unwrap();
    assert_eq!(
        (last["rule"].as_str(), last["billable"].as_bool()),
        (Some("service-message-charged"), Some(true))
    );
    assert_ne!(last["amount"], "0");
}
