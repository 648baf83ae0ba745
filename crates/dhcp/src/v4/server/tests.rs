//! Sans-IO tests of the server core: each RFC 2131 rule and boot rule, with requests built
//! byte by byte and replies decoded with our own codec.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dhcproto::v4::MessageType;
use kindling_config::{DhcpClass, DhcpConfig, DhcpOptionValue};
use proptest::prelude::*;

use super::*;
use crate::v4::codec::{self, HEADER_LEN, MAGIC_COOKIE};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const MAC_A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xa1];
const MAC_B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xb2];
const RESERVED_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x10];

const CONFIG: &str = r#"
boot:
  bios: undionly.kpxe
  uefi_x64: ipxe.efi
  ipxe: boot.ipxe
dhcp:
  mode: server
  lease_time: 1h
  subnets:
    - network: 10.99.0.0/24
      range: [10.99.0.100, 10.99.0.103]
      router: 10.99.0.1
      dns: [10.99.0.53]
      domain: lab.test
    - network: 10.98.0.0/24
      range: [10.98.0.50, 10.98.0.60]
  reservations:
    - { mac: "52:54:00:00:00:10", ip: 10.99.0.10, hostname: node10, boot: { bios: special.kpxe } }
"#;

fn dhcp_config(text: &str) -> (DhcpConfig, kindling_config::BootConfig) {
    let loaded = kindling_config::parse(text, "test").expect("test config parses");
    let dhcp = loaded.config.dhcp.expect("dhcp section");
    (dhcp, loaded.config.boot)
}

fn settings_with(edit: impl FnOnce(&mut DhcpConfig)) -> Settings {
    let (mut dhcp, boot) = dhcp_config(CONFIG);
    dhcp.ping_check = false;
    edit(&mut dhcp);
    Settings::new(&dhcp, &boot, Environment::default())
}

fn core() -> Core {
    Core::new(settings_with(|_| {}), Vec::new())
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn interface() -> Interface {
    Interface {
        index: 7,
        name: "lab0".into(),
        addresses: vec![Ipv4Net::new(SERVER, 24).unwrap()],
    }
}

/// A client request, built field by field.
#[derive(Clone)]
struct Req {
    message_type: u8,
    mac: [u8; 6],
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    broadcast: bool,
    options: Vec<(u8, Vec<u8>)>,
    source: SocketAddrV4,
    destination: Ipv4Addr,
    port: u16,
}

impl Req {
    fn new(message_type: MessageType, mac: [u8; 6]) -> Req {
        Req {
            message_type: u8::from(message_type),
            mac,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
            options: Vec::new(),
            source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            destination: Ipv4Addr::BROADCAST,
            port: SERVER_PORT,
        }
    }

    fn opt(mut self, code: u8, data: &[u8]) -> Req {
        self.options.push((code, data.to_vec()));
        self
    }

    fn requested(self, address: Ipv4Addr) -> Req {
        self.opt(50, &address.octets())
    }

    fn server_id(self, address: Ipv4Addr) -> Req {
        self.opt(54, &address.octets())
    }

    fn ciaddr(mut self, address: Ipv4Addr, unicast: bool) -> Req {
        self.ciaddr = address;
        self.source = SocketAddrV4::new(address, 68);
        if unicast {
            self.destination = SERVER;
        }
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![1, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0];
        b.extend_from_slice(if self.broadcast { &[0x80, 0] } else { &[0, 0] });
        b.extend_from_slice(&self.ciaddr.octets());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&self.giaddr.octets());
        b.extend_from_slice(&self.mac);
        b.resize(HEADER_LEN, 0);
        b.extend_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(&[53, 1, self.message_type]);
        for (code, data) in &self.options {
            b.push(*code);
            b.push(u8::try_from(data.len()).unwrap());
            b.extend_from_slice(data);
        }
        b.push(255);
        b
    }
}

fn send(core: &mut Core, req: &Req, now: SystemTime) -> Option<Action> {
    let bytes = req.bytes();
    let interface = interface();
    core.handle(
        &Datagram {
            bytes: &bytes,
            source: req.source,
            destination: req.destination,
            interface: &interface,
            port: req.port,
        },
        now,
    )
}

/// The transmit of an action that sends something, after its commit if it has one.
fn transmit(action: Option<Action>) -> Transmit {
    match action {
        Some(Action::Send(t)) => t,
        Some(Action::Commit { then: Some(t), .. }) => t,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn decode(t: &Transmit) -> codec::Message {
    codec::decode(&t.bytes).expect("our reply decodes")
}

fn offer(core: &mut Core, mac: [u8; 6], now: SystemTime) -> Ipv4Addr {
    let t = transmit(send(core, &Req::new(MessageType::Discover, mac), now));
    let m = decode(&t);
    assert_eq!(m.message_type(), Some(MessageType::Offer));
    m.yiaddr()
}

fn dora(core: &mut Core, mac: [u8; 6], now: SystemTime) -> Ipv4Addr {
    let address = offer(core, mac, now);
    let action = send(
        core,
        &Req::new(MessageType::Request, mac)
            .requested(address)
            .server_id(SERVER),
        now,
    );
    let Some(Action::Commit {
        records,
        then: Some(t),
        events,
    }) = action
    else {
        panic!("an ACK must wait for its commit: {action:?}");
    };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].address, address);
    assert_eq!(records[0].state, LeaseState::Active);
    assert_eq!(events.len(), 1);
    assert_eq!(decode(&t).message_type(), Some(MessageType::Ack));
    address
}

