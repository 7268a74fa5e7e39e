//! How `vexil serve` holds its connections: a cap on how many (in all and per client address), a deadline for
//! every request head, streams on the bare socket, everything else through hyper behind a write-stall guard, and a
//! bounded drain at shutdown.
//!
//! - **Caps.** At most `max_connections` are open at once (by default what the process's open-file limit allows,
//!   less a reserve for the store and logs), and one client address holds at most `max_connections_per_address`
//!   (seven eighths by default; a configured trusted proxy is not capped).
//!   A connection over either cap gets a short `503` with `Retry-After` and is closed, so the server stays reachable
//!   for everyone else instead of failing `accept` for everyone.
//! - **Heads.** Every request head, the first of a connection and every later one, must arrive within
//!   `header_timeout`; that is also how long an idle keep-alive connection is kept. A slow or silent client
//!   holds a connection for that long at most. Request bodies have `body_timeout`.
//! - **Streams.** A `GET /api/feature-flags/stream` that arrives first on its connection is served on the bare
//!   socket by [`stream::serve_raw`](crate::routes::stream::serve_raw): the connection then holds only its socket and
//!   its place in the broadcast, which is what lets one server carry tens of thousands of streams.
//! - **Evaluations.** An OFREP `POST` goes from hyper straight to
//!   [`ofrep::serve_direct`](crate::routes::ofrep::serve_direct), which does what the router's middleware would do for
//!   it at a fraction of the cost; every other request goes through the router.
//! - **Stalls.** A client that stops reading fills its socket buffers, after which the server's writes to it never
//!   complete. The guard fails a write that has made no progress for `write_stall`, which closes that connection
//!   while every other goes on. A slow client that still makes progress is left alone.
//! - **Shutdown.** Open streams end, in-flight requests get `shutdown_grace` to finish, then the process goes on
//!   to exit whatever a client that does not read is doing.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::service::AppState;

/// The largest request head read before deciding where a connection goes; hyper refuses larger ones.
const HEAD_LIMIT: usize = 16 * 1024;

/// File descriptors kept for everything that is not a client connection (the store, logs, the runtime).
const DESCRIPTOR_RESERVE: usize = 128;

/// The most connections when the open-file limit cannot be read.
const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

/// How many connections may be open, in all and from one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// In all.
    pub total: usize,
    /// From one client address.
    pub per_address: usize,
}

impl ConnectionLimits {
    /// The limits for `configured` (0: derived): the configured total, but never more than the open-file limit
    /// allows; one address may hold seven eighths of them unless configured otherwise (an eighth stays for everyone
    /// else; trusted proxies, through which everyone comes, are not capped per address).
    pub fn resolve(configured_total: usize, configured_per_address: usize) -> Self {
        let allowed = open_file_limit().map(|limit| limit.saturating_sub(DESCRIPTOR_RESERVE).max(1));
        let total = match (configured_total, allowed) {
            (0, Some(allowed)) => allowed.min(DEFAULT_MAX_CONNECTIONS),
            (0, None) => DEFAULT_MAX_CONNECTIONS,
            (configured, Some(allowed)) => configured.min(allowed),
            (configured, None) => configured,
        };
        let per_address = if configured_per_address == 0 { (total - total / 8).max(1) } else { configured_per_address.min(total) };
        Self { total, per_address }
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere or when unlimited.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// Connections open per client address.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place under the caps; dropping it frees the place.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    address: IpAddr,
    per_address: Arc<PerAddress>,
    state: AppState,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.state.telemetry.connections.dec();
        let mut counts = self.per_address.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; see the module documentation.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = state.config.connection_limits;
    let slots = Arc::new(Semaphore::new(limits.total));
    let per_address = Arc::new(PerAddress::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(state.config.header_timeout).keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, address) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a moment instead of spinning.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let admitted = admit(&slots, &per_address, address.ip(), limits, &state);
        let Some(admitted) = admitted else {
            state.telemetry.connections_refused.inc();
            tokio::spawn(refuse(stream, state.config.write_stall));
            continue;
        };
        let watcher = graceful.watcher();
        tokio::spawn(connection(stream, address, state.clone(), app.clone(), builder.clone(), watcher, admitted));
    }
    drop(listener);
    state.begin_shutdown();
    if tokio::time::timeout(state.config.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?state.config.shutdown_grace, "requests still in flight at the end of the shutdown grace; leaving them");
    }
    // Commits run as their own tasks: let the one in progress finish, so nothing acknowledged is cut in half.
    let _ = tokio::time::timeout(state.config.shutdown_grace, state.serialised()).await;
    Ok(())
}

