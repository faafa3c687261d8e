//! `wameter sandbox`: a local stand-in for Meta's WhatsApp Cloud API that
//! opens, closes and bills dialogs the way Meta does, so an app can be
//! developed and tested against it by changing only its base URL.
//!
//! The sandbox speaks Meta's paths and bodies ([`http`]), keeps its state
//! in SQLite ([`world`]), and posts Meta's webhooks to the app
//! ([`delivery`]). It decides nothing about money or windows itself: the
//! customer service window that refuses a free-form message (131047), the
//! `pricing` and `conversation` objects of each status and the charges of
//! `GET /_sandbox/charges` all come from `wameter-core`'s engine, fed the
//! sandbox's own event log — the same engine and log `wameter replay`
//! reads.

pub mod calls;
pub mod delivery;
pub mod http;
pub mod media;
pub mod messages;
pub mod templates;
pub mod world;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wameter_core::pricing::Pricing;

pub use world::{Options, Reengagement, World};

/// Everything `wameter sandbox` is started with.
pub struct Config {
    /// Accounts, rate cards, tiers: the engine's tables.
    pub pricing: Arc<Pricing>,
    /// Behaviour of sends and webhooks.
    pub options: Options,
    /// Where webhooks go; `None` keeps them in the outbox (see
    /// `GET /_sandbox/webhooks`).
    pub target: Option<delivery::Target>,
    /// The only bearer token accepted, if set.
    pub token: Option<String>,
    /// SQLite file that keeps the state across restarts; `None`: memory.
    pub database: Option<PathBuf>,
    /// Where the clock of a new sandbox starts; `None`: real time.
    pub clock_start: Option<jiff::Timestamp>,
}

/// Opens the state: the database file, or memory.
pub fn open_world(config: &Config) -> Result<World, String> {
    let connection = match &config.database {
        Some(path) => rusqlite::Connection::open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        None => rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?,
    };
    let mut world = World::open(connection, config.pricing.clone(), config.options.clone())?;
    if let Some(at) = config.clock_start
        && !world.start_clock(jiff::Timestamp::now(), at)?
    {
        tracing::warn!(message = "The sandbox has history: --clock-start ignored, the clock goes on from where it was.", clock = %world.now(jiff::Timestamp::now()));
    }
    Ok(world)
}

/// The world, locked. A lock poisoned by a panicking operation (none is
/// known: the fuzzer drives the whole HTTP surface and counts a panic as a
/// crash) is taken anyway: the world stays as that operation left it,
/// where a poisoned lock would fail every later request while the process
/// stayed up (issue 22).
pub fn lock<W>(world: &Mutex<W>) -> std::sync::MutexGuard<'_, W> {
    world.lock().unwrap_or_else(|poisoned| {
        tracing::error!(
            message = "A sandbox operation panicked; serving on with the world as it left it."
        );
        world.clear_poison();
        poisoned.into_inner()
    })
}

/// Serves until Ctrl-C or SIGTERM: the HTTP API, the clock that fires due
/// statuses, and webhook delivery.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> Result<(), String> {
    let world = Arc::new(Mutex::new(open_world(&config)?));
    let stop = Arc::new(AtomicBool::new(false));
    // The sandbox clock runs with real time: statuses fall due on their own.
    let ticker = {
        let (world, stop) = (world.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(error) = lock(&world).fire_due(jiff::Timestamp::now()) {
                    tracing::error!(message = "Cannot fire due statuses.", %error);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let deliverer = config.target.clone().map(|target| {
        let (world, stop) = (world.clone(), stop.clone());
        std::thread::spawn(move || delivery::run(world, target, stop))
    });
    let shared = Arc::new(http::Shared {
        world,
        token: config.token.clone(),
    });
    // The same bounded accept loop as `serve`: no input may hold a
    // connection forever.
    let served = wameter_http::serve(
        listener,
        http::app(shared),
        wameter_http::Limits::default(),
        wameter_http::shutdown_signal(),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    if let Some(deliverer) = deliverer {
        let _ = deliverer.join();
    }
    served.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panic_is_taken_again() {
        let world = Arc::new(Mutex::new(1u32));
        let poisoner = world.clone();
        let panicked = std::thread::spawn(move || {
            let mut guard = poisoner.lock().unwrap();
            *guard = 2;
            panic!("an operation panics halfway");
        })
        .join();
        assert!(panicked.is_err());
        assert!(world.is_poisoned());
        assert_eq!(*lock(&world), 2, "the world as the operation left it");
        assert!(!world.is_poisoned(), "later requests find a healthy lock");
    }
}
