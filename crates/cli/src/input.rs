//! Reading the user's files: logs (parsed in parallel, positions kept),
//! accounts, rate cards, tiers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::collections::HashSet;
use wameter_core::account::Accounts;
use wameter_core::engine::WhatIf;
use wameter_core::market::MarketTable;
use wameter_core::pricing::Pricing;

use jiff::Timestamp;
use wameter_core::engine::FoldedStatuses;
use wameter_core::event::{Event, Origin, UnownedStatus, infer_outbounds};
use wameter_core::notice::Notice;
use wameter_core::ratecard::calling::{CallBand, CallRateBook};
use wameter_core::ratecard::{
    RateBook, RateCard, RateFile, RateFileLayout, Severity, TierBand, TierBook, check_rate_file,
};
use wameter_core::ruleset::Ruleset;
use wameter_log::{LineError, parse_chunk, parse_chunk_dealt};
use wameter_meta::Ignored;

/// Options of every command that prices: accounts, cards, tiers, what-if.
#[derive(clap::Args, Debug, Clone)]
pub struct PricingArgs {
    /// Accounts file (TOML): time zones, currencies, WABAs, portfolios.
    #[arg(long, value_name = "FILE")]
    pub accounts: Option<PathBuf>,
    /// Rate card in Meta's CSV layout (repeatable). Replaces the built-in and imported cards.
    #[arg(long = "rates", value_name = "FILE")]
    pub rates: Vec<PathBuf>,
    /// Volume tiers: Meta's "Volume tiers" CSV or `effective,currency,market,category,from,to,rate`
    /// (repeatable). Replaces the built-in and imported tiers.
    #[arg(long = "tiers", value_name = "FILE")]
    pub tiers: Vec<PathBuf>,
    /// Calling API rates: `effective,currency,market,minutes_from,minutes_to,rate_per_minute`
    /// (repeatable). For the dates and markets they name, they replace the built-in and imported rates.
    #[arg(long = "call-rates", value_name = "FILE")]
    pub call_rates: Vec<PathBuf>,
    /// What-if: price every delivery under this ruleset instead of the one in force
    /// (cbp-2022, cbp-2023, pmp-2025, pmp-2026-10).
    #[arg(long, value_name = "ERA", value_parser = parse_ruleset)]
    pub as_ruleset: Option<Ruleset>,
    /// What-if: price with the rate cards (and tiers) in force on this date instead of each delivery's date.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub rates_on: Option<jiff::civil::Date>,
}

/// Options of the commands that read a log: pricing options plus strictness.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    #[command(flatten)]
    pub pricing: PricingArgs,
    /// Make a malformed log line fatal instead of reporting and skipping it.
    #[arg(long)]
    pub strict: bool,
}

impl EngineArgs {
    /// The what-if options asked for.
    pub fn what_if(&self) -> WhatIf {
        self.pricing.what_if()
    }

    /// Reads accounts, cards and tiers.
    pub fn setup(&self) -> Result<Setup> {
        self.pricing.setup()
    }
}

/// What the flags and files say besides the logs: the engine's inputs
/// (the one type every front end prices with) and the accounts file's
/// clients and budgets.
pub struct Setup {
    /// Accounts, cards, tiers (as `--rates-on` and the files say), markets,
    /// and calling rates: built-in fragments, then imported, then
    /// `--call-rates`.
    pub pricing: Pricing,
    /// Clients and budgets from the same accounts file.
    pub billing: wameter_core::billing::Billing,
}

/// Reads a ruleset id or era name (`pmp-2025`, `pmp-2025-07`, `cbp-2023-06`).
pub fn parse_ruleset(text: &str) -> Result<Ruleset, String> {
    Ruleset::parse_loose(text).ok_or_else(|| {
        "expected one of cbp-2022, cbp-2023, pmp-2025, pmp-2026-10 (or the ids cbp-2022-02, cbp-2023-06, pmp-2025-07)".to_string()
    })
}

