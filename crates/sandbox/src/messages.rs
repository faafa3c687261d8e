//! `POST /{version}/{phone_number_id}/messages` bodies: what Meta accepts,
//! read into what the sandbox needs (the recipient, and whether the
//! message is a template or free-form), with Meta's errors for the rest.

use serde_json::Value;
use wameter_core::event::UserId;

use wameter_meta::graph::GraphError;

/// A send request, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// A message to a user.
    Message(Message),
    /// `{"status": "read", "message_id": …}`: mark a user's message read.
    MarkRead {
        /// The user's message.
        message_id: String,
    },
}

/// A message to a user.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// `to` as the app wrote it (echoed as `contacts[].input`).
    pub input: String,
    /// The recipient.
    pub user: UserId,
    /// `type` (`text`, `template`, `image`, …).
    pub kind: String,
    /// Set for `type: template`.
    pub template: Option<TemplateUse>,
}

/// The template a message names.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateUse {
    /// `template.name`.
    pub name: String,
    /// `template.language.code`.
    pub language: String,
    /// `template.components` as sent.
    pub components: Option<Value>,
}

/// Media message types; the sandbox takes them by `link` (it has no
/// uploaded media to refer to by `id`).
const MEDIA: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// Interactive message types Meta documents.
const INTERACTIVE: [&str; 13] = [
    "button", "list", "cta_url", "product", "product_list", "catalog_message", "flow", "location_request_message",
    "address_message", "order_details", "order_status", "call_permission_request", "voice_call",
];

fn object<'a>(body: &'a Value, field: &str) -> Result<&'a serde_json::Map<String, Value>, GraphError> {
    match body.get(field) {
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(GraphError::invalid(format!("{field} must be an object"))),
        None => Err(GraphError::required(field)),
    }
}

fn text<'a>(object: &'a serde_json::Map<String, Value>, field: &str, path: &str) -> Result<&'a str, GraphError> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(GraphError::invalid(format!("{path}.{field} must be a string"))),
        None => Err(GraphError::required(&format!("{path}['{field}']"))),
    }
}

