//! `wameter serve` bounds its connections (issue 21, items 2 and 3),
//! through the real binary: slowloris headers and idle keep-alive
//! connections are closed after `--header-timeout`, a body that never ends
//! gets a 408 after `--request-timeout`, and past `--max-connections` a new
//! connection is closed at once — while the server keeps answering.

mod common;
#[path = "common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use server::*;

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Waits until the server closes the connection (EOF or reset); how long
/// that took and what it sent, or `None` if it stayed open for `patience`.
fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<(Duration, Vec<u8>)> {
    let started = Instant::now();
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some((started.elapsed(), seen)),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some((started.elapsed(), seen)),
        }
    }
}

#[test]
fn slow_idle_and_excess_connections_are_closed_and_the_server_keeps_answering() {
    let dir = fresh_dir("limits");
    let extra = [
        "--max-connections",
        "12",
        "--header-timeout",
        "1s",
        "--request-timeout",
        "2s",
    ]
    .map(String::from)
    .to_vec();
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra,
    });
    let address = address(&server);

    // Slowloris: half a request's headers, never finished.
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"POST /webhook HTTP/1.1\r\nHost: wameter\r\n")
                .unwrap();
            stream
        })
        .collect();
    // Idle keep-alive: one request answered, then nothing.
    let mut idle = TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: wameter\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // A body that never ends.
    let mut stalled = TcpStream::connect(&address).unwrap();
    stalled
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: wameter\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"object\":")
        .unwrap();

    // Meanwhile the server answers.
    assert_eq!(server.get("/healthz", None).0, 200);

    // Patience, not a timing assertion: without a header timer these
    // connections stay open for good.
    for stream in &mut slow {
        closed_within(stream, Duration::from_secs(10)).expect("a slowloris connection is closed");
    }
    closed_within(&mut idle, Duration::from_secs(10))
        .expect("an idle keep-alive connection is closed");
    let (_, answer) = closed_within(&mut stalled, Duration::from_secs(10))
        .expect("a stalled body gets its answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // Past --max-connections a new connection is closed at once; once the
    // others go, connections are served again.
    // (The refusal counter, not the time it took, tells the cap closed it.)
    let held: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut excess = TcpStream::connect(&address).unwrap();
    closed_within(&mut excess, Duration::from_secs(10)).expect("the excess connection is closed");
    drop(held);
    // Until the server has seen the held ones close, a new connection may
    // still be refused: that is "not yet", not a failure.
    common::eventually("connections are served again", || {
        (server.status_of("/healthz") == Some(200)).then_some(())
    });
    let metrics = server.get("/metrics", None).1;
    assert!(
        metrics.contains("wameter_requests_timed_out_total 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wameter_connections_refused_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// Bytes of unauthenticated bodies held at once are bounded, counted as
/// they arrive: bodies that have sent most of the budget push a genuine
/// webhook to a 503, while many connections trickling a body hold nothing
/// it needs.
#[test]
fn webhook_body_bytes_held_at_once_are_bounded() {
    let dir = fresh_dir("bodies");
    let extra = [
        "--webhook-bytes-max",
        "100000",
        "--body-bytes-in-flight-max",
        "150000",
        "--request-timeout",
        "2s",
    ]
    .map(String::from)
    .to_vec();
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra,
    });
    let address = address(&server);
    let stall = |sent: usize| {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream
            .write_all(b"POST /webhook HTTP/1.1\r\nHost: wameter\r\nContent-Length: 100000\r\n\r\n")
            .unwrap();
        stream.write_all(&vec![b' '; sent]).unwrap();
        stream
    };
    // Twenty connections a byte into their body: 20 bytes held.
    let trickling: Vec<TcpStream> = (0..20).map(|_| stall(1)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let body = inbound_webhook(
        "106540352242922",
        "5511999990001",
        "wamid.in-bounded",
        1_770_717_600,
    );
    assert_eq!(
        server.post_signed(body.as_bytes()),
        200,
        "trickling bodies hold no budget a webhook needs"
    );
    // Two connections 74,900 bytes into theirs: 149,800 of 150,000 held.
    let mut stalled = [stall(74_900), stall(74_900)];
    std::thread::sleep(Duration::from_millis(300));
    let body = inbound_webhook(
        "106540352242922",
        "5511999990001",
        "wamid.in-bounded-2",
        1_770_717_660,
    );
    let (status, answer) = server.post_webhook(body.as_bytes(), Some(&sign(body.as_bytes())));
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("\"code\":\"busy\""), "{answer}");
    for stream in &mut stalled {
        closed_within(stream, Duration::from_secs(10)).expect("the stalled body times out");
    }
    assert_eq!(
        server.post_signed(body.as_bytes()),
        200,
        "the budget is free again"
    );
    drop(trickling);
    let metrics = server.get("/metrics", None).1;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("body_bytes_in_flight") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// Stored webhook bodies are paged by bytes as well as by count, so a
/// page of large bodies stays bounded (issue 21 item 4).
fn webhooks_are_paged_by_bytes(dir: &std::path::Path, database: String) {
    let server = Server::start(Start {
        dir,
        database,
        extra: vec![],
    });
    let large = |n: usize| {
        inbound_webhook(
            "106540352242922",
            "5511999990001",
            &format!("wamid.large-{n}"),
            1_770_717_600 + n as i64,
        )
        .replace(
            "\"body\":\"hi\"",
            &format!("\"body\":\"{}\"", "x".repeat(1_000_000)),
        )
    };
    for n in 0..4 {
        assert_eq!(server.post_signed(large(n).as_bytes()), 200);
    }
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = server.get_json(&format!("/v1/webhooks?after={after}&max_bytes=1500000"));
        let bodies = page["webhooks"].as_array().unwrap().clone();
        let Some(last) = bodies.last() else { break };
        after = last["id"].as_i64().unwrap();
        pages.push(bodies.len());
    }
    assert_eq!(
        pages,
        [1, 1, 1, 1],
        "one 1 MB body per 1.5 MB page, every body once"
    );
    let all = server.get_json("/v1/webhooks");
    assert_eq!(
        all["webhooks"].as_array().unwrap().len(),
        4,
        "the default page (8 MiB) holds them all"
    );
}

#[test]
fn webhooks_are_paged_by_bytes_on_sqlite() {
    let dir = fresh_dir("webhook-pages");
    webhooks_are_paged_by_bytes(&dir, sqlite_in(&dir));
}

#[test]
fn webhooks_are_paged_by_bytes_on_postgres() {
    let dir = fresh_dir("webhook-pages-pg");
    let Some(database) = postgres_database("webhook_pages") else {
        return;
    };
    webhooks_are_paged_by_bytes(&dir, database);
}
