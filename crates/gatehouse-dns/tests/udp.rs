//! The UDP loop's batches (`recvmmsg`, then `sendmmsg`): bursts of queries sent all at once from
//! many client sockets, to an IPv4 and an IPv6 socket served by one thread, each get their own
//! answer; a query that waits for an upstream in the middle of a burst holds up no other; the
//! counters see every query; a stop ends the loop under constant load.
//!
//! The server runs in-process on a current-thread runtime (both sockets' loops on one thread,
//! so they share its batch headers) on a background thread.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gatehouse_config::{Cidr, DnsConfig, DnsRecord, DnsZone, RecordData, RecordSource, Soa};
use gatehouse_dns::Dns;
use hickory_proto::op::{Message, ResponseCode};
use tokio_util::sync::CancellationToken;

/// The server on 127.0.0.1 and ::1, UDP only, one thread.
struct Server {
    v4: SocketAddr,
    v6: SocketAddr,
    dns: Arc<Dns>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(config: DnsConfig) -> Server {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sockets = runtime.block_on(async {
            vec![
                tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
                tokio::net::UdpSocket::bind("[::1]:0").await.unwrap(),
            ]
        });
        let v4 = sockets[0].local_addr().unwrap();
        let v6 = sockets[1].local_addr().unwrap();
        let dns = Dns::new(Arc::new(config), Arc::new(|_: &str| true));
        let stop = CancellationToken::new();
        let thread = std::thread::spawn({
            let dns = Arc::clone(&dns);
            let stop = stop.clone();
            move || runtime.block_on(dns.serve(sockets, vec![], stop))
        });
        Server {
            v4,
            v6,
            dns,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the server; how long `serve` took to return.
    fn stop(&mut self) -> Duration {
        let started = Instant::now();
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `home.arpa` with a wildcard (every answer names its own question) and a TXT record too big
/// for UDP; names elsewhere go to `upstream`; 127.0.0.1 may recurse.
fn config(upstream: SocketAddr) -> DnsConfig {
    let record = |name: &str, data| DnsRecord {
        name: name.into(),
        ttl: 300,
        data,
        source: RecordSource::Static,
    };
    DnsConfig {
        listen: vec![],
        zones: vec![DnsZone {
            name: "home.arpa".into(),
            ttl: 3600,
            soa: Soa {
                mname: "ns1.home.arpa".into(),
                rname: "hostmaster.home.arpa".into(),
                serial: 1,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 60,
            },
            ns: vec!["ns1.home.arpa".into()],
            records: vec![
                record("*.home.arpa", RecordData::A(Ipv4Addr::new(10, 0, 0, 3))),
                record(
                    "big.home.arpa",
                    RecordData::Txt((0..6).map(|i| format!("{i}").repeat(250)).collect()),
                ),
            ],
        }],
        forwarders: vec![upstream],
        forward_zones: vec![],
        recursion_allow: vec![Cidr {
            addr: Ipv4Addr::LOCALHOST.into(),
            prefix: 32,
        }],
        cache_size: 100,
    }
}

/// A query packet: header (id, flags, one question) and the question (class IN).
fn packet(id: u16, flags: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p
}

/// What one client expects for a query it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Wildcard,
    Truncated,
    /// From 127.0.0.1: SERVFAIL once the silent upstream times out; from ::1: REFUSED at once.
    Forwarded,
}

/// One client socket's answers until `deadline` (or until it has `n`), each with the time it
/// came.
fn answers(socket: &UdpSocket, n: usize, deadline: Instant) -> Vec<(Message, Instant)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((len, _)) => got.push((Message::from_vec(&buf[..len]).unwrap(), Instant::now())),
            Err(_) => break,
        }
    }
    got
}

