//! Graph API errors as Meta writes them: `{"error": {"message", "type",
//! "code", "error_data", "error_subcode"?, "fbtrace_id"}}`, with Meta's
//! codes and titles (Cloud API error-code reference). The sandbox answers
//! with them, and so does the guard when it refuses a send for Meta, so an
//! app's error handling sees exactly what Meta would have said.
//!
//! With the `axum` feature a [`GraphError`] is also an axum response.

use serde_json::json;

/// The Messaging account a Messages API request names, as Meta reads it:
/// `messaging_account_id`, else its deprecated alias
/// `paid_messaging_account_id` ("if you supply both, messaging_account_id
/// takes precedence"; Meta's "Managing messaging accounts", 2026-06-30).
/// An empty or non-string value names none.
///
/// ```
/// let body = serde_json::json!({"paid_messaging_account_id": "old", "messaging_account_id": "new"});
/// assert_eq!(wameter_meta::graph::messaging_account_id(&body), Some("new"));
/// let body = serde_json::json!({"paid_messaging_account_id": "old"});
/// assert_eq!(wameter_meta::graph::messaging_account_id(&body), Some("old"));
/// ```
pub fn messaging_account_id(body: &serde_json::Value) -> Option<&str> {
    let named = |key: &str| {
        body.get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|id| !id.is_empty())
    };
    named("messaging_account_id").or_else(|| named("paid_messaging_account_id"))
}

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
/// Meta's code for a business-initiated call from a number whose country
/// has no business-initiated calling (calling troubleshooting page).
pub const CALLS_NOT_AVAILABLE_IN_COUNTRY: u32 = 138_013;

/// The refusal of a business-initiated call from a business number in
/// `country` ([`wameter_core::rules::calling::NO_BUSINESS_CALLS_FROM`]).
pub fn calls_not_available(phone_number_id: &str, country: &str, by: &str) -> GraphError {
    GraphError::new(
        CALLS_NOT_AVAILABLE_IN_COUNTRY,
        "Business-initiated calling is not available",
        format!(
            "{by}business number {phone_number_id} is in {country} (its primary_country): Meta offers no business-initiated calls from numbers in US, CA, EG, VN or NG"
        ),
    )
}

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
        GraphError {
            message: format!("(#100) The parameter {field} is required."),
            ..GraphError::invalid(format!("{field} is required"))
        }
    }

    /// A path names an object the sandbox does not have (Meta's
    /// `GraphMethodException` 100/33).
    pub fn no_object(id: &str) -> GraphError {
        GraphError::method_exception(
            "post",
            id,
            format!("no business phone number or WABA `{id}` in the sandbox's accounts"),
        )
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
        let object = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(path);
        GraphError::method_exception(
            &method.to_ascii_lowercase(),
            object,
            format!("the sandbox does not serve {method} {path}"),
        )
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
        let trace = format!(
            "Wameter{:011}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let status = axum::http::StatusCode::from_u16(self.http)
            .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
        (status, axum::Json(self.body(&trace))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_meta_s_fields() {
        let body = GraphError::new(
            TEMPLATE_NOT_FOUND,
            "Template name does not exist in the translation",
            "x",
        )
        .body("T");
        let error = &body["error"];
        assert_eq!(
            error["message"],
            "(#132001) Template name does not exist in the translation"
        );
        assert_eq!(error["type"], "OAuthException");
        assert_eq!(error["code"], 132_001);
        assert_eq!(error["error_data"]["details"], "x");
        assert_eq!(error["fbtrace_id"], "T");
        assert!(error.get("error_subcode").is_none());
        assert_eq!(
            GraphError::no_object("1").body("T")["error"]["error_subcode"],
            33
        );
    }
}

/// Graph API versions as Meta lists them (developers.facebook.com/docs/
/// graph-api/changelog/versions, read 2026-12-04): major version, release
/// date, and the date it stops being served (`None`: not announced).
/// Meta adds a version about every five months; update this list then.
pub const GRAPH_VERSIONS: &[(u32, &str, Option<&str>)] = &[
    (13, "2022-02-08", Some("2024-05-28")),
    (14, "2022-05-25", Some("2024-09-17")),
    (15, "2022-09-15", Some("2024-11-20")),
    (16, "2023-02-02", Some("2025-05-14")),
    (17, "2023-05-23", Some("2025-09-12")),
    (18, "2023-09-12", Some("2026-01-26")),
    (19, "2024-01-23", Some("2026-05-21")),
    (20, "2024-05-21", Some("2026-09-24")),
    (21, "2024-10-02", Some("2027-01-21")),
    (22, "2025-01-21", Some("2027-05-20")),
    (23, "2025-05-29", Some("2027-10-08")),
    (24, "2025-10-08", Some("2028-02-18")),
    (25, "2026-02-18", Some("2028-07-29")),
    (26, "2026-07-29", None),
];

/// `requested`, if Meta has released that major version: one newer than
/// any it has is a path Graph does not know (2500).
pub fn released_version(requested: u32) -> Result<u32, GraphError> {
    let newest = GRAPH_VERSIONS.last().map_or(0, |(major, _, _)| *major);
    if requested > newest {
        let mut error = GraphError::unknown_path(&format!("/v{requested}.0"));
        error.details = format!(
            "v{requested}.0 is not a Graph API version Meta has released; the newest is v{newest}.0"
        );
        return Err(error);
    }
    Ok(requested)
}

/// The version Graph serves a request for `requested` with on `today`.
///
/// Meta's Platform Versioning guide: a call to a version past its end is
/// processed by the oldest version still available (the "automatic
/// upgrade"), so an old version is no error but the oldest served one.
pub fn served_version(requested: u32, today: jiff::civil::Date) -> u32 {
    let served = |(_, _, until): &&(u32, &str, Option<&str>)| {
        until
            .and_then(|until| until.parse::<jiff::civil::Date>().ok())
            .is_none_or(|until| today < until)
    };
    GRAPH_VERSIONS
        .iter()
        .find(served)
        .map_or(requested, |(oldest, _, _)| requested.max(*oldest))
}

#[cfg(test)]
mod version_tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn old_versions_are_served_as_the_oldest_available_and_unreleased_ones_are_unknown() {
        let today = date(2026, 12, 4);
        assert_eq!(served_version(23, today), 23);
        // v20 ended 2026-09-24: served as v21, the oldest left.
        assert_eq!(served_version(20, today), 21);
        assert_eq!(served_version(14, today), 21);
        assert_eq!(served_version(14, date(2024, 9, 16)), 14);
        assert_eq!(served_version(14, date(2024, 9, 17)), 15);
        assert_eq!(released_version(26).unwrap(), 26);
        let unknown = released_version(99).unwrap_err();
        assert_eq!((unknown.http, unknown.code), (404, 2500));
        assert!(unknown.details.contains("v26.0"), "{}", unknown.details);
        // The dates parse: a list that did not would serve every version.
        assert!(
            GRAPH_VERSIONS
                .iter()
                .all(|(_, from, until)| from.parse::<jiff::civil::Date>().is_ok()
                    && until.is_none_or(|u| u.parse::<jiff::civil::Date>().is_ok()))
        );
    }
}
