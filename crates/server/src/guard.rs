//! The guard: Meta's send path, `POST /{version}/{phone_number_id}/messages`,
//! served in front of the upstream Graph API (Meta's, or the sandbox's).
//!
//! A send is looked at before it costs anything:
//! 1. its template's category is looked up in the WABA's templates
//!    (upstream `GET …/message_templates`, cached per WABA, forgotten when a
//!    `template_category_update` webhook arrives);
//! 2. a free-form message to a user whose customer service window is closed,
//!    or closes within the safety margin, is refused at once with Meta's own
//!    131047 body — nothing is forwarded;
//! 3. the engine prices the send as if delivered now (the estimate);
//! 4. a billable send is checked against the hard-stop budgets
//!    ([`crate::budgets::reserve`]).
//!
//! Then the body is forwarded byte for byte with the caller's bearer token.
//! Whatever upstream answers is passed back, with the estimate in
//! `X-Wameter-*` headers; a send upstream accepted is recorded as an
//! `outbound` event with its template category, queued before the answer
//! goes out and awaited for at most [`GuardConfig::record_wait`] (see
//! [`record`]), so metering no longer depends on the sender's own records.
//! Whether it is charged is decided later, from the statuses Meta's
//! webhooks bring: a send that fails after being accepted is never charged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde_json::Value;
use wameter_core::category::TemplateCategory;
use wameter_core::charge::Charge;
use wameter_core::event::{Event, EventKind, Origin, Template, UserId};
use wameter_core::money::format_amount;
use wameter_core::settlement::LOOK_BACK;
use wameter_meta::graph::{GraphError, REENGAGEMENT};
use wameter_meta::outgoing::status_error_text;
use wameter_store::{Batch, InFlightRow};

use crate::outbound::Answer;
use crate::{AppState, budgets};
use wameter_meter as meter;

/// Template pages followed at most in one look-up.
const TEMPLATE_PAGES_MAX: usize = 20;

/// How the guard is set up.
#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// The Graph API root sends are forwarded to (`https://graph.facebook.com`).
    pub upstream: String,
    /// A free-form message is refused when the window closes sooner than this.
    pub safety_margin: SignedDuration,
    /// How long the answer waits for the send's record to commit
    /// ([`RECORD_WAIT`] by default).
    pub record_wait: SignedDuration,
}

/// The record wait by default: none. The record is queued ahead of any
/// later write before the answer leaves, and waiting for its commit adds
/// no durability — the message is already out, so a crash before the
/// commit loses the record whether the answer waited or not. Waiting only
/// lets `X-Wameter-Recorded` say `true`, and it is the guard's dearest
/// step: a commit's fsync (0.2–0.7 ms idle, p99 3.5–5 ms under webhook
/// load), and a 1 ms wait measured 0.9 ms at p50 and 3.4 ms at p99 on a
/// loaded 2-core machine (docs/PERFORMANCE.md), against a target of 2 ms
/// added at p99. A wait in between made the header `true` for 83–98 % of
/// sends: nothing an app could rely on. So: no wait by default
/// (`pending`), or `--record-wait 30s` for an answer that always waits.
pub const RECORD_WAIT: SignedDuration = SignedDuration::ZERO;

/// What the guard needs of a template: its category, and its max price
/// (`optimization_spec.bid_amount`: minor units per 1,000 deliveries)
/// when it has one.
#[derive(Clone, Copy, Debug, PartialEq)]
struct TemplateFacts {
    category: TemplateCategory,
    bid_amount: Option<u64>,
}

/// One WABA's templates: (name, language code) → what the guard needs.
type Categories = HashMap<(String, String), TemplateFacts>;

/// Template categories per WABA.
#[derive(Default)]
pub struct Templates {
    by_waba: Mutex<HashMap<String, Categories>>,
}

impl Templates {
    fn get(&self, waba: &str, name: &str, language: &str) -> Option<TemplateFacts> {
        let cache = crate::lock(&self.by_waba);
        cache
            .get(waba)?
            .get(&(name.to_string(), language.to_string()))
            .copied()
    }

