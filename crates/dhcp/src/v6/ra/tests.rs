#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const IFINDEX: u32 = 7;

/// Always the same delay, whatever the maximum: tests pick it.
#[derive(Debug, Clone, Copy)]
struct FixedJitter(Duration);

impl Jitter for FixedJitter {
    fn delay(&mut self, _max: Duration) -> Duration {
        self.0
    }
}

fn ours() -> Ipv6Addr {
    "fe80::ff:fe00:1".parse().unwrap()
}

fn client() -> Ipv6Addr {
    "fe80::5054:ff:fe12:3456".parse().unwrap()
}

fn router() -> Ipv6Addr {
    "fe80::1".parse().unwrap()
}

fn link() -> Link {
    Link {
        index: IFINDEX,
        name: "vsrv".into(),
        link_local: Some(ours()),
        mac: Some(MAC),
        addresses: vec!["fd00:99::1".parse().unwrap()],
    }
}

/// The quiet RA alone (`dhcp.v6.quiet_ra: auto`, no router_advertisements).
fn quiet() -> Settings {
    Settings {
        quiet: true,
        prefixes: Vec::new(),
        default_router: false,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

struct Lab {
    core: Advertiser<FixedJitter>,
    start: Instant,
}

impl Lab {
    /// A core serving one interface, past its start-up listening, with its start-up
    /// solicitation taken.
    fn new(delay: Duration) -> Lab {
        let mut lab = Lab::starting(delay);
        let solicitation = lab.core.poll_transmit().unwrap();
        assert_eq!(solicitation.bytes[0], wire::ROUTER_SOLICITATION);
        lab.start += LISTEN_AFTER_SOLICITING;
        lab
    }

    fn starting(delay: Duration) -> Lab {
        let start = Instant::now();
        let mut core = Advertiser::new(FixedJitter(delay), quiet());
        core.set_links(start, vec![link()]);
        Lab { core, start }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }

    fn receive(&mut self, offset: Duration, bytes: &[u8], source: Ipv6Addr, hop_limit: u8) {
        let now = self.at(offset);
        self.core.handle(
            now,
            Received {
                bytes,
                source,
                ifindex: IFINDEX,
                hop_limit: Some(hop_limit),
                truncated: false,
            },
        );
    }

    fn solicit(&mut self, offset: Duration) {
        self.receive(offset, &solicitation(Some(CLIENT_MAC)), client(), 255);
    }

    /// Runs the core's timers from `from` to `to` (inclusive) and returns the offsets at which
    /// quiet advertisements left.
    fn run(&mut self, to: Duration) -> Vec<Duration> {
        let mut sent = Vec::new();
        while let Some(deadline) = self.core.poll_timeout() {
            if deadline > self.at(to) {
                break;
            }
            self.core.handle_timeout(deadline);
            while let Some(transmit) = self.core.poll_transmit() {
                assert_eq!(transmit.bytes, quiet_bytes());
                sent.push(deadline - self.start);
            }
        }
        sent
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    fn drops(&mut self) -> Vec<DropReason> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Dropped { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }
}

fn solicitation(mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut bytes = Vec::new();
    NdiscRepr::RouterSolicit {
        source_link_layer: mac.map(LinkLayerAddress::Ethernet),
    }
    .emit(&mut bytes);
    bytes
}

fn advertisement(router_lifetime: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    NdiscRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed: true,
        other: false,
        router_lifetime,
        reachable_time: 0,
        retrans_timer: 0,
        source_link_layer: None,
        prefixes: Vec::new(),
    })
    .emit(&mut bytes);
    bytes
}

fn quiet_bytes() -> Vec<u8> {
    let mut bytes = vec![134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&[1, 1]);
    bytes.extend_from_slice(&MAC);
    bytes
}

#[test]
fn start_up_solicits_from_the_link_local_address_to_all_routers() {
    let mut lab = Lab::starting(ms(0));
    let transmit = lab.core.poll_transmit().unwrap();
    assert_eq!(transmit.ifindex, IFINDEX);
    assert_eq!(transmit.from, ours());
    assert_eq!(transmit.to, "ff02::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        transmit.bytes,
        [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1]
    );
    assert_eq!(lab.core.poll_transmit(), None);
    // The same interface again: no second solicitation.
    lab.core.set_links(lab.at(secs(1)), vec![link()]);
    assert_eq!(lab.core.poll_transmit(), None);
}

#[test]
fn a_solicitation_gets_the_quiet_advertisement_multicast_to_all_nodes() {
    let mut lab = Lab::new(ms(200));
    lab.solicit(secs(10));
    assert_eq!(
        lab.core.poll_transmit(),
        None,
        "nothing leaves before the delay"
    );
    assert_eq!(lab.core.poll_timeout(), Some(lab.at(secs(10) + ms(200))));
    lab.core.handle_timeout(lab.at(secs(10) + ms(199)));
    assert_eq!(lab.core.poll_transmit(), None);
    lab.core.handle_timeout(lab.at(secs(10) + ms(200)));
    let transmit = lab.core.poll_transmit().unwrap();
    assert_eq!(transmit.ifindex, IFINDEX);
    assert_eq!(transmit.from, ours());
    assert_eq!(transmit.to, "ff02::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(transmit.bytes, quiet_bytes());
    assert_eq!(
        lab.events(),
        [Event::Sent {
            interface: "vsrv".into(),
            kind: Sent::Quiet,
            router_lifetime: 0,
            solicitations: 1
        }]
    );
}

#[test]
fn the_random_delay_never_exceeds_max_ra_delay_time() {
    for (drawn, expected) in [
        (ms(0), ms(0)),
        (ms(499), ms(499)),
        (ms(500), ms(500)),
        (secs(9), ms(500)),
    ] {
        let mut lab = Lab::new(drawn);
        lab.solicit(secs(10));
        assert_eq!(lab.run(secs(20)), [secs(10) + expected], "drawn {drawn:?}");
    }
}

#[test]
fn solicitations_during_start_up_listening_wait_for_it_to_end() {
    let mut lab = Lab::starting(ms(100));
    lab.core.poll_transmit().unwrap();
    lab.solicit(secs(1));
    assert_eq!(lab.run(secs(10)), [LISTEN_AFTER_SOLICITING]);
}

#[test]
fn at_most_one_advertisement_per_three_seconds_answers_every_solicitation_meanwhile() {
    let mut lab = Lab::new(ms(100));
    lab.solicit(secs(10));
    assert_eq!(lab.run(secs(11)), [secs(10) + ms(100)]);
    lab.events();
    // Three solicitations one second later: one advertisement, 3 s after the last one.
    lab.solicit(secs(11));
    lab.solicit(secs(11) + ms(500));
    lab.solicit(secs(12));
    assert_eq!(lab.run(secs(20)), [secs(13) + ms(100)]);
    assert_eq!(
        lab.events(),
        [Event::Sent {
            interface: "vsrv".into(),
            kind: Sent::Quiet,
            router_lifetime: 0,
            solicitations: 3
        }]
    );
}

#[test]
fn a_flood_is_answered_at_the_rate_limit_with_constant_state() {
    let mut lab = Lab::new(ms(250));
    let mut sent = Vec::new();
    // 100 solicitations a second for 60 s, from ever-changing sources.
    for tick in 0..6000u64 {
        let offset = secs(10) + ms(tick * 10);
        let source = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, (tick >> 16) as u16, tick as u16);
        lab.receive(offset, &solicitation(None), source, 255);
        lab.core.handle_timeout(lab.at(offset));
        while let Some(transmit) = lab.core.poll_transmit() {
            assert_eq!(transmit.bytes, quiet_bytes());
            sent.push(offset);
        }
        lab.events();
        assert_eq!(lab.core.links.len(), 1);
        assert!(lab.core.transmits.is_empty() && lab.core.events.is_empty());
    }
    for pair in sent.windows(2) {
        assert!(pair[1] - pair[0] >= MIN_DELAY_BETWEEN_RAS, "{pair:?}");
    }
    // 60 s at one per 3 s.
    assert!(
        (19..=21).contains(&sent.len()),
        "{} advertisements",
        sent.len()
    );
}

#[test]
fn another_routers_advertisement_silences_the_interface_for_its_lifetime() {
    let mut lab = Lab::new(ms(0));
    lab.receive(secs(10), &advertisement(1800), router(), 255);
    assert_eq!(
        lab.events(),
        [Event::RouterHeard {
            interface: "vsrv".into(),
            router: router(),
            router_lifetime: 1800,
            silent_for: secs(1800),
        }]
    );
    lab.solicit(secs(20));
    assert_eq!(lab.drops(), [DropReason::OtherRouter]);
    // Its next advertisement renews the silence without a second log line.
    lab.receive(secs(600), &advertisement(1800), router(), 255);
    assert!(lab.events().is_empty());
    lab.solicit(secs(2399));
    assert_eq!(lab.drops(), [DropReason::OtherRouter]);
    assert_eq!(lab.run(secs(2399)), Vec::<Duration>::new());
    // 1800 s after its last advertisement it is gone, and solicitations are answered again.
    assert_eq!(lab.run(secs(2400)), Vec::<Duration>::new());
    assert_eq!(
        lab.events(),
        [Event::RoutersGone {
            interface: "vsrv".into()
        }]
    );
    lab.solicit(secs(2401));
    assert_eq!(lab.run(secs(2402)), [secs(2401)]);
}

#[test]
fn a_router_advertising_lifetime_zero_silences_for_max_rtr_adv_interval() {
    let mut lab = Lab::new(ms(0));
    lab.receive(secs(10), &advertisement(0), router(), 255);
    lab.solicit(secs(609));
    assert_eq!(lab.run(secs(609)), Vec::<Duration>::new());
    lab.solicit(secs(611));
    assert_eq!(lab.run(secs(612)), [secs(611)]);
}

#[test]
fn an_advertisement_cancels_a_pending_answer() {
    let mut lab = Lab::new(ms(400));
    lab.solicit(secs(10));
    lab.receive(secs(10) + ms(100), &advertisement(300), router(), 255);
    assert_eq!(lab.run(secs(20)), Vec::<Duration>::new());
}

#[test]
fn a_router_answering_our_start_up_solicitation_keeps_us_silent() {
    let mut lab = Lab::starting(ms(0));
    lab.core.poll_transmit().unwrap();
    lab.solicit(ms(100));
    lab.receive(ms(400), &advertisement(1800), router(), 255);
    assert_eq!(lab.run(secs(100)), Vec::<Duration>::new());
}

#[test]
fn advertisements_that_hosts_would_discard_do_not_silence() {
    let mut lab = Lab::new(ms(0));
    // Forwarded from elsewhere (hop limit below 255), from a global address, malformed, ours.
    lab.receive(secs(10), &advertisement(1800), router(), 254);
    lab.receive(
        secs(10),
        &advertisement(1800),
        "2001:db8::1".parse().unwrap(),
        255,
    );
    lab.receive(secs(10), &advertisement(1800)[..15], router(), 255);
    lab.receive(secs(10), &quiet_bytes(), ours(), 255);
    assert_eq!(
        lab.drops(),
        [
            DropReason::HopLimit(Some(254)),
            DropReason::OffLinkSource,
            DropReason::Malformed(WireError::Truncated {
                len: 15,
                needed: 16
            }),
            DropReason::Ours,
        ]
    );
    lab.solicit(secs(11));
    assert_eq!(lab.run(secs(12)), [secs(11)]);
}

#[test]
fn bad_solicitations_are_dropped_with_their_reason() {
    let mut lab = Lab::new(ms(0));
    let good = solicitation(Some(CLIENT_MAC));
    lab.receive(secs(10), &good, client(), 64);
    lab.receive(secs(10), &good, "2001:db8::2".parse().unwrap(), 255);
    lab.receive(secs(10), &good, Ipv6Addr::UNSPECIFIED, 255);
    let mut wrong_code = good.clone();
    wrong_code[1] = 1;
    lab.receive(secs(10), &wrong_code, client(), 255);
    lab.receive(secs(10), &good[..7], client(), 255);
    let mut long = solicitation(None);
    long.extend_from_slice(&[200, 160]);
    long.resize(8 + 160 * 8, 0);
    lab.receive(secs(10), &long, client(), 255);
    lab.core.handle(
        lab.at(secs(10)),
        Received {
            bytes: &good,
            source: client(),
            ifindex: IFINDEX,
            hop_limit: None,
            truncated: false,
        },
    );
    lab.core.handle(
        lab.at(secs(10)),
        Received {
            bytes: &good,
            source: client(),
            ifindex: IFINDEX,
            hop_limit: Some(255),
            truncated: true,
        },
    );
    lab.core.handle(
        lab.at(secs(10)),
        Received {
            bytes: &good,
            source: client(),
            ifindex: IFINDEX + 1,
            hop_limit: Some(255),
            truncated: false,
        },
    );
    assert_eq!(
        lab.drops(),
        [
            DropReason::HopLimit(Some(64)),
            DropReason::OffLinkSource,
            DropReason::LinkLayerAddressFromUnspecified,
            DropReason::Malformed(WireError::NonZeroCode(1)),
            DropReason::Malformed(WireError::Truncated { len: 7, needed: 8 }),
            DropReason::Oversized(1288),
            DropReason::HopLimit(None),
            DropReason::Truncated,
            DropReason::NotServed,
        ]
    );
    assert_eq!(
        lab.run(secs(20)),
        Vec::<Duration>::new(),
        "a bad solicitation was answered"
    );
    // A host without an address yet solicits from :: without a link-layer address: answered.
    lab.receive(secs(30), &solicitation(None), Ipv6Addr::UNSPECIFIED, 255);
    assert_eq!(lab.run(secs(31)), [secs(30)]);
}

#[test]
fn an_interface_without_a_link_local_address_neither_solicits_nor_answers() {
    let start = Instant::now();
    let mut core = Advertiser::new(FixedJitter(ms(0)), quiet());
    let bare = Link {
        link_local: None,
        ..link()
    };
    core.set_links(start, vec![bare]);
    assert_eq!(core.poll_transmit(), None);
    core.handle(
        start + secs(10),
        Received {
            bytes: &solicitation(None),
            source: client(),
            ifindex: IFINDEX,
            hop_limit: Some(255),
            truncated: false,
        },
    );
    assert!(matches!(
        core.poll_event(),
        Some(Event::Dropped {
            reason: DropReason::NoLinkLocal,
            ..
        })
    ));
    // The address arrives: a start-up solicitation goes out then.
    core.set_links(start + secs(11), vec![link()]);
    assert_eq!(
        core.poll_transmit().unwrap().to,
        "ff02::2".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn an_interface_no_longer_served_forgets_its_pending_answer() {
    let mut lab = Lab::new(ms(300));
    lab.solicit(secs(10));
    lab.core.set_links(lab.at(secs(10) + ms(100)), Vec::new());
    assert_eq!(lab.core.poll_timeout(), None);
    assert_eq!(lab.run(secs(20)), Vec::<Duration>::new());
}

proptest! {
    #[test]
    fn any_bytes_from_anywhere_never_panic_and_only_quiet_advertisements_leave(
        messages in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..64), any::<u128>(), any::<u8>(), 0u64..5000),
            1..20,
        ),
        mutate_type in any::<bool>(),
    ) {
        let mut lab = Lab::new(ms(100));
        let mut elapsed = secs(10);
        for (mut bytes, source, hop_limit, step) in messages {
            if mutate_type && !bytes.is_empty() {
                bytes[0] = if bytes[0] % 2 == 0 { 133 } else { 134 };
            }
            let _ = NdiscRepr::parse(&bytes);
            elapsed += ms(step);
            let source = if source % 2 == 0 { Ipv6Addr::from(source) } else { client() };
            lab.receive(elapsed, &bytes, source, hop_limit);
            lab.run(elapsed);
            lab.events();
        }
    }
}

