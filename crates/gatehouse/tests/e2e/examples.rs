//! The example configs in `examples/`, run for real (ports and app addresses swapped for
//! free ones), checked the way their comments say they behave: seed 003 written as a
//! Gatehouse config, and the same read from its Gateway API manifests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use gatehouse_testkit::{Backend, Gatehouse, TempDir, curl_get};

use crate::BIN;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Seed 003: HTTP redirects to HTTPS, HTTPS terminates with the wildcard certificate, one
/// route per app, and names nothing serves are refused.
#[test]
fn seed_003_gateway_redirects_terminates_and_routes_each_app() {
    let apps = [("sonarr", 8989), ("radarr", 7878), ("grafana", 3000)];
    let backends: Vec<Backend> = apps.iter().map(|(name, _)| Backend::start(name)).collect();
    let (http_port, https_port) = (free_port(), free_port());
    let mut yaml = std::fs::read_to_string(examples().join("seed-003-gateway.yaml")).unwrap();
    yaml = yaml
        .replace("port: 8080", &format!("port: {http_port}"))
        .replace("port: 8443", &format!("port: {https_port}"));
    for ((_, port), backend) in apps.iter().zip(&backends) {
        yaml = yaml.replace(&format!("127.0.0.1:{port}"), &backend.addr().to_string());
    }
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    for file in ["example.crt", "example.key"] {
        std::fs::copy(
            examples().join("tls").join(file),
            dir.path().join("tls").join(file),
        )
        .unwrap();
    }
    let config = dir.path().join("gatehouse.yaml");
    std::fs::write(&config, yaml).unwrap();
    let g = Gatehouse::run_file(BIN, &config);
    let http = g.addr("internal-gateway/http");
    let https = g.addr("internal-gateway/https");
    let ca = examples().join("tls/ca.crt");

    // http:// -> https:// with the same host, path and query.
    let c = curl_get(
        "http://sonarr.example.test/calendar?week=2",
        &[("sonarr.example.test", 80, http)],
        None,
        &["-i"],
    );
    assert_eq!(c.status, Some(301), "{}", c.stderr);
    let location = format!("location: https://sonarr.example.test:{https_port}/calendar?week=2");
    assert!(
        c.body.to_ascii_lowercase().contains(&location),
        "{}",
        c.body
    );

    // Each app by its name, over verified HTTPS, with the wildcard certificate.
    for (name, _) in apps {
        let host = format!("{name}.example.test");
        let c = curl_get(
            &format!("https://{host}/"),
            &[(&host, 443, https)],
            Some(&ca),
            &[],
        );
        assert_eq!(c.status, Some(200), "{host}: {}", c.stderr);
        assert_eq!(c.body, format!("{name}\n"));
        assert_eq!(c.peer_cn.as_deref(), Some("example.test"));
    }
    // A name under the wildcard that no route serves: 404 from Gatehouse.
    let c = curl_get(
        "https://plex.example.test/",
        &[("plex.example.test", 443, https)],
        Some(&ca),
        &[],
    );
    assert_eq!(c.status, Some(404), "{}", c.stderr);
    // A name outside the listener's hostname: no TLS listener takes it.
    let c = curl_get(
        "https://other.test/",
        &[("other.test", 443, https)],
        Some(&ca),
        &[],
    );
    assert_eq!(c.status, None, "{}", c.stderr);
    assert_ne!(c.exit_code, 0);
}

/// Seed 003 from its Gateway API manifests (examples/gateway-api/), through the mappings in
/// examples/gateway-api.yaml; a manifest edit reloads.
#[test]
fn gateway_api_manifests_redirect_and_route_over_https() {
    let apps = [("sonarr", 8989), ("radarr", 7878), ("grafana", 3000)];
    let backends: Vec<Backend> = apps.iter().map(|(name, _)| Backend::start(name)).collect();
    let (http_port, https_port) = (free_port(), free_port());
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    std::fs::create_dir_all(dir.path().join("gateway-api")).unwrap();
    for file in ["example.crt", "example.key"] {
        std::fs::copy(
            examples().join("tls").join(file),
            dir.path().join("tls").join(file),
        )
        .unwrap();
    }
    for file in ["gateway.yaml", "apps.yaml"] {
        let text = std::fs::read_to_string(examples().join("gateway-api").join(file)).unwrap();
        let text = text
            .replace("port: 8080", &format!("port: {http_port}"))
            .replace("port: 8443", &format!("port: {https_port}"));
        std::fs::write(dir.path().join("gateway-api").join(file), text).unwrap();
    }
    let mut yaml = std::fs::read_to_string(examples().join("gateway-api.yaml")).unwrap();
    for ((_, port), backend) in apps.iter().zip(&backends) {
        yaml = yaml.replace(&format!("127.0.0.1:{port}"), &backend.addr().to_string());
    }
    let config = dir.path().join("gatehouse.yaml");
    std::fs::write(&config, yaml).unwrap();
    let g = Gatehouse::run_file(BIN, &config);
    let http = g.addr("internal-gateway/http");
    let https = g.addr("internal-gateway/https");
    let ca = examples().join("tls/ca.crt");

    let c = curl_get(
        "http://radarr.example.test/movies?page=3",
        &[("radarr.example.test", 80, http)],
        None,
        &["-i"],
    );
    assert_eq!(c.status, Some(301), "{}", c.stderr);
    let location = format!("location: https://radarr.example.test:{https_port}/movies?page=3");
    assert!(
        c.body.to_ascii_lowercase().contains(&location),
        "{}",
        c.body
    );

    let c = curl_get(
        "https://sonarr.example.test/",
        &[("sonarr.example.test", 443, https)],
        Some(&ca),
        &[],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    assert_eq!(c.body, "sonarr\n");
    assert_eq!(c.peer_cn.as_deref(), Some("example.test"));

    // Editing a manifest is a reload: sonarr's HTTPRoute now answers for another name.
    let mark = g.mark();
    let apps_file = dir.path().join("gateway-api").join("apps.yaml");
    let text = std::fs::read_to_string(&apps_file).unwrap();
    assert!(text.contains("sonarr.example.test"));
    let tmp = dir.path().join("gateway-api").join(".apps.yaml.tmp");
    std::fs::write(&tmp, text.replace("sonarr.example.test", "tv.example.test")).unwrap();
    std::fs::rename(&tmp, &apps_file).unwrap();
    assert!(
        g.wait_for("config reloaded", mark, crate::WAIT).is_some(),
        "{}",
        g.logs()
    );
    let c = curl_get(
        "https://tv.example.test/",
        &[("tv.example.test", 443, https)],
        Some(&ca),
        &[],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    assert_eq!(c.body, "sonarr\n");
}
