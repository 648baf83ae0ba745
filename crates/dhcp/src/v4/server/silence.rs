//! Why the core sends nothing: a typed verdict for every rule that keeps it silent, so the
//! shell can count it and `kindling explain` can print it instead of re-deriving the rules.

use std::fmt;
use std::net::Ipv4Addr;

use dhcproto::v4::MessageType;
use ipnet::Ipv4Net;

use crate::policy::BootDecision;
use crate::v4::codec::CodecError;

/// A subnet as the config names it, for messages: `dhcp.subnets[INDEX]` (NETWORK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetName {
    pub index: usize,
    pub network: Ipv4Net,
}

impl fmt::Display for SubnetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dhcp.subnets[{}] ({})", self.index, self.network)
    }
}

/// Why a datagram got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    /// The datagram is not a well-formed DHCP message.
    Malformed(CodecError),
    /// A BOOTREPLY (op 2): servers answer requests only.
    NotARequest,
    /// A BOOTP request without a DHCP message type.
    Bootp,
    /// No Ethernet hardware address (htype 1, hlen 6) to identify the client by.
    NoEthernetAddress,
    /// Kindling's own coexistence probe, looped back by the kernel.
    OwnProbe,
    /// The client's reservation says `ignore: true`.
    Ignored,
    /// A message type that server mode does not take from clients (OFFER, ACK, NAK, ...).
    NotAClientMessage(MessageType),
    /// No configured subnet contains the receiving interface's addresses, the relay's giaddr
    /// or a renewing client's ciaddr.
    NoSubnet,
    /// The subnet (server mode) or the service (proxy mode, `None`) answers only clients with a
    /// reservation, and this one has none.
    KnownClientsOnly(Option<SubnetName>),
    /// A retransmitted DISCOVER while the ping check of its address runs: the check's outcome
    /// answers it.
    ProbeInProgress,
    /// Every address of the range is leased, reserved for another client or set aside.
    PoolExhausted {
        subnet: SubnetName,
        first: Ipv4Addr,
        last: Ipv4Addr,
    },
    /// The receiving interface has no IPv4 address to answer from.
    NoServerAddress,
    /// The reply could not be encoded (logged at warn).
    Unencodable,
    /// A REQUEST in SELECTING that names another server: the client took its offer.
    OtherServerChosen(Ipv4Addr),
    /// A REQUEST with our server identifier but no requested address (option 50).
    NoRequestedAddress,
    /// A REQUEST with neither a requested address nor ciaddr.
    NoAddressInRequest,
    /// An INIT-REBOOT, RENEWING or REBINDING REQUEST from a client with no record here
    /// (RFC 2131 4.3.2: the server must remain silent).
    UnknownClient { state: &'static str },
    /// A DECLINE addressed to another server.
    OtherServersDecline(Ipv4Addr),
    /// A DECLINE or RELEASE without the address it is about.
    NoAddressToFree(MessageType),
    /// A DECLINE or RELEASE of an address the client does not hold.
    NotHeld(MessageType, Ipv4Addr),
    /// Proxy mode answers DISCOVERs and REQUESTs addressed to it; the boot server (port 4011)
    /// REQUESTs and INFORMs.
    NotForProxy(MessageType),
    /// Proxy mode and the boot server answer only with a boot file, and the boot policy has
    /// none for this client (or it is not a netboot client).
    NoBootFile(Box<BootDecision>),
}

impl fmt::Display for Silence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Silence::Malformed(error) => write!(f, "dropped a malformed datagram: {error}"),
            Silence::NotARequest => f.write_str("not a BOOTREQUEST; servers answer requests only"),
            Silence::Bootp => {
                f.write_str("a BOOTP request (no DHCP message type); Kindling answers DHCP only")
            }
            Silence::NoEthernetAddress => {
                f.write_str("the request carries no Ethernet hardware address")
            }
            Silence::OwnProbe => f.write_str("Kindling's own coexistence probe"),
            Silence::Ignored => {
                f.write_str("ignored: the client's reservation says `ignore: true`")
            }
            Silence::NotAClientMessage(kind) => {
                write!(f, "a {kind:?} is not a message a client sends to a server")
            }
            Silence::NoSubnet => f.write_str(
                "no subnet: no dhcp.subnets network contains the receiving interface's address \
                 (or the relay's giaddr), so there is no address to offer",
            ),
            Silence::KnownClientsOnly(Some(subnet)) => write!(
                f,
                "{subnet} answers known clients only (known_clients_only) and the client has \
                 no reservation"
            ),
            Silence::KnownClientsOnly(None) => {
                f.write_str("dhcp.known_clients_only is set and the client has no reservation")
            }
            Silence::ProbeInProgress => f.write_str(
                "a retransmitted DISCOVER while the ping check of its address runs; the check's \
                 outcome answers it",
            ),
            Silence::PoolExhausted {
                subnet,
                first,
                last,
            } => write!(
                f,
                "no free address in {subnet}'s range {first} - {last}: every address is leased, \
                 reserved for another client or set aside"
            ),
            Silence::NoServerAddress => {
                f.write_str("the receiving interface has no IPv4 address to answer from")
            }
            Silence::Unencodable => f.write_str("the reply could not be encoded"),
            Silence::OtherServerChosen(server) => write!(
                f,
                "the client chose the offer of another server ({server}); ours is withdrawn"
            ),
            Silence::NoRequestedAddress => f.write_str(
                "a REQUEST with our server identifier but no requested address (option 50)",
            ),
            Silence::NoAddressInRequest => {
                f.write_str("a REQUEST with neither a requested address (option 50) nor ciaddr")
            }
            Silence::UnknownClient { state } => write!(
                f,
                "{state} REQUEST from a client Kindling has no record of; a server stays silent \
                 (RFC 2131 4.3.2)"
            ),
            Silence::OtherServersDecline(server) => {
                write!(f, "a DECLINE addressed to another server ({server})")
            }
            Silence::NoAddressToFree(kind) => {
                write!(f, "a {kind:?} that names no address")
            }
            Silence::NotHeld(kind, address) => {
                write!(f, "a {kind:?} of {address}, which the client does not hold")
            }
            Silence::NotForProxy(kind) => write!(
                f,
                "proxy mode answers DISCOVERs and REQUESTs to itself, and the boot server \
                 REQUESTs and INFORMs, not a {kind:?}"
            ),
            Silence::NoBootFile(decision)
                if matches!(**decision, BootDecision::NotNetboot { .. }) =>
            {
                write!(
                    f,
                    "not a netboot client: proxy mode answers PXE, iPXE and HTTP boot clients only \
                 (this client gets its address from the network's DHCP server and no boot \
                 options) ({decision})"
                )
            }
            Silence::NoBootFile(decision) => write!(
                f,
                "proxy mode and the boot server answer only with a boot file, and the boot \
                 policy has none for this client ({decision})"
            ),
        }
    }
}
