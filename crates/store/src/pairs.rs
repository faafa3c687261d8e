//! Recent events of the (business, user) pairs the guard asks about, kept
//! in memory so a guarded send reads no rows (SQLite only).
//!
//! A guarded send needs its pair's events of the last days: the window
//! check and the estimate replay them. Read from the database, that is the
//! guard's second-slowest step (docs/PERFORMANCE.md). SQLite has one writer
//! and it is in this process, so a copy kept in memory can be kept exact:
//! the writer hands every event it commits to [`PairCache::committed`]
//! before it answers anyone, so whatever was acknowledged is in the copy.
//! PostgreSQL may have other processes writing, and is always read.
//!
//! A copy is loaded from the database on a pair's first send
//! ([`PairCache::insert`]). A commit can land between the load's snapshot
//! and its insertion, so the cache numbers commits and keeps the rows of
//! the last few hundred: a load takes from them the rows of every commit
//! handed over since it began. Row ids ascend with commits, so a row its
//! snapshot already held is recognised and not added twice. A load older
//! than the commits kept is not kept (the next send loads again). A row
//! that joins rows stored before it (a send stored after its statuses)
//! drops the copies it belongs to, which then load afresh. Until the first
//! load the writer collects nothing, so a server without the guard pays
//! nothing for the cache.
//!
//! Answers are exactly those of the database query
//! ([`crate::EventScope::Contact`]): the pair's own events from `since`
//! on, the statuses of its sends in that span and the sends of its statuses
//! in that span, halves joined only within one business
//! ([`crate::record::same_business`]). A copy holds a superset (its rows from an earlier `since`,
//! and every status or send joined to its rows by message id) and the
//! same filter runs over it. A test in `sqlite.rs` compares both answers
//! after random writes.

use std::collections::VecDeque;

// foldhash: keys are ids and numbers from stored events, and no answer
// depends on the order of a table (eviction sorts by last use). SipHash
// was a seventh of the guard's read step (docs/PERFORMANCE.md).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::record::{EventRecord, StoredEvent, same_business};

/// Pairs kept at most; past it the least recently asked-about eighth goes.
pub const PAIRS_KEPT_MAX: usize = 65_536;

/// How far back of the asked `since` a copy may start before it is loaded
/// afresh: bounds a copy to the look-back plus this.
const STALE_US: i64 = 3_600 * 1_000_000;

/// What kind of event a row holds (the `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A user's message or call.
    Inbound,
    /// A business's send.
    Outbound,
    /// A delivery status.
    Status,
    /// A call (it may open the window, as a user's message does).
    Call,
    /// Meta Business Agent tokens.
    AgentUsage,
}

impl Kind {
    /// From the `kind` column.
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "inbound" => Some(Kind::Inbound),
            "outbound" => Some(Kind::Outbound),
            "status" => Some(Kind::Status),
            "call" => Some(Kind::Call),
            "agent_usage" => Some(Kind::AgentUsage),
            _ => None,
        }
    }
}

/// One stored event with the columns the pair filter needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairRow {
    /// Row id.
    pub id: i64,
    /// Its kind.
    pub kind: Kind,
    /// Business phone number id, as stored.
    pub business: Option<String>,
    /// User, as stored.
    pub user: Option<String>,
    /// The wamid, if any.
    pub message_id: Option<String>,
    /// When it happened, UNIX microseconds.
    pub at_us: i64,
    /// The canonical line.
    pub line: std::sync::Arc<str>,
    /// Set by the writer on a row it just stored: the other half of its
    /// message (a status of this send, the send of this status) was stored
    /// before it. A copy this row joins may lack those earlier rows, which
    /// the query now returns with it, so such a copy is dropped and loaded
    /// afresh.
    pub joins_stored: bool,
}

