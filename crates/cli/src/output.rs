//! Rendering a replay: the `replay --json` document (interfaces §4) and the
//! human table.

use std::io::Write;

use serde::Serialize;
use wameter_core::charge::Charge;
use wameter_core::engine::{Report, WhatIf};
use wameter_core::money::format_amount;
use wameter_core::report::{summary, totals};

use crate::input::LoadedLogs;

#[derive(Serialize)]
struct ChargeJson<'a> {
    message_id: &'a str,
    business: &'a str,
    user: String,
    delivered_at: String,
    /// Delivery date in the business's time zone: the date that chose the
    /// ruleset, card and month (lets `wameter diff` group by local month).
    local_date: String,
    pricing_model: &'static str,
    category: &'static str,
    #[serde(rename = "type")]
    pricing_type: &'static str,
    billable: bool,
    conversation_id: Option<&'a str>,
    opens_conversation: bool,
    market: &'a str,
    currency: &'a str,
    amount: String,
    tier: Option<&'a str>,
    ruleset: &'static str,
    rules_status: &'static str,
    rule: &'static str,
    reason: &'a str,
}

impl<'a> From<&'a Charge> for ChargeJson<'a> {
    fn from(charge: &'a Charge) -> Self {
        ChargeJson {
            message_id: &charge.message_id,
            business: &charge.business,
            user: charge.user.to_string(),
            delivered_at: charge.delivered_at.to_string(),
            local_date: charge.trail.local_date.to_string(),
            pricing_model: charge.pricing_model.as_str(),
            category: charge.category.as_str(),
            pricing_type: charge.pricing_type.as_str(),
            billable: charge.billable,
            conversation_id: charge.conversation_id.as_deref(),
            opens_conversation: charge.opens_conversation,
            market: &charge.market,
            currency: charge.currency.code(),
            amount: format_amount(charge.amount),
            tier: charge.tier.as_deref(),
            ruleset: charge.ruleset.id(),
            rules_status: charge.ruleset.status(),
            rule: charge.rule,
            reason: &charge.reason,
        }
    }
}

#[derive(Serialize)]
struct TotalsJson {
    currency: String,
    amount: String,
    billable_messages: u64,
    conversations: u64,
}

#[derive(Serialize)]
struct WarningJson<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
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
        })
        .collect();
    if let Some(message) = logs.inferred_summary() {
        out.push(WarningJson { code: "outbound_inferred", message, file: None, line: None });
    }
    if let Some(message) = logs.ignored_summary() {
        out.push(WarningJson { code: "ignored_webhook_items", message, file: None, line: None });
    }
    out.extend(report.warnings.iter().map(|warning| WarningJson {
        code: warning.code,
        message: warning.message.clone(),
        file: warning.origin.and_then(|o| logs.source_name(o.source)),
        line: warning.origin.map(|o| o.line),
    }));
    out
}

#[derive(Serialize)]
struct WhatIfJson {
    ruleset: Option<&'static str>,
    rates_on: Option<String>,
    note: &'static str,
}

/// Writes the `replay --json` document, streaming the charges.
pub fn write_json(out: &mut impl Write, report: &Report, logs: &LoadedLogs, what_if: WhatIf) -> std::io::Result<()> {
    out.write_all(b"{\n  \"charges\": [")?;
    for (index, charge) in report.charges.iter().enumerate() {
        out.write_all(if index == 0 { b"\n    " } else { b",\n    " })?;
        serde_json::to_writer(&mut *out, &ChargeJson::from(charge))?;
    }
    out.write_all(if report.charges.is_empty() { b"],\n" } else { b"\n  ],\n" })?;
    let totals: Vec<TotalsJson> = totals(&report.charges)
        .into_iter()
        .map(|t| TotalsJson {
            currency: t.currency.to_string(),
            amount: format_amount(t.amount),
            billable_messages: t.billable_messages,
            conversations: t.conversations,
        })
        .collect();
    out.write_all(b"  \"totals\": ")?;
    match totals.as_slice() {
        // One currency: an object, as documented. None: a zero USD total.
        [one] => serde_json::to_writer(&mut *out, one)?,
        [] => serde_json::to_writer(
            &mut *out,
            &TotalsJson { currency: "USD".into(), amount: "0".into(), billable_messages: 0, conversations: 0 },
        )?,
        many => serde_json::to_writer(&mut *out, many)?,
    }
    out.write_all(b",\n  \"warnings\": ")?;
    serde_json::to_writer(&mut *out, &warnings_json(report, logs))?;
    if !what_if.is_none() {
        out.write_all(b",\n  \"what_if\": ")?;
        serde_json::to_writer(&mut *out, &WhatIfJson {
            ruleset: what_if.ruleset.map(|r| r.id()),
            rates_on: what_if.rates_on.map(|d| d.to_string()),
            note: "re-priced under assumed rules: not what Meta charged",
        })?;
    }
    out.write_all(b"\n}\n")
}

fn pad(cells: &[String], widths: &[usize], right: &[bool]) -> String {
    cells
        .iter()
        .zip(widths)
        .zip(right)
        .map(|((cell, width), right)| if *right { format!("{cell:>width$}") } else { format!("{cell:<width$}") })
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_string()
}

/// Writes a table with aligned columns; `right` marks right-aligned ones.
pub fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>], right: &[bool]) -> std::io::Result<()> {
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
pub fn write_table(out: &mut impl Write, report: &Report, logs: &LoadedLogs, messages: bool) -> std::io::Result<()> {
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
            &["Delivered", "Message", "User", "Market", "Category", "Type", "Amount", "Rule"],
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
        table(out, &["Month", "Category", "Market", "Messages", "Charged", "Amount"], &rows, &[false, false, false, true, true, true])?;
    }
    writeln!(out)?;
    for total in totals(&report.charges) {
        writeln!(
            out,
            "Total {} {}  ({} billable message(s), {} conversation(s) opened)",
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
            writeln!(out, "  … and {} more (all of them with --json)", warnings.len() - 20)?;
        }
    }
    Ok(())
}
