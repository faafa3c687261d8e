//! Budgets at run time: each budget's charged spend this month, the sends
//! still in flight, the hard stop, threshold alerts and `GET /v1/budgets`.
//!
//! *Spent* is what the kept charges say: messages delivered and priced by
//! the engine, nothing else — a send that fails, even after Meta accepted
//! it (131047, 131049, 131026…), is never charged, so it never counts.
//! *In flight* is what the guard forwarded and reserved at its estimate but
//! whose charge is not kept yet; it drops out when the charge is kept (and
//! counted as spent) or when a `failed` status arrives. The hard stop
//! weighs spent + in flight + the new send; thresholds weigh spent alone,
//! so an alert says what Meta will invoice.
//!
//! Spend is read from the kept charges at most once per settler round (the
//! cache is keyed by [`crate::settle::Settler::generation`]) and by the
//! watcher, not by sends: a send checked against a budget costs a map
//! look-up, not a month's charges, and weighs spend at most
//! [`WATCH_EVERY`] old plus everything in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use wameter_core::billing::{Budget, BudgetScope, LocalMonth};
use wameter_core::money::format_amount;
use wameter_core::settlement::Month;
use wameter_meta::graph::GraphError;
use wameter_store::{AlertRow, AlertWrite, ChargeSlice, InFlightRow, StoreError};

use crate::AppState;
use crate::error::{ApiError, ApiQuery};

/// How often thresholds are looked at and undelivered alerts retried.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The longest wait between two attempts to deliver an alert.
const RETRY_MAX: Duration = Duration::from_secs(600);

/// Meta's code for "sending blocked: payment issue" (131042): what a
/// budget's hard stop answers with, so an app's error handling treats it as
/// the account-level block it is.
pub const BUDGET_BLOCKED: u32 = 131_042;

/// A send forwarded at an estimated cost, not yet charged or failed.
#[derive(Clone, Debug)]
struct InFlight {
    waba: Arc<str>,
    amount: Decimal,
    sent_at: Timestamp,
    /// Its place among the sends of its instant in [`WabaFlights`].
    order: u64,
}

/// The sends in flight, by key, and by WABA in time order with each WABA's
/// total kept up to date: what a budget holds in flight is that total less
/// the few sends outside its month or past [`IN_FLIGHT_MAX`], so a hard
/// stop's check reads a handful of entries, not every send in flight.
///
/// It read every send in flight, for every guarded template: with the
/// sandbox's statuses two seconds behind, a few hundred, 27 µs at the
/// median of the budget step (`bench/guard_latency.sh`); a campaign with
/// thousands awaiting delivery would have paid for each of them on every
/// send.
#[derive(Default)]
struct Flights {
    by_key: HashMap<FlightKey, InFlight>,
    by_waba: HashMap<Arc<str>, WabaFlights>,
    next_order: u64,
}

/// One WABA's sends in flight.
#[derive(Default)]
struct WabaFlights {
    /// Their amounts, summed.
    total: Decimal,
    /// (sent at, order) → amount.
    by_time: BTreeMap<(Timestamp, u64), Decimal>,
}

impl Flights {
    fn len(&self) -> usize {
        self.by_key.len()
    }

