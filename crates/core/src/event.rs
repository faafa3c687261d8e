//! Canonical events: what happened between a business and a user.
//!
//! These are the engine's only input about traffic. Adapters (the NDJSON log
//! reader, Meta's webhooks, the server) turn their formats into these.

use std::fmt;
use std::sync::Arc;

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
/// user id (BSUID: `"BR.1502…"`, `"user.9373…"`).
///
/// Shared text: a user is copied into every timeline item, pair key and
/// charge of theirs, and each copy of a `Box<str>` was an allocation.
#[derive(Clone)]
pub enum UserId {
    /// Phone number digits without `+` (country code first).
    Phone(Arc<str>),
    /// Business-scoped user id as Meta wrote it, and the user's ISO 3166
    /// country when known: the id's own two-letter prefix (`US.1349…`), or
    /// the `contacts[].profile.country_code` Meta sent beside an id without
    /// one (`user.9373…`). Equality, order and hashing use the id alone: the
    /// same user seen with and without the country is one user.
    Bsuid(Arc<str>, Option<Country>),
}

/// An ISO 3166 alpha-2 country code, upper case, held inline: a user is
/// copied into every event, timeline item and charge of theirs, and a
/// shared string for two letters made each copy 8 bytes larger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Two ASCII letters, any case; `None` for anything else.
    ///
    /// ```
    /// use wameter_core::event::Country;
    /// assert_eq!(Country::new("br").unwrap().as_str(), "BR");
    /// assert!(Country::new("BRA").is_none());
    /// ```
    pub fn new(code: &str) -> Option<Country> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The two letters.
    pub fn as_str(&self) -> &str {
        // Two ASCII letters by construction, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for Country {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for UserId {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for UserId {}

impl std::hash::Hash for UserId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for UserId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UserId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// An id's own country prefix: two upper-case letters and a dot.
fn country_prefix(id: &str) -> Option<&str> {
    let bytes = id.as_bytes();
    (bytes.len() > 3
        && bytes[0].is_ascii_uppercase()
        && bytes[1].is_ascii_uppercase()
        && bytes[2] == b'.')
        .then(|| &id[..2])
}

impl UserId {
    pub(crate) fn key(&self) -> (u8, &str) {
        match self {
            UserId::Phone(digits) => (0, digits),
            UserId::Bsuid(id, _) => (1, id),
        }
    }

    /// Parses `"+5511999990000"`, `"5511999990000"`, or a business-scoped
    /// user id: letters, a dot, then the id (`"BR.1502…"`, `"user.9373…"`).
    ///
    /// ```
    /// use wameter_core::event::UserId;
    /// assert_eq!(UserId::parse("+55 11 99999-0000").unwrap().to_string(), "+5511999990000");
    /// assert_eq!(UserId::parse("US.13491208655302741918").unwrap().country(), Some("US"));
    /// assert_eq!(UserId::parse("user.9373795779eb").unwrap().country(), None);
    /// assert!(UserId::parse("hello").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<UserId, String> {
        UserId::parse_shared(text, &mut |id| Arc::from(id))
    }

    /// [`UserId::parse`], the id's text made by `share`: a reader keeps one
    /// copy of each user it has read and hands it out again.
    pub fn parse_shared(
        text: &str,
        share: &mut impl FnMut(&str) -> Arc<str>,
    ) -> Result<UserId, String> {
        let text = text.trim();
        if let Some((prefix, rest)) = text.split_once('.') {
            let scoped = !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_alphabetic())
                && !rest.is_empty()
                && text.len() <= 256
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control());
            if scoped {
                return Ok(UserId::Bsuid(
                    share(text),
                    country_prefix(text).and_then(Country::new),
                ));
            }
        }
        let body = text.strip_prefix('+').unwrap_or(text);
        // As Meta writes a wa_id: digits only, taken as they are.
        if (7..=15).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(UserId::Phone(share(body)));
        }
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
            return Err(format!(
                "`{text}` has {} digits; E.164 numbers have 7 to 15",
                digits.len()
            ));
        }
        Ok(UserId::Phone(share(&digits)))
    }

    /// The phone digits, if this is a phone number.
    pub fn phone_digits(&self) -> Option<&str> {
        match self {
            UserId::Phone(digits) => Some(digits),
            UserId::Bsuid(..) => None,
        }
    }

    /// A business-scoped id's country, when known.
    pub fn country(&self) -> Option<&str> {
        match self {
            UserId::Phone(_) => None,
            UserId::Bsuid(_, country) => country.as_ref().map(Country::as_str),
        }
    }

    /// The country Meta gave beside an id that does not carry its own
    /// (`contacts[].profile.country_code`); two letters, any case. An id
    /// with its own prefix, a phone number, or a code that is not two
    /// letters is left as it is.
    pub fn with_country(self, code: &str) -> UserId {
        match (self, Country::new(code)) {
            (UserId::Bsuid(id, None), Some(country)) => UserId::Bsuid(id, Some(country)),
            (other, _) => other,
        }
    }

    /// The country to write beside the id in a canonical line: one the id's
    /// own prefix does not say.
    pub fn country_beside(&self) -> Option<&str> {
        match self {
            UserId::Bsuid(id, Some(country)) if country_prefix(id) != Some(country.as_str()) => {
                Some(country.as_str())
            }
            _ => None,
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Phone(digits) => write!(f, "+{digits}"),
            UserId::Bsuid(id, _) => f.write_str(id),
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
    /// A call from the user (opens the window since 2025, docs/rules.md §3.1).
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

    /// Meta's name (`played` was read as `read`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
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

/// The four kinds of canonical event (interfaces §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The user wrote to or called the business.
    Inbound {
        /// Business phone number id. Shared: a log reader hands out one
        /// copy for a run of lines, not one a line.
        business: Arc<str>,
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
        /// Business phone number id. Shared: a log reader hands out one
        /// copy for a run of lines, not one a line.
        business: Arc<str>,
        /// The user.
        user: UserId,
        /// The wamid. Shared: a replay's delivery, and its charge, keep the
        /// send's own copy (a copy each was 23 MB of fresh memory on 2 M
        /// events).
        id: Arc<str>,
        /// `None` for a free-form (non-template) message. Shared: a
        /// delivery's trail keeps the same template, and inline it made
        /// every event, of whatever kind, 16 bytes larger.
        template: Option<Arc<Template>>,
        /// The Messaging account the send named (`messaging_account_id`,
        /// or the older `paid_messaging_account_id`): which of the
        /// number's accounts pays. `None`: its first (docs/rules.md §16).
        messaging_account: Option<Box<str>>,
    },
    /// Meta's status for an outbound message.
    Status {
        /// The wamid of the outbound message.
        id: Box<str>,
        /// The status.
        status: DeliveryStatus,
        /// Meta's error code on `failed`.
        error: Option<i64>,
        /// What Meta's webhook said besides the status (recipient, pricing,
        /// conversation); `None` for a plain canonical status line. Boxed
        /// because most logs have millions of statuses and few details.
        detail: Option<Box<StatusDetail>>,
    },
    /// A voice call over the Calling API (boxed: calls are few next to
    /// messages, and every event pays for the largest kind).
    Call(Box<Call>),
    /// Tokens Meta Business Agent used answering a user.
    AgentUsage(Box<AgentUsage>),
}

/// A status event naming no business (no `business` on the line, no
/// `metadata.phone_number_id`): it stands for the message of its wamid
/// whichever business sent it. `gen`'s and most canonical logs' statuses
/// are all such, and they are most of a log's lines.
///
/// A log reader gives them in this form so that a replay can fold each into
/// its message's summary as it reads (`engine::FoldedStatuses`) with the
/// wamid still borrowed from the line: the wamid is copied only for a
/// message's first status, and the status never becomes an [`Event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnownedStatus<'a> {
    /// The wamid, borrowed from the line when it had no escapes.
    pub id: std::borrow::Cow<'a, str>,
    /// The status.
    pub status: DeliveryStatus,
    /// Meta's error code on `failed`.
    pub error: Option<i64>,
    /// What the status said besides (recipient, pricing, conversation, the
    /// Messaging account); never a business.
    pub detail: Option<Box<StatusDetail>>,
    /// When.
    pub at: Timestamp,
    /// Where it was read.
    pub origin: Origin,
}

