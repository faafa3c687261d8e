//! Meta's webhook envelope for a WhatsApp Business Account, read into
//! canonical events and notices.
//!
//! One POST body — `{"object":"whatsapp_business_account","entry":[…]}` —
//! can carry many changes, each with many messages or statuses. Every item
//! ends up in exactly one place of [`WebhookItems`]: an event, a notice, a
//! problem (with the JSON path of the field at fault), or an ignored item
//! (a kind wameter does not use, counted so the user sees it). Nothing is
//! dropped silently and no input makes this module panic (a property test
//! and a cargo-fuzz target hold it to that).
//!
//! What becomes what (docs/rules.md §8):
//! - `messages[]` from a user → `inbound` (a `referral` makes an `ad` entry
//!   point). A `system` message is written by WhatsApp, not by the user, so
//!   it does not open a customer service window and is ignored (counted).
//! - `calls[]` that a user started (`direction: USER_INITIATED`, event
//!   `connect`) → `inbound` with kind `call`.
//! - `statuses[]` → `status`, keeping the recipient, `pricing` and
//!   `conversation` as a [`StatusDetail`]; `played` reads as `read`.
//! - Group traffic (Groups API: a message with a `group_id`, a status with
//!   `recipient_type: group`) → ignored, by kind: groups are not metered
//!   (docs/rules.md §17).
//! - `template_category_update`, `message_template_status_update`,
//!   `account_update`, `user_preferences` → [`Notice`]s.
//! - Anything else → ignored, by kind.

use jiff::Timestamp;
use serde_json::{Map, Value};
use wameter_core::event::{
    Call, CallDirection, CallStatus, DeliveryStatus, EntryPoint, Event, EventKind, InboundKind,
    MetaConversation, MetaCost, MetaPricing, Origin, StatusDetail, UserId,
};
use wameter_core::notice::{CountryStart, Notice, NoticeKind, TemplateRef};

/// The `object` value of a WhatsApp Business Account webhook.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// A field of the envelope that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the field, e.g. `entry[0].changes[1].value.statuses[0].timestamp`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// An item of a kind wameter does not use (e.g. `phone_number_quality_update`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// The kind, e.g. `field phone_number_quality_update` or `message type system`.
    pub kind: String,
    /// JSON path of the item.
    pub path: String,
}

/// Everything one envelope turned into.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookItems {
    /// Canonical events, in envelope order.
    pub events: Vec<Event>,
    /// The WABA (`entry[].id`) each of `events` came under, index for
    /// index: what the server checks against its accounts file, so an
    /// entry naming another WABA's phone number is kept apart.
    pub wabas: Vec<Option<Box<str>>>,
    /// Notices, in envelope order.
    pub notices: Vec<Notice>,
    /// Items that could not be read.
    pub problems: Vec<Problem>,
    /// Items of kinds wameter does not use.
    pub ignored: Vec<Ignored>,
}

/// Reads one envelope. `Err` only when the whole body is not a WhatsApp
/// Business Account envelope; a bad item inside is a [`Problem`] and the
/// rest of the envelope is still read.
pub fn parse_envelope(body: &Value, origin: Origin) -> Result<WebhookItems, Problem> {
    let Some(envelope) = body.as_object() else {
        return Err(problem("", "the webhook body is not a JSON object"));
    };
    match envelope.get("object") {
        Some(Value::String(object)) if object == WHATSAPP_OBJECT => {}
        Some(other) => {
            return Err(problem(
                "object",
                format!(
                    "{other} is not \"{WHATSAPP_OBJECT}\"; only WhatsApp Business Account webhooks are read"
                ),
            ));
        }
        None => return Err(problem("object", "missing")),
    }
    let entries = match envelope.get("entry") {
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(problem("entry", "not an array")),
        None => return Err(problem("entry", "missing")),
    };
    let mut reader = Reader {
        origin,
        items: WebhookItems::default(),
        countries: Vec::new(),
    };
    for (i, entry) in entries.iter().enumerate() {
        reader.entry(entry, &format!("entry[{i}]"));
    }
    Ok(reader.items)
}

/// Reads Meta's `pricing` object (a status's, or a canonical status line's).
pub fn parse_pricing(value: &Value) -> Result<MetaPricing, (String, String)> {
    let object = value
        .as_object()
        .ok_or_else(|| (String::new(), "not an object".to_string()))?;
    let billable = match object.get("billable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(("billable".into(), format!("{other} is not true or false"))),
    };
    let text = |key: &str| -> Result<Option<&str>, (String, String)> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
            Some(other) => Err((key.into(), format!("{other} is not a non-empty string"))),
        }
    };
    let category =
        text("category")?.ok_or_else(|| ("category".to_string(), "missing".to_string()))?;
    let cost = match object.get("cost") {
        None | Some(Value::Null) => None,
        Some(cost) => Some(
            parse_cost(cost).map_err(|(field, message)| (json_path("cost", &field), message))?,
        ),
    };
    Ok(MetaPricing {
        billable,
        pricing_model: text("pricing_model")?.map(|m| m.trim().to_ascii_uppercase().into()),
        pricing_type: text("type")?.map(MetaPricing::normalise),
        category: MetaPricing::normalise(category),
        cost,
    })
}

