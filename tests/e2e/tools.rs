//! External tools the tests drive. A missing tool is a failure, never a skip.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Panics with an actionable message when `tool` is not on PATH.
pub(crate) fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "required test tool `{tool}` is not installed: run `scripts/test` (it installs \
         tftp-hpa, atftp, curl and the rest) or install it by hand"
    );
}

/// Runs a command with a deadline, returning its output; a hung client fails the test.
pub(crate) fn run(command: &mut Command, deadline: Duration) -> Output {
    let program = format!("{command:?}");
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {program}: {error}"));
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{program} did not finish within {deadline:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes =
        std::fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    format!("{:x}", Sha256::digest(&bytes))
}