    fn contains(&self, key: &FlightKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Puts a send in flight under `key` (in place of any under it).
    fn insert(&mut self, key: FlightKey, waba: Arc<str>, amount: Decimal, sent_at: Timestamp) {
        self.remove(&key);
        let order = self.next_order;
        self.next_order += 1;
        let flights = self.by_waba.entry(waba.clone()).or_default();
        flights.total += amount;
        flights.by_time.insert((sent_at, order), amount);
        let flight = InFlight {
            waba,
            amount,
            sent_at,
            order,
        };
        self.by_key.insert(key, flight);
    }

    fn remove(&mut self, key: &FlightKey) -> Option<InFlight> {
        let flight = self.by_key.remove(key)?;
        self.unindex(&flight);
        Some(flight)
    }

    /// Keeps the sends `keep` says to keep.
    fn retain(&mut self, mut keep: impl FnMut(&FlightKey, &InFlight) -> bool) {
        let mut dropped = Vec::new();
        self.by_key.retain(|key, flight| {
            let kept = keep(key, flight);
            if !kept {
                dropped.push(flight.clone());
            }
            kept
        });
        for flight in &dropped {
            self.unindex(flight);
        }
    }

    fn unindex(&mut self, flight: &InFlight) {
        let Some(flights) = self.by_waba.get_mut(&flight.waba) else {
            return;
        };
        if flights
            .by_time
            .remove(&(flight.sent_at, flight.order))
            .is_some()
        {
            flights.total -= flight.amount;
        }
        if flights.by_time.is_empty() {
            self.by_waba.remove(&flight.waba);
        }
    }

    /// What `budget`'s sends in flight in `month` hold at `now`: those of
    /// its WABAs sent in the month and less than [`IN_FLIGHT_MAX`] ago.
    fn held(&self, budget: &Budget, month: &LocalMonth, now: Timestamp) -> Decimal {
        // Sends before `below` or from `from` on hold nothing: before the
        // month, or at or before `now - IN_FLIGHT_MAX`; in a later month.
        let below = match now.checked_sub(IN_FLIGHT_MAX) {
            Ok(expired) if expired >= month.start => Bound::Included((expired, u64::MAX)),
            _ => Bound::Excluded((month.start, 0)),
        };
        let from = (month.end, 0);
        // Nothing in between: the two ranges would overlap.
        let empty = match below {
            Bound::Excluded(start) => from <= start,
            Bound::Included(last) => from <= last,
            Bound::Unbounded => false,
        };
        if empty {
            return Decimal::ZERO;
        }
        let sum = |range: std::collections::btree_map::Range<'_, (Timestamp, u64), Decimal>| {
            range.map(|(_, amount)| *amount).sum::<Decimal>()
        };
        self.by_waba
            .iter()
            .filter(|(waba, _)| budget.covers(waba))
            .map(|(_, flights)| {
                let before = sum(flights.by_time.range((Bound::Unbounded, below)));
                let after = sum(flights.by_time.range(from..));
                flights.total - before - after
            })
            .sum()
    }
}

/// What a send in flight goes by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum FlightKey {
    /// While the send is upstream.
    Reserved(u64),
    /// Once upstream gave it a wamid: by the sending business and the
    /// wamid, so another business's status or charge of the same id never
    /// ends it (issue 18).
    Sent(Box<str>, Box<str>),
}

#[derive(Default)]
struct Books {
    /// (budget, month) → (settler generation, charged spend).
    spent: HashMap<(Arc<str>, String), (u64, Decimal)>,
    in_flight: Flights,
    next_reservation: u64,
    /// When sends in flight past [`IN_FLIGHT_MAX`] were last dropped.
    pruned_at: Timestamp,
    /// Failures (business, wamid) that arrived before the send they fail
    /// was confirmed (a webhook can overtake the upstream answer); bounded.
    early_failures: HashSet<(Box<str>, Box<str>)>,
}

/// Early failures remembered at most.
const EARLY_FAILURES_MAX: usize = 10_000;

/// Spend caches and sends in flight, shared by every request.
#[derive(Default)]
pub struct Ledger {
    books: Mutex<Books>,
    /// Alerts recorded already (no store round trip each watch).
    recorded: Mutex<HashSet<(Arc<str>, String, u32)>>,
    /// When an undelivered alert may be tried again.
    retry_at: Mutex<HashMap<(String, String, i64), Timestamp>>,
}

/// A hard-stop reservation held while a send is upstream.
#[derive(Debug)]
pub struct Reservation(Option<FlightKey>);

impl Ledger {
    /// What `budget`'s sends in flight in `month` hold at `now`: a send
    /// older than [`IN_FLIGHT_MAX`] holds nothing, whether or not it has
    /// been dropped from memory yet.
    fn in_flight_for(
        books: &Books,
        budget: &Budget,
        month: &LocalMonth,
        now: Timestamp,
    ) -> Decimal {
        books.in_flight.held(budget, month, now)
    }

