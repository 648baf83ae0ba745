//! The boot tree over HTTP, seen from the wire: curl over IPv4 and IPv6 (a 256 MiB file
//! byte-identical, HEAD, ranges, 416, ETag preconditions), and one table of hostile names run
//! against both TFTP and HTTP of the same daemon.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Daemon, Fixture, field, pattern};
use crate::tftp_hostile::{error_code, exchange, request};
use crate::tools::{require, run, sha256_file};

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE";
const INBOX_SECRET: &[u8] = b"enable secret 5 INBOX-SECRET";
const BIG: usize = 256 << 20;

/// TFTP and HTTP on loopback, both families, ports the kernel picks.
const SECTIONS: &str =
    "  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\nhttp:\n  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n";

fn http_addrs(daemon: &Daemon) -> Vec<SocketAddr> {
    let addrs: Vec<SocketAddr> = daemon
        .log()
        .lines()
        .filter(|line| line.contains("http listening"))
        .filter_map(|line| field(line, "addr"))
        .filter_map(|addr| addr.parse().ok())
        .collect();
    assert_eq!(addrs.len(), 2, "{}", daemon.log());
    addrs
}

fn url(server: SocketAddr, path: &str) -> String {
    format!("http://{server}{path}")
}

/// Runs curl; returns the status code and the response headers (lower-case names).
fn curl(server: SocketAddr, path: &str, args: &[&str], out: &Path) -> (u16, String) {
    require("curl");
    let headers = out.with_extension("headers");
    let output = run(
        Command::new("curl")
            .args(["-sS", "-g", "--path-as-is", "-o"])
            .arg(out)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "%{http_code}"])
            .args(args)
            .arg(url(server, path)),
        Duration::from_secs(120),
    );
    assert!(output.status.success(), "curl failed: {output:?}");
    let code = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    let headers = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .to_ascii_lowercase();
    (code, headers)
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

#[test]
fn curl_gets_heads_ranges_and_revalidates_over_ipv4_and_ipv6() {
    let fixture = Fixture::new();
    let block = pattern(1 << 20, 5);
    let mut big = Vec::with_capacity(BIG);
    for i in 0..(BIG >> 20) {
        big.extend(block.iter().map(|byte| byte ^ i as u8));
    }
    let served = fixture.write("images/big.img", &big);
    fixture.write("ipxe.efi", b"MZ efi");
    let mut daemon = fixture.start(SECTIONS);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out");
    for server in http_addrs(&daemon) {
        // GET: byte-identical.
        let (code, headers) = curl(server, "/images/big.img", &[], &out);
        assert_eq!(code, 200, "{headers}");
        assert_eq!(sha256_file(&out), sha256_file(&served), "over {server}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/vnd.efi-img")
        );
        let etag = header(&headers, "etag").unwrap().to_string();

        // HEAD: the length and the validator, no body.
        let (code, headers) = curl(server, "/images/big.img", &["-I"], &out);
        assert_eq!(code, 200);
        assert_eq!(
            header(&headers, "content-length"),
            Some(BIG.to_string().as_str())
        );
        assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
        let (_, efi) = curl(server, "/ipxe.efi", &["-I"], &out);
        assert_eq!(header(&efi, "content-type"), Some("application/efi"));

        // One range.
        let (code, headers) = curl(server, "/images/big.img", &["-r", "1000000-1999999"], &out);
        assert_eq!(code, 206);
        assert_eq!(
            header(&headers, "content-range"),
            Some(format!("bytes 1000000-1999999/{BIG}").as_str())
        );
        assert_eq!(std::fs::read(&out).unwrap(), big[1_000_000..2_000_000]);

        // Past the end.
        let (code, headers) = curl(server, "/images/big.img", &["-r", "300000000-"], &out);
        assert_eq!(code, 416);
        assert_eq!(
            header(&headers, "content-range"),
            Some(format!("bytes */{BIG}").as_str())
        );

        // Validators: a cache revalidates, a resume with a stale tag is refused, a resume
        // with the current one gets the rest (EDK2's Range + If-Match).
        let inm = format!("If-None-Match: {etag}");
        let (code, _) = curl(server, "/images/big.img", &["-H", &inm], &out);
        assert_eq!(code, 304);
        let (code, _) = curl(
            server,
            "/images/big.img",
            &["-H", "If-Match: \"stale\"", "-r", "100-"],
            &out,
        );
        assert_eq!(code, 412);
        let im = format!("If-Match: {etag}");
        let (code, _) = curl(
            server,
            "/images/big.img",
            &["-H", &im, "-r", "200000000-"],
            &out,
        );
        assert_eq!(code, 206);
        assert_eq!(std::fs::read(&out).unwrap(), big[200_000_000..]);
    }
    // One line per request, with what it did.
    daemon.wait_for_log("status=206", Duration::from_secs(5));
    let log = daemon.log();
    let whole = log
        .lines()
        .find(|line| {
            line.contains("http request")
                && line.contains("status=200")
                && line.contains("big.img")
                && line.contains("method=GET")
        })
        .unwrap_or_else(|| panic!("no log line for the GET:\n{log}"));
    assert_eq!(field(whole, "bytes"), Some(BIG.to_string()), "{whole}");
    assert!(
        field(whole, "peer").is_some_and(|peer| peer.contains("127.0.0.1") || peer.contains("::1")),
        "{whole}"
    );
    assert!(field(whole, "duration_ms").is_some(), "{whole}");
}

