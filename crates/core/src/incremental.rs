//! The incremental meter: the engine's state kept between events, so that
//! an event costs what it changes rather than a replay of the month.
//!
//! [`MeterState`] takes events in any order and any number of batches and
//! answers, at every point, exactly what [`Engine::replay`] answers for all
//! the events it has been given (a property test feeds logs in random splits
//! and orders through both). It keeps three layers, each the state of one
//! stage of the replay:
//!
//! - **Messages**: the outbound events and status summaries by
//!   (business, wamid), and the inbound ids seen, as [`engine::prepare`]
//!   builds them. A status moves at most one delivery in one timeline.
//! - **Contacts**: per (business phone number, user), the timeline in time
//!   order, the window state after the items walked, and where its charges
//!   are in its ledger (each charge is kept once, there).
//!   An event after the last walked item resumes the walk from that state;
//!   one before it re-walks that contact alone (a contact's history is
//!   short next to the month's).
//! - **Ledgers**: per portfolio (every shared counter — free tier, volume
//!   tiers, service allowance — nests inside one), the decided charges in
//!   delivery order, their settled form, and the counters reached, with a
//!   snapshot every [`CHECKPOINT_EVERY`] charges. A charge after the
//!   frontier is settled from the counters as they stand; one before it
//!   rewinds that portfolio alone to the snapshot at or before it. (An
//!   accounts file that puts one WABA in two portfolios gets one ledger for
//!   all: its free tier is one counter.)
//!
//! The findings (warnings, errors, counts) are kept up the same way: each
//! message's counts and warning are counted again when an event touches
//! it, and the ledgers keep which charges have notes or could not be
//! settled, so asking for them costs the findings, not the month.
//!
//! Appending in time order, as a live system mostly does, is therefore
//! O(new events); a late event costs its contact's history and its
//! portfolio's charges since the checkpoint before it.
//!
//! Outbound events missing from the log are inferred from Meta's pricing on
//! their statuses, as the front ends do for a replay: the state answers
//! what `Engine::replay` answers for the events plus
//! [`outbounds_from_pricing`] of them, and drops a stand-in when the real
//! outbound event arrives.
//!
//! [`engine::prepare`]: crate::engine::prepare
//! [`outbounds_from_pricing`]: crate::event::outbounds_from_pricing

use std::collections::{BTreeMap, BTreeSet, HashMap as StdHashMap, HashSet as StdHashSet};
use std::ops::Bound;
use std::sync::Arc;

use jiff::Timestamp;

use crate::category::{PricingCategory, PricingType};
use crate::charge::{Charge, PricingError, Settlement, Warning};
use crate::engine::{
    self, ContactDecisions, ContactTimeline, ContactWindows, Counters, DeliveredMessage, Engine,
    Item, MonthToDate, PrepareStats, Report, Settler, StatusRead, StatusSummary,
};
use crate::event::{Country, Event, EventKind, InboundKind, MetaPricing, Origin, Template, UserId};
use crate::rules::agent::{AgentCharge, AgentReport, TimedUsage};
use crate::rules::{
    self,
    calling::{CallCharge, CallReport, TimedCall},
};
use crate::window::ContactState;

// Keys come from the user's own events and iteration order never reaches
// the output (see engine.rs).
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = StdHashSet<K, foldhash::fast::RandomState>;

/// A hash map for the state's large values (a contact is 376 bytes, a
/// message 184): they sit in one dense vector and the table holds their
/// indices. In a `HashMap` each sat in its slot, so a table's slack after
/// it doubled was resident: these tables were half of a month's state, and
/// keeping their values dense took a sixth off it (docs/PERFORMANCE.md).
/// Entries are never removed.
type DenseMap<K, V> = indexmap::IndexMap<K, V, foldhash::fast::RandomState>;

/// Charges settled between two snapshots of a portfolio's counters, unless
/// [`MeterState::checkpoint_every`] says otherwise: a late event re-settles
/// at most this many charges before its own instant.
pub const CHECKPOINT_EVERY: usize = 256;

/// A (business phone number, user) pair as the events name it.
type ContactKey = (Arc<str>, UserId);

/// A message: (business phone number, wamid). The wamid is shared: a
/// charged message's keys in its ledger, its contact and the index hold
/// one copy of it.
type MessageKey = (Arc<str>, Arc<str>);

/// A message as the ledgers order it: the replay's global delivery order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct SettleKey {
    delivered_at: Timestamp,
    business: Arc<str>,
    user: UserId,
    message_id: Arc<str>,
}

impl SettleKey {
    fn of(charge: &Charge) -> SettleKey {
        SettleKey {
            delivered_at: charge.delivered_at,
            business: charge.business.clone(),
            user: charge.user.clone(),
            message_id: charge.message_id.clone(),
        }
    }
}

/// What the log says of one outbound message.
struct Outbound {
    user: UserId,
    at: Timestamp,
    template: Option<Arc<Template>>,
    origin: Origin,
    messaging_account: Option<Box<str>>,
}

/// One (business, wamid): its outbound event, the statuses naming its
/// business, and the delivery it put in its timeline.
///
/// A month's state holds one per message in a hash table, so its size is
/// most of the table's: what only some messages have is boxed (a stand-in
/// only when the outbound event is missing; statuses naming the business
/// only from webhooks that say it, where `gen` logs and reports name
/// none). Unboxed, this table alone was a fifth of a month's state.
#[derive(Default)]
struct Message {
    outbound: Option<Outbound>,
    /// What Meta's pricing on its statuses says was sent, standing in for
    /// a missing outbound event ([`outbounds_from_pricing`]): the earliest
    /// priced status's.
    stand_in: Option<Box<Outbound>>,
    owned: Option<Box<StatusSummary>>,
    /// The user whose timeline holds its delivery, and the delivery instant.
    placed: Option<(UserId, Timestamp)>,
    /// Meta Business Agent produced it (an `agent_usage` names it).
    by_agent: bool,
    /// What it adds to the findings' counts, as of the last
    /// [`MeterState::apply`].
    counted: Counted,
}

/// One message's part of the findings' counts ([`MeterState::findings`]
/// sums them as it goes, rather than visiting every message each time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counted {
    /// Its outbound event is a stand-in: an event of the log it is
    /// inferred for.
    stand_in: bool,
    /// Statuses repeated between its business's and the unnamed ones.
    duplicates: u32,
    outcome: Outcome,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Outcome {
    /// Not an outbound message (yet): only statuses.
    #[default]
    Unsent,
    Delivered,
    Failed,
    Undelivered,
}

impl Counted {
    /// Adds (or with `add` false, takes back) this part to `stats`.
    fn count_in(self, stats: &mut PrepareStats, add: bool) {
        let step = |total: &mut u64, by: u64| {
            *total = if add {
                total.saturating_add(by)
            } else {
                total.saturating_sub(by)
            }
        };
        step(&mut stats.events, u64::from(self.stand_in));
        step(&mut stats.duplicates, u64::from(self.duplicates));
        match self.outcome {
            Outcome::Unsent => {}
            Outcome::Delivered => step(&mut stats.delivered, 1),
            Outcome::Failed => step(&mut stats.failed, 1),
            Outcome::Undelivered => step(&mut stats.undelivered, 1),
        }
    }
}

impl Message {
    /// Known only from Meta's pricing.
    fn inferred(&self) -> bool {
        self.outbound.is_none() && self.stand_in.is_some()
    }

