//! `udp-load`: the UDP load generator and echo backend of `bench/run.sh`. Loopback only.
//!
//! ```text
//! udp-load echo --listen 127.0.0.1:PORT [--threads N]
//! udp-load run  --target 127.0.0.1:PORT [--flows F] [--window W] [--duration SECS]
//!               [--size BYTES] [--warmup SECS] [--timeout SECS] [--drain SECS]
//! ```
//!
//! - `echo` answers every datagram with the same bytes, to its sender, from one socket: each of
//!   `N` threads (default 1) runs a blocking `recv_from` / `send_to` loop on it. It runs until
//!   it is killed.
//! - `run` opens `F` client sockets, each bound to its own port of 127.0.0.1 (or ::1) and so one
//!   flow to a UDP proxy, each a task of one current-thread tokio runtime. Each flow
//!   keeps `W` datagrams in flight: a datagram carries the flow number, a sequence number and
//!   its send time, and every reply frees its slot for the next datagram. A flow starts with
//!   one datagram and sends two for each reply until `W` are in flight (a slow start: a burst
//!   of `F x W` at once would overflow the proxy's receive buffer while it sets up the flows). A datagram with no
//!   reply after `--timeout` (default 1 s) is given up and its slot reused, so a lost datagram
//!   does not stall the window. After `--duration` the flows stop sending and wait up to
//!   `--drain` (default 0.5 s) for the replies still due. The first `--warmup` seconds
//!   (default 0.5) are left out of the rate and the latencies. Then it prints one line:
//!
//!   `pps=.. p50_us=.. p99_us=.. p999_us=.. max_us=.. sent=.. received=.. lost=.. late=.. errors=..`
//!
//!   `pps` = replies received per second between the end of the warm-up and the end of the
//!   run; the percentiles are of the round-trip time of those replies (buckets of 1/32, about
//!   3%; `max_us` is exact). `sent`, `received` and `lost = sent - received` count the whole
//!   run including the warm-up; `late` = replies that came after their datagram was given up
//!   (counted in `lost`, not in `received`); `errors` = failed sends and receives (such as
//!   "connection refused" when nothing listens on the target).
//!
//! Both modes refuse any address that is not loopback.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Socket buffer size asked for on every socket (the kernel caps it at `net.core.*mem_max`).
const SOCKET_BUFFER: usize = 4 << 20;
/// Payload header: sequence number (8 bytes), send time in ns since start (8), flow number (4).
const HEADER: usize = 20;
/// Longest payload accepted (a UDP datagram over IPv4).
const MAX_SIZE: usize = 65_507;

const USAGE: &str = "usage:
  udp-load echo --listen 127.0.0.1:PORT [--threads N]
  udp-load run  --target 127.0.0.1:PORT [--flows F] [--window W] [--duration SECS]
                [--size BYTES] [--warmup SECS] [--timeout SECS] [--drain SECS]
Loopback addresses only (127.0.0.0/8, ::1).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("echo") => parse_echo(&args[1..]).and_then(|o| echo(&o)),
        Some("run") => parse_run(&args[1..]).and_then(|o| run(&o)),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp-load: {e}");
            ExitCode::from(2)
        }
    }
}

// ------------------------------------------------------------------------------ arguments

struct EchoOpts {
    listen: SocketAddr,
    threads: usize,
}

struct RunOpts {
    target: SocketAddr,
    flows: usize,
    window: usize,
    duration: Duration,
    size: usize,
    warmup: Duration,
    timeout: Duration,
    drain: Duration,
}

/// `--name value` pairs; every name must be one of `known`.
fn pairs<'a>(args: &'a [String], known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown argument `{name}`\n{USAGE}"));
        }
        let value = it.next().ok_or_else(|| format!("`{name}` needs a value"))?;
        out.push((name.as_str(), value.as_str()));
    }
    Ok(out)
}

fn loopback_addr(name: &str, value: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = value
        .parse()
        .map_err(|e| format!("{name} {value}: {e} (want IP:PORT)"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{name} {value}: not a loopback address; udp-load only talks to 127.0.0.0/8 and ::1"
        ));
    }
    Ok(addr)
}