impl PairRow {
    /// The row of an event record stored under `id`.
    pub fn of_record(id: i64, record: &EventRecord, joins_stored: bool) -> Option<PairRow> {
        Some(PairRow {
            id,
            kind: Kind::parse(record.kind)?,
            business: record.business.clone(),
            user: record.user.clone(),
            message_id: record.message_id.clone(),
            at_us: record.at_us,
            line: std::sync::Arc::from(record.line.as_str()),
            joins_stored,
        })
    }

    fn names(&self, pair: &Pair) -> bool {
        self.business.as_deref() == Some(&pair.0) && self.user.as_deref() == Some(&pair.1)
    }
}

/// (business phone number id, user).
type Pair = (String, String);

struct Kept {
    /// The `since` it was loaded for.
    since_us: i64,
    /// Sorted by id.
    rows: Vec<PairRow>,
    /// Message ids of its sends and of its statuses: a new status or send
    /// with one of them belongs in the copy.
    sends: HashSet<String>,
    statuses: HashSet<String>,
    /// When it was last asked about (the cache's tick).
    used: u64,
}

impl Kept {
    fn add(&mut self, row: PairRow) {
        if let Some(id) = &row.message_id {
            match row.kind {
                Kind::Outbound => drop(self.sends.insert(id.clone())),
                Kind::Status => drop(self.statuses.insert(id.clone())),
                Kind::Inbound | Kind::Call | Kind::AgentUsage => {}
            }
        }
        self.rows.push(row);
    }

    /// Whether a newly committed row is one a query of this pair may need.
    /// Every send and status of a copy is its business's (module docs), so
    /// a joining row must be that business's too ([`same_business`]).
    fn wants(&self, pair: &Pair, row: &PairRow) -> bool {
        row.names(pair)
            || same_business(row.business.as_deref(), Some(&pair.0))
                && match (&row.message_id, row.kind) {
                    (Some(id), Kind::Status) => self.sends.contains(id),
                    (Some(id), Kind::Outbound) => self.statuses.contains(id),
                    _ => false,
                }
    }
}

/// Answers the pair query over a superset of its rows (module docs).
pub fn filter(rows: &[PairRow], business: &str, user: &str, since_us: i64) -> Vec<StoredEvent> {
    // The instant first: most rows a copy holds and the query leaves out
    // are older, and comparing it is cheaper than the ids.
    let selected = |row: &PairRow| {
        row.at_us >= since_us
            && row.business.as_deref() == Some(business)
            && row.user.as_deref() == Some(user)
    };
    let chosen: Vec<bool> = rows.iter().map(selected).collect();
    let mut sends = HashSet::with_capacity_and_hasher(rows.len(), Default::default());
    let mut statuses = HashSet::with_capacity_and_hasher(rows.len(), Default::default());
    for (row, _) in rows.iter().zip(&chosen).filter(|(_, chosen)| **chosen) {
        match (row.kind, &row.message_id) {
            (Kind::Outbound, Some(id)) => drop(sends.insert(id.as_str())),
            (Kind::Status, Some(id)) => drop(statuses.insert(id.as_str())),
            _ => {}
        }
    }
    // The selected halves are all the pair's business's: what joins them
    // must be too.
    rows.iter()
        .zip(chosen)
        .filter(|(row, chosen)| {
            *chosen
                || same_business(row.business.as_deref(), Some(business))
                    && match (row.kind, row.message_id.as_deref()) {
                        (Kind::Status, Some(id)) => sends.contains(id),
                        (Kind::Outbound, Some(id)) => statuses.contains(id),
                        _ => false,
                    }
        })
        .map(|(row, _)| StoredEvent {
            id: row.id,
            line: row.line.clone(),
        })
        .collect()
}

/// Commits whose rows are kept for loads that raced them.
const RECENT_COMMITS_MAX: usize = 256;

