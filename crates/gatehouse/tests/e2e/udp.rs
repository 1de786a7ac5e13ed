//! UDP listeners through the real binary: flows to echo backends, TCP and UDP on one port,
//! flow expiry, and health checks that take a UDP endpoint out.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gatehouse_testkit::{Backend, Gatehouse, ask};

use crate::{BIN, WAIT};

/// A UDP echo server on 127.0.0.1 that answers `NAME:PAYLOAD`, until dropped.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Echo {
    fn start(name: &'static str) -> Echo {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let mut reply = format!("{name}:").into_bytes();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Echo { addr, stop }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sends `payload` from `socket` to `to` and returns the reply (None after 2 s).
fn ask_udp(socket: &UdpSocket, to: SocketAddr, payload: &str) -> Option<String> {
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(payload.as_bytes(), to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn udp_flows_reach_their_backends_next_to_tcp_on_the_same_port() {
    let (a, b) = (Echo::start("a"), Echo::start("b"));
    let tcp_backend = Backend::start("tcp");
    // Port 0 picks two different free ports for the two listeners; bind them on one fixed
    // port to show TCP and UDP sharing it.
    // A port free for TCP and for UDP both (other tests hold ports of either kind).
    let port = (0..100)
        .find_map(|_| {
            let tcp = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let port = tcp.local_addr().ok()?.port();
            UdpSocket::bind(("127.0.0.1", port)).ok().map(|_| port)
        })
        .expect("a port free for TCP and UDP");
    let g = Gatehouse::start(
        BIN,
        &format!(
            "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - {{name: udp, port: {port}, protocol: UDP, backend: echo, udp: {{idleTimeout: 300ms}}}}
      - {{name: tcp, port: {port}, backend: tcp}}
backends:
  - {{name: echo, endpoints: [{}, {}]}}
  - {{name: tcp, endpoints: [{}]}}
",
            a.addr,
            b.addr,
            tcp_backend.addr()
        ),
    );
    let gw: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(ask(gw).unwrap(), "tcp", "TCP on the same port");

    // 20 clients, 5 datagrams each, interleaved: each gets only its own replies, from the
    // backend its flow started on; round robin spreads the flows.
    let clients: Vec<UdpSocket> = (0..20)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut first_backend = vec![String::new(); clients.len()];
    for round in 0..5 {
        for (i, c) in clients.iter().enumerate() {
            let reply = ask_udp(c, gw, &format!("client{i}-{round}")).unwrap();
            let (backend, payload) = reply.split_once(':').unwrap();
            assert_eq!(payload, format!("client{i}-{round}"));
            if round == 0 {
                first_backend[i] = backend.to_owned();
            }
            assert_eq!(
                backend, first_backend[i],
                "client {i} changed backend mid-flow"
            );
        }
    }
    let on_a = first_backend.iter().filter(|b| *b == "a").count();
    assert_eq!(
        on_a, 10,
        "round robin over two endpoints: {first_backend:?}"
    );

    // An idle flow ends after 300 ms with its access line.
    let line = g
        .wait_for_all(&["flow closed", "outcome=\"idle timeout\""], 0, WAIT)
        .or_else(|| g.wait_for_all(&["flow closed", "idle timeout"], 0, WAIT))
        .unwrap();
    assert!(line.contains("datagrams_up=5"), "{line}");
    assert!(line.contains("datagrams_down=5"), "{line}");
}

#[test]
fn a_udp_health_check_takes_a_silent_endpoint_out_of_new_flows() {
    let live = Echo::start("live");
    // An endpoint with nothing behind its port: the probe gets ICMP "port unreachable".
    let dead = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let g = Gatehouse::start(
        BIN,
        &format!(
            "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - {{name: udp, port: 0, protocol: UDP, backend: echo}}
backends:
  - name: echo
    endpoints: [{dead}, {}]
    passive: {{maxFails: 0}}
    healthCheck: {{protocol: UDP, send: ping, expect: \"live:\", interval: 100ms, fall: 1}}
",
            live.addr
        ),
    );
    g.wait_for("endpoint down", 0, WAIT).unwrap();
    let gw = g.addr("t/udp");
    for i in 0..6 {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let reply = ask_udp(&c, gw, &format!("hello{i}"));
        assert_eq!(reply.as_deref(), Some(format!("live:hello{i}").as_str()));
    }
    assert!(g.logs().contains("port unreachable"), "{}", g.logs());
}