    /// A send of `business` confirmed upstream: its reservation now goes
    /// by its wamid. Returns what it holds, to be stored with the send's
    /// record so a restarted server still counts it ([`restore`]); `None`
    /// when it holds nothing (no hard stop, or its failure came first).
    pub fn confirm(
        &self,
        reservation: Reservation,
        business: &str,
        wamid: &str,
    ) -> Option<InFlightRow> {
        let key = reservation.0?;
        let mut books = crate::lock(&self.books);
        let failed_first = books
            .early_failures
            .remove(&(business.into(), wamid.into()));
        let entry = books.in_flight.remove(&key).filter(|_| !failed_first)?;
        let row = InFlightRow {
            message_id: wamid.to_string(),
            business: business.to_string(),
            waba: entry.waba.to_string(),
            amount: entry.amount.to_string(),
            sent_at_us: entry.sent_at.as_microsecond(),
        };
        books.in_flight.insert(
            FlightKey::Sent(business.into(), wamid.into()),
            entry.waba,
            entry.amount,
            entry.sent_at,
        );
        Some(row)
    }

    /// A send refused upstream: nothing is in flight.
    pub fn release(&self, reservation: Reservation) {
        if let Some(key) = reservation.0 {
            crate::lock(&self.books).in_flight.remove(&key);
        }
    }

    /// Sends that failed, by (business, wamid): never charged, no longer
    /// in flight. A failure naming no business (a canonical line) ends
    /// every send of that wamid.
    pub fn failed<'a>(&self, failures: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) {
        let mut books = crate::lock(&self.books);
        for (business, id) in failures {
            let ended = match business {
                // A row kept before sends knew their business (store V6)
                // has `""`: any business's failure of its wamid ends it.
                Some(business) => {
                    let own = books
                        .in_flight
                        .remove(&FlightKey::Sent(business.into(), id.into()))
                        .is_some();
                    own || books
                        .in_flight
                        .remove(&FlightKey::Sent("".into(), id.into()))
                        .is_some()
                }
                None => {
                    let before = books.in_flight.len();
                    books.in_flight.retain(
                        |key, _| !matches!(key, FlightKey::Sent(_, wamid) if &**wamid == id),
                    );
                    books.in_flight.len() < before
                }
            };
            if let (false, Some(business)) = (ended, business)
                && books.early_failures.len() < EARLY_FAILURES_MAX
            {
                books.early_failures.insert((business.into(), id.into()));
            }
        }
    }
}

/// How long a send with neither a charge nor a failure holds budget: Meta
/// stops trying to deliver long before.
const IN_FLIGHT_MAX: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// How often sends in flight past [`IN_FLIGHT_MAX`] are dropped from memory.
const PRUNE_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_mins(1);

/// Takes back the sends in flight that the store kept (those of the last
/// [`IN_FLIGHT_MAX`] whose outcome has not arrived), so a restarted server
/// weighs them against its hard stops as the one before did. Returns how
/// many.
pub async fn restore(state: &AppState, now: Timestamp) -> Result<usize, StoreError> {
    if !state.config.billing.budgets.iter().any(|b| b.hard_stop) {
        return Ok(0);
    }
    let since = now.checked_sub(IN_FLIGHT_MAX).unwrap_or(Timestamp::MIN);
    let rows = state.store.in_flight(since.as_microsecond()).await?;
    let mut books = crate::lock(&state.ledger.books);
    let mut restored = 0;
    for row in rows {
        let (Ok(amount), Ok(sent_at)) = (
            row.amount.parse::<Decimal>(),
            Timestamp::from_microsecond(row.sent_at_us),
        ) else {
            return Err(StoreError::Read(format!(
                "in_flight row {}: amount {:?} or sent_at_us {} does not read",
                row.message_id, row.amount, row.sent_at_us
            )));
        };
        let key = FlightKey::Sent(row.business.into(), row.message_id.into());
        if !books.in_flight.contains(&key) {
            restored += 1;
            books
                .in_flight
                .insert(key, row.waba.into(), amount, sent_at);
        }
    }
    Ok(restored)
}

/// The business phone numbers whose charges a budget counts.
async fn businesses_of(state: &AppState, budget: &Budget) -> Result<Vec<String>, StoreError> {
    let pricing = &state.config.pricing;
    let mut out: Vec<String> = state
        .store
        .businesses()
        .await?
        .into_iter()
        .filter(|b| budget.covers(&pricing.waba_of(b)))
        .collect();
    out.extend(
        pricing
            .accounts
            .businesses()
            .filter(|b| {
                budget.covers(&b.waba) || b.messaging_accounts.iter().any(|a| budget.covers(&a.id))
            })
            .map(|b| b.phone_number_id.to_string()),
    );
    out.sort();
    out.dedup();
    Ok(out)
}

