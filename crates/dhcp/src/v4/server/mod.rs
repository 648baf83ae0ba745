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
mod hostname;
mod settings;
mod silence;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use dhcproto::v4::{DhcpOption, Flags, HType, MessageType, Opcode};
use ipnet::Ipv4Net;

use crate::event::{LeaseEvent, LeaseEventKind};
use crate::lease::index::Index;
use crate::lease::{AbandonReason, LeaseRecord, LeaseState, MacAddr};
use crate::policy::{self, BootDecision, BootFile, BootRequest, Mode};
use crate::v4::codec::{self, CodecError, Message, Reply, code};

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
}

impl ClientKey {
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
        let client = ClientKey {
            mac,
            client_id: message
                .client_id()
                .filter(|id| !id.is_empty())
                .map(<[u8]>::to_vec),
        };
        let request = Request {
            message: &message,
            message_type,
            client,
            interface: datagram.interface,
            source: datagram.source,
            destination: datagram.destination,
            port: datagram.port,
        };
        if let Some(reservation) = self
            .settings
            .reservation(request.client.client_id.as_deref(), Some(mac))
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
            client: ClientKey {
                mac,
                client_id: pending
                    .request
                    .client_id()
                    .filter(|id| !id.is_empty())
                    .map(<[u8]>::to_vec),
            },
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

    // ---------------------------------------------------------------------------------------
    // Server mode

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

    fn discover_with(&mut self, request: &Request<'_>, now: SystemTime, attempts: u32) -> Verdict {
        let mac = request.client.mac;
        let Some(subnet_index) = self.subnet_index(request) else {
            tracing::debug!(%mac, interface = %request.interface.name, giaddr = %request.message.giaddr(),
                "dhcp: no subnet is configured for this network; no offer");
            return Err(Silence::NoSubnet);
        };
        let reservation = self
            .settings
            .reservation(request.client.client_id.as_deref(), Some(mac))
            .cloned();
        let subnet = self.settings.subnets[subnet_index].clone();
        if subnet.known_clients_only && reservation.is_none() {
            tracing::info!(%mac, "dhcp: no offer: subnet {} answers known clients only", subnet.network);
            return Err(Silence::KnownClientsOnly(Some(subnet.name())));
        }
        if self
            .probes
            .values()
            .any(|p| attempts == 0 && p.request.mac() == Some(mac.0))
        {
            // A retransmitted DISCOVER while its probe runs: the probe's outcome answers it.
            return Err(Silence::ProbeInProgress);
        }
        let (address, probe) =
            match self.choose_address(request, &subnet, reservation.as_ref(), now) {
                Some(choice) => choice,
                None => {
                    let last = self.exhausted_logged.get(&subnet_index);
                    if last.is_none_or(|at| {
                        now.duration_since(*at)
                            .is_ok_and(|d| d >= EXHAUSTED_LOG_INTERVAL)
                    }) {
                        self.exhausted_logged.insert(subnet_index, now);
                        tracing::warn!(subnet = %subnet.network,
                        "dhcp: no free address in {}..={} (pool exhausted); DISCOVERs get no offer",
                        subnet.first, subnet.last);
                    }
                    return Err(Silence::PoolExhausted {
                        subnet: subnet.name(),
                        first: subnet.first,
                        last: subnet.last,
                    });
                }
            };
        let hold_until = now + self.settings.offer_hold;
        self.holds.insert(
            address,
            Hold {
                client: request.client.clone(),
                until: hold_until,
            },
        );
        if probe && self.settings.ping_check {
            let id = ProbeId(self.next_probe);
            self.next_probe += 1;
            self.probes.insert(
                id,
                PendingProbe {
                    request: request.message.clone(),
                    interface: request.interface.clone(),
                    source: request.source,
                    destination: request.destination,
                    port: request.port,
                    address,
                    attempts: attempts + 1,
                },
            );
            return Ok(Action::Probe {
                id,
                address,
                ifindex: request.interface.index,
            });
        }
        let server_id = self
            .server_id(request, Some(&subnet))
            .ok_or(Silence::NoServerAddress)?;
        let reply = self.lease_reply(
            MessageType::Offer,
            request,
            &subnet,
            reservation.as_ref(),
            server_id,
            address,
        )?;
        tracing::debug!(%mac, %address, "dhcp: OFFER");
        Ok(Action::Send(reply))
    }

