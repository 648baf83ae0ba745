//! The DHCPv6 server core (RFC 8415): a pure state machine, like the v4 core. The shell hands it
//! each datagram with the facts of its arrival and the wall-clock time; the core answers with a
//! [`Verdict`]: a reply to send, leases to make durable before the reply may leave, or the
//! [`Silence`] that says why nothing is sent.
//!
//! # Rules
//!
//! - SOLICIT (no server identifier, a client identifier): an ADVERTISE with one address per
//!   IA_NA and preference `dhcp.v6.preference` (255 makes EDK2 take it at once instead of
//!   collecting offers for a second). No state is kept: the address comes from the client's
//!   binding, else from a hash of its DUID and IAID into the range, scanning on to the first
//!   free one, so a REQUEST that follows finds the same address, and a SOLICIT flood from random
//!   DUIDs costs no memory. With Rapid Commit asked for (and allowed), the leases are committed
//!   and a REPLY goes out instead (RFC 8415 18.3.1).
//! - REQUEST, RENEW, DECLINE, RELEASE must carry our server identifier; SOLICIT, REBIND and
//!   CONFIRM must carry none (RFC 8415 16): others are dropped.
//! - REQUEST: each IA_NA gets the address it asked for when that is the client's to take, else
//!   the one SOLICIT would choose; an IA without one gets NoAddrsAvail. Every granted lease is
//!   an [`Action::Commit`]: durable before the REPLY leaves.
//! - RENEW and REBIND extend the client's bindings; an IA Kindling has no binding for gets
//!   NoBinding (RENEW) or, on REBIND, the address again when it is free and on link, lifetimes
//!   0 when it is not on link (RFC 8415 18.3.4, 18.3.5).
//! - RELEASE frees and DECLINE sets aside the addresses the client holds; the REPLY says
//!   Success, and NoBinding for an IA it does not hold (18.3.7, 18.3.8).
//! - CONFIRM: Success when every address is on link, NotOnLink otherwise; no reply without
//!   addresses (18.3.3).
//! - INFORMATION-REQUEST: the options without an address.
//! - Relayed messages (RELAY-FORW) choose the subnet by the innermost relay's link address and
//!   are answered through every relay (RELAY-REPL, interface-id echoed).
//! - Boot: the client's architecture (option 61), vendor class (16) and user class (15, iPXE)
//!   choose the file as options 93, 60 and 77 do on v4; a client that asks for option 59 with
//!   neither gets iPXE's script when it is iPXE, else `boot.uefi_x64`. The URL in option 59 is
//!   `tftp://[address]/path` with this box's address inside the client's subnet, never a
//!   link-local or multicast one: the first of [`Interface::addresses`] there, which the shell
//!   lists most dependable first (a configured address before one from SLAAC). It goes into ADVERTISE (EDK2 reads it there) and REPLY (iPXE
//!   reads only the REPLY). Option 16 is never echoed to PXE clients: EDK2 takes an offer with
//!   `PXEClient` as a boot-server offer and fails without a port 4011 answer. Option 60 is never
//!   sent: EDK2 PXE reads it as a file size.

pub mod coexist;
mod silence;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::time::{Duration, SystemTime};

use ipnet::{IpNet, Ipv6Net};
use kindling_config::{BootConfig, DhcpConfig, DhcpMode};

use crate::event::{LeaseEvent, LeaseEventKind};
use crate::identity::SystemUuid;
use crate::lease::index::{FamilyIndex, Owner};
use crate::lease::{AbandonReason, Lease6Record, LeaseState, MacAddr};
use crate::policy::{self, BootDecision, BootFile, BootRequest, ClientFacts, Mode, VendorClasses};
use crate::v6::codec::{
    IaAddress, IaNa, Message, MessageType, Packet, RelayMessage, Status, class_data, code,
    status_data,
};

pub use silence::Silence;

/// The DHCPv6 server port.
pub const SERVER_PORT: u16 = 547;
/// The DHCPv6 client port.
pub const CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 7.1).
pub const ALL_SERVERS_AND_RELAYS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// How many candidate addresses one choice looks at before it gives up (a range may be a /64).
const MAX_SCAN: u128 = 4096;
/// Intel's enterprise number, which EDK2 and iPXE put in option 16.
pub const PXE_ENTERPRISE: u32 = 343;

/// One IPv6 subnet to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Position in `dhcp.v6.subnets`, for messages.
    pub index: usize,
    pub network: Ipv6Net,
    /// First and last address of the range, inclusive.
    pub first: Ipv6Addr,
    pub last: Ipv6Addr,
    /// Option 23; `None`: this box, when DNS is served here.
    pub dns: Option<Vec<Ipv6Addr>>,
    /// Option 24; `None`: the DNS domain, when DNS is served here.
    pub domain: Option<String>,
}

impl Subnet {
    pub fn in_range(&self, address: Ipv6Addr) -> bool {
        self.first <= address && address <= self.last
    }

