//! What a stored row holds, computed from the core's types: the canonical
//! line, the columns queries need, and the key that makes a second copy of
//! the same fact a no-op.

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use wameter_core::event::{DeliveryStatus, Event, EventKind};
use wameter_core::notice::Notice;
use wameter_core::settlement::months_touched;

use crate::StoreError;

/// A canonical event ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Unique per fact; equal for what replay counts as a duplicate.
    pub dedupe_key: String,
    /// `inbound`, `outbound`, `status`, `call` or `agent_usage`.
    pub kind: &'static str,
    /// Business phone number id, when the event names it (a status that
    /// names one belongs to that business's message only).
    pub business: Option<String>,
    /// The user (`+` E.164 or BSUID), when the event names it.
    pub user: Option<String>,
    /// The wamid, when there is one.
    pub message_id: Option<String>,
    /// When it happened, UNIX microseconds (for range queries only: the
    /// line keeps the full precision).
    pub at_us: i64,
    /// The canonical NDJSON line (interfaces §1).
    pub line: String,
    /// Whether it is a user's message or call (opens the window).
    pub inbound: bool,
    /// Whether it is a `delivered` status (what charges follow).
    pub delivered: bool,
    /// Whether it is a status that settles a send's fate — `delivered`,
    /// `read` (delivered, then) or `failed` — so the send no longer holds
    /// budget in flight ([`InFlightRow`]).
    pub ends_flight: bool,
    /// The business phone number whose charges it can change, even when
    /// the event names no user (`''`: it names none).
    pub charged_business: String,
}

impl EventRecord {
    /// The record of one event. The keys mirror the engine's own
    /// deduplication (`engine::prepare`), so the store never keeps what a
    /// replay would drop, and never drops what a replay would keep.
    pub fn new(event: &Event) -> EventRecord {
        let at = event.at;
        let line = wameter_log::event_line(event);
        let at_us = micros(at);
        match &event.kind {
            EventKind::Inbound {
                business,
                user,
                id,
                entry_point,
                kind,
            } => EventRecord {
                dedupe_key: match id {
                    Some(id) => message_key(id, "inbound", business, ""),
                    None => format!(
                        "inbound/{business}/{user}/{at}/{}/{:?}",
                        entry_point.is_some(),
                        kind
                    ),
                },
                kind: "inbound",
                business: Some(business.to_string()),
                user: Some(user.to_string()),
                message_id: id.as_ref().map(|id| id.to_string()),
                at_us,
                line,
                inbound: true,
                delivered: false,
                ends_flight: false,
                charged_business: business.to_string(),
            },
            EventKind::Outbound {
                business, user, id, ..
            } => EventRecord {
                dedupe_key: message_key(id, "outbound", business, ""),
                kind: "outbound",
                business: Some(business.to_string()),
                user: Some(user.to_string()),
                message_id: Some(id.to_string()),
                at_us,
                line,
                inbound: false,
                delivered: false,
                ends_flight: false,
                charged_business: business.to_string(),
            },
            EventKind::Status {
                id, status, detail, ..
            } => {
                let business = event.kind.business().map(str::to_string);
                let user = detail
                    .as_deref()
                    .and_then(|d| d.recipient.as_ref())
                    .map(|u| u.to_string());
                let charged_business = business.clone().unwrap_or_default();
                EventRecord {
                    // Scoped by the business it names ('' for none), as the
                    // engine matches it: another business's status with the
                    // same wamid and instant is another fact, never a
                    // duplicate of this one (issue 18, decision D17).
                    dedupe_key: message_key(
                        id,
                        "status",
                        &charged_business,
                        &format!("/{}/{at}", status.as_str()),
                    ),
                    kind: "status",
                    business: business.clone(),
                    // A contact needs both halves; half of one is no key.
                    user: user.filter(|_| business.is_some()),
                    message_id: Some(id.to_string()),
                    at_us,
                    line,
                    inbound: false,
                    delivered: *status == DeliveryStatus::Delivered,
                    ends_flight: matches!(
                        status,
                        DeliveryStatus::Delivered | DeliveryStatus::Read | DeliveryStatus::Failed
                    ),
                    charged_business,
                }
            }
            EventKind::Call(call) => EventRecord {
                // Only an identical copy is a duplicate here: copies that
                // differ are all kept, and the engine prices the earliest
                // and warns (`rules::calling`), as a replay does.
                dedupe_key: message_key(
                    &call.id,
                    "call",
                    &call.business,
                    &format!("/{}", sha256_hex(line.as_bytes())),
                ),
                kind: "call",
                business: Some(call.business.to_string()),
                user: Some(call.user.to_string()),
                message_id: Some(call.id.to_string()),
                at_us,
                inbound: call.opens_window(),
                delivered: false,
                ends_flight: false,
                charged_business: call.business.to_string(),
                line,
            },
            EventKind::AgentUsage(usage) => EventRecord {
                dedupe_key: message_key(
                    &usage.id,
                    "agent_usage",
                    &usage.business,
                    &format!("/{}", sha256_hex(line.as_bytes())),
                ),
                kind: "agent_usage",
                business: Some(usage.business.to_string()),
                user: Some(usage.user.to_string()),
                message_id: Some(usage.id.to_string()),
                at_us,
                inbound: false,
                delivered: false,
                ends_flight: false,
                charged_business: usage.business.to_string(),
                line,
            },
        }
    }
}

