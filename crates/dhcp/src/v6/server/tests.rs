//! The DHCPv6 core's rules, each tested on its own, on made-up datagrams and a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;
use crate::v6::codec::{CodecError, MAX_RELAY_DEPTH, Options, class_items, emit_option};

const SERVER_DUID: &[u8] = &[0, 4, 0xaa, 0xbb, 0xcc, 0xdd];
const ULA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn settings() -> Settings {
    Settings {
        subnets: vec![Subnet {
            index: 0,
            network: "fd00:99::/64".parse().unwrap(),
            first: "fd00:99::100".parse().unwrap(),
            last: "fd00:99::1ff".parse().unwrap(),
            dns: None,
            domain: None,
        }],
        server_duid: SERVER_DUID.to_vec(),
        preference: 255,
        lease_time: Duration::from_secs(3600),
        rapid_commit: true,
        boot: BootConfig {
            bios: Some("undionly.kpxe".into()),
            uefi_x64: Some("ipxe.efi".into()),
            uefi_arm64: None,
            ipxe: Some("boot.ipxe".into()),
            ..BootConfig::default()
        },
        vendor_classes: VendorClasses::default(),
        dns_domain: None,
        http_port: None,
        reservations: Vec::new(),
    }
}

fn core() -> Core {
    Core::new(settings(), Vec::new())
}

fn interface() -> Interface {
    Interface {
        index: 7,
        name: "lab0".into(),
        addresses: vec![Ipv6Net::new(ULA, 64).unwrap()],
    }
}

/// A client's link-local address made from its MAC.
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    eui64_link_local(MacAddr(mac))
}

/// DUID-UUID (type 4), as EDK2 and iPXE send: no MAC inside.
fn duid_uuid(n: u8) -> Vec<u8> {
    let mut duid = vec![0, 4];
    duid.extend_from_slice(&[n; 16]);
    duid
}

/// A client message, built option by option.
#[derive(Clone)]
struct Msg {
    message: Message,
    source: SocketAddrV6,
}

impl Msg {
    fn new(kind: MessageType, duid: &[u8]) -> Msg {
        let mut message = Message::new(kind, [0x12, 0x34, 0x56]);
        message.options.push(code::CLIENT_ID, duid.to_vec());
        Msg {
            message,
            source: SocketAddrV6::new(link_local(CLIENT_MAC), CLIENT_PORT, 0, 7),
        }
    }

    fn opt(mut self, code: u16, data: Vec<u8>) -> Msg {
        self.message.options.push(code, data);
        self
    }

    fn ia(self, iaid: u32, addresses: &[Ipv6Addr]) -> Msg {
        let ia = IaNa {
            iaid,
            t1: 0,
            t2: 0,
            addresses: addresses
                .iter()
                .map(|a| IaAddress {
                    address: *a,
                    preferred: 0,
                    valid: 0,
                })
                .collect(),
            status: None,
        };
        self.opt(code::IA_NA, ia.emit())
    }

    fn ours(self) -> Msg {
        self.opt(code::SERVER_ID, SERVER_DUID.to_vec())
    }

    fn oro(self, codes: &[u16]) -> Msg {
        let data = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.opt(code::ORO, data)
    }

    fn ipxe(self) -> Msg {
        self.opt(code::USER_CLASS, class_data(&[b"iPXE"]))
    }

    fn edk2_pxe(self) -> Msg {
        let mut vendor = PXE_ENTERPRISE.to_be_bytes().to_vec();
        vendor.extend(class_data(&[b"PXEClient:Arch:00007:UNDI:003000"]));
        self.opt(code::CLIENT_ARCH, 7u16.to_be_bytes().to_vec())
            .opt(code::VENDOR_CLASS, vendor)
            .oro(&[59, 60, 23, 16])
    }
}

fn decide_from(core: &mut Core, bytes: &[u8], source: SocketAddrV6, now: SystemTime) -> Verdict {
    let interface = interface();
    core.decide(
        &Datagram {
            bytes,
            source,
            interface: &interface,
        },
        now,
    )
}

fn verdict(core: &mut Core, msg: &Msg, now: SystemTime) -> Verdict {
    decide_from(core, &msg.message.emit(), msg.source, now)
}

/// Raw bytes from a client on the link.
fn decide_raw(core: &mut Core, bytes: &[u8]) -> Verdict {
    let source = SocketAddrV6::new(link_local(CLIENT_MAC), CLIENT_PORT, 0, 7);
    decide_from(core, bytes, source, t0())
}

fn reply_of(action: Action) -> (Message, Transmit) {
    let transmit = match action {
        Action::Send(t) | Action::Commit { then: t, .. } => t,
    };
    (Message::parse(&transmit.bytes).unwrap(), transmit)
}

fn send(core: &mut Core, msg: &Msg, now: SystemTime) -> Message {
    reply_of(verdict(core, msg, now).expect("a reply")).0
}

fn silence(core: &mut Core, msg: &Msg, now: SystemTime) -> Silence {
    match verdict(core, msg, now) {
        Err(silence) => silence,
        Ok(action) => panic!("expected silence, got {action:?}"),
    }
}

fn address_of(reply: &Message) -> Ipv6Addr {
    reply.ia_nas()[0].addresses[0].address
}

fn status_of(options: &Options) -> Option<u16> {
    options
        .get(code::STATUS_CODE)
        .map(|d| u16::from_be_bytes([d[0], d[1]]))
}

fn ia_status(reply: &Message) -> Option<u16> {
    let data = reply.options.get(code::IA_NA)?;
    status_of(&Options::parse(&data[12..], 0).unwrap())
}

/// SOLICIT, ADVERTISE, REQUEST, REPLY: the client's address, committed.
fn lease(core: &mut Core, duid: &[u8], now: SystemTime) -> Ipv6Addr {
    let advertise = send(core, &Msg::new(MessageType::Solicit, duid).ia(1, &[]), now);
    let address = address_of(&advertise);
    let request = Msg::new(MessageType::Request, duid)
        .ours()
        .ia(1, &[address]);
    match verdict(core, &request, now).unwrap() {
        Action::Commit { records, .. } => assert_eq!(records[0].address, address),
        other => panic!("expected a commit, got {other:?}"),
    }
    address
}

