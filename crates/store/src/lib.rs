//! Durable storage for `wameter serve`: the raw webhook bodies
//! (append-only, accepted and rejected), the canonical events and notices
//! they turned into, and per-contact state — in an embedded SQLite file by
//! default, or in PostgreSQL for several server processes.
//!
//! The store keeps facts, not conclusions. Every event is stored once under
//! a key that mirrors the engine's own deduplication, so a webhook Meta
//! redelivers, or the same status from two server processes, is a no-op.
//! Charges are kept too, per (portfolio, month), but as a conclusion the
//! engine re-derives from the events whenever new ones may change it
//! ([`settled`]): the events stay the one source of truth, and "replay the
//! store" and "ask the server" stay the same computation.
//!
//! Both backends run the same schema design (`migrations/sqlite`,
//! `migrations/postgres`, applied with refinery) and answer the same
//! [`Store`] calls.

pub mod alerts;
pub mod pairs;
pub mod postgres;
pub mod record;
pub mod relay;
pub mod settled;
pub mod sqlite;

#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod settle_tests;
#[cfg(test)]
mod test_postgres;

use std::path::PathBuf;

pub use alerts::{AlertRow, AlertWrite};
pub use record::{
    Batch, ContactRow, Counts, EventRecord, InFlightRow, NoticeRecord, StoredEvent, StoredWebhook,
    WebhookRecord, Written,
};
pub use relay::{RelayBacklog, RelayClaim};
pub use settled::{
    ChargeFacts, ChargeRow, ChargeSlice, KeptFacts, SettleJob, Settled, UnsettledMark, WarningRow,
};

/// Where the data lives, as given to `--database`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` (or a bare path).
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to the driver as is.
    Postgres(String),
    /// `discard://`: acknowledges every write without storing it. Only for
    /// measuring the server's ceiling without a database (`bench/serve.sh`);
    /// it loses everything by design.
    Discard,
}

impl DatabaseUrl {
    /// Reads a `--database` value.
    pub fn parse(text: &str) -> Result<DatabaseUrl, StoreError> {
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Open {
                    url: text.into(),
                    message: "no file path after sqlite://".into(),
                });
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if text == "discard://" {
            return Ok(DatabaseUrl::Discard);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(text.to_string()));
        }
        if text.contains("://") {
            return Err(StoreError::Open {
                url: text.into(),
                message: "unknown database kind; use sqlite://PATH or postgres://…".into(),
            });
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(text)))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Discard => f.write_str("discard://"),
            // Never print a password.
            DatabaseUrl::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    write!(f, "{}://…{}", &url[..scheme], &url[at..])
                }
                _ => f.write_str(url),
            },
        }
    }
}

/// Which events a query wants. Ranges are half-open, UNIX microseconds.
///
/// Besides the events in the scope proper, a query returns the other half
/// of every message that straddles its edge: the outbound of a status in
/// range (sent before `since`), and the statuses of an outbound in range
/// (also those that name no business, from canonical lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventScope {
    /// One (business phone number, user) pair.
    Contact {
        /// Business phone number id.
        business: String,
        /// User as stored (`+` E.164 or BSUID).
        user: String,
        /// Start (inclusive).
        since_us: i64,
        /// End (exclusive).
        until_us: i64,
    },
    /// Some business phone numbers, or all of them.
    Businesses {
        /// `None`: every business.
        businesses: Option<Vec<String>>,
        /// Start (inclusive).
        since_us: i64,
        /// End (exclusive).
        until_us: i64,
        /// Only events from this id on (`0`: all), with their messages'
        /// other halves whatever their id.
        from_id: i64,
    },
}

impl EventScope {
    fn range_us(&self) -> (i64, i64) {
        match self {
            EventScope::Contact {
                since_us, until_us, ..
            }
            | EventScope::Businesses {
                since_us, until_us, ..
            } => (*since_us, *until_us),
        }
    }
}

/// A write [`Store::queue`]d and not yet waited for.
#[derive(Debug)]
pub struct Queued(QueuedWrite);

impl Queued {
    /// Leaves the write to the writer, no one waiting for its commit: the
    /// writer logs it should it fail. `Err` when the queue refused it
    /// (full, or its writer gone): it will not be written.
    ///
    /// Waiting cost a task per write, and spawning it woke an idle runtime
    /// thread, which took the caller's core before it had answered: the
    /// guard's record step was 4 µs at the median and 190 µs at p99 for
    /// the spawn alone (docs/PERFORMANCE.md).
    pub fn unwatched(self) -> Result<(), StoreError> {
        match self.0 {
            QueuedWrite::Queued(answer) => answer.map(drop),
            // The store that discards writes has nothing to do.
            QueuedWrite::Deferred(_) => Ok(()),
        }
    }
}

