//! The replay engine: canonical events in, explained charges out.
//!
//! Three stages, each a pure function:
//!
//! 1. [`prepare`] drops duplicates, finds each outbound message's delivery
//!    instant (first `delivered`, else first `read`; decision D3) and groups
//!    inbound messages and deliveries into one time-ordered timeline per
//!    (business phone number, user). Large logs are prepared on every core
//!    ([`prepare_in`]), with the same result.
//! 2. [`Engine::decide`] walks one timeline through the windows and the era's
//!    rules ([`crate::rules`]). Timelines are independent, so callers may run
//!    them in parallel; the result does not depend on how.
//! 3. [`Engine::settle`] puts all decisions in global delivery order and
//!    hands each charge to its era's `settle_*` function with that era's
//!    counter shared across users — the CBP free tier per WABA
//!    ([`rules::cbp_2022`]), PMP volume tiers per portfolio × market ×
//!    category ([`rules::pmp_2025`]), the 2026-10 service allowance per
//!    phone number ([`rules::pmp_2026_10`]) — months counted in each
//!    business's time zone, priced from the rate card in force. The engine
//!    keeps the counters and the order; the eras decide. Every counter lies
//!    inside one portfolio, so portfolios settle in parallel
//!    ([`Engine::settle_in`]), each in global delivery order.
//!
//! Ties between events at the same instant: inbound before outbound before
//! status (interfaces §1), then by message id, then by input position. Using
//! the id before the position keeps the output independent of how the log
//! was ordered or split into files.

use std::collections::{HashMap as StdHashMap, HashSet as StdHashSet};

// foldhash: a fast, non-cryptographic hasher. Iteration order never reaches
// the output (everything is sorted), and the keys come from the user's own
// logs, so SipHash's flooding resistance buys nothing here; it was 13 % of a
// replay's time (docs/PERFORMANCE.md).
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = StdHashSet<K, foldhash::fast::RandomState>;
use std::borrow::{Borrow, Cow};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::account::{Accounts, Business};
use crate::category::{PricingCategory, PricingType, TierFamily};
use crate::charge::{Charge, Explained, PricingError, Settlement, Trail, Warning};
use crate::event::{
    Country, DeliveryStatus, Event, EventKind, InboundKind, MetaCost, Origin, StatusDetail,
    Template, UnownedStatus, UserId,
};
use crate::market::{MarketMatch, MarketTable};
use crate::ratecard::calling::CallRateBook;
use crate::ratecard::{RateBook, TierBook};
use crate::rules::agent::{AgentCharge, TimedUsage};
use crate::rules::calling::{CallCharge, TimedCall};
use crate::rules::{self, Delivery, Verdict};
use crate::ruleset::Ruleset;
use crate::window::{ContactState, Slot, Window};

pub use crate::rules::cbp_2022::FREE_TIER_CONVERSATIONS;

/// A delivered outbound message waiting for the rules.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DeliveredMessage {
    pub(crate) id: Arc<str>,
    pub(crate) template: Option<Arc<Template>>,
    pub(crate) sent_at: Timestamp,
    pub(crate) origin: Origin,
    /// Meta Business Agent produced it (an `agent_usage` names its wamid).
    pub(crate) by_agent: bool,
    /// What few messages have, boxed: inline, it made every delivery of a
    /// replay 16 bytes larger (jemalloc's 80-byte class, not its 64).
    rare: Option<Box<RareDelivery>>,
}

/// The parts of a [`DeliveredMessage`] few messages have.
#[derive(Clone, Debug, PartialEq)]
struct RareDelivery {
    /// Meta's `pricing.cost` on a delivery status (max-price marketing).
    meta_cost: Option<MetaCost>,
    /// The Messaging account its send or its statuses named.
    messaging_account: Option<Box<str>>,
}

impl DeliveredMessage {
    pub(crate) fn new(
        id: Arc<str>,
        template: Option<Arc<Template>>,
        (sent_at, origin): (Timestamp, Origin),
        by_agent: bool,
        meta_cost: Option<MetaCost>,
        messaging_account: Option<Box<str>>,
    ) -> DeliveredMessage {
        let rare = (meta_cost.is_some() || messaging_account.is_some()).then(|| {
            Box::new(RareDelivery {
                meta_cost,
                messaging_account,
            })
        });
        DeliveredMessage {
            id,
            template,
            sent_at,
            origin,
            by_agent,
            rare,
        }
    }

    /// Meta's `pricing.cost` on its delivery, if a status carried one.
    pub(crate) fn meta_cost(&self) -> Option<&MetaCost> {
        self.rare.as_ref()?.meta_cost.as_ref()
    }

    /// The Messaging account its send or its statuses named.
    pub(crate) fn messaging_account(&self) -> Option<&str> {
        self.rare.as_ref()?.messaging_account.as_deref()
    }
}

/// One thing in a pair's timeline: an inbound message (or a call that
/// opens the window), or a delivery with its message.
///
/// 24 bytes: the instant as its second and nanosecond, not a [`Timestamp`]
/// (whose padding made an enum of the two kinds 32). A timeline item is
/// made for every inbound and delivery of a log, and held twice while the
/// timelines are built: each 8 bytes were 28 MB of a 10 M-event replay's
/// peak (docs/PERFORMANCE.md).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Item {
    second: i64,
    nanosecond: i32,
    /// An inbound that may open a free entry point.
    entry_point: bool,
    /// `Some` for a delivery.
    message: Option<Box<DeliveredMessage>>,
}

impl Item {
    /// An inbound message at `at`; `entry_point` if it may open a free
    /// entry point.
    pub(crate) fn inbound(at: Timestamp, entry_point: bool) -> Item {
        Item {
            second: at.as_second(),
            nanosecond: at.subsec_nanosecond(),
            entry_point,
            message: None,
        }
    }

    /// The delivery of `message` at `at`.
    pub(crate) fn delivery(at: Timestamp, message: Box<DeliveredMessage>) -> Item {
        Item {
            second: at.as_second(),
            nanosecond: at.subsec_nanosecond(),
            entry_point: false,
            message: Some(message),
        }
    }

    /// When it happened (an inbound) or was delivered. Made from a
    /// [`Timestamp`]'s own parts, so never the fallback.
    pub(crate) fn at(&self) -> Timestamp {
        Timestamp::new(self.second, self.nanosecond).unwrap_or_default()
    }

    /// The delivered message, for a delivery.
    pub(crate) fn message(&self) -> Option<&DeliveredMessage> {
        self.message.as_deref()
    }

    /// Whether it is an inbound that may open a free entry point.
    pub(crate) fn entry_point(&self) -> bool {
        self.entry_point
    }

    /// Where it goes in its timeline: by instant, an inbound before a
    /// delivery, deliveries by wamid.
    pub(crate) fn sort_key(&self) -> (Timestamp, u8, &str) {
        match self.message() {
            None => (self.at(), 0, ""),
            Some(message) => (self.at(), 1, &message.id),
        }
    }

    /// The first two parts of its [`Item::sort_key`], read without
    /// reaching into a delivery's boxed message: the instant as its second
    /// and nanosecond, which order as the instants do (jiff keeps a
    /// negative instant's nanosecond negative too).
    fn instant_and_kind(&self) -> (i64, i32, bool) {
        (self.second, self.nanosecond, self.message.is_some())
    }
}

/// Everything that happened between one business phone number and one user,
/// in time order.
#[derive(Clone, Debug)]
pub struct ContactTimeline {
    /// Business phone number id.
    pub business: Arc<str>,
    /// The user.
    pub user: UserId,
    pub(crate) items: Vec<Item>,
}

impl ContactTimeline {
    /// How many of its items are deliveries: at most one charge each.
    fn deliveries(&self) -> usize {
        self.items
            .iter()
            .filter(|item| item.message().is_some())
            .count()
    }
}

/// Counts from [`prepare`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrepareStats {
    /// Events read.
    pub events: u64,
    /// Events dropped as exact duplicates (lines, inbound ids, statuses).
    pub duplicates: u64,
    /// Outbound messages with a delivery.
    pub delivered: u64,
    /// Outbound messages that failed and were never delivered.
    pub failed: u64,
    /// Outbound messages with no delivery status (yet).
    pub undelivered: u64,
}

impl std::ops::AddAssign<&PrepareStats> for PrepareStats {
    /// Adds every count of `other` (a part's, or the messages' kept by the
    /// incremental meter) to these.
    fn add_assign(&mut self, other: &PrepareStats) {
        self.events += other.events;
        self.duplicates += other.duplicates;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.undelivered += other.undelivered;
    }
}

/// The output of [`prepare`].
#[derive(Clone, Debug)]
pub struct Prepared {
    /// One timeline per (business phone number, user), sorted by that pair.
    pub contacts: Vec<ContactTimeline>,
    /// Problems found while preparing.
    pub warnings: Vec<Warning>,
    /// Counts.
    pub stats: PrepareStats,
    /// Every call read (copies included: [`rules::calling::price`] keeps
    /// one of each), in input order.
    pub calls: Vec<TimedCall>,
    /// Every Meta Business Agent usage read, in input order.
    pub agent: Vec<TimedUsage>,
}

/// What a message's statuses say, folded as they are read: 64 bytes, one
/// for every message of a log (they were 160, then 80: every 16 bytes are
/// 38 MB of a 10 M-event replay's peak). The first `delivered` and `read`
/// are found among the statuses seen rather than kept twice, and a
/// failure, which few messages have, is kept with the other rare parts.
#[cfg_attr(test, derive(PartialEq, Debug))]
pub(crate) struct StatusSummary {
    /// (status, instant) pairs read: an exact repeat (a redelivered
    /// webhook) is a duplicate. Kept here rather than in a set of its own,
    /// which cost a copy of the wamid and a second hash per status; inline
    /// for a message's usual sent, delivered and read, so that most
    /// messages allocate nothing for them. An outcome
    /// ([`StatusSummary::outcome`], [`StatusSummary::merged`]) keeps only
    /// the first `delivered` and the first `read`.
    pub(crate) seen: smallvec::SmallVec<[SeenStatus; 3]>,
    /// The least position of a status read; [`NO_ORIGIN`] before the
    /// first. A position, not an `Option` of one: 4 bytes fewer, and the
    /// least of it and any position read is that position.
    least_origin: Origin,
    /// What few statuses say besides their status, and a failure. Boxed:
    /// every summary of a large log pays for the field (5 % of a replay's
    /// memory unboxed).
    extra: Option<Box<StatusExtra>>,
}

/// A summary's position before it has read a status: after every position
/// a log can give (it would be line 4,294,967,295 of the 4,294,967,296th
/// file).
const NO_ORIGIN: Origin = Origin {
    source: u32::MAX,
    line: u32::MAX,
};

impl Default for StatusSummary {
    fn default() -> Self {
        StatusSummary {
            seen: Default::default(),
            least_origin: NO_ORIGIN,
            extra: None,
        }
    }
}

/// A status read, as a summary keeps it to know a repeat: its status and
/// instant in 12 bytes (a `(DeliveryStatus, Timestamp)` pair is 24, and a
/// large log has millions), three of them inline in a summary. The status
/// rides in the low two bits of the instant's second, shifted left: jiff's
/// seconds take 40 bits. Halves of 4 bytes, not one `i64`: the alignment of
/// 8 made each 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SeenStatus {
    second_and_status: [u32; 2],
    nanosecond: i32,
}

impl SeenStatus {
    fn new(status: DeliveryStatus, at: Timestamp) -> SeenStatus {
        let status = match status {
            DeliveryStatus::Sent => 0,
            DeliveryStatus::Delivered => 1,
            DeliveryStatus::Read => 2,
            DeliveryStatus::Failed => 3,
        };
        // |second| < 2^39 (jiff's range), so shifting it by two loses nothing.
        let word = (at.as_second() << 2) | status;
        SeenStatus {
            second_and_status: [word as u32, (word >> 32) as u32],
            nanosecond: at.subsec_nanosecond(),
        }
    }

    fn word(&self) -> i64 {
        let [low, high] = self.second_and_status;
        ((u64::from(high) << 32) | u64::from(low)) as i64
    }

    /// Its status.
    fn status(&self) -> DeliveryStatus {
        match self.word() & 3 {
            0 => DeliveryStatus::Sent,
            1 => DeliveryStatus::Delivered,
            2 => DeliveryStatus::Read,
            _ => DeliveryStatus::Failed,
        }
    }

    /// Its instant. Made from a [`Timestamp`]'s own parts, so always one.
    fn at(&self) -> Option<Timestamp> {
        Timestamp::new(self.word() >> 2, self.nanosecond).ok()
    }
}

/// Of a message's statuses: Meta's `pricing.cost`, the Messaging account
/// they name, and the failure.
#[derive(Clone, Default)]
#[cfg_attr(test, derive(PartialEq, Debug))]
struct StatusExtra {
    /// The cost of the earliest `delivered` or `read` status that carried
    /// one, by (instant, origin).
    cost: Option<(Timestamp, Origin, MetaCost)>,
    /// The Messaging account the statuses name (the least id, should two
    /// differ), whatever the order they came in.
    messaging_account: Option<Box<str>>,
    /// The `failed` status read last: its error code and position.
    failed: Option<(Option<i64>, Origin)>,
}

impl StatusExtra {
    /// Both, as if read into one: the earlier cost, the least account, the
    /// later failure.
    fn merged(a: Option<&StatusExtra>, b: Option<&StatusExtra>) -> Option<Box<StatusExtra>> {
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            (a, b) => return a.or(b).cloned().map(Box::new),
        };
        let cost = match (a.cost, b.cost) {
            (Some(x), Some(y)) => Some(if (y.0, y.1) < (x.0, x.1) { y } else { x }),
            (x, y) => x.or(y),
        };
        let messaging_account = match (&a.messaging_account, &b.messaging_account) {
            (Some(x), Some(y)) => Some(x.min(y).clone()),
            (x, y) => x.clone().or_else(|| y.clone()),
        };
        Some(Box::new(StatusExtra {
            cost,
            messaging_account,
            failed: later_failure(a.failed, b.failed),
        }))
    }
}

/// One status as a summary takes it in ([`StatusSummary::record`]): what
/// the paths that read statuses (a replay's `resolve`, the folding of a
/// log, the incremental meter) each hand over.
#[derive(Clone, Copy)]
pub(crate) struct StatusRead<'a> {
    pub(crate) status: DeliveryStatus,
    pub(crate) error: Option<i64>,
    pub(crate) at: Timestamp,
    pub(crate) origin: Origin,
    /// Meta's cost, kept only from a `delivered` or `read`.
    pub(crate) cost: Option<MetaCost>,
    pub(crate) messaging_account: Option<&'a str>,
}

impl<'a> StatusRead<'a> {
    /// A status event's fields, with what its detail says.
    fn new(
        (at, origin): (Timestamp, Origin),
        status: DeliveryStatus,
        error: Option<i64>,
        detail: Option<&'a StatusDetail>,
    ) -> Self {
        StatusRead {
            status,
            error,
            at,
            origin,
            cost: detail.and_then(|d| d.pricing.as_ref()).and_then(|p| p.cost),
            messaging_account: detail.and_then(|d| d.messaging_account.as_deref()),
        }
    }
}

impl StatusSummary {
    /// Takes one status in; `false` when it is an exact repeat.
    pub(crate) fn record(&mut self, read: StatusRead<'_>) -> bool {
        let StatusRead {
            status,
            error,
            at,
            origin,
            cost,
            messaging_account,
        } = read;
        let seen = SeenStatus::new(status, at);
        if self.seen.contains(&seen) {
            return false;
        }
        self.seen.push(seen);
        let cost = cost
            .filter(|_| matches!(status, DeliveryStatus::Delivered | DeliveryStatus::Read))
            .map(|cost| (at, origin, cost));
        // The last in the log, whatever order they are taken in.
        let failed = (status == DeliveryStatus::Failed).then_some((error, origin));
        if cost.is_some() || messaging_account.is_some() || failed.is_some() {
            let read = StatusExtra {
                cost,
                messaging_account: messaging_account.map(Box::from),
                failed,
            };
            self.extra = StatusExtra::merged(self.extra.as_deref(), Some(&read));
        }
        self.least_origin = self.least_origin.min(origin);
        true
    }