    /// The outbound event, else its stand-in.
    fn sent(&self) -> Option<&Outbound> {
        self.outbound.as_ref().or(self.stand_in.as_deref())
    }
}

/// One timeline and how far it has been walked.
struct Contact {
    timeline: ContactTimeline,
    /// Items walked into `state`, `charges` and `errors`.
    walked: usize,
    state: ContactState,
    /// Its charges, where its ledger keeps them (decided once, in the
    /// ledger only: a charge is most of the state's memory).
    charges: Vec<SettleKey>,
    /// Deliveries that could not be decided.
    errors: Vec<PricingError>,
    /// The first item changed since the last walk, if any.
    dirty_from: Option<usize>,
    /// The ledger its charges go to.
    group: Arc<str>,
}

/// A charge as decided for its timeline, and as settled in its portfolio.
struct Entry {
    decided: Charge,
    /// Its outbound event is a stand-in inferred from Meta's pricing (a
    /// real one arriving changes the decided charge, so it is re-filed).
    inferred: bool,
    settled: Option<Result<Charge, PricingError>>,
}

/// What a conversation's opener was settled as, which its members take
/// (the replay's conversation map): its pricing type, billable, category.
type Opened = (PricingType, bool, PricingCategory);

/// One portfolio's charges in delivery order, and its counters.
///
/// Its charges are settled in delivery order up to the *frontier*; every
/// charge after it is yet to be settled (its `settled` is absent or stale).
/// A ledger settles to its end when the state settles eagerly, and only as
/// far as a question needs in an on-demand state
/// ([`MeterState::settling_on_demand`]).
struct Ledger {
    /// Boxed: live traffic appends in delivery order, which leaves a
    /// B-tree's nodes about half full, and a node holds eleven entries
    /// inline (two charges each): boxing them took 7 % off a month's
    /// state (docs/PERFORMANCE.md).
    entries: BTreeMap<SettleKey, Box<Entry>>,
    /// The counters before the first charge.
    initial: Counters,
    /// The counters after `frontier`.
    counters: Counters,
    /// The last charge settled.
    frontier: Option<SettleKey>,
    /// Counters before each key, every [`CHECKPOINT_EVERY`] charges.
    checkpoints: BTreeMap<SettleKey, Counters>,
    /// Charges settled since the last checkpoint, across settlings: a
    /// ledger that grows a charge at a time still takes checkpoints.
    since_checkpoint: usize,
    checkpoint_every: usize,
    /// Conversation id → the charge that opened it, and what that charge
    /// was last settled as (kept here so that settling a member reads no
    /// other entry).
    conversations: HashMap<String, (SettleKey, Option<Opened>)>,
    /// The earliest charge added or removed at or before the frontier since
    /// the last settling (a change after the frontier is pending anyway).
    changed_from: Option<SettleKey>,
    /// Whether settling tells which charges changed (`removed`, and the
    /// keys it hands back): an on-demand state tells nothing, so it
    /// compares no charge with its former self.
    reports_changes: bool,
    /// Charges removed since the last settling.
    removed: Vec<MessageKey>,
    /// The charges settled with notes, and those that could not be
    /// settled: what the findings take from a ledger, without visiting
    /// its every charge. (Kept as candidates: a key here whose entry has
    /// changed since is checked, not trusted.)
    noted: BTreeSet<SettleKey>,
    unpriced: BTreeSet<SettleKey>,
}

/// Which of a ledger's finding sets a settled charge belongs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filed {
    Plain,
    Noted,
    Unpriced,
}

impl Filed {
    fn of(settled: &Option<Result<Charge, PricingError>>) -> Filed {
        match settled {
            Some(Ok(charge)) if !charge.trail.notes.is_empty() => Filed::Noted,
            Some(Err(_)) => Filed::Unpriced,
            _ => Filed::Plain,
        }
    }

    /// Moves `key` from the set of `from` to that of `self`.
    fn refile(
        self,
        from: Filed,
        key: &SettleKey,
        noted: &mut BTreeSet<SettleKey>,
        unpriced: &mut BTreeSet<SettleKey>,
    ) {
        if self == from {
            return;
        }
        match from {
            Filed::Noted => {
                noted.remove(key);
            }
            Filed::Unpriced => {
                unpriced.remove(key);
            }
            Filed::Plain => {}
        }
        match self {
            Filed::Noted => {
                noted.insert(key.clone());
            }
            Filed::Unpriced => {
                unpriced.insert(key.clone());
            }
            Filed::Plain => {}
        }
    }
}

impl Ledger {
    fn new(initial: Counters, checkpoint_every: usize, reports_changes: bool) -> Ledger {
        Ledger {
            entries: BTreeMap::new(),
            counters: initial.clone(),
            initial,
            frontier: None,
            checkpoints: BTreeMap::new(),
            since_checkpoint: 0,
            checkpoint_every,
            conversations: HashMap::default(),
            changed_from: None,
            reports_changes,
            removed: Vec::new(),
            noted: BTreeSet::new(),
            unpriced: BTreeSet::new(),
        }
    }