/// Clients on 127.0.0.1 and ::1 each send a burst of queries at once, before reading any
/// answer: wildcard names (each its own), a truncated answer, a response (dropped) and a
/// forwarded name whose upstream never answers. Every query gets its own answer, to the socket
/// that asked; the local ones do not wait for the forwarded ones; the counters add up.
#[test]
fn bursts_from_many_clients_each_get_their_own_answers() {
    // Holds a port and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let s = Server::start(config(silent.local_addr().unwrap()));

    const CLIENTS: usize = 6;
    const QUERIES: usize = 15;
    let mut clients = Vec::new();
    for (family, server) in [("v4", s.v4), ("v6", s.v6)] {
        for c in 0..CLIENTS {
            let bind = match server {
                SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            };
            clients.push((family, c, server, UdpSocket::bind(bind).unwrap()));
        }
    }

    // Every packet of every client first, interleaved: the server finds many waiting.
    let started = Instant::now();
    let mut expected: Vec<HashMap<u16, (String, Expect)>> = vec![HashMap::new(); clients.len()];
    let mut responses_sent = 0;
    for q in 0..QUERIES {
        for (i, (family, c, server, socket)) in clients.iter().enumerate() {
            let id = (i * 100 + q) as u16;
            let (name, qtype, expect) = match q {
                3 => ("big.home.arpa".to_owned(), 16, Some(Expect::Truncated)),
                7 => (
                    format!("q{q}.{family}.c{c}.example"),
                    1,
                    Some(Expect::Forwarded),
                ),
                11 => ("r.home.arpa".to_owned(), 1, None),
                _ => (
                    format!("q{q}.{family}.c{c}.home.arpa"),
                    1,
                    Some(Expect::Wildcard),
                ),
            };
            let flags = if expect.is_none() { 0x8000 } else { 0 };
            socket
                .send_to(&packet(id, flags, &name, qtype), server)
                .unwrap();
            match expect {
                Some(expect) => {
                    expected[i].insert(id, (name, expect));
                }
                None => responses_sent += 1,
            }
        }
    }

    // The local answers within a second (the upstream takes longer to time out), then the
    // forwarded ones.
    let mut local_answers = 0;
    let mut forwarded_answers = 0;
    for forwarded in [false, true] {
        let deadline = if forwarded {
            Instant::now() + Duration::from_secs(10)
        } else {
            started + Duration::from_secs(1)
        };
        for (i, (family, c, _, socket)) in clients.iter().enumerate() {
            let want = &mut expected[i];
            let waiting =
                |(_, expect): &(String, Expect)| *expect == Expect::Forwarded && *family == "v4";
            let n = want.values().filter(|e| waiting(e) == forwarded).count();
            for (message, at) in answers(socket, n, deadline) {
                let id = message.metadata.id;
                let Some((name, expect)) = want.remove(&id) else {
                    panic!("{family} client {c}: answer {id} is not one of its queries");
                };
                let question = message.queries[0].name().to_ascii();
                assert_eq!(question, format!("{name}."), "{family} client {c}, id {id}");
                let code = message.metadata.response_code;
                match expect {
                    Expect::Wildcard => {
                        assert_eq!(code, ResponseCode::NoError, "{name}");
                        assert_eq!(message.answers.len(), 1, "{name}");
                        local_answers += 1;
                    }
                    Expect::Truncated => {
                        assert!(message.metadata.truncation, "{name}");
                        assert!(message.answers.is_empty(), "{name}");
                        local_answers += 1;
                    }
                    Expect::Forwarded if *family == "v4" => {
                        assert_eq!(code, ResponseCode::ServFail, "{name}");
                        let waited = at - started;
                        assert!(waited >= Duration::from_secs(1), "{name}: {waited:?}");
                        forwarded_answers += 1;
                    }
                    Expect::Forwarded => {
                        // ::1 may not recurse.
                        assert_eq!(code, ResponseCode::Refused, "{name}");
                        local_answers += 1;
                    }
                }
            }
            let missing: Vec<_> = want.values().filter(|e| waiting(e) == forwarded).collect();
            assert!(
                missing.is_empty(),
                "{family} client {c}: no answer to {missing:?}"
            );
        }
    }
    assert_eq!(local_answers, 2 * CLIENTS * (QUERIES - 2) + CLIENTS);
    assert_eq!(forwarded_answers, CLIENTS);

    let answered: u64 = s.dns.stats().answers().iter().map(|&(_, _, n)| n).sum();
    assert_eq!(answered, (local_answers + forwarded_answers) as u64);
    assert_eq!(s.dns.stats().dropped_count(), responses_sent);
}

/// A stop ends the loop at once, even with queries arriving all the time.
#[test]
fn stops_under_constant_load() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = Server::start(config(silent.local_addr().unwrap()));

    let flooding = Arc::new(AtomicBool::new(true));
    let flood = |server: SocketAddr, bind: SocketAddr| {
        let flooding = Arc::clone(&flooding);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind(bind).unwrap();
            socket.set_nonblocking(true).unwrap();
            let query = packet(1, 0, "flood.home.arpa", 1);
            let mut buf = [0u8; 512];
            let mut sent = 0u64;
            while flooding.load(Ordering::Relaxed) {
                let _ = socket.send_to(&query, server);
                while socket.recv_from(&mut buf).is_ok() {}
                sent += 1;
            }
            sent
        })
    };
    let floods = [
        flood(s.v4, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        flood(s.v6, SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
    ];
    // Under load: answers have been counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s
        .dns
        .stats()
        .answers()
        .iter()
        .map(|&(_, _, n)| n)
        .sum::<u64>()
        < 1000
    {
        assert!(Instant::now() < deadline, "no answers under load");
        std::thread::yield_now();
    }

    let took = s.stop();
    flooding.store(false, Ordering::Relaxed);
    for f in floods {
        assert!(f.join().unwrap() > 0);
    }
    assert!(took < Duration::from_secs(1), "stop took {took:?}");
}
