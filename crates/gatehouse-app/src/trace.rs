//! `gatehouse trace`: how a request would travel through Gatehouse, step by step, worked out
//! from a compiled [`Config`] with the same code the running proxy uses.
//!
//! ```text
//! TARGET ──► 1. DNS      gatehouse_dns::Dns::answer_local (a real query, in process)
//!        ──► 2. Address  VRRP instance / address pool / this node
//!        ──► 3. Listener the socket on address:port (wildcards too), the listener picked by
//!                        name on a shared socket, its access lists
//!        ──► 4. TLS      the SNI table (gatehouse_proxy::hosts::HostTable, built as
//!                        gatehouse_proxy::tls::SniTable builds it), passthrough or terminate,
//!                        the certificate (gatehouse_tls::server::CertResolver), ALPN
//!        ──► 5. Route    TLSRoute by server name, or the HTTP router
//!                        (gatehouse_proxy::http::router::Router) and the rule's filters
//!        ──► 6. Backend  the pool, its endpoints' health, the pick
//!                        (gatehouse_proxy::balance)
//!        ──► verdict     OK: ... would reach ENDPOINT through ... / FAILS: why
//! ```
//!
//! [`trace`] is pure apart from what its `health` callback does: offline
//! ([`offline_health`]) that is a TCP connect to loopback endpoints (any endpoint with
//! `--probe`); a running instance can answer it from its pools instead. Nothing here prints:
//! a [`Trace`] renders itself with `Display`.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_config::{
    Access, Balance, Config, HealthCheckKind, HostMatch, HostPattern, HttpFilter, HttpMatch,
    HttpRule, Listener, PathMatch, Protocol, RecordData, RecordSource, RouteEntry, StringMatch,
    Target as EndpointTarget, TlsMode, Transport,
};
use gatehouse_proxy::balance;
use gatehouse_proxy::hosts::HostTable;
use gatehouse_proxy::http::filters::{redirect_location, rewrite_path};
use gatehouse_proxy::http::router::{Matched, Router};
use gatehouse_tls::rustls::SignatureScheme;
use gatehouse_tls::server::CertResolver;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// How long the offline probe waits for a TCP connect.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Redirects [`trace_following`] follows at most.
pub const MAX_REDIRECTS: usize = 5;

/// What the client speaks, from the target's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://`: plain HTTP.
    Http,
    /// `https://`: HTTP inside TLS.
    Https,
    /// `tcp://`: a TCP connection.
    Tcp,
    /// `udp://`: datagrams.
    Udp,
    /// `host:port`: whatever the listener on that port speaks.
    Any,
}

/// What to trace: a URL (`https://app.example.test/path?x=1`, `http://...`, `tcp://host:port`,
/// `udp://host:port`) or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As the user wrote it.
    pub text: String,
    /// What the client speaks.
    pub scheme: Scheme,
    /// The host: lower case, no trailing dot, an IPv6 address without brackets.
    pub host: String,
    /// The host when it is an address.
    pub ip: Option<IpAddr>,
    /// The port (the scheme's own when the URL has none).
    pub port: u16,
    /// Whether the port was written (a client then sends it in `Host`).
    pub explicit_port: bool,
    /// The path, raw (`/` when none).
    pub path: String,
    /// The query, raw, without `?`.
    pub query: Option<String>,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) => {
                let scheme = match s.to_ascii_lowercase().as_str() {
                    "http" => Scheme::Http,
                    "https" => Scheme::Https,
                    "tcp" => Scheme::Tcp,
                    "udp" => Scheme::Udp,
                    _ => {
                        return Err(format!(
                            "unknown scheme `{s}://`: use http://, https://, tcp://, udp:// or HOST:PORT"
                        ));
                    }
                };
                (scheme, rest)
            }
            None => (Scheme::Any, text),
        };
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if scheme == Scheme::Any && !tail.is_empty() {
            return Err(format!(
                "`{text}`: a path needs a scheme (http:// or https://); without one, write HOST:PORT"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "`{text}`: user information (`user@`) is not supported"
            ));
        }
        if !authority.starts_with('[') && authority.matches(':').count() > 1 {
            return Err(format!(
                "`{text}`: write an IPv6 address in brackets: [::1]:443"
            ));
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("`{text}`: cannot read a host and port from `{authority}`"))?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("`{text}`: no host name or address"));
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_none() && host.contains(':') {
            return Err(format!("`{text}`: `{host}` is not an IPv6 address"));
        }
        let written = port.is_some();
        let default_port = match scheme {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            _ => None,
        };
        let port = match (port, default_port) {
            (Some(p), _) => p,
            (None, Some(p)) => p,
            (None, None) => {
                return Err(format!(
                    "`{text}`: a port is needed (HOST:PORT, tcp://HOST:PORT, udp://HOST:PORT)"
                ));
            }
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (tail, None),
        };
        Ok(Target {
            text: text.to_owned(),
            scheme,
            host,
            ip,
            port,
            explicit_port: written,
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            query,
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; `None` when the port is not a number.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok().filter(|p| *p != 0)?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        // More than one colon and no brackets: an IPv6 address, ambiguous with a port.
        Some((h, _)) if h.contains(':') => None,
        Some((h, p)) => Some((h, Some(p.parse().ok().filter(|p| *p != 0)?))),
        None => Some((authority, None)),
    }
}

impl Target {
    /// The host as an HTTP request carries it (the router's form): an IPv6 address in
    /// brackets.
    fn http_host(&self) -> String {
        match self.ip {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.host.clone(),
        }
    }

    /// The server name a TLS client sends: none for an address.
    fn sni(&self) -> Option<&str> {
        self.ip.is_none().then_some(self.host.as_str())
    }

    /// The port the request's `Host` header carries.
    fn host_port(&self) -> Option<u16> {
        self.explicit_port.then_some(self.port)
    }
}

/// One request to trace.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where to.
    pub target: Target,
    /// The client's address: access lists and `ConsistentHash` depend on it.
    pub from: Option<IpAddr>,
    /// The HTTP method (`GET` by default).
    pub method: Method,
    /// HTTP request headers (for header matches).
    pub headers: HeaderMap,
}

impl Request {
    /// A request from the command line: `method` (default `GET`) and `headers` written as
    /// `Name: value`.
    pub fn new(
        target: Target,
        from: Option<IpAddr>,
        method: Option<&str>,
        headers: &[String],
    ) -> Result<Request, String> {
        let method = match method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("`{m}` is not an HTTP method"))?,
            None => Method::GET,
        };
        let mut map = HeaderMap::new();
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("header `{h}`: write it as `Name: value`"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("header `{h}`: `{}` is not a header name", name.trim()))?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("header `{h}`: the value is not valid in HTTP"))?;
            map.append(name, value);
        }
        Ok(Request {
            target,
            from,
            method,
            headers: map,
        })
    }
}

/// The health of one endpoint, as far as the caller knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Up; how we know.
    Up(String),
    /// Down; why.
    Down(String),
    /// Not known; why not.
    Unknown(String),
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Up(how) => write!(f, "up ({how})"),
            Health::Down(why) => write!(f, "DOWN: {why}"),
            Health::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// The offline health of an endpoint: a TCP connect (at most [`PROBE_TIMEOUT`]) to the port
