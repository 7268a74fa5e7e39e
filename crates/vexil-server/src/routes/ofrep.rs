//! OFREP, the OpenFeature Remote Evaluation Protocol (open-feature/protocol, `service/openapi.yaml`).
//!
//! `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags`, authenticated by an SDK key
//! (`Authorization: Bearer` or `X-API-Key`) whose environment selects the environment. Evaluation runs on
//! the environment's compiled snapshot. When no flag of the environment depends on the context, the bulk
//! answer is the same for everyone: it is serialised once per snapshot, with its ETag, and served as bytes.
//!
//! Evaluation is the hot path, so the listener hands these `POST`s to [`serve_direct`] without the router and its
//! middleware stack (which cost more than the evaluation itself): it does for them exactly what the stack would
//! (the body's size limit and deadline, CORS, the answer budget, the request metrics). The routes below stay, for
//! the OpenAPI document and for the few requests the listener leaves to the router (a percent-encoded key).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::evaluation::{ErrorCode, Evaluation, EvaluationContext};
use vexil_core::request::RequestContext;
use vexil_core::{EnvKey, Reason};

use crate::auth::{Principal, authenticate_with_digest, credential_in};
use crate::error::ApiError;
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
#[serde(rename_all = "camelCase")]
struct BulkEvaluation {
    /// Where to hear of changes (OFREP ADR-0008): one `sse` stream of `refetchEvaluation` notices.
    event_streams: Vec<EventStream>,
    flags: Vec<BulkEntry>,
}

/// A stream of change notices: connect to the endpoint's `requestUri` on the OFREP base URL's origin.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct EventStream {
    /// `sse`.
    r#type: String,
    endpoint: EventStreamEndpoint,
    /// Seconds a hidden page keeps the stream open.
    inactivity_delay_sec: u64,
}

/// The path and query of a notice stream (`/ofrep/v1/events?ticket=…`).
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct EventStreamEndpoint {
    request_uri: String,
}

/// The environment an SDK key reads, and the key's SHA-256 (its event stream's ticket); 401 (with the scheme to use)
/// or 403 with no body otherwise, as OFREP specifies, and 403 `origin_not_allowed` for a page the key does not admit.
async fn environment_of(state: &AppState, parts: &Parts) -> Result<(EnvKey, std::sync::Arc<str>), Response> {
    let unauthorized = || {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"vexil\", charset=\"UTF-8\""));
        response
    };
    let token = credential_in(&parts.headers).ok_or_else(unauthorized)?;
    match authenticate_with_digest(state, token, vexil_core::Source::Api).await {
        Ok(Some((principal @ Principal::Sdk { .. }, digest))) => {
            principal.may_serve_origin(&parts.headers).map_err(IntoResponse::into_response)?;
            let Principal::Sdk { environment, .. } = principal else { unreachable!("matched above") };
            Ok((environment, digest))
        }
        Ok(Some((Principal::User(_), _))) => Err(StatusCode::FORBIDDEN.into_response()),
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

/// One flag's success answer for one label it serves, around its reason: `{"key","value","reason":"` and
/// `","variant","metadata":{…}}`. The value, variant and metadata of a label are fixed within a snapshot, so an
/// answer is written by copying these two and the reason's name: no JSON value is built per request.
#[derive(Debug)]
pub struct Answer {
    head: Vec<u8>,
    tail: Vec<u8>,
    /// A hash of `head` and `tail`: with the reason, what the bulk answer's ETag is made of.
    fingerprint: u64,
}

impl Answer {
    fn new(snapshot: &EnvironmentSnapshot, key: &str, evaluation: &Evaluation<'_>) -> Self {
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
        // Nothing that changes without the answer changing (no revision, no state version): an answer's bytes are the
        // same for as long as it means the same, so a bulk answer's ETag changes exactly when the context's answer does.
        tail.extend_from_slice(b"}}");
        let fingerprint =
            std::hash::BuildHasher::hash_one(&std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(), (&head, &tail));
        Self { head, tail, fingerprint }
    }
}

/// Serialises a key, a label or a JSON value.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("keys, labels and JSON values serialise")
}

