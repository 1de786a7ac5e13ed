//! The live state of one backend pool.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use gatehouse_config::{Backend, Balance, Target};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::balance;
use crate::clock::{ms, now_ms};
use crate::health::HealthCounter;
use crate::upstream::UpstreamTls;

/// One resolved address of a pool, with its health and load.
#[derive(Debug)]
pub struct Endpoint {
    /// Where connections go.
    pub addr: SocketAddr,
    /// How it was configured (`app.lan:80` for a resolved name).
    pub target: Target,
    /// Share of new connections.
    pub weight: u32,
    /// Up according to active health checks (always up without them).
    up: AtomicBool,
    /// Passive ejection: skipped until this time (ms on [`now_ms`]'s clock).
    ejected_until: AtomicU64,
    /// Consecutive failed connects, for passive ejection.
    connect_failures: AtomicU32,
    /// Connections open (or being opened) to it.
    active: AtomicUsize,
    /// Rise/fall bookkeeping of the active checks.
    pub(crate) counter: Mutex<HealthCounter>,
    /// When `up` last changed, or the endpoint was added (ms since the Unix epoch).
    health_changed: AtomicU64,
}

impl Endpoint {
    fn new(addr: SocketAddr, target: Target, weight: u32) -> Self {
        Endpoint {
            addr,
            target,
            weight,
            up: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            connect_failures: AtomicU32::new(0),
            active: AtomicUsize::new(0),
            counter: Mutex::new(HealthCounter::new_up()),
            health_changed: AtomicU64::new(unix_ms()),
        }
    }

    /// Up according to active health checks.
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    pub(crate) fn set_up(&self, up: bool) {
        if self.up.swap(up, Relaxed) != up {
            self.health_changed.store(unix_ms(), Relaxed);
        }
    }

    /// When its health (up or down) last changed; for an endpoint that never changed, when it
    /// was added (at start, or by the reload or resolution that brought it).
    pub fn health_changed_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.health_changed.load(Relaxed))
    }

    /// Whether passive ejection is taking it out right now.
    pub fn is_ejected(&self) -> bool {
        self.ejected_until.load(Relaxed) > now_ms()
    }

    /// Open connections to it.
    pub fn active_connections(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Records a failed connect; returns true when this failure ejects the endpoint.
    pub fn connect_failed(&self, max_fails: u32, fail_timeout: Duration) -> bool {
        let fails = self.connect_failures.fetch_add(1, Relaxed) + 1;
        if max_fails > 0 && fails >= max_fails {
            self.connect_failures.store(0, Relaxed);
            self.ejected_until
                .store(now_ms().saturating_add(ms(fail_timeout)), Relaxed);
            return true;
        }
        false
    }

    /// Records a successful connect.
    pub fn connect_succeeded(&self) {
        if self.connect_failures.load(Relaxed) != 0 {
            self.connect_failures.store(0, Relaxed);
        }
    }

    /// Ends a passive ejection early (an active check just reached it).
    pub(crate) fn clear_ejection(&self) {
        if self.ejected_until.load(Relaxed) != 0 {
            self.ejected_until.store(0, Relaxed);
        }
    }

    /// Copies health from the endpoint it replaces (same address, across a reload).
    fn inherit(&self, old: &Endpoint) {
        self.up.store(old.up.load(Relaxed), Relaxed);
        self.health_changed
            .store(old.health_changed.load(Relaxed), Relaxed);
        self.ejected_until
            .store(old.ejected_until.load(Relaxed), Relaxed);
        if let (Ok(mut new), Ok(old)) = (self.counter.lock(), old.counter.lock()) {
            *new = old.clone();
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Counts a connection against its endpoint for as long as it lives.
#[derive(Debug)]
pub struct EndpointGuard {
    endpoint: Arc<Endpoint>,
}

impl EndpointGuard {
    fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.active.fetch_add(1, Relaxed);
        EndpointGuard { endpoint }
    }

    /// The endpoint this connection uses.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.endpoint.active.fetch_sub(1, Relaxed);
    }
}

/// The endpoints of a pool at one moment, with their round-robin order.
#[derive(Debug, Default)]
pub(crate) struct EndpointSet {
    pub(crate) endpoints: Vec<Arc<Endpoint>>,
    schedule: Vec<u32>,
}

impl EndpointSet {
    fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight).collect();
        EndpointSet {
            schedule: balance::schedule(&weights),
            endpoints,
        }
    }
}

