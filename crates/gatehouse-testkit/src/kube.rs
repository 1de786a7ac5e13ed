//! A fake Kubernetes API server, for testing Gatehouse's Kubernetes provider (kube-rs
//! `watcher`) without a cluster.
//!
//! [`FakeApiServer::start`] serves HTTPS on a free port of 127.0.0.1 (a certificate for
//! `127.0.0.1` and `localhost` signed by a throwaway CA, HTTP/1.1 and h2) and requires
//! `Authorization: Bearer TOKEN`; [`FakeApiServer::write_kubeconfig`] writes a kubeconfig a
//! kube-rs client can load as is. The server keeps a generic object store for any
//! [`Resource`] (group, version, plural, scope; the versions of a group and plural share their
//! objects) and speaks the list/watch protocol the way a real API server does:
//!
//! - one global `resourceVersion` counter across every resource, like etcd's revision;
//! - list (`GET .../PLURAL`, cluster-wide or in a namespace) with `labelSelector`,
//!   `fieldSelector`, `limit` and opaque `continue` tokens that page through a consistent
//!   snapshot (a token older than the compaction point gets `410 Expired`);
//! - watch (`watch=true`) from a `resourceVersion`: the history since that version, then live
//!   events, one JSON object per line; `ERROR` `410 Expired` when the version is older than
//!   the compaction point; `BOOKMARK` on request ([`FakeApiServer::bookmark`]); the stream
//!   ends after `timeoutSeconds`;
//! - get, merge/strategic/apply patches (all merged as RFC 7386 JSON merge patches) and
//!   `PUT`, on objects and their `status` subresource, create (`POST`) and delete; writes that
//!   change nothing do not bump the resourceVersion nor emit events, like a real server;
//! - discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/GROUP[/VERSION]`) and
//!   metadata-only requests (`Accept: ...;as=PartialObjectMetadata[List]`).
//!
//! The test drives the store ([`FakeApiServer::apply`], [`FakeApiServer::delete`]), reads
//! what the client wrote ([`FakeApiServer::get`], [`FakeApiServer::writes`]) and asked
//! ([`FakeApiServer::requests`]), and injects failures: [`FakeApiServer::close_watches`],
//! [`FakeApiServer::compact`], [`FakeApiServer::set_down`].
//!
//! Everything runs on the tokio runtime `start` is called from; the server stops when the
//! last clone of the handle is dropped.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Bound;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

/// How long a watch lasts when the request has no `timeoutSeconds` (a real API server picks
/// 30 to 60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

// ---------------------------------------------------------------------------------------------
// Resources

/// A kind of object the server stores and serves: its API group and version, kind, plural
/// (the path segment) and scope.
///
/// Objects are keyed by group and plural: two versions of a resource (TLSRoute `v1alpha2`
/// and `v1`, say) serve the same objects, each with its own `apiVersion` and no other
/// conversion, like a CRD with the `None` conversion strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    /// The API group: `""` for the core group (paths `/api/v1/...`), else e.g.
    /// `gateway.networking.k8s.io` (paths `/apis/GROUP/VERSION/...`).
    pub group: &'static str,
    /// The API version, e.g. `v1`.
    pub version: &'static str,
    /// The kind, e.g. `Service` (lists are `ServiceList`).
    pub kind: &'static str,
    /// The plural resource name used in paths, e.g. `services`.
    pub plural: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether the resource has a `status` subresource. If so, writes to the object itself
    /// keep the stored `status`, and only `.../status` changes it, like a real server (the
    /// test control API, [`FakeApiServer::apply`], writes whole objects regardless).
    pub status_subresource: bool,
}

impl Resource {
    /// A namespaced resource with a `status` subresource.
    pub const fn namespaced(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
    ) -> Resource {
        Resource {
            group,
            version,
            kind,
            plural,
            namespaced: true,
            status_subresource: true,
        }
    }

    /// A cluster-scoped resource with a `status` subresource.
    pub const fn cluster(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
    ) -> Resource {
        Resource {
            namespaced: false,
            ..Resource::namespaced(group, version, kind, plural)
        }
    }

    /// The same resource without a `status` subresource (Secret, EndpointSlice...).
    pub const fn without_status(self) -> Resource {
        Resource {
            status_subresource: false,
            ..self
        }
    }

    /// Core v1 Service.
    pub const SERVICE: Resource = Resource::namespaced("", "v1", "Service", "services");
    /// Core v1 Node.
    pub const NODE: Resource = Resource::cluster("", "v1", "Node", "nodes");
    /// Core v1 Secret (no status).
    pub const SECRET: Resource =
        Resource::namespaced("", "v1", "Secret", "secrets").without_status();
    /// Core v1 ConfigMap (no status).
    pub const CONFIG_MAP: Resource =
        Resource::namespaced("", "v1", "ConfigMap", "configmaps").without_status();
    /// Core v1 Namespace.
    pub const NAMESPACE: Resource = Resource::cluster("", "v1", "Namespace", "namespaces");
    /// discovery.k8s.io/v1 EndpointSlice (no status).
    pub const ENDPOINT_SLICE: Resource =
        Resource::namespaced("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
            .without_status();
    /// coordination.k8s.io/v1 Lease (no status), for leader election.
    pub const LEASE: Resource =
        Resource::namespaced("coordination.k8s.io", "v1", "Lease", "leases").without_status();
    /// gateway.networking.k8s.io/v1 GatewayClass (cluster-scoped).
    pub const GATEWAY_CLASS: Resource = Resource::cluster(
        "gateway.networking.k8s.io",
        "v1",
        "GatewayClass",
        "gatewayclasses",
    );
    /// gateway.networking.k8s.io/v1 Gateway.
    pub const GATEWAY: Resource =
        Resource::namespaced("gateway.networking.k8s.io", "v1", "Gateway", "gateways");
    /// gateway.networking.k8s.io/v1 HTTPRoute.
    pub const HTTP_ROUTE: Resource =
        Resource::namespaced("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes");
    /// gateway.networking.k8s.io/v1 GRPCRoute.
    pub const GRPC_ROUTE: Resource =
        Resource::namespaced("gateway.networking.k8s.io", "v1", "GRPCRoute", "grpcroutes");
    /// gateway.networking.k8s.io/v1beta1 ReferenceGrant (no status).
    pub const REFERENCE_GRANT: Resource = Resource::namespaced(
        "gateway.networking.k8s.io",
        "v1beta1",
        "ReferenceGrant",
        "referencegrants",
    )
    .without_status();
    /// gateway.networking.k8s.io/v1 ReferenceGrant (the version of the `gateway-api` crate
    /// 0.22), the same objects as [`Resource::REFERENCE_GRANT`].
    pub const REFERENCE_GRANT_V1: Resource = Resource::namespaced(
        "gateway.networking.k8s.io",
        "v1",
        "ReferenceGrant",
        "referencegrants",
    )
    .without_status();
    /// gateway.networking.k8s.io/v1alpha2 TCPRoute.
    pub const TCP_ROUTE: Resource = Resource::namespaced(
        "gateway.networking.k8s.io",
        "v1alpha2",
        "TCPRoute",
        "tcproutes",
    );
    /// gateway.networking.k8s.io/v1alpha2 UDPRoute.
    pub const UDP_ROUTE: Resource = Resource::namespaced(
        "gateway.networking.k8s.io",
        "v1alpha2",
        "UDPRoute",
        "udproutes",
    );
    /// gateway.networking.k8s.io/v1alpha2 TLSRoute.
    pub const TLS_ROUTE: Resource = Resource::namespaced(
        "gateway.networking.k8s.io",
        "v1alpha2",
        "TLSRoute",
        "tlsroutes",
    );
    /// gateway.networking.k8s.io/v1 TLSRoute (the version of the `gateway-api` crate 0.22),
    /// the same objects as [`Resource::TLS_ROUTE`].
    pub const TLS_ROUTE_V1: Resource =
        Resource::namespaced("gateway.networking.k8s.io", "v1", "TLSRoute", "tlsroutes");

    /// Every resource above: what [`FakeApiServer::start`] serves.
    pub const ALL: &'static [Resource] = &[
        Resource::SERVICE,
        Resource::NODE,
        Resource::SECRET,
        Resource::CONFIG_MAP,
        Resource::NAMESPACE,
        Resource::ENDPOINT_SLICE,
        Resource::LEASE,
        Resource::GATEWAY_CLASS,
        Resource::GATEWAY,
        Resource::HTTP_ROUTE,
        Resource::GRPC_ROUTE,
        Resource::REFERENCE_GRANT,
        Resource::REFERENCE_GRANT_V1,
        Resource::TCP_ROUTE,
        Resource::UDP_ROUTE,
        Resource::TLS_ROUTE,
        Resource::TLS_ROUTE_V1,
    ];

    /// The `apiVersion` of its objects: `v1`, or `GROUP/VERSION`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The path of its collection: cluster-wide (`None`, for a namespaced resource: every
    /// namespace) or in a namespace, e.g. `/api/v1/namespaces/default/services`.
    pub fn path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    fn key(&self) -> ResKey {
        (self.group, self.plural)
    }

    /// What a real server names this resource in messages: `services`,
    /// `gateways.gateway.networking.k8s.io`.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The key of an object in the store: its namespace ("" when cluster-scoped) and name.
    fn obj_key(&self, namespace: &str, name: &str) -> ObjKey {
        let ns = if self.namespaced { namespace } else { "" };
        (ns.to_owned(), name.to_owned())
    }
}

/// Objects are keyed by group and plural: every version of a resource serves the same objects.
type ResKey = (&'static str, &'static str);
type ObjKey = (String, String);

// ---------------------------------------------------------------------------------------------
// Logs

/// A write request the server received (anything but `GET`), as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRequest {
    /// `PATCH`, `PUT`, `POST` or `DELETE`.
    pub method: String,
    /// Path and query as sent, e.g.
    /// `/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/gw/status?&fieldManager=x`.
    pub path: String,
    /// The `Content-Type` header, e.g. `application/merge-patch+json`.
    pub content_type: Option<String>,
    /// The body (lossy UTF-8).
    pub body: String,
    /// The status the server answered with.
    pub status: u16,
}

impl WriteRequest {
    /// The body parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The path without the query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Store

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One write to the store, kept for watches that resume from an older resourceVersion and
/// for consistent list snapshots.
struct Change {
    rv: u64,
    key: ResKey,
    kind: EventType,
    /// The object after the change (for a deletion: the last state, at the deletion's rv).
    object: Value,
    /// The object before the change.
    prev: Option<Value>,
}

/// An open watch stream.
struct Watcher {
    key: ResKey,
    resource: Resource,
    filter: Filter,
    bookmarks: bool,
    meta_only: bool,
    tx: mpsc::UnboundedSender<Bytes>,
}

struct Store {
    rv: u64,
    compacted: u64,
    uid_seed: u64,
    uids: u64,
    resources: Vec<Resource>,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Value>>,
    history: Vec<Change>,
    watchers: Vec<Watcher>,
    requests: Vec<String>,
    writes: Vec<WriteRequest>,
}

/// What a request gets: a whole JSON document, or a watch stream.
enum Reply {
    Json(StatusCode, Value),
    Watch(mpsc::UnboundedReceiver<Bytes>, Duration),
}

fn reply(code: StatusCode, body: Value) -> Reply {
    Reply::Json(code, body)
}

/// A Kubernetes `Status` object for a failure.
fn status_object(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    })
}

