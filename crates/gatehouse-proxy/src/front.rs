//! What happens to a connection before it is routed: who it is from.
//!
//! A listener with `proxyProtocol` reads a PROXY header from its trusted sources, and the
//! address in it is the client's from then on (logs, access lists, hashing, `X-Forwarded-For`,
//! the header sent on to a backend). From any other source, a connection that starts with a
//! PROXY header is refused: a client must not be able to claim another address. The check
//! holds back at most the first 12 bytes until it can tell, so no backend ever sees a forged
//! header.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gatehouse_config::{AcceptProxy, ProxyProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::copy::Duplex;
use crate::proxy_protocol::{self, Signature, Version};

/// Who a connection is from and to, as the backend should learn it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The client: the socket's peer, or the source a trusted PROXY header gave.
    pub client: SocketAddr,
    /// The address the client connected to (or the destination a PROXY header gave).
    pub local: SocketAddr,
    /// The TLS server name, once known.
    pub authority: Option<String>,
}

impl Origin {
    /// The PROXY header a backend with `proxyProtocol` gets for this connection.
    pub(crate) fn header(&self, version: ProxyProtocolVersion) -> Vec<u8> {
        proxy_protocol::encode(
            wire_version(version),
            self.client,
            self.local,
            self.authority.as_deref(),
        )
    }
}

/// The codec's name for a configured version.
pub(crate) fn wire_version(version: ProxyProtocolVersion) -> Version {
    match version {
        ProxyProtocolVersion::V1 => Version::V1,
        ProxyProtocolVersion::V2 => Version::V2,
    }
}

/// A client connection after its front matter: bytes read past a PROXY header come first;
/// from an untrusted source on a listener that accepts PROXY, a header is refused.
#[derive(Debug)]
pub struct ClientStream {
    tcp: TcpStream,
    front: Front,
}

#[derive(Debug, Default)]
struct Front {
    /// Bytes to hand out before reading the socket again.
    pending: Vec<u8>,
    /// How much of `pending` has been handed out.
    at: usize,
    /// Still looking at the first bytes for a PROXY signature; what to log if one comes
    /// (listener and client).
    checking: Option<Box<(String, SocketAddr)>>,
}

impl Front {
    fn is_done(&self) -> bool {
        self.checking.is_none() && self.at >= self.pending.len()
    }

    /// Reads through the front matter: the check of the first bytes, then the bytes held,
    /// then `inner` directly (the only branch left once both are done).
    fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        inner: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.is_done() {
            return Pin::new(inner).poll_read(cx, buf);
        }
        while let Some(who) = &self.checking {
            // Read at most the 12 bytes a signature takes, and hold them until it is clear.
            let mut chunk = [0u8; 12];
            let want = 12usize.saturating_sub(self.pending.len()).max(1);
            let mut small = ReadBuf::new(&mut chunk[..want]);
            ready!(Pin::new(&mut *inner).poll_read(cx, &mut small))?;
            let got = small.filled();
            if got.is_empty() {
                self.checking = None;
                break;
            }
            self.pending.extend_from_slice(got);
            match proxy_protocol::signature(&self.pending) {
                Signature::Yes => {
                    let (listener, client) = &**who;
                    tracing::warn!(
                        target: "gatehouse::access",
                        listener = %listener, client = %client,
                        outcome = "refused: a PROXY header from a source not in `trustedSources`",
                        "connection refused"
                    );
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "a PROXY header from a source not in `trustedSources`",
                    )));
                }
                Signature::No => self.checking = None,
                Signature::Maybe => {}
            }
        }
        if self.at < self.pending.len() {
            let n = (self.pending.len() - self.at).min(buf.remaining());
            buf.put_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            if self.at == self.pending.len() {
                self.pending = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(inner).poll_read(cx, buf)
    }
}

/// Reads what comes before routing on a new connection: the PROXY header from a trusted
/// source (within the listener's timeout), or arms the refusal of one from anyone else.
/// `Err` says why the connection is refused.
pub(crate) async fn accept(
    mut tcp: TcpStream,
    peer: SocketAddr,
    listener: &str,
    accept_proxy: Option<&AcceptProxy>,
) -> Result<(ClientStream, Origin), String> {
    let local = tcp.local_addr().unwrap_or(peer);
    let mut origin = Origin {
        client: peer,
        local,
        authority: None,
    };
    let Some(settings) = accept_proxy else {
        return Ok((
            ClientStream {
                tcp,
                front: Front::default(),
            },
            origin,
        ));
    };
    if !settings.trusted.iter().any(|c| c.contains(peer.ip())) {
        let front = Front {
            checking: Some(Box::new((listener.to_owned(), peer))),
            ..Front::default()
        };
        return Ok((ClientStream { tcp, front }, origin));
    }
    let (header, rest) = proxy_protocol::read_header(&mut tcp, settings.timeout)
        .await
        .map_err(|e| format!("PROXY header: {e}"))?;
    if let Some((source, destination)) = header.addresses {
        origin.client = source;
        origin.local = destination;
    }
    origin.authority = header.authority;
    let front = Front {
        pending: rest,
        ..Front::default()
    };
    Ok((ClientStream { tcp, front }, origin))
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.front.poll_read(&mut this.tcp, cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// The read half of a [`ClientStream`]: the front matter, then the socket's own half.
struct FrontRead<'a> {
    front: &'a mut Front,
    tcp: tokio::net::tcp::ReadHalf<'a>,
}

impl AsyncRead for FrontRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.front.poll_read(&mut this.tcp, cx, buf)
    }
}

impl Duplex for ClientStream {
    fn halves(&mut self) -> (impl AsyncRead + Unpin + '_, impl AsyncWrite + Unpin + '_) {
        let (read, write) = self.tcp.split();
        (
            FrontRead {
                front: &mut self.front,
                tcp: read,
            },
            write,
        )
    }
}
