//! Status written back: Service `status.loadBalancer.ingress`, Gateway addresses and
//! conditions, route `status.parents` entries, GatewayClass acceptance.
//!
//! Only the leader writes (the VRRP master of the instance holding the pool, or every node
//! when none does): the others would write the same thing, since they render the same
//! overlay, but a write from a backup races the master's after a failover. The writer
//! compares what it wants with what the object has and patches only the difference, on every
//! applied rendering and every few seconds, so a node that becomes master catches up at once.
//! Condition `lastTransitionTime`s are kept when the condition has not changed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gatehouse_config::KubernetesConfig;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch as channel;

use crate::snapshot::Key;
use crate::watch::Shared;
use crate::{Applied, Leader, Report};

/// How often the writer compares even when nothing was applied (a new leader, an object
/// whose status someone else changed).
const RECHECK: Duration = Duration::from_secs(5);

const GROUP: &str = "gateway.networking.k8s.io";

/// The addresses each LoadBalancer Service got in the running config.
pub(crate) fn service_addresses(applied: &Applied) -> BTreeMap<Key, Vec<IpAddr>> {
    let mut out = BTreeMap::new();
    for (key, taken) in &applied.rendered.services {
        if rejected(applied, &taken.document).is_some() {
            continue;
        }
        let ips = held_by(applied, &taken.gateway);
        if !ips.is_empty() {
            out.insert(key.clone(), ips);
        }
    }
    out
}

/// Addresses the pools gave to a gateway (or its listeners).
fn held_by(applied: &Applied, gateway: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = applied
        .config
        .pools
        .values()
        .flat_map(|p| &p.allocated)
        .filter(|(_, owner)| {
            owner == gateway
                || owner
                    .strip_prefix(gateway)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .map(|(ip, _)| *ip)
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

fn rejected<'a>(applied: &'a Applied, document: &str) -> Option<&'a [String]> {
    applied
        .rejected
        .iter()
        .find(|r| r.document == document)
        .map(|r| r.errors.as_slice())
}

/// Writes status until cancelled.
pub(crate) async fn write(
    client: Client,
    mut applied: channel::Receiver<Option<Arc<Applied>>>,
    shared: Arc<Shared>,
    leader: Leader,
    report: Arc<Mutex<Report>>,
) {
    let mut was_leader = false;
    loop {
        tokio::select! {
            r = applied.changed() => if r.is_err() { return },
            () = tokio::time::sleep(RECHECK) => {}
        }
        let is_leader = leader();
        if is_leader != was_leader {
            tracing::info!(
                "kubernetes: this node {} status",
                if is_leader {
                    "writes"
                } else {
                    "no longer writes"
                }
            );
            was_leader = is_leader;
        }
        report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .writes_status = is_leader;
        let Some(current) = applied.borrow_and_update().clone() else {
            continue;
        };
        // Never from a view that is not whole (objects from the cache file, or a relist in
        // progress): what is written must be what the cluster says now.
        if !is_leader || !shared.all_synced() {
            continue;
        }
        let patches = {
            let snapshot = shared
                .snapshot
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            wanted(&current, &snapshot, &now())
        };
        for p in patches {
            let result = patch(&client, &p).await;
            let mut r = report.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(()) => {
                    r.status_writes.0 += 1;
                    tracing::debug!(object = %p.describe(), "kubernetes: status written");
                }
                Err(e) => {
                    r.status_writes.1 += 1;
                    tracing::warn!(object = %p.describe(), "kubernetes: status not written: {e}");
                }
            }
        }
    }
}

/// One status patch.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPatch {
    /// `Service`, `Gateway`, a route kind, or `GatewayClass`.
    pub kind: &'static str,
    /// The object's namespace and name.
    pub key: Key,
    /// The merge patch body (`{"status": ...}`).
    pub body: Value,
}

impl StatusPatch {
    fn describe(&self) -> String {
        crate::render::document_name(self.kind, &self.key)
    }
}

