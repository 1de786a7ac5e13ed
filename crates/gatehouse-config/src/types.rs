//! The compiled config: typed, validated and immutable. This is what the proxy runs on; it
//! holds no YAML types and no spans. Two snapshots compare with `==` piece by piece, which is
//! how a reload finds what changed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
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
}

/// The transport a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Plain TCP, proxied byte for byte.
    Tcp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
        })
    }
}

/// One bound socket and what to do with its connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// `gateway/listener`, or `forward/NAME`.
    pub name: String,
    /// Address and port to bind (port 0: any free port, reported in the log).
    pub bind: SocketAddr,
    /// Transport.
    pub protocol: Protocol,
    /// Name of the backend pool that receives the connections.
    pub backend: String,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
}

/// What identifies a listening socket across reloads: a listener whose key is unchanged keeps
/// its socket, whatever else about it changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerKey {
    /// Transport.
    pub protocol: Protocol,
    /// Bound address.
    pub bind: SocketAddr,
    /// Only for port 0, where the address alone does not identify the socket.
    pub ephemeral_name: Option<String>,
}

impl Listener {
    /// The identity of this listener's socket.
    pub fn key(&self) -> ListenerKey {
        ListenerKey {
            protocol: self.protocol,
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
