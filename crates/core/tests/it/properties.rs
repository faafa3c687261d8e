//! Invariants: the charges do not depend on the order of the log, on
//! duplicated lines, or on how the log is split into files; totals are the
//! sum of charges; replay is deterministic.

use proptest::prelude::*;
use wameter_core::category::TemplateCategory;
use wameter_core::engine::Report;
use wameter_core::event::{DeliveryStatus, Event, Origin};

use super::support::*;

const USERS: [&str; 4] = [
    "+5511999990000",
    "+919876543210",
    "+6281234567890",
    "+12125550100",
];

#[derive(Debug, Clone)]
pub(super) enum Step {
    Inbound {
        user: usize,
        minute: i64,
        ad: bool,
    },
    Send {
        user: usize,
        minute: i64,
        category: Option<u8>,
        delay: i64,
        outcome: u8,
    },
}

pub(super) fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..USERS.len(), 0..6_000i64, proptest::bool::weighted(0.15))
            .prop_map(|(user, minute, ad)| Step::Inbound { user, minute, ad }),
        (
            0..USERS.len(),
            0..6_000i64,
            proptest::option::of(0..3u8),
            0..120i64,
            0..10u8
        )
            .prop_map(|(user, minute, category, delay, outcome)| Step::Send {
                user,
                minute,
                category,
                delay,
                outcome
            }),
    ]
}

pub(super) fn build(steps: &[Step]) -> Log {
    let base = t("2026-02-01T00:00:00Z");
    let at = |minute: i64| base + jiff::SignedDuration::from_mins(minute);
    let mut log = Log::default();
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Inbound { user, minute, ad } => {
                if *ad {
                    log.ad_click(at(*minute), USERS[*user])
                } else {
                    log.inbound(at(*minute), USERS[*user])
                };
            }
            Step::Send {
                user,
                minute,
                category,
                delay,
                outcome,
            } => {
                let id = format!("w{index}");
                let category = category.map(|c| {
                    [
                        TemplateCategory::Marketing,
                        TemplateCategory::Utility,
                        TemplateCategory::Authentication,
                    ][c as usize]
                });
                log.outbound(B, &id, at(*minute), USERS[*user], category);
                let delivered = at(*minute) + jiff::SignedDuration::from_secs(*delay);
                match outcome {
                    0 => {
                        log.status(&id, delivered, DeliveryStatus::Failed);
                    }
                    1 => {
                        log.status(&id, delivered, DeliveryStatus::Read);
                    }
                    2 => {}
                    _ => {
                        log.status(&id, delivered, DeliveryStatus::Delivered)
                            .status(
                                &id,
                                delivered + jiff::SignedDuration::from_secs(30),
                                DeliveryStatus::Read,
                            );
                    }
                }
            }
        }
    }
    log
}

/// What must not change: every field of every charge except where it was read.
fn fingerprint(report: &Report) -> Vec<String> {
    report
        .charges
        .iter()
        .map(|c| {
            let mut trail = (*c.trail).clone();
            trail.origin = Origin::default();
            format!(
                "{} {} {:?} {:?} {:?} {} {:?} {} {} {:?} {} {} {} {:?}",
                c.message_id,
                c.delivered_at,
                c.pricing_model,
                c.category,
                c.pricing_type,
                c.billable,
                c.conversation_id,
                c.opens_conversation,
                c.amount,
                c.tier,
                c.ruleset,
                c.rule,
                c.reason,
                trail
            )
        })
        .collect()
}

fn with_lines(mut events: Vec<Event>) -> Vec<Event> {
    for (line, event) in events.iter_mut().enumerate() {
        event.origin = Origin {
            source: 0,
            line: line as u32 + 1,
        };
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn order_duplicates_and_files_do_not_change_the_charges(steps in prop::collection::vec(step(), 1..60), seed in any::<u64>()) {
        let world = World::builtin();
        let log = build(&steps);
        let reference = world.replay(&log);
        prop_assert!(reference.errors.is_empty(), "{:?}", reference.errors);

        // Shuffled (a deterministic permutation from the seed).
        let mut shuffled = log.events.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let shuffled_log = Log { events: with_lines(shuffled.clone()), ..Log::default() };
        prop_assert_eq!(fingerprint(&world.replay(&shuffled_log)), fingerprint(&reference));

        // Every line twice.
        let mut doubled = log.events.clone();
        doubled.extend(log.events.iter().cloned());
        prop_assert_eq!(fingerprint(&world.replay(&Log { events: doubled, ..Log::default() })), fingerprint(&reference));

        // Split into three files.
        let split: Vec<Event> = shuffled.into_iter().enumerate().map(|(i, mut e)| { e.origin.source = (i % 3) as u32; e }).collect();
        prop_assert_eq!(fingerprint(&world.replay(&Log { events: split, ..Log::default() })), fingerprint(&reference));

        // Deterministic.
        prop_assert_eq!(fingerprint(&world.replay(&log)), fingerprint(&reference));
    }

    #[test]
    fn totals_equal_the_sum_of_charges(steps in prop::collection::vec(step(), 1..60)) {
        let report = World::builtin().replay(&build(&steps));
        let totals = wameter_core::report::totals(&report.charges);
        let sum: rust_decimal::Decimal = report.charges.iter().map(|c| c.amount).sum();
        prop_assert_eq!(totals.iter().map(|t| t.amount).sum::<rust_decimal::Decimal>(), sum);
        prop_assert_eq!(totals.iter().map(|t| t.billable_messages).sum::<u64>(), report.charges.iter().filter(|c| c.billable).count() as u64);
        // Free types never carry an amount; a regular PMP charge always does.
        for charge in &report.charges {
            if charge.pricing_type.as_str() != "regular" { prop_assert!(charge.amount.is_zero()); }
            if charge.pricing_type.as_str() == "regular" && charge.pricing_model == wameter_core::category::PricingModel::Pmp {
                prop_assert!(!charge.amount.is_zero());
            }
        }
        // One charge per delivered message.
        let delivered = report.stats.delivered as usize;
        prop_assert_eq!(report.charges.len(), delivered);
    }
}
