//! TFTP across real links: network namespaces joined by veth pairs, the daemon inside the
//! server namespace and real clients (atftp, curl, tcpdump, a raw Python client) inside the
//! client namespace. Needs root and iproute2; a missing tool fails the test.
//!
//! Addresses are private to the namespaces: 10.99.N.0/24 and fd00:99:N::/64, one N per test.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{Daemon, Fixture, field, path_str, pattern};
use crate::netns::{Netns, VethPair};
use crate::tools::{require, run, sha256_file};

const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// `atftp --get` run inside `netns`; returns stdout and stderr. With `trace`, atftp prints a
/// line per packet: only for small files, since `tools::run` reads the pipes only after the
/// client exits and a client that fills a pipe (64 KiB) stalls.
fn atftp_get(
    netns: &Netns,
    server: SocketAddr,
    file: &str,
    out: &Path,
    options: &[(&str, u32)],
    trace: bool,
    deadline: Duration,
) -> String {
    let mut command = netns.command("atftp");
    if trace {
        command.arg("--trace");
    }
    command.args(["--get", "-r", file, "-l", path_str(out)]);
    for (name, value) in options {
        command.arg("--option").arg(format!("{name} {value}"));
    }
    command
        .arg(server.ip().to_string())
        .arg(server.port().to_string());
    let output = run(&mut command, deadline);
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "atftp get {file} from {server} {options:?} failed:\n{text}"
    );
    text
}

