//! The embedded default: one SQLite file in WAL mode.
//!
//! One writer thread owns the only writing connection and commits in
//! groups: it takes every write waiting in its queue (up to
//! [`BATCH_WRITES_MAX`]), applies them in one transaction, commits with
//! `synchronous = FULL` (the WAL is synced before the commit returns), and
//! only then answers each caller. A caller that got an answer is therefore
//! on disk; one whose write was in a failed batch gets the error and its
//! webhook gets a 5xx, so Meta redelivers it. Readers use their own
//! connections, which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::alerts::{AlertRow, AlertWrite};
use crate::pairs::{Kind, PairCache, PairRow};
use crate::record::{
    Batch, ContactRow, Counts, EventRecord, InFlightRow, StoredEvent, StoredWebhook, Written,
    contact_updates, message_range, message_range_sql, unsettled_marks,
};
use crate::relay::RelayBacklog;
use crate::settled::{
    Changes, ChargeFacts, ChargeRow, ChargeSlice, KeptFacts, SettleJob, Settled, UnsettledMark,
    WarningRow, changes, months_spanned,
};
use crate::settled::{FACT_COLUMNS, SUM_COLUMNS, SliceShape};
use crate::{EventScope, StoreError};
use wameter_meter::sums::{ChargeSum, ChargeSums, FactsRef};

pub(crate) mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// Writes taken into one transaction at most: bounds the time a caller
/// waits behind others and the size of a failed batch.
pub const BATCH_WRITES_MAX: usize = 512;

/// Writes waiting for the writer thread at most; beyond this, callers get
/// [`StoreError::Busy`] (a 503, which Meta retries) instead of a queue that
/// grows until memory runs out.
pub const QUEUE_WRITES_MAX: usize = 16_384;

/// Read connections kept open for reuse.
const READERS_KEPT_MAX: usize = 8;

/// What the writer thread is asked to do, each answered after the commit.
enum Job {
    /// Store a batch.
    Write(Batch, oneshot::Sender<Result<Written, StoreError>>),
    /// Replace a (portfolio, month)'s charges and delete its marks.
    Settle(
        SettleJob,
        Settled,
        SettleChanges,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    /// Compare the pricing fingerprint; on a change, unsettle everything.
    Reset(String, oneshot::Sender<Result<bool, StoreError>>),
    /// Record a budget alert crossing or delivery attempt.
    Alert(AlertWrite, oneshot::Sender<Result<bool, StoreError>>),
    /// Take relayed bodies out of the relay outbox.
    RelayDone(Vec<i64>, oneshot::Sender<Result<(), StoreError>>),
}

/// A job's answer, sent once its transaction committed.
enum Done {
    Written(Written),
    Settled,
    Reset(bool),
    Alert(bool),
    Relayed,
}

impl Job {
    /// Applies the job; the events it stored for the first time go to
    /// `stored` when it collects them.
    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        stored: Option<&mut Vec<PairRow>>,
        marks: &mut Marks,
    ) -> rusqlite::Result<Done> {
        match self {
            Job::Write(batch, _) => write_one(tx, batch, stored, marks).map(Done::Written),
            Job::Settle(job, settled, changes, _) => {
                write_settled(tx, job, settled, changes).map(|()| Done::Settled)
            }
            Job::Reset(fingerprint, _) => reset(tx, fingerprint).map(Done::Reset),
            Job::Alert(write, _) => write_alert(tx, write).map(Done::Alert),
            Job::RelayDone(ids, _) => relay_done(tx, ids).map(|()| Done::Relayed),
        }
    }

    fn answer(self, result: Result<Done, StoreError>) {
        // A caller that went away (timed-out request) needs no answer; a
        // failed write it no longer waits for is logged ([`Batch::answer`]).
        match self {
            Job::Write(batch, reply) => batch.answer(
                reply,
                result.map(|done| match done {
                    Done::Written(written) => written,
                    _ => Written::default(),
                }),
            ),
            Job::Settle(_, _, _, reply) => drop(reply.send(result.map(|_| ()))),
            Job::Reset(_, reply) => {
                drop(reply.send(result.map(|done| matches!(done, Done::Reset(true)))))
            }
            Job::Alert(_, reply) => {
                drop(reply.send(result.map(|done| matches!(done, Done::Alert(true)))))
            }
            Job::RelayDone(_, reply) => drop(reply.send(result.map(|_| ()))),
        }
    }
}

/// What a settle changes in the kept rows (by rowid), found against the
/// rows read in the same snapshot as its events.
#[derive(Debug)]
struct SettleChanges {
    charges: Changes<i64>,
    warnings: Changes<i64>,
}

/// A SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: SyncSender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Recent events of the pairs the guard asks about ([`crate::pairs`]).
    pairs: Arc<PairCache>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The write-ahead log's length, in pages, at which the writer copies it
/// into the database (SQLite's default is 1,000 pages, 4 MiB).
///
/// Flat out (~11,000 webhooks/s, ~33 KB written each) the writer filled
/// the default log dozens of times a second, and each checkpoint copies
/// its pages into the database file and syncs it. A longer log is copied
/// less often, and a page written several times in between is copied
/// once. Measured on 60 s flat-out
/// loads (`bench/serve_long.sh`, docs/PERFORMANCE.md): bytes written per
/// webhook 33 → 27.5 KB, webhooks stored +23 %; the price is a longer pause
/// for the commit that checkpoints (flat-out p99 15 → 40 ms over 10 s;
/// paced at 5,000/s, 7.8 → 12.9 ms). 64 MiB of log at most, then reused.
const WAL_CHECKPOINT_PAGES: i64 = 16_000;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode, NORMAL may lose the last commits on power loss.
    // An acknowledged webhook must survive that too.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    stable_plans(conn)
}

