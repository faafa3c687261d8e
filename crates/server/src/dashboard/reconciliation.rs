//! The reconciliation page: where Meta's pricing objects and the engine
//! disagree, and the templates Meta re-categorised, with what it cost.
//!
//! A reconciliation is computed per (portfolio, month), as charges are
//! settled: a portfolio's businesses share the counters that price them,
//! so its month is reconciled from all its events (those of the month's
//! [`settle_span`], counters starting where they should), whoever asks.
//! The core breaks the result down by business number, Messaging account
//! and month ([`wameter_core::reconcile::Share`]); a page adds up the
//! parts its token sees, of the months it shows.
//!
//! When the settler keeps the month's engine state (SQLite) and every
//! message agrees with Meta's pricing, the state's charges and Meta's
//! verdicts, kept up as events arrive, answer at once
//! ([`wameter_meter::MonthState::agreement`]). Otherwise reconciling a
//! month of 100,000 events takes about half a second (its events read
//! back and priced, and priced again for the cost of drift when a send can
//! have drifted; a discrepancy's cause reads the explanation the kept
//! charges lack), so a page does not wait for it after a write, nor after
//! a start:
//! - a part is kept with the settler generation it was computed at
//!   ([`crate::settle::Settler::settled_at`]); when its (portfolio,
//!   month) has been settled since, the page shows the kept part and says
//!   when it was made, while a newer one is computed in the background
//!   (one at a time per part);
//! - a background reconciler ([`spawn`]) keeps every portfolio's months
//!   reconciled, the latest first, within a bound, from the start and
//!   after writes, resting [`REST_SHARE`] times as long as it worked (so
//!   it takes about a tenth of a core at most from ingestion).
//!
//! Only the first view of a month past the bound, or asked before the
//! reconciler reached it, waits. On PostgreSQL, where
//! other processes settle too and this one cannot tell what changed, every
//! view is computed afresh.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use jiff::Timestamp;
use rust_decimal::Decimal;
use wameter_core::reconcile::{CategoryDrift, Discrepancy, ShareKey};
use wameter_core::settlement::{Month, settle_span};
use wameter_pages::{Block, Page, Table, escape};
use wameter_store::EventScope;

use super::{PageQuery, SignedIn, answer_page, failed, non_empty};
use crate::AppState;
use crate::auth::ApiToken;
use crate::error::ApiError;

/// One (business number, Messaging account)'s part of a month's
/// reconciliation.
struct Part {
    business: Box<str>,
    account: Option<Box<str>>,
    compared: u64,
    agreements: u64,
    discrepancies: Vec<Discrepancy>,
    drift: Vec<CategoryDrift>,
}

/// A (portfolio, month)'s parts as last computed.
struct Entry {
    /// The settler generation of the (portfolio, month) they were
    /// computed at.
    settled: u64,
    /// When.
    at: Timestamp,
    parts: Arc<Vec<Part>>,
    /// How many discrepancies the parts hold.
    discrepancies: usize,
    /// Newer parts are being computed.
    refreshing: bool,
}

/// Reconciliations kept per (portfolio, month).
#[derive(Default)]
pub struct Kept(std::sync::Mutex<HashMap<(String, Month), Entry>>);

/// (portfolio, month)s kept at most; past it the oldest months go.
const KEPT_MAX: usize = 1024;

/// Discrepancies the kept parts hold at most together (each with the
/// engine's charge and Meta's verdict, about a kilobyte): past it the
/// oldest months go. A month whose every message differs is kept alone.
const DISCREPANCIES_KEPT: usize = 200_000;

