//! The query API under `/v1` (interfaces §5): windows, charges, reports,
//! and events in and out. Every handler authenticates first, then narrows
//! what it reads and returns to the WABAs the token sees.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wameter_core::event::{Event, EventKind, Origin, UserId};
use wameter_core::money::format_amount;
use wameter_core::settlement;
use wameter_export::Kind;
use wameter_log::Parsed;
use wameter_log::replay_json::OtherLines;
use wameter_store::{Batch, ChargeSlice};

use crate::auth::{ApiToken, Scope, authenticate};
use crate::error::{ApiError, ApiQuery, ErrorBody};
use crate::{AppState, telemetry};
use wameter_meter::{self as meter, Answer};

fn token<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a ApiToken, ApiError> {
    authenticate(&state.config.tokens, headers).ok_or_else(ApiError::unauthorized)
}

/// Reads an instant: RFC 3339 with offset, UNIX seconds, or a date
/// (`2025-07-01`, midnight in `zone`).
fn instant(name: &str, text: &str, zone: &jiff::tz::TimeZone) -> Result<Timestamp, ApiError> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Timestamp::from_second(seconds)
            .map_err(|e| ApiError::bad_request(format!("`{name}`: {e}")));
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return zone
            .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|e| ApiError::bad_request(format!("`{name}`: {e}")));
    }
    Err(ApiError::bad_request(format!(
        "`{name}` = {text:?} is not an RFC 3339 instant with offset (2025-07-01T10:00:00Z), UNIX seconds, or a date (2025-07-01)"
    )))
}

/// The schema of an instant parameter (`at`, `from`, `to`): an RFC 3339
/// instant with offset, a date (midnight in the business's zone), or UNIX
/// seconds.
fn instant_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let string = || ObjectBuilder::new().schema_type(Type::String);
    AnyOfBuilder::new()
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .item(string().pattern(Some("^[0-9]{1,10}$")))
        .build()
        .into()
}

/// A numeric parameter within its documented range (a 400 naming the
/// range otherwise: a larger page is refused, not silently cut).
fn in_range(
    name: &str,
    value: Option<i64>,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(value) if (min..=max).contains(&value) => Ok(value),
        Some(value) => Err(ApiError::bad_request(format!(
            "`{name}` = {value}: must be from {min} to {max}"
        ))),
    }
}

fn micros_text(us: i64) -> String {
    Timestamp::from_microsecond(us)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn user_id(text: &str) -> Result<UserId, ApiError> {
    UserId::parse(text).map_err(|e| ApiError::bad_request(format!("user {text:?}: {e}")))
}

/// The business phone numbers a scoped token sees among those stored;
/// `None` for a token that sees every WABA.
pub(crate) async fn visible_businesses(
    state: &AppState,
    scope: &Scope,
) -> Result<Option<BTreeSet<String>>, ApiError> {
    if *scope == Scope::All {
        return Ok(None);
    }
    let pricing = &state.config.pricing;
    let mut visible: BTreeSet<String> = state
        .store
        .businesses()
        .await?
        .into_iter()
        .filter(|b| scope.sees_business(pricing, b))
        .collect();
    // A partner's account on a number it has not written to yet.
    visible.extend(
        pricing
            .accounts
            .businesses()
            .filter(|b| scope.sees_business(pricing, &b.phone_number_id))
            .map(|b| b.phone_number_id.to_string()),
    );
    Ok(Some(visible))
}

/// The pattern of a business phone number id in a query or path (Meta's
/// ids are digits; canonical logs may use other plain names).
const BUSINESS_PATTERN: &str = r"^[0-9A-Za-z_.-]{1,64}$";

/// A business named by a query or path: well formed (400 otherwise) and
/// seen by the token (403 otherwise).
fn check_business(state: &AppState, token: &ApiToken, business: &str) -> Result<(), ApiError> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if business.is_empty() || business.len() > 64 || !business.bytes().all(plain) {
        return Err(ApiError::bad_request(format!(
            "business {business:?}: expected a phone number id ({BUSINESS_PATTERN})"
        )));
    }
    if token.scope.sees_business(&state.config.pricing, business) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this token does not see business {business}"
        )))
    }
}

/// A window's state.
#[derive(Serialize, ToSchema)]
pub struct WindowState {
    /// Whether it is open at the instant asked about.
    open: bool,
    /// When it closes (exclusive), if open.
    closes_at: Option<String>,
}

/// An entry-point inbound not answered yet.
#[derive(Serialize, ToSchema)]
pub struct PendingEntryPoint {
    /// When the user came in through the ad or page button.
    since: String,
    /// A reply delivered before this opens a free entry point window.
    answer_by: String,
}

/// What the store holds for a pair.
#[derive(Serialize, ToSchema)]
pub struct ContactJson {
    /// Events stored (each once, however often Meta delivered it).
    events: i64,
    /// Earliest event.
    first_event_at: String,
    /// Latest event.
    last_event_at: String,
}

