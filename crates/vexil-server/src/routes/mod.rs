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
mod states;
mod users;

pub(crate) fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    Router::new()
        .merge(health::router())
        .merge(flags::router())
        .merge(states::router())
        .merge(audit::router())
        .merge(users::router())
        .merge(environments::router(body_limit * 8))
        .fallback(|| async { ApiError::not_found("no such endpoint; the API lives under /api (see docs/api.md)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not accept that method")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
