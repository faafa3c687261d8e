//! A log as `wameter replay` reads it: bytes → text (BOM, bad UTF-8) →
//! canonical lines and Meta webhook lines → events, priced by the engine.
//! Also: every event read back from the line wameter writes for it is the
//! same event (the store and the sandbox keep events as those lines), and
//! the reader `replay` folds statuses with (`parse_chunk_unowned`) reads the
//! same events, and the reader of the common flat shape reads every line
//! as serde_json does (`parse_line_by_serde`).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wameter_core::market::MarketTable;
use wameter_core::ratecard::{RateBook, TierBook};
use wameter_core::account::Accounts;
use wameter_core::engine::Engine;
use wameter_core::event::Origin;
use wameter_core::event::UnownedStatus;
use wameter_log::{Parsed, decode_log, event_line, parse_chunk, parse_chunk_dealt, parse_chunk_unowned, parse_line};
use wameter_log::ndjson::parse_line_by_serde;

/// The built-in tables, read once (reading them is most of a replay's cost
/// on a small input).
static TABLES: LazyLock<(Accounts, RateBook, TierBook)> = LazyLock::new(|| (Accounts::default(), RateBook::builtin(), TierBook::builtin()));

fuzz_target!(|bytes: &[u8]| {
    let (text, _errors) = decode_log(bytes.to_vec(), 0);
    for line in text.lines() {
        let origin = Origin { source: 0, line: 1 };
        assert_eq!(parse_line(line, origin), parse_line_by_serde(line, origin), "the flat reader and serde_json read {line:?} apart");
    }
    let chunk = parse_chunk(&text, 0, 1);
    let (apart, statuses) = parse_chunk_unowned(&text, 0, 1);
    // Dealt out as read, by a part of the wamid's length, they are the same
    // statuses, each part in input order.
    let (dealt_chunk, dealt) = parse_chunk_dealt(&text, 0, 1, 3, |id| id.len() % 4);
    assert_eq!(dealt_chunk.events, apart.events);
    assert!(dealt.iter().all(|part| part.windows(2).all(|pair| pair[0].origin < pair[1].origin)));
    let mut together: Vec<_> = dealt.into_iter().flatten().collect();
    together.sort_by_key(|status| status.origin);
    assert_eq!(together, statuses, "the statuses dealt out as read are not those given apart");
    assert_eq!(apart.errors, chunk.errors);
    let mut events = apart.events;
    events.extend(statuses.into_iter().map(UnownedStatus::into_event));
    events.sort_by_key(|event| event.origin);
    assert_eq!(events, chunk.events, "the statuses given apart are not the events parse_chunk reads");
    for event in &chunk.events {
        let line = event_line(event);
        match parse_line(&line, Origin { source: 0, line: 1 }) {
            Ok(Parsed::Event(again)) => assert_eq!(event_line(&again), line, "an event changed on its way through its own line"),
            other => panic!("wameter cannot read the line it wrote: {line}: {:?}", other.err()),
        }
    }
    let (accounts, rates, tiers) = &*TABLES;
    let _ = Engine::new(accounts, rates, tiers, MarketTable::builtin()).replay(chunk.events);
});
