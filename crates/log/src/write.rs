//! Writing canonical lines: what `wameter events` prints.
//!
//! Every line written here reads back through [`crate::parse_line`] into
//! the same event or notice (a property test holds it to that), so a user
//! can save what wameter understood of a webhook log and replay that.

use serde_json::{Map, Value, json};
use wameter_core::event::{Event, EventKind, InboundKind, StatusDetail, UserId};
use wameter_core::notice::Notice;

/// The canonical NDJSON line of an event (without the newline).
pub fn event_line(event: &Event) -> String {
    let mut line = Map::new();
    let at = Value::from(event.at.to_string());
    match &event.kind {
        EventKind::Inbound {
            business,
            user,
            id,
            entry_point,
            kind,
        } => {
            line.insert("type".into(), "inbound".into());
            line.insert("at".into(), at);
            line.insert("business".into(), (&**business).into());
            insert_user(&mut line, user);
            if let Some(id) = id {
                line.insert("id".into(), (&**id).into());
            }
            if let Some(entry_point) = entry_point {
                line.insert("entry_point".into(), entry_point.as_str().into());
            }
            if *kind == InboundKind::Call {
                line.insert("kind".into(), "call".into());
            }
        }
        EventKind::Outbound {
            business,
            user,
            id,
            template,
            messaging_account,
        } => {
            line.insert("type".into(), "outbound".into());
            line.insert("at".into(), at);
            line.insert("business".into(), (&**business).into());
            insert_user(&mut line, user);
            line.insert("id".into(), (&**id).into());
            if let Some(template) = template {
                line.insert(
                    "template".into(),
                    json!({"name": &*template.name, "category": template.category.as_str()}),
                );
            }
            insert_messaging_account(&mut line, messaging_account.as_deref());
        }
        EventKind::Status {
            id,
            status,
            error,
            detail,
        } => {
            line.insert("type".into(), "status".into());
            line.insert("at".into(), at);
            line.insert("id".into(), (&**id).into());
            line.insert("status".into(), status.as_str().into());
            if let Some(error) = error {
                line.insert("error".into(), (*error).into());
            }
            if let Some(detail) = detail {
                write_detail(&mut line, detail);
            }
        }
        EventKind::Call(call) => {
            line.insert("type".into(), "call".into());
            line.insert("at".into(), at);
            line.insert("business".into(), (&*call.business).into());
            insert_user(&mut line, &call.user);
            line.insert("id".into(), (&*call.id).into());
            line.insert("direction".into(), call.direction.as_str().into());
            line.insert("duration".into(), call.duration_seconds.into());
            line.insert("status".into(), call.status.as_str().into());
            if let Some(error) = call.error {
                line.insert("error".into(), error.into());
            }
            insert_messaging_account(&mut line, call.messaging_account.as_deref());
        }
        EventKind::AgentUsage(usage) => {
            line.insert("type".into(), "agent_usage".into());
            line.insert("at".into(), at);
            line.insert("business".into(), (&*usage.business).into());
            insert_user(&mut line, &usage.user);
            line.insert("id".into(), (&*usage.id).into());
            line.insert("tokens".into(), usage.tokens.into());
            insert_messaging_account(&mut line, usage.messaging_account.as_deref());
        }
    }
    Value::Object(line).to_string()
}

/// `user`, and `user_country` when the id does not carry its country.
fn insert_user(line: &mut Map<String, Value>, user: &UserId) {
    line.insert("user".into(), user.to_string().into());
    if let Some(country) = user.country_beside() {
        line.insert("user_country".into(), country.into());
    }
}

/// `messaging_account_id`, Meta's name for the account billed, when known.
fn insert_messaging_account(line: &mut Map<String, Value>, account: Option<&str>) {
    if let Some(account) = account {
        line.insert("messaging_account_id".into(), account.into());
    }
}

