//! Why the DHCPv6 core sends nothing.

use std::fmt;

use crate::v6::codec::{CodecError, MessageType};

/// Why a datagram got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    /// The datagram is not a well-formed DHCPv6 message.
    Malformed(CodecError),
    /// A server's message (ADVERTISE, REPLY, RECONFIGURE, RELAY-REPL) or an unknown type.
    NotAClientMessage(MessageType),
    /// Every client message but INFORMATION-REQUEST must carry a client identifier.
    NoClientId(MessageType),
    /// REQUEST, RENEW, DECLINE and RELEASE must name the server they are for.
    NoServerId(MessageType),
    /// The message names another server.
    OtherServer(MessageType),
    /// SOLICIT, REBIND and CONFIRM must name no server (RFC 8415 16).
    UnexpectedServerId(MessageType),
    /// No `dhcp.v6.subnets` network contains the receiving interface's addresses or the
    /// relay's link address.
    NoSubnet,
    /// The machine's reservation says `ignore: true`.
    Ignored,
    /// Our own coexistence probe SOLICIT, looped back.
    OwnProbe,
    /// The message asks for no IA_NA (Kindling hands out addresses only, not prefixes).
    NoIaNa,
    /// A CONFIRM without addresses (RFC 8415 18.3.3: no reply).
    NothingToConfirm,
    /// An INFORMATION-REQUEST that carries an IA (RFC 8415 16.12: discard).
    IaInInformationRequest,
}

impl fmt::Display for Silence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Silence::Malformed(error) => write!(f, "dropped a malformed datagram: {error}"),
            Silence::NotAClientMessage(kind) => {
                write!(f, "a {kind} is not a message a client sends to a server")
            }
            Silence::NoClientId(kind) => write!(f, "a {kind} without a client identifier"),
            Silence::NoServerId(kind) => {
                write!(f, "a {kind} without a server identifier (RFC 8415 16)")
            }
            Silence::OtherServer(kind) => write!(f, "a {kind} for another server"),
            Silence::UnexpectedServerId(kind) => write!(
                f,
                "a {kind} with a server identifier, which it must not carry (RFC 8415 16)"
            ),
            Silence::NoSubnet => f.write_str(
                "no subnet: no dhcp.v6.subnets network contains the receiving interface's \
                 address (or the relay's link address)",
            ),
            Silence::Ignored => {
                f.write_str("ignored: the machine's reservation says `ignore: true`")
            }
            Silence::OwnProbe => {
                f.write_str("our own coexistence probe (a SOLICIT from the probe DUID)")
            }
            Silence::NoIaNa => f.write_str("the message asks for no address (no IA_NA)"),
            Silence::NothingToConfirm => f.write_str("a CONFIRM without addresses"),
            Silence::IaInInformationRequest => {
                f.write_str("an INFORMATION-REQUEST that carries an IA (RFC 8415 16.12)")
            }
        }
    }
}