async fn patch(client: &Client, p: &StatusPatch) -> Result<(), kube::Error> {
    use gateway_api::experimental::{tcproutes::TcpRoute, udproutes::UdpRoute};
    use gateway_api::{
        gatewayclasses::GatewayClass, gateways::Gateway, httproutes::HttpRoute, tlsroutes::TlsRoute,
    };
    let params = PatchParams::default();
    let (ns, name) = (&p.key.0, &p.key.1);
    let body = Patch::Merge(&p.body);
    if p.kind == "Service" {
        Api::<Service>::namespaced(client.clone(), ns)
            .patch_status(name, &params, &body)
            .await?;
        return Ok(());
    }
    let resource = match p.kind {
        "Gateway" => kube::api::ApiResource::erase::<Gateway>(&()),
        "GatewayClass" => kube::api::ApiResource::erase::<GatewayClass>(&()),
        "HTTPRoute" => kube::api::ApiResource::erase::<HttpRoute>(&()),
        "TLSRoute" => kube::api::ApiResource::erase::<TlsRoute>(&()),
        "TCPRoute" => kube::api::ApiResource::erase::<TcpRoute>(&()),
        _ => kube::api::ApiResource::erase::<UdpRoute>(&()),
    };
    let api: Api<DynamicObject> = if ns.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), ns, &resource)
    };
    api.patch_status(name, &params, &body).await?;
    Ok(())
}

/// The current time as Kubernetes writes it.
fn now() -> String {
    let t =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Every patch needed to bring the objects' status to what `applied` says (`now` is the
/// time written into changed conditions).
pub fn wanted(applied: &Applied, snapshot: &crate::Snapshot, now: &str) -> Vec<StatusPatch> {
    let mut out = Vec::new();
    let services = service_addresses(applied);
    for (key, ips) in &services {
        let Some(s) = snapshot.services.get(key) else {
            continue;
        };
        let want: Vec<Value> = ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "Proxy"}))
            .collect();
        let have: Vec<Value> = s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ing| {
                ing.iter()
                    .map(|i| serde_json::to_value(i).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        if have != want {
            out.push(StatusPatch {
                kind: "Service",
                key: key.clone(),
                body: json!({"status": {"loadBalancer": {"ingress": want}}}),
            });
        }
    }
    // Services no longer ours (their type or labels changed) whose status still shows an
    // address of our pool: cleared, so that nothing points at an address we no longer serve.
    if let Some(settings) = &applied.config.kubernetes {
        let ours = |ip: &IpAddr| {
            applied
                .config
                .pools
                .values()
                .any(|p| p.contains(*ip) && Some(&p.name) == settings.pool.as_ref())
        };
        for (key, s) in &snapshot.services {
            if applied.rendered.services.contains_key(key) {
                continue;
            }
            let spec = s.spec.as_ref();
            let class = spec.and_then(|sp| sp.load_balancer_class.as_deref());
            if class != settings.load_balancer_class.as_deref() {
                // Another implementation's Service.
                continue;
            }
            let ingress = s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref());
            let held: Vec<IpAddr> = ingress
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect();
            if !held.is_empty() && held.iter().all(ours) {
                out.push(StatusPatch {
                    kind: "Service",
                    key: key.clone(),
                    body: json!({"status": {"loadBalancer": {"ingress": []}}}),
                });
            }
        }
    }
    for (key, class) in &snapshot.classes {
        if class.data["spec"]["controllerName"].as_str() != Some(KubernetesConfig::CONTROLLER_NAME)
        {
            continue;
        }
        let generation = class.metadata.generation;
        let old = &class.data["status"];
        let conditions = vec![condition(
            old,
            "Accepted",
            true,
            "Accepted",
            "Gatehouse implements this class",
            generation,
            now,
        )];
        let want = json!({"conditions": conditions});
        if !same_status(old, &want) {
            out.push(StatusPatch {
                kind: "GatewayClass",
                key: key.clone(),
                body: json!({"status": want}),
            });
        }
    }
    for (key, taken) in &applied.rendered.gateways {
        let Some(g) = snapshot.gateways.get(key) else {
            continue;
        };
        let want = gateway_status(applied, g, &taken.gateway, &taken.document, now);
        if !same_status(&g.data["status"], &want) {
            out.push(StatusPatch {
                kind: "Gateway",
                key: key.clone(),
                body: json!({"status": want}),
            });
        }
    }
    for route in &applied.rendered.routes {
        let Some(obj) = snapshot
            .routes
            .get(&route.kind)
            .and_then(|m| m.get(&route.key))
        else {
            continue;
        };
        let old = &obj.data["status"];
        let errors = rejected(applied, &route.document);
        let mut parents: Vec<Value> = old["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["controllerName"].as_str() != Some(KubernetesConfig::CONTROLLER_NAME))
            .cloned()
            .collect();
        for parent in &route.parents {
            parents.push(route_parent(
                old,
                parent,
                errors,
                &route.unresolved,
                obj.metadata.generation,
                now,
            ));
        }
        for (parent, why) in &route.refused {
            parents.push(refused_parent(
                old,
                parent,
                why,
                obj.metadata.generation,
                now,
            ));
        }
        let want = json!({"parents": parents});
        if old["parents"] != want["parents"] {
            out.push(StatusPatch {
                kind: route.kind.kind(),
                key: route.key.clone(),
                body: json!({"status": want}),
            });
        }
    }
    out
}