#[test]
fn solicit_gets_an_advertise_with_preference_and_keeps_no_state() {
    let mut core = core();
    let msg = Msg::new(MessageType::Solicit, &duid_uuid(1)).ia(9, &[]);
    let Ok(Action::Send(transmit)) = verdict(&mut core, &msg, t0()) else {
        panic!("an ADVERTISE is sent, nothing committed");
    };
    let advertise = Message::parse(&transmit.bytes).unwrap();
    assert_eq!(advertise.message_type, MessageType::Advertise);
    assert_eq!(advertise.transaction_id, [0x12, 0x34, 0x56]);
    assert_eq!(advertise.client_id(), Some(&duid_uuid(1)[..]));
    assert_eq!(advertise.server_id(), Some(SERVER_DUID));
    assert_eq!(advertise.options.get(code::PREFERENCE), Some(&[255u8][..]));
    let ia = &advertise.ia_nas()[0];
    assert_eq!(ia.iaid, 9);
    assert!(settings().subnets[0].in_range(ia.addresses[0].address));
    assert_eq!(
        (ia.t1, ia.t2),
        (1800, 2880),
        "T1 0.5 and T2 0.8 of the lifetime"
    );
    assert_eq!(ia.addresses[0].valid, 3600);
    // Back to the client's link-local address and port, on its interface.
    assert_eq!(transmit.to.ip(), &link_local(CLIENT_MAC));
    assert_eq!(
        (transmit.to.port(), transmit.to.scope_id()),
        (CLIENT_PORT, 7)
    );

    // A flood of SOLICITs from random DUIDs leaves no trace.
    for n in 0..1000u32 {
        let duid = [&[0u8, 4][..], &n.to_be_bytes(), &[0; 12]].concat();
        let msg = Msg::new(MessageType::Solicit, &duid).ia(1, &[]);
        assert!(matches!(
            verdict(&mut core, &msg, t0()),
            Ok(Action::Send(_))
        ));
    }
    assert!(core.leases().is_empty());
}

#[test]
fn the_request_gets_the_advertised_address_durable_before_the_reply() {
    let mut core = core();
    let duid = duid_uuid(2);
    let advertise = send(
        &mut core,
        &Msg::new(MessageType::Solicit, &duid).ia(1, &[]),
        t0(),
    );
    let advertised = address_of(&advertise);
    let request = Msg::new(MessageType::Request, &duid).ours().ia(1, &[]);
    let Ok(Action::Commit {
        records,
        then,
        events,
    }) = verdict(&mut core, &request, t0())
    else {
        panic!("a REQUEST commits its lease");
    };
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].address, advertised,
        "the same address as advertised"
    );
    assert_eq!(records[0].expires_at, t0() + Duration::from_secs(3600));
    assert_eq!(
        events.len(),
        1,
        "the MAC is known from the EUI-64 source address"
    );
    assert_eq!(events[0].kind, LeaseEventKind::Granted);
    assert_eq!(events[0].address, std::net::IpAddr::V6(advertised));
    let reply = Message::parse(&then.bytes).unwrap();
    assert_eq!(reply.message_type, MessageType::Reply);
    assert_eq!(address_of(&reply), advertised);
    // Another client is never offered it.
    let other = send(
        &mut core,
        &Msg::new(MessageType::Solicit, &duid_uuid(3)).ia(1, &[]),
        t0(),
    );
    assert_ne!(address_of(&other), advertised);
}

#[test]
fn the_mac_comes_from_the_duid_the_link_local_address_or_the_relay() {
    assert_eq!(
        mac_of_duid(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]),
        Some(MacAddr([1, 2, 3, 4, 5, 6]))
    );
    assert_eq!(
        mac_of_duid(&[0, 1, 0, 1, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6]),
        Some(MacAddr([1, 2, 3, 4, 5, 6]))
    );
    assert_eq!(mac_of_duid(&duid_uuid(1)), None);
    assert_eq!(
        mac_of_eui64(link_local(CLIENT_MAC)),
        Some(MacAddr(CLIENT_MAC))
    );
    assert_eq!(mac_of_eui64("fe80::1".parse().unwrap()), None);
    assert_eq!(mac_of_eui64(ULA), None, "only link-local addresses");

    // A DUID-UUID client on the link: the MAC from its EUI-64 source, and a lease event.
    let mut core = core();
    lease(&mut core, &duid_uuid(4), t0());
    let renew = Msg::new(MessageType::Renew, &duid_uuid(4))
        .ours()
        .ia(1, &[core.leases()[0].address]);
    let Ok(Action::Commit {
        records, events, ..
    }) = verdict(&mut core, &renew, t0())
    else {
        panic!("a RENEW commits");
    };
    assert_eq!(records[0].mac, Some(MacAddr(CLIENT_MAC)));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, LeaseEventKind::Renewed);
    assert_eq!(events[0].mac, MacAddr(CLIENT_MAC));
}

#[test]
fn server_identifier_rules_of_rfc_8415_section_16() {
    let mut core = core();
    let duid = duid_uuid(5);
    assert_eq!(
        silence(
            &mut core,
            &Msg::new(MessageType::Solicit, &duid).ours().ia(1, &[]),
            t0()
        ),
        Silence::UnexpectedServerId(MessageType::Solicit)
    );
    assert_eq!(
        silence(
            &mut core,
            &Msg::new(MessageType::Request, &duid).ia(1, &[]),
            t0()
        ),
        Silence::NoServerId(MessageType::Request)
    );
    let other = Msg::new(MessageType::Request, &duid)
        .opt(code::SERVER_ID, vec![0, 4, 1, 1, 1, 1])
        .ia(1, &[]);
    assert_eq!(
        silence(&mut core, &other, t0()),
        Silence::OtherServer(MessageType::Request)
    );
    let no_client = Msg {
        message: Message::new(MessageType::Solicit, [1, 2, 3]),
        source: SocketAddrV6::new(link_local(CLIENT_MAC), CLIENT_PORT, 0, 7),
    };
    assert_eq!(
        silence(&mut core, &no_client, t0()),
        Silence::NoClientId(MessageType::Solicit)
    );
    let advertise = Msg::new(MessageType::Advertise, &duid);
    assert_eq!(
        silence(&mut core, &advertise, t0()),
        Silence::NotAClientMessage(MessageType::Advertise)
    );
    assert!(core.leases().is_empty());
}

