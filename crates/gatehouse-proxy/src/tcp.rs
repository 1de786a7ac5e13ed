//! Listening sockets: accept, hand the connection to its service (TCP, or TLS routed by server
//! name), pick an endpoint (retrying on connect failure), proxy, log.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use gatehouse_config::{AcceptProxy, Listener};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::copy::{Duplex, End, Transfer, proxy};
use crate::front::{self, Origin};
use crate::http::HttpSite;
use crate::pool::Pool;
use crate::tls::SniTable;
use crate::upstream::{Upstream, connect};

/// Where a connection goes once its route is known: the listener it came in on (its settings
/// and name) and the backend pool.
#[derive(Debug)]
pub struct Route {
    /// Listener settings.
    pub listener: Arc<Listener>,
    /// Where connections go.
    pub pool: Arc<Pool>,
}

/// What a listening socket does with a new connection. Swapped as a whole on reload; each
/// connection keeps the one it was accepted under.
#[derive(Debug)]
pub enum Service {
    /// A TCP listener: every connection to one pool.
    Tcp(Route),
    /// One or more TLS (and HTTPS) listeners on this socket, chosen by the ClientHello's
    /// server name.
    Tls(Box<SniTable>),
    /// One or more HTTP listeners on this socket, chosen per request by its host.
    Http(Arc<HttpSite>),
    /// A UDP listener: every flow to one pool (served by [`crate::udp::serve`]).
    Udp(Route),
}

impl Service {
    /// The name logs use for the socket.
    pub fn name(&self) -> &str {
        match self {
            Service::Tcp(route) | Service::Udp(route) => &route.listener.name,
            Service::Tls(table) => table.name(),
            Service::Http(site) => site.name(),
        }
    }

    /// PROXY headers accepted on the socket (listeners sharing one agree on it).
    fn accept_proxy(&self) -> Option<&AcceptProxy> {
        match self {
            Service::Tcp(route) | Service::Udp(route) => route.listener.accept_proxy.as_ref(),
            Service::Tls(table) => table.accept_proxy(),
            Service::Http(site) => site.accept_proxy(),
        }
    }

    fn max_connections(&self) -> usize {
        match self {
            Service::Tcp(route) => route.listener.max_connections,
            Service::Udp(route) => route.listener.udp.as_ref().map_or(0, |u| u.max_flows),
            Service::Tls(table) => table.max_connections(),
            Service::Http(site) => site.max_connections(),
        }
    }
}

/// The name logs use for a socket that several listeners share: theirs, comma-separated.
pub(crate) fn shared_name(listeners: &[Arc<Listener>]) -> String {
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    names.join(",")
}

/// The connection limit of a socket that several listeners share: the largest of theirs
/// (the listener is only known once a connection has said which name it wants).
pub(crate) fn shared_limit(listeners: &[Arc<Listener>]) -> usize {
    listeners
        .iter()
        .map(|l| l.max_connections)
        .max()
        .unwrap_or(0)
}

/// A listening socket's live state, shared by its accept loop and the supervisor.
#[derive(Debug)]
pub struct ListenerState {
    service: ArcSwap<Service>,
    /// Open connections (TCP) or flows (UDP).
    pub(crate) open: AtomicUsize,
}

impl ListenerState {
    /// State for a listener about to start.
    pub fn new(service: Service) -> Arc<Self> {
        Arc::new(ListenerState {
            service: ArcSwap::from_pointee(service),
            open: AtomicUsize::new(0),
        })
    }

    /// Replaces what new connections get (a reload); open connections are not affected.
    pub fn set_service(&self, service: Service) {
        self.service.store(Arc::new(service));
    }

    /// What new connections get now.
    pub fn service(&self) -> Arc<Service> {
        self.service.load_full()
    }

    /// Connections open through this listener.
    pub fn open_connections(&self) -> usize {
        self.open.load(Relaxed)
    }
}

/// Tokens a connection obeys.
#[derive(Debug, Clone)]
pub struct ConnectionControl {
    /// Where connection tasks are tracked (a shutdown waits for them).
    pub tasks: TaskTracker,
    /// Cancelled when a shutdown starts: connections that can end early do (an HTTP
    /// connection after its request in flight).
    pub drain: CancellationToken,
    /// Cancelled when a shutdown's drain period is over: connections still open are cut.
    pub cut: CancellationToken,
}

