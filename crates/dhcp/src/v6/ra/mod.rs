//! The quiet router advertisement (`dhcp.v6.quiet_ra`): a sans-IO core that answers Router
//! Solicitations on served interfaces with an advertisement that configures nothing (router
//! lifetime 0, no flags, no prefix, every parameter unspecified), so that iPXE, which waits
//! for a router advertisement while it configures IPv6 beside DHCPv4, stops waiting.
//!
//! Another router always wins: the core solicits at start-up, listens to advertisements, and
//! stays silent on an interface while another router advertises there (for its router
//! lifetime after its last RA, or MaxRtrAdvInterval when that lifetime is 0). It answers only
//! solicitations, never advertises on its own, and paces answers as RFC 4861 6.2.6 asks: a
//! random delay of up to MAX_RA_DELAY_TIME, at most one advertisement per interface every
//! MIN_DELAY_BETWEEN_RAS, every solicitation that arrives meanwhile answered by that one
//! multicast advertisement. Its state is one small record per served interface: a flood of
//! solicitations costs no memory.
//!
//! Time comes in as an argument and the random delay from a [`Jitter`]; nothing here touches
//! a socket or a clock.

pub mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

pub use wire::{LinkLayerAddress, NdiscRepr, RouterAdvert, WireError};

/// RFC 4861 10: the longest random delay before a solicited advertisement.
pub const MAX_RA_DELAY_TIME: Duration = Duration::from_millis(500);
/// RFC 4861 10: the shortest time between two multicast advertisements on one interface.
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
/// RFC 4861 6.2.1: the largest MaxRtrAdvInterval, how long a router whose advertisements say
/// lifetime 0 is taken to be present after its last one.
pub const MAX_RTR_ADV_INTERVAL: Duration = Duration::from_secs(600);
/// How long after its start-up solicitation an interface only listens: a router answers a
/// solicitation within MAX_RA_DELAY_TIME, or MIN_DELAY_BETWEEN_RAS after its last multicast
/// advertisement, whichever is later.
pub const LISTEN_AFTER_SOLICITING: Duration = Duration::from_millis(3600);
/// The longest Router Solicitation accepted: one carries a header and a link-layer address,
/// and no valid one comes near the IPv6 minimum MTU.
pub const MAX_SOLICITATION_LEN: usize = 1280;
/// Events kept for the shell before the oldest are dropped (the shell drains them after every
/// call, so this only bounds memory if it does not).
const EVENT_QUEUE: usize = 256;

/// The source of the random delay before a solicited advertisement.
pub trait Jitter {
    /// A delay in `0..=max`.
    fn delay(&mut self, max: Duration) -> Duration;
}

/// One interface the core answers on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The source of everything sent there; without one nothing is sent (RFC 4861 6.1.2
    /// makes hosts drop advertisements from other sources).
    pub link_local: Option<Ipv6Addr>,
    pub mac: Option<[u8; 6]>,
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

/// What happened, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A quiet advertisement left, answering this many solicitations.
    Sent {
        interface: String,
        solicitations: u32,
    },
    /// Another router advertises on this interface: silent there until `silent_for` passes
    /// without another advertisement from it. Reported once per silence.
    RouterHeard {
        interface: String,
        router: Ipv6Addr,
        router_lifetime: u16,
        silent_for: Duration,
    },
    /// The other routers' advertisements have expired: answering again.
    RoutersGone { interface: String },
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

#[derive(Debug)]
struct LinkState {
    link: Link,
    /// Until when solicitations wait for routers to answer our own solicitation.
    listen_until: Instant,
    /// Until when another router counts as present (its last RA plus its lifetime).
    other_router_until: Option<Instant>,
    /// When the last advertisement left.
    last_sent: Option<Instant>,
    /// When the pending advertisement leaves, and how many solicitations it answers.
    pending: Option<(Instant, u32)>,
}

/// The quiet-RA core for all served interfaces.
#[derive(Debug)]
pub struct QuietRa<J> {
    links: BTreeMap<u32, LinkState>,
    jitter: J,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl<J: Jitter> QuietRa<J> {
    pub fn new(jitter: J) -> QuietRa<J> {
        QuietRa {
            links: BTreeMap::new(),
            jitter,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Sets the served interfaces. A new one (or one that gained its link-local address) gets
    /// a Router Solicitation to ff02::2 and listens before it answers anything; one no longer
    /// served is forgotten with whatever it had pending.
    pub fn set_links(&mut self, now: Instant, links: Vec<Link>) {
        let mut next = BTreeMap::new();
        for link in links {
            let state = match self.links.remove(&link.index) {
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
                        listen_until: now,
                        other_router_until: None,
                        last_sent: None,
                        pending: None,
                    };
                    self.solicit(&mut state, now);
                    state
                }
            };
            next.insert(state.link.index, state);
        }
        self.links = next;
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
                let silent_for = match advert.router_lifetime {
                    0 => MAX_RTR_ADV_INTERVAL,
                    seconds => Duration::from_secs(u64::from(seconds)),
                };
                let until = now + silent_for;
                let was_silent = state.other_router_until.is_some();
                state.other_router_until =
                    Some(state.other_router_until.map_or(until, |u| u.max(until)));
                state.pending = None;
                if !was_silent {
                    let event = Event::RouterHeard {
                        interface: state.link.name.clone(),
                        router: source,
                        router_lifetime: advert.router_lifetime,
                        silent_for,
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
                if state.other_router_until.is_some() {
                    self.dropped(interface, source, DropReason::OtherRouter);
                    return;
                }
                if state.link.link_local.is_none() {
                    self.dropped(interface, source, DropReason::NoLinkLocal);
                    return;
                }
                match &mut state.pending {
                    Some((_, answered)) => *answered = answered.saturating_add(1),
                    None => {
                        // RFC 4861 6.2.6: a random delay, but never within MIN_DELAY_BETWEEN_RAS
                        // of the last advertisement (and not before the start-up listening ends).
                        let delay = self.jitter.delay(MAX_RA_DELAY_TIME).min(MAX_RA_DELAY_TIME);
                        let mut at = (now + delay).max(state.listen_until);
                        if let Some(last) = state.last_sent {
                            at = at.max(last + MIN_DELAY_BETWEEN_RAS);
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
            let Some((at, solicitations)) = state.pending else {
                continue;
            };
            if at > now {
                continue;
            }
            state.pending = None;
            let Some(from) = state.link.link_local else {
                continue;
            };
            let mut bytes = Vec::new();
            NdiscRepr::RouterAdvert(RouterAdvert::quiet(state.link.mac)).emit(&mut bytes);
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
                gone.push(state.link.name.clone());
            }
        }
        for interface in gone {
            self.push_event(Event::RoutersGone { interface });
        }
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .flat_map(|s| [s.pending.map(|(at, _)| at), s.other_router_until])
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