/// A budget's charged spend in a month, from the kept charges (cached per
/// settler round). Sends in flight whose charge is now kept leave the
/// in-flight list in the same step, so nothing counts twice.
pub async fn spent(
    state: &AppState,
    budget: &Budget,
    month: &LocalMonth,
) -> Result<Decimal, StoreError> {
    let key = (budget.name.clone(), month.label());
    let generation = state.settler.generation();
    if let Some((_, spent)) = crate::lock(&state.ledger.books)
        .spent
        .get(&key)
        .filter(|(seen, _)| *seen == generation)
    {
        return Ok(*spent);
    }
    let slice = ChargeSlice {
        businesses: Some(businesses_of(state, budget).await?),
        from_us: month.start.as_microsecond(),
        to_us: month.end.as_microsecond(),
        months: None,
    };
    // The typed columns, not the lines: parsing every line of the month
    // back was most of a budget's refresh.
    let rows = state.store.charge_facts(slice).await?;
    let mut total = Decimal::ZERO;
    let mut charged: HashSet<(&str, &str)> = HashSet::with_capacity(rows.len());
    for row in &rows {
        // Only the money of the budget's Messaging accounts: a number
        // shared with another account bills it some of its messages.
        if !budget.covers(
            &state
                .config
                .pricing
                .account_of(&row.business, row.facts.messaging_account.as_deref()),
        ) {
            continue;
        }
        total += row.facts.amount.parse::<Decimal>().map_err(|_| {
            StoreError::Read(format!(
                "kept charge {} has no decimal `amount`: {:?}",
                row.message_id, row.facts.amount
            ))
        })?;
        charged.insert((&row.business, &row.message_id));
    }
    let mut books = crate::lock(&state.ledger.books);
    books.in_flight.retain(|key, _| match key {
        FlightKey::Sent(business, id) if business.is_empty() => {
            !charged.iter().any(|(_, charged_id)| *charged_id == &**id)
        }
        FlightKey::Sent(business, id) => !charged.contains(&(&**business, &**id)),
        FlightKey::Reserved(_) => true,
    });
    books.spent.insert(key, (generation, total));
    Ok(total)
}

/// The spend the send path weighs: the cached figure even when a settler
/// round has passed since (the watcher refreshes it every
/// [`WATCH_EVERY`]), so a send never waits for a month's charges to be
/// read. Nothing is missed meanwhile: a send the guard forwarded stays in
/// flight until the refresh that counts it as spent.
async fn spent_for_send(
    state: &AppState,
    budget: &Budget,
    month: &LocalMonth,
) -> Result<Decimal, StoreError> {
    let key = (budget.name.clone(), month.label());
    if let Some((_, spent)) = crate::lock(&state.ledger.books).spent.get(&key) {
        return Ok(*spent);
    }
    spent(state, budget, month).await
}

