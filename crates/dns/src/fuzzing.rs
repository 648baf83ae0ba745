//! Entry points shared by the cargo-fuzz target (`fuzz/`) and the tests. Each function panics
//! only when an invariant breaks.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use kindling_config::{DnsConfig, DnsRecord, DnsRecordData};

use crate::answer::{Snapshot, respond};
use crate::names::Names;
use crate::{DnsSettings, LeaseName, NameChange, ReservedName};

/// A client that may recurse (there are no upstreams, so nothing leaves the process).
const CLIENT: ([u8; 4], u16) = ([10, 99, 0, 50], 40_000);

/// Drives a future that never waits on I/O or timers (the catalog over our own zones: its
/// locks are uncontended) to completion without a runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
    panic!("a catalog lookup over local zones kept waiting");
}

/// Any bytes as a query: neither path panics; when the fast path answers, its bytes are the
/// catalog's; every answer echoes the query id and fits the UDP limit the query allows.
pub fn query(bytes: &[u8]) {
    let snapshot = fixture();
    let mut fast = Vec::new();
    let fast = snapshot.fast.answer(bytes, &mut fast).then_some(fast);
    let client = SocketAddr::from(CLIENT);
    let slow = block_on(respond(snapshot, bytes.to_vec(), client, Protocol::Udp));
    if let Some(fast) = &fast {
        assert_eq!(
            Some(fast),
            slow.as_ref(),
            "the fast path and the catalog differ for the query {bytes:02x?}"
        );
    }
    if let Some(slow) = &slow {
        assert!(slow.len() >= 12, "an answer without a header");
        assert_eq!(
            slow[..2],
            bytes[..2],
            "the answer does not echo the query id"
        );
        assert!(
            slow[2] & 0x80 != 0,
            "the answer is not marked as a response"
        );
        // 512 bytes without EDNS, else the client's size (512 at least).
        let limit = Request::from_bytes(bytes.to_vec(), client, Protocol::Udp)
            .ok()
            .and_then(|request| request.edns.as_ref().map(|edns| edns.max_payload()))
            .map_or(512, |size| size.max(512));
        assert!(
            slow.len() <= usize::from(limit),
            "a {}-byte UDP answer to a query that allows {limit}",
            slow.len()
        );
    }
}

fn fixture() -> &'static Snapshot {
    static FIXTURE: OnceLock<Snapshot> = OnceLock::new();
    FIXTURE.get_or_init(|| match sample_snapshot() {
        Ok(snapshot) => snapshot,
        Err(error) => panic!("fuzz fixture: {error}"),
    })
}

pub(crate) fn sample_snapshot() -> Result<Snapshot, crate::DnsError> {
    let settings = sample_settings()?;
    let mut names = Names::new(&settings);
    for change in sample_leases() {
        names.apply(change);
    }
    let zones = names.zones(2024)?;
    Ok(Snapshot::build(
        &zones,
        None,
        settings.recursion_from.clone(),
        None,
    ))
}

/// The same zones served by hickory's plain in-memory handlers.
#[cfg(test)]
pub(crate) fn sample_plain_snapshot() -> Result<Snapshot, crate::DnsError> {
    let settings = sample_settings()?;
    let mut names = Names::new(&settings);
    for change in sample_leases() {
        names.apply(change);
    }
    Snapshot::build_plain(&names.zones(2024)?, settings.recursion_from.clone())
}

/// A zone with every record type, chains, a wildcard and names too big for the fast path.
pub(crate) fn sample_settings() -> Result<DnsSettings, crate::DnsError> {
    let record = |name: &str, data: DnsRecordData| DnsRecord {
        name: name.into(),
        data,
    };
    let srv = |port: u16, target: &str| DnsRecordData::Srv {
        priority: 0,
        weight: 5,
        port,
        target: target.into(),
    };
    let a = |text: &str| DnsRecordData::A(text.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST));
    let mut records = vec![
        record("@", a("10.99.0.1")),
        record("nas", a("10.99.0.5")),
        record("nas", a("10.99.0.6")),
        record(
            "nas",
            DnsRecordData::Aaaa(
                "fd00:99::5"
                    .parse()
                    .unwrap_or(std::net::Ipv6Addr::LOCALHOST),
            ),
        ),
        record("nas", DnsRecordData::Txt("v=1 the big box".into())),
        record("files", DnsRecordData::Cname("nas".into())),
        record("ext", DnsRecordData::Cname("www.example.org".into())),
        record("long", DnsRecordData::Txt("y".repeat(300))),
        record("_tftp._udp", srv(69, "nas")),
        record("_tftp._udp", srv(1069, "nas")),
        record("_http._tcp", srv(80, "files")),
        record("_ext._tcp", srv(443, "outside.example.org")),
        record("_none._tcp", srv(0, ".")),
        record("_dev._tcp", srv(22, "box.dev.lab.test")),
        record("*.dev", a("10.99.0.7")),
    ];
    for i in 0..40 {
        records.push(record(
            "big",
            DnsRecordData::Txt(format!("record {i:02} {}", "z".repeat(40))),
        ));
    }
    let config = DnsConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        domain: "lab.test".into(),
        records,
        upstreams: vec![],
        allow_recursion_from: None,
    };
    DnsSettings::new(
        &config,
        &[
            "10.99.0.0/24"
                .parse()
                .unwrap_or_else(|_| ipnet::IpNet::default()),
            "fd00:99::/64"
                .parse()
                .unwrap_or_else(|_| ipnet::IpNet::default()),
        ],
        &[ReservedName {
            hostname: "node10".into(),
            mac: [2, 0, 0, 0, 0, 0x10],
        }],
    )
}

pub(crate) fn sample_leases() -> Vec<NameChange> {
    let up = |mac: u8, address: &str, hostname: &str| {
        address.parse().ok().map(|address| {
            NameChange::Up(LeaseName {
                mac: [2, 0, 0, 0, 0, mac],
                address,
                hostname: hostname.into(),
            })
        })
    };
    [
        up(1, "10.99.0.100", "pc1"),
        up(2, "fd00:99::102", "pc2"),
        up(3, "10.99.0.103", "pc3"),
        up(3, "fd00:99::103", "pc3"),
        up(0x10, "10.99.0.10", "node10"),
        up(4, "192.0.2.4", "Roamer"),
    ]
    .into_iter()
    .flatten()
    .collect()
}
