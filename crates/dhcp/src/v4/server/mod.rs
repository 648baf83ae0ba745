//! The DHCPv4 server and proxyDHCP core: a pure state machine. The tokio shell hands it each
//! datagram with the facts of its arrival (interface, addresses, port) and the wall-clock time;
//! the core answers with an [`Action`]: a datagram to send, lease records to make durable before
//! the datagram may leave, or an address to probe before it is offered. No sockets, no clock,
//! no files: every rule below is tested without them.
//!
//! # Rules (RFC 2131 unless noted)
//!
//! - DISCOVER: the client's reserved address, else the address it holds or held (its lease
//!   record, found by client identifier and then MAC), else the address it already was offered,
//!   else its requested address (option 50) when free, else the first never-used free address
//!   of the range, else the first free one that was used before. An address nobody held before
//!   is probed first (ping check) when configured; one that answers is set aside as in use.
//! - REQUEST in SELECTING (server identifier present): an identifier that is not ours means the
//!   client took another server's offer, so ours is withdrawn. Ours: ACK the requested address if
//!   it is still the client's to take, else NAK.
//! - REQUEST in INIT-REBOOT (option 50, no ciaddr), RENEWING and REBINDING (ciaddr): NAK an
//!   address on the wrong network or held by another client; ACK the client's own lease or
//!   reservation; stay silent for a client we have no record of (RFC 2131 4.3.2).
//! - Every ACK that grants or extends a lease is an [`Action::Commit`]: the record is durable
//!   before the ACK leaves.
//! - DECLINE sets the address aside (abandoned) for the lease time. RELEASE marks the lease
//!   released; the client gets the same address back later if nobody else took it. INFORM gets
//!   the options without a lease.
//! - Replies go where RFC 2131 4.1 says: to the relay (giaddr, port 67), else to ciaddr, else
//!   broadcast when the client asks or for a NAK, else unicast to the new address at the
//!   client's hardware address ([`Transmit::hardware`]).
//! - Proxy mode (PXE specification 2.1): only netboot clients, only boot information: a DISCOVER
//!   gets an OFFER without an address; a REQUEST on port 4011 gets the boot server's ACK.

pub mod coexist;
mod discover;
mod hostname;
mod inform;
mod proxy;
mod release;
mod reply;
mod request;
mod settings;
mod silence;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use dhcproto::v4::{MessageType, Opcode};
use ipnet::Ipv4Net;

use crate::event::{LeaseEvent, LeaseEventKind};
use crate::identity::SystemUuid;
use crate::lease::index::Index;
use crate::lease::{AbandonReason, LeaseRecord, LeaseState, MacAddr};
use crate::v4::codec::{self, Message};

pub use hostname::sanitize_hostname;
pub use settings::{Class, Environment, Reservation, ServiceMode, Settings, Subnet, parse_mac};
pub use silence::{Silence, SubnetName};

/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot server port (proxy mode).
pub const BOOT_SERVER_PORT: u16 = 4011;

/// The interface a datagram arrived on, as the shell learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    /// Its IPv4 addresses with their prefixes.
    pub addresses: Vec<Ipv4Net>,
}

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub bytes: &'a [u8],
    pub source: SocketAddrV4,
    /// The IP destination of the datagram (255.255.255.255 for a broadcast).
    pub destination: Ipv4Addr,
    pub interface: &'a Interface,
    /// The local port it arrived on: 67, or 4011 for the proxy's boot server.
    pub port: u16,
}

/// A datagram for the shell to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub bytes: Vec<u8>,
    pub to: SocketAddrV4,
    /// The source address (the server identifier).
    pub from: Ipv4Addr,
    /// The interface to send on.
    pub ifindex: u32,
    /// The local port to send from (the socket the request came in on).
    pub port: u16,
    /// Unicast to a client that has no address yet: the shell must make `to` reach this
    /// hardware address (an ARP entry), or broadcast instead if it cannot.
    pub hardware: Option<MacAddr>,
}

