//! Per-message pricing: 2025-07-01 → 2026-09-30.
//!
//! Source: Meta's "Pricing on the WhatsApp Business Platform" page (M-PMP);
//! docs/rules.md §7.
//!
//! - Only **delivered templates** are charged, per message, at the rate of
//!   their category and the user's market.
//! - Free-form messages are free (they can only be sent inside the customer
//!   service window): `free_customer_service` / `service`.
//! - **Utility templates inside the customer service window are free**:
//!   `free_customer_service` / `utility`.
//! - Marketing and authentication templates are charged even inside the
//!   window.
//! - Inside a free entry point window (72 h from the reply to an ad or Page
//!   call-to-action) everything is free.
//! - Utility and authentication charges advance the portfolio's monthly
//!   volume tier counter (settled in `crate::engine`); authentication may be
//!   priced authentication-international (D9).
//! - A CBP conversation open at the switch keeps covering messages of its
//!   category until it expires (D13, Meta's transition example W11).

use std::sync::Arc;

use crate::category::{PricingCategory, PricingModel, PricingType, TemplateCategory, TierFamily};
use crate::charge::{Charge, Settlement};
use crate::money::format_amount;
use crate::ruleset::Ruleset;
use crate::window::{ContactState, Slot};

use super::cbp_2023::{member_of, slot_of};
use super::{Counter, Delivery, MonthKey, Settling, Verdict, inside_free_entry_point};

/// Charged messages per (portfolio, market, tier family, month): what the
/// volume tiers count.
pub(crate) type Volume = Counter<(Arc<str>, Arc<str>, TierFamily, MonthKey)>;

/// Decides one delivery under PMP (2025-07).
pub(crate) fn decide(delivery: &Delivery, state: &mut ContactState) -> Verdict {
    if let Some(verdict) = carried_over_conversation(delivery, state) {
        return verdict;
    }
    if let Some(window) = delivery.free_entry_point {
        let cbp = state.free_entry_point_cbp && !delivery.opened_free_entry_point;
        let ruleset = if cbp {
            Ruleset::Cbp2023
        } else {
            Ruleset::Pmp2025
        };
        return inside_free_entry_point(delivery, ruleset, window, cbp);
    }
    match delivery.template {
        None => free_form(delivery, Ruleset::Pmp2025),
        Some(template) if template.category == TemplateCategory::Utility => match delivery
            .customer_service_window
        {
            Some(window) => Verdict {
                ruleset: Ruleset::Pmp2025,
                rule: "utility-inside-csw",
                reason: delivery.reason(|| {
                    format!(
                        "utility template delivered inside the customer service window opened {}",
                        window.opened_at
                    )
                }),
                pricing_model: PricingModel::Pmp,
                category: PricingCategory::Utility,
                pricing_type: PricingType::FreeCustomerService,
                billable: false,
                conversation: None,
                settlement: Settlement::Free,
            },
            None => charged(
                delivery,
                Ruleset::Pmp2025,
                "utility-outside-csw",
                delivery.reason(|| {
                    "utility template delivered with no customer service window open: charged"
                        .into()
                }),
            ),
        },
        Some(template) => {
            let category = template.category.as_str();
            let rule = if template.category == TemplateCategory::Marketing {
                "marketing-template"
            } else {
                "authentication-template"
            };
            let window = match delivery.customer_service_window {
                Some(_) => " (charged even inside the customer service window)",
                None => "",
            };
            charged(
                delivery,
                Ruleset::Pmp2025,
                rule,
                delivery.reason(|| {
                    format!("{category} template delivered: charged per message{window}")
                }),
            )
        }
    }
}

/// A charged template (regular).
pub(crate) fn charged(
    delivery: &Delivery,
    ruleset: Ruleset,
    rule: &'static str,
    reason: String,
) -> Verdict {
    let category: PricingCategory = delivery
        .template
        .expect("only templates are charged here")
        .category
        .into();
    Verdict {
        ruleset,
        rule,
        reason,
        pricing_model: PricingModel::Pmp,
        category,
        pricing_type: PricingType::Regular,
        billable: true,
        conversation: None,
        settlement: Settlement::Message {
            rate_category: category,
        },
    }
}

/// A free-form message: free in the customer service window.
pub(crate) fn free_form(delivery: &Delivery, ruleset: Ruleset) -> Verdict {
    let reason = delivery.reason(|| match delivery.customer_service_window {
        Some(window) => format!(
            "free-form message delivered inside the customer service window opened {}: free",
            window.opened_at
        ),
        None => {
            "free-form message delivered: free (no customer service window was open, see notes)"
                .to_string()
        }
    });
    Verdict {
        ruleset,
        rule: "free-form-free",
        reason,
        pricing_model: PricingModel::Pmp,
        category: PricingCategory::Service,
        pricing_type: PricingType::FreeCustomerService,
        billable: false,
        conversation: None,
        settlement: Settlement::Free,
    }
}

