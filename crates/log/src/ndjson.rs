//! The event log: one JSON object per line — canonical events, canonical
//! notices, or raw Meta webhook POST bodies, mixed freely (interfaces §1, §4).
//!
//! ```
//! use wameter_core::event::{EventKind, Origin};
//! use wameter_log::{Parsed, parse_line};
//! let line = r#"{"type":"inbound","at":"2025-07-01T07:00:00-03:00","business":"1065","user":"+5511999990000"}"#;
//! let Parsed::Event(event) = parse_line(line, Origin { source: 0, line: 1 }).unwrap() else { panic!() };
//! assert_eq!(event.at.to_string(), "2025-07-01T10:00:00Z");
//! assert!(matches!(event.kind, EventKind::Inbound { .. }));
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, Visitor};
use serde_json::value::RawValue;
use wameter_core::category::TemplateCategory;
use wameter_core::event::{
    AgentUsage, Call, CallDirection, CallStatus, DeliveryStatus, EntryPoint, Event, EventKind,
    InboundKind, Origin, StatusDetail, Template, UnownedStatus, UserId,
};
use wameter_core::notice::{Notice, NoticeKind};
use wameter_meta::webhook::{self, Ignored, WebhookItems};

mod flat;

/// A line that is not a valid canonical event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// Where: source index and line.
    pub origin: Origin,
    /// The field at fault, when one is: a name (`at`) or, inside a Meta
    /// webhook, a JSON path (`entry[0].changes[0].value.statuses[1].timestamp`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "line {}: field `{field}`: {}",
                self.origin.line, self.message
            ),
            None => write!(f, "line {}: {}", self.origin.line, self.message),
        }
    }
}

/// `at`: an RFC 3339 string with offset, or integer UNIX seconds.
struct At(Timestamp);

struct AtVisitor;

impl Visitor<'_> for AtVisitor {
    type Value = At;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp with offset or integer UNIX seconds")
    }
    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<At, E> {
        Timestamp::from_second(seconds)
            .map(At)
            .map_err(|e| E::custom(format!("{seconds} is out of range: {e}")))
    }
    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<At, E> {
        let seconds = i64::try_from(seconds).map_err(|_| E::custom("UNIX seconds out of range"))?;
        self.visit_i64(seconds)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<At, E> {
        if let Some(at) = utc_instant(text) {
            return Ok(At(at));
        }
        text.parse::<Timestamp>().map(At).map_err(|e| {
            E::custom(format!(
                "`{text}` is not an RFC 3339 timestamp with offset ({e})"
            ))
        })
    }
}

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<At, D::Error> {
        deserializer.deserialize_any(AtVisitor)
    }
}

impl At {
    /// `at` as the line wrote it. A string without escapes (every line
    /// `wameter` writes) and a non-negative integer are read in place;
    /// anything else as a JSON value, with the same messages.
    fn read(Raw(text): Raw<'_>) -> Result<At, serde_json::Error> {
        if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
            && !inner.contains('\\')
        {
            return AtVisitor.visit_str(inner);
        }
        // UNIX seconds as serde_json reads a non-negative integer that fits
        // a `u64` (`text` is valid JSON: no sign, no leading zero). Anything
        // else — negative (serde_json reads `-0` as a float), too large —
        // goes through a JSON value, for its exact message.
        if let Some(seconds) = unsigned(text) {
            return AtVisitor.visit_u64(seconds);
        }
        At::deserialize(&serde_json::from_str::<serde_json::Value>(text)?)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the spelling of an instant `wameter` writes,
/// read without jiff's general parser: that took 450 instructions a line,
/// 7 % of reading a log. `None` for any other spelling (an offset,
/// a fraction, a lower-case `t` or `z`, a leap second) and for a date or
/// time that does not exist; jiff then reads the text, and says what is
/// wrong with it.
fn utc_instant(text: &str) -> Option<Timestamp> {
    let bytes: [u8; 20] = text.as_bytes().try_into().ok()?;
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
        b'Z',
    ] = bytes
    else {
        return None;
    };
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0i16, |n, digit| {
            digit
                .is_ascii_digit()
                .then(|| n * 10 + i16::from(digit - b'0'))
        })
    };
    let two = |tens, ones| number(&[tens, ones]).and_then(|n| i8::try_from(n).ok());
    let time = jiff::civil::DateTime::new(
        number(&[y0, y1, y2, y3])?,
        two(m0, m1)?,
        two(d0, d1)?,
        two(h0, h1)?,
        two(i0, i1)?,
        two(s0, s1)?,
        0,
    )
    .ok()?;
    jiff::tz::Offset::UTC.to_timestamp(time).ok()
}

/// A non-negative integer written in digits alone, if it fits a `u64`.
/// Up to 18 digits (UNIX seconds in jiff's range have 12) are summed
/// without `str::parse`'s overflow checks, since they cannot overflow;
/// longer ones are parsed.
fn unsigned(text: &str) -> Option<u64> {
    if text.len() > 18 {
        return text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())
            .flatten();
    }
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u64, |n, digit| {
        digit
            .is_ascii_digit()
            .then(|| n * 10 + u64::from(digit - b'0'))
    })
}

/// A field's value as the line wrote it (valid JSON), read only when the
/// line's kind needs it: what `&RawValue` gives, as a plain `&str` that
/// [`flat`] can fill too.
#[derive(Clone, Copy, Debug, Default)]
struct Raw<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Raw<'a>, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| Raw(raw.get()))
    }
}

/// `text` without leading and trailing white space ([`str::trim`]), at
/// once when it starts and ends with a visible ASCII character, as ids do:
/// `trim` decodes a character at each end to find that out.
fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// A field read as a JSON value only when present: the fields few lines
/// have are kept as their raw text while the line is read, which keeps
/// [`RawEvent`] small (moving it was a tenth of parsing).
fn value_of(raw: Option<Raw<'_>>) -> Result<Option<serde_json::Value>, serde_json::Error> {
    raw.map(|Raw(text)| serde_json::from_str(text)).transpose()
}

/// A string field, borrowed from the line when it has no escapes. serde
/// borrows a `Cow<str>` field only when it is not inside an `Option`: read
/// as a plain `Option<Cow<str>>`, every string of every line was copied
/// (the ids, the business, the user, the type and status names).
fn text<'de: 'a, 'a, D: de::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(text)))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text.to_owned())))
        }
        fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text)))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: de::Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            inner.deserialize_str(Text)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_option(Text)
}

#[derive(Default, Deserialize)]
struct RawTemplate<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    category: Option<Cow<'a, str>>,
}

