//! Meta's formats through the real binary: a log of webhook POST bodies as
//! Meta sends them (`tests/data/meta/webhooks.ndjson`, constructed by us in
//! Meta's shapes), the business's own send log beside it, and a saved
//! `pricing_analytics` response.

mod common;

use common::{json, stderr, stdout, temp_dir, wameter};

const WEBHOOKS: &str = "crates/cli/tests/data/meta/webhooks.ndjson";
const SENDS: &str = "crates/cli/tests/data/meta/sends.ndjson";
const ANALYTICS: &str = "crates/cli/tests/data/meta/pricing_analytics.json";

fn root_path(relative: &str) -> std::path::PathBuf {
    common::root().join(relative)
}

#[test]
fn a_meta_shaped_log_reconciles_with_no_discrepancy() {
    let document = json(&wameter(&["reconcile", WEBHOOKS, "--json"]));
    assert_eq!(document["compared"], 6);
    assert_eq!(document["agreements"], 6);
    assert_eq!(document["discrepancies"], serde_json::json!([]));
    assert_eq!(
        document["not_delivered"], 1,
        "wamid.out-7 failed after Meta priced its `sent`"
    );
    assert_eq!(document["drift"], serde_json::json!([]));
}

#[test]
fn changing_one_status_category_yields_exactly_that_discrepancy() {
    let text = std::fs::read_to_string(root_path(WEBHOOKS)).unwrap();
    // The delivered status of wamid.out-3 now says utility; its `sent` still says marketing.
    let mut changed = 0;
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            if line.contains("\"wamid.out-3\"") && line.contains("\"delivered\"") {
                changed += 1;
                line.replace("\"category\": \"marketing\"", "\"category\": \"utility\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_eq!(changed, 1);
    let path = temp_dir("reconcile-one").join("webhooks.ndjson");
    std::fs::write(&path, edited.join("\n")).unwrap();
    let document = json(&wameter(&["reconcile", path.to_str().unwrap(), "--json"]));
    assert_eq!(document["compared"], 6);
    assert_eq!(document["agreements"], 5);
    let discrepancies = document["discrepancies"].as_array().unwrap();
    assert_eq!(discrepancies.len(), 1, "{discrepancies:#?}");
    let d = &discrepancies[0];
    assert_eq!(d["message_id"], "wamid.out-3");
    assert_eq!(d["fields"], serde_json::json!(["category"]));
    assert_eq!(d["meta"]["category"], "utility");
    assert_eq!(d["engine"]["category"], "marketing");
    assert!(
        d["cause"].as_str().unwrap().contains("re-categorised"),
        "{}",
        d["cause"]
    );
}

#[test]
fn a_template_recategorisation_is_reported_with_its_cost_impact() {
    let document = json(&wameter(&["reconcile", WEBHOOKS, SENDS, "--json"]));
    let discrepancies = document["discrepancies"].as_array().unwrap();
    assert_eq!(discrepancies.len(), 1);
    assert_eq!(discrepancies[0]["message_id"], "wamid.out-4");
    let cause = discrepancies[0]["cause"].as_str().unwrap();
    assert!(
        cause.contains(
            "`order_update` became marketing at 2026-02-10T12:05:00Z (template_category_update)"
        ),
        "{cause}"
    );
    // North America, card usd-2026-01-01: marketing 0.025 − utility 0.0034.
    let drift = document["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["template"], "order_update");
    assert_eq!(drift[0]["sent_as"], "utility");
    assert_eq!(drift[0]["priced_as"], "marketing");
    assert_eq!(drift[0]["amount_as_sent"], "0.0034");
    assert_eq!(drift[0]["amount_as_priced"], "0.025");
    assert_eq!(drift[0]["impact"], "0.0216");
    assert_eq!(
        document["drift_total"],
        serde_json::json!([{"currency": "USD", "amount": "0.0216"}])
    );
}

#[test]
fn reconcile_report_matches_the_reviewed_snapshot() {
    let output = wameter(&["reconcile", WEBHOOKS, SENDS]);
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!("reconcile_webhooks_and_sends", stdout(&output));
}

#[test]
fn replay_rates_webhook_only_messages_from_meta_pricing() {
    let document = json(&wameter(&["replay", WEBHOOKS, "--json"]));
    let charges = document["charges"].as_array().unwrap();
    assert_eq!(charges.len(), 6);
    // Brazil marketing 0.0625 + North America marketing 0.025; the rest is free.
    assert_eq!(document["totals"]["amount"], "0.0875");
    let codes: Vec<&str> = document["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"outbound_inferred"), "{codes:?}");
    assert!(codes.contains(&"ignored_webhook_items"), "{codes:?}");
    let types: Vec<&str> = charges
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "free_customer_service",
            "free_customer_service",
            "regular",
            "regular",
            "free_entry_point",
            "free_entry_point"
        ]
    );
}

#[test]
fn events_prints_what_was_understood_and_it_replays_the_same() {
    let output = wameter(&["events", WEBHOOKS]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    // 2 inbound, 7 inferred outbounds, 15 statuses, 1 notice.
    assert_eq!(lines.len(), 25, "{text}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"inferred_from\":\"pricing\""))
            .count(),
        7
    );
    assert!(lines.iter().any(|l| l.contains("\"entry_point\":\"ad\"")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"type\":\"template_category_update\""))
    );
    assert!(
        stderr(&output).contains("field phone_number_quality_update ×1"),
        "{}",
        stderr(&output)
    );
    let path = temp_dir("events-roundtrip").join("events.ndjson");
    std::fs::write(&path, &text).unwrap();
    let again = json(&wameter(&["replay", path.to_str().unwrap(), "--json"]));
    let original = json(&wameter(&["replay", WEBHOOKS, "--json"]));
    assert_eq!(again["charges"], original["charges"]);
    assert_eq!(again["totals"], original["totals"]);
    // Without the inferred outbounds, the dump plus the send log reconciles
    // as the webhooks did: the re-categorisation notice survived the trip.
    let observed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.contains("inferred_from"))
        .collect();
    let path = temp_dir("events-observed").join("events.ndjson");
    std::fs::write(&path, observed.join("\n")).unwrap();
    let reconciled = json(&wameter(&[
        "reconcile",
        path.to_str().unwrap(),
        SENDS,
        "--json",
    ]));
    assert_eq!(reconciled["drift"][0]["impact"], "0.0216");
    assert_eq!(
        reconciled["discrepancies"][0]["cause"],
        json(&wameter(&["reconcile", WEBHOOKS, SENDS, "--json"]))["discrepancies"][0]["cause"]
    );
}

