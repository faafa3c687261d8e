//! Calling API rates: a per-minute rate for business-initiated calls, by
//! the callee's market, in monthly minute bands (docs/rules.md §14).
//!
//! One layout loads, the long one of interfaces §3 (`--call-rates`):
//! `effective,currency,market,minutes_from,minutes_to,rate_per_minute`,
//! one row per band, `minutes_to` empty for the open top band. Meta's own
//! calling CSV is published only as signed files whose content no public
//! source we could reach reproduces (`data/calling/PROVENANCE.md`), so its
//! layout is unknown; when one is found it gets a reader beside this one.
//!
//! The built-in rates are **fragments**: three markets transcribed by third
//! parties from Meta's files. A call to any other market is an error that
//! names the missing rate and the flag that supplies it.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::{Date, date};
use rust_decimal::Decimal;

use super::{Checked, Problems, canonical_market_name, parse_rate_cell};
use crate::market::MarketTable;
use crate::money::{Currency, strip_thousands_separators};

/// One minute band: the `minutes_from..=minutes_to` billed minutes of a
/// portfolio's month in a market pay `rate_per_minute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallBand {
    /// First business-local date the band applies to.
    pub effective: Date,
    /// Currency of the rate.
    pub currency: Currency,
    /// Meta market name.
    pub market: String,
    /// First minute of the band (0 and 1 both mean the first minute).
    pub minutes_from: u64,
    /// Last minute, inclusive; `None` = open-ended.
    pub minutes_to: Option<u64>,
    /// Rate per minute; a 6-second pulse costs a tenth of it.
    pub rate_per_minute: Decimal,
    /// Where the band was read (built-in file name, or the file given).
    pub source: Arc<str>,
    /// Whether the source is known to lack markets (every built-in file).
    pub partial: bool,
}

impl CallBand {
    /// `FROM:TO` in minutes (`0:50000`, `5000001:MAX`), as message tiers.
    pub fn label(&self) -> String {
        match self.minutes_to {
            Some(to) => format!("{}:{}", self.minutes_from, to),
            None => format!("{}:MAX", self.minutes_from),
        }
    }
}

/// Calling rates from call-rate files.
#[derive(Clone, Debug, Default)]
pub struct CallRateBook {
    bands: Vec<CallBand>,
}

/// A shipped calling-rate file.
struct BuiltinCallRates {
    file: &'static str,
    text: &'static str,
}

macro_rules! calling_file {
    ($file:literal) => {
        BuiltinCallRates {
            file: $file,
            text: include_str!(concat!("../../../../data/calling/", $file)),
        }
    };
}

/// The calling-rate fragments shipped with wameter (`data/calling/PROVENANCE.md`).
const BUILTIN: &[BuiltinCallRates] = &[
    calling_file!("research-note-idx70129610172_effective-2025-08-01_USD_partial.csv"),
    calling_file!("research-note-idx70129610172_effective-2026-07-01_USD_partial.csv"),
    calling_file!("research-note-idx70129610172_effective-2026-10-01_USD_partial.csv"),
    calling_file!("research-note-idx71648407047_effective-2026-10-01_USD_partial.csv"),
    calling_file!("pitchbot-code-idx66971791973_effective-2026-07-01_INR_partial.csv"),
];

/// The first day the Calling API could bill a call: it opened to all
/// businesses in July 2025; the first dated card is 2025-08-01.
pub const CALLING_FROM: Date = date(2025, 7, 1);

impl CallRateBook {
    /// The shipped fragments. They parse at every build's tests, so a
    /// failure here is a broken build, reported rather than panicking.
    pub fn builtin() -> CallRateBook {
        let mut bands = Vec::new();
        for file in BUILTIN {
            if let Some(read) = CallRateBook::check_csv(file.file, file.text).value {
                bands.extend(read.into_iter().map(|band| CallBand {
                    partial: true,
                    ..band
                }));
            }
        }
        CallRateBook::new(bands)
    }

