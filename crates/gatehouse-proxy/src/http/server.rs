//! The HTTP gateway: serve HTTP/1.1 and HTTP/2 on a client connection (hyper), route each
//! request (Gateway API HTTPRoute semantics, see [`super::router`]), apply the rule's filters,
//! and proxy it to an endpoint of the chosen backend over a pooled connection, streaming both
//! bodies. One access-log line per request, written when its response body ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_config::{AcceptProxy, HttpFilter, HttpSettings, Listener};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::client::{PoolClient, client_for};
use super::filters::{apply_header_modifier, redirect_location, rewrite_path};
use super::idle::Idle;
use super::router::{Matched, Router, pick_backend};
use crate::front::Origin;
use crate::pool::{EndpointGuard, Pool};
use crate::tcp::{shared_limit, shared_name};

/// How long a backend may take to start its response when the route sets no timeout (as
/// nginx's `proxy_read_timeout`): a backend that never answers costs a 504, not a stuck
/// request.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The response body: the backend's, streamed, or one we wrote.
type Inner = Either<Incoming, Full<Bytes>>;

/// What one socket's HTTP listeners serve: their routes, the pools those use, and a pooled
/// client per pool. Swapped as a whole on reload; requests keep the one they started with.
#[derive(Debug)]
pub struct HttpSite {
    name: String,
    router: Router,
    pools: HashMap<String, (Arc<Pool>, PoolClient)>,
    settings: HttpSettings,
    /// `http` or `https`: what `X-Forwarded-Proto` says and redirects keep.
    scheme: &'static str,
    /// Spreads requests over a rule's weighted backends.
    picks: AtomicU64,
    max_connections: usize,
    /// A body (either way) with no bytes for this long is cut off.
    idle_timeout: Duration,
    /// PROXY headers accepted (the listeners on one socket agree on it).
    accept_proxy: Option<AcceptProxy>,
}

/// One client connection as its requests see it: who it is from, and its own clients for
/// backends that get a PROXY header (their connections carry this client's address, so they
/// are not shared with other clients).
struct ClientConn {
    origin: Arc<Origin>,
    private: Mutex<HashMap<String, PoolClient>>,
}

impl ClientConn {
    /// The client to reach `pool` with for this connection.
    fn client(&self, pool: &Arc<Pool>, shared: &PoolClient) -> PoolClient {
        if pool.spec().proxy_protocol.is_none() {
            return shared.clone();
        }
        let Ok(mut private) = self.private.lock() else {
            return client_for(pool, Some(Arc::clone(&self.origin)));
        };
        private
            .entry(pool.name().to_owned())
            .or_insert_with(|| client_for(pool, Some(Arc::clone(&self.origin))))
            .clone()
    }
}

impl HttpSite {
    /// The site of the HTTP (or, with `tls`, HTTPS) `listeners` sharing a socket. Pools the
    /// previous site also used keep their client (and its idle connections).
    pub fn build(
        listeners: &[Arc<Listener>],
        pools: &HashMap<String, Arc<Pool>>,
        tls: bool,
        previous: Option<&HttpSite>,
    ) -> HttpSite {
        let mut used = HashMap::new();
        for listener in listeners {
            for entry in &listener.http_routes {
                for rule in entry.rules.iter() {
                    for b in &rule.backends {
                        // One client per backend, however many rules name it.
                        if used.contains_key(&b.backend) {
                            continue;
                        }
                        let Some(pool) = pools.get(&b.backend) else {
                            continue;
                        };
                        let client = previous
                            .and_then(|p| p.pools.get(&b.backend))
                            .filter(|(old, _)| Arc::ptr_eq(old, pool))
                            .map_or_else(|| client_for(pool, None), |(_, c)| c.clone());
                        used.insert(b.backend.clone(), (Arc::clone(pool), client));
                    }
                }
            }
        }
        let settings = listeners
            .iter()
            .find_map(|l| l.http.clone())
            .unwrap_or_default();
        HttpSite {
            name: shared_name(listeners),
            router: Router::build(listeners),
            pools: used,
            settings,
            scheme: if tls { "https" } else { "http" },
            picks: AtomicU64::new(0),
            max_connections: shared_limit(listeners),
            idle_timeout: listeners
                .iter()
                .map(|l| l.idle_timeout)
                .max()
                .unwrap_or(gatehouse_config::DEFAULT_IDLE_TIMEOUT),
            accept_proxy: listeners.first().and_then(|l| l.accept_proxy.clone()),
        }
    }

    /// PROXY headers accepted on the socket.
    pub fn accept_proxy(&self) -> Option<&AcceptProxy> {
        self.accept_proxy.as_ref()
    }

    /// The listeners' names, comma-separated.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connections allowed on the socket: the largest limit of its listeners.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }
}

