//! Rendering a replay: the `replay --json` document (interfaces §4) and the
//! human table.

use std::io::Write;

use wameter_core::engine::{Report, WhatIf};
use wameter_core::money::format_amount;
use wameter_core::report::{summary, totals_with_calls};
use wameter_log::replay_json::{Others, WarningJson, write_document};

use crate::input::LoadedLogs;

/// What `replay` prints (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The human tables.
    Table,
    /// The JSON document (interfaces §4).
    Json,
    /// Every charge, call and agent usage as CSV rows (docs/interfaces.md, "Exports").
    Csv,
    /// The same rows as a Parquet file, typed (decimal amounts, timestamps, dates).
    Parquet,
}

/// Where output goes: `path`, or standard output. Parquet (`binary`) goes
/// to a terminal only by mistake: it needs `-o` there.
pub fn open(path: Option<&std::path::Path>, binary: bool) -> anyhow::Result<Box<dyn Write + Send>> {
    use std::io::IsTerminal;
    match path {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("{}: cannot create it: {e}", path.display()))?;
            Ok(Box::new(std::io::BufWriter::new(file)))
        }
        None if binary && std::io::stdout().is_terminal() => {
            anyhow::bail!("Parquet is binary: write it to a file with `-o FILE` (or pipe it)")
        }
        None => Ok(Box::new(std::io::BufWriter::new(std::io::stdout()))),
    }
}

/// Writes `table` as CSV or Parquet to `out` (which is `path`, or
/// standard output when `None`: named in errors).
pub fn export<T: wameter_export::Table + ?Sized>(
    out: &mut (dyn Write + Send),
    path: Option<&std::path::Path>,
    format: Format,
    table: &T,
) -> anyhow::Result<()> {
    let written = match format {
        Format::Parquet => wameter_export::write_parquet(out, table),
        _ => wameter_export::write_csv(out, table),
    };
    written.map_err(|e| {
        let to = path.map_or_else(
            || "standard output".to_string(),
            |p| p.display().to_string(),
        );
        anyhow::anyhow!("{to}: {e}")
    })
}

fn warnings_json<'a>(report: &'a Report, logs: &'a LoadedLogs) -> Vec<WarningJson<'a>> {
    let mut out: Vec<WarningJson> = logs
        .malformed
        .iter()
        .map(|error| WarningJson {
            code: "malformed_line",
            message: error.to_string(),
            file: logs.source_name(error.origin.source),
            line: Some(error.origin.line),
            event: None,
        })
        .collect();
    if let Some(message) = logs.inferred_summary() {
        out.push(WarningJson {
            code: "outbound_inferred",
            message,
            file: None,
            line: None,
            event: None,
        });
    }
    if let Some(message) = logs.ignored_summary() {
        out.push(WarningJson {
            code: "ignored_webhook_items",
            message,
            file: None,
            line: None,
            event: None,
        });
    }
    out.extend(report.warnings.iter().map(|warning| WarningJson {
        code: warning.code,
        message: warning.message.clone(),
        file: warning.origin.and_then(|o| logs.source_name(o.source)),
        line: warning.origin.map(|o| o.line),
        event: None,
    }));
    out
}

/// Writes the `replay --json` document, streaming the charges.
pub fn write_json(
    out: &mut impl Write,
    report: &Report,
    logs: &LoadedLogs,
    what_if: WhatIf,
) -> std::io::Result<()> {
    let others = Others {
        calls: &report.calls,
        agent: &report.agent,
    };
    write_document(
        out,
        &report.charges,
        others,
        &warnings_json(report, logs),
        what_if,
    )
}