impl UnownedStatus<'_> {
    /// `event` in this form if it is a status naming no business, else the
    /// event back.
    pub fn from_event(event: Event) -> Result<UnownedStatus<'static>, Event> {
        match event.kind {
            EventKind::Status {
                id,
                status,
                error,
                detail,
            } if detail.as_ref().is_none_or(|d| d.business.is_none()) => Ok(UnownedStatus {
                id: std::borrow::Cow::Owned(id.into_string()),
                status,
                error,
                detail,
                at: event.at,
                origin: event.origin,
            }),
            kind => Err(Event { kind, ..event }),
        }
    }

    /// As an event (the wamid copied if it was borrowed).
    pub fn into_event(self) -> Event {
        Event {
            at: self.at,
            origin: self.origin,
            kind: EventKind::Status {
                id: self.id.into(),
                status: self.status,
                error: self.error,
                detail: self.detail,
            },
        }
    }

    /// [`implausible_instant`] of the status.
    pub fn implausible(&self, now: Timestamp) -> Option<crate::charge::Warning> {
        implausible(self.at, self.origin, now, || {
            status_of(self.status, &self.id)
        })
    }
}

/// Meta Business Agent tokens (interfaces §1 extension, `agent_usage`):
/// Meta bills them per token since 2026-08-01, never free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentUsage {
    /// Business phone number id.
    pub business: Box<str>,
    /// The user the agent answered.
    pub user: UserId,
    /// An id of the usage (the wamid of the agent's message, or the
    /// reporter's own): copies with one id are one usage.
    pub id: Box<str>,
    /// Tokens used.
    pub tokens: u64,
    /// The Messaging account billed, when named.
    pub messaging_account: Option<Box<str>>,
}

