//! The Kubernetes provider through the binary, against the test harness's API server
//! (`gatehouse_testkit::kube`): no Kubernetes API server can run here, so an HTTPS server in
//! the test speaks the API's list and watch protocol (bookmarks, watch restarts, 410 Gone)
//! and records the status the provider writes back. The client is the production one
//! (kube-rs, rustls with aws-lc-rs, a kubeconfig with a CA and a bearer token).
//!
//! Addresses: each test has its own pool on 127.0.N.0/24 (all of 127/8 is local), endpoints
//! are test backends on 127.0.0.1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gatehouse_testkit::kube::{FakeApiServer, Resource, base64};
use gatehouse_testkit::{Backend, Gatehouse, TempDir, ask, curl_get, free_port};
use serde_json::{Value, json};

use crate::{BIN, WAIT};

/// The API server on a runtime of its own, the kubeconfig that reaches it, and a Gatehouse
/// started on `config` (with `KUBECONFIG_PATH` replaced by the kubeconfig's path).
struct Cluster {
    api: FakeApiServer,
    dir: TempDir,
    gw: Gatehouse,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    fn start(config: &str) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let api = rt.block_on(FakeApiServer::start()).unwrap();
        let dir = TempDir::new();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        let config = config.replace("KUBECONFIG_PATH", &kubeconfig.display().to_string());
        let gw = Gatehouse::start(BIN, &config);
        Cluster { api, dir, gw, rt }
    }

    /// The kubeconfig's path.
    fn kubeconfig(&self) -> String {
        self.dir.path().join("kubeconfig").display().to_string()
    }

    fn apply(&self, resource: &Resource, object: Value) {
        let _guard = self.rt.enter();
        self.api.apply(resource, object);
    }

    fn admin(&self) -> SocketAddr {
        self.gw.addr("admin")
    }

    /// The `kubernetes` part of `/status`.
    fn status(&self) -> Value {
        let (code, body) = crate::admin::get(self.admin(), "/status", None);
        assert_eq!(code, 200, "{body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        doc["kubernetes"].clone()
    }

    /// Waits until `f` holds, or fails with `what` and the log.
    fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if f() {
                return;
            }
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; status: {}\nlog:\n{}",
            self.status(),
            self.gw.logs()
        );
    }

    /// The load balancer address the API server holds for a Service.
    fn ingress(&self, ns: &str, name: &str) -> Option<String> {
        let s = self.api.get(&Resource::SERVICE, ns, name)?;
        s["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_owned)
    }
}

fn config(net: u8) -> String {
    format!(
        "pools:
  - name: lan
    addresses: [127.0.{net}.1-127.0.{net}.20]
kubernetes:
  kubeconfig: KUBECONFIG_PATH
  pool: lan
admin:
  listen: 127.0.0.1:0
"
    )
}

fn lb_service(ns: &str, name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "LoadBalancer", "ports": [
            {"name": "echo", "port": port, "protocol": "TCP", "targetPort": 7000}
        ]},
    })
}

fn slice(ns: &str, service: &str, endpoints: &[SocketAddr]) -> Value {
    // One slice per port number: the test backends listen on different ports.
    let port = endpoints.first().map_or(1, SocketAddr::port);
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "echo", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints.iter().map(|e| json!({
            "addresses": [e.ip().to_string()], "conditions": {"ready": true}
        })).collect::<Vec<_>>(),
    })
}

/// LoadBalancer Service `apps/echo` on a free port with `first` as its endpoint; returns the
/// address it gets (the first of pool `127.0.NET.0/24`) once `first` answers there.
fn echo_service(c: &Cluster, first: &Backend, net: u8) -> SocketAddr {
    let port = free_port();
    c.apply(&Resource::SERVICE, lb_service("apps", "echo", port));
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("apps", "echo", &[first.addr()]),
    );
    let vip: SocketAddr = format!("127.0.{net}.1:{port}").parse().unwrap();
    ask_until(c, vip, first.name());
    vip
}

fn ask_until(c: &Cluster, addr: SocketAddr, want: &str) {
    c.wait_until(&format!("{addr} answered by {want}"), || {
        ask(addr).is_ok_and(|name| name == want)
    });
}

