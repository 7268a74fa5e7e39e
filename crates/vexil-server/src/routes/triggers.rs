//! Monitoring triggers: a secret URL per flag and environment that a monitoring system (Alertmanager, Grafana,
//! Sentry webhooks) calls when an alert fires.
//!
//! `POST /api/triggers {"flag", "environment", "name"?, "action"?}` creates one (with the right to change that
//! environment) and answers its URL once; the secret is stored hashed, listed and revoked like any token. A trigger
//! has an explicit action, as LaunchDarkly's do: `disable` (the default: the kill switch) or `rollback` (restore
//! the last state a person set before the change that produced the current one). Either is an automatic action,
//! so it only ever reduces exposure: a rollback that would re-enable a disabled flag or widen a rollout is refused
//! (409) and changes nothing, and a repeated alert changes nothing more.
//!
//! `POST /api/triggers/{secret}` acts only on a notification it recognises as firing ([`Notification`]); a resolved
//! or "ok" notification changes nothing, and anything else is refused with the shapes that are accepted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::gate::Automation;
use vexil_core::{AuditAction, FlagName};
use vexil_store::{TokenKind, Write};

use crate::auth::{Actor, hash_token, random_secret, token_record};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::service::{AppState, Remedy, RemedyOutcome};

/// The prefix of trigger secrets.
pub const TRIGGER_PREFIX: &str = "vxt_";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(fire))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTrigger {
    flag: String,
    /// The environment's key or long name.
    environment: String,
    /// A label; `<flag> in <environment>` when absent.
    name: Option<String>,
    /// `disable` (default) or `rollback`.
    action: Option<String>,
}

/// A trigger just created: its URL (with the secret) is shown once.
#[derive(Debug, Serialize, ToSchema)]
struct TriggerCreated {
    id: String,
    flag: FlagName,
    environment: String,
    name: String,
    /// `disable` or `rollback`.
    action: String,
    /// What the monitoring system calls (`POST`).
    url: String,
}

/// What a trigger call did.
#[derive(Debug, Serialize, ToSchema)]
struct TriggerFired {
    flag: FlagName,
    environment: String,
    /// `disable` or `rollback`.
    action: String,
    /// Whether it changed the flag.
    acted: bool,
    /// The flag's state now.
    state: Option<vexil_core::FlagState>,
    /// Why it did not act.
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

/// What firing a trigger does.
fn parse_action(input: Option<&str>) -> ApiResult<Remedy> {
    match input.unwrap_or("disable") {
        "disable" => Ok(Remedy::Disable),
        "rollback" => Ok(Remedy::Rollback),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            format!("trigger action `{}` is unknown; accepted: disable (the default), rollback", vexil_core::name::printable(other)),
        )),
    }
}

fn action_name(remedy: Remedy) -> &'static str {
    match remedy {
        Remedy::Disable => "disable",
        Remedy::Rollback => "rollback",
    }
}

