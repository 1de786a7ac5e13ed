//! Shutdown and drain, limits, timeouts, names, forwards, FREEBIND, IPv6.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use gatehouse_testkit::{Backend, Gatehouse, ask, connect, open};

use crate::{BIN, WAIT, one_listener, sleep};

#[test]
fn sigterm_stops_accepting_and_drains_open_connections() {
    let a = Backend::start("a");
    let g = Gatehouse::start(BIN, &one_listener(&[a.addr()], ""));
    let gw = g.addr("t/in");
    let (name, mut open) = open(gw).unwrap();
    assert_eq!(name, "a");

    let mut g = g;
    g.signal("TERM");
    assert!(g.wait_for("shutting down", 0, WAIT).is_some());
    sleep(Duration::from_millis(200));
    assert!(connect(gw).is_err(), "still accepting after SIGTERM");
    // The open connection keeps working during the drain.
    open.write_all(b"still here").unwrap();
    let mut back = [0u8; 11];
    open.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"1still here");
    assert!(
        g.wait_exit(Duration::from_millis(300)).is_none(),
        "exited before the drain finished"
    );
    drop(open);
    let status = g
        .wait_exit(WAIT)
        .expect("exits once the last connection closes");
    assert!(status.success(), "{status:?}");
    assert!(g.logs().contains("stopped"));
}

#[test]
fn drain_deadline_cuts_what_is_left() {
    let a = Backend::start("a");
    let yaml = one_listener(&[a.addr()], "") + "settings:\n  drainTimeout: 500ms\n";
    let mut g = Gatehouse::start(BIN, &yaml);
    let (name, mut open) = open(g.addr("t/in")).unwrap();
    assert_eq!(name, "a");
    let started = Instant::now();
    g.signal("INT");
    let status = g.wait_exit(WAIT).expect("exits after the drain timeout");
    assert!(status.success());
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "did not wait for the drain"
    );
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest); // closed by gatehouse: EOF or reset
    assert!(g.logs().contains("drain timeout reached"), "{}", g.logs());
    assert!(
        g.logs().contains("cut at shutdown deadline"),
        "the cut connection is logged"
    );
}

#[test]
fn idle_connections_are_closed_and_logged() {
    let a = Backend::start("a");
    let yaml = one_listener(&[a.addr()], "").replace(
        "backend: pool\n",
        "backend: pool\n        idleTimeout: 300ms\n",
    );
    let g = Gatehouse::start(BIN, &yaml);
    let (name, mut s) = open(g.addr("t/in")).unwrap();
    assert_eq!(name, "a");
    let started = Instant::now();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"1", "nothing but the echo before the close");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let line = g.wait_for("outcome=idle timeout", 0, WAIT).unwrap();
    for key in [
        "client=127.0.0.1:",
        "listener=t/in",
        "backend=pool",
        "endpoint=",
        "bytes_up=1",
        "bytes_down=3",
        "duration_ms=",
    ] {
        assert!(line.contains(key), "access log line lacks {key}: {line}");
    }
}

