//! Rollout plans: start one, read it, pause, resume or abort it (see [`crate::rollout`] for the schedule).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::{AuditAction, FlagName, FlagState, FlagType, RolloutPlan};

use crate::auth::Actor;
use crate::error::{ApiError, ApiJson, ApiJsonOrEmpty, ApiPath, ApiResult};
use crate::rollout::{new_plan, percent_text, step_change};
use crate::service::{AppState, Edit, PlannedChange};
use crate::wire::ReasonRequest;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status, start)).routes(routes!(control))
}

/// A flag's state after a rollout change.
#[derive(Debug, Serialize, ToSchema)]
struct RolloutChanged {
    flag: FlagName,
    environment: String,
    /// The state now (its `rollout` is the plan, while it runs).
    state: Option<FlagState>,
    /// What it serves now, in words (`Enabled · rolling out: step 1 of 3, 10 %`).
    summary: Option<String>,
}

/// Where a flag's rollout stands.
#[derive(Debug, Serialize, ToSchema)]
struct RolloutStatus {
    flag: FlagName,
    environment: String,
    enabled: bool,
    /// The share served `true` now (100 when enabled without a split; none when disabled).
    percent: Option<f64>,
    /// The plan, while one runs.
    plan: Option<RolloutPlan>,
    /// What the guard last saw.
    guard: Option<crate::guard::Report>,
    /// Why the next step is not taken yet, when it is due and held.
    waiting: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    /// Percentages, ascending, each in (0, 100], three decimals at most.
    steps: Vec<f64>,
    /// Time between steps: `4s`, `30m`, `2h`, `1d`.
    every: String,
    reason: Option<String>,
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
}

/// Start a gradual rollout of a boolean flag: growing percentages on a schedule, each step taken only after the guard
/// found the current one healthy. In a protected environment it needs the admin role and a reason.
#[utoipa::path(post, path = "/api/flags/{flag}/environments/{environment}/rollout", tag = "rollouts", params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = super::states::ENVIRONMENT)),
    request_body = StartRequest, responses((status = OK, body = RolloutChanged)))]
async fn start(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<StartRequest>,
) -> ApiResult<Json<RolloutChanged>> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    if definition.flag_type != FlagType::Boolean {
        return Err(unprocessable(format!(
            "a rollout serves true to a growing share of users, so it needs a boolean flag; {} is {}",
            definition.name,
            definition.flag_type.as_str()
        )));
    }
    let current = state.catalog.state(&environment.key, &definition.name).ok_or_else(|| ApiError::internal("state missing"))?;
    let plan =
        new_plan(&request.steps, &request.every, &actor.email, request.reason.clone(), current.spec.clone()).map_err(unprocessable)?;
    let summary = format!(
        "rollout started: {} every {}; step 1/{}: {}",
        plan.steps.iter().map(|step| percent_text(*step)).collect::<Vec<_>>().join(" → "),
        request.every,
        plan.steps.len(),
        percent_text(plan.steps[0]),
    );
    let mut change = step_change(&state, &environment, &definition.name, &plan, 0, current.version)
        .ok_or_else(|| ApiError::internal("no first step"))?;
    change.summary = Some(summary);
    state.commit_states(&actor, vec![change]).await?;
    let now = state.catalog.state(&environment.key, &definition.name);
    let summary = now.as_ref().map(|now| vexil_core::describe::summary(&definition, now));
    Ok(Json(RolloutChanged { flag: definition.name, environment: environment.key.to_string(), state: now, summary }))
}

/// Where a flag's rollout stands: the plan, the guard's last look and what the next step waits for.
#[utoipa::path(get, path = "/api/flags/{flag}/environments/{environment}/rollout", tag = "rollouts", params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = super::states::ENVIRONMENT)),
    responses((status = OK, body = RolloutStatus)))]
async fn status(
    State(state): State<AppState>,
    _actor: Actor,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
) -> ApiResult<Json<RolloutStatus>> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    let current = state.catalog.state(&environment.key, &definition.name).ok_or_else(|| ApiError::internal("state missing"))?;
    let report = state.guard.report(&environment.key, &definition.name);
    let step = report.as_ref().and_then(|report| report.step.clone()).filter(|step| step.version == current.version);
    // Why the next step is not taken yet, when it is due and held.
    let waiting =
        current.rollout.as_ref().filter(|plan| !plan.paused && state.config.rollout_holds_without_evidence).and_then(|_| match &step {
            Some(step) if step.healthy => None,
            Some(step) => step.waiting.clone().or_else(|| Some("waiting: the guard found a regression at this step".to_owned())),
            None => Some(
                "waiting for the guard's first look at this step (the next step needs its evidence that this one is healthy)".to_owned(),
            ),
        });
    let percent =
        current.spec.rollout_thousandths().map(|share| share as f64 / 1000.0).or(if current.spec.enabled { Some(100.0) } else { None });
    Ok(Json(RolloutStatus {
        flag: definition.name,
        environment: environment.key.to_string(),
        enabled: current.spec.enabled,
        percent,
        plan: current.rollout,
        guard: report,
        waiting,
    }))
}

/// Pause, resume or abort a running plan (abort keeps the current percentage).
#[utoipa::path(post, path = "/api/flags/{flag}/environments/{environment}/rollout/{action}", tag = "rollouts", params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = super::states::ENVIRONMENT),
        ("action" = String, Path, description = "`pause`, `resume` or `abort`")),
    request_body(content = Option<ReasonRequest>), responses((status = OK, body = RolloutChanged)))]
async fn control(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((flag, environment, action)): ApiPath<(String, String, String)>,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<ReasonRequest>,
) -> ApiResult<Json<RolloutChanged>> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    let current = state.catalog.state(&environment.key, &definition.name).ok_or_else(|| ApiError::internal("state missing"))?;
    let Some(plan) = current.rollout.clone() else {
        return Err(ApiError::conflict("no_rollout", format!("{} has no rollout in progress in {}", definition.name, environment.key)));
    };
    let (rollout, what) = match action.as_str() {
        "pause" => (Some(RolloutPlan { paused: true, ..plan }), "rollout paused"),
        "resume" => {
            let next_at = crate::rollout::one_interval_from_now(&plan);
            (Some(RolloutPlan { paused: false, next_at, ..plan }), "rollout resumed")
        }
        "abort" => (None, "rollout aborted; the current percentage stays"),
        other => {
            return Err(ApiError::not_found(format!(
                "rollout action `{}` is unknown; accepted: pause, resume, abort",
                vexil_core::name::printable(other)
            )));
        }
    };
    let change = PlannedChange {
        environment: environment.clone(),
        flag: definition.name.clone(),
        edit: Edit::Replace(current.spec.clone()),
        expected_version: Some(current.version),
        action: AuditAction::Update,
        reason: request.reason,
        from_environment: None,
        expected_definition_version: None,
        summary: Some(what.to_owned()),
        rollout,
    };
    state.commit_states(&actor, vec![change]).await?;
    let now = state.catalog.state(&environment.key, &definition.name);
    let summary = now.as_ref().map(|now| vexil_core::describe::summary(&definition, now));
    Ok(Json(RolloutChanged { flag: definition.name, environment: environment.key.to_string(), state: now, summary }))
}