/// Serves HTTP on one client connection until the client leaves, `drain` asks the
/// connection to finish (after the request in flight; HTTP/2 gets GOAWAY), or `cut`.
pub async fn serve<IO>(
    io: IO,
    origin: Origin,
    site: Arc<HttpSite>,
    drain: &CancellationToken,
    cut: &CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = site.settings.clone();
    let request_site = Arc::clone(&site);
    let upgrades = cut.clone();
    let peer = origin.client;
    let conn = Arc::new(ClientConn {
        origin: Arc::new(origin),
        private: Mutex::new(HashMap::new()),
    });
    let service = service_fn(move |req| {
        let site = Arc::clone(&request_site);
        let cut = upgrades.clone();
        let conn = Arc::clone(&conn);
        async move { Ok::<_, std::convert::Infallible>(handle(req, conn, site, cut).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        // hyper refuses a read buffer under 8 KiB; its limit is on the whole request head.
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_headers(settings.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(settings.keepalive_timeout / 2))
        .keep_alive_timeout(settings.keepalive_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = drain.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                () = cut.cancelled() => Ok(()),
            }
        }
        () = cut.cancelled() => Ok(()),
    };
    if let Err(e) = result {
        tracing::debug!(listener = %site.name, client = %peer, error = %e, "HTTP connection ended with an error");
    }
}

/// What the access line of one request says; written when the response body is done.
struct RequestLog {
    listener: String,
    peer: SocketAddr,
    method: Method,
    host: String,
    path: String,
    route: Option<String>,
    backend: Option<String>,
    endpoint: Option<SocketAddr>,
    status: u16,
    /// Why we answered ourselves (no route, no backend, timeout, ...).
    reason: Option<String>,
    started: Instant,
}

/// A response body that counts what it sends and logs the request when it ends (or is
/// dropped: a client that leaves mid-body still gets its line).
pub struct LoggedBody {
    inner: Idle<Inner>,
    bytes: u64,
    log: Option<RequestLog>,
    /// Keeps the endpoint's open-request count until the body is done.
    _guard: Option<EndpointGuard>,
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        if let Poll::Ready(Some(Err(e))) = &polled
            && let Some(log) = self.log.as_mut()
        {
            log.reason = Some(format!("response body: {e}"));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(l) = self.log.take() else { return };
        let duration_ms = l.started.elapsed().as_millis() as u64;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "gatehouse::access",
                    listener = %l.listener, client = %l.peer, method = %l.method,
                    host = %l.host, path = %l.path,
                    route = l.route.as_deref().map(tracing::field::display),
                    backend = l.backend.as_deref().map(tracing::field::display),
                    endpoint = l.endpoint.map(tracing::field::display),
                    status = l.status, bytes = self.bytes, duration_ms,
                    reason = l.reason.as_deref().map(tracing::field::display),
                    "request"
                )
            };
        }
        if l.status >= 500 {
            line!(warn);
        } else {
            line!(info);
        }
    }
}

/// Headers that describe one hop, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those the `Connection` header names. `Upgrade` is
/// removed unless the exchange is an upgrade (then `Connection: upgrade` is put back).
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        if upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether `Transfer-Encoding` names a coding other than `chunked`.
fn has_other_transfer_coding(headers: &HeaderMap) -> bool {
    headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.to_str().map_or(true, |v| {
            v.split(',')
                .any(|c| !c.trim().eq_ignore_ascii_case("chunked"))
        })
    })
}

/// Whether a request asks to switch protocols (WebSocket and friends, HTTP/1.1 only). Not
/// to `h2c` (nor to protocols not written in ASCII): a backend that took it would give the
/// client a raw HTTP/2 connection, past routing, filters and forwarding headers (h2c
/// smuggling). Such a request goes on without `Upgrade`, like any hop-by-hop header.
fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && !req.headers().get_all(header::UPGRADE).iter().any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(',').any(|p| {
                    let name = p.trim().split('/').next().unwrap_or("");
                    name.eq_ignore_ascii_case("h2c")
                })
            })
        })
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// The request's host (from the URI's authority, as HTTP/2 sends it, or the `Host` header),
/// without port, lower case, without a trailing dot; and the port if one was given.
fn request_host(req: &Request<Incoming>) -> (String, Option<u16>) {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let (host, port) = match raw.rsplit_once(':') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        _ if raw.starts_with('[') => match raw.split_once(']') {
            Some((h, rest)) => (
                format!("{h}]"),
                rest.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (raw.clone(), None),
        },
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h.to_owned(), p.parse().ok()),
        _ => (raw.clone(), None),
    };
    (host.trim_end_matches('.').to_ascii_lowercase(), port)
}