fn number(name: &str, value: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = value.parse().map_err(|e| format!("{name} {value}: {e}"))?;
    if n < min || n > max {
        return Err(format!("{name} {value}: must be {min}..={max}"));
    }
    Ok(n)
}

fn seconds(name: &str, value: &str) -> Result<Duration, String> {
    let s: f64 = value
        .trim_end_matches('s')
        .parse()
        .map_err(|e| format!("{name} {value}: {e}"))?;
    if !(0.0..=86_400.0).contains(&s) {
        return Err(format!("{name} {value}: must be 0..86400 seconds"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn parse_echo(args: &[String]) -> Result<EchoOpts, String> {
    let mut listen = None;
    let mut threads = 1;
    for (name, value) in pairs(args, &["--listen", "--threads"])? {
        match name {
            "--listen" => listen = Some(loopback_addr(name, value)?),
            _ => threads = number(name, value, 1, 64)?,
        }
    }
    let listen = listen.ok_or("echo needs --listen 127.0.0.1:PORT")?;
    Ok(EchoOpts { listen, threads })
}

fn parse_run(args: &[String]) -> Result<RunOpts, String> {
    let mut o = RunOpts {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        flows: 1,
        window: 1,
        duration: Duration::from_secs(5),
        size: 64,
        warmup: Duration::from_millis(500),
        timeout: Duration::from_secs(1),
        drain: Duration::from_millis(500),
    };
    let mut target = None;
    let known = [
        "--target",
        "--flows",
        "--window",
        "--duration",
        "--size",
        "--warmup",
        "--timeout",
        "--drain",
    ];
    for (name, value) in pairs(args, &known)? {
        match name {
            "--target" => target = Some(loopback_addr(name, value)?),
            "--flows" => o.flows = number(name, value, 1, 10_000)?,
            "--window" => o.window = number(name, value, 1, 4096)?,
            "--duration" => o.duration = seconds(name, value)?,
            "--size" => o.size = number(name, value, HEADER, MAX_SIZE)?,
            "--warmup" => o.warmup = seconds(name, value)?,
            "--timeout" => o.timeout = seconds(name, value)?,
            _ => o.drain = seconds(name, value)?,
        }
    }
    o.target = target.ok_or("run needs --target 127.0.0.1:PORT")?;
    if o.duration <= o.warmup {
        return Err("--duration must be longer than --warmup".into());
    }
    if o.timeout < Duration::from_millis(1) {
        return Err("--timeout must be at least 0.001 s".into());
    }
    Ok(o)
}

// ------------------------------------------------------------------------------ sockets

/// A UDP socket bound to `addr` with large buffers.
fn udp_socket(addr: SocketAddr) -> Result<UdpSocket, String> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| format!("socket: {e}"))?;
    // best effort: the kernel caps the sizes, and the defaults still work
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&addr.into())
        .map_err(|e| format!("bind {addr}: {e}"))?;
    Ok(s.into())
}

// ------------------------------------------------------------------------------ echo

fn echo(o: &EchoOpts) -> Result<(), String> {
    let sock = udp_socket(o.listen)?;
    eprintln!(
        "udp-load echo: listening on {} ({} thread(s))",
        sock.local_addr().map_err(|e| e.to_string())?,
        o.threads
    );
    let mut handles = Vec::new();
    for _ in 1..o.threads {
        let s = sock.try_clone().map_err(|e| format!("clone socket: {e}"))?;
        handles.push(std::thread::spawn(move || echo_loop(&s)));
    }
    echo_loop(&sock);
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn echo_loop(sock: &UdpSocket) {
    let mut buf = vec![0u8; MAX_SIZE + 1];
    loop {
        // errors (an ICMP error queued for an earlier send, a full buffer) lose one datagram,
        // as a network would; the client counts it
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    }
}

// ------------------------------------------------------------------------------ latency

/// A log-linear histogram of nanoseconds: exact below 64, then 32 buckets per power of two.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    const BUCKETS: usize = 64 + 58 * 32;

    fn new() -> Self {
        Histogram {
            counts: vec![0; Self::BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // 6..=63
        let m = (v >> (e - 5)) as usize; // 32..64
        64 + (e - 6) * 32 + (m - 32)
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let e = (i - 64) / 32 + 6;
        let m = ((i - 64) % 32 + 32) as u64;
        let shift = e - 5;
        (m << shift) + (1u64 << shift) / 2
    }

    fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..1), in ns; 0 when empty.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

// ------------------------------------------------------------------------------ run

/// What one flow counted.
struct FlowResult {
    sent: u64,
    received: u64,
    late: u64,
    errors: u64,
    /// replies received between the end of the warm-up and the end of the run
    measured: u64,
    latency: Histogram,
    error_text: Option<String>,
}

fn run(o: &RunOpts) -> Result<(), String> {
    let bind: SocketAddr = if o.target.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
    };
    // One thread: the flows are tasks of a current-thread runtime. Against the echo server on
    // one CPU this did about 1.5x the packets/s of a blocking thread per flow, which spends its
    // time switching between 50 threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (results, elapsed) = rt.block_on(async {
        let mut sockets = Vec::with_capacity(o.flows);
        for _ in 0..o.flows {
            let s = udp_socket(bind)?;
            s.set_nonblocking(true)
                .map_err(|e| format!("set_nonblocking: {e}"))?;
            let s = tokio::net::UdpSocket::from_std(s).map_err(|e| format!("tokio socket: {e}"))?;
            s.connect(o.target)
                .await
                .map_err(|e| format!("connect {}: {e}", o.target))?;
            sockets.push(s);
        }
        let base = Instant::now();
        let tasks: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(flow, sock)| {
                let p = FlowParams {
                    flow: flow as u32,
                    window: o.window,
                    size: o.size,
                    warmup: o.warmup,
                    duration: o.duration,
                    timeout: o.timeout,
                    drain: o.drain,
                    base,
                };
                tokio::spawn(async move { run_flow(&sock, &p).await })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for t in tasks {
            results.push(t.await.map_err(|e| format!("a flow task failed: {e}"))?);
        }
        Ok::<_, String>((results, base.elapsed()))
    })?;

    let mut latency = Histogram::new();
    let (mut sent, mut received, mut late, mut errors, mut measured) = (0, 0, 0, 0, 0);
    let mut first_error = None;
    for r in results {
        sent += r.sent;
        received += r.received;
        late += r.late;
        errors += r.errors;
        measured += r.measured;
        latency.merge(&r.latency);
        if first_error.is_none() {
            first_error = r.error_text;
        }
    }
    let measured_secs = (o.duration - o.warmup).as_secs_f64();
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "pps={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} sent={sent} received={received} lost={} late={late} errors={errors} flows={} window={} size={} seconds={:.1}",
        measured as f64 / measured_secs,
        us(latency.quantile(0.50)),
        us(latency.quantile(0.99)),
        us(latency.quantile(0.999)),
        us(latency.max),
        sent.saturating_sub(received),
        o.flows,
        o.window,
        o.size,
        elapsed.as_secs_f64(),
    );
    if let Some(e) = first_error {
        eprintln!("udp-load: first error: {e}");
    }
    if received == 0 {
        return Err(format!("no replies from {}", o.target));
    }
    Ok(())
}