/// Checks a billable send of `waba` estimated at `estimate` against every
/// hard-stop budget covering it and, when all allow it, reserves the
/// estimate as in flight. The refusal names the budget and its numbers.
pub async fn reserve(
    state: &AppState,
    waba: &str,
    estimate: Decimal,
    now: Timestamp,
) -> Result<Reservation, GraphError> {
    let budgets: Vec<&Budget> = state
        .config
        .billing
        .budgets_of_waba(waba)
        .filter(|b| b.hard_stop)
        .collect();
    if budgets.is_empty() || estimate <= Decimal::ZERO {
        return Ok(Reservation(None));
    }
    let mut spends = Vec::with_capacity(budgets.len());
    for budget in &budgets {
        let month = LocalMonth::of(now, &budget.timezone);
        let spent = spent_for_send(state, budget, &month)
            .await
            .map_err(|e| GraphError {
                http: 503,
                ..GraphError::new(
                    1,
                    "An unknown error occurred",
                    format!(
                        "wameter could not read budget `{}`'s spend: {e}",
                        budget.name
                    ),
                )
            })?;
        spends.push((month, spent));
    }
    // Check and reserve under one lock, so two concurrent sends cannot both
    // take the last of a budget. A send with neither a charge nor a failure
    // after a week is not waiting for either any more (Meta stops trying
    // long before): it stops holding budget.
    let mut books = crate::lock(&state.ledger.books);
    // Expired sends stop counting at once (`in_flight_for`); memory is
    // freed of them once a minute rather than by a pass over every send
    // in flight on every send.
    if now - books.pruned_at >= PRUNE_EVERY {
        books
            .in_flight
            .retain(|_, flight| now - flight.sent_at < IN_FLIGHT_MAX);
        books.pruned_at = now;
    }
    for (budget, (month, spent)) in budgets.iter().zip(&spends) {
        let in_flight = Ledger::in_flight_for(&books, budget, month, now);
        if !budget.allows(*spent, in_flight, estimate) {
            let currency = budget.currency.code();
            return Err(GraphError {
                http: 402,
                ..GraphError::new(
                    BUDGET_BLOCKED,
                    "Business eligibility payment issue",
                    format!(
                        "refused by wameter: budget `{}` ({}) allows {} {currency} in {}; spent {}, in flight {}, this send {} would take it to {} (hard stop)",
                        budget.name,
                        budget.scope,
                        format_amount(budget.amount),
                        month.label(),
                        format_amount(*spent),
                        format_amount(in_flight),
                        format_amount(estimate),
                        format_amount(*spent + in_flight + estimate),
                    ),
                )
            });
        }
    }
    books.next_reservation += 1;
    let key = FlightKey::Reserved(books.next_reservation);
    books
        .in_flight
        .insert(key.clone(), waba.into(), estimate, now);
    Ok(Reservation(Some(key)))
}

fn alert_body(
    budget: &Budget,
    month: &LocalMonth,
    threshold: u32,
    spent: Decimal,
    at: Timestamp,
) -> serde_json::Value {
    json!({
        "type": "wameter.budget.threshold_crossed",
        "budget": &*budget.name,
        "scope": scope_json(&budget.scope),
        "wabas": budget.wabas.iter().map(|w| &**w).collect::<Vec<_>>(),
        "month": month.label(),
        "currency": budget.currency.code(),
        "amount": format_amount(budget.amount),
        "threshold_percent": threshold,
        "threshold_amount": format_amount(budget.threshold_amount(threshold)),
        "spent": format_amount(spent),
        "hard_stop": budget.hard_stop,
        "crossed_at": at.to_string(),
    })
}

fn scope_json(scope: &BudgetScope) -> serde_json::Value {
    match scope {
        BudgetScope::Waba(waba) => json!({"waba": &**waba}),
        BudgetScope::Client(client) => json!({"client": &**client}),
    }
}

