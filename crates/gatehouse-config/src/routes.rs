//! Compiling TLS and routes: listener `tls` and `hostname`, how routes (of every kind) attach
//! to listeners, the TLSRoute itself, each listener's route table, and backend `tls`.
//! Certificate and CA files are read and parsed here, so that `gatehouse check` finds a
//! missing file, a key that does not match its certificate or a bad PEM block, and so that a
//! renewed certificate makes the compiled config differ (which is how a reload sees it).
//! HTTPRoute rules are compiled in [`crate::http_routes`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_tls::certs::{Certificate, load_roots};

use crate::compile::{BackendRef, Compiler, Draft, InFile, ListenerOrigin, pos, pos_or};
use crate::diag::Pos;
use crate::http_routes::forward_all;
use crate::model::{RawBackendTls, RawCertificate, RawListener, RawRoute, S};
use crate::parse::{closest, parse_host_pattern};
use crate::types::*;

/// Default for a TLS listener's `handshakeTimeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Debian, Ubuntu, Alpine and Arch keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Route kinds: those this version serves, and those it knows but refuses.
const ROUTE_KINDS: [&str; 5] = ["TLSRoute", "HTTPRoute", "TCPRoute", "UDPRoute", "GRPCRoute"];

/// ALPN protocols an HTTPS listener offers unless `alpn` says otherwise.
const HTTPS_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// The route kinds this version serves, and which listeners each attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteKind {
    Tls,
    Http,
}

impl RouteKind {
    fn attaches_to(self, p: Protocol) -> bool {
        match self {
            RouteKind::Tls => p == Protocol::Tls,
            RouteKind::Http => matches!(p, Protocol::Http | Protocol::Https),
        }
    }

    fn name(self) -> &'static str {
        match self {
            RouteKind::Tls => "TLSRoute",
            RouteKind::Http => "HTTPRoute",
        }
    }

    /// The listeners it attaches to, as messages name them.
    fn listeners(self) -> &'static str {
        match self {
            RouteKind::Tls => "TLS",
            RouteKind::Http => "HTTP or HTTPS",
        }
    }

    /// The `protocol` values of those listeners.
    fn protocols(self) -> &'static str {
        match self {
            RouteKind::Tls => "`protocol: TLS`",
            RouteKind::Http => "`protocol: HTTP` or `HTTPS`",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            RouteKind::Tls => {
                "a TLSRoute attaches to `protocol: TLS` listeners (an HTTPRoute to HTTP and HTTPS ones); a TCP listener sends everything to its `backend`"
            }
            RouteKind::Http => {
                "an HTTPRoute attaches to `protocol: HTTP` and `HTTPS` listeners (a TLSRoute to TLS ones); a TCP listener sends everything to its `backend`"
            }
        }
    }
}

/// What a route sends to, compiled once for every listener it attaches to.
enum RouteAction {
    /// A TLSRoute's backend.
    Tls(String),
    /// An HTTPRoute's rules.
    Http(Arc<Vec<HttpRule>>),
}

impl Compiler {
    /// A listener's `hostname` and `tls`. Returns `(hostname, Some(tls))` when they are
    /// consistent with its protocol (`Some(None)` for a TCP or HTTP listener), `None` for `tls`
    /// on error.
    pub(crate) fn listener_tls(
        &mut self,
        raw: &RawListener,
        protocol: Option<Protocol>,
        name: &str,
    ) -> (Option<HostPattern>, Option<Option<ListenerTls>>) {
        let hostname = raw
            .hostname
            .as_ref()
            .and_then(|h| match parse_host_pattern(&h.value) {
                Ok(p) => Some(p),
                Err(msg) => {
                    self.error(pos(h), msg)
                        .hint("write a host name such as `app.example.com` or `*.example.com`");
                    None
                }
            });
        match protocol {
            None => (hostname, None),
            // Refused keys of a UDP listener are reported by `listener_udp`.
            Some(Protocol::Udp) => (None, Some(None)),
            Some(Protocol::Tcp) => {
                if let Some(h) = &raw.hostname {
                    self.error(pos(h), "`hostname` only applies to TLS, HTTP and HTTPS listeners")
                        .hint("a TCP listener cannot tell names apart: add `protocol: TLS` (or `HTTP`, `HTTPS`) to the listener, or remove this key");
                }
                if let Some(t) = &raw.tls {
                    self.error(pos(t), "`tls` only applies to TLS and HTTPS listeners")
                        .hint(
                            "add `protocol: TLS` (or `HTTPS`) to the listener, or remove this key",
                        );
                }
                (None, Some(None))
            }
            Some(Protocol::Http) => {
                if let Some(t) = &raw.tls {
                    self.error(pos(t), "`tls` does not apply to HTTP listeners")
                        .hint("HTTP is cleartext: use `protocol: HTTPS` to terminate TLS and serve HTTP inside it, or remove this key");
                }
                (hostname, Some(None))
            }
            Some(p @ (Protocol::Tls | Protocol::Https)) => {
                let tls = self.tls_settings(raw, name, p);
                (hostname, tls.map(Some))
            }
        }
    }

