//! Upload edge cases seen from the wire: size limits, interrupted uploads, netascii.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Fixture, SIGTERM, pattern};
use crate::tftp_hostile::{error_code, request};
use crate::tftp_server::recv;
use crate::tools::{require, run};

fn client() -> UdpSocket {
    crate::tftp_server::client(SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn data(block: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0, 3];
    packet.extend_from_slice(&block.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// Nothing but the given names in `dir` (no partial file, no temporary left behind).
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_declared_tsize_over_max_size_is_refused_with_error_3_before_any_data() {
    let fixture = Fixture::new();
    let daemon = fixture
        .start("  listen: [\"127.0.0.1:0\"]\n  write:\n    enabled: true\n    max_size: 1KiB\n");
    let socket = client();
    socket
        .send_to(
            &request(2, b"uploads/big.cfg", &[("tsize", "5000")]),
            daemon.v4(),
        )
        .unwrap();
    let (reply, _) = recv(&socket);
    assert_eq!(error_code(&reply), Some(3));
    assert!(entries(&daemon.root().join("uploads")).is_empty());
}

#[test]
fn an_upload_growing_past_max_size_gets_error_3_and_leaves_nothing() {
    let fixture = Fixture::new();
    let daemon = fixture
        .start("  listen: [\"127.0.0.1:0\"]\n  write:\n    enabled: true\n    max_size: 1000B\n");
    let socket = client();
    socket
        .send_to(&request(2, b"uploads/big.cfg", &[]), daemon.v4())
        .unwrap();
    let (ack0, tid) = recv(&socket);
    assert_eq!(&ack0, &[0, 4, 0, 0]);
    socket.send_to(&data(1, &[b'a'; 512]), tid).unwrap();
    assert_eq!(recv(&socket).0, vec![0, 4, 0, 1]);
    socket.send_to(&data(2, &[b'b'; 512]), tid).unwrap();
    let (reply, _) = recv(&socket);
    assert_eq!(error_code(&reply), Some(3));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        entries(&daemon.root().join("uploads")).is_empty(),
        "{:?}",
        entries(&daemon.root().join("uploads"))
    );
}

#[test]
fn an_interrupted_upload_never_appears_under_its_final_name() {
    let fixture = Fixture::new();
    let mut daemon = fixture.start(
        "  listen: [\"127.0.0.1:0\"]\n  timeout: 1s\n  retries: 1\n  write:\n    enabled: true\n",
    );
    // A client that vanishes after two blocks: the transfer times out.
    let socket = client();
    socket
        .send_to(&request(2, b"uploads/sw1.cfg", &[]), daemon.v4())
        .unwrap();
    let (_, tid) = recv(&socket);
    for block in 1..=2u16 {
        socket.send_to(&data(block, &[b'x'; 512]), tid).unwrap();
        let _ = recv(&socket);
    }
    let uploads = daemon.root().join("uploads");
    assert!(
        !uploads.join("sw1.cfg").exists(),
        "not under its final name while in flight"
    );
    daemon.wait_for_log("tftp transfer failed", Duration::from_secs(10));
    assert!(
        entries(&uploads).is_empty(),
        "no partial or temporary file: {:?}",
        entries(&uploads)
    );

    // A daemon stopped mid-upload leaves nothing either.
    let socket = client();
    socket
        .send_to(&request(2, b"uploads/sw2.cfg", &[]), daemon.v4())
        .unwrap();
    let (_, tid) = recv(&socket);
    socket.send_to(&data(1, &[b'y'; 512]), tid).unwrap();
    let _ = recv(&socket);
    daemon.signal(SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(entries(&uploads).is_empty(), "{:?}", entries(&uploads));
}

#[test]
fn netascii_reads_and_writes_round_trip_through_tftp_hpa() {
    require("tftp");
    let text = b"line one\nline two\r\nbare cr\r here\n\nlast".repeat(200);
    let fixture = Fixture::new();
    fixture.write("notes.txt", &text);
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n  write:\n    enabled: true\n");
    let out = tempfile::tempdir().unwrap();
    let fetched = out.path().join("notes.txt");
    let addr = daemon.v4();
    let output = run(
        Command::new("tftp")
            .args([
                "-4",
                "-m",
                "netascii",
                "127.0.0.1",
                &addr.port().to_string(),
                "-c",
                "get",
                "notes.txt",
            ])
            .arg(&fetched),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        text,
        "netascii read round trip"
    );
    let output = run(
        Command::new("tftp")
            .args([
                "-4",
                "-m",
                "netascii",
                "127.0.0.1",
                &addr.port().to_string(),
                "-c",
                "put",
            ])
            .arg(&fetched)
            .arg("uploads/notes.txt"),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read(daemon.root().join("uploads/notes.txt")).unwrap(),
        text,
        "netascii write round trip"
    );
}

#[test]
fn many_clients_fetch_the_same_image_at_once() {
    require("curl");
    let body = pattern(3 * 1024 * 1024, 21);
    let fixture = Fixture::new();
    fixture.write("kernel", &body);
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n  max_sessions: 8\n");
    let out = tempfile::tempdir().unwrap();
    let url = format!("tftp://127.0.0.1:{}/kernel", daemon.v4().port());
    let children: Vec<_> = (0..24)
        .map(|index| {
            Command::new("curl")
                .args([
                    "--silent",
                    "--show-error",
                    "--fail",
                    "--max-time",
                    "120",
                    "--tftp-blksize",
                    "1468",
                    "-o",
                ])
                .arg(out.path().join(format!("k{index}")))
                .arg(&url)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    for index in 0..24 {
        assert_eq!(
            std::fs::read(out.path().join(format!("k{index}"))).unwrap(),
            body
        );
    }
}

/// Sends an RRQ for `name` from a new socket on `source` and returns the reply (ACKing a final
/// DATA 1 so the transfer ends cleanly). A new port per request: a request from a port whose
/// previous transfer is still winding down would be dropped as a duplicate.
fn read_once(source: [u8; 4], server: SocketAddr, name: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind(SocketAddr::from((source, 0))).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&request(1, name, &[]), server).unwrap();
    let (reply, tid) = recv(&socket);
    if reply.starts_with(&[0, 3, 0, 1]) {
        socket.send_to(&[0, 4, 0, 1], tid).unwrap();
    }
    reply
}

#[test]
fn the_inbox_is_write_only_except_from_read_from() {
    let fixture = Fixture::new();
    let secret = b"enable secret 5 $1$kindling$secret\nsnmp-server community s3cret RO\n";
    fixture.write("uploads/sw1.cfg", secret);
    fixture.write("pxelinux.0", b"pxe");
    std::os::unix::fs::symlink("uploads/sw1.cfg", fixture.root().join("latest.cfg")).unwrap();
    std::os::unix::fs::symlink("uploads", fixture.root().join("backups")).unwrap();
    let daemon = fixture.start(
        "  listen: [\"127.0.0.1:0\"]\n  write:\n    enabled: true\n    allow_from: [127.0.0.0/8]\n    read_from: [127.0.0.2/32]\n",
    );
    let (outsider, restore_host) = ([127, 0, 0, 1], [127, 0, 0, 2]);
    let spellings: &[&[u8]] = &[
        b"uploads/sw1.cfg",
        b"/uploads/sw1.cfg",
        b"./uploads//sw1.cfg",
        b"uploads\\sw1.cfg",
        b"latest.cfg",
        b"backups/sw1.cfg",
    ];
    for name in spellings {
        let reply = read_once(outsider, daemon.v4(), name);
        assert_eq!(
            error_code(&reply),
            Some(2),
            "{:?} was not refused with ERROR 2: {reply:?}",
            String::from_utf8_lossy(name)
        );
    }
    assert_eq!(
        read_once(outsider, daemon.v4(), b"pxelinux.0"),
        data(1, b"pxe"),
        "the rest of the tree is served as before"
    );
    for name in spellings {
        assert_eq!(
            read_once(restore_host, daemon.v4(), name),
            data(1, secret),
            "{:?} from a read_from address",
            String::from_utf8_lossy(name)
        );
    }
    assert!(daemon.log().contains("tftp.write.read_from"), "no log line");
}

#[test]
fn without_read_from_nobody_reads_the_inbox() {
    let fixture = Fixture::new();
    fixture.write("uploads/sw1.cfg", b"secret");
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n");
    let reply = read_once([127, 0, 0, 1], daemon.v4(), b"uploads/sw1.cfg");
    assert_eq!(error_code(&reply), Some(2), "{reply:?}");
}
