//! What a business re-bills its clients, and how much a WABA or a client may
//! spend in a month.
//!
//! Integrators run WhatsApp for clients, each client one or more WABAs, and
//! pass Meta's charges on with a margin. A [`Client`] names its WABAs and its
//! [`Markup`] rules: a percentage of Meta's amount and/or a fixed fee per
//! billable message, by pricing category. [`Client::cost`] turns one of
//! Meta's charges into what the client pays, every part exact.
//!
//! A [`Budget`] caps the spend of one WABA or one client in a business-local
//! calendar month, in the business's currency. Its soft thresholds (50 %,
//! 80 %, 100 % by default) are crossed by *charged* spend — what Meta will
//! invoice — and its optional hard stop refuses a billable send when the
//! spend, the sends still in flight and the send's own estimate together
//! would go over the amount. The month follows the businesses' time zone,
//! as Meta's invoices do.
//!
//! Nothing here reads a clock or a file: callers pass the instant and the
//! spend.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;

use crate::category::PricingCategory;
use crate::money::Currency;
use crate::settlement::Month;

/// Soft thresholds when a budget names none: percentages of its amount.
pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];

/// One re-billing rule of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markup {
    /// Pricing categories it applies to (Meta's spelling); empty: all.
    /// `authentication` also covers `authentication_international`.
    pub categories: Vec<PricingCategory>,
    /// Percentage of Meta's amount added (`15` adds 15 %).
    pub percent: Decimal,
    /// Fixed fee per billable message, in the business's currency.
    pub fee: Decimal,
}

impl Markup {
    /// Whether the rule applies to messages priced under `category`.
    pub fn applies_to(&self, category: PricingCategory) -> bool {
        self.categories.is_empty()
            || self.categories.iter().any(|c| {
                *c == category
                    || (*c == PricingCategory::Authentication
                        && category == PricingCategory::AuthenticationInternational)
            })
    }
}

/// A client: a named group of WABAs re-billed together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The name invoices and budgets use.
    pub name: Arc<str>,
    /// Its WhatsApp Business Accounts.
    pub wabas: Vec<Arc<str>>,
    /// Re-billing rules; the first that applies to a category wins.
    pub markups: Vec<Markup>,
}

/// What a client pays for one message, beside what Meta charges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCost {
    /// Meta's amount.
    pub meta: Decimal,
    /// The percentage markup on it.
    pub markup: Decimal,
    /// The fixed fee (billable messages only).
    pub fee: Decimal,
    /// `meta + markup + fee`.
    pub total: Decimal,
}

impl std::ops::AddAssign for ClientCost {
    fn add_assign(&mut self, other: ClientCost) {
        self.meta += other.meta;
        self.markup += other.markup;
        self.fee += other.fee;
        self.total += other.total;
    }
}

impl Client {
    /// The rule for messages priced under `category`, if any.
    pub fn markup_for(&self, category: PricingCategory) -> Option<&Markup> {
        self.markups
            .iter()
            .find(|markup| markup.applies_to(category))
    }

    /// What the client pays for a message Meta priced at `amount` under
    /// `category`. Only billable messages carry the markup and the fee: a
    /// free message stays free for the client too.
    pub fn cost(&self, category: PricingCategory, billable: bool, amount: Decimal) -> ClientCost {
        let Some(markup) = self.markup_for(category).filter(|_| billable) else {
            return ClientCost {
                meta: amount,
                markup: Decimal::ZERO,
                fee: Decimal::ZERO,
                total: amount,
            };
        };
        let percentage = amount * markup.percent / Decimal::ONE_HUNDRED;
        ClientCost {
            meta: amount,
            markup: percentage,
            fee: markup.fee,
            total: amount + percentage + markup.fee,
        }
    }
}

/// What a budget covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetScope {
    /// One WABA.
    Waba(Arc<str>),
    /// Every WABA of a client.
    Client(Arc<str>),
}

impl std::fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetScope::Waba(waba) => write!(f, "WABA {waba}"),
            BudgetScope::Client(client) => write!(f, "client {client}"),
        }
    }
}