#[derive(Default)]
struct Inner {
    /// Commits handed over so far.
    commits: u64,
    /// The rows of the last commits, oldest first: a load that began
    /// before them takes what it needs from here (it cannot tell which of
    /// them its snapshot saw, and need not: see `Inner::add`). `None`: the
    /// writer did not collect that commit's rows (the cache was not in use
    /// yet), so a load that raced it cannot be kept.
    recent: VecDeque<Option<Vec<PairRow>>>,
    /// Asks so far: the clock of `Kept::used`.
    tick: u64,
    copies: HashMap<Pair, Kept>,
    /// Message id → the pairs whose copies hold a send or status of it, so
    /// a commit finds the copies its rows join without looking at all.
    by_message: HashMap<String, Vec<Pair>>,
}

impl Inner {
    fn add(&mut self, pair: &Pair, row: PairRow) {
        let Some(copy) = self.copies.get_mut(pair) else {
            return;
        };
        // A copy loaded after this commit became visible already holds
        // its rows; ids ascend, so the last one tells.
        if copy.rows.last().is_some_and(|last| last.id >= row.id) {
            return;
        }
        // Sends and statuses only: those are what joins rows, and what
        // `remove` unregisters.
        if let (Some(id), Kind::Outbound | Kind::Status) = (&row.message_id, row.kind) {
            let pairs = self.by_message.entry(id.clone()).or_default();
            if !pairs.contains(pair) {
                pairs.push(pair.clone());
            }
        }
        copy.add(row);
    }

    /// Takes a committed row into the pair's copy if it needs it.
    fn take(&mut self, pair: &Pair, row: &PairRow) {
        let Some(copy) = self.copies.get(pair).filter(|copy| copy.wants(pair, row)) else {
            return;
        };
        // A status whose send the copy holds needs nothing more; any other
        // row joining earlier ones may need rows the copy lacks.
        let complete = !row.joins_stored
            || (row.kind == Kind::Status
                && row
                    .message_id
                    .as_ref()
                    .is_some_and(|id| copy.sends.contains(id)));
        if complete {
            self.add(pair, row.clone());
        } else {
            self.remove(pair);
        }
    }

    fn remove(&mut self, pair: &Pair) {
        let Some(copy) = self.copies.remove(pair) else {
            return;
        };
        for id in copy.sends.iter().chain(&copy.statuses) {
            if let Some(pairs) = self.by_message.get_mut(id) {
                pairs.retain(|p| p != pair);
                if pairs.is_empty() {
                    self.by_message.remove(id);
                }
            }
        }
    }
}

/// The kept copies (module docs).
#[derive(Default)]
pub struct PairCache {
    inner: Mutex<Inner>,
    /// Set by the first load: until then the writer spends nothing on the
    /// cache (a server without the guard never loads a pair).
    in_use: AtomicBool,
}

/// Where a load stands: the commit count when it began.
#[derive(Clone, Copy, Debug)]
pub struct LoadTicket(u64);

impl PairCache {
    /// The pair's events from `since_us` on, if a copy covers them.
    pub fn get(&self, business: &str, user: &str, since_us: i64) -> Option<Vec<StoredEvent>> {
        let mut inner = self.inner.lock().expect("pair cache lock");
        inner.tick += 1;
        let tick = inner.tick;
        let pair = (business.to_string(), user.to_string());
        let copy = inner.copies.get_mut(&pair)?;
        if since_us < copy.since_us || since_us - copy.since_us > STALE_US {
            // Loaded for a later start (cannot answer), or for one so much
            // earlier that it holds an hour of rows nobody asks for.
            inner.remove(&pair);
            return None;
        }
        copy.used = tick;
        Some(filter(&copy.rows, business, user, since_us))
    }

    /// Taken before a load's database read begins.
    pub fn ticket(&self) -> LoadTicket {
        self.in_use.store(true, Ordering::Relaxed);
        LoadTicket(self.inner.lock().expect("pair cache lock").commits)
    }