/// Every field any event kind may carry; which are required depends on
/// `type`. Unknown fields are ignored (interfaces §1).
#[derive(Default, Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "text")]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    at: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "text")]
    business: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    user: Option<Cow<'a, str>>,
    /// The country of a business-scoped `user` that does not carry one
    /// (`user.9373…`), as Meta gave it beside the id.
    #[serde(borrow, default, deserialize_with = "text")]
    user_country: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    entry_point: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    template: Option<RawTemplate<'a>>,
    #[serde(borrow, default, deserialize_with = "text")]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "text")]
    direction: Option<Cow<'a, str>>,
    #[serde(borrow)]
    duration: Option<Raw<'a>>,
    #[serde(borrow)]
    tokens: Option<Raw<'a>>,
    /// The Messaging account billed (Meta's name); wins over
    /// `paid_messaging_account_id`, its deprecated alias, as Meta's
    /// Messages API reads them.
    #[serde(borrow, default, deserialize_with = "text")]
    messaging_account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    paid_messaging_account_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    object: Option<Raw<'a>>,
    #[serde(borrow)]
    pricing: Option<Raw<'a>>,
    #[serde(borrow)]
    conversation: Option<Raw<'a>>,
}

/// What one line holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A blank line or a `#` comment.
    Nothing,
    /// A canonical event.
    Event(Event),
    /// A canonical notice line (as `wameter events` prints them). Boxed,
    /// like the webhook items, so the common case (an event) stays small.
    Notice(Box<Notice>),
    /// A Meta webhook POST body: its events, notices, ignored items, and
    /// the items it could not read (which [`parse_chunk`] turns into errors).
    Webhook(Box<WebhookItems>),
}

/// Parses one line: a canonical event, a canonical notice, or a raw Meta
/// webhook POST body (interfaces §4, last paragraph).
pub fn parse_line(line: &str, origin: Origin) -> Result<Parsed, LineError> {
    parse_line_in(line, origin, &mut Shared::default(), true).map(Line::parsed)
}

/// [`parse_line`] with every line read by serde_json, none by the reader
/// of the common shape: what that reader is held to (tests, fuzzing).
#[doc(hidden)]
pub fn parse_line_by_serde(line: &str, origin: Origin) -> Result<Parsed, LineError> {
    parse_line_in(line, origin, &mut Shared::default(), false).map(Line::parsed)
}

/// What one line holds, a status naming no business kept apart (borrowing
/// its wamid from the line) for the readers that fold them as they read.
enum Line<'a> {
    Parsed(Parsed),
    Unowned(UnownedStatus<'a>),
}

impl Line<'_> {
    fn parsed(self) -> Parsed {
        match self {
            Line::Parsed(parsed) => parsed,
            Line::Unowned(status) => Parsed::Event(status.into_event()),
        }
    }
}

/// What a run of lines names again and again, each kept once and handed
/// out again: templates (a log names a few in millions of sends, and
/// every delivery's charge keeps its send's; a copy per send made a
/// replay's charges pin the pages of the events they were read from),
/// business numbers (a few, in every message) and users (a user's
/// messages come close together: in a 2 M-event log a run of 20,000 lines
/// names each of its users 2.8 times on average).
#[derive(Default)]
struct Shared {
    templates: Vec<Arc<Template>>,
    businesses: HashSet<Arc<str>, foldhash::fast::RandomState>,
    users: HashSet<Arc<str>, foldhash::fast::RandomState>,
}

impl Shared {
    /// Past this many, a template is not looked for or kept (a lookup is a
    /// scan, and a log with this many is not the common case).
    const TEMPLATES_KEPT: usize = 64;

    /// Past this many, a business number is not kept (a log names few).
    const BUSINESSES_KEPT: usize = 64;

    /// Past this many, a user is not kept: a run's table stays small.
    const USERS_KEPT: usize = 1 << 16;

    /// A business phone number id, shared with the lines before that
    /// named it.
    fn business(&mut self, id: &str) -> Arc<str> {
        Self::text(&mut self.businesses, Self::BUSINESSES_KEPT, id)
    }

    fn template(&mut self, name: &str, category: TemplateCategory) -> Arc<Template> {
        if let Some(kept) = self
            .templates
            .iter()
            .find(|t| t.category == category && &*t.name == name)
        {
            return kept.clone();
        }
        let template = Arc::new(Template {
            name: name.into(),
            category,
        });
        if self.templates.len() < Self::TEMPLATES_KEPT {
            self.templates.push(template.clone());
        }
        template
    }

    /// A user id's text, shared with the lines before that named it.
    fn user(&mut self, id: &str) -> Arc<str> {
        Self::text(&mut self.users, Self::USERS_KEPT, id)
    }

    /// `text`, from `kept` if it is there, else kept there while `kept`
    /// holds fewer than `room`.
    fn text(
        kept: &mut HashSet<Arc<str>, foldhash::fast::RandomState>,
        room: usize,
        text: &str,
    ) -> Arc<str> {
        if let Some(shared) = kept.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        if kept.len() < room {
            kept.insert(shared.clone());
        }
        shared
    }
}

