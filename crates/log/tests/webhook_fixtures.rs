//! The 123 real webhook payloads (Meta's documentation and three SDKs' test
//! suites; provenance in `fixtures/webhooks/PROVENANCE.md`), each read as a
//! line of a mixed log. What each turns into — canonical events, notices,
//! ignored items, problems — is snapshot-tested, and every canonical line
//! reads back into the same event or notice.

use std::path::{Path, PathBuf};

use wameter_core::event::{EventKind, Origin};
use wameter_log::{Parsed, event_line, notice_line, parse_line};

fn fixtures() -> Vec<PathBuf> {
    fixtures_in("webhooks")
}

fn fixtures_in(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// A fixture as one log line (they are pretty-printed; a log has one body per line).
fn as_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .to_string()
}

/// Meta's documentation writes placeholders (`PHONE_NUMBER`,
/// `CUSTOMER_PHONE_NUMBER`, `<WHATSAPP_ID>`…) where real values go, and its
/// older BSUID page a `user.…` id that is not the `CC.…` form Meta later
/// documented. These are the only things a fixture may fail to give.
fn is_placeholder_problem(message: &str) -> bool {
    let value = message.split('`').nth(1).unwrap_or("");
    let upper_snake =
        !value.is_empty() && value.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    upper_snake || value.starts_with("user.") || value == "BSUID_123"
}

#[test]
fn all_123_fixtures_parse_and_their_canonical_events_are_snapshotted() {
    let files = fixtures();
    assert_eq!(files.len(), 123, "the conformance set has 123 payloads");
    let problems = snapshot_each(&files, "");
    // Placeholders are rare: most fixtures are complete.
    assert!(problems < 40, "{problems} problems");
}

/// The 13 Calling API webhooks of `fixtures/calling` (pywa's tests, Meta's
/// pages, two redacted real captures; provenance in its README): each
/// parses, and what it turns into is snapshot-tested. The two MM API
/// files are fragments (a `pricing` object alone), not webhooks.
#[test]
fn every_calling_fixture_parses_and_is_snapshotted() {
    let files: Vec<PathBuf> = fixtures_in("calling")
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("FRAGMENT"))
        .collect();
    assert_eq!(files.len(), 13);
    snapshot_each(&files, "calling_");
    // Both terminates become calls; the user-initiated connects open the window.
    let mut calls = Vec::new();
    for path in &files {
        let Ok(Parsed::Webhook(items)) = parse_line(&as_line(path), Origin::default()) else {
            panic!()
        };
        for event in &items.events {
            if let EventKind::Call(call) = &event.kind {
                calls.push((
                    call.direction.as_str(),
                    call.duration_seconds,
                    call.status.as_str().to_string(),
                ));
            }
            let line = event_line(event);
            assert!(
                matches!(parse_line(&line, Origin::default()), Ok(Parsed::Event(back)) if back == *event),
                "{line}"
            );
        }
    }
    calls.sort();
    assert_eq!(
        calls,
        [
            ("business_initiated", 120, "completed".to_string()),
            ("user_initiated", 20, "failed".to_string())
        ]
    );
}

/// Parses each file as a log line and snapshots what came out; returns how
/// many placeholder problems were met (any other problem fails).
fn snapshot_each(files: &[PathBuf], prefix: &str) -> usize {
    let mut problems = 0;
    for (index, path) in files.iter().enumerate() {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let origin = Origin {
            source: 0,
            line: index as u32 + 1,
        };
        let items = match parse_line(&as_line(path), origin) {
            Ok(Parsed::Webhook(items)) => items,
            other => panic!("{name}: not read as a webhook: {other:?}"),
        };
        let mut out = String::new();
        for event in &items.events {
            out.push_str(&event_line(event));
            out.push('\n');
        }
        for notice in &items.notices {
            out.push_str(&notice_line(notice));
            out.push('\n');
        }
        for ignored in &items.ignored {
            out.push_str(&format!("ignored: {} at {}\n", ignored.kind, ignored.path));
        }
        for problem in &items.problems {
            problems += 1;
            assert!(
                is_placeholder_problem(&problem.message),
                "{name}: {}: {}",
                problem.path,
                problem.message
            );
            out.push_str(&format!("problem: {}: {}\n", problem.path, problem.message));
        }
        assert!(!out.is_empty(), "{name}: nothing at all came out of it");
        insta::assert_snapshot!(format!("{prefix}{name}"), out);
    }
    problems
}

