//! Network namespaces for end-to-end tests of several nodes: hosts that exist only for one
//! test, on one switched LAN with no route out. Needs root and iproute2 (`ip netns`); every
//! packet stays inside the namespaces.
//!
//! - [`Netns`]: a namespace with a unique name (`ghe-PID-N`), loopback up; dropping it kills
//!   what still runs in it and deletes it (also when the test panics). Namespaces left by a
//!   test process that died before its guards ran are swept when the next one is created.
//!   [`Netns::ip`] runs `ip -n NS ...`, [`Netns::command`] builds `ip netns exec NS ...`,
//!   [`Netns::thread`] runs a closure on a thread that has entered the namespace (`setns(2)`),
//!   so its sockets are the namespace's.
//! - [`Lan`]: a "switch" namespace with a bridge `br0` and one namespace per host, each with
//!   an `eth0` whose peer is a port of the bridge; host `i` has 192.0.2.(10+i)/24 and
//!   2001:db8::(10+i)/64, duplicate address detection off, no default route. A host's link can
//!   be taken down on either side, or its port detached from the bridge (a partition that
//!   neither end notices as a link change).
//! - [`Prober`]: a client inside a namespace that connects to a target every 10 ms and
//!   records who answered, so a test can tell when the answers moved and how long nobody did.
//! - [`PyBackend`]: a `python3` TCP server inside a namespace that writes its name (or answers
//!   HTTP with it) and closes.
//! - [`Keepalived`]: the real keepalived (VRRP only) inside a namespace, on a config the test
//!   writes.
//!
//! ```ignore
//! let lan = Lan::new(&["gw1", "gw2", "client"]);
//! let _backend = PyBackend::start(&lan.host("gw1").ns, "127.0.0.1:8080".parse()?, "gw1", false);
//! let gw1 = Gatehouse::start_in(lan.host("gw1").ns.name(), BIN, &yaml);
//! let prober = Prober::start(&lan.host("client").ns, "192.0.2.100:80".parse()?);
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use crate::process::TempDir;

/// The prefix of the namespaces this module creates (then the test process id).
const PREFIX: &str = "ghe-";

