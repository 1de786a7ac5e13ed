//! Validation and compilation: [`RawConfig`] -> [`Config`], collecting every problem.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, Pos, Source};
use crate::gateway_api::Manifests;
use crate::model::{
    RawBackend, RawConfig, RawForward, RawGateway, RawHealthCheck, RawRoute, S, Scalar,
};
use crate::parse::{
    closest, parse_duration, parse_endpoint_target, parse_host_pattern, parse_listen_address,
    parse_listen_socket, parse_status_range,
};
use crate::types::*;

/// Default for a listener's `idleTimeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default for a listener's `maxConnections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// A compiled config and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The snapshot to run.
    pub config: Config,
    /// Warnings only (a config with errors is never `Loaded`).
    pub warnings: Diagnostics,
}

/// Reads and compiles a config file.
pub fn load_file(path: &Path) -> Result<Loaded, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(text) => compile(&Source::new(path.display().to_string(), text)),
        Err(err) => Err(Diagnostics::unreadable(path, &err)),
    }
}

/// Compiles config text; `name` is what diagnostics call it.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, Diagnostics> {
    compile(&Source::new(name, text))
}

/// Parses, validates and compiles one source.
pub fn compile(source: &Source) -> Result<Loaded, Diagnostics> {
    compile_inner(source, None)
}

/// [`compile`], with a provider's documents (see [`crate::load_with`]).
pub(crate) fn compile_inner(
    source: &Source,
    overlay: Option<&crate::Overlay>,
) -> Result<Loaded, Diagnostics> {
    let mut source = source.clone();
    let fail = |source: &Source, items| Diagnostics {
        source: source.clone(),
        items,
    };
    let raw: RawConfig = if source.text.trim().is_empty() {
        RawConfig {
            gateways: vec![],
            backends: vec![],
            routes: vec![],
            forwards: vec![],
            settings: None,
            gateway_api: None,
            dns: None,
            pools: vec![],
            vrrp: vec![],
            admin: None,
            kubernetes: None,
        }
    } else {
        serde_saphyr::from_str(&source.text).map_err(|e| fail(&source, vec![yaml_error(&e)]))?
    };
    // Files the config names (certificates, CA bundles) are relative to the config's directory.
    let base = Path::new(&*source.name)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut manifests = if raw.gateway_api.is_some() || overlay.is_some() {
        crate::gateway_api::read(raw.gateway_api.as_ref(), &base, overlay)
    } else {
        Manifests::default()
    };
    let disk_files = manifests.disk_files;
    source = source.with_files(std::mem::take(&mut manifests.sources));
    if manifests
        .diags
        .iter()
        .any(|d| d.severity == crate::diag::Severity::Error)
    {
        let mut items = manifests.diags;
        items.sort_by_key(|d| (d.pos.file, d.pos.line, d.pos.column));
        return Err(fail(&source, items));
    }
    let mut cx = Compiler {
        diags: std::mem::take(&mut manifests.diags),
        base,
        dns_names: Vec::new(),
        allocation: Default::default(),
        memory: overlay.map(|o| o.files.clone()).unwrap_or_default(),
        overlay_from: u32::try_from(disk_files + 1).unwrap_or(u32::MAX),
        provider_pool: raw
            .kubernetes
            .as_ref()
            .and_then(|k| k.value.pool.as_ref())
            .map(|p| p.value.clone()),
    };
    let mut config = cx.config(&raw, &manifests);
    config.manifests = source.files()[..disk_files]
        .iter()
        .map(|f| PathBuf::from(&*f.name))
        .collect();
    let diagnostics = fail(&source, cx.diags);
    if diagnostics.has_errors() {
        Err(diagnostics)
    } else {
        Ok(Loaded {
            config,
            warnings: diagnostics,
        })
    }
}

/// Turns a YAML/shape error into our diagnostic, in the user's words.
pub(crate) fn yaml_error(e: &serde_saphyr::Error) -> Diagnostic {
    let pos = e.location().map(Pos::from).unwrap_or_default();
    let text = e.without_snippet().to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    if let Some(rest) = text.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return Diagnostic::error(pos, format!("duplicate key `{key}`"))
            .with_hint("a key may appear once in each mapping; remove or merge the repeated one");
    }
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .split(", ")
            .map(|s| s.trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        let hint = match closest(field, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None if known.is_empty() => "remove it: this mapping takes no other keys".to_owned(),
            None => format!("the keys allowed here are: {}", known.join(", ")),
        };
        return Diagnostic::error(pos, format!("unknown key `{field}`")).with_hint(hint);
    }
    if let Some(rest) = text.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return Diagnostic::error(pos, format!("missing required key `{field}`"))
            .with_hint(format!("add `{field}:` to this mapping"));
    }
    if text.starts_with("invalid i64") || text.starts_with("invalid u64") {
        return Diagnostic::error(pos, "expected a whole number here")
            .with_hint("write a plain integer, e.g. `8080`");
    }
    if text == "expected sequence start" {
        return Diagnostic::error(pos, "expected a list here").with_hint(
            "write one item per line starting with `- `, or `[]` for none (or remove the key)",
        );
    }
    if text == "expected mapping start" {
        return Diagnostic::error(pos, "expected a mapping (`key: value` lines) here")
            .with_hint("see docs/config.md for the shape of each section");
    }
    Diagnostic::error(pos, text).with_hint("see docs/config.md for the shape of each section")
}

