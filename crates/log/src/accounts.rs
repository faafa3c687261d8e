//! The accounts file (interfaces §2): businesses, their time zones,
//! currencies and portfolios, plus engine options (`[rules]`), and the
//! clients and budgets of re-billing and the guard (`[[client]]`,
//! `[[budget]]`; see [`parse_accounts_file`]).
//!
//! Unknown keys are errors: a misspelt `timezone` would otherwise silently
//! bill in UTC.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde::Deserialize;
use wameter_core::account::{Accounts, Business, MessagingAccount, RuleOptions};
use wameter_core::billing::{Billing, Budget, BudgetScope, Client, DEFAULT_THRESHOLDS, Markup};
use wameter_core::category::PricingCategory;
use wameter_core::money::{Currency, parse_amount};

/// A problem in the accounts file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AccountsError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    #[serde(default)]
    business: Vec<RawBusiness>,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    client: Vec<RawClient>,
    #[serde(default)]
    budget: Vec<RawBudget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    wabas: Vec<String>,
    #[serde(default)]
    markup: Vec<RawMarkup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarkup {
    #[serde(default)]
    categories: Vec<String>,
    percent: Option<RawAmount>,
    fee: Option<RawAmount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    name: String,
    waba: Option<String>,
    client: Option<String>,
    amount: RawAmount,
    currency: Option<String>,
    thresholds: Option<Vec<u32>>,
    #[serde(default)]
    hard_stop: bool,
}