#[test]
fn discover_offer_request_ack() {
    let mut core = core();
    let t = transmit(send(
        &mut core,
        &Req::new(MessageType::Discover, MAC_A),
        t0(),
    ));
    let m = decode(&t);
    assert_eq!(m.message_type(), Some(MessageType::Offer));
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 99, 0, 100));
    assert_eq!(m.server_id(), Some(SERVER));
    assert_eq!(m.raw(1), Some(&[255, 255, 255, 0][..]));
    assert_eq!(m.raw(3), Some(&[10, 99, 0, 1][..]));
    assert_eq!(m.raw(6), Some(&[10, 99, 0, 53][..]));
    assert_eq!(m.raw(15), Some(&b"lab.test"[..]));
    assert_eq!(m.raw(51), Some(&3600u32.to_be_bytes()[..]));
    assert_eq!(m.raw(58), Some(&1800u32.to_be_bytes()[..]));
    assert_eq!(m.raw(59), Some(&3150u32.to_be_bytes()[..]));
    assert!(t.bytes.len() >= 300, "padded to the BOOTP minimum");
    // No broadcast bit, no ciaddr: unicast to the new address at the client's MAC.
    assert_eq!(t.to, SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 100), 68));
    assert_eq!(t.hardware, Some(MacAddr(MAC_A)));
    assert_eq!((t.from, t.ifindex, t.port), (SERVER, 7, 67));
    // Offers are not durable.
    assert!(core.lease(m.yiaddr()).is_none());

    let address = dora(&mut core, MAC_A, t0());
    assert_eq!(address, Ipv4Addr::new(10, 99, 0, 100));
    let lease = core.lease(address).unwrap();
    assert_eq!(lease.mac, MacAddr(MAC_A));
    assert_eq!(lease.expires_at, t0() + Duration::from_secs(3600));
}

#[test]
fn the_broadcast_bit_makes_the_reply_a_broadcast() {
    let mut core = core();
    let mut req = Req::new(MessageType::Discover, MAC_A);
    req.broadcast = true;
    let t = transmit(send(&mut core, &req, t0()));
    assert_eq!(t.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert_eq!(t.hardware, None);
    assert!(decode(&t).flags().broadcast(), "the flag is echoed");
}

#[test]
fn two_clients_get_different_addresses_and_an_offer_is_held() {
    let mut core = core();
    let a = offer(&mut core, MAC_A, t0());
    let b = offer(&mut core, MAC_B, t0());
    assert_ne!(a, b);
    // The same client asking again gets the same offer.
    assert_eq!(offer(&mut core, MAC_A, t0()), a);
}

#[test]
fn a_client_keeps_its_address_across_renewals_and_restarts() {
    let mut core = core();
    let address = dora(&mut core, MAC_B, t0());
    dora(&mut core, MAC_A, t0());
    // RENEWING: unicast, ciaddr set, no server identifier, no option 50.
    let later = t0() + Duration::from_secs(1800);
    let action = send(
        &mut core,
        &Req::new(MessageType::Request, MAC_B).ciaddr(address, true),
        later,
    );
    let Some(Action::Commit {
        records,
        then: Some(t),
        events,
    }) = action
    else {
        panic!("{action:?}")
    };
    assert_eq!(records[0].expires_at, later + Duration::from_secs(3600));
    assert_eq!(events[0].kind, LeaseEventKind::Renewed);
    assert_eq!(
        t.to,
        SocketAddrV4::new(address, 68),
        "a renewal is answered at ciaddr"
    );
    assert_eq!(decode(&t).yiaddr(), address);

    // A restarted core over the durable records offers the client its address again.
    let mut restarted = Core::new(settings_with(|_| {}), core.leases());
    assert_eq!(offer(&mut restarted, MAC_B, later), address);
    // INIT-REBOOT after the restart is ACKed.
    let action = send(
        &mut restarted,
        &Req::new(MessageType::Request, MAC_B).requested(address),
        later,
    );
    assert_eq!(
        decode(&transmit(action)).message_type(),
        Some(MessageType::Ack)
    );
}

#[test]
fn init_reboot_rules() {
    let mut core = core();
    let a = dora(&mut core, MAC_A, t0());
    // Wrong network: NAK, broadcast.
    let t = transmit(send(
        &mut core,
        &Req::new(MessageType::Request, MAC_A).requested(Ipv4Addr::new(192, 168, 1, 5)),
        t0(),
    ));
    assert_eq!(decode(&t).message_type(), Some(MessageType::Nak));
    assert_eq!(t.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    // Another client's address: NAK.
    let t = transmit(send(
        &mut core,
        &Req::new(MessageType::Request, MAC_B).requested(a),
        t0(),
    ));
    assert_eq!(decode(&t).message_type(), Some(MessageType::Nak));
    // A free address of the right network from a client we have no record of: silence.
    assert!(
        send(
            &mut core,
            &Req::new(MessageType::Request, MAC_B).requested(Ipv4Addr::new(10, 99, 0, 102)),
            t0()
        )
        .is_none()
    );
    // A reserved client asking for another address is told no.
    let t = transmit(send(
        &mut core,
        &Req::new(MessageType::Request, RESERVED_MAC).requested(Ipv4Addr::new(10, 99, 0, 101)),
        t0(),
    ));
    assert_eq!(decode(&t).message_type(), Some(MessageType::Nak));
}

#[test]
fn selecting_another_server_withdraws_our_offer() {
    let mut core = core();
    for i in 0..3u8 {
        dora(&mut core, [2, 0, 0, 0, 1, i], t0());
    }
    let a = offer(&mut core, MAC_A, t0());
    assert!(
        send(&mut core, &Req::new(MessageType::Discover, MAC_B), t0()).is_none(),
        "pool full"
    );
    let other = Ipv4Addr::new(10, 99, 0, 2);
    assert!(
        send(
            &mut core,
            &Req::new(MessageType::Request, MAC_A)
                .requested(a)
                .server_id(other),
            t0()
        )
        .is_none()
    );
    // The last address is free for the next client at once.
    assert_eq!(offer(&mut core, MAC_B, t0()), a);
}

#[test]
fn a_request_for_an_address_taken_meanwhile_is_naked() {
    let mut core = core();
    let a = dora(&mut core, MAC_A, t0());
    let t = transmit(send(
        &mut core,
        &Req::new(MessageType::Request, MAC_B)
            .requested(a)
            .server_id(SERVER),
        t0(),
    ));
    assert_eq!(decode(&t).message_type(), Some(MessageType::Nak));
}

#[test]
fn reservations_get_their_address_name_and_boot_file() {
    let mut core = core();
    let req =
        Req::new(MessageType::Discover, RESERVED_MAC).opt(60, b"PXEClient:Arch:00000:UNDI:002001");
    let m = decode(&transmit(send(&mut core, &req, t0())));
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 99, 0, 10));
    assert_eq!(m.raw(12), Some(&b"node10"[..]));
    assert_eq!(m.file(), Some(&b"special.kpxe"[..]));
    // Nobody else is given a reserved address, even when asking for it.
    let m = decode(&transmit(send(
        &mut core,
        &Req::new(MessageType::Discover, MAC_A).requested(Ipv4Addr::new(10, 99, 0, 10)),
        t0(),
    )));
    assert_ne!(m.yiaddr(), Ipv4Addr::new(10, 99, 0, 10));
    // The reservation's hostname is the lease's, whatever the client sends.
    let action = send(
        &mut core,
        &Req::new(MessageType::Request, RESERVED_MAC)
            .requested(Ipv4Addr::new(10, 99, 0, 10))
            .server_id(SERVER)
            .opt(12, b"other"),
        t0(),
    );
    let Some(Action::Commit { records, .. }) = action else {
        panic!()
    };
    assert_eq!(records[0].hostname.as_deref(), Some("node10"));
}

