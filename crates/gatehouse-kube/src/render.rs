//! The cluster as config: a [`Snapshot`] and the `kubernetes` settings in, an [`Overlay`] out.
//!
//! Pure and deterministic: every Gatehouse node watching the same cluster renders the same
//! overlay, so they agree on addresses without talking to each other. The pool allocation
//! itself is the config compiler's (`pool:` entries); an address a Service or Gateway already
//! has in its `status` is pinned (`pool:NAME/ADDRESS`), so addresses never move once written.
//!
//! - A LoadBalancer Service we take becomes a fragment: a gateway `svc.NAMESPACE.NAME` with a
//!   TCP or UDP listener per port, each sent to a backend of that port's ready endpoints.
//! - A Gateway of our class becomes a manifest document, as `gatewayApi.manifests` files are
//!   read; its routes too, with `parentRefs` to other Gateways removed.
//! - Service ports that routes name get backends (fragments) and `services` mappings; the TLS
//!   Secrets that Gateways name become in-memory certificate files.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gatehouse_config::{
    AddressPool, DocumentKind, EndpointsMode, KubernetesConfig, MEMORY_PREFIX, Overlay,
    OverlayDocument,
};
use k8s_openapi::api::core::v1::{Service, ServicePort};
use kube::api::DynamicObject;
use serde_json::{Value, json};

use crate::snapshot::{Key, RouteKind, Snapshot};

/// Annotations asking for specific addresses, MetalLB's and Cilium's, in the order read.
pub const ADDRESS_ANNOTATIONS: [&str; 4] = [
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
    "lbipam.cilium.io/ips",
    "io.cilium/lb-ipam-ips",
];

/// Annotations naming the pool, MetalLB's.
pub const POOL_ANNOTATIONS: [&str; 2] = [
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];

/// external-dns's hostname annotation: more DNS names for a LoadBalancer Service.
pub const HOSTNAME_ANNOTATION: &str = "external-dns.alpha.kubernetes.io/hostname";

/// Gatehouse's annotation: send a PROXY protocol header (`v1` or `v2`) to the Service's
/// endpoints, so that they see the client's address.
pub const PROXY_PROTOCOL_ANNOTATION: &str = "gatehouse.dev/proxy-protocol";

/// The overlay and what it was made of, for status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// What the config is compiled with.
    pub overlay: Overlay,
    /// LoadBalancer Services taken: key -> the gateway (and document) made for it.
    pub services: BTreeMap<Key, Taken>,
    /// Gateways taken: key -> the gateway (and document) made for it.
    pub gateways: BTreeMap<Key, Taken>,
    /// Routes taken, with the parent references that are ours.
    pub routes: Vec<TakenRoute>,
    /// Things left out, one line each (logged when they change).
    pub skipped: Vec<String>,
}

/// An object rendered into the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The Gatehouse gateway name.
    pub gateway: String,
    /// The overlay document.
    pub document: String,
}

/// A route rendered into the overlay.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenRoute {
    /// Its kind.
    pub kind: RouteKind,
    /// Namespace and name.
    pub key: Key,
    /// The overlay document.
    pub document: String,
    /// Its `parentRefs` that name Gateways we serve and may attach to, as written.
    pub parents: Vec<Value>,
    /// Its `parentRefs` to Gateways we serve that do not let it attach, with why.
    pub refused: Vec<(Value, String)>,
    /// Its backend references left out for want of a ReferenceGrant.
    pub unresolved: Vec<String>,
}

/// The overlay document name of an object.
pub fn document_name(kind: &str, key: &Key) -> String {
    if key.0.is_empty() {
        format!("{kind} {}", key.1)
    } else {
        format!("{kind} {}/{}", key.0, key.1)
    }
}

/// Renders the overlay. `pools` are the config's (a pinned address must be in its pool).
pub fn render(
    snapshot: &Snapshot,
    settings: &KubernetesConfig,
    pools: &BTreeMap<String, AddressPool>,
) -> Rendered {
    let mut r = Renderer {
        snapshot,
        settings,
        pools,
        out: Rendered::default(),
        fragments: BTreeMap::new(),
    };
    r.gateways();
    r.routes();
    r.load_balancers();
    r.finish();
    r.out
}