/// An amount as written: a string (`"0.0025"`) or an integer. TOML floats
/// are binary and would not stay exact, so they are refused.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawAmount {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl RawAmount {
    fn exact(&self) -> Result<Decimal, String> {
        match self {
            RawAmount::Text(text) => {
                parse_amount(text).ok_or_else(|| format!("`{text}` is not a plain decimal amount"))
            }
            RawAmount::Integer(value) => Ok(Decimal::from(*value)),
            RawAmount::Float(value) => Err(format!(
                "write {value} as a string (\"{value}\") so it stays exact"
            )),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    utility_free_in_csw: bool,
    #[serde(default)]
    free_entry_point_7_days: bool,
    #[serde(default)]
    failed_calls_free: bool,
    #[serde(default)]
    call_bands_count_seconds: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBusiness {
    phone_number_id: String,
    waba: Option<String>,
    portfolio: Option<String>,
    timezone: Option<String>,
    currency: Option<String>,
    primary_country: Option<String>,
    auth_international_from: Option<String>,
    #[serde(default)]
    messaging_accounts: Vec<RawMessagingAccount>,
}

/// `[[business.messaging_accounts]]`: another Messaging account billing
/// through the number (Meta's account model of 2026).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessagingAccount {
    id: String,
    currency: Option<String>,
    timezone: Option<String>,
}

/// Parses an accounts file's businesses and rules. `name` labels errors.
pub fn parse_accounts(name: &str, text: &str) -> Result<Accounts, AccountsError> {
    parse_accounts_file(name, text).map(|(accounts, _)| accounts)
}

/// Parses a whole accounts file: businesses and rules, then clients and
/// budgets (which the engine does not need, so they are apart).
///
/// ```toml
/// [[client]]
/// name = "acme"
/// wabas = ["419561257915477"]
/// [[client.markup]]          # first rule matching a category wins
/// categories = ["marketing"] # omit for every category
/// percent = "20"             # of Meta's amount
/// fee = "0.01"               # per billable message
///
/// [[budget]]
/// name = "acme-monthly"
/// client = "acme"            # or waba = "…"
/// amount = "250.00"          # per business-local month, business currency
/// thresholds = [50, 80, 100] # percent; alert once each per month
/// hard_stop = true           # refuse billable sends that would exceed it
/// ```
pub fn parse_accounts_file(name: &str, text: &str) -> Result<(Accounts, Billing), AccountsError> {
    let raw: RawAccounts =
        toml::from_str(text).map_err(|e| AccountsError(format!("{name}: {e}")))?;
    let accounts = businesses(name, raw.business, raw.rules)?;
    let clients = clients(name, raw.client)?;
    let budgets = budgets(name, raw.budget, &accounts, &clients)?;
    Ok((accounts, Billing { clients, budgets }))
}

fn clients(name: &str, raw: Vec<RawClient>) -> Result<Vec<Client>, AccountsError> {
    let mut out: Vec<Client> = Vec::new();
    for (index, raw) in raw.into_iter().enumerate() {
        let fail = |field: &str, message: String| {
            AccountsError(format!(
                "{name}: [[client]] #{} ({}): field `{field}`: {message}",
                index + 1,
                raw.name
            ))
        };
        if raw.name.trim().is_empty() {
            return Err(fail("name", "empty".into()));
        }
        if out.iter().any(|c| *c.name == *raw.name) {
            return Err(fail("name", "listed twice".into()));
        }
        if raw.wabas.is_empty() {
            return Err(fail("wabas", "a client needs at least one WABA".into()));
        }
        for waba in &raw.wabas {
            if let Some(other) = out.iter().find(|c| c.wabas.iter().any(|w| **w == **waba)) {
                return Err(fail(
                    "wabas",
                    format!("WABA {waba} already belongs to client {}", other.name),
                ));
            }
        }
        let mut markups = Vec::new();
        for (rule, markup) in raw.markup.iter().enumerate() {
            let field = |f: &str| format!("markup[{rule}].{f}");
            let mut categories = Vec::new();
            for category in &markup.categories {
                let parsed = PricingCategory::parse(category)
                    .ok_or_else(|| fail(&field("categories"), format!("`{category}` is not a pricing category (marketing, utility, authentication, authentication_international, service…)")))?;
                categories.push(parsed);
            }
            let amount = |value: &Option<RawAmount>, f: &str| -> Result<Decimal, AccountsError> {
                let value = value
                    .as_ref()
                    .map(RawAmount::exact)
                    .transpose()
                    .map_err(|m| fail(&field(f), m))?
                    .unwrap_or_default();
                if value.is_sign_negative() {
                    return Err(fail(&field(f), format!("{value} is negative")));
                }
                Ok(value)
            };
            let (percent, fee) = (
                amount(&markup.percent, "percent")?,
                amount(&markup.fee, "fee")?,
            );
            if markup.percent.is_none() && markup.fee.is_none() {
                return Err(fail(
                    &format!("markup[{rule}]"),
                    "give `percent`, `fee` or both".into(),
                ));
            }
            markups.push(Markup {
                categories,
                percent,
                fee,
            });
        }
        out.push(Client {
            name: raw.name.as_str().into(),
            wabas: raw.wabas.iter().map(|w| Arc::from(w.as_str())).collect(),
            markups,
        });
    }
    Ok(out)
}

fn budgets(
    name: &str,
    raw: Vec<RawBudget>,
    accounts: &Accounts,
    clients: &[Client],
) -> Result<Vec<Budget>, AccountsError> {
    let mut out: Vec<Budget> = Vec::new();
    for (index, raw) in raw.into_iter().enumerate() {
        let fail = |field: &str, message: String| {
            AccountsError(format!(
                "{name}: [[budget]] #{} ({}): field `{field}`: {message}",
                index + 1,
                raw.name
            ))
        };
        if raw.name.trim().is_empty() {
            return Err(fail("name", "empty".into()));
        }
        if out.iter().any(|b| *b.name == *raw.name) {
            return Err(fail("name", "listed twice".into()));
        }
        let (scope, wabas) = match (&raw.waba, &raw.client) {
            (Some(waba), None) => (
                BudgetScope::Waba(waba.as_str().into()),
                vec![Arc::from(waba.as_str())],
            ),
            (None, Some(client)) => {
                let found = clients
                    .iter()
                    .find(|c| *c.name == **client)
                    .ok_or_else(|| fail("client", format!("no [[client]] named `{client}`")))?;
                (BudgetScope::Client(found.name.clone()), found.wabas.clone())
            }
            _ => {
                return Err(fail(
                    "waba",
                    "give exactly one of `waba` and `client`".into(),
                ));
            }
        };
        let amount = raw.amount.exact().map_err(|m| fail("amount", m))?;
        if amount <= Decimal::ZERO {
            return Err(fail("amount", format!("{amount} is not above zero")));
        }
        // The budget is in the businesses' currency and months: every
        // business of its WABAs must agree on both (unlisted WABAs bill in
        // USD and UTC, the defaults).
        // Its WABAs are Messaging accounts: a number's first (`waba`) or
        // one of its `messaging_accounts`, each with its currency and zone.
        let mut found: Vec<(Currency, TimeZone)> = Vec::new();
        for business in accounts.businesses() {
            if wabas.iter().any(|w| *w == business.waba) {
                found.push((business.currency, business.timezone.clone()));
            }
            for account in business
                .messaging_accounts
                .iter()
                .filter(|a| wabas.contains(&a.id))
            {
                found.push((account.currency, account.timezone.clone()));
            }
        }
        if found.is_empty() {
            found.push((Currency::USD, TimeZone::UTC));
        }
        let (currency, timezone) = found[0].clone();
        if let Some((other_currency, other_zone)) =
            found.iter().find(|(c, z)| *c != currency || *z != timezone)
        {
            return Err(fail(
                "waba",
                format!(
                    "its businesses bill in {} ({}) and {} ({}); a budget needs one currency and time zone",
                    currency.code(),
                    timezone.iana_name().unwrap_or("UTC"),
                    other_currency.code(),
                    other_zone.iana_name().unwrap_or("UTC")
                ),
            ));
        }
        if let Some(code) = raw
            .currency
            .as_ref()
            .filter(|code| Currency::parse(code) != Some(currency))
        {
            return Err(fail(
                "currency",
                format!("`{code}`: the businesses bill in {}", currency.code()),
            ));
        }
        let mut thresholds = raw
            .thresholds
            .clone()
            .unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec());
        if let Some(bad) = thresholds.iter().find(|t| **t == 0 || **t > 1000) {
            return Err(fail(
                "thresholds",
                format!("{bad}: a threshold is a percentage from 1 to 1000"),
            ));
        }
        thresholds.sort_unstable();
        thresholds.dedup();
        out.push(Budget {
            name: raw.name.as_str().into(),
            scope,
            wabas,
            amount,
            currency,
            timezone,
            thresholds,
            hard_stop: raw.hard_stop,
        });
    }
    Ok(out)
}

