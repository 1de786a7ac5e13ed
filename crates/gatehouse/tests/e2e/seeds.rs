//! The five reference topologies of `../shared/seeds/`, end to end: each seed's network built
//! in network namespaces with the seed's own addresses (inside the namespaces only, no route
//! out), the seed's example config from `examples/` run there (only interface names, file
//! paths and the like adjusted), and what the seed's own verification checks, checked against
//! Gatehouse. Each test prints the figures a user would ask about.
//!
//! Needs root (`ip netns`), `python3`, `curl`, `dig` and `openssl`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gatehouse_testkit::{Gatehouse, Lan, Netns, PyBackend};

use crate::{BIN, WAIT, sleep};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The example `name`, with each `(from, to)` replaced (each must occur).
fn example(name: &str, replace: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(examples().join(name)).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{name} has no {from:?}");
        text = text.replace(from, to);
    }
    text
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// A veth pair: `a_if` in `a` with `a_addrs`, `b_if` in `b` with `b_addrs`, both up.
fn wire(a: &Netns, a_if: &str, a_addrs: &[&str], b: &Netns, b_if: &str, b_addrs: &[&str]) {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
        for addr in addrs {
            ns.ip(&["addr", "add", addr, "dev", ifname]);
        }
        ns.ip(&["link", "set", ifname, "up"]);
    }
}

/// Adds `addr` (with its prefix) to a host's `eth0`.
fn add_addr(ns: &Netns, addr: &str) {
    ns.ip(&["addr", "add", addr, "dev", Lan::IF]);
}

