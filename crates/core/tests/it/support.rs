//! A small builder for event logs, so scenarios read like Meta's examples.

use jiff::Timestamp;
use rust_decimal::Decimal;
use wameter_core::account::{Accounts, Business, RuleOptions};
use wameter_core::category::TemplateCategory;
use wameter_core::charge::Charge;
use wameter_core::engine::{Engine, Report};
use wameter_core::event::{
    Call, CallDirection, CallStatus, DeliveryStatus, EntryPoint, Event, EventKind, InboundKind,
    Origin, StatusDetail, Template, UserId,
};
use wameter_core::market::MarketTable;
use wameter_core::ratecard::calling::CallRateBook;
use wameter_core::ratecard::{RateBook, RateCard, TierBook};

pub const B: &str = "106540352242922";

pub fn t(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Hours after a base instant.
pub fn h(base: &str, hours: i64) -> Timestamp {
    t(base) + jiff::SignedDuration::from_hours(hours)
}

pub fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

#[derive(Default, Clone)]
pub struct Log {
    pub events: Vec<Event>,
    pub line: u32,
}

impl Log {
    fn push(&mut self, at: Timestamp, kind: EventKind) {
        self.line += 1;
        self.events.push(Event {
            at,
            origin: Origin {
                source: 0,
                line: self.line,
            },
            kind,
        });
    }

    pub fn inbound(&mut self, at: Timestamp, user: &str) -> &mut Self {
        self.inbound_from(B, at, user, None)
    }

    pub fn inbound_from(
        &mut self,
        business: &str,
        at: Timestamp,
        user: &str,
        entry_point: Option<EntryPoint>,
    ) -> &mut Self {
        self.inbound_event(business, None, at, user, entry_point)
    }

    /// An inbound message with its wamid, as Meta's webhooks give it.
    pub fn inbound_with_id(
        &mut self,
        business: &str,
        id: &str,
        at: Timestamp,
        user: &str,
    ) -> &mut Self {
        self.inbound_event(business, Some(id), at, user, None)
    }

    fn inbound_event(
        &mut self,
        business: &str,
        id: Option<&str>,
        at: Timestamp,
        user: &str,
        entry_point: Option<EntryPoint>,
    ) -> &mut Self {
        self.push(
            at,
            EventKind::Inbound {
                business: business.into(),
                user: UserId::parse(user).unwrap(),
                id: id.map(Into::into),
                entry_point,
                kind: InboundKind::Message,
            },
        );
        self
    }

    pub fn ad_click(&mut self, at: Timestamp, user: &str) -> &mut Self {
        self.inbound_from(B, at, user, Some(EntryPoint::Ad))
    }

    pub fn outbound(
        &mut self,
        business: &str,
        id: &str,
        at: Timestamp,
        user: &str,
        category: Option<TemplateCategory>,
    ) -> &mut Self {
        self.push(
            at,
            EventKind::Outbound {
                business: business.into(),
                user: UserId::parse(user).unwrap(),
                id: id.into(),
                template: category.map(|category| {
                    std::sync::Arc::new(Template {
                        name: format!("{}_t", category.as_str()).into(),
                        category,
                    })
                }),
                messaging_account: None,
            },
        );
        self
    }

    pub fn status(&mut self, id: &str, at: Timestamp, status: DeliveryStatus) -> &mut Self {
        self.push(
            at,
            EventKind::Status {
                id: id.into(),
                status,
                error: None,
                detail: None,
            },
        );
        self
    }

    /// A status whose webhook named its business (`metadata.phone_number_id`).
    pub fn status_of(
        &mut self,
        business: &str,
        id: &str,
        at: Timestamp,
        status: DeliveryStatus,
    ) -> &mut Self {
        let detail = Some(Box::new(StatusDetail {
            business: Some(business.into()),
            ..StatusDetail::default()
        }));
        self.push(
            at,
            EventKind::Status {
                id: id.into(),
                status,
                error: None,
                detail,
            },
        );
        self
    }

    /// A call of `seconds` connected (0: never), starting at `at`.
    pub fn call(
        &mut self,
        id: &str,
        at: Timestamp,
        user: &str,
        direction: CallDirection,
        seconds: u32,
    ) -> &mut Self {
        let call = Call {
            business: B.into(),
            user: UserId::parse(user).unwrap(),
            id: id.into(),
            direction,
            duration_seconds: seconds,
            status: CallStatus::default_for(seconds),
            error: None,
            messaging_account: None,
        };
        self.push(at, EventKind::Call(Box::new(call)));
        self
    }

    /// An outbound message delivered at the same instant.
    pub fn send(
        &mut self,
        id: &str,
        at: Timestamp,
        user: &str,
        category: Option<TemplateCategory>,
    ) -> &mut Self {
        self.send_from(B, id, at, user, category)
    }

    pub fn send_from(
        &mut self,
        business: &str,
        id: &str,
        at: Timestamp,
        user: &str,
        category: Option<TemplateCategory>,
    ) -> &mut Self {
        self.outbound(business, id, at, user, category);
        self.status(id, at, DeliveryStatus::Delivered)
    }
}

pub use TemplateCategory::{Authentication as AUTH, Marketing as MKT, Utility as UTIL};

pub fn business(id: &str, zone: &str, currency: &str) -> Business {
    let mut business = Business::with_defaults(id);
    business.timezone = jiff::tz::TimeZone::get(zone).unwrap();
    business.currency = wameter_core::money::Currency::parse(currency).unwrap();
    business
}

pub struct World {
    pub accounts: Accounts,
    pub rates: RateBook,
    pub tiers: TierBook,
    pub call_rates: CallRateBook,
}

impl World {
    pub fn builtin() -> World {
        World {
            accounts: Accounts::default(),
            rates: RateBook::builtin(),
            tiers: TierBook::default(),
            call_rates: CallRateBook::builtin(),
        }
    }

    /// The engine over this world's tables.
    pub fn engine(&self) -> Engine<'_> {
        Engine {
            call_rates: &self.call_rates,
            ..Engine::new(
                &self.accounts,
                &self.rates,
                &self.tiers,
                MarketTable::builtin(),
            )
        }
    }

    pub fn with_businesses(businesses: Vec<Business>) -> World {
        World {
            accounts: Accounts::new(businesses, RuleOptions::default()),
            ..World::builtin()
        }
    }

    pub fn replay(&self, log: &Log) -> Report {
        self.engine().replay(log.events.clone())
    }
}

