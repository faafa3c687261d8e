//! A replay on several threads answers what it answers on one: the
//! preparation deals events out by message and then by pair, the settling
//! deals charges out by portfolio, and neither may change a byte of the
//! report, whatever the number of parts. Nor may folding the statuses that
//! name no business in as the log is read (`wameter replay`).

use proptest::prelude::*;
use wameter_core::engine::{FoldedStatuses, Prepared, prepare_folded, prepare_in};
use wameter_core::event::{
    Event, EventKind, Origin, UnownedStatus, UserId, outbounds_from_pricing,
};

use super::incremental::{BASES, build, shuffle, step, world};

/// Everything a preparation says, comparable.
fn fingerprint(prepared: &Prepared) -> String {
    // A user's Debug form leaves out the country beside a scoped id.
    let countries: Vec<Option<&str>> = prepared
        .contacts
        .iter()
        .map(|contact| contact.user.country())
        .collect();
    format!(
        "{:?}\n{countries:?}\n{:?}\n{:?}\n{:?}",
        prepared.contacts, prepared.warnings, prepared.stats, prepared.calls
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_report_does_not_depend_on_the_number_of_threads(
        steps in prop::collection::vec(step(), 1..70),
        base in 0..BASES.len(),
        seed in any::<u64>(),
        parts in 2..6usize,
        conflicted in proptest::bool::weighted(0.25),
        doubled in proptest::bool::weighted(0.3),
        carried in proptest::bool::weighted(0.2),
        recountried in proptest::bool::weighted(0.3),
    ) {
        let world = world(conflicted);
        let mut engine = world.engine();
        let mut events = build(BASES[base], &steps);
        if doubled {
            events.extend(events.clone());
        }
        if recountried {
            // A scoped id whose country changes (Meta's data or the log's
            // is wrong): the pair takes its first event's, on any thread.
            for (index, event) in events.iter_mut().enumerate() {
                if let EventKind::Inbound { user, .. } | EventKind::Outbound { user, .. } = &mut event.kind
                    && let UserId::Bsuid(_, country @ Some(_)) = user
                    && index % 5 == 1
                {
                    *country = wameter_core::event::Country::new("BR");
                }
            }
        }
        shuffle(&mut events, seed);
        for (line, event) in events.iter_mut().enumerate() {
            event.origin = Origin { source: 0, line: line as u32 + 1 };
        }
        let inferred = outbounds_from_pricing(&events);
        events.extend(inferred);

        let one = prepare_in(&events, 1);
        let many = prepare_in(&events, parts);
        prop_assert_eq!(fingerprint(&one), fingerprint(&many));

        // The statuses naming no business folded in as read, the rest
        // prepared as events.
        let mut folded = FoldedStatuses::in_parts(parts);
        let mut kept = Vec::new();
        for event in events.iter().cloned() {
            match UnownedStatus::from_event(event) {
                Ok(status) => {
                    let part = folded.part_of(&status.id);
                    folded.parts_mut()[part].fold(status);
                }
                Err(event) => kept.push(event),
            }
        }
        prop_assert!(kept.len() < events.len() || folded.read() == 0);
        prop_assert_eq!(fingerprint(&one), fingerprint(&prepare_folded(&kept, folded)));

        // Counters carried from an earlier part of the log put every
        // charge in one group; without them, each portfolio is one.
        let earlier = carried.then(|| engine.replay(events.iter().take(events.len() / 2).cloned().collect::<Vec<Event>>()).counters);
        engine.month_to_date = earlier.as_ref();
        let settle = |prepared: Prepared, parts: usize| {
            let decisions = prepared.contacts.iter().map(|contact| engine.decide(contact)).collect();
            engine.settle_in(prepared, decisions, parts)
        };
        let report = settle(one.clone(), 1);
        prop_assert_eq!(&settle(many, parts), &report);
        // Decided into one list, on several threads, and settled in place.
        let mut whole = one.clone();
        let decided = engine.decide_all_in(std::mem::take(&mut whole.contacts), parts);
        prop_assert_eq!(&engine.settle_decided(whole, decided), &report);
        // Decisions in any order: ties of instants are then broken by
        // looking at the charges, not by where they sit.
        let mut shuffled = one.clone();
        shuffled.contacts.reverse();
        let decisions = shuffled.contacts.iter().map(|contact| engine.decide(contact)).collect();
        prop_assert_eq!(&engine.settle_in(one.clone(), decisions, parts), &report);
        // Timelines decided out of pair order, into one list, on one thread,
        // on several, and on one a timeline (where only the runs' ends,
        // compared apart, show the order): the settling must not take them
        // for pair order.
        for threads in [1, parts, shuffled.contacts.len().max(1)] {
            let mut shuffled = shuffled.clone();
            let decided = engine.decide_all_in(std::mem::take(&mut shuffled.contacts), threads);
            prop_assert_eq!(&engine.settle_decided(shuffled, decided), &report);
        }
        prop_assert_eq!(&engine.replay(events), &report);
    }
}
