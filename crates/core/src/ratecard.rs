//! Rate cards and volume tiers: what Meta charges per market and category.
//!
//! A [`RateCard`] is one of Meta's published cards: a currency, an effective
//! date (00:00 in the business's time zone, decision D2), a pricing model, and
//! one row of rates per market. Rates are exact decimals; a missing rate
//! (`n/a`, or a column the source did not capture) is `None` and is never
//! guessed.
//!
//! Two layouts load:
//! - Meta's own CSV ([`RateCard::parse_meta_csv`]): preamble rows, a title with
//!   the currency and `effective <Month D, YYYY>`, the header
//!   `Market,Currency,Marketing,Utility,Authentication,"Authentication-\nInternational",Service`
//!   (or the 2022 `Business-initiated,User-initiated` pair);
//! - the normalised transcriptions shipped in `data/ratecards/`
//!   ([`RateBook::builtin`]), described by a manifest in this module.
//!
//! Parsing text is pure; reading files is the caller's job.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::{Date, date};
use rust_decimal::Decimal;

use crate::category::{PricingCategory, PricingModel};
use crate::money::{Currency, parse_amount};

/// Rates for one market on one card. `None` = no rate (`n/a` or not captured).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketRates {
    /// Marketing template (per message, or per conversation in CBP).
    pub marketing: Option<Decimal>,
    /// Utility template.
    pub utility: Option<Decimal>,
    /// Authentication template.
    pub authentication: Option<Decimal>,
    /// Authentication-international.
    pub authentication_international: Option<Decimal>,
    /// Service (CBP v2 service conversation; from 2026-10 a service message).
    pub service: Option<Decimal>,
    /// CBP v1 business-initiated conversation.
    pub business_initiated: Option<Decimal>,
    /// CBP v1 user-initiated conversation.
    pub user_initiated: Option<Decimal>,
}

impl MarketRates {
    /// The rate for a pricing category, if the card has one.
    pub fn get(&self, category: PricingCategory) -> Option<Decimal> {
        match category {
            PricingCategory::Marketing => self.marketing,
            PricingCategory::Utility => self.utility,
            PricingCategory::Authentication => self.authentication,
            PricingCategory::AuthenticationInternational => self.authentication_international,
            PricingCategory::Service => self.service,
            PricingCategory::BusinessInitiated => self.business_initiated,
            PricingCategory::UserInitiated => self.user_initiated,
            PricingCategory::ReferralConversion => Some(Decimal::ZERO),
        }
    }
}

/// One rate card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateCard {
    /// Short stable id (`usd-2026-01-01`, or the file name for user cards).
    pub id: String,
    /// Where the numbers come from.
    pub source: String,
    /// Billing currency.
    pub currency: Currency,
    /// First business-local date the card applies to.
    pub effective: Date,
    /// First date it no longer applies (a later card, or a known Meta rate
    /// change for which no card is available). `None` = until a later card.
    pub until: Option<Date>,
    /// Per-conversation (CBP) or per-message (PMP) rates.
    pub model: PricingModel,
    /// What the source is known to lack or get wrong, in words.
    pub gaps: Vec<String>,
    /// Rates by Meta market name.
    pub markets: BTreeMap<String, MarketRates>,
}

impl fmt::Display for RateCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {}, effective {})", self.id, self.currency, self.model.as_str(), self.effective)
    }
}

/// A problem in a rate-card or tier file, with its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: row {row}{}: {message}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
pub struct RateFileError {
    /// File name (or other label) of the input.
    pub source_name: String,
    /// 1-based physical line where the row starts.
    pub row: u64,
    /// Column name, when the problem is in one cell.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn month_number(name: &str) -> Option<i8> {
    const MONTHS: [&str; 12] = ["january", "february", "march", "april", "may", "june", "july",
        "august", "september", "october", "november", "december"];
    let lower = name.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == lower || (lower.len() >= 3 && m.starts_with(&lower))).map(|i| i as i8 + 1)
}

/// Finds `effective <Month> <D>, <YYYY>` in a title line.
fn effective_date_in(title: &str) -> Option<Date> {
    let lower = title.to_ascii_lowercase();
    let start = lower.find("effective")? + "effective".len();
    let words: Vec<&str> = title[start..]
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let month = month_number(words.first()?)?;
    let day: i8 = words.get(1)?.parse().ok()?;
    let year: i16 = words.get(2)?.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok()?;
    Date::new(year, month, day).ok()
}