    /// Sets `key`'s settled form, filing it among the noted or the
    /// unpriced, and keeping what an opener was settled as.
    fn set_settled(&mut self, key: &SettleKey, settled: Option<Result<Charge, PricingError>>) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        Filed::of(&settled).refile(
            Filed::of(&entry.settled),
            key,
            &mut self.noted,
            &mut self.unpriced,
        );
        if let Some(id) = &entry.decided.conversation_id
            && let Some((opener, opened)) = self.conversations.get_mut(id)
            && opener == key
        {
            *opened = opened_as(&settled);
        }
        entry.settled = settled;
    }

    /// The settled charges with notes, in delivery order.
    fn noted(&self) -> impl Iterator<Item = (&SettleKey, &Charge)> {
        self.noted
            .iter()
            .filter_map(|key| match &self.entries.get(key)?.settled {
                Some(Ok(charge)) if !charge.trail.notes.is_empty() => Some((key, charge)),
                _ => None,
            })
    }

    /// The charges that could not be settled.
    fn unpriced(&self) -> impl Iterator<Item = &PricingError> {
        self.unpriced
            .iter()
            .filter_map(|key| self.entries.get(key)?.settled.as_ref()?.as_ref().err())
    }

    fn mark(&mut self, key: &SettleKey) {
        if self.changed_from.as_ref().is_none_or(|from| key < from) {
            self.changed_from = Some(key.clone());
        }
    }

    fn insert(&mut self, charge: Charge, inferred: bool) -> SettleKey {
        let key = SettleKey::of(&charge);
        self.mark(&key);
        self.noted.remove(&key);
        self.unpriced.remove(&key);
        // A charge in its place opened no conversation yet: what one it
        // replaces opened is not what the members take.
        if let Some(id) = self
            .entries
            .get(&key)
            .and_then(|replaced| replaced.decided.conversation_id.as_ref())
            && self
                .conversations
                .get(id)
                .is_some_and(|(opener, _)| *opener == key)
        {
            self.conversations.remove(id);
        }
        if let (true, Some(id)) = (charge.opens_conversation, &charge.conversation_id) {
            self.conversations.insert(id.clone(), (key.clone(), None));
        }
        self.entries.insert(
            key.clone(),
            Box::new(Entry {
                decided: charge,
                inferred,
                settled: None,
            }),
        );
        key
    }

    fn remove(&mut self, key: &SettleKey) -> Option<Box<Entry>> {
        let entry = self.entries.remove(key)?;
        self.mark(key);
        self.noted.remove(key);
        self.unpriced.remove(key);
        if entry.settled.is_some() && self.reports_changes {
            self.removed
                .push((key.business.clone(), key.message_id.clone()));
        }
        if let Some(id) = &entry.decided.conversation_id
            && self
                .conversations
                .get(id)
                .is_some_and(|(opener, _)| opener == key)
        {
            self.conversations.remove(id);
        }
        Some(entry)
    }

    /// Whether every charge through `until` (every charge, when `None`) is
    /// settled as it stands.
    fn settled_through(&self, until: Option<&SettleKey>) -> bool {
        let Some(frontier) = &self.frontier else {
            return self.entries.is_empty();
        };
        let reached = match until {
            Some(until) => until <= frontier,
            None => self.entries.keys().next_back() == Some(frontier),
        };
        reached
            && self
                .changed_from
                .as_ref()
                .is_none_or(|from| until.is_some_and(|until| from > until))
    }

    /// Settles in delivery order every charge not settled as it stands,
    /// through `until` (to the end when `None`): on from the frontier's
    /// counters when every change is after it, else from the checkpoint at
    /// or before the earliest change. If the ledger reports changes, the
    /// keys whose settled charge changed (or went away) are pushed onto
    /// `changed`.
    fn settle(
        &mut self,
        engine: &Engine<'_>,
        changed: &mut Vec<MessageKey>,
        until: Option<&SettleKey>,
    ) {
        changed.append(&mut self.removed);
        if self.settled_through(until) {
            return;
        }
        let from = self.changed_from.take();
        let rewind = match (&from, &self.frontier) {
            (Some(from), Some(frontier)) => from <= frontier,
            (_, None) => true,
            (None, Some(_)) => false,
        };
        let (start, mut counters) = match &self.frontier {
            Some(frontier) if !rewind => (
                Bound::Excluded(frontier.clone()),
                std::mem::take(&mut self.counters),
            ),
            _ => match from
                .as_ref()
                .and_then(|from| self.checkpoints.range(..=from).next_back())
            {
                Some((key, counters)) => {
                    let (key, counters) = (key.clone(), counters.clone());
                    // Checkpoints from `key` on are taken again as the
                    // charges are settled (`key`'s own first).
                    self.checkpoints.split_off(&key);
                    self.since_checkpoint = self.checkpoint_every;
                    self.frontier = self
                        .entries
                        .range((Bound::Unbounded, Bound::Excluded(&key)))
                        .next_back()
                        .map(|(before, _)| before.clone());
                    (Bound::Included(key), counters)
                }
                None => {
                    self.checkpoints.clear();
                    self.since_checkpoint = 0;
                    self.frontier = None;
                    (Bound::Unbounded, self.initial.clone())
                }
            },
        };
        let Ledger {
            entries,
            frontier,
            checkpoints,
            since_checkpoint,
            checkpoint_every,
            conversations,
            reports_changes,
            noted,
            unpriced,
            ..
        } = self;
        let mut settler = Settler::new(engine);
        let mut last = None;
        for (key, entry) in entries.range_mut((start, Bound::Unbounded)) {
            if until.is_some_and(|until| key > until) {
                break;
            }
            if *since_checkpoint >= *checkpoint_every {
                checkpoints.insert(key.clone(), counters.clone());
                *since_checkpoint = 0;
            }
            *since_checkpoint += 1;
            let decided = &entry.decided;
            // A member takes what its opener was settled as, when the opener
            // was settled before it (the replay's conversation map).
            let conversation = match (decided.settlement, &decided.conversation_id) {
                (Settlement::ConversationMember, Some(id)) => conversations
                    .get(id)
                    .filter(|(opener, _)| opener < key)
                    .and_then(|(_, opened)| *opened),
                _ => None,
            };
            let mut charge = decided.clone();
            let settled = Some(
                match settler.settle(&mut counters, &mut charge, conversation) {
                    Ok(()) => Ok(charge),
                    Err(message) => Err(PricingError {
                        message_id: charge.message_id.clone(),
                        origin: charge.trail.origin,
                        message,
                    }),
                },
            );
            if let (true, Some(id)) = (decided.opens_conversation, &decided.conversation_id)
                && let Some((opener, opened)) = conversations.get_mut(id)
                && opener == key
            {
                *opened = opened_as(&settled);
            }
            if *reports_changes && entry.settled != settled {
                changed.push((key.business.clone(), key.message_id.clone()));
            }
            Filed::of(&settled).refile(Filed::of(&entry.settled), key, noted, unpriced);
            entry.settled = settled;
            last = Some(key);
        }
        if let Some(last) = last {
            *frontier = Some(last.clone());
        }
        self.counters = counters;
    }
}

/// What a settled opener's members take.
fn opened_as(settled: &Option<Result<Charge, PricingError>>) -> Option<Opened> {
    match settled {
        Some(Ok(opener)) => Some((opener.pricing_type, opener.billable, opener.category)),
        _ => None,
    }
}

/// A report's warnings, errors and counts ([`MeterState::findings`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    /// As [`Report::warnings`].
    pub warnings: Vec<Warning>,
    /// As [`Report::errors`].
    pub errors: Vec<PricingError>,
    /// As [`Report::stats`].
    pub stats: PrepareStats,
}

/// Whether a decided charge's message is known only from Meta's pricing.
fn inferred_message(messages: &DenseMap<MessageKey, Message>, charge: &Charge) -> bool {
    messages
        .get(&(charge.business.clone(), charge.message_id.clone()))
        .is_some_and(Message::inferred)
}

/// What one [`MeterState::apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChargeChanges {
    /// Messages (business phone number, wamid) whose charge appeared,
    /// changed or went away, each once, sorted.
    pub messages: Vec<MessageKey>,
}

