//! The sandbox's state and what happens to it: the sandbox clock, the event
//! log of everything said between businesses and users, planned statuses,
//! templates, and the webhooks waiting to be delivered.
//!
//! Everything lives in one SQLite database (a file with `--database`, else
//! in memory), and every operation is one transaction: a send is answered
//! only after its outbound event and its planned statuses are written.
//!
//! The world is deterministic given its inputs: the real time is passed in
//! (the sandbox clock is the real time plus an offset the control API
//! moves), and failure and fault draws come from a seeded generator.
//! Prices, windows and the `pricing`/`conversation` objects of statuses all
//! come from the same engine as `wameter replay`, fed the sandbox's own
//! event log, so `GET /_sandbox/charges` and a replay of `GET
//! /_sandbox/events` cannot disagree. Statuses are priced by an incremental
//! [`MeterState`] that holds the log and the statuses planned but not yet
//! due (the future as planned: a `sent` status carries the price its
//! delivery will have), so a send costs the same after 10,000 sends as
//! after one.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use wameter_core::category::TemplateCategory;
use wameter_core::event::{
    Call, CallDirection, CallStatus, DeliveryStatus, EntryPoint, Event, EventKind, InboundKind,
    MetaCost, MetaPricing, Origin, StatusDetail, Template as UsedTemplate, UserId,
};
use wameter_core::incremental::MeterState;
use wameter_core::pricing::Pricing;
use wameter_core::random::SplitMix64;
use wameter_log::Parsed;
use wameter_log::replay_json::{Others, WarningJson, write_document};
use wameter_meta::outgoing::{Billing, Sender, StatusReport, UserMessage, test_display_number};

use crate::calls::{self, Action, CallRequest};
use wameter_meta::graph::{GraphError, REENGAGEMENT, UNDELIVERABLE};

/// Meta's error for a max-price template sent through the Cloud API's
/// `/messages` (its max-price page).
pub const MAX_PRICE_ON_CLOUD_API: u32 = 131_061;

/// Which API a send came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /{phone_number_id}/messages`.
    CloudApi,
    /// `POST /{phone_number_id}/marketing_messages` (MM API).
    MarketingMessages,
}
use crate::messages::{self, Request};
use crate::templates::{self, Template, category_name, parse_category};

/// How the sandbox refuses a free-form message outside the customer
/// service window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reengagement {
    /// As Meta does: the send is accepted, then a `failed` status with
    /// 131047 arrives.
    #[default]
    Async,
    /// The send is refused at once with a 131047 Graph error (easier to
    /// test against; not what Meta does).
    Sync,
}

/// How sends and webhooks behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sandbox time from a send to its `sent` status.
    pub sent_after: SignedDuration,
    /// Sandbox time from a send to its `delivered` (or `failed`) status.
    pub delivered_after: SignedDuration,
    /// Sandbox time from a send to its `read` status; `None`: never read.
    pub read_after: Option<SignedDuration>,
    /// Percent of messages that fail with 131026 (undeliverable).
    pub failure_percent: u64,
    /// How 131047 is reported.
    pub reengagement: Reengagement,
    /// Seed of the failure and fault draws.
    pub seed: u64,
    /// Percent of webhooks posted twice (redelivery, as Meta may).
    pub duplicate_percent: u64,
    /// Largest random hold before a webhook is posted, in milliseconds of
    /// real time (holds reorder webhooks).
    pub delay_ms_max: u64,
}

/// An error of the control API (`/_sandbox/…`): a 400 with this text.
#[derive(Debug, PartialEq, Eq)]
pub struct ControlError(pub String);

/// A webhook body waiting in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Outbox sequence number.
    pub seq: i64,
    /// The POST body.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, line TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, business TEXT NOT NULL, wa_id TEXT NOT NULL, graph_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS schedule (seq INTEGER PRIMARY KEY, due INTEGER NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, error INTEGER);
CREATE TABLE IF NOT EXISTS wabas (waba TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS templates (
    id TEXT PRIMARY KEY, waba TEXT NOT NULL, name TEXT NOT NULL, language TEXT NOT NULL,
    category TEXT NOT NULL, status TEXT NOT NULL, components TEXT NOT NULL,
    parameter_format TEXT NOT NULL, previous_category TEXT, UNIQUE (waba, name, language));
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending', last_error TEXT);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, business TEXT NOT NULL, user TEXT NOT NULL, direction TEXT NOT NULL,
    placed_s INTEGER NOT NULL, accepted_s INTEGER, ended_s INTEGER, opaque TEXT);
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY, business TEXT NOT NULL, mime_type TEXT NOT NULL, sha256 TEXT NOT NULL,
    file_size INTEGER NOT NULL, bytes BLOB NOT NULL);
";

/// A call the sandbox placed or took, as its `calls` row holds it.
struct CallRow {
    id: String,
    business: String,
    user: UserId,
    direction: CallDirection,
    accepted_s: Option<i64>,
    ended_s: Option<i64>,
    /// The business's `biz_opaque_callback_data`, for the terminate.
    opaque: Option<String>,
}

/// An uploaded file, as `GET /{media_id}` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    /// The media id.
    pub id: String,
    /// The business phone number it was uploaded to.
    pub business: String,
    /// Its MIME type, as uploaded.
    pub mime_type: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub file_size: i64,
}

/// The sandbox's state.
pub struct World {
    db: Connection,
    pricing: Arc<Pricing>,
    options: Options,
    /// The event log, as in the `events` table (origin line = `seq`).
    events: Vec<Event>,
    /// The log and the planned statuses, priced: what status webhooks
    /// carry and what the window check asks.
    forecast: MeterState,
    /// Planned statuses written in the open transaction, for `forecast`
    /// once it commits.
    planning: Vec<Event>,
    /// Sandbox clock minus real time.
    offset: SignedDuration,
    /// Sends through the Marketing Messages API, by wamid: their business
    /// and user, and what Meta charges a max-price one (`None`: card rate).
    marketing_lite: std::collections::HashMap<Box<str>, (Box<str>, UserId, Option<MetaCost>)>,
    random: SplitMix64,
}

type Sql<T> = Result<T, rusqlite::Error>;

/// A status planned for a send, due at an instant of the sandbox clock.
struct Planned {
    seq: i64,
    at: Timestamp,
    id: Box<str>,
    status: DeliveryStatus,
    error: Option<i64>,
}

/// Adds a column to a table that lacks it (SQLite has no `ADD COLUMN IF
/// NOT EXISTS`).
fn add_column(db: &Connection, table: &str, column: &str, declaration: &str) -> Sql<()> {
    // Run once at start-up, its text made for each table: not cached.
    let present: bool = db.query_row(
        &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
        [column],
        |row| row.get(0),
    )?;
    if !present {
        db.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
        ))?;
    }
    Ok(())
}

fn sql_error(error: rusqlite::Error) -> GraphError {
    GraphError {
        http: 500,
        ..GraphError::new(1, "An unknown error occurred", error.to_string())
    }
}

/// Statements through the connection's cache of prepared statements: a
/// send runs the same dozen statements, and preparing each anew (what
/// `Connection::execute` and `query_row` do) was a twentieth of the
/// sandbox's time per send (docs/PERFORMANCE.md).
trait CachedStatements {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> Sql<usize>;
    fn query_row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnOnce(&rusqlite::Row<'_>) -> Sql<T>,
    ) -> Sql<T>;
}

impl CachedStatements for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> Sql<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnOnce(&rusqlite::Row<'_>) -> Sql<T>,
    ) -> Sql<T> {
        self.prepare_cached(sql)?.query_row(params, row)
    }
}

/// The engine of the forecast: it prices each send for its status
/// webhooks' `pricing` and `conversation` objects, which show no charge's
/// reason: settling formats none (docs/PERFORMANCE.md). `GET
/// /_sandbox/charges` replays with reasons.
fn forecast_engine(pricing: &Pricing) -> wameter_core::engine::Engine<'_> {
    wameter_core::engine::Engine {
        reasons: false,
        ..pricing.engine()
    }
}