fn admit(
    slots: &Arc<Semaphore>,
    per_address: &Arc<PerAddress>,
    address: IpAddr,
    limits: ConnectionLimits,
    state: &AppState,
) -> Option<Admitted> {
    let permit = slots.clone().try_acquire_owned().ok()?;
    let mut counts = per_address.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let count = counts.entry(address).or_default();
    if *count >= limits.per_address && !state.config.trusted_proxies.contains(&address) {
        return None;
    }
    *count += 1;
    drop(counts);
    state.telemetry.connections.inc();
    Some(Admitted { _permit: permit, address, per_address: per_address.clone(), state: state.clone() })
}

/// A connection over the caps: a short answer it can act on, then the connection is closed.
async fn refuse(mut stream: TcpStream, write_stall: Duration) {
    const BODY: &str = r#"{"error":{"code":"too_many_connections","message":"the server holds as many connections as it allows (in all, or from your address); retry in a moment"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(write_stall.min(Duration::from_secs(2)), stream.write_all(response.as_bytes())).await;
}

async fn connection(
    mut stream: TcpStream,
    address: SocketAddr,
    state: AppState,
    app: axum::Router,
    builder: Arc<hyper::server::conn::http1::Builder>,
    watcher: hyper_util::server::graceful::Watcher,
    admitted: Admitted,
) {
    let _admitted = admitted;
    let Some(head) = read_first_head(&mut stream, state.config.header_timeout).await else { return };
    if let Some(parts) = stream_request(&head) {
        drop(head);
        crate::routes::stream::serve_raw(state, stream, parts).await;
        return;
    }
    let io = Prefixed {
        prefix: Some(head),
        position: 0,
        inner: StallGuard { stream, write_stall: state.config.write_stall, stalled_since: None },
    };
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        let (state, mut app) = (state.clone(), app.clone());
        async move {
            // Evaluations, the hot path, skip the router and its middleware (see `routes::ofrep`).
            if crate::routes::ofrep::direct_target(request.method(), request.uri().path()).is_some() {
                return Ok(crate::routes::ofrep::serve_direct(&state, address, request).await);
            }
            request.extensions_mut().insert(axum::extract::ConnectInfo(address));
            tower::Service::call(&mut app, request.map(axum::body::Body::new)).await
        }
    });
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let _ = watcher.watch(connection).await;
}

/// The first byte of a TLS connection (a handshake record), which no HTTP request starts with.
const TLS_HANDSHAKE: u8 = 0x16;