/// Writes one flag's OFREP answer for `context` into `body`: a success, or the failure of a context without the
/// targeting key the flag's split needs. Returns what identifies a success's bytes (for the ETag), `None` for the failure.
fn write_answer<C: EvaluationContext + ?Sized>(
    body: &mut Vec<u8>,
    snapshot: &EnvironmentSnapshot,
    key: &str,
    flag: &SnapshotFlag,
    context: &C,
) -> Option<(u64, u8)> {
    let evaluation = flag.compiled.evaluate(context);
    if let Some(ErrorCode::TargetingKeyMissing) = evaluation.error {
        let failure = flag.missing_key.get_or_init(|| {
            let details = format!("flag `{key}` serves a percentage split, which needs a targetingKey in the context");
            Bytes::from(
                serde_json::to_vec(&json!({"key": key, "errorCode": "TARGETING_KEY_MISSING", "errorDetails": details})).expect("JSON"),
            )
        });
        body.extend_from_slice(failure);
        return None;
    }
    debug_assert!(evaluation.reason != Reason::Error);
    let answer = flag.answers[usize::from(evaluation.slot)].get_or_init(|| Answer::new(snapshot, key, &evaluation));
    body.extend_from_slice(&answer.head);
    body.extend_from_slice(evaluation.reason.as_str().as_bytes());
    body.extend_from_slice(&answer.tail);
    Some((answer.fingerprint, evaluation.reason as u8))
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
async fn single(State(state): State<AppState>, Path(key): Path<String>, request: axum::extract::Request) -> Response {
    routed(&state, Target::One(&key), request).await
}

/// Evaluate every flag of the SDK key's environment for a context (OFREP); `If-None-Match` with the last ETag
/// answers 304 while nothing changed for the context.
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep", security(("sdk_key" = []), ("sdk_key_header" = [])),
    params(("if-none-match" = Option<String>, Header, description = "the ETag of the last answer"),
        ("flagConfigEtag" = Option<String>, Query, description = "the `etag` of the change notice that asked for this evaluation: the answer includes that change")),
    request_body(content = Option<EvaluationRequest>),
    responses(
        (status = OK, body = BulkEvaluation, headers(("etag" = String))),
        (status = NOT_MODIFIED, description = "nothing changed for this context", headers(("etag" = String))),
        (status = BAD_REQUEST, body = EvaluationFailure, description = "the context cannot be evaluated"),
        (status = UNAUTHORIZED, description = "no SDK key, or an unknown one", headers(("www-authenticate" = String))),
        (status = FORBIDDEN, description = "a personal token: OFREP takes an SDK key"),
    ))]
async fn bulk(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    routed(&state, Target::All, request).await
}

/// An evaluation that came through the router (the middleware already did CORS and the metrics).
async fn routed(state: &AppState, target: Target<'_>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let address =
        parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().and_then(|info| crate::answers::counted_address(state, info.0));
    match read_body(state, &parts, body).await {
        Ok(body) => evaluate(state, target, &parts, address, &body).await,
        Err(error) => error.into_response(),
    }
}

/// What an evaluation request asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// One flag, by the key in the path.
    One(&'a str),
    /// Every flag of the environment.
    All,
}

impl Target<'_> {
    /// The route's request series.
    fn series(self, telemetry: &crate::telemetry::Telemetry) -> &crate::telemetry::RouteSeries {
        match self {
            Target::One(_) => &telemetry.ofrep_single,
            Target::All => &telemetry.ofrep_bulk,
        }
    }
}

/// The evaluation a request is, when [`serve_direct`] can answer it: a `POST` to `/ofrep/v1/evaluate/flags`, or to
/// `/ofrep/v1/evaluate/flags/{key}` with a key that is one plain path segment (the router decodes the rest).
pub(crate) fn direct_target<'a>(method: &Method, path: &'a str) -> Option<Target<'a>> {
    if method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/ofrep/v1/evaluate/flags")?;
    if rest.is_empty() {
        return Some(Target::All);
    }
    let key = rest.strip_prefix('/')?;
    (!key.is_empty() && !key.contains(['/', '%'])).then_some(Target::One(key))
}

