//! The Calling API as the sandbox plays it: `POST /{phone_number_id}/calls`
//! (Meta's "Manage Calls": connect, pre_accept, accept, reject, terminate)
//! and the control API's simulated user (who calls, answers, rejects or
//! hangs up). Calls are logged as canonical `call` events when they end, so
//! the engine prices them on the sandbox clock like any call (docs/rules.md
//! §14), and their `calls` webhooks go to the app.

use serde_json::Value;
use wameter_core::event::UserId;
use wameter_meta::graph::GraphError;

/// What a `POST /{phone_number_id}/calls` asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallRequest {
    /// The business calls `to`.
    Connect {
        /// The callee.
        to: UserId,
        /// Echoed in the terminate webhook.
        opaque: Option<String>,
    },
    /// The business acts on a call: `pre_accept`, `accept`, `reject` or
    /// `terminate`.
    Act {
        /// Which.
        action: Action,
        /// The call id.
        call_id: String,
    },
}

/// An action on an existing call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Early media before accepting a user's call: nothing bills.
    PreAccept,
    /// The business picks up a user's call: it connects now.
    Accept,
    /// The business declines a user's call: it ends unconnected.
    Reject,
    /// Either side ends the call.
    Terminate,
}

impl Action {
    /// Meta's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::PreAccept => "pre_accept",
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::Terminate => "terminate",
        }
    }
}

/// Reads a Manage Calls body as Graph does: `messaging_product` whatsapp,
/// an `action`, `to` (and a `session` with an SDP offer) for `connect`,
/// `call_id` for the others.
pub fn parse(body: &Value) -> Result<CallRequest, GraphError> {
    let text = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    match text("messaging_product") {
        Some("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::invalid(format!(
                "messaging_product `{other}`: must be whatsapp"
            )));
        }
        None => return Err(GraphError::required("messaging_product")),
    }
    let action = text("action").ok_or_else(|| GraphError::required("action"))?;
    let act = |action: Action| -> Result<CallRequest, GraphError> {
        let call_id = text("call_id")
            .ok_or_else(|| GraphError::required("call_id"))?
            .to_string();
        Ok(CallRequest::Act { action, call_id })
    };
    match action {
        "connect" => {
            let to = text("to").ok_or_else(|| GraphError::required("to"))?;
            let to =
                UserId::parse(to).map_err(|e| GraphError::invalid(format!("to `{to}`: {e}")))?;
            let session = body
                .get("session")
                .ok_or_else(|| GraphError::required("session"))?;
            match session.get("sdp_type").and_then(Value::as_str) {
                Some("offer") => {}
                Some(other) => {
                    return Err(GraphError::invalid(format!(
                        "session.sdp_type `{other}`: a connect carries an offer"
                    )));
                }
                None => return Err(GraphError::required("session.sdp_type")),
            }
            if session
                .get("sdp")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(GraphError::required("session.sdp"));
            }
            let opaque = text("biz_opaque_callback_data").map(str::to_string);
            if opaque.as_ref().is_some_and(|o| o.chars().count() > 512) {
                return Err(GraphError::invalid(
                    "biz_opaque_callback_data: at most 512 characters",
                ));
            }
            Ok(CallRequest::Connect { to, opaque })
        }
        "pre_accept" => act(Action::PreAccept),
        "accept" => act(Action::Accept),
        "reject" => act(Action::Reject),
        "terminate" => act(Action::Terminate),
        other => Err(GraphError::invalid(format!(
            "action `{other}`: one of connect, pre_accept, accept, reject, terminate"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_read_as_graph_reads_them() {
        let connect = json!({"messaging_product": "whatsapp", "to": "254700000001", "action": "connect", "session": {"sdp_type": "offer", "sdp": "v=0"}});
        assert!(matches!(
            parse(&connect),
            Ok(CallRequest::Connect { opaque: None, .. })
        ));
        let terminate =
            json!({"messaging_product": "whatsapp", "call_id": "wacid.1", "action": "terminate"});
        assert_eq!(
            parse(&terminate),
            Ok(CallRequest::Act {
                action: Action::Terminate,
                call_id: "wacid.1".into()
            })
        );
        for (body, field) in [
            (json!({"to": "1", "action": "connect"}), "messaging_product"),
            (
                json!({"messaging_product": "whatsapp", "action": "connect", "session": {"sdp_type": "offer", "sdp": "v"}}),
                "to",
            ),
            (
                json!({"messaging_product": "whatsapp", "to": "254700000001", "action": "connect"}),
                "session",
            ),
            (
                json!({"messaging_product": "whatsapp", "action": "accept"}),
                "call_id",
            ),
        ] {
            let error = parse(&body).unwrap_err();
            assert!(error.details.contains(field), "{body}: {}", error.details);
        }
        assert!(
            parse(&json!({"messaging_product": "whatsapp", "action": "dial"}))
                .unwrap_err()
                .details
                .contains("action `dial`")
        );
    }
}
