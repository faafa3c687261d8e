//! Rate cards and volume tiers: what Meta charges per market and category.
//!
//! A [`RateCard`] is one of Meta's published cards: a currency, an effective
//! date (00:00 in the business's time zone, decision D2), a pricing model, and
//! one row of rates per market. Rates are exact decimals; a missing rate
//! (`n/a`, or a column the source did not capture) is `None` and is never
//! guessed. A [`RateBook`] picks the card in force for a currency, model and
//! date; a [`TierBook`] holds volume-tier bands.
//!
//! Layouts, one module each:
//! - [`meta_rates`]: Meta's "Rates (CSV)";
//! - [`tiers`]: the simple tier CSV and Meta's "Volume tiers (CSV)";
//! - [`builtin`]: the transcriptions shipped in `data/ratecards/`.
//!
//! Every reader has a lenient `check_*` form returning [`Checked`] — the value
//! and *every* problem with its row and column, for `wameter rates check` —
//! and a strict `parse_*` form that fails on the first error.
//! [`check_rate_file`] tells the layouts apart.
//!
//! Parsing text is pure; reading files is the caller's job.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use rust_decimal::Decimal;

use crate::category::{PricingCategory, PricingModel};
use crate::money::{Currency, parse_amount};

pub mod builtin;
pub mod calling;
pub mod meta_rates;
pub mod tiers;

pub use tiers::{TierBand, TierBook};

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
    /// The field of a normalised column name (`marketing`,
    /// `authentication_international`, `business_initiated`…).
    pub fn slot(&mut self, column: &str) -> Option<&mut Option<Decimal>> {
        Some(match column {
            "marketing" => &mut self.marketing,
            "utility" => &mut self.utility,
            "authentication" => &mut self.authentication,
            "authentication_international" => &mut self.authentication_international,
            "service" => &mut self.service,
            "business_initiated" => &mut self.business_initiated,
            "user_initiated" => &mut self.user_initiated,
            _ => return None,
        })
    }

    /// Forgets one column's rate (a cell the source got wrong).
    pub fn clear(&mut self, column: &str) {
        if let Some(slot) = self.slot(column) {
            *slot = None;
        }
    }

    /// Whether the market has no rate at all.
    pub fn is_empty(&self) -> bool {
        *self == MarketRates::default()
    }

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
    /// Rates the source is known to lack or to have got wrong.
    pub gaps: Vec<Gap>,
    /// How the card was derived from other cards, step by step (empty: it
    /// is a copy of Meta's card as its source printed it).
    pub derivation: Vec<String>,
    /// Markets of its date the card has no rates for at all.
    pub missing_markets: Vec<String>,
    /// Rates by Meta market name.
    pub markets: BTreeMap<String, MarketRates>,
}

/// A rate a card's source lacks or got wrong: loaded as "no rate", so a
/// message needing it fails to price instead of costing 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// One market's cell, or `None` for the whole column.
    pub market: Option<String>,
    /// The column (`service`, `utility`, `authentication_international`…).
    pub column: String,
    /// Why, in words.
    pub why: String,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.market {
            Some(market) => write!(f, "{market} {}: {}", self.column, self.why),
            None => write!(f, "{}: {}", self.column, self.why),
        }
    }
}

/// How far a card's numbers can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CardStatus {
    /// Meta's card as its source printed it (gaps aside).
    Verbatim,
    /// Computed from other cards and Meta's changelog, step by step.
    Derived,
    /// Lacks some of its date's markets (which cannot be priced with it).
    Partial,
}

impl CardStatus {
    /// `verbatim`, `derived` or `partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Verbatim => "verbatim",
            CardStatus::Derived => "derived",
            CardStatus::Partial => "partial",
        }
    }
}

impl fmt::Display for RateCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {}, effective {}",
            self.id,
            self.currency,
            self.model.as_str(),
            self.effective
        )?;
        match self.status() {
            CardStatus::Verbatim => f.write_str(")"),
            status => write!(f, ", {status})", status = status.as_str()),
        }
    }
}

