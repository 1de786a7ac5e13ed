//! TCP listeners: accept, pick an endpoint (retrying on connect failure), proxy, log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use gatehouse_config::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::copy::{End, Transfer, proxy};
use crate::pool::{EndpointGuard, Pool};

/// What a listener does with a new connection: its settings and its pool. Swapped as a whole
/// on reload; each connection keeps the one it was accepted under.
#[derive(Debug)]
pub struct Route {
    /// Listener settings.
    pub listener: Arc<Listener>,
    /// Where connections go.
    pub pool: Arc<Pool>,
}

/// A listening socket's live state, shared by its accept loop and the supervisor.
#[derive(Debug)]
pub struct ListenerState {
    route: ArcSwap<Route>,
    open: AtomicUsize,
}

impl ListenerState {
    /// State for a listener about to start.
    pub fn new(route: Route) -> Arc<Self> {
        Arc::new(ListenerState {
            route: ArcSwap::from_pointee(route),
            open: AtomicUsize::new(0),
        })
    }

    /// Replaces what new connections get (a reload); open connections are not affected.
    pub fn set_route(&self, route: Route) {
        self.route.store(Arc::new(route));
    }

    /// The route new connections get now.
    pub fn route(&self) -> Arc<Route> {
        self.route.load_full()
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
                tracing::warn!(listener = %state.route().listener.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let route = state.route();
        if state.open.load(Relaxed) >= route.listener.max_connections {
            tracing::warn!(
                target: "gatehouse::access",
                listener = %route.listener.name,
                client = %peer,
                outcome = "refused: connection limit",
                limit = route.listener.max_connections,
                "connection refused"
            );
            continue;
        }
        state.open.fetch_add(1, Relaxed);
        let state = Arc::clone(&state);
        let cut = control.cut.clone();
        control.tasks.spawn(async move {
            handle(client, peer, &route, &cut).await;
            state.open.fetch_sub(1, Relaxed);
        });
    }
}

/// Why no backend connection could be made.
#[derive(Debug)]
enum NoBackend {
    /// Every endpoint is down (or the pool is empty).
    NoHealthy,
    /// Connects failed on every endpoint tried.
    ConnectFailed { attempts: u32, last_error: String },
}

async fn handle(mut client: TcpStream, peer: SocketAddr, route: &Route, cut: &CancellationToken) {
    let started = Instant::now();
    let _ = client.set_nodelay(true);
    let (guard, mut backend) = match connect(route, peer).await {
        Ok(pair) => pair,
        Err(reason) => {
            let outcome = match &reason {
                NoBackend::NoHealthy => "no healthy endpoint".to_owned(),
                NoBackend::ConnectFailed {
                    attempts,
                    last_error,
                } => {
                    format!("connect failed ({attempts} attempts, last: {last_error})")
                }
            };
            tracing::warn!(
                target: "gatehouse::access",
                listener = %route.listener.name,
                client = %peer,
                backend = %route.pool.name(),
                bytes_up = 0u64,
                bytes_down = 0u64,
                duration_ms = started.elapsed().as_millis() as u64,
                outcome = %outcome,
                "connection closed"
            );
            return;
        }
    };
    let Transfer { up, down, end } =
        proxy(&mut client, &mut backend, route.listener.idle_timeout, cut).await;
    let endpoint = guard.endpoint().addr;
    drop(guard);
    // One line per connection; the same fields whatever the level.
    macro_rules! log_closed {
        ($level:ident) => {
            tracing::$level!(
                target: "gatehouse::access",
                listener = %route.listener.name, client = %peer, backend = %route.pool.name(),
                endpoint = %endpoint, bytes_up = up, bytes_down = down,
                duration_ms = started.elapsed().as_millis() as u64, outcome = %end,
                "connection closed"
            )
        };
    }
    if matches!(end, End::Closed | End::IdleTimeout) {
        log_closed!(info);
    } else {
        log_closed!(warn);
    }
}

/// Picks an endpoint and connects, trying up to `retries` further endpoints when a connect
/// fails. A failed connect counts towards the endpoint's passive ejection.
async fn connect(route: &Route, peer: SocketAddr) -> Result<(EndpointGuard, TcpStream), NoBackend> {
    let spec = route.pool.spec();
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut last_error = String::new();
    for attempt in 0..=spec.retries {
        let Some(guard) = route.pool.pick(peer.ip(), &tried) else {
            break;
        };
        let endpoint = Arc::clone(guard.endpoint());
        let error =
            match tokio::time::timeout(spec.connect_timeout, TcpStream::connect(endpoint.addr))
                .await
            {
                Ok(Ok(stream)) => {
                    endpoint.connect_succeeded();
                    let _ = stream.set_nodelay(true);
                    return Ok((guard, stream));
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("timed out after {:?}", spec.connect_timeout),
            };
        let ejected = endpoint.connect_failed(spec.passive.max_fails, spec.passive.fail_timeout);
        tracing::warn!(
            listener = %route.listener.name,
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