/// [`parse_line`], sharing the templates, business numbers and users of
/// the lines read before.
fn parse_line_in<'a>(
    line: &'a str,
    origin: Origin,
    shared: &mut Shared,
    flat: bool,
) -> Result<Line<'a>, LineError> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Line::Parsed(Parsed::Nothing));
    }
    let fail = |field: Option<&str>, message: String| LineError {
        origin,
        field: field.map(String::from),
        message,
    };
    // The common shape read directly; anything else by serde_json.
    let mut raw = RawEvent::default();
    if !flat || flat::read(trimmed, &mut raw).is_none() {
        raw = serde_json::from_str::<RawEvent>(trimmed).map_err(|e| {
            let message = if e.is_data() {
                format!("{e}")
            } else {
                format!("not a JSON object: {e}")
            };
            fail(None, message)
        })?;
    }
    if raw.object.is_some() {
        // Parsed a second time as a tree: envelopes are rare next to
        // canonical lines, and the tree gives every item its JSON path.
        let body: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| fail(None, e.to_string()))?;
        return webhook::parse_envelope(&body, origin)
            .map(|items| Line::Parsed(Parsed::Webhook(Box::new(items))))
            .map_err(|p| fail(Some(&p.path), p.message));
    }
    let event_type = raw.event_type.ok_or_else(|| {
        fail(
            Some("type"),
            "missing (inbound, outbound, status, call, agent_usage or a notice type)".into(),
        )
    })?;
    if NoticeKind::TYPES.contains(&&*event_type) {
        let mut notice: Notice = serde_json::from_str(trimmed)
            .map_err(|e| fail(None, format!("{event_type} notice: {e}")))?;
        notice.origin = origin;
        return Ok(Line::Parsed(Parsed::Notice(Box::new(notice))));
    }
    let at = match raw.at {
        None => return Err(fail(Some("at"), "missing".into())),
        Some(raw) => {
            At::read(raw)
                .map_err(|e| fail(Some("at"), e.to_string()))?
                .0
        }
    };
    // The fields few lines have, as JSON values.
    let value = |raw: Option<Raw<'_>>, field: &str| {
        value_of(raw).map_err(|e| fail(Some(field), e.to_string()))
    };
    // Trimmed, and still borrowed from the line if it was.
    let required_text = |value: Option<Cow<'a, str>>, field: &str| match value {
        Some(text) if !trim(&text).is_empty() => Ok(match text {
            Cow::Borrowed(text) => Cow::Borrowed(trim(text)),
            Cow::Owned(text) => Cow::Owned(trim(&text).to_owned()),
        }),
        Some(_) => Err(fail(Some(field), "empty".into())),
        None => Err(fail(
            Some(field),
            format!("required for {event_type} events"),
        )),
    };
    let required = |value: Option<Cow<'a, str>>, field: &str| {
        required_text(value, field).map(Box::<str>::from)
    };
    // Meta's precedence: `messaging_account_id` wins, the deprecated
    // `paid_messaging_account_id` is read only without it. An id given
    // empty is no id.
    let messaging_account: Option<Box<str>> = match raw
        .messaging_account_id
        .as_deref()
        .or(raw.paid_messaging_account_id.as_deref())
        .map(str::trim)
    {
        Some("") => {
            return Err(fail(
                Some(if raw.messaging_account_id.is_some() {
                    "messaging_account_id"
                } else {
                    "paid_messaging_account_id"
                }),
                "empty".into(),
            ));
        }
        other => other.map(Box::from),
    };
    let country = raw.user_country.clone();
    let with_country = |user: UserId| match &country {
        Some(code) => user.with_country(code),
        None => user,
    };
    let user = |value: Option<Cow<'a, str>>, shared: &mut Shared| -> Result<UserId, LineError> {
        let text = required_text(value, "user")?;
        UserId::parse_shared(&text, &mut |id| shared.user(id))
            .map(with_country)
            .map_err(|e| fail(Some("user"), e))
    };
    let kind = match &*event_type {
        "inbound" => EventKind::Inbound {
            business: required_text(raw.business, "business").map(|id| shared.business(&id))?,
            user: user(raw.user, shared)?,
            id: raw.id.map(|id| Box::from(trim(&id))),
            entry_point: match raw.entry_point.as_deref() {
                None => None,
                Some(text) => Some(EntryPoint::parse(text).ok_or_else(|| {
                    fail(
                        Some("entry_point"),
                        format!("`{text}` is not one of: ad, page_cta"),
                    )
                })?),
            },
            kind: match raw.kind.as_deref() {
                None | Some("message") => InboundKind::Message,
                Some("call") => InboundKind::Call,
                Some(other) => {
                    return Err(fail(
                        Some("kind"),
                        format!("`{other}` is not one of: message, call"),
                    ));
                }
            },
        },
        "outbound" => EventKind::Outbound {
            business: required_text(raw.business, "business").map(|id| shared.business(&id))?,
            user: user(raw.user, shared)?,
            id: required_text(raw.id, "id").map(|id| Arc::<str>::from(&*id))?,
            template: match raw.template {
                None => None,
                Some(template) => {
                    let name = template.name.as_deref().map_or("", str::trim);
                    let category_text = template
                        .category
                        .ok_or_else(|| fail(Some("template.category"), "missing".into()))?;
                    let category = TemplateCategory::parse(&category_text).ok_or_else(|| {
                        fail(
                            Some("template.category"),
                            format!("`{category_text}` is not one of: marketing, utility, authentication"),
                        )
                    })?;
                    Some(shared.template(name, category))
                }
            },
            messaging_account,
        },
        "status" => {
            let text = raw
                .status
                .ok_or_else(|| fail(Some("status"), "required for status events".into()))?;
            let status = DeliveryStatus::parse(&text).ok_or_else(|| {
                fail(
                    Some("status"),
                    format!("`{text}` is not one of: sent, delivered, read, failed"),
                )
            })?;
            let error = match value(raw.error, "error")? {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::Number(n)) if n.is_i64() => n.as_i64(),
                Some(other) => {
                    return Err(fail(
                        Some("error"),
                        format!("`{other}` is not an integer error code"),
                    ));
                }
            };
            // Extensions: what a Meta status said besides the status
            // (`wameter events` prints them, so its output reads back).
            // Most statuses say nothing more: building an empty detail to
            // compare with the default and drop was a tenth of reading one.
            let plain = raw.business.is_none()
                && messaging_account.is_none()
                && raw.user.is_none()
                && raw.pricing.is_none()
                && raw.conversation.is_none();
            let (owned, detail) = if plain {
                (false, None)
            } else {
                let mut detail = StatusDetail {
                    business: raw.business.map(|b| Box::from(trim(&b))),
                    messaging_account,
                    ..StatusDetail::default()
                };
                if let Some(text) = raw.user {
                    detail.recipient = Some(
                        UserId::parse(&text)
                            .map(with_country)
                            .map_err(|e| fail(Some("user"), e))?,
                    );
                }
                if let Some(value) = value(raw.pricing, "pricing")?.filter(|v| !v.is_null()) {
                    detail.pricing = Some(
                        webhook::parse_pricing(&value)
                            .map_err(|(f, m)| fail(Some(&webhook::json_path("pricing", &f)), m))?,
                    );
                }
                if let Some(value) =
                    value(raw.conversation, "conversation")?.filter(|v| !v.is_null())
                {
                    detail.conversation =
                        Some(webhook::parse_conversation(&value).map_err(|(f, m)| {
                            fail(Some(&webhook::json_path("conversation", &f)), m)
                        })?);
                }
                let owned = detail.business.is_some();
                (
                    owned,
                    (detail != StatusDetail::default()).then(|| Box::new(detail)),
                )
            };
            let id = required_text(raw.id, "id")?;
            if !owned {
                return Ok(Line::Unowned(UnownedStatus {
                    id,
                    status,
                    error,
                    detail,
                    at,
                    origin,
                }));
            }
            EventKind::Status {
                id: id.into(),
                status,
                error,
                detail,
            }
        }
        "call" => {
            let direction_text = raw
                .direction
                .ok_or_else(|| fail(Some("direction"), "required for call events".into()))?;
            let direction = CallDirection::parse(direction_text.trim()).ok_or_else(|| {
                fail(
                    Some("direction"),
                    format!("`{direction_text}` is not one of: business_initiated, user_initiated"),
                )
            })?;
            let duration_seconds = match value(raw.duration, "duration")? {
                None | Some(serde_json::Value::Null) => 0,
                Some(serde_json::Value::Number(n))
                    if n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)) =>
                {
                    n.as_u64().unwrap_or(0) as u32
                }
                Some(other) => {
                    return Err(fail(
                        Some("duration"),
                        format!("`{other}` is not a whole number of seconds"),
                    ));
                }
            };
            let error = match value(raw.error, "error")? {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::Number(n)) if n.is_i64() => n.as_i64(),
                Some(other) => {
                    return Err(fail(
                        Some("error"),
                        format!("`{other}` is not an integer error code"),
                    ));
                }
            };
            // Unknown statuses are kept as written (decision D16).
            let status = raw.status.map_or_else(
                || CallStatus::default_for(duration_seconds),
                |text| CallStatus::parse(&text),
            );
            EventKind::Call(Box::new(Call {
                business: required(raw.business, "business")?,
                user: user(raw.user, shared)?,
                id: required(raw.id, "id")?,
                direction,
                duration_seconds,
                status,
                error,
                messaging_account,
            }))
        }
        "agent_usage" => {
            let tokens = match value(raw.tokens, "tokens")? {
                Some(serde_json::Value::Number(n)) if n.is_u64() => n.as_u64().unwrap_or(0),
                Some(other) => {
                    return Err(fail(
                        Some("tokens"),
                        format!("`{other}` is not a whole number of tokens"),
                    ));
                }
                None => {
                    return Err(fail(
                        Some("tokens"),
                        "required for agent_usage events".into(),
                    ));
                }
            };
            EventKind::AgentUsage(Box::new(AgentUsage {
                business: required(raw.business, "business")?,
                user: user(raw.user, shared)?,
                id: required(raw.id, "id")?,
                tokens,
                messaging_account,
            }))
        }
        other => {
            return Err(fail(
                Some("type"),
                format!("`{other}` is not one of: inbound, outbound, status, call, agent_usage"),
            ));
        }
    };
    Ok(Line::Parsed(Parsed::Event(Event { at, origin, kind })))
}