/// Whole seconds, as Meta's timestamps are.
fn second(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).expect("a valid timestamp truncated is valid")
}

/// When Meta's webhooks began to carry business-scoped user ids
/// (`contacts[].user_id`, `recipient_user_id`). Meta announced the rollout
/// for spring 2026 without one date; April 1 is our approximation.
pub const BSUIDS_IN_WEBHOOKS_FROM: Timestamp = Timestamp::constant(1_775_001_600, 0);

fn wa_id(user: &UserId) -> String {
    user.to_string().trim_start_matches('+').to_string()
}

impl World {
    /// Opens (or creates) the sandbox state in `db`.
    pub fn open(db: Connection, pricing: Arc<Pricing>, options: Options) -> Result<World, String> {
        db.execute_batch(SCHEMA)
            .map_err(|e| format!("cannot prepare the sandbox database: {e}"))?;
        // Room for every statement the sandbox runs (CachedStatements).
        db.set_prepared_statement_cache_capacity(64);
        // Columns later versions added to a database an earlier one made.
        for (table, column, declaration) in [
            ("templates", "bid_amount", "INTEGER"),
            ("messages", "cost", "TEXT"),
            ("messages", "messaging_account", "TEXT"),
        ] {
            add_column(&db, table, column, declaration).map_err(|e| {
                format!("cannot prepare the sandbox database: {table}.{column}: {e}")
            })?;
        }
        // Settled on demand: a send lands among its second's earlier sends
        // (statuses carry whole seconds, a second's deliveries are ordered
        // by user), and settling every later charge of that second each
        // time was most of a send's cost (docs/PERFORMANCE.md).
        let forecast = MeterState::new(&forecast_engine(&pricing)).settling_on_demand();
        let mut world = World {
            db,
            pricing,
            random: SplitMix64(options.seed),
            options,
            events: Vec::new(),
            forecast,
            planning: Vec::new(),
            offset: SignedDuration::ZERO,
            marketing_lite: Default::default(),
        };
        let offset: Option<String> = world
            .setting("clock_offset_ns")
            .map_err(|e| e.to_string())?;
        if let Some(offset) = offset {
            world.offset = SignedDuration::from_nanos(offset.parse::<i64>().map_err(|e| {
                format!(
                    "settings.clock_offset_ns = {offset}: {e} (an earlier version let the clock be set that far; start on a new --database, or delete that setting to return to real time)"
                )
            })?);
        }
        let lines: Vec<(i64, String)> = {
            let mut statement = world
                .db
                .prepare("SELECT seq, line FROM events ORDER BY seq")
                .map_err(|e| e.to_string())?;
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(|e| e.to_string())?
        };
        for (seq, line) in lines {
            match wameter_log::parse_line(
                &line,
                Origin {
                    source: 0,
                    line: seq as u32,
                },
            ) {
                Ok(Parsed::Event(event)) => world.events.push(event),
                Ok(_) => {
                    return Err(format!(
                        "sandbox database: event {seq} is not an event: {line}"
                    ));
                }
                Err(e) => return Err(format!("sandbox database: event {seq}: {e}")),
            }
        }
        world.marketing_lite = world
            .marketing_sends()
            .map_err(|e| format!("sandbox database: messages: {e}"))?;
        let planned = world
            .planned()
            .map_err(|e| format!("sandbox database: schedule: {e}"))?;
        let engine = forecast_engine(&world.pricing);
        let planned: Vec<Event> = planned.iter().map(|p| world.planned_event(p)).collect();
        world
            .forecast
            .apply(&engine, world.events.iter().cloned().chain(planned));
        Ok(world)
    }

    /// The Marketing Messages API sends of the database (`messages.cost`
    /// is `''` for one at the card rate, `AMOUNT CUR` for a max-price one).
    fn marketing_sends(
        &self,
    ) -> Sql<std::collections::HashMap<Box<str>, (Box<str>, UserId, Option<MetaCost>)>> {
        let mut statement = self
            .db
            .prepare("SELECT id, business, wa_id, cost FROM messages WHERE cost IS NOT NULL")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut sends = std::collections::HashMap::new();
        for row in rows {
            let (id, business, wa_id, cost) = row?;
            let Ok(user) = UserId::parse(&wa_id) else {
                continue;
            };
            let cost = cost.split_once(' ').and_then(|(amount, currency)| {
                Some(MetaCost {
                    amount: amount.parse().ok()?,
                    currency: wameter_core::money::Currency::parse(currency)?,
                })
            });
            sends.insert(id.into(), (business.into(), user, cost));
        }
        Ok(sends)
    }

    /// A status of a send, as the log keeps it: for a Marketing Messages
    /// API send, its `delivered` and `read` carry Meta's pricing with the
    /// cost, as Meta's webhooks do (so the log prices as `serve` does).
    fn status_event(
        &self,
        at: Timestamp,
        origin: Origin,
        id: &str,
        status: DeliveryStatus,
        error: Option<i64>,
    ) -> Event {
        let detail = match (self.marketing_lite.get(id), status) {
            (Some((business, user, cost)), DeliveryStatus::Delivered | DeliveryStatus::Read) => {
                Some(Box::new(StatusDetail {
                    business: Some(business.clone()),
                    recipient: Some(user.clone()),
                    pricing: Some(MetaPricing {
                        billable: Some(true),
                        pricing_model: Some("PMP".into()),
                        pricing_type: Some("regular".into()),
                        category: "marketing_lite".into(),
                        cost: *cost,
                    }),
                    conversation: None,
                    messaging_account: None,
                }))
            }
            _ => None,
        };
        Event {
            at,
            origin,
            kind: EventKind::Status {
                id: id.into(),
                status,
                error,
                detail,
            },
        }
    }

    /// A planned status as the forecast takes it in advance (source 1: not
    /// a line of the log).
    fn planned_event(&self, planned: &Planned) -> Event {
        self.status_event(
            planned.at,
            Origin {
                source: 1,
                line: planned.seq as u32,
            },
            &planned.id,
            planned.status,
            planned.error,
        )
    }

