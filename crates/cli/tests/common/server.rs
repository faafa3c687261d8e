//! Boots the real `wameter serve` binary for a test and talks HTTP to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const SECRET: &str = "test-app-secret";
pub const API_TOKEN: &str = "test-api-token-all-wabas";
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub agent: ureq::Agent,
}

/// How to start one.
pub struct Start<'a> {
    pub dir: &'a Path,
    pub database: String,
    pub extra: Vec<String>,
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

impl Server {
    pub fn start(start: Start<'_>) -> Server {
        // A test that needs the port before the server starts passes its own --listen.
        let listen = if start.extra.iter().any(|a| a == "--listen") {
            &[][..]
        } else {
            &["--listen", "127.0.0.1:0"][..]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_wameter"))
            .arg("serve")
            .args(listen)
            .args(["--database", &start.database])
            .args(&start.extra)
            .current_dir(start.dir)
            .env("WAMETER_HOME", start.dir.join("home"))
            .env("WAMETER_APP_SECRET", SECRET)
            .env("WAMETER_API_TOKEN", API_TOKEN)
            .env("WAMETER_VERIFY_TOKEN", VERIFY_TOKEN)
            .env("WAMETER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wameter serve starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let base = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("server exited before listening: {}", seen.join("\n")))
                .unwrap();
            if let Some(address) = line.strip_prefix("wameter serve listening on ") {
                break address.trim().to_string();
            }
            seen.push(line);
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            agent: agent(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a body to /webhook with a signature header (or none).
    pub fn post_webhook(&self, body: &[u8], signature: Option<&str>) -> (u16, String) {
        let mut request = self
            .agent
            .post(&self.url("/webhook"))
            .header("Content-Type", "application/json");
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        match request.send(body) {
            Ok(mut response) => (
                response.status().as_u16(),
                response.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(error) => (0, error.to_string()),
        }
    }

    pub fn post_signed(&self, body: &[u8]) -> u16 {
        self.post_webhook(body, Some(&sign(body))).0
    }

    /// The status of a GET, or `None` when the connection itself fails
    /// (for polling a server that may close new connections for a while).
    pub fn status_of(&self, path: &str) -> Option<u16> {
        let response = self.agent.get(&self.url(path)).call().ok()?;
        Some(response.status().as_u16())
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = self.agent.get(&self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().expect("server answers");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path, Some(API_TOKEN));
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    pub fn post_events(&self, ndjson: &str, token: &str) -> (u16, serde_json::Value) {
        let mut response = self
            .agent
            .post(&self.url("/v1/events"))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/x-ndjson")
            .send(ndjson.as_bytes())
            .expect("server answers");
        let body = response.body_mut().read_to_string().unwrap();
        (
            response.status().as_u16(),
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Every stored canonical line, paging through /v1/events.
    pub fn all_events(&self, token: &str) -> Vec<String> {
        let mut after = 0i64;
        let mut out = Vec::new();
        loop {
            let mut response = self
                .agent
                .get(&self.url(&format!("/v1/events?after={after}&limit=5000")))
                .header("Authorization", &format!("Bearer {token}"))
                .call()
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let next: i64 = response
                .headers()
                .get("x-wameter-next-after")
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body = response
                .body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_string()
                .unwrap();
            if next == after {
                return out;
            }
            out.extend(body.lines().map(String::from));
            after = next;
        }
    }

    /// kill -9.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sha256=<hex>` of a body with the test secret.
pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh SQLite database URL in a fresh directory.
pub fn sqlite_in(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("wameter.db").display())
}

/// A fresh database on the test cluster (`WAMETER_TEST_POSTGRES`, started
/// by `.ci/run` with `scripts/postgres-for-tests.sh`). Without it the
/// PostgreSQL tests cannot run: skipped with a note locally, a failure in CI.
pub fn postgres_database(name: &str) -> Option<String> {
    let url = crate::common::test_dependency(
        "WAMETER_TEST_POSTGRES",
        "scripts/postgres-for-tests.sh",
        "the PostgreSQL tests",
    )?;
    let url = url.to_str().expect("WAMETER_TEST_POSTGRES is a URL");
    let database = format!("wameter_{name}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {database}"),
        format!("CREATE DATABASE {database}"),
    ] {
        let status = std::process::Command::new("psql")
            .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", &sql])
            .env("PGOPTIONS", "--client-min-messages=warning")
            .status()
            .expect("psql runs");
        assert!(status.success(), "{sql}");
    }
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    Some(format!("{base}/{database}"))
}

/// A clean directory for one test (its name is the test's own), removed
/// when the test passes: each held a database, 66 MB after the crash
/// test, and runs left them behind by the thousand. A failed test keeps
/// it, to be looked into.
pub fn fresh_dir(name: &str) -> TestDir {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wameter-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home")).unwrap();
    TestDir(dir)
}

/// A test's directory ([`fresh_dir`]): a path, removed on drop unless the
/// test is failing.
pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The webhook bodies of a Meta-shaped log (comment lines skipped).
pub fn bodies(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect()
}

/// A deterministic shuffle (xorshift), so a failure reproduces.
pub fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// An inbound text webhook, as Meta sends it.
pub fn inbound_webhook(business: &str, user: &str, wamid: &str, unix: i64) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA-{business}","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550000000","phone_number_id":"{business}"}},"contacts":[{{"profile":{{"name":"U"}},"wa_id":"{user}"}}],"messages":[{{"from":"{user}","id":"{wamid}","timestamp":"{unix}","type":"text","text":{{"body":"hi"}}}}]}},"field":"messages"}}]}}]}}"#
    )
}

/// A status webhook with PMP pricing, as Meta sends it.
pub fn status_webhook(
    business: &str,
    user: &str,
    wamid: &str,
    status: &str,
    unix: i64,
    category: &str,
    pricing_type: &str,
    billable: bool,
) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA-{business}","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550000000","phone_number_id":"{business}"}},"statuses":[{{"id":"{wamid}","status":"{status}","timestamp":"{unix}","recipient_id":"{user}","pricing":{{"billable":{billable},"pricing_model":"PMP","type":"{pricing_type}","category":"{category}"}}}}]}},"field":"messages"}}]}}]}}"#
    )
}