// Advertising mode (dhcp.v6.router_advertisements).

fn subnet() -> Ipv6Net {
    "fd00:99::/64".parse().unwrap()
}

fn advertising(default_router: bool) -> Settings {
    Settings {
        quiet: true,
        // A second subnet on another link, and the first written with host bits set.
        prefixes: vec![
            "fd00:99::1/64".parse().unwrap(),
            "fd00:42::/64".parse().unwrap(),
        ],
        default_router,
    }
}

/// A core advertising on `link()` from `start`, its start-up solicitation taken.
fn advertiser(settings: Settings, delay: Duration) -> (Advertiser<FixedJitter>, Instant) {
    let start = Instant::now();
    let mut core = Advertiser::new(FixedJitter(delay), settings);
    core.set_links(start, vec![link()]);
    let solicitation = core.poll_transmit().unwrap();
    assert_eq!(solicitation.bytes[0], wire::ROUTER_SOLICITATION);
    (core, start)
}

/// Runs the timers up to `until`; every advertisement that left, with its offset from
/// `start`, parsed.
fn sent_until(
    core: &mut Advertiser<FixedJitter>,
    start: Instant,
    until: Duration,
) -> Vec<(Duration, RouterAdvert)> {
    let mut sent = Vec::new();
    loop {
        assert_eq!(core.poll_transmit(), None, "a transmit outside a timeout");
        let Some(deadline) = core.poll_timeout().filter(|d| *d <= start + until) else {
            break;
        };
        core.handle_timeout(deadline);
        while let Some(transmit) = core.poll_transmit() {
            sent.push((deadline - start, parsed(&transmit)));
        }
    }
    sent
}