thread_local! {
    /// The file whose objects are being compiled (0: the config file; `n`: its `n`th
    /// manifest file). Spans carry line and column only, so [`pos`] stamps them with this.
    static CURRENT_FILE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// While alive, positions taken with [`pos`] are in manifest file `file`; the previous file
/// is restored on drop.
pub(crate) struct InFile(u32);

impl InFile {
    pub(crate) fn new(file: u32) -> Self {
        InFile(CURRENT_FILE.with(|c| c.replace(file)))
    }
}

impl Drop for InFile {
    fn drop(&mut self) {
        CURRENT_FILE.with(|c| c.set(self.0));
    }
}

/// The file [`pos`] stamps positions with now.
pub(crate) fn current_file() -> u32 {
    CURRENT_FILE.with(std::cell::Cell::get)
}

pub(crate) fn pos<T>(s: &S<T>) -> Pos {
    Pos {
        file: CURRENT_FILE.with(std::cell::Cell::get),
        ..Pos::from(s.referenced)
    }
}

/// The position of a value, or of the list item holding it when the value came from a short
/// form with no span of its own (`- host:port`, `- gateway/listener`).
pub(crate) fn pos_or<T, U>(value: &S<T>, item: &S<U>) -> Pos {
    if value.referenced.line() == 0 {
        pos(item)
    } else {
        pos(value)
    }
}

pub(crate) struct Compiler {
    pub(crate) diags: Vec<Diagnostic>,
    /// The config file's directory: relative file names are resolved against it.
    pub(crate) base: PathBuf,
    /// `dnsName`s of TCP and UDP listeners, for the DNS server's automatic records.
    pub(crate) dns_names: Vec<crate::dns::DnsName>,
    /// What the `pool:` addresses resolved to.
    pub(crate) allocation: crate::pools::Allocation,
    /// In-memory files of the overlay (certificates from Kubernetes Secrets).
    pub(crate) memory: BTreeMap<String, Vec<u8>>,
    /// The first file number that is an overlay document.
    pub(crate) overlay_from: u32,
    /// The pool `kubernetes.pool` names: the cluster's Services take its addresses later.
    pub(crate) provider_pool: Option<String>,
}

/// Where a listener came from, for error messages about it.
pub(crate) struct ListenerOrigin {
    pub(crate) name: String,
    pub(crate) pos: Pos,
}

/// A `backend:` reference (of a listener or a route), recorded whether or not its owner
/// compiled, so that an owner with another error still has its reference checked (and still
/// counts as a user of its backend).
pub(crate) struct BackendRef<'a> {
    /// Who refers, as the message names it: "listener `edge/web`", "route `git`".
    pub(crate) owner: String,
    pub(crate) backend: &'a str,
    pub(crate) pos: Pos,
}

/// A gateway listener being compiled: routes are attached to it after every gateway is read.
pub(crate) struct Draft {
    pub(crate) gateway: String,
    /// The listener's own name within its gateway.
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    /// The listener's own `hostname` (TLS, HTTP, HTTPS).
    pub(crate) hostname: Option<HostPattern>,
    /// One per address the listener listens on.
    pub(crate) sockets: Vec<Listener>,
    pub(crate) origin_pos: Pos,
    /// The listener's own `backend`, served last, for names no route claims.
    pub(crate) default_backend: Option<String>,
    /// TLSRoutes attached, in config order: entry and where the route is defined.
    pub(crate) attached: Vec<(RouteEntry, Pos)>,
    /// HTTPRoutes attached, in config order.
    pub(crate) http_attached: Vec<HttpRouteEntry>,
}

impl Compiler {
    pub(crate) fn error(&mut self, at: Pos, message: impl Into<String>) -> &mut Diagnostic {
        let index = self.diags.len();
        self.diags.push(Diagnostic::error(at, message));
        &mut self.diags[index]
    }

