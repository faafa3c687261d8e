//! PostgreSQL, for several `serve` processes on one database.
//!
//! Writes are committed in groups ([`group`]): one transaction and one WAL
//! flush for every write waiting, answered only after the commit.
//! Correctness across processes rests on the
//! database, not on the processes: events and notices go in under a unique
//! dedupe key (`ON CONFLICT DO NOTHING`), so two processes storing the same
//! redelivered status keep it once; the per-contact row is changed by one
//! upsert statement, which PostgreSQL serialises per row, so no update is
//! lost. Rows are written in key order ([`Batch::new`]) so two transactions
//! never wait on each other in a cycle.

mod group;

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use group::WriteJob;
pub use group::{BATCH_WRITES_MAX, QUEUE_WRITES_MAX};

use crate::alerts::{AlertRow, AlertWrite};
use crate::record::{Batch, ContactRow, Counts, InFlightRow, StoredEvent, StoredWebhook, Written};
use crate::relay::{RelayBacklog, RelayClaim};
use crate::settled::{
    ChargeFacts, ChargeRow, ChargeSlice, KeptFacts, SettleJob, Settled, UnsettledMark, WarningRow,
    changes, months_spanned,
};
use crate::settled::{FACT_COLUMNS, SUM_COLUMNS, SliceShape};
use crate::{DatabaseUrl, EventScope, StoreError};
use wameter_meter::sums::{ChargeSum, ChargeSums, FactsRef};

pub(crate) mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// Connections per process at most.
pub const POOL_CONNECTIONS_MAX: usize = 16;

/// An arbitrary constant: the advisory lock that lets one process at a
/// time run the migrations when several start together.
const MIGRATION_LOCK: i64 = 0x0077_616d_6574_6572;

/// The advisory lock held by the one process that relays webhooks
/// ([`crate::relay`]).
const RELAY_LOCK: i64 = MIGRATION_LOCK + 2;

/// A PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    /// The queue of the one writer task ([`group`]).
    writer: mpsc::Sender<WriteJob>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

fn shown(url: &str) -> String {
    DatabaseUrl::Postgres(url.to_string()).to_string()
}