fn failure(code: StatusCode, reason: &str, message: &str) -> Reply {
    reply(code, status_object(code, reason, message))
}

fn bad_request(message: &str) -> Reply {
    failure(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn not_found(res: &Resource, name: &str) -> Reply {
    let mut status = status_object(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", res.qualified()),
    );
    status["details"] = json!({"name": name, "group": res.group, "kind": res.plural});
    reply(StatusCode::NOT_FOUND, status)
}

fn page_not_found() -> Reply {
    failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    metadata(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `obj.metadata`, made an object (and `obj` too) if it was not: never `None`.
fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj.get_mut("metadata")?.as_object_mut()
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = metadata_mut(obj) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// Whether anything but `metadata` and `status` differs: a real server bumps
/// `metadata.generation` then.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        m.remove("status");
        m
    };
    strip(old) != strip(new)
}

/// The object as `PartialObjectMetadata` (for clients that asked for metadata only, kube-rs
/// `metadata_watcher` / `Api<PartialObjectMeta<K>>`).
fn meta_view(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// An object as served for `res`: with its `apiVersion` (objects are shared between the
/// versions of a resource), or as `PartialObjectMetadata`.
fn view(res: &Resource, obj: &Value, meta_only: bool) -> Value {
    if meta_only {
        return meta_view(obj);
    }
    let mut obj = obj.clone();
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), Value::String(res.api_version()));
    }
    obj
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark_object(res: &Resource, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta})
}

/// What a watcher with `filter` sees of `change`: objects entering the selection are
/// `ADDED`, objects leaving it `DELETED` (their previous state at the change's
/// resourceVersion), like a real API server's watch cache.
fn translate(filter: &Filter, change: &Change) -> Option<(&'static str, Value)> {
    match change.kind {
        EventType::Added => filter
            .matches(&change.object)
            .then(|| ("ADDED", change.object.clone())),
        EventType::Modified => {
            let now = filter.matches(&change.object);
            let before = change.prev.as_ref().is_some_and(|p| filter.matches(p));
            match (before, now) {
                (true, true) => Some(("MODIFIED", change.object.clone())),
                (false, true) => Some(("ADDED", change.object.clone())),
                (true, false) => {
                    let mut old = change.prev.clone().unwrap_or_default();
                    set_rv(&mut old, change.rv);
                    Some(("DELETED", old))
                }
                (false, false) => None,
            }
        }
        EventType::Deleted => filter
            .matches(change.prev.as_ref().unwrap_or(&change.object))
            .then(|| ("DELETED", change.object.clone())),
    }
}

impl Store {
    fn new() -> Store {
        let uid_seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
            .unwrap_or(0);
        Store {
            rv: 1,
            compacted: 0,
            uid_seed,
            uids: 0,
            resources: Resource::ALL.to_vec(),
            objects: HashMap::new(),
            history: Vec::new(),
            watchers: Vec::new(),
            requests: Vec::new(),
            writes: Vec::new(),
        }
    }

    fn find(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .copied()
    }

    fn get(&self, res: &Resource, key: &ObjKey) -> Option<&Value> {
        self.objects.get(&res.key())?.get(key)
    }

    fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            self.uid_seed & 0xffff_ffff,
            (self.uid_seed >> 32) & 0xffff,
            self.uids
        )
    }

    /// Appends a change to the history and sends it to the open watches that select it.
    fn record(&mut self, res: &Resource, kind: EventType, object: Value, prev: Option<Value>) {
        let change = Change {
            rv: self.rv,
            key: res.key(),
            kind,
            object,
            prev,
        };
        self.watchers.retain(|w| {
            if w.key != change.key {
                return !w.tx.is_closed();
            }
            match translate(&w.filter, &change) {
                Some((kind, obj)) => {
                    let obj = view(&w.resource, &obj, w.meta_only);
                    w.tx.send(event_line(kind, &obj)).is_ok()
                }
                None => !w.tx.is_closed(),
            }
        });
        self.history.push(change);
    }

    /// Creates or replaces `obj` (its namespace and name must be set), keeping the
    /// server-managed metadata (uid, creationTimestamp, generation, resourceVersion) of the
    /// object it replaces. Returns the stored object and the event emitted: none when nothing
    /// changed.
    fn put(&mut self, res: &Resource, mut obj: Value) -> (Value, Option<EventType>) {
        let key = res.obj_key(meta_str(&obj, "namespace"), meta_str(&obj, "name"));
        match self.get(res, &key).cloned() {
            None => {
                self.rv += 1;
                let uid = self.new_uid();
                let rv = self.rv;
                if let Some(meta) = metadata_mut(&mut obj) {
                    if meta
                        .get("uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .is_empty()
                    {
                        meta.insert("uid".into(), Value::String(uid));
                    }
                    meta.insert("creationTimestamp".into(), Value::String(rfc3339_now()));
                    meta.insert("generation".into(), json!(1));
                    meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
                }
                self.objects
                    .entry(res.key())
                    .or_default()
                    .insert(key, obj.clone());
                self.record(res, EventType::Added, obj.clone(), None);
                (obj, Some(EventType::Added))
            }
            Some(old) => {
                // Stored as first written: writing through another version is no change.
                if let (Some(o), Some(v)) = (obj.as_object_mut(), old.get("apiVersion")) {
                    o.insert("apiVersion".into(), v.clone());
                }
                let old_meta = metadata(&old).cloned().unwrap_or_default();
                if let Some(meta) = metadata_mut(&mut obj) {
                    for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                        match old_meta.get(field) {
                            Some(v) => meta.insert(field.into(), v.clone()),
                            None => meta.remove(field),
                        };
                    }
                }
                if obj == old {
                    return (old, None);
                }
                if spec_changed(&old, &obj)
                    && let Some(meta) = metadata_mut(&mut obj)
                {
                    let generation = old_meta
                        .get("generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    meta.insert("generation".into(), json!(generation + 1));
                }
                self.rv += 1;
                set_rv(&mut obj, self.rv);
                self.objects
                    .entry(res.key())
                    .or_default()
                    .insert(key, obj.clone());
                self.record(res, EventType::Modified, obj.clone(), Some(old));
                (obj, Some(EventType::Modified))
            }
        }
    }

    fn remove(&mut self, res: &Resource, key: &ObjKey) -> Option<Value> {
        let old = self.objects.get_mut(&res.key())?.remove(key)?;
        self.rv += 1;
        let mut obj = old.clone();
        set_rv(&mut obj, self.rv);
        self.record(res, EventType::Deleted, obj.clone(), Some(old));
        Some(obj)
    }

    /// The objects of `res` as they were at resourceVersion `rv` (undoing later changes), or
    /// `None` if the history needed was compacted away.
    fn state_at(&self, res: &Resource, rv: u64) -> Option<BTreeMap<ObjKey, Value>> {
        if rv < self.compacted {
            return None;
        }
        let key = res.key();
        let mut state = self.objects.get(&key).cloned().unwrap_or_default();
        for change in self.history.iter().rev() {
            if change.rv <= rv {
                break;
            }
            if change.key != key {
                continue;
            }
            let k = res.obj_key(
                meta_str(&change.object, "namespace"),
                meta_str(&change.object, "name"),
            );
            match (change.kind, &change.prev) {
                (EventType::Added, _) => {
                    state.remove(&k);
                }
                (_, Some(prev)) => {
                    state.insert(k, prev.clone());
                }
                (_, None) => {}
            }
        }
        Some(state)
    }

    /// Makes `obj` an object of `res` named `name` (if given) in namespace `ns`: apiVersion,
    /// kind, metadata.name and metadata.namespace.
    fn normalize(
        res: &Resource,
        obj: &mut Value,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), String> {
        if !obj.is_object() {
            return Err("the body must be a JSON object".into());
        }
        obj["apiVersion"] = Value::String(res.api_version());
        obj["kind"] = Value::String(res.kind.to_owned());
        let Some(meta) = metadata_mut(obj) else {
            return Err("the body must be a JSON object".into());
        };
        if let Some(name) = name {
            match meta.get("name").and_then(Value::as_str) {
                Some(n) if n != name => {
                    return Err(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ));
                }
                _ => {
                    meta.insert("name".into(), Value::String(name.to_owned()));
                }
            }
        }
        if meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            return Err("name or generateName is required".into());
        }
        if res.namespaced {
            let body_ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            let ns = match (ns, body_ns) {
                (Some(path), Some(body)) if path != body => {
                    return Err(
                        "the namespace of the provided object does not match the namespace sent on the request"
                            .into(),
                    );
                }
                (Some(ns), _) | (None, Some(ns)) => ns.to_owned(),
                (None, None) => "default".to_owned(),
            };
            meta.insert("namespace".into(), Value::String(ns));
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    // --- API requests

    fn list(&self, res: &Resource, ns: Option<&str>, q: &Query, meta_only: bool) -> Reply {
        let filter = match Filter::new(ns, q) {
            Ok(f) => f,
            Err(e) => return bad_request(&e),
        };
        let limit = q
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|&l| l > 0);
        let (snapshot, after) = match q.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => match decode_continue(token) {
                Some((rv, key)) => (rv, Some(key)),
                None => return bad_request("continue key is not valid"),
            },
            None => match (q.get("resourceVersion"), q.get("resourceVersionMatch")) {
                (Some(rv), Some("Exact")) => match rv.parse::<u64>() {
                    Ok(rv) => (rv.min(self.rv), None),
                    Err(_) => return bad_request("resourceVersion: Invalid value"),
                },
                _ => (self.rv, None),
            },
        };
        let Some(state) = self.state_at(res, snapshot) else {
            let message = if after.is_some() {
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter."
                    .to_owned()
            } else {
                format!("too old resource version: {snapshot} ({})", self.compacted)
            };
            return failure(StatusCode::GONE, "Expired", &message);
        };
        let lower = match &after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut remaining = 0usize;
        for (key, obj) in state.range::<ObjKey, _>((lower, Bound::Unbounded)) {
            if !filter.matches(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(view(res, obj, meta_only));
            last = Some(key);
        }
        let mut list_meta = json!({"resourceVersion": snapshot.to_string()});
        if remaining > 0
            && let Some((ns, name)) = last
        {
            list_meta["continue"] = Value::String(encode_continue(snapshot, ns, name));
            if filter.labels.is_empty() && filter.fields.is_empty() {
                list_meta["remainingItemCount"] = json!(remaining);
            }
        }
        let (kind, api_version) = if meta_only {
            (
                "PartialObjectMetadataList".to_owned(),
                "meta.k8s.io/v1".to_owned(),
            )
        } else {
            (format!("{}List", res.kind), res.api_version())
        };
        reply(
            StatusCode::OK,
            json!({"kind": kind, "apiVersion": api_version, "metadata": list_meta, "items": items}),
        )
    }

    fn watch(&mut self, res: &Resource, ns: Option<&str>, q: &Query, meta_only: bool) -> Reply {
        let filter = match Filter::new(ns, q) {
            Ok(f) => f,
            Err(e) => return bad_request(&e),
        };
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|&t| t > 0)
            .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
        let bookmarks = q.get("allowWatchBookmarks") == Some("true");
        let initial = q.get("sendInitialEvents") == Some("true");
        let rv = q.get("resourceVersion").unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel();
        if initial || rv.is_empty() || rv == "0" {
            // No version (most recent) or "0" (any): synthetic ADDED events for the current
            // state, then live events. Streaming lists end the initial state with a bookmark.
            for obj in self
                .objects
                .get(&res.key())
                .into_iter()
                .flat_map(|m| m.values())
            {
                if filter.matches(obj) {
                    let _ = tx.send(event_line("ADDED", &view(res, obj, meta_only)));
                }
            }
            if initial {
                let bookmark = bookmark_object(res, self.rv, true);
                let _ = tx.send(event_line("BOOKMARK", &view(res, &bookmark, meta_only)));
            }
        } else {
            let Ok(from) = rv.parse::<u64>() else {
                return bad_request(&format!("resourceVersion: Invalid value: \"{rv}\""));
            };
            if from < self.compacted {
                let status = status_object(
                    StatusCode::GONE,
                    "Expired",
                    &format!("too old resource version: {from} ({})", self.compacted),
                );
                let _ = tx.send(event_line("ERROR", &status));
                return Reply::Watch(rx, timeout);
            }
            let key = res.key();
            for change in self.history.iter().filter(|c| c.key == key && c.rv > from) {
                if let Some((kind, obj)) = translate(&filter, change) {
                    let _ = tx.send(event_line(kind, &view(res, &obj, meta_only)));
                }
            }
        }
        self.watchers.push(Watcher {
            key: res.key(),
            resource: *res,
            filter,
            bookmarks,
            meta_only,
            tx,
        });
        Reply::Watch(rx, timeout)
    }

    fn get_reply(&self, res: &Resource, key: &ObjKey, meta_only: bool) -> Reply {
        match self.get(res, key) {
            Some(obj) => reply(StatusCode::OK, view(res, obj, meta_only)),
            None => not_found(res, &key.1),
        }
    }

    fn create(&mut self, res: &Resource, ns: Option<&str>, body: &[u8]) -> Reply {
        let mut obj: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return bad_request(&format!("the body is not JSON: {e}")),
        };
        if let Err(e) = Store::normalize(res, &mut obj, ns, None) {
            return bad_request(&e);
        }
        let key = res.obj_key(meta_str(&obj, "namespace"), meta_str(&obj, "name"));
        if self.get(res, &key).is_some() {
            let mut status = status_object(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{}\" already exists", res.qualified(), key.1),
            );
            status["details"] = json!({"name": key.1, "group": res.group, "kind": res.plural});
            return reply(StatusCode::CONFLICT, status);
        }
        if res.status_subresource
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if let Some(meta) = metadata_mut(&mut obj) {
            for field in ["uid", "resourceVersion", "generation", "creationTimestamp"] {
                meta.remove(field);
            }
        }
        let (obj, _) = self.put(res, obj);
        reply(StatusCode::CREATED, view(res, &obj, false))
    }

    /// `PATCH` of an object or its status: every patch type is applied as an RFC 7386 merge
    /// patch (the body must be JSON).
    fn patch(
        &mut self,
        res: &Resource,
        key: &ObjKey,
        status: bool,
        content_type: &str,
        body: &[u8],
    ) -> Reply {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let apply = media == "application/apply-patch+yaml";
        if !apply
            && media != "application/merge-patch+json"
            && media != "application/strategic-merge-patch+json"
        {
            return failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                &format!(
                    "the fake API server does not support patches of type {content_type:?} \
                     (merge, strategic merge and JSON apply patches only)"
                ),
            );
        }
        let patch: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return bad_request("the patch must be a JSON object"),
            Err(e) => {
                return bad_request(&format!(
                    "the fake API server only understands JSON patch bodies: {e}"
                ));
            }
        };
        let ns = Some(key.0.as_str()).filter(|_| res.namespaced);
        let Some(old) = self.get(res, key).cloned() else {
            if apply && !status {
                // Server-side apply creates missing objects.
                let mut obj = patch;
                if let Err(e) = Store::normalize(res, &mut obj, ns, Some(&key.1)) {
                    return bad_request(&e);
                }
                let (obj, _) = self.put(res, obj);
                return reply(StatusCode::CREATED, view(res, &obj, false));
            }
            return not_found(res, &key.1);
        };
        let precondition = patch
            .get("metadata")
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty());
        if let Some(rv) = precondition
            && rv != meta_str(&old, "resourceVersion")
        {
            return conflict(res, &key.1);
        }
        let mut merged = old.clone();
        merge_patch(&mut merged, &patch);
        self.update(res, key, old, merged, status)
    }

    /// `PUT` of an object or its status.
    fn replace(&mut self, res: &Resource, key: &ObjKey, status: bool, body: &[u8]) -> Reply {
        let new: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return bad_request("the body must be a JSON object"),
            Err(e) => return bad_request(&format!("the body is not JSON: {e}")),
        };
        let Some(old) = self.get(res, key).cloned() else {
            return not_found(res, &key.1);
        };
        let rv = meta_str(&new, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return conflict(res, &key.1);
        }
        self.update(res, key, old, new, status)
    }

    /// Stores `new` over `old`: for a status write only its `status` counts, for an object
    /// write of a resource with a status subresource its `status` is ignored.
    fn update(
        &mut self,
        res: &Resource,
        key: &ObjKey,
        old: Value,
        mut new: Value,
        status: bool,
    ) -> Reply {
        if status {
            let mut obj = old;
            match (obj.as_object_mut(), new.get("status")) {
                (Some(o), Some(s)) => {
                    o.insert("status".into(), s.clone());
                }
                (Some(o), None) => {
                    o.remove("status");
                }
                (None, _) => {}
            }
            new = obj;
        } else {
            let ns = Some(key.0.as_str()).filter(|_| res.namespaced);
            if let Err(e) = Store::normalize(res, &mut new, ns, Some(&key.1)) {
                return bad_request(&e);
            }
            if res.status_subresource
                && let Some(o) = new.as_object_mut()
            {
                match old.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
        }
        let (obj, _) = self.put(res, new);
        reply(StatusCode::OK, view(res, &obj, false))
    }

    fn delete_reply(&mut self, res: &Resource, key: &ObjKey) -> Reply {
        match self.remove(res, key) {
            Some(obj) => reply(StatusCode::OK, view(res, &obj, false)),
            None => not_found(res, &key.1),
        }
    }

    fn bookmark(&mut self) -> usize {
        let rv = self.rv;
        let mut sent = 0;
        self.watchers.retain(|w| {
            if !w.bookmarks {
                return !w.tx.is_closed();
            }
            let bookmark = bookmark_object(&w.resource, rv, false);
            let ok =
                w.tx.send(event_line(
                    "BOOKMARK",
                    &view(&w.resource, &bookmark, w.meta_only),
                ))
                .is_ok();
            sent += usize::from(ok);
            ok
        });
        sent
    }
}