struct Renderer<'a> {
    snapshot: &'a Snapshot,
    settings: &'a KubernetesConfig,
    pools: &'a BTreeMap<String, AddressPool>,
    out: Rendered,
    /// Service -> (backends, gateways) of its fragment.
    fragments: BTreeMap<Key, (BTreeMap<String, Value>, Vec<Value>)>,
}

impl Renderer<'_> {
    /// Gateways of our class, with addresses from the pool when they name none.
    fn gateways(&mut self) {
        let class = &self.settings.gateway_class_name;
        // A GatewayClass of that name that another controller implements is not ours to
        // serve; with no GatewayClass object at all, the name alone decides.
        if let Some(c) = self.snapshot.classes.get(&(String::new(), class.clone()))
            && c.data["spec"]["controllerName"].as_str() != Some(KubernetesConfig::CONTROLLER_NAME)
        {
            self.out.skipped.push(format!(
                "GatewayClass {class} belongs to controller `{}`, not Gatehouse's `{}`: its Gateways are not served",
                c.data["spec"]["controllerName"].as_str().unwrap_or_default(),
                KubernetesConfig::CONTROLLER_NAME
            ));
            return;
        }
        for (key, g) in &self.snapshot.gateways {
            let spec = &g.data["spec"];
            if spec["gatewayClassName"].as_str() != Some(class) {
                continue;
            }
            let document = document_name("Gateway", key);
            // Named after namespace and name: two Gateways of one name in two namespaces are
            // two gateways (the manifest reader knows gateways by name).
            let name = generated_name("gw", key, None);
            let has_addresses = spec["addresses"].as_array().is_some_and(|a| !a.is_empty());
            if !has_addresses {
                let held: Vec<IpAddr> = g.data["status"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["value"].as_str()?.parse().ok())
                    .collect();
                if let Some(entries) = self.pool_entries(None, &[], &held) {
                    self.out
                        .overlay
                        .addresses
                        .insert(format!("{}/{name}", key.0), entries);
                }
            }
            for l in spec["listeners"].as_array().into_iter().flatten() {
                for c in l["tls"]["certificateRefs"].as_array().into_iter().flatten() {
                    let ns = c["namespace"].as_str().unwrap_or(&key.0);
                    let Some(name) = c["name"].as_str() else {
                        continue;
                    };
                    if ns != key.0 && !self.granted(ns, "Gateway", &key.0, "Secret", name) {
                        self.out.skipped.push(format!(
                            "Gateway {}/{}: certificateRef to Secret {ns}/{name} needs a ReferenceGrant in namespace {ns}",
                            key.0, key.1
                        ));
                        continue;
                    }
                    self.secret(&(ns.to_owned(), name.to_owned()));
                }
            }
            self.out.overlay.documents.push(OverlayDocument {
                name: document.clone(),
                kind: DocumentKind::Manifest,
                text: manifest_text(&name, "Gateway", &key.0, spec.clone(), g),
            });
            self.out.gateways.insert(
                key.clone(),
                Taken {
                    gateway: name,
                    document,
                },
            );
        }
    }

    /// A TLS Secret as in-memory certificate files.
    fn secret(&mut self, key: &Key) {
        let Some(s) = self.snapshot.secrets.get(key) else {
            return;
        };
        let data = s.data.as_ref();
        let (Some(cert), Some(pkey)) = (
            data.and_then(|d| d.get("tls.crt")),
            data.and_then(|d| d.get("tls.key")),
        ) else {
            return;
        };
        let base = format!("{MEMORY_PREFIX}secret/{}/{}", key.0, key.1);
        let (cert_path, key_path) = (format!("{base}/tls.crt"), format!("{base}/tls.key"));
        self.out
            .overlay
            .files
            .insert(cert_path.clone(), cert.0.clone());
        self.out
            .overlay
            .files
            .insert(key_path.clone(), pkey.0.clone());
        self.out
            .overlay
            .secrets
            .insert(format!("{}/{}", key.0, key.1), (cert_path, key_path));
    }

    /// Routes with a parent we serve; their Service backends.
    fn routes(&mut self) {
        let ours: BTreeSet<&Key> = self.out.gateways.keys().collect();
        let mut taken = Vec::new();
        let mut wanted: BTreeSet<(Key, i64)> = BTreeSet::new();
        for kind in RouteKind::ALL {
            for (key, route) in self.snapshot.routes_of(kind) {
                let mut spec = route.data["spec"].clone();
                let mut parents = Vec::new();
                let mut refused = Vec::new();
                for p in spec["parentRefs"].as_array().into_iter().flatten() {
                    let is_gateway = p["kind"].as_str().is_none_or(|k| k == "Gateway")
                        && p["group"].as_str().is_none_or(|g| g == GROUP);
                    let ns = p["namespace"].as_str().unwrap_or(&key.0);
                    let gw_key = (
                        ns.to_owned(),
                        p["name"].as_str().unwrap_or_default().to_owned(),
                    );
                    if !is_gateway || !ours.contains(&gw_key) {
                        continue;
                    }
                    match self.attachable(&gw_key, p, kind, &key.0) {
                        Ok(()) => parents.push(p.clone()),
                        Err(why) => refused.push((p.clone(), why)),
                    }
                }
                if parents.is_empty() && refused.is_empty() {
                    continue;
                }
                let document = document_name(kind.kind(), key);
                let mut unresolved = Vec::new();
                if !parents.is_empty() {
                    // The gateways are known by their generated names.
                    let renamed: Vec<Value> = parents
                        .iter()
                        .map(|p| {
                            let ns = p["namespace"].as_str().unwrap_or(&key.0).to_owned();
                            let gw = (
                                ns.clone(),
                                p["name"].as_str().unwrap_or_default().to_owned(),
                            );
                            let mut p = p.clone();
                            p["name"] = json!(generated_name("gw", &gw, None));
                            p["namespace"] = json!(ns);
                            p
                        })
                        .collect();
                    spec["parentRefs"] = Value::Array(renamed);
                    for rule in spec["rules"].as_array_mut().into_iter().flatten() {
                        let Some(refs) = rule["backendRefs"].as_array_mut() else {
                            continue;
                        };
                        refs.retain(|b| {
                            let is_service = b["kind"].as_str().is_none_or(|k| k == "Service")
                                && b["group"].as_str().is_none_or(str::is_empty);
                            let (Some(name), Some(port)) = (b["name"].as_str(), b["port"].as_i64())
                            else {
                                return true;
                            };
                            if !is_service {
                                return true;
                            }
                            let ns = b["namespace"].as_str().unwrap_or(&key.0);
                            if ns != key.0 && !self.granted(ns, kind.kind(), &key.0, "Service", name) {
                                unresolved.push(format!(
                                    "backendRef to Service {ns}/{name} needs a ReferenceGrant in namespace {ns} from {} in {}",
                                    kind.kind(),
                                    key.0
                                ));
                                return false;
                            }
                            wanted.insert(((ns.to_owned(), name.to_owned()), port));
                            true
                        });
                    }
                    self.out.overlay.documents.push(OverlayDocument {
                        name: document.clone(),
                        kind: DocumentKind::Manifest,
                        // Named after kind, namespace and name: routes of one name in two
                        // namespaces are two routes.
                        text: manifest_text(
                            &generated_name(kind.prefix(), key, None),
                            kind.kind(),
                            &key.0,
                            spec,
                            route,
                        ),
                    });
                }
                taken.push(TakenRoute {
                    kind,
                    key: key.clone(),
                    document,
                    parents,
                    refused,
                    unresolved,
                });
            }
        }
        self.out.routes = taken;
        for (svc, port) in wanted {
            let Some(s) = self.snapshot.services.get(&svc) else {
                continue;
            };
            let Some(p) = ports(s).iter().find(|p| i64::from(p.port) == port) else {
                continue;
            };
            let backend = self.backend(&svc, s, p);
            self.out
                .overlay
                .services
                .insert(format!("{}/{}:{port}", svc.0, svc.1), backend);
        }
    }

    /// Whether a Gateway's listeners let a route of `kind` from `route_ns` attach (through
    /// `sectionName` and `port`, if the reference names them). The error is the reason.
    fn attachable(
        &self,
        gateway: &Key,
        parent: &Value,
        kind: RouteKind,
        route_ns: &str,
    ) -> Result<(), String> {
        let Some(g) = self.snapshot.gateways.get(gateway) else {
            return Err("no such Gateway".to_owned());
        };
        let section = parent["sectionName"].as_str();
        let port = parent["port"].as_i64();
        let mut named = 0;
        for l in g.data["spec"]["listeners"].as_array().into_iter().flatten() {
            if section.is_some_and(|s| l["name"].as_str() != Some(s))
                || port.is_some_and(|p| l["port"].as_i64() != Some(p))
            {
                continue;
            }
            named += 1;
            let allowed = &l["allowedRoutes"];
            let from_ok = match allowed["namespaces"]["from"].as_str().unwrap_or("Same") {
                "All" => true,
                "Same" => route_ns == gateway.0,
                // Namespace labels are not watched: a selector admits nothing (said in status).
                _ => false,
            };
            let kinds: Vec<&str> = match allowed["kinds"].as_array() {
                Some(list) if !list.is_empty() => list
                    .iter()
                    .filter(|k| k["group"].as_str().is_none_or(|g| g == GROUP))
                    .filter_map(|k| k["kind"].as_str())
                    .collect(),
                _ => default_kinds(l),
            };
            if from_ok && kinds.contains(&kind.kind()) {
                return Ok(());
            }
        }
        if named == 0 {
            return Err(format!(
                "Gateway {}/{} has no listener matching the parentRef's sectionName/port",
                gateway.0, gateway.1
            ));
        }
        Err(format!(
            "no listener of Gateway {}/{} allows a {} from namespace {route_ns} (allowedRoutes; namespace selectors are not supported)",
            gateway.0,
            gateway.1,
            kind.kind()
        ))
    }

    /// Whether a ReferenceGrant in `to_ns` lets `from_kind` objects of `from_ns` refer to the
    /// `to_kind` (core group) named `name`.
    fn granted(
        &self,
        to_ns: &str,
        from_kind: &str,
        from_ns: &str,
        to_kind: &str,
        name: &str,
    ) -> bool {
        self.snapshot
            .grants
            .iter()
            .filter(|((ns, _), _)| ns == to_ns)
            .any(|(_, g)| {
                let spec = &g.data["spec"];
                let from = spec["from"].as_array().into_iter().flatten().any(|f| {
                    f["group"].as_str() == Some(GROUP)
                        && f["kind"].as_str() == Some(from_kind)
                        && f["namespace"].as_str() == Some(from_ns)
                });
                let to = spec["to"].as_array().into_iter().flatten().any(|t| {
                    t["group"].as_str().unwrap_or_default().is_empty()
                        && t["kind"].as_str() == Some(to_kind)
                        && t["name"].as_str().is_none_or(|n| n == name)
                });
                from && to
            })
    }

    /// LoadBalancer Services we take: a gateway each.
    fn load_balancers(&mut self) {
        for (key, s) in &self.snapshot.services {
            if !self.is_ours(s) {
                continue;
            }
            let gateway = generated_name("svc", key, None);
            let annotations = s.metadata.annotations.as_ref();
            let annotation = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| annotations.and_then(|a| a.get(*n)))
                    .map(String::as_str)
            };
            let mut asked: Vec<IpAddr> = Vec::new();
            let text = annotation(&ADDRESS_ANNOTATIONS).or_else(|| {
                s.spec
                    .as_ref()
                    .and_then(|sp| sp.load_balancer_ip.as_deref())
                    .filter(|ip| !ip.is_empty())
            });
            for a in text.into_iter().flat_map(|t| t.split(',')) {
                match a.trim().parse() {
                    Ok(ip) => asked.push(ip),
                    Err(_) => self.out.skipped.push(format!(
                        "Service {}/{}: `{}` is not an IP address",
                        key.0,
                        key.1,
                        a.trim()
                    )),
                }
            }
            let held: Vec<IpAddr> = s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect();
            let pool = annotation(&POOL_ANNOTATIONS);
            let Some(addresses) = self.pool_entries(pool, &asked, &held) else {
                self.out.skipped.push(format!(
                    "Service {}/{}: no pool to take an address from (set `kubernetes.pool`)",
                    key.0, key.1
                ));
                continue;
            };
            let mut names: Vec<String> = annotation(&[HOSTNAME_ANNOTATION])
                .into_iter()
                .flat_map(|t| t.split(','))
                .map(|n| n.trim().trim_end_matches('.').to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            if let Some(zone) = &self.settings.dns_zone {
                names.push(format!("{}.{}.{zone}", key.1, key.0));
            }
            let mut listeners = Vec::new();
            for p in ports(s) {
                let protocol = p.protocol.as_deref().unwrap_or("TCP");
                if protocol != "TCP" && protocol != "UDP" {
                    self.out.skipped.push(format!(
                        "Service {}/{} port {}: protocol {protocol} is not served",
                        key.0, key.1, p.port
                    ));
                    continue;
                }
                let backend = self.backend(key, s, p);
                let mut l = json!({
                    "name": format!("{}-{}", protocol.to_ascii_lowercase(), p.port),
                    "port": p.port,
                    "protocol": protocol,
                    "backend": backend,
                });
                if let Some(ranges) = s
                    .spec
                    .as_ref()
                    .and_then(|sp| sp.load_balancer_source_ranges.as_ref())
                    .filter(|r| !r.is_empty())
                {
                    l["allow"] = json!(ranges);
                }
                if !names.is_empty() {
                    l["dnsNames"] = json!(names);
                }
                listeners.push(l);
            }
            let fragment = self.fragments.entry(key.clone()).or_default();
            fragment.1.push(json!({
                "name": gateway,
                "addresses": addresses,
                "listeners": listeners,
            }));
            self.out.services.insert(
                key.clone(),
                Taken {
                    gateway,
                    document: document_name("Service", key),
                },
            );
        }
    }

    /// Whether a Service is a LoadBalancer we take.
    fn is_ours(&self, s: &Service) -> bool {
        let Some(spec) = s.spec.as_ref() else {
            return false;
        };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return false;
        }
        if spec.load_balancer_class.as_deref() != self.settings.load_balancer_class.as_deref() {
            return false;
        }
        match &self.settings.label_selector {
            None => true,
            Some(sel) => sel.matches(s.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())),
        }
    }

    /// The `addresses` entries of a gateway: each address asked for (which must be in the
    /// pool), else the ones already held that are still in the pool, else one from the pool.
    fn pool_entries(
        &self,
        pool: Option<&str>,
        asked: &[IpAddr],
        held: &[IpAddr],
    ) -> Option<Vec<String>> {
        let name = pool.or(self.settings.pool.as_deref())?;
        if !asked.is_empty() {
            return Some(asked.iter().map(|ip| format!("pool:{name}/{ip}")).collect());
        }
        let kept: Vec<String> = held
            .iter()
            .filter(|ip| self.pools.get(name).is_some_and(|p| p.contains(**ip)))
            .map(|ip| format!("pool:{name}/{ip}"))
            .collect();
        if kept.is_empty() {
            Some(vec![format!("pool:{name}")])
        } else {
            Some(kept)
        }
    }

    /// The backend of one Service port (added to the Service's fragment); returns its name.
    fn backend(&mut self, key: &Key, s: &Service, p: &ServicePort) -> String {
        let name = generated_name("k8s", key, Some(p.port));
        let endpoints = self.endpoints(key, s, p);
        let mut backend = json!({"name": name, "endpoints": endpoints});
        if s.spec
            .as_ref()
            .and_then(|sp| sp.session_affinity.as_deref())
            == Some("ClientIP")
        {
            backend["balance"] = json!("ConsistentHash");
        }
        // TCP ports only: UDP has no PROXY header here.
        if let Some(v) = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROXY_PROTOCOL_ANNOTATION))
            .filter(|_| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        {
            backend["proxyProtocol"] = json!(v);
        }
        let fragment = self.fragments.entry(key.clone()).or_default();
        fragment.0.insert(name.clone(), backend);
        name
    }

    /// `ip:port` of every ready endpoint of a Service port, sorted.
    fn endpoints(&self, key: &Key, s: &Service, p: &ServicePort) -> Vec<String> {
        let spec = s.spec.as_ref();
        if let Some(host) = spec
            .filter(|sp| sp.type_.as_deref() == Some("ExternalName"))
            .and_then(|sp| sp.external_name.as_deref())
        {
            return vec![format!("{}:{}", host.trim_end_matches('.'), p.port)];
        }
        let mut out = BTreeSet::new();
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        let port_name = p.name.as_deref().unwrap_or("");
        let mut ready_nodes = BTreeSet::new();
        for ((ns, _), slice) in &self.snapshot.slices {
            let owner = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"));
            if *ns != key.0 || owner != Some(&key.1) {
                continue;
            }
            if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
                continue;
            }
            let target = slice.ports.as_ref().into_iter().flatten().find(|sp| {
                sp.name.as_deref().unwrap_or("") == port_name
                    && sp.protocol.as_deref().unwrap_or("TCP") == protocol
            });
            let Some(target) = target.and_then(|t| t.port) else {
                continue;
            };
            for e in &slice.endpoints {
                // `ready` unset means ready (the API's documented meaning).
                let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                if let Some(n) = &e.node_name {
                    ready_nodes.insert(n.clone());
                }
                for a in &e.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        out.insert(socket(ip, target));
                    }
                }
            }
        }
        if self.settings.endpoints == EndpointsMode::Pods {
            return out.into_iter().collect();
        }
        let Some(node_port) = p.node_port else {
            return Vec::new();
        };
        let local = spec.and_then(|sp| sp.external_traffic_policy.as_deref()) == Some("Local");
        let mut nodes = BTreeSet::new();
        for ((_, name), n) in &self.snapshot.nodes {
            let status = n.status.as_ref();
            let ready = status
                .and_then(|st| st.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready || (local && !ready_nodes.contains(name)) {
                continue;
            }
            let addresses = status.and_then(|st| st.addresses.as_ref());
            let pick = |kind: &str| {
                addresses
                    .into_iter()
                    .flatten()
                    .find(|a| a.type_ == kind)
                    .and_then(|a| a.address.parse::<IpAddr>().ok())
            };
            if let Some(ip) = pick("InternalIP").or_else(|| pick("ExternalIP")) {
                nodes.insert(socket(ip, node_port));
            }
        }
        nodes.into_iter().collect()
    }

    /// The fragments, in key order.
    fn finish(&mut self) {
        for (key, (backends, gateways)) in std::mem::take(&mut self.fragments) {
            let body = json!({
                "backends": backends.into_values().collect::<Vec<_>>(),
                "gateways": gateways,
            });
            self.out.overlay.documents.push(OverlayDocument {
                name: document_name("Service", &key),
                kind: DocumentKind::Fragment,
                text: serde_json::to_string_pretty(&body).unwrap_or_default(),
            });
        }
    }
}

