//! Metrics (Prometheus, at `/metrics`). Every label comes from a small
//! fixed set — outcome, reason, route — never a phone number or an id, so
//! the number of series stays bounded whatever the traffic.
//!
//! Each event is counted from one function here, so names and labels are
//! written once.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets for ingestion, seconds: 100 µs to 2.5 s.
const INGEST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide recorder. `metrics` has one global recorder, so
/// several servers in one process (the tests) share it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("wameter_ingest_duration_seconds".into()),
                    INGEST_BUCKETS,
                )
                .expect("the bucket list is not empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already installed (only in odd
                // embeddings); keep a private one so /metrics still works.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "wameter_webhooks_received_total",
        "Signed webhook bodies stored, by outcome (accepted or rejected as not a WhatsApp envelope)."
    );
    metrics::describe_counter!(
        "wameter_webhooks_rejected_total",
        "Webhook requests refused or rejected, by reason."
    );
    metrics::describe_counter!(
        "wameter_events_stored_total",
        "Events and notices stored for the first time."
    );
    metrics::describe_counter!(
        "wameter_events_duplicate_total",
        "Events and notices received again (redeliveries, repeated statuses) and not stored twice."
    );
    metrics::describe_counter!(
        "wameter_deliveries_stored_total",
        "Delivered statuses stored for the first time: each becomes one charge entry (billable or not)."
    );
    metrics::describe_histogram!(
        "wameter_ingest_duration_seconds",
        metrics::Unit::Seconds,
        "From a webhook's body being read to its durable write (the time Meta waits for the 200)."
    );
    metrics::describe_counter!(
        "wameter_charge_queries_total",
        "Charge and report queries answered, by route."
    );
    metrics::describe_counter!(
        "wameter_webhook_items_ignored_total",
        "Webhook items of kinds wameter does not use (a new field, an unknown status value…), by kind: kept in the stored body with the reason."
    );
    metrics::describe_counter!(
        "wameter_connections_refused_total",
        "Connections closed at once because --max-connections were open."
    );
    metrics::describe_counter!(
        "wameter_requests_timed_out_total",
        "Requests answered 408 because they took longer than --request-timeout (headers and body)."
    );
    metrics::describe_counter!(
        "wameter_reconciliations_total",
        "(portfolio, month) reconciliations computed for the dashboard, by who asked: the background reconciler, a view that found none kept, or a view's refresh of a kept one settled since."
    );
    metrics::describe_counter!(
        "wameter_reconciliations_from_kept_state_total",
        "Of those, how many the settler's kept state of the month answered (SQLite; every message agreeing with Meta's pricing, none drifted): no events read, no replay."
    );
    metrics::describe_counter!(
        "wameter_events_kept_apart_total",
        "Events not stored as a tenant's, by reason: a webhook entry whose WABA is not its phone number's in the accounts file (kept in the body only), or a line of POST /v1/events for another WABA's message (refused)."
    );
}

/// Keeps histograms fresh; runs for the life of the process.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

/// A webhook request refused (401, 413) or stored as rejected (400).
pub fn webhook_rejected(reason: &'static str) {
    counter!("wameter_webhooks_rejected_total", "reason" => reason).increment(1);
}

/// A signed body stored.
pub fn webhook_stored(accepted: bool, elapsed: Duration) {
    let outcome = if accepted { "accepted" } else { "rejected" };
    counter!("wameter_webhooks_received_total", "outcome" => outcome).increment(1);
    histogram!("wameter_ingest_duration_seconds").record(elapsed.as_secs_f64());
}

/// Events written by one request.
pub fn events_written(written: &wameter_store::Written) {
    counter!("wameter_events_stored_total").increment(written.accepted);
    counter!("wameter_events_duplicate_total").increment(written.duplicates);
    counter!("wameter_deliveries_stored_total").increment(written.deliveries);
}

/// A webhook item of a kind wameter does not use, by its first word
/// (`field`, `status`, `message`, `error`…: a bounded set of labels).
pub fn webhook_item_ignored(kind: &str) {
    let label = match kind.split_whitespace().next().unwrap_or("") {
        "field" => "field",
        "status" => "status",
        "message" => "message",
        "error" => "error",
        _ => "other",
    };
    counter!("wameter_webhook_items_ignored_total", "kind" => label).increment(1);
}

/// Events not stored as a tenant's (see [`crate::auth::keep_apart`]).
pub fn events_kept_apart(reason: &'static str, count: usize) {
    counter!("wameter_events_kept_apart_total", "reason" => reason).increment(count as u64);
}

/// A charge or report query answered.
pub fn charge_query(route: &'static str) {
    counter!("wameter_charge_queries_total", "route" => route).increment(1);
}