/// One look at every budget: thresholds newly crossed are recorded (once,
/// in the store) and alerts not yet delivered are sent.
pub async fn watch_once(state: &AppState, now: Timestamp) -> Result<(), StoreError> {
    for budget in &state.config.billing.budgets {
        let month = LocalMonth::of(now, &budget.timezone);
        let spent = spent(state, budget, &month).await?;
        for threshold in budget.crossed(spent) {
            let key = (budget.name.clone(), month.label(), threshold);
            if crate::lock(&state.ledger.recorded).contains(&key) {
                continue;
            }
            let row = AlertRow {
                budget: budget.name.to_string(),
                month: month.label(),
                threshold: i64::from(threshold),
                crossed_at_us: now.as_microsecond(),
                spent: format_amount(spent),
                body: alert_body(budget, &month, threshold, spent, now).to_string(),
                attempts: 0,
                delivered_at_us: None,
                last_error: None,
            };
            if state.store.write_alert(AlertWrite::Cross(row)).await? {
                tracing::warn!(message = "Budget threshold crossed.", budget = %budget.name, month = %month.label(), threshold, spent = %format_amount(spent));
            }
            crate::lock(&state.ledger.recorded).insert(key);
        }
    }
    let Some(url) = state.config.alert_url.as_deref() else {
        return Ok(());
    };
    for alert in state.store.alerts(None).await? {
        let key = (alert.budget.clone(), alert.month.clone(), alert.threshold);
        if crate::lock(&state.ledger.retry_at)
            .get(&key)
            .is_some_and(|at| *at > now)
        {
            continue;
        }
        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        if !state.config.app_secret.is_empty() {
            let signature =
                wameter_meta::signature::sign(&state.config.app_secret, alert.body.as_bytes());
            headers.push((
                header::HeaderName::from_static("x-wameter-signature-256"),
                HeaderValue::from_str(&signature).expect("hex is a header value"),
            ));
        }
        let outcome = match state
            .http
            .call(Method::POST, url, &headers, alert.body.clone().into())
            .await
        {
            Ok(answer) if answer.status.is_success() => Ok(Timestamp::now().as_microsecond()),
            Ok(answer) => Err(format!("{url} answered {}", answer.status)),
            Err(error) => Err(error),
        };
        if let Err(reason) = &outcome {
            let wait = RETRY_MAX.min(Duration::from_secs(1 << alert.attempts.clamp(0, 10)));
            tracing::warn!(message = "Budget alert not delivered; will retry.", budget = %alert.budget, threshold = alert.threshold, reason = %reason, retry_in_s = wait.as_secs());
            crate::lock(&state.ledger.retry_at).insert(key, now + wait);
        }
        state
            .store
            .write_alert(AlertWrite::Attempt {
                budget: alert.budget,
                month: alert.month,
                threshold: alert.threshold,
                outcome,
            })
            .await?;
    }
    Ok(())
}

