//! A private `redis-server` for cluster tests: its own loopback port and directory,
//! optionally with an append-only file, killed when dropped.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    persistent: bool,
}

impl Redis {
    /// Starts redis-server; `persistent` writes every command to an append-only file
    /// (fsync always), so a restart loses nothing.
    pub fn start(persistent: bool) -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("ringcast-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            child: None,
            port,
            dir,
            persistent,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A ringcast process in cluster mode on this Redis (2 workers, plus `extra`), once
    /// it reads the shared stream.
    pub fn node(&self, extra: &[&str]) -> super::Server {
        let url = self.url();
        let mut args = vec!["--workers", "2", "--cluster", url.as_str()];
        args.extend_from_slice(extra);
        let server = super::Server::start(&args);
        super::eventually("reading the stream", || {
            server.metric("ringcast_cluster_up") == 1
        });
        server
    }

    /// Kills the server at once (SIGKILL: nothing flushed beyond what fsync already did).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        let persistence: &[&str] = if self.persistent {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(persistence)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it (Debian: apt-get install redis-server); scripts/test does");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client connection (the same crate the server uses).
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port the kernel considers free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
