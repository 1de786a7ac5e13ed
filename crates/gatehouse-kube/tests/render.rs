//! The cluster as config, without a server: objects in, the compiled config and the status
//! patches out. What the watchers feed is tested end to end (`crates/gatehouse/tests/e2e/
//! kubernetes.rs`).
// A test crate: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use gatehouse_config::{Config, Rejected, Source, load_with};
use gatehouse_kube::{Applied, RouteKind, Snapshot, render, status_patches};
use kube::api::DynamicObject;
use serde_json::{Value, json};

const FILE: &str = "
pools:
  - name: lan
    addresses: [127.0.10.1-127.0.10.9]
kubernetes:
  pool: lan
";

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

fn service(ns: &str, name: &str, extra: Value) -> Value {
    let mut s = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "LoadBalancer", "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
        ]},
    });
    merge(&mut s, extra);
    s
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn slice(ns: &str, service: &str, endpoints: &[(&str, bool)]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abc"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": endpoints.iter().map(|(ip, ready)| json!({
            "addresses": [ip], "conditions": {"ready": ready}
        })).collect::<Vec<_>>(),
    })
}

fn dynamic(v: Value) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(v).unwrap())
}

struct World {
    snapshot: Snapshot,
}

impl World {
    fn new() -> World {
        World {
            snapshot: Snapshot::default(),
        }
    }

    fn service(mut self, v: Value) -> World {
        let s: k8s_openapi::api::core::v1::Service = serde_json::from_value(v).unwrap();
        let k = key(
            s.metadata.namespace.as_deref().unwrap(),
            s.metadata.name.as_deref().unwrap(),
        );
        self.snapshot.services.insert(k, Arc::new(s));
        self
    }

    fn slice(mut self, v: Value) -> World {
        let s: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(v).unwrap();
        let k = key(
            s.metadata.namespace.as_deref().unwrap(),
            s.metadata.name.as_deref().unwrap(),
        );
        self.snapshot.slices.insert(k, Arc::new(s));
        self
    }

    fn gateway(mut self, v: Value) -> World {
        let d = dynamic(v);
        let k = key(
            d.metadata.namespace.as_deref().unwrap(),
            d.metadata.name.as_deref().unwrap(),
        );
        self.snapshot.gateways.insert(k, d);
        self
    }

    fn route(mut self, kind: RouteKind, v: Value) -> World {
        let d = dynamic(v);
        let k = key(
            d.metadata.namespace.as_deref().unwrap(),
            d.metadata.name.as_deref().unwrap(),
        );
        self.snapshot.routes.entry(kind).or_default().insert(k, d);
        self
    }

    /// Renders and compiles with `file`: the config, what was left out, and the patches the
    /// status writer would send.
    fn compile(
        &self,
        file: &str,
    ) -> (Arc<Config>, Vec<Rejected>, Vec<gatehouse_kube::StatusPatch>) {
        let source = Source::new("gatehouse.yaml", file);
        let base = gatehouse_config::compile(&source).unwrap().config;
        let settings = base.kubernetes.clone().unwrap();
        let rendered = Arc::new(render(&self.snapshot, &settings, &base.pools));
        let (loaded, rejected) =
            load_with(&source, &rendered.overlay).unwrap_or_else(|d| panic!("{}", d.one_line()));
        let config = Arc::new(loaded.config);
        let applied = Applied {
            rendered,
            config: Arc::clone(&config),
            rejected: rejected.clone(),
        };
        let patches = status_patches(&applied, &self.snapshot, "2026-11-23T00:00:00Z");
        (config, rejected, patches)
    }
}

fn listener<'a>(config: &'a Config, name: &str) -> &'a gatehouse_config::Listener {
    config
        .listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no listener {name}; have {:?}",
                config.listeners.iter().map(|l| &l.name).collect::<Vec<_>>()
            )
        })
}

fn endpoints(config: &Config, backend: &str) -> Vec<String> {
    config.backends[backend]
        .endpoints
        .iter()
        .map(|e| e.target.to_string())
        .collect()
}

