//! The accounts file (interfaces §2): businesses, their time zones,
//! currencies and portfolios, plus engine options (`[rules]`).
//!
//! Unknown keys are errors: a misspelt `timezone` would otherwise silently
//! bill in UTC.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use wameter_core::account::{Accounts, Business, RuleOptions};
use wameter_core::money::Currency;

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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    utility_free_in_csw: bool,
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
}

/// Parses an accounts file. `name` labels errors.
pub fn parse_accounts(name: &str, text: &str) -> Result<Accounts, AccountsError> {
    let raw: RawAccounts = toml::from_str(text).map_err(|e| AccountsError(format!("{name}: {e}")))?;
    let mut businesses = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, raw) in raw.business.into_iter().enumerate() {
        let id = raw.phone_number_id.trim().to_string();
        let fail = |field: &str, message: String| {
            AccountsError(format!("{name}: [[business]] #{} ({id}): field `{field}`: {message}", index + 1))
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
        if let Some(zone) = raw.timezone {
            business.timezone = TimeZone::get(&zone).map_err(|e| fail("timezone", format!("`{zone}` is not an IANA time zone ({e})")))?;
        }
        if let Some(code) = raw.currency {
            business.currency = Currency::parse(&code).ok_or_else(|| fail("currency", format!("`{code}` is not a currency code")))?;
        }
        if let Some(country) = raw.primary_country {
            let valid = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
            if !valid {
                return Err(fail("primary_country", format!("`{country}` is not an ISO 3166 alpha-2 code such as BR")));
            }
            business.primary_country = Some(Arc::from(country.as_str()));
        }
        if let Some(from) = raw.auth_international_from {
            business.auth_international_from = Some(
                from.parse::<Timestamp>().map_err(|e| fail("auth_international_from", format!("`{from}`: {e}")))?,
            );
        }
        businesses.push(business);
    }
    Ok(Accounts::new(businesses, RuleOptions { utility_free_in_csw: raw.rules.utility_free_in_csw }))
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
        assert_eq!((&*unknown.waba, unknown.currency.code(), unknown.timezone_name()), ("3", "USD", "UTC"));
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
        let twice = "[[business]]\nphone_number_id = \"1\"\n[[business]]\nphone_number_id = \"1\"\n";
        assert!(parse_accounts("a.toml", twice).unwrap_err().to_string().contains("twice"));
        let rules = "[rules]\nutility_free_in_csw = true\n";
        assert!(parse_accounts("a.toml", rules).unwrap().options.utility_free_in_csw);
    }
}
