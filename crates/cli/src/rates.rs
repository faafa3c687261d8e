//! `wameter rates …` and the local rate store.
//!
//! The store is a directory of rate files exactly as the user imported them
//! (Meta's CSVs, byte for byte), one file per card or tier table, named by
//! what they are (`usd-pmp-2026-07-01.csv`, `tiers-usd-2025-07-01.csv`).
//! Later commands read it: imported cards join the built-in ones (replacing a
//! built-in card of the same currency, model and date), imported tiers are
//! used when no `--tiers` is given. Where it lives: `$WAMETER_HOME/rates`,
//! else `$XDG_DATA_HOME/wameter/rates`, else `~/.local/share/wameter/rates`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use jiff::civil::Date;
use wameter_core::category::{PricingCategory, PricingModel};
use wameter_core::money::{Currency, format_amount};
use wameter_core::ratecard::calling::{CallBand, CallRateBook};
use wameter_core::ratecard::{
    RateBook, RateCard, RateFile, RateFileError, Severity, TierBand, TierBook, check_rate_file,
};
use wameter_core::ruleset::Ruleset;

/// Where the rate store lives.
pub fn store_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(home) = non_empty("WAMETER_HOME") {
        return Some(home.join("rates"));
    }
    if let Some(data) = non_empty("XDG_DATA_HOME") {
        return Some(data.join("wameter").join("rates"));
    }
    non_empty("HOME").map(|home| home.join(".local/share/wameter/rates"))
}

/// What the store holds.
#[derive(Default)]
pub struct Store {
    /// Imported cards, each with its file.
    pub cards: Vec<RateCard>,
    /// Imported tier bands.
    pub tiers: Vec<TierBand>,
    /// Imported calling rates.
    pub call_rates: Vec<CallBand>,
    /// Files read.
    pub files: Vec<PathBuf>,
}

/// Reads every file of the store. A file that no longer reads cleanly is an
/// error naming it: the store only ever holds files that passed `check`.
pub fn load_store() -> Result<Store> {
    let mut store = Store::default();
    let Some(dir) = store_dir() else {
        return Ok(store);
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(store),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the rate store {}", dir.display()));
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (_, checked) = check_rate_file(&path.display().to_string(), &text);
        let (file, _warnings) = checked.into_result().with_context(|| {
            format!(
                "the rate store file {} no longer reads; fix or delete it",
                path.display()
            )
        })?;
        match file {
            RateFile::Card(mut card) => {
                card.id = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                card.source = format!("imported into the rate store: {}", path.display());
                store.cards.push(card);
            }
            RateFile::Tiers(bands) => store.tiers.extend(bands),
            RateFile::CallRates(bands) => store.call_rates.extend(bands),
        }
        store.files.push(path);
    }
    Ok(store)
}

/// Built-in cards plus imported ones; an import replaces the built-in card
/// of the same currency, model and effective date.
pub fn book_with_store(store: &Store) -> RateBook {
    let mut cards: Vec<RateCard> = RateBook::builtin()
        .cards()
        .iter()
        .filter(|builtin| {
            !store.cards.iter().any(|c| {
                (c.currency, c.model, c.effective)
                    == (builtin.currency, builtin.model, builtin.effective)
            })
        })
        .cloned()
        .collect();
    cards.extend(store.cards.iter().cloned());
    RateBook::new(cards)
}

/// The built-in tier table plus the imported ones; an imported table
/// replaces the built-in one of the same currency and date.
pub fn tiers_with_store(imported: Vec<TierBand>) -> Vec<TierBand> {
    let tables: std::collections::BTreeSet<(Currency, Date)> =
        imported.iter().map(|b| (b.currency, b.effective)).collect();
    let mut bands: Vec<TierBand> = TierBook::builtin()
        .bands()
        .iter()
        .filter(|b| !tables.contains(&(b.currency, b.effective)))
        .cloned()
        .collect();
    bands.extend(imported);
    bands
}

/// The tier bands a command uses: those of `--tiers` files when given
/// (they replace the others), else the built-in and imported ones.
pub fn tiers_in_force(imported: Vec<TierBand>, tiers_from: &[PathBuf]) -> Result<Vec<TierBand>> {
    if tiers_from.is_empty() {
        return Ok(tiers_with_store(imported));
    }
    let mut bands = Vec::new();
    for path in tiers_from {
        bands.extend(crate::input::read_tiers(path)?);
    }
    Ok(bands)
}

