//! The compiled config: typed, validated and immutable. This is what the proxy runs on; it
//! holds no YAML types and no spans. Two snapshots compare with `==` piece by piece, which is
//! how a reload finds what changed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A validated configuration snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Every socket to listen on: gateway listeners (one per address) and forwards.
    pub listeners: Vec<Arc<Listener>>,
    /// Backend pools by name.
    pub backends: BTreeMap<String, Arc<Backend>>,
    /// How long a shutdown waits for open connections.
    pub drain_timeout: Duration,
    /// The Gateway API manifest files the config was read with (`gatewayApi.manifests`).
    pub manifests: Vec<PathBuf>,
    /// The DNS server, when `dns` is configured.
    pub dns: Option<Arc<DnsConfig>>,
    /// VRRP instances: the virtual addresses this node holds while it is master.
    pub vrrp: Vec<Arc<VrrpInstance>>,
    /// Address pools, with the addresses handed out.
    pub pools: BTreeMap<String, AddressPool>,
    /// The admin endpoint, when `admin` is configured.
    pub admin: Option<AdminConfig>,
    /// The Kubernetes provider, when `kubernetes` is configured.
    pub kubernetes: Option<Arc<KubernetesConfig>>,
}

/// `kubernetes`: which cluster to watch, what to take from it and where its addresses come
/// from (docs/kubernetes.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// A kubeconfig file; `None`: in-cluster credentials, then `$KUBECONFIG` or
    /// `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (`None`: its current context).
    pub context: Option<String>,
    /// Namespaces to watch (empty: all).
    pub namespaces: Vec<String>,
    /// Only LoadBalancer Services with these labels.
    pub label_selector: Option<crate::LabelSelector>,
    /// Only LoadBalancer Services of this `spec.loadBalancerClass` (`None`: those with none).
    pub load_balancer_class: Option<String>,
    /// The pool LoadBalancer Services and Gateways take addresses from.
    pub pool: Option<String>,
    /// Gateways of this class are served.
    pub gateway_class_name: String,
    /// How endpoints are reached.
    pub endpoints: EndpointsMode,
    /// LoadBalancer Services get `NAME.NAMESPACE.ZONE` in the DNS server.
    pub dns_zone: Option<String>,
    /// The VRRP instance that holds the pool: only its master writes status. `None`: this
    /// node always writes.
    pub status_instance: Option<String>,
    /// Where the objects last seen are kept, to serve them at a start without the API server.
    pub cache_file: Option<PathBuf>,
}

impl KubernetesConfig {
    /// The `controllerName` of the GatewayClasses Gatehouse implements.
    pub const CONTROLLER_NAME: &'static str = "gatehouse.dev/gateway-controller";
}

/// How a Service's endpoints are reached from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointsMode {
    /// Pod addresses and target ports, from EndpointSlices.
    Pods,
    /// Every ready node's InternalIP and the Service port's `nodePort`.
    NodePorts,
}

/// Where the admin endpoint (health, readiness, metrics, status, the status page and the
/// access stream) listens, and the bearer token it asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Address and port (port 0: any free port, reported in the `listening` line).
    pub listen: SocketAddr,
    /// When set, every path but `/healthz` needs `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

impl AdminConfig {
    /// The default address: loopback only.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9100);
}

