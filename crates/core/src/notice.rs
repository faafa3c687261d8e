//! Notices: what Meta told the business that is not traffic.
//!
//! A template re-categorised, an account moved to a new volume tier, a
//! business made eligible for authentication-international rates, a user
//! who stopped marketing messages. None of these opens a window or delivers
//! a message, so the engine does not read them; reconciliation does (a
//! template re-categorised before a send is the commonest surprise on an
//! invoice), and `wameter events` prints them so a user sees what was
//! understood.
//!
//! The serialised form is the canonical log line for the notice: a `type`
//! naming the kind plus the fields below, so `wameter events` output can be
//! read back as a log.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::Origin;

/// One notice, with when Meta sent it and which account it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// When Meta says it happened (`entry[].time` or the value's own
    /// timestamp); `None` when the webhook gives no time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// The WhatsApp Business Account id (`entry[].id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba: Option<Box<str>>,
    /// Where it was read.
    #[serde(skip)]
    pub origin: Origin,
    /// What happened.
    #[serde(flatten)]
    pub kind: NoticeKind,
}

/// The kinds of notice wameter understands (docs/rules.md §8.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NoticeKind {
    /// `template_category_update`: Meta moved (or will move) a template to
    /// another category. Sends after `at` are charged at `new_category`.
    TemplateCategoryUpdate {
        /// Which template.
        #[serde(flatten)]
        template: TemplateRef,
        /// `previous_category`, lower-cased.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_category: Option<Box<str>>,
        /// `new_category`, lower-cased.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_category: Option<Box<str>>,
        /// `correct_category`, lower-cased: the category Meta will apply
        /// later (a pending re-categorisation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correct_category: Option<Box<str>>,
        /// `category_update_timestamp`: when `correct_category` takes effect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effective_at: Option<Timestamp>,
    },
    /// `message_template_status_update`: approved, rejected (e.g.
    /// `INCORRECT_CATEGORY`), flagged, paused, disabled.
    TemplateStatusUpdate {
        /// Which template.
        #[serde(flatten)]
        template: TemplateRef,
        /// `message_template_category`, lower-cased.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<Box<str>>,
        /// `event`: `APPROVED`, `REJECTED`, `FLAGGED`, …
        event: Box<str>,
        /// `reason`, when Meta gives one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Box<str>>,
    },
    /// `account_update` / `VOLUME_BASED_PRICING_TIER_UPDATE`: the portfolio
    /// reached a new volume tier in a market.
    VolumeTierUpdate {
        /// `pricing_category`, lower-cased.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<Box<str>>,
        /// `tier`, e.g. `25000001:50000000`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<Box<str>>,
        /// `effective_month`, `YYYY-MM`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effective_month: Option<Box<str>>,
        /// `region`: the market.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        market: Option<Box<str>>,
    },
    /// `account_update` / `AUTH_INTL_PRICE_ELIGIBILITY_UPDATE`: from when
    /// authentication-international rates apply, and the countries excepted
    /// until later dates.
    AuthInternationalEligibility {
        /// `start_time`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<Timestamp>,
        /// `exception_countries`: ISO country and its own start.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exceptions: Vec<CountryStart>,
    },
    /// `account_update` / `BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE`.
    PrimaryBusinessLocation {
        /// ISO country.
        country: Box<str>,
    },
    /// Any other `account_update` event (`DISABLED_UPDATE`,
    /// `ACCOUNT_RESTRICTION`, `VERIFIED_ACCOUNT`, …): kept by name.
    AccountUpdate {
        /// `event`.
        event: Box<str>,
    },
    /// `user_preferences`: a user stopped or resumed marketing messages
    /// (later marketing sends fail with 131050 and are not charged).
    UserPreference {
        /// The business phone number id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        business: Option<Box<str>>,
        /// The user as Meta wrote it (`wa_id` or BSUID).
        user: Box<str>,
        /// `category`, e.g. `marketing_messages`.
        category: Box<str>,
        /// `value`: `stop` or `resume`.
        value: Box<str>,
    },
}

/// A template as Meta's template webhooks name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    /// `message_template_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<Box<str>>,
    /// `message_template_name`: what send logs call it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<Box<str>>,
    /// `message_template_language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Box<str>>,
}

/// A country and the instant something starts for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryStart {
    /// ISO 3166 alpha-2.
    pub country: Box<str>,
    /// Start instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
}

impl NoticeKind {
    /// The `type` spelling of each kind, for parsers that must know whether
    /// a canonical line is a notice before reading it as one.
    pub const TYPES: [&'static str; 7] = [
        "template_category_update",
        "template_status_update",
        "volume_tier_update",
        "auth_international_eligibility",
        "primary_business_location",
        "account_update",
        "user_preference",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_canonical_line() {
        let kinds = vec![
            NoticeKind::TemplateCategoryUpdate {
                template: TemplateRef {
                    template_id: Some("1".into()),
                    template_name: Some("welcome".into()),
                    language: None,
                },
                previous_category: Some("utility".into()),
                new_category: Some("marketing".into()),
                correct_category: None,
                effective_at: None,
            },
            NoticeKind::TemplateStatusUpdate {
                template: TemplateRef {
                    template_id: None,
                    template_name: Some("x".into()),
                    language: Some("en_US".into()),
                },
                category: Some("marketing".into()),
                event: "REJECTED".into(),
                reason: Some("INCORRECT_CATEGORY".into()),
            },
            NoticeKind::VolumeTierUpdate {
                category: Some("utility".into()),
                tier: Some("1:2".into()),
                effective_month: None,
                market: Some("India".into()),
            },
            NoticeKind::AuthInternationalEligibility {
                start: Some(Timestamp::from_second(1_748_780_624).unwrap()),
                exceptions: vec![CountryStart {
                    country: "ID".into(),
                    start: None,
                }],
            },
            NoticeKind::PrimaryBusinessLocation {
                country: "IN".into(),
            },
            NoticeKind::AccountUpdate {
                event: "DISABLED_UPDATE".into(),
            },
            NoticeKind::UserPreference {
                business: None,
                user: "16505551234".into(),
                category: "marketing_messages".into(),
                value: "stop".into(),
            },
        ];
        assert_eq!(kinds.len(), NoticeKind::TYPES.len());
        for (kind, name) in kinds.into_iter().zip(NoticeKind::TYPES) {
            let notice = Notice {
                at: Some(Timestamp::from_second(1_750_000_000).unwrap()),
                waba: Some("9".into()),
                origin: Origin::default(),
                kind,
            };
            let line = serde_json::to_string(&notice).unwrap();
            assert!(line.contains(&format!("\"type\":\"{name}\"")), "{line}");
            let back: Notice = serde_json::from_str(&line).unwrap();
            assert_eq!(back, notice, "{line}");
        }
    }
}
