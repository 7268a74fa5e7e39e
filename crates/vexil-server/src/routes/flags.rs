//! Flag definitions: the matrix of every flag in every environment, create, update, archive.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::{AuditAction, FlagDefinition, FlagName, FlagType, audit::check_reason};
use vexil_store::Catalog;

use crate::auth::Actor;
use crate::error::{ApiError, ApiJson, ApiJsonOrEmpty, ApiPath, ApiQuery, ApiResult};
use crate::service::AppState;
use crate::wire::{CreateFlagRequest, EnvironmentView, FlagView, FlagsResponse, ReasonRequest, UpdateFlagRequest};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, update)).routes(routes!(archive)).routes(routes!(unarchive))
}

/// The path parameter naming a flag.
pub(super) const FLAG: &str = "the flag's name, `<category>.<snake_case>`";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListFilters {
    /// Substring of the name or description.
    q: Option<String>,
    category: Option<String>,
    tag: Option<String>,
    /// Include archived flags.
    #[serde(default)]
    archived: bool,
}

/// Every flag with its state in every environment (the matrix).
#[utoipa::path(get, path = "/api/flags", tag = "flags", params(ListFilters), responses((status = OK, body = FlagsResponse)))]
async fn list(State(state): State<AppState>, _actor: Actor, ApiQuery(filters): ApiQuery<ListFilters>) -> Json<FlagsResponse> {
    let catalog = state.catalog.read();
    let needle = filters.q.as_deref().map(str::to_lowercase);
    let flags = catalog
        .definitions
        .values()
        .filter(|definition| filters.archived || !definition.archived)
        .filter(|definition| filters.category.as_deref().is_none_or(|category| definition.name.category() == category))
        .filter(|definition| filters.tag.as_deref().is_none_or(|tag| definition.tags.iter().any(|candidate| candidate == tag)))
        .filter(|definition| {
            needle
                .as_deref()
                .is_none_or(|needle| definition.name.as_str().contains(needle) || definition.description.to_lowercase().contains(needle))
        })
        .map(|definition| view(&state, &catalog, definition))
        .collect();
    let environments = state
        .config
        .environments
        .iter()
        .map(|environment| {
            EnvironmentView::new(environment, catalog.revisions.get(&environment.key).copied().unwrap_or(0), state.config.guard_window)
        })
        .collect();
    Json(FlagsResponse { environments, flags })
}

fn view(state: &AppState, catalog: &Catalog, definition: &FlagDefinition) -> FlagView {
    let mut environments = crate::wire::EnvironmentStates::default();
    let mut summaries = crate::wire::Summaries::default();
    for environment in state.config.environments.iter() {
        if let Some(flag_state) = catalog.states.get(&environment.key).and_then(|states| states.get(&definition.name)) {
            summaries.0.push((environment.key.to_string(), vexil_core::describe::summary(definition, flag_state)));
            environments.0.push((environment.key.to_string(), flag_state.clone()));
        }
    }
    FlagView { definition: definition.clone(), category: definition.name.category().to_owned(), environments, summaries, explained: None }
}

/// One flag with its state in every environment; the ETag is the definition's version.
#[utoipa::path(get, path = "/api/flags/{flag}", tag = "flags", params(("flag" = String, Path, description = FLAG)),
    responses((status = OK, body = FlagView, headers(("etag" = String, description = "the definition's version, for If-Match")))))]
async fn show(State(state): State<AppState>, _actor: Actor, ApiPath(flag): ApiPath<String>) -> ApiResult<(HeaderMap, Json<FlagView>)> {
    let definition = state.definition(&flag)?;
    let catalog = state.catalog.read();
    let mut flag = view(&state, &catalog, &definition);
    flag.explained = Some(crate::wire::ByEnvironment(
        flag.environments.0.iter().map(|(key, state)| (key.clone(), vexil_core::describe::explain(&definition, state))).collect(),
    ));
    Ok((etag(definition.version), Json(flag)))
}

