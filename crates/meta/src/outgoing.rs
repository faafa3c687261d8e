//! Meta's webhook bodies written from the engine's view: the other
//! direction of [`crate::webhook`], for `wameter gen --webhooks` (traffic
//! for benchmarks and demos shaped exactly as Meta posts it) and the
//! sandbox (which must post what Meta would).
//!
//! The `pricing` and `conversation` objects of a status come from the
//! engine's [`Charge`] for the message, shaped for the era and Graph API
//! version as Meta documents them (domain rules §6.7, §7.1, §8.3):
//! - both objects only on `sent` and on the status that charges (the
//!   first `delivered`, else `read`); `errors` only on `failed`;
//! - CBP: `pricing {billable, pricing_model: "CBP", category}` and
//!   `conversation {id, origin {type}}`, with `expiration_timestamp` on
//!   `sent` only;
//! - PMP: `pricing {billable, pricing_model: "PMP", type, category}`; the
//!   `conversation` object on v24.0 and later only inside a free entry point
//!   window (its id per window), before v24.0 on every message (its id per
//!   message).
//!
//! Where Meta does not document a value, the choice is ours and said here:
//! a CBP conversation's `expiration_timestamp` is its window's end as the
//! engine computed it (24 h from the opening delivery; Meta counts from
//! the opening message, seconds apart).

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use wameter_core::category::PricingModel;
use wameter_core::charge::Charge;
use wameter_core::event::{CallDirection, EntryPoint, MetaCost};
use wameter_core::window::DAY;

/// The Graph API version from which a PMP status carries `conversation`
/// only inside a free entry point window.
pub const CONVERSATION_ONLY_IN_FEP_FROM: u32 = 24;

/// The business number a webhook comes from.
#[derive(Clone, Copy, Debug)]
pub struct Sender<'a> {
    /// WhatsApp Business Account id (`entry[].id`).
    pub waba: &'a str,
    /// Business phone number id (`metadata.phone_number_id`).
    pub phone_number_id: &'a str,
    /// The number as displayed (`metadata.display_phone_number`).
    pub display_phone_number: &'a str,
}

