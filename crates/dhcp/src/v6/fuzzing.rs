//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the test that replays their
//! corpora (`tests/fuzz_corpus.rs`). Each function panics only when an invariant breaks.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant, UNIX_EPOCH};

use ipnet::Ipv6Net;
use kindling_config::BootConfig;

use super::codec::{Message, MessageType, Packet};
use super::ra::{
    Advertiser, Jitter, Link, MAX_RTR_ADV_INTERVAL_OURS, MIN_DELAY_BETWEEN_RAS, NdiscRepr,
    Received, RouterAdvert, Settings as RaSettings,
};
use super::server::{Action, CLIENT_PORT, Core, Datagram, Interface, Settings, Subnet};
use crate::lease::LeaseState;
use crate::policy::VendorClasses;

const SERVER_DUID: [u8; 6] = [0, 4, 0x4b, 0x49, 0x4e, 0x44];

/// Parses arbitrary bytes. A client message that parses emits back to the same bytes (options
/// are kept raw and in order); a relayed one re-wraps to a packet that parses to the same.
pub fn codec(data: &[u8]) {
    let Ok(packet) = Packet::parse(data) else {
        return;
    };
    if packet.relays.is_empty() {
        assert_eq!(
            packet.message.emit(),
            data,
            "a parsed message emits unchanged"
        );
    }
    let wrapped = Packet::wrap_reply(&packet.relays, &packet.message);
    let again = match Packet::parse(&wrapped) {
        Ok(again) => again,
        Err(error) => panic!("a re-wrapped message must parse: {error}"),
    };
    assert_eq!(again.message, packet.message);
    assert_eq!(again.relays.len(), packet.relays.len());
}

fn settings() -> Settings {
    Settings {
        subnets: vec![Subnet {
            index: 0,
            network: Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0), 64)
                .unwrap_or_default(),
            first: Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x100),
            last: Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x107),
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
            uefi_x64_http: None,
            uefi_arm64_http: None,
        },
        vendor_classes: VendorClasses::default(),
        dns_domain: Some("lab.test".into()),
        http_port: Some(8080),
        reservations: Vec::new(),
    }
}

/// Drives the server core with a script of datagrams: each step is a tag byte (its top two bits
/// advance the clock by that many 20-minute steps; bit 0 puts our server identifier into the
/// message, so REQUESTs and RENEWs get past the RFC 8415 16 check), a little-endian u16 length
/// and that many bytes. Checks that every reply parses, answers the client's transaction with
/// its DUID and our server identifier, hands out only addresses of the range, and that no
/// address is ever actively leased to two identity associations. Returns the replies sent.
pub fn server(data: &[u8]) -> usize {
    let mut core = Core::new(settings(), Vec::new());
    let interface = Interface {
        index: 3,
        name: "lab0".into(),
        addresses: vec![
            Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1), 64).unwrap_or_default(),
        ],
    };
    let source = SocketAddrV6::new(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 0x0001),
        CLIENT_PORT,
        0,
        3,
    );
    let mut now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut replies = 0;
    let mut held = HashMap::new();
    let mut rest = data;
    while let [tag, low, high, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*low, *high])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_secs(u64::from(*tag >> 6) * 1200);
        let mut owned = bytes.to_vec();
        if tag & 1 != 0
            && let Ok(mut message) = Message::parse(bytes)
        {
            message
                .options
                .push(super::codec::code::SERVER_ID, SERVER_DUID.to_vec());
            owned = message.emit();
        }
        let datagram = Datagram {
            bytes: &owned,
            source,
            interface: &interface,
        };
        let request = Packet::parse(&owned).ok();
        let Some(action) = core.handle(&datagram, now) else {
            continue;
        };
        let (transmit, committed) = match action {
            Action::Send(t) => (t, Vec::new()),
            Action::Commit { records, then, .. } => (then, records),
        };
        replies += 1;
        let reply = match Packet::parse(&transmit.bytes) {
            Ok(reply) => reply.message,
            Err(error) => panic!("our reply does not parse: {error}"),
        };
        let Some(request) = request else {
            panic!("a reply to a datagram that does not parse");
        };
        assert_eq!(reply.transaction_id, request.message.transaction_id);
        assert!(matches!(
            reply.message_type,
            MessageType::Advertise | MessageType::Reply
        ));
        assert_eq!(reply.server_id(), Some(&SERVER_DUID[..]));
        assert_eq!(reply.client_id(), request.message.client_id());
        if reply.message_type == MessageType::Advertise {
            assert!(committed.is_empty(), "an ADVERTISE commits nothing");
        }
        let subnet = &core.settings().subnets[0];
        for ia in reply.ia_nas() {
            for address in ia.addresses.iter().filter(|a| a.valid > 0) {
                assert!(
                    subnet.in_range(address.address),
                    "handed out {}",
                    address.address
                );
            }
        }
        // No address is granted to one identity association while another still holds it.
        for record in committed {
            let binding = (record.duid.clone(), record.iaid);
            if record.state == LeaseState::Active {
                if let Some((holder, until)) = held.get(&record.address) {
                    assert!(
                        *holder == binding || *until <= now,
                        "{} granted to a second client while held",
                        record.address
                    );
                }
                held.insert(record.address, (binding, record.expires_at));
            } else {
                held.remove(&record.address);
            }
        }
    }
    replies
}