/// `GET /v1/windows/{business}/{user}`.
#[derive(Serialize, ToSchema)]
pub struct WindowsResponse {
    /// Business phone number id.
    business: String,
    /// The user, normalised.
    user: String,
    /// The instant the windows are computed for.
    at: String,
    /// The 24-hour customer service window.
    customer_service_window: WindowState,
    /// The free entry point window (72 h).
    free_entry_point: WindowState,
    /// The user's last message or call.
    last_inbound_at: Option<String>,
    /// An entry point waiting for its first reply.
    pending_entry_point: Option<PendingEntryPoint>,
    /// The stored per-contact state (`null`: nothing stored for the pair).
    contact: Option<ContactJson>,
}

/// Query of `GET /v1/windows/…`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowsQuery {
    /// Instant to answer for (default: now): RFC 3339 with offset, UNIX
    /// seconds, or a date (midnight in the business's zone).
    #[param(schema_with = instant_schema)]
    at: Option<String>,
}

fn window_state(window: Option<wameter_core::window::Window>) -> WindowState {
    WindowState {
        open: window.is_some(),
        closes_at: window.map(|w| w.closes_at.to_string()),
    }
}

/// Whether the customer service window and free entry point are open.
#[utoipa::path(get, path = "/v1/windows/{business}/{user}", tag = "query", security(("bearer" = [])),
    params(("business" = String, Path, description = "Business phone number id", pattern = r"^[0-9A-Za-z_.-]{1,64}$"),
        ("user" = String, Path, description = "E.164 phone number (with or without +) or BSUID", pattern = r"^(\+?[0-9]{7,15}|[A-Za-z]+\.[A-Za-z0-9_-]{1,200})$"), WindowsQuery),
    responses((status = 200, body = WindowsResponse), (status = 400, description = "A user that is neither an E.164 number nor a BSUID, or a bad `at`", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The token does not see this business", body = ErrorBody),
        (status = 503, description = "The store cannot answer now", body = ErrorBody)))]
pub async fn windows(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((business, user)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<WindowsQuery>,
) -> Result<Json<WindowsResponse>, ApiError> {
    let token = token(&state, &headers)?;
    check_business(&state, token, &business)?;
    let user = user_id(&user)?;
    let zone = state
        .config
        .pricing
        .accounts
        .get_or_default(&business)
        .timezone
        .clone();
    let at = match &query.at {
        Some(text) => instant("at", text, &zone)?,
        None => Timestamp::now(),
    };
    let since = at
        .checked_sub(settlement::LOOK_BACK)
        .unwrap_or(Timestamp::MIN);
    // Both reads together: this is the query a sender makes before every
    // send, so its latency matters.
    let (rows, contact) = state
        .store
        .contact_with_events(&business, &user.to_string(), since.as_microsecond())
        .await?;
    let loaded = meter::load(&rows);
    let engine = state.config.pricing.engine();
    let found = meter::windows(&engine, &loaded.events, &business, &user, at);
    Ok(Json(WindowsResponse {
        business,
        user: user.to_string(),
        at: at.to_string(),
        customer_service_window: window_state(found.customer_service_window),
        free_entry_point: window_state(found.free_entry_point),
        last_inbound_at: found.last_inbound_at.map(|t| t.to_string()),
        pending_entry_point: found.pending_entry_point_at.map(|since| PendingEntryPoint {
            since: since.to_string(),
            answer_by: (since + wameter_core::window::DAY).to_string(),
        }),
        contact: contact.map(|row| ContactJson {
            events: row.events,
            first_event_at: micros_text(row.first_event_at_us),
            last_event_at: micros_text(row.last_event_at_us),
        }),
    }))
}

/// Query of `GET /v1/charges` and `GET /v1/reports/costs`.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct SliceQuery {
    /// One business phone number id (default: every one the token sees).
    #[param(pattern = r"^[0-9A-Za-z_.-]{1,64}$")]
    business: Option<String>,
    /// Deliveries from (inclusive): RFC 3339, UNIX seconds or a date
    /// (midnight in the business's zone; UTC without `business`).
    #[param(schema_with = instant_schema)]
    from: Option<String>,
    /// Deliveries until (exclusive), same forms; after `from`.
    #[param(schema_with = instant_schema)]
    to: Option<String>,
    /// Reports only: comma-separated among `month`, `category`, `market`,
    /// `business`, `messaging_account` (the WABA id billed), `pricing_model`,
    /// `type` (default `month,category`).
    #[param(
        pattern = r"^(month|category|market|business|messaging_account|pricing_model|type)(,(month|category|market|business|messaging_account|pricing_model|type))*$"
    )]
    group_by: Option<String>,
    /// `json` (the default), `csv`, or for `/v1/charges` also `parquet`:
    /// every charge, call and agent usage as one typed table
    /// (docs/interfaces.md, "Exports"). Wins over `Accept` (`text/csv`,
    /// `application/vnd.apache.parquet`).
    #[param(pattern = r"^(json|csv|parquet)$")]
    format: Option<String>,
}

/// A Parquet file, for the OpenAPI document: bytes.
pub struct ParquetFile;

