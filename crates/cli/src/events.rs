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

pub fn run(logs: Vec<PathBuf>, strict: bool) -> Result<std::process::ExitCode> {
    let loaded = load_logs(&logs, strict, &indicatif::ProgressBar::hidden())?;
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
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in &lines {
        writeln!(out, "{}", line.text)?;
    }
    out.flush()?;
    crate::report_malformed(&loaded);
    for note in [loaded.inferred_summary(), loaded.ignored_summary()]
        .into_iter()
        .flatten()
    {
        eprintln!("note: {note}");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The canonical line, marking outbounds that only a status's `pricing` vouches for.
fn line_of(event: &Event, inferred: &std::collections::HashSet<(Box<str>, Box<str>)>) -> String {
    let line = event_line(event);
    match &event.kind {
        EventKind::Outbound { business, id, .. }
            if inferred.contains(&(business.clone(), id.clone())) =>
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
