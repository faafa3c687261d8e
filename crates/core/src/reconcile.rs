//! Reconciliation: where Meta's verdict and the engine's differ, and why.
//!
//! Meta puts its verdict on every delivered message in the status webhook's
//! `pricing` object (model, category, type, billable) and, under CBP, the
//! `conversation` the message counted in. The engine decides the same
//! things independently from the traffic (docs/rules.md: "the rules never
//! silently defer to it"). This module lines the two up message by message,
//! names each field that differs, and guesses the likeliest cause from what
//! the log shows — a template re-categorised, a window that closed earlier
//! than the sender thought, an entry point Meta did or did not grant, a
//! business time zone that moves an era boundary.
//!
//! It also lists *template category drift*: templates sent as one category
//! but priced by Meta as another, or re-categorised by a
//! `template_category_update` before the send, with what the difference
//! costs — found by replaying the log again with the categories Meta applies.
//!
//! [`compare_analytics`] does the same at the level of Meta's Graph
//! analytics: per time bucket × category × country.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::category::{PricingModel, PricingType, TemplateCategory};
use crate::charge::Charge;
use crate::engine::{Engine, Report};
use crate::event::{DeliveryStatus, Event, EventKind, MetaPricing, Origin, StatusDetail};
use crate::money::Currency;
use crate::notice::{Notice, NoticeKind};
use crate::rules::calling::CallCharge;
use crate::settlement::Month;

/// Meta's verdict on one message: the `pricing` (and `conversation`) of
/// its most telling status — `delivered`, else `read`, else `sent` (the
/// `sent` one is a forecast, not proof of charge; docs/rules.md §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaVerdict {
    /// The wamid.
    pub message_id: Box<str>,
    /// The status that carried it.
    pub status: DeliveryStatus,
    /// When that status was sent.
    pub at: Timestamp,
    /// The `pricing` object.
    pub pricing: MetaPricing,
    /// `conversation.id`, when given.
    pub conversation_id: Option<Box<str>>,
}

/// A message as reconciliation keys it: the business its status names
/// (`""`: none) and the wamid. A verdict about one business's message is
/// never compared with another business's message of the same id (D17).
pub type MessageKey = (Box<str>, Box<str>);

/// Meta's verdicts in a log by (business its status names, wamid), found
/// by borrowed keys: every charge of a month is looked up, and a lookup
/// that built its key allocated two strings. Dense.
///
/// A message's verdict is its most telling priced status: the lowest
/// (rank, instant, origin), ranking `delivered`, `read`, `sent`, then
/// `failed`. So it does not depend on the order the statuses come in, and
/// [`Verdicts::fold`] keeps it up one status at a time (the server's
/// incremental meter) with the same result as [`meta_verdicts`] of all.
#[derive(Clone, Debug, Default)]
pub struct Verdicts {
    by_key: indexmap::IndexMap<MessageKey, (MetaVerdict, Origin), foldhash::fast::RandomState>,
}

/// A [`MessageKey`] borrowed: hashes as the owned key does (a `str` hashes
/// the same behind a box or a reference, and a pair hashes its halves in
/// order).
#[derive(Hash)]
struct Borrowed<'a>(&'a str, &'a str);

impl indexmap::Equivalent<MessageKey> for Borrowed<'_> {
    fn equivalent(&self, key: &MessageKey) -> bool {
        self.0 == &*key.0 && self.1 == &*key.1
    }
}

/// What decides between two priced statuses of a message: the lowest wins.
type Telling = (u8, Timestamp, Origin);

fn telling(status: DeliveryStatus, at: Timestamp, origin: Origin) -> Telling {
    let rank = match status {
        DeliveryStatus::Delivered => 0,
        DeliveryStatus::Read => 1,
        DeliveryStatus::Sent => 2,
        DeliveryStatus::Failed => 3,
    };
    (rank, at, origin)
}

/// A status carrying Meta's pricing: its wamid, status, detail and
/// pricing.
fn priced_status(event: &Event) -> Option<(&str, DeliveryStatus, &StatusDetail, &MetaPricing)> {
    let EventKind::Status {
        id,
        status,
        detail: Some(detail),
        ..
    } = &event.kind
    else {
        return None;
    };
    Some((id, *status, detail, detail.pricing.as_ref()?))
}

/// (business, wamid) and how telling a priced status is.
fn priced(event: &Event) -> Option<(Borrowed<'_>, Telling)> {
    let (id, status, detail, _) = priced_status(event)?;
    Some((
        Borrowed(detail.business.as_deref().unwrap_or(""), id),
        telling(status, event.at, event.origin),
    ))
}

/// The verdict a priced status gives.
fn verdict(event: &Event) -> Option<MetaVerdict> {
    let (id, status, detail, pricing) = priced_status(event)?;
    Some(MetaVerdict {
        message_id: Box::from(id),
        status,
        at: event.at,
        pricing: pricing.clone(),
        conversation_id: detail.conversation.as_ref().and_then(|c| c.id.clone()),
    })
}

/// The key of a priced status's verdict.
fn verdict_key(event: &Event) -> Option<MessageKey> {
    let (id, _, detail, _) = priced_status(event)?;
    Some((detail.business.clone().unwrap_or_default(), Box::from(id)))
}

impl Verdicts {
    /// Meta's verdict on the message `business` sent as `id`: the verdict
    /// of a status naming that business, else of one naming none.
    pub fn of(&self, business: &str, id: &str) -> Option<&MetaVerdict> {
        self.by_key
            .get(&Borrowed(business, id))
            .or_else(|| self.by_key.get(&Borrowed("", id)))
            .map(|(verdict, _)| verdict)
    }

