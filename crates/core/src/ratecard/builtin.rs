//! The rate cards and the volume-tier table shipped inside the binary.
//!
//! The files in `data/ratecards/` are transcriptions of Meta's cards found in
//! public sources, kept byte for byte (`PROVENANCE.md` says where each comes
//! from); `include_str!` embeds them at build time. This module is their
//! manifest: id, currency, dates, pricing model, layout, status, and the
//! cells a source is known to lack or to have overwritten (those load as
//! "no rate", so pricing fails loudly instead of charging 0).
//!
//! Each card has a status ([`CardStatus`]): *verbatim* (Meta's card as its
//! source printed it), *derived* (computed from a neighbouring card and
//! Meta's changelog; the steps are listed) or *partial* (some of its date's
//! markets are missing: messages to them are an error naming the card).

use std::collections::BTreeMap;

use jiff::civil::{Date, date};

use super::{
    CardStatus, Gap, MarketRates, RateCard, RateFileError, Severity, TierBand, TierBook,
    canonical_market_name, parse_rate_cell,
};
use crate::category::PricingModel;
use crate::market::MarketTable;
use crate::money::Currency;

/// How a shipped file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// One header row, snake_case columns (`market,currency,marketing,…`).
    Normalised,
    /// Meta's own "Rates (CSV)", title row and notes included.
    Meta,
}

/// How one of the shipped transcriptions is laid out and what it lacks.
pub(super) struct BuiltinCard {
    pub(super) id: &'static str,
    pub(super) file: &'static str,
    pub(super) text: &'static str,
    layout: Layout,
    pub(super) currency: &'static str,
    pub(super) effective: Date,
    pub(super) until: Option<Date>,
    pub(super) model: PricingModel,
    /// Columns whose values must not be trusted, with the reason.
    pub(super) blank_columns: &'static [(&'static str, &'static str)],
    /// Single cells whose values must not be trusted: (market, column, why).
    pub(super) blank_cells: &'static [(&'static str, &'static str, &'static str)],
    /// The derivation, step by step (empty: verbatim).
    derivation: &'static [&'static str],
    /// Whether some of the date's markets are missing (computed on load
    /// from Meta's market list of the card's date).
    partial: bool,
    source: &'static str,
}

macro_rules! card_file {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../../data/ratecards/", $file)),
        )
    };
}

/// Meta's "Volume tiers (CSV)" shipped as the default tier table, byte for
/// byte: the April 1, 2026 USD table.
pub(super) const TIERS_FILE: (&str, &str) = card_file!(
    "meta-raw_alihasnainh3techs-daily-pricing-scraper-5bce6c1_effective-2026-04-01_USD_volume-tiers.csv"
);

/// What `rates list` says of the built-in tier table.
pub const TIERS_SOURCE: &str = "Meta's \"Volume tiers (CSV)\", USD, effective April 1, 2026, byte for byte as alihasnainh3techs/daily-pricing-scraper saved it from Meta's pricing page (public/USD_volume_tiers.csv @ 5bce6c1)";

const NO_DERIVATION: &[&str] = &[];