/// A network namespace that lives as long as this guard.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with a unique name (`ghe-PID-N`), loopback up.
    pub fn new() -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_leftovers);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = try_command("ip", &["netns", "add", &name]) {
            panic!("cannot create a network namespace (needs root and iproute2): {e}");
        }
        // From here on the guard exists, so a failure below still deletes the namespace.
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Its name, for `ip netns exec` and `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`; panics (with the command and its stderr) on failure;
    /// returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `ip -n NAME ARGS...`: stdout, or the command and its stderr.
    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        try_command("ip", &full)
    }

    /// Runs `sh -c SCRIPT` inside the namespace; panics on failure; returns stdout.
    pub fn sh(&self, script: &str) -> String {
        try_command("ip", &["netns", "exec", &self.name, "sh", "-c", script])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip netns exec NAME PROGRAM`: add arguments, then spawn or run it. `ip netns exec`
    /// replaces itself with the program, so the child's id is the program's (for signals).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `PROGRAM ARGS...` inside the namespace to completion.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {program} in {}: {e}", self.name))
    }

    /// Runs `f` on a new thread that has entered the namespace: sockets it opens are the
    /// namespace's. Join the handle to get the result.
    pub fn thread<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::Builder::new()
            .name(format!("netns {}", self.name))
            .spawn(move || {
                enter(&path);
                f()
            })
            .expect("a thread")
    }

    /// [`thread`](Netns::thread), then wait for it; a panic inside is raised again here.
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.thread(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The MAC address of `interface`, as `ip` prints it (`aa:bb:..`).
    pub fn mac(&self, interface: &str) -> String {
        let out = self.ip(&["-br", "link", "show", "dev", interface]);
        out.split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC address in {out:?}"))
            .to_owned()
    }

    /// The `ip neigh` line for `addr` (empty if none).
    pub fn neighbour(&self, addr: IpAddr) -> String {
        self.ip(&["neigh", "show", &addr.to_string()])
            .trim()
            .to_owned()
    }

    /// `ip -br addr show dev INTERFACE`.
    pub fn addresses(&self, interface: &str) -> String {
        self.ip(&["-br", "addr", "show", "dev", interface])
            .trim()
            .to_owned()
    }

    /// Whether `addr` is one of `interface`'s addresses.
    pub fn holds(&self, interface: &str, addr: IpAddr) -> bool {
        self.addresses(interface)
            .split_whitespace()
            .skip(2)
            .filter_map(|a| a.split('/').next())
            .any(|a| a.parse::<IpAddr>() == Ok(addr))
    }

    /// Waits (up to 10 s) until `interface` has a link-local IPv6 address that is not
    /// tentative (VRRP over IPv6 sends from it), and returns it.
    pub fn link_local(&self, interface: &str) -> Ipv6Addr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ip(&[
                "-6", "-o", "addr", "show", "dev", interface, "scope", "link",
            ]);
            let addr = out
                .lines()
                .find(|l| !l.contains("tentative"))
                .and_then(|line| {
                    line.split_whitespace()
                        .skip_while(|w| *w != "inet6")
                        .nth(1)
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.parse().ok())
                });
            if let Some(addr) = addr {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "{interface} in {} has no usable link-local address: {out}",
                self.name
            );
            pause(Duration::from_millis(20));
        }
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

/// Enters the namespace at `path` (the calling thread only).
fn enter(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("entering {path}: {e}"));
}

/// Kills what still runs in namespace `name` (a namespace with processes outlives its name),
/// then deletes it.
fn delete(name: &str) {
    if let Ok(pids) = try_command("ip", &["netns", "pids", name]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let status = Command::new("ip").args(["netns", "del", name]).status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("could not delete network namespace {name}: {status:?}");
    }
}

/// Deletes `ghe-PID-N` namespaces whose test process is gone (killed before its guards ran).
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            delete(&name);
        }
    }
}

/// Runs a command: its stdout, or what failed with its stderr.
fn try_command(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program} {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Blocks this thread (harness code runs on plain threads).
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

// ---------------------------------------------------------------------------------------------
// The LAN

/// One host of a [`Lan`].
#[derive(Debug)]
pub struct LanHost {
    /// The label the test gave it (`gw1`, `client`...).
    pub label: String,
    /// Its namespace; its interface is `eth0`.
    pub ns: Netns,
    /// 192.0.2.(10+i).
    pub v4: Ipv4Addr,
    /// 2001:db8::(10+i).
    pub v6: Ipv6Addr,
    /// Its port on the bridge, in the switch namespace (`p0`, `p1`...).
    pub port: String,
}

impl LanHost {
    /// The MAC address of its `eth0`.
    pub fn mac(&self) -> String {
        self.ns.mac(Lan::IF)
    }

    /// Whether its `eth0` has `addr`.
    pub fn holds(&self, addr: IpAddr) -> bool {
        self.ns.holds(Lan::IF, addr)
    }

    /// `ip -br addr show dev eth0`.
    pub fn addresses(&self) -> String {
        self.ns.addresses(Lan::IF)
    }
}

/// Hosts on one Ethernet segment: a bridge in a namespace of its own, a veth pair per host.
/// Fields drop in order: the hosts first, then the switch.
#[derive(Debug)]
pub struct Lan {
    /// The hosts, in the order given to [`Lan::new`].
    pub hosts: Vec<LanHost>,
    /// The namespace holding the bridge `br0` and the hosts' ports.
    pub switch: Netns,
}

impl Lan {
    /// The hosts' interface name.
    pub const IF: &'static str = "eth0";

    /// A switch and one host per label, addressed, links up, IPv6 link-local addresses
    /// ready. IPv4: 192.0.2.(10+i)/24; IPv6: 2001:db8::(10+i)/64, where `i` is the label's
    /// index. No default route anywhere.
    pub fn new(labels: &[&str]) -> Lan {
        let switch = Netns::new();
        // The switch only bridges: no addresses of its own on any port.
        switch
            .sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
        // No multicast snooping: VRRP's groups (224.0.0.18, ff02::12) reach every port.
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
        let mut lan = Lan {
            hosts: Vec::new(),
            switch,
        };
        for (i, label) in labels.iter().enumerate() {
            let n = u8::try_from(10 + i).expect("at most 245 hosts");
            let ns = Netns::new();
            ns.sh(
                "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
                 net.ipv6.conf.default.accept_ra=0",
            );
            let port = format!("p{i}");
            lan.switch.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                Lan::IF,
                "netns",
                ns.name(),
            ]);
            lan.switch.ip(&["link", "set", &port, "master", "br0"]);
            lan.switch.ip(&["link", "set", &port, "up"]);
            let v4 = Ipv4Addr::new(192, 0, 2, n);
            let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n));
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", Lan::IF]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", Lan::IF, "nodad"]);
            ns.ip(&["link", "set", Lan::IF, "up"]);
            lan.hosts.push(LanHost {
                label: (*label).to_owned(),
                ns,
                v4,
                v6,
                port,
            });
        }
        for host in &lan.hosts {
            host.ns.link_local(Lan::IF);
        }
        lan
    }

    /// The host labelled `label`.
    pub fn host(&self, label: &str) -> &LanHost {
        self.hosts
            .iter()
            .find(|h| h.label == label)
            .unwrap_or_else(|| panic!("no host {label} on this LAN"))
    }

    /// Takes the host's bridge port down: its `eth0` loses its carrier.
    pub fn port_down(&self, label: &str) {
        let port = &self.host(label).port;
        self.switch.ip(&["link", "set", port, "down"]);
    }

    /// Brings the host's bridge port back up.
    pub fn port_up(&self, label: &str) {
        let port = &self.host(label).port;
        self.switch.ip(&["link", "set", port, "up"]);
    }

    /// Takes the host's own `eth0` down (`ip link set eth0 down` on the host).
    pub fn link_down(&self, label: &str) {
        self.host(label).ns.ip(&["link", "set", Lan::IF, "down"]);
    }

    /// Brings the host's `eth0` back up.
    pub fn link_up(&self, label: &str) {
        self.host(label).ns.ip(&["link", "set", Lan::IF, "up"]);
    }

    /// Detaches the host's port from the bridge: a partition with both links still up (the
    /// host hears nobody and nobody hears it, and neither side sees a link change).
    pub fn detach(&self, label: &str) {
        let port = &self.host(label).port;
        self.switch.ip(&["link", "set", port, "nomaster"]);
    }

    /// Attaches the host's port to the bridge again.
    pub fn attach(&self, label: &str) {
        let port = &self.host(label).port;
        self.switch.ip(&["link", "set", port, "master", "br0"]);
    }
}

// ---------------------------------------------------------------------------------------------
// The prober

/// One attempt of a [`Prober`].
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the connect started.
    pub at: Instant,
    /// When the attempt ended (answer read, or failure).
    pub done: Instant,
    /// The name the server wrote, or why there was none (`refused`, `timed out`...).
    pub answer: Result<String, String>,
}

impl Sample {
    /// Whether `name` answered.
    pub fn is(&self, name: &str) -> bool {
        self.answer.as_deref() == Ok(name)
    }
}

struct ProbeLog {
    samples: Mutex<Vec<Sample>>,
    changed: Condvar,
    stop: AtomicBool,
}

/// A client inside a namespace connecting to `target` every [`Prober::PERIOD`]: each attempt
/// connects (giving up after [`Prober::TIMEOUT`]), reads what the server writes until it
/// closes, and records it. Several threads take turns, so an attempt that waits for its
/// timeout does not delay the next ones. Stops on drop.
pub struct Prober {
    log: Arc<ProbeLog>,
    threads: Vec<JoinHandle<()>>,
}

impl Prober {
    /// Time between the starts of two attempts.
    pub const PERIOD: Duration = Duration::from_millis(10);
    /// Limit on the connect, and again on reading the answer.
    pub const TIMEOUT: Duration = Duration::from_millis(50);
    /// Threads taking turns: an attempt lasts at most 2 x TIMEOUT, so each thread has a slot
    /// every THREADS x PERIOD and rarely misses one.
    const THREADS: u32 = 8;

    /// Starts probing `target` from inside `ns`.
    pub fn start(ns: &Netns, target: SocketAddr) -> Prober {
        let log = Arc::new(ProbeLog {
            samples: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let start = Instant::now();
        let threads = (0..Self::THREADS)
            .map(|k| {
                let log = Arc::clone(&log);
                ns.thread(move || {
                    let every = Self::PERIOD * Self::THREADS;
                    let mut next = start + Self::PERIOD * k;
                    while !log.stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if next > now {
                            pause(next - now);
                        }
                        let at = Instant::now();
                        let answer = probe(target);
                        let done = Instant::now();
                        let mut samples = log.samples.lock().unwrap();
                        samples.push(Sample { at, done, answer });
                        log.changed.notify_all();
                        drop(samples);
                        // The next slot of this thread that has not started yet.
                        while next <= done {
                            next += every;
                        }
                    }
                })
            })
            .collect();
        Prober { log, threads }
    }

    /// Every sample so far, by start time.
    pub fn samples(&self) -> Vec<Sample> {
        let mut samples = self.log.samples.lock().unwrap().clone();
        samples.sort_by_key(|s| s.at);
        samples
    }

    /// Samples that started in `[from, to)`, by start time.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Sample> {
        let mut samples = self.samples();
        samples.retain(|s| s.at >= from && s.at < to);
        samples
    }

    /// Waits for the first attempt started at or after `since` that `name` answered, and
    /// returns it; `None` after `timeout`.
    pub fn wait_for(&self, name: &str, since: Instant, timeout: Duration) -> Option<Sample> {
        self.wait_until(since, timeout, |s| s.is(name))
    }

    /// Waits for `count` attempts in a row, all started at or after `since`, that `name`
    /// answered; returns the first of them.
    pub fn wait_steady(
        &self,
        name: &str,
        count: usize,
        since: Instant,
        timeout: Duration,
    ) -> Option<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let samples = self.between(since, Instant::now() + Duration::from_secs(3600));
            let mut run = 0;
            for (i, s) in samples.iter().enumerate() {
                run = if s.is(name) { run + 1 } else { 0 };
                if run == count {
                    return Some(samples[i + 1 - count].clone());
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.wait_change(deadline);
        }
    }

    /// Waits for a sample started at or after `since` that satisfies `want`.
    pub fn wait_until(
        &self,
        since: Instant,
        timeout: Duration,
        want: impl Fn(&Sample) -> bool,
    ) -> Option<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self
                .samples()
                .into_iter()
                .find(|s| s.at >= since && want(s))
            {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.wait_change(deadline);
        }
    }

    /// The longest time in `[from, to)` without an answer from anyone: between the end of one
    /// answered attempt and the end of the next (or the window's edges).
    pub fn longest_silence(&self, from: Instant, to: Instant) -> Duration {
        let mut answered: Vec<Instant> = self
            .samples()
            .into_iter()
            .filter(|s| s.answer.is_ok() && s.done >= from && s.done < to)
            .map(|s| s.done)
            .collect();
        answered.sort();
        let mut last = from;
        let mut longest = Duration::ZERO;
        for t in answered.into_iter().chain(std::iter::once(to)) {
            longest = longest.max(t - last);
            last = t;
        }
        longest
    }

    /// A one-line summary of the samples started in `[from, to)`: runs of the same answer
    /// (`gw1 x12, refused x30, gw2 x50`), for failure messages and reports.
    pub fn summary(&self, from: Instant, to: Instant) -> String {
        let mut runs: Vec<(String, usize)> = Vec::new();
        for s in self.between(from, to) {
            let what = match s.answer {
                Ok(name) => name,
                Err(e) => e,
            };
            match runs.last_mut() {
                Some((last, n)) if *last == what => *n += 1,
                _ => runs.push((what, 1)),
            }
        }
        let parts: Vec<String> = runs.iter().map(|(w, n)| format!("{w} x{n}")).collect();
        parts.join(", ")
    }

    fn wait_change(&self, deadline: Instant) {
        let guard = self.log.samples.lock().unwrap();
        let left = deadline.saturating_duration_since(Instant::now());
        let _unused = self.log.changed.wait_timeout(guard, left).unwrap();
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.log.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One attempt: connect, read to the end, return the first line.
fn probe(target: SocketAddr) -> Result<String, String> {
    let stream =
        TcpStream::connect_timeout(&target, Prober::TIMEOUT).map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "refused".to_owned(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".to_owned(),
            _ => e.to_string(),
        })?;
    stream
        .set_read_timeout(Some(Prober::TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let read = stream.take(256).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    // An HTTP answer carries the name as its body.
    let text = text.split("\r\n\r\n").last().unwrap_or_default();
    let name = text.lines().next().unwrap_or_default().trim().to_owned();
    match read {
        _ if !name.is_empty() => Ok(name),
        Ok(_) => Err("closed without an answer".to_owned()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err("no answer in time".to_owned())
        }
        Err(e) => Err(format!("read: {}", e.kind())),
    }
}

// ---------------------------------------------------------------------------------------------
// Backends and peers inside namespaces

/// The python3 server of [`PyBackend`]: `ADDRESS PORT NAME MODE`.
const PY_SERVER: &str = r#"
import socket, sys
host, port, name, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = (name + "\n").encode()
if mode == "http":
    body = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(256)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        if mode == "http":
            c.settimeout(1)
            c.recv(4096)
        c.sendall(body)
    except OSError:
        pass
    c.close()
"#;

/// A tiny TCP server (`python3`) inside a namespace: writes its name and a newline to every
/// connection and closes it; in HTTP mode it reads the request first and answers
/// `200 OK` with its name as the body (for `curl`). Killed on drop.
pub struct PyBackend {
    child: Child,
    addr: SocketAddr,
}

impl PyBackend {
    /// Starts it on `addr` inside `ns` and waits until it listens.
    pub fn start(ns: &Netns, addr: SocketAddr, name: &str, http: bool) -> PyBackend {
        let mut child = ns
            .command("python3")
            .args(["-c", PY_SERVER])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(name)
            .arg(if http { "http" } else { "name" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let ready = rx.recv_timeout(Duration::from_secs(10));
        if !matches!(&ready, Ok(line) if line.trim() == "ready") {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            let _ = child.wait();
            panic!("the python backend {name} on {addr} did not start: {err}");
        }
        PyBackend { child, addr }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PyBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real keepalived (`/usr/sbin/keepalived`, VRRP subsystem only) inside a namespace, in
/// the foreground (`--dont-fork`), logging to a file in its own directory, with its own pid
/// files. Killed on drop.
pub struct Keepalived {
    child: Option<Child>,
    dir: TempDir,
}

impl Keepalived {
    /// Where Debian installs it.
    pub const PATH: &'static str = "/usr/sbin/keepalived";

    /// Whether it is installed (a test without it should say it skipped).
    pub fn available() -> bool {
        Path::new(Self::PATH).exists()
    }

    /// Starts it on `config` (the text of a `keepalived.conf`) inside `ns`; its config is
    /// checked first (`--config-test`), panicking with keepalived's complaint.
    pub fn start(ns: &Netns, config: &str) -> Keepalived {
        let dir = TempDir::new();
        let conf = dir.path().join("keepalived.conf");
        std::fs::write(&conf, config).unwrap();
        let check = ns
            .command(Self::PATH)
            .arg("--use-file")
            .arg(&conf)
            .arg("--config-test")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", Self::PATH));
        assert!(
            check.status.success(),
            "keepalived refused its config:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = File::create(dir.path().join("log")).unwrap();
        let child = ns
            .command(Self::PATH)
            .args([
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
                "--vrrp",
                // A killed VRRP process stays dead (a crash is what `kill` is for).
                "--dont-respawn",
            ])
            .arg("--use-file")
            .arg(&conf)
            .arg("--pid")
            .arg(dir.path().join("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(dir.path().join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", Self::PATH));
        Keepalived {
            child: Some(child),
            dir,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Waits until its log has a line containing `needle` after the first `from` bytes (pass
    /// `log().len()` to look only at what comes next).
    pub fn wait_log(&self, needle: &str, from: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().get(from..).is_some_and(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            pause(Duration::from_millis(5));
        }
    }

    /// SIGTERM, as systemd stops it (it sends priority 0 and removes its addresses), and waits
    /// for it to exit (SIGKILL after 5 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    self.kill_vrrp_child();
                    let _ = child.kill();
                }
                pause(Duration::from_millis(5));
            }
        }
    }

    /// A crash: SIGKILL to the VRRP process first (killing the parent first would make it
    /// stop cleanly: it gets SIGTERM when its parent dies), then to the parent. The addresses
    /// stay where they are.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.kill_vrrp_child();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kill_vrrp_child(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("vrrp.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill();
    }
}