    /// Every verdict with its (business, wamid), in no promised order.
    pub fn iter(&self) -> impl Iterator<Item = ((&str, &str), &MetaVerdict)> {
        self.by_key
            .iter()
            .map(|((business, id), (verdict, _))| ((&**business, &**id), verdict))
    }

    /// How many (business, wamid)s have a verdict.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Takes one more event: a priced status more telling than its
    /// message's verdict so far becomes the verdict.
    pub fn fold(&mut self, event: &Event) {
        let Some((key, order)) = priced(event) else {
            return;
        };
        match self.by_key.get_mut(&key) {
            Some((seen, origin)) => {
                if order < telling(seen.status, seen.at, *origin)
                    && let Some(verdict) = verdict(event)
                {
                    *seen = verdict;
                    *origin = event.origin;
                }
            }
            None => {
                if let (Some(key), Some(verdict)) = (verdict_key(event), verdict(event)) {
                    self.by_key.insert(key, (verdict, event.origin));
                }
            }
        }
    }
}

/// Meta's verdicts by (business, wamid), from the statuses in a log.
///
/// The winning status of each message is found first, by position, and
/// only the winners are copied out: a message has two or three priced
/// statuses (`sent`, `delivered`, `read`), and copying each candidate's
/// pricing was most of the time this took.
pub fn meta_verdicts(events: &[Event]) -> Verdicts {
    use std::hash::BuildHasher;
    let state = foldhash::fast::RandomState::default();
    let hash =
        |position: &usize| priced(&events[*position]).map_or(0, |(key, _)| state.hash_one(key));
    // Positions of the winners: a few bytes a message while the statuses
    // are read.
    let mut best: hashbrown::HashTable<usize> = hashbrown::HashTable::new();
    for (position, event) in events.iter().enumerate() {
        let Some((key, order)) = priced(event) else {
            continue;
        };
        let same = |seen: &usize| {
            priced(&events[*seen]).is_some_and(|(seen, _)| seen.0 == key.0 && seen.1 == key.1)
        };
        match best.entry(state.hash_one(&key), same, hash) {
            hashbrown::hash_table::Entry::Occupied(mut seen) => {
                if priced(&events[*seen.get()]).is_some_and(|(_, was)| order < was) {
                    *seen.get_mut() = position;
                }
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(position);
            }
        }
    }
    let mut positions: Vec<usize> = best.into_iter().collect();
    positions.sort_unstable();
    let mut verdicts = Verdicts::default();
    verdicts.by_key.reserve_exact(positions.len());
    for position in positions {
        let event = &events[position];
        if let (Some(key), Some(verdict)) = (verdict_key(event), verdict(event)) {
            verdicts.by_key.insert(key, (verdict, event.origin));
        }
    }
    verdicts
}

/// One message where Meta and the engine disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct Discrepancy {
    /// The wamid.
    pub message_id: Box<str>,
    /// Meta's verdict.
    pub meta: MetaVerdict,
    /// The engine's charge, with its explanation.
    pub engine: Charge,
    /// The fields that differ: `pricing_model`, `category`, `type`,
    /// `billable`, `conversation`.
    pub fields: Vec<&'static str>,
    /// The likeliest cause, in a sentence.
    pub cause: String,
}

/// A template whose category at send differs from the one Meta applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryDrift {
    /// Template name.
    pub template: Box<str>,
    /// The category the sends said.
    pub sent_as: TemplateCategory,
    /// The category Meta applies.
    pub priced_as: TemplateCategory,
    /// How we know: `pricing` (Meta's status priced it so) or
    /// `template_category_update` (with when it took effect).
    pub evidence: String,
    /// Delivered messages affected.
    pub messages: u64,
    /// Currency of the amounts.
    pub currency: Currency,
    /// What those messages cost as sent.
    pub amount_as_sent: Decimal,
    /// What they cost at the category Meta applies.
    pub amount_as_priced: Decimal,
}

impl CategoryDrift {
    /// `amount_as_priced − amount_as_sent`.
    pub fn impact(&self) -> Decimal {
        self.amount_as_priced - self.amount_as_sent
    }

    /// What a line is one of: (template, sent as, priced as, currency).
    /// [`Share`]s' lines of one key add up to the whole log's line.
    pub fn key(&self) -> DriftKey {
        (
            self.template.clone(),
            self.sent_as,
            self.priced_as,
            self.currency,
        )
    }

    /// Counts `part`'s messages and amounts in too (a line of the same
    /// [`CategoryDrift::key`]).
    pub fn add(&mut self, part: &CategoryDrift) {
        self.messages += part.messages;
        self.amount_as_sent += part.amount_as_sent;
        self.amount_as_priced += part.amount_as_priced;
    }
}

/// The result of [`reconcile`].
#[derive(Clone, Debug, Default)]
pub struct Reconciliation {
    /// Delivered messages with a Meta verdict, compared field by field.
    pub compared: u64,
    /// Compared messages where every field agrees.
    pub agreements: u64,
    /// The others, in delivery order.
    pub discrepancies: Vec<Discrepancy>,
    /// Messages Meta priced (on `sent`) that the log never shows delivered:
    /// neither side charges them.
    pub not_delivered: u64,
    /// Delivered messages Meta priced that the engine could not rate: no
    /// `outbound` event, and a status too incomplete to stand in for one
    /// (no business or recipient, or a category that names no message).
    pub unrated: u64,
    /// Delivered messages with no Meta verdict in the log.
    pub without_verdict: u64,
    /// Template category drift, by template.
    pub drift: Vec<CategoryDrift>,
    /// Whole-log cost difference if every drifted send is priced at the
    /// category Meta applies (includes CBP knock-on effects), per currency.
    pub drift_total: Vec<(Currency, Decimal)>,
    /// The engine's report on the log as given.
    pub report: Report,
    /// Delivered messages Meta priced as `marketing_lite` (Marketing
    /// Messages API sends), by (business, wamid): analytics count them so.
    pub marketing_lite: Vec<(Box<str>, Box<str>)>,
    /// The same comparison broken down by business phone number, the
    /// Messaging account billed (when the charge names one) and the
    /// business-local month of delivery, so that parts reconciled apart (a
    /// portfolio's month each) add up to what a reader is shown (only their
    /// accounts, only some months) without reconciling again.
    pub shares: BTreeMap<ShareKey, Share>,
}

