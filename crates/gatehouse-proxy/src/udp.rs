//! UDP listeners: datagrams relayed per client flow.
//!
//! A *flow* is one client address and port. Its first datagram picks an endpoint (the pool's
//! balance decides: `ConsistentHash` keeps a client IP on one endpoint across its flows) and
//! opens a socket of its own, `connect()`ed to that endpoint, so the kernel hands the flow only
//! that endpoint's replies and reports an ICMP "port unreachable" as `ECONNREFUSED`. Replies
//! go back to the client from the listening socket.
//!
//! Who does what:
//! - [`serve`], one loop per listening socket, receives client datagrams into one reused
//!   buffer, finds or starts the client's flow and sends the datagram on the flow's socket.
//!   It alone owns the map of flows.
//! - Each flow's task relays replies and ends the flow when nothing moved either way for the
//!   listener's `udp.idleTimeout`, when the endpoint's port is unreachable, or when the
//!   listener stops. It logs one line and tells the loop (a channel of ended flows), which then
//!   forgets the flow.
//! - A flow stays on its endpoint while that is up. The loop checks on each client datagram:
//!   once the endpoint is down (health checks), the flow ends and the datagram starts a new one
//!   on another endpoint.
//!
//! A reload changes what new flows get (`ListenerState::service`); a flow keeps the route it
//! started with.
//!
//! Limitation: replies leave the listening socket from whatever source address the kernel
//! picks. On a socket bound to a wildcard address (`0.0.0.0`, `::`) of a host with several
//! addresses, that may not be the address the client sent to, and the client will drop the
//! reply (answering from the right one needs `IP_PKTINFO`, not done yet). Bind UDP listeners to
//! specific addresses.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gatehouse_config::Listener;
use socket2::{SockAddr, SockRef};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bind::{connect_udp, readable_or_error};
use crate::clock::{ms, now_ms};
use crate::pool::{Endpoint, EndpointGuard, Pool};
use crate::tcp::{ConnectionControl, ListenerState, Service};

/// Room for the largest UDP payload (65 507 bytes over IPv4, 65 527 over IPv6).
const MAX_DATAGRAM: usize = 65_536;

/// Replies a flow relays per wake-up before it looks at its timer and tokens again.
const REPLY_BATCH: usize = 64;

/// Dropped datagrams are logged at most this often per listener.
const DROP_LOG_EVERY: Duration = Duration::from_secs(1);

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The listener stopped (removed by a reload, or shutdown).
    Shutdown = 1,
    IdleTimeout,
    EndpointDown,
    PortUnreachable,
    BackendError,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Shutdown => "shutdown",
            Outcome::IdleTimeout => "idle timeout",
            Outcome::EndpointDown => "endpoint down",
            Outcome::PortUnreachable => "port unreachable",
            Outcome::BackendError => "backend error",
        }
    }
}

/// What the receive loop and a flow's task share. Atomics only: the loop touches it for every
/// datagram.
#[derive(Debug)]
struct FlowState {
    /// 0 while the flow lives, then why it ended (an [`Outcome`]): set once, by whoever ends
    /// it first (the loop, on a client datagram that finds the endpoint down or the port
    /// unreachable; else the flow's task).
    end: AtomicU8,
    /// The last datagram either way, on [`now_ms`]'s clock.
    last_ms: AtomicU64,
    datagrams_up: AtomicU64,
    bytes_up: AtomicU64,
}

impl FlowState {
    fn is_live(&self) -> bool {
        self.end.load(Relaxed) == 0
    }

    fn finish(&self, outcome: Outcome) {
        let _ = self
            .end
            .compare_exchange(0, outcome as u8, Relaxed, Relaxed);
    }

    fn outcome(&self) -> Outcome {
        use Outcome::*;
        let v = self.end.load(Relaxed);
        [IdleTimeout, EndpointDown, PortUnreachable, BackendError]
            .into_iter()
            .find(|o| *o as u8 == v)
            .unwrap_or(Shutdown)
    }
}

