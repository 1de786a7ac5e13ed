//! Gatehouse's Kubernetes provider: the cluster's LoadBalancer Services and Gateway API
//! objects as config, and their status written back.
//!
//! ```text
//! API server ──list/watch──► watch::run (one task per kind) ──► Snapshot
//!                                                                  │ (100 ms settle)
//!                                               render::render ◄───┘
//!                                                     │ Overlay (documents + mappings)
//!   gatehouse-app: load_with(file, overlay) ──► apply ──► Provider::applied
//!                                                              │
//! API server ◄──merge patch /status (VRRP master only)── status::write
//! ```
//!
//! The provider never stops serving on its own account: when the API server is unreachable
//! the watchers retry with backoff and the last rendered overlay stays applied; `report`
//! says so, and a probe of `/version` every few seconds tells when it is back.

mod cache;
mod render;
mod secrets;
mod snapshot;
mod status;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use gatehouse_config::{AddressPool, Config, KubernetesConfig, Rejected};
use kube::api::ApiResource;
use kube::runtime::watcher;
use kube::{Client, Resource};
use tokio::sync::watch as channel;
use tokio_util::sync::CancellationToken;

pub use render::{
    ADDRESS_ANNOTATIONS, HOSTNAME_ANNOTATION, POOL_ANNOTATIONS, PROXY_PROTOCOL_ANNOTATION,
    Rendered, Taken, TakenRoute, document_name, generated_name, render,
};
pub use snapshot::{Key, RouteKind, Snapshot};
pub use status::{StatusPatch, wanted as status_patches};

/// How long changes are gathered before rendering: a rollout changes many slices at once.
const SETTLE: Duration = Duration::from_millis(100);
/// How often the API server's reachability is probed.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long a client that could not be built waits before trying again.
const CLIENT_RETRY: Duration = Duration::from_secs(5);

/// Decides whether this node writes status (the VRRP master of the pool's instance).
pub type Leader = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the provider reports for `status` and metrics.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Whether the API server answered the last probe.
    pub connected: bool,
    /// When `connected` last changed.
    pub since: Option<SystemTime>,
    /// Whether every watcher has its first list (until then, nothing from the cluster is
    /// served).
    pub synced: bool,
    /// The last watch error.
    pub last_error: Option<String>,
    /// Objects held, by kind.
    pub objects: BTreeMap<&'static str, usize>,
    /// LoadBalancer Services served: `NAMESPACE/NAME` -> addresses.
    pub services: BTreeMap<String, Vec<String>>,
    /// Objects left out of the running config, and why.
    pub rejected: Vec<Rejected>,
    /// Whether this node writes status now.
    pub writes_status: bool,
    /// Status writes done, and failed.
    pub status_writes: (u64, u64),
    /// While the objects served come from `cacheFile` (the API server has not answered a
    /// full list since the start): when the file was read.
    pub from_cache: Option<SystemTime>,
}

/// A running provider. Dropping it stops every task.
pub struct Provider {
    settings: Arc<KubernetesConfig>,
    rendered: channel::Receiver<Option<Arc<Rendered>>>,
    pools: channel::Sender<BTreeMap<String, AddressPool>>,
    applied: channel::Sender<Option<Arc<Applied>>>,
    report: Arc<Mutex<Report>>,
    stop: CancellationToken,
}