impl Sender<'_> {
    /// The whole POST body around one `value`, as Meta sends it (one
    /// entry, one change, field `messages`).
    pub fn envelope(&self, value: Value) -> Value {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba, "changes": [{"field": "messages", "value": value}]}]
        })
    }

    fn value(&self) -> Map<String, Value> {
        let mut value = Map::new();
        value.insert("messaging_product".into(), json!("whatsapp"));
        value.insert("metadata".into(), json!({"display_phone_number": self.display_phone_number, "phone_number_id": self.phone_number_id}));
        value
    }

    /// A user's text message (`messages[]` with `contacts[]`); an entry
    /// point adds the `referral` object Meta attaches to a click-to-WhatsApp
    /// ad or Page button message.
    pub fn user_text(&self, user: &UserMessage<'_>) -> Value {
        let mut message = match user.content {
            Some(content) => Value::Object(content.clone()),
            None => json!({"type": "text", "text": {"body": user.text}}),
        };
        message["from"] = json!(user.wa_id);
        message["id"] = json!(user.id);
        message["timestamp"] = json!(user.at.as_second().to_string());
        if let Some(user_id) = user.user_id {
            message["from_user_id"] = json!(user_id);
        }
        // A referral given with the content (an ad's own fields) stands.
        if let (Some(entry_point), None) = (user.entry_point, message.get("referral")) {
            let source_type = match entry_point {
                EntryPoint::Ad => "ad",
                EntryPoint::PageCta => "post",
            };
            message["referral"] = json!({
                "source_url": "https://fb.me/wameter",
                "source_id": "0",
                "source_type": source_type,
                "headline": "wameter",
                "body": "",
                "ctwa_clid": format!("ctwa.{}", user.id)
            });
        }
        let mut value = self.value();
        let mut contact = json!({"profile": {"name": user.name}, "wa_id": user.wa_id});
        if let Some(user_id) = user.user_id {
            contact["user_id"] = json!(user_id);
        }
        value.insert("contacts".into(), json!([contact]));
        value.insert("messages".into(), json!([message]));
        self.envelope(Value::Object(value))
    }

    /// A status of a business message (`statuses[]`).
    pub fn status(&self, status: &StatusReport<'_>) -> Value {
        let mut object = json!({
            "id": status.id,
            "status": status.status,
            "timestamp": status.at.as_second().to_string(),
            "recipient_id": status.recipient_wa_id,
        });
        if let Some(user_id) = status.recipient_user_id {
            object["recipient_user_id"] = json!(user_id);
        }
        // Since the BSUID rollout Meta adds the recipient's contact to a
        // status, as to a message (its business-scoped user ids page).
        let contact = status.recipient_user_id.map(|user_id| {
            let country = user_id.split_once('.').map_or("", |(country, _)| country);
            json!([{"profile": {"country_code": country}, "wa_id": status.recipient_wa_id, "user_id": user_id}])
        });
        if let Some((charge, billing)) = status.charge {
            if let Some(conversation) = conversation_object(
                charge,
                billing,
                status.status == "sent",
                status.graph_version,
            ) {
                object["conversation"] = conversation;
            }
            object["pricing"] = pricing_object(charge);
            if status.marketing_lite {
                object["pricing"]["category"] = json!("marketing_lite");
                if let Some(origin) = object.pointer_mut("/conversation/origin/type") {
                    *origin = json!("marketing_lite");
                }
                if let (Some(cost), "delivered" | "read") = (status.cost, status.status) {
                    // A JSON number, as Meta writes it.
                    let amount = serde_json::from_str::<Value>(&cost.amount.to_string())
                        .unwrap_or_else(|_| json!(cost.amount.to_string()));
                    object["pricing"]["cost"] =
                        json!({"amount": amount, "currency": cost.currency.code()});
                }
            }
        }
        if let Some(code) = status.error {
            let (title, details) = status_error_text(code);
            object["errors"] = json!([{"code": code, "title": title, "message": title, "error_data": {"details": details}}]);
        }
        let mut value = self.value();
        if let Some(contact) = contact {
            value.insert("contacts".into(), contact);
        }
        value.insert("statuses".into(), json!([object]));
        self.envelope(Value::Object(value))
    }

    /// A call's `terminate` event (field `calls`), as Meta sends it when a
    /// call ends: `start_time`, `end_time` and `duration` only when it was
    /// picked up (Meta's calling webhook reference).
    pub fn call_terminate(&self, call: &CallEnd<'_>) -> Value {
        let (from, to) = match call.direction {
            CallDirection::BusinessInitiated => (self.display_phone_number, call.user_wa_id),
            CallDirection::UserInitiated => (call.user_wa_id, self.display_phone_number),
        };
        let mut object = json!({
            "id": call.id,
            "from": from,
            "to": to,
            "event": "terminate",
            "timestamp": call.ended_at.as_second().to_string(),
            "direction": call.direction.as_str().to_ascii_uppercase(),
            "status": call.status.to_ascii_uppercase(),
        });
        if let Some(opaque) = call.opaque {
            object["biz_opaque_callback_data"] = json!(opaque);
        }
        if call.duration_seconds > 0 {
            object["start_time"] = json!(call.started_at.as_second().to_string());
            object["end_time"] = json!(call.ended_at.as_second().to_string());
            object["duration"] = json!(call.duration_seconds);
        }
        self.calls_change("calls", object, call.user_wa_id)
    }
}

impl Sender<'_> {
    /// A call's `connect` event (field `calls`): a user calling (SDP offer),
    /// or a user answering a business's call (SDP answer).
    pub fn call_connect(
        &self,
        id: &str,
        user_wa_id: &str,
        direction: CallDirection,
        at: Timestamp,
    ) -> Value {
        let (from, to, sdp_type) = match direction {
            CallDirection::BusinessInitiated => (self.display_phone_number, user_wa_id, "answer"),
            CallDirection::UserInitiated => (user_wa_id, self.display_phone_number, "offer"),
        };
        let call = json!({
            "id": id,
            "from": from,
            "to": to,
            "event": "connect",
            "timestamp": at.as_second().to_string(),
            "direction": direction.as_str().to_ascii_uppercase(),
            "session": {"sdp_type": sdp_type, "sdp": "v=0\r\no=- 0 2 IN IP4 127.0.0.1\r\ns=wameter sandbox\r\nt=0 0\r\n"},
        });
        self.calls_change("calls", call, user_wa_id)
    }

    /// A business call's status (`statuses[]` of type `call`, field
    /// `calls`): `RINGING`, `ACCEPTED` or `REJECTED`.
    pub fn call_status(&self, id: &str, user_wa_id: &str, status: &str, at: Timestamp) -> Value {
        let status = json!({"id": id, "type": "call", "status": status, "timestamp": at.as_second().to_string(), "recipient_id": user_wa_id});
        self.calls_change("statuses", status, user_wa_id)
    }

    fn calls_change(&self, key: &str, item: Value, user_wa_id: &str) -> Value {
        let mut value = self.value();
        value.insert(
            "contacts".into(),
            json!([{"profile": {"name": "User"}, "wa_id": user_wa_id}]),
        );
        value.insert(key.into(), json!([item]));
        let mut body = self.envelope(Value::Object(value));
        body["entry"][0]["changes"][0]["field"] = json!("calls");
        body
    }
}

