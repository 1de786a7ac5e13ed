//! The example configs in `examples/`, run for real (ports and app addresses swapped for
//! free ones), checked the way their comments say they behave: seed 003 written as a
//! Gatehouse config, and the same read from its Gateway API manifests.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use gatehouse_testkit::{Backend, Curl, Gatehouse, TempDir, curl_get};

use crate::{BIN, WAIT};

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

/// The apps of seed 003 and the ports the examples give them.
const APPS: [(&str, u16); 3] = [("sonarr", 8989), ("radarr", 7878), ("grafana", 3000)];

/// A seed-003 example running: the gateway, its HTTP and HTTPS addresses, the HTTPS port the
/// redirect names, the directory it runs from, and the apps behind it.
struct Seed003 {
    g: Gatehouse,
    http: SocketAddr,
    https: SocketAddr,
    https_port: u16,
    dir: TempDir,
    _apps: Vec<Backend>,
}

/// Copies the example `config` (and the files under `examples/` it names, `extra`) into a
/// fresh directory with the example's ports 8080/8443 swapped for free ones and its app
/// addresses for test backends, and runs it.
fn run_seed_003(config: &str, extra: &[&str]) -> Seed003 {
    let apps: Vec<Backend> = APPS.iter().map(|(name, _)| Backend::start(name)).collect();
    let (http_port, https_port) = (free_port(), free_port());
    let dir = TempDir::new();
    let adapt = |text: String| {
        let mut text = text
            .replace("port: 8080", &format!("port: {http_port}"))
            .replace("port: 8443", &format!("port: {https_port}"));
        for ((_, port), backend) in APPS.iter().zip(&apps) {
            text = text.replace(&format!("127.0.0.1:{port}"), &backend.addr().to_string());
        }
        text
    };
    for file in ["tls/example.crt", "tls/example.key"]
        .iter()
        .chain(extra)
        .chain(&[config])
    {
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let from = examples().join(file);
        if file.ends_with(".yaml") {
            std::fs::write(&to, adapt(std::fs::read_to_string(from).unwrap())).unwrap();
        } else {
            std::fs::copy(from, to).unwrap();
        }
    }
    let g = Gatehouse::run_file(BIN, &dir.path().join(config));
    Seed003 {
        http: g.addr("internal-gateway/http"),
        https: g.addr("internal-gateway/https"),
        g,
        https_port,
        dir,
        _apps: apps,
    }
}

impl Seed003 {
    /// `https://HOST/`, verified against the example CA.
    fn https(&self, host: &str) -> Curl {
        let ca = examples().join("tls/ca.crt");
        curl_get(
            &format!("https://{host}/"),
            &[(host, 443, self.https)],
            Some(&ca),
            &[],
        )
    }

    /// `http://HOST/PATH` is redirected to the HTTPS listener, with host, path and query.
    fn assert_redirects(&self, host: &str, path: &str) {
        let c = curl_get(
            &format!("http://{host}{path}"),
            &[(host, 80, self.http)],
            None,
            &["-i"],
        );
        assert_eq!(c.status, Some(301), "{}", c.stderr);
        let location = format!("location: https://{host}:{}{path}", self.https_port);
        assert!(
            c.body.to_ascii_lowercase().contains(&location),
            "{}",
            c.body
        );
    }

    /// `https://HOST/` is answered by `app`, with the wildcard certificate.
    fn assert_serves(&self, host: &str, app: &str) {
        let c = self.https(host);
        assert_eq!(c.status, Some(200), "{host}: {}", c.stderr);
        assert_eq!(c.body, format!("{app}\n"));
        assert_eq!(c.peer_cn.as_deref(), Some("example.test"));
    }
}

/// Seed 003: HTTP redirects to HTTPS, HTTPS terminates with the wildcard certificate, one
/// route per app, and names nothing serves are refused.
#[test]
fn seed_003_gateway_redirects_terminates_and_routes_each_app() {
    let s = run_seed_003("seed-003-gateway.yaml", &[]);
    s.assert_redirects("sonarr.example.test", "/calendar?week=2");
    for (name, _) in APPS {
        s.assert_serves(&format!("{name}.example.test"), name);
    }
    // A name under the wildcard that no route serves: 404 from Gatehouse.
    let c = s.https("plex.example.test");
    assert_eq!(c.status, Some(404), "{}", c.stderr);
    // A name outside the listener's hostname: no TLS listener takes it.
    let c = s.https("other.test");
    assert_eq!(c.status, None, "{}", c.stderr);
    assert_ne!(c.exit_code, 0);
}

/// Seed 003 from its Gateway API manifests (examples/gateway-api/), through the mappings in
/// examples/gateway-api.yaml; a manifest edit reloads.
#[test]
fn gateway_api_manifests_redirect_and_route_over_https() {
    let s = run_seed_003(
        "gateway-api.yaml",
        &["gateway-api/gateway.yaml", "gateway-api/apps.yaml"],
    );
    s.assert_redirects("radarr.example.test", "/movies?page=3");
    s.assert_serves("sonarr.example.test", "sonarr");

    // Editing a manifest is a reload: sonarr's HTTPRoute now answers for another name.
    let mark = s.g.mark();
    let apps_file = s.dir.path().join("gateway-api/apps.yaml");
    let text = std::fs::read_to_string(&apps_file).unwrap();
    assert!(text.contains("sonarr.example.test"));
    let tmp = s.dir.path().join("gateway-api/.apps.yaml.tmp");
    std::fs::write(&tmp, text.replace("sonarr.example.test", "tv.example.test")).unwrap();
    std::fs::rename(&tmp, &apps_file).unwrap();
    assert!(
        s.g.wait_for("config reloaded", mark, WAIT).is_some(),
        "{}",
        s.g.logs()
    );
    s.assert_serves("tv.example.test", "sonarr");
}