/// The token stays out of debug output (and so out of any log that prints a config).
impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Config {
    /// A config that serves nothing (what runs before the first one is applied).
    pub fn empty(drain_timeout: Duration) -> Config {
        Config {
            listeners: Vec::new(),
            backends: BTreeMap::new(),
            drain_timeout,
            manifests: Vec::new(),
            dns: None,
            vrrp: Vec::new(),
            pools: BTreeMap::new(),
            admin: None,
            kubernetes: None,
        }
    }

    /// Every file the config names besides itself (certificates, keys, CA bundles, Gateway
    /// API manifests): a change to any of them is a change of config.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = self.manifests.clone();
        out.extend(self.kubernetes.as_ref().and_then(|k| k.kubeconfig.clone()));
        for l in &self.listeners {
            if let Some(TlsMode::Terminate(t)) = l.tls.as_ref().map(|t| &t.mode) {
                for c in &t.certificates {
                    out.push(c.cert_path.clone());
                    out.push(c.key_path.clone());
                }
            }
        }
        for b in self.backends.values() {
            if let Some(BackendTls {
                verify: BackendVerify::Ca { path, .. },
                ..
            }) = &b.tls
            {
                out.push(path.clone());
            }
        }
        // Certificates from Kubernetes Secrets live in memory, not on disk.
        out.retain(|p| !p.starts_with(crate::overlay::MEMORY_PREFIX));
        out.sort();
        out.dedup();
        out
    }

    /// The listeners grouped by socket, in config order within each group: one listener for
    /// TCP; every TLS and HTTPS listener on the same address and port together; every HTTP
    /// listener on the same address and port together.
    pub fn sockets(&self) -> BTreeMap<ListenerKey, Vec<Arc<Listener>>> {
        let mut out: BTreeMap<ListenerKey, Vec<Arc<Listener>>> = BTreeMap::new();
        for l in &self.listeners {
            out.entry(l.key()).or_default().push(Arc::clone(l));
        }
        out
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Plain TCP, proxied byte for byte.
    Tcp,
    /// TLS over TCP: routed by the ClientHello's server name, then passed through or terminated.
    Tls,
    /// HTTP/1.1 and HTTP/2 (prior knowledge, h2c) in clear text, routed per request.
    Http,
    /// HTTP over TLS terminated here (ALPN `h2` and `http/1.1`), routed per request.
    Https,
    /// UDP datagrams, relayed per client flow.
    Udp,
}

impl Protocol {
    /// The socket type under the protocol: listeners whose keys share a transport, address
    /// and port share one socket.
    pub fn transport(self) -> Transport {
        match self {
            Protocol::Tcp | Protocol::Tls | Protocol::Http | Protocol::Https => Transport::Tcp,
            Protocol::Udp => Transport::Udp,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Udp => "UDP",
        })
    }
}

/// The kind of socket a listener needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// A TCP listening socket.
    Tcp,
    /// A UDP socket.
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        })
    }
}

/// A host name pattern as Gateway API writes it: `app.example.com`, or `*.example.com`, which
/// matches any name with at least one more label (`a.example.com`, `a.b.example.com`) but not
/// `example.com` itself. Stored in lower case without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this name.
    Exact(String),
    /// Any name ending in `.SUFFIX` (the field holds `SUFFIX`, without the leading `*.`).
    Wildcard(String),
}

impl HostPattern {
    /// Whether `name` (lower case, no trailing dot) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(e) => e == name,
            HostPattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        }
    }

    /// The names both patterns match, as a pattern (Gateway API's listener/route hostname
    /// intersection), or `None` when no name matches both.
    pub fn intersect(&self, other: &HostPattern) -> Option<HostPattern> {
        use HostPattern::*;
        match (self, other) {
            (Exact(a), Exact(b)) => (a == b).then(|| self.clone()),
            (Exact(e), w @ Wildcard(_)) | (w @ Wildcard(_), Exact(e)) => {
                w.matches(e).then(|| Exact(e.clone()))
            }
            (Wildcard(a), Wildcard(b)) => {
                if a == b || Wildcard(b.clone()).matches(a) {
                    Some(self.clone())
                } else if Wildcard(a.clone()).matches(b) {
                    Some(other.clone())
                } else {
                    None
                }
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(e) => f.write_str(e),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// Which server names a route entry serves on its listener.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Any name, and hellos without one (a listener with no hostname, a route with none).
    Any,
    /// Names matching the pattern.
    Pattern(HostPattern),
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => f.write_str("*"),
            HostMatch::Pattern(p) => p.fmt(f),
        }
    }
}

