//! The cluster's objects as the watchers last saw them.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

/// The Gateway API kinds Gatehouse reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum RouteKind {
    /// `HTTPRoute`.
    Http,
    /// `TLSRoute`.
    Tls,
    /// `TCPRoute`.
    Tcp,
    /// `UDPRoute`.
    Udp,
}

impl RouteKind {
    /// Every kind, in the order documents are rendered.
    pub const ALL: [RouteKind; 4] = [
        RouteKind::Http,
        RouteKind::Tls,
        RouteKind::Tcp,
        RouteKind::Udp,
    ];

    /// The prefix of the Gatehouse route names made for routes of this kind
    /// (`http.NAMESPACE.NAME`).
    pub fn prefix(self) -> &'static str {
        match self {
            RouteKind::Http => "http",
            RouteKind::Tls => "tls",
            RouteKind::Tcp => "tcp",
            RouteKind::Udp => "udp",
        }
    }

    /// The Kubernetes `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Tls => "TLSRoute",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Udp => "UDPRoute",
        }
    }
}

/// Everything the provider renders config from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every Service of the watched namespaces.
    pub services: BTreeMap<Key, Arc<Service>>,
    /// Every EndpointSlice of the watched namespaces.
    pub slices: BTreeMap<Key, Arc<EndpointSlice>>,
    /// Nodes (watched in `nodePorts` mode only).
    pub nodes: BTreeMap<Key, Arc<Node>>,
    /// Secrets of type `kubernetes.io/tls`.
    pub secrets: BTreeMap<Key, Arc<Secret>>,
    /// GatewayClasses.
    pub classes: BTreeMap<Key, Arc<DynamicObject>>,
    /// Gateways.
    pub gateways: BTreeMap<Key, Arc<DynamicObject>>,
    /// ReferenceGrants.
    pub grants: BTreeMap<Key, Arc<DynamicObject>>,
    /// Routes by kind.
    pub routes: BTreeMap<RouteKind, BTreeMap<Key, Arc<DynamicObject>>>,
}

impl Snapshot {
    /// The routes of one kind.
    pub fn routes_of(&self, kind: RouteKind) -> impl Iterator<Item = (&Key, &Arc<DynamicObject>)> {
        self.routes.get(&kind).into_iter().flatten()
    }

    /// How many objects of each kind it holds, for `status` and metrics.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::from([
            ("Service", self.services.len()),
            ("EndpointSlice", self.slices.len()),
            ("Node", self.nodes.len()),
            ("Secret", self.secrets.len()),
            ("GatewayClass", self.classes.len()),
            ("Gateway", self.gateways.len()),
            ("ReferenceGrant", self.grants.len()),
        ]);
        for k in RouteKind::ALL {
            out.insert(k.kind(), self.routes.get(&k).map_or(0, BTreeMap::len));
        }
        out
    }
}
