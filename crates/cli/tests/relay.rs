//! `wameter serve --relay-url`: accepted webhooks passed on to the
//! business's own app, through the real binaries over HTTP.

mod common;
#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::Duration;

use sandbox::{App, PHONE, Sandbox};
use serde_json::{Value, json};
use server::{Server, Start};

fn fresh(name: &str) -> PathBuf {
    common::fresh("relay", name)
}

fn inbound(n: usize) -> String {
    server::inbound_webhook(
        PHONE,
        &format!("55119000000{n:02}"),
        &format!("wamid.relay.{n}"),
        1_790_000_000 + n as i64,
    )
}

fn sorted(bodies: impl Iterator<Item = String>) -> Vec<String> {
    let mut bodies: Vec<String> = bodies.collect();
    bodies.sort();
    bodies
}

fn relay_url(app: &App) -> Vec<String> {
    vec!["--relay-url".into(), app.url.clone()]
}

#[test]
fn the_app_gets_every_accepted_webhook_once_signed_as_meta_signs_it() {
    let dir = fresh("order");
    // The app refuses the first two deliveries: the relay retries them.
    let app = App::start(None, 2);
    let server = Server::start(Start {
        dir: &dir,
        database: server::sqlite_in(&dir),
        extra: relay_url(&app),
    });
    let bodies: Vec<String> = (0..5).map(inbound).collect();
    for (n, body) in bodies.iter().enumerate() {
        assert_eq!(server.post_signed(body.as_bytes()), 200);
        if n == 2 {
            // Signed but not a WhatsApp envelope: kept for inspection,
            // answered 400 (Meta delivers it again), never relayed.
            assert_eq!(
                server
                    .post_webhook(b"not json", Some(&server::sign(b"not json")))
                    .0,
                400
            );
        }
    }
    // A body with a wrong signature is not even stored.
    assert_eq!(
        server
            .post_webhook(inbound(9).as_bytes(), Some(&server::sign(b"other")))
            .0,
        401
    );

    let received = app.wait_for(5);
    assert_eq!(app.refused.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        sorted(received.iter().map(|r| r.body.clone())),
        sorted(bodies.iter().cloned()),
        "byte for byte, each once (a few at a time, so in any order)"
    );
    for r in &received {
        assert_eq!(
            r.signature.as_deref(),
            Some(server::sign(r.body.as_bytes()).as_str()),
            "the signature Meta sends for these bytes"
        );
    }
    let relay = common::eventually("the outbox drained", || {
        let relay = server.get_json("/v1/relay");
        (relay["pending"] == 0).then_some(relay)
    });
    assert_eq!(relay["url"], app.url.as_str());
    assert_eq!(relay["relaying"], true);
    assert_eq!(relay["delivered"], 5);
    assert_eq!(relay["attempts"], 0, "no body failing now: {relay}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        app.received.lock().unwrap().len(),
        5,
        "nothing relayed twice, nothing rejected relayed"
    );
}

#[test]
fn webhooks_wait_for_an_app_that_is_down_across_a_crash() {
    let dir = fresh("down");
    let app_address = common::free_port();
    let url = format!("http://{app_address}/webhook");
    let database = server::sqlite_in(&dir);
    let server = Server::start(Start {
        dir: &dir,
        database: database.clone(),
        extra: vec!["--relay-url".into(), url.clone()],
    });
    let bodies: Vec<String> = (0..3).map(inbound).collect();
    for body in &bodies {
        assert_eq!(
            server.post_signed(body.as_bytes()),
            200,
            "acknowledged to Meta although the app is down"
        );
    }
    let relay = common::eventually("a failed attempt reported", || {
        let relay = server.get_json("/v1/relay");
        relay["last_error"].is_string().then_some(relay)
    });
    assert_eq!(relay["pending"], 3, "{relay}");
    assert!(
        relay["failing_since"].is_string() && relay["oldest_pending_received_at"].is_string(),
        "{relay}"
    );
    server.kill();

    // The app comes back; so does wameter, on the same database.
    let app = App::start_at(&app_address, None, 0);
    let server = Server::start(Start {
        dir: &dir,
        database,
        extra: vec!["--relay-url".into(), url],
    });
    let received = app.wait_for(3);
    assert_eq!(
        sorted(received.iter().map(|r| r.body.clone())),
        sorted(bodies.iter().cloned())
    );
    common::eventually("the outbox drained", || {
        (server.get_json("/v1/relay")["pending"] == 0).then_some(())
    });
}

