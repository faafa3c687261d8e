//! Every date priced from the built-in cards (issue 19), through the real
//! binary with no `--rates` and no `--tiers`: a Meta-shaped webhook log of
//! August 2025 priced from the derived 2025-07-01 USD card and reconciled
//! against Meta's own pricing objects, and a May 2026 log that crosses a
//! real volume-tier boundary of Meta's April 2026 table.

mod common;
// The shared helpers; each test file uses some of them.
#[path = "common/server.rs"]
mod server;

use common::{json, stdout, temp_dir, wameter};
use server::{inbound_webhook, status_webhook};

const BUSINESS: &str = "106540352242922";
const BR: &str = "5511999990001";
const IN: &str = "919876543210";

/// (wamid, user, category Meta prices it as, Meta's type, billable,
/// delivery instant): the user in Brazil writes at 10:00 and the business
/// answers inside the window; the user in India gets templates with no
/// window open.
const AUGUST: &[(&str, &str, &str, &str, bool, i64)] = &[
    (
        "wamid.br-mkt",
        BR,
        "marketing",
        "regular",
        true,
        1_754_561_100,
    ), // 2025-08-07T10:05:00Z
    (
        "wamid.br-util",
        BR,
        "utility",
        "free_customer_service",
        false,
        1_754_561_400,
    ),
    (
        "wamid.br-svc",
        BR,
        "service",
        "free_customer_service",
        false,
        1_754_561_700,
    ),
    (
        "wamid.br-auth",
        BR,
        "authentication",
        "regular",
        true,
        1_754_562_000,
    ),
    (
        "wamid.in-util",
        IN,
        "utility",
        "regular",
        true,
        1_754_568_000,
    ), // 12:00
    (
        "wamid.in-auth",
        IN,
        "authentication",
        "regular",
        true,
        1_754_568_300,
    ),
    (
        "wamid.in-mkt",
        IN,
        "marketing",
        "regular",
        true,
        1_754_568_600,
    ),
];

