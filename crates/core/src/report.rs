//! Totals and summaries of a list of charges.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use crate::category::PricingCategory;
use crate::charge::Charge;
use crate::money::Currency;
use crate::rules::agent::AgentCharge;
use crate::rules::calling::CallCharge;
use crate::settlement::Month;

/// Totals for one currency (interfaces §4 `totals`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Currency.
    pub currency: Currency,
    /// Sum of `amount` over the charges in that currency.
    pub amount: Decimal,
    /// Charges with `billable: true`.
    pub billable_messages: u64,
    /// Conversations opened (CBP; plus PMP free entry point windows).
    pub conversations: u64,
    /// Calls billed (their amounts are in `amount`).
    pub billable_calls: u64,
}

impl Totals {
    /// Nothing yet in `currency`.
    pub fn zero(currency: Currency) -> Totals {
        Totals {
            currency,
            amount: Decimal::ZERO,
            billable_messages: 0,
            conversations: 0,
            billable_calls: 0,
        }
    }
}

/// Totals per currency, sorted by currency code.
pub fn totals(charges: &[Charge]) -> Vec<Totals> {
    let mut by_currency: BTreeMap<Currency, Totals> = BTreeMap::new();
    for charge in charges {
        let totals = by_currency
            .entry(charge.currency)
            .or_insert_with(|| Totals::zero(charge.currency));
        totals.amount += charge.amount;
        totals.billable_messages += u64::from(charge.billable);
        totals.conversations += u64::from(charge.opens_conversation);
    }
    by_currency.into_values().collect()
}

/// Totals of charges and calls together, per currency (interfaces §4:
/// `totals.amount` sums both).
pub fn totals_with_calls(charges: &[Charge], calls: &[CallCharge]) -> Vec<Totals> {
    let mut all = totals(charges);
    add_calls(&mut all, calls);
    all
}

/// Adds Meta Business Agent usage's amounts to totals, kept sorted.
pub fn add_agent(totals: &mut Vec<Totals>, agent: &[AgentCharge]) {
    for usage in agent {
        currency_totals(totals, usage.currency).amount += usage.amount;
    }
}

/// The totals of `currency` in a list sorted by currency, added if absent.
fn currency_totals(totals: &mut Vec<Totals>, currency: Currency) -> &mut Totals {
    let index = match totals.binary_search_by(|t| t.currency.cmp(&currency)) {
        Ok(index) => index,
        Err(index) => {
            totals.insert(index, Totals::zero(currency));
            index
        }
    };
    &mut totals[index]
}

/// Adds calls' amounts and counts to totals, keeping them sorted by currency.
pub fn add_calls(totals: &mut Vec<Totals>, calls: &[CallCharge]) {
    for call in calls {
        let totals = currency_totals(totals, call.currency);
        totals.amount += call.amount;
        totals.billable_calls += u64::from(call.billable);
    }
}

/// One line of the month × category × market summary.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SummaryKey {
    /// Business-local month, `YYYY-MM`.
    pub month: String,
    /// Currency.
    pub currency: Currency,
    /// Pricing category (Meta's spelling).
    pub category: &'static str,
    /// Market.
    pub market: String,
}

/// Counts and amount for one summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SummaryLine {
    /// Delivered messages.
    pub messages: u64,
    /// Messages with an amount above zero.
    pub charged: u64,
    /// Sum of amounts.
    pub amount: Decimal,
}

/// Totals by business-local month × currency × category × market.
pub fn summary(charges: &[Charge]) -> BTreeMap<SummaryKey, SummaryLine> {
    // Summed under a key that costs nothing to build (the market shared,
    // the month a date), and given its words once per line: a key of two
    // new strings per charge, sought in an ordered map, was a twentieth of
    // a replay's instructions (docs/PERFORMANCE.md).
    type Key<'c> = (Month, Currency, PricingCategory, &'c str);
    let mut sums: HashMap<Key<'_>, SummaryLine, foldhash::fast::RandomState> = HashMap::default();
    for charge in charges {
        let key = (
            Month::of(charge.local_date),
            charge.currency,
            charge.category,
            &*charge.market,
        );
        let line = sums.entry(key).or_default();
        line.messages += 1;
        line.charged += u64::from(!charge.amount.is_zero());
        line.amount += charge.amount;
    }
    let mut lines: BTreeMap<SummaryKey, SummaryLine> = BTreeMap::new();
    for ((month, currency, category, market), sum) in sums {
        let line = lines
            .entry(SummaryKey {
                month: month.to_string(),
                currency,
                category: category.as_str(),
                market: market.to_owned(),
            })
            .or_default();
        line.messages += sum.messages;
        line.charged += sum.charged;
        line.amount += sum.amount;
    }
    lines
}