/// Plans that do not depend on bound values (SQLite's query planner
/// stability guarantee). Without it, SQLite — built with STAT4 — re-prepared
/// the window query's statements at every execution to plan for the new
/// values: about half of the query's CPU in `perf`
/// (`statements_are_not_prepared_again_for_new_values` counts it).
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// A read-only connection as the readers use.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    stable_plans(&conn)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema
    /// up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_error = |source: rusqlite::Error| StoreError::Open {
            url: format!("sqlite://{}", path.display()),
            message: source.to_string(),
        };
        let mut conn = Connection::open(path).map_err(open_error)?;
        configure(&conn).map_err(open_error)?;
        embedded::migrations::runner()
            .run(&mut conn)
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let (writer, jobs) = sync_channel(QUEUE_WRITES_MAX);
        let pairs = Arc::new(PairCache::default());
        let told = pairs.clone();
        std::thread::Builder::new()
            .name("wameter-sqlite-writer".into())
            .spawn(move || {
                writer_yields_on_wake_up();
                run_writer(conn, jobs, &told)
            })
            .map_err(|e| StoreError::Open {
                url: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            pairs,
        })
    }

    /// Writes a batch durably; returns once it is committed.
    pub async fn write(&self, batch: Batch) -> Result<Written, StoreError> {
        self.queue(batch)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Puts a batch in the writer's queue now; the receiver answers once
    /// it is committed.
    pub fn queue(
        &self,
        batch: Batch,
    ) -> Result<oneshot::Receiver<Result<Written, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Write(batch, reply))?;
        Ok(answer)
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        match self.writer.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::WriterGone),
        }
    }

    /// Marks at most `limit` left by new events, oldest first.
    pub async fn unsettled(&self, limit: i64) -> Result<Vec<UnsettledMark>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, business, month, first_event_id FROM unsettled ORDER BY id LIMIT ?1",
            )?;
            let rows = statement.query_map(params![limit], |row| {
                Ok(UnsettledMark {
                    id: row.get(0)?,
                    business: row.get(1)?,
                    month: row.get(2)?,
                    first_event_id: row.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Settles one (portfolio, month): reads its events (after the marks
    /// were listed, so every listed mark's events are among them), has
    /// `compute` price them off the async threads, and replaces the kept
    /// charges in one transaction that also deletes the job's marks. Only
    /// the difference is written: the kept rows are read in the same
    /// snapshot as the events and compared ([`changes`]). An incremental
    /// round ([`SettleJob::from_event_id`]) reads only the new events and
    /// writes the changes its caller found. One process owns a SQLite file,
    /// and the server runs one settler at a time, so no lock is needed here.
    pub async fn settle<F>(&self, job: SettleJob, compute: F) -> Result<(), StoreError>
    where
        F: FnOnce(Vec<StoredEvent>) -> Settled + Send + 'static,
    {
        let scope = EventScope::Businesses {
            businesses: Some(job.businesses.clone()),
            since_us: job.since_us,
            until_us: job.until_us,
            from_id: job.from_event_id.unwrap_or(0),
        };
        let (portfolio, month) = (job.portfolio.clone(), job.month.clone());
        let whole = job.from_event_id.is_none();
        let (events, kept_charges, kept_warnings) = self
            .read(move |conn| {
                // One snapshot: the kept rows the changes are found against
                // are those of the events read.
                let snapshot = conn.unchecked_transaction()?;
                let events = events_of(&snapshot, &scope)?;
                if !whole {
                    return Ok((events, Vec::new(), Vec::new()));
                }
                Ok((
                    events,
                    kept_charges(&snapshot, &portfolio, &month)?,
                    kept_warnings(&snapshot, &portfolio, &month)?,
                ))
            })
            .await?;
        let (settled, diff) = tokio::task::spawn_blocking(move || {
            let settled = compute(events);
            let diff = SettleChanges {
                charges: changes(kept_charges, &settled.charges),
                warnings: changes(kept_warnings, &settled.warnings),
            };
            (settled, diff)
        })
        .await
        .map_err(|e| StoreError::Read(e.to_string()))?;
        let (reply, answer) = oneshot::channel();
        self.send(Job::Settle(job, settled, diff, reply))?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Keeps `fingerprint` as what the charges are settled with. When it
    /// differs from the one kept (other accounts, rate cards, tiers or
    /// engine), drops every kept charge and marks every month with events
    /// unsettled. Returns whether it did.
    pub async fn reset_settlement(&self, fingerprint: String) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Reset(fingerprint, reply))?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Records a budget alert crossing or delivery attempt.
    pub async fn write_alert(&self, write: AlertWrite) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Alert(write, reply))?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Takes relayed bodies out of the relay outbox.
    pub async fn relay_done(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::RelayDone(ids, reply))?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// The oldest `limit` bodies in the relay outbox.
    pub async fn relay_pending(&self, limit: i64) -> Result<Vec<StoredWebhook>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT w.id, w.received_at_us, w.sha256, w.outcome, w.reason, w.body
                 FROM relay_outbox r JOIN webhook_bodies w ON w.id = r.webhook_id ORDER BY r.webhook_id LIMIT ?1",
            )?;
            let rows = statement.query_map(params![limit], stored_webhook)?;
            rows.collect()
        })
        .await
    }

    /// Guarded sends still holding budget, sent at or after `since_us`.
    pub async fn in_flight(&self, since_us: i64) -> Result<Vec<InFlightRow>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached("SELECT message_id, business, waba, amount, sent_at_us FROM in_flight WHERE sent_at_us >= ?1 ORDER BY sent_at_us")?;
            let rows = statement.query_map(params![since_us], |row| {
                Ok(InFlightRow { message_id: row.get(0)?, business: row.get(1)?, waba: row.get(2)?, amount: row.get(3)?, sent_at_us: row.get(4)? })
            })?;
            rows.collect()
        })
        .await
    }

    /// What waits in the relay outbox.
    pub async fn relay_backlog(&self) -> Result<RelayBacklog, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT count(*), min(w.received_at_us) FROM relay_outbox r JOIN webhook_bodies w ON w.id = r.webhook_id",
                [],
                |row| Ok(RelayBacklog { pending: row.get(0)?, oldest_received_at_us: row.get(1)? }),
            )
        })
        .await
    }

    /// Alerts of one month, or every one not yet delivered.
    pub async fn alerts(&self, month: Option<String>) -> Result<Vec<AlertRow>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT budget, month, threshold, crossed_at_us, spent, body, attempts, delivered_at_us, last_error FROM budget_alerts
                 WHERE (?1 IS NULL AND delivered_at_us IS NULL) OR month = ?1 ORDER BY crossed_at_us, budget, threshold",
            )?;
            let rows = statement.query_map(params![month], |row| {
                Ok(AlertRow {
                    budget: row.get(0)?,
                    month: row.get(1)?,
                    threshold: row.get(2)?,
                    crossed_at_us: row.get(3)?,
                    spent: row.get(4)?,
                    body: row.get(5)?,
                    attempts: row.get(6)?,
                    delivered_at_us: row.get(7)?,
                    last_error: row.get(8)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Kept charges of a slice, lines and typed columns.
    pub async fn charges(&self, slice: ChargeSlice) -> Result<Vec<ChargeRow>, StoreError> {
        self.read(move |conn| {
            let list = slice.businesses.as_deref().map(json_array);
            let mut statement = conn.prepare_cached(&select_charges(
                &format!("business, delivered_at_us, message_id, line, {FACT_COLUMNS}"),
                &slice,
            ))?;
            let rows = statement.query_map(params![list, slice.from_us, slice.to_us], |row| {
                charge_row(row, 0)
            })?;
            rows.collect()
        })
        .await
    }

    /// Kept charges of a slice as typed columns, without their lines.
    pub async fn charge_facts(&self, slice: ChargeSlice) -> Result<Vec<KeptFacts>, StoreError> {
        self.read(move |conn| {
            let list = slice.businesses.as_deref().map(json_array);
            let mut statement = conn.prepare_cached(&select_charges(
                &format!("business, delivered_at_us, message_id, {FACT_COLUMNS}"),
                &slice,
            ))?;
            let rows =
                statement.query_map(params![list, slice.from_us, slice.to_us], kept_facts)?;
            rows.collect()
        })
        .await
    }

    /// [`crate::Store::charge_sums`]: the rows are read in place, one at
    /// a time, on a reader.
    pub async fn charge_sums(
        &self,
        slice: ChargeSlice,
        keep: impl Fn(&str, Option<&str>) -> bool + Send + 'static,
    ) -> Result<(Vec<ChargeSum>, Vec<String>), StoreError> {
        self.read(move |conn| {
            let list = slice.businesses.as_deref().map(json_array);
            let mut statement = conn.prepare_cached(&select_charges(SUM_COLUMNS, &slice))?;
            let mut rows = statement.query(params![list, slice.from_us, slice.to_us])?;
            let mut sums = ChargeSums::default();
            while let Some(row) = rows.next()? {
                // Text columns borrowed from the cursor, not copied out.
                let maybe = |i: usize| -> rusqlite::Result<Option<&str>> {
                    row.get_ref(i)?.as_str_or_null().map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            i,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })
                };
                let text = |i: usize| -> rusqlite::Result<&str> {
                    maybe(i)?.ok_or_else(|| {
                        rusqlite::Error::InvalidColumnType(
                            i,
                            SUM_COLUMNS.split(", ").nth(i).unwrap_or_default().into(),
                            rusqlite::types::Type::Null,
                        )
                    })
                };
                let facts = FactsRef {
                    business: text(0)?,
                    delivered_at_us: row.get(1)?,
                    message_id: text(2)?,
                    kind: text(3)?,
                    messaging_account: maybe(4)?,
                    local_date: text(5)?,
                    pricing_model: maybe(6)?,
                    category: text(7)?,
                    pricing_type: maybe(8)?,
                    direction: maybe(9)?,
                    billable: row.get(10)?,
                    market: maybe(11)?,
                    currency: text(12)?,
                    amount: text(13)?,
                    quantity: row.get(14)?,
                    delivered_nanos: row.get(15)?,
                };
                if keep(facts.business, facts.messaging_account) {
                    sums.add(&facts);
                }
            }
            Ok(sums.finish())
        })
        .await
    }

    /// The (portfolio, month) pairs that have kept charges, in order.
    pub async fn charge_months(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(charge_months).await
    }

    /// The kept charges of one (portfolio, month) as typed columns.
    pub async fn month_facts(
        &self,
        portfolio: String,
        month: String,
    ) -> Result<Vec<KeptFacts>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT business, delivered_at_us, message_id, {FACT_COLUMNS} FROM charges
                 WHERE portfolio = ?1 AND month = ?2"
            ))?;
            let rows = statement.query_map(params![portfolio, month], kept_facts)?;
            rows.collect()
        })
        .await
    }

    /// Kept warnings of a slice's months: with a business list, only
    /// those about its businesses' events.
    pub async fn charge_warnings(&self, slice: ChargeSlice) -> Result<Vec<WarningRow>, StoreError> {
        self.read(move |conn| {
            let list = slice.businesses.as_deref().map(json_array);
            let (first, last) = slice.months.unwrap_or_else(|| (String::new(), "~".into()));
            let mut statement = conn.prepare_cached(SLICE_WARNINGS)?;
            let rows =
                statement.query_map(params![list, first, last], |row| warning_row(row, 0))?;
            rows.collect()
        })
        .await
    }

    /// Notices dated in `[since_us, until_us)`, optionally of some WABAs.
    pub async fn notices(
        &self,
        wabas: Option<Vec<String>>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            let list = wabas.as_deref().map(json_array);
            let mut statement = conn.prepare_cached(
                "SELECT line FROM notices
                 WHERE (?1 IS NULL OR waba IN (SELECT value FROM json_each(?1)))
                   AND at_us >= ?2 AND at_us < ?3
                 ORDER BY at_us, id",
            )?;
            let rows = statement.query_map(params![list, since_us, until_us], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    /// Runs a read on a pooled connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || with_reader(&readers, &path, job))
            .await
            .map_err(|e| StoreError::Read(e.to_string()))?
    }

    /// Runs a point read — a few index lookups, tens of microseconds — on
    /// the calling thread. Handing it to the blocking pool costs more than
    /// the read (two thread wake-ups, measured as most of the window
    /// query's p99), so only reads bounded by an index range go here.
    fn read_inline<T>(
        &self,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        with_reader(&self.readers, &self.path, job)
    }

    /// Events of one scope (see [`EventScope`]), in storage order.
    pub async fn events(&self, scope: EventScope) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| events_of(conn, &scope)).await
    }

    /// A pair's events from `since_us` on and its stored state, in one
    /// inline read (the window query's; see `read_inline`).
    pub fn contact_with_events(
        &self,
        business: String,
        user: String,
        since_us: i64,
    ) -> Result<(Vec<StoredEvent>, Option<ContactRow>), StoreError> {
        self.read_inline(move |conn| {
            let contact = contact_row(conn, &business, &user)?;
            let events = events_of(
                conn,
                &EventScope::Contact {
                    business,
                    user,
                    since_us,
                    until_us: i64::MAX,
                },
            )?;
            Ok((events, contact))
        })
    }

    /// A pair's events from `since_us` on (as [`EventScope::Contact`]),
    /// from the pair cache when it holds them ([`crate::pairs`]); a
    /// pair's first read loads it there.
    pub fn pair_events(
        &self,
        business: &str,
        user: &str,
        since_us: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(events) = self.pairs.get(business, user, since_us) {
            return Ok(events);
        }
        let ticket = self.pairs.ticket();
        let scope = EventScope::Contact {
            business: business.to_string(),
            user: user.to_string(),
            since_us,
            until_us: i64::MAX,
        };
        let rows = self.read_inline(|conn| pair_rows_of(conn, &scope))?;
        let events = crate::pairs::filter(&rows, business, user, since_us);
        self.pairs.insert(ticket, business, user, since_us, rows);
        Ok(events)
    }

    /// Events stored after `after_id`, at most `limit`, in storage order.
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: i64,
        businesses: Option<Vec<String>>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            let list = businesses.as_deref().map(json_array);
            let mut statement = conn.prepare_cached(
                "SELECT id, line FROM events WHERE id > ?1
                   AND (?2 IS NULL OR business IN (SELECT value FROM json_each(?2)))
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = statement.query_map(params![after_id, list, limit], |row| {
                Ok(StoredEvent {
                    id: row.get(0)?,
                    line: row.get(1)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// (wamid, business) of the sends stored with these wamids, and of the
    /// statuses Meta's signed webhooks gave them: who sent them.
    pub async fn message_senders(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&message_senders_sql())?;
            let rows = statement.query_map(params![json_array(&ids)], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            rows.collect()
        })
        .await
    }

    /// The highest event id stored (0: none).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(id), 0) FROM events")?
                .query_row([], |row| row.get(0))
        })
        .await
    }

    /// Business phone numbers with at least one contact.
    pub async fn businesses(&self) -> Result<Vec<String>, StoreError> {
        // One seek per business on the contacts' key, not every contact.
        self.read(|conn| {
            distinct_by_seeks(
                conn,
                "SELECT business FROM contacts ORDER BY business LIMIT 1",
                "SELECT business FROM contacts WHERE business > ?1 ORDER BY business LIMIT 1",
                &[],
            )
        })
        .await
    }

    /// Webhook bodies after `after_id`, optionally of one outcome.
    pub async fn webhooks(
        &self,
        after_id: i64,
        limit: i64,
        outcome: Option<String>,
        max_bytes: i64,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        self.read(move |conn| {
            // Sizes first (SQLite reads a blob's length without its
            // content), so a page holds at most `max_bytes` of bodies.
            let mut sizes = conn.prepare_cached(
                "SELECT id, length(body) FROM webhook_bodies WHERE id > ?1 AND (?2 IS NULL OR outcome = ?2) ORDER BY id LIMIT ?3",
            )?;
            let sizes: Vec<(i64, i64)> = sizes.query_map(params![after_id, outcome, limit], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            let Some(last) = crate::record::page_end(&sizes, max_bytes) else { return Ok(Vec::new()) };
            let mut statement = conn.prepare_cached(
                "SELECT id, received_at_us, sha256, outcome, reason, body FROM webhook_bodies
                 WHERE id > ?1 AND id <= ?3 AND (?2 IS NULL OR outcome = ?2) ORDER BY id",
            )?;
            let rows = statement.query_map(params![after_id, outcome, last], stored_webhook)?;
            rows.collect()
        })
        .await
    }

    /// Row counts.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        self.read(|conn| {
            let one = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0));
            Ok(Counts {
                webhooks_accepted: one(
                    "SELECT count(*) FROM webhook_bodies WHERE outcome = 'accepted'",
                )?,
                webhooks_rejected: one(
                    "SELECT count(*) FROM webhook_bodies WHERE outcome = 'rejected'",
                )?,
                events: one("SELECT count(*) FROM events")?,
                notices: one("SELECT count(*) FROM notices")?,
                contacts: one("SELECT count(*) FROM contacts")?,
            })
        })
        .await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}