/// Events, notices and errors from a run of lines.
#[derive(Clone, Debug, Default)]
pub struct ParsedChunk {
    /// Valid events, in input order.
    pub events: Vec<Event>,
    /// Notices, in input order.
    pub notices: Vec<Notice>,
    /// Invalid lines (and unreadable items of webhook lines), in input order.
    pub errors: Vec<LineError>,
    /// Webhook items of kinds wameter does not use, with their line.
    pub ignored: Vec<(Origin, Ignored)>,
}

/// A log's bytes as text: a UTF-8 byte-order mark is dropped, and a line
/// that is not valid UTF-8 becomes an empty line and a [`LineError`] naming
/// it, so one bad byte costs only its line (the line numbers of the others
/// do not move).
///
/// ```
/// let (text, errors) = wameter_log::decode_log(b"\xEF\xBB\xBFfirst\nbad \xFF\nthird\n".to_vec(), 0);
/// assert_eq!(text, "first\n\nthird\n");
/// assert_eq!(errors[0].origin.line, 2);
/// ```
pub fn decode_log(mut bytes: Vec<u8>, source: u32) -> (String, Vec<LineError>) {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    decode_lines(bytes, source, 1)
}

/// [`decode_log`] for a piece of a log, whole lines, whose first line is
/// `first_line`: no byte-order mark is looked for.
pub fn decode_lines(bytes: Vec<u8>, source: u32, first_line: u32) -> (String, Vec<LineError>) {
    let bytes = match String::from_utf8(bytes) {
        Ok(text) => return (text, Vec::new()),
        Err(error) => error.into_bytes(),
    };
    let mut text = String::with_capacity(bytes.len());
    let mut errors = Vec::new();
    for (index, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        match std::str::from_utf8(line) {
            Ok(line) => text.push_str(line),
            Err(error) => {
                errors.push(LineError {
                    origin: Origin {
                        source,
                        line: first_line.saturating_add(index as u32),
                    },
                    field: None,
                    message: format!(
                        "not valid UTF-8 (from byte {} of the line)",
                        error.valid_up_to() + 1
                    ),
                });
                if line.ends_with(b"\n") {
                    text.push('\n');
                }
            }
        }
    }
    (text, errors)
}

/// Parses a run of lines of source `source` whose first line is
/// `first_line` (1-based). Callers split big files at line boundaries and
/// parse the pieces in parallel.
pub fn parse_chunk(text: &str, source: u32, first_line: u32) -> ParsedChunk {
    read_chunk(text, source, first_line, None).0
}

/// [`parse_chunk`], with the statuses that name no business given apart,
/// in input order, their wamids borrowed from `text`: what a replay folds
/// into one summary per message as it reads (`FoldedStatuses`), without
/// making each an [`Event`] and its wamid a copy.
pub fn parse_chunk_unowned(
    text: &str,
    source: u32,
    first_line: u32,
) -> (ParsedChunk, Vec<UnownedStatus<'_>>) {
    let (chunk, mut dealt) = parse_chunk_dealt(text, source, first_line, 1, |_| 0);
    (chunk, dealt.pop().unwrap_or_default())
}

/// [`parse_chunk_unowned`], the statuses naming no business dealt out as
/// they are read into `parts` lists by `part_of` their wamid (a part past
/// the last counts as the last), each in input order: a replay folds each
/// part on its own thread, and dealing them out in a pass of their own
/// moved every status once more (docs/PERFORMANCE.md).
pub fn parse_chunk_dealt<'t>(
    text: &'t str,
    source: u32,
    first_line: u32,
    parts: usize,
    part_of: impl Fn(&str) -> usize,
) -> (ParsedChunk, Vec<Vec<UnownedStatus<'t>>>) {
    read_chunk(text, source, first_line, Some((parts.max(1), &part_of)))
}

/// How [`read_chunk`] deals out the statuses naming no business: into how
/// many lists, and which a wamid's is.
type Dealer<'d> = (usize, &'d dyn Fn(&str) -> usize);

