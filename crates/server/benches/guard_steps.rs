//! The guard's engine step on its own: a pair's stored lines parsed
//! (`meter::load`) or read back from the memo (`meter::ReadBack`, what the
//! guard does), the pair's events prepared with one more send and its
//! window now (`meter::assess`), and that send's estimate
//! (`Assessment::predict`) — what every guarded send pays between
//! reading its pair and asking upstream. No HTTP, no disk, one thread, so
//! the number is the step's CPU cost; `bench/guard_latency.sh` measures
//! the whole send under load.
//!
//!   cargo bench -p wameter-server --bench guard_steps
//!
//! Results go in docs/PERFORMANCE.md (guard).

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use wameter_core::category::TemplateCategory;
use wameter_core::event::{DeliveryStatus, Event, EventKind, Origin, Template, UserId};
use wameter_core::market::MarketTable;
use wameter_core::pricing::Pricing;
use wameter_core::ratecard::RateBook;
use wameter_meter as meter;
use wameter_store::{EventRecord, StoredEvent};

const BUSINESS: &str = "106540352242922";

/// A pair's last five days as the guard finds it in the bench: the user
/// writes, the business answers with templates, each sent, delivered, read.
fn pair_rows(user: &UserId, now: Timestamp, sends: usize) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    let origin = Origin::default();
    let mut at = now - SignedDuration::from_hours(30);
    events.push(Event {
        at,
        origin,
        kind: EventKind::Inbound {
            business: BUSINESS.into(),
            user: user.clone(),
            id: Some("wamid.in".into()),
            entry_point: None,
            kind: Default::default(),
        },
    });
    for n in 0..sends {
        at += SignedDuration::from_mins(10);
        let id: std::sync::Arc<str> = format!("wamid.out.{n}").into();
        let template = Some(std::sync::Arc::new(Template {
            name: "order_update".into(),
            category: TemplateCategory::Utility,
        }));
        events.push(Event {
            at,
            origin,
            kind: EventKind::Outbound {
                business: BUSINESS.into(),
                user: user.clone(),
                id: id.clone(),
                template,
                messaging_account: None,
            },
        });
        for (offset, status) in [
            (1, DeliveryStatus::Sent),
            (2, DeliveryStatus::Delivered),
            (30, DeliveryStatus::Read),
        ] {
            events.push(Event {
                at: at + SignedDuration::from_secs(offset),
                origin,
                kind: EventKind::Status {
                    id: (*id).into(),
                    status,
                    error: None,
                    detail: None,
                },
            });
        }
    }
    events
        .iter()
        .enumerate()
        .map(|(n, event)| StoredEvent {
            id: n as i64 + 1,
            line: EventRecord::new(event).line.into(),
        })
        .collect()
}

fn main() {
    let accounts = wameter_log::parse_accounts(
        "accounts.toml",
        &format!("[[business]]\nphone_number_id = \"{BUSINESS}\"\nwaba = \"419561257915477\"\ntimezone = \"America/Sao_Paulo\"\ncurrency = \"USD\"\n"),
    )
    .expect("accounts");
    let pricing = Pricing {
        accounts,
        rates: RateBook::builtin(),
        tiers: Default::default(),
        markets: MarketTable::builtin(),
        call_rates: Default::default(),
    };
    let user = UserId::parse("+5511999990000").expect("user");
    let now: Timestamp = "2026-11-30T12:00:00Z".parse().expect("instant");
    for sends in [2, 9, 40] {
        let rows = pair_rows(&user, now, sends);
        let rounds = 20_000 / sends.max(1);
        let mut laps = [
            Vec::with_capacity(rounds),
            Vec::with_capacity(rounds),
            Vec::with_capacity(rounds),
            Vec::with_capacity(rounds),
        ];
        let read_back = meter::ReadBack::default();
        for _ in 0..rounds {
            let started = Instant::now();
            let parsed = meter::load(&rows).events;
            let loaded = Instant::now();
            // What the guard does: rows it has read before come from memory.
            let events = read_back.load(&rows);
            let read_again = Instant::now();
            assert!(events.iter().map(|e| &**e).eq(&parsed));
            laps[3].push(read_again - loaded);
            let loaded = Instant::now();
            let engine = meter::assessing(&pricing.engine());
            let template = Some(Template {
                name: "order_update".into(),
                category: TemplateCategory::Utility,
            });
            let assessment = meter::assess(&engine, events, BUSINESS, &user, now, template, None);
            let window = assessment.customer_service_window();
            let windowed = Instant::now();
            let charge = assessment.predict(&engine);
            let done = Instant::now();
            assert!(
                window.is_none() && charge.is_some_and(|c| c.billable),
                "the bench prices what it means to"
            );
            laps[0].push(loaded - started);
            laps[1].push(windowed - loaded);
            laps[2].push(done - windowed);
        }
        print!("{:>3} events:", rows.len());
        for (name, lap) in ["parse", "assess", "predict", "read back"]
            .iter()
            .zip(&mut laps)
        {
            lap.sort();
            let micros = |q: f64| {
                lap[((lap.len() as f64 * q) as usize).min(lap.len() - 1)].as_secs_f64() * 1e6
            };
            print!("  {name} p50 {:.1} p99 {:.1} µs", micros(0.5), micros(0.99));
        }
        println!();
    }
}
