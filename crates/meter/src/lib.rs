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
pub mod sums;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::records::{ChargeFacts, ChargeRow, KeptFacts, Settled, StoredEvent, WarningRow};
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use wameter_core::charge::Charge;
use wameter_core::engine::{ContactWindows, Engine, Prepared, prepare_shared};
use wameter_core::event::{
    DeliveryStatus, Event, EventKind, Origin, Template, UserId, infer_outbounds,
    outbounds_from_pricing,
};
use wameter_core::incremental::MeterState;
use wameter_core::money::Currency;
use wameter_core::reconcile::Verdicts;
use wameter_core::report::Totals;
use wameter_core::rules::agent::AgentCharge;
use wameter_core::rules::calling::CallCharge;
use wameter_core::settlement::Month;
use wameter_core::window::{DAY, Window};
use wameter_export::{Kind, Row};
use wameter_log::Parsed;
use wameter_log::replay_json::{AgentJson, CallJson, ChargeJson, WarningJson};

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
/// pair (reading the lines back was 40 % of the guard's engine step,
/// `benches/guard_steps.rs`), and shares it rather than copying it:
/// copying a pair's events out of this memo was, in turn, the largest of
/// the guard's own steps under load.
#[derive(Default)]
pub struct ReadBack {
    /// foldhash: row ids are the store's, and hashing them with SipHash
    /// was a fifth of the guard's read-back step (docs/PERFORMANCE.md).
    events: Mutex<HashMap<i64, Arc<Event>, foldhash::fast::RandomState>>,
}

impl ReadBack {
    /// The events of `rows` (those that read as events; [`load`] says why
    /// the others do not), parsing only the rows not read back before,
    /// then the outbounds Meta's pricing stands in for
    /// ([`outbounds_from_pricing`]).
    pub fn load(&self, rows: &[StoredEvent]) -> Vec<Arc<Event>> {
        let mut events = Vec::with_capacity(rows.len());
        // A full memo is emptied by this send, but freed after the lock is
        // let go: freeing its 262,144 events took tens of milliseconds,
        // which every other send would have waited out.
        let mut full = None;
        {
            let mut kept = lock(&self.events);
            if kept.len() + rows.len() > READ_BACK_MAX {
                full = Some(std::mem::take(&mut *kept));
            }
            for row in rows {
                if let Some(event) = kept.get(&row.id) {
                    events.push(event.clone());
                } else if let Ok(Parsed::Event(event)) =
                    wameter_log::parse_line(&row.line, origin_of(row.id))
                {
                    let event = Arc::new(event);
                    kept.insert(row.id, event.clone());
                    events.push(event);
                }
            }
        }
        drop(full);
        let inferred = outbounds_from_pricing(&events);
        events.extend(inferred.into_iter().map(Arc::new));
        events
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

/// The windows of one pair at `at`, from its stored events (owned or
/// shared: the function only reads them).
pub fn windows<E: Borrow<Event> + Sync>(
    engine: &Engine<'_>,
    events: &[E],
    business: &str,
    user: &UserId,
    at: Timestamp,
) -> ContactWindows {
    pair_windows(engine, &prepare_shared(events), business, user, at)
}

/// The windows of (`business`, `user`) at `at` among `prepared`'s
/// timelines: none when the pair has none.
fn pair_windows(
    engine: &Engine<'_>,
    prepared: &Prepared,
    business: &str,
    user: &UserId,
    at: Timestamp,
) -> ContactWindows {
    prepared
        .contacts
        .iter()
        .find(|contact| &*contact.business == business && &contact.user == user)
        .map(|contact| engine.windows_at(contact, at))
        .unwrap_or_default()
}

/// `engine` as [`assess`] wants it: writing no reason and no explanation.
/// An assessment answers a window, and a price, category, rule and tier
/// (the guard's headers), none of which depends on them; writing them for
/// each of the pair's charges was formatting on every guarded send.
pub fn assessing<'a>(engine: &Engine<'a>) -> Engine<'a> {
    Engine {
        reasons: false,
        explain: false,
        ..*engine
    }
}

/// The wamid of the send an [`Assessment`] supposes.
const PREDICTION: &str = "wameter.guard.prediction";

