//! Meta's "Rates (CSV)" layout, read leniently so that every problem in a
//! file can be reported at once.
//!
//! The layout (docs/rules.md §12.1, `data/ratecards/PROVENANCE.md`):
//!
//! ```text
//! Cost per message in USD on the WhatsApp Business Platform, effective July 1, 2026,,,,,,
//! Note: …,,,,,,
//! Market,Currency,Marketing,Utility,Authentication,"Authentication-
//! International",Service
//! Argentina,$US,0.0618,0.0260,0.0260,n/a,n/a
//! ```
//!
//! Zero or more preamble rows, a title naming the currency and the effective
//! date, a header whose authentication-international cell holds a quoted
//! newline, then one row per market. Older cards use a
//! `Business-initiated,User-initiated` pair instead of four categories.

use std::collections::BTreeMap;

use jiff::civil::date;

use super::{
    Checked, MarketRates, Problems, RateCard, canonical_market_name, currency_in,
    effective_date_in, joined_line, normalise_header, parse_rate_cell,
};
use crate::category::PricingModel;
use crate::market::MarketTable;
use crate::money::Currency;

/// Which rate a header names, after [`normalise_header`].
fn rate_column(header: &str) -> Option<fn(&mut MarketRates) -> &mut Option<rust_decimal::Decimal>> {
    Some(match header {
        "marketing" => |r| &mut r.marketing,
        "utility" => |r| &mut r.utility,
        "authentication" => |r| &mut r.authentication,
        "authentication international" | "auth international" => {
            |r| &mut r.authentication_international
        }
        "service" => |r| &mut r.service,
        "business initiated" => |r| &mut r.business_initiated,
        "user initiated" => |r| &mut r.user_initiated,
        _ => return None,
    })
}

/// The header row starts with `Market` (`Market (per rate card)` in newer
/// files).
fn is_header(first_cell: &str) -> bool {
    let first = normalise_header(first_cell);
    first == "market" || first.starts_with("market (")
}

impl RateCard {
    /// Parses a card in Meta's published CSV layout; the first error fails.
    ///
    /// `name` labels errors. The pricing model is taken from the title
    /// ("Cost per conversation" = CBP, "Cost per message" = PMP), else from
    /// the effective date (PMP from 2025-07-01). Use [`RateCard::check_meta_csv`]
    /// to see every problem and the warnings.
    pub fn parse_meta_csv(name: &str, text: &str) -> Result<RateCard, super::RateFileError> {
        RateCard::check_meta_csv(name, text)
            .into_result()
            .map(|(card, _warnings)| card)
    }