/// Who placed a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallDirection {
    /// The business called the user: billed when it connected.
    BusinessInitiated,
    /// The user called the business: free, and opens the customer service
    /// window whether or not it was answered.
    UserInitiated,
}

impl CallDirection {
    /// Reads `business_initiated` / `BUSINESS_INITIATED` and the user twin.
    pub fn parse(text: &str) -> Option<CallDirection> {
        if text.eq_ignore_ascii_case("business_initiated") {
            Some(CallDirection::BusinessInitiated)
        } else if text.eq_ignore_ascii_case("user_initiated") {
            Some(CallDirection::UserInitiated)
        } else {
            None
        }
    }

    /// The canonical spelling (interfaces §1).
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::BusinessInitiated => "business_initiated",
            CallDirection::UserInitiated => "user_initiated",
        }
    }
}

/// How a call ended, as the log or Meta's `terminate` webhook says.
///
/// Meta's own value does not decide billing: "even unanswered calls are
/// considered completed", and a `FAILED` call can carry a duration. What
/// bills is the duration (docs/rules.md §14). Values this version does not
/// know are kept as written (decision D16).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallStatus {
    /// `completed` (Meta: `COMPLETED`).
    Completed,
    /// `failed` (Meta: `FAILED`, with `errors`).
    Failed,
    /// `rejected` (Meta's call status webhook `REJECTED`).
    Rejected,
    /// `missed`: never connected.
    Missed,
    /// A value this version does not know, lower-cased.
    Other(Box<str>),
}