    /// Whether the writer should collect the rows it commits for
    /// [`PairCache::committed`]: only once a pair was loaded. (Which way a
    /// commit racing the first load goes does not matter: one committed
    /// without its rows makes that load not kept.)
    pub fn in_use(&self) -> bool {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Keeps a load (rows sorted by id). Commits handed over since
    /// `ticket` may be missing from it; their rows are taken from the
    /// recent ones, and when those no longer reach back that far the load
    /// is not kept (the next send loads again).
    pub fn insert(
        &self,
        ticket: LoadTicket,
        business: &str,
        user: &str,
        since_us: i64,
        rows: Vec<PairRow>,
    ) {
        let mut inner = self.inner.lock().expect("pair cache lock");
        let missed = (inner.commits - ticket.0) as usize;
        let first = match inner.recent.len().checked_sub(missed) {
            Some(first) if inner.recent.range(first..).all(Option::is_some) => first,
            _ => return,
        };
        let pair = (business.to_string(), user.to_string());
        inner.remove(&pair);
        if inner.copies.len() >= PAIRS_KEPT_MAX {
            evict(&mut inner);
        }
        let copy = Kept {
            since_us,
            rows: Vec::with_capacity(rows.len()),
            sends: HashSet::default(),
            statuses: HashSet::default(),
            used: inner.tick,
        };
        inner.copies.insert(pair.clone(), copy);
        for row in rows {
            inner.add(&pair, row);
        }
        let raced: Vec<PairRow> = inner
            .recent
            .range(first..)
            .flatten()
            .flatten()
            .cloned()
            .collect();
        for row in &raced {
            inner.take(&pair, row);
        }
    }

    /// Hands over the rows of one commit (ids ascending), before anyone is
    /// told it committed; `None` when the writer did not collect them
    /// (not [`PairCache::in_use`] when it began).
    pub fn committed(&self, rows: Option<Vec<PairRow>>) {
        let mut inner = self.inner.lock().expect("pair cache lock");
        inner.commits += 1;
        if rows.is_none() {
            // A load may have been kept meanwhile: it cannot be followed.
            inner.copies.clear();
            inner.by_message.clear();
        }
        for row in rows.iter().flatten() {
            if inner.copies.is_empty() {
                break;
            }
            let mut pairs: Vec<Pair> = Vec::new();
            if let (Some(business), Some(user)) = (&row.business, &row.user) {
                pairs.push((business.clone(), user.clone()));
            }
            if let Some(id) = &row.message_id {
                pairs.extend(inner.by_message.get(id).into_iter().flatten().cloned());
            }
            pairs.sort();
            pairs.dedup();
            for pair in pairs {
                inner.take(&pair, row);
            }
        }
        if inner.recent.len() == RECENT_COMMITS_MAX {
            inner.recent.pop_front();
        }
        inner.recent.push_back(rows);
    }

    /// Pairs kept (for tests and the debug log).
    pub fn len(&self) -> usize {
        self.inner.lock().expect("pair cache lock").copies.len()
    }

    /// Whether no pair is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the least recently asked-about eighth of the copies.
fn evict(inner: &mut Inner) {
    let mut used: Vec<(u64, Pair)> = inner
        .copies
        .iter()
        .map(|(pair, copy)| (copy.used, pair.clone()))
        .collect();
    used.sort_unstable();
    for (_, pair) in used.into_iter().take(inner.copies.len() / 8 + 1) {
        inner.remove(&pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        id: i64,
        kind: Kind,
        pair: Option<(&str, &str)>,
        message: Option<&str>,
        at_us: i64,
    ) -> PairRow {
        PairRow {
            id,
            kind,
            business: pair.map(|p| p.0.to_string()),
            user: pair.map(|p| p.1.to_string()),
            message_id: message.map(str::to_string),
            at_us,
            line: format!("line {id}").into(),
            joins_stored: false,
        }
    }

    fn ids(events: &[StoredEvent]) -> Vec<i64> {
        events.iter().map(|event| event.id).collect()
    }

    const PAIR: Option<(&str, &str)> = Some(("b", "+1"));

    #[test]
    fn the_filter_joins_sends_and_statuses_across_the_start() {
        let rows = vec![
            row(1, Kind::Outbound, PAIR, Some("old"), 10),
            row(2, Kind::Status, PAIR, Some("old"), 50),
            row(3, Kind::Inbound, PAIR, None, 60),
            row(4, Kind::Outbound, PAIR, Some("new"), 70),
            // A status naming no pair, of a send in range.
            row(5, Kind::Status, None, Some("new"), 80),
            // Another pair's events.
            row(6, Kind::Inbound, Some(("b", "+2")), None, 90),
            row(7, Kind::Status, None, Some("elsewhere"), 90),
        ];
        // From 40: the old send comes along with its status in range.
        assert_eq!(ids(&filter(&rows, "b", "+1", 40)), vec![1, 2, 3, 4, 5]);
        // From 65: only the new send and its status.
        assert_eq!(ids(&filter(&rows, "b", "+1", 65)), vec![4, 5]);
    }

    #[test]
    fn a_load_takes_the_commits_it_raced() {
        let cache = PairCache::default();
        // Its snapshot did not see the commit.
        let ticket = cache.ticket();
        cache.committed(Some(vec![row(9, Kind::Inbound, PAIR, None, 100)]));
        cache.insert(
            ticket,
            "b",
            "+1",
            0,
            vec![row(1, Kind::Inbound, PAIR, None, 10)],
        );
        assert_eq!(ids(&cache.get("b", "+1", 0).unwrap()), vec![1, 9]);
        // Its snapshot saw it: no row twice.
        let ticket = cache.ticket();
        cache.committed(Some(vec![row(10, Kind::Inbound, PAIR, None, 110)]));
        cache.insert(
            ticket,
            "b",
            "+1",
            0,
            vec![
                row(1, Kind::Inbound, PAIR, None, 10),
                row(9, Kind::Inbound, PAIR, None, 100),
                row(10, Kind::Inbound, PAIR, None, 110),
            ],
        );
        assert_eq!(ids(&cache.get("b", "+1", 0).unwrap()), vec![1, 9, 10]);
    }

    #[test]
    fn a_load_that_raced_an_uncollected_commit_is_not_kept() {
        let cache = PairCache::default();
        assert!(
            !cache.in_use(),
            "the writer collects nothing until a pair is loaded"
        );
        let ticket = cache.ticket();
        assert!(cache.in_use());
        cache.committed(None);
        cache.insert(
            ticket,
            "b",
            "+1",
            0,
            vec![row(1, Kind::Inbound, PAIR, None, 10)],
        );
        assert!(cache.get("b", "+1", 0).is_none());
        // A copy kept before such a commit is dropped by it.
        cache.insert(
            cache.ticket(),
            "b",
            "+1",
            0,
            vec![row(1, Kind::Inbound, PAIR, None, 10)],
        );
        cache.committed(None);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_load_older_than_the_recent_commits_is_not_kept() {
        let cache = PairCache::default();
        let ticket = cache.ticket();
        for id in 0..=RECENT_COMMITS_MAX as i64 {
            cache.committed(Some(vec![row(
                100 + id,
                Kind::Inbound,
                Some(("b", "+2")),
                None,
                100,
            )]));
        }
        cache.insert(
            ticket,
            "b",
            "+1",
            0,
            vec![row(1, Kind::Inbound, PAIR, None, 10)],
        );
        assert!(
            cache.get("b", "+1", 0).is_none(),
            "a commit it may have missed is forgotten"
        );
    }

    #[test]
    fn commits_reach_the_copies_that_need_them() {
        let cache = PairCache::default();
        cache.insert(
            cache.ticket(),
            "b",
            "+1",
            0,
            vec![row(1, Kind::Outbound, PAIR, Some("m"), 10)],
        );
        cache.committed(Some(vec![
            row(2, Kind::Status, None, Some("m"), 20),
            row(3, Kind::Status, None, Some("other"), 20),
            row(4, Kind::Inbound, Some(("b", "+2")), None, 20),
            row(5, Kind::Inbound, PAIR, None, 30),
        ]));
        assert_eq!(ids(&cache.get("b", "+1", 0).unwrap()), vec![1, 2, 5]);
        // A commit the copy already holds (loaded after it was visible).
        cache.committed(Some(vec![row(5, Kind::Inbound, PAIR, None, 30)]));
        assert_eq!(ids(&cache.get("b", "+1", 0).unwrap()), vec![1, 2, 5]);
    }

    #[test]
    fn a_send_stored_after_its_statuses_drops_the_copy() {
        let cache = PairCache::default();
        cache.insert(
            cache.ticket(),
            "b",
            "+1",
            0,
            vec![row(1, Kind::Inbound, PAIR, None, 10)],
        );
        // Its status (naming no pair) was stored earlier, before the copy
        // could know it belonged.
        cache.committed(Some(vec![PairRow {
            joins_stored: true,
            ..row(5, Kind::Outbound, PAIR, Some("m"), 20)
        }]));
        assert!(cache.get("b", "+1", 0).is_none());
        // A status whose send the copy holds joins it.
        cache.insert(
            cache.ticket(),
            "b",
            "+1",
            0,
            vec![row(5, Kind::Outbound, PAIR, Some("m"), 20)],
        );
        cache.committed(Some(vec![PairRow {
            joins_stored: true,
            ..row(6, Kind::Status, None, Some("m"), 30)
        }]));
        assert_eq!(ids(&cache.get("b", "+1", 0).unwrap()), vec![5, 6]);
    }

    #[test]
    fn a_copy_answers_only_starts_it_covers() {
        let cache = PairCache::default();
        cache.insert(
            cache.ticket(),
            "b",
            "+1",
            1_000,
            vec![row(1, Kind::Inbound, PAIR, None, 2_000)],
        );
        assert!(
            cache.get("b", "+1", 999).is_none(),
            "an earlier start than loaded"
        );
        assert!(
            cache.get("b", "+1", 1_000).is_none(),
            "the copy was dropped"
        );
        cache.insert(
            cache.ticket(),
            "b",
            "+1",
            1_000,
            vec![row(1, Kind::Inbound, PAIR, None, 2_000)],
        );
        assert!(cache.get("b", "+1", 1_000 + STALE_US).is_some());
        assert!(
            cache.get("b", "+1", 1_001 + STALE_US).is_none(),
            "stale: loaded afresh"
        );
    }

    #[test]
    fn eviction_drops_the_least_recently_used() {
        let mut inner = Inner::default();
        for i in 0..16u64 {
            let copy = Kept {
                since_us: 0,
                rows: Vec::new(),
                sends: HashSet::default(),
                statuses: HashSet::default(),
                used: i,
            };
            inner.copies.insert(("b".into(), format!("+{i}")), copy);
        }
        inner.add(
            &("b".into(), "+0".into()),
            row(1, Kind::Outbound, Some(("b", "+0")), Some("m"), 10),
        );
        inner.add(
            &("b".into(), "+0".into()),
            row(2, Kind::Inbound, Some(("b", "+0")), Some("wamid.in"), 11),
        );
        evict(&mut inner);
        assert_eq!(inner.copies.len(), 13);
        assert!(
            inner.by_message.is_empty(),
            "an evicted copy's message ids go with it"
        );
        assert!(
            !inner
                .copies
                .contains_key(&("b".to_string(), "+2".to_string()))
        );
        assert!(
            inner
                .copies
                .contains_key(&("b".to_string(), "+3".to_string()))
        );
    }
}