/// `GET /reconciliation?month=YYYY-MM`: where Meta's pricing objects and the
/// engine disagree, and templates Meta re-categorised, with the cost. No
/// month: the previous and the current one (UTC).
pub async fn reconciliation(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Response {
    let token = signed_in.token(&state);
    let months = match non_empty(&query.month).and_then(|m| Month::parse(&m)) {
        Some(month) => vec![month],
        None => {
            let now = Month::of_instant(Timestamp::now());
            vec![now.previous(), now]
        }
    };
    let pricing = &state.config.pricing;
    let sees = |business: &str| token.scope.sees_business(pricing, business);
    let (parts, stale_since) = match parts_of(&state, &months, false, &sees).await {
        Ok(found) => found,
        Err(error) => return failed(error),
    };
    let updates = match updates(&state, token, &months).await {
        Ok(table) => table,
        Err(error) => return failed(error),
    };
    let mut blocks = vec![Block::Html(format!(
        "<form class=\"filters\" method=\"get\"><label>Month (YYYY-MM)<input name=\"month\" value=\"{}\" pattern=\"[0-9]{{4}}-[0-9]{{2}}\"></label><button type=\"submit\">Show</button></form>",
        escape(&query.month.clone().unwrap_or_default())
    ))];
    if let Some(at) = stale_since {
        blocks.push(Block::Text(format!(
            "Reconciled at {}: events stored since are being reconciled now; reload in a moment to see them.",
            at.round(jiff::Unit::Second).unwrap_or(at)
        )));
    }
    blocks.extend(shown(&state, token, &parts, updates));
    let label = months
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ");
    let page = Page {
        title: format!("Reconciliation, {label}"),
        blocks,
    };
    answer_page(
        &page,
        "/reconciliation",
        &query,
        &[("month", non_empty(&query.month))],
    )
}

/// How often the background reconciler looks for months settled since it
/// reconciled them, at most.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The reconciler rests this many times as long as its last round took.
const REST_SHARE: u32 = 9;

/// Keeps every (portfolio, month) with kept charges reconciled in the
/// background (SQLite), the latest months first, while the kept parts stay
/// within [`KEPT_MAX`] months and [`DISCREPANCIES_KEPT`] discrepancies: so
/// that no view waits for it, neither the first after a start or a bulk
/// import, nor one after a write.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        // The settler generation of the last round that reconciled all:
        // nothing to do while no round of the settler changed charges.
        let mut done: Option<u64> = None;
        loop {
            let generation = state.settler.generation();
            if done == Some(generation) {
                tokio::time::sleep(RECONCILE_EVERY).await;
                continue;
            }
            match state.store.committed_event_id().await {
                Ok(Some(_)) => {}
                // Nothing is kept between views (PostgreSQL).
                Ok(None) => return,
                Err(error) => tracing::warn!(error = %error, "reconciler: store unavailable"),
            }
            let started = std::time::Instant::now();
            match reconcile_latest(&state).await {
                Ok(portfolio_months) => {
                    done = Some(generation);
                    tracing::debug!(
                        portfolio_months,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "reconciled the latest months"
                    )
                }
                Err(error) => {
                    tracing::warn!(error = %error.message, "reconciliation failed; will retry")
                }
            }
            tokio::time::sleep(RECONCILE_EVERY.max(started.elapsed() * REST_SHARE)).await;
        }
    });
}

/// One round of the reconciler: every month with kept charges, the latest
/// first, until the kept parts are as many as may be kept ([`parts_of`]
/// stops adding there). Returns how many (portfolio, month)s it went
/// through.
async fn reconcile_latest(state: &Arc<AppState>) -> Result<usize, ApiError> {
    let months: Vec<Month> = state
        .store
        .charge_months()
        .await?
        .iter()
        .filter_map(|(_, month)| Month::parse(month))
        .collect();
    Ok(parts_of(state, &months, true, &|_| true).await?.0.len())
}

/// The parts of every (portfolio, month) of `months` with kept charges
/// and a business number `sees` accepts, and, when some are older than
/// the portfolio's latest settle, when the oldest of those was computed.
/// Stale parts are computed again in the background, or before answering
/// when `wait`.
async fn parts_of(
    state: &Arc<AppState>,
    months: &[Month],
    wait: bool,
    sees: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Vec<Arc<Vec<Part>>>, Option<Timestamp>), ApiError> {
    // A store that cannot say what it committed (PostgreSQL) is asked afresh.
    let keep = state.store.committed_event_id().await?.is_some();
    if keep {
        crate::settle::settle_pending(state).await?;
    }
    let wanted: Vec<(String, Month)> = state
        .store
        .charge_months()
        .await?
        .into_iter()
        .filter_map(|(portfolio, month)| {
            let month = Month::parse(&month).filter(|m| months.contains(m))?;
            Some((portfolio, month))
        })
        .collect();
    let portfolios = portfolios(state).await?;
    let own = |portfolio: &str| portfolios.get(portfolio).cloned().unwrap_or_default();
    // A portfolio none of whose numbers the reader sees is not reconciled
    // for them (its parts would all be filtered out).
    let mut wanted: Vec<(String, Month)> = wanted
        .into_iter()
        .filter(|(portfolio, _)| {
            portfolios
                .get(portfolio)
                .is_some_and(|numbers| numbers.iter().any(|number| sees(number)))
        })
        .collect();
    // The latest months first: those the kept parts' bound keeps.
    wanted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut found = Vec::with_capacity(wanted.len());
    let mut stale_since: Option<Timestamp> = None;
    for key in wanted {
        if !keep {
            found.push(Arc::new(
                reconcile_month(state, &key.0, own(&key.0), key.1, false, "view").await?,
            ));
            continue;
        }
        let settled = state.settler.settled_at(&key.0, &key.1.to_string());
        {
            let mut kept = crate::lock(&state.dashboard.reconciled.0);
            if let Some(entry) = kept.get_mut(&key)
                && (entry.settled == settled || !wait)
            {
                if entry.settled != settled {
                    stale_since = Some(stale_since.map_or(entry.at, |at| at.min(entry.at)));
                    if !entry.refreshing {
                        entry.refreshing = true;
                        refresh(state.clone(), key.clone(), own(&key.0), settled);
                    }
                }
                found.push(entry.parts.clone());
                continue;
            }
            // The reconciler adds no part past the bound: it would only
            // push out another (or itself) and be computed again next round.
            if wait && !kept.contains_key(&key) && full(&kept) {
                continue;
            }
        }
        let at = Timestamp::now();
        let by = if wait { "reconciler" } else { "view" };
        let parts = Arc::new(reconcile_month(state, &key.0, own(&key.0), key.1, true, by).await?);
        keep_entry(state, key, settled, at, parts.clone());
        found.push(parts);
    }
    Ok((found, stale_since))
}