/// Define a flag; it starts disabled in every environment.
#[utoipa::path(post, path = "/api/flags", tag = "flags", request_body = CreateFlagRequest, responses((status = CREATED, body = FlagView)))]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(request): ApiJson<CreateFlagRequest>,
) -> ApiResult<(StatusCode, Json<FlagView>)> {
    actor.role.may_define().map_err(ApiError::forbidden)?;
    let name = FlagName::parse(&request.name)?;
    state.config.categories.check_flag(&name)?;
    let flag_type = FlagType::parse(&request.flag_type)?;
    let variants = request.variants.unwrap_or_default();
    // Without a default, a multivariate flag's is its first variant's value (what it serves while off), not an empty
    // string no variant names.
    let default = request.default.unwrap_or_else(|| match variants.first() {
        Some(first) if flag_type != FlagType::Boolean => first.value.clone(),
        _ => flag_type.zero(),
    });
    let mut definition = FlagDefinition::new(name.clone(), flag_type, default);
    definition.description = request.description.unwrap_or_default();
    definition.owner = request.owner;
    definition.tags = request.tags.unwrap_or_default();
    definition.criticality = request.criticality.unwrap_or_default();
    definition.variants = variants;
    definition.allowed_values = request.allowed_values;
    definition.min = request.min;
    definition.max = request.max;
    definition.deprecated = request.deprecated.unwrap_or(false);
    definition.validate()?;
    state.commit_definition(&actor, definition, 0, AuditAction::Create, None).await?;
    let definition = state.definition(name.as_str())?;
    let catalog = state.catalog.read();
    Ok((StatusCode::CREATED, Json(view(&state, &catalog, &definition))))
}

/// What an edit of a definition would change, environment by environment (`dry_run`).
#[derive(Debug, Serialize, ToSchema)]
struct DefinitionDryRun {
    flag: FlagName,
    /// Always true.
    dry_run: bool,
    /// Whether the definition would change at all.
    changed: bool,
    /// Each environment whose state or serving the edit touches; a protected one needs the admin role and a reason.
    affects: Vec<Affected>,
}

/// An environment an edit of a definition touches.
#[derive(Debug, Serialize, ToSchema)]
struct Affected {
    /// Its key.
    environment: String,
    /// Its long name.
    name: String,
    protected: bool,
    /// `serving`: what it serves changes; `state`: only its state's meaning does.
    effect: String,
}

/// The flag after an edit, or what the edit would change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum UpdateFlagResponse {
    /// The flag as it is now.
    Flag(Box<FlagView>),
    /// What the edit would change (`dry_run`).
    DryRun(DefinitionDryRun),
}

/// Edit a definition: only the fields given change. An edit that changes what a protected environment serves needs
/// the admin role and a reason, and is audited in that environment.
#[utoipa::path(patch, path = "/api/flags/{flag}", tag = "flags", params(("flag" = String, Path, description = FLAG),
    ("if-match" = Option<String>, Header, description = "the definition's version (the ETag): a different one refuses the edit")),
    request_body = UpdateFlagRequest, responses((status = OK, body = UpdateFlagResponse)))]
async fn update(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiPath(flag): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateFlagRequest>,
) -> ApiResult<Json<UpdateFlagResponse>> {
    actor.role.may_define().map_err(ApiError::forbidden)?;
    let current = state.definition(&flag)?;
    let expected = if_match(&headers)?.unwrap_or(current.version);
    if let Some(reason) = &request.reason {
        check_reason(reason)?;
    }
    let (dry_run, reason) = (request.dry_run, request.reason.clone());
    let definition = edited(&current, request);
    definition.validate()?;
    if dry_run {
        // What the edit would change where: a protected environment in this list needs the admin role and a reason.
        let affects = state
            .definition_impact(&current, &definition)
            .into_iter()
            .map(|(environment, effect)| Affected {
                environment: environment.key.to_string(),
                name: environment.name.clone(),
                protected: environment.protected,
                effect: match effect {
                    vexil_core::gate::Effect::Serving => "serving",
                    vexil_core::gate::Effect::State => "state",
                }
                .to_owned(),
            })
            .collect();
        let changed = definition != current;
        return Ok(Json(UpdateFlagResponse::DryRun(DefinitionDryRun { flag: current.name, dry_run: true, changed, affects })));
    }
    if definition == current {
        let catalog = state.catalog.read();
        return Ok(Json(UpdateFlagResponse::Flag(Box::new(view(&state, &catalog, &current)))));
    }
    state.commit_definition(&actor, definition, expected, AuditAction::Update, reason).await?;
    let definition = state.definition(&flag)?;
    let catalog = state.catalog.read();
    Ok(Json(UpdateFlagResponse::Flag(Box::new(view(&state, &catalog, &definition)))))
}

