//! Kubernetes Gateway API manifests (`gatewayApi.manifests`): Gateway, HTTPRoute, TLSRoute and
//! TCPRoute objects read from multi-document YAML files and turned into the raw model
//! ([`RawGateway`], [`RawRoute`]), so that the compiler validates them exactly as it validates
//! the config's own `gateways` and `routes`.
//!
//! Each document is read twice: a permissive head (`apiVersion`, `kind`, `metadata`) picks the
//! kind, then a strict parse of that kind refuses every field this version does not implement,
//! naming it. References to Kubernetes objects go through the config's mappings: a Service
//! port to a Gatehouse backend (`services`), a Secret to certificate files (`secrets`), a
//! Gateway without `spec.addresses` to listen addresses (`addresses`). Positions of manifest
//! values carry the manifest's file number ([`Pos::file`]).
//!
//! With the Kubernetes provider, an [`Overlay`] adds documents from memory (each object its own
//! "file", named after it) and the cluster's own mappings: Services to generated backends,
//! Secrets to certificates held in memory, Gateways to pool addresses. The config's mappings
//! come first.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::compile::yaml_error;
use crate::diag::{Diagnostic, Pos, Source};
use crate::model::{
    KeyedList, RawBackend, RawBackendRef, RawCertificate, RawGateway, RawGatewayApi, RawHttpFilter,
    RawHttpMatch, RawHttpRule, RawHttpTimeouts, RawListener, RawListenerTls, RawParentRef,
    RawRoute, S, Scalar,
};
use crate::overlay::{DocumentKind, Overlay};
use crate::parse::{closest, parse_listen_address};

const API_GROUP: &str = "gateway.networking.k8s.io";

/// What the manifests hold, in the raw model, with the files they came from.
#[derive(Default)]
pub(crate) struct Manifests {
    /// The files read; file `n` of [`Pos::file`] is `sources[n - 1]`.
    pub(crate) sources: Vec<Source>,
    /// Gateways, each with its file number.
    pub(crate) gateways: Vec<(u32, S<RawGateway>)>,
    /// Routes, each with its file number.
    pub(crate) routes: Vec<(u32, S<RawRoute>)>,
    /// Backends from overlay fragments, each with its file number.
    pub(crate) backends: Vec<(u32, S<RawBackend>)>,
    /// How many of `sources` are files on disk; the rest are overlay documents.
    pub(crate) disk_files: usize,
    pub(crate) diags: Vec<Diagnostic>,
}

/// An overlay fragment: the Gatehouse objects the provider generates for a Service.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    #[serde(default)]
    backends: Vec<S<RawBackend>>,
    #[serde(default)]
    gateways: Vec<S<RawGateway>>,
}

// ---- The manifest model: what Gatehouse reads of each kind. -----------------------------

/// The permissive first pass: enough to pick the kind and name the object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    api_version: Option<S<String>>,
    #[serde(default)]
    kind: Option<S<String>>,
    #[serde(default)]
    metadata: Option<S<Metadata>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    name: Option<S<String>>,
    #[serde(default)]
    namespace: Option<S<String>>,
}

