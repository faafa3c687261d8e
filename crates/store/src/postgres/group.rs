//! Group commit for PostgreSQL: one writer task per process takes every
//! write waiting in its queue (up to [`BATCH_WRITES_MAX`]) and stores them in
//! one transaction of set-based statements — one `INSERT … SELECT FROM
//! unnest(…)` per table for the whole group, not one statement per row —
//! then answers each caller after the commit. A thousand webhooks cost one
//! WAL flush and about ten round trips instead of a thousand and eight
//! thousand.
//!
//! Acknowledged still means committed. A group that fails is retried one
//! write at a time, so a write the database refuses costs only itself
//! (its webhook gets a 5xx and Meta redelivers it), never the writes that
//! happened to share its group.
//!
//! Across processes the rules of [`super`] hold for the group as a whole:
//! rows go in key order and contacts in contact order, over the whole
//! group, so two processes' groups take the same locks in the same order.

use std::collections::{BTreeMap, HashMap, HashSet};

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::record::{Batch, EventRecord, NoticeRecord, Written, unsettled_marks};

/// Writes taken into one transaction at most: bounds the time a caller
/// waits behind others and the size of a statement's arrays.
pub const BATCH_WRITES_MAX: usize = 512;

/// Writes waiting for the writer at most; beyond this, callers get
/// [`StoreError::Busy`] (a 503, which Meta retries) instead of a queue that
/// grows until memory runs out.
pub const QUEUE_WRITES_MAX: usize = crate::sqlite::QUEUE_WRITES_MAX;