    /// The address to offer and whether it must be probed first.
    fn choose_address(
        &mut self,
        request: &Request<'_>,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        now: SystemTime,
    ) -> Option<(Ipv4Addr, bool)> {
        let client = &request.client;
        if let Some(address) = reservation.and_then(|r| r.address)
            && subnet.network.contains(&address)
        {
            return Some((address, false));
        }
        if let Some(record) = self.client_record(client)
            && subnet.in_range(record.address)
            && self.free_for(record.address, client, now)
        {
            return Some((record.address, false));
        }
        if let Some((&address, _)) = self
            .holds
            .iter()
            .find(|(a, hold)| hold.client == *client && hold.until > now && subnet.in_range(**a))
        {
            return Some((address, false));
        }
        if let Some(requested) = request.message.requested_ip()
            && subnet.in_range(requested)
            && self.free_for(requested, client, now)
        {
            return Some((requested, self.needs_probe(requested, now)));
        }
        let index = self
            .settings
            .subnets
            .iter()
            .position(|s| s.index == subnet.index)?;
        let len = subnet.range_len();
        let start = self.cursors[index] % len;
        let first = u32::from(subnet.first);
        let mut used_before = None;
        for step in 0..len {
            let offset = (start + step) % len;
            let address = Ipv4Addr::from(first + offset);
            if !self.free_for(address, client, now) {
                continue;
            }
            if self.leases.by_addr(address).is_none() {
                self.cursors[index] = offset + 1;
                return Some((address, self.needs_probe(address, now)));
            }
            if used_before.is_none() {
                used_before = Some(address);
            }
        }
        used_before.map(|a| (a, self.needs_probe(a, now)))
    }

    fn needs_probe(&self, address: Ipv4Addr, now: SystemTime) -> bool {
        self.settings.ping_check
            && !self
                .probed_free
                .get(&address)
                .is_some_and(|at| now.duration_since(*at).is_ok_and(|d| d < PROBE_MEMORY))
    }

    /// The newest lease record of a client (not an abandoned one).
    fn client_record(&self, client: &ClientKey) -> Option<&LeaseRecord> {
        if let Some(id) = &client.client_id
            && let Some(record) = self.leases.by_client_id(id)
        {
            return Some(record);
        }
        self.leases.by_mac(client.mac).filter(|r| client.owns(r))
    }

    /// True when `address` may be handed to `client` now: not reserved for someone else, not
    /// held by another client's live lease or offer, not set aside.
    fn free_for(&self, address: Ipv4Addr, client: &ClientKey, now: SystemTime) -> bool {
        if let Some(reservation) = self.settings.reservation_of_address(address)
            && !(reservation.mac == client.mac
                || (reservation.client_id.is_some() && reservation.client_id == client.client_id))
        {
            return false;
        }
        if let Some(hold) = self.holds.get(&address)
            && hold.until > now
            && hold.client != *client
        {
            return false;
        }
        match self.leases.by_addr(address) {
            None => true,
            Some(record) => match &record.state {
                LeaseState::Active => record.expires_at <= now || client.owns(record),
                LeaseState::Abandoned(_) => record.expires_at <= now,
                LeaseState::Released | LeaseState::Expired => true,
            },
        }
    }

    /// True when `address` is the client's to take: its reservation, or a free address of the
    /// subnet's range.
    fn may_take(
        &self,
        address: Ipv4Addr,
        client: &ClientKey,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        now: SystemTime,
    ) -> bool {
        if let Some(reserved) = reservation.and_then(|r| r.address)
            && subnet.network.contains(&reserved)
        {
            return address == reserved;
        }
        subnet.in_range(address) && self.free_for(address, client, now)
    }

