//! The meter: from stored events to the engine's answers, and from the
//! engine's charges to what a store keeps and a reader is served.
//!
//! - Stored events read back ([`load`], [`ReadBack`]), with the outbounds
//!   Meta's pricing implies inferred, as `wameter replay` does.
//! - The windows of a pair ([`windows`], [`predict`]), for the guard.
//! - The charges of a (portfolio, month) the store keeps ([`settle_month`],
//!   [`MonthState`] between rounds), as lines of the `replay --json`
//!   document and typed columns ([`records`]).
//! - Kept charges back into export rows ([`rows_of`]) and the `/v1/charges`
//!   document ([`answer`]).
//!
//! Everything comes from the same pure engine as `wameter replay`, fed the
//! events the question depends on, so `serve` and a replay of the same
//! events can never disagree.

pub mod records;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::records::{
    ChargeFacts, ChargeRow, KeptFacts, KeptLine, Settled, StoredEvent, WarningRow,
};
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use wameter_core::charge::Charge;
use wameter_core::engine::{ContactWindows, Engine, prepare};
use wameter_core::event::{
    DeliveryStatus, Event, EventKind, Origin, Template, UserId, infer_outbounds,
};
use wameter_core::incremental::MeterState;
use wameter_core::money::Currency;
use wameter_core::report::Totals;
use wameter_core::rules::agent::AgentCharge;
use wameter_core::rules::calling::CallCharge;
use wameter_core::settlement::Month;
use wameter_core::window::DAY;
use wameter_export::{Kind, Row};
use wameter_log::Parsed;
use wameter_log::replay_json::{
    AgentJson, AgentLine, CallJson, CallLine, ChargeJson, ChargeLine, WarningJson,
};

/// A stored event's id as an [`Origin`], so warnings can point back at it.
pub fn origin_of(id: i64) -> Origin {
    let id = id as u64;
    Origin {
        source: (id >> 32) as u32,
        line: id as u32,
    }
}

/// The stored event id an [`Origin`] came from.
pub fn id_of(origin: Origin) -> u64 {
    (u64::from(origin.source) << 32) | u64::from(origin.line)
}

/// Stored events read back.
#[derive(Default)]
pub struct Loaded {
    /// Events, then the outbounds inferred from Meta's pricing.
    pub events: Vec<Event>,
    /// Stored lines that no longer read (a bug or a hand-edited database).
    pub unreadable: Vec<(i64, String)>,
    /// (business, wamid) of the messages whose outbound was inferred from a
    /// status's `pricing`.
    pub inferred: HashSet<(String, String)>,
}

/// Reads stored notice lines (a store's `notices`) back; a line that is
/// not a notice is left out.
pub fn notices_of(lines: &[String]) -> Vec<wameter_core::notice::Notice> {
    lines
        .iter()
        .filter_map(
            |line| match wameter_log::parse_line(line, Origin::default()) {
                Ok(Parsed::Notice(notice)) => Some(*notice),
                _ => None,
            },
        )
        .collect()
}

/// Reads stored lines back into events and adds the outbounds that Meta's
/// pricing implies (as `replay` does for a log).
pub fn load(rows: &[StoredEvent]) -> Loaded {
    load_with(rows, |row| {
        wameter_log::parse_line(&row.line, origin_of(row.id))
    })
}

/// Stored events at most kept parsed by a [`ReadBack`] (about 100 MB at
/// worst); past it the memo starts again empty.
const READ_BACK_MAX: usize = 1 << 18;

/// Stored events already read back, by row id. A stored line never
/// changes, so the guard parses each once instead of on every send to its
/// pair: reading the lines back was 40 % of the guard's engine step
/// (`benches/guard_steps.rs`).
#[derive(Default)]
pub struct ReadBack {
    events: Mutex<HashMap<i64, Event>>,
}

impl ReadBack {
    /// [`load`], parsing only the rows not read back before.
    pub fn load(&self, rows: &[StoredEvent]) -> Loaded {
        let mut kept = lock(&self.events);
        if kept.len() + rows.len() > READ_BACK_MAX {
            kept.clear();
        }
        load_with(rows, |row| {
            if let Some(event) = kept.get(&row.id) {
                return Ok(Parsed::Event(event.clone()));
            }
            let parsed = wameter_log::parse_line(&row.line, origin_of(row.id));
            if let Ok(Parsed::Event(event)) = &parsed {
                kept.insert(row.id, event.clone());
            }
            parsed
        })
    }
}

/// A stored line read back: its event, or why it does not read as one.
fn event_of(parsed: Result<Parsed, wameter_log::LineError>) -> Result<Event, String> {
    match parsed {
        Ok(Parsed::Event(event)) => Ok(event),
        Ok(_) => Err("stored line is not an event".into()),
        Err(error) => Err(error.to_string()),
    }
}

fn load_with(
    rows: &[StoredEvent],
    mut parse: impl FnMut(&StoredEvent) -> Result<Parsed, wameter_log::LineError>,
) -> Loaded {
    let mut out = Loaded::default();
    for row in rows {
        match event_of(parse(row)) {
            Ok(event) => out.events.push(event),
            Err(why) => out.unreadable.push((row.id, why)),
        }
    }
    out.inferred = infer_outbounds(&mut out.events)
        .into_iter()
        .map(|(business, id)| (business.into(), id.into()))
        .collect();
    out
}

