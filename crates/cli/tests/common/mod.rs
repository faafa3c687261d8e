//! Helpers shared by the CLI integration tests: run the real binary with an
//! empty rate store, so a developer's own imports never change a result.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wameter-cli-{name}-{}", std::process::id()));
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