/// The strict second pass: `spec` of the kind; `metadata` and `status` are not Gatehouse's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Doc<Spec> {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "metadata")]
    _metadata: IgnoredAny,
    spec: S<Spec>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GatewaySpec {
    #[serde(rename = "gatewayClassName")]
    _gateway_class_name: S<String>,
    #[serde(default)]
    listeners: Vec<S<K8sListener>>,
    #[serde(default)]
    addresses: Vec<S<K8sAddress>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sListener {
    name: S<String>,
    #[serde(default)]
    hostname: Option<S<String>>,
    port: S<i64>,
    protocol: S<String>,
    #[serde(default)]
    tls: Option<S<K8sListenerTls>>,
    #[serde(default)]
    allowed_routes: Option<S<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sListenerTls {
    #[serde(default)]
    mode: Option<S<String>>,
    #[serde(default)]
    certificate_refs: Vec<S<ObjectRef>>,
}

/// Gateway API `SecretObjectReference` (and the shape of other object references).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    group: Option<S<String>>,
    #[serde(default)]
    kind: Option<S<String>>,
    name: S<String>,
    #[serde(default)]
    namespace: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sAddress {
    #[serde(default, rename = "type")]
    kind: Option<S<String>>,
    value: S<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sParentRef {
    #[serde(default)]
    group: Option<S<String>>,
    #[serde(default)]
    kind: Option<S<String>>,
    #[serde(default)]
    namespace: Option<S<String>>,
    name: S<String>,
    #[serde(default)]
    section_name: Option<S<String>>,
    #[serde(default)]
    port: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sBackendRef {
    #[serde(default)]
    group: Option<S<String>>,
    #[serde(default)]
    kind: Option<S<String>>,
    name: S<String>,
    #[serde(default)]
    namespace: Option<S<String>>,
    #[serde(default)]
    port: Option<S<i64>>,
    #[serde(default)]
    weight: Option<S<i64>>,
    #[serde(default)]
    filters: Option<S<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpRouteSpec {
    #[serde(default)]
    parent_refs: Vec<S<K8sParentRef>>,
    #[serde(default)]
    hostnames: Vec<S<String>>,
    #[serde(default)]
    rules: Option<S<Vec<S<K8sHttpRule>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sHttpRule {
    #[serde(default)]
    matches: Vec<S<RawHttpMatch>>,
    #[serde(default)]
    filters: Vec<S<RawHttpFilter>>,
    #[serde(default)]
    backend_refs: Vec<S<K8sBackendRef>>,
    #[serde(default)]
    timeouts: Option<S<RawHttpTimeouts>>,
}

/// TLSRoute and TCPRoute: parents, (TLS only) host names, and rules of backendRefs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StreamRouteSpec {
    #[serde(default)]
    parent_refs: Vec<S<K8sParentRef>>,
    #[serde(default)]
    hostnames: Option<Vec<S<String>>>,
    #[serde(default)]
    rules: Vec<S<StreamRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StreamRule {
    #[serde(default)]
    backend_refs: Vec<S<K8sBackendRef>>,
}

/// A document read in full, waiting for every Gateway to be known.
enum Object {
    Gateway(Meta, S<GatewaySpec>),
    Http(Meta, S<HttpRouteSpec>),
    Tls(Meta, S<StreamRouteSpec>),
    Tcp(Meta, S<StreamRouteSpec>),
    Udp(Meta, S<StreamRouteSpec>),
}

/// Who an object is: kind (as written, with its place), name and namespace.
struct Meta {
    file: u32,
    kind: S<String>,
    name: S<String>,
    namespace: String,
}

impl Meta {
    fn full(&self) -> String {
        format!("{}/{}", self.namespace, self.name.value)
    }
}

/// Copies `like`'s place onto a new value.
fn sp<T, U>(value: T, like: &S<U>) -> S<T> {
    Spanned::new(value, like.referenced, like.defined)
}

fn at<T>(file: u32, s: &S<T>) -> Pos {
    Pos {
        file,
        ..Pos::from(s.referenced)
    }
}

/// The config's mappings, with which entries were used, and the cluster's.
struct Maps<'a> {
    api: &'a RawGatewayApi,
    cluster: Option<&'a Overlay>,
    used: HashSet<(u8, usize)>,
}

impl Maps<'_> {
    fn find<'v, V>(
        used: &mut HashSet<(u8, usize)>,
        table: u8,
        list: &'v KeyedList<V>,
        key: &str,
    ) -> Option<&'v V> {
        let i = list.0.iter().position(|(k, _)| k.value == key)?;
        used.insert((table, i));
        Some(&list.0[i].1)
    }
}

/// Reads the manifests `gatewayApi` names (relative to `base`, the config's directory), then
/// the overlay's documents.
pub(crate) fn read(
    api: Option<&S<RawGatewayApi>>,
    base: &Path,
    overlay: Option<&Overlay>,
) -> Manifests {
    let mut out = Manifests::default();
    let empty = RawGatewayApi::default();
    let mut r = Reader {
        out: &mut out,
        maps: Maps {
            api: api.map_or(&empty, |a| &a.value),
            cluster: overlay,
            used: HashSet::new(),
        },
        gateways: HashMap::new(),
    };
    r.check_keys();
    let files = match api {
        Some(api) => r.files(api, base, overlay.is_some()),
        None => Vec::new(),
    };
    let mut objects = Vec::new();
    for path in files {
        r.file(&path, &mut objects);
    }
    r.out.disk_files = r.out.sources.len();
    for d in overlay.map_or(&[][..], |o| &o.documents) {
        r.out
            .sources
            .push(Source::new(d.name.clone(), d.text.clone()));
        let file = u32::try_from(r.out.sources.len()).unwrap_or(u32::MAX);
        match d.kind {
            DocumentKind::Manifest => r.document(file, &d.text, &mut objects),
            DocumentKind::Fragment => r.fragment(file, &d.text),
        }
    }
    if r.out
        .diags
        .iter()
        .any(|d| d.severity == crate::Severity::Error)
    {
        // A manifest that could not be read would make every reference to it an error too.
        return out;
    }
    for o in &objects {
        if let Object::Gateway(meta, _) = o {
            r.gateways
                .entry(meta.name.value.clone())
                .or_insert_with(|| meta.namespace.clone());
        }
    }
    let mut gateway_index: HashMap<String, usize> = HashMap::new();
    for o in &objects {
        if let Object::Gateway(meta, spec) = o {
            let g = r.gateway(meta, spec);
            gateway_index
                .entry(meta.name.value.clone())
                .or_insert(r.out.gateways.len());
            r.out.gateways.push((meta.file, g));
        }
    }
    for o in objects {
        match o {
            Object::Gateway(..) => {}
            Object::Http(meta, spec) => {
                if let Some(route) = r.http_route(&meta, spec) {
                    r.out.routes.push((meta.file, route));
                }
            }
            Object::Tls(meta, spec) => {
                if let Some(route) = r.tls_route(&meta, &spec) {
                    r.out.routes.push((meta.file, route));
                }
            }
            Object::Tcp(meta, spec) => r.stream_route(&meta, &spec, &gateway_index, "TCP"),
            Object::Udp(meta, spec) => r.stream_route(&meta, &spec, &gateway_index, "UDP"),
        }
    }
    r.unused();
    out
}

struct Reader<'a> {
    out: &'a mut Manifests,
    maps: Maps<'a>,
    /// Gateway name -> its namespace (the first, if two share a name: the compiler reports it).
    gateways: HashMap<String, String>,
}

impl Reader<'_> {
    fn error(&mut self, at: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.out.diags.push(Diagnostic::error(at, message));
        let last = self.out.diags.len() - 1;
        &mut self.out.diags[last]
    }

    fn warn(&mut self, at: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.out.diags.push(Diagnostic::warning(at, message));
        let last = self.out.diags.len() - 1;
        &mut self.out.diags[last]
    }

    /// The mapping keys have the right shape, and addresses are addresses.
    fn check_keys(&mut self) {
        let api = self.maps.api;
        for (k, _) in &api.services.0 {
            let ok = k.value.rsplit_once(':').is_some_and(|(object, port)| {
                object_key_ok(object) && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !ok {
                self.error(
                    at(0, k),
                    format!("`{}` is not a Service port reference", k.value),
                )
                .hint("write `NAMESPACE/NAME:PORT`, e.g. `media/sonarr:8989`");
            }
        }
        for (table, keys) in [
            (
                "secrets",
                api.secrets.0.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ),
            (
                "addresses",
                api.addresses.0.iter().map(|(k, _)| k).collect(),
            ),
        ] {
            for k in keys {
                if !object_key_ok(&k.value) {
                    self.error(
                        at(0, k),
                        format!("`{}` is not a `NAMESPACE/NAME` reference", k.value),
                    )
                    .hint(format!(
                        "`gatewayApi.{table}` keys name a Kubernetes object, e.g. `kube-system/internal-gateway`"
                    ));
                }
            }
        }
        for (_, list) in &api.addresses.0 {
            // `pool:NAME` (or `pool:NAME/ADDRESS`) is resolved by the compiler, as in a
            // gateway's `addresses`.
            for a in list
                .iter()
                .filter(|a| !a.value.0.trim().starts_with("pool:"))
            {
                if let Err(msg) = parse_listen_address(&a.value.0) {
                    self.error(at(0, a), msg)
                        .hint("write an IP address this node listens on, e.g. `127.0.0.1`");
                }
            }
        }
    }

    /// Mapping entries no manifest used: probably a typo in a name.
    fn unused(&mut self) {
        let api = self.maps.api;
        let tables: [(u8, &str, Vec<&S<String>>); 3] = [
            (
                0,
                "services",
                api.services.0.iter().map(|(k, _)| k).collect(),
            ),
            (1, "secrets", api.secrets.0.iter().map(|(k, _)| k).collect()),
            (
                2,
                "addresses",
                api.addresses.0.iter().map(|(k, _)| k).collect(),
            ),
        ];
        for (table, name, keys) in tables {
            for (i, k) in keys.into_iter().enumerate() {
                if !self.maps.used.contains(&(table, i)) {
                    self.warn(
                        at(0, k),
                        format!(
                            "`gatewayApi.{name}` entry `{}` is not used by any manifest",
                            k.value
                        ),
                    )
                    .hint("check the namespace and name against the manifests, or remove it");
                }
            }
        }
    }

    /// The manifest files: each entry a file, or a directory's `*.yaml` and `*.yml` files
    /// (sorted by name, not recursive).
    fn files(&mut self, api: &S<RawGatewayApi>, base: &Path, cluster: bool) -> Vec<PathBuf> {
        if api.value.manifests.is_empty() && !cluster {
            self.error(at(0, api), "`gatewayApi` has no `manifests`")
                .hint("list manifest files or directories, e.g. `manifests: [k8s/]`");
        }
        let mut out: Vec<PathBuf> = Vec::new();
        for m in &api.value.manifests {
            let path = {
                let p = PathBuf::from(&m.value);
                if p.is_absolute() { p } else { base.join(p) }
            };
            let found: Vec<PathBuf> = if path.is_dir() {
                match std::fs::read_dir(&path) {
                    Ok(entries) => {
                        let mut v: Vec<PathBuf> = entries
                            .filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|p| {
                                p.is_file()
                                    && p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                            })
                            .collect();
                        v.sort();
                        if v.is_empty() {
                            self.error(
                                at(0, m),
                                format!("`{}` holds no `.yaml` or `.yml` file", path.display()),
                            )
                            .hint("manifest directories are read one level deep: list subdirectories too, or name the files");
                        }
                        v
                    }
                    Err(e) => {
                        self.error(
                            at(0, m),
                            format!("cannot read directory `{}`: {e}", path.display()),
                        );
                        Vec::new()
                    }
                }
            } else if path.exists() {
                vec![path]
            } else {
                self.error(at(0, m), format!("`{}` does not exist", path.display()))
                    .hint("relative paths are relative to the config file's directory");
                Vec::new()
            };
            for f in found {
                if out.contains(&f) {
                    self.warn(
                        at(0, m),
                        format!("`{}` is listed twice; it is read once", f.display()),
                    );
                } else {
                    out.push(f);
                }
            }
        }
        out
    }

    /// One manifest file: every document in it.
    fn file(&mut self, path: &Path, objects: &mut Vec<Object>) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.out.diags.push(
                    Diagnostic::error(
                        Pos::default(),
                        format!("cannot read manifest `{}`: {e}", path.display()),
                    )
                    .with_hint("check the permissions, and that it is UTF-8 text"),
                );
                return;
            }
        };
        self.out
            .sources
            .push(Source::new(path.display().to_string(), text.clone()));
        let file = u32::try_from(self.out.sources.len()).unwrap_or(u32::MAX);
        for doc in documents(&text) {
            self.document(file, &doc, objects);
        }
    }

    /// An overlay fragment: backends and gateways, in the config's own shape.
    fn fragment(&mut self, file: u32, text: &str) {
        if let Some(f) = self.parse::<Fragment>(file, text) {
            self.out
                .backends
                .extend(f.backends.into_iter().map(|b| (file, b)));
            self.out
                .gateways
                .extend(f.gateways.into_iter().map(|g| (file, g)));
        }
    }

    /// The backend a Service port maps to: the config's mapping, then the cluster's.
    fn service_backend(&mut self, key: &str) -> Option<String> {
        if let Some(b) = Maps::find(&mut self.maps.used, 0, &self.maps.api.services, key) {
            return Some(b.value.clone());
        }
        self.maps.cluster?.services.get(key).cloned()
    }

    /// The certificate and key files of a Secret: the config's mapping, then the cluster's.
    fn secret_files(&mut self, key: &str) -> Option<(String, String)> {
        if let Some(f) = Maps::find(&mut self.maps.used, 1, &self.maps.api.secrets, key) {
            return Some((
                f.value.cert_file.value.clone(),
                f.value.key_file.value.clone(),
            ));
        }
        self.maps.cluster?.secrets.get(key).cloned()
    }

    /// Where a Gateway without `spec.addresses` listens: the config's mapping, then the
    /// cluster's (a pool address).
    fn gateway_addresses(&mut self, key: &str) -> Option<Vec<String>> {
        if let Some(list) = Maps::find(&mut self.maps.used, 2, &self.maps.api.addresses, key) {
            return Some(list.iter().map(|a| a.value.0.clone()).collect());
        }
        self.maps.cluster?.addresses.get(key).cloned()
    }

    fn parse<T: for<'de> Deserialize<'de>>(&mut self, file: u32, doc: &str) -> Option<T> {
        match serde_saphyr::from_str::<T>(doc) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut d = yaml_error(&e);
                d.pos.file = file;
                if let Some(field) = d.message.strip_prefix("unknown key ") {
                    d.message = format!(
                        "field {field} is not supported here by this version (or is not a Gateway API field)"
                    );
                    d.hint = Some(format!(
                        "{}; Gatehouse refuses what it cannot honour rather than ignoring it (docs/config.md, \"Gateway API manifests\")",
                        d.hint.unwrap_or_default()
                    ));
                }
                self.out.diags.push(d);
                None
            }
        }
    }

    /// One document: its head picks the kind, then the kind is read strictly.
    fn document(&mut self, file: u32, doc: &str, objects: &mut Vec<Object>) {
        let Some(head) = self.parse::<Head>(file, doc) else {
            return;
        };
        let (Some(api_version), Some(kind)) = (head.api_version, head.kind) else {
            self.error(
                Pos {
                    file,
                    line: first_line(doc),
                    column: 1,
                },
                "this document has no `apiVersion` and `kind`",
            )
            .hint("a manifest document is a Kubernetes object: `apiVersion`, `kind`, `metadata`, `spec`");
            return;
        };
        let meta = head.metadata.map(|m| m.value);
        let Some(name) = meta.as_ref().and_then(|m| m.name.as_ref()) else {
            self.error(
                at(file, &kind),
                format!("this `{}` has no `metadata.name`", kind.value),
            )
            .hint("add `metadata: {name: NAME}`");
            return;
        };
        let name = sp(name.value.clone(), name);
        let namespace = meta
            .as_ref()
            .and_then(|m| m.namespace.as_ref())
            .map_or_else(|| "default".to_owned(), |n| n.value.clone());
        let group = api_version.value.split('/').next().unwrap_or_default();
        let meta = Meta {
            file,
            kind: sp(kind.value.clone(), &kind),
            name,
            namespace,
        };
        if group != API_GROUP {
            self.warn(
                at(file, &kind),
                format!(
                    "{} `{}` is ignored: not a Gateway API object",
                    kind.value,
                    meta.full()
                ),
            )
            .hint("Gatehouse reads Gateway, HTTPRoute, TLSRoute and TCPRoute objects (`gateway.networking.k8s.io`); Services and Secrets map through `gatewayApi.services` and `gatewayApi.secrets`");
            return;
        }
        match kind.value.as_str() {
            "Gateway" => {
                if let Some(d) = self.parse::<Doc<GatewaySpec>>(file, doc) {
                    objects.push(Object::Gateway(meta, d.spec));
                }
            }
            "HTTPRoute" => {
                if let Some(d) = self.parse::<Doc<HttpRouteSpec>>(file, doc) {
                    objects.push(Object::Http(meta, d.spec));
                }
            }
            "TLSRoute" => {
                if let Some(d) = self.parse::<Doc<StreamRouteSpec>>(file, doc) {
                    objects.push(Object::Tls(meta, d.spec));
                }
            }
            "TCPRoute" => {
                if let Some(d) = self.parse::<Doc<StreamRouteSpec>>(file, doc) {
                    objects.push(Object::Tcp(meta, d.spec));
                }
            }
            "GatewayClass" => {
                self.warn(
                    at(file, &kind),
                    format!(
                        "GatewayClass `{}` is not used: Gatehouse is the implementation",
                        meta.name.value
                    ),
                )
                .hint("a Gateway's `gatewayClassName` is accepted whatever it names");
            }
            "ReferenceGrant" => {
                self.warn(
                    at(file, &kind),
                    format!("ReferenceGrant `{}` is not used", meta.full()),
                )
                .hint("Gatehouse resolves references through `gatewayApi.services` and `gatewayApi.secrets`, in any namespace: the config grants them");
            }
            "UDPRoute" => {
                if let Some(d) = self.parse::<Doc<StreamRouteSpec>>(file, doc) {
                    objects.push(Object::Udp(meta, d.spec));
                }
            }
            other => {
                let hint = match closest(
                    other,
                    ["Gateway", "HTTPRoute", "TLSRoute", "TCPRoute", "UDPRoute"],
                ) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "this version reads Gateway, HTTPRoute, TLSRoute, TCPRoute and UDPRoute objects"
                        .to_owned(),
                };
                self.error(
                    at(file, &kind),
                    format!("Gateway API kind `{other}` is not supported by this version yet"),
                )
                .hint(hint);
            }
        }
    }

    fn gateway(&mut self, meta: &Meta, spec: &S<GatewaySpec>) -> S<RawGateway> {
        let file = meta.file;
        let g = &spec.value;
        let mut addresses = Vec::new();
        for a in &g.addresses {
            match a.value.kind.as_ref().map(|k| k.value.as_str()) {
                None | Some("IPAddress") => {
                    addresses.push(sp(a.value.value.value.clone(), &a.value.value))
                }
                Some(other) => {
                    let at_kind = a.value.kind.as_ref().map_or(at(file, a), |k| at(file, k));
                    self.error(at_kind, format!("address type `{other}` is not supported"))
                        .hint("Gatehouse listens on IP addresses: use `type: IPAddress` with an address of this node");
                }
            }
        }
        if g.addresses.is_empty() {
            let key = meta.full();
            match self.gateway_addresses(&key) {
                Some(list) => {
                    for a in list {
                        addresses.push(sp(Scalar(a), &meta.name));
                    }
                }
                None if self.maps.cluster.is_some() => {
                    self.error(
                        at(file, &meta.name),
                        format!("Gateway `{key}` has no `spec.addresses`, and there is no pool to take one from"),
                    )
                    .hint("set `kubernetes.pool` in the config, or give the Gateway `spec.addresses`");
                }
                None => {
                    self.error(
                        at(file, &meta.name),
                        format!("Gateway `{key}` has no `spec.addresses`, and `gatewayApi.addresses` has no entry for it"),
                    )
                    .hint(format!(
                        "say where it listens: add `{key}: [\"ADDRESS\"]` under `gatewayApi.addresses` in the config (an address of this node, e.g. 127.0.0.1), or `spec.addresses: [{{type: IPAddress, value: ADDRESS}}]` here"
                    ));
                }
            }
        }
        let listeners = g
            .listeners
            .iter()
            .map(|l| sp(self.listener(meta, &l.value), l))
            .collect();
        sp(
            RawGateway {
                name: sp(meta.name.value.clone(), &meta.name),
                addresses,
                listeners,
            },
            &meta.name,
        )
    }

    fn listener(&mut self, meta: &Meta, l: &K8sListener) -> RawListener {
        let file = meta.file;
        if let Some(a) = &l.allowed_routes {
            self.warn(at(file, a), "`allowedRoutes` is not enforced")
                .hint("every route in the manifests attaches where its `parentRefs` say, whatever its namespace or kind");
        }
        let tls = l.tls.as_ref().map(|t| {
            let certificates = t
                .value
                .certificate_refs
                .iter()
                .filter_map(|c| self.certificate(meta, &c.value))
                .map(|c| sp(c, t))
                .collect();
            sp(
                RawListenerTls {
                    mode: t.value.mode.as_ref().map(|m| sp(m.value.clone(), m)),
                    certificates,
                    alpn: None,
                    min_version: None,
                    handshake_timeout: None,
                },
                t,
            )
        });
        RawListener {
            name: sp(l.name.value.clone(), &l.name),
            address: None,
            port: sp(l.port.value, &l.port),
            protocol: Some(sp(l.protocol.value.clone(), &l.protocol)),
            hostname: l.hostname.as_ref().map(|h| sp(h.value.clone(), h)),
            tls,
            backend: None,
            max_connections: None,
            idle_timeout: None,
            http: None,
            udp: None,
            allow: Vec::new(),
            deny: Vec::new(),
            proxy_protocol: None,
            dns_name: None,
            dns_names: Vec::new(),
        }
    }

    fn certificate(&mut self, meta: &Meta, c: &ObjectRef) -> Option<RawCertificate> {
        let file = meta.file;
        if !self.core_kind(file, c.group.as_ref(), c.kind.as_ref(), "Secret") {
            return None;
        }
        let ns = c
            .namespace
            .as_ref()
            .map_or(meta.namespace.as_str(), |n| n.value.as_str());
        let key = format!("{ns}/{}", c.name.value);
        match self.secret_files(&key) {
            Some((cert, key)) => Some(RawCertificate {
                cert_file: sp(cert, &c.name),
                key_file: sp(key, &c.name),
            }),
            None if self.maps.cluster.is_some() => {
                self.error(
                    at(file, &c.name),
                    format!("Secret `{key}` is not in the cluster, or is not a `kubernetes.io/tls` Secret with `tls.crt` and `tls.key`"),
                )
                .hint("check its name and namespace, and that the namespace is one Gatehouse watches");
                None
            }
            None => {
                self.error(
                    at(file, &c.name),
                    format!("Secret `{key}` has no certificate files in `gatewayApi.secrets`"),
                )
                .hint(format!(
                    "without the `kubernetes` provider, add `{key}: {{certFile: FILE.crt, keyFile: FILE.key}}` under `gatewayApi.secrets` in the config (PEM files, relative to the config)"
                ));
                None
            }
        }
    }

    /// `group`/`kind` of a reference name a core object of `want` kind.
    fn core_kind(
        &mut self,
        file: u32,
        group: Option<&S<String>>,
        kind: Option<&S<String>>,
        want: &str,
    ) -> bool {
        if let Some(g) = group
            && !g.value.is_empty()
        {
            self.error(
                at(file, g),
                format!("references to group `{}` are not supported", g.value),
            )
            .hint(format!(
                "Gatehouse follows references to core `{want}` objects only (group `\"\"`)"
            ));
            return false;
        }
        if let Some(k) = kind
            && k.value != want
        {
            self.error(
                at(file, k),
                format!("references to kind `{}` are not supported here", k.value),
            )
            .hint(format!("this reference must name a `{want}`"));
            return false;
        }
        true
    }

    fn parent_refs(&mut self, meta: &Meta, refs: &[S<K8sParentRef>]) -> Vec<S<RawParentRef>> {
        let file = meta.file;
        let mut out = Vec::new();
        if refs.is_empty() {
            self.error(
                at(file, &meta.name),
                format!("{} `{}` has no `parentRefs`", meta.kind.value, meta.full()),
            )
            .hint("name the Gateway it attaches to: `parentRefs: [{name: GATEWAY, sectionName: LISTENER}]`");
        }
        for p in refs {
            let r = &p.value;
            if let Some(g) = &r.group
                && g.value != API_GROUP
            {
                self.error(
                    at(file, g),
                    format!("parent group `{}` is not supported", g.value),
                )
                .hint(format!(
                    "a route attaches to a Gateway (group `{API_GROUP}`)"
                ));
                continue;
            }
            if let Some(k) = &r.kind
                && k.value != "Gateway"
            {
                self.error(
                    at(file, k),
                    format!("parent kind `{}` is not supported", k.value),
                )
                .hint("a route attaches to a `Gateway`");
                continue;
            }
            let ns = r
                .namespace
                .as_ref()
                .map_or(meta.namespace.as_str(), |n| n.value.as_str());
            match self.gateways.get(&r.name.value) {
                Some(gns) if gns == ns => {}
                found => {
                    let hint = match found {
                        Some(gns) => format!(
                            "Gateway `{}` is in namespace `{gns}`: set `namespace: {gns}` in this parentRef (it defaults to the route's namespace)",
                            r.name.value
                        ),
                        None => {
                            let mut names: Vec<String> = self
                                .gateways
                                .iter()
                                .map(|(n, ns)| format!("{ns}/{n}"))
                                .collect();
                            names.sort();
                            if names.is_empty() {
                                "the manifests define no Gateway".to_owned()
                            } else {
                                format!("Gateways in the manifests: {}", names.join(", "))
                            }
                        }
                    };
                    self.error(
                        at(file, &r.name),
                        format!(
                            "{} `{}` attaches to Gateway `{ns}/{}`, which is not in the manifests",
                            meta.kind.value,
                            meta.full(),
                            r.name.value
                        ),
                    )
                    .hint(hint);
                    continue;
                }
            }
            out.push(sp(
                RawParentRef {
                    gateway: sp(r.name.value.clone(), &r.name),
                    listener: r.section_name.as_ref().map(|s| sp(s.value.clone(), s)),
                    port: r.port.as_ref().map(|x| sp(x.value, x)),
                },
                p,
            ));
        }
        out
    }

    /// A backendRef, through `gatewayApi.services`, as the Gatehouse backend it maps to.
    fn backend_ref(&mut self, meta: &Meta, b: &S<K8sBackendRef>) -> Option<S<RawBackendRef>> {
        let file = meta.file;
        let r = &b.value;
        if let Some(f) = &r.filters {
            self.error(
                at(file, f),
                "filters on a backendRef are not supported by this version",
            )
            .hint(
                "put the filter on the rule instead (it then applies to every backend of the rule)",
            );
        }
        if !self.core_kind(file, r.group.as_ref(), r.kind.as_ref(), "Service") {
            return None;
        }
        let ns = r
            .namespace
            .as_ref()
            .map_or(meta.namespace.as_str(), |n| n.value.as_str());
        let Some(port) = &r.port else {
            self.error(
                at(file, &r.name),
                format!(
                    "backendRef to Service `{ns}/{}` has no `port`",
                    r.name.value
                ),
            )
            .hint("a Service backendRef needs the Service port: add `port: PORT`");
            return None;
        };
        let key = format!("{ns}/{}:{}", r.name.value, port.value);
        match self.service_backend(&key) {
            Some(backend) => Some(sp(
                RawBackendRef {
                    name: sp(backend, &r.name),
                    weight: r.weight.as_ref().map(|w| sp(w.value, w)),
                    port: None,
                },
                b,
            )),
            None if self.maps.cluster.is_some() => {
                self.error(
                    at(file, &r.name),
                    format!("Service `{key}` is not in the cluster, or has no port {}", port.value),
                )
                .hint("check the Service's name, namespace and port, and that the namespace is one Gatehouse watches");
                None
            }
            None => {
                self.error(
                    at(file, &r.name),
                    format!("Service `{key}` has no Gatehouse backend in `gatewayApi.services`"),
                )
                .hint(format!(
                    "without the `kubernetes` provider, add `{key}: BACKEND` under `gatewayApi.services` in the config, naming a backend defined under `backends:`"
                ));
                None
            }
        }
    }

    fn http_route(&mut self, meta: &Meta, spec: S<HttpRouteSpec>) -> Option<S<RawRoute>> {
        let parent_refs = self.parent_refs(meta, &spec.value.parent_refs);
        let spec_pos = sp((), &spec);
        let HttpRouteSpec {
            hostnames, rules, ..
        } = spec.value;
        let rules = match rules {
            Some(rules) => {
                let place = sp((), &rules);
                let mut compiled = Vec::new();
                for rule in rules.value {
                    let backend_refs = rule
                        .value
                        .backend_refs
                        .iter()
                        .filter_map(|b| self.backend_ref(meta, b))
                        .collect();
                    let rule_place = sp((), &rule);
                    let K8sHttpRule {
                        matches,
                        filters,
                        timeouts,
                        ..
                    } = rule.value;
                    compiled.push(sp(
                        RawHttpRule {
                            matches,
                            filters,
                            backend_refs,
                            timeouts,
                        },
                        &rule_place,
                    ));
                }
                sp(compiled, &place)
            }
            // Gateway API's default: one rule matching every request, with no backends.
            None => sp(
                vec![sp(
                    RawHttpRule {
                        matches: Vec::new(),
                        filters: Vec::new(),
                        backend_refs: Vec::new(),
                        timeouts: None,
                    },
                    &spec_pos,
                )],
                &spec_pos,
            ),
        };
        Some(sp(
            RawRoute {
                name: sp(meta.name.value.clone(), &meta.name),
                kind: sp("HTTPRoute".to_owned(), &meta.kind),
                parent_refs,
                hostnames,
                backend: None,
                rules: Some(rules),
                allow: Vec::new(),
                deny: Vec::new(),
            },
            &meta.name,
        ))
    }

    /// The one backendRef of a TLSRoute or TCPRoute: one rule with one backendRef.
    fn single_backend(&mut self, meta: &Meta, spec: &S<StreamRouteSpec>) -> Option<S<String>> {
        let file = meta.file;
        let refs: Vec<&S<K8sBackendRef>> = spec
            .value
            .rules
            .iter()
            .flat_map(|r| &r.value.backend_refs)
            .collect();
        match refs.as_slice() {
            [] => {
                self.error(
                    at(file, &meta.name),
                    format!("{} `{}` has no backendRefs", meta.kind.value, meta.full()),
                )
                .hint("add `rules: [{backendRefs: [{name: SERVICE, port: PORT}]}]`");
                None
            }
            [one] => self
                .backend_ref(meta, one)
                .map(|b| sp(b.value.name.value.clone(), &b.value.name)),
            [_, second, ..] => {
                self.error(
                    at(file, second),
                    format!(
                        "{} `{}` has several backendRefs: weighted {}s are not supported by this version yet",
                        meta.kind.value,
                        meta.full(),
                        meta.kind.value
                    ),
                )
                .hint("give it one rule with one backendRef; to spread connections, list several endpoints in the Gatehouse backend that backendRef maps to");
                None
            }
        }
    }

    fn tls_route(&mut self, meta: &Meta, spec: &S<StreamRouteSpec>) -> Option<S<RawRoute>> {
        let parent_refs = self.parent_refs(meta, &spec.value.parent_refs);
        let backend = self.single_backend(meta, spec)?;
        Some(sp(
            RawRoute {
                name: sp(meta.name.value.clone(), &meta.name),
                kind: sp("TLSRoute".to_owned(), &meta.kind),
                parent_refs,
                hostnames: spec
                    .value
                    .hostnames
                    .iter()
                    .flatten()
                    .map(|h| sp(h.value.clone(), h))
                    .collect(),
                backend: Some(backend),
                rules: None,
                allow: Vec::new(),
                deny: Vec::new(),
            },
            &meta.name,
        ))
    }

    /// A TCPRoute (UDPRoute) becomes the `backend` of the TCP (UDP) listeners it attaches to.
    fn stream_route(
        &mut self,
        meta: &Meta,
        spec: &S<StreamRouteSpec>,
        gateways: &HashMap<String, usize>,
        transport: &str,
    ) {
        let file = meta.file;
        let kind = format!("{transport}Route");
        if let Some(h) = spec.value.hostnames.as_ref().and_then(|h| h.first()) {
            self.error(at(file, h), format!("a {kind} has no `hostnames`"))
                .hint(format!(
                    "{transport} carries no name to route by: remove `hostnames`"
                ));
        }
        let parents = self.parent_refs(meta, &spec.value.parent_refs);
        let Some(backend) = self.single_backend(meta, spec) else {
            return;
        };
        for p in parents {
            let p = &p.value;
            let Some(&gi) = gateways.get(&p.gateway.value) else {
                continue;
            };
            let mut matched = 0;
            let mut problems: Vec<(Pos, String)> = Vec::new();
            let gw = &mut self.out.gateways[gi].1.value;
            for l in &mut gw.listeners {
                let l = &mut l.value;
                if p.listener.as_ref().is_some_and(|s| s.value != l.name.value)
                    || p.port.as_ref().is_some_and(|x| x.value != l.port.value)
                {
                    continue;
                }
                let protocol = l.protocol.as_ref().map_or("TCP", |x| x.value.as_str());
                if protocol != transport {
                    if p.listener.is_some() {
                        problems.push((
                            at(file, &p.gateway),
                            format!(
                                "{kind} `{}` attaches to `{}/{}`, which is not a {transport} listener",
                                meta.full(),
                                gw.name.value,
                                l.name.value
                            ),
                        ));
                    }
                    continue;
                }
                if l.backend.is_some() {
                    problems.push((
                        at(file, &p.gateway),
                        format!(
                            "two {kind}s attach to listener `{}/{}`: not supported by this version yet",
                            gw.name.value, l.name.value
                        ),
                    ));
                    continue;
                }
                matched += 1;
                // The listener's own place: compiled with its Gateway, in the Gateway's file.
                l.backend = Some(sp(backend.value.clone(), &l.name));
            }
            let gateway_name = gw.name.value.clone();
            let explained = !problems.is_empty();
            for (pos, msg) in problems {
                self.error(pos, msg).hint(format!(
                    "a {transport} listener sends everything to one backend: attach one {kind} with one backendRef"
                ));
            }
            if matched == 0 && !explained {
                self.error(
                    at(file, &p.gateway),
                    format!(
                        "{kind} `{}` attaches to no {transport} listener of Gateway `{gateway_name}`",
                        meta.full()
                    ),
                )
                .hint(format!("check `parentRefs`: the Gateway needs a `protocol: {transport}` listener (with that `sectionName` or `port`, if set)"));
            }
        }
    }
}

