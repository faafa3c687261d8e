//! `--relay-url`: every webhook wameter accepted, passed on to the
//! business's own app.
//!
//! Meta posts a WhatsApp Business Account's webhooks to one callback URL.
//! When that URL is wameter, the app that answers users must still hear
//! of their messages, so wameter relays each accepted body byte for byte,
//! with the `X-Hub-Signature-256` Meta would have sent (HMAC of the same
//! bytes with the same app secret): the app's own verification and
//! parsing stay as they are.
//!
//! The relay is an outbox ([`wameter_store::relay`]): a body is queued in
//! the transaction that stores it, and sent only after that commit. Two
//! things follow. Nothing is lost: a crash, a restart or an app that is
//! down only delays it, and the outbox is drained in the order received.
//! And the app hears of a user's message only once wameter has it, so the
//! guard ([`crate::guard`]) never refuses a reply to a message the app has
//! seen but wameter has not. Delivery is at least once, as Meta's is: a
//! crash between the app's `200` and the outbox update sends a body
//! again, and Meta's own redeliveries are relayed too, so the app
//! deduplicates as it already must (`X-Wameter-Webhook-Id` helps).
//!
//! Bodies are posted in the order received, a few at a time, so they may
//! reach the app slightly out of order, as Meta's own webhooks do. A body
//! the app refuses (not 2xx, or no answer) is retried first, with backoff
//! (1 s doubling to 10 minutes), and nothing newer is posted meanwhile.
//! After [`GIVE_UP_AFTER`] the relay stops trying it; the body itself
//! stays stored (`GET /v1/webhooks`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use jiff::{SignedDuration, Timestamp};
use metrics::counter;
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;
use wameter_store::{RelayClaim, Store, StoreError, StoredWebhook};

use crate::error::ApiError;
use crate::{AppState, Scope, auth};

/// Bodies read from the outbox per round. Each round ends with one
/// commit; fewer bodies per round relayed less under load (64: 3,200/s
/// beside flat-out ingestion, against 5,200/s with 256), more hold more in
/// memory (Meta batches up to 1,000 updates per body, about 1 MB at most,
/// though most are a few KB).
const ROUND: i64 = 128;

/// Posts to the app at most at once.
const IN_FLIGHT: usize = 8;

/// The longest wait between two attempts at the same body.
const RETRY_MAX: Duration = Duration::from_secs(600);

/// How long a body is retried before the relay gives up on it: 7 days,
/// as the sandbox retries its webhooks — longer than the 36 h for which
/// Meta's webhook documentation says it retries its own, so an app gets
/// from wameter at least the grace Meta would have given it.
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_hours(7 * 24);

/// How often a process that does not hold the relay asks for it.
const CLAIM_EVERY: Duration = Duration::from_secs(1);

/// The relay's wake-up and what it has done, for `GET /v1/relay`.
#[derive(Default)]
pub struct Relay {
    /// Told after each webhook is stored, so an idle relayer starts at once.
    wake: Notify,
    progress: Mutex<Progress>,
}

#[derive(Clone, Debug, Default)]
struct Progress {
    /// Whether this process drains the outbox (PostgreSQL: one does).
    relaying: bool,
    delivered: u64,
    last_delivered_at: Option<Timestamp>,
    /// The body being retried: since when, how often, and why.
    failing_since: Option<Timestamp>,
    attempts: u32,
    last_error: Option<String>,
    given_up: u64,
}

impl Relay {
    /// A webhook was stored: wake the relayer.
    pub fn stored(&self) {
        self.wake.notify_one();
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut crate::lock(&self.progress));
    }

    fn progress(&self) -> Progress {
        crate::lock(&self.progress).clone()
    }
}

/// Starts the relayer when `--relay-url` is set.
pub fn spawn(state: Arc<AppState>) {
    let Some(url) = state.config.relay_url.clone() else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let claim = match state.store.relay_claim().await {
                Ok(Some(claim)) => claim,
                Ok(None) => {
                    tokio::time::sleep(CLAIM_EVERY).await;
                    continue;
                }
                Err(error) => {
                    tracing::error!(message = "Relay cannot reach the database; retrying.", error = %error);
                    tokio::time::sleep(CLAIM_EVERY).await;
                    continue;
                }
            };
            state.relay.update(|p| p.relaying = true);
            tracing::info!(message = "Relaying accepted webhooks.", url = %url);
            let Err(error) = drain(&state, &url, &claim).await;
            // Given up (PostgreSQL: the lock goes with its connection), so
            // another process may take over; this one asks again later.
            drop(claim);
            state.relay.update(|p| p.relaying = false);
            tracing::error!(message = "Relay stopped on a database error; starting again.", error = %error);
            tokio::time::sleep(CLAIM_EVERY).await;
        }
    });
}

