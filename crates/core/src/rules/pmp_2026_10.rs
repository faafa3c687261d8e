//! Per-message pricing as **reported** from 2026-10-01 (decision D12).
//!
//! No copy of Meta's own page was found; these rules come from several
//! vendors' reports (S-2026, domain-rules §7.7). Every charge of this era is
//! marked `reported`.
//!
//! Differences from [`super::pmp_2025`]:
//! - **Service (free-form) messages are charged** at the market's service
//!   rate after 1,000 free delivered service messages per business phone
//!   number per month (business-local month; settled in `crate::engine`);
//!   no volume tiers for service.
//! - **Utility templates inside the customer service window are charged**
//!   (sources conflict; `utility_free_in_csw = true` in the accounts file's
//!   `[rules]` keeps them free).
//! - Free entry points unchanged: 72 h.

use crate::category::{PricingCategory, PricingModel, PricingType, TemplateCategory};
use crate::charge::Settlement;
use crate::ruleset::Ruleset;
use crate::window::ContactState;

use super::pmp_2025::charged;
use super::{Delivery, Verdict, inside_free_entry_point};

/// Free delivered service messages per business phone number per month.
pub const SERVICE_MESSAGES_FREE_PER_MONTH: u64 = 1_000;

/// Decides one delivery under the reported 2026-10 rules.
pub(crate) fn decide(delivery: &Delivery, _state: &mut ContactState) -> Verdict {
    if let Some(window) = delivery.free_entry_point {
        return inside_free_entry_point(delivery, Ruleset::Pmp2026Oct, window, false);
    }
    match delivery.template {
        None => Verdict {
            ruleset: Ruleset::Pmp2026Oct,
            rule: "service-message",
            reason: "free-form (service) message delivered: free within the business number's 1,000 monthly service messages, then charged at the service rate (reported 2026-10 rules)".to_string(),
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
                reason: format!(
                    "utility template delivered inside the customer service window opened {} (kept free by utility_free_in_csw)",
                    window.opened_at
                ),
                pricing_model: PricingModel::Pmp,
                category: PricingCategory::Utility,
                pricing_type: PricingType::FreeCustomerService,
                billable: false,
                conversation: None,
                settlement: Settlement::Free,
            },
            Some(window) => charged(delivery, Ruleset::Pmp2026Oct, "utility-inside-csw-charged", format!(
                "utility template delivered inside the customer service window opened {}: charged under the reported 2026-10 rules",
                window.opened_at
            )),
            None => charged(delivery, Ruleset::Pmp2026Oct, "utility-outside-csw", "utility template delivered with no customer service window open: charged".into()),
        },
        Some(template) => {
            let rule = if template.category == TemplateCategory::Marketing { "marketing-template" } else { "authentication-template" };
            charged(delivery, Ruleset::Pmp2026Oct, rule, format!("{} template delivered: charged per message", template.category.as_str()))
        }
    }
}