/// The dedupe key of an event with a message id: `{bytes}:{id}/{kind}/`,
/// then `{bytes}:{business}` and what else tells its copies apart
/// (`rest`: a status's name and instant, a call's line digest).
///
/// It starts with the message, so the one unique index finds a message's
/// events of a kind by their key's prefix ([`message_range`]): one more
/// index on keys as random as these cost about 8 % of the webhooks stored,
/// and dropping SQLite's index by message gained 6 % (docs/PERFORMANCE.md,
/// sessions 52 and 53). The lengths
/// are bytes, so no id or business, whatever it holds, can make one key
/// a prefix of another's message (`12:` ends the digits where `1` would
/// not). Migration V14 rewrites the earlier `{kind}/{business}/{id}{rest}`
/// into this from the stored columns; the two must stay in step.
fn message_key(id: &str, kind: &str, business: &str, rest: &str) -> String {
    format!(
        "{}:{id}/{kind}/{}:{business}{rest}",
        id.len(),
        business.len()
    )
}

/// The keys of message `id`'s events of `kind`: at least the first, less
/// than the second ([`message_key`]; `0` follows `/`). SQL joins build the
/// same bounds with [`message_range_sql`].
pub fn message_range(id: &str, kind: &str) -> (String, String) {
    let message = format!("{}:{id}/{kind}", id.len());
    (format!("{message}/"), format!("{message}0"))
}

/// [`message_range`] in SQL: `{events}.dedupe_key` within the keys of
/// `kind` events of the message whose id is the SQL expression `id`
/// (a column of another table in a join). `octet_length` counts bytes, as
/// [`message_key`] does.
pub fn message_range_sql(events: &str, id: &str, kind: &str) -> String {
    let message = format!("octet_length({id}) || ':' || {id} || '/{kind}");
    format!("{events}.dedupe_key >= ({message}/') AND {events}.dedupe_key < ({message}0')")
}

/// A notice ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRecord {
    /// SHA-256 of the canonical line: a redelivered notice is the same line.
    pub dedupe_key: String,
    /// The WABA it concerns.
    pub waba: Option<String>,
    /// When Meta says it happened, UNIX microseconds.
    pub at_us: Option<i64>,
    /// The canonical line.
    pub line: String,
}

impl NoticeRecord {
    /// The record of one notice.
    pub fn new(notice: &Notice) -> NoticeRecord {
        let line = wameter_log::notice_line(notice);
        NoticeRecord {
            dedupe_key: format!("notice/{}", sha256_hex(line.as_bytes())),
            waba: notice.waba.as_ref().map(|w| w.to_string()),
            at_us: notice.at.map(micros),
            line,
        }
    }
}

/// A webhook body as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRecord {
    /// When the server received it, UNIX microseconds.
    pub received_at_us: i64,
    /// SHA-256 of the body, hex (finds redeliveries of the same body).
    pub sha256: String,
    /// Why it was rejected (`None`: accepted). Accepted bodies may still
    /// carry item problems, recorded here too.
    pub rejected: Option<String>,
    /// Problems with single items of an accepted body.
    pub problems: Option<String>,
    /// The raw bytes.
    pub body: Vec<u8>,
    /// Queue an accepted body for relay to the business's app
    /// ([`crate::relay`]), in the same transaction.
    pub relay: bool,
}

impl WebhookRecord {
    /// The record of a body received at `at`.
    pub fn new(body: Vec<u8>, at: Timestamp) -> WebhookRecord {
        WebhookRecord {
            received_at_us: micros(at),
            sha256: sha256_hex(&body),
            rejected: None,
            problems: None,
            body,
            relay: false,
        }
    }

