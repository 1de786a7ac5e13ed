//! Whole instances (`gatehouse_vrrp::instance`) against a real kernel and against keepalived,
//! in network namespaces created here and deleted on drop (also when a test fails): a switch
//! namespace holding a bridge, and a namespace per host joined to it by a veth pair, with
//! 192.0.2.0/24 and 2001:db8::/64 and no route out. Needs root and `ip`; the keepalived tests
//! need `/usr/sbin/keepalived` (they are skipped, loudly, without it).
//!
//! Each host runs its instance and a tiny TCP server (port 8080, answers its own name) on a
//! thread inside its namespace (`support::Netns::spawn`); a client namespace connects to the
//! virtual address every 10 ms to see the outage window of each failover. Takeover times are
//! measured from the test's action (stop, crash...) to the `since` of the new master's status,
//! and printed (`cargo test -- --nocapture`).
//!
//! Timing: advert interval 100 ms, so Master_Down_Interval is 341 ms at priority 150 and
//! 361 ms at 100, Skew_Time 41 ms and 61 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gatehouse_config::{Announce, InterfaceMatch, VrrpChecksum, VrrpInstance};
use gatehouse_vrrp::instance::{self, AddressChangeError, InstanceState, Status};
use gatehouse_vrrp::net::{Family, VrrpSocket};
use gatehouse_vrrp::packet::{self, PacketError};
use gatehouse_vrrp::state::{master_down_interval, skew_time};
use support::{Netns, join, sleep};
use tokio::sync::{mpsc as tokio_mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// The host side of every veth pair.
const IF: &str = "eth0";
const INTERVAL: Duration = Duration::from_millis(100);
const VRID: u8 = 51;
const PORT: u16 = 8080;
/// How long anything that should happen may take.
const PATIENCE: Duration = Duration::from_secs(5);
const KEEPALIVED: &str = "/usr/sbin/keepalived";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The tests measure timings in tens of milliseconds: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------
// Topology

/// A host on the switch: its namespace and its number (192.0.2.N, 2001:db8::N on `eth0`).
struct Host {
    ns: Netns,
    name: &'static str,
    n: u8,
}

impl Host {
    fn v4(&self) -> IpAddr {
        ip(&format!("192.0.2.{}", self.n))
    }

    /// Whether `addr` is on `eth0` (and, IPv6, not tentative).
    fn holds(&self, addr: IpAddr) -> bool {
        let out = self.ns.ip(&["-o", "addr", "show", "dev", IF]);
        out.lines()
            .any(|l| l.contains(&format!(" {addr}/")) && !l.contains("tentative"))
    }

    fn addresses(&self) -> String {
        self.ns.ip(&["-br", "addr", "show", "dev", IF])
    }
}

/// A switch (a bridge in a namespace of its own) and hosts on it.
struct Lan {
    hosts: Vec<Host>,
    _switch: Netns,
}

impl Lan {
    fn new(hosts: &[(&'static str, u8)]) -> Lan {
        let switch = Netns::new();
        // Multicast snooping off: the bridge floods 224.0.0.18 and ff02::12 like a hub.
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        switch.ip(&["link", "set", "br0", "up"]);
        let hosts: Vec<Host> = hosts
            .iter()
            .map(|&(name, n)| {
                let ns = Netns::new();
                ns.sh(
                    "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
                );
                let port = format!("p{n}");
                switch.ip(&[
                    "link",
                    "add",
                    &port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    IF,
                    "netns",
                    ns.name(),
                ]);
                switch.ip(&["link", "set", &port, "master", "br0", "up"]);
                ns.ip(&["addr", "add", &format!("192.0.2.{n}/24"), "dev", IF]);
                ns.ip(&[
                    "addr",
                    "add",
                    &format!("2001:db8::{n}/64"),
                    "dev",
                    IF,
                    "nodad",
                ]);
                ns.ip(&["link", "set", IF, "up"]);
                Host { ns, name, n }
            })
            .collect();
        for host in &hosts {
            host.ns.link_local(IF);
        }
        Lan {
            hosts,
            _switch: switch,
        }
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Gatehouse nodes

fn config(name: &str, vip: (IpAddr, u8), priority: u8) -> VrrpInstance {
    VrrpInstance {
        name: name.to_owned(),
        interface: InterfaceMatch::Name(IF.to_owned()),
        vrid: VRID,
        priority,
        advert_interval: INTERVAL,
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: vec![vip],
        unicast_peers: vec![],
        checksum: VrrpChecksum::Rfc5798,
        announce: Announce {
            count: 2,
            interval: Duration::from_millis(20),
            repeat_after: Some(Duration::from_secs(1)),
        },
        track: vec![],
    }
}

/// A new address list for a node's instance, and where to say how it went.
type AddressChange = (
    Vec<(IpAddr, u8)>,
    mpsc::Sender<Result<(), AddressChangeError>>,
);

/// One instance running in a host's namespace, with the host's TCP server.
struct Node {
    name: &'static str,
    status: watch::Receiver<Status>,
    priority: watch::Sender<u8>,
    addresses: tokio_mpsc::UnboundedSender<AddressChange>,
    stop: CancellationToken,
    crash: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn start(host: &Host, config: VrrpInstance) -> Node {
        let (priority_tx, priority_rx) = watch::channel(config.priority);
        let stop = CancellationToken::new();
        let (crash_tx, crash_rx) = oneshot::channel::<()>();
        let (status_tx, status_rx) = mpsc::channel();
        let (addresses_tx, mut addresses_rx) = tokio_mpsc::unbounded_channel::<AddressChange>();
        let name = host.name;
        let token = stop.clone();
        let thread = host.ns.spawn(move || async move {
            let server = tokio::spawn(serve(name));
            let handle = instance::spawn(Arc::new(config), priority_rx, token.clone());
            status_tx.send(handle.status()).unwrap();
            let mut crash_rx = crash_rx;
            loop {
                tokio::select! {
                    // A crash: no hand-over, the runtime (sockets, server) goes with the thread.
                    _ = &mut crash_rx => {
                        handle.abort();
                        server.abort();
                        return;
                    }
                    Some((list, done)) = addresses_rx.recv() => {
                        let _ = done.send(handle.set_addresses(list));
                    }
                    () = token.cancelled() => break,
                }
            }
            handle.join().await.unwrap();
            server.abort();
        });
        let status = status_rx.recv_timeout(PATIENCE).unwrap();
        Node {
            name,
            status,
            priority: priority_tx,
            addresses: addresses_tx,
            stop,
            crash: Some(crash_tx),
            thread: Some(thread),
        }
    }

    fn now(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits until the status satisfies `want`.
    fn wait(&self, what: &str, want: impl Fn(&Status) -> bool) -> Status {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.now();
            if want(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: waited for {what}; now {status:?}",
                self.name
            );
            sleep(Duration::from_millis(2));
        }
    }

    fn wait_state(&self, state: InstanceState) -> Status {
        self.wait(&format!("{state}"), |s| s.state == state)
    }

    /// Clean stop: returns when it was asked.
    fn stop(mut self) -> Instant {
        let at = Instant::now();
        self.stop.cancel();
        join(self.thread.take().unwrap());
        at
    }

    /// Crash: returns when it happened.
    fn crash(mut self) -> Instant {
        let at = Instant::now();
        let _ = self.crash.take().unwrap().send(());
        join(self.thread.take().unwrap());
        at
    }

    fn set_priority(&self, p: u8) -> Instant {
        let at = Instant::now();
        self.priority.send_replace(p);
        at
    }

    /// `InstanceHandle::set_addresses` on the running instance.
    fn set_addresses(&self, list: &[(IpAddr, u8)]) -> Result<(), AddressChangeError> {
        let (done_tx, done_rx) = mpsc::channel();
        self.addresses.send((list.to_vec(), done_tx)).unwrap();
        done_rx.recv_timeout(PATIENCE).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers every connection on port 8080 with the host's name.
async fn serve(name: &'static str) {
    let listener = tokio::net::TcpListener::bind(("::", PORT)).await.unwrap();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if stream.writable().await.is_ok() {
                let _ = stream.try_write(name.as_bytes());
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// The client

struct Probe {
    at: Instant,
    answer: Option<String>,
}

/// Connects to `target` every 10 ms from the client's namespace.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Probe>>>,
}

impl Prober {
    fn start(client: &Host, target: SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = client.ns.spawn(move || async move {
            let mut probes = Vec::new();
            let mut tasks = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !flag.load(Ordering::SeqCst) {
                tick.tick().await;
                let at = Instant::now();
                tasks.spawn(async move {
                    let answer = tokio::time::timeout(Duration::from_millis(300), ask(target))
                        .await
                        .ok()
                        .flatten();
                    Probe { at, answer }
                });
                while let Some(done) = tasks.try_join_next() {
                    probes.push(done.unwrap());
                }
            }
            while let Some(done) = tasks.join_next().await {
                probes.push(done.unwrap());
            }
            probes.sort_by_key(|p| p.at);
            probes
        });
        Prober {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Probe> {
        self.stop.store(true, Ordering::SeqCst);
        join(self.thread.take().unwrap())
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn ask(target: SocketAddr) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(target).await.ok()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        stream.readable().await.ok()?;
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        if !answer.is_empty() {
            break;
        }
    }
    // A connection closed without a word (a server dying mid-answer) is no answer.
    (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}

/// The longest stretch without an answer among the probes sent in `[from, to)`: from the
/// last answered probe before it (possibly before `from`) to the first answered one after,
/// with who answered.
fn outage(probes: &[Probe], from: Instant, to: Instant) -> Option<(Duration, String, String)> {
    let window: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.at >= from && p.at < to)
        .collect();
    let mut best: Option<(Duration, String, String)> = None;
    let mut last_ok: Option<&Probe> = probes
        .iter()
        .rev()
        .find(|p| p.at < from && p.answer.is_some());
    let mut failing = false;
    for p in &window {
        match (&p.answer, failing) {
            (None, _) => failing = true,
            (Some(now), true) => {
                if let Some(before) = last_ok {
                    let gap = p.at - before.at;
                    if best.as_ref().is_none_or(|(g, _, _)| gap > *g) {
                        best = Some((gap, before.answer.clone().unwrap(), now.clone()));
                    }
                }
                failing = false;
                last_ok = Some(p);
            }
            (Some(_), false) => last_ok = Some(p),
        }
    }
    best
}

fn print_outage(label: &str, probes: &[Probe], from: Instant, to: Instant) {
    let sent = probes.iter().filter(|p| p.at >= from && p.at < to).count();
    let failed = probes
        .iter()
        .filter(|p| p.at >= from && p.at < to && p.answer.is_none())
        .count();
    let mut answers: Vec<String> = probes
        .iter()
        .filter(|p| p.at >= from && p.at < to)
        .map(|p| p.answer.clone().unwrap_or_else(|| "-".to_owned()))
        .collect();
    answers.dedup();
    println!("{label}: answers in order: {}", answers.join(" "));
    match outage(probes, from, to) {
        Some((gap, before, after)) => println!(
            "{label}: client outage window {} ({failed} of {sent} probes unanswered; {before} answered before, {after} after)",
            ms(gap)
        ),
        None => println!("{label}: client saw no outage ({sent} probes)"),
    }
}

// ---------------------------------------------------------------------------------------
// Gatehouse against Gatehouse

#[test]
fn ipv4_election_clean_stop_crash_and_preemption() {
    let _serial = serial();
    let lan = Lan::new(&[("a", 1), ("b", 2), ("client", 9)]);
    let (a, b, client) = (lan.host("a"), lan.host("b"), lan.host("client"));
    let vip = ip("192.0.2.100");

    let na = Node::start(a, config("a", (vip, 24), 150));
    let nb = Node::start(b, config("b", (vip, 24), 100));
    let sa = na.wait_state(InstanceState::Master);
    let sb = nb.wait("backup following a", |s| {
        s.state == InstanceState::Backup && s.master == Some(a.v4())
    });
    println!(
        "a: {} ({}); b: {} following {:?}",
        sa.state, sa.reason, sb.state, sb.master
    );
    assert!(a.holds(vip), "a holds the VIP: {}", a.addresses());
    assert!(!b.holds(vip), "b does not: {}", b.addresses());
    assert_eq!(na.now().master, Some(a.v4()));

    let prober = Prober::start(client, SocketAddr::new(vip, PORT));
    sleep(Duration::from_millis(300));

    // Clean stop: a sends priority 0, b takes over after its skew time.
    let t_stop = na.stop();
    let sb = nb.wait_state(InstanceState::Master);
    let took = sb.since - t_stop;
    println!(
        "clean stop of the master: b master after {} (Skew_Time {}): {}",
        ms(took),
        ms(skew_time(100, INTERVAL)),
        sb.reason
    );
    assert!(
        sb.reason.contains("priority 0 from master 192.0.2.1"),
        "{}",
        sb.reason
    );
    assert!(took < master_down_interval(100, INTERVAL), "{took:?}");
    assert!(
        b.holds(vip) && !a.holds(vip),
        "a: {} b: {}",
        a.addresses(),
        b.addresses()
    );
    sleep(Duration::from_millis(500));
    let t_after_stop = Instant::now();

    // a comes back with the higher priority: preempts after its Master_Down_Interval.
    let t_back = Instant::now();
    let na = Node::start(a, config("a", (vip, 24), 150));
    let sa = na.wait_state(InstanceState::Master);
    let sb = nb.wait_state(InstanceState::Backup);
    println!(
        "a restarted: master after {} (Master_Down_Interval {}); b: {}",
        ms(sa.since - t_back),
        ms(master_down_interval(150, INTERVAL)),
        sb.reason
    );
    assert_eq!(sb.reason, "higher priority 150 from 192.0.2.1");
    assert!(
        a.holds(vip) && !b.holds(vip),
        "a: {} b: {}",
        a.addresses(),
        b.addresses()
    );
    sleep(Duration::from_millis(500));

    // Crash: no priority 0; b takes over after Master_Down_Interval from a's last advert.
    let t_crash = na.crash();
    let sb = nb.wait_state(InstanceState::Master);
    let took = sb.since - t_crash;
    let mdi = master_down_interval(100, INTERVAL);
    println!(
        "crash of the master: b master after {} (Master_Down_Interval {}, minus up to one advert interval): {}",
        ms(took),
        ms(mdi),
        sb.reason
    );
    assert_eq!(sb.reason, "master down timer expired");
    assert!(
        took + INTERVAL + Duration::from_millis(20) >= mdi,
        "{took:?}"
    );
    assert!(took < mdi + Duration::from_millis(250), "{took:?}");
    // The crashed node's kernel still has the address (nobody removed it).
    assert!(a.holds(vip), "{}", a.addresses());
    sleep(Duration::from_millis(500));
    let t_after_crash = Instant::now();

    // Restarted, a removes the leftover as it enters Backup, then preempts.
    let na = Node::start(a, config("a", (vip, 24), 150));
    na.wait_state(InstanceState::Master);
    nb.wait_state(InstanceState::Backup);
    assert!(a.holds(vip) && !b.holds(vip));
    sleep(Duration::from_millis(300));

    let probes = prober.finish();
    print_outage("clean stop", &probes, t_stop, t_after_stop);
    print_outage("crash", &probes, t_crash, t_after_crash);
    let (stop_gap, before, after) = outage(&probes, t_stop, t_after_stop).expect("an outage");
    assert_eq!((before.as_str(), after.as_str()), ("a", "b"));
    let (crash_gap, _, after) = outage(&probes, t_crash, t_after_crash).expect("an outage");
    assert_eq!(after, "b");
    assert!(
        stop_gap < crash_gap,
        "clean stop {stop_gap:?}, crash {crash_gap:?}"
    );
    let counters = nb.now().counters;
    println!("b's counters: {counters:?}");
    assert_eq!(
        counters.invalid + counters.bad_ttl + counters.address_mismatch,
        0
    );

    // Stopping both leaves no address anywhere.
    na.stop();
    nb.stop();
    assert!(
        !a.holds(vip) && !b.holds(vip),
        "a: {} b: {}",
        a.addresses(),
        b.addresses()
    );
}

#[test]
fn ipv4_priority_zero_hands_over_and_never_takes_back() {
    let _serial = serial();
    let lan = Lan::new(&[("a", 1), ("b", 2)]);
    let (a, b) = (lan.host("a"), lan.host("b"));
    let vip = ip("192.0.2.100");
    let na = Node::start(a, config("a", (vip, 24), 150));
    let nb = Node::start(b, config("b", (vip, 24), 100));
    na.wait_state(InstanceState::Master);
    nb.wait_state(InstanceState::Backup);

    // Tracking drops a to 50: it advertises 50, b (preempt) takes over.
    let t = na.set_priority(50);
    let sb = nb.wait_state(InstanceState::Master);
    let sa = na.wait_state(InstanceState::Backup);
    println!(
        "a lowered to 50: b master after {} (b's Master_Down_Interval {}); a: {}",
        ms(sb.since - t),
        ms(master_down_interval(100, INTERVAL)),
        sa.reason
    );
    assert_eq!(sa.reason, "higher priority 100 from 192.0.2.2");
    assert_eq!(sa.priority, 50);

    // Back to 150: a preempts again.
    na.set_priority(150);
    na.wait_state(InstanceState::Master);
    nb.wait_state(InstanceState::Backup);

    // Priority 0: hand over at once (b after its skew time).
    let t = na.set_priority(0);
    let sb = nb.wait_state(InstanceState::Master);
    let sa = na.wait_state(InstanceState::Backup);
    println!(
        "a's priority to 0: b master after {} (Skew_Time {}); a: {}",
        ms(sb.since - t),
        ms(skew_time(100, INTERVAL)),
        sa.reason
    );
    assert_eq!(sa.reason, "own priority dropped to 0 (handing over)");
    assert!(sb.since - t < master_down_interval(100, INTERVAL));
    assert!(b.holds(vip) && !a.holds(vip));

    // b crashes: a, at priority 0, must not take the address.
    nb.crash();
    sleep(4 * master_down_interval(0, INTERVAL));
    assert_eq!(na.now().state, InstanceState::Backup);
    assert!(!a.holds(vip), "{}", a.addresses());

    // a healthy again: master after its Master_Down_Interval.
    let t = na.set_priority(150);
    let sa = na.wait_state(InstanceState::Master);
    println!(
        "a's priority back to 150 with nobody else: master after {} ({})",
        ms(sa.since - t),
        sa.reason
    );
    assert!(a.holds(vip));
    na.stop();
}

#[test]
fn ipv6_failover_and_address_usable_at_once() {
    let _serial = serial();
    let lan = Lan::new(&[("a", 1), ("b", 2), ("client", 9)]);
    let (a, b, client) = (lan.host("a"), lan.host("b"), lan.host("client"));
    let vip = ip("2001:db8::100");
    let na = Node::start(a, config("a", (vip, 64), 150));
    let nb = Node::start(b, config("b", (vip, 64), 100));
    let sa = na.wait_state(InstanceState::Master);
    let a_ll = IpAddr::V6(a.ns.link_local(IF));
    let sb = nb.wait("backup following a", |s| {
        s.state == InstanceState::Backup && s.master == Some(a_ll)
    });
    println!(
        "IPv6: a {} ({}), b {} following {:?}",
        sa.state, sa.reason, sb.state, sb.master
    );
    assert!(a.holds(vip), "{}", a.addresses());
    let line = a.ns.ip(&["-o", "-6", "addr", "show", "dev", IF]);
    assert!(!line.contains("tentative"), "{line}");

    let prober = Prober::start(client, SocketAddr::new(vip, PORT));
    sleep(Duration::from_millis(300));
    let t_stop = na.stop();
    let sb = nb.wait_state(InstanceState::Master);
    println!(
        "IPv6 clean stop: b master after {} ({})",
        ms(sb.since - t_stop),
        sb.reason
    );
    assert!(b.holds(vip) && !a.holds(vip));
    sleep(Duration::from_millis(500));
    let t_mid = Instant::now();

    let t_back = Instant::now();
    let na = Node::start(a, config("a", (vip, 64), 150));
    let sa = na.wait_state(InstanceState::Master);
    nb.wait_state(InstanceState::Backup);
    println!("IPv6: a back, master after {}", ms(sa.since - t_back));
    sleep(Duration::from_millis(300));
    let t_crash = na.crash();
    let sb = nb.wait_state(InstanceState::Master);
    println!(
        "IPv6 crash: b master after {} ({})",
        ms(sb.since - t_crash),
        sb.reason
    );
    sleep(Duration::from_millis(500));
    let t_end = Instant::now();
    let probes = prober.finish();
    print_outage("IPv6 clean stop", &probes, t_stop, t_mid);
    print_outage("IPv6 crash", &probes, t_crash, t_end);
    let (_, before, after) = outage(&probes, t_stop, t_mid).expect("an outage");
    assert_eq!((before.as_str(), after.as_str()), ("a", "b"));
    let (_, _, after) = outage(&probes, t_crash, t_end).expect("an outage");
    assert_eq!(after, "b");
    nb.stop();
}

#[test]
fn ipv4_unicast_peers() {
    let _serial = serial();
    let lan = Lan::new(&[("a", 1), ("b", 2)]);
    let (a, b) = (lan.host("a"), lan.host("b"));
    let vip = ip("192.0.2.100");
    let mut ca = config("a", (vip, 24), 150);
    ca.unicast_peers = vec![b.v4()];
    let mut cb = config("b", (vip, 24), 100);
    // A second, absent peer: each peer gets a message checksummed for its own address.
    cb.unicast_peers = vec![ip("192.0.2.77"), a.v4()];
    let na = Node::start(a, ca);
    let nb = Node::start(b, cb);
    na.wait_state(InstanceState::Master);
    nb.wait("backup following a", |s| {
        s.state == InstanceState::Backup && s.master == Some(a.v4())
    });
    let t = na.stop();
    let sb = nb.wait_state(InstanceState::Master);
    println!(
        "unicast: b master after {} ({})",
        ms(sb.since - t),
        sb.reason
    );
    assert!(sb.reason.contains("priority 0 from master 192.0.2.1"));
    // b's adverts reach a restarted a, which preempts.
    let na = Node::start(a, {
        let mut c = config("a", (vip, 24), 150);
        c.unicast_peers = vec![b.v4()];
        c
    });
    let sa = na.wait_state(InstanceState::Master);
    nb.wait_state(InstanceState::Backup);
    let c = na.now().counters;
    println!("unicast: a back and master ({}), {c:?}", sa.reason);
    assert!(c.received > 0 && c.invalid == 0, "{c:?}");
    assert!(a.holds(vip) && !b.holds(vip));
}

#[test]
fn link_down_is_fault_and_link_up_starts_over() {
    let _serial = serial();
    let lan = Lan::new(&[("a", 1), ("b", 2)]);
    let (a, b) = (lan.host("a"), lan.host("b"));
    let vip = ip("192.0.2.100");
    let na = Node::start(a, config("a", (vip, 24), 150));
    let nb = Node::start(b, config("b", (vip, 24), 100));
    na.wait_state(InstanceState::Master);
    nb.wait_state(InstanceState::Backup);

    let t = Instant::now();
    a.ns.ip(&["link", "set", IF, "down"]);
    let sa = na.wait_state(InstanceState::Fault);
    let sb = nb.wait_state(InstanceState::Master);
    println!(
        "a's link down: a fault after {} ({}), b master after {}",
        ms(sa.since - t),
        sa.reason,
        ms(sb.since - t)
    );
    assert_eq!(sa.reason, "link eth0 down");
    assert!(!a.holds(vip), "{}", a.addresses());

    a.ns.ip(&["link", "set", IF, "up"]);
    a.ns.link_local(IF);
    let sa = na.wait_state(InstanceState::Master);
    nb.wait_state(InstanceState::Backup);
    println!("a's link up: master again ({})", sa.reason);
    assert!(a.holds(vip) && !b.holds(vip));
}

#[test]
fn missing_interface_is_fault_until_it_appears() {
    let _serial = serial();
    let lan = Lan::new(&[("a", 1)]);
    let a = lan.host("a");
    let mut c = config("a", (ip("198.51.100.100"), 24), 100);
    c.interface = InterfaceMatch::Pattern("^lan[0-9]+$".to_owned());
    let na = Node::start(a, c);
    let s = na.wait_state(InstanceState::Fault);
    assert_eq!(
        s.reason,
        r#"no interface matches the pattern "^lan[0-9]+$""#
    );
    // A veth pair inside the namespace (no dummy driver everywhere): lan0 has a carrier.
    a.ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    a.ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "lan0"]);
    a.ns.ip(&["link", "set", "lan0p", "up"]);
    a.ns.ip(&["link", "set", "lan0", "up"]);
    let s = na.wait_state(InstanceState::Master);
    assert_eq!(s.interface.as_deref(), Some("lan0"));
    println!("interface appeared: {} ({})", s.state, s.reason);
    na.stop();
    let out = a.ns.ip(&["-o", "addr", "show", "dev", "lan0"]);
    assert!(!out.contains("198.51.100.100"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Address lists changed in place

/// The addresses of the next advert `from` sends, captured in `host`'s namespace.
fn next_advert_addresses(host: &Host, family: Family, from: IpAddr) -> Vec<IpAddr> {
    host.ns.run(move || async move {
        let socket = VrrpSocket::open(family, IF, &[]).unwrap();
        let mut buf = [0u8; 1500];
        loop {
            let r = tokio::time::timeout(PATIENCE, socket.recv(&mut buf))
                .await
                .expect("an advert")
                .unwrap();
            if r.source != from || buf.get(1) != Some(&VRID) {
                continue;
            }
            let destination = r.destination.unwrap_or(packet::multicast_group(family));
            let advert = packet::decode(
                &buf[..r.len],
                family,
                VrrpChecksum::Rfc5798,
                r.source,
                destination,
            )
            .unwrap();
            return advert.addresses;
        }
    })
}

/// Waits until `check` holds, `what` saying what for.
fn wait_for(what: &str, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < PATIENCE, "waited for {what}");
        sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// a (150) master and b (100) backup of `vips[0]`; the list grows by `vips[1]` (master first,
/// backup a little later), shrinks back (backup first), then becomes `vips[0]` and `vips[2]`
/// before a stops. The whole time: no state change on either node, the client reaches
/// `vips[0]` without a gap, the new address appears on a (announced: the client's neighbour
/// entry follows; reachable) and the removed one goes, adverts carry the current list, b counts
/// no more mismatches once both have the same list, and lists that disagree for seconds make
/// no election. When a stops, b takes the list it was last given.
fn addresses_change_in_place(vips: [(IpAddr, u8); 3], other_family: (IpAddr, u8), label: &str) {
    const WRONG_MAC: &str = "02:00:00:00:00:99";
    let lan = Lan::new(&[("a", 1), ("b", 2), ("client", 9)]);
    let (a, b, client) = (lan.host("a"), lan.host("b"), lan.host("client"));
    let [vip1, vip2, vip3] = vips;
    let family = Family::of(&vip1.0);
    let a_source = match family {
        Family::V4 => a.v4(),
        Family::V6 => IpAddr::V6(a.ns.link_local(IF)),
    };
    let na = Node::start(a, config("a", vip1, 150));
    let nb = Node::start(b, config("b", vip1, 100));
    let sa = na.wait_state(InstanceState::Master);
    let sb = nb.wait("backup following a", |s| {
        s.state == InstanceState::Backup && s.master == Some(a_source)
    });
    let unchanged = |what: &str| {
        let (now_a, now_b) = (na.now(), nb.now());
        assert_eq!(
            (now_a.state, now_a.since),
            (InstanceState::Master, sa.since),
            "{label} {what}: a changed state: {now_a:?}"
        );
        assert_eq!(
            (now_b.state, now_b.since, now_b.master),
            (InstanceState::Backup, sb.since, Some(a_source)),
            "{label} {what}: b changed state: {now_b:?}"
        );
    };
    let no_lasting_mismatch = |what: &str| {
        // Whatever b counted while the lists differed, it counts no more and follows a.
        let before = nb.now().counters;
        sleep(5 * INTERVAL);
        let after = nb.now().counters;
        println!("{label} {what}: b's counters {after:?}");
        assert_eq!(
            after.address_mismatch, before.address_mismatch,
            "{label} {what}: b still sees a mismatch"
        );
        assert!(
            after.received >= before.received + 3,
            "{before:?} {after:?}"
        );
    };

    // The client has a stale entry for the address to come, pointing elsewhere: only an
    // announcement from a fixes it before any traffic.
    let neigh_family = if family == Family::V4 { "-4" } else { "-6" };
    client.ns.ip(&[
        neigh_family,
        "neigh",
        "replace",
        &vip2.0.to_string(),
        "lladdr",
        WRONG_MAC,
        "dev",
        IF,
        "nud",
        "stale",
    ]);
    let a_mac = a.ns.mac(IF);
    let prober = Prober::start(client, SocketAddr::new(vip1.0, PORT));
    sleep(Duration::from_millis(300));
    let t_start = Instant::now();

    // Grow: the master first, the backup 50 ms later (nodes reload at their own pace).
    na.set_addresses(&[vip1, vip2]).unwrap();
    let took = wait_for("a to hold the new address", || a.holds(vip2.0));
    println!("{label} grow: a holds {} after {}", vip2.0, ms(took));
    sleep(Duration::from_millis(50));
    nb.set_addresses(&[vip1, vip2]).unwrap();
    let took = wait_for(
        "the client's neighbour entry to follow the announcement",
        || client.ns.neighbour(IF, vip2.0).contains(&a_mac),
    );
    println!(
        "{label} grow: the client's entry for {} shows a's MAC after {}: {}",
        vip2.0,
        ms(took),
        client.ns.neighbour(IF, vip2.0).trim()
    );
    let target = SocketAddr::new(vip2.0, PORT);
    let answer = client.ns.run(move || async move {
        tokio::time::timeout(PATIENCE, ask(target))
            .await
            .ok()
            .flatten()
    });
    assert_eq!(answer.as_deref(), Some("a"), "{label}: {target} answered");
    assert_eq!(
        next_advert_addresses(client, family, a_source),
        vec![vip1.0, vip2.0]
    );
    assert!(!b.holds(vip2.0), "{}", b.addresses());
    no_lasting_mismatch("grow");
    unchanged("grow");

    // Shrink: the backup first this time.
    nb.set_addresses(&[vip1]).unwrap();
    sleep(Duration::from_millis(50));
    na.set_addresses(&[vip1]).unwrap();
    let took = wait_for("a to let the removed address go", || !a.holds(vip2.0));
    println!("{label} shrink: {} gone from a after {}", vip2.0, ms(took));
    assert!(a.holds(vip1.0), "{}", a.addresses());
    assert_eq!(
        next_advert_addresses(client, family, a_source),
        vec![vip1.0]
    );
    no_lasting_mismatch("shrink");
    unchanged("shrink");

    // The lists disagree for much longer than the master-down interval (a node that has not
    // seen the pool change yet): the backup logs the mismatch but keeps following the master.
    na.set_addresses(&[vip1, vip2]).unwrap();
    sleep(Duration::from_secs(2));
    assert!(
        nb.now().counters.address_mismatch > 0,
        "{label}: b saw no mismatch"
    );
    unchanged("lists disagreeing for 2 s");
    assert!(
        !b.holds(vip1.0),
        "{label}: b took the address: {}",
        b.addresses()
    );
    na.set_addresses(&[vip1]).unwrap();
    wait_for("a to let the address go again", || !a.holds(vip2.0));
    no_lasting_mismatch("agreeing again");

    // What needs a new instance is refused, and changes nothing.
    assert_eq!(na.set_addresses(&[]), Err(AddressChangeError::Empty));
    assert!(matches!(
        na.set_addresses(&[other_family]),
        Err(AddressChangeError::Family { .. })
    ));
    assert!(!a.holds(other_family.0));

    // One more in, on both; then a stops: b takes over with the list it was given.
    na.set_addresses(&[vip1, vip3]).unwrap();
    nb.set_addresses(&[vip1, vip3]).unwrap();
    wait_for("a to hold the third address", || a.holds(vip3.0));
    no_lasting_mismatch("third");
    unchanged("third");
    let t_stop = na.stop();
    let sb = nb.wait_state(InstanceState::Master);
    println!(
        "{label}: a stopped, b master after {} ({})",
        ms(sb.since - t_stop),
        sb.reason
    );
    wait_for("b to hold the addresses", || {
        b.holds(vip1.0) && b.holds(vip3.0)
    });
    assert!(!b.holds(vip2.0), "{}", b.addresses());
    assert!(!a.holds(vip1.0) && !a.holds(vip3.0), "{}", a.addresses());
    sleep(Duration::from_millis(300));

    let probes = prober.finish();
    print_outage(
        &format!("{label} in-place changes"),
        &probes,
        t_start,
        t_stop,
    );
    let during: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.at >= t_start && p.at < t_stop)
        .collect();
    assert!(during.len() > 50, "{} probes", during.len());
    assert!(
        during.iter().all(|p| p.answer.as_deref() == Some("a")),
        "{label}: the client lost {} while the list changed",
        vip1.0
    );
    nb.stop();
}

#[test]
fn ipv4_addresses_change_in_place() {
    let _serial = serial();
    addresses_change_in_place(
        [
            (ip("192.0.2.100"), 24),
            (ip("192.0.2.101"), 24),
            (ip("192.0.2.102"), 32),
        ],
        (ip("2001:db8::100"), 64),
        "IPv4",
    );
}

#[test]
fn ipv6_addresses_change_in_place() {
    let _serial = serial();
    addresses_change_in_place(
        [
            (ip("2001:db8::100"), 64),
            (ip("2001:db8::101"), 64),
            (ip("2001:db8::102"), 128),
        ],
        (ip("192.0.2.100"), 24),
        "IPv6",
    );
}

// ---------------------------------------------------------------------------------------
// keepalived

/// keepalived 2.x, its files in a directory of its own, run inside a host's namespace.
struct Keepalived {
    child: Option<Child>,
    dir: PathBuf,
}

impl Keepalived {
    fn available() -> bool {
        let ok = std::path::Path::new(KEEPALIVED).exists();
        if !ok {
            eprintln!("SKIPPED: {KEEPALIVED} is not installed");
        }
        ok
    }

    /// Starts it on `host` with one instance for `vip` (IPv4 or IPv6) at `priority`.
    fn start(host: &Host, vip: (IpAddr, u8), priority: u8) -> Keepalived {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-vrrp-keepalived-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        let conf = format!(
            "global_defs {{
    router_id {name}
    vrrp_version 3
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 2
}}
vrrp_instance test {{
    state BACKUP
    interface {IF}
    virtual_router_id {VRID}
    priority {priority}
    advert_int {interval}
    virtual_ipaddress {{
        {addr}/{prefix}
    }}
}}
",
            name = host.name,
            interval = INTERVAL.as_secs_f64(),
            addr = vip.0,
            prefix = vip.1,
        );
        let conf_path = dir.join("keepalived.conf");
        fs::write(&conf_path, conf).unwrap();
        let log = fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", host.ns.name(), KEEPALIVED])
            .args([
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
                "--vrrp",
            ])
            .arg("--use-file")
            .arg(&conf_path)
            .arg("--pid")
            .arg(dir.join("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Keepalived {
            child: Some(child),
            dir,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn wait_log(&self, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "keepalived never logged {what:?}:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, as systemd stops it: it sends priority 0 and removes its addresses.
    fn stop(&mut self) -> Instant {
        let at = Instant::now();
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + PATIENCE;
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                sleep(Duration::from_millis(10));
            }
        }
        at
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The VRRP child first (by the pid it wrote), then the parent.
            if let Ok(pid) = fs::read_to_string(self.dir.join("vrrp.pid")) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Empirically, what keepalived 2.2.7 puts in the IPv4 VRRPv3 checksum: its adverts decode
/// with the pseudo-header (`Rfc5798`) and not without, and the error says the other mode
/// would not match either way round.
#[test]
fn keepalived_ipv4_checksum_includes_the_pseudo_header() {
    if !Keepalived::available() {
        return;
    }
    let _serial = serial();
    let lan = Lan::new(&[("a", 1), ("k", 3)]);
    let (a, k) = (lan.host("a"), lan.host("k"));
    let ka = Keepalived::start(k, (ip("192.0.2.100"), 24), 100);
    let received = a.ns.run(|| async {
        let socket = VrrpSocket::open(Family::V4, IF, &[]).unwrap();
        let mut buf = [0u8; 1500];
        loop {
            let r = tokio::time::timeout(PATIENCE, socket.recv(&mut buf))
                .await
                .expect("an advert from keepalived")
                .unwrap();
            if buf.get(1) == Some(&VRID) {
                return (r, buf[..r.len].to_vec());
            }
        }
    });
    let (r, bytes) = received;
    let destination = r.destination.unwrap();
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "keepalived advert from {} to {destination}, TTL {}: {}",
        r.source,
        r.ttl,
        hex.join(" ")
    );
    let with = packet::decode(
        &bytes,
        Family::V4,
        VrrpChecksum::Rfc5798,
        r.source,
        destination,
    );
    let without = packet::decode(
        &bytes,
        Family::V4,
        VrrpChecksum::NoPseudoHeader,
        r.source,
        destination,
    );
    println!("decoded with the pseudo-header: {with:?}");
    println!("decoded without: {without:?}");
    let advert = with.expect("keepalived's checksum includes the IPv4 pseudo-header");
    assert_eq!(advert.vrid, VRID);
    assert_eq!(advert.max_advert_interval, 10);
    assert_eq!(advert.addresses, vec![ip("192.0.2.100")]);
    assert_eq!(r.ttl, 255);
    assert!(matches!(
        without,
        Err(PacketError::Checksum {
            other_mode_matches: true,
            ..
        })
    ));

    // An instance configured without the pseudo-header cannot hear keepalived: every advert
    // is invalid (logged once at WARN with the hint), and it takes the address too.
    let mut c = config("a", (ip("192.0.2.100"), 24), 50);
    c.checksum = VrrpChecksum::NoPseudoHeader;
    let na = Node::start(a, c);
    let s = na.wait_state(InstanceState::Master);
    println!(
        "NoPseudoHeader against keepalived: {} ({}), {:?}",
        s.state, s.reason, s.counters
    );
    assert!(
        s.counters.invalid > 0 && s.counters.received == 0,
        "{:?}",
        s.counters
    );
    drop(na);
    drop(ka);
}

/// Gatehouse and keepalived in one VRID, each master in turn, IPv4 then IPv6.
fn keepalived_interop(vip: (IpAddr, u8), label: &str) {
    let lan = Lan::new(&[("a", 1), ("k", 3), ("client", 9)]);
    let (a, k, client) = (lan.host("a"), lan.host("k"), lan.host("client"));
    let k_source = if vip.0.is_ipv4() {
        k.v4()
    } else {
        IpAddr::V6(k.ns.link_local(IF))
    };
    let prober = Prober::start(client, SocketAddr::new(vip.0, PORT));
    // keepalived's host answers too (from the test's own server thread in its namespace).
    let k_server_stop = CancellationToken::new();
    let k_server = {
        let stop = k_server_stop.clone();
        k.ns.spawn(move || async move {
            tokio::select! {
                () = serve("k") => {}
                () = stop.cancelled() => {}
            }
        })
    };

    // 1. Gatehouse 150, keepalived 100: Gatehouse is master, keepalived a quiet backup.
    let na = Node::start(a, config("a", vip, 150));
    na.wait_state(InstanceState::Master);
    let mut ka = Keepalived::start(k, vip, 100);
    ka.wait_log("Entering BACKUP STATE");
    sleep(Duration::from_millis(1500));
    assert_eq!(na.now().state, InstanceState::Master);
    assert!(
        a.holds(vip.0) && !k.holds(vip.0),
        "keepalived accepted Gatehouse's adverts"
    );
    println!("{label}: Gatehouse master, keepalived backup");

    // 2. Gatehouse stops cleanly: keepalived takes over after its skew time.
    let t_stop = na.stop();
    let deadline = Instant::now() + PATIENCE;
    while !k.holds(vip.0) {
        assert!(
            Instant::now() < deadline,
            "keepalived never took over:\n{}",
            ka.log()
        );
        sleep(Duration::from_millis(2));
    }
    println!(
        "{label}: Gatehouse stopped, keepalived holds the VIP after at most {} (its Skew_Time {})",
        ms(t_stop.elapsed()),
        ms(skew_time(100, INTERVAL))
    );
    sleep(Duration::from_millis(500));
    let t_mid = Instant::now();

    // 3. Gatehouse back at 150: a backup first, receiving keepalived's lower-priority adverts
    //    (they decode: counted as received, none invalid) and discarding them (preempt), then
    //    master when its down timer runs out; keepalived goes back to backup on its advert.
    let t_back = Instant::now();
    let na = Node::start(a, config("a", vip, 150));
    let sa = na.wait_state(InstanceState::Master);
    println!(
        "{label}: Gatehouse back, preempted keepalived after {} ({})",
        ms(sa.since - t_back),
        sa.reason
    );
    let c = na.now().counters;
    assert!(c.received > 0, "{c:?}");
    assert_eq!(c.invalid + c.bad_ttl + c.address_mismatch, 0, "{c:?}");
    let deadline = Instant::now() + PATIENCE;
    while k.holds(vip.0) {
        assert!(
            Instant::now() < deadline,
            "keepalived kept the VIP:\n{}",
            ka.log()
        );
        sleep(Duration::from_millis(2));
    }

    // 4. Gatehouse lowered to 50: keepalived (100, preempt) takes over; Gatehouse follows it
    //    as backup, steadily.
    na.set_priority(50);
    let sb = na.wait("backup", |s| s.state == InstanceState::Backup);
    println!("{label}: Gatehouse at 50: {} ({})", sb.state, sb.reason);
    assert_eq!(sb.master, Some(k_source));
    sleep(Duration::from_millis(1500));
    let s = na.now();
    assert_eq!((s.state, s.master), (InstanceState::Backup, Some(k_source)));
    assert!(k.holds(vip.0) && !a.holds(vip.0));
    let t_before_ka_stop = Instant::now();

    // 5. keepalived stops (SIGTERM: priority 0): Gatehouse takes over after its skew time.
    let t_ka = ka.stop();
    let sa = na.wait_state(InstanceState::Master);
    println!(
        "{label}: keepalived stopped, Gatehouse master after {} (Skew_Time at 50: {}): {}",
        ms(sa.since - t_ka),
        ms(skew_time(50, INTERVAL)),
        sa.reason
    );
    assert!(
        sa.reason
            .contains(&format!("priority 0 from master {k_source}")),
        "{}",
        sa.reason
    );
    sleep(Duration::from_millis(500));
    let t_end = Instant::now();

    let log = ka.log();
    assert!(
        !log.to_lowercase().contains("invalid"),
        "keepalived complained:\n{log}"
    );
    let transitions: Vec<&str> = log.lines().filter(|l| l.contains("(test)")).collect();
    println!(
        "{label}: keepalived's log for the instance:\n  {}",
        transitions.join("\n  ")
    );

    let probes = prober.finish();
    print_outage(
        &format!("{label} Gatehouse -> keepalived"),
        &probes,
        t_stop,
        t_mid,
    );
    print_outage(
        &format!("{label} keepalived -> Gatehouse"),
        &probes,
        t_ka,
        t_end,
    );
    let (_, before, after) = outage(&probes, t_stop, t_mid).expect("an outage");
    assert_eq!((before.as_str(), after.as_str()), ("a", "k"));
    let answered_by_k = probes
        .iter()
        .filter(|p| p.at > t_before_ka_stop - Duration::from_millis(500) && p.at < t_ka)
        .all(|p| p.answer.as_deref() == Some("k"));
    assert!(
        answered_by_k,
        "keepalived's host answered while it was master"
    );
    k_server_stop.cancel();
    join(k_server);
    na.stop();
}

#[test]
fn keepalived_interop_ipv4() {
    if !Keepalived::available() {
        return;
    }
    let _serial = serial();
    keepalived_interop((ip("192.0.2.100"), 24), "IPv4");
}

#[test]
fn keepalived_interop_ipv6() {
    if !Keepalived::available() {
        return;
    }
    let _serial = serial();
    keepalived_interop((ip("2001:db8::100"), 64), "IPv6");
}