    /// The least position of a status read, if it read one.
    pub(crate) fn origin(&self) -> Option<Origin> {
        (self.least_origin != NO_ORIGIN).then_some(self.least_origin)
    }

    /// The earliest instant of a `status` seen.
    fn first(&self, status: DeliveryStatus) -> Option<Timestamp> {
        self.seen
            .iter()
            .filter(|seen| seen.status() == status)
            .filter_map(SeenStatus::at)
            .min()
    }

    /// The charging instant (decision D3): the first `delivered`, else the
    /// first `read`.
    pub(crate) fn delivered_at(&self) -> Option<Timestamp> {
        self.first(DeliveryStatus::Delivered)
            .or_else(|| self.first(DeliveryStatus::Read))
    }

    /// The `failed` status read last, if any: its error code and position.
    pub(crate) fn failed(&self) -> Option<(Option<i64>, Origin)> {
        self.extra.as_ref().and_then(|extra| extra.failed)
    }

    /// What the message's fate needs of it: of the statuses seen, only the
    /// first `delivered` and the first `read`.
    pub(crate) fn outcome(&self) -> StatusSummary {
        StatusSummary {
            extra: self.extra.clone(),
            ..Self::firsts(self, self)
        }
    }

    /// An outcome of `a`'s and `b`'s statuses together, but for `extra`:
    /// the first `delivered` and `read` of both, the least origin.
    fn firsts(a: &StatusSummary, b: &StatusSummary) -> StatusSummary {
        let earliest = |status| match (a.first(status), b.first(status)) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let seen = [DeliveryStatus::Delivered, DeliveryStatus::Read]
            .into_iter()
            .filter_map(|status| Some(SeenStatus::new(status, earliest(status)?)))
            .collect();
        StatusSummary {
            seen,
            least_origin: a.least_origin.min(b.least_origin),
            extra: None,
        }
    }

    /// Meta's cost for the message, if a delivery status said it.
    pub(crate) fn meta_cost(&self) -> Option<MetaCost> {
        self.extra
            .as_ref()
            .and_then(|extra| extra.cost)
            .map(|cost| cost.2)
    }

    /// The Messaging account the statuses name, if any does.
    pub(crate) fn messaging_account(&self) -> Option<&str> {
        self.extra
            .as_ref()
            .and_then(|extra| extra.messaging_account.as_deref())
    }

    /// The statuses of both summaries, as if read into one (an outcome).
    pub(crate) fn merged(&self, other: &StatusSummary) -> StatusSummary {
        StatusSummary {
            extra: StatusExtra::merged(self.extra.as_deref(), other.extra.as_deref()),
            ..Self::firsts(self, other)
        }
    }
}

/// Of two summaries' failures, the one read last, as one summary keeps it:
/// the later origin.
pub(crate) fn later_failure(
    a: Option<(Option<i64>, Origin)>,
    b: Option<(Option<i64>, Origin)>,
) -> Option<(Option<i64>, Origin)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.1 >= b.1 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The statuses of one part of [`prepare_in`] that name no business (plain
/// canonical lines, `gen`'s and reports'), one summary per wamid: such a
/// status stands for the message of its wamid whichever business sent it.
///
/// They are most of a log's lines, and a summary is all a replay keeps of
/// them, so `wameter replay` folds them in as it reads the log
/// ([`FoldedStatuses`]) rather than holding them as events. [`prepare_in`]
/// folds those it reads among its events into the same table, so a status
/// is counted, and a repeat dropped, the same way whichever path it took.
pub struct UnownedStatuses<'k> {
    /// Dense (the summaries in one vector, the table holding indices): a
    /// table holding the summaries in its slots left half of them slack
    /// and moved them all each time it grew.
    summaries: indexmap::IndexMap<Cow<'k, str>, StatusSummary, foldhash::fast::RandomState>,
    /// Statuses taken in, repeats included.
    read: u64,
    /// Exact repeats dropped.
    duplicates: u64,
}

impl<'k> UnownedStatuses<'k> {
    fn new() -> Self {
        UnownedStatuses {
            summaries: Default::default(),
            read: 0,
            duplicates: 0,
        }
    }

    /// Takes one status in. Its wamid is copied (if borrowed) for the first
    /// status of a message only.
    pub fn fold(&mut self, status: UnownedStatus<'_>) {
        let read = StatusRead::new(
            (status.at, status.origin),
            status.status,
            status.error,
            status.detail.as_deref(),
        );
        self.record(status.id, read, |id| Cow::Owned(id.into_owned()));
    }

    /// Takes statuses in, in their order, as [`UnownedStatuses::fold`]
    /// does one by one. Each batch's wamids are looked up first, every
    /// lookup on its own, and the statuses then recorded in order: a
    /// lookup waits on the table's memory (a cache miss per status on a
    /// large log, most of folding's time), and lookups that do not wait on
    /// one another wait together. A status whose wamid was not found (new,
    /// or made by an earlier status of the batch) is recorded as `fold`
    /// records it, its table slots now in cache.
    pub fn fold_all<'i>(&mut self, statuses: impl IntoIterator<Item = UnownedStatus<'i>>) {
        use indexmap::map::RawEntryApiV1;
        use std::hash::BuildHasher;
        const BATCH: usize = 16;
        let mut statuses = statuses.into_iter();
        let mut batch: Vec<(UnownedStatus<'i>, u64, Option<usize>)> = Vec::with_capacity(BATCH);
        loop {
            batch.extend(statuses.by_ref().take(BATCH).map(|status| {
                let hash = self.summaries.hasher().hash_one(&*status.id);
                (status, hash, None)
            }));
            if batch.is_empty() {
                return;
            }
            for (status, hash, found) in &mut batch {
                *found = self
                    .summaries
                    .raw_entry_v1()
                    .index_from_hash(*hash, |key| **key == *status.id);
            }
            for (status, hash, found) in batch.drain(..) {
                let read = StatusRead::new(
                    (status.at, status.origin),
                    status.status,
                    status.error,
                    status.detail.as_deref(),
                );
                self.record_hashed(status.id, hash, found, read, |id| {
                    Cow::Owned(id.into_owned())
                });
            }
        }
    }

    /// Records one status of wamid `id`; `key` makes the table's key of it
    /// when the wamid is new.
    fn record<'i>(
        &mut self,
        id: Cow<'i, str>,
        read: StatusRead<'_>,
        key: impl FnOnce(Cow<'i, str>) -> Cow<'k, str>,
    ) {
        use std::hash::BuildHasher;
        let hash = self.summaries.hasher().hash_one(&*id);
        self.record_hashed(id, hash, None, read, key);
    }

    /// [`UnownedStatuses::record`] of a wamid whose `hash` is known, and
    /// its summary's index when a lookup already `found` it.
    fn record_hashed<'i>(
        &mut self,
        id: Cow<'i, str>,
        hash: u64,
        found: Option<usize>,
        read: StatusRead<'_>,
        key: impl FnOnce(Cow<'i, str>) -> Cow<'k, str>,
    ) {
        use indexmap::map::{RawEntryApiV1, raw_entry_v1::RawEntryMut};
        self.read += 1;
        // Looked up by text, hashed once: the key is made only for a new
        // wamid (looking it up, then making an entry for it, hashed a new
        // wamid twice).
        let summary = match found {
            // The table only grows: an index found stays its wamid's.
            Some(index) if index < self.summaries.len() => &mut self.summaries[index],
            _ => match self
                .summaries
                .raw_entry_mut_v1()
                .from_key_hashed_nocheck(hash, &*id)
            {
                RawEntryMut::Occupied(entry) => entry.into_mut(),
                RawEntryMut::Vacant(entry) => {
                    entry
                        .insert_hashed_nocheck(hash, key(id), StatusSummary::default())
                        .1
                }
            },
        };
        if !summary.record(read) {
            self.duplicates += 1;
        }
    }

    /// The summary at `index`, in the order the wamids were first read.
    fn at(&self, index: usize) -> Option<&StatusSummary> {
        self.summaries.get_index(index).map(|(_, summary)| summary)
    }
}

/// Statuses naming no business, folded in as a log is read and dealt out
/// by wamid into the parts [`prepare_folded`] will prepare on (see
/// [`UnownedStatuses`]).
pub struct FoldedStatuses {
    parts: Vec<UnownedStatuses<'static>>,
}

impl FoldedStatuses {
    /// Empty, for a log of about `events` events: one part per core for a
    /// large log, as [`prepare`] would use.
    pub fn for_events(events: usize) -> FoldedStatuses {
        Self::in_parts(parts_for(events, PREPARE_IN_PARALLEL_FROM))
    }

    /// Empty, in `parts` parts (1 to 64).
    pub fn in_parts(parts: usize) -> FoldedStatuses {
        FoldedStatuses {
            parts: (0..parts.clamp(1, 64))
                .map(|_| UnownedStatuses::new())
                .collect(),
        }
    }

    /// How many parts.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The part that keeps the statuses of wamid `id`.
    pub fn part_of(&self, id: &str) -> usize {
        part_of(id, self.parts.len())
    }

    /// The parts, to fold into (each on its own thread, if wished).
    pub fn parts_mut(&mut self) -> &mut [UnownedStatuses<'static>] {
        &mut self.parts
    }

    /// Statuses taken in so far, repeats included.
    pub fn read(&self) -> u64 {
        self.parts.iter().map(|part| part.read).sum()
    }

    /// Messages (distinct wamids) whose statuses were taken in so far.
    pub fn messages(&self) -> usize {
        self.parts.iter().map(|part| part.summaries.len()).sum()
    }

    /// Makes room for `messages` messages in all, dealt evenly (with an
    /// eighth to spare) between the parts: a table grown by doubling moved
    /// every summary it held each time (a twentieth of a replay's time).
    pub fn reserve(&mut self, messages: usize) {
        let parts = self.parts.len();
        let each = messages / parts + messages / parts / 8;
        for part in &mut self.parts {
            part.summaries
                .reserve(each.saturating_sub(part.summaries.len()));
        }
    }
}

/// An outbound message as [`resolve`] keeps it: its event, read in place
/// (a copy of its fields made a message record 40 bytes larger), and the
/// copy of it read at the earliest instant and position, when that is
/// another (a copy of those made every record 16 bytes larger).
struct OutboundSeen<'e> {
    event: &'e Event,
    earliest: Option<&'e Event>,
}

impl OutboundSeen<'_> {
    /// The earliest instant and position the message was read at.
    fn at_and_origin(&self) -> (Timestamp, Origin) {
        let earliest = self.earliest.unwrap_or(self.event);
        (earliest.at, earliest.origin)
    }
}

/// An outbound event's fields: business, user, template, Messaging
/// account, wamid.
type OutboundFields<'e> = (
    &'e str,
    &'e UserId,
    &'e Option<Arc<Template>>,
    &'e Option<Box<str>>,
    &'e Arc<str>,
);

/// The fields of an outbound event; `None` for any other kind (only
/// outbound events are kept as outbound messages).
fn outbound_fields(event: &Event) -> Option<OutboundFields<'_>> {
    match &event.kind {
        EventKind::Outbound {
            business,
            user,
            template,
            messaging_account,
            id,
        } => Some((business, user, template, messaging_account, id)),
        _ => None,
    }
}

/// [`intern`] of a spelling the caller does not own: the key is copied
/// only for a business not seen before.
pub(crate) fn intern_text(pool: &mut HashMap<Box<str>, Arc<str>>, text: &str) -> Arc<str> {
    if let Some(shared) = pool.get(text) {
        return shared.clone();
    }
    intern(pool, Box::from(text))
}

/// One shared copy of each business id, keyed by an owned or a borrowed
/// spelling: timelines and the states that outlive their events name their
/// business by it.
pub(crate) fn intern<K>(pool: &mut HashMap<K, Arc<str>>, text: K) -> Arc<str>
where
    K: std::borrow::Borrow<str> + std::hash::Hash + Eq,
{
    if let Some(shared) = pool.get(text.borrow()) {
        return shared.clone();
    }
    let shared: Arc<str> = Arc::from(text.borrow());
    pool.insert(text, shared.clone());
    shared
}

/// What [`resolve`] learns of one message, a (business phone number,
/// wamid) pair: two businesses' messages never share one, whatever their
/// ids, so one tenant's events cannot stand for another's (decision D17:
/// docs/rules.md).
#[derive(Default)]
struct MessageSeen<'e> {
    /// The wamid.
    id: &'e str,
    /// The business; `None` until an outbound or a status names it.
    business: Option<&'e str>,
    /// The record of the first business seen with this wamid (this one's
    /// own index if it is it).
    first: u32,
    /// The outbound event kept (the first read), with its input position.
    outbound: Option<(usize, OutboundSeen<'e>)>,
    /// Statuses naming this business (Meta's webhooks). Boxed: most logs
    /// have statuses naming none ([`UnownedStatuses`]), and inline the
    /// summary made every record 150 bytes larger.
    statuses: Option<Box<StatusSummary>>,
    /// First records only: some business sent a message with this wamid.
    sent: bool,
}

/// Every message of a part, in the order first seen. One table finds a
/// wamid's first record, another the rare second business using the same
/// wamid; the records themselves sit in one vector, so a message's events,
/// which come close together, find it in cache.
#[derive(Default)]
struct Messages<'e> {
    /// Each wamid's first record, by its index alone: the table compares
    /// the record's wamid. Keyed by the wamid (`&str` and index, 24 bytes a
    /// slot) it was 24 MB of fresh memory for 2 M events; 4 bytes a slot,
    /// it is a sixth of that.
    ids: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    others: HashMap<(&'e str, &'e str), u32>,
    seen: Vec<MessageSeen<'e>>,
}

impl<'e> Messages<'e> {
    fn with_capacity(messages: usize) -> Self {
        Messages {
            ids: hashbrown::HashTable::with_capacity(messages),
            hasher: Default::default(),
            others: HashMap::default(),
            seen: Vec::with_capacity(messages),
        }
    }

    /// A new record: a wamid's first, or `business`'s beside its `first`.
    fn push(seen: &mut Vec<MessageSeen<'e>>, id: &'e str, other: Option<(&'e str, u32)>) -> u32 {
        let index = seen.len() as u32;
        seen.push(MessageSeen {
            id,
            business: other.map(|(business, _)| business),
            first: other.map_or(index, |(_, first)| first),
            ..MessageSeen::default()
        });
        index
    }

    /// The index of wamid `id`'s first record, if it has one.
    fn first_of(&self, id: &str) -> Option<u32> {
        use std::hash::BuildHasher;
        let seen = &self.seen;
        self.ids
            .find(self.hasher.hash_one(id), |&index| {
                seen[index as usize].id == id
            })
            .copied()
    }

    /// The index of wamid `id`'s first record, made if it is new.
    fn first_index(&mut self, id: &'e str) -> u32 {
        use hashbrown::hash_table::Entry;
        use std::hash::BuildHasher;
        let Messages {
            ids, hasher, seen, ..
        } = self;
        let entry = ids.entry(
            hasher.hash_one(id),
            |&index| seen[index as usize].id == id,
            |&index| hasher.hash_one(seen[index as usize].id),
        );
        match entry {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => *entry.insert(Self::push(seen, id, None)).get(),
        }
    }

    /// The record of `business`'s message `id`.
    fn of(&mut self, business: &'e str, id: &'e str) -> &mut MessageSeen<'e> {
        let first = self.first_index(id);
        let index = match self.seen[first as usize].business {
            None => {
                self.seen[first as usize].business = Some(business);
                first
            }
            Some(kept) if kept == business => first,
            Some(_) => {
                let seen = &mut self.seen;
                *self
                    .others
                    .entry((business, id))
                    .or_insert_with(|| Self::push(seen, id, Some((business, first))))
            }
        };
        &mut self.seen[index as usize]
    }
}

