//! Network namespaces for tests: hosts that exist only for one test, joined by veth pairs, with
//! no route out. Needs root (`ip netns`); traffic stays inside the namespaces.
//!
//! - [`Netns::new`] creates a namespace (its loopback up); dropping the guard deletes it (and
//!   the interfaces in it), also when the test panics.
//! - [`Netns::ip`] / [`Netns::sh`] run `ip -n NS ...` / `ip netns exec NS sh -c ...`.
//! - [`Netns::spawn`] / [`Netns::run`] run async code *inside* the namespace: on a new thread
//!   that `setns(2)`-es into it and drives the future on its own current-thread Tokio runtime.
//!   Sockets created there belong to that namespace. Two `spawn`s in two namespaces run at once
//!   and can talk through channels (`tokio::sync` works across runtimes). Whatever the future
//!   returns must be plain data: Tokio objects die with the thread's runtime.
//! - [`Lan::pair`]: two namespaces `a` and `b` joined by a veth pair named `veth0` on both ends,
//!   192.0.2.1/24 + 2001:db8::1/64 and 192.0.2.2/24 + 2001:db8::2/64, duplicate address
//!   detection off, link-local addresses ready.
//!
//! ```ignore
//! let lan = support::Lan::pair();
//! let addrs = lan.b.run(|| async { gatehouse_vrrp::net::link_up("veth0") });
//! ```
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

/// A network namespace that lives as long as this guard.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with a unique name (`ghv-PID-N`), loopback up.
    pub fn new() -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_leftovers);
        let name = format!(
            "ghv-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_command("ip", &["netns", "add", &name]);
        // From here on the guard exists, so a failure below still deletes the namespace.
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Its name, for `ip netns exec` and `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`; panics (with the command and its stderr) on failure; returns
    /// stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_command("ip", &full)
    }

    /// Runs `sh -c SCRIPT` inside the namespace; panics on failure; returns stdout.
    pub fn sh(&self, script: &str) -> String {
        run_command("ip", &["netns", "exec", &self.name, "sh", "-c", script])
    }

    /// Runs `f()`'s future inside the namespace, on a thread of its own with a current-thread
    /// Tokio runtime (time and I/O enabled). Join the handle to get the result (a panic inside
    /// comes back as the join's `Err`).
    pub fn spawn<F, Fut, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::Builder::new()
            .name(format!("netns {}", self.name))
            .spawn(move || {
                let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("entering {path}: {e}"));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                runtime.block_on(f())
            })
            .expect("a thread")
    }

    /// [`spawn`](Netns::spawn), then wait for it; a panic inside is re-raised here.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        join(self.spawn(f))
    }

    /// Waits (up to 10 s) until the link-local address of `interface` is no longer tentative,
    /// and returns it.
    pub fn link_local(&self, interface: &str) -> Ipv6Addr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ip(&[
                "-6", "-o", "addr", "show", "dev", interface, "scope", "link",
            ]);
            if let Some(line) = out.lines().find(|l| !l.contains("tentative")) {
                let addr = line
                    .split_whitespace()
                    .skip_while(|w| *w != "inet6")
                    .nth(1)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse().ok());
                if let Some(addr) = addr {
                    return addr;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{interface} in {} has no usable link-local address: {out}",
                self.name
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// The MAC address of `interface`, as `ip` prints it (`02:..`).
    pub fn mac(&self, interface: &str) -> String {
        let out = self.ip(&["-br", "link", "show", "dev", interface]);
        out.split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC address in {out:?}"))
            .to_owned()
    }

    /// The `ip neigh` line for `addr` on `interface` (empty if none).
    pub fn neighbour(&self, interface: &str, addr: IpAddr) -> String {
        self.ip(&["neigh", "show", &addr.to_string(), "dev", interface])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let status = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "could not delete network namespace {}: {status:?}",
                self.name
            );
        }
    }
}

/// Two namespaces on one link.
#[derive(Debug)]
pub struct Lan {
    /// 192.0.2.1/24, 2001:db8::1/64 on `veth0`.
    pub a: Netns,
    /// 192.0.2.2/24, 2001:db8::2/64 on `veth0`.
    pub b: Netns,
}

/// The interface name on both ends of a [`Lan`].
pub const IF: &str = "veth0";

impl Lan {
    /// Two namespaces joined by a veth pair, addressed, up, link-local addresses ready.
    pub fn pair() -> Lan {
        let a = Netns::new();
        let b = Netns::new();
        for ns in [&a, &b] {
            ns.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
        }
        a.ip(&[
            "link", "add", IF, "type", "veth", "peer", "name", IF, "netns", &b.name,
        ]);
        for (ns, n) in [(&a, 1), (&b, 2)] {
            ns.ip(&["addr", "add", &format!("192.0.2.{n}/24"), "dev", IF]);
            ns.ip(&[
                "addr",
                "add",
                &format!("2001:db8::{n}/64"),
                "dev",
                IF,
                "nodad",
            ]);
            ns.ip(&["link", "set", IF, "up"]);
        }
        a.link_local(IF);
        b.link_local(IF);
        Lan { a, b }
    }
}

/// Deletes `ghv-PID-N` namespaces whose test process is gone (killed before its guards ran).
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("ghv-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// Joins a thread, re-raising its panic.
pub fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Blocks this (test) thread.
#[allow(clippy::disallowed_methods)]
pub fn sleep(duration: Duration) {
    std::thread::sleep(duration);
}

/// Runs a command; panics with its stderr unless it succeeds; returns its stdout.
fn run_command(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