impl PostgresStore {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let open_error = |message: String| StoreError::Open {
            url: shown(url),
            message,
        };
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_error(e.to_string()))?;

        let (mut client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let driver = tokio::spawn(connection);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let migrated = embedded::migrations::runner().run_async(&mut client).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| open_error(e.to_string()))?;
        drop(client);
        let _ = driver.await;
        migrated.map_err(|e| StoreError::Migrate(e.to_string()))?;

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_CONNECTIONS_MAX)
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let (writer, jobs) = mpsc::channel(QUEUE_WRITES_MAX);
        tokio::spawn(group::run_writer(pool.clone(), jobs));
        Ok(PostgresStore { pool, writer })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Read(format!("no database connection: {e}")))
    }

    /// Writes a batch durably: it joins the writer's next group and the
    /// answer comes once that group's transaction committed.
    pub async fn write(&self, batch: Batch) -> Result<Written, StoreError> {
        self.queue(batch)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Puts a batch in the writer's queue now (so it commits with or ahead
    /// of any batch queued after it); the receiver answers after the commit.
    pub fn queue(
        &self,
        batch: Batch,
    ) -> Result<oneshot::Receiver<Result<Written, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .try_send(WriteJob { batch, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => StoreError::Busy,
                mpsc::error::TrySendError::Closed(_) => StoreError::WriterGone,
            })?;
        Ok(answer)
    }

    /// Marks at most `limit` left by new events, oldest first.
    pub async fn unsettled(&self, limit: i64) -> Result<Vec<UnsettledMark>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, business, month, first_event_id FROM unsettled ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| UnsettledMark {
                id: row.get(0),
                business: row.get(1),
                month: row.get(2),
                first_event_id: row.get(3),
            })
            .collect())
    }

    /// Settles one (portfolio, month) (see `SqliteStore::settle`). Several
    /// processes may settle the same month at once: a transaction-scoped
    /// advisory lock on the (portfolio, month) makes them take turns, and
    /// each reads the events only once it holds the lock, so the last to
    /// write has seen at least what the others saw.
    pub async fn settle<F>(&self, job: SettleJob, compute: F) -> Result<(), StoreError>
    where
        F: FnOnce(Vec<StoredEvent>) -> Settled + Send + 'static,
    {
        let write_error = |e: tokio_postgres::Error| StoreError::Write(e.to_string());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(write_error)?;
        let lock = format!("settle/{}/{}", job.portfolio, job.month);
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock])
            .await
            .map_err(write_error)?;
        let scope = EventScope::Businesses {
            businesses: Some(job.businesses.clone()),
            since_us: job.since_us,
            until_us: job.until_us,
            from_id: job.from_event_id.unwrap_or(0),
        };
        let events = events_on(&tx, scope).await?;
        if job.from_event_id.is_some() {
            // An incremental round: the caller found the changes.
            let settled = tokio::task::spawn_blocking(move || compute(events))
                .await
                .map_err(|e| StoreError::Read(e.to_string()))?;
            let (businesses, messages): (Vec<&str>, Vec<&str>) = settled
                .charges
                .iter()
                .map(|c| (c.business.as_str(), c.message_id.as_str()))
                .chain(
                    settled
                        .removed
                        .iter()
                        .map(|(b, m)| (b.as_str(), m.as_str())),
                )
                .unzip();
            tx.execute(
                "DELETE FROM charges c USING unnest($3::text[], $4::text[]) AS gone (business, message_id)
                 WHERE c.portfolio = $1 AND c.month = $2 AND c.business = gone.business AND c.message_id = gone.message_id",
                &[&job.portfolio, &job.month, &businesses, &messages],
            )
            .await
            .map_err(write_error)?;
            insert_charges(&tx, &job, settled.charges.iter()).await?;
            for w in &settled.warnings_removed {
                tx.execute(
                    "DELETE FROM charge_warnings WHERE ctid = (SELECT ctid FROM charge_warnings
                       WHERE portfolio = $1 AND month = $2 AND business IS NOT DISTINCT FROM $3 AND event_id IS NOT DISTINCT FROM $4
                         AND code = $5 AND message = $6 AND count = $7 LIMIT 1)",
                    &[&job.portfolio, &job.month, &w.business, &w.event_id, &w.code, &w.message, &w.count],
                )
                .await
                .map_err(write_error)?;
            }
            insert_warnings(&tx, &job, settled.warnings.iter()).await?;
            tx.execute("DELETE FROM unsettled WHERE id = ANY($1)", &[&job.marks])
                .await
                .map_err(write_error)?;
            return tx.commit().await.map_err(write_error);
        }
        // The advisory lock keeps other settlers of this month out, so the
        // kept rows stay those read here (a pricing reset may drop them all
        // meanwhile; the count check below sees it).
        let kept_charges: Vec<(String, ChargeRow)> = tx
            .query(&format!("SELECT ctid::text, business, delivered_at_us, message_id, line, {FACT_COLUMNS} FROM charges WHERE portfolio = $1 AND month = $2"), &[&job.portfolio, &job.month])
            .await
            .map_err(write_error)?
            .iter()
            .map(|row| (row.get(0), charge_row(row, 1)))
            .collect();
        let kept_warnings: Vec<(String, WarningRow)> = tx
            .query("SELECT ctid::text, business, event_id, code, message, count FROM charge_warnings WHERE portfolio = $1 AND month = $2", &[&job.portfolio, &job.month])
            .await
            .map_err(write_error)?
            .iter()
            .map(|row| (row.get(0), warning_row(row, 1)))
            .collect();
        let (settled, charge_changes, warning_changes) = tokio::task::spawn_blocking(move || {
            let settled = compute(events);
            let charge_changes = changes(kept_charges, &settled.charges);
            let warning_changes = changes(kept_warnings, &settled.warnings);
            (settled, charge_changes, warning_changes)
        })
        .await
        .map_err(|e| StoreError::Read(e.to_string()))?;
        tx.execute(
            "DELETE FROM charges WHERE ctid = ANY($1::text[]::tid[])",
            &[&charge_changes.remove],
        )
        .await
        .map_err(write_error)?;
        tx.execute(
            "DELETE FROM charge_warnings WHERE ctid = ANY($1::text[]::tid[])",
            &[&warning_changes.remove],
        )
        .await
        .map_err(write_error)?;
        insert_charges(
            &tx,
            &job,
            charge_changes.add.iter().map(|&i| &settled.charges[i]),
        )
        .await?;
        insert_warnings(
            &tx,
            &job,
            warning_changes.add.iter().map(|&i| &settled.warnings[i]),
        )
        .await?;
        if month_rows(&tx, "charges", &job).await? != settled.charges.len()
            || month_rows(&tx, "charge_warnings", &job).await? != settled.warnings.len()
        {
            tx.execute(
                "DELETE FROM charges WHERE portfolio = $1 AND month = $2",
                &[&job.portfolio, &job.month],
            )
            .await
            .map_err(write_error)?;
            tx.execute(
                "DELETE FROM charge_warnings WHERE portfolio = $1 AND month = $2",
                &[&job.portfolio, &job.month],
            )
            .await
            .map_err(write_error)?;
            insert_charges(&tx, &job, settled.charges.iter()).await?;
            insert_warnings(&tx, &job, settled.warnings.iter()).await?;
        }
        tx.execute("DELETE FROM unsettled WHERE id = ANY($1)", &[&job.marks])
            .await
            .map_err(write_error)?;
        tx.commit().await.map_err(write_error)
    }

    /// See `SqliteStore::reset_settlement`. Processes starting together
    /// take turns on an advisory lock; the second finds the fingerprint
    /// already kept.
    pub async fn reset_settlement(&self, fingerprint: String) -> Result<bool, StoreError> {
        let write_error = |e: tokio_postgres::Error| StoreError::Write(e.to_string());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(write_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&(MIGRATION_LOCK + 1)])
            .await
            .map_err(write_error)?;
        let kept = tx
            .query_opt("SELECT value FROM settings WHERE key = 'pricing'", &[])
            .await
            .map_err(write_error)?;
        if kept.map(|row| row.get::<_, String>(0)).as_deref() == Some(fingerprint.as_str()) {
            return Ok(false);
        }
        tx.batch_execute(
            "DELETE FROM charges; DELETE FROM charge_warnings; DELETE FROM unsettled;",
        )
        .await
        .map_err(write_error)?;
        let spans = tx
            .query(
                "SELECT coalesce(business, ''), min(at_us), max(at_us) FROM events GROUP BY 1",
                &[],
            )
            .await
            .map_err(write_error)?;
        for span in spans {
            let business: String = span.get(0);
            for month in months_spanned(span.get(1), span.get(2)) {
                tx.execute(
                    "INSERT INTO unsettled (business, month) VALUES ($1, $2)",
                    &[&business, &month],
                )
                .await
                .map_err(write_error)?;
            }
        }
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('pricing', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&fingerprint],
        )
        .await
        .map_err(write_error)?;
        tx.commit().await.map_err(write_error)?;
        Ok(true)
    }

    /// Records a budget alert crossing or delivery attempt.
    pub async fn write_alert(&self, write: AlertWrite) -> Result<bool, StoreError> {
        let client = self.client().await?;
        match write {
            AlertWrite::Cross(row) => {
                let inserted = client
                    .execute(
                        "INSERT INTO budget_alerts (budget, month, threshold, crossed_at_us, spent, body) VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (budget, month, threshold) DO NOTHING",
                        &[&row.budget, &row.month, &row.threshold, &row.crossed_at_us, &row.spent, &row.body],
                    )
                    .await?;
                Ok(inserted == 1)
            }
            AlertWrite::Attempt {
                budget,
                month,
                threshold,
                outcome,
            } => {
                let (delivered, error) = match outcome {
                    Ok(at) => (Some(at), None),
                    Err(reason) => (None, Some(reason)),
                };
                client
                    .execute(
                        "UPDATE budget_alerts SET attempts = attempts + 1, delivered_at_us = $4, last_error = $5
                         WHERE budget = $1 AND month = $2 AND threshold = $3",
                        &[&budget, &month, &threshold, &delivered, &error],
                    )
                    .await?;
                Ok(false)
            }
        }
    }

    /// Alerts of one month, or every one not yet delivered.
    pub async fn alerts(&self, month: Option<String>) -> Result<Vec<AlertRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT budget, month, threshold, crossed_at_us, spent, body, attempts, delivered_at_us, last_error FROM budget_alerts
                 WHERE ($1::text IS NULL AND delivered_at_us IS NULL) OR month = $1 ORDER BY crossed_at_us, budget, threshold",
                &[&month],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| AlertRow {
                budget: row.get(0),
                month: row.get(1),
                threshold: row.get(2),
                crossed_at_us: row.get(3),
                spent: row.get(4),
                body: row.get(5),
                attempts: row.get(6),
                delivered_at_us: row.get(7),
                last_error: row.get(8),
            })
            .collect())
    }

    /// Kept charges of a slice, lines and typed columns.
    pub async fn charges(&self, slice: ChargeSlice) -> Result<Vec<ChargeRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT business, delivered_at_us, message_id, line, {FACT_COLUMNS} FROM charges
                 WHERE {}", delivered_within(&slice)),
                &[&slice.businesses, &slice.from_us, &slice.to_us],
            )
            .await?;
        Ok(rows.iter().map(|row| charge_row(row, 0)).collect())
    }

    /// Kept charges of a slice as typed columns, without their lines.
    pub async fn charge_facts(&self, slice: ChargeSlice) -> Result<Vec<KeptFacts>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT business, delivered_at_us, message_id, {FACT_COLUMNS} FROM charges
                 WHERE {}",
                    delivered_within(&slice)
                ),
                &[&slice.businesses, &slice.from_us, &slice.to_us],
            )
            .await?;
        Ok(rows.iter().map(kept_facts).collect())
    }

    /// [`crate::Store::charge_sums`]: each row's columns read in place.
    pub async fn charge_sums(
        &self,
        slice: ChargeSlice,
        keep: impl Fn(&str, Option<&str>) -> bool,
    ) -> Result<(Vec<ChargeSum>, Vec<String>), StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SUM_COLUMNS} FROM charges
                 WHERE {}",
                    delivered_within(&slice)
                ),
                &[&slice.businesses, &slice.from_us, &slice.to_us],
            )
            .await?;
        let mut sums = ChargeSums::default();
        for row in &rows {
            let facts = FactsRef {
                business: row.get(0),
                delivered_at_us: row.get(1),
                message_id: row.get(2),
                kind: row.get(3),
                messaging_account: row.get(4),
                local_date: row.get(5),
                pricing_model: row.get(6),
                category: row.get(7),
                pricing_type: row.get(8),
                direction: row.get(9),
                billable: row.get(10),
                market: row.get(11),
                currency: row.get(12),
                amount: row.get(13),
                quantity: row.get(14),
                delivered_nanos: row.get(15),
            };
            if keep(facts.business, facts.messaging_account) {
                sums.add(&facts);
            }
        }
        Ok(sums.finish())
    }

    /// The (portfolio, month) pairs that have kept charges.
    pub async fn charge_months(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                // One index step per pair found, as on SQLite: PostgreSQL
                // 15 has no skip scan, and `DISTINCT` read every charge.
                "WITH RECURSIVE found AS (
                    (SELECT portfolio, month FROM charges ORDER BY portfolio, month LIMIT 1)
                    UNION ALL
                    SELECT next.portfolio, next.month FROM found, LATERAL (
                        SELECT portfolio, month FROM charges
                        WHERE (portfolio, month) > (found.portfolio, found.month)
                        ORDER BY portfolio, month LIMIT 1) next
                )
                SELECT portfolio, month FROM found ORDER BY portfolio, month",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The kept charges of one (portfolio, month) as typed columns.
    pub async fn month_facts(
        &self,
        portfolio: String,
        month: String,
    ) -> Result<Vec<KeptFacts>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT business, delivered_at_us, message_id, {FACT_COLUMNS} FROM charges WHERE portfolio = $1 AND month = $2"),
                &[&portfolio, &month],
            )
            .await?;
        Ok(rows.iter().map(kept_facts).collect())
    }

    /// Kept warnings of a slice's months.
    pub async fn charge_warnings(&self, slice: ChargeSlice) -> Result<Vec<WarningRow>, StoreError> {
        let client = self.client().await?;
        let (first, last) = slice.months.unwrap_or_else(|| (String::new(), "~".into()));
        let rows = client
            .query(
                "SELECT business, event_id, code, message, count FROM charge_warnings
                 WHERE ($1::text[] IS NULL OR business = ANY($1)) AND month >= $2 AND month <= $3",
                &[&slice.businesses, &first, &last],
            )
            .await?;
        Ok(rows.into_iter().map(|row| warning_row(&row, 0)).collect())
    }

    /// Events of one scope, in storage order (see `SqliteStore::events`).
    pub async fn events(&self, scope: EventScope) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        events_on(&client, scope).await
    }
    /// Events stored after `after_id`.
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: i64,
        businesses: Option<Vec<String>>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, line FROM events WHERE id > $1 AND ($2::text[] IS NULL OR business = ANY($2)) ORDER BY id LIMIT $3",
            )
            .await?;
        let rows = client
            .query(&statement, &[&after_id, &businesses, &limit])
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| StoredEvent {
                id: row.get(0),
                line: row.get::<_, &str>(1).into(),
            })
            .collect())
    }

    /// The stored state of one pair.
    pub async fn contact(
        &self,
        business: &str,
        user: &str,
    ) -> Result<Option<ContactRow>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT first_event_at_us, last_event_at_us, last_inbound_at_us, events FROM contacts WHERE business = $1 AND user_id = $2",
                &[&business, &user],
            )
            .await?;
        Ok(row.map(|row| ContactRow {
            first_event_at_us: row.get(0),
            last_event_at_us: row.get(1),
            last_inbound_at_us: row.get(2),
            events: row.get(3),
        }))
    }

    /// (wamid, business) of the sends stored with these wamids, and of the
    /// statuses Meta's signed webhooks gave them: who sent them.
    pub async fn message_senders(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT message_id, business FROM events
                 WHERE message_id = ANY($1) AND business IS NOT NULL
                   AND (kind = 'outbound' OR (kind = 'status' AND webhook_id IS NOT NULL))",
                &[&ids],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// Business phone numbers with at least one contact.
    pub async fn businesses(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                // One seek per business on the contacts' key (see
                // `charge_months`), not every contact.
                "WITH RECURSIVE found AS (
                    (SELECT business FROM contacts ORDER BY business LIMIT 1)
                    UNION ALL
                    SELECT next.business FROM found, LATERAL (
                        SELECT business FROM contacts WHERE business > found.business
                        ORDER BY business LIMIT 1) next
                )
                SELECT business FROM found ORDER BY business",
                &[],
            )
            .await?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    /// Notices dated in `[since_us, until_us)`, optionally of some WABAs.
    pub async fn notices(
        &self,
        wabas: Option<Vec<String>>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT line FROM notices
                 WHERE ($1::text[] IS NULL OR waba = ANY($1))
                   AND at_us >= $2 AND at_us < $3
                 ORDER BY at_us, id",
                &[&wabas, &since_us, &until_us],
            )
            .await?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    /// Webhook bodies after `after_id`.
    pub async fn webhooks(
        &self,
        after_id: i64,
        limit: i64,
        outcome: Option<String>,
        max_bytes: i64,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        let client = self.client().await?;
        // Sizes first (`octet_length` reads a toasted value's size, not
        // the value), so a page holds at most `max_bytes` of bodies.
        let sizes: Vec<(i64, i64)> = client
            .query(
                "SELECT id, octet_length(body)::bigint FROM webhook_bodies WHERE id > $1 AND ($2::text IS NULL OR outcome = $2) ORDER BY id LIMIT $3",
                &[&after_id, &outcome, &limit],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let Some(last) = crate::record::page_end(&sizes, max_bytes) else {
            return Ok(Vec::new());
        };
        let rows = client
            .query(
                "SELECT id, received_at_us, sha256, outcome, reason, body FROM webhook_bodies
                 WHERE id > $1 AND id <= $3 AND ($2::text IS NULL OR outcome = $2) ORDER BY id",
                &[&after_id, &outcome, &last],
            )
            .await?;
        Ok(rows.iter().map(stored_webhook).collect())
    }

    /// Takes the relay's advisory lock on a connection of its own, taken
    /// out of the pool; `None` when another process holds it.
    pub async fn relay_claim(&self) -> Result<Option<RelayClaim>, StoreError> {
        let client = self.client().await?;
        let held: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK])
            .await?
            .get(0);
        // Not held: the connection goes back to the pool as it came. Held:
        // it leaves the pool, so the lock lives exactly as long as the claim.
        Ok(held.then(|| RelayClaim::Postgres(deadpool_postgres::Object::take(client))))
    }

    /// Guarded sends still holding budget, sent at or after `since_us`.
    pub async fn in_flight(&self, since_us: i64) -> Result<Vec<InFlightRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT message_id, business, waba, amount, sent_at_us FROM in_flight WHERE sent_at_us >= $1 ORDER BY sent_at_us", &[&since_us])
            .await?;
        Ok(rows
            .iter()
            .map(|row| InFlightRow {
                message_id: row.get(0),
                business: row.get(1),
                waba: row.get(2),
                amount: row.get(3),
                sent_at_us: row.get(4),
            })
            .collect())
    }

    /// What waits in the relay outbox.
    pub async fn relay_backlog(&self) -> Result<RelayBacklog, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*), min(w.received_at_us) FROM relay_outbox r JOIN webhook_bodies w ON w.id = r.webhook_id", &[])
            .await?;
        Ok(RelayBacklog {
            pending: row.get(0),
            oldest_received_at_us: row.get(1),
        })
    }

    /// Row counts.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM webhook_bodies WHERE outcome = 'accepted'),
                        (SELECT count(*) FROM webhook_bodies WHERE outcome = 'rejected'),
                        (SELECT count(*) FROM events), (SELECT count(*) FROM notices), (SELECT count(*) FROM contacts)",
                &[],
            )
            .await?;
        Ok(Counts {
            webhooks_accepted: row.get(0),
            webhooks_rejected: row.get(1),
            events: row.get(2),
            notices: row.get(3),
            contacts: row.get(4),
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }
}