/// A USD CBP card with three rows of Meta's June-2023 USD card, as quoted
/// verbatim in public code (docs/rules.md §12.3, reference id 17998240068).
pub const USD_CBP_2023: &str = "Cost per conversation in USD, effective June 1, 2023,,,,,,\n\
Market,Currency,Marketing,Utility,Authentication,\"Authentication-\nInternational\",Service\n\
Indonesia,$US,0.0411,0.0200,0.0300,0.1360,0.0190\n\
Malaysia,$US,0.0860,0.0200,0.0180,n/a,0.0220\n\
Other,$US,0.0604,0.0338,0.0304,n/a,0.0145\n";

/// Illustrative per-message card for July 2025 (no real USD card of that
/// date was found): Indonesia's 2026-01 USD rates.
pub const USD_PMP_2025_ILLUSTRATIVE: &str = "Cost per message in USD on the WhatsApp Business Platform, effective July 1, 2025,,,,,,\n\
Market,Currency,Marketing,Utility,Authentication,\"Authentication-\nInternational\",Service\n\
Indonesia,USD,0.0411,0.0250,0.0250,0.1360,n/a\n";

pub fn card(text: &str) -> RateCard {
    RateCard::parse_meta_csv("test-card.csv", text).unwrap()
}

pub fn charge<'a>(report: &'a Report, id: &str) -> &'a Charge {
    report
        .charges
        .iter()
        .find(|c| &*c.message_id == id)
        .unwrap_or_else(|| panic!("no charge for {id}: {:?}", report.errors))
}

pub fn total(report: &Report) -> Decimal {
    report.charges.iter().map(|c| c.amount).sum()
}

/// (category, type, amount, rule) of a charge, for compact assertions.
pub fn verdict(report: &Report, id: &str) -> (String, String, String, String) {
    let c = charge(report, id);
    (
        c.category.as_str().into(),
        c.pricing_type.as_str().into(),
        wameter_core::money::format_amount(c.amount),
        c.rule.into(),
    )
}
