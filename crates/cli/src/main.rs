//! `wameter`: meters WhatsApp Cloud API charges from a log of what happened.
//!
//! This binary is glue: it reads files, runs the pure engine of
//! `wameter-core` (in parallel over contacts) and prints what it decided.

mod diff;
mod events;
mod generate;
mod input;
mod invoice;
mod markets;
mod output;
mod quote;
mod rates;
mod reconcile;
mod sandbox;
mod serve;
mod tables;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc rather than the system allocator: a replay allocates and frees
/// millions of small strings, where glibc's malloc spent a fifth of the
/// time (consolidating free chunks among it); measured 17 % faster on 2 M
/// events, and `serve` holds less in the soak (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wameter_core::category::PricingModel;
use wameter_core::engine::{Report, prepare, prepare_folded};
use wameter_core::event::{Event, EventKind};
use wameter_core::market::MarketTable;
use wameter_core::money::format_amount;
use wameter_core::rules::calling::CallCharge;

use crate::input::{EngineArgs, LoadedLogs, Setup, load_logs, load_logs_folding, total_size};

/// Meters, explains and predicts what Meta charges for WhatsApp Cloud API messages.
#[derive(Parser)]
#[command(name = "wameter", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay event logs through the rules in force at each delivery and print the charges.
    Replay {
        /// Event logs: canonical events and Meta webhook bodies, mixed freely (`-` for standard input).
        #[arg(required = true, value_name = "LOG")]
        logs: Vec<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Print the machine-readable document (interfaces §4): `--format json`.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// What to print: the table, the JSON document, or every charge, call and agent
        /// usage as one typed table in CSV or Parquet (docs/interfaces.md, "Exports").
        #[arg(long, value_enum)]
        format: Option<output::Format>,
        /// Write to this file instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also write the overview (by day and category, month by month, allowance, calls)
        /// as one self-contained HTML file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// The month the HTML report shows by day (default: the latest with charges).
        #[arg(long, value_name = "YYYY-MM", requires = "html")]
        month: Option<String>,
        /// Also list every delivered message.
        #[arg(long)]
        messages: bool,
        /// Only read and parse the logs, then print event counts (the floor for benchmarks).
        #[arg(long)]
        parse_only: bool,
    },
    /// Show the decision trail of one message: windows, conversations, ruleset, rule, market, card, tier.
    Explain {
        /// Canonical NDJSON event logs.
        #[arg(required = true, value_name = "LOG")]
        logs: Vec<PathBuf>,
        /// The wamid to explain.
        #[arg(long, value_name = "WAMID")]
        message: String,
        #[command(flatten)]
        engine: EngineArgs,
        /// Print the charge as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the canonical events (and notices) a log turns into: what was understood of Meta's webhooks.
    Events {
        /// Logs: Meta webhook bodies and canonical events, mixed freely (`-` for standard input).
        #[arg(required = true, value_name = "LOG")]
        logs: Vec<PathBuf>,
        /// Make a malformed line (or unreadable webhook item) fatal.
        #[arg(long)]
        strict: bool,
        /// `ndjson` (canonical lines and notices), or the events as a typed table in
        /// `csv` or `parquet` (docs/interfaces.md, "Exports").
        #[arg(long, value_enum, default_value = "ndjson")]
        format: events::Format,
        /// Write to this file instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Compare Meta's pricing verdicts (status webhooks, Graph analytics) with the engine's, and list template category drift.
    Reconcile(Box<reconcile::ReconcileArgs>),
    /// Run the meter as a service: Meta's webhooks in (signed, stored durably), windows, charges and reports out.
    Serve(Box<serve::ServeArgs>),
    /// A local WhatsApp Cloud API for development: Meta's paths, windows, statuses and webhooks, billed by the engine.
    Sandbox(Box<sandbox::SandboxArgs>),
    /// Generate seedable synthetic traffic in the canonical format.
    Gen(generate::GenArgs),
    /// Estimate what a campaign or a month of sends will cost, before sending.
    Quote(Box<quote::QuoteArgs>),
    /// A client's month: Meta's charges for its WABAs with its markup rules applied (CSV or JSON).
    Invoice(Box<invoice::InvoiceArgs>),
    /// Compare two `replay --json` documents by month × category × market.
    Diff {
        /// The reference document (e.g. the replay as Meta priced it).
        a: PathBuf,
        /// The document compared with it (e.g. a what-if replay).
        b: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rate cards and volume tiers: built in, imported, checked.
    Rates {
        #[command(subcommand)]
        command: RatesCommand,
    },
    /// Meta's markets: which one a number belongs to, and what each contains.
    Markets {
        #[command(subcommand)]
        command: MarketsCommand,
    },
}

#[derive(Subcommand)]
enum RatesCommand {
    /// List the built-in and imported rate cards, with provenance, status and known gaps.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Which card prices each date: ranges × currency, with each card's status and missing markets.
    Coverage {
        /// Only this billing currency (default: every currency with a card).
        #[arg(long)]
        currency: Option<String>,
        /// From this date (default: 2022-02-01, the first supported era).
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<jiff::civil::Date>,
        /// Until this date, exclusive (default: open-ended).
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: Option<jiff::civil::Date>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the card (and volume tiers) in force for a currency on a date.
    Show {
        /// Date (default: today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<jiff::civil::Date>,
        /// Billing currency (default: USD).
        #[arg(long, default_value = "USD")]
        currency: String,
        /// Pricing model (default: the one in force on the date).
        #[arg(long, value_parser = ["cbp", "pmp", "CBP", "PMP"])]
        model: Option<String>,
        /// Show these volume-tier files instead of the built-in and imported tiers.
        #[arg(long = "tiers", value_name = "FILE")]
        tiers: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add a Meta CSV (rates or volume tiers) to the local rate store used by later commands.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Validate rate or tier files and report every problem with its row and column.
    Check {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MarketsCommand {
    /// The market of phone numbers or business-scoped user ids, and the rule that matched.
    Lookup {
        /// E.164 numbers (`+5511999990000`) or BSUIDs (`BR.1502…`).
        #[arg(required = true, value_name = "NUMBER|BSUID")]
        users: Vec<String>,
        /// Date (default: today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<jiff::civil::Date>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every market on a date with its countries and calling codes.
    List {
        /// Date (default: today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<jiff::civil::Date>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Today in the machine's time zone: the default date of commands that ask
/// about "now". The engine itself never reads a clock.
fn today() -> jiff::civil::Date {
    jiff::ZonedDateTime::now().date()
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The events that mention one message id (its outbound and statuses).
fn events_of(events: &[Event], message: &str) -> Vec<Event> {
    events
        .iter()
        .filter(|event| match &event.kind {
            EventKind::Outbound { id, .. } => **id == *message,
            EventKind::Status { id, .. } => **id == *message,
            EventKind::Call(call) => *call.id == *message,
            EventKind::AgentUsage(usage) => *usage.id == *message,
            EventKind::Inbound { .. } => false,
        })
        .cloned()
        .collect()
}

/// Reads, parses and replays; engine work runs in parallel over contacts.
/// The events go to the engine; only those of `keep_message` are kept back.
pub(crate) fn run_replay(
    logs: &[PathBuf],
    args: &EngineArgs,
    keep_message: Option<&str>,
    reasons: bool,
) -> Result<(LoadedLogs, Report, Setup, Vec<Event>)> {
    let setup: Setup = args.setup()?;
    let mut stages = Stages::start();
    let bar = progress_bar(total_size(logs));
    bar.set_message("reading");
    let now = jiff::Timestamp::now();
    // `explain` shows the events of its message, statuses included; every
    // other replay needs only a summary of the statuses naming no business.
    let mut loaded = match keep_message {
        Some(_) => load_logs(logs, args.strict, &bar)?,
        None => load_logs_folding(logs, args.strict, &bar, now)?,
    };
    stages.lap("load");
    bar.set_message("replaying");
    let mut engine = setup.pricing.engine();
    engine.what_if = args.what_if();
    // Only `explain` shows a charge's whole decision; a report or a
    // document does not, and keeping it cost a 2 M-event replay a tenth
    // of its page faults (docs/PERFORMANCE.md).
    engine.explain = keep_message.is_some();
    // Nor does a table of totals show a charge's reason (docs/PERFORMANCE.md).
    engine.reasons = reasons;
    let kept = keep_message
        .map(|id| events_of(&loaded.events, id))
        .unwrap_or_default();
    let mut implausible = wameter_core::event::implausible_instants(&loaded.events, now);
    stages.lap("implausible");
    let events = std::mem::take(&mut loaded.events);
    let mut prepared = match loaded.folded.take() {
        Some(folded) => {
            implausible.extend(folded.implausible);
            let prepared = prepare_folded(&events, folded.statuses);
            drop(events);
            prepared
        }
        None => prepare(events),
    };
    stages.lap("prepare");
    let decided = engine.decide_all(std::mem::take(&mut prepared.contacts));
    stages.lap("decide");
    let mut report = engine.settle_decided(prepared, decided);
    stages.lap("settle");
    if !implausible.is_empty() {
        report.warnings.extend(implausible);
        report
            .warnings
            .sort_by(|a, b| (a.origin, a.code).cmp(&(b.origin, b.code)));
    }
    bar.finish_and_clear();
    Ok((loaded, report, setup, kept))
}

/// Wall and CPU time of each stage of a replay, logged at debug level
/// (`WAMETER_LOG=wameter=debug wameter replay …`): where a replay's time
/// goes, without a profiler. System time and minor page faults are shown
/// apart: on a VM, touching fresh memory is a large part of a big replay.
struct Stages {
    wall: std::time::Instant,
    usage: Option<Usage>,
    on: bool,
}

impl Stages {
    fn start() -> Stages {
        let on = std::env::var_os("WAMETER_LOG").is_some();
        if on {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_env("WAMETER_LOG"))
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .try_init();
        }
        Stages {
            wall: std::time::Instant::now(),
            usage: Usage::now(),
            on,
        }
    }

    fn lap(&mut self, stage: &str) {
        if !self.on {
            return;
        }
        let (wall, usage) = (std::time::Instant::now(), Usage::now());
        let (cpu_ms, sys_ms, faults) = match (self.usage, usage) {
            (Some(before), Some(now)) => (
                now.cpu()
                    .saturating_sub(before.cpu())
                    .as_millis()
                    .to_string(),
                now.system
                    .saturating_sub(before.system)
                    .as_millis()
                    .to_string(),
                now.minor_faults
                    .saturating_sub(before.minor_faults)
                    .to_string(),
            ),
            _ => Default::default(),
        };
        let (rss_mb, peak_mb) = resident_mb();
        tracing::debug!(
            stage,
            wall_ms = format!("{:.0}", (wall - self.wall).as_secs_f64() * 1e3),
            cpu_ms,
            sys_ms,
            faults,
            rss_mb,
            peak_mb,
            "replay stage"
        );
        (self.wall, self.usage) = (wall, usage);
    }
}

/// Resident memory now and at its peak so far, in MB (`VmRSS`, `VmHWM` of
/// `/proc/self/status`); empty where there is none. Which stage sets a
/// replay's peak is what bounding its memory starts from.
fn resident_mb() -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map_or_else(String::new, |kb| (kb / 1000).to_string())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The whole process's resource use so far (every thread).
#[derive(Clone, Copy)]
struct Usage {
    user: std::time::Duration,
    system: std::time::Duration,
    minor_faults: u64,
}

impl Usage {
    /// From `/proc/self/stat`; `None` where there is none.
    fn now() -> Option<Usage> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at its `)`.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |at: usize| fields.get(at)?.parse::<u64>().ok();
        // Clock ticks; 100 per second on Linux.
        let ticks = |at: usize| field(at).map(|ticks| std::time::Duration::from_millis(ticks * 10));
        Some(Usage {
            minor_faults: field(7)?,
            user: ticks(11)?,
            system: ticks(12)?,
        })
    }

    fn cpu(self) -> std::time::Duration {
        self.user + self.system
    }
}

pub(crate) fn print_pricing_errors(logs: &LoadedLogs, report: &Report) -> bool {
    if report.errors.is_empty() {
        return false;
    }
    let mut stderr = std::io::stderr().lock();
    for error in report.errors.iter().take(50) {
        let _ = writeln!(
            stderr,
            "error: {}: {}: {}",
            logs.position(error.origin),
            error.message_id,
            error.message
        );
    }
    if report.errors.len() > 50 {
        let _ = writeln!(stderr, "error: … and {} more", report.errors.len() - 50);
    }
    let _ = writeln!(
        stderr,
        "error: {} delivered message(s) or connected call(s) cannot be priced without guessing; nothing printed",
        report.errors.len()
    );
    true
}

pub(crate) fn report_malformed(logs: &LoadedLogs) {
    if logs.malformed.is_empty() {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    for error in logs.malformed.iter().take(20) {
        let _ = writeln!(stderr, "warning: {}: skipped", logs.describe(error));
    }
    let _ = writeln!(
        stderr,
        "warning: {} malformed line(s) skipped (listed in the report; --strict makes them fatal)",
        logs.malformed.len()
    );
}

fn replay(
    logs: Vec<PathBuf>,
    engine: EngineArgs,
    format: output::Format,
    to: Option<PathBuf>,
    messages: bool,
    html: Option<(PathBuf, Option<String>)>,
) -> Result<ExitCode> {
    if let Some((_, Some(month))) = &html
        && wameter_core::settlement::Month::parse(month).is_none()
    {
        anyhow::bail!("--month {month}: expected YYYY-MM");
    }
    let mut out = output::open(to.as_deref(), format == output::Format::Parquet)?;
    // Only a table (totals, and `--messages` without reasons) shows no
    // charge's reason; documents and the HTML report do.
    let reasons = format != output::Format::Table || html.is_some();
    let (loaded, report, setup, _) = run_replay(&logs, &engine, None, reasons)?;
    report_malformed(&loaded);
    if print_pricing_errors(&loaded, &report) {
        return Ok(ExitCode::from(1));
    }
    if let Some((file, month)) = &html {
        let count = wameter_export::Table::len(&wameter_export::ReportRows(&report));
        let rows: Vec<wameter_export::Row> = (0..count)
            .map(|index| wameter_export::Row::of(&report, index))
            .collect();
        std::fs::write(file, wameter_pages::report(&rows, month.as_deref()))
            .map_err(|e| anyhow::anyhow!("{}: cannot write it: {e}", file.display()))?;
    }
    if matches!(format, output::Format::Csv | output::Format::Parquet) {
        let rows = wameter_export::ReportRows(&report);
        output::export(&mut out, to.as_deref(), format, &rows)?;
    } else if format == output::Format::Json {
        output::write_json(&mut out, &report, &loaded, engine.what_if())?;
    } else {
        let what_if = engine.what_if();
        if let Some(ruleset) = what_if.ruleset {
            writeln!(
                out,
                "What-if: every delivery priced under {ruleset} ({}), not as Meta priced it",
                ruleset.status()
            )?;
        }
        if let Some(date) = what_if.rates_on {
            writeln!(out, "What-if: rate cards and volume tiers of {date}")?;
        }
        output::write_table(&mut out, &report, &loaded, messages)?;
        let invoices =
            invoice::every_client_month(&report.charges, &setup.pricing.accounts, &setup.billing);
        if !invoices.is_empty() {
            writeln!(
                out,
                "\nClient re-billing (markup rules of the accounts file; details: wameter invoice):"
            )?;
            for problem in invoices.iter().filter_map(|i| i.as_ref().err()) {
                writeln!(out, "  not re-billed: {problem}")?;
            }
            let rows: Vec<Vec<String>> = invoices
                .iter()
                .filter_map(|i| i.as_ref().ok())
                .map(|i| {
                    let t = &i.total;
                    vec![
                        i.client.clone(),
                        i.month.clone(),
                        t.billable.to_string(),
                        format!("{} {}", t.meta_cost, i.currency),
                        format!("{} {}", t.client_cost, i.currency),
                    ]
                })
                .collect();
            output::table(
                &mut out,
                &["Client", "Month", "Billable", "Meta cost", "Client cost"],
                &rows,
                &[false, false, true, true, true],
            )?;
        }
    }
    out.flush()?;
    // The process ends here: freeing millions of charges and events one by
    // one took 6 % of a replay (perf), and the OS takes the memory back
    // whole.
    std::mem::forget((loaded, report, setup));
    Ok(ExitCode::SUCCESS)
}

fn explain(
    logs: Vec<PathBuf>,
    message: String,
    engine: EngineArgs,
    json: bool,
) -> Result<ExitCode> {
    let (loaded, report, setup, events) = run_replay(&logs, &engine, Some(&message), true)?;
    report_malformed(&loaded);
    if let Some(error) = report.errors.iter().find(|e| *e.message_id == *message) {
        eprintln!(
            "error: {}: {message} cannot be priced: {}",
            loaded.position(error.origin),
            error.message
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(call) = report.calls.iter().find(|c| *c.call_id == *message) {
        return explain_call(&report, call, &loaded, &setup, engine.what_if(), json);
    }
    if let Some(usage) = report.agent.iter().find(|u| *u.usage_id == *message) {
        if json {
            let one = Report {
                charges: Vec::new(),
                agent: vec![usage.clone()],
                warnings: Vec::new(),
                ..report.clone()
            };
            let one = Report {
                calls: Vec::new(),
                ..one
            };
            output::write_json(
                &mut std::io::stdout().lock(),
                &one,
                &loaded,
                engine.what_if(),
            )?;
        } else {
            println!(
                "Agent usage {}\n  read from        {}\n  business         {}\n  user             {}\n  at               {} (local date {})\n  tokens           {}\n  ruleset          {} (docs/rules.md §15)\n  rule             {}\n  amount           {} {}\n  reason           {}",
                usage.usage_id,
                loaded.position(usage.origin),
                usage.business,
                usage.user,
                usage.at,
                usage.local_date,
                usage.tokens,
                usage.ruleset,
                usage.rule,
                format_amount(usage.amount),
                usage.currency,
                usage.reason
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(charge) = report.charges.iter().find(|c| *c.message_id == message) else {
        // Say what the log does know about it.
        let mut seen = Vec::new();
        for event in &events {
            match &event.kind {
                EventKind::Outbound { .. } => seen.push(format!(
                    "{}: outbound at {}",
                    loaded.position(event.origin),
                    event.at
                )),
                EventKind::Status { status, error, .. } => seen.push(format!(
                    "{}: status {status:?} at {}{}",
                    loaded.position(event.origin),
                    event.at,
                    error.map(|e| format!(" (error {e})")).unwrap_or_default()
                )),
                _ => {}
            }
        }
        if seen.is_empty() {
            eprintln!("error: message {message} does not appear in the log");
        } else {
            eprintln!("message {message} was not delivered, so Meta does not charge for it:");
            for line in seen {
                eprintln!("  {line}");
            }
        }
        return Ok(ExitCode::from(1));
    };
    let mut out = std::io::stdout().lock();
    if json {
        let mut one = report.clone();
        one.charges = vec![charge.clone()];
        one.warnings.clear();
        output::write_json(&mut out, &one, &loaded, engine.what_if())?;
        return Ok(ExitCode::SUCCESS);
    }
    let trail = &charge.trail;
    // `explain` replays with an explaining engine (see `run_replay`).
    let Some(explained) = trail.explained() else {
        anyhow::bail!("the engine kept no explanation for {}", charge.message_id);
    };
    let business = setup.pricing.accounts.get_or_default(&charge.business);
    let when = |t: Option<jiff::Timestamp>| t.map_or("none".to_string(), |t| t.to_string());
    writeln!(out, "Message {}", charge.message_id)?;
    writeln!(out, "  read from        {}", loaded.position(trail.origin))?;
    if let Some(account) = &charge.messaging_account {
        writeln!(
            out,
            "  billed through   Messaging account {account} (its currency and time zone; the window and the service allowance are the number's)"
        )?;
    }
    writeln!(
        out,
        "  business         {} (WABA {}, portfolio {}, {}, {})",
        charge.business, business.waba, business.portfolio, explained.timezone, charge.currency
    )?;
    writeln!(
        out,
        "  user             {} → market {} ({})",
        charge.user, charge.market, explained.market_rule
    )?;
    match &trail.template {
        Some(t) => writeln!(
            out,
            "  message          template `{}`, category {}",
            t.name,
            t.category.as_str()
        )?,
        None => writeln!(out, "  message          free-form (not a template)")?,
    }
    writeln!(out, "  sent             {}", trail.sent_at)?;
    writeln!(
        out,
        "  delivered        {} (local date {} — selects ruleset, card and month)",
        charge.delivered_at, charge.local_date
    )?;
    writeln!(
        out,
        "  last inbound     {}",
        when(explained.last_inbound_at)
    )?;
    match explained.customer_service_window {
        Some(w) => writeln!(
            out,
            "  service window   open, {} → {}",
            w.opened_at, w.closes_at
        )?,
        None => writeln!(out, "  service window   closed")?,
    }
    match explained.free_entry_point {
        Some(w) => writeln!(
            out,
            "  free entry point open, {} → {}",
            w.opened_at, w.closes_at
        )?,
        None => writeln!(out, "  free entry point none")?,
    }
    if explained.open_conversations.is_empty() {
        writeln!(out, "  conversations    none open before delivery")?;
    } else {
        for (id, category, window) in &explained.open_conversations {
            writeln!(
                out,
                "  conversations    {category} {id}, {} → {}",
                window.opened_at, window.closes_at
            )?;
        }
    }
    writeln!(
        out,
        "  ruleset          {} ({})",
        charge.ruleset,
        charge.ruleset.status()
    )?;
    writeln!(out, "  rule             {}", charge.rule)?;
    writeln!(
        out,
        "  verdict          {} / {} / {} / billable {}",
        charge.pricing_model.as_str(),
        charge.category,
        charge.pricing_type.as_str(),
        charge.billable
    )?;
    if let Some(id) = &charge.conversation_id {
        writeln!(
            out,
            "  conversation     {id}{}",
            if charge.opens_conversation {
                " (opened by this message)"
            } else {
                ""
            }
        )?;
    }
    writeln!(
        out,
        "  rate card        {}",
        explained.rate_card.as_deref().unwrap_or("not needed")
    )?;
    if let Some(rate) = explained.rate {
        writeln!(
            out,
            "  rate             {} {}",
            format_amount(rate),
            charge.currency
        )?;
    }
    if let Some(counter) = &explained.counter {
        writeln!(out, "  counter          {counter}")?;
    }
    writeln!(
        out,
        "  tier             {}",
        charge.tier.as_deref().unwrap_or("none")
    )?;
    writeln!(
        out,
        "  amount           {} {}",
        format_amount(charge.amount),
        charge.currency
    )?;
    writeln!(out, "  reason           {}", charge.reason)?;
    for note in &trail.notes {
        writeln!(out, "  note             {note}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `explain` for a call id: its pricing, step by step.
fn explain_call(
    report: &Report,
    call: &CallCharge,
    loaded: &LoadedLogs,
    setup: &Setup,
    what_if: wameter_core::engine::WhatIf,
    json: bool,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        let one = Report {
            charges: Vec::new(),
            calls: vec![call.clone()],
            ..report.clone()
        };
        let one = Report {
            warnings: Vec::new(),
            ..one
        };
        output::write_json(&mut out, &one, loaded, what_if)?;
        return Ok(ExitCode::SUCCESS);
    }
    let business = setup
        .pricing
        .accounts
        .payer(&call.business, call.messaging_account.as_deref());
    let market = MarketTable::builtin().lookup(&call.user, call.local_date);
    writeln!(out, "Call {}", call.call_id)?;
    writeln!(out, "  read from        {}", loaded.position(call.origin))?;
    if let Some(account) = &call.messaging_account {
        writeln!(out, "  billed through   Messaging account {account}")?;
    }
    writeln!(
        out,
        "  business         {} (WABA {}, portfolio {}, {}, {})",
        call.business,
        business.waba,
        business.portfolio,
        business.timezone_name(),
        call.currency
    )?;
    writeln!(
        out,
        "  user             {} → market {} ({})",
        call.user, call.market, market.rule
    )?;
    writeln!(out, "  direction        {}", call.direction.as_str())?;
    writeln!(
        out,
        "  started          {} (local date {} — selects the calling rates and the month)",
        call.started_at, call.local_date
    )?;
    writeln!(
        out,
        "  connected        {} s → {} pulse(s) of 6 s",
        call.duration_seconds, call.pulses
    )?;
    writeln!(
        out,
        "  ended            {}{}",
        call.status.as_str(),
        call.error
            .map(|e| format!(" (error {e})"))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "  ruleset          {} (docs/rules.md §14)",
        call.ruleset
    )?;
    writeln!(out, "  rule             {}", call.rule)?;
    writeln!(
        out,
        "  billable         {}{}",
        call.billable,
        if call.uncertain { " (uncertain)" } else { "" }
    )?;
    if let Some((file, partial)) = &call.rates_source {
        writeln!(
            out,
            "  calling rates    {file}{}",
            if *partial {
                " (partial: other markets missing)"
            } else {
                ""
            }
        )?;
    }
    if let Some(rate) = call.rate_per_minute {
        writeln!(
            out,
            "  rate             {} {} per minute",
            format_amount(rate),
            call.currency
        )?;
    }
    if call.billable {
        let (per_minute, counted) = if setup.pricing.accounts.options.call_bands_count_seconds {
            (60, "connected seconds")
        } else {
            (10, "billed minutes, pulses / 10")
        };
        let minutes = rust_decimal::Decimal::from(call.month_to_date)
            / rust_decimal::Decimal::from(per_minute);
        writeln!(
            out,
            "  month to date    {} minute(s) before this call in portfolio {}'s {} month ({counted})",
            format_amount(minutes.round_dp(4)),
            call.portfolio,
            call.market
        )?;
    }
    writeln!(
        out,
        "  tier             {}",
        call.tier.as_deref().unwrap_or("none")
    )?;
    writeln!(
        out,
        "  amount           {} {}",
        format_amount(call.amount),
        call.currency
    )?;
    writeln!(out, "  reason           {}", call.reason)?;
    Ok(ExitCode::SUCCESS)
}

fn parse_only(logs: Vec<PathBuf>, engine: EngineArgs) -> Result<ExitCode> {
    let bar = progress_bar(total_size(&logs));
    let loaded = load_logs(&logs, engine.strict, &bar)?;
    bar.finish_and_clear();
    report_malformed(&loaded);
    println!(
        "{} event(s), {} malformed line(s)",
        loaded.events.len(),
        loaded.malformed.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn rates(command: RatesCommand) -> Result<ExitCode> {
    match command {
        RatesCommand::List { json } => rates::list(json),
        RatesCommand::Coverage {
            currency,
            from,
            to,
            json,
        } => {
            let currency = currency
                .map(|c| {
                    wameter_core::money::Currency::parse(&c).ok_or_else(|| {
                        anyhow::anyhow!("`--currency {c}`: not an ISO 4217 code wameter knows")
                    })
                })
                .transpose()?;
            rates::coverage(currency, from, to, json)
        }
        RatesCommand::Show {
            date,
            currency,
            model,
            tiers,
            json,
        } => {
            let currency = wameter_core::money::Currency::parse(&currency)
                .ok_or_else(|| anyhow::anyhow!("unknown currency `{currency}`"))?;
            let model = model.map(|m| {
                if m.eq_ignore_ascii_case("cbp") {
                    PricingModel::Cbp
                } else {
                    PricingModel::Pmp
                }
            });
            rates::show(date.unwrap_or_else(today), currency, model, &tiers, json)
        }
        RatesCommand::Import { file } => rates::import(&file),
        RatesCommand::Check { files, json } => rates::check(&files, json),
    }
}

/// Turns transparent huge pages off for this process, for the commands
/// that run for days and answer within milliseconds.
///
/// The binary's allocator asks for huge pages (`thp:always` in
/// .cargo/config.toml): a batch run such as `replay` of 2 M events then
/// takes about 12,000 page faults where it took 230,000. A server gains
/// little from that and risks what huge pages cost a long-lived process: a
/// fault that waits for the kernel to compact memory, in the middle of a
/// request, and huge pages held for a few live bytes. Failing to turn them
/// off (a kernel without the flag) only leaves them on, so the error is
/// ignored.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            logs,
            engine,
            parse_only: true,
            ..
        } => parse_only(logs, engine),
        Command::Replay {
            logs,
            engine,
            json,
            format,
            output,
            html,
            month,
            messages,
            ..
        } => {
            let format = match (json, format) {
                (true, _) => output::Format::Json,
                (false, format) => format.unwrap_or(output::Format::Table),
            };
            replay(
                logs,
                engine,
                format,
                output,
                messages,
                html.map(|file| (file, month)),
            )
        }
        Command::Explain {
            logs,
            message,
            engine,
            json,
        } => explain(logs, message, engine, json),
        Command::Events {
            logs,
            strict,
            format,
            output,
        } => events::run(logs, strict, format, output),
        Command::Reconcile(args) => reconcile::run(*args),
        Command::Serve(args) => {
            without_huge_pages();
            serve::run(*args)
        }
        Command::Sandbox(args) => {
            without_huge_pages();
            sandbox::run(*args)
        }
        Command::Gen(args) => generate::run(args),
        Command::Quote(args) => quote::run(*args),
        Command::Invoice(args) => invoice::run(*args),
        Command::Diff { a, b, json } => diff::run(&a, &b, json),
        Command::Rates { command } => rates(command),
        Command::Markets {
            command: MarketsCommand::Lookup { users, date, json },
        } => markets::lookup(&users, date.unwrap_or_else(today), json),
        Command::Markets {
            command: MarketsCommand::List { date, json },
        } => markets::list(date.unwrap_or_else(today), json),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // `wameter replay … | head` closes our output early: not an error.
            let broken_pipe = error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