struct FlowParams {
    flow: u32,
    window: usize,
    size: usize,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
    drain: Duration,
    base: Instant,
}

fn nanos_since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// One flow's datagrams in flight, oldest first: (sequence number, send time in ns since base).
type Inflight = VecDeque<(u64, u64)>;

/// One flow's sending side: the next datagram and its sequence number.
struct Sender<'a> {
    sock: &'a tokio::net::UdpSocket,
    base: Instant,
    out: Vec<u8>,
    next_seq: u64,
}

impl Sender<'_> {
    /// Sends the next datagram. Sent or not, its slot waits for a reply or the timeout: a
    /// failed send is a loss.
    async fn send(&mut self, r: &mut FlowResult, inflight: &mut Inflight) {
        let now = nanos_since(self.base);
        self.out[0..8].copy_from_slice(&self.next_seq.to_le_bytes());
        self.out[8..16].copy_from_slice(&now.to_le_bytes());
        if let Err(e) = self.sock.send(&self.out).await {
            r.errors += 1;
            r.error_text.get_or_insert_with(|| format!("send: {e}"));
        }
        r.sent += 1;
        inflight.push_back((self.next_seq, now));
        self.next_seq += 1;
    }
}

/// One flow: keep `window` datagrams in flight until the end, then drain.
async fn run_flow(sock: &tokio::net::UdpSocket, p: &FlowParams) -> FlowResult {
    let mut r = FlowResult {
        sent: 0,
        received: 0,
        late: 0,
        errors: 0,
        measured: 0,
        latency: Histogram::new(),
        error_text: None,
    };
    let start = nanos_since(p.base);
    let warm_end = start + p.warmup.as_nanos() as u64;
    let end = start + p.duration.as_nanos() as u64;
    let drain_end = end + p.drain.as_nanos() as u64;
    let timeout = p.timeout.as_nanos() as u64;
    let base = tokio::time::Instant::from_std(p.base);

    let mut tx = Sender {
        sock,
        base: p.base,
        out: vec![0u8; p.size],
        next_seq: 0,
    };
    tx.out[16..20].copy_from_slice(&p.flow.to_le_bytes());
    let mut buf = vec![0u8; MAX_SIZE + 1];
    let mut inflight = Inflight::with_capacity(p.window);

    // Open the window like TCP's slow start: one datagram, then two more for every reply
    // until `window` are in flight. A burst of flows x window datagrams at the start would
    // overflow the proxy's socket buffer while it sets up the flows.
    tx.send(&mut r, &mut inflight).await;
    loop {
        let now = nanos_since(p.base);
        let sending = now < end;
        if !sending && (inflight.is_empty() || now >= drain_end) {
            break;
        }
        // wake up for the oldest datagram's timeout, the end of sending, or the end of the drain
        let mut wake = if sending { end } else { drain_end };
        if let Some(&(_, at)) = inflight.front() {
            wake = wake.min(at + timeout);
        }
        let got =
            tokio::time::timeout_at(base + Duration::from_nanos(wake), sock.recv(&mut buf)).await;
        let now = nanos_since(p.base);
        let sending = now < end;
        match got {
            Ok(Ok(n)) if n >= HEADER && buf[16..20] == p.flow.to_le_bytes() => {
                let seq = u64::from_le_bytes(buf[0..8].try_into().unwrap_or_default());
                let sent_at = u64::from_le_bytes(buf[8..16].try_into().unwrap_or_default());
                match inflight.iter().position(|&(s, _)| s == seq) {
                    Some(i) => {
                        inflight.remove(i);
                        r.received += 1;
                        if now >= warm_end && now < end {
                            r.measured += 1;
                            r.latency.record(now.saturating_sub(sent_at));
                        }
                        if sending {
                            tx.send(&mut r, &mut inflight).await;
                            if inflight.len() < p.window {
                                tx.send(&mut r, &mut inflight).await;
                            }
                        }
                    }
                    None => r.late += 1,
                }
            }
            Ok(Ok(_)) => {
                r.errors += 1;
                r.error_text
                    .get_or_insert_with(|| "a reply that is not ours".into());
            }
            Ok(Err(e)) => {
                r.errors += 1;
                r.error_text.get_or_insert_with(|| format!("recv: {e}"));
            }
            Err(_elapsed) => {}
        }
        // give up on datagrams past their timeout; while sending, each one's slot goes to a new one
        while let Some(&(_, at)) = inflight.front() {
            if now.saturating_sub(at) < timeout {
                break;
            }
            inflight.pop_front();
            if sending {
                tx.send(&mut r, &mut inflight).await;
            }
        }
    }
    r
}