/// (business phone number, Messaging account, month) of a [`Share`].
pub type ShareKey = (Box<str>, Option<Box<str>>, Month);

/// The [`ShareKey`] of a charge.
fn share_of(charge: &Charge) -> ShareKey {
    (
        Box::from(&*charge.business),
        charge.messaging_account.as_deref().map(Box::from),
        Month::of(charge.local_date),
    )
}

/// One business number's part of a [`Reconciliation`] in one month.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Share {
    /// Its delivered messages with a Meta verdict.
    pub compared: u64,
    /// Those where every field agrees.
    pub agreements: u64,
    /// Indices into [`Reconciliation::discrepancies`] of its others.
    pub discrepancies: Vec<usize>,
    /// Its drifted sends, by template as [`Reconciliation::drift`] lists
    /// them (the lines of all shares add up to those).
    pub drift: Vec<CategoryDrift>,
}

/// Compares Meta's verdicts in `events` with the engine's decisions.
/// `events` should already hold the outbounds inferred from Meta's pricing
/// ([`crate::event::outbounds_from_pricing`]), as `replay` does.
pub fn reconcile(engine: &Engine, events: Vec<Event>, notices: &[Notice]) -> Reconciliation {
    let verdicts = meta_verdicts(&events);
    let updates = category_updates(notices);
    let mut marketing_lite: Vec<(Box<str>, Box<str>)> = verdicts
        .iter()
        .filter(|(_, v)| &*v.pricing.category == "marketing_lite")
        .map(|((business, id), _)| (Box::from(business), Box::from(id)))
        .collect();
    marketing_lite.sort_unstable();
    // Kept for the drift replay (the first replay consumes its events),
    // but only when a send can have drifted: a copy of every event doubled
    // what reconciling a month holds, for the drift most months lack.
    let kept = may_drift(&events, &verdicts, &updates).then(|| events.clone());
    let report = engine.replay(events);
    let drifted = drifted_sends(&report.charges, &verdicts, &updates);
    debug_assert!(
        drifted.is_empty() || kept.is_some(),
        "may_drift must hold wherever drifted_sends finds a send"
    );
    let mut result = Reconciliation {
        marketing_lite,
        ..Reconciliation::default()
    };

    let delivered: std::collections::HashSet<(&str, &str)> = report
        .charges
        .iter()
        .map(|c| (&*c.business, &*c.message_id))
        .collect();
    let delivered_ids: std::collections::HashSet<&str> =
        report.charges.iter().map(|c| &*c.message_id).collect();
    for ((business, id), verdict) in verdicts.iter() {
        let charged = if business.is_empty() {
            delivered_ids.contains(id)
        } else {
            delivered.contains(&(business, id))
        };
        if charged {
            continue;
        }
        // The verdict's own status says whether the log shows a delivery.
        if matches!(
            verdict.status,
            DeliveryStatus::Delivered | DeliveryStatus::Read
        ) {
            result.unrated += 1;
        } else {
            result.not_delivered += 1;
        }
    }
    let mut comparer = Comparer::default();
    for charge in &report.charges {
        let Some(verdict) = verdicts.of(&charge.business, &charge.message_id) else {
            result.without_verdict += 1;
            continue;
        };
        result.compared += 1;
        let share = result.shares.entry(share_of(charge)).or_default();
        share.compared += 1;
        let (fields, grouping) = comparer.compare(charge, verdict);
        if fields.is_empty() {
            result.agreements += 1;
            share.agreements += 1;
            continue;
        }
        share.discrepancies.push(result.discrepancies.len());
        let cause = grouping
            .filter(|_| fields == ["conversation"])
            .unwrap_or_else(|| cause(charge, verdict, &fields, &updates));
        result.discrepancies.push(Discrepancy {
            message_id: Box::from(&*charge.message_id),
            meta: verdict.clone(),
            engine: charge.clone(),
            fields,
            cause,
        });
    }

    if let (false, Some(events)) = (drifted.is_empty(), kept) {
        let (drift, total, parts) = price_drift(engine, events, &drifted, &report);
        result.drift = drift;
        result.drift_total = total;
        for ((share, _), line) in parts {
            result.shares.entry(share).or_default().drift.push(line);
        }
    }
    result.report = report;
    result
}

/// Compares charges with Meta's verdicts one by one, in delivery order,
/// keeping the CBP conversations paired so far (Meta's ↔ the engine's, both
/// ways): a pairing that breaks is a grouping difference.
#[derive(Default)]
struct Comparer<'c> {
    meta_to_engine: HashMap<&'c str, (&'c str, &'c str)>,
    engine_to_meta: HashMap<&'c str, (&'c str, &'c str)>,
}

