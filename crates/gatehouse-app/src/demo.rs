//! `gatehouse demo`: a gateway on 127.0.0.1 in front of two built-in HTTP backends, with a
//! third endpoint that is not running so that health checks and retries show in the log, and
//! a TLS listener that terminates with a demo certificate in front of the same backends. It
//! runs through the same pipeline as a config file: the embedded YAML below is compiled and
//! served by the same [`Supervisor`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_config::load_str;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::reload::{RunError, drain, log_warnings};
use crate::shutdown::{Request, Signals};
use crate::supervisor::Supervisor;

/// The demo's config; `{GATEWAY_PORT}` and the backend ports are filled in at start.
pub const DEMO_CONFIG: &str = r#"# The config `gatehouse demo` runs. Save it, edit it, and run it with
#   gatehouse run -c demo.yaml
gateways:
  - name: demo
    addresses: [127.0.0.1]          # loopback only
    listeners:
      - name: web
        port: {GATEWAY_PORT}
        protocol: HTTP               # routed per request; one log line per request
        backend: hello
      - name: tls
        port: {TLS_PORT}
        protocol: HTTPS              # TLS terminated here, then the same routing
        tls:
          certificates:              # a demo certificate for *.example.test (from examples/tls/)
            - certFile: {CERT_DIR}/demo.crt
              keyFile: {CERT_DIR}/demo.key
        backend: hello
backends:
  - name: hello
    balance: RoundRobin
    endpoints:
      - 127.0.0.1:{BLUE_PORT}        # built-in backend "blue"
      - 127.0.0.1:{GREEN_PORT}       # built-in backend "green"
      - 127.0.0.1:{RED_PORT}         # "red" is not running: health checks take it out
    healthCheck:
      protocol: HTTP
      path: /healthz
      interval: 1s
      fall: 2
      rise: 2
"#;

/// The demo certificate (`example.test`, `*.example.test`), its key and its CA: the ones in
/// `examples/tls/`, public and for demonstrations only.
const DEMO_CERT: &str = include_str!("../../../examples/tls/example.crt");
const DEMO_KEY: &str = include_str!("../../../examples/tls/example.key");
const DEMO_CA: &str = include_str!("../../../examples/tls/ca.crt");

/// A directory holding the demo certificate files, removed when dropped.
struct DemoFiles(PathBuf);

impl DemoFiles {
    fn write() -> std::io::Result<DemoFiles> {
        let dir = std::env::temp_dir().join(format!("gatehouse-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let files = DemoFiles(dir);
        for (name, text) in [
            ("demo.crt", DEMO_CERT),
            ("demo.key", DEMO_KEY),
            ("ca.crt", DEMO_CA),
        ] {
            std::fs::write(files.0.join(name), text)?;
        }
        Ok(files)
    }
}

impl Drop for DemoFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `port` if it can be bound on 127.0.0.1, else 0 (a free one).
async fn port_or_free(port: u16) -> u16 {
    if TcpListener::bind(("127.0.0.1", port)).await.is_ok() {
        port
    } else {
        0
    }
}

/// Runs the demo until SIGINT/SIGTERM. `port` and `tls_port` are the gateways' ports (if one
/// is taken, a free one is used and printed).
pub async fn demo(port: u16, tls_port: u16) -> Result<(), RunError> {
    let mut signals = Signals::install().map_err(|e| RunError::Setup(e.to_string()))?;
    let setup = |e: std::io::Error| RunError::Setup(format!("cannot start the demo backends: {e}"));
    let blue = TcpListener::bind("127.0.0.1:0").await.map_err(setup)?;
    let green = TcpListener::bind("127.0.0.1:0").await.map_err(setup)?;
    // A port with nothing behind it: bind, note the port, close.
    let red_port = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(setup)?
        .local_addr()
        .map_err(setup)?
        .port();
    let (blue_addr, green_addr) = (
        blue.local_addr().map_err(setup)?,
        green.local_addr().map_err(setup)?,
    );
    tokio::spawn(hello_backend(blue, "blue"));
    tokio::spawn(hello_backend(green, "green"));

    let files = DemoFiles::write()
        .map_err(|e| RunError::Setup(format!("cannot write the demo certificate: {e}")))?;
    let text = DEMO_CONFIG
        .replace("{GATEWAY_PORT}", &port_or_free(port).await.to_string())
        .replace("{TLS_PORT}", &port_or_free(tls_port).await.to_string())
        .replace("{CERT_DIR}", &files.0.display().to_string())
        .replace("{BLUE_PORT}", &format!("{:<5}", blue_addr.port()))
        .replace("{GREEN_PORT}", &format!("{:<5}", green_addr.port()))
        .replace("{RED_PORT}", &format!("{red_port:<5}"));
    let loaded = load_str("<demo>", &text).map_err(RunError::Config)?;
    log_warnings(&loaded);
    // No `admin` in the demo's config: its telemetry is not read.
    let supervisor = Supervisor::start(loaded.config, std::sync::Arc::new(crate::Telemetry::new()))
        .await
        .map_err(RunError::Apply)?;
    let addrs = supervisor.local_addrs();
    let addr_of = |name: &str| {
        addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| RunError::Setup(format!("the demo listener {name} did not start")))
    };
    print_welcome(addr_of("demo/web")?, addr_of("demo/tls")?, &files.0, &text);

    let reason = loop {
        match signals.next().await {
            Request::Reload => tracing::info!("the demo has no config file to reload"),
            Request::Stop(name) => break name,
        }
    };
    drain(supervisor, reason, &mut signals).await;
    Ok(())
}

fn print_welcome(gateway: SocketAddr, tls: SocketAddr, files: &Path, config: &str) {
    let url = format!("http://{gateway}/");
    let port = tls.port();
    println!(
        "\nGatehouse demo: an HTTP gateway on {gateway} balancing over two built-in backends
(blue and green) and a third endpoint (red) that is not running, and an HTTPS gateway on
{tls} that terminates with a demo certificate for *.example.test in front of them.

Try, in another terminal:
  curl {url}
  for i in 1 2 3 4; do curl -s {url}; done      # blue and green take turns
  curl -s {url}healthz
  curl --cacert {ca} --resolve demo.example.test:{port}:127.0.0.1 https://demo.example.test:{port}/
  openssl s_client -connect {tls} -servername demo.example.test -brief </dev/null

Within two seconds the log says `endpoint down` for red; until then, a request that
lands on red is retried on blue or green, and the client never sees it. The backends
see your address in X-Forwarded-For; the log has one line per request.

The config this demo runs (check your own with `gatehouse check -c FILE`):
",
        ca = files.join("ca.crt").display()
    );
    for line in config.lines() {
        println!("    {line}");
    }
    println!("\nCtrl-C stops it (open connections drain first).\n");
}

/// A tiny HTTP/1.1 server: answers every request with its own name, the path asked for, and
/// the client address it saw; `/healthz` answers `ok`.
async fn hello_backend(listener: TcpListener, name: &'static str) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(30), answer(stream, peer, name)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, peer: SocketAddr, name: &str) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    // The client's own address, as the gateway passes it on.
    let client = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-forwarded-for")
                .then(|| value.trim())
        })
        .unwrap_or("unknown");
    let body = if path == "/healthz" {
        "ok\n".to_owned()
    } else {
        format!("hello from {name}: you asked for {path}, via {peer}, for client {client}\n")
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