/// Answers an evaluation request straight from its connection (see the module documentation): reads its body within
/// the endpoint's limit and `body_timeout`, evaluates, adds the CORS headers and counts the request as the router would.
pub(crate) async fn serve_direct(state: &AppState, address: SocketAddr, request: hyper::Request<hyper::body::Incoming>) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let Some(target) = direct_target(&parts.method, parts.uri.path()) else {
        return ApiError::not_found("no such endpoint; the API lives under /api (see docs/api.md)").into_response();
    };
    let mut response = match read_body(state, &parts, body).await {
        Ok(body) => evaluate(state, target, &parts, crate::answers::counted_address(state, address), &body).await,
        Err(error) => error.into_response(),
    };
    super::cors_headers(state, &parts.headers, false, response.headers_mut());
    state.telemetry.request_of(target.series(&state.telemetry), response.status().as_u16(), started.elapsed());
    response
}

/// A request body read whole, within the endpoint's size limit and the server's `body_timeout`.
async fn read_body<B>(state: &AppState, parts: &Parts, body: B) -> Result<Bytes, ApiError>
where
    B: axum::body::HttpBody<Data = Bytes>,
    B::Error: std::error::Error + 'static,
{
    use http_body_util::BodyExt;
    let limit = state.config.body_limit_for(parts.uri.path());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than this endpoint accepts ({limit} bytes at most)"),
        )
    };
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut body = std::pin::pin!(body);
        // A small body is one frame, kept as it came; a body in several frames is gathered into one buffer.
        let mut first = Bytes::new();
        let mut gathered: Option<Vec<u8>> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| match crate::error::timed_out(&error) {
                true => crate::error::body_timeout(),
                false => ApiError::bad_request(format!("request body could not be read: {error}")),
            })?;
            let Ok(data) = frame.into_data() else { continue };
            let length = gathered.as_ref().map_or(first.len(), Vec::len) + data.len();
            if length > limit {
                return Err(too_large());
            }
            match &mut gathered {
                Some(gathered) => gathered.extend_from_slice(&data),
                None if first.is_empty() => first = data,
                None => {
                    let mut buffer = Vec::with_capacity(length);
                    buffer.extend_from_slice(&first);
                    buffer.extend_from_slice(&data);
                    gathered = Some(buffer);
                }
            }
        }
        Ok(gathered.map_or(first, Bytes::from))
    };
    match tokio::time::timeout(state.config.body_timeout, read).await {
        Ok(read) => read,
        Err(_) => Err(crate::error::body_timeout()),
    }
}

/// An evaluation request answered, whichever way it came in.
async fn evaluate(state: &AppState, target: Target<'_>, parts: &Parts, address: Option<IpAddr>, body: &[u8]) -> Response {
    let key = match target {
        Target::One(key) => Some(key),
        Target::All => None,
    };
    let (environment, digest) = match environment_of(state, parts).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let context = match RequestContext::parse(body) {
        Ok(context) => context,
        Err(error) => return failure(StatusCode::BAD_REQUEST, key, error.code(), error.details()),
    };
    match key {
        Some(key) => {
            let Some(snapshot) = state.hub.snapshot(&environment) else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
            single_answer(&snapshot, key, &context)
        }
        None => {
            let Some(snapshot) = snapshot_at_least(state, &environment, notified_revision(&parts.uri)).await else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            bulk_answer(state, &snapshot, &parts.headers, &context, address, &digest)
        }
    }
}

/// The revision a re-fetch after a change notice asks for (`?flagConfigEtag=…`, ADR-0008), if it names one.
fn notified_revision(uri: &axum::http::Uri) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Refetch {
        #[serde(rename = "flagConfigEtag")]
        etag: Option<String>,
    }
    uri.query()?;
    let query = axum::extract::Query::<Refetch>::try_from_uri(uri).ok()?.0;
    super::events::revision_of_etag(&query.etag?)
}

/// How long a re-fetch after a notice waits for this server to reach the notice's revision.
const NOTICE_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(1);