/// Whether `old` already says what `want` does (the keys of `want` only).
fn same_status(old: &Value, want: &Value) -> bool {
    want.as_object()
        .is_some_and(|w| w.iter().all(|(k, v)| old.get(k) == Some(v)))
}

/// A condition, keeping the old `lastTransitionTime` when nothing about it changed.
fn condition(
    old_status: &Value,
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = old_status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind);
    let since = match old {
        Some(c) if c["status"] == status && c["reason"] == reason && c["message"] == message => {
            c["lastTransitionTime"].as_str().unwrap_or(now).to_owned()
        }
        _ => now.to_owned(),
    };
    let mut c = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    });
    if let Some(g) = generation {
        c["observedGeneration"] = json!(g);
    }
    c
}

fn gateway_status(
    applied: &Applied,
    g: &DynamicObject,
    gateway: &str,
    document: &str,
    now: &str,
) -> Value {
    let old = &g.data["status"];
    let generation = g.metadata.generation;
    let errors = rejected(applied, document);
    let mut addresses: Vec<Value> = held_by(applied, gateway)
        .iter()
        .map(|ip| json!({"type": "IPAddress", "value": ip.to_string()}))
        .collect();
    if addresses.is_empty() && errors.is_none() {
        addresses = g.data["spec"]["addresses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
    }
    let (ok, reason, message) = match errors {
        None => (true, "Accepted", "served by Gatehouse".to_owned()),
        Some(e) => (false, "Invalid", e.join("; ")),
    };
    let programmed_reason = if ok { "Programmed" } else { "Invalid" };
    let conditions = vec![
        condition(old, "Accepted", ok, reason, &message, generation, now),
        condition(
            old,
            "Programmed",
            ok,
            programmed_reason,
            &message,
            generation,
            now,
        ),
    ];
    let key = (
        g.metadata.namespace.clone().unwrap_or_default(),
        g.metadata.name.clone().unwrap_or_default(),
    );
    let old_listeners = old["listeners"].as_array().cloned().unwrap_or_default();
    let listeners: Vec<Value> = g.data["spec"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let name = l["name"].as_str().unwrap_or_default();
            let old_l = old_listeners
                .iter()
                .find(|o| o["name"] == name)
                .cloned()
                .unwrap_or(Value::Null);
            let kinds: &[&str] = match l["protocol"].as_str().unwrap_or_default() {
                "HTTP" | "HTTPS" => &["HTTPRoute"],
                "TLS" => &["TLSRoute"],
                "TCP" => &["TCPRoute"],
                "UDP" => &["UDPRoute"],
                _ => &[],
            };
            json!({
                "name": name,
                "attachedRoutes": attached(applied, &key, name),
                "supportedKinds": kinds.iter().map(|k| json!({"group": GROUP, "kind": k})).collect::<Vec<_>>(),
                "conditions": [
                    condition(&old_l, "Accepted", ok, reason, &message, generation, now),
                    condition(&old_l, "Programmed", ok, programmed_reason, &message, generation, now),
                    condition(&old_l, "ResolvedRefs", ok, if ok { "ResolvedRefs" } else { "InvalidCertificateRef" }, &message, generation, now),
                ],
            })
        })
        .collect();
    json!({
        "addresses": addresses,
        "conditions": conditions,
        "listeners": listeners,
    })
}