#[test]
fn rapid_commit_commits_at_solicit_when_asked_and_allowed() {
    let mut core = core();
    let msg = Msg::new(MessageType::Solicit, &duid_uuid(6))
        .opt(code::RAPID_COMMIT, Vec::new())
        .ia(1, &[]);
    let Ok(Action::Commit { records, then, .. }) = verdict(&mut core, &msg, t0()) else {
        panic!("Rapid Commit commits");
    };
    let reply = Message::parse(&then.bytes).unwrap();
    assert_eq!(reply.message_type, MessageType::Reply);
    assert!(reply.has(code::RAPID_COMMIT));
    assert_eq!(address_of(&reply), records[0].address);

    let mut settings = settings();
    settings.rapid_commit = false;
    let mut core = Core::new(settings, Vec::new());
    let advertise = send(&mut core, &msg, t0());
    assert_eq!(advertise.message_type, MessageType::Advertise);
    assert!(!advertise.has(code::RAPID_COMMIT));
}

#[test]
fn renew_extends_a_binding_and_answers_no_binding_otherwise() {
    let mut core = core();
    let duid = duid_uuid(7);
    let address = lease(&mut core, &duid, t0());
    let later = t0() + Duration::from_secs(1800);
    let renew = Msg::new(MessageType::Renew, &duid).ours().ia(1, &[address]);
    let Ok(Action::Commit { records, .. }) = verdict(&mut core, &renew, later) else {
        panic!("a RENEW of a binding commits");
    };
    assert_eq!(records[0].expires_at, later + Duration::from_secs(3600));
    let stranger = Msg::new(MessageType::Renew, &duid_uuid(8))
        .ours()
        .ia(1, &[address]);
    let Ok(Action::Send(transmit)) = verdict(&mut core, &stranger, later) else {
        panic!("a RENEW without a binding is answered, not committed");
    };
    let reply = Message::parse(&transmit.bytes).unwrap();
    assert_eq!(ia_status(&reply), Some(Status::NoBinding as u16));
}

#[test]
fn rebind_of_an_address_off_this_link_gets_lifetimes_zero() {
    let mut core = core();
    let off_link: Ipv6Addr = "2001:db8::5".parse().unwrap();
    let rebind = Msg::new(MessageType::Rebind, &duid_uuid(9)).ia(1, &[off_link]);
    let reply = send(&mut core, &rebind, t0());
    let ia = &reply.ia_nas()[0];
    assert_eq!(ia.addresses[0].address, off_link);
    assert_eq!((ia.addresses[0].preferred, ia.addresses[0].valid), (0, 0));
    // A REBIND of a free address on the link, without a binding, gets it (after a restart
    // that lost nothing, or another server's lease).
    let on_link: Ipv6Addr = "fd00:99::150".parse().unwrap();
    let rebind = Msg::new(MessageType::Rebind, &duid_uuid(9)).ia(1, &[on_link]);
    let Ok(Action::Commit { records, .. }) = verdict(&mut core, &rebind, t0()) else {
        panic!("a REBIND of a free on-link address commits");
    };
    assert_eq!(records[0].address, on_link);
}

#[test]
fn release_frees_and_decline_sets_aside() {
    let mut core = core();
    let duid = duid_uuid(10);
    let address = lease(&mut core, &duid, t0());
    let release = Msg::new(MessageType::Release, &duid)
        .ours()
        .ia(1, &[address]);
    let Ok(Action::Commit { records, then, .. }) = verdict(&mut core, &release, t0()) else {
        panic!("a RELEASE commits");
    };
    assert_eq!(records[0].state, LeaseState::Released);
    let reply = Message::parse(&then.bytes).unwrap();
    assert_eq!(status_of(&reply.options), Some(Status::Success as u16));
    // Another client may now have it: its REQUEST for it is granted.
    let request = Msg::new(MessageType::Request, &duid_uuid(11))
        .ours()
        .ia(1, &[address]);
    assert_eq!(address_of(&send(&mut core, &request, t0())), address);

    let declined = lease(&mut core, &duid_uuid(12), t0());
    let decline = Msg::new(MessageType::Decline, &duid_uuid(12))
        .ours()
        .ia(1, &[declined]);
    let Ok(Action::Commit { records, .. }) = verdict(&mut core, &decline, t0()) else {
        panic!("a DECLINE commits");
    };
    assert!(matches!(records[0].state, LeaseState::Abandoned(_)));
    let request = Msg::new(MessageType::Request, &duid_uuid(13))
        .ours()
        .ia(1, &[declined]);
    assert_ne!(
        address_of(&send(&mut core, &request, t0())),
        declined,
        "a declined address is not given out again while it is set aside"
    );
    // Releasing what one does not hold: NoBinding, nothing committed.
    let wrong = Msg::new(MessageType::Release, &duid_uuid(14))
        .ours()
        .ia(1, &[address]);
    let Ok(Action::Send(transmit)) = verdict(&mut core, &wrong, t0()) else {
        panic!("nothing to commit");
    };
    assert_eq!(
        ia_status(&Message::parse(&transmit.bytes).unwrap()),
        Some(Status::NoBinding as u16)
    );
}

#[test]
fn confirm_says_whether_the_addresses_are_on_link() {
    let mut core = core();
    let on =
        Msg::new(MessageType::Confirm, &duid_uuid(15)).ia(1, &["fd00:99::123".parse().unwrap()]);
    assert_eq!(
        status_of(&send(&mut core, &on, t0()).options),
        Some(Status::Success as u16)
    );
    let off =
        Msg::new(MessageType::Confirm, &duid_uuid(15)).ia(1, &["2001:db8::1".parse().unwrap()]);
    assert_eq!(
        status_of(&send(&mut core, &off, t0()).options),
        Some(Status::NotOnLink as u16)
    );
    let empty = Msg::new(MessageType::Confirm, &duid_uuid(15)).ia(1, &[]);
    assert_eq!(silence(&mut core, &empty, t0()), Silence::NothingToConfirm);
}

