//! Environments: listing, and export/import of an environment's flag states.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use vexil_core::{AuditAction, FlagName, diff_specs};

use crate::auth::Actor;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::service::{AppState, Edit, PlannedChange};
use crate::wire::{BatchDiffResponse, EXPORT_FORMAT, EnvironmentView, ExportDocument, FlagDiff, ImportRequest};

pub(super) fn router(import_limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(export)).routes(routes!(import).layer(DefaultBodyLimit::max(import_limit)))
}

/// The environments in promotion order, with their revisions.
#[utoipa::path(get, path = "/api/environments", tag = "environments", responses((status = OK, body = Vec<EnvironmentView>)))]
async fn list(State(state): State<AppState>, _actor: Actor) -> Json<Vec<EnvironmentView>> {
    Json(
        state
            .config
            .environments
            .iter()
            .map(|environment| EnvironmentView::new(environment, state.catalog.revision(&environment.key), state.config.guard_window))
            .collect(),
    )
}

/// An environment's flag states as a document `import` reads (archived flags left out).
#[utoipa::path(get, path = "/api/environments/{environment}/export", tag = "environments",
    params(("environment" = String, Path, description = super::states::ENVIRONMENT)), responses((status = OK, body = ExportDocument)))]
async fn export(State(state): State<AppState>, _actor: Actor, ApiPath(environment): ApiPath<String>) -> ApiResult<Json<ExportDocument>> {
    let environment = state.environment(&environment)?;
    let catalog = state.catalog.read();
    let flags = catalog
        .states
        .get(&environment.key)
        .map(|states| {
            states
                .iter()
                .filter(|(name, _)| catalog.definitions.get(*name).is_some_and(|definition| !definition.archived))
                .map(|(name, state)| (name.to_string(), state.spec.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(ExportDocument {
        format: EXPORT_FORMAT.to_owned(),
        version: 1,
        environment: environment.key.to_string(),
        exported_at: crate::time::now(),
        revision: catalog.revisions.get(&environment.key).copied().unwrap_or(0),
        flags,
    }))
}

/// Import an export document into an environment (its states replace the current ones, flag by flag).
/// `dry_run` answers the diff and changes nothing.
#[utoipa::path(post, path = "/api/environments/{environment}/import", tag = "environments",
    params(("environment" = String, Path, description = super::states::ENVIRONMENT)),
    request_body = ImportRequest, responses((status = OK, body = BatchDiffResponse)))]
async fn import(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(environment): ApiPath<String>,
    ApiJson(request): ApiJson<ImportRequest>,
) -> ApiResult<Json<BatchDiffResponse>> {
    let environment = state.environment(&environment)?;
    if !request.dry_run {
        state.may_address(&actor, &environment)?;
    }
    let document = request.document;
    // The document's environment becomes the audit record's `from_environment`: it is text a reader trusts.
    vexil_core::text::check_plain_text("document.environment", &document.environment, 100)?;
    if document.format != EXPORT_FORMAT || document.version != 1 {
        return Err(ApiError::bad_request(format!(
            "document format `{}` version {} is not supported; expected `{EXPORT_FORMAT}` version 1 (what vexil export writes)",
            vexil_core::name::printable(&document.format),
            document.version
        )));
    }
    let mut diffs = Vec::new();
    let mut unchanged = Vec::new();
    let mut planned = Vec::new();
    let mut unknown = Vec::new();
    let mut versions = BTreeMap::new();
    for (name, spec) in document.flags {
        let flag = FlagName::parse(&name)?;
        let Some(definition) = state.catalog.definition(&flag) else {
            unknown.push(name);
            continue;
        };
        let current = state.catalog.state(&environment.key, &flag).ok_or_else(|| ApiError::internal("state missing"))?;
        // A regex pattern the state being replaced already holds is not judged again for backtracking.
        spec.validate_new(&definition, &[&current.spec])
            .map_err(|error| ApiError::from(vexil_core::ValidationError::new(error.field, format!("{name}: {}", error.message))))?;
        let changes = diff_specs(Some(&current.spec), &spec);
        if changes.is_empty() {
            unchanged.push(name);
            continue;
        }
        let pinned = |versions: &Option<BTreeMap<String, u64>>| versions.as_ref().and_then(|versions| versions.get(&name).copied());
        let expected_version = pinned(&request.expected_versions);
        if !request.dry_run && request.expected_versions.is_some() {
            match expected_version {
                None => {
                    return Err(ApiError::precondition_failed(format!(
                        "{name} was not in the diff you confirmed but differs from the document now; look at the new diff and import again"
                    )));
                }
                Some(expected) if expected != current.version => {
                    return Err(ApiError::precondition_failed(format!(
                        "{name} in {} moved from version {expected} to {} since the diff was computed; look at the new diff and import again",
                        environment.key, current.version
                    )));
                }
                Some(_) => {}
            }
        }
        let expected_definition_version = pinned(&request.expected_definition_versions);
        versions.insert(name.clone(), current.version);
        diffs.push(FlagDiff {
            flag: name,
            described: vexil_core::describe::replacement_changes(&definition, &current, &spec),
            changes,
            target_version: current.version,
            source_version: None,
            definition_version: definition.version,
        });
        planned.push(PlannedChange {
            environment: environment.clone(),
            flag,
            edit: Edit::Replace(spec),
            expected_version: Some(current.version),
            action: AuditAction::Import,
            reason: request.reason.clone(),
            from_environment: Some(document.environment.clone()),
            expected_definition_version,
            summary: None,
            rollout: None,
        });
    }
    if !unknown.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_flag",
            format!("the document has flags that are not defined here: {}; define them first (vexil apply)", unknown.join(", ")),
        ));
    }
    let applied = !request.dry_run && !planned.is_empty();
    if applied {
        state.commit_states(&actor, planned).await?;
    }
    Ok(Json(BatchDiffResponse {
        from: document.environment,
        to: environment.key.to_string(),
        protected: environment.protected,
        flags: diffs,
        unchanged,
        applied,
    }))
}
