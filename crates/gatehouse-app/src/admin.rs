//! The admin endpoint: a small HTTP/1.1 server on its own address (`admin.listen`, loopback by
//! default), started, moved and stopped by the supervisor as the config says.
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | 200 while the process runs (never asks for the token) |
//! | `/readyz` | 200 once a config is applied and its listeners are bound; 503 before, and while draining |
//! | `/status` | the running state as JSON ([`StatusDoc`]) |
//! | `/metrics` | Prometheus text format: the [`Telemetry`] counters plus gauges read from live state |
//! | `/` | the status page (HTML, refreshes itself every 5 s) |
//! | `/observe` | access records as they happen, one JSON object per line (chunked), filtered by the query parameters `listener`, `route`, `client` and `backend` |
//!
//! With a token configured, every path but `/healthz` needs `Authorization: Bearer TOKEN`
//! (or HTTP Basic auth with the token as the password, which is what a browser can send);
//! anything else gets 401.
//!
//! Nothing here is on the proxy's path: the handlers read the same atomics and `ArcSwap`s the
//! proxy writes, and `/observe` takes records from a broadcast channel that drops them for a
//! reader that falls behind.

pub mod client;
mod page;
mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use gatehouse_config::{Config, ListenerKey};
use gatehouse_dns::Dns;
use gatehouse_proxy::Pool;
use gatehouse_proxy::tcp::ListenerState;
use gatehouse_vrrp::instance::InstanceState;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry::{ObserveFilter, Telemetry, escape, family, sample};
use crate::vips::VipStatuses;

pub use status::{
    BackendDoc, ConfigDoc, DnsCountDoc, DnsDoc, EndpointDoc, KubernetesDoc, ListenerDoc, RecentDoc,
    RejectedDoc, ReloadDoc, RouteDoc, StatusDoc, VipDoc, ZoneDoc,
};

/// Most admin connections at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 64;
/// A request head must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines waiting for one observer's socket; beyond, its broadcast receiver lags and drops.
const OBSERVER_QUEUE: usize = 256;

/// The running sockets, as the admin endpoint sees them.
pub(crate) struct SocketView {
    pub(crate) key: ListenerKey,
    pub(crate) local: SocketAddr,
    pub(crate) state: Arc<ListenerState>,
}

/// The DNS server, as the admin endpoint sees it.
pub(crate) struct DnsView {
    pub(crate) local: Vec<SocketAddr>,
    pub(crate) dns: Arc<Dns>,
}

/// What runs, replaced by the supervisor after every apply.
pub(crate) struct View {
    pub(crate) config: Arc<Config>,
    pub(crate) sockets: Vec<SocketView>,
    pub(crate) pools: std::collections::HashMap<String, Arc<Pool>>,
    pub(crate) dns: Option<DnsView>,
}

/// Readiness: not yet, ready, draining.
const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

/// Shared by the supervisor (which writes it) and the admin server (which reads it).
pub(crate) struct AdminShared {
    pub(crate) view: ArcSwap<View>,
    pub(crate) vips: VipStatuses,
    pub(crate) telemetry: Arc<Telemetry>,
    /// The Kubernetes provider, while one runs.
    pub(crate) kube: arc_swap::ArcSwapOption<gatehouse_kube::Reporter>,
    readiness: AtomicU8,
}

impl AdminShared {
    pub(crate) fn new(view: View, vips: VipStatuses, telemetry: Arc<Telemetry>) -> AdminShared {
        AdminShared {
            view: ArcSwap::from_pointee(view),
            vips,
            telemetry,
            kube: arc_swap::ArcSwapOption::empty(),
            readiness: AtomicU8::new(STARTING),
        }
    }

    /// A config is applied and its listeners are bound.
    pub(crate) fn set_ready(&self) {
        let _ = self
            .readiness
            .compare_exchange(STARTING, READY, Relaxed, Relaxed);
    }

    /// Shutting down: `/readyz` answers 503 from now on.
    pub(crate) fn set_draining(&self) {
        self.readiness.store(DRAINING, Relaxed);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.readiness.load(Relaxed) == READY
    }
}

