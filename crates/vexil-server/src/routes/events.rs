//! `GET /ofrep/v1/events`: change notices, OFREP's event stream (open-feature/protocol ADR-0008).
//!
//! A notice says only that the environment changed, and at which revision: `data: {"type":"refetchEvaluation",
//! "etag":"\"<revision>\""}` with the revision as the event's `id`. The client then asks the bulk evaluation again
//! (`POST /ofrep/v1/evaluate/flags?flagConfigEtag=…` with `If-None-Match`), which answers 304 when nothing changed
//! for its context. A notice carries no flag, rule or value, so it is what a client-side key may follow: the stream of
//! states (`/api/feature-flags/stream`) holds every rule and targeting key.
//!
//! Notices coalesce: a burst of changes (a bulk import) that arrives while one notice is being written is one more
//! notice, for the last revision. So a client never falls behind and is never cut off for lagging: the next notice
//! covers everything it did not hear of. Every connection starts with a notice for the current revision, unless its
//! `Last-Event-ID` is that revision: a change made between the client's last evaluation and its connecting is not lost.
//!
//! `EventSource` cannot send headers, so the bulk answer's `eventStreams` entry carries a ticket in its URL: the
//! SHA-256 of the key, which opens this stream and nothing else (evaluation and metrics take the key itself). The
//! stream also takes the key the usual ways (`Authorization`, `?token=`).

use std::convert::Infallible;

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

use super::stream::RETRY_MILLISECONDS;
use crate::auth::{Principal, authenticate_hash, authenticate_with_digest, streaming_credential};
use crate::error::{ApiError, ApiResult};
use crate::service::AppState;

/// Where a bulk answer's `eventStreams` entry points, before its ticket.
pub(crate) const EVENTS_PATH: &str = "/ofrep/v1/events";

/// Seconds a hidden tab keeps its event stream before closing it (ADR-0008's `inactivityDelaySec`).
pub(crate) const INACTIVITY_DELAY_SECONDS: u64 = 120;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let (schemas, paths, events) = routes!(events);
    OpenApiRouter::new().routes((schemas, paths, events.options(super::options)))
}

/// Other query parameters are ignored: browsers add cache-busters to EventSource URLs.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// The ticket from a bulk answer's `eventStreams` (the SHA-256 of an SDK or client-side key, in hex).
    ticket: Option<String>,
    /// The key itself, for clients that cannot send headers and were not given a ticket.
    #[allow(dead_code)]
    token: Option<String>,
}

/// The `eventStreams` entry of a bulk answer for the key with this SHA-256, as JSON (ADR-0008): the path is relative
/// to the OFREP base URL the client was configured with, so it holds behind any host name.
pub(crate) fn event_streams_json(digest: &str) -> String {
    format!(
        "\"eventStreams\":[{{\"type\":\"sse\",\"endpoint\":{{\"requestUri\":\"{EVENTS_PATH}?ticket={digest}\"}},\"inactivityDelaySec\":{INACTIVITY_DELAY_SECONDS}}}]"
    )
}

/// Change notices for the key's environment (server-sent events, OFREP's event stream): one `refetchEvaluation`
/// notice when the connection opens, then one after each change (or burst of changes), and a comment when idle.
/// A notice names no flag; ask `POST /ofrep/v1/evaluate/flags` again to learn what changed for your context.
#[utoipa::path(get, path = "/ofrep/v1/events", tag = "ofrep", security(("sdk_key" = []), ("sdk_key_header" = [])),
    params(EventsQuery, ("last-event-id" = Option<String>, Header, description = "the revision of the last notice received")),
    responses(
        (status = OK, description = "an event stream of `refetchEvaluation` notices", content_type = "text/event-stream", body = String),
        (status = UNAUTHORIZED, description = "no ticket or key, or an unknown or revoked one"),
        (status = FORBIDDEN, description = "the page's origin is not one the key admits"),
    ))]