fn conflict(res: &Resource, name: &str) -> Reply {
    let mut status = status_object(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            res.qualified()
        ),
    );
    status["details"] = json!({"name": name, "group": res.group, "kind": res.plural});
    reply(StatusCode::CONFLICT, status)
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(k);
            } else {
                merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    format!("{rv}|{ns}|{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(u64, ObjKey)> {
    let bytes = token.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let raw: Option<Vec<u8>> = bytes
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect();
    let text = String::from_utf8(raw?).ok()?;
    let mut parts = text.splitn(3, '|');
    let rv = parts.next()?.parse().ok()?;
    let ns = parts.next()?.to_owned();
    let name = parts.next()?.to_owned();
    Some((rv, (ns, name)))
}

// ---------------------------------------------------------------------------------------------
// Selectors

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelReq {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        match self {
            LabelReq::Eq(k, v) => get(k) == Some(v),
            LabelReq::Ne(k, v) => get(k) != Some(v),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, set) => get(k).is_some_and(|v| set.iter().any(|s| s == v)),
            LabelReq::NotIn(k, set) => !get(k).is_some_and(|v| set.iter().any(|s| s == v)),
        }
    }
}

/// Splits a selector at the commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Parses a label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
/// `k notin (a,b)`, joined by commas.
fn parse_labels(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut reqs = Vec::new();
    if s.trim().is_empty() {
        return Ok(reqs);
    }
    for term in split_terms(s) {
        let t = term.trim();
        let bad = || format!("unable to parse requirement: {t:?} in labelSelector {s:?}");
        let req = if let Some(open) = t.find('(') {
            let close = t.rfind(')').filter(|&c| c > open).ok_or_else(bad)?;
            let mut head = t[..open].split_whitespace();
            let (Some(key), Some(op), None) = (head.next(), head.next(), head.next()) else {
                return Err(bad());
            };
            let set: Vec<String> = t[open + 1..close]
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            match op {
                "in" => LabelReq::In(key.to_owned(), set),
                "notin" => LabelReq::NotIn(key.to_owned(), set),
                _ => return Err(bad()),
            }
        } else if let Some(k) = t.strip_prefix('!') {
            LabelReq::NotExists(k.trim().to_owned())
        } else if let Some((k, v)) = t.split_once("!=") {
            LabelReq::Ne(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned())
        } else {
            LabelReq::Exists(t.to_owned())
        };
        let key = match &req {
            LabelReq::Eq(k, _)
            | LabelReq::Ne(k, _)
            | LabelReq::Exists(k)
            | LabelReq::NotExists(k)
            | LabelReq::In(k, _)
            | LabelReq::NotIn(k, _) => k,
        };
        if !valid_key(key) {
            return Err(bad());
        }
        reqs.push(req);
    }
    Ok(reqs)
}

/// One requirement of a field selector: a dotted path (`metadata.name`, `spec.type`...),
/// equal or not to a value. A missing field reads as `""`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldReq {
    path: String,
    value: String,
    equal: bool,
}

impl FieldReq {
    fn matches(&self, obj: &Value) -> bool {
        let mut cur = Some(obj);
        for part in self.path.split('.') {
            cur = cur.and_then(|v| v.get(part));
        }
        let actual = match cur {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        (actual == self.value) == self.equal
    }
}

fn parse_fields(s: &str) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    if s.trim().is_empty() {
        return Ok(reqs);
    }
    for term in s.split(',') {
        let t = term.trim();
        let (path, value, equal) = if let Some((k, v)) = t.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            (k, v, true)
        } else {
            return Err(format!("invalid selector: {t:?} in fieldSelector {s:?}"));
        };
        let path = path.trim();
        if !valid_key(path) {
            return Err(format!(
                "invalid field path {path:?} in fieldSelector {s:?}"
            ));
        }
        reqs.push(FieldReq {
            path: path.to_owned(),
            value: value.trim().to_owned(),
            equal,
        });
    }
    Ok(reqs)
}

