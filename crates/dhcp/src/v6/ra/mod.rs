//! Router advertisements: a sans-IO core with two modes per served interface.
//!
//! - **Advertising** (`dhcp.v6.router_advertisements: true`, on an interface with an address in
//!   a `dhcp.v6.subnets` network): RAs with M=1 and O=1 (addresses and other configuration
//!   from DHCPv6), one Prefix Information option per configured subnet on that link (L=1, A=0:
//!   on-link, no autonomous addresses; valid [`PREFIX_VALID_LIFETIME`], preferred
//!   [`PREFIX_PREFERRED_LIFETIME`]), the source link-layer address, router lifetime 0 unless
//!   `dhcp.v6.default_router` (then [`DEFAULT_ROUTER_LIFETIME`]). Periodic unsolicited RAs as
//!   RFC 4861 6.2.4 asks (the first [`MAX_INITIAL_RTR_ADVERTISEMENTS`] at most
//!   [`MAX_INITIAL_RTR_ADVERT_INTERVAL`] apart, then every [`MIN_RTR_ADV_INTERVAL`] to
//!   [`MAX_RTR_ADV_INTERVAL_OURS`]), solicited ones paced as 6.2.6 asks, and when it stops
//!   being a default router a final RA with router lifetime 0 (6.2.5). Other routers heard
//!   there are reported ([`Event::OtherRouter`], with whether their flags and prefixes
//!   disagree) but do not silence it: the operator asked for these advertisements.
//! - **Quiet** (`dhcp.v6.quiet_ra`, on any other served interface): answers Router
//!   Solicitations with an advertisement that configures nothing (router lifetime 0, no flags,
//!   no prefix, every parameter unspecified), so that iPXE, which waits for a router
//!   advertisement while it configures IPv6 beside DHCPv4, stops waiting. Another router always
//!   wins: it stays silent on an interface while another router advertises there (for its
//!   router lifetime after its last RA, or MaxRtrAdvInterval when that lifetime is 0). It
//!   answers only solicitations, never advertises on its own.
//!
//! Both modes solicit at start-up (to hear other routers early), pace answers as RFC 4861
//! 6.2.6 asks (a random delay of up to MAX_RA_DELAY_TIME, at most one multicast advertisement
//! per interface every MIN_DELAY_BETWEEN_RAS, every solicitation that arrives meanwhile
//! answered by that one advertisement) and send nothing from an interface without a
//! link-local address (RFC 4861 6.1.2 makes hosts drop advertisements from other sources).
//! The state is one small record per served interface (and a few remembered routers): a flood
//! of solicitations costs no memory.
//!
//! Time comes in as an argument and the random delays from a [`Jitter`]; nothing here touches
//! a socket or a clock.

pub mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;

pub use wire::{LinkLayerAddress, NdiscRepr, PrefixInformation, RouterAdvert, WireError};