/// The environment's snapshot, at `revision` or later when one is asked for: a client told of a change by one server
/// may ask another that has not applied it yet (servers sharing Redis apply each other's writes within milliseconds),
/// and an answer from before the change would leave it with the old value until the next notice. The wait is
/// bounded ([`NOTICE_CATCH_UP`]); a revision the environment never reaches (a made-up one) gets the current snapshot.
async fn snapshot_at_least(state: &AppState, environment: &EnvKey, revision: Option<u64>) -> Option<std::sync::Arc<EnvironmentSnapshot>> {
    let current = state.hub.snapshot(environment)?;
    let Some(wanted) = revision.filter(|wanted| *wanted > current.revision) else { return Some(current) };
    let mut receiver = state.hub.subscribe(environment)?;
    let reached = async {
        loop {
            if state.hub.snapshot(environment).is_some_and(|snapshot| snapshot.revision >= wanted) {
                return;
            }
            match receiver.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    let _ = tokio::time::timeout(NOTICE_CATCH_UP, reached).await;
    state.hub.snapshot(environment)
}

fn single_answer(snapshot: &EnvironmentSnapshot, key: &str, context: &RequestContext<'_>) -> Response {
    let Some(flag) = snapshot.flags.get(key) else {
        return failure(
            StatusCode::NOT_FOUND,
            Some(key),
            "FLAG_NOT_FOUND",
            format!("flag `{}` is not defined", vexil_core::name::printable(key)),
        );
    };
    let mut body = Vec::with_capacity(256);
    let status = match write_answer(&mut body, snapshot, key, flag, context) {
        Some(_) => StatusCode::OK,
        None => StatusCode::BAD_REQUEST,
    };
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn bulk_answer(
    state: &AppState,
    snapshot: &EnvironmentSnapshot,
    headers: &HeaderMap,
    context: &RequestContext<'_>,
    address: Option<IpAddr>,
    digest: &str,
) -> Response {
    let prepared = snapshot.prepared.get_or_init(|| {
        let context_free = snapshot.flags.values().all(|flag| !flag.compiled.uses_context());
        context_free.then(|| render_bulk(snapshot, &RequestContext::default()))
    });
    let (bytes, etag) = match prepared {
        Some((bytes, etag)) => (bytes.clone(), etag.clone()),
        None => render_bulk(snapshot, context),
    };
    if if_none_match(headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("etags are ASCII"));
        return response;
    }
    // `{"eventStreams":[…],` then the prepared `{"flags":[…]}` without its `{`: the key's part, the shared bytes.
    let head = Bytes::from(format!("{{{},", super::events::event_streams_json(digest)));
    let Some(body) = crate::answers::hold_after(state, address, head, bytes.slice(1..)) else { return crate::answers::busy() };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("etags are ASCII"));
    response
}

/// The bulk body for a context, written from each flag's prepared answers, and an ETag derived from what was served.
/// Archived flags are in it: an archived flag keeps serving its frozen state through every endpoint (single
/// evaluation, bulk, the stream), so archiving never changes what an application gets.
pub fn render_bulk<C: EvaluationContext + ?Sized>(snapshot: &EnvironmentSnapshot, context: &C) -> (Bytes, String) {
    use std::hash::{Hash, Hasher};
    let mut body = Vec::with_capacity(16 + snapshot.flags.len() * 192);
    // The ETag is derived from what was served: the fingerprint of each flag's answer's bytes and reason
    // (each answer's bytes are hashed once, when first written in a snapshot). So it changes exactly when this
    // context's answer does, not with every change in the environment: a client told of a change that serves it
    // nothing new gets a bodyless 304.
    let mut served = std::hash::DefaultHasher::new();
    body.extend_from_slice(b"{\"flags\":[");
    for (index, (name, flag)) in snapshot.flags.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        // A success's fingerprint covers its key (the answer's bytes start with it); a failure is known by the flag.
        match write_answer(&mut body, snapshot, name.as_str(), flag, context) {
            Some(answer) => answer.hash(&mut served),
            None => name.as_str().hash(&mut served),
        }
    }
    body.extend_from_slice(b"]}");
    (Bytes::from(body), format!("\"{:016x}\"", served.finish()))
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value.split(',').map(|candidate| candidate.trim().trim_start_matches("W/")).any(|candidate| candidate == etag || candidate == "*")
    })
}
