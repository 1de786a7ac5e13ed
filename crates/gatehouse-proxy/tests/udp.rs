//! The UDP data plane in-process: `udp::serve` on a socket from `bind_udp`, echo backends and
//! clients on 127.0.0.1 (port 0), listeners and backends built as Rust values. Also the UDP
//! health probe and the checks' `port`.
//!
//! Each test runs on a current-thread runtime, so a thread-local subscriber (`Logs`) sees what
//! the proxy's tasks log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_config::{
    Access, Backend, Balance, Cidr, EndpointSpec, HealthCheck, HealthCheckKind, Listener, Passive,
    Protocol, Target, UdpSettings,
};
use gatehouse_proxy::Pool;
use gatehouse_proxy::bind::bind_udp;
use gatehouse_proxy::health::probe;
use gatehouse_proxy::tcp::{ConnectionControl, ListenerState, Route, Service};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const LOCALHOST: &str = "127.0.0.1:0";

/// A backend that answers every datagram with `NAME|payload`; it stops (closing its port)
/// when the returned token is cancelled.
async fn echo(name: &'static str) -> (SocketAddr, CancellationToken) {
    // `bind_udp` for its large receive buffer: bursts from many clients must not overflow it.
    let socket = bind_udp(LOCALHOST.parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = tokio::select! {
                () = stopped.cancelled() => return,
                r = socket.recv_from(&mut buf) => r.unwrap(),
            };
            let mut reply = format!("{name}|").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    (addr, stop)
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
async fn closed_port() -> SocketAddr {
    UdpSocket::bind(LOCALHOST)
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

fn backend(endpoints: &[SocketAddr], balance: Balance) -> Backend {
    Backend {
        name: "echo".into(),
        balance,
        endpoints: endpoints
            .iter()
            .map(|a| EndpointSpec {
                target: Target::Addr(*a),
                weight: 1,
            })
            .collect(),
        connect_timeout: Duration::from_secs(1),
        retries: 2,
        resolve_interval: Duration::from_secs(30),
        passive: Passive {
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        },
        health_check: None,
        tls: None,
        proxy_protocol: None,
    }
}

fn listener(udp: UdpSettings, access: Access) -> Listener {
    Listener {
        name: "forward/udp".into(),
        bind: LOCALHOST.parse().unwrap(),
        protocol: Protocol::Udp,
        routes: vec![],
        hostname: None,
        tls: None,
        http_routes: vec![],
        http: None,
        max_connections: 10_000,
        idle_timeout: Duration::from_secs(600),
        access,
        accept_proxy: None,
        udp: Some(udp),
    }
}

fn settings(idle_ms: u64, max_flows: usize) -> UdpSettings {
    UdpSettings {
        idle_timeout: Duration::from_millis(idle_ms),
        max_flows,
    }
}

/// `udp::serve` running on a fresh socket.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ListenerState>,
    pool: Arc<Pool>,
    stop: CancellationToken,
    cut: CancellationToken,
    tasks: TaskTracker,
}

impl Proxy {
    fn start(spec: Backend, listener: Listener) -> Proxy {
        let pool = Pool::new(Arc::new(spec), None);
        let tasks = TaskTracker::new();
        pool.start(&tasks);
        let route = Route {
            listener: Arc::new(listener),
            pool: Arc::clone(&pool),
        };
        let state = ListenerState::new(Service::Udp(route));
        let socket = bind_udp(LOCALHOST.parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = CancellationToken::new();
        let cut = CancellationToken::new();
        let control = ConnectionControl {
            tasks: tasks.clone(),
            drain: CancellationToken::new(),
            cut: cut.clone(),
        };
        tasks.spawn(gatehouse_proxy::udp::serve(
            socket,
            Arc::clone(&state),
            stop.clone(),
            control,
        ));
        Proxy {
            addr,
            state,
            pool,
            stop,
            cut,
            tasks,
        }
    }

    /// Stops the listener and the pool and waits for every task (flows included).
    async fn shut(self) {
        self.stop.cancel();
        self.pool.stop();
        self.tasks.close();
        tokio::time::timeout(Duration::from_secs(2), self.tasks.wait())
            .await
            .expect("every task ends after stop");
    }
}

/// A client socket connected to the proxy.
async fn client(proxy: &Proxy) -> UdpSocket {
    let socket = UdpSocket::bind(LOCALHOST).await.unwrap();
    socket.connect(proxy.addr).await.unwrap();
    socket
}

/// The next reply, or `None` after `wait`; split at the first `|` into (backend, payload).
async fn reply(socket: &UdpSocket, wait: Duration) -> Option<(String, String)> {
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(wait, socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    let text = String::from_utf8(buf[..n].to_vec()).unwrap();
    let (name, payload) = text.split_once('|').unwrap();
    Some((name.to_owned(), payload.to_owned()))
}

async fn ask(socket: &UdpSocket, payload: &str) -> Option<(String, String)> {
    socket.send(payload.as_bytes()).await.unwrap();
    reply(socket, Duration::from_secs(2)).await
}

/// Polls `cond` every 10 ms for up to 2 s.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_get_exactly_their_own_replies() {
    let (a, _) = echo("a").await;
    let (b, _) = echo("b").await;
    let (c, _) = echo("c").await;
    let proxy = Proxy::start(
        backend(&[a, b, c], Balance::RoundRobin),
        listener(settings(5_000, 100), Access::default()),
    );
    let mut clients = Vec::new();
    for id in 0..50 {
        let socket = client(&proxy).await;
        clients.push(tokio::spawn(async move {
            for seq in 0..20 {
                socket.send(format!("{id}:{seq}").as_bytes()).await.unwrap();
            }
            let mut seen = BTreeSet::new();
            let mut backends = BTreeSet::new();
            for _ in 0..20 {
                let (name, payload) = reply(&socket, Duration::from_secs(2))
                    .await
                    .expect("a reply for every datagram");
                let (from, seq) = payload.split_once(':').unwrap();
                assert_eq!(from, id.to_string(), "another client's reply");
                assert!(
                    seen.insert(seq.parse::<u32>().unwrap()),
                    "duplicate {payload}"
                );
                backends.insert(name);
            }
            assert!(reply(&socket, Duration::from_millis(50)).await.is_none());
            assert_eq!(seen, (0..20).collect(), "client {id}");
            assert_eq!(backends.len(), 1, "one flow, one endpoint: {backends:?}");
            backends.into_iter().next().unwrap()
        }));
    }
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for c in clients {
        *spread.entry(c.await.unwrap()).or_default() += 1;
    }
    assert_eq!(spread.len(), 3, "round robin over the flows: {spread:?}");
    assert_eq!(proxy.state.open_connections(), 50);
    proxy.shut().await;
}

#[tokio::test]
async fn a_flow_keeps_its_endpoint_while_others_spread() {
    let (a, _) = echo("a").await;
    let (b, _) = echo("b").await;
    let (c, _) = echo("c").await;
    let proxy = Proxy::start(
        backend(&[a, b, c], Balance::RoundRobin),
        listener(settings(5_000, 100), Access::default()),
    );
    let long = client(&proxy).await;
    let mut others = BTreeSet::new();
    let mut long_seen = BTreeSet::new();
    for seq in 0..100 {
        let (name, payload) = ask(&long, &format!("long:{seq}")).await.unwrap();
        assert_eq!(payload, format!("long:{seq}"));
        long_seen.insert(name);
        if seq % 20 == 0 {
            let other = client(&proxy).await;
            others.insert(ask(&other, "short").await.unwrap().0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(long_seen.len(), 1, "{long_seen:?}");
    assert_eq!(others.len(), 3, "5 other flows take turns: {others:?}");
    proxy.shut().await;
}

#[tokio::test]
async fn an_idle_flow_ends_and_the_next_datagram_starts_another() {
    let logs = Logs::capture();
    let (a, _) = echo("a").await;
    let (b, _) = echo("b").await;
    let proxy = Proxy::start(
        backend(&[a, b], Balance::RoundRobin),
        listener(settings(200, 100), Access::default()),
    );
    let socket = client(&proxy).await;
    let started = Instant::now();
    assert_eq!(ask(&socket, "1").await.unwrap().0, "a");
    assert_eq!(ask(&socket, "2").await.unwrap().0, "a");
    assert_eq!(proxy.state.open_connections(), 1);
    eventually("the flow to expire", || proxy.state.open_connections() == 0).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        ask(&socket, "3").await.unwrap().0,
        "b",
        "a new flow, a new pick"
    );
    assert_eq!(proxy.state.open_connections(), 1);
    proxy.shut().await;
    let closed = logs.lines("flow closed");
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(closed[0].contains("outcome=idle timeout"), "{closed:?}");
    assert!(
        closed[0].contains("datagrams_up=2 datagrams_down=2"),
        "{closed:?}"
    );
    assert!(closed[0].contains("bytes_up=2 bytes_down=6"), "{closed:?}");
    assert!(closed[1].contains("outcome=shutdown"), "{closed:?}");
}

#[tokio::test]
async fn datagrams_beyond_max_flows_are_dropped() {
    let (a, _) = echo("a").await;
    let proxy = Proxy::start(
        backend(&[a], Balance::RoundRobin),
        listener(settings(300, 2), Access::default()),
    );
    let one = client(&proxy).await;
    let two = client(&proxy).await;
    let three = client(&proxy).await;
    assert!(ask(&one, "1").await.is_some());
    assert!(ask(&two, "2").await.is_some());
    three.send(b"3").await.unwrap();
    assert!(reply(&three, Duration::from_millis(150)).await.is_none());
    assert_eq!(proxy.state.open_connections(), 2);
    // Existing flows carry on; once they expire there is room again.
    assert!(ask(&one, "1").await.is_some());
    eventually("the flows to expire", || {
        proxy.state.open_connections() == 0
    })
    .await;
    assert!(ask(&three, "3").await.is_some());
    proxy.shut().await;
}

#[tokio::test]
async fn denied_clients_get_nothing_and_drops_are_logged_once_per_second() {
    let logs = Logs::capture();
    let (a, _) = echo("a").await;
    let deny = Access {
        allow: vec![],
        deny: vec![Cidr {
            addr: "127.0.0.1".parse().unwrap(),
            prefix: 32,
        }],
    };
    let proxy = Proxy::start(
        backend(&[a], Balance::RoundRobin),
        listener(settings(5_000, 100), deny),
    );
    let socket = client(&proxy).await;
    for _ in 0..50 {
        socket.send(b"hello").await.unwrap();
    }
    assert!(reply(&socket, Duration::from_millis(200)).await.is_none());
    assert_eq!(proxy.state.open_connections(), 0);
    assert_eq!(
        logs.lines("datagrams dropped").len(),
        1,
        "the first one, at once"
    );
    proxy.shut().await;
    // The rest are counted in one line when the listener stops.
    let dropped = logs.lines("datagrams dropped");
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert!(dropped[0].contains("denied=1 "), "{dropped:?}");
    assert!(dropped[1].contains("denied=49 "), "{dropped:?}");
}

#[tokio::test]
async fn port_unreachable_ends_the_flow_and_ejects_the_endpoint() {
    let logs = Logs::capture();
    let dead = closed_port().await;
    let (live, _) = echo("live").await;
    let proxy = Proxy::start(
        backend(&[dead, live], Balance::RoundRobin),
        listener(settings(5_000, 100), Access::default()),
    );
    let socket = client(&proxy).await;
    // Round robin sends the first flow to the closed port: lost, and ICMP says why.
    socket.send(b"1").await.unwrap();
    assert!(reply(&socket, Duration::from_millis(200)).await.is_none());
    let endpoints = proxy.pool.endpoints();
    eventually("passive ejection", || endpoints[0].is_ejected()).await;
    assert_eq!(ask(&socket, "2").await.unwrap().0, "live");
    // Ejected: a new client's flow skips it too.
    let other = client(&proxy).await;
    assert_eq!(ask(&other, "3").await.unwrap().0, "live");
    proxy.shut().await;
    let closed = logs.lines("flow closed");
    assert!(
        closed[0].contains(&format!("endpoint={dead}")) && closed[0].contains("port unreachable"),
        "{closed:?}"
    );
    assert!(closed[0].starts_with("WARN"), "{closed:?}");
}

#[tokio::test]
async fn a_flow_moves_when_health_checks_take_its_endpoint_down() {
    let logs = Logs::capture();
    let (a, stop_a) = echo("a").await;
    let (b, _) = echo("b").await;
    let mut spec = backend(&[a, b], Balance::RoundRobin);
    spec.passive.max_fails = 0;
    spec.health_check = Some(udp_check(b"ping", b"", None));
    let proxy = Proxy::start(spec, listener(settings(5_000, 100), Access::default()));
    let socket = client(&proxy).await;
    assert_eq!(ask(&socket, "1").await.unwrap().0, "a");
    stop_a.cancel();
    let endpoints = proxy.pool.endpoints();
    eventually("a to be down", || !endpoints[0].is_up()).await;
    assert_eq!(ask(&socket, "2").await.unwrap().0, "b");
    assert_eq!(ask(&socket, "3").await.unwrap().0, "b");
    proxy.shut().await;
    let closed = logs.lines("flow closed");
    assert!(closed[0].contains("outcome=endpoint down"), "{closed:?}");
    assert!(
        closed[0].contains("datagrams_up=1 datagrams_down=1"),
        "{closed:?}"
    );
}

#[tokio::test]
async fn stop_and_cut_end_every_flow() {
    let logs = Logs::capture();
    let (a, _) = echo("a").await;
    for cut in [false, true] {
        let proxy = Proxy::start(
            backend(&[a], Balance::RoundRobin),
            listener(settings(5_000, 100), Access::default()),
        );
        for _ in 0..5 {
            assert!(ask(&client(&proxy).await, "x").await.is_some());
        }
        assert_eq!(proxy.state.open_connections(), 5);
        if cut {
            proxy.cut.cancel();
        } else {
            proxy.stop.cancel();
        }
        eventually("every flow to end", || proxy.state.open_connections() == 0).await;
        proxy.shut().await;
    }
    let closed = logs.lines("flow closed");
    assert_eq!(closed.len(), 10);
    assert!(
        closed.iter().all(|l| l.contains("outcome=shutdown")),
        "{closed:?}"
    );
}

#[tokio::test]
async fn consistent_hash_keeps_a_client_ip_on_one_endpoint_across_flows() {
    let (a, _) = echo("a").await;
    let (b, _) = echo("b").await;
    let (c, _) = echo("c").await;
    let proxy = Proxy::start(
        backend(&[a, b, c], Balance::ConsistentHash),
        listener(settings(5_000, 100), Access::default()),
    );
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        seen.insert(ask(&client(&proxy).await, "x").await.unwrap().0);
    }
    assert_eq!(seen.len(), 1, "every client is 127.0.0.1: {seen:?}");
    assert_eq!(proxy.state.open_connections(), 6);
    proxy.shut().await;
}

#[tokio::test]
async fn a_reload_changes_new_flows_only() {
    let (a, _) = echo("a").await;
    let (b, _) = echo("b").await;
    let proxy = Proxy::start(
        backend(&[a], Balance::RoundRobin),
        listener(settings(5_000, 100), Access::default()),
    );
    let old = client(&proxy).await;
    assert_eq!(ask(&old, "1").await.unwrap().0, "a");
    proxy.state.set_service(Service::Udp(Route {
        listener: Arc::new(listener(settings(5_000, 100), Access::default())),
        pool: Pool::new(Arc::new(backend(&[b], Balance::RoundRobin)), None),
    }));
    assert_eq!(
        ask(&old, "2").await.unwrap().0,
        "a",
        "an open flow keeps its route"
    );
    let new = client(&proxy).await;
    assert_eq!(ask(&new, "3").await.unwrap().0, "b");
    proxy.shut().await;
}

fn udp_check(send: &[u8], expect: &[u8], port: Option<u16>) -> HealthCheck {
    HealthCheck {
        kind: HealthCheckKind::Udp {
            send: send.to_vec(),
            expect: expect.to_vec(),
        },
        port,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
        rise: 1,
        fall: 1,
    }
}

#[tokio::test]
async fn udp_health_probe() {
    let (echo_addr, _) = echo("svc").await;
    assert_eq!(
        probe(echo_addr, &udp_check(b"ping", b"svc|ping", None)).await,
        Ok(())
    );
    assert_eq!(
        probe(echo_addr, &udp_check(b"ping", b"", None)).await,
        Ok(())
    );

    let wrong = probe(echo_addr, &udp_check(b"ping", b"pong", None))
        .await
        .unwrap_err();
    assert!(wrong.contains("does not start with \"pong\""), "{wrong}");

    let closed = probe(closed_port().await, &udp_check(b"ping", b"", None))
        .await
        .unwrap_err();
    assert!(closed.contains("port unreachable"), "{closed}");

    let silent = UdpSocket::bind(LOCALHOST).await.unwrap();
    let started = Instant::now();
    let timeout = probe(silent.local_addr().unwrap(), &udp_check(b"ping", b"", None))
        .await
        .unwrap_err();
    assert_eq!(timeout, "no reply within 200ms");
    assert!(started.elapsed() < Duration::from_secs(1));

    // `port`: the endpoint's address with another port. The endpoint here is the silent
    // socket; the check goes to the echo's port and passes.
    let endpoint = silent.local_addr().unwrap();
    let check = udp_check(b"ping", b"svc", Some(echo_addr.port()));
    assert_eq!(probe(endpoint, &check).await, Ok(()));
    // And the other way round: it fails naming the probed address.
    let check = udp_check(b"ping", b"", Some(closed_port().await.port()));
    let failed = probe(echo_addr, &check).await.unwrap_err();
    assert!(
        failed.starts_with("127.0.0.1:") && failed.contains("port unreachable"),
        "{failed}"
    );

    // A TCP check on a port override reaches the TCP side of a UDP service.
    let tcp = tokio::net::TcpListener::bind(LOCALHOST).await.unwrap();
    let tcp_check = HealthCheck {
        kind: HealthCheckKind::Tcp,
        port: Some(tcp.local_addr().unwrap().port()),
        ..udp_check(b"", b"", None)
    };
    assert_eq!(probe(echo_addr, &tcp_check).await, Ok(()));
}

#[tokio::test]
async fn health_checker_uses_the_udp_probe_and_port() {
    // The endpoint's own port is closed; its "side" port answers.
    let (side, _) = echo("side").await;
    let endpoint = closed_port().await;
    let mut spec = backend(&[endpoint], Balance::RoundRobin);
    spec.health_check = Some(udp_check(b"ping", b"side|ping", Some(side.port())));
    let tasks = TaskTracker::new();
    let pool = Pool::new(Arc::new(spec.clone()), None);
    pool.start(&tasks);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(pool.endpoints()[0].is_up(), "probed on the side port: up");
    pool.stop();

    spec.health_check = Some(udp_check(b"ping", b"", None));
    let pool = Pool::new(Arc::new(spec), None);
    pool.start(&tasks);
    let endpoint = Arc::clone(&pool.endpoints()[0]);
    eventually("down: its own port is closed", || !endpoint.is_up()).await;
    pool.stop();
    tasks.close();
    tasks.wait().await;
}

/// A thread-local subscriber that keeps each event as `LEVEL message field=value...`.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    /// Captures what this thread logs until the test ends.
    fn capture() -> Logs {
        let logs = Logs::default();
        let guard = tracing::subscriber::set_default(logs.clone());
        // Kept for the whole test: the test thread's runtime runs every task.
        std::mem::forget(guard);
        logs
    }

    /// The lines (`LEVEL message: field=value ...`) whose message is `message`.
    fn lines(&self, message: &str) -> Vec<String> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|l| {
                l.split_once(' ')
                    .and_then(|(_, rest)| rest.split_once(':'))
                    .map(|(m, _)| m)
                    == Some(message)
            })
            .cloned()
            .collect()
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.fields.push_str(&format!(" {}={value}", field.name()));
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        tracing::span::Id::from_u64(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let level = event.metadata().level();
        let text = format!("{level} {}:{}", line.message, line.fields);
        self.0.lock().unwrap().push(text);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