impl CallStatus {
    /// Reads a status in any case; unknown values are kept.
    pub fn parse(text: &str) -> CallStatus {
        match text.trim().to_ascii_lowercase().as_str() {
            "completed" => CallStatus::Completed,
            "failed" => CallStatus::Failed,
            "rejected" => CallStatus::Rejected,
            "missed" => CallStatus::Missed,
            other => CallStatus::Other(other.into()),
        }
    }

    /// The default when a log gives none: `completed` when the call has a
    /// duration, else `missed` (interfaces §1).
    pub fn default_for(duration_seconds: u32) -> CallStatus {
        if duration_seconds > 0 {
            CallStatus::Completed
        } else {
            CallStatus::Missed
        }
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        match self {
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Rejected => "rejected",
            CallStatus::Missed => "missed",
            CallStatus::Other(text) => text,
        }
    }
}

/// One call (interfaces §1, `call`): Meta's `terminate` webhook, or a
/// canonical `call` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Business phone number id.
    pub business: Box<str>,
    /// The user (the callee of a business-initiated call, the caller of a
    /// user-initiated one).
    pub user: UserId,
    /// The call id (`wacid…`).
    pub id: Box<str>,
    /// Who placed it.
    pub direction: CallDirection,
    /// Seconds it was connected; 0 = never connected.
    pub duration_seconds: u32,
    /// How it ended.
    pub status: CallStatus,
    /// Meta's first error code on the call (138021 media timeout, 138023
    /// "could not determine if the call was connected"…).
    pub error: Option<i64>,
    /// The Messaging account billed (the `entry[].id` of its webhook).
    pub messaging_account: Option<Box<str>>,
}

impl Call {
    /// Whether the call opens or refreshes the customer service window at
    /// its start: every user-initiated call (answered or not) and a
    /// business-initiated call the user accepted (docs/rules.md §14,
    /// Meta's calling pricing page).
    pub fn opens_window(&self) -> bool {
        match self.direction {
            CallDirection::UserInitiated => true,
            CallDirection::BusinessInitiated => self.duration_seconds > 0,
        }
    }
}

impl EventKind {
    /// The business phone number the event names: always for inbound and
    /// outbound events, for a status only when its webhook's metadata gave
    /// it (a plain canonical status line names only the wamid).
    pub fn business(&self) -> Option<&str> {
        match self {
            EventKind::Inbound { business, .. } | EventKind::Outbound { business, .. } => {
                Some(business)
            }
            EventKind::Status { detail, .. } => {
                detail.as_deref().and_then(|d| d.business.as_deref())
            }
            EventKind::Call(call) => Some(&call.business),
            EventKind::AgentUsage(usage) => Some(&usage.business),
        }
    }

    /// The Messaging account the event names, if any.
    pub fn messaging_account(&self) -> Option<&str> {
        match self {
            EventKind::Inbound { .. } => None,
            EventKind::Outbound {
                messaging_account, ..
            } => messaging_account.as_deref(),
            EventKind::Status { detail, .. } => detail
                .as_deref()
                .and_then(|d| d.messaging_account.as_deref()),
            EventKind::Call(call) => call.messaging_account.as_deref(),
            EventKind::AgentUsage(usage) => usage.messaging_account.as_deref(),
        }
    }
}

/// What a Meta status webhook carries beyond the status itself.
///
/// The engine never prices *from* this (docs/rules.md: "the rules never
/// silently defer to it"); it is kept so that reconciliation can compare
/// Meta's verdict with the engine's, and so that a status for a message
/// with no `outbound` event can stand in for one (interfaces §4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusDetail {
    /// The business phone number id (`metadata.phone_number_id`).
    pub business: Option<Box<str>>,
    /// The recipient: `recipient_id` when it is a phone number, else
    /// `recipient_user_id` (BSUID).
    pub recipient: Option<UserId>,
    /// The `pricing` object.
    pub pricing: Option<MetaPricing>,
    /// The `conversation` object.
    pub conversation: Option<MetaConversation>,
    /// The Messaging account whose webhook carried it (`entry[].id`:
    /// Meta sends a message's statuses to the account that sent it), or
    /// that a canonical line names.
    pub messaging_account: Option<Box<str>>,
}