/// Accepts connections on `socket` until `stop` is cancelled, then closes the socket.
/// Connections already accepted carry on (tracked in `control.tasks`).
pub async fn serve(
    socket: TcpListener,
    state: Arc<ListenerState>,
    stop: CancellationToken,
    control: ConnectionControl,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = socket.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors or memory: back off instead of spinning.
                tracing::warn!(listener = %state.service().name(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = state.service();
        if state.open.load(Relaxed) >= service.max_connections() {
            tracing::warn!(
                target: "gatehouse::access",
                listener = %service.name(),
                client = %peer,
                outcome = "refused: connection limit",
                limit = service.max_connections(),
                "connection refused"
            );
            continue;
        }
        state.open.fetch_add(1, Relaxed);
        let state = Arc::clone(&state);
        let cut = control.cut.clone();
        let drain = control.drain.clone();
        control.tasks.spawn(async move {
            let started = Instant::now();
            let _ = client.set_nodelay(true);
            let (mut client, origin) =
                match front::accept(client, peer, service.name(), service.accept_proxy()).await {
                    Ok(pair) => pair,
                    Err(why) => {
                        access_log!(warn, service.name(), peer, Conn::plain(started), "connection refused";
                            outcome = %format!("refused: {why}"),);
                        state.open.fetch_sub(1, Relaxed);
                        return;
                    }
                };
            match &*service {
                Service::Tcp(route) => {
                    let conn = Conn::plain(started);
                    if route.listener.access.allows(origin.client.ip()) {
                        forward(&mut client, &origin, route, &cut, conn).await;
                    } else {
                        refuse_address(&route.listener.name, &origin, &conn);
                    }
                }
                Service::Tls(table) => {
                    crate::tls::handle(client, origin, table, &drain, &cut, started).await;
                }
                Service::Http(site) => {
                    crate::http::serve(client, origin, Arc::clone(site), &drain, &cut).await;
                }
                // A UDP service never reaches a TCP socket (their keys differ).
                Service::Udp(_) => {}
            }
            state.open.fetch_sub(1, Relaxed);
        });
    }
}

/// What the access log says about a connection besides its listener and client.
pub(crate) struct Conn<'a> {
    pub(crate) started: Instant,
    /// The route that matched (TLS listeners).
    pub(crate) route: Option<&'a str>,
    /// The ClientHello's server name.
    pub(crate) sni: Option<&'a str>,
    /// `passthrough` or `terminate`.
    pub(crate) tls: Option<&'static str>,
    /// Bytes already read from the client that the backend must get first (a passthrough
    /// ClientHello).
    pub(crate) replay: &'a [u8],
}

impl Conn<'_> {
    pub(crate) fn plain(started: Instant) -> Conn<'static> {
        Conn {
            started,
            route: None,
            sni: None,
            tls: None,
            replay: &[],
        }
    }
}

/// One access-log line for a connection that ends (or is refused) on `listener`: the same
/// fields whatever the level; TLS fields only when present.
macro_rules! access_log {
    ($level:ident, $listener:expr, $peer:expr, $conn:expr, $message:literal; $($field:tt)*) => {
        tracing::$level!(
            target: "gatehouse::access",
            listener = %$listener, client = %$peer,
            route = $conn.route.map(tracing::field::display),
            sni = $conn.sni.map(tracing::field::display),
            tls = $conn.tls.map(tracing::field::display),
            $($field)*
            duration_ms = $conn.started.elapsed().as_millis() as u64,
            $message
        )
    };
}
pub(crate) use access_log;

/// Logs the refusal of a client whose address a listener or route does not serve.
pub(crate) fn refuse_address(listener: &str, origin: &Origin, conn: &Conn<'_>) {
    access_log!(info, listener, origin.client, conn, "connection refused";
        outcome = "refused: client address not allowed",);
}

/// Connects `client` to an endpoint of `route`'s pool (retrying on failure), replays
/// `conn.replay`, and proxies until the connection ends; logs one line.
pub(crate) async fn forward<C: Duplex>(
    client: &mut C,
    origin: &Origin,
    route: &Route,
    cut: &CancellationToken,
    conn: Conn<'_>,
) {
    let listener = &route.listener.name;
    let peer = origin.client;
    let (guard, upstream) = match connect(&route.pool, listener, origin).await {
        Ok(pair) => pair,
        Err(reason) => {
            access_log!(warn, listener, peer, conn, "connection closed";
                backend = %route.pool.name(), bytes_up = 0u64, bytes_down = 0u64,
                outcome = %reason,);
            return;
        }
    };
    let idle = route.listener.idle_timeout;
    let Transfer { up, down, end } = match upstream {
        Upstream::Plain(mut backend) => relay(client, &mut backend, conn.replay, idle, cut).await,
        Upstream::Tls(mut backend) => relay(client, &mut *backend, conn.replay, idle, cut).await,
    };
    let endpoint = guard.endpoint().addr;
    drop(guard);
    macro_rules! log_closed {
        ($level:ident) => {
            access_log!($level, listener, peer, conn, "connection closed";
                backend = %route.pool.name(), endpoint = %endpoint, bytes_up = up,
                bytes_down = down, outcome = %end,)
        };
    }
    if matches!(end, End::Closed | End::IdleTimeout) {
        log_closed!(info);
    } else {
        log_closed!(warn);
    }
}

/// Writes `replay` to the backend, then proxies both ways.
async fn relay<C: Duplex, B: Duplex + AsyncWrite + Unpin>(
    client: &mut C,
    backend: &mut B,
    replay: &[u8],
    idle: Duration,
    cut: &CancellationToken,
) -> Transfer {
    if !replay.is_empty()
        && let Err(e) = backend.write_all(replay).await
    {
        return Transfer {
            up: 0,
            down: 0,
            end: End::BackendError(e.kind()),
        };
    }
    let mut t = proxy(client, backend, idle, cut).await;
    t.up += replay.len() as u64;
    t
}
