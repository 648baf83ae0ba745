//! Kindling must not be a reflection amplifier: a request with a forged source address (a
//! socket here that sends RRQs and never ACKs) gets at most 15 times its bytes back, for one
//! request, for bursts of 200 from one address and for 300 requests from 300 addresses (whose
//! effect on the daemon's peak memory is bounded too). Bytes are counted as they are on the
//! wire over IPv4: the UDP payload plus 28 bytes of IP and UDP headers. And the bounds on
//! unconfirmed transfers must not cost real clients anything: 128 curl downloads at once from
//! one address all complete.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, pattern};
use crate::tftp_hostile::request;
use crate::tools::require;

/// IPv4 and UDP headers.
const HEADERS: usize = 28;
/// Longer than an unconfirmed transfer lives ((5 retries + 1) x 1 s) and than a request held
/// by the bounds waits (queue_timeout, 5 s), with margin.
const LISTEN: Duration = Duration::from_secs(8);
const GOAL: f64 = 15.0;
/// The bursts start once the single requests are in, and the larger ones are paced at 1 ms:
/// hundreds of datagrams at once overflow the listening socket's receive buffer, and a victim
/// that never repeats its request would then get nothing at all, which measures nothing.
const BURSTS_AFTER: Duration = Duration::from_millis(200);

/// What a set of victim sockets sent and got back.
#[derive(Debug, Default)]
struct Reflection {
    bytes_in: usize,
    bytes_out: usize,
    packets_out: usize,
    errors_out: usize,
}

impl Reflection {
    fn ratio(&self) -> f64 {
        self.bytes_out as f64 / self.bytes_in as f64
    }
}