impl<'c> Comparer<'c> {
    /// The fields of `charge` that differ from `verdict`, and the grouping
    /// difference in a sentence when `conversation` is one of them.
    fn compare(
        &mut self,
        charge: &'c Charge,
        verdict: &'c MetaVerdict,
    ) -> (Vec<&'static str>, Option<String>) {
        let mut fields = Vec::new();
        let meta = &verdict.pricing;
        if meta
            .pricing_model
            .as_deref()
            .is_some_and(|m| m != charge.pricing_model.as_str())
        {
            fields.push("pricing_model");
        }
        let same_category = &*meta.category == charge.category.as_str()
            || (&*meta.category == "marketing_lite" && charge.category.as_str() == "marketing");
        if !same_category {
            fields.push("category");
        }
        if meta
            .pricing_type
            .as_deref()
            .is_some_and(|t| t != charge.pricing_type.as_str())
        {
            fields.push("type");
        }
        if meta.billable.is_some_and(|b| b != charge.billable) {
            fields.push("billable");
        }
        let mut grouping = None;
        if let (Some(meta_id), Some(engine_id), PricingModel::Cbp, Some("CBP")) = (
            &verdict.conversation_id,
            &charge.conversation_id,
            charge.pricing_model,
            meta.pricing_model.as_deref(),
        ) {
            let by_meta = *self
                .meta_to_engine
                .entry(meta_id)
                .or_insert((engine_id, &charge.message_id));
            let by_engine = *self
                .engine_to_meta
                .entry(engine_id)
                .or_insert((meta_id, &charge.message_id));
            if by_meta.0 != engine_id {
                grouping = Some(format!(
                    "conversation grouping: Meta counted this message in conversation {meta_id} with {}, the engine opened another ({engine_id})",
                    by_meta.1
                ));
            } else if by_engine.0 != &**meta_id {
                grouping = Some(format!(
                    "conversation grouping: the engine counted this message in conversation {engine_id} with {}, Meta opened another ({meta_id})",
                    by_engine.1
                ));
            }
            if grouping.is_some() {
                fields.push("conversation");
            }
        }
        (fields, grouping)
    }
}

/// How many charges Meta's verdicts were compared with, by share, when
/// every one agrees and no send drifted: what [`reconcile`] finds then
/// ([`Reconciliation::shares`], each with as many agreements and nothing
/// else), from charges already priced (the incremental meter's) instead
/// of a replay. `None` when a charge differs or a send drifted: a
/// discrepancy's cause reads the explanation such charges lack, and drift
/// is priced by a replay, so the caller reconciles in full.
///
/// Only the shares `wanted` accepts count, as a caller keeps only some of
/// [`reconcile`]'s (a month's, of some businesses): a charge of another
/// share may differ. `charges` in delivery order, as [`Engine::replay`]
/// gives them: which charge shows a grouping difference depends on the
/// charges before it, wanted or not.
pub fn agreement<'c>(
    charges: &[&'c Charge],
    verdicts: &'c Verdicts,
    notices: &[Notice],
    wanted: impl Fn(&ShareKey) -> bool,
) -> Option<BTreeMap<ShareKey, u64>> {
    let updates = category_updates(notices);
    let mut comparer = Comparer::default();
    let mut compared: BTreeMap<ShareKey, u64> = BTreeMap::new();
    for &charge in charges {
        let Some(verdict) = verdicts.of(&charge.business, &charge.message_id) else {
            continue;
        };
        let differs = !comparer.compare(charge, verdict).0.is_empty();
        let share = share_of(charge);
        if !wanted(&share) {
            continue;
        }
        if differs {
            return None;
        }
        *compared.entry(share).or_default() += 1;
    }
    let wanted_charges = charges
        .iter()
        .copied()
        .filter(|charge| wanted(&share_of(charge)));
    drifted_sends(wanted_charges, verdicts, &updates)
        .is_empty()
        .then_some(compared)
}

/// The category in force for a template, as `template_category_update`s
/// say, by template name: (effective instant, category, evidence).
type Updates = BTreeMap<Box<str>, Vec<(Timestamp, TemplateCategory, String)>>;

fn category_updates(notices: &[Notice]) -> Updates {
    let mut updates: Updates = BTreeMap::new();
    for notice in notices {
        let NoticeKind::TemplateCategoryUpdate {
            template,
            new_category,
            correct_category,
            effective_at,
            previous_category,
        } = &notice.kind
        else {
            continue;
        };
        let Some(name) = &template.template_name else {
            continue;
        };
        let list = updates.entry(name.clone()).or_default();
        let from = previous_category
            .as_deref()
            .map(|p| format!("{p} → "))
            .unwrap_or_default();
        if let (Some(at), Some(category)) = (
            notice.at,
            new_category.as_deref().and_then(TemplateCategory::parse),
        ) {
            list.push((
                at,
                category,
                format!(
                    "template_category_update {from}{category} at {at}",
                    category = category.as_str()
                ),
            ));
        }
        // A pending re-categorisation: `correct_category` from its timestamp.
        if let (Some(at), Some(category)) = (
            effective_at.or(notice.at),
            correct_category
                .as_deref()
                .and_then(TemplateCategory::parse),
        ) {
            list.push((
                at,
                category,
                format!("template_category_update: {} from {at}", category.as_str()),
            ));
        }
    }
    for list in updates.values_mut() {
        list.sort();
    }
    updates
}

/// The category a template had at `at` according to the updates, if any.
fn category_at<'u>(
    updates: &'u Updates,
    template: &str,
    at: Timestamp,
) -> Option<&'u (Timestamp, TemplateCategory, String)> {
    updates
        .get(template)?
        .iter()
        .rev()
        .find(|(from, _, _)| *from <= at)
}

/// A logged template send whose category differs from Meta's.
struct DriftedSend {
    template: Box<str>,
    sent_as: TemplateCategory,
    priced_as: TemplateCategory,
    evidence: String,
}