/// its health check would use, for loopback endpoints only, or any endpoint when
/// `probe_any`. Endpoints of backends that only UDP listeners use, or that a UDP check
/// probes, are not probed (a TCP connect says nothing about a UDP service).
pub fn offline_health(
    config: &Config,
    probe_any: bool,
) -> impl Fn(&str, SocketAddr) -> Health + use<> {
    let mut udp_only: HashMap<String, bool> = HashMap::new();
    for l in &config.listeners {
        for b in l.backends() {
            let udp = l.protocol == Protocol::Udp;
            let e = udp_only.entry(b.to_owned()).or_insert(true);
            *e = *e && udp;
        }
    }
    let checks: HashMap<String, (bool, Option<u16>, Option<&'static str>)> = config
        .backends
        .values()
        .map(|b| {
            let udp_check = matches!(
                b.health_check.as_ref().map(|c| &c.kind),
                Some(HealthCheckKind::Udp { .. })
            );
            let udp = udp_check || udp_only.get(&b.name).copied().unwrap_or(false);
            let what = b.health_check.as_ref().and_then(|c| match c.kind {
                HealthCheckKind::Http { .. } => Some("the HTTP check itself is not run offline"),
                HealthCheckKind::Tls { .. } => Some("the TLS check itself is not run offline"),
                _ => None,
            });
            let port = b.health_check.as_ref().and_then(|c| c.port);
            (b.name.clone(), (udp, port, what))
        })
        .collect();
    move |backend: &str, endpoint: SocketAddr| {
        let (udp, port, what) = checks.get(backend).copied().unwrap_or((false, None, None));
        if udp {
            return Health::Unknown("a UDP service: not probed offline".into());
        }
        if !endpoint.ip().is_loopback() && !probe_any {
            return Health::Unknown(
                "offline: not a loopback address, not probed; --probe connects to it".into(),
            );
        }
        let addr = SocketAddr::new(endpoint.ip(), port.unwrap_or(endpoint.port()));
        let on = if addr == endpoint {
            String::new()
        } else {
            format!(" (its health-check port {})", addr.port())
        };
        match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(_) => Health::Up(match what {
                Some(w) => format!("TCP connect to {addr}{on} succeeded; {w}"),
                None => format!("TCP connect to {addr}{on} succeeded"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Health::Down(format!("connection refused: nothing listens on {addr}{on}"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Health::Down(format!(
                "no answer to a TCP connect to {addr}{on} within {} ms",
                PROBE_TIMEOUT.as_millis()
            )),
            Err(e) => Health::Down(format!("TCP connect to {addr}{on} failed: {e}")),
        }
    }
}

/// One step of a trace: what happens there, and what looks wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `DNS`, `Address`, `Listener`, `TLS`, `Route`, `Backend`.
    pub title: &'static str,
    /// What happens, a line each.
    pub lines: Vec<String>,
    /// Classic mistakes spotted here.
    pub warnings: Vec<String>,
}

/// How the journey ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It works: what it reaches and how.
    Ok(String),
    /// It does not: why.
    Fails(String),
}

/// The journey of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The target as written.
    pub target: String,
    /// The client address, if given.
    pub from: Option<IpAddr>,
    /// The steps, in order; the trace stops at the step that fails.
    pub steps: Vec<Step>,
    /// The end.
    pub verdict: Verdict,
    /// The `Location` when the request is answered with a redirect.
    pub redirect: Option<(u16, String)>,
}

impl Trace {
    /// Whether the verdict is OK.
    pub fn ok(&self) -> bool {
        matches!(self.verdict, Verdict::Ok(_))
    }

    /// Every warning of every step.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .flat_map(|s| s.warnings.iter().map(String::as_str))
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.from {
            Some(ip) => writeln!(f, "trace {} from {ip}", self.target)?,
            None => writeln!(f, "trace {}", self.target)?,
        }
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{}. {}", i + 1, step.title)?;
            for line in &step.lines {
                writeln!(f, "   {line}")?;
            }
            for w in &step.warnings {
                writeln!(f, "   warning: {w}")?;
            }
        }
        match &self.verdict {
            Verdict::Ok(what) => writeln!(f, "OK: {what}"),
            Verdict::Fails(why) => writeln!(f, "FAILS: {why}"),
        }
    }
}

/// What `gatehouse trace -c FILE` shows: the config's warnings, then the traces.
#[derive(Debug, Clone)]
pub struct Offline {
    /// The config's warnings, rendered as `gatehouse check` renders them.
    pub warnings: String,
    /// The request's trace, then one per redirect followed.
    pub traces: Vec<Trace>,
}

impl Offline {
    /// Whether the last trace's verdict is OK.
    pub fn ok(&self) -> bool {
        self.traces.last().is_some_and(Trace::ok)
    }
}

impl fmt::Display for Offline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.traces.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{t}")?;
            if let (Some((status, location)), Some(_)) = (&t.redirect, self.traces.get(i + 1)) {
                writeln!(f, "\nfollowing the {status} redirect to {location}")?;
            }
        }
        Ok(())
    }
}

/// `gatehouse trace -c FILE`: loads the config file and traces `request` (and the redirects
/// it gets) offline; endpoints are probed as [`offline_health`] says. A config that does not
/// compile gives its diagnostics.
/// Traces `request` as the running instance would route it: the config file it serves (named
/// in its `/status`), with its endpoints' health as it sees them now.
pub fn online(status: &crate::admin::StatusDoc, request: &Request) -> Result<Offline, String> {
    let Some(file) = &status.config.file else {
        return Err("the running instance does not say which config file it serves".into());
    };
    let loaded = gatehouse_config::load_file(std::path::Path::new(file)).map_err(|d| {
        format!(
            "the running instance serves {file}, which does not load here:\n{}",
            d.render()
        )
    })?;
    let mut live: HashMap<(String, SocketAddr), Health> = HashMap::new();
    for b in &status.backends {
        for e in &b.endpoints {
            let Ok(addr) = e.address.parse::<SocketAddr>() else {
                continue;
            };
            let health = match e.health.as_str() {
                "up" => Health::Up("the running instance's health checks".into()),
                "ejected" => {
                    Health::Down("the running instance ejected it after failed connects".into())
                }
                other => Health::Down(format!("the running instance's health checks say {other}")),
            };
            live.insert((b.name.clone(), addr), health);
        }
    }
    let health = move |backend: &str, endpoint: SocketAddr| {
        live.get(&(backend.to_owned(), endpoint))
            .cloned()
            .unwrap_or_else(|| Health::Unknown("the running instance does not list it".into()))
    };
    // Listeners on port 0 got their port when bound: take it from the running instance.
    let mut config = loaded.config;
    config.listeners = config
        .listeners
        .iter()
        .map(|l| {
            let bound = status
                .listeners
                .iter()
                .filter(|d| d.name.split(',').any(|n| n == l.name))
                .filter_map(|d| d.address.parse::<SocketAddr>().ok())
                .find(|a| a.ip() == l.bind.ip());
            match bound {
                Some(addr) if l.bind.port() == 0 => {
                    let mut live = (**l).clone();
                    live.bind = addr;
                    std::sync::Arc::new(live)
                }
                _ => std::sync::Arc::clone(l),
            }
        })
        .collect();
    Ok(Offline {
        warnings: String::new(),
        traces: trace_following(&config, request, &health),
    })
}

/// Traces `request` from the config file at `path`, offline (see [`offline_health`]).
pub fn offline(
    path: &std::path::Path,
    request: &Request,
    probe_any: bool,
) -> Result<Offline, gatehouse_config::Diagnostics> {
    let loaded = gatehouse_config::load_file(path)?;
    let warnings = loaded
        .warnings
        .warnings()
        .map(|w| w.render(&loaded.warnings.source))
        .collect();
    let health = offline_health(&loaded.config, probe_any);
    Ok(Offline {
        warnings,
        traces: trace_following(&loaded.config, request, &health),
    })
}

/// Traces `request`, then every redirect it is answered with (at most [`MAX_REDIRECTS`],
/// stopping at a loop). The last trace's verdict is the outcome.
pub fn trace_following(
    config: &Config,
    request: &Request,
    health: &dyn Fn(&str, SocketAddr) -> Health,
) -> Vec<Trace> {
    let mut out = vec![trace(config, request, health)];
    let mut seen = vec![request.target.text.clone()];
    while out.len() <= MAX_REDIRECTS {
        let Some(last) = out.last_mut() else { break };
        let Some((status, location)) = last.redirect.clone() else {
            break;
        };
        if seen.contains(&location) {
            last.verdict = Verdict::Fails(format!(
                "redirect loop: {location} was already traced on the way here"
            ));
            break;
        }
        let Ok(target) = location.parse::<Target>() else {
            break;
        };
        seen.push(location);
        let mut next = request.clone();
        next.target = target;
        if status == 303 {
            next.method = Method::GET;
        }
        out.push(trace(config, &next, health));
    }
    out
}

/// How `request` would travel through Gatehouse running `config`. `health` says whether a
/// backend's endpoint is up (see [`offline_health`]); it is asked only about endpoints the
/// request could reach (and the backends behind the DNS name).
pub fn trace(
    config: &Config,
    request: &Request,
    health: &dyn Fn(&str, SocketAddr) -> Health,
) -> Trace {
    let mut t = Tracer {
        config,
        req: request,
        health: Memo {
            inner: health,
            seen: RefCell::new(HashMap::new()),
        },
        steps: Vec::new(),
        redirect: None,
    };
    let verdict = match t.run() {
        Ok(what) => Verdict::Ok(what),
        Err(why) => Verdict::Fails(why),
    };
    Trace {
        target: request.target.text.clone(),
        from: request.from,
        steps: t.steps,
        verdict,
        redirect: t.redirect,
    }
}

/// Asks the caller's health function once per endpoint.
struct Memo<'a> {
    inner: &'a dyn Fn(&str, SocketAddr) -> Health,
    seen: RefCell<HashMap<(String, SocketAddr), Health>>,
}

impl Memo<'_> {
    fn get(&self, backend: &str, endpoint: SocketAddr) -> Health {
        let key = (backend.to_owned(), endpoint);
        if let Some(h) = self.seen.borrow().get(&key) {
            return h.clone();
        }
        let h = (self.inner)(backend, endpoint);
        self.seen.borrow_mut().insert(key, h.clone());
        h
    }
}

