//! Readers and writers for wameter's own file formats: the NDJSON event log
//! (interfaces §1; raw Meta webhook bodies may be mixed in, §4) and the TOML
//! accounts file (interfaces §2) — and the `replay --json` document
//! (interfaces §4) that the CLI and the server both print.
//!
//! Everything here is parsing of text that the caller has already read; the
//! job is to turn it into the core's types or to say precisely — line and
//! field — what is wrong. Nothing is silently dropped: every line is an
//! event, a notice, a webhook's items, a blank/comment line, or a
//! [`LineError`]; webhook items of kinds wameter does not use are counted.

pub mod accounts;
pub mod ndjson;
pub mod replay_json;
pub mod write;

pub use accounts::{AccountsError, parse_accounts, parse_accounts_file};
pub use ndjson::{
    LineError, Parsed, ParsedChunk, decode_lines, decode_log, parse_chunk, parse_chunk_dealt,
    parse_chunk_unowned, parse_line,
};
pub use write::{event_line, notice_line};