/// One way into a listener's backends: a route (or the listener's own default `backend`)
/// with the server names it serves there, already intersected with the listener's hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// The route's name, or `default` for the listener's own `backend`.
    pub route: String,
    /// Server names served; a route matches if any does.
    pub hosts: Vec<HostMatch>,
    /// The backend pool.
    pub backend: String,
    /// Client addresses the route serves (the listener's own list applies first).
    pub access: Access,
}

/// An HTTPRoute as attached to one listener: the names it serves there (intersected with the
/// listener's hostname) and its rules.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRouteEntry {
    /// The route's name.
    pub route: String,
    /// Host names served; a request matches if its host matches any.
    pub hosts: Vec<HostMatch>,
    /// The rules, in config order.
    pub rules: Arc<Vec<HttpRule>>,
    /// Client addresses the route serves; others get 403.
    pub access: Access,
}

/// One rule of an HTTPRoute: any of its matches selects it; its filters run; its backends
/// share the requests by weight.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRule {
    /// Alternatives; a rule with none matches every request (as `PathPrefix /`).
    pub matches: Vec<HttpMatch>,
    /// Applied in order.
    pub filters: Vec<HttpFilter>,
    /// Where requests go, by weight. Empty only with a `RequestRedirect` filter (or the
    /// request gets 500, as Gateway API says for a rule without backends).
    pub backends: Vec<WeightedBackend>,
    /// Limits on a request through this rule.
    pub timeouts: HttpTimeouts,
}

/// A request matches when every present condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpMatch {
    /// On the path (always present: `PathPrefix /` by default).
    pub path: PathMatch,
    /// On headers (names lower case).
    pub headers: Vec<HeaderMatch>,
    /// On query parameters (names as written, compared exactly).
    pub query: Vec<QueryMatch>,
    /// On the method (upper case).
    pub method: Option<String>,
}

/// How a path is matched.
#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    /// The whole path, exactly.
    Exact(String),
    /// Whole path segments: `/api` matches `/api`, `/api/` and `/api/v1`, not `/apiv1`.
    Prefix(String),
    /// A regular expression that must match the whole path.
    Regex(String),
}

/// How a header or query value is matched.
#[derive(Debug, Clone, PartialEq)]
pub enum StringMatch {
    /// Exactly this value.
    Exact(String),
    /// A regular expression that must match the whole value.
    Regex(String),
}

/// A condition on one header.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatch {
    /// Lower case.
    pub name: String,
    /// The value condition.
    pub value: StringMatch,
}

/// A condition on one query parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryMatch {
    /// The parameter name, compared exactly.
    pub name: String,
    /// The value condition.
    pub value: StringMatch,
}

/// Gateway API HTTPRoute filters.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpFilter {
    /// Answer with a redirect instead of proxying.
    RequestRedirect(Redirect),
    /// Change request headers before proxying.
    RequestHeaderModifier(HeaderModifier),
    /// Change response headers before answering.
    ResponseHeaderModifier(HeaderModifier),
    /// Change the host and/or path sent to the backend.
    UrlRewrite(UrlRewrite),
}

/// A `RequestRedirect`: each part left `None` keeps the request's.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Port (omitted from the location when it is the scheme's default).
    pub port: Option<u16>,
    /// Path change.
    pub path: Option<PathModifier>,
    /// 301 or 302 (Gateway API), also 303, 307, 308.
    pub status: u16,
}

/// How a filter changes the path.
#[derive(Debug, Clone, PartialEq)]
pub enum PathModifier {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the part the rule's `PathPrefix` matched.
    ReplacePrefixMatch(String),
}

/// Header changes: `set` replaces, `add` appends, `remove` deletes (names lower case).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderModifier {
    /// Headers to set, replacing any value.
    pub set: Vec<(String, String)>,
    /// Headers to add, keeping existing values.
    pub add: Vec<(String, String)>,
    /// Header names to remove.
    pub remove: Vec<String>,
}

/// A `URLRewrite`.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlRewrite {
    /// The `Host` sent to the backend.
    pub hostname: Option<String>,
    /// The path sent to the backend.
    pub path: Option<PathModifier>,
}

