//! Serving HTTP with bounds (issue 21), for `serve` and the sandbox alike:
//! how many connections are open at once, how long a client may take to
//! send a request's headers (which is also how long an idle keep-alive
//! connection stays open), and how long one request may take, body
//! included. `axum::serve` has none of these: 500 idle or slowloris
//! connections stayed open forever, and past the process's descriptor
//! limit the server became unreachable.
//!
//! One accept loop: each connection is served by hyper's HTTP/1 connection
//! with a timer (the header timeout), each request by the router under a
//! deadline, and the whole under a semaphore of connections. Shutdown stops
//! accepting, lets requests in flight finish (so every webhook being
//! written still gets its answer), then returns. Refused connections and
//! cut-off requests are counted (`wameter_connections_refused_total`,
//! `wameter_requests_timed_out_total`) for whichever metrics recorder the
//! process installs.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The bounds of [`serve`], from flags (`docs/DEPLOYMENT.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once at most. Past it a new connection is
    /// closed as soon as it is accepted, so the process keeps descriptors
    /// for the ones it serves (`wameter_connections_refused_total`).
    pub connections_max: usize,
    /// Time a client has to send a request's headers; an idle keep-alive
    /// connection waiting for its next request is closed after it too.
    pub header_timeout: Duration,
    /// Time one request may take, its body included: past it the answer is
    /// 408 (`request_timeout`) and the connection is closed. Nothing is
    /// acknowledged that was not stored: a webhook cut off this way is
    /// delivered again by Meta.
    pub request_timeout: Duration,
    /// Bytes of webhook bodies held at once at most, counted as they
    /// arrive: a body is read whole before its signature can be checked,
    /// so this bounds what unauthenticated senders can make the server hold.
    /// A body that would go past it is answered 503 with `Retry-After`
    /// (Meta delivers it again). Counted in bytes received, not in bodies
    /// started, so connections trickling a body a byte at a time hold
    /// nothing that genuine webhooks need.
    pub body_bytes_in_flight_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 512,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            body_bytes_in_flight_max: BODY_BYTES_IN_FLIGHT_DEFAULT,
        }
    }
}

/// Default of [`Limits::body_bytes_in_flight_max`]: 256 MiB.
pub const BODY_BYTES_IN_FLIGHT_DEFAULT: usize = 256 << 20;

/// How long shutdown waits for requests in flight before it returns anyway.
const DRAIN_MAX: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` within `limits` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was
                    // accepted: back off instead of spinning on the error.
                    tracing::warn!(message = "Accepting a connection failed.", error = %error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("wameter_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let deadline = limits.request_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let router = router.clone();
            async move {
                match tokio::time::timeout(deadline, router.oneshot(request.map(Body::new))).await {
                    Ok(response) => response,
                    Err(_) => Ok::<_, Infallible>(timed_out(deadline)),
                }
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = connection.await {
                tracing::debug!(message = "Connection ended with an error.", error = %error);
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_MAX, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(message = "Requests still in flight after the drain time; exiting anyway.");
    }
    Ok(())
}

/// The 408 of a request that took longer than its deadline, closing the
/// connection (the rest of its body may never come).
fn timed_out(deadline: Duration) -> Response<Body> {
    metrics::counter!("wameter_requests_timed_out_total").increment(1);
    let body = serde_json::json!({
        "error": {
            "code": "request_timeout",
            "message": format!("the request took longer than {} s (headers and body); nothing of it was stored", deadline.as_secs_f64()),
        }
    });
    let mut response = json(StatusCode::REQUEST_TIMEOUT, &body);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A JSON answer with `status`.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Resolves on Ctrl-C or SIGTERM: the graceful-shutdown signal of the
/// server and the sandbox.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!(message = "Shutting down; finishing requests in flight.");
}