/// The guard's two questions about one more send, from the pair's events
/// prepared once ([`assess`]): the customer service window open when it is
/// sent, and the charge it would get ([`Assessment::predict`]). Asked
/// apart, each prepared the pair's events (grouped them into its timeline)
/// itself.
pub struct Assessment {
    /// The pair's events and the supposed send, with its delivery.
    prepared: Prepared,
    customer_service_window: Option<Window>,
}

/// Prepares `events` (one pair's) with a send from `business` to `user` at
/// `at` and its delivery then, after every stored event of that instant.
pub fn assess(
    engine: &Engine<'_>,
    mut events: Vec<Arc<Event>>,
    business: &str,
    user: &UserId,
    at: Timestamp,
    template: Option<Template>,
    messaging_account: Option<Box<str>>,
) -> Assessment {
    events.extend(supposed_send(
        business,
        user,
        at,
        template,
        messaging_account,
    ));
    let prepared = prepare_shared(&events);
    // The window as [`windows`] at `at` + 1 ns gives it (a user's message
    // stored at this very instant precedes the send). The supposed send is
    // in the timeline by then, but only the user's messages and calls open
    // or refresh a customer service window (`ContactState::inbound`), so
    // the window is the stored events' (a test holds the two equal).
    // (At the last representable instant nothing can follow: `at` itself.)
    let just_after = at
        .checked_add(jiff::SignedDuration::from_nanos(1))
        .unwrap_or(at);
    let customer_service_window =
        pair_windows(engine, &prepared, business, user, just_after).customer_service_window;
    Assessment {
        prepared,
        customer_service_window,
    }
}

/// The send an [`Assessment`] supposes, and its delivery at once: after
/// every stored event of that instant.
fn supposed_send(
    business: &str,
    user: &UserId,
    at: Timestamp,
    template: Option<Template>,
    messaging_account: Option<Box<str>>,
) -> [Arc<Event>; 2] {
    let origin = Origin {
        source: u32::MAX,
        line: 0,
    };
    [
        Arc::new(Event {
            at,
            origin,
            kind: EventKind::Outbound {
                business: business.into(),
                user: user.clone(),
                id: PREDICTION.into(),
                template: template.map(Arc::new),
                messaging_account,
            },
        }),
        Arc::new(Event {
            at,
            origin: Origin { line: 1, ..origin },
            kind: EventKind::Status {
                id: PREDICTION.into(),
                status: DeliveryStatus::Delivered,
                error: None,
                detail: None,
            },
        }),
    ]
}

impl Assessment {
    /// The customer service window open when the send is made, if any.
    pub fn customer_service_window(&self) -> Option<Window> {
        self.customer_service_window
    }

    /// The charge the send would get if it were delivered at once: the
    /// pair's events, then the send and its delivery, replayed. Volume
    /// tiers count only what the pair's events show, so a tiered rate is
    /// the first band's (the guard says so in its estimate). `None` when
    /// the engine could not price it (no rate card for the date, for
    /// instance).
    pub fn predict(self, engine: &Engine<'_>) -> Option<Charge> {
        engine
            .replay_prepared(self.prepared)
            .charges
            .into_iter()
            .find(|charge| &*charge.message_id == PREDICTION)
    }
}

/// The engine that prices the kept charges: they keep no explanation (a
/// row has no column for one; `wameter explain` replays), which was an
/// eighth of a month's state (docs/PERFORMANCE.md).
fn kept_charges_engine<'a>(engine: &Engine<'a>) -> Engine<'a> {
    Engine {
        explain: false,
        ..*engine
    }
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
    let report = kept_charges_engine(engine).replay(loaded.events);
    let mut charges: Vec<ChargeRow> = report
        .charges
        .iter()
        .filter(|charge| in_month(&charge.business, charge.local_date, businesses, month))
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
/// ([`CallJson`]), its kind `call`.
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
            facts: facts_of(Row::from_call(call), false),
        })
}

/// The (portfolio, month)'s Meta Business Agent usage as the store keeps
/// it, as [`call_rows`] keeps calls; its kind `agent_usage`.
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
            facts: facts_of(Row::from_agent(usage), false),
        })
}

