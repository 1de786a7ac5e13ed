//! Moving bytes both ways between client and backend, with an idle timeout.
//!
//! Both directions run in the connection's own task (joined futures, no extra spawn). Each
//! direction half-closes its destination when its source ends, so protocols that shut down
//! one side first (HTTP/1.0 clients, `nc -N`) work. The idle timer watches the time of the
//! last byte in either direction, kept in an atomic so the future stays `Send`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::clock::{ms, now_ms};

/// Size of each direction's buffer.
const BUFFER: usize = 32 * 1024;

/// Why a proxied connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed normally.
    Closed,
    /// No bytes either way for the idle timeout.
    IdleTimeout,
    /// The client side failed (reset, broken pipe).
    ClientError(io::ErrorKind),
    /// The backend side failed.
    BackendError(io::ErrorKind),
    /// Cut at the end of a shutdown's drain period.
    Cut,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => f.write_str("closed"),
            End::IdleTimeout => f.write_str("idle timeout"),
            End::ClientError(k) => write!(f, "client error: {k}"),
            End::BackendError(k) => write!(f, "backend error: {k}"),
            End::Cut => f.write_str("cut at shutdown deadline"),
        }
    }
}

/// What a proxied connection moved, and how it ended.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Bytes from client to backend.
    pub up: u64,
    /// Bytes from backend to client.
    pub down: u64,
    /// How it ended.
    pub end: End,
}

enum Side {
    Client,
    Backend,
}

/// A stream that can be read and written at once from one task: a plain TCP stream splits
/// for free; a TLS stream goes through `tokio::io::split`.
pub(crate) trait Duplex {
    /// The read and write halves, borrowed.
    fn halves(&mut self) -> (impl AsyncRead + Unpin + '_, impl AsyncWrite + Unpin + '_);
}

impl Duplex for TcpStream {
    fn halves(&mut self) -> (impl AsyncRead + Unpin + '_, impl AsyncWrite + Unpin + '_) {
        self.split()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Duplex for tokio_rustls::server::TlsStream<S> {
    fn halves(&mut self) -> (impl AsyncRead + Unpin + '_, impl AsyncWrite + Unpin + '_) {
        tokio::io::split(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Duplex for tokio_rustls::client::TlsStream<S> {
    fn halves(&mut self) -> (impl AsyncRead + Unpin + '_, impl AsyncWrite + Unpin + '_) {
        tokio::io::split(self)
    }
}

/// Proxies until both directions end, an error, the idle timeout, or `cut`.
pub(crate) async fn proxy<C: Duplex, B: Duplex>(
    client: &mut C,
    backend: &mut B,
    idle: Duration,
    cut: &CancellationToken,
) -> Transfer {
    let last = AtomicU64::new(now_ms());
    let (up_bytes, down_bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let (mut client_read, mut client_write) = client.halves();
    let (mut backend_read, mut backend_write) = backend.halves();
    let up = pump(
        &mut client_read,
        &mut backend_write,
        &up_bytes,
        &last,
        Side::Client,
    );
    let down = pump(
        &mut backend_read,
        &mut client_write,
        &down_bytes,
        &last,
        Side::Backend,
    );
    let end = tokio::select! {
        result = async { tokio::try_join!(up, down) } => match result {
            Ok(_) => End::Closed,
            Err((Side::Client, kind)) => End::ClientError(kind),
            Err((Side::Backend, kind)) => End::BackendError(kind),
        },
        () = idle_timer(&last, idle) => End::IdleTimeout,
        () = cut.cancelled() => End::Cut,
    };
    Transfer {
        up: up_bytes.load(Relaxed),
        down: down_bytes.load(Relaxed),
        end,
    }
}

/// Copies `from` to `to` until EOF, then half-closes `to`. Errors say which side failed:
/// `source` for a read error, the other side for a write error.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    bytes: &AtomicU64,
    last: &AtomicU64,
    source: Side,
) -> Result<(), (Side, io::ErrorKind)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (read_side, write_side) = match source {
        Side::Client => (Side::Client, Side::Backend),
        Side::Backend => (Side::Backend, Side::Client),
    };
    // Read into spare capacity: no zeroing of the buffer for every connection.
    let mut buf = Vec::with_capacity(BUFFER);
    loop {
        buf.clear();
        let n = match from.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err((read_side, e.kind())),
        };
        if let Err(e) = to.write_all(&buf).await {
            return Err((write_side, e.kind()));
        }
        bytes.fetch_add(n as u64, Relaxed);
        last.store(now_ms(), Relaxed);
    }
    // The peer may already be gone; the other direction reports that if it matters.
    let _ = to.shutdown().await;
    Ok(())
}

/// Completes once no byte has moved for `idle`.
async fn idle_timer(last: &AtomicU64, idle: Duration) {
    let idle_ms = ms(idle);
    loop {
        let deadline = last.load(Relaxed).saturating_add(idle_ms);
        let now = now_ms();
        if now >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(deadline - now)).await;
    }
}