#[test]
fn a_reservation_by_smbios_uuid_matches_option_97_in_either_byte_order() {
    let core_with_uuid = || {
        Core::new(
            settings_with(|dhcp| {
                dhcp.reservations[0].mac = None;
                dhcp.reservations[0].uuid = Some([
                    0x4c, 0x4c, 0x45, 0x44, 0x00, 0x42, 0x35, 0x10, 0x80, 0x52, 0xb3, 0xc0, 0x4f,
                    0x59, 0x52, 0x31,
                ]);
            }),
            Vec::new(),
        )
    };
    let option_97 = |uuid: [u8; 16]| [&[0u8][..], &uuid].concat();
    let canonical = [
        0x4c, 0x4c, 0x45, 0x44, 0x00, 0x42, 0x35, 0x10, 0x80, 0x52, 0xb3, 0xc0, 0x4f, 0x59, 0x52,
        0x31,
    ];
    let efi_guid = [
        0x44, 0x45, 0x4c, 0x4c, 0x42, 0x00, 0x10, 0x35, 0x80, 0x52, 0xb3, 0xc0, 0x4f, 0x59, 0x52,
        0x31,
    ];
    for sent in [canonical, efi_guid] {
        let mut core = core_with_uuid();
        let req = Req::new(MessageType::Discover, MAC_A)
            .opt(60, b"PXEClient:Arch:00000:UNDI:002001")
            .opt(97, &option_97(sent));
        let m = decode(&transmit(send(&mut core, &req, t0())));
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 99, 0, 10), "uuid {sent:02x?}");
        assert_eq!(m.file(), Some(&b"special.kpxe"[..]));
        // The MAC the reservation no longer names gets a pool address.
        let m = decode(&transmit(send(
            &mut core,
            &Req::new(MessageType::Discover, RESERVED_MAC),
            t0(),
        )));
        assert_ne!(m.yiaddr(), Ipv4Addr::new(10, 99, 0, 10));
    }
    // Another UUID, or a malformed option 97, is another machine.
    let mut other = canonical;
    other[0] ^= 1;
    for option in [option_97(other), canonical.to_vec()] {
        let mut core = core_with_uuid();
        let req = Req::new(MessageType::Discover, MAC_A).opt(97, &option);
        let m = decode(&transmit(send(&mut core, &req, t0())));
        assert_ne!(m.yiaddr(), Ipv4Addr::new(10, 99, 0, 10));
    }
}

#[test]
fn client_hostnames_are_sanitized_and_option_81_wins() {
    let mut core = core();
    let a = offer(&mut core, MAC_A, t0());
    let req = Req::new(MessageType::Request, MAC_A)
        .requested(a)
        .server_id(SERVER)
        .opt(12, b"Bad.Name;x");
    let Some(Action::Commit {
        records, events, ..
    }) = send(&mut core, &req, t0())
    else {
        panic!()
    };
    assert_eq!(records[0].hostname.as_deref(), Some("bad"));
    assert_eq!(events[0].hostname.as_deref(), Some("bad"));
    // Option 81 in wire format (E flag) is preferred.
    let req = Req::new(MessageType::Request, MAC_A)
        .requested(a)
        .server_id(SERVER)
        .opt(12, b"plain")
        .opt(
            81,
            &[
                0x04, 0, 0, 5, b'F', b'q', b'D', b'n', b'1', 3, b'l', b'a', b'b', 0,
            ],
        );
    let Some(Action::Commit { records, .. }) = send(&mut core, &req, t0()) else {
        panic!()
    };
    assert_eq!(records[0].hostname.as_deref(), Some("fqdn1"));
}

#[test]
fn decline_sets_the_address_aside_until_it_ages_out() {
    let mut core = core();
    let a = dora(&mut core, MAC_A, t0());
    let action = send(
        &mut core,
        &Req::new(MessageType::Decline, MAC_A)
            .requested(a)
            .server_id(SERVER),
        t0(),
    );
    let Some(Action::Commit {
        records,
        then: None,
        events,
    }) = action
    else {
        panic!("{action:?}")
    };
    assert_eq!(
        records[0].state,
        LeaseState::Abandoned(AbandonReason::Declined)
    );
    assert_eq!(events[0].kind, LeaseEventKind::Released);
    // Not offered again, to anyone, while set aside.
    for mac in [MAC_A, MAC_B] {
        assert_ne!(offer(&mut core, mac, t0() + Duration::from_secs(60)), a);
    }
    // After the hold it is available again.
    let fresh = Core::new(settings_with(|_| {}), core.leases());
    let mut fresh = fresh;
    let later = t0() + Duration::from_secs(3601);
    let offered: Vec<Ipv4Addr> = (0..4u8)
        .map(|i| offer(&mut fresh, [2, 0, 0, 0, 0, i], later))
        .collect();
    assert!(offered.contains(&a), "{offered:?}");
}