/// A stored body from `id, received_at_us, sha256, outcome, reason, body`.
fn stored_webhook(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredWebhook> {
    Ok(StoredWebhook {
        id: row.get(0)?,
        received_at_us: row.get(1)?,
        sha256: row.get(2)?,
        outcome: row.get(3)?,
        reason: row.get(4)?,
        body: row.get(5)?,
    })
}

/// Runs `job` on a pooled read connection (opened on first need).
fn with_reader<T>(
    readers: &Mutex<Vec<Connection>>,
    path: &Path,
    job: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let taken = readers.lock().map(|mut pool| pool.pop()).unwrap_or(None);
    let conn = match taken {
        Some(conn) => conn,
        None => open_reader(path)?,
    };
    let result = job(&conn);
    if let Ok(mut pool) = readers.lock()
        && pool.len() < READERS_KEPT_MAX
    {
        pool.push(conn);
    }
    result.map_err(StoreError::from)
}

/// The events of a scope (see [`SqliteStore::events`]).
fn events_of(conn: &Connection, scope: &EventScope) -> rusqlite::Result<Vec<StoredEvent>> {
    scoped(conn, scope, "id, line", |row| {
        Ok(StoredEvent {
            id: row.get(0)?,
            line: row.get(1)?,
        })
    })
}

/// The rows of `scope` with the columns the pair cache filters on.
fn pair_rows_of(conn: &Connection, scope: &EventScope) -> rusqlite::Result<Vec<PairRow>> {
    scoped(
        conn,
        scope,
        "id, kind, business, user_id, message_id, at_us, line",
        |row| {
            let kind: String = row.get(1)?;
            Ok(PairRow {
                id: row.get(0)?,
                kind: Kind::parse(&kind).ok_or_else(|| {
                    rusqlite::Error::InvalidColumnType(
                        1,
                        format!("kind `{kind}`"),
                        rusqlite::types::Type::Text,
                    )
                })?,
                business: row.get(2)?,
                user: row.get(3)?,
                message_id: row.get(4)?,
                at_us: row.get(5)?,
                line: row.get(6)?,
                joins_stored: false,
            })
        },
    )
}

/// `columns` of the events of one scope (see [`EventScope`]), in storage
/// order.
fn scoped<T>(
    conn: &Connection,
    scope: &EventScope,
    columns: &str,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    // `selected` is the scope proper; the two unions add the other
    // half of a message that straddles the scope's edge or whose
    // status names no contact: the outbound of a status in scope,
    // and the statuses of an outbound in scope.
    //
    // Each scope gets its own SQL rather than one statement with
    // `?n IS NULL` switches: SQLite re-prepares a statement whose plan
    // depends on a bound value at every execution, which was most of the
    // window query's time.
    let (sql, values) = scoped_sql(scope, columns);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values), read)?;
    rows.collect()
}

/// The SQL of [`scoped`] and its bound values.
fn scoped_sql(scope: &EventScope, columns: &str) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let (filter, mut values): (&str, Vec<Value>) = match scope {
        EventScope::Contact { business, user, .. } => (
            "business = ?1 AND user_id = ?2",
            vec![business.clone().into(), user.clone().into()],
        ),
        // ?2 (and ?1) unused: bound as NULL so the range stays ?3 and ?4.
        // From an event id: each business's events from that id
        // (`events_by_business_id`), so a round reads only what is new in
        // its own scope, however many other businesses wrote meanwhile.
        EventScope::Businesses {
            businesses: Some(list),
            from_id,
            ..
        } if *from_id > 0 => (
            "business IN (SELECT value FROM json_each(?1)) AND id >= ?5",
            vec![json_array(list).into(), Value::Null],
        ),
        EventScope::Businesses {
            businesses: Some(list),
            ..
        } => (
            "business IN (SELECT value FROM json_each(?1))",
            vec![json_array(list).into(), Value::Null],
        ),
        EventScope::Businesses {
            businesses: None,
            from_id,
            ..
        } if *from_id > 0 => ("id >= ?5", vec![Value::Null, Value::Null]),
        EventScope::Businesses {
            businesses: None, ..
        } => ("1", vec![Value::Null, Value::Null]),
    };
    let (since, until) = scope.range_us();
    let same_business = crate::record::SAME_BUSINESS_SQL;
    let incremental = matches!(scope, EventScope::Businesses { from_id, .. } if *from_id > 0);
    let at_us = if incremental { "+at_us" } else { "at_us" };
    let indexed = if incremental && filter.contains("business") {
        "INDEXED BY events_by_business_id"
    } else {
        ""
    };
    // From an event id, the new halves of messages whose other half is in
    // scope but older: a status naming no business (or dated before the
    // span) of an outbound in scope, an outbound (sent before the span)
    // of a status in scope.
    // A message's other half is found by its key (`message_range_sql`).
    let its_send = message_range_sql("s", "e.message_id", "outbound");
    let its_statuses = message_range_sql("s", "e.message_id", "status");
    let fresh_halves = if incremental {
        // CROSS JOIN and `+`: from the new rows to their other halves by
        // message, never a scan of the span's events. A half that joins one
        // in scope is of a business in scope or names none (`same_business`).
        if filter.contains("business") {
            let in_scope = "+s.business IN (SELECT value FROM json_each(?1))";
            let by_business = "INDEXED BY events_by_business_id";
            format!(
                "UNION SELECT e.id FROM events e {by_business} CROSS JOIN events s ON {its_send}
                    WHERE e.business IN (SELECT value FROM json_each(?1)) AND e.id >= ?5 AND e.kind = 'status' AND e.at_us < ?4
                      AND {in_scope} AND +s.at_us >= ?3 AND +s.at_us < ?4 AND {same_business}
                UNION SELECT e.id FROM events e {by_business} CROSS JOIN events s ON {its_send}
                    WHERE e.business IS NULL AND e.id >= ?5 AND e.kind = 'status' AND e.at_us < ?4
                      AND {in_scope} AND +s.at_us >= ?3 AND +s.at_us < ?4
                UNION SELECT e.id FROM events e {by_business} CROSS JOIN events s ON {its_statuses}
                    WHERE e.business IN (SELECT value FROM json_each(?1)) AND e.id >= ?5 AND e.kind = 'outbound'
                      AND {in_scope} AND +s.at_us >= ?3 AND +s.at_us < ?4 AND {same_business}"
            )
        } else {
            format!(
                "UNION SELECT e.id FROM events e CROSS JOIN events s ON {its_send}
                    WHERE e.id >= ?5 AND e.kind = 'status' AND e.at_us < ?4 AND +s.at_us >= ?3 AND +s.at_us < ?4 AND {same_business}
                UNION SELECT e.id FROM events e CROSS JOIN events s ON {its_statuses}
                    WHERE e.id >= ?5 AND e.kind = 'outbound' AND +s.at_us >= ?3 AND +s.at_us < ?4 AND {same_business}"
            )
        }
    } else {
        String::new()
    };
    let statuses_selected = message_range_sql("e", "s.message_id", "status");
    let sends_selected = message_range_sql("e", "s.message_id", "outbound");
    // The scope's rows are read by the statement three times (the rows
    // themselves, and each join to their other halves). Inlined, each
    // pass read the businesses' index and the table again: kept once in a
    // temporary table, a month's read takes a tenth off the reconciler's
    // round (docs/PERFORMANCE.md, session 53). A pair's few rows
    // (`Contact`, the window query's path) are left as they were: not
    // measured with a temporary table.
    let materialized = match scope {
        EventScope::Businesses { .. } => "MATERIALIZED ",
        EventScope::Contact { .. } => "",
    };
    let sql = format!(
        "WITH selected AS {materialized}(SELECT id, kind, business, message_id FROM events {indexed} WHERE {filter} AND {at_us} >= ?3 AND {at_us} < ?4)
         SELECT {columns} FROM events WHERE id IN (
            SELECT id FROM selected
            UNION SELECT e.id FROM selected s CROSS JOIN events e ON {statuses_selected}
                WHERE s.kind = 'outbound' AND e.at_us < ?4 AND {same_business}
            UNION SELECT e.id FROM selected s CROSS JOIN events e ON {sends_selected}
                WHERE s.kind = 'status' AND {same_business}
            {fresh_halves})
         ORDER BY id"
    );
    values.extend([since.into(), until.into()]);
    if let EventScope::Businesses { from_id, .. } = scope
        && *from_id > 0
    {
        values.push((*from_id).into());
    }
    (sql, values)
}