/// The engine's state between events (module docs).
///
/// It borrows nothing: every call that prices takes the [`Engine`], which
/// must be the same one each time (the state is what that engine made of
/// the events; another engine's answers would mix two sets of rules).
pub struct MeterState {
    stats: PrepareStats,
    conflicts: Vec<Warning>,
    businesses: HashMap<Box<str>, Arc<str>>,
    messages: DenseMap<MessageKey, Message>,
    /// Statuses that name no business, by wamid.
    unowned: DenseMap<Box<str>, StatusSummary>,
    /// The businesses that sent each wamid.
    senders: HashMap<Box<str>, Vec<Arc<str>>>,
    seen_inbounds: HashSet<(Arc<str>, UserId, Timestamp, bool, InboundKind)>,
    seen_inbound_ids: HashSet<(Arc<str>, Box<str>)>,
    countries: HashMap<Arc<str>, Country>,
    /// Contacts whose user is a business-scoped id without a country, by id.
    countryless: HashMap<Arc<str>, Vec<ContactKey>>,
    contacts: DenseMap<ContactKey, Contact>,
    dirty: Vec<ContactKey>,
    ledgers: HashMap<Arc<str>, Ledger>,
    /// Each WABA's portfolio: ledgers are per portfolio only while no WABA
    /// spans two (then one ledger holds everything).
    waba_portfolio: HashMap<Arc<str>, Arc<str>>,
    single: bool,
    checkpoint_every: usize,
    /// Portfolios are settled only as far as a question needs
    /// ([`MeterState::settling_on_demand`]).
    on_demand: bool,
    /// Where each message's charge is: (business, wamid) → (ledger, key).
    index: HashMap<MessageKey, (Arc<str>, SettleKey)>,
    /// Every call read, and their pricing as of the last [`MeterState::apply`]
    /// that brought one: calls are few, so all are priced again then
    /// rather than kept in ledgers of their own.
    calls: Vec<TimedCall>,
    calls_priced: CallReport,
    /// The calling units the priced calls reach: the report's
    /// `counters.call_units`.
    call_units: MonthToDate,
    calls_changed: bool,
    /// Meta Business Agent usage, the same way.
    agent: Vec<TimedUsage>,
    agent_priced: AgentReport,
    agent_changed: bool,
    /// The findings kept up as events come ([`MeterState::findings`]): the
    /// messages' counts summed, their warnings (one at most each), the
    /// warnings of statuses no business sent, the contacts whose walk
    /// found errors; and what the next apply must count again.
    counted: PrepareStats,
    message_warnings: HashMap<MessageKey, Warning>,
    unowned_warnings: HashMap<Box<str>, Warning>,
    erring: HashSet<ContactKey>,
    recount: HashSet<MessageKey>,
    recount_unowned: HashSet<Box<str>>,
}

/// The one ledger's name when all portfolios share it.
const ALL: &str = "";

impl MeterState {
    /// An empty state for `engine`'s pricing.
    pub fn new(engine: &Engine<'_>) -> MeterState {
        let mut state = MeterState {
            stats: PrepareStats::default(),
            conflicts: Vec::new(),
            businesses: HashMap::default(),
            messages: DenseMap::default(),
            unowned: DenseMap::default(),
            senders: HashMap::default(),
            seen_inbounds: HashSet::default(),
            seen_inbound_ids: HashSet::default(),
            countries: HashMap::default(),
            countryless: HashMap::default(),
            contacts: DenseMap::default(),
            dirty: Vec::new(),
            ledgers: HashMap::default(),
            waba_portfolio: HashMap::default(),
            // Carried counters are named by WABA, portfolio and number;
            // one ledger takes them whole.
            single: engine.month_to_date.is_some(),
            checkpoint_every: CHECKPOINT_EVERY,
            on_demand: false,
            index: HashMap::default(),
            calls: Vec::new(),
            calls_priced: CallReport::default(),
            call_units: MonthToDate {
                call_units: engine
                    .month_to_date
                    .map(|c| c.call_units.clone())
                    .unwrap_or_default(),
                ..MonthToDate::default()
            },
            calls_changed: false,
            agent: Vec::new(),
            agent_priced: AgentReport::default(),
            agent_changed: false,
            counted: PrepareStats::default(),
            message_warnings: HashMap::default(),
            unowned_warnings: HashMap::default(),
            erring: HashSet::default(),
            recount: HashSet::default(),
            recount_unowned: HashSet::default(),
        };
        if state.single {
            state.ledgers.insert(
                Arc::from(ALL),
                Ledger::new(
                    Counters::carried(engine.month_to_date),
                    CHECKPOINT_EVERY,
                    true,
                ),
            );
        }
        state
    }

    /// Snapshots each portfolio's counters every `charges` charges (at
    /// least 1) instead of [`CHECKPOINT_EVERY`]: fewer means less memory and
    /// more work per late event.
    pub fn checkpoint_every(mut self, charges: usize) -> MeterState {
        self.checkpoint_every = charges.max(1);
        for ledger in self.ledgers.values_mut() {
            ledger.checkpoint_every = self.checkpoint_every;
        }
        self
    }

    /// Settles each portfolio only as far as a question needs: [`apply`]
    /// then takes events in without settling, and reports no changes;
    /// [`settle_through`] settles one message's portfolio up to it, and
    /// [`settle`] settles everything. Until then, what the readers
    /// ([`charge`], [`charges`], [`report`], [`findings`]) answer of a
    /// portfolio is as of its last settling.
    ///
    /// For a front end that asks for a few charges as it goes, such as the
    /// sandbox pricing each send's statuses: a send that lands among the
    /// same second's earlier sends changes the counters of every charge
    /// after it, and settling those at once was most of a send's cost.
    /// Settled when asked, each charge is settled about once.
    ///
    /// [`apply`]: MeterState::apply
    /// [`settle_through`]: MeterState::settle_through
    /// [`settle`]: MeterState::settle
    /// [`charge`]: MeterState::charge
    /// [`charges`]: MeterState::charges
    /// [`report`]: MeterState::report
    /// [`findings`]: MeterState::findings
    pub fn settling_on_demand(mut self) -> MeterState {
        self.on_demand = true;
        for ledger in self.ledgers.values_mut() {
            ledger.reports_changes = false;
        }
        self
    }

    /// Takes events in (any order, any batch) and returns the messages
    /// whose charge changed (none when [settling on demand]).
    ///
    /// [settling on demand]: MeterState::settling_on_demand
    pub fn apply(
        &mut self,
        engine: &Engine<'_>,
        events: impl IntoIterator<Item = Event>,
    ) -> ChargeChanges {
        for event in events {
            self.take(engine, event);
        }
        self.walk_dirty(engine);
        self.recount();
        let changes = if self.on_demand {
            ChargeChanges::default()
        } else {
            self.settle(engine)
        };
        if std::mem::take(&mut self.calls_changed) {
            self.calls_priced = rules::calling::price_from(
                self.calls.clone(),
                engine.accounts,
                engine.call_rates,
                engine.markets,
                engine.month_to_date,
            );
            self.call_units = MonthToDate::default();
            rules::calling::publish(
                &self.calls_priced.calls,
                &engine.accounts.options,
                engine.month_to_date,
                &mut self.call_units,
            );
        }
        if std::mem::take(&mut self.agent_changed) {
            self.agent_priced = rules::agent::price(self.agent.clone(), engine.accounts);
        }
        changes
    }

    /// Settles every portfolio to its end and returns the messages whose
    /// charge changed since the last settling (none when [settling on
    /// demand]). [`apply`] does this itself unless settling on demand.
    ///
    /// [settling on demand]: MeterState::settling_on_demand
    /// [`apply`]: MeterState::apply
    pub fn settle(&mut self, engine: &Engine<'_>) -> ChargeChanges {
        let mut changes = ChargeChanges::default();
        let mut groups: Vec<&Arc<str>> = self.ledgers.keys().collect();
        groups.sort();
        let groups: Vec<Arc<str>> = groups.into_iter().cloned().collect();
        for group in groups {
            if let Some(ledger) = self.ledgers.get_mut(&group) {
                ledger.settle(engine, &mut changes.messages, None);
            }
        }
        // A charge that moved is named by its removal and by its new place.
        changes.messages.sort();
        changes.messages.dedup();
        changes
    }