fn warn(problems: &[wameter_core::ratecard::RateFileError]) {
    for problem in problems.iter().filter(|p| p.severity == Severity::Warning) {
        eprintln!("warning: {problem}");
    }
}

/// The error for a rate file given to the wrong flag.
fn wrong_kind(path: &Path, layout: RateFileLayout, flag: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is {}; pass it with {flag}",
        path.display(),
        layout.describe()
    )
}

/// Reads a rate card given with `--rates`.
pub fn read_card(path: &Path) -> Result<RateCard> {
    let (layout, checked) = check_rate_file(&path.display().to_string(), &read(path)?);
    let (file, warnings) = checked.into_result()?;
    warn(&warnings);
    match file {
        RateFile::Card(card) => Ok(card),
        RateFile::Tiers(_) => Err(wrong_kind(path, layout, "--tiers")),
        RateFile::CallRates(_) => Err(wrong_kind(path, layout, "--call-rates")),
    }
}

/// Reads volume tiers given with `--tiers`, in either layout.
pub fn read_tiers(path: &Path) -> Result<Vec<TierBand>> {
    let (layout, checked) = check_rate_file(&path.display().to_string(), &read(path)?);
    if layout == RateFileLayout::MetaRates {
        return Err(wrong_kind(path, layout, "--rates"));
    }
    let (file, warnings) = checked.into_result()?;
    warn(&warnings);
    match file {
        RateFile::Tiers(bands) => Ok(bands),
        RateFile::Card(_) => Err(wrong_kind(path, layout, "--rates")),
        RateFile::CallRates(_) => Err(wrong_kind(path, layout, "--call-rates")),
    }
}

