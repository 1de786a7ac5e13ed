//! Real peers from Debian as child processes: HAProxy (package `haproxy`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::TempDir;

/// A free TCP port on 127.0.0.1 (bound, then released: for peers that cannot use port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `haproxy -db -f FILE`, killed on drop.
pub struct Haproxy {
    child: Child,
    _dir: TempDir,
}

impl Haproxy {
    /// Starts HAProxy on `config` and waits until every address in `listening` accepts
    /// connections. Panics with HAProxy's own output if it does not start.
    pub fn start(config: &str, listening: &[SocketAddr]) -> Haproxy {
        let dir = TempDir::new();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("haproxy is not installed (Debian package `haproxy`)");
        assert!(
            check.status.success(),
            "haproxy refused its config:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut peer = Haproxy { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in listening {
            while TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = peer.child.try_wait() {
                    panic!("haproxy exited at start: {status}");
                }
                assert!(
                    Instant::now() < deadline,
                    "haproxy did not listen on {addr}"
                );
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        peer
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
