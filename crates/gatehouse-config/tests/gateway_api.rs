//! Gateway API manifests (`gatewayApi`): read from files next to a config, turned into the
//! same model as the config's own gateways and routes; every problem is reported at its
//! file, line and column, in the manifest when it is in the manifest.

// A test crate: a failed expectation should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use gatehouse_config::*;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A fresh directory holding `gatehouse.yaml` and `k8s/FILE` for each manifest given.
fn setup(config: &str, manifests: &[(&str, &str)]) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-gwapi-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("k8s")).unwrap();
    for (name, text) in manifests {
        std::fs::write(dir.join("k8s").join(name), text).unwrap();
    }
    let path = dir.join("gatehouse.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

const CONFIG: &str = "gatewayApi:
  manifests: [k8s/]
  addresses: {infra/gw: [127.0.0.1]}
  services: {apps/web:80: web}
backends:
  - name: web
    endpoints: [\"127.0.0.1:9001\"]
";

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: infra
spec:
  gatewayClassName: cilium
  listeners:
    - name: web
      port: 8080
      protocol: HTTP
";

fn route(backend_ref: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: apps
spec:
  parentRefs:
    - name: gw
      namespace: infra
  rules:
    - backendRefs:
        - {backend_ref}
"
    )
}

fn refused(config: &str, manifests: &[(&str, &str)]) -> Diagnostics {
    match load_file(&setup(config, manifests)) {
        Ok(l) => panic!("expected errors, it compiled:\n{}", l.config.summary()),
        Err(d) => d,
    }
}

/// The one error, with the file (name ending) it is in, its line and column.
fn the_error(d: &Diagnostics) -> (&Diagnostic, String) {
    let errors: Vec<&Diagnostic> = d
        .items
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{}", d.render());
    let file = d.source.file_of(errors[0].pos).name.to_string();
    (errors[0], file)
}

#[test]
fn manifests_compile_and_attach() {
    let path = setup(
        CONFIG,
        &[
            ("gw.yaml", GATEWAY),
            ("route.yaml", &route("{name: web, port: 80}")),
        ],
    );
    let loaded = load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        loaded.warnings.items.len(),
        0,
        "{}",
        loaded.warnings.render()
    );
    let l = &loaded.config.listeners[0];
    assert_eq!(l.name, "gw/web");
    assert_eq!(l.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(l.http_routes.len(), 1);
    assert_eq!(l.http_routes[0].route, "web");
    assert_eq!(l.http_routes[0].rules[0].backends[0].backend, "web");
}

#[test]
fn a_missing_service_mapping_points_into_the_manifest_with_the_line_to_add() {
    let d = refused(
        CONFIG,
        &[
            ("gw.yaml", GATEWAY),
            ("route.yaml", &route("{name: api, port: 8080}")),
        ],
    );
    let (e, file) = the_error(&d);
    assert!(file.ends_with("k8s/route.yaml"), "{file}");
    assert_eq!((e.pos.line, e.pos.column), (12, 18));
    assert!(
        e.message.contains("Service `apps/api:8080`"),
        "{}",
        e.message
    );
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .contains("add `apps/api:8080: BACKEND` under `gatewayApi.services`"),
        "{:?}",
        e.hint
    );
    // Rendering names the manifest and quotes its line.
    let text = d.render();
    assert!(text.contains("k8s/route.yaml:12:18"), "{text}");
    assert!(
        text.contains("12 |         - {name: api, port: 8080}"),
        "{text}"
    );
    assert!(
        d.one_line().contains("k8s/route.yaml:12:18: error:"),
        "{}",
        d.one_line()
    );
}

