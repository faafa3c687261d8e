//! One module per pricing era. Each exposes `decide`, which looks at one
//! delivered business message and the pair's windows and says which rule
//! applies — everything except the amount, which depends on monthly counters
//! shared across users. Those counters and the amount are the era's too:
//! the engine settles every charge in delivery order (`crate::engine`) and
//! hands each to its era's `settle_*` function with a `Settling` (the
//! number billed, the cards and tiers in force, the month) and the era's
//! own counter — the CBP free tier in [`cbp_2022`], volume tiers and max
//! price in [`pmp_2025`], the service allowance in [`pmp_2026_10`].
//!
//! To learn how an era charges a given message, read its file top to bottom:
//! - [`cbp_2022`]: conversation-based pricing v1 (2022-02-01 → 2023-05-31);
//! - [`cbp_2023`]: conversation-based pricing v2 (2023-06-01 → 2025-06-30);
//! - [`pmp_2025`]: per-message pricing (2025-07-01 → 2026-09-30);
//! - [`pmp_2026_10`]: per-message pricing as reported from 2026-10-01;
//! - [`calling`]: Calling API minutes (from 2025-07-01), beside the eras:
//!   calls have their own rates and bands;
//! - [`agent`]: Meta Business Agent tokens (from 2026-08-01).

pub mod agent;
pub mod calling;
pub mod cbp_2022;
pub mod cbp_2023;
pub mod pmp_2025;
pub mod pmp_2026_10;

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;

use crate::account::{Business, RuleOptions};
use crate::category::{PricingCategory, PricingModel, PricingType};
use crate::charge::{Charge, Settlement};
use crate::event::{Template, UserId};
use crate::money::format_amount;
use crate::ratecard::{RateBook, RateCard, TierBook};
use crate::ruleset::Ruleset;
use crate::window::Window;

/// One delivered business message, with the windows open at delivery.
pub(crate) struct Delivery<'a> {
    pub template: Option<&'a Template>,
    pub delivered_at: Timestamp,
    pub local_date: Date,
    pub business: &'a Business,
    pub user: &'a UserId,
    /// The customer service window open at delivery.
    pub customer_service_window: Option<Window>,
    /// The free entry point window open at delivery (possibly opened by it).
    pub free_entry_point: Option<Window>,
    /// Whether this delivery opened that free entry point window.
    pub opened_free_entry_point: bool,
    pub options: &'a RuleOptions,
    /// Whether the engine writes reasons ([`crate::engine::Engine::reasons`]).
    pub reasons: bool,
}

impl Delivery<'_> {
    /// `conv:<category>:<business>:<user>:<unix seconds>` — deterministic,
    /// readable, unique per pair, category and opening instant.
    pub fn conversation_id(&self, category: &str, opened_at: Timestamp) -> String {
        format!(
            "conv:{category}:{}:{}:{}",
            self.business.phone_number_id,
            self.user,
            opened_at.as_second()
        )
    }

    /// The reason `text` writes, or none when the engine writes none.
    pub fn reason(&self, text: impl FnOnce() -> String) -> String {
        if self.reasons { text() } else { String::new() }
    }

    /// "template `name` (utility)" or "free-form message".
    pub fn describe(&self) -> String {
        match self.template {
            Some(t) => format!("{} template `{}`", t.category.as_str(), t.name),
            None => "free-form message".to_string(),
        }
    }

    /// Notes a free-form message delivered with no window open: Meta refuses
    /// those (131047), so the log is probably incomplete.
    pub fn free_form_outside_window_note(&self) -> Option<String> {
        (self.template.is_none() && self.customer_service_window.is_none() && self.free_entry_point.is_none()).then(|| {
            "free-form message delivered with no customer service window open: Meta refuses these (131047); is an inbound message missing from the log?".to_string()
        })
    }
}

/// What an era's rules decided.
pub(crate) struct Verdict {
    pub ruleset: Ruleset,
    pub rule: &'static str,
    pub reason: String,
    pub pricing_model: PricingModel,
    pub category: PricingCategory,
    pub pricing_type: PricingType,
    pub billable: bool,
    /// (conversation id, opened by this message).
    pub conversation: Option<(String, bool)>,
    pub settlement: Settlement,
}