/// The receive loop's handle on a flow.
#[derive(Debug)]
struct Flow {
    /// Tells this flow from a later one of the same client in the "ended" channel.
    id: u64,
    socket: Arc<UdpSocket>,
    /// The endpoint it relays to.
    endpoint: Arc<Endpoint>,
    state: Arc<FlowState>,
    cancel: CancellationToken,
}

impl Flow {
    fn end(&self, outcome: Outcome) {
        self.state.finish(outcome);
        self.cancel.cancel();
    }
}

/// Relays datagrams received on `socket` until `stop` (or `control.cut`) is cancelled, then
/// ends every flow.
pub async fn serve(
    socket: UdpSocket,
    state: Arc<ListenerState>,
    stop: CancellationToken,
    control: ConnectionControl,
) {
    let socket = Arc::new(socket);
    // Unbounded, yet bounded in practice: each flow sends once, and flows are limited.
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let mut flows = Flows {
        map: HashMap::new(),
        next_id: 0,
        socket: Arc::clone(&socket),
        state,
        control,
        ended: ended_tx,
        all: stop.child_token(),
        drops: Drops::default(),
    };
    // Ends every flow when this function returns, or if its future is dropped.
    let _end_flows = flows.all.clone().drop_guard();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut drop_log = tokio::time::interval(DROP_LOG_EVERY);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = flows.control.cut.cancelled() => break,
            Some((client, id)) = ended_rx.recv() => flows.forget(client, id),
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, client)) => flows.on_datagram(client, &buf[..n]),
                Err(e) => {
                    tracing::warn!(listener = %flows.state.service().name(), error = %e, "UDP receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = drop_log.tick() => flows.drops.log(&flows.state, false),
        }
    }
    flows.drops.log(&flows.state, true);
}

/// The receive loop's state.
struct Flows {
    map: HashMap<SocketAddr, Flow>,
    next_id: u64,
    /// The listening socket, which flows reply from.
    socket: Arc<UdpSocket>,
    state: Arc<ListenerState>,
    control: ConnectionControl,
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    /// Parent of every flow's token: cancelled when `serve` ends.
    all: CancellationToken,
    drops: Drops,
}

impl Flows {
    fn on_datagram(&mut self, client: SocketAddr, data: &[u8]) {
        if let Some(flow) = self.map.get(&client) {
            if !flow.state.is_live() {
                // Ended (idle, unreachable) and not reaped yet: start afresh below.
            } else if !flow.endpoint.is_up() {
                flow.end(Outcome::EndpointDown);
            } else {
                flow.state.last_ms.store(now_ms(), Relaxed);
                match send(&flow.socket, data) {
                    Ok(n) => {
                        flow.state.datagrams_up.fetch_add(1, Relaxed);
                        flow.state.bytes_up.fetch_add(n as u64, Relaxed);
                        return;
                    }
                    // An ICMP error from an earlier datagram: end the flow, and let this
                    // datagram start another.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        flow.end(Outcome::PortUnreachable);
                    }
                    // Send buffer full: dropped, as the network would.
                    Err(_) => return,
                }
            }
            self.map.remove(&client);
        }
        if let Err(why) = self.start(client, data) {
            self.drops.count(why, client, &self.state);
        }
    }

    /// Starts a flow for `client` (on the listener's current route) and sends it `data`.
    fn start(&mut self, client: SocketAddr, data: &[u8]) -> Result<(), Dropped> {
        let service = self.state.service();
        // A UDP socket always has a UDP service (their listener keys differ).
        let Service::Udp(route) = &*service else {
            return Ok(());
        };
        let listener = &route.listener;
        let settings = listener.udp.clone().unwrap_or_default();
        if !listener.access.allows(client.ip()) {
            return Err(Dropped::Denied);
        }
        if self.map.len() >= settings.max_flows {
            return Err(Dropped::FlowLimit);
        }
        let guard = route
            .pool
            .pick(client.ip(), &[])
            .ok_or(Dropped::NoEndpoint)?;
        let endpoint = Arc::clone(guard.endpoint());
        let socket = connect_udp(endpoint.addr).map_err(|e| {
            tracing::debug!(listener = %listener.name, endpoint = %endpoint.addr, error = %e, "no socket for a UDP flow");
            Dropped::SocketError
        })?;
        let socket = Arc::new(socket);
        let state = Arc::new(FlowState {
            end: AtomicU8::new(0),
            last_ms: AtomicU64::new(now_ms()),
            datagrams_up: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
        });
        // A fresh socket has no pending error; a full buffer just drops this datagram.
        if let Ok(n) = send(&socket, data) {
            state.datagrams_up.store(1, Relaxed);
            state.bytes_up.store(n as u64, Relaxed);
        }
        self.next_id += 1;
        let flow = Flow {
            id: self.next_id,
            socket: Arc::clone(&socket),
            endpoint,
            state: Arc::clone(&state),
            cancel: self.all.child_token(),
        };
        let task = FlowTask {
            id: flow.id,
            client,
            listener: Arc::clone(listener),
            pool: Arc::clone(&route.pool),
            guard,
            socket,
            reply_from: Arc::clone(&self.socket),
            state,
            cancel: flow.cancel.clone(),
            idle: settings.idle_timeout,
            ended: self.ended.clone(),
            open: Arc::clone(&self.state),
        };
        self.state.open.fetch_add(1, Relaxed);
        self.control.tasks.spawn(task.run());
        self.map.insert(client, flow);
        Ok(())
    }

    /// Forgets a flow that ended on its own, unless the client has a newer one already.
    fn forget(&mut self, client: SocketAddr, id: u64) {
        if self.map.get(&client).is_some_and(|f| f.id == id) {
            self.map.remove(&client);
        }
    }
}