#[test]
fn information_request_gets_options_without_an_address() {
    let mut settings = settings();
    settings.dns_domain = Some("lab.test".into());
    let mut core = Core::new(settings, Vec::new());
    let msg = Msg::new(MessageType::InformationRequest, &duid_uuid(16)).oro(&[23, 24]);
    let reply = send(&mut core, &msg, t0());
    assert!(reply.ia_nas().is_empty());
    assert_eq!(
        reply.options.get(code::DNS_SERVERS),
        Some(&ULA.octets()[..])
    );
    assert_eq!(
        reply.options.get(code::DOMAIN_LIST),
        Some(&b"\x03lab\x04test\x00"[..])
    );
    let with_ia = Msg::new(MessageType::InformationRequest, &duid_uuid(16)).ia(1, &[]);
    assert_eq!(
        silence(&mut core, &with_ia, t0()),
        Silence::IaInInformationRequest
    );
}

#[test]
fn two_ias_get_two_addresses_and_an_exhausted_pool_says_no_addrs_avail() {
    let mut settings = settings();
    settings.subnets[0].last = "fd00:99::101".parse().unwrap();
    let mut core = Core::new(settings, Vec::new());
    let two = Msg::new(MessageType::Request, &duid_uuid(17))
        .ours()
        .ia(1, &[])
        .ia(2, &[]);
    let Ok(Action::Commit { records, .. }) = verdict(&mut core, &two, t0()) else {
        panic!("two IAs commit");
    };
    assert_eq!(records.len(), 2);
    assert_ne!(records[0].address, records[1].address);
    let third = Msg::new(MessageType::Solicit, &duid_uuid(18)).ia(1, &[]);
    let advertise = send(&mut core, &third, t0());
    assert_eq!(ia_status(&advertise), Some(Status::NoAddrsAvail as u16));
    assert!(advertise.ia_nas()[0].addresses.is_empty());
}

#[test]
fn edk2_pxe_gets_the_uefi_file_by_url_and_no_option_16_or_60() {
    let mut core = core();
    let msg = Msg::new(MessageType::Solicit, &duid_uuid(19))
        .edk2_pxe()
        .ia(1, &[]);
    let advertise = send(&mut core, &msg, t0());
    assert_eq!(
        advertise.options.get(code::BOOTFILE_URL),
        Some(&b"tftp://[fd00:99::1]/ipxe.efi"[..]),
        "the ULA of the receiving interface, never link-local"
    );
    assert!(
        !advertise.has(code::VENDOR_CLASS),
        "PXEClient echoed sends EDK2 to port 4011"
    );
    assert!(
        !advertise.has(code::BOOTFILE_PARAM),
        "EDK2 reads option 60 as a file size"
    );
    // iPXE reads options only from the REPLY: it has the URL too.
    let request = Msg::new(MessageType::Request, &duid_uuid(19))
        .ours()
        .edk2_pxe()
        .ia(1, &[]);
    let reply = send(&mut core, &request, t0());
    assert!(reply.has(code::BOOTFILE_URL));
}

#[test]
fn ipxe_gets_its_script_and_a_bare_option_59_request_gets_the_uefi_file() {
    let mut core = core();
    let ipxe = Msg::new(MessageType::Solicit, &duid_uuid(20))
        .ipxe()
        .opt(code::CLIENT_ARCH, 7u16.to_be_bytes().to_vec())
        .oro(&[23, 24, 59, 60])
        .ia(1, &[]);
    assert_eq!(
        send(&mut core, &ipxe, t0()).options.get(code::BOOTFILE_URL),
        Some(&b"tftp://[fd00:99::1]/boot.ipxe"[..])
    );
    let bare = Msg::new(MessageType::Solicit, &duid_uuid(21))
        .oro(&[59])
        .ia(1, &[]);
    assert_eq!(
        send(&mut core, &bare, t0()).options.get(code::BOOTFILE_URL),
        Some(&b"tftp://[fd00:99::1]/ipxe.efi"[..])
    );
    let plain = Msg::new(MessageType::Solicit, &duid_uuid(22)).ia(1, &[]);
    assert!(
        !send(&mut core, &plain, t0()).has(code::BOOTFILE_URL),
        "a client that is not netbooting gets no boot file"
    );
}

/// RELAY-FORW(link, peer, interface-id, option 79, RELAY-MSG(message)).
fn relayed(msg: &Msg, link: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
    let mut out = vec![12, 0];
    out.extend_from_slice(&link.octets());
    out.extend_from_slice(&link_local(mac).octets());
    emit_option(&mut out, code::INTERFACE_ID, b"port7");
    let mut lla = 1u16.to_be_bytes().to_vec();
    lla.extend_from_slice(&mac);
    emit_option(&mut out, code::CLIENT_LINKLAYER_ADDR, &lla);
    emit_option(&mut out, code::RELAY_MSG, &msg.message.emit());
    out
}

#[test]
fn relayed_requests_use_the_relays_link_and_go_back_through_it() {
    let mut settings = settings();
    settings.subnets.push(Subnet {
        index: 1,
        network: "fd00:98::/64".parse().unwrap(),
        first: "fd00:98::10".parse().unwrap(),
        last: "fd00:98::20".parse().unwrap(),
        dns: None,
        domain: None,
    });
    let mut core = Core::new(settings, Vec::new());
    let relay = SocketAddrV6::new("fd00:98::1".parse().unwrap(), SERVER_PORT, 0, 0);
    let mac = [2, 0, 0, 0, 0, 0x42];
    let msg = Msg::new(MessageType::Request, &duid_uuid(23))
        .ours()
        .ia(1, &[]);
    let bytes = relayed(&msg, "fd00:98::1".parse().unwrap(), mac);
    let Ok(Action::Commit { records, then, .. }) = decide_from(&mut core, &bytes, relay, t0())
    else {
        panic!("a relayed REQUEST commits");
    };
    assert!(
        "fd00:98::/64"
            .parse::<Ipv6Net>()
            .unwrap()
            .contains(&records[0].address),
        "the relay's link chose the subnet"
    );
    assert_eq!(records[0].mac, Some(MacAddr(mac)), "the MAC from option 79");
    assert_eq!(then.to, relay, "the reply goes to the relay, port 547");
    let packet = Packet::parse(&then.bytes).unwrap();
    assert_eq!(packet.relays.len(), 1);
    assert_eq!(packet.relays[0].message_type, MessageType::RelayRepl);
    assert_eq!(packet.relays[0].interface_id(), Some(&b"port7"[..]));
    assert_eq!(packet.relays[0].peer_address, link_local(mac));
    assert_eq!(packet.message.message_type, MessageType::Reply);
}