/// Create a monitoring trigger for a flag in an environment (with the right to change that environment).
#[utoipa::path(post, path = "/api/triggers", tag = "triggers", request_body = CreateTrigger,
    responses((status = CREATED, body = TriggerCreated)))]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateTrigger>,
) -> ApiResult<(StatusCode, Json<TriggerCreated>)> {
    let definition = state.definition(&request.flag)?;
    let environment = state.environment(&request.environment)?;
    actor.role.may_change(&environment).map_err(ApiError::forbidden)?;
    let action = parse_action(request.action.as_deref())?;
    let name = request.name.unwrap_or_else(|| format!("{} in {}", definition.name, environment.key));
    if !vexil_core::text::has_visible_text(&name)
        || name.chars().count() > 100
        || name.chars().any(|c| c.is_control() || vexil_core::text::is_bidi_control(c))
    {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "trigger name must be 1 to 100 printable characters"));
    }
    let secret = random_secret(TRIGGER_PREFIX);
    let mut record = token_record(&secret, TokenKind::Trigger, &actor.email, Some(environment.key.clone()), &name);
    record.flag = Some(definition.name.to_string());
    record.action = Some(action_name(action).to_owned());
    let mut entry = vexil_core::AuditDraft {
        flag: Some(definition.name.to_string()),
        action: AuditAction::TokenCreate,
        environment: Some(environment.name.clone()),
        user: actor.email.clone(),
        timestamp: crate::time::now(),
        reason: None,
        from_environment: None,
        before: None,
        after: Some(json!({"id": record.id, "kind": "trigger", "name": name, "action": action_name(action)})),
        source: actor.source,
        definition: None,
    };
    entry.reason = Some(format!("monitoring trigger \"{name}\" created ({})", action_name(action)));
    state.commit_as(&actor, Write { tokens: vec![record.clone()], audit: vec![entry], ..Write::default() }).await?;
    let host = headers.get("host").and_then(|value| value.to_str().ok()).unwrap_or("127.0.0.1:7070");
    let scheme = if headers.get("x-forwarded-proto").is_some_and(|value| value == "https") { "https" } else { "http" };
    let url = format!("{scheme}://{host}/api/triggers/{secret}");
    Ok((
        StatusCode::CREATED,
        Json(TriggerCreated {
            id: record.id,
            flag: definition.name,
            environment: environment.key.to_string(),
            name,
            action: action_name(action).to_owned(),
            url,
        }),
    ))
}

/// What a monitoring system's call says, in the shapes a trigger recognises.
///
/// - Alertmanager (and Grafana's unified alerting, which sends the same shape): `{"status": "firing" | "resolved",
///   "alerts": [...]}`; the alert's name is `commonLabels.alertname` or the first alert's.
/// - Grafana's legacy alerting: `{"state": "alerting" | "ok" | "no_data" | "paused" | "pending", "ruleName": ...}`.
/// - Sentry: `{"action": "triggered" | "critical" | "warning" | "resolved", "data": {...}}` (issue and metric alerts);
///   `triggered` and `critical` fire.
/// - A plain POST with an empty body fires.
#[derive(Debug, PartialEq, Eq)]
pub enum Notification {
    /// Act, for the alert of this name.
    Firing(String),
    /// A notification that the alert is over (or not serious): nothing to do.
    Quiet(&'static str),
}

/// Reads a trigger call's body; `Err` says what was expected.
pub fn notification(body: &[u8]) -> Result<Notification, String> {
    const EXPECTED: &str = "expected an Alertmanager or Grafana notification ({\"status\": \"firing\", \"alerts\": [...]}), a Grafana legacy alert ({\"state\": \"alerting\"}), a Sentry alert ({\"action\": \"triggered\", \"data\": {...}}) or an empty body";
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Notification::Firing("plain POST".to_owned()));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|_| format!("the body is not JSON; {EXPECTED}"))?;
    let text = |pointer: &str| payload.pointer(pointer).and_then(Value::as_str).map(vexil_core::name::printable);
    let named = |candidates: &[&str]| candidates.iter().find_map(|pointer| text(pointer)).unwrap_or_else(|| "unnamed alert".to_owned());
    if let (Some(status), Some(Value::Array(_))) = (payload.get("status").and_then(Value::as_str), payload.get("alerts")) {
        return match status {
            "firing" => Ok(Notification::Firing(named(&["/commonLabels/alertname", "/alerts/0/labels/alertname", "/title"]))),
            "resolved" => Ok(Notification::Quiet("the alert is resolved")),
            other => Err(format!("status `{}` is neither `firing` nor `resolved`; {EXPECTED}", vexil_core::name::printable(other))),
        };
    }
    if let Some(state) = payload.get("state").and_then(Value::as_str) {
        return match state {
            "alerting" => Ok(Notification::Firing(named(&["/ruleName", "/title"]))),
            "ok" | "no_data" | "paused" | "pending" => Ok(Notification::Quiet("the alert is not firing")),
            other => Err(format!("state `{}` is not a Grafana alert state; {EXPECTED}", vexil_core::name::printable(other))),
        };
    }
    if let (Some(action), Some(_)) = (payload.get("action").and_then(Value::as_str), payload.get("data")) {
        return match action {
            "triggered" | "critical" => Ok(Notification::Firing(named(&[
                "/data/event/title",
                "/data/metric_alert/alert_rule/name",
                "/data/triggered_rule",
                "/data/description_title",
            ]))),
            "resolved" | "warning" => Ok(Notification::Quiet("the alert is not critical")),
            other => Err(format!("action `{}` is not a Sentry alert action; {EXPECTED}", vexil_core::name::printable(other))),
        };
    }
    Err(format!("the body is not a notification this trigger recognises; {EXPECTED}"))
}