type AdminBody = BoxBody<Bytes, Infallible>;

/// Serves admin requests on `listener` until `stop`.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<AdminShared>,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "admin: accept failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    () = stop.cancelled() => break,
                }
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::debug!(%peer, "admin: too many connections; closed");
            continue;
        };
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = {
                let stop = stop.clone();
                hyper::service::service_fn(move |req| {
                    let shared = Arc::clone(&shared);
                    let stop = stop.clone();
                    async move { Ok::<_, Infallible>(handle(req, &shared, &stop)) }
                })
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "admin: connection ended with an error");
                },
                () = stop.cancelled() => {}
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), connections.wait()).await;
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<AdminBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<AdminBody> {
    full(status, "text/plain; charset=utf-8", body)
}

fn handle(
    req: Request<Incoming>,
    shared: &AdminShared,
    stop: &CancellationToken,
) -> Response<AdminBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    let view = shared.view.load();
    let token = view.config.admin.as_ref().and_then(|a| a.token.as_deref());
    if !authorized(req.headers(), token) {
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "this admin endpoint needs `Authorization: Bearer TOKEN` (the `admin.token` of the config)\n",
        );
        for scheme in ["Bearer realm=\"gatehouse\"", "Basic realm=\"gatehouse\""] {
            r.headers_mut().append(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(scheme),
            );
        }
        return r;
    }
    drop(view);
    match path {
        "/readyz" => match shared.readiness.load(Relaxed) {
            READY => text(StatusCode::OK, "ready\n"),
            DRAINING => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n"),
            _ => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n"),
        },
        "/status" => {
            let doc = status::build(shared);
            match serde_json::to_string_pretty(&doc) {
                Ok(mut json) => {
                    json.push('\n');
                    full(StatusCode::OK, "application/json", json)
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        }
        "/metrics" => full(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(shared),
        ),
        "/" => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page::render(&status::build(shared)),
        ),
        "/observe" => match observe_filter(req.uri().query().unwrap_or("")) {
            Ok(filter) => observe(shared, filter, stop),
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /, /status, /metrics, /observe, /readyz or /healthz\n",
        ),
    }
}

/// Whether the request carries the token (when there is one): `Bearer TOKEN`, or Basic auth
/// with the token as the password.
fn authorized(headers: &http::HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some((scheme, value)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        same(value.as_bytes(), token.as_bytes())
    } else if scheme.eq_ignore_ascii_case("basic") {
        base64_decode(value)
            .and_then(|pair| {
                let colon = pair.iter().position(|b| *b == b':')?;
                Some(same(&pair[colon + 1..], token.as_bytes()))
            })
            .unwrap_or(false)
    } else {
        false
    }
}

/// Compares without stopping at the first difference (the time taken says nothing about
/// how much of a guess was right).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with padding (what browsers send for Basic auth).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let keep = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + keep]);
    }
    Some(out)
}

/// `%XX` and `+` decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The filter of an `/observe` query string.
fn observe_filter(query: &str) -> Result<ObserveFilter, String> {
    let mut f = ObserveFilter::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match percent_decode(k).as_str() {
            "listener" => f.listener = Some(v),
            "route" => f.route = Some(v),
            "backend" => f.backend = Some(v),
            "client" => {
                f.client = Some(
                    v.parse()
                        .map_err(|_| format!("`client={v}` is not an IP address"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown filter `{other}`: use listener, route, client or backend"
                ));
            }
        }
    }
    Ok(f)
}