/// The live state of one configured backend.
#[derive(Debug)]
pub struct Pool {
    spec: Arc<Backend>,
    pub(crate) set: ArcSwap<EndpointSet>,
    /// The latest addresses of each name, by position in `spec.endpoints`.
    pub(crate) resolved: Mutex<Vec<Vec<SocketAddr>>>,
    cursor: AtomicUsize,
    /// Stops this pool's health checking and resolving.
    stop: CancellationToken,
    /// TLS towards the endpoints (the backend's `tls`), or why it could not be set up.
    tls: Option<Result<UpstreamTls, String>>,
}

impl Pool {
    /// Builds a pool for `spec`. Literal addresses are ready at once; names are resolved by
    /// [`Pool::resolve_now`]. Endpoints that `previous` also had (same address) keep their
    /// health, so a reload does not forget that an endpoint is down.
    pub fn new(spec: Arc<Backend>, previous: Option<&Pool>) -> Arc<Pool> {
        let resolved: Vec<Vec<SocketAddr>> = spec
            .endpoints
            .iter()
            .map(|e| match &e.target {
                Target::Addr(a) => vec![*a],
                Target::Host { .. } => previous
                    .and_then(|p| p.addresses_of(&e.target))
                    .unwrap_or_default(),
            })
            .collect();
        let tls = spec.tls.as_ref().map(UpstreamTls::new);
        if let Some(Err(e)) = &tls {
            tracing::error!(backend = %spec.name, error = %e, "TLS to this backend cannot be set up; its connections will fail");
        }
        let pool = Pool {
            spec,
            set: ArcSwap::from_pointee(EndpointSet::default()),
            resolved: Mutex::new(resolved),
            cursor: AtomicUsize::new(0),
            stop: CancellationToken::new(),
            tls,
        };
        let previous_set = previous.map(|p| p.set.load_full());
        let same_checks = previous.is_some_and(|p| p.spec.health_check == pool.spec.health_check);
        pool.rebuild(previous_set.as_deref().filter(|_| same_checks));
        Arc::new(pool)
    }

