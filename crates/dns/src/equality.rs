//! The fast path answers byte for byte what the catalog answers: the AA and RA bits, the
//! question as the client spelled it (0x20 mixed case included), TTLs, record order, the
//! authority and additional sections.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::sync::OnceLock;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use hickory_server::net::xfer::Protocol;
use proptest::prelude::*;

use crate::answer::{Snapshot, respond};
use crate::fuzzing;

const CLIENT: ([u8; 4], u16) = ([10, 99, 0, 50], 40_000);

struct Fixture {
    snapshot: Snapshot,
    /// The same zones through hickory's plain `InMemoryZoneHandler`s.
    plain: Snapshot,
    /// The table's keys, split into wire name and type, in a stable order.
    keys: Vec<(Vec<u8>, u16)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let snapshot = fuzzing::sample_snapshot().unwrap();
        let plain = fuzzing::sample_plain_snapshot().unwrap();
        let mut keys: Vec<(Vec<u8>, u16)> = snapshot
            .fast
            .keys()
            .map(|key| {
                let (name, qtype) = key.split_at(key.len() - 2);
                (name.to_vec(), u16::from_be_bytes([qtype[0], qtype[1]]))
            })
            .collect();
        keys.sort();
        Fixture {
            snapshot,
            plain,
            keys,
        }
    })
}

fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Flips the case of the letters of a wire name where `mask` has a bit set (bit i for the
/// i-th letter, cycling).
fn spell(wire_name: &[u8], mask: u64) -> Vec<u8> {
    let mut out = wire_name.to_vec();
    let mut at = 0;
    let mut letter = 0u32;
    while at < out.len() && out[at] != 0 {
        let len = usize::from(out[at]);
        for byte in &mut out[at + 1..at + 1 + len] {
            if byte.is_ascii_alphabetic() {
                if mask >> (letter % 64) & 1 == 1 {
                    *byte = byte.to_ascii_uppercase();
                }
                letter += 1;
            }
        }
        at += 1 + len;
    }
    out
}

fn query(id: u16, flags: [u8; 2], wire_name: &[u8], qtype: u16) -> Vec<u8> {
    let [a, b] = id.to_be_bytes();
    let mut q = vec![a, b, flags[0], flags[1], 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(wire_name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

fn catalog(fixture: &Fixture, query: &[u8]) -> Option<Vec<u8>> {
    fuzzing::block_on(respond(
        &fixture.snapshot,
        query.to_vec(),
        SocketAddr::from(CLIENT),
        Protocol::Udp,
    ))
}

fn plain(fixture: &Fixture, query: &[u8]) -> Option<Vec<u8>> {
    fuzzing::block_on(respond(
        &fixture.plain,
        query.to_vec(),
        SocketAddr::from(CLIENT),
        Protocol::Udp,
    ))
}

fn fast(fixture: &Fixture, query: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    fixture.snapshot.fast.answer(query, &mut out).then_some(out)
}

fn has_key(fixture: &Fixture, name: &str, qtype: RecordType) -> bool {
    fixture
        .keys
        .iter()
        .any(|(n, t)| *n == wire(name) && *t == u16::from(qtype))
}

#[test]
fn every_table_entry_equals_the_catalog_in_every_spelling() {
    let fixture = fixture();
    let spellings = [
        0u64,
        u64::MAX,
        0xaaaa_aaaa_aaaa_aaaa,
        0x5555_5555_5555_5555,
        0x0123_4567_89ab_cdef,
    ];
    let flag_sets = [
        [0x00, 0x00],
        [0x01, 0x00],
        [0x01, 0x10],
        [0x07, 0xe0],
        [0x00, 0x2f],
    ];
    let mut checked = 0;
    for (n, (name, qtype)) in fixture.keys.iter().enumerate() {
        for (i, mask) in spellings.iter().enumerate() {
            let flags = flag_sets[(n + i) % flag_sets.len()];
            let id = (n * 31 + i * 7) as u16;
            let q = query(id, flags, &spell(name, *mask), *qtype);
            let Some(fast) = fast(fixture, &q) else {
                panic!("the fast path declined its own table entry {q:02x?}");
            };
            let slow = catalog(fixture, &q).unwrap();
            assert_eq!(fast, slow, "fast path != catalog for {q:02x?}");
            // The client's spelling comes back.
            assert_eq!(fast[12..12 + name.len() + 4], q[12..12 + name.len() + 4]);
            checked += 1;
        }
    }
    assert!(checked >= 5 * 20, "only {checked} answers compared");
}

#[test]
fn the_table_holds_every_type_and_leaves_the_hard_cases_to_the_catalog() {
    let fixture = fixture();
    for (name, qtype) in [
        ("lab.test", RecordType::SOA),
        ("lab.test", RecordType::NS),
        ("lab.test", RecordType::A),
        ("nas.lab.test", RecordType::A),
        ("nas.lab.test", RecordType::AAAA),
        ("nas.lab.test", RecordType::TXT),
        ("long.lab.test", RecordType::TXT),
        ("files.lab.test", RecordType::CNAME),
        ("ext.lab.test", RecordType::CNAME),
        ("_tftp._udp.lab.test", RecordType::SRV),
        ("_ext._tcp.lab.test", RecordType::SRV),
        ("_none._tcp.lab.test", RecordType::SRV),
        ("pc1.lab.test", RecordType::A),
        ("pc2.lab.test", RecordType::AAAA),
        ("pc3.lab.test", RecordType::A),
        ("pc3.lab.test", RecordType::AAAA),
        ("node10.lab.test", RecordType::A),
        ("roamer.lab.test", RecordType::A),
        ("100.0.99.10.in-addr.arpa", RecordType::PTR),
        ("5.0.99.10.in-addr.arpa", RecordType::PTR),
        ("0.99.10.in-addr.arpa", RecordType::SOA),
        ("0.99.10.in-addr.arpa", RecordType::NS),
        (
            "2.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa",
            RecordType::PTR,
        ),
    ] {
        assert!(
            has_key(fixture, name, qtype),
            "{name} {qtype} is not in the table"
        );
    }
    for (name, qtype) in [
        // Over 512 bytes: truncated by the catalog.
        ("big.lab.test", RecordType::TXT),
        // CNAME chasing.
        ("files.lab.test", RecordType::A),
        // Additional processing that meets a CNAME or could meet a wildcard.
        ("_http._tcp.lab.test", RecordType::SRV),
        ("_dev._tcp.lab.test", RecordType::SRV),
        // Wildcards.
        ("*.dev.lab.test", RecordType::A),
        ("x.dev.lab.test", RecordType::A),
        // A claimant that lost to the reservation... there is none; but no PTR outside the
        // served networks.
        ("4.2.0.192.in-addr.arpa", RecordType::PTR),
    ] {
        assert!(
            !has_key(fixture, name, qtype),
            "{name} {qtype} should not be in the table"
        );
    }
}

#[test]
fn fast_answers_carry_aa_no_ra_and_the_sections_the_catalog_adds() {
    let fixture = fixture();
    let q = query(7, [0x01, 0x00], &wire("_tftp._udp.lab.test"), 33);
    let answer = Message::from_vec(&fast(fixture, &q).unwrap()).unwrap();
    assert!(answer.metadata.authoritative && !answer.metadata.recursion_available);
    assert!(answer.metadata.recursion_desired);
    assert_eq!(answer.answers.len(), 2);
    // A then AAAA of the first SRV target: nas has two A and one AAAA.
    let additional: Vec<RecordType> = answer.additionals.iter().map(|r| r.record_type()).collect();
    assert_eq!(additional, [RecordType::A, RecordType::A, RecordType::AAAA]);
    let q = query(8, [0x00, 0x00], &wire("lab.test"), 6);
    let answer = Message::from_vec(&fast(fixture, &q).unwrap()).unwrap();
    assert_eq!(answer.authorities.len(), 1);
    assert_eq!(answer.authorities[0].record_type(), RecordType::NS);
    let RData::SOA(soa) = &answer.answers[0].data else {
        panic!("not an SOA")
    };
    assert!(soa.minimum <= 60 && answer.answers[0].ttl <= 60);
}

#[test]
fn what_the_fast_path_declines_the_catalog_answers() {
    let fixture = fixture();
    let nas = wire("nas.lab.test");
    let mut edns = query(1, [0x01, 0x00], &nas, 1);
    edns[11] = 1;
    edns.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let mut chaos = query(2, [0x01, 0x00], &nas, 1);
    let last = chaos.len() - 1;
    chaos[last] = 3;
    let update = query(3, [0x28, 0x00], &nas, 6);
    let missing = query(4, [0x01, 0x00], &wire("nobody.lab.test"), 1);
    let nodata = query(5, [0x01, 0x00], &wire("pc1.lab.test"), 16);
    let outside = query(6, [0x01, 0x00], &wire("www.example.org"), 1);
    for q in [&edns, &chaos, &update, &missing, &nodata, &outside] {
        assert!(fast(fixture, q).is_none(), "fast path took {q:02x?}");
        let answer = Message::from_vec(&catalog(fixture, q).unwrap()).unwrap();
        assert_eq!(answer.metadata.id, u16::from_be_bytes([q[0], q[1]]));
    }
    let answer = Message::from_vec(&catalog(fixture, &missing).unwrap()).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    let RData::SOA(soa) = &answer.authorities[0].data else {
        panic!("no SOA in the NXDOMAIN answer")
    };
    assert!(soa.minimum <= 60 && answer.authorities[0].ttl <= 60);
    let answer = Message::from_vec(&catalog(fixture, &nodata).unwrap()).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty() && answer.authorities.len() == 1);
    // No upstreams: REFUSED at once.
    let answer = Message::from_vec(&catalog(fixture, &outside).unwrap()).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
    // The big TXT set is truncated to 512 bytes with TC.
    let big = query(9, [0x01, 0x00], &wire("big.lab.test"), 16);
    let answer = catalog(fixture, &big).unwrap();
    assert!(answer.len() <= 512);
    assert!(Message::from_vec(&answer).unwrap().metadata.truncation);
}

const LABELS: [&str; 16] = [
    "nas", "pc1", "pc3", "node10", "files", "ext", "big", "x", "*", "_tftp", "_udp", "dev", "5",
    "100", "0", "nobody",
];

const SUFFIXES: [&str; 6] = [
    "lab.test",
    "dev.lab.test",
    "_udp.lab.test",
    "0.99.10.in-addr.arpa",
    "0.0.0.0.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa",
    "example.org",
];

const TYPES: [u16; 16] = [
    1, 2, 5, 6, 12, 15, 16, 28, 33, 13, 257, 255, 252, 251, 0, 65_535,
];

#[test]
fn local_zone_answers_like_the_plain_in_memory_handler() {
    let fixture = fixture();
    let mut compared = 0;
    for suffix in SUFFIXES {
        for prefix in std::iter::once("").chain(LABELS) {
            let name = if prefix.is_empty() {
                suffix.to_string()
            } else {
                format!("{prefix}.{suffix}")
            };
            for qtype in TYPES {
                let q = query(compared as u16, [0x01, 0x00], &wire(&name), qtype);
                assert_eq!(
                    catalog(fixture, &q),
                    plain(fixture, &q),
                    "LocalZone differs from InMemoryZoneHandler for {name} type {qtype}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000);
}

/// Every key of `snapshot`'s table answers what its catalog answers.
fn table_equals_catalog(snapshot: &Snapshot) -> usize {
    let mut checked = 0;
    for key in snapshot.fast.keys() {
        let (name, qtype) = key.split_at(key.len() - 2);
        let q = query(
            3,
            [0x01, 0x00],
            &spell(name, 0x5555),
            u16::from_be_bytes([qtype[0], qtype[1]]),
        );
        let mut out = Vec::new();
        assert!(snapshot.fast.answer(&q, &mut out));
        let slow = fuzzing::block_on(respond(
            snapshot,
            q.clone(),
            SocketAddr::from(CLIENT),
            Protocol::Udp,
        ))
        .unwrap();
        assert_eq!(out, slow, "stale fast answer for {q:02x?}");
        checked += 1;
    }
    checked
}

fn other_names() -> Vec<(Vec<u8>, u16)> {
    [
        ("nobody.lab.test", 1u16),
        ("files.lab.test", 1),
        ("x.dev.lab.test", 1),
        ("big.lab.test", 16),
        ("pc1.lab.test", 28),
        ("lab.test", 255),
        ("www.example.org", 1),
        ("_http._tcp.lab.test", 33),
    ]
    .iter()
    .map(|(name, qtype)| (wire(name), *qtype))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Queries near the table's (any header flags, any spelling, now and then a damaged
    /// byte): whenever the fast path answers, the catalog's bytes are the same.
    #[test]
    fn fast_path_equals_catalog_for_any_header_and_spelling(
        index in any::<prop::sample::Index>(),
        known in any::<bool>(),
        id in any::<u16>(),
        flags in any::<[u8; 2]>(),
        mask in any::<u64>(),
        damage in proptest::option::weighted(0.2, (any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let fixture = fixture();
        let others = other_names();
        let (name, qtype) = if known {
            index.get(&fixture.keys).clone()
        } else {
            index.get(&others).clone()
        };
        let mut q = query(id, flags, &spell(&name, mask), qtype);
        if let Some((at, byte)) = damage {
            let at = at.index(q.len());
            q[at] = byte;
        }
        // Asserts fast == catalog, the id echoed, the 512-byte limit.
        fuzzing::query(&q);
        let plain = flags[0] & 0xf8 == 0 && damage.is_none();
        if known && plain {
            prop_assert!(fast(fixture, &q).is_some(), "the fast path declined {:02x?}", q);
        }
    }

    /// Random names around our zones, any type, any flags, with or without EDNS: the wrapper
    /// that answers negatives itself gives the bytes hickory's in-memory handler gives.
    #[test]
    fn local_zone_equals_in_memory_for_random_names(
        labels in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        suffix in any::<prop::sample::Index>(),
        qtype in prop_oneof![any::<prop::sample::Index>().prop_map(|i| *i.get(&TYPES)), any::<u16>()],
        flags in any::<[u8; 2]>(),
        edns in any::<bool>(),
    ) {
        let fixture = fixture();
        let mut name: Vec<&str> = labels.iter().map(|i| *i.get(&LABELS)).collect();
        name.push(*suffix.get(&SUFFIXES));
        let mut q = query(77, [flags[0] & 0x87, flags[1]], &wire(&name.join(".")), qtype);
        if edns {
            q[11] = 1;
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        prop_assert_eq!(catalog(fixture, &q), plain(fixture, &q));
    }

    /// Rebuilds reuse the responses of unchanged RRsets; after any sequence of lease changes
    /// the table still equals the catalog (SRV additionals and SOA serials included).
    #[test]
    fn rebuilt_tables_stay_equal_to_the_catalog(
        changes in proptest::collection::vec((0u8..4, 0u8..6, any::<bool>(), any::<bool>()), 1..12),
    ) {
        use crate::names::Names;
        use crate::{LeaseName, NameChange};
        let settings = fuzzing::sample_settings().unwrap();
        let mut names = Names::new(&settings);
        for change in fuzzing::sample_leases() {
            names.apply(change);
        }
        let mut snapshot = Snapshot::build(&names.zones(1).unwrap(), None, vec![], None);
        for (serial, (mac, host, v6, up)) in changes.into_iter().enumerate() {
            let hostnames = ["pc1", "pc2", "nas", "node10", "fresh", "pc3"];
            let address: std::net::IpAddr = if v6 {
                format!("fd00:99::{}", 100 + u16::from(mac)).parse().unwrap()
            } else {
                format!("10.99.0.{}", 100 + host).parse().unwrap()
            };
            let mac = [2, 0, 0, 0, 0, mac];
            names.apply(if up {
                NameChange::Up(LeaseName { mac, address, hostname: hostnames[usize::from(host)].into() })
            } else {
                NameChange::Down { mac, address }
            });
            let zones = names.zones(2 + serial as u32).unwrap();
            snapshot = Snapshot::build(&zones, None, vec![], Some(&snapshot));
            prop_assert!(table_equals_catalog(&snapshot) > 10);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        fuzzing::query(&bytes);
    }

    /// Plausible headers with garbage after them reach deeper into hickory's parser.
    #[test]
    fn garbage_after_a_plausible_header_never_panics(
        header in any::<[u8; 12]>(),
        counts in any::<[u8; 4]>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut q = header.to_vec();
        q[4..6].copy_from_slice(&[0, 1]);
        q[6] = 0;
        q[7] = counts[0] % 3;
        q[8] = 0;
        q[9] = counts[1] % 3;
        q[10] = 0;
        q[11] = counts[2] % 3;
        q.extend_from_slice(&body);
        fuzzing::query(&q);
    }
}