impl RateCard {
    /// A card of Meta's, as read from a file: nothing derived, no gaps.
    pub fn new(
        id: String,
        source: String,
        currency: Currency,
        effective: Date,
        model: PricingModel,
        markets: BTreeMap<String, MarketRates>,
    ) -> RateCard {
        RateCard {
            id,
            source,
            currency,
            effective,
            until: None,
            model,
            gaps: Vec::new(),
            derivation: Vec::new(),
            missing_markets: Vec::new(),
            markets,
        }
    }

    /// Verbatim, derived or partial (partial wins: a derived card that
    /// lacks markets is partial).
    pub fn status(&self) -> CardStatus {
        if !self.missing_markets.is_empty() {
            CardStatus::Partial
        } else if !self.derivation.is_empty() {
            CardStatus::Derived
        } else {
            CardStatus::Verbatim
        }
    }

    /// What a charge's `reason` says of the card beyond its id: nothing
    /// for a verbatim card, else its status (the steps are in `rates list`
    /// and `explain`).
    pub fn status_note(&self) -> String {
        match self.status() {
            CardStatus::Verbatim => String::new(),
            CardStatus::Derived => {
                " (a derived card: computed from neighbouring cards and Meta's changelog)"
                    .to_string()
            }
            CardStatus::Partial if self.derivation.is_empty() => " (a partial card)".to_string(),
            CardStatus::Partial => {
                " (a partial card, derived from neighbouring cards and Meta's changelog)"
                    .to_string()
            }
        }
    }

    /// The rate for a market and category, or why there is none.
    pub fn rate(&self, market: &str, category: PricingCategory) -> Result<Decimal, String> {
        if self.missing_markets.iter().any(|m| m == market) {
            return Err(format!(
                "rate card {self} lacks market `{market}` (its source does not have it; markets lacking: {}); supply a complete card with --rates",
                self.missing_markets.join(", ")
            ));
        }
        let rates = self
            .markets
            .get(market)
            .ok_or_else(|| format!("rate card {self} has no row for market `{market}`"))?;
        rates.get(category).ok_or_else(|| {
            let gap = self.gaps.iter().find(|g| {
                g.column == category.as_str() && g.market.as_deref().is_none_or(|m| m == market)
            });
            match gap {
                Some(gap) => format!(
                    "rate card {self} has no {category} rate for {market}: {}",
                    gap.why
                ),
                None => format!("rate card {self} has no {category} rate for {market} (`n/a`)"),
            }
        })
    }
}

/// How serious a problem in a rate file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file still loads; the user should look (e.g. a market missing
    /// from a card: messages to it will fail to price, never silently).
    Warning,
    /// The file cannot be used as it is.
    Error,
}

/// A problem in a rate-card or tier file, with its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}{}{}: {message}", if *row > 0 { format!(": row {row}") } else { String::new() }, column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
pub struct RateFileError {
    /// File name (or other label) of the input.
    pub source_name: String,
    /// 1-based physical line where the row starts (0 = the file as a whole).
    pub row: u64,
    /// Column name, when the problem is in one cell.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
    /// Whether the file can still be used.
    pub severity: Severity,
}

/// What a lenient read of a rate file found: the value, when the file's
/// structure allowed building one, and every problem, in file order.
///
/// `wameter rates check` prints all problems; loaders that need a usable
/// value call [`Checked::into_result`], which fails on the first error.
#[derive(Clone, Debug)]
pub struct Checked<T> {
    /// What could be read (`None` when the structure is unusable).
    pub value: Option<T>,
    /// Every problem found.
    pub problems: Vec<RateFileError>,
}

impl<T> Checked<T> {
    /// The value, or the first error. Warnings are returned alongside.
    pub fn into_result(self) -> Result<(T, Vec<RateFileError>), RateFileError> {
        let (errors, warnings): (Vec<_>, Vec<_>) = self
            .problems
            .into_iter()
            .partition(|p| p.severity == Severity::Error);
        match (errors.into_iter().next(), self.value) {
            (Some(error), _) => Err(error),
            (None, Some(value)) => Ok((value, warnings)),
            (None, None) => unreachable!("a file without a value always has an error"),
        }
    }

