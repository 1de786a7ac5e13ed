//! The example configs in `examples/`, run for real (ports and app addresses swapped for
//! free ones), checked the way their comments say they behave.

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