/// Identifies a probe between [`Action::Probe`] and [`Core::probe_finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeId(pub u64);

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a datagram.
    Send(Transmit),
    /// Make `records` durable; then send `then` (if any) and publish `events`. If the commit
    /// fails, nothing is sent.
    Commit {
        records: Vec<LeaseRecord>,
        then: Option<Transmit>,
        events: Vec<LeaseEvent>,
    },
    /// Find out whether anything answers on `address` (ICMP echo) and call
    /// [`Core::probe_finished`].
    Probe {
        id: ProbeId,
        address: Ipv4Addr,
        ifindex: u32,
    },
}

/// What the core does with one datagram: an action, or why it stays silent.
pub type Verdict = Result<Action, Silence>;

/// Who a client is: its client identifier when it sends one, else its MAC (RFC 2131 4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    mac: MacAddr,
    client_id: Option<Vec<u8>>,
    /// The SMBIOS UUID of option 97, as sent.
    uuid: Option<[u8; 16]>,
}

impl ClientKey {
    fn of(message: &Message, mac: MacAddr) -> ClientKey {
        ClientKey {
            mac,
            client_id: message
                .client_id()
                .filter(|id| !id.is_empty())
                .map(<[u8]>::to_vec),
            uuid: message
                .client_uuid()
                .and_then(SystemUuid::of_v4_option)
                .and_then(|u| u.try_into().ok()),
        }
    }

    /// The reservation that names this client.
    fn reservation<'s>(&self, settings: &'s Settings) -> Option<&'s Reservation> {
        settings.reservation(
            self.client_id.as_deref(),
            self.uuid.as_ref().map(|u| &u[..]),
            Some(self.mac),
        )
    }

    /// True when `record` belongs to this client.
    fn owns(&self, record: &LeaseRecord) -> bool {
        match (&self.client_id, &record.client_id) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => self.mac == record.mac,
        }
    }
}

/// An address set aside for one client: offered, or being probed before the offer.
#[derive(Debug, Clone)]
struct Hold {
    client: ClientKey,
    until: SystemTime,
}

/// A DISCOVER waiting for its probe.
#[derive(Debug, Clone)]
struct PendingProbe {
    request: Message,
    interface: Interface,
    source: SocketAddrV4,
    destination: Ipv4Addr,
    port: u16,
    address: Ipv4Addr,
    attempts: u32,
}

/// How many addresses one DISCOVER may probe before the client is left without an offer.
const MAX_PROBES_PER_DISCOVER: u32 = 3;
/// An address that answered no probe is not probed again for this long.
const PROBE_MEMORY: Duration = Duration::from_secs(60);
/// How often "pool exhausted" is logged per subnet.
const EXHAUSTED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The core. See the module documentation.
pub struct Core {
    settings: Settings,
    leases: Index,
    holds: HashMap<Ipv4Addr, Hold>,
    probes: HashMap<ProbeId, PendingProbe>,
    /// Addresses that answered no probe, and when.
    probed_free: HashMap<Ipv4Addr, SystemTime>,
    /// Per subnet: where the next scan for a never-used address starts.
    cursors: Vec<u32>,
    next_probe: u64,
    exhausted_logged: HashMap<usize, SystemTime>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("mode", &self.settings.mode)
            .field("leases", &self.leases.len())
            .field("holds", &self.holds.len())
            .finish_non_exhaustive()
    }
}

/// Facts of one request, gathered once.
struct Request<'a> {
    message: &'a Message,
    message_type: MessageType,
    client: ClientKey,
    interface: &'a Interface,
    source: SocketAddrV4,
    destination: Ipv4Addr,
    port: u16,
}

impl Core {
    /// A core over the durable lease records (as recovered by the store).
    pub fn new(settings: Settings, records: impl IntoIterator<Item = LeaseRecord>) -> Core {
        let mut leases = Index::default();
        for record in records {
            leases.apply(record);
        }
        let cursors = vec![0; settings.subnets.len()];
        Core {
            settings,
            leases,
            holds: HashMap::new(),
            probes: HashMap::new(),
            probed_free: HashMap::new(),
            cursors,
            next_probe: 0,
            exhausted_logged: HashMap::new(),
        }
    }

