//! Reloads: by file change and SIGHUP; nothing lost, nothing reopened; bad configs refused.

use std::io::{Read, Write};
use std::time::Duration;

use gatehouse_testkit::{Backend, Gatehouse, ask, connect, open, read_line};

use crate::{BIN, WAIT, one_listener, sleep};

/// Streams `rounds` chunks through `s` (an echo connection), checking every byte comes back.
fn stream_and_verify(
    s: &mut std::net::TcpStream,
    rounds: usize,
    seed: u8,
    between: impl Fn(usize),
) {
    let mut back = vec![0u8; 4096];
    for round in 0..rounds {
        let chunk: Vec<u8> = (0..4096)
            .map(|i| {
                (i as u8)
                    .wrapping_mul(31)
                    .wrapping_add(seed)
                    .wrapping_add(round as u8)
            })
            .collect();
        s.write_all(&chunk).unwrap();
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, chunk, "round {round}: bytes changed or lost");
        between(round);
    }
}

#[test]
fn reload_swaps_backends_while_a_long_connection_keeps_transferring() {
    let old = Backend::start("old");
    let new = Backend::start("new");
    let g = Gatehouse::start(BIN, &one_listener(&[old.addr()], ""));
    let gw = g.addr("t/in");

    let mut long = connect(gw).unwrap();
    long.write_all(b"x").unwrap();
    assert_eq!(read_line(&mut long).unwrap(), "old");
    let mut x = [0u8; 1];
    long.read_exact(&mut x).unwrap();

    let mark = g.mark();
    stream_and_verify(&mut long, 200, 7, |round| {
        if round == 50 {
            // Replace the pool: `old` removed, `new` added.
            g.write_config(&one_listener(&[new.addr()], ""));
        }
        if round == 100 {
            assert!(
                g.wait_for("config reloaded", mark, WAIT).is_some(),
                "log:\n{}",
                g.logs()
            );
            // New connections go to the new backend, on the same socket.
            assert_eq!(ask(gw).unwrap(), "new");
        }
    });
    assert!(
        g.lines_with("listening", mark).is_empty(),
        "the unchanged listener was reopened"
    );
    let line = g.wait_for("config reloaded", mark, WAIT).unwrap();
    assert!(
        line.contains("backends_changed=[\"pool\"]") && line.contains("listeners_kept=1"),
        "{line}"
    );
    assert_eq!(
        old.served(),
        1,
        "only the long connection used the removed backend"
    );
}

#[test]
fn invalid_reload_keeps_the_running_config_and_says_where() {
    let a = Backend::start("a");
    let g = Gatehouse::start(BIN, &one_listener(&[a.addr()], ""));
    let gw = g.addr("t/in");
    let mark = g.mark();
    let mut broken = one_listener(&[a.addr()], "");
    broken = broken.replace("backend: pool", "backend: pol");
    g.write_config(&broken);
    let line = g
        .wait_for("reload failed", mark, WAIT)
        .unwrap_or_else(|| panic!("log:\n{}", g.logs()));
    let file = g.config_path().display().to_string();
    assert!(
        line.contains(&format!("{file}:7:18")),
        "names file:line:col: {line}"
    );
    assert!(
        line.contains("backend `pol`, which is not defined")
            && line.contains("did you mean `pool`?"),
        "{line}"
    );
    assert_eq!(ask(gw).unwrap(), "a", "still serving the old config");

    // Invalid YAML, too.
    let mark = g.mark();
    g.write_config("gateways: [\n");
    assert!(g.wait_for("reload failed", mark, WAIT).is_some());
    assert_eq!(ask(gw).unwrap(), "a");
}

#[test]
fn reload_that_cannot_bind_changes_nothing() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Gatehouse::start(BIN, &one_listener(&[a.addr()], ""));
    let gw = g.addr("t/in");
    // A port that is taken: the new listener cannot bind, so the backend change is not applied.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mark = g.mark();
    let yaml = one_listener(&[b.addr()], "").replace(
        "        backend: pool\n",
        &format!("        backend: pool\n      - name: second\n        port: {port}\n        backend: pool\n"),
    );
    g.write_config(&yaml);
    let line = g
        .wait_for("reload failed", mark, WAIT)
        .unwrap_or_else(|| panic!("log:\n{}", g.logs()));
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("in use"),
        "{line}"
    );
    assert_eq!(
        ask(gw).unwrap(),
        "a",
        "the pool was not swapped by a failed reload"
    );
}

#[test]
fn sighup_reloads_and_a_removed_listener_stops_accepting_but_its_connections_finish() {
    let a = Backend::start("a");
    let yaml = |with_second: bool| {
        let mut y = one_listener(&[a.addr()], "");
        if with_second {
            y = y.replace(
                "        backend: pool\n",
                "        backend: pool\n      - name: extra\n        port: 0\n        backend: pool\n",
            );
        }
        y
    };
    let g = Gatehouse::spawn(BIN, &yaml(true), &["--no-watch"]);
    let extra = g.addr("t/extra");
    let main = g.addr("t/in");
    let (name, mut open) = open(extra).unwrap();
    assert_eq!(name, "a");

    // With --no-watch, editing the file does nothing until SIGHUP.
    let mark = g.mark();
    g.write_config(&yaml(false));
    sleep(Duration::from_millis(400));
    assert!(
        g.lines_with("config reloaded", mark).is_empty(),
        "--no-watch reloaded on a file change"
    );
    g.signal("HUP");
    let line = g.wait_for("config reloaded", mark, WAIT).unwrap();
    assert!(
        line.contains("trigger=\"SIGHUP\"") && line.contains("listeners_closed=1"),
        "{line}"
    );

    assert!(
        connect(extra).is_err(),
        "the removed listener still accepts"
    );
    assert_eq!(ask(main).unwrap(), "a");
    // The connection accepted before the reload still works.
    let mut back = [0u8; 5];
    open.write_all(b"after").unwrap();
    let mut first = [0u8; 1];
    open.read_exact(&mut first).unwrap();
    open.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"after");
}

#[test]
fn configmap_style_symlink_swap_is_seen() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    // Kubernetes mounts a ConfigMap as `file -> ..data/file`, `..data -> ..<timestamp>`,
    // and updates it by pointing `..data` at a new directory.
    let dir = gatehouse_testkit::TempDir::new();
    let write_version = |name: &str, yaml: &str| {
        let v = dir.path().join(name);
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join("gatehouse.yaml"), yaml).unwrap();
    };
    write_version("..v1", &one_listener(&[a.addr()], ""));
    std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/gatehouse.yaml", dir.path().join("gatehouse.yaml")).unwrap();
    let g = Gatehouse::run_file(BIN, &dir.path().join("gatehouse.yaml"));
    let gw = g.addr("t/in");
    assert_eq!(ask(gw).unwrap(), "a");

    let mark = g.mark();
    write_version("..v2", &one_listener(&[b.addr()], ""));
    std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    assert!(
        g.wait_for("config reloaded", mark, WAIT).is_some(),
        "the swap was not seen; log:\n{}",
        g.logs()
    );
    assert_eq!(ask(gw).unwrap(), "b");
}