/// An outbound message read twice, differently.
pub(crate) fn conflicting_outbound(id: &str, business: &str, origin: Origin) -> Warning {
    Warning {
        code: "conflicting_outbound",
        message: format!(
            "outbound message {id} of business {business} appears twice with different user or template; the first one read is kept"
        ),
        origin: Some(origin),
    }
}

/// A status whose message was never sent (as far as the log says).
pub(crate) fn unknown_status(origin: Origin, id: &str, business: Option<&str>) -> Warning {
    let message = match business {
        None => format!("status for message {id}, which has no outbound event in the log; ignored"),
        Some(business) => format!(
            "status for message {id} of business {business}, which has no outbound event in the log; ignored"
        ),
    };
    Warning {
        code: "unknown_status_id",
        message,
        origin: Some(origin),
    }
}

/// A message both failed and delivered.
pub(crate) fn failed_after_delivery(id: &str, error: Option<i64>, origin: Origin) -> Warning {
    Warning {
        code: "failed_after_delivery",
        message: format!(
            "message {id} has a `failed` status{} and a delivery; counted as delivered",
            error.map(|e| format!(" ({e})")).unwrap_or_default()
        ),
        origin: Some(origin),
    }
}

/// Stage 1: deduplicate, resolve deliveries, build per-pair timelines.
///
/// A status is matched to its outbound message by wamid *and* business:
/// a status naming business A is never counted for business B's message of
/// the same id (it is reported as a status for an unknown message). A
/// status that names no business (a plain canonical line) is matched by
/// wamid alone, to the message of that id whichever business sent it.
///
/// Large logs are prepared on every core ([`prepare_in`]); the result is
/// the same whatever the number of threads.
pub fn prepare(events: Vec<Event>) -> Prepared {
    prepare_shared(&events)
}

/// [`prepare`] of events the caller keeps: owned (`&[Event]`) or shared
/// (`&[Arc<Event>]`, what the guard holds in memory between sends, so a
/// send prices its pair without copying the pair's events).
pub fn prepare_shared<E: Borrow<Event> + Sync>(events: &[E]) -> Prepared {
    let parts = parts_for(events.len(), PREPARE_IN_PARALLEL_FROM);
    prepare_in(events, parts)
}

/// Below this many events, threads cost more than they save.
const PREPARE_IN_PARALLEL_FROM: usize = 100_000;

/// [`prepare`] on `parts` threads. Everything one message's events decide
/// (duplicates, delivery, warnings) is decided by one thread: events are
/// dealt out by wamid, in input order. The deliveries and inbound messages
/// found are then dealt out again by (business phone number, user), and each
/// thread builds its pairs' timelines. The output does not depend on `parts`
/// (a property test holds it to `parts = 1`).
pub fn prepare_in<E: Borrow<Event> + Sync>(events: &[E], parts: usize) -> Prepared {
    let parts = parts.clamp(1, 64);
    prepare_parts(events, (0..parts).map(|_| UnownedStatuses::new()).collect())
}

/// [`prepare`] of `events` and the statuses naming no business that were
/// folded in as they were read (`wameter replay`): the same as preparing
/// the events with those statuses among them.
pub fn prepare_folded<E: Borrow<Event> + Sync>(events: &[E], folded: FoldedStatuses) -> Prepared {
    prepare_parts(events, folded.parts)
}

/// [`prepare_in`] on as many parts as `unowned` has, each starting from its
/// statuses naming no business.
fn prepare_parts<'e, E: Borrow<Event> + Sync>(
    events: &'e [E],
    unowned: Vec<UnownedStatuses<'e>>,
) -> Prepared {
    let parts = unowned.len();
    let events_read = events.len() as u64 + unowned.iter().map(|part| part.read).sum::<u64>();
    // Each thread reads the events in place and keeps those of its
    // messages: dealing them out by value moved every event once more, a
    // quarter of the step on a large log.
    let inputs = unowned.into_iter().enumerate().collect();
    let resolved: Vec<Resolved> = on_threads(inputs, |(part, unowned)| {
        let mut sizes = Sizes::default();
        let mine: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, event)| parts == 1 || message_part((*event).borrow(), parts) == part)
            .map(|(seq, event)| {
                sizes.count(event.borrow());
                seq
            })
            .collect();
        resolve(
            mine.into_iter().map(|seq| (seq, events[seq].borrow())),
            sizes,
            parts,
            unowned,
        )
    });

    let mut stats = PrepareStats {
        events: events_read,
        ..PrepareStats::default()
    };
    let mut warnings = Vec::new();
    let mut calls: Vec<(usize, TimedCall)> = Vec::new();
    let mut agent: Vec<(usize, TimedUsage)> = Vec::new();
    // A business-scoped id's country: the first event that gave one.
    let mut countries: HashMap<&str, (usize, Country)> = HashMap::default();
    let mut by_contact: Vec<Vec<Vec<Placed<'e>>>> =
        (0..parts).map(|_| Vec::with_capacity(parts)).collect();
    // Every part's business numbers, renumbered in one list.
    let mut numbering = Numbering::default();
    let mut renumbered: Vec<Vec<u32>> = Vec::with_capacity(parts);
    for part in resolved {
        renumbered.push(
            part.businesses
                .iter()
                .map(|business| numbering.number(business))
                .collect(),
        );
        // A part reads no events of its own: `events` is counted above.
        stats += &part.stats;
        warnings.extend(part.warnings);
        calls.extend(part.calls);
        agent.extend(part.agent);
        for (id, (seq, country)) in part.countries {
            match countries.get_mut(id) {
                Some(kept) if kept.0 <= seq => {}
                Some(kept) => *kept = (seq, country),
                None => {
                    countries.insert(id, (seq, country));
                }
            }
        }
        for (to, items) in by_contact.iter_mut().zip(part.items) {
            to.push(items);
        }
    }
    let businesses = numbering.names;
    let mut contacts: Vec<ContactTimeline> = if parts == 1 {
        by_contact
            .into_iter()
            .flat_map(|items| timelines(items, &renumbered, &businesses, &countries))
            .collect()
    } else {
        on_threads(by_contact, |items| {
            timelines(items, &renumbered, &businesses, &countries)
        })
        .into_iter()
        .flatten()
        .collect()
    };
    // Each pair is in one part only, so no two keys are equal.
    sort_pairs(&mut contacts);
    sort_warnings(&mut warnings);
    calls.sort_unstable_by_key(|(seq, _)| *seq);
    let calls = calls.into_iter().map(|(_, call)| call).collect();
    agent.sort_unstable_by_key(|(seq, _)| *seq);
    let agent = agent.into_iter().map(|(_, usage)| usage).collect();
    Prepared {
        contacts,
        warnings,
        stats,
        calls,
        agent,
    }
}

/// Numbers for a few strings (business numbers), in the order each was
/// first given: a table to find a string's number, and the strings by
/// number.
#[derive(Default)]
struct Numbering<'a> {
    numbers: HashMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> Numbering<'a> {
    /// `name`'s number: the next one if it is new.
    fn number(&mut self, name: &'a str) -> u32 {
        let names = &mut self.names;
        *self.numbers.entry(name).or_insert_with(|| {
            names.push(name);
            names.len() as u32 - 1
        })
    }
}

/// Sorts timelines by pair, business then user, as comparing the pairs
/// would, but on compact keys: the business's rank among the few
/// businesses, the user's kind and first 16 bytes as integers. Comparing
/// the pairs reached into four shared strings a comparison: 70 ms of a
/// 2 M-event replay, on one thread, for 223,000 pairs. A key looks at the
/// users' strings only when two share their first 16 bytes.
fn sort_pairs(contacts: &mut [ContactTimeline]) {
    // Each business's number in order of first appearance, then its rank.
    let mut numbering = Numbering::default();
    let first_seen: Vec<u32> = contacts
        .iter()
        .map(|contact| numbering.number(&contact.business))
        .collect();
    let mut names: Vec<(&str, u32)> = numbering.names.into_iter().zip(0..).collect();
    names.sort_unstable();
    let mut rank_of = vec![0u32; names.len()];
    for (rank, (_, number)) in names.into_iter().enumerate() {
        if let Some(slot) = rank_of.get_mut(number as usize) {
            *slot = rank as u32;
        }
    }
    let mut keys: Vec<(u32, u8, u64, u64, u32)> = contacts
        .iter()
        .zip(first_seen)
        .enumerate()
        .map(|(index, (contact, number))| {
            let (kind, text) = contact.user.key();
            let mut prefix = [0u8; 16];
            for (slot, byte) in prefix.iter_mut().zip(text.bytes()) {
                *slot = byte;
            }
            let [high, low] = [&prefix[..8], &prefix[8..]]
                .map(|half| u64::from_be_bytes(half.try_into().unwrap_or_default()));
            let rank = rank_of.get(number as usize).copied().unwrap_or_default();
            (rank, kind, high, low, index as u32)
        })
        .collect();
    // Zero-padded big-endian bytes order as the strings do, except that a
    // string and its extension by zero bytes tie: the users then decide.
    keys.sort_unstable_by(|a, b| {
        (a.0, a.1, a.2, a.3)
            .cmp(&(b.0, b.1, b.2, b.3))
            .then_with(|| {
                let user = |key: &(u32, u8, u64, u64, u32)| &contacts[key.4 as usize].user;
                user(a).cmp(user(b))
            })
    });
    permute(contacts, keys.into_iter().map(|key| key.4).collect());
}

