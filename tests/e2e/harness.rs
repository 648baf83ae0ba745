//! Starts the real daemon with a config written by the test and reads its bound addresses
//! from its log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_kindling");

/// A running daemon; killed on drop.
pub(crate) struct Daemon {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) tftp: Vec<SocketAddr>,
}

/// A scratch directory with a TFTP root inside.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        Self { dir }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub(crate) fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Starts the daemon with `tftp_section` (YAML, indented by two spaces, without the
    /// `tftp:` line; `root` is filled in).
    pub(crate) fn start(self, tftp_section: &str) -> Daemon {
        let config = self.config(tftp_section);
        Daemon::start_with(self.dir, &config)
    }

    /// Like [`Fixture::start`], with the daemon started through `prefix` (for example
    /// `ip netns exec NS`, so that it runs inside a network namespace).
    pub(crate) fn start_in(self, prefix: &[String], tftp_section: &str) -> Daemon {
        let config = self.config(tftp_section);
        Daemon::start_with_prefix(self.dir, &config, prefix)
    }

    fn config(&self, tftp_section: &str) -> String {
        format!(
            "state_dir: {state}\nlog:\n  level: debug\ntftp:\n  root: {root}\n{tftp_section}",
            state = self.dir.path().join("state").display(),
            root = self.root().display(),
        )
    }
}

/// A pseudo-random, reproducible file body.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

impl Daemon {
    pub(crate) fn start_with(dir: tempfile::TempDir, config: &str) -> Daemon {
        Self::start_with_prefix(dir, config, &[])
    }

    /// Starts the binary as the last argument of `prefix` (a command that execs its argument
    /// in place, such as `ip netns exec NS`, so that the child's pid stays the daemon's), or
    /// directly when `prefix` is empty.
    pub(crate) fn start_with_prefix(
        dir: tempfile::TempDir,
        config: &str,
        prefix: &[String],
    ) -> Daemon {
        let config_path = dir.path().join("kindling.yaml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BINARY);
                command
            }
            None => Command::new(BINARY),
        };
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env_remove("KINDLING_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kindling");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            log,
            dir,
            tftp: Vec::new(),
        };
        daemon.wait_for_log("kindling ready", Duration::from_secs(20));
        daemon.tftp = daemon
            .log()
            .lines()
            .filter(|line| line.contains("tftp listening"))
            .filter_map(|line| field(line, "addr"))
            .filter_map(|addr| addr.parse().ok())
            .collect();
        daemon
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`, failing with the log if it never does.
    pub(crate) fn wait_for_log(&mut self, needle: &str, deadline: Duration) {
        let started = Instant::now();
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "kindling exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < deadline,
                "kindling never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn v4(&self) -> SocketAddr {
        *self
            .tftp
            .iter()
            .find(|addr| addr.is_ipv4())
            .expect("an IPv4 listener")
    }

    pub(crate) fn v6(&self) -> SocketAddr {
        *self
            .tftp
            .iter()
            .find(|addr| addr.is_ipv6())
            .expect("an IPv6 listener")
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map(|child| child.id() as i32).unwrap()
    }

    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc_kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub(crate) fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let started = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                started.elapsed() < deadline,
                "kindling did not exit within {deadline:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.path().join("kindling.yaml")
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

pub(crate) const SIGHUP: i32 = 1;
pub(crate) const SIGINT: i32 = 2;
pub(crate) const SIGTERM: i32 = 15;

impl Daemon {
    /// Stops the daemon (if it still runs) and hands over its directory (config, state,
    /// TFTP root) for a restart.
    pub(crate) fn into_dir(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- kindling log ----\n{}", self.log());
        }
    }
}

/// Extracts `name=value` from a tracing text line.
pub(crate) fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    let value = rest.split_whitespace().next()?;
    Some(value.trim_matches('"').to_string())
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
