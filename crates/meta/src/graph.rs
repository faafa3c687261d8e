//! Graph API errors as Meta writes them: `{"error": {"message", "type",
//! "code", "error_data", "error_subcode"?, "fbtrace_id"}}`, with Meta's
//! codes and titles (Cloud API error-code reference). The sandbox answers
//! with them, and so does the guard when it refuses a send for Meta, so an
//! app's error handling sees exactly what Meta would have said.
//!
//! With the `axum` feature a [`GraphError`] is also an axum response.

use serde_json::json;

/// Meta's code for a free-form message outside the customer service
/// window ("Re-engagement message").
pub const REENGAGEMENT: u32 = 131_047;
/// Meta's code for a template parameter count that does not match.
pub const PARAMETER_COUNT: u32 = 132_000;
/// Meta's code for a template name/language that does not exist.
pub const TEMPLATE_NOT_FOUND: u32 = 132_001;
/// Meta's code for an invalid parameter.
pub const INVALID_PARAMETER: u32 = 100;
/// Meta's code for a parameter value out of its bounds (a fourth reply
/// button, a title too long…).
pub const PARAMETER_VALUE: u32 = 131_009;
/// Meta's code for a message that could not be delivered.
pub const UNDELIVERABLE: u32 = 131_026;

/// One Graph API error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    /// HTTP status (400 for most, 401 for tokens, 404 for paths).
    pub http: u16,
    /// Meta's numeric code.
    pub code: u32,
    /// `error_subcode`, when Meta sends one.
    pub subcode: Option<u32>,
    /// `type`: `OAuthException`, `GraphMethodException`.
    pub kind: &'static str,
    /// `message`, `(#code) Title` as Meta writes it.
    pub message: String,
    /// `error_data.details`: what exactly was wrong.
    pub details: String,
}

impl GraphError {
    /// A 400 `OAuthException` `(#code) title` with details.
    pub fn new(code: u32, title: &str, details: impl Into<String>) -> GraphError {
        GraphError {
            http: 400,
            code,
            subcode: None,
            kind: "OAuthException",
            message: format!("(#{code}) {title}"),
            details: details.into(),
        }
    }

    /// `(#100) Invalid parameter` naming what was wrong.
    pub fn invalid(details: impl Into<String>) -> GraphError {
        GraphError::new(INVALID_PARAMETER, "Invalid parameter", details)
    }

    /// A required field is missing: Meta says `(#100) The parameter X is required.`
    pub fn required(field: &str) -> GraphError {
        GraphError { message: format!("(#100) The parameter {field} is required."), ..GraphError::invalid(format!("{field} is required")) }
    }

    /// A path names an object the sandbox does not have (Meta's
    /// `GraphMethodException` 100/33).
    pub fn no_object(id: &str) -> GraphError {
        GraphError::method_exception("post", id, format!("no business phone number or WABA `{id}` in the sandbox's accounts"))
    }

    /// Graph's 100/33 `GraphMethodException` for `method` on object `id`.
    fn method_exception(method: &str, id: &str, details: String) -> GraphError {
        GraphError {
            http: 400,
            code: INVALID_PARAMETER,
            subcode: Some(33),
            kind: "GraphMethodException",
            message: format!(
                "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            ),
            details,
        }
    }

    /// A method the path does not take, as Graph answers it (100/33:
    /// "Unsupported delete request…"), rather than an empty 405 that a
    /// client cannot parse.
    pub fn unsupported_method(method: &str, path: &str) -> GraphError {
        let object = path.trim_end_matches('/').rsplit('/').next().unwrap_or(path);
        GraphError::method_exception(&method.to_ascii_lowercase(), object, format!("the sandbox does not serve {method} {path}"))
    }

    /// Missing or wrong access token (190).
    pub fn token(details: &str) -> GraphError {
        GraphError {
            http: 401,
            code: 190,
            subcode: None,
            kind: "OAuthException",
            message: "Invalid OAuth access token - Cannot parse access token".into(),
            details: details.into(),
        }
    }

    /// A path the sandbox does not serve (Meta's 2500).
    pub fn unknown_path(path: &str) -> GraphError {
        GraphError {
            http: 404,
            code: 2500,
            subcode: None,
            kind: "OAuthException",
            message: format!("Unknown path components: {path}"),
            details: "the sandbox serves /{version}/{phone_number_id}/messages, /{version}/{waba_id}/message_templates, /{version}/{phone_number_id} and /_sandbox/…".into(),
        }
    }

    /// The JSON body.
    pub fn body(&self, fbtrace_id: &str) -> serde_json::Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
            "fbtrace_id": fbtrace_id,
        });
        if let Some(subcode) = self.subcode {
            error["error_subcode"] = json!(subcode);
        }
        json!({ "error": error })
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for GraphError {
    fn into_response(self) -> axum::response::Response {
        // Meta's trace ids are opaque; one per response is all an app sees.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let trace = format!("Wameter{:011}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let status = axum::http::StatusCode::from_u16(self.http).unwrap_or(axum::http::StatusCode::BAD_REQUEST);
        (status, axum::Json(self.body(&trace))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_meta_s_fields() {
        let body = GraphError::new(TEMPLATE_NOT_FOUND, "Template name does not exist in the translation", "x").body("T");
        let error = &body["error"];
        assert_eq!(error["message"], "(#132001) Template name does not exist in the translation");
        assert_eq!(error["type"], "OAuthException");
        assert_eq!(error["code"], 132_001);
        assert_eq!(error["error_data"]["details"], "x");
        assert_eq!(error["fbtrace_id"], "T");
        assert!(error.get("error_subcode").is_none());
        assert_eq!(GraphError::no_object("1").body("T")["error"]["error_subcode"], 33);
    }
}
