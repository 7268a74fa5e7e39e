//! `/healthz` (the process answers) and `/readyz` (the store answers and the catalog is loaded).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::service::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// Prometheus metrics (text exposition). Like the health endpoints it needs no credentials: labels are route
/// templates, methods, statuses, environment keys and fixed reasons, never flag names, users or keys.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.telemetry.render())
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers and takes writes: after a write failed for the store's sake (disk full, a read-only
/// replica, no answer), readiness probes with a write until one works, so such a server leaves the load balancer's
/// rotation instead of refusing every change while it reports ready.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Some(lost) = state.check_identity().await {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "store": lost, "writes": "refused"})));
    }
    let failure = state.write_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let probe = match failure {
        Some(_) => state.store.ping_write().await,
        None => state.store.ping().await,
    };
    match probe {
        Ok(()) => {
            state.write_failed(None);
            (StatusCode::OK, Json(json!({"status": "ready", "store": "ok"})))
        }
        Err(error) => {
            let writes = failure.unwrap_or_else(|| error.to_string());
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "store": error.to_string(), "writes": writes})))
        }
    }
}
