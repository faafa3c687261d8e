//! Two tenants on one `wameter serve` (issue 18): one tenant's token can
//! neither hide, replace nor be matched to another tenant's events, on
//! SQLite and on PostgreSQL. Each tenant's `/v1/charges` must equal
//! `wameter replay` of its own webhooks, whatever the other posted first.

mod common;
// The shared helpers; each test file uses some of them.
#[path = "common/server.rs"]
mod server;

use server::*;

/// Tenant A: the business of the Meta-shaped test log, under the WABA its
/// entries name.
const A_BUSINESS: &str = "106540352242922";
const A_WABA: &str = "102290129340398";
const A_TOKEN: &str = "token-for-tenant-a";
/// Tenant B: the WABA `status_webhook` and `inbound_webhook` put it under.
const B_BUSINESS: &str = "200000000000001";
const B_WABA: &str = "WABA-200000000000001";
const B_TOKEN: &str = "token-for-tenant-b";
const B_USER: &str = "5511988880000";

fn setup(dir: &std::path::Path) -> Vec<String> {
    std::fs::write(
        dir.join("accounts.toml"),
        format!("[[business]]\nphone_number_id = \"{A_BUSINESS}\"\nwaba = \"{A_WABA}\"\n\n[[business]]\nphone_number_id = \"{B_BUSINESS}\"\nwaba = \"{B_WABA}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("wameter.toml"),
        format!(
            "accounts = \"accounts.toml\"\n\n[[tokens]]\nname = \"a\"\ntoken = \"{A_TOKEN}\"\nwabas = [\"{A_WABA}\"]\n\n[[tokens]]\nname = \"b\"\ntoken = \"{B_TOKEN}\"\nwabas = [\"{B_WABA}\"]\n"
        ),
    )
    .unwrap();
    // B's real traffic, February 2026: the user writes, B replies with a
    // marketing template (delivered, then read) and a utility one (read).
    let at = 1_770_717_600; // 2026-02-10T10:00:00Z
    let b_bodies = vec![
        inbound_webhook(B_BUSINESS, B_USER, "wamid.B-in", at),
        status_webhook(
            B_BUSINESS,
            B_USER,
            "wamid.B-1",
            "sent",
            at + 600,
            "marketing",
            "regular",
            true,
        ),
        status_webhook(
            B_BUSINESS,
            B_USER,
            "wamid.B-1",
            "delivered",
            at + 605,
            "marketing",
            "regular",
            true,
        ),
        status_webhook(
            B_BUSINESS,
            B_USER,
            "wamid.B-1",
            "read",
            at + 900,
            "marketing",
            "regular",
            true,
        ),
        status_webhook(
            B_BUSINESS,
            B_USER,
            "wamid.B-2",
            "read",
            at + 1200,
            "utility",
            "regular",
            true,
        ),
    ];
    std::fs::write(dir.join("b.ndjson"), b_bodies.join("\n") + "\n").unwrap();
    b_bodies
}

/// `wameter replay LOG --accounts … --json`'s charges and totals.
fn replayed(
    dir: &std::path::Path,
    log: &std::path::Path,
) -> (serde_json::Value, serde_json::Value) {
    let accounts = dir.join("accounts.toml");
    let document = common::json(&common::wameter(&[
        "replay",
        log.to_str().unwrap(),
        "--accounts",
        accounts.to_str().unwrap(),
        "--json",
    ]));
    (document["charges"].clone(), document["totals"].clone())
}

fn charges_of(server: &Server, token: &str) -> serde_json::Value {
    let (status, body) = server.get("/v1/charges", Some(token));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn a_status_line_cannot_shadow_another_tenants_webhook(dir: &std::path::Path, database: String) {
    let b_bodies = setup(dir);
    // wameter.toml is read from the working directory.
    let server = Server::start(Start {
        dir,
        database,
        extra: vec![],
    });
    let meta_log = common::root().join("crates/cli/tests/data/meta/webhooks.ndjson");
    for body in bodies(&meta_log) {
        assert_eq!(server.post_signed(body.as_bytes()), 200);
    }

    // The attack: A knows B's wamids and instants before B's webhooks
    // arrive, and posts statuses carrying them (under A's own business, the
    // only one A's token may name).
    let forged = [
        r#"{"type":"status","at":"2026-02-10T10:10:05Z","business":"106540352242922","id":"wamid.B-1","status":"delivered"}"#,
        r#"{"type":"status","at":"2026-02-10T10:20:00Z","business":"106540352242922","id":"wamid.B-2","status":"read"}"#,
        r#"{"type":"status","at":"2026-02-10T10:05:00Z","business":"106540352242922","id":"wamid.B-2","status":"failed","error":131026}"#,
    ];
    let (status, answer) = server.post_events(&forged.join("\n"), A_TOKEN);
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(3)),
        "unknown wamids are taken, under A: {answer}"
    );
    // Naming B's business, or none, is refused outright.
    let (_, answer) = server.post_events(r#"{"type":"status","at":"2026-02-10T10:10:05Z","business":"200000000000001","id":"wamid.B-1","status":"delivered"}"#, A_TOKEN);
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("does not see business"),
        "{answer}"
    );
    let (_, answer) = server.post_events(
        r#"{"type":"status","at":"2026-02-10T10:10:05Z","id":"wamid.B-1","status":"delivered"}"#,
        A_TOKEN,
    );
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("business"),
        "{answer}"
    );

    // B's real webhooks: every one stored, none taken for a duplicate of A's lines.
    for body in &b_bodies {
        assert_eq!(server.post_signed(body.as_bytes()), 200);
    }
    let b_events = server.all_events(B_TOKEN);
    assert_eq!(b_events.len(), b_bodies.len(), "{b_events:?}");

    // Now that B's messages are known, A's lines for them are refused.
    let (_, answer) =
        server.post_events(forged[0].replace("10:10:05", "10:10:06").as_str(), A_TOKEN);
    assert_eq!(answer["accepted"], 0, "{answer}");
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("message wamid.B-1 was sent by a business this token does not see"),
        "{answer}"
    );

    // Each tenant is charged exactly what a replay of its own webhooks says.
    let (b_charges, b_totals) = replayed(dir, &dir.join("b.ndjson"));
    assert_eq!(
        b_charges.as_array().unwrap().len(),
        2,
        "the test means something: {b_charges}"
    );
    let served_b = charges_of(&server, B_TOKEN);
    assert_eq!(served_b["charges"], b_charges);
    assert_eq!(served_b["totals"], b_totals);
    let (a_charges, a_totals) = replayed(dir, &meta_log);
    let served_a = charges_of(&server, A_TOKEN);
    assert_eq!(served_a["charges"], a_charges);
    assert_eq!(served_a["totals"], a_totals);
    // A's forged lines are kept apart, under A, and reported to A as
    // statuses of messages A never sent.
    let unknown: Vec<&str> = served_a["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "unknown_status_id")
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert!(
        unknown.iter().any(|m| m.contains("wamid.B-1"))
            && unknown.iter().any(|m| m.contains("wamid.B-2")),
        "{unknown:?}"
    );
    assert!(
        !served_b["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "unknown_status_id"),
        "{}",
        served_b["warnings"]
    );
    let everything = server.get_json("/v1/charges");
    assert_eq!(
        everything["charges"].as_array().unwrap().len(),
        a_charges.as_array().unwrap().len() + 2
    );

    // A body whose entry (A's WABA) names B's phone number: acknowledged,
    // kept in the body with the reason, never metered as either tenant's.
    let crossed = status_webhook(
        B_BUSINESS,
        B_USER,
        "wamid.B-3",
        "delivered",
        1_770_719_400,
        "marketing",
        "regular",
        true,
    )
    .replace(B_WABA, A_WABA);
    assert_eq!(server.post_signed(crossed.as_bytes()), 200);
    let kept = server.get_json("/v1/webhooks?outcome=accepted");
    let last = kept["webhooks"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("entry WABA 102290129340398 names phone number 200000000000001"),
        "{last}"
    );
    assert_eq!(charges_of(&server, B_TOKEN)["charges"], b_charges);
    assert_eq!(charges_of(&server, A_TOKEN)["charges"], a_charges);
    let metrics = server.get("/metrics", None).1;
    assert!(
        metrics.contains("wameter_events_kept_apart_total{reason=\"entry_waba_mismatch\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wameter_events_kept_apart_total{reason=\"other_waba_message\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_status_line_cannot_shadow_another_tenants_webhook_on_sqlite() {
    let dir = fresh_dir("tenancy-shadow");
    a_status_line_cannot_shadow_another_tenants_webhook(&dir, sqlite_in(&dir));
}

#[test]
fn a_status_line_cannot_shadow_another_tenants_webhook_on_postgres() {
    let dir = fresh_dir("tenancy-shadow-pg");
    let Some(database) = postgres_database("tenancy_shadow") else {
        return;
    };
    a_status_line_cannot_shadow_another_tenants_webhook(&dir, database);
}