/// The verdict for a message inside an open free entry point, shared by
/// every era (CBP: a `referral_conversion` conversation; PMP: a window).
pub(crate) fn inside_free_entry_point(
    delivery: &Delivery,
    ruleset: Ruleset,
    window: Window,
    cbp: bool,
) -> Verdict {
    let opened = delivery.opened_free_entry_point;
    let (pricing_model, category) = if cbp {
        (PricingModel::Cbp, PricingCategory::ReferralConversion)
    } else {
        // Meta keys PMP entry-point messages on `type`; the category it prints
        // is not settled (docs/rules.md §7.2), we keep the message's own.
        let natural = delivery
            .template
            .map_or(PricingCategory::Service, |t| t.category.into());
        (PricingModel::Pmp, natural)
    };
    let reason = delivery.reason(|| {
        let mut reason = if opened {
            format!(
                "{} answered an entry point within 24 h: free entry point window opened, free until {}",
                delivery.describe(),
                window.closes_at
            )
        } else {
            format!(
                "{} delivered inside the free entry point window open until {}",
                delivery.describe(),
                window.closes_at
            )
        };
        // Say which length applied where Meta's pages disagree (decision D12).
        let opened_on = delivery
            .business
            .timezone
            .to_datetime(window.opened_at)
            .date();
        if opened_on >= crate::window::FEP_7_DAYS_REPORTED_FROM {
            reason.push_str(if delivery.options.free_entry_point_7_days {
                " (7 days: `free_entry_point_7_days`, the length reported from 2026-09-28; Meta's non-template page says 72 h)"
            } else {
                " (72 h, as Meta's non-template page says; an 'up to 7 days' reported from 2026-09-28 applies with `free_entry_point_7_days`)"
            });
        }
        reason
    });
    Verdict {
        ruleset,
        rule: if opened {
            "free-entry-point-opened"
        } else {
            "inside-free-entry-point"
        },
        reason,
        pricing_model,
        category,
        pricing_type: PricingType::FreeEntryPoint,
        billable: false,
        conversation: Some((
            delivery.conversation_id("referral_conversion", window.opened_at),
            opened,
        )),
        settlement: Settlement::Free,
    }
}

/// A monthly counter shared across users, by what it counts per.
pub(crate) type Counter<K> = std::collections::HashMap<K, u64, foldhash::fast::RandomState>;

/// A month as counters key it: (year, month) of the business-local date.
pub(crate) type MonthKey = (i16, i8);

/// What settling one charge may look up: the number it is billed to, the
/// cards and tier tables, the date whose ones price it, and the month it
/// counts in.
pub(crate) struct Settling<'s> {
    pub business: &'s Business,
    pub rates: &'s RateBook,
    pub tiers: &'s TierBook,
    /// The date whose cards and tiers price the charge (its local date,
    /// or the what-if `rates_on`).
    pub rates_on: Date,
    /// The business-local month the charge counts in.
    pub month: MonthKey,
    /// Whether the engine writes reasons ([`crate::engine::Engine::reasons`]).
    pub reasons: bool,
}

impl<'s> Settling<'s> {
    /// The card of the business's currency for `model` in force.
    pub fn card(&self, model: PricingModel) -> Result<&'s RateCard, String> {
        self.rates
            .select(self.business.currency, model, self.rates_on)
            .map_err(|e| e.to_string())
    }

    /// Adds what `text` says to the charge's reason, when the engine
    /// writes reasons.
    pub fn add_reason(&self, charge: &mut Charge, text: impl FnOnce(&Charge) -> String) {
        if self.reasons {
            let text = text(charge);
            charge.reason.push_str(&text);
        }
    }

    /// `YYYY-MM` of [`Settling::month`].
    pub fn month_label(&self) -> String {
        format!("{:04}-{:02}", self.month.0, self.month.1)
    }

    /// Decision D9: authentication is priced authentication-international
    /// only for an eligible business, after its start, for a recipient
    /// outside its primary country whose market has such a rate.
    pub fn authentication_category(&self, charge: &Charge, card: &RateCard) -> PricingCategory {
        let business = self.business;
        let (Some(primary), Some(from)) =
            (&business.primary_country, business.auth_international_from)
        else {
            return PricingCategory::Authentication;
        };
        let abroad = charge
            .trail
            .country
            .as_deref()
            .is_some_and(|country| country != &**primary);
        let has_rate = card
            .markets
            .get(&*charge.market)
            .is_some_and(|r| r.authentication_international.is_some());
        if charge.delivered_at >= from && abroad && has_rate {
            PricingCategory::AuthenticationInternational
        } else {
            PricingCategory::Authentication
        }
    }

    /// Charges `rate` from `card` per `per` (conversation or message), at
    /// volume tier `tier` if one applies, and says so in the reason.
    pub fn price(
        &self,
        charge: &mut Charge,
        card: &RateCard,
        rate: Decimal,
        per: &str,
        tier: Option<String>,
    ) {
        charge.amount = rate;
        charge.explain_rate(Some(card), Some(rate));
        self.add_reason(charge, |charge| {
            format!(
                "; {} {} per {per}: {} {} rate, card {}{}{}",
                format_amount(rate),
                card.currency,
                charge.market,
                charge.category,
                card.id,
                card.status_note(),
                tier.as_ref()
                    .map(|t| format!(", volume tier {t}"))
                    .unwrap_or_default()
            )
        });
        charge.tier = tier;
    }
}