/// The SQL of [`SqliteStore::message_senders`]: each wamid's sends, and
/// statuses from signed webhooks, by their keys' prefixes.
fn message_senders_sql() -> String {
    let sends = message_range_sql("e", "ids.value", "outbound");
    let statuses = message_range_sql("e", "ids.value", "status");
    format!(
        "SELECT e.message_id, e.business FROM json_each(?1) ids CROSS JOIN events e
            WHERE {sends} AND e.business IS NOT NULL
         UNION SELECT e.message_id, e.business FROM json_each(?1) ids CROSS JOIN events e
            WHERE {statuses} AND e.webhook_id IS NOT NULL AND e.business IS NOT NULL"
    )
}

fn contact_row(
    conn: &Connection,
    business: &str,
    user: &str,
) -> rusqlite::Result<Option<ContactRow>> {
    conn.prepare_cached("SELECT first_event_at_us, last_event_at_us, last_inbound_at_us, events FROM contacts WHERE business = ?1 AND user_id = ?2")?
        .query_row(params![business, user], |row| {
            Ok(ContactRow { first_event_at_us: row.get(0)?, last_event_at_us: row.get(1)?, last_inbound_at_us: row.get(2)?, events: row.get(3)? })
        })
        .optional()
}

/// Ends the flight of send `?1` of business `?2` (or of any business: a
/// status naming none), through `in_flight_by_message`.
const LAND_FLIGHT: &str = "DELETE FROM in_flight WHERE message_id = ?1 AND (?2 IS NULL OR business = ?2 OR business = '')";

/// The kept warnings of the months `?2` to `?3` (of the businesses in the
/// JSON array `?1`, or all): through `charge_warnings_by_month`.
const SLICE_WARNINGS: &str = "SELECT business, event_id, code, message, count FROM charge_warnings
    WHERE (?1 IS NULL OR business IN (SELECT value FROM json_each(?1)))
      AND month >= ?2 AND month <= ?3";

/// The distinct values of an index's column, in order, one seek each (a
/// loose index scan): `first` finds the least, `after` the one after its
/// last parameter; `bound` are the parameters before it. `SELECT
/// DISTINCT` reads the whole index: SQLite skips through one only with
/// `ANALYZE`'s statistics.
fn distinct_by_seeks(
    conn: &Connection,
    first: &str,
    after: &str,
    bound: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<String>> {
    let mut found: Vec<String> = Vec::new();
    loop {
        let next: Option<String> = match found.last() {
            None => conn
                .prepare_cached(first)?
                .query_row(bound, |row| row.get(0)),
            Some(last) => {
                let mut with_last = bound.to_vec();
                with_last.push(last);
                conn.prepare_cached(after)?
                    .query_row(&with_last[..], |row| row.get(0))
            }
        }
        .optional()?;
        match next {
            Some(value) => found.push(value),
            None => return Ok(found),
        }
    }
}

/// The (portfolio, month)s with kept charges, in order: each portfolio,
/// then each of its months, by seeks on `charges_by_scope`. `SELECT
/// DISTINCT` read that whole index at every page view and reconciler
/// round; comparing (portfolio, month) row values seeks on the portfolio
/// only, then reads all its charges.
fn charge_months(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    // One snapshot for every seek.
    let snapshot = conn.unchecked_transaction()?;
    let [first_portfolio, next_portfolio, first_month, next_month] = CHARGE_MONTH_SEEKS;
    let mut found = Vec::new();
    for portfolio in distinct_by_seeks(&snapshot, first_portfolio, next_portfolio, &[])? {
        for month in distinct_by_seeks(&snapshot, first_month, next_month, &[&portfolio])? {
            found.push((portfolio.clone(), month));
        }
    }
    Ok(found)
}

/// [`charge_months`]'s seeks: the first portfolio, the one after `?1`, the
/// first month of portfolio `?1`, its month after `?2`.
const CHARGE_MONTH_SEEKS: [&str; 4] = [
    "SELECT portfolio FROM charges ORDER BY portfolio LIMIT 1",
    "SELECT portfolio FROM charges WHERE portfolio > ?1 ORDER BY portfolio LIMIT 1",
    "SELECT month FROM charges WHERE portfolio = ?1 ORDER BY month LIMIT 1",
    "SELECT month FROM charges WHERE portfolio = ?1 AND month > ?2 ORDER BY month LIMIT 1",
];

/// `columns` of a slice's kept charges, `?1` its business list (a JSON
/// array, or NULL), `?2` and `?3` its delivery span: one statement per
/// [`SliceShape`].
fn select_charges(columns: &str, slice: &ChargeSlice) -> String {
    let within = match slice.shape() {
        SliceShape::Businesses => {
            "business IN (SELECT value FROM json_each(?1)) AND delivered_at_us >= ?2 AND delivered_at_us < ?3"
        }
        // `?1` is NULL here; it stays in the text so that every shape
        // takes the same parameters.
        SliceShape::Span => "?1 IS NULL AND delivered_at_us >= ?2 AND delivered_at_us < ?3",
        // A unary `+` keeps SQLite from walking the index over everything.
        SliceShape::Everything => "?1 IS NULL AND +delivered_at_us >= ?2 AND +delivered_at_us < ?3",
    };
    format!("SELECT {columns} FROM charges WHERE {within}")
}

fn json_array(items: &[String]) -> String {
    // A JSON array of strings for json_each(); the items are ids, but
    // quote properly anyway.
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]", quoted.join(","))
}

/// Puts the calling thread (the writer) under Linux's `SCHED_BATCH` policy,
/// at the default nice value: its share of the CPU is unchanged, but its
/// waking no longer preempts the thread that woke it.
///
/// Every write is queued by a request handler (a webhook, a guarded send's
/// record) and wakes the writer when it is idle. As an ordinary thread the
/// writer then often took the handler's core at once, before the handler
/// had answered: the guard's record step, a queue push, took 3 µs at the
/// median and 101 µs at p90 (`bench/guard_latency.sh`, a probe around the
/// push). The writer commits groups of writes, so it loses nothing by
/// starting a tick later, and more writes join its group. Five interleaved
/// rounds of `bench/guard_latency.sh 2000` with the policy set from outside
/// (`chrt -b`): the record step's p90 119–135 µs → 47–55 µs, the guard's
/// own time at p99 0.40–0.54 ms → 0.34–0.43 ms (docs/PERFORMANCE.md).
///
/// A system that refuses the change (some sandboxes do) only loses the
/// gain, so a refusal is logged and the writer goes on as it is.
fn writer_yields_on_wake_up() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityOsValue, ThreadSchedulePolicy,
    };
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    // Nice 0: the value an ordinary thread starts with.
    let nice = ThreadPriority::Os(ThreadPriorityOsValue::default());
    let this = thread_priority::thread_native_id();
    if let Err(error) = thread_priority::set_thread_priority_and_policy(this, nice, batch) {
        tracing::debug!(
            message = "The SQLite writer stays an ordinary thread.",
            error = ?error
        );
    }
}

fn run_writer(mut conn: Connection, jobs: Receiver<Job>, pairs: &PairCache) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < BATCH_WRITES_MAX {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match write_group(&mut conn, &group, pairs.in_use()) {
            Ok((done, stored)) => {
                // Before anyone hears of the commit: what was acknowledged
                // is in the copies too.
                pairs.committed(stored);
                for (job, done) in group.into_iter().zip(done) {
                    job.answer(Ok(done));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for job in group {
                    job.answer(Err(StoreError::Write(message.clone())));
                }
            }
        }
    }
}

/// Applies and commits a group of jobs; with `collect`, also returns the
/// events it stored for the first time (for the pair cache).
fn write_group(
    conn: &mut Connection,
    jobs: &[Job],
    collect: bool,
) -> rusqlite::Result<(Vec<Done>, Option<Vec<PairRow>>)> {
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(jobs.len());
    let mut stored = collect.then(Vec::new);
    let mut marks = Marks::new();
    for job in jobs {
        out.push(job.apply(&tx, stored.as_mut(), &mut marks)?);
    }
    // One mark per (business, month) the group's writes touched, not one
    // per write: a settle round then takes a group's worth of webhooks per
    // mark, and deletes a few hundred rows instead of tens of thousands.
    let mut mark = tx.prepare_cached(
        "INSERT INTO unsettled (business, month, first_event_id) VALUES (?1, ?2, ?3)",
    )?;
    for ((business, month), first_event_id) in &marks {
        mark.execute(params![business, month, first_event_id])?;
    }
    drop(mark);
    tx.commit()?;
    Ok((out, stored))
}

/// A kept charge's columns, in [`charge_row`]'s order.
const CHARGE_COLUMNS: &str = "business, delivered_at_us, message_id, line, kind, messaging_account, user_id, local_date, pricing_model, category, pricing_type, direction, billable, market, currency, amount, quantity, tier, ruleset, rule, template, opens_conversation, delivered_nanos";

/// A kept charge from [`CHARGE_COLUMNS`], starting at column `first`.
fn charge_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ChargeRow> {
    Ok(ChargeRow {
        business: row.get(first)?,
        delivered_at_us: row.get(first + 1)?,
        message_id: row.get(first + 2)?,
        line: row.get(first + 3)?,
        facts: facts(row, first + 4)?,
    })
}