    /// The configuration this pool runs.
    pub fn spec(&self) -> &Arc<Backend> {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// TLS towards the endpoints, when the backend has `tls`.
    pub(crate) fn upstream_tls(&self) -> Option<Result<&UpstreamTls, &str>> {
        self.tls
            .as_ref()
            .map(|r| r.as_ref().map_err(String::as_str))
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.set.load().endpoints.clone()
    }

    fn addresses_of(&self, target: &Target) -> Option<Vec<SocketAddr>> {
        let index = self
            .spec
            .endpoints
            .iter()
            .position(|e| &e.target == target)?;
        self.resolved.lock().ok()?.get(index).cloned()
    }

    /// Recomputes the endpoint set from `resolved`, keeping the `Arc<Endpoint>` (and so the
    /// health and connection counts) of every address that is still there. Returns whether the
    /// set changed.
    pub(crate) fn rebuild(&self, inherit_from: Option<&EndpointSet>) -> bool {
        let current = self.set.load_full();
        let Ok(resolved) = self.resolved.lock() else {
            return false;
        };
        let mut endpoints: Vec<Arc<Endpoint>> = Vec::new();
        for (spec, addrs) in self.spec.endpoints.iter().zip(resolved.iter()) {
            for addr in addrs {
                if endpoints.iter().any(|e| e.addr == *addr) {
                    continue;
                }
                let existing = current.endpoints.iter().find(|e| {
                    e.addr == *addr && e.weight == spec.weight && e.target == spec.target
                });
                let endpoint = match existing {
                    Some(e) => Arc::clone(e),
                    None => {
                        let e = Endpoint::new(*addr, spec.target.clone(), spec.weight);
                        if let Some(old) =
                            inherit_from.and_then(|s| s.endpoints.iter().find(|o| o.addr == *addr))
                        {
                            e.inherit(old);
                        }
                        Arc::new(e)
                    }
                };
                endpoints.push(endpoint);
            }
        }
        drop(resolved);
        let changed = endpoints.len() != current.endpoints.len()
            || endpoints
                .iter()
                .zip(&current.endpoints)
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed {
            self.set.store(Arc::new(EndpointSet::new(endpoints)));
        }
        changed
    }

    /// Picks an endpoint for a new connection from `client`, skipping the addresses in
    /// `tried`. Endpoints that are down or ejected are skipped; when every endpoint that is up
    /// has been ejected, ejection is ignored (it is a guess from a failed connect, and trying
    /// is better than refusing).
    pub fn pick(&self, client: IpAddr, tried: &[SocketAddr]) -> Option<EndpointGuard> {
        let set = self.set.load();
        let eps = &set.endpoints;
        let base = |i: usize| eps[i].weight > 0 && eps[i].is_up() && !tried.contains(&eps[i].addr);
        let strict = |i: usize| base(i) && !eps[i].is_ejected();
        let chosen = self
            .choose(&set, client, strict)
            .or_else(|| self.choose(&set, client, base))?;
        Some(EndpointGuard::new(Arc::clone(&eps[chosen])))
    }

    fn choose(
        &self,
        set: &EndpointSet,
        client: IpAddr,
        usable: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let eps = &set.endpoints;
        match self.spec.balance {
            Balance::RoundRobin => {
                balance::round_robin(&set.schedule, || self.cursor.fetch_add(1, Relaxed), usable)
            }
            Balance::LeastConnections => {
                let cursor = self.cursor.fetch_add(1, Relaxed);
                balance::least_connections(
                    eps.len(),
                    cursor,
                    |i| eps[i].weight,
                    |i| eps[i].active_connections(),
                    usable,
                )
            }
            Balance::ConsistentHash => balance::consistent_hash(
                client,
                eps.len(),
                |i| eps[i].addr,
                |i| eps[i].weight,
                usable,
            ),
        }
    }

    /// Starts health checking and (for names) periodic resolution, until [`Pool::stop`].
    pub fn start(self: &Arc<Self>, tasks: &TaskTracker) {
        if self.spec.health_check.is_some() {
            tasks.spawn(crate::health::run(Arc::clone(self), self.stop.clone()));
        }
        if self.spec.has_hostnames() {
            tasks.spawn(crate::resolve::run(Arc::clone(self), self.stop.clone()));
        }
    }

    /// Resolves every name now (bounded by a timeout per name).
    pub async fn resolve_now(&self) {
        crate::resolve::resolve_all(self).await;
    }

    /// Stops the background tasks. Open connections keep their endpoints.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_config::{EndpointSpec, Passive};

    fn spec(balance: Balance, endpoints: &[(&str, u32)]) -> Arc<Backend> {
        Arc::new(Backend {
            name: "test".into(),
            balance,
            endpoints: endpoints
                .iter()
                .map(|(a, w)| EndpointSpec {
                    target: Target::Addr(a.parse().unwrap()),
                    weight: *w,
                })
                .collect(),
            connect_timeout: Duration::from_secs(1),
            retries: 2,
            resolve_interval: Duration::from_secs(30),
            passive: Passive {
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
            },
            health_check: None,
            tls: None,
            proxy_protocol: None,
        })
    }

    fn port_of(g: &EndpointGuard) -> u16 {
        g.endpoint().addr.port()
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn weighted_round_robin_spread() {
        let pool = Pool::new(
            spec(
                Balance::RoundRobin,
                &[("127.0.0.1:1", 3), ("127.0.0.1:2", 1)],
            ),
            None,
        );
        let picks: Vec<u16> = (0..8)
            .map(|_| port_of(&pool.pick(CLIENT, &[]).unwrap()))
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == 1).count(), 6);
        assert_eq!(picks.iter().filter(|p| **p == 2).count(), 2);
    }