    /// Settles the portfolio of `business`'s message `id` in delivery
    /// order up to that message, so that [`MeterState::charge`] answers it
    /// as it stands. Nothing to do for a message not delivered, or unless
    /// [settling on demand] (every portfolio is then settled already).
    ///
    /// [settling on demand]: MeterState::settling_on_demand
    pub fn settle_through(&mut self, engine: &Engine<'_>, business: &str, id: &str) {
        let Some((group, key)) = self.index.get(&(Arc::from(business), Arc::from(id))) else {
            return;
        };
        if let Some(ledger) = self.ledgers.get_mut(group) {
            // An on-demand ledger reports nothing: the vector stays empty.
            ledger.settle(engine, &mut Vec::new(), Some(key));
        }
    }

    /// The charge of `business`'s message `id` as it stands: `None` while
    /// it is not delivered (or not known).
    pub fn charge(&self, business: &str, id: &str) -> Option<Result<&Charge, &PricingError>> {
        let (group, key) = self.index.get(&(Arc::from(business), Arc::from(id)))?;
        match self
            .ledgers
            .get(group)?
            .entries
            .get(key)?
            .settled
            .as_ref()?
        {
            Ok(charge) => Some(Ok(charge)),
            Err(error) => Some(Err(error)),
        }
    }

    /// The windows of (business, user) at `at`, counting only what happened
    /// before it ([`Engine::windows_at`]).
    pub fn windows_at(
        &self,
        engine: &Engine<'_>,
        business: &str,
        user: &UserId,
        at: Timestamp,
    ) -> ContactWindows {
        match self.contacts.get(&(Arc::from(business), user.clone())) {
            Some(contact) => engine.windows_at(&contact.timeline, at),
            None => ContactWindows::default(),
        }
    }

    /// Everything so far, as [`Engine::replay`] would report it.
    pub fn report(&self) -> Report {
        let charges = self.charges();
        let Findings {
            warnings,
            errors,
            stats,
        } = self.findings_of(&charges);
        let charges: Vec<Charge> = charges.into_iter().cloned().collect();
        let mut counters = MonthToDate {
            call_units: self.call_units.call_units.clone(),
            ..MonthToDate::default()
        };
        for ledger in self.ledgers.values() {
            ledger.counters.publish(&mut counters);
        }
        Report {
            charges,
            calls: self.calls_priced.calls.clone(),
            agent: self.agent_priced.charges.clone(),
            warnings,
            errors,
            stats,
            counters,
        }
    }

    /// The calls so far, priced, in start order (the report's, not copied).
    pub fn calls(&self) -> &[CallCharge] {
        &self.calls_priced.calls
    }

    /// Meta Business Agent usage so far, priced, in time order.
    pub fn agent(&self) -> &[AgentCharge] {
        &self.agent_priced.charges
    }

    /// The charges so far, in delivery order (the report's, not copied).
    pub fn charges(&self) -> Vec<&Charge> {
        fn settled(ledger: &Ledger) -> Vec<(&SettleKey, &Charge)> {
            let mut out = Vec::with_capacity(ledger.entries.len());
            for (key, entry) in &ledger.entries {
                if let Some(Ok(charge)) = &entry.settled {
                    out.push((key, charge));
                }
            }
            out
        }
        // A ledger is in delivery order already; only several need sorting
        // (comparing keys was most of a settle round's time, PERFORMANCE).
        let mut ledgers = self.ledgers.values();
        let mut all = match (ledgers.next(), ledgers.next()) {
            (None, _) => return Vec::new(),
            (Some(only), None) => {
                return settled(only)
                    .into_iter()
                    .map(|(_, charge)| charge)
                    .collect();
            }
            (Some(first), Some(second)) => {
                let mut all = settled(first);
                all.extend(settled(second));
                all
            }
        };
        for ledger in ledgers {
            all.extend(settled(ledger));
        }
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter().map(|(_, charge)| charge).collect()
    }

    /// The report's warnings, errors and counts, without its charges: what
    /// a settle round asks each time, so it costs the findings, not the
    /// month (they are kept up by [`MeterState::apply`]).
    pub fn findings(&self) -> Findings {
        // Of the charges, only their notes are findings.
        let mut noted: Vec<(&SettleKey, &Charge)> =
            self.ledgers.values().flat_map(Ledger::noted).collect();
        if self.ledgers.len() > 1 {
            noted.sort_by(|a, b| a.0.cmp(b.0));
        }
        let noted: Vec<&Charge> = noted.into_iter().map(|(_, charge)| charge).collect();
        self.findings_of(&noted)
    }

    /// [`MeterState::charges`] and [`MeterState::findings`] at once (the
    /// findings' notes come from the charges).
    pub fn charges_and_findings(&self) -> (Vec<&Charge>, Findings) {
        let charges = self.charges();
        let findings = self.findings_of(&charges);
        (charges, findings)
    }

    /// Whether `business`'s message `id` is known only from Meta's pricing
    /// on its statuses (its outbound event inferred).
    pub fn is_inferred(&self, business: &str, id: &str) -> bool {
        self.messages
            .get(&(Arc::from(business), Arc::from(id)))
            .is_some_and(Message::inferred)
    }

    /// The settled charge of `business`'s message `id` if its outbound
    /// event is inferred from Meta's pricing (one of
    /// [`MeterState::inferred_charges`]); a change to either is among the
    /// messages [`MeterState::apply`] returns.
    pub fn inferred_charge(&self, business: &str, id: &str) -> Option<&Charge> {
        let (group, key) = self.index.get(&(Arc::from(business), Arc::from(id)))?;
        let entry = self.ledgers.get(group)?.entries.get(key)?;
        match (&entry.settled, entry.inferred) {
            (Some(Ok(charge)), true) => Some(charge),
            _ => None,
        }
    }

    /// The charges whose outbound event is inferred from Meta's pricing, in
    /// no particular order (what `outbound_inferred` counts).
    pub fn inferred_charges(&self) -> impl Iterator<Item = &Charge> {
        self.ledgers
            .values()
            .flat_map(|ledger| ledger.entries.values())
            .filter(|entry| entry.inferred)
            .filter_map(|entry| match &entry.settled {
                Some(Ok(charge)) => Some(charge),
                _ => None,
            })
    }

    /// The findings, with the notes of `charges` (in delivery order).
    fn findings_of(&self, charges: &[&Charge]) -> Findings {
        let mut stats = self.stats.clone();
        stats += &self.counted;
        stats.duplicates += self.calls_priced.duplicates + self.agent_priced.duplicates;
        let mut warnings = self.conflicts.clone();
        warnings.extend(self.message_warnings.values().cloned());
        warnings.extend(self.unowned_warnings.values().cloned());
        warnings.extend(self.calls_priced.warnings.iter().cloned());
        warnings.extend(self.agent_priced.warnings.iter().cloned());
        engine::sort_warnings(&mut warnings);
        warnings.extend(engine::notes(charges.iter().copied()));

        let mut errors: Vec<PricingError> = Vec::new();
        for ledger in self.ledgers.values() {
            errors.extend(ledger.unpriced().cloned());
        }
        for key in &self.erring {
            if let Some(contact) = self.contacts.get(key) {
                errors.extend(contact.errors.iter().cloned());
            }
        }
        errors.extend(self.calls_priced.errors.iter().cloned());
        errors.extend(self.agent_priced.errors.iter().cloned());
        engine::sort_errors(&mut errors);
        Findings {
            warnings,
            errors,
            stats,
        }
    }

