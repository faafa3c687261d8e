//! The engine's inputs besides events — businesses, rate cards, tiers,
//! markets, calling rates — as one value that every front end (`replay`,
//! `serve`, the guard, the sandbox) builds once and prices with.

use std::collections::BTreeSet;

use crate::account::Accounts;
use crate::engine::Engine;
use crate::market::MarketTable;
use crate::ratecard::calling::CallRateBook;
use crate::ratecard::{RateBook, TierBook};

/// Rate cards, tiers, markets and businesses: everything the engine needs
/// besides events.
pub struct Pricing {
    /// Businesses (time zone, currency, portfolio…).
    pub accounts: Accounts,
    /// Rate cards.
    pub rates: RateBook,
    /// Volume tiers.
    pub tiers: TierBook,
    /// Calling code → market.
    pub markets: &'static MarketTable,
    /// Calling API rates.
    pub call_rates: CallRateBook,
}

impl Pricing {
    /// An engine over these tables.
    pub fn engine(&self) -> Engine<'_> {
        Engine {
            call_rates: &self.call_rates,
            ..Engine::new(&self.accounts, &self.rates, &self.tiers, self.markets)
        }
    }

    /// The WABA of a business phone number (itself when not configured):
    /// its first Messaging account.
    pub fn waba_of(&self, business: &str) -> String {
        self.accounts.get_or_default(business).waba.to_string()
    }

    /// The Messaging account (WABA id) a kept charge is billed through:
    /// the one it names (the engine names only a number's other
    /// accounts), else the number's first. Money, budgets and scopes are
    /// keyed by it.
    pub fn account_of(&self, business: &str, messaging_account: Option<&str>) -> String {
        messaging_account.map_or_else(|| self.waba_of(business), str::to_string)
    }

    /// The businesses whose events a question about `businesses` needs:
    /// those sharing a portfolio with them, because volume tiers count the
    /// whole portfolio's messages (and the free tier the whole WABA's).
    pub fn with_counter_peers(&self, businesses: &BTreeSet<String>) -> Vec<String> {
        let portfolios: BTreeSet<String> = businesses
            .iter()
            .map(|b| self.accounts.get_or_default(b).portfolio.to_string())
            .collect();
        let mut out = businesses.clone();
        for business in self.accounts.businesses() {
            if portfolios.contains(&*business.portfolio) {
                out.insert(business.phone_number_id.to_string());
            }
        }
        out.into_iter().collect()
    }
}