/// Finds the currency named in a title line (`Cost per message in USD …`).
fn currency_in(title: &str) -> Option<Currency> {
    let words: Vec<&str> = title.split_whitespace().collect();
    words.windows(2).find(|w| w[0].eq_ignore_ascii_case("in")).and_then(|w| Currency::parse(w[1].trim_matches(',')))
}

fn normalise_header(cell: &str) -> String {
    cell.replace(['-', '_'], " ").split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase()
}

/// Parses one rate cell: a decimal, or `n/a` / `null` / empty for "no rate".
fn parse_rate_cell(cell: &str) -> Result<Option<Decimal>, String> {
    let cell = cell.trim();
    if cell.is_empty() || cell.eq_ignore_ascii_case("n/a") || cell.eq_ignore_ascii_case("null") || cell == "--" {
        return Ok(None);
    }
    match parse_amount(cell) {
        Some(rate) if rate.is_sign_negative() => Err(format!("negative rate `{cell}`")),
        Some(rate) => Ok(Some(rate)),
        None => Err(format!("`{cell}` is not a decimal rate")),
    }
}

impl RateCard {
    /// Parses a card in Meta's published CSV layout.
    ///
    /// `name` labels errors. The pricing model is taken from the title
    /// ("Cost per conversation" = CBP, "Cost per message" = PMP), else from
    /// the effective date (PMP from 2025-07-01).
    pub fn parse_meta_csv(name: &str, text: &str) -> Result<RateCard, RateFileError> {
        let error = |row: u64, column: Option<&str>, message: String| RateFileError {
            source_name: name.to_string(),
            row,
            column: column.map(str::to_string),
            message,
        };
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
        let mut title = None;
        let mut columns: Option<Vec<String>> = None;
        let mut markets = BTreeMap::new();
        let mut currency_cells: Option<Currency> = None;
        for record in reader.records() {
            let record = record.map_err(|e| {
                let row = e.position().map(|p| p.line()).unwrap_or(0);
                error(row, None, format!("not valid CSV: {e}"))
            })?;
            let row = record.position().map(|p| p.line()).unwrap_or(0);
            let cells: Vec<&str> = record.iter().collect();
            if cells.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let Some(header) = &columns else {
                let first = normalise_header(cells[0]);
                if first == "market" || first.starts_with("market (") {
                    columns = Some(cells.iter().map(|c| normalise_header(c)).collect());
                } else if title.is_none() {
                    // Meta's title rows are not quoted, so their commas split
                    // them into cells: read the row as one line again.
                    let line = cells.join(",").trim_end_matches(',').to_string();
                    if line.to_ascii_lowercase().contains("effective") {
                        title = Some(line);
                    }
                }
                continue;
            };
            let market = cells[0].trim();
            if market.is_empty() {
                return Err(error(row, Some("Market"), "empty market name".into()));
            }
            let mut rates = MarketRates::default();
            for (index, header_name) in header.iter().enumerate().skip(1) {
                let cell = cells.get(index).copied().unwrap_or("");
                if header_name == "currency" {
                    let currency = Currency::parse(cell)
                        .ok_or_else(|| error(row, Some("Currency"), format!("unknown currency token `{cell}`")))?;
                    match currency_cells {
                        Some(seen) if seen != currency => {
                            return Err(error(row, Some("Currency"), format!("currency {currency} differs from {seen} in earlier rows")));
                        }
                        _ => currency_cells = Some(currency),
                    }
                    continue;
                }
                let slot = match header_name.as_str() {
                    "marketing" => &mut rates.marketing,
                    "utility" => &mut rates.utility,
                    "authentication" => &mut rates.authentication,
                    "authentication international" => &mut rates.authentication_international,
                    "service" => &mut rates.service,
                    "business initiated" => &mut rates.business_initiated,
                    "user initiated" => &mut rates.user_initiated,
                    _ => continue, // Unknown extra columns are Meta's business, not an error.
                };
                *slot = parse_rate_cell(cell).map_err(|m| error(row, Some(header_name), m))?;
            }
            if markets.insert(market.to_string(), rates).is_some() {
                return Err(error(row, Some("Market"), format!("market `{market}` appears twice")));
            }
        }
        if columns.is_none() {
            return Err(error(0, None, "no header row starting with `Market` was found".into()));
        }
        if markets.is_empty() {
            return Err(error(0, None, "the card has no market rows".into()));
        }
        let title = title.ok_or_else(|| error(1, None, "no title row with `effective <Month D, YYYY>` was found".into()))?;
        let effective = effective_date_in(&title)
            .ok_or_else(|| error(1, None, format!("cannot read the effective date in `{title}`")))?;
        let currency = currency_in(&title).or(currency_cells).ok_or_else(|| {
            error(1, None, "no currency: neither the title nor a Currency column names one".into())
        })?;
        let lower_title = title.to_ascii_lowercase();
        let model = if lower_title.contains("per conversation") {
            PricingModel::Cbp
        } else if lower_title.contains("per message") || effective >= date(2025, 7, 1) {
            PricingModel::Pmp
        } else {
            PricingModel::Cbp
        };
        Ok(RateCard {
            id: name.to_string(),
            source: format!("{name} (Meta CSV layout)"),
            currency,
            effective,
            until: None,
            model,
            gaps: Vec::new(),
            markets,
        })
    }