    /// Counts again the messages and unnamed statuses that events touched
    /// since the last time: what each adds to the findings.
    fn recount(&mut self) {
        for key in std::mem::take(&mut self.recount) {
            let Some(message) = self.messages.get(&key) else {
                continue;
            };
            let id = &*key.1;
            let mut counted = Counted::default();
            let mut warning = None;
            match message.sent() {
                None => {
                    if let Some(owned) = &message.owned {
                        warning = Some(engine::unknown_status(
                            owned.origin().unwrap_or_default(),
                            id,
                            Some(&key.0),
                        ));
                    }
                }
                Some(_) => {
                    counted.stand_in = message.outbound.is_none();
                    let unowned = self.unowned.get(id);
                    if let (Some(owned), Some(unowned)) = (&message.owned, unowned) {
                        counted.duplicates = unowned
                            .seen
                            .iter()
                            .filter(|seen| owned.seen.contains(seen))
                            .count() as u32;
                    }
                    // The failure the merged summary would keep, without
                    // merging.
                    let failed = engine::later_failure(
                        message.owned.as_ref().and_then(|s| s.failed()),
                        unowned.and_then(StatusSummary::failed),
                    );
                    counted.outcome = match message.placed {
                        Some(_) => {
                            if let Some((error, origin)) = failed {
                                warning = Some(engine::failed_after_delivery(id, error, origin));
                            }
                            Outcome::Delivered
                        }
                        None if failed.is_some() => Outcome::Failed,
                        None => Outcome::Undelivered,
                    };
                }
            }
            let before = message.counted;
            before.count_in(&mut self.counted, false);
            counted.count_in(&mut self.counted, true);
            if let Some(message) = self.messages.get_mut(&key) {
                message.counted = counted;
            }
            match warning {
                Some(warning) => {
                    self.message_warnings.insert(key, warning);
                }
                None => {
                    self.message_warnings.remove(&key);
                }
            }
        }
        for id in std::mem::take(&mut self.recount_unowned) {
            match self.unowned.get(&id) {
                Some(summary) if !self.senders.contains_key(&id) => {
                    let warning =
                        engine::unknown_status(summary.origin().unwrap_or_default(), &id, None);
                    self.unowned_warnings.insert(id, warning);
                }
                _ => {
                    self.unowned_warnings.remove(&id);
                }
            }
        }
    }

    /// Marks `business`'s message `id`, and the statuses of `id` that name
    /// no business, to be counted again: each arm of `take` that changes a
    /// message's outbound, stand-in, statuses or senders calls it (its
    /// placement changes only in `resolve`, which those arms call).
    fn touch_message(&mut self, business: &Arc<str>, id: &str) {
        self.recount.insert((business.clone(), Arc::from(id)));
        self.recount_unowned.insert(Box::from(id));
    }

    /// A message's statuses, from its own business and unnamed.
    fn summary(&self, message: &Message, id: &str) -> Option<StatusSummary> {
        match (&message.owned, self.unowned.get(id)) {
            (Some(a), Some(b)) => Some(a.merged(b)),
            (a, b) => a.as_deref().or(b).map(StatusSummary::outcome),
        }
    }

    fn take(&mut self, engine: &Engine<'_>, event: Event) {
        self.stats.events += 1;
        match event.kind {
            EventKind::Inbound {
                business,
                user,
                id,
                entry_point,
                kind,
            } => {
                self.note_country(&user);
                let business = engine::intern_text(&mut self.businesses, &business);
                let first_time = match id {
                    Some(id) => self.seen_inbound_ids.insert((business.clone(), id)),
                    None => self.seen_inbounds.insert((
                        business.clone(),
                        user.clone(),
                        event.at,
                        entry_point.is_some(),
                        kind,
                    )),
                };
                if !first_time {
                    self.stats.duplicates += 1;
                    return;
                }
                let item = Item::inbound(event.at, entry_point.is_some());
                self.insert_item(engine, business, user, item);
            }
            EventKind::Call(call) => {
                self.note_country(&call.user);
                // As `engine::prepare`: a call that opens the window is an
                // inbound item once; its copies are counted by the pricing.
                if call.opens_window() {
                    let business = engine::intern_text(&mut self.businesses, &call.business);
                    if self.seen_inbounds.insert((
                        business.clone(),
                        call.user.clone(),
                        event.at,
                        false,
                        InboundKind::Call,
                    )) {
                        let item = Item::inbound(event.at, false);
                        self.insert_item(engine, business, call.user.clone(), item);
                    }
                }
                self.calls.push(TimedCall {
                    at: event.at,
                    origin: event.origin,
                    call: *call,
                });
                self.calls_changed = true;
            }
            EventKind::AgentUsage(usage) => {
                // The message it names, if the agent produced one, is not
                // also a service message (`rules::agent::agent_message`).
                let business = engine::intern_text(&mut self.businesses, &usage.business);
                let message = self
                    .messages
                    .entry((business.clone(), Arc::from(&*usage.id)))
                    .or_default();
                let marked = !message.by_agent;
                message.by_agent = true;
                let id = usage.id.clone();
                self.agent.push(TimedUsage {
                    at: event.at,
                    origin: event.origin,
                    usage: *usage,
                });
                self.agent_changed = true;
                if marked {
                    self.resolve(engine, &business, &id);
                }
            }
            EventKind::Outbound {
                business,
                user,
                id,
                template,
                messaging_account,
            } => {
                self.note_country(&user);
                let business = engine::intern_text(&mut self.businesses, &business);
                self.touch_message(&business, &id);
                let message = self
                    .messages
                    .entry((business.clone(), id.clone()))
                    .or_default();
                match &mut message.outbound {
                    Some(kept) => {
                        self.stats.duplicates += 1;
                        let same = kept.user == user
                            && kept.template == template
                            && kept.messaging_account == messaging_account;
                        if !same {
                            self.conflicts.push(engine::conflicting_outbound(
                                &id,
                                &business,
                                event.origin,
                            ));
                        }
                        // Keep the earliest, whatever the input order.
                        if same && (event.at, event.origin) < (kept.at, kept.origin) {
                            kept.at = event.at;
                            kept.origin = event.origin;
                        } else {
                            return;
                        }
                    }
                    None => {
                        if message.stand_in.is_none() {
                            self.senders
                                .entry(Box::from(&*id))
                                .or_default()
                                .push(business.clone());
                        }
                        message.outbound = Some(Outbound {
                            user,
                            at: event.at,
                            template,
                            origin: event.origin,
                            messaging_account,
                        });
                    }
                }
                self.resolve(engine, &business, &id);
            }
            EventKind::Status {
                id,
                status,
                error,
                detail,
            } => {
                let cost = detail
                    .as_ref()
                    .and_then(|d| d.pricing.as_ref())
                    .and_then(|p| p.cost);
                let messaging_account = detail.as_ref().and_then(|d| d.messaging_account.clone());
                let (business, stood_in) = match detail.map(|detail| *detail) {
                    Some(detail) => match detail.business {
                        Some(business) => {
                            let business = engine::intern(&mut self.businesses, business);
                            self.touch_message(&business, &id);
                            // Meta's pricing names what was sent: a stand-in
                            // for the outbound event, if the log never has one.
                            let implied = detail
                                .pricing
                                .as_ref()
                                .and_then(MetaPricing::implied_message);
                            let stood_in = match (detail.recipient, implied) {
                                (Some(user), Some(message)) => {
                                    let template = message.map(|category| {
                                        Arc::new(Template {
                                            name: "".into(),
                                            category,
                                        })
                                    });
                                    self.stand_in(
                                        Outbound {
                                            user,
                                            at: event.at,
                                            template,
                                            origin: event.origin,
                                            messaging_account: None,
                                        },
                                        &business,
                                        &id,
                                    )
                                }
                                _ => false,
                            };
                            (Some(business), stood_in)
                        }
                        None => (None, false),
                    },
                    None => (None, false),
                };
                // `false`: an exact repeat of a status the summary holds.
                let record = |summary: &mut StatusSummary| {
                    summary.record(StatusRead {
                        status,
                        error,
                        at: event.at,
                        origin: event.origin,
                        cost,
                        messaging_account: messaging_account.as_deref(),
                    })
                };
                match business {
                    Some(business) => {
                        let message = self
                            .messages
                            .entry((business.clone(), Arc::from(&*id)))
                            .or_default();
                        if !record(message.owned.get_or_insert_with(Box::default)) {
                            self.stats.duplicates += 1;
                            if !stood_in {
                                return;
                            }
                        }
                        self.resolve(engine, &business, &id);
                    }
                    None => {
                        if !record(self.unowned.entry(id.clone()).or_default()) {
                            self.stats.duplicates += 1;
                            return;
                        }
                        self.recount_unowned.insert(id.clone());
                        for business in self.senders.get(&id).cloned().unwrap_or_default() {
                            self.touch_message(&business, &id);
                            self.resolve(engine, &business, &id);
                        }
                    }
                }
            }
        }
    }