#[test]
fn a_load_balancer_service_gets_an_address_status_and_traffic_and_follows_its_endpoints() {
    let c = Cluster::start(&config(31));
    let one = Backend::start("one");
    let two = Backend::start("two");
    let port = free_port();
    c.apply(&Resource::SERVICE, lb_service("media", "echo", port));
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("media", "echo", &[one.addr()]),
    );

    // Address assigned from the pool and written back (ipMode Proxy: kube-proxy leaves the
    // address to us).
    c.wait_until("the Service's status", || {
        c.ingress("media", "echo").is_some()
    });
    assert_eq!(c.ingress("media", "echo").as_deref(), Some("127.0.31.1"));
    let svc = c.api.get(&Resource::SERVICE, "media", "echo").unwrap();
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ipMode"],
        "Proxy"
    );
    let vip: SocketAddr = format!("127.0.31.1:{port}").parse().unwrap();
    ask_until(&c, vip, "one");

    // Endpoints change: traffic follows.
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("media", "echo", &[two.addr()]),
    );
    ask_until(&c, vip, "two");

    // A second Service takes the next address; the first keeps its own.
    let port2 = free_port();
    c.apply(&Resource::SERVICE, lb_service("media", "echo2", port2));
    c.wait_until("the second Service's status", || {
        c.ingress("media", "echo2").is_some()
    });
    assert_eq!(c.ingress("media", "echo2").as_deref(), Some("127.0.31.2"));
    assert_eq!(c.ingress("media", "echo").as_deref(), Some("127.0.31.1"));

    // The Service goes away: so does its listener.
    {
        let _guard = c.rt.enter();
        c.api.delete(&Resource::SERVICE, "media", "echo");
    }
    c.wait_until("the listener to close", || ask(vip).is_err());

    let k = c.status();
    assert_eq!(k["connected"], true, "{k}");
    assert_eq!(k["services"]["media/echo2"][0], "127.0.31.2", "{k}");
}

#[test]
fn watch_restarts_gone_and_bookmarks_are_followed() {
    let c = Cluster::start(&config(32));
    let one = Backend::start("one");
    let two = Backend::start("two");
    let vip = echo_service(&c, &one, 32);

    // Bookmarks move the client's resourceVersion on; nothing changes.
    c.api.bookmark();
    // The server ends every watch: the client watches again from where it was.
    c.api.clear_logs();
    assert!(c.api.close_watches() > 0);
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("apps", "echo", &[two.addr()]),
    );
    ask_until(&c, vip, "two");

    // History compacted while the watches are down: resuming gets 410 Gone, and the client
    // lists again (a change made meanwhile is not lost).
    c.api.compact();
    c.api.clear_logs();
    c.api.close_watches();
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("apps", "echo", &[one.addr()]),
    );
    c.api.compact();
    ask_until(&c, vip, "one");
    c.wait_until("a relist of EndpointSlices", || {
        c.api.requests().iter().any(|r| {
            r.starts_with("GET /apis/discovery.k8s.io/v1/endpointslices?") && !r.contains("watch=")
        })
    });
}

#[test]
fn when_the_api_server_is_down_traffic_keeps_flowing_and_status_says_so() {
    let c = Cluster::start(&config(33));
    let one = Backend::start("one");
    let two = Backend::start("two");
    let vip = echo_service(&c, &one, 33);

    c.rt.block_on(c.api.set_down(true)).unwrap();
    c.wait_until("status to say disconnected", || {
        c.status()["connected"] == false
    });
    assert!(
        crate::admin::scrape(c.admin()).contains("gatehouse_kubernetes_connected 0"),
        "metrics say disconnected"
    );
    // The last known state is served, for as long as it takes.
    for _ in 0..20 {
        assert_eq!(ask(vip).unwrap(), "one");
    }
    // The log is read from the child's stderr by another thread: wait for the line.
    assert!(
        c.gw.wait_for("serving the last known state", 0, WAIT)
            .is_some()
    );

    // Changed while we could not see it: reconciled when the server is back.
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("apps", "echo", &[two.addr()]),
    );
    c.rt.block_on(c.api.set_down(false)).unwrap();
    ask_until(&c, vip, "two");
    c.wait_until("status to say connected", || {
        c.status()["connected"] == true
    });
}