/// A backend and its share of a rule's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend {
    /// Backend name.
    pub backend: String,
    /// Relative share; 0 takes none.
    pub weight: u32,
}

/// Gateway API HTTPRoute timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpTimeouts {
    /// From the request's arrival to the end of the response headers (none: no limit beyond
    /// the backend timeout).
    pub request: Option<Duration>,
    /// One attempt at the backend: connect, send, first byte of the response.
    pub backend_request: Option<Duration>,
}

/// HTTP settings of an HTTP or HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Limit on receiving a request's headers (slow clients are cut off).
    pub header_timeout: Duration,
    /// Largest request head accepted; more is answered 431.
    pub max_header_bytes: usize,
    /// Most request headers accepted; more is answered 431.
    pub max_headers: usize,
    /// A kept-alive client connection with no request for this long is closed.
    pub keepalive_timeout: Duration,
}

impl Default for HttpSettings {
    /// What an HTTP or HTTPS listener gets without `http` (docs/config.md).
    fn default() -> Self {
        HttpSettings {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 65_536,
            max_headers: 100,
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

/// A certificate and key read from PEM files, as a terminating listener serves them.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    /// The certificate chain file (leaf first).
    pub cert_path: PathBuf,
    /// The private key file.
    pub key_path: PathBuf,
    /// What the files held when the config was loaded.
    pub loaded: Arc<gatehouse_tls::certs::Certificate>,
}

impl PartialEq for CertificateFiles {
    /// Equal when the paths and the bytes are: a renewed certificate is a change.
    fn eq(&self, other: &Self) -> bool {
        self.cert_path == other.cert_path
            && self.key_path == other.key_path
            && *self.loaded == *other.loaded
    }
}

/// What a TLS listener does after reading the ClientHello.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsMode {
    /// Relay the hello and everything after it to the backend untouched; the backend
    /// terminates (Gateway API `Passthrough`).
    Passthrough,
    /// Complete the handshake here and send the plain stream to the backend.
    Terminate(Terminate),
}

/// TLS termination settings of a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminate {
    /// Certificates, in config order; the first is the default for names no other matches.
    pub certificates: Vec<CertificateFiles>,
    /// ALPN protocols offered, in preference order (none: no ALPN).
    pub alpn: Vec<String>,
    /// Refuse TLS 1.2.
    pub tls13_only: bool,
}

/// TLS settings of a `TLS` or `HTTPS` listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTls {
    /// Passthrough or termination.
    pub mode: TlsMode,
    /// Limit on receiving a complete ClientHello (and, when terminating, on the handshake).
    pub handshake_timeout: Duration,
}

/// One bound socket and what to do with its connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// `gateway/listener`, or `forward/NAME`.
    pub name: String,
    /// Address and port to bind (port 0: any free port, reported in the log).
    pub bind: SocketAddr,
    /// What it speaks.
    pub protocol: Protocol,
    /// Where connections go. A TCP listener has one entry (its `backend`); a TLS listener one
    /// per attached route and host, then its own default `backend` if it has one. Empty for
    /// HTTP and HTTPS listeners, whose requests go by `http_routes`.
    pub routes: Vec<RouteEntry>,
    /// The listener's own `hostname` (TLS, HTTP, HTTPS): names outside it are not served here.
    pub hostname: Option<HostPattern>,
    /// TLS settings (TLS and HTTPS listeners).
    pub tls: Option<ListenerTls>,
    /// HTTP routes attached (HTTP and HTTPS listeners), in config order, then the listener's
    /// own `backend` (if any) as a route named `default` with one rule sending every request
    /// there.
    pub http_routes: Vec<HttpRouteEntry>,
    /// HTTP settings (HTTP and HTTPS listeners).
    pub http: Option<HttpSettings>,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Client addresses served: others are closed (TCP, TLS), get 403 (HTTP) or are dropped
    /// (UDP).
    pub access: Access,
    /// PROXY protocol headers accepted, and from whom.
    pub accept_proxy: Option<AcceptProxy>,
    /// Flow settings (UDP listeners).
    pub udp: Option<UdpSettings>,
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`; a bare
/// address is `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits are zero).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a
    /// dual-stack socket reports for an IPv4 client) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which client addresses may use a listener or route. A client in `deny` is refused; else,