    /// The `outcome` column.
    pub fn outcome(&self) -> &'static str {
        if self.rejected.is_some() {
            "rejected"
        } else {
            "accepted"
        }
    }

    /// The `reason` column: why it was rejected, or its item problems.
    pub fn reason(&self) -> Option<&str> {
        self.rejected.as_deref().or(self.problems.as_deref())
    }

    /// Whether the body goes into the relay outbox: accepted ones only
    /// (a body that is not a WhatsApp envelope is answered 400, so Meta
    /// delivers it again; the app would get every copy).
    pub fn relayed(&self) -> bool {
        self.relay && self.rejected.is_none()
    }
}

/// Whether a status and a send of the same wamid are halves of one
/// message: the status names the send's business, or names none (a plain
/// canonical line, matched by wamid alone). The engine's own rule
/// (`engine::prepare`); every store query and cache that joins the halves
/// of a message uses this or [`SAME_BUSINESS_SQL`], so a tenant's status
/// never joins another tenant's send.
pub fn same_business(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// [`same_business`] over the `business` columns of events `e` and `s`.
pub const SAME_BUSINESS_SQL: &str =
    "(e.business IS NULL OR s.business IS NULL OR e.business = s.business)";

/// The last id of a page of (id, size) rows holding at most `max_bytes`,
/// and always at least the first row (a body larger than the page is
/// still served, alone); `None` for no rows.
pub fn page_end(sizes: &[(i64, i64)], max_bytes: i64) -> Option<i64> {
    let mut total = 0i64;
    let mut last = None;
    for (id, size) in sizes {
        total = total.saturating_add(*size);
        if last.is_some() && total > max_bytes {
            break;
        }
        last = Some(*id);
    }
    last
}

/// UNIX microseconds of an instant (floored).
pub fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What one write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Events and notices stored for the first time.
    pub accepted: u64,
    /// Events and notices already stored (redeliveries, repeated statuses).
    pub duplicates: u64,
    /// Id of the stored webhook body, if one was written.
    pub webhook_id: Option<i64>,
    /// Deliveries (`delivered` statuses) stored for the first time.
    pub deliveries: u64,
}

impl Written {
    /// Counts one event insert (`rows`: what the `ON CONFLICT DO NOTHING`
    /// insert reported). Returns whether it was stored for the first time.
    pub fn count_event(&mut self, event: &EventRecord, rows: u64) -> bool {
        let new = self.count_row(rows);
        self.deliveries += u64::from(new && event.delivered);
        new
    }

    /// Counts one event or notice insert; whether it was new.
    pub fn count_row(&mut self, rows: u64) -> bool {
        if rows == 1 {
            self.accepted += 1;
        } else {
            self.duplicates += 1;
        }
        rows == 1
    }
}

/// One write: a webhook body (or none, for `POST /v1/events`) and the
/// events and notices it turned into.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// The raw body, if the write comes from a webhook.
    pub webhook: Option<WebhookRecord>,
    /// Events, sorted by dedupe key (see [`Batch::new`]).
    pub events: Vec<EventRecord>,
    /// Notices, sorted by dedupe key.
    pub notices: Vec<NoticeRecord>,
    /// Events and notices dropped because the same batch held them twice:
    /// counted as duplicates, so `accepted + duplicates` is what came in.
    pub repeats: u64,
    /// Guarded sends reserved against a hard-stop budget, kept until their
    /// outcome arrives (not kept when it is already stored).
    pub in_flight: Vec<InFlightRow>,
}

/// A guarded send holding budget: its estimate, until it is delivered
/// (and charged) or fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlightRow {
    /// The wamid upstream gave it.
    pub message_id: String,
    /// The business phone number that sent it: only that business's
    /// statuses (or one naming none) end its flight.
    pub business: String,
    /// The WABA whose budgets it counts against.
    pub waba: String,
    /// The estimate reserved, a decimal in the business's currency.
    pub amount: String,
    /// When it was sent, UNIX microseconds.
    pub sent_at_us: i64,
}