/// The streaming response of `/observe`: a first line saying what is observed, then one line
/// per access record that passes `filter`, until the client goes or the server stops.
fn observe(
    shared: &AdminShared,
    filter: ObserveFilter,
    stop: &CancellationToken,
) -> Response<AdminBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(OBSERVER_QUEUE);
    let telemetry = Arc::clone(&shared.telemetry);
    let stop = stop.clone();
    let hello = serde_json::json!({
        "observing": {
            "listener": filter.listener,
            "route": filter.route,
            "client": filter.client.map(|c| c.to_string()),
            "backend": filter.backend,
        }
    });
    let _ = tx.try_send(Bytes::from(format!("{hello}\n")));
    tokio::spawn(async move {
        let (mut records, _observing) = telemetry.observe();
        loop {
            let record = tokio::select! {
                r = records.recv() => r,
                () = tx.closed() => return,
                () = stop.cancelled() => return,
            };
            let line = match record {
                Ok(record) if record.matches(&filter) => record.line().clone(),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Bytes::from(format!("{{\"dropped\":{n}}}\n"))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            tokio::select! {
                sent = tx.send(line) => if sent.is_err() { return },
                () = stop.cancelled() => return,
            }
        }
    });
    let mut r = Response::new(BoxBody::new(Lines { rx }));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// A body made of the lines a channel brings.
struct Lines {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for Lines {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}

/// A gauge read from each endpoint: name, help, how to read it.
type EndpointGauge = (
    &'static str,
    &'static str,
    fn(&gatehouse_proxy::Endpoint) -> u64,
);

/// `/metrics`: gauges read from live state now, then the counters of [`Telemetry`].
fn kubernetes_metrics(out: &mut String, r: &gatehouse_kube::Report) {
    family(
        out,
        "gatehouse_kubernetes_connected",
        "gauge",
        "1 while the Kubernetes API server answers; 0: the last known state is served.",
    );
    sample(
        out,
        "gatehouse_kubernetes_connected",
        "",
        u8::from(r.connected),
    );
    family(
        out,
        "gatehouse_kubernetes_synced",
        "gauge",
        "1 once every watched kind has been listed.",
    );
    sample(out, "gatehouse_kubernetes_synced", "", u8::from(r.synced));
    family(
        out,
        "gatehouse_kubernetes_objects",
        "gauge",
        "Kubernetes objects held, by kind.",
    );
    for (kind, n) in &r.objects {
        sample(
            out,
            "gatehouse_kubernetes_objects",
            &format!("kind=\"{kind}\""),
            *n,
        );
    }
    family(
        out,
        "gatehouse_kubernetes_rejected_objects",
        "gauge",
        "Kubernetes objects left out of the running config because of errors.",
    );
    sample(
        out,
        "gatehouse_kubernetes_rejected_objects",
        "",
        r.rejected.len(),
    );
    family(
        out,
        "gatehouse_kubernetes_status_writes_total",
        "counter",
        "Status writes to the API server, by result.",
    );
    sample(
        out,
        "gatehouse_kubernetes_status_writes_total",
        "result=\"ok\"",
        r.status_writes.0,
    );
    sample(
        out,
        "gatehouse_kubernetes_status_writes_total",
        "result=\"failed\"",
        r.status_writes.1,
    );
}

fn metrics(shared: &AdminShared) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let view = shared.view.load_full();
    family(
        &mut out,
        "gatehouse_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    sample(
        &mut out,
        "gatehouse_build_info",
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        1,
    );
    family(
        &mut out,
        "gatehouse_ready",
        "gauge",
        "1 when a config is applied and its listeners are bound (what /readyz says).",
    );
    sample(&mut out, "gatehouse_ready", "", u8::from(shared.is_ready()));

    family(
        &mut out,
        "gatehouse_listener_open_connections",
        "gauge",
        "Open connections (UDP: flows) per listening socket, named after its listener(s).",
    );
    for s in &view.sockets {
        sample(
            &mut out,
            "gatehouse_listener_open_connections",
            &format!("listener=\"{}\"", escape(s.state.service().name())),
            s.state.open_connections(),
        );
    }

    let mut pools: Vec<(&String, &Arc<Pool>)> = view.pools.iter().collect();
    pools.sort_by(|a, b| a.0.cmp(b.0));
    let endpoint_gauges: [EndpointGauge; 3] = [
        (
            "gatehouse_endpoint_up",
            "1 while an endpoint is up by its active health checks (always, without them).",
            |e| u64::from(e.is_up()),
        ),
        (
            "gatehouse_endpoint_ejected",
            "1 while passive ejection (failed connects) takes an endpoint out.",
            |e| u64::from(e.is_ejected()),
        ),
        (
            "gatehouse_endpoint_active_connections",
            "Connections open to an endpoint.",
            |e| e.active_connections() as u64,
        ),
    ];
    for (name, help, read) in endpoint_gauges {
        family(&mut out, name, "gauge", help);
        for (backend, pool) in &pools {
            for e in pool.endpoints() {
                sample(
                    &mut out,
                    name,
                    &format!(
                        "backend=\"{}\",endpoint=\"{}\"",
                        escape(backend),
                        escape(&e.addr.to_string())
                    ),
                    read(&e),
                );
            }
        }
    }

    let vips = shared.vips.read();
    family(
        &mut out,
        "gatehouse_vrrp_state",
        "gauge",
        "1 for the state each VRRP instance is in (master: this node holds its addresses).",
    );
    for (inst, st) in &vips {
        for state in [
            InstanceState::Init,
            InstanceState::Backup,
            InstanceState::Master,
            InstanceState::Fault,
        ] {
            sample(
                &mut out,
                "gatehouse_vrrp_state",
                &format!("instance=\"{}\",state=\"{state}\"", escape(&inst.name)),
                u8::from(st.state == state),
            );
        }
    }
    family(
        &mut out,
        "gatehouse_vrrp_priority",
        "gauge",
        "Each VRRP instance's effective priority (configured minus failing tracks).",
    );
    for (inst, st) in &vips {
        sample(
            &mut out,
            "gatehouse_vrrp_priority",
            &format!("instance=\"{}\"", escape(&inst.name)),
            st.priority,
        );
    }

    if let Some(kube) = shared.kube.load_full() {
        kubernetes_metrics(&mut out, &kube.read());
    }

    if let Some(dns) = &view.dns {
        let stats = dns.dns.stats();
        family(
            &mut out,
            "gatehouse_dns_queries_total",
            "counter",
            "DNS queries answered, by question type and response code (since the DNS server last (re)bound).",
        );
        for (t, r, n) in stats.answers() {
            sample(
                &mut out,
                "gatehouse_dns_queries_total",
                &format!("type=\"{t}\",rcode=\"{r}\""),
                n,
            );
        }
        family(
            &mut out,
            "gatehouse_dns_queries_dropped_total",
            "counter",
            "DNS packets dropped without an answer (responses, malformed, too many waiting for upstreams).",
        );
        sample(
            &mut out,
            "gatehouse_dns_queries_dropped_total",
            "",
            stats.dropped_count(),
        );
    }
    shared.telemetry.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(auth: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn the_token_is_asked_for_as_bearer_or_basic() {
        let token = Some("s3cret-token-0123");
        assert!(authorized(&http::HeaderMap::new(), None));
        assert!(!authorized(&http::HeaderMap::new(), token));
        assert!(authorized(&headers("Bearer s3cret-token-0123"), token));
        assert!(authorized(&headers("bearer s3cret-token-0123"), token));
        assert!(!authorized(&headers("Bearer s3cret-token-012"), token));
        assert!(!authorized(&headers("Bearer"), token));
        // `curl -u admin:s3cret-token-0123`
        assert!(authorized(
            &headers("Basic YWRtaW46czNjcmV0LXRva2VuLTAxMjM="),
            token
        ));
        assert!(!authorized(&headers("Basic YWRtaW46d3Jvbmc="), token));
        assert!(!authorized(&headers("Basic !!!"), token));
    }

    #[test]
    fn base64_and_percent_decoding() {
        assert_eq!(base64_decode("YWRtaW46eA==").unwrap(), b"admin:x");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(percent_decode("web%2Fhttp"), "web/http");
        assert_eq!(percent_decode("a+b%"), "a b%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn observe_filters_are_read_from_the_query() {
        let f = observe_filter("listener=web%2Fhttp&client=127.0.0.9&route=app").unwrap();
        assert_eq!(f.listener.as_deref(), Some("web/http"));
        assert_eq!(f.route.as_deref(), Some("app"));
        assert_eq!(f.client, Some("127.0.0.9".parse().unwrap()));
        assert!(observe_filter("client=nope").is_err());
        assert!(observe_filter("colour=blue").is_err());
        assert_eq!(observe_filter("").unwrap(), ObserveFilter::default());
    }
}