/// The point of relaying after the write: an app that replies the moment it
/// hears from a user finds the customer service window open in the guard.
#[test]
fn an_app_that_replies_as_soon_as_it_hears_is_never_refused() {
    let dir = fresh("reply");
    let accounts = sandbox::accounts(&dir);
    let app = App::start(None, 0);
    let listen = common::free_port();
    let webhook = format!("http://{listen}/webhook");
    let sandbox = Sandbox::start_signing(
        &dir,
        &["--webhook-url", &webhook, "--accounts", &accounts],
        server::SECRET,
    );
    let mut extra = relay_url(&app);
    extra.extend(
        [
            "--listen",
            &listen,
            "--upstream",
            &sandbox.base,
            "--accounts",
            &accounts,
        ]
        .map(String::from),
    );
    let server = Server::start(Start {
        dir: &dir,
        database: server::sqlite_in(&dir),
        extra,
    });
    for n in 0..20 {
        let user = format!("+55119000001{n:02}");
        sandbox.inbound(&user, json!({}));
        let from = format!("\"from\":\"{}\"", &user[1..]);
        common::eventually("the user's message relayed", || {
            app.received
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.body.contains(&from))
                .then_some(())
        });
        let mut response = server
            .agent
            .post(&server.url(&format!("/v23.0/{PHONE}/messages")))
            .header("Authorization", "Bearer app-token")
            .header("Content-Type", "application/json")
            .send(json!({"messaging_product": "whatsapp", "to": user, "type": "text", "text": {"body": "hi"}}).to_string().as_bytes())
            .unwrap();
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(response.status().as_u16(), 200, "reply {n} refused: {body}");
    }
}

/// Several processes on one PostgreSQL database: one relays at a time, and
/// the app gets each body once whichever process Meta posted it to.
#[test]
fn two_processes_on_postgres_relay_each_webhook_once() {
    let Some(database) = server::postgres_database("relay") else {
        return;
    };
    let dir = fresh("postgres");
    let app = App::start(None, 0);
    let first = Server::start(Start {
        dir: &dir,
        database: database.clone(),
        extra: relay_url(&app),
    });
    let second = Server::start(Start {
        dir: &dir,
        database,
        extra: relay_url(&app),
    });
    let bodies: Vec<String> = (0..30).map(inbound).collect();
    for (n, body) in bodies.iter().enumerate() {
        let server = if n % 2 == 0 { &first } else { &second };
        assert_eq!(server.post_signed(body.as_bytes()), 200);
    }
    app.wait_for(30);
    common::eventually("the outbox drained", || {
        (first.get_json("/v1/relay")["pending"] == 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sorted(app.received.lock().unwrap().iter().map(|r| r.body.clone())),
        sorted(bodies.iter().cloned()),
        "each body once"
    );
    let relaying = [&first, &second].map(|s| s.get_json("/v1/relay")["relaying"] == true);
    assert_eq!(
        relaying.iter().filter(|r| **r).count(),
        1,
        "one relayer: {relaying:?}"
    );

    // The relayer goes; the other process takes over.
    let (survivor, gone) = if relaying[0] {
        (second, first)
    } else {
        (first, second)
    };
    gone.kill();
    common::eventually("the other process relaying", || {
        (survivor.get_json("/v1/relay")["relaying"] == true).then_some(())
    });
    assert_eq!(survivor.post_signed(inbound(40).as_bytes()), 200);
    app.wait_for(31);
}
