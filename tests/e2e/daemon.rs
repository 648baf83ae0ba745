//! The daemon as a service manager sees it: readiness notification and JSON logs.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::BINARY;

#[test]
fn readiness_is_notified_to_systemd_after_the_sockets_are_bound() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = loopback_config(dir.path());
    let mut child = Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let len = notify.recv(&mut buf).unwrap();
    let message = String::from_utf8_lossy(&buf[..len]).to_string();
    // SAFETY: SIGTERM to our own child.
    unsafe { kill(child.id() as i32, 15) };
    let status = child.wait().unwrap();
    assert!(message.contains("READY=1"), "{message}");
    let len = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..len]).contains("STOPPING=1"));
    assert!(status.success());
}

/// deploy/kindling.service is `Type=notify` with `ExecReload=` sending SIGHUP: systemd learns
/// of a reload from RELOADING=1 and of its end from the READY=1 that follows.
#[test]
fn sighup_is_notified_as_reloading_then_ready() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = loopback_config(dir.path());
    let mut child = Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let mut next = || {
        let len = notify.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..len]).to_string()
    };
    let ready = next();
    // SAFETY: SIGHUP to our own child, after it said it is ready (its handler is installed).
    unsafe { kill(child.id() as i32, 1) };
    let reloading = next();
    let ready_again = next();
    // SAFETY: SIGTERM to our own child.
    unsafe { kill(child.id() as i32, 15) };
    let status = child.wait().unwrap();
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