#[test]
fn malformed_datagrams_are_typed_errors() {
    // Option 17 of length 0: dhcproto's decoder panics on it with overflow checks on.
    let mut bytes = vec![1, 0, 0, 1];
    emit_option(&mut bytes, code::VENDOR_OPTS, &[]);
    assert!(matches!(
        Packet::parse(&bytes),
        Err(CodecError::BadLength { code: 17, .. })
    ));
    // An option that runs past the end.
    let mut cut = vec![1, 0, 0, 1];
    emit_option(&mut cut, code::CLIENT_ID, &[0, 4, 1, 2, 3]);
    cut.truncate(cut.len() - 2);
    assert!(matches!(
        Packet::parse(&cut),
        Err(CodecError::Overrun { code: 1, .. })
    ));
    assert!(matches!(
        Packet::parse(&[1, 2]),
        Err(CodecError::TooShort { .. })
    ));
    // An IA_NA whose nested option overruns is the message's error, not a silent skip.
    let mut ia = 1u32.to_be_bytes().to_vec();
    ia.extend_from_slice(&[0; 8]);
    ia.extend_from_slice(&[0, 5, 0, 24, 0xfd]);
    let mut bad_ia = vec![3, 0, 0, 1];
    emit_option(&mut bad_ia, code::IA_NA, &ia);
    assert!(Packet::parse(&bad_ia).is_err());
    // Relays nested past the hop limit.
    let mut nested = Message::new(MessageType::Solicit, [0; 3]).emit();
    for _ in 0..=MAX_RELAY_DEPTH {
        let mut out = vec![12, 0];
        out.extend_from_slice(&[0; 32]);
        emit_option(&mut out, code::RELAY_MSG, &nested);
        nested = out;
    }
    assert_eq!(Packet::parse(&nested), Err(CodecError::TooDeep));
    assert_eq!(
        decide_raw(&mut core(), &nested),
        Err(Silence::Malformed(CodecError::TooDeep))
    );
}

#[test]
fn messages_round_trip_and_class_items_split() {
    let msg = Msg::new(MessageType::Request, &duid_uuid(24))
        .ours()
        .ipxe()
        .edk2_pxe()
        .ia(5, &[ULA]);
    let parsed = Message::parse(&msg.message.emit()).unwrap();
    assert_eq!(parsed, msg.message);
    assert_eq!(parsed.user_classes(), vec![&b"iPXE"[..]]);
    assert_eq!(parsed.client_arches(), vec![7]);
    assert_eq!(parsed.vendor_classes()[0].0, PXE_ENTERPRISE);
    assert_eq!(
        class_items(&class_data(&[b"a", b"bc"])),
        vec![&b"a"[..], &b"bc"[..]]
    );
}

proptest! {
    #[test]
    fn any_bytes_in_no_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decide_raw(&mut core(), &bytes);
    }

    #[test]
    fn any_option_list_after_a_valid_header_no_panic(
        kind in 1u8..14,
        options in proptest::collection::vec((0u16..100, proptest::collection::vec(any::<u8>(), 0..40)), 0..12),
    ) {
        let mut bytes = vec![kind, 1, 2, 3];
        for (code, data) in &options {
            emit_option(&mut bytes, *code, data);
        }
        let _ = decide_raw(&mut core(), &bytes);
    }
}

fn reserved_core(ignore: bool) -> Core {
    let mut settings = settings();
    settings.reservations.push(Reservation {
        index: 0,
        mac: Some(MacAddr(CLIENT_MAC)),
        uuid: None,
        duid: None,
        // Outside the range, inside the subnet: a fixed address.
        address: Some("fd00:99::10".parse().unwrap()),
        hostname: Some("node10".into()),
        boot: BootConfig {
            uefi_x64: Some("special.efi".into()),
            ..BootConfig::default()
        },
        ignore,
    });
    Core::new(settings, Vec::new())
}

#[test]
fn a_reservation_by_mac_gives_its_address_name_and_boot_file_and_no_one_else_gets_it() {
    let reserved: Ipv6Addr = "fd00:99::10".parse().unwrap();
    let mut core = reserved_core(false);
    // The machine is known by the MAC inside its EUI-64 link-local source.
    let advertise = send(
        &mut core,
        &Msg::new(MessageType::Solicit, &duid_uuid(30))
            .edk2_pxe()
            .ia(1, &[]),
        t0(),
    );
    assert_eq!(address_of(&advertise), reserved);
    assert_eq!(
        advertise.options.get(code::BOOTFILE_URL),
        Some(&b"tftp://[fd00:99::1]/special.efi"[..]),
        "the reservation's boot file"
    );
    // It asks for another address: the reservation wins.
    let request = Msg::new(MessageType::Request, &duid_uuid(30))
        .ours()
        .ia(1, &["fd00:99::150".parse().unwrap()]);
    let Ok(Action::Commit { records, .. }) = verdict(&mut core, &request, t0()) else {
        panic!("a REQUEST commits");
    };
    assert_eq!(records[0].address, reserved);
    assert_eq!(records[0].hostname.as_deref(), Some("node10"));
    // Its RENEW keeps the address although it lies outside the range.
    let renew = Msg::new(MessageType::Renew, &duid_uuid(30))
        .ours()
        .ia(1, &[reserved]);
    assert!(matches!(
        verdict(&mut core, &renew, t0()),
        Ok(Action::Commit { .. })
    ));

    // Another machine that asks for the reserved address does not get it.
    let mut stranger = Msg::new(MessageType::Request, &duid_uuid(31))
        .ours()
        .ia(1, &[reserved]);
    stranger.source = SocketAddrV6::new(link_local([2, 0, 0, 0, 0, 9]), CLIENT_PORT, 0, 7);
    let reply = send(&mut core, &stranger, t0());
    assert_ne!(address_of(&reply), reserved);
}