/// Reads `pricing.cost` (`{"amount": 0.035, "currency": "USD"}`, max-price
/// marketing): the amount exactly as its digits are written (Meta writes a
/// JSON number; it is never read through a float).
fn parse_cost(value: &Value) -> Result<MetaCost, (String, String)> {
    let object = value
        .as_object()
        .ok_or_else(|| (String::new(), "not an object".to_string()))?;
    let amount = match object.get("amount") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => return Err(("amount".into(), format!("{other} is not a number"))),
        None => return Err(("amount".into(), "missing".into())),
    };
    // A message never costs a million: larger is a broken payload, and
    // summing such amounts could overflow an exact decimal.
    let amount = wameter_core::money::parse_amount(&amount)
        .filter(|a| !a.is_sign_negative() && *a < rust_decimal::Decimal::from(1_000_000))
        .ok_or_else(|| {
            (
                "amount".to_string(),
                format!("`{amount}` is not a plain non-negative decimal below 1,000,000"),
            )
        })?;
    let currency = object
        .get("currency")
        .and_then(Value::as_str)
        .ok_or_else(|| ("currency".to_string(), "missing".to_string()))?;
    let currency = wameter_core::money::Currency::parse(currency).ok_or_else(|| {
        (
            "currency".to_string(),
            format!("`{currency}` is not a currency"),
        )
    })?;
    Ok(MetaCost { amount, currency })
}

/// Reads Meta's `conversation` object.
pub fn parse_conversation(value: &Value) -> Result<MetaConversation, (String, String)> {
    let object = value
        .as_object()
        .ok_or_else(|| (String::new(), "not an object".to_string()))?;
    let id = object.get("id").and_then(id_text);
    let origin_type = match object.get("origin") {
        None | Some(Value::Null) => None,
        Some(Value::Object(origin)) => origin
            .get("type")
            .and_then(Value::as_str)
            .map(MetaPricing::normalise),
        Some(other) => return Err(("origin".into(), format!("{other} is not an object"))),
    };
    let expires_at = match object.get("expiration_timestamp") {
        None | Some(Value::Null) => None,
        Some(value) => Some(unix_time(value).map_err(|e| ("expiration_timestamp".to_string(), e))?),
    };
    Ok(MetaConversation {
        id,
        origin_type,
        expires_at,
    })
}

/// The entry point a user's message opens, as wameter reads Meta's
/// webhooks: a `referral` object (a click-to-WhatsApp ad, a Page button) is
/// an ad entry point. The sandbox applies the same rule to the messages it
/// simulates, so it bills them as `serve` will.
pub fn referral_entry_point(message: &Map<String, Value>) -> Option<EntryPoint> {
    message
        .get("referral")
        .is_some_and(Value::is_object)
        .then_some(EntryPoint::Ad)
}

/// Reads Meta's UNIX-seconds timestamps: a number or a string of digits.
pub fn unix_time(value: &Value) -> Result<Timestamp, String> {
    let seconds = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let seconds = seconds.ok_or_else(|| format!("{value} is not UNIX seconds"))?;
    Timestamp::from_second(seconds).map_err(|e| format!("{seconds} is out of range ({e})"))
}

/// Whole seconds, as a number or a numeric string; `None` otherwise.
fn seconds(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<u32>().ok(),
        _ => None,
    }
}

fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Whether a message's `group_id` names a group (Groups API).
fn is_group(group_id: Option<&Value>) -> bool {
    group_id.and_then(id_text).is_some()
}

/// Ids come as strings, sometimes as numbers (`message_template_id`).
fn id_text(value: &Value) -> Option<Box<str>> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().into()),
        Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

/// The template a template webhook is about.
fn template_ref(value: &Map<String, Value>) -> TemplateRef {
    TemplateRef {
        template_id: value.get("message_template_id").and_then(id_text),
        template_name: text(value.get("message_template_name")),
        language: text(value.get("message_template_language")),
    }
}

fn lower(value: Option<&Value>) -> Option<Box<str>> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(MetaPricing::normalise)
}

fn text(value: Option<&Value>) -> Option<Box<str>> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().into())
}

/// A user from a phone field, else a BSUID field; the phone wins when both
/// are usable (docs/rules.md §3.3: keep the number when known). `Err` names
/// the first non-empty field that could not be read, or says none was given.
fn user_from(
    object: &Map<String, Value>,
    phone_key: &str,
    bsuid_key: &str,
    path: &str,
) -> Result<UserId, Problem> {
    let mut first_bad: Option<Problem> = None;
    for key in [phone_key, bsuid_key] {
        let Some(raw) = object
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
        else {
            continue;
        };
        match UserId::parse(raw) {
            Ok(user) => return Ok(user),
            Err(e) => {
                first_bad.get_or_insert(problem(&format!("{path}.{key}"), e));
            }
        }
    }
    Err(first_bad.unwrap_or_else(|| {
        problem(
            &format!("{path}.{phone_key}"),
            format!("missing (and no `{bsuid_key}`)"),
        )
    }))
}