    /// The shipped fragments, built once.
    pub fn builtin_ref() -> &'static CallRateBook {
        static BOOK: std::sync::LazyLock<CallRateBook> =
            std::sync::LazyLock::new(CallRateBook::builtin);
        &BOOK
    }

    /// A book of these bands (later files win over earlier ones for the same
    /// date, currency and market, as `--rates` does for cards).
    pub fn new(mut bands: Vec<CallBand>) -> CallRateBook {
        // Stable: within one (date, currency, market) the files' order stays.
        bands.sort_by(|a, b| {
            (a.currency, &a.market, a.effective).cmp(&(b.currency, &b.market, b.effective))
        });
        CallRateBook { bands }
    }

    /// Adds bands given on top of these: for a (date, currency, market) they
    /// name, theirs replace ours.
    pub fn with(&self, given: Vec<CallBand>) -> CallRateBook {
        let named: std::collections::BTreeSet<(Date, Currency, &str)> = given
            .iter()
            .map(|b| (b.effective, b.currency, b.market.as_str()))
            .collect();
        let mut bands: Vec<CallBand> = self
            .bands
            .iter()
            .filter(|b| !named.contains(&(b.effective, b.currency, b.market.as_str())))
            .cloned()
            .collect();
        bands.extend(given);
        CallRateBook::new(bands)
    }

    /// Every band, by currency, market and date.
    pub fn bands(&self) -> &[CallBand] {
        &self.bands
    }

    /// The bands in force for calls to `market` billed in `currency` on a
    /// business-local date: those of the latest effective date on or before
    /// it that names the market (empty when none does).
    pub fn ladder(&self, currency: Currency, market: &str, on: Date) -> &[CallBand] {
        let start = self
            .bands
            .partition_point(|b| (b.currency, b.market.as_str()) < (currency, market));
        let end = self
            .bands
            .partition_point(|b| (b.currency, b.market.as_str()) <= (currency, market));
        let block = &self.bands[start..end];
        let Some(latest) = block.iter().map(|b| b.effective).filter(|e| *e <= on).max() else {
            return &[];
        };
        let first = block.partition_point(|b| b.effective < latest);
        let last = block.partition_point(|b| b.effective <= latest);
        &block[first..last]
    }

    /// The latest date before or after `on` with rates for the market, to
    /// say what is missing.
    pub fn nearest(
        &self,
        currency: Currency,
        market: &str,
        on: Date,
    ) -> (Option<Date>, Option<Date>) {
        let dates = self
            .bands
            .iter()
            .filter(|b| b.currency == currency && b.market == market)
            .map(|b| b.effective);
        let before = dates.clone().filter(|d| *d <= on).max();
        let after = dates.filter(|d| *d > on).min();
        (before, after)
    }

    /// Parses a long-layout calling-rate file; the first error fails.
    pub fn parse_csv(name: &str, text: &str) -> Result<Vec<CallBand>, super::RateFileError> {
        CallRateBook::check_csv(name, text)
            .into_result()
            .map(|(bands, _)| bands)
    }

    /// Reads the long layout and reports every problem: unreadable cells,
    /// bands that overlap, leave a gap or follow an open band, markets Meta
    /// does not have on the date.
    pub fn check_csv(name: &str, text: &str) -> Checked<Vec<CallBand>> {
        let mut problems = Problems::new(name);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
        const COLUMNS: [&str; 6] = [
            "effective",
            "currency",
            "market",
            "minutes_from",
            "minutes_to",
            "rate_per_minute",
        ];
        let mut index = [0; 6];
        for (slot, column) in index.iter_mut().zip(COLUMNS) {
            match headers.iter().position(|h| h == column) {
                Some(found) => *slot = found,
                None => problems.error(
                    1,
                    Some(column),
                    format!("missing column `{column}` (expected {})", COLUMNS.join(",")),
                ),
            }
        }
        if !problems.found.is_empty() {
            return problems.finish(None);
        }
        let source: Arc<str> = Arc::from(name);
        let mut bands: Vec<(CallBand, u64)> = Vec::new();
        for record in reader.records() {
            let Some((row, record)) = problems.record(record) else {
                continue;
            };
            if record.len() > headers.len() {
                problems.warning(
                    row,
                    None,
                    format!(
                        "{} cell(s) beyond the header's {} columns ignored",
                        record.len() - headers.len(),
                        headers.len()
                    ),
                );
            }
            let cell = |i: usize| record.get(index[i]).unwrap_or("");
            let effective = cell(0)
                .parse::<Date>()
                .map_err(|_| format!("`{}` is not a YYYY-MM-DD date", cell(0)));
            let currency =
                Currency::parse(cell(1)).ok_or_else(|| format!("unknown currency `{}`", cell(1)));
            let market = canonical_market_name(cell(2)).to_string();
            let from = parse_minutes(cell(3))
                .and_then(|f| f.ok_or_else(|| "missing first minute".to_string()));
            let to = parse_minutes(cell(4));
            // No minute costs a million in any currency; larger is a broken
            // file, and its amounts could overflow exact sums.
            let rate = parse_rate_cell(cell(5))
                .and_then(|r| r.ok_or_else(|| "missing rate".to_string()))
                .and_then(|r| {
                    if r < Decimal::from(1_000_000) {
                        Ok(r)
                    } else {
                        Err(format!(
                            "{r} per minute is not a plausible rate (at most 999999)"
                        ))
                    }
                });
            let mut bad = market.is_empty();
            if market.is_empty() {
                problems.error(row, Some("market"), "empty market".into());
            }
            for (column, error) in [
                ("effective", effective.as_ref().err()),
                ("currency", currency.as_ref().err()),
                ("minutes_from", from.as_ref().err()),
                ("minutes_to", to.as_ref().err()),
                ("rate_per_minute", rate.as_ref().err()),
            ] {
                if let Some(message) = error {
                    problems.error(row, Some(column), message.clone());
                    bad = true;
                }
            }
            let (
                Ok(effective),
                Ok(currency),
                Ok(minutes_from),
                Ok(minutes_to),
                Ok(rate_per_minute),
            ) = (effective, currency, from, to, rate)
            else {
                continue;
            };
            if bad {
                continue;
            }
            if minutes_to.is_some_and(|to| to < minutes_from.max(1)) {
                problems.error(
                    row,
                    Some("minutes_to"),
                    format!(
                        "band ends ({}) before it starts ({minutes_from})",
                        minutes_to.unwrap_or(0)
                    ),
                );
                continue;
            }
            let band = CallBand {
                effective,
                currency,
                market,
                minutes_from,
                minutes_to,
                rate_per_minute,
                source: source.clone(),
                partial: false,
            };
            bands.push((band, row));
        }
        check_ladders(&bands, &mut problems);
        let mut unknown = std::collections::BTreeSet::new();
        for (band, row) in &bands {
            if !MarketTable::builtin()
                .markets_on(band.effective)
                .contains(band.market.as_str())
                && unknown.insert(band.market.clone())
            {
                problems.warning(
                    *row,
                    Some("market"),
                    format!(
                        "`{}` is not one of Meta's markets on {}; its rates will never be used",
                        band.market, band.effective
                    ),
                );
            }
        }
        problems.finish(Some(bands.into_iter().map(|(band, _)| band).collect()))
    }
}