#[test]
fn a_load_balancer_service_gets_a_pool_address_and_its_ready_endpoints() {
    let w = World::new()
        .service(service("media", "jellyfin", json!({})))
        .slice(slice(
            "media",
            "jellyfin",
            &[("10.1.0.5", true), ("10.1.0.6", false)],
        ));
    let (config, rejected, patches) = w.compile(FILE);
    assert!(rejected.is_empty(), "{rejected:?}");
    let tcp = listener(&config, "svc.media.jellyfin/tcp-80");
    assert_eq!(tcp.bind, "127.0.10.1:80".parse::<SocketAddr>().unwrap());
    let udp = listener(&config, "svc.media.jellyfin/udp-53");
    assert_eq!(udp.bind, "127.0.10.1:53".parse::<SocketAddr>().unwrap());
    // Only the ready endpoint, on the target port of the matching slice port.
    assert_eq!(
        endpoints(&config, "k8s.media.jellyfin.80"),
        ["10.1.0.5:8080"]
    );
    assert_eq!(
        endpoints(&config, "k8s.media.jellyfin.53"),
        ["10.1.0.5:5353"]
    );
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].kind, "Service");
    assert_eq!(
        patches[0].body,
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.10.1", "ipMode": "Proxy"}]}}})
    );
}

#[test]
fn addresses_asked_for_or_already_held_are_kept_and_others_are_ignored() {
    let w = World::new()
        // Sorts first, so it would take .1 if .1 were not pinned by `b`'s status.
        .service(service("a", "new", json!({})))
        .service(service(
            "b",
            "held",
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.10.1", "ipMode": "Proxy"}]}}}),
        ))
        .service(service(
            "c",
            "metallb",
            json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "127.0.10.7"}}}),
        ))
        .service(service(
            "d",
            "cilium",
            json!({"metadata": {"annotations": {"lbipam.cilium.io/ips": "127.0.10.8"}}}),
        ))
        .service(service(
            "e",
            "other-class",
            json!({"spec": {"loadBalancerClass": "example.com/other"}}),
        ))
        .service(service("f", "cluster-ip", json!({"spec": {"type": "ClusterIP"}})));
    let (config, rejected, patches) = w.compile(FILE);
    assert!(rejected.is_empty(), "{rejected:?}");
    let bind = |name: &str| listener(&config, name).bind.ip();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(bind("svc.b.held/tcp-80"), ip("127.0.10.1"));
    assert_eq!(bind("svc.a.new/tcp-80"), ip("127.0.10.2"));
    assert_eq!(bind("svc.c.metallb/tcp-80"), ip("127.0.10.7"));
    assert_eq!(bind("svc.d.cilium/tcp-80"), ip("127.0.10.8"));
    assert!(
        !config
            .listeners
            .iter()
            .any(|l| l.name.starts_with("svc.e.") || l.name.starts_with("svc.f."))
    );
    // `held` already says what it has: no patch for it.
    let patched: Vec<String> = patches
        .iter()
        .map(|p| format!("{}/{}", p.key.0, p.key.1))
        .collect();
    assert_eq!(patched, ["a/new", "c/metallb", "d/cilium"]);
}

#[test]
fn an_address_outside_the_pool_leaves_that_service_out_and_only_it() {
    let w = World::new()
        .service(service(
            "a",
            "outside",
            json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "192.0.2.7"}}}),
        ))
        .service(service("b", "fine", json!({})));
    let (config, rejected, patches) = w.compile(FILE);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].document, "Service a/outside");
    assert!(
        rejected[0].errors[0].contains("192.0.2.7"),
        "{:?}",
        rejected[0].errors
    );
    listener(&config, "svc.b.fine/tcp-80");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].key.1, "fine");
}

fn gateway() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "internal", "namespace": "infra", "generation": 3},
        "spec": {"gatewayClassName": "gatehouse", "listeners": [
            {"name": "http", "port": 8080, "protocol": "HTTP",
             "allowedRoutes": {"namespaces": {"from": "All"}}}
        ]},
    })
}

fn http_route(name: &str, backend: &str, extra_rule: Value) -> Value {
    let mut rule = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{"name": backend, "namespace": "media", "port": 8989}],
    });
    merge(&mut rule, extra_rule);
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "media", "generation": 1},
        "spec": {
            "parentRefs": [{"name": "internal", "namespace": "infra"},
                           {"name": "someone-elses", "namespace": "infra"}],
            "hostnames": [format!("{name}.lab.example")],
            "rules": [rule],
        },
    })
}