    fn request(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let message = request.message;
        let mac = request.client.mac;
        let subnet_index = self.subnet_index(request).ok_or(Silence::NoSubnet)?;
        let subnet = self.settings.subnets[subnet_index].clone();
        let reservation = self
            .settings
            .reservation(request.client.client_id.as_deref(), Some(mac))
            .cloned();
        let server_id = self
            .server_id(request, Some(&subnet))
            .ok_or(Silence::NoServerAddress)?;
        if let Some(chosen) = message.server_id() {
            // SELECTING.
            if !request
                .interface
                .addresses
                .iter()
                .any(|a| a.addr() == chosen)
                && chosen != server_id
            {
                let before = self.holds.len();
                self.holds.retain(|_, hold| hold.client != request.client);
                if self.holds.len() != before {
                    tracing::debug!(%mac, server = %chosen, "dhcp: the client took another server's offer; ours is withdrawn");
                }
                return Err(Silence::OtherServerChosen(chosen));
            }
            let Some(address) = message.requested_ip() else {
                tracing::debug!(%mac, "dhcp: dropped a REQUEST with our server identifier but no requested address");
                return Err(Silence::NoRequestedAddress);
            };
            if subnet.known_clients_only && reservation.is_none() {
                return Err(Silence::KnownClientsOnly(Some(subnet.name())));
            }
            if !self.may_take(address, &request.client, &subnet, reservation.as_ref(), now) {
                return self.nak(
                    request,
                    server_id,
                    address,
                    "the address is no longer available",
                );
            }
            return self.ack(
                request,
                &subnet,
                reservation.as_ref(),
                server_id,
                address,
                now,
            );
        }
        let ciaddr = message.ciaddr();
        let (address, state) = match (message.requested_ip(), ciaddr.is_unspecified()) {
            (Some(address), true) => (address, "INIT-REBOOT"),
            (_, false) => (
                ciaddr,
                if request.destination.is_broadcast() {
                    "REBINDING"
                } else {
                    "RENEWING"
                },
            ),
            (None, true) => {
                tracing::debug!(%mac, "dhcp: dropped a REQUEST with neither a requested address nor ciaddr");
                return Err(Silence::NoAddressInRequest);
            }
        };
        if !subnet.network.contains(&address) {
            return self.nak(
                request,
                server_id,
                address,
                "the address is not on this network",
            );
        }
        if let Some(reserved) = reservation.as_ref().and_then(|r| r.address)
            && subnet.network.contains(&reserved)
        {
            if address != reserved {
                return self.nak(
                    request,
                    server_id,
                    address,
                    "the client has a reservation for another address",
                );
            }
            return self.ack(
                request,
                &subnet,
                reservation.as_ref(),
                server_id,
                address,
                now,
            );
        }
        let owned = self.leases.by_addr(address).is_some_and(|r| {
            request.client.owns(r) && !matches!(r.state, LeaseState::Abandoned(_))
        });
        if owned {
            if !self.free_for(address, &request.client, now) || !subnet.in_range(address) {
                return self.nak(
                    request,
                    server_id,
                    address,
                    "the address is no longer available",
                );
            }
            return self.ack(
                request,
                &subnet,
                reservation.as_ref(),
                server_id,
                address,
                now,
            );
        }
        if !self.free_for(address, &request.client, now) {
            return self.nak(
                request,
                server_id,
                address,
                "another client holds the address",
            );
        }
        tracing::debug!(%mac, %address, "dhcp: {state} REQUEST from a client we have no record of; staying silent (RFC 2131 4.3.2)");
        Err(Silence::UnknownClient { state })
    }

    fn ack(
        &mut self,
        request: &Request<'_>,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        server_id: Ipv4Addr,
        address: Ipv4Addr,
        now: SystemTime,
    ) -> Verdict {
        let transmit = self.lease_reply(
            MessageType::Ack,
            request,
            subnet,
            reservation,
            server_id,
            address,
        )?;
        let hostname = reservation
            .and_then(|r| r.hostname.clone())
            .or_else(|| client_hostname(request.message));
        let previous = self.leases.by_addr(address);
        let kind = match previous {
            Some(p)
                if p.state == LeaseState::Active
                    && request.client.owns(p)
                    && p.expires_at > now =>
            {
                LeaseEventKind::Renewed
            }
            _ => LeaseEventKind::Granted,
        };
        let record = LeaseRecord {
            mac: request.client.mac,
            client_id: request.client.client_id.clone(),
            address,
            hostname,
            state: LeaseState::Active,
            granted_at: now,
            expires_at: now + subnet.lease_time,
        };
        self.holds.remove(&address);
        self.leases.apply(record.clone());
        tracing::info!(mac = %record.mac, %address, hostname = record.hostname.as_deref().unwrap_or(""),
            "dhcp: ACK, lease {kind} for {}s", subnet.lease_time.as_secs());
        let events = vec![LeaseEvent::of(kind, &record)];
        Ok(Action::Commit {
            records: vec![record],
            then: Some(transmit),
            events,
        })
    }