/// RFC 4861 10: the longest random delay before a solicited advertisement.
pub const MAX_RA_DELAY_TIME: Duration = Duration::from_millis(500);
/// RFC 4861 10: the shortest time between two multicast advertisements on one interface.
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
/// RFC 4861 6.2.1: the largest MaxRtrAdvInterval, how long a router whose advertisements say
/// lifetime 0 is taken to be present after its last one.
pub const MAX_RTR_ADV_INTERVAL: Duration = Duration::from_secs(600);
/// RFC 4861 10: how many of the first advertisements of an interface go out at most
/// [`MAX_INITIAL_RTR_ADVERT_INTERVAL`] apart.
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u32 = 3;
/// RFC 4861 10: the longest interval between the first advertisements.
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
/// Our MinRtrAdvInterval (RFC 4861 6.2.1: at least 3 s, at most 0.75 x MaxRtrAdvInterval).
/// Short, for netboot: a firmware that does not solicit hears an RA within this order.
pub const MIN_RTR_ADV_INTERVAL: Duration = Duration::from_secs(10);
/// Our MaxRtrAdvInterval (RFC 4861 6.2.1: 4 s to 1800 s, default 600 s).
pub const MAX_RTR_ADV_INTERVAL_OURS: Duration = Duration::from_secs(30);
/// The router lifetime with `dhcp.v6.default_router: true`: RFC 4861 6.2.1's default
/// AdvDefaultLifetime, 3 x MaxRtrAdvInterval (a client drops the route 90 s after Kindling
/// stops advertising without its final RA).
pub const DEFAULT_ROUTER_LIFETIME: u16 = 90;
/// The prefixes' valid lifetime (how long they stay on-link): one day, so clients keep the
/// on-link route through a restart or an outage of this box, and a subnet removed from the
/// config leaves them within a day.
pub const PREFIX_VALID_LIFETIME: u32 = 86_400;
/// The prefixes' preferred lifetime: four hours (A is clear, so no address is formed from it;
/// RFC 4861 requires only that it not exceed the valid lifetime).
pub const PREFIX_PREFERRED_LIFETIME: u32 = 14_400;
/// How long after its start-up solicitation an interface only listens: a router answers a
/// solicitation within MAX_RA_DELAY_TIME, or MIN_DELAY_BETWEEN_RAS after its last multicast
/// advertisement, whichever is later.
pub const LISTEN_AFTER_SOLICITING: Duration = Duration::from_millis(3600);
/// The longest Router Solicitation accepted: one carries a header and a link-layer address,
/// and no valid one comes near the IPv6 minimum MTU.
pub const MAX_SOLICITATION_LEN: usize = 1280;
/// Other routers remembered per advertising interface (to report each once); past that the
/// one heard longest ago is forgotten.
const ROUTERS_REMEMBERED: usize = 8;
/// Prefixes of another router's advertisement kept in its report.
const PREFIXES_REPORTED: usize = 16;
/// Events kept for the shell before the oldest are dropped (the shell drains them after every
/// call, so this only bounds memory if it does not).
const EVENT_QUEUE: usize = 256;

/// The source of the random delays.
pub trait Jitter {
    /// A delay in `0..=max`.
    fn delay(&mut self, max: Duration) -> Duration;
}

/// What the core does, from the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `dhcp.v6.quiet_ra` is on: quiet answers on served interfaces that do not advertise.
    pub quiet: bool,
    /// `dhcp.v6.router_advertisements: true` (server mode): the `dhcp.v6.subnets` networks,
    /// advertised on the interfaces that have an address in one of them. Empty: no
    /// advertising anywhere.
    pub prefixes: Vec<Ipv6Net>,
    /// `dhcp.v6.default_router`: advertise a router lifetime of [`DEFAULT_ROUTER_LIFETIME`].
    pub default_router: bool,
}

/// One interface the core serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The source of everything sent there; without one nothing is sent (RFC 4861 6.1.2
    /// makes hosts drop advertisements from other sources).
    pub link_local: Option<Ipv6Addr>,
    pub mac: Option<[u8; 6]>,
    /// Its global and unique-local addresses: which configured subnets are on this link.
    pub addresses: Vec<Ipv6Addr>,
}

/// One received ICMPv6 message (RS or RA; the socket filters the rest).
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The ICMPv6 message, without the IPv6 header.
    pub bytes: &'a [u8],
    pub source: Ipv6Addr,
    pub ifindex: u32,
    /// The IPv6 hop limit it arrived with (`None`: the socket did not say).
    pub hop_limit: Option<u8>,
    /// The socket cut it (it was larger than the receive buffer).
    pub truncated: bool,
}

/// A message to send: ICMPv6 bytes (checksum zero, the kernel fills it in) out of one
/// interface, from its link-local address, with hop limit 255 (the socket's setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub ifindex: u32,
    pub from: Ipv6Addr,
    pub to: Ipv6Addr,
    pub bytes: Vec<u8>,
}