/// A monthly spending cap.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// The name alerts and refusals use.
    pub name: Arc<str>,
    /// What it covers.
    pub scope: BudgetScope,
    /// The WABAs it covers (the scope resolved).
    pub wabas: Vec<Arc<str>>,
    /// The monthly amount.
    pub amount: Decimal,
    /// The businesses' billing currency.
    pub currency: Currency,
    /// The businesses' time zone: months start at its midnight.
    pub timezone: TimeZone,
    /// Soft thresholds, percent of `amount`, ascending.
    pub thresholds: Vec<u32>,
    /// Refuse billable sends that would go over `amount`.
    pub hard_stop: bool,
}

/// A business-local calendar month: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalMonth {
    /// The calendar month.
    pub month: Month,
    /// Its first instant in the zone.
    pub start: Timestamp,
    /// The next month's first instant in the zone.
    pub end: Timestamp,
}

impl LocalMonth {
    /// `month` as it runs in `zone`.
    pub fn in_zone(month: Month, zone: &TimeZone) -> LocalMonth {
        let midnight = |month: Month| {
            zone.to_timestamp(month.first_day().to_datetime(Time::midnight()))
                .unwrap_or_else(|_| month.start_utc())
        };
        LocalMonth {
            month,
            start: midnight(month),
            end: midnight(month.next()),
        }
    }

    /// The month in `zone` that holds `at`.
    pub fn of(at: Timestamp, zone: &TimeZone) -> LocalMonth {
        LocalMonth::in_zone(Month::of(zone.to_datetime(at).date()), zone)
    }

    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        self.month.to_string()
    }
}

impl Budget {
    /// Whether the budget covers messages sent from `waba`.
    pub fn covers(&self, waba: &str) -> bool {
        self.wabas.iter().any(|w| &**w == waba)
    }

    /// The amount at which threshold `percent` is crossed.
    pub fn threshold_amount(&self, percent: u32) -> Decimal {
        self.amount * Decimal::from(percent) / Decimal::ONE_HUNDRED
    }

    /// The thresholds a month's charged spend has reached (at or above).
    pub fn crossed(&self, spent: Decimal) -> Vec<u32> {
        self.thresholds
            .iter()
            .copied()
            .filter(|t| spent >= self.threshold_amount(*t))
            .collect()
    }

    /// The spend at month end if the month goes on as it went so far: a
    /// straight line through the spend to date, to 4 decimal places. At the
    /// month's first instant there is no rate yet, so the forecast is the
    /// spend itself.
    pub fn forecast(&self, spent: Decimal, month: &LocalMonth, now: Timestamp) -> Decimal {
        let whole = month.end.as_second() - month.start.as_second();
        let elapsed = (now.as_second() - month.start.as_second()).clamp(0, whole);
        if elapsed == 0 || now >= month.end {
            return spent;
        }
        (spent * Decimal::from(whole) / Decimal::from(elapsed)).round_dp(4)
    }

    /// Whether a billable send estimated at `estimate` may go out, with
    /// `spent` charged this month and `in_flight` sent but not yet
    /// delivered or failed. Always true without a hard stop.
    pub fn allows(&self, spent: Decimal, in_flight: Decimal, estimate: Decimal) -> bool {
        !self.hard_stop || spent + in_flight + estimate <= self.amount
    }
}

/// Every client and budget of an accounts file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Billing {
    /// Clients, in file order.
    pub clients: Vec<Client>,
    /// Budgets, in file order.
    pub budgets: Vec<Budget>,
}

impl Billing {
    /// The client named `name`.
    pub fn client(&self, name: &str) -> Option<&Client> {
        self.clients.iter().find(|client| &*client.name == name)
    }

    /// The client a WABA belongs to, if any (a WABA belongs to at most one).
    pub fn client_of_waba(&self, waba: &str) -> Option<&Client> {
        self.clients
            .iter()
            .find(|client| client.wabas.iter().any(|w| &**w == waba))
    }