    /// A TLS or HTTPS listener's `tls`. HTTPS always terminates, and offers `h2` and
    /// `http/1.1` by ALPN unless `alpn` is given.
    fn tls_settings(
        &mut self,
        raw: &RawListener,
        name: &str,
        protocol: Protocol,
    ) -> Option<ListenerTls> {
        let at = pos(&raw.name);
        let https = protocol == Protocol::Https;
        let Some(t) = &raw.tls else {
            self.error(
                at,
                format!("{protocol} listener `{name}` has no `tls` settings"),
            )
            .hint(if https {
                "an HTTPS listener terminates TLS: add `tls:` with `certificates`"
            } else {
                "add `tls: {mode: Passthrough}` to route by server name without terminating, or `tls:` with `certificates` to terminate"
            });
            return None;
        };
        let t = &t.value;
        let handshake_timeout = self.duration(
            &t.handshake_timeout,
            DEFAULT_HANDSHAKE_TIMEOUT,
            Duration::from_millis(1),
            "handshakeTimeout",
        );
        let passthrough = match t.mode.as_ref().map(|m| m.value.as_str()) {
            None | Some("Terminate") => false,
            Some("Passthrough") => true,
            Some(other) => {
                let hint = match closest(other, ["Terminate", "Passthrough"]) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "use `Terminate` or `Passthrough`".to_owned(),
                };
                let at = t.mode.as_ref().map_or(at, pos);
                self.error(at, format!("`{other}` is not a TLS mode"))
                    .hint(hint);
                return None;
            }
        };
        if passthrough && https {
            let at = t.mode.as_ref().map_or(at, pos);
            self.error(at, format!("HTTPS listener `{name}` cannot pass TLS through"))
                .hint("an HTTPS listener terminates TLS to read the requests; to route by server name without terminating, use `protocol: TLS` with `mode: Passthrough`");
            return None;
        }
        if passthrough {
            let mut ok = true;
            for (key, at) in [
                ("certificates", t.certificates.first().map(pos)),
                ("alpn", t.alpn.iter().flatten().next().map(pos)),
                ("minVersion", t.min_version.as_ref().map(pos)),
            ] {
                if let Some(at) = at {
                    self.error(at, format!("`{key}` does not apply in Passthrough mode"))
                        .hint("the backend terminates TLS in Passthrough mode; remove this key, or use `mode: Terminate`");
                    ok = false;
                }
            }
            return ok.then_some(ListenerTls {
                mode: TlsMode::Passthrough,
                handshake_timeout,
            });
        }
        if t.certificates.is_empty() {
            self.error(
                at,
                format!("{protocol} listener `{name}` terminates TLS but has no `certificates`"),
            )
            .hint(if https {
                "list certificate and key files under `tls.certificates`"
            } else {
                "list certificate and key files under `tls.certificates`, or set `tls.mode: Passthrough`"
            });
            return None;
        }
        let certificates: Vec<CertificateFiles> = t
            .certificates
            .iter()
            .filter_map(|c| self.certificate(c))
            .collect();
        let mut alpn = match (&t.alpn, https) {
            (None, true) => HTTPS_ALPN.map(str::to_owned).to_vec(),
            _ => Vec::new(),
        };
        for a in t.alpn.iter().flatten() {
            if https && !HTTPS_ALPN.contains(&a.value.as_str()) {
                self.error(
                    pos(a),
                    format!("an HTTPS listener speaks `h2` and `http/1.1`, not `{}`", a.value),
                )
                .hint("offer `h2` and/or `http/1.1` (the default is both; `alpn: []` offers none, so clients use HTTP/1.1)");
            } else if a.value.is_empty() || a.value.len() > 255 || !a.value.is_ascii() {
                self.error(
                    pos(a),
                    format!("`{}` is not an ALPN protocol name", a.value),
                )
                .hint("use `h2` or `http/1.1`");
            } else if alpn.contains(&a.value) {
                self.error(
                    pos(a),
                    format!("ALPN protocol `{}` is listed twice", a.value),
                );
            } else {
                alpn.push(a.value.clone());
            }
        }
        let tls13_only = match t.min_version.as_ref().map(|v| v.value.0.as_str()) {
            None | Some("1.2") => false,
            Some("1.3") => true,
            Some(other) => {
                let at = t.min_version.as_ref().map_or(at, pos);
                self.error(
                    at,
                    format!("`{other}` is not a TLS version this listener can require"),
                )
                .hint("use `\"1.2\"` (the default: TLS 1.2 and 1.3) or `\"1.3\"`");
                return None;
            }
        };
        (certificates.len() == t.certificates.len()).then_some(ListenerTls {
            mode: TlsMode::Terminate(Terminate {
                certificates,
                alpn,
                tls13_only,
            }),
            handshake_timeout,
        })
    }

    /// Resolves a file name from the config against the config's directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        let p = PathBuf::from(name);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// Reads a file the config names; an error at `at` if it cannot.
    pub(crate) fn read(&mut self, at: Pos, name: &str, what: &str) -> Option<(PathBuf, Vec<u8>)> {
        if name.starts_with(crate::overlay::MEMORY_PREFIX) {
            return match self.memory.get(name) {
                Some(bytes) => Some((PathBuf::from(name), bytes.clone())),
                None => {
                    self.error(
                        at,
                        format!("{what} `{name}` is not in the cluster's Secrets"),
                    );
                    None
                }
            };
        }
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Some((path, bytes)),
            Err(e) => {
                self.error(at, format!("cannot read {what} `{}`: {e}", path.display()))
                    .hint("relative paths are relative to the config file's directory");
                None
            }
        }
    }

    fn certificate(&mut self, c: &S<RawCertificate>) -> Option<CertificateFiles> {
        let c = &c.value;
        let cert = self.read(pos(&c.cert_file), &c.cert_file.value, "certificate file");
        let key = self.read(pos(&c.key_file), &c.key_file.value, "key file");
        let ((cert_path, cert_pem), (key_path, key_pem)) = (cert?, key?);
        match Certificate::from_pem(&cert_pem, &key_pem) {
            Ok(loaded) => Some(CertificateFiles {
                cert_path,
                key_path,
                loaded: Arc::new(loaded),
            }),
            Err(e) => {
                self.error(
                    pos(&c.cert_file),
                    format!(
                        "certificate `{}` with key `{}`: {e}",
                        cert_path.display(),
                        key_path.display()
                    ),
                )
                .hint("both files are PEM: the chain leaf first, and its private key (PKCS#8, PKCS#1 or SEC1)");
                None
            }
        }
    }

    pub(crate) fn backend_tls(&mut self, t: &S<RawBackendTls>) -> Option<BackendTls> {
        let raw = &t.value;
        let insecure = raw.insecure_skip_verify.as_ref().is_some_and(|v| v.value);
        let server_name = match &raw.server_name {
            None => None,
            Some(n) => match parse_host_pattern(&n.value) {
                Ok(HostPattern::Exact(name)) => Some(name),
                _ if n.value.parse::<std::net::IpAddr>().is_ok() => Some(n.value.clone()),
                _ => {
                    self.error(pos(n), format!("`{}` is not a server name", n.value))
                        .hint("write the name the backend's certificate is issued for, e.g. `app.home.arpa`");
                    return None;
                }
            },
        };
        let verify = match (&raw.ca_file, insecure) {
            (Some(ca), true) => {
                self.error(
                    pos(ca),
                    "`caFile` and `insecureSkipVerify: true` contradict each other",
                )
                .hint("remove one: verify against the CA, or do not verify at all");
                return None;
            }
            (None, true) => BackendVerify::Insecure,
            (Some(ca), false) => {
                let (path, pem) = self.read(pos(ca), &ca.value, "CA file")?;
                if let Err(e) = load_roots(&pem) {
                    self.error(pos(ca), format!("CA file `{}`: {e}", path.display()))
                        .hint("a CA file holds one or more PEM certificates");
                    return None;
                }
                BackendVerify::Ca {
                    path,
                    pem: Arc::new(pem),
                }
            }
            (None, false) => {
                let found = SYSTEM_CA_BUNDLES
                    .iter()
                    .find_map(|p| std::fs::read(p).ok().map(|pem| (PathBuf::from(p), pem)));
                let Some((path, pem)) = found else {
                    self.error(pos(t), "backend TLS without `caFile`, and no system CA bundle was found")
                        .hint(format!("set `caFile`, install the system CA certificates (looked in {}), or set `insecureSkipVerify: true`", SYSTEM_CA_BUNDLES.join(", ")));
                    return None;
                };
                BackendVerify::Ca {
                    path,
                    pem: Arc::new(pem),
                }
            }
        };
        if insecure && let Some(v) = &raw.insecure_skip_verify {
            self.warn(pos(v), "backend certificates will not be verified")
                .hint("traffic is encrypted, but anyone on the path can pose as the backend; prefer `caFile`");
        }
        Some(BackendTls {
            verify,
            server_name,
        })
    }

    /// Compiles every route and attaches it to the listeners its `parentRefs` name.
    pub(crate) fn routes<'a>(
        &mut self,
        routes: &[(u32, &'a S<RawRoute>)],
        gateways: &HashMap<&str, Pos>,
        drafts: &mut [Draft],
        references: &mut Vec<BackendRef<'a>>,
    ) {
        let mut names: HashMap<&str, Pos> = HashMap::new();
        for &(file, r) in routes {
            // Positions taken while compiling it are in the file it came from.
            let _file = InFile::new(file);
            let raw = &r.value;
            let name = raw.name.value.as_str();
            if self.name_ok(&raw.name, "route") {
                if let Some(&first) = names.get(name) {
                    self.error(pos(&raw.name), format!("route `{name}` is defined twice"))
                        .hint("give each route a unique name")
                        .note(first, "first defined");
                } else {
                    names.insert(name, pos(&raw.name));
                }
            }
            // Recorded even for a route refused below, so that its backend is not also
            // reported as unused.
            if let Some(b) = &raw.backend {
                references.push(BackendRef {
                    owner: format!("route `{name}`"),
                    backend: b.value.as_str(),
                    pos: pos(b),
                });
            }
            let kind = match raw.kind.value.as_str() {
                "TLSRoute" => RouteKind::Tls,
                "HTTPRoute" => RouteKind::Http,
                kind @ ("TCPRoute" | "UDPRoute" | "GRPCRoute") => {
                    self.error(
                        pos(&raw.kind),
                        format!("route kind `{kind}` is not supported by this version yet"),
                    )
                    .hint("this version routes TLS by server name (`TLSRoute`) and HTTP requests (`HTTPRoute`); a TCP or UDP listener's `backend` does what a TCPRoute or UDPRoute would (Gateway API manifests may use them)");
                    continue;
                }
                other => {
                    let hint = match closest(other, ROUTE_KINDS) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => "use `TLSRoute` or `HTTPRoute`".to_owned(),
                    };
                    self.error(pos(&raw.kind), format!("`{other}` is not a route kind"))
                        .hint(hint);
                    continue;
                }
            };
            let action = match kind {
                RouteKind::Tls => self.tls_route(r),
                RouteKind::Http => self.http_route(r, references).map(RouteAction::Http),
            };
            let mut hostnames = Vec::new();
            for h in &raw.hostnames {
                match parse_host_pattern(&h.value) {
                    Ok(p) => hostnames.push(p),
                    Err(msg) => {
                        self.error(pos_or(h, r), msg)
                            .hint("write a host name such as `app.example.com` or `*.example.com`");
                    }
                }
            }
            let access = self.access(&raw.allow, &raw.deny);
            if raw.parent_refs.is_empty() {
                self.error(
                    pos(&raw.name),
                    format!("route `{name}` has no `parentRefs`"),
                )
                .hint("name the listeners it attaches to, e.g. `parentRefs: [edge/web]`");
                continue;
            }
            for parent in &raw.parent_refs {
                // Resolved even when the route itself did not compile: every error, once.
                let targets = self.parent_targets(name, kind, parent, gateways, drafts);
                let Some(action) = &action else { continue };
                for index in targets {
                    let draft = &mut drafts[index];
                    let hosts = effective_hosts(draft.hostname.as_ref(), &hostnames);
                    if hosts.is_empty() {
                        let listener_host = draft
                            .hostname
                            .as_ref()
                            .map(|h| h.to_string())
                            .unwrap_or_default();
                        self.warn(
                            pos_or(&parent.value.gateway, parent),
                            format!(
                                "route `{name}` serves no name on `{}/{}`: none of its hostnames is within the listener's hostname `{listener_host}`",
                                draft.gateway, draft.name
                            ),
                        );
                        continue;
                    }
                    match action {
                        RouteAction::Tls(backend) => draft.attached.push((
                            RouteEntry {
                                route: name.to_owned(),
                                hosts,
                                backend: backend.clone(),
                                access: access.clone(),
                            },
                            pos(&raw.name),
                        )),
                        RouteAction::Http(rules) => draft.http_attached.push(HttpRouteEntry {
                            route: name.to_owned(),
                            hosts,
                            rules: Arc::clone(rules),
                            access: access.clone(),
                        }),
                    }
                }
            }
        }
    }

    /// A TLSRoute: one `backend` for every server name it lists.
    fn tls_route(&mut self, r: &S<RawRoute>) -> Option<RouteAction> {
        let raw = &r.value;
        let name = raw.name.value.as_str();
        if let Some(rules) = &raw.rules {
            self.error(pos(rules), "`rules` only applies to HTTPRoutes")
                .hint("a TLSRoute sends every connection for its hostnames to its `backend`; for rules, attach an `HTTPRoute` to an HTTP or HTTPS listener");
            return None;
        }
        let Some(backend) = &raw.backend else {
            self.error(pos(&raw.name), format!("route `{name}` has no `backend`"))
                .hint("name the backend pool that receives the connections: `backend: NAME`");
            return None;
        };
        Some(RouteAction::Tls(backend.value.clone()))
    }

    /// The drafts (indices) a parent reference selects; errors for names that do not exist or
    /// for listeners a route of this kind cannot attach to.
    fn parent_targets(
        &mut self,
        route: &str,
        kind: RouteKind,
        parent: &S<crate::model::RawParentRef>,
        gateways: &HashMap<&str, Pos>,
        drafts: &[Draft],
    ) -> Vec<usize> {
        let p = &parent.value;
        let gateway = p.gateway.value.as_str();
        let at = pos_or(&p.gateway, parent);
        if !gateways.contains_key(gateway) {
            let names: Vec<&str> = gateways.keys().copied().collect();
            let hint = match closest(gateway, names.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "define it under `gateways:`".to_owned(),
            };
            self.error(
                at,
                format!("route `{route}` attaches to gateway `{gateway}`, which is not defined"),
            )
            .hint(hint);
            return Vec::new();
        }
        let port = p.port.as_ref().and_then(|port| self.port(port, false));
        if p.port.is_some() && port.is_none() {
            return Vec::new();
        }
        let in_gateway = || {
            drafts
                .iter()
                .enumerate()
                .filter(|(_, d)| d.gateway == gateway)
        };
        let selected: Vec<usize> = match &p.listener {
            Some(l) => {
                let found: Vec<usize> = in_gateway()
                    .filter(|(_, d)| d.name == l.value)
                    .map(|(i, _)| i)
                    .collect();
                if found.is_empty() {
                    let names: Vec<&str> = in_gateway().map(|(_, d)| d.name.as_str()).collect();
                    let hint = match closest(&l.value, names.iter().copied()) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => format!("listeners of `{gateway}`: {}", names.join(", ")),
                    };
                    self.error(
                        pos_or(l, parent),
                        format!(
                            "route `{route}` attaches to listener `{gateway}/{}`, which is not defined",
                            l.value
                        ),
                    )
                    .hint(hint);
                    return Vec::new();
                }
                for &i in &found {
                    if !kind.attaches_to(drafts[i].protocol) {
                        self.error(
                            pos_or(l, parent),
                            format!(
                                "{} `{route}` attaches to `{gateway}/{}`, which is not {} listener",
                                kind.name(),
                                l.value,
                                match kind {
                                    RouteKind::Tls => "a TLS",
                                    RouteKind::Http => "an HTTP or HTTPS",
                                },
                            ),
                        )
                        .hint(kind.hint());
                        return Vec::new();
                    }
                }
                found
            }
            // The whole gateway: every listener of it that this kind attaches to.
            None => in_gateway()
                .filter(|(_, d)| kind.attaches_to(d.protocol))
                .map(|(i, _)| i)
                .collect(),
        };
        let selected: Vec<usize> = selected
            .into_iter()
            .filter(|&i| {
                port.is_none_or(|port| {
                    drafts[i].sockets.first().map(|s| s.bind.port()) == Some(port)
                })
            })
            .collect();
        if selected.is_empty() {
            self.error(
                at,
                format!(
                    "route `{route}` attaches to no {} listener of gateway `{gateway}`",
                    kind.listeners()
                ),
            )
            .hint(format!(
                "check `parentRefs`: the gateway needs a {} listener (on that port, if `port` is set)",
                kind.protocols()
            ));
        }
        selected
    }

    /// Completes each gateway listener's route table (attached routes in config order, then
    /// its own default backend), warns about what can never be served, and flattens drafts
    /// into one listener per socket.
    pub(crate) fn finish_listeners(
        &mut self,
        drafts: Vec<Draft>,
        backends: &BTreeMap<String, Arc<Backend>>,
    ) -> (Vec<Listener>, Vec<ListenerOrigin>) {
        let mut listeners = Vec::new();
        let mut origins = Vec::new();
        for draft in drafts {
            let full = format!("{}/{}", draft.gateway, draft.name);
            // The listener's own `backend` serves whatever its hostname covers.
            let default_host = match &draft.hostname {
                Some(h) => HostMatch::Pattern(h.clone()),
                None => HostMatch::Any,
            };
            let (routes, http_routes) = match draft.protocol {
                Protocol::Tcp | Protocol::Tls | Protocol::Udp => (
                    self.tls_table(&draft, &full, default_host, backends),
                    Vec::new(),
                ),
                Protocol::Http | Protocol::Https => {
                    (Vec::new(), self.http_table(&draft, &full, default_host))
                }
            };
            for mut socket in draft.sockets {
                socket.routes = routes.clone();
                socket.http_routes = http_routes.clone();
                origins.push(ListenerOrigin {
                    name: full.clone(),
                    pos: draft.origin_pos,
                });
                listeners.push(socket);
            }
        }
        (listeners, origins)
    }

    /// The route table of a TCP or TLS listener.
    fn tls_table(
        &mut self,
        draft: &Draft,
        full: &str,
        default_host: HostMatch,
        backends: &BTreeMap<String, Arc<Backend>>,
    ) -> Vec<RouteEntry> {
        let mut claimed: HashMap<&HostMatch, &str> = HashMap::new();
        for (entry, at) in &draft.attached {
            for host in &entry.hosts {
                if let Some(first) = claimed.get(host) {
                    self.warn(
                        *at,
                        format!(
                            "routes `{first}` and `{}` both serve `{host}` on `{full}`; `{first}`, listed first, wins",
                            entry.route
                        ),
                    );
                } else {
                    claimed.insert(host, &entry.route);
                }
            }
        }
        let mut routes: Vec<RouteEntry> = draft.attached.iter().map(|(e, _)| e.clone()).collect();
        if let Some(backend) = &draft.default_backend {
            routes.push(RouteEntry {
                route: "default".to_owned(),
                hosts: vec![default_host],
                backend: backend.clone(),
                access: Access::default(),
            });
        }
        if routes.is_empty() {
            self.warn(
                draft.origin_pos,
                format!("TLS listener `{full}` has no routes and no `backend`: it closes every connection"),
            )
            .hint("attach a TLSRoute to it, or give it a `backend` for every server name");
        }
        let passthrough = draft
            .sockets
            .first()
            .is_some_and(|l| matches!(l.tls.as_ref().map(|t| &t.mode), Some(TlsMode::Passthrough)));
        if passthrough {
            for r in &routes {
                if backends.get(&r.backend).is_some_and(|b| b.tls.is_some()) {
                    self.error(
                        draft.origin_pos,
                        format!(
                            "Passthrough listener `{full}` sends connections to backend `{}`, which has `tls`",
                            r.backend
                        ),
                    )
                    .hint("in Passthrough mode the client's own TLS goes to the backend untouched: remove the backend's `tls`, or terminate here");
                }
            }
        }
        if draft.protocol == Protocol::Udp {
            for r in &routes {
                let Some(b) = backends.get(&r.backend) else {
                    continue;
                };
                for (key, present) in [
                    ("proxyProtocol", b.proxy_protocol.is_some()),
                    ("tls", b.tls.is_some()),
                ] {
                    if present {
                        self.error(
                            draft.origin_pos,
                            format!(
                                "UDP listener `{full}` sends datagrams to backend `{}`, which has `{key}`",
                                r.backend
                            ),
                        )
                        .hint(format!("`{key}` applies to TCP connections only: give the UDP service a backend of its own without it"));
                    }
                }
            }
        }
        routes
    }

    /// The HTTP route table of an HTTP or HTTPS listener: attached HTTPRoutes in config order
    /// (two routes serving the same host is normal here: their rules are merged by
    /// precedence), then the listener's own `backend` as a route named `default`.
    fn http_table(
        &mut self,
        draft: &Draft,
        full: &str,
        default_host: HostMatch,
    ) -> Vec<HttpRouteEntry> {
        let mut routes = draft.http_attached.clone();
        if let Some(backend) = &draft.default_backend {
            routes.push(HttpRouteEntry {
                route: "default".to_owned(),
                hosts: vec![default_host],
                rules: Arc::new(vec![forward_all(backend)]),
                access: Access::default(),
            });
        }
        if routes.is_empty() {
            self.warn(
                draft.origin_pos,
                format!("{} listener `{full}` has no routes and no `backend`: it answers every request with 404", draft.protocol),
            )
            .hint("attach an HTTPRoute to it, or give it a `backend` for every request");
        }
        routes
    }
}

/// The names a route serves on a listener: each route hostname intersected with the
/// listener's (Gateway API); with no route hostnames, whatever the listener serves.
fn effective_hosts(listener: Option<&HostPattern>, route: &[HostPattern]) -> Vec<HostMatch> {
    match (listener, route.is_empty()) {
        (None, true) => vec![HostMatch::Any],
        (Some(l), true) => vec![HostMatch::Pattern(l.clone())],
        (None, false) => route.iter().cloned().map(HostMatch::Pattern).collect(),
        (Some(l), false) => {
            let mut out: Vec<HostMatch> = Vec::new();
            for r in route {
                if let Some(p) = l.intersect(r).map(HostMatch::Pattern)
                    && !out.contains(&p)
                {
                    out.push(p);
                }
            }
            out
        }
    }
}
