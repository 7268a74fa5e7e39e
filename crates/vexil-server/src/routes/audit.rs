//! The audit trail: `GET /api/flags/audit` (the seed's path) and its verification.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::{AuditAction, AuditRecord, FlagName};
use vexil_store::{AuditQuery, ChainReport};

use crate::auth::Actor;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::service::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query)).routes(routes!(verify))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Filters {
    /// Only this flag.
    flag: Option<String>,
    /// Only this environment (key or long name; also `environment`).
    #[serde(alias = "environment")]
    env: Option<String>,
    /// Only this actor's records.
    user: Option<String>,
    /// Only this action (`update`, `promote`, `disable`, …).
    action: Option<String>,
    /// From: an age (`30m`, `2h`, `7d`) or an RFC 3339 time.
    since: Option<String>,
    /// Until: an age or an RFC 3339 time.
    until: Option<String>,
    /// At most this many records (100 by default, 1 to 1000; a page also stops at 1 MiB).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct AuditResponse {
    entries: Vec<Entry>,
    /// The cursor of the next (older) page; none at the end.
    next: Option<String>,
}

/// An audit record with what it changed in words.
#[derive(Debug, Serialize, ToSchema)]
struct Entry {
    #[serde(flatten)]
    record: AuditRecord,
    /// What the change did, line by line (`rule 1: email ends with "@asimo.io" → treatment (added)`;
    /// `vexil_core::describe::record_changes`, pinned by `spec/changes.json`); empty for users' and tokens' records.
    changes: Vec<String>,
}

/// What checking the audit trail's hash chain found.
#[derive(Debug, Serialize, ToSchema)]
struct Verification {
    /// Records checked.
    records: u64,
    /// Whether the whole chain is intact.
    intact: bool,
    /// The first record that does not fit, and why.
    problem: Option<String>,
}

/// The audit trail, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/flags/audit", tag = "audit", params(Filters), responses((status = OK, body = AuditResponse)))]
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
            cursor.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "cursor is not valid; pass the cursor a previous page gave (its `next`, what `vexil audit` prints after --cursor)",
                )
            })
        })
        .transpose()?;
    let limit = filters.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request(format!("limit {limit} is out of range; accepted: 1 to 1000")));
    }
    let page = state
        .store
        .audit(AuditQuery { flag, environment, user: filters.user, action, since, until, before_id, limit, definitions_only: false })
        .await?;
    let (entries, next) = within_page_bytes(page.entries, page.next);
    // The page's flags' definitions are copied out first: the words are worked out without holding the catalog, which
    // every write waits for.
    let definitions: std::collections::HashMap<String, vexil_core::FlagDefinition> = {
        let catalog = state.catalog.read();
        entries
            .iter()
            .filter_map(|record| record.flag.as_deref())
            .filter_map(|flag| FlagName::parse(flag).ok())
            .filter_map(|flag| catalog.definitions.get(&flag).map(|definition| (flag.to_string(), definition.clone())))
            .collect()
    };
    let entries = entries
        .into_iter()
        .map(|record| {
            let definition = record.flag.as_deref().and_then(|flag| definitions.get(flag));
            Entry { changes: vexil_core::describe::record_changes(definition, &record), record }
        })
        .collect();
    Ok(Json(AuditResponse { entries, next: next.map(|id| id.to_string()) }))
}

/// The most bytes of records one audit page carries (at least one record): a page a client does not read is held in
/// memory until the write stall closes its connection, so a hundred such clients cost a bounded amount.
const PAGE_BYTES: usize = 1 << 20;

/// Cuts a page to [`PAGE_BYTES`], moving the cursor back to the last record kept.
fn within_page_bytes(mut entries: Vec<AuditRecord>, next: Option<u64>) -> (Vec<AuditRecord>, Option<u64>) {
    let mut bytes = 0usize;
    let kept = entries
        .iter()
        .position(|record| {
            bytes += serde_json::to_vec(record).map(|encoded| encoded.len()).unwrap_or(0);
            bytes > PAGE_BYTES
        })
        .map(|over| over.max(1));
    match kept {
        Some(kept) if kept < entries.len() => {
            entries.truncate(kept);
            let next = entries.last().map(|record| record.id);
            (entries, next)
        }
        _ => (entries, next),
    }
}

/// Check the audit trail's hash chain from the first record.
#[utoipa::path(get, path = "/api/flags/audit/verify", tag = "audit", responses((status = OK, body = Verification)))]
async fn verify(State(state): State<AppState>, _actor: Actor) -> ApiResult<Json<Verification>> {
    let ChainReport { records, intact, problem } = state.store.verify_audit().await?;
    Ok(Json(Verification { records, intact, problem }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, padding: usize) -> AuditRecord {
        let draft = vexil_core::AuditDraft {
            flag: Some("ui.x".into()),
            action: AuditAction::Update,
            environment: None,
            user: "admin@localhost".into(),
            timestamp: "2026-12-01T00:00:00Z".into(),
            reason: Some("x".repeat(padding)),
            from_environment: None,
            before: None,
            after: None,
            source: vexil_core::Source::Api,
            definition: None,
        };
        AuditRecord::seal(id, "", draft)
    }

    #[test]
    fn a_page_stops_at_its_byte_budget_and_the_cursor_goes_on_from_there() {
        // Newest first, as the store answers: ids 1000 down to 1, 4 KiB each, 4 MB in all.
        let entries: Vec<AuditRecord> = (1..=1000).rev().map(|id| record(id, 4096)).collect();
        let (kept, next) = within_page_bytes(entries, None);
        let bytes: usize = kept.iter().map(|record| serde_json::to_vec(record).unwrap().len()).sum();
        assert!(bytes <= PAGE_BYTES && kept.len() > 200, "{} records, {bytes} bytes", kept.len());
        assert_eq!(next, Some(kept.last().unwrap().id), "the next page starts below the last record kept");
        // A record larger than the budget still comes, alone; a small page is untouched.
        let (alone, next) = within_page_bytes(vec![record(5, 2 << 20), record(4, 10)], None);
        assert_eq!((alone.len(), next), (1, Some(5)));
        let (small, next) = within_page_bytes(vec![record(3, 10), record(2, 10)], Some(2));
        assert_eq!((small.len(), next), (2, Some(2)));
    }
}