impl utoipa::PartialSchema for ParquetFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("A Parquet file"))
            .into()
    }
}

impl ToSchema for ParquetFile {}

/// What a charge query answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answered {
    Json,
    Csv,
    Parquet,
}

/// `?format=` when given, else the first of `Accept`'s media types wameter
/// writes, else JSON. `parquet` only where a table of charges is answered.
fn answered_in(
    query: &SliceQuery,
    headers: &HeaderMap,
    parquet: bool,
) -> Result<Answered, ApiError> {
    let named = match query.format.as_deref() {
        Some(format) => Some(format.trim().to_ascii_lowercase()),
        None => headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .and_then(|accept| {
                accept
                    .split(',')
                    .map(|media| {
                        media
                            .split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .find_map(|media| match media.as_str() {
                        "text/csv" => Some("csv".to_string()),
                        "application/vnd.apache.parquet" if parquet => Some("parquet".to_string()),
                        "application/json" => Some("json".to_string()),
                        _ => None,
                    })
            }),
    };
    match named.as_deref() {
        None | Some("json") => Ok(Answered::Json),
        Some("csv") => Ok(Answered::Csv),
        Some("parquet") if parquet => Ok(Answered::Parquet),
        Some(other) => Err(ApiError::bad_request(format!(
            "`format`: {other:?} is not one of json, csv{}",
            if parquet { ", parquet" } else { "" }
        ))),
    }
}

/// The rows of an answer, for CSV and Parquet: charges, then calls, then
/// agent usage, as the document orders each, from their typed columns.
pub fn export_rows(answer: Answer) -> Result<Vec<wameter_export::Row>, ApiError> {
    let kept = answer
        .charges
        .into_iter()
        .chain(answer.calls)
        .chain(answer.agent);
    kept.map(|kept| meter::export_row(kept).map_err(ApiError::internal))
        .collect()
}

/// A CSV or Parquet body with its content type.
fn table_response(answered: Answered, body: Vec<u8>) -> Response {
    let content_type = match answered {
        Answered::Parquet => "application/vnd.apache.parquet",
        _ => "text/csv; charset=utf-8",
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

struct Slice {
    visible: Option<BTreeSet<String>>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

/// `group_by`'s dimensions (default `month,category`): each one of
/// [`DIMENSIONS`], none empty. Checked for `/v1/charges` too, which takes
/// the same query and ignores it, so that a bad one is never taken quietly.
fn dimensions(query: &SliceQuery) -> Result<Vec<String>, ApiError> {
    let text = query.group_by.as_deref().unwrap_or("month,category");
    let group_by: Vec<String> = text.split(',').map(|d| d.trim().to_string()).collect();
    match group_by.iter().find(|d| !DIMENSIONS.contains(&d.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "`group_by`: {} {unknown:?}; use a comma-separated list of {}",
            if unknown.is_empty() {
                "empty dimension"
            } else {
                "unknown dimension"
            },
            DIMENSIONS.join(", ")
        ))),
        None => Ok(group_by),
    }
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    query: &SliceQuery,
) -> Result<Answer, ApiError> {
    answer_for(state, token(state, headers)?, query).await
}

/// The charges, calls and agent usage of a slice that `token` sees,
/// settled first (what `/v1/charges` answers from).
pub async fn answer_for(
    state: &AppState,
    token: &ApiToken,
    query: &SliceQuery,
) -> Result<Answer, ApiError> {
    let charges = settled_slice(state, token, query).await?;
    let rows = state.store.charges(charges.clone()).await?;
    let warnings = state.store.charge_warnings(charges).await?;
    let scope = token.scope.clone();
    let config = state.config.clone();
    // Parsing and ordering tens of thousands of lines is CPU work.
    tokio::task::spawn_blocking(move || {
        let sees = |business: &str, account: Option<&str>| {
            scope.sees_charge(&config.pricing, business, account)
        };
        let filter: Option<&(dyn Fn(&str, Option<&str>) -> bool + Sync)> = if scope == Scope::All {
            None
        } else {
            Some(&sees)
        };
        meter::answer(rows, warnings, filter)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))
}

/// The export rows of the charges, calls and agent usage `token` sees,
/// settled first, read from the kept charges' typed columns rather than
/// their lines (what the dashboard draws and cost reports sum): the rows
/// of [`export_rows`] of [`answer_for`], with every `reason` empty, in no
/// particular order (pages and reports aggregate; ordering 72,000 rows was
/// a tenth of a page), and the same warnings.
pub async fn rows_for(
    state: &AppState,
    token: &ApiToken,
    query: &SliceQuery,
) -> Result<TypedAnswer, ApiError> {
    let charges = settled_slice(state, token, query).await?;
    let kept = state.store.charge_facts(charges.clone()).await?;
    let warning_rows = state.store.charge_warnings(charges).await?;
    let scope = token.scope.clone();
    let config = state.config.clone();
    tokio::task::spawn_blocking(move || {
        let (rows, unreadable) = meter::rows_of(kept, |kept| {
            scope.sees_charge(
                &config.pricing,
                &kept.business,
                kept.facts.messaging_account.as_deref(),
            )
        });
        TypedAnswer {
            rows,
            warnings: meter::kept_warnings(unreadable, warning_rows),
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))
}

/// The kept charges of a question summed by every column a cost report
/// groups by (the rows are not kept: [`wameter_meter::sums`]), with the
/// warnings [`rows_for`] gives for the same question.
pub async fn sums_for(
    state: &AppState,
    token: &ApiToken,
    query: &SliceQuery,
) -> Result<SummedAnswer, ApiError> {
    let charges = settled_slice(state, token, query).await?;
    let scope = token.scope.clone();
    let config = state.config.clone();
    let (sums, unreadable) = state
        .store
        .charge_sums(charges.clone(), move |business, account| {
            scope.sees_charge(&config.pricing, business, account)
        })
        .await?;
    let warning_rows = state.store.charge_warnings(charges).await?;
    let unreadable = unreadable
        .into_iter()
        .map(meter::unreadable_kept_charge)
        .collect();
    Ok(SummedAnswer {
        sums,
        warnings: meter::kept_warnings(unreadable, warning_rows),
    })
}

/// What [`sums_for`] answers.
pub struct SummedAnswer {
    /// Kept charges summed, in no particular order.
    pub sums: Vec<wameter_meter::sums::ChargeSum>,
    /// `(code, message, stored event id)`, as the document prints them.
    pub warnings: Vec<(String, String, Option<u64>)>,
}

/// What [`rows_for`] answers.
pub struct TypedAnswer {
    /// Charges, calls and agent usage, in no particular order.
    pub rows: Vec<wameter_export::Row>,
    /// `(code, message, stored event id)`, as the document prints them.
    pub warnings: Vec<(String, String, Option<u64>)>,
}

/// The kept-charge slice of a question, checked against the token, with
/// everything stored before it settled.
async fn settled_slice(
    state: &AppState,
    token: &ApiToken,
    query: &SliceQuery,
) -> Result<ChargeSlice, ApiError> {
    dimensions(query)?;
    let pricing = &state.config.pricing;
    let zone = match &query.business {
        Some(business) => pricing.accounts.get_or_default(business).timezone.clone(),
        None => jiff::tz::TimeZone::UTC,
    };
    let slice = Slice {
        visible: match &query.business {
            Some(business) => {
                check_business(state, token, business)?;
                Some([business.clone()].into())
            }
            None => visible_businesses(state, &token.scope).await?,
        },
        from: query
            .from
            .as_deref()
            .map(|t| instant("from", t, &zone))
            .transpose()?,
        to: query
            .to
            .as_deref()
            .map(|t| instant("to", t, &zone))
            .transpose()?,
    };
    if let (Some(from), Some(to)) = (slice.from, slice.to)
        && from >= to
    {
        return Err(ApiError::bad_request(format!(
            "`from` ({from}) must be before `to` ({to})"
        )));
    }
    // Everything stored before the question is settled before it is
    // answered.
    crate::settle::settle_pending(state).await?;
    let businesses: Option<Vec<String>> = slice.visible.map(|set| set.into_iter().collect());
    let (first, last) = settlement::months_of_slice(
        slice.from.unwrap_or(Timestamp::MIN),
        slice.to.unwrap_or(Timestamp::MAX),
    );
    // A scoped token sees the money of its own Messaging accounts only,
    // also on a number it shares with another account: the callers filter
    // by account, as a number's rows hold every account's.
    Ok(ChargeSlice {
        businesses,
        from_us: slice.from.map_or(i64::MIN, |t| t.as_microsecond()),
        to_us: slice.to.map_or(i64::MAX, |t| t.as_microsecond()),
        months: (slice.from.is_some() || slice.to.is_some())
            .then(|| (first.to_string(), last.to_string())),
    })
}

/// The charges of a slice: the same document as `wameter replay --json`
/// (interfaces §4), from the charges kept (and settled first) by the same
/// engine.
#[utoipa::path(get, path = "/v1/charges", tag = "query", security(("bearer" = [])), params(SliceQuery),
    responses((status = 200, description = "The `replay --json` document (interfaces §4); with `format=csv` or `parquet` (or `Accept`), every charge, call and agent usage as one typed table (docs/interfaces.md, \"Exports\")",
        content((Object = "application/json"), (String = "text/csv"), (ParquetFile = "application/vnd.apache.parquet"))),
        (status = 400, description = "A bad parameter", body = ErrorBody), (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "The token does not see this business", body = ErrorBody), (status = 503, description = "The store cannot answer now", body = ErrorBody)))]
pub async fn charges(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<SliceQuery>,
) -> Result<Response, ApiError> {
    let answered = answered_in(&query, &headers, true)?;
    let answer = answer(&state, &headers, &query).await?;
    telemetry::charge_query("charges");
    if answered != Answered::Json {
        let rows = export_rows(answer)?;
        let mut body = Vec::with_capacity(256 * (rows.len() + 1));
        let written = match answered {
            Answered::Csv => wameter_export::write_csv(&mut body, &rows[..]),
            _ => wameter_export::write_parquet(&mut body, &rows[..]),
        };
        written.map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok(table_response(answered, body));
    }
    let mut out = Vec::with_capacity(512 * (answer.charges.len() + 1));
    let lines = answer.charges.iter().map(|charge| Ok(charge.line.as_str()));
    fn lines_of(kept: &[meter::records::ChargeRow]) -> Vec<&str> {
        kept.iter().map(|kept| kept.line.as_str()).collect()
    }
    wameter_log::replay_json::write_document_lines(
        &mut out,
        lines,
        OtherLines {
            calls: &lines_of(&answer.calls),
            agent: &lines_of(&answer.agent),
        },
        &answer.totals,
        &answer.warnings_json(),
        Default::default(),
    )
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        out,
    )
        .into_response())
}

