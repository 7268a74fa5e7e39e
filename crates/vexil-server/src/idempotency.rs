//! `Idempotency-Key`: a write retried with the key of an earlier attempt is carried out at most once.
//!
//! A client that got `503 outcome_unknown` (or no answer at all) cannot know whether its write landed. Sent again
//! with the same `Idempotency-Key` header, the write is done only if the first attempt was not: the key is stored with
//! the write in the same atomic commit ([`vexil_store::Write::idempotency`]), so the store itself refuses a second
//! commit under it. A retry of a write that landed gets the first attempt's answer back (`Idempotent-Replayed: true`),
//! or, when that answer was never given (the first attempt ended in an error after the store committed), a 200 that
//! says the request was carried out and names its audit records. Keys belong to the user who sent them; the same key
//! with a different request of theirs (another body, path, method or token) is refused with 422. Only authenticated
//! writes are keyed. Keys are remembered for a day.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use vexil_store::{IdempotencyKey, Remembered};

use crate::error::{ApiError, ErrorCode};
use crate::service::AppState;

/// The header.
pub const HEADER: &str = "idempotency-key";

/// The largest answer kept for a replay; write answers are far smaller.
const KEPT_ANSWER: usize = 1 << 20;

/// The key of the request being served, for the first commit it makes.
#[derive(Debug)]
struct Slot {
    key: Mutex<Option<IdempotencyKey>>,
}

tokio::task_local! {
    static SLOT: Arc<Slot>;
}

/// The idempotency key of the request this task serves, taken by its first commit (later commits of the same
/// request carry none).
pub fn take() -> Option<IdempotencyKey> {
    SLOT.try_with(|slot| slot.key.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()).ok().flatten()
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// The middleware: see the module documentation.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) || !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let keeps_answer = keeps_answer(request.uri().path());
    let Some(value) = request.headers().get(HEADER) else { return next.run(request).await };
    let key = match value.to_str().ok().filter(|key| (1..=200).contains(&key.len()) && key.bytes().all(|byte| byte.is_ascii_graphic())) {
        Some(key) => key.to_owned(),
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Idempotency-Key must be 1 to 200 visible ASCII characters, such as a UUID",
            );
        }
    };
    // Only an authenticated person's write is keyed, by exactly the credential the handler will act on (so nothing is
    // read or replayed for anyone else, and nobody unauthenticated makes the server buffer a body): anything else goes
    // on to the handler, which refuses it.
    let (mut parts, body) = request.into_parts();
    let actor = match <crate::auth::Actor as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await {
        Ok(actor) => actor,
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    let limit = state.config.body_limit_for(parts.uri.path());
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) if crate::error::timed_out(&error) => return crate::error::body_timeout().into_response(),
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is larger than this endpoint accepts"),
    };
    let fingerprint = {
        let mut hasher = Sha256::new();
        let who = format!("{}\n{}", actor.email, actor.token_id);
        for part in [parts.method.as_str().as_bytes(), parts.uri.to_string().as_bytes(), who.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.update(&bytes);
        hex::encode(hasher.finalize())
    };
    // Keys are the caller's own: the same key sent by someone else is another key, so nobody learns of another's.
    let key = format!("{}\n{key}", actor.email);
    match state.store.remembered(&key).await {
        Ok(Some(remembered)) => return replay(remembered, &fingerprint),
        Ok(None) => {}
        Err(error) => return ApiError::from(error).into_response(),
    }
    let slot = Arc::new(Slot { key: Mutex::new(Some(IdempotencyKey { key: key.clone(), fingerprint: fingerprint.clone() })) });
    let request = Request::from_parts(parts, Body::from(bytes));
    let response = SLOT.scope(slot.clone(), next.run(request)).await;
    let used = slot.key.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_none();
    if response.extensions().get::<ErrorCode>().is_some_and(|code| code.0 == "idempotency_duplicate") {
        // Another attempt with this key committed in the meantime: its answer is this one's.
        return match state.store.remembered(&key).await {
            Ok(Some(remembered)) => replay(remembered, &fingerprint),
            _ => refuse(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is being carried out; retry in a moment",
            ),
        };
    }
    if !used || !response.status().is_success() || !keeps_answer {
        return response;
    }
    // Keep the answer for retries (best effort: without it a retry still learns that the write was done). An answer
    // too large to keep is not kept: its retry gets the "done" answer, as for answers that carry secrets.
    let fits = axum::body::HttpBody::size_hint(response.body()).exact().is_some_and(|size| size <= KEPT_ANSWER as u64);
    if !fits {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, KEPT_ANSWER).await else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the answer could not be read; the change was made");
    };
    let kept = serde_json::json!({"status": parts.status.as_u16(), "body": String::from_utf8_lossy(&body)}).to_string();
    if let Err(error) = state.store.remember_response(&key, &kept).await {
        tracing::warn!(%error, "could not keep the answer of an idempotent write");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Whether the answer to a write at `path` may be kept for a replay: never answers that carry a secret (a token, a
/// generated password, a trigger's URL), which are never stored in the clear; a retry of those learns only that the
/// write was done.
fn keeps_answer(path: &str) -> bool {
    !["/api/auth/", "/api/tokens", "/api/users", "/api/triggers"].iter().any(|prefix| path.starts_with(prefix))
}

/// Puts back the key of a commit that changed nothing (refused whole), so a later commit of the same request uses it.
pub fn restore(key: IdempotencyKey) {
    let _ = SLOT.try_with(|slot| {
        slot.key.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get_or_insert(key);
    });
}

/// The answer to a retry of a write whose first attempt was committed but whose answer was not kept (it carried a
/// secret, or was lost with the connection): what was done is in the audit trail.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Replayed {
    /// Always true.
    replayed: bool,
    /// Always `done`: the first attempt was committed.
    outcome: String,
    /// The ids of the audit records the first attempt wrote.
    audit: Vec<u64>,
    message: String,
}

/// The answer to a retry of a write that was committed.
fn replay(remembered: Remembered, fingerprint: &str) -> Response {
    if remembered.fingerprint != fingerprint {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request in the last 24 hours; send a new key with a new request",
        );
    }
    let kept = remembered.response.as_deref().and_then(|kept| serde_json::from_str::<serde_json::Value>(kept).ok());
    let mut response = match kept {
        Some(kept) => {
            let status = kept["status"].as_u64().and_then(|status| StatusCode::from_u16(status as u16).ok()).unwrap_or(StatusCode::OK);
            let body = kept["body"].as_str().unwrap_or_default().to_owned();
            let mut response = (status, body).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        None => axum::Json(Replayed {
            replayed: true,
            outcome: "done".to_owned(),
            audit: remembered.audit,
            message: "this request was carried out by an earlier attempt with the same Idempotency-Key, whose answer was lost; its audit records say what it did".to_owned(),
        })
        .into_response(),
    };
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