/// Puts `items[order[i]]` at `i` for every `i`, moving each item by
/// swaps along the cycles of `order` (a permutation of the positions).
fn permute<T>(items: &mut [T], mut order: Vec<u32>) {
    for start in 0..items.len() {
        let mut at = start;
        loop {
            let from = order[at] as usize;
            order[at] = at as u32;
            // `from == at` ends a cycle only if `order` repeats a position
            // (never, as built here): then the loop ends rather than spins.
            if from == start || from == at {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

/// [`permute`] for slots: each item is moved once, into the hole the
/// previous one left, where a swap moves two items through a third place.
/// Settling puts half a million 232-byte charges in order this way.
fn permute_slots<T>(items: &mut [Option<T>], mut order: Vec<u32>) {
    for start in 0..items.len() {
        let mut at = start;
        let held = items[start].take();
        loop {
            let from = order[at] as usize;
            order[at] = at as u32;
            // As in `permute`: `from == at` ends a cycle only if `order`
            // repeats a position.
            if from == start || from == at {
                items[at] = held;
                break;
            }
            items[at] = items[from].take();
            at = from;
        }
    }
}

/// How many threads `items` deserve: one below `from`, else every core.
fn parts_for(items: usize, from: usize) -> usize {
    if items < from {
        1
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// Runs `work` on each input, one thread each (the first on this thread),
/// and returns the outputs in input order.
fn on_threads<I: Send, O: Send>(inputs: Vec<I>, work: impl Fn(I) -> O + Sync) -> Vec<O> {
    let work = &work;
    std::thread::scope(|scope| {
        let mut inputs = inputs.into_iter();
        let first = inputs.next();
        let handles: Vec<_> = inputs
            .map(|input| scope.spawn(move || work(input)))
            .collect();
        let mut outputs = Vec::with_capacity(handles.len() + 1);
        outputs.extend(first.map(work));
        for handle in handles {
            match handle.join() {
                Ok(output) => outputs.push(output),
                // The work does not panic; if it ever did, the caller's
                // thread carries the panic on, as if it had run there.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        outputs
    })
}

/// Deals partitions out by hash: fixed seed, so a run is reproducible
/// (the output would not change with another seed, only the work split).
fn part_of(key: &(impl std::hash::Hash + ?Sized), parts: usize) -> usize {
    use std::hash::BuildHasher;
    (foldhash::fast::FixedState::with_seed(0x77616d65).hash_one(key) % parts as u64) as usize
}

/// The part deciding an event: its message's wamid. An inbound message
/// without a wamid is a duplicate only of an identical event, so any key
/// of the event does; its user is one. A call is its user's too: two calls
/// of one user at one instant are one inbound item of the timeline
/// (`seen_inbounds`), so they must meet in one part whatever their ids
/// (calls are priced, and their copies dropped, after the parts).
fn message_part(event: &Event, parts: usize) -> usize {
    match &event.kind {
        EventKind::Inbound { id: Some(id), .. } | EventKind::Status { id, .. } => {
            part_of(&**id, parts)
        }
        EventKind::Outbound { id, .. } => part_of(&**id, parts),
        EventKind::Inbound { id: None, user, .. } => part_of(user, parts),
        EventKind::Call(call) => part_of(&call.user, parts),
        EventKind::AgentUsage(usage) => part_of(&*usage.id, parts),
    }
}

/// How many events of each kind a part holds, to size its tables once
/// (growing them was a tenth of the step).
#[derive(Default, Clone, Copy)]
struct Sizes {
    inbound: usize,
    outbound: usize,
    unowned_statuses: usize,
}

impl Sizes {
    fn count(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Inbound { .. } | EventKind::Call(_) => self.inbound += 1,
            EventKind::AgentUsage(_) => {}
            EventKind::Outbound { .. } => self.outbound += 1,
            EventKind::Status { detail, .. }
                if detail.as_ref().is_none_or(|d| d.business.is_none()) =>
            {
                self.unowned_statuses += 1
            }
            EventKind::Status { .. } => {}
        }
    }
}

/// A timeline item, its pair and the input position of its event (which
/// orders inbound messages at the same instant as they were read). The
/// pair's business is its number in the part's [`Resolved::businesses`]:
/// a shared string, cloned for every item and dropped on another thread,
/// made two threads contend for its count. The user, for the same reason,
/// is the event's own, borrowed: a copy per item raised and lowered the
/// user's shared count from both threads and made every item 16 bytes
/// larger; a timeline copies its user once. The user's key's fields sit
/// beside the business's number (a [`UserKey`] inside would pad every item
/// by 8 bytes).
struct Placed<'e> {
    business: u32,
    form: u8,
    len: u8,
    value: u64,
    user: &'e UserId,
    seq: usize,
    item: Item,
}

impl Placed<'_> {
    fn key(&self) -> UserKey {
        UserKey {
            form: self.form,
            len: self.len,
            value: self.value,
        }
    }
}

/// A user as one integer and two bytes: a phone number's digits as their
/// number, any other id's first 8 bytes, with the id's kind, form and
/// length. Two users whose keys say all of their ids (every phone number:
/// E.164 numbers have at most 15 digits) are the same user exactly when
/// their keys are equal, so grouping a pair's items compares and hashes
/// these without reading the ids again: reading each item's user from its
/// event and its id from the heap, scattered over the log, was most of
/// building the timelines (docs/PERFORMANCE.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct UserKey {
    /// The kind ([`UserId::key`]) in the low bit; 2 when `value` is the
    /// id's digits as a number, else its first 8 bytes.
    form: u8,
    /// The id's length in bytes, at most 255.
    len: u8,
    value: u64,
}

impl UserKey {
    fn of(user: &UserId) -> UserKey {
        let (kind, text) = user.key();
        let len = text.len().min(255) as u8;
        // 19 digits always fit: 10^19 - 1 < 2^64.
        if (1..=19).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit()) {
            let value = text
                .bytes()
                .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
            return UserKey {
                form: kind | 2,
                len,
                value,
            };
        }
        let mut bytes = [0u8; 8];
        for (slot, byte) in bytes.iter_mut().zip(text.bytes()) {
            *slot = byte;
        }
        UserKey {
            form: kind,
            len,
            value: u64::from_be_bytes(bytes),
        }
    }

    /// Whether the key says all of the id: equal keys then mean equal users.
    fn whole(&self) -> bool {
        self.form & 2 != 0 || self.len <= 8
    }

    /// Whether the id is business-scoped.
    fn scoped(&self) -> bool {
        self.form & 1 == 1
    }
}

/// What one part of [`prepare_in`]'s first step found.
struct Resolved<'e> {
    /// Items by the part of their pair.
    items: Vec<Vec<Placed<'e>>>,
    /// The businesses the items name, by number.
    businesses: Vec<&'e str>,
    warnings: Vec<Warning>,
    stats: PrepareStats,
    /// Countries of business-scoped ids, with the first event giving each.
    countries: HashMap<&'e str, (usize, Country)>,
    /// Calls, with their input position.
    calls: Vec<(usize, TimedCall)>,
    /// Agent usage, with its input position.
    agent: Vec<(usize, TimedUsage)>,
}

/// Below this many records, a message table is not shrunk as it is read.
const SHRINK_FROM: usize = 4096;

/// Drops duplicates and resolves each message's delivery, for events that
/// hold every event of their messages. The events are read in place; what
/// a timeline keeps is copied out of them.
fn resolve<'e>(
    events: impl Iterator<Item = (usize, &'e Event)>,
    sizes: Sizes,
    parts: usize,
    mut unowned: UnownedStatuses<'e>,
) -> Resolved<'e> {
    let mut stats = PrepareStats::default();
    let mut warnings = Vec::new();
    let mut businesses = Numbering::default();
    // A message has several statuses, so there are about as many messages
    // as outbound events.
    let mut messages = Messages::with_capacity(sizes.outbound);
    if unowned.summaries.is_empty() {
        // Several statuses a message, so at most one summary a send.
        let summaries = sizes.unowned_statuses.min(sizes.outbound);
        unowned.summaries.reserve(summaries);
    }
    // Sized for every inbound when first used: a log's inbounds carry ids
    // (Meta's) or none (`gen`'s) as a rule, so one of the two sets is
    // used, and growing it by doubling rehashed it each time.
    let mut seen_inbounds = SeenEvents::new(sizes.inbound, inbound_key);
    let mut seen_inbound_ids = SeenEvents::new(sizes.inbound, inbound_id_key);
    let mut items: Vec<Vec<Placed<'e>>> = (0..parts)
        .map(|_| Vec::with_capacity((sizes.inbound + sizes.outbound) / parts + 1))
        .collect();
    let mut place = |business: &'e str, user: &'e UserId, seq: usize, item: Item| {
        let key = UserKey::of(user);
        // A pair's items meet in one part: dealt by its business and user
        // key (users whose longer ids share a key meet too, harmlessly).
        let part = if parts == 1 {
            0
        } else {
            part_of(&(business, key), parts)
        };
        items[part].push(Placed {
            business: businesses.number(business),
            form: key.form,
            len: key.len,
            value: key.value,
            user,
            seq,
            item,
        });
    };
    let mut countries: HashMap<&str, (usize, Country)> = HashMap::default();
    let mut calls = Vec::new();
    let mut agent = Vec::new();
    let mut note_country = |user: &'e UserId, seq: usize| {
        if let UserId::Bsuid(id, Some(country)) = user {
            countries.entry(id).or_insert((seq, *country));
        }
    };

    for (seq, event) in events {
        match &event.kind {
            EventKind::Inbound {
                business,
                user,
                id,
                entry_point,
                kind: _,
            } => {
                note_country(user, seq);
                // With a wamid, the id says what a duplicate is; without one,
                // only an identical event is.
                let first_time = match id {
                    Some(_) => seen_inbound_ids.insert(event),
                    None => seen_inbounds.insert(event),
                };
                if !first_time {
                    stats.duplicates += 1;
                    continue;
                }
                place(
                    business,
                    user,
                    seq,
                    Item::inbound(event.at, entry_point.is_some()),
                );
            }
            EventKind::Outbound {
                business,
                user,
                id,
                template,
                messaging_account,
            } => {
                note_country(user, seq);
                let message = messages.of(business, id);
                let first = message.first as usize;
                if let Some((_, kept)) = &mut message.outbound {
                    stats.duplicates += 1;
                    let same = outbound_fields(kept.event).is_some_and(|(_, u, t, m, _)| {
                        (u, t, m) == (user, template, messaging_account)
                    });
                    if !same {
                        warnings.push(conflicting_outbound(id, business, event.origin));
                    }
                    // Keep the earliest, whatever the input order.
                    if (event.at, event.origin) < kept.at_and_origin() && same {
                        kept.earliest = Some(event);
                    }
                } else {
                    let seen = OutboundSeen {
                        event,
                        earliest: None,
                    };
                    message.outbound = Some((seq, seen));
                }
                messages.seen[first].sent = true;
            }
            EventKind::Call(call) => {
                note_country(&call.user, seq);
                // A call that opens the window is an inbound for the pair's
                // timeline; copies of it (a redelivered webhook) are one
                // item. Duplicates are counted once, by the call pricing.
                if call.opens_window() && seen_inbounds.insert(event) {
                    place(
                        &call.business,
                        &call.user,
                        seq,
                        Item::inbound(event.at, false),
                    );
                }
                calls.push((
                    seq,
                    TimedCall {
                        at: event.at,
                        origin: event.origin,
                        call: (**call).clone(),
                    },
                ));
            }
            EventKind::AgentUsage(usage) => agent.push((
                seq,
                TimedUsage {
                    at: event.at,
                    origin: event.origin,
                    usage: (**usage).clone(),
                },
            )),
            EventKind::Status {
                id,
                status,
                error,
                detail,
            } => {
                let detail = detail.as_deref();
                let read = StatusRead::new((event.at, event.origin), *status, *error, detail);
                match detail.and_then(|d| d.business.as_deref()) {
                    Some(business) => {
                        let summary = messages.of(business, id).statuses.get_or_insert_default();
                        if !summary.record(read) {
                            stats.duplicates += 1;
                        }
                    }
                    None => unowned.record(Cow::Borrowed(id), read, |id| id),
                }
            }
        }
    }
    stats.duplicates += unowned.duplicates;

    for message in &messages.seen {
        if let (Some(summary), None) = (&message.statuses, &message.outbound) {
            let origin = summary.origin().unwrap_or_default();
            warnings.push(unknown_status(origin, message.id, message.business));
        }
    }
    // Each wamid's summary, by the index of its first record: looked up
    // here, once, for the check below, rather than again by text for each
    // record (a tenth of `resolve`).
    let mut unowned_of: Vec<Option<u32>> = vec![None; messages.seen.len()];
    for (index, (id, summary)) in unowned.summaries.iter().enumerate() {
        let first = messages.first_of(id).map(|first| first as usize);
        if let Some(first) = first {
            unowned_of[first] = Some(index as u32);
        }
        let sent = first.is_some_and(|first| messages.seen[first].sent);
        if !sent {
            let origin = summary.origin().unwrap_or_default();
            warnings.push(unknown_status(origin, id, None));
        }
    }

    // Messages Meta Business Agent produced: its usage names their wamid.
    let agent_messages: HashSet<(&str, &str)> = agent
        .iter()
        .map(|(_, u)| (&*u.usage.business, &*u.usage.id))
        .collect();
    // The records are read from the last, and their memory handed back as
    // they go, so that the deliveries built from them take it rather than
    // fresh pages: the records and the deliveries together were a replay's
    // peak (docs/PERFORMANCE.md). The order items are placed in does not
    // matter: each pair's are sorted by their key and input position.
    let Messages {
        ids,
        others,
        mut seen,
        ..
    } = messages;
    drop((ids, others, seen_inbounds, seen_inbound_ids));
    let mut shrunk_at = seen.len();
    while let Some(message) = seen.pop() {
        if seen.len() <= shrunk_at / 2 && shrunk_at > SHRINK_FROM {
            seen.shrink_to_fit();
            shrunk_at = seen.len();
        }
        let Some((seq, outbound)) = &message.outbound else {
            continue;
        };
        let Some((business, user, template, account, shared_id)) = outbound_fields(outbound.event)
        else {
            continue;
        };
        let (seq, id) = (*seq, message.id);
        let owned = message.statuses.as_deref();
        let unowned = unowned_of
            .get(message.first as usize)
            .copied()
            .flatten()
            .and_then(|index| unowned.at(index as usize));
        // A status repeated in both (Meta's webhook and a canonical line)
        // is one status.
        if let (Some(owned), Some(unowned)) = (owned, unowned) {
            stats.duplicates += unowned
                .seen
                .iter()
                .filter(|seen| owned.seen.contains(seen))
                .count() as u64;
        }
        let summary = match (owned, unowned) {
            (Some(a), Some(b)) => Some(a.merged(b)),
            (a, b) => a.or(b).map(StatusSummary::outcome),
        };
        let delivered_at = summary.as_ref().and_then(StatusSummary::delivered_at);
        let Some(delivered_at) = delivered_at else {
            if summary.as_ref().is_some_and(|s| s.failed().is_some()) {
                stats.failed += 1
            } else {
                stats.undelivered += 1
            }
            continue;
        };
        if let Some((error, origin)) = summary.as_ref().and_then(StatusSummary::failed) {
            warnings.push(failed_after_delivery(id, error, origin));
        }
        stats.delivered += 1;
        let meta_cost = summary.as_ref().and_then(StatusSummary::meta_cost);
        let by_agent = !agent_messages.is_empty() && agent_messages.contains(&(business, id));
        // The send's own account wins over what its statuses' webhooks say.
        let messaging_account = account.clone().or_else(|| {
            summary
                .as_ref()
                .and_then(|s| s.messaging_account())
                .map(Box::from)
        });
        let message = DeliveredMessage::new(
            shared_id.clone(),
            template.clone(),
            outbound.at_and_origin(),
            by_agent,
            meta_cost,
            messaging_account,
        );
        place(
            business,
            user,
            seq,
            Item::delivery(delivered_at, Box::new(message)),
        );
    }
    Resolved {
        items,
        businesses: businesses.names,
        warnings,
        stats,
        countries,
        calls,
        agent,
    }
}

/// Events taken once each, to drop their repeats: a set of the events
/// themselves, each compared and hashed by its key. A set of the keys
/// (48 bytes a slot for an inbound without a wamid, 32 with one), sized
/// for every inbound of a part, was 100 MB of a 10 M-event replay's peak,
/// which falls in [`resolve`] (docs/PERFORMANCE.md); a slot is 8 bytes.
struct SeenEvents<'e, K> {
    table: hashbrown::HashTable<&'e Event>,
    hasher: foldhash::fast::RandomState,
    /// Made room for when the first event is taken.
    capacity: usize,
    /// What two events must share to be one; `None` for events this set
    /// never takes.
    key: fn(&'e Event) -> Option<K>,
}

impl<'e, K: std::hash::Hash + Eq> SeenEvents<'e, K> {
    fn new(capacity: usize, key: fn(&'e Event) -> Option<K>) -> Self {
        SeenEvents {
            table: hashbrown::HashTable::new(),
            hasher: Default::default(),
            capacity,
            key,
        }
    }

    /// Takes `event` unless one with its key was taken: true if it is the
    /// first. An event without a key is always a first.
    fn insert(&mut self, event: &'e Event) -> bool {
        use hashbrown::hash_table::Entry;
        use std::hash::BuildHasher;
        let SeenEvents {
            table,
            hasher,
            capacity,
            key,
        } = self;
        let Some(mine) = key(event) else {
            return true;
        };
        // Only events with a key are in the table.
        let hash_of = |kept: &&'e Event| key(kept).map_or(0, |kept| hasher.hash_one(kept));
        if table.capacity() == 0 {
            table.reserve(*capacity, hash_of);
        }
        let hash = hasher.hash_one(&mine);
        match table.entry(hash, |kept| key(kept).as_ref() == Some(&mine), hash_of) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(event);
                true
            }
        }
    }
}

/// What makes two inbound messages without a wamid, or two calls that open
/// the window, one: the pair, the instant, whether it may open a free entry
/// point, and its kind (a call and an inbound call at one instant are one).
fn inbound_key(event: &Event) -> Option<(&str, &UserId, Timestamp, bool, InboundKind)> {
    match &event.kind {
        EventKind::Inbound {
            business,
            user,
            entry_point,
            kind,
            ..
        } => Some((business, user, event.at, entry_point.is_some(), *kind)),
        EventKind::Call(call) => Some((
            &call.business,
            &call.user,
            event.at,
            false,
            InboundKind::Call,
        )),
        _ => None,
    }
}

/// What makes two inbound messages with a wamid one: the business and the
/// wamid.
fn inbound_id_key(event: &Event) -> Option<(&str, &str)> {
    match &event.kind {
        EventKind::Inbound {
            business,
            id: Some(id),
            ..
        } => Some((business, id)),
        _ => None,
    }
}

/// Builds the timelines of the pairs whose items are in `parts` (every item
/// of a pair is in one of them; list `i` from part `i` of [`resolve`], whose
/// business numbers `renumbered[i]` renumbers into `businesses`).
///
/// Grouped by counting, not by a vector per pair: each item's pair is found
/// once (a table of pair numbers), the items are put in pair order in one
/// list, and each pair's slice is sorted and copied out at its final size.
/// A vector per pair, held in the table, grew by doubling (three items a
/// pair on average) and kept its slack until it was copied out: 10-15 MB
/// of a 2 M-event replay's peak (docs/PERFORMANCE.md).
fn timelines(
    parts: Vec<Vec<Placed<'_>>>,
    renumbered: &[Vec<u32>],
    businesses: &[&str],
    countries: &HashMap<&str, (usize, Country)>,
) -> Vec<ContactTimeline> {
    // A business-scoped id compares equal with and without its country, so
    // a pair's key may be any of its events' spelling: the pair takes that
    // of its first event, whichever part read it.
    struct Pair<'e> {
        business: u32,
        user: &'e UserId,
        first: Option<(usize, &'e UserId)>,
        /// Its items: counted, then where its next item goes.
        items: u32,
    }
    let total: usize = parts.iter().map(Vec::len).sum();
    // By business and user key; the user itself only when its key does
    // not say all of its id ([`UserKey`]).
    let mut numbers: HashMap<(u32, UserKey, Option<&UserId>), u32> = HashMap::default();
    let mut pairs: Vec<Pair> = Vec::new();
    // Each item's pair, in the items' order.
    let mut pair_of: Vec<u32> = Vec::with_capacity(total);
    for (list, items) in parts.iter().enumerate() {
        let renumbering = renumbered.get(list);
        for placed in items {
            let key = placed.key();
            let business = renumbering
                .and_then(|numbers| numbers.get(placed.business as usize))
                .copied()
                .unwrap_or(u32::MAX);
            let next = pairs.len() as u32;
            let long = (!key.whole()).then_some(placed.user);
            let number = *numbers.entry((business, key, long)).or_insert_with(|| {
                pairs.push(Pair {
                    business,
                    user: placed.user,
                    first: None,
                    items: 0,
                });
                next
            });
            // The pair found or just made.
            let pair = &mut pairs[number as usize];
            pair.items += 1;
            // A business-scoped id: its first spelling is kept.
            if key.scoped()
                && pair
                    .first
                    .as_ref()
                    .is_none_or(|(first, _)| placed.seq < *first)
            {
                pair.first = Some((placed.seq, placed.user));
            }
            pair_of.push(number);
        }
    }
    drop(numbers);
    // The items in pair order: where each pair's begin, then each item put
    // straight in its pair's next place. Each place is written once, and
    // the writes do not wait on one another, where following the cycles
    // of a permutation in place waited on each item in turn (a third of
    // building the timelines: docs/PERFORMANCE.md).
    let mut start = 0u32;
    let counts: Vec<u32> = pairs
        .iter_mut()
        .map(|pair| {
            let count = pair.items;
            pair.items = start;
            start += count;
            count
        })
        .collect();
    let mut places: Vec<Option<(usize, Item)>> = vec![None; total];
    for (placed, number) in parts.into_iter().flatten().zip(pair_of) {
        let next = &mut pairs[number as usize].items;
        places[*next as usize] = Some((placed.seq, placed.item));
        *next += 1;
    }
    // Every place was written (the counts add up to the items); collected
    // where they lie.
    #[allow(clippy::filter_map_identity)]
    let mut all: Vec<(usize, Item)> = places.into_iter().filter_map(|place| place).collect();
    // Each pair's items by instant and kind first: the wamid is a
    // delivery's boxed message away, and reaching it for every comparison
    // was a fifth of building the timelines.
    let mut rest = &mut all[..];
    for count in &counts {
        let (mine, after) = rest.split_at_mut((*count as usize).min(rest.len()));
        mine.sort_unstable_by(|(a_seq, a), (b_seq, b)| {
            (a.instant_and_kind())
                .cmp(&b.instant_and_kind())
                .then_with(|| (a.sort_key(), a_seq).cmp(&(b.sort_key(), b_seq)))
        });
        rest = after;
    }
    // This thread's own shared strings: a string shared with the other
    // thread had its count raised and lowered from both.
    let shared: Vec<Arc<str>> = businesses
        .iter()
        .map(|&business| Arc::from(business))
        .collect();
    let mut placed = all.into_iter();
    let mut timelines = Vec::with_capacity(pairs.len());
    for (pair, count) in pairs.into_iter().zip(counts) {
        let items: Vec<Item> = placed
            .by_ref()
            .take(count as usize)
            .map(|(_, item)| item)
            .collect();
        // Every number is one of `businesses` (`prepare_parts` renumbered
        // them all).
        let Some(business) = shared.get(pair.business as usize) else {
            continue;
        };
        let user = pair.first.map_or(pair.user, |(_, user)| user).clone();
        // A business-scoped id seen without its country in the event that
        // made the timeline takes it from any other event.
        let user = match user {
            UserId::Bsuid(id, None) => match countries.get(&*id) {
                Some((_, country)) => UserId::Bsuid(id, Some(*country)),
                None => UserId::Bsuid(id, None),
            },
            user => user,
        };
        timelines.push(ContactTimeline {
            business: business.clone(),
            user,
            items,
        });
    }
    timelines
}