/// Reads calling rates given with `--call-rates`.
pub fn read_call_rates(path: &Path) -> Result<Vec<CallBand>> {
    let (layout, checked) = check_rate_file(&path.display().to_string(), &read(path)?);
    let (file, warnings) = checked.into_result()?;
    warn(&warnings);
    match file {
        RateFile::CallRates(bands) => Ok(bands),
        RateFile::Card(_) => Err(wrong_kind(path, layout, "--rates")),
        RateFile::Tiers(_) => Err(wrong_kind(path, layout, "--tiers")),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

impl PricingArgs {
    /// The what-if options asked for.
    pub fn what_if(&self) -> WhatIf {
        WhatIf {
            ruleset: self.as_ruleset,
            rates_on: self.rates_on,
        }
    }

    /// Reads accounts, cards (built-in, imported or `--rates`) and tiers.
    pub fn setup(&self) -> Result<Setup> {
        let (accounts, billing) = match &self.accounts {
            Some(path) => {
                wameter_log::parse_accounts_file(&path.display().to_string(), &read(path)?)?
            }
            None => (Accounts::default(), Default::default()),
        };
        let store = crate::rates::load_store()?;
        let rates = if self.rates.is_empty() {
            crate::rates::book_with_store(&store)
        } else {
            RateBook::new(
                self.rates
                    .iter()
                    .map(|path| read_card(path))
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        let bands = crate::rates::tiers_in_force(store.tiers, &self.tiers)?;
        let mut call_rates = CallRateBook::builtin().with(store.call_rates);
        for path in &self.call_rates {
            call_rates = call_rates.with(read_call_rates(path)?);
        }
        Ok(Setup {
            pricing: Pricing {
                accounts,
                rates,
                tiers: TierBook::new(bands),
                markets: MarketTable::builtin(),
                call_rates,
            },
            billing,
        })
    }
}

/// Everything read from the log files.
pub struct LoadedLogs {
    pub names: Vec<String>,
    /// Events read, then the outbounds inferred from Meta's pricing.
    pub events: Vec<Event>,
    /// Notices (template re-categorised, tier reached…).
    pub notices: Vec<Notice>,
    pub malformed: Vec<LineError>,
    /// Webhook items of kinds wameter does not use.
    pub ignored: Vec<(Origin, Ignored)>,
    /// (business, wamid) of the outbounds inferred from a status's `pricing`.
    pub inferred: HashSet<(Box<str>, Box<str>)>,
    /// The statuses naming no business, when they were folded in as they
    /// were read ([`load_logs_folding`]) rather than kept among `events`.
    pub folded: Option<Folded>,
}

/// Statuses naming no business folded in as a log was read: most of a
/// log's lines, of which a replay keeps only a summary per message.
pub struct Folded {
    /// One summary per wamid, dealt out as `prepare` will use them.
    pub statuses: FoldedStatuses,
    /// The implausible instants among them ([`implausible_instant`]).
    pub implausible: Vec<wameter_core::charge::Warning>,
}

impl LoadedLogs {
    /// The file name of a source index.
    pub fn source_name(&self, source: u32) -> Option<&str> {
        self.names.get(source as usize).map(String::as_str)
    }

    /// `file:line` for an origin.
    pub fn position(&self, origin: wameter_core::event::Origin) -> String {
        format!(
            "{}:{}",
            self.source_name(origin.source).unwrap_or("?"),
            origin.line
        )
    }

    pub fn describe(&self, error: &LineError) -> String {
        format!(
            "{}:{error}",
            self.source_name(error.origin.source).unwrap_or("?")
        )
    }

    /// One sentence on the webhook items that were ignored, by kind, or
    /// `None` when there were none.
    pub fn ignored_summary(&self) -> Option<String> {
        let first = self.ignored.first()?;
        let mut by_kind: std::collections::BTreeMap<&str, usize> =
            std::collections::BTreeMap::new();
        for (_, item) in &self.ignored {
            *by_kind.entry(&item.kind).or_default() += 1;
        }
        let kinds: Vec<String> = by_kind
            .into_iter()
            .map(|(kind, n)| format!("{kind} ×{n}"))
            .collect();
        Some(format!(
            "{} webhook item(s) of kinds wameter does not use, ignored (first at {}, {}): {}",
            self.ignored.len(),
            self.position(first.0),
            first.1.path,
            kinds.join(", ")
        ))
    }

    /// One sentence on the outbounds inferred from Meta's pricing, if any.
    pub fn inferred_summary(&self) -> Option<String> {
        (!self.inferred.is_empty())
            .then(|| wameter_log::replay_json::outbound_inferred_message(self.inferred.len()))
    }
}

/// Splits text whose first line is `first_line` into about `pieces` runs
/// of whole lines, with each run's first line number, and the number of
/// the line after the text.
fn split_lines(text: &str, first_line: u32, pieces: usize) -> (Vec<(&str, u32)>, u32) {
    let target = (text.len() / pieces.max(1)).max(1 << 20);
    let mut runs = Vec::new();
    let mut start = 0;
    let mut line = first_line;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        if end < text.len() {
            end =
                memchr::memchr(b'\n', &text.as_bytes()[end..]).map_or(text.len(), |i| end + i + 1);
        }
        let run = &text[start..end];
        runs.push((run, line));
        // memchr counts a run's lines ten times as fast as a byte loop, which
        // took a fifth of reading a log.
        line = line.saturating_add(memchr::memchr_iter(b'\n', run.as_bytes()).count() as u32);
        start = end;
    }
    (runs, line)
}

/// Bytes of a log read and parsed at a time: the file is never held whole,
/// and the memory of one block serves the next (fresh memory is what a
/// large replay paid most for: the kernel zeroes every new page). 16 MiB
/// read 2 M events 0.03 s sooner than 64 MiB, in 90 MB less memory; with
/// the next block read ahead (`each_block`), 4 MiB in two runs a thread
/// took 36 fewer huge pages than 16 MiB in four, peak 379 -> 349 MB, in
/// the same time (docs/PERFORMANCE.md).
const BLOCK: usize = 4 << 20;

/// Calls `each` with successive blocks of whole lines of `reader` (the
/// last may lack its newline); a line longer than a block comes whole.
///
/// The next block is read on a thread of its own while `each` works on
/// this one: read on the calling thread, the copy out of the page cache
/// (35–55 ms for 2 M events) left a core idle between blocks. `each` hands
/// the block's buffer back for a later block, and at most three buffers
/// serve the whole file (one in `each`, one read, one being read): reading
/// into a fresh one per block faulted in a block of new pages each time
/// (0.3 s of a 2 M-event replay's load, docs/PERFORMANCE.md).
fn each_block(
    reader: impl std::io::Read + Send,
    block: usize,
    mut each: impl FnMut(Vec<u8>) -> Vec<u8>,
) -> std::io::Result<()> {
    use std::sync::mpsc;
    // One block read ahead, no more: a bound on memory.
    let (read_tx, read_rx) = mpsc::sync_channel::<Vec<u8>>(1);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || read_blocks(reader, block, &read_tx, &spare_rx));
        for full in read_rx {
            // The reader may have stopped on an error: the buffer is then
            // only dropped.
            let _ = spare_tx.send(each(full));
        }
        drop(spare_tx);
        reading
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the log reader stopped")))
    })
}