/// The cards shipped in `data/ratecards/`, with what `PROVENANCE.md` says of
/// them. `until` is the next Meta rate change that affects the card's
/// currency when the next card is not available: pricing past it would be a
/// guess.
pub(super) fn builtin_cards() -> Vec<BuiltinCard> {
    use Layout::{Meta, Normalised};
    let none: &[(&str, &str)] = &[];
    let no_cells: &[(&str, &str, &str)] = &[];
    let cards = [
        (
            card_file!("saysimple-com-page_effective-2022-02-01_EUR_CBP-BI-UI.csv"),
            "eur-2022-02-01",
            Normalised,
            "EUR",
            date(2022, 2, 1),
            Some(date(2023, 6, 1)),
            PricingModel::Cbp,
            none,
            &[(
                "Rest of Central & Eastern Europe",
                "business_initiated",
                "the source prints €0.0602, the Rest of Middle East value repeated by mistake: against the USD 2022 card (0.0835) it gives a EUR/USD ratio of 0.721 where every other cell gives 0.825-0.833 (≈ €0.0692); the exact value is unknown",
            )][..],
            NO_DERIVATION,
            false,
            "saysimple.com page (Meta EUR list card, business-/user-initiated); typos `Rusia`, `Rest of Lain America` corrected on load",
        ),
        (
            card_file!("chatalog-page-div1.2_effective-2022-02-01_USD_CBP-BI-UI.csv"),
            "usd-2022-02-01",
            Normalised,
            "USD",
            date(2022, 2, 1),
            Some(date(2023, 6, 1)),
            PricingModel::Cbp,
            none,
            no_cells,
            &[
                "chatalog.ai's USD business-/user-initiated table (\"effective until 31st May, 2023\") shows Meta's rates × 1.20 (a BSP markup); every value was divided by 1.2 exactly, and all 58 come out as exact 4-decimal numbers, as Meta prints them",
            ][..],
            true,
            "chatalog.ai/en/pricing-whatsapp-conversation-fees (USD ÷ 1.2); the stored page is cut after Rest of Latin America",
        ),
        (
            card_file!("popcast-page-div1.2-partial_effective-2023-06-01_USD_CBP.csv"),
            "usd-2023-06-01",
            Normalised,
            "USD",
            date(2023, 6, 1),
            Some(date(2024, 6, 1)),
            PricingModel::Cbp,
            none,
            no_cells,
            &[
                "10 markets: docs.popcast.ai's table (\"effective from 1st June, 2023\", Meta × 1.2) divided by 1.2; Indonesia so derived equals Meta's verbatim row",
                "Malaysia and Other: verbatim rows of Meta's \"Cost per conversation in USD, effective June 1, 2023\" CSV quoted in public code (reference id 17998240068)",
            ][..],
            true,
            "docs.popcast.ai WhatsApp conversation fees (÷ 1.2) and Meta's June 2023 CSV rows; until 2024-06-01, Meta's next change (Indonesia authentication-international)",
        ),
        (
            card_file!("mobidonia-whataprice-calculator_effective-2024-10-01-inferred_USD_CBP.csv"),
            "usd-2024-10-01",
            Normalised,
            "USD",
            date(2024, 10, 1),
            Some(date(2025, 2, 1)),
            PricingModel::Cbp,
            &[(
                "service",
                "the source overwrote the service column with 0 (service conversations became free on 2024-11-01); Meta's card had service rates",
            )][..],
            no_cells,
            NO_DERIVATION,
            false,
            "mobidonia/whataprice-calculator src/data/whatsappPricing.ts @ f851b89 (effective date inferred: 2024-10-01; superseded by the 2025-02-01 authentication changes)",
        ),
        (
            card_file!("derived-from-2025-10-card_effective-2025-07-01_USD.csv"),
            "usd-2025-07-01",
            Normalised,
            "USD",
            date(2025, 7, 1),
            Some(date(2025, 10, 1)),
            PricingModel::Pmp,
            none,
            &[
                (
                    "Saudi Arabia",
                    "utility",
                    "not found in any source: only known to be above 0.0107 (Meta lowered it on 2025-10-01)",
                ),
                (
                    "Saudi Arabia",
                    "authentication",
                    "not found in any source: only known to be above 0.0107 (Meta lowered it on 2025-10-01)",
                ),
            ][..],
            &[
                "the 2025-10-01 USD card with Meta's 2025-10-01 changes reversed (data/ratecards/CHANGELOG.md):",
                "Argentina utility and authentication 0.0289 (sent.dm's July 2025 table; reference id 30005247748)",
                "Colombia utility and authentication 0.0002, Egypt 0.0052 (reference id 30005247748; authentication equal to utility, as every PMP card prints them)",
                "Mexico marketing 0.0436 (reference id 30005247748; also the 2024-10 value)",
                "United Arab Emirates marketing 0.0384 (three independent copies labelled July 1, 2025)",
                "Saudi Arabia utility and authentication unknown (no rate: its messages fail to price)",
                "every other cell as on the 2025-10-01 card (Meta's changelog lists no other change)",
            ][..],
            false,
            "derived for wameter from the 2025-10-01 USD card (PROVENANCE.md batch 2, \"Derivations\")",
        ),
        (
            card_file!("xplorebyte-website-nextjs-v1.1_effective-2025-10-01_USD.csv"),
            "usd-2025-10-01",
            Normalised,
            "USD",
            date(2025, 10, 1),
            Some(date(2026, 1, 1)),
            PricingModel::Pmp,
            &[(
                "service",
                "service column not captured by the source (Meta printed n/a until 2026-10)",
            )][..],
            no_cells,
            NO_DERIVATION,
            false,
            "xplorebytesolutions/xplorebyte-website-nextjs-v1.1 src/app/pricing-outside-india/page.tsx @ 23c51d7 (Meta's USD card effective October 1, 2025)",
        ),
        (
            card_file!("unknown-repo-idx21180047369_effective-2025-10-01_INR.csv"),
            "inr-2025-10-01",
            Normalised,
            "INR",
            date(2025, 10, 1),
            Some(date(2026, 1, 1)),
            PricingModel::Pmp,
            none,
            no_cells,
            NO_DERIVATION,
            false,
            "xplorebytesolutions/xplorebyte-website-nextjs-v1.1 src/app/international-pricing/page.tsx @ 23c51d7 (reference id 21180047369): Meta's INR card effective October 1, 2025",
        ),
        (
            card_file!("unknown-repo-idx53635240303_effective-2026-01-01_USD.csv"),
            "usd-2026-01-01",
            Normalised,
            "USD",
            date(2026, 1, 1),
            Some(date(2026, 4, 1)),
            PricingModel::Pmp,
            &[(
                "service",
                "service column not captured by the source (Meta printed n/a until 2026-10)",
            )][..],
            no_cells,
            NO_DERIVATION,
            false,
            "public code, repository not identified (reference id 53635240303): Meta's USD card effective January 1, 2026",
        ),
        (
            card_file!(
                "meta-raw_alihasnainh3techs-daily-pricing-scraper-5bce6c1_effective-2026-04-01_USD.csv"
            ),
            "usd-2026-04-01",
            Meta,
            "USD",
            date(2026, 4, 1),
            Some(date(2026, 7, 1)),
            PricingModel::Pmp,
            none,
            no_cells,
            NO_DERIVATION,
            false,
            "Meta's \"Rates (CSV)\", USD, effective April 1, 2026, byte for byte as alihasnainh3techs/daily-pricing-scraper saved it from Meta's pricing page (public/USD_rates.csv @ 5bce6c1)",
        ),
        (
            card_file!("derived-from-2026-04-card_effective-2026-07-01_USD.csv"),
            "usd-2026-07-01",
            Normalised,
            "USD",
            date(2026, 7, 1),
            Some(date(2026, 10, 1)),
            PricingModel::Pmp,
            none,
            no_cells,
            &[
                "Meta's 2026-04-01 USD card with Meta's 2026-07-01 changes (data/ratecards/CHANGELOG.md):",
                "Italy marketing 0.0795, Spain 0.0707, United Kingdom 0.0635 (verbatim quotes of Meta's July 2026 USD CSV in three unrelated sources)",
                "Hong Kong 0.0732/0.0260, Hungary 0.0860/0.0350, Poland 0.0366/0.0122, Qatar 0.0341/0.0120, Romania 0.0860/0.0290, Singapore 0.0732/0.0160 become standalone markets (marketing/utility = authentication; Qatar verbatim, the others as on the 2026-10-01 card, which lists no change for them; the EUR July 2026 card ÷ 0.8285 reproduces every one to 0.0001)",
                "every other cell as on the 2026-04-01 card; 24 markets checked against verbatim quotes of Meta's July 2026 USD CSV",
            ][..],
            false,
            "derived for wameter from Meta's 2026-04-01 USD card (PROVENANCE.md batch 2, \"Derivations\")",
        ),
        (
            card_file!("unknown-repo-idx69014075277_effective-2026-07-01_EUR.csv"),
            "eur-2026-07-01",
            Normalised,
            "EUR",
            date(2026, 7, 1),
            Some(date(2026, 10, 1)),
            PricingModel::Pmp,
            &[(
                "service",
                "service column stored as NULL by the source (Meta printed n/a until 2026-10)",
            )][..],
            no_cells,
            NO_DERIVATION,
            false,
            "public code, repository not identified (reference id 69014075277): Meta's EUR card effective July 1, 2026",
        ),
        (
            card_file!("unknown-repo-idx70856709963_effective-2026-10-01_USD.csv"),
            "usd-2026-10-01",
            Normalised,
            "USD",
            date(2026, 10, 1),
            None,
            PricingModel::Pmp,
            &[(
                "authentication_international",
                "authentication-international column dropped by the source",
            )][..],
            no_cells,
            NO_DERIVATION,
            false,
            "public code, repository not identified (reference id 70856709963): Meta's USD card effective October 1, 2026, downloaded 2026-10-09",
        ),
    ];
    cards
        .into_iter()
        .map(
            |(
                (file, text),
                id,
                layout,
                currency,
                effective,
                until,
                model,
                blank_columns,
                blank_cells,
                derivation,
                partial,
                source,
            )| BuiltinCard {
                id,
                file,
                text,
                layout,
                currency,
                effective,
                until,
                model,
                blank_columns,
                blank_cells,
                derivation,
                partial,
                source,
            },
        )
        .collect()
}

