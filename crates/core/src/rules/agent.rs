//! Meta Business Agent tokens (docs/rules.md §15, which gives the
//! sources).
//!
//! Meta's own AI agent answers users in the business's name. Its messages
//! are billed by the tokens they used, from 2026-08-01, at USD 2.00 per
//! million tokens, and never free — not even inside a free entry point.
//! Meta publishes no webhook or analytics shape for token counts yet
//! ("forthcoming"), so usage comes in as canonical `agent_usage` lines
//! (from the agent platform's own reports). A rate is known in USD only:
//! usage billed in another currency is kept, listed and reported as
//! unpriced, never guessed.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use rust_decimal::Decimal;

use crate::account::Accounts;
use crate::charge::{PricingError, Warning};
use crate::event::{AgentUsage, Origin, UserId};
use crate::money::Currency;

/// The ruleset every agent charge names.
pub const RULESET: &str = "agent-2026-08";

/// Dated rates per million tokens: (from, currency, rate). Meta's
/// non-template pricing page (copies of 2026-07 to 2026-09).
pub const RATES: &[(Date, &str, &str)] = &[(date(2026, 8, 1), "USD", "2.00")];

/// When Meta began to bill the agent's tokens.
pub const BILLED_FROM: Date = date(2026, 8, 1);

/// A usage as read, with its instant and origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedUsage {
    /// When the tokens were used.
    pub at: Timestamp,
    /// Where it was read.
    pub origin: Origin,
    /// The usage.
    pub usage: AgentUsage,
}

/// What one usage costs and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCharge {
    /// The usage id.
    pub usage_id: Box<str>,
    /// Business phone number id.
    pub business: Arc<str>,
    /// The Messaging account it is billed through, when not the number's
    /// first (as [`crate::charge::Charge::messaging_account`]).
    pub messaging_account: Option<Arc<str>>,
    /// The user answered.
    pub user: UserId,
    /// When.
    pub at: Timestamp,
    /// Business-local date: chooses the rate.
    pub local_date: Date,
    /// Tokens used.
    pub tokens: u64,
    /// Whether Meta bills it.
    pub billable: bool,
    /// Billing currency.
    pub currency: Currency,
    /// Rate per million tokens, when billed.
    pub rate_per_million: Option<Decimal>,
    /// `tokens × rate / 1,000,000`, exact.
    pub amount: Decimal,
    /// Always [`RULESET`].
    pub ruleset: &'static str,
    /// The rule applied.
    pub rule: &'static str,
    /// One sentence a person can read.
    pub reason: String,
    /// Where it was read.
    pub origin: Origin,
}

/// Every usage priced, in time order, and those that cannot be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentReport {
    /// One per usage id.
    pub charges: Vec<AgentCharge>,
    /// Usage that cannot be priced (no rate in the business's currency).
    pub errors: Vec<PricingError>,
    /// Copies of a usage that disagree.
    pub warnings: Vec<Warning>,
    /// Copies dropped.
    pub duplicates: u64,
}

/// The rate per million tokens in force on `on`, in `currency`.
pub fn rate(currency: Currency, on: Date) -> Option<Decimal> {
    RATES
        .iter()
        .filter(|(from, code, _)| *from <= on && *code == currency.code())
        .max_by_key(|(from, ..)| *from)
        .and_then(|(_, _, rate)| rate.parse().ok())
}

/// The verdict for a free-form message Meta Business Agent produced (its
/// usage id is the message's wamid), from [`BILLED_FROM`]: billed by the
/// agent's tokens, and "never both MBA and service on one message" (Meta's
/// non-template page), so the message itself is free and counts toward no
/// service allowance. Meta's webhook values for such a message are not
/// published yet; wameter says `service` / `free_customer_service`.
pub(crate) fn agent_message(era: super::Verdict, delivery: &super::Delivery) -> super::Verdict {
    super::Verdict {
        rule: "meta-business-agent",
        reason: delivery.reason(|| "free-form message produced by Meta Business Agent: billed by the agent's tokens (its `agent_usage`), never also as a service message".into()),
        category: crate::category::PricingCategory::Service,
        pricing_type: crate::category::PricingType::FreeCustomerService,
        billable: false,
        conversation: None,
        settlement: crate::charge::Settlement::Free,
        ..era
    }
}