/// `each_block`'s reading side: sends each block of whole lines to `full`,
/// in buffers that come back on `spare` (three at most).
fn read_blocks(
    mut reader: impl std::io::Read,
    block: usize,
    full: &std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    use std::io::Read;
    const BUFFERS: usize = 3;
    let mut made = 1;
    let mut pending: Vec<u8> = Vec::with_capacity(block);
    loop {
        let want = block.saturating_sub(pending.len()).max(block.min(1 << 20)) as u64;
        let eof = (&mut reader).take(want).read_to_end(&mut pending)? == 0;
        let cut = if eof {
            pending.len()
        } else {
            match memchr::memrchr(b'\n', &pending) {
                Some(newline) => newline + 1,
                // No line ends in what was read yet: read on.
                None => continue,
            }
        };
        if cut > 0 {
            let mut next = match spare.try_recv() {
                Ok(buffer) => buffer,
                Err(_) if made < BUFFERS => {
                    made += 1;
                    Vec::new()
                }
                Err(_) => match spare.recv() {
                    Ok(buffer) => buffer,
                    // The blocks' user has gone: nothing more to read for.
                    Err(_) => return Ok(()),
                },
            };
            next.clear();
            next.reserve(block);
            next.extend_from_slice(&pending[cut..]);
            pending.truncate(cut);
            let ready = std::mem::replace(&mut pending, next);
            if full.send(ready).is_err() {
                return Ok(());
            }
        }
        if eof {
            return Ok(());
        }
    }
}

/// Reads and parses log files; `-` is standard input.
pub fn load_logs(
    paths: &[PathBuf],
    strict: bool,
    progress: &indicatif::ProgressBar,
) -> Result<LoadedLogs> {
    load(paths, strict, progress, None)
}

/// [`load_logs`], with the statuses that name no business folded into one
/// summary per message as each block is read ([`LoadedLogs::folded`])
/// instead of kept as events: what `replay` needs of them, in a fraction of
/// the memory and without moving them again (docs/PERFORMANCE.md). Their
/// implausible instants are found as they are folded, against `now`.
pub fn load_logs_folding(
    paths: &[PathBuf],
    strict: bool,
    progress: &indicatif::ProgressBar,
    now: Timestamp,
) -> Result<LoadedLogs> {
    // Prepared on every core when large, as `prepare` would choose.
    let large = paths.iter().any(|path| path.as_os_str() == "-")
        || total_size(paths) >= FOLD_IN_PARALLEL_FROM;
    let parts = if large {
        rayon::current_num_threads()
    } else {
        1
    };
    let folded = Folded {
        statuses: FoldedStatuses::in_parts(parts),
        implausible: Vec::new(),
    };
    load(paths, strict, progress, Some((folded, now)))
}

/// Logs of fewer bytes are folded, and prepared, on one thread.
const FOLD_IN_PARALLEL_FROM: u64 = 8 << 20;