    /// Forgets a WABA's templates: the next send of one looks them up again.
    pub fn forget(&self, waba: &str) {
        crate::lock(&self.by_waba).remove(waba);
    }
}

/// What the guard reads of a send body.
#[derive(Debug, PartialEq)]
struct Outgoing {
    user: UserId,
    /// `(name, language code)` of a template message.
    template: Option<(String, String)>,
    /// The Messaging account the send names (Meta's precedence).
    messaging_account: Option<Box<str>>,
}

/// Reads the recipient and template of a message. `None` for what is not a
/// message to a user (read receipts, typing indicators) and for bodies the
/// guard cannot read: those go upstream untouched, which answers them.
fn read_send(body: &[u8]) -> Option<Outgoing> {
    let value: Value = serde_json::from_slice(body).ok()?;
    if value.get("status").is_some() {
        return None;
    }
    let to = value
        .get("to")
        .or_else(|| value.get("recipient"))
        .and_then(Value::as_str)?;
    let user = UserId::parse(to).ok()?;
    let is_template = match value.get("type").and_then(Value::as_str) {
        Some(kind) => kind == "template",
        None => value.get("template").is_some(),
    };
    let template = if is_template {
        let template = value.get("template")?;
        let name = template.get("name").and_then(Value::as_str)?;
        let language = template
            .get("language")
            .and_then(|l| l.get("code"))
            .and_then(Value::as_str)?;
        Some((name.to_string(), language.to_string()))
    } else {
        None
    };
    let messaging_account = wameter_meta::graph::messaging_account_id(&value).map(Box::from);
    Some(Outgoing {
        user,
        template,
        messaging_account,
    })
}

fn upstream_error(details: String) -> GraphError {
    GraphError {
        http: 502,
        ..GraphError::new(1, "An unknown error occurred", details)
    }
}

fn store_error(details: String) -> GraphError {
    GraphError {
        http: 503,
        ..GraphError::new(2, "Service temporarily unavailable", details)
    }
}

fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Looks a template's category up upstream and caches every template the
/// answer lists. `Ok(None)`: upstream has no such template (it will refuse
/// the send itself, with its own 132001).
async fn lookup(
    state: &AppState,
    guard: &GuardConfig,
    version: &str,
    waba: &str,
    authorization: Option<&HeaderValue>,
    name: &str,
    language: &str,
) -> Result<Option<TemplateFacts>, GraphError> {
    if let Some(found) = state.templates.get(waba, name, language) {
        return Ok(Some(found));
    }
    let mut url = format!(
        "{}/{version}/{waba}/message_templates?name={}&fields=name,language,category,status,optimization_spec&limit=100",
        guard.upstream,
        query_value(name)
    );
    let headers: Vec<(HeaderName, HeaderValue)> = authorization
        .map(|a| (header::AUTHORIZATION, a.clone()))
        .into_iter()
        .collect();
    let mut found = HashMap::new();
    for _ in 0..TEMPLATE_PAGES_MAX {
        let answer = state
            .http
            .call(Method::GET, &url, &headers, Bytes::new())
            .await
            .map_err(|e| {
                upstream_error(format!("wameter could not look up template `{name}`: {e}"))
            })?;
        let page: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !answer.status.is_success() {
            let said = page["error"]["message"]
                .as_str()
                .unwrap_or("no Graph error body");
            return Err(upstream_error(format!(
                "wameter could not look up template `{name}` of WABA {waba}: upstream answered {} ({said})",
                answer.status
            )));
        }
        for template in page["data"].as_array().into_iter().flatten() {
            let (Some(name), Some(language), Some(category)) = (
                template["name"].as_str(),
                template["language"].as_str(),
                template["category"]
                    .as_str()
                    .and_then(TemplateCategory::parse),
            ) else {
                continue;
            };
            let bid_amount = template["optimization_spec"]["bid_amount"]
                .as_u64()
                .filter(|bid| *bid > 0);
            found.insert(
                (name.to_string(), language.to_string()),
                TemplateFacts {
                    category,
                    bid_amount,
                },
            );
        }
        match page["paging"]["next"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    let wanted = found
        .get(&(name.to_string(), language.to_string()))
        .copied();
    crate::lock(&state.templates.by_waba)
        .entry(waba.to_string())
        .or_default()
        .extend(found);
    Ok(wanted)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

/// `X-Wameter-Window-Closes-At`: the instant, or `closed`.
fn window_header(closes_at: Option<Timestamp>) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static("x-wameter-window-closes-at"),
        closes_at.map_or(HeaderValue::from_static("closed"), |at| {
            header_value(&at.to_string())
        }),
    )
}

/// The estimate's headers.
fn estimate_headers(
    charge: Option<&Charge>,
    window_closes_at: Option<Timestamp>,
    template: Option<&Template>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![window_header(window_closes_at)];
    match charge {
        Some(charge) => {
            out.push((
                HeaderName::from_static("x-wameter-category"),
                header_value(charge.category.as_str()),
            ));
            out.push((
                HeaderName::from_static("x-wameter-billable"),
                HeaderValue::from_static(if charge.billable { "true" } else { "false" }),
            ));
            out.push((
                HeaderName::from_static("x-wameter-estimated-cost"),
                header_value(&format_amount(charge.amount)),
            ));
            out.push((
                HeaderName::from_static("x-wameter-currency"),
                header_value(charge.currency.code()),
            ));
            out.push((
                HeaderName::from_static("x-wameter-rule"),
                header_value(&format!("{}/{}", charge.ruleset.id(), charge.rule)),
            ));
            let mut notes = Vec::new();
            if charge.tier.is_some() {
                notes.push("volume tier counted from this user's messages only");
            }
            if !notes.is_empty() {
                out.push((
                    HeaderName::from_static("x-wameter-estimate-note"),
                    header_value(&notes.join("; ")),
                ));
            }
        }
        None => {
            let category = template.map_or("service", |t| t.category.as_str());
            out.push((
                HeaderName::from_static("x-wameter-category"),
                header_value(category),
            ));
            out.push((
                HeaderName::from_static("x-wameter-estimate-note"),
                HeaderValue::from_static("no estimate: no rate card or rules for this date"),
            ));
        }
    }
    out
}

/// The estimate of a max-price send: up to `max` (docs/rules.md §15).
fn max_price_headers(extra: &mut Vec<(HeaderName, HeaderValue)>, max: Decimal) {
    extra.retain(|(name, _)| {
        !matches!(
            name.as_str(),
            "x-wameter-estimated-cost" | "x-wameter-rule" | "x-wameter-estimate-note"
        )
    });
    let max = format_amount(max);
    extra.push((
        HeaderName::from_static("x-wameter-estimated-cost"),
        header_value(&max),
    ));
    extra.push((
        HeaderName::from_static("x-wameter-estimated-cost-range"),
        header_value(&format!("0-{max}")),
    ));
    extra.push((
        HeaderName::from_static("x-wameter-rule"),
        HeaderValue::from_static("max-price"),
    ));
    extra.push((
        HeaderName::from_static("x-wameter-estimate-note"),
        HeaderValue::from_static("max price: Meta charges it or lower, and the delivery's pricing.cost says what; the budget holds the max"),
    ));
}

fn with_headers(mut response: Response, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    response.headers_mut().extend(headers);
    response
}

/// Forwards a body upstream untouched.
async fn forward(
    state: &AppState,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Answer, GraphError> {
    let mut pass: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            pass.push((name, value.clone()));
        }
    }
    state
        .http
        .call(Method::POST, url, &pass, body)
        .await
        .map_err(|e| {
            upstream_error(format!(
                "wameter could not reach the upstream Graph API: {e}"
            ))
        })
}

/// Upstream's answer passed back: status, body and content type, plus ours.
fn pass_back(answer: Answer, extra: Vec<(HeaderName, HeaderValue)>) -> Response {
    let mut response = (answer.status, answer.body).into_response();
    if let Some(kind) = answer.headers.get(header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, kind.clone());
    }
    with_headers(response, extra)
}

