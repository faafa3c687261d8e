//! The dashboard `serve` answers at `/`: the money of the store drawn as
//! pages (`wameter-pages`), for the people who pay Meta's bill. Signing in
//! takes one of `serve`'s API tokens, kept in an HTTP-only cookie; a token
//! scoped to some WABAs sees only their numbers, on every page and in every
//! CSV. Each page's numbers come from the same places as the API: charges
//! from [`crate::api::rows_for`] (the charges `/v1/charges` answers, read
//! from their typed columns), budgets
//! from [`crate::budgets::budgets_for`], windows from the engine over the
//! stored events.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::Timestamp;
use serde::Deserialize;
use wameter_core::event::{EventKind, UserId};
use wameter_export::Row;
use wameter_pages::{Block, BudgetLine, Filters, Page, Table, escape};
use wameter_store::EventScope;

use crate::AppState;
use crate::api::{SliceQuery, rows_for};
use crate::auth::{ApiToken, SESSION_COOKIE, session, token_of};
use crate::error::ApiError;

mod reconciliation;
pub use reconciliation::reconciliation;
pub use reconciliation::spawn as spawn_reconciler;

/// The query every page takes: its filters, and `csv=ID` to download one
/// of its tables instead.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    month: Option<String>,
    market: Option<String>,
    business: Option<String>,
    waba: Option<String>,
    hours: Option<i64>,
    csv: Option<String>,
}

/// `GET /`: the overview, or the sign-in page.
pub async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match session(&state.config.tokens, &headers) {
        Some(_) => Redirect::to("/overview").into_response(),
        None => Redirect::to("/sign-in").into_response(),
    }
}

/// `GET /sign-in`.
pub async fn sign_in_page() -> Response {
    html(StatusCode::OK, wameter_pages::sign_in(None))
}