fn parsed(transmit: &Transmit) -> RouterAdvert {
    assert_eq!(transmit.from, ours());
    assert_eq!(transmit.to, "ff02::1".parse::<Ipv6Addr>().unwrap());
    match NdiscRepr::parse(&transmit.bytes).unwrap() {
        NdiscRepr::RouterAdvert(advert) => advert,
        other => panic!("not an advertisement: {other:?}"),
    }
}

fn offsets(sent: &[(Duration, RouterAdvert)]) -> Vec<Duration> {
    sent.iter().map(|(at, _)| *at).collect()
}

#[test]
fn an_advertisement_has_m_and_o_and_the_link_s_subnet_on_link_not_autonomous() {
    let (mut core, start) = advertiser(advertising(false), ms(0));
    let sent = sent_until(&mut core, start, ms(0));
    assert_eq!(offsets(&sent), [ms(0)], "the first one at once");
    let advert = &sent[0].1;
    assert!(advert.managed, "M: addresses from DHCPv6");
    assert!(advert.other, "O: other configuration from DHCPv6");
    assert_eq!(advert.router_lifetime, 0, "not a default router");
    assert_eq!(advert.cur_hop_limit, 0);
    assert_eq!(advert.reachable_time, 0);
    assert_eq!(advert.retrans_timer, 0);
    assert_eq!(
        advert.source_link_layer,
        Some(LinkLayerAddress::Ethernet(MAC))
    );
    // Only the subnet the link has an address in, its network address.
    assert_eq!(
        advert.prefixes,
        [PrefixInformation {
            prefix_len: 64,
            on_link: true,
            autonomous: false,
            valid_lifetime: PREFIX_VALID_LIFETIME,
            preferred_lifetime: PREFIX_PREFERRED_LIFETIME,
            prefix: subnet().network(),
        }]
    );
    const { assert!(PREFIX_PREFERRED_LIFETIME <= PREFIX_VALID_LIFETIME) };
    assert_eq!(core.advertising(), [("vsrv".to_string(), vec![subnet()])]);
}