// The router advertisement core (issues 13 and 15): quiet and advertising.

const RA_IFINDEX: u32 = 2;
const RA_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The delay drawn is the fuzzer's (it may exceed the maximum: the core must clamp it).
struct ScriptedJitter(u64);

impl Jitter for ScriptedJitter {
    fn delay(&mut self, _max: Duration) -> Duration {
        self.0 = self.0.rotate_left(7) ^ 0x9e37;
        Duration::from_millis(self.0 % 40_000)
    }
}

/// A script of received messages: a first byte seeding the delays whose highest bit chooses
/// the mode (0: quiet, 1: advertising fd00:99::/64 as a default router, the interface holding
/// fd00:99::1); then per step a flags byte (bit 0: hop limit 255; bits 1-3: the source: a
/// client's link-local, ::, a global address, a router's link-local, ours; bit 4: truncated;
/// bit 5: the settings flip to the other mode before the message), a byte of elapsed time in
/// 50 ms units, a length byte, then that many bytes. Whatever arrives, only router
/// solicitations and the mode's advertisements leave (the exact quiet one; or M and O set,
/// exactly the configured prefix on-link and not autonomous, lifetime 90 or, finally, 0),
/// multicast RAs on the interface are at least MIN_DELAY_BETWEEN_RAS apart, in quiet mode no
/// more RAs leave than solicitations arrived, and in advertising mode none is more than
/// MAX_RTR_ADV_INTERVAL_OURS after the previous one. Returns how many RAs left.
pub fn quiet_ra(data: &[u8]) -> usize {
    let ours: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    let seed = data.first().copied().unwrap_or(0);
    let prefix =
        Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0), 64).unwrap_or_default();
    let mode = |advertise: bool| RaSettings {
        quiet: true,
        prefixes: if advertise { vec![prefix] } else { Vec::new() },
        default_router: true,
    };
    let mut advertise = seed & 0x80 != 0;
    let start = Instant::now();
    let mut core = Advertiser::new(ScriptedJitter(u64::from(seed)), mode(advertise));
    core.set_links(
        start,
        vec![Link {
            index: RA_IFINDEX,
            name: "fuzz0".into(),
            link_local: Some(ours),
            mac: Some(RA_MAC),
            addresses: vec![Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1)],
        }],
    );
    let mut quiet = Vec::new();
    NdiscRepr::RouterAdvert(RouterAdvert::quiet(Some(RA_MAC))).emit(&mut quiet);
    let mut now = start;
    let mut solicitations = 0usize;
    let mut tally = RaTally {
        ours,
        prefix,
        quiet,
        quiet_sent: 0,
        advertisements: 0,
        last_sent: None,
        last_full: None,
    };
    tally.check(&mut core, now, advertise);
    let mut rest = data.get(1..).unwrap_or_default();
    while let [flags, elapsed, len, tail @ ..] = rest {
        let take = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(take);
        rest = next;
        let target = now + Duration::from_millis(u64::from(*elapsed) * 50);
        while let Some(deadline) = core.poll_timeout().filter(|d| *d <= target) {
            core.handle_timeout(deadline);
            tally.check(&mut core, deadline, advertise);
        }
        now = target;
        if flags & 0x20 != 0 {
            // A final RA may leave at the flip; the pacing rule is then not the core's
            // (RFC 4861 6.2.5 sends it at once), so the clock of the last RA restarts.
            advertise = !advertise;
            core.set_settings(now, mode(advertise));
            while let Some(t) = core.poll_transmit() {
                assert!(
                    t.bytes.first() == Some(&134) && !advertise,
                    "only a final RA"
                );
                tally.last_sent = Some(now);
            }
            tally.last_full = None;
            tally.quiet_sent = 0;
            solicitations = 0;
            while core.poll_event().is_some() {}
        }
        let source = match (flags >> 1) & 7 {
            0 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 1),
            1 => Ipv6Addr::UNSPECIFIED,
            2 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            3 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xfe),
            _ => ours,
        };
        if bytes.first() == Some(&133) {
            solicitations += 1;
        }
        core.handle(
            now,
            Received {
                bytes,
                source,
                ifindex: RA_IFINDEX,
                hop_limit: Some(if flags & 1 == 1 { 255 } else { 64 }),
                truncated: flags & 0x10 != 0,
            },
        );
        tally.check(&mut core, now, advertise);
    }
    let end = now + Duration::from_secs(10);
    while let Some(deadline) = core.poll_timeout().filter(|d| *d <= end) {
        core.handle_timeout(deadline);
        tally.check(&mut core, deadline, advertise);
    }
    assert!(
        tally.quiet_sent <= solicitations,
        "a quiet RA nobody asked for"
    );
    if advertise {
        assert!(
            core.poll_timeout().is_some(),
            "an advertising interface with no timer"
        );
    }
    core.stop(end);
    while let Some(t) = core.poll_transmit() {
        let Ok(NdiscRepr::RouterAdvert(advert)) = NdiscRepr::parse(&t.bytes) else {
            panic!("not a router advertisement at stop");
        };
        assert!(
            advertise && advert.router_lifetime == 0,
            "only a final RA at stop"
        );
        tally.advertisements += 1;
    }
    tally.advertisements
}