#[test]
fn gateway_api_objects_become_routes_and_bad_ones_are_left_out_alone() {
    let sonarr = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "sonarr", "namespace": "media"},
        "spec": {"type": "ClusterIP", "ports": [{"name": "web", "port": 8989, "targetPort": 8989}]},
    });
    let mut sonarr_slice = slice("media", "sonarr", &[("10.1.0.9", true)]);
    sonarr_slice["ports"] = json!([{"name": "web", "port": 8989, "protocol": "TCP"}]);
    let w = World::new()
        .service(sonarr)
        .slice(sonarr_slice)
        .gateway(gateway())
        .gateway(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "someone-elses", "namespace": "infra"},
            "spec": {"gatewayClassName": "cilium", "listeners": [{"name": "x", "port": 1, "protocol": "HTTP"}]},
        }))
        .route(RouteKind::Http, http_route("sonarr", "sonarr", json!({})))
        .route(RouteKind::Http, http_route("missing", "radarr", json!({})))
        .route(
            RouteKind::Http,
            http_route("unsupported", "sonarr", json!({"sessionPersistence": {"sessionName": "x"}})),
        );
    let (config, rejected, patches) = w.compile(FILE);
    let mut left_out: Vec<&str> = rejected.iter().map(|r| r.document.as_str()).collect();
    left_out.sort();
    assert_eq!(
        left_out,
        ["HTTPRoute media/missing", "HTTPRoute media/unsupported"]
    );
    let missing = rejected
        .iter()
        .find(|r| r.document.ends_with("missing"))
        .unwrap();
    assert!(
        missing.errors[0].contains("media/radarr:8989"),
        "{missing:?}"
    );
    let unsupported = rejected
        .iter()
        .find(|r| r.document.ends_with("unsupported"))
        .unwrap();
    assert!(
        unsupported.errors[0].contains("sessionPersistence"),
        "{unsupported:?}"
    );

    // The Gateway got a pool address; its listener serves the good route.
    let l = listener(&config, "gw.infra.internal/http");
    assert_eq!(l.bind, "127.0.10.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(
        endpoints(&config, "k8s.media.sonarr.8989"),
        ["10.1.0.9:8989"]
    );
    assert!(
        !config
            .listeners
            .iter()
            .any(|l| l.name.contains("someone-elses"))
    );

    let by: BTreeMap<String, &Value> = patches
        .iter()
        .map(|p| (format!("{} {}", p.kind, p.key.1), &p.body))
        .collect();
    let gw = by["Gateway internal"];
    assert_eq!(
        gw["status"]["addresses"],
        json!([{"type": "IPAddress", "value": "127.0.10.1"}])
    );
    assert_eq!(gw["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(gw["status"]["conditions"][0]["status"], "True");
    assert_eq!(gw["status"]["conditions"][0]["observedGeneration"], 3);
    assert_eq!(gw["status"]["listeners"][0]["attachedRoutes"], 1);
    let good = &by["HTTPRoute sonarr"]["status"]["parents"];
    assert_eq!(good.as_array().unwrap().len(), 1, "only our parent: {good}");
    assert_eq!(
        good[0]["controllerName"],
        "gatehouse.dev/gateway-controller"
    );
    assert_eq!(good[0]["parentRef"]["name"], "internal");
    assert_eq!(good[0]["conditions"][0]["status"], "True");
    let bad = &by["HTTPRoute missing"]["status"]["parents"][0]["conditions"];
    assert_eq!(bad[0]["status"], "False");
    assert_eq!(bad[1]["type"], "ResolvedRefs");
    assert_eq!(bad[1]["reason"], "BackendNotFound");
}

#[test]
fn a_status_that_says_what_we_want_is_not_written_again() {
    let w = World::new()
        .service(service("media", "jellyfin", json!({})))
        .slice(slice("media", "jellyfin", &[("10.1.0.5", true)]));
    let (_, _, patches) = w.compile(FILE);
    let Value::Object(body) = patches[0].body.clone() else {
        unreachable!()
    };
    let w = w.service(service("media", "jellyfin", Value::Object(body)));
    let (_, _, patches) = w.compile(FILE);
    assert!(patches.is_empty(), "{patches:?}");
}

#[test]
fn services_get_dns_names_and_a_clash_with_a_static_record_leaves_out_the_service() {
    let file = "
pools:
  - name: lan
    addresses: [127.0.10.1-127.0.10.9]
dns:
  listen: [127.0.0.1:0]
  zones:
    - name: k8s.test
      records:
        - {name: taken.media, type: A, value: 192.0.2.1}
kubernetes:
  pool: lan
  dnsZone: k8s.test
";
    let w = World::new()
        .service(service(
            "media",
            "jellyfin",
            json!({"metadata": {"annotations": {"external-dns.alpha.kubernetes.io/hostname": "tv.k8s.test"}}}),
        ))
        .service(service("media", "taken", json!({})));
    let (config, rejected, _) = w.compile(file);
    let zone = &config.dns.as_ref().unwrap().zones[0];
    let names: Vec<String> = zone.records.iter().map(|r| r.name.clone()).collect();
    assert!(
        names.contains(&"jellyfin.media.k8s.test".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"tv.k8s.test".to_owned()), "{names:?}");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].document, "Service media/taken");
}