/// How long an idle relayer sleeps before it looks at the outbox again
/// without being woken. In SQLite every write is this process's own, so
/// the wake-up covers them; in PostgreSQL other processes store bodies too.
fn idle_check(store: &Store) -> Duration {
    match store {
        Store::Postgres(_) => Duration::from_millis(100),
        _ => Duration::from_secs(1),
    }
}

/// Drains the outbox until a database error.
///
/// Each round takes the oldest bodies and posts them in that order, up to
/// [`IN_FLIGHT`] at a time: one at a time, the relay measured about 2,800
/// bodies/s against ingestion's 9,000 on the 2-core machine (each post waits
/// for the app's answer), so a busy WABA's relay fell behind. Posts may
/// therefore complete out of order, as Meta's own do (its status webhooks
/// are at least once and unordered). When one fails, no new post starts;
/// those already out finish, every body the app took leaves the outbox,
/// and the failed ones are tried again, first, after the backoff.
async fn drain(
    state: &Arc<AppState>,
    url: &str,
    claim: &RelayClaim,
) -> Result<std::convert::Infallible, StoreError> {
    loop {
        let pending = state.store.relay_pending(claim, ROUND).await?;
        if pending.is_empty() {
            let _ =
                tokio::time::timeout(idle_check(&state.store), state.relay.wake.notified()).await;
            continue;
        }
        let mut done = Vec::with_capacity(pending.len());
        let mut failed_attempts = None;
        let mut posts = tokio::task::JoinSet::new();
        let mut waiting = pending.into_iter();
        loop {
            while failed_attempts.is_none() && posts.len() < IN_FLIGHT {
                let Some(StoredWebhook {
                    id,
                    received_at_us,
                    body,
                    ..
                }) = waiting.next()
                else {
                    break;
                };
                let (state, url) = (state.clone(), url.to_string());
                posts.spawn(async move {
                    let outcome = deliver(&state, &url, id, body).await;
                    (Posted { id, received_at_us }, outcome)
                });
            }
            let Some(posted) = posts.join_next().await else {
                break;
            };
            let (sent, outcome) =
                posted.map_err(|e| StoreError::Read(format!("relay post stopped: {e}")))?;
            match outcome {
                Ok(()) => {
                    done.push(sent.id);
                    state.relay.update(|p| {
                        p.delivered += 1;
                        p.last_delivered_at = Some(Timestamp::now());
                        p.failing_since = None;
                        p.attempts = 0;
                        p.last_error = None;
                    });
                    counter!("wameter_relay_delivered_total").increment(1);
                }
                Err(reason) if too_old(&sent, Timestamp::now()) => {
                    tracing::error!(message = "Relay gave up on a webhook after 7 days of failures; it stays stored (GET /v1/webhooks).", id = sent.id, reason = %reason);
                    done.push(sent.id);
                    state.relay.update(|p| p.given_up += 1);
                    counter!("wameter_relay_given_up_total").increment(1);
                }
                Err(reason) => {
                    counter!("wameter_relay_failures_total").increment(1);
                    let mut attempts = 0;
                    state.relay.update(|p| {
                        p.failing_since.get_or_insert_with(Timestamp::now);
                        // Posts failing together are one attempt.
                        if failed_attempts.is_none() {
                            p.attempts += 1;
                        }
                        attempts = p.attempts;
                        p.last_error = Some(reason.clone());
                    });
                    if failed_attempts.is_none() {
                        tracing::warn!(message = "Relay: the app did not take a webhook; will retry.", id = sent.id, reason = %reason, attempts, retry_in_s = backoff(attempts).as_secs());
                    }
                    failed_attempts = Some(attempts);
                }
            }
        }
        state.store.relay_done(claim, done).await?;
        if let Some(attempts) = failed_attempts {
            tokio::time::sleep(backoff(attempts)).await;
        }
    }
}

