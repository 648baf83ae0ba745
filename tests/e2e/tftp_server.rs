//! Server behaviour seen from the wire: transfer identifiers, single-port mode, port ranges,
//! the session cap, access lists, signals and garbage.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::{Daemon, Fixture, SIGHUP, SIGINT, SIGTERM, pattern};
use crate::tftp_hostile::{error_code, request};

pub(crate) fn client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

pub(crate) fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70_000];
    let (len, from) = socket.recv_from(&mut buf).expect("a reply from kindling");
    buf.truncate(len);
    (buf, from)
}

fn try_recv(socket: &UdpSocket, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 70_000];
    let result = socket.recv_from(&mut buf).ok().map(|(len, from)| {
        buf.truncate(len);
        (buf, from)
    });
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    result
}

fn ack(block: u16) -> Vec<u8> {
    let mut packet = vec![0, 4];
    packet.extend_from_slice(&block.to_be_bytes());
    packet
}

/// Reads a whole file in lock-step from `socket`, starting with an already received DATA 1.
fn finish_download(socket: &UdpSocket, first: Vec<u8>, tid: SocketAddr) -> Vec<u8> {
    let mut content = Vec::new();
    let mut packet = first;
    loop {
        assert_eq!(
            &packet[..2],
            &[0, 3],
            "expected DATA, got {:?}",
            &packet[..packet.len().min(8)]
        );
        let block = u16::from_be_bytes([packet[2], packet[3]]);
        content.extend_from_slice(&packet[4..]);
        socket.send_to(&ack(block), tid).unwrap();
        if packet.len() - 4 < 512 {
            return content;
        }
        loop {
            let (next, from) = recv(socket);
            assert_eq!(from, tid);
            if u16::from_be_bytes([next[2], next[3]]) != block {
                packet = next;
                break;
            }
        }
    }
}

fn start(files: &[(&str, Vec<u8>)], config: &str) -> Daemon {
    let fixture = Fixture::new();
    for (name, body) in files {
        fixture.write(name, body);
    }
    fixture.start(config)
}

const V4_AND_V6: &str = "  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n";

#[test]
fn a_stranger_gets_error_5_and_the_transfer_goes_on() {
    let body = pattern(5000, 3);
    let daemon = start(&[("boot.img", body.clone())], V4_AND_V6);
    for server in [daemon.v4(), daemon.v6()] {
        let owner = client(server);
        owner
            .send_to(&request(1, b"boot.img", &[]), server)
            .unwrap();
        let (first, tid) = recv(&owner);
        assert_ne!(
            tid.port(),
            server.port(),
            "each transfer has its own port (RFC 1350 TID)"
        );
        assert_eq!(
            tid.ip(),
            server.ip(),
            "answered from the address the request went to"
        );
        let stranger = client(server);
        stranger.send_to(&ack(1), tid).unwrap();
        let (reply, _) = recv(&stranger);
        assert_eq!(error_code(&reply), Some(5));
        assert_eq!(finish_download(&owner, first, tid), body);
    }
}

#[test]
fn garbage_is_dropped_and_never_disturbs_a_transfer() {
    let body = pattern(20_000, 4);
    let daemon = start(&[("boot.img", body.clone())], V4_AND_V6);
    let server = daemon.v4();
    let owner = client(server);
    owner
        .send_to(&request(1, b"boot.img", &[]), server)
        .unwrap();
    let (first, tid) = recv(&owner);
    let noise = client(server);
    for (index, garbage) in [
        vec![],
        vec![0],
        vec![0, 9, 1, 2],
        vec![0xff; 3000],
        vec![0, 1, b'x'],
        vec![0, 3],
        vec![0, 6, b'a', 0],
        pattern(600, 77),
    ]
    .into_iter()
    .enumerate()
    {
        noise.send_to(&garbage, server).unwrap();
        if index % 2 == 0 {
            noise.send_to(&garbage, tid).unwrap();
        }
    }
    // The owner's own garbage is dropped too; the transfer carries on.
    owner.send_to(&[0, 42, 0, 0], tid).unwrap();
    assert_eq!(finish_download(&owner, first, tid), body);
    // And the daemon still serves new requests.
    let again = client(server);
    again
        .send_to(&request(1, b"boot.img", &[]), server)
        .unwrap();
    let (packet, _) = recv(&again);
    assert_eq!(&packet[..4], &[0, 3, 0, 1]);
}