/// What the RA fuzz target has seen leave.
struct RaTally {
    ours: Ipv6Addr,
    prefix: Ipv6Net,
    quiet: Vec<u8>,
    quiet_sent: usize,
    advertisements: usize,
    last_sent: Option<Instant>,
    last_full: Option<Instant>,
}

impl RaTally {
    fn check(&mut self, core: &mut Advertiser<ScriptedJitter>, at: Instant, advertise: bool) {
        while let Some(transmit) = core.poll_transmit() {
            assert_eq!(transmit.ifindex, RA_IFINDEX);
            assert_eq!(transmit.from, self.ours);
            if transmit.bytes.first() == Some(&133) {
                assert_eq!(transmit.to, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2));
                continue;
            }
            assert_eq!(transmit.to, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
            if transmit.bytes == self.quiet {
                assert!(!advertise, "a quiet RA while advertising");
                self.quiet_sent += 1;
            } else {
                let Ok(NdiscRepr::RouterAdvert(advert)) = NdiscRepr::parse(&transmit.bytes) else {
                    panic!("not a router advertisement: {:?}", transmit.bytes);
                };
                assert!(advert.managed && advert.other, "M and O");
                assert!(
                    advert.router_lifetime == 90 || advert.router_lifetime == 0,
                    "lifetime {}",
                    advert.router_lifetime
                );
                assert!(
                    advertise || advert.router_lifetime == 0,
                    "only a final RA after advertising stopped"
                );
                assert_eq!(advert.prefixes.len(), 1);
                let p = advert.prefixes[0];
                assert!(p.on_link && !p.autonomous);
                assert_eq!((p.prefix, p.prefix_len), (self.prefix.network(), 64));
                assert!(p.preferred_lifetime <= p.valid_lifetime);
            }
            if let Some(last) = self.last_sent {
                assert!(at - last >= MIN_DELAY_BETWEEN_RAS, "RAs too close");
            }
            if let Some(last) = self.last_full.filter(|_| advertise) {
                assert!(at - last <= MAX_RTR_ADV_INTERVAL_OURS, "RAs too far apart");
            }
            self.last_sent = Some(at);
            self.last_full = advertise.then_some(at);
            self.advertisements += 1;
        }
        while core.poll_event().is_some() {}
    }
}
