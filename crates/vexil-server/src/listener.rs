//! The TCP listener `vexil serve` uses: streams on the bare socket, everything else through hyper behind a
//! write-stall guard.
//!
//! A client that stops reading fills its socket buffers, after which the server's writes to it never
//! complete. For an SSE stream that would pin the connection forever. The guard fails a write that has made
//! no progress for the configured time, which closes that connection (and drops its stream) while every
//! other connection goes on. A slow client that still makes progress is left alone.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::service::AppState;

/// How long a new connection may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request head read before deciding where a connection goes; hyper refuses larger ones.
const HEAD_LIMIT: usize = 16 * 1024;

/// The listener `vexil serve` serves axum on.
///
/// Every accepted connection first has its request head read (on its own task, so one slow client never
/// holds up accepting others). A stream request (`GET /api/feature-flags/stream…`) is then served on the
/// bare socket by [`stream::serve_raw`](crate::routes::stream::serve_raw); anything else is handed to axum
/// with the bytes already read put back in front, behind the write-stall guard.
#[derive(Debug)]
pub struct GuardedListener {
    incoming: mpsc::Receiver<(Prefixed, SocketAddr)>,
    local: SocketAddr,
}

impl GuardedListener {
    /// Starts accepting on `inner`.
    pub fn new(inner: TcpListener, state: AppState) -> io::Result<Self> {
        let local = inner.local_addr()?;
        let (sender, incoming) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                match inner.accept().await {
                    Ok((stream, address)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(classify(stream, address, state.clone(), sender.clone()));
                    }
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                if sender.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { incoming, local })
    }
}

async fn classify(mut stream: TcpStream, address: SocketAddr, state: AppState, sender: mpsc::Sender<(Prefixed, SocketAddr)>) {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let read_head = async {
        loop {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok::<bool, io::Error>(false);
            }
            head.extend_from_slice(&chunk[..read]);
            if head.windows(4).any(|window| window == b"\r\n\r\n") || head.len() >= HEAD_LIMIT {
                return Ok(true);
            }
        }
    };
    match tokio::time::timeout(HEAD_TIMEOUT, read_head).await {
        Ok(Ok(true)) => {}
        // Closed, failed or too slow before sending a request: nothing to answer.
        _ => return,
    }
    if head.starts_with(b"GET /api/feature-flags/stream")
        && let Some(parts) = parse_head(&head)
    {
        drop(head);
        crate::routes::stream::serve_raw(state, stream, parts).await;
        return;
    }
    let write_stall = state.config.write_stall;
    let guarded = StallGuard { stream, write_stall, stalled_since: None };
    let _ = sender.send((Prefixed { prefix: Some(head), position: 0, inner: guarded }, address)).await;
}

/// Parses a complete request head into request parts; `None` when it is not a plain, complete GET.
fn parse_head(head: &[u8]) -> Option<axum::http::request::Parts> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = request.parse(head).ok()? else { return None };
    // Bytes after the head would be a pipelined request: leave such connections to hyper.
    if length != head.len() || request.method != Some("GET") {
        return None;
    }
    let mut builder = axum::http::Request::builder().method("GET").uri(request.path?);
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

impl axum::serve::Listener for GuardedListener {
    type Io = Prefixed;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The acceptor only stops when the listener is dropped; never resolve then.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
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

use std::future::Future;

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