    fn nak(
        &mut self,
        request: &Request<'_>,
        server_id: Ipv4Addr,
        address: Ipv4Addr,
        why: &str,
    ) -> Verdict {
        tracing::info!(mac = %request.client.mac, %address, "dhcp: NAK: {why}");
        let mut reply = Reply::new(MessageType::Nak, request.message);
        reply.push(DhcpOption::ServerIdentifier(server_id));
        reply.push_raw(56, why.as_bytes());
        if let Some(info) = request.message.relay_agent_info() {
            reply.push_raw(code::RELAY_AGENT_INFO, info);
        }
        let relayed = !request.message.giaddr().is_unspecified();
        if relayed {
            reply.flags = Flags::default().set_broadcast();
        }
        let bytes = encode_logged(&reply)?;
        let to = if relayed {
            SocketAddrV4::new(request.message.giaddr(), SERVER_PORT)
        } else {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        };
        Ok(Action::Send(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware: None,
        }))
    }

    fn decline(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let message = request.message;
        let subnet_index = self.subnet_index(request).ok_or(Silence::NoSubnet)?;
        let subnet = self.settings.subnets[subnet_index].clone();
        let server_id = self
            .server_id(request, Some(&subnet))
            .ok_or(Silence::NoServerAddress)?;
        if let Some(other) = message.server_id().filter(|id| *id != server_id) {
            return Err(Silence::OtherServersDecline(other));
        }
        let address = message
            .requested_ip()
            .ok_or(Silence::NoAddressToFree(MessageType::Decline))?;
        let not_held = Silence::NotHeld(MessageType::Decline, address);
        let record = self
            .leases
            .by_addr(address)
            .ok_or(not_held.clone())?
            .clone();
        if !request.client.owns(&record) || matches!(record.state, LeaseState::Abandoned(_)) {
            tracing::debug!(mac = %request.client.mac, %address, "dhcp: ignored a DECLINE for an address the client does not hold");
            return Err(not_held);
        }
        tracing::warn!(mac = %request.client.mac, %address,
            "dhcp: DECLINE: the client found {address} in use; set aside for {}s", subnet.lease_time.as_secs());
        let mut events = Vec::new();
        if record.state == LeaseState::Active {
            events.push(LeaseEvent::of(LeaseEventKind::Released, &record));
        }
        let abandoned = LeaseRecord {
            state: LeaseState::Abandoned(AbandonReason::Declined),
            granted_at: now,
            expires_at: now + subnet.lease_time,
            ..record
        };
        self.leases.apply(abandoned.clone());
        Ok(Action::Commit {
            records: vec![abandoned],
            then: None,
            events,
        })
    }

    fn release(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let address = request.message.ciaddr();
        if address.is_unspecified() {
            return Err(Silence::NoAddressToFree(MessageType::Release));
        }
        let not_held = Silence::NotHeld(MessageType::Release, address);
        let record = self
            .leases
            .by_addr(address)
            .ok_or(not_held.clone())?
            .clone();
        if !request.client.owns(&record) || record.state != LeaseState::Active {
            tracing::debug!(mac = %request.client.mac, %address, "dhcp: ignored a RELEASE for an address the client does not hold");
            return Err(not_held);
        }
        tracing::info!(mac = %record.mac, %address, "dhcp: RELEASE");
        let released = LeaseRecord {
            state: LeaseState::Released,
            expires_at: now.min(record.expires_at),
            ..record
        };
        self.leases.apply(released.clone());
        let events = vec![LeaseEvent::of(LeaseEventKind::Released, &released)];
        Ok(Action::Commit {
            records: vec![released],
            then: None,
            events,
        })
    }

    fn inform(&mut self, request: &Request<'_>) -> Verdict {
        let message = request.message;
        let subnet_index = self.subnet_index(request);
        let subnet = subnet_index.map(|i| self.settings.subnets[i].clone());
        let server_id = self
            .server_id(request, subnet.as_ref())
            .ok_or(Silence::NoServerAddress)?;
        let mut reply = Reply::new(MessageType::Ack, message);
        reply.ciaddr = message.ciaddr();
        let reservation = self
            .settings
            .reservation(
                request.client.client_id.as_deref(),
                Some(request.client.mac),
            )
            .cloned();
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        if let Some(subnet) = &subnet {
            self.subnet_options(&mut options, subnet, server_id);
        }
        self.configured_options(
            &mut options,
            subnet.as_ref(),
            request.message.vendor_class(),
            reservation.as_ref(),
        );
        self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::Server,
            reservation.as_ref(),
            server_id,
        );
        options.finish(&mut reply, message);
        let bytes = encode_logged(&reply)?;
        let to = if !message.giaddr().is_unspecified() {
            SocketAddrV4::new(message.giaddr(), SERVER_PORT)
        } else if !message.ciaddr().is_unspecified() {
            SocketAddrV4::new(message.ciaddr(), CLIENT_PORT)
        } else {
            SocketAddrV4::new(*request.source.ip(), request.source.port())
        };
        tracing::debug!(mac = %request.client.mac, "dhcp: ACK to INFORM");
        Ok(Action::Send(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware: None,
        }))
    }

    /// An OFFER or ACK carrying a lease of `address`.
    fn lease_reply(
        &self,
        message_type: MessageType,
        request: &Request<'_>,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        server_id: Ipv4Addr,
        address: Ipv4Addr,
    ) -> Result<Transmit, Silence> {
        let message = request.message;
        let mut reply = Reply::new(message_type, message);
        reply.yiaddr = address;
        if message_type == MessageType::Ack {
            reply.ciaddr = message.ciaddr();
        }
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        let lease = u32::try_from(subnet.lease_time.as_secs()).unwrap_or(u32::MAX);
        options.put(51, lease.to_be_bytes().to_vec());
        options.put(58, (lease / 2).to_be_bytes().to_vec());
        options.put(
            59,
            (u64::from(lease) * 7 / 8)
                .min(u64::from(u32::MAX))
                .to_be_bytes()[4..]
                .to_vec(),
        );
        self.subnet_options(&mut options, subnet, server_id);
        if let Some(hostname) = reservation.and_then(|r| r.hostname.as_ref()) {
            options.put(code::HOSTNAME, hostname.as_bytes().to_vec());
        }
        self.configured_options(
            &mut options,
            Some(subnet),
            message.vendor_class(),
            reservation,
        );
        self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::Server,
            reservation,
            server_id,
        );
        options.finish(&mut reply, message);
        let bytes = encode_logged(&reply)?;
        let (to, hardware) = reply_destination(message, address);
        Ok(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware,
        })
    }

    fn subnet_options(&self, options: &mut OptionSet, subnet: &Subnet, server_id: Ipv4Addr) {
        options.put(1, subnet.network.netmask().octets().to_vec());
        if let Some(router) = subnet.router {
            options.put(3, router.octets().to_vec());
        }
        let dns: Vec<Ipv4Addr> = match &subnet.dns {
            Some(list) => list.clone(),
            None if self.settings.environment.dns_domain.is_some() => vec![server_id],
            None => Vec::new(),
        };
        if !dns.is_empty() {
            options.put(6, dns.iter().flat_map(|a| a.octets()).collect());
        }
        if let Some(domain) = subnet.domain.as_ref().or(self
            .settings
            .environment
            .dns_domain
            .as_ref())
        {
            options.put(15, domain.as_bytes().to_vec());
        }
    }

    /// The configured options, each scope overriding the one before code by code: global,
    /// subnet, matching classes, reservation.
    fn configured_options(
        &self,
        options: &mut OptionSet,
        subnet: Option<&Subnet>,
        vendor_class: Option<&[u8]>,
        reservation: Option<&Reservation>,
    ) {
        let scopes = std::iter::once(&self.settings.options)
            .chain(subnet.map(|s| &s.options))
            .chain(self.settings.classes_for(vendor_class).map(|c| &c.options))
            .chain(reservation.map(|r| &r.options));
        for scope in scopes {
            for option in scope {
                options.put_configured(option.code, option.data.clone());
            }
        }
    }

    /// The boot policy's options: siaddr, option 66, file and option 67, 60, 43, 97.
    fn boot_options(
        &self,
        reply: &mut Reply,
        options: &mut OptionSet,
        request: &Request<'_>,
        mode: Mode,
        reservation: Option<&Reservation>,
        server_id: Ipv4Addr,
    ) -> BootDecision {
        let boot_request =
            BootRequest::from_message(request.message, &self.settings.vendor_classes, mode);
        let decision = policy::choose(
            &boot_request,
            &self.settings.boot,
            reservation.map(|r| &r.boot),
        );
        if let BootDecision::Boot(offer) = &decision {
            let next_server = self.settings.advertise.unwrap_or(server_id);
            reply.siaddr = next_server;
            if let BootFile::Tftp(_) = offer.file {
                options.put(code::TFTP_SERVER_NAME, next_server.to_string().into_bytes());
            }
            let file = offer.file.as_str().as_bytes();
            options.put(code::BOOTFILE_NAME, file.to_vec());
            reply.file = if file.len() <= codec::MAX_FILE_LEN && !file.contains(&0) {
                file.to_vec()
            } else {
                Vec::new()
            };
            if let Some(class) = &offer.vendor_class {
                options.put(code::VENDOR_CLASS, class.as_bytes().to_vec());
            }
            if let Some(vendor) = &offer.vendor_options {
                options.put(code::VENDOR_OPTIONS, vendor.clone());
            }
            if let Some(uuid) = &offer.uuid {
                options.put(code::CLIENT_UUID, uuid.clone());
            }
        }
        tracing::debug!(mac = %request.client.mac, "dhcp: boot policy: {decision}");
        decision
    }

    // ---------------------------------------------------------------------------------------
    // Proxy mode

    fn proxy(&mut self, request: &Request<'_>) -> Verdict {
        let message = request.message;
        match request.message_type {
            MessageType::Discover => {}
            MessageType::Request
                if message.server_id().is_some_and(|id| {
                    request.interface.addresses.iter().any(|a| a.addr() == id)
                }) => {}
            other => return Err(Silence::NotForProxy(other)),
        }
        let mac = request.client.mac;
        let reservation = self
            .settings
            .reservation(request.client.client_id.as_deref(), Some(mac))
            .cloned();
        if self.settings.known_clients_only && reservation.is_none() {
            tracing::debug!(%mac, "dhcp proxy: not answering: known clients only and no reservation");
            return Err(Silence::KnownClientsOnly(None));
        }
        let subnet = self
            .subnet_index(request)
            .map(|i| self.settings.subnets[i].clone());
        let server_id = self
            .server_id(request, subnet.as_ref())
            .ok_or(Silence::NoServerAddress)?;
        let reply_type = if request.message_type == MessageType::Discover {
            MessageType::Offer
        } else {
            MessageType::Ack
        };
        let mut reply = Reply::new(reply_type, message);
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        let decision = self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::Proxy,
            reservation.as_ref(),
            server_id,
        );
        let BootDecision::Boot(offer) = decision else {
            if !matches!(decision, BootDecision::NotNetboot { .. }) {
                tracing::info!(%mac, "dhcp proxy: no answer: {decision}");
            }
            return Err(Silence::NoBootFile(Box::new(decision)));
        };
        // The PXE specification requires option 60 in a proxy offer, whatever prefix matched.
        if offer.vendor_class.is_none() {
            options.put(code::VENDOR_CLASS, b"PXEClient".to_vec());
        }
        options.finish(&mut reply, message);
        let bytes = encode_logged(&reply)?;
        let to = if !message.giaddr().is_unspecified() {
            SocketAddrV4::new(message.giaddr(), SERVER_PORT)
        } else {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        };
        tracing::info!(%mac, file = offer.file.as_str(), "dhcp proxy: {reply_type:?} with boot information ({})", offer.kind);
        Ok(Action::Send(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware: None,
        }))
    }

    /// Port 4011: the PXE boot server's ACK to a client that already has its address.
    fn boot_server(&mut self, request: &Request<'_>) -> Verdict {
        if !matches!(
            request.message_type,
            MessageType::Request | MessageType::Inform
        ) {
            return Err(Silence::NotForProxy(request.message_type));
        }
        let mac = request.client.mac;
        let reservation = self
            .settings
            .reservation(request.client.client_id.as_deref(), Some(mac))
            .cloned();
        if self.settings.known_clients_only && reservation.is_none() {
            return Err(Silence::KnownClientsOnly(None));
        }
        let server_id = self
            .server_id(request, None)
            .ok_or(Silence::NoServerAddress)?;
        let mut reply = Reply::new(MessageType::Ack, request.message);
        reply.ciaddr = request.message.ciaddr();
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        let decision = self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::BootServer,
            reservation.as_ref(),
            server_id,
        );
        let BootDecision::Boot(offer) = decision else {
            tracing::info!(%mac, "dhcp boot server: no answer: {decision}");
            return Err(Silence::NoBootFile(Box::new(decision)));
        };
        if offer.vendor_class.is_none() {
            options.put(code::VENDOR_CLASS, b"PXEClient".to_vec());
        }
        options.finish(&mut reply, request.message);
        let bytes = encode_logged(&reply)?;
        let to = if request.source.ip().is_unspecified() {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, request.source.port())
        } else {
            request.source
        };
        tracing::info!(%mac, file = offer.file.as_str(), "dhcp boot server: ACK on port 4011 ({})", offer.kind);
        Ok(Action::Send(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware: None,
        }))
    }
}