/// Reads a send body as Meta would, or says what Meta would say.
pub fn parse(body: &Value) -> Result<Request, GraphError> {
    if !body.is_object() {
        return Err(GraphError::invalid("the body must be a JSON object"));
    }
    match body.get("messaging_product").and_then(Value::as_str) {
        Some("whatsapp") => {}
        Some(other) => return Err(GraphError::invalid(format!("messaging_product `{other}`: must be whatsapp"))),
        None => return Err(GraphError::required("messaging_product")),
    }
    if body.get("status").and_then(Value::as_str) == Some("read") {
        let message_id = body.get("message_id").and_then(Value::as_str).ok_or_else(|| GraphError::required("message_id"))?;
        return Ok(Request::MarkRead { message_id: message_id.into() });
    }
    let input = body.get("to").and_then(Value::as_str).ok_or_else(|| GraphError::required("to"))?;
    let user = UserId::parse(input).map_err(|e| GraphError::invalid(format!("to: {e}")))?;
    if let Some(kind) = body.get("recipient_type").and_then(Value::as_str) {
        if kind != "individual" {
            return Err(GraphError::invalid(format!("recipient_type `{kind}`: the sandbox sends to individuals only")));
        }
    }
    // Without `type`, Meta defaults to text; its own examples also leave
    // it out when the body holds one other kind of content (a list reply),
    // so that content names the type.
    let inferred = || {
        let mut kinds = ["text", "template", "reaction", "interactive", "location", "contacts"].into_iter().chain(MEDIA).filter(|k| body.get(k).is_some());
        match (kinds.next(), kinds.next()) {
            (Some(kind), None) => kind,
            _ => "text",
        }
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_else(inferred);
    let mut template = None;
    match kind {
        "text" => {
            let body_text = text(object(body, "text")?, "body", "text")?;
            if body_text.trim().is_empty() {
                return Err(GraphError::invalid("text.body is empty"));
            }
            if body_text.chars().count() > 4096 {
                return Err(GraphError::invalid("text.body is longer than 4096 characters"));
            }
        }
        "template" => {
            let object = object(body, "template")?;
            let name = text(object, "name", "template")?;
            let language = match object.get("language") {
                Some(Value::Object(language)) => text(language, "code", "template.language")?,
                Some(_) => return Err(GraphError::invalid("template.language must be an object")),
                None => return Err(GraphError::required("template['language']")),
            };
            template = Some(TemplateUse { name: name.into(), language: language.into(), components: object.get("components").cloned() });
        }
        "reaction" => {
            let reaction = object(body, "reaction")?;
            text(reaction, "message_id", "reaction")?;
            text(reaction, "emoji", "reaction")?;
        }
        "interactive" => {
            let interactive = object(body, "interactive")?;
            let kind = text(interactive, "type", "interactive")?;
            if !INTERACTIVE.contains(&kind) {
                return Err(GraphError::invalid(format!("interactive.type `{kind}`: must be one of {}", INTERACTIVE.join(", "))));
            }
            if !interactive.get("action").is_some_and(Value::is_object) {
                return Err(GraphError::required("interactive['action']"));
            }
        }
        "location" => {
            let location = object(body, "location")?;
            for field in ["latitude", "longitude"] {
                if !location.get(field).is_some_and(|v| v.is_number() || v.is_string()) {
                    return Err(GraphError::required(&format!("location['{field}']")));
                }
            }
        }
        "contacts" => {
            if body.get("contacts").and_then(Value::as_array).is_none_or(Vec::is_empty) {
                return Err(GraphError::required("contacts"));
            }
        }
        media if MEDIA.contains(&media) => {
            let object = object(body, media)?;
            match (object.get("link").and_then(Value::as_str), object.get("id")) {
                (Some(link), _) if link.starts_with("http://") || link.starts_with("https://") => {}
                (Some(link), _) => return Err(GraphError::invalid(format!("{media}.link `{link}`: must be an http(s) URL"))),
                (None, Some(_)) => {
                    return Err(GraphError::invalid(format!(
                        "{media}.id: the sandbox has no uploaded media; send {media} by link"
                    )));
                }
                (None, None) => return Err(GraphError::required(&format!("{media}['link']"))),
            }
        }
        other => {
            return Err(GraphError::invalid(format!(
                "type `{other}`: must be text, template, interactive, reaction, location, contacts, {}",
                MEDIA.join(", ")
            )));
        }
    }
    Ok(Request::Message(Message { input: input.into(), user, kind: kind.into(), template }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(body: Value) -> Result<Message, GraphError> {
        match parse(&body)? {
            Request::Message(message) => Ok(message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_defaults_and_recipient() {
        let m = message(json!({"messaging_product": "whatsapp", "to": "+55 11 99999-0000", "text": {"body": "hi"}})).unwrap();
        assert_eq!((m.kind.as_str(), m.user.to_string().as_str(), m.template), ("text", "+5511999990000", None));
    }

    #[test]
    fn missing_fields_are_named() {
        let error = message(json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "text"})).unwrap_err();
        assert_eq!(error.message, "(#100) The parameter text is required.");
        let error = message(json!({"to": "15550001111", "text": {"body": "x"}})).unwrap_err();
        assert_eq!(error.message, "(#100) The parameter messaging_product is required.");
        let error = message(json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "template", "template": {"name": "x"}})).unwrap_err();
        assert_eq!(error.message, "(#100) The parameter template['language'] is required.");
    }

    #[test]
    fn a_missing_type_is_read_from_the_content() {
        let list = json!({"messaging_product": "whatsapp", "to": "15550001111", "interactive": {"type": "list", "action": {}}});
        assert_eq!(message(list).unwrap().kind, "interactive");
        let neither = json!({"messaging_product": "whatsapp", "to": "15550001111"});
        assert_eq!(message(neither).unwrap_err().message, "(#100) The parameter text is required.");
    }

    #[test]
    fn media_only_by_link() {
        let by_link = json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "image", "image": {"link": "https://x/a.png"}});
        assert_eq!(message(by_link).unwrap().kind, "image");
        let by_id = json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "image", "image": {"id": "1"}});
        assert!(message(by_id).unwrap_err().details.contains("by link"));
    }

    #[test]
    fn templates_and_read_receipts() {
        let m = message(json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}}}))
        .unwrap();
        assert_eq!(m.template.unwrap().language, "en_US");
        let read = parse(&json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"})).unwrap();
        assert_eq!(read, Request::MarkRead { message_id: "wamid.1".into() });
    }
}
