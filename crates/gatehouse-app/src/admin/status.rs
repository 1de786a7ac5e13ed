//! `/status`: the running state as one JSON document, built from the live objects (pools,
//! listener states, VRRP status watches, the DNS server) at the moment it is asked for. The
//! status page and `gatehouse status` read the same document.

use serde::{Deserialize, Serialize};

use gatehouse_config::{HealthCheckKind, Listener, TrackTarget};
use gatehouse_vrrp::instance::InstanceState;

use super::{AdminShared, View};
use crate::telemetry::rfc3339;

/// The whole document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusDoc {
    /// Gatehouse's version.
    pub version: String,
    /// When the document was made (the server's clock: compare other times with it).
    pub now: String,
    /// When the process started.
    pub started: String,
    /// Whether `/readyz` says ready.
    pub ready: bool,
    /// The config file and its reloads.
    pub config: ConfigDoc,
    /// VRRP instances: who holds the virtual addresses.
    pub vips: Vec<VipDoc>,
    /// Listeners, as bound.
    pub listeners: Vec<ListenerDoc>,
    /// Routes (and each listener's default backend), one per rule.
    pub routes: Vec<RouteDoc>,
    /// Backends and every endpoint's health.
    pub backends: Vec<BackendDoc>,
    /// The DNS server, when configured.
    pub dns: Option<DnsDoc>,
    /// The Kubernetes provider, when configured.
    pub kubernetes: Option<KubernetesDoc>,
    /// The last warnings and errors, oldest first.
    pub recent: Vec<RecentDoc>,
}

/// The Kubernetes provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KubernetesDoc {
    /// Whether the API server answered the last probe. While it does not, the last known
    /// state is served.
    pub connected: bool,
    /// Since when `connected` has been what it is.
    pub since: Option<String>,
    /// Whether every kind has been listed (nothing from the cluster is served before).
    pub synced: bool,
    /// Whether this node writes status (VRRP master of the pool's instance).
    pub writes_status: bool,
    /// The last error from the API server.
    pub last_error: Option<String>,
    /// Objects held, by kind.
    pub objects: std::collections::BTreeMap<String, usize>,
    /// LoadBalancer Services served: `NAMESPACE/NAME` -> addresses.
    pub services: std::collections::BTreeMap<String, Vec<String>>,
    /// Objects left out of the running config, with why.
    pub rejected: Vec<RejectedDoc>,
    /// Status writes done.
    pub status_writes: u64,
    /// Status writes that failed.
    pub status_write_failures: u64,
    /// While what is served comes from `cacheFile` (no full list from the API server since
    /// the start): when the file was read.
    pub from_cache: Option<String>,
}

impl KubernetesDoc {
    /// `3 Service, 1 Gateway` (kinds with objects), or `no objects`.
    pub fn objects_summary(&self) -> String {
        let objects: Vec<String> = self
            .objects
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        if objects.is_empty() {
            "no objects".to_owned()
        } else {
            objects.join(", ")
        }
    }

    /// `writes` or `does not write` (status).
    pub fn writes(&self) -> &'static str {
        if self.writes_status {
            "writes"
        } else {
            "does not write"
        }
    }
}

/// An object left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RejectedDoc {
    /// `KIND NAMESPACE/NAME`.
    pub object: String,
    /// The errors, one line each.
    pub errors: Vec<String>,
}

/// The config file and its reloads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigDoc {
    /// The file served.
    pub file: Option<String>,
    /// When the running config was loaded.
    pub loaded: Option<String>,
    /// The last reload attempt.
    pub last_reload: Option<ReloadDoc>,
}

/// One reload attempt.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadDoc {
    /// When.
    pub time: String,
    /// `SIGHUP` or `file changed`.
    pub trigger: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// One VRRP instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VipDoc {
    /// Its name.
    pub instance: String,
    /// The interface it runs on, once found.
    pub interface: Option<String>,
    /// Its virtual router id.
    pub vrid: u8,
    /// The virtual addresses, `ADDRESS/PREFIX`.
    pub addresses: Vec<String>,
    /// `init`, `backup`, `master` or `fault`.
    pub state: String,
    /// The effective priority (configured minus failing tracks).
    pub priority: u8,
    /// The configured priority.
    pub configured_priority: u8,
    /// The master's address, when known.
    pub master: Option<String>,
    /// Who holds the addresses: `this node`, a peer's address, or why nobody is known.
    pub holder: String,
    /// When it entered its state.
    pub since: String,
    /// Why it is in its state.
    pub reason: String,
    /// What its priority tracks.
    pub tracks: Vec<String>,
}

