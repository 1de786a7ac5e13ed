//! The supervisor: the running set of listeners and pools, and how a new config replaces it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_config::Listener;
use gatehouse_config::{Config, ConfigDiff, DnsConfig, ListenerKey, Protocol, Transport, diff};
use gatehouse_dns::Dns;

use crate::admin::{AdminShared, DnsView, SocketView, View};
use crate::telemetry::Telemetry;
use crate::vips::{Tracked, Vips};
use gatehouse_proxy::Pool;
use gatehouse_proxy::bind::{bind_tcp, bind_udp};
use gatehouse_proxy::http::HttpSite;
use gatehouse_proxy::tcp::{ConnectionControl, ListenerState, Route, Service, serve};
use gatehouse_proxy::tls::SniTable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest a start or reload waits for backend names to resolve.
const RESOLVE_BUDGET: Duration = Duration::from_secs(5);

/// Why a config could not be applied. The running config, if any, is untouched.
#[derive(Debug)]
pub enum ApplyError {
    /// A listening socket could not be opened.
    Bind {
        /// The listener.
        listener: String,
        /// Its address.
        addr: SocketAddr,
        /// What the OS said.
        error: std::io::Error,
    },
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Bind {
                listener,
                addr,
                error,
            } => {
                write!(f, "listener `{listener}` cannot listen on {addr}: {error}")?;
                match error.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        write!(
                            f,
                            " (another process holds this port; `ss -ltnp` shows which)"
                        )
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        write!(f, " (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// A socket bound for a listener, before its loop starts.
enum Bound {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

impl Bound {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Bound::Tcp(s) => s.local_addr(),
            Bound::Udp(s) => s.local_addr(),
        }
    }
}

/// The DNS server while it runs.
struct RunningDns {
    dns: Arc<Dns>,
    /// The addresses it was bound for (a change rebinds).
    listen: Vec<SocketAddr>,
    /// The addresses bound (the real ports when the config says 0).
    local: Vec<SocketAddr>,
    stop: CancellationToken,
}

/// The sockets of a DNS server about to start.
struct DnsSockets {
    udp: Vec<tokio::net::UdpSocket>,
    tcp: Vec<tokio::net::TcpListener>,
    local: Vec<SocketAddr>,
}

/// Binds UDP and TCP on every `listen` address (with port 0, TCP takes UDP's port).
fn bind_dns(config: &DnsConfig) -> Result<DnsSockets, ApplyError> {
    let mut out = DnsSockets {
        udp: Vec::new(),
        tcp: Vec::new(),
        local: Vec::new(),
    };
    let fail = |addr, error| ApplyError::Bind {
        listener: "dns".to_owned(),
        addr,
        error,
    };
    for &addr in &config.listen {
        let udp = bind_udp(addr).map_err(|e| fail(addr, e))?;
        let local = udp.local_addr().unwrap_or(addr);
        let tcp = bind_tcp(local).map_err(|e| fail(local, e))?;
        out.udp.push(udp);
        out.tcp.push(tcp);
        out.local.push(local);
    }
    Ok(out)
}

struct RunningListener {
    state: Arc<ListenerState>,
    stop: CancellationToken,
    /// The accept loop; it ends (closing the socket) soon after `stop`.
    accept: tokio::task::JoinHandle<()>,
    local: SocketAddr,
}

/// Owns the running listeners and pools.
pub struct Supervisor {
    config: Arc<Config>,
    listeners: HashMap<ListenerKey, RunningListener>,
    pools: HashMap<String, Arc<Pool>>,
    /// Accept loops, health checkers, resolvers.
    background: TaskTracker,
    control: ConnectionControl,
    dns: Option<RunningDns>,
    /// The running pools, as the DNS server's health answers see them.
    shared_pools: Arc<ArcSwap<HashMap<String, Arc<Pool>>>>,
    /// The VRRP instances.
    vips: Vips,
    /// What VRRP tracking reads.
    tracked: Arc<ArcSwap<Tracked>>,
    /// What the admin endpoint reads (kept up to date even while it does not run).
    admin_shared: Arc<AdminShared>,
    /// The admin endpoint while it runs.
    admin: Option<RunningAdmin>,
}

/// The admin endpoint while it runs.
struct RunningAdmin {
    /// The configured address (a change rebinds).
    listen: SocketAddr,
    stop: CancellationToken,
}

impl Supervisor {
    /// Binds every listener of `config` and starts its pools. Fails, binding nothing, if any
    /// socket cannot be opened. `telemetry` is what the admin endpoint (if configured) reports
    /// besides live state.
    pub async fn start(config: Config, telemetry: Arc<Telemetry>) -> Result<Self, ApplyError> {
        let empty = Arc::new(Config::empty(config.drain_timeout));
        let tracked = Arc::new(ArcSwap::from_pointee(Tracked {
            config: Arc::clone(&empty),
            pools: HashMap::new(),
        }));
        let vips = Vips::new(Arc::clone(&tracked));
        let admin_shared = Arc::new(AdminShared::new(
            View {
                config: Arc::clone(&empty),
                sockets: Vec::new(),
                pools: HashMap::new(),
                dns: None,
            },
            vips.statuses(),
            telemetry,
        ));
        let mut sup = Supervisor {
            config: empty,
            listeners: HashMap::new(),
            pools: HashMap::new(),
            background: TaskTracker::new(),
            control: ConnectionControl {
                tasks: TaskTracker::new(),
                drain: CancellationToken::new(),
                cut: CancellationToken::new(),
            },
            dns: None,
            shared_pools: Arc::new(ArcSwap::from_pointee(HashMap::new())),
            vips,
            tracked,
            admin_shared,
            admin: None,
        };
        sup.apply(config).await?;
        Ok(sup)
    }

    /// A reader of the VRRP instances' state (who is master).
    pub(crate) fn vip_statuses(&self) -> crate::vips::VipStatuses {
        self.vips.statuses()
    }

    /// What the admin endpoint reports of the Kubernetes provider.
    pub(crate) fn set_kubernetes_reporter(&self, reporter: Option<gatehouse_kube::Reporter>) {
        self.admin_shared.kube.store(reporter.map(Arc::new));
    }

    /// The running config.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The address each listener is bound to (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        let mut v: Vec<(String, SocketAddr)> = self
            .listeners
            .values()
            .map(|l| (l.state.service().name().to_owned(), l.local))
            .collect();
        v.sort();
        v
    }

    /// Replaces the running config with `new`, changing only what differs. On error nothing
    /// has changed.
    pub async fn apply(&mut self, new: Config) -> Result<ConfigDiff, ApplyError> {
        let changes = diff(&self.config, &new);

        // 1. Pools: reuse unchanged ones; build changed ones, inheriting endpoint health.
        let mut pools: HashMap<String, Arc<Pool>> = HashMap::new();
        let mut fresh: Vec<Arc<Pool>> = Vec::new();
        for (name, spec) in &new.backends {
            match self.pools.get(name) {
                Some(old) if old.spec() == spec => {
                    pools.insert(name.clone(), Arc::clone(old));
                }
                old => {
                    let pool = Pool::new(Arc::clone(spec), old.map(|p| &**p));
                    fresh.push(Arc::clone(&pool));
                    pools.insert(name.clone(), pool);
                }
            }
        }
        let resolving = fresh
            .iter()
            .filter(|p| p.spec().has_hostnames())
            .map(|p| p.resolve_now());
        let all = async {
            for r in resolving {
                r.await;
            }
        };
        if tokio::time::timeout(RESOLVE_BUDGET, all).await.is_err() {
            tracing::warn!(
                "resolving backend names is slow; serving with what has resolved so far"
            );
        }

        // 2. Bind every new socket before touching anything that runs.
        let sockets = new.sockets();
        let mut bound = Vec::new();
        for (key, group) in sockets.iter().filter(|(k, _)| changes.bind.contains(k)) {
            let Some(first) = group.first() else { continue };
            let socket = match key.transport {
                Transport::Tcp => bind_tcp(key.bind).map(Bound::Tcp),
                Transport::Udp => bind_udp(key.bind).map(Bound::Udp),
            };
            match socket {
                Ok(socket) => bound.push((group, socket)),
                Err(error) => {
                    return Err(ApplyError::Bind {
                        listener: first.name.clone(),
                        addr: key.bind,
                        error,
                    });
                }
            }
        }

        let dns_sockets = match &new.dns {
            Some(d) if self.dns.as_ref().is_none_or(|r| r.listen != d.listen) => Some(bind_dns(d)?),
            _ => None,
        };
        let admin_socket = match &new.admin {
            Some(a) if self.admin.as_ref().is_none_or(|r| r.listen != a.listen) => {
                Some(bind_tcp(a.listen).map_err(|error| ApplyError::Bind {
                    listener: "admin".to_owned(),
                    addr: a.listen,
                    error,
                })?)
            }
            _ => None,
        };

        // 3. Commit: nothing below can fail.
        for (key, group) in &sockets {
            if let Some(running) = self.listeners.get(key) {
                let previous = running.state.service();
                if let Some(service) = service_for(group, &pools, Some(&previous)) {
                    running.state.set_service(service);
                }
            }
        }
        for (group, socket) in bound {
            let Some(service) = service_for(group, &pools, None) else {
                continue;
            };
            let Some(first) = group.first() else { continue };
            let local = socket.local_addr().unwrap_or(first.bind);
            for listener in group {
                tracing::info!(
                    listener = %listener.name,
                    address = %local,
                    protocol = %listener.protocol,
                    backend = %listener.backends().join(","),
                    "listening"
                );
            }
            let state = ListenerState::new(service);
            let stop = CancellationToken::new();
            let (state2, stop2, control) = (Arc::clone(&state), stop.clone(), self.control.clone());
            let accept = match socket {
                Bound::Tcp(socket) => self.background.spawn(serve(socket, state2, stop2, control)),
                Bound::Udp(socket) => self
                    .background
                    .spawn(gatehouse_proxy::udp::serve(socket, state2, stop2, control)),
            };
            self.listeners.insert(
                first.key(),
                RunningListener {
                    state,
                    stop,
                    accept,
                    local,
                },
            );
        }
        for key in &changes.close {
            if let Some(running) = self.listeners.remove(key) {
                running.stop.cancel();
                // The socket closes when the accept loop returns: wait for it, so that
                // "stopped listening" is true when it is logged.
                let _ = tokio::time::timeout(Duration::from_secs(1), running.accept).await;
                if key.transport == Transport::Udp {
                    tracing::info!(
                        listener = %running.state.service().name(),
                        address = %running.local,
                        "stopped listening; its UDP flows have ended"
                    );
                } else {
                    tracing::info!(
                        listener = %running.state.service().name(),
                        address = %running.local,
                        open_connections = running.state.open_connections(),
                        "stopped listening; open connections carry on"
                    );
                }
            }
        }
        for (name, old) in &self.pools {
            if !pools.get(name).is_some_and(|p| Arc::ptr_eq(p, old)) {
                old.stop();
            }
        }
        for pool in &fresh {
            pool.start(&self.background);
        }
        self.shared_pools.store(Arc::new(pools.clone()));
        self.pools = pools;
        self.apply_dns(new.dns.clone(), dns_sockets);
        let new = Arc::new(new);
        self.tracked.store(Arc::new(Tracked {
            config: Arc::clone(&new),
            pools: self.pools.clone(),
        }));
        self.vips.apply(&new.vrrp).await;
        self.admin_shared.view.store(Arc::new(self.view(&new)));
        self.apply_admin(new.admin.as_ref().map(|a| a.listen), admin_socket);
        self.admin_shared.set_ready();
        self.config = new;
        Ok(changes)
    }

    /// What the admin endpoint shows for `config` (which is being committed).
    fn view(&self, config: &Arc<Config>) -> View {
        View {
            config: Arc::clone(config),
            sockets: self
                .listeners
                .iter()
                .map(|(key, l)| SocketView {
                    key: key.clone(),
                    local: l.local,
                    state: Arc::clone(&l.state),
                })
                .collect(),
            pools: self.pools.clone(),
            dns: self.dns.as_ref().map(|d| DnsView {
                local: d.local.clone(),
                dns: Arc::clone(&d.dns),
            }),
        }
    }

    /// Starts, moves (`socket`: freshly bound, when its address changed) or stops the admin
    /// endpoint. A token change needs nothing here: the endpoint reads it from the view.
    fn apply_admin(&mut self, listen: Option<SocketAddr>, socket: Option<tokio::net::TcpListener>) {
        // Counting costs the proxy's threads a little per access event: only while someone
        // can read the counts.
        self.admin_shared.telemetry.set_enabled(listen.is_some());
        let Some(listen) = listen else {
            if let Some(old) = self.admin.take() {
                old.stop.cancel();
                tracing::info!("admin endpoint stopped");
            }
            return;
        };
        let Some(socket) = socket else {
            return;
        };
        if let Some(old) = self.admin.take() {
            old.stop.cancel();
        }
        let local = socket.local_addr().unwrap_or(listen);
        tracing::info!(listener = %"admin", address = %local, protocol = %"HTTP", "listening");
        let stop = CancellationToken::new();
        self.background.spawn(crate::admin::serve(
            socket,
            Arc::clone(&self.admin_shared),
            stop.clone(),
        ));
        self.admin = Some(RunningAdmin { listen, stop });
    }

    /// Starts, updates or stops the DNS server for `config` (`sockets`: freshly bound ones,
    /// when its addresses changed).
    fn apply_dns(&mut self, config: Option<Arc<DnsConfig>>, sockets: Option<DnsSockets>) {
        let Some(config) = config else {
            if let Some(old) = self.dns.take() {
                old.stop.cancel();
                tracing::info!("DNS server stopped");
            }
            return;
        };
        let Some(sockets) = sockets else {
            if let Some(running) = &self.dns {
                running.dns.update(config);
            }
            return;
        };
        if let Some(old) = self.dns.take() {
            old.stop.cancel();
        }
        let pools = Arc::clone(&self.shared_pools);
        let health: gatehouse_dns::Health = Arc::new(move |backend: &str| {
            pools
                .load()
                .get(backend)
                .is_some_and(|p| p.endpoints().iter().any(|e| e.is_up()))
        });
        for local in &sockets.local {
            tracing::info!(listener = %"dns", address = %local, protocol = %"DNS", zones = config.zones.len(), "listening");
        }
        let dns = Dns::new(Arc::clone(&config), health);
        let stop = CancellationToken::new();
        self.background
            .spawn(Arc::clone(&dns).serve(sockets.udp, sockets.tcp, stop.clone()));
        self.dns = Some(RunningDns {
            dns,
            listen: config.listen.clone(),
            local: sockets.local,
            stop,
        });
    }

    /// Stops accepting, waits up to the drain timeout for open connections, cuts the rest.
    /// Returns how many connections were cut.
    pub async fn shutdown(mut self) -> usize {
        // Load balancers asking /readyz stop sending here first.
        self.admin_shared.set_draining();
        // The virtual addresses go first: a backup takes them over at once, while this node
        // drains what it has.
        self.vips.stop().await;
        for running in self.listeners.values() {
            running.stop.cancel();
        }
        if let Some(dns) = &self.dns {
            dns.stop.cancel();
        }
        // Kept-alive HTTP connections finish their request in flight and close.
        self.control.drain.cancel();
        for pool in self.pools.values() {
            pool.stop();
        }
        let open: usize = self
            .listeners
            .values()
            .map(|l| l.state.open_connections())
            .sum();
        let drain = self.config.drain_timeout;
        if open > 0 {
            tracing::info!(open_connections = open, drain_timeout = ?drain, "draining: no new connections; waiting for open ones");
        }
        self.control.tasks.close();
        let cut = if tokio::time::timeout(drain, self.control.tasks.wait())
            .await
            .is_err()
        {
            let left = self.control.tasks.len();
            tracing::warn!(
                open_connections = left,
                "drain timeout reached; closing the remaining connections"
            );
            self.control.cut.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), self.control.tasks.wait()).await;
            left
        } else {
            0
        };
        // The admin endpoint answered (503 on /readyz) during the drain; now it goes too.
        if let Some(admin) = self.admin.take() {
            admin.stop.cancel();
        }
        self.background.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.background.wait()).await;
        cut
    }
}