/// Reads a minute count such as `50001`, `50,001` or empty (open).
fn parse_minutes(cell: &str) -> Result<Option<u64>, String> {
    let cell = cell.trim();
    if cell.is_empty() || cell == "--" || cell.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    strip_thousands_separators(cell)
        .parse::<u64>()
        .map(Some)
        .map_err(|_| format!("`{cell}` is not a number of minutes"))
}

/// Each (date, currency, market) block must be a ladder: from the first
/// minute, each band right after the previous one, only the last open.
fn check_ladders(bands: &[(CallBand, u64)], problems: &mut Problems<'_>) {
    let mut blocks: BTreeMap<(Date, Currency, &str), Vec<&(CallBand, u64)>> = BTreeMap::new();
    for entry in bands {
        blocks
            .entry((entry.0.effective, entry.0.currency, &entry.0.market))
            .or_default()
            .push(entry);
    }
    for ((_, _, market), mut block) in blocks {
        block.sort_by_key(|(band, _)| band.minutes_from);
        let (first, row) = block[0];
        if first.minutes_from > 1 {
            problems.error(
                *row,
                Some("minutes_from"),
                format!(
                    "{market}: the first band starts at minute {} instead of 0 or 1",
                    first.minutes_from
                ),
            );
        }
        for pair in block.windows(2) {
            let ((previous, _), (next, row)) = (pair[0], pair[1]);
            match previous.minutes_to {
                None => problems.error(
                    *row,
                    Some("minutes_from"),
                    format!(
                        "{market}: band {} follows the open-ended band {}",
                        next.label(),
                        previous.label()
                    ),
                ),
                Some(to) if next.minutes_from.max(1) != to + 1 => problems.error(
                    *row,
                    Some("minutes_from"),
                    format!(
                        "{market}: band {} does not start right after band {} ({})",
                        next.label(),
                        previous.label(),
                        if next.minutes_from.max(1) <= to {
                            "overlap"
                        } else {
                            "gap"
                        }
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_file_reads_without_a_problem() {
        for file in BUILTIN {
            let checked = CallRateBook::check_csv(file.file, file.text);
            assert!(
                checked.problems.is_empty(),
                "{}: {:?}",
                file.file,
                checked.problems
            );
            assert!(
                checked.value.is_some_and(|bands| !bands.is_empty()),
                "{}",
                file.file
            );
        }
    }

    #[test]
    fn ladder_is_the_latest_dated_block_naming_the_market() {
        let book = CallRateBook::builtin();
        let africa = |on| {
            book.ladder(Currency::USD, "Rest of Africa", on)
                .iter()
                .map(|b| (b.effective, b.rate_per_minute.to_string()))
                .collect::<Vec<_>>()
        };
        // 2025-08 card: the list band only.
        assert_eq!(
            africa(date(2026, 6, 30)),
            vec![(date(2025, 8, 1), "0.0103".to_string())]
        );
        assert_eq!(africa(date(2026, 7, 1)).len(), 6);
        assert_eq!(
            africa(date(2026, 10, 1))[1],
            (date(2026, 10, 1), "0.0084".to_string())
        );
        assert!(africa(date(2025, 7, 31)).is_empty());
        // Rest of CEE is known only from 2026-10-01.
        assert!(
            book.ladder(
                Currency::USD,
                "Rest of Central & Eastern Europe",
                date(2026, 9, 30)
            )
            .is_empty()
        );
        assert_eq!(
            book.ladder(
                Currency::USD,
                "Rest of Central & Eastern Europe",
                date(2026, 10, 1)
            )[5]
            .label(),
            "5000001:MAX"
        );
        assert_eq!(
            book.ladder(Currency::parse("INR").unwrap(), "India", date(2026, 7, 1))[0]
                .rate_per_minute
                .to_string(),
            "0.3885"
        );
        assert!(
            book.ladder(Currency::USD, "India", date(2026, 7, 1))
                .is_empty()
        );
    }

    #[test]
    fn problems_name_row_and_column() {
        let text = "effective,currency,market,minutes_from,minutes_to,rate_per_minute\n\
                    2026-10-01,USD,Rest of Africa,0,50000,0.0103\n\
                    2026-10-01,USD,Rest of Africa,50000,250000,0.0084\n\
                    2026-10-01,U$D,Rest of Africa,0,,0.01\n\
                    2026-10-01,USD,Atlantis,0,,abc\n";
        let checked = CallRateBook::check_csv("c.csv", text);
        let shown: Vec<String> = checked.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|p| p.contains("row 3") && p.contains("overlap")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.contains("row 4") && p.contains("`currency`")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.contains("row 5") && p.contains("`rate_per_minute`")),
            "{shown:?}"
        );
        assert!(CallRateBook::parse_csv("c.csv", text).is_err());
    }

    #[test]
    fn given_bands_replace_ours_for_their_date_and_market() {
        let given = CallRateBook::parse_csv("mine.csv", "effective,currency,market,minutes_from,minutes_to,rate_per_minute\n2026-10-01,USD,Rest of Africa,0,,0.02\n").unwrap();
        let book = CallRateBook::builtin().with(given);
        let ladder = book.ladder(Currency::USD, "Rest of Africa", date(2026, 11, 1));
        assert_eq!(ladder.len(), 1);
        assert_eq!(&*ladder[0].source, "mine.csv");
        assert_eq!(
            book.ladder(Currency::USD, "Rest of Africa", date(2026, 8, 1))
                .len(),
            6
        );
    }
}
