//! The DNS service on loopback: dig and raw UDP/TCP queries against a `DnsService` started in
//! this process. Nothing leaves loopback: the one upstream is a stub the test runs itself.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use kindling_config::{DnsConfig, DnsRecord, DnsRecordData};
use kindling_dns::{
    DnsError, DnsHandle, DnsService, DnsSettings, LeaseName, NameChange, ReservedName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SERVED: [&str; 2] = ["10.99.0.0/24", "fd00:99::/64"];
const PC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x20];

fn records() -> Vec<DnsRecord> {
    let record = |name: &str, data: DnsRecordData| DnsRecord {
        name: name.into(),
        data,
    };
    let mut records = vec![
        record("@", DnsRecordData::A("10.99.0.1".parse().unwrap())),
        record("nas", DnsRecordData::A("10.99.0.5".parse().unwrap())),
        record("nas", DnsRecordData::Aaaa("fd00:99::5".parse().unwrap())),
        record("files", DnsRecordData::Cname("nas".into())),
        record("docs", DnsRecordData::Txt("v=1 the big box".into())),
        record(
            "_tftp._udp",
            DnsRecordData::Srv {
                priority: 0,
                weight: 5,
                port: 69,
                target: "nas".into(),
            },
        ),
    ];
    for i in 0..40 {
        records.push(record(
            "big",
            DnsRecordData::Txt(format!("record {i:02} {}", "z".repeat(60))),
        ));
    }
    records
}

fn config(listen: &[&str]) -> DnsConfig {
    DnsConfig {
        listen: listen.iter().map(|a| a.parse().unwrap()).collect(),
        domain: "lab.test".into(),
        records: records(),
        upstreams: vec![],
        allow_recursion_from: None,
    }
}

fn settings(config: &DnsConfig) -> DnsSettings {
    let served: Vec<ipnet::IpNet> = SERVED.iter().map(|n| n.parse().unwrap()).collect();
    DnsSettings::new(
        config,
        &served,
        &[ReservedName {
            hostname: "node10".into(),
            mac: [0x52, 0x54, 0, 0, 0, 0x10],
        }],
    )
    .unwrap()
}

struct Running {
    addrs: Vec<SocketAddr>,
    handle: DnsHandle,
    token: CancellationToken,
    task: JoinHandle<Result<(), DnsError>>,
}

impl Running {
    fn v4(&self) -> SocketAddr {
        *self.addrs.iter().find(|a| a.is_ipv4()).unwrap()
    }

    async fn stop(self) {
        self.token.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the service did not stop within 5 s")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

async fn start(config: DnsConfig, initial: Vec<LeaseName>) -> Running {
    let service = DnsService::bind(settings(&config), initial).await.unwrap();
    let addrs = service.local_addrs();
    assert_eq!(addrs.len(), config.listen.len());
    let handle = service.handle();
    let token = CancellationToken::new();
    let task = tokio::spawn(service.run(token.clone()));
    Running {
        addrs,
        handle,
        token,
        task,
    }
}

fn dig_path() -> &'static Path {
    let path = Path::new("/usr/bin/dig");
    assert!(
        path.exists(),
        "these tests need dig at /usr/bin/dig (Debian: apt-get install bind9-dnsutils)"
    );
    path
}

/// Runs dig against `server` and returns its output.
async fn dig(server: SocketAddr, args: &[&str]) -> String {
    let mut command = Command::new(dig_path());
    command
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=2", "+tries=1"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("dig did not run");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn query(name: &str, record_type: RecordType, id: u16) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message.to_vec().unwrap()
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let socket = UdpSocket::bind(bind).await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    match tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await {
        Ok(Ok((len, from))) => Some((buf[..len].to_vec(), from)),
        _ => None,
    }
}

async fn udp(server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    let (bytes, _) = udp_exchange(server, &query(name, record_type, 0x4b49))
        .await
        .unwrap_or_else(|| panic!("no answer for {name} {record_type}"));
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.metadata.id, 0x4b49);
    message
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut len))
        .await
        .expect("no TCP answer")
        .unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).await.unwrap();
    answer
}

fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(aaaa) => aaaa.0.to_string(),
            RData::PTR(ptr) => ptr.0.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Polls until `check` holds, at most `limit`; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_records_soa_and_ns_over_ipv4_and_ipv6() {
    let running = start(config(&["127.0.0.1:0", "[::1]:0"]), vec![]).await;
    for server in running.addrs.clone() {
        let out = dig(server, &["nas.lab.test", "A"]).await;
        assert!(
            out.contains("status: NOERROR") && out.contains(" aa "),
            "{out}"
        );
        assert!(
            out.contains("nas.lab.test.\t\t300\tIN\tA\t10.99.0.5"),
            "{out}"
        );
        let out = dig(server, &["+short", "nas.lab.test", "AAAA"]).await;
        assert_eq!(out.trim(), "fd00:99::5");
        let out = dig(server, &["+short", "files.lab.test", "A"]).await;
        assert_eq!(out.trim(), "nas.lab.test.\n10.99.0.5");
        let out = dig(server, &["+short", "docs.lab.test", "TXT"]).await;
        assert_eq!(out.trim(), "\"v=1 the big box\"");
        let out = dig(server, &["+short", "_tftp._udp.lab.test", "SRV"]).await;
        assert_eq!(out.trim(), "0 5 69 nas.lab.test.");
        let out = dig(server, &["lab.test", "SOA"]).await;
        assert!(
            out.contains("lab.test.\t\t60\tIN\tSOA\tlab.test. hostmaster.lab.test."),
            "{out}"
        );
        assert!(out.contains("3600 600 86400 60"), "{out}");
        let out = dig(server, &["+short", "lab.test", "NS"]).await;
        assert_eq!(out.trim(), "lab.test.");
        // Static addresses in served networks resolve backwards too.
        let out = dig(server, &["+short", "-x", "10.99.0.5"]).await;
        assert_eq!(out.trim(), "nas.lab.test.");
        // 0x20: the question comes back as it was asked.
        let message = udp(server, "NaS.LaB.tEsT.", RecordType::A).await;
        assert_eq!(message.queries[0].name().to_ascii(), "NaS.LaB.tEsT.");
        assert!(message.metadata.authoritative);
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_names_come_within_a_second_and_go_on_release() {
    let initial = LeaseName {
        mac: [0x52, 0x54, 0, 0, 0, 0x30],
        address: "10.99.0.30".parse().unwrap(),
        hostname: "early".into(),
    };
    let running = start(config(&["127.0.0.1:0"]), vec![initial]).await;
    let server = running.v4();
    // Leases live at start are there for the first query.
    let message = udp(server, "early.lab.test.", RecordType::A).await;
    assert_eq!(addresses(&message), ["10.99.0.30"]);

    running.handle.apply(NameChange::Up(LeaseName {
        mac: PC,
        address: "10.99.0.120".parse().unwrap(),
        hostname: "PC-Lab".into(),
    }));
    let took = within(Duration::from_secs(1), || async {
        let message = udp(server, "pc-lab.lab.test.", RecordType::A).await;
        addresses(&message) == ["10.99.0.120"]
    })
    .await;
    println!("name visible after {took:?}");
    let out = dig(server, &["+short", "-x", "10.99.0.120"]).await;
    assert_eq!(out.trim(), "pc-lab.lab.test.");
    let out = dig(server, &["pc-lab.lab.test", "A"]).await;
    assert!(
        out.contains("pc-lab.lab.test.\t60\tIN\tA\t10.99.0.120"),
        "{out}"
    );

    // A second client claiming the name gets nothing.
    running.handle.apply(NameChange::Up(LeaseName {
        mac: [0x52, 0x54, 0, 0, 0, 0x21],
        address: "10.99.0.121".parse().unwrap(),
        hostname: "pc-lab".into(),
    }));
    // Moving address replaces A and PTR.
    running.handle.apply(NameChange::Up(LeaseName {
        mac: PC,
        address: "10.99.0.122".parse().unwrap(),
        hostname: "pc-lab".into(),
    }));
    within(Duration::from_secs(1), || async {
        let message = udp(server, "pc-lab.lab.test.", RecordType::A).await;
        addresses(&message) == ["10.99.0.122"]
    })
    .await;
    let old = udp(server, "120.0.99.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(old.metadata.response_code, ResponseCode::NXDomain);
    let loser = udp(server, "121.0.99.10.in-addr.arpa.", RecordType::PTR).await;
    assert!(loser.answers.is_empty());

    // Release: A and PTR go; the waiting claimant takes the name over.
    running.handle.apply(NameChange::Down {
        mac: PC,
        address: "10.99.0.122".parse().unwrap(),
    });
    within(Duration::from_secs(1), || async {
        let message = udp(server, "pc-lab.lab.test.", RecordType::A).await;
        addresses(&message) == ["10.99.0.121"]
    })
    .await;
    let gone = udp(server, "122.0.99.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
    running.handle.apply(NameChange::Down {
        mac: [0x52, 0x54, 0, 0, 0, 0x21],
        address: "10.99.0.121".parse().unwrap(),
    });
    within(Duration::from_secs(1), || async {
        let message = udp(server, "pc-lab.lab.test.", RecordType::A).await;
        message.metadata.response_code == ResponseCode::NXDomain
    })
    .await;
    // IPv6 leases: AAAA and an ip6.arpa PTR.
    running.handle.apply(NameChange::Up(LeaseName {
        mac: PC,
        address: "fd00:99::120".parse().unwrap(),
        hostname: "pc-lab".into(),
    }));
    within(Duration::from_secs(1), || async {
        let out = dig(server, &["+short", "-x", "fd00:99::120"]).await;
        out.trim() == "pc-lab.lab.test."
    })
    .await;
    let out = dig(server, &["+short", "pc-lab.lab.test", "AAAA"]).await;
    assert_eq!(out.trim(), "fd00:99::120");
    // A static name is never taken.
    running.handle.apply(NameChange::Up(LeaseName {
        mac: [0x52, 0x54, 0, 0, 0, 0x22],
        address: "10.99.0.123".parse().unwrap(),
        hostname: "nas".into(),
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = dig(server, &["+short", "nas.lab.test", "A"]).await;
    assert_eq!(out.trim(), "10.99.0.5");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_carry_the_soa_with_a_short_minimum() {
    let running = start(config(&["127.0.0.1:0"]), vec![]).await;
    let server = running.v4();
    let out = dig(server, &["nobody.lab.test", "A"]).await;
    assert!(
        out.contains("status: NXDOMAIN") && out.contains(" aa "),
        "{out}"
    );
    for (name, code) in [
        ("nobody.lab.test.", ResponseCode::NXDomain),
        ("docs.lab.test.", ResponseCode::NoError),
        ("99.0.99.10.in-addr.arpa.", ResponseCode::NXDomain),
    ] {
        let message = udp(server, name, RecordType::A).await;
        assert_eq!(message.metadata.response_code, code, "{name}");
        assert!(message.answers.is_empty());
        let soa = message
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some((r.ttl, soa.minimum)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no SOA for {name}"));
        assert!(soa.0 <= 60 && soa.1 <= 60, "{soa:?}");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let running = start(config(&["127.0.0.1:0"]), vec![]).await;
    let server = running.v4();
    let bytes = query("big.lab.test.", RecordType::TXT, 5);
    let (answer, _) = udp_exchange(server, &bytes).await.unwrap();
    assert!(answer.len() <= 512);
    let truncated = Message::from_vec(&answer).unwrap();
    assert!(truncated.metadata.truncation);
    assert!(truncated.answers.len() < 40);
    let whole = Message::from_vec(&tcp_exchange(server, &bytes).await).unwrap();
    assert!(!whole.metadata.truncation);
    assert_eq!(whole.answers.len(), 40);
    // dig sees TC, retries over TCP by itself, and gets everything.
    let out = dig(server, &["big.lab.test", "TXT", "+noedns"]).await;
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("ANSWER: 40"), "{out}");
    let out = dig(server, &["+tcp", "+short", "big.lab.test", "TXT"]).await;
    assert_eq!(out.lines().count(), 40);
    // Several queries on one connection.
    let mut stream = TcpStream::connect(server).await.unwrap();
    for id in 0..3u16 {
        let q = query("nas.lab.test.", RecordType::A, id);
        let mut frame = (q.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&q);
        stream.write_all(&frame).await.unwrap();
    }
    for id in 0..3u16 {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.unwrap();
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(Message::from_vec(&answer).unwrap().metadata.id, id);
    }
    running.stop().await;
}

/// A stand-in upstream on loopback: answers every A query with 192.0.2.99 and counts them.
struct Upstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    fn start() -> Upstream {
        let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (queries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !halt.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                let mut response = Message::response(request.metadata.id, OpCode::Query);
                response.metadata.recursion_desired = request.metadata.recursion_desired;
                response.metadata.recursion_available = true;
                for query in &request.queries {
                    response.add_query(query.clone());
                    if query.query_type() == RecordType::A {
                        response.add_answer(Record::from_rdata(
                            query.name().clone(),
                            30,
                            RData::A(A("192.0.2.99".parse().unwrap())),
                        ));
                    }
                }
                if let Some(edns) = &request.edns {
                    let mut reply = Edns::new();
                    reply.set_max_payload(edns.max_payload());
                    response.set_edns(reply);
                }
                let _ = socket.send_to(&response.to_vec().unwrap(), from);
            }
        });
        Upstream {
            addr,
            queries,
            stop,
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_zone_are_forwarded_for_allowed_clients() {
    let upstream = Upstream::start();
    let mut config = config(&["127.0.0.1:0"]);
    config.upstreams = vec![upstream.addr];
    // allow_recursion_from absent: loopback and the served networks may recurse.
    let running = start(config, vec![]).await;
    let server = running.v4();
    let out = dig(server, &["www.example.org", "A"]).await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("192.0.2.99"), "{out}");
    assert!(out.contains(" ra") && !out.contains(" aa "), "{out}");
    assert!(upstream.queries.load(Ordering::Relaxed) >= 1);
    // Forwarded answers are cached for their TTL (30 s here): asking again asks nobody else.
    let asked = upstream.queries.load(Ordering::Relaxed);
    for _ in 0..3 {
        let out = dig(server, &["+short", "www.example.org", "A"]).await;
        assert_eq!(out.trim(), "192.0.2.99");
    }
    assert_eq!(
        upstream.queries.load(Ordering::Relaxed),
        asked,
        "a repeated query went to the upstream again instead of the cache"
    );
    // Our own zones are still answered by us, not the upstream.
    let before = upstream.queries.load(Ordering::Relaxed);
    let out = dig(server, &["+short", "nas.lab.test", "A"]).await;
    assert_eq!(out.trim(), "10.99.0.5");
    let message = udp(server, "nobody.lab.test.", RecordType::A).await;
    assert_eq!(message.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.queries.load(Ordering::Relaxed), before);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_allow_recursion_from_are_refused_for_other_names() {
    let upstream = Upstream::start();
    let mut config = config(&["127.0.0.1:0"]);
    config.upstreams = vec![upstream.addr];
    config.allow_recursion_from = Some(vec!["192.0.2.0/24".parse().unwrap()]);
    let running = start(config, vec![]).await;
    let server = running.v4();
    let out = dig(server, &["www.example.org", "A"]).await;
    assert!(out.contains("status: REFUSED"), "{out}");
    let message = udp(server, "www.example.org.", RecordType::A).await;
    assert_eq!(message.metadata.response_code, ResponseCode::Refused);
    let out = dig(server, &["+tcp", "www.example.org", "A"]).await;
    assert!(out.contains("status: REFUSED"), "{out}");
    assert_eq!(
        upstream.queries.load(Ordering::Relaxed),
        0,
        "the upstream was asked"
    );
    // Our zones still answer them.
    let out = dig(server, &["+short", "nas.lab.test", "A"]).await;
    assert_eq!(out.trim(), "10.99.0.5");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upstreams_other_names_are_refused_at_once() {
    let running = start(config(&["127.0.0.1:0", "[::1]:0"]), vec![]).await;
    for server in running.addrs.clone() {
        let start = Instant::now();
        let out = dig(server, &["+time=5", "www.example.org", "A"]).await;
        let took = start.elapsed();
        assert!(out.contains("status: REFUSED"), "{out}");
        assert!(took < Duration::from_secs(1), "REFUSED took {took:?}");
        let start = Instant::now();
        let message = udp(server, "1.2.0.192.in-addr.arpa.", RecordType::PTR).await;
        assert_eq!(message.metadata.response_code, ResponseCode::Refused);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    running.stop().await;
}

/// Datagrams no resolver would send, each followed by proof the service still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_oversized_and_odd_edns_never_disturb_the_service() {
    let running = start(config(&["127.0.0.1:0"]), vec![]).await;
    let server = running.v4();
    let good = query("nas.lab.test.", RecordType::A, 1);
    let header = |flags: [u8; 2], counts: [u16; 4]| {
        let mut h = vec![0xab, 0xcd, flags[0], flags[1]];
        for count in counts {
            h.extend_from_slice(&count.to_be_bytes());
        }
        h
    };
    let edns_query = |version: u8, payload: u16, rdata: &[u8], opts: usize| {
        let mut q = query("nas.lab.test.", RecordType::A, 2);
        q[11] = opts as u8;
        for _ in 0..opts {
            q.extend_from_slice(&[0, 0, 41]);
            q.extend_from_slice(&payload.to_be_bytes());
            q.extend_from_slice(&[0, version, 0, 0]);
            q.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            q.extend_from_slice(rdata);
        }
        q
    };
    let mut pseudo_random = 0x1234_5678u32;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                pseudo_random ^= pseudo_random << 13;
                pseudo_random ^= pseudo_random >> 17;
                pseudo_random ^= pseudo_random << 5;
                pseudo_random as u8
            })
            .collect()
    };
    let mut pointer_loop = header([1, 0], [1, 0, 0, 0]);
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut cut_name = header([1, 0], [1, 0, 0, 0]);
    cut_name.extend_from_slice(&[7, b'n', b'a', b's']);
    let mut long_label = header([1, 0], [1, 0, 0, 0]);
    long_label.push(200);
    long_label.extend_from_slice(&[b'x'; 200]);
    let mut many_records = good.clone();
    many_records[6..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("five bytes", vec![1, 2, 3, 4, 5]),
        ("bare header", header([1, 0], [0, 0, 0, 0])),
        ("response as query", header([0x81, 0x80], [1, 0, 0, 0])),
        ("question cut", good[..good.len() - 3].to_vec()),
        ("name cut", cut_name),
        ("pointer loop", pointer_loop),
        ("label over 63", long_label),
        ("counts lie", many_records),
        ("two questions", {
            let mut q = good.clone();
            q[5] = 2;
            q.extend_from_slice(&good[12..]);
            q
        }),
        ("notify", {
            let mut q = good.clone();
            q[2] = 4 << 3;
            q
        }),
        ("update", {
            let mut q = good.clone();
            q[2] = 5 << 3;
            q
        }),
        ("edns version 1", edns_query(1, 1232, &[], 1)),
        ("edns payload 0", edns_query(0, 0, &[], 1)),
        ("two OPT records", edns_query(0, 4096, &[], 2)),
        (
            "OPT option overruns",
            edns_query(0, 4096, &[0, 10, 0, 50, 1, 2], 1),
        ),
        ("OPT rdlength overruns", {
            let mut q = edns_query(0, 4096, &[], 1);
            let at = q.len() - 2;
            q[at..].copy_from_slice(&[0x10, 0]);
            q
        }),
        ("noise 300", noise(300)),
        ("noise 4000", noise(4000)),
        ("oversized 65000", noise(65_000)),
    ];
    for (what, bytes) in &cases {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(bytes, server).await.unwrap();
        // Whatever comes back (FORMERR, BADVERS, NOTIMP, or nothing) is a well-formed
        // response with our id, or silence.
        let mut buf = vec![0u8; 65_536];
        if let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await
        {
            assert!(len >= 12, "{what}: {len}-byte answer");
            assert!(buf[2] & 0x80 != 0, "{what}: answer is not a response");
            assert_eq!(buf[..2], bytes[..2], "{what}: id not echoed");
        }
        let message = udp(server, "nas.lab.test.", RecordType::A).await;
        assert_eq!(addresses(&message), ["10.99.0.5"], "after {what}");
        let message = udp(server, "nobody.lab.test.", RecordType::A).await;
        assert_eq!(
            message.metadata.response_code,
            ResponseCode::NXDomain,
            "after {what}"
        );
    }
    // EDNS version 1 gets BADVERS, as hickory answers it.
    let (answer, _) = udp_exchange(server, &edns_query(1, 1232, &[], 1))
        .await
        .unwrap();
    let answer = Message::from_vec(&answer).unwrap();
    // 16 is BADVERS here (hickory decodes the shared code as BADSIG).
    assert_eq!(u16::from(answer.metadata.response_code), 16);

    // TCP: a connection that promises more than it sends, junk, a zero length, and one that
    // just sits there do not stop others.
    let mut liar = TcpStream::connect(server).await.unwrap();
    liar.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();
    let mut junk = TcpStream::connect(server).await.unwrap();
    junk.write_all(&[0, 4, 9, 9, 9, 9]).await.unwrap();
    let mut zero = TcpStream::connect(server).await.unwrap();
    zero.write_all(&[0, 0]).await.unwrap();
    let _idle = TcpStream::connect(server).await.unwrap();
    let answer = Message::from_vec(&tcp_exchange(server, &good).await).unwrap();
    assert_eq!(addresses(&answer), ["10.99.0.5"]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_socket_answers_from_the_address_it_was_asked_on() {
    let running = start(config(&["0.0.0.0:0"]), vec![]).await;
    let port = running.addrs[0].port();
    let server = SocketAddr::from(([127, 0, 0, 2], port));
    // The fast path and the catalog path both reply from 127.0.0.2.
    for (name, record_type) in [
        ("nas.lab.test.", RecordType::A),
        ("nobody.lab.test.", RecordType::A),
    ] {
        let (bytes, from) = udp_exchange(server, &query(name, record_type, 9))
            .await
            .unwrap();
        assert_eq!(from, server, "{name}");
        assert_eq!(Message::from_vec(&bytes).unwrap().metadata.id, 9);
    }
    let out = dig(server, &["+short", "nas.lab.test", "A"]).await;
    assert_eq!(out.trim(), "10.99.0.5");
    let out = dig(server, &["+tcp", "+short", "nas.lab.test", "A"]).await;
    assert_eq!(out.trim(), "10.99.0.5");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_records_and_refuses_a_new_listen() {
    let config1 = config(&["127.0.0.1:0"]);
    let running = start(config1.clone(), vec![]).await;
    let server = running.v4();
    running.handle.apply(NameChange::Up(LeaseName {
        mac: PC,
        address: "10.99.0.120".parse().unwrap(),
        hostname: "pc".into(),
    }));
    let mut config2 = config1.clone();
    config2.records.push(DnsRecord {
        name: "printer".into(),
        data: DnsRecordData::A("10.99.0.9".parse().unwrap()),
    });
    running.handle.reload(settings(&config2)).unwrap();
    within(Duration::from_secs(1), || async {
        addresses(&udp(server, "printer.lab.test.", RecordType::A).await) == ["10.99.0.9"]
    })
    .await;
    // Leases survive a reload.
    assert_eq!(
        addresses(&udp(server, "pc.lab.test.", RecordType::A).await),
        ["10.99.0.120"]
    );
    let mut config3 = config2.clone();
    config3.listen = vec!["127.0.0.1:5353".parse().unwrap()];
    let error = running.handle.reload(settings(&config3)).unwrap_err();
    assert!(matches!(error, DnsError::RestartNeeded { .. }), "{error}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_port_taken_is_an_error() {
    let running = start(config(&["127.0.0.1:0"]), vec![]).await;
    let mut taken = config(&["127.0.0.1:0"]);
    taken.listen = vec![running.v4()];
    let error = DnsService::bind(settings(&taken), vec![])
        .await
        .unwrap_err();
    assert!(matches!(error, DnsError::Bind { .. }), "{error}");
    assert!(
        error.to_string().contains(&running.v4().to_string()),
        "{error}"
    );
    running.stop().await;
}