struct Tracer<'a> {
    config: &'a Config,
    req: &'a Request,
    health: Memo<'a>,
    steps: Vec<Step>,
    redirect: Option<(u16, String)>,
}

/// A step under construction.
fn step(title: &'static str) -> Step {
    Step {
        title,
        lines: Vec::new(),
        warnings: Vec::new(),
    }
}

/// Where a server name leads on a TLS socket (as `gatehouse_proxy::tls::SniTable` builds it).
enum SniTarget<'a> {
    /// A TLS listener's route (or its own `backend`, as the route `default`).
    Route {
        listener: &'a Arc<Listener>,
        entry: &'a RouteEntry,
        host: &'a HostMatch,
    },
    /// An HTTPS listener: terminate, then route each request.
    Http { listener: &'a Arc<Listener> },
}

/// The address followed (none for a wildcard listener reached by an unresolved name), the
/// listeners of the socket that takes it, and the listener step so far.
type Followed<'a> = (Option<IpAddr>, Vec<&'a Arc<Listener>>, Step);

/// How the route step ends.
enum Routed {
    /// Gatehouse answers itself (a redirect): the verdict.
    Answered(String),
    /// On to the backends.
    Backends(Reached),
}

/// What the trace reached at the end of the route step.
struct Reached {
    /// The backends, with their weights.
    backends: Vec<(String, u32)>,
    /// `through route X rule N`, `through TLSRoute git`, `through listener edge/db`.
    through: String,
    /// What the client's traffic is (how a failure shows).
    transport: Transport,
}

impl<'a> Tracer<'a> {
    fn push(&mut self, s: Step) {
        self.steps.push(s);
    }

    fn run(&mut self) -> Result<String, String> {
        // 1. DNS
        let addrs = self.dns()?;
        // 2 and 3: the address followed and the socket on it.
        let (addr, sockets, s3) = self.address_and_socket(&addrs)?;
        // 3 (cont.), 4, 5: the listener by name, TLS, the route.
        match self.listener_tls_route(addr, &sockets, s3)? {
            Routed::Answered(what) => Ok(what),
            // 6. Backend
            Routed::Backends(reached) => self.backend(&reached),
        }
    }

    // ---------------------------------------------------------------- 1. DNS