/// when `allow` is not empty, a client outside it is refused. Empty lists refuse no one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    /// Networks served (empty: every address not denied).
    pub allow: Vec<Cidr>,
    /// Networks refused, whatever `allow` says.
    pub deny: Vec<Cidr>,
}

impl fmt::Display for Access {
    /// `allow 10.0.0.0/8; deny 10.0.0.5/32` (empty when both lists are).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (word, list) in [("allow", &self.allow), ("deny", &self.deny)] {
            if list.is_empty() {
                continue;
            }
            write!(f, "{sep}{word} ")?;
            for (i, c) in list.iter().enumerate() {
                write!(f, "{}{c}", if i == 0 { "" } else { ", " })?;
            }
            sep = "; ";
        }
        Ok(())
    }
}

impl Access {
    /// Whether a client at `ip` is served.
    pub fn allows(&self, ip: IpAddr) -> bool {
        !self.deny.iter().any(|c| c.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip)))
    }

    /// Whether every address is served (no lists).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// PROXY protocol headers a listener accepts. A connection from a trusted source must start
/// with a header (v1 or v2), and the address it carries is the client's from then on; a
/// connection from anywhere else whose first bytes are a PROXY header is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptProxy {
    /// Who may send a header (a tunnel, a front load balancer).
    pub trusted: Vec<Cidr>,
    /// Limit on receiving the whole header.
    pub timeout: Duration,
}

/// The PROXY protocol version sent to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// Text, TCP only.
    V1,
    /// Binary; carries the TLS server name as the authority, and UDP flows.
    V2,
}

/// Flow settings of a UDP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSettings {
    /// A flow with no datagram either way for this long ends (its backend socket closes).
    pub idle_timeout: Duration,
    /// Most flows at once; datagrams that would start another are dropped.
    pub max_flows: usize,
}

impl Default for UdpSettings {
    /// What a UDP listener gets without `udp` (docs/config.md).
    fn default() -> Self {
        UdpSettings {
            idle_timeout: Duration::from_secs(60),
            max_flows: 10_000,
        }
    }
}

/// What identifies a listening socket across reloads: a listener whose key is unchanged keeps
/// its socket, whatever else about it changed. Listeners on one address and port share a key,
/// and so one socket, when names tell them apart: TLS and HTTPS ones by the ClientHello's server
/// name, HTTP ones by the Host header (the compiler refuses any other sharing).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerKey {
    /// Transport.
    pub transport: Transport,
    /// Bound address.
    pub bind: SocketAddr,
    /// Only for port 0, where the address alone does not identify the socket.
    pub ephemeral_name: Option<String>,
}

impl Listener {
    /// The backends this listener's routes send to (TLS routes, then HTTP routes' rules), in
    /// route order (duplicates removed).
    pub fn backends(&self) -> Vec<&str> {
        let tls = self.routes.iter().map(|r| r.backend.as_str());
        let http = self
            .http_routes
            .iter()
            .flat_map(|r| r.rules.iter())
            .flat_map(|rule| rule.backends.iter())
            .map(|b| b.backend.as_str());
        let mut out: Vec<&str> = Vec::new();
        for b in tls.chain(http) {
            if !out.contains(&b) {
                out.push(b);
            }
        }
        out
    }

    /// The identity of this listener's socket.
    pub fn key(&self) -> ListenerKey {
        ListenerKey {
            transport: self.protocol.transport(),
            bind: self.bind,
            ephemeral_name: (self.bind.port() == 0).then(|| self.name.clone()),
        }
    }
}