/// The condition on `charges` that finds a slice's rows, `$1` its business
/// list (or NULL), `$2` and `$3` its delivery span: one statement per
/// [`SliceShape`], as on SQLite (PostgreSQL plans an unnamed statement
/// with its values, so a span and everything share one).
fn delivered_within(slice: &ChargeSlice) -> &'static str {
    match slice.shape() {
        SliceShape::Businesses => {
            "business = ANY($1) AND delivered_at_us >= $2 AND delivered_at_us < $3"
        }
        SliceShape::Span | SliceShape::Everything => {
            "$1::text[] IS NULL AND delivered_at_us >= $2 AND delivered_at_us < $3"
        }
    }
}

/// A kept charge from `business, delivered_at_us, message_id, line` and
/// [`FACT_COLUMNS`], starting at column `first`.
fn charge_row(row: &tokio_postgres::Row, first: usize) -> ChargeRow {
    ChargeRow {
        business: row.get(first),
        delivered_at_us: row.get(first + 1),
        message_id: row.get(first + 2),
        line: row.get(first + 3),
        facts: facts(row, first + 4),
    }
}

/// A kept charge from `business, delivered_at_us, message_id` and
/// [`FACT_COLUMNS`].
fn kept_facts(row: &tokio_postgres::Row) -> KeptFacts {
    KeptFacts {
        business: row.get(0),
        delivered_at_us: row.get(1),
        message_id: row.get(2),
        facts: facts(row, 3),
    }
}

