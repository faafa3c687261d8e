//! The `wameter` binary through its real interface: files in, stdout,
//! stderr and exit codes out.

mod common;

use std::path::Path;
use std::process::Output;

use common::{stderr, stdout, temp_dir, wameter};

const SAMPLE: [&str; 4] = [
    "examples/sample.ndjson",
    "--accounts",
    "examples/accounts.toml",
    "--json",
];

#[test]
fn replay_json_matches_the_reviewed_snapshot() {
    let output = wameter(&[&["replay"][..], &SAMPLE[..]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let document: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    insta::assert_json_snapshot!("sample_replay", document);
}

#[test]
fn replay_json_totals_are_the_sum_of_amounts() {
    let output = wameter(&[&["replay"][..], &SAMPLE[..]].concat());
    let document: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let charges = document["charges"].as_array().unwrap();
    let sum: rust_decimal::Decimal = charges
        .iter()
        .map(|c| {
            c["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        document["totals"]["amount"].as_str().unwrap(),
        sum.normalize().to_string()
    );
    assert_eq!(document["totals"]["amount"], "0.1055");
    // Every documented field is present on every charge.
    for charge in charges {
        for field in [
            "message_id",
            "business",
            "user",
            "delivered_at",
            "pricing_model",
            "category",
            "type",
            "billable",
            "conversation_id",
            "opens_conversation",
            "market",
            "currency",
            "amount",
            "tier",
            "ruleset",
            "rule",
            "reason",
        ] {
            assert!(charge.get(field).is_some(), "missing {field} in {charge}");
        }
    }
}

#[test]
fn human_report_shows_totals_by_month_category_market() {
    let output = wameter(&[
        "replay",
        "examples/sample.ndjson",
        "--accounts",
        "examples/accounts.toml",
    ]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("2026-02  authentication_international  India"),
        "{text}"
    );
    assert!(text.contains("Total 0.1055 USD"), "{text}");
}

#[test]
fn malformed_lines_are_reported_skipped_or_fatal_with_strict() {
    let dir = temp_dir("malformed");
    let log = dir.join("bad.ndjson");
    std::fs::write(
        &log,
        "{\"type\":\"outbound\",\"at\":\"2026-02-02T12:00:00Z\",\"business\":\"1\",\"user\":\"+5511999990000\",\"id\":\"w1\",\"template\":{\"name\":\"x\",\"category\":\"marketing\"}}\n\
         {\"type\":\"status\",\"at\":\"2026-02-02T12:00:01Z\",\"id\":\"w1\",\"status\":\"delivered\"}\n\
         {\"type\":\"inbound\",\"at\":\"yesterday\",\"business\":\"1\",\"user\":\"+5511999990000\"}\n",
    )
    .unwrap();
    let path = log.to_str().unwrap();
    let lenient = wameter(&["replay", path, "--json"]);
    assert!(lenient.status.success(), "{}", stderr(&lenient));
    assert!(
        stderr(&lenient).contains("bad.ndjson:line 3: field `at`"),
        "{}",
        stderr(&lenient)
    );
    let document: serde_json::Value = serde_json::from_str(&stdout(&lenient)).unwrap();
    let warning = &document["warnings"][0];
    assert_eq!(
        (warning["code"].as_str(), warning["line"].as_u64()),
        (Some("malformed_line"), Some(3))
    );
    assert_eq!(document["totals"]["amount"], "0.0625");

    let strict = wameter(&["replay", path, "--strict"]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(
        stderr(&strict).contains("line 3: field `at`"),
        "{}",
        stderr(&strict)
    );
}

#[test]
fn unpriceable_messages_fail_loudly() {
    let dir = temp_dir("era");
    let log = dir.join("old.ndjson");
    std::fs::write(&log, "{\"type\":\"outbound\",\"at\":1600000000,\"business\":\"1\",\"user\":\"+5511999990000\",\"id\":\"old\"}\n{\"type\":\"status\",\"at\":1600000001,\"id\":\"old\",\"status\":\"delivered\"}\n").unwrap();
    let output = wameter(&["replay", log.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unsupported era"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn explain_prints_the_decision_trail() {
    let output = wameter(&[
        "explain",
        "examples/sample.ndjson",
        "--accounts",
        "examples/accounts.toml",
        "--message",
        "wamid.order.1",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "ruleset          pmp-2025-07 (documented)",
        "rule             utility-inside-csw",
        "service window   open, 2026-02-02T14:00:00Z → 2026-02-03T14:00:00Z",
        "market Brazil (calling code +55 (Brazil))",
        "local date 2026-02-02",
        "America/Sao_Paulo",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    let tiered = wameter(&[
        "explain",
        "examples/sample.ndjson",
        "--accounts",
        "examples/accounts.toml",
        "--message",
        "wamid.otp.in",
    ]);
    assert!(
        stdout(&tiered).contains(
            "counter          portfolio acme, India authentication, 2026-02: charged message #1"
        ),
        "{}",
        stdout(&tiered)
    );
    assert!(stdout(&tiered).contains("rate card        usd-2026-01-01"));
}

#[test]
fn explain_says_why_an_undelivered_message_costs_nothing() {
    let output = wameter(&[
        "explain",
        "examples/sample.ndjson",
        "--accounts",
        "examples/accounts.toml",
        "--message",
        "wamid.late.1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("was not delivered"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("131047"), "{}", stderr(&output));
}

#[test]
fn gen_is_seeded_and_its_logs_replay_cleanly_in_any_split() {
    let dir = temp_dir("gen");
    let (a, b, c) = (
        dir.join("a.ndjson"),
        dir.join("b.ndjson"),
        dir.join("c.ndjson"),
    );
    let accounts = dir.join("accounts.toml");
    let run = |path: &Path, seed: &str| {
        let output = wameter(&[
            "gen",
            "--seed",
            seed,
            "--events",
            "3000",
            "-o",
            path.to_str().unwrap(),
            "--accounts-out",
            accounts.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        std::fs::read(path).unwrap()
    };
    assert_eq!(run(&a, "7"), run(&b, "7"));
    assert_ne!(run(&a, "7"), run(&c, "8"));

    let whole = wameter(&[
        "replay",
        a.to_str().unwrap(),
        "--accounts",
        accounts.to_str().unwrap(),
        "--json",
    ]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    // The same log in two files, second half first.
    let text = std::fs::read_to_string(&a).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let (p1, p2) = (dir.join("part1.ndjson"), dir.join("part2.ndjson"));
    std::fs::write(&p1, second.join("\n")).unwrap();
    std::fs::write(&p2, first.join("\n")).unwrap();
    let split = wameter(&[
        "replay",
        p1.to_str().unwrap(),
        p2.to_str().unwrap(),
        "--accounts",
        accounts.to_str().unwrap(),
        "--json",
    ]);
    let charges = |output: &Output| {
        serde_json::from_str::<serde_json::Value>(&stdout(output)).unwrap()["charges"].clone()
    };
    assert_eq!(charges(&whole), charges(&split));
    assert!(charges(&whole).as_array().unwrap().len() > 500);
}

#[test]
fn gen_webhooks_replay_to_the_charges_of_the_canonical_log() {
    // The webhook writer (wameter_meta::outgoing) is checked by the
    // engine itself: Meta-shaped statuses carrying the pricing objects the
    // engine chose, with no outbound events at all, must replay to the same
    // charges as the canonical log they were written from — in the CBP and
    // the PMP eras, with both Graph API conversation shapes.
    let dir = common::temp_dir("gen-webhooks");
    let accounts = dir.join("accounts.toml");
    let eras = [
        ("2024-10-01", "2024-12-31", "24"),
        ("2026-01-01", "2026-03-31", "24"),
        ("2026-01-01", "2026-03-31", "23"),
        ("2026-10-01", "2026-11-30", "24"),
    ];
    for (from, to, graph) in eras {
        let canonical = dir.join("canonical.ndjson");
        let webhooks = dir.join("webhooks.ndjson");
        let common_args = [
            "gen",
            "--events",
            "6000",
            "--seed",
            "3",
            "--from",
            from,
            "--to",
            to,
            "--accounts-out",
            accounts.to_str().unwrap(),
        ];
        assert!(
            common::wameter(&[&common_args[..], &["--out", canonical.to_str().unwrap()]].concat())
                .status
                .success()
        );
        let output = common::wameter(
            &[
                &common_args[..],
                &[
                    "--webhooks",
                    "--graph-version",
                    graph,
                    "--out",
                    webhooks.to_str().unwrap(),
                ],
            ]
            .concat(),
        );
        assert!(output.status.success(), "{}", common::stderr(&output));
        let text = std::fs::read_to_string(&webhooks).unwrap();
        assert!(
            text.lines()
                .all(|line| line.starts_with(r#"{"entry":[{"changes":[{"field":"messages""#)),
            "every line is a webhook body"
        );
        assert!(!text.contains(r#""type":"outbound""#));

        let replay = |path: &std::path::Path| {
            common::json(&common::wameter(&[
                "replay",
                path.to_str().unwrap(),
                "--accounts",
                accounts.to_str().unwrap(),
                "--json",
            ]))
        };
        let (expected, got) = (replay(&canonical), replay(&webhooks));
        let verdicts = |document: &serde_json::Value| -> Vec<String> {
            let mut out: Vec<String> = document["charges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    format!(
                        "{} {} {} {} {} {} {}",
                        c["message_id"],
                        c["delivered_at"],
                        c["amount"],
                        c["billable"],
                        c["category"],
                        c["type"],
                        c["conversation_id"]
                    )
                })
                .collect();
            out.sort();
            out
        };
        assert!(
            expected["charges"].as_array().unwrap().len() > 1000,
            "{from}: a real workload"
        );
        assert_eq!(verdicts(&got), verdicts(&expected), "{from} graph v{graph}");
        assert_eq!(got["totals"], expected["totals"]);
        // And Meta's verdicts in the statuses (pricing type, category,
        // billable, conversation) are the engine's, message for message.
        let output = common::wameter(&[
            "reconcile",
            webhooks.to_str().unwrap(),
            "--accounts",
            accounts.to_str().unwrap(),
            "--json",
        ]);
        let reconciled: serde_json::Value = serde_json::from_str(&common::stdout(&output)).unwrap();
        assert_eq!(
            reconciled["compared"],
            expected["charges"].as_array().unwrap().len(),
            "{from}"
        );
        assert_eq!(
            reconciled["discrepancies"],
            serde_json::json!([]),
            "{from} graph v{graph}"
        );
    }
}

#[test]
fn user_rate_cards_in_metas_layout_replace_the_builtin_ones() {
    let dir = temp_dir("rates");
    let card = dir.join("usd.csv");
    std::fs::write(&card, "Cost per message in USD on the WhatsApp Business Platform, effective January 1, 2026,,,,,,\n,,,,,,\nMarket,Currency,Marketing,Utility,Authentication,\"Authentication-\nInternational\",Service\nBrazil,$US,0.5000,0.1000,0.1000,n/a,n/a\nIndia,$US,0.2000,0.0100,0.0100,0.1000,n/a\n").unwrap();
    let output = wameter(&[
        "replay",
        "examples/sample.ndjson",
        "--accounts",
        "examples/accounts.toml",
        "--rates",
        card.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let document: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let promo = document["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message_id"] == "wamid.promo.1")
        .unwrap();
    assert_eq!(promo["amount"], "0.5");
    assert!(
        promo["reason"]
            .as_str()
            .unwrap()
            .contains(card.to_str().unwrap())
    );
    // A user card runs until the next user card: October 2026 uses it too.
    let october = document["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message_id"] == "wamid.oct.util")
        .unwrap();
    assert_eq!(october["amount"], "0.01");
    // A card that does not parse is an error naming the file, row and column.
    std::fs::write(&card, "Cost per message in USD, effective January 1, 2026\nMarket,Currency,Marketing\nBrazil,$US,abc\n").unwrap();
    let output = wameter(&[
        "replay",
        "examples/sample.ndjson",
        "--rates",
        card.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("row 3, column `marketing`: `abc` is not a decimal rate"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn rates_list_shows_provenance_and_gaps() {
    let output = wameter(&["rates", "list"]);
    let text = stdout(&output);
    assert!(
        text.contains("usd-2026-10-01: USD PMP from 2026-10-01"),
        "{text}"
    );
    assert!(
        text.contains("gap: service: the source overwrote the service column with 0"),
        "{text}"
    );
}

/// The client-facing cost beside Meta's in the replay report, checked by
/// hand: the acme WABA has 4 billable messages, 0.0775 USD from Meta;
/// +10 % and 0.001 a message makes 0.08525 + 0.004 = 0.08925.
#[test]
fn the_report_shows_client_costs_beside_meta_s() {
    let dir = common::temp_dir("cli-client-report");
    std::fs::create_dir_all(&dir).unwrap();
    let accounts = dir.join("accounts.toml");
    // The São Paulo number only: a client's month needs one time zone.
    let base = "[[business]]\nphone_number_id = \"106540352242922\"\nwaba = \"419561257915477\"\ntimezone = \"America/Sao_Paulo\"\n";
    std::fs::write(&accounts, format!("{base}\n[[client]]\nname = \"acme\"\nwabas = [\"419561257915477\"]\n[[client.markup]]\npercent = \"10\"\nfee = \"0.001\"\n")).unwrap();
    let output = wameter(&[
        "replay",
        "examples/sample.ndjson",
        "--accounts",
        accounts.to_str().unwrap(),
    ]);
    let text = common::stdout(&output);
    assert!(text.contains("Client re-billing"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("acme"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["acme", "2026-02", "4", "0.0775", "USD", "0.08925", "USD"],
        "{text}"
    );
}
