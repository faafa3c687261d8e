//! Bad input costs only itself, and configuration that would silently
//! widen access or fail later is refused at once (issue 21, items 6, 8, 9),
//! through the real binary.

mod common;
#[path = "common/server.rs"]
mod server;

use std::time::Duration;

use common::{json, stderr, temp_dir, wameter};
use server::*;

const SEND: &str = r#"{"type":"outbound","at":"2026-02-10T10:00:00Z","business":"106540352242922","user":"+5511999990001","id":"wamid.a","template":{"name":"t","category":"marketing"}}"#;
const DELIVERED: &str =
    r#"{"type":"status","at":"2026-02-10T10:00:05Z","id":"wamid.a","status":"delivered"}"#;

#[test]
fn a_byte_order_mark_or_a_bad_byte_costs_only_its_line() {
    let path = temp_dir("bad-bytes").join("log.ndjson");
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(SEND.as_bytes());
    bytes.extend_from_slice(b"\n{\"type\":\"inbound\",\"note\":\"caf\xE9\"}\n");
    bytes.extend_from_slice(DELIVERED.as_bytes());
    bytes.push(b'\n');
    std::fs::write(&path, &bytes).unwrap();

    // The BOM does not spoil line 1; line 2 is reported by number and skipped.
    let output = wameter(&["replay", path.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let document = json(&output);
    assert_eq!(document["totals"]["amount"], "0.0625", "{document}");
    assert!(
        stderr(&output)
            .contains("log.ndjson:line 2: not valid UTF-8 (from byte 30 of the line): skipped"),
        "{}",
        stderr(&output)
    );
    // --strict makes it fatal, naming the line.
    let strict = wameter(&["replay", path.to_str().unwrap(), "--strict"]);
    assert!(!strict.status.success());
    assert!(
        stderr(&strict).contains("line 2: not valid UTF-8"),
        "{}",
        stderr(&strict)
    );
}

#[test]
fn an_accounts_currency_meta_does_not_bill_in_is_refused_when_read() {
    let dir = temp_dir("bad-currency");
    let (log, accounts) = (dir.join("log.ndjson"), dir.join("accounts.toml"));
    std::fs::write(&log, format!("{SEND}\n{DELIVERED}\n")).unwrap();
    std::fs::write(
        &accounts,
        "[[business]]\nphone_number_id = \"106540352242922\"\ncurrency = \"XYZ\"\n",
    )
    .unwrap();
    let output = wameter(&[
        "replay",
        log.to_str().unwrap(),
        "--accounts",
        accounts.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("accounts.toml")
            && text.contains("currency")
            && text.contains("`XYZ` is not a currency Meta bills in"),
        "{text}"
    );
}

#[test]
fn tokens_must_not_share_a_secret_and_the_scheme_is_case_insensitive() {
    let dir = fresh_dir("tokens");
    std::fs::write(
        dir.join("wameter.toml"),
        "[[tokens]]\nname = \"a\"\ntoken = \"one-secret-for-two-scopes\"\nwabas = [\"A\"]\n\n[[tokens]]\nname = \"b\"\ntoken = \"one-secret-for-two-scopes\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wameter"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &sqlite_in(&dir),
        ])
        .current_dir(&dir)
        .env("WAMETER_APP_SECRET", SECRET)
        .env("WAMETER_HOME", dir.join("home"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("API tokens `a` and `b` have the same secret"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    std::fs::remove_file(dir.join("wameter.toml")).unwrap();
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![],
    });
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = server
            .agent
            .get(&server.url("/v1/charges"))
            .header("Authorization", &format!("{scheme} {API_TOKEN}"))
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{scheme}");
    }
    // A line of POST /v1/events that is not UTF-8 is refused alone.
    let mut body = format!("{SEND}\n").into_bytes();
    body.extend_from_slice(b"{\"bad\":\"\xFF\"}\n");
    body.extend_from_slice(format!("{DELIVERED}\n").as_bytes());
    let mut response = server
        .agent
        .post(&server.url("/v1/events"))
        .header("Authorization", &format!("Bearer {API_TOKEN}"))
        .send(&body[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"][0]["line"], 2, "{answer}");
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8"),
        "{answer}"
    );
}

#[test]
fn an_implausible_timestamp_is_priced_as_dated_and_flagged_by_name() {
    let far = r#"{"type":"outbound","at":"5138-03-01T10:00:00Z","business":"106540352242922","user":"+5511999990001","id":"wamid.far","template":{"name":"t","category":"marketing"}}
{"type":"status","at":"5138-03-01T10:00:05Z","id":"wamid.far","status":"delivered"}
{"type":"inbound","at":"2013-05-01T10:00:00Z","business":"106540352242922","user":"+5511999990001","id":"wamid.old"}"#;
    let path = temp_dir("implausible").join("log.ndjson");
    std::fs::write(&path, format!("{far}\n")).unwrap();
    let document = json(&wameter(&["replay", path.to_str().unwrap(), "--json"]));
    let messages: Vec<&str> = document["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "implausible_timestamp")
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("outbound message wamid.far is dated 5138-03-01T10:00:00Z, more than a day after it was priced")), "{messages:?}");
    assert!(
        messages.iter().any(|m| m
            .starts_with("inbound message wamid.old is dated 2013-05-01T10:00:00Z, before 2014")),
        "{messages:?}"
    );
    assert_eq!(
        document["charges"][0]["message_id"], "wamid.far",
        "kept and priced as dated"
    );

    // The server says the same with the charges it keeps.
    let dir = fresh_dir("implausible");
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![],
    });
    let (status, answer) = server.post_events(far, API_TOKEN);
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
    let charges = server.get_json("/v1/charges");
    assert_eq!(charges["charges"][0]["message_id"], "wamid.far");
    let flagged = charges["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "implausible_timestamp")
        .count();
    assert!(flagged >= 2, "{}", charges["warnings"]);
}

#[test]
fn a_store_that_cannot_write_answers_503_and_healthz_says_so_until_it_writes_again() {
    let dir = fresh_dir("store-full");
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![],
    });
    let body = |n: u32| {
        inbound_webhook(
            "106540352242922",
            "5511999990001",
            &format!("wamid.full-{n}"),
            1_770_717_600 + i64::from(n),
        )
    };
    assert_eq!(server.post_signed(body(0).as_bytes()), 200);
    assert_eq!(server.get("/healthz", None).0, 200);
    // Settled, so the background settler has nothing to write meanwhile.
    server.get_json("/v1/charges");

    // Every write now fails inside the database, as on a full disk.
    let db = rusqlite::Connection::open(dir.join("wameter.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch("CREATE TRIGGER full BEFORE INSERT ON webhook_bodies BEGIN SELECT RAISE(FAIL, 'database or disk is full (simulated)'); END;").unwrap();
    let (status, text) = server.post_webhook(body(1).as_bytes(), Some(&sign(body(1).as_bytes())));
    assert_eq!(status, 503, "{text}");
    let (status, health) = server.get("/healthz", None);
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("disk is full (simulated)"), "{health}");
    assert_eq!(server.get("/readyz", None).0, 503);
    assert!(
        server
            .get("/metrics", None)
            .1
            .contains("wameter_store_failing 1")
    );

    // Writes work again: the next one clears it.
    db.execute_batch("DROP TRIGGER full;").unwrap();
    assert_eq!(server.post_signed(body(1).as_bytes()), 200);
    assert_eq!(server.get("/healthz", None).0, 200);
    assert_eq!(
        server.all_events(API_TOKEN).len(),
        2,
        "nothing lost, nothing doubled"
    );

    // A query string that does not read is a JSON error like every other.
    let (status, text) = server.get("/v1/events?after=not-a-number", Some(API_TOKEN));
    assert_eq!(status, 400, "{text}");
    let error: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(error["error"]["code"], "bad_query", "{text}");
}

