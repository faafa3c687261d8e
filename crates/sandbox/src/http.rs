//! The sandbox's HTTP face: Meta's Graph API paths (thin handlers over
//! [`World`]) and the control API under `/_sandbox/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::world::{Api, ControlError, World};
use wameter_meta::graph::GraphError;

/// What every handler shares.
pub struct Shared {
    /// The state.
    pub world: Arc<Mutex<World>>,
    /// When set, Graph API calls must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": self.0})),
        )
            .into_response()
    }
}

/// Runs `work` on the world off the async threads (a send replays the log).
async fn with_world<T: Send + 'static>(
    shared: &Shared,
    work: impl FnOnce(&mut World) -> T + Send + 'static,
) -> T {
    let world = shared.world.clone();
    tokio::task::spawn_blocking(move || work(&mut crate::lock(&world)))
        .await
        .expect("a sandbox operation panicked")
}

/// A Graph request body: JSON, or a form (`application/x-www-form-urlencoded`)
/// as Graph also takes it, each field a string or, for objects and arrays,
/// JSON text (`text={"body":"hi"}`). Graph reads JSON text in a JSON body's
/// top-level field the same way: whatsapp-api-js sends `contacts` so.
fn request_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, GraphError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let mut fields = if form {
        form_urlencoded::parse(bytes)
            .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
            .collect()
    } else {
        match serde_json::from_slice(bytes)
            .map_err(|e| GraphError::invalid(format!("the body is not JSON: {e}")))?
        {
            Value::Object(fields) => fields,
            other => return Ok(other),
        }
    };
    for (name, value) in fields.iter_mut() {
        // The one field that is free text whatever it looks like.
        if name == "biz_opaque_callback_data" {
            continue;
        }
        let structured = value
            .as_str()
            .filter(|text| text.starts_with(['{', '[']))
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        if let Some(structured) = structured {
            *value = structured;
        }
    }
    Ok(Value::Object(fields))
}

/// `v23.0` → 23, if Meta has released it (else Graph's unknown path).
/// Which version then serves the request is the world's business: it
/// depends on the sandbox clock (`World::send`).
fn graph_version(version: &str) -> Result<u32, GraphError> {
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse().ok())
        .ok_or_else(|| GraphError::unknown_path(&format!("/{version}")))?;
    wameter_meta::graph::released_version(major)
}

