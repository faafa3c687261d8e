//! The settler: keeps the charges the store holds in step with its events.
//!
//! Every write of new events leaves marks naming the (business, month)
//! pairs it may have changed ([`wameter_store::settled`]). The settler
//! lists them, groups them into (portfolio, month) jobs — a portfolio's
//! businesses share the monthly volume-tier counter, so they are priced
//! together — and has the engine re-price each job's month from its
//! events. It runs in the background (every [`SETTLE_EVERY`] while rounds
//! are quick, resting [`BUSY_SHARE`] times a round's length when they are
//! not), and a charge query first settles what is pending, so it always
//! answers for every event stored before it was asked.
//!
//! On SQLite (one process owns the file) the settler keeps each month's
//! engine state ([`MonthState`]) between rounds: a round reads only the
//! events stored since the marks it takes and writes only the charges that
//! changed, so its cost follows the new events, not the month's. The first
//! round of a month in a process settles it whole. On PostgreSQL several
//! processes may settle the same month, and a state one of them kept could
//! miss what another took, so months are settled whole there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use wameter_core::settlement::{Month, settle_span};
use wameter_store::{SettleJob, StoreError, UnsettledMark};

use crate::AppState;
use crate::Pricing;
use wameter_meter::{self as meter, MonthState};

/// How often the background settler looks for marks.
pub const SETTLE_EVERY: Duration = Duration::from_millis(500);

/// Marks taken in one round at most (the rest wait for the next round).
const MARKS_PER_ROUND: i64 = 100_000;

/// Bumped whenever a change to the engine changes what it charges, or to
/// how charges are kept (3: typed columns, migration `V9`; 4: whether a
/// charge opened a conversation and its instant's nanoseconds, `V10`), so
/// charges kept by an older build are settled again on upgrade.
const SETTLEMENT_REVISION: u32 = 4;

/// Serialises settling within the process: the background loop and charge
/// queries take turns. (Processes sharing a PostgreSQL database take turns
/// per month on a database lock; see `PostgresStore::settle`.)
#[derive(Default)]
pub struct Settler {
    turn: tokio::sync::Mutex<()>,
    /// Months' engine states kept between rounds (SQLite only), with when
    /// each was last used.
    months: std::sync::Mutex<HashMap<(String, Month), (MonthState, u64)>>,
    rounds: std::sync::atomic::AtomicU64,
    /// Bumped after every round that changed kept charges: what the
    /// budgets' spend caches are keyed by.
    generation: std::sync::atomic::AtomicU64,
    /// The generation each (portfolio, `YYYY-MM`) was last settled at by
    /// this process: what the dashboard's kept rows are keyed by.
    settled_at: std::sync::Mutex<HashMap<(String, String), u64>>,
}

/// Months whose engine state a process keeps at most: the least recently
/// settled goes first. Live traffic touches a portfolio's current month,
/// and its previous one for a few days.
pub const MONTHS_KEPT: usize = 32;

/// Stored events the kept months hold at most, together: past it the least
/// recently settled months go (and are settled whole when next marked).
/// The states' memory grows with their events (docs/PERFORMANCE.md).
pub const EVENTS_KEPT: usize = 1_500_000;

impl Settler {
    fn take_month(&self, key: &(String, Month)) -> Option<MonthState> {
        self.months.lock().ok()?.remove(key).map(|(state, _)| state)
    }

    fn keep_month(&self, key: (String, Month), state: MonthState) {
        let round = self
            .rounds
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let Ok(mut months) = self.months.lock() else {
            return;
        };
        months.insert(key, (state, round));
        while months.len() > MONTHS_KEPT
            || (months.len() > 1
                && months
                    .values()
                    .map(|(state, _)| state.events())
                    .sum::<usize>()
                    > EVENTS_KEPT)
        {
            let Some(oldest) = months
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            months.remove(&oldest);
        }
    }