/// `current` with the fields `request` gives (an empty owner or list of allowed values clears it).
pub(super) fn edited(current: &FlagDefinition, request: UpdateFlagRequest) -> FlagDefinition {
    let mut definition = current.clone();
    if let Some(default) = request.default {
        definition.default = default;
    }
    if let Some(description) = request.description {
        definition.description = description;
    }
    if let Some(owner) = request.owner {
        definition.owner = Some(owner).filter(|owner| !owner.is_empty());
    }
    if let Some(tags) = request.tags {
        definition.tags = tags;
    }
    if let Some(criticality) = request.criticality {
        definition.criticality = criticality;
    }
    if let Some(variants) = request.variants {
        definition.variants = variants;
    }
    if let Some(allowed_values) = request.allowed_values {
        definition.allowed_values = Some(allowed_values).filter(|values| !values.is_empty());
    }
    if request.min.is_some() {
        definition.min = request.min;
    }
    if request.max.is_some() {
        definition.max = request.max;
    }
    if let Some(deprecated) = request.deprecated {
        definition.deprecated = deprecated;
    }
    definition
}

/// Archive a flag: hidden from default listings, its states frozen. Refused while it serves anything in a protected environment.
#[utoipa::path(post, path = "/api/flags/{flag}/archive", tag = "flags", params(("flag" = String, Path, description = FLAG)),
    request_body(content = Option<ReasonRequest>), responses((status = OK, body = FlagView)))]
async fn archive(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(flag): ApiPath<String>,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<ReasonRequest>,
) -> ApiResult<Json<FlagView>> {
    set_archived(state, actor, flag, request, true).await
}

/// Bring an archived flag back.
#[utoipa::path(post, path = "/api/flags/{flag}/unarchive", tag = "flags", params(("flag" = String, Path, description = FLAG)),
    request_body(content = Option<ReasonRequest>), responses((status = OK, body = FlagView)))]
async fn unarchive(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(flag): ApiPath<String>,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<ReasonRequest>,
) -> ApiResult<Json<FlagView>> {
    set_archived(state, actor, flag, request, false).await
}

async fn set_archived(state: AppState, actor: Actor, flag: String, request: ReasonRequest, archived: bool) -> ApiResult<Json<FlagView>> {
    actor.role.may_define().map_err(ApiError::forbidden)?;
    let current = state.definition(&flag)?;
    if let Some(reason) = &request.reason {
        check_reason(reason)?;
    }
    // Whether the flag may be archived (not serving in a protected environment) is decided under the write lock
    // (`AppState::commit_definition`), against the states the commit checks.
    if current.archived != archived {
        let mut definition = current.clone();
        definition.archived = archived;
        let action = if archived { AuditAction::Archive } else { AuditAction::Unarchive };
        state.commit_definition(&actor, definition, current.version, action, request.reason).await?;
    }
    let definition = state.definition(&flag)?;
    let catalog = state.catalog.read();
    Ok(Json(view(&state, &catalog, &definition)))
}

/// `ETag: "<version>"`.
pub(super) fn etag(version: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::ETAG, format!("\"{version}\"").parse().expect("digits are a valid header value"));
    headers
}

/// Reads `If-Match: "<version>"` (quotes and `W/` optional).
pub(super) fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<u64>().map(Some).map_err(|_| ApiError::bad_request("If-Match must be the version from the ETag, such as \"3\""))
}