/// Names that must never reach anything outside the tree, the inbox, a device or a directory.
/// Each is sent as is: as the TFTP file name, and after `/` as the HTTP request target (where
/// `%` escapes are decoded once; over TFTP they are literal characters).
const HOSTILE: &[&str] = &[
    "../secret",
    "../../../../../../etc/passwd",
    "sub/../../secret",
    "..\\secret",
    "sub\\..\\..\\secret",
    "%2e%2e/secret",
    "%2e%2e%2fsecret",
    "sub/%2e%2e/%2e%2e/secret",
    "%252e%252e/secret",
    "%252e%252e%252fsecret",
    "..%5csecret",
    "%2e%2e%5csecret",
    "ok.txt%00",
    "ok.txt%00.efi",
    "%00",
    "%ff%fe",
    "escape",
    "escape-dir/secret",
    "escape-relative",
    "devnull",
    "zero",
    "fifo",
    "sub",
    "uploads/sw1.cfg",
    "uploads%2fsw1.cfg",
    "uploads\\sw1.cfg",
    "inbox-link/sw1.cfg",
];

/// Sends one raw HTTP/1.1 request and returns the whole response.
fn raw_http(server: SocketAddr, target: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: kindling\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response
}

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn one_table_of_hostile_names_is_refused_by_tftp_and_http_alike() {
    let fixture = Fixture::new();
    fixture.write("ok.txt", b"fine");
    fixture.write("sub/inside.txt", b"inside");
    fixture.write("uploads/sw1.cfg", INBOX_SECRET);
    let outside = fixture.dir.path().join("secret");
    std::fs::write(&outside, SECRET).unwrap();
    let root = fixture.root();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    std::os::unix::fs::symlink(fixture.dir.path(), root.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("escape-relative")).unwrap();
    std::os::unix::fs::symlink("/dev/null", root.join("devnull")).unwrap();
    std::os::unix::fs::symlink("uploads", root.join("inbox-link")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    // A character device inside the root (/dev/zero's numbers): the tests run as root.
    nix::sys::stat::mknod(
        &root.join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
        nix::sys::stat::makedev(1, 5),
    )
    .expect("mknod needs root, as the namespace tests do");
    let daemon = fixture.start(SECTIONS);
    let tftp = [daemon.v4(), daemon.v6()];
    let http = http_addrs(&daemon);

    for name in HOSTILE {
        for server in tftp {
            let (reply, _) = exchange(server, &request(1, name.as_bytes(), &[]));
            assert!(
                matches!(error_code(&reply), Some(1 | 2)),
                "TFTP {server} served {name:?}: {:?}",
                &reply[..reply.len().min(16)]
            );
            assert!(!contains(&reply, SECRET) && !contains(&reply, b"INBOX-SECRET"));
        }
        for server in &http {
            let response = raw_http(*server, &format!("/{name}"));
            let code = status_of(&response);
            assert!(
                matches!(code, 400 | 403 | 404),
                "HTTP {server} answered {code} to {name:?}: {}",
                String::from_utf8_lossy(&response)
            );
            assert!(!contains(&response, SECRET) && !contains(&response, b"INBOX-SECRET"));
            assert!(
                !contains(&response.to_ascii_lowercase(), b"\r\nlocation:"),
                "no redirects"
            );
        }
    }
    // The neighbours are served by both.
    for server in tftp {
        let (reply, _) = exchange(server, &request(1, b"sub\\inside.txt", &[]));
        assert_eq!(&reply[..4], &[0, 3, 0, 1]);
    }
    for server in &http {
        for target in [
            "/ok.txt",
            "/sub/inside.txt",
            "/sub%2finside.txt",
            "//sub//inside.txt",
        ] {
            let response = raw_http(*server, target);
            assert_eq!(status_of(&response), 200, "{target}");
        }
    }
}

#[test]
fn oversized_headers_and_slow_clients_are_cut_off_without_stalling_others() {
    let fixture = Fixture::new();
    fixture.write("ok.txt", b"fine");
    let daemon = fixture.start(
        "  listen: [\"127.0.0.1:0\"]\nhttp:\n  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n  header_timeout: 1s\n",
    );
    let server = http_addrs(&daemon)[0];

    // Headers over the limit: 431, nothing served.
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let filler = "a".repeat(kindling_http::MAX_HEADER_BYTES + 1024);
    let _ = write!(
        stream,
        "GET /ok.txt HTTP/1.1\r\nHost: k\r\nX-Filler: {filler}\r\n\r\n"
    );
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert_eq!(
        status_of(&response),
        431,
        "{}",
        String::from_utf8_lossy(&response)
    );

    // A client that never finishes its request is disconnected after header_timeout, and a
    // well-behaved one is served meanwhile.
    let mut slow = TcpStream::connect(server).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: k\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(status_of(&raw_http(server, "/ok.txt")), 200);
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "the slow client was held for {waited:?}"
    );
    assert!(
        !contains(&rest, b"fine"),
        "nothing is served to an unfinished request"
    );
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_frees_its_connection() {
    let fixture = Fixture::new();
    let size = 64 << 20;
    fixture.write("big.bin", &vec![7u8; size]);
    fixture.write("ok.txt", b"fine");
    let mut daemon = fixture.start(
        "  listen: [\"127.0.0.1:0\"]\nhttp:\n  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n  max_connections: 1\n  send_timeout: 1s\n",
    );
    let server = http_addrs(&daemon)[0];
    let mut stalled = TcpStream::connect(server).unwrap();
    write!(stalled, "GET /big.bin HTTP/1.1\r\nHost: k\r\n\r\n").unwrap();
    // The only connection is taken; the next client waits until the stalled one is cut off.
    let started = std::time::Instant::now();
    let response = raw_http(server, "/ok.txt");
    let waited = started.elapsed();
    assert!(!response.is_empty(), "after {waited:?}: {}", daemon.log());
    assert_eq!(status_of(&response), 200);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "served after {waited:?}"
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = Vec::new();
    let _ = stalled.read_to_end(&mut received);
    assert!(received.len() < size, "the stalled client got everything");
    daemon.wait_for_log("status=200 bytes=", Duration::from_secs(5));
    let log = daemon.log();
    let cut = log
        .lines()
        .find(|line| line.contains("big.bin") && line.contains("http request"))
        .unwrap_or_else(|| panic!("{log}"));
    let sent: usize = field(cut, "bytes").unwrap().parse().unwrap();
    assert!(sent < size, "{cut}");
}
