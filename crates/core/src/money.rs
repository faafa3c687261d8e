//! Exact money: a [`Decimal`] amount in an ISO 4217 [`Currency`].
//!
//! Amounts are never floats. Rates are kept with the precision Meta prints them
//! with; sums are exact; output is a plain decimal string without exponent.

use std::fmt;

use rust_decimal::Decimal;

/// An ISO 4217 currency code such as `USD`, `EUR`, `INR`.
///
/// Stored inline (three ASCII upper-case letters) so that it is `Copy` and
/// costs nothing to compare on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollar, the default billing currency (interfaces §2).
    pub const USD: Currency = Currency(*b"USD");

    /// The currencies Meta bills WhatsApp in (its pricing page, 2026: USD,
    /// AED, ARS, AUD, CLP, COP, EUR, GBP, IDR, INR, MXN, MYR, PEN, SAR, SGD,
    /// and BRL from 2026-07-01).
    pub const META_BILLING: [&'static str; 16] = [
        "AED", "ARS", "AUD", "BRL", "CLP", "COP", "EUR", "GBP", "IDR", "INR", "MXN", "MYR", "PEN",
        "SAR", "SGD", "USD",
    ];

    /// Whether Meta bills in this currency ([`Currency::META_BILLING`]).
    pub fn is_meta_billing(self) -> bool {
        Self::META_BILLING.contains(&self.code())
    }

    /// Parses an ISO code (`"usd"`, `"EUR"`) or one of Meta's rate-card tokens
    /// (`$US`, `A$`, `£`, `GBD`, `₹`, `RP`, `€`, `R$`).
    ///
    /// ```
    /// use wameter_core::money::Currency;
    /// assert_eq!(Currency::parse("$US").unwrap().code(), "USD");
    /// assert_eq!(Currency::parse("₹").unwrap().code(), "INR");
    /// assert!(Currency::parse("dollars").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Currency> {
        let text = text.trim();
        // Meta's rate cards print these tokens instead of ISO codes; `GBD` is a
        // typo seen in one of Meta's own files (see data/ratecards/PROVENANCE.md).
        let code = match text {
            "$US" | "US$" | "$" => "USD",
            "A$" | "AU$" => "AUD",
            "£" | "GBD" => "GBP",
            "₹" | "Rs" => "INR",
            "RP" | "Rp" => "IDR",
            "€" => "EUR",
            "R$" => "BRL",
            other => other,
        };
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let upper = [
            bytes[0].to_ascii_uppercase(),
            bytes[1].to_ascii_uppercase(),
            bytes[2].to_ascii_uppercase(),
        ];
        Some(Currency(upper))
    }

    /// Digits of the currency's minor unit (cents: 2), as Meta's
    /// `bid_amount` counts it (USD 0.05 per message → 5000 per 1,000).
    pub fn minor_digits(&self) -> u32 {
        // ISO 4217's currencies without minor units, among those Meta bills
        // in or may: Chilean peso, yen, won, dong.
        match self.code() {
            "CLP" | "JPY" | "KRW" | "VND" => 0,
            _ => 2,
        }
    }

    /// The three-letter ISO 4217 code.
    pub fn code(&self) -> &str {
        // The constructor only admits ASCII letters.
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

/// Formats an amount as Meta-style plain decimal: no exponent, no trailing
/// zeros beyond what is needed (`0.0625`, `0`, `270.25`).
pub fn format_amount(amount: Decimal) -> String {
    amount.normalize().to_string()
}

/// Removes thousands separators (`1,940.13`, `2 000 000`) from a number, but
/// only when they group digits by three from the left: `1,5` (a decimal
/// comma) is left alone, so it stays invalid instead of becoming 15.
pub fn strip_thousands_separators(text: &str) -> std::borrow::Cow<'_, str> {
    const SEPARATORS: [char; 3] = [',', ' ', '\u{a0}'];
    let integer = text.split('.').next().unwrap_or(text);
    let groups: Vec<&str> = integer.trim_start_matches('-').split(SEPARATORS).collect();
    let grouped = groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
    if grouped {
        text.replace(SEPARATORS, "").into()
    } else {
        text.into()
    }
}

/// Parses a rate or amount exactly. Accepts thousands separators (`1,940.13`,
/// as in Meta's large-currency tier files); rejects exponents, decimal commas
/// and anything else that is not a plain decimal.
pub fn parse_amount(text: &str) -> Option<Decimal> {
    let cleaned = strip_thousands_separators(text.trim());
    if cleaned.is_empty()
        || !cleaned
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return None;
    }
    cleaned.parse::<Decimal>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_tokens_map_to_iso_codes() {
        for (token, code) in [
            ("$US", "USD"),
            ("A$", "AUD"),
            ("£", "GBP"),
            ("GBD", "GBP"),
            ("₹", "INR"),
            ("RP", "IDR"),
            ("eur", "EUR"),
            ("BRL", "BRL"),
        ] {
            assert_eq!(
                Currency::parse(token).map(|c| c.to_string()),
                Some(code.to_string())
            );
        }
        assert_eq!(Currency::parse("US Dollar"), None);
        assert_eq!(Currency::parse("U1D"), None);
    }

    #[test]
    fn amounts_are_exact_and_printed_plainly() {
        assert_eq!(
            parse_amount("0.0340").map(format_amount).as_deref(),
            Some("0.034")
        );
        assert_eq!(
            parse_amount("1,940.13").map(format_amount).as_deref(),
            Some("1940.13")
        );
        assert_eq!(parse_amount("1e-3"), None);
        assert_eq!(parse_amount("1,5"), None);
        assert_eq!(parse_amount("12,34.5"), None);
        assert_eq!(
            parse_amount("2 000 000").map(format_amount).as_deref(),
            Some("2000000")
        );
        assert_eq!(parse_amount("n/a"), None);
        assert_eq!(parse_amount(""), None);
        let sum: Decimal = ["0.1", "0.2"]
            .iter()
            .map(|s| parse_amount(s).unwrap())
            .sum();
        assert_eq!(format_amount(sum), "0.3");
        assert_eq!(format_amount(Decimal::ZERO), "0");
    }
}