#[test]
fn httproutes_from_the_cluster_route_like_the_file_ones() {
    let c = Cluster::start(&config(34));
    let sonarr = Backend::start("sonarr");
    let radarr = Backend::start("radarr");
    let port = free_port();
    for (name, b) in [("sonarr", &sonarr), ("radarr", &radarr)] {
        c.apply(
            &Resource::SERVICE,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "media"},
                "spec": {"type": "ClusterIP", "ports": [{"name": "echo", "port": 80, "targetPort": 7000}]},
            }),
        );
        c.apply(&Resource::ENDPOINT_SLICE, slice("media", name, &[b.addr()]));
    }
    c.apply(
        &Resource::GATEWAY,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "internal", "namespace": "infra", "generation": 1},
            "spec": {"gatewayClassName": "gatehouse", "listeners": [
                {"name": "web", "port": port, "protocol": "HTTP", "hostname": "*.lab.test",
                 "allowedRoutes": {"namespaces": {"from": "All"}}}
            ]},
        }),
    );
    let route = |name: &str, rules: Value| {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "media", "generation": 1},
            "spec": {
                "parentRefs": [{"name": "internal", "namespace": "infra"}],
                "hostnames": ["media.lab.test"],
                "rules": rules,
            },
        })
    };
    c.apply(
        &Resource::HTTP_ROUTE,
        route(
            "media",
            json!([
                {"matches": [{"path": {"type": "PathPrefix", "value": "/sonarr"}}],
                 "backendRefs": [{"name": "sonarr", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/radarr"}}],
                 "backendRefs": [{"name": "radarr", "port": 80}]},
            ]),
        ),
    );
    // A route with a field Gatehouse cannot honour is left out, and says why in its status.
    c.apply(
        &Resource::HTTP_ROUTE,
        route(
            "sticky",
            json!([{"sessionPersistence": {"sessionName": "s"},
                    "backendRefs": [{"name": "sonarr", "port": 80}]}]),
        ),
    );

    let gw: SocketAddr = format!("127.0.34.1:{port}").parse().unwrap();
    let get = |path: &str| {
        curl_get(
            &format!("http://media.lab.test{path}"),
            &[("media.lab.test", 80, gw)],
            None,
            &[],
        )
    };
    c.wait_until("the route to serve", || {
        get("/sonarr/x").status == Some(200)
    });
    assert_eq!(get("/sonarr/x").body.trim(), "sonarr");
    assert_eq!(get("/radarr").body.trim(), "radarr");
    assert_eq!(get("/other").status, Some(404));

    c.wait_until("the Gateway's status", || {
        c.api
            .get(&Resource::GATEWAY, "infra", "internal")
            .is_some_and(|g| g["status"]["addresses"][0]["value"] == "127.0.34.1")
    });
    let g = c.api.get(&Resource::GATEWAY, "infra", "internal").unwrap();
    assert_eq!(g["status"]["conditions"][0]["status"], "True", "{g}");
    assert_eq!(g["status"]["listeners"][0]["attachedRoutes"], 1, "{g}");
    c.wait_until("the routes' status", || {
        c.api
            .get(&Resource::HTTP_ROUTE, "media", "sticky")
            .is_some_and(|r| !r["status"]["parents"].is_null())
    });
    let ok = c.api.get(&Resource::HTTP_ROUTE, "media", "media").unwrap();
    assert_eq!(
        ok["status"]["parents"][0]["conditions"][0]["status"], "True",
        "{ok}"
    );
    let bad = c.api.get(&Resource::HTTP_ROUTE, "media", "sticky").unwrap();
    let accepted = &bad["status"]["parents"][0]["conditions"][0];
    assert_eq!(accepted["status"], "False", "{bad}");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap()
            .contains("sessionPersistence"),
        "{bad}"
    );
    let k = c.status();
    assert_eq!(k["rejected"][0]["object"], "HTTPRoute media/sticky", "{k}");
}

#[test]
fn a_node_that_is_not_vrrp_master_serves_but_does_not_write_status() {
    // The instance holding the pool runs on an interface that does not exist: it never becomes
    // master, so this node must leave status to the master, while serving all the same (its
    // listeners are bound, ready for a takeover).
    let c = Cluster::start(
        "pools:
  - name: lan
    addresses: [127.0.35.1-127.0.35.20]
vrrp:
  - name: lan
    interface: gh-missing0
    vrid: 35
    addresses: [\"pool:lan\"]
kubernetes:
  kubeconfig: KUBECONFIG_PATH
  pool: lan
admin:
  listen: 127.0.0.1:0
",
    );
    let one = Backend::start("one");
    echo_service(&c, &one, 35);
    c.wait_until("the provider to report", || {
        c.status()["services"]["apps/echo"][0] == "127.0.35.1"
    });
    assert_eq!(c.status()["writes_status"], false);
    // Longer than the writer's recheck period: still nothing written.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(c.ingress("apps", "echo"), None);
    assert!(c.api.writes().is_empty(), "writes: {:?}", c.api.writes());
}

#[test]
fn with_a_cache_file_a_restart_serves_the_last_state_while_the_api_server_is_down() {
    let cache_dir = TempDir::new();
    let cache = cache_dir.path().join("kubernetes.json");
    let config = config(36).replace(
        "  pool: lan\n",
        &format!("  pool: lan\n  cacheFile: {}\n", cache.display()),
    );
    let mut c = Cluster::start(&config);
    let one = Backend::start("one");
    let vip = echo_service(&c, &one, 36);
    c.wait_until("the cache file", || cache.exists());

    // Everything restarts; the API server does not come back.
    c.gw.signal("TERM");
    c.gw.wait_exit(WAIT).expect("gatehouse stopped");
    c.rt.block_on(c.api.set_down(true)).unwrap();
    c.gw = Gatehouse::start(BIN, &config.replace("KUBECONFIG_PATH", &c.kubeconfig()));
    ask_until(&c, vip, "one");
    let k = c.status();
    assert_eq!(k["connected"], false, "{k}");
    assert!(k["from_cache"].is_string(), "{k}");
    assert!(
        c.gw.wait_for("serving the objects of the cache file", 0, WAIT)
            .is_some()
    );

    // The API server is back, with a change made meanwhile: the cluster wins.
    let two = Backend::start("two");
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("apps", "echo", &[two.addr()]),
    );
    c.rt.block_on(c.api.set_down(false)).unwrap();
    ask_until(&c, vip, "two");
    c.wait_until("status to leave the cache", || {
        c.status()["from_cache"].is_null()
    });
}