/// The lines of `text` read; the statuses naming no business among the
/// events, or given apart, dealt out by `apart`.
fn read_chunk<'t>(
    text: &'t str,
    source: u32,
    first_line: u32,
    apart: Option<Dealer<'_>>,
) -> (ParsedChunk, Vec<Vec<UnownedStatus<'t>>>) {
    let mut chunk = ParsedChunk::default();
    // One event per line, nearly always: sized once, the vectors are never
    // copied as they grow (growing them was a sixth of a replay's time).
    let lines_in = memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1;
    chunk.events.reserve(lines_in);
    let mut statuses: Vec<Vec<UnownedStatus>> = match apart {
        Some((1, _)) => vec![Vec::with_capacity(lines_in)],
        Some((parts, _)) => (0..parts)
            .map(|_| Vec::with_capacity(lines_in / parts + lines_in / 8))
            .collect(),
        None => Vec::new(),
    };
    let mut shared = Shared::default();
    for (offset, line) in lines(text).enumerate() {
        let origin = Origin {
            source,
            line: first_line.saturating_add(offset as u32),
        };
        match parse_line_in(line, origin, &mut shared, true) {
            Ok(Line::Unowned(status)) if apart.is_some() => {
                let part = match apart {
                    Some((parts, part_of)) if parts > 1 => part_of(&status.id).min(parts - 1),
                    _ => 0,
                };
                if let Some(list) = statuses.get_mut(part) {
                    list.push(status);
                }
            }
            Ok(Line::Unowned(status)) => chunk.events.push(status.into_event()),
            Ok(Line::Parsed(Parsed::Event(event))) => chunk.events.push(event),
            Ok(Line::Parsed(Parsed::Notice(notice))) => chunk.notices.push(*notice),
            Ok(Line::Parsed(Parsed::Webhook(items))) => {
                let items = *items;
                chunk.events.extend(items.events);
                chunk.notices.extend(items.notices);
                chunk
                    .errors
                    .extend(items.problems.into_iter().map(|p| LineError {
                        origin,
                        field: Some(p.path),
                        message: p.message,
                    }));
                chunk
                    .ignored
                    .extend(items.ignored.into_iter().map(|i| (origin, i)));
            }
            Ok(Line::Parsed(Parsed::Nothing)) => {}
            Err(error) => chunk.errors.push(error),
        }
    }
    (chunk, statuses)
}

