//! `GET /api/feature-flags/stream?env=E`: the seed's real-time sync over server-sent events.
//!
//! A client gets `retry:` advice, then either the changes it missed (when it sent `Last-Event-ID` and they
//! are still retained) or a `snapshot`, then every change live, with a heartbeat when idle. Live frames are
//! the hub's pre-serialised bytes, shared by every client; a client that falls more than the hub's buffer
//! behind is disconnected (it resumes from its last id) so it never slows the others.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_store::ChangesSince;

use crate::auth::{authenticate, streaming_credential};
use crate::error::{ApiError, ApiResult};
use crate::hub::{Frame, change_frame, heartbeat_frame};
use crate::service::AppState;

/// Reconnect advice sent first, in milliseconds.
pub(super) const RETRY_MILLISECONDS: u64 = 3000;

/// The most changes replayed to one resuming client; beyond that a snapshot is cheaper.
const REPLAY_LIMIT: u32 = 10_000;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let (schemas, paths, stream) = routes!(stream);
    OpenApiRouter::new().routes((schemas, paths, stream.options(super::options)))
}

/// Other query parameters are ignored: browsers add cache-busters to EventSource URLs.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// The environment (key or long name); an SDK key reads only its own.
    env: String,
    /// The credential, for EventSource (read by `auth::credential`).
    #[allow(dead_code)]
    token: Option<String>,
}

/// What a stream request gets when the store cannot be asked whether its credential is good: a stream that gives
/// reconnect advice and ends. EventSource retries after a stream ends but gives up for good on an error status, so
/// a 503 would leave a browser without flags long after the outage.
const RETRY_LATER: &str = ": store unavailable: this credential cannot be checked now; reconnect after the retry delay\n\n";

fn retry_later() -> Bytes {
    Bytes::from(format!("retry: {RETRY_MILLISECONDS}\n\n{RETRY_LATER}"))
}

/// Every change of an environment in real time (server-sent events): `retry:` advice, then the changes missed since
/// `Last-Event-ID` (or a `snapshot`), then each change as it is made, with a heartbeat when idle. Frames are described
/// in docs/api.md.
#[utoipa::path(get, path = "/api/feature-flags/stream", tag = "stream", security(("bearer" = []), ("sdk_key" = []), ("session" = [])),
    params(StreamQuery, ("last-event-id" = Option<String>, Header, description = "the id of the last frame received, to resume")),
    responses((status = OK, description = "an event stream", content_type = "text/event-stream", body = String)))]
async fn stream(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let (opening, live) = match start(&state, &parts).await {
        Ok(started) => started,
        Err(error) if error.status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            let mut response = retry_later().into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return Ok(response);
        }
        Err(error) => return Err(error),
    };
    let opening = futures_util::stream::iter(opening.into_iter().map(Ok::<Bytes, Infallible>));
    let body = Body::from_stream(futures_util::StreamExt::chain(opening, futures_util::stream::unfold(live, Live::next)));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Checks the request and prepares a stream: the opening frames (retry advice, then the missed changes or a
/// snapshot) and the live part. Shared by the axum route and the lean path of [`serve_raw`].
pub(crate) async fn start(state: &AppState, parts: &Parts) -> ApiResult<(Vec<Bytes>, Live)> {
    let query = axum::extract::Query::<StreamQuery>::try_from_uri(&parts.uri)
        .map_err(|rejection| ApiError::bad_request(format!("query string is not valid: {}", rejection.body_text())))?
        .0;
    let token = streaming_credential(parts).ok_or_else(|| {
        ApiError::unauthenticated(
            "no credentials: send `Authorization: Bearer <token>` (an SDK key or an API token), or ?token= for EventSource",
        )
    })?;
    let credential = crate::auth::hash_token(&token);
    let principal = authenticate(state, &token, vexil_core::Source::Api)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the token is unknown or revoked; log in again or create a new token"))?;
    let environment = state.environment(&query.env)?;
    principal.may_read(&environment)?;
    if let crate::auth::Principal::Sdk { client: true, .. } = principal {
        // The stream holds every rule and targeting key (customer ids, emails): not for code anyone can read.
        return Err(ApiError::forbidden(
            "this is a client-side key: it evaluates flags for the context it sends (POST /ofrep/v1/evaluate/flags) and cannot read \
             the stream, which holds every rule and targeting key; a server-side application uses an SDK key (vexil token create --sdk)",
        ));
    }
    let receiver = state.hub.subscribe(&environment.key).ok_or_else(|| ApiError::internal("no channel for a configured environment"))?;
    let snapshot = state.hub.snapshot(&environment.key).ok_or_else(|| ApiError::internal("no snapshot for a configured environment"))?;
    let last_event_id =
        parts.headers.get("last-event-id").and_then(|value| value.to_str().ok()).and_then(|value| value.trim().parse::<u64>().ok());

    let mut opening = vec![Bytes::from(format!("retry: {RETRY_MILLISECONDS}\n\n"))];
    match last_event_id {
        Some(last) if last == snapshot.revision => {}
        Some(last) if last < snapshot.revision => match state.store.changes_since(&environment.key, last, REPLAY_LIMIT).await {
            // Replay only when every change up to the snapshot's revision is there; otherwise start over.
            Ok(ChangesSince::Changes(changes)) if changes.iter().any(|change| change.revision >= snapshot.revision) => {
                opening.extend(changes.iter().filter(|change| change.revision <= snapshot.revision).map(change_frame));
            }
            Ok(_) => opening.push(snapshot.snapshot_frame()),
            Err(error) => {
                tracing::warn!(%error, "cannot read retained changes; sending a snapshot");
                opening.push(snapshot.snapshot_frame());
            }
        },
        _ => opening.push(snapshot.snapshot_frame()),
    }
    let live = Live {
        receiver,
        last_sent: snapshot.revision,
        heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + state.config.heartbeat / 2, state.config.heartbeat / 2),
        sent_at: tokio::time::Instant::now(),
        shutdown: state.shutdown_signal(),
        state: state.clone(),
        environment: environment.key.clone(),
        credential,
        client: StreamClient::open(state, crate::telemetry::intern(environment.key.as_str())),
    };
    Ok((opening, live))
}