    /// Reads a card in Meta's CSV layout and reports every problem: CSV
    /// syntax, missing title or date, unknown currency tokens, unparsable or
    /// negative rates, duplicate markets (errors); markets that are not
    /// Meta's on the card's date, and Meta markets the card lacks
    /// (warnings: the card loads, and a message to such a market fails to
    /// price instead of being guessed).
    pub fn check_meta_csv(name: &str, text: &str) -> Checked<RateCard> {
        let mut problems = Problems::new(name);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut title: Option<(String, u64)> = None;
        let mut columns: Option<Vec<String>> = None;
        let mut markets: BTreeMap<String, MarketRates> = BTreeMap::new();
        let mut rows: Vec<(String, u64)> = Vec::new();
        let mut currency_cells: Option<Currency> = None;
        for record in reader.records() {
            let Some((row, record)) = problems.record(record) else {
                continue;
            };
            let cells: Vec<&str> = record.iter().collect();
            if cells.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let Some(header) = &columns else {
                if is_header(cells[0]) {
                    let names: Vec<String> = cells.iter().map(|c| normalise_header(c)).collect();
                    for (index, column) in names.iter().enumerate().skip(1) {
                        if column != "currency"
                            && !column.is_empty()
                            && rate_column(column).is_none()
                        {
                            problems.warning(
                                row,
                                Some(cells[index]),
                                format!(
                                    "unknown column `{}` ignored",
                                    cells[index].replace('\n', "\\n")
                                ),
                            );
                        }
                    }
                    if !names.iter().any(|c| rate_column(c).is_some()) {
                        problems.error(row, None, "the header names no rate column (Marketing, Utility, … or Business-initiated, User-initiated)".into());
                    }
                    columns = Some(names);
                } else if title.is_none() {
                    let line = joined_line(&cells);
                    if line.to_ascii_lowercase().contains("effective") {
                        title = Some((line, row));
                    }
                }
                continue;
            };
            let raw_market = cells[0].trim();
            if raw_market.is_empty() {
                problems.error(row, Some("Market"), "empty market name".into());
                continue;
            }
            let market = canonical_market_name(raw_market);
            if market != raw_market {
                problems.warning(
                    row,
                    Some("Market"),
                    format!("market `{raw_market}` read as Meta's `{market}`"),
                );
            }
            let mut rates = MarketRates::default();
            for (index, header_name) in header.iter().enumerate().skip(1) {
                let cell = cells.get(index).copied().unwrap_or("");
                if header_name == "currency" {
                    match Currency::parse(cell) {
                        None => problems.error(row, Some("Currency"), format!(
                            "unknown currency token `{cell}` (an ISO code, or one of Meta's `$US`, `A$`, `£`, `₹`, `RP`, `€`, `R$`)"
                        )),
                        Some(currency) => match currency_cells {
                            Some(seen) if seen != currency => problems.error(
                                row,
                                Some("Currency"),
                                format!("currency {currency} differs from {seen} in earlier rows"),
                            ),
                            _ => currency_cells = Some(currency),
                        },
                    }
                    continue;
                }
                let Some(slot) = rate_column(header_name) else {
                    continue;
                };
                match parse_rate_cell(cell) {
                    Ok(rate) => *slot(&mut rates) = rate,
                    Err(message) => problems.error(row, Some(header_name), message),
                }
            }
            if cells.len() < header.len() {
                problems.warning(
                    row,
                    None,
                    format!(
                        "{} cells where the header has {}; the missing ones read as n/a",
                        cells.len(),
                        header.len()
                    ),
                );
            }
            if let Some(extra) = cells
                .iter()
                .skip(header.len())
                .find(|cell| !cell.trim().is_empty())
            {
                problems.warning(row, None, format!(
                    "{} cells where the header has {}: `{}` and any after it are under no column and ignored",
                    cells.len(),
                    header.len(),
                    extra.trim()
                ));
            }
            if markets.contains_key(market) {
                let first = rows
                    .iter()
                    .find(|(m, _)| m == market)
                    .map(|(_, r)| *r)
                    .unwrap_or(0);
                problems.error(
                    row,
                    Some("Market"),
                    format!("market `{market}` appears twice (first on row {first})"),
                );
                continue;
            }
            markets.insert(market.to_string(), rates);
            rows.push((market.to_string(), row));
        }
        if columns.is_none() {
            problems.error(
                0,
                None,
                "no header row starting with `Market` was found".into(),
            );
            return problems.finish(None);
        }
        if markets.is_empty() {
            problems.error(0, None, "the card has no market rows".into());
        }
        let Some((title, title_row)) = title else {
            // wameter's own transcriptions (data/ratecards/) have a snake_case
            // header and no title: their date and currency are in the
            // built-in manifest. Say so rather than only "no title".
            let normalised = columns
                .as_ref()
                .is_some_and(|names| names.first().is_some_and(|n| n == "market"))
                && text
                    .lines()
                    .next()
                    .is_some_and(|first| first.starts_with("market,"));
            let message = if normalised {
                "no title row with `effective <Month D, YYYY>` was found: this looks like one of wameter's normalised transcriptions (one snake_case header row, as in data/ratecards/), whose date and currency live in the built-in manifest, not in the file; `wameter rates list` shows the built-in cards, and `rates check`/`import` take Meta's own \"Rates (CSV)\" with its title row".to_string()
            } else {
                "no title row with `effective <Month D, YYYY>` was found".to_string()
            };
            problems.error(1, None, message);
            return problems.finish(None);
        };
        let Some(effective) = effective_date_in(&title) else {
            problems.error(title_row, None, format!("cannot read the effective date in `{title}` (expected `effective <Month D, YYYY>`)"));
            return problems.finish(None);
        };
        let Some(currency) = currency_in(&title).or(currency_cells) else {
            problems.error(
                title_row,
                None,
                "no currency: neither the title nor a Currency column names one".into(),
            );
            return problems.finish(None);
        };
        if let (Some(titled), Some(cells)) = (currency_in(&title), currency_cells)
            && titled != cells
        {
            problems.error(
                title_row,
                None,
                format!("the title says {titled} but the Currency column says {cells}"),
            );
        }
        let lower_title = title.to_ascii_lowercase();
        let model = if lower_title.contains("per conversation") {
            PricingModel::Cbp
        } else if lower_title.contains("per message") || effective >= date(2025, 7, 1) {
            PricingModel::Pmp
        } else {
            PricingModel::Cbp
        };

        // Market names must be Meta's on the card's date, and every market of
        // that date should have a row.
        let known = MarketTable::builtin().markets_on(effective);
        for (market, row) in &rows {
            if !known.contains(market.as_str()) {
                problems.warning(*row, Some("Market"), format!("`{market}` is not one of Meta's markets on {effective}; its row will never be used"));
            }
        }
        let missing: Vec<&str> = known
            .iter()
            .map(|m| &**m)
            .filter(|m| !markets.contains_key(*m))
            .collect();
        if !missing.is_empty() {
            problems.warning(0, Some("Market"), format!(
                "no row for {} of Meta's {} markets on {effective} ({}); messages to them cannot be priced with this card",
                missing.len(),
                known.len(),
                missing.join(", ")
            ));
        }
        let card = RateCard::new(
            name.to_string(),
            format!("{name} (Meta CSV layout)"),
            currency,
            effective,
            model,
            markets,
        );
        problems.finish(Some(card))
    }
}