/// The windows of one pair at `at`, from its stored events.
pub fn windows(
    engine: &Engine<'_>,
    events: Vec<Event>,
    business: &str,
    user: &UserId,
    at: Timestamp,
) -> ContactWindows {
    let prepared = prepare(events);
    prepared
        .contacts
        .iter()
        .find(|contact| &*contact.business == business && &contact.user == user)
        .map(|contact| engine.windows_at(contact, at))
        .unwrap_or_default()
}

/// The charge a send would get if it were delivered at once: the pair's
/// events, then the send and its delivery at `at`, replayed. Volume tiers
/// count only what the pair's events show, so a tiered rate is the first
/// band's (the guard says so in its estimate). `None` when the engine
/// could not price it (no rate card for the date, for instance).
pub fn predict(
    engine: &Engine<'_>,
    mut events: Vec<Event>,
    business: &str,
    user: &UserId,
    at: Timestamp,
    template: Option<Template>,
    messaging_account: Option<Box<str>>,
) -> Option<Charge> {
    const ID: &str = "wameter.guard.prediction";
    // After every stored event of the same instant.
    let origin = Origin {
        source: u32::MAX,
        line: 0,
    };
    events.push(Event {
        at,
        origin,
        kind: EventKind::Outbound {
            business: business.into(),
            user: user.clone(),
            id: ID.into(),
            template,
            messaging_account,
        },
    });
    events.push(Event {
        at,
        origin: Origin { line: 1, ..origin },
        kind: EventKind::Status {
            id: ID.into(),
            status: DeliveryStatus::Delivered,
            error: None,
            detail: None,
        },
    });
    engine
        .replay(events)
        .charges
        .into_iter()
        .find(|charge| &*charge.message_id == ID)
}

/// Prices one (portfolio, month) from the events its span holds: what the
/// store keeps for it. Charges are those of the portfolio's `businesses`
/// delivered in `month` (business-local). Warnings are those about events
/// in or at the edge of the month, each with the business it concerns so a
/// scoped token sees only its own.
///
/// `now` is when it settles: an event dated more than a day after it (or
/// before 2014) is priced as dated and warned about by name
/// ([`wameter_core::event::implausible_instants`]).
pub fn settle_month(
    engine: &Engine<'_>,
    loaded: Loaded,
    businesses: &BTreeSet<String>,
    month: Month,
    now: Timestamp,
) -> Settled {
    let about = events_about(&loaded.events);
    let implausible = wameter_core::event::implausible_instants(&loaded.events, now);
    let report = engine.replay(loaded.events);
    let mut charges: Vec<ChargeRow> = report
        .charges
        .iter()
        .filter(|charge| in_month(&charge.business, charge.trail.local_date, businesses, month))
        .map(charge_row)
        .collect();
    let inferred = charges
        .iter()
        .filter(|charge| {
            loaded
                .inferred
                .contains(&(charge.business.clone(), charge.message_id.clone()))
        })
        .count();
    charges.extend(call_rows(&report.calls, businesses, month));
    charges.extend(agent_rows(&report.agent, businesses, month));
    let found = report.warnings.iter().chain(&implausible);
    let warnings = warning_rows(
        &loaded.unreadable,
        inferred,
        &report.errors,
        found,
        |id| about.get(&id).cloned(),
        month,
    );
    Settled {
        charges,
        warnings,
        removed: Vec::new(),
        warnings_removed: Vec::new(),
    }
}

/// Whether a charge, call or agent usage is one of the (portfolio,
/// month)'s: of one of its businesses, on a (business-local) date in the
/// month.
fn in_month(business: &str, local_date: Date, businesses: &BTreeSet<String>, month: Month) -> bool {
    businesses.contains(business) && Month::of(local_date) == month
}

/// The (portfolio, month)'s calls as the store keeps them, with the
/// charges (a budget sums both): one row each, its line the document's
/// ([`CallJson`]), which starts with `{"call_id"` (how a kept row is told
/// from a charge's).
fn call_rows<'c>(
    calls: &'c [CallCharge],
    businesses: &'c BTreeSet<String>,
    month: Month,
) -> impl Iterator<Item = ChargeRow> + 'c {
    calls
        .iter()
        .filter(move |call| in_month(&call.business, call.local_date, businesses, month))
        .map(|call| ChargeRow {
            business: call.business.to_string(),
            delivered_at_us: call.started_at.as_microsecond(),
            message_id: call.call_id.to_string(),
            line: serde_json::to_string(&CallJson::from(call)).unwrap_or_default(),
            facts: facts_of(Row::from_call(call)),
        })
}

/// The (portfolio, month)'s Meta Business Agent usage as the store keeps
/// it, as [`call_rows`] keeps calls; a line starts with `{"usage_id"`.
fn agent_rows<'c>(
    agent: &'c [AgentCharge],
    businesses: &'c BTreeSet<String>,
    month: Month,
) -> impl Iterator<Item = ChargeRow> + 'c {
    agent
        .iter()
        .filter(move |usage| in_month(&usage.business, usage.local_date, businesses, month))
        .map(|usage| ChargeRow {
            business: usage.business.to_string(),
            delivered_at_us: usage.at.as_microsecond(),
            message_id: usage.usage_id.to_string(),
            line: serde_json::to_string(&AgentJson::from(usage)).unwrap_or_default(),
            facts: facts_of(Row::from_agent(usage)),
        })
}