#[test]
fn release_frees_the_address_and_the_client_gets_it_back() {
    let mut core = core();
    let a = dora(&mut core, MAC_A, t0());
    let action = send(
        &mut core,
        &Req::new(MessageType::Release, MAC_A)
            .ciaddr(a, true)
            .server_id(SERVER),
        t0(),
    );
    let Some(Action::Commit {
        records,
        then: None,
        events,
    }) = action
    else {
        panic!("{action:?}")
    };
    assert_eq!(records[0].state, LeaseState::Released);
    assert_eq!(events[0].kind, LeaseEventKind::Released);
    // A RELEASE from another MAC for someone's address is ignored.
    let b = dora(&mut core, MAC_B, t0());
    assert!(
        send(
            &mut core,
            &Req::new(MessageType::Release, MAC_A).ciaddr(b, true),
            t0()
        )
        .is_none()
    );
    // The releasing client gets its old address back.
    assert_eq!(offer(&mut core, MAC_A, t0()), a);
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut core = core();
    let client = Ipv4Addr::new(10, 99, 0, 77);
    let t = transmit(send(
        &mut core,
        &Req::new(MessageType::Inform, MAC_A).ciaddr(client, true),
        t0(),
    ));
    let m = decode(&t);
    assert_eq!(m.message_type(), Some(MessageType::Ack));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.raw(51), None, "no lease time in an ACK to INFORM");
    assert_eq!(m.raw(3), Some(&[10, 99, 0, 1][..]));
    assert_eq!(t.to, SocketAddrV4::new(client, 68));
    assert!(core.lease(client).is_none());
}

#[test]
fn relayed_requests_use_the_relays_subnet_and_go_back_to_the_relay() {
    let mut core = core();
    let relay = Ipv4Addr::new(10, 98, 0, 1);
    let mut req = Req::new(MessageType::Discover, MAC_A).opt(82, &[1, 3, b'p', b'1', b'2']);
    req.giaddr = relay;
    req.source = SocketAddrV4::new(relay, 67);
    req.destination = SERVER;
    let t = transmit(send(&mut core, &req, t0()));
    let m = decode(&t);
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 98, 0, 50));
    assert_eq!(m.giaddr(), relay);
    assert_eq!(
        m.raw(82),
        Some(&[1, 3, b'p', b'1', b'2'][..]),
        "option 82 echoed"
    );
    assert_eq!(t.to, SocketAddrV4::new(relay, 67));
    assert_eq!(t.hardware, None);
    // A NAK through a relay goes to the relay with the broadcast bit set.
    let mut nak = Req::new(MessageType::Request, MAC_B).requested(Ipv4Addr::new(10, 99, 0, 5));
    nak.giaddr = relay;
    let t = transmit(send(&mut core, &nak, t0()));
    let m = decode(&t);
    assert_eq!(m.message_type(), Some(MessageType::Nak));
    assert!(m.flags().broadcast());
    assert_eq!(t.to, SocketAddrV4::new(relay, 67));
}

#[test]
fn an_exhausted_pool_gets_no_offer_and_leased_clients_still_renew() {
    let mut core = core();
    let leased = dora(&mut core, MAC_A, t0());
    for i in 0..3u8 {
        dora(&mut core, [2, 0, 0, 0, 1, i], t0());
    }
    // Four addresses, four leases: a fifth client gets nothing.
    assert!(send(&mut core, &Req::new(MessageType::Discover, MAC_B), t0()).is_none());
    let renewed_at = t0() + Duration::from_secs(1800);
    let t = transmit(send(
        &mut core,
        &Req::new(MessageType::Request, MAC_A).ciaddr(leased, true),
        renewed_at,
    ));
    assert_eq!(decode(&t).message_type(), Some(MessageType::Ack));
    // Once a lease expires its address is offered again.
    let later = t0() + Duration::from_secs(3601);
    let Some(Action::Commit {
        records, events, ..
    }) = core.expire(later)
    else {
        panic!()
    };
    assert_eq!(records.len(), 3, "the renewed lease is not expired");
    assert!(events.iter().all(|e| e.kind == LeaseEventKind::Expired));
    assert!(send(&mut core, &Req::new(MessageType::Discover, MAC_B), later).is_some());
}

#[test]
fn known_clients_only_and_ignore() {
    let mut core = Core::new(
        settings_with(|d| {
            d.subnets[0].known_clients_only = true;
            d.reservations[0].ignore = false;
        }),
        Vec::new(),
    );
    assert!(send(&mut core, &Req::new(MessageType::Discover, MAC_A), t0()).is_none());
    assert!(
        send(
            &mut core,
            &Req::new(MessageType::Discover, RESERVED_MAC),
            t0()
        )
        .is_some()
    );

    let mut core = Core::new(
        settings_with(|d| d.reservations[0].ignore = true),
        Vec::new(),
    );
    let pxe = Req::new(MessageType::Discover, RESERVED_MAC).opt(60, b"PXEClient");
    assert!(send(&mut core, &pxe, t0()).is_none());
    assert!(
        send(
            &mut core,
            &Req::new(MessageType::Request, RESERVED_MAC).requested(Ipv4Addr::new(10, 99, 0, 10)),
            t0()
        )
        .is_none()
    );
}

fn opt(code: u8, data: &[u8]) -> DhcpOptionValue {
    DhcpOptionValue {
        code,
        data: data.to_vec(),
    }
}

