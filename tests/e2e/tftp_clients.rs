//! Downloads and uploads with curl, tftp-hpa and atftp, IPv4 and IPv6, compared by sha256.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Daemon, Fixture, path_str, pattern};
use crate::tools::{require, run, sha256_file};

const LOOPBACK_BOTH: &str = "  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n";
const MIB: usize = 1024 * 1024;
const CLIENT_DEADLINE: Duration = Duration::from_secs(240);

/// The small sizes every client must get right: empty, one byte, exactly one default block,
/// one block plus one byte.
const SMALL_SIZES: [usize; 4] = [0, 1, 512, 513];

fn host(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => v6.ip().to_string(),
    }
}

fn url(addr: SocketAddr, file: &str) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("tftp://{}:{}/{file}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("tftp://[{}]:{}/{file}", v6.ip(), v6.port()),
    }
}

fn curl_get(addr: SocketAddr, file: &str, out: &Path, blksize: Option<u16>) {
    require("curl");
    let mut command = Command::new("curl");
    command
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "200",
            "-o",
        ])
        .arg(out);
    if let Some(blksize) = blksize {
        command.args(["--tftp-blksize", &blksize.to_string()]);
    }
    command.arg(url(addr, file));
    let output = run(&mut command, CLIENT_DEADLINE);
    assert!(
        output.status.success(),
        "curl get {file} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn tftp_hpa(addr: SocketAddr, command_line: &str) -> std::process::Output {
    require("tftp");
    let family = if addr.is_ipv4() { "-4" } else { "-6" };
    run(
        Command::new("tftp")
            .args([
                family,
                "-m",
                "binary",
                &host(addr),
                &addr.port().to_string(),
                "-c",
            ])
            .args(command_line.split(' ')),
        CLIENT_DEADLINE,
    )
}

fn tftp_hpa_get(addr: SocketAddr, file: &str, out: &Path) {
    let output = tftp_hpa(addr, &format!("get {file} {}", path_str(out)));
    let stderr = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && !stderr.contains("Error"),
        "tftp-hpa get {file} failed: {stderr}"
    );
}

fn atftp(addr: SocketAddr, args: &[&str], options: &[(&str, u32)]) -> std::process::Output {
    require("atftp");
    let mut command = Command::new("atftp");
    command.args(args);
    for (name, value) in options {
        command.arg("--option").arg(format!("{name} {value}"));
    }
    command.arg(host(addr)).arg(addr.port().to_string());
    run(&mut command, CLIENT_DEADLINE)
}