impl Batch {
    /// Tells the caller how the write went. A caller that stopped waiting
    /// (a guarded send's record, which answers before the commit; a
    /// request that timed out) hears nothing, so a failure is logged here,
    /// naming what was not stored.
    pub(crate) fn answer(
        &self,
        reply: tokio::sync::oneshot::Sender<Result<Written, StoreError>>,
        result: Result<Written, StoreError>,
    ) {
        if let Err(Err(error)) = reply.send(result) {
            let messages: Vec<&str> = self
                .events
                .iter()
                .filter_map(|event| event.message_id.as_deref())
                .collect();
            tracing::error!(
                message = "A write no caller waited for failed: its events are not stored.",
                events = self.events.len(),
                messages = ?messages,
                error = %error,
            );
        }
    }

    /// A batch. Rows are written in dedupe-key order, whatever the input
    /// order: two transactions inserting the same keys then take the unique
    /// index's locks in the same order and cannot deadlock (PostgreSQL,
    /// several `serve` processes receiving the same redelivered webhook).
    pub fn new(webhook: Option<WebhookRecord>, events: &[Event], notices: &[Notice]) -> Batch {
        let given = (events.len() + notices.len()) as u64;
        // Stable sorts: of two copies in one batch, the first given is kept.
        let mut events: Vec<EventRecord> = events.iter().map(EventRecord::new).collect();
        events.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
        events.dedup_by(|a, b| a.dedupe_key == b.dedupe_key);
        let mut notices: Vec<NoticeRecord> = notices.iter().map(NoticeRecord::new).collect();
        notices.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
        notices.dedup_by(|a, b| a.dedupe_key == b.dedupe_key);
        let repeats = given - (events.len() + notices.len()) as u64;
        Batch {
            webhook,
            events,
            notices,
            repeats,
            in_flight: Vec::new(),
        }
    }
}

/// One upsert of per-contact state: (business, user, event instant,
/// inbound instant if the event is the user's), all UNIX microseconds.
pub type ContactUpdate<'a> = (&'a str, &'a str, i64, Option<i64>);

/// The per-contact updates due for events stored for the first time (a
/// redelivery changes nothing), sorted by contact: both backends upsert in
/// this order, for the same reason rows are written in key order.
pub fn contact_updates<'a>(new_events: &[&'a EventRecord]) -> Vec<ContactUpdate<'a>> {
    let mut out: Vec<ContactUpdate<'a>> = new_events
        .iter()
        .filter_map(|event| {
            Some((
                event.business.as_deref()?,
                event.user.as_deref()?,
                event.at_us,
                event.inbound.then_some(event.at_us),
            ))
        })
        .collect();
    out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    out
}

/// The (business, month) pairs that events stored for the first time have
/// left unsettled (see [`wameter_core::settlement::months_touched`]),
/// sorted and distinct: one `unsettled` row each per write.
pub fn unsettled_marks(new_events: &[&EventRecord]) -> Vec<(String, String)> {
    let marks: std::collections::BTreeSet<(String, String)> = new_events
        .iter()
        .flat_map(|event| {
            let at = Timestamp::from_microsecond(event.at_us).unwrap_or(Timestamp::UNIX_EPOCH);
            months_touched(at)
                .into_iter()
                .map(|month| (event.charged_business.clone(), month.to_string()))
        })
        .collect();
    marks.into_iter().collect()
}

pub use wameter_meter::records::StoredEvent;

/// A stored webhook body, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWebhook {
    /// Row id.
    pub id: i64,
    /// When it was received, UNIX microseconds.
    pub received_at_us: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// Why rejected, or the item problems of an accepted body.
    pub reason: Option<String>,
    /// The raw bytes.
    pub body: Vec<u8>,
}

/// The stored state of one (business phone number, user) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContactRow {
    /// Earliest event, UNIX microseconds.
    pub first_event_at_us: i64,
    /// Latest event, UNIX microseconds.
    pub last_event_at_us: i64,
    /// The user's last message or call, UNIX microseconds.
    pub last_inbound_at_us: Option<i64>,
    /// Events stored for the pair (each counted once, however often Meta
    /// delivered it).
    pub events: i64,
}