#[test]
fn a_reservation_that_says_ignore_is_never_answered() {
    let mut core = reserved_core(true);
    assert_eq!(
        silence(
            &mut core,
            &Msg::new(MessageType::Solicit, &duid_uuid(32)).ia(1, &[]),
            t0()
        ),
        Silence::Ignored
    );
}

#[test]
fn two_ias_of_one_message_never_share_an_address() {
    // A range of one address: the second IA of the same REQUEST finds it taken.
    let mut settings = settings();
    settings.subnets[0].last = settings.subnets[0].first;
    let mut core = Core::new(settings, Vec::new());
    let two = Msg::new(MessageType::Request, &duid_uuid(33))
        .ours()
        .ia(1, &[])
        .ia(2, &[]);
    let Ok(Action::Commit { records, then, .. }) = verdict(&mut core, &two, t0()) else {
        panic!("the first IA commits");
    };
    assert_eq!(records.len(), 1);
    let reply = Message::parse(&then.bytes).unwrap();
    assert_eq!(reply.ia_nas()[1].addresses.len(), 0);
}

/// Client messages captured on the QEMU boot lab (bench/boot.py, IPv4 dropped at the VM's
/// tap): what OVMF and iPXE really send, byte for byte. All from MAC 52:54:00:99:80:10
/// (link-local fe80::5054:ff:fe99:8010); the REQUEST and RELEASE name the server DUID of the
/// Kindling that answered them.
mod captured {
    /// That Kindling's DUID (a DUID-UUID).
    pub(super) const SERVER_DUID: &str = "00042686374574c275d56c545975990db31a";
    /// OVMF's IPv6 stack configuring itself after an RA with M: DUID-LLT, IA_NA, an option
    /// request for 23 only, no architecture, no vendor class.
    pub(super) const OVMF_IP6_SOLICIT: &str = "011e5a700001000e0001000131eed23d5254009980100008000200000003000cfd1d7ed6ffffffffffffffff000600020017";
    /// OVMF's PXE client: the same DUID-LLT, another IA, ORO 59 60 23 16, NII, arch 7, vendor
    /// class 343 `PXEClient:Arch:00007:UNDI:003000`.
    pub(super) const OVMF_PXE_SOLICIT: &str = "011c5a700001000e0001000131eed23d5254009980100008000200000003000cfb36fcdaffffffffffffffff00060008003b003c00170010003e0003010300003d0002000700100026000001570020505845436c69656e743a417263683a30303030373a554e44493a303033303030";
    /// Its REQUEST for fd00:99::169, which that Kindling had advertised.
    pub(super) const OVMF_PXE_REQUEST: &str = "031d5a700001000e0001000131eed23d5254009980100008000200000002001200042686374574c275d56c545975990db31a00030028fb36fcda000054600000870000050018fd0000990000000000000000000001690000a8c00000a8c000060008003b003c00170010003e0003010300003d0002000700100026000001570020505845436c69656e743a417263683a30303030373a554e44493a303033303030";
    /// Its RELEASE of fd00:99::169 before it starts the downloaded ipxe.efi.
    pub(super) const OVMF_PXE_RELEASE: &str = "08215a700001000e0001000131eed23d5254009980100002001200042686374574c275d56c545975990db31a00080002000000030028fb36fcdaffffffffffffffff00050018fd0000990000000000000000000001690000a8c00000a8c0";
    /// Debian's ipxe.efi started by OVMF: DUID-UUID of zeros (QEMU has no SMBIOS UUID), ORO 23
    /// 24 59 60, vendor class `PXEClient:Arch:00007:UNDI:003010`, arch 7, user class `iPXE`.
    pub(super) const IPXE_EFI_SOLICIT: &str = "0159f137000100120004000000000000000000000000000000000003000c5823cba700000000000000000006000800170018003b003c00100026000001570020505845436c69656e743a417263683a30303030373a554e44493a303033303130003d00020007003e000301030a000f0006000469505845000800020000";
    /// Its REQUEST for fd00:99::1ba, which that Kindling had advertised.
    pub(super) const IPXE_EFI_REQUEST: &str = "0359f137000100120004000000000000000000000000000000000002001200042686374574c275d56c545975990db31a000300285823cba7000000000000000000050018fd0000990000000000000000000001ba00000000000000000006000800170018003b003c00100026000001570020505845436c69656e743a417263683a30303030373a554e44493a303033303130003d00020007003e000301030a000f0006000469505845000800020000";
    /// The iPXE NIC ROM under SeaBIOS: the same, with arch 0.
    pub(super) const IPXE_ROM_SOLICIT: &str = "01754955000100120004000000000000000000000000000000000003000c5823cba700000000000000000006000800170018003b003c00100026000001570020505845436c69656e743a417263683a30303030303a554e44493a303032303031003d00020000003e0003010201000f0006000469505845000800020000";
}