    /// True when the file has at least one error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// Collects problems for one file.
struct Problems<'n> {
    source_name: &'n str,
    found: Vec<RateFileError>,
}

impl<'n> Problems<'n> {
    fn new(source_name: &'n str) -> Self {
        Problems {
            source_name,
            found: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, row: u64, column: Option<&str>, message: String) {
        self.found.push(RateFileError {
            source_name: self.source_name.to_string(),
            row,
            column: column.map(str::to_string),
            message,
            severity,
        });
    }

    fn error(&mut self, row: u64, column: Option<&str>, message: String) {
        self.push(Severity::Error, row, column, message);
    }

    fn warning(&mut self, row: u64, column: Option<&str>, message: String) {
        self.push(Severity::Warning, row, column, message);
    }

    /// The record and its 1-based physical line, or `None` after recording
    /// why the CSV reader could not read it.
    fn record(
        &mut self,
        read: Result<csv::StringRecord, csv::Error>,
    ) -> Option<(u64, csv::StringRecord)> {
        match read {
            Ok(record) => Some((record.position().map(|p| p.line()).unwrap_or(0), record)),
            Err(error) => {
                self.error(
                    error.position().map(|p| p.line()).unwrap_or(0),
                    None,
                    format!("not valid CSV: {error}"),
                );
                None
            }
        }
    }

    fn finish<T>(mut self, value: Option<T>) -> Checked<T> {
        self.found.sort_by_key(|p| p.row);
        Checked {
            value,
            problems: self.found,
        }
    }
}

fn month_number(name: &str) -> Option<i8> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let lower = name.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| *m == lower || (lower.len() >= 3 && m.starts_with(&lower)))
        .map(|i| i as i8 + 1)
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
    let year: i16 = words
        .get(2)?
        .trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Date::new(year, month, day).ok()
}

/// Finds the currency named in a title line (`Cost per message in USD …`).
fn currency_in(title: &str) -> Option<Currency> {
    let words: Vec<&str> = title.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0].eq_ignore_ascii_case("in"))
        .and_then(|w| Currency::parse(w[1].trim_matches(',')))
}