/// Fire a trigger: the secret in the URL is the credential. Only a notification that says an alert fires acts
/// (Alertmanager or Grafana `{"status": "firing", "alerts": [...]}`, Grafana legacy `{"state": "alerting"}`, Sentry
/// `{"action": "triggered" | "critical", "data": {...}}`, or an empty body); a resolved one changes nothing.
#[utoipa::path(post, path = "/api/triggers/{secret}", tag = "triggers", security(()),
    params(("secret" = String, Path, description = "the trigger's secret, `vxt_…`")),
    request_body(content = Option<Object>, description = "the monitoring system's notification"),
    responses((status = OK, body = TriggerFired)))]
async fn fire(State(state): State<AppState>, ApiPath(secret): ApiPath<String>, body: Bytes) -> ApiResult<(StatusCode, Json<TriggerFired>)> {
    let not_found = || ApiError::not_found("no such trigger");
    let record = state
        .store
        .token_by_hash(&hash_token(&secret))
        .await?
        .filter(|record| record.kind == TokenKind::Trigger && record.revoked_at.is_none())
        .ok_or_else(not_found)?;
    let flag = record.flag.as_deref().and_then(|flag| FlagName::parse(flag).ok()).ok_or_else(not_found)?;
    let environment =
        record.environment.as_ref().and_then(|environment| state.config.environments.get(environment).cloned()).ok_or_else(not_found)?;
    // Triggers made before actions existed rolled back; they keep doing so (under the exposure rule).
    let remedy = parse_action(Some(record.action.as_deref().unwrap_or("rollback")))?;
    let answer = |acted: bool, why: Option<&str>| TriggerFired {
        flag: flag.clone(),
        environment: environment.key.to_string(),
        action: action_name(remedy).to_owned(),
        acted,
        state: state.catalog.state(&environment.key, &flag),
        why: why.map(str::to_owned),
    };
    let alert =
        match notification(&body).map_err(|message| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_notification", message))? {
            Notification::Firing(alert) => alert,
            Notification::Quiet(why) => return Ok((StatusCode::OK, Json(answer(false, Some(why))))),
        };
    let actor = Actor::automatic(Automation::Trigger, &record.id);
    let reason = format!("monitoring trigger \"{}\" fired: {alert}", record.name);
    match state.remedy(&actor, &environment, &flag, remedy, reason).await? {
        RemedyOutcome::Done(changes) if !changes.is_empty() => Ok((StatusCode::OK, Json(answer(true, None)))),
        RemedyOutcome::Done(_) => Ok((StatusCode::OK, Json(answer(false, Some("nothing to change"))))),
        // The exposure rule: say so loudly, so the monitoring system shows the trigger did not act.
        RemedyOutcome::WidensExposure(why) => Err(ApiError::conflict(
            "widens_exposure",
            format!("the trigger did not act: {why}; use a trigger with --action disable to turn the flag off"),
        )),
        RemedyOutcome::Unrestorable(why) => Err(ApiError::conflict(
            "cannot_restore",
            format!("the trigger did not act: {why}; use a trigger with --action disable to turn the flag off"),
        )),
        RemedyOutcome::Nothing(why) => Ok((StatusCode::OK, Json(answer(false, Some(&why))))),
    }
}