/// Sends `requests` (each from the socket of its index, `spacing` apart) to `server` and counts
/// every datagram that comes back to any of the sockets until `LISTEN` has passed since the
/// last one.
fn reflect(
    sockets: &[UdpSocket],
    requests: &[(usize, Vec<u8>)],
    spacing: Duration,
    server: SocketAddr,
) -> Reflection {
    let mut seen = Reflection::default();
    for (index, packet) in requests {
        sockets[*index].send_to(packet, server).unwrap();
        seen.bytes_in += packet.len() + HEADERS;
        std::thread::sleep(spacing);
    }
    for socket in sockets {
        socket.set_nonblocking(true).unwrap();
    }
    let started = Instant::now();
    let mut buf = vec![0u8; 70_000];
    while started.elapsed() < LISTEN {
        let mut quiet = true;
        for socket in sockets {
            while let Ok((len, _)) = socket.recv_from(&mut buf) {
                quiet = false;
                seen.bytes_out += len + HEADERS;
                seen.packets_out += 1;
                if buf[..2] == [0, 5] {
                    seen.errors_out += 1;
                }
            }
        }
        if quiet {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    seen
}

/// A name, the victims' addresses (one socket each), which socket sends what, how long after
/// the start and how far apart.
struct Scenario {
    name: &'static str,
    sources: Vec<[u8; 4]>,
    requests: Vec<(usize, Vec<u8>)>,
    start_after: Duration,
    spacing: Duration,
    /// At most this many packets may come back (the unconfirmed bounds at work).
    most_packets: usize,
}

fn sockets(sources: &[[u8; 4]]) -> Vec<UdpSocket> {
    sources
        .iter()
        .map(|&ip| UdpSocket::bind(SocketAddr::from((ip, 0))).unwrap())
        .collect()
}

/// The daemon's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn forged_requests_get_at_most_15_times_their_bytes_back() {
    let fixture = Fixture::new();
    // Large enough that a transfer left to itself would send far more than one packet; a
    // one-letter name makes the smallest request that starts a transfer.
    fixture.write("f", &pattern(2 * 1024 * 1024, 5));
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n");
    let server = daemon.v4();
    let plain = request(1, b"f", &[]);
    let with_options = request(1, b"f", &[("blksize", "65464"), ("windowsize", "64")]);
    // Each scenario from its own loopback addresses, all at once (they share the wait).
    let scenarios = [
        Scenario {
            name: "one plain RRQ",
            sources: vec![[127, 0, 0, 3]],
            requests: vec![(0, plain.clone())],
            start_after: Duration::ZERO,
            spacing: Duration::ZERO,
            most_packets: 1,
        },
        Scenario {
            name: "one RRQ asking for the largest blocks and window",
            sources: vec![[127, 0, 0, 4]],
            requests: vec![(0, with_options)],
            start_after: Duration::ZERO,
            spacing: Duration::ZERO,
            most_packets: 1,
        },
        Scenario {
            name: "200 RRQs from 200 ports of one address",
            sources: vec![[127, 0, 0, 5]; 200],
            requests: (0..200).map(|index| (index, plain.clone())).collect(),
            start_after: BURSTS_AFTER,
            spacing: Duration::from_millis(1),
            // tftp.unconfirmed_per_address: the rest wait, and expire unanswered in the queue
            // (5 s) before the first ones give up (6 s).
            most_packets: 16,
        },
        Scenario {
            name: "200 copies of one RRQ from one port",
            sources: vec![[127, 0, 0, 6]],
            requests: (0..200).map(|_| (0, plain.clone())).collect(),
            start_after: BURSTS_AFTER,
            spacing: Duration::ZERO,
            most_packets: 200,
        },
        Scenario {
            // Each repeat reaches the running transfer: one DATA 1 back per RRQ in.
            name: "200 copies of one RRQ from one port, 20 ms apart",
            sources: vec![[127, 0, 0, 7]],
            requests: (0..200).map(|_| (0, plain.clone())).collect(),
            start_after: BURSTS_AFTER,
            spacing: Duration::from_millis(20),
            most_packets: 200,
        },
        Scenario {
            // A flood from many addresses: three /24s, more than unconfirmed_per_prefix each.
            name: "300 RRQs from 300 addresses in three /24s",
            sources: (0..300u16)
                .map(|n| [127, 1, (n / 100) as u8, (n % 100 + 1) as u8])
                .collect(),
            requests: (0..300).map(|index| (index, plain.clone())).collect(),
            start_after: BURSTS_AFTER,
            spacing: Duration::from_millis(1),
            // tftp.unconfirmed_per_prefix, for each of the three /24s.
            most_packets: 3 * 64,
        },
    ];
    let missing = request(1, b"missing", &[]);
    let scenarios = scenarios.into_iter().chain([Scenario {
        // Refused at once (ERROR 1, smaller than the request); logged at a bounded rate.
        name: "50 RRQs for a missing file from 50 ports",
        sources: vec![[127, 0, 0, 8]; 50],
        requests: (0..50).map(|index| (index, missing.clone())).collect(),
        start_after: BURSTS_AFTER,
        spacing: Duration::from_millis(1),
        most_packets: 50,
    }]);
    let scenarios: Vec<Scenario> = scenarios.collect();
    let idle_kib = peak_rss_kib(daemon.pid());
    // All at once, each from its own loopback address: they share the wait.
    let results: Vec<(&Scenario, Reflection)> = std::thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|scenario| {
                scope.spawn(move || {
                    let sockets = sockets(&scenario.sources);
                    std::thread::sleep(scenario.start_after);
                    let seen = reflect(&sockets, &scenario.requests, scenario.spacing, server);
                    (scenario, seen)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    for (scenario, seen) in &results {
        eprintln!(
            "{}: {} bytes in, {} bytes out in {} packets ({} ERROR): {:.2}x",
            scenario.name,
            seen.bytes_in,
            seen.bytes_out,
            seen.packets_out,
            seen.errors_out,
            seen.ratio()
        );
    }
    for (scenario, seen) in &results {
        let name = scenario.name;
        assert!(seen.packets_out > 0, "{name}: nothing came back at all");
        assert!(
            seen.ratio() <= GOAL,
            "{name}: {:.2}x the bytes in came back ({seen:?})",
            seen.ratio()
        );
        assert!(
            seen.packets_out <= scenario.most_packets,
            "{name}: {} packets, more than the {} the bounds allow",
            seen.packets_out,
            scenario.most_packets
        );
    }
    let peak_kib = peak_rss_kib(daemon.pid());
    eprintln!("daemon peak RSS: {idle_kib} KiB before, {peak_kib} KiB after");
    assert!(
        peak_kib < idle_kib + 32 * 1024,
        "the flood grew the daemon from {idle_kib} to {peak_kib} KiB"
    );
    // Requests held by the bounds and transfers that were never acknowledged are logged at a
    // bounded rate: the first of each kind in a period at info, the rest at debug.
    let log = daemon.log();
    let held_at_info = log
        .lines()
        .filter(|line| {
            line.contains(" INFO ") && line.contains("unconfirmed transfers from this source")
        })
        .count();
    assert!(
        log.contains("unconfirmed bound reached"),
        "no request was held:\n{log}"
    );
    assert!(
        held_at_info <= 2,
        "{held_at_info} info lines for held requests"
    );
    let unacknowledged_at_info = log
        .lines()
        .filter(|line| line.contains(" INFO ") && line.contains("never acknowledged"))
        .count();
    assert!(
        unacknowledged_at_info <= 2,
        "{unacknowledged_at_info} info lines for unacknowledged reads"
    );
    let refused_at_info = log
        .lines()
        .filter(|line| line.contains(" INFO ") && line.contains("tftp request refused"))
        .count();
    assert!(
        log.matches("tftp request refused").count() >= 50,
        "refusals not logged:\n{log}"
    );
    assert!(
        refused_at_info <= 2,
        "{refused_at_info} info lines for 50 refusals"
    );
}

#[test]
fn one_hundred_and_twenty_eight_curl_clients_from_one_address_all_complete() {
    require("curl");
    let body = pattern(256 * 1024, 9);
    let fixture = Fixture::new();
    fixture.write("image", &body);
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n");
    let out = tempfile::tempdir().unwrap();
    let url = format!("tftp://127.0.0.1:{}/image", daemon.v4().port());
    let started = Instant::now();
    let children: Vec<_> = (0..128)
        .map(|index| {
            Command::new("curl")
                .args(["--silent", "--show-error", "--fail", "--max-time", "120"])
                .args(["--connect-timeout", "3", "--tftp-blksize", "1468", "-o"])
                .arg(out.path().join(format!("c{index}")))
                .arg(&url)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    eprintln!("128 curl clients from one address: {:?}", started.elapsed());
    for index in 0..128 {
        assert_eq!(
            std::fs::read(out.path().join(format!("c{index}"))).unwrap(),
            body,
            "client {index}"
        );
    }
}

/// What arrives at `socket` within `wait`: each datagram's first four bytes and its source.
fn heads_within(socket: &UdpSocket, wait: Duration) -> Vec<([u8; 4], SocketAddr)> {
    let started = Instant::now();
    let mut buf = vec![0u8; 70_000];
    let mut heads = Vec::new();
    while let Some(left) = wait.checked_sub(started.elapsed()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv_from(&mut buf) {
            Ok((len, from)) if len >= 4 => heads.push(([buf[0], buf[1], buf[2], buf[3]], from)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    heads
}

/// The rule end to end, with and without `single_port`: DATA 1 goes once; the transfer's own
/// timer resends nothing; the same RRQ from the same port gets DATA 1 again from the same
/// transfer; after ACK 1 the timer recovers a lost DATA 2 as before.
#[test]
fn until_the_first_ack_only_a_repeated_request_resends_data_1() {
    let fixture = Fixture::new();
    fixture.write("f", &pattern(10_000, 3));
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n");
    let fixture = Fixture::new();
    fixture.write("f", &pattern(10_000, 3));
    let single_port = fixture.start("  listen: [\"127.0.0.1:0\"]\n  single_port: true\n");
    let data = |block: u8| [0, 3, 0, block];
    std::thread::scope(|scope| {
        for (mode, server) in [("own port", daemon.v4()), ("single_port", single_port.v4())] {
            scope.spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                let rrq = request(1, b"f", &[]);
                socket.send_to(&rrq, server).unwrap();
                let first = heads_within(&socket, Duration::from_millis(2500));
                assert_eq!(first.len(), 1, "{mode}: {first:?}");
                let (head, tid) = first[0];
                assert_eq!(head, data(1), "{mode}");
                socket.send_to(&rrq, server).unwrap();
                let again = heads_within(&socket, Duration::from_millis(500));
                assert_eq!(again, vec![(data(1), tid)], "{mode}: the repeat");
                socket.send_to(&[0, 4, 0, 1], tid).unwrap();
                let after_ack = heads_within(&socket, Duration::from_millis(1600));
                assert_eq!(
                    after_ack,
                    vec![(data(2), tid), (data(2), tid)],
                    "{mode}: DATA 2, then DATA 2 again on the timer"
                );
            });
        }
    });
}

/// A rack booting together: 80 machines of one /24 (80 loopback addresses) fetch their image
/// at the same moment, with `unconfirmed_per_prefix` lowered to 4 so that the bound surely
/// holds some of them back; every one completes.
#[test]
fn a_rack_of_clients_from_one_slash_24_all_complete() {
    require("curl");
    let body = pattern(128 * 1024, 10);
    let fixture = Fixture::new();
    fixture.write("image", &body);
    let daemon = fixture.start("  listen: [\"127.0.0.1:0\"]\n  unconfirmed_per_prefix: 4\n");
    let out = tempfile::tempdir().unwrap();
    let url = format!("tftp://127.0.0.1:{}/image", daemon.v4().port());
    let children: Vec<_> = (0..80)
        .map(|index| {
            Command::new("curl")
                .args(["--silent", "--show-error", "--fail", "--max-time", "120"])
                .args(["--connect-timeout", "3", "--tftp-blksize", "1468"])
                .args(["--interface", &format!("127.0.0.{}", 100 + index), "-o"])
                .arg(out.path().join(format!("m{index}")))
                .arg(&url)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    for index in 0..80 {
        assert_eq!(
            std::fs::read(out.path().join(format!("m{index}"))).unwrap(),
            body,
            "machine {index}"
        );
    }
    // The server logs a transfer once it has the final ACK, which may be after curl exits.
    let started = Instant::now();
    loop {
        let log = daemon.log();
        let sources: std::collections::HashSet<&str> = log
            .lines()
            .filter(|line| line.contains("tftp transfer complete"))
            .filter_map(|line| line.split("peer=127.0.0.").nth(1)?.split(':').next())
            .collect();
        if sources.len() == 80 {
            let held = log.matches("unconfirmed bound reached").count();
            eprintln!("80 machines of one /24: all complete; {held} requests were held a moment");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} machine addresses logged a complete transfer, not 80",
            sources.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