/// D13: a CBP conversation of the message's category opened before the
/// switch still covers it.
fn carried_over_conversation(delivery: &Delivery, state: &ContactState) -> Option<Verdict> {
    let slot = delivery
        .template
        .map_or(Slot::Service, |t| slot_of(t.category));
    let window = state.v2_open(slot, delivery.delivered_at)?;
    let mut verdict = member_of(
        delivery,
        slot,
        window,
        "cbp-conversation-continues-after-switch",
    );
    if delivery.reasons {
        verdict.reason.push_str(" — a CBP conversation open at the switch to per-message pricing keeps covering its category until it expires");
    }
    Some(verdict)
}

/// Settles a charged message (both PMP eras): the card rate of its market
/// and category, at the volume tier its portfolio's count in the month
/// reaches (utility and authentication); a marketing message Meta says it
/// charged `pricing.cost` for in the business's currency is charged that
/// ([`max_price`]).
pub(crate) fn settle_message(
    settling: &Settling,
    counter: &mut Volume,
    charge: &mut Charge,
    rate_category: PricingCategory,
) -> Result<(), String> {
    let business = settling.business;
    if rate_category == PricingCategory::Marketing
        && let Some(cost) = charge.trail.meta_cost.as_deref().copied()
    {
        if cost.currency == business.currency {
            max_price(settling, charge);
            return Ok(());
        }
        let trail = charge.trail_mut();
        let mut notes = std::mem::take(&mut trail.notes).into_vec();
        notes.push(format!(
            "Meta's `pricing.cost` is {} {}, not the business's currency {}: priced from the card",
            format_amount(cost.amount),
            cost.currency,
            business.currency
        ));
        trail.notes = notes.into_boxed_slice();
    }
    let card = settling.card(PricingModel::Pmp)?;
    let category = match rate_category {
        PricingCategory::Authentication => settling.authentication_category(charge, card),
        other => other,
    };
    charge.category = category;
    let mut rate = card.rate(&charge.market, category)?;
    let mut tier = None;
    if let Some(family) = category.tier_family() {
        let count = counter
            .entry((
                business.portfolio.clone(),
                charge.market.clone(),
                family,
                settling.month,
            ))
            .or_insert(0);
        *count += 1;
        let count = *count;
        charge.explain_counter(|charge| {
            format!(
                "portfolio {}, {} {}, {}: charged message #{count}",
                business.portfolio,
                charge.market,
                family.as_str(),
                settling.month_label()
            )
        });
        let ladder = settling.tiers.ladder(
            business.currency,
            &charge.market,
            category,
            settling.rates_on,
        );
        match ladder.first() {
            // No tier table for the market: the list rate.
            None => {}
            Some(list) if list.rate == rate => {
                if let Some(band) = ladder.iter().find(|band| band.contains(count)) {
                    rate = band.rate;
                    tier = Some(band.label());
                }
            }
            // The table is older than a change of this market's list rate:
            // its first band still says where list pricing ends, its
            // discounted rates no longer hold.
            Some(list) if list.contains(count) => {
                settling.add_reason(charge, |_| {
                    format!(
                        "; within the list band ({}) of the volume tiers in force (table of {}), whose list rate {} predates the card's",
                        list.label(),
                        list.effective,
                        format_amount(list.rate)
                    )
                });
            }
            Some(list) => {
                return Err(format!(
                    "charged {} message #{count} of {} this month in {} is past the list band ({}) of the volume tiers in force (table of {}), whose list rate {} is not card {}'s {}: that table predates a rate change, and its tier rates would be a guess; supply the tier table in force with --tiers, or `wameter rates import` it",
                    family.as_str(),
                    settling.month_label(),
                    charge.market,
                    list.label(),
                    list.effective,
                    format_amount(list.rate),
                    card.id,
                    format_amount(rate)
                ));
            }
        }
    }
    settling.price(charge, card, rate, "message", tier);
    Ok(())
}

/// A marketing message Meta says it charged `pricing.cost` for: a
/// Marketing Messages API send with a max price, charged "that max price
/// or lower" rather than the card rate (Meta's max-price page). The card
/// rate is kept beside it, for comparison. Not counted in volume tiers:
/// marketing has none.
fn max_price(settling: &Settling, charge: &mut Charge) {
    let Some(cost) = charge.trail.meta_cost.as_deref().copied() else {
        return;
    };
    charge.amount = cost.amount;
    charge.rule = "max-price";
    let card = settling.card(PricingModel::Pmp).ok();
    let rate = card.and_then(|card| card.rate(&charge.market, PricingCategory::Marketing).ok());
    charge.explain_rate(card, rate);
    settling.add_reason(charge, |_| {
        let beside = match (card, rate) {
            (Some(card), Some(rate)) => format!(
                "the card rate would be {} {} ({})",
                format_amount(rate),
                card.currency,
                card.id
            ),
            _ => "no card rate for comparison".to_string(),
        };
        format!(
            "; {} {} as Meta's `pricing.cost` says: a Marketing Messages API send with a max price is charged that price or lower, and Meta reports what it charged (an estimate; the invoice prevails); {beside}",
            format_amount(cost.amount),
            cost.currency
        )
    });
}