    /// Errors found so far.
    pub(crate) fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Error)
            .count()
    }

    pub(crate) fn warn(&mut self, at: Pos, message: impl Into<String>) -> &mut Diagnostic {
        let index = self.diags.len();
        self.diags.push(Diagnostic::warning(at, message));
        &mut self.diags[index]
    }

    fn config(&mut self, raw: &RawConfig, manifests: &Manifests) -> Config {
        let mut backends = BTreeMap::new();
        let mut backend_pos: HashMap<String, Pos> = HashMap::new();
        let raw_backends = raw
            .backends
            .iter()
            .map(|b| (0, b))
            .chain(manifests.backends.iter().map(|(f, b)| (*f, b)));
        for (file, b) in raw_backends {
            let _file = InFile::new(file);
            let name = b.value.name.value.clone();
            // An invalid name is still "defined": listeners naming it get no second error.
            self.name_ok(&b.value.name, "backend");
            // A duplicate's body is checked too, so that one run reports every problem.
            let compiled = self.backend(b);
            if let Some(first) = backend_pos.get(&name) {
                let first = *first;
                self.error(
                    pos(&b.value.name),
                    format!("backend `{name}` is defined twice"),
                )
                .hint("give each backend a unique name")
                .note(first, "first defined");
                continue;
            }
            backend_pos.insert(name.clone(), pos(&b.value.name));
            if let Some(backend) = compiled {
                backends.insert(name, Arc::new(backend));
            }
        }

        let mut drafts: Vec<Draft> = Vec::new();
        let mut gateway_pos: HashMap<&str, Pos> = HashMap::new();
        let mut references: Vec<BackendRef> = Vec::new();
        let gateways: Vec<(u32, &S<RawGateway>)> = raw
            .gateways
            .iter()
            .map(|g| (0, g))
            .chain(manifests.gateways.iter().map(|(f, g)| (*f, g)))
            .collect();
        let (pools, allocation) = self.pools(raw, &gateways);
        self.allocation = allocation;
        for (file, g) in gateways {
            let _file = InFile::new(file);
            let name = g.value.name.value.as_str();
            if self.name_ok(&g.value.name, "gateway") {
                if let Some(&first) = gateway_pos.get(name) {
                    self.error(
                        pos(&g.value.name),
                        format!("gateway `{name}` is defined twice"),
                    )
                    .hint("give each gateway a unique name")
                    .note(first, "first defined");
                } else {
                    gateway_pos.insert(name, pos(&g.value.name));
                }
            }
            self.gateway(g, &mut drafts, &mut references);
        }
        let routes: Vec<(u32, &S<RawRoute>)> = raw
            .routes
            .iter()
            .map(|r| (0, r))
            .chain(manifests.routes.iter().map(|(f, r)| (*f, r)))
            .collect();
        self.routes(&routes, &gateway_pos, &mut drafts, &mut references);
        let (mut listeners, mut origins) = self.finish_listeners(drafts, &backends);
        let mut forward_names: HashMap<String, Pos> = HashMap::new();
        for f in &raw.forwards {
            if let Some((listener, backend, origin)) = self.forward(f, &mut forward_names) {
                backends.insert(backend.name.clone(), Arc::new(backend));
                listeners.push(listener);
                origins.push(origin);
            }
        }

        self.check_binds(&listeners, &origins);
        // A backend that VRRP tracks is used (a VIP that follows the local API server).
        for v in &raw.vrrp {
            for t in &v.value.track {
                if let Some(b) = &t.value.backend {
                    references.push(BackendRef {
                        owner: format!("VRRP instance `{}`", v.value.name.value),
                        backend: b.value.as_str(),
                        pos: pos(b),
                    });
                }
            }
        }
        self.check_references(&references, &backends, &backend_pos);
        let vrrp = self.vrrp(&raw.vrrp, &pools, &listeners, &backends);
        let dns_names = std::mem::take(&mut self.dns_names);
        let dns = raw.dns.as_ref().and_then(|d| {
            let _file = InFile::new(0);
            self.dns(d, &listeners, &origins, &dns_names)
        });
        if raw.dns.is_none()
            && let Some(first) = dns_names.first()
        {
            self.warn(first.pos, "`dnsName` is set but there is no `dns` section")
                .hint("add `dns:` with a zone that holds the name, or remove `dnsName`");
        }
        let admin = raw.admin.as_ref().and_then(|a| {
            let _file = InFile::new(0);
            self.admin(a, &listeners, &origins)
        });
        let kubernetes = raw.kubernetes.as_ref().and_then(|k| {
            let _file = InFile::new(0);
            self.kubernetes(k, &pools, &raw.vrrp, dns.as_ref(), raw.dns.is_some())
        });
        let listeners: Vec<Arc<Listener>> = listeners.into_iter().map(Arc::new).collect();

        let drain_timeout = raw
            .settings
            .as_ref()
            .map(|s| {
                self.duration(
                    &s.value.drain_timeout,
                    Duration::from_secs(30),
                    Duration::ZERO,
                    "drainTimeout",
                )
            })
            .unwrap_or(Duration::from_secs(30));
        if listeners.is_empty()
            && raw.dns.is_none()
            && raw.vrrp.is_empty()
            && raw.kubernetes.is_none()
            && self.diags.is_empty()
        {
            self.warn(
                Pos {
                    line: 1,
                    column: 1,
                    file: 0,
                },
                "the config defines no listeners: nothing will be served",
            )
            .hint("add a `gateways:` section with listeners, or a `forwards:` entry");
        }
        // In file order, whichever check found them (stable: same place keeps check order).
        self.diags
            .sort_by_key(|d| (d.pos.file, d.pos.line, d.pos.column));
        Config {
            listeners,
            backends,
            drain_timeout,
            manifests: Vec::new(),
            dns: dns.map(Arc::new),
            vrrp: vrrp.into_iter().map(Arc::new).collect(),
            pools,
            admin,
            kubernetes: kubernetes.map(Arc::new),
        }
    }

    /// Names appear in logs, metrics and URLs: keep them plain.
    pub(crate) fn name_ok(&mut self, name: &S<String>, what: &str) -> bool {
        let n = &name.value;
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            self.error(pos(name), format!("`{n}` is not a valid {what} name"))
                .hint("use 1-63 letters, digits, `-`, `_` or `.`, starting with a letter or digit");
        }
        ok
    }

    fn gateway<'a>(
        &mut self,
        g: &'a S<RawGateway>,
        out: &mut Vec<Draft>,
        references: &mut Vec<BackendRef<'a>>,
    ) {
        let gw = &g.value;
        let mut addresses: Vec<IpAddr> = Vec::new();
        for a in &gw.addresses {
            if a.value.0.trim().starts_with("pool:") {
                // Resolved (or reported) by `pools`.
                if let Some(ip) = self.allocation.get(&gw.name.value, &a.value.0) {
                    addresses.push(ip);
                }
                continue;
            }
            match parse_listen_address(&a.value.0) {
                Ok(ip) => addresses.push(ip),
                Err(msg) => {
                    self.error(pos(a), msg).hint(
                        "write an IP address this node listens on, e.g. `127.0.0.1` or `::1`",
                    );
                }
            }
        }
        if gw.addresses.is_empty() {
            addresses.push(IpAddr::from([0, 0, 0, 0]));
        }
        if gw.listeners.is_empty() {
            self.warn(
                pos(&gw.name),
                format!("gateway `{}` has no listeners", gw.name.value),
            );
        }
        let mut names: HashMap<&str, Pos> = HashMap::new();
        for l in &gw.listeners {
            let raw = &l.value;
            let lname = raw.name.value.as_str();
            if let Some(b) = &raw.backend {
                references.push(BackendRef {
                    owner: format!("listener `{}/{}`", gw.name.value, lname),
                    backend: b.value.as_str(),
                    pos: pos(b),
                });
            }
            if self.name_ok(&raw.name, "listener") {
                if let Some(&first) = names.get(lname) {
                    self.error(
                        pos(&raw.name),
                        format!(
                            "gateway `{}` has two listeners named `{lname}`",
                            gw.name.value
                        ),
                    )
                    .hint("listener names must be unique within a gateway")
                    .note(first, "first defined");
                } else {
                    names.insert(lname, pos(&raw.name));
                }
            }
            let protocol = self.protocol(&raw.protocol);
            let port = self.port(&raw.port, true);
            let max_connections = self.max_connections(&raw.max_connections);
            let idle_timeout = self.idle_timeout(&raw.idle_timeout);
            let owner = format!("{}/{}", gw.name.value, lname);
            let ips: Vec<IpAddr> = match &raw.address {
                Some(a) if a.value.0.trim().starts_with("pool:") => {
                    match self.allocation.get(&owner, &a.value.0) {
                        Some(ip) => vec![ip],
                        None => continue,
                    }
                }
                Some(a) => match parse_listen_address(&a.value.0) {
                    Ok(ip) => vec![ip],
                    Err(msg) => {
                        self.error(pos(a), msg)
                            .hint("write an IP address, e.g. `127.0.0.1`");
                        continue;
                    }
                },
                None => addresses.clone(),
            };
            let full_name = format!("{}/{}", gw.name.value, lname);
            for d in raw.dns_name.iter().chain(&raw.dns_names) {
                if matches!(protocol, Some(Protocol::Tcp | Protocol::Udp)) {
                    if let Ok(name) = crate::dns::normalize(&d.value, None) {
                        self.dns_names.push(crate::dns::DnsName {
                            listener: full_name.clone(),
                            name,
                            pos: pos(d),
                        });
                    } else {
                        self.error(pos(d), format!("`{}` is not a domain name", d.value));
                    }
                } else if protocol.is_some() {
                    self.error(pos(d), "`dnsName` only applies to TCP and UDP listeners")
                        .hint("TLS, HTTP and HTTPS listeners get records for their routes' hostnames by themselves");
                }
            }
            let (hostname, tls) = self.listener_tls(raw, protocol, &full_name);
            let http = self.listener_http(raw, protocol);
            let udp = self.listener_udp(raw, protocol);
            let access = self.access(&raw.allow, &raw.deny);
            let accept_proxy = self.accept_proxy(raw, protocol);
            if raw.backend.is_none() && matches!(protocol, Some(Protocol::Tcp | Protocol::Udp)) {
                self.error(
                    pos(&raw.name),
                    format!("listener `{lname}` has no `backend`"),
                )
                .hint("name the backend pool that receives its connections: `backend: NAME`");
                continue;
            }
            let (Some(protocol), Some(port), Some(tls)) = (protocol, port, tls) else {
                continue;
            };
            let sockets = ips
                .into_iter()
                .map(|ip| Listener {
                    name: full_name.clone(),
                    bind: SocketAddr::new(ip, port),
                    protocol,
                    routes: Vec::new(),
                    hostname: hostname.clone(),
                    tls: tls.clone(),
                    http_routes: Vec::new(),
                    http: http.clone(),
                    max_connections,
                    idle_timeout,
                    access: access.clone(),
                    accept_proxy: accept_proxy.clone(),
                    udp: udp.clone(),
                })
                .collect();
            out.push(Draft {
                gateway: gw.name.value.clone(),
                name: lname.to_owned(),
                protocol,
                hostname,
                sockets,
                origin_pos: pos(&raw.port),
                default_backend: raw.backend.as_ref().map(|b| b.value.clone()),
                attached: Vec::new(),
                http_attached: Vec::new(),
            });
        }
    }

    fn forward(
        &mut self,
        f: &S<RawForward>,
        names: &mut HashMap<String, Pos>,
    ) -> Option<(Listener, Backend, ListenerOrigin)> {
        let raw = &f.value;
        let listen = match parse_listen_socket(&raw.listen.value.0) {
            Ok(a) => Some(a),
            Err(msg) => {
                self.error(pos(&raw.listen), msg);
                None
            }
        };
        let target = match parse_endpoint_target(&raw.to.value) {
            Ok(t) => Some(t),
            Err(msg) => {
                self.error(pos(&raw.to), msg)
                    .hint("write the destination as `host:port`");
                None
            }
        };
        let name = match &raw.name {
            Some(n) => {
                self.name_ok(n, "forward");
                n.value.clone()
            }
            None => raw.listen.value.0.trim().to_owned(),
        };
        let at = raw.name.as_ref().map_or(pos(&raw.listen), pos);
        if let Some(&first) = names.get(&name) {
            self.error(at, format!("two forwards are named `{name}`"))
                .hint("give each forward a unique `name`")
                .note(first, "first defined");
        } else {
            names.insert(name.clone(), at);
        }
        let max_connections = self.max_connections(&raw.max_connections);
        let idle_timeout = self.idle_timeout(&raw.idle_timeout);
        let access = self.access(&raw.allow, &raw.deny);
        let (listen, target) = (listen?, target?);
        let full_name = format!("forward/{name}");
        let backend = Backend {
            name: full_name.clone(),
            balance: Balance::RoundRobin,
            endpoints: vec![EndpointSpec { target, weight: 1 }],
            connect_timeout: Duration::from_secs(5),
            retries: 0,
            resolve_interval: Duration::from_secs(30),
            passive: Passive {
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
            },
            health_check: None,
            tls: None,
            proxy_protocol: None,
        };
        let listener = Listener {
            name: full_name.clone(),
            bind: listen,
            protocol: Protocol::Tcp,
            routes: vec![RouteEntry {
                route: "default".to_owned(),
                hosts: vec![HostMatch::Any],
                backend: full_name.clone(),
                access: Access::default(),
            }],
            hostname: None,
            tls: None,
            http_routes: Vec::new(),
            http: None,
            max_connections,
            idle_timeout,
            access,
            accept_proxy: None,
            udp: None,
        };
        let origin = ListenerOrigin {
            name: full_name,
            pos: pos(&raw.listen),
        };
        Some((listener, backend, origin))
    }

    fn backend(&mut self, b: &S<RawBackend>) -> Option<Backend> {
        let raw = &b.value;
        let name = raw.name.value.clone();
        let balance = match &raw.balance {
            None => Some(Balance::RoundRobin),
            Some(s) => {
                let found = Balance::NAMES
                    .iter()
                    .find(|(n, _)| *n == s.value)
                    .map(|(_, b)| *b);
                if found.is_none() {
                    let names = Balance::NAMES.map(|(n, _)| n);
                    let hint = match closest(&s.value, names) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => format!("use one of: {}", names.join(", ")),
                    };
                    self.error(
                        pos(s),
                        format!("`{}` is not a balancing algorithm", s.value),
                    )
                    .hint(hint);
                }
                found
            }
        };
        // A Service with no ready endpoint is normal during a rollout: its listeners answer
        // as for a backend with every endpoint down.
        if raw.endpoints.is_empty() && current_file() < self.overlay_from {
            self.error(pos(&raw.name), format!("backend `{name}` has no endpoints"))
                .hint("list at least one endpoint under `endpoints:`, e.g. `- 127.0.0.1:8080`");
        }
        let mut endpoints: Vec<EndpointSpec> = Vec::new();
        let mut seen: HashMap<Target, Pos> = HashMap::new();
        for e in &raw.endpoints {
            // The short form `- host:port` has no span of its own: use the list item's.
            let at = if e.value.address.referenced.line() == 0 {
                pos(e)
            } else {
                pos(&e.value.address)
            };
            let weight = match &e.value.weight {
                None => 1,
                Some(w) => self.int_in(w, 0, 1000, "weight").unwrap_or(1),
            };
            match parse_endpoint_target(&e.value.address.value) {
                Ok(target) => {
                    if let Some(first) = seen.insert(target.clone(), at) {
                        self.error(
                            at,
                            format!("endpoint `{target}` is listed twice in backend `{name}`"),
                        )
                        .hint("list each endpoint once; use `weight` to give it a larger share")
                        .note(first, "first listed");
                    }
                    endpoints.push(EndpointSpec { target, weight });
                }
                Err(msg) => {
                    self.error(at, msg)
                        .hint("write an endpoint as `ip:port`, `[ipv6]:port` or `hostname:port`");
                }
            }
        }
        if !endpoints.is_empty() && endpoints.iter().all(|e| e.weight == 0) {
            self.warn(
                pos(&raw.name),
                format!("every endpoint of backend `{name}` has weight 0"),
            )
            .hint("weight 0 takes no new connections; give at least one endpoint a weight");
        }
        let connect_timeout = self.duration(
            &raw.connect_timeout,
            Duration::from_secs(5),
            Duration::from_millis(1),
            "connectTimeout",
        );
        let retries = raw
            .retries
            .as_ref()
            .and_then(|r| self.int_in(r, 0, 10, "retries"))
            .unwrap_or(2);
        let resolve_interval = self.duration(
            &raw.resolve_interval,
            Duration::from_secs(30),
            Duration::from_secs(1),
            "resolveInterval",
        );
        let passive = match &raw.passive {
            None => Passive {
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
            },
            Some(p) => Passive {
                max_fails: p
                    .value
                    .max_fails
                    .as_ref()
                    .and_then(|m| self.int_in(m, 0, 100, "maxFails"))
                    .unwrap_or(1),
                fail_timeout: self.duration(
                    &p.value.fail_timeout,
                    Duration::from_secs(10),
                    Duration::from_millis(1),
                    "failTimeout",
                ),
            },
        };
        let health_check = raw.health_check.as_ref().and_then(|h| self.health_check(h));
        if raw.health_check.is_some() && health_check.is_none() {
            return None;
        }
        let tls = match &raw.tls {
            None => None,
            Some(t) => Some(self.backend_tls(t)?),
        };
        let proxy_protocol = self.proxy_version(&raw.proxy_protocol);
        Some(Backend {
            name,
            balance: balance?,
            endpoints,
            connect_timeout,
            retries,
            resolve_interval,
            passive,
            health_check,
            tls,
            proxy_protocol,
        })
    }

    fn health_check(&mut self, h: &S<RawHealthCheck>) -> Option<HealthCheck> {
        let raw = &h.value;
        let protocol = raw.protocol.as_ref().map_or("TCP", |p| p.value.as_str());
        let interval = self.duration(
            &raw.interval,
            Duration::from_secs(2),
            Duration::from_millis(10),
            "interval",
        );
        let timeout = self.duration(
            &raw.timeout,
            interval.min(Duration::from_secs(1)),
            Duration::from_millis(1),
            "timeout",
        );
        if timeout > interval
            && let Some(t) = &raw.timeout
        {
            self.warn(pos(t), "the health check timeout is longer than its interval")
                .hint("probes of one endpoint never overlap, so checks will run less often than `interval`");
        }
        let rise = raw
            .rise
            .as_ref()
            .and_then(|r| self.int_in(r, 1, 100, "rise"))
            .unwrap_or(2);
        let fall = raw
            .fall
            .as_ref()
            .and_then(|r| self.int_in(r, 1, 100, "fall"))
            .unwrap_or(3);
        if protocol != "UDP" {
            self.udp_only_keys(raw);
        }
        let port = raw.port.as_ref().and_then(|p| self.port(p, false));
        let kind = match protocol {
            "UDP" => {
                for (field, present) in [
                    ("path", raw.path.as_ref().map(pos)),
                    ("host", raw.host.as_ref().map(pos)),
                    ("expectStatus", raw.expect_status.as_ref().map(pos)),
                ] {
                    if let Some(at) = present {
                        self.error(at, format!("`{field}` only applies to HTTP health checks"))
                            .hint("a UDP check sends `send` and expects a reply starting with `expect`");
                    }
                }
                self.udp_probe(raw, pos(h))
            }
            "TCP" => {
                for (field, present) in [
                    ("path", raw.path.as_ref().map(pos)),
                    ("host", raw.host.as_ref().map(pos)),
                    ("expectStatus", raw.expect_status.as_ref().map(pos)),
                ] {
                    if let Some(at) = present {
                        self.error(at, format!("`{field}` only applies to HTTP health checks"))
                            .hint("add `protocol: HTTP` to the health check, or remove this key");
                    }
                }
                HealthCheckKind::Tcp
            }
            "TLS" => {
                for (field, present) in [
                    ("path", raw.path.as_ref().map(pos)),
                    ("expectStatus", raw.expect_status.as_ref().map(pos)),
                ] {
                    if let Some(at) = present {
                        self.error(at, format!("`{field}` only applies to HTTP health checks"))
                            .hint(
                                "a TLS check is a handshake; `host` sets the server name it sends",
                            );
                    }
                }
                let server_name = match &raw.host {
                    None => None,
                    Some(h) => match parse_host_pattern(&h.value) {
                        Ok(HostPattern::Exact(name)) => Some(name),
                        _ => {
                            self.error(pos(h), format!("`{}` is not a server name", h.value))
                                .hint("write a host name, e.g. `app.home.arpa`");
                            None
                        }
                    },
                };
                HealthCheckKind::Tls { server_name }
            }
            "HTTP" => {
                let path = raw
                    .path
                    .as_ref()
                    .map_or("/".to_owned(), |p| p.value.clone());
                if !path.starts_with('/')
                    || path.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    let at = raw.path.as_ref().map_or(pos(h), pos);
                    self.error(at, format!("`{path}` is not a request path"))
                        .hint("a path starts with `/` and has no spaces, e.g. `/healthz`");
                }
                let host = raw.host.as_ref().map(|s| s.value.clone());
                if let Some(hs) = &raw.host
                    && (hs.value.is_empty()
                        || hs
                            .value
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control()))
                {
                    self.error(
                        pos(hs),
                        format!("`{}` is not a valid Host header", hs.value),
                    )
                    .hint("write a host name, e.g. `app.home.arpa`");
                }
                let expect_status = match &raw.expect_status {
                    None => 200..=399,
                    Some(s) => match parse_status_range(&s.value.0) {
                        Ok(r) => r,
                        Err(msg) => {
                            self.error(pos(s), msg)
                                .hint("write a status or a range, e.g. `200` or `200-399`");
                            200..=399
                        }
                    },
                };
                HealthCheckKind::Http {
                    path,
                    host,
                    expect_status,
                }
            }
            other => {
                let at = raw.protocol.as_ref().map_or(pos(h), pos);
                let hint = match closest(other, ["TCP", "HTTP", "TLS", "UDP"]) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "use `TCP` (a connect), `TLS` (a handshake), `HTTP` (a GET expecting a status) or `UDP` (a datagram expecting a reply)".to_owned(),
                };
                self.error(at, format!("`{other}` is not a health check protocol"))
                    .hint(hint);
                return None;
            }
        };
        Some(HealthCheck {
            kind,
            port,
            interval,
            timeout,
            rise,
            fall,
        })
    }

    fn protocol(&mut self, p: &Option<S<String>>) -> Option<Protocol> {
        let Some(p) = p else {
            return Some(Protocol::Tcp);
        };
        match p.value.as_str() {
            "TCP" => Some(Protocol::Tcp),
            "TLS" => Some(Protocol::Tls),
            "HTTP" => Some(Protocol::Http),
            "HTTPS" => Some(Protocol::Https),
            "UDP" => Some(Protocol::Udp),
            other => {
                let hint = match closest(other, ["TCP", "UDP", "TLS", "HTTP", "HTTPS"]) {
                    Some(best) => format!("did you mean `{best}`? (protocols are upper case)"),
                    None => "use `TCP`, `UDP`, `TLS`, `HTTP` or `HTTPS`".to_owned(),
                };
                self.error(pos(p), format!("`{other}` is not a listener protocol"))
                    .hint(hint);
                None
            }
        }
    }

    pub(crate) fn port(&mut self, p: &S<i64>, allow_zero: bool) -> Option<u16> {
        let min = if allow_zero { 0 } else { 1 };
        match u16::try_from(p.value) {
            Ok(v) if i64::from(v) >= min => Some(v),
            _ => {
                self.error(pos(p), format!("`{}` is not a port", p.value))
                    .hint("a port is a number from 1 to 65535 (0 picks a free port, reported in the log)");
                None
            }
        }
    }

    fn max_connections(&mut self, m: &Option<S<i64>>) -> usize {
        m.as_ref()
            .and_then(|m| self.int_in(m, 1, 1_000_000, "maxConnections"))
            .map_or(DEFAULT_MAX_CONNECTIONS, |v| v as usize)
    }

    fn idle_timeout(&mut self, v: &Option<S<Scalar>>) -> Duration {
        self.duration(
            v,
            DEFAULT_IDLE_TIMEOUT,
            Duration::from_millis(1),
            "idleTimeout",
        )
    }

    pub(crate) fn int_in(&mut self, v: &S<i64>, min: u32, max: u32, what: &str) -> Option<u32> {
        match u32::try_from(v.value) {
            Ok(x) if (min..=max).contains(&x) => Some(x),
            _ => {
                self.error(
                    pos(v),
                    format!("`{what}` is {}, outside {min}..={max}", v.value),
                )
                .hint(format!(
                    "set `{what}` to a whole number from {min} to {max}"
                ));
                None
            }
        }
    }

    pub(crate) fn duration(
        &mut self,
        v: &Option<S<Scalar>>,
        default: Duration,
        min: Duration,
        what: &str,
    ) -> Duration {
        let Some(v) = v else { return default };
        match parse_duration(&v.value.0) {
            Ok(d) if d >= min => d,
            Ok(_) => {
                self.error(
                    pos(v),
                    format!("`{what}` must be at least {}", format_duration(min)),
                );
                default
            }
            Err(msg) => {
                self.error(pos(v), msg).hint(format!(
                    "write `{what}` as a number and a unit: `250ms`, `2s`, `5m`, `1h`"
                ));
                default
            }
        }
    }

    /// Two listeners on one socket cannot both be bound; nor can a wildcard and a specific
    /// address on the same port and family. Listeners that pick by host name share a socket
    /// when their hostnames differ: HTTP ones by the Host header, TLS and HTTPS ones (with
    /// each other) by the ClientHello's server name.
    fn check_binds(&mut self, listeners: &[Listener], origins: &[ListenerOrigin]) {
        let mut seen: Vec<(usize, &Listener)> = Vec::new();
        for (i, l) in listeners.iter().enumerate() {
            if l.bind.port() == 0 {
                continue;
            }
            for (j, other) in &seen {
                if other.protocol.transport() != l.protocol.transport()
                    || other.bind.port() != l.bind.port()
                {
                    continue;
                }
                let same = other.bind.ip() == l.bind.ip();
                let by_name = shares_by_hostname(l.protocol, other.protocol);
                let first = origins[*j].pos;
                if same && by_name && l.hostname != other.hostname {
                    // A request's head is read before its Host header picks a listener, so
                    // HTTP listeners on one socket must agree on how it is read.
                    if l.protocol == Protocol::Http && l.http != other.http {
                        self.error(
                            origins[i].pos,
                            format!(
                                "HTTP listeners `{}` and `{}` share {} but not their `http` settings",
                                origins[*j].name, origins[i].name, l.bind
                            ),
                        )
                        .hint("a request is read before its Host header picks a listener: give both the same `http` settings")
                        .note(first, format!("`{}` is defined", origins[*j].name));
                        break;
                    }
                    // The PROXY header comes before anything that could pick a listener.
                    if l.accept_proxy != other.accept_proxy {
                        self.error(
                            origins[i].pos,
                            format!(
                                "listeners `{}` and `{}` share {} but not their `proxyProtocol` settings",
                                origins[*j].name, origins[i].name, l.bind
                            ),
                        )
                        .hint("a PROXY header is read before the host name picks a listener: give both the same `proxyProtocol`")
                        .note(first, format!("`{}` is defined", origins[*j].name));
                        break;
                    }
                    continue;
                }
                let overlap = other.bind.is_ipv4() == l.bind.is_ipv4()
                    && (other.bind.ip().is_unspecified() || l.bind.ip().is_unspecified());
                if !(same || overlap) {
                    continue;
                }
                let msg = if same && by_name {
                    if l.protocol == other.protocol {
                        format!(
                            "{} listeners `{}` and `{}` both listen on {} with the same hostname",
                            l.protocol, origins[*j].name, origins[i].name, l.bind
                        )
                    } else {
                        format!(
                            "listeners `{}` ({}) and `{}` ({}) both listen on {} with the same hostname",
                            origins[*j].name, other.protocol, origins[i].name, l.protocol, l.bind
                        )
                    }
                } else if same && l.protocol != other.protocol {
                    format!(
                        "listeners `{}` ({}) and `{}` ({}) both listen on {}",
                        origins[*j].name, other.protocol, origins[i].name, l.protocol, l.bind
                    )
                } else if same {
                    format!(
                        "listeners `{}` and `{}` both listen on {} {}",
                        origins[*j].name, origins[i].name, l.protocol, l.bind
                    )
                } else {
                    format!(
                        "listener `{}` on {} overlaps listener `{}` on {} ({} port {})",
                        origins[i].name,
                        l.bind,
                        origins[*j].name,
                        other.bind,
                        l.protocol,
                        l.bind.port()
                    )
                };
                let cleartext_and_tls = matches!(
                    (l.protocol, other.protocol),
                    (Protocol::Http, Protocol::Tls | Protocol::Https)
                        | (Protocol::Tls | Protocol::Https, Protocol::Http)
                );
                let hint = if same && by_name {
                    "listeners can share a port when each has its own `hostname` (at most one without)"
                } else if same && cleartext_and_tls {
                    "cleartext HTTP and TLS cannot share a port: give each its own (say 80 and 443)"
                } else {
                    "use another port, or merge them into one listener"
                };
                self.error(origins[i].pos, msg)
                    .hint(hint)
                    .note(first, format!("`{}` is defined", origins[*j].name));
                break;
            }
            seen.push((i, l));
        }
    }

    /// Every listener's backend is defined; every defined backend is used. (Forwards carry
    /// their own backend and need no check.)
    fn check_references(
        &mut self,
        references: &[BackendRef],
        backends: &BTreeMap<String, Arc<Backend>>,
        defined: &HashMap<String, Pos>,
    ) {
        let mut reported = HashSet::new();
        for r in references {
            if backends.contains_key(r.backend) || defined.contains_key(r.backend) {
                continue;
            }
            if !reported.insert(r.pos) {
                continue;
            }
            let names: Vec<&str> = defined.keys().map(String::as_str).collect();
            let hint = match closest(r.backend, names.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if names.is_empty() => "define it under `backends:`".to_owned(),
                None => format!(
                    "define it under `backends:`; defined backends: {}",
                    sorted(&names)
                ),
            };
            self.error(
                r.pos,
                format!(
                    "{} refers to backend `{}`, which is not defined",
                    r.owner, r.backend
                ),
            )
            .hint(hint);
        }
        for (name, at) in defined {
            if !references.iter().any(|r| r.backend == name) {
                self.warn(
                    *at,
                    format!("backend `{name}` is not used by any listener, route or VRRP track"),
                );
            }
        }
    }
}

/// Whether two listeners of these protocols can share a socket, told apart by host name: HTTP
/// with HTTP (the Host header), TLS and HTTPS with each other (the server name).
fn shares_by_hostname(a: Protocol, b: Protocol) -> bool {
    use Protocol::*;
    matches!((a, b), (Http, Http) | (Tls | Https, Tls | Https))
}

fn sorted(names: &[&str]) -> String {
    let mut v = names.to_vec();
    v.sort_unstable();
    v.join(", ")
}