#[test]
fn every_canonical_line_reads_back_into_the_same_event_or_notice() {
    for path in fixtures() {
        let origin = Origin { source: 3, line: 9 };
        let Ok(Parsed::Webhook(items)) = parse_line(&as_line(&path), origin) else {
            panic!("{}", path.display())
        };
        for event in items.events {
            let line = event_line(&event);
            match parse_line(&line, origin) {
                Ok(Parsed::Event(back)) => assert_eq!(back, event, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        for notice in items.notices {
            let line = notice_line(&notice);
            match parse_line(&line, origin) {
                Ok(Parsed::Notice(back)) => assert_eq!(*back, notice, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}

#[test]
fn the_set_covers_what_the_issue_lists() {
    let mut inbound = 0;
    let mut ad_entry_points = 0;
    let mut priced_statuses = 0;
    let mut models = std::collections::BTreeSet::new();
    let mut notices = std::collections::BTreeSet::new();
    for path in fixtures() {
        let Ok(Parsed::Webhook(items)) = parse_line(&as_line(&path), Origin::default()) else {
            panic!()
        };
        for event in &items.events {
            match &event.kind {
                EventKind::Inbound { entry_point, .. } => {
                    inbound += 1;
                    ad_entry_points += usize::from(entry_point.is_some());
                }
                EventKind::Status {
                    detail: Some(detail),
                    ..
                } => {
                    if let Some(pricing) = &detail.pricing {
                        priced_statuses += 1;
                        models.insert(
                            pricing
                                .pricing_model
                                .as_deref()
                                .unwrap_or_default()
                                .to_string(),
                        );
                    }
                }
                _ => {}
            }
        }
        for notice in &items.notices {
            let line = notice_line(notice);
            let kind: serde_json::Value = serde_json::from_str(&line).unwrap();
            notices.insert(kind["type"].as_str().unwrap().to_string());
        }
    }
    assert!(inbound >= 50, "{inbound} inbound messages");
    assert!(ad_entry_points >= 2, "{ad_entry_points} referrals");
    assert!(
        priced_statuses >= 16,
        "{priced_statuses} statuses with pricing"
    );
    assert_eq!(models.into_iter().collect::<Vec<_>>(), ["CBP", "PMP"]);
    for kind in wameter_core::notice::NoticeKind::TYPES {
        assert!(notices.contains(kind), "no fixture gives a {kind} notice");
    }
}

/// Meta's two Marketing Messages API fragments (a `pricing` object, and a
/// status's `conversation` + `pricing`): `marketing_lite` is a marketing
/// template, and a max-price delivery's `cost` is read exactly.
#[test]
fn the_marketing_messages_fragments_read_as_meta_prints_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/calling");
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let max_price =
        read("meta-docs-mm-max-price-2026-06-26_delivered-read_pricing-cost_FRAGMENT.json");
    let pricing = wameter_meta::webhook::parse_pricing(&max_price["pricing"]).unwrap();
    assert_eq!(
        pricing.template_category(),
        Some(wameter_core::category::TemplateCategory::Marketing)
    );
    let cost = pricing.cost.unwrap();
    assert_eq!(
        (cost.amount.to_string().as_str(), cost.currency.code()),
        ("0.035", "USD")
    );
    let plain =
        read("meta-docs-mm-get-started-2026-02-10_status-conversation-pricing_FRAGMENT.json");
    let pricing = wameter_meta::webhook::parse_pricing(&plain["pricing"]).unwrap();
    assert_eq!((&*pricing.category, pricing.cost), ("marketing_lite", None));
}