#[test]
fn connections_over_the_limit_are_refused() {
    let a = Backend::start("a");
    let yaml = one_listener(&[a.addr()], "").replace(
        "backend: pool\n",
        "backend: pool\n        maxConnections: 2\n",
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("t/in");
    let mut held = Vec::new();
    for _ in 0..2 {
        let (name, s) = open(gw).unwrap();
        assert_eq!(name, "a");
        held.push(s);
    }
    assert!(ask(gw).is_err(), "a third connection was served");
    assert!(g.wait_for("refused: connection limit", 0, WAIT).is_some());
    drop(held);
    sleep(Duration::from_millis(200));
    assert_eq!(ask(gw).unwrap(), "a", "served again once below the limit");
}

#[test]
fn host_names_are_resolved() {
    let a = Backend::start("a");
    let by_name = format!(
        "      - \"localhost:{}\"\n    resolveInterval: 1s\n",
        a.addr().port()
    );
    let yaml = one_listener(&[], &by_name);
    let g = Gatehouse::start(BIN, &yaml);
    assert_eq!(ask(g.addr("t/in")).unwrap(), "a");
    assert!(g.logs().contains("endpoint resolved"));
}

#[test]
fn forward_is_a_listener_with_one_backend() {
    let target = Backend::start("ironic");
    // Two stages, like the kubectl port-forward + socat chain it replaces.
    let yaml = format!(
        "forwards:
  - name: stage1
    listen: 127.0.0.1:0
    to: {}
",
        target.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let stage1 = g.addr("forward/stage1");
    assert_eq!(ask(stage1).unwrap(), "ironic");
}

#[test]
fn listens_on_an_address_this_host_does_not_have_yet() {
    // 192.0.2.0/24 is TEST-NET-1: never assigned here. Binding needs IP_FREEBIND; no packet is
    // sent to it.
    let a = Backend::start("a");
    let yaml = one_listener(&[a.addr()], "").replace(
        "addresses: [127.0.0.1]",
        "addresses: [127.0.0.1, 192.0.2.10]",
    );
    let g = Gatehouse::start(BIN, &yaml);
    let lines = g.lines_with("listening", 0);
    assert!(
        lines.iter().any(|l| l.contains("address=192.0.2.10:")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("address=127.0.0.1:")),
        "{lines:#?}"
    );
}

#[test]
fn ipv6_loopback_listener_and_endpoint() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let a = Backend::start_on("v6", "[::1]:0".parse().unwrap());
    let yaml = one_listener(&[], "").replace("addresses: [127.0.0.1]", "addresses: [\"::1\"]")
        + &format!("      - \"{}\"\n", a.addr());
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("t/in");
    assert!(gw.is_ipv6());
    assert_eq!(ask(gw).unwrap(), "v6");
}

#[test]
fn json_logs_have_one_object_per_line() {
    let a = Backend::start("a");
    let g = Gatehouse::spawn(
        BIN,
        &one_listener(&[a.addr()], ""),
        &["--log-format", "json"],
    );
    let line = g
        .wait_for("\"listening\"", 0, WAIT)
        .unwrap_or_else(|| panic!("{}", g.logs()));
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(line.contains("\"listener\":\"t/in\""), "{line}");
}

#[test]
fn startup_fails_cleanly_when_the_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = Backend::start("a");
    let yaml = one_listener(&[a.addr()], "").replace(
        "port: 0",
        &format!("port: {}", taken.local_addr().unwrap().port()),
    );
    let mut g = Gatehouse::spawn(BIN, &yaml, &[]);
    let status = g.wait_exit(WAIT).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(g.wait_for("in use", 0, WAIT).is_some(), "{}", g.logs());
}

#[test]
fn a_low_soft_open_file_limit_does_not_cap_connections() {
    // Started with a soft limit of 256 descriptors, Gatehouse must still hold 200 proxied
    // connections (400 descriptors): it raises its soft limit to the hard one.
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    if hard != "unlimited" && hard.parse::<u64>().unwrap_or(0) < 1024 {
        eprintln!("skipped: hard open-file limit {hard} is too low to show anything");
        return;
    }
    let dir = gatehouse_testkit::TempDir::new();
    let wrapper = dir.path().join("gatehouse-low-nofile");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nulimit -Sn 256\nexec {BIN} \"$@\"\n"),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();

    let a = Backend::start("a");
    let g = Gatehouse::start(wrapper.to_str().unwrap(), &one_listener(&[a.addr()], ""));
    assert!(
        g.logs().contains("raised the open-file limit from=256"),
        "{}",
        g.logs()
    );
    let gw = g.addr("t/in");
    let mut held = Vec::new();
    for i in 0..200 {
        let (name, s) = open(gw).unwrap();
        assert_eq!(name, "a", "connection {i}");
        held.push(s);
    }
    assert_eq!(a.served(), 200);
}