fn write_detail(line: &mut Map<String, Value>, detail: &StatusDetail) {
    if let Some(business) = &detail.business {
        line.insert("business".into(), (&**business).into());
    }
    insert_messaging_account(line, detail.messaging_account.as_deref());
    if let Some(user) = &detail.recipient {
        insert_user(line, user);
    }
    if let Some(pricing) = &detail.pricing {
        let mut object = Map::new();
        if let Some(billable) = pricing.billable {
            object.insert("billable".into(), billable.into());
        }
        if let Some(model) = &pricing.pricing_model {
            object.insert("pricing_model".into(), (&**model).into());
        }
        if let Some(kind) = &pricing.pricing_type {
            object.insert("type".into(), (&**kind).into());
        }
        object.insert("category".into(), (&*pricing.category).into());
        if let Some(cost) = &pricing.cost {
            // A JSON number, as Meta writes it, when that number prints the
            // amount's own digits; else the digits as a string (read back
            // exactly either way).
            let text = cost.amount.to_string();
            // The number's own text against the amount's: clippy's
            // `number == text` would compare the JSON value with a JSON
            // string, never equal to a number.
            #[allow(clippy::cmp_owned)]
            let amount = match serde_json::from_str::<Value>(&text) {
                Ok(number @ Value::Number(_)) if number.to_string() == text => number,
                _ => Value::String(text),
            };
            object.insert(
                "cost".into(),
                serde_json::json!({"amount": amount, "currency": cost.currency.code()}),
            );
        }
        line.insert("pricing".into(), Value::Object(object));
    }
    if let Some(conversation) = &detail.conversation {
        let mut object = Map::new();
        if let Some(id) = &conversation.id {
            object.insert("id".into(), (&**id).into());
        }
        if let Some(origin) = &conversation.origin_type {
            object.insert("origin".into(), json!({"type": &**origin}));
        }
        if let Some(expires) = conversation.expires_at {
            object.insert("expiration_timestamp".into(), expires.as_second().into());
        }
        line.insert("conversation".into(), Value::Object(object));
    }
}

/// The canonical NDJSON line of a notice.
pub fn notice_line(notice: &Notice) -> String {
    // Serialising plain data to a string cannot fail.
    serde_json::to_string(notice).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wameter_core::event::{DeliveryStatus, MetaCost, MetaPricing, Origin};
    use wameter_core::money::Currency;

    /// A delivered status carrying Meta's `pricing.cost` of `amount`.
    fn costed(amount: &str) -> Event {
        let detail = StatusDetail {
            pricing: Some(MetaPricing {
                billable: Some(true),
                pricing_model: Some("PMP".into()),
                pricing_type: Some("regular".into()),
                category: "marketing".into(),
                cost: Some(MetaCost {
                    amount: amount.parse().unwrap(),
                    currency: Currency::USD,
                }),
            }),
            ..StatusDetail::default()
        };
        Event {
            at: "2026-06-26T10:00:00Z".parse().unwrap(),
            origin: Origin::default(),
            kind: EventKind::Status {
                id: "wamid.1".into(),
                status: DeliveryStatus::Delivered,
                error: None,
                detail: Some(Box::new(detail)),
            },
        }
    }

    /// A cost is a JSON number, as Meta writes it, when the number prints
    /// the amount's digits, and a string of them when it would lose some
    /// (a trailing zero): both read back to the same amount.
    #[test]
    fn a_cost_is_a_number_when_the_number_keeps_its_digits() {
        for (amount, written) in [
            ("0.035", r#""amount":0.035"#),
            ("0.0350", r#""amount":"0.0350""#),
            ("12", r#""amount":12"#),
        ] {
            let event = costed(amount);
            let line = event_line(&event);
            assert!(line.contains(written), "{amount}: {line}");
            match crate::parse_line(&line, Origin::default()) {
                Ok(crate::Parsed::Event(read)) => assert_eq!(read, event, "{amount}"),
                other => panic!("{amount}: {line} read back as {other:?}"),
            }
        }
    }
}