#[test]
fn every_configured_subnet_on_the_link_gets_its_own_prefix_option() {
    let start = Instant::now();
    let mut core = Advertiser::new(FixedJitter(ms(0)), advertising(false));
    let two = Link {
        addresses: vec![
            "fd00:42::7".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            "fd00:99::1".parse().unwrap(),
        ],
        ..link()
    };
    core.set_links(start, vec![two]);
    core.poll_transmit().unwrap();
    let sent = sent_until(&mut core, start, ms(0));
    let prefixes: Vec<(Ipv6Addr, u8)> = sent[0]
        .1
        .prefixes
        .iter()
        .map(|p| (p.prefix, p.prefix_len))
        .collect();
    assert_eq!(
        prefixes,
        [
            ("fd00:99::".parse().unwrap(), 64),
            ("fd00:42::".parse().unwrap(), 64)
        ]
    );
}

#[test]
fn default_router_advertises_a_lifetime_of_three_max_intervals() {
    let (mut core, start) = advertiser(advertising(true), ms(0));
    let sent = sent_until(&mut core, start, ms(0));
    assert_eq!(sent[0].1.router_lifetime, DEFAULT_ROUTER_LIFETIME);
    assert_eq!(
        Duration::from_secs(u64::from(DEFAULT_ROUTER_LIFETIME)),
        3 * MAX_RTR_ADV_INTERVAL_OURS
    );
}