/// A call that ended, for [`Sender::call_terminate`].
#[derive(Clone, Copy, Debug)]
pub struct CallEnd<'a> {
    /// The call id (`wacid…`).
    pub id: &'a str,
    /// The user's number without `+`.
    pub user_wa_id: &'a str,
    /// Who placed it.
    pub direction: CallDirection,
    /// When it was picked up (or placed, if it never was).
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Seconds connected; 0 = never picked up.
    pub duration_seconds: u32,
    /// `completed` or `failed`, as Meta ends calls.
    pub status: &'a str,
    /// The business's `biz_opaque_callback_data`, echoed.
    pub opaque: Option<&'a str>,
}

/// A user's message, for [`Sender::user_text`].
#[derive(Clone, Copy, Debug)]
pub struct UserMessage<'a> {
    /// The user's number without `+` (Meta's `wa_id`).
    pub wa_id: &'a str,
    /// The user's business-scoped user id (`contacts[].user_id`,
    /// `from_user_id`), in webhooks since Meta's 2026 BSUID rollout.
    pub user_id: Option<&'a str>,
    /// Profile name.
    pub name: &'a str,
    /// The wamid.
    pub id: &'a str,
    /// When it was sent (Meta sends whole seconds).
    pub at: Timestamp,
    /// The text, for a text message.
    pub text: &'a str,
    /// Any other kind, in Meta's message shape without `from`, `id` and
    /// `timestamp` (`{"type": "image", "image": {…}, "context": {…}}`):
    /// sent as given instead of the text.
    pub content: Option<&'a Map<String, Value>>,
    /// Set when the user came through an ad or a Page button.
    pub entry_point: Option<EntryPoint>,
}

/// A status of a business message, for [`Sender::status`].
#[derive(Clone, Copy, Debug)]
pub struct StatusReport<'a> {
    /// The wamid.
    pub id: &'a str,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: &'a str,
    /// When (whole seconds).
    pub at: Timestamp,
    /// The recipient without `+`.
    pub recipient_wa_id: &'a str,
    /// The recipient's business-scoped user id (`recipient_user_id`).
    pub recipient_user_id: Option<&'a str>,
    /// The engine's charge for the message when this status carries the
    /// billing objects (`sent` and the charging status), with the windows
    /// it needs; `None` otherwise.
    pub charge: Option<(&'a Charge, Billing)>,
    /// Meta's error code of a failure (titles from [`status_error_text`]).
    pub error: Option<u32>,
    /// Graph API version the app subscribed with (e.g. 24).
    pub graph_version: u32,
    /// Sent through the Marketing Messages API: Meta names the category
    /// `marketing_lite` (its get-started page).
    pub marketing_lite: bool,
    /// What Meta charged a max-price send (`pricing.cost`, on `delivered`
    /// and `read` only).
    pub cost: Option<MetaCost>,
}

/// Windows the `conversation` object names that a charge does not carry
/// directly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Billing {
    /// When the message's conversation (CBP) or free entry point window
    /// (PMP) ends, if it is in one.
    pub conversation_expires_at: Option<Timestamp>,
}

impl Billing {
    /// The window end the engine recorded for the charge's conversation.
    pub fn of(charge: &Charge) -> Billing {
        let id = charge.conversation_id.as_deref();
        // The windows are in the explained trail: an engine that does not
        // explain (`Engine::explain`) leaves a CBP member's expiry unknown.
        let explained = charge.trail.explained();
        let expires = match charge.pricing_model {
            PricingModel::Cbp => explained
                .and_then(|explained| {
                    explained
                        .open_conversations
                        .iter()
                        .find(|(open, ..)| Some(open.as_str()) == id)
                })
                .map(|(.., window)| window.closes_at)
                .or_else(|| charge.opens_conversation.then(|| charge.delivered_at + DAY)),
            PricingModel::Pmp => explained
                .and_then(|explained| explained.free_entry_point)
                .map(|window| window.closes_at),
        };
        Billing {
            conversation_expires_at: expires,
        }
    }
}