/// A response we write ourselves: a short text body saying what happened.
fn answer(status: StatusCode, text: &str) -> Response<Inner> {
    let body = format!(
        "{} {}: {text}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut res = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Handles one request; every outcome is a response (with its log line).
async fn handle(
    req: Request<Incoming>,
    conn: Arc<ClientConn>,
    site: Arc<HttpSite>,
    cut: CancellationToken,
) -> Response<LoggedBody> {
    let started = Instant::now();
    let peer = conn.origin.client;
    let (host, port) = request_host(&req);
    let mut log = RequestLog {
        listener: site.name.clone(),
        peer,
        method: req.method().clone(),
        host: host.clone(),
        path: req
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
        route: None,
        backend: None,
        endpoint: None,
        status: 0,
        reason: None,
        started,
    };
    let (response, guard) = match proxy_request(req, &conn, &site, &host, port, &mut log, cut).await
    {
        Ok((res, guard)) => (res, guard),
        Err((status, why)) => {
            log.reason = Some(why.clone());
            (answer(status, &why), None)
        }
    };
    let (parts, inner) = response.into_parts();
    log.status = parts.status.as_u16();
    Response::from_parts(
        parts,
        LoggedBody {
            inner: Idle::new(inner, site.idle_timeout),
            bytes: 0,
            log: Some(log),
            _guard: guard,
        },
    )
}

/// An error answer: the status and why (for the body and the log).
type Refusal = (StatusCode, String);

/// Routes, filters and proxies one request.
async fn proxy_request(
    mut req: Request<Incoming>,
    conn: &ClientConn,
    site: &HttpSite,
    host: &str,
    port: Option<u16>,
    log: &mut RequestLog,
    cut: CancellationToken,
) -> Result<(Response<Inner>, Option<EndpointGuard>), Refusal> {
    let path = req.uri().path().to_owned();
    // Only a path is proxied. `OPTIONS *` and an authority-form target have none: glued to
    // the endpoint's address below, they would make a URI whose authority the connector
    // cannot parse, counted as a failed connect (ejecting a healthy endpoint); and the
    // authority form would be routed as `` but sent as `/`.
    if !path.starts_with('/') {
        return Err((
            StatusCode::BAD_REQUEST,
            "the request target is not a path".into(),
        ));
    }
    // A transfer coding other than chunked (`gzip, chunked`) cannot be passed on: the header
    // is hop-by-hop and the body is re-framed as chunked, so the backend would get coded bytes
    // it was not told about. RFC 9112 section 6.1: answer 501.
    if has_other_transfer_coding(req.headers()) {
        return Err((
            StatusCode::NOT_IMPLEMENTED,
            "transfer codings other than chunked are not supported".into(),
        ));
    }
    let query = req.uri().query().map(str::to_owned);
    let peer = conn.origin.client;
    let Some(Matched {
        listener,
        route,
        access,
        rule,
        prefix,
        ..
    }) = site
        .router
        .route(host, req.method(), &path, query.as_deref(), req.headers())
    else {
        return Err((
            StatusCode::NOT_FOUND,
            "no route for this host and path".into(),
        ));
    };
    log.route = Some(route.to_owned());
    if !(listener.access.allows(peer.ip()) && access.allows(peer.ip())) {
        return Err((StatusCode::FORBIDDEN, "client address not allowed".into()));
    }
    let started = log.started;

    // Filters, in order. A redirect answers at once.
    let mut upstream_host: Option<String> = None;
    let mut upstream_path = path.clone();
    let mut response_headers = Vec::new();
    for filter in &rule.filters {
        match filter {
            HttpFilter::RequestRedirect(r) => {
                let location =
                    redirect_location(r, site.scheme, host, port, &path, query.as_deref(), prefix);
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
                let mut res = Response::new(Either::Right(Full::new(Bytes::new())));
                *res.status_mut() = status;
                if let Ok(v) = HeaderValue::from_str(&location) {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                return Ok((res, None));
            }
            HttpFilter::RequestHeaderModifier(m) => apply_header_modifier(m, req.headers_mut()),
            HttpFilter::ResponseHeaderModifier(m) => response_headers.push(m),
            HttpFilter::UrlRewrite(u) => {
                if let Some(h) = &u.hostname {
                    upstream_host = Some(h.clone());
                }
                if let Some(p) = &u.path {
                    upstream_path = rewrite_path(p, &path, prefix);
                }
            }
        }
    }

    let Some(choice) = pick_backend(rule, site.picks.fetch_add(1, Relaxed)) else {
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "the matching rule has no backend".into(),
        ));
    };
    log.backend = Some(choice.backend.clone());
    let Some((pool, shared)) = site.pools.get(&choice.backend) else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("backend `{}` is not running", choice.backend),
        ));
    };

    let client = conn.client(pool, shared);
    // The request as the backend gets it.
    let upgrade = wants_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let original_host = if host.is_empty() {
        None
    } else {
        Some(match port {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        })
    };
    let mut headers = std::mem::take(req.headers_mut());
    strip_hop_by_hop(&mut headers, upgrade);
    forwarded_headers(&mut headers, peer, site.scheme, original_host.as_deref());
    if let Some(h) = upstream_host.as_deref().or(original_host.as_deref())
        && let Ok(v) = HeaderValue::from_str(h)
    {
        headers.insert(header::HOST, v);
    }
    let path_and_query = match &query {
        Some(q) => format!("{upstream_path}?{q}"),
        None => upstream_path,
    };
    let method = req.method().clone();
    // The body can be sent once: a request that has one is not retried on another endpoint.
    let body = req.into_body();
    let retry_ok = body.is_end_stream();

    let spec = pool.spec();
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut body = Some(Either::Left(Idle::new(body, site.idle_timeout)));
    let deadline = rule.timeouts.request.map(|t| started + t);
    loop {
        let Some(guard) = pool.pick(peer.ip(), &tried) else {
            return Err(if tried.is_empty() {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no healthy endpoint in backend `{}`", choice.backend),
                )
            } else {
                (
                    StatusCode::BAD_GATEWAY,
                    format!("could not connect to backend `{}`", choice.backend),
                )
            });
        };
        let endpoint = Arc::clone(guard.endpoint());
        log.endpoint = Some(endpoint.addr);
        let scheme = if pool.upstream_tls().is_some() {
            "https"
        } else {
            "http"
        };
        let uri: Uri = match format!("{scheme}://{}{path_and_query}", endpoint.addr).parse() {
            Ok(u) => u,
            Err(_) => return Err((StatusCode::BAD_REQUEST, "invalid request path".into())),
        };
        let this_body = body.take().unwrap_or(Either::Right(Empty::new()));
        let mut upstream = Request::new(this_body);
        *upstream.method_mut() = method.clone();
        *upstream.uri_mut() = uri;
        *upstream.version_mut() = Version::HTTP_11;
        *upstream.headers_mut() = headers.clone();

        let attempt = client.request(upstream);
        let limit = [
            rule.timeouts.backend_request,
            deadline.map(|d| d.saturating_duration_since(Instant::now())),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(DEFAULT_RESPONSE_TIMEOUT);
        let result = match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => {
                return Err((
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "backend `{}` did not answer within {limit:?}",
                        choice.backend
                    ),
                ));
            }
        };
        match result {
            Ok(mut res) => {
                endpoint.connect_succeeded();
                let switching = res.status() == StatusCode::SWITCHING_PROTOCOLS;
                strip_hop_by_hop(res.headers_mut(), upgrade && switching);
                for m in &response_headers {
                    apply_header_modifier(m, res.headers_mut());
                }
                if switching && let Some(client_side) = client_upgrade {
                    let backend_side = hyper::upgrade::on(&mut res);
                    tokio::spawn(tunnel(client_side, backend_side, cut));
                }
                return Ok((res.map(Either::Left), Some(guard)));
            }
            Err(e) if e.is_connect() => {
                let ejected =
                    endpoint.connect_failed(spec.passive.max_fails, spec.passive.fail_timeout);
                tracing::warn!(
                    listener = %site.name, backend = %spec.name, endpoint = %endpoint.addr,
                    error = %error_chain(&e), ejected_for = ?ejected.then_some(spec.passive.fail_timeout),
                    "connect to endpoint failed"
                );
                tried.push(endpoint.addr);
                if !retry_ok || tried.len() > spec.retries as usize {
                    return Err((
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "could not connect to backend `{}`: {}",
                            choice.backend,
                            error_chain(&e)
                        ),
                    ));
                }
            }
            Err(e) => {
                return Err((
                    StatusCode::BAD_GATEWAY,
                    format!("backend `{}` failed: {}", choice.backend, error_chain(&e)),
                ));
            }
        }
    }
}

/// The `X-Forwarded-*` and `Forwarded` headers: the client's address appended to what a
/// trusted front may have written, the scheme and the host the client asked for.
fn forwarded_headers(headers: &mut HeaderMap, peer: SocketAddr, scheme: &str, host: Option<&str>) {
    let ip = peer.ip();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {ip}"),
        None => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
    );
    if let Some(h) = host
        && let Ok(v) = HeaderValue::from_str(h)
    {
        headers.insert("x-forwarded-host", v);
    }
    // RFC 7239: IPv6 addresses are quoted and bracketed.
    let node = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut element = format!("for={node};proto={scheme}");
    if let Some(h) = host {
        element.push_str(&format!(";host=\"{h}\""));
    }
    let forwarded = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {element}"),
        None => element,
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert(header::FORWARDED, v);
    }
}

/// Copies bytes both ways between an upgraded client and backend connection.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    cut: CancellationToken,
) {
    let (Ok(client), Ok(backend)) = (client.await, backend.await) else {
        return;
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
        () = cut.cancelled() => {}
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