/// Whether a kept row is a call's ([`call_rows`]).
fn is_call_line(line: &str) -> bool {
    line.starts_with("{\"call_id\"")
}

/// Whether a kept row is an agent usage's ([`agent_rows`]).
fn is_agent_line(line: &str) -> bool {
    line.starts_with("{\"usage_id\"")
}

/// A charge as the store keeps it.
fn charge_row(charge: &Charge) -> ChargeRow {
    ChargeRow {
        business: charge.business.to_string(),
        delivered_at_us: charge.delivered_at.as_microsecond(),
        message_id: charge.message_id.to_string(),
        line: serde_json::to_string(&ChargeJson::from(charge)).unwrap_or_default(),
        facts: facts_of(Row::from_charge(charge)),
    }
}

/// The typed columns the store keeps of an export row (all but its id,
/// business, instant and reason, which are kept beside them or only in
/// the line).
fn facts_of(row: Row) -> ChargeFacts {
    ChargeFacts {
        kind: row.kind.as_str().to_string(),
        messaging_account: row.messaging_account,
        user: row.user,
        local_date: row.local_date.to_string(),
        pricing_model: row.pricing_model,
        category: row.category,
        pricing_type: row.pricing_type,
        direction: row.direction,
        billable: row.billable,
        market: row.market,
        currency: row.currency,
        amount: row.amount.to_string(),
        quantity: i64::try_from(row.quantity).unwrap_or(i64::MAX),
        tier: row.tier,
        ruleset: row.ruleset,
        rule: row.rule,
        template: row.template,
    }
}

/// Export rows of the kept charges `keep` keeps, and a warning
/// (`unreadable_kept_charge`) for each that does not read: written by this
/// server, so a bug or a hand-edited database, said, never skipped
/// silently.
pub fn rows_of(
    kept: Vec<KeptFacts>,
    keep: impl Fn(&KeptFacts) -> bool,
) -> (Vec<Row>, Vec<(String, String, Option<u64>)>) {
    let mut rows = Vec::with_capacity(kept.len());
    let mut unreadable = Vec::new();
    for kept in kept.into_iter().filter(|kept| keep(kept)) {
        match row_of(kept) {
            Ok(row) => rows.push(row),
            Err(message) => unreadable.push(("unreadable_kept_charge".into(), message, None)),
        }
    }
    (rows, unreadable)
}

/// An export row from a kept charge's typed columns, with an empty
/// `reason` (kept only in the line); `Err` names what does not read (a
/// row kept before the `V9` layout, or a hand-edited database).
pub fn row_of(kept: KeptFacts) -> Result<Row, String> {
    let facts = kept.facts;
    let bad = |what: &str, value: &str| {
        format!("{}: kept {what} {value:?} does not read", kept.message_id)
    };
    let kind = match facts.kind.as_str() {
        "message" => Kind::Message,
        "call" => Kind::Call,
        "agent_usage" => Kind::AgentUsage,
        other => return Err(bad("kind", other)),
    };
    Ok(Row {
        kind,
        at: Timestamp::from_microsecond(kept.delivered_at_us)
            .map_err(|_| bad("instant", &kept.delivered_at_us.to_string()))?,
        local_date: facts
            .local_date
            .parse()
            .map_err(|_| bad("local date", &facts.local_date))?,
        amount: Decimal::from_str(&facts.amount).map_err(|_| bad("amount", &facts.amount))?,
        quantity: u64::try_from(facts.quantity)
            .map_err(|_| bad("quantity", &facts.quantity.to_string()))?,
        id: kept.message_id,
        business: kept.business,
        messaging_account: facts.messaging_account,
        user: facts.user,
        pricing_model: facts.pricing_model,
        category: facts.category,
        pricing_type: facts.pricing_type,
        direction: facts.direction,
        billable: facts.billable,
        market: facts.market,
        currency: facts.currency,
        tier: facts.tier,
        ruleset: facts.ruleset,
        rule: facts.rule,
        reason: String::new(),
        template: facts.template,
    })
}