    fn range_len(&self) -> u128 {
        u128::from(self.last) - u128::from(self.first) + 1
    }
}

/// What the core needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub subnets: Vec<Subnet>,
    /// This server's DUID (option 2), created once and kept in `state_dir` by the shell.
    pub server_duid: Vec<u8>,
    /// Option 7 in ADVERTISE.
    pub preference: u8,
    /// Valid and preferred lifetime of an address.
    pub lease_time: Duration,
    /// Answer a SOLICIT with Rapid Commit by committing at once.
    pub rapid_commit: bool,
    pub boot: BootConfig,
    pub vendor_classes: VendorClasses,
    /// DNS is served by this box: option 23 names this box's address, option 24 the domain.
    pub dns_domain: Option<String>,
    /// The port of this box's HTTP service on IPv6, when it serves the boot tree.
    pub http_port: Option<u16>,
    /// `dhcp.reservations`, naming the machine by its DUID, its SMBIOS UUID (a DUID-UUID) or
    /// its MAC (learned from its DUID, link-local address or relay): the IPv6 `ip`, host name,
    /// boot files and `ignore` apply here.
    pub reservations: Vec<Reservation>,
}

/// A reservation as DHCPv6 applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its position in `dhcp.reservations`.
    pub index: usize,
    pub mac: Option<MacAddr>,
    pub uuid: Option<SystemUuid>,
    pub duid: Option<Vec<u8>>,
    /// The reservation's `ip` when it is an IPv6 address.
    pub address: Option<Ipv6Addr>,
    pub hostname: Option<String>,
    pub boot: BootConfig,
    pub ignore: bool,
}

impl Settings {
    /// The DHCPv6 settings of a config: `None` unless it is server mode with IPv6 subnets
    /// (proxy mode serves no DHCPv6: clients ignore an ADVERTISE without addresses).
    pub fn from_config(
        dhcp: &DhcpConfig,
        boot: &BootConfig,
        server_duid: Vec<u8>,
        dns_domain: Option<String>,
    ) -> Option<Settings> {
        if dhcp.mode != DhcpMode::Server {
            return None;
        }
        let v6 = dhcp.v6.as_ref()?;
        let subnets: Vec<Subnet> = v6
            .subnets
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                let (IpNet::V6(network), (IpAddr::V6(first), IpAddr::V6(last))) =
                    (s.network, s.range)
                else {
                    return None;
                };
                let dns = s.dns.as_ref().map(|list| {
                    list.iter()
                        .filter_map(|a| match a {
                            IpAddr::V6(v6) => Some(*v6),
                            IpAddr::V4(_) => None,
                        })
                        .collect()
                });
                Some(Subnet {
                    index,
                    network,
                    first,
                    last,
                    dns,
                    domain: s.domain.clone(),
                })
            })
            .collect();
        if subnets.is_empty() {
            return None;
        }
        Some(Settings {
            subnets,
            server_duid,
            preference: v6.preference,
            lease_time: dhcp.lease_time,
            rapid_commit: true,
            boot: boot.clone(),
            vendor_classes: VendorClasses {
                pxe: dhcp.vendor_classes.pxe.clone(),
                http: dhcp.vendor_classes.http.clone(),
            },
            dns_domain,
            http_port: None,
            reservations: dhcp
                .reservations
                .iter()
                .enumerate()
                .filter_map(|(index, r)| {
                    let mac = r.mac.as_deref().and_then(crate::v4::server::parse_mac);
                    let uuid = r.uuid.map(SystemUuid);
                    if mac.is_none() && uuid.is_none() && r.duid.is_none() {
                        // Named by its v4 client identifier only.
                        return None;
                    }
                    Some(Reservation {
                        index,
                        mac,
                        uuid,
                        duid: r.duid.clone(),
                        address: match r.ip {
                            Some(IpAddr::V6(v6)) => Some(v6),
                            _ => None,
                        },
                        hostname: r.hostname.clone(),
                        boot: r.boot.clone(),
                        ignore: r.ignore,
                    })
                })
                .collect(),
        })
    }

    /// The reservation of a machine: by its exact DUID first, then by the SMBIOS UUID of a
    /// DUID-UUID, then by its MAC.
    pub fn reservation(&self, duid: &[u8], mac: Option<MacAddr>) -> Option<&Reservation> {
        let by_duid = || {
            self.reservations
                .iter()
                .find(|r| r.duid.as_deref() == Some(duid))
        };
        let by_uuid = || {
            let uuid = SystemUuid::of_duid(duid)?;
            self.reservations
                .iter()
                .find(|r| r.uuid.is_some_and(|u| u.matches(uuid)))
        };
        let by_mac = || {
            let mac = mac?;
            self.reservations.iter().find(|r| r.mac == Some(mac))
        };
        by_duid().or_else(by_uuid).or_else(by_mac)
    }

    /// The reservation that holds an address.
    fn reservation_of_address(&self, address: Ipv6Addr) -> Option<&Reservation> {
        self.reservations
            .iter()
            .find(|r| r.address == Some(address))
    }
}

