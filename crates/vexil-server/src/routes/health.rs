//! `/healthz` (the process answers) and `/readyz` (the store answers and the catalog is loaded).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

/// Whether the process answers.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    status: String,
}

/// Whether the server can serve and take writes.
#[derive(Debug, Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: String,
    /// `ok`, or what is wrong with the store.
    store: String,
    /// Why writes fail, when they do.
    #[serde(skip_serializing_if = "Option::is_none")]
    writes: Option<String>,
}

/// Prometheus metrics (text exposition). Like the health endpoints it needs no credentials: labels are route
/// templates, methods, statuses, environment keys and fixed reasons, never flag names, users or keys.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = OK, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.telemetry.render())
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = OK, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

/// Ready when the store answers and takes writes: after a write failed for the store's sake (disk full, a read-only
/// replica, no answer), readiness probes with a write until one works, so such a server leaves the load balancer's
/// rotation instead of refusing every change while it reports ready.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = OK, body = Readiness), (status = SERVICE_UNAVAILABLE, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let not_ready = |store: String, writes: String| Readiness { status: "not_ready".to_owned(), store, writes: Some(writes) };
    if let Some(lost) = state.check_identity().await {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(not_ready(lost, "refused".to_owned())));
    }
    let failure = state.write_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let probe = match failure {
        Some(_) => state.store.ping_write().await,
        None => state.store.ping().await,
    };
    match probe {
        Ok(()) => {
            state.write_failed(None);
            (StatusCode::OK, Json(Readiness { status: "ready".to_owned(), store: "ok".to_owned(), writes: None }))
        }
        Err(error) => {
            let writes = failure.unwrap_or_else(|| error.to_string());
            (StatusCode::SERVICE_UNAVAILABLE, Json(not_ready(error.to_string(), writes)))
        }
    }
}