/// The decisions for one timeline.
#[derive(Clone, Debug, Default)]
pub struct ContactDecisions {
    /// One per delivered message that could be decided.
    pub charges: Vec<Charge>,
    /// Messages that could not be decided (e.g. delivered before 2022-02-01).
    pub errors: Vec<PricingError>,
}

/// The decisions for many timelines, in one list ([`Engine::decide_all`]):
/// settling puts the charges in delivery order where they are, rather
/// than moving them into a second list as large (110 MB more, fresh, for
/// the 485,000 charges of 2 M events; docs/PERFORMANCE.md).
#[derive(Debug, Default)]
pub struct Decisions {
    /// Each timeline's charges in a run of as many slots as it has
    /// deliveries, the timelines in their order; a slot stays empty for a
    /// delivery that could not be decided.
    slots: Vec<Option<Charge>>,
    /// Messages that could not be decided.
    errors: Vec<PricingError>,
    /// How many slots each timeline has, when the timelines were decided in
    /// pair order (business, then user, as [`prepare`] leaves them): the
    /// settling then need not compare the charges on either side of a
    /// timeline's end, which reached into two users' ids each (half of
    /// surveying the charges, on one thread). `None`: not known to be in
    /// pair order.
    paired: Option<Vec<u32>>,
}

impl From<Vec<ContactDecisions>> for Decisions {
    fn from(decisions: Vec<ContactDecisions>) -> Decisions {
        let mut slots = Vec::with_capacity(decisions.iter().map(|d| d.charges.len()).sum());
        let mut errors = Vec::new();
        for decided in decisions {
            slots.extend(decided.charges.into_iter().map(Some));
            errors.extend(decided.errors);
        }
        Decisions {
            slots,
            errors,
            paired: None,
        }
    }
}

/// The result of a replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Charges in delivery order.
    pub charges: Vec<Charge>,
    /// Calls in start order, priced.
    pub calls: Vec<CallCharge>,
    /// Meta Business Agent usage in time order, priced.
    pub agent: Vec<AgentCharge>,
    /// Things worth knowing that did not stop the replay.
    pub warnings: Vec<Warning>,
    /// Delivered messages that could not be priced without guessing.
    pub errors: Vec<PricingError>,
    /// Counts from preparation.
    pub stats: PrepareStats,
    /// The monthly counters as they stand after the last charge: feed them
    /// to [`Engine::month_to_date`] to continue with the next part of a log.
    pub counters: MonthToDate,
}

/// The windows of one (business phone number, user) pair at an instant
/// (half-open intervals, decision D5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactWindows {
    /// The customer service window open at the instant, if any.
    pub customer_service_window: Option<Window>,
    /// The free entry point window open at the instant, if any.
    pub free_entry_point: Option<Window>,
    /// An entry-point inbound (ad, page button) not answered yet: a reply
    /// delivered before it is 24 h old opens a free entry point (D6).
    pub pending_entry_point_at: Option<Timestamp>,
    /// The user's last message or call before the instant.
    pub last_inbound_at: Option<Timestamp>,
}

/// Everything the rules need besides the events. Cheap to share across
/// threads.
#[derive(Clone, Copy)]
pub struct Engine<'a> {
    /// Businesses and rule options.
    pub accounts: &'a Accounts,
    /// Rate cards.
    pub rates: &'a RateBook,
    /// Volume-tier bands.
    pub tiers: &'a TierBook,
    /// Market table.
    pub markets: &'a MarketTable,
    /// What-if options; the default prices as Meta does.
    pub what_if: WhatIf,
    /// Monthly counters reached before the first event of the log.
    pub month_to_date: Option<&'a MonthToDate>,
    /// Calling API rates; the built-in fragments unless set.
    pub call_rates: &'a CallRateBook,
    /// Keep each charge's whole decision ([`Trail::explained`]: windows,
    /// market rule, card, rate, counter) for `wameter explain`,
    /// reconciliation and quotes. On unless turned off; a replay whose
    /// output never shows it (reports, `--json`, the server's kept charges)
    /// turns it off: it was most of each trail, and its strings were built
    /// for every charge. Prices, reasons and notes do not depend on it.
    pub explain: bool,
    /// Write each message charge's reason (its rule in words, with the
    /// rate and tier it took). On unless turned off; a replay that prints
    /// only totals turns it off, and its charges' reasons are then empty:
    /// writing them was a sixth of the report's memory and a few percent
    /// of its time (docs/PERFORMANCE.md). Prices, rules and notes do not
    /// depend on it; calls and agent usage, few, always carry theirs.
    pub reasons: bool,
}

/// Re-pricing under other rules than those in force ("what would this log
/// have cost under PMP?").
///
/// The ruleset replaces the era of every delivery; details a ruleset itself
/// dates (CBP service conversations free from 2024-11-01, the free entry
/// point's 24 → 72 hours in 2023, the market table) still follow the
/// delivery's own date. `rates_on` prices every message from the cards and
/// tiers in force on that date, for when the era asked for had no card yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WhatIf {
    /// Ruleset applied to every delivery instead of the one in force.
    pub ruleset: Option<Ruleset>,
    /// Date whose rate cards and tiers price every message.
    pub rates_on: Option<Date>,
}

impl WhatIf {
    /// True when nothing is changed.
    pub fn is_none(&self) -> bool {
        self.ruleset.is_none() && self.rates_on.is_none()
    }
}

/// Counts reached in a month before the log starts: a quote for the rest of
/// a month, or a replay of part of a month, must start from them or it
/// prices the first messages in the wrong volume tier.
///
/// Months are `(year, month)` in the business's time zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonthToDate {
    /// Charged messages per (portfolio, market, tier family, month).
    pub volume: std::collections::BTreeMap<(String, String, TierFamily, (i16, i8)), u64>,
    /// CBP conversations opened per (WABA, month) (the free tier).
    pub conversations: std::collections::BTreeMap<(String, (i16, i8)), u64>,
    /// Service messages per (business phone number, month) (2026-10 allowance).
    pub service_messages: std::collections::BTreeMap<(String, (i16, i8)), u64>,
    /// Calling: billed units (pulses, or seconds with
    /// `call_bands_count_seconds`) per (portfolio, currency, market,
    /// month), which choose the minute band (docs/rules.md §14).
    pub call_units: std::collections::BTreeMap<(String, String, String, (i16, i8)), u64>,
}

impl<'a> Engine<'a> {
    /// An engine that prices as Meta does, from empty monthly counters.
    pub fn new(
        accounts: &'a Accounts,
        rates: &'a RateBook,
        tiers: &'a TierBook,
        markets: &'a MarketTable,
    ) -> Self {
        Engine {
            accounts,
            rates,
            tiers,
            markets,
            what_if: WhatIf::default(),
            month_to_date: None,
            call_rates: CallRateBook::builtin_ref(),
            explain: true,
            reasons: true,
        }
    }
}

fn open_conversations(
    state: &ContactState,
    delivery: &Delivery,
    at: Timestamp,
) -> Vec<(String, PricingCategory, Window)> {
    let mut open = Vec::new();
    if let Some((window, user_initiated)) = state.v1_open(at) {
        let category = if user_initiated {
            PricingCategory::UserInitiated
        } else {
            PricingCategory::BusinessInitiated
        };
        open.push((
            delivery.conversation_id(category.as_str(), window.opened_at),
            category,
            window,
        ));
    }
    for slot in [
        Slot::Marketing,
        Slot::Utility,
        Slot::Authentication,
        Slot::Service,
    ] {
        if let Some(window) = state.v2_open(slot, at) {
            let category = rules::cbp_2023::slot_category(slot);
            open.push((
                delivery.conversation_id(category.as_str(), window.opened_at),
                category,
                window,
            ));
        }
    }
    open
}

fn month_of(date: Date) -> (i16, i8) {
    (date.year(), date.month())
}