/// How a pool picks an endpoint for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// In turn, in proportion to the weights (smooth weighted round-robin).
    RoundRobin,
    /// The endpoint with the fewest open connections relative to its weight.
    LeastConnections,
    /// Always the same endpoint for the same client address while it is healthy
    /// (weighted rendezvous hashing: removing an endpoint only moves its own clients).
    ConsistentHash,
}

impl Balance {
    /// The config spelling of each algorithm.
    pub const NAMES: [(&'static str, Balance); 3] = [
        ("RoundRobin", Balance::RoundRobin),
        ("LeastConnections", Balance::LeastConnections),
        ("ConsistentHash", Balance::ConsistentHash),
    ];
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Balance::NAMES
            .iter()
            .find(|(_, b)| b == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// Where an endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A literal address.
    Addr(SocketAddr),
    /// A name, resolved at start and every `resolve_interval`; every address it resolves to
    /// becomes an endpoint.
    Host {
        /// DNS name.
        host: String,
        /// Port.
        port: u16,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// One configured endpoint of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Where it is.
    pub target: Target,
    /// Relative share of new connections; 0 takes no new connections (draining).
    pub weight: u32,
}

/// Passive health: endpoints whose connects fail are taken out for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passive {
    /// Consecutive connect failures that eject an endpoint; 0 disables passive ejection.
    pub max_fails: u32,
    /// How long an ejected endpoint is skipped.
    pub fail_timeout: Duration,
}

/// What an active health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP connect that succeeds.
    Tcp,
    /// A TLS handshake that completes (with the backend's `tls` verification if it has one).
    Tls {
        /// Server name sent in the hello; none when absent.
        server_name: Option<String>,
    },
    /// A datagram sent to the endpoint, answered with one that starts with `expect` (any
    /// reply when `expect` is empty). An ICMP "port unreachable" fails the probe at once.
    Udp {
        /// The payload sent.
        send: Vec<u8>,
        /// The prefix the reply must have.
        expect: Vec<u8>,
    },
    /// `GET path` answered with a status in `expect_status`.
    Http {
        /// Request path, starting with `/`.
        path: String,
        /// `Host` header; the endpoint's address when absent.
        host: Option<String>,
        /// Accepted statuses.
        expect_status: RangeInclusive<u16>,
    },
}

/// Active health checking of every endpoint of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The probe.
    pub kind: HealthCheckKind,
    /// Probe this port of each endpoint's host instead of the endpoint's own port (a UDP
    /// service checked through its TCP or HTTP side).
    pub port: Option<u16>,
    /// Time between probes of one endpoint.
    pub interval: Duration,
    /// A probe slower than this fails.
    pub timeout: Duration,
    /// Consecutive successes that bring a down endpoint up.
    pub rise: u32,
    /// Consecutive failures that take an up endpoint down.
    pub fall: u32,
}

/// A named pool of endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Its name, as listeners refer to it.
    pub name: String,
    /// Endpoint choice.
    pub balance: Balance,
    /// The endpoints as configured (names not yet resolved).
    pub endpoints: Vec<EndpointSpec>,
    /// Limit on one connect attempt.
    pub connect_timeout: Duration,
    /// Further endpoints tried after a failed connect (each endpoint at most once).
    pub retries: u32,
    /// How often host names are resolved again.
    pub resolve_interval: Duration,
    /// Ejection on connect failure.
    pub passive: Passive,
    /// Active probing, if configured.
    pub health_check: Option<HealthCheck>,
    /// TLS towards the endpoints, if configured.
    pub tls: Option<BackendTls>,
    /// A PROXY protocol header sent first on every connection (and, v2, UDP flow).
    pub proxy_protocol: Option<ProxyProtocolVersion>,
}

/// How Gatehouse checks a backend's certificate.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendVerify {
    /// Against the CA certificates of a PEM file.
    Ca {
        /// The file.
        path: PathBuf,
        /// Its contents when the config was loaded.
        pem: Arc<Vec<u8>>,
    },
    /// Not at all (`insecureSkipVerify`): encrypted, but anyone can pose as the backend.
    Insecure,
}