#[test]
fn a_missing_secret_mapping_names_the_line_to_add() {
    let gateway = format!(
        "{GATEWAY}    - name: tls
      port: 8443
      protocol: HTTPS
      tls:
        certificateRefs: [{{name: wild}}]
"
    );
    let d = refused(CONFIG, &[("gw.yaml", &gateway)]);
    let (e, file) = the_error(&d);
    assert!(file.ends_with("k8s/gw.yaml"), "{file}");
    assert_eq!((e.pos.line, e.pos.column), (16, 34));
    assert!(e.message.contains("Secret `infra/wild`"), "{}", e.message);
    assert!(e.hint.as_deref().unwrap().contains(
        "`infra/wild: {certFile: FILE.crt, keyFile: FILE.key}` under `gatewayApi.secrets`"
    ));
}

#[test]
fn a_gateway_without_addresses_needs_a_mapping() {
    let config = CONFIG.replace("  addresses: {infra/gw: [127.0.0.1]}\n", "");
    let d = refused(&config, &[("gw.yaml", GATEWAY)]);
    let (e, _) = the_error(&d);
    assert_eq!((e.pos.line, e.pos.column), (4, 9));
    assert!(
        e.message
            .contains("Gateway `infra/gw` has no `spec.addresses`"),
        "{}",
        e.message
    );
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .contains("`infra/gw: [\"ADDRESS\"]` under `gatewayApi.addresses`")
    );
}

#[test]
fn an_unknown_or_unsupported_field_is_named() {
    let gateway = GATEWAY.replace(
        "      protocol: HTTP\n",
        "      protocol: HTTP\n      bogus: 1\n",
    );
    let d = refused(CONFIG, &[("gw.yaml", &gateway)]);
    let (e, file) = the_error(&d);
    assert!(file.ends_with("k8s/gw.yaml"));
    assert_eq!((e.pos.line, e.pos.column), (12, 7));
    assert!(e.message.contains("field `bogus`"), "{}", e.message);

    let gateway = GATEWAY.replace(
        "  listeners:\n",
        "  infrastructure: {labels: {a: b}}\n  listeners:\n",
    );
    let d = refused(CONFIG, &[("gw.yaml", &gateway)]);
    let (e, _) = the_error(&d);
    assert_eq!((e.pos.line, e.pos.column), (8, 3));
    assert!(
        e.message
            .contains("field `infrastructure` is not supported"),
        "{}",
        e.message
    );
}

#[test]
fn errors_of_the_compiler_point_into_the_manifest() {
    let gateway = GATEWAY.replace("port: 8080", "port: 70000");
    let d = refused(CONFIG, &[("gw.yaml", &gateway)]);
    let (e, file) = the_error(&d);
    assert!(file.ends_with("k8s/gw.yaml"));
    assert_eq!((e.pos.line, e.pos.column), (10, 13));
    assert!(e.message.contains("`70000` is not a port"), "{}", e.message);
}

#[test]
fn unsupported_kinds_and_other_objects() {
    let others = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cilium}
spec: {controllerName: io.cilium/gateway-controller}
";
    let path = setup(
        CONFIG,
        &[
            ("gw.yaml", GATEWAY),
            ("other.yaml", others),
            ("route.yaml", &route("{name: web, port: 80}")),
        ],
    );
    let loaded = load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let warnings: Vec<&str> = loaded
        .warnings
        .items
        .iter()
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "Service `apps/web` is ignored: not a Gateway API object",
            "GatewayClass `cilium` is not used: Gatehouse is the implementation",
        ]
    );
    assert_eq!(loaded.warnings.items[1].pos.line, 6);

    // The route's namespace is the parentRef's default: `apps/gw` is not the Gateway.
    let wrong = route("{name: web, port: 80}").replace("      namespace: infra\n", "");
    let d = refused(CONFIG, &[("gw.yaml", GATEWAY), ("route.yaml", &wrong)]);
    let (e, _) = the_error(&d);
    assert_eq!((e.pos.line, e.pos.column), (8, 13));
    assert!(
        e.message
            .contains("Gateway `apps/gw`, which is not in the manifests"),
        "{}",
        e.message
    );
    assert!(e.hint.as_deref().unwrap().contains("namespace: infra"));
}

