//! An engine that does not explain (`Engine::explain` off, as a report or
//! the server's kept charges use it) answers what an explaining one does:
//! the same charges, prices, reasons, notes, warnings and counters, less
//! the explained part of each trail. One that writes no reasons either
//! (`Engine::reasons` off, as a table of totals uses it) answers the same
//! less the reasons.

use std::sync::Arc;

use proptest::prelude::*;
use wameter_core::engine::Report;
use wameter_core::event::{Origin, outbounds_from_pricing};

use super::incremental::{BASES, build, shuffle, step, world};

/// The report with every charge's reason taken out.
fn without_reasons(mut report: Report) -> Report {
    for charge in &mut report.charges {
        charge.reason.clear();
    }
    report
}

/// The report with every trail's explained part taken out.
fn unexplained(mut report: Report) -> Report {
    for charge in &mut report.charges {
        Arc::make_mut(&mut charge.trail).explained = None;
    }
    report
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn explaining_changes_nothing_but_the_explanation(
        steps in prop::collection::vec(step(), 1..70),
        base in 0..BASES.len(),
        seed in any::<u64>(),
        conflicted in proptest::bool::weighted(0.25),
    ) {
        let world = world(conflicted);
        let mut engine = world.engine();
        let mut events = build(BASES[base], &steps);
        shuffle(&mut events, seed);
        for (line, event) in events.iter_mut().enumerate() {
            event.origin = Origin { source: 0, line: line as u32 + 1 };
        }
        let inferred = outbounds_from_pricing(&events);
        events.extend(inferred);

        prop_assert!(engine.explain, "an engine explains unless told not to");
        let explained = engine.replay(events.clone());
        prop_assert!(explained.charges.iter().all(|charge| charge.trail.explained.is_some()));
        engine.explain = false;
        let plain = engine.replay(events.clone());
        prop_assert!(plain.charges.iter().all(|charge| charge.trail.explained.is_none()));
        prop_assert!(plain.charges.iter().all(|charge| !charge.reason.is_empty()));
        prop_assert_eq!(&plain, &unexplained(explained));
        prop_assert!(engine.reasons, "an engine writes reasons unless told not to");
        engine.reasons = false;
        let bare = engine.replay(events);
        prop_assert!(bare.charges.iter().all(|charge| charge.reason.is_empty()));
        prop_assert_eq!(bare, without_reasons(plain));
    }
}