fn load(
    paths: &[PathBuf],
    strict: bool,
    progress: &indicatif::ProgressBar,
    mut folding: Option<(Folded, Timestamp)>,
) -> Result<LoadedLogs> {
    let mut names = Vec::new();
    let mut events = Vec::new();
    // The events of the block parsed last, not yet in `events`.
    let mut unappended: Vec<Vec<Event>> = Vec::new();
    let mut malformed = Vec::new();
    let mut notices = Vec::new();
    let mut ignored = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let source = index as u32;
        names.push(path.display().to_string());
        let size = if path.as_os_str() == "-" {
            None
        } else {
            std::fs::metadata(path).ok().map(|m| m.len())
        };
        let reader: Box<dyn std::io::Read + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            )
        };
        let mut first_line = 1u32;
        each_block(reader, BLOCK, |block| {
            // A byte-order mark (looked for at the start of the file: line 1
            // begins only the first block, as every block but the last ends
            // at a newline) or a line that is not UTF-8 costs only itself.
            let (text, undecodable) = if first_line == 1 {
                wameter_log::decode_log(block, source)
            } else {
                wameter_log::decode_lines(block, source, first_line)
            };
            malformed.extend(undecodable);
            // Two runs a thread: work to steal should one finish early,
            // and runs long enough (about 10,000 lines) to share each user's
            // id across several lines.
            let (runs, next_line) =
                split_lines(&text, first_line, rayon::current_num_threads() * 2);
            // Sized once for the whole file, from its first block.
            let first_block = first_line == 1;
            let estimate = |read: usize| {
                let estimate = size.map_or(read as u64, |size| {
                    (read as u64).saturating_mul(size) / (text.len() as u64).max(1) * 21 / 20
                });
                usize::try_from(estimate).unwrap_or(read).max(read)
            };
            // The previous block's events are copied into `events` while
            // this one is parsed and folded: the copy, most of it the kernel
            // zeroing the vector's fresh pages, left a core idle between
            // blocks (docs/PERFORMANCE.md).
            let previous = std::mem::take(&mut unappended);
            let (chunks, ()) = rayon::join(
                || {
                    // The statuses naming no business are dealt out by wamid
                    // as they are read, as `prepare` will use them, and their
                    // implausible instants found while they are in cache.
                    let dealer = folding
                        .as_ref()
                        .map(|(folded, now)| (&folded.statuses, *now));
                    let (chunks, statuses): (Vec<_>, Vec<_>) = runs
                        .par_iter()
                        .map(|(run, first_line)| {
                            let chunk = match dealer {
                                Some((folded, now)) => {
                                    let (chunk, dealt) = parse_chunk_dealt(
                                        run,
                                        source,
                                        *first_line,
                                        folded.parts(),
                                        |id| folded.part_of(id),
                                    );
                                    let mut implausible: Vec<_> = dealt
                                        .iter()
                                        .flatten()
                                        .filter_map(|status| status.implausible(now))
                                        .collect();
                                    // In line order, as read.
                                    implausible.sort_by_key(|warning| warning.origin);
                                    (chunk, (dealt, implausible))
                                }
                                None => (
                                    parse_chunk(run, source, *first_line),
                                    (Vec::new(), Vec::new()),
                                ),
                            };
                            progress.inc(run.len() as u64);
                            chunk
                        })
                        .unzip();
                    if let Some((folded, _)) = &mut folding {
                        let before = folded.statuses.messages();
                        fold_statuses(statuses, &mut folded.statuses, &mut folded.implausible);
                        if first_block {
                            let new = folded.statuses.messages().saturating_sub(before);
                            folded.statuses.reserve(before + estimate(new));
                        }
                    }
                    chunks
                },
                || previous.into_iter().for_each(|run| events.extend(run)),
            );
            if first_block {
                let parsed: usize = chunks.iter().map(|chunk| chunk.events.len()).sum();
                events.reserve(estimate(parsed) + 1024);
            }
            for chunk in chunks {
                unappended.push(chunk.events);
                notices.extend(chunk.notices);
                malformed.extend(chunk.errors);
                ignored.extend(chunk.ignored);
            }
            first_line = next_line;
            text.into_bytes()
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
    }
    unappended.into_iter().for_each(|run| events.extend(run));
    let inferred = infer_outbounds(&mut events).into_iter().collect();
    malformed.sort_by_key(|error| error.origin);
    let logs = LoadedLogs {
        names,
        events,
        notices,
        malformed,
        ignored,
        inferred,
        folded: folding.map(|(folded, _)| folded),
    };
    if strict && !logs.malformed.is_empty() {
        let first = &logs.malformed[0];
        bail!(
            "{} (--strict; {} malformed line(s) in all)",
            logs.describe(first),
            logs.malformed.len()
        );
    }
    Ok(logs)
}