/// Whether the kept parts are as many as may be kept.
fn full(kept: &HashMap<(String, Month), Entry>) -> bool {
    kept.len() >= KEPT_MAX
        || kept
            .values()
            .map(|entry| entry.discrepancies)
            .sum::<usize>()
            >= DISCREPANCIES_KEPT
}

/// Computes a (portfolio, month)'s parts again in the background.
fn refresh(state: Arc<AppState>, key: (String, Month), own: BTreeSet<String>, settled: u64) {
    tokio::spawn(async move {
        let at = Timestamp::now();
        // Spawned only where states are kept (`parts_of`, SQLite).
        match reconcile_month(&state, &key.0, own, key.1, true, "refresh").await {
            Ok(parts) => keep_entry(&state, key, settled, at, Arc::new(parts)),
            Err(error) => {
                tracing::warn!(error = %error.message, "reconciliation not refreshed");
                if let Some(entry) = crate::lock(&state.dashboard.reconciled.0).get_mut(&key) {
                    entry.refreshing = false;
                }
            }
        }
    });
}

fn keep_entry(
    state: &AppState,
    key: (String, Month),
    settled: u64,
    at: Timestamp,
    parts: Arc<Vec<Part>>,
) {
    let mut kept = crate::lock(&state.dashboard.reconciled.0);
    let discrepancies = parts.iter().map(|part| part.discrepancies.len()).sum();
    kept.insert(
        key,
        Entry {
            settled,
            at,
            parts,
            discrepancies,
            refreshing: false,
        },
    );
    while kept.len() > KEPT_MAX
        || (kept.len() > 1
            && kept
                .values()
                .map(|entry| entry.discrepancies)
                .sum::<usize>()
                > DISCREPANCIES_KEPT)
    {
        let Some(oldest) = kept.keys().min_by_key(|(_, month)| *month).cloned() else {
            break;
        };
        kept.remove(&oldest);
    }
}

/// The business numbers of each portfolio.
async fn portfolios(state: &AppState) -> Result<HashMap<String, BTreeSet<String>>, ApiError> {
    let mut portfolios: HashMap<String, BTreeSet<String>> = HashMap::new();
    for business in crate::settle::every_business(state).await? {
        let portfolio = state
            .config
            .pricing
            .accounts
            .get_or_default(&business)
            .portfolio
            .to_string();
        portfolios.entry(portfolio).or_default().insert(business);
    }
    Ok(portfolios)
}