    #[test]
    fn round_robin_shares_a_down_endpoints_turns_evenly() {
        let pool = Pool::new(
            spec(
                Balance::RoundRobin,
                &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1), ("127.0.0.1:3", 1)],
            ),
            None,
        );
        pool.endpoints()[2].set_up(false);
        let picks: Vec<u16> = (0..10)
            .map(|_| port_of(&pool.pick(CLIENT, &[]).unwrap()))
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == 1).count(), 5, "{picks:?}");
        assert_eq!(picks.iter().filter(|p| **p == 2).count(), 5, "{picks:?}");
    }

    #[test]
    fn least_connections_follows_open_connections() {
        let pool = Pool::new(
            spec(
                Balance::LeastConnections,
                &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)],
            ),
            None,
        );
        let held = pool.pick(CLIENT, &[]).unwrap();
        // While one connection is held, every new pick goes to the other endpoint.
        for _ in 0..5 {
            let g = pool.pick(CLIENT, &[]).unwrap();
            assert_ne!(port_of(&g), port_of(&held));
        }
    }

    #[test]
    fn ejection_is_skipped_until_everything_is_ejected() {
        let pool = Pool::new(
            spec(
                Balance::RoundRobin,
                &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)],
            ),
            None,
        );
        let eps = pool.endpoints();
        assert!(eps[0].connect_failed(1, Duration::from_secs(60)));
        for _ in 0..4 {
            assert_eq!(port_of(&pool.pick(CLIENT, &[]).unwrap()), 2);
        }
        assert!(eps[1].connect_failed(1, Duration::from_secs(60)));
        assert!(pool.pick(CLIENT, &[]).is_some(), "all ejected: try anyway");
        eps[1].set_up(false);
        eps[0].set_up(false);
        assert!(pool.pick(CLIENT, &[]).is_none(), "all down: nothing");
    }

    #[test]
    fn tried_endpoints_are_skipped() {
        let pool = Pool::new(
            spec(
                Balance::RoundRobin,
                &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)],
            ),
            None,
        );
        let first = pool.pick(CLIENT, &[]).unwrap();
        let second = pool.pick(CLIENT, &[first.endpoint().addr]).unwrap();
        assert_ne!(port_of(&first), port_of(&second));
        let none = pool.pick(CLIENT, &[first.endpoint().addr, second.endpoint().addr]);
        assert!(none.is_none());
    }

    #[test]
    fn rebuild_keeps_state_and_reload_inherits_health() {
        let pool = Pool::new(
            spec(
                Balance::RoundRobin,
                &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)],
            ),
            None,
        );
        pool.endpoints()[1].set_up(false);
        let next = Pool::new(
            spec(
                Balance::RoundRobin,
                &[("127.0.0.1:2", 1), ("127.0.0.1:3", 1)],
            ),
            Some(&pool),
        );
        let eps = next.endpoints();
        assert_eq!(eps[0].addr.port(), 2);
        assert!(!eps[0].is_up(), "127.0.0.1:2 was down before the reload");
        assert!(eps[1].is_up());
        assert_eq!(
            eps[0].health_changed_at(),
            pool.endpoints()[1].health_changed_at(),
            "the time of the last change is inherited too"
        );
    }

    #[test]
    fn a_health_change_is_timestamped() {
        let pool = Pool::new(spec(Balance::RoundRobin, &[("127.0.0.1:1", 1)]), None);
        let ep = &pool.endpoints()[0];
        let added = ep.health_changed_at();
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(5));
        ep.set_up(true);
        assert_eq!(ep.health_changed_at(), added, "no change, no new time");
        ep.set_up(false);
        assert!(ep.health_changed_at() > added);
    }
}