    fn setting(&self, key: &str) -> Sql<Option<String>> {
        self.db
            .query_row_cached("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
    }

    fn set_setting(&self, key: &str, value: &str) -> Sql<()> {
        self.db.execute_cached("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2", [key, value])?;
        Ok(())
    }

    /// The next number of a sequence kept in the settings (wamids,
    /// template ids): never reused, also across restarts.
    fn next_number(&self, key: &str) -> Sql<u64> {
        let next = self
            .setting(key)?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        self.set_setting(key, &(next + 1).to_string())?;
        Ok(next)
    }

    /// The sandbox clock at real time `real` (whole seconds).
    pub fn now(&self, real: Timestamp) -> Timestamp {
        second(real.checked_add(self.offset).unwrap_or(real))
    }

    /// Moves the sandbox clock to `to`, then fires the statuses that fell
    /// due. The clock only moves forward: the event log is history.
    pub fn set_clock(&mut self, real: Timestamp, to: Timestamp) -> Result<Timestamp, ControlError> {
        let now = self.now(real);
        if second(to) < now {
            return Err(ControlError(format!(
                "the sandbox clock only moves forward: it is {now}, {to} is earlier"
            )));
        }
        let offset = to.duration_since(real);
        if i64::try_from(offset.as_nanos()).is_err() {
            return Err(ControlError(format!(
                "the sandbox clock can be at most 292 years from real time ({to} is further)"
            )));
        }
        self.set_offset(offset)
            .map_err(|e| ControlError(e.to_string()))?;
        self.fire_due(real)
            .map_err(|e| ControlError(e.to_string()))?;
        Ok(self.now(real))
    }

    /// Starts the clock of a new sandbox at `at` (any date: to develop
    /// against an earlier era). A sandbox with history keeps its clock, so
    /// that the log never runs backwards: returns `false` then.
    pub fn start_clock(&mut self, real: Timestamp, at: Timestamp) -> Result<bool, String> {
        if !self.events.is_empty() {
            return Ok(false);
        }
        let offset = at.duration_since(real);
        if i64::try_from(offset.as_nanos()).is_err() {
            return Err(format!(
                "the sandbox clock can be at most 292 years from real time ({at} is further)"
            ));
        }
        self.set_offset(offset).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Sets and keeps the sandbox clock's offset from real time.
    fn set_offset(&mut self, offset: SignedDuration) -> Sql<()> {
        self.set_setting("clock_offset_ns", &offset.as_nanos().to_string())?;
        self.offset = offset;
        Ok(())
    }

    /// The business phone numbers the sandbox serves: those of the accounts
    /// file, or any when it lists none.
    fn check_business(&self, phone_number_id: &str) -> Result<(), GraphError> {
        let accounts = &self.pricing.accounts;
        if accounts.businesses().next().is_some() && accounts.get(phone_number_id).is_none() {
            return Err(GraphError::no_object(phone_number_id));
        }
        Ok(())
    }

    fn sender_parts(&self, business: &str) -> (String, String) {
        (
            self.pricing.waba_of(business),
            test_display_number(business),
        )
    }

    /// The user's business-scoped user id as the sandbox's webhooks show it
    /// from [`BSUIDS_IN_WEBHOOKS_FROM`]: the user's country (ISO 3166, from
    /// the calling code) and a stable number per (portfolio, user), the
    /// shape of Meta's `US.13491208655302741918`.
    fn bsuid(&self, business: &str, user: &UserId, at: Timestamp) -> Option<String> {
        if at < BSUIDS_IN_WEBHOOKS_FROM {
            return None;
        }
        let digits = match user {
            UserId::Bsuid(id, _) => return Some(id.to_string()),
            UserId::Phone(digits) => digits,
        };
        let country = self
            .pricing
            .markets
            .lookup(user, jiff::tz::TimeZone::UTC.to_datetime(at).date())
            .country?;
        // FNV-1a: stable across runs and versions, unlike std's hasher.
        let portfolio = self
            .pricing
            .accounts
            .get_or_default(business)
            .portfolio
            .clone();
        let hash = format!("{portfolio}/{digits}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        Some(format!(
            "{country}.{:020}",
            u128::from(hash) % 100_000_000_000_000_000_000
        ))
    }

    fn append(&mut self, at: Timestamp, kind: EventKind) -> Sql<()> {
        let mut event = Event {
            at,
            origin: Origin::default(),
            kind,
        };
        let line = wameter_log::event_line(&event);
        self.db
            .execute_cached("INSERT INTO events (line) VALUES (?1)", [&line])?;
        event.origin = Origin {
            source: 0,
            line: self.db.last_insert_rowid() as u32,
        };
        self.events.push(event);
        Ok(())
    }

    fn enqueue(&mut self, real: Timestamp, body: &Value) -> Sql<()> {
        // Meta's bytes, escapes included: the signature is over them.
        let text = wameter_meta::outgoing::webhook_text(body);
        let copies = if self.random.percent(self.options.duplicate_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let hold = if self.options.delay_ms_max > 0 {
                self.random.below(self.options.delay_ms_max + 1) as i64
            } else {
                0
            };
            self.db.execute_cached(
                "INSERT INTO outbox (body, next_attempt_ms) VALUES (?1, ?2)",
                params![text, real.as_millisecond() + hold],
            )?;
        }
        Ok(())
    }

    /// A user writes to a business (`POST /_sandbox/inbound`): the event is
    /// logged and the message webhook queued. Returns the wamid and when.
    pub fn inbound(&mut self, real: Timestamp, request: &Value) -> Result<Value, ControlError> {
        let field = |name: &str| request.get(name).and_then(Value::as_str);
        let business = field("business").ok_or_else(|| {
            ControlError("`business` (the business phone number id) is required".into())
        })?;
        self.check_business(business)
            .map_err(|e| ControlError(e.details))?;
        let user =
            UserId::parse(field("user").ok_or_else(|| {
                ControlError("`user` (the user's phone number) is required".into())
            })?)
            .map_err(|e| ControlError(format!("`user`: {e}")))?;
        let text = field("text").unwrap_or("Hello");
        let content = request
            .get("message")
            .map(messages::inbound_content)
            .transpose()
            .map_err(ControlError)?;
        let entry_point = match field("entry_point") {
            None => None,
            Some(text) => Some(EntryPoint::parse(text).ok_or_else(|| {
                ControlError(format!("`entry_point` `{text}`: must be ad or page_cta"))
            })?),
        };
        // Billed as wameter reads the webhook the sandbox will send.
        let entry_point = entry_point.or_else(|| {
            content
                .as_ref()
                .and_then(wameter_meta::webhook::referral_entry_point)
        });
        let now = self.now(real);
        let name = field("name").unwrap_or("Sandbox User");
        let result = self.transaction(|world| {
            let id = wameter_meta::outgoing::wamid(
                &wa_id(&user),
                true,
                world.next_number("next_wamid")?,
            );
            world.append(
                now,
                EventKind::Inbound {
                    business: business.into(),
                    user: user.clone(),
                    id: Some(id.as_str().into()),
                    entry_point,
                    kind: InboundKind::Message,
                },
            )?;
            let (waba, display) = world.sender_parts(business);
            let sender = Sender {
                waba: &waba,
                phone_number_id: business,
                display_phone_number: &display,
            };
            let wa_id = wa_id(&user);
            let user_id = world.bsuid(business, &user, now);
            let body = sender.user_text(&UserMessage {
                wa_id: &wa_id,
                user_id: user_id.as_deref(),
                name,
                id: &id,
                at: now,
                text,
                content: content.as_ref(),
                entry_point,
            });
            world.enqueue(real, &body)?;
            Ok(id)
        });
        let id = result.map_err(|e| ControlError(e.to_string()))?;
        Ok(json!({"id": id, "at": now.to_string()}))
    }

    /// Runs `work` in one transaction. On failure the database rolls back,
    /// and so does the in-memory log (it may hold events the database no
    /// longer has).
    /// What commits is then given to the forecast, which cannot roll back.
    fn transaction<T>(&mut self, work: impl FnOnce(&mut World) -> Sql<T>) -> Sql<T> {
        self.db.execute_batch("BEGIN IMMEDIATE")?;
        let events = self.events.len();
        self.planning.clear();
        match work(self).and_then(|value| self.db.execute_batch("COMMIT").map(|()| value)) {
            Ok(value) => {
                let engine = forecast_engine(&self.pricing);
                let planned = std::mem::take(&mut self.planning);
                self.forecast.apply(
                    &engine,
                    self.events
                        .get(events..)
                        .unwrap_or_default()
                        .iter()
                        .cloned()
                        .chain(planned),
                );
                Ok(value)
            }
            Err(error) => {
                let _ = self.db.execute_batch("ROLLBACK");
                self.events.truncate(events);
                self.planning.clear();
                Err(error)
            }
        }
    }

    /// `POST /{version}/{phone_number_id}/messages`, or `…/marketing_messages`
    /// (the Marketing Messages API: marketing templates only, priced by a
    /// template's max price if it has one).
    pub fn send(
        &mut self,
        real: Timestamp,
        phone_number_id: &str,
        graph_version: u32,
        body: &Value,
        api: Api,
    ) -> Result<Value, GraphError> {
        self.check_business(phone_number_id)?;
        let message = match messages::parse(body)? {
            Request::MarkRead { message_id } => {
                let known = self.events.iter().any(|event| {
                    matches!(&event.kind, EventKind::Inbound { business, id: Some(id), .. } if **business == *phone_number_id && **id == *message_id)
                });
                if !known {
                    return Err(GraphError::invalid(format!(
                        "message_id `{message_id}`: no message from a user to {phone_number_id}"
                    )));
                }
                return Ok(json!({"success": true}));
            }
            Request::Message(message) => message,
        };
        if let Some(id) = &message.media_id {
            // Graph accepts such a send and fails it later (131053); the
            // sandbox refuses it at once, naming the id.
            let info = self
                .media(id, Some(phone_number_id))?
                .ok_or_else(|| GraphError::invalid(format!("{}.id `{id}`: no media of that id was uploaded to business number {phone_number_id}", message.kind)))?;
            crate::media::check_kind(&message.kind, id, &info.mime_type)?;
        }
        let now = self.now(real);
        // A version past its end at the sandbox clock is served as the
        // oldest one left, as Graph does (its "automatic upgrade"); the
        // status webhooks take that version's shape.
        let graph_version = wameter_meta::graph::served_version(
            graph_version,
            jiff::tz::TimeZone::UTC.to_datetime(now).date(),
        );
        // The Messaging account that pays, whose templates the send uses
        // and whose webhooks carry its statuses: the one it names, which
        // must be one of the number's (Meta answers an invalid parameter
        // otherwise), else the number's first.
        let number = self.pricing.accounts.get_or_default(phone_number_id);
        let waba = match &message.messaging_account {
            Some(account) if number.has_messaging_account(account) => account.clone(),
            Some(account) => {
                return Err(GraphError::invalid(format!(
                    "messaging_account_id `{account}`: not a Messaging account of business number {phone_number_id}"
                )));
            }
            None => number.waba.to_string(),
        };
        let mut bid_amount = None;
        let template = match &message.template {
            Some(wanted) => {
                let template = self.find_template(&waba, &wanted.name, &wanted.language)?;
                templates::check_parameters(&template, wanted.components.as_ref())?;
                bid_amount = template.bid_amount;
                Some(UsedTemplate {
                    name: template.name.as_str().into(),
                    category: template.category,
                })
            }
            None => None,
        };
        // What the Marketing Messages API charges this send, if it goes
        // through it: `Some(None)` the card rate, `Some(Some(cost))` a max
        // price.
        let marketing_lite = match api {
            Api::CloudApi if bid_amount.is_some() => {
                return Err(GraphError::new(
                    MAX_PRICE_ON_CLOUD_API,
                    "Template with a max price sent through the Cloud API",
                    "this template has an optimization_spec (a max price): send it with POST /{phone_number_id}/marketing_messages",
                ));
            }
            Api::CloudApi => None,
            Api::MarketingMessages => {
                if template
                    .as_ref()
                    .is_none_or(|t| t.category != TemplateCategory::Marketing)
                {
                    return Err(GraphError::invalid(
                        "the Marketing Messages API sends MARKETING templates only",
                    ));
                }
                let multiplier = match body.pointer("/bid_spec/per_message_bid_multiplier") {
                    None | Some(Value::Null) => rust_decimal::Decimal::ONE,
                    Some(value) => value
                        .as_f64()
                        .filter(|m| *m > 0.0 && *m <= 1000.0)
                        .and_then(|_| value.to_string().parse::<rust_decimal::Decimal>().ok())
                        .ok_or_else(|| GraphError::invalid("bid_spec.per_message_bid_multiplier: a number above 0, at most 1000"))?,
                };
                Some(bid_amount.map(|bid| {
                    self.max_price_cost(
                        phone_number_id,
                        message.messaging_account.as_deref(),
                        &message.user,
                        bid,
                        multiplier,
                        now,
                    )
                }))
            }
        };
        // Free-form messages need the customer service window open when
        // sent. "Before" includes the same second: a user's message logged at
        // 12:00:00 precedes a reply sent at 12:00:00.
        let refused = template.is_none() && {
            let engine = forecast_engine(&self.pricing);
            let windows = self.forecast.windows_at(
                &engine,
                phone_number_id,
                &message.user,
                now + SignedDuration::from_nanos(1),
            );
            windows.customer_service_window.is_none()
        };
        if refused && self.options.reengagement == Reengagement::Sync {
            let (title, details) = wameter_meta::outgoing::status_error_text(REENGAGEMENT);
            return Err(GraphError::new(REENGAGEMENT, title, details));
        }
        let fails = !refused && self.random.percent(self.options.failure_percent);
        let plan = |after: SignedDuration| (now + after).as_second();
        let options = &self.options;
        let statuses: Vec<(i64, &str, Option<u32>)> = if refused {
            vec![(plan(options.sent_after), "failed", Some(REENGAGEMENT))]
        } else if fails {
            vec![
                (plan(options.sent_after), "sent", None),
                (plan(options.delivered_after), "failed", Some(UNDELIVERABLE)),
            ]
        } else {
            let mut statuses = vec![
                (plan(options.sent_after), "sent", None),
                (plan(options.delivered_after), "delivered", None),
            ];
            if let Some(read_after) = options.read_after {
                statuses.push((plan(read_after.max(options.delivered_after)), "read", None));
            }
            statuses
        };
        let mut marketing_id: Option<Box<str>> = None;
        let sent = self
            .transaction(|world| {
                let id = wameter_meta::outgoing::wamid(&wa_id(&message.user), false, world.next_number("next_wamid")?);
                world.append(now, EventKind::Outbound {
                    business: phone_number_id.into(),
                    user: message.user.clone(),
                    id: id.as_str().into(),
                    template: template.map(std::sync::Arc::new),
                    messaging_account: message.messaging_account.as_deref().map(Box::from),
                })?;
                let cost = marketing_lite.map(|cost| cost.map_or(String::new(), |c| format!("{} {}", c.amount, c.currency)));
                world.db.execute_cached(
                    "INSERT INTO messages (id, business, wa_id, graph_version, cost, messaging_account) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, phone_number_id, wa_id(&message.user), graph_version, cost, message.messaging_account],
                )?;
                if let Some(cost) = marketing_lite {
                    // Before the statuses are planned: they carry its pricing.
                    world.marketing_lite.insert(id.as_str().into(), (phone_number_id.into(), message.user.clone(), cost));
                    marketing_id = Some(id.as_str().into());
                }
                for (due, status, error) in &statuses {
                    world.db.execute_cached("INSERT INTO schedule (due, id, status, error) VALUES (?1, ?2, ?3, ?4)", params![due, id, status, error])?;
                    let planned = Planned {
                        seq: world.db.last_insert_rowid(),
                        at: Timestamp::from_second(*due).unwrap_or_default(),
                        id: id.as_str().into(),
                        status: DeliveryStatus::parse(status).unwrap_or(DeliveryStatus::Failed),
                        error: error.map(i64::from),
                    };
                    let event = world.planned_event(&planned);
                    world.planning.push(event);
                }
                Ok(id)
            });
        let id = match sent {
            Ok(id) => id,
            Err(error) => {
                if let Some(id) = marketing_id {
                    self.marketing_lite.remove(&id);
                }
                return Err(sql_error(error));
            }
        };
        self.fire_due(real).map_err(sql_error)?;
        let mut sent = json!({"id": id});
        if message.template.is_some() {
            sent["message_status"] = json!("accepted");
        }
        Ok(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": message.input, "wa_id": wa_id(&message.user)}],
            "messages": [sent],
        }))
    }

    /// `POST /{version}/{phone_number_id}/calls` (Meta's Manage Calls).
    /// A business call rings (a RINGING status webhook) until the
    /// simulated user answers, rejects or lets it go ([`World::user_acts`]);
    /// a user's call is accepted, rejected or ended here.
    pub fn call(
        &mut self,
        real: Timestamp,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<Value, GraphError> {
        self.check_business(phone_number_id)?;
        let now = self.now(real);
        match calls::parse(body)? {
            CallRequest::Connect { to, opaque } => {
                let business = self.pricing.accounts.get_or_default(phone_number_id);
                if let Some(country) = wameter_core::rules::calling::calls_forbidden_from(&business)
                {
                    return Err(wameter_meta::graph::calls_not_available(
                        phone_number_id,
                        country,
                        "",
                    ));
                }
                let id = self
                    .transaction(|world| {
                        let id = format!("wacid.sandbox.{}", world.next_number("next_wacid")?);
                        world.db.execute_cached(
                            "INSERT INTO calls (id, business, user, direction, placed_s, opaque) VALUES (?1, ?2, ?3, 'business_initiated', ?4, ?5)",
                            params![id, phone_number_id, to.to_string(), now.as_second(), opaque],
                        )?;
                        let body = world.sender_of(phone_number_id, |sender| sender.call_status(&id, &wa_id(&to), "RINGING", now));
                        world.enqueue(real, &body)?;
                        Ok(id)
                    })
                    .map_err(sql_error)?;
                Ok(json!({"messaging_product": "whatsapp", "calls": [{"id": id}]}))
            }
            CallRequest::Act { action, call_id } => {
                let call = self
                    .open_call(phone_number_id, &call_id)
                    .map_err(|why| GraphError::invalid(format!("call_id `{call_id}`: {why}")))?;
                let user_call = call.direction == CallDirection::UserInitiated;
                match action {
                    Action::PreAccept | Action::Accept | Action::Reject if !user_call => {
                        return Err(GraphError::invalid(format!(
                            "call_id `{call_id}`: a business's call is answered by the user; `{}` is for a user's call",
                            action.as_str()
                        )));
                    }
                    Action::PreAccept | Action::Accept | Action::Reject
                        if call.accepted_s.is_some() =>
                    {
                        return Err(GraphError::invalid(format!(
                            "call_id `{call_id}`: the call is already connected; end it with `terminate`"
                        )));
                    }
                    Action::PreAccept => {}
                    Action::Accept => self
                        .transaction(|world| {
                            world
                                .db
                                .execute_cached(
                                    "UPDATE calls SET accepted_s = ?2 WHERE id = ?1",
                                    params![call.id, now.as_second()],
                                )
                                .map(drop)
                        })
                        .map_err(sql_error)?,
                    Action::Reject | Action::Terminate => self
                        .transaction(|world| world.end_call(real, &call, None))
                        .map_err(sql_error)?,
                }
                Ok(json!({"success": true}))
            }
        }
    }

    /// A user calls a business (`POST /_sandbox/calls` `{"business", "user"}`):
    /// the customer service window opens now, and the app gets the
    /// `connect` webhook. Returns the call id.
    pub fn user_calls(&mut self, real: Timestamp, request: &Value) -> Result<Value, ControlError> {
        let field = |name: &str| request.get(name).and_then(Value::as_str);
        let business = field("business").ok_or_else(|| {
            ControlError("`business` (the business phone number id) is required".into())
        })?;
        self.check_business(business)
            .map_err(|e| ControlError(e.details))?;
        let user =
            UserId::parse(field("user").ok_or_else(|| {
                ControlError("`user` (the user's phone number) is required".into())
            })?)
            .map_err(|e| ControlError(format!("`user`: {e}")))?;
        let now = self.now(real);
        let id = self
            .transaction(|world| {
                let id = format!("wacid.sandbox.{}", world.next_number("next_wacid")?);
                world.db.execute_cached(
                    "INSERT INTO calls (id, business, user, direction, placed_s) VALUES (?1, ?2, ?3, 'user_initiated', ?4)",
                    params![id, business, user.to_string(), now.as_second()],
                )?;
                // As wameter reads Meta's `connect`: the call opens the window.
                world.append(now, EventKind::Inbound { business: business.into(), user: user.clone(), id: Some(id.as_str().into()), entry_point: None, kind: InboundKind::Call })?;
                let body = world.sender_of(business, |sender| sender.call_connect(&id, &wa_id(&user), CallDirection::UserInitiated, now));
                world.enqueue(real, &body)?;
                Ok(id)
            })
            .map_err(|e| ControlError(e.to_string()))?;
        Ok(json!({"id": id, "at": now.to_string()}))
    }

    /// The simulated user acts on a call (`POST /_sandbox/calls/{id}/{what}`):
    /// `answer` a business's call (it connects now), `reject` it, or
    /// `hang_up` any call (it ends now).
    pub fn user_acts(
        &mut self,
        real: Timestamp,
        call_id: &str,
        what: &str,
    ) -> Result<Value, ControlError> {
        let call = self
            .open_call_any(call_id)
            .map_err(|why| ControlError(format!("call `{call_id}`: {why}")))?;
        let now = self.now(real);
        let business_call = call.direction == CallDirection::BusinessInitiated;
        let result = match what {
            "answer" | "reject" if !business_call => {
                return Err(ControlError(format!(
                    "call `{call_id}` is the user's own: the business answers it (`accept`)"
                )));
            }
            "answer" | "reject" if call.accepted_s.is_some() => {
                return Err(ControlError(format!(
                    "call `{call_id}` is already connected: `hang_up` ends it"
                )));
            }
            "answer" => self.transaction(|world| {
                world.db.execute_cached(
                    "UPDATE calls SET accepted_s = ?2 WHERE id = ?1",
                    params![call.id, now.as_second()],
                )?;
                // An accepted business call opens the window (docs/rules.md §14).
                world.append(
                    now,
                    EventKind::Inbound {
                        business: call.business.as_str().into(),
                        user: call.user.clone(),
                        id: Some(call.id.as_str().into()),
                        entry_point: None,
                        kind: InboundKind::Call,
                    },
                )?;
                let user = wa_id(&call.user);
                let connect = world.sender_of(&call.business, |sender| {
                    sender.call_connect(&call.id, &user, CallDirection::BusinessInitiated, now)
                });
                world.enqueue(real, &connect)?;
                let accepted = world.sender_of(&call.business, |sender| {
                    sender.call_status(&call.id, &user, "ACCEPTED", now)
                });
                world.enqueue(real, &accepted)
            }),
            "reject" => self.transaction(|world| world.end_call(real, &call, Some("REJECTED"))),
            "hang_up" => self.transaction(|world| world.end_call(real, &call, None)),
            other => {
                return Err(ControlError(format!(
                    "`{other}`: one of answer, reject, hang_up"
                )));
            }
        };
        result.map_err(|e| ControlError(e.to_string()))?;
        Ok(json!({"id": call_id, "at": now.to_string()}))
    }

    /// Ends a call now: logs it as a `call` event (connected from its
    /// acceptance, else never), and queues its `terminate` webhook (after a
    /// status, for a business call the user rejected).
    fn end_call(&mut self, real: Timestamp, call: &CallRow, status: Option<&str>) -> Sql<()> {
        let now = self.now(real);
        let accepted = call.accepted_s.and_then(|s| Timestamp::from_second(s).ok());
        let duration_seconds = accepted.map_or(0, |at| {
            u32::try_from(now.as_second() - at.as_second()).unwrap_or(0)
        });
        // As wameter reads the terminate: from its start_time when it was
        // picked up, else from when it ended.
        let started = if duration_seconds > 0 {
            accepted.unwrap_or(now)
        } else {
            now
        };
        self.db.execute_cached(
            "UPDATE calls SET ended_s = ?2 WHERE id = ?1",
            params![call.id, now.as_second()],
        )?;
        self.append(
            started,
            EventKind::Call(Box::new(Call {
                business: call.business.as_str().into(),
                user: call.user.clone(),
                id: call.id.as_str().into(),
                direction: call.direction,
                duration_seconds,
                status: CallStatus::Completed,
                error: None,
                messaging_account: None,
            })),
        )?;
        let user = wa_id(&call.user);
        if let Some(status) = status {
            let body = self.sender_of(&call.business, |sender| {
                sender.call_status(&call.id, &user, status, now)
            });
            self.enqueue(real, &body)?;
        }
        let end = wameter_meta::outgoing::CallEnd {
            id: &call.id,
            user_wa_id: &user,
            direction: call.direction,
            started_at: started,
            ended_at: now,
            duration_seconds,
            status: "completed",
            opaque: call.opaque.as_deref(),
        };
        let body = self.sender_of(&call.business, |sender| sender.call_terminate(&end));
        self.enqueue(real, &body)
    }

    /// A webhook body from `business`'s sender.
    fn sender_of(&self, business: &str, build: impl FnOnce(&Sender<'_>) -> Value) -> Value {
        let (waba, display) = self.sender_parts(business);
        build(&Sender {
            waba: &waba,
            phone_number_id: business,
            display_phone_number: &display,
        })
    }

    /// `business`'s call that has not ended.
    fn open_call(&self, business: &str, id: &str) -> Result<CallRow, String> {
        let call = self.open_call_any(id)?;
        if call.business != business {
            return Err(format!("no call of that id on business number {business}"));
        }
        Ok(call)
    }

    /// A call that has not ended, on any business.
    fn open_call_any(&self, id: &str) -> Result<CallRow, String> {
        let row = self
            .db
            .query_row_cached("SELECT business, user, direction, accepted_s, ended_s, opaque FROM calls WHERE id = ?1", [id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                    row.get::<_, Option<String>>(5)?,
                ))
            })
            .optional()
            .map_err(|e| e.to_string())?;
        let Some((business, user, direction, accepted_s, ended_s, opaque)) = row else {
            return Err("no call of that id".into());
        };
        let call = CallRow {
            id: id.to_string(),
            business,
            user: UserId::parse(&user).map_err(|e| format!("stored user `{user}`: {e}"))?,
            direction: CallDirection::parse(&direction)
                .ok_or_else(|| format!("stored direction `{direction}`"))?,
            accepted_s,
            ended_s,
            opaque,
        };
        if call.ended_s.is_some() {
            return Err("the call has ended".into());
        }
        Ok(call)
    }

    /// What the sandbox, standing in for Meta, charges a max-price send:
    /// the lower of the market's marketing rate on the card in force and
    /// the max price (`bid_amount` × multiplier per 1,000 deliveries, in
    /// minor units). Meta charges "that max price or lower" by an auction
    /// the sandbox does not run: the lower of the two is its stand-in.
    fn max_price_cost(
        &self,
        business: &str,
        messaging_account: Option<&str>,
        user: &UserId,
        bid_amount: u64,
        multiplier: rust_decimal::Decimal,
        now: Timestamp,
    ) -> MetaCost {
        use rust_decimal::Decimal;
        let account = self.pricing.accounts.payer(
            business,
            self.pricing
                .accounts
                .messaging_account(business, messaging_account)
                .as_deref(),
        );
        let local = account.timezone.to_datetime(now).date();
        let market = self.pricing.markets.lookup(user, local).market;
        let rate = self
            .pricing
            .rates
            .select(
                account.currency,
                wameter_core::category::PricingModel::Pmp,
                local,
            )
            .ok()
            .and_then(|card| {
                card.rate(&market, wameter_core::category::PricingCategory::Marketing)
                    .ok()
            });
        let minor = Decimal::from(10u64.pow(account.currency.minor_digits()));
        let max = Decimal::from(bid_amount) * multiplier / Decimal::from(1000) / minor;
        MetaCost {
            amount: rate.map_or(max, |rate| rate.min(max)).normalize(),
            currency: account.currency,
        }
    }

    /// Statuses planned but not yet due, as the events they will become:
    /// the future as planned, which prices a `sent` status the way its
    /// delivery will be priced.
    fn planned(&self) -> Sql<Vec<Planned>> {
        let mut statement = self
            .db
            .prepare("SELECT seq, due, id, status, error FROM schedule ORDER BY due, seq")?;
        let rows = statement.query_map([], |row| {
            let status: String = row.get(3)?;
            Ok(Planned {
                seq: row.get(0)?,
                at: Timestamp::from_second(row.get(1)?).unwrap_or_default(),
                id: row.get::<_, String>(2)?.into_boxed_str(),
                status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
                error: row.get(4)?,
            })
        })?;
        rows.collect()
    }

    /// Turns every planned status due at the sandbox clock into a logged
    /// event and a queued webhook, in time order. Returns how many fired.
    pub fn fire_due(&mut self, real: Timestamp) -> Sql<usize> {
        let now = self.now(real);
        // The clock ticks ten times a second: look at the whole schedule
        // only when something is due.
        let any_due: bool = self.db.query_row_cached(
            "SELECT EXISTS (SELECT 1 FROM schedule WHERE due <= ?1)",
            [now.as_second()],
            |row| row.get(0),
        )?;
        if !any_due {
            return Ok(0);
        }
        let planned = self.planned()?;
        let due = planned.iter().take_while(|p| p.at <= now).count();
        if due == 0 {
            return Ok(0);
        }
        // A `read` planned without a `delivered` is the status that charges.
        let delivered_planned: HashSet<Box<str>> = planned
            .iter()
            .filter(|p| p.status == DeliveryStatus::Delivered)
            .map(|p| p.id.clone())
            .collect();
        self.transaction(|world| world.fire(real, &planned[..due], &delivered_planned))?;
        Ok(due)
    }

    /// Logs due statuses and queues their webhooks (in a transaction).
    fn fire(
        &mut self,
        real: Timestamp,
        due: &[Planned],
        delivered_planned: &HashSet<Box<str>>,
    ) -> Sql<()> {
        let mut bodies = Vec::with_capacity(due.len());
        for Planned {
            seq,
            at,
            id,
            status,
            error,
        } in due
        {
            let kind = self
                .status_event(*at, Origin::default(), id, *status, *error)
                .kind;
            self.append(*at, kind)?;
            self.db
                .execute_cached("DELETE FROM schedule WHERE seq = ?1", [seq])?;
            let (business, wa_id, graph_version, messaging_account): (String, String, u32, Option<String>) =
                self.db.query_row_cached("SELECT business, wa_id, graph_version, messaging_account FROM messages WHERE id = ?1", [&**id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?;
            // Billing objects ride on `sent` and on the status that charges.
            let charging = match status {
                DeliveryStatus::Sent | DeliveryStatus::Delivered => true,
                DeliveryStatus::Read => !delivered_planned.contains(&**id),
                DeliveryStatus::Failed => false,
            };
            // The charge as the forecast has it: the log and every planned
            // status, so a `sent` status carries its delivery's price.
            if charging {
                self.forecast
                    .settle_through(&forecast_engine(&self.pricing), &business, id);
            }
            let charge = match self.forecast.charge(&business, id) {
                Some(Ok(charge)) if charging => Some((charge, Billing::of(charge))),
                _ => None,
            };
            // Meta sends a message's statuses to the Messaging account
            // that sent it: its id is the entry's.
            let (waba, display) = self.sender_parts(&business);
            let waba = messaging_account.unwrap_or(waba);
            let sender = Sender {
                waba: &waba,
                phone_number_id: &business,
                display_phone_number: &display,
            };
            let error = error.map(|code| code as u32);
            let user_id = UserId::parse(&wa_id)
                .ok()
                .and_then(|user| self.bsuid(&business, &user, *at));
            bodies.push(
                sender.status(&StatusReport {
                    id,
                    status: status.as_str(),
                    at: *at,
                    recipient_wa_id: &wa_id,
                    recipient_user_id: user_id.as_deref(),
                    charge,
                    error,
                    graph_version,
                    marketing_lite: self.marketing_lite.contains_key(&**id),
                    cost: self
                        .marketing_lite
                        .get(&**id)
                        .and_then(|(_, _, cost)| *cost),
                }),
            );
        }
        for body in &bodies {
            self.enqueue(real, body)?;
        }
        Ok(())
    }

    /// The WABA's templates, starting with Meta's sample `hello_world` the
    /// first time the WABA is seen.
    pub fn templates(&mut self, waba: &str) -> Result<Vec<Template>, GraphError> {
        let inserted = self
            .db
            .execute_cached("INSERT OR IGNORE INTO wabas (waba) VALUES (?1)", [waba])
            .map_err(sql_error)?;
        if inserted == 1 {
            let id = self.next_template_id().map_err(sql_error)?;
            self.insert_template(waba, &Template::hello_world(id))
                .map_err(sql_error)?;
        }
        let mut statement = self
            .db
            .prepare("SELECT id, name, language, category, status, components, parameter_format, previous_category, bid_amount FROM templates WHERE waba = ?1 ORDER BY rowid")
            .map_err(sql_error)?;
        statement
            .query_map([waba], |row| {
                let category: String = row.get(3)?;
                let components: String = row.get(5)?;
                Ok(Template {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    language: row.get(2)?,
                    category: parse_category(&category).unwrap_or(TemplateCategory::Utility),
                    status: row.get(4)?,
                    components: serde_json::from_str(&components).unwrap_or(Value::Null),
                    parameter_format: row.get(6)?,
                    previous_category: row
                        .get::<_, Option<String>>(7)?
                        .as_deref()
                        .and_then(parse_category),
                    bid_amount: row.get::<_, Option<i64>>(8)?.map(|b| b as u64),
                })
            })
            .and_then(Iterator::collect)
            .map_err(sql_error)
    }

    /// Stores an upload (`POST /{phone_number_id}/media`) and returns its id.
    pub fn upload_media(
        &mut self,
        business: &str,
        mime_type: &str,
        bytes: &[u8],
    ) -> Result<Value, GraphError> {
        use sha2::Digest;
        self.check_business(business)?;
        crate::media::check_upload(mime_type, bytes.len())?;
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        let id = self
            .transaction(|world| {
                let id = world.next_object_id("next_media", 2_000_000_000_000_000)?;
                world.db.execute_cached(
                    "INSERT INTO media (id, business, mime_type, sha256, file_size, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, business, crate::media::essence(mime_type), sha256, bytes.len() as i64, bytes],
                )?;
                Ok(id)
            })
            .map_err(sql_error)?;
        Ok(json!({"id": id}))
    }

    /// An upload, if `id` is one (and, when `business` is given, uploaded to
    /// that number, as Graph's `?phone_number_id=` asks).
    pub fn media(&self, id: &str, business: Option<&str>) -> Result<Option<MediaInfo>, GraphError> {
        let info = self
            .db
            .query_row_cached(
                "SELECT id, business, mime_type, sha256, file_size FROM media WHERE id = ?1",
                [id],
                |row| {
                    Ok(MediaInfo {
                        id: row.get(0)?,
                        business: row.get(1)?,
                        mime_type: row.get(2)?,
                        sha256: row.get(3)?,
                        file_size: row.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sql_error)?;
        Ok(info.filter(|info| business.is_none_or(|business| info.business == business)))
    }

    /// An upload's MIME type and bytes.
    pub fn media_bytes(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, GraphError> {
        self.db
            .query_row_cached(
                "SELECT mime_type, bytes FROM media WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sql_error)
    }

    /// Deletes an upload; `false` when there is none of that id (for that
    /// number, when given).
    pub fn delete_media(&mut self, id: &str, business: Option<&str>) -> Result<bool, GraphError> {
        if self.media(id, business)?.is_none() {
            return Ok(false);
        }
        self.db
            .execute_cached("DELETE FROM media WHERE id = ?1", [id])
            .map_err(sql_error)?;
        Ok(true)
    }

    fn next_template_id(&self) -> Sql<String> {
        self.next_object_id("next_template", 1_000_000_000_000_000)
    }

    /// The next id of a kind of Graph object (templates, media): Meta's are
    /// long decimal numbers; each kind counts from its own base.
    fn next_object_id(&self, sequence: &str, base: u64) -> Sql<String> {
        Ok(base.saturating_add(self.next_number(sequence)?).to_string())
    }

    fn insert_template(&self, waba: &str, template: &Template) -> Sql<()> {
        self.db.execute_cached(
            "INSERT INTO templates (id, waba, name, language, category, status, components, parameter_format, bid_amount) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                template.id,
                waba,
                template.name,
                template.language,
                category_name(template.category),
                template.status,
                template.components.to_string(),
                template.parameter_format,
                template.bid_amount.map(|b| b as i64)
            ],
        )?;
        Ok(())
    }

    fn find_template(
        &mut self,
        waba: &str,
        name: &str,
        language: &str,
    ) -> Result<Template, GraphError> {
        let template = self
            .templates(waba)?
            .into_iter()
            .find(|t| t.name == name && t.language == language)
            .ok_or_else(|| templates::not_found(name, language))?;
        templates::check_sendable(&template)?;
        Ok(template)
    }

    /// `POST /{version}/{waba_id}/message_templates`: the sandbox approves
    /// at once, with the category asked for.
    pub fn create_template(&mut self, waba: &str, body: &Value) -> Result<Value, GraphError> {
        let new = templates::parse_new(body)?;
        if self
            .templates(waba)?
            .iter()
            .any(|t| t.name == new.name && t.language == new.language)
        {
            return Err(GraphError {
                subcode: Some(2_388_024),
                ..GraphError::invalid(format!(
                    "a template `{}` in {} already exists",
                    new.name, new.language
                ))
            });
        }
        let id = self.next_template_id().map_err(sql_error)?;
        let template = Template {
            id,
            name: new.name,
            language: new.language,
            category: new.category,
            status: "APPROVED".into(),
            components: new.components,
            parameter_format: new.parameter_format,
            previous_category: None,
            bid_amount: new.bid_amount,
        };
        self.insert_template(waba, &template).map_err(sql_error)?;
        Ok(
            json!({"id": template.id, "status": template.status, "category": category_name(template.category)}),
        )
    }

    /// The templates a control request names (`waba`, `name`, optional
    /// `language`): all languages of the name when no language is given.
    fn named_templates(
        &mut self,
        request: &Value,
    ) -> Result<(String, Vec<Template>), ControlError> {
        let field = |name: &str| request.get(name).and_then(Value::as_str);
        let waba = field("waba").ok_or_else(|| ControlError("`waba` is required".into()))?;
        let name = field("name")
            .ok_or_else(|| ControlError("`name` (the template's) is required".into()))?;
        let language = field("language");
        let named: Vec<Template> = self
            .templates(waba)
            .map_err(|e| ControlError(e.details))?
            .into_iter()
            .filter(|t| t.name == name && language.is_none_or(|l| l == t.language))
            .collect();
        if named.is_empty() {
            return Err(ControlError(format!(
                "WABA {waba} has no template `{name}`{}",
                language.map(|l| format!(" in {l}")).unwrap_or_default()
            )));
        }
        Ok((waba.to_string(), named))
    }

    /// Changes templates in one transaction, queueing one webhook per
    /// template: `change` runs the update and returns the webhook's field
    /// and value.
    fn update_templates(
        &mut self,
        real: Timestamp,
        waba: &str,
        templates: &[Template],
        change: impl Fn(&Connection, &Template, Value) -> Sql<(&'static str, Value)>,
    ) -> Result<Timestamp, ControlError> {
        let now = self.now(real);
        let result = self.transaction(|world| {
            for template in templates {
                // Meta's webhooks give template ids as numbers.
                let id = template
                    .id
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(template.id.clone()));
                let value = json!({
                    "message_template_id": id,
                    "message_template_name": template.name,
                    "message_template_language": template.language,
                });
                let (field, value) = change(&world.db, template, value)?;
                world.enqueue(
                    real,
                    &wameter_meta::outgoing::change(waba, now, field, value),
                )?;
            }
            Ok(())
        });
        result.map_err(|e| ControlError(e.to_string()))?;
        Ok(now)
    }

    /// Meta re-categorises a template (`POST /_sandbox/templates/category`):
    /// later sends use the new category, and the app gets a
    /// `template_category_update` webhook per language changed.
    pub fn change_category(
        &mut self,
        real: Timestamp,
        request: &Value,
    ) -> Result<Value, ControlError> {
        let category = request
            .get("category")
            .and_then(Value::as_str)
            .ok_or_else(|| ControlError("`category` is required".into()))?;
        let category = parse_category(category).ok_or_else(|| {
            ControlError(format!(
                "`category` `{category}`: must be MARKETING, UTILITY or AUTHENTICATION"
            ))
        })?;
        let (waba, changed) = self.named_templates(request)?;
        let now = self.update_templates(real, &waba, &changed, |db, template, mut value| {
            db.execute_cached(
                "UPDATE templates SET category = ?1, previous_category = ?2 WHERE id = ?3",
                params![
                    category_name(category),
                    category_name(template.category),
                    template.id
                ],
            )?;
            value["previous_category"] = json!(category_name(template.category));
            value["new_category"] = json!(category_name(category));
            Ok(("template_category_update", value))
        })?;
        Ok(
            json!({"changed": changed.len(), "category": category_name(category), "at": now.to_string()}),
        )
    }

    /// Meta reviews a template again (`POST /_sandbox/templates/status`):
    /// a template that is not `APPROVED` cannot be sent, and the app gets a
    /// `message_template_status_update` webhook per language.
    pub fn change_status(
        &mut self,
        real: Timestamp,
        request: &Value,
    ) -> Result<Value, ControlError> {
        let status = request
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if !templates::STATUSES.contains(&status.as_str()) {
            return Err(ControlError(format!(
                "`status` must be one of {}",
                templates::STATUSES.join(", ")
            )));
        }
        let (waba, changed) = self.named_templates(request)?;
        let now = self.update_templates(real, &waba, &changed, |db, template, mut value| {
            db.execute_cached(
                "UPDATE templates SET status = ?1 WHERE id = ?2",
                params![status, template.id],
            )?;
            value["event"] = json!(status);
            value["message_template_category"] = json!(category_name(template.category));
            value["reason"] = json!("NONE");
            Ok(("message_template_status_update", value))
        })?;
        Ok(json!({"changed": changed.len(), "status": status, "at": now.to_string()}))
    }

    /// `GET /{version}/{phone_number_id}`.
    pub fn phone_number(&self, phone_number_id: &str) -> Result<Value, GraphError> {
        self.check_business(phone_number_id)?;
        let digits = test_display_number(phone_number_id);
        Ok(json!({
            "id": phone_number_id,
            "display_phone_number": format!("+{} {}-{}-{}", &digits[..1], &digits[1..4], &digits[4..7], &digits[7..]),
            "verified_name": "wameter sandbox",
            "quality_rating": "GREEN",
            "code_verification_status": "VERIFIED",
            "name_status": "AVAILABLE_WITHOUT_REVIEW",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
        }))
    }

    /// The event log as canonical NDJSON (`GET /_sandbox/events`): what
    /// `wameter replay` reads.
    pub fn event_log(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            out.push_str(&wameter_log::event_line(event));
            out.push('\n');
        }
        out
    }

    /// The `replay --json` document of the event log (`GET
    /// /_sandbox/charges`). Warnings point at lines of `GET
    /// /_sandbox/events`.
    pub fn charges_document(&self) -> Vec<u8> {
        let report = self.pricing.engine().replay(self.events.clone());
        // A message the engine cannot price (no rate card for its date) has
        // no charge; say so rather than leave a silent gap (`replay` fails
        // on it).
        let unpriced = report.errors.iter().map(|error| WarningJson {
            code: "unpriced_message",
            message: format!("{}: {}", error.message_id, error.message),
            file: None,
            line: Some(error.origin.line),
            event: None,
        });
        let warned = report.warnings.iter().map(|warning| WarningJson {
            code: warning.code,
            message: warning.message.clone(),
            file: None,
            line: warning.origin.map(|o| o.line),
            event: None,
        });
        let warnings: Vec<WarningJson> = unpriced.chain(warned).collect();
        let mut out = Vec::new();
        write_document(
            &mut out,
            &report.charges,
            Others {
                calls: &report.calls,
                agent: &report.agent,
            },
            &warnings,
            Default::default(),
        )
        .expect("writing to memory cannot fail");
        out
    }

    /// Webhooks due for a post at real time `real` (at most `limit`).
    pub fn due_webhooks(&self, real: Timestamp, limit: usize) -> Sql<Vec<Outgoing>> {
        let mut statement = self.db.prepare(
            "SELECT seq, body, attempts FROM outbox WHERE state = 'pending' AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms, seq LIMIT ?2",
        )?;
        let rows = statement.query_map(params![real.as_millisecond(), limit as i64], |row| {
            Ok(Outgoing {
                seq: row.get(0)?,
                body: row.get(1)?,
                attempts: row.get(2)?,
            })
        })?;
        rows.collect()
    }

    /// When the next pending webhook falls due (real milliseconds).
    pub fn next_webhook_ms(&self) -> Sql<Option<i64>> {
        self.db.query_row_cached(
            "SELECT MIN(next_attempt_ms) FROM outbox WHERE state = 'pending'",
            [],
            |row| row.get(0),
        )
    }

    /// Records a post: delivered, or failed and retried after `retry_in`
    /// (`None`: given up).
    pub fn webhook_result(
        &self,
        real: Timestamp,
        seq: i64,
        error: Option<(&str, Option<SignedDuration>)>,
    ) -> Sql<()> {
        match error {
            None => self.db.execute_cached("UPDATE outbox SET state = 'delivered', attempts = attempts + 1 WHERE seq = ?1", [seq])?,
            Some((error, Some(retry_in))) => self.db.execute_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 WHERE seq = ?1",
                params![seq, error, real.as_millisecond() + retry_in.as_millis() as i64],
            )?,
            Some((error, None)) => self.db.execute_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = 'abandoned' WHERE seq = ?1",
                params![seq, error],
            )?,
        };
        Ok(())
    }

    /// Every webhook the sandbox has written, with its delivery state
    /// (`GET /_sandbox/webhooks`).
    pub fn webhooks(&self) -> Sql<Value> {
        let mut statement = self
            .db
            .prepare("SELECT seq, body, attempts, state, last_error FROM outbox ORDER BY seq")?;
        let rows = statement.query_map([], |row| {
            let body: String = row.get(1)?;
            Ok(json!({
                "seq": row.get::<_, i64>(0)?,
                "body": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
                "attempts": row.get::<_, i64>(2)?,
                "state": row.get::<_, String>(3)?,
                "last_error": row.get::<_, Option<String>>(4)?,
            }))
        })?;
        Ok(Value::Array(rows.collect::<Sql<Vec<Value>>>()?))
    }

    /// Counts for `GET /_sandbox`.
    pub fn summary(&self, real: Timestamp) -> Sql<Value> {
        let count = |sql: &str| {
            self.db
                .query_row_cached(sql, [], |row| row.get::<_, i64>(0))
        };
        Ok(json!({
            "clock": self.now(real).to_string(),
            "events": self.events.len(),
            "planned_statuses": count("SELECT COUNT(*) FROM schedule")?,
            "webhooks": {
                "pending": count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")?,
                "delivered": count("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'")?,
                "abandoned": count("SELECT COUNT(*) FROM outbox WHERE state = 'abandoned'")?,
            },
        }))
    }
}