/// The lean path: a stream request that arrived first on its connection is answered here, on the bare socket,
/// instead of through hyper. A connection then holds only its socket and its place in the broadcast, which is
/// what lets one server carry tens of thousands of streams.
pub(crate) async fn serve_raw(state: AppState, mut socket: tokio::net::TcpStream, parts: Parts) {
    use tokio::io::AsyncWriteExt;
    let write_stall = state.config.write_stall;
    let (opening, mut live) = match start(&state, &parts).await {
        Ok(started) => started,
        Err(error) if error.status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n{}connection: close\r\n\r\n",
                cors_headers(&state, &parts)
            );
            if write_within(&mut socket, head.as_bytes(), write_stall).await {
                write_within(&mut socket, &retry_later(), write_stall).await;
            }
            return;
        }
        Err(error) => {
            let status = error.status;
            let body = serde_json::json!({"error": {"code": error.code, "message": error.message}}).to_string();
            let response = format!(
                "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}connection: close\r\n\r\n{body}",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                body.len(),
                cors_headers(&state, &parts)
            );
            let _ = tokio::time::timeout(write_stall, socket.write_all(response.as_bytes())).await;
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\n{}connection: close\r\n\r\n",
        cors_headers(&state, &parts)
    );
    drop(parts);
    if !write_within(&mut socket, head.as_bytes(), write_stall).await {
        return;
    }
    for frame in opening {
        if !write_within(&mut socket, &frame, write_stall).await {
            return;
        }
    }
    loop {
        let Some((Ok(frame), next)) = live.next().await else { return };
        live = next;
        // A write that makes no progress for the stall time means the client stopped reading: drop it.
        if !write_within(&mut socket, &frame, write_stall).await {
            live.client.ended("write_failed");
            return;
        }
    }
}

/// The CORS headers of a stream answered on the bare socket, as the CORS layer gives the routes through axum: any
/// origin when none are configured, else the request's origin when it is one of them (and `vary: origin`).
fn cors_headers(state: &AppState, parts: &Parts) -> String {
    const EXPOSE: &str = "access-control-expose-headers: etag, www-authenticate\r\n";
    let origins = &state.config.cors_origins;
    if origins.is_empty() {
        return format!("access-control-allow-origin: *\r\n{EXPOSE}");
    }
    let origin = parts.headers.get(header::ORIGIN).and_then(|value| value.to_str().ok());
    match origin.filter(|origin| origins.iter().any(|allowed| allowed == origin)) {
        Some(origin) => format!("access-control-allow-origin: {origin}\r\nvary: origin\r\n{EXPOSE}"),
        None => "vary: origin\r\n".to_owned(),
    }
}

