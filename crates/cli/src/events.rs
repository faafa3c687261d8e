//! `wameter events LOG…`: the canonical events (and notices) a log turns
//! into, so a user sees exactly what was understood of Meta's webhooks.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Result;
use wameter_core::event::{Event, EventKind};
use wameter_log::{event_line, notice_line};

use crate::input::load_logs;

/// One line to print: its instant (notices without one sort first), its
/// ordering rank and origin, and the text.
struct Line {
    key: (Option<jiff::Timestamp>, u8, wameter_core::event::Origin),
    text: String,
}

/// How `events` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Canonical lines and notices, one JSON object a line.
    Ndjson,
    /// The events as CSV rows.
    Csv,
    /// The events as a typed Parquet file.
    Parquet,
}

pub fn run(
    logs: Vec<PathBuf>,
    strict: bool,
    format: Format,
    to: Option<PathBuf>,
) -> Result<std::process::ExitCode> {
    let loaded = load_logs(&logs, strict, &indicatif::ProgressBar::hidden())?;
    if format != Format::Ndjson {
        let mut events: Vec<&Event> = loaded.events.iter().collect();
        events.sort_by_key(|event| (event.at, event.kind.rank(), event.origin));
        let table = crate::tables::EventTable {
            events,
            inferred: &loaded.inferred,
        };
        let mut out = crate::output::open(to.as_deref(), format == Format::Parquet)?;
        let format = match format {
            Format::Parquet => crate::output::Format::Parquet,
            _ => crate::output::Format::Csv,
        };
        crate::output::export(&mut out, to.as_deref(), format, &table)?;
        out.flush()?;
        finish(&loaded);
        if !loaded.notices.is_empty() {
            eprintln!(
                "note: {} notice(s) (template and account updates) are not events and not in the table; `--format ndjson` prints them",
                loaded.notices.len()
            );
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut lines: Vec<Line> = Vec::with_capacity(loaded.events.len() + loaded.notices.len());
    for event in &loaded.events {
        lines.push(Line {
            key: (Some(event.at), event.kind.rank(), event.origin),
            text: line_of(event, &loaded.inferred),
        });
    }
    for notice in &loaded.notices {
        lines.push(Line {
            key: (notice.at, 3, notice.origin),
            text: notice_line(notice),
        });
    }
    // The order replay uses: time, then inbound < outbound < status, then input order.
    lines.sort_by_key(|line| line.key);
    let mut out: Box<dyn Write> = match &to {
        Some(_) => crate::output::open(to.as_deref(), false)?,
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for line in &lines {
        writeln!(out, "{}", line.text)?;
    }
    out.flush()?;
    finish(&loaded);
    Ok(std::process::ExitCode::SUCCESS)
}

/// What was malformed, inferred or ignored, on standard error.
fn finish(loaded: &crate::input::LoadedLogs) {
    crate::report_malformed(loaded);
    for note in [loaded.inferred_summary(), loaded.ignored_summary()]
        .into_iter()
        .flatten()
    {
        eprintln!("note: {note}");
    }
}

/// The canonical line, marking outbounds that only a status's `pricing` vouches for.
fn line_of(event: &Event, inferred: &std::collections::HashSet<(Box<str>, Box<str>)>) -> String {
    let line = event_line(event);
    match &event.kind {
        EventKind::Outbound { business, id, .. }
            if inferred.contains(&(Box::from(&**business), Box::from(&**id))) =>
        {
            // Unknown fields are ignored on reading, so the mark costs nothing.
            format!(
                "{},\"inferred_from\":\"pricing\"}}",
                line.trim_end_matches('}')
            )
        }
        _ => line,
    }
}