/// 1 s after the first failure, doubling, at most [`RETRY_MAX`].
fn backoff(attempts: u32) -> Duration {
    RETRY_MAX.min(Duration::from_secs(1 << attempts.saturating_sub(1).min(10)))
}

/// Which body a post carried, once its bytes have gone to the app.
struct Posted {
    id: i64,
    received_at_us: i64,
}

fn too_old(sent: &Posted, now: Timestamp) -> bool {
    Timestamp::from_microsecond(sent.received_at_us)
        .is_ok_and(|received| now.duration_since(received) > GIVE_UP_AFTER)
}

/// One attempt: the body as Meta sent it, signed as Meta signs it.
async fn deliver(state: &AppState, url: &str, id: i64, body: Vec<u8>) -> Result<(), String> {
    let signature = wameter_meta::signature::sign(&state.config.app_secret, &body);
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            HeaderName::from_static("x-hub-signature-256"),
            HeaderValue::from_str(&signature).expect("hex is a header value"),
        ),
        (
            HeaderName::from_static("x-wameter-webhook-id"),
            HeaderValue::from(id),
        ),
    ];
    let answer = state
        .http
        .call(Method::POST, url, &headers, body.into())
        .await?;
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", answer.status))
    }
}

/// `GET /v1/relay`.
#[derive(Serialize, ToSchema)]
pub struct RelayJson {
    /// Where accepted webhooks are relayed; `null`: no relay configured.
    url: Option<String>,
    /// Whether this process drains the outbox (with PostgreSQL, one
    /// process does at a time).
    relaying: bool,
    /// Accepted bodies waiting to be relayed (all processes').
    pending: i64,
    /// When the oldest of them was received.
    oldest_pending_received_at: Option<String>,
    /// Bodies relayed by this process since it started.
    delivered: u64,
    /// When this process last relayed one.
    last_delivered_at: Option<String>,
    /// Since when the body at the head of the outbox fails to go through.
    failing_since: Option<String>,
    /// Attempts at that body so far.
    attempts: u32,
    /// Why the last attempt failed.
    last_error: Option<String>,
    /// Bodies given up on after 7 days of failures (still stored).
    given_up: u64,
}

/// The relay's state. Needs a token that sees every WABA.
#[utoipa::path(get, path = "/v1/relay", tag = "webhook", security(("bearer" = [])),
    responses((status = 200, body = RelayJson), (status = 401, description = "No or unknown token", body = crate::error::ErrorBody),
        (status = 403, description = "The token does not see every WABA", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot answer now", body = crate::error::ErrorBody)))]
pub async fn status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<RelayJson>, ApiError> {
    let token =
        auth::authenticate(&state.config.tokens, &headers).ok_or_else(ApiError::unauthorized)?;
    if token.scope != Scope::All {
        return Err(ApiError::forbidden(
            "the relay carries every WABA's webhooks: it needs a token that sees every WABA",
        ));
    }
    let backlog = state.store.relay_backlog().await?;
    let progress = state.relay.progress();
    let text = |at: Option<Timestamp>| at.map(|t| t.to_string());
    Ok(Json(RelayJson {
        url: state.config.relay_url.clone(),
        relaying: progress.relaying,
        pending: backlog.pending,
        oldest_pending_received_at: backlog
            .oldest_received_at_us
            .and_then(|us| Timestamp::from_microsecond(us).ok())
            .map(|t| t.to_string()),
        delivered: progress.delivered,
        last_delivered_at: text(progress.last_delivered_at),
        failing_since: text(progress.failing_since),
        attempts: progress.attempts,
        last_error: progress.last_error,
        given_up: progress.given_up,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_ten_minutes() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    }

    #[test]
    fn a_body_is_given_up_on_after_seven_days_only() {
        let received: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let sent = Posted {
            id: 1,
            received_at_us: received.as_microsecond(),
        };
        assert!(!too_old(
            &sent,
            received + SignedDuration::from_hours(7 * 24)
        ));
        assert!(too_old(
            &sent,
            received + SignedDuration::from_hours(7 * 24) + SignedDuration::from_secs(1)
        ));
    }
}