/// One line of a cost report.
#[derive(Serialize, ToSchema)]
pub struct CostRow {
    /// The grouping values, by dimension name.
    #[serde(flatten)]
    key: BTreeMap<String, String>,
    /// Currency of `amount`.
    currency: String,
    /// Delivered messages.
    messages: u64,
    /// Messages with `billable: true`.
    billable_messages: u64,
    /// Calls (category `call`), when there are any.
    #[serde(skip_serializing_if = "is_zero")]
    calls: u64,
    /// Calls billed.
    #[serde(skip_serializing_if = "is_zero")]
    billable_calls: u64,
    /// Sum of amounts (exact decimal).
    amount: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A total per currency.
#[derive(Serialize, ToSchema)]
pub struct CostTotal {
    /// Currency.
    currency: String,
    /// Delivered messages.
    messages: u64,
    /// Billable messages.
    billable_messages: u64,
    /// Calls, when there are any.
    #[serde(skip_serializing_if = "is_zero")]
    calls: u64,
    /// Calls billed.
    #[serde(skip_serializing_if = "is_zero")]
    billable_calls: u64,
    /// Sum of amounts.
    amount: String,
}

/// `GET /v1/reports/costs`.
#[derive(Serialize, ToSchema)]
pub struct CostReport {
    /// Start asked for.
    from: Option<String>,
    /// End asked for.
    to: Option<String>,
    /// Dimensions, in order.
    group_by: Vec<String>,
    /// One row per group and currency, sorted.
    rows: Vec<CostRow>,
    /// One per currency.
    totals: Vec<CostTotal>,
    /// As in the charges document.
    warnings: Vec<serde_json::Value>,
}

const DIMENSIONS: &[&str] = &[
    "month",
    "category",
    "market",
    "business",
    "messaging_account",
    "pricing_model",
    "type",
];

/// Costs grouped by month (business-local), category, market, business…
#[utoipa::path(get, path = "/v1/reports/costs", tag = "query", security(("bearer" = [])), params(SliceQuery),
    responses((status = 200, description = "The report; with `format=csv` (or `Accept: text/csv`) its rows as CSV: the dimensions, then currency, messages, billable_messages, calls, billable_calls, amount",
        content((CostReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter", body = ErrorBody), (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "The token does not see this business", body = ErrorBody), (status = 503, description = "The store cannot answer now", body = ErrorBody)))]
pub async fn costs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<SliceQuery>,
) -> Result<Response, ApiError> {
    let answered = answered_in(&query, &headers, false)?;
    let group_by = dimensions(&query)?;
    let summed = sums_for(&state, token(&state, &headers)?, &query).await?;
    let pricing = &state.config.pricing;
    telemetry::charge_query("reports_costs");
    // (messages, billable messages, calls, billable calls, amount). Calls
    // are a category of their own (`call`), their model `calling` and their
    // type the direction; agent usage is `meta_business_agent`, its model
    // `tokens`, counted in neither messages nor calls.
    let mut rows: BTreeMap<(Vec<String>, String), (u64, u64, u64, u64, Decimal)> = BTreeMap::new();
    let mut totals: BTreeMap<String, (u64, u64, u64, u64, Decimal)> = BTreeMap::new();
    for sum in &summed.sums {
        let key: Vec<String> = group_by
            .iter()
            .map(|dimension| match dimension.as_str() {
                "month" => settlement::Month::of(sum.local_date).to_string(),
                "category" => sum.category.clone(),
                "market" => sum.market.clone().unwrap_or_default(),
                "business" => sum.business.clone(),
                "messaging_account" => {
                    pricing.account_of(&sum.business, sum.messaging_account.as_deref())
                }
                "pricing_model" => match sum.kind {
                    Kind::Message => sum.pricing_model.clone().unwrap_or_default(),
                    Kind::Call => "calling".to_string(),
                    Kind::AgentUsage => "tokens".to_string(),
                },
                _ => match sum.kind {
                    Kind::Message => sum.pricing_type.clone().unwrap_or_default(),
                    Kind::Call => sum.direction.clone().unwrap_or_default(),
                    Kind::AgentUsage => if sum.billable { "regular" } else { "free" }.to_string(),
                },
            })
            .collect();
        let billable = if sum.billable { sum.count } else { 0 };
        for entry in [
            rows.entry((key, sum.currency.clone())).or_default(),
            totals.entry(sum.currency.clone()).or_default(),
        ] {
            match sum.kind {
                Kind::Message => {
                    entry.0 += sum.count;
                    entry.1 += billable;
                }
                Kind::Call => {
                    entry.2 += sum.count;
                    entry.3 += billable;
                }
                Kind::AgentUsage => {}
            }
            entry.4 += sum.amount;
        }
    }
    let report = CostReport {
        from: query.from.clone(),
        to: query.to.clone(),
        rows: rows
            .into_iter()
            .map(
                |(
                    (key, currency),
                    (messages, billable_messages, calls, billable_calls, amount),
                )| CostRow {
                    key: group_by.iter().cloned().zip(key).collect(),
                    currency,
                    messages,
                    billable_messages,
                    calls,
                    billable_calls,
                    amount: format_amount(amount),
                },
            )
            .collect(),
        totals: totals
            .into_iter()
            .map(
                |(currency, (messages, billable_messages, calls, billable_calls, amount))| {
                    CostTotal {
                        currency,
                        messages,
                        billable_messages,
                        calls,
                        billable_calls,
                        amount: format_amount(amount),
                    }
                },
            )
            .collect(),
        warnings: meter::warnings_json(&summed.warnings)
            .iter()
            .map(|w| serde_json::to_value(w).unwrap_or_default())
            .collect(),
        group_by,
    };
    if answered == Answered::Csv {
        return cost_rows_csv(&report)
            .map(|body| table_response(Answered::Csv, body))
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    Ok(Json(report).into_response())
}

/// A cost report's rows as CSV: one column per dimension, in the order
/// asked, then the counts and the exact amount.
fn cost_rows_csv(report: &CostReport) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let counts = [
        "currency",
        "messages",
        "billable_messages",
        "calls",
        "billable_calls",
        "amount",
    ];
    writer.write_record(report.group_by.iter().map(String::as_str).chain(counts))?;
    for row in &report.rows {
        let mut record: Vec<String> = report
            .group_by
            .iter()
            .map(|dimension| row.key.get(dimension).cloned().unwrap_or_default())
            .collect();
        record.extend([
            row.currency.clone(),
            row.messages.to_string(),
            row.billable_messages.to_string(),
            row.calls.to_string(),
            row.billable_calls.to_string(),
            row.amount.clone(),
        ]);
        writer.write_record(&record)?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// `POST /v1/events`.
#[derive(Serialize, ToSchema)]
pub struct EventsAccepted {
    /// Events and notices stored for the first time.
    accepted: u64,
    /// Already stored (sent before, or redelivered by Meta).
    duplicates: u64,
    /// Lines not taken, each with its 1-based number and why.
    rejected: Vec<RejectedLine>,
}

/// A line of `POST /v1/events` that was not taken.
#[derive(Serialize, ToSchema)]
pub struct RejectedLine {
    /// 1-based line number.
    line: u32,
    /// What was wrong, naming the field.
    error: String,
}

/// Stores canonical NDJSON events (e.g. outbound sends that do not pass
/// through the server).
#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])),
    request_body(content = String, description = "Canonical NDJSON (interfaces §1); webhook bodies may be mixed in", content_type = "application/x-ndjson"),
    responses((status = 200, body = EventsAccepted), (status = 400, description = "An empty body, or one with no line that reads as an event, a notice or a webhook", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody), (status = 413, description = "Over the size limit", body = ErrorBody),
        (status = 503, description = "The store cannot write now: nothing stored", body = ErrorBody)))]
pub async fn post_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EventsAccepted>, ApiError> {
    let token = token(&state, &headers)?;
    let body = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        code: "bad_body",
        message: rejection.body_text(),
    })?;
    // A line that is not UTF-8 is refused alone, like any malformed line.
    let (text, undecodable) = wameter_log::decode_log(body.to_vec(), 0);
    let pricing = &state.config.pricing;
    let mut events = Vec::new();
    let mut notices = Vec::new();
    let mut rejected: Vec<RejectedLine> = undecodable
        .into_iter()
        .map(|error| RejectedLine {
            line: error.origin.line,
            error: error.message,
        })
        .collect();
    // Lines that read as something (an event, a notice, a webhook body),
    // and lines that are not blank: a body with the second but none of the
    // first is not NDJSON, and is refused whole.
    let (mut read, mut written_lines) = (0usize, 0usize);
    for (index, line) in text.lines().enumerate() {
        let number = index as u32 + 1;
        written_lines += usize::from(!line.trim().is_empty());
        let parsed = wameter_log::parse_line(
            line,
            Origin {
                source: 0,
                line: number,
            },
        );
        read += usize::from(matches!(
            parsed,
            Ok(Parsed::Event(_) | Parsed::Notice(_) | Parsed::Webhook(_))
        ));
        let (line_events, line_notices) = match parsed {
            Ok(Parsed::Nothing) => continue,
            Ok(Parsed::Event(event)) => (vec![event], Vec::new()),
            Ok(Parsed::Notice(notice)) => (Vec::new(), vec![*notice]),
            Ok(Parsed::Webhook(mut items)) => {
                for problem in &items.problems {
                    rejected.push(RejectedLine {
                        line: number,
                        error: format!("{}: {}", problem.path, problem.message),
                    });
                }
                for apart in crate::auth::keep_apart(pricing, &mut items) {
                    rejected.push(RejectedLine {
                        line: number,
                        error: apart,
                    });
                }
                (items.events, items.notices)
            }
            Err(error) => {
                rejected.push(RejectedLine {
                    line: number,
                    error: error.to_string(),
                });
                continue;
            }
        };
        for event in line_events {
            match may_write_event(&token.scope, pricing, &event) {
                Ok(()) => events.push((number, event)),
                Err(error) => rejected.push(RejectedLine {
                    line: number,
                    error,
                }),
            }
        }
        for notice in line_notices {
            if notice
                .waba
                .as_deref()
                .is_none_or(|waba| token.scope.sees(waba))
            {
                notices.push(notice);
            } else {
                rejected.push(RejectedLine {
                    line: number,
                    error: "this token does not see the notice's WABA".into(),
                });
            }
        }
    }
    if written_lines == 0 && rejected.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: expected canonical NDJSON events (interfaces §1) or webhook bodies, one per line",
        ));
    }
    if read == 0 {
        rejected.sort_by_key(|line| line.line);
        let first: Vec<String> = rejected
            .iter()
            .take(3)
            .map(|r| match r.error.starts_with("line ") {
                true => r.error.clone(),
                false => format!("line {}: {}", r.line, r.error),
            })
            .collect();
        let why = if first.is_empty() {
            "only blank or comment lines".to_string()
        } else {
            first.join("; ")
        };
        return Err(ApiError::bad_request(format!(
            "not NDJSON: no line reads as a canonical event, a notice or a webhook body ({why})"
        )));
    }
    let events = others_messages_refused(&state, &token.scope, events, &mut rejected).await?;
    rejected.sort_by_key(|line| line.line);
    let outcome = state.store.write(Batch::new(None, &events, &notices)).await;
    state.store_health.wrote(&outcome);
    let written = outcome?;
    telemetry::events_written(&written);
    Ok(Json(EventsAccepted {
        accepted: written.accepted,
        duplicates: written.duplicates,
        rejected,
    }))
}