#[test]
fn configured_options_layer_global_subnet_class_reservation() {
    let settings = settings_with(|d| {
        d.options = vec![
            opt(42, &[1, 1, 1, 1]),
            opt(150, &[9, 9, 9, 9]),
            opt(66, b"global"),
        ];
        d.subnets[0].options = vec![opt(42, &[2, 2, 2, 2])];
        d.classes = vec![DhcpClass {
            name: "cisco".into(),
            vendor_class: "ciscopnp".into(),
            options: vec![
                opt(150, &[10, 99, 0, 1]),
                opt(43, b"5A1N;B2;K4;I10.99.0.1;J80"),
            ],
        }];
        d.reservations[0].options = vec![opt(42, &[3, 3, 3, 3])];
    });
    let mut core = Core::new(settings, Vec::new());
    let m = decode(&transmit(send(
        &mut core,
        &Req::new(MessageType::Discover, MAC_A),
        t0(),
    )));
    assert_eq!(m.raw(42), Some(&[2, 2, 2, 2][..]), "subnet beats global");
    assert_eq!(m.raw(150), Some(&[9, 9, 9, 9][..]));
    assert_eq!(m.raw(43), None, "class options only for the class");
    let switch = Req::new(MessageType::Discover, MAC_B).opt(60, b"ciscopnp");
    let m = decode(&transmit(send(&mut core, &switch, t0())));
    assert_eq!(m.raw(150), Some(&[10, 99, 0, 1][..]), "class beats global");
    assert_eq!(m.raw(43), Some(&b"5A1N;B2;K4;I10.99.0.1;J80"[..]));
    assert_eq!(m.raw(66), Some(&b"global"[..]));
    let m = decode(&transmit(send(
        &mut core,
        &Req::new(MessageType::Discover, RESERVED_MAC),
        t0(),
    )));
    assert_eq!(m.raw(42), Some(&[3, 3, 3, 3][..]), "reservation beats all");
}

#[test]
fn options_follow_the_parameter_request_list_order() {
    let mut core = core();
    let req = Req::new(MessageType::Discover, MAC_A).opt(55, &[15, 6, 3, 1]);
    let t = transmit(send(&mut core, &req, t0()));
    let m = decode(&t);
    let order: Vec<u8> = m.options().iter().map(|o| o.code).collect();
    assert_eq!(&order[..6], &[53, 54, 15, 6, 3, 1], "{order:?}");
}

#[test]
fn a_ping_probe_runs_before_a_fresh_address_is_offered() {
    let mut core = Core::new(settings_with(|d| d.ping_check = true), Vec::new());
    let Some(Action::Probe {
        id,
        address,
        ifindex,
    }) = send(&mut core, &Req::new(MessageType::Discover, MAC_A), t0())
    else {
        panic!("a fresh address is probed first")
    };
    assert_eq!((address, ifindex), (Ipv4Addr::new(10, 99, 0, 100), 7));
    // A retransmitted DISCOVER while the probe runs is answered by the probe's outcome.
    assert!(send(&mut core, &Req::new(MessageType::Discover, MAC_A), t0()).is_none());
    // Another client is not given the address being probed.
    let Some(Action::Probe {
        id: other,
        address: b,
        ..
    }) = send(&mut core, &Req::new(MessageType::Discover, MAC_B), t0())
    else {
        panic!()
    };
    assert_ne!(b, address);
    // Something answers: the address is set aside durably and another is probed.
    let actions = core.probe_finished(id, true, t0());
    let [
        Action::Commit {
            records,
            then: None,
            ..
        },
        Action::Probe {
            id: second,
            address: next,
            ..
        },
    ] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!(records[0].address, address);
    assert_eq!(
        records[0].state,
        LeaseState::Abandoned(AbandonReason::InUse)
    );
    assert_ne!(*next, address);
    assert_ne!(*next, b);
    // Silence: the offer goes out.
    let actions = core.probe_finished(*second, false, t0());
    let [Action::Send(t)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(decode(t).yiaddr(), *next);
    // A client's own earlier address and a reservation are not probed.
    let _ = core.probe_finished(other, false, t0());
    let a = decode(t).yiaddr();
    let ack = send(
        &mut core,
        &Req::new(MessageType::Request, MAC_A)
            .requested(a)
            .server_id(SERVER),
        t0(),
    );
    assert!(matches!(ack, Some(Action::Commit { .. })));
    assert!(matches!(
        send(&mut core, &Req::new(MessageType::Discover, MAC_A), t0()),
        Some(Action::Send(_))
    ));
    assert!(matches!(
        send(
            &mut core,
            &Req::new(MessageType::Discover, RESERVED_MAC),
            t0()
        ),
        Some(Action::Send(_))
    ));
    // An unknown probe id does nothing.
    assert!(core.probe_finished(ProbeId(999), true, t0()).is_empty());
}

#[test]
fn malformed_and_foreign_datagrams_are_dropped() {
    let mut core = core();
    let interface = interface();
    let mut reply_op = Req::new(MessageType::Discover, MAC_A).bytes();
    reply_op[0] = 2;
    let mut no_type = Req::new(MessageType::Discover, MAC_A).bytes();
    no_type[HEADER_LEN + 4] = 0; // option 53 becomes a pad, its length and value stray bytes
    for bytes in [
        Vec::new(),
        vec![1; 100],
        reply_op,
        Req::new(MessageType::Offer, MAC_A).bytes(),
    ] {
        let d = Datagram {
            bytes: &bytes,
            source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            destination: Ipv4Addr::BROADCAST,
            interface: &interface,
            port: 67,
        };
        assert!(core.handle(&d, t0()).is_none());
    }
}

#[test]
fn an_interface_outside_every_subnet_is_not_served() {
    let mut core = core();
    let elsewhere = Interface {
        index: 9,
        name: "wan".into(),
        addresses: vec![Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 2), 24).unwrap()],
    };
    let bytes = Req::new(MessageType::Discover, MAC_A).bytes();
    let d = Datagram {
        bytes: &bytes,
        source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        destination: Ipv4Addr::BROADCAST,
        interface: &elsewhere,
        port: 67,
    };
    assert!(core.handle(&d, t0()).is_none());
}

// --- Boot policy through the core -------------------------------------------------------

fn pxe_discover(mac: [u8; 6], arch: u16) -> Req {
    Req::new(MessageType::Discover, mac)
        .opt(
            60,
            format!("PXEClient:Arch:{arch:05}:UNDI:003010").as_bytes(),
        )
        .opt(93, &arch.to_be_bytes())
        .opt(97, &[0; 17])
}

