//! Meta's wire formats, read into wameter's core types.
//!
//! Real users have what Meta sends them, not wameter's canonical log: the
//! webhook POST bodies of a WhatsApp Business Account ([`webhook`]) and the
//! Graph API's `pricing_analytics` / `conversation_analytics` responses
//! ([`analytics`]). This crate turns both into the core's events, notices
//! and aggregates, and says exactly — by JSON path — what it could not read.
//! It does no IO: callers hand it parsed JSON. The other direction —
//! webhook bodies written from events and charges, as Meta would post them
//! — is [`outgoing`], for generated traffic and the sandbox. Graph API
//! error bodies, which the sandbox and the guard answer with, are [`graph`];
//! the `X-Hub-Signature-256` every webhook carries is [`signature`].

pub mod analytics;
pub mod graph;
pub mod outgoing;
pub mod signature;
pub mod webhook;

pub use webhook::{Ignored, Problem, WebhookItems, parse_envelope};