/// Meta's `pricing` object for a charge.
pub fn pricing_object(charge: &Charge) -> Value {
    match charge.pricing_model {
        PricingModel::Cbp => {
            json!({"billable": charge.billable, "pricing_model": "CBP", "category": charge.category.as_str()})
        }
        PricingModel::Pmp => json!({
            "billable": charge.billable,
            "pricing_model": "PMP",
            "type": charge.pricing_type.as_str(),
            "category": charge.category.as_str()
        }),
    }
}

/// Meta's `conversation` object for a charge, if the status carries one.
pub fn conversation_object(
    charge: &Charge,
    billing: Billing,
    on_sent: bool,
    graph_version: u32,
) -> Option<Value> {
    let in_fep = charge.pricing_type == wameter_core::category::PricingType::FreeEntryPoint;
    let (id, origin) = match charge.pricing_model {
        PricingModel::Cbp => (charge.conversation_id.clone()?, charge.category.as_str()),
        PricingModel::Pmp if in_fep => (charge.conversation_id.clone()?, "referral_conversion"),
        PricingModel::Pmp if graph_version < CONVERSATION_ONLY_IN_FEP_FROM => (
            format!("conv.{}", charge.message_id),
            charge.category.as_str(),
        ),
        PricingModel::Pmp => return None,
    };
    let mut conversation = json!({"id": id, "origin": {"type": origin}});
    if on_sent && let Some(expires) = billing.conversation_expires_at {
        conversation["expiration_timestamp"] = json!(expires.as_second().to_string());
    }
    Some(conversation)
}

/// Meta's title and details for a status error code (Cloud API error-code
/// reference), for the codes wameter writes; others get a generic text.
pub fn status_error_text(code: u32) -> (&'static str, &'static str) {
    match code {
        131_047 => (
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
        131_026 => (
            "Message undeliverable",
            "Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number.",
        ),
        131_049 => (
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        ),
        131_050 => (
            "User has stopped marketing messages",
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        ),
        _ => (
            "Message failed to send",
            "Message failed to send because of an unknown error.",
        ),
    }
}

/// A display number for a business phone number id, shaped like Meta's
/// test numbers (`1555…`): for senders that know only the id.
pub fn test_display_number(phone_number_id: &str) -> String {
    format!(
        "1555{}",
        &phone_number_id[phone_number_id.len().saturating_sub(7)..]
    )
}

/// A webhook POST body for one change of a non-message field
/// (`template_category_update`, …), as Meta sends it: the WABA's entry with
/// the instant it was written.
pub fn change(waba: &str, at: Timestamp, field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "time": at.as_second(), "changes": [{"field": field, "value": value}]}]
    })
}

/// A message id shaped as Meta's: `wamid.` and the base64 of a small
/// protobuf-like record — the user's number, a direction byte (0x11 for a
/// business's message, 0x12 for a user's) and an uppercase hex id (18
/// characters out, 20 in), as every real wamid in the fixtures decodes.
/// `sequence` makes it unique: the hex id is a bijective mix of it, so two
/// sequences never give one id, yet ids do not look consecutive (apps that
/// take wamids as opaque keys meet what they will meet in production).
pub fn wamid(user: &str, inbound: bool, sequence: u64) -> String {
    use base64::Engine;
    // splitmix64's finaliser: a bijection on u64.
    let mut mixed = sequence.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^= mixed >> 31;
    let (direction, id) = if inbound {
        (0x12, format!("3A00{mixed:016X}"))
    } else {
        (0x11, format!("5A{mixed:016X}"))
    };
    let user = &user.as_bytes()[..user.len().min(64)];
    let mut record = vec![0x1c, 0x18, user.len() as u8];
    record.extend_from_slice(user);
    record.extend_from_slice(&[0x15, 0x02, 0x00, direction, 0x18, id.len() as u8]);
    record.extend_from_slice(id.as_bytes());
    record.push(0x00);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(record)
    )
}

