//! The rate cards shipped inside the binary.
//!
//! The files in `data/ratecards/` are transcriptions of Meta's cards found in
//! public sources, kept byte for byte; `include_str!` embeds them at build
//! time. This module is their manifest: id, currency, dates, pricing model,
//! and the columns a source is known to lack or to have overwritten (those
//! load as "no rate", so pricing fails loudly instead of charging 0).

use std::collections::BTreeMap;

use jiff::civil::{Date, date};

use super::{MarketRates, RateCard, RateFileError, Severity, canonical_market_name, parse_rate_cell};
use crate::category::PricingModel;
use crate::money::Currency;

/// How one of the shipped transcriptions is laid out and what it lacks.
pub(super) struct BuiltinCard {
    id: &'static str,
    file: &'static str,
    text: &'static str,
    currency: &'static str,
    effective: Date,
    until: Option<Date>,
    model: PricingModel,
    /// Columns whose values must not be trusted, with the reason.
    blank_columns: &'static [(&'static str, &'static str)],
    source: &'static str,
}

macro_rules! card_file {
    ($file:literal) => {
        ($file, include_str!(concat!("../../../../data/ratecards/", $file)))
    };
}

/// The cards shipped in `data/ratecards/`, with what `PROVENANCE.md` says of
/// them. `until` is the next Meta rate change that affects the card's
/// currency when the next card is not available: pricing past it would be a
/// guess.
pub(super) fn builtin_cards() -> Vec<BuiltinCard> {
    let cards = [
        (card_file!("saysimple-com-page_effective-2022-02-01_EUR_CBP-BI-UI.csv"), "eur-2022-02-01", "EUR",
            date(2022, 2, 1), Some(date(2023, 6, 1)), PricingModel::Cbp, &[][..],
            "saysimple.com page (Meta EUR list card, business-/user-initiated); typos `Rusia`, `Rest of Lain America` corrected on load"),
        (card_file!("mobidonia-whataprice-calculator_effective-2024-10-01-inferred_USD_CBP.csv"), "usd-2024-10-01", "USD",
            date(2024, 10, 1), Some(date(2025, 2, 1)), PricingModel::Cbp,
            &[("service", "the source overwrote the service column with 0 (service conversations became free on 2024-11-01); Meta's card had service rates")][..],
            "mobidonia/whataprice-calculator src/data/whatsappPricing.ts @ f851b89 (effective date inferred: 2024-10-01; superseded by the 2025-02-01 authentication changes)"),
        (card_file!("unknown-repo-idx21180047369_effective-2025-10-01_INR.csv"), "inr-2025-10-01", "INR",
            date(2025, 10, 1), Some(date(2026, 1, 1)), PricingModel::Pmp, &[][..],
            "public code, repository not identified (reference id 21180047369): Meta's INR card effective October 1, 2025"),
        (card_file!("unknown-repo-idx53635240303_effective-2026-01-01_USD.csv"), "usd-2026-01-01", "USD",
            date(2026, 1, 1), Some(date(2026, 4, 1)), PricingModel::Pmp,
            &[("service", "service column not captured by the source (Meta printed n/a until 2026-10)")][..],
            "public code, repository not identified (reference id 53635240303): Meta's USD card effective January 1, 2026"),
        (card_file!("unknown-repo-idx69014075277_effective-2026-07-01_EUR.csv"), "eur-2026-07-01", "EUR",
            date(2026, 7, 1), Some(date(2026, 10, 1)), PricingModel::Pmp,
            &[("service", "service column stored as NULL by the source (Meta printed n/a until 2026-10)")][..],
            "public code, repository not identified (reference id 69014075277): Meta's EUR card effective July 1, 2026"),
        (card_file!("unknown-repo-idx70856709963_effective-2026-10-01_USD.csv"), "usd-2026-10-01", "USD",
            date(2026, 10, 1), None, PricingModel::Pmp,
            &[("authentication_international", "authentication-international column dropped by the source")][..],
            "public code, repository not identified (reference id 70856709963): Meta's USD card effective October 1, 2026, downloaded 2026-10-09"),
    ];
    cards
        .into_iter()
        .map(|((file, text), id, currency, effective, until, model, blank_columns, source)| BuiltinCard {
            id, file, text, currency, effective, until, model, blank_columns, source,
        })
        .collect()
}

