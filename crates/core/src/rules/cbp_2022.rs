//! Conversation-based pricing v1: 2022-02-01 → 2023-05-31.
//!
//! Sources: Meta's Feb-2022 pricing rules as quoted by BSPs (S-2022) and
//! Meta's 2022 scenario set (S-KATA); docs/rules.md §5.
//!
//! - A conversation opens when a business message is **delivered** with no
//!   conversation open, and lasts 24 h; every further message in those 24 h
//!   is covered. Only one conversation at a time per (business number, user).
//! - It is **user-initiated** if the business replies inside the customer
//!   service window (24 h after the user's last message), otherwise
//!   **business-initiated** (which requires a template).
//! - The first 1,000 conversations of each month per WABA are free (free
//!   tier, counted in delivery order across the WABA's numbers:
//!   `settle_conversation`; CBP v2 keeps it for service conversations).
//! - A reply to an ad or Page call-to-action within 24 h opens a free entry
//!   point conversation (24 h before 2023-03-01, then 72 h) which replaces
//!   the open conversation.

use std::sync::Arc;

use crate::category::{PricingCategory, PricingModel, PricingType};
use crate::charge::{Charge, Settlement};
use crate::ruleset::Ruleset;
use crate::window::ContactState;

use super::{Counter, Delivery, MonthKey, Settling, Verdict, inside_free_entry_point};

/// Conversations per WABA per month free under CBP (decision D7).
pub const FREE_TIER_CONVERSATIONS: u64 = 1_000;

/// Free-tier conversations opened per (WABA, month).
pub(crate) type FreeTier = Counter<(Arc<str>, MonthKey)>;

/// Decides one delivery under CBP v1.
pub(crate) fn decide(delivery: &Delivery, state: &mut ContactState) -> Verdict {
    let at = delivery.delivered_at;
    if let Some(window) = delivery.free_entry_point {
        if delivery.opened_free_entry_point {
            // The entry point conversation replaces the open one.
            state.v1_conversation = None;
        }
        return inside_free_entry_point(delivery, Ruleset::Cbp2022, window, true);
    }
    if let Some((window, user_initiated)) = state.v1_open(at) {
        let category = category_of(user_initiated);
        return Verdict {
            ruleset: Ruleset::Cbp2022,
            rule: "inside-open-conversation",
            reason: delivery.reason(|| {
                format!(
                    "{} delivered inside the {} conversation opened {} (open until {})",
                    delivery.describe(),
                    category.as_str().replace('_', "-"),
                    window.opened_at,
                    window.closes_at
                )
            }),
            pricing_model: PricingModel::Cbp,
            category,
            pricing_type: PricingType::Regular,
            billable: true,
            conversation: Some((
                delivery.conversation_id(category.as_str(), window.opened_at),
                false,
            )),
            settlement: Settlement::ConversationMember,
        };
    }
    let user_initiated = delivery.customer_service_window.is_some();
    state.v1_conversation = Some((at, user_initiated));
    let category = category_of(user_initiated);
    let reason = delivery.reason(|| match delivery.customer_service_window {
        Some(window) => format!(
            "{} delivered inside the customer service window opened {} with no conversation open: user-initiated conversation opened",
            delivery.describe(),
            window.opened_at
        ),
        None => format!(
            "{} delivered with no customer service window and no conversation open: business-initiated conversation opened",
            delivery.describe()
        ),
    });
    Verdict {
        ruleset: Ruleset::Cbp2022,
        rule: if user_initiated {
            "user-initiated-conversation-opened"
        } else {
            "business-initiated-conversation-opened"
        },
        reason,
        pricing_model: PricingModel::Cbp,
        category,
        pricing_type: PricingType::Regular,
        billable: true,
        conversation: Some((delivery.conversation_id(category.as_str(), at), true)),
        settlement: Settlement::ConversationOpened {
            rate_category: category,
            free_tier: true,
        },
    }
}

fn category_of(user_initiated: bool) -> PricingCategory {
    if user_initiated {
        PricingCategory::UserInitiated
    } else {
        PricingCategory::BusinessInitiated
    }
}

/// Settles a charge that opened a conversation (both CBP eras): the
/// conversation's rate from the CBP card in force, unless it is among the
/// WABA's first [`FREE_TIER_CONVERSATIONS`] of the month and `free_tier`
/// applies to its category.
pub(crate) fn settle_conversation(
    settling: &Settling,
    counter: &mut FreeTier,
    charge: &mut Charge,
    rate_category: PricingCategory,
    free_tier: bool,
) -> Result<(), String> {
    let business = settling.business;
    let card = settling.card(PricingModel::Cbp);
    let category = match (&card, rate_category) {
        (Ok(card), PricingCategory::Authentication) => {
            settling.authentication_category(charge, card)
        }
        _ => rate_category,
    };
    charge.category = category;
    if free_tier {
        let used = counter
            .entry((business.waba.clone(), settling.month))
            .or_insert(0);
        *used += 1;
        charge.explain_counter(|_| {
            format!(
                "WABA {} free tier, {}: conversation #{used}",
                business.waba,
                settling.month_label()
            )
        });
        if *used <= FREE_TIER_CONVERSATIONS {
            charge.pricing_type = PricingType::FreeTier;
            let used = *used;
            settling.add_reason(charge, |_| {
                format!(
                    "; free tier: conversation {used} of the {FREE_TIER_CONVERSATIONS} free this month for WABA {}",
                    business.waba
                )
            });
            if let Ok(card) = &card {
                let rate = card.rate(&charge.market, category).ok();
                charge.explain_rate(Some(card), rate);
            }
        }
    }
    if charge.pricing_type != PricingType::FreeTier {
        let card = card?;
        let rate = card.rate(&charge.market, category)?;
        settling.price(charge, card, rate, "conversation", None);
    }
    Ok(())
}

/// Settles a further message of a conversation: it is what its opener was
/// settled as (type, billable, category), if the opener was.
pub(crate) fn settle_member(
    charge: &mut Charge,
    opener: Option<(PricingType, bool, PricingCategory)>,
) {
    if let Some((pricing_type, billable, category)) = opener {
        charge.pricing_type = pricing_type;
        charge.billable = billable;
        charge.category = category;
    }
}