/// Row counts, for health checks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Webhook bodies accepted.
    pub webhooks_accepted: i64,
    /// Webhook bodies rejected (kept for inspection).
    pub webhooks_rejected: i64,
    /// Events.
    pub events: i64,
    /// Notices.
    pub notices: i64,
    /// Contacts.
    pub contacts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wameter_core::event::{Origin, UserId};

    fn status(id: &str, status: DeliveryStatus, at: &str) -> Event {
        Event {
            at: at.parse().unwrap(),
            origin: Origin::default(),
            kind: EventKind::Status {
                id: id.into(),
                status,
                error: None,
                detail: None,
            },
        }
    }

    /// What `work` logs, as text.
    fn logged(work: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, work);
        let bytes = lines.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_failed_write_no_one_waits_for_is_logged_with_its_messages() {
        let send = Event {
            at: "2025-07-01T10:00:00Z".parse().unwrap(),
            origin: Origin::default(),
            kind: EventKind::Outbound {
                business: "106540352242922".into(),
                user: UserId::Phone("5511999999999".into()),
                id: "wamid.SENT".into(),
                template: None,
                messaging_account: None,
            },
        };
        let batch = Batch::new(None, &[send], &[]);
        let failed = || Err(StoreError::Write("disk full".into()));
        // A caller that waits hears of it; nothing is logged.
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let quiet = logged(|| batch.answer(reply, failed()));
        assert!(quiet.is_empty(), "{quiet}");
        assert!(matches!(answer.try_recv(), Ok(Err(StoreError::Write(_)))));
        // No one waits: the failure is logged, naming the message.
        let (reply, answer) = tokio::sync::oneshot::channel();
        drop(answer);
        let log = logged(|| batch.answer(reply, failed()));
        assert!(log.contains("ERROR"), "{log}");
        assert!(
            log.contains("wamid.SENT") && log.contains("disk full"),
            "{log}"
        );
        // A write that succeeded is not logged, waited for or not.
        let (reply, answer) = tokio::sync::oneshot::channel();
        drop(answer);
        assert!(logged(|| batch.answer(reply, Ok(Written::default()))).is_empty());
    }

    #[test]
    fn a_repeated_status_has_the_same_key_and_a_later_one_does_not() {
        let first = EventRecord::new(&status(
            "wamid.A",
            DeliveryStatus::Delivered,
            "2025-07-01T10:00:00Z",
        ));
        let again = EventRecord::new(&status(
            "wamid.A",
            DeliveryStatus::Delivered,
            "2025-07-01T10:00:00Z",
        ));
        let read = EventRecord::new(&status(
            "wamid.A",
            DeliveryStatus::Read,
            "2025-07-01T10:00:00Z",
        ));
        let later = EventRecord::new(&status(
            "wamid.A",
            DeliveryStatus::Delivered,
            "2025-07-01T10:00:01Z",
        ));
        assert_eq!(first.dedupe_key, again.dedupe_key);
        assert_ne!(first.dedupe_key, read.dedupe_key);
        assert_ne!(first.dedupe_key, later.dedupe_key);
        // A status without business and recipient is no contact's yet,
        // and could change any business's charges.
        assert_eq!((&first.business, &first.user), (&None, &None));
        assert_eq!(first.charged_business, "");
        // Early in July: June's charges may depend on it too (time zones).
        let marks = vec![
            (String::new(), "2025-06".to_string()),
            (String::new(), "2025-07".to_string()),
        ];
        assert_eq!(unsettled_marks(&[&first, &later]), marks);
    }

    #[test]
    fn a_page_of_bodies_stops_at_its_byte_budget_but_holds_at_least_one() {
        let sizes = [(1, 400), (2, 400), (3, 400)];
        assert_eq!(page_end(&sizes, 1000), Some(2));
        assert_eq!(page_end(&sizes, 1200), Some(3));
        assert_eq!(
            page_end(&sizes, 10),
            Some(1),
            "one body larger than the page is served alone"
        );
        assert_eq!(page_end(&[], 10), None);
    }

    #[test]
    fn keys_are_scoped_by_the_business_an_event_names() {
        let status_of = |business: Option<&str>| Event {
            at: "2025-07-01T10:00:00Z".parse().unwrap(),
            origin: Origin::default(),
            kind: EventKind::Status {
                id: "wamid.A".into(),
                status: DeliveryStatus::Delivered,
                error: None,
                detail: business.map(|b| {
                    Box::new(wameter_core::event::StatusDetail {
                        business: Some(b.into()),
                        ..Default::default()
                    })
                }),
            },
        };
        let send_of = |business: &str| Event {
            at: "2025-07-01T09:59:00Z".parse().unwrap(),
            origin: Origin::default(),
            kind: EventKind::Outbound {
                business: business.into(),
                user: UserId::parse("+5511999990000").unwrap(),
                id: "wamid.A".into(),
                template: None,
                messaging_account: None,
            },
        };
        let [a, b, none] =
            [Some("111"), Some("222"), None].map(|business| EventRecord::new(&status_of(business)));
        assert_eq!(
            a.dedupe_key,
            "7:wamid.A/status/3:111/delivered/2025-07-01T10:00:00Z"
        );
        assert_ne!(
            a.dedupe_key, b.dedupe_key,
            "another business's status of the same wamid and instant is another fact"
        );
        assert_ne!(a.dedupe_key, none.dedupe_key);
        // A status names its business even without a recipient: that is
        // what matches it to its send.
        assert_eq!(
            (a.business.as_deref(), a.user.as_deref()),
            (Some("111"), None)
        );
        assert_eq!(
            EventRecord::new(&send_of("111")).dedupe_key,
            "7:wamid.A/outbound/3:111"
        );
        assert_ne!(
            EventRecord::new(&send_of("111")).dedupe_key,
            EventRecord::new(&send_of("222")).dedupe_key
        );
        assert!(
            same_business(Some("111"), Some("111"))
                && same_business(None, Some("111"))
                && same_business(Some("111"), None)
        );
        assert!(!same_business(Some("111"), Some("222")));
    }

    #[test]
    fn an_inbound_with_a_wamid_is_keyed_by_it_alone() {
        let inbound = |at: &str| Event {
            at: at.parse().unwrap(),
            origin: Origin::default(),
            kind: EventKind::Inbound {
                business: "106540352242922".into(),
                user: UserId::Phone("5511999990000".into()),
                id: Some("wamid.IN".into()),
                entry_point: None,
                kind: Default::default(),
            },
        };
        let a = EventRecord::new(&inbound("2025-07-01T10:00:00Z"));
        let b = EventRecord::new(&inbound("2025-07-01T10:00:09Z"));
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_eq!(a.user.as_deref(), Some("+5511999990000"));
        assert!(a.inbound);
    }

    #[test]
    fn a_batch_is_sorted_and_free_of_repeats() {
        let events = [
            status("wamid.B", DeliveryStatus::Sent, "2025-07-01T10:00:00Z"),
            status("wamid.A", DeliveryStatus::Sent, "2025-07-01T10:00:00Z"),
            status("wamid.B", DeliveryStatus::Sent, "2025-07-01T10:00:00Z"),
        ];
        let batch = Batch::new(None, &events, &[]);
        let keys: Vec<&str> = batch.events.iter().map(|e| e.dedupe_key.as_str()).collect();
        assert_eq!(keys.len(), 2);
        assert!(keys[0] < keys[1]);
        assert_eq!(batch.repeats, 1);
    }
}