impl Engine<'_> {
    /// Runs prepare, decide and settle on one thread.
    pub fn replay(&self, events: Vec<Event>) -> Report {
        self.replay_prepared(prepare(events))
    }

    /// [`Engine::replay`] of events the caller keeps ([`prepare_shared`]).
    pub fn replay_shared<E: Borrow<Event> + Sync>(&self, events: &[E]) -> Report {
        self.replay_prepared(prepare_shared(events))
    }

    /// [`Engine::replay`] of events already prepared ([`prepare_shared`]).
    pub fn replay_prepared(&self, mut prepared: Prepared) -> Report {
        let decided = self.decide_all(std::mem::take(&mut prepared.contacts));
        self.settle_decided(prepared, decided)
    }

    /// Stage 2: walks one timeline through the windows and the era's rules.
    pub fn decide(&self, contact: &ContactTimeline) -> ContactDecisions {
        self.walk(contact, None).0
    }

    /// [`Engine::decide`] for every timeline, into one list, on every core
    /// for a large log. Each timeline is freed once decided.
    pub fn decide_all(&self, contacts: Vec<ContactTimeline>) -> Decisions {
        self.decide_in_runs(contacts, |deliveries| {
            parts_for(deliveries, SETTLE_IN_PARALLEL_FROM)
        })
    }

    /// [`Engine::decide_all`] on up to `parts` threads; the decisions do
    /// not depend on `parts` (a property test holds them to `parts = 1`).
    pub fn decide_all_in(&self, contacts: Vec<ContactTimeline>, parts: usize) -> Decisions {
        self.decide_in_runs(contacts, |_| parts)
    }

    /// [`Engine::decide_all`] on as many threads as `parts` says for the
    /// timelines' deliveries in all.
    fn decide_in_runs(
        &self,
        mut contacts: Vec<ContactTimeline>,
        parts: impl FnOnce(usize) -> usize,
    ) -> Decisions {
        let deliveries: Vec<usize> = contacts.iter().map(ContactTimeline::deliveries).collect();
        let total: usize = deliveries.iter().sum();
        let parts = parts(total).max(1);
        // Where each thread's run of timelines starts: runs of about equal
        // deliveries.
        let mut cuts = vec![0];
        let mut sum = 0;
        for (at, count) in deliveries.iter().enumerate() {
            if cuts.len() < parts && at > 0 && sum >= total * cuts.len() / parts {
                cuts.push(at);
            }
            sum += count;
        }
        cuts.push(contacts.len());
        // Pair order across the runs' ends; within a run, as it is walked.
        let ends_in_order = cuts[1..cuts.len() - 1]
            .iter()
            .all(|&cut| pair_before(&contacts[cut - 1], &contacts[cut]));
        let mut runs: Vec<Vec<ContactTimeline>> = Vec::with_capacity(cuts.len());
        for cut in cuts[1..cuts.len() - 1].iter().rev() {
            runs.push(contacts.split_off(*cut));
        }
        runs.push(contacts);
        runs.reverse();

        let mut slots = empty_slots(total, parts);
        let mut inputs = Vec::with_capacity(runs.len());
        let mut rest = slots.as_mut_slice();
        for (run, bounds) in runs.into_iter().zip(cuts.windows(2)) {
            let counts = &deliveries[bounds[0]..bounds[1]];
            let (mine, after) = std::mem::take(&mut rest).split_at_mut(counts.iter().sum());
            rest = after;
            inputs.push((run, counts, mine));
        }
        let decided = on_threads(inputs, |(run, counts, mut slots)| {
            let mut out = ContactDecisions::default();
            let mut in_order = true;
            // The timeline walked last, kept to compare the next with while
            // its user's id is still in cache (the walk reads it).
            let mut previous: Option<ContactTimeline> = None;
            let mut timelines = run.into_iter().zip(counts);
            let mut ahead: std::collections::VecDeque<(ContactTimeline, &usize)> =
                std::collections::VecDeque::with_capacity(LOOK_AHEAD + 1);
            loop {
                // Each delivery's message, and its wamid, are allocations of
                // their own, met in an order unrelated to where they sit:
                // waiting on them was half of walking a timeline. Reading
                // them a few timelines ahead, in a loop that does nothing
                // else, lets those waits overlap (a prefetch, without
                // `unsafe`).
                while ahead.len() <= LOOK_AHEAD {
                    let Some(next) = timelines.next() else { break };
                    std::hint::black_box(touch(&next.0));
                    ahead.push_back(next);
                }
                let Some((contact, count)) = ahead.pop_front() else {
                    break;
                };
                self.walk_on(&contact, 0, &mut ContactState::default(), None, &mut out);
                if in_order && let Some(previous) = &previous {
                    in_order = pair_before(previous, &contact);
                }
                previous = Some(contact);
                // At most one charge a delivery: these slots are its.
                let (mine, after) = std::mem::take(&mut slots).split_at_mut(*count);
                slots = after;
                for (slot, charge) in mine.iter_mut().zip(out.charges.drain(..)) {
                    *slot = Some(charge);
                }
            }
            (out.errors, in_order)
        });
        let in_order = ends_in_order && decided.iter().all(|(_, in_order)| *in_order);
        Decisions {
            slots,
            errors: decided.into_iter().flat_map(|(errors, _)| errors).collect(),
            paired: in_order.then(|| deliveries.iter().map(|&count| count as u32).collect()),
        }
    }

    /// The windows of one timeline as they stand at `at`, counting only what
    /// happened before it: what a sender asks before a send ("may I write
    /// free-form now?"). The walk is the one [`Engine::decide`] makes, so a
    /// free entry point opens here exactly when it opens in a replay.
    pub fn windows_at(&self, contact: &ContactTimeline, at: Timestamp) -> ContactWindows {
        let (_, state) = self.walk(contact, Some(at));
        let pending_entry_point_at = state
            .pending_entry_point_at
            .filter(|entry| at < *entry + crate::window::DAY);
        ContactWindows {
            customer_service_window: state.customer_service_window(at),
            free_entry_point: state.open_free_entry_point(at),
            pending_entry_point_at: if state.open_free_entry_point(at).is_some() {
                None
            } else {
                pending_entry_point_at
            },
            last_inbound_at: state.last_inbound_at,
        }
    }

    /// Walks the items before `until` (all of them without it).
    fn walk(
        &self,
        contact: &ContactTimeline,
        until: Option<Timestamp>,
    ) -> (ContactDecisions, ContactState) {
        let mut state = ContactState::default();
        // A charge is large (its trail explains it); growing the vector
        // one doubling at a time copied each several times, 14 % of a
        // replay (perf, PERFORMANCE.md).
        let mut out = ContactDecisions {
            charges: Vec::with_capacity(contact.deliveries()),
            errors: Vec::new(),
        };
        self.walk_on(contact, 0, &mut state, until, &mut out);
        (out, state)
    }

    /// Walks `contact.items[from..]` (those before `until`) on from `state`,
    /// the state after the items before `from`; decisions go to `out`. The
    /// incremental meter resumes a timeline here when events only append to
    /// it.
    pub(crate) fn walk_on(
        &self,
        contact: &ContactTimeline,
        from: usize,
        state: &mut ContactState,
        until: Option<Timestamp>,
        out: &mut ContactDecisions,
    ) {
        let number = self.accounts.get_or_default(&contact.business);
        let mut market_cache: Option<(Date, MarketMatch)> = None;
        for item in &contact.items[from.min(contact.items.len())..] {
            if until.is_some_and(|until| item.sort_key().0 >= until) {
                break;
            }
            let at = item.at();
            let Some(message) = item.message() else {
                state.inbound(at, item.entry_point());
                continue;
            };
            // Money goes to the Messaging account the message names; the
            // window and the allowance stay with the number.
            let named = message.messaging_account();
            let messaging_account = self.accounts.messaging_account(&contact.business, named);
            let business = match &messaging_account {
                Some(account) => self.accounts.payer(&contact.business, Some(account)),
                None => number.clone(),
            };
            let local_date = business.timezone.to_datetime(at).date();
            let Some(ruleset) = self.what_if.ruleset.or_else(|| Ruleset::on(local_date)) else {
                out.errors.push(PricingError {
                    message_id: message.id.clone(),
                    origin: message.origin,
                    message: format!(
                        "unsupported era: delivered {at} ({local_date} in {}), before 2022-02-01, when Meta billed per notification; wameter prices 2022-02-01 onward",
                        business.timezone_name()
                    ),
                });
                continue;
            };
            let customer_service_window = state.customer_service_window(at);
            let opened_free_entry_point = state.answer_entry_point(
                at,
                local_date,
                ruleset.is_conversation_based(),
                self.accounts.options.free_entry_point_7_days,
            );
            let free_entry_point = state.open_free_entry_point(at);
            let delivery = Delivery {
                template: message.template.as_deref(),
                delivered_at: at,
                local_date,
                business: &business,
                user: &contact.user,
                customer_service_window,
                free_entry_point,
                opened_free_entry_point,
                options: &self.accounts.options,
                reasons: self.reasons,
            };
            let open_before = self
                .explain
                .then(|| open_conversations(state, &delivery, at));
            let verdict: Verdict = match ruleset {
                Ruleset::Cbp2022 => rules::cbp_2022::decide(&delivery, state),
                Ruleset::Cbp2023 => rules::cbp_2023::decide(&delivery, state),
                Ruleset::Pmp2025 => rules::pmp_2025::decide(&delivery, state),
                Ruleset::Pmp2026Oct => rules::pmp_2026_10::decide(&delivery, state),
            };
            let verdict = if message.by_agent
                && message.template.is_none()
                && local_date >= rules::agent::BILLED_FROM
            {
                rules::agent::agent_message(verdict, &delivery)
            } else {
                verdict
            };
            if let UserId::Bsuid(id, None) = &contact.user {
                out.errors.push(PricingError {
                    message_id: message.id.clone(),
                    origin: message.origin,
                    message: format!(
                        "user {id} is a business-scoped user id with no country (no two-letter prefix, and no `contacts[].profile.country_code` or `user_country` beside it): its market, so its price, is unknown"
                    ),
                });
                continue;
            }
            // Looked up once a day per pair; its rule's text is written
            // only for an explanation.
            let market = match &market_cache {
                Some((date, found)) if *date == local_date => found,
                _ => {
                    let found = if self.explain {
                        self.markets.lookup(&contact.user, local_date)
                    } else {
                        self.markets.lookup_unexplained(&contact.user, local_date)
                    };
                    &market_cache.insert((local_date, found)).1
                }
            };
            let mut notes: Vec<String> = delivery
                .free_form_outside_window_note()
                .into_iter()
                .collect();
            notes.extend(named.and_then(|named| {
                self.accounts
                    .unknown_messaging_account(&contact.business, named)
            }));
            let (conversation_id, opens_conversation) = match verdict.conversation {
                Some((id, opens)) => (Some(id), opens),
                None => (None, false),
            };
            out.charges.push(Charge {
                message_id: message.id.clone(),
                business: contact.business.clone(),
                messaging_account,
                user: contact.user.clone(),
                delivered_at: at,
                local_date,
                pricing_model: verdict.pricing_model,
                category: verdict.category,
                pricing_type: verdict.pricing_type,
                billable: verdict.billable,
                conversation_id,
                opens_conversation,
                market: market.market.clone(),
                currency: business.currency,
                amount: rust_decimal::Decimal::ZERO,
                tier: None,
                ruleset: verdict.ruleset,
                rule: verdict.rule,
                reason: verdict.reason,
                trail: Arc::new(Trail {
                    template: message.template.clone(),
                    sent_at: message.sent_at,
                    origin: message.origin,
                    country: market.country.clone(),
                    notes: notes.into_boxed_slice(),
                    meta_cost: message.meta_cost().cloned().map(Box::new),
                    explained: open_before.map(|open_conversations| {
                        Box::new(Explained {
                            timezone: business.timezone_name().to_string(),
                            last_inbound_at: state.last_inbound_at,
                            customer_service_window,
                            free_entry_point,
                            open_conversations,
                            market_rule: market.rule.clone(),
                            rate_card: None,
                            rate: None,
                            counter: None,
                        })
                    }),
                }),
                settlement: verdict.settlement,
            });
        }
    }

    /// Stage 3: global delivery order, shared monthly counters, prices.
    ///
    /// Every counter lies inside one portfolio (a WABA's free tier, a
    /// number's allowance, the portfolio's volume tiers), so portfolios are
    /// settled apart, on every core for a large log; each sees its charges
    /// in global delivery order, so the result does not depend on how.
    /// Counters carried in ([`Engine::month_to_date`]) are named by WABA,
    /// portfolio and number, and a WABA listed in two portfolios shares its
    /// free tier between them: then one group holds every charge.
    pub fn settle(&self, prepared: Prepared, decisions: Vec<ContactDecisions>) -> Report {
        self.settle_decided(prepared, decisions.into())
    }

    /// [`Engine::settle`] of [`Engine::decide_all`]'s decisions.
    pub fn settle_decided(&self, prepared: Prepared, decided: Decisions) -> Report {
        let charges = decided.slots.len();
        self.settle_decided_in(
            prepared,
            decided,
            parts_for(charges, SETTLE_IN_PARALLEL_FROM),
        )
    }

    /// [`Engine::settle`] on up to `parts` threads; the report does not
    /// depend on `parts` (a property test holds it to `parts = 1`).
    pub fn settle_in(
        &self,
        prepared: Prepared,
        decisions: Vec<ContactDecisions>,
        parts: usize,
    ) -> Report {
        self.settle_decided_in(prepared, decisions.into(), parts)
    }

    fn settle_decided_in(&self, prepared: Prepared, decided: Decisions, parts: usize) -> Report {
        // Charges stay where they were decided until they are settled,
        // then are put in delivery order in place: a charge is large, and
        // each copy of them all cost more than settling them.
        let Decisions {
            mut slots,
            mut errors,
            paired,
        } = decided;
        let Survey {
            charges,
            order,
            group_of,
            slot_of,
        } = self.survey(&mut slots, paired.as_deref());
        // Each group's charges in delivery order.
        let groups = group_of.iter().max().map_or(0, |max| *max as usize + 1);
        let mut sizes = vec![0usize; groups];
        group_of
            .iter()
            .for_each(|group| sizes[*group as usize] += 1);
        let mut grouped: Vec<Vec<&mut Charge>> =
            sizes.iter().map(|size| Vec::with_capacity(*size)).collect();
        let mut unplaced: Vec<Option<&mut Charge>> = charges.into_iter().map(Some).collect();
        for &index in &order {
            if let Some(charge) = unplaced[index as usize].take() {
                grouped[group_of[index as usize] as usize].push(charge);
            }
        }
        drop(unplaced);

        let settled: Vec<(usize, GroupSettled)> = on_threads(bundles(grouped, parts), |bundle| {
            bundle
                .into_iter()
                .map(|(group, charges)| (group, self.settle_group(charges)))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        let mut counters_reached = MonthToDate::default();
        let mut failed: Vec<std::iter::Peekable<std::vec::IntoIter<(u32, String)>>> = (0..groups)
            .map(|_| Vec::new().into_iter().peekable())
            .collect();
        for (group, settled) in settled {
            settled.counters.publish(&mut counters_reached);
            failed[group] = settled.failed.into_iter().peekable();
        }
        // Each group's charges met so far below: the next one's place.
        let mut places = vec![0u32; groups];
        // The slots in order: the empty ones, then each charge's in
        // delivery order. A charge that could not be settled leaves its slot
        // empty; the empty slots are dropped below.
        let mut in_order: Vec<u32> = Vec::with_capacity(slots.len());
        in_order.extend((0..slots.len() as u32).filter(|slot| slots[*slot as usize].is_none()));
        for &index in &order {
            let slot = slot_of[index as usize];
            in_order.push(slot);
            let group = group_of[index as usize] as usize;
            let place = places[group];
            places[group] += 1;
            if let Some((_, message)) = failed[group].next_if(|(at, _)| *at == place)
                && let Some(charge) = slots[slot as usize].take()
            {
                errors.push(PricingError {
                    message_id: charge.message_id,
                    origin: charge.trail.origin,
                    message,
                });
            }
        }
        permute_slots(&mut slots, in_order);
        // `filter_map`, not `flatten`: it collects in place, where `flatten`
        // took a second 110 MB for 2 M events.
        #[allow(clippy::filter_map_identity)]
        let priced: Vec<Charge> = slots.into_iter().filter_map(|charge| charge).collect();
        let mut warnings = prepared.warnings;
        let mut stats = prepared.stats;
        let calls = self.price_calls(prepared.calls, &mut stats, &mut warnings, &mut errors);
        rules::calling::publish(
            &calls,
            &self.accounts.options,
            self.month_to_date,
            &mut counters_reached,
        );
        let agent = self.price_agent(prepared.agent, &mut stats, &mut warnings, &mut errors);
        warnings.extend(notes(&priced));
        sort_errors(&mut errors);
        Report {
            charges: priced,
            calls,
            agent,
            warnings,
            errors,
            stats,
            counters: counters_reached,
        }
    }

    /// Prices Meta Business Agent usage ([`rules::agent`]), adding its
    /// duplicates, warnings and errors to the report's.
    pub(crate) fn price_agent(
        &self,
        usages: Vec<TimedUsage>,
        stats: &mut PrepareStats,
        warnings: &mut Vec<Warning>,
        errors: &mut Vec<PricingError>,
    ) -> Vec<AgentCharge> {
        if usages.is_empty() {
            return Vec::new();
        }
        let priced = rules::agent::price(usages, self.accounts);
        add_findings(
            priced.duplicates,
            priced.warnings,
            priced.errors,
            stats,
            warnings,
            errors,
        );
        priced.charges
    }

    /// Prices calls ([`rules::calling`]), adding their duplicates, warnings
    /// and errors to the report's.
    pub(crate) fn price_calls(
        &self,
        calls: Vec<TimedCall>,
        stats: &mut PrepareStats,
        warnings: &mut Vec<Warning>,
        errors: &mut Vec<PricingError>,
    ) -> Vec<CallCharge> {
        if calls.is_empty() {
            return Vec::new();
        }
        let priced = rules::calling::price_from(
            calls,
            self.accounts,
            self.call_rates,
            self.markets,
            self.month_to_date,
        );
        add_findings(
            priced.duplicates,
            priced.warnings,
            priced.errors,
            stats,
            warnings,
            errors,
        );
        priced.calls
    }

    /// Reads what settling needs of the charges in one pass over them, in
    /// the order they sit in memory. There were three passes, and each took
    /// 20-30 ms over the 485,000 charges of 2 M events, a third of what
    /// settling them took: the charges come from memory, not cache.
    fn survey<'c>(&self, slots: &'c mut [Option<Charge>], paired: Option<&[u32]>) -> Survey<'c> {
        let count = slots.iter().filter(|slot| slot.is_some()).count();
        let mut charges: Vec<&mut Charge> = Vec::with_capacity(count);
        let mut keys: Vec<u128> = Vec::with_capacity(count);
        let mut slot_of: Vec<u32> = Vec::with_capacity(count);
        let mut groups = CounterGroups::new(self, count);
        // Positions break ties of instants when the charges, list after
        // list, are in (business, user, instant, wamid, origin) order: one
        // pair's list after another, in the pairs' order, each in delivery
        // order ([`delivery_order`]).
        let mut ties_by_position = true;
        let mut previous: Option<&Charge> = None;
        // Where the next timeline's slots begin, when the timelines are
        // known to be in pair order: a timeline's first charge then follows
        // every charge before it, so only its own are compared.
        let mut counts = paired.unwrap_or_default().iter();
        let mut next_start = paired.map(|_| 0usize);
        for (slot, charge) in slots.iter_mut().enumerate() {
            while let Some(start) = next_start
                && slot >= start
            {
                previous = None;
                next_start = counts.next().map(|count| start + *count as usize);
            }
            let Some(charge) = charge else { continue };
            let index = charges.len() as u32;
            keys.push(delivery_key(charge.delivered_at, index));
            slot_of.push(slot as u32);
            groups.add(&charge.business);
            if ties_by_position && let Some(previous) = previous {
                ties_by_position = follows(previous, charge);
            }
            charges.push(charge);
            previous = charges.last().map(|charge| &**charge);
        }
        Survey {
            order: delivery_order(&charges, keys, ties_by_position),
            group_of: groups.finish(),
            charges,
            slot_of,
        }
    }

    /// Settles one counter group's charges, given in delivery order.
    fn settle_group(&self, charges: Vec<&mut Charge>) -> GroupSettled {
        let mut settler = Settler::new(self);
        let mut counters = Counters::carried(self.month_to_date);
        // Conversation id → (type, billable, category) fixed by its opener.
        let mut conversations: HashMap<String, (PricingType, bool, PricingCategory)> =
            HashMap::default();
        let mut failed = Vec::new();
        for (place, charge) in charges.into_iter().enumerate() {
            let conversation = match charge.settlement {
                Settlement::ConversationMember => charge
                    .conversation_id
                    .as_ref()
                    .and_then(|id| conversations.get(id))
                    .copied(),
                _ => None,
            };
            let outcome = settler.settle(&mut counters, charge, conversation);
            if let (Ok(()), true, Some(id)) =
                (&outcome, charge.opens_conversation, &charge.conversation_id)
            {
                conversations.insert(
                    id.clone(),
                    (charge.pricing_type, charge.billable, charge.category),
                );
            }
            if let Err(message) = outcome {
                failed.push((place as u32, message));
            }
        }
        GroupSettled { failed, counters }
    }
}

