//! The real `gatehouse` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gatehouse-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Log {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

/// A running `gatehouse run -c FILE`, killed on drop.
pub struct Gatehouse {
    child: Child,
    log: Arc<Log>,
    dir: TempDir,
    config: PathBuf,
}

/// The value of `key=value` in a log line (up to the next space; quotes removed).
pub fn field(line: &str, key: &str) -> Option<String> {
    let pattern = format!(" {key}=");
    let start = line.find(&pattern)? + pattern.len();
    let rest = &line[start..];
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().unwrap_or("")
    } else {
        rest.split(' ').next().unwrap_or("")
    };
    Some(value.to_owned())
}

impl Gatehouse {
    /// Starts `bin run -c <dir>/gatehouse.yaml` with `yaml`, and waits until it serves.
    pub fn start(bin: &str, yaml: &str) -> Gatehouse {
        let mut g = Gatehouse::spawn(bin, yaml, &[]);
        if g.wait_for("gatehouse is running", 0, Duration::from_secs(20))
            .is_none()
        {
            let status = g.wait_exit(Duration::from_secs(1));
            panic!(
                "gatehouse did not start (exit: {status:?}); log:\n{}",
                g.logs()
            );
        }
        g
    }

    /// Starts the binary with `run -c FILE` plus `extra` arguments, without waiting.
    pub fn spawn(bin: &str, yaml: &str, extra: &[&str]) -> Gatehouse {
        let dir = TempDir::new();
        let config = dir.path().join("gatehouse.yaml");
        std::fs::write(&config, yaml).unwrap();
        Gatehouse::spawn_in(bin, dir, config, extra)
    }

    /// Like [`Gatehouse::start`], inside network namespace `netns`: `ip netns exec NETNS bin
    /// run -c FILE` (which replaces itself with the binary: [`Gatehouse::pid`] and the signals
    /// reach the binary itself).
    pub fn start_in(netns: &str, bin: &str, yaml: &str) -> Gatehouse {
        let dir = TempDir::new();
        let config = dir.path().join("gatehouse.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut g = Gatehouse::launch(Some(netns), bin, dir, config, &[]);
        if g.wait_for("gatehouse is running", 0, Duration::from_secs(20))
            .is_none()
        {
            let status = g.wait_exit(Duration::from_secs(1));
            panic!(
                "gatehouse did not start in {netns} (exit: {status:?}); log:\n{}",
                g.logs()
            );
        }
        g
    }

    /// Runs the binary on an existing config file (a symlink, say), waiting until it serves.
    pub fn run_file(bin: &str, config: &Path) -> Gatehouse {
        let g = Gatehouse::spawn_in(bin, TempDir::new(), config.to_path_buf(), &[]);
        assert!(
            g.wait_for("gatehouse is running", 0, Duration::from_secs(20))
                .is_some(),
            "gatehouse did not start; log:\n{}",
            g.logs()
        );
        g
    }

    fn spawn_in(bin: &str, dir: TempDir, config: PathBuf, extra: &[&str]) -> Gatehouse {
        Gatehouse::launch(None, bin, dir, config, extra)
    }

    fn launch(
        netns: Option<&str>,
        bin: &str,
        dir: TempDir,
        config: PathBuf,
        extra: &[&str],
    ) -> Gatehouse {
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg("run")
            .arg("-c")
            .arg(&config)
            .args(["--log", "info,gatehouse_proxy=debug"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Log::default());
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut guard = sink.lines.lock().unwrap();
                guard.0.push(line);
                sink.changed.notify_all();
            }
            sink.lines.lock().unwrap().1 = true;
            sink.changed.notify_all();
        });
        Gatehouse {
            child,
            log,
            dir,
            config,
        }
    }

    /// Process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding the config file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Number of log lines so far: pass it to [`Gatehouse::wait_for`] to look only at what
    /// comes after.
    pub fn mark(&self) -> usize {
        self.log.lines.lock().unwrap().0.len()
    }

    /// Waits for a log line at index >= `from` containing every `needle` (`|`-separated
    /// alternatives are not supported: pass one needle, or use [`Gatehouse::wait_for_all`]).
    pub fn wait_for(&self, needle: &str, from: usize, timeout: Duration) -> Option<String> {
        self.wait_for_all(&[needle], from, timeout)
    }

    /// Waits for a log line at index >= `from` that contains all of `needles`.
    pub fn wait_for_all(&self, needles: &[&str], from: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.log.lines.lock().unwrap();
        loop {
            if let Some(line) = guard
                .0
                .iter()
                .skip(from)
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline || guard.1 {
                return None;
            }
            guard = self
                .log
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Lines at index >= `from` containing `needle`.
    pub fn lines_with(&self, needle: &str, from: usize) -> Vec<String> {
        let guard = self.log.lines.lock().unwrap();
        guard
            .0
            .iter()
            .skip(from)
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// The whole log so far.
    pub fn logs(&self) -> String {
        self.log.lines.lock().unwrap().0.join("\n")
    }

    /// The address of listener `name` (as in `gateway/listener`), from its latest
    /// `listening` line.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addr_after(name, 0)
    }

    /// Like [`Gatehouse::addr`], for a `listening` line at index >= `from`.
    pub fn addr_after(&self, name: &str, from: usize) -> SocketAddr {
        let needle = format!("listener={name} ");
        let line = self
            .wait_for_all(&["listening", &needle], from, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no `listening` line for {name}; log:\n{}", self.logs()));
        field(&line, "address").unwrap().parse().unwrap()
    }

    /// Replaces the config the way editors do: write a temporary file, rename it over.
    pub fn write_config(&self, yaml: &str) {
        let tmp = self.dir.path().join(".gatehouse.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL, as a crash (nothing handed over), and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
