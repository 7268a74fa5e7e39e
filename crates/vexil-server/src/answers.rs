//! Bounded memory for large answers read slowly.
//!
//! An answer lives in memory until the client has read it all. A listing of 10 000 flags (`GET /api/flags`, an
//! export, a bulk evaluation) is megabytes, and a client that reads it a few bytes at a time (without ever stalling
//! long enough for the write-stall guard) keeps it for as long as it likes; a few hundred such clients would exhaust
//! the server. So every answer larger than [`LARGE`] takes its size from one budget (`response_memory_mb`) until its
//! last byte is written or its connection is gone. An answer that does not fit is not held at all: the client gets
//! `503 busy` with `Retry-After` at once, and the server's memory for large answers never exceeds the budget (one
//! answer larger than the whole budget may go while nothing else holds any). Small answers are never counted, nor
//! are the answers of writes (a write is done by the time it is answered: its answer is never refused), and one
//! client address may hold at most a quarter of the budget, so nobody reading slowly keeps large answers from others.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::service::AppState;

/// Answers at least this large are counted against the budget.
pub const LARGE: usize = 64 * 1024;

/// The budget is kept in KiB, so a semaphore's permits can count it.
const UNIT: usize = 1024;

/// The memory large answers may hold at once.
#[derive(Debug)]
pub struct AnswerBudget {
    units: Arc<Semaphore>,
    total: u32,
    /// What each client address holds now, in units.
    held: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
}

impl AnswerBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let total = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX >> 3).min(Semaphore::MAX_PERMITS as u32);
        Self { units: Arc::new(Semaphore::new(total as usize)), total, held: Default::default() }
    }

    /// The share of an answer of `size` bytes for a client at `address`, if the budget has it now and the address
    /// holds less than a quarter of it with this one.
    fn take(&self, size: usize, address: Option<std::net::IpAddr>) -> Option<Share> {
        let units = u32::try_from(size.div_ceil(UNIT)).unwrap_or(u32::MAX).min(self.total);
        if let Some(address) = address {
            let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mine = held.entry(address).or_default();
            // An address holding nothing may always try (an answer larger than a quarter goes alone).
            if *mine > 0 && mine.saturating_add(units) > self.total / 4 {
                return None;
            }
            let permit = self.units.clone().try_acquire_many_owned(units).ok()?;
            *mine += units;
            return Some(Share { _permit: permit, address: Some(address), units, held: self.held.clone() });
        }
        let permit = self.units.clone().try_acquire_many_owned(units).ok()?;
        Some(Share { _permit: permit, address: None, units, held: self.held.clone() })
    }
}

/// A large answer's share of the budget, given back when the answer's buffer is dropped.
#[derive(Debug)]
struct Share {
    _permit: OwnedSemaphorePermit,
    address: Option<std::net::IpAddr>,
    units: u32,
    held: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        if let Some(address) = self.address {
            let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(mine) = held.get_mut(&address) {
                *mine = mine.saturating_sub(self.units);
                if *mine == 0 {
                    held.remove(&address);
                }
            }
        }
    }
}

/// The address a client's large answers are counted by: none for a trusted proxy, through which everyone comes.
pub fn counted_address(state: &AppState, address: std::net::SocketAddr) -> Option<std::net::IpAddr> {
    Some(address.ip()).filter(|address| !state.config.trusted_proxies.contains(address))
}

/// The body of an answer to a read: as it is when small; when large, holding its share of the budget until it is
/// written. `None` when the budget (or the address's quarter of it) does not have it now: answer [`busy`] instead.
pub fn hold(state: &AppState, address: Option<std::net::IpAddr>, bytes: Bytes) -> Option<Body> {
    if bytes.len() < LARGE {
        return Some(Body::from(bytes));
    }
    let Some(share) = state.answers.take(bytes.len(), address) else {
        state.telemetry.answer_refused();
        return None;
    };
    // The share lives exactly as long as the answer's buffer: until hyper has written its last byte to the kernel,
    // or dropped it with the connection.
    Some(Body::from(Bytes::from_owner(Held { bytes, _share: share })))
}

/// [`hold`] for an answer written as `head` followed by `bytes`, without copying either: a bulk evaluation is the
/// same prepared bytes for every key, each key's own part goes before them.
pub fn hold_after(state: &AppState, address: Option<std::net::IpAddr>, head: Bytes, bytes: Bytes) -> Option<Body> {
    let size = head.len() + bytes.len();
    let bytes = if size < LARGE {
        bytes
    } else {
        let Some(share) = state.answers.take(size, address) else {
            state.telemetry.answer_refused();
            return None;
        };
        Bytes::from_owner(Held { bytes, _share: share })
    };
    Some(Body::new(Chunks([Some(head), Some(bytes)])))
}

/// A body of a few chunks already in memory, with its exact length (so it is sent with `content-length`).
struct Chunks([Option<Bytes>; 2]);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let next = self.0.iter_mut().find_map(Option::take);
        std::task::Poll::Ready(next.map(|chunk| Ok(hyper::body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.iter().flatten().map(|chunk| chunk.len() as u64).sum())
    }
}

/// The answer to a read whose large answer the budget cannot hold now.
pub fn busy() -> Response {
    let mut refused = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the server holds as many large answers for clients still reading them as it may (response_memory_mb); retry in a moment",
    )
    .into_response();
    refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    refused
}

/// The middleware: a large answer to a read holds its share until it is written, or is refused at once. OFREP's
/// evaluations hold theirs where they are made (`routes::ofrep`), so the middleware leaves them alone.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A write's answer comes after the write is done, and is never refused.
    let read = request.method() == axum::http::Method::GET && !request.uri().path().starts_with("/ofrep/");
    let address =
        request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().and_then(|info| counted_address(&state, info.0));
    let response = next.run(request).await;
    let size = axum::body::HttpBody::size_hint(response.body()).exact();
    let Some(size) = size.filter(|size| read && *size >= LARGE as u64) else { return response };
    let (parts, body) = response.into_parts();
    // The body is already in memory (its exact size is known), so reading it is immediate.
    let bytes = match axum::body::to_bytes(body, size as usize).await {
        Ok(bytes) => bytes,
        Err(error) => return ApiError::internal(format!("a buffered answer could not be read: {error}")).into_response(),
    };
    match hold(&state, address, bytes) {
        Some(body) => Response::from_parts(parts, body),
        None => busy(),
    }
}

/// An answer's buffer with the budget share it holds.
struct Held {
    bytes: Bytes,
    _share: Share,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}