#[test]
fn the_first_advertisements_come_at_most_max_initial_interval_apart_then_at_random() {
    // The largest draw: MaxRtrAdvInterval, clamped to 16 s for the first ones.
    let (mut core, start) = advertiser(advertising(false), secs(3600));
    let sent = sent_until(&mut core, start, secs(200));
    assert_eq!(
        offsets(&sent),
        [
            secs(0),
            secs(16),
            secs(32),
            secs(62),
            secs(92),
            secs(122),
            secs(152),
            secs(182)
        ]
    );
    assert_eq!(MAX_INITIAL_RTR_ADVERTISEMENTS, 3);
    assert_eq!(MAX_INITIAL_RTR_ADVERT_INTERVAL, secs(16));
    // The smallest draw: MinRtrAdvInterval throughout.
    let (mut core, start) = advertiser(advertising(false), ms(0));
    let sent = sent_until(&mut core, start, secs(45));
    assert_eq!(
        offsets(&sent),
        [secs(0), secs(10), secs(20), secs(30), secs(40)]
    );
    let events: Vec<Event> = std::iter::from_fn(|| core.poll_event()).collect();
    assert!(events.iter().all(|e| matches!(
        e,
        Event::Sent {
            kind: Sent::Unsolicited,
            solicitations: 0,
            ..
        }
    )));
}

#[test]
fn a_solicitation_is_answered_after_the_random_delay_and_resets_the_periodic_timer() {
    let (mut core, start) = advertiser(advertising(false), ms(200));
    // The first unsolicited at 0, the next due at 10.2 s (MinRtrAdvInterval + 200 ms drawn).
    assert_eq!(offsets(&sent_until(&mut core, start, secs(5))), [secs(0)]);
    core.poll_event();
    core.handle(
        start + secs(5),
        Received {
            bytes: &solicitation(Some(CLIENT_MAC)),
            source: client(),
            ifindex: IFINDEX,
            hop_limit: Some(255),
            truncated: false,
        },
    );
    let sent = sent_until(&mut core, start, secs(30));
    // Answered 200 ms later; the timer restarts from the answer.
    assert_eq!(
        offsets(&sent),
        [secs(5) + ms(200), secs(15) + ms(400), secs(25) + ms(600)]
    );
    assert!(sent.iter().all(|(_, a)| a.managed && a.other));
    let first: Vec<Event> = std::iter::from_fn(|| core.poll_event()).take(1).collect();
    assert_eq!(
        first,
        [Event::Sent {
            interface: "vsrv".into(),
            kind: Sent::Solicited,
            router_lifetime: 0,
            solicitations: 1,
        }]
    );
}