/// The warnings kept for a (portfolio, month): unreadable stored events,
/// how many of its charges rest on an inferred outbound, and what the
/// engine found about events in or at the edge of the month (`about`: a
/// stored event's business and instant).
fn warning_rows<'w>(
    unreadable: &[(i64, String)],
    inferred: usize,
    errors: &[wameter_core::charge::PricingError],
    found: impl Iterator<Item = &'w wameter_core::charge::Warning>,
    about: impl Fn(u64) -> Option<(Option<String>, Timestamp)>,
    month: Month,
) -> Vec<WarningRow> {
    let (month_start, month_end) = (month.start_utc() - DAY, month.next().start_utc() + DAY);
    let mut warnings: Vec<WarningRow> = unreadable
        .iter()
        .map(|(id, message)| WarningRow {
            business: None,
            event_id: Some(*id),
            code: "unreadable_stored_event".into(),
            message: message.clone(),
            count: 1,
        })
        .collect();
    if inferred > 0 {
        warnings.push(WarningRow {
            business: None,
            event_id: None,
            code: "outbound_inferred".into(),
            message: String::new(),
            count: inferred as i64,
        });
    }
    // A message the engine could not price (no rate card for its date…)
    // has no charge; `replay` fails on it, the server says so with every
    // answer about its month rather than leave a silent gap.
    let unpriced = errors.iter().map(|error| {
        (
            "unpriced_message",
            format!("{}: {}", error.message_id, error.message),
            error.origin,
        )
    });
    let warned = found.map(|warning| {
        (
            warning.code,
            warning.message.clone(),
            warning.origin.unwrap_or_default(),
        )
    });
    for (code, message, origin) in unpriced.chain(warned) {
        let id = id_of(origin);
        let Some((business, at)) = about(id) else {
            continue;
        };
        if month_start <= at && at < month_end {
            warnings.push(WarningRow {
                business,
                event_id: Some(id as i64),
                code: code.into(),
                message,
                count: 1,
            });
        }
    }
    warnings
}

/// What a warning about a stored event needs of it. One per stored event
/// of the month, so kept small: the instant in microseconds, the business
/// shared with every other note naming it.
struct EventNote {
    at_us: i64,
    /// The business it names, if any.
    business: Option<Arc<str>>,
    /// A status's wamid: its business is its message's.
    message: Option<Box<str>>,
}

/// One (portfolio, month)'s engine state between settle rounds: a round
/// then reads and prices only the events stored since the last one
/// (issue 20), instead of re-pricing the month from all its events.
pub struct MonthState {
    meter: MeterState,
    /// Stored events that did not read, by id, with why. (Those that did
    /// are the keys of `notes`: together, every stored event taken.)
    unreadable: Vec<(i64, String)>,
    unreadable_ids: HashSet<i64>,
    implausible: Vec<wameter_core::charge::Warning>,
    /// Each stored event's instant, its business if it names one, and its
    /// wamid (a status's business is its message's), by stored id.
    notes: HashMap<u64, EventNote>,
    /// The business numbers the notes name, each once.
    businesses: HashSet<Arc<str>>,
    /// wamid → business, from outbound events.
    senders: HashMap<Box<str>, Arc<str>>,
    /// The warnings the store keeps for the month, as last written.
    warnings: Vec<WarningRow>,
    /// The month's calls and agent usage the store keeps, as last written:
    /// (business, id) → line. They are kept with the charges (a budget
    /// sums them all), one row each.
    calls: HashMap<(String, String), String>,
    /// Every event of the month's scope with an id up to this was given
    /// (a committed id the store vouched for before a round's read).
    read_through: i64,
    /// The month's charges whose outbound event is inferred, by (business,
    /// wamid), kept up from each round's changes (counting them visited
    /// every charge of the month each round), and the scope counted.
    inferred: HashSet<(Arc<str>, Box<str>)>,
    inferred_scope: Option<(BTreeSet<String>, Month)>,
}

impl MonthState {
    /// An empty state for `engine`'s pricing.
    pub fn new(engine: &Engine<'_>) -> MonthState {
        MonthState {
            meter: MeterState::new(engine),
            unreadable: Vec::new(),
            unreadable_ids: HashSet::new(),
            implausible: Vec::new(),
            notes: HashMap::new(),
            businesses: HashSet::new(),
            senders: HashMap::new(),
            warnings: Vec::new(),
            calls: HashMap::new(),
            read_through: 0,
            inferred: HashSet::new(),
            inferred_scope: None,
        }
    }

    /// Stored events it holds (its memory grows with them; measured in
    /// docs/PERFORMANCE.md).
    pub fn events(&self) -> usize {
        self.notes.len() + self.unreadable.len()
    }

    /// See [`MonthState::read_up_to`].
    pub fn read_through(&self) -> i64 {
        self.read_through
    }

    /// Records that a round read every event of the scope up to `id`, all
    /// committed before it read: the next round reads from past it.
    pub fn read_up_to(&mut self, id: i64) {
        self.read_through = self.read_through.max(id);
    }

    /// `business`, shared with the notes already naming it.
    fn intern(&mut self, business: &str) -> Arc<str> {
        if let Some(known) = self.businesses.get(business) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(business);
        self.businesses.insert(new.clone());
        new
    }