fn businesses(
    name: &str,
    raw: Vec<RawBusiness>,
    rules: RawRules,
) -> Result<Accounts, AccountsError> {
    let mut businesses = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, raw) in raw.into_iter().enumerate() {
        let id = raw.phone_number_id.trim().to_string();
        let fail = |field: &str, message: String| {
            AccountsError(format!(
                "{name}: [[business]] #{} ({id}): field `{field}`: {message}",
                index + 1
            ))
        };
        if id.is_empty() {
            return Err(fail("phone_number_id", "empty".into()));
        }
        if !seen.insert(id.clone()) {
            return Err(fail("phone_number_id", "listed twice".into()));
        }
        let mut business = Business::with_defaults(&id);
        if let Some(waba) = raw.waba {
            business.waba = Arc::from(waba.as_str());
            business.portfolio = business.waba.clone();
        }
        if let Some(portfolio) = raw.portfolio {
            business.portfolio = Arc::from(portfolio.as_str());
        }
        let zone = |zone: &str, field: &str| {
            TimeZone::get(zone)
                .map_err(|e| fail(field, format!("`{zone}` is not an IANA time zone ({e})")))
        };
        let currency = |code: &str, field: &str| {
            Currency::parse(code)
                .filter(|currency| currency.is_meta_billing())
                .ok_or_else(|| {
                    fail(
                        field,
                        format!(
                            "`{code}` is not a currency Meta bills in (one of {})",
                            Currency::META_BILLING.join(", ")
                        ),
                    )
                })
        };
        if let Some(name) = &raw.timezone {
            business.timezone = zone(name, "timezone")?;
        }
        if let Some(code) = &raw.currency {
            business.currency = currency(code, "currency")?;
        }
        for (n, account) in raw.messaging_accounts.iter().enumerate() {
            let field = |f: &str| format!("messaging_accounts[{n}].{f}");
            let account_id = account.id.trim();
            if account_id.is_empty() {
                return Err(fail(&field("id"), "empty".into()));
            }
            if business.has_messaging_account(account_id) {
                return Err(fail(
                    &field("id"),
                    format!(
                        "`{account_id}` is already one of this number's Messaging accounts (the first is `waba`)"
                    ),
                ));
            }
            business.messaging_accounts.push(MessagingAccount {
                id: Arc::from(account_id),
                // Unsaid, the number's own: one currency and zone for all.
                currency: account
                    .currency
                    .as_deref()
                    .map(|code| currency(code, &field("currency")))
                    .transpose()?
                    .unwrap_or(business.currency),
                timezone: account
                    .timezone
                    .as_deref()
                    .map(|name| zone(name, &field("timezone")))
                    .transpose()?
                    .unwrap_or_else(|| business.timezone.clone()),
            });
        }
        if let Some(country) = raw.primary_country {
            let valid = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
            if !valid {
                return Err(fail(
                    "primary_country",
                    format!("`{country}` is not an ISO 3166 alpha-2 code such as BR"),
                ));
            }
            business.primary_country = Some(Arc::from(country.as_str()));
        }
        if let Some(from) = raw.auth_international_from {
            business.auth_international_from = Some(
                from.parse::<Timestamp>()
                    .map_err(|e| fail("auth_international_from", format!("`{from}`: {e}")))?,
            );
        }
        businesses.push(business);
    }
    // Counters and tiers are per portfolio: a Messaging account billing
    // numbers of two portfolios would split them.
    let mut portfolio_of: std::collections::HashMap<&str, (&str, &str)> =
        std::collections::HashMap::new();
    for business in &businesses {
        for account in &business.messaging_accounts {
            match portfolio_of.insert(
                &account.id,
                (&business.portfolio, &business.phone_number_id),
            ) {
                Some((portfolio, number)) if *portfolio != *business.portfolio => {
                    return Err(AccountsError(format!(
                        "{name}: Messaging account {} bills number {number} of portfolio {portfolio} and number {} of portfolio {}: one account belongs to one portfolio",
                        account.id, business.phone_number_id, business.portfolio
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(Accounts::new(
        businesses,
        RuleOptions {
            utility_free_in_csw: rules.utility_free_in_csw,
            free_entry_point_7_days: rules.free_entry_point_7_days,
            failed_calls_free: rules.failed_calls_free,
            call_bands_count_seconds: rules.call_bands_count_seconds,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example_and_defaults() {
        let text = r#"
[[business]]
phone_number_id = "106540352242922"
waba = "419561257915477"
portfolio = "acme"
timezone = "America/Sao_Paulo"
currency = "BRL"
primary_country = "BR"
auth_international_from = "2025-03-01T00:00:00Z"

[[business]]
phone_number_id = "2"
waba = "w2"
"#;
        let accounts = parse_accounts("accounts.toml", text).unwrap();
        let first = accounts.get("106540352242922").unwrap();
        assert_eq!(first.timezone_name(), "America/Sao_Paulo");
        assert_eq!(first.currency.code(), "BRL");
        assert_eq!(&*first.portfolio, "acme");
        let second = accounts.get("2").unwrap();
        assert_eq!(&*second.portfolio, "w2", "portfolio defaults to the WABA");
        let unknown = accounts.get_or_default("3");
        assert_eq!(
            (
                &*unknown.waba,
                unknown.currency.code(),
                unknown.timezone_name()
            ),
            ("3", "USD", "UTC")
        );
        assert!(!accounts.options.utility_free_in_csw);
    }

    #[test]
    fn errors_name_the_business_and_field() {
        let bad_zone = "[[business]]\nphone_number_id = \"1\"\ntimezone = \"Mars/Olympus\"\n";
        let error = parse_accounts("a.toml", bad_zone).unwrap_err().to_string();
        assert!(error.contains("(1): field `timezone`"), "{error}");
        let typo = "[[business]]\nphone_number_id = \"1\"\ntimezon = \"UTC\"\n";
        let error = parse_accounts("a.toml", typo).unwrap_err().to_string();
        assert!(error.contains("timezon"), "{error}");
        let twice =
            "[[business]]\nphone_number_id = \"1\"\n[[business]]\nphone_number_id = \"1\"\n";
        assert!(
            parse_accounts("a.toml", twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let rules = "[rules]\nutility_free_in_csw = true\n";
        assert!(
            parse_accounts("a.toml", rules)
                .unwrap()
                .options
                .utility_free_in_csw
        );
    }

    const CLIENTS: &str = r#"
[[business]]
phone_number_id = "1"
waba = "w1"
timezone = "America/Sao_Paulo"
[[business]]
phone_number_id = "2"
waba = "w2"
timezone = "America/Sao_Paulo"

[[client]]
name = "acme"
wabas = ["w1", "w2"]
[[client.markup]]
categories = ["marketing"]
percent = "20"
fee = "0.01"
[[client.markup]]
percent = 10

[[budget]]
name = "acme-monthly"
client = "acme"
amount = "25.50"
hard_stop = true

[[budget]]
name = "w1-only"
waba = "w1"
amount = 5
thresholds = [100, 50]
"#;

    #[test]
    fn reads_clients_and_budgets() {
        let (accounts, billing) = parse_accounts_file("a.toml", CLIENTS).unwrap();
        assert_eq!(accounts.businesses().count(), 2);
        let acme = billing.client("acme").unwrap();
        assert_eq!(acme.markups.len(), 2);
        assert_eq!(acme.markups[1].percent, Decimal::from(10));
        assert_eq!(billing.client_of_waba("w2").map(|c| &*c.name), Some("acme"));
        let monthly = &billing.budgets[0];
        assert_eq!(
            (
                monthly.wabas.len(),
                monthly.amount.to_string().as_str(),
                monthly.hard_stop
            ),
            (2, "25.50", true)
        );
        assert_eq!(monthly.thresholds, vec![50, 80, 100]);
        assert_eq!(billing.budgets[1].thresholds, vec![50, 100], "sorted");
        assert_eq!(billing.budgets_of_waba("w1").count(), 2);
        assert_eq!(billing.budgets_of_waba("w2").count(), 1);
    }

    #[test]
    fn billing_errors_name_the_entry_and_field() {
        let error = |text: &str| parse_accounts_file("a.toml", text).unwrap_err().to_string();
        let float = CLIENTS.replace("amount = \"25.50\"", "amount = 25.5");
        assert!(
            error(&float)
                .contains("[[budget]] #1 (acme-monthly): field `amount`: write 25.5 as a string"),
            "{}",
            error(&float)
        );
        let unknown = CLIENTS.replace("client = \"acme\"", "client = \"acme-corp\"");
        assert!(error(&unknown).contains("no [[client]] named `acme-corp`"));
        let category = CLIENTS.replace("[\"marketing\"]", "[\"promo\"]");
        assert!(
            error(&category).contains("field `markup[0].categories`: `promo`"),
            "{}",
            error(&category)
        );
        let zones = CLIENTS.replacen("timezone = \"America/Sao_Paulo\"", "timezone = \"UTC\"", 1);
        assert!(
            error(&zones).contains("one currency and time zone"),
            "{}",
            error(&zones)
        );
        let both = CLIENTS.replace("client = \"acme\"", "client = \"acme\"\nwaba = \"w1\"");
        assert!(error(&both).contains("exactly one of `waba` and `client`"));
        let currency = CLIENTS.replace("hard_stop = true", "hard_stop = true\ncurrency = \"EUR\"");
        assert!(error(&currency).contains("the businesses bill in USD"));
    }

    #[test]
    fn reads_messaging_accounts_and_refuses_what_would_split_a_counter() {
        let text = r#"
[[business]]
phone_number_id = "1"
waba = "W"
portfolio = "P"
timezone = "America/Sao_Paulo"
currency = "BRL"
[[business.messaging_accounts]]
id = "M"
currency = "USD"
timezone = "UTC"
[[business.messaging_accounts]]
id = "N"

[[budget]]
name = "partner"
waba = "M"
amount = "10"
"#;
        let (accounts, billing) = parse_accounts_file("a.toml", text).unwrap();
        let number = accounts.get("1").unwrap();
        assert_eq!(number.messaging_accounts.len(), 2);
        // Unsaid currency and zone are the number's.
        assert_eq!(
            (
                number.messaging_accounts[1].currency.code(),
                number.messaging_accounts[1].timezone.iana_name()
            ),
            ("BRL", Some("America/Sao_Paulo"))
        );
        let payer = accounts.payer("1", accounts.messaging_account("1", Some("M")).as_deref());
        assert_eq!(
            (
                &*payer.waba,
                payer.currency.code(),
                &*payer.portfolio,
                payer.timezone_name()
            ),
            ("M", "USD", "P", "UTC")
        );
        // A budget on a Messaging account is in its currency and months.
        assert_eq!(billing.budgets[0].currency.code(), "USD");

        let error = |text: &str| parse_accounts("a.toml", text).unwrap_err().to_string();
        assert!(
            error(&text.replace("id = \"N\"", "id = \"W\"")).contains("messaging_accounts[1].id")
        );
        assert!(
            error(&text.replace("currency = \"USD\"", "currency = \"XYZ\""))
                .contains("messaging_accounts[0].currency")
        );
        let split = format!(
            "{text}\n[[business]]\nphone_number_id = \"2\"\nportfolio = \"Q\"\n[[business.messaging_accounts]]\nid = \"M\"\n"
        );
        assert!(
            error(&split).contains("one account belongs to one portfolio"),
            "{}",
            error(&split)
        );
    }
}