/// The bytes of a webhook body as Meta writes them, which are the bytes
/// it signs: compact JSON with every character outside ASCII escaped as
/// `\uXXXX` (lowercase hex, UTF-16 code units, so an emoji is a surrogate
/// pair) and `/` as `\/`, and keys in Meta's order ([`META_KEY_ORDER`]).
///
/// Why it matters: SDKs that re-serialise the parsed body before checking
/// `X-Hub-Signature-256` (whatsapp-api-js does) rebuild exactly this form;
/// raw UTF-8 makes every message with an accent or an emoji fail their
/// check, though it is the same JSON.
pub fn webhook_text(body: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, MetaFormatter);
    // Writing a `Value` into a Vec cannot fail: keys are strings and the
    // writer never refuses bytes.
    if serde::Serialize::serialize(&InMetaOrder(body), &mut serializer).is_err() {
        return body.to_string();
    }
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_else(|_| body.to_string())
}

/// The order of keys in Meta's webhook objects, one list for all of them
/// (the majority orders of different objects never conflict), taken
/// from the 123 webhook payloads in `crates/log/tests/fixtures` (Meta's
/// documentation and SDKs' captures): `object` before `entry`, `value`
/// before `field`; a message's `from`, `id`, `timestamp`, then its content
/// and `type`; a status's `id`, `status`, `timestamp`, `recipient_id`,
/// `conversation`, `pricing`; `billable`, `pricing_model`, `type`,
/// `category`. 1,000 of the fixtures' 1,080 objects list their keys in
/// this order; the rest disagree among themselves (some SDKs' fixtures
/// sort keys by name; Meta's examples put a message's content before or
/// after `type` by kind) — `scripts/webhook-key-order.py` counts them.
/// Keys not listed come after, by name.
pub const META_KEY_ORDER: &[&str] = &[
    "object",
    "entry",
    "context",
    "caption",
    "filename",
    "mime_type",
    "sha256",
    "from",
    "id",
    "time",
    "changes",
    "value",
    "field",
    "messaging_product",
    "metadata",
    "display_phone_number",
    "phone_number_id",
    "profile",
    "name",
    "first_name",
    "last_name",
    "formatted_name",
    "username",
    "country_code",
    "source_url",
    "source_id",
    "source_type",
    "headline",
    "body",
    "media_type",
    "image_url",
    "video_url",
    "thumbnail_url",
    "phone",
    "wa_id",
    "user_id",
    "parent_user_id",
    "status",
    "timestamp",
    "expiration_timestamp",
    "recipient_id",
    "recipient_user_id",
    "message_id",
    "emoji",
    "catalog_id",
    "payload",
    "text",
    "errors",
    "reaction",
    "system",
    "location",
    "billable",
    "pricing_model",
    "type",
    "category",
    "product_items",
    "product_retailer_id",
    "quantity",
    "item_price",
    "currency",
    "contacts",
    "messages",
    "statuses",
    "interactive",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "button",
    "order",
    "referral",
    "conversation",
    "origin",
    "pricing",
    "code",
    "title",
    "message",
    "error_data",
    "details",
    "href",
];

/// A `Value` that serialises its objects' keys in [`META_KEY_ORDER`]
/// (serde_json's own maps are sorted by name).
struct InMetaOrder<'a>(&'a Value);