/// Adds what pricing calls or agent usage found to a report's findings
/// (warnings kept sorted, as `prepare` leaves them).
fn add_findings(
    duplicates: u64,
    found: Vec<Warning>,
    unpriced: Vec<PricingError>,
    stats: &mut PrepareStats,
    warnings: &mut Vec<Warning>,
    errors: &mut Vec<PricingError>,
) {
    stats.duplicates += duplicates;
    if !found.is_empty() {
        warnings.extend(found);
        sort_warnings(warnings);
    }
    errors.extend(unpriced);
}

/// `count` empty slots for charges, made on every core when `parts` is
/// more than one and the slots many: emptying a slot is the first write to
/// its page, so the kernel zeroes the slots' fresh memory as they are made
/// (232 bytes a delivery). Made on one thread, that kept the other idle
/// before every large `decide` (docs/PERFORMANCE.md); a few are made where
/// they are asked for, without a hand-over to other threads.
fn empty_slots(count: usize, parts: usize) -> Vec<Option<Charge>> {
    if parts > 1 && count >= SLOTS_IN_PARALLEL_FROM {
        use rayon::prelude::*;
        (0..count)
            .into_par_iter()
            .with_min_len(SLOTS_IN_PARALLEL_FROM / 2)
            .map(|_| None)
            .collect()
    } else {
        let mut slots = Vec::new();
        slots.resize_with(count, || None);
        slots
    }
}

/// Fewer slots than this are made on one thread (4 MB of them).
const SLOTS_IN_PARALLEL_FROM: usize = 1 << 14;

/// How many timelines ahead of the one being decided [`touch`] reads.
const LOOK_AHEAD: usize = 8;

/// Reads what deciding a timeline will read first: its user's id (the
/// market lookup's calling code) and of each delivery its boxed message
/// and its wamid's shared count. The sum means nothing; it only makes the
/// reads happen.
fn touch(contact: &ContactTimeline) -> usize {
    let (UserId::Phone(id) | UserId::Bsuid(id, _)) = &contact.user;
    let user = id.as_bytes().first().map_or(0, |byte| usize::from(*byte));
    user + contact
        .items
        .iter()
        .map(|item| {
            item.message().map_or(0, |message| {
                Arc::strong_count(&message.id) + usize::from(message.by_agent)
            })
        })
        .sum::<usize>()
}

/// Below this many charges, threads cost more than they save.
const SETTLE_IN_PARALLEL_FROM: usize = 50_000;

/// One counter group, settled: the charges that failed, and the counters
/// as its last charge left them.
struct GroupSettled {
    /// The charges that could not be settled: each one's place among the
    /// group's (in delivery order), and why. Only these: an outcome for
    /// every charge was 24 bytes of fresh memory each.
    failed: Vec<(u32, String)>,
    counters: Counters,
}

/// Whether `charge` comes after `previous` in (business, user, instant,
/// wamid, origin) order: a charge's place in its pair's list, and its
/// pair's among the pairs' ([`Engine::survey`]).
///
/// Charges of one timeline share their business's and user's strings, so
/// those compare by address first; and the origin, in the trail, is read
/// only on a tie of everything else. Comparing whole keys reached into the
/// strings and the trail of every charge.
fn follows(previous: &Charge, charge: &Charge) -> bool {
    pair_order(
        (&previous.business, &previous.user),
        (&charge.business, &charge.user),
    )
    .then_with(|| previous.delivered_at.cmp(&charge.delivered_at))
    .then_with(|| text_order(&previous.message_id, &charge.message_id))
    .then_with(|| previous.trail.origin.cmp(&charge.trail.origin))
    .is_lt()
}

/// Whether timeline `a`'s pair comes before `b`'s, as [`sort_pairs`]
/// orders them.
fn pair_before(a: &ContactTimeline, b: &ContactTimeline) -> bool {
    pair_order((&a.business, &a.user), (&b.business, &b.user)).is_lt()
}

/// Pairs by business, then user; shared strings by address first.
fn pair_order(a: (&Arc<str>, &UserId), b: (&Arc<str>, &UserId)) -> std::cmp::Ordering {
    text_order(a.0, b.0).then_with(|| match (a.1, b.1) {
        (UserId::Phone(x), UserId::Phone(y)) | (UserId::Bsuid(x, _), UserId::Bsuid(y, _))
            if Arc::ptr_eq(x, y) =>
        {
            std::cmp::Ordering::Equal
        }
        (x, y) => x.cmp(y),
    })
}

/// Shared strings, by address first.
fn text_order(a: &Arc<str>, b: &Arc<str>) -> std::cmp::Ordering {
    if Arc::ptr_eq(a, b) {
        std::cmp::Ordering::Equal
    } else {
        a.cmp(b)
    }
}

/// What [`Engine::survey`] reads of the charges.
struct Survey<'c> {
    /// Every charge, in the order of the slots.
    charges: Vec<&'c mut Charge>,
    /// Each charge's slot.
    slot_of: Vec<u32>,
    /// Positions in `charges`, in delivery order.
    order: Vec<u32>,
    /// Each charge's counter group.
    group_of: Vec<u32>,
}

/// The counter group of each charge (see [`Engine::settle`]), numbered
/// from 0 in order of first appearance.
struct CounterGroups<'e, 'a> {
    engine: &'e Engine<'a>,
    portfolios: HashMap<Arc<str>, u32>,
    wabas: HashMap<Arc<str>, u32>,
    businesses: HashMap<Arc<str>, u32>,
    /// The last business seen and its group: a list's charges are one
    /// pair's, so this answers nearly every charge.
    last: Option<(Arc<str>, u32)>,
    group_of: Vec<u32>,
    charges: usize,
    /// A WABA in two portfolios, or counters carried in: one group for all.
    one_group: bool,
}

impl<'e, 'a> CounterGroups<'e, 'a> {
    fn new(engine: &'e Engine<'a>, charges: usize) -> Self {
        CounterGroups {
            engine,
            portfolios: HashMap::default(),
            wabas: HashMap::default(),
            businesses: HashMap::default(),
            last: None,
            group_of: Vec::with_capacity(charges),
            charges,
            one_group: engine.month_to_date.is_some(),
        }
    }

    /// Adds the next charge, of `business`.
    fn add(&mut self, business: &Arc<str>) {
        if self.one_group {
            return;
        }
        let group = match &self.last {
            Some((last, group)) if Arc::ptr_eq(last, business) => *group,
            _ => {
                let group = match self.businesses.get(business) {
                    Some(group) => *group,
                    None => {
                        let account = self.engine.accounts.get_or_default(business);
                        let next = self.portfolios.len() as u32;
                        let group = *self
                            .portfolios
                            .entry(account.portfolio.clone())
                            .or_insert(next);
                        if *self.wabas.entry(account.waba.clone()).or_insert(group) != group {
                            self.one_group = true;
                            return;
                        }
                        self.businesses.insert(business.clone(), group);
                        group
                    }
                };
                self.last = Some((business.clone(), group));
                group
            }
        };
        self.group_of.push(group);
    }

    /// Each charge's group, in the order added.
    fn finish(self) -> Vec<u32> {
        match self.one_group {
            true => vec![0; self.charges],
            false => self.group_of,
        }
    }
}

/// A charge's instant and position as one number that orders as they do:
/// its instant's nanoseconds, made positive, above its position's 32 bits.
/// Every [`Timestamp`] is within 2^69 nanoseconds of the epoch (jiff's
/// range is about ±10,000 years; 2^69 ns is 18,700), so the number takes
/// at most 102 bits. Sorting these (16 bytes each) took a quarter less
/// time than sorting (instant, position) pairs (24 bytes) on 2.4 M
/// charges, and the keys are fresh memory made for every settle.
fn delivery_key(at: Timestamp, position: u32) -> u128 {
    let since_least = (at.as_nanosecond() + (1i128 << 69)) as u128;
    (since_least << 32) | u128::from(position)
}

/// The position part of a [`delivery_key`].
fn key_position(key: u128) -> u32 {
    key as u32
}

/// Positions of `charges` in delivery order (instant, then business, user
/// and wamid), from their [`delivery_key`]s. When the charges
/// come one pair's list after another in the pairs' order, each list in
/// delivery order (as [`Engine::decide`]ing the timelines [`prepare`]
/// gives leaves them), their positions break every tie alone; otherwise a
/// tie looks at the charges themselves (reaching into the charges was most
/// of the sort's cost).
fn delivery_order(
    charges: &[&mut Charge],
    mut keys: Vec<u128>,
    ties_by_position: bool,
) -> Vec<u32> {
    if ties_by_position {
        keys.sort_unstable();
    } else {
        keys.sort_unstable_by(|a, b| {
            (a >> 32).cmp(&(b >> 32)).then_with(|| {
                let a = &*charges[key_position(*a) as usize];
                let b = &*charges[key_position(*b) as usize];
                (&a.business, &a.user, &a.message_id, a.trail.origin).cmp(&(
                    &b.business,
                    &b.user,
                    &b.message_id,
                    b.trail.origin,
                ))
            })
        });
    }
    keys.into_iter().map(key_position).collect()
}

/// Groups for one thread: (group number, its charges).
type Bundle<T> = Vec<(usize, Vec<T>)>;

/// Deals groups (by number) into at most `parts` bundles of about equal
/// charges, largest first.
fn bundles<T>(groups: Vec<Vec<T>>, parts: usize) -> Vec<Bundle<T>> {
    let parts = parts.clamp(1, groups.len().max(1));
    let mut by_size: Vec<(usize, Vec<T>)> = groups.into_iter().enumerate().collect();
    by_size.sort_by_key(|(group, charges)| (std::cmp::Reverse(charges.len()), *group));
    let mut bundles: Vec<(usize, Bundle<T>)> = (0..parts).map(|_| (0, Vec::new())).collect();
    for (group, charges) in by_size {
        if let Some(lightest) = bundles.iter_mut().min_by_key(|(size, _)| *size) {
            lightest.0 += charges.len();
            lightest.1.push((group, charges));
        }
    }
    bundles
        .into_iter()
        .map(|(_, bundle)| bundle)
        .filter(|bundle| !bundle.is_empty())
        .collect()
}

/// The notes of charges (a free-form message outside the window...), as
/// warnings, in the charges' order.
pub(crate) fn notes<'c>(
    charges: impl IntoIterator<Item = &'c Charge>,
) -> impl Iterator<Item = Warning> {
    charges.into_iter().flat_map(|charge| {
        charge.trail.notes.iter().map(|note| Warning {
            code: "note",
            message: format!("{}: {note}", charge.message_id),
            origin: Some(charge.trail.origin),
        })
    })
}

/// The order of a report's errors: where they were read.
pub(crate) fn sort_errors(errors: &mut [PricingError]) {
    errors.sort_by(|a, b| (a.origin, &a.message_id).cmp(&(b.origin, &b.message_id)));
}

/// The order of a report's warnings: where they were read, then what they
/// say (one webhook line can carry several statuses, so one origin can
/// have several warnings of a code).
pub(crate) fn sort_warnings(warnings: &mut [Warning]) {
    warnings.sort_by(|a, b| (a.origin, a.code, &a.message).cmp(&(b.origin, b.code, &b.message)));
}

/// The monthly counters shared across users, as they stand after some
/// charges: what [`Settler::settle`] counts in, and what the incremental
/// meter snapshots so that a late event re-prices from a checkpoint rather
/// than from the start.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    /// CBP conversations per (WABA, month): the free tier.
    free_tier: rules::cbp_2022::FreeTier,
    /// Charged messages per (portfolio, market, tier family, month): the
    /// volume tiers.
    volume: rules::pmp_2025::Volume,
    /// Service messages per (business phone number, month): the 2026-10
    /// allowance.
    service_allowance: rules::pmp_2026_10::ServiceAllowance,
}

impl Counters {
    /// The counters reached before the log starts, if any were given.
    pub(crate) fn carried(carried: Option<&MonthToDate>) -> Counters {
        let mut counters = Counters::default();
        if let Some(carried) = carried {
            for ((portfolio, market, family, month), count) in &carried.volume {
                counters.volume.insert(
                    (
                        Arc::from(portfolio.as_str()),
                        Arc::from(market.as_str()),
                        *family,
                        *month,
                    ),
                    *count,
                );
            }
            for ((waba, month), count) in &carried.conversations {
                counters
                    .free_tier
                    .insert((Arc::from(waba.as_str()), *month), *count);
            }
            for ((phone, month), count) in &carried.service_messages {
                counters
                    .service_allowance
                    .insert((Arc::from(phone.as_str()), *month), *count);
            }
        }
        counters
    }

    /// Adds these counters to `out`, in the public form.
    pub(crate) fn publish(&self, out: &mut MonthToDate) {
        for ((portfolio, market, family, month), count) in &self.volume {
            out.volume.insert(
                (portfolio.to_string(), market.to_string(), *family, *month),
                *count,
            );
        }
        for ((waba, month), count) in &self.free_tier {
            out.conversations.insert((waba.to_string(), *month), *count);
        }
        for ((phone, month), count) in &self.service_allowance {
            out.service_messages
                .insert((phone.to_string(), *month), *count);
        }
    }
}

/// Stage 3 for one charge at a time, in global delivery order: applies the
/// shared counters and prices from the card in force.
pub(crate) struct Settler<'e, 'a> {
    engine: &'e Engine<'a>,
    businesses: HashMap<Arc<str>, Arc<Business>>,
}

impl<'e, 'a> Settler<'e, 'a> {
    pub(crate) fn new(engine: &'e Engine<'a>) -> Self {
        Settler {
            engine,
            businesses: HashMap::default(),
        }
    }

    /// The date whose cards and tiers price a charge.
    fn rates_date(&self, charge: &Charge) -> Date {
        self.engine.what_if.rates_on.unwrap_or(charge.local_date)
    }

    /// The number of `charge` as billed through its Messaging account.
    fn business(&mut self, charge: &Charge) -> Arc<Business> {
        let accounts = self.engine.accounts;
        if let Some(account) = &charge.messaging_account {
            return accounts.payer(&charge.business, Some(account));
        }
        self.businesses
            .entry(charge.business.clone())
            .or_insert_with(|| accounts.get_or_default(&charge.business))
            .clone()
    }

    /// Settles `charge`, the next in delivery order, counting it in
    /// `counters`. A conversation member takes `conversation`, what its
    /// opener was settled as, if the opener was.
    pub(crate) fn settle(
        &mut self,
        counters: &mut Counters,
        charge: &mut Charge,
        conversation: Option<(PricingType, bool, PricingCategory)>,
    ) -> Result<(), String> {
        let business = self.business(charge);
        let settling = rules::Settling {
            business: &business,
            rates: self.engine.rates,
            tiers: self.engine.tiers,
            rates_on: self.rates_date(charge),
            month: month_of(charge.local_date),
            reasons: self.engine.reasons,
        };
        match charge.settlement {
            Settlement::Free => Ok(()),
            Settlement::ConversationMember => {
                rules::cbp_2022::settle_member(charge, conversation);
                Ok(())
            }
            Settlement::ConversationOpened {
                rate_category,
                free_tier,
            } => rules::cbp_2022::settle_conversation(
                &settling,
                &mut counters.free_tier,
                charge,
                rate_category,
                free_tier,
            ),
            Settlement::Message { rate_category } => rules::pmp_2025::settle_message(
                &settling,
                &mut counters.volume,
                charge,
                rate_category,
            ),
            Settlement::ServiceAllowance => rules::pmp_2026_10::settle_service(
                &settling,
                &mut counters.service_allowance,
                charge,
            ),
        }
    }
}

#[cfg(test)]
mod user_keys {
    use super::UserKey;
    use crate::event::{Country, UserId};
    use std::sync::Arc;