/// Writes all of `bytes`, failing when the socket accepts nothing for `limit`.
///
/// A frame usually fits in the socket buffer at once: that case takes one `try_write` and no timer, which
/// matters when one change is written to ten thousand sockets.
async fn write_within(socket: &mut tokio::net::TcpStream, bytes: &[u8], limit: std::time::Duration) -> bool {
    use tokio::io::AsyncWriteExt;
    let written = match socket.try_write(bytes) {
        Ok(written) => written,
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return false,
    };
    if written == bytes.len() {
        return true;
    }
    matches!(tokio::time::timeout(limit, socket.write_all(&bytes[written..])).await, Ok(Ok(())))
}

/// A stream's place in the metrics: counted open while it lives; [`StreamClient::ended`] says why the server ended it.
/// Its series are looked up once, when the stream opens: a change is delivered to every client, so the fan-out pays
/// one atomic increment per frame, never a registry lookup.
pub(crate) struct StreamClient {
    state: AppState,
    environment: &'static str,
    open: prometheus_client::metrics::gauge::Gauge,
    deliveries: prometheus_client::metrics::counter::Counter,
}

impl StreamClient {
    fn open(state: &AppState, environment: &'static str) -> Self {
        let label = crate::telemetry::EnvironmentLabel { environment };
        let open = state.telemetry.stream_clients.get_or_create(&label).clone();
        let deliveries = state.telemetry.stream_deliveries.get_or_create(&label).clone();
        open.inc();
        Self { state: state.clone(), environment, open, deliveries }
    }

    fn delivered(&self) {
        self.deliveries.inc();
    }

    fn ended(&self, kind: &'static str) {
        let labels = crate::telemetry::EnvironmentKind { environment: self.environment, kind };
        self.state.telemetry.stream_drops.get_or_create(&labels).inc();
    }
}

impl Drop for StreamClient {
    fn drop(&mut self) {
        self.open.dec();
    }
}

pub(crate) struct Live {
    receiver: broadcast::Receiver<Arc<Frame>>,
    last_sent: u64,
    heartbeat: tokio::time::Interval,
    sent_at: tokio::time::Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
    state: AppState,
    environment: vexil_core::EnvKey,
    /// The SHA-256 of the stream's credential: rechecked every half heartbeat against an answer at most half a
    /// heartbeat old, so a revoked key, an ended session or a disabled user loses the stream within one heartbeat
    /// (15 s by default) wherever the change was made, and at the next check when it was made through this server.
    credential: String,
    client: StreamClient,
}

impl Live {
    /// Whether the stream's credential still reads this environment. Through a store outage the last known
    /// answer holds (as for any request), so an outage does not cut every stream.
    async fn still_allowed(&self) -> bool {
        let Some(environment) = self.state.config.environments.get(&self.environment) else { return false };
        let max_age = self.heartbeat.period();
        match crate::auth::authenticate_hash_within(&self.state, &self.credential, vexil_core::Source::Api, max_age).await {
            Ok(Some(principal)) => principal.may_read(environment).is_ok(),
            Ok(None) => false,
            Err(_) => true,
        }
    }
}

impl Live {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if *self.shutdown.borrow() {
            self.client.ended("shutdown");
            return None;
        }
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => {
                    self.client.ended("shutdown");
                    return None;
                }
                received = self.receiver.recv() => match received {
                    Ok(frame) if frame.revision > self.last_sent => {
                        self.last_sent = frame.revision;
                        self.sent_at = tokio::time::Instant::now();
                        self.client.delivered();
                        return Some((Ok(frame.bytes.clone()), self));
                    }
                    Ok(_) => continue,
                    // Too far behind, or the server is shutting down: end the stream; the client resumes by Last-Event-ID.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.client.ended("lagged");
                        return None;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.client.ended("shutdown");
                        return None;
                    }
                },
                _ = self.heartbeat.tick() => {
                    if !self.still_allowed().await {
                        self.client.ended("credential");
                        return None;
                    }
                    // The timer ticks every half heartbeat and is never reset by frames (that would be a timer update
                    // per client per change); a tick sends a heartbeat when nothing went out for half a heartbeat, so
                    // a stream is never silent for longer than the configured heartbeat.
                    if self.sent_at.elapsed() < self.heartbeat.period() {
                        continue;
                    }
                    self.sent_at = tokio::time::Instant::now();
                    let revision = self.state.hub.snapshot(&self.environment).map(|snapshot| snapshot.revision).unwrap_or(self.last_sent);
                    return Some((Ok(heartbeat_frame(&self.environment, revision)), self));
                }
            }
        }
    }
}
