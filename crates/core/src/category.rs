//! Meta's vocabulary for what a message is and how it was priced.
//!
//! The string forms are exactly the values Meta puts in a status webhook's
//! `pricing` object, so that reports and reconciliation speak Meta's language.

use std::fmt;

/// The category of an approved message template (Meta's template categories).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TemplateCategory {
    /// Promotions, offers, re-engagement.
    Marketing,
    /// Updates about an existing transaction or account.
    Utility,
    /// One-time passcodes.
    Authentication,
}

impl TemplateCategory {
    /// Parses `marketing`, `utility` or `authentication` (any case).
    pub fn parse(text: &str) -> Option<TemplateCategory> {
        match text.to_ascii_lowercase().as_str() {
            "marketing" => Some(TemplateCategory::Marketing),
            "utility" => Some(TemplateCategory::Utility),
            "authentication" => Some(TemplateCategory::Authentication),
            _ => None,
        }
    }

    /// Meta's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "marketing",
            TemplateCategory::Utility => "utility",
            TemplateCategory::Authentication => "authentication",
        }
    }
}

/// The category a delivered message was priced under (`pricing.category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PricingCategory {
    /// Marketing template.
    Marketing,
    /// Utility template.
    Utility,
    /// Authentication template at the domestic rate.
    Authentication,
    /// Authentication template at the authentication-international rate.
    AuthenticationInternational,
    /// Non-template message (or, in CBP v2, a service conversation).
    Service,
    /// Free entry point conversation (CBP).
    ReferralConversion,
    /// CBP v1 (2022-02 → 2023-05) conversation opened outside the window.
    BusinessInitiated,
    /// CBP v1 conversation opened inside the customer service window.
    UserInitiated,
}

impl PricingCategory {
    /// Meta's spelling in webhooks and in `replay --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            PricingCategory::Marketing => "marketing",
            PricingCategory::Utility => "utility",
            PricingCategory::Authentication => "authentication",
            PricingCategory::AuthenticationInternational => "authentication_international",
            PricingCategory::Service => "service",
            PricingCategory::ReferralConversion => "referral_conversion",
            PricingCategory::BusinessInitiated => "business_initiated",
            PricingCategory::UserInitiated => "user_initiated",
        }
    }

    /// Parses Meta's spellings, accepting `authentication-international` too
    /// (the status reference spells it with a hyphen; docs/rules.md §8.3).
    pub fn parse(text: &str) -> Option<PricingCategory> {
        Some(match text.to_ascii_lowercase().as_str() {
            "marketing" => PricingCategory::Marketing,
            "utility" => PricingCategory::Utility,
            "authentication" => PricingCategory::Authentication,
            "authentication_international" | "authentication-international" => {
                PricingCategory::AuthenticationInternational
            }
            "service" => PricingCategory::Service,
            "referral_conversion" => PricingCategory::ReferralConversion,
            "business_initiated" => PricingCategory::BusinessInitiated,
            "user_initiated" => PricingCategory::UserInitiated,
            _ => return None,
        })
    }

    /// The volume-tier family a charged message of this category counts in
    /// (PMP: utility and authentication only; authentication-international
    /// shares the authentication counter, decision D10).
    pub fn tier_family(self) -> Option<TierFamily> {
        match self {
            PricingCategory::Utility => Some(TierFamily::Utility),
            PricingCategory::Authentication | PricingCategory::AuthenticationInternational => {
                Some(TierFamily::Authentication)
            }
            _ => None,
        }
    }
}

impl fmt::Display for PricingCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<TemplateCategory> for PricingCategory {
    fn from(category: TemplateCategory) -> PricingCategory {
        match category {
            TemplateCategory::Marketing => PricingCategory::Marketing,
            TemplateCategory::Utility => PricingCategory::Utility,
            TemplateCategory::Authentication => PricingCategory::Authentication,
        }
    }
}

/// Which volume-tier counter a charge advances (decision D10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TierFamily {
    /// Utility templates.
    Utility,
    /// Authentication and authentication-international templates.
    Authentication,
}

impl TierFamily {
    /// Lower-case name as used in tier files (`utility`, `authentication`).
    pub fn as_str(self) -> &'static str {
        match self {
            TierFamily::Utility => "utility",
            TierFamily::Authentication => "authentication",
        }
    }
}

/// Why a message was or was not charged (`pricing.type`, plus CBP's free tier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PricingType {
    /// Charged at the card (or tier) rate.
    Regular,
    /// Free because of the customer service window.
    FreeCustomerService,
    /// Free because of a free entry point (ad or Page call-to-action).
    FreeEntryPoint,
    /// CBP monthly free tier (1,000 conversations).
    FreeTier,
}

impl PricingType {
    /// Meta's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PricingType::Regular => "regular",
            PricingType::FreeCustomerService => "free_customer_service",
            PricingType::FreeEntryPoint => "free_entry_point",
            PricingType::FreeTier => "free_tier",
        }
    }
}

/// Meta's pricing model: conversation-based or per-message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PricingModel {
    /// Conversation-based pricing (2022-02-01 → 2025-06-30).
    Cbp,
    /// Per-message pricing (from 2025-07-01).
    Pmp,
}

impl PricingModel {
    /// `"CBP"` or `"PMP"`, as in Meta's webhooks.
    pub fn as_str(self) -> &'static str {
        match self {
            PricingModel::Cbp => "CBP",
            PricingModel::Pmp => "PMP",
        }
    }
}