/// Meta's `pricing` object on a status: its verdict on the message.
///
/// Strings are kept as Meta wrote them (lower-cased, `-` read as `_`) so
/// that values this version does not know (`marketing_lite`,
/// `free_group_customer_service`, …) survive into reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaPricing {
    /// `billable`.
    pub billable: Option<bool>,
    /// `pricing_model`: `CBP` or `PMP` (upper-cased).
    pub pricing_model: Option<Box<str>>,
    /// `type` (PMP): `regular`, `free_customer_service`, `free_entry_point`, …
    pub pricing_type: Option<Box<str>>,
    /// `category`, e.g. `utility`, `authentication_international`.
    pub category: Box<str>,
    /// `cost`: what Meta charged a Marketing Messages API send with a max
    /// price (on `delivered` and `read`; its estimate, the invoice
    /// prevails).
    pub cost: Option<MetaCost>,
}

/// Meta's `pricing.cost` (`{"amount": 0.035, "currency": "USD"}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MetaCost {
    /// In the currency's base unit, read exactly as Meta wrote it.
    pub amount: rust_decimal::Decimal,
    /// ISO 4217.
    pub currency: crate::money::Currency,
}

impl MetaPricing {
    /// Lower-cases a category or type and reads `-` as `_`, so that
    /// `authentication-international` (the status reference's spelling)
    /// and `authentication_international` compare equal (docs/rules.md §8.3).
    pub fn normalise(text: &str) -> Box<str> {
        text.trim().to_ascii_lowercase().replace('-', "_").into()
    }

    /// The template (or free-form message) a message priced like this must
    /// have been, for a status with no `outbound` event: Meta's category is
    /// then the category (interfaces §4). `None` when the category does not
    /// say (an unknown value).
    ///
    /// - `marketing`, `marketing_lite`, `utility`, `authentication`,
    ///   `authentication_international` are templates of that category;
    /// - `service`, `user_initiated` (CBP v1) and `referral_conversion`
    ///   are free-form messages: they are sent inside a window the user
    ///   opened, where a free-form message is allowed and priced the same;
    /// - `business_initiated` (CBP v1) is a template; CBP v1 priced every
    ///   template category alike, so utility is used.
    pub fn implied_message(&self) -> Option<Option<TemplateCategory>> {
        if let Some(category) = self.template_category() {
            return Some(Some(category));
        }
        Some(match &*self.category {
            "business_initiated" => Some(TemplateCategory::Utility),
            "service" | "user_initiated" | "referral_conversion" => None,
            _ => return None,
        })
    }

    /// The template category Meta's pricing category names, when it names
    /// one (authentication-international is an authentication template,
    /// MM Lite marketing a marketing one).
    pub fn template_category(&self) -> Option<TemplateCategory> {
        match &*self.category {
            "marketing" | "marketing_lite" => Some(TemplateCategory::Marketing),
            "utility" => Some(TemplateCategory::Utility),
            "authentication" | "authentication_international" => {
                Some(TemplateCategory::Authentication)
            }
            _ => None,
        }
    }
}

/// Meta's `conversation` object on a status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaConversation {
    /// `id`: per conversation under CBP.
    pub id: Option<Box<str>>,
    /// `origin.type`: the conversation's category.
    pub origin_type: Option<Box<str>>,
    /// `expiration_timestamp` (only on `sent`).
    pub expires_at: Option<Timestamp>,
}

impl EventKind {
    /// Ordering rank for events at the same instant: inbound before outbound
    /// before status (interfaces §1); a call opens a window like an inbound.
    pub fn rank(&self) -> u8 {
        match self {
            EventKind::Inbound { .. } | EventKind::Call(_) => 0,
            EventKind::Outbound { .. } => 1,
            EventKind::Status { .. } | EventKind::AgentUsage(_) => 2,
        }
    }
}