/// Routes accepted on a Gateway's listener.
fn attached(applied: &Applied, gateway: &Key, listener: &str) -> usize {
    applied
        .rendered
        .routes
        .iter()
        .filter(|r| rejected(applied, &r.document).is_none())
        .filter(|r| {
            r.parents.iter().any(|p| {
                let ns = p["namespace"].as_str().unwrap_or(&r.key.0);
                ns == gateway.0
                    && p["name"].as_str() == Some(gateway.1.as_str())
                    && p["sectionName"].as_str().is_none_or(|s| s == listener)
            })
        })
        .count()
}

/// Our entry for `parent` in a route's old status, if any.
fn old_parent(old: &Value, parent: &Value) -> Value {
    old["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["controllerName"].as_str() == Some(KubernetesConfig::CONTROLLER_NAME)
                && p["parentRef"]["name"] == parent["name"]
                && p["parentRef"]["sectionName"] == parent["sectionName"]
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// A condition's status, reason and message.
type Verdict<'a> = (bool, &'a str, String);

/// A parent entry: the reference as written plus its defaulted group and kind, and the
/// `Accepted` and `ResolvedRefs` conditions.
fn parent_entry(
    old: &Value,
    parent: &Value,
    accepted: Verdict<'_>,
    resolved: Verdict<'_>,
    generation: Option<i64>,
    now: &str,
) -> Value {
    let old_entry = old_parent(old, parent);
    let mut parent_ref = parent.clone();
    if parent_ref["group"].is_null() {
        parent_ref["group"] = json!(GROUP);
    }
    if parent_ref["kind"].is_null() {
        parent_ref["kind"] = json!("Gateway");
    }
    let (ok, reason, message) = accepted;
    let accepted = condition(
        &old_entry, "Accepted", ok, reason, &message, generation, now,
    );
    let (ok, reason, message) = resolved;
    let resolved = condition(
        &old_entry,
        "ResolvedRefs",
        ok,
        reason,
        &message,
        generation,
        now,
    );
    json!({
        "parentRef": parent_ref,
        "controllerName": KubernetesConfig::CONTROLLER_NAME,
        "conditions": [accepted, resolved],
    })
}

/// Our entry for a parent the route is attached to: `errors` when the route was left out,
/// `unresolved` for backend references dropped for want of a ReferenceGrant.
fn route_parent(
    old: &Value,
    parent: &Value,
    errors: Option<&[String]>,
    unresolved: &[String],
    generation: Option<i64>,
    now: &str,
) -> Value {
    let resolved_ok = (
        true,
        "ResolvedRefs",
        "every backend reference resolved".to_owned(),
    );
    let (accepted, resolved) = match errors {
        Some(e) => {
            let message = e.join("; ");
            let not_found = e.iter().any(|m| m.contains("is not in the cluster"));
            (
                (false, "UnsupportedValue", message.clone()),
                if not_found {
                    (false, "BackendNotFound", message)
                } else {
                    resolved_ok
                },
            )
        }
        None if !unresolved.is_empty() => (
            (true, "Accepted", "served by Gatehouse".to_owned()),
            (false, "RefNotPermitted", unresolved.join("; ")),
        ),
        None => (
            (true, "Accepted", "served by Gatehouse".to_owned()),
            resolved_ok,
        ),
    };
    parent_entry(old, parent, accepted, resolved, generation, now)
}

/// Our entry for a parent that does not let the route attach (`allowedRoutes`, a
/// `sectionName` or `port` that names no listener).
fn refused_parent(
    old: &Value,
    parent: &Value,
    why: &str,
    generation: Option<i64>,
    now: &str,
) -> Value {
    parent_entry(
        old,
        parent,
        (false, "NotAllowedByListeners", why.to_owned()),
        (true, "ResolvedRefs", "not attached".to_owned()),
        generation,
        now,
    )
}