#[test]
fn server_mode_boot_options_by_client_kind() {
    let mut core = core();
    let bios = decode(&transmit(send(&mut core, &pxe_discover(MAC_A, 0), t0())));
    assert_eq!(bios.siaddr(), SERVER);
    assert_eq!(bios.file(), Some(&b"undionly.kpxe"[..]));
    assert_eq!(bios.raw(67), Some(&b"undionly.kpxe"[..]));
    assert_eq!(bios.raw(66), Some(&b"10.99.0.1"[..]));
    assert_eq!(bios.raw(60), Some(&b"PXEClient"[..]));
    assert_eq!(bios.raw(43), Some(&codec::pxe::skip_discovery()[..]));
    assert_eq!(bios.raw(97), Some(&[0; 17][..]));
    let uefi = decode(&transmit(send(&mut core, &pxe_discover(MAC_B, 7), t0())));
    assert_eq!(uefi.file(), Some(&b"ipxe.efi"[..]));
    let ipxe = Req::new(MessageType::Discover, [2, 0, 0, 0, 0, 9])
        .opt(77, b"iPXE")
        .opt(93, &[0, 0]);
    let m = decode(&transmit(send(&mut core, &ipxe, t0())));
    assert_eq!(m.file(), Some(&b"boot.ipxe"[..]));
    assert_eq!(
        m.raw(60),
        None,
        "iPXE without a PXE vendor class gets no option 60"
    );
    assert_eq!(m.raw(97), None, "option 97 only when sent");
    let plain = decode(&transmit(send(
        &mut core,
        &Req::new(MessageType::Discover, [2, 0, 0, 0, 0, 8]),
        t0(),
    )));
    assert_eq!(plain.file(), None);
    assert_eq!(plain.siaddr(), Ipv4Addr::UNSPECIFIED);
    for code in [43, 60, 66, 67, 97] {
        assert_eq!(
            plain.raw(code),
            None,
            "no boot option {code} for a non-PXE client"
        );
    }
}

#[test]
fn advertise_overrides_next_server() {
    let mut core = Core::new(
        settings_with(|d| d.advertise = Some(Ipv4Addr::new(10, 99, 0, 9))),
        Vec::new(),
    );
    let m = decode(&transmit(send(&mut core, &pxe_discover(MAC_A, 0), t0())));
    assert_eq!(m.siaddr(), Ipv4Addr::new(10, 99, 0, 9));
    assert_eq!(m.raw(66), Some(&b"10.99.0.9"[..]));
    assert_eq!(m.server_id(), Some(SERVER));
}

fn proxy_core(edit: impl FnOnce(&mut DhcpConfig)) -> Core {
    Core::new(
        settings_with(|d| {
            d.mode = kindling_config::DhcpMode::Proxy;
            edit(d);
        }),
        Vec::new(),
    )
}

#[test]
fn proxy_mode_answers_pxe_clients_with_boot_information_only() {
    let mut core = proxy_core(|_| {});
    let t = transmit(send(&mut core, &pxe_discover(MAC_A, 0), t0()));
    let m = decode(&t);
    assert_eq!(m.message_type(), Some(MessageType::Offer));
    assert_eq!(
        m.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "a proxy never hands out an address"
    );
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(m.file(), Some(&b"undionly.kpxe"[..]));
    assert_eq!(m.raw(60), Some(&b"PXEClient"[..]));
    assert_eq!(
        m.raw(43),
        Some(&codec::pxe::skip_discovery()[..]),
        "BIOS skips discovery"
    );
    for code in [1, 3, 6, 51] {
        assert_eq!(
            m.raw(code),
            None,
            "option {code} belongs to the real DHCP server"
        );
    }
    assert_eq!(t.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert!(core.leases().is_empty());
    // UEFI PXE gets no option 43, so it asks the boot server on port 4011.
    let m = decode(&transmit(send(&mut core, &pxe_discover(MAC_B, 7), t0())));
    assert_eq!(m.raw(43), None);
    assert_eq!(m.file(), Some(&b"ipxe.efi"[..]));
    // Non-PXE clients and other message types get nothing.
    assert!(
        send(
            &mut core,
            &Req::new(MessageType::Discover, [2, 0, 0, 0, 0, 3]),
            t0()
        )
        .is_none()
    );
    assert!(
        send(
            &mut core,
            &Req::new(MessageType::Request, MAC_A)
                .requested(Ipv4Addr::new(10, 99, 0, 150))
                .server_id(Ipv4Addr::new(10, 99, 0, 254)),
            t0()
        )
        .is_none()
    );
}

#[test]
fn the_boot_server_on_port_4011_acks_with_the_file() {
    let mut core = proxy_core(|_| {});
    let client = Ipv4Addr::new(10, 99, 0, 150);
    let mut req = Req::new(MessageType::Request, MAC_B)
        .opt(60, b"PXEClient:Arch:00007:UNDI:003016")
        .opt(93, &[0, 7])
        .ciaddr(client, true);
    req.port = BOOT_SERVER_PORT;
    req.source = SocketAddrV4::new(client, 4011);
    let t = transmit(send(&mut core, &req, t0()));
    let m = decode(&t);
    assert_eq!(m.message_type(), Some(MessageType::Ack));
    assert_eq!(m.file(), Some(&b"ipxe.efi"[..]));
    assert_eq!(m.raw(43), None);
    assert_eq!(
        t.to,
        SocketAddrV4::new(client, 4011),
        "answered where it came from"
    );
    assert_eq!(t.port, BOOT_SERVER_PORT);
}

#[test]
fn proxy_known_clients_only() {
    let mut core = proxy_core(|d| d.known_clients_only = true);
    assert!(send(&mut core, &pxe_discover(MAC_A, 0), t0()).is_none());
    let m = decode(&transmit(send(
        &mut core,
        &pxe_discover(RESERVED_MAC, 0),
        t0(),
    )));
    assert_eq!(m.file(), Some(&b"special.kpxe"[..]));
}

#[test]
fn a_reservation_without_an_address_names_a_known_client_with_a_pool_address() {
    let config = CONFIG.replace(
        "  reservations:\n",
        "  reservations:\n    - { mac: \"52:54:00:00:00:20\", hostname: node20, boot: { bios: n20.kpxe } }\n",
    );
    let (mut dhcp, boot) = dhcp_config(&config);
    dhcp.ping_check = false;
    dhcp.subnets[0].known_clients_only = true;
    let mac = [0x52, 0x54, 0, 0, 0, 0x20];
    let mut core = Core::new(
        Settings::new(&dhcp, &boot, Environment::default()),
        Vec::new(),
    );
    // An unreserved client gets nothing on a known-clients-only subnet...
    assert!(send(&mut core, &pxe_discover(MAC_A, 0), t0()).is_none());
    // ...the address-less reservation is known: a pool address, its name and its boot file.
    let m = decode(&transmit(send(&mut core, &pxe_discover(mac, 0), t0())));
    assert!(
        (100..=103).contains(&m.yiaddr().octets()[3]),
        "{}",
        m.yiaddr()
    );
    assert_eq!(m.raw(12), Some(&b"node20"[..]));
    assert_eq!(m.file(), Some(&b"n20.kpxe"[..]));
    // In proxy mode it is a known client too.
    dhcp.mode = kindling_config::DhcpMode::Proxy;
    dhcp.known_clients_only = true;
    let mut core = Core::new(
        Settings::new(&dhcp, &boot, Environment::default()),
        Vec::new(),
    );
    assert!(send(&mut core, &pxe_discover(MAC_A, 0), t0()).is_none());
    let m = decode(&transmit(send(&mut core, &pxe_discover(mac, 0), t0())));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.file(), Some(&b"n20.kpxe"[..]));
}

