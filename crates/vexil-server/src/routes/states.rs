//! Per-environment states: read, set, enable/disable, promote, copy between environments, bulk operations.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::{AuditAction, Environment, FlagName, diff_specs};

use super::flags::{etag, if_match};
use crate::auth::Actor;
use crate::error::{ApiError, ApiJson, ApiJsonOrEmpty, ApiPath, ApiResult};
use crate::service::{AppState, Edit, PlannedChange};
use crate::wire::{
    BatchDiffResponse, BulkRequest, BulkResponse, CopyRequest, FlagDiff, PromoteRequest, PromoteResponse, ReasonRequest, RollbackRequest,
    RollbackResponse, SetStateRequest, StateResponse,
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, set))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(rollback))
        .routes(routes!(promote))
        .routes(routes!(copy))
        .routes(routes!(bulk))
}

/// The path parameter naming an environment.
pub(super) const ENVIRONMENT: &str = "the environment's key or long name (`prod`, `production`)";

fn respond(state: &AppState, flag: &FlagName, environment: &Environment) -> ApiResult<(HeaderMap, Json<StateResponse>)> {
    let flag_state = state.catalog.state(&environment.key, flag).ok_or_else(|| ApiError::internal("flag has no state"))?;
    let definition = state.catalog.definition(flag).ok_or_else(|| ApiError::internal("flag has no definition"))?;
    Ok(answer(&definition, environment, false, flag_state))
}

/// A state as answered: for a write, the state that write produced.
fn answer(
    definition: &vexil_core::FlagDefinition,
    environment: &Environment,
    changed: bool,
    flag_state: vexil_core::FlagState,
) -> (HeaderMap, Json<StateResponse>) {
    let summary = vexil_core::describe::summary(definition, &flag_state);
    (
        etag(flag_state.version),
        Json(StateResponse {
            flag: definition.name.to_string(),
            environment: environment.key.to_string(),
            changed,
            summary,
            state: flag_state,
        }),
    )
}

/// A flag's state in one environment; the ETag is the state's version.
#[utoipa::path(get, path = "/api/flags/{flag}/environments/{environment}", tag = "states",
    params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = ENVIRONMENT)),
    responses((status = OK, body = StateResponse, headers(("etag" = String, description = "the state's version, for If-Match")))))]
async fn show(
    State(state): State<AppState>,
    _actor: Actor,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
) -> ApiResult<(HeaderMap, Json<StateResponse>)> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    respond(&state, &definition.name, &environment)
}

/// Replace a flag's whole state in one environment. In a protected environment it needs the admin role and a reason.
#[utoipa::path(put, path = "/api/flags/{flag}/environments/{environment}", tag = "states",
    params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = ENVIRONMENT),
        ("if-match" = Option<String>, Header, description = "the state's version (the ETag): a different one refuses the change")),
    request_body = SetStateRequest,
    responses((status = OK, body = StateResponse, headers(("etag" = String, description = "the new state's version")))))]
async fn set(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<SetStateRequest>,
) -> ApiResult<(HeaderMap, Json<StateResponse>)> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    let planned = PlannedChange {
        environment: environment.clone(),
        flag: definition.name.clone(),
        edit: Edit::Replace(request.spec()),
        expected_version: if_match(&headers)?,
        action: AuditAction::Update,
        reason: request.reason,
        from_environment: None,
        expected_definition_version: None,
        summary: None,
        rollout: None,
    };
    let (changed, produced) = state.commit_state(&actor, planned).await?;
    Ok(answer(&definition, &environment, changed, produced))
}

/// Enable a flag in one environment (in a protected one: admin role and a reason).
#[utoipa::path(post, path = "/api/flags/{flag}/environments/{environment}/enable", tag = "states",
    params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = ENVIRONMENT),
        ("if-match" = Option<String>, Header, description = "the state's version (the ETag): a different one refuses the change")),
    request_body(content = Option<ReasonRequest>),
    responses((status = OK, body = StateResponse, headers(("etag" = String, description = "the new state's version")))))]
async fn enable(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<ReasonRequest>,
) -> ApiResult<(HeaderMap, Json<StateResponse>)> {
    toggle::<true>(state, actor, headers, flag, environment, request).await
}