/// Watches budgets until the process ends (when any is configured).
pub fn spawn_watcher(state: Arc<AppState>) {
    if state.config.billing.budgets.is_empty() {
        return;
    }
    tokio::spawn(async move {
        loop {
            if let Err(error) = watch_once(&state, Timestamp::now()).await {
                tracing::error!(message = "Budget watch failed; retrying.", error = %error);
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
    });
}

/// `GET /v1/budgets` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetsQuery {
    /// Business-local month `YYYY-MM`; default: the current one.
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    month: Option<String>,
}

/// One threshold of a budget.
#[derive(Serialize, ToSchema)]
pub struct ThresholdJson {
    /// Percent of the budget.
    percent: u32,
    /// The spend at which it is crossed.
    amount: String,
    /// Whether the month's charged spend has reached it.
    crossed: bool,
    /// When the crossing was recorded (and the alert fired).
    crossed_at: Option<String>,
    /// When the alert webhook was acknowledged.
    alert_delivered_at: Option<String>,
    /// Alert delivery attempts.
    alert_attempts: i64,
    /// Why the last attempt failed.
    alert_error: Option<String>,
}

/// One budget in one month.
#[derive(Serialize, ToSchema)]
pub struct BudgetJson {
    /// Name.
    pub(crate) name: String,
    /// `{"waba": …}` or `{"client": …}`.
    #[schema(value_type = Object)]
    pub(crate) scope: serde_json::Value,
    /// The WABAs it covers.
    pub(crate) wabas: Vec<String>,
    /// Business-local month.
    pub(crate) month: String,
    /// The businesses' currency.
    pub(crate) currency: String,
    /// Monthly amount.
    pub(crate) amount: String,
    /// Charged so far (delivered messages, as the engine prices them).
    pub(crate) spent: String,
    /// Forwarded by the guard at its estimate, not yet charged or failed.
    pub(crate) in_flight: String,
    /// `amount − spent − in_flight` (may be negative).
    pub(crate) remaining: String,
    /// Spent at month end if the month goes on as so far (straight line).
    pub(crate) forecast: String,
    /// Whether billable sends that would exceed it are refused.
    pub(crate) hard_stop: bool,
    /// Soft thresholds.
    pub(crate) thresholds: Vec<ThresholdJson>,
}

/// `GET /v1/budgets`.
#[derive(Serialize, ToSchema)]
pub struct BudgetsResponse {
    /// When this was computed.
    pub(crate) at: String,
    /// Every budget the token sees (all of whose WABAs it sees).
    pub(crate) budgets: Vec<BudgetJson>,
}

/// Spend, forecast and thresholds of every budget the token sees.
#[utoipa::path(get, path = "/v1/budgets", params(BudgetsQuery), tag = "budgets", security(("bearer" = [])),
    responses((status = 200, body = BudgetsResponse), (status = 400, description = "Bad month", body = crate::error::ErrorBody),
        (status = 401, description = "No or unknown token", body = crate::error::ErrorBody),
        (status = 503, description = "The store cannot answer now", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<BudgetsQuery>,
) -> Result<Json<BudgetsResponse>, ApiError> {
    let token = crate::auth::authenticate(&state.config.tokens, &headers)
        .ok_or_else(ApiError::unauthorized)?;
    // A bad month is refused whether or not the token sees any budget.
    let asked =
        match &query.month {
            None => None,
            Some(text) => Some(Month::parse(text).ok_or_else(|| {
                ApiError::bad_request(format!("`month` = {text:?} is not YYYY-MM"))
            })?),
        };
    Ok(Json(budgets_for(&state, token, asked).await?))
}

/// Every budget `token` sees, for `asked` (default: each budget's current
/// month): what `/v1/budgets` and the dashboard show.
pub async fn budgets_for(
    state: &AppState,
    token: &crate::auth::ApiToken,
    asked: Option<Month>,
) -> Result<BudgetsResponse, ApiError> {
    let now = Timestamp::now();
    // Answer for every event stored before the question, like /v1/charges.
    crate::settle::settle_pending(state).await?;
    let mut out = Vec::new();
    for budget in state
        .config
        .billing
        .budgets
        .iter()
        .filter(|b| b.wabas.iter().all(|w| token.scope.sees(w)))
    {
        let month = match asked {
            None => LocalMonth::of(now, &budget.timezone),
            Some(month) => LocalMonth::in_zone(month, &budget.timezone),
        };
        let spent = spent(state, budget, &month).await?;
        let in_flight =
            Ledger::in_flight_for(&crate::lock(&state.ledger.books), budget, &month, now);
        let alerts = state.store.alerts(Some(month.label())).await?;
        let crossed = budget.crossed(spent);
        let micros = |us: i64| {
            Timestamp::from_microsecond(us)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let thresholds = budget
            .thresholds
            .iter()
            .map(|percent| {
                let alert = alerts
                    .iter()
                    .find(|a| a.budget == *budget.name && a.threshold == i64::from(*percent));
                ThresholdJson {
                    percent: *percent,
                    amount: format_amount(budget.threshold_amount(*percent)),
                    crossed: crossed.contains(percent) || alert.is_some(),
                    crossed_at: alert.map(|a| micros(a.crossed_at_us)),
                    alert_delivered_at: alert.and_then(|a| a.delivered_at_us).map(micros),
                    alert_attempts: alert.map_or(0, |a| a.attempts),
                    alert_error: alert.and_then(|a| a.last_error.clone()),
                }
            })
            .collect();
        out.push(BudgetJson {
            name: budget.name.to_string(),
            scope: scope_json(&budget.scope),
            wabas: budget.wabas.iter().map(|w| w.to_string()).collect(),
            month: month.label(),
            currency: budget.currency.code().to_string(),
            amount: format_amount(budget.amount),
            spent: format_amount(spent),
            in_flight: format_amount(in_flight),
            remaining: format_amount(budget.amount - spent - in_flight),
            forecast: format_amount(budget.forecast(spent, &month, now)),
            hard_stop: budget.hard_stop,
            thresholds,
        });
    }
    Ok(BudgetsResponse {
        at: now.to_string(),
        budgets: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wameter_core::billing::BudgetScope;
    use wameter_core::money::Currency;

    /// A hard-stop budget of 100 USD over WABA `W`, its months in `timezone`.
    fn hard_stop_of_waba_w(timezone: &jiff::tz::TimeZone) -> Budget {
        Budget {
            name: "b".into(),
            scope: BudgetScope::Waba("W".into()),
            wabas: vec!["W".into()],
            amount: Decimal::ONE_HUNDRED,
            currency: Currency::USD,
            timezone: timezone.clone(),
            thresholds: vec![],
            hard_stop: true,
        }
    }

    /// Sends past [`IN_FLIGHT_MAX`] are dropped from memory only once a
    /// minute; until then they must already hold nothing.
    #[test]
    fn a_send_in_flight_holds_budget_for_a_week_whether_or_not_pruned() {
        let timezone = jiff::tz::TimeZone::UTC;
        let budget = hard_stop_of_waba_w(&timezone);
        let sent_at: Timestamp = "2026-10-02T00:00:00Z".parse().unwrap();
        let month = LocalMonth::of(sent_at, &timezone);
        let mut books = Books::default();
        for (n, waba) in ["W", "other"].into_iter().enumerate() {
            books.in_flight.insert(
                FlightKey::Reserved(n as u64),
                waba.into(),
                Decimal::TWO,
                sent_at,
            );
        }
        let held = |now: Timestamp| Ledger::in_flight_for(&books, &budget, &month, now);
        assert_eq!(held(sent_at), Decimal::TWO, "only its WABA's send");
        let just_before = sent_at + IN_FLIGHT_MAX - jiff::SignedDuration::from_nanos(1);
        assert_eq!(held(just_before), Decimal::TWO);
        assert_eq!(held(sent_at + IN_FLIGHT_MAX), Decimal::ZERO);
    }

    mod flights {
        use super::*;
        use proptest::prelude::*;

        /// One change to the sends in flight: put (key, WABA, amount in
        /// cents, half days after the first of a month), take away a key,
        /// or keep the odd keys. Half days: sends fall on a month's first
        /// instant and exactly a week before `now` as often as not.
        #[derive(Clone, Debug)]
        enum Change {
            Put(u64, bool, i64, i64),
            Take(u64),
            KeepOdd,
        }

        fn change() -> impl Strategy<Value = Change> {
            prop_oneof![
                6 => (0u64..40, any::<bool>(), 1i64..10_000, -70i64..170)
                    .prop_map(|(key, waba, cents, hours)| Change::Put(key, waba, cents, hours)),
                3 => (0u64..40).prop_map(Change::Take),
                1 => Just(Change::KeepOdd),
            ]
        }

        /// Every send's amount read one by one: what the index stands for.
        fn read_one_by_one(
            flights: &Flights,
            budget: &Budget,
            month: &LocalMonth,
            now: Timestamp,
        ) -> Decimal {
            flights
                .by_key
                .values()
                .filter(|f| {
                    budget.covers(&f.waba)
                        && f.sent_at >= month.start
                        && f.sent_at < month.end
                        && now - f.sent_at < IN_FLIGHT_MAX
                })
                .map(|f| f.amount)
                .sum()
        }

        proptest! {
            /// Whatever was put in and taken out, in whatever order, a
            /// budget's sends in flight hold what reading each of them
            /// says, for months around them and instants up to a week and
            /// more after them.
            #[test]
            fn what_a_budget_holds_is_what_its_sends_add_up_to(
                changes in prop::collection::vec(change(), 0..60),
                month_shift in -1i32..3,
                now_halves in -10i64..200,
            ) {
                let timezone = jiff::tz::TimeZone::get("America/Sao_Paulo").unwrap();
                let start: Timestamp = "2026-10-01T03:00:00Z".parse().unwrap();
                let budget = hard_stop_of_waba_w(&timezone);
                let halves = |n: i64| start + jiff::SignedDuration::from_hours(12 * n);
                let mut flights = Flights::default();
                for change in changes {
                    match change {
                        Change::Put(key, own, cents, at) => flights.insert(
                            FlightKey::Reserved(key),
                            if own { "W".into() } else { "other".into() },
                            Decimal::new(cents, 2),
                            halves(at),
                        ),
                        Change::Take(key) => {
                            flights.remove(&FlightKey::Reserved(key));
                        }
                        Change::KeepOdd => flights.retain(
                            |key, _| matches!(key, FlightKey::Reserved(n) if n % 2 == 1),
                        ),
                    }
                }
                let in_month = halves(i64::from(month_shift) * 62 + 2);
                let month = LocalMonth::of(in_month, &timezone);
                let now = halves(now_halves);
                prop_assert_eq!(
                    flights.held(&budget, &month, now),
                    read_one_by_one(&flights, &budget, &month, now)
                );
                let indexed: usize = flights.by_waba.values().map(|f| f.by_time.len()).sum();
                prop_assert_eq!(indexed, flights.len());
            }
        }
    }
}
