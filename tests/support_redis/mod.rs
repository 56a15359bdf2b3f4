//! Real `redis-server` processes for the Redis and fleet tests: each on a loopback port,
//! started and stopped by the test that needs it (killed on drop).
//!
//! Needs `redis-server` and `redis-cli` (Debian: `apt-get install redis-server
//! redis-tools`). Without them a test passes after printing why it was skipped, unless
//! `BEARER_GUARD_REDIS=require` is set (as `.ci/run` does), which turns a skip into a failure.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn redis_available() -> bool {
    let found = ["redis-server", "redis-cli"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found {
        return true;
    }
    let why = "redis-server / redis-cli not found (apt-get install redis-server redis-tools)";
    if std::env::var("BEARER_GUARD_REDIS").as_deref() == Ok("require") {
        panic!("Redis test cannot run: {why}");
    }
    eprintln!("SKIPPED: Redis test: {why}");
    false
}

macro_rules! require_redis {
    () => {
        if !support_redis::redis_available() {
            return;
        }
    };
}
pub(crate) use require_redis;

/// A free loopback port (and, for a Cluster node, its bus port + 10000 free too).
pub fn free_port(cluster: bool) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        if !cluster || (port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()) {
            return port;
        }
    }
}

/// One redis-server, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    cluster: bool,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port(false), false)
    }

    pub fn start_on(port: u16, cluster: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("bearer-guard-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut s = Self {
            port,
            child: None,
            dir,
            cluster,
        };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(self.dir.join("nodes.conf"));
        }
        self.child = Some(cmd.spawn().expect("redis-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing is answered (a
    /// killed server stops too).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// The server's process id.
    pub fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
