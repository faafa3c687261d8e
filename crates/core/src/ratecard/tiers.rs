//! Volume tiers: graduated per-message rates for utility and authentication
//! (PMP, from 2025-07-01; docs/rules.md §7.4).
//!
//! Two layouts load:
//! - the simple CSV of interfaces §3, one band per row:
//!   `effective,currency,market,category,from,to,rate`;
//! - Meta's published "Volume tiers (CSV)" (docs/rules.md §12.1): title with
//!   the currency and `effective <Month D, YYYY>`, a URL note, a row of group
//!   headers (`Utility`, `Authentication`, `Authentication-International`),
//!   sub-headers (`Messages per month`, `What we charge`), then the column
//!   header `Market (per rate card)`, `Currency` and, per group, `From`, `To`,
//!   `Rate type`, `Rate`, `vs. List rate`. The market name is printed only on
//!   the first row of its block, `--` is an open upper bound, `n/a` fills
//!   groups that do not apply, and large-currency numbers carry thousands
//!   separators (`1,940.13`).
//!
//! The reader finds groups and columns by their names rather than by fixed
//! positions, and tolerates missing sub-header rows, reordered or added
//! columns and absent `Rate type` / `vs. List rate` columns, so a later
//! table that adds a column or a market still reads. It is tested on Meta's
//! real April 2026 file (`data/ratecards/meta-raw_…_volume-tiers.csv`).

use std::collections::BTreeMap;

use jiff::civil::Date;
use rust_decimal::Decimal;

use super::{
    Checked, Problems, canonical_market_name, currency_in, effective_date_in, is_no_rate,
    joined_line, normalise_header, parse_rate_cell,
};
use crate::category::PricingCategory;
use crate::market::MarketTable;
use crate::money::Currency;
use crate::money::strip_thousands_separators;

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

    /// Whether the `message_number`-th message of the month falls in the band.
    pub fn contains(&self, message_number: u64) -> bool {
        self.from.max(1) <= message_number && self.to.is_none_or(|to| message_number <= to)
    }
}

/// Volume-tier bands from tier files.
#[derive(Clone, Debug, Default)]
pub struct TierBook {
    bands: Vec<TierBand>,
}

/// Reads a message count such as `750001`, `750,001` or `--` (open).
fn parse_count(cell: &str) -> Result<Option<u64>, String> {
    let cell = cell.trim();
    if cell == "--" || cell.eq_ignore_ascii_case("max") || cell.is_empty() {
        return Ok(None);
    }
    strip_thousands_separators(cell)
        .parse::<u64>()
        .map(Some)
        .map_err(|_| format!("`{cell}` is not a message count"))
}

/// A category a tier group can be about.
fn tier_category(header: &str) -> Option<PricingCategory> {
    match header {
        "utility" => Some(PricingCategory::Utility),
        "authentication" => Some(PricingCategory::Authentication),
        "authentication international" => Some(PricingCategory::AuthenticationInternational),
        _ => None,
    }
}