/// Typed columns from [`FACT_COLUMNS`], starting at column `first`.
fn facts(row: &tokio_postgres::Row, first: usize) -> ChargeFacts {
    ChargeFacts {
        kind: row.get(first),
        messaging_account: row.get(first + 1),
        user: row.get(first + 2),
        local_date: row.get(first + 3),
        pricing_model: row.get(first + 4),
        category: row.get(first + 5),
        pricing_type: row.get(first + 6),
        direction: row.get(first + 7),
        billable: row.get(first + 8),
        market: row.get(first + 9),
        currency: row.get(first + 10),
        amount: row.get(first + 11),
        quantity: row.get(first + 12),
        tier: row.get(first + 13),
        ruleset: row.get(first + 14),
        rule: row.get(first + 15),
        template: row.get(first + 16),
        opens_conversation: row.get(first + 17),
        delivered_nanos: row.get(first + 18),
    }
}

/// A kept warning from `business, event_id, code, message, count`,
/// starting at column `first`.
fn warning_row(row: &tokio_postgres::Row, first: usize) -> WarningRow {
    WarningRow {
        business: row.get(first),
        event_id: row.get(first + 1),
        code: row.get(first + 2),
        message: row.get(first + 3),
        count: row.get(first + 4),
    }
}

/// Rows of a settle job's (portfolio, month) in `table`.
async fn month_rows(
    tx: &impl GenericClient,
    table: &str,
    job: &SettleJob,
) -> Result<usize, StoreError> {
    let sql = format!("SELECT count(*) FROM {table} WHERE portfolio = $1 AND month = $2");
    let row = tx
        .query_one(&sql, &[&job.portfolio, &job.month])
        .await
        .map_err(|e| StoreError::Write(e.to_string()))?;
    Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX))
}

