//! Readers for wameter's own file formats: the canonical NDJSON event log
//! (interfaces §1) and the TOML accounts file (interfaces §2).
//!
//! Everything here is parsing of text that the caller has already read; the
//! job is to turn it into the core's types or to say precisely — line and
//! field — what is wrong. Nothing is silently dropped: every line is either
//! an event, a blank/comment line, or a [`LineError`].

pub mod accounts;
pub mod ndjson;

pub use accounts::{AccountsError, parse_accounts};
pub use ndjson::{LineError, ParsedChunk, parse_chunk, parse_line};