/// What one socket serves: a TCP listener's route, or the SNI table of the TLS listeners that
/// share it. `previous` is what the socket serves now (TLS keeps its ticket keys and unchanged
/// handshake settings).
fn service_for(
    group: &[Arc<Listener>],
    pools: &HashMap<String, Arc<Pool>>,
    previous: Option<&Service>,
) -> Option<Service> {
    let first = group.first()?;
    match first.protocol {
        Protocol::Tcp | Protocol::Udp => {
            let backend = first.routes.first()?.backend.as_str();
            let route = Route {
                listener: Arc::clone(first),
                pool: Arc::clone(pools.get(backend)?),
            };
            Some(if first.protocol == Protocol::Udp {
                Service::Udp(route)
            } else {
                Service::Tcp(route)
            })
        }
        Protocol::Tls | Protocol::Https => {
            let previous = match previous {
                Some(Service::Tls(table)) => Some(&**table),
                _ => None,
            };
            Some(Service::Tls(Box::new(SniTable::build(
                group, pools, previous,
            ))))
        }
        Protocol::Http => {
            let previous = match previous {
                Some(Service::Http(site)) => Some(&**site),
                _ => None,
            };
            Some(Service::Http(Arc::new(HttpSite::build(
                group, pools, false, previous,
            ))))
        }
    }
}
