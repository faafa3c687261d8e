//! Integration tests of the engine through its public API: Meta's worked
//! scenarios (docs/rules.md §13), every decision in `docs/rules.md`, and
//! property tests. One binary, so everything links once.

mod agent;
mod calls;
mod explain;
mod incremental;
mod max_price;
mod messaging_accounts;
mod parallel;
mod properties;
mod quotes;
mod reconciliation;
mod scenarios;
mod support;
mod what_if;