#[test]
fn analytics_agree_bucket_by_bucket_and_one_wrong_volume_is_the_one_difference() {
    let document = json(&wameter(&[
        "reconcile",
        WEBHOOKS,
        "--analytics",
        ANALYTICS,
        "--json",
    ]));
    assert_eq!(document["analytics"]["buckets"], 6);
    assert_eq!(document["analytics"]["differences"], 0);

    let text = std::fs::read_to_string(root_path(ANALYTICS)).unwrap();
    let mut body: serde_json::Value = serde_json::from_str(&text).unwrap();
    body["pricing_analytics"]["data"][0]["data_points"][3]["volume"] = 2.into();
    let path = temp_dir("analytics-one").join("analytics.json");
    std::fs::write(&path, body.to_string()).unwrap();
    let document = json(&wameter(&[
        "reconcile",
        WEBHOOKS,
        "--analytics",
        path.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(document["analytics"]["differences"], 1);
    let line = document["analytics"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["within_tolerance"] == false)
        .unwrap();
    assert_eq!(line["country"], "US");
    assert_eq!(line["meta"]["count"], 2);
    assert_eq!(line["engine"]["count"], 1);
}

#[test]
fn a_bad_webhook_item_names_its_line_and_json_path() {
    let path = temp_dir("bad-webhook").join("log.ndjson");
    std::fs::write(
        &path,
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"1\"},\"statuses\":[{\"id\":\"wamid.A\",\"status\":\"delivered\",\"timestamp\":\"soon\"}]}}]}]}\n",
    )
    .unwrap();
    let output = wameter(&["events", path.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("log.ndjson:line 1: field `entry[0].changes[0].value.statuses[0].timestamp`: \"soon\" is not UNIX seconds"),
        "{}",
        stderr(&output)
    );
    let strict = wameter(&["events", "--strict", path.to_str().unwrap()]);
    assert!(!strict.status.success());
}

#[test]
fn an_analytics_file_that_is_not_analytics_is_refused_with_its_field() {
    let path = temp_dir("bad-analytics").join("a.json");
    std::fs::write(
        &path,
        r#"{"pricing_analytics":{"data":[{"data_points":[{"start":1,"end":2,"volume":"x"}]}]}}"#,
    )
    .unwrap();
    let output = wameter(&["reconcile", WEBHOOKS, "--analytics", path.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("pricing_analytics.data[0].data_points[0].volume"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_priced_delivery_with_no_recipient_is_counted_as_unrated_not_as_undelivered() {
    // Meta's BSUID page: a delivered status whose recipient is a `user.…`
    // id, with the user's country beside it in `contacts[].profile`.
    let fixture = common::root()
        .join("crates/log/tests/fixtures/webhooks/WBAPI_Doc-meta_business-scoped-user-ids_2.json");
    let text = std::fs::read_to_string(fixture).unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dir = temp_dir("unrated");
    let path = dir.join("log.ndjson");
    std::fs::write(&path, format!("{body}\n")).unwrap();
    // The id is kept as the user, its country with it.
    let events = stdout(&wameter(&["events", path.to_str().unwrap()]));
    assert!(events.contains(r#""user":"user.9373795779eb6441c8adb2eaee5b848e7dd174ddd302d7db62142f4722d574b6","user_country":"US""#), "{events}");
    // Priced by that country (the fixture's 2025-06 date moved into February 2026, which has a card).
    let february = dir.join("february.ndjson");
    std::fs::write(
        &february,
        format!("{}\n", body.to_string().replace("1750030073", "1770717600")),
    )
    .unwrap();
    let document = json(&wameter(&["replay", february.to_str().unwrap(), "--json"]));
    assert_eq!(
        document["charges"][0]["market"], "North America",
        "{document}"
    );

    // Without any recipient the status cannot stand in for its send.
    let mut blank = body.clone();
    blank["entry"][0]["changes"][0]["value"]["statuses"][0]["recipient_user_id"] =
        serde_json::json!("");
    std::fs::write(&path, format!("{blank}\n")).unwrap();
    let output = wameter(&["reconcile", path.to_str().unwrap(), "--json"]);
    let document = json(&output);
    assert_eq!(document["compared"], 0);
    assert_eq!(document["unrated"], 1);
    assert_eq!(document["not_delivered"], 0);
}

#[test]
fn a_business_scoped_id_without_a_country_is_unpriceable_and_says_so() {
    let path = temp_dir("no-country").join("log.ndjson");
    std::fs::write(
        &path,
        "{\"type\":\"outbound\",\"at\":\"2026-02-10T10:00:00Z\",\"business\":\"1\",\"user\":\"user.93737\",\"id\":\"wamid.x\",\"template\":{\"name\":\"t\",\"category\":\"marketing\"}}\n\
         {\"type\":\"status\",\"at\":\"2026-02-10T10:00:05Z\",\"id\":\"wamid.x\",\"status\":\"delivered\"}\n",
    )
    .unwrap();
    let output = wameter(&["replay", path.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("user user.93737 is a business-scoped user id with no country"),
        "{}",
        stderr(&output)
    );
    // With the country beside it, it is priced by that country.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap().replace(
            r#""user":"user.93737""#,
            r#""user":"user.93737","user_country":"br""#,
        ),
    )
    .unwrap();
    let document = json(&wameter(&["replay", path.to_str().unwrap(), "--json"]));
    assert_eq!(document["charges"][0]["market"], "Brazil");
    assert_eq!(document["charges"][0]["amount"], "0.0625");
}
