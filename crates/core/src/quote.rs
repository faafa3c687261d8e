//! Quotes: what a campaign (or a month of sends) will cost, before it is sent.
//!
//! A quote does not re-implement any rule. It writes the campaign as the log
//! it would produce — for each recipient inside an open customer service
//! window, a user message an hour earlier; then every message sent and
//! delivered at noon on the quote date in the business's time zone — and
//! replays that log through the [`Engine`], starting from the month-to-date
//! counters the business has already reached. The quote therefore charges
//! exactly what `replay` would charge for the same traffic, with the same
//! explanations, tiers and free allowances, and a tier boundary crossed in
//! the middle of a campaign is priced band by band.
//!
//! Recipients are given by market (counts; numbers are made up that the
//! market table places in each market) or as real phone numbers.

use jiff::SignedDuration;
use jiff::civil::Date;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

use crate::category::{PricingCategory, PricingType, TemplateCategory, TierFamily};
use crate::charge::Warning;
use crate::engine::{Engine, MonthToDate};
use crate::event::{DeliveryStatus, Event, EventKind, InboundKind, Origin, Template, UserId};
use crate::market::Market;
use crate::money::Currency;
use crate::ruleset::Ruleset;

/// Recipients replayed at a time (memory stays flat for any campaign size).
pub const QUOTE_SLICE: usize = 50_000;

/// What is being sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteCategory {
    /// A template of this category.
    Template(TemplateCategory),
    /// Free-form (service) messages: only sendable inside a window.
    Service,
}

impl QuoteCategory {
    /// Parses `marketing`, `utility`, `authentication` or `service`.
    pub fn parse(text: &str) -> Option<QuoteCategory> {
        match text.to_ascii_lowercase().as_str() {
            "service" | "free-form" | "freeform" => Some(QuoteCategory::Service),
            other => TemplateCategory::parse(other).map(QuoteCategory::Template),
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            QuoteCategory::Template(category) => category.as_str(),
            QuoteCategory::Service => "service",
        }
    }

    fn tier_family(self) -> Option<TierFamily> {
        match self {
            QuoteCategory::Template(category) => PricingCategory::from(category).tier_family(),
            QuoteCategory::Service => None,
        }
    }
}

/// Who receives the campaign.
#[derive(Clone, Debug)]
pub enum Recipients {
    /// A number of recipients per Meta market name.
    ByMarket(Vec<(String, u64)>),
    /// Real recipients.
    Users(Vec<UserId>),
}

/// Month-to-date counts before the campaign.
#[derive(Clone, Debug, Default)]
pub struct MonthToDateInput {
    /// Applies to every market (and to the WABA's CBP free tier and the
    /// number's 2026-10 service allowance).
    pub all: u64,
    /// Per market: charged messages of the campaign's tier family.
    pub by_market: BTreeMap<String, u64>,
}

/// A quote request.
#[derive(Clone, Debug)]
pub struct QuoteRequest {
    /// Business phone number id, looked up in the engine's accounts.
    pub business: String,
    /// What is sent.
    pub category: QuoteCategory,
    /// Business-local send date.
    pub date: Date,
    /// Recipients.
    pub recipients: Recipients,
    /// Share of recipients (0 to 1) whose customer service window is open.
    pub in_window: Decimal,
    /// Counters already reached this month.
    pub month_to_date: MonthToDateInput,
}

/// Messages of one market priced at one rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteBand {
    /// Volume tier (`250001:2000000`), or `None` for the card's list rate.
    pub tier: Option<String>,
    /// Rate per message (or conversation).
    pub rate: Decimal,
    /// Messages charged at this rate.
    pub messages: u64,
    /// `rate × messages`.
    pub amount: Decimal,
}

/// The quote for one market.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketQuote {
    /// Meta market.
    pub market: Market,
    /// Recipients in the market.
    pub recipients: u64,
    /// Of which inside an open customer service window.
    pub in_window: u64,
    /// Recipients who cannot be sent this message (free-form outside the window).
    pub not_sendable: u64,
    /// Messages charged.
    pub charged: u64,
    /// Messages free, by Meta's pricing type (`free_customer_service`, …).
    pub free: BTreeMap<&'static str, u64>,
    /// Charged messages by rate.
    pub bands: Vec<QuoteBand>,
    /// Total for the market.
    pub amount: Decimal,
    /// Rules applied, with how many messages each decided.
    pub rules: BTreeMap<&'static str, u64>,
    /// Month-to-date count of the tier family before the campaign.
    pub month_to_date: u64,
}