struct Reader {
    origin: Origin,
    items: WebhookItems,
    /// The change's `contacts[]`: (`user_id`, `profile.country_code`), for
    /// business-scoped ids that carry no country of their own.
    countries: Vec<(String, String)>,
}

impl Reader {
    fn problem(&mut self, path: String, message: impl Into<String>) {
        self.items.problems.push(Problem {
            path,
            message: message.into(),
        });
    }

    fn ignore(&mut self, kind: String, path: String) {
        self.items.ignored.push(Ignored { kind, path });
    }

    fn entry(&mut self, entry: &Value, path: &str) {
        let Some(entry) = entry.as_object() else {
            return self.problem(path.into(), "not an object");
        };
        let waba = entry.get("id").and_then(id_text);
        let time = entry.get("time").and_then(|t| unix_time(t).ok());
        let changes = match entry.get("changes") {
            Some(Value::Array(changes)) => changes,
            Some(_) => return self.problem(format!("{path}.changes"), "not an array"),
            None => return self.problem(format!("{path}.changes"), "missing"),
        };
        let first_event = self.items.events.len();
        self.changes(changes, &waba, time, path);
        let read = self.items.events.len() - first_event;
        self.items.wabas.extend(std::iter::repeat_n(waba, read));
    }

    fn changes(
        &mut self,
        changes: &[Value],
        waba: &Option<Box<str>>,
        time: Option<Timestamp>,
        path: &str,
    ) {
        for (j, change) in changes.iter().enumerate() {
            let path = format!("{path}.changes[{j}]");
            let Some(change) = change.as_object() else {
                self.problem(path, "not an object");
                continue;
            };
            let Some(field) = change.get("field").and_then(Value::as_str) else {
                self.problem(format!("{path}.field"), "missing");
                continue;
            };
            let Some(value) = change.get("value").and_then(Value::as_object) else {
                self.problem(format!("{path}.value"), "missing or not an object");
                continue;
            };
            let path = format!("{path}.value");
            let context = Context {
                waba: waba.clone(),
                time,
                path,
            };
            match field {
                "messages" => self.messages_change(value, &context),
                "calls" => self.calls_change(value, &context),
                "template_category_update" => self.template_category_update(value, &context),
                "message_template_status_update" => self.template_status_update(value, &context),
                "account_update" => self.account_update(value, &context),
                "user_preferences" => self.user_preferences(value, &context),
                other => self.ignore(format!("field {other}"), context.path),
            }
        }
    }

    fn notice(&mut self, context: &Context, at: Option<Timestamp>, kind: NoticeKind) {
        self.items.notices.push(Notice {
            at: at.or(context.time),
            waba: context.waba.clone(),
            origin: self.origin,
            kind,
        });
    }

    /// A business-scoped id with no country of its own takes the one Meta
    /// gave beside it in the change's `contacts[]` (docs/rules.md §3.3).
    fn with_country(&self, user: UserId) -> UserId {
        let id = user.to_string();
        match self.countries.iter().find(|(user_id, _)| *user_id == id) {
            Some((_, country)) => user.with_country(country),
            None => user,
        }
    }