/// A scoped token's status for a message that only businesses it does
/// not see have sent is refused, and named in `rejected`. It could not
/// hide, replace or join the other WABA's events anyway (keys and matching
/// are by business, decision D17); refusing says so instead of keeping a
/// status no message of the token's will ever match. A status of a message
/// not stored yet is taken, under the business it names (which the token
/// sees). Only sends and Meta's signed webhooks say whose a message is: a
/// posted status never does, so a forger's early status cannot get the
/// owner's own lines refused, and sends are never refused here (a send under one's own business is one's
/// own claim, kept apart from any other business's message of that id).
async fn others_messages_refused(
    state: &AppState,
    scope: &Scope,
    events: Vec<(u32, Event)>,
    rejected: &mut Vec<RejectedLine>,
) -> Result<Vec<Event>, ApiError> {
    let status_of = |event: &Event| match &event.kind {
        EventKind::Status { id, .. } => Some(id.to_string()),
        _ => None,
    };
    if *scope == Scope::All {
        return Ok(events.into_iter().map(|(_, event)| event).collect());
    }
    let mut ids: Vec<String> = events
        .iter()
        .filter_map(|(_, event)| status_of(event))
        .collect();
    ids.sort();
    ids.dedup();
    let pricing = &state.config.pricing;
    let mut senders: BTreeMap<String, bool> = BTreeMap::new();
    for (id, business) in state.store.message_senders(ids).await? {
        *senders.entry(id).or_default() |= scope.sees_business(pricing, &business);
    }
    let mut kept = Vec::with_capacity(events.len());
    for (line, event) in events {
        match status_of(&event) {
            Some(id) if senders.get(&id) == Some(&false) => {
                telemetry::events_kept_apart("other_waba_message", 1);
                rejected.push(RejectedLine { line, error: format!("message {id} was sent by a business this token does not see; status not stored") });
            }
            _ => kept.push(event),
        }
    }
    Ok(kept)
}

