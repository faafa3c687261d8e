//! `wameter serve`: the meter as a service. Meta's webhooks come in, are
//! checked (HMAC on the raw bytes), stored durably and acknowledged; the
//! query API answers "is the window open" from the stored events, and
//! "what did this cost" and cost reports from the charges the settler keeps
//! — both through the same pure engine as `wameter replay`.
//!
//! With `--upstream` it is also the guard ([`guard`]): Meta's send path in
//! front of the Graph API, refusing what Meta would refuse or a budget
//! forbids ([`budgets`]) before it costs anything, and recording every
//! send it forwards.
//!
//! The crate is a thin adapter: HTTP in [`webhook`], [`api`] and [`guard`],
//! tenancy in [`auth`], metrics in [`telemetry`], passing webhooks on to
//! the business's app in [`relay`], the engine calls in
//! [`meter`], keeping the stored charges up to date in [`settle`], and the
//! calls it makes itself in [`outbound`]. It
//! owns no rules and no storage format: those are `wameter-core` and
//! `wameter-store`.

pub mod api;
pub mod auth;
pub mod budgets;
pub mod dashboard;
pub mod error;
pub mod guard;
pub mod listen;

pub mod openapi;
pub mod outbound;
pub mod relay;
pub mod settle;
pub mod telemetry;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use wameter_core::billing::Billing;
use wameter_store::Store;

pub use auth::{ApiToken, Scope};
pub use wameter_core::pricing::Pricing;

/// Webhook bodies over this size get a 413 by default. Meta's largest
/// batched notifications are well under it.
pub const WEBHOOK_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;

/// `POST /v1/events` bodies over this size get a 413 by default.
pub const EVENTS_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// Everything the server is configured with (flags, environment and
/// `wameter.toml`, merged by the CLI).
pub struct Config {
    /// Meta app secret: the HMAC key of `X-Hub-Signature-256`.
    pub app_secret: Vec<u8>,
    /// The token Meta's verification request must carry.
    pub verify_token: Option<String>,
    /// API tokens and what each sees.
    pub tokens: Vec<ApiToken>,
    /// Size limit of a webhook body.
    pub webhook_bytes_max: usize,
    /// Size limit of a `POST /v1/events` body.
    pub events_bytes_max: usize,
    /// Rate cards, tiers, markets, businesses.
    pub pricing: Pricing,
    /// Clients and budgets.
    pub billing: Billing,
    /// The guard's upstream and margin; `None`: no send path.
    pub guard: Option<guard::GuardConfig>,
    /// Where budget alerts are posted; `None`: recorded only.
    pub alert_url: Option<String>,
    /// The business's own webhook endpoint, to which every accepted
    /// webhook is relayed ([`relay`]); `None`: no relay.
    pub relay_url: Option<String>,
    /// Connections, header and request deadlines ([`listen`]).
    pub limits: listen::Limits,
}

/// Shared by every request.
pub struct AppState {
    /// Configuration (shared with blocking tasks).
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Takes turns settling charges.
    pub settler: settle::Settler,
    /// Budgets' spend and the sends in flight.
    pub ledger: budgets::Ledger,
    /// The guard's template categories.
    pub templates: guard::Templates,
    /// Calls to the upstream, the alert receiver and the relay's app.
    pub http: outbound::Http,
    /// The webhook relay's wake-up and progress.
    pub relay: relay::Relay,
    /// Stored events the guard has read back already.
    pub read_back: wameter_meter::ReadBack,
    /// Bytes of webhook bodies held at once, one permit a byte
    /// ([`listen::bounded_body`]).
    pub body_bytes: Arc<tokio::sync::Semaphore>,
    /// Whether the last write failed ([`healthz`]).
    pub store_health: StoreHealth,
    /// The dashboard's rows, kept while nothing new is stored.
    pub dashboard: dashboard::Memo,
}

/// Locks a mutex of the server's in-memory state. A lock a panicking
/// thread left poisoned is taken over rather than passed on: these maps
/// (budgets in flight, caches, progress) stay usable, and one failed
/// request must not make every later one panic too.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The outcome of the store's last write, for `/healthz`: a store that
/// answers reads but cannot write (a full disk) is not healthy.
#[derive(Default)]
pub struct StoreHealth {
    /// The last write's error and when, while no write has succeeded since.
    failing: std::sync::Mutex<Option<(jiff::Timestamp, String)>>,
}

impl StoreHealth {
    /// Records a write's outcome.
    pub fn wrote<T>(&self, outcome: &Result<T, wameter_store::StoreError>) {
        // A panic elsewhere cannot poison this: nothing in here panics,
        // and a poisoned lock is taken as it is rather than panicking again.
        let mut failing = crate::lock(&self.failing);
        match outcome {
            Ok(_) => {
                if failing.take().is_some() {
                    tracing::info!(message = "The store writes again.");
                    metrics::gauge!("wameter_store_failing").set(0.0);
                }
            }
            Err(error) => {
                metrics::counter!("wameter_store_write_failures_total").increment(1);
                metrics::gauge!("wameter_store_failing").set(1.0);
                if failing.is_none() {
                    *failing = Some((jiff::Timestamp::now(), error.to_string()));
                }
            }
        }
    }