/// Reconciles one (portfolio, month) of the numbers `own`, counted in
/// `wameter_reconciliations_total` by who asked (`reconciler`, `view`, or
/// `refresh` for a view's background refresh): its events read back, Meta's
/// template category notices for its WABAs, and the parts of its own
/// business numbers in the month. `states_kept`: the settler keeps
/// months' states (SQLite, as the caller found), so the portfolio's may
/// answer without the events.
async fn reconcile_month(
    state: &Arc<AppState>,
    portfolio: &str,
    own: BTreeSet<String>,
    month: Month,
    states_kept: bool,
    by: &'static str,
) -> Result<Vec<Part>, ApiError> {
    metrics::counter!("wameter_reconciliations_total", "by" => by).increment(1);
    let pricing = &state.config.pricing;
    // Numbers sharing a counter with them are priced together, as the
    // settler prices them.
    let businesses = pricing.with_counter_peers(&own);
    let (since, until) = settle_span(month);
    let wabas: BTreeSet<String> = businesses
        .iter()
        .flat_map(|business| {
            let number = pricing.accounts.get_or_default(business);
            std::iter::once(number.waba.to_string())
                .chain(number.messaging_accounts.iter().map(|a| a.id.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    // Every notice up to the span's end: a re-categorisation from before
    // the month still says which category its sends are priced at.
    let notices = state
        .store
        .notices(
            Some(wabas.into_iter().collect()),
            i64::MIN,
            until.as_microsecond(),
        )
        .await?;
    let notices = wameter_meter::notices_of(&notices);
    // When the settler keeps the month's state (SQLite) and every message
    // agrees with Meta, its charges and verdicts say all: no read of the
    // month's events, no replay (issue 20).
    let key = (portfolio.to_string(), month);
    let scope: BTreeSet<String> = businesses.iter().cloned().collect();
    let kept = state.clone();
    let mine = own.clone();
    let (agreed, notices) = tokio::task::spawn_blocking(move || {
        // Without kept states (PostgreSQL), asking would only wait for
        // the settler's turn.
        if !states_kept {
            return (None, notices);
        }
        // The parts kept are the month's of its own numbers: a charge of
        // the span's edge (another month) or of a peer may differ.
        let wanted = |(business, _, of): &ShareKey| *of == month && mine.contains(&**business);
        let agreed = kept
            .settler
            .with_kept_month(&key, |month_state| {
                month_state.agreement(&scope, &notices, wanted)
            })
            .flatten();
        (agreed, notices)
    })
    .await
    .map_err(|error| ApiError::internal(error.to_string()))?;
    tracing::debug!(
        portfolio,
        month = %month,
        from_kept_state = agreed.is_some(),
        "reconciling"
    );
    if let Some(compared) = agreed {
        metrics::counter!("wameter_reconciliations_from_kept_state_total").increment(1);
        return Ok(compared
            .into_iter()
            .filter(|((business, _, of), _)| *of == month && own.contains(&**business))
            .map(|((business, account, _), compared)| Part {
                business,
                account,
                compared,
                agreements: compared,
                discrepancies: Vec::new(),
                drift: Vec::new(),
            })
            .collect());
    }
    let rows = state
        .store
        .events(EventScope::Businesses {
            businesses: Some(businesses.clone()),
            since_us: since.as_microsecond(),
            until_us: until.as_microsecond(),
            from_id: 0,
        })
        .await?;
    let config = state.config.clone();
    tokio::task::spawn_blocking(move || {
        let loaded = wameter_meter::load(&rows);
        // The lines are parsed: not held through the replays.
        drop(rows);
        let engine = config.pricing.engine();
        let mut result = wameter_core::reconcile::reconcile(&engine, loaded.events, &notices);
        let mut discrepancies: Vec<Option<Discrepancy>> = std::mem::take(&mut result.discrepancies)
            .into_iter()
            .map(Some)
            .collect();
        result
            .shares
            .into_iter()
            .filter(|((business, _, of), _)| *of == month && own.contains(&**business))
            .map(|((business, account, _), share)| Part {
                business,
                account,
                compared: share.compared,
                agreements: share.agreements,
                discrepancies: share
                    .discrepancies
                    .iter()
                    .filter_map(|&index| discrepancies.get_mut(index)?.take())
                    .collect(),
                drift: share.drift,
            })
            .collect()
    })
    .await
    .map_err(|error| ApiError::internal(error.to_string()))
}

/// Meta's template category updates in `months` (or taking effect in
/// them) for the WABAs `token` sees.
async fn updates(state: &AppState, token: &ApiToken, months: &[Month]) -> Result<Table, ApiError> {
    let day = jiff::SignedDuration::from_hours(24);
    let first = months
        .iter()
        .min()
        .map_or(Timestamp::MIN, |m| m.start_utc());
    let last = months
        .iter()
        .max()
        .map_or(Timestamp::MAX, |m| m.next().start_utc());
    let (since, until) = (
        first.checked_sub(day).unwrap_or(Timestamp::MIN),
        last.checked_add(day).unwrap_or(Timestamp::MAX),
    );
    let wabas = match &token.scope {
        crate::auth::Scope::All => None,
        crate::auth::Scope::Wabas(wabas) => Some(wabas.iter().cloned().collect()),
    };
    let lines = state
        .store
        .notices(wabas, i64::MIN, until.as_microsecond())
        .await?;
    let mut table = Table::new(
        "category_updates",
        &["at", "template", "language", "from", "to", "takes effect"],
        &[false, false, false, false, false, false],
    );
    for notice in wameter_meter::notices_of(&lines) {
        let wameter_core::notice::NoticeKind::TemplateCategoryUpdate {
            template,
            previous_category,
            new_category,
            correct_category,
            effective_at,
        } = &notice.kind
        else {
            continue;
        };
        if notice.at.is_some_and(|at| at < since) && effective_at.is_none_or(|at| at < since) {
            continue;
        }
        let text = |v: &Option<Box<str>>| v.as_deref().unwrap_or("").to_string();
        table.rows.push(vec![
            notice.at.map(|at| at.to_string()).unwrap_or_default(),
            text(&template.template_name),
            text(&template.language),
            text(previous_category),
            text(&new_category.clone().or_else(|| correct_category.clone())),
            effective_at
                .or(notice.at)
                .map(|at| at.to_string())
                .unwrap_or_default(),
        ]);
    }
    Ok(table)
}

/// The figures and tables of the parts `token` sees, added up.
fn shown(
    state: &AppState,
    token: &ApiToken,
    parts: &[Arc<Vec<Part>>],
    updates: Table,
) -> Vec<Block> {
    let pricing = &state.config.pricing;
    let seen: Vec<&Part> = parts
        .iter()
        .flat_map(|parts| parts.iter())
        .filter(|part| {
            token
                .scope
                .sees_charge(pricing, &part.business, part.account.as_deref())
        })
        .collect();
    let compared: u64 = seen.iter().map(|part| part.compared).sum();
    let agreements: u64 = seen.iter().map(|part| part.agreements).sum();
    let mut differ: Vec<&Discrepancy> = seen.iter().flat_map(|part| &part.discrepancies).collect();
    differ.sort_by(|a, b| {
        (a.engine.delivered_at, &a.engine.business, &a.message_id).cmp(&(
            b.engine.delivered_at,
            &b.engine.business,
            &b.message_id,
        ))
    });
    let mut discrepancies = Table::new(
        "discrepancies",
        &[
            "message",
            "delivered",
            "Meta says",
            "wameter says",
            "amount",
            "cause",
        ],
        &[false, false, false, false, true, false],
    );
    for d in &differ {
        discrepancies.rows.push(vec![
            d.message_id.to_string(),
            d.engine.delivered_at.to_string(),
            format!(
                "{} {}{}",
                d.meta.pricing.category,
                d.meta.pricing.pricing_type.as_deref().unwrap_or(""),
                d.meta
                    .pricing
                    .billable
                    .map(|b| if b { " billable" } else { " free" })
                    .unwrap_or("")
            ),
            format!(
                "{} {}{}",
                d.engine.category.as_str(),
                d.engine.pricing_type.as_str(),
                if d.engine.billable {
                    " billable"
                } else {
                    " free"
                }
            ),
            format!(
                "{} {}",
                d.engine.amount.normalize(),
                d.engine.currency.code()
            ),
            d.cause.clone(),
        ]);
    }
    // Each template line of every part seen, added up as the core adds
    // them for a whole log.
    let mut lines: BTreeMap<_, CategoryDrift> = BTreeMap::new();
    for part in seen.iter().flat_map(|part| &part.drift) {
        lines
            .entry(part.key())
            .or_insert_with(|| CategoryDrift {
                messages: 0,
                amount_as_sent: Decimal::ZERO,
                amount_as_priced: Decimal::ZERO,
                ..part.clone()
            })
            .add(part);
    }
    let mut drift = Table::new(
        "drift",
        &[
            "template",
            "sent as",
            "priced as",
            "messages",
            "as sent",
            "as priced",
            "impact",
            "currency",
        ],
        &[false, false, false, true, true, true, true, false],
    );
    for line in lines.values() {
        drift.rows.push(vec![
            line.template.to_string(),
            line.sent_as.as_str().to_string(),
            line.priced_as.as_str().to_string(),
            line.messages.to_string(),
            line.amount_as_sent.normalize().to_string(),
            line.amount_as_priced.normalize().to_string(),
            line.impact().normalize().to_string(),
            line.currency.code().to_string(),
        ]);
    }
    vec![
        Block::Figures(vec![
            ("compared with Meta's pricing".into(), compared.to_string()),
            ("agree".into(), agreements.to_string()),
            ("differ".into(), differ.len().to_string()),
        ]),
        Block::Heading("Where Meta's pricing and wameter's differ".into()),
        Block::Table(discrepancies),
        Block::Heading("Templates Meta re-categorised, and what it cost".into()),
        Block::Table(drift),
        Block::Heading("Meta's template category updates".into()),
        Block::Table(updates),
    ]
}