/// A quote.
#[derive(Clone, Debug)]
pub struct Quote {
    /// Ruleset that priced the messages.
    pub ruleset: Ruleset,
    /// Business-local date.
    pub date: Date,
    /// Billing currency.
    pub currency: Currency,
    /// Rate card used (`usd-2026-10-01 (USD PMP, effective 2026-10-01)`), if any.
    pub rate_card: Option<String>,
    /// Per market, sorted by name.
    pub markets: Vec<MarketQuote>,
    /// Sum over markets.
    pub total: Decimal,
    /// Things the user should know (e.g. messages a card cannot price).
    pub warnings: Vec<Warning>,
}

/// Why a quote could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// A market name not in the table on the quote date.
    #[error(
        "`{market}` is not one of Meta's markets on {date} (see `wameter markets list --date {date}`)"
    )]
    UnknownMarket {
        /// The name given.
        market: String,
        /// Quote date.
        date: Date,
    },
    /// `in_window` outside 0..=1.
    #[error("the share inside an open window must be between 0 and 1 (0% and 100%), not {0}")]
    BadShare(Decimal),
    /// The engine could not price (no card, unsupported era).
    #[error("{0}")]
    Pricing(String),
}

/// Makes up `count` distinct phone numbers in `market`, all sharing the
/// example number's first five digits (country and, for `+1`, area code).
fn numbers_in(
    engine: &Engine<'_>,
    market: &str,
    on: Date,
    count: u64,
) -> Result<Vec<UserId>, QuoteError> {
    let unknown = || QuoteError::UnknownMarket {
        market: market.to_string(),
        date: on,
    };
    let example = engine
        .markets
        .example_number(market, on)
        .ok_or_else(unknown)?;
    let UserId::Phone(digits) = &example else {
        return Err(unknown());
    };
    let prefix = &digits[..5.min(digits.len())];
    let users: Vec<UserId> = (0..count)
        .map(|i| UserId::Phone(format!("{prefix}{i:07}").into()))
        .collect();
    // Guard the assumption that five digits fix the market.
    for user in [users.first(), users.last()].into_iter().flatten() {
        let found = engine.markets.lookup(user, on).market;
        if &*found != market {
            return Err(QuoteError::Pricing(format!(
                "made-up number {user} for {market} falls in {found}"
            )));
        }
    }
    Ok(users)
}

/// `count × share`, rounded half up.
fn share_of(count: u64, share: Decimal) -> u64 {
    let exact = Decimal::from(count) * share;
    exact
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .try_into()
        .unwrap_or(count)
}