async fn events(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let query = axum::extract::Query::<EventsQuery>::try_from_uri(&parts.uri)
        .map_err(|rejection| ApiError::bad_request(format!("query string is not valid: {}", rejection.body_text())))?
        .0;
    let (principal, digest) = match query.ticket.as_deref() {
        Some(ticket) => {
            let ticket: std::sync::Arc<str> = ticket.to_ascii_lowercase().into();
            (authenticate_hash(&state, &ticket, vexil_core::Source::Api).await?, ticket)
        }
        None => {
            let token = streaming_credential(&parts).ok_or_else(|| {
                ApiError::unauthenticated(
                    "no credentials: use the URL of a bulk answer's eventStreams, or send the SDK or client-side key \
                     (Authorization: Bearer …)",
                )
            })?;
            match authenticate_with_digest(&state, &token, vexil_core::Source::Api).await? {
                Some((principal, digest)) => (Some(principal), digest),
                None => (None, "".into()),
            }
        }
    };
    let unknown = || ApiError::unauthenticated("the ticket or key is unknown or revoked; evaluate again to get a current eventStreams URL");
    let principal = principal.ok_or_else(unknown)?;
    let Principal::Sdk { environment, .. } = &principal else {
        return Err(ApiError::forbidden("change notices are for SDK and client-side keys; people follow /api/feature-flags/stream"));
    };
    principal.may_serve_origin(&parts.headers)?;
    let environment = environment.clone();
    let receiver = state.hub.subscribe(&environment).ok_or_else(|| ApiError::internal("no channel for a configured environment"))?;
    let revision = state.hub.snapshot(&environment).map(|snapshot| snapshot.revision).unwrap_or(0);
    let last_event_id =
        parts.headers.get("last-event-id").and_then(|value| value.to_str().ok()).and_then(|value| value.trim().parse::<u64>().ok());
    let mut opening = format!("retry: {RETRY_MILLISECONDS}\n\n");
    if last_event_id != Some(revision) {
        opening.push_str(&notice(revision));
    }
    let period = state.config.heartbeat / 2;
    let notices = Notices {
        receiver,
        last_sent: revision,
        heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        sent_at: tokio::time::Instant::now(),
        shutdown: state.shutdown_signal(),
        environment,
        digest,
        state,
    };
    let opening = futures_util::stream::once(std::future::ready(Ok::<Bytes, Infallible>(Bytes::from(opening))));
    let body = Body::from_stream(futures_util::StreamExt::chain(opening, futures_util::stream::unfold(notices, Notices::next)));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The frame of a notice that the environment is at `revision`.
fn notice(revision: u64) -> String {
    format!("id: {revision}\nevent: message\ndata: {{\"type\":\"refetchEvaluation\",\"etag\":\"\\\"{revision}\\\"\"}}\n\n")
}

/// The revision a `flagConfigEtag` names (`"42"`, quoted or not), as the notices write it.
pub(crate) fn revision_of_etag(etag: &str) -> Option<u64> {
    etag.trim().trim_start_matches("W/").trim_matches('"').parse().ok()
}

/// An open notice stream.
struct Notices {
    receiver: broadcast::Receiver<std::sync::Arc<crate::hub::Frame>>,
    last_sent: u64,
    heartbeat: tokio::time::Interval,
    sent_at: tokio::time::Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
    environment: vexil_core::EnvKey,
    /// The SHA-256 of the stream's key, rechecked every half heartbeat so a revoked key loses its stream.
    digest: std::sync::Arc<str>,
    state: AppState,
}

impl Notices {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => return None,
                received = self.receiver.recv() => {
                    match received {
                        Ok(frame) if frame.revision <= self.last_sent => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                    // Whatever else already arrived is covered by the same notice.
                    while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = self.receiver.try_recv() {}
                    let revision = self.state.hub.snapshot(&self.environment).map_or(self.last_sent, |snapshot| snapshot.revision);
                    if revision <= self.last_sent {
                        continue;
                    }
                    self.last_sent = revision;
                    self.sent_at = tokio::time::Instant::now();
                    return Some((Ok(Bytes::from(notice(revision))), self));
                }
                _ = self.heartbeat.tick() => {
                    let max_age = self.heartbeat.period();
                    let allowed = match crate::auth::authenticate_hash_within(&self.state, &self.digest, vexil_core::Source::Api, max_age).await {
                        Ok(Some(Principal::Sdk { environment, .. })) => environment == self.environment,
                        Ok(_) => false,
                        // Through a store outage the last known answer holds, as for any request.
                        Err(_) => true,
                    };
                    if !allowed {
                        return None;
                    }
                    if self.sent_at.elapsed() < self.heartbeat.period() {
                        continue;
                    }
                    self.sent_at = tokio::time::Instant::now();
                    return Some((Ok(Bytes::from_static(b": idle\n\n")), self));
                }
            }
        }
    }
}
