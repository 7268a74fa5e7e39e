//! The TCP listener `vexil serve` uses: plain TCP, plus a write-stall guard on every connection.
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
use tokio::time::Sleep;

/// A listener whose connections fail writes stalled longer than `write_stall`.
#[derive(Debug)]
pub struct GuardedListener {
    inner: TcpListener,
    write_stall: Duration,
}

impl GuardedListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, write_stall: Duration) -> Self {
        Self { inner, write_stall }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = StallGuard;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    return (StallGuard { stream, write_stall: self.write_stall, stalled_since: None }, address);
                }
                // Out of file descriptors and the like: wait a moment instead of spinning.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
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
