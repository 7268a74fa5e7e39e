//! The HTTP API: one module per resource, each with its own `router()`, merged here.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::service::AppState;

mod audit;
mod environments;
mod events;
mod flags;
mod health;
pub(crate) mod metrics;
pub(crate) mod ofrep;
mod panel;
mod registry;
mod rollouts;
mod states;
pub(crate) mod stream;
mod triggers;
mod users;

/// Browsers may read the stream and OFREP from other origins (any, or the configured `cors_origins`): they
/// authenticate with keys in headers or the URL, never cookies, so no credentials mode is allowed. The routes
/// carrying it answer `OPTIONS` themselves, so a preflight gets these headers and never the API's 405.
///
/// Our own middleware rather than `tower_http::cors`: that layer is cloned, with its lists of origins and headers,
/// for every request a route serves, which cost OFREP's hot path an allocation spree per evaluation.
async fn cors(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let preflight = request.method() == axum::http::Method::OPTIONS
        && request.headers().contains_key(axum::http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let origin = request.headers().get(axum::http::header::ORIGIN).cloned();
    let mut response = if preflight { axum::response::IntoResponse::into_response(StatusCode::OK) } else { next.run(request).await };
    cors_for(&state, origin.as_ref(), preflight, response.headers_mut());
    response
}

/// Adds the CORS headers to the answer to a request with these headers (see [`cors`]).
pub(crate) fn cors_headers(state: &AppState, request: &axum::http::HeaderMap, preflight: bool, answer: &mut axum::http::HeaderMap) {
    cors_for(state, request.get(axum::http::header::ORIGIN), preflight, answer);
}

fn cors_for(state: &AppState, origin: Option<&axum::http::HeaderValue>, preflight: bool, headers: &mut axum::http::HeaderMap) {
    use axum::http::{HeaderValue, header};
    let origins = &state.config.cors_origins;
    // Any origin when none are configured, else the request's when it is one of them.
    let allowed = if origins.is_empty() {
        Some(HeaderValue::from_static("*"))
    } else {
        origin.filter(|origin| origin.to_str().is_ok_and(|origin| origins.iter().any(|allowed| allowed == origin))).cloned()
    };
    if !origins.is_empty() {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    let Some(allowed) = allowed else { return };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET,POST,OPTIONS"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization,content-type,if-none-match,last-event-id,x-api-key"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    } else {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("etag,www-authenticate"));
    }
}

/// Counts each request of a matched route, by its template, method and status, with its latency.
async fn track(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route =
        request.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |path| crate::telemetry::intern(path.as_str()));
    let method = crate::telemetry::method_name(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.telemetry.request(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// The answer to an `OPTIONS` that is not a CORS preflight (the CORS layer answers those first).
async fn options() -> axum::http::StatusCode {
    axum::http::StatusCode::NO_CONTENT
}

/// The document's fixed part; every path and schema comes from the handlers (`#[utoipa::path]`, `ToSchema`).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Vexil",
        description = "Feature flags across development, staging and production. Errors are `{\"error\": {\"code\", \"message\"}}`; \
                       docs/api.md explains roles, the production gate, idempotency and the stream's frames.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(crate::error::ErrorBody, crate::idempotency::Replayed)),
    tags(
        (name = "flags", description = "Definitions: a flag is defined once for every environment"),
        (name = "states", description = "What each environment serves, promotion, copy and bulk changes"),
        (name = "environments", description = "Environments, export and import"),
        (name = "rollouts", description = "Gradual rollouts, step by step under the guard"),
        (name = "metrics", description = "SDK metrics and what the guard saw"),
        (name = "triggers", description = "Monitoring triggers"),
        (name = "audit", description = "The append-only audit trail"),
        (name = "accounts", description = "Login, users, tokens and SDK keys"),
        (name = "stream", description = "Real-time changes over server-sent events"),
        (name = "ofrep", description = "The OpenFeature Remote Evaluation Protocol"),
        (name = "operations", description = "Health, readiness and Prometheus metrics"),
    )
)]
struct ApiDocument;

/// What every operation shares, added once the paths are collected: the credentials, the error body of every
/// status an operation does not describe itself, and the `Idempotency-Key` header of writes.
fn conventions(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, path::ParameterBuilder, path::ParameterIn};
    let components = document.components.get_or_insert_with(Default::default);
    open_flattened(components);
    let bearer = |what: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(what.to_owned());
        SecurityScheme::Http(http)
    };
    components.add_security_scheme("bearer", bearer("a personal token (`vxl_…`, from `POST /api/auth/login` or `vexil token create`)"));
    components.add_security_scheme("sdk_key", bearer("an SDK key (`vxs_…`), which reads one environment"));
    let mut header = ApiKeyValue::new("X-API-Key");
    header.description = Some("an SDK key, for OFREP clients that send it this way".to_owned());
    components.add_security_scheme("sdk_key_header", SecurityScheme::ApiKey(ApiKey::Header(header)));
    let mut cookie = ApiKeyValue::new(crate::auth::SESSION_COOKIE);
    cookie.description = Some("the panel's session; state-changing requests also send `X-CSRF-Token`".to_owned());
    components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
    document.security =
        Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new()), SecurityRequirement::new("session", Vec::<String>::new())]);
    let error = ResponseBuilder::new()
        .description("an error: the status says which kind, the code and message say what and why (docs/api.md)")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build();
    for (path, item) in document.paths.paths.iter_mut() {
        let writes = [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for (write, operation) in [true, true, true, true].into_iter().zip(writes).chain([(false, &mut item.get)]) {
            let Some(operation) = operation else { continue };
            operation.responses.responses.entry("default".to_owned()).or_insert_with(|| RefOr::T(error.clone()));
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter {
                    name_parameter(parameter);
                }
            }
            let anonymous = operation.security.as_ref().is_some_and(|any| any.iter().all(|one| *one == SecurityRequirement::default()));
            if write && path.starts_with("/api/") && !anonymous {
                replayable(operation);
                let key = ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .description(Some("a key of your choosing: a retry with the same key and request is carried out at most once"))
                    .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).max_length(Some(200))))
                    .build();
                operation.parameters.get_or_insert_with(Vec::new).push(RefOr::T(key));
            }
        }
    }
}

