//! The pure core of wameter: given what happened between businesses and
//! users on WhatsApp (a canonical event log), decide what Meta charges for
//! every delivered business message, under the rules in force at that
//! instant, and explain why.
//!
//! This crate does no IO and reads no clock. Time comes from the events;
//! businesses, rate cards, volume tiers and the market table are explicit
//! inputs; the output is deterministic (no hash-map order leaks into it).
//! Adapters — the NDJSON log reader, Meta's webhooks, the server, the
//! sandbox, the CLI — live in other crates and call [`engine::Engine`].
//!
//! Where to look:
//! - [`rules`]: one module per pricing era — *how PMP 2025 charges a utility
//!   template* is in [`rules::pmp_2025`];
//! - [`window`]: the customer service window, free entry points, conversations;
//! - [`engine`]: ordering, deduplication, monthly counters, pricing;
//! - [`ratecard`], [`market`], [`money`]: Meta's rate cards, markets, exact money;
//! - [`quote`]: what a campaign will cost, priced by replaying it;
//! - [`billing`]: what clients are re-billed (markups) and monthly budgets;
//! - [`notice`]: what Meta says that is not traffic (template re-categorised…);
//! - [`reconcile`]: where Meta's verdict and the engine's differ, and why;
//! - [`settlement`]: which events a month's charges depend on (for stores
//!   that keep charges per month).

pub mod account;
pub mod billing;
pub mod category;
pub mod charge;
pub mod engine;
pub mod event;
pub mod incremental;
pub mod market;
pub mod money;
pub mod notice;
pub mod pricing;
pub mod quote;
pub mod random;
pub mod ratecard;
pub mod reconcile;
pub mod report;
pub mod rules;
pub mod ruleset;
pub mod settlement;
pub mod window;