/// Checks that each (market, category) block of bands of one date is a
/// ladder: starts at the first message, each band starts right after the
/// previous one, only the last is open.
fn check_ladders(bands: &[(TierBand, u64)], problems: &mut Problems<'_>) {
    let mut blocks: BTreeMap<(Date, Currency, &str, &'static str), Vec<&(TierBand, u64)>> =
        BTreeMap::new();
    for entry in bands {
        let band = &entry.0;
        blocks
            .entry((
                band.effective,
                band.currency,
                &band.market,
                band.category.as_str(),
            ))
            .or_default()
            .push(entry);
    }
    for ((_, _, market, category), mut block) in blocks {
        block.sort_by_key(|(band, _)| band.from);
        let (first, row) = block[0];
        if first.from > 1 {
            problems.error(
                *row,
                Some("from"),
                format!(
                    "{market} {category}: the first band starts at {} instead of 0 or 1",
                    first.from
                ),
            );
        }
        for pair in block.windows(2) {
            let ((previous, _), (next, row)) = (pair[0], pair[1]);
            match previous.to {
                None => problems.error(
                    *row,
                    Some("from"),
                    format!(
                        "{market} {category}: band {} follows the open-ended band {}",
                        next.label(),
                        previous.label()
                    ),
                ),
                Some(to) if next.from.max(1) != to + 1 => problems.error(
                    *row,
                    Some("from"),
                    format!(
                        "{market} {category}: band {} does not start right after band {} ({})",
                        next.label(),
                        previous.label(),
                        if next.from.max(1) <= to {
                            "overlap"
                        } else {
                            "gap"
                        }
                    ),
                ),
                Some(_) => {}
            }
        }
        let (last, row) = block[block.len() - 1];
        if last.to.is_some() {
            problems.warning(*row, Some("to"), format!(
                "{market} {category}: the last band {} is not open-ended; messages past it pay the card's list rate",
                last.label()
            ));
        }
    }
}

fn check_markets(bands: &[(TierBand, u64)], problems: &mut Problems<'_>) {
    let mut reported = std::collections::BTreeSet::new();
    let mut known: BTreeMap<Date, std::collections::BTreeSet<crate::market::Market>> =
        BTreeMap::new();
    for (band, row) in bands {
        let known = known
            .entry(band.effective)
            .or_insert_with(|| MarketTable::builtin().markets_on(band.effective));
        if !known.contains(band.market.as_str()) && reported.insert(band.market.clone()) {
            problems.warning(
                *row,
                Some("market"),
                format!(
                    "`{}` is not one of Meta's markets on {}; its bands will never be used",
                    band.market, band.effective
                ),
            );
        }
    }
}

impl TierBook {
    /// The tier table shipped with wameter: Meta's April 1, 2026 USD
    /// "Volume tiers (CSV)", byte for byte (`builtin::TIERS_SOURCE`). It
    /// applies from its date on, to each message whose card prints the
    /// same list rate as the table (see `Engine`'s settle step).
    pub fn builtin() -> TierBook {
        TierBook::new(super::builtin::builtin_tiers())
    }

    /// A book of these bands.
    pub fn new(mut bands: Vec<TierBand>) -> TierBook {
        // Sorted so that a (currency, market, category) ladder is one range
        // found by binary search: every tiered charge asks for one.
        bands.sort_by(|a, b| {
            (a.currency, &a.market, a.category, a.effective, a.from).cmp(&(
                b.currency,
                &b.market,
                b.category,
                b.effective,
                b.from,
            ))
        });
        TierBook { bands }
    }

    /// The bands of one (currency, market, category), all dates, sorted by
    /// date then first message.
    fn bands_of(&self, currency: Currency, market: &str, category: PricingCategory) -> &[TierBand] {
        fn key(band: &TierBand) -> (Currency, &str, PricingCategory) {
            (band.currency, band.market.as_str(), band.category)
        }
        let start = self
            .bands
            .partition_point(|band| key(band) < (currency, market, category));
        let end = start
            + self.bands[start..].partition_point(|band| key(band) == (currency, market, category));
        &self.bands[start..end]
    }

    /// True when no band is loaded.
    pub fn is_empty(&self) -> bool {
        self.bands.is_empty()
    }

    /// All bands, in load order.
    pub fn bands(&self) -> &[TierBand] {
        &self.bands
    }

    /// Parses the simple tier CSV (interfaces §3); the first error fails.
    pub fn parse_simple_csv(name: &str, text: &str) -> Result<Vec<TierBand>, super::RateFileError> {
        TierBook::check_simple_csv(name, text)
            .into_result()
            .map(|(bands, _)| bands)
    }

    /// Reads the simple tier CSV, `effective,currency,market,category,from,to,rate`,
    /// and reports every problem.
    pub fn check_simple_csv(name: &str, text: &str) -> Checked<Vec<TierBand>> {
        let mut problems = Problems::new(name);
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = match reader.headers() {
            Ok(headers) => headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            Err(error) => {
                problems.error(1, None, format!("not valid CSV: {error}"));
                return problems.finish(None);
            }
        };
        let expected = [
            "effective",
            "currency",
            "market",
            "category",
            "from",
            "to",
            "rate",
        ];
        let mut index = [0; 7];
        for (slot, column) in index.iter_mut().zip(expected) {
            match headers.iter().position(|h| h == column) {
                Some(found) => *slot = found,
                None => problems.error(
                    1,
                    Some(column),
                    format!(
                        "missing column `{column}` (expected {})",
                        expected.join(",")
                    ),
                ),
            }
        }
        if !problems.found.is_empty() {
            return problems.finish(None);
        }
        let mut bands = Vec::new();
        for record in reader.records() {
            let Some((row, record)) = problems.record(record) else {
                continue;
            };
            let cell = |i: usize| record.get(index[i]).unwrap_or("");
            let before = problems.found.len();
            let effective = cell(0)
                .parse::<Date>()
                .map_err(|_| format!("`{}` is not a YYYY-MM-DD date", cell(0)));
            let currency =
                Currency::parse(cell(1)).ok_or_else(|| format!("unknown currency `{}`", cell(1)));
            let market = canonical_market_name(cell(2)).to_string();
            if market.is_empty() {
                problems.error(row, Some("market"), "empty market".into());
            }
            let category = match PricingCategory::parse(cell(3)) {
                Some(category) if category.tier_family().is_some() => Ok(category),
                _ => Err(format!(
                    "`{}` has no volume tiers (utility, authentication, authentication_international)",
                    cell(3)
                )),
            };
            let from = parse_count(cell(4))
                .and_then(|f| f.ok_or_else(|| "missing first message number".to_string()));
            let to = parse_count(cell(5));
            let rate =
                parse_rate_cell(cell(6)).and_then(|r| r.ok_or_else(|| "missing rate".to_string()));
            for (column, result) in [
                ("effective", effective.as_ref().err()),
                ("currency", currency.as_ref().err()),
                ("category", category.as_ref().err()),
                ("from", from.as_ref().err()),
                ("to", to.as_ref().err()),
                ("rate", rate.as_ref().err()),
            ] {
                if let Some(message) = result {
                    problems.error(row, Some(column), message.clone());
                }
            }
            if problems.found.len() > before {
                continue;
            }
            let band = TierBand {
                effective: effective.expect("checked"),
                currency: currency.expect("checked"),
                market,
                category: category.expect("checked"),
                from: from.expect("checked"),
                to: to.expect("checked"),
                rate: rate.expect("checked"),
            };
            if band.to.is_some_and(|to| to < band.from.max(1)) {
                problems.error(
                    row,
                    Some("to"),
                    format!(
                        "band ends ({}) before it starts ({})",
                        band.to.unwrap_or(0),
                        band.from
                    ),
                );
                continue;
            }
            bands.push((band, row));
        }
        check_ladders(&bands, &mut problems);
        check_markets(&bands, &mut problems);
        problems.finish(Some(bands.into_iter().map(|(band, _)| band).collect()))
    }

    /// Parses Meta's "Volume tiers (CSV)" layout; the first error fails.
    pub fn parse_meta_csv(name: &str, text: &str) -> Result<Vec<TierBand>, super::RateFileError> {
        TierBook::check_meta_csv(name, text)
            .into_result()
            .map(|(bands, _)| bands)
    }

    /// Reads Meta's "Volume tiers (CSV)" layout (module docs) and reports
    /// every problem.
    pub fn check_meta_csv(name: &str, text: &str) -> Checked<Vec<TierBand>> {
        let mut problems = Problems::new(name);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut preamble: Vec<Vec<String>> = Vec::new();
        let mut title: Option<(String, u64)> = None;
        let mut layout: Option<Layout> = None;
        let mut bands: Vec<(TierBand, u64)> = Vec::new();
        let mut market: Option<String> = None;
        let mut currency: Option<Currency> = None;
        let mut effective: Option<Date> = None;
        let mut title_currency: Option<Currency> = None;
        for record in reader.records() {
            let Some((row, record)) = problems.record(record) else {
                continue;
            };
            let cells: Vec<&str> = record.iter().map(str::trim).collect();
            if cells.iter().all(|c| c.is_empty()) {
                continue;
            }
            let Some(layout) = &layout else {
                let first = normalise_header(cells[0]);
                if first == "market" || first.starts_with("market (") {
                    let found = Layout::find(&cells, &preamble, row, &mut problems);
                    let Some((title_text, title_row)) = &title else {
                        problems.error(
                            1,
                            None,
                            "no title row with `effective <Month D, YYYY>` was found".into(),
                        );
                        return problems.finish(None);
                    };
                    effective = effective_date_in(title_text);
                    if effective.is_none() {
                        problems.error(*title_row, None, format!("cannot read the effective date in `{title_text}` (expected `effective <Month D, YYYY>`)"));
                        return problems.finish(None);
                    }
                    title_currency = currency_in(title_text);
                    match found {
                        Some(found) => layout = Some(found),
                        None => return problems.finish(None),
                    }
                } else {
                    if title.is_none()
                        && joined_line(&cells)
                            .to_ascii_lowercase()
                            .contains("effective")
                    {
                        title = Some((joined_line(&cells), row));
                    }
                    preamble.push(cells.iter().map(|c| c.to_string()).collect());
                }
                continue;
            };
            let effective = effective.expect("read with the header");
            if !cells[0].is_empty() {
                market = Some(canonical_market_name(cells[0]).to_string());
                // A new block: its currency is its own or the title's.
                currency = None;
            }
            let Some(market) = &market else {
                problems.error(
                    row,
                    Some("Market"),
                    "a band row before any market name".into(),
                );
                continue;
            };
            if let Some(index) = layout.currency {
                let cell = cells.get(index).copied().unwrap_or("");
                if !cell.is_empty() {
                    match Currency::parse(cell) {
                        Some(found) => currency = Some(found),
                        None => problems.error(
                            row,
                            Some("Currency"),
                            format!("unknown currency token `{cell}`"),
                        ),
                    }
                }
            }
            let Some(currency) = currency.or(title_currency) else {
                problems.error(
                    row,
                    Some("Currency"),
                    "no currency: neither the title nor the Currency column names one".into(),
                );
                continue;
            };
            for group in &layout.groups {
                let cell =
                    |index: Option<usize>| index.and_then(|i| cells.get(i).copied()).unwrap_or("");
                let (from, to, rate) = (cell(Some(group.from)), cell(group.to), cell(group.rate));
                if is_no_rate(from) && is_no_rate(rate) {
                    continue; // `n/a` group, or a market with fewer bands here.
                }
                let column = |suffix: &str| format!("{} {suffix}", group.category);
                let from = match parse_count(from) {
                    Ok(Some(from)) => from,
                    Ok(None) => {
                        problems.error(
                            row,
                            Some(&column("From")),
                            "missing first message number".into(),
                        );
                        continue;
                    }
                    Err(message) => {
                        problems.error(row, Some(&column("From")), message);
                        continue;
                    }
                };
                let to = match parse_count(to) {
                    Ok(to) => to,
                    Err(message) => {
                        problems.error(row, Some(&column("To")), message);
                        continue;
                    }
                };
                let rate = match parse_rate_cell(rate) {
                    Ok(Some(rate)) => rate,
                    Ok(None) => {
                        problems.error(row, Some(&column("Rate")), "missing rate".into());
                        continue;
                    }
                    Err(message) => {
                        problems.error(row, Some(&column("Rate")), message);
                        continue;
                    }
                };
                if let Some(index) = group.discount {
                    let discount = cell(Some(index));
                    if !discount.is_empty()
                        && !is_no_rate(discount)
                        && discount
                            .trim_end_matches('%')
                            .trim()
                            .parse::<Decimal>()
                            .is_err()
                    {
                        problems.warning(
                            row,
                            Some(&column("vs. List rate")),
                            format!("`{discount}` is not a percentage"),
                        );
                    }
                }
                if to.is_some_and(|to| to < from.max(1)) {
                    problems.error(
                        row,
                        Some(&column("To")),
                        format!("band ends ({}) before it starts ({from})", to.unwrap_or(0)),
                    );
                    continue;
                }
                let band = TierBand {
                    effective,
                    currency,
                    market: market.clone(),
                    category: group.category,
                    from,
                    to,
                    rate,
                };
                bands.push((band, row));
            }
        }
        if layout.is_none() {
            problems.error(
                0,
                None,
                "no column header row starting with `Market` was found".into(),
            );
            return problems.finish(None);
        }
        if bands.is_empty() {
            problems.error(0, None, "the file has no tier bands".into());
        }
        check_ladders(&bands, &mut problems);
        check_markets(&bands, &mut problems);
        problems.finish(Some(bands.into_iter().map(|(band, _)| band).collect()))
    }

    /// The band for a message priced in `category` that is the
    /// `message_number`-th charged message of its family this month.
    /// Only bands of the latest effective date ≤ `on` count, so a new tier
    /// table replaces the old one rather than mixing with it.
    pub fn band(
        &self,
        currency: Currency,
        market: &str,
        category: PricingCategory,
        on: Date,
        message_number: u64,
    ) -> Option<&TierBand> {
        self.ladder(currency, market, category, on)
            .iter()
            .find(|b| b.contains(message_number))
    }

    /// The bands in force for a currency, market and category on a date,
    /// lowest first.
    pub fn ladder(
        &self,
        currency: Currency,
        market: &str,
        category: PricingCategory,
        on: Date,
    ) -> &[TierBand] {
        // Sorted by date: the table in force is the run of the latest date
        // not after `on`.
        let bands = self.bands_of(currency, market, category);
        let end = bands.partition_point(|b| b.effective <= on);
        let Some(latest) = end.checked_sub(1).map(|last| bands[last].effective) else {
            return &[];
        };
        let start = bands[..end].partition_point(|b| b.effective < latest);
        &bands[start..end]
    }
}

/// One `From … vs. List rate` group of Meta's tier layout.
#[derive(Debug)]
struct Group {
    category: PricingCategory,
    from: usize,
    to: Option<usize>,
    rate: Option<usize>,
    discount: Option<usize>,
}

/// Where things are in Meta's tier layout, found from the header rows.
#[derive(Debug)]
struct Layout {
    currency: Option<usize>,
    groups: Vec<Group>,
}

impl Layout {
    /// Finds the groups in the column header row; their categories come from
    /// the group-header row above (the cell at or before the group's first
    /// column), or from Meta's order when no such row exists.
    fn find(
        header: &[&str],
        preamble: &[Vec<String>],
        row: u64,
        problems: &mut Problems<'_>,
    ) -> Option<Layout> {
        let names: Vec<String> = header.iter().map(|c| normalise_header(c)).collect();
        let currency = names.iter().position(|n| n == "currency");
        let starts: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| *n == "from")
            .map(|(i, _)| i)
            .collect();
        if starts.is_empty() {
            problems.error(row, None, "the column header has no `From` column".into());
            return None;
        }
        let labelled = |start: usize, end: usize| -> Option<PricingCategory> {
            preamble.iter().rev().find_map(|cells| {
                // Merged header cells are written in their first column, which
                // may sit a little before the group's `From`.
                let lower = start.saturating_sub(1).max(currency.map_or(1, |c| c + 1));
                (lower..end).find_map(|i| {
                    cells
                        .get(i)
                        .and_then(|c| tier_category(&normalise_header(c)))
                })
            })
        };
        let default_order = [
            PricingCategory::Utility,
            PricingCategory::Authentication,
            PricingCategory::AuthenticationInternational,
        ];
        let mut groups = Vec::new();
        for (number, start) in starts.iter().enumerate() {
            let end = starts.get(number + 1).copied().unwrap_or(names.len());
            let within =
                |wanted: &[&str]| (*start..end).find(|i| wanted.contains(&names[*i].as_str()));
            let category = match labelled(*start, end) {
                Some(category) => category,
                None => match default_order.get(number) {
                    Some(category) => {
                        problems.warning(row, Some(header[*start]), format!(
                            "no group header names the category of the group starting at column {}; assumed {} (Meta's order)",
                            start + 1,
                            category
                        ));
                        *category
                    }
                    None => {
                        problems.error(
                            row,
                            Some(header[*start]),
                            format!(
                                "cannot tell which category the group at column {} is for",
                                start + 1
                            ),
                        );
                        return None;
                    }
                },
            };
            let rate = within(&["rate", "what we charge"]);
            if rate.is_none() {
                problems.error(
                    row,
                    Some(header[*start]),
                    format!("the {category} group has no `Rate` column"),
                );
                return None;
            }
            groups.push(Group {
                category,
                from: *start,
                to: within(&["to"]),
                rate,
                discount: within(&["vs. list rate", "vs list rate"]),
            });
        }
        Some(Layout { currency, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratecard::{RateFileLayout, Severity};
    use jiff::civil::date;

    /// Built by us from the layout description: no real Meta tier file was
    /// available (the file's second row says so too).
    const CONSTRUCTED: &str =
        include_str!("testdata/constructed_meta-volume-tiers_USD_2025-07-01.csv");

    fn labels(
        bands: &[TierBand],
        market: &str,
        category: PricingCategory,
    ) -> Vec<(String, String)> {
        bands
            .iter()
            .filter(|b| b.market == market && b.category == category)
            .map(|b| (b.label(), b.rate.to_string()))
            .collect()
    }

    #[test]
    fn meta_layout_constructed_from_its_description() {
        assert_eq!(
            RateFileLayout::detect(CONSTRUCTED),
            RateFileLayout::MetaTiers
        );
        let checked = TierBook::check_meta_csv("tiers.csv", CONSTRUCTED);
        assert!(checked.problems.is_empty(), "{:#?}", checked.problems);
        let bands = checked.value.unwrap();
        assert_eq!(bands.len(), 16);
        assert!(
            bands
                .iter()
                .all(|b| b.effective == date(2025, 7, 1) && b.currency == Currency::USD)
        );
        assert_eq!(
            labels(&bands, "India", PricingCategory::Utility),
            [
                ("0:250000".to_string(), "0.0014".to_string()),
                ("250001:2000000".to_string(), "0.00133".to_string()),
                ("2000001:MAX".to_string(), "0.00126".to_string()),
            ]
        );
        assert_eq!(
            labels(
                &bands,
                "India",
                PricingCategory::AuthenticationInternational
            ),
            [
                ("0:250000".to_string(), "0.0280".to_string()),
                ("250001:MAX".to_string(), "0.0266".to_string()),
            ]
        );
        // Continuation rows inherit the market; `n/a` groups yield nothing.
        assert_eq!(
            labels(&bands, "Rest of Africa", PricingCategory::Authentication).len(),
            2
        );
        assert!(
            labels(
                &bands,
                "Brazil",
                PricingCategory::AuthenticationInternational
            )
            .is_empty()
        );
        let book = TierBook::new(bands);
        let band = |n| {
            book.band(
                Currency::USD,
                "India",
                PricingCategory::Utility,
                date(2025, 8, 1),
                n,
            )
            .unwrap()
            .label()
        };
        assert_eq!(
            (band(250_000), band(250_001), band(2_000_001)),
            (
                "0:250000".into(),
                "250001:2000000".into(),
                "2000001:MAX".into()
            )
        );
    }

    #[test]
    fn meta_layout_tolerates_missing_header_rows_and_columns() {
        // No group-header or sub-header rows, no `Rate type`/`vs. List rate`,
        // the market on every row, INR rates with thousands separators.
        let text = "Volume tiers in INR, effective October 1, 2025\n\
Market,Currency,From,To,Rate,From,To,Rate\n\
India,₹,0,\"250,000\",0.1150,0,\"250,000\",0.1150\n\
India,₹,\"250,001\",--,0.1093,\"250,001\",--,\"1,093.00\"\n";
        let checked = TierBook::check_meta_csv("inr.csv", text);
        assert!(!checked.has_errors(), "{:#?}", checked.problems);
        // Two warnings: the groups' categories were assumed from Meta's order.
        assert_eq!(checked.problems.len(), 2);
        assert!(
            checked
                .problems
                .iter()
                .all(|p| p.severity == Severity::Warning && p.message.contains("Meta's order"))
        );
        let bands = checked.value.unwrap();
        assert_eq!(
            labels(&bands, "India", PricingCategory::Authentication)[1],
            ("250001:MAX".to_string(), "1093.00".to_string())
        );
        assert!(bands.iter().all(|b| b.currency.code() == "INR"));
    }

    #[test]
    fn meta_layout_problems_name_row_and_column() {
        let gap = CONSTRUCTED.replace(
            "\"250,001\",\"2,000,000\",Tier 1,0.00133,-5%,\"250,001\"",
            "\"260,001\",\"2,000,000\",Tier 1,0.00133,-5%,\"250,001\"",
        );
        let checked = TierBook::check_meta_csv("tiers.csv", &gap);
        let error = checked
            .problems
            .iter()
            .find(|p| p.severity == Severity::Error)
            .expect("a gap is an error");
        assert_eq!((error.row, error.column.as_deref()), (8, Some("from")));
        assert!(
            error.message.contains("India utility") && error.message.contains("gap"),
            "{error}"
        );

        let bad = CONSTRUCTED
            .replace("0.00646", "abc")
            .replace("\"750,001\",--,Tier 1,0.00646", "\"750,001\",--,Tier 1,abc");
        let checked = TierBook::check_meta_csv("tiers.csv", &bad);
        let columns: Vec<(u64, Option<&str>)> = checked
            .problems
            .iter()
            .map(|p| (p.row, p.column.as_deref()))
            .collect();
        assert!(columns.contains(&(11, Some("utility Rate"))), "{columns:?}");
        assert!(
            columns.contains(&(11, Some("authentication Rate"))),
            "{columns:?}"
        );

        let undated = CONSTRUCTED.replace(", effective July 1, 2025", "");
        let error = TierBook::parse_meta_csv("tiers.csv", &undated).unwrap_err();
        assert!(error.message.contains("effective"), "{error}");
    }

    #[test]
    fn simple_layout_reports_every_bad_cell() {
        let text = "effective,currency,market,category,from,to,rate\n\
2026-01-01,USD,India,utility,0,100,0.0014\n\
2026-13-01,XXXX,India,marketing,abc,100,-1\n\
2026-01-01,USD,India,utility,90,,0.0012\n";
        let checked = TierBook::check_simple_csv("t.csv", text);
        let row3: Vec<&str> = checked
            .problems
            .iter()
            .filter(|p| p.row == 3)
            .filter_map(|p| p.column.as_deref())
            .collect();
        assert_eq!(row3, ["effective", "currency", "category", "from", "rate"]);
        assert!(
            checked
                .problems
                .iter()
                .any(|p| p.row == 4 && p.message.contains("overlap"))
        );
    }
}
