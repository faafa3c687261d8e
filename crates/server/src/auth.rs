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
    let given = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let given = given.strip_prefix("Bearer ").or_else(|| given.strip_prefix("bearer "))?.trim().as_bytes();
    let mut found = None;
    for token in tokens {
        if bool::from(token.token.as_bytes().ct_eq(given)) && found.is_none() {
            found = Some(token);
        }
    }
    found
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
            ApiToken { name: "all".into(), token: "t-all".into(), scope: Scope::All },
            ApiToken { name: "acme".into(), token: "t-acme".into(), scope: Scope::Wabas(["111".to_string()].into()) },
        ];
        assert_eq!(authenticate(&tokens, &headers("Bearer t-acme")).map(|t| t.name.as_str()), Some("acme"));
        assert_eq!(authenticate(&tokens, &headers("Bearer t-all")).map(|t| t.name.as_str()), Some("all"));
        assert!(authenticate(&tokens, &headers("Bearer t-ac")).is_none());
        assert!(authenticate(&tokens, &headers("t-all")).is_none());
        assert!(authenticate(&tokens, &HeaderMap::new()).is_none());
        assert!(tokens[1].scope.sees("111") && !tokens[1].scope.sees("222"));
    }
}
