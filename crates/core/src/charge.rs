//! Charges: the engine's verdict on one delivered business message, with
//! everything needed to explain it.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;

use crate::category::{PricingCategory, PricingModel, PricingType};
use crate::event::{Origin, Template, UserId};
use crate::market::Market;
use crate::money::Currency;
use crate::ratecard::RateCard;
use crate::ruleset::Ruleset;
use crate::window::Window;

/// What Meta charges for one delivered business message, and why.
///
/// Field names follow `replay --json` (interfaces §4).
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    /// The wamid.
    pub message_id: Arc<str>,
    /// Business phone number id.
    pub business: Arc<str>,
    /// The Messaging account it is billed through, when that is not the
    /// number's first (`waba`): one of the accounts file's
    /// `messaging_accounts` (docs/rules.md §16).
    pub messaging_account: Option<Arc<str>>,
    /// The user.
    pub user: UserId,
    /// First `delivered` (else `read`) instant — the charging instant (D3).
    pub delivered_at: Timestamp,
    /// Business-local date of delivery (selects ruleset, card, month).
    /// In the charge itself, not its trail: reports and settling read it
    /// for every charge, and the trail is another allocation away.
    pub local_date: Date,
    /// CBP or PMP.
    pub pricing_model: PricingModel,
    /// Category the message was priced under.
    pub category: PricingCategory,
    /// Regular, or the reason it is free.
    pub pricing_type: PricingType,
    /// Meta's `billable` flag: true for regular charges and for CBP
    /// free-tier conversations (Meta: "considered billable"), false otherwise.
    pub billable: bool,
    /// CBP conversation (or PMP free entry point window) the message belongs to.
    pub conversation_id: Option<String>,
    /// True on the message whose delivery opened that conversation.
    pub opens_conversation: bool,
    /// Meta market of the user on the delivery date.
    pub market: Market,
    /// Billing currency of the Messaging account billed.
    pub currency: Currency,
    /// Amount charged for this message (CBP: the opener carries the
    /// conversation's price, other messages `0`).
    pub amount: Decimal,
    /// Volume band used (`0:750000`), or `None`.
    pub tier: Option<String>,
    /// Ruleset applied.
    pub ruleset: Ruleset,
    /// Rule within the ruleset.
    pub rule: &'static str,
    /// One sentence a person can read; empty from an engine told to write
    /// no reasons ([`crate::engine::Engine::reasons`]).
    pub reason: String,
    /// The decision trail (`wameter explain`). Behind a pointer: it is two
    /// thirds of a charge, and charges are moved whole into delivery order
    /// (boxing it halved the time settling spent moving them). Shared: the
    /// incremental meter keeps each charge as decided and as settled, and
    /// settling a free message leaves its trail as it was, so the two
    /// share one (settling writes through [`Charge::trail_mut`], which
    /// copies a shared trail first).
    pub trail: Arc<Trail>,
    pub(crate) settlement: Settlement,
}

impl Charge {
    /// The trail, to write: settling adds the card, rate, counter and
    /// notes. A trail shared with another charge is copied first.
    pub(crate) fn trail_mut(&mut self) -> &mut Trail {
        Arc::make_mut(&mut self.trail)
    }

    /// The explained part of the trail, to write, when the engine keeps
    /// one (a trail without it is not copied).
    pub(crate) fn explained_mut(&mut self) -> Option<&mut Explained> {
        self.trail.explained.as_ref()?;
        Arc::make_mut(&mut self.trail).explained.as_deref_mut()
    }

    /// Puts the card and rate that priced it in the explanation, if one is
    /// kept (the card's name is written only then).
    pub(crate) fn explain_rate(&mut self, card: Option<&RateCard>, rate: Option<Decimal>) {
        if let Some(explained) = self.explained_mut() {
            explained.rate_card = card.map(ToString::to_string);
            explained.rate = rate;
        }
    }