/// A write retried with the `Idempotency-Key` of one that was committed gets the first answer again, or, when that
/// answer was not kept (it carried a secret, or the first attempt ended in an error after the store committed),
/// `200` with [`crate::idempotency::Replayed`]: the operation's `200` is either.
fn replayable(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{ContentBuilder, OneOfBuilder, Ref, RefOr, ResponseBuilder};
    let replayed = Ref::from_schema_name("Replayed");
    match operation.responses.responses.get_mut("200") {
        Some(RefOr::T(response)) => {
            if let Some(RefOr::T(content)) = response.content.get_mut("application/json") {
                let mut either = OneOfBuilder::new();
                if let Some(first) = content.schema.take() {
                    either = either.item(first);
                }
                content.schema = Some(either.item(replayed).into());
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let response = ResponseBuilder::new()
                .description("a retry with the Idempotency-Key of a write that was done, whose answer was not kept")
                .content("application/json", ContentBuilder::new().schema(Some(replayed)).build())
                .build();
            operation.responses.responses.insert("200".to_owned(), RefOr::T(response));
        }
    }
}

/// A struct flattened into another (`#[serde(flatten)]`) is an `allOf` part; when it refuses unknown fields as a
/// request body (`additionalProperties: false`), the part is inlined without that, or no object could match both parts.
fn open_flattened(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let named = components.schemas.clone();
    for schema in components.schemas.values_mut() {
        let RefOr::T(Schema::AllOf(all_of)) = schema else { continue };
        for item in &mut all_of.items {
            let RefOr::Ref(reference) = item else { continue };
            let name = reference.ref_location.trim_start_matches("#/components/schemas/");
            if let Some(RefOr::T(Schema::Object(object))) = named.get(name)
                && matches!(object.additional_properties.as_deref(), Some(AdditionalProperties::FreeForm(false)))
            {
                let mut open = object.clone();
                open.additional_properties = None;
                *item = RefOr::T(Schema::Object(open));
            }
        }
    }
}

/// A path parameter naming a flag or an environment gets the syntax the server accepts and an example.
fn name_parameter(parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::PartialSchema;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    if parameter.parameter_in != ParameterIn::Path {
        return;
    }
    let (schema, example) = match parameter.name.as_str() {
        "flag" => (vexil_core::FlagName::schema(), "ui.new_feature"),
        "environment" => (vexil_core::EnvKey::schema(), "dev"),
        _ => return,
    };
    *parameter = ParameterBuilder::new()
        .name(parameter.name.clone())
        .parameter_in(ParameterIn::Path)
        .required(utoipa::openapi::Required::True)
        .description(parameter.description.clone())
        .schema(Some(schema))
        .example(Some(serde_json::json!(example)))
        .build();
}

/// The OpenAPI 3.1 document of the whole HTTP API, and the API's routes, from one list of handlers.
fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = utoipa_axum::router::OpenApiRouter::with_openapi(<ApiDocument as utoipa::OpenApi>::openapi())
        .merge(health::router())
        .merge(flags::router())
        .merge(states::router())
        .merge(audit::router())
        .merge(users::router())
        .merge(triggers::router())
        .merge(metrics::router())
        .merge(rollouts::router())
        .merge(
            stream::router()
                .merge(ofrep::router())
                .merge(events::router())
                .merge(metrics::receiver())
                .layer(axum::middleware::from_fn_with_state(state.clone(), cors)),
        )
        .merge(environments::router(state.config.body_limit_for("/api/environments/{environment}/import")))
        .merge(registry::router(state.config.body_limit_for("/api/flags/apply")))
        .split_for_parts();
    conventions(&mut document);
    (router, document)
}

pub(crate) fn router(state: AppState) -> Router {
    let (api, document) = api(&state);
    let document = axum::body::Bytes::from(document.to_json().expect("the OpenAPI document serialises"));
    let openapi = move || {
        let document = document.clone();
        async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], document) }
    };
    Router::new()
        .merge(api)
        .merge(panel::router())
        .route("/api/openapi.json", axum::routing::get(openapi))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .fallback(|| async { ApiError::not_found("no such endpoint; the API lives under /api (see docs/api.md)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not accept that method")
        })
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::answers::layer))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::idempotency::layer))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.config.body_timeout))
        .with_state(state)
}
