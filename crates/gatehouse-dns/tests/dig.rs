//! The DNS server in-process on 127.0.0.1 (port 0, UDP and TCP on the same port), asked by the
//! real `dig` what a user would ask; forwarding goes to a real `dnsmasq` on 127.0.0.1 that
//! forwards nowhere (`--no-resolv`, no `--server`). Raw sockets for what `dig` cannot send.
//!
//! Each test has its own server: a tokio runtime on a background thread, stopped on drop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gatehouse_config::{
    Cidr, DnsConfig, DnsRecord, DnsZone, ForwardZone, RecordData, RecordSource, Soa,
};
use gatehouse_dns::{Dns, Health};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Harness

/// The server on 127.0.0.1, UDP and TCP on one port.
struct Server {
    port: u16,
    dns: Arc<Dns>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(config: DnsConfig, health: Health) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (udp, tcp) = runtime.block_on(async {
            // The UDP port's TCP twin may be taken: try a few ports.
            for _ in 0..20 {
                let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let port = udp.local_addr().unwrap().port();
                if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                    return (udp, tcp);
                }
            }
            panic!("no port free for both UDP and TCP");
        });
        let port = udp.local_addr().unwrap().port();
        let dns = Dns::new(Arc::new(config), health);
        let stop = CancellationToken::new();
        let thread = std::thread::spawn({
            let dns = Arc::clone(&dns);
            let stop = stop.clone();
            move || runtime.block_on(dns.serve(vec![udp], vec![tcp], stop))
        });
        Server {
            port,
            dns,
            stop,
            thread: Some(thread),
        }
    }

    /// `dig @127.0.0.1 -p PORT +time=2 +tries=1 ARGS...`, parsed.
    fn dig(&self, args: &[&str]) -> Dig {
        dig(self.port, args)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What dig printed, in parts.
#[derive(Debug)]
struct Dig {
    status: String,
    id: String,
    flags: Vec<String>,
    /// The `; EDNS:` line, if the answer had an OPT record.
    edns: Option<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    raw: String,
}

impl Dig {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The data of the answer records (the last field(s) after the type).
    fn answer_data(&self) -> Vec<String> {
        self.answer
            .iter()
            .map(|line| line.splitn(5, ' ').nth(4).unwrap_or_default().to_owned())
            .collect()
    }

    /// The TTL of the first answer record.
    fn first_ttl(&self) -> u32 {
        let line = self.answer.first().expect("an answer");
        line.split(' ').nth(1).unwrap().parse().unwrap()
    }
}

fn dig(port: u16, args: &[&str]) -> Dig {
    let port = port.to_string();
    let output = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port, "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs (Debian package bind9-dnsutils)");
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    parse(raw)
}

fn parse(raw: String) -> Dig {
    let mut dig = Dig {
        status: String::new(),
        id: String::new(),
        flags: Vec::new(),
        edns: None,
        answer: Vec::new(),
        authority: Vec::new(),
        raw: String::new(),
    };
    let mut section: Option<&str> = None;
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            dig.status = rest.split(',').next().unwrap_or_default().to_owned();
            dig.id = line
                .split("id: ")
                .nth(1)
                .unwrap_or_default()
                .trim()
                .to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap_or_default();
            dig.flags = flags.split_whitespace().map(str::to_owned).collect();
        } else if line.starts_with("; EDNS:") {
            dig.edns = Some(line.to_owned());
        } else if line == ";; ANSWER SECTION:" {
            section = Some("answer");
        } else if line == ";; AUTHORITY SECTION:" {
            section = Some("authority");
        } else if line.trim().is_empty() || line.starts_with(";;") {
            section = None;
        } else {
            let record = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                Some("answer") => dig.answer.push(record),
                Some("authority") => dig.authority.push(record),
                _ => {}
            }
        }
    }
    dig.raw = raw;
    dig
}

#[allow(clippy::disallowed_methods)]
fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// A free UDP port on 127.0.0.1 (free when this returns; good enough for a child process).
fn free_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// dnsmasq's `--txt-record` for `big.fwd.test`: six strings of 250 bytes, too big for UDP.
fn big_txt_record() -> String {
    let strings: Vec<String> = (0..6).map(|i| format!("{i}").repeat(250)).collect();
    format!("--txt-record=big.fwd.test,{}", strings.join(","))
}