/// Whether [`drifted_sends`] can find any send, from the events alone
/// (before they are replayed): a category update names some template, or
/// Meta's verdict on a template send gives another category than the
/// send's. `drifted_sends` finds a send only where one of these holds
/// (its verdict is looked up the same way, by the send's business and
/// wamid).
fn may_drift(events: &[Event], verdicts: &Verdicts, updates: &Updates) -> bool {
    !updates.is_empty()
        || events.iter().any(|event| match &event.kind {
            EventKind::Outbound {
                business,
                id,
                template: Some(template),
                ..
            } => verdicts
                .of(business, id)
                .and_then(|verdict| verdict.pricing.template_category())
                .is_some_and(|category| category != template.category),
            _ => false,
        })
}

/// Delivered template sends (by wamid) whose category is not the one Meta
/// applies. The charge's delivery instant — the engine's, so the same one
/// that priced it — decides which update is in force; a send that was
/// never delivered is not charged and cannot drift.
fn drifted_sends<'c>(
    charges: impl IntoIterator<Item = &'c Charge>,
    verdicts: &Verdicts,
    updates: &Updates,
) -> BTreeMap<MessageKey, DriftedSend> {
    let mut drifted = BTreeMap::new();
    for charge in charges {
        let Some(template) = &charge.trail.template else {
            continue;
        };
        let id = &charge.message_id;
        let verdict = verdicts.of(&charge.business, id);
        if template.name.is_empty() && verdict.is_none() {
            continue;
        }
        let by_meta = verdict.and_then(|v| v.pricing.template_category().map(|c| (c, v)));
        let found = match by_meta {
            Some((category, verdict)) => Some((
                category,
                format!(
                    "Meta priced it as {} ({} status at {})",
                    verdict.pricing.category,
                    verdict.status.as_str(),
                    verdict.at
                ),
            )),
            None => category_at(updates, &template.name, charge.delivered_at)
                .map(|(_, category, evidence)| (*category, evidence.clone())),
        };
        if let Some((priced_as, evidence)) = found
            && priced_as != template.category
        {
            drifted.insert(
                (Box::from(&*charge.business), Box::from(&**id)),
                DriftedSend {
                    template: template.name.clone(),
                    sent_as: template.category,
                    priced_as,
                    evidence,
                },
            );
        }
    }
    drifted
}

/// Drift lines by share and template line: the parts of a
/// [`CategoryDrift`] that [`Share`]s hold.
type DriftParts = BTreeMap<(ShareKey, DriftKey), CategoryDrift>;

/// What a [`CategoryDrift`] line is one of.
pub type DriftKey = (Box<str>, TemplateCategory, TemplateCategory, Currency);

/// Replays the log with each drifted send at the category Meta applies and
/// sums, per template, what its drifted messages cost each way (and the
/// same per business number and month).
fn price_drift(
    engine: &Engine,
    mut events: Vec<Event>,
    drifted: &BTreeMap<MessageKey, DriftedSend>,
    as_sent: &Report,
) -> (Vec<CategoryDrift>, Vec<(Currency, Decimal)>, DriftParts) {
    for event in &mut events {
        if let EventKind::Outbound {
            business,
            id,
            template: Some(template),
            ..
        } = &mut event.kind
            && let Some(send) = drifted.get(&(Box::from(&**business), Box::from(&**id)))
        {
            std::sync::Arc::make_mut(template).category = send.priced_as;
        }
    }
    let as_priced = engine.replay(events);
    let priced: HashMap<(&str, &str), &Charge> = as_priced
        .charges
        .iter()
        .map(|c| ((&*c.business, &*c.message_id), c))
        .collect();
    let mut by_template: BTreeMap<DriftKey, CategoryDrift> = BTreeMap::new();
    let mut parts = DriftParts::new();
    for charge in &as_sent.charges {
        let Some(send) =
            drifted.get(&(Box::from(&*charge.business), Box::from(&*charge.message_id)))
        else {
            continue;
        };
        let key = (
            send.template.clone(),
            send.sent_as,
            send.priced_as,
            charge.currency,
        );
        let empty = || CategoryDrift {
            template: send.template.clone(),
            sent_as: send.sent_as,
            priced_as: send.priced_as,
            evidence: send.evidence.clone(),
            messages: 0,
            currency: charge.currency,
            amount_as_sent: Decimal::ZERO,
            amount_as_priced: Decimal::ZERO,
        };
        let as_priced = priced
            .get(&(&*charge.business, &*charge.message_id))
            .map_or(Decimal::ZERO, |c| c.amount);
        let part = (share_of(charge), key.clone());
        for line in [
            by_template.entry(key).or_insert_with(empty),
            parts.entry(part).or_insert_with(empty),
        ] {
            line.messages += 1;
            line.amount_as_sent += charge.amount;
            line.amount_as_priced += as_priced;
        }
    }
    let sent_totals = crate::report::totals(&as_sent.charges);
    let priced_totals = crate::report::totals(&as_priced.charges);
    let mut total: BTreeMap<Currency, Decimal> = BTreeMap::new();
    for t in priced_totals {
        *total.entry(t.currency).or_default() += t.amount;
    }
    for t in sent_totals {
        *total.entry(t.currency).or_default() -= t.amount;
    }
    (
        by_template.into_values().collect(),
        total.into_iter().collect(),
        parts,
    )
}

/// The likeliest reason for a difference, from what the log shows.
/// Pricing types and categories this version knows; a value outside them
/// is one Meta added later (decision D16), reconciled as unknown.
const KNOWN_TYPES: &[&str] = &[
    "regular",
    "free_customer_service",
    "free_entry_point",
    "free_tier",
    "free_group_customer_service",
];
const KNOWN_CATEGORIES: &[&str] = &[
    "marketing",
    "marketing_lite",
    "utility",
    "authentication",
    "authentication_international",
    "service",
    "referral_conversion",
    "business_initiated",
    "user_initiated",
];

