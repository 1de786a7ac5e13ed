//! Connecting to a backend: pick an endpoint, connect (retrying on the next endpoint), and
//! speak TLS to it when the backend asks for it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use gatehouse_config::{BackendTls, BackendVerify, Target};
use gatehouse_tls::client::{Verify, client_config};
use gatehouse_tls::rustls::ClientConfig;
use gatehouse_tls::rustls::pki_types::ServerName;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::front::{Origin, wire_version};
use crate::pool::{Endpoint, EndpointGuard, Pool};
use crate::proxy_protocol;

/// A connection to an endpoint: plain, or TLS when the backend has `tls`.
#[derive(Debug)]
pub(crate) enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why no backend connection could be made.
#[derive(Debug)]
pub(crate) enum NoBackend {
    /// Every endpoint is down (or the pool is empty).
    NoHealthy,
    /// Connects failed on every endpoint tried.
    ConnectFailed { attempts: u32, last_error: String },
}

impl std::fmt::Display for NoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoBackend::NoHealthy => f.write_str("no healthy endpoint"),
            NoBackend::ConnectFailed {
                attempts,
                last_error,
            } => write!(
                f,
                "connect failed ({attempts} attempts, last: {last_error})"
            ),
        }
    }
}

/// TLS towards a backend's endpoints: the client config built once per pool.
#[derive(Debug)]
pub struct UpstreamTls {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl UpstreamTls {
    /// Builds the client side of a backend's `tls`.
    pub fn new(spec: &BackendTls) -> Result<UpstreamTls, String> {
        let verify = match &spec.verify {
            BackendVerify::Insecure => Verify::Insecure,
            BackendVerify::Ca { pem, path } => Verify::Roots(Arc::new(
                gatehouse_tls::certs::load_roots(pem)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?,
            )),
        };
        let config = client_config(verify, Vec::new()).map_err(|e| e.to_string())?;
        Ok(UpstreamTls {
            config,
            server_name: spec.server_name.clone(),
        })
    }

    /// A client that accepts any certificate: what a `TLS` health check uses on a backend that
    /// has no `tls` of its own (a passthrough target), where the question is only whether the
    /// endpoint completes a handshake.
    pub fn any_certificate() -> Option<&'static UpstreamTls> {
        static ANY: OnceLock<Option<UpstreamTls>> = OnceLock::new();
        ANY.get_or_init(|| {
            client_config(Verify::Insecure, Vec::new())
                .ok()
                .map(|config| UpstreamTls {
                    config,
                    server_name: None,
                })
        })
        .as_ref()
    }

    /// Handshakes over `tcp` with `endpoint`; `sni` overrides the configured server name.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        endpoint: &Endpoint,
        sni: Option<&str>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = sni
            .or(self.server_name.as_deref())
            .map(str::to_owned)
            .or_else(|| match &endpoint.target {
                Target::Host { host, .. } => Some(host.clone()),
                Target::Addr(_) => None,
            });
        let server_name = match name {
            Some(n) => ServerName::try_from(n)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            None => ServerName::IpAddress(endpoint.addr.ip().into()),
        };
        TlsConnector::from(Arc::clone(&self.config))
            .connect(server_name, tcp)
            .await
    }
}

/// Picks an endpoint and connects, trying up to `retries` further endpoints when a connect
/// (or the TLS handshake to the endpoint) fails. A failure counts towards the endpoint's
/// passive ejection.
pub(crate) async fn connect(
    pool: &Pool,
    listener: &str,
    origin: &Origin,
) -> Result<(EndpointGuard, Upstream), NoBackend> {
    let spec = pool.spec();
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut last_error = String::new();
    for attempt in 0..=spec.retries {
        let Some(guard) = pool.pick(origin.client.ip(), &tried) else {
            break;
        };
        let endpoint = Arc::clone(guard.endpoint());
        let opening = open(pool, &endpoint, Some(origin));
        let error = match tokio::time::timeout(spec.connect_timeout, opening).await {
            Ok(Ok(stream)) => {
                endpoint.connect_succeeded();
                return Ok((guard, stream));
            }
            Ok(Err(e)) => e,
            Err(_) => format!("timed out after {:?}", spec.connect_timeout),
        };
        let ejected = endpoint.connect_failed(spec.passive.max_fails, spec.passive.fail_timeout);
        tracing::warn!(
            listener = %listener,
            backend = %spec.name,
            endpoint = %endpoint.addr,
            attempt = attempt + 1,
            error = %error,
            ejected_for = ?ejected.then_some(spec.passive.fail_timeout),
            "connect to endpoint failed{}",
            if attempt < spec.retries { "; trying another" } else { "" }
        );
        tried.push(endpoint.addr);
        last_error = error;
    }
    if tried.is_empty() {
        Err(NoBackend::NoHealthy)
    } else {
        Err(NoBackend::ConnectFailed {
            attempts: tried.len() as u32,
            last_error,
        })
    }
}

/// One connect (and handshake, for a TLS backend); the error says which step failed. A
/// backend with `proxyProtocol` gets the header for `origin` first (with no origin, a health
/// check's: one that carries no addresses).
pub(crate) async fn open(
    pool: &Pool,
    endpoint: &Endpoint,
    origin: Option<&Origin>,
) -> Result<Upstream, String> {
    let mut tcp = TcpStream::connect(endpoint.addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    if let Some(version) = pool.spec().proxy_protocol {
        let header = match origin {
            Some(o) => o.header(version),
            None => proxy_protocol::encode_local(wire_version(version)),
        };
        tcp.write_all(&header)
            .await
            .map_err(|e| format!("sending the PROXY header: {e}"))?;
    }
    match pool.upstream_tls() {
        None => Ok(Upstream::Plain(tcp)),
        Some(Err(e)) => Err(format!("backend TLS is not usable: {e}")),
        Some(Ok(tls)) => tls
            .handshake(tcp, endpoint, None)
            .await
            .map(|s| Upstream::Tls(Box::new(s)))
            .map_err(|e| format!("TLS handshake: {e}")),
    }
}

/// A TLS handshake with `endpoint` at `target` (its address, or a health check's `port` on
/// it) as a health probe; `Err` says why it failed. A backend that expects a PROXY header gets
/// one without addresses first.
pub(crate) async fn probe_tls(
    pool: &Pool,
    endpoint: &Endpoint,
    target: SocketAddr,
    sni: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let mut tcp = TcpStream::connect(target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if let Some(version) = pool.spec().proxy_protocol {
            tcp.write_all(&proxy_protocol::encode_local(wire_version(version)))
                .await
                .map_err(|e| format!("sending the PROXY header: {e}"))?;
        }
        let tls = match pool.upstream_tls() {
            Some(Ok(tls)) => tls,
            Some(Err(e)) => return Err(format!("backend TLS is not usable: {e}")),
            None => UpstreamTls::any_certificate()
                .ok_or_else(|| "no TLS client available".to_owned())?,
        };
        tls.handshake(tcp, endpoint, sni)
            .await
            .map(drop)
            .map_err(|e| format!("TLS handshake: {e}"))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