    /// Takes the stored events not taken before and says what the store
    /// must keep for the month: every charge and warning when `whole`
    /// (a first round, whose kept rows may be anyone's), else the charges
    /// that changed and those to remove, with all the warnings.
    pub fn settle(
        &mut self,
        engine: &Engine<'_>,
        rows: Vec<StoredEvent>,
        businesses: &BTreeSet<String>,
        month: Month,
        now: Timestamp,
        whole: bool,
    ) -> Settled {
        let mut events = Vec::new();
        // Rows taken before, or twice in this read, are not given again.
        let mut taken: HashSet<i64> = HashSet::with_capacity(rows.len());
        for row in rows {
            if self.notes.contains_key(&(row.id as u64))
                || self.unreadable_ids.contains(&row.id)
                || !taken.insert(row.id)
            {
                continue;
            }
            match event_of(wameter_log::parse_line(&row.line, origin_of(row.id))) {
                Ok(event) => events.push(event),
                Err(why) => {
                    self.unreadable_ids.insert(row.id);
                    self.unreadable.push((row.id, why));
                }
            }
        }
        self.implausible
            .extend(wameter_core::event::implausible_instants(&events, now));
        for event in &events {
            let (business, message) = match &event.kind {
                EventKind::Status { id, .. } => (event.kind.business(), Some(id.clone())),
                EventKind::Outbound { business, .. } | EventKind::Inbound { business, .. } => {
                    (Some(&**business), None)
                }
                EventKind::Call(call) => (Some(&*call.business), None),
                EventKind::AgentUsage(usage) => (Some(&*usage.business), None),
            };
            let business = business.map(|business| self.intern(business));
            if let (EventKind::Outbound { id, .. }, Some(business)) = (&event.kind, &business) {
                self.senders.insert(id.clone(), business.clone());
            }
            self.notes.insert(
                id_of(event.origin),
                EventNote {
                    at_us: event.at.as_microsecond(),
                    business,
                    message,
                },
            );
        }
        let changes = self.meter.apply(engine, events);

        let in_scope = |charge: &Charge| {
            in_month(&charge.business, charge.trail.local_date, businesses, month)
        };
        let same_scope = self
            .inferred_scope
            .as_ref()
            .is_some_and(|(counted, of)| counted == businesses && *of == month);
        if whole || !same_scope {
            self.inferred = self
                .meter
                .inferred_charges()
                .filter(|charge| in_scope(charge))
                .map(|charge| (charge.business.clone(), charge.message_id.clone()))
                .collect();
            self.inferred_scope = Some((businesses.clone(), month));
        } else {
            for (business, id) in &changes.messages {
                match self.meter.inferred_charge(business, id) {
                    Some(charge) if in_scope(charge) => {
                        self.inferred.insert((business.clone(), id.clone()));
                    }
                    _ => {
                        self.inferred.remove(&(business.clone(), id.clone()));
                    }
                }
            }
        }
        let inferred = self.inferred.len();

        let mut settled = Settled::default();
        // The month's charges only when they are all written.
        let (charges, findings) = if whole {
            self.meter.charges_and_findings()
        } else {
            (Vec::new(), self.meter.findings())
        };
        if whole {
            settled.charges = charges
                .iter()
                .filter(|charge| in_scope(charge))
                .map(|charge| charge_row(charge))
                .collect();
        } else {
            for (business, id) in changes.messages {
                match self.meter.charge(&business, &id) {
                    Some(Ok(charge)) if in_scope(charge) => {
                        settled.charges.push(charge_row(charge))
                    }
                    _ => settled.removed.push((business.to_string(), id.to_string())),
                }
            }
        }
        // Calls are few: all of the month's are compared with those kept.
        let calls: HashMap<(String, String), ChargeRow> =
            call_rows(self.meter.calls(), businesses, month)
                .chain(agent_rows(self.meter.agent(), businesses, month))
                .map(|row| ((row.business.clone(), row.message_id.clone()), row))
                .collect();
        if !whole {
            settled.removed.extend(
                self.calls
                    .keys()
                    .filter(|key| !calls.contains_key(*key))
                    .cloned(),
            );
        }
        let mut kept = HashMap::with_capacity(calls.len());
        for (key, row) in calls {
            if whole || self.calls.get(&key) != Some(&row.line) {
                settled.charges.push(row.clone());
            }
            kept.insert(key, row.line);
        }
        self.calls = kept;
        let about = |id: u64| {
            let note = self.notes.get(&id)?;
            let business = note
                .business
                .as_deref()
                .or_else(|| self.senders.get(note.message.as_deref()?).map(|b| &**b));
            let at = Timestamp::from_microsecond(note.at_us).ok()?;
            Some((business.map(str::to_string), at))
        };
        let warnings = warning_rows(
            &self.unreadable,
            inferred,
            &findings.errors,
            findings.warnings.iter().chain(&self.implausible),
            about,
            month,
        );
        if whole {
            settled.warnings = warnings.clone();
        } else {
            // Only what changed: a month can have thousands of notes.
            let mut kept: HashMap<&WarningRow, usize> = HashMap::new();
            for warning in &self.warnings {
                *kept.entry(warning).or_default() += 1;
            }
            for warning in &warnings {
                match kept.get_mut(warning) {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => settled.warnings.push(warning.clone()),
                }
            }
            for (warning, count) in kept {
                settled
                    .warnings_removed
                    .extend(std::iter::repeat_n(warning.clone(), count));
            }
        }
        self.warnings = warnings;
        settled
    }
}

/// Each loaded event's business (a status's is its message's) and instant,
/// by stored id.
fn events_about(events: &[Event]) -> HashMap<u64, (Option<String>, Timestamp)> {
    let business_of_message: HashMap<&str, &str> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Outbound { business, id, .. } => Some((&**id, &**business)),
            _ => None,
        })
        .collect();
    events
        .iter()
        .map(|event| {
            let business = match &event.kind {
                EventKind::Status { id, .. } => event
                    .kind
                    .business()
                    .or_else(|| business_of_message.get(&**id).copied()),
                kind => kind.business(),
            };
            (
                id_of(event.origin),
                (business.map(str::to_string), event.at),
            )
        })
        .collect()
}