    /// Since when and why writes fail, if they do.
    pub fn failing(&self) -> Option<(jiff::Timestamp, String)> {
        crate::lock(&self.failing).clone()
    }
}

impl AppState {
    /// State for a server over `store`.
    pub fn new(config: Config, store: Store) -> Arc<AppState> {
        let limits = config.limits;
        Arc::new(AppState {
            config: Arc::new(config),
            store,
            metrics: telemetry::recorder(),
            settler: settle::Settler::default(),
            ledger: budgets::Ledger::default(),
            templates: guard::Templates::default(),
            http: outbound::Http::default(),
            relay: relay::Relay::default(),
            read_back: wameter_meter::ReadBack::default(),
            body_bytes: Arc::new(tokio::sync::Semaphore::new(
                limits
                    .body_bytes_in_flight_max
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            store_health: StoreHealth::default(),
            dashboard: dashboard::Memo::default(),
        })
    }
}

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> Router {
    let webhook_limit = state.config.webhook_bytes_max;
    let events_limit = state.config.events_bytes_max;
    let mut router = Router::new();
    if state.config.guard.is_some() {
        router = router
            .route("/{version}/{phone_number_id}/messages", post(guard::send))
            .route(
                "/{version}/{phone_number_id}/marketing_messages",
                post(guard::marketing_send),
            )
            .route("/{version}/{phone_number_id}/calls", post(guard::calls));
    }
    // Webhook bodies are read whole before their signature can be checked:
    // the bytes held at once are bounded, so unauthenticated senders can
    // hold at most `body_bytes_in_flight_max` of memory.
    let bounded = axum::middleware::from_fn_with_state(state.clone(), listen::bounded_body);
    router
        .route(
            "/webhook",
            get(webhook::handshake)
                .post(webhook::receive)
                .layer(DefaultBodyLimit::max(webhook_limit))
                .route_layer(bounded),
        )
        .route("/v1/windows/{business}/{user}", get(api::windows))
        .route("/v1/charges", get(api::charges))
        .route("/v1/reports/costs", get(api::costs))
        .route(
            "/v1/events",
            post(api::post_events)
                .get(api::get_events)
                .layer(DefaultBodyLimit::max(events_limit)),
        )
        .route("/v1/webhooks", get(api::get_webhooks))
        .route("/v1/budgets", get(budgets::list))
        .route("/v1/relay", get(relay::status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/", get(dashboard::home))
        .route(
            "/sign-in",
            get(dashboard::sign_in_page).post(dashboard::sign_in),
        )
        .route("/sign-out", post(dashboard::sign_out))
        .route("/overview", get(dashboard::overview))
        .route("/allowance", get(dashboard::allowance))
        .route("/calls", get(dashboard::calls))
        .route("/windows", get(dashboard::windows))
        .route("/contact/{business}/{user}", get(dashboard::contact))
        .route("/reconciliation", get(dashboard::reconciliation))
        .with_state(state)
}

/// Liveness, database reachability, and whether the last write succeeded
/// (`/readyz` answers the same, for load balancers): 503 while the store
/// cannot write, so a full disk takes the node out of rotation.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up, database answering and writing"), (status = 503, description = "Database not answering, or its last write failed")))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let backend = match &state.store {
        Store::Sqlite(_) => "sqlite",
        Store::Postgres(_) => "postgres",
        Store::Discard => "discard",
    };
    if let Some((since, error)) = state.store_health.failing() {
        let body = serde_json::json!({"status": "unavailable", "database": backend, "error": format!("writes fail since {since}: {error}")});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    match state.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok", "database": backend})).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable", "database": backend, "error": error.to_string()})),
        )
            .into_response(),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String)))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight
/// (so every webhook being written still gets its answer). Charges kept
/// with other pricing than this process's are dropped and settled again
/// first; the settler then runs in the background.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    match state
        .store
        .reset_settlement(settle::fingerprint(&state.config.pricing))
        .await
    {
        Ok(true) => tracing::info!(
            message = "Accounts, rate cards, tiers or engine changed since the charges were kept: settling every month again."
        ),
        Ok(false) => {}
        Err(error) => return Err(std::io::Error::other(error.to_string())),
    }
    match budgets::restore(&state, jiff::Timestamp::now()).await {
        Ok(0) => {}
        Ok(restored) => tracing::info!(
            message = "Sends still in flight weigh against their budgets again.",
            restored
        ),
        Err(error) => {
            return Err(std::io::Error::other(format!(
                "cannot read the sends in flight: {error}"
            )));
        }
    }
    settle::spawn(state.clone());
    dashboard::spawn_reconciler(state.clone());
    budgets::spawn_watcher(state.clone());
    relay::spawn(state.clone());
    telemetry::spawn_upkeep(state.metrics.clone());
    let limits = state.config.limits;
    listen::serve(listener, app(state), limits, shutdown_signal()).await
}

pub use wameter_http::shutdown_signal;