/// What a list or watch selects: a namespace (from the path) and selectors.
#[derive(Clone, Debug, Default)]
struct Filter {
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    fn new(namespace: Option<&str>, q: &Query) -> Result<Filter, String> {
        Ok(Filter {
            namespace: namespace.map(str::to_owned),
            labels: parse_labels(q.get("labelSelector").unwrap_or_default())?,
            fields: parse_fields(q.get("fieldSelector").unwrap_or_default())?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && meta_str(obj, "namespace") != ns
        {
            return false;
        }
        let labels = metadata(obj)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.labels.iter().all(|r| r.matches(labels)) && self.fields.iter().all(|r| r.matches(obj))
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A parsed query string (`?&a=1&b=x%3Dy`, the way kube-rs writes them).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
            .collect();
        Query(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes `%XX` escapes (and `+` as a space, in query strings).
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        if let Some(e) = escaped {
            out.push(e);
            i += 3;
            continue;
        }
        out.push(if b == b'+' && plus_is_space { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response body: a whole document, or a watch stream that ends when the server drops its
/// sender ([`FakeApiServer::close_watches`]) or at its deadline (`timeoutSeconds`).
enum ApiBody {
    Full(Option<Bytes>),
    Watch {
        rx: mpsc::UnboundedReceiver<Bytes>,
        deadline: Pin<Box<Sleep>>,
    },
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ApiBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ApiBody::Watch { rx, deadline } => {
                if let Poll::Ready(line) = rx.poll_recv(cx) {
                    return Poll::Ready(line.map(|l| Ok(Frame::data(l))));
                }
                if deadline.as_mut().poll(cx).is_ready() {
                    rx.close();
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ApiBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ApiBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ApiBody::Watch { .. } => SizeHint::default(),
        }
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response<ApiBody> {
    let mut text = body.to_string();
    text.push('\n');
    let mut response = Response::new(ApiBody::Full(Some(Bytes::from(text))));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn into_response(reply: Reply) -> Response<ApiBody> {
    match reply {
        Reply::Json(code, body) => json_response(code, &body),
        Reply::Watch(rx, timeout) => {
            let mut response = Response::new(ApiBody::Watch {
                rx,
                deadline: Box::pin(tokio::time::sleep(timeout)),
            });
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server

#[derive(Default)]
struct Tasks {
    accept: Option<JoinHandle<()>>,
    conns: Vec<JoinHandle<()>>,
    down: bool,
}

struct Shared {
    store: Mutex<Store>,
    tasks: Mutex<Tasks>,
    token: String,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    ca_pem: String,
    ca_der: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn tasks(&self) -> MutexGuard<'_, Tasks> {
        lock(&self.tasks)
    }
}

/// Stops the server when the last handle is dropped.
struct Guard(Arc<Shared>);

impl Drop for Guard {
    fn drop(&mut self) {
        let mut tasks = self.0.tasks();
        tasks.down = true;
        if let Some(accept) = tasks.accept.take() {
            accept.abort();
        }
        for conn in tasks.conns.drain(..) {
            conn.abort();
        }
        drop(tasks);
        self.0.store().watchers.clear();
    }
}

/// A fake Kubernetes API server on 127.0.0.1 (see the [module documentation](self)).
///
/// Cheap to clone: clones share the server, which stops when the last one is dropped.
///
/// What kube-rs 4.2's `watcher` (default `watcher::Config`) sends, all answered here:
/// - `GET PATH?&limit=500` (plus `labelSelector`/`fieldSelector`), then
///   `GET PATH?&limit=500&continue=TOKEN` while the list has a `continue` token;
///   with `any_semantic()`, `resourceVersion=0&resourceVersionMatch=NotOlderThan` is added
///   only when there is no limit;
/// - `GET PATH?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=RV`
///   with the list's (or last event's or bookmark's) resourceVersion; when the stream ends it
///   watches again from the last version it saw; on an `ERROR` event with code 410 it lists
///   again from scratch.
#[derive(Clone)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

impl FakeApiServer {
    /// Starts a server on a free port of 127.0.0.1, on the current tokio runtime, with a new
    /// CA, certificate and token. Every [`Resource::ALL`] is served, with no objects.
    pub async fn start() -> io::Result<FakeApiServer> {
        let (ca_pem, ca_der, config) = tls_config().map_err(io::Error::other)?;
        let listener = bind("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
        let addr = listener.local_addr()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "gatehouse-fake-{:x}-{}",
            nanos & 0xffff_ffff_ffff,
            SERVERS.fetch_add(1, SeqCst)
        );
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            tasks: Mutex::new(Tasks::default()),
            token,
            addr,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem,
            ca_der,
        });
        let accept = tokio::spawn(accept_loop(shared.clone(), listener));
        shared.tasks().accept = Some(accept);
        Ok(FakeApiServer {
            _guard: Arc::new(Guard(shared.clone())),
            shared,
        })
    }

    /// The address the server listens on (the same across [`FakeApiServer::set_down`]).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    /// The bearer token requests must carry.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The CA certificate (PEM) that signed the server's certificate (names `127.0.0.1`,
    /// `localhost`, `kubernetes`, `kubernetes.default.svc`).
    pub fn ca_pem(&self) -> &str {
        &self.shared.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.shared.ca_der
    }

    /// A kubeconfig for this server: cluster `fake` (server [`FakeApiServer::url`],
    /// `certificate-authority-data`), user `fake-user` (`token`), context `fake` (namespace
    /// `default`), the current context.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  \
               cluster:\n    \
                 server: {url}\n    \
                 certificate-authority-data: {ca}\n\
             users:\n\
             - name: fake-user\n  \
               user:\n    \
                 token: {token}\n\
             contexts:\n\
             - name: fake\n  \
               context:\n    \
                 cluster: fake\n    \
                 user: fake-user\n    \
                 namespace: default\n\
             current-context: fake\n\
             preferences: {{}}\n",
            url = self.url(),
            ca = base64(self.shared.ca_pem.as_bytes()),
            token = self.shared.token,
        )
    }

    /// Writes [`FakeApiServer::kubeconfig`] to `path` (for `KUBECONFIG`, or kube-rs
    /// `Kubeconfig::read_from`).
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Serves `resource` from now on (a custom resource, say).
    pub fn register(&self, resource: Resource) {
        let mut store = self.shared.store();
        if !store.resources.contains(&resource) {
            store.resources.push(resource);
        }
    }

    /// Stops serving `resource`, like a CRD that is not installed: its paths answer 404 and
    /// it leaves discovery. Its objects are kept (served again after
    /// [`FakeApiServer::register`]); open watches on it continue.
    pub fn unregister(&self, resource: &Resource) {
        self.shared.store().resources.retain(|r| r != resource);
    }

    /// Creates or replaces an object (by namespace and name), emitting `ADDED` or `MODIFIED`
    /// to the watches that select it, and returns the stored object.
    ///
    /// `apiVersion` and `kind` are set from `resource`; a namespaced object without a
    /// namespace goes to `default`; a namespace on a cluster-scoped object is dropped. The
    /// server sets `uid` (unless given), `creationTimestamp`, `generation` (1, bumped when
    /// anything but metadata and status changes) and `resourceVersion`. Replacing an object
    /// with an identical one changes nothing and emits nothing, like a real server. The whole
    /// object is stored, status included.
    ///
    /// # Panics
    ///
    /// If `object` is not a JSON object with `metadata.name`.
    pub fn apply(&self, resource: &Resource, mut object: Value) -> Value {
        if let Err(e) = Store::normalize(resource, &mut object, None, None) {
            panic!("FakeApiServer::apply({}): {e}: {object}", resource.kind);
        }
        let stored = self.shared.store().put(resource, object).0;
        view(resource, &stored, false)
    }

    /// Deletes an object, emitting `DELETED`, and returns its last state (at the deletion's
    /// resourceVersion). `namespace` is ignored for cluster-scoped resources.
    pub fn delete(&self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = resource.obj_key(namespace, name);
        let deleted = self.shared.store().remove(resource, &key)?;
        Some(view(resource, &deleted, false))
    }

    /// An object as stored now. `namespace` is ignored for cluster-scoped resources.
    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = resource.obj_key(namespace, name);
        let store = self.shared.store();
        Some(view(resource, store.get(resource, &key)?, false))
    }

    /// Every object of `resource`, ordered by namespace and name.
    pub fn list(&self, resource: &Resource) -> Vec<Value> {
        self.shared
            .store()
            .objects
            .get(&resource.key())
            .map(|m| m.values().map(|o| view(resource, o, false)).collect())
            .unwrap_or_default()
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    /// Every write request received so far (`PATCH`, `PUT`, `POST`, `DELETE`), in order.
    pub fn writes(&self) -> Vec<WriteRequest> {
        self.shared.store().writes.clone()
    }

    /// Every request received so far, in order, as `METHOD PATH?QUERY` with the query as
    /// sent (percent-encoded; kube-rs queries start with `?&`), e.g.
    /// `GET /api/v1/services?&limit=500`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.store().requests.clone()
    }

    /// Forgets the requests and writes logged so far.
    pub fn clear_logs(&self) {
        let mut store = self.shared.store();
        store.requests.clear();
        store.writes.clear();
    }

    /// How many watches on `resource` are open.
    pub fn open_watches(&self, resource: &Resource) -> usize {
        let mut store = self.shared.store();
        store.watchers.retain(|w| !w.tx.is_closed());
        store
            .watchers
            .iter()
            .filter(|w| w.key == resource.key())
            .count()
    }

    /// Ends every open watch stream normally (after the events already queued), as an API
    /// server does at its watch timeout or on restart: clients must watch again. Returns how
    /// many were open.
    pub fn close_watches(&self) -> usize {
        let mut store = self.shared.store();
        let open = store.watchers.iter().filter(|w| !w.tx.is_closed()).count();
        store.watchers.clear();
        open
    }

    /// Moves the compaction point to the current resourceVersion and forgets the history
    /// before it: a watch from an older version then gets an `ERROR` event with a 410
    /// `Expired` status (and ends), and so does a list continued with an older token.
    pub fn compact(&self) {
        let mut store = self.shared.store();
        let rv = store.rv;
        store.compacted = rv;
        store.history.retain(|c| c.rv > rv);
    }

    /// Sends a `BOOKMARK` at the current resourceVersion on every open watch that asked for
    /// bookmarks (`allowWatchBookmarks=true`). Returns how many were sent.
    pub fn bookmark(&self) -> usize {
        self.shared.store().bookmark()
    }

    /// `true`: stops listening and drops every open connection and watch (clients see
    /// refused connections and broken streams). `false`: listens again on the same port.
    pub async fn set_down(&self, down: bool) -> io::Result<()> {
        if down {
            let (accept, conns) = {
                let mut tasks = self.shared.tasks();
                tasks.down = true;
                (tasks.accept.take(), std::mem::take(&mut tasks.conns))
            };
            if let Some(accept) = accept {
                accept.abort();
                let _ = accept.await;
            }
            self.shared.store().watchers.clear();
            for conn in &conns {
                conn.abort();
            }
            for conn in conns {
                let _ = conn.await;
            }
            Ok(())
        } else {
            if !self.shared.tasks().down {
                return Ok(());
            }
            let listener = bind(self.shared.addr)?;
            let mut tasks = self.shared.tasks();
            tasks.down = false;
            tasks.accept = Some(tokio::spawn(accept_loop(self.shared.clone(), listener)));
            Ok(())
        }
    }

    /// Whether the server is down ([`FakeApiServer::set_down`]).
    pub fn is_down(&self) -> bool {
        self.shared.tasks().down
    }

    /// Waits until `condition` holds (checked every 10 ms), for at most `timeout`. Returns
    /// whether it did.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&FakeApiServer) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if condition(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until at least `count` watches on `resource` are open.
    pub async fn wait_for_watches(
        &self,
        resource: &Resource,
        count: usize,
        timeout: Duration,
    ) -> bool {
        self.wait_for(timeout, |s| s.open_watches(resource) >= count)
            .await
    }

    /// Waits until a request logged after the first `skip` ones satisfies `matches`, and
    /// returns it (`None` on timeout). With `skip = server.requests().len()` taken before an
    /// action, this waits for a request caused by it.
    pub async fn wait_for_request(
        &self,
        skip: usize,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let mut found = None;
        self.wait_for(timeout, |s| {
            let store = s.shared.store();
            found = store
                .requests
                .iter()
                .skip(skip)
                .find(|r| matches(r))
                .cloned();
            found.is_some()
        })
        .await;
        found
    }

    /// Waits until the stored object satisfies `condition` (`None` when absent), and returns
    /// it (`None` on timeout).
    pub async fn wait_for_object(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        timeout: Duration,
        mut condition: impl FnMut(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let mut found = None;
        self.wait_for(timeout, |s| {
            let obj = s.get(resource, namespace, name);
            let ok = condition(obj.as_ref());
            if ok {
                found = obj;
            }
            ok
        })
        .await;
        found
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// A new CA, and a server config with a certificate it signed.
fn tls_config() -> Result<(String, Vec<u8>, ServerConfig), String> {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg).map_err(|e| format!("CA key: {e}"))?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(
        DnType::CommonName,
        "gatehouse-testkit fake kube-apiserver CA",
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| format!("CA: {e}"))?;

    let key = KeyPair::generate_for(alg).map_err(|e| format!("server key: {e}"))?;
    let names = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default.svc",
    ];
    let mut params = CertificateParams::new(names.map(str::to_owned).to_vec())
        .map_err(|e| format!("server names: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &ca)
        .map_err(|e| format!("server certificate: {e}"))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| format!("server config: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let ca_der: CertificateDer<'static> = ca.der().clone();
    Ok((ca.pem(), ca_der.to_vec(), config))
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // EMFILE and the like: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn = tokio::spawn(serve_connection(shared.clone(), tcp));
        let mut tasks = shared.tasks();
        tasks.conns.retain(|c| !c.is_finished());
        tasks.conns.push(conn);
    }
}

async fn serve_connection(shared: Arc<Shared>, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let handshake =
        tokio::time::timeout(Duration::from_secs(10), shared.acceptor.clone().accept(tcp));
    let Ok(Ok(tls)) = handshake.await else {
        return;
    };
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<ApiBody> {
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    shared.store().requests.push(format!("{method} {target}"));
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorized = header_str(header::AUTHORIZATION)
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == shared.token);
    let content_type = header_str(header::CONTENT_TYPE);
    let meta_only =
        header_str(header::ACCEPT).is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query());
    let body = if method == Method::GET {
        Bytes::new()
    } else {
        match req.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        }
    };

    let reply = if authorized {
        route(
            shared,
            &method,
            &path,
            &query,
            content_type.as_deref().unwrap_or_default(),
            meta_only,
            &body,
        )
    } else {
        failure(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    };
    let response = into_response(reply);
    if method != Method::GET && method != Method::HEAD {
        shared.store().writes.push(WriteRequest {
            method: method.to_string(),
            path: target,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
            status: response.status().as_u16(),
        });
    }
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &Query,
    content_type: &str,
    meta_only: bool,
    body: &[u8],
) -> Reply {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut guard = shared.store();
    let store = &mut *guard;
    match segs.as_slice() {
        ["version"] => reply(
            StatusCode::OK,
            json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-gatehouse-fake",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64",
            }),
        ),
        ["api"] => reply(
            StatusCode::OK,
            json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}
                ],
            }),
        ),
        ["apis"] => {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for r in store.resources.iter().filter(|r| !r.group.is_empty()) {
                let versions = groups.entry(r.group).or_default();
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, vs)| api_group(g, &vs))
                .collect();
            reply(
                StatusCode::OK,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        ["apis", group] => {
            let mut versions: Vec<&str> = Vec::new();
            for r in store.resources.iter().filter(|r| r.group == *group) {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            if versions.is_empty() {
                return page_not_found();
            }
            let mut doc = api_group(group, &versions);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            reply(StatusCode::OK, doc)
        }
        ["api", "v1"] => resource_list(store, "", "v1"),
        ["apis", group, version] => resource_list(store, group, version),
        ["api", "v1", rest @ ..] => resource_request(
            store,
            "",
            "v1",
            rest,
            method,
            query,
            content_type,
            meta_only,
            body,
        ),
        ["apis", group, version, rest @ ..] => resource_request(
            store,
            group,
            version,
            rest,
            method,
            query,
            content_type,
            meta_only,
            body,
        ),
        _ => page_not_found(),
    }
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or_default()})
}

fn resource_list(store: &Store, group: &str, version: &str) -> Reply {
    let verbs = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    let mut resources = Vec::new();
    for r in store
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural, "singularName": r.kind.to_ascii_lowercase(),
            "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs,
        }));
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return page_not_found();
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    reply(
        StatusCode::OK,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    store: &mut Store,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &Method,
    query: &Query,
    content_type: &str,
    meta_only: bool,
    body: &[u8],
) -> Reply {
    // `namespaces/NS/PLURAL...` is a namespaced path, except `namespaces/NAME/status` (the
    // status of a Namespace).
    let (ns, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() && !matches!(tail, ["status"]) => {
            (Some(*ns), tail)
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return page_not_found(),
    };
    let Some(res) = store.find(group, version, plural) else {
        return page_not_found();
    };
    if ns.is_some() && !res.namespaced {
        return page_not_found();
    }
    let Some(name) = name else {
        return match *method {
            Method::GET => {
                let watch = matches!(query.get("watch"), Some("true" | "1"));
                if watch {
                    store.watch(&res, ns, query, meta_only)
                } else {
                    store.list(&res, ns, query, meta_only)
                }
            }
            Method::POST if ns.is_some() || !res.namespaced => store.create(&res, ns, body),
            _ => failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
        };
    };
    if res.namespaced && ns.is_none() {
        return page_not_found();
    }
    let key = res.obj_key(ns.unwrap_or_default(), name);
    let status = match sub {
        None => false,
        Some("status") if res.status_subresource => true,
        Some(_) => return page_not_found(),
    };
    match *method {
        Method::GET => store.get_reply(&res, &key, meta_only),
        Method::PATCH => store.patch(&res, &key, status, content_type, body),
        Method::PUT => store.replace(&res, &key, status, body),
        Method::DELETE if !status => store.delete_reply(&res, &key),
        _ => failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Small encoders

/// Standard base64 with padding (RFC 4648), for `certificate-authority-data` and Secret `data`.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The current time as RFC 3339 UTC, seconds precision (`2025-01-31T12:00:00Z`).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::client::conn::{http1, http2};
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject;
    use std::time::Instant;
    use tokio_rustls::TlsConnector;

    /// How long a test waits for anything.
    const T: Duration = Duration::from_secs(5);

    fn connector(server: &FakeApiServer, alpn: &[u8]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        // The PEM, as a kubeconfig carries it.
        roots
            .add(CertificateDer::from_pem_slice(server.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    }

    fn request(
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1");
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }

    /// One request on a new HTTP/1.1 connection, verified against the server's CA, to
    /// `127.0.0.1` (an IP address SAN).
    async fn send(server: &FakeApiServer, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector(server, b"http/1.1")
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (mut sender, conn) = http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        tokio::time::timeout(T, sender.send_request(req))
            .await
            .unwrap()
            .unwrap()
    }

    async fn json_of(response: Response<Incoming>) -> (u16, Value) {
        let code = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&body).unwrap())
    }

    async fn call(
        server: &FakeApiServer,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let req = request(method, path, Some(server.token()), content_type, body);
        json_of(send(server, req).await).await
    }

    async fn get(server: &FakeApiServer, path: &str) -> (u16, Value) {
        call(server, Method::GET, path, None, "").await
    }

    async fn patch(server: &FakeApiServer, path: &str, ct: &str, body: Value) -> (u16, Value) {
        call(server, Method::PATCH, path, Some(ct), &body.to_string()).await
    }

    fn names(list: &Value) -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let m = &o["metadata"];
                match m["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap()),
                    None => m["name"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }

    fn rv_of(obj: &Value) -> u64 {
        obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A watch stream read line by line.
    struct Watch {
        body: Incoming,
        buf: Vec<u8>,
    }

    impl Watch {
        async fn open(server: &FakeApiServer, path: &str) -> Watch {
            let req = request(Method::GET, path, Some(server.token()), None, "");
            let response = send(server, req).await;
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            Watch {
                body: response.into_body(),
                buf: Vec::new(),
            }
        }

        /// The next event; `None` when the stream ended (cleanly or not). Fails after `T`.
        async fn next(&mut self) -> Option<Value> {
            loop {
                if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=end).collect();
                    return Some(serde_json::from_slice(&line).unwrap());
                }
                let frame = tokio::time::timeout(T, self.body.frame())
                    .await
                    .expect("a watch event or the end of the stream in time");
                match frame {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.buf.extend_from_slice(&data);
                        }
                    }
                    Some(Err(_)) | None => return None,
                }
            }
        }

        async fn next_event(&mut self) -> (String, Value) {
            let event = self
                .next()
                .await
                .expect("an event, not the end of the stream");
            (
                event["type"].as_str().unwrap().to_owned(),
                event["object"].clone(),
            )
        }

        /// Whether nothing arrives for `d`.
        async fn quiet(&mut self, d: Duration) -> bool {
            tokio::time::timeout(d, self.next()).await.is_err()
        }
    }

    fn svc(ns: &str, name: &str, labels: Value) -> Value {
        json!({
            "metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}]},
        })
    }

    fn watch_path(base: &str, rv: u64, extra: &str) -> String {
        format!(
            "{base}?&watch=true&timeoutSeconds=290{extra}&allowWatchBookmarks=true&resourceVersion={rv}"
        )
    }

    #[tokio::test]
    async fn requests_need_the_bearer_token() {
        let server = FakeApiServer::start().await.unwrap();
        for token in [None, Some("wrong")] {
            let req = request(Method::GET, "/api/v1/services", token, None, "");
            let (code, status) = json_of(send(&server, req).await).await;
            assert_eq!(code, 401);
            assert_eq!(status["kind"], "Status");
            assert_eq!(status["status"], "Failure");
            assert_eq!(status["reason"], "Unauthorized");
            assert_eq!(status["code"], 401);
        }
        let (code, list) = get(&server, "/api/v1/services").await;
        assert_eq!(code, 200, "{list}");
        assert_eq!(list["kind"], "ServiceList");
        assert_eq!(list["items"], json!([]));
        // An empty server is at resourceVersion 1, not the special "0".
        assert_eq!(list["metadata"]["resourceVersion"], "1");
        assert_eq!(
            server.requests(),
            vec!["GET /api/v1/services"; 3],
            "every request is logged, authorized or not"
        );
        assert!(server.writes().is_empty());
    }

    #[tokio::test]
    async fn lists_get_and_not_found() {
        let server = FakeApiServer::start().await.unwrap();
        server.apply(&Resource::SERVICE, svc("b", "web", json!({})));
        server.apply(&Resource::SERVICE, svc("a", "web", json!({})));
        server.apply(&Resource::SERVICE, svc("a", "api", json!({})));
        server.apply(
            &Resource::NODE,
            json!({"metadata": {"name": "n1", "namespace": "x"}}),
        );
        let stored = server.get(&Resource::SERVICE, "a", "web").unwrap();
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["kind"], "Service");
        assert_eq!(stored["metadata"]["generation"], 1);
        assert!(stored["metadata"]["uid"].as_str().unwrap().len() == 36);
        let ts = stored["metadata"]["creationTimestamp"].as_str().unwrap();
        assert!(
            ts.len() == 20 && ts.ends_with('Z') && ts.starts_with("20"),
            "{ts}"
        );
        assert_eq!(rv_of(&stored), 3);

        let (code, list) = get(&server, "/api/v1/services").await;
        assert_eq!(code, 200);
        assert_eq!(names(&list), ["a/api", "a/web", "b/web"]);
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["metadata"]["resourceVersion"], "5");
        assert_eq!(list["metadata"].get("continue"), None);
        assert_eq!(list["items"][1], stored);