/// A kept charge read back.
pub struct KeptCharge {
    /// The charge as the document prints it.
    pub line: String,
    /// Its fields.
    pub fields: ChargeLine,
    /// `fields.amount`, read once.
    pub amount: Decimal,
}

/// Kept charges of a slice, read back: in the replay's order, with their
/// totals and warnings.
pub struct Answer {
    /// The charges.
    pub charges: Vec<KeptCharge>,
    /// Calls, as the document prints them ([`CallJson`]), in start order.
    pub calls: Vec<String>,
    /// Agent usage, as the document prints it ([`AgentJson`]), in time order.
    pub agent: Vec<String>,
    /// Per currency.
    pub totals: Vec<Totals>,
    /// `(code, message, stored event id)`, as the document prints them.
    pub warnings: Vec<(String, String, Option<u64>)>,
}

/// Orders, totals and de-duplicates what the store keeps for a slice.
/// Warnings are kept per month, so a slice sees those of the months it
/// touches; `outbound_inferred` is summed across them.
///
/// `sees` keeps only what a scoped token sees, by (business, Messaging
/// account named): a number shared by several accounts shows each token
/// its own accounts' money only.
pub fn answer(
    rows: Vec<KeptLine>,
    warning_rows: Vec<WarningRow>,
    sees: Option<&(dyn Fn(&str, Option<&str>) -> bool + Sync)>,
) -> Answer {
    let sees =
        |business: &str, account: Option<&str>| sees.is_none_or(|sees| sees(business, account));
    let mut unreadable = Vec::new();
    let (agent_rows, rows): (Vec<KeptLine>, Vec<KeptLine>) =
        rows.into_iter().partition(|row| is_agent_line(&row.line));
    let mut agent: Vec<(Timestamp, String, String, Currency, Decimal, String)> =
        Vec::with_capacity(agent_rows.len());
    for row in agent_rows {
        let read = || -> Option<(Timestamp, AgentLine, Currency, Decimal)> {
            let line: AgentLine = serde_json::from_str(&row.line).ok()?;
            let (currency, amount) = (
                Currency::parse(&line.currency)?,
                Decimal::from_str(&line.amount).ok()?,
            );
            Some((line.at.parse().ok()?, line, currency, amount))
        };
        match read() {
            Some((_, line, ..)) if !sees(&line.business, line.messaging_account.as_deref()) => {}
            Some((at, line, currency, amount)) => {
                agent.push((at, line.business, line.usage_id, currency, amount, row.line))
            }
            None => unreadable.push((
                "unreadable_kept_charge".to_string(),
                format!(
                    "{}: kept agent usage does not read: {}",
                    row.message_id, row.line
                ),
                None,
            )),
        }
    }
    agent.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    let (call_rows, rows): (Vec<KeptLine>, Vec<KeptLine>) =
        rows.into_iter().partition(|row| is_call_line(&row.line));
    let mut calls: Vec<(Timestamp, String, String, Currency, Decimal, bool, String)> =
        Vec::with_capacity(call_rows.len());
    for row in call_rows {
        let read = || -> Option<(Timestamp, CallLine, Currency, Decimal)> {
            let line: CallLine = serde_json::from_str(&row.line).ok()?;
            let (currency, amount) = (
                Currency::parse(&line.currency)?,
                Decimal::from_str(&line.amount).ok()?,
            );
            Some((line.started_at.parse().ok()?, line, currency, amount))
        };
        match read() {
            Some((_, line, ..)) if !sees(&line.business, line.messaging_account.as_deref()) => {}
            Some((at, line, currency, amount)) => calls.push((
                at,
                line.business,
                line.call_id,
                currency,
                amount,
                line.billable,
                row.line,
            )),
            None => unreadable.push((
                "unreadable_kept_charge".to_string(),
                format!("{}: kept call does not read: {}", row.message_id, row.line),
                None,
            )),
        }
    }
    // The engine's order: start, then business and call id.
    calls.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    let mut charges: Vec<(Timestamp, UserId, Currency, KeptCharge)> = rows
        .into_iter()
        .filter_map(|row| {
            let read = || -> Option<(Timestamp, UserId, Currency, ChargeLine, Decimal)> {
                let line: ChargeLine = serde_json::from_str(&row.line).ok()?;
                let (at, user) = (
                    line.delivered_at.parse().ok()?,
                    UserId::parse(&line.user).ok()?,
                );
                let (currency, amount) = (
                    Currency::parse(&line.currency)?,
                    Decimal::from_str(&line.amount).ok()?,
                );
                Some((at, user, currency, line, amount))
            };
            match read() {
                Some((.., fields, _))
                    if !sees(&fields.business, fields.messaging_account.as_deref()) =>
                {
                    None
                }
                Some((at, user, currency, fields, amount)) => Some((
                    at,
                    user,
                    currency,
                    KeptCharge {
                        line: row.line,
                        fields,
                        amount,
                    },
                )),
                None => {
                    // Written by this server, so a bug or a hand-edited
                    // database: said, never skipped silently.
                    unreadable.push((
                        "unreadable_kept_charge".to_string(),
                        format!(
                            "{}: kept charge does not read: {}",
                            row.message_id, row.line
                        ),
                        None,
                    ));
                    None
                }
            }
        })
        .collect();
    // The engine's order: delivery, then business, user, message.
    charges.sort_by(|a, b| {
        (a.0, &a.3.fields.business, &a.1, &a.3.fields.message_id).cmp(&(
            b.0,
            &b.3.fields.business,
            &b.1,
            &b.3.fields.message_id,
        ))
    });
    let mut totals: BTreeMap<Currency, Totals> = BTreeMap::new();
    for (.., currency, charge) in &charges {
        let entry = totals.entry(*currency).or_insert(Totals {
            currency: *currency,
            amount: Decimal::ZERO,
            billable_messages: 0,
            conversations: 0,
            billable_calls: 0,
        });
        entry.amount += charge.amount;
        entry.billable_messages += u64::from(charge.fields.billable);
        entry.conversations += u64::from(charge.fields.opens_conversation);
    }
    for (_, _, _, currency, amount, _) in &agent {
        let entry = totals.entry(*currency).or_insert(Totals {
            currency: *currency,
            amount: Decimal::ZERO,
            billable_messages: 0,
            conversations: 0,
            billable_calls: 0,
        });
        entry.amount += *amount;
    }
    for (_, _, _, currency, amount, billable, _) in &calls {
        let entry = totals.entry(*currency).or_insert(Totals {
            currency: *currency,
            amount: Decimal::ZERO,
            billable_messages: 0,
            conversations: 0,
            billable_calls: 0,
        });
        entry.amount += *amount;
        entry.billable_calls += u64::from(*billable);
    }
    let warnings = kept_warnings(unreadable, warning_rows);
    let calls = calls.into_iter().map(|(.., line)| line).collect();
    let agent = agent.into_iter().map(|(.., line)| line).collect();
    Answer {
        charges: charges.into_iter().map(|(.., charge)| charge).collect(),
        calls,
        agent,
        totals: totals.into_values().collect(),
        warnings,
    }
}

