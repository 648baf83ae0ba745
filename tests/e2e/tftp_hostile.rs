//! Hostile requests against the real daemon, sent byte for byte from a raw UDP socket: every
//! traversal attempt is refused with an ERROR and nothing outside the root is ever served.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::harness::Fixture;

/// Builds an RRQ (opcode 1) or WRQ (opcode 2) with raw filename bytes.
pub(crate) fn request(opcode: u8, name: &[u8], options: &[(&str, &str)]) -> Vec<u8> {
    let mut packet = vec![0, opcode];
    packet.extend_from_slice(name);
    packet.push(0);
    packet.extend_from_slice(b"octet\0");
    for (key, value) in options {
        packet.extend_from_slice(key.as_bytes());
        packet.push(0);
        packet.extend_from_slice(value.as_bytes());
        packet.push(0);
    }
    packet
}

/// Sends `packet` and returns the first reply and its source.
pub(crate) fn exchange(server: SocketAddr, packet: &[u8]) -> (Vec<u8>, SocketAddr) {
    let bind = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = UdpSocket::bind(bind).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(packet, server).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (len, from) = socket.recv_from(&mut buf).unwrap_or_else(|error| {
        panic!("no reply to {:?}: {error}", String::from_utf8_lossy(packet))
    });
    buf.truncate(len);
    (buf, from)
}

pub(crate) fn error_code(reply: &[u8]) -> Option<u16> {
    (reply.len() >= 4 && reply[..2] == [0, 5]).then(|| u16::from_be_bytes([reply[2], reply[3]]))
}

const HOSTILE: &[&[u8]] = &[
    b"../secret",
    b"../../../../../../etc/passwd",
    b"/../secret",
    b"..",
    b"../",
    b"./../secret",
    b"a/../../secret",
    b"sub/../../secret",
    b"sub/../../../secret",
    b"..\\secret",
    b"..\\..\\..\\etc\\passwd",
    b"sub\\..\\..\\secret",
    b"\\..\\secret",
    b"/etc/passwd/../../secret",
    b"....//secret",
    b"sub/./../../secret",
    b"escape/secret",
    b"escape-dir/secret",
    b"loop",
    b"devnull",
    b"fifo",
    b"sub",
    b"/",
    b"",
    b"\x01boot",
    b"boot\nfile",
    b"boot\rfile",
    b"boot\x1b[2Jfile",
    b"boot\x7f",
    b"\xff\xfe../secret",
    b"\xc0\xae\xc0\xae/secret",
    b"%2e%2e/secret",
    b"sub/%2e%2e/%2e%2e/secret",
];

#[test]
fn every_traversal_attempt_is_refused_and_nothing_outside_the_root_is_served() {
    let fixture = Fixture::new();
    fixture.write("sub/inside.txt", b"inside");
    fixture.write("ok.txt", b"fine");
    let outside = fixture.dir.path().join("secret");
    std::fs::write(&outside, b"TOP-SECRET").unwrap();
    let root = fixture.root();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    std::os::unix::fs::symlink(fixture.dir.path(), root.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("escape-relative")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    std::os::unix::fs::symlink("/dev/null", root.join("devnull")).unwrap();
    nix_mkfifo(&root.join("fifo"));
    let mut daemon = fixture.start("  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n");

    let mut names: Vec<Vec<u8>> = HOSTILE.iter().map(|name| name.to_vec()).collect();
    names.push(b"escape-relative".to_vec());
    names.push(vec![b'a'; 5000]);
    names.push(format!("{}secret", "../".repeat(300)).into_bytes());
    for server in [daemon.v4(), daemon.v6()] {
        for name in &names {
            let (reply, _) = exchange(server, &request(1, name, &[]));
            let code = error_code(&reply);
            // An empty name is not a name at all: a malformed request (ERROR 4).
            let acceptable = if name.is_empty() {
                matches!(code, Some(4))
            } else {
                matches!(code, Some(1 | 2))
            };
            assert!(
                acceptable,
                "{:?} over {server} was not refused with ERROR 1 or 2: reply {:?}",
                String::from_utf8_lossy(name),
                &reply[..reply.len().min(16)]
            );
            assert!(!reply.windows(10).any(|window| window == b"TOP-SECRET"));
        }
        // The legitimate neighbours still work, with and without a leading slash and with
        // Windows separators.
        for name in [
            &b"ok.txt"[..],
            b"/ok.txt",
            b"sub/inside.txt",
            b"sub\\inside.txt",
            b"/sub//inside.txt",
        ] {
            let (reply, _) = exchange(server, &request(1, name, &[]));
            assert_eq!(
                &reply[..4],
                &[0, 3, 0, 1],
                "{:?} should be served",
                String::from_utf8_lossy(name)
            );
        }
    }
    daemon.wait_for_log("request refused", Duration::from_secs(5));
}

#[test]
fn hostile_upload_names_never_land_outside_the_upload_directory() {
    let fixture = Fixture::new();
    std::fs::create_dir_all(fixture.root().join("uploads")).unwrap();
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n  write:\n    enabled: true\n");
    for name in [
        &b"../evil.cfg"[..],
        b"uploads/../evil.cfg",
        b"uploads/../../evil.cfg",
        b"evil.cfg",
        b"/evil.cfg",
        b"uploads\\..\\evil.cfg",
        b"uploads/\x1bevil.cfg",
        b"uploadsX/evil.cfg",
    ] {
        let (reply, _) = exchange(daemon.v4(), &request(2, name, &[]));
        assert_eq!(
            error_code(&reply),
            Some(2),
            "WRQ {:?} must get ERROR 2",
            String::from_utf8_lossy(name)
        );
    }
    assert!(!fixture_path_exists(&daemon.root().join("evil.cfg")));
    assert!(!fixture_path_exists(&daemon.dir.path().join("evil.cfg")));
}

fn fixture_path_exists(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn nix_mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}