/// The kill switch: disable a flag in one environment. Never refused for a version, an archive or a running plan
/// (it ends the plan); If-Match is not read.
#[utoipa::path(post, path = "/api/flags/{flag}/environments/{environment}/disable", tag = "states",
    params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = ENVIRONMENT)),
    request_body(content = Option<ReasonRequest>),
    responses((status = OK, body = StateResponse, headers(("etag" = String, description = "the new state's version")))))]
async fn disable(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<ReasonRequest>,
) -> ApiResult<(HeaderMap, Json<StateResponse>)> {
    toggle::<false>(state, actor, headers, flag, environment, request).await
}

/// `…/enable` (`ENABLED = true`) and `…/disable`.
async fn toggle<const ENABLED: bool>(
    state: AppState,
    actor: Actor,
    headers: HeaderMap,
    flag: String,
    environment: String,
    request: ReasonRequest,
) -> ApiResult<(HeaderMap, Json<StateResponse>)> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    let planned = PlannedChange {
        environment: environment.clone(),
        flag: definition.name.clone(),
        // Applied to whatever is current under the write lock. A disable does not even read If-Match: a malformed or
        // stale header must not stand between anyone and the kill switch; an enable honours it.
        edit: Edit::SetEnabled(ENABLED),
        expected_version: if ENABLED { if_match(&headers)? } else { None },
        action: if ENABLED { AuditAction::Enable } else { AuditAction::Disable },
        reason: request.reason,
        from_environment: None,
        expected_definition_version: None,
        summary: None,
        rollout: None,
    };
    let (changed, produced) = state.commit_state(&actor, planned).await?;
    Ok(answer(&definition, &environment, changed, produced))
}

/// Undo the change that produced a flag's current state in one environment: restore the state before it (for a
/// state a rollout plan set, the state before the plan), as a change of the caller's, recorded as `rollback`. Like
/// any change it goes through the gate (in a protected environment: admin role and a reason), and unlike the
/// guard's it may widen exposure (undoing a disable turns the flag back on). `dry_run` answers what it would
/// restore and changes nothing; send its `target_version` back as `expected_version`.
#[utoipa::path(post, path = "/api/flags/{flag}/environments/{environment}/rollback", tag = "states",
    params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = ENVIRONMENT)),
    request_body(content = Option<RollbackRequest>),
    responses((status = OK, body = RollbackResponse)))]
async fn rollback(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<RollbackRequest>,
) -> ApiResult<Json<RollbackResponse>> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    state.may_address(&actor, &environment)?;
    let current = state.catalog.state(&environment.key, &definition.name).ok_or_else(|| ApiError::internal("flag has no state"))?;
    let nothing = |why: String| ApiError::conflict("nothing_to_roll_back", why);
    let record = state.producing_record(&environment, &definition.name, current.version).await?.ok_or_else(|| {
        nothing(format!(
            "the change that produced version {} of {} in {} is not in its recent history (the last 50 records); set the state you want with `vexil set`",
            current.version, definition.name, environment.key
        ))
    })?;
    let target = crate::service::state_before(&current, &record).ok_or_else(|| {
        nothing(format!("{} in {} has had only one state; there is nothing earlier to restore", definition.name, environment.key))
    })?;
    if target == current.spec && current.rollout.is_none() {
        return Err(nothing(format!(
            "the state before audit record {} ({} by {}) is what {} serves in {} now; there is nothing to undo",
            record.id,
            record.action.as_str(),
            record.user,
            definition.name,
            environment.key
        )));
    }
    if let Some(expected) = request.expected_version.filter(|expected| *expected != current.version) {
        return Err(ApiError::new(
            axum::http::StatusCode::PRECONDITION_FAILED,
            "version_conflict",
            format!("the state changed since you looked (version {expected}, now {}); look again", current.version),
        ));
    }
    let described = vexil_core::describe::replacement_changes(&definition, &current, &target);
    let respond = |applied: bool, produced: vexil_core::FlagState| RollbackResponse {
        flag: definition.name.to_string(),
        environment: environment.key.to_string(),
        undoes: record.id,
        undoes_action: record.action.as_str().to_owned(),
        undoes_user: record.user.clone(),
        described: described.clone(),
        target_version: current.version,
        applied,
        summary: vexil_core::describe::summary(&definition, &produced),
        state: produced,
    };
    if request.dry_run {
        return Ok(Json(respond(false, current.clone())));
    }
    let planned = PlannedChange {
        environment: environment.clone(),
        flag: definition.name.clone(),
        // The earlier state was accepted when it was written: its regex patterns are not judged again.
        edit: Edit::Carry(target),
        expected_version: Some(current.version),
        action: AuditAction::Rollback,
        reason: request.reason,
        from_environment: None,
        expected_definition_version: Some(definition.version),
        summary: Some(format!("undoes audit record {} ({} by {})", record.id, record.action.as_str(), record.user)),
        rollout: None,
    };
    let (changed, produced) = state.commit_state(&actor, planned).await?;
    Ok(Json(respond(changed, produced)))
}