/// The calls: one line per call with `--messages`, then totals by
/// business-local month × market × direction.
fn write_calls(out: &mut impl Write, report: &Report, each: bool) -> std::io::Result<()> {
    if each {
        let rows: Vec<Vec<String>> = report
            .calls
            .iter()
            .map(|c| {
                vec![
                    c.started_at.to_string(),
                    c.call_id.to_string(),
                    c.user.to_string(),
                    c.market.to_string(),
                    c.direction.as_str().into(),
                    format!("{} s", c.duration_seconds),
                    if c.billable {
                        c.pulses.to_string()
                    } else {
                        "-".into()
                    },
                    format!("{} {}", format_amount(c.amount), c.currency),
                    format!(
                        "{}/{}{}",
                        c.ruleset,
                        c.rule,
                        if c.uncertain { " (uncertain)" } else { "" }
                    ),
                ]
            })
            .collect();
        table(
            out,
            &[
                "Started",
                "Call",
                "User",
                "Market",
                "Direction",
                "Duration",
                "Pulses",
                "Amount",
                "Rule",
            ],
            &rows,
            &[false, false, false, false, false, true, true, true, false],
        )?;
        writeln!(out)?;
    }
    let mut lines: std::collections::BTreeMap<
        (String, String, &'static str, String),
        (u64, u64, u64, rust_decimal::Decimal),
    > = Default::default();
    for call in &report.calls {
        let key = (
            call.local_date.strftime("%Y-%m").to_string(),
            call.market.to_string(),
            call.direction.as_str(),
            call.currency.to_string(),
        );
        let line = lines.entry(key).or_default();
        line.0 += 1;
        line.1 += u64::from(call.billable);
        line.2 += if call.billable { call.pulses } else { 0 };
        line.3 += call.amount;
    }
    let rows: Vec<Vec<String>> = lines
        .into_iter()
        .map(
            |((month, market, direction, currency), (calls, billable, pulses, amount))| {
                vec![
                    month,
                    market,
                    direction.to_string(),
                    calls.to_string(),
                    billable.to_string(),
                    billed_minutes(pulses),
                    format!("{} {currency}", format_amount(amount)),
                ]
            },
        )
        .collect();
    table(
        out,
        &[
            "Month", "Market", "Calls", "Count", "Billable", "Minutes", "Amount",
        ],
        &rows,
        &[false, false, false, true, true, true, true],
    )?;
    let uncertain = report.calls.iter().filter(|c| c.uncertain).count();
    if uncertain > 0 {
        writeln!(
            out,
            "{uncertain} call(s) billed although Meta's webhook leaves doubt (failed with a duration, or 138023); `[rules] failed_calls_free = true` makes failed ones free"
        )?;
    }
    Ok(())
}

/// Meta Business Agent usage by business-local month and currency.
fn write_agent(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let mut lines: std::collections::BTreeMap<(String, String), (u64, u64, rust_decimal::Decimal)> =
        Default::default();
    for usage in &report.agent {
        let line = lines
            .entry((
                usage.local_date.strftime("%Y-%m").to_string(),
                usage.currency.to_string(),
            ))
            .or_default();
        line.0 += 1;
        line.1 += usage.tokens;
        line.2 += usage.amount;
    }
    let rows: Vec<Vec<String>> = lines
        .into_iter()
        .map(|((month, currency), (usages, tokens, amount))| {
            vec![
                month,
                "meta_business_agent".into(),
                usages.to_string(),
                tokens.to_string(),
                format!("{} {currency}", format_amount(amount)),
            ]
        })
        .collect();
    table(
        out,
        &["Month", "Category", "Usages", "Tokens", "Amount"],
        &rows,
        &[false, false, true, true, true],
    )
}

/// Billed minutes of `pulses` 6-second pulses (`2.3`).
fn billed_minutes(pulses: u64) -> String {
    format_amount(rust_decimal::Decimal::from(pulses) / rust_decimal::Decimal::TEN)
}

fn pad(cells: &[String], widths: &[usize], right: &[bool]) -> String {
    cells
        .iter()
        .zip(widths)
        .zip(right)
        .map(|((cell, width), right)| {
            if *right {
                format!("{cell:>width$}")
            } else {
                format!("{cell:<width$}")
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_string()
}

/// Writes a table with aligned columns; `right` marks right-aligned ones.
pub fn table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: &[bool],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", pad(&header, &widths, right))?;
    for row in rows {
        writeln!(out, "{}", pad(row, &widths, right))?;
    }
    Ok(())
}

/// Writes the human report: totals by month × category × market, optional
/// per-message lines, warnings.
pub fn write_table(
    out: &mut impl Write,
    report: &Report,
    logs: &LoadedLogs,
    messages: bool,
) -> std::io::Result<()> {
    let stats = &report.stats;
    writeln!(
        out,
        "{} event(s) from {} file(s): {} delivered message(s), {} failed, {} without delivery status, {} duplicate(s) dropped\n",
        stats.events,
        logs.names.len(),
        stats.delivered,
        stats.failed,
        stats.undelivered,
        stats.duplicates
    )?;
    if messages {
        let rows: Vec<Vec<String>> = report
            .charges
            .iter()
            .map(|c| {
                vec![
                    c.delivered_at.to_string(),
                    c.message_id.to_string(),
                    c.user.to_string(),
                    c.market.to_string(),
                    c.category.as_str().into(),
                    c.pricing_type.as_str().into(),
                    format!("{} {}", format_amount(c.amount), c.currency),
                    format!("{}/{}", c.ruleset, c.rule),
                ]
            })
            .collect();
        table(
            out,
            &[
                "Delivered",
                "Message",
                "User",
                "Market",
                "Category",
                "Type",
                "Amount",
                "Rule",
            ],
            &rows,
            &[false, false, false, false, false, false, true, false],
        )?;
        writeln!(out)?;
    }
    let rows: Vec<Vec<String>> = summary(&report.charges)
        .into_iter()
        .map(|(key, line)| {
            vec![
                key.month,
                key.category.to_string(),
                key.market,
                line.messages.to_string(),
                line.charged.to_string(),
                format!("{} {}", format_amount(line.amount), key.currency),
            ]
        })
        .collect();
    if rows.is_empty() {
        writeln!(out, "No delivered business messages.")?;
    } else {
        table(
            out,
            &[
                "Month", "Category", "Market", "Messages", "Charged", "Amount",
            ],
            &rows,
            &[false, false, false, true, true, true],
        )?;
    }
    writeln!(out)?;
    if !report.calls.is_empty() {
        write_calls(out, report, messages)?;
        writeln!(out)?;
    }
    if !report.agent.is_empty() {
        write_agent(out, report)?;
        writeln!(out)?;
    }
    let mut totals = totals_with_calls(&report.charges, &report.calls);
    wameter_core::report::add_agent(&mut totals, &report.agent);
    for total in totals {
        let calls = if report.calls.is_empty() {
            String::new()
        } else {
            format!(", {} billable call(s)", total.billable_calls)
        };
        writeln!(
            out,
            "Total {} {}  ({} billable message(s), {} conversation(s) opened{calls})",
            format_amount(total.amount),
            total.currency,
            total.billable_messages,
            total.conversations
        )?;
    }
    let warnings = warnings_json(report, logs);
    if !warnings.is_empty() {
        writeln!(out, "\n{} warning(s):", warnings.len())?;
        for warning in warnings.iter().take(20) {
            match (warning.file, warning.line) {
                (Some(file), Some(line)) => writeln!(out, "  {file}:{line}: {}", warning.message)?,
                _ => writeln!(out, "  {}", warning.message)?,
            }
        }
        if warnings.len() > 20 {
            writeln!(
                out,
                "  … and {} more (all of them with --json)",
                warnings.len() - 20
            )?;
        }
    }
    Ok(())
}