#[cfg(test)]
mod key_properties {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [&str; 5] = ["inbound", "outbound", "status", "call", "agent_usage"];

    /// Text made of what the keys are made of: digits, `:`, `/`, the
    /// kinds' names, and a NUL and a two-byte letter besides.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            proptest::string::string_regex("[0-9:/a\\x00é]{1,3}").unwrap(),
            proptest::sample::select(KINDS.to_vec()).prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
    }

    /// What follows the business: text, or text that reads like the
    /// start of another message's range (`/status/…`), where a key would
    /// meet another's range if the lengths did not end where they do.
    fn rest() -> impl Strategy<Value = String> {
        prop_oneof![
            text(),
            (proptest::sample::select(KINDS.to_vec()), text())
                .prop_map(|(kind, text)| format!("/{kind}/{text}")),
        ]
    }

    proptest! {
        /// A key lies within a message's range exactly when it is a key of
        /// that message and kind, whatever the ids, businesses and rest
        /// hold: the prefix finds a message's events and no other's.
        ///
        /// A range holds its id as written, so an id whose range could
        /// hold the key is a piece of the key: every piece is asked, with
        /// every kind.
        #[test]
        fn a_key_is_in_its_own_messages_range_only(
            id in text(),
            kind in 0..KINDS.len(),
            business in text(),
            rest in rest(),
        ) {
            let key = message_key(&id, KINDS[kind], &business, &rest);
            let bounds: Vec<usize> = key.char_indices().map(|(at, _)| at).chain([key.len()]).collect();
            for (n, &start) in bounds.iter().enumerate() {
                for &end in &bounds[n..] {
                    let asked = &key[start..end];
                    for (asked_kind, name) in KINDS.iter().enumerate() {
                        let (first, past) = message_range(asked, name);
                        let within = first <= key && key < past;
                        prop_assert_eq!(
                            within,
                            (asked, asked_kind) == (id.as_str(), kind),
                            "{:?} in {:?}..{:?}", key, first, past
                        );
                    }
                }
            }
        }
    }
}