fn print_problems(out: &mut impl Write, problems: &[RateFileError]) -> Result<()> {
    for problem in problems {
        let label = match problem.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(out, "{label}: {problem}")?;
    }
    Ok(())
}

/// `wameter rates check FILE…`: every problem of every file.
pub fn check(files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    let mut documents = Vec::new();
    for path in files {
        let text = read(path)?;
        let (layout, checked) = check_rate_file(&path.display().to_string(), &text);
        let errors = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        let warnings = checked.problems.len() - errors;
        let what = match &checked.value {
            Some(RateFile::Card(card)) if errors == 0 => {
                format!(
                    "{} {} {} card effective {}, {} markets",
                    layout.describe(),
                    card.currency,
                    card.model.as_str(),
                    card.effective,
                    card.markets.len()
                )
            }
            Some(RateFile::Tiers(bands)) if errors == 0 => {
                format!("{}, {} bands", layout.describe(), bands.len())
            }
            Some(RateFile::CallRates(bands)) if errors == 0 => {
                let markets: std::collections::BTreeSet<&str> =
                    bands.iter().map(|b| b.market.as_str()).collect();
                format!(
                    "{}, {} bands in {} market(s)",
                    layout.describe(),
                    bands.len(),
                    markets.len()
                )
            }
            _ => layout.describe().to_string(),
        };
        failed |= errors > 0;
        if json {
            documents.push(serde_json::json!({
                "file": path.display().to_string(),
                "layout": layout.describe(),
                "summary": what,
                "errors": errors,
                "warnings": warnings,
                "problems": checked.problems.iter().map(|p| serde_json::json!({
                    "severity": match p.severity { Severity::Error => "error", Severity::Warning => "warning" },
                    "row": p.row,
                    "column": p.column,
                    "message": p.message,
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        print_problems(&mut out, &checked.problems)?;
        writeln!(
            out,
            "{}: {what}: {errors} error(s), {warnings} warning(s)",
            path.display()
        )?;
    }
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "files": documents }))?
        )?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The store file name for an imported file.
fn store_name(file: &RateFile) -> String {
    match file {
        RateFile::Card(card) => format!(
            "{}-{}-{}.csv",
            card.currency.code().to_ascii_lowercase(),
            card.model.as_str().to_ascii_lowercase(),
            card.effective
        ),
        RateFile::Tiers(bands) => {
            let mut currencies: Vec<&str> = bands.iter().map(|b| b.currency.code()).collect();
            currencies.sort();
            currencies.dedup();
            let first = bands
                .iter()
                .map(|b| b.effective)
                .min()
                .map(|d| d.to_string())
                .unwrap_or_default();
            format!(
                "tiers-{}-{first}.csv",
                currencies.join("-").to_ascii_lowercase()
            )
        }
        RateFile::CallRates(bands) => {
            let mut currencies: Vec<&str> = bands.iter().map(|b| b.currency.code()).collect();
            currencies.sort();
            currencies.dedup();
            let first = bands
                .iter()
                .map(|b| b.effective)
                .min()
                .map(|d| d.to_string())
                .unwrap_or_default();
            format!(
                "calls-{}-{first}.csv",
                currencies.join("-").to_ascii_lowercase()
            )
        }
    }
}

/// `wameter rates import FILE`: check, then copy into the store.
pub fn import(path: &Path) -> Result<ExitCode> {
    let text = read(path)?;
    let (layout, checked) = check_rate_file(&path.display().to_string(), &text);
    let mut out = std::io::stdout().lock();
    if checked.has_errors() {
        print_problems(&mut out, &checked.problems)?;
        writeln!(
            out,
            "{}: not imported (fix the errors above; `wameter rates check` lists them)",
            path.display()
        )?;
        return Ok(ExitCode::from(1));
    }
    let warnings = checked.problems.clone();
    let (file, _) = checked.into_result().map_err(anyhow::Error::from)?;
    let Some(dir) = store_dir() else {
        bail!("no rate store: set WAMETER_HOME or HOME")
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the rate store {}", dir.display()))?;
    let name = store_name(&file);
    let target = dir.join(&name);
    let replaced = target.exists();
    // Write then rename, so a crash never leaves half a card in the store.
    let temporary = dir.join(format!(".{name}.partial"));
    std::fs::write(&temporary, &text)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::File::open(&temporary)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", temporary.display()))?;
    std::fs::rename(&temporary, &target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    print_problems(&mut out, &warnings)?;
    writeln!(
        out,
        "imported {} as {}{}",
        layout.describe(),
        target.display(),
        if replaced {
            " (replacing the earlier import)"
        } else {
            ""
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One card as `rates list --json` prints it.
fn card_json(card: &RateCard) -> serde_json::Value {
    serde_json::json!({
        "id": card.id,
        "currency": card.currency.code(),
        "model": card.model.as_str(),
        "effective": card.effective.to_string(),
        "until": card.until.map(|u| u.to_string()),
        "markets": card.markets.len(),
        "status": card.status().as_str(),
        "source": card.source,
        "derivation": card.derivation,
        "missing_markets": card.missing_markets,
        "gaps": card.gaps.iter().map(|g| serde_json::json!({"market": g.market, "column": g.column, "why": g.why})).collect::<Vec<_>>(),
    })
}

/// `wameter rates list`: built-in and imported cards, with provenance,
/// status and gaps, and the tier tables.
pub fn list(json: bool) -> Result<ExitCode> {
    let store = load_store()?;
    let book = book_with_store(&store);
    let imported: std::collections::BTreeSet<(Currency, Date)> = store
        .tiers
        .iter()
        .map(|b| (b.currency, b.effective))
        .collect();
    let bands = tiers_with_store(store.tiers.clone());
    let mut tables: Vec<(Date, Currency)> =
        bands.iter().map(|b| (b.effective, b.currency)).collect();
    tables.sort();
    tables.dedup();
    let tables: Vec<(Date, Currency, usize, bool)> = tables
        .into_iter()
        .map(|(effective, currency)| {
            let count = bands
                .iter()
                .filter(|b| (b.effective, b.currency) == (effective, currency))
                .count();
            (
                effective,
                currency,
                count,
                imported.contains(&(currency, effective)),
            )
        })
        .collect();
    let calling = call_rate_tables(&store);
    let mut out = std::io::stdout().lock();
    if json {
        let document = serde_json::json!({
            "cards": book.cards().iter().map(card_json).collect::<Vec<_>>(),
            "call_rates": calling.iter().map(|t| serde_json::json!({
                "currency": t.currency.code(),
                "effective": t.effective.to_string(),
                "market": t.market,
                "bands": t.bands,
                "source": t.source,
                "status": if t.partial { "partial" } else { "given" },
            })).collect::<Vec<_>>(),
            "tiers": tables.iter().map(|(effective, currency, bands, imported)| serde_json::json!({
                "currency": currency.code(),
                "effective": effective.to_string(),
                "bands": bands,
                "source": if *imported { "imported".to_string() } else { wameter_core::ratecard::builtin::TIERS_SOURCE.to_string() },
            })).collect::<Vec<_>>(),
            "rate_store": store_dir().map(|d| d.display().to_string()),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for card in book.cards() {
        let until = card
            .until
            .map(|u| format!(" until {u}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{}: {} {} from {}{}, {} markets, {}",
            card.id,
            card.currency,
            card.model.as_str(),
            card.effective,
            until,
            card.markets.len(),
            card.status().as_str()
        )?;
        writeln!(out, "  source: {}", card.source)?;
        for step in &card.derivation {
            writeln!(out, "  derived: {step}")?;
        }
        if !card.missing_markets.is_empty() {
            writeln!(
                out,
                "  lacks {} market(s): {}",
                card.missing_markets.len(),
                card.missing_markets.join(", ")
            )?;
        }
        for gap in &card.gaps {
            writeln!(out, "  gap: {gap}")?;
        }
    }
    for (effective, currency, bands, imported) in &tables {
        let source = if *imported {
            "imported".to_string()
        } else {
            format!(
                "built in: {}",
                wameter_core::ratecard::builtin::TIERS_SOURCE
            )
        };
        writeln!(
            out,
            "volume tiers: {currency} from {effective}, {bands} bands ({source})"
        )?;
    }
    for t in &calling {
        let status = if t.partial {
            ", partial: the file lacks other markets"
        } else {
            ""
        };
        writeln!(
            out,
            "calling rates: {} {} from {}, {} band(s) ({}{status})",
            t.currency, t.market, t.effective, t.bands, t.source
        )?;
    }
    if let Some(dir) = store_dir() {
        writeln!(
            out,
            "rate store: {} ({} imported file(s))",
            dir.display(),
            store.files.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One (currency, market, date) block of calling rates, for `rates list`.
struct CallRateTable {
    currency: Currency,
    market: String,
    effective: Date,
    bands: usize,
    source: String,
    partial: bool,
}

/// The calling rates in force without `--call-rates`: built-in fragments
/// and imported files.
fn call_rate_tables(store: &Store) -> Vec<CallRateTable> {
    let book = CallRateBook::builtin().with(store.call_rates.clone());
    let mut tables: Vec<CallRateTable> = Vec::new();
    for band in book.bands() {
        match tables.last_mut() {
            Some(t)
                if (t.currency, t.market.as_str(), t.effective)
                    == (band.currency, band.market.as_str(), band.effective) =>
            {
                t.bands += 1
            }
            _ => tables.push(CallRateTable {
                currency: band.currency,
                market: band.market.clone(),
                effective: band.effective,
                bands: 1,
                source: band.source.to_string(),
                partial: band.partial,
            }),
        }
    }
    tables
}

/// One range of `rates coverage`.
struct Covered<'a> {
    currency: Currency,
    model: PricingModel,
    from: Date,
    /// Exclusive; `None`: open-ended.
    to: Option<Date>,
    card: Option<&'a RateCard>,
}

/// Where each pricing model's era begins and ends (decision D1).
fn era(model: PricingModel) -> (Date, Option<Date>) {
    match model {
        PricingModel::Cbp => (
            jiff::civil::date(2022, 2, 1),
            Some(jiff::civil::date(2025, 7, 1)),
        ),
        PricingModel::Pmp => (jiff::civil::date(2025, 7, 1), None),
    }
}

/// The ranges of one currency and model inside its era and `[from, to)`:
/// each card's span, and the gaps between them as missing.
fn covered<'a>(
    book: &'a RateBook,
    currency: Currency,
    model: PricingModel,
    from: Date,
    to: Option<Date>,
) -> Vec<Covered<'a>> {
    let (era_from, era_to) = era(model);
    let start = from.max(era_from);
    let end = match (to, era_to) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if end.is_some_and(|end| end <= start) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut at = start;
    let before_end = |date: Date| end.is_none_or(|end| date < end);
    let clip = |date: Option<Date>| match (date, end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    for (card, until) in book.spans(currency, model) {
        if until.is_some_and(|until| until <= at) || !before_end(card.effective) {
            continue;
        }
        if card.effective > at {
            out.push(Covered {
                currency,
                model,
                from: at,
                to: Some(card.effective),
                card: None,
            });
            at = card.effective;
        }
        out.push(Covered {
            currency,
            model,
            from: at,
            to: clip(until),
            card: Some(card),
        });
        match until {
            Some(until) => at = until,
            None => return out,
        }
        if !before_end(at) {
            return out;
        }
    }
    out.push(Covered {
        currency,
        model,
        from: at,
        to: end,
        card: None,
    });
    out
}

/// `wameter rates coverage`: which card prices each date, per currency.
pub fn coverage(
    currency: Option<Currency>,
    from: Option<Date>,
    to: Option<Date>,
    json: bool,
) -> Result<ExitCode> {
    let store = load_store()?;
    let book = book_with_store(&store);
    let mut currencies: Vec<Currency> = match currency {
        Some(currency) => vec![currency],
        None => book.cards().iter().map(|c| c.currency).collect(),
    };
    currencies.sort();
    currencies.dedup();
    let from = from.unwrap_or(jiff::civil::date(2022, 2, 1));
    let ranges: Vec<Covered> = currencies
        .iter()
        .flat_map(|currency| {
            [PricingModel::Cbp, PricingModel::Pmp]
                .map(|model| covered(&book, *currency, model, from, to))
        })
        .flatten()
        .collect();
    let status = |range: &Covered| range.card.map_or("missing", |card| card.status().as_str());
    let calling: Vec<CallCovered> = call_coverage(&store, from, to)
        .into_iter()
        .filter(|range| currency.is_none_or(|c| c == range.table.currency))
        .collect();
    let call_status = |range: &CallCovered| {
        if range.table.partial {
            "partial"
        } else {
            "full"
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        let document = serde_json::json!({
            "from": from.to_string(),
            "to": to.map(|t| t.to_string()),
            "ranges": ranges.iter().map(|range| serde_json::json!({
                "currency": range.currency.code(),
                "model": range.model.as_str(),
                "from": range.from.to_string(),
                "to": range.to.map(|t| t.to_string()),
                "card": range.card.map(|c| c.id.clone()),
                "status": status(range),
                "missing_markets": range.card.map(|c| c.missing_markets.clone()).unwrap_or_default(),
                "gaps": range.card.map(|c| c.gaps.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
            })).collect::<Vec<_>>(),
            "calling": calling.iter().map(|range| serde_json::json!({
                "currency": range.table.currency.code(),
                "market": range.table.market,
                "from": range.from.to_string(),
                "to": range.to.map(|t| t.to_string()),
                "bands": range.table.bands,
                "source": range.table.source,
                "status": call_status(range),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = ranges
        .iter()
        .map(|range| {
            let lacking = match range.card {
                Some(card) if !card.missing_markets.is_empty() => format!(
                    "{}: {}",
                    card.missing_markets.len(),
                    card.missing_markets.join(", ")
                ),
                Some(_) => String::new(),
                None => "all".to_string(),
            };
            vec![
                range.currency.code().to_string(),
                range.model.as_str().to_string(),
                range.from.to_string(),
                range.to.map_or("open".to_string(), |t| t.to_string()),
                range.card.map_or("-".to_string(), |c| c.id.clone()),
                status(range).to_string(),
                lacking,
            ]
        })
        .collect();
    crate::output::table(
        &mut out,
        &[
            "Currency",
            "Model",
            "From",
            "Until",
            "Card",
            "Status",
            "Markets missing",
        ],
        &rows,
        &[false; 7],
    )?;
    writeln!(
        out,
        "\nUntil is the first date not covered. derived: computed from a neighbouring card and Meta's changelog; partial: some markets missing (`wameter rates list` has the details); missing: no card, so those dates are refused: download Meta's card for them and `wameter rates import` it."
    )?;
    writeln!(out, "\nCalling rates (Calling API, docs/rules.md §14):")?;
    let rows: Vec<Vec<String>> = calling
        .iter()
        .map(|range| {
            vec![
                range.table.currency.code().to_string(),
                range.table.market.clone(),
                range.from.to_string(),
                range.to.map_or("open".to_string(), |t| t.to_string()),
                range.table.bands.to_string(),
                call_status(range).to_string(),
                range.table.source.clone(),
            ]
        })
        .collect();
    crate::output::table(
        &mut out,
        &[
            "Currency", "Market", "From", "Until", "Bands", "Status", "Source",
        ],
        &rows,
        &[false; 7],
    )?;
    writeln!(
        out,
        "\nA business-initiated call to a market and date not listed here is refused: give its rates with `--call-rates` or `wameter rates import` them. partial: a public fragment, not Meta's whole calling card."
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One range of calling rates in `rates coverage`: a (currency, market)
/// block of bands from its effective date until the next block's.
struct CallCovered {
    table: CallRateTable,
    from: Date,
    /// Exclusive; `None`: open-ended.
    to: Option<Date>,
}

/// The calling rates in force without `--call-rates`, as ranges clipped to
/// `[from, to)`.
fn call_coverage(store: &Store, from: Date, to: Option<Date>) -> Vec<CallCovered> {
    let tables = call_rate_tables(store);
    let mut ranges = Vec::new();
    let mut tables = tables.into_iter().peekable();
    while let Some(table) = tables.next() {
        let until = tables
            .peek()
            .filter(|next| (next.currency, &next.market) == (table.currency, &table.market))
            .map(|next| next.effective);
        let start = table.effective.max(from);
        let end = match (until, to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if end.is_none_or(|end| start < end) {
            ranges.push(CallCovered {
                table,
                from: start,
                to: end,
            });
        }
    }
    ranges
}

/// `wameter rates show`: the card in force for a currency on a date, and the
/// volume tiers that go with it.
pub fn show(
    date: Date,
    currency: Currency,
    model: Option<PricingModel>,
    tiers_from: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
    let store = load_store()?;
    let book = book_with_store(&store);
    let model = model.unwrap_or(match Ruleset::on(date) {
        Some(ruleset) if !ruleset.is_conversation_based() => PricingModel::Pmp,
        _ => PricingModel::Cbp,
    });
    let card = book.select(currency, model, date)?;
    let tiers = TierBook::new(tiers_in_force(store.tiers, tiers_from)?);
    let tier_markets: std::collections::BTreeSet<&str> = tiers
        .bands()
        .iter()
        .filter(|b| b.currency == currency && b.effective <= date)
        .map(|b| b.market.as_str())
        .collect();
    let ladders: Vec<(&str, PricingCategory, &[TierBand])> = tier_markets
        .iter()
        .flat_map(|market| {
            [
                PricingCategory::Utility,
                PricingCategory::Authentication,
                PricingCategory::AuthenticationInternational,
            ]
            .map(|category| {
                (
                    *market,
                    category,
                    tiers.ladder(currency, market, category, date),
                )
            })
        })
        .filter(|(_, _, ladder)| !ladder.is_empty())
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        let rates: serde_json::Map<String, serde_json::Value> = card
            .markets
            .iter()
            .map(|(market, rates)| {
                let cells: serde_json::Map<String, serde_json::Value> = [
                    PricingCategory::Marketing,
                    PricingCategory::Utility,
                    PricingCategory::Authentication,
                    PricingCategory::AuthenticationInternational,
                    PricingCategory::Service,
                    PricingCategory::BusinessInitiated,
                    PricingCategory::UserInitiated,
                ]
                .iter()
                .filter_map(|category| {
                    rates.get(*category).map(|rate| {
                        (
                            category.as_str().to_string(),
                            serde_json::Value::from(format_amount(rate)),
                        )
                    })
                })
                .collect();
                (market.clone(), serde_json::Value::Object(cells))
            })
            .collect();
        let document = serde_json::json!({
            "date": date.to_string(),
            "card": card_json(card),
            "rates": rates,
            "tiers": ladders.iter().map(|(market, category, ladder)| serde_json::json!({
                "market": market,
                "category": category.as_str(),
                "effective": ladder[0].effective.to_string(),
                "bands": ladder.iter().map(|b| serde_json::json!({"tier": b.label(), "from": b.from, "to": b.to, "rate": format_amount(b.rate)})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let until = card
        .until
        .map(|u| format!(" until {u}"))
        .unwrap_or_default();
    writeln!(
        out,
        "{} — {} {} per {}, from {}{}",
        card.id,
        card.currency,
        card.model.as_str(),
        if model == PricingModel::Cbp {
            "conversation"
        } else {
            "message"
        },
        card.effective,
        until
    )?;
    writeln!(out, "source: {}", card.source)?;
    for gap in &card.gaps {
        writeln!(out, "gap: {gap}")?;
    }
    let two_rate = card
        .markets
        .values()
        .any(|r| r.business_initiated.is_some() || r.user_initiated.is_some());
    let columns: &[(PricingCategory, &str)] = if two_rate {
        &[
            (PricingCategory::BusinessInitiated, "Business-initiated"),
            (PricingCategory::UserInitiated, "User-initiated"),
        ]
    } else {
        &[
            (PricingCategory::Marketing, "Marketing"),
            (PricingCategory::Utility, "Utility"),
            (PricingCategory::Authentication, "Authentication"),
            (
                PricingCategory::AuthenticationInternational,
                "Auth-international",
            ),
            (PricingCategory::Service, "Service"),
        ]
    };
    let width = card
        .markets
        .keys()
        .map(|m| m.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    write!(out, "\n{:<width$}", "Market")?;
    for (_, name) in columns {
        write!(out, "  {name:>18}")?;
    }
    writeln!(out)?;
    for (market, rates) in &card.markets {
        write!(out, "{market:<width$}")?;
        for (category, _) in columns {
            let cell = rates
                .get(*category)
                .map_or("n/a".to_string(), format_amount);
            write!(out, "  {cell:>18}")?;
        }
        writeln!(out)?;
    }
    let mut printed = false;
    for (market, category, ladder) in &ladders {
        if !printed {
            writeln!(out, "\nVolume tiers in force on {date}:")?;
            printed = true;
        }
        let steps: Vec<String> = ladder
            .iter()
            .map(|b| format!("{} at {}", b.label(), format_amount(b.rate)))
            .collect();
        writeln!(out, "  {market} {category}: {}", steps.join(", "))?;
    }
    if !printed && model == PricingModel::Pmp {
        writeln!(
            out,
            "\nNo volume tiers for {currency} on {date}: every message pays the list rate (import Meta's tier CSV with `wameter rates import`)."
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
