//! The daemon as a service manager sees it: readiness notification and JSON logs.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::BINARY;

/// The daemon on a loopback TFTP config, with `NOTIFY_SOCKET` pointing at a socket of the
/// test's, which `next` reads one notification at a time.
struct Notified {
    child: std::process::Child,
    notify: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl Notified {
    fn start() -> Notified {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&socket_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let config = loopback_config(dir.path());
        let child = Command::new(BINARY)
            .args(["serve", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Notified {
            child,
            notify,
            _dir: dir,
        }
    }

    fn next(&self) -> String {
        let mut buf = [0u8; 512];
        let len = self.notify.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..len]).to_string()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child.
        unsafe { kill(self.child.id() as i32, signal) };
    }
}

#[test]
fn readiness_is_notified_to_systemd_after_the_sockets_are_bound() {
    let mut daemon = Notified::start();
    let message = daemon.next();
    daemon.signal(15);
    let status = daemon.child.wait().unwrap();
    assert!(message.contains("READY=1"), "{message}");
    assert!(daemon.next().contains("STOPPING=1"));
    assert!(status.success());
}

/// deploy/kindling.service is `Type=notify` with `ExecReload=` sending SIGHUP: systemd learns
/// of a reload from RELOADING=1 and of its end from the READY=1 that follows.
#[test]
fn sighup_is_notified_as_reloading_then_ready() {
    let mut daemon = Notified::start();
    let ready = daemon.next();
    // SIGHUP after it said it is ready (its handler is installed by then).
    daemon.signal(1);
    let reloading = daemon.next();
    let ready_again = daemon.next();
    daemon.signal(15);
    let status = daemon.child.wait().unwrap();
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(reloading.contains("RELOADING=1"), "{reloading}");
    assert!(ready_again.contains("READY=1"), "{ready_again}");
    assert!(status.success());
}

/// A TFTP-only config on a loopback port the kernel picks, with its root, in `dir`.
fn loopback_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir(dir.join("root")).unwrap();
    let config = dir.join("k.yaml");
    std::fs::write(
        &config,
        format!(
            "tftp:\n  root: {}\n  listen: [\"127.0.0.1:0\"]\n",
            dir.join("root").display()
        ),
    )
    .unwrap();
    config
}

unsafe extern "C" {
    fn kill(pid: i32, signal: i32) -> i32;
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path());
    let child = Command::new(BINARY)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: SIGTERM to our own child.
    unsafe { kill(child.id() as i32, 15) };
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|line| line.contains("\"tftp listening\"")),
        "{text}"
    );
    for line in lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON object: {line}"
        );
        assert!(line.contains("\"level\":"), "{line}");
    }
}