/// The interface a datagram arrived on, as the shell learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    /// Its global and unique-local addresses with their prefixes (link-local ones left out),
    /// most dependable first (see `kindling_udp::netif::NetInterface::ipv6`): option 59 and
    /// option 23 name the first one inside the client's subnet.
    pub addresses: Vec<Ipv6Net>,
}

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub bytes: &'a [u8],
    /// The sender: the client's link-local address and port 546, or a relay's address and
    /// port 547.
    pub source: SocketAddrV6,
    pub interface: &'a Interface,
}

/// A datagram for the shell to send from port 547.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub bytes: Vec<u8>,
    pub to: SocketAddrV6,
    pub ifindex: u32,
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Transmit),
    /// Make `records` durable; then send `then` and publish `events`.
    Commit {
        records: Vec<Lease6Record>,
        then: Transmit,
        events: Vec<LeaseEvent>,
    },
}

/// What the core does with one datagram.
pub type Verdict = Result<Action, Silence>;

/// The client, as the request identifies it.
#[derive(Debug, Clone)]
struct Client {
    duid: Vec<u8>,
    /// Learned from the DUID, the link-local source or a relay's option 79.
    mac: Option<MacAddr>,
}

/// Facts of one request, gathered once.
struct Request<'a> {
    message: &'a Message,
    relays: &'a [RelayMessage],
    client: Client,
    subnet: Option<Subnet>,
    /// This box's address for the client (in its subnet), for option 59 and option 23.
    our_address: Option<Ipv6Addr>,
    source: SocketAddrV6,
    interface: &'a Interface,
}