#[test]
fn solicited_advertisements_keep_min_delay_between_ras_and_answer_every_solicitation_meanwhile() {
    let (mut core, start) = advertiser(advertising(false), ms(100));
    assert_eq!(offsets(&sent_until(&mut core, start, ms(0))), [ms(0)]);
    while core.poll_event().is_some() {}
    for at in [ms(500), ms(1000), ms(2000)] {
        core.handle(
            start + at,
            Received {
                bytes: &solicitation(None),
                source: client(),
                ifindex: IFINDEX,
                hop_limit: Some(255),
                truncated: false,
            },
        );
    }
    let sent = sent_until(&mut core, start, secs(4));
    assert_eq!(
        offsets(&sent),
        [MIN_DELAY_BETWEEN_RAS],
        "3 s after the last"
    );
    let events: Vec<Event> = std::iter::from_fn(|| core.poll_event()).collect();
    assert_eq!(
        events,
        [Event::Sent {
            interface: "vsrv".into(),
            kind: Sent::Solicited,
            router_lifetime: 0,
            solicitations: 3,
        }]
    );
}

#[test]
fn a_flood_of_solicitations_is_answered_at_the_rate_limit_while_advertising() {
    let (mut core, start) = advertiser(advertising(false), ms(250));
    let mut sent = Vec::new();
    for tick in 0..3000u64 {
        let at = start + ms(tick * 10);
        let source = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, tick as u16);
        core.handle(
            at,
            Received {
                bytes: &solicitation(None),
                source,
                ifindex: IFINDEX,
                hop_limit: Some(255),
                truncated: false,
            },
        );
        core.handle_timeout(at);
        while let Some(transmit) = core.poll_transmit() {
            parsed(&transmit);
            sent.push(at);
        }
        while core.poll_event().is_some() {}
        assert_eq!(core.links.len(), 1);
    }
    for pair in sent.windows(2) {
        assert!(pair[1] - pair[0] >= MIN_DELAY_BETWEEN_RAS, "{pair:?}");
    }
    assert!((9..=11).contains(&sent.len()), "{} in 30 s", sent.len());
}