    fn messages_change(&mut self, value: &Map<String, Value>, context: &Context) {
        let business = value
            .get("metadata")
            .and_then(|m| m.get("phone_number_id"))
            .and_then(id_text);
        self.countries = value
            .get("contacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|contact| {
                let id = contact.get("user_id").and_then(Value::as_str)?.trim();
                let country = contact
                    .get("profile")
                    .and_then(|p| p.get("country_code"))
                    .and_then(Value::as_str)?
                    .trim();
                (!id.is_empty() && !country.is_empty())
                    .then(|| (id.to_string(), country.to_string()))
            })
            .collect();
        let path = &context.path;
        let mut understood = false;
        // With one contact, it is the sender of every message in the change.
        let sole_contact = match value
            .get("contacts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            Some([contact]) => contact.as_object(),
            _ => None,
        };
        if let Some(messages) = self.array(value, "messages", path) {
            understood = true;
            let at = Where {
                business: business.as_deref(),
                value_path: path,
                sole_contact,
            };
            for (k, message) in messages.iter().enumerate() {
                self.message(message, &at, &format!("{path}.messages[{k}]"));
            }
        }
        if let Some(statuses) = self.array(value, "statuses", path) {
            understood = true;
            for (k, status) in statuses.iter().enumerate() {
                self.status(
                    status,
                    business.as_deref(),
                    context.waba.as_deref(),
                    &format!("{path}.statuses[{k}]"),
                );
            }
        }
        if let Some(errors) = self.array(value, "errors", path) {
            // An error about the number or app, not about one message
            // (e.g. 130429 rate limit): nothing is sent or delivered.
            understood = true;
            for (k, error) in errors.iter().enumerate() {
                let code = error
                    .get("code")
                    .map_or_else(|| "?".to_string(), Value::to_string);
                self.ignore(format!("error {code}"), format!("{path}.errors[{k}]"));
            }
        }
        if !understood {
            self.ignore(
                "messages change without messages, statuses or errors".into(),
                path.clone(),
            );
        }
    }

    /// `value[key]` when it is an array; a problem when it is something else.
    fn array<'v>(
        &mut self,
        value: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'v Vec<Value>> {
        match value.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => {
                self.problem(format!("{path}.{key}"), "not an array");
                None
            }
        }
    }

    fn business(&mut self, business: Option<&str>, path: &str) -> Option<Box<str>> {
        if business.is_none() {
            self.problem(
                format!("{path}.metadata.phone_number_id"),
                "missing; an inbound message needs its business phone number",
            );
        }
        business.map(Box::from)
    }

    fn message(&mut self, message: &Value, at_where: &Where, path: &str) {
        let Some(message) = message.as_object() else {
            return self.problem(path.into(), "not an object");
        };
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "system" {
            // Written by WhatsApp (the user changed number), not by the user.
            return self.ignore("message type system".into(), path.into());
        }
        if is_group(message.get("group_id")) {
            // Written in a group: it opens the group's customer service
            // window, not the sender's own one (Meta's Groups API pricing
            // page). Groups are not metered (docs/rules.md §17): counted.
            return self.ignore("group message".into(), path.into());
        }
        let at = match message.get("timestamp").map(unix_time) {
            Some(Ok(at)) => at,
            Some(Err(e)) => return self.problem(format!("{path}.timestamp"), e),
            None => return self.problem(format!("{path}.timestamp"), "missing"),
        };
        let names_sender = ["from", "from_user_id"]
            .iter()
            .any(|k| message.get(*k).is_some_and(|v| v.as_str() != Some("")));
        let user = match (names_sender, at_where.sole_contact) {
            (false, Some(contact)) => user_from(
                contact,
                "wa_id",
                "user_id",
                &format!("{}.contacts[0]", at_where.value_path),
            ),
            _ => user_from(message, "from", "from_user_id", path),
        };
        let user = match user {
            Ok(user) => self.with_country(user),
            Err(p) => return self.items.problems.push(p),
        };
        let Some(business) = self.business(at_where.business, at_where.value_path) else {
            return;
        };
        let entry_point = referral_entry_point(message);
        let id = message.get("id").and_then(id_text);
        let kind = InboundKind::Message;
        self.items.events.push(Event {
            at,
            origin: self.origin,
            kind: EventKind::Inbound {
                business: business.into(),
                user,
                id,
                entry_point,
                kind,
            },
        });
    }

    /// One status; `messaging_account` is its entry's id: Meta sends a
    /// message's statuses to the Messaging account that sent it.
    fn status(
        &mut self,
        status: &Value,
        business: Option<&str>,
        messaging_account: Option<&str>,
        path: &str,
    ) {
        let Some(status) = status.as_object() else {
            return self.problem(path.into(), "not an object");
        };
        let Some(id) = status.get("id").and_then(id_text) else {
            return self.problem(format!("{path}.id"), "missing");
        };
        let name = status.get("status").and_then(Value::as_str).unwrap_or("");
        let Some(delivery) = DeliveryStatus::parse(&name.to_ascii_lowercase()) else {
            return self.ignore(
                format!("status {}", if name.is_empty() { "(none)" } else { name }),
                path.into(),
            );
        };
        if status.get("recipient_type").and_then(Value::as_str) == Some("group") {
            // One participant's delivery of a group message: Meta bills each
            // participant reached. Groups are not metered (docs/rules.md
            // §17), so the status is counted, not read as a 1:1 delivery to
            // a user named by the group's id.
            return self.ignore(format!("group status {}", delivery.as_str()), path.into());
        }
        let at = match status.get("timestamp").map(unix_time) {
            Some(Ok(at)) => at,
            Some(Err(e)) => return self.problem(format!("{path}.timestamp"), e),
            None => return self.problem(format!("{path}.timestamp"), "missing"),
        };
        let error = status
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|errors| errors.first())
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64);
        let mut detail = StatusDetail {
            business: business.map(Box::from),
            messaging_account: messaging_account.map(Box::from),
            ..StatusDetail::default()
        };
        // A recipient that cannot be read (a documentation placeholder such
        // as `CUSTOMER_PHONE_NUMBER`) is reported, and the status is still
        // kept: the status itself does not need it.
        let has_recipient = ["recipient_id", "recipient_user_id"].iter().any(|k| {
            status
                .get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty())
        });
        if has_recipient {
            match user_from(status, "recipient_id", "recipient_user_id", path) {
                Ok(user) => detail.recipient = Some(self.with_country(user)),
                Err(p) => self.items.problems.push(p),
            }
        }
        match status.get("pricing") {
            None | Some(Value::Null) => {}
            Some(value) => match parse_pricing(value) {
                Ok(pricing) => detail.pricing = Some(pricing),
                Err((field, message)) => {
                    self.problem(json_path(&format!("{path}.pricing"), &field), message)
                }
            },
        }
        match status.get("conversation") {
            None | Some(Value::Null) => {}
            Some(value) => match parse_conversation(value) {
                Ok(conversation) => detail.conversation = Some(conversation),
                Err((field, message)) => {
                    self.problem(json_path(&format!("{path}.conversation"), &field), message)
                }
            },
        }
        self.items.events.push(Event {
            at,
            origin: self.origin,
            kind: EventKind::Status {
                id,
                status: delivery,
                error,
                detail: Some(Box::new(detail)),
            },
        });
    }

    /// Field `calls`: a user's `connect` opens the window at once (the
    /// earliest sign of the call); every `terminate` becomes a [`Call`]
    /// (interfaces §1). Other call events (a business call's `connect`,
    /// SIP `call_created`, recordings) and call `statuses` (RINGING,
    /// ACCEPTED, REJECTED) bill nothing: they are reported as ignored.
    fn calls_change(&mut self, value: &Map<String, Value>, context: &Context) {
        let business = value
            .get("metadata")
            .and_then(|m| m.get("phone_number_id"))
            .and_then(id_text);
        let path = &context.path;
        if let Some(statuses) = value.get("statuses").and_then(Value::as_array) {
            for (k, status) in statuses.iter().enumerate() {
                let name = status
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("(none)");
                self.ignore(
                    format!("call status {name}"),
                    format!("{path}.statuses[{k}]"),
                );
            }
            if !value.contains_key("calls") {
                return;
            }
        }
        let Some(calls) = self.array(value, "calls", path) else {
            return self.ignore("calls change without calls".into(), path.clone());
        };
        for (k, call) in calls.iter().enumerate() {
            let path = format!("{path}.calls[{k}]");
            let Some(call) = call.as_object() else {
                self.problem(path, "not an object");
                continue;
            };
            let direction_text = call.get("direction").and_then(Value::as_str).unwrap_or("");
            let event = call.get("event").and_then(Value::as_str).unwrap_or("");
            let direction = CallDirection::parse(direction_text);
            let user_initiated = direction == Some(CallDirection::UserInitiated);
            if event != "terminate" && !(event == "connect" && user_initiated) {
                let what = if direction_text.is_empty() {
                    format!("call {event}")
                } else {
                    format!("call {} {event}", direction_text.to_ascii_lowercase())
                };
                self.ignore(what, path);
                continue;
            }
            let Some(direction) = direction else {
                self.problem(
                    format!("{path}.direction"),
                    format!("`{direction_text}` is not BUSINESS_INITIATED or USER_INITIATED"),
                );
                continue;
            };
            let at = match call.get("timestamp").map(unix_time) {
                Some(Ok(at)) => at,
                Some(Err(e)) => {
                    self.problem(format!("{path}.timestamp"), e);
                    continue;
                }
                None => {
                    self.problem(format!("{path}.timestamp"), "missing");
                    continue;
                }
            };
            // The user is the caller of a user-initiated call, the callee
            // of a business-initiated one.
            let (phone_key, bsuid_key) = if user_initiated {
                ("from", "from_user_id")
            } else {
                ("to", "to_user_id")
            };
            let user = match user_from(call, phone_key, bsuid_key, &path) {
                Ok(user) => self.with_country(user),
                Err(p) => {
                    self.items.problems.push(p);
                    continue;
                }
            };
            let Some(business) = self.business(business.as_deref(), &context.path) else {
                continue;
            };
            let id = call.get("id").and_then(id_text);
            if event == "connect" {
                self.items.events.push(Event {
                    at,
                    origin: self.origin,
                    kind: EventKind::Inbound {
                        business: business.into(),
                        user,
                        id,
                        entry_point: None,
                        kind: InboundKind::Call,
                    },
                });
                continue;
            }
            let Some(id) = id else {
                self.problem(format!("{path}.id"), "missing");
                continue;
            };
            // `start_time` is the pickup; a call never picked up has none,
            // and starts (as far as the webhook tells) when it ended.
            let started = match call.get("start_time").map(unix_time) {
                Some(Ok(start)) => start,
                Some(Err(e)) => {
                    self.problem(format!("{path}.start_time"), e);
                    continue;
                }
                None => at,
            };
            let duration_seconds = match call.get("duration") {
                None | Some(Value::Null) => 0,
                Some(value) => match seconds(value) {
                    Some(seconds) => seconds,
                    None => {
                        self.problem(
                            format!("{path}.duration"),
                            format!("{value} is not a whole number of seconds"),
                        );
                        continue;
                    }
                },
            };
            let error = call
                .get("errors")
                .and_then(Value::as_array)
                .and_then(|errors| errors.first())
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64);
            let status = match call.get("status").and_then(Value::as_str) {
                Some(text) => CallStatus::parse(text),
                None => CallStatus::default_for(duration_seconds),
            };
            self.items.events.push(Event {
                at: started,
                origin: self.origin,
                kind: EventKind::Call(Box::new(Call {
                    business,
                    user,
                    id,
                    direction,
                    duration_seconds,
                    status,
                    error,
                    messaging_account: context.waba.clone(),
                })),
            });
        }
    }

    fn template_category_update(&mut self, value: &Map<String, Value>, context: &Context) {
        let effective_at = value
            .get("category_update_timestamp")
            .and_then(|t| unix_time(t).ok());
        let kind = NoticeKind::TemplateCategoryUpdate {
            template: template_ref(value),
            previous_category: lower(value.get("previous_category")),
            new_category: lower(value.get("new_category")),
            correct_category: lower(value.get("correct_category")),
            effective_at,
        };
        if value.get("new_category").is_none() && value.get("correct_category").is_none() {
            return self.problem(
                format!("{}.new_category", context.path),
                "missing (and no correct_category)",
            );
        }
        self.notice(context, None, kind);
    }

    fn template_status_update(&mut self, value: &Map<String, Value>, context: &Context) {
        let Some(event) = text(value.get("event")) else {
            // Meta's own documentation shows a quality-score change under
            // this field; it does not bear on prices.
            if value.contains_key("new_quality_score") {
                return self.ignore("template quality update".into(), context.path.clone());
            }
            return self.problem(format!("{}.event", context.path), "missing");
        };
        let kind = NoticeKind::TemplateStatusUpdate {
            template: template_ref(value),
            category: lower(value.get("message_template_category")),
            event,
            reason: text(value.get("reason")).filter(|r| !r.eq_ignore_ascii_case("none")),
        };
        self.notice(context, None, kind);
    }

    fn account_update(&mut self, value: &Map<String, Value>, context: &Context) {
        let Some(event) = text(value.get("event")) else {
            return self.problem(format!("{}.event", context.path), "missing");
        };
        let path = &context.path;
        let kind = match &*event {
            "VOLUME_BASED_PRICING_TIER_UPDATE" => {
                let Some(info) = value.get("volume_tier_info").and_then(Value::as_object) else {
                    return self.problem(
                        format!("{path}.volume_tier_info"),
                        "missing or not an object",
                    );
                };
                let at = info.get("tier_update_time").and_then(|t| unix_time(t).ok());
                let kind = NoticeKind::VolumeTierUpdate {
                    category: lower(info.get("pricing_category")),
                    tier: text(info.get("tier")),
                    effective_month: text(info.get("effective_month")),
                    market: text(info.get("region")),
                };
                return self.notice(context, at, kind);
            }
            "AUTH_INTL_PRICE_ELIGIBILITY_UPDATE" => {
                let Some(info) = value
                    .get("auth_international_rate_eligibility")
                    .and_then(Value::as_object)
                else {
                    return self.problem(
                        format!("{path}.auth_international_rate_eligibility"),
                        "missing or not an object",
                    );
                };
                let exceptions = info
                    .get("exception_countries")
                    .and_then(Value::as_array)
                    .map(|countries| {
                        countries
                            .iter()
                            .filter_map(|c| {
                                Some(CountryStart {
                                    country: text(c.get("country_code"))?,
                                    start: c.get("start_time").and_then(|t| unix_time(t).ok()),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                NoticeKind::AuthInternationalEligibility {
                    start: info.get("start_time").and_then(|t| unix_time(t).ok()),
                    exceptions,
                }
            }
            "BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE" => match text(value.get("country")) {
                Some(country) => NoticeKind::PrimaryBusinessLocation { country },
                None => return self.problem(format!("{path}.country"), "missing"),
            },
            _ => NoticeKind::AccountUpdate { event },
        };
        self.notice(context, None, kind);
    }

    fn user_preferences(&mut self, value: &Map<String, Value>, context: &Context) {
        let business = value
            .get("metadata")
            .and_then(|m| m.get("phone_number_id"))
            .and_then(id_text);
        let path = &context.path;
        let Some(preferences) = self.array(value, "user_preferences", path) else {
            return self.problem(format!("{path}.user_preferences"), "missing");
        };
        for (k, preference) in preferences.iter().enumerate() {
            let path = format!("{path}.user_preferences[{k}]");
            let user = text(preference.get("wa_id")).or_else(|| text(preference.get("user_id")));
            let (Some(user), Some(category), Some(value)) = (
                user,
                text(preference.get("category")),
                text(preference.get("value")),
            ) else {
                self.problem(path, "needs wa_id (or user_id), category and value");
                continue;
            };
            let at = preference.get("timestamp").and_then(|t| unix_time(t).ok());
            let kind = NoticeKind::UserPreference {
                business: business.clone(),
                user,
                category,
                value,
            };
            self.notice(context, at, kind);
        }
    }
}

/// What a message inherits from its change.
struct Where<'v> {
    business: Option<&'v str>,
    value_path: &'v str,
    sole_contact: Option<&'v Map<String, Value>>,
}

/// Where a change sits and what its entry says.
struct Context {
    waba: Option<Box<str>>,
    time: Option<Timestamp>,
    path: String,
}

/// `parent.child`, where either may be empty (the document root, or a
/// problem with the value itself rather than one of its fields).
pub fn json_path(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (_, true) => parent.to_string(),
        (true, false) => child.to_string(),
        (false, false) => format!("{parent}.{child}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<WebhookItems, Problem> {
        parse_envelope(
            &serde_json::from_str(text).unwrap(),
            Origin { source: 0, line: 3 },
        )
    }

    const STATUS: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{
        "metadata":{"phone_number_id":"106540352242922"},
        "statuses":[{"id":"wamid.A","status":"delivered","timestamp":"1751364005","recipient_id":"5511999990000",
            "pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"authentication-international"}},
            {"id":"wamid.B","status":"deleted","timestamp":"1751364005"},
            {"id":"wamid.C","status":"played","timestamp":"soon"}]}}]}]}"#;

    #[test]
    fn statuses_keep_meta_pricing_and_report_the_rest() {
        let items = parse(STATUS).unwrap();
        assert_eq!(items.events.len(), 1);
        let EventKind::Status {
            detail: Some(detail),
            status,
            ..
        } = &items.events[0].kind
        else {
            panic!()
        };
        assert_eq!(*status, DeliveryStatus::Delivered);
        let pricing = detail.pricing.as_ref().unwrap();
        assert_eq!(
            &*pricing.category, "authentication_international",
            "both spellings read alike"
        );
        assert_eq!(pricing.pricing_model.as_deref(), Some("PMP"));
        assert_eq!(
            detail.recipient.as_ref().unwrap().to_string(),
            "+5511999990000"
        );
        assert_eq!(
            items.ignored,
            vec![Ignored {
                kind: "status deleted".into(),
                path: "entry[0].changes[0].value.statuses[1]".into()
            }]
        );
        assert_eq!(items.problems.len(), 1);
        assert_eq!(
            items.problems[0].path,
            "entry[0].changes[0].value.statuses[2].timestamp"
        );
    }

    /// Meta's Groups API status webhook (BSUID changelog, "Status messages
    /// webhooks for groups") and a message written in a group: counted as
    /// group traffic, never read as a 1:1 delivery to a user named by the
    /// group's id, nor as the sender opening their own window.
    #[test]
    fn group_statuses_and_group_messages_are_counted_not_metered() {
        let items = parse(r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{
            "metadata":{"phone_number_id":"1"},
            "contacts":[{"profile":{"name":"A"},"wa_id":"5511999990000","user_id":"BR.1"}],
            "messages":[{"from":"5511999990000","group_id":"Y2FwaV9ncm91cDox","id":"wamid.G1","timestamp":"1790000000","type":"text","text":{"body":"hi all"}}],
            "statuses":[
              {"id":"wamid.G2","status":"delivered","timestamp":"1790000100","recipient_id":"Y2FwaV9ncm91cDox","recipient_type":"group",
               "recipient_participant_id":"5511999990000","pricing":{"billable":false,"pricing_model":"PMP","type":"free_group_customer_service","category":"service"}},
              {"id":"wamid.G2","status":"read","timestamp":"1790000200","recipient_id":"Y2FwaV9ncm91cDox","recipient_type":"group",
               "recipient_participant_user_id":"BR.2"},
              {"id":"wamid.O","status":"delivered","timestamp":"1790000300","recipient_id":"5511999990000"}]}}]}]}"#)
        .unwrap();
        let ignored: Vec<(&str, &str)> = items
            .ignored
            .iter()
            .map(|i| (i.kind.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(
            ignored,
            [
                ("group message", "entry[0].changes[0].value.messages[0]"),
                (
                    "group status delivered",
                    "entry[0].changes[0].value.statuses[0]"
                ),
                ("group status read", "entry[0].changes[0].value.statuses[1]"),
            ]
        );
        assert!(items.problems.is_empty(), "{:?}", items.problems);
        assert_eq!(items.events.len(), 1, "the 1:1 status is still read");
        assert!(
            matches!(&items.events[0].kind, EventKind::Status { id, .. } if &**id == "wamid.O")
        );
    }

    #[test]
    fn a_referral_makes_an_ad_entry_point_and_the_phone_wins_over_the_bsuid() {
        let items = parse(r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{
            "metadata":{"phone_number_id":"1"},
            "messages":[{"from":"16315551181","from_user_id":"US.1349","id":"wamid.I","timestamp":1751364000,"type":"text",
                "referral":{"source_type":"ad","source_id":"9"}},
                {"from_user_id":"BR.77","id":"wamid.J","timestamp":1751364001,"type":"reaction"},
                {"from":"PHONE_NUMBER","id":"wamid.K","timestamp":1751364001,"type":"text"},
                {"from":"1","id":"wamid.L","timestamp":1751364001,"type":"system"}]}}]}]}"#)
        .unwrap();
        let users: Vec<String> = items
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Inbound {
                    user, entry_point, ..
                } => format!("{user} {entry_point:?}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(users, ["+16315551181 Some(Ad)", "BR.77 None"]);
        assert_eq!(
            items.problems[0].path,
            "entry[0].changes[0].value.messages[2].from"
        );
        assert_eq!(items.ignored[0].kind, "message type system");
    }

    #[test]
    fn a_body_that_is_not_a_whatsapp_envelope_is_refused_with_its_field() {
        assert_eq!(
            parse(r#"{"object":"page","entry":[]}"#).unwrap_err().path,
            "object"
        );
        assert_eq!(
            parse(r#"{"object":"whatsapp_business_account"}"#)
                .unwrap_err()
                .path,
            "entry"
        );
        assert_eq!(parse("[]").unwrap_err().path, "");
    }

    #[test]
    fn a_user_started_call_opens_the_window() {
        let items = parse(r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"calls","value":{
            "metadata":{"phone_number_id":"1"},
            "calls":[{"id":"wacid.1","from":"5511999990000","event":"connect","direction":"USER_INITIATED","timestamp":"1751364000"},
                     {"id":"wacid.1","from":"5511999990000","event":"terminate","direction":"USER_INITIATED","timestamp":"1751364100"}]}}]}]}"#)
        .unwrap();
        assert!(matches!(
            items.events[0],
            Event {
                kind: EventKind::Inbound {
                    kind: InboundKind::Call,
                    ..
                },
                ..
            }
        ));
        // The terminate is the call itself: never picked up, so it starts
        // (as far as the webhook says) when it ended, and lasts 0 s.
        let EventKind::Call(call) = &items.events[1].kind else {
            panic!("{:?}", items.events[1])
        };
        assert_eq!(
            (call.direction, call.duration_seconds, &call.status),
            (CallDirection::UserInitiated, 0, &CallStatus::Missed)
        );
        assert_eq!(items.events[1].at.as_second(), 1751364100);
        assert!(items.ignored.is_empty());
    }

    /// Meta's business-initiated terminate: the user is the callee (`to`),
    /// the call starts at `start_time` and lasts `duration`; a business
    /// call's `connect`, SIP and recording events and call statuses bill
    /// nothing and are reported as ignored.
    #[test]
    fn a_terminate_is_a_call_and_other_call_events_are_ignored() {
        let items = parse(r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"calls","value":{
            "metadata":{"phone_number_id":"1"},
            "calls":[{"id":"wacid.2","to":"254700000001","from":"15550001","event":"connect","direction":"BUSINESS_INITIATED","timestamp":"1785000000"},
                     {"id":"wacid.2","to":"254700000001","from":"15550001","event":"terminate","direction":"BUSINESS_INITIATED","timestamp":"1785000090",
                      "start_time":"1785000010","end_time":"1785000090","duration":80,"status":"FAILED","errors":[{"code":138021}]},
                     {"id":"wacid.3","event":"call_recording_available","timestamp":"1785000100"}],
            "statuses":[{"id":"wacid.2","type":"call","status":"RINGING","timestamp":"1785000001","recipient_id":"254700000001"}]}}]}]}"#)
        .unwrap();
        let [
            Event {
                at,
                kind: EventKind::Call(call),
                ..
            },
        ] = &items.events[..]
        else {
            panic!("{:?}", items.events)
        };
        assert_eq!(at.as_second(), 1785000010);
        assert_eq!(call.user.to_string(), "+254700000001");
        assert_eq!(
            (
                call.direction,
                call.duration_seconds,
                &call.status,
                call.error
            ),
            (
                CallDirection::BusinessInitiated,
                80,
                &CallStatus::Failed,
                Some(138021)
            )
        );
        let ignored: Vec<&str> = items.ignored.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(
            ignored,
            [
                "call status RINGING",
                "call business_initiated connect",
                "call call_recording_available"
            ]
        );
    }

    /// Any JSON value, nested a few levels, with keys drawn from the
    /// envelope's vocabulary so that the generator reaches deep paths.
    fn json() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "object",
            "entry",
            "changes",
            "field",
            "value",
            "messages",
            "statuses",
            "metadata",
            "phone_number_id",
            "from",
            "id",
            "timestamp",
            "type",
            "referral",
            "status",
            "pricing",
            "category",
            "billable",
            "conversation",
            "origin",
            "event",
            "calls",
            "direction",
            "user_preferences",
            "volume_tier_info",
            "recipient_id",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(vec![
                "whatsapp_business_account",
                "messages",
                "calls",
                "account_update",
                "delivered",
                "played",
                "connect",
                "USER_INITIATED",
                "1751364000",
                "5511999990000",
                "BR.1",
                "",
                "system",
                "VOLUME_BASED_PRICING_TIER_UPDATE",
            ])
            .prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|pairs| Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_envelope_shaped_values(body in json()) {
            // Wrap the generated value as an envelope half the time, so that
            // the entry/changes walk is exercised, not just the refusal.
            for candidate in [body.clone(), serde_json::json!({"object": WHATSAPP_OBJECT, "entry": [body]})] {
                let _ = parse_envelope(&candidate, Origin::default());
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in ".{0,200}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = parse_envelope(&value, Origin::default());
            }
        }
    }
}