    /// The rate for a market and category, or why there is none.
    pub fn rate(&self, market: &str, category: PricingCategory) -> Result<Decimal, String> {
        let rates = self
            .markets
            .get(market)
            .ok_or_else(|| format!("rate card {self} has no row for market `{market}`"))?;
        rates.get(category).ok_or_else(|| {
            let gap = self.gaps.iter().find(|g| g.contains(category.as_str()));
            match gap {
                Some(gap) => format!("rate card {self} has no {category} rate for {market}: {gap}"),
                None => format!("rate card {self} has no {category} rate for {market} (`n/a`)"),
            }
        })
    }
}

/// How one of the shipped transcriptions is laid out and what it lacks.
struct BuiltinCard {
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
        ($file, include_str!(concat!("../../../data/ratecards/", $file)))
    };
}

/// The cards shipped in `data/ratecards/`, with what `PROVENANCE.md` says of
/// them. `until` is the next Meta rate change that affects the card's
/// currency when the next card is not available: pricing past it would be a
/// guess.
fn builtin_cards() -> Vec<BuiltinCard> {
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

/// Source typos in market names, corrected so names match Meta's.
fn canonical_market_name(name: &str) -> &str {
    match name {
        "Rusia" => "Russia",
        "Rest of Lain America" => "Rest of Latin America",
        other => other,
    }
}

fn parse_normalised(card: &BuiltinCard) -> Result<RateCard, RateFileError> {
    let error = |row: u64, column: Option<&str>, message: String| RateFileError {
        source_name: card.file.to_string(),
        row,
        column: column.map(str::to_string),
        message,
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

/// Why no card could be chosen for a delivery.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no {model} rate card in {currency} covers {date}{}", if known.is_empty() { String::from(" (no cards in that currency)") } else { format!("; known {currency} cards: {known}") })]
pub struct NoCardError {
    /// Currency asked for.
    pub currency: Currency,
    /// Business-local date asked for.
    pub date: Date,
    /// Model asked for (`CBP`/`PMP`).
    pub model: &'static str,
    /// Cards in that currency, for the message.
    pub known: String,
}

/// A set of rate cards from which the one in force is chosen.
#[derive(Clone, Debug, Default)]
pub struct RateBook {
    cards: Vec<RateCard>,
}

impl RateBook {
    /// The cards shipped with wameter.
    pub fn builtin() -> RateBook {
        let cards = builtin_cards()
            .iter()
            .map(|card| parse_normalised(card).expect("builtin cards parse (tested)"))
            .collect();
        RateBook::new(cards)
    }

    /// A book of the given cards. Cards without an explicit `until` end
    /// where the next card of the same currency and model begins.
    pub fn new(mut cards: Vec<RateCard>) -> RateBook {
        cards.sort_by(|a, b| (a.currency, a.model, a.effective).cmp(&(b.currency, b.model, b.effective)));
        RateBook { cards }
    }

    /// All cards, sorted by currency, model and date.
    pub fn cards(&self) -> &[RateCard] {
        &self.cards
    }

    /// The card in force for a currency, model and business-local date.
    pub fn select(&self, currency: Currency, model: PricingModel, on: Date) -> Result<&RateCard, NoCardError> {
        let same: Vec<&RateCard> = self.cards.iter().filter(|c| c.currency == currency && c.model == model).collect();
        let found = same.iter().enumerate().rev().find(|(_, c)| c.effective <= on).and_then(|(index, card)| {
            let next = same.get(index + 1).map(|n| n.effective);
            let end = match (card.until, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            end.is_none_or(|end| on < end).then_some(*card)
        });
        found.ok_or_else(|| NoCardError {
            currency,
            date: on,
            model: model.as_str(),
            known: self
                .cards
                .iter()
                .filter(|c| c.currency == currency)
                .map(|c| match c.until {
                    Some(until) => format!("{} {} {}..{}", c.id, c.model.as_str(), c.effective, until),
                    None => format!("{} {} from {}", c.id, c.model.as_str(), c.effective),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// One volume-tier band: messages `from..=to` of a month pay `rate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierBand {
    /// First business-local date the band applies to.
    pub effective: Date,
    /// Currency of `rate`.
    pub currency: Currency,
    /// Meta market name.
    pub market: String,
    /// Utility, authentication or authentication-international. The band's
    /// rate applies to messages priced in this category; the message number
    /// counts the whole family (authentication and authentication-
    /// international share one counter, D10).
    pub category: PricingCategory,
    /// First message number in the band (0 and 1 both mean the first message).
    pub from: u64,
    /// Last message number, inclusive; `None` = open-ended.
    pub to: Option<u64>,
    /// Rate for messages in the band, replacing the card's list rate.
    pub rate: Decimal,
}

impl TierBand {
    /// Meta's `LOWER:UPPER` label (`0:750000`, `750001:MAX`).
    pub fn label(&self) -> String {
        match self.to {
            Some(to) => format!("{}:{}", self.from, to),
            None => format!("{}:MAX", self.from),
        }
    }

    fn contains(&self, message_number: u64) -> bool {
        self.from.max(1) <= message_number && self.to.is_none_or(|to| message_number <= to)
    }
}

/// Volume-tier bands from `--tiers` files.
#[derive(Clone, Debug, Default)]
pub struct TierBook {
    bands: Vec<TierBand>,
}

impl TierBook {
    /// A book of bands.
    pub fn new(bands: Vec<TierBand>) -> TierBook {
        TierBook { bands }
    }

    /// True when no band is loaded.
    pub fn is_empty(&self) -> bool {
        self.bands.is_empty()
    }

    /// Parses the simple tier CSV (interfaces §3):
    /// `effective,currency,market,category,from,to,rate`.
    pub fn parse_simple_csv(name: &str, text: &str) -> Result<Vec<TierBand>, RateFileError> {
        let error = |row: u64, column: &str, message: String| RateFileError {
            source_name: name.to_string(),
            row,
            column: Some(column.to_string()),
            message,
        };
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| error(1, "header", e.to_string()))?
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let expected = ["effective", "currency", "market", "category", "from", "to", "rate"];
        let position = |column: &str| {
            headers.iter().position(|h| h == column).ok_or_else(|| error(1, column, format!("missing column `{column}` (expected {})", expected.join(","))))
        };
        let indexes = expected.map(position);
        let mut index = [0; 7];
        for (slot, found) in index.iter_mut().zip(indexes) {
            *slot = found?;
        }
        let mut bands = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| error(0, "row", e.to_string()))?;
            let row = record.position().map(|p| p.line()).unwrap_or(0);
            let cell = |i: usize| record.get(index[i]).unwrap_or("");
            let effective: Date = cell(0).parse().map_err(|_| error(row, "effective", format!("`{}` is not a YYYY-MM-DD date", cell(0))))?;
            let currency = Currency::parse(cell(1)).ok_or_else(|| error(row, "currency", format!("unknown currency `{}`", cell(1))))?;
            let market = cell(2).to_string();
            if market.is_empty() {
                return Err(error(row, "market", "empty market".into()));
            }
            let category = match PricingCategory::parse(cell(3)) {
                Some(category) if category.tier_family().is_some() => category,
                _ => {
                    return Err(error(row, "category", format!(
                        "`{}` has no volume tiers (utility, authentication, authentication_international)",
                        cell(3)
                    )));
                }
            };
            let from: u64 = cell(4).parse().map_err(|_| error(row, "from", format!("`{}` is not a message count", cell(4))))?;
            let to = match cell(5) {
                "" | "--" => None,
                text => Some(text.parse::<u64>().map_err(|_| error(row, "to", format!("`{text}` is not a message count")))?),
            };
            if to.is_some_and(|to| to < from.max(1)) {
                return Err(error(row, "to", format!("band ends ({}) before it starts ({from})", to.unwrap_or(0))));
            }
            let rate = parse_rate_cell(cell(6)).map_err(|m| error(row, "rate", m))?.ok_or_else(|| error(row, "rate", "missing rate".into()))?;
            bands.push(TierBand { effective, currency, market, category, from, to, rate });
        }
        Ok(bands)
    }

    /// The band for a message priced in `category` that is the
    /// `message_number`-th charged message of its family this month.
    /// Only bands of the latest effective date ≤ `on` count, so a new tier
    /// table replaces the old one rather than mixing with it.
    pub fn band(&self, currency: Currency, market: &str, category: PricingCategory, on: Date, message_number: u64) -> Option<&TierBand> {
        let candidates = || {
            self.bands.iter().filter(move |b| b.currency == currency && b.category == category && b.market == market && b.effective <= on)
        };
        let latest = candidates().map(|b| b.effective).max()?;
        candidates().filter(|b| b.effective == latest).find(|b| b.contains(message_number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META_PMP: &str = "Cost per message in USD on the WhatsApp Business Platform, effective July 1, 2026,,,,,,\n\
Note: rates are per delivered message,,,,,,\n\
,,,,,,\n\
Market,Currency,Marketing,Utility,Authentication,\"Authentication-\nInternational\",Service\n\
Argentina,$US,0.0618,0.0260,0.0260,n/a,n/a\n\
India,$US,0.0118,0.0014,0.0014,0.0280,n/a\n";

    #[test]
    fn meta_layout_with_quoted_newline_header() {
        let card = RateCard::parse_meta_csv("usd.csv", META_PMP).unwrap();
        assert_eq!(card.currency, Currency::USD);
        assert_eq!(card.effective, date(2026, 7, 1));
        assert_eq!(card.model, PricingModel::Pmp);
        assert_eq!(card.rate("India", PricingCategory::AuthenticationInternational).unwrap().to_string(), "0.0280");
        assert!(card.rate("Argentina", PricingCategory::AuthenticationInternational).unwrap_err().contains("n/a"));
        assert!(card.rate("Brazil", PricingCategory::Marketing).unwrap_err().contains("no row"));
    }

    #[test]
    fn meta_layout_two_rate_2022_card() {
        let text = "Cost per conversation in EUR, effective February 1, 2022,,\nMarket,Currency,Business-initiated,User-initiated\nBrazil,€,0.0414,0.0248\n";
        let card = RateCard::parse_meta_csv("eur.csv", text).unwrap();
        assert_eq!(card.model, PricingModel::Cbp);
        assert_eq!(card.rate("Brazil", PricingCategory::BusinessInitiated).unwrap().to_string(), "0.0414");
    }

    #[test]
    fn meta_layout_errors_name_row_and_column() {
        let bad = META_PMP.replace("0.0118", "-0.01");
        let error = RateCard::parse_meta_csv("usd.csv", &bad).unwrap_err();
        assert_eq!((error.row, error.column.as_deref()), (7, Some("marketing")));
        let bad = META_PMP.replace("$US,0.0618", "XX$,0.0618");
        let error = RateCard::parse_meta_csv("usd.csv", &bad).unwrap_err();
        assert!(error.to_string().contains("unknown currency token `XX$`"), "{error}");
        let bad = format!("{META_PMP}India,$US,0.1,0.1,0.1,0.1,n/a\n");
        assert!(RateCard::parse_meta_csv("usd.csv", &bad).unwrap_err().message.contains("twice"));
        let bad = META_PMP.replace("effective July 1, 2026", "from July");
        assert!(RateCard::parse_meta_csv("usd.csv", &bad).unwrap_err().message.contains("effective"));
    }

    #[test]
    fn builtin_cards_reproduce_their_files() {
        let book = RateBook::builtin();
        assert_eq!(book.cards().len(), 6);
        let usd = book.select(Currency::USD, PricingModel::Pmp, date(2026, 2, 1)).unwrap();
        assert_eq!(usd.id, "usd-2026-01-01");
        assert_eq!(usd.rate("Brazil", PricingCategory::Marketing).unwrap().to_string(), "0.0625");
        assert_eq!(usd.rate("Indonesia", PricingCategory::AuthenticationInternational).unwrap().to_string(), "0.136");
        assert!(usd.rate("Brazil", PricingCategory::Service).unwrap_err().contains("not captured"));
        let eur = book.select(Currency::parse("EUR").unwrap(), PricingModel::Cbp, date(2022, 3, 1)).unwrap();
        assert_eq!(eur.rate("Russia", PricingCategory::BusinessInitiated).unwrap(), eur.markets["Russia"].business_initiated.unwrap());
        assert!(eur.markets.contains_key("Rest of Latin America"));
    }

    #[test]
    fn every_builtin_market_name_resolves_in_the_market_table_on_its_date() {
        let table = crate::market::MarketTable::builtin();
        for card in RateBook::builtin().cards() {
            let markets = table.markets_on(card.effective);
            let names: Vec<&str> = markets.iter().map(|m| &**m).collect();
            for market in card.markets.keys() {
                assert!(names.contains(&market.as_str()), "{}: market `{market}` is not in the table for {}", card.id, card.effective);
            }
            // And the other way round: no market of the table lacks a row.
            for market in &names {
                assert!(card.markets.contains_key(*market), "{}: no row for `{market}`", card.id);
            }
        }
    }

    #[test]
    fn selection_never_guesses_past_a_known_change() {
        let book = RateBook::builtin();
        // The 2024-10 USD CBP card ends where Meta changed authentication rates.
        assert!(book.select(Currency::USD, PricingModel::Cbp, date(2025, 1, 31)).is_ok());
        let error = book.select(Currency::USD, PricingModel::Cbp, date(2025, 2, 1)).unwrap_err();
        assert!(error.to_string().contains("usd-2024-10-01"), "{error}");
        // No USD PMP card before 2026-01-01.
        assert!(book.select(Currency::USD, PricingModel::Pmp, date(2025, 7, 1)).is_err());
        assert_eq!(book.select(Currency::USD, PricingModel::Pmp, date(2026, 12, 1)).unwrap().id, "usd-2026-10-01");
        let brl = book.select(Currency::parse("BRL").unwrap(), PricingModel::Pmp, date(2026, 12, 1)).unwrap_err();
        assert!(brl.to_string().contains("no cards in that currency"));
    }

    #[test]
    fn user_cards_run_until_the_next_one() {
        let a = RateCard::parse_meta_csv("a.csv", META_PMP).unwrap();
        let b = RateCard::parse_meta_csv("b.csv", &META_PMP.replace("July 1, 2026", "October 1, 2026")).unwrap();
        let book = RateBook::new(vec![b, a]);
        assert_eq!(book.select(Currency::USD, PricingModel::Pmp, date(2026, 9, 30)).unwrap().id, "a.csv");
        assert_eq!(book.select(Currency::USD, PricingModel::Pmp, date(2026, 10, 1)).unwrap().id, "b.csv");
    }

    #[test]
    fn tier_bands_are_graduated_and_inclusive() {
        let text = "effective,currency,market,category,from,to,rate\n\
2026-01-01,USD,India,utility,0,2,0.0014\n\
2026-01-01,USD,India,utility,3,5,0.0012\n\
2026-01-01,USD,India,utility,6,,0.0010\n";
        let book = TierBook::new(TierBook::parse_simple_csv("tiers.csv", text).unwrap());
        let rate = |n| book.band(Currency::USD, "India", PricingCategory::Utility, date(2026, 1, 5), n).map(|b| (b.label(), b.rate.to_string()));
        assert_eq!(rate(1), Some(("0:2".into(), "0.0014".into())));
        assert_eq!(rate(2), Some(("0:2".into(), "0.0014".into())));
        assert_eq!(rate(3), Some(("3:5".into(), "0.0012".into())));
        assert_eq!(rate(1_000_000), Some(("6:MAX".into(), "0.0010".into())));
        assert_eq!(book.band(Currency::USD, "Brazil", PricingCategory::Utility, date(2026, 1, 5), 1), None);
        assert_eq!(book.band(Currency::USD, "India", PricingCategory::Utility, date(2025, 12, 31), 1), None);
        assert_eq!(book.band(Currency::USD, "India", PricingCategory::Authentication, date(2026, 1, 5), 1), None);
        let marketing = text.replace("utility", "marketing");
        assert_eq!(TierBook::parse_simple_csv("t.csv", &marketing).unwrap_err().column.as_deref(), Some("category"));
        let bad = text.replace("3,5,", "3,1,");
        assert_eq!(TierBook::parse_simple_csv("t.csv", &bad).unwrap_err().column.as_deref(), Some("to"));
    }
}