/// Inserts charges of a (portfolio, month) in one statement.
async fn insert_charges<'a>(
    tx: &impl GenericClient,
    job: &SettleJob,
    rows: impl Iterator<Item = &'a ChargeRow>,
) -> Result<(), StoreError> {
    let rows: Vec<&ChargeRow> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    // One array per column, unnested into rows: one statement per round.
    fn column<'r, T: 'r>(rows: &[&'r ChargeRow], pick: impl Fn(&'r ChargeRow) -> T) -> Vec<T> {
        rows.iter().map(|row| pick(row)).collect()
    }
    let text = |pick: fn(&ChargeRow) -> &String| column(&rows, pick);
    let maybe = |pick: fn(&ChargeRow) -> &Option<String>| column(&rows, pick);
    let (business, message, line) = (
        text(|r| &r.business),
        text(|r| &r.message_id),
        text(|r| &r.line),
    );
    let delivered: Vec<i64> = column(&rows, |r| r.delivered_at_us);
    let (kind, user, local_date, category, currency, amount, ruleset, rule) = (
        text(|r| &r.facts.kind),
        text(|r| &r.facts.user),
        text(|r| &r.facts.local_date),
        text(|r| &r.facts.category),
        text(|r| &r.facts.currency),
        text(|r| &r.facts.amount),
        text(|r| &r.facts.ruleset),
        text(|r| &r.facts.rule),
    );
    let (account, model, pricing_type, direction, market, tier, template) = (
        maybe(|r| &r.facts.messaging_account),
        maybe(|r| &r.facts.pricing_model),
        maybe(|r| &r.facts.pricing_type),
        maybe(|r| &r.facts.direction),
        maybe(|r| &r.facts.market),
        maybe(|r| &r.facts.tier),
        maybe(|r| &r.facts.template),
    );
    let billable: Vec<bool> = column(&rows, |r| r.facts.billable);
    let quantity: Vec<i64> = column(&rows, |r| r.facts.quantity);
    let opens: Vec<bool> = column(&rows, |r| r.facts.opens_conversation);
    let nanos: Vec<i32> = column(&rows, |r| r.facts.delivered_nanos);
    tx.execute(
        &format!(
            "INSERT INTO charges (portfolio, month, business, delivered_at_us, message_id, line, {FACT_COLUMNS})
             SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                 $14::text[], $15::boolean[], $16::text[], $17::text[], $18::text[], $19::bigint[],
                 $20::text[], $21::text[], $22::text[], $23::text[], $24::boolean[], $25::integer[])"
        ),
        &[
            &job.portfolio,
            &job.month,
            &business,
            &delivered,
            &message,
            &line,
            &kind,
            &account,
            &user,
            &local_date,
            &model,
            &category,
            &pricing_type,
            &direction,
            &billable,
            &market,
            &currency,
            &amount,
            &quantity,
            &tier,
            &ruleset,
            &rule,
            &template,
            &opens,
            &nanos,
        ],
    )
    .await
    .map(drop)
    .map_err(|e| StoreError::Write(e.to_string()))
}