/// What the guard does not look at (not a message to a user, or a template
/// upstream does not know): forwarded, and upstream's answer passed back
/// as it is.
async fn pass_through(
    state: &AppState,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, (GraphError, Vec<(HeaderName, HeaderValue)>)> {
    forward(state, url, headers, body)
        .await
        .map(|answer| pass_back(answer, Vec::new()))
        .map_err(|e| (e, Vec::new()))
}

/// `POST /{version}/{phone_number_id}/messages` (module docs).
pub async fn send(
    State(state): State<Arc<AppState>>,
    Path((version, phone)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match guarded_send(&state, &version, &phone, &headers, body, SendApi::CloudApi).await {
        Ok(response) => response,
        Err((error, extra)) => with_headers(error.into_response(), extra),
    }
}

/// `POST /{version}/{phone_number_id}/marketing_messages` (Meta's
/// Marketing Messages API): guarded as a send; a template with a max price
/// is estimated as the range up to it (`X-Wameter-Estimated-Cost-Range`),
/// and budgets hold its top until the delivery's `pricing.cost` says.
pub async fn marketing_send(
    State(state): State<Arc<AppState>>,
    Path((version, phone)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match guarded_send(
        &state,
        &version,
        &phone,
        &headers,
        body,
        SendApi::MarketingMessages,
    )
    .await
    {
        Ok(response) => response,
        Err((error, extra)) => with_headers(error.into_response(), extra),
    }
}

/// `POST /{version}/{phone_number_id}/calls` (Meta's Manage Calls): a
/// business's `connect` is looked at before it rings anyone.
/// 1. From a business number in a country Meta allows no business calls
///    from (its `primary_country`: US, CA, EG, VN, NG), it is refused with
///    Meta's 138013 — nothing is forwarded;
/// 2. a call's length is not known when it is placed, so its first minute
///    at the callee market's first-band rate is checked against the
///    hard-stop budgets; the call counts in them once it ends and is kept.
///
/// Everything else (accept, reject, terminate) is forwarded untouched.
pub async fn calls(
    State(state): State<Arc<AppState>>,
    Path((version, phone)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match guarded_call(&state, &version, &phone, &headers, body).await {
        Ok(response) => response,
        Err((error, extra)) => with_headers(error.into_response(), extra),
    }
}

async fn guarded_call(
    state: &Arc<AppState>,
    version: &str,
    phone: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, (GraphError, Vec<(HeaderName, HeaderValue)>)> {
    let Some(guard) = state.config.guard.as_ref() else {
        return Err((
            upstream_error("wameter has no upstream Graph API".into()),
            Vec::new(),
        ));
    };
    let url = format!("{}/{version}/{phone}/calls", guard.upstream);
    let connect = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(|body| body.get("action").and_then(Value::as_str) == Some("connect"));
    let Some(connect) = connect else {
        return pass_through(state, &url, headers, body).await;
    };
    let pricing = &state.config.pricing;
    // The call's money is the Messaging account's it names, as a send's.
    let account = pricing
        .accounts
        .messaging_account(phone, wameter_meta::graph::messaging_account_id(&connect));
    let business = pricing.accounts.payer(phone, account.as_deref());
    if let Some(country) = wameter_core::rules::calling::calls_forbidden_from(&business) {
        return Err((
            wameter_meta::graph::calls_not_available(phone, country, "refused by wameter: "),
            Vec::new(),
        ));
    }
    // Upstream says what is wrong with a callee it cannot read.
    let Some(user) = connect
        .get("to")
        .and_then(Value::as_str)
        .and_then(|to| UserId::parse(to).ok())
    else {
        return pass_through(state, &url, headers, body).await;
    };
    let now = Timestamp::now();
    let local = business.timezone.to_datetime(now).date();
    let market = pricing.markets.lookup(&user, local).market;
    let rate = pricing
        .call_rates
        .ladder(business.currency, &market, local)
        .first()
        .map(|band| band.rate_per_minute);
    let extra = vec![
        (
            HeaderName::from_static("x-wameter-market"),
            header_value(&market),
        ),
        (
            HeaderName::from_static("x-wameter-call-rate-per-minute"),
            rate.map_or(HeaderValue::from_static("unknown"), |r| {
                header_value(&format_amount(r))
            }),
        ),
    ];
    let reservation = budgets::reserve(state, &business.waba, rate.unwrap_or(Decimal::ZERO), now)
        .await
        .map_err(|e| (e, extra.clone()))?;
    // Its cost is known when it ends: nothing stays held in flight.
    state.ledger.release(reservation);
    let answer = forward(state, &url, headers, body)
        .await
        .map_err(|e| (e, extra.clone()))?;
    Ok(pass_back(answer, extra))
}

/// Microseconds each step of a send took, for the debug log
/// (`WAMETER_LOG=wameter_server::guard=debug`): where the guard's added
/// latency goes.
struct Laps(std::time::Instant);

impl Laps {
    fn start() -> Laps {
        Laps(std::time::Instant::now())
    }

    /// Microseconds since the previous lap.
    fn lap(&mut self) -> u64 {
        let now = std::time::Instant::now();
        let micros = (now - self.0).as_micros();
        self.0 = now;
        u64::try_from(micros).unwrap_or(u64::MAX)
    }
}

/// `Server-Timing` (W3C): the upstream call and wameter's own work, in
/// milliseconds, so an app's telemetry sees what the guard adds.
fn server_timing(upstream_us: u64, wameter_us: u64) -> (HeaderName, HeaderValue) {
    let ms = |us: u64| format!("{}.{:03}", us / 1000, us % 1000);
    (
        HeaderName::from_static("server-timing"),
        header_value(&format!(
            "upstream;dur={}, wameter;dur={}",
            ms(upstream_us),
            ms(wameter_us)
        )),
    )
}

/// Whether a send's record was on disk when the answer went out
/// (`X-Wameter-Recorded`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Recorded {
    /// Committed.
    Yes,
    /// Queued for the writer, not committed within the record wait.
    Pending,
    /// Not recorded: no message id, or the write failed.
    No,
}

impl Recorded {
    fn header(self) -> (HeaderName, HeaderValue) {
        let value = match self {
            Recorded::Yes => "true",
            Recorded::Pending => "pending",
            Recorded::No => "false",
        };
        (
            HeaderName::from_static("x-wameter-recorded"),
            HeaderValue::from_static(value),
        )
    }
}

/// Writes a send's `outbound` event, waiting at most `wait` for the commit.
///
/// The write is queued before the answer goes out, so it commits ahead of
/// any write queued later — any webhook about this message that arrives
/// after the answer is acknowledged only once the record is on disk too.
/// Past the wait the write goes on in the background; only a crash in
/// that gap loses it, and then Meta's statuses still meter the message
/// (its outbound inferred, with a warning). See DESIGN.md.
async fn record(
    state: &Arc<AppState>,
    wait: SignedDuration,
    id: String,
    event: Event,
    held: Option<InFlightRow>,
) -> Recorded {
    let mut batch = Batch::new(None, &[event], &[]);
    // The budget it holds is kept with it, for a restarted server.
    batch.in_flight.extend(held);
    // Queued here, before the answer can leave, not when a spawned task
    // first runs.
    let queued = state.store.queue(batch);
    // A zero wait does not look at the write at all, so `pending` is what
    // it answers once the write is queued; the writer logs a failure (no
    // task waits for it: spawning one took the core from this answer).
    if !wait.is_positive() {
        return match queued.unwatched() {
            Ok(()) => Recorded::Pending,
            Err(error) => record_outcome(Ok(Err(error)), &id),
        };
    }
    let writer = state.clone();
    let mut write = tokio::spawn(async move { writer.store.committed(queued).await });
    tokio::select! {
        biased;
        written = &mut write => record_outcome(written, &id),
        () = elapsed(wait) => {
            tokio::spawn(async move { record_outcome(write.await, &id) });
            Recorded::Pending
        }
    }
}

/// Resolves once `wait` has passed, to within the operating system's timer
/// slack (tens of microseconds). Tokio's own timer rounds every deadline up
/// to its next millisecond tick, which made a 1 ms wait last 1–2 ms and
/// a zero wait up to 1 ms: too coarse for a budget counted in
/// milliseconds. A sleeping thread of the blocking pool is exact; the pool
/// keeps idle threads, so the hand-off costs microseconds, and a sleeper
/// left behind by a commit that won the race only holds an idle thread.
async fn elapsed(wait: SignedDuration) {
    let wait = wait.unsigned_abs();
    // A long wait (strict mode, `--record-wait 30s`) needs no precision.
    if wait >= std::time::Duration::from_millis(50) {
        return tokio::time::sleep(wait).await;
    }
    // A failed join (the runtime shutting down) ends the wait too.
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(wait)).await;
}

fn record_outcome(
    written: Result<
        Result<wameter_store::Written, wameter_store::StoreError>,
        tokio::task::JoinError,
    >,
    id: &str,
) -> Recorded {
    let error = match written {
        Ok(Ok(_)) => return Recorded::Yes,
        Ok(Err(error)) => error.to_string(),
        Err(error) => error.to_string(),
    };
    // The message is sent and cannot be called back: the answer is
    // upstream's (a retry would send it twice), saying it is not metered.
    tracing::error!(message = "Send forwarded but not recorded.", id, error);
    Recorded::No
}

/// Which of Meta's send paths a send took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendApi {
    /// `POST /{phone_number_id}/messages`.
    CloudApi,
    /// `POST /{phone_number_id}/marketing_messages`: marketing templates,
    /// charged by a template's max price when it has one.
    MarketingMessages,
}

impl SendApi {
    fn path(self) -> &'static str {
        match self {
            SendApi::CloudApi => "messages",
            SendApi::MarketingMessages => "marketing_messages",
        }
    }
}

/// The most a Marketing Messages API send of a template with a max price
/// can cost per message: `bid_amount` (minor units per 1,000 deliveries)
/// times the send's `bid_spec.per_message_bid_multiplier` (1 without one;
/// a number above 0, at most 1000, else `None`), in `currency`.
fn max_price_per_message(
    bid_amount: u64,
    body: &[u8],
    currency: wameter_core::money::Currency,
) -> Option<Decimal> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let multiplier = match value.pointer("/bid_spec/per_message_bid_multiplier") {
        None | Some(Value::Null) => Decimal::ONE,
        Some(Value::Number(number)) => number
            .to_string()
            .parse::<Decimal>()
            .ok()
            .filter(|m| *m > Decimal::ZERO && *m <= Decimal::from(1000))?,
        Some(_) => return None,
    };
    let minor = Decimal::from(10u64.checked_pow(currency.minor_digits())?);
    Decimal::from(bid_amount)
        .checked_mul(multiplier)
        .map(|total| (total / Decimal::from(1000) / minor).normalize())
}

