//! Tenancy: API tokens from configuration, each seeing a set of WABAs or
//! all of them. A token never sees another WABA's windows, charges, events
//! or reports; webhook bodies (which may hold any WABA) need an all-WABA
//! token.

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// What a token may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every WABA.
    All,
    /// These WABA ids only.
    Wabas(BTreeSet<String>),
}

impl Scope {
    /// Whether it sees some of a number's Messaging accounts (then it sees
    /// the number's windows, and the charges of those accounts).
    pub fn sees_business(&self, pricing: &crate::Pricing, business: &str) -> bool {
        let number = pricing.accounts.get_or_default(business);
        self.sees(&number.waba)
            || number
                .messaging_accounts
                .iter()
                .any(|account| self.sees(&account.id))
    }

    /// Whether it sees a charge of `business` billed through
    /// `messaging_account` (the number's first account when `None`): a
    /// number shared by several accounts shows each its own money only.
    pub fn sees_charge(
        &self,
        pricing: &crate::Pricing,
        business: &str,
        messaging_account: Option<&str>,
    ) -> bool {
        *self == Scope::All || self.sees(&pricing.account_of(business, messaging_account))
    }

    /// Whether the WABA is visible.
    pub fn sees(&self, waba: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Wabas(wabas) => wabas.contains(waba),
        }
    }
}

/// One configured token.
#[derive(Clone, Debug)]
pub struct ApiToken {
    /// A name for logs (never the token itself).
    pub name: String,
    /// The secret.
    pub token: String,
    /// What it sees.
    pub scope: Scope,
}

/// Finds the token of a request, comparing every configured token in
/// constant time so the response time says nothing about a near miss.
pub fn authenticate<'a>(tokens: &'a [ApiToken], headers: &HeaderMap) -> Option<&'a ApiToken> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
    let (scheme, credentials) = given.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    token_of(tokens, credentials.trim())
}

/// The token whose secret is `given`, compared in constant time with
/// every configured one.
pub fn token_of<'a>(tokens: &'a [ApiToken], given: &str) -> Option<&'a ApiToken> {
    let given = given.as_bytes();
    let mut found = None;
    for token in tokens {
        if bool::from(token.token.as_bytes().ct_eq(given)) && found.is_none() {
            found = Some(token);
        }
    }
    found
}

/// The dashboard's session cookie: the API token the user signed in with.
pub const SESSION_COOKIE: &str = "wameter_token";

/// The token of a dashboard request: the `Authorization` header, else the
/// session cookie.
pub fn session<'a>(tokens: &'a [ApiToken], headers: &HeaderMap) -> Option<&'a ApiToken> {
    authenticate(tokens, headers).or_else(|| {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|cookies| cookies.split(';'))
            .filter_map(|cookie| cookie.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .and_then(|(_, value)| token_of(tokens, &percent_decode(value)))
    })
}

/// Cookie values are percent-encoded when set (a token may hold `;`).
pub fn percent_decode(value: &str) -> String {
    form_urlencoded::parse(format!("t={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Takes out of a webhook's events those whose entry names a WABA
/// (`entry[].id`) that the accounts file does not give their phone number
/// (`metadata.phone_number_id`), and says why, one sentence per (entry
/// WABA, phone number). Such an event is another tenant's number under
/// this WABA's entry — a misconfigured accounts file or a forged body — and
/// stored as either tenant's it could shadow or be priced as the other's.
/// It stays in the stored body (the webhook is still acknowledged, so Meta
/// does not redeliver it for 36 hours) and is never metered; once the
/// accounts file is fixed, posting the body to `POST /v1/events` stores
/// its events. A number the accounts file does not list is not checked:
/// nothing says whose it is, and only all-WABA tokens see it.
pub fn keep_apart(pricing: &crate::Pricing, items: &mut wameter_meta::WebhookItems) -> Vec<String> {
    let mut apart: std::collections::BTreeMap<(String, String), (String, usize)> =
        std::collections::BTreeMap::new();
    let events = std::mem::take(&mut items.events);
    let mut kept = Vec::with_capacity(events.len());
    let mut kept_wabas = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let waba = items.wabas.get(index).cloned().flatten();
        let configured = event
            .kind
            .business()
            .and_then(|business| pricing.accounts.get(business));
        // Any of the number's Messaging accounts receives its webhooks.
        if let (Some(claimed), Some(business)) = (waba.as_deref(), configured)
            && !business.has_messaging_account(claimed)
        {
            let count = apart
                .entry((claimed.to_string(), business.phone_number_id.to_string()))
                .or_insert((business.waba.to_string(), 0));
            count.1 += 1;
            continue;
        }
        kept.push(event);
        kept_wabas.push(waba);
    }
    items.events = kept;
    items.wabas = kept_wabas;
    apart
        .into_iter()
        .map(|((claimed, business), (configured, count))| {
            crate::telemetry::events_kept_apart("entry_waba_mismatch", count);
            format!(
                "entry WABA {claimed} names phone number {business}, which the accounts file puts in WABA {configured}: its {count} event(s) are kept in this body only, not metered"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn finds_the_right_token_and_nothing_else() {
        let tokens = vec![
            ApiToken {
                name: "all".into(),
                token: "t-all".into(),
                scope: Scope::All,
            },
            ApiToken {
                name: "acme".into(),
                token: "t-acme".into(),
                scope: Scope::Wabas(["111".to_string()].into()),
            },
        ];
        assert_eq!(
            authenticate(&tokens, &headers("Bearer t-acme")).map(|t| t.name.as_str()),
            Some("acme")
        );
        assert_eq!(
            authenticate(&tokens, &headers("Bearer t-all")).map(|t| t.name.as_str()),
            Some("all")
        );
        assert!(authenticate(&tokens, &headers("Bearer t-ac")).is_none());
        assert!(authenticate(&tokens, &headers("t-all")).is_none());
        assert_eq!(
            authenticate(&tokens, &headers("BEARER t-acme")).map(|t| t.name.as_str()),
            Some("acme")
        );
        assert!(authenticate(&tokens, &headers("Basic t-acme")).is_none());
        assert!(authenticate(&tokens, &HeaderMap::new()).is_none());
        assert!(tokens[1].scope.sees("111") && !tokens[1].scope.sees("222"));
    }
}