/// Promote a flag's state from one environment to the next in the promotion order (or further, with `skip`),
/// all at once or as a gradual rollout. `dry_run` answers the diff and changes nothing.
#[utoipa::path(post, path = "/api/flags/{flag}/promote", tag = "states", params(("flag" = String, Path, description = super::flags::FLAG)),
    request_body = PromoteRequest, responses((status = OK, body = PromoteResponse)))]
async fn promote(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(flag): ApiPath<String>,
    ApiJson(request): ApiJson<PromoteRequest>,
) -> ApiResult<Json<PromoteResponse>> {
    let definition = state.definition(&flag)?;
    let from = state.environment(&request.from)?;
    let to = state.environment(&request.to)?;
    if !request.dry_run {
        state.may_address(&actor, &to)?;
    }
    let environments = &state.config.environments;
    let (from_position, to_position) = (environments.position(&from.key).unwrap_or(0), environments.position(&to.key).unwrap_or(0));
    if to_position <= from_position {
        return Err(ApiError::conflict(
            "promotion_order",
            format!(
                "promotion goes forward ({}); {} comes before {}, use copy to move a state backwards",
                environments.iter().map(|environment| environment.key.as_str()).collect::<Vec<_>>().join(" → "),
                to.key,
                from.key
            ),
        ));
    }
    if to_position > from_position + 1 && !request.skip {
        let skipped: Vec<&str> =
            environments.as_slice()[from_position + 1..to_position].iter().map(|environment| environment.key.as_str()).collect();
        return Err(ApiError::conflict(
            "promotion_order",
            format!("promoting {} to {} skips {}; promote step by step or pass skip (--skip)", from.key, to.key, skipped.join(", ")),
        ));
    }
    let source = state.catalog.state(&from.key, &definition.name).ok_or_else(|| ApiError::internal("state missing"))?;
    let target = state.catalog.state(&to.key, &definition.name).ok_or_else(|| ApiError::internal("state missing"))?;
    let changes = diff_specs(Some(&target.spec), &source.spec);
    let described =
        if changes.is_empty() { Vec::new() } else { vexil_core::describe::replacement_changes(&definition, &target, &source.spec) };
    let mut response = PromoteResponse {
        described,
        flag: definition.name.to_string(),
        from: from.key.to_string(),
        to: to.key.to_string(),
        protected: to.protected,
        changes,
        source_version: source.version,
        target_version: target.version,
        definition_version: definition.version,
        applied: false,
    };
    if request.dry_run {
        return Ok(Json(response));
    }
    if let Some(expected) = request.expected_source_version
        && expected != source.version
    {
        return Err(ApiError::precondition_failed(format!(
            "{} in {} moved from version {expected} to {} since the diff was computed; look at the new diff and promote again",
            definition.name, from.key, source.version
        )));
    }
    if let Some(expected) = request.expected_version
        && expected != target.version
    {
        return Err(ApiError::precondition_failed(format!(
            "{} in {} moved from version {expected} to {} since the diff was computed; look at the new diff and promote again",
            definition.name, to.key, target.version
        )));
    }
    // Promoted as a rollout: the source's state is where the plan ends; the target starts at the first step.
    let (spec, rollout) = match &request.rollout {
        None => (source.spec, None),
        Some(rollout) => {
            if definition.flag_type != vexil_core::FlagType::Boolean {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!("a rollout needs a boolean flag; {} is {}", definition.name, definition.flag_type.as_str()),
                ));
            }
            // A plan grows `true` over the fallthrough and ends at the source's state only when that state serves `true`
            // to everyone its targets and rules do not answer; anything else would land a state nobody saw in the diff.
            let ends_at_source = source.spec.enabled
                && source.spec.serve == vexil_core::Serve::Value(serde_json::Value::Bool(true))
                && source.spec.split.is_none();
            if !ends_at_source {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!(
                        "a rollout takes {} in {} step by step to its state in {}, which must be on and serve true to everyone its targets and rules do not answer; it is not (disabled, serving false, or already a percentage): promote without a rollout, or change {} first",
                        definition.name, to.key, from.key, from.key
                    ),
                ));
            }
            let plan = crate::rollout::new_plan(&rollout.steps, &rollout.every, &actor.email, request.reason.clone(), target.spec.clone())
                .map_err(|message| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message))?;
            crate::rollout::apply_step(&source.spec, &plan, 0).ok_or_else(|| ApiError::internal("no first step"))?
        }
    };
    let planned = PlannedChange {
        environment: to.clone(),
        flag: definition.name.clone(),
        edit: Edit::Carry(spec),
        expected_version: Some(target.version),
        action: AuditAction::Promote,
        reason: request.reason,
        from_environment: Some(from.name.clone()),
        expected_definition_version: request.expected_definition_version,
        summary: None,
        rollout,
    };
    response.applied = !state.commit_states(&actor, vec![planned]).await?.is_empty();
    Ok(Json(response))
}