/// The warnings of a slice as the document prints them, from what the
/// store keeps per month (`unreadable`: kept rows that did not read, first):
/// each once, in event order, `outbound_inferred` summed across months.
pub fn kept_warnings(
    unreadable: Vec<(String, String, Option<u64>)>,
    warning_rows: Vec<WarningRow>,
) -> Vec<(String, String, Option<u64>)> {
    let mut inferred = 0;
    let mut seen = BTreeSet::new();
    let mut warnings = unreadable;
    for row in warning_rows {
        if row.code == "outbound_inferred" {
            inferred += row.count as usize;
        } else if seen.insert((row.event_id, row.code.clone(), row.message.clone())) {
            warnings.push((row.code, row.message, row.event_id.map(|id| id as u64)));
        }
    }
    warnings.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    if inferred > 0 {
        warnings.push((
            "outbound_inferred".into(),
            wameter_log::replay_json::outbound_inferred_message(inferred),
            None,
        ));
    }
    warnings
}

/// `(code, message, stored event id)` warnings in the document's shape.
pub fn warnings_json(warnings: &[(String, String, Option<u64>)]) -> Vec<WarningJson<'_>> {
    warnings
        .iter()
        .map(|(code, message, event)| WarningJson {
            code,
            message: message.clone(),
            file: None,
            line: None,
            event: *event,
        })
        .collect()
}