    /// Replaces the settings (SIGHUP). Leases stay; offers made under the old config lapse.
    pub fn reconfigure(&mut self, settings: Settings) {
        self.cursors = vec![0; settings.subnets.len()];
        self.settings = settings;
        self.holds.clear();
        self.probed_free.clear();
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every lease record, ordered by address.
    pub fn leases(&self) -> Vec<LeaseRecord> {
        self.leases.all()
    }

    /// The record for `address`.
    pub fn lease(&self, address: Ipv4Addr) -> Option<&LeaseRecord> {
        self.leases.by_addr(address)
    }

    /// Handles one datagram: the action to take, or `None` when the core stays silent (see
    /// [`Core::decide`] for why).
    pub fn handle(&mut self, datagram: &Datagram<'_>, now: SystemTime) -> Option<Action> {
        self.decide(datagram, now).ok()
    }

    /// Handles one datagram: the action to take, or why the core stays silent.
    pub fn decide(&mut self, datagram: &Datagram<'_>, now: SystemTime) -> Verdict {
        let message = match codec::decode(datagram.bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(
                    source = %datagram.source,
                    interface = %datagram.interface.name,
                    %error,
                    "dhcp: dropped a malformed datagram"
                );
                return Err(Silence::Malformed(error));
            }
        };
        if message.opcode() != Opcode::BootRequest {
            return Err(Silence::NotARequest);
        }
        let Some(message_type) = message.message_type() else {
            tracing::debug!(source = %datagram.source, "dhcp: dropped a BOOTP request (no DHCP message type)");
            return Err(Silence::Bootp);
        };
        let Some(mac) = message.mac().map(MacAddr) else {
            tracing::debug!(source = %datagram.source, htype = ?message.htype(), hlen = message.hlen(),
                "dhcp: dropped a request without an Ethernet hardware address");
            return Err(Silence::NoEthernetAddress);
        };
        if mac == coexist::PROBE_MAC {
            // Our own coexistence probe, looped back by the kernel.
            return Err(Silence::OwnProbe);
        }
        let client = ClientKey::of(&message, mac);
        let request = Request {
            message: &message,
            message_type,
            client,
            interface: datagram.interface,
            source: datagram.source,
            destination: datagram.destination,
            port: datagram.port,
        };
        if let Some(reservation) = request.client.reservation(&self.settings)
            && reservation.ignore
        {
            tracing::debug!(%mac, "dhcp: ignored ({message_type:?}): the reservation says ignore");
            return Err(Silence::Ignored);
        }
        if datagram.port == BOOT_SERVER_PORT {
            return self.boot_server(&request);
        }
        match self.settings.mode {
            ServiceMode::Proxy => self.proxy(&request),
            ServiceMode::Server => self.server(&request, now),
        }
    }

    /// The result of an [`Action::Probe`]: the actions to take, in order. An address that
    /// answered is set aside (a durable abandoned record) and the DISCOVER tried again with
    /// another address.
    pub fn probe_finished(&mut self, id: ProbeId, answered: bool, now: SystemTime) -> Vec<Action> {
        let Some(pending) = self.probes.remove(&id) else {
            return Vec::new();
        };
        if !answered {
            // The hold stays: the retried DISCOVER finds the address held for this client.
            self.probed_free.insert(pending.address, now);
            return self.redo_discover(&pending, now).ok().into_iter().collect();
        }
        self.holds.remove(&pending.address);
        let hold = self
            .settings
            .subnet_of(pending.address)
            .map_or(Duration::from_secs(3600), |s| s.lease_time);
        tracing::warn!(
            address = %pending.address,
            "dhcp: something answers on {} although no lease holds it; set aside for {}s",
            pending.address,
            hold.as_secs()
        );
        let record = LeaseRecord {
            mac: MacAddr([0; 6]),
            client_id: None,
            address: pending.address,
            hostname: None,
            state: LeaseState::Abandoned(AbandonReason::InUse),
            granted_at: now,
            expires_at: now + hold,
        };
        self.leases.apply(record.clone());
        let mut actions = vec![Action::Commit {
            records: vec![record],
            then: None,
            events: Vec::new(),
        }];
        if pending.attempts >= MAX_PROBES_PER_DISCOVER {
            tracing::warn!(
                mac = ?pending.request.mac(),
                "dhcp: no offer: {MAX_PROBES_PER_DISCOVER} probed addresses in a row were in use"
            );
            return actions;
        }
        actions.extend(self.redo_discover(&pending, now).ok());
        actions
    }