/// A token sees, and may write for, its own WABAs only. A status must then
/// say whose it is, or it could touch another WABA's message.
fn may_write_event(scope: &Scope, pricing: &crate::Pricing, event: &Event) -> Result<(), String> {
    match (scope, event.kind.business()) {
        (Scope::All, _) => Ok(()),
        // A number shared by Messaging accounts: each token writes for
        // its own accounts.
        (scope, Some(business)) if scope.sees_business(pricing, business) => {
            match event.kind.messaging_account() {
                Some(account)
                    if pricing
                        .accounts
                        .get_or_default(business)
                        .has_messaging_account(account)
                        && !scope.sees(account) =>
                {
                    Err(format!(
                        "this token does not see Messaging account {account}"
                    ))
                }
                _ => Ok(()),
            }
        }
        (_, Some(business)) => Err(format!("this token does not see business {business}")),
        (_, None) => Err(
            "field `business`: required on a status sent with a token scoped to some WABAs".into(),
        ),
    }
}

/// Query of `GET /v1/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events stored after this id (paging; default 0).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (default and maximum 10000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Events per page at most.
const EVENTS_PAGE_MAX: i64 = 10_000;

/// The stored canonical events, oldest first, as NDJSON: exactly what the
/// server understood, readable by `wameter replay`. The header
/// `X-Wameter-Next-After` gives the `after` of the next page.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])), params(EventsQuery),
    responses((status = 200, description = "Canonical NDJSON", content_type = "application/x-ndjson", body = String), (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody), (status = 503, description = "The store cannot answer now", body = ErrorBody)))]