impl serde::Serialize for InMetaOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let rank = |key: &str| {
                    META_KEY_ORDER
                        .iter()
                        .position(|known| *known == key)
                        .unwrap_or(META_KEY_ORDER.len())
                };
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|(a, _), (b, _)| (rank(a), *a).cmp(&(rank(b), *b)));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &InMetaOrder(value))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&InMetaOrder(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// serde_json's compact formatter, but for the characters Meta escapes.
struct MetaFormatter;

impl serde_json::ser::Formatter for MetaFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            if ch.is_ascii() && ch != '/' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..index])?;
            if ch == '/' {
                writer.write_all(b"\\/")?;
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
            start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wameter_core::event::Origin;

    const SENDER: Sender<'static> = Sender {
        waba: "102290129340398",
        phone_number_id: "106540352242922",
        display_phone_number: "15550783881",
    };

    #[test]
    fn a_user_message_reads_back_as_the_inbound_it_describes() {
        let at: Timestamp = "2026-02-10T10:00:00Z".parse().unwrap();
        let body = SENDER.user_text(&UserMessage {
            wa_id: "5511999990001",
            user_id: Some("BR.1502"),
            name: "Ana",
            id: "wamid.in-1",
            at,
            text: "hi",
            content: None,
            entry_point: Some(EntryPoint::Ad),
        });
        let items = crate::parse_envelope(&body, Origin::default()).unwrap();
        assert!(items.problems.is_empty(), "{:?}", items.problems);
        assert_eq!(items.events.len(), 1);
        match &items.events[0].kind {
            wameter_core::event::EventKind::Inbound {
                business,
                user,
                entry_point,
                id,
                ..
            } => {
                assert_eq!(&**business, "106540352242922");
                assert_eq!(user.to_string(), "+5511999990001");
                assert_eq!(*entry_point, Some(EntryPoint::Ad));
                assert_eq!(id.as_deref(), Some("wamid.in-1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(items.events[0].at, at);
    }

    #[test]
    fn a_failed_status_carries_its_error_and_no_billing() {
        let at: Timestamp = "2026-02-10T10:00:00Z".parse().unwrap();
        let body = SENDER.status(&StatusReport {
            id: "wamid.out-1",
            status: "failed",
            at,
            recipient_wa_id: "5511999990001",
            recipient_user_id: None,
            charge: None,
            error: Some(131_047),
            graph_version: 24,
            marketing_lite: false,
            cost: None,
        });
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["errors"][0]["code"], 131_047);
        assert!(status.get("pricing").is_none() && status.get("conversation").is_none());
        let items = crate::parse_envelope(&body, Origin::default()).unwrap();
        assert!(items.problems.is_empty(), "{:?}", items.problems);
    }

    #[test]
    fn webhook_text_escapes_as_meta_does_and_reads_back_unchanged() {
        let body = json!({"text": {"body": "Olá, tudo bem? नमस्ते 🙂 a/b"}, "n": 1});
        let text = webhook_text(&body);
        assert!(text.is_ascii(), "{text}");
        assert!(text.contains(r"Ol\u00e1"), "{text}");
        assert!(text.contains(r"\u0928\u092e"), "{text}");
        assert!(
            text.contains(r"\ud83d\ude42"),
            "an emoji is a surrogate pair: {text}"
        );
        assert!(text.contains(r"a\/b"), "{text}");
        assert!(
            !text.contains(' ') || text.contains("tudo bem"),
            "compact: {text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), body);
        // Plain ASCII is what serde_json writes.
        let ascii = json!({"a": "b \" \\ \n"});
        assert_eq!(webhook_text(&ascii), ascii.to_string());
    }

    #[test]
    fn webhook_keys_come_in_metas_order() {
        // Meta's documented status webhook, keys as Meta writes them.
        let meta = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.X","timestamp":"1749416383","text":{"body":"Does it come in another color?"},"type":"text"}],"statuses":[{"id":"wamid.Y","status":"delivered","timestamp":"1750263773","recipient_id":"16505551234","conversation":{"id":"c","expiration_timestamp":"1750350173","origin":{"type":"utility"}},"pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}}]},"field":"messages"}]}]}"#;
        let parsed: Value = serde_json::from_str(meta).unwrap();
        assert_eq!(webhook_text(&parsed), meta);
        // Unknown keys after the known ones, by name.
        assert_eq!(
            webhook_text(&json!({"zeta": 1, "alpha": 2, "id": 3})),
            r#"{"id":3,"alpha":2,"zeta":1}"#
        );
    }

    #[test]
    fn wamids_decode_as_metas_do_and_never_repeat() {
        use base64::Engine;
        let id = wamid("16503879439", false, 7);
        let record = base64::engine::general_purpose::STANDARD
            .decode(id.strip_prefix("wamid.").unwrap())
            .unwrap();
        assert_eq!(&record[..3], &[0x1c, 0x18, 11]);
        assert_eq!(&record[3..14], b"16503879439");
        assert_eq!(&record[14..20], &[0x15, 0x02, 0x00, 0x11, 0x18, 18]);
        assert!(
            record[20..38]
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        );
        assert_eq!(record[38..], [0x00]);
        let inbound = wamid("16503879439", true, 7);
        assert!(
            inbound.starts_with("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz"),
            "{inbound}"
        );
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|n| wamid("5511999990000", false, n))
            .collect();
        assert_eq!(ids.len(), 10_000);
    }
}