/// `POST /sign-in` (a form with `token`): sets the session cookie.
pub async fn sign_in(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let given = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default();
    if token_of(&state.config.tokens, &given).is_none() {
        return html(
            StatusCode::UNAUTHORIZED,
            wameter_pages::sign_in(Some("That is not one of this server's API tokens.")),
        );
    }
    let value: String = form_urlencoded::byte_serialize(given.as_bytes()).collect();
    let cookie = format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/");
    let mut response = Redirect::to("/overview").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /sign-out`: forgets the session cookie.
pub async fn sign_out() -> Response {
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("wameter_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// A page, or the CSV of one of its tables when the query asks for it.
fn answer_page(
    page: &Page,
    path: &str,
    query: &PageQuery,
    keep: &[(&str, Option<String>)],
) -> Response {
    if let Some(id) = &query.csv {
        return match wameter_pages::csv(page, id) {
            Some(csv) => (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_str(&format!(
                            "attachment; filename=\"{}-{}.csv\"",
                            path.trim_start_matches('/'),
                            id.chars()
                                .filter(char::is_ascii_alphanumeric)
                                .collect::<String>()
                        ))
                        .unwrap_or(HeaderValue::from_static("attachment")),
                    ),
                ],
                csv,
            )
                .into_response(),
            None => html(
                StatusCode::NOT_FOUND,
                format!("no table {} on this page", escape(id)),
            ),
        };
    }
    let link = |id: &str| {
        let mut query: Vec<(&str, String)> = keep
            .iter()
            .filter_map(|(name, value)| value.clone().map(|v| (*name, v)))
            .collect();
        query.push(("csv", id.to_string()));
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        format!("{path}?{encoded}")
    };
    html(
        StatusCode::OK,
        wameter_pages::render(page, Some(path), Some(&link)),
    )
}

/// The signed-in session: the index of its token in the configuration.
/// Without one, a page answers with a redirect to the sign-in page.
pub struct SignedIn(usize);

impl SignedIn {
    fn token(self, state: &AppState) -> &ApiToken {
        &state.config.tokens[self.0]
    }
}

impl axum::extract::FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let tokens = &state.config.tokens;
        session(tokens, &parts.headers)
            .and_then(|token| tokens.iter().position(|t| std::ptr::eq(t, token)))
            .map(SignedIn)
            .ok_or_else(|| Redirect::to("/sign-in").into_response())
    }
}

fn failed(error: ApiError) -> Response {
    let status = error.status;
    html(
        status,
        wameter_pages::render(
            &Page {
                title: "Not available".into(),
                blocks: vec![Block::Text(error.message)],
            },
            Some(""),
            None,
        ),
    )
}

/// What the dashboard computed last, per (what, token, parameters), and
/// the stored event it was computed through: a page asked again before
/// anything new is stored (a filter changed, another page opened, a
/// reload) is answered from it. Stored events only grow, so an entry of
/// an older event id is never asked for again; a few dozen are kept.
///
/// Also the kept charges as export rows per (portfolio, month), each with
/// the settler generation it was read at ([`crate::settle::Settler::settled_at`]):
/// after a write only the months settled since are read again.
#[derive(Default)]
pub struct Memo {
    kept: std::sync::Mutex<
        HashMap<(&'static str, usize, String), (Option<i64>, Arc<dyn Any + Send + Sync>)>,
    >,
    months: std::sync::Mutex<KeptMonths>,
    /// Reconciliations per (portfolio, month).
    pub(crate) reconciled: reconciliation::Kept,
}

/// Export rows per (portfolio, `YYYY-MM`), with the settler generation
/// they were read at.
type KeptMonths = HashMap<(String, String), (u64, Arc<Vec<Row>>)>;

/// Entries kept at most.
const MEMO_MAX: usize = 64;

/// `compute()`'s answer for (`what`, `token`, `parameters`), computed once
/// per stored event id.
async fn memo<T, F>(
    state: &AppState,
    what: &'static str,
    token: &ApiToken,
    parameters: String,
    compute: F,
) -> Result<Arc<T>, ApiError>
where
    T: Send + Sync + 'static,
    F: std::future::Future<Output = Result<T, ApiError>>,
{
    // Tokens live as long as the server: the address names one.
    let key = (what, std::ptr::from_ref(token) as usize, parameters);
    let committed = state.store.committed_event_id().await?;
    // A store that cannot say what it committed last (PostgreSQL: ids from
    // a sequence commit out of order, and other processes write) is asked
    // every time: a kept answer could never be known stale.
    if committed.is_none() {
        return Ok(Arc::new(compute.await?));
    }
    let lock = || crate::lock(&state.dashboard.kept);
    if let Some((through, kept)) = lock().get(&key)
        && *through == committed
        && let Ok(kept) = kept.clone().downcast::<T>()
    {
        return Ok(kept);
    }
    let computed = Arc::new(compute.await?);
    let mut kept = lock();
    if kept.len() >= MEMO_MAX {
        kept.clear();
    }
    kept.insert(key, (committed, computed.clone()));
    Ok(computed)
}

/// Every kept charge, call and agent usage, as export rows read from the
/// kept charges' typed columns in parts (everything stored is settled
/// first); [`visible`] keeps those a token sees. On SQLite, where this
/// process settles every month, a part is read again only when its
/// (portfolio, month) was settled since it was read: a write re-reads its
/// month, not the store (reading all 72,000 rows of a 300,000-event store
/// took half of a page's first view). Elsewhere — PostgreSQL, where other
/// processes settle too — everything the token sees is read each time.
async fn rows(state: &AppState, token: &ApiToken) -> Result<Vec<Arc<Vec<Row>>>, ApiError> {
    if state.store.committed_event_id().await?.is_none() {
        let answer = rows_for(state, token, &SliceQuery::default()).await?;
        return Ok(vec![Arc::new(answer.rows)]);
    }
    crate::settle::settle_pending(state).await?;
    let months = state.store.charge_months().await?;
    let mut parts = Vec::with_capacity(months.len());
    for key in &months {
        let settled = state.settler.settled_at(&key.0, &key.1);
        let kept = crate::lock(&state.dashboard.months)
            .get(key)
            .filter(|(at, _)| *at == settled)
            .map(|(_, rows)| rows.clone());
        let rows = match kept {
            Some(rows) => rows,
            None => {
                let facts = state
                    .store
                    .month_facts(key.0.clone(), key.1.clone())
                    .await?;
                let rows = Arc::new(
                    tokio::task::spawn_blocking(move || meter_rows(facts))
                        .await
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                );
                crate::lock(&state.dashboard.months).insert(key.clone(), (settled, rows.clone()));
                rows
            }
        };
        parts.push(rows);
    }
    // Kept between views: the latest months, up to ROWS_KEPT rows (a
    // bigger store reads its older months at every view, never holding
    // more than one view's worth beyond the bound).
    let sizes: Vec<(&(String, String), usize)> = months
        .iter()
        .zip(&parts)
        .map(|(key, rows)| (key, rows.len()))
        .collect();
    let kept = latest_within(sizes, ROWS_KEPT);
    crate::lock(&state.dashboard.months).retain(|key, _| kept.contains(key));
    Ok(parts)
}

/// The (portfolio, month)s to keep: the latest months first, while their
/// rows together stay within `bound`.
fn latest_within(
    mut sizes: Vec<(&(String, String), usize)>,
    bound: usize,
) -> BTreeSet<&(String, String)> {
    sizes.sort_by(|a, b| b.0.1.cmp(&a.0.1).then(a.0.0.cmp(&b.0.0)));
    let mut total = 0;
    sizes
        .into_iter()
        .take_while(|(_, rows)| {
            total += rows;
            total <= bound
        })
        .map(|(key, _)| key)
        .collect()
}

/// Export rows the dashboard keeps in memory between views at most
/// (about 600 bytes each with their strings: some 150 MB).
const ROWS_KEPT: usize = 250_000;

/// Export rows of kept charges' typed columns; a row that does not read
/// is logged and left out (`/v1/charges` reports it as a warning).
fn meter_rows(facts: Vec<wameter_store::KeptFacts>) -> Vec<Row> {
    let (rows, unreadable) = wameter_meter::rows_of(facts, |_| true);
    for (_, message, _) in unreadable {
        tracing::warn!(unreadable = %message, "kept charge skipped");
    }
    rows
}

/// The rows of `parts` that `token` sees: all of them, or for a scoped
/// token those of its Messaging accounts.
fn visible<'r>(state: &AppState, token: &ApiToken, parts: &'r [Arc<Vec<Row>>]) -> Vec<&'r Row> {
    let pricing = &state.config.pricing;
    parts
        .iter()
        .flat_map(|part| part.iter())
        .filter(|row| {
            token
                .scope
                .sees_charge(pricing, &row.business, row.messaging_account.as_deref())
        })
        .collect()
}

/// A `<select>` of a filter form.
fn select(name: &str, label: &str, options: &[String], chosen: Option<&str>, any: bool) -> String {
    let mut out = format!("<label>{}<select name=\"{}\">", escape(label), escape(name));
    if any {
        out.push_str("<option value=\"\">all</option>");
    }
    for option in options {
        let selected = if Some(option.as_str()) == chosen {
            " selected"
        } else {
            ""
        };
        out.push_str(&format!("<option{selected}>{}</option>", escape(option)));
    }
    out.push_str("</select></label>");
    out
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `GET /overview`.
pub async fn overview(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Response {
    let token = signed_in.token(&state);
    let parts = match rows(&state, token).await {
        Ok(parts) => parts,
        Err(error) => return failed(error),
    };
    let all = visible(&state, token, &parts);
    // The WABA of each number (its first Messaging account's id).
    let accounts = &state.config.pricing.accounts;
    let waba_of = |business: &str| accounts.get_or_default(business).waba.to_string();
    // Options are gathered borrowed, then copied once each: a string per
    // row was a tenth of the page on 72,000 charges.
    let numbers: BTreeSet<&str> = all.iter().map(|r| r.business.as_str()).collect();
    let wabas: Vec<String> = numbers
        .iter()
        .map(|business| waba_of(business))
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let waba = non_empty(&query.waba);
    let of_waba: Vec<&Row>;
    let rows: &[&Row] = match &waba {
        Some(waba) => {
            of_waba = all
                .iter()
                .copied()
                .filter(|r| &waba_of(&r.business) == waba)
                .collect();
            &of_waba
        }
        None => &all,
    };
    let budgets = match crate::budgets::budgets_for(
        &state,
        token,
        non_empty(&query.month).and_then(|m| wameter_core::settlement::Month::parse(&m)),
    )
    .await
    {
        Ok(found) => found.budgets,
        Err(error) => return failed(error),
    };
    let budgets: Vec<BudgetLine> = budgets
        .into_iter()
        .map(|b| BudgetLine {
            name: b.name,
            month: b.month,
            currency: b.currency,
            amount: b.amount.parse().unwrap_or_default(),
            spent: b.spent.parse().unwrap_or_default(),
            forecast: b.forecast.parse().unwrap_or_default(),
        })
        .collect();
    let filters = Filters {
        month: non_empty(&query.month),
        market: non_empty(&query.market),
        business: non_empty(&query.business),
    };
    let distinct = |pick: fn(&wameter_export::Row) -> Option<&str>| -> Vec<String> {
        let set: BTreeSet<&str> = rows.iter().copied().filter_map(pick).collect();
        set.into_iter().map(String::from).collect()
    };
    let months: Vec<String> = rows
        .iter()
        .map(|r| wameter_core::settlement::Month::of(r.local_date))
        .collect::<BTreeSet<_>>()
        .iter()
        .rev()
        .map(ToString::to_string)
        .collect();
    let form = format!(
        "<form class=\"filters\" method=\"get\">{}{}{}{}<button type=\"submit\">Show</button></form>",
        select(
            "month",
            "Month",
            &months,
            filters
                .month
                .as_deref()
                .or(months.first().map(String::as_str)),
            false
        ),
        select(
            "market",
            "Market",
            &distinct(|r| r.market.as_deref()),
            filters.market.as_deref(),
            true
        ),
        select("waba", "WABA", &wabas, waba.as_deref(), true),
        select(
            "business",
            "Business number",
            &distinct(|r| Some(r.business.as_str())),
            filters.business.as_deref(),
            true
        ),
    );
    let page = wameter_pages::overview(rows, &filters, &budgets, &form);
    answer_page(
        &page,
        "/overview",
        &query,
        &[
            ("month", filters.month.clone()),
            ("market", filters.market.clone()),
            ("waba", waba.clone()),
            ("business", filters.business.clone()),
        ],
    )
}

/// `GET /allowance`.
pub async fn allowance(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Response {
    let token = signed_in.token(&state);
    match rows(&state, token).await {
        Ok(parts) => {
            let month = non_empty(&query.month);
            let page = wameter_pages::allowance(&visible(&state, token, &parts), month.as_deref());
            answer_page(&page, "/allowance", &query, &[("month", month)])
        }
        Err(error) => failed(error),
    }
}

/// `GET /calls`.
pub async fn calls(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Response {
    let token = signed_in.token(&state);
    match rows(&state, token).await {
        Ok(parts) => answer_page(
            &wameter_pages::calls(&visible(&state, token, &parts)),
            "/calls",
            &query,
            &[],
        ),
        Err(error) => failed(error),
    }
}

/// The stored events of the businesses `token` sees over `[since, until)`.
async fn events_of(
    state: &AppState,
    token: &ApiToken,
    since: Timestamp,
    until: Timestamp,
) -> Result<Vec<wameter_store::StoredEvent>, ApiError> {
    // Every business by name even for an all-WABA token: a span of all
    // businesses has no index to range over and scanned every stored
    // event (0.25 s on 300,000); named, each business's span is read by
    // `events_by_business`. Statuses naming no business still come with
    // their outbounds, as they do for a scoped token.
    let businesses = match crate::api::visible_businesses(state, &token.scope).await? {
        Some(set) => set.into_iter().collect(),
        None => crate::settle::every_business(state)
            .await?
            .into_iter()
            .collect(),
    };
    let businesses = Some(businesses);
    Ok(state
        .store
        .events(EventScope::Businesses {
            businesses,
            since_us: since.as_microsecond(),
            until_us: until.as_microsecond(),
            from_id: 0,
        })
        .await?)
}

/// `GET /windows?hours=N`: the contacts whose customer service window or
/// free entry point closes within the next N hours (default 24): what a
/// support lead answers first, with a link to each contact's timeline.
pub async fn windows(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Response {
    let token = signed_in.token(&state);
    let hours = query.hours.unwrap_or(24).clamp(1, 24 * 7);
    let now = Timestamp::now();
    let shown = |at: Timestamp| at.round(jiff::Unit::Second).unwrap_or(at).to_string();
    // Every window open now, computed once per stored event: windows open
    // only on events, so until the next one is stored the list can only
    // shrink as windows close (filtered below).
    let open = match memo(
        &state,
        "windows",
        token,
        String::new(),
        open_windows(&state, token, now),
    )
    .await
    {
        Ok(open) => open,
        Err(error) => return failed(error),
    };
    let horizon = now
        .checked_add(jiff::SignedDuration::from_hours(hours))
        .unwrap_or(now);
    let mut closing: Vec<(Timestamp, String, String, &str, String)> = open
        .windows
        .iter()
        .filter(|(closes_at, ..)| *closes_at > now && *closes_at <= horizon)
        .map(|(closes_at, business, user, what)| {
            let left = closes_at.duration_since(now);
            (
                *closes_at,
                business.clone(),
                user.clone(),
                *what,
                format!("{}h {:02}m", left.as_hours(), (left.as_mins() % 60).abs()),
            )
        })
        .collect();
    closing.sort();
    let mut table = Table::new(
        "closing",
        &["closes at", "in", "window", "business", "user"],
        &[false, true, false, false, false],
    );
    for (k, (closes_at, business, user, what, left)) in closing.iter().enumerate() {
        table.rows.push(vec![
            shown(*closes_at),
            left.clone(),
            what.to_string(),
            business.clone(),
            user.clone(),
        ]);
        let href = format!(
            "/contact/{}/{}",
            form_urlencoded::byte_serialize(business.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(user.as_bytes()).collect::<String>()
        );
        table.links.insert((k, 4), href);
    }
    let page = Page {
        title: "Windows closing soon".into(),
        blocks: vec![
            Block::Html(format!(
                "<form class=\"filters\" method=\"get\"><label>Within the next (hours)<input type=\"number\" name=\"hours\" min=\"1\" max=\"168\" value=\"{hours}\"></label><button type=\"submit\">Show</button></form>"
            )),
            Block::Text(format!(
                "Open windows at {} that close within {hours} h. Free-form replies can be sent only while the customer service window is open (after it, only templates); inside a free entry point every message is free. {} pair(s) had events in the last 8 days.",
                shown(now),
                open.pairs
            )),
            Block::Table(table),
        ],
    };
    answer_page(
        &page,
        "/windows",
        &query,
        &[("hours", Some(hours.to_string()))],
    )
}

/// The windows open at an instant, of the pairs with events in the 8 days
/// before it.
struct OpenWindows {
    /// (closes at, business, user, which window).
    windows: Vec<(Timestamp, String, String, &'static str)>,
    /// Pairs with events in those 8 days.
    pairs: usize,
}

async fn open_windows(
    state: &AppState,
    token: &ApiToken,
    now: Timestamp,
) -> Result<OpenWindows, ApiError> {
    // Free entry points last at most 7 days (rules §7): older events open
    // nothing that is still open.
    let since = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * 8))
        .unwrap_or(Timestamp::MIN);
    let rows = events_of(state, token, since, now).await?;
    let loaded = wameter_meter::load(&rows);
    let engine = state.config.pricing.engine();
    let prepared = wameter_core::engine::prepare(loaded.events);
    let mut windows = Vec::new();
    for contact in &prepared.contacts {
        let found = engine.windows_at(contact, now);
        for (what, window) in [
            ("customer service window", found.customer_service_window),
            ("free entry point", found.free_entry_point),
        ] {
            if let Some(window) = window {
                windows.push((
                    window.closes_at,
                    contact.business.to_string(),
                    contact.user.to_string(),
                    what,
                ));
            }
        }
    }
    Ok(OpenWindows {
        windows,
        pairs: prepared.contacts.len(),
    })
}

/// `GET /contact/{business}/{user}`: one pair's timeline.
pub async fn contact(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path((business, user)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    let token = signed_in.token(&state);
    if !token.scope.sees_business(&state.config.pricing, &business) {
        return failed(ApiError::forbidden(format!(
            "this token does not see business {business}"
        )));
    }
    let Ok(user) = UserId::parse(&user) else {
        return failed(ApiError::bad_request(format!(
            "user {user:?} is neither an E.164 number nor a BSUID"
        )));
    };
    let since = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * 62))
        .unwrap_or(Timestamp::MIN);
    let (rows, _) = match state
        .store
        .contact_with_events(&business, &user.to_string(), since.as_microsecond())
        .await
    {
        Ok(found) => found,
        Err(error) => return failed(error.into()),
    };
    let mut table = Table::new(
        "timeline",
        &["at", "event", "id", "detail"],
        &[false, false, false, false],
    );
    for event in wameter_meter::load(&rows).events {
        let (kind, id, detail) = match &event.kind {
            EventKind::Inbound { id, kind, .. } => (
                "inbound",
                id.as_deref().unwrap_or("").to_string(),
                format!("{kind:?}").to_lowercase(),
            ),
            EventKind::Outbound { id, template, .. } => (
                "outbound",
                id.to_string(),
                template.as_ref().map_or("free-form".to_string(), |t| {
                    format!("template {} ({})", t.name, t.category.as_str())
                }),
            ),
            EventKind::Status {
                id, status, error, ..
            } => (
                "status",
                id.to_string(),
                format!(
                    "{}{}",
                    status.as_str(),
                    error.map(|e| format!(" (error {e})")).unwrap_or_default()
                ),
            ),
            EventKind::Call(call) => (
                "call",
                call.id.to_string(),
                format!("{} {} s", call.direction.as_str(), call.duration_seconds),
            ),
            EventKind::AgentUsage(usage) => (
                "agent usage",
                usage.id.to_string(),
                format!("{} tokens", usage.tokens),
            ),
        };
        table.rows.push(vec![
            event
                .at
                .round(jiff::Unit::Second)
                .unwrap_or(event.at)
                .to_string(),
            kind.to_string(),
            id,
            detail,
        ]);
    }
    let page = Page {
        title: format!("{user} with {business}"),
        blocks: vec![
            Block::Text("The pair's stored events of the last 62 days, oldest first.".into()),
            Block::Table(table),
        ],
    };
    answer_page(&page, &format!("/contact/{business}/{user}"), &query, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_months_are_kept_within_the_bound() {
        let key = |p: &str, m: &str| (p.to_string(), m.to_string());
        let (a9, a10, b10, a11) = (
            key("A", "2026-09"),
            key("A", "2026-10"),
            key("B", "2026-10"),
            key("A", "2026-11"),
        );
        let sizes = vec![(&a9, 50), (&a11, 40), (&b10, 30), (&a10, 20)];
        let kept = |bound| latest_within(sizes.clone(), bound);
        assert_eq!(kept(200), BTreeSet::from([&a9, &a10, &b10, &a11]));
        assert_eq!(kept(90), BTreeSet::from([&a10, &b10, &a11]));
        assert_eq!(
            kept(60),
            BTreeSet::from([&a10, &a11]),
            "A before B within a month"
        );
        assert_eq!(kept(39), BTreeSet::new());
    }
}
