//! The DHCPv6 wire format (RFC 8415 section 8, 9 and 21): a message or relay message parsed
//! into typed values, and emitted from them.
//!
//! Our own codec, not dhcproto's v6 module (docs/ARCHITECTURE.md says why): its decoder ends
//! option parsing silently at a malformed option, panics on some short options when overflow
//! checks are on (a 14-byte message with option 17 of length 0), and its encoders for options
//! 15 and 16 write the item count as the length. The format is a flat list of
//! type-length-value options, nested only inside IA_NA and relay messages, so a strict parser
//! of our own is small: every option must fit its message exactly, fixed-size options must have
//! their size, and any violation is a typed error naming the option and its offset.

use std::fmt;
use std::net::Ipv6Addr;

/// Option codes Kindling reads or writes.
pub mod code {
    pub const CLIENT_ID: u16 = 1;
    pub const SERVER_ID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const VENDOR_OPTS: u16 = 17;
    pub const INTERFACE_ID: u16 = 18;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const CLIENT_FQDN: u16 = 39;
    pub const BOOTFILE_URL: u16 = 59;
    pub const BOOTFILE_PARAM: u16 = 60;
    pub const CLIENT_ARCH: u16 = 61;
    pub const CLIENT_NII: u16 = 62;
    pub const CLIENT_LINKLAYER_ADDR: u16 = 79;
}

/// DHCPv6 message types (RFC 8415 section 7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Solicit,
    Advertise,
    Request,
    Confirm,
    Renew,
    Rebind,
    Reply,
    Release,
    Decline,
    Reconfigure,
    InformationRequest,
    RelayForw,
    RelayRepl,
    Other(u8),
}

impl MessageType {
    pub fn from_code(code: u8) -> MessageType {
        match code {
            1 => MessageType::Solicit,
            2 => MessageType::Advertise,
            3 => MessageType::Request,
            4 => MessageType::Confirm,
            5 => MessageType::Renew,
            6 => MessageType::Rebind,
            7 => MessageType::Reply,
            8 => MessageType::Release,
            9 => MessageType::Decline,
            10 => MessageType::Reconfigure,
            11 => MessageType::InformationRequest,
            12 => MessageType::RelayForw,
            13 => MessageType::RelayRepl,
            other => MessageType::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            MessageType::Solicit => 1,
            MessageType::Advertise => 2,
            MessageType::Request => 3,
            MessageType::Confirm => 4,
            MessageType::Renew => 5,
            MessageType::Rebind => 6,
            MessageType::Reply => 7,
            MessageType::Release => 8,
            MessageType::Decline => 9,
            MessageType::Reconfigure => 10,
            MessageType::InformationRequest => 11,
            MessageType::RelayForw => 12,
            MessageType::RelayRepl => 13,
            MessageType::Other(code) => code,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MessageType::Solicit => "SOLICIT",
            MessageType::Advertise => "ADVERTISE",
            MessageType::Request => "REQUEST",
            MessageType::Confirm => "CONFIRM",
            MessageType::Renew => "RENEW",
            MessageType::Rebind => "REBIND",
            MessageType::Reply => "REPLY",
            MessageType::Release => "RELEASE",
            MessageType::Decline => "DECLINE",
            MessageType::Reconfigure => "RECONFIGURE",
            MessageType::InformationRequest => "INFORMATION-REQUEST",
            MessageType::RelayForw => "RELAY-FORW",
            MessageType::RelayRepl => "RELAY-REPL",
            MessageType::Other(code) => return write!(f, "message type {code}"),
        };
        f.write_str(name)
    }
}

/// Status codes (RFC 8415 section 21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    UnspecFail = 1,
    NoAddrsAvail = 2,
    NoBinding = 3,
    NotOnLink = 4,
    UseMulticast = 5,
}

/// Why bytes are not a DHCPv6 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{len} bytes is too short for a DHCPv6 message")]
    TooShort { len: usize },
    #[error("option {code} at offset {offset} runs past the end of its message")]
    Overrun { code: u16, offset: usize },
    #[error("option {code} at offset {offset} has length {len}, which its kind cannot have")]
    BadLength {
        code: u16,
        offset: usize,
        len: usize,
    },
    #[error("relay messages are nested deeper than {MAX_RELAY_DEPTH}")]
    TooDeep,
    #[error("a relay message carries no relay-message option")]
    NoRelayMessage,
}