/// One flow's task and everything it owns.
struct FlowTask {
    id: u64,
    client: SocketAddr,
    listener: Arc<Listener>,
    pool: Arc<Pool>,
    /// Counts the flow against its endpoint while it lives.
    guard: EndpointGuard,
    socket: Arc<UdpSocket>,
    reply_from: Arc<UdpSocket>,
    state: Arc<FlowState>,
    cancel: CancellationToken,
    idle: Duration,
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    open: Arc<ListenerState>,
}

/// Replies relayed to the client.
#[derive(Debug, Default)]
struct Down {
    datagrams: u64,
    bytes: u64,
}

impl FlowTask {
    async fn run(self) {
        let started = Instant::now();
        let endpoint = Arc::clone(self.guard.endpoint());
        let idle_ms = ms(self.idle);
        let mut down = Down::default();
        let mut answered = false;
        let mut error = None;
        // One timer, moved only when it fires: replies and client datagrams just update
        // `last_ms`, so the hot path never touches the timer wheel.
        let timer = tokio::time::sleep(self.idle);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                () = &mut timer => {
                    let quiet = now_ms().saturating_sub(self.state.last_ms.load(Relaxed));
                    if quiet >= idle_ms {
                        self.state.finish(Outcome::IdleTimeout);
                        break;
                    }
                    timer.set(tokio::time::sleep(Duration::from_millis(idle_ms - quiet)));
                }
                ready = readable_or_error(&self.socket) => {
                    let relayed = ready.and_then(|()| self.relay_replies(&mut down));
                    match relayed {
                        Ok(0) => {}
                        Ok(_) => {
                            self.state.last_ms.store(now_ms(), Relaxed);
                            if !answered {
                                answered = true;
                                endpoint.connect_succeeded();
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                            self.state.finish(Outcome::PortUnreachable);
                            break;
                        }
                        Err(e) => {
                            error = Some(e);
                            self.state.finish(Outcome::BackendError);
                            break;
                        }
                    }
                }
            }
        }
        self.state.finish(Outcome::Shutdown);
        let outcome = self.state.outcome();
        let mut reason = outcome.as_str().to_owned();
        if outcome == Outcome::PortUnreachable {
            let passive = &self.pool.spec().passive;
            if endpoint.connect_failed(passive.max_fails, passive.fail_timeout) {
                reason = format!("{reason} (endpoint ejected for {:?})", passive.fail_timeout);
            }
        }
        if let Some(e) = error {
            reason = format!("{reason}: {e}");
        }
        let FlowTask {
            id,
            client,
            listener,
            pool,
            guard,
            socket,
            state,
            ended,
            open,
            ..
        } = self;
        // Release the endpoint and our handle on the socket (the loop drops the other when it
        // forgets the flow, which closes it) before the flow stops counting.
        drop((guard, socket));
        open.open.fetch_sub(1, Relaxed);
        let _ = ended.send((client, id));
        macro_rules! flow_closed {
            ($level:ident) => {
                tracing::$level!(
                    target: "gatehouse::access",
                    listener = %listener.name, client = %client, backend = %pool.name(),
                    endpoint = %endpoint.addr,
                    datagrams_up = state.datagrams_up.load(Relaxed),
                    datagrams_down = down.datagrams,
                    bytes_up = state.bytes_up.load(Relaxed),
                    bytes_down = down.bytes,
                    duration_ms = started.elapsed().as_millis() as u64,
                    outcome = %reason,
                    "flow closed"
                )
            };
        }
        if matches!(outcome, Outcome::PortUnreachable | Outcome::BackendError) {
            flow_closed!(warn);
        } else {
            flow_closed!(info);
        }
    }

    /// Relays the replies waiting on the flow's socket (at most [`REPLY_BATCH`]) to the
    /// client; returns how many were read.
    fn relay_replies(&self, down: &mut Down) -> io::Result<usize> {
        // One buffer per runtime thread rather than 64 KiB per flow. It is taken out of the
        // cell and put back with no await in between, so flows never share it.
        let mut buf = REPLY_BUFFER.take();
        buf.resize(MAX_DATAGRAM, 0);
        let to = SockAddr::from(self.client);
        let mut read = 0;
        let result = loop {
            if read == REPLY_BATCH {
                break Ok(read);
            }
            let n = match self.socket.try_recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(read),
                Err(e) => break Err(e),
            };
            read += 1;
            // A reply the listening socket cannot take now is dropped, as the network would.
            if SockRef::from(&*self.reply_from)
                .send_to(&buf[..n], &to)
                .is_ok()
            {
                down.datagrams += 1;
                down.bytes += n as u64;
            }
        };
        REPLY_BUFFER.set(buf);
        result
    }
}