/// A charge as the store keeps it.
fn charge_row(charge: &Charge) -> ChargeRow {
    ChargeRow {
        business: charge.business.to_string(),
        delivered_at_us: charge.delivered_at.as_microsecond(),
        message_id: charge.message_id.to_string(),
        line: wameter_log::replay_json::charge_line(&ChargeJson::from(charge)).unwrap_or_default(),
        facts: facts_of(Row::from_charge(charge), charge.opens_conversation),
    }
}

/// Nanoseconds past `at`'s [`Timestamp::as_microsecond`]: with it, the
/// microsecond gives the instant back whole ([`kept_instant`]).
fn nanos_past_microsecond(at: Timestamp) -> i32 {
    let past = at.as_nanosecond() - i128::from(at.as_microsecond()) * 1000;
    // Within (-1000, 1000) whichever way the microsecond is rounded.
    i32::try_from(past).unwrap_or(0)
}

/// The instant a kept row was priced at, from its microsecond and the
/// nanoseconds past it (`None`: out of range, a hand-edited database).
pub(crate) fn kept_instant(microsecond: i64, nanos: i32) -> Option<Timestamp> {
    let nanosecond = i128::from(microsecond) * 1000 + i128::from(nanos);
    Timestamp::from_nanosecond(nanosecond).ok()
}

/// The typed columns the store keeps of an export row (all but its id,
/// business and reason, which are kept beside them or only in the line).
fn facts_of(row: Row, opens_conversation: bool) -> ChargeFacts {
    ChargeFacts {
        opens_conversation,
        delivered_nanos: nanos_past_microsecond(row.at),
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
            Err(message) => unreadable.push(unreadable_kept_charge(message)),
        }
    }
    (rows, unreadable)
}