#[test]
fn stopping_as_a_default_router_sends_a_final_advertisement_with_lifetime_zero() {
    let (mut core, start) = advertiser(advertising(true), ms(0));
    assert_eq!(sent_until(&mut core, start, ms(0)).len(), 1);
    while core.poll_event().is_some() {}
    core.stop(start + secs(1));
    let last = core.poll_transmit().unwrap();
    let advert = parsed(&last);
    assert_eq!(advert.router_lifetime, 0);
    assert!(advert.managed && advert.other);
    assert_eq!(advert.prefixes.len(), 1, "the prefixes still hold");
    assert_eq!(core.poll_transmit(), None, "one final advertisement");
    assert_eq!(
        core.poll_event(),
        Some(Event::Sent {
            interface: "vsrv".into(),
            kind: Sent::Final,
            router_lifetime: 0,
            solicitations: 0,
        })
    );
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn no_final_advertisement_when_the_lifetime_was_already_zero_or_nothing_was_sent() {
    let (mut core, start) = advertiser(advertising(false), ms(0));
    sent_until(&mut core, start, ms(0));
    core.stop(start + secs(1));
    assert_eq!(
        core.poll_transmit(),
        None,
        "lifetime 0: nothing to withdraw"
    );
    // A default router that never advertised (its link had no link-local address).
    let start = Instant::now();
    let mut core = Advertiser::new(FixedJitter(ms(0)), advertising(true));
    core.set_links(
        start,
        vec![Link {
            link_local: None,
            ..link()
        }],
    );
    core.stop(start + secs(1));
    assert_eq!(core.poll_transmit(), None);
}

#[test]
fn a_default_router_link_no_longer_served_or_no_longer_advertising_sends_its_final_one() {
    // The interface leaves the served set.
    let (mut core, start) = advertiser(advertising(true), ms(0));
    sent_until(&mut core, start, ms(0));
    core.set_links(start + secs(1), Vec::new());
    assert_eq!(parsed(&core.poll_transmit().unwrap()).router_lifetime, 0);
    assert_eq!(core.poll_transmit(), None);
    // router_advertisements turned off by a reload: a final one, then the quiet answers.
    let (mut core, start) = advertiser(advertising(true), ms(0));
    sent_until(&mut core, start, ms(0));
    core.set_settings(start + secs(1), quiet());
    let last = parsed(&core.poll_transmit().unwrap());
    assert_eq!((last.router_lifetime, last.managed), (0, true));
    assert!(core.advertising().is_empty());
    // The subnet's address leaves the interface: the same.
    let (mut core, start) = advertiser(advertising(true), ms(0));
    sent_until(&mut core, start, ms(0));
    core.set_links(
        start + secs(1),
        vec![Link {
            addresses: Vec::new(),
            ..link()
        }],
    );
    assert_eq!(parsed(&core.poll_transmit().unwrap()).router_lifetime, 0);
}

#[test]
fn a_changed_advertisement_starts_again_with_the_initial_ones() {
    let (mut core, start) = advertiser(advertising(true), secs(3600));
    assert_eq!(
        offsets(&sent_until(&mut core, start, secs(100))),
        [secs(0), secs(16), secs(32), secs(62), secs(92)]
    );
    // default_router turned off: at once (3 s after the last), lifetime 0, then 16 s apart.
    core.set_settings(start + secs(93), advertising(false));
    assert_eq!(
        core.poll_transmit(),
        None,
        "not a final one: still advertising"
    );
    let sent = sent_until(&mut core, start, secs(130));
    assert_eq!(offsets(&sent), [secs(95), secs(111), secs(127)]);
    assert!(sent.iter().all(|(_, a)| a.router_lifetime == 0));
}

fn other_advertisement(managed: bool, other: bool, prefixes: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::new();
    NdiscRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed,
        other,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        source_link_layer: None,
        prefixes: prefixes
            .iter()
            .map(|p| {
                let net: Ipv6Net = p.parse().unwrap();
                PrefixInformation {
                    prefix_len: net.prefix_len(),
                    on_link: true,
                    autonomous: true,
                    valid_lifetime: 600,
                    preferred_lifetime: 300,
                    prefix: net.addr(),
                }
            })
            .collect(),
    })
    .emit(&mut bytes);
    bytes
}

#[test]
fn another_router_is_reported_once_with_what_disagrees_and_advertising_goes_on() {
    let (mut core, start) = advertiser(advertising(false), ms(0));
    sent_until(&mut core, start, ms(0));
    while core.poll_event().is_some() {}
    let hear = |core: &mut Advertiser<FixedJitter>, at: Duration, from: Ipv6Addr, bytes: &[u8]| {
        core.handle(
            start + at,
            Received {
                bytes,
                source: from,
                ifindex: IFINDEX,
                hop_limit: Some(255),
                truncated: false,
            },
        );
        std::iter::from_fn(|| core.poll_event()).collect::<Vec<_>>()
    };
    let disagreeing = other_advertisement(true, false, &["fd00:98::/64"]);
    assert_eq!(
        hear(&mut core, secs(1), router(), &disagreeing),
        [Event::OtherRouter {
            interface: "vsrv".into(),
            router: router(),
            router_lifetime: 1800,
            managed: true,
            other: false,
            prefixes: vec!["fd00:98::/64".parse().unwrap()],
            flags_disagree: true,
            prefixes_disagree: true,
        }]
    );
    // Its next advertisement: no second report.
    assert_eq!(hear(&mut core, secs(2), router(), &disagreeing), []);
    // A second router that agrees (the same prefix, written with host bits set).
    let second: Ipv6Addr = "fe80::2".parse().unwrap();
    let agreeing = other_advertisement(true, true, &["fd00:99::5/64"]);
    assert_eq!(
        hear(&mut core, secs(3), second, &agreeing),
        [Event::OtherRouter {
            interface: "vsrv".into(),
            router: second,
            router_lifetime: 1800,
            managed: true,
            other: true,
            prefixes: vec![subnet()],
            flags_disagree: false,
            prefixes_disagree: false,
        }]
    );
    // Advertising goes on: periodic ones and answers to solicitations.
    core.handle(
        start + secs(4),
        Received {
            bytes: &solicitation(None),
            source: client(),
            ifindex: IFINDEX,
            hop_limit: Some(255),
            truncated: false,
        },
    );
    let sent = sent_until(&mut core, start, secs(15));
    assert_eq!(offsets(&sent), [secs(4), secs(14)]);
    // 1800 s after its last advertisement it is forgotten, and reported again when heard.
    sent_until(&mut core, start, secs(1803));
    while core.poll_event().is_some() {}
    assert_eq!(hear(&mut core, secs(1803), router(), &disagreeing).len(), 1);
}