/// Prices usages (module docs): one per (business, id), the earliest copy.
pub fn price(usages: Vec<TimedUsage>, accounts: &Accounts) -> AgentReport {
    let mut report = AgentReport::default();
    let mut kept: HashMap<(Box<str>, Box<str>), TimedUsage> = HashMap::with_capacity(usages.len());
    for usage in usages {
        let key = (usage.usage.business.clone(), usage.usage.id.clone());
        match kept.get_mut(&key) {
            None => {
                kept.insert(key, usage);
            }
            Some(seen) => {
                report.duplicates += 1;
                let earlier = (usage.at, usage.origin) < (seen.at, seen.origin);
                if usage.usage != seen.usage || usage.at != seen.at {
                    let (first, second) = if earlier {
                        (&usage, &*seen)
                    } else {
                        (&*seen, &usage)
                    };
                    report.warnings.push(Warning {
                        code: "conflicting_agent_usage",
                        message: format!(
                            "agent usage {} of business {} is logged twice with different details ({} tokens at {} vs {} at {}); the earliest copy is priced",
                            first.usage.id, first.usage.business, first.usage.tokens, first.at, second.usage.tokens, second.at
                        ),
                        origin: Some(second.origin),
                    });
                }
                if earlier {
                    *seen = usage;
                }
            }
        }
    }
    let mut usages: Vec<TimedUsage> = kept.into_values().collect();
    usages.sort_by(|a, b| {
        (a.at, &a.usage.business, &a.usage.id).cmp(&(b.at, &b.usage.business, &b.usage.id))
    });
    for TimedUsage { at, origin, usage } in usages {
        let messaging_account =
            accounts.messaging_account(&usage.business, usage.messaging_account.as_deref());
        let business = accounts.payer(&usage.business, messaging_account.as_deref());
        if let Some(sentence) = usage
            .messaging_account
            .as_deref()
            .and_then(|named| accounts.unknown_messaging_account(&usage.business, named))
        {
            report.warnings.push(Warning {
                code: "note",
                message: format!("{}: {sentence}", usage.id),
                origin: Some(origin),
            });
        }
        let local_date = business.timezone.to_datetime(at).date();
        let mut charge = AgentCharge {
            usage_id: usage.id.clone(),
            business: business.phone_number_id.clone(),
            messaging_account,
            user: usage.user.clone(),
            at,
            local_date,
            tokens: usage.tokens,
            billable: false,
            currency: business.currency,
            rate_per_million: None,
            amount: Decimal::ZERO,
            ruleset: RULESET,
            rule: "",
            reason: String::new(),
            origin,
        };
        if local_date < BILLED_FROM {
            charge.rule = "before-agent-billing";
            charge.reason = format!(
                "{} Meta Business Agent tokens used on {local_date}: Meta billed them from {BILLED_FROM}",
                usage.tokens
            );
        } else {
            let Some(rate) = rate(business.currency, local_date) else {
                report.errors.push(PricingError {
                    message_id: Arc::from(&*usage.id),
                    origin,
                    message: format!(
                        "{} Meta Business Agent tokens billed in {}: Meta publishes the agent's rate in USD only (2.00 per million tokens); no rate in {} is known",
                        usage.tokens, business.currency, business.currency
                    ),
                });
                continue;
            };
            charge.billable = true;
            charge.rate_per_million = Some(rate);
            charge.amount = Decimal::from(usage.tokens) * rate / Decimal::from(1_000_000);
            charge.rule = "agent-tokens";
            charge.reason = format!(
                "{} Meta Business Agent tokens at {} {} per million: billed whatever the windows (never free, not even in a free entry point)",
                usage.tokens,
                crate::money::format_amount(rate),
                business.currency
            );
        }
        report.charges.push(charge);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Business, RuleOptions};

    fn usage(id: &str, at: &str, tokens: u64, business: &str) -> TimedUsage {
        TimedUsage {
            at: at.parse().unwrap(),
            origin: Origin::default(),
            usage: AgentUsage {
                business: business.into(),
                user: UserId::parse("+5511999990000").unwrap(),
                id: id.into(),
                tokens,
                messaging_account: None,
            },
        }
    }

    /// platform-2026 §0.7: USD 2.00 per million tokens from 2026-08-01.
    #[test]
    fn tokens_are_billed_from_august_2026_in_usd() {
        let mut inr = Business::with_defaults("inr");
        inr.currency = Currency::parse("INR").unwrap();
        let accounts = Accounts::new(vec![inr], RuleOptions::default());
        let report = price(
            vec![
                usage("a", "2026-07-31T12:00:00Z", 20_000, "B"),
                usage("b", "2026-08-01T00:00:00Z", 21_500, "B"),
                usage("b", "2026-08-01T00:00:00Z", 21_500, "B"),
                usage("c", "2026-08-02T00:00:00Z", 1_000, "inr"),
            ],
            &accounts,
        );
        let lines: Vec<(&str, bool, String)> = report
            .charges
            .iter()
            .map(|c| (&*c.usage_id, c.billable, c.amount.normalize().to_string()))
            .collect();
        assert_eq!(
            lines,
            [
                ("a", false, "0".to_string()),
                ("b", true, "0.043".to_string())
            ]
        );
        assert_eq!(report.duplicates, 1);
        assert!(
            report.errors[0].message.contains("USD only"),
            "{:?}",
            report.errors
        );
    }
}