/// An export row from a kept charge's typed columns, with an empty
/// `reason` (kept only in the line); `Err` names what does not read (a
/// row kept before the `V9` layout, or a hand-edited database).
pub fn row_of(kept: KeptFacts) -> Result<Row, String> {
    let read = sums::Parsed::of(&sums::FactsRef::of(&kept))?;
    let facts = kept.facts;
    Ok(Row {
        kind: read.kind,
        at: read.at,
        local_date: read.local_date,
        amount: read.amount,
        quantity: read.quantity,
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
    inferred: HashSet<(Arc<str>, Arc<str>)>,
    inferred_scope: Option<(BTreeSet<String>, Month)>,
    /// Meta's verdicts on the month's messages, kept up from each round's
    /// events: with the charges, a reconciliation without a replay
    /// ([`MonthState::agreement`]).
    verdicts: Verdicts,
    /// Every business a round has read the events of.
    scope: BTreeSet<String>,
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
            verdicts: Verdicts::default(),
            scope: BTreeSet::new(),
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
        self.scope.extend(businesses.iter().cloned());
        for event in &events {
            self.verdicts.fold(event);
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
                self.senders.insert(Box::from(&**id), business.clone());
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
        let changes = self.meter.apply(&kept_charges_engine(engine), events);

        let in_scope =
            |charge: &Charge| in_month(&charge.business, charge.local_date, businesses, month);
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

impl MonthState {
    /// Where Meta's verdicts and the month's charges agree, from what the
    /// state keeps: the messages compared per (business, Messaging
    /// account, month), as [`wameter_core::reconcile::reconcile`] of the
    /// scope's events counts them when every one agrees and no send
    /// drifted. `None` when one differs or drifted, or when the state has
    /// not read every business of `businesses` (or has read others): the
    /// caller reconciles from the events then.
    pub fn agreement(
        &self,
        businesses: &BTreeSet<String>,
        notices: &[wameter_core::notice::Notice],
        wanted: impl Fn(&wameter_core::reconcile::ShareKey) -> bool,
    ) -> Option<BTreeMap<wameter_core::reconcile::ShareKey, u64>> {
        if &self.scope != businesses {
            return None;
        }
        let charges = self.meter.charges();
        wameter_core::reconcile::agreement(&charges, &self.verdicts, notices, wanted)
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

/// Kept charges of a slice, read back: in the replay's order, with their
/// totals and warnings.
pub struct Answer {
    /// The message charges, in delivery order (then business, user,
    /// message), as the engine orders them.
    pub charges: Vec<ChargeRow>,
    /// Calls, in start order (then business, call id).
    pub calls: Vec<ChargeRow>,
    /// Agent usage, in time order (then business, usage id).
    pub agent: Vec<ChargeRow>,
    /// Per currency.
    pub totals: Vec<Totals>,
    /// `(code, message, stored event id)`, as the document prints them.
    pub warnings: Vec<(String, String, Option<u64>)>,
}

/// Orders, totals and filters what the store keeps for a slice, from the
/// kept charges' typed columns: their lines are served as kept, never
/// parsed back. Warnings are kept per month, so a slice sees those of the
/// months it touches; `outbound_inferred` is summed across them.
///
/// `sees` keeps only what a scoped token sees, by (business, Messaging
/// account named): a number shared by several accounts shows each token
/// its own accounts' money only.
pub fn answer(
    rows: Vec<ChargeRow>,
    warning_rows: Vec<WarningRow>,
    sees: Option<&(dyn Fn(&str, Option<&str>) -> bool + Sync)>,
) -> Answer {
    let sees =
        |business: &str, account: Option<&str>| sees.is_none_or(|sees| sees(business, account));
    let mut unreadable = Vec::new();
    let mut totals: BTreeMap<Currency, Totals> = BTreeMap::new();
    let (mut charges, mut calls, mut agent) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        if !sees(&row.business, row.facts.messaging_account.as_deref()) {
            continue;
        }
        let money =
            Currency::parse(&row.facts.currency).zip(Decimal::from_str(&row.facts.amount).ok());
        let (Some((currency, amount)), Some(at), Some(kind)) = (
            money,
            kept_instant(row.delivered_at_us, row.facts.delivered_nanos),
            Kind::parse(&row.facts.kind),
        ) else {
            // Written by this server, so a bug or a hand-edited database:
            // said, never skipped silently.
            unreadable.push(unreadable_row(&row));
            continue;
        };
        let entry = totals
            .entry(currency)
            .or_insert_with(|| Totals::zero(currency));
        entry.amount += amount;
        let billable = u64::from(row.facts.billable);
        let kept = match kind {
            Kind::Message => {
                entry.billable_messages += billable;
                entry.conversations += u64::from(row.facts.opens_conversation);
                &mut charges
            }
            Kind::Call => {
                entry.billable_calls += billable;
                &mut calls
            }
            Kind::AgentUsage => &mut agent,
        };
        kept.push((at, row));
    }
    // The engine's orders: charges by delivery, then business, user (a
    // phone number before a business-scoped id, as `UserId` orders them)
    // and message; calls and agent usage by instant, business and id.
    fn user_key(user: &str) -> (bool, &str) {
        (!user.starts_with('+'), user.trim_start_matches('+'))
    }
    charges.sort_by(|(a, x), (b, y)| {
        (a, &x.business, user_key(&x.facts.user), &x.message_id).cmp(&(
            b,
            &y.business,
            user_key(&y.facts.user),
            &y.message_id,
        ))
    });
    let by_instant = |kept: &mut Vec<(Timestamp, ChargeRow)>| {
        kept.sort_by(|(a, x), (b, y)| {
            (a, &x.business, &x.message_id).cmp(&(b, &y.business, &y.message_id))
        })
    };
    by_instant(&mut calls);
    by_instant(&mut agent);
    let rows = |kept: Vec<(Timestamp, ChargeRow)>| kept.into_iter().map(|(_, row)| row).collect();
    Answer {
        charges: rows(charges),
        calls: rows(calls),
        agent: rows(agent),
        totals: totals.into_values().collect(),
        warnings: kept_warnings(unreadable, warning_rows),
    }
}

/// The warning for a kept charge that does not read (`message` says
/// which and why), as answers list it: `(code, message, stored event id)`.
pub fn unreadable_kept_charge(message: String) -> (String, String, Option<u64>) {
    ("unreadable_kept_charge".to_string(), message, None)
}

/// The warning for a kept row whose columns do not read.
fn unreadable_row(row: &ChargeRow) -> (String, String, Option<u64>) {
    unreadable_kept_charge(format!(
        "{}: kept charge does not read: {}",
        row.message_id, row.line
    ))
}

/// The export row of a kept charge, call or agent usage: its typed columns
/// and the reason, which only its line holds (`Err` names what does not
/// read).
pub fn export_row(kept: ChargeRow) -> Result<Row, String> {
    let reason = wameter_log::replay_json::reason_of(&kept.line)
        .map_err(|e| format!("{}: kept line does not read: {e}", kept.message_id))?;
    let mut row = row_of(KeptFacts {
        business: kept.business,
        delivered_at_us: kept.delivered_at_us,
        message_id: kept.message_id,
        facts: kept.facts,
    })?;
    row.reason = reason;
    Ok(row)
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

/// Locks `mutex`, taking it over from a thread that panicked while holding
/// it (what it guards is a cache: at worst it is computed again).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        .map(|(n, line)| StoredEvent { id: n as i64 + 1, line: (*line).into() })
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
            // The same events, stand-ins for missing outbounds included;
            // the unreadable row left out.
            let again: Vec<Event> = read_back
                .load(&rows)
                .iter()
                .map(|e| (**e).clone())
                .collect();
            assert_eq!(again, fresh.events);
        }
        // A pair that grew: old rows from the memo, the new one parsed.
        let mut grown = rows.clone();
        grown.push(StoredEvent {
            id: 9,
            line:
                r#"{"type":"status","at":"2026-11-02T10:05:00Z","id":"wamid.out","status":"read"}"#
                    .into(),
        });
        let again: Vec<Event> = read_back
            .load(&grown)
            .iter()
            .map(|e| (**e).clone())
            .collect();
        assert_eq!(again, load(&grown).events);
        // Stand-ins follow the rows, old ones from the memo among them: a
        // later row with an earlier instant stands for its send instead,
        // and a send stored at last leaves no stand-in.
        let priced = |id: i64, at: &str, wamid: &str| {
            StoredEvent {
            id,
            line: format!(
                r#"{{"type":"status","at":"{at}","id":"{wamid}","status":"sent","business":"B1","user":"+5511999990001","pricing":{{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}}}}"#
            )
            .into(),
        }
        };
        let read = |rows: &[StoredEvent]| -> Vec<Event> {
            read_back.load(rows).iter().map(|e| (**e).clone()).collect()
        };
        grown.push(priced(10, "2026-11-02T11:00:05Z", "wamid.late"));
        assert_eq!(read(&grown), load(&grown).events);
        grown.push(priced(11, "2026-11-02T11:00:01Z", "wamid.late"));
        assert_eq!(read(&grown), load(&grown).events);
        let stand_in_at = read(&grown).into_iter().find_map(|event| match event.kind {
            EventKind::Outbound { id, .. } if &*id == "wamid.late" => Some(event.at),
            _ => None,
        });
        assert_eq!(stand_in_at, Some("2026-11-02T11:00:01Z".parse().unwrap()));
        grown.push(StoredEvent {
            id: 12,
            line: r#"{"type":"outbound","at":"2026-11-02T11:00:00Z","business":"B1","user":"+5511999990001","id":"wamid.late"}"#.into(),
        });
        let events = read(&grown);
        assert_eq!(events, load(&grown).events);
        let sends = events
            .iter()
            .filter(|event| matches!(&event.kind, EventKind::Outbound { id, .. } if &**id == "wamid.late"))
            .count();
        assert_eq!(sends, 1, "the stored send, no stand-in beside it");
    }

    /// The guard's assessment answers what its two questions asked apart
    /// answer: the window of `windows` at the send (+1 ns), and the charge
    /// of a replay of the events with the send and its delivery. Sends
    /// before, at and after the user's messages (an ad click among them:
    /// the supposed send opens a free entry point, which must not reach the
    /// customer service window), templates and free-form.
    #[test]
    fn an_assessment_answers_what_windows_and_a_replay_do() {
        let edges = [0, 1, 600, 601, 1_440, 1_441, 1_560, 2_040, 3_000];
        let grid = (-120i64..3_000).step_by(29);
        for (minutes, templated) in edges
            .into_iter()
            .chain(grid)
            .flat_map(|minutes| [(minutes, false), (minutes, true)])
        {
            let lines = [
                r#"{"type":"inbound","at":"2026-11-02T10:00:00Z","business":"B1","user":"+5511999990000","id":"wamid.in"}"#,
                r#"{"type":"outbound","at":"2026-11-02T10:01:00Z","business":"B1","user":"+5511999990000","id":"wamid.out","template":{"name":"t","category":"utility"}}"#,
                r#"{"type":"status","at":"2026-11-02T10:01:02Z","id":"wamid.out","status":"delivered"}"#,
                r#"{"type":"inbound","at":"2026-11-02T20:00:00Z","business":"B1","user":"+5511999990000","id":"wamid.ad","entry_point":"ad"}"#,
                r#"{"type":"inbound","at":"2026-11-03T12:00:00Z","business":"B1","user":"+5511999990000","id":"wamid.later"}"#,
            ];
            let events: Vec<Arc<Event>> = lines
                .iter()
                .enumerate()
                .map(
                    |(n, line)| match wameter_log::parse_line(line, origin_of(n as i64 + 1)) {
                        Ok(Parsed::Event(event)) => Arc::new(event),
                        other => panic!("{line}: {other:?}"),
                    },
                )
                .collect();
            let pricing = builtin_pricing();
            let engine = pricing.engine();
            let user = UserId::parse("+5511999990000").unwrap();
            let at = Timestamp::from_second(1_793_613_600).unwrap()
                + jiff::SignedDuration::from_mins(minutes); // 2026-11-02T10:00Z, the first message
            let template = templated.then(|| Template {
                name: "t".into(),
                category: wameter_core::category::TemplateCategory::Marketing,
            });
            let assessment = assess(
                &engine,
                events.clone(),
                "B1",
                &user,
                at,
                template.clone(),
                None,
            );
            let windows = windows(
                &engine,
                &events,
                "B1",
                &user,
                at + jiff::SignedDuration::from_nanos(1),
            );
            assert_eq!(
                assessment.customer_service_window(),
                windows.customer_service_window,
                "{minutes} min, template {templated}"
            );

            let mut with_send = events.clone();
            with_send.extend(supposed_send("B1", &user, at, template.clone(), None));
            let replayed = engine
                .replay_shared(&with_send)
                .charges
                .into_iter()
                .find(|c| &*c.message_id == PREDICTION);
            // Without reasons and explanations, the same price and rule.
            let quick = assessing(&engine);
            let facts = |charge: Option<Charge>| {
                charge.map(|c| {
                    (
                        c.amount, c.currency, c.billable, c.category, c.ruleset, c.rule, c.tier,
                    )
                })
            };
            assert_eq!(
                facts(
                    assess(
                        &quick,
                        events.clone(),
                        "B1",
                        &user,
                        at,
                        template.clone(),
                        None
                    )
                    .predict(&quick)
                ),
                facts(replayed.clone()),
                "{minutes} min, template {templated}, assessing engine"
            );
            assert_eq!(
                assessment.predict(&engine),
                replayed,
                "{minutes} min, template {templated}"
            );
        }
    }

    /// A send supposed at the last representable instant is assessed,
    /// not a panic (its window is asked just after it, which does not
    /// exist).
    #[test]
    fn an_assessment_at_the_last_instant_does_not_overflow() {
        let pricing = builtin_pricing();
        let engine = pricing.engine();
        let user = UserId::parse("+5511999990000").unwrap();
        let assessment = assess(&engine, Vec::new(), "B1", &user, Timestamp::MAX, None, None);
        assert_eq!(assessment.customer_service_window(), None);
        let _ = assessment.predict(&engine);
    }

    /// The shipped cards, tiers, markets and calling rates; no accounts.
    fn builtin_pricing() -> wameter_core::pricing::Pricing {
        wameter_core::pricing::Pricing {
            accounts: Default::default(),
            rates: wameter_core::ratecard::RateBook::builtin(),
            tiers: wameter_core::ratecard::TierBook::builtin(),
            markets: wameter_core::market::MarketTable::builtin(),
            call_rates: wameter_core::ratecard::calling::CallRateBook::builtin(),
        }
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
                line: (*line).into(),
            })
            .collect();
        let pricing = builtin_pricing();
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

    /// A month's state reconciles from what it keeps what a reconciliation
    /// of its events finds, whatever rounds the events came in: the counts
    /// per share when Meta's pricing agrees; nothing (so the caller
    /// reconciles in full) when a verdict differs or the scope is not the
    /// one it read. (Which shares are asked for is the core's property
    /// test, `the_shares_add_up_to_the_reconciliation`.)
    #[test]
    fn a_months_state_agrees_with_meta_as_a_reconciliation_does() {
        let status = |at: &str, id: &str, status: &str, category: &str| {
            format!(
                r#"{{"type":"status","at":"{at}","business":"B1","user":"+5511999990000","id":"{id}","status":"{status}","pricing":{{"billable":true,"category":"{category}","pricing_model":"PMP","type":"regular"}}}}"#
            )
        };
        let lines = |utility_as: &str| {
            vec![
                status("2026-11-02T10:00:00Z", "wamid.m", "sent", "marketing"),
                status("2026-11-02T10:00:03Z", "wamid.m", "read", "marketing"),
                status("2026-11-02T10:00:02Z", "wamid.m", "delivered", "marketing"),
                status("2026-11-03T09:00:00Z", "wamid.u", "sent", "utility"),
                status("2026-11-03T09:00:01Z", "wamid.u", "delivered", utility_as),
                status("2026-11-30T23:00:00Z", "wamid.late", "delivered", "utility"),
            ]
        };
        let pricing = builtin_pricing();
        let engine = pricing.engine();
        let businesses: BTreeSet<String> = ["B1".to_string()].into();
        let month = Month::parse("2026-11").unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        for (utility_as, agrees) in [("utility", true), ("marketing", false)] {
            let rows: Vec<StoredEvent> = lines(utility_as)
                .into_iter()
                .enumerate()
                .map(|(n, line)| StoredEvent {
                    id: n as i64 + 1,
                    line: line.into(),
                })
                .collect();
            let full = wameter_core::reconcile::reconcile(&engine, load(&rows).events, &[]);
            assert_eq!(full.compared, 3);
            assert_eq!(full.discrepancies.is_empty(), agrees);
            let counts: BTreeMap<_, u64> = full
                .shares
                .iter()
                .map(|(key, share)| (key.clone(), share.compared))
                .collect();
            // One round, a round a row, and a round a row backwards.
            let mut splits = vec![vec![rows.clone()]];
            splits.push(rows.iter().map(|row| vec![row.clone()]).collect());
            splits.push(rows.iter().rev().map(|row| vec![row.clone()]).collect());
            for rounds in splits {
                let mut state = MonthState::new(&engine);
                for (n, round) in rounds.into_iter().enumerate() {
                    state.settle(&engine, round, &businesses, month, now, n == 0);
                }
                assert_eq!(
                    state.agreement(&businesses, &[], |_| true),
                    agrees.then(|| counts.clone())
                );
                let wider: BTreeSet<String> = ["B1".to_string(), "B2".to_string()].into();
                assert_eq!(state.agreement(&wider, &[], |_| true), None);
            }
        }
    }

    /// `/v1/charges` answers from the kept columns what `replay --json`
    /// prints: the lines in the engine's order — ties on the instant
    /// broken by business, then a phone number before a business-scoped
    /// id, and instants apart by nanoseconds within one microsecond kept
    /// apart — and the same totals (conversations opened under CBP, calls
    /// billed), whatever order the store returns the rows in.
    #[test]
    fn answer_orders_and_totals_kept_rows_as_replay_does() {
        let lines = [
            // CBP (2024): a template opens a conversation.
            r#"{"type":"outbound","at":"2024-03-04T10:00:00Z","business":"B1","user":"+5511999990000","id":"wamid.cbp","template":{"name":"t","category":"marketing"}}"#,
            r#"{"type":"status","at":"2024-03-04T10:00:02Z","id":"wamid.cbp","status":"delivered"}"#,
            // PMP: four deliveries at one second; two a few nanoseconds apart.
            r#"{"type":"outbound","at":"2026-11-02T10:00:00Z","business":"B1","user":"US.13491208655302741918","id":"wamid.a","template":{"name":"t","category":"utility"}}"#,
            r#"{"type":"outbound","at":"2026-11-02T10:00:00Z","business":"B1","user":"+5511999990001","id":"wamid.b","template":{"name":"t","category":"utility"}}"#,
            r#"{"type":"outbound","at":"2026-11-02T10:00:00Z","business":"B0","user":"+5511999990002","id":"wamid.c","template":{"name":"t","category":"marketing"}}"#,
            r#"{"type":"outbound","at":"2026-11-02T10:00:00Z","business":"B0","user":"+5511999990003","id":"wamid.d","template":{"name":"t","category":"marketing"}}"#,
            r#"{"type":"status","at":"2026-11-02T10:00:05Z","id":"wamid.a","status":"delivered"}"#,
            r#"{"type":"status","at":"2026-11-02T10:00:05Z","id":"wamid.b","status":"delivered"}"#,
            r#"{"type":"status","at":"2026-11-02T10:00:05.000000900Z","id":"wamid.c","status":"delivered"}"#,
            r#"{"type":"status","at":"2026-11-02T10:00:05.000000100Z","id":"wamid.d","status":"delivered"}"#,
            r#"{"type":"inbound","at":"2026-11-03T10:00:00Z","business":"B1","user":"+254700000009","kind":"call"}"#,
            r#"{"type":"call","at":"2026-11-03T10:05:00Z","business":"B1","user":"+254700000009","id":"wacid.1","direction":"business_initiated","duration":125}"#,
            r#"{"type":"agent_usage","at":"2026-11-03T12:00:00Z","business":"B1","user":"+5511999990000","id":"wamid.a1","tokens":21500}"#,
        ];
        let events: Vec<Event> = lines
            .iter()
            .map(
                |line| match wameter_log::parse_line(line, Default::default()) {
                    Ok(Parsed::Event(event)) => event,
                    other => panic!("{line}: {other:?}"),
                },
            )
            .collect();
        let pricing = builtin_pricing();
        let report = pricing.engine().replay(events);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.charges.len(), 5);
        assert!(report.charges.iter().any(|c| c.opens_conversation));
        assert_eq!(report.calls.len(), 1);
        assert!(report.calls[0].billable, "{:?}", report.calls[0]);
        assert_eq!(report.agent.len(), 1);
        // Kept as a settle keeps them: the call and the usage are B1's, of
        // 2026-11; the charges of every month.
        let (businesses, month) = (["B1".to_string()].into(), Month::parse("2026-11").unwrap());
        let mut kept: Vec<ChargeRow> = report
            .charges
            .iter()
            .map(charge_row)
            .chain(call_rows(&report.calls, &businesses, month))
            .chain(agent_rows(&report.agent, &businesses, month))
            .collect();
        let expected: Vec<String> = report
            .charges
            .iter()
            .map(|charge| serde_json::to_string(&ChargeJson::from(charge)).unwrap())
            .collect();
        let mut totals = wameter_core::report::totals_with_calls(&report.charges, &report.calls);
        wameter_core::report::add_agent(&mut totals, &report.agent);
        for turn in 0..2 {
            if turn == 1 {
                kept.reverse();
            } else {
                kept.rotate_left(2);
            }
            let answer = answer(kept.clone(), Vec::new(), None);
            let served: Vec<&str> = answer.charges.iter().map(|k| k.line.as_str()).collect();
            assert_eq!(served, expected);
            assert_eq!((answer.calls.len(), answer.agent.len()), (1, 1));
            assert_eq!(answer.totals, totals);
            assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);
        }
        // A row whose columns do not read is said, not skipped.
        let mut bad = kept[0].clone();
        bad.facts.amount = "twelve".into();
        let answer = answer(vec![bad], Vec::new(), None);
        assert!(answer.charges.is_empty());
        assert_eq!(answer.warnings[0].0, "unreadable_kept_charge");
    }
}