impl Answer {
    /// The warnings in the document's shape.
    pub fn warnings_json(&self) -> Vec<WarningJson<'_>> {
        warnings_json(&self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<StoredEvent> {
        [
            r#"{"type":"inbound","at":"2026-11-02T10:00:00Z","business":"B1","user":"+5511999990000","id":"wamid.in"}"#,
            r#"{"type":"outbound","at":"2026-11-02T10:01:00Z","business":"B1","user":"+5511999990000","id":"wamid.out","template":{"name":"t","category":"utility"}}"#,
            r#"{"type":"status","at":"2026-11-02T10:01:02Z","id":"wamid.out","status":"delivered"}"#,
            // A status whose pricing implies an outbound that was never stored.
            r#"{"type":"status","at":"2026-11-02T10:02:02Z","id":"wamid.other","status":"delivered","business":"B1","user":"+5511999990000","pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}}"#,
            "not json",
        ]
        .iter()
        .enumerate()
        .map(|(n, line)| StoredEvent { id: n as i64 + 1, line: line.to_string() })
        .collect()
    }

    #[test]
    fn read_back_loads_what_a_fresh_read_does_every_time() {
        let rows = rows();
        let fresh = load(&rows);
        assert_eq!(
            fresh.unreadable.len(),
            1,
            "the bad line is named, not dropped"
        );
        assert!(
            fresh.inferred.iter().any(|(_, id)| id == "wamid.other"),
            "{:?}",
            fresh.inferred
        );
        let read_back = ReadBack::default();
        for _ in 0..3 {
            let again = read_back.load(&rows);
            assert_eq!(again.events, fresh.events);
            assert_eq!(again.inferred, fresh.inferred);
            assert_eq!(again.unreadable, fresh.unreadable);
        }
        // A pair that grew: old rows from the memo, the new one parsed.
        let mut grown = rows.clone();
        grown.push(StoredEvent {
            id: 9,
            line:
                r#"{"type":"status","at":"2026-11-02T10:05:00Z","id":"wamid.out","status":"read"}"#
                    .into(),
        });
        assert_eq!(read_back.load(&grown).events, load(&grown).events);
    }

    /// What a store keeps of a month after applying each round's changes.
    #[derive(Default)]
    struct Kept {
        charges: BTreeMap<(String, String), String>,
        warnings: Vec<WarningRow>,
    }

    impl Kept {
        fn take(&mut self, settled: Settled) {
            for key in settled.removed {
                self.charges.remove(&key);
            }
            for row in settled.charges {
                self.charges
                    .insert((row.business, row.message_id), row.line);
            }
            for gone in settled.warnings_removed {
                let at = self.warnings.iter().position(|kept| *kept == gone);
                self.warnings
                    .remove(at.expect("only kept warnings are removed"));
            }
            self.warnings.extend(settled.warnings);
            self.warnings
                .sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        }
    }

    /// Rounds of one event each keep what one round of them all keeps:
    /// the counts and warnings kept up between rounds (the inferred
    /// outbounds counted, failures after delivery, statuses of unknown
    /// messages) are those of the whole month.
    #[test]
    fn rounds_of_one_event_keep_what_one_round_keeps() {
        let lines = [
            r#"{"type":"inbound","at":"2026-11-02T10:00:00Z","business":"B1","user":"+5511999990000","id":"wamid.in"}"#,
            // Inferred from pricing, then its real outbound arrives.
            r#"{"type":"status","at":"2026-11-02T10:02:02Z","id":"wamid.a","status":"delivered","business":"B1","user":"+5511999990000","pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}}"#,
            r#"{"type":"status","at":"2026-11-03T10:02:02Z","id":"wamid.b","status":"delivered","business":"B1","user":"+5511999990001","pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}}"#,
            r#"{"type":"outbound","at":"2026-11-02T10:02:00Z","business":"B1","user":"+5511999990000","id":"wamid.a","template":{"name":"promo","category":"marketing"}}"#,
            // Delivered, then failed.
            r#"{"type":"outbound","at":"2026-11-04T10:00:00Z","business":"B1","user":"+5511999990002","id":"wamid.c","template":{"name":"t","category":"utility"}}"#,
            r#"{"type":"status","at":"2026-11-04T10:00:02Z","id":"wamid.c","status":"delivered"}"#,
            r#"{"type":"status","at":"2026-11-04T10:00:09Z","id":"wamid.c","status":"failed","error":131026}"#,
            // Statuses of a message never sent, named and unnamed; one sent later.
            r#"{"type":"status","at":"2026-11-05T10:00:02Z","id":"wamid.x","status":"delivered"}"#,
            r#"{"type":"status","at":"2026-11-05T10:00:02Z","business":"B1","id":"wamid.y","status":"delivered"}"#,
            r#"{"type":"status","at":"2026-11-06T10:00:02Z","id":"wamid.z","status":"delivered"}"#,
            r#"{"type":"outbound","at":"2026-11-06T10:00:00Z","business":"B1","user":"+5511999990003","id":"wamid.z","template":{"name":"t","category":"authentication"}}"#,
            "not json",
        ];
        let rows: Vec<StoredEvent> = lines
            .iter()
            .enumerate()
            .map(|(n, line)| StoredEvent {
                id: n as i64 + 1,
                line: line.to_string(),
            })
            .collect();
        let pricing = wameter_core::pricing::Pricing {
            accounts: Default::default(),
            rates: wameter_core::ratecard::RateBook::builtin(),
            tiers: wameter_core::ratecard::TierBook::builtin(),
            markets: wameter_core::market::MarketTable::builtin(),
            call_rates: wameter_core::ratecard::calling::CallRateBook::builtin(),
        };
        let engine = pricing.engine();
        let businesses: BTreeSet<String> = ["B1".to_string()].into();
        let month = Month::parse("2026-11").unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();

        let mut whole = Kept::default();
        let mut state = MonthState::new(&engine);
        whole.take(state.settle(&engine, rows.clone(), &businesses, month, now, true));
        let codes: BTreeSet<&str> = whole.warnings.iter().map(|w| &*w.code).collect();
        for code in [
            "outbound_inferred",
            "failed_after_delivery",
            "unknown_status_id",
        ] {
            assert!(codes.contains(code), "{code} missing from {codes:?}");
        }

        let mut rounds = Kept::default();
        let mut state = MonthState::new(&engine);
        for (n, row) in rows.into_iter().enumerate() {
            rounds.take(state.settle(&engine, vec![row], &businesses, month, now, n == 0));
        }
        assert_eq!(rounds.charges, whole.charges);
        assert_eq!(rounds.warnings, whole.warnings);
    }
}

/// Locks `mutex`, taking it over from a thread that panicked while holding
/// it (what it guards is a cache: at worst it is computed again).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