#[test]
fn single_port_mode_answers_from_the_listening_port() {
    let body = pattern(3000, 5);
    let daemon = start(
        &[("boot.img", body.clone())],
        &format!("{V4_AND_V6}  single_port: true\n"),
    );
    for server in [daemon.v4(), daemon.v6()] {
        let socket = client(server);
        socket
            .send_to(&request(1, b"boot.img", &[]), server)
            .unwrap();
        let (first, tid) = recv(&socket);
        assert_eq!(
            tid, server,
            "single_port: every packet comes from the listening socket"
        );
        assert_eq!(finish_download(&socket, first, tid), body);
    }
}

#[test]
fn transfer_ports_come_from_the_configured_range() {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let low = probe.local_addr().unwrap().port();
    drop(probe);
    let high = low.saturating_add(3);
    let daemon = start(
        &[("a", pattern(100, 1))],
        &format!("  listen: [\"127.0.0.1:0\"]\n  port_range: [{low}, {high}]\n"),
    );
    let socket = client(daemon.v4());
    socket.send_to(&request(1, b"a", &[]), daemon.v4()).unwrap();
    let (_, tid) = recv(&socket);
    assert!(
        (low..=high).contains(&tid.port()),
        "port {} outside {low}-{high}",
        tid.port()
    );
}

#[test]
fn requests_past_max_sessions_wait_for_a_slot_then_get_an_error_only_after_the_grace_period() {
    let body = pattern(2000, 6);
    let mut daemon = start(
        &[("a", body.clone())],
        "  listen: [\"127.0.0.1:0\"]\n  max_sessions: 1\n  queue_timeout: 2s\n  timeout: 1s\n  retries: 10\n",
    );
    let server = daemon.v4();
    let first = client(server);
    first.send_to(&request(1, b"a", &[]), server).unwrap();
    let (data1, tid) = recv(&first);

    // The second request waits silently while the first transfer holds the only slot.
    let second = client(server);
    second.send_to(&request(1, b"a", &[]), server).unwrap();
    let waiting = try_recv(&second, Duration::from_millis(600));
    assert!(
        waiting.is_none(),
        "a queued request must not be answered yet: {waiting:?}"
    );

    // When the first transfer ends, the queued one starts.
    assert_eq!(finish_download(&first, data1, tid), body);
    let (packet, tid2) = recv(&second);
    assert_eq!(finish_download(&second, packet, tid2), body);

    // A request that waits longer than queue_timeout gets an ERROR.
    let holder = client(server);
    holder.send_to(&request(1, b"a", &[]), server).unwrap();
    let _ = recv(&holder); // DATA 1, never acknowledged: the slot stays busy.
    let late = client(server);
    let asked = Instant::now();
    late.send_to(&request(1, b"a", &[]), server).unwrap();
    let reply = loop {
        let (packet, _) = recv(&late);
        if packet[..2] == [0, 5] {
            break packet;
        }
    };
    assert_eq!(error_code(&reply), Some(0));
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "refused only after the grace period"
    );
    daemon.wait_for_log("max_sessions reached", Duration::from_secs(5));
}

#[test]
fn allow_from_refuses_other_sources_with_error_2_and_logs_them() {
    let mut daemon = start(
        &[("a", b"x".to_vec())],
        "  listen: [\"127.0.0.1:0\"]\n  allow_from: [10.99.0.0/24]\n",
    );
    let socket = client(daemon.v4());
    socket.send_to(&request(1, b"a", &[]), daemon.v4()).unwrap();
    let (reply, _) = recv(&socket);
    assert_eq!(error_code(&reply), Some(2));
    daemon.wait_for_log("not in allow_from", Duration::from_secs(5));
    let log = daemon.log();
    let line = log
        .lines()
        .find(|line| line.contains("not in allow_from"))
        .unwrap_or_default();
    assert!(
        line.contains("127.0.0.1"),
        "the refused client is named: {line}"
    );
}

#[test]
fn write_allow_from_limits_uploads_to_the_management_network() {
    let daemon = start(
        &[],
        "  listen: [\"127.0.0.1:0\"]\n  write:\n    enabled: true\n    allow_from: [10.99.0.0/24]\n",
    );
    let socket = client(daemon.v4());
    socket
        .send_to(&request(2, b"uploads/sw1.cfg", &[]), daemon.v4())
        .unwrap();
    let (reply, _) = recv(&socket);
    assert_eq!(error_code(&reply), Some(2));
}

