//! Replays the committed fuzz corpora (`fuzz/corpus/dhcp_v4_codec/`, `dhcp_v4_server/`,
//! `dhcp_v6_codec/`, `dhcp_v6_server/`, `dhcp_v6_ra/`) through the entry points the
//! cargo-fuzz target uses, so every input the fuzzer found interesting stays a test.

#![allow(clippy::expect_used, reason = "a test fails loudly on setup errors")]

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus {} is missing: {error}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "corpus {} is empty", dir.display());
    inputs
}

#[test]
fn dhcp_v4_codec_corpus() {
    let mut decoded = 0;
    for (path, bytes) in corpus("dhcp_v4_codec") {
        let result = std::panic::catch_unwind(|| kindling_dhcp::v4::fuzzing::codec(&bytes));
        assert!(result.is_ok(), "{} fails dhcp_v4_codec", path.display());
        decoded += usize::from(kindling_dhcp::v4::decode(&bytes).is_ok());
    }
    assert!(
        decoded > 0,
        "no corpus input decodes: the replay would prove nothing"
    );
}

#[test]
fn dhcp_v6_ra_corpus() {
    // The first byte's highest bit chooses the mode: quiet, or advertising (issue 15).
    let (mut quiet, mut full) = (0, 0);
    for (path, bytes) in corpus("dhcp_v6_ra") {
        let result = std::panic::catch_unwind(|| kindling_dhcp::v6::fuzzing::quiet_ra(&bytes));
        match result {
            Ok(count) if bytes.first().is_some_and(|b| b & 0x80 != 0) => full += count,
            Ok(count) => quiet += count,
            Err(_) => panic!("{} fails dhcp_v6_ra", path.display()),
        }
    }
    assert!(
        quiet > 0,
        "no corpus input gets a quiet RA: the replay would prove little"
    );
    assert!(
        full > 0,
        "no corpus input gets a full RA: the advertising mode is not replayed"
    );
}

#[test]
fn dhcp_v4_server_corpus() {
    let inputs = corpus("dhcp_v4_server");
    for (path, bytes) in &inputs {
        let result = std::panic::catch_unwind(|| kindling_dhcp::v4::fuzzing::server(bytes));
        assert!(result.is_ok(), "{} fails dhcp_v4_server", path.display());
    }
}

#[test]
fn dhcp_v6_codec_corpus() {
    let mut parsed = 0;
    for (path, bytes) in corpus("dhcp_v6_codec") {
        let result = std::panic::catch_unwind(|| kindling_dhcp::v6::fuzzing::codec(&bytes));
        assert!(result.is_ok(), "{} fails dhcp_v6_codec", path.display());
        parsed += usize::from(kindling_dhcp::v6::codec::Packet::parse(&bytes).is_ok());
    }
    assert!(
        parsed > 0,
        "no corpus input parses: the replay would prove nothing"
    );
}

#[test]
fn dhcp_v6_server_corpus() {
    let mut replies = 0;
    for (path, bytes) in corpus("dhcp_v6_server") {
        let result = std::panic::catch_unwind(|| kindling_dhcp::v6::fuzzing::server(&bytes));
        match result {
            Ok(sent) => replies += sent,
            Err(_) => panic!("{} fails dhcp_v6_server", path.display()),
        }
    }
    assert!(
        replies >= 8,
        "the seed exchanges get only {replies} replies: they no longer reach the core's rules"
    );
}

/// A BOOTREQUEST from `mac` with the given options (code, bytes), as the fuzz entry reads it.
fn request(mac: u8, message_type: u8, ciaddr: [u8; 4], options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&[0x4b, 0x49, 0x4e, mac]);
    p[12..16].copy_from_slice(&ciaddr);
    p[28..34].copy_from_slice(&[0x52, 0x54, 0, 0, 0, mac]);
    p.extend_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, message_type]);
    for (code, data) in options {
        p.push(*code);
        p.push(u8::try_from(data.len()).expect("short option"));
        p.extend_from_slice(data);
    }
    p.push(255);
    p
}