/// Inserts warnings of a (portfolio, month) in one statement.
async fn insert_warnings<'a>(
    tx: &impl GenericClient,
    job: &SettleJob,
    rows: impl Iterator<Item = &'a WarningRow>,
) -> Result<(), StoreError> {
    let (mut business, mut event, mut code, mut message, mut count) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        business.push(row.business.as_deref());
        event.push(row.event_id);
        code.push(&row.code);
        message.push(&row.message);
        count.push(row.count);
    }
    if code.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO charge_warnings (portfolio, month, business, event_id, code, message, count)
         SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[])",
        &[&job.portfolio, &job.month, &business, &event, &code, &message, &count],
    )
    .await
    .map(drop)
    .map_err(|e| StoreError::Write(e.to_string()))
}

async fn events_on(
    client: &impl GenericClient,
    scope: EventScope,
) -> Result<Vec<StoredEvent>, StoreError> {
    let (since, until) = scope.range_us();
    let from_id = match scope {
        EventScope::Businesses { from_id, .. } => from_id,
        EventScope::Contact { .. } => 0,
    };
    let (filter, in_scope, businesses, user): (&str, &str, Vec<String>, Option<String>) =
        match scope {
            EventScope::Contact { business, user, .. } => (
                "business = ANY($1) AND user_id = $2",
                "s.business = ANY($1) AND s.user_id = $2",
                vec![business],
                Some(user),
            ),
            EventScope::Businesses {
                businesses: Some(list),
                ..
            } => (
                "business = ANY($1) AND $2::text IS NULL",
                "s.business = ANY($1)",
                list,
                None,
            ),
            EventScope::Businesses {
                businesses: None, ..
            } => (
                "$1::text[] IS NOT NULL AND $2::text IS NULL",
                "TRUE",
                Vec::new(),
                None,
            ),
        };
    let same_business = crate::record::SAME_BUSINESS_SQL;
    // From an event id (> 0), only the new events of the scope, and the new
    // halves of messages whose other half is in scope but older (see
    // `sqlite::scoped_sql`).
    let fresh_halves = if from_id > 0 {
        format!(
            "UNION SELECT e.id FROM events e JOIN events s ON e.message_id = s.message_id
                WHERE e.id >= $5 AND e.kind = 'status' AND e.at_us < $4 AND s.kind = 'outbound' AND {in_scope} AND s.at_us >= $3 AND s.at_us < $4 AND {same_business}
            UNION SELECT e.id FROM events e JOIN events s ON e.message_id = s.message_id
                WHERE e.id >= $5 AND e.kind = 'outbound' AND s.kind = 'status' AND {in_scope} AND s.at_us >= $3 AND s.at_us < $4 AND {same_business}"
        )
    } else {
        String::new()
    };
    let sql = format!(
        "WITH selected AS (SELECT id, kind, business, message_id FROM events WHERE {filter} AND at_us >= $3 AND at_us < $4 AND id >= $5)
         SELECT id, line FROM events WHERE id IN (
            SELECT id FROM selected
            UNION SELECT e.id FROM events e JOIN selected s ON e.message_id = s.message_id
                WHERE s.kind = 'outbound' AND e.kind = 'status' AND e.at_us < $4 AND {same_business}
            UNION SELECT e.id FROM events e JOIN selected s ON e.message_id = s.message_id
                WHERE s.kind = 'status' AND e.kind = 'outbound' AND {same_business}
            {fresh_halves})
         ORDER BY id"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&statement, &[&businesses, &user, &since, &until, &from_id])
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| StoredEvent {
            id: row.get(0),
            line: row.get::<_, &str>(1).into(),
        })
        .collect())
}

