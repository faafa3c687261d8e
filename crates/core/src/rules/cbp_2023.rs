//! Conversation-based pricing v2: 2023-06-01 → 2025-06-30.
//!
//! Source: Meta's "Conversation-based pricing" page (M-CBP); docs/rules.md §6.
//!
//! - A **template** of category C (marketing, utility, authentication)
//!   delivered at t opens a 24 h C-conversation unless one is open.
//! - A **free-form** message opens a 24 h **service** conversation only if no
//!   conversation of any category is open.
//! - Several categories can be open at once (W1, W6).
//! - Service conversations: the first 1,000 per WABA per month are free
//!   (free tier, D7); from 2024-11-01 all are free (`billable: false`, D8).
//! - Authentication conversations are priced authentication-international
//!   when the business is eligible (D9; settled with the rate card).
//! - A free entry point conversation (72 h) closes every open conversation and
//!   blocks new ones until it expires.
//! - A CBP v1 conversation open at 2023-06-01 keeps covering messages until
//!   it expires (our position, by analogy with D13).

use jiff::civil::{Date, date};

use crate::category::{PricingCategory, PricingModel, PricingType, TemplateCategory};
use crate::charge::Settlement;
use crate::ruleset::Ruleset;
use crate::window::{ContactState, Slot, Window};

use super::{Delivery, Verdict, inside_free_entry_point};

/// From this business-local date service conversations are free (D8).
pub const SERVICE_FREE_FROM: Date = date(2024, 11, 1);

pub(crate) fn slot_of(category: TemplateCategory) -> Slot {
    match category {
        TemplateCategory::Marketing => Slot::Marketing,
        TemplateCategory::Utility => Slot::Utility,
        TemplateCategory::Authentication => Slot::Authentication,
    }
}

pub(crate) fn slot_category(slot: Slot) -> PricingCategory {
    match slot {
        Slot::Marketing => PricingCategory::Marketing,
        Slot::Utility => PricingCategory::Utility,
        Slot::Authentication => PricingCategory::Authentication,
        Slot::Service => PricingCategory::Service,
    }
}

const SLOTS: [Slot; 4] = [
    Slot::Marketing,
    Slot::Utility,
    Slot::Authentication,
    Slot::Service,
];

/// A message inside an open CBP v2 conversation: it inherits its pricing.
pub(crate) fn member_of(
    delivery: &Delivery,
    slot: Slot,
    window: Window,
    rule: &'static str,
) -> Verdict {
    let category = slot_category(slot);
    Verdict {
        ruleset: Ruleset::Cbp2023,
        rule,
        reason: delivery.reason(|| {
            format!(
                "{} delivered inside the {} conversation opened {} (open until {})",
                delivery.describe(),
                category,
                window.opened_at,
                window.closes_at
            )
        }),
        pricing_model: PricingModel::Cbp,
        category,
        pricing_type: PricingType::Regular,
        billable: true,
        conversation: Some((
            delivery.conversation_id(category.as_str(), window.opened_at),
            false,
        )),
        settlement: Settlement::ConversationMember,
    }
}

/// Decides one delivery under CBP v2.
pub(crate) fn decide(delivery: &Delivery, state: &mut ContactState) -> Verdict {
    let at = delivery.delivered_at;
    if let Some(window) = delivery.free_entry_point {
        if delivery.opened_free_entry_point {
            // Opening a free entry point closes all other conversations.
            state.v2_conversations = [None; 4];
            state.v1_conversation = None;
        }
        return inside_free_entry_point(delivery, Ruleset::Cbp2023, window, true);
    }
    if let Some((window, user_initiated)) = state.v1_open(at) {
        let mut verdict = super::cbp_2022::decide(delivery, state);
        verdict.rule = "cbp-2022-conversation-continues";
        verdict.reason = delivery.reason(|| {
            format!(
                "{} delivered inside a {} conversation opened under the 2022 rules at {} (open until {})",
                delivery.describe(),
                if user_initiated {
                    "user-initiated"
                } else {
                    "business-initiated"
                },
                window.opened_at,
                window.closes_at
            )
        });
        return verdict;
    }
    match delivery.template {
        Some(template) => {
            let slot = slot_of(template.category);
            if let Some(window) = state.v2_open(slot, at) {
                return member_of(
                    delivery,
                    slot,
                    window,
                    "template-inside-same-category-conversation",
                );
            }
            state.v2_conversations[slot as usize] = Some(at);
            let category = slot_category(slot);
            Verdict {
                ruleset: Ruleset::Cbp2023,
                rule: "template-opens-conversation",
                reason: delivery.reason(|| {
                    let others = open_others(state, at, slot);
                    format!(
                        "{} delivered with no {category} conversation open{}: {category} conversation opened",
                        delivery.describe(),
                        if others.is_empty() {
                            String::new()
                        } else {
                            format!(" (open: {others}; categories do not merge)")
                        }
                    )
                }),
                pricing_model: PricingModel::Cbp,
                category,
                pricing_type: PricingType::Regular,
                billable: true,
                conversation: Some((delivery.conversation_id(category.as_str(), at), true)),
                settlement: Settlement::ConversationOpened {
                    rate_category: category,
                    free_tier: false,
                },
            }
        }
        None => {
            // Any open conversation covers a free-form message; the earliest
            // opened one is named so the choice is deterministic.
            let open = SLOTS
                .iter()
                .filter_map(|slot| state.v2_open(*slot, at).map(|w| (w.opened_at, *slot, w)))
                .min_by_key(|(opened, slot, _)| (*opened, *slot));
            if let Some((_, slot, window)) = open {
                return member_of(delivery, slot, window, "free-form-inside-open-conversation");
            }
            state.v2_conversations[Slot::Service as usize] = Some(at);
            let free = delivery.local_date >= SERVICE_FREE_FROM;
            let window_text = || match delivery.customer_service_window {
                Some(window) => format!(
                    "inside the customer service window opened {}",
                    window.opened_at
                ),
                None => "with no customer service window open".to_string(),
            };
            Verdict {
                ruleset: Ruleset::Cbp2023,
                rule: if free {
                    "service-conversation-opened-free"
                } else {
                    "service-conversation-opened"
                },
                reason: delivery.reason(|| {
                    let window_text = window_text();
                    if free {
                        format!(
                            "free-form message {window_text} with no conversation open: service conversation opened, free since 2024-11-01"
                        )
                    } else {
                        format!(
                            "free-form message {window_text} with no conversation open: service conversation opened"
                        )
                    }
                }),
                pricing_model: PricingModel::Cbp,
                category: PricingCategory::Service,
                pricing_type: if free {
                    PricingType::FreeCustomerService
                } else {
                    PricingType::Regular
                },
                billable: !free,
                conversation: Some((delivery.conversation_id("service", at), true)),
                settlement: if free {
                    Settlement::Free
                } else {
                    Settlement::ConversationOpened {
                        rate_category: PricingCategory::Service,
                        free_tier: true,
                    }
                },
            }
        }
    }
}

fn open_others(state: &ContactState, at: jiff::Timestamp, except: Slot) -> String {
    SLOTS
        .iter()
        .filter(|slot| **slot != except && state.v2_open(**slot, at).is_some())
        .map(|slot| slot_category(*slot).as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