#[test]
fn an_unknown_webhook_field_or_status_is_kept_said_and_counted() {
    let dir = fresh_dir("ignored");
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec![],
    });
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"brand_new_field","value":{"x":1}},{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.n","status":"brand_new_status","timestamp":"1770717600","recipient_id":"5511999990001"}]}}]}]}"#;
    assert_eq!(server.post_signed(body.as_bytes()), 200);
    let kept = server.get_json("/v1/webhooks");
    let reason = kept["webhooks"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("entry[0].changes[0].value: ignored (field brand_new_field)"),
        "{reason}"
    );
    assert!(
        reason.contains("statuses[0]: ignored (status brand_new_status)"),
        "{reason}"
    );
    let metrics = server.get("/metrics", None).1;
    assert!(
        metrics.contains("wameter_webhook_items_ignored_total{kind=\"field\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wameter_webhook_items_ignored_total{kind=\"status\"} 1"),
        "{metrics}"
    );
}

#[test]
fn rates_check_names_cells_under_no_column_and_explains_the_built_in_layout() {
    let path = temp_dir("rates-extra").join("card.csv");
    std::fs::write(&path, "Cost per message in USD on the WhatsApp Business Platform, effective July 1, 2026,,,\nMarket,Currency,Marketing,Utility\nIndia,$US,0.0107,0.0014,0.5\n").unwrap();
    let text = common::stdout(&wameter(&["rates", "check", path.to_str().unwrap()]));
    assert!(text.contains("row 3: 5 cells where the header has 4: `0.5` and any after it are under no column and ignored"), "{text}");
    let built_in = common::root()
        .join("data/ratecards/unknown-repo-idx53635240303_effective-2026-01-01_USD.csv");
    let text = common::stdout(&wameter(&["rates", "check", built_in.to_str().unwrap()]));
    assert!(
        text.contains("this looks like one of wameter's normalised transcriptions"),
        "{text}"
    );
}