/// The earliest instant an event can plausibly carry: WhatsApp's Business
/// API did not exist before 2014.
pub const PLAUSIBLE_FROM: Timestamp = Timestamp::constant(1_388_534_400, 0); // 2014-01-01T00:00:00Z

/// Events whose instant is not plausible — before 2014, or more than a day
/// after `now` (when they were read or received) — one warning each,
/// naming the event. They are kept and priced as dated: the warning says
/// the date is probably wrong (a clock, a unit mistake such as
/// milliseconds read as seconds), never silently.
pub fn implausible_instants(events: &[Event], now: Timestamp) -> Vec<crate::charge::Warning> {
    events
        .iter()
        .filter_map(|event| implausible_instant(event, now))
        .collect()
}

/// [`implausible_instants`] of one event: `None` when its instant is
/// plausible.
pub fn implausible_instant(event: &Event, now: Timestamp) -> Option<crate::charge::Warning> {
    implausible(event.at, event.origin, now, || match &event.kind {
        EventKind::Inbound { id, .. } => {
            format!("inbound message {}", id.as_deref().unwrap_or("(no id)"))
        }
        EventKind::Outbound { id, .. } => format!("outbound message {id}"),
        EventKind::Status { id, status, .. } => status_of(*status, id),
        EventKind::Call(call) => format!("call {}", call.id),
        EventKind::AgentUsage(usage) => format!("agent usage {}", usage.id),
    })
}

/// A status, as a warning names it.
fn status_of(status: DeliveryStatus, id: &str) -> String {
    format!("`{}` status of message {id}", status.as_str())
}

/// The warning for an event of instant `at` read at `origin`, which `what`
/// names, if `at` is not plausible.
fn implausible(
    at: Timestamp,
    origin: Origin,
    now: Timestamp,
    what: impl FnOnce() -> String,
) -> Option<crate::charge::Warning> {
    let latest = now
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap_or(Timestamp::MAX);
    if at >= PLAUSIBLE_FROM && at <= latest {
        return None;
    }
    let what = what();
    let why = if at < PLAUSIBLE_FROM {
        "before 2014".to_string()
    } else {
        format!("more than a day after it was priced ({now})")
    };
    Some(crate::charge::Warning {
        code: "implausible_timestamp",
        message: format!(
            "{what} is dated {at}, {why}: kept and priced as dated, but the timestamp is probably wrong"
        ),
        origin: Some(origin),
    })
}

/// Adds to `events` the outbounds Meta's statuses stand in for
/// ([`outbounds_from_pricing`]) and returns the (business, wamid) of each,
/// so that what rests on an inferred outbound can be said so.
pub fn infer_outbounds(events: &mut Vec<Event>) -> Vec<(Box<str>, Box<str>)> {
    let inferred = outbounds_from_pricing(events);
    let keys = inferred
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Outbound { business, id, .. } => {
                Some((Box::from(&**business), Box::from(&**id)))
            }
            _ => None,
        })
        .collect();
    events.extend(inferred);
    keys
}