/// dnsmasq on 127.0.0.1 answering `fwd.test` (and names under it) with 127.0.0.42, TTL 60,
/// and `big.fwd.test` with a big TXT record; it forwards nowhere. Killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    fn start() -> Dnsmasq {
        let port = free_port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--local-ttl=60",
                "--address=/fwd.test/127.0.0.42",
                &big_txt_record(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq runs");
        let started = Instant::now();
        while dig(port, &["fwd.test"]).status != "NOERROR" {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "dnsmasq did not start"
            );
            pause(50);
        }
        Dnsmasq {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Backend health the test flips.
#[derive(Clone, Default)]
struct Backends(Arc<HashMap<&'static str, AtomicBool>>);

impl Backends {
    fn new(names: &[&'static str]) -> Backends {
        Backends(Arc::new(
            names.iter().map(|&n| (n, AtomicBool::new(true))).collect(),
        ))
    }

    fn set(&self, name: &str, up: bool) {
        self.0[name].store(up, Ordering::SeqCst);
    }

    fn health(&self) -> Health {
        let map = Arc::clone(&self.0);
        Arc::new(move |name: &str| map.get(name).is_some_and(|b| b.load(Ordering::SeqCst)))
    }
}

fn all_up() -> Health {
    Arc::new(|_: &str| true)
}

// ---------------------------------------------------------------------------------------------
// The config

fn record(name: &str, data: RecordData) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        ttl: 300,
        data,
        source: RecordSource::Static,
    }
}

fn auto(name: &str, ip: Ipv4Addr, backend: &str) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        ttl: 5,
        data: RecordData::A(ip),
        source: RecordSource::Auto {
            listener: "gw/web".into(),
            backends: vec![backend.into()],
        },
    }
}

fn zone(name: &str, records: Vec<DnsRecord>) -> DnsZone {
    DnsZone {
        name: name.into(),
        ttl: 3600,
        soa: Soa {
            mname: format!("ns1.{name}"),
            rname: format!("hostmaster.{name}"),
            serial: 2024,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 60,
        },
        ns: vec![format!("ns1.{name}")],
        records,
    }
}

/// TXT strings adding up to about `total` bytes.
fn txt(total: usize) -> RecordData {
    RecordData::Txt(
        (0..total / 250)
            .map(|i| format!("{i}").repeat(250))
            .collect(),
    )
}

fn config() -> DnsConfig {
    let home = vec![
        record("www.home.arpa", RecordData::A(Ipv4Addr::new(10, 0, 0, 1))),
        record("www.home.arpa", RecordData::Txt(vec!["hello world".into()])),
        record(
            "v6.home.arpa",
            RecordData::Aaaa("2001:db8::1".parse().unwrap()),
        ),
        record("alias.home.arpa", RecordData::Cname("www.home.arpa".into())),
        record(
            "_http._tcp.home.arpa",
            RecordData::Srv {
                priority: 10,
                weight: 5,
                port: 8080,
                target: "www.home.arpa".into(),
            },
        ),
        record(
            "*.apps.home.arpa",
            RecordData::A(Ipv4Addr::new(10, 0, 0, 3)),
        ),
        record("own.apps.home.arpa", RecordData::Txt(vec!["own".into()])),
        auto("svc.home.arpa", Ipv4Addr::new(10, 1, 0, 1), "blue"),
        auto("svc.home.arpa", Ipv4Addr::new(10, 1, 0, 2), "green"),
        record("big.home.arpa", txt(1500)),
        record("mid.home.arpa", txt(750)),
    ];
    DnsConfig {
        listen: vec![],
        zones: vec![
            zone("home.arpa", home),
            zone(
                "lab.home.arpa",
                vec![record(
                    "www.lab.home.arpa",
                    RecordData::A(Ipv4Addr::new(10, 2, 0, 1)),
                )],
            ),
            zone(
                "10.in-addr.arpa",
                vec![record(
                    "99.0.0.10.in-addr.arpa",
                    RecordData::Ptr("printer.home.arpa".into()),
                )],
            ),
        ],
        forwarders: vec![],
        forward_zones: vec![],
        recursion_allow: vec![Cidr {
            addr: Ipv4Addr::LOCALHOST.into(),
            prefix: 32,
        }],
        cache_size: 100,
    }
}