fn cause(charge: &Charge, verdict: &MetaVerdict, fields: &[&str], updates: &Updates) -> String {
    let meta = &verdict.pricing;
    let trail = &charge.trail;
    let explained = trail.explained();
    let unknown_type = meta
        .pricing_type
        .as_deref()
        .filter(|t| fields.contains(&"type") && !KNOWN_TYPES.contains(t));
    let unknown_category = Some(&*meta.category)
        .filter(|c| fields.contains(&"category") && !KNOWN_CATEGORIES.contains(c));
    if let Some(value) = unknown_type.or(unknown_category) {
        return format!(
            "unknown: Meta's value `{value}` is one this version does not know (decision D16: kept as it came, never an error); the engine priced the message as {} {}",
            charge.category,
            charge.pricing_type.as_str()
        );
    }
    if fields.contains(&"category")
        && let Some(template) = &trail.template
    {
        let meta_category = meta.template_category();
        if let Some((at, category, _)) = category_at(updates, &template.name, charge.delivered_at)
            && Some(*category) == meta_category
        {
            return format!(
                "template re-categorised: `{}` became {} at {at} (template_category_update); the send still said {}",
                template.name,
                category.as_str(),
                template.category.as_str()
            );
        }
        if meta_category.is_some() {
            return format!(
                "template re-categorised: `{}` was sent as {} but Meta priced it as {}; no template_category_update in the log says when it changed (or the send log's category is stale)",
                if template.name.is_empty() {
                    "(unnamed)"
                } else {
                    &template.name
                },
                template.category.as_str(),
                meta.category
            );
        }
    }
    if fields.contains(&"pricing_model") {
        return format!(
            "era boundary: delivered {} (business-local date {} in {}), which the engine prices under {}; Meta used {} — check the business's time zone in the accounts file (decision D2)",
            charge.delivered_at,
            charge.local_date,
            explained.map_or("its time zone", |e| &*e.timezone),
            charge.ruleset.id(),
            meta.pricing_model.as_deref().unwrap_or("?")
        );
    }
    let meta_type = meta.pricing_type.as_deref();
    let last_inbound = explained
        .and_then(|e| e.last_inbound_at)
        .map_or_else(|| "none in the log".to_string(), |t| t.to_string());
    match (meta_type, charge.pricing_type) {
        (Some("free_customer_service"), PricingType::Regular) => {
            return format!(
                "window: Meta saw an open customer service window at delivery ({}), the log shows none (user's last inbound: {last_inbound}) — are inbound webhooks missing from the log?",
                charge.delivered_at
            );
        }
        (Some("regular"), PricingType::FreeCustomerService) => {
            let window = explained
                .and_then(|e| e.customer_service_window)
                .map_or_else(String::new, |w| {
                    format!(
                        " (the log's window opened {} and closes {})",
                        w.opened_at, w.closes_at
                    )
                });
            return format!(
                "window closed earlier than the sender thought: Meta charged it as outside the customer service window, the engine found it inside{window}; sent {}, delivered {} — Meta may judge the window at another instant, or the user's message reached another number",
                trail.sent_at, charge.delivered_at
            );
        }
        (Some("free_entry_point"), _) => {
            return "entry point: Meta granted a free entry point, but the log has no ad-referral inbound answered within 24 h (click-to-WhatsApp referral or Page call-to-action missing from the log?)".to_string();
        }
        (_, PricingType::FreeEntryPoint) => {
            return "entry point: the engine opened a free entry point from an ad-referral inbound, Meta did not (the reply may have come later than 24 h by Meta's clock, or the referral was not a click-to-WhatsApp ad)".to_string();
        }
        _ => {}
    }
    if fields == ["billable"] {
        let date = charge.local_date;
        let uncertain_service = charge.category.as_str() == "service"
            && charge.pricing_model == PricingModel::Cbp
            && date >= jiff::civil::date(2024, 11, 1);
        if uncertain_service {
            return "known uncertainty: Meta's `billable` flag for service conversations from 2024-11-01 to 2025-06-30 (Gupshup says false, one Meta example says true; docs/rules.md §6.7, decision D8) — the amount is 0 either way".to_string();
        }
        if charge.pricing_type == PricingType::FreeTier || meta_type == Some("free_tier") {
            return "free tier: Meta and the engine count the monthly free conversations differently (order, or FEP conversations; decision D7)".to_string();
        }
    }
    format!(
        "rules differ on {}: the engine applied {} / {} ({}); compare with Meta's verdict",
        fields.join(", "),
        charge.ruleset.id(),
        charge.rule,
        charge.reason
    )
}

/// One bucket of Meta's `pricing_analytics`, `conversation_analytics` or
/// `call_analytics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyticsPoint {
    /// Bucket start (inclusive).
    pub start: Timestamp,
    /// Bucket end (exclusive).
    pub end: Timestamp,
    /// ISO country, when the response is split by country.
    pub country: Option<Box<str>>,
    /// Pricing (or conversation) category, lower-case, when split by it;
    /// for calls, the direction (`business_initiated`…).
    pub category: Option<Box<str>>,
    /// Pricing (or conversation) type, lower-case, when split by it; for
    /// calls, the tier (`0:50000`).
    pub pricing_type: Option<Box<str>>,
    /// Delivered messages (`volume`), conversations (`conversation`) or
    /// calls (`count`).
    pub count: u64,
    /// Approximate cost, when Meta returns it.
    pub cost: Option<Decimal>,
    /// Calls: `average_duration` in seconds, when Meta returns it.
    pub average_duration: Option<Decimal>,
}