/// Outbound events that Meta's statuses stand in for.
///
/// A log made only of Meta webhooks has statuses but no `outbound` events
/// (Meta does not echo the send). A status whose `pricing` names a category
/// says what was sent, to whom and from which number, so it rates the
/// message as if the outbound had been logged with Meta's category
/// (interfaces §4). One outbound is returned per (business, wamid) that has
/// no outbound event, at the earliest status of that wamid (the closest instant to the
/// send that the log has), with that status's origin. Statuses without a
/// business, a recipient or a known category are left alone; the engine
/// reports them as statuses for unknown messages.
pub fn outbounds_from_pricing<E: std::borrow::Borrow<Event>>(events: &[E]) -> Vec<Event> {
    // foldhash: keys come from the events, and only membership is asked
    // (SipHash was a fifth of the guard's read-back step, PERFORMANCE.md).
    type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
    // Canonical logs have no pricing at all: skip the id set (millions of
    // outbounds) in the common case.
    let priced = |event: &Event| matches!(&event.kind, EventKind::Status { detail: Some(d), .. } if d.pricing.is_some());
    if !events.iter().any(|event| priced(event.borrow())) {
        return Vec::new();
    }
    // By business and wamid, as the engine matches statuses to sends: a
    // business's status never stands in for another business's send.
    let logged: HashSet<(&str, &str)> = events
        .iter()
        .filter_map(|event| match &event.borrow().kind {
            EventKind::Outbound { business, id, .. } => Some((&**business, &**id)),
            _ => None,
        })
        .collect();
    // Hashed while the statuses are read (a BTreeMap's string comparisons
    // were most of this in a reconciliation), then sorted by key: the
    // result must not depend on hash order.
    let mut inferred: std::collections::HashMap<
        (&str, &str),
        StandIn<'_>,
        foldhash::fast::RandomState,
    > = std::collections::HashMap::default();
    for event in events {
        let event = event.borrow();
        let EventKind::Status {
            id,
            detail: Some(detail),
            ..
        } = &event.kind
        else {
            continue;
        };
        let (Some(business), Some(_)) = (detail.business.as_deref(), &detail.recipient) else {
            continue;
        };
        if logged.contains(&(business, &**id)) {
            continue;
        }
        let Some(message) = detail
            .pricing
            .as_ref()
            .and_then(MetaPricing::implied_message)
        else {
            continue;
        };
        let candidate = (event.at, event.origin, &**detail, message);
        inferred
            .entry((business, &**id))
            .and_modify(|seen| {
                if (candidate.0, candidate.1) < (seen.0, seen.1) {
                    *seen = candidate;
                }
            })
            .or_insert(candidate);
    }
    let mut inferred: Vec<_> = inferred.into_iter().collect();
    inferred.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // One template per category, shared by the stand-ins (a copy is made
    // by whoever changes one: `Arc::make_mut`).
    let mut templates: Vec<Arc<Template>> = Vec::new();
    let mut template = |category: TemplateCategory| {
        if let Some(shared) = templates.iter().find(|t| t.category == category) {
            return shared.clone();
        }
        let new = Arc::new(Template {
            name: "".into(),
            category,
        });
        templates.push(new.clone());
        new
    };
    inferred
        .into_iter()
        .filter_map(|((_, id), (at, origin, detail, message))| {
            Some(Event {
                at,
                origin,
                kind: EventKind::Outbound {
                    business: detail.business.as_deref()?.into(),
                    user: detail.recipient.clone()?,
                    id: id.into(),
                    template: message.map(&mut template),
                    messaging_account: None,
                },
            })
        })
        .collect()
}

/// `Some(category)` for a template, `None` for a free-form message.
type TemplateCategoryChoice = Option<TemplateCategory>;

/// The status a stand-in outbound is made from: its instant and origin,
/// its detail, and the message its pricing implies.
type StandIn<'e> = (Timestamp, Origin, &'e StatusDetail, TemplateCategoryChoice);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::UserId;

    /// A phone number read character by character, as every number was
    /// before digits-only ones were taken as they are.
    fn phone_by_characters(text: &str) -> Option<String> {
        let body = text.trim();
        let body = body.strip_prefix('+').unwrap_or(body);
        let mut digits = String::new();
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => return None,
            }
        }
        (7..=15).contains(&digits.len()).then_some(digits)
    }

    proptest! {
        #[test]
        fn a_phone_number_reads_the_same_on_either_path(
            text in prop_oneof!["[+]?[0-9]{0,20}", "[+]?[0-9 ()-]{0,20}", " [+]?[0-9]{5,17} "]
        ) {
            let read = match UserId::parse(&text) {
                Ok(UserId::Phone(digits)) => Some(digits.to_string()),
                Ok(UserId::Bsuid(..)) | Err(_) => None,
            };
            prop_assert_eq!(read, phone_by_characters(&text));
        }
    }
}