fn forwarding_to(upstreams: &[SocketAddr]) -> DnsConfig {
    DnsConfig {
        forwarders: upstreams.to_vec(),
        ..config()
    }
}

// ---------------------------------------------------------------------------------------------
// Authoritative answers

#[test]
fn static_records() {
    let s = Server::start(config(), all_up());

    let a = s.dig(&["www.home.arpa", "A", "+norec"]);
    assert_eq!(a.status, "NOERROR", "{}", a.raw);
    assert!(a.has_flag("aa"), "{}", a.raw);
    assert_eq!(a.answer, ["www.home.arpa. 300 IN A 10.0.0.1"]);

    let aaaa = s.dig(&["v6.home.arpa", "AAAA", "+norec"]);
    assert_eq!(aaaa.answer_data(), ["2001:db8::1"]);

    // The CNAME, then its target's records.
    let cname = s.dig(&["alias.home.arpa", "A", "+norec"]);
    assert_eq!(
        cname.answer,
        [
            "alias.home.arpa. 300 IN CNAME www.home.arpa.",
            "www.home.arpa. 300 IN A 10.0.0.1"
        ]
    );
    assert!(cname.has_flag("aa"));

    let txt = s.dig(&["www.home.arpa", "TXT", "+norec"]);
    assert_eq!(txt.answer_data(), ["\"hello world\""]);

    let srv = s.dig(&["_http._tcp.home.arpa", "SRV", "+norec"]);
    assert_eq!(srv.answer_data(), ["10 5 8080 www.home.arpa."]);

    // Case does not matter, and the question keeps the client's.
    let upper = s.dig(&["WWW.Home.ARPA", "A", "+norec"]);
    assert_eq!(upper.answer_data(), ["10.0.0.1"]);
    assert!(upper.raw.contains(";WWW.Home.ARPA."), "{}", upper.raw);

    // The most specific zone wins.
    let lab = s.dig(&["www.lab.home.arpa", "A", "+norec"]);
    assert_eq!(lab.answer_data(), ["10.2.0.1"]);

    // Over TCP too.
    let tcp = s.dig(&["www.home.arpa", "A", "+norec", "+tcp"]);
    assert_eq!(tcp.answer_data(), ["10.0.0.1"]);

    // The client's query id comes back.
    let id = s.dig(&["www.home.arpa", "A", "+norec", "+qid=4242"]);
    assert_eq!(id.id, "4242");
}