/// One step of a fuzz script: tag byte, u16 LE length, bytes.
fn step(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("short step");
    let mut out = vec![tag];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

const DISCOVER: u8 = 1;
const REQUEST: u8 = 3;
const DECLINE: u8 = 4;
const RELEASE: u8 = 7;
const INFORM: u8 = 8;
const SERVER_ID: (u8, &[u8]) = (54, &[10, 99, 0, 1]);
const PXE_BIOS: (u8, &[u8]) = (60, b"PXEClient:Arch:00000:UNDI:002001");
const PXE_UEFI: (u8, &[u8]) = (60, b"PXEClient:Arch:00007:UNDI:003016");

/// Real exchanges as fuzz scripts (the fuzz entry's format is documented on
/// `kindling_dhcp::v4::fuzzing::server`), so the fuzzer starts from states deep in the core.
/// `KINDLING_WRITE_FUZZ_SEEDS=1 cargo test -p kindling-dhcp --test fuzz_corpus` writes them into
/// fuzz/corpus/dhcp_v4_server.
fn seed_scripts() -> Vec<(&'static str, Vec<u8>)> {
    let offered: &[u8] = &[10, 99, 0, 100];
    let requested = (50u8, offered);
    let quiet = || step(0x04, &[]); // the ping check of the newest probe: nothing answered
    let dora = [
        step(0, &request(1, DISCOVER, [0; 4], &[(12, b"node-a")])),
        quiet(),
        step(
            0,
            &request(1, REQUEST, [0; 4], &[requested, SERVER_ID, (12, b"node-a")]),
        ),
    ]
    .concat();
    let renew = [
        dora.clone(),
        step(0x42, &request(1, REQUEST, [10, 99, 0, 100], &[])),
        step(0x40, &request(1, RELEASE, [10, 99, 0, 100], &[SERVER_ID])),
        step(0, &request(1, DISCOVER, [0; 4], &[])),
    ]
    .concat();
    let decline = [
        dora.clone(),
        step(0, &request(1, DECLINE, [0; 4], &[requested, SERVER_ID])),
        step(0xc0, &request(2, DISCOVER, [0; 4], &[])),
        step(0x0c, &[]), // this time the address answers the ping
        step(0x10, &[]),
    ]
    .concat();
    let init_reboot = [
        dora.clone(),
        step(0x80, &request(1, REQUEST, [0; 4], &[requested])),
        step(0, &request(3, REQUEST, [0; 4], &[(50, &[10, 99, 0, 7])])),
    ]
    .concat();
    let bios = [PXE_BIOS, (93, &[0, 0]), (97, &[0; 17])];
    let pxe = [
        step(0, &request(4, DISCOVER, [0; 4], &bios)),
        quiet(),
        step(0, &request(5, DISCOVER, [0; 4], &[PXE_UEFI, (93, &[0, 7])])),
        quiet(),
        step(0, &request(6, DISCOVER, [0; 4], &[PXE_BIOS, (77, b"iPXE")])),
        quiet(),
    ]
    .concat();
    let uefi = [PXE_UEFI, (93, &[0, 7])];
    let proxy = [
        step(0x20, &request(7, DISCOVER, [0; 4], &uefi)),
        step(0x03, &request(7, REQUEST, [10, 99, 0, 150], &uefi)),
    ]
    .concat();
    let reserved_and_inform = [
        step(0, &request(0x10, DISCOVER, [0; 4], &[])),
        step(0, &request(0x11, DISCOVER, [0; 4], &[])),
        step(
            0x02,
            &request(8, INFORM, [10, 99, 0, 50], &[(55, &[1, 3, 6, 42])]),
        ),
    ]
    .concat();
    let mut relayed_discover = request(9, DISCOVER, [0; 4], &[(82, &[1, 2, 0, 1])]);
    relayed_discover[24..28].copy_from_slice(&[10, 98, 0, 1]);
    let relay = [step(0x02, &relayed_discover), quiet()].concat();
    vec![
        ("seed-dora", dora),
        ("seed-renew-release", renew),
        ("seed-decline-expire", decline),
        ("seed-init-reboot", init_reboot),
        ("seed-pxe-kinds", pxe),
        ("seed-proxy-4011", proxy),
        ("seed-reserved-inform", reserved_and_inform),
        ("seed-relay", relay),
    ]
}

#[test]
fn server_seed_scripts_draw_replies() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dhcp_v4_server");
    let write = std::env::var_os("KINDLING_WRITE_FUZZ_SEEDS").is_some();
    for (name, script) in seed_scripts() {
        let replies = kindling_dhcp::v4::fuzzing::server(&script);
        // Each seed is a real exchange with a known number of replies (OFFER, ACK, ...): a seed
        // drawing fewer no longer reaches the state it was written for.
        let expected = match name {
            "seed-renew-release" => 4,
            "seed-init-reboot" | "seed-pxe-kinds" => 3,
            "seed-relay" => 1,
            _ => 2,
        };
        assert_eq!(replies, expected, "{name}");
        if write {
            std::fs::write(dir.join(name), &script).expect("write seed");
        }
    }
}
