//! The webhook route's body bound (issue 21): bytes of unauthenticated
//! bodies held at once. The accept loop and its other bounds are
//! [`wameter_http`]'s, shared with the sandbox.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};

pub use wameter_http::{BODY_BYTES_IN_FLIGHT_DEFAULT, Limits, serve};

/// Route layer of `POST /webhook`: reads the body itself, a permit per byte
/// as the bytes arrive ([`Limits::body_bytes_in_flight_max`]), refuses it
/// past the size limit, and holds the permits until the webhook is answered.
pub async fn bounded_body(
    axum::extract::State(state): axum::extract::State<Arc<crate::AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    use http_body_util::BodyExt;
    let limit = state.config.webhook_bytes_max;
    let (parts, mut body) = request.into_parts();
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            crate::telemetry::webhook_rejected("unreadable_body");
            return plain(
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            );
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > limit {
            crate::telemetry::webhook_rejected("too_large");
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is over the {limit}-byte limit (--webhook-bytes-max)\n"),
            );
        }
        let permits = u32::try_from(data.len())
            .ok()
            .and_then(|n| state.body_bytes.clone().try_acquire_many_owned(n).ok());
        let Some(permits) = permits else {
            crate::telemetry::webhook_rejected("body_bytes_in_flight");
            let body = serde_json::json!({"error": {"code": "busy", "message": "too many webhook bytes are being read at once; deliver again"}});
            let mut response = wameter_http::json(StatusCode::SERVICE_UNAVAILABLE, &body);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        match &mut held {
            Some(held) => held.merge(permits),
            None => held = Some(permits),
        }
        bytes.extend_from_slice(&data);
    }
    let response = next
        .run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(held);
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