async fn guarded_send(
    state: &Arc<AppState>,
    version: &str,
    phone: &str,
    headers: &HeaderMap,
    body: Bytes,
    api: SendApi,
) -> Result<Response, (GraphError, Vec<(HeaderName, HeaderValue)>)> {
    let guard = state
        .config
        .guard
        .as_ref()
        .expect("the send route exists only with a guard");
    let url = format!("{}/{version}/{phone}/{}", guard.upstream, api.path());
    let Some(outgoing) = read_send(&body) else {
        return pass_through(state, &url, headers, body).await;
    };
    let now = Timestamp::now();
    let mut laps = Laps::start();
    let pricing = &state.config.pricing;
    // Templates and money are the Messaging account's: the one the send
    // names when it is one of the number's, else the number's first.
    let waba = match pricing
        .accounts
        .messaging_account(phone, outgoing.messaging_account.as_deref())
    {
        Some(account) => account.to_string(),
        None => pricing.waba_of(phone),
    };
    let mut bid_amount = None;
    let template = match &outgoing.template {
        None => None,
        Some((name, language)) => match lookup(
            state,
            guard,
            version,
            &waba,
            headers.get(header::AUTHORIZATION),
            name,
            language,
        )
        .await
        .map_err(|e| (e, Vec::new()))?
        {
            Some(facts) => {
                bid_amount = facts.bid_amount;
                Some(Template {
                    name: name.as_str().into(),
                    category: facts.category,
                })
            }
            // Upstream does not know it and will say so (132001).
            None => return pass_through(state, &url, headers, body).await,
        },
    };
    let lookup_us = laps.lap();

    let since = now.checked_sub(LOOK_BACK).unwrap_or(Timestamp::MIN);
    let rows = state
        .store
        .pair_events(phone, &outgoing.user.to_string(), since.as_microsecond())
        .await
        .map_err(|e| {
            (
                store_error(format!("wameter could not read this user's window: {e}")),
                Vec::new(),
            )
        })?;
    let read_us = laps.lap();
    let events = state.read_back.load(&rows);
    let read_back_us = laps.lap();
    let engine = meter::assessing(&pricing.engine());
    // The pair's events prepared once for the window and the estimate.
    let assessment = meter::assess(
        &engine,
        events,
        phone,
        &outgoing.user,
        now,
        template.clone(),
        outgoing.messaging_account.clone(),
    );
    let closes_at = assessment.customer_service_window().map(|w| w.closes_at);
    if template.is_none() && closes_at.is_none_or(|closes| closes - now < guard.safety_margin) {
        let (title, _) = status_error_text(REENGAGEMENT);
        let details = match closes_at {
            None => format!(
                "refused by wameter: no customer service window is open with {}; send a template",
                outgoing.user
            ),
            Some(closes) => format!(
                "refused by wameter: the customer service window with {} closes at {closes}, within the {} safety margin; send a template",
                outgoing.user, guard.safety_margin
            ),
        };
        let headers = vec![
            window_header(closes_at),
            (
                HeaderName::from_static("x-wameter-category"),
                HeaderValue::from_static("service"),
            ),
            (
                HeaderName::from_static("x-wameter-billable"),
                HeaderValue::from_static("false"),
            ),
        ];
        return Err((GraphError::new(REENGAGEMENT, title, details), headers));
    }
    let windows_us = laps.lap();
    let charge = assessment.predict(&engine);
    let mut extra = estimate_headers(charge.as_ref(), closes_at, template.as_ref());
    let mut estimate = charge
        .as_ref()
        .filter(|c| c.billable)
        .map_or(Decimal::ZERO, |c| c.amount);
    // A max-price send is charged "that max price or lower", what Meta's
    // `pricing.cost` will say on delivery: until then the estimate is the
    // range up to it, and the budget holds its top.
    let max_price = match (api, bid_amount, &charge) {
        (SendApi::MarketingMessages, Some(bid), Some(charge)) if charge.billable => {
            max_price_per_message(bid, &body, charge.currency)
        }
        _ => None,
    };
    if let Some(max) = max_price {
        estimate = max;
        max_price_headers(&mut extra, max);
    }
    let estimate_us = laps.lap();
    let reservation = budgets::reserve(state, &waba, estimate, now)
        .await
        .map_err(|e| (e, extra.clone()))?;
    let reserve_us = laps.lap();

    let answer = match forward(state, &url, headers, body).await {
        Ok(answer) => answer,
        Err(error) => {
            state.ledger.release(reservation);
            return Err((error, extra));
        }
    };
    let upstream_us = laps.lap();
    let checks_us = lookup_us + read_us + read_back_us + windows_us + estimate_us + reserve_us;
    if !answer.status.is_success() {
        state.ledger.release(reservation);
        extra.push(server_timing(upstream_us, checks_us));
        return Ok(pass_back(answer, extra));
    }
    // Record what upstream accepted.
    let wamid = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["messages"][0]["id"].as_str().map(str::to_string));
    let recorded = match wamid {
        None => {
            tracing::error!(
                message = "Upstream accepted a send without a message id; not recorded.",
                business = phone
            );
            state.ledger.release(reservation);
            Recorded::No
        }
        Some(id) => {
            let held = state.ledger.confirm(reservation, phone, &id);
            let event = Event {
                at: now,
                origin: Origin::default(),
                kind: EventKind::Outbound {
                    business: phone.into(),
                    user: outgoing.user.clone(),
                    id: id.as_str().into(),
                    template: template.map(Arc::new),
                    messaging_account: outgoing.messaging_account.clone(),
                },
            };
            record(state, guard.record_wait, id, event, held).await
        }
    };
    let record_us = laps.lap();
    tracing::debug!(message = "Guarded send.", lookup_us, read_us, read_back_us, windows_us, estimate_us, reserve_us, upstream_us, record_us, recorded = ?recorded, pair_events = rows.len());
    extra.push(recorded.header());
    extra.push(server_timing(upstream_us, checks_us + record_us));
    Ok(pass_back(answer, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_recipient_and_template() {
        let text = br#"{"messaging_product":"whatsapp","to":"+55 11 99999-0000","type":"text","text":{"body":"hi"}}"#;
        assert_eq!(
            read_send(text),
            Some(Outgoing {
                user: UserId::parse("5511999990000").unwrap(),
                template: None,
                messaging_account: None
            })
        );
        let through = br#"{"messaging_product":"whatsapp","to":"5511999990000","type":"text","text":{"body":"hi"},"paid_messaging_account_id":"old","messaging_account_id":"M"}"#;
        assert_eq!(
            read_send(through).unwrap().messaging_account.as_deref(),
            Some("M"),
            "Meta's precedence: the new name wins"
        );
        let template = br#"{"messaging_product":"whatsapp","to":"5511999990000","type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}}"#;
        assert_eq!(
            read_send(template).unwrap().template,
            Some(("hello_world".into(), "en_US".into()))
        );
        let untyped = br#"{"messaging_product":"whatsapp","to":"5511999990000","template":{"name":"x","language":{"code":"pt_BR"}}}"#;
        assert!(
            read_send(untyped).unwrap().template.is_some(),
            "a template body without `type` is a template"
        );
    }

    #[test]
    fn a_max_price_is_the_bid_per_message_in_major_units() {
        use wameter_core::money::Currency;
        let usd = Currency::USD;
        // 2000 cents per 1,000 deliveries: 0.02 USD a message.
        assert_eq!(
            max_price_per_message(2000, b"{}", usd),
            Some(Decimal::new(2, 2))
        );
        let doubled = br#"{"bid_spec":{"per_message_bid_multiplier":1.5}}"#;
        assert_eq!(
            max_price_per_message(2000, doubled, usd),
            Some(Decimal::new(3, 2))
        );
        // A currency without minor units.
        assert_eq!(
            max_price_per_message(2000, b"{}", Currency::parse("JPY").unwrap()),
            Some(Decimal::from(2))
        );
        for bad in [
            &br#"{"bid_spec":{"per_message_bid_multiplier":0}}"#[..],
            br#"{"bid_spec":{"per_message_bid_multiplier":1001}}"#,
            br#"{"bid_spec":{"per_message_bid_multiplier":"2"}}"#,
        ] {
            assert_eq!(
                max_price_per_message(2000, bad, usd),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            max_price_per_message(
                u64::MAX,
                br#"{"bid_spec":{"per_message_bid_multiplier":1000}}"#,
                usd
            )
            .is_some_and(|m| m > Decimal::ZERO),
            "no overflow panic"
        );
    }

    #[test]
    fn what_is_not_a_message_passes_through() {
        assert_eq!(
            read_send(
                br#"{"messaging_product":"whatsapp","status":"read","message_id":"wamid.1"}"#
            ),
            None
        );
        assert_eq!(read_send(b"not json"), None);
        assert_eq!(
            read_send(br#"{"messaging_product":"whatsapp","type":"text"}"#),
            None,
            "no recipient"
        );
    }

    #[tokio::test]
    async fn the_record_wait_lasts_at_least_what_it_says() {
        // Only the lower bound: how much longer it lasts depends on the
        // machine (docs/PERFORMANCE.md measures it).
        for wait in [
            SignedDuration::from_micros(300),
            SignedDuration::from_millis(2),
        ] {
            let started = std::time::Instant::now();
            elapsed(wait).await;
            assert!(
                started.elapsed() >= wait.unsigned_abs(),
                "{wait:?} ended after {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_value("order_update-2"), "order_update-2");
        assert_eq!(query_value("a b&c"), "a%20b%26c");
    }
}
