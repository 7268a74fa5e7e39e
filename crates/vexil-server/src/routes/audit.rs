//! The audit trail: `GET /api/flags/audit` (the seed's path) and its verification.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use vexil_core::{AuditAction, AuditRecord, FlagName};
use vexil_store::{AuditQuery, ChainReport};

use crate::auth::Actor;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::service::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/flags/audit", get(query)).route("/api/flags/audit/verify", get(verify))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    flag: Option<String>,
    #[serde(alias = "environment")]
    env: Option<String>,
    user: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct AuditResponse {
    entries: Vec<AuditRecord>,
    next: Option<String>,
}

async fn query(State(state): State<AppState>, _actor: Actor, ApiQuery(filters): ApiQuery<Filters>) -> ApiResult<Json<AuditResponse>> {
    let flag = filters.flag.as_deref().map(FlagName::parse).transpose()?.map(|flag| flag.to_string());
    let environment =
        filters.env.as_deref().map(|environment| state.environment(environment)).transpose()?.map(|environment| environment.name);
    let action = filters.action.as_deref().map(AuditAction::parse).transpose()?;
    let since = filters.since.as_deref().map(crate::time::parse_moment).transpose().map_err(ApiError::bad_request)?;
    let until = filters.until.as_deref().map(crate::time::parse_moment).transpose().map_err(ApiError::bad_request)?;
    let before_id = filters
        .cursor
        .as_deref()
        .map(|cursor| {
            cursor.parse::<u64>().map_err(|_| ApiError::bad_request("cursor is not valid; pass back the `next` value of the previous page"))
        })
        .transpose()?;
    let limit = filters.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request(format!("limit {limit} is out of range; accepted: 1 to 1000")));
    }
    let page = state.store.audit(AuditQuery { flag, environment, user: filters.user, action, since, until, before_id, limit }).await?;
    Ok(Json(AuditResponse { entries: page.entries, next: page.next.map(|id| id.to_string()) }))
}

async fn verify(State(state): State<AppState>, _actor: Actor) -> ApiResult<Json<ChainReport>> {
    Ok(Json(state.store.verify_audit().await?))
}