#[derive(Debug)]
enum QueuedWrite {
    /// In the writer's queue, SQLite's or PostgreSQL's (or refused by it).
    Queued(Result<tokio::sync::oneshot::Receiver<Result<Written, StoreError>>, StoreError>),
    /// Written when waited for.
    Deferred(Batch),
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot open database {url}: {message}")]
    Open {
        /// The database, password hidden.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// A write failed; nothing of it was kept.
    #[error("write failed, nothing stored: {0}")]
    Write(String),
    /// A read failed.
    #[error("read failed: {0}")]
    Read(String),
    /// The write queue is full; retry later.
    #[error(
        "the store is busy ({} writes queued); retry later",
        sqlite::QUEUE_WRITES_MAX
    )]
    Busy,
    /// The writer thread stopped (a bug or a fatal disk error).
    #[error("the database writer stopped")]
    WriterGone,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Read(error.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::Read(error.to_string())
    }
}

impl StoreError {
    /// Whether retrying later may succeed (the server answers 503).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy)
    }
}

/// A store: SQLite or PostgreSQL behind the same calls.
///
/// An enum rather than a trait object: two backends, both known here, and
/// async methods without boxing.
#[derive(Debug)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL.
    Postgres(postgres::PostgresStore),
    /// Stores nothing (benchmark ceiling; see [`DatabaseUrl::Discard`]).
    Discard,
}