/// The real messages of an IPv6-only QEMU boot, replayed through the core: OVMF's own DHCPv6
/// gets an address and no boot file; its PXE client gets `ipxe.efi` on the ULA in the
/// ADVERTISE with preference 255 (so it requests at once) and in the REPLY, never option 16
/// or 60; its REQUEST is committed under the MAC of its DUID-LLT and its RELEASE frees the
/// address; iPXE, EFI and ROM, gets `boot.ipxe` and is known by the MAC in its link-local
/// address although its DUID carries none.
#[test]
fn captured_ovmf_and_ipxe_messages_get_what_they_boot_with() {
    let mut settings = settings();
    settings.server_duid = parse_hex(captured::SERVER_DUID).unwrap();
    let mut core = Core::new(settings, Vec::new());
    let mac = [0x52, 0x54, 0, 0x99, 0x80, 0x10];
    let source = SocketAddrV6::new(link_local(mac), CLIENT_PORT, 0, 7);
    let decide = |core: &mut Core, hex: &str| {
        decide_from(core, &parse_hex(hex).unwrap(), source, t0()).expect("a reply")
    };
    let url = |m: &Message| {
        m.options
            .get(code::BOOTFILE_URL)
            .map(|u| String::from_utf8_lossy(u).into_owned())
    };
    let no_traps = |m: &Message| {
        assert!(
            !m.has(code::VENDOR_CLASS),
            "option 16 sends EDK2 to port 4011"
        );
        assert!(
            !m.has(code::BOOTFILE_PARAM),
            "EDK2 reads option 60 as a file size"
        );
    };

    let (advertise, to) = reply_of(decide(&mut core, captured::OVMF_IP6_SOLICIT));
    assert_eq!(advertise.message_type, MessageType::Advertise);
    assert_eq!(to.to, source, "back to the client's link-local address");
    assert!(!advertise.ia_nas()[0].addresses.is_empty());
    assert_eq!(url(&advertise), None, "not a netboot client");

    let (advertise, _) = reply_of(decide(&mut core, captured::OVMF_PXE_SOLICIT));
    assert_eq!(
        url(&advertise).as_deref(),
        Some("tftp://[fd00:99::1]/ipxe.efi")
    );
    assert_eq!(advertise.options.get(code::PREFERENCE), Some(&[255u8][..]));
    no_traps(&advertise);

    let asked: Ipv6Addr = "fd00:99::169".parse().unwrap();
    match decide(&mut core, captured::OVMF_PXE_REQUEST) {
        Action::Commit { records, then, .. } => {
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].address, asked);
            assert_eq!(records[0].mac, Some(MacAddr(mac)), "from the DUID-LLT");
            let reply = Message::parse(&then.bytes).unwrap();
            assert_eq!(reply.message_type, MessageType::Reply);
            assert_eq!(address_of(&reply), asked);
            assert_eq!(url(&reply).as_deref(), Some("tftp://[fd00:99::1]/ipxe.efi"));
            no_traps(&reply);
        }
        other => panic!("the REQUEST is not committed: {other:?}"),
    }
    match decide(&mut core, captured::OVMF_PXE_RELEASE) {
        Action::Commit { records, .. } => {
            assert_eq!(records[0].address, asked);
            assert_eq!(records[0].state, LeaseState::Released);
        }
        other => panic!("the RELEASE is not committed: {other:?}"),
    }

    for solicit in [captured::IPXE_EFI_SOLICIT, captured::IPXE_ROM_SOLICIT] {
        let (advertise, _) = reply_of(decide(&mut core, solicit));
        assert_eq!(
            url(&advertise).as_deref(),
            Some("tftp://[fd00:99::1]/boot.ipxe"),
            "iPXE's user class wins over its architecture"
        );
        assert!(!advertise.ia_nas()[0].addresses.is_empty());
        no_traps(&advertise);
    }
    match decide(&mut core, captured::IPXE_EFI_REQUEST) {
        Action::Commit { records, then, .. } => {
            assert_eq!(
                records[0].address,
                "fd00:99::1ba".parse::<Ipv6Addr>().unwrap()
            );
            assert_eq!(
                records[0].mac,
                Some(MacAddr(mac)),
                "from the EUI-64 link-local address: the DUID has no MAC"
            );
            let reply = Message::parse(&then.bytes).unwrap();
            assert_eq!(
                url(&reply).as_deref(),
                Some("tftp://[fd00:99::1]/boot.ipxe"),
                "iPXE reads options only from the REPLY"
            );
        }
        other => panic!("iPXE's REQUEST is not committed: {other:?}"),
    }
}

/// A reservation that names its machine by `uuid` and `duid` only, with a fixed address.
fn core_reserving(
    index: usize,
    uuid: Option<[u8; 16]>,
    duid: Option<Vec<u8>>,
    address: &str,
) -> Core {
    let mut settings = settings();
    settings.reservations.push(Reservation {
        index,
        mac: None,
        uuid: uuid.map(SystemUuid),
        duid,
        address: Some(address.parse().unwrap()),
        hostname: None,
        boot: BootConfig::default(),
        ignore: false,
    });
    Core::new(settings, Vec::new())
}

const UUID: [u8; 16] = [
    0x4c, 0x4c, 0x45, 0x44, 0x00, 0x42, 0x35, 0x10, 0x80, 0x52, 0xb3, 0xc0, 0x4f, 0x59, 0x52, 0x31,
];

fn duid_of_uuid(bytes: [u8; 16]) -> Vec<u8> {
    [&[0u8, 4][..], &bytes].concat()
}

#[test]
fn a_reservation_by_smbios_uuid_matches_a_duid_uuid_in_either_byte_order() {
    let reserved: Ipv6Addr = "fd00:99::20".parse().unwrap();
    let mut core = core_reserving(0, Some(UUID), None, "fd00:99::20");
    // iPXE: RFC 4122 order.
    let ipxe = Msg::new(MessageType::Solicit, &duid_of_uuid(UUID)).ia(1, &[]);
    assert_eq!(address_of(&send(&mut core, &ipxe, t0())), reserved);
    // EDK2: its EFI_GUID as it lies in memory, first three fields little-endian.
    let mut guid = UUID;
    guid[0..4].reverse();
    guid[4..6].reverse();
    guid[6..8].reverse();
    let edk2 = Msg::new(MessageType::Solicit, &duid_of_uuid(guid))
        .edk2_pxe()
        .ia(1, &[]);
    assert_eq!(address_of(&send(&mut core, &edk2, t0())), reserved);
    // Another machine, from the same link-local source, does not get it.
    let mut other = UUID;
    other[15] ^= 0xff;
    let stranger = Msg::new(MessageType::Solicit, &duid_of_uuid(other)).ia(1, &[]);
    assert_ne!(address_of(&send(&mut core, &stranger, t0())), reserved);
}

