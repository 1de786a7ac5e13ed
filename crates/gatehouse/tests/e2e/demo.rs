//! `gatehouse demo`, as the README tells a newcomer to run it: the commands it prints work.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use gatehouse_testkit::curl_get;

use crate::{BIN, WAIT};

/// The demo on free ports; returns the child, the TCP and TLS gateway addresses and the CA
/// file it printed.
fn start_demo() -> (std::process::Child, SocketAddr, SocketAddr, PathBuf) {
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0", "--tls-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut web, mut tls, mut ca) = (None, None, None);
    while web.is_none() || tls.is_none() || ca.is_none() {
        let line = rx.recv_timeout(WAIT).expect("the demo prints its commands");
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["curl", url] = words[..] {
            web = url
                .strip_prefix("http://")
                .and_then(|u| u.trim_end_matches('/').parse().ok());
        }
        if let ["openssl", "s_client", "-connect", addr, ..] = words[..] {
            tls = addr.parse().ok();
        }
        if let ["curl", "--cacert", file, ..] = words[..] {
            ca = Some(PathBuf::from(file));
        }
    }
    (child, web.unwrap(), tls.unwrap(), ca.unwrap())
}

#[test]
fn the_demo_serves_http_and_https_as_it_says() {
    let (mut child, web, tls, ca) = start_demo();
    let guard = KillOnDrop(&mut child);
    let plain = curl_get(&format!("http://{web}/"), &[], None, &[]);
    assert_eq!(plain.status, Some(200), "{}", plain.stderr);
    assert!(plain.body.starts_with("hello from "), "{}", plain.body);
    let secure = curl_get(
        "https://demo.example.test/",
        &[("demo.example.test", 443, tls)],
        Some(&ca),
        &[],
    );
    assert_eq!(secure.status, Some(200), "{}", secure.stderr);
    assert_eq!(secure.verify_result, Some(0), "{}", secure.stderr);
    assert!(secure.body.starts_with("hello from "), "{}", secure.body);
    assert_eq!(secure.peer_cn.as_deref(), Some("example.test"));
    drop(guard);
    // Its certificate files go when it does.
    assert!(!ca.exists(), "{} left behind", ca.display());
}

/// Stops the demo with SIGTERM (so it cleans up) and waits for it.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            crate::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
