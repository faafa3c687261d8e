//! Per-message pricing from 2026-10-01 (decision D12), **confirmed** on
//! Meta's pages: the non-template pricing page and the status-webhook
//! reference of 2026-09-14 (docs/rules.md §7.7).
//!
//! Differences from [`super::pmp_2025`]:
//! - **Service (free-form) messages are charged** at the market's service
//!   rate (the card's Service column, equal to utility) after 1,000 free
//!   delivered service messages per business phone number per month; no
//!   volume tiers for service. Counted in the business's time zone: Meta
//!   does not say which time zone resets the allowance, and every charge it
//!   touches says so ([`ALLOWANCE_MONTH_NOTE`]).
//! - **Utility templates inside the customer service window are charged**
//!   (`regular`) and count toward utility tiers. `utility_free_in_csw =
//!   true` in the accounts file's `[rules]` keeps them free (what-if).
//! - Free entry points: 72 h as Meta's non-template page says; the "up to 7
//!   days" reported from 2026-09-28 applies with `free_entry_point_7_days`.

use std::sync::Arc;

use crate::category::{PricingCategory, PricingModel, PricingType, TemplateCategory};
use crate::charge::{Charge, Settlement};
use crate::ruleset::Ruleset;
use crate::window::ContactState;

use super::pmp_2025::charged;
use super::{Counter, Delivery, MonthKey, Settling, Verdict, inside_free_entry_point};

/// Service messages delivered per (business phone number, month): what
/// the allowance counts.
pub(crate) type ServiceAllowance = Counter<(Arc<str>, MonthKey)>;

/// Free delivered service messages per business phone number per month.
pub const SERVICE_MESSAGES_FREE_PER_MONTH: u64 = 1_000;

/// What a charge counted against the service allowance says of the one
/// point Meta leaves open: which time zone's month resets it.
pub const ALLOWANCE_MONTH_NOTE: &str = " (allowance counted per month in the business's time zone: Meta does not say which time zone resets it, decision D12)";

/// Decides one delivery under the 2026-10 rules.
pub(crate) fn decide(delivery: &Delivery, _state: &mut ContactState) -> Verdict {
    if let Some(window) = delivery.free_entry_point {
        return inside_free_entry_point(delivery, Ruleset::Pmp2026Oct, window, false);
    }
    match delivery.template {
        None => Verdict {
            ruleset: Ruleset::Pmp2026Oct,
            rule: "service-message",
            reason: delivery.reason(|| "free-form (service) message delivered: free within the business number's 1,000 monthly service messages, then charged at the service rate".to_string()),
            pricing_model: PricingModel::Pmp,
            category: PricingCategory::Service,
            pricing_type: PricingType::FreeCustomerService,
            billable: false,
            conversation: None,
            settlement: Settlement::ServiceAllowance,
        },
        Some(template) if template.category == TemplateCategory::Utility => match delivery.customer_service_window {
            Some(window) if delivery.options.utility_free_in_csw => Verdict {
                ruleset: Ruleset::Pmp2026Oct,
                rule: "utility-inside-csw",
                reason: delivery.reason(|| format!(
                    "utility template delivered inside the customer service window opened {} (kept free by utility_free_in_csw)",
                    window.opened_at
                )),
                pricing_model: PricingModel::Pmp,
                category: PricingCategory::Utility,
                pricing_type: PricingType::FreeCustomerService,
                billable: false,
                conversation: None,
                settlement: Settlement::Free,
            },
            Some(window) => charged(delivery, Ruleset::Pmp2026Oct, "utility-inside-csw-charged", delivery.reason(|| format!(
                "utility template delivered inside the customer service window opened {}: charged under the 2026-10 rules",
                window.opened_at
            ))),
            None => charged(delivery, Ruleset::Pmp2026Oct, "utility-outside-csw", delivery.reason(|| "utility template delivered with no customer service window open: charged".into())),
        },
        Some(template) => {
            let rule = if template.category == TemplateCategory::Marketing { "marketing-template" } else { "authentication-template" };
            charged(delivery, Ruleset::Pmp2026Oct, rule, delivery.reason(|| format!("{} template delivered: charged per message", template.category.as_str())))
        }
    }
}

/// Settles a free-form (service) message: free while the business number
/// has delivered at most [`SERVICE_MESSAGES_FREE_PER_MONTH`] this month,
/// then charged at its market's service rate (`service-message-charged`).
pub(crate) fn settle_service(
    settling: &Settling,
    counter: &mut ServiceAllowance,
    charge: &mut Charge,
) -> Result<(), String> {
    let phone = &settling.business.phone_number_id;
    let used = counter.entry((phone.clone(), settling.month)).or_insert(0);
    *used += 1;
    let used = *used;
    charge.explain_counter(|_| {
        format!(
            "business number {phone} service messages, {}: #{used}",
            settling.month_label()
        )
    });
    let allowance = SERVICE_MESSAGES_FREE_PER_MONTH;
    if used <= allowance {
        if settling.reasons {
            charge.reason = format!(
                "free-form (service) message delivered: {used} of the {allowance} free service messages this month for business number {phone}{ALLOWANCE_MONTH_NOTE}"
            );
        }
    } else {
        let card = settling.card(PricingModel::Pmp)?;
        let rate = card.rate(&charge.market, PricingCategory::Service)?;
        charge.pricing_type = PricingType::Regular;
        charge.billable = true;
        charge.rule = "service-message-charged";
        if settling.reasons {
            charge.reason = format!(
                "free-form (service) message delivered after the {allowance} free service messages of the month for business number {phone} (#{used}): charged{ALLOWANCE_MONTH_NOTE}"
            );
        }
        settling.price(charge, card, rate, "message", None);
    }
    Ok(())
}
