//! What one settle round of the incremental meter costs, by part, on a
//! month-sized state (issue 20): the events of a log are given to a
//! [`MeterState`] but the last 10,000, which then arrive in batches of
//! 1,000, each timed applying, asking the findings (what every round asks)
//! and looking up which changed charges are inferred. Then 100 × the findings alone, and 100 ×
//! with the month's charges (what a whole round asks).
//!
//! ```text
//! cargo run --release -p wameter-meter --example settle_round -- LOG ACCOUNTS [EVENTS] [time]
//! ```
//!
//! `time` sorts the events by instant first (live traffic's order); without
//! it they come in the log's order (a backfill's, for `gen` logs).

use std::time::Instant;

use wameter_core::event::Origin;
use wameter_core::incremental::MeterState;
use wameter_core::market::MarketTable;
use wameter_core::pricing::Pricing;
use wameter_core::ratecard::calling::CallRateBook;
use wameter_core::ratecard::{RateBook, TierBook};
use wameter_log::Parsed;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(log), Some(accounts)) = (args.get(1), args.get(2)) else {
        return Err("usage: settle_round LOG ACCOUNTS [EVENTS] [time]".into());
    };
    let limit: usize = match args.get(3) {
        Some(n) => n.parse().map_err(|e| format!("EVENTS: {e}"))?,
        None => usize::MAX,
    };
    let log = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
    let accounts = std::fs::read_to_string(accounts).map_err(|e| e.to_string())?;
    let accounts = wameter_log::parse_accounts("accounts", &accounts).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    for (index, line) in log.lines().take(limit).enumerate() {
        let origin = Origin {
            source: 0,
            line: u32::try_from(index + 1).unwrap_or(u32::MAX),
        };
        if let Ok(Parsed::Event(event)) = wameter_log::parse_line(line, origin) {
            events.push(event);
        }
    }
    if args.get(4).is_some_and(|order| order == "time") {
        events.sort_by_key(|event| event.at);
    }
    let pricing = Pricing {
        accounts,
        rates: RateBook::builtin(),
        tiers: TierBook::builtin(),
        markets: MarketTable::builtin(),
        call_rates: CallRateBook::builtin(),
    };
    // As the server's meter prices its kept charges: without explanations
    // (`WAMETER_EXPLAIN=1` keeps them, as `wameter explain` does).
    let engine = wameter_core::engine::Engine {
        explain: std::env::var_os("WAMETER_EXPLAIN").is_some(),
        ..pricing.engine()
    };
    let batch = 1_000;
    let (first, rest) = events.split_at(events.len().saturating_sub(10 * batch));
    let mut state = MeterState::new(&engine);
    let given = first.to_vec();
    let before = resident_kb();
    let started = Instant::now();
    state.apply(&engine, given);
    println!(
        "first {} events applied: {:?}; resident memory {} → {} kB (the events given are the state's now)",
        first.len(),
        started.elapsed(),
        before,
        resident_kb()
    );
    for chunk in rest.chunks(batch) {
        let started = Instant::now();
        let changes = state.apply(&engine, chunk.to_vec());
        let applied = started.elapsed();
        let started = Instant::now();
        let findings = state.findings();
        let found = started.elapsed();
        // What a round does to keep its count of inferred charges: look
        // at the changed messages only (`MonthState`).
        let started = Instant::now();
        let inferred = changes
            .messages
            .iter()
            .filter(|(business, id)| state.inferred_charge(business, id).is_some())
            .count();
        println!(
            "{} events: applied {applied:?} ({} charges changed); findings {found:?} ({} warnings); inferred among the changed {:?} ({inferred})",
            chunk.len(),
            changes.messages.len(),
            findings.warnings.len(),
            started.elapsed()
        );
    }
    let started = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(state.findings().warnings.len());
    }
    println!("100 x findings: {:?}", started.elapsed());
    let started = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(state.charges_and_findings().0.len());
    }
    println!("100 x charges and findings: {:?}", started.elapsed());
    Ok(())
}

/// This process's resident memory in kB (Linux; 0 elsewhere).
fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
