//! Boots the real `wameter sandbox` binary, and a tiny app that receives
//! its webhooks, for the sandbox tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const SECRET: &str = "sandbox-test-secret";
pub const PHONE: &str = "106540352242922";
pub const WABA: &str = "419561257915477";
pub const USER: &str = "+5511999990000";

/// A running sandbox; killed when dropped.
pub struct Sandbox {
    pub child: Child,
    pub base: String,
    pub agent: ureq::Agent,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An accounts file naming the test business (America/Sao_Paulo, USD).
pub fn accounts(dir: &Path) -> String {
    let path = dir.join("accounts.toml");
    std::fs::write(
        &path,
        format!("[[business]]\nphone_number_id = \"{PHONE}\"\nwaba = \"{WABA}\"\ntimezone = \"America/Sao_Paulo\"\ncurrency = \"USD\"\n"),
    )
    .unwrap();
    path.display().to_string()
}

impl Sandbox {
    /// Starts `wameter sandbox` on a free port with `args`.
    pub fn start(dir: &Path, args: &[&str]) -> Sandbox {
        Sandbox::start_signing(dir, args, SECRET)
    }

    /// Starts it signing its webhooks with `secret`.
    pub fn start_signing(dir: &Path, args: &[&str], secret: &str) -> Sandbox {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wameter"))
            .arg("sandbox")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env("WAMETER_HOME", dir.join("home"))
            .env("WAMETER_APP_SECRET", secret)
            .env("WAMETER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wameter sandbox starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let base = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("sandbox exited before listening: {}", seen.join("\n")))
                .unwrap();
            if let Some(address) = line.strip_prefix("wameter sandbox listening on ") {
                break address.trim().to_string();
            }
            seen.push(line);
        };
        std::thread::spawn(move || for _ in lines {});
        Sandbox {
            child,
            base,
            agent: super::server::agent(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with a bearer token; returns status and JSON body.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut response = self
            .agent
            .post(&self.url(path))
            .header("Authorization", "Bearer app-token")
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("sandbox answers");
        let text = response.body_mut().read_to_string().unwrap();
        (
            response.status().as_u16(),
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
        )
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut response = self
            .agent
            .get(&self.url(path))
            .header("Authorization", "Bearer app-token")
            .call()
            .expect("sandbox answers");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Sends a message body from the test business (Graph v23.0).
    pub fn send(&self, body: Value) -> (u16, Value) {
        self.post(&format!("/v23.0/{PHONE}/messages"), &body)
    }

    pub fn text(&self, to: &str, text: &str) -> (u16, Value) {
        self.send(json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": {"body": text}}))
    }

    pub fn template(&self, to: &str, name: &str, language: &str) -> (u16, Value) {
        self.send(json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": name, "language": {"code": language}}}))
    }

    pub fn inbound(&self, user: &str, extra: Value) -> Value {
        let mut body = json!({"business": PHONE, "user": user, "text": "hello"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, answer) = self.post("/_sandbox/inbound", &body);
        assert_eq!(status, 200, "{answer}");
        answer
    }

    pub fn advance(&self, seconds: i64) -> Value {
        let (status, answer) = self.post("/_sandbox/clock", &json!({"advance_seconds": seconds}));
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Every webhook body the sandbox wrote, in order.
    pub fn webhooks(&self) -> Vec<Value> {
        self.get_json("/_sandbox/webhooks")
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["body"].clone())
            .collect()
    }

    /// The status objects of the webhooks for one wamid.
    pub fn statuses_of(&self, id: &str) -> Vec<Value> {
        self.webhooks()
            .iter()
            .filter_map(|body| body.pointer("/entry/0/changes/0/value/statuses/0").cloned())
            .filter(|status| status["id"] == id)
            .collect()
    }
}

/// One POST the app received.
#[derive(Clone, Debug)]
pub struct Received {
    pub body: String,
    pub signature: Option<String>,
}

/// A minimal app: answers Meta's handshake for `verify_token`, refuses the
/// first `fail_first` POSTs with 500, records the rest.
pub struct App {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub handshakes: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
}

impl App {
    pub fn start(verify_token: Option<&str>, fail_first: usize) -> App {
        App::start_at("127.0.0.1:0", verify_token, fail_first)
    }

    /// The same on a given address (an app coming back on its old port).
    pub fn start_at(address: &str, verify_token: Option<&str>, fail_first: usize) -> App {
        let listener = TcpListener::bind(address).unwrap();
        let url = format!("http://{}/webhook", listener.local_addr().unwrap());
        let app = App {
            url,
            received: Arc::default(),
            handshakes: Arc::default(),
            refused: Arc::default(),
        };
        let (received, handshakes, refused) = (
            app.received.clone(),
            app.handshakes.clone(),
            app.refused.clone(),
        );
        let token = verify_token.map(str::to_string);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = serve_one(stream, &token, fail_first, &received, &handshakes, &refused);
            }
        });
        app
    }

    /// Waits until `count` webhooks arrived (or panics after 30 s).
    pub fn wait_for(&self, count: usize) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= count {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "only {} of {count} webhooks arrived",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve_one(
    stream: TcpStream,
    token: &Option<String>,
    fail_first: usize,
    received: &Mutex<Vec<Received>>,
    handshakes: &AtomicUsize,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let (mut length, mut signature) = (0usize, None);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "x-hub-signature-256" | "x-wameter-signature-256" => {
                signature = Some(value.trim().to_string())
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (status, answer) = if request_line.starts_with("GET") {
        handshakes.fetch_add(1, Ordering::SeqCst);
        let query = request_line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.split_once('?'))
            .map_or("", |(_, q)| q)
            .to_string();
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                .unwrap_or("")
                .to_string()
        };
        if token.as_deref() == Some(param("hub.verify_token").as_str())
            && param("hub.mode") == "subscribe"
        {
            ("200 OK", param("hub.challenge"))
        } else {
            ("403 Forbidden", String::new())
        }
    } else if refused.load(Ordering::SeqCst) < fail_first {
        refused.fetch_add(1, Ordering::SeqCst);
        ("500 Internal Server Error", String::new())
    } else {
        received.lock().unwrap().push(Received {
            body: String::from_utf8_lossy(&body).into_owned(),
            signature,
        });
        ("200 OK", String::new())
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )?;
    stream.flush()
}
