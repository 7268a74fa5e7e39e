//! OFREP, the OpenFeature Remote Evaluation Protocol (open-feature/protocol, `service/openapi.yaml`).
//!
//! `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags`, authenticated by an SDK key
//! (`Authorization: Bearer` or `X-API-Key`) whose environment selects the environment. Evaluation runs on
//! the environment's compiled snapshot. When no flag of the environment depends on the context, the bulk
//! answer is the same for everyone: it is serialised once per snapshot, with its ETag, and served as bytes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::evaluation::ErrorCode;
use vexil_core::evaluation::Evaluation;
use vexil_core::{EnvKey, Reason};

use crate::auth::{Principal, authenticate, credential};
use crate::hub::{EnvironmentSnapshot, SnapshotFlag};
use crate::service::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let (schemas, paths, single) = routes!(single);
    let with_preflight = (schemas, paths, single.options(super::options));
    let (schemas, paths, bulk) = routes!(bulk);
    OpenApiRouter::new().routes(with_preflight).routes((schemas, paths, bulk.options(super::options)))
}

// The shapes below describe what the handlers write by hand (they serialise straight to bytes); the suite's
// Schemathesis run checks every answer against them.

/// An OFREP evaluation request.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
struct EvaluationRequest {
    /// The evaluation context: `targetingKey` (a string) and any attributes rules compare.
    context: Option<Map<String, Value>>,
}

/// A successful evaluation.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct EvaluationSuccess {
    key: String,
    /// The value, of the flag's type.
    value: Value,
    /// `STATIC`, `TARGETING_MATCH`, `SPLIT`, `DISABLED` or `DEFAULT`.
    reason: String,
    /// The variant's name, or the value's label when it is none.
    variant: String,
    metadata: EvaluationMetadata,
}

/// Where an answer came from.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct EvaluationMetadata {
    /// The SDK key's environment.
    environment: String,
    /// The environment's revision.
    revision: u64,
    /// The flag's state version there.
    flag_version: u64,
}

/// A failed evaluation.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct EvaluationFailure {
    /// The flag, when one was asked for.
    key: Option<String>,
    /// `PARSE_ERROR`, `INVALID_CONTEXT`, `TARGETING_KEY_MISSING` or `FLAG_NOT_FOUND`.
    error_code: String,
    error_details: String,
}

/// One flag of a bulk answer.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum BulkEntry {
    /// Evaluated.
    Success(EvaluationSuccess),
    /// Not evaluated for this context.
    Failure(EvaluationFailure),
}

/// Every flag of the environment, evaluated for one context.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
struct BulkEvaluation {
    flags: Vec<BulkEntry>,
}

/// The environment an SDK key reads; 401 (with the scheme to use) or 403 with no body otherwise, as OFREP specifies.
async fn environment_of(state: &AppState, parts: &Parts) -> Result<EnvKey, Response> {
    let unauthorized = || {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"vexil\", charset=\"UTF-8\""));
        response
    };
    let token = credential(parts).ok_or_else(unauthorized)?;
    match authenticate(state, &token, vexil_core::Source::Api).await {
        Ok(Some(Principal::Sdk { environment, .. })) => Ok(environment),
        Ok(Some(Principal::User(_))) => Err(StatusCode::FORBIDDEN.into_response()),
        Ok(None) => Err(unauthorized()),
        Err(error) => Err(error.into_response()),
    }
}

fn failure(status: StatusCode, key: Option<&str>, code: &str, details: impl Into<String>) -> Response {
    let mut body = json!({"errorCode": code, "errorDetails": details.into()});
    if let Some(key) = key {
        body["key"] = json!(key);
    }
    (status, axum::Json(body)).into_response()
}