/// What was applied from a rendering, for the status writer.
pub struct Applied {
    /// The rendering.
    pub rendered: Arc<Rendered>,
    /// The config now running.
    pub config: Arc<Config>,
    /// Documents left out.
    pub rejected: Vec<Rejected>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Provider {
    /// Starts watching. `pools` are the running config's; `leader` says whether this node
    /// writes status. Never fails: a client that cannot be built (a bad kubeconfig) is
    /// reported and retried.
    pub fn start(
        settings: Arc<KubernetesConfig>,
        pools: BTreeMap<String, AddressPool>,
        leader: Leader,
    ) -> Provider {
        let (rendered_tx, rendered) = channel::channel(None);
        let (pools_tx, pools_rx) = channel::channel(ranges_only(&pools));
        let (applied_tx, applied_rx) = channel::channel(None);
        let report = Arc::new(Mutex::new(Report::default()));
        let stop = CancellationToken::new();
        tokio::spawn(run(
            Arc::clone(&settings),
            pools_rx,
            rendered_tx,
            applied_rx,
            leader,
            Arc::clone(&report),
            stop.clone(),
        ));
        Provider {
            settings,
            rendered,
            pools: pools_tx,
            applied: applied_tx,
            report,
            stop,
        }
    }

    /// The settings it runs with (a reload that changes them starts a new provider).
    pub fn settings(&self) -> &Arc<KubernetesConfig> {
        &self.settings
    }

    /// Renderings, newest first; `None` until the first full list is in.
    pub fn updates(&self) -> channel::Receiver<Option<Arc<Rendered>>> {
        self.rendered.clone()
    }

    /// The running config's pools changed.
    pub fn set_pools(&self, pools: &BTreeMap<String, AddressPool>) {
        // Rendering reads the ranges only: what the pools handed out changes with every
        // Service applied, and must not make the provider render again for nothing.
        let ranges = ranges_only(pools);
        self.pools.send_if_modified(|p| {
            let changed = *p != ranges;
            if changed {
                *p = ranges;
            }
            changed
        });
    }

    /// A rendering was applied (or applied in part): status follows.
    pub fn applied(&self, applied: Applied) {
        {
            let mut r = self.report.lock().unwrap_or_else(PoisonError::into_inner);
            r.rejected.clone_from(&applied.rejected);
            r.services = status::service_addresses(&applied)
                .into_iter()
                .map(|((ns, name), ips)| {
                    (
                        format!("{ns}/{name}"),
                        ips.iter().map(ToString::to_string).collect(),
                    )
                })
                .collect();
        }
        let _ = self.applied.send(Some(Arc::new(applied)));
    }

    /// What it reports now.
    pub fn report(&self) -> Report {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A handle that reads the report without holding the provider.
    pub fn reporter(&self) -> Reporter {
        Reporter(Arc::clone(&self.report))
    }
}

/// The pools without what they handed out.
fn ranges_only(pools: &BTreeMap<String, AddressPool>) -> BTreeMap<String, AddressPool> {
    pools
        .iter()
        .map(|(name, p)| {
            let mut p = p.clone();
            p.allocated.clear();
            (name.clone(), p)
        })
        .collect()
}

/// Reads a provider's [`Report`].
#[derive(Clone)]
pub struct Reporter(Arc<Mutex<Report>>);

impl Reporter {
    /// What the provider reports now.
    pub fn read(&self) -> Report {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Builds the client from the settings: the kubeconfig named, else in-cluster credentials,
/// `$KUBECONFIG` or `~/.kube/config` (kube's inference order).
async fn client(settings: &KubernetesConfig) -> Result<Client, String> {
    let options = kube::config::KubeConfigOptions {
        context: settings.context.clone(),
        ..Default::default()
    };
    let config = match &settings.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None if settings.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("kubeconfig: {e}"))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes credentials: {e}"))?,
    };
    Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

async fn run(
    settings: Arc<KubernetesConfig>,
    mut pools: channel::Receiver<BTreeMap<String, AddressPool>>,
    rendered: channel::Sender<Option<Arc<Rendered>>>,
    applied: channel::Receiver<Option<Arc<Applied>>>,
    leader: Leader,
    report: Arc<Mutex<Report>>,
    stop: CancellationToken,
) {
    let shared = Arc::new(watch::Shared::new());
    let mut last: Option<Arc<Rendered>> = None;
    if let Some(path) = &settings.cache_file {
        match cache::read(path) {
            Ok(Some(snapshot)) => {
                let fresh = Arc::new(render(&snapshot, &settings, &pools.borrow_and_update()));
                tracing::info!(
                    file = %path.display(),
                    services = fresh.services.len(),
                    gateways = fresh.gateways.len(),
                    routes = fresh.routes.len(),
                    "kubernetes: serving the objects of the cache file until the API server has been listed"
                );
                *shared
                    .snapshot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = snapshot;
                report
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .from_cache = Some(SystemTime::now());
                last = Some(Arc::clone(&fresh));
                let _ = rendered.send(Some(fresh));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("kubernetes: the cache file is not usable, ignored: {e}"),
        }
    }
    let client = loop {
        match client(&settings).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!("kubernetes: {e}; retrying in {}s", CLIENT_RETRY.as_secs());
                report
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_error = Some(e);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(CLIENT_RETRY) => {}
                }
            }
        }
    };
    let tasks = tokio_util::task::TaskTracker::new();
    spawn_watchers(&tasks, &client, &settings, &shared, &stop);
    tasks.spawn(
        stop.clone()
            .run_until_cancelled_owned(probe(client.clone(), Arc::clone(&report))),
    );
    tasks.spawn(stop.clone().run_until_cancelled_owned(status::write(
        client.clone(),
        applied,
        Arc::clone(&shared),
        leader,
        Arc::clone(&report),
    )));
    tracing::info!(
        namespaces = %if settings.namespaces.is_empty() { "all".to_owned() } else { settings.namespaces.join(",") },
        "kubernetes: watching"
    );
    // The cache file is written from whole views only, at most every `WRITE_EVERY`.
    let mut cache_due: Option<tokio::time::Instant> = None;
    let mut cache_written = tokio::time::Instant::now() - cache::WRITE_EVERY;
    let mut good_secrets = secrets::GoodSecrets::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = shared.changed.notified() => {}
            r = pools.changed() => if r.is_err() { break },
            () = sleep_until_some(cache_due) => {
                cache_due = None;
                cache_written = tokio::time::Instant::now();
                write_cache(&settings, &shared).await;
                continue;
            }
        }
        tokio::time::sleep(SETTLE).await;
        {
            let mut r = report.lock().unwrap_or_else(PoisonError::into_inner);
            r.synced = shared.all_synced();
            r.objects = shared
                .snapshot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .counts();
            r.last_error = shared
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .or(r.last_error.take());
            if !r.synced {
                continue;
            }
            r.from_cache = None;
        }
        if settings.cache_file.is_some() && cache_due.is_none() {
            cache_due = Some((cache_written + cache::WRITE_EVERY).max(tokio::time::Instant::now()));
        }
        let mut snapshot = shared
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        good_secrets.apply(&mut snapshot);
        let fresh = render(&snapshot, &settings, &pools.borrow_and_update());
        if last.as_deref() == Some(&fresh) {
            continue;
        }
        for s in &fresh.skipped {
            if !last.as_ref().is_some_and(|l| l.skipped.contains(s)) {
                tracing::warn!("kubernetes: {s}");
            }
        }
        let fresh = Arc::new(fresh);
        last = Some(Arc::clone(&fresh));
        if rendered.send(Some(fresh)).is_err() {
            break;
        }
    }
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