/// The host name a client asks for: option 81's (RFC 4702) first label, else option 12's,
/// sanitized.
fn client_hostname(message: &Message) -> Option<String> {
    if let Some(fqdn) = message.client_fqdn()
        && fqdn.len() > 3
    {
        let flags = fqdn[0];
        let name = &fqdn[3..];
        let first_label: Vec<u8> = if flags & 0x04 != 0 {
            let len = usize::from(name[0]);
            name.get(1..1 + len).map(<[u8]>::to_vec).unwrap_or_default()
        } else {
            name.to_vec()
        };
        if let Some(clean) = sanitize_hostname(&first_label) {
            return Some(clean);
        }
    }
    message.hostname().and_then(sanitize_hostname)
}

/// Where a lease reply goes (RFC 2131 4.1) and the hardware address a unicast to a client
/// without an address needs.
fn reply_destination(message: &Message, yiaddr: Ipv4Addr) -> (SocketAddrV4, Option<MacAddr>) {
    if !message.giaddr().is_unspecified() {
        return (SocketAddrV4::new(message.giaddr(), SERVER_PORT), None);
    }
    if !message.ciaddr().is_unspecified() {
        return (SocketAddrV4::new(message.ciaddr(), CLIENT_PORT), None);
    }
    if message.flags().broadcast() || yiaddr.is_unspecified() {
        return (SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT), None);
    }
    match message.mac() {
        Some(mac) if message.htype() == HType::Eth => {
            (SocketAddrV4::new(yiaddr, CLIENT_PORT), Some(MacAddr(mac)))
        }
        _ => (SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT), None),
    }
}