/// Folds the statuses naming no business of a block's runs into `folded`,
/// each part on its own thread, in input order (each run's statuses come
/// dealt out by part, with the implausible instants found among them).
fn fold_statuses(
    runs: Vec<(
        Vec<Vec<UnownedStatus<'_>>>,
        Vec<wameter_core::charge::Warning>,
    )>,
    folded: &mut FoldedStatuses,
    implausible_found: &mut Vec<wameter_core::charge::Warning>,
) {
    let parts = folded.parts();
    let mut by_part: Vec<Vec<Vec<UnownedStatus>>> = (0..parts).map(|_| Vec::new()).collect();
    for (dealt, implausible) in runs {
        implausible_found.extend(implausible);
        for (to, statuses) in by_part.iter_mut().zip(dealt) {
            to.push(statuses);
        }
    }
    folded
        .parts_mut()
        .par_iter_mut()
        .zip(by_part)
        .for_each(|(part, runs)| {
            part.fold_all(runs.into_iter().flatten());
        });
}

/// Total size of the files, for the progress bar (0 for standard input).
pub fn total_size(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::each_block;

    /// Blocks hold whole lines, a line longer than a block comes whole,
    /// the last line may lack its newline, and the buffers handed back
    /// serve the next blocks (no block leaves with less room than asked).
    #[test]
    fn blocks_are_whole_lines_in_three_buffers() {
        let text = "a\nbb\nccc\na line longer than a block\n\ndd\neee";
        let mut seen = Vec::new();
        let mut buffers = std::collections::BTreeSet::new();
        each_block(text.as_bytes(), 8, |block| {
            assert!(block.capacity() >= 8);
            assert!(
                block.ends_with(b"\n") || seen.concat::<u8>().len() + block.len() == text.len(),
                "{:?}",
                String::from_utf8_lossy(&block)
            );
            buffers.insert(block.as_ptr() as usize);
            seen.push(block.clone());
            block
        })
        .unwrap();
        assert_eq!(seen.concat(), text.as_bytes());
        assert!(seen.len() >= 4, "{seen:?}");
        let long = b"a line longer than a block\n";
        assert!(
            seen.iter()
                .any(|b| b.windows(long.len()).any(|w| w == long)),
            "{seen:?}"
        );
        // Three buffers, and a fourth address when the long line grew one.
        assert!(buffers.len() <= 4, "{} buffers", buffers.len());
    }

    /// A read that fails after some lines: the blocks read before it are
    /// handed on, and the error is the result (the reading thread's, not
    /// lost with it).
    #[test]
    fn a_failed_read_is_the_result() {
        struct Failing(&'static [u8]);
        impl std::io::Read for Failing {
            fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("disk gone"));
                }
                let n = self.0.len().min(buffer.len()).min(3);
                buffer[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut seen = Vec::new();
        let result = each_block(Failing(b"aa\nbb\ncc\ndd\n"), 4, |block| {
            seen.push(block.clone());
            block
        });
        assert_eq!(result.map_err(|e| e.to_string()), Err("disk gone".into()));
        assert!(
            !seen.is_empty() && seen.concat().ends_with(b"\n"),
            "{seen:?}"
        );
    }
}