impl Store {
    /// Opens the database and migrates it.
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        match url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
                    .await
                    .map_err(|e| StoreError::Open {
                        url: url.to_string(),
                        message: e.to_string(),
                    })??;
                Ok(Store::Sqlite(store))
            }
            DatabaseUrl::Postgres(text) => {
                Ok(Store::Postgres(postgres::PostgresStore::open(text).await?))
            }
            DatabaseUrl::Discard => Ok(Store::Discard),
        }
    }

    /// Writes a batch durably: returns only once it is committed.
    pub async fn write(&self, batch: Batch) -> Result<Written, StoreError> {
        match self {
            Store::Sqlite(store) => store.write(batch).await,
            Store::Postgres(store) => store.write(batch).await,
            Store::Discard => Ok(Written {
                accepted: (batch.events.len() + batch.notices.len()) as u64,
                duplicates: batch.repeats,
                ..Written::default()
            }),
        }
    }

    /// Queues a write without waiting for it; [`Store::committed`] waits.
    ///
    /// The write takes its place in the process's one writer queue before
    /// this returns, so it commits with or ahead of any write this process
    /// queues after it — what the guard relies on when it answers before
    /// its record is on disk. (Across processes on one PostgreSQL there is
    /// no such order; see docs/DEPLOYMENT.md.)
    pub fn queue(&self, batch: Batch) -> Queued {
        match self {
            Store::Sqlite(store) => Queued(QueuedWrite::Queued(store.queue(batch))),
            Store::Postgres(store) => Queued(QueuedWrite::Queued(store.queue(batch))),
            Store::Discard => Queued(QueuedWrite::Deferred(batch)),
        }
    }

    /// Waits for a queued write to commit.
    pub async fn committed(&self, queued: Queued) -> Result<Written, StoreError> {
        match queued.0 {
            QueuedWrite::Queued(answer) => answer?.await.map_err(|_| StoreError::WriterGone)?,
            QueuedWrite::Deferred(batch) => self.write(batch).await,
        }
    }

    /// The events of a scope, in storage order.
    pub async fn events(&self, scope: EventScope) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(store) => store.events(scope).await,
            Store::Postgres(store) => store.events(scope).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Events stored after `after_id` (at most `limit`), optionally only
    /// those of some businesses.
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: i64,
        businesses: Option<Vec<String>>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(store) => store.events_after(after_id, limit, businesses).await,
            Store::Postgres(store) => store.events_after(after_id, limit, businesses).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// A pair's events from `since_us` on (as [`EventScope::Contact`]) and
    /// its stored state, read together.
    pub async fn contact_with_events(
        &self,
        business: &str,
        user: &str,
        since_us: i64,
    ) -> Result<(Vec<StoredEvent>, Option<ContactRow>), StoreError> {
        match self {
            Store::Sqlite(store) => {
                store.contact_with_events(business.to_string(), user.to_string(), since_us)
            }
            Store::Postgres(store) => {
                let scope = EventScope::Contact {
                    business: business.to_string(),
                    user: user.to_string(),
                    since_us,
                    until_us: i64::MAX,
                };
                let (events, contact) =
                    tokio::join!(store.events(scope), store.contact(business, user));
                Ok((events?, contact?))
            }
            Store::Discard => Ok((Vec::new(), None)),
        }
    }

    /// A pair's events from `since_us` on (as [`EventScope::Contact`]):
    /// what the guard reads before each send. SQLite answers from memory
    /// once the pair was read ([`pairs`]).
    pub async fn pair_events(
        &self,
        business: &str,
        user: &str,
        since_us: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(store) => store.pair_events(business, user, since_us),
            Store::Postgres(store) => {
                store
                    .events(EventScope::Contact {
                        business: business.to_string(),
                        user: user.to_string(),
                        since_us,
                        until_us: i64::MAX,
                    })
                    .await
            }
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// (wamid, business) of the sends stored with these wamids, and of the
    /// statuses stored from Meta's (signed) webhooks for them: whose
    /// messages they are. A status posted to `POST /v1/events` says nothing
    /// of whose a message is.
    pub async fn message_senders(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Store::Sqlite(store) => store.message_senders(ids).await,
            Store::Postgres(store) => store.message_senders(ids).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// The highest stored event id on SQLite, where one writer commits ids
    /// in order, so every event up to it is visible to any later read (the
    /// settler reads from past it next time). `None` elsewhere: PostgreSQL
    /// ids from a sequence can commit out of order.
    pub async fn committed_event_id(&self) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(store) => store.last_event_id().await.map(Some),
            Store::Postgres(_) | Store::Discard => Ok(None),
        }
    }

    /// Business phone numbers with at least one contact.
    pub async fn businesses(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(store) => store.businesses().await,
            Store::Postgres(store) => store.businesses().await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Webhook bodies stored after `after_id`, optionally of one outcome:
    /// at most `limit` of them and `max_bytes` of bodies (but at least one).
    pub async fn webhooks(
        &self,
        after_id: i64,
        limit: i64,
        outcome: Option<String>,
        max_bytes: i64,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        match self {
            Store::Sqlite(store) => store.webhooks(after_id, limit, outcome, max_bytes).await,
            Store::Postgres(store) => store.webhooks(after_id, limit, outcome, max_bytes).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Row counts.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        match self {
            Store::Sqlite(store) => store.counts().await,
            Store::Postgres(store) => store.counts().await,
            Store::Discard => Ok(Counts::default()),
        }
    }

    /// Marks left by new events (at most `limit`, oldest first).
    pub async fn unsettled(&self, limit: i64) -> Result<Vec<UnsettledMark>, StoreError> {
        match self {
            Store::Sqlite(store) => store.unsettled(limit).await,
            Store::Postgres(store) => store.unsettled(limit).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Settles one (portfolio, month): `compute` prices the events read for
    /// it, and its charges replace the kept ones with the job's marks
    /// deleted, in one transaction (see [`settled`]).
    pub async fn settle<F>(&self, job: SettleJob, compute: F) -> Result<(), StoreError>
    where
        F: FnOnce(Vec<StoredEvent>) -> Settled + Send + 'static,
    {
        match self {
            Store::Sqlite(store) => store.settle(job, compute).await,
            Store::Postgres(store) => store.settle(job, compute).await,
            Store::Discard => Ok(()),
        }
    }

    /// Records what the kept charges are settled with; when that changed,
    /// unsettles every month. Returns whether it did.
    pub async fn reset_settlement(&self, fingerprint: String) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => store.reset_settlement(fingerprint).await,
            Store::Postgres(store) => store.reset_settlement(fingerprint).await,
            Store::Discard => Ok(false),
        }
    }

    /// Kept charges of a slice (unordered).
    pub async fn charges(&self, slice: ChargeSlice) -> Result<Vec<ChargeRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.charges(slice).await,
            Store::Postgres(store) => store.charges(slice).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Kept charges of a slice as typed columns, without their lines
    /// (unordered): what pages aggregate.
    pub async fn charge_facts(&self, slice: ChargeSlice) -> Result<Vec<KeptFacts>, StoreError> {
        match self {
            Store::Sqlite(store) => store.charge_facts(slice).await,
            Store::Postgres(store) => store.charge_facts(slice).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Kept charges of a slice summed by every column a cost report
    /// groups by ([`wameter_meter::sums`]), counting only those `keep`
    /// keeps (by business and Messaging account), and a message for each
    /// kept one whose columns do not read. No row is kept in memory.
    pub async fn charge_sums(
        &self,
        slice: ChargeSlice,
        keep: impl Fn(&str, Option<&str>) -> bool + Send + 'static,
    ) -> Result<(Vec<wameter_meter::sums::ChargeSum>, Vec<String>), StoreError> {
        match self {
            Store::Sqlite(store) => store.charge_sums(slice, keep).await,
            Store::Postgres(store) => store.charge_sums(slice, keep).await,
            Store::Discard => Ok((Vec::new(), Vec::new())),
        }
    }

    /// The (portfolio, month) pairs that have kept charges.
    pub async fn charge_months(&self) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            Store::Sqlite(store) => store.charge_months().await,
            Store::Postgres(store) => store.charge_months().await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// The kept charges of one (portfolio, month) as typed columns.
    pub async fn month_facts(
        &self,
        portfolio: String,
        month: String,
    ) -> Result<Vec<KeptFacts>, StoreError> {
        match self {
            Store::Sqlite(store) => store.month_facts(portfolio, month).await,
            Store::Postgres(store) => store.month_facts(portfolio, month).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Kept warnings of a slice's months (unordered, may repeat across months).
    pub async fn charge_warnings(&self, slice: ChargeSlice) -> Result<Vec<WarningRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.charge_warnings(slice).await,
            Store::Postgres(store) => store.charge_warnings(slice).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// The canonical lines of the stored notices (template re-categorised,
    /// tier reached…) dated in `[since_us, until_us)`;
    /// with a WABA list, only those of its WABAs (a notice of no WABA is
    /// then left out), by date.
    pub async fn notices(
        &self,
        wabas: Option<Vec<String>>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(store) => store.notices(wabas, since_us, until_us).await,
            Store::Postgres(store) => store.notices(wabas, since_us, until_us).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Records a budget threshold crossing or an alert delivery attempt.
    /// For a crossing, answers whether it was new (`false`: that budget,
    /// month and threshold was recorded before).
    pub async fn write_alert(&self, write: AlertWrite) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => store.write_alert(write).await,
            Store::Postgres(store) => store.write_alert(write).await,
            Store::Discard => Ok(matches!(write, AlertWrite::Cross(_))),
        }
    }

    /// Alerts kept: of one month (`YYYY-MM`), or every one not yet delivered.
    pub async fn alerts(&self, month: Option<String>) -> Result<Vec<AlertRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.alerts(month).await,
            Store::Postgres(store) => store.alerts(month).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Guarded sends still holding budget, sent at or after `since_us`
    /// (a send with no outcome after a week is waiting for none).
    pub async fn in_flight(&self, since_us: i64) -> Result<Vec<InFlightRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.in_flight(since_us).await,
            Store::Postgres(store) => store.in_flight(since_us).await,
            Store::Discard => Ok(Vec::new()),
        }
    }

    /// Takes the right to drain the relay outbox, if no other process
    /// holds it ([`relay`]). `None`: another relayer has it; ask again later.
    pub async fn relay_claim(&self) -> Result<Option<RelayClaim>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(Some(RelayClaim::Local)),
            Store::Postgres(store) => store.relay_claim().await,
            Store::Discard => Ok(None),
        }
    }

    /// The oldest `limit` bodies waiting for relay, in the order received.
    pub async fn relay_pending(
        &self,
        claim: &RelayClaim,
        limit: i64,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        match (self, claim) {
            (Store::Sqlite(store), _) => store.relay_pending(limit).await,
            (Store::Postgres(_), RelayClaim::Postgres(client)) => {
                postgres::relay_pending(client, limit).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Takes relayed bodies out of the outbox.
    pub async fn relay_done(&self, claim: &RelayClaim, ids: Vec<i64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        match (self, claim) {
            (Store::Sqlite(store), _) => store.relay_done(ids).await,
            (Store::Postgres(_), RelayClaim::Postgres(client)) => {
                postgres::relay_done(client, ids).await
            }
            _ => Ok(()),
        }
    }

    /// What waits in the relay outbox.
    pub async fn relay_backlog(&self) -> Result<RelayBacklog, StoreError> {
        match self {
            Store::Sqlite(store) => store.relay_backlog().await,
            Store::Postgres(store) => store.relay_backlog().await,
            Store::Discard => Ok(RelayBacklog::default()),
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.ping().await,
            Store::Postgres(store) => store.ping().await,
            Store::Discard => Ok(()),
        }
    }
}