/// The deepest chain of relays accepted (RFC 8415 HOP_COUNT_LIMIT is 8 hops).
pub const MAX_RELAY_DEPTH: usize = 8;

/// One option as it appeared: its code and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    pub code: u16,
    pub data: Vec<u8>,
}

/// Options in the order they appeared (an option may repeat: IA_NA, vendor class).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(pub Vec<RawOption>);

impl Options {
    /// Parses a whole option area; `base` is its offset in the datagram, for errors.
    pub fn parse(mut bytes: &[u8], base: usize) -> Result<Options, CodecError> {
        let mut options = Vec::new();
        let mut offset = base;
        while !bytes.is_empty() {
            let (Some(code), Some(len)) = (be16(bytes, 0), be16(bytes, 2)) else {
                return Err(CodecError::Overrun {
                    code: be16(bytes, 0).unwrap_or(0),
                    offset,
                });
            };
            let len = usize::from(len);
            let Some(data) = bytes.get(4..4 + len) else {
                return Err(CodecError::Overrun { code, offset });
            };
            check_length(code, offset, data)?;
            options.push(RawOption {
                code,
                data: data.to_vec(),
            });
            bytes = &bytes[4 + len..];
            offset += 4 + len;
        }
        Ok(Options(options))
    }

    /// The data of the first option `code`.
    pub fn get(&self, code: u16) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|o| o.code == code)
            .map(|o| o.data.as_slice())
    }

    /// The data of every option `code`, in order.
    pub fn all(&self, code: u16) -> impl Iterator<Item = &[u8]> {
        self.0
            .iter()
            .filter(move |o| o.code == code)
            .map(|o| o.data.as_slice())
    }

    pub fn push(&mut self, code: u16, data: Vec<u8>) {
        self.0.push(RawOption { code, data });
    }

    fn emit(&self, out: &mut Vec<u8>) {
        for option in &self.0 {
            emit_option(out, option.code, &option.data);
        }
    }
}

/// Appends one option; data longer than 65,535 bytes is cut (no option Kindling builds is).
pub fn emit_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&data[..usize::from(len)]);
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn ipv6(bytes: &[u8], at: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

/// The sizes RFC 8415 and the option RFCs fix; everything else is checked where it is read.
fn check_length(code: u16, offset: usize, data: &[u8]) -> Result<(), CodecError> {
    let len = data.len();
    let ok = match code {
        code::CLIENT_ID | code::SERVER_ID => (2..=130).contains(&len),
        code::IA_NA => len >= 12,
        code::IA_TA => len >= 4,
        code::IAADDR => len >= 24,
        code::ORO | code::CLIENT_ARCH => len.is_multiple_of(2),
        code::PREFERENCE => len == 1,
        code::ELAPSED_TIME => len == 2,
        code::STATUS_CODE => len >= 2,
        code::RAPID_COMMIT => len == 0,
        code::VENDOR_CLASS | code::VENDOR_OPTS => len >= 4,
        code::CLIENT_NII => len == 3,
        code::CLIENT_LINKLAYER_ADDR => len >= 3,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(CodecError::BadLength { code, offset, len })
    }
}

/// A client or server message (not a relay message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_type: MessageType,
    pub transaction_id: [u8; 3],
    pub options: Options,
}

/// An address in an IA_NA (RFC 8415 section 21.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaAddress {
    pub address: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
}

/// An identity association for non-temporary addresses (RFC 8415 section 21.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub addresses: Vec<IaAddress>,
    pub status: Option<(Status, String)>,
}

impl IaNa {
    /// Parses the data of an IA_NA option, nested options included.
    pub fn parse(data: &[u8], offset: usize) -> Result<IaNa, CodecError> {
        let bad = || CodecError::BadLength {
            code: code::IA_NA,
            offset,
            len: data.len(),
        };
        let iaid = be32(data, 0).ok_or_else(bad)?;
        let t1 = be32(data, 4).ok_or_else(bad)?;
        let t2 = be32(data, 8).ok_or_else(bad)?;
        let nested = Options::parse(&data[12..], offset + 4 + 12)?;
        let addresses = nested
            .all(code::IAADDR)
            .filter_map(|a| {
                Some(IaAddress {
                    address: ipv6(a, 0)?,
                    preferred: be32(a, 16)?,
                    valid: be32(a, 20)?,
                })
            })
            .collect();
        Ok(IaNa {
            iaid,
            t1,
            t2,
            addresses,
            status: None,
        })
    }

