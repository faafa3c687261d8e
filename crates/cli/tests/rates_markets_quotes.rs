//! Rate cards, markets, quotes, what-if and diff through the real binary.

mod common;

use common::{json, stderr, stdout, temp_dir, wameter, wameter_home};

const TIERS: &str =
    "crates/core/src/ratecard/testdata/constructed_meta-volume-tiers_USD_2025-07-01.csv";
const MAY_2025: &str = "crates/cli/tests/data/whatif/may-2025.ndjson";
const CBP_CARD: &str = "crates/cli/tests/data/whatif/usd-cbp-2025-02.csv";
const PMP_CARD: &str = "crates/cli/tests/data/whatif/usd-pmp-2026-01.csv";

#[test]
fn check_lists_every_problem_and_fails_only_on_errors() {
    let dir = temp_dir("check");
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "Cost per message in USD, effective July 1, 2025,,,\nMarket,Currency,Marketing,Utility\nIndia,$US,0.0107,abc\nBrazil,XX,1,1\nIndia,$US,1,1\n").unwrap();
    let output = wameter(&["rates", "check", bad.to_str().unwrap(), TIERS]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    for expected in [
        "row 3, column `utility`: `abc` is not a decimal rate",
        "row 4, column `Currency`: unknown currency token `XX`",
        "row 5, column `Market`: market `India` appears twice (first on row 3)",
        "no row for 30 of Meta's 32 markets on 2025-07-01",
        "bad.csv: Meta rate card: 3 error(s), 1 warning(s)",
        "Meta volume tiers, 16 bands: 0 error(s), 0 warning(s)",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert_eq!(wameter(&["rates", "check", TIERS]).status.code(), Some(0));
}

#[test]
fn imported_cards_and_tiers_are_used_by_later_commands() {
    let home = temp_dir("store");
    let _ = std::fs::remove_dir_all(home.join("rates"));
    let log = "crates/cli/tests/data/whatif/may-2025.ndjson";
    // July 2025 is priced from the built-in derived card, and says so,
    // until a card of that date is imported, which replaces it.
    let dir = temp_dir("store-files");
    let july = dir.join("july.ndjson");
    std::fs::write(
        &july,
        std::fs::read_to_string(common::root().join(log))
            .unwrap()
            .replace("2025-05-12", "2025-07-14"),
    )
    .unwrap();
    let before = json(&wameter_home(
        &home,
        &["replay", july.to_str().unwrap(), "--json"],
    ));
    assert_eq!(before["totals"]["amount"], "0.0822");
    let m1 = before["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message_id"] == "wamid.m1")
        .unwrap();
    assert!(
        m1["reason"]
            .as_str()
            .unwrap()
            .contains("card usd-2025-07-01 (a derived card"),
        "{m1}"
    );

    let card = dir.join("meta-usd-2025-07.csv");
    let text = std::fs::read_to_string(common::root().join(PMP_CARD))
        .unwrap()
        .replace("January 1, 2026", "July 1, 2025");
    std::fs::write(
        &card,
        format!("{text}India,USD,0.0118,0.0014,0.0014,0.028,n/a\n"),
    )
    .unwrap();
    let imported = wameter_home(&home, &["rates", "import", card.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert!(
        stdout(&imported).contains("usd-pmp-2025-07-01.csv"),
        "{}",
        stdout(&imported)
    );
    assert!(
        wameter_home(&home, &["rates", "import", TIERS])
            .status
            .success()
    );
    let list = stdout(&wameter_home(&home, &["rates", "list"]));
    assert!(
        list.contains("usd-pmp-2025-07-01: USD PMP from 2025-07-01"),
        "{list}"
    );
    assert!(
        list.contains("volume tiers: USD from 2025-07-01, 16 bands (imported)"),
        "{list}"
    );

    let after = json(&wameter_home(
        &home,
        &["replay", july.to_str().unwrap(), "--json"],
    ));
    // Two marketing templates at 0.0411; utility in the window and the
    // free-form reply are free.
    assert_eq!(after["totals"]["amount"], "0.0822");
    let m1 = after["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message_id"] == "wamid.m1")
        .unwrap();
    assert!(
        m1["reason"]
            .as_str()
            .unwrap()
            .contains("card usd-pmp-2025-07-01"),
        "{m1}"
    );

    // `rates show` prints the imported card and the imported tier ladders.
    let show = stdout(&wameter_home(
        &home,
        &["rates", "show", "--date", "2025-08-01"],
    ));
    assert!(show.contains("usd-pmp-2025-07-01"), "{show}");
    assert!(
        show.contains(
            "India utility: 0:250000 at 0.0014, 250001:2000000 at 0.00133, 2000001:MAX at 0.00126"
        ),
        "{show}"
    );

    // A quote across the first tier boundary, from the imported tiers, after
    // 249,990 messages this month: 10 at 0.0014 and 10 at 0.00133.
    let quote = json(&wameter_home(
        &home,
        &[
            "quote",
            "--category",
            "utility",
            "--recipients",
            "India=20",
            "--month-to-date",
            "India=249990",
            "--date",
            "2025-08-05",
            "--json",
        ],
    ));
    assert_eq!(quote["total"], "0.0273");
    let bands = &quote["markets"][0]["bands"];
    assert_eq!(bands[0]["tier"], "0:250000");
    assert_eq!(
        (bands[0]["messages"].as_u64(), bands[0]["amount"].as_str()),
        (Some(10), Some("0.014"))
    );
    assert_eq!(bands[1]["tier"], "250001:2000000");
    assert_eq!(
        (bands[1]["messages"].as_u64(), bands[1]["amount"].as_str()),
        (Some(10), Some("0.0133"))
    );
}

#[test]
fn rates_show_names_the_card_and_its_gaps() {
    let text = stdout(&wameter(&[
        "rates",
        "show",
        "--date",
        "2026-02-01",
        "--currency",
        "USD",
    ]));
    assert!(
        text.starts_with("usd-2026-01-01 — USD PMP per message, from 2026-01-01 until 2026-04-01"),
        "{text}"
    );
    assert!(
        text.contains("gap: service: service column not captured"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Brazil") && l.contains("0.0625") && l.contains("0.0068")),
        "{text}"
    );
    let missing = wameter(&["rates", "show", "--date", "2026-02-01", "--currency", "BRL"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing)
            .contains("no PMP rate card in BRL covers 2026-02-01 (no cards in that currency)"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn markets_lookup_and_list() {
    let found = json(&wameter(&[
        "markets",
        "lookup",
        "--date",
        "2026-10-01",
        "--json",
        "+18295550100",
        "+16585550100",
        "+19395550100",
        "+12125550100",
        "+14165550100",
        "+12425550100",
        "+79161234567",
        "+77011234567",
        "+263771234567",
        "KE.1234",
    ]));
    let markets: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["market"].as_str().unwrap())
        .collect();
    assert_eq!(
        markets,
        [
            "Rest of Latin America",
            "Rest of Latin America",
            "Rest of Latin America",
            "North America",
            "North America",
            "Other",
            "Russia",
            "Kazakhstan",
            "Rest of Africa",
            "Rest of Africa",
        ]
    );
    assert_eq!(found[4]["country"], "CA");
    assert_eq!(
        found[0]["rule"],
        "calling code +1, area code 829 (Dominican Republic)"
    );
    let before = json(&wameter(&[
        "markets",
        "lookup",
        "--date",
        "2025-09-30",
        "--json",
        "+263771234567",
        "+77011234567",
    ]));
    assert_eq!(
        (before[0]["market"].as_str(), before[1]["market"].as_str()),
        (Some("Other"), Some("Russia"))
    );

    let list = json(&wameter(&[
        "markets",
        "list",
        "--date",
        "2026-10-01",
        "--json",
    ]));
    assert_eq!(list["markets"].as_array().unwrap().len(), 47);
    assert_eq!(
        json(&wameter(&[
            "markets",
            "list",
            "--date",
            "2026-07-01",
            "--json"
        ]))["markets"]
            .as_array()
            .unwrap()
            .len(),
        38
    );
    assert_eq!(
        json(&wameter(&[
            "markets",
            "list",
            "--date",
            "2026-06-30",
            "--json"
        ]))["markets"]
            .as_array()
            .unwrap()
            .len(),
        32
    );
    let bad = wameter(&["markets", "lookup", "hello"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn quote_by_market_with_window_share() {
    let quote = json(&wameter(&[
        "quote",
        "--category",
        "utility",
        "--recipients",
        "India=1000,Brazil=500",
        "--in-window",
        "30%",
        "--date",
        "2026-02-10",
        "--json",
    ]));
    // India 700 × 0.0014 = 0.98; Brazil 350 × 0.0068 = 2.38.
    assert_eq!(quote["ruleset"], "pmp-2025-07");
    assert_eq!(quote["total"], "3.36");
    assert_eq!(quote["markets"][1]["market"], "India");
    assert_eq!(quote["markets"][1]["free"]["free_customer_service"], 300);
    let text = stdout(&wameter(&[
        "quote",
        "--category",
        "service",
        "--recipients",
        "Brazil=10",
        "--date",
        "2026-11-25",
    ]));
    assert!(text.contains("confirmed on Meta's pages"), "{text}");
    assert!(
        text.contains("10 recipient(s) outside the window cannot receive a free-form message"),
        "{text}"
    );
}

#[test]
fn quote_from_a_csv_of_numbers() {
    let dir = temp_dir("quote-numbers");
    let numbers = dir.join("numbers.csv");
    std::fs::write(
        &numbers,
        "name,phone\nAna,+55 11 99999-0001\nRaj,+919876543210\nBo,+5511999990002\n",
    )
    .unwrap();
    let quote = json(&wameter(&[
        "quote",
        "--category",
        "marketing",
        "--numbers",
        numbers.to_str().unwrap(),
        "--date",
        "2026-02-10",
        "--json",
    ]));
    // Brazil 2 × 0.0625, India 1 × 0.0118.
    assert_eq!(quote["total"], "0.1368");
    std::fs::write(&numbers, "phone\n+5511999990001\nnot-a-number\n").unwrap();
    let bad = wameter(&[
        "quote",
        "--category",
        "marketing",
        "--numbers",
        numbers.to_str().unwrap(),
        "--date",
        "2026-02-10",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("numbers.csv:3:"), "{}", stderr(&bad));
}

#[test]
fn what_if_and_diff_on_a_log_computed_by_hand() {
    let dir = temp_dir("what-if");
    let rates = ["--rates", CBP_CARD, "--rates", PMP_CARD];
    let as_billed = wameter(&[&["replay", MAY_2025, "--json"][..], &rates[..]].concat());
    let as_billed_doc = json(&as_billed);
    // CBP: one marketing conversation 0.0411 + one utility conversation 0.02;
    // the service conversation is free (from 2024-11-01).
    assert_eq!(as_billed_doc["totals"]["amount"], "0.0611");
    let what_if = wameter(
        &[
            &[
                "replay",
                MAY_2025,
                "--json",
                "--as-ruleset",
                "pmp-2025",
                "--rates-on",
                "2026-01-01",
            ][..],
            &rates[..],
        ]
        .concat(),
    );
    let what_if_doc = json(&what_if);
    // PMP: each marketing template 0.0411; utility inside the window free.
    assert_eq!(what_if_doc["totals"]["amount"], "0.0822");
    assert_eq!(what_if_doc["what_if"]["ruleset"], "pmp-2025-07");
    assert!(
        what_if_doc["charges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ruleset"] == "pmp-2025-07")
    );

    let a = dir.join("a.json");
    let b = dir.join("b.json");
    std::fs::write(&a, &as_billed.stdout).unwrap();
    std::fs::write(&b, &what_if.stdout).unwrap();
    let diff = json(&wameter(&[
        "diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
    ]));
    let lines: Vec<(String, String, String, String, Option<String>)> = diff["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["month"].as_str().unwrap().into(),
                l["category"].as_str().unwrap().into(),
                l["a"]["amount"].as_str().unwrap().into(),
                l["change"].as_str().unwrap().into(),
                l["relative_change_percent"].as_str().map(String::from),
            )
        })
        .collect();
    let row = |category: &str, a: &str, change: &str, relative: Option<&str>| {
        (
            "2025-05".to_string(),
            category.to_string(),
            a.to_string(),
            change.to_string(),
            relative.map(String::from),
        )
    };
    assert_eq!(
        lines,
        [
            row("marketing", "0.0411", "0.0411", Some("100")),
            row("service", "0", "0", None),
            row("utility", "0.02", "-0.02", Some("-100")),
        ]
    );
    // 0.0611 → 0.0822: +0.0211, +34.53 %.
    assert_eq!(diff["totals"][0]["change"], "0.0211");
    assert_eq!(diff["totals"][0]["relative_change_percent"], "34.53");
    let text = stdout(&wameter(&[
        "diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]));
    assert!(
        text.contains("Total USD: A 0.0611 → B 0.0822, change +0.0211 (+34.53%)"),
        "{text}"
    );
    let bad = wameter(&["diff", a.to_str().unwrap(), MAY_2025]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("not a `wameter replay --json` document"));
}