pub async fn get_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let token = token(&state, &headers)?;
    let limit = in_range("limit", query.limit, 1, EVENTS_PAGE_MAX, EVENTS_PAGE_MAX)?;
    let after = in_range("after", query.after, 0, i64::MAX, 0)?;
    let businesses = visible_businesses(&state, &token.scope)
        .await?
        .map(|set| set.into_iter().collect());
    let rows = state.store.events_after(after, limit, businesses).await?;
    let next = rows.last().map_or(after, |row| row.id);
    let mut out = String::new();
    for row in &rows {
        out.push_str(&row.line);
        out.push('\n');
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (
                header::HeaderName::from_static("x-wameter-next-after"),
                HeaderValue::from(next),
            ),
        ],
        out,
    )
        .into_response())
}

/// A stored webhook body.
#[derive(Serialize, ToSchema)]
pub struct WebhookJson {
    /// Id.
    id: i64,
    /// When received.
    received_at: String,
    /// SHA-256 of the body, hex.
    sha256: String,
    /// `accepted` or `rejected`.
    outcome: String,
    /// Why rejected, or the item problems of an accepted body.
    reason: Option<String>,
    /// The body as text (invalid UTF-8 replaced).
    body: String,
}

/// `GET /v1/webhooks`.
#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    webhooks: Vec<WebhookJson>,
}