    /// Runs `f` on the state kept for a (portfolio, month), if one is kept,
    /// between two settle rounds (during one, the month's state may be out
    /// being settled). Blocks: call it off the runtime
    /// (`spawn_blocking`). The settler waits for `f`: keep it short.
    pub fn with_kept_month<R>(
        &self,
        key: &(String, Month),
        f: impl FnOnce(&MonthState) -> R,
    ) -> Option<R> {
        let _turn = self.turn.blocking_lock();
        let months = self.months.lock().ok()?;
        months.get(key).map(|(state, _)| f(state))
    }

    /// How many rounds have changed the kept charges so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The generation at which this process last settled a (portfolio,
    /// month); 0 if it has not since it started. Kept charges of the pair
    /// read after this answered are at least that new.
    pub fn settled_at(&self, portfolio: &str, month: &str) -> u64 {
        crate::lock(&self.settled_at)
            .get(&(portfolio.to_string(), month.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// What the kept charges depend on besides events: the accounts, rate
/// cards, tiers and engine. Stored beside them; a change re-settles all.
pub fn fingerprint(pricing: &Pricing) -> String {
    use sha2::{Digest, Sha256};
    let described = format!(
        "wameter {} settlement {SETTLEMENT_REVISION}\n{:?}\n{:?}\n{:?}",
        env!("CARGO_PKG_VERSION"),
        pricing.accounts,
        pricing.rates,
        pricing.tiers
    );
    hex::encode(Sha256::digest(described.as_bytes()))
}

/// Rounds a question settles at most before it is answered (each of up to
/// `MARKS_PER_ROUND` marks): enough for millions of stored events, and a
/// bound should ingestion outrun settling.
const ROUNDS_BEFORE_ANSWERING: usize = 64;

/// Settles everything stored so far before a question is answered: rounds
/// until one finds fewer marks than a round takes (so the marks written
/// before the call are all settled), at most [`ROUNDS_BEFORE_ANSWERING`].
/// Returns how many (portfolio, month) jobs it ran.
pub async fn settle_pending(state: &AppState) -> Result<usize, StoreError> {
    let mut jobs = 0;
    for _ in 0..ROUNDS_BEFORE_ANSWERING {
        let (ran, marks) = settle_round(state).await?;
        jobs += ran;
        if marks < MARKS_PER_ROUND as usize {
            break;
        }
    }
    Ok(jobs)
}

/// Settles the months marked so far (one round, up to `MARKS_PER_ROUND`
/// marks). Returns how many (portfolio, month) jobs it ran and how many
/// marks it took.
async fn settle_round(state: &AppState) -> Result<(usize, usize), StoreError> {
    let _turn = state.settler.turn.lock().await;
    let marks = state.store.unsettled(MARKS_PER_ROUND).await?;
    if marks.is_empty() {
        return Ok((0, 0));
    }
    let everyone = if marks.iter().any(|mark| mark.business.is_empty()) {
        every_business(state).await?
    } else {
        BTreeSet::new()
    };
    // Every event up to it is visible to this round's reads (SQLite).
    let committed = state.store.committed_event_id().await?;
    let jobs = plan(&state.config.pricing, &marks, &everyone);
    let count = jobs.len();
    let keep_state = committed.is_some();
    for (mut job, businesses, month) in jobs {
        let settled_key = (job.portfolio.clone(), job.month.clone());
        let config = state.config.clone();
        let key = (job.portfolio.clone(), month);
        let kept = if keep_state {
            state.settler.take_month(&key)
        } else {
            None
        };
        match &kept {
            // Not below what the month's state has read through already.
            Some(kept) => {
                job.from_event_id = job
                    .from_event_id
                    .map(|from| from.max(kept.read_through() + 1))
            }
            None => job.from_event_id = None,
        }
        let slot = Arc::new(std::sync::Mutex::new(None));
        let back = slot.clone();
        state
            .store
            .settle(job, move |rows| {
                let engine = config.pricing.engine();
                let now = jiff::Timestamp::now();
                if !keep_state {
                    let loaded = meter::load(&rows);
                    // The lines are parsed: not held while the month is priced.
                    drop(rows);
                    return meter::settle_month(&engine, loaded, &businesses, month, now);
                }
                let whole = kept.is_none();
                let started = std::time::Instant::now();
                let read = rows.len();
                let mut month_state = kept.unwrap_or_else(|| MonthState::new(&engine));
                let settled = month_state.settle(&engine, rows, &businesses, month, now, whole);
                month_state.read_up_to(committed.unwrap_or(0));
                tracing::debug!(month = %month, whole, read, charges = settled.charges.len(), elapsed_ms = started.elapsed().as_millis() as u64, "settled");
                if let Ok(mut slot) = back.lock() {
                    *slot = Some(month_state);
                }
                settled
            })
            .await?;
        // Kept only once its round is written: a failed round's state is
        // ahead of the store, and the month is settled whole next time.
        if let Some(month_state) = slot.lock().ok().and_then(|mut slot| slot.take()) {
            state.settler.keep_month(key, month_state);
        }
        let generation = state
            .settler
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        crate::lock(&state.settler.settled_at).insert(settled_key, generation);
    }
    Ok((count, marks.len()))
}

/// Every business phone number the store has contacts of or the accounts
/// file names.
pub async fn every_business(state: &AppState) -> Result<BTreeSet<String>, StoreError> {
    let mut all: BTreeSet<String> = state.store.businesses().await?.into_iter().collect();
    all.extend(
        state
            .config
            .pricing
            .accounts
            .businesses()
            .map(|b| b.phone_number_id.to_string()),
    );
    Ok(all)
}

/// Groups marks into (portfolio, month) jobs, each with the businesses to
/// read and the marks it clears. A mark naming no business (a status with
/// neither business nor recipient) stands for `everyone`; it is cleared by
/// the last job only, so a failure half-way leaves it for the next round.
pub fn plan(
    pricing: &Pricing,
    marks: &[UnsettledMark],
    everyone: &BTreeSet<String>,
) -> Vec<(SettleJob, BTreeSet<String>, Month)> {
    let mut jobs: BTreeMap<(String, Month), (BTreeSet<String>, Vec<i64>)> = BTreeMap::new();
    let mut for_everyone = Vec::new();
    for mark in marks {
        let Some(month) = Month::parse(&mark.month) else {
            // Not written by this version; clear it with the next job.
            for_everyone.push(mark.id);
            continue;
        };
        let named;
        let businesses: &BTreeSet<String> = if mark.business.is_empty() {
            for_everyone.push(mark.id);
            everyone
        } else {
            named = BTreeSet::from([mark.business.clone()]);
            &named
        };
        for business in businesses {
            let portfolio = pricing
                .accounts
                .get_or_default(business)
                .portfolio
                .to_string();
            let job = jobs.entry((portfolio, month)).or_default();
            if !job.0.contains(business) {
                job.0
                    .extend(pricing.with_counter_peers(&BTreeSet::from([business.clone()])));
            }
            if !mark.business.is_empty() {
                job.1.push(mark.id);
            }
        }
    }
    let last = jobs.len().saturating_sub(1);
    let first_event: HashMap<i64, i64> = marks
        .iter()
        .map(|mark| (mark.id, mark.first_event_id))
        .collect();
    let everyone_ids = for_everyone.clone();
    jobs.into_iter()
        .enumerate()
        .map(|(index, ((portfolio, month), (businesses, mut ids)))| {
            if index == last {
                ids.append(&mut for_everyone);
            }
            let (since, until) = settle_span(month);
            // A round with the month's state reads from the first event of
            // the writes behind its marks, and of those naming no business.
            let from = ids
                .iter()
                .chain(&everyone_ids)
                .filter_map(|id| first_event.get(id))
                .min()
                .copied()
                .unwrap_or(0);
            let job = SettleJob {
                portfolio,
                month: month.to_string(),
                businesses: businesses.iter().cloned().collect(),
                since_us: since.as_microsecond(),
                until_us: until.as_microsecond(),
                marks: ids,
                from_event_id: Some(from),
            };
            (job, businesses, month)
        })
        .collect()
}

/// Settles in the background until the process ends. Failures are logged
/// and retried next round: the marks stay until a settle succeeds.
///
/// The pause after a round is [`BUSY_SHARE`] times as long as the round
/// took (at least [`SETTLE_EVERY`]), so the background settler takes at
/// most about half of the machine from ingestion under heavy load. Queries
/// do not wait for it: they settle what is pending themselves.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            let started = std::time::Instant::now();
            // Settling writes the kept charges: its outcome says whether
            // the store writes (`/healthz`) as much as a webhook's does.
            let outcome = settle_round(&state).await.map(|(jobs, _)| jobs);
            if !matches!(outcome, Ok(0)) {
                state.store_health.wrote(&outcome);
            }
            if let Err(error) = outcome {
                tracing::warn!(message = "Settling charges failed; will retry.", error = %error);
            }
            tokio::time::sleep(SETTLE_EVERY.max(started.elapsed() * BUSY_SHARE)).await;
        }
    });
}