/// TLS from Gatehouse to a backend's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendTls {
    /// Certificate verification.
    pub verify: BackendVerify,
    /// The name sent as SNI and verified; by default the endpoint's host name, or its IP
    /// address for a literal endpoint.
    pub server_name: Option<String>,
}

impl Backend {
    /// Whether any endpoint is given by name (and so needs resolving).
    pub fn has_hostnames(&self) -> bool {
        self.endpoints
            .iter()
            .any(|e| matches!(e.target, Target::Host { .. }))
    }
}

/// Formats a duration the way the config writes it (`250ms`, `2s`, `10m`, `1h`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The DNS server: where it listens, the zones it answers for, and where other names go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Addresses served, over UDP and TCP both.
    pub listen: Vec<SocketAddr>,
    /// Zones answered authoritatively (most specific first when they nest).
    pub zones: Vec<DnsZone>,
    /// Resolvers that names outside every zone (and every `forward_zones` entry) go to.
    pub forwarders: Vec<SocketAddr>,
    /// Names under a zone that go to its own resolvers (`cluster.local` to the cluster DNS).
    pub forward_zones: Vec<ForwardZone>,
    /// Clients allowed to have names forwarded (recursion); others get REFUSED for them.
    pub recursion_allow: Vec<Cidr>,
    /// Most answers kept in the forwarding cache.
    pub cache_size: usize,
}

/// A zone Gatehouse is authoritative for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsZone {
    /// Its apex, lower case, no trailing dot (`home.arpa`).
    pub name: String,
    /// TTL of records that set none, and of the SOA and NS.
    pub ttl: u32,
    /// The SOA record's fields.
    pub soa: Soa,
    /// Name servers (NS records at the apex), fully qualified.
    pub ns: Vec<String>,
    /// Every record, static and automatic, with fully qualified lower-case owner names.
    pub records: Vec<DnsRecord>,
}

/// The fields of a zone's SOA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server (`MNAME`), fully qualified.
    pub mname: String,
    /// Responsible mailbox as a name (`RNAME`, `hostmaster.home.arpa`).
    pub rname: String,
    /// Serial: changes whenever the zone's records do (a hash of them), so secondaries and
    /// caches can tell.
    pub serial: u32,
    /// Refresh, retry, expire, in seconds.
    pub refresh: u32,
    /// Retry interval in seconds.
    pub retry: u32,
    /// Expiry in seconds.
    pub expire: u32,
    /// Negative-answer TTL (`minimum`), in seconds.
    pub minimum: u32,
}

/// One resource record of a local zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Owner name, fully qualified, lower case, no trailing dot; `*.` at the front for a
    /// wildcard (`*.apps.home.arpa`).
    pub name: String,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The data.
    pub data: RecordData,
    /// Where it came from.
    pub source: RecordSource,
}

/// Record data of the types a local zone holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    /// An IPv4 address.
    A(std::net::Ipv4Addr),
    /// An IPv6 address.
    Aaaa(std::net::Ipv6Addr),
    /// An alias, fully qualified, no trailing dot.
    Cname(String),
    /// Text: one or more strings of at most 255 bytes each.
    Txt(Vec<String>),
    /// A service location.
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Share among the same priority.
        weight: u16,
        /// Port of the service.
        port: u16,
        /// Host, fully qualified, no trailing dot.
        target: String,
    },
    /// A pointer (reverse lookups), fully qualified, no trailing dot.
    Ptr(String),
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSource {
    /// Written in `dns.zones[].records`.
    Static,
    /// Made from a listener that serves the name (a route hostname, a listener hostname, or a
    /// TCP/UDP listener's `dnsName`); the answer is health-aware over `backends`.
    Auto {
        /// The listener.
        listener: String,
        /// The backends behind it: the address is healthy if any of them has an endpoint up.
        backends: Vec<String>,
    },
}

/// Names under `zone` resolved by other servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardZone {
    /// The zone, lower case, no trailing dot.
    pub zone: String,
    /// Its resolvers.
    pub to: Vec<SocketAddr>,
}