/// `curl` (lock-step, RFC 1350 with blksize) run inside `netns`.
fn curl_get(netns: &Netns, server: SocketAddr, file: &str, out: &Path, blksize: u16) {
    let url = match server {
        SocketAddr::V4(v4) => format!("tftp://{}:{}/{file}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("tftp://[{}]:{}/{file}", v6.ip(), v6.port()),
    };
    let mut command = netns.command("curl");
    command
        .args(["--silent", "--show-error", "--fail", "--max-time", "60"])
        // curl derives the timeout it negotiates from the connect timeout: 3 s gives the
        // RFC 2349 minimum of 1 s (without it, 5 s per lost packet).
        .args(["--connect-timeout", "3"])
        .args(["--tftp-blksize", &blksize.to_string(), "-o"])
        .arg(out)
        .arg(url);
    let output = run(&mut command, CLIENT_DEADLINE);
    assert!(
        output.status.success(),
        "curl get {file} from {server} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_same(expected: &Path, got: &Path) {
    assert!(got.exists(), "{} was not written", got.display());
    assert_eq!(
        sha256_file(expected),
        sha256_file(got),
        "content of {} differs from {}",
        got.display(),
        expected.display()
    );
}

/// Waits for the daemon's one line about the transfer of `file` and returns it; a failed
/// transfer fails the test with its line.
fn transfer_line(daemon: &Daemon, file: &str) -> String {
    let started = Instant::now();
    loop {
        let log = daemon.log();
        let line = log.lines().find(|line| {
            (line.contains("tftp transfer complete") || line.contains("tftp transfer failed"))
                && field(line, "file").is_some_and(|name| name.trim_start_matches('/') == file)
        });
        if let Some(line) = line {
            assert!(
                line.contains("tftp transfer complete"),
                "the transfer of {file} failed: {line}"
            );
            return line.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "kindling logged no end of the transfer of {file}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn number(line: &str, name: &str) -> u64 {
    field(line, name)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {name}= in {line}"))
}

// ---------------------------------------------------------------------------------------------

/// With a 1500-byte link the largest block that crosses it unfragmented is the MTU less 20
/// bytes of IPv4 header (40 for IPv6), 8 of UDP and 4 of TFTP: 1468 over IPv4 and 1448 over
/// IPv6; with 9000 bytes, 8968 and 8948. A client asking for the maximum (65464) must be
/// granted exactly that, in the OACK on the wire and in the transfer itself. The MTU is read
/// per request, so a change of the link's MTU under a running daemon is honoured by the next
/// transfer.
#[test]
fn blksize_is_clamped_to_the_path_mtu_on_ipv4_and_ipv6() {
    let net = VethPair::new("mtu", 1500);
    net.add_server_addr("10.99.1.1/24");
    net.add_server_addr("fd00:99:1::1/64");
    net.add_client_addr("10.99.1.10/24");
    net.add_client_addr("fd00:99:1::10/64");
    let v4 = addr("10.99.1.1:69");
    let v6 = addr("[fd00:99:1::1]:69");

    let cases: [(u32, u32, u32); 2] = [(1500, 1468, 1448), (9000, 8968, 8948)];
    let fixture = Fixture::new();
    let mut sources = Vec::new();
    for (mtu, _, _) in cases {
        for family in ["v4", "v6"] {
            let name = format!("mtu{mtu}-{family}.img");
            // Several blocks at any of the sizes, and not a multiple of any of them.
            let path = fixture.write(&name, &pattern(100_003, u64::from(mtu)));
            sources.push((name, path));
        }
    }
    let daemon = fixture.start_in(
        &net.server.exec_prefix(),
        &format!("  listen: [\"{v4}\", \"{v6}\"]\n"),
    );
    let downloads = tempfile::tempdir().unwrap();

    for (mtu, expected_v4, expected_v6) in cases {
        net.set_mtu(mtu);
        for (server, expected) in [(v4, expected_v4), (v6, expected_v6)] {
            let family = if server.is_ipv4() { "v4" } else { "v6" };
            let name = format!("mtu{mtu}-{family}.img");
            let out = downloads.path().join(&name);
            let trace = atftp_get(
                &net.client,
                server,
                &name,
                &out,
                &[("blksize", 65464), ("tsize", 0)],
                true,
                CLIENT_DEADLINE,
            );
            // atftp --trace: "received OACK <tsize: 100003, blksize: 1468, >".
            let oack = trace
                .lines()
                .find(|line| line.contains("received OACK"))
                .unwrap_or_else(|| panic!("no OACK for {name}:\n{trace}"));
            assert!(
                oack.contains(&format!("blksize: {expected},")),
                "MTU {mtu} over {family}: expected blksize {expected} in the OACK, got {oack}"
            );
            // A full DATA packet carries exactly the granted size:
            // "received 1. DATA <block: 1, size 1468>, ...".
            assert!(
                trace.contains(&format!("block: 1, size {expected}>")),
                "MTU {mtu} over {family}: no DATA of {expected} bytes:\n{trace}"
            );
            let path = &sources.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_same(path, &out);
            let line = transfer_line(&daemon, &name);
            assert_eq!(
                number(&line, "blksize"),
                u64::from(expected),
                "MTU {mtu} over {family}: {line}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// A raw TFTP client: sends an RRQ (octet, blksize 1024) to HOST PORT for FILE, acknowledges
/// everything in lock-step and prints, per reply, `reply OPCODE IP PORT`, then
/// `done BYTES SHA256`. Every datagram is acknowledged to the address it came from, so a
/// server that answers from the wrong address still completes and is caught by the sources.
const RAW_CLIENT: &str = r#"
import hashlib, socket, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"\0\1" + name.encode() + b"\0octet\0blksize\x001024\0", (host, port))
data, expected = b"", 1
while True:
    packet, source = s.recvfrom(70000)
    opcode = int.from_bytes(packet[:2], "big")
    print("reply", opcode, source[0], source[1], flush=True)
    if opcode == 6:
        s.sendto(b"\0\4\0\0", source)
        continue
    if opcode != 3:
        sys.exit("unexpected reply: %r" % packet[:64])
    block = int.from_bytes(packet[2:4], "big")
    s.sendto(b"\0\4" + packet[2:4], source)
    if block == expected:
        data += packet[4:]
        expected += 1
        if len(packet) - 4 < 1024:
            break
print("done", len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#;

struct RawReplies {
    /// (opcode, source) per reply, in order.
    replies: Vec<(u16, SocketAddr)>,
    bytes: usize,
    sha256: String,
}

fn raw_get(netns: &Netns, server: SocketAddr, file: &str) -> RawReplies {
    let output = run(
        netns
            .command("python3")
            .args(["-c", RAW_CLIENT])
            .arg(server.ip().to_string())
            .arg(server.port().to_string())
            .arg(file),
        CLIENT_DEADLINE,
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "raw client to {server} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut result = RawReplies {
        replies: Vec::new(),
        bytes: 0,
        sha256: String::new(),
    };
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["reply", opcode, ip, port] => {
                let ip: IpAddr = ip.parse().unwrap();
                result.replies.push((
                    opcode.parse().unwrap(),
                    SocketAddr::new(ip, port.parse().unwrap()),
                ));
            }
            ["done", bytes, sha256] => {
                result.bytes = bytes.parse().unwrap();
                result.sha256 = (*sha256).to_string();
            }
            _ => panic!("unexpected line from the raw client: {line}"),
        }
    }
    result
}

/// Listening on the wildcard address, the daemon must answer every packet of a transfer (OACK
/// and all DATA) from the address the request was sent to, also when that is not the address
/// the kernel would pick for the route back (here each interface has two). Checked for both
/// addresses of both families, with a port per transfer and in single_port mode.
#[test]
fn a_multi_homed_server_answers_from_the_address_the_request_was_sent_to() {
    let net = VethPair::new("mhome", 1500);
    for cidr in [
        "10.99.2.1/24",
        "10.99.2.2/24",
        "fd00:99:2::1/64",
        "fd00:99:2::2/64",
    ] {
        net.add_server_addr(cidr);
    }
    net.add_client_addr("10.99.2.10/24");
    net.add_client_addr("fd00:99:2::10/64");
    // Five blocks of 1024 and a short sixth.
    let body = pattern(5 * 1024 + 100, 21);
    let expected_sha = {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(&body))
    };

    for single_port in [false, true] {
        let fixture = Fixture::new();
        fixture.write("boot.img", &body);
        let daemon = fixture.start_in(
            &net.server.exec_prefix(),
            &format!("  listen: [\"0.0.0.0:69\", \"[::]:69\"]\n  single_port: {single_port}\n"),
        );
        for target in [
            "10.99.2.2:69",
            "10.99.2.1:69",
            "[fd00:99:2::2]:69",
            "[fd00:99:2::1]:69",
        ] {
            let target = addr(target);
            let got = raw_get(&net.client, target, "boot.img");
            let context = format!("single_port {single_port}, request to {target}");
            assert_eq!(got.sha256, expected_sha, "{context}: content differs");
            assert_eq!(got.bytes, body.len(), "{context}");
            assert_eq!(
                got.replies.first().map(|(opcode, _)| *opcode),
                Some(6),
                "{context}: the first reply is the OACK for blksize: {:?}",
                got.replies
            );
            assert!(
                got.replies.len() >= 7,
                "{context}: OACK and six DATA: {:?}",
                got.replies
            );
            for (opcode, source) in &got.replies {
                assert_eq!(
                    source.ip(),
                    target.ip(),
                    "{context}: reply (opcode {opcode}) came from {source}"
                );
                if single_port {
                    assert_eq!(source.port(), 69, "{context}: single_port answers from 69");
                } else {
                    assert_ne!(source.port(), 69, "{context}: a transfer has its own port");
                }
            }
            let tid = got.replies[0].1;
            assert!(
                got.replies.iter().all(|(_, source)| *source == tid),
                "{context}: one transfer identifier: {:?}",
                got.replies
            );
        }
        drop(daemon);
    }
}

// ---------------------------------------------------------------------------------------------

/// Drops `percent` of the packets arriving on `interface` at random, with an nftables
/// netdev ingress rule in `netns` (this kernel has no netem; nftables is built in). Applied on
/// the client's end of the veth, it loses the server's packets exactly as netem on the server's
/// egress would. If the rule cannot be installed the test fails: a loss test that runs without
/// loss would prove nothing.
fn add_loss(netns: &Netns, interface: &str, percent: u32) {
    require("nft");
    assert!((1..100).contains(&percent));
    let modulus = 100 / percent;
    let ruleset = format!(
        "table netdev kindling_loss {{\n  chain ingress {{\n    type filter hook ingress device \"{interface}\" priority 0; policy accept;\n    numgen random mod {modulus} == 0 drop\n  }}\n}}\n"
    );
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), ruleset).unwrap();
    let output = run(
        netns.command("nft").arg("-f").arg(rules.path()),
        Duration::from_secs(20),
    );
    assert!(
        output.status.success(),
        "this test needs nftables to inject loss (`nft -f` in {} failed: {})",
        netns.name(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// 4 MiB over a link that drops 2% of the server's packets (nftables on the client's ingress). The
/// windowed transfer (atftp 0.8, blksize 1468, windowsize 16) must finish intact, in bounded
/// time and with a bounded number of retransmitted blocks; curl's lock-step transfer must
/// finish too.
///
/// atftp ACKs only after a full window or on its own timeout (plus one extra ACK when it sees
/// a gap), so the two bounds catch the two ways a windowed sender goes wrong on loss:
/// - Time: 4 MiB is 2858 blocks, so about 57 are lost. A go-back-N sender that always resends
///   a full window waits for a timeout (1 s) only when the tail of a window is lost (the
///   receiver sees no gap); measured with 2% loss injected on this machine: 3 to 11 s.
///   A sender that resends less than a window (only the missing block) leaves atftp waiting
///   for its timeout on every loss: at least 57 s. The bound is 30 s.
/// - Retransmitted blocks: go-back-N resends from the lost block to the end of its window,
///   8 blocks on average and 16 at most, so about 57 x 8 = 460 (measured: 400 to 560). The
///   bound, 4 x 57 x 16 / 2 = 1824, leaves room for unlucky runs (losses among the resent
///   blocks, timeouts that resend a whole window) and is still exceeded by a sender that
///   resends the window more than about twice per loss, let alone on every duplicate ACK.
#[test]
fn windowed_transfer_survives_a_lossy_link_without_resending_windows_over_and_over() {
    const BLKSIZE: u32 = 1468;
    const WINDOW: u32 = 16;
    const SIZE: usize = 4 * 1024 * 1024;
    const LOSS_PERCENT: u64 = 2;
    let net = VethPair::new("loss", 1500);
    net.add_server_addr("10.99.3.1/24");
    net.add_client_addr("10.99.3.10/24");
    let server = addr("10.99.3.1:69");

    let fixture = Fixture::new();
    let source = fixture.write("big.img", &pattern(SIZE, 31));
    let small = fixture.write("small.img", &pattern(SIZE / 8, 32));
    let daemon = fixture.start_in(
        &net.server.exec_prefix(),
        &format!("  listen: [\"{server}\"]\n"),
    );
    add_loss(&net.client, &net.client_if, LOSS_PERCENT as u32);
    // The server sends a window as one segmented datagram (UDP GSO), which a veth carries
    // whole to the other end, where the loss rule would drop the whole window at once. On a
    // wire the NIC cuts it first and loss strikes single datagrams: have the kernel cut it
    // before the veth, as for a NIC without segmentation offload.
    net.server
        .ip(&["link", "set", "dev", &net.server_if, "gso_max_segs", "1"]);
    let downloads = tempfile::tempdir().unwrap();

    let out = downloads.path().join("big.img");
    let started = Instant::now();
    let _ = atftp_get(
        &net.client,
        server,
        "big.img",
        &out,
        &[("blksize", BLKSIZE), ("windowsize", WINDOW)],
        false,
        Duration::from_secs(60),
    );
    let windowed = started.elapsed();
    assert_same(&source, &out);
    let line = transfer_line(&daemon, "big.img");
    assert_eq!(number(&line, "windowsize"), u64::from(WINDOW), "{line}");
    assert_eq!(number(&line, "blksize"), u64::from(BLKSIZE), "{line}");
    assert!(
        windowed < Duration::from_secs(30),
        "4 MiB took {windowed:?} at 2% loss: the receiver waited for its timeout on most \
         losses (does the sender resend a full window after a gap?): {line}"
    );
    let retransmitted = number(&line, "retransmitted");
    let blocks = (SIZE as u64).div_ceil(u64::from(BLKSIZE));
    let expected_losses = blocks * LOSS_PERCENT / 100;
    let bound = 4 * expected_losses * u64::from(WINDOW) / 2;
    assert!(
        retransmitted <= bound,
        "{retransmitted} blocks resent for about {expected_losses} lost (bound {bound}): {line}"
    );
    assert!(
        retransmitted > 0,
        "no block resent on a link with {LOSS_PERCENT}% loss: was the loss in place? {line}"
    );

    // Lock-step for comparison: every loss costs a whole retransmission timeout (1 s), so a
    // smaller file keeps the test short (512 KiB: 358 blocks, about 7 losses, 6 to 11 s).
    let out = downloads.path().join("small.img");
    let started = Instant::now();
    curl_get(&net.client, server, "small.img", &out, BLKSIZE as u16);
    let lock_step = started.elapsed();
    assert_same(&small, &out);
    let line = transfer_line(&daemon, "small.img");
    assert_eq!(number(&line, "windowsize"), 1, "{line}");
    eprintln!(
        "lossy link: windowed 4 MiB in {windowed:?} ({retransmitted} blocks resent), lock-step \
         512 KiB in {lock_step:?} ({} resent)",
        number(&line, "retransmitted")
    );
}

/// Drops the first DATA 1 and the first OACK the server sends (every other one, counted from
/// when this is installed), with nftables netdev ingress rules on the client's end. Installing
/// it again starts the count (and the rules' counters) afresh for the next client.
fn drop_first_data_1_and_oack(netns: &Netns, interface: &str) {
    require("nft");
    // @th,64: the first bytes of the UDP payload (after the 8-byte UDP header).
    let ruleset = format!(
        "flush ruleset\ntable netdev kindling_first {{\n  chain ingress {{\n    type filter hook ingress device \"{interface}\" priority 0; policy accept;\n    meta l4proto udp @th,64,32 0x00030001 numgen inc mod 2 == 0 counter drop\n    meta l4proto udp @th,64,16 0x0006 numgen inc mod 2 == 0 counter drop\n  }}\n}}\n"
    );
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), ruleset).unwrap();
    let output = run(
        netns.command("nft").arg("-f").arg(rules.path()),
        Duration::from_secs(20),
    );
    assert!(
        output.status.success(),
        "this test needs nftables to drop the first packet (`nft -f` in {} failed: {})",
        netns.name(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Packets the rules of [`drop_first_data_1_and_oack`] dropped so far.
fn first_packets_dropped(netns: &Netns) -> u64 {
    let output = run(
        netns
            .command("nft")
            .args(["list", "table", "netdev", "kindling_first"]),
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split("packets ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `tftp` (tftp-hpa) get in binary mode, without options: DATA 1 is the first packet.
fn hpa_get(netns: &Netns, server: SocketAddr, file: &str, out: &Path) {
    let output = run(
        netns
            .command("tftp")
            .args(["-4", "-m", "binary", &server.ip().to_string()])
            .arg(server.port().to_string())
            .args(["-c", "get", file])
            .arg(out),
        CLIENT_DEADLINE,
    );
    assert!(
        output.status.success(),
        "tftp-hpa get {file} failed: {output:?}"
    );
}

/// A transfer's first packet (DATA 1, or the OACK) is sent once and, until the client has
/// acknowledged something, resent only when the client repeats its request. Every client we
/// know repeats its RRQ on timeout; this drops the first DATA 1 and the first OACK of each
/// download on the way to the client and checks that tftp-hpa, curl (with and without
/// options) and atftp (lock-step and windowed) all still get byte-identical files. With
/// options, DATA 1 after the OACK is dropped too: that loss happens after confirmation and is
/// recovered by the server's own timer, as before.
#[test]
fn a_lost_first_data_or_oack_is_recovered_through_the_repeated_request() {
    let net = VethPair::new("first", 1500);
    net.add_server_addr("10.99.7.1/24");
    net.add_client_addr("10.99.7.10/24");
    let server = addr("10.99.7.1:69");
    let fixture = Fixture::new();
    let names = [
        "hpa.img",
        "curl-plain.img",
        "curl-oack.img",
        "atftp.img",
        "atftp-win.img",
    ];
    let sources: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(index, name)| fixture.write(name, &pattern(150_001, 70 + index as u64)))
        .collect();
    let daemon = fixture.start_in(
        &net.server.exec_prefix(),
        &format!("  listen: [\"{server}\"]\n"),
    );
    let downloads = tempfile::tempdir().unwrap();
    let out = |name: &str| downloads.path().join(name);
    for (name, source) in names.iter().zip(&sources) {
        drop_first_data_1_and_oack(&net.client, &net.client_if);
        let started = Instant::now();
        match *name {
            "hpa.img" => hpa_get(&net.client, server, name, &out(name)),
            "curl-plain.img" => {
                let url = format!("tftp://{}:{}/{name}", server.ip(), server.port());
                let output = run(
                    net.client
                        .command("curl")
                        .args(["--silent", "--show-error", "--fail", "--max-time", "60"])
                        .args(["--connect-timeout", "3", "--tftp-no-options", "-o"])
                        .arg(out(name))
                        .arg(url),
                    CLIENT_DEADLINE,
                );
                assert!(output.status.success(), "curl: {output:?}");
            }
            "curl-oack.img" => curl_get(&net.client, server, name, &out(name), 1468),
            "atftp.img" => {
                atftp_get(
                    &net.client,
                    server,
                    name,
                    &out(name),
                    &[],
                    false,
                    CLIENT_DEADLINE,
                );
            }
            _ => {
                let options = [("blksize", 1468), ("windowsize", 8)];
                atftp_get(
                    &net.client,
                    server,
                    name,
                    &out(name),
                    &options,
                    false,
                    CLIENT_DEADLINE,
                );
            }
        }
        let elapsed = started.elapsed();
        assert_same(source, &out(name));
        let line = transfer_line(&daemon, name);
        // The rules (and their counters) are new for each client.
        assert!(
            first_packets_dropped(&net.client) > 0,
            "{name}: the rule dropped nothing, the test proved nothing"
        );
        assert!(number(&line, "retransmitted") >= 1, "{name}: {line}");
        eprintln!("{name}: first packet lost, recovered in {elapsed:?}: {line}");
    }
    assert!(
        daemon.log().contains("request repeated"),
        "no request was repeated: was the first packet really lost?"
    );
}

// ---------------------------------------------------------------------------------------------

/// Kills a child process on drop (a capture that never finishes must not outlive the test).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tcpdump -c COUNT -v FILTER` on the client's veth and returns once it is capturing.
fn start_capture(net: &VethPair, count: u32, filter: &str) -> (KillOnDrop, mpsc::Receiver<String>) {
    let mut child = net
        .client
        .command("tcpdump")
        .args([
            "-i",
            &net.client_if,
            "-n",
            "-v",
            "-l",
            "-c",
            &count.to_string(),
            filter,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tcpdump");
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = KillOnDrop(child);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = ready_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut said = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ready_rx.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => break,
            Ok(line) => said.push_str(&line),
            Err(_) => panic!("tcpdump never started capturing: {said}"),
        }
    }
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            text.push_str(&line);
            text.push('\n');
        }
        let _ = out_tx.send(text);
    });
    (guard, out_rx)
}

/// Some PXE ROMs mishandle IPv4 packets with Don't Fragment set, so DATA leaves with DF clear;
/// and a full DATA packet fills the 1500-byte link exactly (a 1468-byte block) without being
/// fragmented. Over IPv6 (no DF bit) a full DATA packet is likewise one 1500-byte packet
/// without a fragment header.
#[test]
fn data_packets_fill_the_mtu_and_leave_without_the_dont_fragment_bit() {
    require("tcpdump");
    let net = VethPair::new("df", 1500);
    net.add_server_addr("10.99.4.1/24");
    net.add_server_addr("fd00:99:4::1/64");
    net.add_client_addr("10.99.4.10/24");
    net.add_client_addr("fd00:99:4::10/64");
    let v4 = addr("10.99.4.1:69");
    let v6 = addr("[fd00:99:4::1]:69");
    let fixture = Fixture::new();
    let source = fixture.write("boot.img", &pattern(10 * 1468 + 7, 41));
    let _daemon = fixture.start_in(
        &net.server.exec_prefix(),
        &format!("  listen: [\"{v4}\", \"{v6}\"]\n"),
    );
    let downloads = tempfile::tempdir().unwrap();

    for server in [v4, v6] {
        let family = if server.is_ipv4() { "v4" } else { "v6" };
        // Only full DATA packets from the server: the OACK, ACKs and the last block are smaller.
        let filter = format!("udp and src host {} and greater 1400", server.ip());
        let (mut capture, text) = start_capture(&net, 3, &filter);
        let out = downloads.path().join(family);
        atftp_get(
            &net.client,
            server,
            "boot.img",
            &out,
            &[("blksize", 65464)],
            false,
            CLIENT_DEADLINE,
        );
        assert_same(&source, &out);
        let started = Instant::now();
        while capture.0.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "tcpdump did not see 3 full DATA packets over {family}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = text.recv_timeout(Duration::from_secs(5)).unwrap();
        drop(capture);
        if server.is_ipv4() {
            // "IP (tos 0x0, ttl 64, id 1, offset 0, flags [none], proto UDP (17), length 1500)"
            assert_eq!(
                text.matches("flags [none]").count(),
                3,
                "DATA must leave without DF (and unfragmented):\n{text}"
            );
            assert!(!text.contains("[DF]"), "DF is set on DATA:\n{text}");
            assert_eq!(
                text.matches("length 1500)").count(),
                3,
                "full DATA packets fill the 1500-byte MTU:\n{text}"
            );
        } else {
            // "IP6 (flowlabel 0x..., hlim 64, next-header UDP (17) payload length: 1460) ..."
            assert_eq!(
                text.matches("next-header UDP (17) payload length: 1460)")
                    .count(),
                3,
                "full DATA packets are single unfragmented 1500-byte packets:\n{text}"
            );
            assert!(!text.contains("frag"), "DATA was fragmented:\n{text}");
        }
    }
}

/// A window leaves as one segmented send (UDP GSO) cut at the block size. A route whose MTU is
/// below the interface's (the blksize cap reads the interface) makes the kernel refuse such a
/// send; the blocks must then go one by one (fragmented, since DF is clear), at once and not
/// after a retransmission timeout per window.
#[test]
fn a_window_the_route_cannot_segment_is_sent_block_by_block_without_waiting() {
    let net = VethPair::new("gso", 1500);
    net.add_server_addr("10.99.5.1/24");
    net.add_client_addr("10.99.5.10/24");
    net.server.ip(&[
        "route",
        "replace",
        "10.99.5.0/24",
        "dev",
        &net.server_if,
        "src",
        "10.99.5.1",
        "mtu",
        "1300",
    ]);
    let server = addr("10.99.5.1:69");
    let fixture = Fixture::new();
    let source = fixture.write("boot.img", &pattern(2 * 1024 * 1024 + 11, 51));
    let daemon = fixture.start_in(
        &net.server.exec_prefix(),
        &format!("  listen: [\"{server}\"]\n"),
    );
    let downloads = tempfile::tempdir().unwrap();
    let out = downloads.path().join("boot.img");
    let started = Instant::now();
    atftp_get(
        &net.client,
        server,
        "boot.img",
        &out,
        &[("blksize", 1468), ("windowsize", 16)],
        false,
        CLIENT_DEADLINE,
    );
    let took = started.elapsed();
    assert_same(&source, &out);
    let line = transfer_line(&daemon, "boot.img");
    assert_eq!(number(&line, "blksize"), 1468, "{line}");
    assert_eq!(number(&line, "windowsize"), 16, "{line}");
    // 1429 blocks in 90 windows: a refused send that was not redone at once would cost a
    // 1 s timeout (and a resent window) for every one of them.
    assert_eq!(number(&line, "retransmitted"), 0, "{line}");
    assert!(
        took < Duration::from_secs(20),
        "2 MiB took {took:?}: {line}"
    );
}
