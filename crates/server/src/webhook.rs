//! `GET /webhook` (Meta's verification handshake) and `POST /webhook`
//! (Meta's notifications), exactly as Meta sends them (interfaces §5).
//!
//! The order of a POST is fixed: the signature is checked on the raw bytes
//! (nothing is stored for a bad one: anyone can send those), then the body
//! is stored durably — as accepted, or as rejected with its reason when it
//! is not a WhatsApp envelope — and only then is the answer sent. A `200`
//! therefore means "on disk"; anything else makes Meta deliver again.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use wameter_core::event::{DeliveryStatus, EventKind, Origin};
use wameter_core::notice::NoticeKind;
use wameter_store::{Batch, WebhookRecord};

use crate::{AppState, telemetry};
use wameter_meta::signature::{self, SignatureError};

/// The handshake's query string.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    /// Must be `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    mode: Option<String>,
    /// Must equal the configured verify token.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    /// Echoed back on success.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's verification request: echo the challenge when the token matches.
#[utoipa::path(get, path = "/webhook", params(Handshake), tag = "webhook",
    responses((status = 200, description = "The challenge, echoed", body = String), (status = 403, description = "Wrong mode or verify token")))]
pub async fn handshake(
    State(state): State<Arc<AppState>>,
    Query(query): Query<Handshake>,
) -> Response {
    let expected = state.config.verify_token.as_deref();
    let matches = match (expected, query.verify_token.as_deref()) {
        (Some(expected), Some(given)) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    match (query.mode.as_deref(), matches, query.challenge) {
        (Some("subscribe"), true, Some(challenge)) => (StatusCode::OK, challenge).into_response(),
        _ => {
            tracing::warn!(message = "Webhook verification refused.");
            (StatusCode::FORBIDDEN, "verification refused\n").into_response()
        }
    }
}

/// Meta's notifications.
#[utoipa::path(post, path = "/webhook", tag = "webhook", request_body(content = String, description = "Meta's webhook envelope, byte for byte", content_type = "application/json"),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body, keyed with the app secret>")),
    responses(
        (status = 200, description = "Stored durably"),
        (status = 400, description = "Signed but not a WhatsApp webhook envelope: stored as rejected, for inspection"),
        (status = 401, description = "Missing or wrong signature: nothing stored"),
        (status = 413, description = "Over the size limit: nothing stored"),
        (status = 503, description = "Store busy or failing: nothing acknowledged, Meta will redeliver")))]
pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            telemetry::webhook_rejected(if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "unreadable_body"
            });
            return (status, rejection.body_text()).into_response();
        }
    };
    let header = headers
        .get("x-hub-signature-256")
        .map(|value| value.as_bytes());
    if let Err(error) = signature::verify(&state.config.app_secret, header, &body) {
        telemetry::webhook_rejected(error.reason());
        tracing::warn!(
            message = "Webhook signature refused.",
            reason = error.reason(),
            bytes = body.len()
        );
        let text = match error {
            SignatureError::Missing => "missing X-Hub-Signature-256\n",
            SignatureError::Malformed => "X-Hub-Signature-256 is not sha256=<64 hex digits>\n",
            SignatureError::Mismatch => "X-Hub-Signature-256 does not match the body\n",
        };
        return (StatusCode::UNAUTHORIZED, text).into_response();
    }

    let mut record = WebhookRecord::new(body.to_vec(), Timestamp::now());
    record.relay = state.config.relay_url.is_some();
    let mut understood = None;
    let batch = match serde_json::from_slice::<serde_json::Value>(&body) {
        Err(error) => {
            record.rejected = Some(format!("not JSON: {error}"));
            Batch::new(Some(record), &[], &[])
        }
        Ok(value) => match wameter_meta::parse_envelope(&value, Origin::default()) {
            Err(problem) => {
                record.rejected = Some(format!(
                    "not a WhatsApp webhook envelope: {}: {}",
                    problem.path, problem.message
                ));
                Batch::new(Some(record), &[], &[])
            }
            Ok(mut items) => {
                // An item that does not read is kept in the stored body (for
                // a re-replay once fixed) and named here; the rest of the
                // envelope is taken. Refusing the body would make Meta
                // redeliver it for 36 hours to the same end. The same holds
                // for events under another WABA's entry: kept apart.
                let apart = crate::auth::keep_apart(&state.config.pricing, &mut items);
                if !apart.is_empty() {
                    tracing::warn!(message = "Webhook events kept apart: entry WABA and phone number disagree with the accounts file.", apart = %apart.join("; "));
                }
                let mut problems: Vec<String> = items
                    .problems
                    .iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect();
                if !problems.is_empty() {
                    tracing::warn!(message = "Webhook items not understood.", problems = %problems.join("; "));
                }
                problems.extend(apart);
                // Items of kinds wameter does not use (a field Meta added, a
                // status value it does not know) are kept in the body, said
                // on it and counted, never dropped silently (decision D16).
                for item in &items.ignored {
                    telemetry::webhook_item_ignored(&item.kind);
                    problems.push(format!("{}: ignored ({})", item.path, item.kind));
                }
                if !problems.is_empty() {
                    record.problems = Some(problems.join("; "));
                }
                let batch = Batch::new(Some(record), &items.events, &items.notices);
                understood = Some(items);
                batch
            }
        },
    };
    let rejected = batch.webhook.as_ref().and_then(|w| w.rejected.clone());
    let relayed = batch.webhook.as_ref().is_some_and(WebhookRecord::relayed);
    let outcome = state.store.write(batch).await;
    state.store_health.wrote(&outcome);
    match outcome {
        Ok(written) => {
            if let Some(items) = &understood {
                guard_news(&state, items);
            }
            if relayed {
                state.relay.stored();
            }
            telemetry::webhook_stored(rejected.is_none(), started.elapsed());
            telemetry::events_written(&written);
            match rejected {
                None => StatusCode::OK.into_response(),
                Some(reason) => {
                    telemetry::webhook_rejected("not_an_envelope");
                    tracing::warn!(message = "Webhook body stored as rejected.", reason = %reason, id = written.webhook_id);
                    (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
                }
            }
        }
        Err(error) => {
            tracing::error!(message = "Webhook not stored.", error = %error);
            // Nothing was acknowledged: Meta delivers it again.
            telemetry::webhook_rejected("store_error");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not stored; deliver again\n",
            )
                .into_response()
        }
    }
}

/// What the guard learns from a stored webhook: sends that failed hold no
/// budget any more, and a re-categorised template is looked up again.
fn guard_news(state: &AppState, items: &wameter_meta::WebhookItems) {
    let failed = items.events.iter().filter_map(|event| match &event.kind {
        EventKind::Status {
            id,
            status: DeliveryStatus::Failed,
            ..
        } => Some((event.kind.business(), &**id)),
        _ => None,
    });
    state.ledger.failed(failed);
    for notice in &items.notices {
        if let (NoticeKind::TemplateCategoryUpdate { .. }, Some(waba)) =
            (&notice.kind, &notice.waba)
        {
            state.templates.forget(waba);
        }
    }
}