/// One listener.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenerDoc {
    /// `gateway/listener` or `forward/NAME`.
    pub name: String,
    /// TCP, TLS, HTTP, HTTPS or UDP.
    pub protocol: String,
    /// The address bound (the real port when the config says 0).
    pub address: String,
    /// Open connections (UDP: flows) on its socket; TLS listeners sharing a port share it.
    pub open_connections: usize,
    /// The backends it can send to.
    pub backends: Vec<String>,
}

/// One route rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteDoc {
    /// The listener it is attached to.
    pub listener: String,
    /// The route's name (`default` for the listener's own `backend`).
    pub route: String,
    /// Host names it serves there (`*`: any).
    pub hosts: Vec<String>,
    /// What it matches and where it sends (`PathPrefix /api -> app (w1)`; TCP and TLS:
    /// `-> app`).
    pub rule: String,
    /// Its backends.
    pub backends: Vec<String>,
}

/// One backend pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendDoc {
    /// Its name.
    pub name: String,
    /// How it balances.
    pub balance: String,
    /// Its active health check, or `none`.
    pub health_check: String,
    /// Every resolved endpoint.
    pub endpoints: Vec<EndpointDoc>,
}

/// One endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointDoc {
    /// The address connections go to.
    pub address: String,
    /// As configured (a name for resolved endpoints).
    pub target: String,
    /// Its weight.
    pub weight: u32,
    /// Up according to active health checks (always, without them).
    pub up: bool,
    /// Taken out by passive ejection right now.
    pub ejected: bool,
    /// `up`, `down` or `ejected`.
    pub health: String,
    /// Connections open to it.
    pub active_connections: usize,
    /// When its health last changed (or it was added).
    pub last_change: String,
}

/// The DNS server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsDoc {
    /// Where it answers (UDP and TCP).
    pub listen: Vec<String>,
    /// Its zones.
    pub zones: Vec<ZoneDoc>,
    /// Answers sent since it started, by question type and response code.
    pub answers: Vec<DnsCountDoc>,
    /// Queries dropped without an answer.
    pub dropped: u64,
}

/// One zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoneDoc {
    /// Its name.
    pub name: String,
    /// Its records (static and automatic).
    pub records: usize,
}

/// One DNS counter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsCountDoc {
    /// Question type.
    #[serde(rename = "type")]
    pub qtype: String,
    /// Response code.
    pub rcode: String,
    /// Answers.
    pub count: u64,
}

/// One warning or error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RecentDoc {
    /// When.
    pub time: String,
    /// `WARN` or `ERROR`.
    pub level: String,
    /// The message.
    pub message: String,
    /// Its fields, `key=value`.
    pub fields: String,
}

/// Who holds an instance's addresses, as a person would say it.
fn holder(state: InstanceState, master: Option<std::net::IpAddr>) -> String {
    match (state, master) {
        (InstanceState::Master, _) => "this node".to_owned(),
        (InstanceState::Backup, Some(ip)) => ip.to_string(),
        (InstanceState::Backup, None) => "unknown (no advert heard yet)".to_owned(),
        (InstanceState::Init, _) => "not this node (starting)".to_owned(),
        (InstanceState::Fault, _) => "not this node (fault)".to_owned(),
    }
}

/// The routes of one listener, one entry per rule.
fn routes_of(l: &Listener, out: &mut Vec<RouteDoc>) {
    for r in &l.routes {
        out.push(RouteDoc {
            listener: l.name.clone(),
            route: r.route.clone(),
            hosts: r.hosts.iter().map(ToString::to_string).collect(),
            rule: format!("-> {}", r.backend),
            backends: vec![r.backend.clone()],
        });
    }
    for r in &l.http_routes {
        for rule in r.rules.iter() {
            out.push(RouteDoc {
                listener: l.name.clone(),
                route: r.route.clone(),
                hosts: r.hosts.iter().map(ToString::to_string).collect(),
                rule: rule.describe(),
                backends: rule.backends.iter().map(|b| b.backend.clone()).collect(),
            });
        }
    }
}

fn health_check_text(b: &gatehouse_config::Backend) -> String {
    let Some(h) = &b.health_check else {
        return "none (passive only)".to_owned();
    };
    let probe = match &h.kind {
        HealthCheckKind::Tcp => "TCP connect".to_owned(),
        HealthCheckKind::Udp { .. } => "UDP datagram".to_owned(),
        HealthCheckKind::Tls { .. } => "TLS handshake".to_owned(),
        HealthCheckKind::Http { path, .. } => format!("HTTP GET {path}"),
    };
    format!(
        "{probe} every {}",
        gatehouse_config::format_duration(h.interval)
    )
}

