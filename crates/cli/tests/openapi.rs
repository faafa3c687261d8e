//! `wameter serve` against its own OpenAPI document (issue 24): schemathesis
//! (`scripts/schemathesis-for-tests.sh`) generates requests from
//! `/openapi.json` — valid ones, and ones that break the documented
//! constraints — and checks every answer: no server error, only documented
//! status codes and content types, bodies matching their schemas, invalid
//! requests refused. A store with the sample traffic gives the queries
//! something to answer.
//!
//! One check is left out: `positive_data_acceptance`, which expects every
//! request the schema allows to succeed. OpenAPI cannot say what the API
//! rightly refuses: `from` after `to`, a date past the range of instants,
//! a user id of the right shape but not E.164, a body that is a string but
//! not NDJSON. The rest run with a fixed seed, so a verdict is repeatable.

mod common;
#[path = "common/server.rs"]
mod server;

use server::*;

#[test]
fn serve_answers_as_its_openapi_document_says() {
    let Some(schemathesis) = common::test_dependency(
        "WAMETER_TEST_SCHEMATHESIS",
        "scripts/schemathesis-for-tests.sh",
        "the OpenAPI conformance test",
    ) else {
        return;
    };
    let dir = fresh_dir("openapi");
    let accounts = common::root().join("examples/accounts.toml");
    let server = Server::start(Start {
        dir: &dir,
        database: sqlite_in(&dir),
        extra: vec!["--accounts".into(), accounts.to_str().unwrap().into()],
    });
    let sample = std::fs::read_to_string(common::root().join("examples/sample.ndjson")).unwrap();
    let (status, answer) = server.post_events(&sample, API_TOKEN);
    assert_eq!(status, 200, "{answer}");

    let output = std::process::Command::new(schemathesis)
        .args(["run", &server.url("/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {API_TOKEN}")])
        .args(["--max-examples", "100", "--seed", "24"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .arg("--no-color")
        .env("SCHEMATHESIS_HOOKS", "schemathesis-hooks")
        .env("PYTHONPATH", common::root().join("scripts"))
        .current_dir(&dir)
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It tested every operation, and generated cases for them.
    assert!(report.contains("Tested: 12"), "{report}");
    let counts = report
        .lines()
        .find(|line| line.contains(" generated, "))
        .unwrap_or_else(|| panic!("no count of test cases: {report}"));
    let numbers: Vec<u64> = counts
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        numbers.len() >= 2 && numbers[0] > 1000 && numbers[0] == numbers[1],
        "every generated case passed: {counts}"
    );
}
