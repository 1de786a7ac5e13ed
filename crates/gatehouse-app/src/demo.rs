//! `gatehouse demo`: a gateway on 127.0.0.1 in front of two built-in HTTP backends, with a
//! third endpoint that is not running so that health checks and retries show in the log. It
//! runs through the same pipeline as a config file: the embedded YAML below is compiled and
//! served by the same [`Supervisor`].

use std::net::SocketAddr;
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
        protocol: TCP
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

/// Runs the demo until SIGINT/SIGTERM. `port` is the gateway's port (if it is taken, a free
/// one is used and printed).
pub async fn demo(port: u16) -> Result<(), RunError> {
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

    let port = if TcpListener::bind(("127.0.0.1", port)).await.is_ok() {
        port
    } else {
        0
    };
    let text = DEMO_CONFIG
        .replace("{GATEWAY_PORT}", &port.to_string())
        .replace("{BLUE_PORT}", &format!("{:<5}", blue_addr.port()))
        .replace("{GREEN_PORT}", &format!("{:<5}", green_addr.port()))
        .replace("{RED_PORT}", &format!("{red_port:<5}"));
    let loaded = load_str("<demo>", &text).map_err(RunError::Config)?;
    log_warnings(&loaded);
    let supervisor = Supervisor::start(loaded.config)
        .await
        .map_err(RunError::Apply)?;
    let gateway = supervisor
        .local_addrs()
        .first()
        .map(|(_, a)| *a)
        .ok_or_else(|| RunError::Setup("the demo gateway did not start".into()))?;
    print_welcome(gateway, &text);

    let reason = loop {
        match signals.next().await {
            Request::Reload => tracing::info!("the demo has no config file to reload"),
            Request::Stop(name) => break name,
        }
    };
    drain(supervisor, reason, &mut signals).await;
    Ok(())
}

fn print_welcome(gateway: SocketAddr, config: &str) {
    let url = format!("http://{gateway}/");
    println!(
        "\nGatehouse demo: a TCP gateway on {gateway} balancing over two built-in backends
(blue and green) and a third endpoint (red) that is not running.

Try, in another terminal:
  curl {url}
  for i in 1 2 3 4; do curl -s {url}; done      # blue and green take turns
  curl -s {url}healthz

Within two seconds the log says `endpoint down` for red; until then, a connection
that lands on red is retried on blue or green, and the client never sees it.

The config this demo runs (check your own with `gatehouse check -c FILE`):
"
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
    let request_line = String::from_utf8_lossy(&head);
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let body = if path == "/healthz" {
        "ok\n".to_owned()
    } else {
        format!("hello from {name}: you asked for {path}, from {peer}\n")
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