async fn send_message(
    state: State<Arc<Shared>>,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, GraphError> {
    send_through(Api::CloudApi, state, path, headers, body).await
}

async fn send_through(
    api: Api,
    State(shared): State<Arc<Shared>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, GraphError> {
    let version = graph_version(&version)?;
    let body = request_body(&headers, &body)?;
    with_world(&shared, move |world| {
        world.send(Timestamp::now(), &phone_number_id, version, &body, api)
    })
    .await
    .map(axum::Json)
}

/// `POST /{version}/{phone_number_id}/marketing_messages` (the Marketing
/// Messages API): a marketing template, priced by its max price if it has one.
async fn send_marketing_message(
    state: State<Arc<Shared>>,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, GraphError> {
    send_through(Api::MarketingMessages, state, path, headers, body).await
}

/// `POST /{version}/{phone_number_id}/calls` (Meta's Manage Calls).
async fn manage_calls(
    State(shared): State<Arc<Shared>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, GraphError> {
    graph_version(&version)?;
    let body = request_body(&headers, &body)?;
    with_world(&shared, move |world| {
        world.call(Timestamp::now(), &phone_number_id, &body)
    })
    .await
    .map(axum::Json)
}

async fn list_templates(
    State(shared): State<Arc<Shared>>,
    Path((version, waba)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, GraphError> {
    graph_version(&version)?;
    let templates = with_world(&shared, move |world| world.templates(&waba)).await?;
    let wanted = |field: &str, value: &str| {
        query
            .get(field)
            .is_none_or(|want| want.eq_ignore_ascii_case(value))
    };
    let data: Vec<Value> = templates
        .iter()
        .filter(|t| {
            query
                .get("name")
                .is_none_or(|name| t.name.contains(name.as_str()))
        })
        .filter(|t| {
            wanted("language", &t.language)
                && wanted("status", &t.status)
                && wanted("category", crate::templates::category_name(t.category))
        })
        .map(crate::templates::Template::to_json)
        .collect();
    let (first, last) = (
        data.first().map(|t| t["id"].clone()),
        data.last().map(|t| t["id"].clone()),
    );
    let data_len = data.len();
    let mut page = json!({"data": data, "paging": {"cursors": {"before": first, "after": last}}});
    // Meta adds counts when asked (`summary=total_count`).
    if query.contains_key("summary") {
        page["summary"] = json!({"total_count": data_len, "message_template_count": templates.len(), "message_template_limit": 250, "are_translations_complete": true});
    }
    Ok(axum::Json(page))
}

async fn create_template(
    State(shared): State<Arc<Shared>>,
    Path((version, waba)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, GraphError> {
    graph_version(&version)?;
    let body = request_body(&headers, &body)?;
    with_world(&shared, move |world| world.create_template(&waba, &body))
        .await
        .map(axum::Json)
}

/// `GET /{version}/{id}`: an uploaded media's description (with the URL
/// that downloads it), else the phone number of that id.
async fn graph_object(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, GraphError> {
    graph_version(&version)?;
    // The URL is on this sandbox, as the client reached it (Meta's is on
    // its CDN, and needs the access token too).
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    with_world(&shared, move |world| {
        match world.media(&id, query.get("phone_number_id").map(String::as_str))? {
            Some(media) => Ok(json!({
                "messaging_product": "whatsapp",
                "url": format!("http://{host}/_sandbox/media/{}", media.id),
                "mime_type": media.mime_type,
                "sha256": media.sha256,
                // A string, as Graph writes it.
                "file_size": media.file_size.to_string(),
                "id": media.id,
            })),
            None => world.phone_number(&id),
        }
    })
    .await
    .map(axum::Json)
}

/// `DELETE /{version}/{media_id}`.
async fn delete_media(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Result<axum::Json<Value>, GraphError> {
    graph_version(&version)?;
    let path = request.uri().path().to_string();
    let deleted = with_world(&shared, move |world| {
        world.delete_media(&id, query.get("phone_number_id").map(String::as_str))
    })
    .await?;
    if deleted {
        Ok(axum::Json(json!({"success": true})))
    } else {
        Err(GraphError::unsupported_method("DELETE", &path))
    }
}

/// `POST /{version}/{phone_number_id}/media`: multipart form data with
/// `messaging_product`, `file` and optionally `type` (the MIME type; else
/// the file part's content type).
async fn upload_media(
    State(shared): State<Arc<Shared>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    mut form: axum::extract::Multipart,
) -> Result<axum::Json<Value>, GraphError> {
    graph_version(&version)?;
    // Graph takes a parameter in the query as in the body (whatsapp-api-js
    // puts `messaging_product` there).
    let (mut file, mut declared, mut product) =
        (None, None, query.get("messaging_product").cloned());
    // A form that cannot be read is the client's: 413 when too large, else
    // 400 (never a 5xx, which no client input may cause).
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        let status = e.status().as_u16();
        GraphError {
            http: if status == 413 { 413 } else { 400 },
            ..GraphError::invalid(format!("the form cannot be read: {}", e.body_text()))
        }
    };
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("file") => {
                let content_type = field.content_type().map(str::to_string);
                file = Some((content_type, field.bytes().await.map_err(unreadable)?));
            }
            Some("type") => declared = Some(field.text().await.map_err(unreadable)?),
            Some("messaging_product") => product = Some(field.text().await.map_err(unreadable)?),
            _ => {}
        }
    }
    match product.as_deref() {
        Some("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::invalid(format!(
                "messaging_product `{other}`: must be whatsapp"
            )));
        }
        None => return Err(GraphError::required("messaging_product")),
    }
    let (part_type, bytes) = file.ok_or_else(|| GraphError::required("file"))?;
    // Clients send a generic part type (`application/octet-stream`) and
    // say the real one in `type`.
    let mime_type = match (declared, part_type) {
        (Some(declared), _) if !declared.is_empty() => declared,
        (_, Some(part)) => part,
        _ => return Err(GraphError::required("type")),
    };
    with_world(&shared, move |world| {
        world.upload_media(&phone_number_id, &mime_type, &bytes)
    })
    .await
    .map(axum::Json)
}

/// `GET /_sandbox/media/{id}`: the bytes of an upload (the URL `GET
/// /{media_id}` gives), with its content type.
async fn download_media(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let path = format!("/_sandbox/media/{id}");
    match with_world(&shared, move |world| world.media_bytes(&id)).await? {
        Some((mime_type, bytes)) => {
            Ok(([(header::CONTENT_TYPE, mime_type)], bytes).into_response())
        }
        None => Err(GraphError::unknown_path(&path)),
    }
}

/// Graph API calls need a bearer token: any, or the one `--token` set.
async fn bearer(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    // Graph takes the token as a bearer header or as `?access_token=`.
    let from_query = request.uri().query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "access_token")
            .map(|(_, token)| token.into_owned())
    });
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let given = from_header.or(from_query);
    match (given.as_deref(), &shared.token) {
        (None, _) => GraphError::token(
            "no `Authorization: Bearer <token>` header nor `access_token` parameter",
        )
        .into_response(),
        (Some(given), Some(token)) if given != token => {
            GraphError::token("the token is not the sandbox's --token").into_response()
        }
        _ => next.run(request).await,
    }
}

fn control_json(bytes: &[u8]) -> Result<Value, ControlError> {
    serde_json::from_slice(bytes).map_err(|e| ControlError(format!("the body is not JSON: {e}")))
}

async fn inbound(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<axum::Json<Value>, ControlError> {
    let body = control_json(&body)?;
    with_world(&shared, move |world| world.inbound(Timestamp::now(), &body))
        .await
        .map(axum::Json)
}

async fn user_calls(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<axum::Json<Value>, ControlError> {
    let body = control_json(&body)?;
    with_world(&shared, move |world| {
        world.user_calls(Timestamp::now(), &body)
    })
    .await
    .map(axum::Json)
}

async fn user_acts(
    State(shared): State<Arc<Shared>>,
    Path((id, what)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ControlError> {
    with_world(&shared, move |world| {
        world.user_acts(Timestamp::now(), &id, &what)
    })
    .await
    .map(axum::Json)
}

async fn get_clock(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    let now = with_world(&shared, |world| world.now(Timestamp::now())).await;
    axum::Json(json!({"now": now.to_string()}))
}

async fn set_clock(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<axum::Json<Value>, ControlError> {
    let body = control_json(&body)?;
    let now = with_world(&shared, move |world| {
        let real = Timestamp::now();
        let to = match (body.get("advance_seconds"), body.get("set")) {
            (Some(seconds), None) => {
                let seconds = seconds.as_i64().ok_or_else(|| ControlError("`advance_seconds` must be an integer".into()))?;
                // Checked: an advance past what a timestamp holds is a 400,
                // never a panic that poisons the world's lock.
                world
                    .now(real)
                    .checked_add(SignedDuration::from_secs(seconds))
                    .map_err(|_| ControlError(format!("`advance_seconds` = {seconds} moves the clock past what a timestamp can hold")))?
            }
            (None, Some(Value::String(at))) => at.parse::<Timestamp>().map_err(|e| ControlError(format!("`set`: {e} (RFC 3339 with an offset)")))?,
            _ => return Err(ControlError("give either {\"advance_seconds\": N} or {\"set\": \"<RFC 3339>\"}".into())),
        };
        world.set_clock(real, to)
    })
    .await?;
    Ok(axum::Json(json!({"now": now.to_string()})))
}

async fn charges(State(shared): State<Arc<Shared>>) -> Response {
    let document = with_world(&shared, |world| world.charges_document()).await;
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let log = with_world(&shared, |world| world.event_log()).await;
    ([(header::CONTENT_TYPE, "application/x-ndjson")], log).into_response()
}

fn internal(error: rusqlite::Error) -> ControlError {
    ControlError(format!("sandbox database: {error}"))
}

async fn webhooks(State(shared): State<Arc<Shared>>) -> Result<axum::Json<Value>, ControlError> {
    with_world(&shared, |world| world.webhooks())
        .await
        .map(axum::Json)
        .map_err(internal)
}

async fn summary(State(shared): State<Arc<Shared>>) -> Result<axum::Json<Value>, ControlError> {
    with_world(&shared, |world| world.summary(Timestamp::now()))
        .await
        .map(axum::Json)
        .map_err(internal)
}

async fn change_category(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<axum::Json<Value>, ControlError> {
    let body = control_json(&body)?;
    with_world(&shared, move |world| {
        world.change_category(Timestamp::now(), &body)
    })
    .await
    .map(axum::Json)
}

async fn change_status(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<axum::Json<Value>, ControlError> {
    let body = control_json(&body)?;
    with_world(&shared, move |world| {
        world.change_status(Timestamp::now(), &body)
    })
    .await
    .map(axum::Json)
}

async fn unknown(request: Request) -> GraphError {
    GraphError::unknown_path(request.uri().path())
}

/// Errors axum writes itself as plain text (a body over the size limit is
/// a 413 "Failed to buffer the request body…") become Graph error JSON with
/// the same status and that text as details: a client parses every error
/// body the sandbox sends, as it does Graph's.
async fn plain_errors_as_graph_json(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let status = response.status();
    // axum's own messages are short; more than this is not one of them.
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let mut error = GraphError::invalid(String::from_utf8_lossy(&text).trim().to_string());
    error.http = status.as_u16();
    error.into_response()
}

async fn wrong_method(request: Request) -> GraphError {
    GraphError::unsupported_method(request.method().as_str(), request.uri().path())
}

/// The router.
pub fn app(shared: Arc<Shared>) -> Router {
    let graph = Router::new()
        .route(
            "/{version}/{id}/messages",
            axum::routing::post(send_message),
        )
        .route(
            "/{version}/{id}/message_templates",
            get(list_templates).post(create_template),
        )
        .route("/{version}/{id}/calls", axum::routing::post(manage_calls))
        .route(
            "/{version}/{id}/marketing_messages",
            axum::routing::post(send_marketing_message),
        )
        .route("/{version}/{id}", get(graph_object).delete(delete_media))
        .route(
            "/{version}/{id}/media",
            axum::routing::post(upload_media).layer(axum::extract::DefaultBodyLimit::max(
                crate::media::LARGEST + (1 << 20),
            )),
        )
        .route("/_sandbox/media/{id}", get(download_media))
        .route_layer(middleware::from_fn_with_state(shared.clone(), bearer));
    let control = Router::new()
        .route("/_sandbox", get(summary))
        .route("/_sandbox/inbound", axum::routing::post(inbound))
        .route("/_sandbox/calls", axum::routing::post(user_calls))
        .route(
            "/_sandbox/calls/{id}/{what}",
            axum::routing::post(user_acts),
        )
        .route("/_sandbox/clock", get(get_clock).post(set_clock))
        .route("/_sandbox/charges", get(charges))
        .route("/_sandbox/events", get(events))
        .route("/_sandbox/webhooks", get(webhooks))
        .route(
            "/_sandbox/templates/category",
            axum::routing::post(change_category),
        )
        .route(
            "/_sandbox/templates/status",
            axum::routing::post(change_status),
        );
    graph
        .merge(control)
        .fallback(unknown)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::map_response(plain_errors_as_graph_json))
        .with_state(shared)
}