#[test]
fn a_service_no_longer_ours_has_its_address_cleared_and_other_classes_are_left_alone() {
    let held =
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.10.3", "ipMode": "Proxy"}]}}});
    let mut was_lb = held.clone();
    merge(&mut was_lb, json!({"spec": {"type": "ClusterIP"}}));
    let mut other_class = held.clone();
    merge(
        &mut other_class,
        json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    );
    let w = World::new()
        .service(service("a", "was-lb", was_lb))
        .service(service("b", "other", other_class));
    let (_, _, patches) = w.compile(FILE);
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].key, key("a", "was-lb"));
    assert_eq!(
        patches[0].body,
        json!({"status": {"loadBalancer": {"ingress": []}}})
    );
}

#[test]
fn gateways_of_a_class_another_controller_implements_are_not_served() {
    let class = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "gatehouse"},
        "spec": {"controllerName": "example.com/someone-else"},
    });
    let mut w = World::new().gateway(gateway());
    w.snapshot
        .classes
        .insert(key("", "gatehouse"), dynamic(class.clone()));
    let (config, _, _) = w.compile(FILE);
    assert!(config.listeners.is_empty());
    let mut ours = class;
    ours["spec"]["controllerName"] = json!("gatehouse.dev/gateway-controller");
    w.snapshot
        .classes
        .insert(key("", "gatehouse"), dynamic(ours));
    let (config, _, patches) = w.compile(FILE);
    listener(&config, "gw.infra.internal/http");
    let accepted = patches.iter().find(|p| p.kind == "GatewayClass").unwrap();
    assert_eq!(accepted.body["status"]["conditions"][0]["status"], "True");
}

#[test]
fn allowed_routes_and_reference_grants_are_enforced() {
    let sonarr = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "sonarr", "namespace": "media"},
        "spec": {"type": "ClusterIP", "ports": [{"name": "web", "port": 8989}]},
    });
    let mut same_ns_gateway = gateway();
    same_ns_gateway["spec"]["listeners"][0]["allowedRoutes"] =
        json!({"namespaces": {"from": "Same"}});
    // A route in `media` to a Gateway in `infra` that only takes routes from `infra`; and a
    // route in `infra` whose backend is in `media`, first without a ReferenceGrant.
    let mut local = http_route("local", "sonarr", json!({}));
    local["metadata"]["namespace"] = json!("infra");
    let mut w = World::new()
        .service(sonarr)
        .gateway(same_ns_gateway)
        .route(RouteKind::Http, http_route("remote", "sonarr", json!({})))
        .route(RouteKind::Http, local);
    let (config, rejected, patches) = w.compile(FILE);
    let by: BTreeMap<String, &Value> = patches
        .iter()
        .map(|p| (format!("{} {}", p.kind, p.key.1), &p.body))
        .collect();
    let remote = &by["HTTPRoute remote"]["status"]["parents"][0]["conditions"][0];
    assert_eq!(remote["status"], "False");
    assert_eq!(remote["reason"], "NotAllowedByListeners");
    let local = &by["HTTPRoute local"]["status"]["parents"][0]["conditions"];
    assert_eq!(local[0]["status"], "True", "{local}");
    assert_eq!(local[1]["reason"], "RefNotPermitted", "{local}");
    assert!(!config.backends.contains_key("k8s.media.sonarr.8989"));
    assert!(rejected.is_empty(), "{rejected:?}");

    // The grant in `media` lets `infra`'s HTTPRoutes in.
    let grant = json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "from-infra", "namespace": "media"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "infra"}],
            "to": [{"group": "", "kind": "Service"}],
        },
    });
    w.snapshot
        .grants
        .insert(key("media", "from-infra"), dynamic(grant));
    let (config, _, patches) = w.compile(FILE);
    assert!(config.backends.contains_key("k8s.media.sonarr.8989"));
    let local = patches
        .iter()
        .find(|p| p.key.1 == "local")
        .map(|p| p.body["status"]["parents"][0]["conditions"][1].clone())
        .unwrap();
    assert_eq!(local["status"], "True", "{local}");
}

