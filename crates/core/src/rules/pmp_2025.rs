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

use crate::category::{PricingCategory, PricingModel, PricingType, TemplateCategory};
use crate::charge::Settlement;
use crate::ruleset::Ruleset;
use crate::window::{ContactState, Slot};

use super::cbp_2023::{member_of, slot_of};
use super::{Delivery, Verdict, inside_free_entry_point};

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
                reason: format!(
                    "utility template delivered inside the customer service window opened {}",
                    window.opened_at
                ),
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
                "utility template delivered with no customer service window open: charged".into(),
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
                format!("{category} template delivered: charged per message{window}"),
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
    let reason = match delivery.customer_service_window {
        Some(window) => format!(
            "free-form message delivered inside the customer service window opened {}: free",
            window.opened_at
        ),
        None => {
            "free-form message delivered: free (no customer service window was open, see notes)"
                .to_string()
        }
    };
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
    verdict.reason.push_str(" — a CBP conversation open at the switch to per-message pricing keeps covering its category until it expires");
    Some(verdict)
}
