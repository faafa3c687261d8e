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
    /// The uploaded media a media message names by `id` (the world checks
    /// that it exists and fits the kind).
    pub media_id: Option<String>,
    /// The Messaging account it names (`messaging_account_id`, else the
    /// deprecated `paid_messaging_account_id`, as Meta reads them): the
    /// account that pays and whose templates and webhooks it uses.
    pub messaging_account: Option<String>,
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

/// Media message types, sent by `link` or by the `id` of an upload.
const MEDIA: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// Interactive message types Meta documents.
const INTERACTIVE: [&str; 13] = [
    "button",
    "list",
    "cta_url",
    "product",
    "product_list",
    "catalog_message",
    "flow",
    "location_request_message",
    "address_message",
    "order_details",
    "order_status",
    "call_permission_request",
    "voice_call",
];

fn object<'a>(
    body: &'a Value,
    field: &str,
) -> Result<&'a serde_json::Map<String, Value>, GraphError> {
    match body.get(field) {
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(GraphError::invalid(format!("{field} must be an object"))),
        None => Err(GraphError::required(field)),
    }
}

fn text<'a>(
    object: &'a serde_json::Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<&'a str, GraphError> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(GraphError::invalid(format!(
            "{path}.{field} must be a string"
        ))),
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
        Some(other) => {
            return Err(GraphError::invalid(format!(
                "messaging_product `{other}`: must be whatsapp"
            )));
        }
        None => return Err(GraphError::required("messaging_product")),
    }
    if body.get("status").and_then(Value::as_str) == Some("read") {
        let message_id = body
            .get("message_id")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::required("message_id"))?;
        return Ok(Request::MarkRead {
            message_id: message_id.into(),
        });
    }
    let input = body
        .get("to")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::required("to"))?;
    let user = UserId::parse(input).map_err(|e| GraphError::invalid(format!("to: {e}")))?;
    if let Some(kind) = body.get("recipient_type").and_then(Value::as_str)
        && kind != "individual"
    {
        return Err(GraphError::invalid(format!(
            "recipient_type `{kind}`: the sandbox sends to individuals only"
        )));
    }
    // Without `type`, Meta defaults to text; its own examples also leave
    // it out when the body holds one other kind of content (a list reply),
    // so that content names the type.
    let inferred = || {
        let mut kinds = [
            "text",
            "template",
            "reaction",
            "interactive",
            "location",
            "contacts",
        ]
        .into_iter()
        .chain(MEDIA)
        .filter(|k| body.get(k).is_some());
        match (kinds.next(), kinds.next()) {
            (Some(kind), None) => kind,
            _ => "text",
        }
    };
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_else(inferred);
    let mut template = None;
    let mut media_id = None;
    match kind {
        "text" => {
            let body_text = text(object(body, "text")?, "body", "text")?;
            if body_text.trim().is_empty() {
                return Err(GraphError::invalid("text.body is empty"));
            }
            if body_text.chars().count() > 4096 {
                return Err(GraphError::invalid(
                    "text.body is longer than 4096 characters",
                ));
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
            template = Some(TemplateUse {
                name: name.into(),
                language: language.into(),
                components: object.get("components").cloned(),
            });
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
                return Err(GraphError::invalid(format!(
                    "interactive.type `{kind}`: must be one of {}",
                    INTERACTIVE.join(", ")
                )));
            }
            let Some(action) = interactive.get("action").and_then(Value::as_object) else {
                return Err(GraphError::required("interactive['action']"));
            };
            interactive_limits(kind, action)?;
        }
        "location" => {
            let location = object(body, "location")?;
            for field in ["latitude", "longitude"] {
                if !location
                    .get(field)
                    .is_some_and(|v| v.is_number() || v.is_string())
                {
                    return Err(GraphError::required(&format!("location['{field}']")));
                }
            }
        }
        "contacts" => {
            if body
                .get("contacts")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                return Err(GraphError::required("contacts"));
            }
        }
        media if MEDIA.contains(&media) => {
            let object = object(body, media)?;
            if let Some(caption) = object.get("caption").and_then(Value::as_str) {
                at_most(&format!("{media}.caption"), caption, 1024)?;
            }
            match (object.get("link").and_then(Value::as_str), object.get("id")) {
                (Some(link), _) if link.starts_with("http://") || link.starts_with("https://") => {}
                (Some(link), _) => {
                    return Err(GraphError::invalid(format!(
                        "{media}.link `{link}`: must be an http(s) URL"
                    )));
                }
                (None, Some(Value::String(id))) if !id.is_empty() => media_id = Some(id.clone()),
                (None, Some(_)) => {
                    return Err(GraphError::invalid(format!(
                        "{media}.id must be the id of an upload, as a string"
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
    let messaging_account = wameter_meta::graph::messaging_account_id(body).map(str::to_string);
    Ok(Request::Message(Message {
        input: input.into(),
        user,
        kind: kind.into(),
        template,
        media_id,
        messaging_account,
    }))
}

/// The kinds of user message Meta's webhooks carry, each with the object
/// its `type` names (what a user can send; `system` and `unsupported` are
/// Meta's own and not simulated).
const INBOUND: [&str; 13] = [
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "request_welcome",
];

/// A user message for `POST /_sandbox/inbound`'s `message`, in Meta's own
/// shape without `from`, `id` and `timestamp` (the sandbox writes them),
/// checked for what each kind must carry; `context` (a reply) and
/// `referral` (an ad's fields) pass through. Says what is wrong otherwise.
pub fn inbound_content(message: &Value) -> Result<serde_json::Map<String, Value>, String> {
    let Some(object) = message.as_object() else {
        return Err("`message` must be an object in Meta's message shape".into());
    };
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or("`message.type` is required")?;
    if !INBOUND.contains(&kind) {
        return Err(format!(
            "`message.type` `{kind}`: must be one of {}",
            INBOUND.join(", ")
        ));
    }
    let has = |path: &[&str]| {
        let mut value = object.get(kind);
        for key in path {
            value = value.and_then(|v| v.get(key));
        }
        value.is_some_and(|v| !v.is_null())
    };
    let missing = |path: &[&str]| {
        Err(format!(
            "`message.{kind}{}` is required for a {kind} message",
            path.iter().map(|k| format!(".{k}")).collect::<String>()
        ))
    };
    match kind {
        "request_welcome" => {}
        "contacts" => {
            if object
                .get("contacts")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                return Err("`message.contacts` must be a non-empty array".into());
            }
        }
        _ if !object.get(kind).is_some_and(Value::is_object) => {
            return Err(format!("`message.{kind}` must be an object"));
        }
        "interactive" => {
            let reply = object[kind]
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !["button_reply", "list_reply", "nfm_reply"].contains(&reply) {
                return Err(format!(
                    "`message.interactive.type` `{reply}`: must be button_reply, list_reply or nfm_reply"
                ));
            }
            let fields: &[&str] = if reply == "nfm_reply" {
                &["response_json"]
            } else {
                &["id", "title"]
            };
            if let Some(field) = fields.iter().find(|field| !has(&[reply, field])) {
                return missing(&[reply, field]);
            }
        }
        _ => {
            // What each kind's object must carry; the first one absent is named.
            let required: &[&str] = match kind {
                "text" => &["body"],
                "location" => &["latitude", "longitude"],
                "button" => &["text", "payload"],
                "reaction" => &["message_id"],
                "order" => &["product_items"],
                _ if MEDIA.contains(&kind) => &["id", "mime_type"],
                _ => &[],
            };
            if let Some(field) = required.iter().find(|field| !has(&[field])) {
                return missing(&[field]);
            }
        }
    }
    if object
        .get("context")
        .is_some_and(|context| !context.get("id").is_some_and(Value::is_string))
    {
        return Err(
            "`message.context.id` (the message replied to) is required with a context".into(),
        );
    }
    if object.get("referral").is_some_and(|r| !r.is_object()) {
        return Err("`message.referral` must be an object".into());
    }
    for field in ["from", "id", "timestamp"] {
        if object.contains_key(field) {
            return Err(format!(
                "`message.{field}` is written by the sandbox; leave it out"
            ));
        }
    }
    Ok(object.clone())
}

/// `(#131009) Parameter value is not valid`, as Meta answers a value past
/// its bounds.
fn out_of_bounds(details: String) -> GraphError {
    GraphError::new(
        wameter_meta::graph::PARAMETER_VALUE,
        "Parameter value is not valid",
        details,
    )
}

/// A text field of at most `max` characters.
fn at_most(path: &str, text: &str, max: usize) -> Result<(), GraphError> {
    let length = text.chars().count();
    if length > max {
        return Err(out_of_bounds(format!(
            "{path} is {length} characters long; at most {max}"
        )));
    }
    Ok(())
}

/// Meta's bounds on reply buttons and lists: at most 3 buttons with titles
/// of 20 characters; at most 10 sections and 10 rows in all, a list button
/// of 20 characters, section and row titles of 24, row descriptions of 72.
fn interactive_limits(
    kind: &str,
    action: &serde_json::Map<String, Value>,
) -> Result<(), GraphError> {
    let texts =
        |value: &Value, field: &str| value.get(field).and_then(Value::as_str).map(str::to_string);
    match kind {
        "button" => {
            let buttons = action
                .get("buttons")
                .and_then(Value::as_array)
                .ok_or_else(|| GraphError::required("interactive['action']['buttons']"))?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(out_of_bounds(format!(
                    "interactive.action.buttons has {} buttons; 1 to 3",
                    buttons.len()
                )));
            }
            for (index, button) in buttons.iter().enumerate() {
                if let Some(title) = button.get("reply").and_then(|reply| texts(reply, "title")) {
                    at_most(
                        &format!("interactive.action.buttons[{index}].reply.title"),
                        &title,
                        20,
                    )?;
                }
            }
        }
        "list" => {
            if let Some(button) = action.get("button").and_then(Value::as_str) {
                at_most("interactive.action.button", button, 20)?;
            }
            let sections = action
                .get("sections")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if sections.len() > 10 {
                return Err(out_of_bounds(format!(
                    "interactive.action.sections has {} sections; at most 10",
                    sections.len()
                )));
            }
            let mut rows = 0;
            for (index, section) in sections.iter().enumerate() {
                if let Some(title) = texts(section, "title") {
                    at_most(
                        &format!("interactive.action.sections[{index}].title"),
                        &title,
                        24,
                    )?;
                }
                for (row_index, row) in section
                    .get("rows")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    rows += 1;
                    let path = format!("interactive.action.sections[{index}].rows[{row_index}]");
                    if let Some(title) = texts(row, "title") {
                        at_most(&format!("{path}.title"), &title, 24)?;
                    }
                    if let Some(description) = texts(row, "description") {
                        at_most(&format!("{path}.description"), &description, 72)?;
                    }
                }
            }
            if rows > 10 {
                return Err(out_of_bounds(format!(
                    "interactive.action.sections hold {rows} rows; at most 10 in all"
                )));
            }
        }
        _ => {}
    }
    Ok(())
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
        assert_eq!(
            (m.kind.as_str(), m.user.to_string().as_str(), m.template),
            ("text", "+5511999990000", None)
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let error =
            message(json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "text"}))
                .unwrap_err();
        assert_eq!(error.message, "(#100) The parameter text is required.");
        let error = message(json!({"to": "15550001111", "text": {"body": "x"}})).unwrap_err();
        assert_eq!(
            error.message,
            "(#100) The parameter messaging_product is required."
        );
        let error = message(json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "template", "template": {"name": "x"}})).unwrap_err();
        assert_eq!(
            error.message,
            "(#100) The parameter template['language'] is required."
        );
    }

    #[test]
    fn a_missing_type_is_read_from_the_content() {
        let list = json!({"messaging_product": "whatsapp", "to": "15550001111", "interactive": {"type": "list", "action": {}}});
        assert_eq!(message(list).unwrap().kind, "interactive");
        let neither = json!({"messaging_product": "whatsapp", "to": "15550001111"});
        assert_eq!(
            message(neither).unwrap_err().message,
            "(#100) The parameter text is required."
        );
    }

    #[test]
    fn media_by_link_or_by_upload_id() {
        let by_link = json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "image", "image": {"link": "https://x/a.png"}});
        assert_eq!(message(by_link).unwrap().media_id, None);
        let by_id = json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "image", "image": {"id": "1"}});
        assert_eq!(message(by_id).unwrap().media_id.as_deref(), Some("1"));
        let numeric = json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "image", "image": {"id": 1}});
        assert!(message(numeric).is_err());
    }

    #[test]
    fn templates_and_read_receipts() {
        let m = message(
            json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
        )
        .unwrap();
        assert_eq!(m.template.unwrap().language, "en_US");
        let read = parse(
            &json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"}),
        )
        .unwrap();
        assert_eq!(
            read,
            Request::MarkRead {
                message_id: "wamid.1".into()
            }
        );
    }

    #[test]
    fn metas_bounds_on_buttons_lists_and_captions() {
        let buttons = |n: usize, title: &str| {
            let buttons: Vec<Value> = (0..n)
                .map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": title}}))
                .collect();
            json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "interactive",
                   "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": buttons}}})
        };
        assert!(message(buttons(3, "Twenty characters ok")).is_ok());
        let error = message(buttons(4, "Yes")).unwrap_err();
        assert_eq!(error.code, 131_009, "{error:?}");
        assert!(error.details.contains("4 buttons"), "{error:?}");
        assert_eq!(message(buttons(0, "Yes")).unwrap_err().code, 131_009);
        assert_eq!(
            message(buttons(1, "Twenty-one characters"))
                .unwrap_err()
                .code,
            131_009
        );

        let list = |sections: usize, rows: usize| {
            let sections: Vec<Value> = (0..sections)
                .map(|s| json!({"title": format!("S{s}"), "rows": (0..rows).map(|r| json!({"id": format!("{s}.{r}"), "title": "Row"})).collect::<Vec<_>>()}))
                .collect();
            json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "interactive",
                   "interactive": {"type": "list", "body": {"text": "Pick"}, "action": {"button": "Options", "sections": sections}}})
        };
        assert!(message(list(2, 5)).is_ok());
        assert!(message(list(3, 4)).unwrap_err().details.contains("12 rows"));
        assert!(
            message(list(11, 0))
                .unwrap_err()
                .details
                .contains("11 sections")
        );

        let caption = |length: usize| {
            json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "image",
                                             "image": {"link": "https://x/a.png", "caption": "é".repeat(length)}})
        };
        assert!(message(caption(1024)).is_ok(), "characters, not bytes");
        assert_eq!(message(caption(1025)).unwrap_err().code, 131_009);
    }

    #[test]
    fn inbound_kinds_carry_what_meta_sends() {
        for message in [
            json!({"type": "image", "image": {"id": "1", "mime_type": "image/jpeg", "sha256": "x"}}),
            json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}, "context": {"from": "1", "id": "wamid.X"}}),
            json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row", "description": "d"}}}),
            json!({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "{}", "body": "Sent", "name": "flow"}}}),
            json!({"type": "button", "button": {"text": "Stop", "payload": "STOP"}}),
            json!({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}}),
            json!({"type": "location", "location": {"latitude": -23.5, "longitude": -46.6}}),
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana"}}]}),
            json!({"type": "order", "order": {"catalog_id": "1", "product_items": []}}),
            json!({"type": "text", "text": {"body": "from an ad"}, "referral": {"source_type": "ad", "source_id": "9", "ctwa_clid": "c"}}),
        ] {
            assert!(inbound_content(&message).is_ok(), "{message}");
        }
        for (message, says) in [
            (
                json!({"type": "image", "image": {"mime_type": "image/jpeg"}}),
                "image.id",
            ),
            (
                json!({"type": "location", "location": {"latitude": 1.5}}),
                "location.longitude",
            ),
            (
                json!({"type": "button", "button": {"text": "Stop"}}),
                "button.payload",
            ),
            (
                json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes"}}}),
                "button_reply.title",
            ),
            (
                json!({"type": "interactive", "interactive": {"type": "cta_url"}}),
                "button_reply, list_reply or nfm_reply",
            ),
            (json!({"type": "hologram"}), "must be one of"),
            (
                json!({"type": "text", "text": {"body": "x"}, "id": "wamid.mine"}),
                "written by the sandbox",
            ),
            (
                json!({"type": "text", "text": {"body": "x"}, "context": {}}),
                "context.id",
            ),
        ] {
            let error = inbound_content(&message).unwrap_err();
            assert!(error.contains(says), "{message}: {error}");
        }
    }
}