    /// The budgets covering a WABA.
    pub fn budgets_of_waba<'a>(&'a self, waba: &'a str) -> impl Iterator<Item = &'a Budget> + 'a {
        self.budgets
            .iter()
            .filter(move |budget| budget.covers(waba))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn client() -> Client {
        Client {
            name: "acme".into(),
            wabas: vec!["w1".into()],
            markups: vec![
                Markup {
                    categories: vec![PricingCategory::Marketing],
                    percent: d("20"),
                    fee: d("0.01"),
                },
                Markup {
                    categories: vec![PricingCategory::Authentication],
                    percent: d("0"),
                    fee: d("0.005"),
                },
                Markup {
                    categories: vec![],
                    percent: d("10"),
                    fee: d("0"),
                },
            ],
        }
    }

    #[test]
    fn markups_by_category_first_match_wins() {
        let client = client();
        let marketing = client.cost(PricingCategory::Marketing, true, d("0.0625"));
        assert_eq!(
            (marketing.markup, marketing.fee, marketing.total),
            (d("0.0125"), d("0.01"), d("0.085"))
        );
        let international = client.cost(
            PricingCategory::AuthenticationInternational,
            true,
            d("0.0280"),
        );
        assert_eq!(
            international.total,
            d("0.0330"),
            "authentication covers authentication_international"
        );
        let utility = client.cost(PricingCategory::Utility, true, d("0.0068"));
        assert_eq!(
            utility.total,
            d("0.00748"),
            "the catch-all rule: +10 %, no fee"
        );
    }

    #[test]
    fn free_messages_stay_free() {
        let free = client().cost(PricingCategory::Service, false, Decimal::ZERO);
        assert_eq!(free, ClientCost::default());
        let unruled = Client {
            markups: vec![],
            ..client()
        }
        .cost(PricingCategory::Marketing, true, d("0.05"));
        assert_eq!(
            unruled.total,
            d("0.05"),
            "no rule: the client pays Meta's amount"
        );
    }

    fn budget(hard_stop: bool) -> Budget {
        Budget {
            name: "acme".into(),
            scope: BudgetScope::Client("acme".into()),
            wabas: vec!["w1".into()],
            amount: d("0.02"),
            currency: Currency::parse("USD").unwrap(),
            timezone: TimeZone::get("America/Sao_Paulo").unwrap(),
            thresholds: DEFAULT_THRESHOLDS.to_vec(),
            hard_stop,
        }
    }

    #[test]
    fn thresholds_are_crossed_at_or_above() {
        let budget = budget(false);
        assert_eq!(budget.crossed(d("0.0068")), Vec::<u32>::new());
        assert_eq!(budget.crossed(d("0.01")), vec![50]);
        assert_eq!(budget.crossed(d("0.0204")), vec![50, 80, 100]);
    }

    #[test]
    fn the_hard_stop_counts_what_is_in_flight() {
        let budget = budget(true);
        assert!(
            budget.allows(d("0.0068"), d("0.0068"), d("0.0064")),
            "exactly the amount is allowed"
        );
        assert!(!budget.allows(d("0.0068"), d("0.0068"), d("0.0068")));
        assert!(
            self::budget(false).allows(d("1"), d("1"), d("1")),
            "soft budgets never refuse"
        );
    }

    #[test]
    fn months_and_forecasts_follow_the_business_zone() {
        let budget = budget(false);
        // 02:00 UTC on 1 November is still October in São Paulo (UTC−3).
        let month = LocalMonth::of("2026-11-01T02:00:00Z".parse().unwrap(), &budget.timezone);
        assert_eq!(month.label(), "2026-10");
        assert_eq!(
            month.start,
            "2026-10-01T03:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            month.end,
            "2026-11-01T03:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            LocalMonth::in_zone(Month::parse("2026-10").unwrap(), &budget.timezone),
            month
        );
        // A third of November gone (10 of 30 days), 1.00 spent: 3.00 forecast.
        let november = LocalMonth::of("2026-11-11T03:00:00Z".parse().unwrap(), &budget.timezone);
        assert_eq!(
            budget.forecast(
                d("1.00"),
                &november,
                "2026-11-11T03:00:00Z".parse().unwrap()
            ),
            d("3.00")
        );
        assert_eq!(
            budget.forecast(d("1.00"), &november, november.start),
            d("1.00")
        );
    }
}