const GROUP: &str = "gateway.networking.k8s.io";

/// The route kinds a listener takes when its `allowedRoutes.kinds` says nothing.
fn default_kinds(listener: &Value) -> Vec<&'static str> {
    match listener["protocol"].as_str().unwrap_or_default() {
        "HTTP" | "HTTPS" => vec!["HTTPRoute"],
        "TLS" if listener["tls"]["mode"].as_str() == Some("Terminate") => vec!["TCPRoute"],
        "TLS" => vec!["TLSRoute"],
        "TCP" => vec!["TCPRoute"],
        "UDP" => vec!["UDPRoute"],
        _ => vec![],
    }
}

fn ports(s: &Service) -> &[ServicePort] {
    s.spec
        .as_ref()
        .and_then(|sp| sp.ports.as_deref())
        .unwrap_or_default()
}

fn socket(ip: IpAddr, port: i32) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// A Gatehouse name for a generated object: `PREFIX.NAMESPACE.NAME[.PORT]`, shortened with a
/// hash of the whole when longer than the 63 characters names may have.
pub fn generated_name(prefix: &str, key: &Key, port: Option<i32>) -> String {
    let full = match port {
        Some(p) => format!("{prefix}.{}.{}.{p}", key.0, key.1),
        None => format!("{prefix}.{}.{}", key.0, key.1),
    };
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across versions and machines, unlike std's hasher.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{hash:016x}", &full[..46])
}

/// An object as a manifest document: kind, `name` and namespace, and `spec`.
fn manifest_text(
    name: &str,
    kind: &str,
    namespace: &str,
    spec: Value,
    obj: &DynamicObject,
) -> String {
    let api_version = obj
        .types
        .as_ref()
        .map_or("gateway.networking.k8s.io/v1", |t| t.api_version.as_str());
    let doc = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
        },
        "spec": spec,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