    fn redo_discover(&mut self, pending: &PendingProbe, now: SystemTime) -> Verdict {
        let datagram_interface = pending.interface.clone();
        let mac = pending
            .request
            .mac()
            .map(MacAddr)
            .ok_or(Silence::NoEthernetAddress)?;
        let request = Request {
            message: &pending.request,
            message_type: MessageType::Discover,
            client: ClientKey::of(&pending.request, mac),
            interface: &datagram_interface,
            source: pending.source,
            destination: pending.destination,
            port: pending.port,
        };
        self.discover_with(&request, now, pending.attempts)
    }

    /// Marks every active lease that ran out as expired.
    pub fn expire(&mut self, now: SystemTime) -> Option<Action> {
        self.holds.retain(|_, hold| hold.until > now);
        self.probed_free
            .retain(|_, at| now.duration_since(*at).is_ok_and(|d| d < PROBE_MEMORY));
        let expired = self.leases.expired_active(now);
        if expired.is_empty() {
            return None;
        }
        let mut records = Vec::with_capacity(expired.len());
        let mut events = Vec::with_capacity(expired.len());
        for mut record in expired {
            record.state = LeaseState::Expired;
            events.push(LeaseEvent::of(LeaseEventKind::Expired, &record));
            self.leases.apply(record.clone());
            records.push(record);
        }
        tracing::info!("dhcp: {} lease(s) expired", records.len());
        Some(Action::Commit {
            records,
            then: None,
            events,
        })
    }

    fn server(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        match request.message_type {
            MessageType::Discover => self.discover_with(request, now, 0),
            MessageType::Request => self.request(request, now),
            MessageType::Decline => self.decline(request, now),
            MessageType::Release => self.release(request, now),
            MessageType::Inform => self.inform(request),
            other => {
                tracing::debug!(mac = %request.client.mac, "dhcp: ignored a {other:?} (not a client message)");
                Err(Silence::NotAClientMessage(other))
            }
        }
    }

    /// The subnet a request belongs to: the relay's (giaddr), else a renewing client's own
    /// (unicast from ciaddr), else the receiving interface's.
    fn subnet_index(&self, request: &Request<'_>) -> Option<usize> {
        let message = request.message;
        let find = |address: Ipv4Addr| {
            self.settings
                .subnets
                .iter()
                .position(|s| s.network.contains(&address))
        };
        if !message.giaddr().is_unspecified() {
            return find(message.giaddr());
        }
        let ciaddr = message.ciaddr();
        if !ciaddr.is_unspecified()
            && *request.source.ip() == ciaddr
            && !request.destination.is_broadcast()
            && let Some(i) = find(ciaddr)
            && !request
                .interface
                .addresses
                .iter()
                .any(|a| self.settings.subnets[i].network.contains(&a.addr()))
        {
            return Some(i);
        }
        request
            .interface
            .addresses
            .iter()
            .find_map(|a| find(a.addr()))
    }

    /// Our address as the client sees it: on the receiving interface inside the subnet, else
    /// the address the datagram was sent to, else the interface's first.
    fn server_id(&self, request: &Request<'_>, subnet: Option<&Subnet>) -> Option<Ipv4Addr> {
        let addresses = &request.interface.addresses;
        if let Some(subnet) = subnet
            && let Some(a) = addresses
                .iter()
                .find(|a| subnet.network.contains(&a.addr()))
        {
            return Some(a.addr());
        }
        if !request.destination.is_broadcast()
            && !request.destination.is_unspecified()
            && addresses.iter().any(|a| a.addr() == request.destination)
        {
            return Some(request.destination);
        }
        addresses.first().map(Ipv4Net::addr)
    }
}