/// Runs `program args...` inside `ns`; its stdout (panics with stderr on failure).
fn run_in(ns: &Netns, program: &str, args: &[&str]) -> String {
    let out = ns.output(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed ({}): {}{}",
        ns.name(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig +short @server name type` inside `ns`: the answers, one a line.
fn dig(ns: &Netns, server: &str, name: &str, rtype: &str) -> Vec<String> {
    let at = format!("@{server}");
    run_in(
        ns,
        "dig",
        &["+short", "+time=2", "+tries=2", &at, name, rtype],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Waits for `what` until [`WAIT`] runs out.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(20));
    }
}

/// A server on a thread inside a namespace: TCP (writes `NAME from PEER` and closes) or UDP
/// (answers every datagram with `NAME got DATA from PEER`). Stops on drop.
struct Peer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    fn tcp(ns: &Netns, addr: &str, name: &str) -> Peer {
        let addr: SocketAddr = addr.parse().unwrap();
        let name = name.to_owned();
        Peer::spawn(ns, move |stop| {
            let listener = TcpListener::bind(addr).unwrap();
            listener.set_nonblocking(true).unwrap();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut c, peer)) => {
                            let _ = c.set_nonblocking(false);
                            let _ = writeln!(c, "{name} from {}", peer.ip());
                        }
                        Err(_) => sleep(Duration::from_millis(5)),
                    }
                }
            }
        })
    }

    fn udp(ns: &Netns, addr: &str, name: &str) -> Peer {
        let addr: SocketAddr = addr.parse().unwrap();
        let name = name.to_owned();
        Peer::spawn(ns, move |stop| {
            let socket = UdpSocket::bind(addr).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                        let data = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let reply = format!("{name} got {data} from {}", peer.ip());
                        let _ = socket.send_to(reply.as_bytes(), peer);
                    }
                }
            }
        })
    }

    /// Binds inside `ns` (so a bind error fails the test here), then serves on that thread.
    fn spawn<F, S>(ns: &Netns, setup: S) -> Peer
    where
        S: FnOnce(Arc<AtomicBool>) -> F + Send + 'static,
        F: FnOnce() + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = ns.thread(move || {
            let serve = setup(flag);
            tx.send(()).unwrap();
            serve();
        });
        if rx.recv_timeout(WAIT).is_err() {
            let _ = thread.join();
            panic!("a test server did not start");
        }
        Peer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One TCP exchange from inside `ns`: connect to `target`, read to the end; the text and the
/// peer the socket saw.
fn tcp_ask(ns: &Netns, target: &str) -> Result<(String, SocketAddr), String> {
    let target: SocketAddr = target.parse().unwrap();
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let peer = s.peer_addr().map_err(|e| e.to_string())?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok((text.trim().to_owned(), peer))
    })
}

/// One UDP exchange from inside `ns` (unconnected socket): the reply and who sent it.
fn udp_ask(ns: &Netns, target: &str, data: &str) -> Result<(String, SocketAddr), String> {
    let target: SocketAddr = target.parse().unwrap();
    let data = data.to_owned();
    ns.run(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        // A few tries: the first datagram may wait for ARP.
        for _ in 0..4 {
            socket
                .send_to(data.as_bytes(), target)
                .map_err(|e| e.to_string())?;
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                return Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
            }
        }
        Err("no UDP reply".to_owned())
    })
}

/// `n` TCP exchanges; how many answered, and the slowest.
fn serve_many(ns: &Netns, target: &str, n: usize, expect: &str) -> (usize, Duration) {
    let mut ok = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        if tcp_ask(ns, target).is_ok_and(|(text, _)| text.starts_with(expect)) {
            ok += 1;
        }
        slowest = slowest.max(t.elapsed());
    }
    (ok, slowest)
}

// ---------------------------------------------------------------------------------------------
// Seed 001: two gateways sharing a LAN VIP in front of a cluster on a second network.

/// A TLS server (`python3`, the demo certificate): answers each HTTP request over TLS with
/// `NAME sni=SERVERNAME`; a handshake without a request (a health check) is fine too.
const PY_TLS_SERVER: &str = r#"
import socket, ssl, sys
host, port, name, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
seen = {}
def sni(sock, server_name, _ctx):
    seen[id(sock)] = server_name
ctx.sni_callback = sni
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(256)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(2)
    try:
        t = ctx.wrap_socket(c, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        if data:
            body = ("%s sni=%s\n" % (name, seen.pop(id(t), None))).encode()
            t.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        t.close()
    except (OSError, ssl.SSLError):
        c.close()
"#;

/// [`PY_TLS_SERVER`] running inside a namespace; killed on drop.
struct TlsBackend(std::process::Child);

impl TlsBackend {
    fn start(ns: &Netns, addr: &str, name: &str) -> TlsBackend {
        use std::io::BufRead;
        let addr: SocketAddr = addr.parse().unwrap();
        let tls = examples().join("tls");
        let mut child = ns
            .command("python3")
            .args(["-c", PY_TLS_SERVER])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(name)
            .arg(tls.join("example.crt"))
            .arg(tls.join("example.key"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the TLS backend {name} on {addr} did not start");
        }
        TlsBackend(child)
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` HTTPS requests for `name` to `VIP:port` from `ns`; who answered each (the first word).
fn https_answers(ns: &Netns, name: &str, port: u16, n: usize) -> Vec<String> {
    let script = format!(
        "for i in $(seq {n}); do curl -sk --max-time 5 --resolve {name}:{port}:192.168.68.200 \
         https://{name}:{port}/ || echo failed; done"
    );
    ns.sh(&script).lines().map(str::to_owned).collect()
}

/// How many answers each backend gave: `worker-1 x3, worker-2 x3`.
fn tally(answers: &[String]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for a in answers {
        *counts.entry(a.split(' ').next().unwrap_or("")).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    parts.join(", ")
}

#[test]
fn seed_001_vip_fails_over_and_tls_passthrough_and_api_balancing_work() {
    let _serial = crate::netns_serial();
    // LAN 192.168.68.0/24: gw1 .56, gw2 .57, a client; vmnet2 10.10.0.0/24: gw1 .11, gw2 .12,
    // the masters .131-.133 and the workers .141-.142 (one namespace, their own addresses).
    let lan = Lan::new(&["gw1", "gw2", "client"]);
    add_addr(&lan.host("gw1").ns, "192.168.68.56/24");
    add_addr(&lan.host("gw2").ns, "192.168.68.57/24");
    add_addr(&lan.host("client").ns, "192.168.68.10/24");
    let vmnet2 = Netns::new();
    vmnet2.ip(&["link", "add", "br0", "type", "bridge"]);
    vmnet2.ip(&["link", "set", "br0", "up"]);
    let cluster = Netns::new();
    let node_addrs = [
        "10.10.0.131/24",
        "10.10.0.132/24",
        "10.10.0.133/24",
        "10.10.0.141/24",
        "10.10.0.142/24",
    ];
    for (port, ns, ifname, addrs) in [
        ("g1", &lan.host("gw1").ns, "ens192", &["10.10.0.11/24"][..]),
        ("g2", &lan.host("gw2").ns, "ens192", &["10.10.0.12/24"][..]),
        ("nodes", &cluster, "eth0", &node_addrs[..]),
    ] {
        wire(&vmnet2, port, &[], ns, ifname, addrs);
        vmnet2.ip(&["link", "set", port, "master", "br0"]);
    }

    let mut masters: Vec<Option<TlsBackend>> = (1..=3)
        .map(|i| {
            Some(TlsBackend::start(
                &cluster,
                &format!("10.10.0.13{i}:6443"),
                &format!("master-{i}"),
            ))
        })
        .collect();
    let _workers_tls: Vec<TlsBackend> = (1..=2)
        .map(|i| {
            TlsBackend::start(
                &cluster,
                &format!("10.10.0.14{i}:30443"),
                &format!("worker-{i}"),
            )
        })
        .collect();
    let _workers_http: Vec<PyBackend> = (1..=2)
        .map(|i| {
            let addr = format!("10.10.0.14{i}:30080").parse().unwrap();
            PyBackend::start(&cluster, addr, &format!("worker-{i}"), false)
        })
        .collect();

    let adapt = |file| example(file, &[("interface: ens160", "interface: eth0")]);
    let mut gw1 = Gatehouse::start_in(lan.host("gw1").ns.name(), BIN, &adapt("seed-001-gw1.yaml"));
    let vip: IpAddr = "192.168.68.200".parse().unwrap();
    wait_until("gw1 holds the VIP", || lan.host("gw1").holds(vip));
    let gw2 = Gatehouse::start_in(lan.host("gw2").ns.name(), BIN, &adapt("seed-001-gw2.yaml"));
    assert!(
        gw2.wait_for("-> backup", 0, WAIT).is_some(),
        "gw2 follows gw1 as backup; log:\n{}",
        gw2.logs()
    );
    let client = &lan.host("client").ns;
    let prober = gatehouse_testkit::Prober::start(client, "192.168.68.200:80".parse().unwrap());
    let began = Instant::now();
    prober
        .wait_until(began, WAIT, |s| {
            s.answer.as_deref().is_ok_and(|a| a.starts_with("worker-"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no answer on VIP:80: {}",
                prober.summary(began, Instant::now())
            )
        });

    // TLS passthrough: the workers terminate it and see the client's server name.
    let through_gw1 = https_answers(client, "myapp.local", 443, 6);
    assert!(
        through_gw1.iter().all(|a| a.ends_with("sni=myapp.local")),
        "TLS through gw1: {through_gw1:?}"
    );

    // gw1 dies: gw2 takes the VIP, new connections succeed.
    let mark = gw2.mark();
    let killed = Instant::now();
    gw1.kill();
    let line = gw2
        .wait_for("-> master", mark, WAIT)
        .unwrap_or_else(|| panic!("gw2 never became master; log:\n{}", gw2.logs()));
    wait_until("gw2 holds the VIP", || lan.host("gw2").holds(vip));
    let ok_after = prober
        .wait_until(killed, WAIT, |s| s.at > killed && s.answer.is_ok())
        .unwrap_or_else(|| {
            panic!(
                "no answer after gw1 died: {}",
                prober.summary(killed, Instant::now())
            )
        });
    sleep(Duration::from_millis(500));
    let settled = Instant::now();
    let silence = prober.longest_silence(killed, settled);
    let late = prober.between(ok_after.done, settled);
    assert!(
        late.iter().all(|s| s.answer.is_ok()),
        "after the takeover: {}",
        prober.summary(ok_after.done, settled)
    );
    assert!(
        silence < Duration::from_secs(2),
        "no answer for {}",
        ms(silence)
    );
    let neighbour = client.neighbour(vip);
    assert!(
        neighbour.contains(&lan.host("gw2").mac()),
        "client's entry: {neighbour}"
    );
    drop(prober);

    let mut tls_answers = Vec::new();
    for name in ["myapp.local", "grafana.myapp.local"] {
        let answers = https_answers(client, name, 443, 6);
        assert!(
            answers
                .iter()
                .all(|a| a.starts_with("worker-") && a.ends_with(&format!("sni={name}"))),
            "TLS for {name} through gw2: {answers:?}"
        );
        tls_answers.extend(answers);
    }
    assert!(tls_answers.iter().any(|a| a.starts_with("worker-1")));
    assert!(tls_answers.iter().any(|a| a.starts_with("worker-2")));

    // The API server port over three masters; master-2 dies and is skipped.
    let api = https_answers(client, "kubernetes.default", 6443, 12);
    assert!(
        api.iter().all(|a| a.starts_with("master-")),
        "6443: {api:?}"
    );
    let before = tally(&api);
    let mark = gw2.mark();
    let died = Instant::now();
    masters[1] = None;
    gw2.wait_for_all(
        &["endpoint down", "10.10.0.132:6443"],
        mark,
        Duration::from_secs(15),
    )
    .unwrap_or_else(|| panic!("master-2 never marked down; log:\n{}", gw2.logs()));
    let detected = died.elapsed();
    let api_after = https_answers(client, "kubernetes.default", 6443, 12);
    assert!(
        api_after
            .iter()
            .all(|a| a.starts_with("master-") && !a.starts_with("master-2")),
        "6443 with master-2 dead: {api_after:?}"
    );
    println!(
        "seed 001: gw1 killed, gw2 master ({}) and the client answered again after {} \
         (longest time without an answer {}); client's entry: {neighbour}; TLS passthrough: \
         {} requests through gw1 and gw2, each worker saw the client's SNI ({}); 6443: {before}; \
         master-2 stopped, marked down after {}, then {}",
        gatehouse_testkit::field(&line, "reason").unwrap_or_default(),
        ms(ok_after.done - killed),
        ms(silence),
        through_gw1.len() + tls_answers.len(),
        tally(&tls_answers),
        ms(detected),
        tally(&api_after)
    );
}

// ---------------------------------------------------------------------------------------------
// Seed 002: an isolated VM reaches Ironic through one forward on the host's external address.

#[test]
fn seed_002_vm_network_reaches_the_service_through_the_forward() {
    let _serial = crate::netns_serial();
    // vm 10.0.2.100 --- host 10.0.2.2, external 192.168.1.242, 172.18.0.1 --- kind 172.18.0.2
    let vm = Netns::new();
    let host = Netns::new();
    let kind = Netns::new();
    wire(
        &vm,
        "eth0",
        &["10.0.2.100/24"],
        &host,
        "vmnet0",
        &["10.0.2.2/24"],
    );
    wire(
        &host,
        "kind0",
        &["172.18.0.1/16"],
        &kind,
        "eth0",
        &["172.18.0.2/16"],
    );
    // The host's external address (its LAN is not part of this test: no interface for it).
    host.ip(&["addr", "add", "192.168.1.242/32", "dev", "lo"]);
    // The VM's gateway is the host; the kind node has no route to the VM network.
    vm.ip(&["route", "add", "192.168.1.242/32", "via", "10.0.2.2"]);
    // A client on the kind network, outside the forward's allow list.
    kind.ip(&["route", "add", "192.168.1.242/32", "via", "172.18.0.1"]);

    let _ironic = Peer::tcp(&kind, "172.18.0.2:31385", "ironic");
    let g = Gatehouse::start_in(host.name(), BIN, &example("seed-002.yaml", &[]));

    let (text, peer) = tcp_ask(&vm, "192.168.1.242:6385")
        .unwrap_or_else(|e| panic!("the VM cannot reach the forward: {e}; log:\n{}", g.logs()));
    assert_eq!(peer.to_string(), "192.168.1.242:6385");
    assert_eq!(
        text, "ironic from 172.18.0.1",
        "the service answers, and sees the host's address on the kind network"
    );
    let started = Instant::now();
    let (ok, slowest) = serve_many(&vm, "192.168.1.242:6385", 50, "ironic");
    let took = started.elapsed();
    assert_eq!(ok, 50, "every connection from the VM is forwarded");

    // Outside the allow list (the kind network itself): refused.
    let mark = g.mark();
    let outside = tcp_ask(&kind, "192.168.1.242:6385");
    assert!(
        !matches!(&outside, Ok((text, _)) if text.starts_with("ironic")),
        "a client outside the allow list got through: {outside:?}"
    );
    assert!(
        g.wait_for("client address not allowed", mark, WAIT)
            .is_some(),
        "no refusal in the log:\n{}",
        g.logs()
    );
    println!(
        "seed 002: VM 10.0.2.100 -> 192.168.1.242:6385 -> 172.18.0.2:31385: {ok}/50 requests \
         served in {} (slowest {}); from 172.18.0.2 (not in the allow list): {}",
        ms(took),
        ms(slowest),
        match outside {
            Ok((text, _)) if text.is_empty() => "closed without an answer".to_owned(),
            other => format!("{other:?}"),
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Seed 000: the Pi reaches the VM's internal address through a forward on the router.

#[test]
fn seed_000_client_reaches_the_macs_service_through_the_routers_forward() {
    let _serial = crate::netns_serial();
    let lan = Lan::new(&["pi", "router", "mac"]);
    let (pi, router, mac) = (
        &lan.host("pi").ns,
        &lan.host("router").ns,
        &lan.host("mac").ns,
    );
    add_addr(pi, "192.168.88.3/24");
    add_addr(router, "192.168.88.1/24");
    add_addr(mac, "192.168.88.2/24");
    // The Pi routes the VM's internal address through the router (what dst-nat caught).
    pi.ip(&["route", "add", "192.168.139.81/32", "via", "192.168.88.1"]);

    // The Mac's services, bound to its LAN address only (not 0.0.0.0).
    let _health = Peer::tcp(mac, "192.168.88.2:4240", "cilium-health");
    let _api = Peer::tcp(mac, "192.168.88.2:6443", "kube-api");
    let _vxlan = Peer::udp(mac, "192.168.88.2:8472", "vxlan");

    let started = Instant::now();
    let g = Gatehouse::start_in(router.name(), BIN, &example("seed-000.yaml", &[]));
    let vip: IpAddr = "192.168.139.81".parse().unwrap();
    wait_until("the router holds 192.168.139.81", || {
        lan.host("router").holds(vip)
    });
    let held = started.elapsed();

    let mut served = 0;
    for (port, name) in [(4240, "cilium-health"), (6443, "kube-api")] {
        let target = format!("192.168.139.81:{port}");
        let (text, peer) = tcp_ask(pi, &target)
            .unwrap_or_else(|e| panic!("{target} from the Pi: {e}; log:\n{}", g.logs()));
        assert_eq!(
            peer.to_string(),
            target,
            "replies come from the address asked"
        );
        assert_eq!(
            text,
            format!("{name} from 192.168.88.1"),
            "the Mac sees the router's address, as with masquerade"
        );
        let (ok, _) = serve_many(pi, &target, 20, name);
        assert_eq!(ok, 20);
        served += ok + 1;
    }
    let (reply, from) = udp_ask(pi, "192.168.139.81:8472", "vni42")
        .unwrap_or_else(|e| panic!("VXLAN port from the Pi: {e}; log:\n{}", g.logs()));
    assert_eq!(
        from.to_string(),
        "192.168.139.81:8472",
        "UDP replies are symmetric"
    );
    assert_eq!(reply, "vxlan got vni42 from 192.168.88.1");
    let neighbour = pi.neighbour("192.168.88.1".parse().unwrap());
    println!(
        "seed 000: router held 192.168.139.81 {} after start; {served} TCP connections from the \
         Pi served (4240, 6443, replies from 192.168.139.81, Mac saw 192.168.88.1); UDP 8472: \
         {reply:?} from {from}; Pi's neighbour entry for the router: {neighbour}",
        ms(held)
    );
}

// ---------------------------------------------------------------------------------------------
// Seed 003: the whole front door of a homelab: pool addresses, redirect, wildcard TLS, host
// routes, an internal-only route, and the DNS records that come with them.

/// The apps behind the Gateway: route host name (`NAME.int.lorenzodebie.be`), NodePort, and
/// what the python backend answers.
const APPS_003: [(&str, u16, &str); 7] = [
    ("sonarr", 30989, "sonarr"),
    ("radarr", 30878, "radarr"),
    ("prowlarr", 30696, "prowlarr"),
    ("qbittorrent", 30808, "qbittorrent-web"),
    ("grafana", 30300, "grafana"),
    ("auth", 30900, "auth"),
    ("argocd", 30880, "argocd"),
];

/// `curl -sk` inside `ns` with `NAME:PORT` resolved to `ip`: the status line figures
/// (`CODE REDIRECT`) and the body.
fn curl_host(ns: &Netns, url: &str, name: &str, port: u16, ip: &str) -> (String, String) {
    let resolve = format!("{name}:{port}:{ip}");
    let out = run_in(
        ns,
        "curl",
        &[
            "-sk",
            "--max-time",
            "5",
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_code} %{redirect_url}",
            url,
        ],
    );
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.trim().to_owned(), body.trim().to_owned())
}

#[test]
fn seed_003_front_door_redirects_terminates_routes_and_answers_dns() {
    let _serial = crate::netns_serial();
    let lan = Lan::new(&["gatehouse", "talos", "client", "guest"]);
    let (box_, talos, client, guest) = (
        &lan.host("gatehouse").ns,
        &lan.host("talos").ns,
        &lan.host("client").ns,
        &lan.host("guest").ns,
    );
    add_addr(box_, "192.168.30.10/24");
    add_addr(talos, "192.168.30.51/24");
    add_addr(client, "192.168.30.100/24");
    // A guest network's client (another VLAN, routed onto this segment).
    add_addr(guest, "192.168.40.20/24");
    guest.ip(&["route", "add", "192.168.30.0/24", "dev", "eth0"]);
    box_.ip(&["route", "add", "192.168.40.0/24", "dev", "eth0"]);

    let mut apps: Vec<PyBackend> = APPS_003
        .iter()
        .map(|(_, port, name)| {
            let addr = SocketAddr::new("192.168.30.51".parse().unwrap(), *port);
            PyBackend::start(talos, addr, name, true)
        })
        .collect();
    apps.push(PyBackend::start(
        talos,
        "192.168.30.51:32400".parse().unwrap(),
        "plex",
        true,
    ));
    apps.push(PyBackend::start(
        talos,
        "192.168.30.51:30881".parse().unwrap(),
        "qbittorrent-torrent",
        false,
    ));

    let tls = examples().join("tls");
    let (crt, key) = (
        format!("certFile: {}", tls.join("example.crt").display()),
        format!("keyFile: {}", tls.join("example.key").display()),
    );
    let yaml = example(
        "seed-003.yaml",
        &[
            ("certFile: tls/example.crt", &crt),
            ("keyFile: tls/example.key", &key),
        ],
    );
    let started = Instant::now();
    let g = Gatehouse::start_in(box_.name(), BIN, &yaml);
    for ip in ["192.168.30.61", "192.168.30.62", "192.168.30.63"] {
        wait_until(&format!("the box holds {ip}"), || {
            lan.host("gatehouse").holds(ip.parse().unwrap())
        });
    }
    let held = started.elapsed();

    // DNS: every app name, the wildcard, the apex, Plex's listener name, the hand-written one.
    let server = "192.168.30.61";
    let mut answers = 0;
    for (app, _, _) in APPS_003 {
        let name = format!("{app}.int.lorenzodebie.be");
        assert_eq!(dig(client, server, &name, "A"), ["192.168.30.61"], "{name}");
        answers += 1;
    }
    for (name, want) in [
        ("jellyfin.int.lorenzodebie.be", "192.168.30.61"),
        ("int.lorenzodebie.be", "192.168.30.61"),
        ("plex.int.lorenzodebie.be", "192.168.30.62"),
        ("talos.int.lorenzodebie.be", "192.168.30.50"),
    ] {
        assert_eq!(dig(client, server, name, "A"), [want], "{name}");
        answers += 1;
    }

    // HTTP -> HTTPS, path and query kept.
    let (status, _) = curl_host(
        client,
        "http://sonarr.int.lorenzodebie.be/calendar?week=1",
        "sonarr.int.lorenzodebie.be",
        80,
        server,
    );
    assert_eq!(
        status,
        "301 https://sonarr.int.lorenzodebie.be/calendar?week=1",
        "log:\n{}",
        g.logs()
    );

    // HTTPS, terminated with the wildcard certificate, each host to its app.
    let mut served = 0;
    for (app, _, answer) in APPS_003 {
        let name = format!("{app}.int.lorenzodebie.be");
        let (status, body) = curl_host(client, &format!("https://{name}/"), &name, 443, server);
        assert_eq!((status.as_str(), body.as_str()), ("200", answer), "{name}");
        served += 1;
    }
    let cert = client.sh(
        "openssl s_client -servername grafana.int.lorenzodebie.be -connect 192.168.30.61:443 \
         </dev/null 2>/dev/null | openssl x509 -noout -subject",
    );
    assert!(cert.contains("example.test"), "certificate: {cert}");

    // Argo CD is internal only: the guest network gets 403.
    let (status, body) = curl_host(
        guest,
        "https://argocd.int.lorenzodebie.be/",
        "argocd.int.lorenzodebie.be",
        443,
        server,
    );
    assert_eq!(status, "403", "argocd from 192.168.40.20: {body}");
    let (status, _) = curl_host(
        guest,
        "https://sonarr.int.lorenzodebie.be/",
        "sonarr.int.lorenzodebie.be",
        443,
        server,
    );
    assert_eq!(
        status, "200",
        "the other apps are open to the guest network"
    );

    // The LoadBalancer services on their pinned addresses.
    let plex = run_in(
        client,
        "curl",
        &[
            "-sS",
            "--max-time",
            "5",
            "http://192.168.30.62:32400/identity",
        ],
    );
    assert_eq!(plex.trim(), "plex");
    let web = run_in(
        client,
        "curl",
        &["-sS", "--max-time", "5", "http://192.168.30.63:8080/"],
    );
    assert_eq!(web.trim(), "qbittorrent-web");
    let (torrent, _) = tcp_ask(client, "192.168.30.63:6881").unwrap();
    assert_eq!(torrent, "qbittorrent-torrent");
    println!(
        "seed 003: .61/.62/.63 held {} after start; DNS: {answers} answers from 192.168.30.61 \
         (7 app names, wildcard, apex, plex -> .62, talos -> .50); redirect: 301 to https; \
         HTTPS: {served} hosts routed to their apps with the wildcard certificate ({}); argocd \
         from 192.168.40.20: 403; plex, qBittorrent web and torrent on .62/.63 answered",
        ms(held),
        cert.trim()
    );
}

// ---------------------------------------------------------------------------------------------
// Seed 004: UDP 4433 and TCP 80 on one pool address, its DNS name, non-overlapping pools.

#[test]
fn seed_004_pool_address_serves_udp_and_tcp_and_resolves() {
    let _serial = crate::netns_serial();
    let lan = Lan::new(&["kindhost", "beam00"]);
    let (host, beam) = (&lan.host("kindhost").ns, &lan.host("beam00").ns);
    add_addr(host, "192.168.129.3/23");
    add_addr(beam, "192.168.129.10/23");
    let kind = Netns::new();
    wire(
        host,
        "kind0",
        &["172.18.0.1/16"],
        &kind,
        "eth0",
        &["172.18.0.2/16"],
    );

    let _quic = Peer::udp(&kind, "172.18.0.2:30433", "bootstrap-quic");
    let _http = PyBackend::start(
        &kind,
        "172.18.0.2:30080".parse().unwrap(),
        "bootstrap",
        true,
    );

    let started = Instant::now();
    let g = Gatehouse::start_in(host.name(), BIN, &example("seed-004.yaml", &[]));
    let vip: IpAddr = "192.168.129.51".parse().unwrap();
    wait_until("the host holds 192.168.129.51", || {
        lan.host("kindhost").holds(vip)
    });
    let held = started.elapsed();
    assert!(
        !lan.host("kindhost")
            .holds("192.168.129.50".parse().unwrap()),
        "only the pinned address is taken from the pool: {}",
        lan.host("kindhost").addresses()
    );

    // UDP 4433 (QUIC's port) from another host, after ARP.
    let (reply, from) = udp_ask(beam, "192.168.129.51:4433", "initial")
        .unwrap_or_else(|e| panic!("UDP 4433 from beam00: {e}; log:\n{}", g.logs()));
    assert_eq!(from.to_string(), "192.168.129.51:4433");
    assert_eq!(reply, "bootstrap-quic got initial from 172.18.0.1");
    let neighbour = beam.neighbour(vip);
    assert!(
        neighbour.contains(&lan.host("kindhost").mac()),
        "beam00 resolved 192.168.129.51 to {neighbour:?}, not the host's MAC"
    );
    // TCP 80 on the same address.
    let body = run_in(
        beam,
        "curl",
        &["-sS", "--max-time", "5", "http://192.168.129.51/"],
    );
    assert_eq!(body.trim(), "bootstrap");
    let mut udp_ok = 0;
    for i in 0..20 {
        if udp_ask(beam, "192.168.129.51:4433", &format!("p{i}")).is_ok() {
            udp_ok += 1;
        }
    }
    assert_eq!(udp_ok, 20);
    let tcp_ok = beam
        .sh("for i in $(seq 20); do curl -s --max-time 5 http://192.168.129.51/; done")
        .lines()
        .filter(|l| *l == "bootstrap")
        .count();
    assert_eq!(tcp_ok, 20);

    // DNS: the name comes from the listeners.
    let a = dig(beam, "192.168.129.3", "bootstrap.macula.local", "A");
    assert_eq!(a, ["192.168.129.51"], "bootstrap.macula.local");
    println!(
        "seed 004: 192.168.129.51 held {} after start; beam00's neighbour entry: {neighbour}; \
         UDP 4433: {} datagram exchanges answered; TCP 80: {} HTTP requests served \
         ({body:?}); dig bootstrap.macula.local @192.168.129.3: {a:?}",
        ms(held),
        udp_ok + 1,
        tcp_ok + 1
    );
}

#[test]
fn seed_004_check_refuses_the_overlapping_pool() {
    let file = examples().join("seed-004-overlap.refused.yaml");
    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "check must refuse it:\n{text}");
    assert!(
        text.contains("pools `beam00` and `lan-pool` overlap (both hold 192.168.129.55)"),
        "{text}"
    );
    println!(
        "seed 004: gatehouse check on the overlapping pools: exit 1, {:?}",
        text.lines()
            .find(|l| l.contains("error"))
            .unwrap_or_default()
    );
}