/// The background settler rests this many times as long as its last round.
/// It was 4 while rounds re-priced whole months; now that a round costs
/// the events it reads (its findings kept up, not recounted), resting as
/// long as it worked left 0.24 s of backlog after a flat-out minute
/// instead of 1.7-2.5 s, for ingestion within this machine's noise
/// (docs/PERFORMANCE.md).
pub const BUSY_SHARE: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use wameter_core::market::MarketTable;

    fn pricing() -> Pricing {
        let accounts = wameter_log::parse_accounts(
            "accounts.toml",
            r#"
[[business]]
phone_number_id = "A1"
waba = "W1"
portfolio = "P"
[[business]]
phone_number_id = "A2"
waba = "W2"
portfolio = "P"
"#,
        )
        .unwrap();
        Pricing {
            accounts,
            rates: Default::default(),
            tiers: Default::default(),
            markets: MarketTable::builtin(),
            call_rates: Default::default(),
        }
    }

    fn mark(id: i64, business: &str, month: &str) -> UnsettledMark {
        UnsettledMark {
            id,
            business: business.into(),
            month: month.into(),
            first_event_id: id * 10,
        }
    }

    #[test]
    fn marks_group_into_portfolio_months_and_unnamed_ones_clear_last() {
        let marks = [
            mark(1, "A1", "2025-07"),
            mark(2, "A2", "2025-07"),
            mark(3, "B", "2025-07"),
            mark(4, "", "2025-08"),
            mark(5, "A1", "2025-08"),
        ];
        let everyone = BTreeSet::from(["A1".to_string(), "A2".to_string(), "B".to_string()]);
        let jobs = plan(&pricing(), &marks, &everyone);
        let summary: Vec<(String, String, Vec<String>, Vec<i64>)> = jobs
            .iter()
            .map(|(job, ..)| {
                (
                    job.portfolio.clone(),
                    job.month.clone(),
                    job.businesses.clone(),
                    job.marks.clone(),
                )
            })
            .collect();
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            summary,
            vec![
                ("B".into(), "2025-07".into(), strings(&["B"]), vec![3]),
                ("B".into(), "2025-08".into(), strings(&["B"]), vec![]),
                (
                    "P".into(),
                    "2025-07".into(),
                    strings(&["A1", "A2"]),
                    vec![1, 2]
                ),
                (
                    "P".into(),
                    "2025-08".into(),
                    strings(&["A1", "A2"]),
                    vec![5, 4]
                ),
            ]
        );
        let (since, until) = (jobs[2].0.since_us, jobs[2].0.until_us);
        assert_eq!((since, until), {
            let (s, u) = settle_span(Month::parse("2025-07").unwrap());
            (s.as_microsecond(), u.as_microsecond())
        });
    }
}