/// A kept charge from `business, delivered_at_us, message_id` and
/// [`FACT_COLUMNS`].
fn kept_facts(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeptFacts> {
    Ok(KeptFacts {
        business: row.get(0)?,
        delivered_at_us: row.get(1)?,
        message_id: row.get(2)?,
        facts: facts(row, 3)?,
    })
}

/// Typed columns from [`FACT_COLUMNS`], starting at column `first`.
fn facts(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ChargeFacts> {
    Ok(ChargeFacts {
        kind: row.get(first)?,
        messaging_account: row.get(first + 1)?,
        user: row.get(first + 2)?,
        local_date: row.get(first + 3)?,
        pricing_model: row.get(first + 4)?,
        category: row.get(first + 5)?,
        pricing_type: row.get(first + 6)?,
        direction: row.get(first + 7)?,
        billable: row.get(first + 8)?,
        market: row.get(first + 9)?,
        currency: row.get(first + 10)?,
        amount: row.get(first + 11)?,
        quantity: row.get(first + 12)?,
        tier: row.get(first + 13)?,
        ruleset: row.get(first + 14)?,
        rule: row.get(first + 15)?,
        template: row.get(first + 16)?,
        opens_conversation: row.get(first + 17)?,
        delivered_nanos: row.get(first + 18)?,
    })
}

/// A kept warning from `business, event_id, code, message, count`,
/// starting at column `first`.
fn warning_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<WarningRow> {
    Ok(WarningRow {
        business: row.get(first)?,
        event_id: row.get(first + 1)?,
        code: row.get(first + 2)?,
        message: row.get(first + 3)?,
        count: row.get(first + 4)?,
    })
}

fn kept_charges(
    conn: &Connection,
    portfolio: &str,
    month: &str,
) -> rusqlite::Result<Vec<(i64, ChargeRow)>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT rowid, {CHARGE_COLUMNS} FROM charges WHERE portfolio = ?1 AND month = ?2"
    ))?;
    let rows = statement.query_map(params![portfolio, month], |row| {
        Ok((row.get(0)?, charge_row(row, 1)?))
    })?;
    rows.collect()
}

fn kept_warnings(
    conn: &Connection,
    portfolio: &str,
    month: &str,
) -> rusqlite::Result<Vec<(i64, WarningRow)>> {
    let mut statement = conn.prepare_cached("SELECT rowid, business, event_id, code, message, count FROM charge_warnings WHERE portfolio = ?1 AND month = ?2")?;
    let rows = statement.query_map(params![portfolio, month], |row| {
        Ok((row.get(0)?, warning_row(row, 1)?))
    })?;
    rows.collect()
}

fn insert_charge(
    tx: &rusqlite::Transaction<'_>,
    job: &SettleJob,
    charge: &ChargeRow,
) -> rusqlite::Result<()> {
    let f = &charge.facts;
    tx.prepare_cached(&format!(
        "INSERT INTO charges (portfolio, month, {CHARGE_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
    ))?
    .execute(params![
        job.portfolio, job.month, charge.business, charge.delivered_at_us, charge.message_id,
        charge.line, f.kind, f.messaging_account, f.user, f.local_date, f.pricing_model,
        f.category, f.pricing_type, f.direction, f.billable, f.market, f.currency, f.amount,
        f.quantity, f.tier, f.ruleset, f.rule, f.template, f.opens_conversation,
        f.delivered_nanos
    ])
    .map(drop)
}

fn insert_warning(
    tx: &rusqlite::Transaction<'_>,
    job: &SettleJob,
    warning: &WarningRow,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO charge_warnings (portfolio, month, business, event_id, code, message, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
        .execute(params![job.portfolio, job.month, warning.business, warning.event_id, warning.code, warning.message, warning.count])
        .map(drop)
}

/// Writes a settle's changes and deletes its marks. The changes were found
/// against a snapshot; should the kept rows have changed since (a pricing
/// reset dropped them all), a deleted row is missing or the counts differ,
/// and the month is replaced as a whole instead.
fn write_settled(
    tx: &rusqlite::Transaction<'_>,
    job: &SettleJob,
    settled: &Settled,
    changes: &SettleChanges,
) -> rusqlite::Result<()> {
    if job.from_event_id.is_some() {
        write_round(tx, job, settled)?;
    } else if !apply_changes(tx, job, settled, changes)? {
        tx.prepare_cached("DELETE FROM charges WHERE portfolio = ?1 AND month = ?2")?
            .execute(params![job.portfolio, job.month])?;
        tx.prepare_cached("DELETE FROM charge_warnings WHERE portfolio = ?1 AND month = ?2")?
            .execute(params![job.portfolio, job.month])?;
        for charge in &settled.charges {
            insert_charge(tx, job, charge)?;
        }
        for warning in &settled.warnings {
            insert_warning(tx, job, warning)?;
        }
    }
    let mut delete_mark = tx.prepare_cached("DELETE FROM unsettled WHERE id = ?1")?;
    for id in &job.marks {
        delete_mark.execute(params![id])?;
    }
    Ok(())
}

/// Writes an incremental round: each charge given replaces its message's
/// kept charge, removed ones go, and so do removed warnings (one row each);
/// added warnings are inserted.
fn write_round(
    tx: &rusqlite::Transaction<'_>,
    job: &SettleJob,
    settled: &Settled,
) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached("DELETE FROM charges WHERE business = ?1 AND message_id = ?2 AND portfolio = ?3 AND month = ?4")?;
    for (business, message_id) in settled
        .charges
        .iter()
        .map(|c| (&c.business, &c.message_id))
        .chain(settled.removed.iter().map(|(b, m)| (b, m)))
    {
        delete.execute(params![business, message_id, job.portfolio, job.month])?;
    }
    for charge in &settled.charges {
        insert_charge(tx, job, charge)?;
    }
    let mut delete_warning = tx.prepare_cached(
        "DELETE FROM charge_warnings WHERE rowid = (SELECT rowid FROM charge_warnings
           WHERE portfolio = ?1 AND month = ?2 AND business IS ?3 AND event_id IS ?4 AND code = ?5 AND message = ?6 AND count = ?7 LIMIT 1)",
    )?;
    for w in &settled.warnings_removed {
        delete_warning.execute(params![
            job.portfolio,
            job.month,
            w.business,
            w.event_id,
            w.code,
            w.message,
            w.count
        ])?;
    }
    for warning in &settled.warnings {
        insert_warning(tx, job, warning)?;
    }
    Ok(())
}

/// Applies the changes; `false` when the kept rows were not those they
/// were found against.
fn apply_changes(
    tx: &rusqlite::Transaction<'_>,
    job: &SettleJob,
    settled: &Settled,
    changes: &SettleChanges,
) -> rusqlite::Result<bool> {
    for (table, removed) in [
        ("charges", &changes.charges.remove),
        ("charge_warnings", &changes.warnings.remove),
    ] {
        let mut delete = tx.prepare_cached(&format!("DELETE FROM {table} WHERE rowid = ?1"))?;
        for rowid in removed {
            if delete.execute(params![rowid])? == 0 {
                return Ok(false);
            }
        }
    }
    for &index in &changes.charges.add {
        insert_charge(tx, job, &settled.charges[index])?;
    }
    for &index in &changes.warnings.add {
        insert_warning(tx, job, &settled.warnings[index])?;
    }
    let count = |table: &str| -> rusqlite::Result<usize> {
        tx.prepare_cached(&format!(
            "SELECT count(*) FROM {table} WHERE portfolio = ?1 AND month = ?2"
        ))?
        .query_row(params![job.portfolio, job.month], |row| {
            row.get::<_, i64>(0)
        })
        .map(|n| n as usize)
    };
    Ok(count("charges")? == settled.charges.len()
        && count("charge_warnings")? == settled.warnings.len())
}