/// Which advertisement left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The quiet one, answering solicitations.
    Quiet,
    /// A full advertisement on its periodic timer (RFC 4861 6.2.4).
    Unsolicited,
    /// A full advertisement answering solicitations (6.2.6).
    Solicited,
    /// The last one, with router lifetime 0, as the interface stops being a router (6.2.5).
    Final,
}

/// What happened, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An advertisement left, answering this many solicitations.
    Sent {
        interface: String,
        kind: Sent,
        router_lifetime: u16,
        solicitations: u32,
    },
    /// Another router advertises on a quiet interface: silent there until `silent_for`
    /// passes without another advertisement from it. Reported once per silence.
    RouterHeard {
        interface: String,
        router: Ipv6Addr,
        router_lifetime: u16,
        silent_for: Duration,
    },
    /// The other routers' advertisements have expired: answering again.
    RoutersGone { interface: String },
    /// Another router advertises on an interface where Kindling advertises too. Reported once
    /// per router until its advertisements expire (its router lifetime, or
    /// MaxRtrAdvInterval when that is 0, after its last one).
    OtherRouter {
        interface: String,
        router: Ipv6Addr,
        router_lifetime: u16,
        managed: bool,
        other: bool,
        /// Its on-link prefixes (at most 16).
        prefixes: Vec<Ipv6Net>,
        /// Its M or O flag is clear where ours are set.
        flags_disagree: bool,
        /// Its on-link prefixes are not the ones Kindling advertises there.
        prefixes_disagree: bool,
    },
    /// A message not acted on, and why.
    Dropped {
        interface: Option<String>,
        source: Ipv6Addr,
        reason: DropReason,
    },
}

/// Why a message was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    #[error("larger than the receive buffer")]
    Truncated,
    #[error("a {0}-byte solicitation (longer than any valid one)")]
    Oversized(usize),
    #[error("IPv6 hop limit {0:?}, not 255: it did not originate on this link")]
    HopLimit(Option<u8>),
    #[error("source is neither link-local nor unspecified")]
    OffLinkSource,
    #[error("a solicitation from :: carrying a source link-layer address")]
    LinkLayerAddressFromUnspecified,
    #[error("interface not served")]
    NotServed,
    #[error("the interface has no link-local IPv6 address to answer from")]
    NoLinkLocal,
    #[error("another router advertises on this interface")]
    OtherRouter,
    #[error("one of our own messages")]
    Ours,
}

/// What an interface advertises in advertising mode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Advertised {
    prefixes: Vec<Ipv6Net>,
    router_lifetime: u16,
}

/// The periodic state of an advertising interface.
#[derive(Debug)]
struct Advertising {
    what: Advertised,
    /// Advertisements sent since it became advertising (or since what it says changed).
    sent: u32,
    /// When the next unsolicited advertisement leaves.
    next: Instant,
}

#[derive(Debug)]
struct LinkState {
    link: Link,
    /// `Some`: advertising mode; `None`: quiet mode (if quiet is on) or nothing.
    advertising: Option<Advertising>,
    /// Until when solicitations wait for routers to answer our own solicitation (quiet mode).
    listen_until: Instant,
    /// Until when another router counts as present (its last RA plus its lifetime).
    other_router_until: Option<Instant>,
    /// Other routers reported on an advertising interface, until when each counts as present.
    routers: BTreeMap<Ipv6Addr, Instant>,
    /// When the last multicast advertisement left.
    last_sent: Option<Instant>,
    /// When the pending solicited advertisement leaves, and how many solicitations it answers.
    pending: Option<(Instant, u32)>,
}