#[test]
fn an_https_gateway_serves_its_secrets_certificate_follows_renewals_and_survives_a_bad_one() {
    let c = Cluster::start(&config(37));
    let site = Backend::start("site");
    let dir = TempDir::new();
    let ca = gatehouse_testkit::TestCa::new("cluster-ca");
    let cacert = dir.path().join("ca.pem");
    ca.write_pem(&cacert);
    let secret = |stem: &str| {
        let cert = ca.issue(
            dir.path(),
            stem,
            &["*.lab.test"],
            gatehouse_testkit::KeyType::Ecdsa,
        );
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "wildcard", "namespace": "infra"},
            "data": {"tls.crt": base64(cert.pem().as_bytes()), "tls.key": base64(cert.key_pem().as_bytes())},
        })
    };
    c.apply(&Resource::SECRET, secret("first"));
    c.apply(
        &Resource::SERVICE,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "site", "namespace": "infra"},
            "spec": {"type": "ClusterIP", "ports": [{"name": "echo", "port": 80}]},
        }),
    );
    c.apply(
        &Resource::ENDPOINT_SLICE,
        slice("infra", "site", &[site.addr()]),
    );
    let port = free_port();
    c.apply(
        &Resource::GATEWAY,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "edge", "namespace": "infra"},
            "spec": {"gatewayClassName": "gatehouse", "listeners": [{
                "name": "https", "port": port, "protocol": "HTTPS", "hostname": "*.lab.test",
                "tls": {"mode": "Terminate", "certificateRefs": [{"name": "wildcard"}]},
            }]},
        }),
    );
    c.apply(
        &Resource::HTTP_ROUTE,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "site", "namespace": "infra"},
            "spec": {
                "parentRefs": [{"name": "edge"}],
                "hostnames": ["www.lab.test"],
                "rules": [{"backendRefs": [{"name": "site", "port": 80}]}],
            },
        }),
    );
    let gw: SocketAddr = format!("127.0.37.1:{port}").parse().unwrap();
    let get = || {
        curl_get(
            "https://www.lab.test/",
            &[("www.lab.test", 443, gw)],
            Some(&cacert),
            &[],
        )
    };
    c.wait_until("HTTPS through the Gateway", || get().status == Some(200));
    let r = get();
    assert_eq!(r.body.trim(), "site");
    assert_eq!(r.peer_cn.as_deref(), Some("first"));

    // cert-manager renews the Secret: new handshakes get the new certificate.
    c.apply(&Resource::SECRET, secret("second"));
    c.wait_until("the renewed certificate", || {
        get().peer_cn.as_deref() == Some("second")
    });

    // A broken renewal (a key that is not the certificate's): the last good pair stays in
    // use, the Gateway stays up; the next good one is taken.
    let mut broken = secret("broken");
    broken["data"]["tls.key"] = secret("other")["data"]["tls.key"].clone();
    c.apply(&Resource::SECRET, broken);
    c.wait_until("the warning about the broken Secret", || {
        c.gw.logs().contains("its previous version stays in use")
    });
    assert_eq!(get().peer_cn.as_deref(), Some("second"));
    assert!(c.status()["rejected"].as_array().is_none_or(Vec::is_empty));
    c.apply(&Resource::SECRET, secret("third"));
    c.wait_until("the next good certificate", || {
        get().peer_cn.as_deref() == Some("third")
    });
}

#[test]
fn removing_the_kubernetes_section_removes_the_clusters_objects() {
    let c = Cluster::start(&config(38));
    let one = Backend::start("one");
    let vip = echo_service(&c, &one, 38);
    let without = config(38).replace(
        "kubernetes:\n  kubeconfig: KUBECONFIG_PATH\n  pool: lan\n",
        "",
    );
    assert!(!without.contains("kubernetes"));
    c.gw.write_config(&without);
    c.wait_until("the Service's listener to close", || ask(vip).is_err());
    assert!(c.status().is_null(), "no kubernetes part: {}", c.status());
}
