//! `wameter reconcile LOG… [--analytics FILE] [--json]`: Meta's verdict
//! against the engine's, message by message, plus template category drift
//! and, with `--analytics`, Meta's Graph analytics bucket by bucket.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use wameter_core::money::format_amount;
use wameter_core::reconcile::{
    AnalyticsKind, AnalyticsLine, Discrepancy, Reconciliation, Tolerance, compare_analytics,
    compare_call_analytics, reconcile,
};
use wameter_meta::analytics::{Analytics, parse_analytics};

use crate::input::{EngineArgs, LoadedLogs, load_logs};
use crate::output::Format;

/// Options of `wameter reconcile`.
#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// Logs: Meta webhook bodies and canonical events, mixed freely (`-` for standard input).
    #[arg(required = true, value_name = "LOG")]
    logs: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Also compare with a saved `pricing_analytics` or `conversation_analytics` Graph response.
    #[arg(long, value_name = "FILE")]
    analytics: Option<PathBuf>,
    /// Analytics: cost difference allowed per bucket, absolute (currency units).
    #[arg(long, value_name = "AMOUNT", default_value = "0.01")]
    cost_tolerance: Decimal,
    /// Analytics: cost difference allowed per bucket, relative to Meta's cost (0.01 = 1 %).
    #[arg(long, value_name = "SHARE", default_value = "0.01")]
    cost_tolerance_share: Decimal,
    /// Print JSON: `{"compared", "agreements", "discrepancies": [{"message_id", "meta", "engine", "cause"}], …}`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// What to print: the tables, the JSON document, or the discrepancies as one typed
    /// table in CSV or Parquet (docs/interfaces.md, "Exports").
    #[arg(long, value_enum)]
    format: Option<crate::output::Format>,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(args: ReconcileArgs) -> Result<ExitCode> {
    let setup = args.engine.setup()?;
    let analytics = match &args.analytics {
        Some(path) => Some(read_analytics(path)?),
        None => None,
    };
    let mut loaded = load_logs(
        &args.logs,
        args.engine.strict,
        &indicatif::ProgressBar::hidden(),
    )?;
    crate::report_malformed(&loaded);
    for note in [loaded.inferred_summary(), loaded.ignored_summary()]
        .into_iter()
        .flatten()
    {
        eprintln!("note: {note}");
    }
    let mut engine = setup.pricing.engine();
    engine.what_if = args.engine.what_if();
    let events = std::mem::take(&mut loaded.events);
    let result = reconcile(&engine, events, &loaded.notices);
    if crate::print_pricing_errors(&loaded, &result.report) {
        return Ok(ExitCode::from(1));
    }
    let tolerance = Tolerance {
        cost_absolute: args.cost_tolerance,
        cost_relative: args.cost_tolerance_share,
    };
    let lite: std::collections::HashSet<(&str, &str)> = result
        .marketing_lite
        .iter()
        .map(|(b, id)| (&**b, &**id))
        .collect();
    let buckets = analytics.map(|a| {
        let lines = match a.kind {
            AnalyticsKind::Call => {
                compare_call_analytics(&a.points, &result.report.calls, tolerance)
            }
            kind => compare_analytics(kind, &a.points, &result.report.charges, &lite, tolerance),
        };
        (a.kind, lines)
    });
    let format = match (args.json, args.format) {
        (true, _) => Format::Json,
        (false, format) => format.unwrap_or(Format::Table),
    };
    let to = args.output.as_deref();
    let mut out = crate::output::open(to, format == Format::Parquet)?;
    if matches!(format, Format::Csv | Format::Parquet) {
        let table = crate::tables::DiscrepancyTable {
            result: &result,
            loaded: &loaded,
        };
        crate::output::export(&mut out, to, format, &table)?;
        out.flush()?;
        if !result.drift.is_empty() || buckets.is_some() {
            eprintln!(
                "note: the table holds the per-message discrepancies; template category drift and analytics buckets are in the default tables and `--format json`"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Json {
        let mut document = document(&result, &loaded);
        if let Some((kind, lines)) = &buckets {
            document["analytics"] = analytics_json(*kind, lines);
        }
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &result, &loaded)?;
        if let Some((kind, lines)) = &buckets {
            write_analytics(&mut out, *kind, lines)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn read_analytics(path: &PathBuf) -> Result<Analytics> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let body: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    parse_analytics(&body).map_err(|p| {
        anyhow::anyhow!(
            "{}: field `{}`: {}",
            path.display(),
            if p.path.is_empty() {
                "(document)"
            } else {
                &p.path
            },
            p.message
        )
    })
}

fn meta_json(d: &Discrepancy) -> Value {
    let m = &d.meta;
    json!({
        "pricing_model": m.pricing.pricing_model.as_deref(),
        "category": &*m.pricing.category,
        "type": m.pricing.pricing_type.as_deref(),
        "billable": m.pricing.billable,
        "conversation_id": m.conversation_id.as_deref(),
        "status": m.status.as_str(),
        "at": m.at.to_string(),
    })
}

fn engine_json(d: &Discrepancy) -> Value {
    let c = &d.engine;
    json!({
        "pricing_model": c.pricing_model.as_str(),
        "category": c.category.as_str(),
        "type": c.pricing_type.as_str(),
        "billable": c.billable,
        "conversation_id": c.conversation_id.as_deref(),
        "amount": format_amount(c.amount),
        "currency": c.currency.code(),
        "delivered_at": c.delivered_at.to_string(),
        "ruleset": c.ruleset.id(),
        "rule": c.rule,
        "reason": &c.reason,
    })
}

fn document(result: &Reconciliation, loaded: &LoadedLogs) -> Value {
    let discrepancies: Vec<Value> = result
        .discrepancies
        .iter()
        .map(|d| {
            json!({
                "message_id": &*d.message_id,
                "meta": meta_json(d),
                "engine": engine_json(d),
                "fields": d.fields,
                "cause": d.cause,
                "read_from": loaded.position(d.engine.trail.origin),
            })
        })
        .collect();
    let drift: Vec<Value> = result
        .drift
        .iter()
        .map(|line| {
            json!({
                "template": &*line.template,
                "sent_as": line.sent_as.as_str(),
                "priced_as": line.priced_as.as_str(),
                "evidence": line.evidence,
                "messages": line.messages,
                "currency": line.currency.code(),
                "amount_as_sent": format_amount(line.amount_as_sent),
                "amount_as_priced": format_amount(line.amount_as_priced),
                "impact": format_amount(line.impact()),
            })
        })
        .collect();
    let drift_total: Vec<Value> = result
        .drift_total
        .iter()
        .map(|(currency, amount)| json!({"currency": currency.code(), "amount": format_amount(*amount)}))
        .collect();
    json!({
        "compared": result.compared,
        "agreements": result.agreements,
        "discrepancies": discrepancies,
        "not_delivered": result.not_delivered,
        "unrated": result.unrated,
        "without_verdict": result.without_verdict,
        "drift": drift,
        "drift_total": drift_total,
    })
}

fn write_table(
    out: &mut impl Write,
    result: &Reconciliation,
    loaded: &LoadedLogs,
) -> std::io::Result<()> {
    writeln!(
        out,
        "Compared {} delivered message(s) that Meta priced: {} agree, {} differ.",
        result.compared,
        result.agreements,
        result.discrepancies.len()
    )?;
    if result.not_delivered > 0 {
        writeln!(
            out,
            "{} message(s) Meta priced on `sent` were never delivered in the log: charged by neither.",
            result.not_delivered
        )?;
    }
    if result.unrated > 0 {
        writeln!(
            out,
            "{} delivered message(s) Meta priced have no outbound event and a status too incomplete to stand in for one (no business or recipient): not compared.",
            result.unrated
        )?;
    }
    if result.without_verdict > 0 {
        writeln!(
            out,
            "{} delivered message(s) have no `pricing` from Meta in the log: not compared.",
            result.without_verdict
        )?;
    }
    for d in &result.discrepancies {
        let m = &d.meta.pricing;
        let c = &d.engine;
        let flag = |b: Option<bool>| match b {
            Some(true) => "billable",
            Some(false) => "not billable",
            None => "billable ?",
        };
        writeln!(
            out,
            "\n{} ({})",
            d.message_id,
            loaded.position(c.trail.origin)
        )?;
        writeln!(out, "  differs  {}", d.fields.join(", "))?;
        writeln!(
            out,
            "  Meta     {} {} {} {}{} ({} status at {})",
            m.pricing_model.as_deref().unwrap_or("?"),
            m.category,
            m.pricing_type.as_deref().unwrap_or("-"),
            flag(m.billable),
            d.meta
                .conversation_id
                .as_deref()
                .map(|id| format!(", conversation {id}"))
                .unwrap_or_default(),
            d.meta.status.as_str(),
            d.meta.at
        )?;
        writeln!(
            out,
            "  engine   {} {} {} {}{}, {} {} — {} / {}: {}",
            c.pricing_model.as_str(),
            c.category.as_str(),
            c.pricing_type.as_str(),
            flag(Some(c.billable)),
            c.conversation_id
                .as_deref()
                .map(|id| format!(", conversation {id}"))
                .unwrap_or_default(),
            format_amount(c.amount),
            c.currency.code(),
            c.ruleset.id(),
            c.rule,
            c.reason
        )?;
        writeln!(out, "  cause    {}", d.cause)?;
    }
    if !result.drift.is_empty() {
        writeln!(
            out,
            "\nTemplate category drift (sent as one category, charged by Meta as another):"
        )?;
        let rows: Vec<Vec<String>> = result
            .drift
            .iter()
            .map(|line| {
                vec![
                    if line.template.is_empty() {
                        "(unnamed)".into()
                    } else {
                        line.template.to_string()
                    },
                    line.sent_as.as_str().into(),
                    line.priced_as.as_str().into(),
                    line.messages.to_string(),
                    format!(
                        "{} {}",
                        format_amount(line.amount_as_sent),
                        line.currency.code()
                    ),
                    format!(
                        "{} {}",
                        format_amount(line.amount_as_priced),
                        line.currency.code()
                    ),
                    signed(line.impact()),
                    line.evidence.clone(),
                ]
            })
            .collect();
        crate::output::table(
            out,
            &[
                "template",
                "sent as",
                "priced as",
                "messages",
                "as sent",
                "as priced",
                "impact",
                "evidence",
            ],
            &rows,
            &[false, false, false, true, true, true, true, false],
        )?;
        for (currency, amount) in &result.drift_total {
            writeln!(
                out,
                "Cost impact on the whole log, replayed at the categories Meta applies: {} {}",
                signed(*amount),
                currency.code()
            )?;
        }
    }
    Ok(())
}

fn signed(amount: Decimal) -> String {
    if amount.is_sign_positive() && !amount.is_zero() {
        format!("+{}", format_amount(amount))
    } else {
        format_amount(amount)
    }
}

fn kind_name(kind: wameter_core::reconcile::AnalyticsKind) -> &'static str {
    match kind {
        wameter_core::reconcile::AnalyticsKind::Pricing => "pricing_analytics (delivered messages)",
        wameter_core::reconcile::AnalyticsKind::Conversation => {
            "conversation_analytics (conversations)"
        }
        wameter_core::reconcile::AnalyticsKind::Call => {
            "call_analytics (connected calls; category = direction, type = tier)"
        }
    }
}

fn analytics_json(kind: wameter_core::reconcile::AnalyticsKind, lines: &[AnalyticsLine]) -> Value {
    let buckets: Vec<Value> = lines
        .iter()
        .map(|l| {
            json!({
                "start": l.start.to_string(),
                "end": l.end.to_string(),
                "country": &*l.country,
                "category": &*l.category,
                "type": &*l.pricing_type,
                "meta": l.meta.map(|(count, cost)| json!({"count": count, "cost": cost.map(format_amount)})),
                "engine": {"count": l.engine.0, "cost": format_amount(l.engine.1)},
                "average_duration": l.average_duration.map(|(meta, engine)| json!({"meta": format_amount(meta), "engine": format_amount(engine)})),
                "within_tolerance": l.within_tolerance,
            })
        })
        .collect();
    json!({
        "kind": kind_name(kind),
        "buckets": lines.len(),
        "differences": lines.iter().filter(|l| !l.within_tolerance).count(),
        "lines": buckets,
    })
}

fn write_analytics(
    out: &mut impl Write,
    kind: wameter_core::reconcile::AnalyticsKind,
    lines: &[AnalyticsLine],
) -> std::io::Result<()> {
    let differing: Vec<&AnalyticsLine> = lines.iter().filter(|l| !l.within_tolerance).collect();
    writeln!(
        out,
        "\nAnalytics ({}): {} bucket(s) compared, {} outside the tolerance. Meta calls analytics approximate; counts must match, costs may differ by the tolerance.",
        kind_name(kind),
        lines.len(),
        differing.len()
    )?;
    if differing.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = differing
        .iter()
        .map(|l| {
            let (meta_count, meta_cost) = match l.meta {
                Some((count, cost)) => (count.to_string(), cost.map_or("-".into(), format_amount)),
                None => ("none".into(), "-".into()),
            };
            vec![
                format!("{} → {}", l.start, l.end),
                l.country.to_string(),
                l.category.to_string(),
                l.pricing_type.to_string(),
                meta_count,
                l.engine.0.to_string(),
                meta_cost,
                format_amount(l.engine.1),
            ]
        })
        .collect();
    crate::output::table(
        out,
        &[
            "bucket",
            "country",
            "category",
            "type",
            "Meta count",
            "engine count",
            "Meta cost",
            "engine cost",
        ],
        &rows,
        &[false, false, false, false, true, true, true, true],
    )
}