/// The lines of `text`, as [`str::lines`] gives them (no `\n`, no `\r`
/// before it), found with `memchr`: `Lines` was 3 % of a replay's time.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        Some(match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(end) => {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                line.strip_suffix('\r').unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_shares_each_user_and_business_it_names() {
        let text = [
            r#"{"type":"inbound","at":1769267413,"business":"1","user":"+5511999990000"}"#,
            r#"{"type":"outbound","at":1769267414,"business":"1","user":"5511999990000","id":"w1"}"#,
            r#"{"type":"outbound","at":1769267415,"business":"2","user":"+55 11 99999-0000","id":"w2"}"#,
            r#"{"type":"outbound","at":1769267416,"business":"1","user":"+5511999990001","id":"w3"}"#,
            r#"{"type":"inbound","at":1769267417,"business":"1","user":"user.9373","user_country":"AR"}"#,
            r#"{"type":"inbound","at":1769267418,"business":"1","user":"user.9373"}"#,
        ]
        .join("\n");
        let chunk = parse_chunk(&text, 0, 1);
        let users: Vec<&UserId> = chunk
            .events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Inbound { user, .. } | EventKind::Outbound { user, .. } => Some(user),
                _ => None,
            })
            .collect();
        let text_of = |user: &UserId| match user {
            UserId::Phone(id) | UserId::Bsuid(id, _) => id.clone(),
        };
        assert_eq!(users.len(), 6);
        // One number however it is written, for any business: one copy.
        assert!(Arc::ptr_eq(&text_of(users[0]), &text_of(users[1])));
        assert!(Arc::ptr_eq(&text_of(users[0]), &text_of(users[2])));
        // Another number: another copy.
        assert!(!Arc::ptr_eq(&text_of(users[0]), &text_of(users[3])));
        assert_eq!(users[3].to_string(), "+5511999990001");
        // A business-scoped id shares its text, each event keeping its own
        // country.
        assert!(Arc::ptr_eq(&text_of(users[4]), &text_of(users[5])));
        assert_eq!(users[4].country(), Some("AR"));
        assert_eq!(users[5].country(), None);
        // Each business number: one copy.
        let businesses: Vec<&Arc<str>> = chunk
            .events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Inbound { business, .. } | EventKind::Outbound { business, .. } => {
                    Some(business)
                }
                _ => None,
            })
            .collect();
        assert!(Arc::ptr_eq(businesses[0], businesses[1]));
        assert!(Arc::ptr_eq(businesses[0], businesses[5]));
        assert_eq!(&**businesses[2], "2");
        assert!(!Arc::ptr_eq(businesses[0], businesses[2]));
        // What a chunk reads is what each line reads alone.
        for (event, line) in chunk.events.iter().zip(text.lines()) {
            assert!(
                matches!(parse_line(line, event.origin), Ok(Parsed::Event(alone)) if alone == *event)
            );
        }
    }

    #[test]
    fn a_chunk_shares_each_template_it_names() {
        let line = |id: u32, name: &str, category: &str| {
            format!(
                r#"{{"type":"outbound","at":1769267413,"business":"1","user":"+5511999990000","id":"w{id}","template":{{"name":"{name}","category":"{category}"}}}}"#
            )
        };
        let text = [
            line(1, "order", "utility"),
            line(2, " order ", "utility"),
            line(3, "order", "marketing"),
            line(4, "promo", "marketing"),
        ]
        .join("\n");
        let chunk = parse_chunk(&text, 0, 1);
        let templates: Vec<&Arc<Template>> = chunk
            .events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Outbound { template, .. } => template.as_ref(),
                _ => None,
            })
            .collect();
        assert_eq!(templates.len(), 4);
        // The same name (as trimmed) and category: one copy.
        assert!(Arc::ptr_eq(templates[0], templates[1]));
        // Another category or another name: another template.
        assert_eq!(
            (&*templates[2].name, templates[2].category),
            ("order", TemplateCategory::Marketing)
        );
        assert!(!Arc::ptr_eq(templates[0], templates[2]));
        assert_eq!(&*templates[3].name, "promo");
        // What a chunk reads is what each line reads alone.
        for (event, line) in chunk.events.iter().zip(text.lines()) {
            assert!(
                matches!(parse_line(line, event.origin), Ok(Parsed::Event(alone)) if alone == *event)
            );
        }
    }

    #[test]
    fn statuses_naming_no_business_come_apart_and_borrowed() {
        let text = [
            r#"{"type":"outbound","at":1769267413,"business":"1","user":"+5511999990000","id":"w1"}"#,
            r#"{"type":"status","at":1769267414,"id":" w1 ","status":"sent"}"#,
            r#"{"type":"status","at":1769267415,"id":"w\u0031","status":"failed","error":131026}"#,
            r#"{"type":"status","at":1769267416,"id":"w1","status":"read","user":"+5511999990000"}"#,
            r#"{"type":"status","at":1769267417,"business":"1","id":"w1","status":"delivered"}"#,
            r#"{"type":"status","at":1769267418,"id":"","status":"read"}"#,
            "",
            r#"{"type":"inbound","at":1769267419,"business":"1","user":"+5511999990000"}"#,
        ]
        .join("\n");
        let whole = parse_chunk(&text, 0, 1);
        let (chunk, statuses) = parse_chunk_unowned(&text, 0, 1);
        // The statuses naming no business (lines 2–4) come apart, in order;
        // the one naming a business stays an event.
        assert_eq!(
            statuses.iter().map(|s| s.origin.line).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(
            chunk
                .events
                .iter()
                .map(|e| e.origin.line)
                .collect::<Vec<_>>(),
            [1, 5, 8]
        );
        // Trimmed, borrowed from the line unless written with an escape.
        assert!(matches!(statuses[0].id, Cow::Borrowed("w1")));
        assert!(matches!(&statuses[1].id, Cow::Owned(id) if id == "w1"));
        assert_eq!(statuses[1].error, Some(131026));
        assert!(
            statuses[2]
                .detail
                .as_ref()
                .is_some_and(|d| d.recipient.is_some())
        );
        // Errors are the same either way (line 6: an empty id).
        assert_eq!(chunk.errors, whole.errors);
        assert_eq!(whole.errors.len(), 1);
        // And as events, they are what `parse_chunk` reads, in its order.
        let mut events: Vec<Event> = chunk.events;
        events.extend(statuses.into_iter().map(UnownedStatus::into_event));
        events.sort_by_key(|event| event.origin);
        assert_eq!(events, whole.events);
    }

    /// Dealt out as they are read, the statuses naming no business land in
    /// the list their wamid's part says (one past the last counts as the
    /// last), each list in input order, and together they are what
    /// `parse_chunk_unowned` gives apart.
    #[test]
    fn statuses_dealt_as_read_keep_their_order_within_each_part() {
        let text = (1..=12)
            .map(|n| {
                format!(
                    r#"{{"type":"status","at":{n},"id":"w{}","status":"sent"}}"#,
                    n % 4
                )
            })
            .chain([
                r#"{"type":"inbound","at":1769267419,"business":"1","user":"+5511999990000"}"#
                    .to_string(),
            ])
            .collect::<Vec<_>>()
            .join("\n");
        let (apart, statuses) = parse_chunk_unowned(&text, 0, 1);
        // w0 and w1 to part 0, w2 to part 1, w3 to part 5: the last, 2.
        let part_of = |id: &str| match id {
            "w0" | "w1" => 0,
            "w2" => 1,
            _ => 5,
        };
        let (dealt_chunk, dealt) = parse_chunk_dealt(&text, 0, 1, 3, part_of);
        assert_eq!(dealt_chunk.events, apart.events);
        assert_eq!(dealt.len(), 3);
        let lines = |part: &[UnownedStatus]| part.iter().map(|s| s.origin.line).collect::<Vec<_>>();
        assert_eq!(lines(&dealt[0]), [1, 4, 5, 8, 9, 12]);
        assert_eq!(lines(&dealt[1]), [2, 6, 10]);
        assert_eq!(lines(&dealt[2]), [3, 7, 11]);
        let mut together: Vec<UnownedStatus> = dealt.into_iter().flatten().collect();
        together.sort_by_key(|status| status.origin);
        assert_eq!(together, statuses);
    }

    #[test]
    fn lines_are_those_of_str_lines() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\r\n",
            "a\r",
            "a\rb\n",
            "\n\na\r\n\r\nb",
            "a\n\r\n",
            "é\r\nü",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    /// `at` read through a JSON value, as every `at` but a plain string
    /// was before [`At::read`] read integers in place.
    fn at_through_a_value(text: &str) -> Result<Timestamp, String> {
        serde_json::from_str::<serde_json::Value>(text)
            .and_then(|value| At::deserialize(&value))
            .map(|at| at.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn at_reads_an_integer_as_a_json_value_does() {
        for text in [
            "0",
            "-0",
            "1",
            "-1",
            "1769267413",
            "253402207200",
            "-377705116800",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1e3",
            "1.0",
            "-9223372036854775809",
        ] {
            assert_eq!(
                At::read(Raw(text))
                    .map(|at| at.0)
                    .map_err(|e| e.to_string()),
                at_through_a_value(text),
                "{text}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn at_reads_any_integer_as_a_json_value_does(n in proptest::num::i64::ANY, u in proptest::num::u64::ANY) {
            for text in [n.to_string(), u.to_string()] {
                proptest::prop_assert_eq!(
                    At::read(Raw(&text)).map(|at| at.0).map_err(|e| e.to_string()),
                    at_through_a_value(&text)
                );
            }
        }

        #[test]
        fn at_reads_any_unix_second_as_a_json_value_does(n in 0..1_000_000_000_000_000_000u64) {
            let text = n.to_string();
            proptest::prop_assert_eq!(unsigned(&text), Some(n));
            proptest::prop_assert_eq!(
                At::read(Raw(&text)).map(|at| at.0).map_err(|e| e.to_string()),
                at_through_a_value(&text)
            );
        }

        /// Any date and time written as `wameter` writes them, including
        /// ones that do not exist (the 30th of February, hour 24, second
        /// 60): the quick reader gives jiff's instant or leaves the text to
        /// jiff, and leaves it only when jiff would not give that instant.
        #[test]
        fn the_quick_instant_reader_reads_as_jiff_does(
            year in 0..=9999u16,
            month in 0..=13u8,
            day in 0..=32u8,
            hour in 0..=24u8,
            minute in 0..=60u8,
            second in 0..=60u8,
            edit in proptest::option::of((0..20usize, proptest::sample::select(b"0912-:TZtz +.".to_vec()))),
        ) {
            let mut text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z").into_bytes();
            if let Some((at, byte)) = edit {
                text[at] = byte;
            }
            let text = String::from_utf8(text).unwrap();
            let jiff = text.parse::<Timestamp>().ok();
            let canonical = text.bytes().enumerate().all(|(at, byte)| match at {
                4 | 7 => byte == b'-',
                10 => byte == b'T',
                13 | 16 => byte == b':',
                19 => byte == b'Z',
                _ => byte.is_ascii_digit(),
            });
            let leap_second = text.get(17..19) == Some("60");
            match utc_instant(&text) {
                Some(at) => proptest::prop_assert_eq!(Some(at), jiff),
                None => proptest::prop_assert!(jiff.is_none() || !canonical || leap_second, "{text}"),
            }
        }

        #[test]
        fn trim_is_str_trim(text in "[ a~\t\u{a0}\u{3000}\u{e9}]{0,6}") {
            proptest::prop_assert_eq!(trim(&text), text.trim());
        }

        #[test]
        fn lines_are_those_of_str_lines_on_any_text(text in "[ab\r\n\u{e9}]{0,16}") {
            proptest::prop_assert_eq!(lines(&text).collect::<Vec<_>>(), text.lines().collect::<Vec<_>>());
        }
    }

    /// A value as a line may write it: every shape the flat reader takes,
    /// and the ones it must leave to serde_json.
    fn any_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        proptest::prop_oneof![
            proptest::sample::select(vec![
                r#""1769267413""#,
                r#""2026-01-24T15:10:14Z""#,
                r#""2026-01-24T15:10:14""#,
                r#""+5511999990000""#,
                r#""user.BR.9373""#,
                r#""106540352240011""#,
                r#""wamid.gen.42.1""#,
                r#""sent""#,
                r#""delivered""#,
                r#""read""#,
                r#""failed""#,
                r#""inbound""#,
                r#""outbound""#,
                r#""status""#,
                r#""call""#,
                r#""agent_usage""#,
                r#""ad""#,
                r#""message""#,
                r#""business_initiated""#,
                r#""BR""#,
                r#""""#,
                r#"" ""#,
                r#""a\"b""#,
                r#""\u0041""#,
                "\"tab\there\"",
                r#""é""#,
                "0",
                "-0",
                "7",
                "-12",
                "007",
                "1.5",
                "1e3",
                "-",
                "1769267413",
                "18446744073709551616",
                "99999999999999999999999",
                "-9223372036854775809",
                "null",
                "true",
                "false",
                "[]",
                "[1,2]",
                "{}",
                r#"{"a":1}"#,
                r#"{"name":"order","category":"utility"}"#,
                r#"{"category":"MARKETING"}"#,
                r#"{"name":"x","name":"y"}"#,
                r#"{"name":1}"#,
                r#"{"other":"x"}"#,
                r#"{ "name" : "a" , }"#,
            ])
            .prop_map(String::from),
            "[ -~]{0,12}".prop_map(|text| format!("{text:?}")),
            proptest::num::i64::ANY.prop_map(|n| n.to_string()),
        ]
    }

    /// A field of a line: mostly absent or a value its events take, at
    /// times any value at all.
    fn any_field(
        key: &'static str,
        good: &'static [&'static str],
    ) -> impl proptest::strategy::Strategy<Value = Option<(String, String)>> {
        use proptest::strategy::{Just, Strategy};
        proptest::prop_oneof![
            1 => Just(None),
            6 => proptest::sample::select(good).prop_map(move |v| Some((key.to_owned(), v.to_owned()))),
            1 => any_value().prop_map(move |v| Some((key.to_owned(), v))),
        ]
    }

    /// A line of any kind, most of them events (every field a kind needs,
    /// plus others), some with a value or a key no event takes, in any
    /// order, with any spaces and at times bytes after it.
    fn any_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::{Just, Strategy};
        let fields = (
            (
                any_field(
                    "type",
                    &[
                        r#""inbound""#,
                        r#""outbound""#,
                        r#""status""#,
                        r#""call""#,
                        r#""agent_usage""#,
                    ],
                ),
                any_field(
                    "at",
                    &[
                        "1769267413",
                        r#""2026-01-24T15:10:14Z""#,
                        r#""2026-01-24T12:10:14-03:00""#,
                    ],
                ),
                any_field("business", &[r#""106540352240011""#, r#"" 1 ""#]),
                any_field(
                    "user",
                    &[
                        r#""+5511999990000""#,
                        r#""+52550097017""#,
                        r#""user.BR.9373""#,
                    ],
                ),
                any_field("id", &[r#""wamid.gen.42.1""#, r#""w""#]),
                any_field(
                    "status",
                    &[r#""sent""#, r#""delivered""#, r#""read""#, r#""failed""#],
                ),
                any_field(
                    "template",
                    &[
                        r#"{"name":"order","category":"utility"}"#,
                        r#"{ "category" : "MARKETING" }"#,
                    ],
                ),
                any_field("error", &["131000", r#""131000""#]),
            ),
            (
                any_field(
                    "direction",
                    &[r#""business_initiated""#, r#""user_initiated""#],
                ),
                any_field("duration", &["12", "0"]),
                any_field("tokens", &["1200"]),
                any_field("user_country", &[r#""BR""#]),
                any_field("entry_point", &[r#""ad""#, r#""page_cta""#]),
                any_field("kind", &[r#""call""#, r#""message""#]),
                any_field("messaging_account_id", &[r#""777""#]),
                any_field("paid_messaging_account_id", &[r#""778""#]),
            ),
        );
        let extra = proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "type",
                    "at",
                    "id",
                    "pricing",
                    "conversation",
                    "object",
                    "extra",
                    "typ\\u0065",
                    "",
                ]),
                any_value(),
            ),
            0..2,
        );
        let spaces = proptest::collection::vec(
            proptest::sample::select(vec!["", "", "", " ", "\t", " \r\n "]),
            4,
        );
        let tail = proptest::sample::select(vec!["", "", "", " ", "x", ",", "}"]);
        (fields, extra, spaces, tail).prop_flat_map(|((a, b), extra, spaces, tail)| {
            let (a0, a1, a2, a3, a4, a5, a6, a7) = a;
            let (b0, b1, b2, b3, b4, b5, b6, b7) = b;
            let mut fields: Vec<(String, String)> = [
                a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
            ]
            .into_iter()
            .flatten()
            .collect();
            fields.extend(
                extra
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value)),
            );
            Just(fields).prop_shuffle().prop_map(move |fields| {
                let [a, b, c, d] = [spaces[0], spaces[1], spaces[2], spaces[3]];
                let body = fields
                    .iter()
                    .map(|(key, value)| format!("{a}\"{key}\"{b}:{c}{value}{d}"))
                    .collect::<Vec<_>>()
                    .join(",");
                format!("{{{body}}}{tail}")
            })
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The reader of the common shape and serde_json read every line
        /// the same: the same event, or the same error, word for word.
        #[test]
        fn the_flat_reader_reads_every_line_as_serde_does(line in any_line()) {
            let origin = Origin { source: 0, line: 3 };
            proptest::prop_assert_eq!(parse_line(&line, origin), parse_line_by_serde(&line, origin), "{}", line);
        }
    }

    #[test]
    fn the_flat_reader_takes_the_common_shape_and_leaves_the_rest() {
        for line in [
            r#"{"type":"outbound","at":1769267413,"business":"106540352240011","user":"+52550097017","id":"wamid.gen.42.1","template":{"name":"marketing_notice","category":"marketing"}}"#,
            r#"{"type":"status","at":"2026-01-24T15:10:14Z","id":"wamid.gen.42.1","status":"sent"}"#,
            r#" { "type" : "inbound" , "at" : 0 , "business" : "1" , "user" : "+1" , "template" : { } } "#,
            r#"{"type":"call","at":-5,"direction":"user_initiated","duration":12,"error":131000}"#,
        ] {
            assert!(
                flat::read(line, &mut RawEvent::default()).is_some(),
                "{line}"
            );
        }
        for line in [
            r#"{"type":"status","id":"wamid.\u0041"}"#,
            r#"{"type":"status","type":"status"}"#,
            r#"{"type":"status","extra":"x"}"#,
            r#"{"type":"status","extra":1}"#,
            r#"{"type":"status","at":1.5}"#,
            r#"{"type":"status","at":01}"#,
            r#"{"type":"status","at":null}"#,
            r#"{"type":"status","pricing":{"billable":true}}"#,
            r#"{"type":"status"} x"#,
            r#"{"type":"status",}"#,
            "{\"type\":\"a\tb\"}",
            r#"{}"#,
            r#"[]"#,
        ] {
            assert!(
                flat::read(line, &mut RawEvent::default()).is_none(),
                "{line}"
            );
        }
    }

    fn parse(line: &str) -> Result<Option<Event>, LineError> {
        match parse_line(line, Origin { source: 0, line: 7 })? {
            Parsed::Event(event) => Ok(Some(event)),
            Parsed::Nothing => Ok(None),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn accepts_every_documented_shape() {
        let unix = parse(r#"{"type":"status","at":1751364005,"id":"wamid.X","status":"read"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(unix.at.to_string(), "2025-07-01T10:00:05Z");
        let outbound = parse(r#"{"type":"outbound","at":"2025-07-01T10:00:00Z","business":"1","user":"5511999990000","id":"wamid.X","template":{"name":"order_update","category":"UTILITY"},"extra":1}"#).unwrap().unwrap();
        match outbound.kind {
            EventKind::Outbound {
                template: Some(t),
                user,
                ..
            } => {
                assert_eq!(t.category, TemplateCategory::Utility);
                assert_eq!(user.to_string(), "+5511999990000");
            }
            other => panic!("{other:?}"),
        }
        let call = parse(r#"{"type":"inbound","at":"2025-07-01T10:00:00Z","business":"1","user":"BR.1502","kind":"call","entry_point":"page_cta"}"#).unwrap().unwrap();
        assert!(matches!(
            call.kind,
            EventKind::Inbound {
                kind: InboundKind::Call,
                entry_point: Some(EntryPoint::PageCta),
                ..
            }
        ));
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(parse("# a comment").unwrap(), None);
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let cases = [
            (
                r#"{"type":"inbound","at":"2025-07-01T10:00:00Z","user":"+5511999990000"}"#,
                Some("business"),
            ),
            (
                r#"{"type":"inbound","at":"2025-07-01 10:00","business":"1","user":"+5511999990000"}"#,
                Some("at"),
            ),
            (
                r#"{"type":"inbound","business":"1","user":"+5511999990000"}"#,
                Some("at"),
            ),
            (
                r#"{"type":"outbound","at":1,"business":"1","user":"+5511999990000"}"#,
                Some("id"),
            ),
            (
                r#"{"type":"outbound","at":1,"business":"1","user":"+5511999990000","id":"w","template":{"name":"x","category":"promo"}}"#,
                Some("template.category"),
            ),
            (
                r#"{"type":"status","at":1,"id":"w","status":"seen"}"#,
                Some("status"),
            ),
            (
                r#"{"type":"status","at":1,"id":"w","status":"failed","error":"x"}"#,
                Some("error"),
            ),
            (
                r#"{"type":"inbound","at":1,"business":"1","user":"not a number"}"#,
                Some("user"),
            ),
            (r#"{"type":"click","at":1}"#, Some("type")),
            (r#"{"object":"page","entry":[]}"#, Some("object")),
            (
                r#"{"type":"status","at":1,"id":"w","status":"sent","pricing":{"billable":"yes","category":"utility"}}"#,
                Some("pricing.billable"),
            ),
            (r#"{"type":"template_category_update","at":1}"#, None),
            (
                r#"{"type":"inbound","at":1,"business":"1","user":"+55119999"#,
                None,
            ),
            ("[1,2]", None),
        ];
        for (line, field) in cases {
            let error = parse(line).unwrap_err();
            assert_eq!(error.field.as_deref(), field, "{line}: {error}");
            assert_eq!(error.origin.line, 7);
        }
    }

    /// `at` read in place (a plain string, integer seconds) and as a JSON
    /// value (escapes, other types) give the same instants and messages.
    #[test]
    fn at_reads_the_same_in_place_and_as_a_value() {
        let at = |text: &str| {
            let line = format!(r#"{{"type":"status","at":{text},"id":"w","status":"read"}}"#);
            match parse(&line) {
                Ok(Some(event)) => Ok(event.at.to_string()),
                Ok(None) => panic!("{line}"),
                Err(error) => {
                    assert_eq!(error.field.as_deref(), Some("at"), "{error}");
                    Err(error.message)
                }
            }
        };
        let instant = Ok("2025-07-01T10:00:05Z".to_string());
        assert_eq!(at(r#""2025-07-01T07:00:05-03:00""#), instant);
        assert_eq!(at(r#""2025-07-01T07:00:05\u002D03:00""#), instant);
        assert_eq!(at("1751364005"), instant);
        let bad = at(r#""2025-07-01 07:00""#).unwrap_err();
        assert!(
            bad.starts_with("`2025-07-01 07:00` is not an RFC 3339 timestamp with offset ("),
            "{bad}"
        );
        assert_eq!(at(r#""2025\u002D07-01 07:00""#), Err(bad));
        assert_eq!(
            at("1.5"),
            Err("invalid type: floating point `1.5`, expected an RFC 3339 timestamp with offset or integer UNIX seconds".to_string())
        );
        assert_eq!(
            at("true"),
            Err("invalid type: boolean `true`, expected an RFC 3339 timestamp with offset or integer UNIX seconds".to_string())
        );
        assert_eq!(at("null"), Err("missing".to_string()));
        assert!(
            at("99999999999999999")
                .unwrap_err()
                .contains("out of range")
        );
    }
}
