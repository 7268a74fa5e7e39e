//! The HTTP API: one module per resource, each with its own `router()`, merged here.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::service::AppState;

mod audit;
mod environments;
mod flags;
mod health;
pub(crate) mod metrics;
mod ofrep;
mod panel;
mod rollouts;
mod states;
pub(crate) mod stream;
mod triggers;
mod users;

/// Browsers may read the stream and OFREP from other origins (any, or the configured `cors_origins`): they
/// authenticate with keys in headers or the URL, never cookies, so no credentials mode is allowed.
/// The routes carrying it answer `OPTIONS` themselves, so a preflight gets these headers and never the API's 405.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    let allowed = if origins.is_empty() {
        tower_http::cors::AllowOrigin::any()
    } else {
        tower_http::cors::AllowOrigin::list(origins.iter().filter_map(|origin| axum::http::HeaderValue::from_str(origin).ok()))
    };
    tower_http::cors::CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([header::ETAG, header::WWW_AUTHENTICATE])
        .max_age(std::time::Duration::from_secs(600))
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

pub(crate) fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    Router::new()
        .merge(health::router())
        .merge(panel::router())
        .merge(flags::router())
        .merge(states::router())
        .merge(audit::router())
        .merge(users::router())
        .merge(triggers::router())
        .merge(metrics::router())
        .merge(rollouts::router())
        .merge(stream::router().merge(ofrep::router()).layer(cors(&state.config.cors_origins)))
        .merge(environments::router(body_limit * 8))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .fallback(|| async { ApiError::not_found("no such endpoint; the API lives under /api (see docs/api.md)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not accept that method")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::idempotency::layer))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.config.body_timeout))
        .with_state(state)
}