/// A write waiting for the writer, answered after its commit.
pub(super) struct WriteJob {
    pub(super) batch: Batch,
    pub(super) reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// The writer task: runs until every sender is gone (the store dropped).
pub(super) async fn run_writer(pool: Pool, mut jobs: mpsc::Receiver<WriteJob>) {
    let mut group = Vec::with_capacity(BATCH_WRITES_MAX);
    while jobs.recv_many(&mut group, BATCH_WRITES_MAX).await > 0 {
        let batches: Vec<&Batch> = group.iter().map(|job| &job.batch).collect();
        match write_group(&pool, &batches).await {
            Ok(written) => {
                for (job, written) in group.drain(..).zip(written) {
                    job.batch.answer(job.reply, Ok(written));
                }
            }
            Err(_) if group.len() > 1 => {
                // Which write the database refused is not known: each goes
                // again alone, and only the refused one fails.
                for job in group.drain(..) {
                    let alone = write_group(&pool, &[&job.batch])
                        .await
                        .map(|mut written| written.pop().unwrap_or_default())
                        .map_err(StoreError::Write);
                    job.batch.answer(job.reply, alone);
                }
            }
            Err(error) => {
                for job in group.drain(..) {
                    job.batch
                        .answer(job.reply, Err(StoreError::Write(error.clone())));
                }
            }
        }
    }
}

/// The group's statements, prepared once per connection (cached by the
/// pool's client), so that those of one step go out pipelined and in the
/// order given: the bodies reach the table before the events naming them.
struct Statements {
    draw: tokio_postgres::Statement,
    bodies: tokio_postgres::Statement,
    outbox: tokio_postgres::Statement,
    events: tokio_postgres::Statement,
    notices: tokio_postgres::Statement,
    contacts: tokio_postgres::Statement,
    unsettled: tokio_postgres::Statement,
    hold: tokio_postgres::Statement,
    land: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(client: &impl GenericClient) -> Result<Statements, tokio_postgres::Error> {
        let (draw, bodies, outbox, events, notices, contacts, unsettled, hold, land) = tokio::try_join!(
            client.prepare_cached("SELECT nextval(pg_get_serial_sequence('webhook_bodies', 'id')) FROM generate_series(1, $1::bigint)"),
            client.prepare_cached(
                "INSERT INTO webhook_bodies (id, received_at_us, sha256, outcome, reason, body)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[])",
            ),
            client.prepare_cached("INSERT INTO relay_outbox (webhook_id) SELECT unnest($1::bigint[])"),
            client.prepare_cached(
                "INSERT INTO events (dedupe_key, kind, business, user_id, message_id, at_us, line, webhook_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::bigint[])
                 ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key",
            ),
            client.prepare_cached(
                "INSERT INTO notices (dedupe_key, waba, at_us, line, webhook_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])
                 ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key",
            ),
            // GREATEST and LEAST skip NULLs in PostgreSQL.
            client.prepare_cached(
                "INSERT INTO contacts (business, user_id, first_event_at_us, last_event_at_us, last_inbound_at_us, events)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
                 ON CONFLICT (business, user_id) DO UPDATE SET
                   first_event_at_us = LEAST(contacts.first_event_at_us, excluded.first_event_at_us),
                   last_event_at_us = GREATEST(contacts.last_event_at_us, excluded.last_event_at_us),
                   last_inbound_at_us = GREATEST(contacts.last_inbound_at_us, excluded.last_inbound_at_us),
                   events = contacts.events + excluded.events",
            ),
            client.prepare_cached("INSERT INTO unsettled (business, month) SELECT * FROM unnest($1::text[], $2::text[])"),
            // A send's outcome stored already (its webhook overtook
            // upstream's answer; the group's own events count, being
            // inserted a step earlier) means it holds no budget.
            client.prepare_cached(
                "INSERT INTO in_flight (business, message_id, waba, amount, sent_at_us)
                 SELECT h.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS h(business, message_id, waba, amount, sent_at_us)
                 WHERE NOT EXISTS (SELECT 1 FROM events WHERE message_id = h.message_id AND kind = 'status' AND (business IS NULL OR business = h.business)
                                   AND (line::jsonb ->> 'status') IN ('delivered', 'read', 'failed'))
                 ON CONFLICT (business, message_id) DO NOTHING",
            ),
            // Only the sending business's statuses end a flight (or one
            // naming none: its business is bound as NULL).
            client.prepare_cached(
                "DELETE FROM in_flight f USING unnest($1::text[], $2::text[]) AS l(message_id, business)
                 WHERE f.message_id = l.message_id AND (l.business IS NULL OR f.business = l.business OR f.business = '')",
            ),
        )?;
        Ok(Statements {
            draw,
            bodies,
            outbox,
            events,
            notices,
            contacts,
            unsettled,
            hold,
            land,
        })
    }
}

/// Stores `batches` in one transaction; what each one did, in order.
///
/// Five round trips whatever the group's size: `BEGIN`; the body ids; the
/// bodies, outbox, events and notices, pipelined; the contacts, marks and
/// budget holds that depend on which events were new, pipelined; `COMMIT`.
async fn write_group(pool: &Pool, batches: &[&Batch]) -> Result<Vec<Written>, String> {
    let error = |e: tokio_postgres::Error| e.to_string();
    let mut client = pool
        .get()
        .await
        .map_err(|e| format!("no database connection: {e}"))?;
    let statements = Statements::prepare(&client).await.map_err(error)?;
    let tx = client.transaction().await.map_err(error)?;
    let mut written: Vec<Written> = batches
        .iter()
        .map(|batch| Written {
            duplicates: batch.repeats,
            ..Written::default()
        })
        .collect();
    draw_body_ids(&tx, &statements, batches, &mut written)
        .await
        .map_err(error)?;

    // Of two copies of an event (or notice) in the group, the first given
    // is the one inserted, the later a duplicate (as it would be one
    // transaction later); then the whole group's in key order.
    let mut seen = HashSet::new();
    let mut events: Vec<(usize, &EventRecord)> = Vec::new();
    let mut notices: Vec<(usize, &NoticeRecord)> = Vec::new();
    for (index, batch) in batches.iter().enumerate() {
        for event in &batch.events {
            if seen.insert(event.dedupe_key.as_str()) {
                events.push((index, event));
            } else {
                written[index].count_event(event, 0);
            }
        }
        for notice in &batch.notices {
            if seen.insert(notice.dedupe_key.as_str()) {
                notices.push((index, notice));
            } else {
                written[index].count_row(0);
            }
        }
    }
    events.sort_by(|a, b| a.1.dedupe_key.cmp(&b.1.dedupe_key));
    notices.sort_by(|a, b| a.1.dedupe_key.cmp(&b.1.dedupe_key));
    let ((), stored_events, stored_notices) = tokio::try_join!(
        insert_bodies(&tx, &statements, batches, &written),
        insert_events(&tx, &statements, &events, &written),
        insert_notices(&tx, &statements, &notices, &written),
    )
    .map_err(error)?;
    let mut new_events = Vec::new();
    for (index, event) in &events {
        if written[*index].count_event(
            event,
            u64::from(stored_events.contains(event.dedupe_key.as_str())),
        ) {
            new_events.push(*event);
        }
    }
    for (index, notice) in &notices {
        written[*index].count_row(u64::from(
            stored_notices.contains(notice.dedupe_key.as_str()),
        ));
    }
    tokio::try_join!(
        upsert_contacts(&tx, &statements, &new_events),
        mark_unsettled(&tx, &statements, &new_events),
        hold_flights(&tx, &statements, batches),
        end_flights(&tx, &statements, &new_events),
    )
    .map_err(error)?;
    tx.commit().await.map_err(error)?;
    Ok(written)
}

/// Draws the ids of the group's webhook bodies first, so each batch knows
/// its own (the order of `RETURNING` rows is not promised).
async fn draw_body_ids(
    tx: &impl GenericClient,
    statements: &Statements,
    batches: &[&Batch],
    written: &mut [Written],
) -> Result<(), tokio_postgres::Error> {
    let with_body: Vec<usize> = (0..batches.len())
        .filter(|&i| batches[i].webhook.is_some())
        .collect();
    if with_body.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = tx
        .query(&statements.draw, &[&(with_body.len() as i64)])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    ids.sort_unstable();
    for (index, id) in with_body.into_iter().zip(ids) {
        written[index].webhook_id = Some(id);
    }
    Ok(())
}

/// The webhook bodies under their drawn ids, and the relay outbox.
async fn insert_bodies(
    tx: &impl GenericClient,
    statements: &Statements,
    batches: &[&Batch],
    written: &[Written],
) -> Result<(), tokio_postgres::Error> {
    let (mut ids, mut received, mut sha, mut outcome, mut reason, mut body, mut relayed) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (batch, written) in batches.iter().zip(written) {
        let (Some(webhook), Some(id)) = (&batch.webhook, written.webhook_id) else {
            continue;
        };
        ids.push(id);
        received.push(webhook.received_at_us);
        sha.push(webhook.sha256.as_str());
        outcome.push(webhook.outcome());
        reason.push(webhook.reason());
        body.push(webhook.body.as_slice());
        if webhook.relayed() {
            relayed.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    // Both go out before anything after them is polled: the outbox rows
    // name bodies inserted just before.
    let (body_params, outbox_params): (
        [&(dyn tokio_postgres::types::ToSql + Sync); 6],
        [&(dyn tokio_postgres::types::ToSql + Sync); 1],
    ) = (
        [&ids, &received, &sha, &outcome, &reason, &body],
        [&relayed],
    );
    let bodies = tx.execute(&statements.bodies, &body_params);
    if relayed.is_empty() {
        bodies.await?;
    } else {
        tokio::try_join!(bodies, tx.execute(&statements.outbox, &outbox_params))?;
    }
    Ok(())
}

/// Inserts the group's events (distinct keys, in key order); the keys
/// stored for the first time.
async fn insert_events<'a>(
    tx: &impl GenericClient,
    statements: &Statements,
    events: &[(usize, &'a EventRecord)],
    written: &[Written],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let column = |f: fn(&'a EventRecord) -> Option<&'a str>| {
        events.iter().map(|(_, e)| f(e)).collect::<Vec<_>>()
    };
    let keys = column(|e| Some(&e.dedupe_key));
    let kinds = column(|e| Some(e.kind));
    let businesses = column(|e| e.business.as_deref());
    let users = column(|e| e.user.as_deref());
    let messages = column(|e| e.message_id.as_deref());
    let lines = column(|e| Some(&e.line));
    let at: Vec<i64> = events.iter().map(|(_, e)| e.at_us).collect();
    let webhook: Vec<Option<i64>> = events
        .iter()
        .map(|(index, _)| written[*index].webhook_id)
        .collect();
    let rows = tx
        .query(
            &statements.events,
            &[
                &keys,
                &kinds,
                &businesses,
                &users,
                &messages,
                &at,
                &lines,
                &webhook,
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Inserts the group's notices (distinct keys, in key order); the keys
/// stored for the first time.
async fn insert_notices(
    tx: &impl GenericClient,
    statements: &Statements,
    notices: &[(usize, &NoticeRecord)],
    written: &[Written],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    if notices.is_empty() {
        return Ok(HashSet::new());
    }
    let keys: Vec<&str> = notices.iter().map(|(_, n)| n.dedupe_key.as_str()).collect();
    let wabas: Vec<Option<&str>> = notices.iter().map(|(_, n)| n.waba.as_deref()).collect();
    let at: Vec<Option<i64>> = notices.iter().map(|(_, n)| n.at_us).collect();
    let lines: Vec<&str> = notices.iter().map(|(_, n)| n.line.as_str()).collect();
    let webhook: Vec<Option<i64>> = notices
        .iter()
        .map(|(index, _)| written[*index].webhook_id)
        .collect();
    let rows = tx
        .query(&statements.notices, &[&keys, &wabas, &at, &lines, &webhook])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The (business, month) pairs the new events left unsettled.
async fn mark_unsettled(
    tx: &impl GenericClient,
    statements: &Statements,
    new_events: &[&EventRecord],
) -> Result<(), tokio_postgres::Error> {
    let (businesses, months): (Vec<String>, Vec<String>) =
        unsettled_marks(new_events).into_iter().unzip();
    if !businesses.is_empty() {
        tx.execute(&statements.unsettled, &[&businesses, &months])
            .await?;
    }
    Ok(())
}

/// Per-contact state for the events stored for the first time: one row per
/// contact for the whole group (an upsert may change a row once per
/// statement), in contact order.
async fn upsert_contacts(
    tx: &impl GenericClient,
    statements: &Statements,
    new_events: &[&EventRecord],
) -> Result<(), tokio_postgres::Error> {
    // (first, last, last inbound, events) per (business, user).
    let mut contacts: BTreeMap<(&str, &str), (i64, i64, Option<i64>, i64)> = BTreeMap::new();
    for (business, user, at, inbound) in crate::record::contact_updates(new_events) {
        let entry = contacts
            .entry((business, user))
            .or_insert((at, at, None, 0));
        entry.0 = entry.0.min(at);
        entry.1 = entry.1.max(at);
        entry.2 = entry.2.max(inbound);
        entry.3 += 1;
    }
    if contacts.is_empty() {
        return Ok(());
    }
    let (mut business, mut user, mut first, mut last, mut inbound, mut count) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for ((b, u), (f, l, i, c)) in contacts {
        business.push(b);
        user.push(u);
        first.push(f);
        last.push(l);
        inbound.push(i);
        count.push(c);
    }
    tx.execute(
        &statements.contacts,
        &[&business, &user, &first, &last, &inbound, &count],
    )
    .await?;
    Ok(())
}

/// The budget each send holds until its outcome is known.
async fn hold_flights(
    tx: &impl GenericClient,
    statements: &Statements,
    batches: &[&Batch],
) -> Result<(), tokio_postgres::Error> {
    // First hold of a (business, wamid) in the group wins, as across
    // transactions (`ON CONFLICT DO NOTHING`).
    let mut holds = HashMap::new();
    for row in batches.iter().flat_map(|batch| &batch.in_flight) {
        holds
            .entry((row.business.as_str(), row.message_id.as_str()))
            .or_insert(row);
    }
    if holds.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<_> = holds.into_values().collect();
    rows.sort_by(|a, b| (&a.business, &a.message_id).cmp(&(&b.business, &b.message_id)));
    let business: Vec<&str> = rows.iter().map(|r| r.business.as_str()).collect();
    let message: Vec<&str> = rows.iter().map(|r| r.message_id.as_str()).collect();
    let waba: Vec<&str> = rows.iter().map(|r| r.waba.as_str()).collect();
    let amount: Vec<&str> = rows.iter().map(|r| r.amount.as_str()).collect();
    let sent: Vec<i64> = rows.iter().map(|r| r.sent_at_us).collect();
    tx.execute(
        &statements.hold,
        &[&business, &message, &waba, &amount, &sent],
    )
    .await?;
    Ok(())
}

/// A send's outcome frees the budget it held.
async fn end_flights(
    tx: &impl GenericClient,
    statements: &Statements,
    new_events: &[&EventRecord],
) -> Result<(), tokio_postgres::Error> {
    let (landed, landed_by): (Vec<&str>, Vec<Option<&str>>) = new_events
        .iter()
        .filter(|event| event.ends_flight)
        .filter_map(|event| Some((event.message_id.as_deref()?, event.business.as_deref())))
        .unzip();
    if landed.is_empty() {
        return Ok(());
    }
    tx.execute(&statements.land, &[&landed, &landed_by]).await?;
    Ok(())
}