/// Header cells compared loosely: case, `-`/`_`, line breaks and runs of
/// spaces do not matter (`"Authentication-\nInternational"` =
/// `authentication international`).
fn normalise_header(cell: &str) -> String {
    cell.replace(['-', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// A title row read back as one line: Meta's title rows are not quoted, so
/// their commas split them into cells.
fn joined_line(cells: &[&str]) -> String {
    cells.join(",").trim_end_matches(',').to_string()
}

/// True for the cells Meta and transcribers use for "no rate".
fn is_no_rate(cell: &str) -> bool {
    cell.is_empty()
        || cell.eq_ignore_ascii_case("n/a")
        || cell.eq_ignore_ascii_case("na")
        || cell.eq_ignore_ascii_case("null")
        || cell == "--"
        || cell == "-"
}

/// Parses one rate cell: a decimal, or `n/a` / `null` / empty for "no rate".
fn parse_rate_cell(cell: &str) -> Result<Option<Decimal>, String> {
    let cell = cell.trim();
    if is_no_rate(cell) {
        return Ok(None);
    }
    match parse_amount(cell) {
        Some(rate) if rate.is_sign_negative() => Err(format!("negative rate `{cell}`")),
        Some(rate) => Ok(Some(rate)),
        None => Err(format!("`{cell}` is not a decimal rate")),
    }
}

/// Source typos in market names seen in real files, corrected so names match
/// Meta's (`data/ratecards/PROVENANCE.md`).
fn canonical_market_name(name: &str) -> &str {
    match name {
        "Rusia" => "Russia",
        "Rest of Lain America" => "Rest of Latin America",
        other => other,
    }
}

/// Why no card could be chosen for a delivery: which cards come nearest,
/// and how to supply the missing one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NoCardError {
    /// Currency asked for.
    pub currency: Currency,
    /// Business-local date asked for.
    pub date: Date,
    /// Model asked for (`CBP`/`PMP`).
    pub model: &'static str,
    /// The nearest card of that currency and model in force before the
    /// date, with its span.
    pub before: Option<String>,
    /// The nearest one after it.
    pub after: Option<String>,
    /// Whether the currency has any card at all.
    pub any_in_currency: bool,
}

impl NoCardError {
    fn describe(&self) -> String {
        let (currency, date, model) = (self.currency, self.date, self.model);
        let mut text = format!("no {model} rate card in {currency} covers {date}");
        if !self.any_in_currency {
            text.push_str(" (no cards in that currency)");
        }
        match (&self.before, &self.after) {
            (Some(before), Some(after)) => text.push_str(&format!(
                "; the nearest are {before} before it and {after} after it"
            )),
            (Some(before), None) => text.push_str(&format!("; the latest before it is {before}")),
            (None, Some(after)) => text.push_str(&format!("; the earliest after it is {after}")),
            (None, None) => {}
        }
        text.push_str(&format!(
            ". Download Meta's {currency} rate card in force on {date} (\"Rates (CSV)\" on Meta's pricing page) and pass it with `--rates FILE`, or keep it for every later command with `wameter rates import FILE`"
        ));
        text
    }
}

/// A card and the span it covers, for messages.
fn card_span(card: &RateCard, end: Option<Date>) -> String {
    match end {
        Some(end) => format!("{} ({} to {end})", card.id, card.effective),
        None => format!("{} (from {})", card.id, card.effective),
    }
}

/// A set of rate cards from which the one in force is chosen.
#[derive(Clone, Debug, Default)]
pub struct RateBook {
    cards: Vec<RateCard>,
}

impl RateBook {
    /// The cards shipped with wameter.
    pub fn builtin() -> RateBook {
        let cards = builtin::builtin_cards()
            .iter()
            .map(|card| builtin::parse_builtin(card).expect("builtin cards parse (tested)"))
            .collect();
        RateBook::new(cards)
    }

    /// A book of the given cards. Cards without an explicit `until` end
    /// where the next card of the same currency and model begins.
    pub fn new(mut cards: Vec<RateCard>) -> RateBook {
        cards.sort_by_key(|c| (c.currency, c.model, c.effective));
        RateBook { cards }
    }

    /// All cards, sorted by currency, model and date.
    pub fn cards(&self) -> &[RateCard] {
        &self.cards
    }

    /// The card in force for a currency, model and business-local date.
    pub fn select(
        &self,
        currency: Currency,
        model: PricingModel,
        on: Date,
    ) -> Result<&RateCard, NoCardError> {
        let spans = self.spans(currency, model);
        let found = spans.iter().rev().find(|(card, _)| card.effective <= on);
        match found {
            Some((card, end)) if end.is_none_or(|end| on < end) => Ok(card),
            _ => Err(NoCardError {
                currency,
                date: on,
                model: model.as_str(),
                before: found.map(|(card, end)| card_span(card, *end)),
                after: spans
                    .iter()
                    .find(|(card, _)| card.effective > on)
                    .map(|(card, end)| card_span(card, *end)),
                any_in_currency: self.cards.iter().any(|c| c.currency == currency),
            }),
        }
    }

    /// The cards of a currency and model in date order, each with the
    /// first date it no longer covers (its `until`, or the next card's
    /// start; `None`: open-ended).
    pub fn spans(&self, currency: Currency, model: PricingModel) -> Vec<(&RateCard, Option<Date>)> {
        let same: Vec<&RateCard> = self
            .cards
            .iter()
            .filter(|c| c.currency == currency && c.model == model)
            .collect();
        same.iter()
            .enumerate()
            .map(|(index, card)| {
                let next = same.get(index + 1).map(|n| n.effective);
                let end = match (card.until, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (*card, end)
            })
            .collect()
    }
}

/// What a rate file turned out to be.
#[derive(Clone, Debug)]
pub enum RateFile {
    /// A rate card (Meta's "Rates (CSV)").
    Card(RateCard),
    /// Volume-tier bands (simple CSV or Meta's "Volume tiers (CSV)").
    Tiers(Vec<TierBand>),
    /// Calling API rates (`effective,currency,market,minutes_from,…`).
    CallRates(Vec<calling::CallBand>),
}

/// The layouts [`check_rate_file`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateFileLayout {
    /// Meta's "Rates (CSV)".
    MetaRates,
    /// Meta's "Volume tiers (CSV)".
    MetaTiers,
    /// `effective,currency,market,category,from,to,rate`.
    SimpleTiers,
    /// `effective,currency,market,minutes_from,minutes_to,rate_per_minute`.
    CallRates,
}

impl RateFileLayout {
    /// Tells the layouts apart from the text: the simple tier CSV starts with
    /// its header; Meta's tier file has `From` columns; anything else is read
    /// as a rate card.
    pub fn detect(text: &str) -> RateFileLayout {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let simple = first
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase()
            .replace(' ', "");
        if simple.starts_with("effective,currency,market") && simple.contains("minutes_from") {
            return RateFileLayout::CallRates;
        }
        if simple.starts_with("effective,currency,market") {
            return RateFileLayout::SimpleTiers;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        for record in reader.records().take(20).flatten() {
            let names: Vec<String> = record.iter().map(normalise_header).collect();
            if names
                .first()
                .is_some_and(|n| n == "market" || n.starts_with("market ("))
            {
                return if names.iter().any(|n| n == "from") {
                    RateFileLayout::MetaTiers
                } else {
                    RateFileLayout::MetaRates
                };
            }
        }
        RateFileLayout::MetaRates
    }

    /// A short name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            RateFileLayout::MetaRates => "Meta rate card",
            RateFileLayout::MetaTiers => "Meta volume tiers",
            RateFileLayout::SimpleTiers => "volume tiers (simple CSV)",
            RateFileLayout::CallRates => "calling rates",
        }
    }
}

/// Reads any rate file leniently, whatever its layout.
pub fn check_rate_file(name: &str, text: &str) -> (RateFileLayout, Checked<RateFile>) {
    let layout = RateFileLayout::detect(text);
    let checked = match layout {
        RateFileLayout::MetaRates => {
            let Checked { value, problems } = RateCard::check_meta_csv(name, text);
            Checked {
                value: value.map(RateFile::Card),
                problems,
            }
        }
        RateFileLayout::MetaTiers => {
            let Checked { value, problems } = TierBook::check_meta_csv(name, text);
            Checked {
                value: value.map(RateFile::Tiers),
                problems,
            }
        }
        RateFileLayout::SimpleTiers => {
            let Checked { value, problems } = TierBook::check_simple_csv(name, text);
            Checked {
                value: value.map(RateFile::Tiers),
                problems,
            }
        }
        RateFileLayout::CallRates => {
            let Checked { value, problems } = calling::CallRateBook::check_csv(name, text);
            Checked {
                value: value.map(RateFile::CallRates),
                problems,
            }
        }
    };
    (layout, checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

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
        assert_eq!(
            card.rate("India", PricingCategory::AuthenticationInternational)
                .unwrap()
                .to_string(),
            "0.0280"
        );
        assert!(
            card.rate("Argentina", PricingCategory::AuthenticationInternational)
                .unwrap_err()
                .contains("n/a")
        );
        assert!(
            card.rate("Brazil", PricingCategory::Marketing)
                .unwrap_err()
                .contains("no row")
        );
    }

    #[test]
    fn meta_layout_two_rate_2022_card() {
        let text = "Cost per conversation in EUR, effective February 1, 2022,,\nMarket,Currency,Business-initiated,User-initiated\nBrazil,€,0.0414,0.0248\n";
        let card = RateCard::parse_meta_csv("eur.csv", text).unwrap();
        assert_eq!(card.model, PricingModel::Cbp);
        assert_eq!(
            card.rate("Brazil", PricingCategory::BusinessInitiated)
                .unwrap()
                .to_string(),
            "0.0414"
        );
    }

    #[test]
    fn meta_layout_errors_name_row_and_column() {
        let bad = META_PMP.replace("0.0118", "-0.01");
        let error = RateCard::parse_meta_csv("usd.csv", &bad).unwrap_err();
        assert_eq!((error.row, error.column.as_deref()), (7, Some("marketing")));
        let bad = META_PMP.replace("$US,0.0618", "XX$,0.0618");
        let error = RateCard::parse_meta_csv("usd.csv", &bad).unwrap_err();
        assert!(
            error.to_string().contains("unknown currency token `XX$`"),
            "{error}"
        );
        let bad = format!("{META_PMP}India,$US,0.1,0.1,0.1,0.1,n/a\n");
        assert!(
            RateCard::parse_meta_csv("usd.csv", &bad)
                .unwrap_err()
                .message
                .contains("twice")
        );
        let bad = META_PMP.replace("effective July 1, 2026", "from July");
        assert!(
            RateCard::parse_meta_csv("usd.csv", &bad)
                .unwrap_err()
                .message
                .contains("effective")
        );
    }

    #[test]
    fn builtin_cards_reproduce_their_files() {
        let book = RateBook::builtin();
        assert_eq!(book.cards().len(), 12);
        let usd = book
            .select(Currency::USD, PricingModel::Pmp, date(2026, 2, 1))
            .unwrap();
        assert_eq!(usd.id, "usd-2026-01-01");
        assert_eq!(
            usd.rate("Brazil", PricingCategory::Marketing)
                .unwrap()
                .to_string(),
            "0.0625"
        );
        assert_eq!(
            usd.rate("Indonesia", PricingCategory::AuthenticationInternational)
                .unwrap()
                .to_string(),
            "0.136"
        );
        assert!(
            usd.rate("Brazil", PricingCategory::Service)
                .unwrap_err()
                .contains("not captured")
        );
        let eur = book
            .select(
                Currency::parse("EUR").unwrap(),
                PricingModel::Cbp,
                date(2022, 3, 1),
            )
            .unwrap();
        assert_eq!(
            eur.rate("Russia", PricingCategory::BusinessInitiated)
                .unwrap(),
            eur.markets["Russia"].business_initiated.unwrap()
        );
        assert!(eur.markets.contains_key("Rest of Latin America"));
    }

    #[test]
    fn every_builtin_market_name_resolves_in_the_market_table_on_its_date() {
        let table = crate::market::MarketTable::builtin();
        for card in RateBook::builtin().cards() {
            let markets = table.markets_on(card.effective);
            let names: Vec<&str> = markets.iter().map(|m| &**m).collect();
            for market in card.markets.keys() {
                assert!(
                    names.contains(&market.as_str()),
                    "{}: market `{market}` is not in the table for {}",
                    card.id,
                    card.effective
                );
            }
            // And the other way round: no market of the table lacks a row,
            // unless the card says it lacks it (a partial card).
            for market in &names {
                assert!(
                    card.markets.contains_key(*market)
                        || card.missing_markets.iter().any(|m| m == market),
                    "{}: no row for `{market}`",
                    card.id
                );
            }
        }
    }

    #[test]
    fn selection_never_guesses_past_a_known_change() {
        let book = RateBook::builtin();
        // The 2024-10 USD CBP card ends where Meta changed authentication rates.
        assert!(
            book.select(Currency::USD, PricingModel::Cbp, date(2025, 1, 31))
                .is_ok()
        );
        let error = book
            .select(Currency::USD, PricingModel::Cbp, date(2025, 2, 1))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the latest before it is usd-2024-10-01 (2024-10-01 to 2025-02-01)"),
            "{error}"
        );
        let error = book
            .select(Currency::USD, PricingModel::Cbp, date(2024, 8, 1))
            .unwrap_err()
            .to_string();
        assert!(error.contains("the nearest are usd-2023-06-01 (2023-06-01 to 2024-06-01) before it and usd-2024-10-01 (2024-10-01 to 2025-02-01) after it"), "{error}");
        assert!(
            error.contains("`--rates FILE`") && error.contains("`wameter rates import FILE`"),
            "{error}"
        );
        // The 2023 card ends where Meta added Indonesia's authentication-international rate.
        assert_eq!(
            book.select(Currency::USD, PricingModel::Cbp, date(2024, 5, 31))
                .unwrap()
                .id,
            "usd-2023-06-01"
        );
        assert!(
            book.select(Currency::USD, PricingModel::Cbp, date(2024, 6, 1))
                .is_err()
        );
        // Every USD per-message date has a card, one after the other.
        for (on, id) in [
            (date(2025, 7, 1), "usd-2025-07-01"),
            (date(2025, 9, 30), "usd-2025-07-01"),
            (date(2025, 10, 1), "usd-2025-10-01"),
            (date(2026, 1, 1), "usd-2026-01-01"),
            (date(2026, 4, 1), "usd-2026-04-01"),
            (date(2026, 7, 1), "usd-2026-07-01"),
            (date(2026, 12, 1), "usd-2026-10-01"),
        ] {
            assert_eq!(
                book.select(Currency::USD, PricingModel::Pmp, on)
                    .unwrap()
                    .id,
                id,
                "{on}"
            );
        }
        let brl = book
            .select(
                Currency::parse("BRL").unwrap(),
                PricingModel::Pmp,
                date(2026, 12, 1),
            )
            .unwrap_err();
        assert!(brl.to_string().contains("no cards in that currency"));
    }

    #[test]
    fn user_cards_run_until_the_next_one() {
        let a = RateCard::parse_meta_csv("a.csv", META_PMP).unwrap();
        let b = RateCard::parse_meta_csv(
            "b.csv",
            &META_PMP.replace("July 1, 2026", "October 1, 2026"),
        )
        .unwrap();
        let book = RateBook::new(vec![b, a]);
        assert_eq!(
            book.select(Currency::USD, PricingModel::Pmp, date(2026, 9, 30))
                .unwrap()
                .id,
            "a.csv"
        );
        assert_eq!(
            book.select(Currency::USD, PricingModel::Pmp, date(2026, 10, 1))
                .unwrap()
                .id,
            "b.csv"
        );
    }

    #[test]
    fn tier_bands_are_graduated_and_inclusive() {
        let text = "effective,currency,market,category,from,to,rate\n\
2026-01-01,USD,India,utility,0,2,0.0014\n\
2026-01-01,USD,India,utility,3,5,0.0012\n\
2026-01-01,USD,India,utility,6,,0.0010\n";
        let book = TierBook::new(TierBook::parse_simple_csv("tiers.csv", text).unwrap());
        let rate = |n| {
            book.band(
                Currency::USD,
                "India",
                PricingCategory::Utility,
                date(2026, 1, 5),
                n,
            )
            .map(|b| (b.label(), b.rate.to_string()))
        };
        assert_eq!(rate(1), Some(("0:2".into(), "0.0014".into())));
        assert_eq!(rate(2), Some(("0:2".into(), "0.0014".into())));
        assert_eq!(rate(3), Some(("3:5".into(), "0.0012".into())));
        assert_eq!(rate(1_000_000), Some(("6:MAX".into(), "0.0010".into())));
        assert_eq!(
            book.band(
                Currency::USD,
                "Brazil",
                PricingCategory::Utility,
                date(2026, 1, 5),
                1
            ),
            None
        );
        assert_eq!(
            book.band(
                Currency::USD,
                "India",
                PricingCategory::Utility,
                date(2025, 12, 31),
                1
            ),
            None
        );
        assert_eq!(
            book.band(
                Currency::USD,
                "India",
                PricingCategory::Authentication,
                date(2026, 1, 5),
                1
            ),
            None
        );
        let marketing = text.replace("utility", "marketing");
        assert_eq!(
            TierBook::parse_simple_csv("t.csv", &marketing)
                .unwrap_err()
                .column
                .as_deref(),
            Some("category")
        );
        let bad = text.replace("3,5,", "3,1,");
        assert_eq!(
            TierBook::parse_simple_csv("t.csv", &bad)
                .unwrap_err()
                .column
                .as_deref(),
            Some("to")
        );
    }

    #[test]
    fn check_reports_every_problem_with_row_and_column() {
        let bad = "Cost per message in USD on the WhatsApp Business Platform, effective July 1, 2026,,,,,,\n\
Market,Currency,Marketing,Utility,Authentication,\"Authentication-\nInternational\",Service\n\
Argentina,$US,0.0618,abc,0.0260,n/a,n/a\n\
India,₹,0.0118,0.0014,-0.0014,0.0280,n/a\n\
India,$US,0.0118,0.0014,0.0014,0.0280,n/a\n\
Rusia,$US,0.0118,0.0014,0.0014,n/a,n/a\n\
Atlantis,XX$,1,1,1,n/a,n/a\n";
        let checked = RateCard::check_meta_csv("bad.csv", bad);
        let errors: Vec<(u64, Option<&str>, &str)> = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| (p.row, p.column.as_deref(), p.message.as_str()))
            .collect();
        // Physical lines: the header spans lines 2-3, so Argentina is line 4.
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert_eq!((errors[0].0, errors[0].1), (4, Some("utility")));
        assert!(errors[0].2.contains("`abc` is not a decimal rate"));
        assert_eq!((errors[1].0, errors[1].1), (5, Some("Currency")));
        assert!(errors[1].2.contains("INR differs from USD"));
        assert_eq!((errors[2].0, errors[2].1), (5, Some("authentication")));
        assert!(errors[2].2.contains("negative"));
        // The duplicate India row is reported too (first on row 5).
        assert_eq!((errors[3].0, errors[3].1), (6, Some("Market")));
        assert!(errors[3].2.contains("appears twice (first on row 5)"));
        assert_eq!((errors[4].0, errors[4].1), (8, Some("Currency")));
        let warnings: Vec<&str> = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .map(|p| p.message.as_str())
            .collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`Rusia` read as Meta's `Russia`")),
            "{warnings:#?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`Atlantis` is not one of Meta's markets"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w
                    .contains("no row for 35 of Meta's 38 markets on 2026-07-01 (Brazil, Chile,")),
            "{warnings:#?}"
        );
        assert!(checked.has_errors());
        assert!(checked.into_result().is_err());
    }

    #[test]
    fn a_complete_card_checks_clean_and_thousands_separators_read() {
        // Every market of 2026-07-01 at one rate: no warnings at all.
        let markets = crate::market::MarketTable::builtin().markets_on(date(2026, 7, 1));
        let mut text = String::from(
            "Cost per message in IDR on the WhatsApp Business Platform, effective July 1, 2026,,,,,,\n\
Market,Currency,Marketing,Utility,Authentication,\"Authentication-\nInternational\",Service\n",
        );
        for market in &markets {
            text.push_str(&format!("{market},RP,\"1,940.13\",356.10,356.10,n/a,n/a\n"));
        }
        let checked = RateCard::check_meta_csv("idr.csv", &text);
        assert!(checked.problems.is_empty(), "{:#?}", checked.problems);
        let card = checked.value.unwrap();
        assert_eq!(card.currency.code(), "IDR");
        assert_eq!(
            card.rate("Brazil", PricingCategory::Marketing)
                .unwrap()
                .to_string(),
            "1940.13"
        );
        // `1,5` is not a grouped number: still an error.
        assert!(parse_rate_cell("1,5").is_err());
        assert_eq!(
            parse_rate_cell("2 000.5").unwrap().unwrap().to_string(),
            "2000.5"
        );
    }

    #[test]
    fn layouts_are_told_apart() {
        assert_eq!(RateFileLayout::detect(META_PMP), RateFileLayout::MetaRates);
        assert_eq!(
            RateFileLayout::detect("effective,currency,market,category,from,to,rate\n"),
            RateFileLayout::SimpleTiers
        );
        let meta_tiers = "Volume tiers in USD, effective July 1, 2025,,\n\"Market (per\nrate card)\",Currency,From,To,Rate type,Rate\n";
        assert_eq!(
            RateFileLayout::detect(meta_tiers),
            RateFileLayout::MetaTiers
        );
    }
}