/// Reads `{"context": {...}}`; an empty body means an empty context.
fn read_context(body: &Bytes) -> Result<Map<String, Value>, (&'static str, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|error| ("PARSE_ERROR", format!("request body is not valid JSON: {error}")))?;
    if !request.is_object() {
        return Err(("PARSE_ERROR", "request body must be a JSON object such as {\"context\": {\"targetingKey\": \"user-1\"}}".to_owned()));
    }
    let context = match request.get("context") {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(context)) => context.clone(),
        Some(_) => return Err(("INVALID_CONTEXT", "context must be a JSON object".to_owned())),
    };
    match context.get("targetingKey") {
        None | Some(Value::String(_)) => Ok(context),
        Some(_) => Err(("INVALID_CONTEXT", "targetingKey must be a string".to_owned())),
    }
}

/// One flag's success answer for one label it serves, around its reason: `{"key","value","reason":"` and
/// `","variant","metadata":{…}}`. The value, variant and metadata of a label are fixed within a snapshot, so an
/// answer is written by copying these two and the reason's name: no JSON value is built per request.
#[derive(Debug)]
pub struct Answer {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Answer {
    fn new(snapshot: &EnvironmentSnapshot, key: &str, flag: &SnapshotFlag, evaluation: &Evaluation<'_>) -> Self {
        let mut head = b"{\"key\":".to_vec();
        head.extend(json(key));
        head.extend_from_slice(b",\"value\":");
        head.extend(json(evaluation.value));
        head.extend_from_slice(b",\"reason\":\"");
        // Every success names a variant (clients such as the official Python provider require one): a value that is
        // no named variant is reported under the label the metrics count it by.
        let mut tail = b"\",\"variant\":".to_vec();
        tail.extend(json(evaluation.variant.unwrap_or(vexil_core::evaluation::UNNAMED_LABEL)));
        tail.extend_from_slice(b",\"metadata\":{\"environment\":");
        tail.extend(json(snapshot.environment.key.as_str()));
        tail.extend_from_slice(format!(",\"revision\":{},\"flagVersion\":{}}}}}", snapshot.revision, flag.state.version).as_bytes());
        Self { head, tail }
    }
}

/// Serialises a key, a label or a JSON value.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("keys, labels and JSON values serialise")
}

/// Writes one flag's OFREP answer for `context` into `body`: a success, or the failure of a context without the
/// targeting key the flag's split needs. Returns what identifies the answer within the snapshot (for the ETag).
fn write_answer(
    body: &mut Vec<u8>,
    snapshot: &EnvironmentSnapshot,
    key: &str,
    flag: &SnapshotFlag,
    context: &Map<String, Value>,
) -> (u16, u8) {
    let evaluation = flag.compiled.evaluate(context);
    if let Some(ErrorCode::TargetingKeyMissing) = evaluation.error {
        let failure = flag.missing_key.get_or_init(|| {
            let details = format!("flag `{key}` serves a percentage split, which needs a targetingKey in the context");
            Bytes::from(
                serde_json::to_vec(&json!({"key": key, "errorCode": "TARGETING_KEY_MISSING", "errorDetails": details})).expect("JSON"),
            )
        });
        body.extend_from_slice(failure);
        return (u16::MAX, 0);
    }
    debug_assert!(evaluation.reason != Reason::Error);
    let answer = flag.answers[usize::from(evaluation.slot)].get_or_init(|| Answer::new(snapshot, key, flag, &evaluation));
    body.extend_from_slice(&answer.head);
    body.extend_from_slice(evaluation.reason.as_str().as_bytes());
    body.extend_from_slice(&answer.tail);
    (evaluation.slot, evaluation.reason as u8)
}

/// Evaluate one flag for a context in the SDK key's environment (OFREP).
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags/{key}", tag = "ofrep", security(("sdk_key" = []), ("sdk_key_header" = [])),
    params(("key" = String, Path, description = "the flag's name")),
    request_body(content = Option<EvaluationRequest>),
    responses(
        (status = OK, body = EvaluationSuccess),
        (status = BAD_REQUEST, body = EvaluationFailure, description = "the context cannot be evaluated"),
        (status = NOT_FOUND, body = EvaluationFailure, description = "no such flag"),
        (status = UNAUTHORIZED, description = "no SDK key, or an unknown one", headers(("www-authenticate" = String))),
        (status = FORBIDDEN, description = "a personal token: OFREP takes an SDK key"),
    ))]