#[test]
fn wildcards_and_negative_answers() {
    let s = Server::start(config(), all_up());

    let wild = s.dig(&["anything.apps.home.arpa", "A", "+norec"]);
    assert_eq!(wild.answer, ["anything.apps.home.arpa. 300 IN A 10.0.0.3"]);
    let deeper = s.dig(&["a.b.apps.home.arpa", "A", "+norec"]);
    assert_eq!(deeper.answer_data(), ["10.0.0.3"]);

    // A name with records of its own is not covered by the wildcard: NODATA.
    let own = s.dig(&["own.apps.home.arpa", "A", "+norec"]);
    assert_eq!(own.status, "NOERROR");
    assert!(own.answer.is_empty(), "{}", own.raw);
    assert!(
        own.authority[0].contains("IN SOA ns1.home.arpa."),
        "{}",
        own.raw
    );

    // NXDOMAIN with the zone's SOA, its TTL the negative one (min(ttl, minimum)).
    let nx = s.dig(&["nothing.home.arpa", "A", "+norec"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.raw);
    assert!(nx.has_flag("aa"));
    assert!(nx.answer.is_empty());
    assert_eq!(
        nx.authority,
        ["home.arpa. 60 IN SOA ns1.home.arpa. hostmaster.home.arpa. 2024 3600 600 86400 60"]
    );

    // NODATA: the name exists, the type does not.
    let nodata = s.dig(&["www.home.arpa", "AAAA", "+norec"]);
    assert_eq!(nodata.status, "NOERROR");
    assert!(nodata.answer.is_empty());
    assert_eq!(nodata.authority.len(), 1);
    assert!(nodata.authority[0].starts_with("home.arpa. 60 IN SOA"));

    // The apex: SOA and NS.
    let soa = s.dig(&["home.arpa", "SOA", "+norec"]);
    assert_eq!(
        soa.answer,
        ["home.arpa. 3600 IN SOA ns1.home.arpa. hostmaster.home.arpa. 2024 3600 600 86400 60"]
    );
    let ns = s.dig(&["home.arpa", "NS", "+norec"]);
    assert_eq!(ns.answer, ["home.arpa. 3600 IN NS ns1.home.arpa."]);
    assert!(ns.has_flag("aa"));
}

#[test]
fn reverse_lookups() {
    let s = Server::start(config(), all_up());
    // A static PTR.
    let printer = s.dig(&["-x", "10.0.0.99", "+norec"]);
    assert_eq!(printer.answer_data(), ["printer.home.arpa."]);
    // From the zones' addresses, in a zone that covers the reverse name...
    let www = s.dig(&["-x", "10.0.0.1", "+norec"]);
    assert_eq!(www.answer_data(), ["www.home.arpa."], "{}", www.raw);
    assert!(www.has_flag("aa"));
    // ... and where no zone covers it.
    let v6 = s.dig(&["-x", "2001:db8::1", "+norec"]);
    assert_eq!(v6.status, "NOERROR", "{}", v6.raw);
    assert_eq!(v6.answer_data(), ["v6.home.arpa."]);
    // An address nobody has, in a zone: NXDOMAIN.
    let none = s.dig(&["-x", "10.9.9.9", "+norec"]);
    assert_eq!(none.status, "NXDOMAIN");
}

#[test]
fn health_aware_answers() {
    let backends = Backends::new(&["blue", "green"]);
    let s = Server::start(config(), backends.health());
    let addresses = || {
        let mut a = s.dig(&["svc.home.arpa", "A", "+norec"]).answer_data();
        a.sort();
        a
    };
    assert_eq!(addresses(), ["10.1.0.1", "10.1.0.2"]);
    let ttl = s.dig(&["svc.home.arpa", "A", "+norec"]).first_ttl();
    assert_eq!(ttl, 5, "automatic records keep their own (short) TTL");

    backends.set("blue", false);
    assert_eq!(addresses(), ["10.1.0.2"]);

    backends.set("blue", true);
    backends.set("green", false);
    assert_eq!(addresses(), ["10.1.0.1"]);

    // None healthy: all of them, never an empty answer.
    backends.set("blue", false);
    assert_eq!(addresses(), ["10.1.0.1", "10.1.0.2"]);

    // Static records do not care.
    let www = s.dig(&["www.home.arpa", "A", "+norec"]);
    assert_eq!(www.answer_data(), ["10.0.0.1"]);
}

#[test]
fn reload_adds_a_name() {
    let s = Server::start(config(), all_up());
    assert_eq!(s.dig(&["new.home.arpa", "A", "+norec"]).status, "NXDOMAIN");

    let mut next = config();
    next.zones[0].records.push(record(
        "new.home.arpa",
        RecordData::A(Ipv4Addr::new(10, 0, 0, 7)),
    ));
    s.dns.update(Arc::new(next));

    let new = s.dig(&["new.home.arpa", "A", "+norec"]);
    assert_eq!(new.status, "NOERROR");
    assert_eq!(new.answer_data(), ["10.0.0.7"]);
    // And its reverse name.
    assert_eq!(s.dig(&["-x", "10.0.0.7"]).answer_data(), ["new.home.arpa."]);
}

#[test]
fn any_is_minimal() {
    // RFC 8482: one RRset of the name, not all of them.
    let s = Server::start(config(), all_up());
    let www = s.dig(&["www.home.arpa", "ANY", "+norec"]);
    assert_eq!(www.status, "NOERROR");
    assert_eq!(
        www.answer,
        ["www.home.arpa. 300 IN A 10.0.0.1"],
        "{}",
        www.raw
    );
    let apex = s.dig(&["home.arpa", "ANY", "+norec"]);
    assert_eq!(apex.answer.len(), 1, "{}", apex.raw);
    assert!(apex.answer[0].contains(" IN SOA "));
}

// ---------------------------------------------------------------------------------------------
// Forwarding

#[test]
fn forwarding_and_cache() {
    let upstream = Dnsmasq::start();
    let upstream_addr = upstream.addr;
    let s = Server::start(forwarding_to(&[upstream_addr]), all_up());

    let first = s.dig(&["fwd.test", "A", "+qid=777"]);
    assert_eq!(first.status, "NOERROR", "{}", first.raw);
    assert_eq!(first.id, "777");
    assert!(first.has_flag("ra"), "{}", first.raw);
    assert!(!first.has_flag("aa"), "{}", first.raw);
    assert_eq!(first.answer_data(), ["127.0.0.42"]);
    let ttl = first.first_ttl();
    assert!((59..=60).contains(&ttl), "{ttl}");

    // Too big for UDP from dnsmasq (TC): asked again over TCP, cached whole; too big for
    // UDP to dig too, which asks again over TCP and gets it from the cache.
    let big = s.dig(&["big.fwd.test", "TXT"]);
    assert_eq!(big.status, "NOERROR", "{}", big.raw);
    assert!(
        big.raw.contains("Truncated, retrying in TCP mode"),
        "{}",
        big.raw
    );
    assert_eq!(big.answer.len(), 1, "{}", big.raw);
    assert_eq!(
        big.answer_data()[0].matches("\" \"").count(),
        5,
        "6 strings"
    );

    // With the upstream gone, the cached answer still comes, its TTL going down.
    drop(upstream);
    pause(1100);
    let cached = s.dig(&["fwd.test", "A"]);
    assert_eq!(cached.status, "NOERROR", "{}", cached.raw);
    assert_eq!(cached.answer_data(), ["127.0.0.42"]);
    assert!(
        cached.first_ttl() < ttl,
        "{} then {}",
        ttl,
        cached.first_ttl()
    );

    // A name never asked: nobody answers it, SERVFAIL (with RA).
    let failed = s.dig(&["other.fwd.test", "A"]);
    assert_eq!(failed.status, "SERVFAIL", "{}", failed.raw);
    assert!(failed.has_flag("ra"));

    // A reload that keeps the forwarders keeps the cache...
    let mut same = forwarding_to(&[upstream_addr]);
    same.zones[0].records.push(record(
        "new.home.arpa",
        RecordData::A(Ipv4Addr::new(10, 0, 0, 7)),
    ));
    s.dns.update(Arc::new(same));
    assert_eq!(s.dig(&["fwd.test", "A"]).answer_data(), ["127.0.0.42"]);
    assert_eq!(s.dig(&["new.home.arpa", "A"]).answer_data(), ["10.0.0.7"]);

    // ... one that changes them empties it.
    let unused = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    s.dns.update(Arc::new(forwarding_to(&[unused])));
    assert_eq!(s.dig(&["fwd.test", "A"]).status, "SERVFAIL");
}

#[test]
fn forward_zones_and_failover() {
    let upstream = Dnsmasq::start();
    // Holds a port and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let mut cfg = forwarding_to(&[silent_addr]);
    cfg.forward_zones = vec![ForwardZone {
        zone: "fwd.test".into(),
        to: vec![upstream.addr],
    }];
    let s = Server::start(cfg, all_up());

    // The forward zone's resolver, not the (silent) forwarders.
    let started = Instant::now();
    let fwd = s.dig(&["www.fwd.test", "A"]);
    assert_eq!(fwd.answer_data(), ["127.0.0.42"], "{}", fwd.raw);
    assert!(started.elapsed() < Duration::from_secs(1));

    // Other names go to the forwarders: no answer within the timeout, SERVFAIL.
    let started = Instant::now();
    let other = s.dig(&["example.test", "A"]);
    assert_eq!(other.status, "SERVFAIL", "{}", other.raw);
    assert!(started.elapsed() >= Duration::from_millis(1400));

    // Each forwarder in turn: the silent one times out, the next answers.
    s.dns
        .update(Arc::new(forwarding_to(&[silent_addr, upstream.addr])));
    let started = Instant::now();
    let second = s.dig(&["fwd.test", "A"]);
    assert_eq!(second.answer_data(), ["127.0.0.42"], "{}", second.raw);
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

#[test]
fn recursion_only_for_allowed_clients() {
    let upstream = Dnsmasq::start();
    let s = Server::start(forwarding_to(&[upstream.addr]), all_up());

    // 127.0.0.2 is outside recursion_allow (127.0.0.1/32).
    let refused = s.dig(&["-b", "127.0.0.2", "fwd.test", "A"]);
    assert_eq!(refused.status, "REFUSED", "{}", refused.raw);
    assert!(!refused.has_flag("ra"), "{}", refused.raw);
    // Local names are answered to anyone, without RA.
    let local = s.dig(&["-b", "127.0.0.2", "www.home.arpa", "A"]);
    assert_eq!(local.answer_data(), ["10.0.0.1"]);
    assert!(!local.has_flag("ra"));
    // 127.0.0.1 may recurse.
    let allowed = s.dig(&["fwd.test", "A"]);
    assert_eq!(allowed.answer_data(), ["127.0.0.42"]);
    assert!(s.dig(&["www.home.arpa", "A"]).has_flag("ra"));
}

#[test]
fn no_forwarders_refused() {
    let s = Server::start(config(), all_up());
    let refused = s.dig(&["example.test", "A"]);
    assert_eq!(refused.status, "REFUSED", "{}", refused.raw);
    assert!(!refused.has_flag("ra"));
}

// ---------------------------------------------------------------------------------------------
// Protocol hygiene

#[test]
fn edns() {
    let s = Server::start(config(), all_up());

    // dig sends EDNS by default: an OPT record comes back with our size.
    let plain = s.dig(&["www.home.arpa", "+norec"]);
    assert_eq!(plain.answer_data(), ["10.0.0.1"]);
    let opt = plain
        .edns
        .as_deref()
        .unwrap_or_else(|| panic!("{}", plain.raw));
    assert!(
        opt.contains("version: 0") && opt.contains("udp: 1232"),
        "{opt}"
    );

    // Without EDNS, no OPT.
    let none = s.dig(&["www.home.arpa", "+norec", "+noedns"]);
    assert_eq!(none.answer_data(), ["10.0.0.1"]);
    assert!(none.edns.is_none(), "{}", none.raw);

    let zero = s.dig(&["www.home.arpa", "+norec", "+edns=0"]);
    assert_eq!(zero.answer_data(), ["10.0.0.1"]);
    assert!(zero.edns.is_some());

    // EDNS version 100: BADVERS, with an OPT record (version 0).
    let badvers = s.dig(&["www.home.arpa", "+norec", "+edns=100", "+noednsnegotiation"]);
    assert_eq!(badvers.status, "BADVERS", "{}", badvers.raw);
    assert!(badvers.answer.is_empty());
    assert!(
        badvers
            .edns
            .as_deref()
            .is_some_and(|e| e.contains("version: 0"))
    );

    // Unknown options and flags are ignored (and not echoed); DO is accepted and copied.
    let option = s.dig(&["www.home.arpa", "+norec", "+ednsopt=65000:abcd"]);
    assert_eq!(option.status, "NOERROR", "{}", option.raw);
    assert_eq!(option.answer_data(), ["10.0.0.1"]);
    let got = option.raw.split(";; Got answer:").nth(1).unwrap();
    assert!(!got.contains("65000"), "{}", option.raw);

    let flag = s.dig(&["www.home.arpa", "+norec", "+ednsflags=0x10"]);
    assert_eq!(flag.answer_data(), ["10.0.0.1"]);
    assert!(!flag.raw.contains("MBZ"), "{}", flag.raw);

    let dnssec = s.dig(&["www.home.arpa", "+norec", "+dnssec"]);
    assert_eq!(dnssec.answer_data(), ["10.0.0.1"]);
    assert!(
        dnssec
            .edns
            .as_deref()
            .is_some_and(|e| e.contains("flags: do;")),
        "{}",
        dnssec.raw
    );
}

#[test]
fn truncation_and_tcp_retry() {
    let s = Server::start(config(), all_up());

    // 1500 bytes of TXT do not fit 512, nor 1232 whatever the client says: TC, no records.
    for bufsize in ["+bufsize=512", "+bufsize=4096"] {
        let tc = s.dig(&["big.home.arpa", "TXT", "+norec", bufsize, "+ignore"]);
        assert!(tc.has_flag("tc"), "{bufsize}: {}", tc.raw);
        assert!(tc.answer.is_empty(), "{}", tc.raw);
        assert!(tc.edns.is_some(), "the OPT record stays");
    }
    // dig retries over TCP after TC and gets all of it.
    let full = s.dig(&["big.home.arpa", "TXT", "+norec", "+bufsize=512"]);
    assert!(
        full.raw.contains("Truncated, retrying in TCP mode"),
        "{}",
        full.raw
    );
    assert!(!full.has_flag("tc"));
    assert_eq!(full.answer.len(), 1);
    assert_eq!(
        full.answer_data()[0].matches("\" \"").count(),
        5,
        "6 strings"
    );

    // 750 bytes: too big without EDNS (512), fine with dig's default 1232.
    let plain = s.dig(&["mid.home.arpa", "TXT", "+norec", "+noedns", "+ignore"]);
    assert!(plain.has_flag("tc"), "{}", plain.raw);
    let edns = s.dig(&["mid.home.arpa", "TXT", "+norec", "+ignore"]);
    assert!(!edns.has_flag("tc"), "{}", edns.raw);
    assert_eq!(edns.answer.len(), 1);
}

#[test]
fn notimp_for_other_opcodes() {
    let s = Server::start(config(), all_up());
    let status = s.dig(&["www.home.arpa", "+norec", "+opcode=status"]);
    assert_eq!(status.status, "NOTIMP", "{}", status.raw);
    let notify = s.dig(&["www.home.arpa", "+norec", "+opcode=notify"]);
    assert_eq!(notify.status, "NOTIMP", "{}", notify.raw);
}

#[test]
fn only_class_in() {
    let s = Server::start(config(), all_up());
    let chaos = s.dig(&["version.bind", "TXT", "CH", "+norec"]);
    assert_eq!(chaos.status, "REFUSED", "{}", chaos.raw);
}

/// A query packet: header (id, flags, one count per question) and the questions (class IN).
fn packet(id: u16, flags: u16, questions: &[(&str, u16)]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&(questions.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for (name, qtype) in questions {
        for label in name.split('.') {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
    }
    p
}

/// Sends `packet` over UDP from 127.0.0.1; the answer, if one comes within `wait`.
fn exchange(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(packet, server).unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn rcode(answer: &[u8]) -> u8 {
    answer[3] & 0x0f
}

#[test]
fn raw_packets() {
    let s = Server::start(config(), all_up());
    let quiet = Duration::from_millis(300);

    // A well-formed query, for comparison.
    let ok = exchange(s.addr(), &packet(1, 0x0000, &[("www.home.arpa", 1)]), quiet).unwrap();
    assert_eq!(&ok[..2], &[0, 1]);
    assert_eq!(ok[2] & 0x80, 0x80, "QR");
    assert_eq!(rcode(&ok), 0);

    // A response (QR=1) is never answered, well-formed or not.
    let response = packet(2, 0x8000, &[("www.home.arpa", 1)]);
    assert_eq!(exchange(s.addr(), &response, quiet), None);
    let mut broken_response = response.clone();
    broken_response.truncate(16);
    assert_eq!(exchange(s.addr(), &broken_response, quiet), None);

    // Shorter than a header: dropped.
    assert_eq!(exchange(s.addr(), &[0x12, 0x34, 0x01], quiet), None);

    // A header and garbage: FORMERR, same id.
    let mut garbage = packet(3, 0x0100, &[("www.home.arpa", 1)]);
    garbage.truncate(20);
    let formerr = exchange(s.addr(), &garbage, quiet).unwrap();
    assert_eq!(&formerr[..2], &[0, 3]);
    assert_eq!(rcode(&formerr), 1, "FORMERR");

    // Two questions: FORMERR.
    let two = packet(4, 0x0000, &[("www.home.arpa", 1), ("v6.home.arpa", 28)]);
    let formerr = exchange(s.addr(), &two, quiet).unwrap();
    assert_eq!(rcode(&formerr), 1, "FORMERR");

    // No question: FORMERR.
    let formerr = exchange(s.addr(), &packet(5, 0, &[]), quiet).unwrap();
    assert_eq!(rcode(&formerr), 1, "FORMERR");

    // Opcode 2 (STATUS): NOTIMP.
    let status = exchange(
        s.addr(),
        &packet(6, 2 << 11, &[("www.home.arpa", 1)]),
        quiet,
    )
    .unwrap();
    assert_eq!(rcode(&status), 4, "NOTIMP");

    // Unknown header flag (Z) ignored.
    let z = exchange(s.addr(), &packet(7, 0x0040, &[("www.home.arpa", 1)]), quiet).unwrap();
    assert_eq!(rcode(&z), 0);
    assert_eq!(z[3] & 0x40, 0, "Z stays clear in answers");

    // Still serving.
    assert!(exchange(s.addr(), &packet(8, 0, &[("www.home.arpa", 1)]), quiet).is_some());
}