#[test]
fn an_advertising_link_without_a_link_local_address_sends_nothing_until_it_has_one() {
    let start = Instant::now();
    let mut core = Advertiser::new(FixedJitter(ms(0)), advertising(true));
    let bare = Link {
        link_local: None,
        ..link()
    };
    core.set_links(start, vec![bare]);
    assert_eq!(core.poll_transmit(), None);
    assert_eq!(
        core.poll_timeout(),
        None,
        "no timer for a link that cannot send"
    );
    core.handle(
        start + secs(1),
        Received {
            bytes: &solicitation(None),
            source: client(),
            ifindex: IFINDEX,
            hop_limit: Some(255),
            truncated: false,
        },
    );
    assert!(matches!(
        core.poll_event(),
        Some(Event::Dropped {
            reason: DropReason::NoLinkLocal,
            ..
        })
    ));
    core.handle_timeout(start + secs(60));
    assert_eq!(core.poll_transmit(), None);
    // The address arrives: a solicitation, then the first advertisement at once.
    core.set_links(start + secs(61), vec![link()]);
    assert_eq!(
        core.poll_transmit().unwrap().bytes[0],
        wire::ROUTER_SOLICITATION
    );
    core.handle_timeout(start + secs(61));
    let advert = parsed(&core.poll_transmit().unwrap());
    assert_eq!(advert.router_lifetime, DEFAULT_ROUTER_LIFETIME);
}

#[test]
fn a_link_outside_every_subnet_gets_the_quiet_answer_or_nothing() {
    let outside = Link {
        addresses: vec!["2001:db8::1".parse().unwrap()],
        ..link()
    };
    for (quiet, expected) in [(true, Some(quiet_bytes())), (false, None)] {
        let start = Instant::now();
        let mut core = Advertiser::new(
            FixedJitter(ms(0)),
            Settings {
                quiet,
                ..advertising(false)
            },
        );
        core.set_links(start, vec![outside.clone()]);
        core.poll_transmit().unwrap();
        assert!(core.advertising().is_empty());
        core.handle(
            start + secs(10),
            Received {
                bytes: &solicitation(None),
                source: client(),
                ifindex: IFINDEX,
                hop_limit: Some(255),
                truncated: false,
            },
        );
        core.handle_timeout(start + secs(10));
        assert_eq!(
            core.poll_transmit().map(|t| t.bytes),
            expected,
            "quiet: {quiet}"
        );
        assert_eq!(core.poll_timeout(), None, "no periodic advertisement");
    }
}

proptest! {
    /// The fuzz target's invariants (crate::v6::fuzzing::quiet_ra) on random scripts of
    /// solicitations, advertisements (with and without prefixes) and garbage, in both modes.
    #[test]
    fn random_scripts_keep_the_fuzz_invariants(
        seed in any::<u8>(),
        steps in proptest::collection::vec(
            (any::<u8>(), any::<u8>(), 0u8..4, proptest::collection::vec(any::<u8>(), 0..40)),
            0..40,
        ),
    ) {
        let mut script = vec![seed];
        for (flags, elapsed, kind, garbage) in steps {
            let bytes = match kind {
                0 => solicitation(None),
                1 => advertisement(0),
                2 => other_advertisement(flags & 1 == 1, flags & 2 == 2, &["fd00:99::/64"]),
                _ => garbage,
            };
            script.extend_from_slice(&[flags, elapsed, bytes.len() as u8]);
            script.extend_from_slice(&bytes);
        }
        crate::v6::fuzzing::quiet_ra(&script);
    }
}

#[test]
fn a_router_heard_while_advertising_keeps_the_interface_silent_once_it_turns_quiet() {
    let (mut core, start) = advertiser(advertising(false), ms(0));
    sent_until(&mut core, start, ms(0));
    core.handle(
        start + secs(1),
        Received {
            bytes: &advertisement(1800),
            source: router(),
            ifindex: IFINDEX,
            hop_limit: Some(255),
            truncated: false,
        },
    );
    core.set_settings(start + secs(2), quiet());
    while core.poll_event().is_some() {}
    core.handle(
        start + secs(10),
        Received {
            bytes: &solicitation(None),
            source: client(),
            ifindex: IFINDEX,
            hop_limit: Some(255),
            truncated: false,
        },
    );
    assert!(matches!(
        core.poll_event(),
        Some(Event::Dropped {
            reason: DropReason::OtherRouter,
            ..
        })
    ));
    core.handle_timeout(start + secs(11));
    assert_eq!(core.poll_transmit(), None);
}