async fn single(State(state): State<AppState>, Path(key): Path<String>, parts: Parts, body: Bytes) -> Response {
    let environment = match environment_of(&state, &parts).await {
        Ok(environment) => environment,
        Err(response) => return response,
    };
    let context = match read_context(&body) {
        Ok(context) => context,
        Err((code, details)) => return failure(StatusCode::BAD_REQUEST, Some(&key), code, details),
    };
    let Some(snapshot) = state.hub.snapshot(&environment) else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let flag = vexil_core::FlagName::parse(&key).ok().and_then(|name| snapshot.flags.get(&name).cloned());
    let Some(flag) = flag else {
        return failure(
            StatusCode::NOT_FOUND,
            Some(&key),
            "FLAG_NOT_FOUND",
            format!("flag `{}` is not defined", vexil_core::name::printable(&key)),
        );
    };
    let mut body = Vec::with_capacity(256);
    let (slot, _) = write_answer(&mut body, &snapshot, &key, &flag, &context);
    let status = if slot == u16::MAX { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Evaluate every flag of the SDK key's environment for a context (OFREP); `If-None-Match` with the last ETag
/// answers 304 while nothing changed for the context.
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep", security(("sdk_key" = []), ("sdk_key_header" = [])),
    params(("if-none-match" = Option<String>, Header, description = "the ETag of the last answer")),
    request_body(content = Option<EvaluationRequest>),
    responses(
        (status = OK, body = BulkEvaluation, headers(("etag" = String))),
        (status = NOT_MODIFIED, description = "nothing changed for this context", headers(("etag" = String))),
        (status = BAD_REQUEST, body = EvaluationFailure, description = "the context cannot be evaluated"),
        (status = UNAUTHORIZED, description = "no SDK key, or an unknown one", headers(("www-authenticate" = String))),
        (status = FORBIDDEN, description = "a personal token: OFREP takes an SDK key"),
    ))]
async fn bulk(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let environment = match environment_of(&state, &parts).await {
        Ok(environment) => environment,
        Err(response) => return response,
    };
    let context = match read_context(&body) {
        Ok(context) => context,
        Err((code, details)) => return failure(StatusCode::BAD_REQUEST, None, code, details),
    };
    let Some(snapshot) = state.hub.snapshot(&environment) else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let prepared = snapshot.prepared.get_or_init(|| {
        let context_free = snapshot.flags.values().all(|flag| !flag.compiled.uses_context());
        context_free.then(|| render_bulk(&snapshot, &Map::new()))
    });
    let (bytes, etag) = match prepared {
        Some((bytes, etag)) => (bytes.clone(), etag.clone()),
        None => render_bulk(&snapshot, &context),
    };
    if if_none_match(&parts.headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("etags are ASCII"));
        return response;
    }
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("etags are ASCII"));
    response
}

/// The bulk body for a context, written from each flag's prepared answers, and an ETag derived from what was served.
/// Archived flags are in it: an archived flag keeps serving its frozen state through every endpoint (single
/// evaluation, bulk, the stream), so archiving never changes what an application gets.
pub fn render_bulk(snapshot: &EnvironmentSnapshot, context: &Map<String, Value>) -> (Bytes, String) {
    use std::hash::{Hash, Hasher};
    let mut body = Vec::with_capacity(16 + snapshot.flags.len() * 192);
    // The ETag is derived from what was served (each flag's label and reason at this revision), not from the bytes.
    let mut served = std::hash::DefaultHasher::new();
    body.extend_from_slice(b"{\"flags\":[");
    for (index, (name, flag)) in snapshot.flags.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        write_answer(&mut body, snapshot, name.as_str(), flag, context).hash(&mut served);
    }
    body.extend_from_slice(b"]}");
    (Bytes::from(body), format!("\"{}-{:016x}\"", snapshot.revision, served.finish()))
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value.split(',').map(|candidate| candidate.trim().trim_start_matches("W/")).any(|candidate| candidate == etag || candidate == "*")
    })
}