/// Reads one shipped card and applies its manifest entry.
pub(super) fn parse_builtin(card: &BuiltinCard) -> Result<RateCard, RateFileError> {
    let mut loaded = match card.layout {
        Layout::Normalised => parse_normalised(card)?,
        Layout::Meta => RateCard::parse_meta_csv(card.file, card.text)?,
    };
    loaded.id = card.id.to_string();
    loaded.source = card.source.to_string();
    loaded.until = card.until;
    loaded.gaps = card
        .blank_columns
        .iter()
        .map(|(column, why)| Gap {
            market: None,
            column: column.to_string(),
            why: why.to_string(),
        })
        .chain(card.blank_cells.iter().map(|(market, column, why)| Gap {
            market: Some(market.to_string()),
            column: column.to_string(),
            why: why.to_string(),
        }))
        .collect();
    for gap in &loaded.gaps {
        let Some(market) = &gap.market else { continue };
        if let Some(rates) = loaded.markets.get_mut(market) {
            rates.clear(&gap.column);
        }
    }
    loaded.derivation = card
        .derivation
        .iter()
        .map(|step| step.to_string())
        .collect();
    if card.partial {
        // A market the card has no rate at all for is one it lacks.
        let known = MarketTable::builtin().markets_on(card.effective);
        loaded.missing_markets = known
            .iter()
            .map(|m| m.to_string())
            .filter(|m| loaded.markets.get(m).is_none_or(MarketRates::is_empty))
            .collect();
    }
    debug_assert_eq!(loaded.status() == CardStatus::Partial, card.partial);
    Ok(loaded)
}