/// Copy the states of some or all flags from one environment to another. `dry_run` answers the diff and changes nothing.
#[utoipa::path(post, path = "/api/flags/copy", tag = "states", request_body = CopyRequest, responses((status = OK, body = BatchDiffResponse)))]
async fn copy(State(state): State<AppState>, actor: Actor, ApiJson(request): ApiJson<CopyRequest>) -> ApiResult<Json<BatchDiffResponse>> {
    let from = state.environment(&request.from)?;
    let to = state.environment(&request.to)?;
    if !request.dry_run {
        state.may_address(&actor, &to)?;
    }
    if from.key == to.key {
        return Err(ApiError::bad_request(format!("copying {} onto itself changes nothing; pick two different environments", from.key)));
    }
    let names: Vec<FlagName> = match &request.flags {
        Some(flags) if !flags.is_empty() => {
            flags.iter().map(|flag| state.definition(flag).map(|definition| definition.name)).collect::<ApiResult<_>>()?
        }
        _ => state
            .catalog
            .read()
            .definitions
            .values()
            .filter(|definition| !definition.archived)
            .map(|definition| definition.name.clone())
            .collect(),
    };
    let mut diffs = Vec::new();
    let mut unchanged = Vec::new();
    let mut planned = Vec::new();
    for name in names {
        let source = state.catalog.state(&from.key, &name).ok_or_else(|| ApiError::internal("state missing"))?;
        let target = state.catalog.state(&to.key, &name).ok_or_else(|| ApiError::internal("state missing"))?;
        let changes = diff_specs(Some(&target.spec), &source.spec);
        if changes.is_empty() {
            unchanged.push(name.to_string());
            continue;
        }
        let expected = request.expected_versions.as_ref().and_then(|versions| versions.get(name.as_str()).copied());
        // With pins (a confirmed diff), a flag that differs now but was not in that diff is not swept in.
        if !request.dry_run && expected.is_none() && request.expected_versions.is_some() {
            return Err(ApiError::precondition_failed(format!(
                "{name} was not in the diff you confirmed but differs between {} and {} now; look at the new diff and copy again",
                from.key, to.key
            )));
        }
        if !request.dry_run
            && let Some(expected) = expected
            && expected != target.version
        {
            return Err(ApiError::precondition_failed(format!(
                "{name} in {} moved from version {expected} to {} since the diff was computed; look at the new diff and copy again",
                to.key, target.version
            )));
        }
        let pinned = |versions: &Option<std::collections::BTreeMap<String, u64>>| {
            versions.as_ref().and_then(|versions| versions.get(name.as_str()).copied())
        };
        if !request.dry_run
            && let Some(expected) = pinned(&request.expected_source_versions)
            && expected != source.version
        {
            return Err(ApiError::precondition_failed(format!(
                "{name} in {} moved from version {expected} to {} since the diff was computed; look at the new diff and copy again",
                from.key, source.version
            )));
        }
        let definition = state.catalog.definition(&name);
        let definition_version = definition.as_ref().map(|definition| definition.version).unwrap_or(0);
        let expected_definition_version = pinned(&request.expected_definition_versions);
        diffs.push(FlagDiff {
            flag: name.to_string(),
            described: definition
                .as_ref()
                .map(|definition| vexil_core::describe::replacement_changes(definition, &target, &source.spec))
                .unwrap_or_default(),
            changes,
            target_version: target.version,
            source_version: Some(source.version),
            definition_version,
        });
        planned.push(PlannedChange {
            environment: to.clone(),
            flag: name,
            edit: Edit::Carry(source.spec),
            expected_version: Some(target.version),
            action: AuditAction::Copy,
            reason: request.reason.clone(),
            from_environment: Some(from.name.clone()),
            expected_definition_version,
            summary: None,
            rollout: None,
        });
    }
    let applied = !request.dry_run && !planned.is_empty();
    if applied {
        state.commit_states(&actor, planned).await?;
    }
    Ok(Json(BatchDiffResponse {
        from: from.key.to_string(),
        to: to.key.to_string(),
        protected: to.protected,
        flags: diffs,
        unchanged,
        applied,
    }))
}