pub(super) fn parse_normalised(card: &BuiltinCard) -> Result<RateCard, RateFileError> {
    let error = |row: u64, column: Option<&str>, message: String| RateFileError {
        source_name: card.file.to_string(),
        row,
        column: column.map(str::to_string),
        message,
        severity: Severity::Error,
    };
    let currency = Currency::parse(card.currency).expect("builtin currencies are ISO codes");
    let mut reader = csv::ReaderBuilder::new().from_reader(card.text.as_bytes());
    let headers: Vec<String> = reader.headers().map_err(|e| error(1, None, e.to_string()))?.iter().map(str::to_string).collect();
    let mut markets = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| error(0, None, e.to_string()))?;
        let row = record.position().map(|p| p.line()).unwrap_or(0);
        let mut rates = MarketRates::default();
        for (header, cell) in headers.iter().zip(record.iter()).skip(1) {
            if header == "currency" {
                let token = Currency::parse(cell).ok_or_else(|| error(row, Some(header), format!("unknown currency `{cell}`")))?;
                if token != currency {
                    return Err(error(row, Some(header), format!("{token} on a {currency} card")));
                }
                continue;
            }
            // `business_initiated_rate_eur` → `business_initiated`.
            let column = header.trim_end_matches(&format!("_rate_{}", card.currency.to_ascii_lowercase())).to_string();
            if card.blank_columns.iter().any(|(blank, _)| *blank == column) {
                continue;
            }
            let slot = match column.as_str() {
                "marketing" => &mut rates.marketing,
                "utility" => &mut rates.utility,
                "authentication" => &mut rates.authentication,
                "authentication_international" => &mut rates.authentication_international,
                "service" => &mut rates.service,
                "business_initiated" => &mut rates.business_initiated,
                "user_initiated" => &mut rates.user_initiated,
                other => return Err(error(row, Some(header), format!("unknown column `{other}`"))),
            };
            *slot = parse_rate_cell(cell).map_err(|m| error(row, Some(header), m))?;
        }
        markets.insert(canonical_market_name(&record[0]).to_string(), rates);
    }
    Ok(RateCard {
        id: card.id.to_string(),
        source: card.source.to_string(),
        currency,
        effective: card.effective,
        until: card.until,
        model: card.model,
        gaps: card.blank_columns.iter().map(|(column, why)| format!("{column}: {why}")).collect(),
        markets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::PricingCategory;
    use crate::ratecard::RateBook;

    /// Each shipped card holds exactly the numbers of its file: every cell is
    /// read back with a plain split (the files have no quoting) and compared
    /// as text, so `0.0340` must stay `0.0340`, blanks and `n/a` must stay
    /// "no rate", and a column marked untrustworthy must be empty.
    fn card_reproduces_its_file(id: &str) {
        let book = RateBook::builtin();
        let manifest = builtin_cards();
        let entry = manifest.iter().find(|c| c.id == id).expect("in the manifest");
        let card = book.cards().iter().find(|c| c.id == entry.id).expect("card loaded");
        let mut lines = entry.text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let mut rows = 0;
        for line in lines.filter(|l| !l.is_empty()) {
            rows += 1;
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{}: {line}", entry.file);
            let market = canonical_market_name(cells[0]);
            let rates = &card.markets[market];
            for (column, cell) in header.iter().zip(&cells).skip(1) {
                if *column == "currency" {
                    continue;
                }
                let name = column.trim_end_matches("_rate_eur");
                let category = PricingCategory::parse(name).unwrap_or_else(|| panic!("{}: column {column}", entry.file));
                let loaded = rates.get(category).map(|r| r.to_string());
                let blanked = entry.blank_columns.iter().any(|(c, _)| *c == name);
                let expected = match *cell {
                    _ if blanked => None,
                    "" | "n/a" | "null" => None,
                    number => Some(number.to_string()),
                };
                assert_eq!(loaded, expected, "{} {market} {name}", entry.file);
            }
        }
        assert!(rows >= 32, "{}: {rows} rows", entry.file);
        assert_eq!(rows, card.markets.len(), "{}: one market per row", entry.file);
        assert_eq!(card.currency.code(), entry.currency);
        assert_eq!((card.effective, card.until, card.model), (entry.effective, entry.until, entry.model));
    }

    macro_rules! card_tests {
        ($($test:ident => $id:literal),* $(,)?) => {
            $(#[test] fn $test() { card_reproduces_its_file($id); })*

            #[test]
            fn every_manifest_card_has_a_test() {
                let tested = [$($id),*];
                for card in builtin_cards() {
                    assert!(tested.contains(&card.id), "no test for {}", card.id);
                }
            }
        };
    }

    card_tests! {
        eur_2022_02_01_reproduces_its_file => "eur-2022-02-01",
        usd_2024_10_01_reproduces_its_file => "usd-2024-10-01",
        inr_2025_10_01_reproduces_its_file => "inr-2025-10-01",
        usd_2026_01_01_reproduces_its_file => "usd-2026-01-01",
        eur_2026_07_01_reproduces_its_file => "eur-2026-07-01",
        usd_2026_10_01_reproduces_its_file => "usd-2026-10-01",
    }
}