/// One VRRPv3 virtual router (RFC 5798): a VRID on an interface, its virtual addresses (all
/// of one family), and what this node's priority depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    /// Its name, for logs and status.
    pub name: String,
    /// The interface it runs on.
    pub interface: InterfaceMatch,
    /// Virtual router id, 1 to 255; the same on every node of the instance.
    pub vrid: u8,
    /// This node's priority when everything it tracks is healthy: 1 to 254 (255: the address
    /// owner, which is always master while it runs).
    pub priority: u8,
    /// Time between advertisements (centisecond resolution, 10 ms to 40.95 s).
    pub advert_interval: Duration,
    /// Take over from a master with a lower priority.
    pub preempt: bool,
    /// Wait this long after start before preempting (so a rebooted node's proxies are ready).
    pub preempt_delay: Duration,
    /// The virtual addresses with their prefix lengths, one family.
    pub addresses: Vec<(std::net::IpAddr, u8)>,
    /// Send advertisements to these peers (unicast) instead of the multicast group.
    pub unicast_peers: Vec<std::net::IpAddr>,
    /// How the IPv4 advertisement checksum is computed.
    pub checksum: VrrpChecksum,
    /// Gratuitous ARP / unsolicited NA on becoming master.
    pub announce: Announce,
    /// What lowers the priority.
    pub track: Vec<Track>,
}

/// Which interface an instance runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceMatch {
    /// This one.
    Name(String),
    /// The first (by name) whose name matches this regular expression (`^eth[0-9]+`).
    Pattern(String),
}

/// The IPv4 VRRPv3 checksum: RFC 5798 includes the IPv4 pseudo-header (keepalived does, by
/// default); RFC 9568, which replaces it, leaves it out for IPv4, and so do some peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpChecksum {
    /// With the pseudo-header (RFC 5798 section 5.2.8).
    Rfc5798,
    /// Without it, over the VRRP message alone.
    NoPseudoHeader,
}

/// Announcing the virtual addresses on becoming master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// Gratuitous ARPs / unsolicited neighbour advertisements sent at once, per address.
    pub count: u32,
    /// Time between those.
    pub interval: Duration,
    /// Another burst this long after becoming master (switches that missed the first);
    /// `None`: no repeat.
    pub repeat_after: Option<Duration>,
}

/// Something whose failure lowers an instance's priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// What is watched.
    pub target: TrackTarget,
    /// How much the priority drops while it fails; `None`: the node gives the addresses up
    /// entirely (it advertises priority 0 and will not become master).
    pub weight: Option<u8>,
}

/// A tracked object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackTarget {
    /// Fails when none of the backend's endpoints is up.
    Backend(String),
    /// Fails when every backend behind the listener has no endpoint up (or it is not
    /// listening).
    Listener(String),
}

/// A named pool of addresses that gateways and listeners take from (`pool:NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPool {
    /// Its name.
    pub name: String,
    /// Its ranges, in config order (allocation takes the lowest free address in this order).
    pub ranges: Vec<PoolRange>,
    /// Prefix length a VRRP instance adds the pool's addresses with (default /32 or /128).
    pub prefix: Option<u8>,
    /// The addresses handed out, with who has each (`GATEWAY` or `GATEWAY/LISTENER`), sorted.
    pub allocated: Vec<(std::net::IpAddr, String)>,
}

impl AddressPool {
    /// Whether `ip` is in one of the ranges.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRange {
    /// The first address.
    pub first: std::net::IpAddr,
    /// The last address.
    pub last: std::net::IpAddr,
}

impl PoolRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match (self.first, self.last, ip) {
            (std::net::IpAddr::V4(f), std::net::IpAddr::V4(l), std::net::IpAddr::V4(x)) => {
                f <= x && x <= l
            }
            (std::net::IpAddr::V6(f), std::net::IpAddr::V6(l), std::net::IpAddr::V6(x)) => {
                f <= x && x <= l
            }
            _ => false,
        }
    }
}