/// The core. See the module documentation.
pub struct Core {
    settings: Settings,
    leases: FamilyIndex<Lease6Record>,
    /// Interfaces (by index) where another DHCPv6 server answers: ADVERTISEs there carry
    /// preference 0 (see [`coexist`]).
    contested: std::collections::HashSet<u32>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("leases", &self.leases.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core over the durable v6 lease records (as recovered by the store).
    pub fn new(settings: Settings, records: impl IntoIterator<Item = Lease6Record>) -> Core {
        let mut leases = FamilyIndex::default();
        for record in records {
            leases.apply(record);
        }
        Core {
            settings,
            leases,
            contested: Default::default(),
        }
    }

    /// Replaces the settings (SIGHUP). Leases stay.
    pub fn reconfigure(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// Marks whether another DHCPv6 server answers on `interface`; true when that changed.
    pub fn set_contested(&mut self, interface: u32, contested: bool) -> bool {
        if contested {
            self.contested.insert(interface)
        } else {
            self.contested.remove(&interface)
        }
    }

    /// The preference an ADVERTISE on `interface` carries: `dhcp.v6.preference`, or 0 where
    /// another server answers.
    pub fn preference_on(&self, interface: u32) -> u8 {
        if self.contested.contains(&interface) {
            0
        } else {
            self.settings.preference
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every v6 lease record, ordered by address.
    pub fn leases(&self) -> Vec<Lease6Record> {
        self.leases.all()
    }

    /// Handles one datagram: the action to take, or `None`.
    pub fn handle(&mut self, datagram: &Datagram<'_>, now: SystemTime) -> Option<Action> {
        self.decide(datagram, now).ok()
    }

    /// Handles one datagram: the action to take, or why the core stays silent.
    pub fn decide(&mut self, datagram: &Datagram<'_>, now: SystemTime) -> Verdict {
        let packet = Packet::parse(datagram.bytes).map_err(Silence::Malformed)?;
        let message = &packet.message;
        let kind = message.message_type;
        if matches!(
            kind,
            MessageType::Advertise
                | MessageType::Reply
                | MessageType::Reconfigure
                | MessageType::RelayRepl
                | MessageType::Other(_)
        ) {
            return Err(Silence::NotAClientMessage(kind));
        }
        let Some(duid) = message.client_id() else {
            // Only an INFORMATION-REQUEST may come without a client identifier.
            if kind != MessageType::InformationRequest {
                return Err(Silence::NoClientId(kind));
            }
            return self.information(&self.request(&packet, datagram, Vec::new()));
        };
        if duid == coexist::PROBE_DUID {
            // Our own coexistence probe, looped back.
            return Err(Silence::OwnProbe);
        }
        let request = self.request(&packet, datagram, duid.to_vec());
        self.check_server_id(message)?;
        if self
            .settings
            .reservation(&request.client.duid, request.client.mac)
            .is_some_and(|r| r.ignore)
        {
            return Err(Silence::Ignored);
        }
        match kind {
            MessageType::Solicit => self.solicit(&request, now),
            MessageType::Request => self.request_addresses(&request, now),
            MessageType::Renew | MessageType::Rebind => self.extend(&request, now),
            MessageType::Release => self.give_back(&request, now, LeaseState::Released),
            MessageType::Decline => self.give_back(
                &request,
                now,
                LeaseState::Abandoned(AbandonReason::Declined),
            ),
            MessageType::Confirm => self.confirm(&request),
            MessageType::InformationRequest => self.information(&request),
            other => Err(Silence::NotAClientMessage(other)),
        }
    }

    /// RFC 8415 16: which messages must and must not name a server.
    fn check_server_id(&self, message: &Message) -> Result<(), Silence> {
        let kind = message.message_type;
        match (kind, message.server_id()) {
            (
                MessageType::Request
                | MessageType::Renew
                | MessageType::Decline
                | MessageType::Release,
                None,
            ) => Err(Silence::NoServerId(kind)),
            (
                MessageType::Request
                | MessageType::Renew
                | MessageType::Decline
                | MessageType::Release
                | MessageType::InformationRequest,
                Some(id),
            ) if id != self.settings.server_duid.as_slice() => Err(Silence::OtherServer(kind)),
            (MessageType::Solicit | MessageType::Rebind | MessageType::Confirm, Some(_)) => {
                Err(Silence::UnexpectedServerId(kind))
            }
            _ => Ok(()),
        }
    }

    fn request<'a>(
        &self,
        packet: &'a Packet,
        datagram: &Datagram<'a>,
        duid: Vec<u8>,
    ) -> Request<'a> {
        let relays = packet.relays.as_slice();
        // The relay closest to the client knows its link and may know its MAC.
        let innermost = relays.last();
        let link = innermost
            .map(|r| r.link_address)
            .filter(|a| !a.is_unspecified());
        let subnet = match link {
            Some(link) => self.subnet_of(link),
            None => datagram
                .interface
                .addresses
                .iter()
                .find_map(|net| self.subnet_of(net.addr())),
        };
        let our_address = subnet
            .as_ref()
            .and_then(|s| {
                datagram
                    .interface
                    .addresses
                    .iter()
                    .map(Ipv6Net::addr)
                    .find(|a| s.network.contains(a))
            })
            .or_else(|| datagram.interface.addresses.first().map(Ipv6Net::addr));
        let client_link_address = match innermost {
            Some(relay) => relay.peer_address,
            None => *datagram.source.ip(),
        };
        let mac = mac_of_duid(&duid)
            .or_else(|| innermost.and_then(mac_of_relay))
            .or_else(|| mac_of_eui64(client_link_address));
        Request {
            message: &packet.message,
            relays,
            client: Client { duid, mac },
            subnet,
            our_address,
            source: datagram.source,
            interface: datagram.interface,
        }
    }

    fn subnet_of(&self, address: Ipv6Addr) -> Option<Subnet> {
        self.settings
            .subnets
            .iter()
            .find(|s| s.network.contains(&address))
            .cloned()
    }

    // ---------------------------------------------------------------------------------------
    // Addresses

    /// True when `address` may be given to the identity association `owner` now.
    fn free_for(&self, address: Ipv6Addr, client: &Client, owner: &Owner, now: SystemTime) -> bool {
        if let Some(reservation) = self.settings.reservation_of_address(address)
            && self
                .settings
                .reservation(&client.duid, client.mac)
                .map(|r| r.index)
                != Some(reservation.index)
        {
            return false;
        }
        match self.leases.by_addr(address) {
            None => true,
            Some(record) => match &record.state {
                LeaseState::Active => {
                    record.expires_at <= now
                        || matches!(owner, Owner::Binding(duid, iaid)
                            if *duid == record.duid && *iaid == record.iaid)
                }
                LeaseState::Abandoned(_) => record.expires_at <= now,
                LeaseState::Released | LeaseState::Expired => true,
            },
        }
    }

    /// True when `address` may go to this client in `subnet`: its reserved address, or an
    /// address of the range.
    fn assignable(&self, subnet: &Subnet, client: &Client, address: Ipv6Addr) -> bool {
        let reserved = self
            .settings
            .reservation(&client.duid, client.mac)
            .and_then(|r| r.address)
            .filter(|a| subnet.network.contains(a));
        reserved == Some(address) || subnet.in_range(address)
    }

    /// The address for one IA, without holding it: the machine's reserved address, else its
    /// binding's, else the first free one from a point of the range that depends only on the
    /// DUID and IAID. `taken` are the addresses other IAs of the same message got.
    fn choose(
        &self,
        subnet: &Subnet,
        client: &Client,
        iaid: u32,
        taken: &[Ipv6Addr],
        now: SystemTime,
    ) -> Option<Ipv6Addr> {
        let owner = Owner::Binding(client.duid.clone(), iaid);
        let usable = |address: Ipv6Addr| {
            !taken.contains(&address) && self.free_for(address, client, &owner, now)
        };
        if let Some(reserved) = self
            .settings
            .reservation(&client.duid, client.mac)
            .and_then(|r| r.address)
            .filter(|a| subnet.network.contains(a))
            && usable(reserved)
        {
            return Some(reserved);
        }
        if let Some(record) = self.leases.by_owner(&owner)
            && subnet.in_range(record.address)
            && usable(record.address)
        {
            return Some(record.address);
        }
        let len = subnet.range_len();
        let start = fnv1a(&client.duid, iaid) % len;
        (0..len.min(MAX_SCAN))
            .map(|step| Ipv6Addr::from(u128::from(subnet.first) + (start + step) % len))
            .find(|address| usable(*address))
    }

    /// T1 and T2 for a lease (RFC 8415 21.4 suggests 0.5 and 0.8 of the preferred lifetime).
    fn lifetimes(&self) -> (u32, u32, u32) {
        let lease = u32::try_from(self.settings.lease_time.as_secs()).unwrap_or(u32::MAX);
        (lease / 2, (u64::from(lease) * 4 / 5) as u32, lease)
    }

    fn granted_ia(&self, iaid: u32, address: Ipv6Addr) -> IaNa {
        let (t1, t2, lease) = self.lifetimes();
        IaNa {
            iaid,
            t1,
            t2,
            addresses: vec![IaAddress {
                address,
                preferred: lease,
                valid: lease,
            }],
            status: None,
        }
    }

    fn record(
        &self,
        client: &Client,
        iaid: u32,
        address: Ipv6Addr,
        hostname: Option<String>,
        now: SystemTime,
    ) -> Lease6Record {
        Lease6Record {
            duid: client.duid.clone(),
            iaid,
            mac: client.mac,
            address,
            hostname,
            state: LeaseState::Active,
            granted_at: now,
            expires_at: now + self.settings.lease_time,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Messages

    fn solicit(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let subnet = request.subnet.clone().ok_or(Silence::NoSubnet)?;
        let ias = request.message.ia_nas();
        if ias.is_empty() {
            return Err(Silence::NoIaNa);
        }
        let rapid = self.settings.rapid_commit && request.message.has(code::RAPID_COMMIT);
        let mut granted = Vec::new();
        let mut reply_ias = Vec::new();
        for ia in &ias {
            let taken: Vec<Ipv6Addr> = granted.iter().map(|(_, a)| *a).collect();
            match self.choose(&subnet, &request.client, ia.iaid, &taken, now) {
                Some(address) => {
                    granted.push((ia.iaid, address));
                    reply_ias.push(self.granted_ia(ia.iaid, address));
                }
                None => reply_ias.push(no_addresses(ia.iaid)),
            }
        }
        if granted.is_empty() {
            tracing::warn!(subnet = %subnet.network, "dhcpv6: no free address in {} - {}", subnet.first, subnet.last);
        }
        if rapid && !granted.is_empty() {
            let mut reply = self.reply(request, MessageType::Reply, reply_ias);
            reply.options.push(code::RAPID_COMMIT, Vec::new());
            return Ok(self.commit(request, granted, reply, now));
        }
        let mut advertise = self.reply(request, MessageType::Advertise, reply_ias);
        advertise.options.push(
            code::PREFERENCE,
            vec![self.preference_on(request.interface.index)],
        );
        Ok(Action::Send(self.transmit(request, &advertise)))
    }

    fn request_addresses(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let subnet = request.subnet.clone().ok_or(Silence::NoSubnet)?;
        let ias = request.message.ia_nas();
        if ias.is_empty() {
            return Err(Silence::NoIaNa);
        }
        let mut granted = Vec::new();
        let mut reply_ias = Vec::new();
        for ia in &ias {
            let owner = Owner::Binding(request.client.duid.clone(), ia.iaid);
            let taken: Vec<Ipv6Addr> = granted.iter().map(|(_, a)| *a).collect();
            // The machine's reservation wins over what it asks for.
            let reserved = self
                .settings
                .reservation(&request.client.duid, request.client.mac)
                .and_then(|r| r.address)
                .filter(|a| subnet.network.contains(a));
            let asked = ia
                .addresses
                .iter()
                .map(|a| a.address)
                .filter(|_| reserved.is_none())
                .find(|a| {
                    self.assignable(&subnet, &request.client, *a)
                        && !taken.contains(a)
                        && self.free_for(*a, &request.client, &owner, now)
                });
            match asked.or_else(|| self.choose(&subnet, &request.client, ia.iaid, &taken, now)) {
                Some(address) => {
                    granted.push((ia.iaid, address));
                    reply_ias.push(self.granted_ia(ia.iaid, address));
                }
                None => reply_ias.push(no_addresses(ia.iaid)),
            }
        }
        let reply = self.reply(request, MessageType::Reply, reply_ias);
        if granted.is_empty() {
            return Ok(Action::Send(self.transmit(request, &reply)));
        }
        Ok(self.commit(request, granted, reply, now))
    }

    /// RENEW and REBIND.
    fn extend(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let ias = request.message.ia_nas();
        if ias.is_empty() {
            return Err(Silence::NoIaNa);
        }
        let rebind = request.message.message_type == MessageType::Rebind;
        let mut granted = Vec::new();
        let mut reply_ias = Vec::new();
        for ia in &ias {
            let owner = Owner::Binding(request.client.duid.clone(), ia.iaid);
            let bound = self
                .leases
                .by_owner(&owner)
                .filter(|r| r.state == LeaseState::Active && r.expires_at > now)
                .map(|r| r.address);
            let on_link = |a: Ipv6Addr| {
                request
                    .subnet
                    .as_ref()
                    .is_some_and(|s| self.assignable(s, &request.client, a))
            };
            let keep = match bound {
                Some(address) if on_link(address) => Some(address),
                // REBIND without a binding (Kindling lost it, or another server's): the address
                // again when it is ours to give (RFC 8415 18.3.5 allows it).
                None if rebind => ia
                    .addresses
                    .iter()
                    .map(|a| a.address)
                    .find(|a| on_link(*a) && self.free_for(*a, &request.client, &owner, now)),
                _ => None,
            };
            match keep {
                Some(address) => {
                    granted.push((ia.iaid, address));
                    reply_ias.push(self.granted_ia(ia.iaid, address));
                }
                None if rebind && ia.addresses.iter().any(|a| !on_link(a.address)) => {
                    // Not appropriate for the link: lifetimes 0 tell the client to stop.
                    reply_ias.push(IaNa {
                        iaid: ia.iaid,
                        t1: 0,
                        t2: 0,
                        addresses: ia
                            .addresses
                            .iter()
                            .map(|a| IaAddress {
                                address: a.address,
                                preferred: 0,
                                valid: 0,
                            })
                            .collect(),
                        status: None,
                    });
                }
                None => reply_ias.push(IaNa {
                    iaid: ia.iaid,
                    t1: 0,
                    t2: 0,
                    addresses: Vec::new(),
                    status: Some((Status::NoBinding, "no binding for this IA".into())),
                }),
            }
        }
        let reply = self.reply(request, MessageType::Reply, reply_ias);
        if granted.is_empty() {
            return Ok(Action::Send(self.transmit(request, &reply)));
        }
        Ok(self.commit(request, granted, reply, now))
    }

    /// RELEASE (`state` Released) and DECLINE (Abandoned).
    fn give_back(&mut self, request: &Request<'_>, now: SystemTime, state: LeaseState) -> Verdict {
        let ias = request.message.ia_nas();
        let mut records = Vec::new();
        let mut reply_ias = Vec::new();
        for ia in &ias {
            let mut held = false;
            for address in ia.addresses.iter().map(|a| a.address) {
                let Some(record) = self.leases.by_addr(address) else {
                    continue;
                };
                if record.duid != request.client.duid
                    || record.iaid != ia.iaid
                    || record.state != LeaseState::Active
                {
                    continue;
                }
                held = true;
                let expires_at = match state {
                    LeaseState::Abandoned(_) => now + self.settings.lease_time,
                    _ => now.min(record.expires_at),
                };
                records.push(Lease6Record {
                    state: state.clone(),
                    expires_at,
                    ..record.clone()
                });
            }
            if !held {
                reply_ias.push(IaNa {
                    iaid: ia.iaid,
                    t1: 0,
                    t2: 0,
                    addresses: Vec::new(),
                    status: Some((Status::NoBinding, "no binding for this IA".into())),
                });
            }
        }
        let mut reply = self.reply(request, MessageType::Reply, reply_ias);
        let text = match state {
            LeaseState::Released => "released",
            _ => "declined",
        };
        reply
            .options
            .push(code::STATUS_CODE, status_data(Status::Success, text));
        let then = self.transmit(request, &reply);
        if records.is_empty() {
            return Ok(Action::Send(then));
        }
        let mut events = Vec::new();
        for record in &records {
            self.leases.apply(record.clone());
            events.extend(event(LeaseEventKind::Released, record));
            tracing::info!(duid = %hex(&record.duid), address = %record.address, "dhcpv6: {text}");
        }
        Ok(Action::Commit {
            records,
            then,
            events,
        })
    }

    fn confirm(&mut self, request: &Request<'_>) -> Verdict {
        let addresses: Vec<Ipv6Addr> = request
            .message
            .ia_nas()
            .iter()
            .flat_map(|ia| ia.addresses.iter().map(|a| a.address))
            .collect();
        if addresses.is_empty() {
            return Err(Silence::NothingToConfirm);
        }
        let subnet = request.subnet.as_ref().ok_or(Silence::NoSubnet)?;
        let status = if addresses.iter().all(|a| subnet.network.contains(a)) {
            status_data(Status::Success, "on link")
        } else {
            status_data(Status::NotOnLink, "not on this link")
        };
        let mut reply = self.reply(request, MessageType::Reply, Vec::new());
        reply.options.push(code::STATUS_CODE, status);
        Ok(Action::Send(self.transmit(request, &reply)))
    }

    fn information(&mut self, request: &Request<'_>) -> Verdict {
        if request.message.has(code::IA_NA) {
            return Err(Silence::IaInInformationRequest);
        }
        let reply = self.reply(request, MessageType::Reply, Vec::new());
        Ok(Action::Send(self.transmit(request, &reply)))
    }

    // ---------------------------------------------------------------------------------------
    // Replies

    /// Commits the granted leases; the REPLY leaves after them.
    fn commit(
        &mut self,
        request: &Request<'_>,
        granted: Vec<(u32, Ipv6Addr)>,
        reply: Message,
        now: SystemTime,
    ) -> Action {
        let hostname = self
            .settings
            .reservation(&request.client.duid, request.client.mac)
            .and_then(|r| r.hostname.clone())
            .or_else(|| client_hostname(request.message));
        let mut records = Vec::with_capacity(granted.len());
        let mut events = Vec::new();
        for (iaid, address) in granted {
            let previous = self.leases.by_addr(address);
            let renewed = previous.is_some_and(|p| {
                p.state == LeaseState::Active
                    && p.duid == request.client.duid
                    && p.iaid == iaid
                    && p.expires_at > now
            });
            let hostname = hostname
                .clone()
                .or_else(|| previous.and_then(|p| p.hostname.clone()));
            let record = self.record(&request.client, iaid, address, hostname, now);
            self.leases.apply(record.clone());
            let kind = if renewed {
                LeaseEventKind::Renewed
            } else {
                LeaseEventKind::Granted
            };
            tracing::info!(duid = %hex(&record.duid), iaid, %address,
                "dhcpv6: REPLY, lease {kind} for {}s", self.settings.lease_time.as_secs());
            events.extend(event(kind, &record));
            records.push(record);
        }
        Action::Commit {
            records,
            then: self.transmit(request, &reply),
            events,
        }
    }

    /// A reply with the client and server identifiers, the IAs, and the configured options.
    fn reply(&self, request: &Request<'_>, kind: MessageType, ias: Vec<IaNa>) -> Message {
        let mut reply = Message::new(kind, request.message.transaction_id);
        if let Some(duid) = request.message.client_id() {
            reply.options.push(code::CLIENT_ID, duid.to_vec());
        }
        reply
            .options
            .push(code::SERVER_ID, self.settings.server_duid.clone());
        for ia in ias {
            reply.options.push(code::IA_NA, ia.emit());
        }
        let subnet = request.subnet.as_ref();
        let dns_servers: Vec<Ipv6Addr> = match subnet.and_then(|s| s.dns.clone()) {
            Some(list) => list,
            None if self.settings.dns_domain.is_some() => request.our_address.into_iter().collect(),
            None => Vec::new(),
        };
        if !dns_servers.is_empty() {
            let data = dns_servers.iter().flat_map(|a| a.octets()).collect();
            reply.options.push(code::DNS_SERVERS, data);
        }
        if let Some(domain) = subnet
            .and_then(|s| s.domain.as_ref())
            .or(self.settings.dns_domain.as_ref())
        {
            reply.options.push(code::DOMAIN_LIST, dns_name(domain));
        }
        let reservation = self
            .settings
            .reservation(&request.client.duid, request.client.mac);
        if let BootDecision::Boot(offer) = self.boot_decision(request.message, reservation)
            && let Some(url) = boot_url(&offer.file, request.our_address)
        {
            reply.options.push(code::BOOTFILE_URL, url.into_bytes());
            // HTTP boot clients need HTTPClient echoed; PXE clients must not get PXEClient.
            if matches!(
                offer.kind,
                policy::ClientKind::UefiHttpX64 | policy::ClientKind::UefiHttpArm64
            ) {
                let mut data = PXE_ENTERPRISE.to_be_bytes().to_vec();
                data.extend(class_data(&[b"HTTPClient"]));
                reply.options.push(code::VENDOR_CLASS, data);
            }
        }
        reply
    }

    /// What the boot policy chooses for this client, from options 61, 16 and 15 and its
    /// reservation's boot files.
    fn boot_decision(&self, message: &Message, reservation: Option<&Reservation>) -> BootDecision {
        let user_classes = message.user_classes();
        let ipxe = user_classes.iter().any(|c| *c == b"iPXE");
        let vendor_classes = message.vendor_classes();
        let vendor_class = vendor_classes
            .iter()
            .flat_map(|(_, items)| items.iter().copied())
            .next();
        let arch = message.client_arches().first().map(|a| a.to_be_bytes());
        // A client that asks for a boot file URL but says nothing of what it is: iPXE gets its
        // script, anything else the x64 UEFI file (what such clients are in practice).
        let asks_for_url = message.requested_options().contains(&code::BOOTFILE_URL);
        let assumed_uefi = !ipxe && vendor_class.is_none() && arch.is_none() && asks_for_url;
        let default_arch = 7u16.to_be_bytes();
        let facts = ClientFacts {
            mac: None,
            arch: if assumed_uefi {
                Some(&default_arch[..])
            } else {
                arch.as_ref().map(|a| &a[..])
            },
            vendor_class: if assumed_uefi {
                Some(b"PXEClient".as_slice())
            } else {
                vendor_class
            },
            user_class: ipxe.then_some(b"iPXE".as_slice()),
            ipxe_options: false,
            uuid: None,
        };
        let mut boot_request =
            BootRequest::new(&facts, &self.settings.vendor_classes, Mode::Server);
        boot_request.http_port = self.settings.http_port;
        policy::choose(
            &boot_request,
            &self.settings.boot,
            reservation.map(|r| &r.boot),
        )
    }

    /// Where a reply goes: back to the client's link-local address and port, or through the
    /// relays to the one that sent it.
    fn transmit(&self, request: &Request<'_>, reply: &Message) -> Transmit {
        let bytes = if request.relays.is_empty() {
            reply.emit()
        } else {
            Packet::wrap_reply(request.relays, reply)
        };
        let mut to = request.source;
        if to.ip().is_unicast_link_local() {
            to.set_scope_id(request.interface.index);
        }
        Transmit {
            bytes,
            to,
            ifindex: request.interface.index,
        }
    }
}

fn no_addresses(iaid: u32) -> IaNa {
    IaNa {
        iaid,
        t1: 0,
        t2: 0,
        addresses: Vec::new(),
        status: Some((Status::NoAddrsAvail, "no free address".into())),
    }
}

/// The event of a lease whose machine is known (DNS keys names by MAC).
fn event(kind: LeaseEventKind, record: &Lease6Record) -> Option<LeaseEvent> {
    Some(LeaseEvent {
        kind,
        mac: record.mac?,
        address: std::net::IpAddr::V6(record.address),
        hostname: record.hostname.clone(),
        expires_at: record.expires_at,
    })
}

/// Option 59: `tftp://[address]/path`, or a URL the config gives as is.
fn boot_url(file: &BootFile, ours: Option<Ipv6Addr>) -> Option<String> {
    match file {
        BootFile::Tftp(path) => {
            let ours = ours?;
            Some(format!("tftp://[{ours}]/{}", path.trim_start_matches('/')))
        }
        BootFile::Http { .. } => Some(file.url_on(std::net::IpAddr::V6(ours?))),
        BootFile::Url(url) => Some(url.clone()),
    }
}

/// A domain name in DNS wire format (RFC 1035 3.1), as option 24 carries it.
fn dns_name(domain: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + 2);
    for label in domain.trim_end_matches('.').split('.') {
        let label = &label.as_bytes()[..label.len().min(63)];
        if label.is_empty() {
            continue;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// The host name a client asks for in option 39 (RFC 4704): its first label, sanitized.
fn client_hostname(message: &Message) -> Option<String> {
    let data = message.options.get(code::CLIENT_FQDN)?;
    let (&len, rest) = data.get(1..)?.split_first()?;
    let label = rest.get(..usize::from(len))?;
    crate::v4::server::sanitize_hostname(label)
}

/// The MAC inside a DUID-LLT (type 1) or DUID-LL (type 3) of an Ethernet client.
pub fn mac_of_duid(duid: &[u8]) -> Option<MacAddr> {
    let mac = match duid {
        [0, 1, 0, 1, _, _, _, _, mac @ ..] | [0, 3, 0, 1, mac @ ..] => mac,
        _ => return None,
    };
    Some(MacAddr(mac.try_into().ok()?))
}

/// The MAC a relay saw (option 79 with hardware type 1).
fn mac_of_relay(relay: &RelayMessage) -> Option<MacAddr> {
    match relay.client_link_layer() {
        Some((1, mac)) => Some(MacAddr(mac.try_into().ok()?)),
        _ => None,
    }
}

/// The link-local address a host makes from its MAC (modified EUI-64, RFC 4291 appendix A):
/// the inverse of [`mac_of_eui64`].
pub fn eui64_link_local(mac: MacAddr) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 2,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// The MAC behind a link-local address made from it (modified EUI-64, RFC 4291 appendix A).
pub fn mac_of_eui64(address: Ipv6Addr) -> Option<MacAddr> {
    if !address.is_unicast_link_local() {
        return None;
    }
    let o = address.octets();
    if o[11] != 0xff || o[12] != 0xfe {
        return None;
    }
    Some(MacAddr([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]))
}

/// 64-bit FNV-1a of a DUID and IAID: where an IA's address search starts.
fn fnv1a(duid: &[u8], iaid: u32) -> u128 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in duid.iter().chain(iaid.to_be_bytes().iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u128::from(hash)
}

/// A DUID (or any bytes) as lower-case hex, the way logs, `dhcp6.duid` and `kindling explain`
/// write it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex as [`hex`] writes it, `:` or `-` between bytes allowed; `None` when it is not whole
/// bytes of hex digits.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: String = text.chars().filter(|c| *c != ':' && *c != '-').collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect()
}
