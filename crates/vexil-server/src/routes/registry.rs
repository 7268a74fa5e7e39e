//! `POST /api/flags/apply`: a registry of definitions (what `vexil apply flags.toml` sends) created, updated and
//! archived in one write, with one audit record per definition and per environment whose serving it changes.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use vexil_core::{AuditAction, FlagDefinition, FlagName, FlagType, audit::check_reason, gate::Effect};

use crate::auth::Actor;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::service::AppState;
use crate::wire::{ApplyAffected, ApplyEntry, ApplyRequest, ApplyResponse, UpdateFlagRequest};

/// The most flags one apply may name: one apply is one write, which holds the write lock while it is judged and
/// committed (about 0.25 s for 2 000 flags), and the kill switch waits behind the write in progress. `vexil apply` sends
/// larger registries in parts.
const MAX_FLAGS: usize = 2_000;

pub(super) fn router(limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(apply).layer(DefaultBodyLimit::max(limit)))
}

/// Apply a registry: create the flags it lists that do not exist, update those whose fields differ, archive those
/// in `archive`, all in one write (all or nothing). An edit that changes what a protected environment serves needs
/// the admin role and a `reason`, as a single edit would; `dry_run` answers where each edit reaches.
#[utoipa::path(post, path = "/api/flags/apply", tag = "flags", request_body = ApplyRequest, responses((status = OK, body = ApplyResponse)))]
async fn apply(State(state): State<AppState>, actor: Actor, ApiJson(request): ApiJson<ApplyRequest>) -> ApiResult<Json<ApplyResponse>> {
    actor.role.may_define().map_err(ApiError::forbidden)?;
    if request.flags.len() + request.archive.len() > MAX_FLAGS {
        return Err(ApiError::bad_request(format!("an apply names at most {MAX_FLAGS} flags; apply a larger registry in parts")));
    }
    if let Some(reason) = &request.reason {
        check_reason(reason)?;
    }
    let confirmed: BTreeSet<String> = request.confirmed.iter().cloned().collect();
    let reason_for = |flag: &FlagName| request.reason.clone().filter(|_| confirmed.contains(flag.as_str()));
    let mut named = BTreeSet::new();
    let mut writes: Vec<(FlagDefinition, u64, AuditAction, Option<String>)> = Vec::new();
    let mut answer =
        ApplyResponse { created: Vec::new(), updated: BTreeMap::new(), unchanged: Vec::new(), archived: Vec::new(), applied: false };
    for entry in request.flags {
        let name = FlagName::parse(&entry.name)?;
        if !named.insert(name.clone()) {
            return Err(ApiError::bad_request(format!("{name} is named twice; name each flag once")));
        }
        let flag_type = FlagType::parse(&entry.flag_type)?;
        let pinned = entry.version;
        let (flag, mut edit) = split(entry);
        match state.catalog.definition(&name) {
            None => {
                if pinned.is_some_and(|version| version != 0) {
                    return Err(ApiError::precondition_failed(format!("{name} does not exist (any more); read the flags again")));
                }
                state.config.categories.check_flag(&name)?;
                let default = edit.default.take().unwrap_or_else(|| flag_type.zero());
                let mut definition = super::flags::edited(&FlagDefinition::new(name.clone(), flag_type, default), edit);
                definition.owner = definition.owner.filter(|owner| !owner.is_empty());
                definition.validate()?;
                writes.push((definition, 0, AuditAction::Create, reason_for(&name)));
                answer.created.push(flag);
            }
            Some(current) => {
                if current.flag_type != flag_type {
                    return Err(ApiError::new(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_value",
                        format!(
                            "{name} is a {} flag; a flag's type cannot change ({} given): define a new flag instead",
                            current.flag_type.as_str(),
                            flag_type.as_str()
                        ),
                    ));
                }
                let mut definition = super::flags::edited(&current, edit);
                definition.archived = false;
                if definition == current {
                    answer.unchanged.push(flag);
                    continue;
                }
                definition.validate()?;
                let reaches = state
                    .definition_impact(&current, &definition)
                    .into_iter()
                    .map(|(environment, effect)| ApplyAffected {
                        environment: environment.key.to_string(),
                        protected: environment.protected,
                        effect: if effect == Effect::Serving { "serving" } else { "state" }.to_owned(),
                    })
                    .collect();
                // Unarchived and edited at once is an update (the record shows both): what it serves is what matters.
                let only_unarchived = current.archived && FlagDefinition { archived: true, ..definition.clone() } == current;
                let action = if only_unarchived { AuditAction::Unarchive } else { AuditAction::Update };
                writes.push((definition, pinned.unwrap_or(current.version), action, reason_for(&name)));
                answer.updated.insert(flag, reaches);
            }
        }
    }
    for (flag, version) in request.archive {
        let name = FlagName::parse(&flag)?;
        if !named.insert(name.clone()) {
            return Err(ApiError::bad_request(format!("{name} is both listed and to be archived")));
        }
        let current = state.definition(name.as_str())?;
        if !current.archived {
            writes.push((FlagDefinition { archived: true, ..current }, version, AuditAction::Archive, reason_for(&name)));
            answer.archived.push(flag);
        }
    }
    if !request.dry_run && !writes.is_empty() {
        state.commit_definitions(&actor, writes).await?;
        answer.applied = true;
    }
    Ok(Json(answer))
}

/// An entry's name, and its fields as an edit.
fn split(entry: ApplyEntry) -> (String, UpdateFlagRequest) {
    let edit = UpdateFlagRequest {
        default: entry.default,
        description: entry.description,
        owner: entry.owner,
        tags: entry.tags,
        criticality: entry.criticality,
        variants: entry.variants,
        allowed_values: entry.allowed_values,
        min: entry.min,
        max: entry.max,
        deprecated: entry.deprecated,
        reason: None,
        dry_run: false,
    };
    (entry.name, edit)
}
