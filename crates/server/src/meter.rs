//! From stored events to the engine's answers. Charges are not kept in the
//! store: they are computed here, by the same pure engine as `wameter
//! replay`, from the events a question needs — so the server and a replay
//! of the same events can never disagree.

use std::collections::{BTreeSet, HashMap, HashSet};

use jiff::{SignedDuration, Timestamp, ToSpan};
use wameter_core::account::Accounts;
use wameter_core::charge::Charge;
use wameter_core::engine::{ContactWindows, Engine, Report, prepare};
use wameter_core::event::{Event, EventKind, Origin, UserId, outbounds_from_pricing};
use wameter_core::market::MarketTable;
use wameter_core::ratecard::{RateBook, TierBook};
use wameter_log::Parsed;
use wameter_log::replay_json::WarningJson;
use wameter_store::StoredEvent;

/// How far before a question's start the events are read: the longest
/// window that can reach into it (a free entry point, 72 h, opened by a
/// reply up to 24 h after the ad) plus a margin.
pub const LOOK_BACK: SignedDuration = SignedDuration::from_hours(5 * 24);

/// Rate cards, tiers, markets and businesses: everything the engine needs
/// besides events.
pub struct Pricing {
    /// Businesses (time zone, currency, portfolio…).
    pub accounts: Accounts,
    /// Rate cards.
    pub rates: RateBook,
    /// Volume tiers.
    pub tiers: TierBook,
    /// Calling code → market.
    pub markets: &'static MarketTable,
}

impl Pricing {
    /// An engine over these tables.
    pub fn engine(&self) -> Engine<'_> {
        Engine::new(&self.accounts, &self.rates, &self.tiers, self.markets)
    }

    /// The WABA of a business phone number (itself when not configured).
    pub fn waba_of(&self, business: &str) -> String {
        self.accounts.get_or_default(business).waba.to_string()
    }

    /// The businesses whose events a question about `businesses` needs:
    /// those sharing a portfolio with them, because volume tiers count the
    /// whole portfolio's messages (and the free tier the whole WABA's).
    pub fn with_counter_peers(&self, businesses: &BTreeSet<String>) -> Vec<String> {
        let portfolios: BTreeSet<String> = businesses.iter().map(|b| self.accounts.get_or_default(b).portfolio.to_string()).collect();
        let mut out = businesses.clone();
        for business in self.accounts.businesses() {
            if portfolios.contains(&*business.portfolio) {
                out.insert(business.phone_number_id.to_string());
            }
        }
        out.into_iter().collect()
    }
}

/// A stored event's id as an [`Origin`], so warnings can point back at it.
pub fn origin_of(id: i64) -> Origin {
    let id = id as u64;
    Origin { source: (id >> 32) as u32, line: id as u32 }
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
    /// Outbounds inferred from a status's `pricing`.
    pub inferred: usize,
}

/// Reads stored lines back into events and adds the outbounds that Meta's
/// pricing implies (as `replay` does for a log).
pub fn load(rows: &[StoredEvent]) -> Loaded {
    let mut out = Loaded::default();
    for row in rows {
        match wameter_log::parse_line(&row.line, origin_of(row.id)) {
            Ok(Parsed::Event(event)) => out.events.push(event),
            Ok(_) => out.unreadable.push((row.id, "stored line is not an event".into())),
            Err(error) => out.unreadable.push((row.id, error.to_string())),
        }
    }
    let inferred = outbounds_from_pricing(&out.events);
    out.inferred = inferred.len();
    out.events.extend(inferred);
    out
}

/// The windows of one pair at `at`, from its stored events.
pub fn windows(engine: &Engine<'_>, events: Vec<Event>, business: &str, user: &UserId, at: Timestamp) -> ContactWindows {
    let prepared = prepare(events);
    prepared
        .contacts
        .iter()
        .find(|contact| &*contact.business == business && &contact.user == user)
        .map(|contact| engine.windows_at(contact, at))
        .unwrap_or_default()
}

/// The instant from which events must be read to price deliveries from
/// `from` on exactly: the start of `from`'s month (UTC, widened by a day
/// for time zones east and west of it), minus [`LOOK_BACK`]. Monthly
/// counters (volume tiers, free tier) then start from zero where they
/// should.
pub fn read_since(from: Timestamp) -> Timestamp {
    let utc = jiff::tz::TimeZone::UTC;
    let first = utc.to_datetime(from).date().first_of_month();
    let month_start = utc.to_timestamp(first.to_datetime(jiff::civil::Time::midnight())).unwrap_or(from);
    month_start.checked_sub(1.day()).and_then(|t| t.checked_sub(LOOK_BACK)).unwrap_or(Timestamp::MIN)
}

/// A replay of the events, narrowed to what the question asked and the
/// token may see.
pub struct Answer {
    /// The report, charges narrowed.
    pub report: Report,
    /// Warnings as the document prints them, narrowed.
    pub warnings: Vec<(&'static str, String, Option<u64>)>,
}

/// Replays and narrows: charges delivered in `[from, to)` for the
/// `visible` businesses (`None`: all).
pub fn charges(
    engine: &Engine<'_>,
    loaded: Loaded,
    visible: Option<&BTreeSet<String>>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Answer {
    // With a scoped token, which stored events are the visible businesses'
    // own: warnings about other businesses (loaded only for the shared
    // counters) stay hidden. An all-WABA token sees every warning.
    let visible_ids: Option<HashSet<u64>> = visible.map(|set| {
        let business_of_message: HashMap<&str, &str> = loaded
            .events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Outbound { business, id, .. } => Some((&**id, &**business)),
                _ => None,
            })
            .collect();
        loaded
            .events
            .iter()
            .filter(|event| {
                let business = match &event.kind {
                    EventKind::Status { id, .. } => event.kind.business().or_else(|| business_of_message.get(&**id).copied()),
                    kind => kind.business(),
                };
                business.is_some_and(|b| set.contains(b))
            })
            .map(|event| id_of(event.origin))
            .collect()
    });

    let mut warnings: Vec<(&'static str, String, Option<u64>)> = Vec::new();
    if visible.is_none() {
        for (id, message) in &loaded.unreadable {
            warnings.push(("unreadable_stored_event", message.clone(), Some(*id as u64)));
        }
        if loaded.inferred > 0 {
            warnings.push(("outbound_inferred", wameter_log::replay_json::outbound_inferred_message(loaded.inferred), None));
        }
    }
    let mut report = engine.replay(loaded.events);
    report.charges.retain(|charge: &Charge| {
        visible.is_none_or(|set| set.contains(&*charge.business))
            && from.is_none_or(|from| charge.delivered_at >= from)
            && to.is_none_or(|to| charge.delivered_at < to)
    });
    for warning in &report.warnings {
        // Warnings that point at an event are shown with it; those about
        // the whole replay are recomputed below for the narrowed charges.
        if let Some(id) = warning.origin.map(id_of) {
            if visible_ids.as_ref().is_none_or(|ids| ids.contains(&id)) {
                warnings.push((warning.code, warning.message.clone(), Some(id)));
            }
        }
    }
    let reported = report.charges.iter().filter(|c| c.ruleset.status() == "reported").count();
    if reported > 0 {
        let warning = wameter_core::charge::Warning::reported_rules(reported);
        warnings.push((warning.code, warning.message, None));
    }
    Answer { report, warnings }
}

impl Answer {
    /// The warnings in the document's shape.
    pub fn warnings_json(&self) -> Vec<WarningJson<'_>> {
        self.warnings
            .iter()
            .map(|(code, message, event)| WarningJson { code, message: message.clone(), file: None, line: None, event: *event })
            .collect()
    }
}