fn encode_logged(reply: &Reply) -> Result<Vec<u8>, Silence> {
    codec::encode(reply).map_err(|error| {
        tracing::warn!(%error, "dhcp: could not encode the {:?}; nothing sent", reply.message_type);
        Silence::Unencodable
    })
}

/// The options of a reply by code, built-in ones first and configured ones overriding them;
/// written in the order of the client's parameter request list, then the rest.
#[derive(Default)]
struct OptionSet {
    values: Vec<(u8, Vec<u8>, bool)>,
}

impl OptionSet {
    fn put(&mut self, code: u8, data: Vec<u8>) {
        self.insert(code, data, false);
    }

    fn put_configured(&mut self, code: u8, data: Vec<u8>) {
        self.insert(code, data, true);
    }

    fn insert(&mut self, code: u8, data: Vec<u8>, configured: bool) {
        match self.values.iter_mut().find(|(c, _, _)| *c == code) {
            Some(slot) => *slot = (code, data, configured),
            None => self.values.push((code, data, configured)),
        }
    }

    /// Moves the options into `reply`. If the reply would not fit the client's size limit,
    /// configured options the client did not ask for are left out first.
    fn finish(mut self, reply: &mut Reply, request: &Message) {
        let requested = request.parameter_request_list().unwrap_or_default();
        let rank = |code: u8| match code {
            code::SERVER_ID => 0,
            _ => requested
                .iter()
                .position(|&c| c == code)
                .map_or(usize::MAX, |p| p + 1),
        };
        self.values.sort_by_key(|(code, _, _)| rank(*code));
        if let Some(info) = request.relay_agent_info() {
            self.values
                .push((code::RELAY_AGENT_INFO, info.to_vec(), false));
        }
        let base = reply.options.len();
        for (code, data, _) in &self.values {
            reply.push_raw(*code, data.clone());
        }
        if matches!(codec::encode(reply), Err(CodecError::TooLong { .. })) {
            reply.options.truncate(base);
            for (code, data, configured) in self.values {
                if !configured || requested.contains(&code) {
                    reply.push_raw(code, data);
                }
            }
        }
    }
}