        let (_, list) = get(&server, "/api/v1/namespaces/a/services").await;
        assert_eq!(names(&list), ["a/api", "a/web"]);
        let (_, nodes) = get(&server, "/api/v1/nodes").await;
        assert_eq!(
            names(&nodes),
            ["n1"],
            "no namespace on cluster-scoped objects"
        );
        assert_eq!(nodes["kind"], "NodeList");

        let (code, obj) = get(&server, "/api/v1/namespaces/a/services/web").await;
        assert_eq!((code, &obj), (200, &stored));
        let (code, node) = get(&server, "/api/v1/nodes/n1").await;
        assert_eq!((code, node["metadata"]["name"].as_str()), (200, Some("n1")));

        let (code, status) = get(&server, "/api/v1/namespaces/b/services/api").await;
        assert_eq!(code, 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["message"], "services \"api\" not found");
        let path = "/apis/gateway.networking.k8s.io/v1/namespaces/a/gateways/gw";
        let (code, status) = get(&server, path).await;
        assert_eq!(code, 404);
        assert_eq!(
            status["message"],
            "gateways.gateway.networking.k8s.io \"gw\" not found"
        );
        let (_, list) = get(&server, "/apis/gateway.networking.k8s.io/v1/gateways").await;
        assert_eq!(list["kind"], "GatewayList");
        assert_eq!(list["apiVersion"], "gateway.networking.k8s.io/v1");
        for bad in [
            "/api/v1/widgets",
            "/api/v1/namespaces/a/nodes",
            "/apis/x.io/v1/things",
        ] {
            assert_eq!(get(&server, bad).await.0, 404, "{bad}");
        }
    }

    #[tokio::test]
    async fn pages_come_from_one_consistent_snapshot() {
        let server = FakeApiServer::start().await.unwrap();
        for name in ["s1", "s2", "s3", "s4", "s5"] {
            server.apply(&Resource::SERVICE, svc("default", name, json!({})));
        }
        let s3_before = server.get(&Resource::SERVICE, "default", "s3").unwrap();
        let (code, page1) = get(&server, "/api/v1/services?&limit=2").await;
        assert_eq!(code, 200);
        assert_eq!(names(&page1), ["default/s1", "default/s2"]);
        let rv = page1["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(page1["metadata"]["remainingItemCount"], 3);
        let token = page1["metadata"]["continue"].as_str().unwrap().to_owned();

        // Changes between pages do not show in later pages of the same list.
        let mut s3 = svc("default", "s3", json!({"changed": "yes"}));
        s3["spec"]["ports"][0]["port"] = json!(81);
        server.apply(&Resource::SERVICE, s3);
        server.delete(&Resource::SERVICE, "default", "s4");
        server.apply(&Resource::SERVICE, svc("default", "s0", json!({})));
        server.apply(&Resource::SERVICE, svc("default", "s6", json!({})));

        let (code, page2) = get(
            &server,
            &format!("/api/v1/services?&limit=2&continue={token}"),
        )
        .await;
        assert_eq!(code, 200, "{page2}");
        assert_eq!(names(&page2), ["default/s3", "default/s4"]);
        assert_eq!(page2["items"][0], s3_before);
        assert_eq!(page2["metadata"]["resourceVersion"], rv.as_str());
        let token = page2["metadata"]["continue"].as_str().unwrap().to_owned();
        let (_, page3) = get(
            &server,
            &format!("/api/v1/services?&limit=2&continue={token}"),
        )
        .await;
        assert_eq!(names(&page3), ["default/s5"]);
        assert_eq!(page3["metadata"].get("continue"), None);

        // A fresh list sees the changes.
        let (_, all) = get(&server, "/api/v1/services?&limit=500").await;
        assert_eq!(
            names(&all),
            [
                "default/s0",
                "default/s1",
                "default/s2",
                "default/s3",
                "default/s5",
                "default/s6"
            ]
        );
        // Exact reads the past too.
        let (_, past) = get(
            &server,
            &format!("/api/v1/services?resourceVersion={rv}&resourceVersionMatch=Exact"),
        )
        .await;
        assert_eq!(names(&past).len(), 5);
        // resourceVersion=0 (any) is accepted.
        let (code, _) = get(
            &server,
            "/api/v1/services?&resourceVersion=0&resourceVersionMatch=NotOlderThan",
        )
        .await;
        assert_eq!(code, 200);

        // With a selector there is no remainingItemCount.
        let (_, page) = get(
            &server,
            "/api/v1/services?&labelSelector=changed%21%3Dno&limit=1",
        )
        .await;
        assert_eq!(names(&page), ["default/s0"]);
        assert!(page["metadata"]["continue"].is_string());
        assert_eq!(page["metadata"].get("remainingItemCount"), None);

        // After a compaction, an old continue token is 410 Expired.
        server.compact();
        let (code, status) = get(
            &server,
            &format!("/api/v1/services?&limit=2&continue={token}"),
        )
        .await;
        assert_eq!(code, 410);
        assert_eq!(status["reason"], "Expired");
        assert_eq!(get(&server, "/api/v1/services?&continue=zz").await.0, 400);
    }

    #[tokio::test]
    async fn label_and_field_selectors() {
        let server = FakeApiServer::start().await.unwrap();
        server.apply(
            &Resource::SERVICE,
            svc("a", "web", json!({"app": "web", "tier": "front"})),
        );
        server.apply(&Resource::SERVICE, svc("a", "api", json!({"app": "api"})));
        server.apply(
            &Resource::SERVICE,
            svc("b", "db", json!({"app": "db", "tier": "back"})),
        );
        server.apply(&Resource::SERVICE, svc("b", "bare", json!({})));
        let cases = [
            ("app%3Dweb", vec!["a/web"]),
            ("app%3D%3Dweb", vec!["a/web"]),
            ("app%21%3Dweb", vec!["a/api", "b/bare", "b/db"]),
            ("tier", vec!["a/web", "b/db"]),
            ("%21tier", vec!["a/api", "b/bare"]),
            ("app%2Ctier%3Dback", vec!["b/db"]),
            ("app+in+%28web%2Capi%29", vec!["a/api", "a/web"]),
            ("app+notin+%28web%2Capi%29", vec!["b/bare", "b/db"]),
            ("app+in+%28web%2Capi%29%2Ctier", vec!["a/web"]),
        ];
        for (selector, want) in cases {
            let (code, list) = get(
                &server,
                &format!("/api/v1/services?&labelSelector={selector}"),
            )
            .await;
            assert_eq!(code, 200, "{selector}: {list}");
            assert_eq!(names(&list), want, "{selector}");
        }
        let fields = [
            ("metadata.name%3Dweb", vec!["a/web"]),
            ("metadata.namespace%3Db", vec!["b/bare", "b/db"]),
            (
                "metadata.namespace%21%3Db%2Cmetadata.name%21%3Dweb",
                vec!["a/api"],
            ),
            ("spec.ports%3Dx", vec![]),
        ];
        for (selector, want) in fields {
            let (code, list) = get(
                &server,
                &format!("/api/v1/services?&fieldSelector={selector}"),
            )
            .await;
            assert_eq!(code, 200, "{selector}: {list}");
            assert_eq!(names(&list), want, "{selector}");
        }
        // What the provider asks for TLS Secrets: a top-level field.
        server.apply(
            &Resource::SECRET,
            json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls"}),
        );
        server.apply(
            &Resource::SECRET,
            json!({"metadata": {"name": "opaque"}, "type": "Opaque"}),
        );
        let (_, list) = get(
            &server,
            "/api/v1/secrets?&fieldSelector=type%3Dkubernetes.io%2Ftls",
        )
        .await;
        assert_eq!(names(&list), ["default/tls"]);
        let (_, list) = get(&server, "/api/v1/namespaces/b/services?&labelSelector=app").await;
        assert_eq!(names(&list), ["b/db"]);
        let (code, status) = get(&server, "/api/v1/services?&labelSelector=a+b+c").await;
        assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    }

    #[tokio::test]
    async fn watch_replays_history_then_streams_live_events() {
        let server = FakeApiServer::start().await.unwrap();
        let base = Resource::SERVICE.path(Some("default"));
        assert_eq!(base, "/api/v1/namespaces/default/services");
        let from = server.resource_version();
        server.apply(&Resource::SERVICE, svc("default", "a", json!({})));
        server.apply(&Resource::SERVICE, svc("other", "x", json!({})));
        server.apply(&Resource::SERVICE, svc("default", "a", json!({"v": "2"})));
        server.apply(&Resource::SERVICE, svc("default", "b", json!({})));
        server.delete(&Resource::SERVICE, "default", "a");
        server.apply(&Resource::NODE, json!({"metadata": {"name": "n1"}}));

        let mut watch = Watch::open(&server, &watch_path(&base, from, "")).await;
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (kind, obj) = watch.next_event().await;
            seen.push((
                kind,
                obj["metadata"]["name"].as_str().unwrap().to_owned(),
                rv_of(&obj),
            ));
        }
        let want = [
            ("ADDED", "a", 2),
            ("MODIFIED", "a", 4),
            ("ADDED", "b", 5),
            ("DELETED", "a", 6),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, n, rv)| (k.to_string(), n.to_string(), *rv))
            .collect();
        assert_eq!(seen, want);
        assert!(watch.quiet(Duration::from_millis(200)).await);
        assert_eq!(server.open_watches(&Resource::SERVICE), 1);
        assert_eq!(server.open_watches(&Resource::NODE), 0);

        // Live events, in this namespace only.
        server.apply(&Resource::SERVICE, svc("other", "y", json!({})));
        let c = server.apply(&Resource::SERVICE, svc("default", "c", json!({})));
        let (kind, obj) = watch.next_event().await;
        assert_eq!((kind.as_str(), &obj), ("ADDED", &c));
        assert_eq!(obj["kind"], "Service");
        // Applying the same object again is no change: no event, same version.
        let rv = server.resource_version();
        assert_eq!(
            server.apply(&Resource::SERVICE, svc("default", "c", json!({}))),
            c
        );
        assert_eq!(server.resource_version(), rv);
        assert!(watch.quiet(Duration::from_millis(200)).await);

        // A watch resuming from the last version it saw gets nothing twice.
        let mut resumed = Watch::open(&server, &watch_path(&base, rv, "")).await;
        assert!(resumed.quiet(Duration::from_millis(200)).await);
        server.delete(&Resource::SERVICE, "default", "c");
        for w in [&mut watch, &mut resumed] {
            let (kind, obj) = w.next_event().await;
            assert_eq!((kind.as_str(), rv_of(&obj)), ("DELETED", rv + 1));
        }

        // close_watches ends the streams cleanly.
        assert_eq!(server.close_watches(), 2);
        assert_eq!(watch.next().await, None);
        assert_eq!(resumed.next().await, None);
        assert_eq!(server.open_watches(&Resource::SERVICE), 0);
    }

    #[tokio::test]
    async fn a_selected_watch_sees_objects_enter_and_leave() {
        let server = FakeApiServer::start().await.unwrap();
        let from = server.resource_version();
        let path = watch_path("/api/v1/services", from, "&labelSelector=app%3Dweb");
        let mut watch = Watch::open(&server, &path).await;
        server.apply(&Resource::SERVICE, svc("ns", "s", json!({"app": "other"})));
        assert!(watch.quiet(Duration::from_millis(100)).await);
        server.apply(&Resource::SERVICE, svc("ns", "s", json!({"app": "web"})));
        assert_eq!(watch.next_event().await.0, "ADDED");
        server.apply(
            &Resource::SERVICE,
            svc("ns", "s", json!({"app": "web", "x": "y"})),
        );
        assert_eq!(watch.next_event().await.0, "MODIFIED");
        let left = server.apply(&Resource::SERVICE, svc("ns", "s", json!({"app": "api"})));
        let (kind, obj) = watch.next_event().await;
        assert_eq!(kind, "DELETED");
        assert_eq!(
            obj["metadata"]["labels"]["app"], "web",
            "the last selected state"
        );
        assert_eq!(rv_of(&obj), rv_of(&left));
        server.delete(&Resource::SERVICE, "ns", "s");
        assert!(watch.quiet(Duration::from_millis(100)).await);
        // The same history, replayed.
        let mut replay = Watch::open(&server, &path).await;
        let kinds = [
            replay.next_event().await.0,
            replay.next_event().await.0,
            replay.next_event().await.0,
        ];
        assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
        assert!(replay.quiet(Duration::from_millis(100)).await);
    }

    #[tokio::test]
    async fn watch_without_a_version_starts_with_the_current_state() {
        let server = FakeApiServer::start().await.unwrap();
        server.apply(&Resource::SERVICE, svc("default", "a", json!({})));
        server.apply(&Resource::SERVICE, svc("default", "b", json!({})));
        for rv in ["", "&resourceVersion=0"] {
            let mut watch = Watch::open(&server, &format!("/api/v1/services?watch=1{rv}")).await;
            assert_eq!(watch.next_event().await.0, "ADDED");
            assert_eq!(watch.next_event().await.0, "ADDED");
            assert!(watch.quiet(Duration::from_millis(100)).await);
        }
        // Streaming lists (sendInitialEvents) end the initial state with a bookmark.
        let path = "/api/v1/services?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true\
                    &sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0";
        let mut watch = Watch::open(&server, path).await;
        assert_eq!(watch.next_event().await.0, "ADDED");
        assert_eq!(watch.next_event().await.0, "ADDED");
        let (kind, bookmark) = watch.next_event().await;
        assert_eq!(kind, "BOOKMARK");
        assert_eq!(
            bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        assert_eq!(rv_of(&bookmark), server.resource_version());
    }

    #[tokio::test]
    async fn bookmarks_go_to_the_watches_that_asked() {
        let server = FakeApiServer::start().await.unwrap();
        let rv = server.resource_version();
        let path = Resource::GATEWAY.path(None);
        let mut with = Watch::open(&server, &watch_path(&path, rv, "")).await;
        let without_path = format!("{path}?&watch=true&resourceVersion={rv}");
        let mut without = Watch::open(&server, &without_path).await;
        assert!(server.wait_for_watches(&Resource::GATEWAY, 2, T).await);
        server.apply(&Resource::SERVICE, svc("default", "a", json!({})));
        assert_eq!(server.bookmark(), 1);
        let (kind, bookmark) = with.next_event().await;
        assert_eq!(kind, "BOOKMARK");
        assert_eq!(
            bookmark,
            json!({
                "kind": "Gateway",
                "apiVersion": "gateway.networking.k8s.io/v1",
                "metadata": {"resourceVersion": server.resource_version().to_string()},
            })
        );
        assert!(without.quiet(Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn a_watch_older_than_the_compaction_gets_410_expired() {
        let server = FakeApiServer::start().await.unwrap();
        let old = server.resource_version();
        server.apply(&Resource::SERVICE, svc("default", "a", json!({})));
        server.compact();
        let now = server.resource_version();
        let mut watch = Watch::open(&server, &watch_path("/api/v1/services", old, "")).await;
        let (kind, status) = watch.next_event().await;
        assert_eq!(kind, "ERROR");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 410);
        assert_eq!(status["reason"], "Expired");
        assert_eq!(
            status["message"],
            format!("too old resource version: {old} ({now})")
        );
        assert_eq!(watch.next().await, None, "the stream ends after the error");

        let mut watch = Watch::open(&server, &watch_path("/api/v1/services", now, "")).await;
        server.apply(&Resource::SERVICE, svc("default", "b", json!({})));
        assert_eq!(watch.next_event().await.0, "ADDED");
        assert_eq!(
            get(&server, "/api/v1/services?watch=true&resourceVersion=x")
                .await
                .0,
            400
        );
    }

    #[tokio::test]
    async fn a_watch_ends_after_timeout_seconds() {
        let server = FakeApiServer::start().await.unwrap();
        let start = Instant::now();
        let mut watch = Watch::open(
            &server,
            "/api/v1/nodes?&watch=true&timeoutSeconds=1&resourceVersion=1",
        )
        .await;
        assert_eq!(watch.next().await, None);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(server.open_watches(&Resource::NODE), 0);
    }

    #[tokio::test]
    async fn patches_and_status_writes() {
        let server = FakeApiServer::start().await.unwrap();
        let gw = Resource::GATEWAY;
        server.apply(
            &gw,
            json!({"metadata": {"name": "gw", "namespace": "default"},
                   "spec": {"gatewayClassName": "gatehouse", "listeners": []}}),
        );
        let rv0 = server.resource_version();
        let mut watch = Watch::open(&server, &watch_path(&gw.path(None), rv0, "")).await;
        let path = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/gw";
        let merge = "application/merge-patch+json";

        // A status patch changes the status only (not spec nor generation) and emits MODIFIED.
        let status = json!({"conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 1}]});
        let body = json!({"status": status, "spec": {"gatewayClassName": "evil"}});
        let (code, obj) = patch(&server, &format!("{path}/status"), merge, body.clone()).await;
        assert_eq!(code, 200, "{obj}");
        assert_eq!(obj["status"], status);
        assert_eq!(obj["spec"]["gatewayClassName"], "gatehouse");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(rv_of(&obj), rv0 + 1);
        assert_eq!(server.get(&gw, "default", "gw").unwrap(), obj);
        let (kind, event) = watch.next_event().await;
        assert_eq!((kind.as_str(), &event), ("MODIFIED", &obj));

        // The same patch again changes nothing: same version, no event.
        let (code, again) = patch(&server, &format!("{path}/status"), merge, body).await;
        assert_eq!((code, &again), (200, &obj));
        assert!(watch.quiet(Duration::from_millis(200)).await);

        // A patch of the object ignores status and bumps the generation on spec changes;
        // null deletes (RFC 7386).
        let body = json!({"spec": {"listeners": null, "addresses": [{"value": "10.0.0.1"}]}, "status": null});
        let (code, obj) = patch(
            &server,
            path,
            "application/strategic-merge-patch+json",
            body,
        )
        .await;
        assert_eq!(code, 200, "{obj}");
        assert_eq!(
            obj["spec"],
            json!({"gatewayClassName": "gatehouse", "addresses": [{"value": "10.0.0.1"}]})
        );
        assert_eq!(obj["status"], status);
        assert_eq!(obj["metadata"]["generation"], 2);
        assert_eq!(watch.next_event().await.0, "MODIFIED");

        // Server-side apply (JSON body) merges too, with fieldManager and force in the query.
        let apply = format!("{path}/status?&fieldManager=gatehouse&force=true");
        let body = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                          "metadata": {"name": "gw", "namespace": "default"},
                          "status": {"addresses": [{"value": "10.0.0.1"}]}});
        let (code, obj) = patch(&server, &apply, "application/apply-patch+yaml", body).await;
        assert_eq!(code, 200, "{obj}");
        assert_eq!(obj["status"]["addresses"][0]["value"], "10.0.0.1");
        assert_eq!(obj["status"]["conditions"], status["conditions"]);
        assert_eq!(watch.next_event().await.0, "MODIFIED");

        // PUT status: a stale resourceVersion conflicts, the current one replaces the status.
        let mut put = obj.clone();
        put["status"] = json!({"conditions": []});
        put["metadata"]["resourceVersion"] = json!(rv0.to_string());
        let (code, conflict) = call(
            &server,
            Method::PUT,
            &format!("{path}/status"),
            Some("application/json"),
            &put.to_string(),
        )
        .await;
        assert_eq!((code, conflict["reason"].as_str()), (409, Some("Conflict")));
        put["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
        let (code, replaced) = call(
            &server,
            Method::PUT,
            &format!("{path}/status"),
            Some("application/json"),
            &put.to_string(),
        )
        .await;
        assert_eq!(code, 200, "{replaced}");
        assert_eq!(replaced["status"], json!({"conditions": []}));
        assert_eq!(watch.next_event().await.0, "MODIFIED");

        // Precondition in a merge patch; unsupported patch types; missing objects.
        let stale = json!({"metadata": {"resourceVersion": "1"}, "status": {}});
        assert_eq!(
            patch(&server, &format!("{path}/status"), merge, stale)
                .await
                .0,
            409
        );
        let (code, status415) =
            patch(&server, path, "application/json-patch+json", json!([])).await;
        assert_eq!((code, status415["code"].as_i64()), (415, Some(415)));
        let missing = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/nope/status";
        assert_eq!(
            patch(&server, missing, merge, json!({"status": {}}))
                .await
                .0,
            404
        );
        let not_json = call(
            &server,
            Method::PATCH,
            path,
            Some("application/apply-patch+yaml"),
            "spec: {}\n",
        )
        .await;
        assert_eq!(not_json.0, 400);

        // Every write is logged, as sent.
        let writes = server.writes();
        let summary: Vec<(&str, &str, Option<&str>, u16)> = writes
            .iter()
            .map(|w| {
                (
                    w.method.as_str(),
                    w.path_only(),
                    w.content_type.as_deref(),
                    w.status,
                )
            })
            .collect();
        let status_path = format!("{path}/status");
        assert_eq!(
            summary,
            vec![
                ("PATCH", status_path.as_str(), Some(merge), 200),
                ("PATCH", status_path.as_str(), Some(merge), 200),
                (
                    "PATCH",
                    path,
                    Some("application/strategic-merge-patch+json"),
                    200
                ),
                (
                    "PATCH",
                    status_path.as_str(),
                    Some("application/apply-patch+yaml"),
                    200
                ),
                ("PUT", status_path.as_str(), Some("application/json"), 409),
                ("PUT", status_path.as_str(), Some("application/json"), 200),
                ("PATCH", status_path.as_str(), Some(merge), 409),
                ("PATCH", path, Some("application/json-patch+json"), 415),
                ("PATCH", missing, Some(merge), 404),
                ("PATCH", path, Some("application/apply-patch+yaml"), 400),
            ]
        );
        assert_eq!(writes[3].path, apply);
        assert_eq!(writes[0].json().unwrap()["status"], status);
        assert_eq!(writes[9].body, "spec: {}\n");
    }

    #[tokio::test]
    async fn create_delete_and_apply_create() {
        let server = FakeApiServer::start().await.unwrap();
        let lease = json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}});
        let path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
        let (code, created) = call(
            &server,
            Method::POST,
            path,
            Some("application/json"),
            &lease.to_string(),
        )
        .await;
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["metadata"]["namespace"], "kube-system");
        assert_eq!(created["kind"], "Lease");
        let (code, again) = call(
            &server,
            Method::POST,
            path,
            Some("application/json"),
            &lease.to_string(),
        )
        .await;
        assert_eq!(
            (code, again["reason"].as_str()),
            (409, Some("AlreadyExists"))
        );
        let (code, deleted) =
            call(&server, Method::DELETE, &format!("{path}/leader"), None, "").await;
        assert_eq!(code, 200);
        assert_eq!(rv_of(&deleted), server.resource_version());
        assert_eq!(server.get(&Resource::LEASE, "kube-system", "leader"), None);
        // Server-side apply creates.
        let (code, obj) = patch(
            &server,
            &format!("{path}/leader?&fieldManager=x"),
            "application/apply-patch+yaml",
            lease,
        )
        .await;
        assert_eq!(code, 201, "{obj}");
        assert!(
            server
                .get(&Resource::LEASE, "kube-system", "leader")
                .is_some()
        );
    }

    #[tokio::test]
    async fn set_down_breaks_everything_then_comes_back_on_the_same_port() {
        let server = FakeApiServer::start().await.unwrap();
        server.apply(&Resource::SERVICE, svc("default", "a", json!({})));
        let rv = server.resource_version();
        let mut watch = Watch::open(&server, &watch_path("/api/v1/services", rv, "")).await;
        assert!(server.wait_for_watches(&Resource::SERVICE, 1, T).await);
        let addr = server.addr();
        server.set_down(true).await.unwrap();
        assert!(server.is_down());
        assert_eq!(watch.next().await, None, "the watch is cut");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "connections are refused"
        );
        assert_eq!(server.open_watches(&Resource::SERVICE), 0);
        server.set_down(true).await.unwrap();

        server.set_down(false).await.unwrap();
        server.set_down(false).await.unwrap();
        assert!(!server.is_down());
        assert_eq!(server.addr(), addr);
        let (code, list) = get(&server, "/api/v1/services").await;
        assert_eq!((code, names(&list)), (200, vec!["default/a".to_owned()]));
        let mut watch = Watch::open(&server, &watch_path("/api/v1/services", rv, "")).await;
        server.apply(&Resource::SERVICE, svc("default", "b", json!({})));
        assert_eq!(watch.next_event().await.0, "ADDED");
    }

    #[tokio::test]
    async fn h2_discovery_metadata_only_and_unregistered_resources() {
        let server = FakeApiServer::start().await.unwrap();
        server.apply(
            &Resource::TCP_ROUTE,
            json!({"metadata": {"name": "r", "namespace": "default"}, "spec": {}}),
        );

        // h2, when the client offers it.
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector(&server, b"h2").connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = request(
            Method::GET,
            &format!("https://localhost{}", Resource::TCP_ROUTE.path(None)),
            Some(server.token()),
            None,
            "",
        );
        let (code, list) = json_of(sender.send_request(req).await.unwrap()).await;
        assert_eq!((code, names(&list)), (200, vec!["default/r".to_owned()]));
        assert_eq!(list["kind"], "TCPRouteList");
        assert_eq!(list["apiVersion"], "gateway.networking.k8s.io/v1alpha2");

        let (code, version) = get(&server, "/version").await;
        assert_eq!((code, version["major"].as_str()), (200, Some("1")));
        let (_, apis) = get(&server, "/apis").await;
        let gateway = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "gateway.networking.k8s.io")
            .unwrap();
        assert_eq!(gateway["versions"].as_array().unwrap().len(), 3);
        let (_, resources) = get(&server, "/apis/gateway.networking.k8s.io/v1alpha2").await;
        let names: Vec<&str> = resources["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"tcproutes") && names.contains(&"tcproutes/status"),
            "{names:?}"
        );
        let (_, core) = get(&server, "/api/v1").await;
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "services" && r["namespaced"] == true)
        );

        // Metadata only (kube-rs metadata watchers).
        let mut req = request(
            Method::GET,
            "/apis/gateway.networking.k8s.io/v1alpha2/tcproutes",
            Some(server.token()),
            None,
            "",
        );
        req.headers_mut().insert(
            header::ACCEPT,
            header::HeaderValue::from_static(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            ),
        );
        let (_, meta) = json_of(send(&server, req).await).await;
        assert_eq!(meta["kind"], "PartialObjectMetadataList");
        assert_eq!(meta["items"][0]["kind"], "PartialObjectMetadata");
        assert_eq!(meta["items"][0].get("spec"), None);

        // A CRD that is not installed.
        server.unregister(&Resource::TCP_ROUTE);
        assert_eq!(get(&server, &Resource::TCP_ROUTE.path(None)).await.0, 404);
        let (_, resources) = get(&server, "/apis/gateway.networking.k8s.io/v1alpha2").await;
        assert!(!resources.to_string().contains("tcproutes"));
        server.register(Resource::TCP_ROUTE);
        assert_eq!(get(&server, &Resource::TCP_ROUTE.path(None)).await.0, 200);
    }

    #[tokio::test]
    async fn the_versions_of_a_resource_share_their_objects() {
        let server = FakeApiServer::start().await.unwrap();
        let rv = server.resource_version();
        let v1 = Resource::TLS_ROUTE_V1.path(None);
        assert_eq!(v1, "/apis/gateway.networking.k8s.io/v1/tlsroutes");
        let mut watch = Watch::open(&server, &watch_path(&v1, rv, "")).await;
        let route = json!({"metadata": {"name": "r", "namespace": "default"}, "spec": {"hostnames": ["a.test"]}});
        let stored = server.apply(&Resource::TLS_ROUTE, route.clone());
        assert_eq!(stored["apiVersion"], "gateway.networking.k8s.io/v1alpha2");
        let (kind, obj) = watch.next_event().await;
        assert_eq!(
            (kind.as_str(), obj["apiVersion"].as_str()),
            ("ADDED", Some("gateway.networking.k8s.io/v1"))
        );
        let (_, list) = get(&server, &v1).await;
        assert_eq!(
            list["items"][0]["apiVersion"],
            "gateway.networking.k8s.io/v1"
        );
        assert_eq!(list["kind"], "TLSRouteList");
        let got = server.get(&Resource::TLS_ROUTE_V1, "default", "r").unwrap();
        assert_eq!(got["apiVersion"], "gateway.networking.k8s.io/v1");
        // The same object written through the other version is no change.
        server.apply(&Resource::TLS_ROUTE_V1, route);
        assert_eq!(server.resource_version(), rv + 1);
        assert!(watch.quiet(Duration::from_millis(100)).await);
        let (_, versions) = get(&server, "/apis/gateway.networking.k8s.io").await;
        assert_eq!(versions["kind"], "APIGroup");
    }

    #[tokio::test]
    async fn kubeconfig_and_wait_helpers() {
        let server = FakeApiServer::start().await.unwrap();
        let dir = crate::TempDir::new();
        let path = dir.path().join("kubeconfig");
        server.write_kubeconfig(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!(
                "    server: https://127.0.0.1:{}\n",
                server.addr().port()
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "    certificate-authority-data: {}\n",
            base64(server.ca_pem().as_bytes())
        )));
        assert!(text.contains(&format!("    token: {}\n", server.token())));
        assert!(text.contains("current-context: fake\n"));
        assert_eq!(server.url(), format!("https://{}", server.addr()));
        assert!(server.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            crate::cn_of(server.ca_der()).as_deref(),
            Some("gatehouse-testkit fake kube-apiserver CA")
        );

        let s = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.apply(&Resource::NODE, json!({"metadata": {"name": "n"}}));
            let _ = get(&s, "/api/v1/nodes?&limit=500").await;
        });
        let skip = server.requests().len();
        let node = server
            .wait_for_object(&Resource::NODE, "", "n", T, |o| o.is_some())
            .await
            .unwrap();
        assert_eq!(node["metadata"]["name"], "n");
        let request = server
            .wait_for_request(skip, T, |r| r.starts_with("GET /api/v1/nodes?"))
            .await;
        assert_eq!(request.as_deref(), Some("GET /api/v1/nodes?&limit=500"));
        assert!(
            !server
                .wait_for(Duration::from_millis(30), |s| s.resource_version() > 100)
                .await
        );
        server.clear_logs();
        assert!(server.requests().is_empty());
    }

    #[test]
    fn base64_matches_rfc_4648() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            let mut got = target.clone();
            merge_patch(&mut got, &patch);
            assert_eq!(got, want, "{target} + {patch}");
        }
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(
            parse_labels("a=b, c!=d,e==f,g,!h,i in (j, k),l notin (m)").unwrap(),
            vec![
                LabelReq::Eq("a".into(), "b".into()),
                LabelReq::Ne("c".into(), "d".into()),
                LabelReq::Eq("e".into(), "f".into()),
                LabelReq::Exists("g".into()),
                LabelReq::NotExists("h".into()),
                LabelReq::In("i".into(), vec!["j".into(), "k".into()]),
                LabelReq::NotIn("l".into(), vec!["m".into()]),
            ]
        );
        assert_eq!(parse_labels("").unwrap(), vec![]);
        assert!(parse_labels("a b").is_err());
        assert!(parse_labels("a in (b").is_err());
        assert!(parse_labels("a maybe (b)").is_err());
        assert_eq!(parse_labels("app.kubernetes.io/name=x").unwrap().len(), 1);
        assert_eq!(
            parse_fields("metadata.name=a,spec.type!=b").unwrap().len(),
            2
        );
        assert!(parse_fields("metadata.name").is_err());
    }

    #[test]
    fn small_codecs() {
        assert_eq!(percent_decode("a%3Db+c%2c%zz%4", true), "a=b c,%zz%4");
        assert_eq!(percent_decode("a+b", false), "a+b");
        let token = encode_continue(42, "ns", "name");
        assert_eq!(
            decode_continue(&token),
            Some((42, ("ns".into(), "name".into())))
        );
        assert_eq!(decode_continue("abc"), None);
        assert_eq!(decode_continue("zz"), None);
        let q = Query::parse(Some("&watch=true&&labelSelector=app%3Dweb&x"));
        assert_eq!(q.get("watch"), Some("true"));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("y"), None);
    }
}
