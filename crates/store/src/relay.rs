//! The relay outbox: accepted webhook bodies waiting to be passed on to
//! the business's own app (`serve --relay-url`).
//!
//! Meta calls one callback URL per app. When that URL is wameter, the app
//! that answers users no longer hears from Meta directly; wameter passes
//! every accepted body on, byte for byte. A body enters the outbox in the
//! same transaction that stores it, so the app hears of a webhook only
//! after wameter has it on disk — which is what lets the guard see a
//! user's message before the app can reply to it — and a crash or an app
//! that is down loses nothing: the outbox is drained oldest first once the
//! app answers again.
//!
//! One relayer drains the outbox at a time. In SQLite that is the one
//! process on the file; in PostgreSQL the relayer holds a session advisory
//! lock on a connection of its own ([`RelayClaim`]), so among several
//! `serve` processes one relays and the others wait to take over when its
//! connection goes.

/// The right to drain the outbox, held by one relayer at a time.
pub enum RelayClaim {
    /// SQLite: the process owns the file.
    Local,
    /// PostgreSQL: a connection taken out of the pool holding the relay's
    /// advisory lock; dropping it closes the connection and frees the lock.
    Postgres(deadpool_postgres::ClientWrapper),
}

impl std::fmt::Debug for RelayClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RelayClaim::Local => "RelayClaim::Local",
            RelayClaim::Postgres(_) => "RelayClaim::Postgres",
        })
    }
}

/// How much is waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayBacklog {
    /// Bodies not yet relayed.
    pub pending: i64,
    /// When the oldest of them was received, UNIX microseconds.
    pub oldest_received_at_us: Option<i64>,
}