#[test]
fn a_simple_tcp_route_becomes_the_listener_backend() {
    let gateway = format!("{GATEWAY}    - {{name: db, port: 5432, protocol: TCP}}\n");
    let tcp = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: db}]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 80}]}]
";
    let path = setup(CONFIG, &[("gw.yaml", &gateway), ("tcp.yaml", tcp)]);
    let loaded = load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let db = loaded
        .config
        .listeners
        .iter()
        .find(|l| l.name == "gw/db")
        .unwrap();
    assert_eq!(db.routes[0].backend, "web");
}

#[test]
fn a_udp_route_becomes_the_udp_listener_backend_and_not_the_tcp_one() {
    // TCP and UDP on one port, as DNS needs: the UDPRoute serves only the UDP listener.
    let gateway = format!(
        "{GATEWAY}    - {{name: dns-udp, port: 53, protocol: UDP}}\n    - {{name: dns-tcp, port: 53, protocol: TCP}}\n"
    );
    let udp = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {name: dns, namespace: infra}
spec:
  parentRefs: [{name: gw, port: 53}]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 80}]}]
";
    let tcp = udp.replace("UDPRoute", "TCPRoute");
    let path = setup(
        CONFIG,
        &[("gw.yaml", &gateway), ("udp.yaml", udp), ("tcp.yaml", &tcp)],
    );
    let loaded = load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let find = |name: &str| {
        loaded
            .config
            .listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(find("gw/dns-udp").protocol, Protocol::Udp);
    assert_eq!(find("gw/dns-udp").routes[0].backend, "web");
    assert_eq!(find("gw/dns-tcp").routes[0].backend, "web");
    assert_eq!(loaded.config.sockets().len(), 3);

    // A UDPRoute naming a TCP listener is refused where it says so.
    let wrong = udp.replace("port: 53}", "sectionName: dns-tcp}");
    let d = refused(
        CONFIG,
        &[
            ("gw.yaml", &gateway),
            ("udp.yaml", &wrong),
            ("tcp.yaml", &tcp),
        ],
    );
    let (e, file) = the_error(&d);
    assert!(file.ends_with("k8s/udp.yaml"));
    assert!(
        e.message
            .contains("UDPRoute `infra/dns` attaches to `gw/dns-tcp`, which is not a UDP listener"),
        "{}",
        e.message
    );
}

#[test]
fn the_gateway_api_example_compiles_to_the_seed_003_config() {
    let from_manifests =
        load_file(&examples_dir().join("gateway-api.yaml")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        from_manifests.warnings.items.len(),
        0,
        "{}",
        from_manifests.warnings.render()
    );
    let native = load_file(&examples_dir().join("seed-003-gateway.yaml")).unwrap();
    // The same gateways, routes and backends; only the list of files read differs.
    let manifests: Vec<String> = from_manifests
        .config
        .manifests
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(manifests, ["apps.yaml", "gateway.yaml"]);
    let mut from_manifests_config = from_manifests.config.clone();
    from_manifests_config.manifests.clear();
    assert_eq!(from_manifests_config, native.config);
    for l in &from_manifests.config.listeners {
        assert!(l.bind.ip().is_loopback(), "{} binds {}", l.name, l.bind);
    }
}

#[test]
fn a_gateway_can_take_its_address_from_a_pool() {
    let config = CONFIG.replace(
        "  addresses: {infra/gw: [127.0.0.1]}\n",
        "  addresses: {infra/gw: [\"pool:lan\"]}\n",
    ) + "pools:\n  - name: lan\n    addresses: [127.0.20.1-127.0.20.9]\n";
    let loaded =
        load_file(&setup(&config, &[("gw.yaml", GATEWAY)])).unwrap_or_else(|d| panic!("{d}"));
    let l = &loaded.config.listeners[0];
    assert_eq!(l.bind, "127.0.20.1:8080".parse().unwrap());
    assert_eq!(
        loaded.config.pools["lan"].allocated,
        vec![("127.0.20.1".parse().unwrap(), "gw".to_owned())]
    );
}
