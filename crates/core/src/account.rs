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
    /// The number's other Messaging accounts (Meta's account model of
    /// 2026: one number billed through several, one per partner); the
    /// first Messaging account is `waba` itself. Money is keyed by
    /// Messaging account; windows and the service allowance stay with
    /// the number (docs/rules.md §16).
    pub messaging_accounts: Vec<MessagingAccount>,
}

/// A Messaging account (Meta's account model of 2026): templates, billing
/// and webhooks; its id is the WABA id Meta's payloads carry. A charge
/// billed through it takes its currency and time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingAccount {
    /// The Messaging account id (`messaging_account_id`, and `entry[].id`
    /// of the webhooks it receives).
    pub id: Arc<str>,
    /// Its billing currency.
    pub currency: Currency,
    /// Its IANA time zone: local dates and months of its charges.
    pub timezone: TimeZone,
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
            messaging_accounts: Vec::new(),
        }
    }

    /// Whether `id` is one of this number's Messaging accounts (`waba`
    /// included).
    pub fn has_messaging_account(&self, id: &str) -> bool {
        *self.waba == *id
            || self
                .messaging_accounts
                .iter()
                .any(|account| *account.id == *id)
    }

    /// This number as billed through its Messaging account `account`: the
    /// same number, portfolio and primary country, with the account's id
    /// as WABA and its currency and time zone.
    fn through(&self, account: &MessagingAccount) -> Business {
        Business {
            waba: account.id.clone(),
            currency: account.currency,
            timezone: account.timezone.clone(),
            messaging_accounts: Vec::new(),
            ..self.clone()
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
    /// Phone number id → the number as billed through each of its other
    /// Messaging accounts.
    payers: BTreeMap<String, Vec<Arc<Business>>>,
    /// Engine options from the accounts file.
    pub options: RuleOptions,
}

impl Accounts {
    /// Accounts from a list of businesses.
    pub fn new(businesses: Vec<Business>, options: RuleOptions) -> Accounts {
        let mut accounts = Accounts {
            options,
            ..Accounts::default()
        };
        for business in businesses {
            accounts.insert(business);
        }
        accounts
    }

    /// The configured business, if listed.
    pub fn get(&self, phone_number_id: &str) -> Option<&Arc<Business>> {
        self.businesses.get(phone_number_id)
    }

    /// Adds a business, replacing one with the same phone number id.
    pub fn insert(&mut self, business: Business) {
        let phone = business.phone_number_id.to_string();
        let payers: Vec<Arc<Business>> = business
            .messaging_accounts
            .iter()
            .map(|account| Arc::new(business.through(account)))
            .collect();
        if payers.is_empty() {
            self.payers.remove(&phone);
        } else {
            self.payers.insert(phone.clone(), payers);
        }
        self.businesses.insert(phone, Arc::new(business));
    }

    /// Every listed business, by phone number id.
    pub fn businesses(&self) -> impl Iterator<Item = &Arc<Business>> {
        self.businesses.values()
    }

    /// The business, or one with the defaults.
    pub fn get_or_default(&self, phone_number_id: &str) -> Arc<Business> {
        self.get(phone_number_id)
            .cloned()
            .unwrap_or_else(|| Arc::new(Business::with_defaults(phone_number_id)))
    }

    /// The Messaging account a message of `phone_number_id` that names
    /// `named` (its `messaging_account_id`, or the entry of its webhooks)
    /// is billed through: `Some(id)` when that is one of the number's
    /// *other* Messaging accounts, `None` for its first (`waba`) — also
    /// when `named` is absent, or is none of the number's accounts, which
    /// [`Accounts::unknown_messaging_account`] says.
    pub fn messaging_account(
        &self,
        phone_number_id: &str,
        named: Option<&str>,
    ) -> Option<Arc<str>> {
        let named = named?;
        self.through(phone_number_id, named)
            .map(|payer| payer.waba.clone())
    }

    /// A sentence when `named` is none of the Messaging accounts of a
    /// number that has several (the message is then billed through its
    /// first): with one account there is nothing to choose, so an id the
    /// accounts file does not know changes nothing.
    pub fn unknown_messaging_account(&self, phone_number_id: &str, named: &str) -> Option<String> {
        let business = self.get(phone_number_id)?;
        if business.messaging_accounts.is_empty() || business.has_messaging_account(named) {
            return None;
        }
        Some(format!(
            "Messaging account {named} is none of business number {phone_number_id}'s ({}, {}): billed through {}",
            business.waba,
            business
                .messaging_accounts
                .iter()
                .map(|a| &*a.id)
                .collect::<Vec<_>>()
                .join(", "),
            business.waba
        ))
    }

    /// The number as billed through `messaging_account` (an id
    /// [`Accounts::messaging_account`] returned), or through its first
    /// Messaging account when `None`: the currency, time zone and WABA
    /// that its money uses.
    pub fn payer(&self, phone_number_id: &str, messaging_account: Option<&str>) -> Arc<Business> {
        messaging_account
            .and_then(|account| self.through(phone_number_id, account))
            .cloned()
            .unwrap_or_else(|| self.get_or_default(phone_number_id))
    }

    fn through(&self, phone_number_id: &str, account: &str) -> Option<&Arc<Business>> {
        self.payers
            .get(phone_number_id)?
            .iter()
            .find(|payer| *payer.waba == *account)
    }
}