/// `NAMESPACE/NAME` with both parts non-empty.
fn object_key_ok(key: &str) -> bool {
    key.split_once('/')
        .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
}

/// The line (1-based) of the first non-blank, non-comment line of a padded document.
fn first_line(doc: &str) -> u64 {
    doc.lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map_or(1, |i| i as u64 + 1)
}

/// The documents of a multi-document YAML file, each padded with empty lines (and its `---`
/// marker blanked) so that lines and columns are those of the whole file. Documents with
/// nothing but comments are dropped.
fn documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut has_content = false;
    for line in text.lines() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        let end = line == "..." || line.starts_with("... ");
        if marker || end {
            if has_content {
                docs.push(std::mem::take(&mut current));
                let lines = docs.last().map_or(0, |d: &String| d.lines().count());
                current = "\n".repeat(lines);
            }
            has_content = false;
            let rest = if end { "" } else { &line[3..] };
            current.push_str("   ");
            current.push_str(rest);
            if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                has_content = true;
            }
            current.push('\n');
            continue;
        }
        if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            has_content = true;
        }
        current.push_str(line);
        current.push('\n');
    }
    if has_content {
        docs.push(current);
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_lines() {
        let text = "# c\n---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n";
        let docs = documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(first_line(&docs[0]), 3);
        assert_eq!(first_line(&docs[1]), 7);
    }
}