/// Prices a campaign (module docs).
pub fn quote(engine: &Engine<'_>, request: &QuoteRequest) -> Result<Quote, QuoteError> {
    if request.in_window < Decimal::ZERO || request.in_window > Decimal::ONE {
        return Err(QuoteError::BadShare(request.in_window));
    }
    let business = engine.accounts.get_or_default(&request.business);
    let noon = business
        .timezone
        .to_timestamp(request.date.at(12, 0, 0, 0))
        .map_err(|e| {
            QuoteError::Pricing(format!(
                "no noon on {} in {}: {e}",
                request.date,
                business.timezone_name()
            ))
        })?;

    // Recipients grouped by market, in the given order.
    let mut by_market: BTreeMap<Market, Vec<UserId>> = BTreeMap::new();
    match &request.recipients {
        Recipients::ByMarket(counts) => {
            // A market named twice gets one run of made-up numbers for its
            // total; two runs would repeat the same numbers.
            let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
            for (market, count) in counts {
                *totals.entry(market).or_default() += count;
            }
            for (market, count) in totals {
                by_market.insert(
                    Market::from(market),
                    numbers_in(engine, market, request.date, count)?,
                );
            }
        }
        Recipients::Users(users) => {
            for user in users {
                by_market
                    .entry(engine.markets.lookup(user, request.date).market)
                    .or_default()
                    .push(user.clone());
            }
        }
    }

    let month = (request.date.year(), request.date.month());
    let mut carried = MonthToDate::default();
    let family = request.category.tier_family();
    let mut quotes: BTreeMap<Market, MarketQuote> = BTreeMap::new();
    // (user, market, inside the window), in the order the engine settles
    // deliveries of one instant: by user.
    let mut sends: Vec<(UserId, Market, bool)> = Vec::new();
    for (market, users) in by_market {
        let in_window = share_of(users.len() as u64, request.in_window);
        let month_to_date = request
            .month_to_date
            .by_market
            .get(&*market)
            .copied()
            .unwrap_or(request.month_to_date.all);
        if let Some(family) = family {
            carried.volume.insert(
                (
                    business.portfolio.to_string(),
                    market.to_string(),
                    family,
                    month,
                ),
                month_to_date,
            );
        }
        quotes.insert(
            market.clone(),
            MarketQuote {
                market: market.clone(),
                recipients: users.len() as u64,
                in_window,
                not_sendable: 0,
                charged: 0,
                free: BTreeMap::new(),
                bands: Vec::new(),
                amount: Decimal::ZERO,
                rules: BTreeMap::new(),
                month_to_date: if family.is_some() {
                    month_to_date
                } else {
                    request.month_to_date.all
                },
            },
        );
        sends.extend(
            users
                .into_iter()
                .enumerate()
                .map(|(index, user)| (user, market.clone(), (index as u64) < in_window)),
        );
    }
    carried.conversations.insert(
        (business.waba.to_string(), month),
        request.month_to_date.all,
    );
    carried.service_messages.insert(
        (business.phone_number_id.to_string(), month),
        request.month_to_date.all,
    );
    sends.sort_by(|a, b| a.0.cmp(&b.0));

    let template = match request.category {
        QuoteCategory::Template(category) => Some(std::sync::Arc::new(Template {
            name: "quote".into(),
            category,
        })),
        QuoteCategory::Service => None,
    };
    let business_id: std::sync::Arc<str> = request.business.as_str().into();
    let mut rate_card = None;
    let mut warnings: Vec<Warning> = Vec::new();
    let mut number = 0u64;
    // A campaign replays in slices that hand their monthly counters to the
    // next, so memory stays flat however many recipients there are; the
    // result is the same as one replay because the slices follow the
    // engine's own settlement order.
    for slice in sends.chunks(QUOTE_SLICE) {
        let mut events = Vec::with_capacity(slice.len() * 3);
        for (user, market, inside) in slice {
            if *inside {
                events.push(Event {
                    at: noon - SignedDuration::from_hours(1),
                    origin: Origin::default(),
                    kind: EventKind::Inbound {
                        business: business_id.clone(),
                        user: user.clone(),
                        id: None,
                        entry_point: None,
                        kind: InboundKind::Message,
                    },
                });
            } else if template.is_none() {
                // Meta refuses free-form messages outside the window.
                quotes.get_mut(market).expect("quoted market").not_sendable += 1;
                continue;
            }
            number += 1;
            let id: std::sync::Arc<str> = format!("quote.{number:012}").into();
            events.push(Event {
                at: noon,
                origin: Origin::default(),
                kind: EventKind::Outbound {
                    business: business_id.clone(),
                    user: user.clone(),
                    id: id.clone(),
                    template: template.clone(),
                    messaging_account: None,
                },
            });
            events.push(Event {
                at: noon,
                origin: Origin::default(),
                kind: EventKind::Status {
                    id: Box::from(&*id),
                    status: DeliveryStatus::Delivered,
                    error: None,
                    detail: None,
                },
            });
        }
        let slice_engine = Engine {
            month_to_date: Some(&carried),
            // A quote's bands name the rate each charge was priced at.
            explain: true,
            ..*engine
        };
        let report = slice_engine.replay(events);
        if let Some(error) = report.errors.first() {
            return Err(QuoteError::Pricing(error.message.clone()));
        }
        for warning in report.warnings {
            if warning.code != "note" && !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
        for charge in &report.charges {
            let entry = quotes
                .get_mut(&charge.market)
                .expect("every charge's market was quoted");
            *entry.rules.entry(charge.rule).or_default() += 1;
            // One message per recipient, so a CBP message always opens its
            // own conversation; a charged message is a billable regular one.
            let charged = charge.billable
                && charge.pricing_type == PricingType::Regular
                && (charge.conversation_id.is_none() || charge.opens_conversation);
            if !charged {
                *entry.free.entry(charge.pricing_type.as_str()).or_default() += 1;
                continue;
            }
            let explained = charge.trail.explained();
            rate_card = rate_card.or_else(|| explained.and_then(|e| e.rate_card.clone()));
            entry.charged += 1;
            entry.amount += charge.amount;
            let rate = explained.and_then(|e| e.rate).unwrap_or(charge.amount);
            match entry
                .bands
                .iter_mut()
                .find(|b| b.tier == charge.tier && b.rate == rate)
            {
                Some(band) => {
                    band.messages += 1;
                    band.amount += charge.amount;
                }
                None => entry.bands.push(QuoteBand {
                    tier: charge.tier.clone(),
                    rate,
                    messages: 1,
                    amount: charge.amount,
                }),
            }
        }
        carried = report.counters;
    }
    let ruleset = engine.what_if.ruleset.or_else(|| Ruleset::on(request.date)).ok_or_else(|| {
        QuoteError::Pricing(format!("{} is before 2022-02-01, when Meta billed per notification; wameter prices 2022-02-01 onward", request.date))
    })?;
    let markets: Vec<MarketQuote> = quotes.into_values().collect();
    let total = markets.iter().map(|m| m.amount).sum();
    Ok(Quote {
        ruleset,
        date: request.date,
        currency: business.currency,
        rate_card,
        markets,
        total,
        warnings,
    })
}