#[test]
fn dns_defaults_to_this_box_when_dns_is_served() {
    let (mut dhcp, boot) = dhcp_config(CONFIG);
    dhcp.ping_check = false;
    dhcp.subnets[0].dns = None;
    dhcp.subnets[0].domain = None;
    let env = Environment {
        dns_domain: Some("home.arpa".into()),
    };
    let mut core = Core::new(Settings::new(&dhcp, &boot, env), Vec::new());
    let m = decode(&transmit(send(
        &mut core,
        &Req::new(MessageType::Discover, MAC_A),
        t0(),
    )));
    assert_eq!(m.raw(6), Some(&SERVER.octets()[..]));
    assert_eq!(m.raw(15), Some(&b"home.arpa"[..]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_in_no_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700), port in prop_oneof![Just(67u16), Just(4011u16)]) {
        let mut core = Core::new(settings_with(|d| d.ping_check = true), Vec::new());
        let interface = interface();
        let d = Datagram {
            bytes: &bytes,
            source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            destination: Ipv4Addr::BROADCAST,
            interface: &interface,
            port,
        };
        let _ = core.handle(&d, t0());
    }

    #[test]
    fn mutated_requests_never_panic(
        seed in 0usize..6,
        flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
    ) {
        let base = [
            pxe_discover(MAC_A, 7),
            Req::new(MessageType::Request, MAC_A).requested(Ipv4Addr::new(10, 99, 0, 100)).server_id(SERVER),
            Req::new(MessageType::Release, MAC_A).ciaddr(Ipv4Addr::new(10, 99, 0, 100), true),
            Req::new(MessageType::Decline, MAC_A).requested(Ipv4Addr::new(10, 99, 0, 100)),
            Req::new(MessageType::Inform, MAC_A).ciaddr(Ipv4Addr::new(10, 99, 0, 7), true),
            Req::new(MessageType::Request, MAC_A).opt(81, &[4, 0, 0, 200, 1]),
        ][seed].clone();
        let mut bytes = base.bytes();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        let mut core = core();
        dora(&mut core, MAC_A, t0());
        let interface = interface();
        let d = Datagram {
            bytes: &bytes,
            source: base.source,
            destination: base.destination,
            interface: &interface,
            port: base.port,
        };
        let _ = core.handle(&d, t0());
    }

    /// Every OFFER and ACK carries what the boot policy promises for the client's kind.
    #[test]
    fn offers_and_acks_carry_the_promised_boot_options(
        arch in prop_oneof![Just(0u16), Just(7), Just(9), Just(11)],
        ipxe in any::<bool>(),
        proxy in any::<bool>(),
        uuid in any::<bool>(),
    ) {
        let (mut dhcp, mut boot) = dhcp_config(CONFIG);
        dhcp.ping_check = false;
        boot.uefi_arm64 = Some("ipxe-arm64.efi".into());
        if proxy {
            dhcp.mode = kindling_config::DhcpMode::Proxy;
        }
        let mut core = Core::new(Settings::new(&dhcp, &boot, Environment::default()), Vec::new());
        let mut req = pxe_discover(MAC_A, arch);
        req.options.retain(|(c, _)| *c != 97 || uuid);
        if ipxe {
            req = req.opt(77, b"iPXE");
        }
        let expected: &[u8] = match (ipxe, arch) {
            (true, _) => b"boot.ipxe",
            (false, 0) => b"undionly.kpxe",
            (false, 7 | 9) => b"ipxe.efi",
            _ => b"ipxe-arm64.efi",
        };
        let mut replies = vec![decode(&transmit(send(&mut core, &req, t0())))];
        if !proxy {
            let a = replies[0].yiaddr();
            let mut request = req.clone();
            request.message_type = u8::from(MessageType::Request);
            let request = request.requested(a).server_id(SERVER);
            replies.push(decode(&transmit(send(&mut core, &request, t0()))));
        }
        for m in replies {
            prop_assert_eq!(m.file(), Some(expected));
            prop_assert_eq!(m.raw(67), Some(expected));
            prop_assert_eq!(m.siaddr(), SERVER);
            prop_assert_eq!(m.raw(60), Some(&b"PXEClient"[..]));
            prop_assert_eq!(m.raw(97).is_some(), uuid);
            let wants_43 = !ipxe && (arch == 0 || !proxy);
            prop_assert_eq!(m.raw(43).is_some(), wants_43);
        }
    }
}