    /// Keys that say all of an id are equal exactly when the ids are
    /// (kind included, leading zeros and lengths too); the others say so.
    #[test]
    fn a_whole_key_is_equal_exactly_when_the_ids_are() {
        let phone = |digits: &str| UserId::Phone(Arc::from(digits));
        let scoped = |id: &str| UserId::Bsuid(Arc::from(id), None);
        let users = [
            phone("5511999990000"),
            phone("05511999990000"),
            phone("1234567890123456789"),
            phone("12345678901234567890"),
            phone("12345678901234567891"),
            scoped("5511999990000"),
            scoped("user.937"),
            scoped("user.9373795779eb"),
            scoped("user.9373795779ec"),
            UserId::Bsuid(Arc::from("user.937"), Country::new("IN")),
        ];
        let whole = [
            true, true, true, false, false, true, true, false, false, true,
        ];
        for (user, whole) in users.iter().zip(whole) {
            assert_eq!(UserKey::of(user).whole(), whole, "{user:?}");
        }
        for a in &users {
            for b in &users {
                let (ka, kb) = (UserKey::of(a), UserKey::of(b));
                if ka.whole() && kb.whole() {
                    assert_eq!(ka == kb, a == b, "{a:?} against {b:?}");
                } else if a == b {
                    assert_eq!(ka, kb, "{a:?} against {b:?}");
                }
            }
        }
        assert!(UserKey::of(&scoped("user.937")).scoped());
        assert!(!UserKey::of(&phone("5511999990000")).scoped());
    }
}

#[cfg(test)]
mod size {
    /// A replay keeps one record per message in `prepare`'s tables: with
    /// both status summaries inline it was 480 bytes, with the outbound's
    /// fields copied and 24-byte status instants 312, with the earliest
    /// copy's instant and position copied 88.
    #[test]
    fn message_record() {
        let size = std::mem::size_of::<super::MessageSeen>();
        assert!(size <= 72, "MessageSeen is {size} bytes");
    }

    /// A replay keeps one summary per message of the statuses it read:
    /// 160 bytes with the first `delivered` and `read` kept beside the
    /// statuses seen, and the failure inline.
    #[test]
    fn status_summary() {
        let size = std::mem::size_of::<super::StatusSummary>();
        assert!(size <= 64, "StatusSummary is {size} bytes");
    }

    /// A status seen keeps its status and instant exactly, whatever the
    /// instant's sign, range and fraction, in 12 bytes.
    #[test]
    fn seen_status_keeps_status_and_instant() {
        use super::SeenStatus;
        use crate::event::DeliveryStatus;
        use jiff::Timestamp;
        assert_eq!(std::mem::size_of::<SeenStatus>(), 12);
        let instants = [
            Timestamp::MIN,
            Timestamp::MAX,
            Timestamp::UNIX_EPOCH,
            Timestamp::new(-1, -500_000_000).unwrap(),
            Timestamp::new(-1, 0).unwrap(),
            Timestamp::new(1_769_267_413, 999_999_999).unwrap(),
            Timestamp::new(1_769_267_413, 0).unwrap(),
        ];
        let statuses = [
            DeliveryStatus::Sent,
            DeliveryStatus::Delivered,
            DeliveryStatus::Read,
            DeliveryStatus::Failed,
        ];
        let mut all = Vec::new();
        for at in instants {
            for status in statuses {
                let seen = SeenStatus::new(status, at);
                assert_eq!((seen.status(), seen.at()), (status, Some(at)));
                all.push(seen);
            }
        }
        // Equal exactly when both status and instant are.
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(a == b, i == j);
            }
        }
    }

    /// Every inbound and delivery of a log is a timeline item, and is held
    /// as one (placed, with its pair's key) while the timelines are built:
    /// 32 and 64 bytes with the item an enum of a `Timestamp` and a flag or
    /// a message.
    #[test]
    fn timeline_item() {
        let item = std::mem::size_of::<super::Item>();
        assert!(item <= 24, "Item is {item} bytes");
        let placed = std::mem::size_of::<super::Placed>();
        assert!(placed <= 56, "Placed is {placed} bytes");
    }

    /// A replay keeps one delivered message per delivery, boxed: 80 bytes
    /// (jemalloc's 80-byte class) with its Messaging account and Meta's
    /// cost inline.
    #[test]
    fn delivered_message() {
        let size = std::mem::size_of::<super::DeliveredMessage>();
        assert!(size <= 64, "DeliveredMessage is {size} bytes");
    }

    /// Every charge shares a trail: 88 bytes with its notes in a vector,
    /// 104 with the shared count, which jemalloc rounds up to 112.
    #[test]
    fn trail() {
        let size = std::mem::size_of::<crate::charge::Trail>();
        assert!(size <= 80, "Trail is {size} bytes");
    }

    /// A replay holds every event of its logs at once: 128 bytes each with
    /// the template inline and a user's country as a shared string.
    #[test]
    fn event() {
        let size = std::mem::size_of::<crate::event::Event>();
        assert!(size <= 104, "Event is {size} bytes");
    }
}

#[cfg(test)]
mod slots {
    use super::*;

    /// As many empty slots as asked, on one thread or many, either side of
    /// the count from which they are made in parallel.
    #[test]
    fn empty_slots_are_as_many_as_asked_and_empty() {
        for count in [
            0,
            1,
            SLOTS_IN_PARALLEL_FROM - 1,
            SLOTS_IN_PARALLEL_FROM,
            3 * SLOTS_IN_PARALLEL_FROM + 7,
        ] {
            for parts in [1, 2, 3] {
                let slots = empty_slots(count, parts);
                assert_eq!(slots.len(), count, "{count} slots on {parts} parts");
                assert!(slots.iter().all(Option::is_none));
            }
        }
    }
}

#[cfg(test)]
mod summaries {
    use super::*;

    proptest::proptest! {
        /// Folding statuses in batches ([`UnownedStatuses::fold_all`])
        /// leaves the table folding them one by one leaves: the same
        /// wamids in the same order, the same summaries, repeats and
        /// count, for runs longer than a batch whose wamids repeat within
        /// a batch and across batches, first seen anywhere in one.
        #[test]
        fn folding_in_batches_is_folding_one_by_one(
            statuses in proptest::collection::vec(
                (0u8..24, 0u8..4, 0i64..6, proptest::bool::ANY),
                0..90,
            ),
        ) {
            let unowned = |line: usize, (wamid, status, second, error): (u8, u8, i64, bool)| {
                let status = match status {
                    0 => DeliveryStatus::Sent,
                    1 => DeliveryStatus::Delivered,
                    2 => DeliveryStatus::Read,
                    _ => DeliveryStatus::Failed,
                };
                UnownedStatus {
                    id: Cow::Owned(format!("wamid.{wamid}")),
                    status,
                    error: (error && status == DeliveryStatus::Failed).then_some(131_026),
                    detail: None,
                    at: Timestamp::from_second(1_767_225_600 + second).unwrap(),
                    origin: Origin { source: 0, line: line as u32 + 1 },
                }
            };
            let mut one_by_one = UnownedStatuses::new();
            for (line, status) in statuses.iter().enumerate() {
                one_by_one.fold(unowned(line, *status));
            }
            let mut batched = UnownedStatuses::new();
            batched.fold_all(
                statuses.iter().enumerate().map(|(line, status)| unowned(line, *status)),
            );
            proptest::prop_assert_eq!(batched.read, one_by_one.read);
            proptest::prop_assert_eq!(batched.duplicates, one_by_one.duplicates);
            fn table<'a>(folded: &'a UnownedStatuses) -> Vec<(String, &'a StatusSummary)> {
                folded
                    .summaries
                    .iter()
                    .map(|(id, summary)| (id.to_string(), summary))
                    .collect()
            }
            proptest::prop_assert_eq!(table(&batched), table(&one_by_one));
        }
    }

    /// A message's statuses are taken in in whatever order the paths that
    /// read them reach them (a replay folds plain lines as it reads, a
    /// webhook body's statuses later, in `prepare`); the summary must not
    /// depend on it. The failure kept is the one read last in the log.
    #[test]
    fn a_summary_does_not_depend_on_the_order_statuses_are_taken_in() {
        let read =
            |line: u32, status: DeliveryStatus, error: Option<i64>, second: i64| StatusRead {
                status,
                error,
                at: Timestamp::from_second(1_767_225_600 + second).unwrap(),
                origin: Origin { source: 0, line },
                cost: None,
                messaging_account: None,
            };
        let statuses = [
            read(3, DeliveryStatus::Failed, Some(131_026), 9),
            read(1, DeliveryStatus::Sent, None, 1),
            read(7, DeliveryStatus::Failed, Some(131_049), 5),
            read(5, DeliveryStatus::Read, None, 4),
            read(2, DeliveryStatus::Delivered, None, 3),
        ];
        let summary_of = |order: &[usize]| {
            let mut summary = StatusSummary::default();
            for &index in order {
                summary.record(statuses[index]);
            }
            let outcome = summary.outcome();
            (outcome.delivered_at(), outcome.failed(), outcome.origin())
        };
        let forward = summary_of(&[0, 1, 2, 3, 4]);
        assert_eq!(
            forward.1,
            Some((Some(131_049), Origin { source: 0, line: 7 }))
        );
        assert_eq!(forward, summary_of(&[4, 3, 2, 1, 0]));
        assert_eq!(forward, summary_of(&[2, 0, 4, 1, 3]));
    }

    fn any_status() -> impl proptest::strategy::Strategy<Value = (u8, i64, Option<i64>, u32)> {
        (0..4u8, -3..4i64, proptest::option::of(0..3i64), 1..50u32)
    }

    proptest::proptest! {
        /// What a summary answers is what its statuses say (D3: the
        /// first `delivered`, else the first `read`; the failure read
        /// last; the least position), however they are split between two
        /// summaries merged, and through an outcome.
        #[test]
        fn a_summary_answers_what_its_statuses_say(
            statuses in proptest::collection::vec(any_status(), 0..12),
            split in proptest::collection::vec(proptest::bool::ANY, 12),
        ) {
            let kinds = [
                DeliveryStatus::Sent,
                DeliveryStatus::Delivered,
                DeliveryStatus::Read,
                DeliveryStatus::Failed,
            ];
            // Positions in any order, but distinct: two statuses on one
            // line (a webhook body's) that both fail is a tie the summaries
            // do not promise to break alike.
            let reads: Vec<StatusRead> = statuses
                .iter()
                .enumerate()
                .map(|(at, &(kind, second, error, line))| StatusRead {
                    status: kinds[kind as usize],
                    error,
                    // Some before 1970: a negative second with nanoseconds.
                    at: Timestamp::new(second * 1_000, if second < 0 { -5 } else { 5 }).unwrap(),
                    origin: Origin { source: 0, line: line * 100 + at as u32 },
                    cost: None,
                    messaging_account: None,
                })
                .collect();
            // An exact repeat of a status is a duplicate, counted apart,
            // and which copy a summary keeps depends on where it is read:
            // one of each here.
            let mut reads = reads;
            let mut kept = std::collections::HashSet::new();
            reads.retain(|r| kept.insert((r.status, r.at)));
            let first = |status| reads.iter().filter(|r| r.status == status).map(|r| r.at).min();
            let expected = (
                first(DeliveryStatus::Delivered).or(first(DeliveryStatus::Read)),
                reads
                    .iter()
                    .filter(|r| r.status == DeliveryStatus::Failed)
                    .map(|r| (r.error, r.origin))
                    .fold(None, |kept, failed| later_failure(kept, Some(failed))),
                reads.iter().map(|r| r.origin).min(),
            );
            let answers = |summary: &StatusSummary| (summary.delivered_at(), summary.failed(), summary.origin());
            let (mut whole, mut a, mut b) = Default::default();
            for (read, left) in reads.iter().zip(&split) {
                let _: bool = StatusSummary::record(&mut whole, *read);
                let half: &mut StatusSummary = if *left { &mut a } else { &mut b };
                half.record(*read);
            }
            proptest::prop_assert_eq!(answers(&whole), expected);
            proptest::prop_assert_eq!(answers(&whole.outcome()), expected);
            proptest::prop_assert_eq!(answers(&a.merged(&b)), expected);
            proptest::prop_assert_eq!(answers(&a.outcome().merged(&b.outcome())), expected);
        }
    }
}

#[cfg(test)]
mod pairs {
    use super::*;
    use proptest::prelude::*;

    /// Text that tests the keys' edges: shared 16-byte prefixes, strings
    /// longer than 16 bytes, zero bytes (a zero-padded prefix ties with
    /// them), and characters past ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,18}",
            "(5511999990000|abcdefghijklmnop)[0-9\u{0}\u{e9}]{0,3}",
            "[a\u{0}\u{ff}]{0,3}",
        ]
    }

    /// The least and greatest instants, and either side of the epoch,
    /// keep their order and positions in a delivery key.
    #[test]
    fn delivery_keys_at_the_ends_of_time() {
        let instants = [
            Timestamp::MIN,
            Timestamp::new(-1, -1).unwrap(),
            Timestamp::new(-1, 0).unwrap(),
            Timestamp::new(0, -1).unwrap(),
            Timestamp::UNIX_EPOCH,
            Timestamp::new(0, 1).unwrap(),
            Timestamp::MAX,
        ];
        let keys: Vec<u128> = instants
            .iter()
            .flat_map(|at| [0, 1, u32::MAX].map(|position| delivery_key(*at, position)))
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(keys.last().map(|key| key_position(*key)), Some(u32::MAX));
    }

    proptest! {
        #[test]
        fn sort_pairs_sorts_as_comparing_the_pairs_does(
            pairs in prop::collection::vec((text(), any::<bool>(), text()), 0..60),
        ) {
            let mut contacts: Vec<ContactTimeline> = pairs
                .into_iter()
                .map(|(business, scoped, user)| ContactTimeline {
                    business: business.into(),
                    user: match scoped {
                        true => UserId::Bsuid(user.into(), None),
                        false => UserId::Phone(user.into()),
                    },
                    items: Vec::new(),
                })
                .collect();
            let mut expected = contacts.clone();
            expected.sort_by(|a, b| (&a.business, &a.user).cmp(&(&b.business, &b.user)));
            sort_pairs(&mut contacts);
            let pair = |c: &ContactTimeline| (c.business.clone(), c.user.clone());
            prop_assert_eq!(
                contacts.iter().map(pair).collect::<Vec<_>>(),
                expected.iter().map(pair).collect::<Vec<_>>()
            );
        }

        #[test]
        fn delivery_keys_order_as_instant_then_position(
            a in (any::<i64>(), any::<i32>(), any::<u32>()),
            b in (any::<i64>(), any::<i32>(), any::<u32>()),
        ) {
            // Any instant jiff allows, its fraction of either sign.
            let at = |(second, nanosecond, _): (i64, i32, u32)| {
                let second = second.rem_euclid(2 * 377_705_116_800) - 377_705_116_800;
                Timestamp::new(second, nanosecond % 1_000_000_000).unwrap_or(Timestamp::MIN)
            };
            let (a_at, b_at) = (at(a), at(b));
            prop_assert_eq!(
                delivery_key(a_at, a.2).cmp(&delivery_key(b_at, b.2)),
                (a_at, a.2).cmp(&(b_at, b.2))
            );
            prop_assert_eq!(key_position(delivery_key(a_at, a.2)), a.2);
        }

        #[test]
        fn permute_puts_each_item_where_the_order_says(
            order in Just((0..40u32).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let mut items: Vec<u32> = (100..140).collect();
            permute(&mut items, order.clone());
            let expected: Vec<u32> = order.iter().map(|from| from + 100).collect();
            prop_assert_eq!(items, expected);
        }

        #[test]
        fn permute_slots_puts_each_item_where_the_order_says(
            order in Just((0..40u32).collect::<Vec<_>>()).prop_shuffle(),
            empty in proptest::collection::vec(proptest::bool::weighted(0.2), 40),
        ) {
            let slot = |at: u32| (!empty[at as usize]).then_some(at + 100);
            let mut items: Vec<Option<u32>> = (0..40).map(slot).collect();
            permute_slots(&mut items, order.clone());
            let expected: Vec<Option<u32>> = order.iter().map(|from| slot(*from)).collect();
            prop_assert_eq!(items, expected);
        }
    }
}
