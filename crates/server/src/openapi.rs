//! The OpenAPI document of wameter's own API, generated from the handlers'
//! annotations and the response types, served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "wameter", description = "WhatsApp Cloud API metering: Meta webhooks in, customer service windows and exact charges out."),
    paths(
        crate::webhook::handshake,
        crate::webhook::receive,
        crate::api::windows,
        crate::api::charges,
        crate::api::costs,
        crate::api::post_events,
        crate::api::get_events,
        crate::api::get_webhooks,
        crate::budgets::list,
        crate::relay::status,
        crate::healthz,
        crate::metrics,
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