/// The built-in volume-tier bands: Meta's April 2026 USD table.
pub(super) fn builtin_tiers() -> Vec<TierBand> {
    TierBook::parse_meta_csv(TIERS_FILE.0, TIERS_FILE.1)
        .expect("the built-in tier table parses (tested)")
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
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| error(1, None, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut markets = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| error(0, None, e.to_string()))?;
        let row = record.position().map(|p| p.line()).unwrap_or(0);
        let mut rates = MarketRates::default();
        for (header, cell) in headers.iter().zip(record.iter()).skip(1) {
            if header == "currency" {
                // Some transcriptions leave the currency cell empty on the
                // rows they derived.
                if cell.is_empty() {
                    continue;
                }
                let token = Currency::parse(cell).ok_or_else(|| {
                    error(row, Some(header), format!("unknown currency `{cell}`"))
                })?;
                if token != currency {
                    return Err(error(
                        row,
                        Some(header),
                        format!("{token} on a {currency} card"),
                    ));
                }
                continue;
            }
            // `business_initiated_rate_eur` → `business_initiated`.
            let column = header
                .trim_end_matches(&format!("_rate_{}", card.currency.to_ascii_lowercase()))
                .to_string();
            if card.blank_columns.iter().any(|(blank, _)| *blank == column) {
                continue;
            }
            let slot = rates
                .slot(&column)
                .ok_or_else(|| error(row, Some(header), format!("unknown column `{column}`")))?;
            *slot = parse_rate_cell(cell).map_err(|m| error(row, Some(header), m))?;
        }
        markets.insert(canonical_market_name(&record[0]).to_string(), rates);
    }
    let mut loaded = RateCard::new(
        card.id.to_string(),
        card.source.to_string(),
        currency,
        card.effective,
        card.model,
        markets,
    );
    loaded.until = card.until;
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::PricingCategory;
    use crate::ratecard::RateBook;

    /// Each shipped card holds exactly the numbers of its file: every cell is
    /// read back with a plain split (the files have no quoting) and compared
    /// as text, so `0.0340` must stay `0.0340`, blanks and `n/a` must stay
    /// "no rate", and a column or cell marked untrustworthy must be empty.
    /// A card shipped in Meta's own layout is compared with its normalised
    /// twin (the same numbers, one header row), so the Meta reader is
    /// checked against the numbers Meta printed.
    fn card_reproduces_its_file(id: &str) {
        let book = RateBook::builtin();
        let manifest = builtin_cards();
        let entry = manifest
            .iter()
            .find(|c| c.id == id)
            .expect("in the manifest");
        let card = book
            .cards()
            .iter()
            .find(|c| c.id == entry.id)
            .expect("card loaded");
        let text = match entry.layout {
            Layout::Normalised => entry.text,
            Layout::Meta => {
                NORMALISED_TWINS
                    .iter()
                    .find(|(file, _)| *file == entry.file)
                    .expect("a normalised twin")
                    .1
            }
        };
        let mut lines = text.lines();
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
                let category = PricingCategory::parse(name)
                    .unwrap_or_else(|| panic!("{}: column {column}", entry.file));
                let loaded = rates.get(category).map(|r| r.to_string());
                let blanked = entry.blank_columns.iter().any(|(c, _)| *c == name)
                    || entry
                        .blank_cells
                        .iter()
                        .any(|(m, c, _)| *m == market && *c == name);
                let expected = match *cell {
                    _ if blanked => None,
                    "" | "n/a" | "null" => None,
                    number => Some(number.to_string()),
                };
                assert_eq!(loaded, expected, "{} {market} {name}", entry.file);
            }
        }
        assert_eq!(
            rows,
            card.markets.len(),
            "{}: one market per row",
            entry.file
        );
        assert_eq!(card.currency.code(), entry.currency);
        assert_eq!(
            (card.effective, card.until, card.model),
            (entry.effective, entry.until, entry.model)
        );
        // Its status is what the manifest says, and a partial card names
        // the markets it lacks.
        assert_eq!(
            card.status() == CardStatus::Partial,
            entry.partial,
            "{}",
            entry.id
        );
        assert_eq!(
            card.status() == CardStatus::Derived,
            !entry.derivation.is_empty() && !entry.partial,
            "{}",
            entry.id
        );
        if entry.partial {
            assert!(!card.missing_markets.is_empty());
        } else {
            assert!(rows >= 32, "{}: {rows} rows", entry.file);
        }
    }

    /// Meta-layout cards and the same numbers in the normalised layout.
    const NORMALISED_TWINS: &[(&str, &str)] = &[(
        "meta-raw_alihasnainh3techs-daily-pricing-scraper-5bce6c1_effective-2026-04-01_USD.csv",
        include_str!(
            "../../../../data/ratecards/alihasnainh3techs-daily-pricing-scraper_effective-2026-04-01_USD.csv"
        ),
    )];

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
        usd_2022_02_01_reproduces_its_file => "usd-2022-02-01",
        usd_2023_06_01_reproduces_its_file => "usd-2023-06-01",
        usd_2024_10_01_reproduces_its_file => "usd-2024-10-01",
        usd_2025_07_01_reproduces_its_file => "usd-2025-07-01",
        usd_2025_10_01_reproduces_its_file => "usd-2025-10-01",
        inr_2025_10_01_reproduces_its_file => "inr-2025-10-01",
        usd_2026_01_01_reproduces_its_file => "usd-2026-01-01",
        usd_2026_04_01_reproduces_its_file => "usd-2026-04-01",
        usd_2026_07_01_reproduces_its_file => "usd-2026-07-01",
        eur_2026_07_01_reproduces_its_file => "eur-2026-07-01",
        usd_2026_10_01_reproduces_its_file => "usd-2026-10-01",
    }

    #[test]
    fn partial_and_derived_cards_say_what_they_lack() {
        let book = RateBook::builtin();
        let card = |id: &str| book.cards().iter().find(|c| c.id == id).unwrap();
        let usd_2022 = card("usd-2022-02-01");
        assert_eq!(
            usd_2022.missing_markets,
            ["Other", "Rest of Middle East", "Rest of Western Europe"]
        );
        let error = usd_2022
            .rate("Other", PricingCategory::BusinessInitiated)
            .unwrap_err();
        assert!(
            error.contains("usd-2022-02-01")
                && error.contains("partial")
                && error.contains("lacks market `Other`"),
            "{error}"
        );
        assert_eq!(card("usd-2023-06-01").missing_markets.len(), 20);
        let july = card("usd-2025-07-01");
        assert_eq!(july.status(), CardStatus::Derived);
        assert!(july.to_string().contains("derived"), "{july}");
        let error = july
            .rate("Saudi Arabia", PricingCategory::Utility)
            .unwrap_err();
        assert!(error.contains("not found in any source"), "{error}");
        assert_eq!(
            july.rate("Saudi Arabia", PricingCategory::Marketing)
                .unwrap()
                .to_string(),
            "0.0455"
        );
        // The EUR 2022 cell copied from Rest of Middle East is unknown.
        let eur = card("eur-2022-02-01");
        assert!(
            eur.rate(
                "Rest of Central & Eastern Europe",
                PricingCategory::BusinessInitiated
            )
            .unwrap_err()
            .contains("Rest of Middle East value")
        );
        assert!(
            eur.rate(
                "Rest of Central & Eastern Europe",
                PricingCategory::UserInitiated
            )
            .is_ok()
        );
    }

    /// A later file that adds a column (or a market) still reads: the same
    /// rates and bands for every market the real file has.
    #[test]
    fn metas_layouts_tolerate_an_added_column() {
        let manifest = builtin_cards();
        let raw = manifest.iter().find(|c| c.id == "usd-2026-04-01").unwrap();
        let widened: String = raw
            .text
            .split_inclusive('\n')
            .map(|line| {
                let (body, end) = line.split_at(line.trim_end_matches(['\r', '\n']).len());
                // The header's first half ends inside its quoted line break.
                let extra = match body {
                    "" => "",
                    _ if body.starts_with("Market,") => "",
                    _ if body.starts_with("International\",Service") => ",Marketing Lite",
                    _ => ",0.05",
                };
                format!("{body}{extra}{end}")
            })
            .collect();
        let original = RateCard::parse_meta_csv(raw.file, raw.text).unwrap();
        let read = RateCard::parse_meta_csv("widened.csv", &widened).unwrap();
        assert_eq!(read.markets, original.markets);
        let (file, text) = TIERS_FILE;
        let widened: String = text
            .split_inclusive('\n')
            .map(|line| {
                let (body, end) = line.split_at(line.trim_end_matches(['\r', '\n']).len());
                // `"Market` opens the header's quoted line break.
                format!(
                    "{body}{}{end}",
                    if body.is_empty() || body == "\"Market" {
                        ""
                    } else {
                        ",extra"
                    }
                )
            })
            .collect();
        assert_eq!(
            TierBook::parse_meta_csv("widened.csv", &widened).unwrap(),
            TierBook::parse_meta_csv(file, text).unwrap()
        );
    }

    /// Meta's raw tier file, byte for byte, gives the ladders its unpivoted
    /// twin prints: every band of every market and category.
    #[test]
    fn the_builtin_tier_table_is_metas_file_as_printed() {
        let bands = builtin_tiers();
        let twin = include_str!(
            "../../../../data/ratecards/alihasnainh3techs-daily-pricing-scraper_effective-2026-04-01_USD_volume-tiers.csv"
        );
        let mut reader = csv::Reader::from_reader(twin.as_bytes());
        let mut rows = 0;
        for record in reader.records() {
            let record = record.unwrap();
            let (market, category, from, to, rate) =
                (&record[0], &record[2], &record[3], &record[4], &record[6]);
            let category = PricingCategory::parse(category).unwrap();
            let count = |cell: &str| cell.replace(',', "").parse::<u64>().ok();
            let band = bands
                .iter()
                .find(|b| {
                    b.market == market && b.category == category && b.from == count(from).unwrap()
                })
                .unwrap_or_else(|| panic!("{market} {category:?} from {from}"));
            assert_eq!(
                (band.to, band.rate.to_string()),
                (count(to), rate.to_string()),
                "{market} {category:?} from {from}"
            );
            assert_eq!(
                (band.effective, band.currency),
                (date(2026, 4, 1), Currency::USD)
            );
            rows += 1;
        }
        assert_eq!(rows, 438);
        assert_eq!(bands.len(), rows);
    }
}
