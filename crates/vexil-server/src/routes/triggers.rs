//! Monitoring triggers: a secret URL per flag and environment that a monitoring system (Alertmanager, Grafana,
//! Sentry webhooks) calls to roll the flag back.
//!
//! `POST /api/triggers {"flag", "environment", "name"?}` creates one (with the right to change that environment)
//! and answers its URL once; the secret is stored hashed, listed and revoked like any token. `POST
//! /api/triggers/{secret}` with any JSON (or none) rolls the flag back, audited as `rollback` by `system:trigger`
//! with the trigger's and the alert's names. An Alertmanager notification whose status is `resolved` changes nothing,
//! and neither does a repeated one: a flag already rolled back is not rolled back again.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use vexil_core::{AuditAction, FlagName, Role, Source};
use vexil_store::{TokenKind, Write};

use crate::auth::{Actor, hash_token, random_secret, token_record};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::service::AppState;

/// The prefix of trigger secrets.
pub const TRIGGER_PREFIX: &str = "vxt_";

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/triggers", post(create)).route("/api/triggers/{secret}", post(fire))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTrigger {
    flag: String,
    environment: String,
    name: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateTrigger>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let definition = state.definition(&request.flag)?;
    let environment = state.environment(&request.environment)?;
    actor.role.may_change(&environment).map_err(ApiError::forbidden)?;
    let name = request.name.unwrap_or_else(|| format!("{} in {}", definition.name, environment.key));
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "trigger name must be 1 to 100 printable characters"));
    }
    let secret = random_secret(TRIGGER_PREFIX);
    let mut record = token_record(&secret, TokenKind::Trigger, &actor.email, Some(environment.key.clone()), &name);
    record.flag = Some(definition.name.to_string());
    let mut entry = vexil_core::AuditDraft {
        flag: Some(definition.name.to_string()),
        action: AuditAction::TokenCreate,
        environment: Some(environment.name.clone()),
        user: actor.email.clone(),
        timestamp: crate::time::now(),
        reason: None,
        from_environment: None,
        before: None,
        after: Some(json!({"id": record.id, "kind": "trigger", "name": name})),
        source: actor.source,
    };
    entry.reason = Some(format!("monitoring trigger \"{name}\" created"));
    state.commit(Write { tokens: vec![record.clone()], audit: vec![entry], ..Write::default() }).await?;
    let host = headers.get("host").and_then(|value| value.to_str().ok()).unwrap_or("127.0.0.1:7070");
    let scheme = if headers.get("x-forwarded-proto").is_some_and(|value| value == "https") { "https" } else { "http" };
    let url = format!("{scheme}://{host}/api/triggers/{secret}");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": record.id, "flag": definition.name, "environment": environment.key, "name": name, "url": url})),
    ))
}

/// The alert's name in an Alertmanager webhook (`commonLabels.alertname`, or the first alert's), or a generic payload's `title`/`name`.
fn alert_name(payload: &Value) -> String {
    let candidates = [
        payload.pointer("/commonLabels/alertname"),
        payload.pointer("/alerts/0/labels/alertname"),
        payload.get("title"),
        payload.get("name"),
        payload.get("alert"),
    ];
    let name = candidates.into_iter().flatten().find_map(Value::as_str).unwrap_or("unnamed alert");
    vexil_core::name::printable(name)
}

async fn fire(State(state): State<AppState>, ApiPath(secret): ApiPath<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::not_found("no such trigger");
    let record = state
        .store
        .token_by_hash(&hash_token(&secret))
        .await?
        .filter(|record| record.kind == TokenKind::Trigger && record.revoked_at.is_none())
        .ok_or_else(not_found)?;
    let payload: Value =
        if body.iter().all(u8::is_ascii_whitespace) { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    if payload.get("status").and_then(Value::as_str) == Some("resolved") {
        return Ok(Json(json!({"rolled_back": false, "why": "the alert is resolved"})));
    }
    let flag = record.flag.as_deref().and_then(|flag| FlagName::parse(flag).ok()).ok_or_else(not_found)?;
    let environment =
        record.environment.as_ref().and_then(|environment| state.config.environments.get(environment).cloned()).ok_or_else(not_found)?;
    let actor = Actor { email: "system:trigger".to_owned(), role: Role::Admin, token_id: record.id.clone(), source: Source::System };
    let reason = format!("monitoring trigger \"{}\" fired: {}", record.name, alert_name(&payload));
    let changes = state.rollback(&actor, &environment, &flag, reason).await?;
    let current = state.catalog.state(&environment.key, &flag);
    let rolled_back = !changes.is_empty();
    let mut answer = json!({"rolled_back": rolled_back, "flag": flag, "environment": environment.key, "state": current});
    if !rolled_back {
        answer["why"] = json!("the flag is already rolled back; a repeated alert changes nothing");
    }
    Ok(Json(answer))
}