/// Which analytics: per-message (PMP), per-conversation (CBP) or calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalyticsKind {
    /// `pricing_analytics`: delivered messages.
    Pricing,
    /// `conversation_analytics`: conversations opened.
    Conversation,
    /// `call_analytics`: connected calls (COUNT, COST, AVERAGE_DURATION).
    Call,
}

/// One bucket compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyticsLine {
    /// Bucket start.
    pub start: Timestamp,
    /// Bucket end.
    pub end: Timestamp,
    /// Country (`*` when the response is not split by country).
    pub country: Box<str>,
    /// Category, or a call's direction (`*` when not split).
    pub category: Box<str>,
    /// Type, or a call's tier (`*` when not split).
    pub pricing_type: Box<str>,
    /// Meta's count and cost (`None`: Meta has no such bucket).
    pub meta: Option<(u64, Option<Decimal>)>,
    /// The engine's count and cost.
    pub engine: (u64, Decimal),
    /// Calls: Meta's and the engine's average duration in seconds, when
    /// Meta gives one.
    pub average_duration: Option<(Decimal, Decimal)>,
    /// Whether the two agree within the tolerance.
    pub within_tolerance: bool,
}

/// How far Meta's approximate analytics may be from the engine before a
/// bucket is reported. Meta says only that analytics are "approximate"
/// (docs/rules.md §11), so these are ours: counts must match, costs may
/// differ by the larger of `cost_absolute` and `cost_relative` × Meta's cost
/// (average call durations by a second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tolerance {
    /// Absolute cost difference allowed (currency units).
    pub cost_absolute: Decimal,
    /// Relative cost difference allowed (0.01 = 1 %).
    pub cost_relative: Decimal,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            cost_absolute: Decimal::new(1, 2),
            cost_relative: Decimal::new(1, 2),
        }
    }
}

/// One engine item as analytics count it.
struct Counted<'a> {
    at: Timestamp,
    country: Option<&'a str>,
    category: &'a str,
    /// `None`: the item has none (a free call has no tier).
    kind: Option<&'a str>,
    amount: Decimal,
    seconds: Option<u32>,
}

/// Compares Meta's analytics buckets with the engine's charges aggregated
/// the same way. Engine charges outside every bucket of the response are
/// not compared (the response covers a period of Meta's choosing); engine
/// aggregates for a bucket Meta has no line for are reported with `meta: None`.
///
/// `marketing_lite`: the (business, wamid) of messages Meta priced as
/// `marketing_lite` (sent through the Marketing Messages API): analytics
/// count them as MARKETING_LITE, whatever their template's category.
pub fn compare_analytics(
    kind: AnalyticsKind,
    points: &[AnalyticsPoint],
    charges: &[Charge],
    marketing_lite: &std::collections::HashSet<(&str, &str)>,
    tolerance: Tolerance,
) -> Vec<AnalyticsLine> {
    let items = charges
        .iter()
        .filter(|charge| kind != AnalyticsKind::Conversation || charge.opens_conversation)
        .map(|charge| Counted {
            at: charge.delivered_at,
            country: charge.trail.country.as_deref(),
            category: if marketing_lite.contains(&(&*charge.business, &*charge.message_id))
                || marketing_lite.contains(&("", &*charge.message_id))
            {
                "marketing_lite"
            } else {
                charge.category.as_str()
            },
            // Meta's analytics spell categories and types in upper case;
            // the points were lower-cased when read. conversation_analytics
            // calls the free entry point FREE_ENTRY(_POINT).
            kind: Some(match charge.pricing_type {
                PricingType::FreeEntryPoint => "free_entry_point",
                other => other.as_str(),
            }),
            amount: charge.amount,
            seconds: None,
        })
        .collect();
    compare(points, items, tolerance)
}

/// Compares Meta's `call_analytics` (COUNT, COST, AVERAGE_DURATION by
/// country, direction, tier) with the engine's calls: the calls that
/// connected, their amounts and durations. Meta says the count is of
/// "completed calls"; wameter counts those that connected (docs/rules.md §14).
pub fn compare_call_analytics(
    points: &[AnalyticsPoint],
    calls: &[CallCharge],
    tolerance: Tolerance,
) -> Vec<AnalyticsLine> {
    let items = calls
        .iter()
        .filter(|call| call.duration_seconds > 0)
        .map(|call| Counted {
            at: call.started_at,
            country: call.country.as_deref(),
            category: call.direction.as_str(),
            kind: call.tier.as_deref(),
            amount: call.amount,
            seconds: Some(call.duration_seconds),
        })
        .collect();
    compare(points, items, tolerance)
}