#[test]
fn a_reservation_by_duid_matches_that_duid_exactly() {
    let reserved: Ipv6Addr = "fd00:99::21".parse().unwrap();
    let llt = vec![0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 2, 0, 0, 0, 0, 5];
    let mut core = core_reserving(0, None, Some(llt.clone()), "fd00:99::21");
    let owner = Msg::new(MessageType::Solicit, &llt).ia(1, &[]);
    assert_eq!(address_of(&send(&mut core, &owner, t0())), reserved);
    let mut near = llt.clone();
    near[13] = 6;
    let stranger = Msg::new(MessageType::Solicit, &near).ia(1, &[]);
    assert_ne!(address_of(&send(&mut core, &stranger, t0())), reserved);
}

#[test]
fn the_duid_names_a_machine_before_its_uuid_and_its_uuid_before_its_mac() {
    let mut settings = settings();
    let fixed = |index: usize,
                 mac: Option<[u8; 6]>,
                 uuid: Option<[u8; 16]>,
                 duid: Option<Vec<u8>>| Reservation {
        index,
        mac: mac.map(MacAddr),
        uuid: uuid.map(SystemUuid),
        duid,
        address: None,
        hostname: None,
        boot: BootConfig::default(),
        ignore: false,
    };
    let duid = duid_of_uuid(UUID);
    settings.reservations = vec![
        fixed(0, Some(CLIENT_MAC), None, None),
        fixed(1, None, Some(UUID), None),
        fixed(2, None, None, Some(duid.clone())),
    ];
    let mac = Some(MacAddr(CLIENT_MAC));
    assert_eq!(settings.reservation(&duid, mac).map(|r| r.index), Some(2));
    settings.reservations.pop();
    assert_eq!(settings.reservation(&duid, mac).map(|r| r.index), Some(1));
    settings.reservations.pop();
    assert_eq!(settings.reservation(&duid, mac).map(|r| r.index), Some(0));
    assert_eq!(settings.reservation(&duid, None).map(|r| r.index), None);
}

#[test]
fn our_own_probe_is_not_answered_and_a_contested_link_gets_preference_zero() {
    let mut core = core();
    let probe = coexist::probe_solicit([1, 2, 3]);
    assert_eq!(decide_raw(&mut core, &probe), Err(Silence::OwnProbe));

    let solicit = Msg::new(MessageType::Solicit, &duid_uuid(40)).ia(1, &[]);
    let preference = |core: &mut Core| {
        send(core, &solicit, t0())
            .options
            .get(code::PREFERENCE)
            .map(<[u8]>::to_vec)
    };
    assert_eq!(preference(&mut core), Some(vec![255]));
    assert!(core.set_contested(interface().index, true));
    assert!(!core.set_contested(interface().index, true), "no change");
    assert_eq!(preference(&mut core), Some(vec![0]));
    // Another link is not affected.
    assert!(!core.set_contested(interface().index + 1, false));
    assert_eq!(preference(&mut core), Some(vec![0]));
    assert!(core.set_contested(interface().index, false));
    assert_eq!(preference(&mut core), Some(vec![255]));
}

#[test]
fn the_probe_reads_another_servers_advertise_and_nothing_else() {
    let probe = Message::parse(&coexist::probe_solicit([7, 8, 9])).unwrap();
    assert_eq!(probe.message_type, MessageType::Solicit);
    assert_eq!(probe.client_id(), Some(&coexist::PROBE_DUID[..]));
    assert_eq!(probe.ia_nas().len(), 1);
    assert!(
        probe.options.get(code::RAPID_COMMIT).is_none(),
        "no server may commit a lease to the probe"
    );

    let other_duid = vec![0, 1, 0, 1, 1, 2, 3, 4, 0x52, 0x54, 0, 0, 0, 1];
    let advertise = |xid: [u8; 3], server: &[u8], preference: Option<u8>| {
        let mut m = Message::new(MessageType::Advertise, xid);
        m.options
            .push(code::CLIENT_ID, coexist::PROBE_DUID.to_vec());
        m.options.push(code::SERVER_ID, server.to_vec());
        if let Some(p) = preference {
            m.options.push(code::PREFERENCE, vec![p]);
        }
        m.options.push(
            code::IA_NA,
            IaNa {
                iaid: coexist::PROBE_IAID,
                t1: 0,
                t2: 0,
                addresses: vec![IaAddress {
                    address: "fd00:99::77".parse().unwrap(),
                    preferred: 100,
                    valid: 200,
                }],
                status: None,
            }
            .emit(),
        );
        m.options
            .push(code::BOOTFILE_URL, b"tftp://[fd00:99::2]/x.efi".to_vec());
        m.emit()
    };
    let source: Ipv6Addr = "fe80::2".parse().unwrap();
    let found = coexist::foreign_advertise(
        &advertise([7, 8, 9], &other_duid, Some(10)),
        source,
        [7, 8, 9],
        SERVER_DUID,
    )
    .expect("another server");
    assert_eq!(found.duid, other_duid);
    assert_eq!(found.preference, 10);
    assert_eq!(found.offered, Some("fd00:99::77".parse().unwrap()));
    assert_eq!(found.boot_url.as_deref(), Some("tftp://[fd00:99::2]/x.efi"));
    // RFC 8415 18.2.9: no preference option is preference 0.
    let plain = advertise([7, 8, 9], &other_duid, None);
    assert_eq!(
        coexist::foreign_advertise(&plain, source, [7, 8, 9], SERVER_DUID).map(|f| f.preference),
        Some(0)
    );
    // Our own answer, another transaction, or not an ADVERTISE: not another server.
    assert_eq!(
        coexist::foreign_advertise(&plain, source, [7, 8, 9], &other_duid),
        None
    );
    assert_eq!(
        coexist::foreign_advertise(&plain, source, [7, 8, 0], SERVER_DUID),
        None
    );
    assert_eq!(
        coexist::foreign_advertise(
            &coexist::probe_solicit([7, 8, 9]),
            source,
            [7, 8, 9],
            SERVER_DUID
        ),
        None
    );
}
