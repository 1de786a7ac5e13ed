//! `gatehouse check`, and `run` on a bad file.

use std::process::Command;

use gatehouse_testkit::TempDir;

use crate::BIN;

fn check(yaml: &str) -> (i32, String, String, String) {
    let dir = TempDir::new();
    let path = dir.path().join("gatehouse.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn check_prints_what_would_be_served() {
    let (code, stdout, stderr, _) = check(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - { name: web, port: 8080, backend: app }
backends:
  - name: app
    balance: LeastConnections
    endpoints: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 2 }]
    healthCheck: { protocol: HTTP, path: /healthz, interval: 5s }
",
    );
    assert_eq!(code, 0, "{stderr}");
    for want in [
        "edge/web",
        "127.0.0.1:8080",
        "LeastConnections",
        "127.0.0.1:9002 w2",
        "HTTP GET /healthz expecting 200-399 every 5s",
        "rise 2, fall 3",
    ] {
        assert!(stdout.contains(want), "summary lacks `{want}`:\n{stdout}");
    }
}

#[test]
fn check_reports_every_error_with_file_line_column_and_exits_1() {
    let (code, _, stderr, path) = check(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - { name: web, port: 8080, backend: ap }
      - { name: web2, port: 8080, backend: app }
backends:
  - name: app
    balance: roundrobin
    endpoints: [127.0.0.1]
",
    );
    assert_eq!(code, 1);
    for want in [
        format!("--> {path}:5:43"),
        "did you mean `app`?".into(),
        format!("--> {path}:6:29"),
        "both listen on TCP 127.0.0.1:8080".into(),
        format!("--> {path}:9:14"),
        "did you mean `RoundRobin`?".into(),
        format!("--> {path}:10:17"),
        "has no port".into(),
        "4 errors".into(),
    ] {
        assert!(stderr.contains(&want), "stderr lacks `{want}`:\n{stderr}");
    }
}

#[test]
fn check_rejects_unknown_and_duplicate_keys() {
    let (code, _, stderr, path) = check("backends:\n  - name: a\n    endpoint: [127.0.0.1:1]\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{path}:3:5")) && stderr.contains("unknown key `endpoint`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `endpoints`?"), "{stderr}");
    let (code, _, stderr, path) = check("backends:\n  - name: a\n    name: b\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{path}:3:5")) && stderr.contains("duplicate key `name`"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_a_bad_config_with_exit_1() {
    let dir = TempDir::new();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "gateways: 3\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:1:11", path.display())));
    let out = Command::new(BIN)
        .args(["check", "-c", "/nonexistent/gatehouse.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
}