fn atftp_get(addr: SocketAddr, file: &str, out: &Path, options: &[(&str, u32)]) {
    let output = atftp(addr, &["--get", "-r", file, "-l", path_str(out)], options);
    assert!(
        output.status.success(),
        "atftp get {file} {options:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_same(expected: &Path, got: &Path) {
    assert!(got.exists(), "{} was not written", got.display());
    assert_eq!(
        std::fs::metadata(expected).unwrap().len(),
        std::fs::metadata(got).unwrap().len(),
        "size of {} differs",
        got.display()
    );
    assert_eq!(
        sha256_file(expected),
        sha256_file(got),
        "content of {} differs",
        got.display()
    );
}

struct Setup {
    daemon: Daemon,
    out: tempfile::TempDir,
}

fn serve_files(sizes: &[usize], extra_config: &str) -> Setup {
    let fixture = Fixture::new();
    for (index, &size) in sizes.iter().enumerate() {
        fixture.write(&format!("f{size}"), &pattern(size, index as u64 + 1));
    }
    let daemon = fixture.start(&format!("{LOOPBACK_BOTH}{extra_config}"));
    Setup {
        daemon,
        out: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    fn served(&self, size: usize) -> PathBuf {
        self.daemon.root().join(format!("f{size}"))
    }

    fn output(&self, name: &str) -> PathBuf {
        self.out.path().join(name)
    }
}

#[test]
fn curl_fetches_small_files_over_ipv4_and_ipv6_with_default_and_large_blksize() {
    let setup = serve_files(&SMALL_SIZES, "");
    for addr in [setup.daemon.v4(), setup.daemon.v6()] {
        for size in SMALL_SIZES {
            for blksize in [None, Some(1468)] {
                let out = setup.output(&format!("curl-{}-{size}-{blksize:?}", addr.is_ipv4()));
                curl_get(addr, &format!("f{size}"), &out, blksize);
                assert_same(&setup.served(size), &out);
            }
        }
    }
}

#[test]
fn tftp_hpa_fetches_small_files_over_ipv4_and_ipv6() {
    let setup = serve_files(&SMALL_SIZES, "");
    for addr in [setup.daemon.v4(), setup.daemon.v6()] {
        for size in SMALL_SIZES {
            let out = setup.output(&format!("hpa-{}-{size}", addr.is_ipv4()));
            tftp_hpa_get(addr, &format!("f{size}"), &out);
            assert_same(&setup.served(size), &out);
        }
    }
}

#[test]
fn atftp_fetches_small_files_with_windowsize_over_ipv4_and_ipv6() {
    let setup = serve_files(&SMALL_SIZES, "");
    for addr in [setup.daemon.v4(), setup.daemon.v6()] {
        for size in SMALL_SIZES {
            for windowsize in [1, 8] {
                let out = setup.output(&format!("atftp-{}-{size}-{windowsize}", addr.is_ipv4()));
                atftp_get(
                    addr,
                    &format!("f{size}"),
                    &out,
                    &[("windowsize", windowsize)],
                );
                assert_same(&setup.served(size), &out);
            }
        }
    }
}

#[test]
fn curl_fetches_100_mib_over_ipv4_and_ipv6_across_block_number_rollover() {
    // 100 MiB at blksize 512 is 204,800 blocks: the block number wraps three times.
    let setup = serve_files(&[100 * MIB], "");
    for (addr, blksize) in [(setup.daemon.v4(), None), (setup.daemon.v6(), Some(1468))] {
        let out = setup.output(&format!("curl-100m-{}", addr.is_ipv4()));
        curl_get(addr, &format!("f{}", 100 * MIB), &out, blksize);
        assert_same(&setup.served(100 * MIB), &out);
    }
    assert!(setup.daemon.log().contains("tftp transfer complete"));
}

#[test]
fn tftp_hpa_fetches_100_mib_over_ipv4_and_ipv6() {
    let setup = serve_files(&[100 * MIB], "");
    for addr in [setup.daemon.v4(), setup.daemon.v6()] {
        let out = setup.output(&format!("hpa-100m-{}", addr.is_ipv4()));
        tftp_hpa_get(addr, &format!("f{}", 100 * MIB), &out);
        assert_same(&setup.served(100 * MIB), &out);
    }
}

#[test]
fn atftp_fetches_100_mib_with_windowsize_over_ipv4_and_ipv6() {
    let setup = serve_files(&[100 * MIB], "");
    for (addr, options) in [
        (setup.daemon.v4(), [("blksize", 1468), ("windowsize", 16)]),
        (setup.daemon.v6(), [("blksize", 8192), ("windowsize", 64)]),
    ] {
        let out = setup.output(&format!("atftp-100m-{}", addr.is_ipv4()));
        atftp_get(addr, &format!("f{}", 100 * MIB), &out, &options);
        assert_same(&setup.served(100 * MIB), &out);
    }
    // The OACK grant keeps windowsize x blksize within a default socket buffer.
    let log = setup.daemon.log();
    assert!(
        log.contains("windowsize=64") || log.contains("windowsize=16"),
        "{log}"
    );
}

const WRITABLE: &str = "  write:\n    enabled: true\n    dir: uploads\n";

#[test]
fn tftp_hpa_and_curl_upload_into_the_upload_directory() {
    let setup = serve_files(&[], WRITABLE);
    let source = setup.output("config.txt");
    std::fs::write(&source, pattern(200_000, 9)).unwrap();
    for addr in [setup.daemon.v4(), setup.daemon.v6()] {
        let name = format!("uploads/hpa-{}.cfg", addr.is_ipv4());
        let output = tftp_hpa(addr, &format!("put {} {name}", path_str(&source)));
        assert!(output.status.success(), "{output:?}");
        assert_same(&source, &setup.daemon.root().join(&name));

        require("curl");
        let name = format!("uploads/curl-{}.cfg", addr.is_ipv4());
        let output = run(
            Command::new("curl")
                .args(["--silent", "--show-error", "--fail", "-T"])
                .arg(&source)
                .arg(url(addr, &name)),
            CLIENT_DEADLINE,
        );
        assert!(output.status.success(), "{output:?}");
        assert_same(&source, &setup.daemon.root().join(&name));
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(setup.daemon.root().join("uploads/hpa-true.cfg"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o640, "uploads are created 0640");
}

#[test]
fn an_upload_to_an_existing_name_is_refused_with_error_6_and_the_original_kept() {
    let fixture = Fixture::new();
    fixture.write("uploads/sw1.cfg", b"original");
    let daemon = fixture.start(&format!("{LOOPBACK_BOTH}{WRITABLE}"));
    let out = tempfile::tempdir().unwrap();
    let source = out.path().join("new.cfg");
    std::fs::write(&source, b"replacement").unwrap();
    let output = tftp_hpa(
        daemon.v4(),
        &format!("put {} uploads/sw1.cfg", path_str(&source)),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("Error code 6"),
        "expected ERROR 6, got: {text}"
    );
    assert_eq!(
        std::fs::read(daemon.root().join("uploads/sw1.cfg")).unwrap(),
        b"original"
    );
}

#[test]
fn versioned_uploads_keep_every_previous_config() {
    let fixture = Fixture::new();
    fixture.write("uploads/sw1.cfg", b"monday");
    let daemon = fixture.start(&format!(
        "{LOOPBACK_BOTH}  write:\n    enabled: true\n    overwrite: versioned\n"
    ));
    let out = tempfile::tempdir().unwrap();
    let source = out.path().join("new.cfg");
    std::fs::write(&source, b"tuesday").unwrap();
    let output = tftp_hpa(
        daemon.v4(),
        &format!("put {} uploads/sw1.cfg", path_str(&source)),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read(daemon.root().join("uploads/sw1.cfg")).unwrap(),
        b"tuesday"
    );
    let kept: Vec<_> = std::fs::read_dir(daemon.root().join("uploads"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("sw1.cfg.")
        })
        .collect();
    assert_eq!(kept.len(), 1, "one timestamped sibling: {kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), b"monday");
}

#[test]
fn uploads_are_refused_when_writes_are_disabled() {
    let setup = serve_files(&[], "");
    let source = setup.output("x.cfg");
    std::fs::write(&source, b"data").unwrap();
    let output = tftp_hpa(
        setup.daemon.v4(),
        &format!("put {} uploads/x.cfg", path_str(&source)),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("Error code 2"),
        "expected ERROR 2, got: {text}"
    );
    assert!(!setup.daemon.root().join("uploads/x.cfg").exists());
}