    /// The option data: IAID, T1, T2, then each address and the status, if any.
    pub fn emit(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(12 + self.addresses.len() * 28);
        data.extend_from_slice(&self.iaid.to_be_bytes());
        data.extend_from_slice(&self.t1.to_be_bytes());
        data.extend_from_slice(&self.t2.to_be_bytes());
        for address in &self.addresses {
            let mut a = Vec::with_capacity(24);
            a.extend_from_slice(&address.address.octets());
            a.extend_from_slice(&address.preferred.to_be_bytes());
            a.extend_from_slice(&address.valid.to_be_bytes());
            emit_option(&mut data, code::IAADDR, &a);
        }
        if let Some((status, text)) = &self.status {
            emit_option(&mut data, code::STATUS_CODE, &status_data(*status, text));
        }
        data
    }
}

/// The data of a status-code option.
pub fn status_data(status: Status, text: &str) -> Vec<u8> {
    let mut data = (status as u16).to_be_bytes().to_vec();
    data.extend_from_slice(text.as_bytes());
    data
}

/// The items of a user-class option, or of a vendor-class option after its enterprise number
/// (RFC 8415 sections 21.15 and 21.16: each a 16-bit length and that many bytes). Stops at an
/// item that runs past the end.
pub fn class_items(mut data: &[u8]) -> Vec<&[u8]> {
    let mut items = Vec::new();
    while let Some(len) = be16(data, 0) {
        let len = usize::from(len);
        let Some(item) = data.get(2..2 + len) else {
            break;
        };
        items.push(item);
        data = &data[2 + len..];
    }
    items
}

/// The data of a user- or vendor-class option's item list.
pub fn class_data(items: &[&[u8]]) -> Vec<u8> {
    let mut data = Vec::new();
    for item in items {
        let len = u16::try_from(item.len()).unwrap_or(u16::MAX);
        data.extend_from_slice(&len.to_be_bytes());
        data.extend_from_slice(&item[..usize::from(len)]);
    }
    data
}

impl Message {
    pub fn new(message_type: MessageType, transaction_id: [u8; 3]) -> Message {
        Message {
            message_type,
            transaction_id,
            options: Options::default(),
        }
    }

    /// Parses a client or server message; a relay message is [`Packet::parse`]'s job.
    pub fn parse(bytes: &[u8]) -> Result<Message, CodecError> {
        if bytes.len() < 4 {
            return Err(CodecError::TooShort { len: bytes.len() });
        }
        let options = Options::parse(&bytes[4..], 4)?;
        let message = Message {
            message_type: MessageType::from_code(bytes[0]),
            transaction_id: [bytes[1], bytes[2], bytes[3]],
            options,
        };
        // IA_NAs parse now, so a malformed one is an error of the message, not a silent skip.
        for (offset, data) in message.option_offsets(code::IA_NA) {
            IaNa::parse(data, offset)?;
        }
        Ok(message)
    }

    fn option_offsets(&self, wanted: u16) -> Vec<(usize, &[u8])> {
        let mut offset = 4;
        let mut out = Vec::new();
        for option in &self.options.0 {
            if option.code == wanted {
                out.push((offset, option.data.as_slice()));
            }
            offset += 4 + option.data.len();
        }
        out
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut out = vec![self.message_type.code()];
        out.extend_from_slice(&self.transaction_id);
        self.options.emit(&mut out);
        out
    }

    pub fn client_id(&self) -> Option<&[u8]> {
        self.options.get(code::CLIENT_ID)
    }

    pub fn server_id(&self) -> Option<&[u8]> {
        self.options.get(code::SERVER_ID)
    }

    /// Every IA_NA (already checked by [`Message::parse`]).
    pub fn ia_nas(&self) -> Vec<IaNa> {
        self.options
            .all(code::IA_NA)
            .filter_map(|data| IaNa::parse(data, 0).ok())
            .collect()
    }