#[test]
fn our_own_coexistence_probe_is_never_answered() {
    let mut core = core();
    let mut req = Req::new(MessageType::Discover, coexist::PROBE_MAC.0).opt(60, b"PXEClient");
    req.broadcast = true;
    assert!(send(&mut core, &req, t0()).is_none());
    let mut proxy = proxy_core(|_| {});
    assert!(send(&mut proxy, &req, t0()).is_none());
}

/// The verdict of one request: what `Core::decide` says instead of only staying silent.
fn verdict(core: &mut Core, req: &Req, now: SystemTime) -> Verdict {
    let bytes = req.bytes();
    let interface = interface();
    core.decide(
        &Datagram {
            bytes: &bytes,
            source: req.source,
            destination: req.destination,
            interface: &interface,
            port: req.port,
        },
        now,
    )
}

fn silence(core: &mut Core, req: &Req, now: SystemTime) -> Silence {
    match verdict(core, req, now) {
        Err(silence) => silence,
        Ok(action) => panic!("expected silence, got {action:?}"),
    }
}

#[test]
fn every_silence_says_which_rule_kept_the_core_quiet() {
    let mut reply_op = Req::new(MessageType::Discover, MAC_A).bytes();
    reply_op[0] = 2;
    let interface = interface();
    let datagram = |bytes: &[u8]| -> Verdict {
        let mut core = core();
        core.decide(
            &Datagram {
                bytes,
                source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                destination: Ipv4Addr::BROADCAST,
                interface: &interface,
                port: SERVER_PORT,
            },
            t0(),
        )
    };
    assert!(matches!(datagram(&[1; 100]), Err(Silence::Malformed(_))));
    assert_eq!(datagram(&reply_op), Err(Silence::NotARequest));
    let mut core = core();
    assert_eq!(
        silence(&mut core, &Req::new(MessageType::Offer, MAC_A), t0()),
        Silence::NotAClientMessage(MessageType::Offer)
    );
    assert_eq!(
        silence(
            &mut core,
            &Req::new(MessageType::Discover, coexist::PROBE_MAC.0),
            t0()
        ),
        Silence::OwnProbe
    );

    // RFC 2131 4.3.2: INIT-REBOOT from a client with no record gets silence, not a NAK.
    assert_eq!(
        silence(
            &mut core,
            &Req::new(MessageType::Request, MAC_A).requested(Ipv4Addr::new(10, 99, 0, 101)),
            t0()
        ),
        Silence::UnknownClient {
            state: "INIT-REBOOT"
        }
    );
    assert_eq!(
        silence(
            &mut core,
            &Req::new(MessageType::Request, MAC_A).server_id(Ipv4Addr::new(10, 99, 0, 254)),
            t0()
        ),
        Silence::OtherServerChosen(Ipv4Addr::new(10, 99, 0, 254))
    );
    assert_eq!(
        silence(
            &mut core,
            &Req::new(MessageType::Request, MAC_A).server_id(SERVER),
            t0()
        ),
        Silence::NoRequestedAddress
    );
    let stranger = Ipv4Addr::new(10, 99, 0, 102);
    assert_eq!(
        silence(
            &mut core,
            &Req::new(MessageType::Release, MAC_A).ciaddr(stranger, true),
            t0()
        ),
        Silence::NotHeld(MessageType::Release, stranger)
    );
    let leased = dora(&mut core, MAC_A, t0());
    assert_eq!(
        silence(
            &mut core,
            &Req::new(MessageType::Release, MAC_B).ciaddr(leased, true),
            t0()
        ),
        Silence::NotHeld(MessageType::Release, leased),
        "another client cannot release a lease"
    );

    // Four addresses in the range: fill them, and the fifth client hears why it got nothing.
    for i in 0..3u8 {
        dora(&mut core, [2, 0, 0, 0, 1, i], t0());
    }
    let Silence::PoolExhausted {
        subnet,
        first,
        last,
    } = silence(&mut core, &Req::new(MessageType::Discover, MAC_B), t0())
    else {
        panic!("expected an exhausted pool");
    };
    assert_eq!(
        (subnet.index, first, last),
        (
            0,
            Ipv4Addr::new(10, 99, 0, 100),
            Ipv4Addr::new(10, 99, 0, 103)
        )
    );

    let mut known_only = Core::new(
        settings_with(|d| d.subnets[0].known_clients_only = true),
        Vec::new(),
    );
    assert!(matches!(
        silence(
            &mut known_only,
            &Req::new(MessageType::Discover, MAC_A),
            t0()
        ),
        Silence::KnownClientsOnly(Some(SubnetName { index: 0, .. }))
    ));
    let mut ignoring = Core::new(
        settings_with(|d| d.reservations[0].ignore = true),
        Vec::new(),
    );
    assert_eq!(
        silence(
            &mut ignoring,
            &Req::new(MessageType::Discover, RESERVED_MAC),
            t0()
        ),
        Silence::Ignored
    );
}

#[test]
fn proxy_silences_name_the_boot_decision() {
    let mut core = proxy_core(|_| {});
    // A plain DHCP client (no PXE vendor class) is the router's business.
    let Silence::NoBootFile(decision) =
        silence(&mut core, &Req::new(MessageType::Discover, MAC_A), t0())
    else {
        panic!("expected no boot file");
    };
    assert!(matches!(
        *decision,
        crate::policy::BootDecision::NotNetboot { .. }
    ));
    assert!(
        Silence::NoBootFile(decision)
            .to_string()
            .starts_with("not a netboot client"),
    );
    assert_eq!(
        silence(&mut core, &Req::new(MessageType::Release, MAC_A), t0()),
        Silence::NotForProxy(MessageType::Release)
    );
    let mut known_only = proxy_core(|d| d.known_clients_only = true);
    assert_eq!(
        silence(&mut known_only, &pxe_discover(MAC_A, 0), t0()),
        Silence::KnownClientsOnly(None)
    );
}
