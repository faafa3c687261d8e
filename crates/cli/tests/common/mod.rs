//! Helpers shared by the CLI integration tests: run the real binary with an
//! empty rate store, so a developer's own imports never change a result.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wameter-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `wameter` from the repository root with its own `WAMETER_HOME`,
/// which no test imports into.
pub fn wameter(args: &[&str]) -> Output {
    wameter_home(&temp_dir("home-empty"), args)
}

/// Runs `wameter` with the given `WAMETER_HOME` (rate store).
pub fn wameter_home(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wameter"))
        .args(args)
        .current_dir(root())
        .env("WAMETER_HOME", home)
        .output()
        .expect("wameter runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

pub fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

/// A fresh directory (with an empty `home/`) for one test of a suite.
pub fn fresh(suite: &str, name: &str) -> PathBuf {
    let dir = temp_dir(&format!("{suite}-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home")).unwrap();
    dir
}

/// A loopback address no one listens on now.
pub fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Polls `check` every 50 ms until it answers, for up to 30 s.
pub fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    poll(check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// [`eventually`], giving up with `None` (for a caller that has more to
/// say about what it saw last).
pub fn poll<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if start.elapsed() >= Duration::from_secs(30) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of a test dependency's variable, set by `script` (which
/// `scripts/test.sh` runs): absent, the test is skipped with a note under
/// plain `cargo test`, and fails under `scripts/test.sh` and in CI, so
/// nothing is skipped there.
pub fn test_dependency(variable: &str, script: &str, what: &str) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(variable);
    if value.is_none() {
        let all =
            std::env::var_os("WAMETER_TEST_ALL").is_some() || std::env::var_os("CI").is_some();
        assert!(!all, "scripts/test.sh must set {variable} ({script})");
        eprintln!("skipped: export {variable}=\"$({script})\" to run {what}");
    }
    value
}

/// Whether the kernel may give process `pid` transparent huge pages: the
/// `THP_enabled` line of /proc/PID/status (Linux 5.0 and later), `0` once
/// the process turned them off for itself.
pub fn huge_pages_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled line in /proc/{pid}/status:\n{status}"))
        .trim()
        .to_string()
}
