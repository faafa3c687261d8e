//! Businesses: the per-business facts that change how a message is billed.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{Timestamp, tz::TimeZone};

use crate::money::Currency;

/// One business phone number and the accounts it belongs to (interfaces §2).
#[derive(Clone, Debug)]
pub struct Business {
    /// Business phone number id, as in the log's `business` field.
    pub phone_number_id: Arc<str>,
    /// WhatsApp Business Account; the CBP free tier is counted per WABA.
    pub waba: Arc<str>,
    /// Business portfolio; PMP volume tiers are counted per portfolio.
    pub portfolio: Arc<str>,
    /// IANA time zone of the WABA: era, rate-card and month boundaries use it.
    pub timezone: TimeZone,
    /// Billing currency.
    pub currency: Currency,
    /// Primary business location (ISO 3166 alpha-2), for
    /// authentication-international (decision D9).
    pub primary_country: Option<Arc<str>>,
    /// Start of authentication-international eligibility (decision D9).
    pub auth_international_from: Option<Timestamp>,
}

impl Business {
    /// A business that is not in the accounts file: its own WABA and
    /// portfolio, UTC, USD.
    pub fn with_defaults(phone_number_id: &str) -> Business {
        let id: Arc<str> = Arc::from(phone_number_id);
        Business {
            phone_number_id: id.clone(),
            waba: id.clone(),
            portfolio: id,
            timezone: TimeZone::UTC,
            currency: Currency::USD,
            primary_country: None,
            auth_international_from: None,
        }
    }

    /// The time zone's IANA name, or `UTC`.
    pub fn timezone_name(&self) -> &str {
        self.timezone.iana_name().unwrap_or("UTC")
    }
}

/// Options where the engine takes a position on an unsettled rule
/// (`docs/rules.md`, lines marked "configurable").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleOptions {
    /// 2026-10 ruleset: keep utility templates free inside the customer
    /// service window (decision D12; default `false`: billed, as most sources
    /// report).
    pub utility_free_in_csw: bool,
    /// Free entry points answered on or after 2026-09-28 stay open for 7
    /// days instead of 72 h: what several readers of Meta's main pricing
    /// page reported from that date, while Meta's non-template page still
    /// says 72 h (decision D12; default `false`: 72 h).
    pub free_entry_point_7_days: bool,
    /// Calling: a business-initiated call that Meta ends `failed` after a
    /// duration is free instead of billed-and-uncertain (Meta does not say;
    /// docs/rules.md §14; default `false`: billed).
    pub failed_calls_free: bool,
    /// Calling: minute bands count connected seconds instead of billed
    /// minutes (pulses / 10) (Meta does not say; docs/rules.md §14;
    /// default `false`: billed minutes).
    pub call_bands_count_seconds: bool,
}

/// All known businesses, by phone number id.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    businesses: BTreeMap<String, Arc<Business>>,
    /// Engine options from the accounts file.
    pub options: RuleOptions,
}

impl Accounts {
    /// Accounts from a list of businesses.
    pub fn new(businesses: Vec<Business>, options: RuleOptions) -> Accounts {
        let businesses = businesses.into_iter().map(|b| (b.phone_number_id.to_string(), Arc::new(b))).collect();
        Accounts { businesses, options }
    }

    /// The configured business, if listed.
    pub fn get(&self, phone_number_id: &str) -> Option<&Arc<Business>> {
        self.businesses.get(phone_number_id)
    }

    /// Adds a business, replacing one with the same phone number id.
    pub fn insert(&mut self, business: Business) {
        self.businesses.insert(business.phone_number_id.to_string(), Arc::new(business));
    }

    /// Every listed business, by phone number id.
    pub fn businesses(&self) -> impl Iterator<Item = &Arc<Business>> {
        self.businesses.values()
    }

    /// The business, or one with the defaults.
    pub fn get_or_default(&self, phone_number_id: &str) -> Arc<Business> {
        self.get(phone_number_id).cloned().unwrap_or_else(|| Arc::new(Business::with_defaults(phone_number_id)))
    }
}
