//! Messaging accounts through the real binary (issue 23; docs/rules.md
//! §16 and its sources): one business number billed through
//! its first account and a partner's. `replay` prices each message in the
//! currency of the account its send or its webhook names (Meta's
//! precedence between `messaging_account_id` and its deprecated alias);
//! `serve` answers the same, shows each account's token only its own
//! money, keeps each account's budget, and groups costs by account; the
//! sandbox takes `messaging_account_id` on sends and puts its statuses
//! under that account's entry.

mod common;
#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/server.rs"]
mod server;

use server::*;

const NUMBER: &str = "300000000000001";
/// The number's first Messaging account: the entry `status_webhook` uses.
const FIRST: &str = "WABA-300000000000001";
/// A partner's Messaging account on the same number, billed in EUR.
const PARTNER: &str = "PARTNER-M";
const FIRST_TOKEN: &str = "token-of-the-first-account";
const PARTNER_TOKEN: &str = "token-of-the-partner-account";
const USER: &str = "5511988880000";

fn setup(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(
        dir.join("accounts.toml"),
        format!(
            "[[business]]\nphone_number_id = \"{NUMBER}\"\nwaba = \"{FIRST}\"\ncurrency = \"USD\"\n\n[[business.messaging_accounts]]\nid = \"{PARTNER}\"\ncurrency = \"EUR\"\ntimezone = \"Europe/Berlin\"\n\n[[budget]]\nname = \"partner\"\nwaba = \"{PARTNER}\"\namount = \"1.00\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("wameter.toml"),
        format!(
            "accounts = \"accounts.toml\"\n\n[[tokens]]\nname = \"first\"\ntoken = \"{FIRST_TOKEN}\"\nwabas = [\"{FIRST}\"]\n\n[[tokens]]\nname = \"partner\"\ntoken = \"{PARTNER_TOKEN}\"\nwabas = [\"{PARTNER}\"]\n"
        ),
    )
    .unwrap();
    dir.join("accounts.toml")
}

/// August 2026: the user writes; the first account sends a marketing
/// template; the partner's app sends one whose statuses Meta delivers to
/// the partner's entry; and an app's send names both ids (the new one wins).
fn webhooks() -> Vec<String> {
    let at = 1_786_010_400; // 2026-08-06T10:00:00Z
    let partner = |body: String| {
        body.replace(
            &format!("\"id\":\"{FIRST}\""),
            &format!("\"id\":\"{PARTNER}\""),
        )
    };
    vec![
        inbound_webhook(NUMBER, USER, "wamid.in", at),
        status_webhook(
            NUMBER,
            USER,
            "wamid.first",
            "delivered",
            at + 600,
            "marketing",
            "regular",
            true,
        ),
        partner(status_webhook(
            NUMBER,
            USER,
            "wamid.partner",
            "sent",
            at + 700,
            "marketing",
            "regular",
            true,
        )),
        partner(status_webhook(
            NUMBER,
            USER,
            "wamid.partner",
            "delivered",
            at + 705,
            "marketing",
            "regular",
            true,
        )),
    ]
}

const SENDS: &str = concat!(
    r#"{"type":"outbound","at":"2026-08-06T10:20:00Z","business":"300000000000001","user":"+5511988880000","id":"wamid.both","template":{"name":"promo","category":"marketing"},"paid_messaging_account_id":"PARTNER-M","messaging_account_id":"WABA-300000000000001"}"#,
    "\n",
    r#"{"type":"status","at":"2026-08-06T10:20:05Z","id":"wamid.both","status":"delivered"}"#,
    "\n",
    r#"{"type":"outbound","at":"2026-08-06T10:30:00Z","business":"300000000000001","user":"+5511988880000","id":"wamid.alias","template":{"name":"promo","category":"marketing"},"paid_messaging_account_id":"PARTNER-M"}"#,
    "\n",
    r#"{"type":"status","at":"2026-08-06T10:30:05Z","id":"wamid.alias","status":"delivered"}"#,
    "\n",
);

fn summary(charges: &serde_json::Value) -> Vec<(String, String, String, Option<String>)> {
    charges
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["message_id"].as_str().unwrap().to_string(),
                c["currency"].as_str().unwrap().to_string(),
                c["amount"].as_str().unwrap().to_string(),
                c["messaging_account"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn charges_of(server: &Server, token: &str) -> serde_json::Value {
    let (status, body) = server.get("/v1/charges", Some(token));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn money_follows_the_account(dir: &std::path::Path, database: String) {
    let accounts = setup(dir);
    let log = dir.join("traffic.ndjson");
    std::fs::write(&log, webhooks().join("\n") + "\n" + SENDS).unwrap();
    let document = common::json(&common::wameter(&[
        "replay",
        log.to_str().unwrap(),
        "--accounts",
        accounts.to_str().unwrap(),
        "--json",
    ]));
    // USD 0.0625 and EUR 0.0518: Brazil marketing on the 2026-07 cards.
    let expected = [
        ("wamid.first", "USD", "0.0625", None),
        ("wamid.partner", "EUR", "0.0518", Some(PARTNER)),
        ("wamid.both", "USD", "0.0625", None),
        ("wamid.alias", "EUR", "0.0518", Some(PARTNER)),
    ]
    .map(|(id, currency, amount, account)| {
        (
            id.to_string(),
            currency.to_string(),
            amount.to_string(),
            account.map(str::to_string),
        )
    });
    assert_eq!(summary(&document["charges"]), expected);
    let totals: Vec<(&str, &str)> = document["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["currency"].as_str().unwrap(),
                t["amount"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(totals, [("EUR", "0.1036"), ("USD", "0.125")]);

    let server = Server::start(Start {
        dir,
        database,
        extra: vec![],
    });
    for body in webhooks() {
        assert_eq!(server.post_signed(body.as_bytes()), 200);
    }
    let (status, answer) = server.post_events(SENDS, API_TOKEN);
    assert_eq!(status, 200, "{answer}");
    // All of it, as replay says.
    let all = charges_of(&server, API_TOKEN);
    assert_eq!(summary(&all["charges"]), summary(&document["charges"]));
    assert_eq!(all["totals"], document["totals"]);
    // Each account's token sees its own money on the shared number.
    let partner = charges_of(&server, PARTNER_TOKEN);
    assert_eq!(
        summary(&partner["charges"])
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        ["wamid.partner", "wamid.alias"]
    );
    assert_eq!(
        (
            partner["totals"]["currency"].as_str(),
            partner["totals"]["amount"].as_str()
        ),
        (Some("EUR"), Some("0.1036")),
        "one currency: an object"
    );
    let first = charges_of(&server, FIRST_TOKEN);
    assert_eq!(
        summary(&first["charges"])
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        ["wamid.first", "wamid.both"]
    );
    // A token cannot write a send for another account of the number.
    let stolen = SENDS
        .lines()
        .next()
        .unwrap()
        .replace("wamid.both", "wamid.stolen")
        .replace(
            "\"messaging_account_id\":\"WABA-300000000000001\"",
            "\"messaging_account_id\":\"PARTNER-M\"",
        );
    let (status, answer) = server.post_events(&stolen, FIRST_TOKEN);
    assert_eq!(
        (
            status,
            answer["accepted"].as_u64(),
            answer["rejected"][0]["error"].as_str()
        ),
        (
            200,
            Some(0),
            Some("this token does not see Messaging account PARTNER-M")
        ),
        "{answer}"
    );

    // Costs by Messaging account.
    let costs = server.get_json("/v1/reports/costs?group_by=messaging_account");
    let rows: Vec<(&str, &str, &str)> = costs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["messaging_account"].as_str().unwrap(),
                r["currency"].as_str().unwrap(),
                r["amount"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [(PARTNER, "EUR", "0.1036"), (FIRST, "USD", "0.125")]);
    // The partner's budget counts the partner's charges only, in EUR.
    let budgets = server.get_json("/v1/budgets?month=2026-08");
    let budget = &budgets["budgets"][0];
    assert_eq!(
        (budget["currency"].as_str(), budget["spent"].as_str()),
        (Some("EUR"), Some("0.1036")),
        "{budgets}"
    );
}

#[test]
fn money_follows_the_messaging_account_on_sqlite() {
    let dir = fresh_dir("messaging-accounts-sqlite");
    let database = sqlite_in(&dir);
    money_follows_the_account(&dir, database);
}

#[test]
fn money_follows_the_messaging_account_on_postgres() {
    let Some(database) = postgres_database("messaging_accounts") else {
        return;
    };
    money_follows_the_account(&fresh_dir("messaging-accounts-postgres"), database);
}

/// The sandbox reads `messaging_account_id` as Meta does: a send through
/// the partner's account is billed in its currency, its statuses come
/// under the partner's entry, and an account the number does not have is
/// an invalid parameter.
#[test]
fn the_sandbox_sends_through_a_messaging_account() {
    use serde_json::json;
    let dir = common::fresh("messaging-accounts", "sandbox");
    let phone = sandbox::PHONE;
    std::fs::write(
        dir.join("accounts.toml"),
        format!("[[business]]\nphone_number_id = \"{phone}\"\nwaba = \"{}\"\ncurrency = \"USD\"\n\n[[business.messaging_accounts]]\nid = \"{PARTNER}\"\ncurrency = \"EUR\"\n", sandbox::WABA),
    )
    .unwrap();
    let world = sandbox::Sandbox::start(
        &dir,
        &[
            "--accounts",
            "accounts.toml",
            "--clock-start",
            "2026-08-06T10:00:00Z",
        ],
    );
    world.inbound("5511987654321", json!({}));
    let (status, sent) = world.send(json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "text", "text": {"body": "hi"}, "messaging_account_id": PARTNER}));
    assert_eq!(status, 200, "{sent}");
    let id = sent["messages"][0]["id"].as_str().unwrap().to_string();
    let (status, refused) = world.send(json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "text", "text": {"body": "hi"}, "messaging_account_id": "NOT-MINE"}));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Invalid parameter")
            || refused.to_string().contains("NOT-MINE"),
        "{refused}"
    );
    world.advance(60);
    let entries: Vec<serde_json::Value> = world
        .webhooks()
        .into_iter()
        .filter(|body| {
            body.pointer("/entry/0/changes/0/value/statuses/0/id")
                .and_then(|v| v.as_str())
                == Some(id.as_str())
        })
        .map(|body| body["entry"][0]["id"].clone())
        .collect();
    assert!(
        !entries.is_empty() && entries.iter().all(|entry| entry == PARTNER),
        "{entries:?}"
    );
    let charges = world.get_json("/_sandbox/charges");
    let charge = charges["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message_id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{charges}"));
    assert_eq!(
        (
            charge["currency"].as_str(),
            charge["messaging_account"].as_str()
        ),
        (Some("EUR"), Some(PARTNER)),
        "{charge}"
    );
}