#[test]
fn an_august_2025_meta_log_is_priced_from_the_july_2025_card_and_reconciles() {
    let dir = temp_dir("real-cards-august");
    let log = dir.join("august-2025.ndjson");
    let mut bodies = vec![inbound_webhook(BUSINESS, BR, "wamid.br-in", 1_754_560_800)]; // 10:00
    for (wamid, user, category, pricing_type, billable, delivered) in AUGUST {
        for (status, at) in [("sent", delivered - 2), ("delivered", *delivered)] {
            bodies.push(status_webhook(
                BUSINESS,
                user,
                wamid,
                status,
                at,
                category,
                pricing_type,
                *billable,
            ));
        }
    }
    std::fs::write(&log, bodies.join("\n") + "\n").unwrap();

    let output = wameter(&["replay", log.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let document = json(&output);
    // By hand, from data/ratecards/derived-from-2025-10-card_effective-2025-07-01_USD.csv:
    // Brazil marketing 0.0625, authentication 0.0068; India utility 0.0014,
    // authentication 0.0014, marketing 0.0107; utility and service inside
    // Brazil's window free.
    let expected = [
        ("wamid.br-mkt", "0.0625"),
        ("wamid.br-util", "0"),
        ("wamid.br-svc", "0"),
        ("wamid.br-auth", "0.0068"),
        ("wamid.in-util", "0.0014"),
        ("wamid.in-auth", "0.0014"),
        ("wamid.in-mkt", "0.0107"),
    ];
    let charges = document["charges"].as_array().unwrap();
    assert_eq!(charges.len(), expected.len(), "{charges:#?}");
    for (wamid, amount) in expected {
        let charge = charges
            .iter()
            .find(|c| c["message_id"] == wamid)
            .unwrap_or_else(|| panic!("{wamid}"));
        assert_eq!(charge["amount"], amount, "{charge}");
        assert_eq!(charge["currency"], "USD");
        let reason = charge["reason"].as_str().unwrap();
        if amount != "0" {
            assert!(
                reason.contains("card usd-2025-07-01 (a derived card"),
                "{reason}"
            );
        }
    }
    assert_eq!(
        document["totals"]["amount"], "0.0828",
        "{}",
        document["totals"]
    );

    // Meta's pricing objects and the engine agree on every message.
    let reconciled = json(&wameter(&["reconcile", log.to_str().unwrap(), "--json"]));
    assert_eq!(reconciled["compared"], 7, "{reconciled}");
    assert_eq!(reconciled["agreements"], 7, "{reconciled}");
    assert_eq!(
        reconciled["discrepancies"],
        serde_json::json!([]),
        "{reconciled}"
    );
}

#[test]
fn a_may_2026_log_crosses_a_real_tier_boundary_of_metas_april_2026_table() {
    // 80,002 utility templates to one user in North America, none inside a
    // window: Meta's April 2026 table lists 0:80,000 at 0.0034 (the card's
    // list rate) and 80,001:750,000 at 0.0032.
    let dir = temp_dir("real-cards-tiers");
    let log = dir.join("may-2026.ndjson");
    let mut text = String::with_capacity(80_002 * 300);
    let start = jiff::Timestamp::from_second(1_777_593_600).unwrap(); // 2026-05-01T00:00:00Z
    for n in 0..80_002i64 {
        let at = start + jiff::SignedDuration::from_secs(n * 20);
        text.push_str(&format!(
            r#"{{"type":"outbound","at":"{at}","business":"{BUSINESS}","user":"+14155550100","id":"wamid.{n}","template":{{"name":"order_update","category":"utility"}}}}"#
        ));
        text.push('\n');
        text.push_str(&format!(
            r#"{{"type":"status","at":"{at}","id":"wamid.{n}","status":"delivered"}}"#
        ));
        text.push('\n');
    }
    std::fs::write(&log, text).unwrap();
    let output = wameter(&["replay", log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let table = stdout(&output);
    // 80,000 × 0.0034 + 2 × 0.0032 = 272.0064
    assert!(
        table.contains("2026-05  utility   North America     80002    80002  272.0064 USD"),
        "{table}"
    );

    let explained = json(&wameter(&[
        "explain",
        log.to_str().unwrap(),
        "--message",
        "wamid.80001",
        "--json",
    ]));
    let text = explained.to_string();
    assert!(text.contains("80001:750000"), "{text}");
    assert!(text.contains("usd-2026-04-01"), "{text}");
}

#[test]
fn rates_coverage_shows_no_missing_usd_range_since_july_2025() {
    let home = temp_dir("real-cards-coverage");
    let output = common::wameter_home(
        &home,
        &[
            "rates",
            "coverage",
            "--currency",
            "USD",
            "--from",
            "2025-07-01",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", common::stderr(&output));
    let coverage = json(&output);
    let ranges = coverage["ranges"].as_array().unwrap();
    let pmp: Vec<&serde_json::Value> = ranges.iter().filter(|r| r["model"] == "PMP").collect();
    assert!(!pmp.is_empty());
    assert!(pmp.iter().all(|r| r["status"] != "missing"), "{coverage:#}");
    assert_eq!(pmp[0]["from"], "2025-07-01");
    assert_eq!(
        pmp.last().unwrap()["to"],
        serde_json::Value::Null,
        "open-ended: {coverage:#}"
    );
    let statuses: Vec<&str> = pmp.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            "derived", "verbatim", "verbatim", "verbatim", "derived", "verbatim"
        ]
    );

    // The table form names cards and what they lack.
    let table = stdout(&common::wameter_home(
        &home,
        &["rates", "coverage", "--currency", "USD"],
    ));
    for expected in [
        "usd-2022-02-01",
        "partial",
        "missing",
        "2024-06-01",
        "usd-2025-07-01",
        "derived",
    ] {
        assert!(table.contains(expected), "`{expected}` in:\n{table}");
    }
}
