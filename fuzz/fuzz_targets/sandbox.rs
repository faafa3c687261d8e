//! The sandbox's whole HTTP surface, in process: Graph API paths and the
//! control API under `/_sandbox/`. Each input is a session of requests,
//! one per line, `METHOD PATH BODY`, against a fresh in-memory sandbox; a
//! panic anywhere (a handler, the world, the engine) is a crash, as is a
//! 5xx, which no client input should cause. A body starting `MULTIPART `
//! is sent as `multipart/form-data; boundary=b`, its `\n` escapes as CRLF
//! (the media upload's form, on one line).
#![no_main]

use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use jiff::SignedDuration;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use wameter_core::market::MarketTable;
use wameter_core::ratecard::{RateBook, TierBook};
use wameter_sandbox::http::{Shared, app};
use wameter_sandbox::{Options, Reengagement, World};
use wameter_core::pricing::Pricing;

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"));

static PRICING: LazyLock<Arc<Pricing>> = LazyLock::new(|| {
    let accounts = wameter_log::parse_accounts(
        "fuzz",
        "[[business]]\nphone_number_id = \"106540352242922\"\nwaba = \"102290129340398\"\ntimezone = \"America/Sao_Paulo\"\ncurrency = \"USD\"\n",
    )
    .expect("accounts");
    Arc::new(Pricing { accounts, rates: RateBook::builtin(), tiers: TierBook::builtin(), markets: MarketTable::builtin(), call_rates: wameter_core::ratecard::calling::CallRateBook::builtin() })
});

fn options() -> Options {
    Options {
        sent_after: SignedDuration::from_secs(1),
        delivered_after: SignedDuration::from_secs(2),
        read_after: Some(SignedDuration::from_secs(5)),
        failure_percent: 10,
        reengagement: Reengagement::Async,
        seed: 7,
        duplicate_percent: 10,
        delay_ms_max: 0,
    }
}

fuzz_target!(|text: &str| {
    let connection = rusqlite_memory();
    let world = World::open(connection, PRICING.clone(), options()).expect("a fresh sandbox opens");
    let router = app(Arc::new(Shared { world: Arc::new(Mutex::new(world)), token: None }));
    RUNTIME.block_on(async move {
        for line in text.lines().take(16) {
            let mut parts = line.splitn(3, ' ');
            let (Some(method), Some(path)) = (parts.next(), parts.next()) else { continue };
            let Ok(method) = Method::from_bytes(method.as_bytes()) else { continue };
            let body = parts.next().unwrap_or("");
            let (content_type, body) = match body.strip_prefix("MULTIPART ") {
                Some(form) => ("multipart/form-data; boundary=b", form.replace("\\n", "\r\n")),
                None => ("application/json", body.to_string()),
            };
            let Ok(request) = Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", "Bearer fuzz")
                .header("content-type", content_type)
                .body(Body::from(body))
            else {
                continue;
            };
            let response = router.clone().oneshot(request).await.expect("the router is infallible");
            let status = response.status();
            let body = response.into_body().collect().await.expect("a body").to_bytes();
            assert!(!status.is_server_error(), "{line} → {status}: {}", String::from_utf8_lossy(&body));
        }
    });
});

fn rusqlite_memory() -> rusqlite::Connection {
    rusqlite::Connection::open_in_memory().expect("memory database")
}