/// Sends a datagram now or not at all. Straight to the kernel: tokio's `try_send` would refuse
/// until its reactor has seen the socket writable, which a new flow's socket has not yet. (Only
/// reads wait on tokio's readiness.)
fn send(socket: &UdpSocket, data: &[u8]) -> io::Result<usize> {
    SockRef::from(socket).send(data)
}

thread_local! {
    static REPLY_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Why a datagram was dropped before any flow took it.
#[derive(Debug, Clone, Copy)]
enum Dropped {
    Denied,
    FlowLimit,
    NoEndpoint,
    SocketError,
}

/// Datagrams dropped since the last log line: a flood of them must not flood the log, so they
/// are counted and logged at most once per [`DROP_LOG_EVERY`].
#[derive(Debug, Default)]
struct Drops {
    /// By [`Dropped`].
    counts: [u64; 4],
    /// The latest client dropped, as an example.
    client: Option<SocketAddr>,
    logged: Option<Instant>,
}

impl Drops {
    fn count(&mut self, why: Dropped, client: SocketAddr, state: &ListenerState) {
        self.counts[why as usize] += 1;
        self.client = Some(client);
        self.log(state, false);
    }

    /// Logs what is counted, if the last line is old enough (or `now`: the listener stops).
    fn log(&mut self, state: &ListenerState, now: bool) {
        if !now && self.logged.is_some_and(|t| t.elapsed() < DROP_LOG_EVERY) {
            return;
        }
        let Some(client) = self.client.take() else {
            return;
        };
        let [denied, flow_limit, no_endpoint, socket_error] = self.counts;
        tracing::warn!(
            target: "gatehouse::access",
            listener = %state.service().name(), client = %client,
            denied, flow_limit, no_endpoint, socket_error,
            "datagrams dropped"
        );
        *self = Drops {
            logged: Some(Instant::now()),
            ..Drops::default()
        };
    }
}
