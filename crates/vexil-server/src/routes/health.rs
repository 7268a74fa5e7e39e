//! `/healthz` (the process answers) and `/readyz` (the store answers and the catalog is loaded).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::service::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready", "store": "ok"}))),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "store": error.to_string()}))),
    }
}