fn reset(tx: &rusqlite::Transaction<'_>, fingerprint: &str) -> rusqlite::Result<bool> {
    let kept: Option<String> = tx
        .query_row(
            "SELECT value FROM settings WHERE key = 'pricing'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if kept.as_deref() == Some(fingerprint) {
        return Ok(false);
    }
    tx.execute_batch("DELETE FROM charges; DELETE FROM charge_warnings; DELETE FROM unsettled;")?;
    let spans: Vec<(String, i64, i64)> = {
        let mut statement = tx.prepare(
            "SELECT coalesce(business, ''), min(at_us), max(at_us) FROM events GROUP BY 1",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut mark = tx.prepare_cached("INSERT INTO unsettled (business, month) VALUES (?1, ?2)")?;
    for (business, first, last) in spans {
        for month in months_spanned(first, last) {
            mark.execute(params![business, month])?;
        }
    }
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('pricing', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![fingerprint],
    )?;
    Ok(true)
}

/// The unsettled marks of a group of writes: (business, month) → the
/// lowest event id stored for it.
type Marks = std::collections::BTreeMap<(String, String), i64>;

fn write_one(
    tx: &rusqlite::Transaction<'_>,
    batch: &Batch,
    mut stored: Option<&mut Vec<PairRow>>,
    marks: &mut Marks,
) -> rusqlite::Result<Written> {
    let mut written = Written {
        duplicates: batch.repeats,
        ..Written::default()
    };
    if let Some(webhook) = &batch.webhook {
        tx.prepare_cached(
            "INSERT INTO webhook_bodies (received_at_us, sha256, outcome, reason, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![webhook.received_at_us, webhook.sha256, webhook.outcome(), webhook.reason(), webhook.body])?;
        let id = tx.last_insert_rowid();
        written.webhook_id = Some(id);
        if webhook.relayed() {
            tx.prepare_cached("INSERT INTO relay_outbox (webhook_id) VALUES (?1)")?
                .execute(params![id])?;
        }
    }
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (dedupe_key, kind, business, user_id, message_id, at_us, line, webhook_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (dedupe_key) DO NOTHING",
    )?;
    let mut new_events = Vec::new();
    // Ids grow within the transaction: the first new event's is the lowest.
    let mut first_new_id = None;
    for event in &batch.events {
        let inserted = insert_event.execute(params![
            event.dedupe_key,
            event.kind,
            event.business,
            event.user,
            event.message_id,
            event.at_us,
            event.line,
            written.webhook_id
        ])?;
        if written.count_event(event, inserted as u64) {
            first_new_id = first_new_id.or(Some(tx.last_insert_rowid()));
            if let Some(stored) = stored.as_deref_mut() {
                let id = tx.last_insert_rowid();
                stored.extend(PairRow::of_record(id, event, joins_stored(tx, event, id)?));
            }
            new_events.push(event);
        }
    }
    let mut insert_notice = tx.prepare_cached(
        "INSERT INTO notices (dedupe_key, waba, at_us, line, webhook_id) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )?;
    for notice in &batch.notices {
        let inserted = insert_notice.execute(params![
            notice.dedupe_key,
            notice.waba,
            notice.at_us,
            notice.line,
            written.webhook_id
        ])?;
        written.count_row(inserted as u64);
    }
    // Per-contact state, from the events stored for the first time only:
    // a redelivery changes nothing. The upsert is one statement, so two
    // writers can never lose each other's update.
    let mut upsert = tx.prepare_cached(
        "INSERT INTO contacts (business, user_id, first_event_at_us, last_event_at_us, last_inbound_at_us, events)
         VALUES (?1, ?2, ?3, ?3, ?4, 1)
         ON CONFLICT (business, user_id) DO UPDATE SET
           first_event_at_us = min(first_event_at_us, excluded.first_event_at_us),
           last_event_at_us = max(last_event_at_us, excluded.last_event_at_us),
           last_inbound_at_us = CASE
             WHEN excluded.last_inbound_at_us IS NULL THEN last_inbound_at_us
             WHEN last_inbound_at_us IS NULL THEN excluded.last_inbound_at_us
             ELSE max(last_inbound_at_us, excluded.last_inbound_at_us) END,
           events = events + 1",
    )?;
    for (business, user, at_us, inbound_at_us) in contact_updates(&new_events) {
        upsert.execute(params![business, user, at_us, inbound_at_us])?;
    }
    if let Some(first) = first_new_id {
        for key in unsettled_marks(&new_events) {
            let kept = marks.entry(key).or_insert(first);
            *kept = (*kept).min(first);
        }
    }
    // A send's outcome frees the budget it held; a send whose outcome is
    // stored already (its webhook overtook upstream's answer) holds none.
    // Only the sending business's statuses count (or one naming none).
    let mut landed = tx.prepare_cached(LAND_FLIGHT)?;
    for event in new_events.iter().filter(|event| event.ends_flight) {
        landed.execute(params![event.message_id, event.business])?;
    }
    let mut hold = tx.prepare_cached(HOLD_FLIGHT)?;
    for row in &batch.in_flight {
        let (statuses, past_them) = message_range(&row.message_id, "status");
        hold.execute(params![
            row.business,
            row.message_id,
            row.waba,
            row.amount,
            row.sent_at_us,
            statuses,
            past_them
        ])?;
    }
    Ok(written)
}

/// Whether the other half of a new event's message (a status of a send,
/// the send of a status) was stored before it ([`PairRow::joins_stored`]).
fn joins_stored(
    tx: &rusqlite::Transaction<'_>,
    event: &EventRecord,
    id: i64,
) -> rusqlite::Result<bool> {
    let other = match event.kind {
        "outbound" => "status",
        "status" => "outbound",
        _ => return Ok(false),
    };
    let Some(message) = &event.message_id else {
        return Ok(false);
    };
    let (first, past) = message_range(message, other);
    tx.prepare_cached(JOINS_STORED)?
        .query_row(params![first, past, id, event.business], |row| row.get(0))
}

/// Whether an event of a message, of a kind (its keys from `?1` to before
/// `?2`: `record::message_range`), was stored before id `?3`, of business
/// `?4` or naming none.
/// (`+business`: never through an index by business, which holds the
/// business's every event.)
const JOINS_STORED: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE dedupe_key >= ?1 AND dedupe_key < ?2 AND id < ?3 AND (?4 IS NULL OR +business IS NULL OR +business = ?4))";

/// Holds send `?2` of business `?1` in flight, unless a status that
/// settles its fate is stored already (its statuses' keys from `?6` to
/// before `?7`: `record::message_range`).
const HOLD_FLIGHT: &str = "INSERT INTO in_flight (business, message_id, waba, amount, sent_at_us) SELECT ?1, ?2, ?3, ?4, ?5
     WHERE NOT EXISTS (SELECT 1 FROM events WHERE dedupe_key >= ?6 AND dedupe_key < ?7 AND (+business IS NULL OR +business = ?1)
                       AND json_extract(line, '$.status') IN ('delivered', 'read', 'failed'))
     ON CONFLICT (business, message_id) DO NOTHING";

fn relay_done(tx: &rusqlite::Transaction<'_>, ids: &[i64]) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached("DELETE FROM relay_outbox WHERE webhook_id = ?1")?;
    for id in ids {
        delete.execute(params![id])?;
    }
    Ok(())
}

fn write_alert(tx: &rusqlite::Transaction<'_>, write: &AlertWrite) -> rusqlite::Result<bool> {
    match write {
        AlertWrite::Cross(row) => {
            let inserted = tx.execute(
                "INSERT INTO budget_alerts (budget, month, threshold, crossed_at_us, spent, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (budget, month, threshold) DO NOTHING",
                params![row.budget, row.month, row.threshold, row.crossed_at_us, row.spent, row.body],
            )?;
            Ok(inserted == 1)
        }
        AlertWrite::Attempt {
            budget,
            month,
            threshold,
            outcome,
        } => {
            let (delivered, error) = match outcome {
                Ok(at) => (Some(*at), None),
                Err(reason) => (None, Some(reason.as_str())),
            };
            tx.execute(
                "UPDATE budget_alerts SET attempts = attempts + 1, delivered_at_us = ?4, last_error = ?5
                 WHERE budget = ?1 AND month = ?2 AND threshold = ?3",
                params![budget, month, threshold, delivered, error],
            )?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(id: &str, amount: &str) -> ChargeRow {
        ChargeRow {
            business: "B".into(),
            delivered_at_us: 1_751_371_200_000_000,
            message_id: id.into(),
            line: format!("{{\"message_id\":\"{id}\",\"amount\":\"{amount}\"}}"),
            facts: ChargeFacts {
                amount: amount.into(),
                ..ChargeFacts::default()
            },
        }
    }

    fn warning(count: i64) -> WarningRow {
        WarningRow {
            business: None,
            event_id: None,
            code: "outbound_inferred".into(),
            message: "inferred".into(),
            count,
        }
    }

    fn job() -> SettleJob {
        SettleJob {
            portfolio: "P".into(),
            month: "2025-07".into(),
            businesses: vec!["B".into()],
            since_us: 0,
            until_us: i64::MAX,
            marks: vec![],
            from_event_id: None,
        }
    }

    /// (rowid, message id, line) of the kept charges, and the warnings' counts.
    fn kept(path: &Path) -> (Vec<(i64, String, String)>, Vec<i64>) {
        let conn = Connection::open(path).unwrap();
        let mut statement = conn
            .prepare("SELECT rowid, message_id, line FROM charges ORDER BY message_id")
            .unwrap();
        let charges = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut statement = conn.prepare("SELECT count FROM charge_warnings").unwrap();
        let warnings = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (charges, warnings)
    }

    /// A fresh database file's path, in a directory removed when the
    /// returned guard is dropped.
    fn database(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("wameter-store-{name}-"))
            .tempdir()
            .unwrap();
        let path = dir.path().join("wameter.db");
        (dir, path)
    }

    mod pair_cache {
        use super::*;
        use proptest::prelude::*;
        use wameter_core::event::{
            DeliveryStatus, Event, EventKind, InboundKind, Origin, StatusDetail, UserId,
        };

        const BUSINESSES: [&str; 2] = ["111", "222"];
        const USERS: [&str; 3] = ["+15550001", "+15550002", "+15550003"];

        #[derive(Clone, Debug)]
        enum Op {
            Inbound {
                pair: (usize, usize),
                at: i64,
            },
            Outbound {
                pair: (usize, usize),
                message: usize,
                at: i64,
            },
            /// `names`: the business it names, and maybe the recipient.
            Status {
                message: usize,
                status: usize,
                at: i64,
                names: Option<(usize, Option<usize>)>,
            },
            Read {
                pair: (usize, usize),
                since: i64,
            },
        }

        fn pair() -> impl Strategy<Value = (usize, usize)> {
            (0..BUSINESSES.len(), 0..USERS.len())
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (pair(), 0..60i64).prop_map(|(pair, at)| Op::Inbound { pair, at }),
                (pair(), 0..8usize, 0..60i64).prop_map(|(pair, message, at)| Op::Outbound {
                    pair,
                    message,
                    at
                }),
                (
                    0..8usize,
                    0..4usize,
                    0..60i64,
                    proptest::option::of((
                        0..BUSINESSES.len(),
                        proptest::option::of(0..USERS.len())
                    ))
                )
                    .prop_map(|(message, status, at, names)| Op::Status {
                        message,
                        status,
                        at,
                        names
                    }),
                (pair(), 0..60i64).prop_map(|(pair, since)| Op::Read { pair, since }),
            ]
        }

        fn at(second: i64) -> jiff::Timestamp {
            jiff::Timestamp::from_second(1_750_000_000 + second).unwrap()
        }

        fn event(op: &Op) -> Option<Event> {
            let user = |i: usize| UserId::parse(USERS[i]).unwrap();
            let kind = match op {
                Op::Inbound { pair: (b, u), .. } => EventKind::Inbound {
                    business: BUSINESSES[*b].into(),
                    user: user(*u),
                    id: None,
                    entry_point: None,
                    kind: InboundKind::Message,
                },
                Op::Outbound {
                    pair: (b, u),
                    message,
                    ..
                } => EventKind::Outbound {
                    business: BUSINESSES[*b].into(),
                    user: user(*u),
                    id: format!("wamid.{message}").into(),
                    template: None,
                    messaging_account: None,
                },
                Op::Status {
                    message,
                    status,
                    names,
                    ..
                } => EventKind::Status {
                    id: format!("wamid.{message}").into(),
                    status: [
                        DeliveryStatus::Sent,
                        DeliveryStatus::Delivered,
                        DeliveryStatus::Read,
                        DeliveryStatus::Failed,
                    ][*status],
                    error: None,
                    detail: names.map(|(b, u)| {
                        Box::new(StatusDetail {
                            business: Some(BUSINESSES[b].into()),
                            recipient: u.map(user),
                            pricing: None,
                            conversation: None,
                            messaging_account: None,
                        })
                    }),
                },
                Op::Read { .. } => return None,
            };
            let second = match op {
                Op::Inbound { at, .. } | Op::Outbound { at, .. } | Op::Status { at, .. } => *at,
                Op::Read { .. } => unreachable!(),
            };
            Some(Event {
                at: at(second),
                origin: Origin::default(),
                kind,
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

            /// Whatever was written, in whatever order and batches, a pair
            /// read from the cache is the database query's answer.
            #[test]
            fn the_cache_answers_what_the_database_does(ops in proptest::collection::vec(op(), 1..60), batch in 1..4usize) {
                let (_dir, path) = database("pair-cache");
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let store = SqliteStore::open(&path).unwrap();
                let mut pending = Vec::new();
                let mut hits = 0;
                for op in &ops {
                    if let Some(event) = event(op) {
                        pending.push(event);
                        if pending.len() >= batch {
                            runtime.block_on(store.write(Batch::new(None, &pending, &[]))).unwrap();
                            pending.clear();
                        }
                        continue;
                    }
                    let Op::Read { pair: (b, u), since } = op else { unreachable!() };
                    let (business, user, since_us) = (BUSINESSES[*b], USERS[*u], at(*since).as_microsecond());
                    hits += usize::from(store.pairs.get(business, user, since_us).is_some());
                    let scope = EventScope::Contact { business: business.into(), user: user.into(), since_us, until_us: i64::MAX };
                    let expected = store.read_inline(|conn| events_of(conn, &scope)).unwrap();
                    prop_assert_eq!(store.pair_events(business, user, since_us).unwrap(), expected, "{} {} since {}", business, user, since);
                }
                // Reads are sequential here, so no load races a commit:
                // every pair read twice is answered from memory the
                // second time (the test would pass vacuously otherwise).
                let reads: Vec<_> = ops.iter().filter_map(|op| match op { Op::Read { pair, .. } => Some(*pair), _ => None }).collect();
                let repeated = reads.iter().enumerate().filter(|(i, pair)| reads[..*i].contains(pair)).count();
                prop_assert!(hits <= repeated);
                let _ = std::fs::remove_dir_all(path.parent().unwrap());
            }
        }
    }

    /// The scheduling policy (`/proc/<tid>/stat`, field 41) of each of
    /// this process's threads named `name` (as the kernel cuts it: 15 bytes).
    fn policies_of_threads(name: &str) -> Vec<u32> {
        let mut policies = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim_end() != &name[..name.len().min(15)] {
                continue;
            }
            let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
            // The fields after the command's closing parenthesis start at
            // field 3 (state), so field 41 is the 39th of them.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            if let Some(policy) = after.split_whitespace().nth(38) {
                policies.push(policy.parse().unwrap());
            }
        }
        policies
    }

    #[test]
    fn the_writer_does_not_preempt_who_wakes_it() {
        const SCHED_BATCH: u32 = 3;
        let (_dir, path) = database("writer-policy");
        let store = SqliteStore::open(&path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A committed write: the writer has set its policy by then.
        runtime.block_on(store.write(Batch::default())).unwrap();
        // Other tests' writers may be starting beside this one: this one
        // is among those that run under the policy.
        let policies = policies_of_threads("wameter-sqlite-writer");
        assert!(
            policies.contains(&SCHED_BATCH),
            "writer threads' policies: {policies:?}"
        );
    }

    #[test]
    fn a_settle_writes_only_what_changed() {
        let (_dir, path) = database("settle-diff");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let settle = |charges: Vec<ChargeRow>, warnings: Vec<WarningRow>| {
            runtime
                .block_on(store.settle(job(), move |_| Settled {
                    charges,
                    warnings,
                    removed: vec![],
                    warnings_removed: vec![],
                }))
                .unwrap()
        };
        // Every row inserted into `charges`, in order.
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE inserted (message_id TEXT); CREATE TRIGGER log_inserts AFTER INSERT ON charges BEGIN INSERT INTO inserted VALUES (new.message_id); END;")
            .unwrap();
        let inserted = || -> Vec<String> {
            let conn = Connection::open(&path).unwrap();
            let mut statement = conn
                .prepare("SELECT message_id FROM inserted ORDER BY rowid")
                .unwrap();
            statement
                .query_map([], |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };

        settle(
            vec![
                charge("a", "0.01"),
                charge("b", "0.02"),
                charge("c", "0.03"),
            ],
            vec![warning(1)],
        );
        let (first, warnings) = kept(&path);
        assert_eq!(
            first
                .iter()
                .map(|(_, id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(warnings, [1]);
        assert_eq!(inserted(), ["a", "b", "c"]);

        // `b` re-priced, `c` gone, `d` new; `a` is left alone.
        settle(
            vec![
                charge("a", "0.01"),
                charge("b", "0.025"),
                charge("d", "0.04"),
            ],
            vec![warning(2)],
        );
        let (second, warnings) = kept(&path);
        assert_eq!(
            second
                .iter()
                .map(|(_, id, line)| (id.as_str(), line.contains("0.025")))
                .collect::<Vec<_>>(),
            [("a", false), ("b", true), ("d", false)]
        );
        assert_eq!(
            inserted(),
            ["a", "b", "c", "b", "d"],
            "only the changed and new charges are written"
        );
        assert_eq!(warnings, [2]);

        // The same again: nothing to write.
        settle(
            vec![
                charge("d", "0.04"),
                charge("a", "0.01"),
                charge("b", "0.025"),
            ],
            vec![warning(2)],
        );
        assert_eq!(kept(&path).0, second);
        assert_eq!(inserted().len(), 5);
    }

    #[test]
    fn changes_found_against_other_rows_replace_the_month_whole() {
        let (_dir, path) = database("settle-stale");
        let mut conn = Connection::open(&path).unwrap();
        embedded::migrations::runner().run(&mut conn).unwrap();
        let wanted = Settled {
            charges: vec![charge("a", "0.01"), charge("b", "0.02")],
            warnings: vec![],
            removed: vec![],
            warnings_removed: vec![],
        };
        // Found against a snapshot holding row 99, which a reset has
        // dropped since; what is kept now is one stray row.
        conn.execute("INSERT INTO charges (portfolio, month, business, delivered_at_us, message_id, line) VALUES ('P', '2025-07', 'B', 0, 'x', '{}')", []).unwrap();
        let stale = SettleChanges {
            charges: Changes {
                remove: vec![99],
                add: vec![1],
            },
            warnings: Changes {
                remove: vec![],
                add: vec![],
            },
        };
        let tx = conn.transaction().unwrap();
        write_settled(&tx, &job(), &wanted, &stale).unwrap();
        tx.commit().unwrap();
        let ids: Vec<String> = kept(&path).0.into_iter().map(|(_, id, _)| id).collect();
        assert_eq!(ids, ["a", "b"]);

        // Counts that do not add up (a row appeared) replace it whole too.
        conn.execute("INSERT INTO charges (portfolio, month, business, delivered_at_us, message_id, line) VALUES ('P', '2025-07', 'B', 0, 'y', '{}')", []).unwrap();
        let none = SettleChanges {
            charges: Changes {
                remove: vec![],
                add: vec![],
            },
            warnings: Changes {
                remove: vec![],
                add: vec![],
            },
        };
        let tx = conn.transaction().unwrap();
        write_settled(&tx, &job(), &wanted, &none).unwrap();
        tx.commit().unwrap();
        let ids: Vec<String> = kept(&path).0.into_iter().map(|(_, id, _)| id).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    /// A send holds budget until its outcome is stored; a send whose
    /// outcome was stored first (the webhook overtook upstream's answer)
    /// holds none; `sent` is no outcome.
    #[test]
    fn a_send_holds_budget_until_its_outcome() {
        use wameter_core::event::{DeliveryStatus, Event, EventKind, Origin, StatusDetail, UserId};
        let (_dir, path) = database("in-flight");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let at = jiff::Timestamp::from_second(1_790_000_000).unwrap();
        let user = UserId::parse("+5511999990000").unwrap();
        let send = |id: &str| {
            let event = Event {
                at,
                origin: Origin::default(),
                kind: EventKind::Outbound {
                    business: "B".into(),
                    user: user.clone(),
                    id: id.into(),
                    template: None,
                    messaging_account: None,
                },
            };
            let mut batch = Batch::new(None, &[event], &[]);
            batch.in_flight.push(InFlightRow {
                message_id: id.into(),
                business: "B".into(),
                waba: "W".into(),
                amount: "0.0068".into(),
                sent_at_us: at.as_microsecond(),
            });
            runtime.block_on(store.write(batch)).unwrap();
        };
        let status_of = |business: Option<&str>, id: &str, status: DeliveryStatus| {
            let detail = business.map(|b| {
                Box::new(StatusDetail {
                    business: Some(b.into()),
                    ..StatusDetail::default()
                })
            });
            let event = Event {
                at: at + jiff::SignedDuration::from_secs(1),
                origin: Origin::default(),
                kind: EventKind::Status {
                    id: id.into(),
                    status,
                    error: None,
                    detail,
                },
            };
            runtime
                .block_on(store.write(Batch::new(None, &[event], &[])))
                .unwrap();
        };
        let status = |id: &str, status: DeliveryStatus| status_of(None, id, status);
        let held = || -> Vec<String> {
            runtime
                .block_on(store.in_flight(0))
                .unwrap()
                .into_iter()
                .map(|row| row.message_id)
                .collect()
        };

        send("wamid.a");
        send("wamid.b");
        status("wamid.a", DeliveryStatus::Sent);
        assert_eq!(held(), ["wamid.a", "wamid.b"], "sent is no outcome");
        status_of(Some("other"), "wamid.a", DeliveryStatus::Failed);
        assert_eq!(
            held(),
            ["wamid.a", "wamid.b"],
            "another business's status of the same wamid is not this send's outcome"
        );
        status_of(Some("other"), "wamid.e", DeliveryStatus::Delivered);
        send("wamid.e");
        assert_eq!(
            held(),
            ["wamid.a", "wamid.b", "wamid.e"],
            "nor does it stop the send from holding budget"
        );
        status_of(Some("B"), "wamid.e", DeliveryStatus::Delivered);
        status("wamid.a", DeliveryStatus::Failed);
        status("wamid.b", DeliveryStatus::Read);
        assert!(held().is_empty(), "failed and read end the flight");
        status("wamid.c", DeliveryStatus::Delivered);
        send("wamid.c");
        assert!(
            held().is_empty(),
            "delivered before its send was recorded: holds nothing"
        );
        send("wamid.d");
        assert!(
            runtime
                .block_on(store.in_flight(at.as_microsecond() + 1))
                .unwrap()
                .is_empty(),
            "older than asked for"
        );
    }

    /// A fresh store's database, migrated, at a path named `name`.
    fn migrated(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let (dir, path) = database(name);
        drop(SqliteStore::open(&path).unwrap());
        (dir, path)
    }

    /// The steps of SQLite's plan for `sql` with `values` bound (the detail
    /// column of `EXPLAIN QUERY PLAN`).
    fn query_plan(conn: &Connection, sql: &str, values: impl rusqlite::Params) -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(values, |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The months with kept charges are found a few steps per pair, not
    /// by reading every charge.
    #[test]
    fn the_months_kept_are_found_without_reading_every_charge() {
        let (_dir, path) = migrated("charge-months");
        let conn = Connection::open(path).unwrap();
        let mut insert = conn
            .prepare("INSERT INTO charges (portfolio, month, business, delivered_at_us, message_id, line) VALUES (?1, ?2, 'B', 0, ?3, '{}')")
            .unwrap();
        for n in 0..3_000 {
            let portfolio = ["P2", "P1", "P10"][n % 3];
            let month = ["2025-08", "2025-07"][n % 2];
            insert
                .execute(params![portfolio, month, n.to_string()])
                .unwrap();
        }
        let found = charge_months(&conn).unwrap();
        // The statements' instructions run (their counters, kept with the
        // cached statements): a row visited costs a few.
        let steps: i32 = CHARGE_MONTH_SEEKS
            .iter()
            .map(|sql| {
                let statement = conn.prepare_cached(sql).unwrap();
                statement.get_status(rusqlite::StatementStatus::VmStep)
            })
            .sum();
        let mut expected = Vec::new();
        for portfolio in ["P1", "P10", "P2"] {
            for month in ["2025-07", "2025-08"] {
                expected.push((portfolio.to_string(), month.to_string()));
            }
        }
        assert_eq!(found, expected);
        assert!(steps < 500, "{steps} steps for 6 pairs of 3,000 charges");
    }

    /// Each shape of a charge slice is found the way its
    /// [`SliceShape`] says: a day of every business through the delivery
    /// instant's index, not by reading every charge kept (the plan this
    /// store had, whatever the slice).
    #[test]
    fn a_slice_of_charges_reads_only_its_rows() {
        let (_dir, path) = migrated("slice-plans");
        let conn = open_reader(&path).unwrap();
        let slice = |businesses: Option<Vec<String>>, from_us, to_us| ChargeSlice {
            businesses,
            from_us,
            to_us,
            months: None,
        };
        let day = (1_769_904_000_000_000, 1_769_990_400_000_000);
        let cases = [
            (
                slice(Some(vec!["B".into()]), day.0, day.1),
                "SEARCH charges USING INDEX charges_by_delivery (business=? AND delivered_at_us>? AND delivered_at_us<?)",
            ),
            (
                slice(None, day.0, day.1),
                "SEARCH charges USING INDEX charges_by_delivered_at (delivered_at_us>? AND delivered_at_us<?)",
            ),
            (
                slice(None, i64::MIN, day.1),
                "SEARCH charges USING INDEX charges_by_delivered_at (delivered_at_us>? AND delivered_at_us<?)",
            ),
            (slice(None, i64::MIN, i64::MAX), "SCAN charges"),
        ];
        for (slice, expected) in cases {
            for columns in [
                format!("business, delivered_at_us, message_id, line, {FACT_COLUMNS}"),
                format!("business, delivered_at_us, message_id, {FACT_COLUMNS}"),
                SUM_COLUMNS.to_string(),
            ] {
                let list = slice.businesses.as_deref().map(json_array);
                let plan = query_plan(
                    &conn,
                    &select_charges(&columns, &slice),
                    params![list, slice.from_us, slice.to_us],
                );
                assert!(
                    plan.iter().any(|step| step == expected),
                    "{:?}: {plan:?}",
                    slice.shape()
                );
            }
        }
    }

    /// The warnings of a slice's months are found through the month, with
    /// a business list or without.
    #[test]
    fn a_slice_reads_only_its_months_warnings() {
        let (_dir, path) = migrated("warning-plans");
        let conn = open_reader(&path).unwrap();
        for list in [None, Some(json_array(&["B".to_string()]))] {
            let plan = query_plan(&conn, SLICE_WARNINGS, params![list, "2026-01", "2026-02"]);
            assert!(
                plan.iter().any(|step| step
                    == "SEARCH charge_warnings USING INDEX charge_warnings_by_month (month>? AND month<?)"),
                "{list:?}: {plan:?}"
            );
        }
    }

    /// A status ends its send's flight by one seek, not by reading every
    /// send in flight.
    #[test]
    fn a_flight_ends_by_its_message() {
        let (_dir, path) = migrated("flight-plans");
        let conn = Connection::open(path).unwrap();
        for business in [None, Some("B")] {
            let plan = query_plan(&conn, LAND_FLIGHT, params!["wamid.1", business]);
            assert_eq!(
                plan,
                ["SEARCH in_flight USING INDEX in_flight_by_message (message_id=?)"],
                "{business:?}"
            );
        }
    }

    /// Every statement that finds a message's events reads them through
    /// the dedupe key's prefix: the store keeps no other index by message
    /// (migration V14), and a statement that lost its way would read
    /// every event.
    #[test]
    fn a_messages_events_are_found_by_their_keys() {
        let (_dir, path) = migrated("message-plans");
        let conn = Connection::open(path).unwrap();
        // Events read by key only: what is scanned is a constant row or
        // the list of wamids asked for.
        let by_key = |plan: &[String]| {
            plan.iter()
                .any(|step| step.contains("(dedupe_key>? AND dedupe_key<?)"))
                && plan.iter().all(|step| {
                    !step.starts_with("SCAN")
                        || step == "SCAN CONSTANT ROW"
                        || step.starts_with("SCAN ids")
                })
        };
        let (first, past) = message_range("wamid.1", "status");
        let plan = query_plan(&conn, JOINS_STORED, params![first, past, 10, "B"]);
        assert!(by_key(&plan), "{plan:?}");
        let plan = query_plan(
            &conn,
            HOLD_FLIGHT,
            params!["B", "wamid.1", "W", "0.1", 0, first, past],
        );
        assert!(by_key(&plan), "{plan:?}");
        let plan = query_plan(&conn, &message_senders_sql(), params![r#"["wamid.1"]"#]);
        assert!(by_key(&plan), "{plan:?}");
        let scopes = [
            EventScope::Contact {
                business: "B".into(),
                user: "+1".into(),
                since_us: 0,
                until_us: 10,
            },
            EventScope::Businesses {
                businesses: Some(vec!["B".into()]),
                since_us: 0,
                until_us: 10,
                from_id: 0,
            },
            EventScope::Businesses {
                businesses: Some(vec!["B".into()]),
                since_us: 0,
                until_us: 10,
                from_id: 5,
            },
            EventScope::Businesses {
                businesses: None,
                since_us: 0,
                until_us: 10,
                from_id: 0,
            },
            EventScope::Businesses {
                businesses: None,
                since_us: 0,
                until_us: 10,
                from_id: 5,
            },
        ];
        for scope in scopes {
            let (sql, values) = scoped_sql(&scope, "id");
            let plan = query_plan(&conn, &sql, rusqlite::params_from_iter(values));
            let halves = plan
                .iter()
                .filter(|step| step.contains("(dedupe_key>? AND dedupe_key<?)"))
                .count();
            let expected = if matches!(
                scope,
                EventScope::Businesses {
                    from_id: 5,
                    businesses: Some(_),
                    ..
                }
            ) {
                5
            } else if matches!(scope, EventScope::Businesses { from_id: 5, .. }) {
                4
            } else {
                2
            };
            assert_eq!(halves, expected, "{scope:?}: {plan:?}");
            // (`SCAN events` is the scope itself when it is every business's
            // span, `SCAN s` the scope kept as a table; the halves found,
            // `e`, are never scanned.)
            assert!(
                !plan.iter().any(|step| step == "SCAN e"),
                "{scope:?}: {plan:?}"
            );
            // A scope of businesses is read once, not once per use.
            if let EventScope::Businesses { .. } = scope {
                assert!(
                    plan.iter().any(|step| step == "MATERIALIZE selected"),
                    "{scope:?}: {plan:?}"
                );
            }
        }
    }

    /// The writer's connection is durable on commit and copies its log into
    /// the database only once the log is long (see `WAL_CHECKPOINT_PAGES`):
    /// SQLite takes a pragma it cannot apply without an error, so each is
    /// read back.
    #[test]
    fn the_writer_syncs_every_commit_and_checkpoints_a_long_log() {
        let (_dir, path) = database("configure");
        let conn = Connection::open(path).unwrap();
        configure(&conn).unwrap();
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |row| {
                row.get::<_, rusqlite::types::Value>(0)
            })
            .map(|value| match value {
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Text(text) => text,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        // 2 is FULL.
        assert_eq!(pragma("synchronous"), "2");
        assert_eq!(
            pragma("wal_autocheckpoint"),
            WAL_CHECKPOINT_PAGES.to_string()
        );
    }

    /// The window query's statements keep their plan from one execution
    /// to the next, whatever the values bound (see `stable_plans`).
    #[test]
    fn statements_are_not_prepared_again_for_new_values() {
        use wameter_core::event::{Event, EventKind, InboundKind, Origin, UserId};
        let (_dir, path) = database("stable-plans");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let users: Vec<UserId> = ["+5511999990000", "+5511999990001"]
            .iter()
            .map(|u| UserId::parse(u).unwrap())
            .collect();
        for n in 0..40 {
            let at = jiff::Timestamp::from_second(1_790_000_000 + n).unwrap();
            let user = users[n as usize % 2].clone();
            let event = Event {
                at,
                origin: Origin::default(),
                kind: EventKind::Inbound {
                    business: "B".into(),
                    user,
                    id: Some(format!("wamid.{n}").into()),
                    entry_point: None,
                    kind: InboundKind::Message,
                },
            };
            runtime
                .block_on(store.write(Batch::new(None, &[event], &[])))
                .unwrap();
        }
        let conn = open_reader(&path).unwrap();
        let scope = |n: i64| EventScope::Contact {
            business: "B".into(),
            user: users[n as usize % 2].to_string(),
            since_us: n,
            until_us: i64::MAX - n,
        };
        for n in 0..20 {
            assert_eq!(events_of(&conn, &scope(n)).unwrap().len(), 20);
        }
        let (sql, _) = scoped_sql(&scope(0), "id, line");
        let statement = conn.prepare_cached(&sql).unwrap();
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::Run),
            20,
            "the cached statement is the one that ran"
        );
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "prepared once, not once per execution"
        );
    }
}