    /// Puts its place in a monthly counter in the explanation, if one is
    /// kept: the text is built only then.
    pub(crate) fn explain_counter(&mut self, counter: impl FnOnce(&Charge) -> String) {
        if self.trail.explained.is_some() {
            let text = counter(self);
            if let Some(explained) = self.explained_mut() {
                explained.counter = Some(text);
            }
        }
    }
}

/// What one charge was decided from: what pricing and the reports need
/// of it, and, when the engine explains ([`Engine::explain`]), everything
/// else it looked at.
///
/// [`Engine::explain`]: crate::engine::Engine::explain
#[derive(Clone, Debug, PartialEq)]
pub struct Trail {
    /// Template used, or `None` for a free-form message.
    pub template: Option<Arc<Template>>,
    /// When the outbound event says it was sent.
    pub sent_at: Timestamp,
    /// Where the outbound event was read.
    pub origin: Origin,
    /// ISO country of the user, when known.
    pub country: Option<Arc<str>>,
    /// Anything unusual, e.g. a free-form message delivered outside the
    /// window. A boxed slice, not a vector: 8 bytes fewer bring a shared
    /// trail from jemalloc's 112-byte class to its 96-byte one, for every
    /// charge (few have notes, and a note is added at most once more, in
    /// settling).
    pub notes: Box<[String]>,
    /// Meta's `pricing.cost` on the message's delivery (max-price
    /// marketing), when a status carried one (boxed: rare, and every
    /// charge of a large log pays for the field).
    pub meta_cost: Option<Box<crate::event::MetaCost>>,
    /// The rest of the decision, for `wameter explain`; `None` unless the
    /// engine explains. Apart because only an explanation reads it and it
    /// was most of a trail (264 of 344 bytes, with three strings of its
    /// own), while trails were two fifths of a replay's charges' memory
    /// (docs/PERFORMANCE.md).
    pub explained: Option<Box<Explained>>,
}

impl Trail {
    /// The explained part, if the engine kept it.
    pub fn explained(&self) -> Option<&Explained> {
        self.explained.as_deref()
    }
}

/// What the engine looked at and settled with, beyond what pricing needs:
/// the windows, the market rule, the card, rate and counter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Explained {
    /// The IANA time zone of the Messaging account billed.
    pub timezone: String,
    /// The user's last inbound before delivery.
    pub last_inbound_at: Option<Timestamp>,
    /// The customer service window open at delivery, if any.
    pub customer_service_window: Option<Window>,
    /// The free entry point window open at delivery, if any.
    pub free_entry_point: Option<Window>,
    /// CBP conversations open just before delivery: (id, category, window).
    pub open_conversations: Vec<(String, PricingCategory, Window)>,
    /// How the market was found.
    pub market_rule: String,
    /// Rate card used, when a rate was needed.
    pub rate_card: Option<String>,
    /// Rate applied (before free tier), when a rate was needed.
    pub rate: Option<Decimal>,
    /// Monthly counter and position, e.g. `portfolio acme, Brazil utility, 2025-07: #12`.
    pub counter: Option<String>,
}

/// What the settlement stage still has to do for a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Final: free.
    Free,
    /// CBP: this message opened a conversation priced at `rate_category`;
    /// `free_tier` says whether it may use the monthly free tier.
    ConversationOpened {
        rate_category: PricingCategory,
        free_tier: bool,
    },
    /// CBP: this message is inside a conversation; it inherits its pricing.
    ConversationMember,
    /// PMP: charged per message at `rate_category` (tiers for utility and
    /// authentication).
    Message { rate_category: PricingCategory },
    /// PMP 2026-10: service message, free within the monthly allowance of the
    /// business phone number, then charged at the service rate.
    ServiceAllowance,
}

/// Something the user should know, that did not stop the replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Stable machine-readable code (`unknown_status_id`).
    pub code: &'static str,
    /// What happened.
    pub message: String,
    /// Where, when it comes from one input line.
    pub origin: Option<Origin>,
}

/// A delivered message the engine cannot price without guessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricingError {
    /// The wamid.
    pub message_id: Arc<str>,
    /// Where its outbound event was read.
    pub origin: Origin,
    /// What is missing.
    pub message: String,
}