/// The document for what runs now.
pub(crate) fn build(shared: &AdminShared) -> StatusDoc {
    let view: std::sync::Arc<View> = shared.view.load_full();
    let config = &view.config;
    let info = shared.telemetry.config_info();

    let vips = shared
        .vips
        .read()
        .into_iter()
        .map(|(inst, st)| VipDoc {
            instance: inst.name.clone(),
            interface: st.interface.clone(),
            vrid: inst.vrid,
            addresses: inst
                .addresses
                .iter()
                .map(|(ip, p)| format!("{ip}/{p}"))
                .collect(),
            state: st.state.to_string(),
            priority: st.priority,
            configured_priority: inst.priority,
            master: st.master.map(|m| m.to_string()),
            holder: holder(st.state, st.master),
            since: rfc3339(st.since_system),
            reason: st.reason.clone(),
            tracks: inst
                .track
                .iter()
                .map(|t| {
                    let what = match &t.target {
                        TrackTarget::Backend(b) => format!("backend {b}"),
                        TrackTarget::Listener(l) => format!("listener {l}"),
                    };
                    match t.weight {
                        Some(w) => format!("{what} (-{w})"),
                        None => format!("{what} (gives up)"),
                    }
                })
                .collect(),
        })
        .collect();

    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for l in &config.listeners {
        let key = l.key();
        let socket = view.sockets.iter().find(|s| s.key == key);
        listeners.push(ListenerDoc {
            name: l.name.clone(),
            protocol: l.protocol.to_string(),
            address: socket.map_or(l.bind, |s| s.local).to_string(),
            open_connections: socket.map_or(0, |s| s.state.open_connections()),
            backends: l.backends().iter().map(|b| (*b).to_owned()).collect(),
        });
        routes_of(l, &mut routes);
    }

    let backends = config
        .backends
        .values()
        .map(|b| BackendDoc {
            name: b.name.clone(),
            balance: b.balance.to_string(),
            health_check: health_check_text(b),
            endpoints: view
                .pools
                .get(&b.name)
                .map(|p| p.endpoints())
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    let (up, ejected) = (e.is_up(), e.is_ejected());
                    EndpointDoc {
                        address: e.addr.to_string(),
                        target: e.target.to_string(),
                        weight: e.weight,
                        up,
                        ejected,
                        health: match (up, ejected) {
                            (false, _) => "down",
                            (true, true) => "ejected",
                            (true, false) => "up",
                        }
                        .to_owned(),
                        active_connections: e.active_connections(),
                        last_change: rfc3339(e.health_changed_at()),
                    }
                })
                .collect(),
        })
        .collect();

    let dns = view.dns.as_ref().map(|d| {
        let stats = d.dns.stats();
        DnsDoc {
            listen: d.local.iter().map(ToString::to_string).collect(),
            zones: config
                .dns
                .as_ref()
                .map(|c| {
                    c.zones
                        .iter()
                        .map(|z| ZoneDoc {
                            name: z.name.clone(),
                            records: z.records.len(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            answers: stats
                .answers()
                .into_iter()
                .map(|(t, r, n)| DnsCountDoc {
                    qtype: t.to_owned(),
                    rcode: r.to_owned(),
                    count: n,
                })
                .collect(),
            dropped: stats.dropped_count(),
        }
    });

    StatusDoc {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        now: rfc3339(std::time::SystemTime::now()),
        started: rfc3339(shared.telemetry.started()),
        ready: shared.is_ready(),
        config: ConfigDoc {
            file: info.file.map(|f| f.display().to_string()),
            loaded: info.loaded.map(rfc3339),
            last_reload: info.last_reload.map(|r| ReloadDoc {
                time: rfc3339(r.time),
                trigger: r.trigger,
                outcome: if r.error.is_none() { "ok" } else { "failed" }.to_owned(),
                error: r.error,
            }),
        },
        vips,
        listeners,
        routes,
        backends,
        dns,
        kubernetes: shared.kube.load_full().map(|k| {
            let r = k.read();
            KubernetesDoc {
                connected: r.connected,
                since: r.since.map(rfc3339),
                synced: r.synced,
                writes_status: r.writes_status,
                last_error: r.last_error,
                objects: r
                    .objects
                    .into_iter()
                    .map(|(k, n)| (k.to_owned(), n))
                    .collect(),
                services: r.services,
                rejected: r
                    .rejected
                    .into_iter()
                    .map(|x| RejectedDoc {
                        object: x.document,
                        errors: x.errors,
                    })
                    .collect(),
                status_writes: r.status_writes.0,
                status_write_failures: r.status_writes.1,
                from_cache: r.from_cache.map(rfc3339),
            }
        }),
        recent: shared
            .telemetry
            .recent()
            .into_iter()
            .map(|n| RecentDoc {
                time: rfc3339(n.time),
                level: n.level.to_owned(),
                message: n.message,
                fields: n.fields,
            })
            .collect(),
    }
}