/// The router advertisement core for all served interfaces.
#[derive(Debug)]
pub struct Advertiser<J> {
    settings: Settings,
    links: BTreeMap<u32, LinkState>,
    jitter: J,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl<J: Jitter> Advertiser<J> {
    pub fn new(jitter: J, settings: Settings) -> Advertiser<J> {
        Advertiser {
            settings,
            links: BTreeMap::new(),
            jitter,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Takes new settings (a reload): every interface's advertisement is worked out again; one
    /// that stops being a default router sends its final advertisement, one whose
    /// advertisement changed starts again with the fast initial ones.
    pub fn set_settings(&mut self, now: Instant, settings: Settings) {
        self.settings = settings;
        let indices: Vec<u32> = self.links.keys().copied().collect();
        for index in indices {
            if let Some(mut state) = self.links.remove(&index) {
                self.update_mode(&mut state, now);
                self.links.insert(index, state);
            }
        }
    }

    /// Sets the served interfaces. A new one (or one that gained its link-local address) gets
    /// a Router Solicitation to ff02::2 and listens before it answers anything quietly; one no
    /// longer served sends its final advertisement if it was a default router, and is forgotten
    /// with whatever it had pending.
    pub fn set_links(&mut self, now: Instant, links: Vec<Link>) {
        let mut next = BTreeMap::new();
        for link in links {
            let mut state = match self.links.remove(&link.index) {
                Some(mut state) => {
                    let gained_address =
                        state.link.link_local.is_none() && link.link_local.is_some();
                    state.link = link;
                    if gained_address {
                        self.solicit(&mut state, now);
                    }
                    state
                }
                None => {
                    let mut state = LinkState {
                        link,
                        advertising: None,
                        listen_until: now,
                        other_router_until: None,
                        routers: BTreeMap::new(),
                        last_sent: None,
                        pending: None,
                    };
                    self.solicit(&mut state, now);
                    state
                }
            };
            self.update_mode(&mut state, now);
            next.insert(state.link.index, state);
        }
        let gone = std::mem::replace(&mut self.links, next);
        for (_, mut state) in gone {
            self.cease(&mut state, now);
        }
    }

    /// Stops advertising everywhere (shutdown): every interface that was a default router
    /// sends its final advertisement (RFC 4861 6.2.5). The interfaces are forgotten.
    pub fn stop(&mut self, now: Instant) {
        let links = std::mem::take(&mut self.links);
        for (_, mut state) in links {
            self.cease(&mut state, now);
        }
    }

    /// The interfaces in advertising mode, with the prefixes each advertises.
    pub fn advertising(&self) -> Vec<(String, Vec<Ipv6Net>)> {
        self.links
            .values()
            .filter_map(|s| {
                let a = s.advertising.as_ref()?;
                Some((s.link.name.clone(), a.what.prefixes.clone()))
            })
            .collect()
    }

    /// What `link` advertises under the current settings: `None` when it does not (no
    /// configured subnet has one of its addresses).
    fn advertised(&self, link: &Link) -> Option<Advertised> {
        let prefixes: Vec<Ipv6Net> = self
            .settings
            .prefixes
            .iter()
            .filter(|net| link.addresses.iter().any(|a| net.contains(a)))
            .map(Ipv6Net::trunc)
            .collect();
        if prefixes.is_empty() {
            return None;
        }
        let router_lifetime = if self.settings.default_router {
            DEFAULT_ROUTER_LIFETIME
        } else {
            0
        };
        Some(Advertised {
            prefixes,
            router_lifetime,
        })
    }

    /// Moves `state` into the mode the settings and its addresses call for.
    fn update_mode(&mut self, state: &mut LinkState, now: Instant) {
        let wanted = self.advertised(&state.link);
        let current = state.advertising.as_ref().map(|a| &a.what);
        if wanted.as_ref() == current {
            return;
        }
        match wanted {
            Some(what) => {
                // RFC 4861 6.2.4: an interface that becomes advertising, or whose
                // advertisement changes, starts again with the fast initial advertisements.
                // Still no sooner than MIN_DELAY_BETWEEN_RAS after the last multicast one.
                let next = state
                    .last_sent
                    .map_or(now, |last| now.max(last + MIN_DELAY_BETWEEN_RAS));
                state.advertising = Some(Advertising {
                    what,
                    sent: 0,
                    next,
                });
                state.pending = None;
            }
            None => {
                self.cease(state, now);
            }
        }
    }

    /// Ends advertising mode on `state`: the final advertisement (router lifetime 0) when it
    /// was a default router and can send.
    fn cease(&mut self, state: &mut LinkState, now: Instant) {
        let Some(advertising) = state.advertising.take() else {
            return;
        };
        state.pending = None;
        if advertising.what.router_lifetime == 0 || advertising.sent == 0 {
            return;
        }
        let Some(from) = state.link.link_local else {
            return;
        };
        let final_ra = Advertised {
            router_lifetime: 0,
            ..advertising.what
        };
        let bytes = full_advert(&final_ra, state.link.mac);
        state.last_sent = Some(now);
        self.transmits.push_back(Transmit {
            ifindex: state.link.index,
            from,
            to: all_nodes(),
            bytes,
        });
        self.push_event(Event::Sent {
            interface: state.link.name.clone(),
            kind: Sent::Final,
            router_lifetime: 0,
            solicitations: 0,
        });
    }

    fn solicit(&mut self, state: &mut LinkState, now: Instant) {
        let Some(from) = state.link.link_local else {
            return;
        };
        let mut bytes = Vec::new();
        NdiscRepr::RouterSolicit {
            source_link_layer: state.link.mac.map(LinkLayerAddress::Ethernet),
        }
        .emit(&mut bytes);
        self.transmits.push_back(Transmit {
            ifindex: state.link.index,
            from,
            to: all_routers(),
            bytes,
        });
        state.listen_until = now + LISTEN_AFTER_SOLICITING;
    }

    /// Takes one received message.
    pub fn handle(&mut self, now: Instant, received: Received<'_>) {
        self.expire(now);
        let source = received.source;
        let Some(state) = self.links.get_mut(&received.ifindex) else {
            self.dropped(None, source, DropReason::NotServed);
            return;
        };
        let interface = Some(state.link.name.clone());
        if received.truncated {
            self.dropped(interface, source, DropReason::Truncated);
            return;
        }
        if received.hop_limit != Some(255) {
            self.dropped(interface, source, DropReason::HopLimit(received.hop_limit));
            return;
        }
        let repr = match NdiscRepr::parse(received.bytes) {
            Ok(repr) => repr,
            Err(error) => {
                self.dropped(interface, source, DropReason::Malformed(error));
                return;
            }
        };
        if Some(source) == state.link.link_local {
            self.dropped(interface, source, DropReason::Ours);
            return;
        }
        match repr {
            NdiscRepr::RouterAdvert(advert) => {
                // RFC 4861 6.1.2: an advertisement comes from a link-local address.
                if !is_link_local(&source) {
                    self.dropped(interface, source, DropReason::OffLinkSource);
                    return;
                }
                let present_for = match advert.router_lifetime {
                    0 => MAX_RTR_ADV_INTERVAL,
                    seconds => Duration::from_secs(u64::from(seconds)),
                };
                let until = now + present_for;
                if state.advertising.is_none() && !self.settings.quiet {
                    self.dropped(interface, source, DropReason::NotServed);
                    return;
                }
                // Kept in both modes, so that an interface that stops advertising (a reload)
                // stays quiet while the router it heard is still there.
                let was_silent = state.other_router_until.is_some();
                state.other_router_until =
                    Some(state.other_router_until.map_or(until, |u| u.max(until)));
                if let Some(advertising) = &state.advertising {
                    // Advertising: report the router, keep advertising.
                    let event = other_router(
                        &state.link.name,
                        source,
                        &advert,
                        &advertising.what.prefixes,
                    );
                    let known = state.routers.insert(source, until).is_some();
                    if state.routers.len() > ROUTERS_REMEMBERED
                        && let Some(oldest) = state
                            .routers
                            .iter()
                            .min_by_key(|(_, until)| **until)
                            .map(|(router, _)| *router)
                    {
                        state.routers.remove(&oldest);
                    }
                    if !known {
                        self.push_event(event);
                    }
                    return;
                }
                state.pending = None;
                if !was_silent {
                    let event = Event::RouterHeard {
                        interface: state.link.name.clone(),
                        router: source,
                        router_lifetime: advert.router_lifetime,
                        silent_for: present_for,
                    };
                    self.push_event(event);
                }
            }
            NdiscRepr::RouterSolicit { source_link_layer } => {
                if received.bytes.len() > MAX_SOLICITATION_LEN {
                    let reason = DropReason::Oversized(received.bytes.len());
                    self.dropped(interface, source, reason);
                    return;
                }
                // RFC 4861 6.1.1, and off-link sources (issue 13) are not answered.
                if source.is_unspecified() {
                    if source_link_layer.is_some() {
                        let reason = DropReason::LinkLayerAddressFromUnspecified;
                        self.dropped(interface, source, reason);
                        return;
                    }
                } else if !is_link_local(&source) {
                    self.dropped(interface, source, DropReason::OffLinkSource);
                    return;
                }
                let advertising = state.advertising.as_ref().map(|a| a.next);
                if advertising.is_none() {
                    if !self.settings.quiet {
                        self.dropped(interface, source, DropReason::NotServed);
                        return;
                    }
                    if state.other_router_until.is_some() {
                        self.dropped(interface, source, DropReason::OtherRouter);
                        return;
                    }
                }
                if state.link.link_local.is_none() {
                    self.dropped(interface, source, DropReason::NoLinkLocal);
                    return;
                }
                match &mut state.pending {
                    Some((_, answered)) => *answered = answered.saturating_add(1),
                    None => {
                        // RFC 4861 6.2.6: a random delay, but never within MIN_DELAY_BETWEEN_RAS
                        // of the last advertisement.
                        let delay = self.jitter.delay(MAX_RA_DELAY_TIME).min(MAX_RA_DELAY_TIME);
                        let mut at = now + delay;
                        if let Some(last) = state.last_sent {
                            at = at.max(last + MIN_DELAY_BETWEEN_RAS);
                        }
                        match advertising {
                            // A periodic advertisement due sooner answers it.
                            Some(next) => at = at.min(next),
                            // Quiet: not before the start-up listening ends.
                            None => at = at.max(state.listen_until),
                        }
                        state.pending = Some((at, 1));
                    }
                }
            }
        }
    }

    /// Sends what is due by `now` and ends silences that have expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        let mut sent = Vec::new();
        for state in self.links.values_mut() {
            let pending = state.pending.filter(|(at, _)| *at <= now);
            let periodic = state.advertising.as_ref().is_some_and(|a| a.next <= now);
            if pending.is_none() && !periodic {
                continue;
            }
            state.pending = None;
            let Some(from) = state.link.link_local else {
                continue;
            };
            let solicitations = pending.map_or(0, |(_, n)| n);
            let (bytes, kind, router_lifetime) = match &mut state.advertising {
                Some(advertising) => {
                    let bytes = full_advert(&advertising.what, state.link.mac);
                    // RFC 4861 6.2.4: every multicast advertisement resets the timer to a
                    // random interval, at most MAX_INITIAL_RTR_ADVERT_INTERVAL for the first
                    // MAX_INITIAL_RTR_ADVERTISEMENTS.
                    advertising.sent = advertising.sent.saturating_add(1);
                    let spread = MAX_RTR_ADV_INTERVAL_OURS - MIN_RTR_ADV_INTERVAL;
                    let mut interval = MIN_RTR_ADV_INTERVAL + self.jitter.delay(spread).min(spread);
                    if advertising.sent < MAX_INITIAL_RTR_ADVERTISEMENTS {
                        interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
                    }
                    advertising.next = now + interval;
                    let kind = if periodic {
                        Sent::Unsolicited
                    } else {
                        Sent::Solicited
                    };
                    (bytes, kind, advertising.what.router_lifetime)
                }
                None => {
                    let mut bytes = Vec::new();
                    NdiscRepr::RouterAdvert(RouterAdvert::quiet(state.link.mac)).emit(&mut bytes);
                    (bytes, Sent::Quiet, 0)
                }
            };
            state.last_sent = Some(now);
            sent.push((
                Transmit {
                    ifindex: state.link.index,
                    from,
                    to: all_nodes(),
                    bytes,
                },
                Event::Sent {
                    interface: state.link.name.clone(),
                    kind,
                    router_lifetime,
                    solicitations,
                },
            ));
        }
        for (transmit, event) in sent {
            self.transmits.push_back(transmit);
            self.push_event(event);
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for state in self.links.values_mut() {
            if state.other_router_until.is_some_and(|until| until <= now) {
                state.other_router_until = None;
                // Only a quiet interface was silent because of it.
                if state.advertising.is_none() {
                    gone.push(state.link.name.clone());
                }
            }
            state.routers.retain(|_, until| *until > now);
        }
        for interface in gone {
            self.push_event(Event::RoutersGone { interface });
        }
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .flat_map(|s| {
                // An interface that cannot send has no periodic deadline.
                let periodic = s
                    .advertising
                    .as_ref()
                    .filter(|_| s.link.link_local.is_some())
                    .map(|a| a.next);
                [s.pending.map(|(at, _)| at), s.other_router_until, periodic]
            })
            .flatten()
            .min()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn dropped(&mut self, interface: Option<String>, source: Ipv6Addr, reason: DropReason) {
        self.push_event(Event::Dropped {
            interface,
            source,
            reason,
        });
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= EVENT_QUEUE {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// The full advertisement: M and O, the prefixes on-link and not autonomous, the link-layer
/// address, every other parameter unspecified.
fn full_advert(what: &Advertised, mac: Option<[u8; 6]>) -> Vec<u8> {
    let advert = RouterAdvert {
        cur_hop_limit: 0,
        managed: true,
        other: true,
        router_lifetime: what.router_lifetime,
        reachable_time: 0,
        retrans_timer: 0,
        source_link_layer: mac.map(LinkLayerAddress::Ethernet),
        prefixes: what
            .prefixes
            .iter()
            .map(|net| PrefixInformation {
                prefix_len: net.prefix_len(),
                on_link: true,
                autonomous: false,
                valid_lifetime: PREFIX_VALID_LIFETIME,
                preferred_lifetime: PREFIX_PREFERRED_LIFETIME,
                prefix: net.network(),
            })
            .collect(),
    };
    let mut bytes = Vec::new();
    NdiscRepr::RouterAdvert(advert).emit(&mut bytes);
    bytes
}

/// The report of another router's advertisement heard where we advertise `ours`.
fn other_router(
    interface: &str,
    router: Ipv6Addr,
    advert: &RouterAdvert,
    ours: &[Ipv6Net],
) -> Event {
    let mut prefixes: Vec<Ipv6Net> = advert
        .prefixes
        .iter()
        .filter(|p| p.on_link)
        .filter_map(|p| Ipv6Net::new(p.prefix, p.prefix_len).ok())
        .map(|net| net.trunc())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let mut our_prefixes = ours.to_vec();
    our_prefixes.sort();
    our_prefixes.dedup();
    let prefixes_disagree = prefixes != our_prefixes;
    prefixes.truncate(PREFIXES_REPORTED);
    Event::OtherRouter {
        interface: interface.to_string(),
        router,
        router_lifetime: advert.router_lifetime,
        managed: advert.managed,
        other: advert.other,
        prefixes,
        flags_disagree: !(advert.managed && advert.other),
        prefixes_disagree,
    }
}

fn all_routers() -> Ipv6Addr {
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2)
}

fn all_nodes() -> Ipv6Addr {
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
}

fn is_link_local(address: &Ipv6Addr) -> bool {
    (address.segments()[0] & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests;