    /// Takes a priced status's view of what was sent, if it is earlier than
    /// the one kept; `true` when it is.
    fn stand_in(&mut self, candidate: Outbound, business: &Arc<str>, id: &str) -> bool {
        let message = self
            .messages
            .entry((business.clone(), id.into()))
            .or_default();
        if message
            .stand_in
            .as_ref()
            .is_some_and(|kept| (kept.at, kept.origin) <= (candidate.at, candidate.origin))
        {
            return false;
        }
        if message.sent().is_none() {
            self.senders
                .entry(id.into())
                .or_default()
                .push(business.clone());
        }
        let user = candidate.user.clone();
        message.stand_in = Some(Box::new(candidate));
        if message.outbound.is_none() {
            // The replay reads the stand-in as an outbound event, which
            // says its user's country like any other.
            self.note_country(&user);
        }
        true
    }

    /// A business-scoped id's country, from whichever event gives it; the
    /// contacts that lacked it are walked again with it.
    fn note_country(&mut self, user: &UserId) {
        if let UserId::Bsuid(id, Some(country)) = user
            && !self.countries.contains_key(id)
        {
            self.countries.insert(id.clone(), *country);
            for key in self.countryless.get(id).cloned().unwrap_or_default() {
                self.touch(&key, 0);
            }
        }
    }

    /// Puts a message's delivery in its timeline, moved or removed as its
    /// events say now.
    fn resolve(&mut self, engine: &Engine<'_>, business: &Arc<str>, id: &str) {
        let key = (business.clone(), Arc::<str>::from(id));
        // The wamid as the table keeps it: the delivery, its charge and the
        // charge's keys share that one copy.
        let Some(((_, wamid), message)) = self.messages.get_key_value(&key) else {
            return;
        };
        let Some(outbound) = message.sent() else {
            return;
        };
        let summary = self.summary(message, id);
        let delivered_at = summary.as_ref().and_then(StatusSummary::delivered_at);
        let meta_cost = summary.as_ref().and_then(StatusSummary::meta_cost);
        let new = delivered_at.map(|at| {
            Item::delivery(
                at,
                Box::new(DeliveredMessage::new(
                    wamid.clone(),
                    outbound.template.clone(),
                    (outbound.at, outbound.origin),
                    message.by_agent,
                    meta_cost,
                    outbound.messaging_account.clone().or_else(|| {
                        summary
                            .as_ref()
                            .and_then(|s| s.messaging_account())
                            .map(Box::from)
                    }),
                )),
            )
        });
        let user = outbound.user.clone();
        if let Some((old_user, old_at)) = message.placed.clone() {
            let contact_key = (business.clone(), old_user);
            let old_key = (old_at, 1u8, id);
            let found = self.contacts.get_mut(&contact_key).and_then(|contact| {
                let position = contact
                    .timeline
                    .items
                    .binary_search_by(|item| item.sort_key().cmp(&old_key))
                    .ok()?;
                Some((contact, position))
            });
            if let Some((contact, position)) = found {
                if contact_key.1 == user && contact.timeline.items.get(position) == new.as_ref() {
                    return;
                }
                contact.timeline.items.remove(position);
                self.touch(&contact_key, position);
            }
        }
        if let Some(message) = self.messages.get_mut(&key) {
            message.placed = delivered_at.map(|at| (user.clone(), at));
        }
        if let Some(item) = new {
            self.insert_item(engine, business.clone(), user, item);
        }
    }

    /// Inserts an item in its timeline's order; items at the same instant
    /// keep the order they came in, as the replay's stable sort does.
    fn insert_item(&mut self, engine: &Engine<'_>, business: Arc<str>, user: UserId, item: Item) {
        let key = (business, user);
        let fresh = if self.contacts.contains_key(&key) {
            None
        } else {
            let group = self.group_of(engine, &key.0);
            if let UserId::Bsuid(id, None) = &key.1 {
                self.countryless
                    .entry(id.clone())
                    .or_default()
                    .push(key.clone());
            }
            let timeline = ContactTimeline {
                business: key.0.clone(),
                user: key.1.clone(),
                items: Vec::new(),
            };
            Some(Contact {
                timeline,
                walked: 0,
                state: ContactState::default(),
                charges: Vec::new(),
                errors: Vec::new(),
                dirty_from: None,
                group,
            })
        };
        let contact = match fresh {
            Some(contact) => self.contacts.entry(key.clone()).or_insert(contact),
            None => match self.contacts.get_mut(&key) {
                Some(contact) => contact,
                None => return,
            },
        };
        let items = &mut contact.timeline.items;
        let position = {
            let sort_key = item.sort_key();
            items.partition_point(|existing| existing.sort_key() <= sort_key)
        };
        items.insert(position, item);
        self.touch(&key, position);
    }

    fn touch(&mut self, key: &ContactKey, position: usize) {
        if let Some(contact) = self.contacts.get_mut(key) {
            if contact.dirty_from.is_none() {
                self.dirty.push(key.clone());
            }
            contact.dirty_from = Some(
                contact
                    .dirty_from
                    .map_or(position, |from| from.min(position)),
            );
        }
    }

    /// The ledger of a business: its portfolio's, or the only one.
    fn group_of(&mut self, engine: &Engine<'_>, business: &Arc<str>) -> Arc<str> {
        if self.single {
            return Arc::from(ALL);
        }
        let account = engine.accounts.get_or_default(business);
        match self.waba_portfolio.get(&account.waba) {
            Some(portfolio) if *portfolio != account.portfolio => {
                self.merge_ledgers(engine);
                Arc::from(ALL)
            }
            Some(portfolio) => portfolio.clone(),
            None => {
                self.waba_portfolio
                    .insert(account.waba.clone(), account.portfolio.clone());
                account.portfolio.clone()
            }
        }
    }