#[test]
fn sigterm_aborts_transfers_with_an_error_and_exits_0_within_5_seconds() {
    let mut daemon = start(
        &[("big", pattern(200_000, 8))],
        "  listen: [\"127.0.0.1:0\"]\n",
    );
    let socket = client(daemon.v4());
    socket
        .send_to(&request(1, b"big", &[]), daemon.v4())
        .unwrap();
    let (_, tid) = recv(&socket);
    socket.send_to(&ack(1), tid).unwrap();
    let _ = recv(&socket); // DATA 2, left unacknowledged
    let signalled = Instant::now();
    daemon.signal(SIGTERM);
    let code = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    let saw_error = (0..10).any(|_| matches!(try_recv(&socket, Duration::from_millis(300)), Some((packet, _)) if packet[..2] == [0, 5]));
    assert!(
        saw_error,
        "the client of an aborted transfer is told with an ERROR"
    );
}

#[test]
fn sigint_stops_an_idle_daemon_with_exit_code_0() {
    let mut daemon = start(&[], "  listen: [\"127.0.0.1:0\"]\n");
    daemon.signal(SIGINT);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn sighup_reloads_without_dropping_a_transfer_and_refuses_a_bad_config() {
    let body = pattern(4000, 9);
    let mut daemon = start(&[("a", body.clone())], "  listen: [\"127.0.0.1:0\"]\n");
    let server = daemon.v4();
    let socket = client(server);
    socket.send_to(&request(1, b"a", &[]), server).unwrap();
    let (first, tid) = recv(&socket);

    // A valid reload that restricts reads to another network applies to new requests only.
    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    let restricted = config.replace(
        "  listen: [\"127.0.0.1:0\"]\n",
        &format!("  listen: [\"{server}\"]\n  allow_from: [10.99.0.0/24]\n"),
    );
    std::fs::write(daemon.config_path(), &restricted).unwrap();
    daemon.signal(SIGHUP);
    daemon.wait_for_log("config reloaded", Duration::from_secs(5));
    assert_eq!(
        finish_download(&socket, first, tid),
        body,
        "the transfer in flight survives the reload"
    );
    let newcomer = client(server);
    newcomer.send_to(&request(1, b"a", &[]), server).unwrap();
    assert_eq!(
        error_code(&recv(&newcomer).0),
        Some(2),
        "the new allow_from applies"
    );

    // A config that does not validate is refused and the running one kept.
    std::fs::write(
        daemon.config_path(),
        format!("{restricted}  bogus_key: 1\n"),
    )
    .unwrap();
    daemon.signal(SIGHUP);
    daemon.wait_for_log("config reload refused", Duration::from_secs(5));
    assert!(daemon.log().contains("bogus_key"));
    let again = client(server);
    again.send_to(&request(1, b"a", &[]), server).unwrap();
    assert_eq!(error_code(&recv(&again).0), Some(2));
}

#[test]
fn a_retransmitted_request_does_not_start_a_second_transfer() {
    let daemon = start(&[("a", pattern(2000, 10))], "  listen: [\"127.0.0.1:0\"]\n");
    let socket = client(daemon.v4());
    let rrq = request(1, b"a", &[]);
    socket.send_to(&rrq, daemon.v4()).unwrap();
    socket.send_to(&rrq, daemon.v4()).unwrap();
    let (first, tid) = recv(&socket);
    let second = try_recv(&socket, Duration::from_millis(300));
    if let Some((_, other)) = &second {
        assert_eq!(*other, tid, "no second transfer from another port");
    }
    drop(first);
}

#[test]
fn blksize_is_granted_up_to_the_loopback_mtu_and_tsize_reports_the_length() {
    let daemon = start(
        &[("a", pattern(100_000, 11))],
        "  listen: [\"127.0.0.1:0\"]\n",
    );
    let socket = client(daemon.v4());
    socket
        .send_to(
            &request(
                1,
                b"a",
                &[("blksize", "65464"), ("tsize", "0"), ("bogus", "1")],
            ),
            daemon.v4(),
        )
        .unwrap();
    let (oack, _) = recv(&socket);
    assert_eq!(&oack[..2], &[0, 6], "OACK expected");
    let text = String::from_utf8_lossy(&oack[2..]).to_lowercase();
    assert!(text.contains("blksize\u{0}65464\u{0}"), "{text:?}");
    assert!(text.contains("tsize\u{0}100000\u{0}"), "{text:?}");
    assert!(
        !text.contains("bogus"),
        "unknown options are not echoed: {text:?}"
    );
}

/// Reads `name` over TFTP from `server` in lock-step.
fn get(server: SocketAddr, name: &str) -> Vec<u8> {
    let socket = client(server);
    socket
        .send_to(&request(1, name.as_bytes(), &[]), server)
        .unwrap();
    let (first, tid) = recv(&socket);
    finish_download(&socket, first, tid)
}

/// The body of a plain HTTP/1.1 GET.
fn http_get(server: SocketAddr, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let body = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(0, |at| at + 4);
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    response[body..].to_vec()
}

/// SIGHUP brings every service in line with the new file the same way (serve.rs `apply`): a
/// new root serves from the next request, services the config now turns on (DNS, HTTP) start,
/// one it turns off stops, and a root that cannot be opened refuses the whole reload.
#[test]
fn sighup_starts_reloads_and_stops_services_the_same_way() {
    let mut daemon = start(
        &[("a", b"old root".to_vec())],
        "  listen: [\"127.0.0.1:0\"]\n",
    );
    let server = daemon.v4();
    assert_eq!(get(server, "a"), b"old root");
    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    let config = config.replace("127.0.0.1:0", &server.to_string());

    // A new root, and DNS turned on.
    let new_root = daemon.config_path().with_file_name("root2");
    std::fs::create_dir(&new_root).unwrap();
    std::fs::write(new_root.join("a"), b"new root").unwrap();
    let dns_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let old_root = daemon.root();
    let with_dns = format!(
        "{}dns:\n  listen: [\"127.0.0.1:{dns_port}\"]\n  domain: lab.test\nhttp:\n  listen: [\"127.0.0.1:0\"]\n",
        config.replace(
            crate::harness::path_str(&old_root),
            crate::harness::path_str(&new_root)
        )
    );
    std::fs::write(daemon.config_path(), &with_dns).unwrap();
    daemon.signal(SIGHUP);
    daemon.wait_for_log("config reloaded", Duration::from_secs(5));
    assert!(daemon.log().contains("dns listening"), "{}", daemon.log());
    assert_eq!(get(server, "a"), b"new root", "the new root serves");
    let http = daemon
        .log()
        .lines()
        .find(|line| line.contains("http listening"))
        .and_then(|line| crate::harness::field(line, "addr"))
        .expect("http started by the reload")
        .parse::<SocketAddr>()
        .unwrap();
    assert_eq!(
        http_get(http, "/a"),
        b"new root",
        "HTTP serves the same tree"
    );

    // A root that cannot be opened: refused, nothing changes.
    let missing = new_root.with_file_name("missing");
    std::fs::write(
        daemon.config_path(),
        with_dns.replace(
            crate::harness::path_str(&new_root),
            crate::harness::path_str(&missing),
        ),
    )
    .unwrap();
    daemon.signal(SIGHUP);
    daemon.wait_for_log("config reload refused", Duration::from_secs(5));
    assert_eq!(get(server, "a"), b"new root");

    // Another root, HTTP unchanged: the shared tree brings it to HTTP without a restart.
    let third = new_root.with_file_name("root3");
    std::fs::create_dir(&third).unwrap();
    std::fs::write(third.join("a"), b"third root").unwrap();
    let reloads = daemon.log().matches("config reloaded").count();
    std::fs::write(
        daemon.config_path(),
        with_dns.replace(
            crate::harness::path_str(&new_root),
            crate::harness::path_str(&third),
        ),
    )
    .unwrap();
    daemon.signal(SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.log().matches("config reloaded").count() == reloads {
        assert!(Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(server, "a"), b"third root");
    assert_eq!(http_get(http, "/a"), b"third root");
    assert!(!daemon.log().contains("restarting the http service"));

    // TFTP turned off: the port stops answering.
    let head = &config[..config.find("tftp:").unwrap()];
    let dns_only =
        format!("{head}dns:\n  listen: [\"127.0.0.1:{dns_port}\"]\n  domain: lab.test\n");
    std::fs::write(daemon.config_path(), dns_only).unwrap();
    daemon.signal(SIGHUP);
    daemon.wait_for_log("tftp turned off by reload", Duration::from_secs(5));
    let socket = client(server);
    socket.send_to(&request(1, b"a", &[]), server).unwrap();
    assert!(
        try_recv(&socket, Duration::from_millis(500)).is_none(),
        "nobody answers on the TFTP port any more"
    );
    daemon.signal(SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
}