#[test]
fn source_ranges_affinity_and_proxy_protocol_carry_over() {
    let w = World::new()
        .service(service(
            "a",
            "web",
            json!({
                "metadata": {"annotations": {"gatehouse.dev/proxy-protocol": "v2"}},
                "spec": {"loadBalancerSourceRanges": ["192.168.1.0/24"], "sessionAffinity": "ClientIP"},
            }),
        ))
        .service(service(
            "b",
            "bad",
            json!({"metadata": {"annotations": {"gatehouse.dev/proxy-protocol": "v3"}}}),
        ));
    let (config, rejected, _) = w.compile(FILE);
    let l = listener(&config, "svc.a.web/tcp-80");
    assert_eq!(
        l.access
            .allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["192.168.1.0/24"]
    );
    let b = &config.backends["k8s.a.web.80"];
    assert_eq!(b.balance, gatehouse_config::Balance::ConsistentHash);
    assert_eq!(
        b.proxy_protocol,
        Some(gatehouse_config::ProxyProtocolVersion::V2)
    );
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].errors[0].contains("`v3` is not a PROXY protocol version"),
        "{rejected:?}"
    );
    assert_eq!(config.backends["k8s.a.web.53"].proxy_protocol, None);
}

#[test]
fn node_ports_mode_sends_to_ready_nodes_and_honours_the_local_policy() {
    let node = |name: &str, ip: &str, ready: &str| {
        let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {
                "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
                "conditions": [{"type": "Ready", "status": ready}],
            },
        }))
        .unwrap();
        Arc::new(n)
    };
    let mut w = World::new()
        .service(service(
            "a",
            "cluster",
            json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}}),
        ))
        .service(service(
            "a",
            "local",
            json!({"spec": {"externalTrafficPolicy": "Local",
                            "ports": [{"name": "http", "port": 81, "protocol": "TCP", "nodePort": 30081}]}}),
        ));
    let mut local_slice = slice("a", "local", &[("10.1.0.5", true)]);
    local_slice["endpoints"][0]["nodeName"] = json!("n2");
    w = w.slice(local_slice);
    for (name, ip, ready) in [
        ("n1", "10.0.0.1", "True"),
        ("n2", "10.0.0.2", "True"),
        ("n3", "10.0.0.3", "False"),
    ] {
        w.snapshot
            .nodes
            .insert(key("", name), node(name, ip, ready));
    }
    let file = FILE.replace("  pool: lan\n", "  pool: lan\n  endpoints: nodePorts\n");
    let (config, rejected, _) = w.compile(&file);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(
        endpoints(&config, "k8s.a.cluster.80"),
        ["10.0.0.1:30080", "10.0.0.2:30080"]
    );
    assert_eq!(endpoints(&config, "k8s.a.local.81"), ["10.0.0.2:30081"]);
}

#[test]
fn gateways_of_one_name_in_two_namespaces_are_two_gateways() {
    let mut other = gateway();
    other["metadata"]["namespace"] = json!("lab");
    other["spec"]["listeners"][0]["port"] = json!(8081);
    let mut route = http_route("sonarr", "sonarr", json!({}));
    route["spec"]["parentRefs"] = json!([{"name": "internal", "namespace": "lab"}]);
    let w = World::new()
        .gateway(gateway())
        .gateway(other)
        .route(RouteKind::Http, route);
    let (config, rejected, _) = w.compile(FILE);
    let missing = rejected
        .iter()
        .map(|r| r.document.as_str())
        .collect::<Vec<_>>();
    // The route names a Service that is not there; the Gateways are both fine.
    assert_eq!(missing, ["HTTPRoute media/sonarr"]);
    listener(&config, "gw.infra.internal/http");
    listener(&config, "gw.lab.internal/http");
}

#[test]
fn routes_of_one_name_in_two_namespaces_are_two_routes() {
    let sonarr = |ns: &str| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "sonarr", "namespace": ns},
            "spec": {"type": "ClusterIP", "ports": [{"name": "web", "port": 8989}]},
        })
    };
    let route = |ns: &str| {
        let mut r = http_route("web", "sonarr", json!({}));
        r["metadata"]["namespace"] = json!(ns);
        r["spec"]["rules"][0]["backendRefs"][0]["namespace"] = json!(ns);
        r["spec"]["hostnames"] = json!([format!("{ns}.lab.example")]);
        r
    };
    let w = World::new()
        .service(sonarr("media"))
        .service(sonarr("tv"))
        .gateway(gateway())
        .route(RouteKind::Http, route("media"))
        .route(RouteKind::Http, route("tv"));
    let (config, rejected, _) = w.compile(FILE);
    assert!(rejected.is_empty(), "{rejected:?}");
    let l = listener(&config, "gw.infra.internal/http");
    let mut names: Vec<&str> = l.http_routes.iter().map(|r| r.route.as_str()).collect();
    names.sort();
    assert_eq!(names, ["http.media.web", "http.tv.web"]);
}