    /// The addresses the name resolves to through Gatehouse's own DNS server; empty when it
    /// is not in a local zone (clients resolve it elsewhere).
    fn dns(&mut self) -> Result<Vec<IpAddr>, String> {
        let req: &'a Request = self.req;
        let target = &req.target;
        let mut s = step("DNS");
        if let Some(ip) = target.ip {
            s.lines
                .push(format!("{ip} is an address: no name to resolve"));
            self.push(s);
            return Ok(vec![ip]);
        }
        let Some(dns) = self.config.dns.clone() else {
            s.lines.push(format!(
                "Gatehouse runs no DNS server (no `dns:` section): clients resolve {} elsewhere",
                target.host
            ));
            self.push(s);
            return Ok(Vec::new());
        };
        let Ok(name) = Name::from_ascii(format!("{}.", target.host)) else {
            s.lines
                .push(format!("{} is not a valid DNS name", target.host));
            self.push(s);
            return Ok(Vec::new());
        };
        // The health the answer depends on: the backends of the automatic records of this
        // name (as the running server asks its pools).
        let mut backend_up: HashMap<String, bool> = HashMap::new();
        for zone in &dns.zones {
            for r in &zone.records {
                if let RecordSource::Auto { backends, .. } = &r.source
                    && owner_matches(&r.name, &target.host)
                {
                    for b in backends {
                        if !backend_up.contains_key(b) {
                            let up = self.backend_may_be_up(b);
                            backend_up.insert(b.clone(), up);
                        }
                    }
                }
            }
        }
        let server = gatehouse_dns::Dns::new(
            Arc::clone(&dns),
            Arc::new(move |b: &str| backend_up.get(b).copied().unwrap_or(true)),
        );
        let client = SocketAddr::new(self.req.from.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), 53);
        // What Gatehouse's server made of the name.
        enum Seen {
            /// Not in a local zone: forwarded (true) or refused (false).
            Outside(bool),
            /// Answered from this local zone.
            Local(String),
            /// NXDOMAIN from this local zone.
            NxDomain(String),
        }
        let mut seen = Seen::Outside(false);
        let mut addrs = Vec::new();
        let mut lines: Vec<String> = Vec::new();
        for qtype in [RecordType::A, RecordType::AAAA] {
            let Some(packet) = query(&name, qtype) else {
                continue;
            };
            let bytes = match server.answer_local(&packet, client, Transport::Tcp) {
                gatehouse_dns::Local::Reply(bytes) => bytes,
                gatehouse_dns::Local::Forward => {
                    seen = Seen::Outside(true);
                    continue;
                }
                gatehouse_dns::Local::Drop => continue,
            };
            let Ok(reply) = Message::from_vec(&bytes) else {
                continue;
            };
            if !reply.metadata.authoritative {
                seen = Seen::Outside(reply.metadata.response_code != ResponseCode::Refused);
                continue;
            }
            let zone = zone_of(&dns.zones, &target.host).unwrap_or_default();
            if reply.metadata.response_code == ResponseCode::NXDomain {
                seen = Seen::NxDomain(zone);
                break;
            }
            seen = Seen::Local(zone);
            for record in &reply.answers {
                let owner = record.name.to_string();
                let owner = owner.trim_end_matches('.');
                let (text, ip) = match &record.data {
                    RData::A(a) => (format!("A {}", a.0), Some(IpAddr::V4(a.0))),
                    RData::AAAA(a) => (format!("AAAA {}", a.0), Some(IpAddr::V6(a.0))),
                    RData::CNAME(c) => {
                        let to = c.0.to_string();
                        (format!("CNAME {}", to.trim_end_matches('.')), None)
                    }
                    _ => continue,
                };
                let line = format!(
                    "{owner} {text} ({}, TTL {}s)",
                    record_origin(&dns.zones, owner, ip),
                    record.ttl
                );
                if !lines.contains(&line) {
                    lines.push(line);
                }
                if let Some(ip) = ip
                    && !addrs.contains(&ip)
                {
                    addrs.push(ip);
                }
            }
        }
        match seen {
            Seen::NxDomain(zone) => {
                s.lines.push(format!(
                    "{} does not exist in Gatehouse's zone {zone} (NXDOMAIN)",
                    target.host
                ));
                s.warnings.push(format!(
                    "no route or record gives {} an address: clients that ask Gatehouse's DNS cannot reach it by name",
                    target.host
                ));
                self.push(s);
                return Err(format!(
                    "{} does not exist in Gatehouse's DNS zone {zone} (NXDOMAIN)",
                    target.host
                ));
            }
            Seen::Local(zone) => {
                s.lines
                    .push(format!("Gatehouse's DNS answers for zone {zone}:"));
                if lines.is_empty() {
                    s.lines
                        .push(format!("  {} has no A or AAAA record", target.host));
                }
                s.lines.extend(lines.into_iter().map(|l| format!("  {l}")));
            }
            Seen::Outside(forwarded) => {
                let how = if forwarded {
                    let to: Vec<String> = dns
                        .forward_zones
                        .iter()
                        .filter(|z| owner_matches(&format!("*.{}", z.zone), &target.host))
                        .flat_map(|z| z.to.iter().map(ToString::to_string))
                        .collect();
                    let to = if to.is_empty() {
                        dns.forwarders.iter().map(ToString::to_string).collect()
                    } else {
                        to
                    };
                    format!("Gatehouse's DNS forwards it to {}", to.join(", "))
                } else if dns.forwarders.is_empty() && dns.forward_zones.is_empty() {
                    "Gatehouse's DNS refuses it (no forwarders)".to_owned()
                } else {
                    "Gatehouse's DNS refuses to forward it for this client (recursion.allow)"
                        .to_owned()
                };
                s.lines.push(format!(
                    "{} is not in a local zone: clients resolve it elsewhere; {how}",
                    target.host
                ));
            }
        }
        // A name whose address no listener binds: a stale record (seed 004's dnsmasq
        // override).
        for ip in &addrs {
            if !self
                .config
                .listeners
                .iter()
                .any(|l| binds(l.bind.ip(), *ip))
            {
                s.warnings.push(format!(
                    "{} resolves to {ip}, which no listener binds: a stale DNS record or override? Clients that use it reach nothing of Gatehouse's",
                    target.host
                ));
            }
        }
        self.push(s);
        Ok(addrs)
    }

    /// Whether a backend may have an endpoint up (unknown counts as up, as the DNS server
    /// counts a backend without health checks).
    fn backend_may_be_up(&self, backend: &str) -> bool {
        let Some(b) = self.config.backends.get(backend) else {
            return true;
        };
        b.endpoints.iter().any(|e| match &e.target {
            EndpointTarget::Addr(a) => !matches!(self.health.get(backend, *a), Health::Down(_)),
            EndpointTarget::Host { .. } => true,
        })
    }

    // ---------------------------------------------------------------- 2 and 3

    /// The transports the target's scheme connects with.
    fn transports(&self) -> &'static [Transport] {
        match self.req.target.scheme {
            Scheme::Http | Scheme::Https | Scheme::Tcp => &[Transport::Tcp],
            Scheme::Udp => &[Transport::Udp],
            Scheme::Any => &[Transport::Tcp, Transport::Udp],
        }
    }

    /// The listeners of the socket that takes `ip:port` (a specific bind first, then a
    /// wildcard of the family), for the first transport that has one.
    fn socket_at(&self, ip: IpAddr) -> Vec<&'a Arc<Listener>> {
        let port = self.req.target.port;
        for transport in self.transports() {
            let on = |exact: bool| -> Vec<&'a Arc<Listener>> {
                self.config
                    .listeners
                    .iter()
                    .filter(|l| {
                        l.protocol.transport() == *transport
                            && l.bind.port() == port
                            && if exact {
                                l.bind.ip() == ip
                            } else {
                                l.bind.ip().is_unspecified() && l.bind.is_ipv4() == ip.is_ipv4()
                            }
                    })
                    .collect()
            };
            let exact = on(true);
            if !exact.is_empty() {
                return exact;
            }
            let wild = on(false);
            if !wild.is_empty() {
                return wild;
            }
        }
        Vec::new()
    }

    /// Listeners on the target's port that name the host explicitly (a route or listener
    /// hostname, an automatic DNS record), in config order.
    fn serving(&self) -> Vec<&'a Arc<Listener>> {
        let host = &self.req.target.host;
        let auto: BTreeSet<&str> = self
            .config
            .dns
            .iter()
            .flat_map(|d| d.zones.iter())
            .flat_map(|z| z.records.iter())
            .filter(|r| owner_matches(&r.name, host))
            .filter_map(|r| match &r.source {
                RecordSource::Auto { listener, .. } => Some(listener.as_str()),
                RecordSource::Static => None,
            })
            .collect();
        let named = |hosts: &[HostMatch]| {
            hosts
                .iter()
                .any(|h| matches!(h, HostMatch::Pattern(p) if p.matches(host)))
        };
        self.config
            .listeners
            .iter()
            .filter(|l| {
                l.bind.port() == self.req.target.port
                    && self.transports().contains(&l.protocol.transport())
            })
            .filter(|l| {
                l.hostname.as_ref().is_some_and(|p| p.matches(host))
                    || l.routes.iter().any(|r| named(&r.hosts))
                    || l.http_routes.iter().any(|r| named(&r.hosts))
                    || auto.contains(l.name.as_str())
            })
            .collect()
    }

    fn address_and_socket(&mut self, addrs: &[IpAddr]) -> Result<Followed<'a>, String> {
        let req: &'a Request = self.req;
        let target = &req.target;
        let port = target.port;
        let mut s2 = step("Address");
        let mut s3 = step("Listener");
        let serving = self.serving();
        let (addr, sockets) = if addrs.is_empty() {
            // The name is resolved elsewhere: assume it leads to a listener that serves it.
            let pick = serving.first().copied().map(|l| (l, true)).or_else(|| {
                self.config
                    .listeners
                    .iter()
                    .find(|l| {
                        l.bind.port() == port && self.transports().contains(&l.protocol.transport())
                    })
                    .map(|l| (l, false))
            });
            let Some((l, names_it)) = pick else {
                s2.lines.push(format!("{} resolves elsewhere", target.host));
                self.push(s2);
                s3.lines.push(format!(
                    "no listener on port {port} ({})",
                    self.transports()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
                self.push(s3);
                return Err(format!("no listener on port {port}"));
            };
            let ip = l.bind.ip();
            let note = if names_it {
                ""
            } else {
                " (no listener names this host)"
            };
            if ip.is_unspecified() {
                s2.lines.push(format!(
                    "assuming clients resolve {} to an address of this node: {} listens on port {port} of every address{note}",
                    target.host, l.name
                ));
                (None, self.socket_at(ip))
            } else {
                s2.lines.push(format!(
                    "assuming clients resolve {} to {ip}, where {} listens{note}",
                    target.host, l.name
                ));
                (Some(ip), self.socket_at(ip))
            }
        } else {
            let mut chosen = None;
            for ip in addrs {
                let sockets = self.socket_at(*ip);
                if !sockets.is_empty() {
                    chosen = Some((*ip, sockets));
                    break;
                }
            }
            match chosen {
                Some((ip, sockets)) => {
                    if addrs.len() > 1 {
                        s2.lines.push(format!(
                            "following {ip} (of {})",
                            addrs
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    for other in addrs.iter().filter(|a| **a != ip) {
                        if self.socket_at(*other).is_empty() {
                            s3.warnings.push(format!(
                                "{} also resolves to {other}, where no listener takes port {port}: clients given that address fail",
                                target.host
                            ));
                        }
                    }
                    (Some(ip), sockets)
                }
                None => {
                    let ip = addrs[0];
                    s2.lines.push(self.holder(ip));
                    self.push(s2);
                    let elsewhere: Vec<&Arc<Listener>> = self
                        .config
                        .listeners
                        .iter()
                        .filter(|l| {
                            l.bind.port() == port
                                && self.transports().contains(&l.protocol.transport())
                        })
                        .collect();
                    s3.lines.push(format!(
                        "no listener takes {} on {}",
                        self.transports()
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" or "),
                        SocketAddr::new(ip, port)
                    ));
                    for l in &elsewhere {
                        s3.warnings.push(format!(
                            "a listener bound to one address where clients use another: {} listens on {}, but {} resolves to {ip}",
                            l.name, l.bind, target.host
                        ));
                    }
                    if elsewhere.is_empty() {
                        let ports: BTreeSet<u16> = self
                            .config
                            .listeners
                            .iter()
                            .filter(|l| binds(l.bind.ip(), ip))
                            .map(|l| l.bind.port())
                            .collect();
                        if !ports.is_empty() {
                            s3.lines.push(format!(
                                "listeners on {ip} take ports {}",
                                ports
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                    }
                    self.push(s3);
                    return Err(format!(
                        "no listener on {}: {} would be refused or time out",
                        SocketAddr::new(ip, port),
                        target.text
                    ));
                }
            }
        };
        if let Some(ip) = addr {
            s2.lines.push(self.holder(ip));
            // The name resolves, but not to the listener that names it.
            let names_here = serving
                .iter()
                .any(|l| sockets.iter().any(|s| s.name == l.name));
            if !serving.is_empty() && !names_here {
                let list: Vec<String> = serving
                    .iter()
                    .map(|l| format!("{} on {}", l.name, l.bind))
                    .collect();
                s2.warnings.push(format!(
                    "{} resolves to {ip}, but the listener that serves it is elsewhere: {}",
                    target.host,
                    list.join(", ")
                ));
            }
        }
        self.push(s2);
        Ok((addr, sockets, s3))
    }

    /// Who holds `ip`: a VRRP instance, an address pool, this node.
    fn holder(&self, ip: IpAddr) -> String {
        let local = is_local(ip);
        let here = if local {
            "this node holds it now"
        } else {
            "this node does not hold it now"
        };
        let pool = self.config.pools.values().find(|p| p.contains(ip));
        let pool_text = pool.map(|p| {
            let given = p
                .allocated
                .iter()
                .find(|(a, _)| *a == ip)
                .map(|(_, who)| format!(", given to {who}"))
                .unwrap_or_default();
            format!("from address pool {}{given}", p.name)
        });
        if let Some(v) = self
            .config
            .vrrp
            .iter()
            .find(|v| v.addresses.iter().any(|(a, _)| *a == ip))
        {
            let interface = match &v.interface {
                gatehouse_config::InterfaceMatch::Name(n) => n.clone(),
                gatehouse_config::InterfaceMatch::Pattern(p) => format!("matching {p}"),
            };
            let pool = pool_text.map(|p| format!("; {p}")).unwrap_or_default();
            return format!(
                "{ip}: held by the VRRP master of instance {} (priority {} here, VRID {}, interface {interface}); {here}{pool}",
                v.name, v.priority, v.vrid
            );
        }
        if let Some(p) = pool_text {
            return format!("{ip}: {p}; no VRRP instance announces it; {here}");
        }
        if ip.is_loopback() {
            return format!("{ip}: loopback, on this node");
        }
        if local {
            format!("{ip}: an address of this node")
        } else {
            format!("{ip}: not an address of this node now (another node's, or not configured yet)")
        }
    }

    // ---------------------------------------------------------------- 3, 4, 5

    /// The listener picked by name on the socket, its access lists, TLS, and the route.
    fn listener_tls_route(
        &mut self,
        addr: Option<IpAddr>,
        sockets: &[&'a Arc<Listener>],
        mut s3: Step,
    ) -> Result<Routed, String> {
        let Some(first) = sockets.first() else {
            return Err("no listener".into());
        };
        let req: &'a Request = self.req;
        let target = &req.target;
        let bind = match addr {
            Some(ip) if first.bind.ip().is_unspecified() => {
                format!("{} (wildcard, taking {ip})", first.bind)
            }
            _ => first.bind.to_string(),
        };
        let names: Vec<&str> = sockets.iter().map(|l| l.name.as_str()).collect();
        if sockets.len() > 1 {
            s3.lines.push(format!(
                "{} socket on {bind}, shared by {} (told apart by name)",
                first.protocol.transport(),
                names.join(", ")
            ));
        }
        // Protocol agreement between the client and the socket.
        let protocol = first.protocol;
        let mismatch = match (target.scheme, protocol) {
            (Scheme::Http, Protocol::Tls | Protocol::Https) => Some(
                "the listener expects TLS: a plain HTTP request is refused (not a TLS handshake)",
            ),
            (Scheme::Https, Protocol::Http) => {
                Some("the listener speaks plain HTTP: a TLS handshake is not an HTTP request (400)")
            }
            _ => None,
        };
        match protocol {
            Protocol::Tcp | Protocol::Udp => {
                s3.lines
                    .push(format!("{}, {protocol} on {bind}", first.name));
                let note = match target.scheme {
                    Scheme::Https | Scheme::Http => Some(format!(
                        "a {protocol} listener passes the bytes through: the backend speaks {} itself",
                        if target.scheme == Scheme::Https {
                            "TLS and HTTP"
                        } else {
                            "HTTP"
                        }
                    )),
                    _ => None,
                };
                s3.lines.extend(note);
                let access = self.access_line(&first.access, &first.name);
                s3.lines.push(access.0);
                self.push(s3);
                if let Some(why) = access.1 {
                    return Err(match protocol {
                        Protocol::Udp => format!("{why}: its datagrams are dropped"),
                        _ => format!("{why}: the connection is closed"),
                    });
                }
                let mut s5 = step("Route");
                let Some(entry) = first.routes.first() else {
                    s5.lines.push("the listener has no backend".into());
                    self.push(s5);
                    return Err(format!("listener {} has no backend", first.name));
                };
                s5.lines.push(format!(
                    "no routes on a {protocol} listener: every {} goes to backend {}",
                    if protocol == Protocol::Udp {
                        "flow"
                    } else {
                        "connection"
                    },
                    entry.backend
                ));
                self.push(s5);
                Ok(Routed::Backends(Reached {
                    backends: vec![(entry.backend.clone(), 1)],
                    through: format!("listener {}", first.name),
                    transport: protocol.transport(),
                }))
            }
            Protocol::Http => {
                if let Some(m) = mismatch {
                    s3.lines
                        .push(format!("{}, HTTP on {bind}", names.join(", ")));
                    self.push(s3);
                    return Err(format!("{}: {m}", first.name));
                }
                self.http(Some(s3), sockets, &bind, "http")
            }
            Protocol::Tls | Protocol::Https => {
                if let Some(m) = mismatch {
                    s3.lines
                        .push(format!("{}, {protocol} on {bind}", names.join(", ")));
                    self.push(s3);
                    return Err(format!("{}: {m}", first.name));
                }
                self.tls(s3, sockets, &bind)
            }
        }
    }

    /// `client X: allowed ...` and, when refused, why (for the verdict).
    fn access_line(&self, access: &Access, who: &str) -> (String, Option<String>) {
        let lists = access.to_string();
        match self.req.from {
            _ if access.is_open() => (
                format!("access: everyone (no allow/deny lists on {who})"),
                None,
            ),
            None => (
                format!("access on {who}: {lists} (pass --from to check a client)"),
                None,
            ),
            Some(ip) => {
                if let Some(net) = access.deny.iter().find(|c| c.contains(ip)) {
                    let why = format!("client {ip} is refused by {who}'s deny list ({net})");
                    (
                        format!("access on {who}: {lists}: client {ip} refused"),
                        Some(why),
                    )
                } else if !access.allows(ip) {
                    let why = format!("client {ip} is not in {who}'s allow list ({lists})");
                    (
                        format!("access on {who}: {lists}: client {ip} refused"),
                        Some(why),
                    )
                } else {
                    (
                        format!("access on {who}: {lists}: client {ip} allowed"),
                        None,
                    )
                }
            }
        }
    }

    /// A TLS or HTTPS socket: the SNI table, the TLS decision, then the route.
    fn tls(
        &mut self,
        mut s3: Step,
        sockets: &[&'a Arc<Listener>],
        bind: &str,
    ) -> Result<Routed, String> {
        let req: &'a Request = self.req;
        let target = &req.target;
        let sni = target.sni();
        // As `gatehouse_proxy::tls::SniTable::build`: the most specific listener hostname
        // first, then, per listener, an HTTPS listener's own name and the routes' names; the
        // first insert for a name wins.
        let mut ordered: Vec<&'a Arc<Listener>> = sockets.to_vec();
        ordered.sort_by_key(|l| match &l.hostname {
            Some(HostPattern::Exact(_)) => (0, 0),
            Some(HostPattern::Wildcard(s)) => (1, usize::MAX - s.len()),
            None => (2, 0),
        });
        let mut table: HostTable<SniTarget<'a>> = HostTable::default();
        for listener in ordered {
            if listener.protocol == Protocol::Https {
                let host = match &listener.hostname {
                    Some(h) => HostMatch::Pattern(h.clone()),
                    None => HostMatch::Any,
                };
                table.insert(&host, SniTarget::Http { listener });
            }
            for entry in &listener.routes {
                for host in &entry.hosts {
                    table.insert(
                        host,
                        SniTarget::Route {
                            listener,
                            entry,
                            host,
                        },
                    );
                }
            }
        }
        let shown_sni = sni.unwrap_or("(none: an address)");
        let Some(found) = table.get(sni) else {
            s3.lines
                .push(format!("TLS socket on {bind}; server name {shown_sni}"));
            self.push(s3);
            let mut s4 = step("TLS");
            let served: Vec<String> = sockets
                .iter()
                .flat_map(|l| {
                    l.hostname.iter().map(ToString::to_string).chain(
                        l.routes
                            .iter()
                            .flat_map(|r| r.hosts.iter().map(ToString::to_string)),
                    )
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            s4.lines.push(format!(
                "no listener or route on this socket takes server name {shown_sni}: the connection is closed (refused: no route for this server name)"
            ));
            s4.warnings.push(format!(
                "no route serves this hostname: {} (names served here: {})",
                target.host,
                if served.is_empty() {
                    "none".to_owned()
                } else {
                    served.join(", ")
                }
            ));
            self.push(s4);
            return Err(format!(
                "no route serves {} on {bind}: the TLS connection is closed",
                target.host
            ));
        };
        let listener = match found {
            SniTarget::Route { listener, .. } | SniTarget::Http { listener } => *listener,
        };
        s3.lines.push(format!(
            "{}, {} on {bind}{}",
            listener.name,
            listener.protocol,
            match &listener.hostname {
                Some(h) => format!(", hostname {h}"),
                None => String::new(),
            }
        ));
        // TLS connections are refused at once; HTTPS requests get 403 after the handshake
        // (the route step refuses them).
        let (line, refused) = self.access_line(&listener.access, &listener.name);
        s3.lines.push(line);
        self.push(s3);
        if let (Some(why), SniTarget::Route { .. }) = (refused, found) {
            return Err(format!("{why}: the connection is closed"));
        }

        // 4. TLS
        let mut s4 = step("TLS");
        s4.lines.push(format!("server name (SNI): {shown_sni}"));
        match listener.tls.as_ref().map(|t| &t.mode) {
            Some(TlsMode::Passthrough) => {
                s4.lines.push(format!(
                    "passthrough on {}: the ClientHello and everything after it go to the backend untouched; the client sees the backend's certificate",
                    listener.name
                ));
            }
            Some(TlsMode::Terminate(t)) => {
                s4.lines
                    .push(format!("terminated here, on {}", listener.name));
                let certs: Vec<_> = t
                    .certificates
                    .iter()
                    .map(|c| Arc::clone(&c.loaded))
                    .collect();
                if let Some(resolver) = CertResolver::new(certs) {
                    let index = resolver.choose(sni, CLIENT_SCHEMES);
                    if let Some(files) = t.certificates.get(index) {
                        let cert = &files.loaded;
                        let names = cert.names();
                        let why = match sni {
                            Some(n) if names.iter().any(|x| x == n) => {
                                format!("its SAN names {n}")
                            }
                            Some(n) => match names.iter().find(|x| {
                                x.strip_prefix("*.").is_some_and(|p| {
                                    n.split_once('.').is_some_and(|(_, rest)| rest == p)
                                })
                            }) {
                                Some(w) => format!("wildcard SAN {w}"),
                                None => {
                                    s4.warnings.push(format!(
                                        "the certificate does not cover {n} (its names: {}): clients will refuse it",
                                        names.join(", ")
                                    ));
                                    "the default (first) certificate: no SAN matches".to_owned()
                                }
                            },
                            None => "no server name: the default (first) certificate".into(),
                        };
                        s4.lines.push(format!(
                            "certificate {} ({}{}, {}): {why}",
                            files.cert_path.display(),
                            cert.common_name()
                                .map(|cn| format!("CN {cn}; "))
                                .unwrap_or_default(),
                            if names.is_empty() {
                                "no SAN names".to_owned()
                            } else {
                                format!("names {}", names.join(", "))
                            },
                            cert.key_type()
                        ));
                        if let Some(w) = expiry_warning(cert.not_after()) {
                            s4.warnings.push(w);
                        }
                    }
                }
                s4.lines.push(if t.alpn.is_empty() {
                    "ALPN: none offered".to_owned()
                } else {
                    format!("ALPN offered: {}", t.alpn.join(", "))
                });
                if t.tls13_only {
                    s4.lines.push("TLS 1.3 only".into());
                }
            }
            None => s4.lines.push("no TLS settings".into()),
        }
        self.push(s4);

        match found {
            SniTarget::Route {
                listener,
                entry,
                host,
            } => {
                let mut s5 = step("Route");
                let how = match host {
                    HostMatch::Any => "it takes every name".to_owned(),
                    HostMatch::Pattern(HostPattern::Exact(n)) => format!("exact name {n}"),
                    HostMatch::Pattern(HostPattern::Wildcard(w)) => format!("wildcard *.{w}"),
                };
                let through = if entry.route == "default" {
                    s5.lines.push(format!(
                        "no TLSRoute claims {shown_sni}: the listener's own backend {} takes it ({how})",
                        entry.backend
                    ));
                    format!("listener {}", listener.name)
                } else {
                    s5.lines.push(format!(
                        "TLSRoute {} ({how}) -> backend {}",
                        entry.route, entry.backend
                    ));
                    format!("TLSRoute {}", entry.route)
                };
                if !entry.access.is_open() {
                    let (line, refused) =
                        self.access_line(&entry.access, &format!("route {}", entry.route));
                    s5.lines.push(line);
                    if let Some(why) = refused {
                        self.push(s5);
                        return Err(format!("{why}: the TLS connection is closed"));
                    }
                }
                self.push(s5);
                Ok(Routed::Backends(Reached {
                    backends: vec![(entry.backend.clone(), 1)],
                    through,
                    transport: Transport::Tcp,
                }))
            }
            SniTarget::Http { .. } => {
                let https: Vec<&'a Arc<Listener>> = sockets
                    .iter()
                    .copied()
                    .filter(|l| l.protocol == Protocol::Https)
                    .collect();
                self.http(None, &https, bind, "https")
            }
        }
    }

    /// An HTTP (or HTTPS, after the TLS step) socket: the listener by host, the router, the
    /// rule's filters.
    fn http(
        &mut self,
        s3: Option<Step>,
        sockets: &[&'a Arc<Listener>],
        bind: &str,
        scheme: &'static str,
    ) -> Result<Routed, String> {
        let req: &'a Request = self.req;
        let target = &req.target;
        let host = target.http_host();
        let listeners: Vec<Arc<Listener>> = sockets.iter().map(|l| Arc::clone(l)).collect();
        // As `Router::build`: the listener by host (exact, longest wildcard, then none).
        let mut by_host: HostTable<&Arc<Listener>> = HostTable::default();
        for l in &listeners {
            let key = match &l.hostname {
                Some(p) => HostMatch::Pattern(p.clone()),
                None => HostMatch::Any,
            };
            by_host.insert(&key, l);
        }
        let selected = by_host.get(Some(&host)).copied();
        let plain = s3.is_some();
        if let Some(mut s3) = s3 {
            match selected {
                Some(l) => {
                    s3.lines.push(format!(
                        "{}, HTTP on {bind}{}",
                        l.name,
                        match &l.hostname {
                            Some(h) => format!(", hostname {h}"),
                            None => String::new(),
                        }
                    ));
                    let (line, refused) = self.access_line(&l.access, &l.name);
                    s3.lines.push(line);
                    if let Some(why) = refused {
                        self.push(s3);
                        return Err(format!("{why}: the request gets 403"));
                    }
                }
                None => s3.lines.push(format!("HTTP socket on {bind}")),
            }
            self.push(s3);
        }

        let mut s5 = step("Route");
        s5.lines.push(format!(
            "request: {} {scheme}://{host}{}{}{}",
            self.req.method,
            target
                .host_port()
                .map(|p| format!(":{p}"))
                .unwrap_or_default(),
            target.path,
            target
                .query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        ));
        let router = Router::build(&listeners);
        let matched = router.route(
            &host,
            &self.req.method,
            &target.path,
            target.query.as_deref(),
            &self.req.headers,
        );
        let Some(m) = matched else {
            let Some(l) = selected else {
                let names: Vec<String> = listeners
                    .iter()
                    .filter_map(|l| l.hostname.as_ref().map(ToString::to_string))
                    .collect();
                s5.lines.push(format!(
                    "404: no listener on this socket serves host {host} (hostnames: {})",
                    names.join(", ")
                ));
                s5.warnings
                    .push(format!("no route serves this hostname: {host}"));
                self.push(s5);
                return Err(format!("404: no route serves {host} on {bind}"));
            };
            let serving: Vec<&str> = l
                .http_routes
                .iter()
                .filter(|r| r.hosts.iter().any(|h| host_match(h, &host)))
                .map(|r| r.route.as_str())
                .collect();
            if serving.is_empty() {
                let names: BTreeSet<String> = l
                    .http_routes
                    .iter()
                    .flat_map(|r| r.hosts.iter().map(ToString::to_string))
                    .collect();
                s5.lines.push(format!(
                    "404: no HTTPRoute on {} serves host {host}",
                    l.name
                ));
                s5.warnings.push(format!(
                    "no route serves this hostname: {host} (routes on {} serve: {})",
                    l.name,
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ));
                self.push(s5);
                return Err(format!("404: no route serves {host} on {}", l.name));
            }
            s5.lines.push(format!(
                "404: route{} {} serve{} {host}, but no rule matches {} {}",
                if serving.len() == 1 { "" } else { "s" },
                serving.join(", "),
                if serving.len() == 1 { "s" } else { "" },
                self.req.method,
                target.path
            ));
            self.push(s5);
            return Err(format!(
                "404: no rule of {} matches {} {}",
                serving.join(", "),
                self.req.method,
                target.path
            ));
        };

        let listener = m.listener;
        if !plain {
            // HTTPS: the listener's lists (shown with the listener) give 403 per request.
            if let (_, Some(why)) = self.access_line(&listener.access, &listener.name) {
                s5.lines.push(format!(
                    "403: refused by the access lists of {}",
                    listener.name
                ));
                self.push(s5);
                return Err(format!("{why}: the request gets 403"));
            }
        }
        let route_index = listener
            .http_routes
            .iter()
            .position(|e| std::ptr::eq(&e.access, m.access));
        let which = if m.route == "default"
            && route_index.is_some_and(|i| i + 1 == listener.http_routes.len())
        {
            format!(
                "the listener's own backend (route default) rule {}",
                m.rule_index
            )
        } else {
            format!("HTTPRoute {} rule {}", m.route, m.rule_index)
        };
        s5.lines
            .push(format!("{which}: {}", winning_match(&m, &target.path)));
        for other in runner_ups(&listeners, &m, route_index, self.req, &host) {
            s5.lines
                .push(format!("also matches, lower precedence: {other}"));
        }
        if !m.access.is_open() {
            let (line, refused) = self.access_line(m.access, &format!("route {}", m.route));
            s5.lines.push(line);
            if let Some(why) = refused {
                self.push(s5);
                return Err(format!("{why}: the request gets 403"));
            }
        }
        let through = format!("route {} rule {}", m.route, m.rule_index);
        let mut path_sent = target.path.clone();
        for filter in &m.rule.filters {
            match filter {
                HttpFilter::RequestRedirect(r) => {
                    let location = redirect_location(
                        r,
                        scheme,
                        &host,
                        target.host_port(),
                        &target.path,
                        target.query.as_deref(),
                        m.prefix,
                    );
                    s5.lines.push(format!(
                        "RequestRedirect: {} Location: {location}",
                        r.status
                    ));
                    self.push(s5);
                    let what = format!(
                        "{} is answered by Gatehouse with a {} redirect to {location} ({through})",
                        target.text, r.status
                    );
                    self.redirect = Some((r.status, location));
                    return Ok(Routed::Answered(what));
                }
                HttpFilter::UrlRewrite(u) => {
                    if let Some(p) = &u.path {
                        path_sent = rewrite_path(p, &target.path, m.prefix);
                    }
                    s5.lines.push(format!(
                        "URLRewrite: the backend is sent Host {} and path {path_sent}",
                        u.hostname.as_deref().unwrap_or(&host)
                    ));
                }
                HttpFilter::RequestHeaderModifier(h) => {
                    s5.lines
                        .push(format!("RequestHeaderModifier: {}", modifier_text(h)));
                }
                HttpFilter::ResponseHeaderModifier(h) => {
                    s5.lines
                        .push(format!("ResponseHeaderModifier: {}", modifier_text(h)));
                }
            }
        }
        let t = &m.rule.timeouts;
        if t.request.is_some() || t.backend_request.is_some() {
            let text = |d: Option<Duration>| {
                d.map_or("none".to_owned(), gatehouse_config::format_duration)
            };
            s5.lines.push(format!(
                "timeouts: request {}, backend request {}",
                text(t.request),
                text(t.backend_request)
            ));
        }
        let backends: Vec<(String, u32)> = m
            .rule
            .backends
            .iter()
            .filter(|b| b.weight > 0)
            .map(|b| (b.backend.clone(), b.weight))
            .collect();
        if backends.is_empty() {
            s5.lines
                .push("the rule has no backend with a weight: 500".into());
            self.push(s5);
            return Err(format!("500: {through} has no backend"));
        }
        if m.rule.backends.len() > 1 {
            let total: u64 = backends.iter().map(|(_, w)| u64::from(*w)).sum();
            let shares: Vec<String> = m
                .rule
                .backends
                .iter()
                .map(|b| {
                    format!(
                        "{} {}%",
                        b.backend,
                        u64::from(b.weight) * 100 / total.max(1)
                    )
                })
                .collect();
            s5.lines.push(format!(
                "backends share requests by weight: {}",
                shares.join(", ")
            ));
        }
        self.push(s5);
        Ok(Routed::Backends(Reached {
            backends,
            through,
            transport: Transport::Tcp,
        }))
    }

    // ---------------------------------------------------------------- 6. Backend

    fn backend(&mut self, reached: &Reached) -> Result<String, String> {
        let mut s = step("Backend");
        let mut first_pick: Option<String> = None;
        let mut failures: Vec<String> = Vec::new();
        let mut unknown_health = false;
        for (name, _) in &reached.backends {
            let Some(b) = self.config.backends.get(name) else {
                s.lines.push(format!("backend {name} does not exist"));
                failures.push(format!("backend {name} does not exist"));
                continue;
            };
            let check = match &b.health_check {
                Some(c) => format!(
                    "health check {} every {}",
                    match &c.kind {
                        HealthCheckKind::Tcp => "TCP".to_owned(),
                        HealthCheckKind::Tls { .. } => "TLS".to_owned(),
                        HealthCheckKind::Udp { .. } => "UDP".to_owned(),
                        HealthCheckKind::Http { path, .. } => format!("HTTP GET {path}"),
                    },
                    gatehouse_config::format_duration(c.interval)
                ),
                None => "no active health check".to_owned(),
            };
            let mut extras = vec![b.balance.to_string(), check];
            if b.tls.is_some() {
                extras.push("TLS to the endpoints".into());
            }
            if let Some(v) = b.proxy_protocol {
                extras.push(match v {
                    gatehouse_config::ProxyProtocolVersion::V1 => "sends a PROXY header v1".into(),
                    gatehouse_config::ProxyProtocolVersion::V2 => "sends a PROXY header v2".into(),
                });
            }
            s.lines
                .push(format!("backend {name} ({})", extras.join(", ")));
            // The endpoints with their health.
            let mut addrs: Vec<(SocketAddr, u32)> = Vec::new();
            let mut health: Vec<Health> = Vec::new();
            for e in &b.endpoints {
                match &e.target {
                    EndpointTarget::Addr(a) => {
                        let h = if e.weight == 0 {
                            Health::Unknown("draining: takes no new connections, not probed".into())
                        } else {
                            self.health.get(name, *a)
                        };
                        s.lines.push(format!("  {a}  weight {}  {h}", e.weight));
                        if let Health::Down(why) = &h {
                            s.warnings.push(format!(
                                "backend port not open: {a} of backend {name} ({})",
                                why.split(':').next().unwrap_or(why)
                            ));
                        }
                        addrs.push((*a, e.weight));
                        health.push(h);
                    }
                    EndpointTarget::Host { host, port } => {
                        s.lines.push(format!(
                            "  {host}:{port}  weight {}  a name, resolved when Gatehouse runs (not resolved offline)",
                            e.weight
                        ));
                        unknown_health = true;
                    }
                }
            }
            let usable =
                |i: usize| addrs[i].1 > 0 && !matches!(health.get(i), Some(Health::Down(_)));
            let candidates: Vec<String> = (0..addrs.len())
                .filter(|&i| usable(i))
                .map(|i| addrs[i].0.to_string())
                .collect();
            let names = b
                .endpoints
                .iter()
                .any(|e| matches!(e.target, EndpointTarget::Host { .. }));
            if candidates.is_empty() && !names {
                let why = if addrs.iter().all(|(_, w)| *w == 0) {
                    "every endpoint has weight 0".to_owned()
                } else {
                    "no endpoint is up".to_owned()
                };
                s.lines.push(format!("pick: none ({why})"));
                failures.push(format!(
                    "backend {name}: {why}{}",
                    match reached.transport {
                        Transport::Udp => ": datagrams go nowhere",
                        Transport::Tcp if reached.through.starts_with("route ") =>
                            ": requests get 503",
                        Transport::Tcp => ": connections are closed",
                    }
                ));
                continue;
            }
            let pick: Option<usize> = match b.balance {
                Balance::RoundRobin => {
                    let weights: Vec<u32> = addrs.iter().map(|(_, w)| *w).collect();
                    let order = balance::schedule(&weights);
                    let mut cursor = 0usize;
                    let p = balance::round_robin(
                        &order,
                        || {
                            cursor += 1;
                            cursor - 1
                        },
                        usable,
                    );
                    s.lines.push(format!(
                        "pick: in turn among {} (smooth weighted round-robin)",
                        candidates.join(", ")
                    ));
                    p
                }
                Balance::LeastConnections => {
                    let p =
                        balance::least_connections(addrs.len(), 0, |i| addrs[i].1, |_| 0, usable);
                    s.lines.push(format!(
                        "pick: the fewest open connections per weight among {} (offline none are open: they take turns)",
                        candidates.join(", ")
                    ));
                    p
                }
                Balance::ConsistentHash => match self.req.from {
                    Some(client) => {
                        let p = balance::consistent_hash(
                            client,
                            addrs.len(),
                            |i| addrs[i].0,
                            |i| addrs[i].1,
                            usable,
                        );
                        if let Some(i) = p {
                            s.lines.push(format!(
                                "pick: {} for client {client} (consistent hash of the client address; it stays there while that endpoint is up)",
                                addrs[i].0
                            ));
                        }
                        p
                    }
                    None => {
                        s.lines.push(format!(
                            "pick: one of {}, by a consistent hash of the client address (pass --from to compute it)",
                            candidates.join(", ")
                        ));
                        None
                    }
                },
            };
            if first_pick.is_none() {
                first_pick = Some(match pick {
                    Some(i) => {
                        if matches!(health.get(i), Some(Health::Unknown(_))) {
                            unknown_health = true;
                        }
                        addrs[i].0.to_string()
                    }
                    None if candidates.len() == 1 => candidates[0].clone(),
                    None if candidates.is_empty() => format!("an endpoint of {name}"),
                    None => format!("one of {}", candidates.join(", ")),
                });
            }
        }
        self.push(s);
        let target = &self.req.target.text;
        match (first_pick, failures.first()) {
            (None, Some(why)) => Err(why.clone()),
            (None, None) => Err("no backend".into()),
            (Some(pick), _) => {
                let mut out = format!("{target} would reach {pick} through {}", reached.through);
                if unknown_health {
                    out.push_str(" (health unknown offline)");
                }
                if !failures.is_empty() {
                    out.push_str(&format!("; but {}", failures.join("; ")));
                }
                Ok(out)
            }
        }
    }
}

/// The signature schemes a current browser offers: the certificate chosen for it is what the
/// trace reports (`CertResolver::choose` skips certificates the client cannot verify).
const CLIENT_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

/// A query packet for `name`/`qtype`, as a stub resolver sends it.
fn query(name: &Name, qtype: RecordType) -> Option<Vec<u8>> {
    let mut message = Message::new(0x7ace, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let mut q = Query::query(name.clone(), qtype);
    q.set_query_class(DNSClass::IN);
    message.add_query(q);
    message.to_vec().ok()
}

/// Whether a zone record owner (`app.home.arpa`, `*.lab.home.arpa`) covers `host`.
fn owner_matches(owner: &str, host: &str) -> bool {
    match owner.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|h| h.strip_suffix('.'))
            .is_some_and(|h| !h.is_empty()),
        None => owner == host,
    }
}

/// The most specific local zone holding `host`.
fn zone_of(zones: &[gatehouse_config::DnsZone], host: &str) -> Option<String> {
    zones
        .iter()
        .filter(|z| host == z.name || host.ends_with(&format!(".{}", z.name)))
        .max_by_key(|z| z.name.len())
        .map(|z| z.name.clone())
}

/// Where an answered record comes from: `static record`, `automatic record: listener X
/// serves it`.
fn record_origin(zones: &[gatehouse_config::DnsZone], owner: &str, ip: Option<IpAddr>) -> String {
    // The record the server answered from: its own name first, then the longest wildcard
    // (RFC 4592: a wildcard answers only names without records of their own).
    let found = zones
        .iter()
        .flat_map(|z| z.records.iter())
        .filter(|r| {
            owner_matches(&r.name, owner)
                && match (&r.data, ip) {
                    (RecordData::A(a), Some(IpAddr::V4(b))) => *a == b,
                    (RecordData::Aaaa(a), Some(IpAddr::V6(b))) => *a == b,
                    (RecordData::Cname(_), None) => true,
                    _ => false,
                }
        })
        .max_by_key(|r| (r.name == owner, r.name.len()));
    match found {
        Some(r) => {
            let wild = if r.name.starts_with("*.") {
                format!(" {}", r.name)
            } else {
                String::new()
            };
            match &r.source {
                RecordSource::Static => format!("static{wild} record"),
                RecordSource::Auto { listener, .. } => {
                    format!("automatic{wild} record: listener {listener} serves it")
                }
            }
        }
        None => "record".to_owned(),
    }
}

/// Whether a listener bound to `bind` takes traffic for `ip`.
fn binds(bind: IpAddr, ip: IpAddr) -> bool {
    bind == ip || (bind.is_unspecified() && bind.is_ipv4() == ip.is_ipv4())
}

/// Whether `ip` is an address of this node: binding a UDP socket to it (no packet is sent)
/// succeeds only for local addresses.
fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

fn host_match(h: &HostMatch, host: &str) -> bool {
    match h {
        HostMatch::Any => true,
        HostMatch::Pattern(p) => p.matches(host),
    }
}

/// `set X-A: 1; add Via: gatehouse; remove X-Debug`.
fn modifier_text(m: &gatehouse_config::HeaderModifier) -> String {
    let mut parts = Vec::new();
    for (n, v) in &m.set {
        parts.push(format!("set {n}: {v}"));
    }
    for (n, v) in &m.add {
        parts.push(format!("add {n}: {v}"));
    }
    for n in &m.remove {
        parts.push(format!("remove {n}"));
    }
    parts.join("; ")
}

/// One match, as the config writes it.
fn match_text(m: &HttpMatch) -> String {
    let mut parts = vec![match &m.path {
        PathMatch::Exact(p) => format!("Exact {p}"),
        PathMatch::Prefix(p) => format!("PathPrefix {p}"),
        PathMatch::Regex(r) => format!("RegularExpression {r}"),
    }];
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    let value = |v: &StringMatch| match v {
        StringMatch::Exact(x) => format!("= {x}"),
        StringMatch::Regex(r) => format!("~ {r}"),
    };
    for h in &m.headers {
        parts.push(format!("header {} {}", h.name, value(&h.value)));
    }
    for q in &m.query {
        parts.push(format!("query {} {}", q.name, value(&q.value)));
    }
    parts.join(", ")
}

/// The match of the winning rule that selected the request, as far as the router tells
/// (it reports the prefix of a `PathPrefix` match).
fn winning_match(m: &Matched<'_>, path: &str) -> String {
    let rule: &HttpRule = m.rule;
    if rule.matches.is_empty() {
        return "every request (the rule has no matches)".into();
    }
    if rule.matches.len() == 1 {
        return match_text(&rule.matches[0]);
    }
    let fitting: Vec<&HttpMatch> = rule
        .matches
        .iter()
        .filter(|x| match (&x.path, m.prefix) {
            (PathMatch::Prefix(p), Some(want)) => p == want,
            (PathMatch::Exact(p), None) => p == path,
            (PathMatch::Regex(_), None) => true,
            _ => false,
        })
        .collect();
    match fitting.as_slice() {
        [one] => match_text(one),
        _ => rule
            .matches
            .iter()
            .map(match_text)
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

/// The rules that also match the request, in precedence order after the winner (at most
/// three): the real router, asked again with each winner switched off.
fn runner_ups(
    listeners: &[Arc<Listener>],
    first: &Matched<'_>,
    route_index: Option<usize>,
    req: &Request,
    host: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut listeners = listeners.to_vec();
    let Some(mut route_index) = route_index else {
        return out;
    };
    let mut disable = (first.listener.name.clone(), route_index, first.rule_index);
    while out.len() < 3 {
        let Some(pos) = listeners.iter().position(|l| l.name == disable.0) else {
            break;
        };
        let mut l = (*listeners[pos]).clone();
        let Some(entry) = l.http_routes.get_mut(disable.1) else {
            break;
        };
        let mut rules = (*entry.rules).clone();
        let Some(rule) = rules.get_mut(disable.2) else {
            break;
        };
        // An `Exact` path of "" matches nothing: every request path starts with `/`.
        rule.matches = vec![HttpMatch {
            path: PathMatch::Exact(String::new()),
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        }];
        entry.rules = Arc::new(rules);
        listeners[pos] = Arc::new(l);
        let router = Router::build(&listeners);
        let Some(m) = router.route(
            host,
            &req.method,
            &req.target.path,
            req.target.query.as_deref(),
            &req.headers,
        ) else {
            break;
        };
        let Some(ri) = m
            .listener
            .http_routes
            .iter()
            .position(|e| std::ptr::eq(&e.access, m.access))
        else {
            break;
        };
        route_index = ri;
        out.push(format!(
            "route {} rule {}: {}",
            m.route,
            m.rule_index,
            winning_match(&m, &req.target.path)
        ));
        disable = (m.listener.name.clone(), route_index, m.rule_index);
    }
    out
}

/// A warning when the certificate has expired or expires within two weeks.
fn expiry_warning(not_after: i64) -> Option<String> {
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(i64::MAX);
    let days = (not_after - now).div_euclid(86_400);
    if not_after < now {
        Some(format!(
            "the certificate expired {} days ago: clients will refuse it",
            -days
        ))
    } else if days < 14 {
        Some(format!("the certificate expires in {days} days"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn targets_parse_as_a_client_would_read_them() {
        let a = t("https://App.Example.test./path?x=1#frag");
        assert_eq!(
            (a.scheme, a.host.as_str(), a.port, a.explicit_port),
            (Scheme::Https, "app.example.test", 443, false)
        );
        assert_eq!(
            (a.path.as_str(), a.query.as_deref()),
            ("/path", Some("x=1"))
        );
        let b = t("http://app.example.test:8080");
        assert_eq!(
            (b.port, b.explicit_port, b.path.as_str()),
            (8080, true, "/")
        );
        let c = t("[::1]:443");
        assert_eq!(
            (c.scheme, c.ip, c.port),
            (Scheme::Any, Some("::1".parse().unwrap()), 443)
        );
        assert_eq!(c.http_host(), "[::1]");
        assert_eq!(c.sni(), None);
        let d = t("udp://bootstrap.home.arpa:4433");
        assert_eq!((d.scheme, d.port), (Scheme::Udp, 4433));
        assert_eq!(t("tcp://127.0.0.1:5432").ip, Some([127, 0, 0, 1].into()));
        for bad in [
            "ftp://x:1",
            "tcp://db.lan",
            "db.lan",
            "db.lan:0",
            "db.lan:http",
            "x:1/path",
            "https://user@x/",
            "https://::1/",
            "https:///",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn requests_read_methods_and_headers() {
        let r = Request::new(
            t("http://a.test/"),
            None,
            Some("post"),
            &["X-Canary: true".into()],
        )
        .unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.headers.get("x-canary").unwrap(), "true");
        assert!(Request::new(t("http://a.test/"), None, None, &["nocolon".into()]).is_err());
    }

    #[test]
    fn owners_and_wildcards() {
        assert!(owner_matches("app.home.arpa", "app.home.arpa"));
        assert!(owner_matches("*.lab.home.arpa", "x.y.lab.home.arpa"));
        assert!(!owner_matches("*.lab.home.arpa", "lab.home.arpa"));
        assert!(!owner_matches("app.home.arpa", "x.app.home.arpa"));
    }
}