/// ReferenceGrant at `v1beta1`: the version every Gateway API release since 0.6 serves (the
/// crate's type is `v1`, served only from 1.5 on).
fn reference_grants() -> ApiResource {
    let mut r = gateway_api_resource::<gateway_api::referencegrants::ReferenceGrant>();
    r.version = "v1beta1".to_owned();
    r.api_version = format!("{}/v1beta1", r.group);
    r
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Writes the snapshot to `cacheFile`, off the runtime's threads.
async fn write_cache(settings: &KubernetesConfig, shared: &watch::Shared) {
    let Some(path) = settings.cache_file.clone() else {
        return;
    };
    let snapshot = shared
        .snapshot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let result = tokio::task::spawn_blocking(move || cache::write(&path, &snapshot)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("kubernetes: cannot write the cache file: {e}"),
        Err(e) => tracing::warn!("kubernetes: cannot write the cache file: {e}"),
    }
}

/// The Gateway API kinds, as dynamic resources (types from the gateway-api crate).
fn gateway_api_resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

fn spawn_watchers(
    tasks: &tokio_util::task::TaskTracker,
    client: &Client,
    settings: &KubernetesConfig,
    shared: &Arc<watch::Shared>,
    stop: &CancellationToken,
) {
    use gateway_api::experimental::{tcproutes::TcpRoute, udproutes::UdpRoute};
    use gateway_api::{
        gatewayclasses::GatewayClass, gateways::Gateway, httproutes::HttpRoute, tlsroutes::TlsRoute,
    };
    use k8s_openapi::api::core::v1::{Node, Secret, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    let namespaces: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let plain = watcher::Config::default;
    let spawn = |fut| {
        tasks.spawn(stop.clone().run_until_cancelled_owned(fut));
    };
    for ns in &namespaces {
        let label = |kind: &str| match ns {
            Some(n) => format!("{kind} in {n}"),
            None => kind.to_owned(),
        };
        spawn(Box::pin(watch::run(
            label("Services"),
            watch::typed_api::<Service>(client, ns.as_deref()),
            plain(),
            ns.clone(),
            |s| &mut s.services,
            Arc::clone(shared),
        )) as futures_util::future::BoxFuture<'static, ()>);
        spawn(Box::pin(watch::run(
            label("EndpointSlices"),
            watch::typed_api::<EndpointSlice>(client, ns.as_deref()),
            plain(),
            ns.clone(),
            |s| &mut s.slices,
            Arc::clone(shared),
        )));
        spawn(Box::pin(watch::run(
            label("Secrets"),
            watch::typed_api::<Secret>(client, ns.as_deref()),
            plain().fields("type=kubernetes.io/tls"),
            ns.clone(),
            |s| &mut s.secrets,
            Arc::clone(shared),
        )));
        spawn(Box::pin(watch::run(
            label("Gateways"),
            watch::dynamic_api(client, &gateway_api_resource::<Gateway>(), ns.as_deref()),
            plain(),
            ns.clone(),
            |s| &mut s.gateways,
            Arc::clone(shared),
        )));
        spawn(Box::pin(watch::run(
            label("ReferenceGrants"),
            watch::dynamic_api(client, &reference_grants(), ns.as_deref()),
            plain(),
            ns.clone(),
            |s| &mut s.grants,
            Arc::clone(shared),
        )));
        let routes: [(RouteKind, ApiResource); 4] = [
            (RouteKind::Http, gateway_api_resource::<HttpRoute>()),
            (RouteKind::Tls, gateway_api_resource::<TlsRoute>()),
            (RouteKind::Tcp, gateway_api_resource::<TcpRoute>()),
            (RouteKind::Udp, gateway_api_resource::<UdpRoute>()),
        ];
        for (kind, resource) in routes {
            let slot: watch::Slot<kube::api::DynamicObject> = match kind {
                RouteKind::Http => |s| s.routes.entry(RouteKind::Http).or_default(),
                RouteKind::Tls => |s| s.routes.entry(RouteKind::Tls).or_default(),
                RouteKind::Tcp => |s| s.routes.entry(RouteKind::Tcp).or_default(),
                RouteKind::Udp => |s| s.routes.entry(RouteKind::Udp).or_default(),
            };
            spawn(Box::pin(watch::run(
                label(&format!("{}s", kind.kind())),
                watch::dynamic_api(client, &resource, ns.as_deref()),
                plain(),
                ns.clone(),
                slot,
                Arc::clone(shared),
            )));
        }
    }
    spawn(Box::pin(watch::run(
        "GatewayClasses".to_owned(),
        watch::dynamic_api(client, &gateway_api_resource::<GatewayClass>(), None),
        plain(),
        None,
        |s| &mut s.classes,
        Arc::clone(shared),
    )));
    if settings.endpoints == gatehouse_config::EndpointsMode::NodePorts {
        spawn(Box::pin(watch::run(
            "Nodes".to_owned(),
            kube::Api::<Node>::all(client.clone()),
            plain(),
            None,
            |s| &mut s.nodes,
            Arc::clone(shared),
        )));
    }
}

/// Probes `/version`: `connected` in the report, and a log line when it changes.
async fn probe(client: Client, report: Arc<Mutex<Report>>) {
    let mut first = true;
    loop {
        let ok = match tokio::time::timeout(PROBE_EVERY, client.apiserver_version()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".to_owned()),
        };
        {
            let mut r = report.lock().unwrap_or_else(PoisonError::into_inner);
            let now = ok.is_ok();
            if first || r.connected != now {
                match &ok {
                    Ok(()) if first => tracing::info!("kubernetes: API server reachable"),
                    Ok(()) => tracing::info!("kubernetes: API server reachable again; reconciling"),
                    Err(e) => tracing::warn!(
                        "kubernetes: API server unreachable ({e}); serving the last known state"
                    ),
                }
                r.connected = now;
                r.since = Some(SystemTime::now());
            }
            if let Err(e) = ok {
                r.last_error = Some(e);
            }
        }
        first = false;
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
