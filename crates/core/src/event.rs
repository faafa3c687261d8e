//! Canonical events: what happened between a business and a user.
//!
//! These are the engine's only input about traffic. Adapters (the NDJSON log
//! reader, Meta's webhooks, the server) turn their formats into these.

use std::fmt;

use jiff::Timestamp;

use crate::category::TemplateCategory;

/// Where an event came from: source file index and 1-based line number.
///
/// Used in error messages and as the last tie-breaker when ordering events
/// whose content is identical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Origin {
    /// Index of the source (file) in the order the sources were given.
    pub source: u32,
    /// 1-based line number inside the source.
    pub line: u32,
}

/// A user, as identified in a log: an E.164 phone number or a business-scoped
/// user id (BSUID, `"BR.1502…"`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserId {
    /// Phone number digits without `+` (country code first).
    Phone(Box<str>),
    /// Business-scoped user id, whose two-letter prefix is an ISO 3166 country.
    Bsuid(Box<str>),
}

impl UserId {
    /// Parses `"+5511999990000"`, `"5511999990000"` or `"BR.1502…"`.
    ///
    /// ```
    /// use wameter_core::event::UserId;
    /// assert_eq!(UserId::parse("+55 11 99999-0000").unwrap().to_string(), "+5511999990000");
    /// assert_eq!(UserId::parse("US.13491208655302741918").unwrap().to_string(), "US.13491208655302741918");
    /// assert!(UserId::parse("hello").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<UserId, String> {
        let text = text.trim();
        let bytes = text.as_bytes();
        if bytes.len() > 3
            && bytes[0].is_ascii_uppercase()
            && bytes[1].is_ascii_uppercase()
            && bytes[2] == b'.'
        {
            return Ok(UserId::Bsuid(text.into()));
        }
        let body = text.strip_prefix('+').unwrap_or(text);
        let mut digits = String::with_capacity(body.len());
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                // People write numbers with separators; Meta's wa_id has none.
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => {
                    return Err(format!(
                        "`{text}` is neither an E.164 phone number nor a business-scoped user id"
                    ));
                }
            }
        }
        // E.164 allows at most 15 digits; the shortest real numbers have 7.
        if !(7..=15).contains(&digits.len()) {
            return Err(format!("`{text}` has {} digits; E.164 numbers have 7 to 15", digits.len()));
        }
        Ok(UserId::Phone(digits.into()))
    }

    /// The phone digits, if this is a phone number.
    pub fn phone_digits(&self) -> Option<&str> {
        match self {
            UserId::Phone(digits) => Some(digits),
            UserId::Bsuid(_) => None,
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Phone(digits) => write!(f, "+{digits}"),
            UserId::Bsuid(id) => f.write_str(id),
        }
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How a user reached the business, when it makes a free entry point possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryPoint {
    /// Click-to-WhatsApp ad.
    Ad,
    /// Facebook Page call-to-action button.
    PageCta,
}

impl EntryPoint {
    /// Parses `"ad"` or `"page_cta"`.
    pub fn parse(text: &str) -> Option<EntryPoint> {
        match text {
            "ad" => Some(EntryPoint::Ad),
            "page_cta" => Some(EntryPoint::PageCta),
            _ => None,
        }
    }

    /// The log spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryPoint::Ad => "ad",
            EntryPoint::PageCta => "page_cta",
        }
    }
}

/// Whether the user wrote or called; both open the customer service window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum InboundKind {
    /// A message from the user.
    #[default]
    Message,
    /// A call from the user (opens the window since 2025, domain-rules §3.1).
    Call,
}

/// A template used by an outbound message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Template {
    /// Template name (`order_update`).
    pub name: Box<str>,
    /// Category at time of use — authoritative for rating (decision D14).
    pub category: TemplateCategory,
}

/// Meta's delivery status of an outbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryStatus {
    /// Accepted by WhatsApp's servers.
    Sent,
    /// Delivered to the device — the charging event.
    Delivered,
    /// Read; implies delivery when no `delivered` was seen.
    Read,
    /// Not delivered; never charged.
    Failed,
}

impl DeliveryStatus {
    /// Parses Meta's status names. `played` (voice messages) implies delivery
    /// the same way `read` does.
    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        match text {
            "sent" => Some(DeliveryStatus::Sent),
            "delivered" => Some(DeliveryStatus::Delivered),
            "read" | "played" => Some(DeliveryStatus::Read),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One canonical event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it happened.
    pub at: Timestamp,
    /// Where it was read from.
    pub origin: Origin,
    /// What happened.
    pub kind: EventKind,
}

/// The three kinds of canonical event (interfaces §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The user wrote to or called the business.
    Inbound {
        /// Business phone number id.
        business: Box<str>,
        /// The user.
        user: UserId,
        /// The wamid, when known (used to drop duplicates).
        id: Option<Box<str>>,
        /// Present when this inbound can start a free entry point.
        entry_point: Option<EntryPoint>,
        /// Message or call.
        kind: InboundKind,
    },
    /// The business sent a message (accepted by the API, not yet delivered).
    Outbound {
        /// Business phone number id.
        business: Box<str>,
        /// The user.
        user: UserId,
        /// The wamid.
        id: Box<str>,
        /// `None` for a free-form (non-template) message.
        template: Option<Template>,
    },
    /// Meta's status for an outbound message.
    Status {
        /// The wamid of the outbound message.
        id: Box<str>,
        /// The status.
        status: DeliveryStatus,
        /// Meta's error code on `failed`.
        error: Option<i64>,
    },
}

impl EventKind {
    /// Ordering rank for events at the same instant: inbound before outbound
    /// before status (interfaces §1).
    pub fn rank(&self) -> u8 {
        match self {
            EventKind::Inbound { .. } => 0,
            EventKind::Outbound { .. } => 1,
            EventKind::Status { .. } => 2,
        }
    }
}