    pub fn has(&self, code: u16) -> bool {
        self.options.get(code).is_some()
    }

    /// The option codes the client asked for (option 6).
    pub fn requested_options(&self) -> Vec<u16> {
        self.options
            .get(code::ORO)
            .map(|data| {
                data.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The user-class items (option 15).
    pub fn user_classes(&self) -> Vec<&[u8]> {
        self.options
            .all(code::USER_CLASS)
            .flat_map(class_items)
            .collect()
    }

    /// The vendor classes (option 16): enterprise number and items, per option.
    pub fn vendor_classes(&self) -> Vec<(u32, Vec<&[u8]>)> {
        self.options
            .all(code::VENDOR_CLASS)
            .filter_map(|data| Some((be32(data, 0)?, class_items(&data[4..]))))
            .collect()
    }

    /// The client architecture types (option 61), first one first.
    pub fn client_arches(&self) -> Vec<u16> {
        self.options
            .get(code::CLIENT_ARCH)
            .map(|data| {
                data.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A relay message (RELAY-FORW or RELAY-REPL, RFC 8415 section 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMessage {
    pub message_type: MessageType,
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    /// Every option but the relay message (interface-id, option 79, ...).
    pub options: Options,
}

impl RelayMessage {
    /// The data of the relay's option 79: hardware type and link-layer address.
    pub fn client_link_layer(&self) -> Option<(u16, &[u8])> {
        let data = self.options.get(code::CLIENT_LINKLAYER_ADDR)?;
        Some((be16(data, 0)?, &data[2..]))
    }

    pub fn interface_id(&self) -> Option<&[u8]> {
        self.options.get(code::INTERFACE_ID)
    }
}

/// A datagram to port 547: a client message, possibly inside relay messages (outermost relay
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub relays: Vec<RelayMessage>,
    pub message: Message,
}

impl Packet {
    pub fn parse(bytes: &[u8]) -> Result<Packet, CodecError> {
        let mut relays = Vec::new();
        let mut bytes = bytes.to_vec();
        loop {
            let Some(&first) = bytes.first() else {
                return Err(CodecError::TooShort { len: 0 });
            };
            let message_type = MessageType::from_code(first);
            if !matches!(
                message_type,
                MessageType::RelayForw | MessageType::RelayRepl
            ) {
                let message = Message::parse(&bytes)?;
                return Ok(Packet { relays, message });
            }
            if relays.len() == MAX_RELAY_DEPTH {
                return Err(CodecError::TooDeep);
            }
            if bytes.len() < 34 {
                return Err(CodecError::TooShort { len: bytes.len() });
            }
            let mut options = Options::parse(&bytes[34..], 34)?;
            let Some(position) = options.0.iter().position(|o| o.code == code::RELAY_MSG) else {
                return Err(CodecError::NoRelayMessage);
            };
            let inner = options.0.remove(position).data;
            relays.push(RelayMessage {
                message_type,
                hop_count: bytes[1],
                link_address: ipv6(&bytes, 2).unwrap_or(Ipv6Addr::UNSPECIFIED),
                peer_address: ipv6(&bytes, 18).unwrap_or(Ipv6Addr::UNSPECIFIED),
                options,
            });
            bytes = inner;
        }
    }

    /// The reply to a packet that came through `relays`: `reply` wrapped in one RELAY-REPL per
    /// relay, innermost first, each echoing its relay's hop count, addresses and interface-id
    /// (RFC 8415 section 19.3).
    pub fn wrap_reply(relays: &[RelayMessage], reply: &Message) -> Vec<u8> {
        let mut bytes = reply.emit();
        for relay in relays.iter().rev() {
            let mut out = vec![MessageType::RelayRepl.code(), relay.hop_count];
            out.extend_from_slice(&relay.link_address.octets());
            out.extend_from_slice(&relay.peer_address.octets());
            if let Some(id) = relay.interface_id() {
                emit_option(&mut out, code::INTERFACE_ID, id);
            }
            emit_option(&mut out, code::RELAY_MSG, &bytes);
            bytes = out;
        }
        bytes
    }
}