/// A stored body from `id, received_at_us, sha256, outcome, reason, body`.
fn stored_webhook(row: &tokio_postgres::Row) -> StoredWebhook {
    StoredWebhook {
        id: row.get(0),
        received_at_us: row.get(1),
        sha256: row.get(2),
        outcome: row.get(3),
        reason: row.get(4),
        body: row.get(5),
    }
}

/// The oldest `limit` bodies in the relay outbox, read on the relayer's
/// own connection. Ids come from a sequence, so a body committed late by
/// another process can come after a later id: relayed a little out of
/// order, never skipped (Meta does not promise order either).
pub async fn relay_pending(
    client: &tokio_postgres::Client,
    limit: i64,
) -> Result<Vec<StoredWebhook>, StoreError> {
    let rows = client
        .query(
            "SELECT w.id, w.received_at_us, w.sha256, w.outcome, w.reason, w.body
             FROM relay_outbox r JOIN webhook_bodies w ON w.id = r.webhook_id ORDER BY r.webhook_id LIMIT $1",
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(stored_webhook).collect())
}

/// Takes relayed bodies out of the relay outbox.
pub async fn relay_done(client: &tokio_postgres::Client, ids: Vec<i64>) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM relay_outbox WHERE webhook_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(|e| StoreError::Write(e.to_string()))?;
    Ok(())
}