fn compare(
    points: &[AnalyticsPoint],
    items: Vec<Counted<'_>>,
    tolerance: Tolerance,
) -> Vec<AnalyticsLine> {
    let split_country = points.iter().any(|p| p.country.is_some());
    let split_category = points.iter().any(|p| p.category.is_some());
    let split_type = points.iter().any(|p| p.pricing_type.is_some());
    let star = || Box::<str>::from("*");
    type Key = (Timestamp, Timestamp, Box<str>, Box<str>, Box<str>);
    let key_of =
        |start, end, country: Option<&str>, category: Option<&str>, kind: Option<&str>| -> Key {
            (
                start,
                end,
                if split_country {
                    country.unwrap_or("?").into()
                } else {
                    star()
                },
                if split_category {
                    category.unwrap_or("?").into()
                } else {
                    star()
                },
                if split_type {
                    kind.unwrap_or("?").into()
                } else {
                    star()
                },
            )
        };
    let mut meta: BTreeMap<Key, (u64, Option<Decimal>, Option<Decimal>)> = BTreeMap::new();
    let mut buckets: Vec<(Timestamp, Timestamp)> = Vec::new();
    for p in points {
        let entry = meta
            .entry(key_of(
                p.start,
                p.end,
                p.country.as_deref(),
                p.category.as_deref(),
                p.pricing_type.as_deref(),
            ))
            .or_insert((0, None, None));
        entry.0 += p.count;
        if let Some(cost) = p.cost {
            entry.1 = Some(entry.1.unwrap_or_default() + cost);
        }
        if p.average_duration.is_some() {
            entry.2 = p.average_duration;
        }
        buckets.push((p.start, p.end));
    }
    buckets.sort();
    buckets.dedup();
    // (count, amount, seconds).
    let mut engine: BTreeMap<Key, (u64, Decimal, u64)> = BTreeMap::new();
    for item in items {
        let Some(&(start, end)) = buckets.iter().find(|(s, e)| *s <= item.at && item.at < *e)
        else {
            continue;
        };
        let entry = engine
            .entry(key_of(
                start,
                end,
                item.country,
                Some(item.category),
                item.kind,
            ))
            .or_default();
        entry.0 += 1;
        entry.1 += item.amount;
        entry.2 += u64::from(item.seconds.unwrap_or(0));
    }
    let mut keys: Vec<&Key> = meta.keys().chain(engine.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            let m = meta.get(key).copied();
            let e = engine.get(key).copied().unwrap_or_default();
            let engine_average = if e.0 == 0 {
                Decimal::ZERO
            } else {
                (Decimal::from(e.2) / Decimal::from(e.0)).round_dp(2)
            };
            let average_duration = m
                .and_then(|(_, _, average)| average)
                .map(|average| (average, engine_average));
            let within_tolerance = match m {
                None => e.0 == 0,
                Some((count, cost, _)) => {
                    count == e.0
                        && cost.is_none_or(|cost| {
                            let allowed = tolerance
                                .cost_absolute
                                .max(tolerance.cost_relative * cost.abs());
                            (cost - e.1).abs() <= allowed
                        })
                        && average_duration
                            .is_none_or(|(meta, engine)| (meta - engine).abs() <= Decimal::ONE)
                }
            };
            AnalyticsLine {
                start: key.0,
                end: key.1,
                country: key.2.clone(),
                category: key.3.clone(),
                pricing_type: key.4.clone(),
                meta: m.map(|(count, cost, _)| (count, cost)),
                engine: (e.0, e.1),
                average_duration,
                within_tolerance,
            }
        })
        .collect()
}

#[cfg(test)]
mod verdict_tests {
    use super::*;
    use crate::event::{Origin, StatusDetail};

    /// A priced status of `id`, naming `business` (or none), at second `at`
    /// of 2026, read from `line`.
    fn status(
        id: &str,
        business: Option<&str>,
        status: DeliveryStatus,
        at: i64,
        category: &str,
        line: u32,
    ) -> Event {
        Event {
            at: Timestamp::from_second(1_767_225_600 + at).unwrap(),
            origin: Origin { source: 0, line },
            kind: EventKind::Status {
                id: id.into(),
                status,
                error: None,
                detail: Some(Box::new(StatusDetail {
                    business: business.map(Box::from),
                    pricing: Some(MetaPricing {
                        billable: Some(true),
                        pricing_model: Some("PMP".into()),
                        pricing_type: Some("regular".into()),
                        category: category.into(),
                        cost: None,
                    }),
                    ..StatusDetail::default()
                })),
            },
        }
    }

    /// `delivered` beats `read` beats `sent` whatever their order or
    /// instants; of two of one rank the earlier wins, and of two at one
    /// instant the one read first (the lower origin), in whatever order
    /// they come; a verdict naming a business is that business's, one
    /// naming none stands for any business without its own. Folding the
    /// statuses one at a time, in any order, gives the same verdicts.
    #[test]
    fn the_most_telling_status_is_the_verdict_per_business() {
        use DeliveryStatus::{Delivered, Read, Sent};
        let events = vec![
            status("w1", Some("b1"), Sent, 1, "sent", 1),
            status("w1", Some("b1"), Read, 9, "read", 2),
            status("w1", Some("b1"), Delivered, 8, "late-delivered", 3),
            status("w1", Some("b1"), Delivered, 5, "delivered", 4),
            status("w1", Some("b1"), Delivered, 5, "same-instant", 5),
            status("w1", Some("b2"), Sent, 2, "b2-sent", 6),
            status("w1", None, Read, 3, "unnamed-read", 7),
            status("w2", None, Delivered, 4, "w2", 8),
        ];
        let category = |verdicts: &Verdicts, business: &str, id: &str| {
            verdicts
                .of(business, id)
                .map(|verdict| verdict.pricing.category.to_string())
        };
        let expected = [
            (("b1", "w1"), Some("delivered")),
            (("b2", "w1"), Some("b2-sent")),
            (("b3", "w1"), Some("unnamed-read")),
            (("b1", "w2"), Some("w2")),
            (("b1", "w3"), None),
        ];
        // Every rotation of the log, forwards and backwards.
        let mut orders = Vec::new();
        for turn in 0..events.len() {
            let mut order = events.clone();
            order.rotate_left(turn);
            orders.push(order.iter().rev().cloned().collect::<Vec<_>>());
            orders.push(order);
        }
        for order in orders {
            let mut folded = Verdicts::default();
            for event in &order {
                folded.fold(event);
            }
            for verdicts in [meta_verdicts(&order), folded] {
                assert_eq!(verdicts.len(), 4);
                for ((business, id), wanted) in expected {
                    assert_eq!(
                        category(&verdicts, business, id).as_deref(),
                        wanted,
                        "{business}/{id}"
                    );
                }
            }
        }
    }
}