/// Enable or disable many flags (by name or by tag) in one environment, as one change.
#[utoipa::path(post, path = "/api/flags/bulk", tag = "states", request_body = BulkRequest, responses((status = OK, body = BulkResponse)))]
async fn bulk(State(state): State<AppState>, actor: Actor, ApiJson(request): ApiJson<BulkRequest>) -> ApiResult<Json<BulkResponse>> {
    let enabled = match request.action.as_str() {
        "enable" => true,
        "disable" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "bulk action `{}` is unknown; accepted: enable, disable",
                vexil_core::name::printable(other)
            )));
        }
    };
    let environment = state.environment(&request.environment)?;
    state.may_address(&actor, &environment)?;
    if enabled && environment.protected && request.tag.is_some() {
        // Tags are metadata any developer edits: which flags a tag names could change between the admin's look
        // and the commit. Turning flags on in a protected environment names them (the CLI resolves the tag and
        // shows the list first); turning them off by tag stays, as the kill switch it is.
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "flags_required",
            format!(
                "{} is protected: name the flags to enable (\"flags\"), not a tag, whose members anyone with the developer role can change; `vexil bulk enable --tag` lists them for you to confirm",
                environment.name
            ),
        ));
    }
    let names: Vec<FlagName> = match (&request.flags, &request.tag) {
        (Some(flags), None) if !flags.is_empty() => {
            flags.iter().map(|flag| state.definition(flag).map(|definition| definition.name)).collect::<ApiResult<_>>()?
        }
        (None, Some(tag)) => state
            .catalog
            .read()
            .definitions
            .values()
            .filter(|definition| !definition.archived && definition.tags.iter().any(|candidate| candidate == tag))
            .map(|definition| definition.name.clone())
            .collect(),
        _ => return Err(ApiError::bad_request("name the flags with either \"flags\" (a non-empty list) or \"tag\", not both")),
    };
    let mut planned = Vec::new();
    let mut unchanged = Vec::new();
    for name in names {
        let current = state.catalog.state(&environment.key, &name).ok_or_else(|| ApiError::internal("state missing"))?;
        if current.spec.enabled == enabled {
            unchanged.push(name.to_string());
            continue;
        }
        planned.push(PlannedChange {
            environment: environment.clone(),
            flag: name,
            edit: Edit::SetEnabled(enabled),
            expected_version: None,
            action: if enabled { AuditAction::Enable } else { AuditAction::Disable },
            reason: request.reason.clone(),
            from_environment: None,
            expected_definition_version: None,
            summary: None,
            rollout: None,
        });
    }
    let changed = state.commit_states(&actor, planned).await?.into_iter().map(|change| change.definition.name.to_string()).collect();
    Ok(Json(BulkResponse { environment: environment.key.to_string(), changed, unchanged }))
}