    /// One WABA in two portfolios: its free tier would be counted in two
    /// ledgers, so from now on one ledger holds every charge.
    fn merge_ledgers(&mut self, engine: &Engine<'_>) {
        self.single = true;
        let mut all = Ledger::new(
            Counters::carried(engine.month_to_date),
            self.checkpoint_every,
            !self.on_demand,
        );
        for (_, ledger) in self.ledgers.drain() {
            // Charges removed since the last settling are still changes.
            all.removed.extend(ledger.removed);
            for (_, entry) in ledger.entries {
                // Its settled form stays until the merged ledger settles it
                // again: a charge then removed, or settled the same, is
                // told as it is.
                let key = all.insert(entry.decided, entry.inferred);
                all.set_settled(&key, entry.settled);
            }
        }
        for contact in self.contacts.values_mut() {
            contact.group = Arc::from(ALL);
        }
        for (group, _) in self.index.values_mut() {
            *group = Arc::from(ALL);
        }
        self.ledgers.insert(Arc::from(ALL), all);
    }

    /// Walks every changed timeline: on from where it stopped when only
    /// items after that changed, from the start otherwise; charges that
    /// changed go to their ledger.
    fn walk_dirty(&mut self, engine: &Engine<'_>) {
        let (checkpoint_every, reports_changes) = (self.checkpoint_every, !self.on_demand);
        for key in std::mem::take(&mut self.dirty) {
            let user = match &key.1 {
                UserId::Bsuid(id, None) => {
                    UserId::Bsuid(id.clone(), self.countries.get(id).cloned())
                }
                user => user.clone(),
            };
            let Some(contact) = self.contacts.get_mut(&key) else {
                continue;
            };
            let Some(from) = contact.dirty_from.take() else {
                continue;
            };
            let ledger = self
                .ledgers
                .entry(contact.group.clone())
                .or_insert_with(|| {
                    Ledger::new(Counters::default(), checkpoint_every, reports_changes)
                });
            let index = &mut self.index;
            let group = &contact.group;
            let mut decided = ContactDecisions::default();
            if from >= contact.walked && contact.timeline.user.country() == user.country() {
                engine.walk_on(
                    &contact.timeline,
                    contact.walked,
                    &mut contact.state,
                    None,
                    &mut decided,
                );
                contact.walked = contact.timeline.items.len();
                contact.errors.append(&mut decided.errors);
                if !contact.errors.is_empty() {
                    self.erring.insert(key.clone());
                }
                for charge in decided.charges {
                    let inferred = inferred_message(&self.messages, &charge);
                    let key = ledger.insert(charge, inferred);
                    index.insert(
                        (key.business.clone(), key.message_id.clone()),
                        (group.clone(), key.clone()),
                    );
                    contact.charges.push(key);
                }
                continue;
            }
            contact.timeline.user = user;
            contact.state = ContactState::default();
            engine.walk_on(&contact.timeline, 0, &mut contact.state, None, &mut decided);
            contact.walked = contact.timeline.items.len();
            contact.errors = decided.errors;
            if !contact.errors.is_empty() {
                self.erring.insert(key.clone());
            }
            // Charges decided as before stay as they are; the others go,
            // and the new ones come in.
            let mut unchanged: HashSet<SettleKey> = HashSet::default();
            let now: HashMap<&str, &Charge> = decided
                .charges
                .iter()
                .map(|charge| (&*charge.message_id, charge))
                .collect();
            for old in std::mem::take(&mut contact.charges) {
                let same = ledger.entries.get(&old).is_some_and(|entry| {
                    now.get(&*old.message_id)
                        .is_some_and(|new| **new == entry.decided)
                });
                if same {
                    unchanged.insert(old);
                    continue;
                }
                ledger.remove(&old);
                // Unless the message moved to a contact walked first.
                let message = (old.business.clone(), old.message_id.clone());
                if index.get(&message).is_some_and(|(_, at)| *at == old) {
                    index.remove(&message);
                }
            }
            drop(now);
            for charge in decided.charges {
                let key = SettleKey::of(&charge);
                if !unchanged.contains(&key) {
                    let inferred = inferred_message(&self.messages, &charge);
                    let key = ledger.insert(charge, inferred);
                    index.insert(
                        (key.business.clone(), key.message_id.clone()),
                        (group.clone(), key),
                    );
                }
                contact.charges.push(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Accounts;
    use crate::category::TemplateCategory;
    use crate::event::DeliveryStatus;
    use crate::market::MarketTable;
    use crate::ratecard::{RateBook, TierBook};

    /// A utility template to a user and its delivery, `minute` minutes
    /// into 2026-01-05 (PMP: one charge each).
    fn send(user: usize, minute: i64) -> [Event; 2] {
        let at = Timestamp::from_second(1_767_571_200 + minute * 60).unwrap();
        let id: Arc<str> = Arc::from(format!("wamid.{user}.{minute}"));
        [
            Event {
                at,
                origin: Origin::default(),
                kind: EventKind::Outbound {
                    business: "B1".into(),
                    user: UserId::parse(&format!("+55119{user:08}")).unwrap(),
                    id: id.clone(),
                    template: Some(Arc::new(Template {
                        name: "t".into(),
                        category: TemplateCategory::Utility,
                    })),
                    messaging_account: None,
                },
            },
            Event {
                at,
                origin: Origin::default(),
                kind: EventKind::Status {
                    id: Box::from(&*id),
                    status: DeliveryStatus::Delivered,
                    error: None,
                    detail: None,
                },
            },
        ]
    }

    fn checkpoints(state: &MeterState) -> Vec<SettleKey> {
        state
            .ledgers
            .values()
            .flat_map(|ledger| ledger.checkpoints.keys().cloned())
            .collect()
    }

    /// A ledger that grows a charge at a time, as live traffic makes it,
    /// still takes a checkpoint every so many charges (counted across
    /// settlings, not within one), and a late charge that rewinds to one
    /// keeps it: otherwise a late event re-settles from the month's start.
    #[test]
    fn checkpoints_are_taken_a_charge_at_a_time_and_kept_when_rewound_to() {
        let (accounts, rates, tiers) = (
            Accounts::default(),
            RateBook::builtin(),
            TierBook::builtin(),
        );
        let engine = Engine::new(&accounts, &rates, &tiers, MarketTable::builtin());
        let mut state = MeterState::new(&engine).checkpoint_every(8);
        for minute in 0..100 {
            let changes = state.apply(&engine, send(minute as usize % 7, minute));
            assert_eq!(changes.messages.len(), 1, "one new charge a send");
        }
        let before = checkpoints(&state);
        assert_eq!(before.len(), 12, "a checkpoint every 8 of 100 charges");
        // A late send lands between the fifth and the sixth checkpoint: it
        // re-settles from the fifth, which stays, with those before it.
        let late = send(3, 44).map(|mut event| {
            event.at += jiff::SignedDuration::from_secs(30);
            match &mut event.kind {
                EventKind::Outbound { id, .. } => *id = Arc::from("wamid.late"),
                EventKind::Status { id, .. } => *id = Box::from("wamid.late"),
                _ => {}
            }
            event
        });
        state.apply(&engine, late);
        let after = checkpoints(&state);
        assert!(
            after.len() >= 12,
            "{} checkpoints after the rewind",
            after.len()
        );
        assert_eq!(
            after[..5],
            before[..5],
            "the checkpoints up to the one rewound to stay"
        );
    }
}