/// Query of `GET /v1/webhooks`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhooksQuery {
    /// `accepted` or `rejected`.
    #[param(pattern = r"^(accepted|rejected)$")]
    outcome: Option<String>,
    /// Only bodies stored after this id.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (default and maximum 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// At most this many bytes of bodies (default and maximum 8 MiB); a
    /// single larger body is still served, alone. Page with `after`.
    #[param(minimum = 1, maximum = 8388608)]
    max_bytes: Option<i64>,
}

/// Bytes of webhook bodies one page holds at most: pages by count alone
/// let 150 stored 4 MiB bodies make one 629 MB answer.
const WEBHOOKS_PAGE_BYTES_MAX: i64 = 8 * 1024 * 1024;

/// The stored webhook bodies, e.g. the rejected ones for inspection. Needs
/// a token that sees every WABA: a body may hold any.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhook", security(("bearer" = [])), params(WebhooksQuery),
    responses((status = 200, body = WebhookList), (status = 400, description = "A bad parameter", body = ErrorBody), (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "The token does not see every WABA", body = ErrorBody), (status = 503, description = "The store cannot answer now", body = ErrorBody)))]
pub async fn get_webhooks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<WebhooksQuery>,
) -> Result<Json<WebhookList>, ApiError> {
    let token = token(&state, &headers)?;
    if token.scope != Scope::All {
        return Err(ApiError::forbidden(
            "webhook bodies need a token that sees every WABA",
        ));
    }
    if let Some(outcome) = query.outcome.as_deref()
        && outcome != "accepted"
        && outcome != "rejected"
    {
        return Err(ApiError::bad_request(format!(
            "`outcome` = {outcome:?}: use accepted or rejected"
        )));
    }
    let after = in_range("after", query.after, 0, i64::MAX, 0)?;
    let limit = in_range("limit", query.limit, 1, 1000, 1000)?;
    let max_bytes = in_range(
        "max_bytes",
        query.max_bytes,
        1,
        WEBHOOKS_PAGE_BYTES_MAX,
        WEBHOOKS_PAGE_BYTES_MAX,
    )?;
    let rows = state
        .store
        .webhooks(after, limit, query.outcome.clone(), max_bytes)
        .await?;
    Ok(Json(WebhookList {
        webhooks: rows
            .into_iter()
            .map(|row| WebhookJson {
                id: row.id,
                received_at: micros_text(row.received_at_us),
                sha256: row.sha256,
                outcome: row.outcome,
                reason: row.reason,
                body: String::from_utf8_lossy(&row.body).into_owned(),
            })
            .collect(),
    }))
}