/// Reads until the first request head is complete (`\r\n\r\n` or bare `\n\n` line ends), turns out malformed, or
/// reaches [`HEAD_LIMIT`], and returns the bytes read (which may go past the head). The head is only parsed again
/// when a read brought a line end, so a client sending a byte at a time costs one parse per line, not one per byte.
/// `None`: closed, failed or too slow before sending a head.
async fn read_first_head(stream: &mut TcpStream, timeout: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let read_head = async {
        loop {
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            head.extend_from_slice(&chunk[..read]);
            // A TLS handshake (record type 22) on this plain-HTTP port: closed at once, so a client given https://
            // fails in a moment ("the server does not speak TLS") instead of waiting out the head timeout.
            if head.first() == Some(&TLS_HANDSHAKE) {
                tracing::debug!("a TLS handshake on the plain-HTTP listener; closing (the client should use http://)");
                return None;
            }
            if head.len() >= HEAD_LIMIT || !chunk[..read].contains(&b'\n') {
                if head.len() >= HEAD_LIMIT {
                    return Some(());
                }
                continue;
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            match httparse::Request::new(&mut headers).parse(&head) {
                Ok(httparse::Status::Partial) => continue,
                // Complete, or malformed (hyper answers it, 400, from the bytes already read).
                _ => return Some(()),
            }
        }
    };
    match tokio::time::timeout(timeout, read_head).await {
        Ok(Some(())) => Some(head),
        _ => None,
    }
}

/// The request parts of a stream request that can be served on the bare socket: exactly
/// `GET /api/feature-flags/stream` (with any query), alone on its connection so far (nothing pipelined after it).
fn stream_request(head: &[u8]) -> Option<axum::http::request::Parts> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = request.parse(head).ok()? else { return None };
    // Bytes after the head would be a pipelined request: leave such connections to hyper.
    if length != head.len() {
        return None;
    }
    let path = request.path?;
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    if request.method != Some("GET") || route != "/api/feature-flags/stream" {
        return None;
    }
    let mut builder = axum::http::Request::builder().method("GET").uri(path);
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

/// A guarded stream with the bytes already read from it put back in front.
#[derive(Debug)]
pub struct Prefixed {
    prefix: Option<Vec<u8>>,
    position: usize,
    inner: StallGuard,
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(prefix) = self.prefix.take() {
            let remaining = &prefix[self.position..];
            let count = remaining.len().min(buffer.remaining());
            buffer.put_slice(&remaining[..count]);
            self.position += count;
            if self.position < prefix.len() {
                self.prefix = Some(prefix);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(context, buffer)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, buffer)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, context: &mut Context<'_>, buffers: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

/// A TCP stream whose writes fail once they have been stuck for too long.
#[derive(Debug)]
pub struct StallGuard {
    stream: TcpStream,
    write_stall: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn on_write<T>(&mut self, context: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        use std::future::Future;
        match poll {
            Poll::Pending => {
                let write_stall = self.write_stall;
                let deadline = self.stalled_since.get_or_insert_with(|| Box::pin(tokio::time::sleep(write_stall)));
                match deadline.as_mut().poll(context) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.stalled_since = None;
                ready
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(mut self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(context, buffer);
        self.on_write(context, poll)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, context: &mut Context<'_>, buffers: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(context, buffers);
        self.on_write(context, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(context);
        self.on_write(context, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stream_route_goes_to_the_bare_socket() {
        assert!(stream_request(b"GET /api/feature-flags/stream?env=dev HTTP/1.1\r\nhost: x\r\n\r\n").is_some());
        assert!(stream_request(b"GET /api/feature-flags/stream HTTP/1.1\nhost: x\n\n").is_some(), "bare LF line ends");
        for head in [
            &b"GET /api/feature-flags/streamX?env=dev HTTP/1.1\r\n\r\n"[..],
            b"GET /api/feature-flags/stream/../../api/flags HTTP/1.1\r\n\r\n",
            b"POST /api/feature-flags/stream?env=dev HTTP/1.1\r\n\r\n",
            b"GET /api/feature-flags/stream?env=dev HTTP/1.1\r\nhost: x\r\n",
        ] {
            assert!(stream_request(head).is_none(), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn limits_never_exceed_what_the_process_may_open() {
        let limits = ConnectionLimits::resolve(usize::MAX, 0);
        if let Some(allowed) = open_file_limit() {
            assert!(limits.total <= allowed);
        }
        assert_eq!(limits.per_address, (limits.total - limits.total / 8).max(1));
        assert_eq!(ConnectionLimits::resolve(10, 3), ConnectionLimits { total: 10.min(limits.total), per_address: 3 });
    }
}
