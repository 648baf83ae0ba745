//! The DHCPv4 wire format: dhcproto behind a checking wrapper.
//!
//! dhcproto 0.15 decodes the fixed header and types individual option values, and encodes the
//! header and typed option values. This module does what it misses or gets wrong (see
//! `notes/crates.md` §3 and the `dhcproto_bugs` tests at the bottom of this file):
//!
//! - it checks the minimum length, the magic cookie and `hlen`;
//! - it walks the option areas itself, so a length that runs past the end of its area is a
//!   [`CodecError::MalformedOption`] naming the code and offset instead of silently ending the
//!   option list, and a value dhcproto cannot type (a subnet mask of 3 bytes, a non-UTF-8 host
//!   name) no longer hides every option after it;
//! - it honours option 52 (overload): options stored in `file` and then `sname` are parsed, and
//!   all instances of one code are concatenated in the order of RFC 3396 (options, file, sname);
//! - `sname` and `file` are C strings: the bytes up to the first NUL, `None` when empty or when
//!   the field carries options;
//! - every option keeps its raw bytes ([`Message::raw`]), which is what echoes (43, 60, 61, 77,
//!   82, 93, 97, 175) and the boot policy need;
//! - on the way out it puts option 53 first (some old PXE ROMs look only there), encodes raw
//!   options itself (with RFC 3396 splitting past 255 bytes), puts option 82 last, pads to the
//!   300-byte BOOTP minimum and length-checks `chaddr`, `sname` and `file` instead of letting
//!   dhcproto's setters panic.
//!
//! # Contract
//!
//! - [`decode`] accepts any byte slice and never panics. Framing problems are typed
//!   [`CodecError`]s; the caller drops the datagram with a debug log.
//! - An option whose framing is sound but whose value dhcproto cannot type is kept raw and listed
//!   by [`Message::untyped_codes`]: it is absent from [`Message::opts`], so typed accessors such
//!   as [`Message::requested_ip`] return `None` for it. dhcproto is never handed a value it is
//!   known to panic on (debug assertions on the lengths of options 80, 81, 94 and 152–155), and
//!   every call into it for packet data runs under `catch_unwind` as a second line of defence.
//! - [`encode`] never panics. After a successful encode, [`decode`] of the bytes gives back the
//!   reply's header fields, its message type, and every option with the bytes it was given.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};

use dhcproto::v4::{self, DhcpOption, DhcpOptions, Flags, HType, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// Length of the fixed BOOTP header (op through file), before the magic cookie.
pub const HEADER_LEN: usize = 236;
/// The DHCP magic cookie of RFC 2131 section 3 (99.130.83.99).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The shortest datagram [`decode`] accepts: the header and the cookie.
pub const MIN_LEN: usize = HEADER_LEN + MAGIC_COOKIE.len();
/// The BOOTP minimum message size (RFC 951, RFC 1542 section 2.1): replies are padded to it.
pub const BOOTP_MIN_LEN: usize = 300;
/// The largest DHCP message every client must accept: a 576-byte IP datagram less the IP (20)
/// and UDP (8) headers (RFC 2131 section 2).
pub const DEFAULT_MAX_LEN: usize = 576 - 28;
/// The longest `sname` we emit: 64 bytes including the terminating NUL.
pub const MAX_SNAME_LEN: usize = 63;
/// The longest `file` we emit: 128 bytes including the terminating NUL. Longer boot file names
/// go in option 67 only (see [`Reply::set_boot_file`]).
pub const MAX_FILE_LEN: usize = 127;

const CHADDR: Range<usize> = 28..44;
const SNAME: Range<usize> = 44..108;
const FILE: Range<usize> = 108..236;
const COOKIE: Range<usize> = HEADER_LEN..MIN_LEN;

/// Option codes this crate refers to by number (RFC 2132 unless noted).
pub mod code {
    /// Padding, no length byte.
    pub const PAD: u8 = 0;
    /// Host name.
    pub const HOSTNAME: u8 = 12;
    /// Vendor-specific information (PXE: encapsulated PXE options).
    pub const VENDOR_OPTIONS: u8 = 43;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// Option overload: options continue in `file` (1), `sname` (2) or both (3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Maximum DHCP message size.
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Vendor class identifier (`PXEClient:Arch:00000:UNDI:002001`).
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// TFTP server name.
    pub const TFTP_SERVER_NAME: u8 = 66;
    /// Boot file name.
    pub const BOOTFILE_NAME: u8 = 67;
    /// User class (RFC 3004; iPXE sends the bare string `iPXE`).
    pub const USER_CLASS: u8 = 77;
    /// Client FQDN (RFC 4702).
    pub const CLIENT_FQDN: u8 = 81;
    /// Relay agent information (RFC 3046).
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// Client system architecture (RFC 4578).
    pub const CLIENT_ARCH: u8 = 93;
    /// Client network interface identifier (RFC 4578).
    pub const CLIENT_NII: u8 = 94;
    /// Client machine identifier, the UUID/GUID (RFC 4578).
    pub const CLIENT_UUID: u8 = 97;
    /// iPXE's encapsulated options.
    pub const IPXE_ENCAP: u8 = 175;
    /// End of options, no length byte.
    pub const END: u8 = 255;
}

/// PXE vendor options, carried in option 43 (PXE 2.1 specification, section 2.4).
pub mod pxe {
    /// Sub-option 6, PXE_DISCOVERY_CONTROL.
    pub const DISCOVERY_CONTROL: u8 = 6;
    /// Discovery control bit 3: a boot file name is present, download it without boot server
    /// discovery or a menu.
    pub const USE_BOOT_FILE: u8 = 8;

    /// The option 43 value that makes a PXE ROM skip boot server discovery and load the boot
    /// file of the offer: discovery control = 8, then the end of the sub-options.
    pub fn skip_discovery() -> Vec<u8> {
        vec![DISCOVERY_CONTROL, 1, USE_BOOT_FILE, super::code::END]
    }
}

/// Which part of the datagram an option was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    /// The options field after the magic cookie.
    Options,
    /// The `file` header field, used for options under option 52.
    File,
    /// The `sname` header field, used for options under option 52.
    Sname,
}

impl Area {
    fn range(self, len: usize) -> Range<usize> {
        match self {
            Area::Options => MIN_LEN..len,
            Area::File => FILE,
            Area::Sname => SNAME,
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Area::Options => "options",
            Area::File => "file",
            Area::Sname => "sname",
        })
    }
}

/// What option 52 said about the `file` and `sname` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Overload {
    /// No option 52: `file` and `sname` hold names.
    #[default]
    None,
    /// Value 1: `file` holds options.
    File,
    /// Value 2: `sname` holds options.
    Sname,
    /// Value 3: both hold options.
    Both,
}

impl Overload {
    /// Whether `file` carries options rather than a name.
    pub fn file(self) -> bool {
        matches!(self, Overload::File | Overload::Both)
    }

    /// Whether `sname` carries options rather than a name.
    pub fn sname(self) -> bool {
        matches!(self, Overload::Sname | Overload::Both)
    }
}

/// What is wrong with an option 52.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadProblem {
    /// The value is not exactly one byte (several instances concatenate, RFC 3396).
    Length(usize),
    /// The value is not 1, 2 or 3.
    Value(u8),
    /// Option 52 appeared inside `file` or `sname`; RFC 2131 allows it only in the options field.
    Nested(Area),
}

impl fmt::Display for OverloadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverloadProblem::Length(len) => write!(f, "value of {len} bytes, expected 1"),
            OverloadProblem::Value(value) => write!(f, "value {value}, expected 1, 2 or 3"),
            OverloadProblem::Nested(area) => write!(f, "found inside the {area} field"),
        }
    }
}

/// A header field that [`encode`] length-checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The client hardware address (16 bytes).
    Chaddr,
    /// The server host name (63 bytes and a NUL).
    Sname,
    /// The boot file name (127 bytes and a NUL).
    File,
    /// The whole message, against [`Reply::max_len`].
    Message,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Chaddr => "chaddr",
            Field::Sname => "sname",
            Field::File => "file",
            Field::Message => "the message",
        })
    }
}

/// Why a datagram does not decode or a reply does not encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Shorter than the fixed header and the magic cookie.
    #[error("{len} bytes is shorter than the {MIN_LEN}-byte DHCP header and magic cookie")]
    TooShort {
        /// The datagram length.
        len: usize,
    },
    /// Bytes 236..240 are not 99.130.83.99 (a BOOTP-only or garbage datagram).
    #[error("bad magic cookie {found:?}, expected [99, 130, 83, 99]")]
    BadCookie {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// `hlen` is larger than the 16-byte `chaddr` field.
    #[error("hardware address length {hlen} is larger than the 16-byte chaddr field")]
    BadHardwareLength {
        /// The `hlen` byte.
        hlen: u8,
    },
    /// An option's length byte is missing or its value runs past the end of its area.
    #[error("option {code} at offset {offset} runs past the end of the {area} area")]
    MalformedOption {
        /// The option code.
        code: u8,
        /// Offset of the option's code byte in the datagram.
        offset: usize,
        /// The area the option is in.
        area: Area,
    },
    /// Option 52 is unusable.
    #[error("option 52 (overload) at offset {offset}: {problem}")]
    Overload {
        /// Offset of the (first) option 52 in the datagram.
        offset: usize,
        /// What is wrong with it.
        problem: OverloadProblem,
    },
    /// A reply field is longer than its room on the wire.
    #[error("{field} is {len} bytes, at most {max} fit")]
    TooLong {
        /// The field.
        field: Field,
        /// Its length.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// `sname` or `file` contains a NUL, which would cut it short on the wire.
    #[error("{field} contains a NUL byte")]
    EmbeddedNul {
        /// The field.
        field: Field,
    },
    /// A reply carries the same option code twice.
    #[error("option {code} appears more than once in the reply")]
    DuplicateOption {
        /// The option code.
        code: u8,
    },
    /// A reply option uses a code the encoder owns: 0 (pad), 52 (overload), 53 (message type,
    /// taken from [`Reply::message_type`]) or 255 (end).
    #[error("option {code} cannot be set directly in a reply")]
    ReservedOption {
        /// The option code.
        code: u8,
    },
    /// dhcproto failed (or produced malformed bytes) encoding a typed option.
    #[error("option {code} did not encode: {message}")]
    Encode {
        /// The option code.
        code: u8,
        /// What went wrong.
        message: String,
    },
    /// dhcproto failed where it should not be able to (a bug: please report it).
    #[error("internal codec error: {0}")]
    Internal(&'static str),
}

/// One option as it was on the wire: all instances of its code concatenated (RFC 3396).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// The option code (never 0 or 255).
    pub code: u8,
    /// The value: every instance of the code, concatenated in wire order.
    pub data: Vec<u8>,
    /// Offset in the datagram of the first instance's code byte.
    pub offset: usize,
    /// The area of the first instance.
    pub area: Area,
    /// How many instances were concatenated (1 for an ordinary option).
    pub instances: usize,
}

/// A decoded DHCPv4 message (see the module doc for what the wrapper adds to dhcproto).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    inner: v4::Message,
    sname: Option<Vec<u8>>,
    file: Option<Vec<u8>>,
    overload: Overload,
    options: Vec<RawOption>,
    untyped: Vec<u8>,
}

impl Message {
    /// BOOTREQUEST or BOOTREPLY.
    pub fn opcode(&self) -> Opcode {
        self.inner.opcode()
    }

    /// The hardware type (1 for Ethernet).
    pub fn htype(&self) -> HType {
        self.inner.htype()
    }

    /// The hardware address length (at most 16: [`decode`] checks it).
    pub fn hlen(&self) -> u8 {
        self.inner.hlen()
    }

    /// Relay hops.
    pub fn hops(&self) -> u8 {
        self.inner.hops()
    }

    /// The transaction ID.
    pub fn xid(&self) -> u32 {
        self.inner.xid()
    }

    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        self.inner.secs()
    }

    /// The flags (broadcast bit).
    pub fn flags(&self) -> Flags {
        self.inner.flags()
    }

    /// The client's address, when it has one.
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.inner.ciaddr()
    }

    /// "Your" address.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.inner.yiaddr()
    }

    /// The next server (TFTP) address.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.inner.siaddr()
    }

    /// The relay agent's address.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.inner.giaddr()
    }

    /// The first `hlen` bytes of `chaddr`.
    pub fn chaddr(&self) -> &[u8] {
        self.inner.chaddr()
    }

    /// The Ethernet MAC address, when `htype` is Ethernet and `hlen` is 6.
    pub fn mac(&self) -> Option<[u8; 6]> {
        if self.htype() != HType::Eth {
            return None;
        }
        <[u8; 6]>::try_from(self.chaddr()).ok()
    }

    /// The server host name up to its first NUL; `None` when empty or when `sname` carries
    /// options (option 52).
    pub fn sname(&self) -> Option<&[u8]> {
        self.sname.as_deref()
    }

    /// The boot file name up to its first NUL; `None` when empty or when `file` carries options
    /// (option 52).
    pub fn file(&self) -> Option<&[u8]> {
        self.file.as_deref()
    }

    /// What option 52 said.
    pub fn overload(&self) -> Overload {
        self.overload
    }

    /// Every option in order of first appearance (options field, then `file`, then `sname`),
    /// with instances of one code concatenated. Pad and end are not listed.
    pub fn options(&self) -> &[RawOption] {
        &self.options
    }

    /// The option with this code.
    pub fn option(&self, code: u8) -> Option<&RawOption> {
        self.options.iter().find(|option| option.code == code)
    }

    /// The raw value of the option with this code.
    pub fn raw(&self, code: u8) -> Option<&[u8]> {
        self.option(code).map(|option| option.data.as_slice())
    }

    /// The options dhcproto could type. Options listed by [`Message::untyped_codes`] are absent.
    pub fn opts(&self) -> &DhcpOptions {
        self.inner.opts()
    }

    /// Codes of options whose value dhcproto could not type; they are only in [`Message::raw`].
    pub fn untyped_codes(&self) -> &[u8] {
        &self.untyped
    }

    /// The dhcproto message: header fields, `sname`/`file` as [`Message::sname`] and
    /// [`Message::file`] give them, and [`Message::opts`].
    pub fn inner(&self) -> &v4::Message {
        &self.inner
    }

    /// Option 53.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.opts().get(OptionCode::MessageType) {
            Some(DhcpOption::MessageType(kind)) => Some(*kind),
            _ => None,
        }
    }

    /// Option 50.
    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        match self.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        }
    }

    /// Option 54.
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        match self.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        }
    }

    /// Option 57.
    pub fn max_message_size(&self) -> Option<u16> {
        match self.opts().get(OptionCode::MaxMessageSize) {
            Some(DhcpOption::MaxMessageSize(size)) => Some(*size),
            _ => None,
        }
    }

    /// The largest reply this client accepts, in DHCP message bytes: option 57 (taken, like
    /// dnsmasq does, as the IP datagram size) less the IP and UDP headers, never below
    /// [`DEFAULT_MAX_LEN`].
    pub fn max_reply_len(&self) -> usize {
        let datagram = self.max_message_size().map_or(576, usize::from).max(576);
        datagram - 28
    }

    /// Option 12, raw.
    pub fn hostname(&self) -> Option<&[u8]> {
        self.raw(code::HOSTNAME)
    }

    /// Option 43, raw.
    pub fn vendor_options(&self) -> Option<&[u8]> {
        self.raw(code::VENDOR_OPTIONS)
    }

    /// Option 55, raw: one code per byte.
    pub fn parameter_request_list(&self) -> Option<&[u8]> {
        self.raw(code::PARAMETER_REQUEST_LIST)
    }

    /// Option 60, raw.
    pub fn vendor_class(&self) -> Option<&[u8]> {
        self.raw(code::VENDOR_CLASS)
    }

    /// Option 61, raw.
    pub fn client_id(&self) -> Option<&[u8]> {
        self.raw(code::CLIENT_ID)
    }

    /// Option 77, raw (a bare string from iPXE, RFC 3004 length-prefixed items from others).
    pub fn user_class(&self) -> Option<&[u8]> {
        self.raw(code::USER_CLASS)
    }

    /// Option 81, raw.
    pub fn client_fqdn(&self) -> Option<&[u8]> {
        self.raw(code::CLIENT_FQDN)
    }

    /// Option 82, raw: echo it byte for byte (dhcproto re-orders and drops sub-options).
    pub fn relay_agent_info(&self) -> Option<&[u8]> {
        self.raw(code::RELAY_AGENT_INFO)
    }

    /// Option 93, raw.
    pub fn client_arch_raw(&self) -> Option<&[u8]> {
        self.raw(code::CLIENT_ARCH)
    }

    /// Every architecture type in option 93 (RFC 4578 allows a list; dhcproto keeps only the
    /// first). A trailing odd byte is ignored.
    pub fn client_archs(&self) -> Vec<u16> {
        self.client_arch_raw()
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect()
    }

    /// Option 97, raw (type byte 0 and a 16-byte GUID when well formed).
    pub fn client_uuid(&self) -> Option<&[u8]> {
        self.raw(code::CLIENT_UUID)
    }

    /// Option 175, raw.
    pub fn ipxe_options(&self) -> Option<&[u8]> {
        self.raw(code::IPXE_ENCAP)
    }
}

/// One instance of an option as the walker found it.
struct Instance {
    code: u8,
    offset: usize,
    area: Area,
    value: Range<usize>,
}

/// Walks one option area, checking that every length stays inside it. Stops at the end option
/// or the end of the area; bytes after the end option are padding.
fn walk(bytes: &[u8], area: Area, out: &mut Vec<Instance>) -> Result<(), CodecError> {
    let range = area.range(bytes.len());
    let mut pos = range.start;
    while pos < range.end {
        let code = bytes[pos];
        match code {
            code::PAD => pos += 1,
            code::END => break,
            _ => {
                let malformed = CodecError::MalformedOption {
                    code,
                    offset: pos,
                    area,
                };
                let Some(&len) = bytes.get(pos + 1).filter(|_| pos + 1 < range.end) else {
                    return Err(malformed);
                };
                let value = pos + 2..pos + 2 + usize::from(len);
                if value.end > range.end {
                    return Err(malformed);
                }
                out.push(Instance {
                    code,
                    offset: pos,
                    area,
                    value: value.clone(),
                });
                pos = value.end;
            }
        }
    }
    Ok(())
}

/// The C string in a header field: the bytes before the first NUL, `None` if empty.
fn c_string(field: &[u8]) -> Option<Vec<u8>> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    (end > 0).then(|| field[..end].to_vec())
}

/// Reads option 52 from the options-area instances.
fn read_overload(bytes: &[u8], instances: &[Instance]) -> Result<Overload, CodecError> {
    let mut found = instances.iter().filter(|i| i.code == code::OVERLOAD);
    let Some(first) = found.next() else {
        return Ok(Overload::None);
    };
    let len = first.value.len() + found.map(|i| i.value.len()).sum::<usize>();
    let problem = |problem| CodecError::Overload {
        offset: first.offset,
        problem,
    };
    if len != 1 {
        return Err(problem(OverloadProblem::Length(len)));
    }
    match bytes[first.value.start] {
        1 => Ok(Overload::File),
        2 => Ok(Overload::Sname),
        3 => Ok(Overload::Both),
        value => Err(problem(OverloadProblem::Value(value))),
    }
}

/// Whether dhcproto 0.15 can be handed this option value without tripping a
/// `debug_assert!` on its length (they panic in debug and test builds).
fn dhcproto_accepts(code: u8, len: usize) -> bool {
    match code {
        80 => len == 0,        // rapid commit
        81 => len >= 3,        // client FQDN
        94 => len == 3,        // client network interface identifier
        152..=155 => len == 4, // bulk leasequery times
        _ => true,
    }
}

/// The value in wire form, split into instances of at most 255 bytes (RFC 3396).
fn put_long_option(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    if data.is_empty() {
        out.extend([code, 0]);
        return;
    }
    for chunk in data.chunks(usize::from(u8::MAX)) {
        out.push(code);
        out.push(chunk.len() as u8); // at most 255 by construction
        out.extend_from_slice(chunk);
    }
}

/// Types one option with dhcproto; `None` when it cannot (or would misfile it under another
/// code, as it does for option 37).
fn type_option(code: u8, data: &[u8]) -> Option<DhcpOption> {
    if !dhcproto_accepts(code, data.len()) {
        return None;
    }
    let mut wire = Vec::with_capacity(data.len() + 2 * (data.len() / 255 + 1));
    put_long_option(&mut wire, code, data);
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        DhcpOption::decode(&mut Decoder::new(&wire))
    }));
    match decoded {
        Ok(Ok(option)) if u8::from(OptionCode::from(&option)) == code => Some(option),
        _ => None,
    }
}

/// Decodes a DHCPv4 datagram (see the module doc for what is checked).
pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    if bytes.len() < MIN_LEN {
        return Err(CodecError::TooShort { len: bytes.len() });
    }
    let cookie = [
        bytes[COOKIE.start],
        bytes[COOKIE.start + 1],
        bytes[COOKIE.start + 2],
        bytes[COOKIE.start + 3],
    ];
    if cookie != MAGIC_COOKIE {
        return Err(CodecError::BadCookie { found: cookie });
    }
    let hlen = bytes[2];
    if usize::from(hlen) > CHADDR.len() {
        return Err(CodecError::BadHardwareLength { hlen });
    }

    let mut instances = Vec::new();
    walk(bytes, Area::Options, &mut instances)?;
    let overload = read_overload(bytes, &instances)?;
    let in_options = instances.len();
    if overload.file() {
        walk(bytes, Area::File, &mut instances)?;
    }
    if overload.sname() {
        walk(bytes, Area::Sname, &mut instances)?;
    }
    if let Some(nested) = instances[in_options..]
        .iter()
        .find(|i| i.code == code::OVERLOAD)
    {
        return Err(CodecError::Overload {
            offset: nested.offset,
            problem: OverloadProblem::Nested(nested.area),
        });
    }

    // RFC 3396: every instance of a code, wherever it is, concatenates in wire order.
    let mut options: Vec<RawOption> = Vec::new();
    for instance in &instances {
        let value = &bytes[instance.value.clone()];
        match options.iter_mut().find(|o| o.code == instance.code) {
            Some(option) => {
                option.data.extend_from_slice(value);
                option.instances += 1;
            }
            None => options.push(RawOption {
                code: instance.code,
                data: value.to_vec(),
                offset: instance.offset,
                area: instance.area,
                instances: 1,
            }),
        }
    }

    let mut typed = DhcpOptions::new();
    let mut untyped = Vec::new();
    for option in &options {
        match type_option(option.code, &option.data) {
            Some(value) => {
                typed.insert(value);
            }
            None => untyped.push(option.code),
        }
    }

    // The fixed header goes through dhcproto with an empty option list; sname and file are
    // replaced by our reading of them.
    let mut header = Vec::with_capacity(MIN_LEN + 1);
    header.extend_from_slice(&bytes[..MIN_LEN]);
    header.push(code::END);
    let mut inner = match catch_unwind(|| v4::Message::decode(&mut Decoder::new(&header))) {
        Ok(Ok(inner)) => inner,
        _ => return Err(CodecError::Internal("dhcproto rejected a checked header")),
    };
    let sname = if overload.sname() {
        None
    } else {
        c_string(&bytes[SNAME])
    };
    let file = if overload.file() {
        None
    } else {
        c_string(&bytes[FILE])
    };
    inner.clear_sname();
    inner.clear_fname();
    if let Some(sname) = &sname {
        inner.set_sname(sname); // at most 64 bytes: cut from the 64-byte field
    }
    if let Some(file) = &file {
        inner.set_fname(file); // at most 128 bytes: cut from the 128-byte field
    }
    inner.set_opts(typed);

    Ok(Message {
        inner,
        sname,
        file,
        overload,
        options,
        untyped,
    })
}

/// One option of a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyOption {
    /// Sent exactly as given (split past 255 bytes, RFC 3396).
    Raw {
        /// The option code.
        code: u8,
        /// The value.
        data: Vec<u8>,
    },
    /// Encoded by dhcproto, then checked.
    Typed(DhcpOption),
}

impl ReplyOption {
    /// The option code.
    pub fn code(&self) -> u8 {
        match self {
            ReplyOption::Raw { code, .. } => *code,
            ReplyOption::Typed(option) => OptionCode::from(option).into(),
        }
    }
}

/// A BOOTREPLY to encode: header fields, message type and options in the order to send them.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Option 53, always the first option on the wire.
    pub message_type: MessageType,
    /// The request's transaction ID.
    pub xid: u32,
    /// Flags; the broadcast bit is copied from the request (RFC 2131 table 3).
    pub flags: Flags,
    /// The request's hardware type.
    pub htype: HType,
    /// The request's hardware address (at most 16 bytes; `hlen` is its length).
    pub chaddr: Vec<u8>,
    /// `ciaddr` (RFC 2131 table 3).
    pub ciaddr: Ipv4Addr,
    /// The address handed out.
    pub yiaddr: Ipv4Addr,
    /// The next server (TFTP) address.
    pub siaddr: Ipv4Addr,
    /// The relay agent's address, copied from the request.
    pub giaddr: Ipv4Addr,
    /// Server host name (at most [`MAX_SNAME_LEN`] bytes, no NUL); empty for none.
    pub sname: Vec<u8>,
    /// Boot file name (at most [`MAX_FILE_LEN`] bytes, no NUL); empty for none.
    pub file: Vec<u8>,
    /// Options after 53, in order; option 82 is moved last. Codes must be distinct and not 0,
    /// 52, 53 or 255.
    pub options: Vec<ReplyOption>,
    /// The largest message the client accepts ([`Message::max_reply_len`]).
    pub max_len: usize,
}

impl Reply {
    /// A reply to `request`: transaction ID, flags, hardware type and address and `giaddr`
    /// copied, the size limit taken from its option 57, everything else empty.
    pub fn new(message_type: MessageType, request: &Message) -> Reply {
        Reply {
            message_type,
            xid: request.xid(),
            flags: request.flags(),
            htype: request.htype(),
            chaddr: request.chaddr().to_vec(),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: request.giaddr(),
            sname: Vec::new(),
            file: Vec::new(),
            options: Vec::new(),
            max_len: request.max_reply_len(),
        }
    }

    /// Appends a raw option.
    pub fn push_raw(&mut self, code: u8, data: impl Into<Vec<u8>>) -> &mut Reply {
        self.options.push(ReplyOption::Raw {
            code,
            data: data.into(),
        });
        self
    }

    /// Appends a typed option.
    pub fn push(&mut self, option: DhcpOption) -> &mut Reply {
        self.options.push(ReplyOption::Typed(option));
        self
    }

    /// Sets the boot file: option 67 always, and the `file` field too when the name fits in it
    /// (at most [`MAX_FILE_LEN`] bytes without NUL); a longer name goes in option 67 only.
    pub fn set_boot_file(&mut self, name: &[u8]) -> &mut Reply {
        self.options.retain(|o| o.code() != code::BOOTFILE_NAME);
        self.push_raw(code::BOOTFILE_NAME, name);
        self.file = if name.len() <= MAX_FILE_LEN && !name.contains(&0) {
            name.to_vec()
        } else {
            Vec::new()
        };
        self
    }

    /// The raw value of a raw option of this reply.
    pub fn raw(&self, code: u8) -> Option<&[u8]> {
        self.options.iter().find_map(|option| match option {
            ReplyOption::Raw { code: c, data } if *c == code => Some(data.as_slice()),
            _ => None,
        })
    }
}

fn check_field(field: Field, value: &[u8], max: usize) -> Result<(), CodecError> {
    if value.len() > max {
        return Err(CodecError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    if field != Field::Chaddr && value.contains(&0) {
        return Err(CodecError::EmbeddedNul { field });
    }
    Ok(())
}

/// Encodes a typed option with dhcproto and checks the bytes it produced.
fn put_typed(out: &mut Vec<u8>, option: &DhcpOption) -> Result<(), CodecError> {
    let code: u8 = OptionCode::from(option).into();
    let fail = |message: String| CodecError::Encode { code, message };
    let mut wire = Vec::new();
    let encoded = catch_unwind(AssertUnwindSafe(|| {
        option.encode(&mut Encoder::new(&mut wire))
    }));
    match encoded {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(fail(error.to_string())),
        Err(_) => return Err(fail("dhcproto panicked".into())),
    }
    // Every byte must belong to well-framed instances of this one code.
    let mut pos = 0;
    while pos < wire.len() {
        let len = wire.get(pos + 1).map(|&len| usize::from(len));
        match len {
            Some(len) if wire[pos] == code && pos + 2 + len <= wire.len() => pos += 2 + len,
            _ => return Err(fail("dhcproto produced malformed option bytes".into())),
        }
    }
    if wire.is_empty() {
        // dhcproto writes nothing for an empty list or byte string; the option has length 0.
        wire.extend([code, 0]);
    }
    out.extend_from_slice(&wire);
    Ok(())
}

/// Encodes a BOOTREPLY (see the module doc for the layout rules).
pub fn encode(reply: &Reply) -> Result<Vec<u8>, CodecError> {
    check_field(Field::Chaddr, &reply.chaddr, CHADDR.len())?;
    check_field(Field::Sname, &reply.sname, MAX_SNAME_LEN)?;
    check_field(Field::File, &reply.file, MAX_FILE_LEN)?;
    let mut seen = [false; 256];
    for option in &reply.options {
        let code = option.code();
        if matches!(
            code,
            code::PAD | code::OVERLOAD | code::MESSAGE_TYPE | code::END
        ) {
            return Err(CodecError::ReservedOption { code });
        }
        if std::mem::replace(&mut seen[usize::from(code)], true) {
            return Err(CodecError::DuplicateOption { code });
        }
    }

    let mut header = v4::Message::default();
    header
        .set_opcode(Opcode::BootReply)
        .set_htype(reply.htype)
        .set_hops(0)
        .set_xid(reply.xid)
        .set_secs(0)
        .set_flags(reply.flags)
        .set_ciaddr(reply.ciaddr)
        .set_yiaddr(reply.yiaddr)
        .set_siaddr(reply.siaddr)
        .set_giaddr(reply.giaddr)
        .set_chaddr(&reply.chaddr); // at most 16 bytes: checked above
    if !reply.sname.is_empty() {
        header.set_sname(&reply.sname); // at most 63 bytes: checked above
    }
    if !reply.file.is_empty() {
        header.set_fname(&reply.file); // at most 127 bytes: checked above
    }
    let mut out = Vec::with_capacity(DEFAULT_MAX_LEN);
    if header.encode(&mut Encoder::new(&mut out)).is_err() || out.len() != MIN_LEN {
        return Err(CodecError::Internal(
            "dhcproto did not encode a 240-byte header",
        ));
    }

    out.extend([code::MESSAGE_TYPE, 1, u8::from(reply.message_type)]);
    let relay_last = reply
        .options
        .iter()
        .filter(|o| o.code() != code::RELAY_AGENT_INFO)
        .chain(
            reply
                .options
                .iter()
                .filter(|o| o.code() == code::RELAY_AGENT_INFO),
        );
    for option in relay_last {
        match option {
            ReplyOption::Raw { code, data } => put_long_option(&mut out, *code, data),
            ReplyOption::Typed(typed) => put_typed(&mut out, typed)?,
        }
    }
    out.push(code::END);
    if out.len() < BOOTP_MIN_LEN {
        out.resize(BOOTP_MIN_LEN, code::PAD);
    }
    if out.len() > reply.max_len {
        return Err(CodecError::TooLong {
            field: Field::Message,
            len: out.len(),
            max: reply.max_len,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests fail loudly on unexpected values"
    )]

    use dhcproto::v4::Architecture;
    use proptest::prelude::*;

    use super::*;

    /// The first 44 header bytes of a broadcast BOOTREQUEST from 52:54:00:12:34:56.
    const REQUEST_HEADER: [u8; 44] = [
        0x01, 0x01, 0x06, 0x00, // op BOOTREQUEST, htype Ethernet, hlen 6, hops 0
        0x5e, 0x3a, 0x21, 0xc7, // xid
        0x00, 0x04, 0x80, 0x00, // secs 4, flags broadcast
        0x00, 0x00, 0x00, 0x00, // ciaddr
        0x00, 0x00, 0x00, 0x00, // yiaddr
        0x00, 0x00, 0x00, 0x00, // siaddr
        0x00, 0x00, 0x00, 0x00, // giaddr
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, // chaddr
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    const UUID: [u8; 17] = [
        0x00, 0x8a, 0x3c, 0x6e, 0x1f, 0x4d, 0x2b, 0x48, 0x51, 0x9e, 0x0c, 0x77, 0x12, 0xab, 0xcd,
        0xef, 0x01,
    ];

    /// DHCPDISCOVER options of an Intel-style BIOS PXE 2.1 ROM.
    const BIOS_PXE_OPTIONS: &[u8] = &[
        0x35, 0x01, 0x01, // 53 message type: DISCOVER
        0x39, 0x02, 0x04, 0xec, // 57 max message size: 1260
        0x37, 0x24, // 55 parameter request list, 36 codes
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0b, 0x0c, 0x0d, 0x0f, 0x10, 0x11, 0x12, 0x16, 0x17,
        0x1c, 0x28, 0x29, 0x2a, 0x2b, 0x32, 0x33, 0x36, 0x3a, 0x3b, 0x3c, 0x42, 0x43, 0x80, 0x81,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, //
        0x61, 0x11, // 97 client UUID: type 0 + 16 bytes
        0x00, 0x8a, 0x3c, 0x6e, 0x1f, 0x4d, 0x2b, 0x48, 0x51, 0x9e, 0x0c, 0x77, 0x12, 0xab, 0xcd,
        0xef, 0x01, //
        0x5d, 0x02, 0x00, 0x00, // 93 client arch: 0 (x86 BIOS)
        0x5e, 0x03, 0x01, 0x02, 0x01, // 94 client NII: UNDI 2.1
        0x3c, 0x20, // 60 vendor class, 32 bytes
        b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', b':', b'A', b'r', b'c', b'h', b':',
        b'0', b'0', b'0', b'0', b'0', b':', b'U', b'N', b'D', b'I', b':', b'0', b'0', b'2', b'0',
        b'0', b'1', //
        0xff, // end
    ];

    /// DHCPDISCOVER options of iPXE running as SeaBIOS's NIC ROM.
    const IPXE_OPTIONS: &[u8] = &[
        0x35, 0x01, 0x01, // 53 DISCOVER
        0x39, 0x02, 0x05, 0xc0, // 57: 1472
        0x5d, 0x02, 0x00, 0x00, // 93: 0
        0x5e, 0x03, 0x01, 0x02, 0x01, // 94: UNDI 2.1
        0x3c, 0x20, // 60 "PXEClient:Arch:00000:UNDI:002001"
        b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', b':', b'A', b'r', b'c', b'h', b':',
        b'0', b'0', b'0', b'0', b'0', b':', b'U', b'N', b'D', b'I', b':', b'0', b'0', b'2', b'0',
        b'0', b'1', //
        0x4d, 0x04, b'i', b'P', b'X', b'E', // 77 user class: bare "iPXE"
        0x37, 0x17, // 55, 23 codes
        0x01, 0x03, 0x06, 0x07, 0x0c, 0x0f, 0x11, 0x1a, 0x2b, 0x3c, 0x42, 0x43, 0x77, 0x80, 0x81,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0xaf, 0xcb, //
        0xaf, 0x24, // 175 iPXE encapsulated options, 36 bytes
        0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e, // bus id: PCI 8086:100e
        0x13, 0x01, 0x01, 0x11, 0x01, 0x01, 0x15, 0x01, 0x01, 0x18, 0x01, 0x01, 0x12, 0x01, 0x01,
        0x19, 0x01, 0x01, 0x23, 0x01, 0x01, // feature flags
        0x10, 0x01, 0x02, // priority
        0xeb, 0x03, 0x01, 0x15, 0x01, // version 1.21.1
        0x3d, 0x07, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // 61 client id
        0x61, 0x11, // 97
        0x00, 0x8a, 0x3c, 0x6e, 0x1f, 0x4d, 0x2b, 0x48, 0x51, 0x9e, 0x0c, 0x77, 0x12, 0xab, 0xcd,
        0xef, 0x01, //
        0xff,
    ];

    /// DHCPDISCOVER options of OVMF's x64 UEFI PXE client.
    const UEFI_X64_OPTIONS: &[u8] = &[
        0x35, 0x01, 0x01, // 53 DISCOVER
        0x39, 0x02, 0x05, 0xc0, // 57: 1472
        0x37, 0x23, // 55, 35 codes
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x0d, 0x0f, 0x11, 0x12, 0x16, 0x17, 0x1c, 0x28,
        0x29, 0x2a, 0x2b, 0x32, 0x33, 0x36, 0x3a, 0x3b, 0x3c, 0x42, 0x43, 0x61, 0x80, 0x81, 0x82,
        0x83, 0x84, 0x85, 0x86, 0x87, //
        0x61, 0x11, // 97
        0x00, 0x8a, 0x3c, 0x6e, 0x1f, 0x4d, 0x2b, 0x48, 0x51, 0x9e, 0x0c, 0x77, 0x12, 0xab, 0xcd,
        0xef, 0x01, //
        0x5e, 0x03, 0x01, 0x03, 0x00, // 94: UNDI 3.0
        0x5d, 0x02, 0x00, 0x07, // 93: 7 (x64 UEFI)
        0x3c, 0x20, // 60 "PXEClient:Arch:00007:UNDI:003000"
        b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', b':', b'A', b'r', b'c', b'h', b':',
        b'0', b'0', b'0', b'0', b'7', b':', b'U', b'N', b'D', b'I', b':', b'0', b'0', b'3', b'0',
        b'0', b'0', //
        0xff,
    ];

    /// A datagram: the 44 header bytes, zeroed sname and file, the cookie, then `options`.
    fn frame(header: &[u8; 44], options: &[u8]) -> Vec<u8> {
        let mut bytes = header.to_vec();
        bytes.resize(HEADER_LEN, 0);
        bytes.extend_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(options);
        bytes
    }

    fn request(options: &[u8]) -> Vec<u8> {
        frame(&REQUEST_HEADER, options)
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn decodes_a_bios_pxe_discover() {
        let message = decode(&request(BIOS_PXE_OPTIONS)).unwrap();
        assert_eq!(message.opcode(), Opcode::BootRequest);
        assert_eq!(message.htype(), HType::Eth);
        assert_eq!(message.xid(), 0x5e3a_21c7);
        assert_eq!(message.secs(), 4);
        assert!(message.flags().broadcast());
        assert_eq!(message.mac(), Some(MAC));
        assert_eq!(message.chaddr(), &MAC);
        assert_eq!(message.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(message.sname(), None);
        assert_eq!(message.file(), None);
        assert_eq!(message.overload(), Overload::None);
        assert_eq!(message.message_type(), Some(MessageType::Discover));
        assert_eq!(message.max_message_size(), Some(1260));
        assert_eq!(message.max_reply_len(), 1232);
        assert_eq!(message.parameter_request_list().unwrap().len(), 36);
        assert_eq!(message.client_uuid(), Some(&UUID[..]));
        assert_eq!(message.client_archs(), vec![0]);
        assert_eq!(message.client_arch_raw(), Some(&[0, 0][..]));
        assert_eq!(
            message.vendor_class(),
            Some(&b"PXEClient:Arch:00000:UNDI:002001"[..])
        );
        assert_eq!(message.user_class(), None);
        assert_eq!(message.ipxe_options(), None);
        assert_eq!(message.untyped_codes(), &[] as &[u8]);
        let codes: Vec<u8> = message.options().iter().map(|o| o.code).collect();
        assert_eq!(codes, vec![53, 57, 55, 97, 93, 94, 60]);
        let first = &message.options()[0];
        assert_eq!(
            (first.offset, first.area, first.instances),
            (240, Area::Options, 1)
        );
        assert_eq!(
            message.option(60).unwrap().offset,
            240 + 3 + 4 + 38 + 19 + 4 + 5
        );
        assert_eq!(
            message.opts().get(OptionCode::ClientNetworkInterface),
            Some(&DhcpOption::ClientNetworkInterface(1, 2, 1))
        );
        assert_eq!(
            message.opts().get(OptionCode::ClientSystemArchitecture),
            Some(&DhcpOption::ClientSystemArchitecture(Architecture(0)))
        );
    }

    #[test]
    fn decodes_an_ipxe_discover() {
        let message = decode(&request(IPXE_OPTIONS)).unwrap();
        assert_eq!(message.message_type(), Some(MessageType::Discover));
        assert_eq!(message.user_class(), Some(&b"iPXE"[..]));
        let encap = message.ipxe_options().unwrap();
        assert_eq!(encap.len(), 36);
        assert_eq!(&encap[..7], &[0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e]);
        assert_eq!(
            message.client_id(),
            Some(&[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56][..])
        );
        assert_eq!(message.client_archs(), vec![0]);
        assert_eq!(message.max_reply_len(), 1472 - 28);
        assert_eq!(
            message.vendor_class(),
            Some(&b"PXEClient:Arch:00000:UNDI:002001"[..])
        );
        assert_eq!(message.client_uuid(), Some(&UUID[..]));
        assert!(message.opts().get(OptionCode::Unknown(175)).is_some());
    }

    #[test]
    fn decodes_a_uefi_x64_discover() {
        let message = decode(&request(UEFI_X64_OPTIONS)).unwrap();
        assert_eq!(message.client_archs(), vec![7]);
        assert_eq!(
            message.vendor_class(),
            Some(&b"PXEClient:Arch:00007:UNDI:003000"[..])
        );
        assert_eq!(message.parameter_request_list().unwrap().len(), 35);
        assert_eq!(
            message.opts().get(OptionCode::ClientNetworkInterface),
            Some(&DhcpOption::ClientNetworkInterface(1, 3, 0))
        );
    }

    #[test]
    fn a_length_running_past_the_end_names_the_option_and_offset() {
        // Option 60 claims 200 bytes; valid options follow it, then the datagram ends.
        let mut options = vec![53, 1, 1, 60, 200];
        options.extend_from_slice(b"PXEClient:Arch:00000:UNDI:002001");
        options.extend_from_slice(&[93, 2, 0, 0, 255]);
        let mut bytes = request(&options);
        bytes.resize(300, 0);
        assert_eq!(
            decode(&bytes),
            Err(CodecError::MalformedOption {
                code: 60,
                offset: 243,
                area: Area::Options
            })
        );
        // A code with no room for its length byte.
        assert_eq!(
            decode(&request(&[53, 1, 1, 61])),
            Err(CodecError::MalformedOption {
                code: 61,
                offset: 243,
                area: Area::Options
            })
        );
    }

    #[test]
    fn a_value_dhcproto_cannot_type_does_not_hide_later_options() {
        // Subnet mask with 3 bytes: dhcproto alone stops parsing there (see dhcproto_bugs).
        let mut options = vec![53, 1, 1, 1, 3, 255, 255, 0, 60, 9];
        options.extend_from_slice(b"PXEClient");
        options.extend_from_slice(&[93, 2, 0, 7, 255]);
        let message = decode(&request(&options)).unwrap();
        assert_eq!(message.untyped_codes(), &[1]);
        assert_eq!(message.raw(1), Some(&[255, 255, 0][..]));
        assert!(message.opts().get(OptionCode::SubnetMask).is_none());
        assert_eq!(message.vendor_class(), Some(&b"PXEClient"[..]));
        assert_eq!(message.client_archs(), vec![7]);
        assert_eq!(message.message_type(), Some(MessageType::Discover));
    }

    #[test]
    fn lengths_dhcproto_would_panic_on_are_kept_raw() {
        for (code, value) in [
            (94u8, &[1u8, 2][..]),
            (81, &[0, 0][..]),
            (80, &[1][..]),
            (152, &[0, 0, 1][..]),
        ] {
            let mut options = vec![53, 1, 1, code, value.len() as u8];
            options.extend_from_slice(value);
            options.push(255);
            let message = decode(&request(&options)).unwrap();
            assert_eq!(message.untyped_codes(), &[code], "option {code}");
            assert_eq!(message.raw(code), Some(value));
        }
    }

    #[test]
    fn bad_cookie_short_datagram_and_bad_hlen_are_errors() {
        let mut bytes = request(BIOS_PXE_OPTIONS);
        bytes[236..240].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            decode(&bytes),
            Err(CodecError::BadCookie {
                found: [0, 0, 0, 0]
            })
        );
        bytes[236..240].copy_from_slice(&[99, 130, 83, 98]);
        assert_eq!(
            decode(&bytes),
            Err(CodecError::BadCookie {
                found: [99, 130, 83, 98]
            })
        );
        let short = request(&[]);
        assert_eq!(short.len(), 240);
        assert!(decode(&short).is_ok(), "header and cookie alone decode");
        assert_eq!(
            decode(&short[..239]),
            Err(CodecError::TooShort { len: 239 })
        );
        assert_eq!(decode(&[]), Err(CodecError::TooShort { len: 0 }));
        let mut long_hlen = request(BIOS_PXE_OPTIONS);
        long_hlen[2] = 17;
        assert_eq!(
            decode(&long_hlen),
            Err(CodecError::BadHardwareLength { hlen: 17 })
        );
        long_hlen[2] = 16;
        assert_eq!(decode(&long_hlen).unwrap().chaddr().len(), 16);
    }

    #[test]
    fn sname_and_file_are_c_strings() {
        let mut bytes = request(&[53, 1, 1, 255]);
        bytes[SNAME].fill(b's'); // all 64 bytes, no NUL
        bytes[FILE.start..FILE.start + 11].copy_from_slice(b"pxelinux.0\0");
        bytes[FILE.start + 11..FILE.start + 14].copy_from_slice(b"xyz"); // junk after the NUL
        let message = decode(&bytes).unwrap();
        assert_eq!(message.sname(), Some(&[b's'; 64][..]));
        assert_eq!(message.file(), Some(&b"pxelinux.0"[..]));
        assert_eq!(message.inner().fname(), Some(&b"pxelinux.0"[..]));
        assert_eq!(message.inner().sname().map(<[u8]>::len), Some(64));
    }

    /// A request whose options continue in `file` and `sname` (option 52 = 3).
    fn overloaded() -> Vec<u8> {
        let mut bytes = request(&[53, 1, 5, 52, 1, 3, 43, 2, 0xaa, 0xbb, 255]);
        let mut file = vec![67, 8];
        file.extend_from_slice(b"ipxe.efi");
        file.extend_from_slice(&[43, 1, 0xcc, 255]);
        bytes[FILE.start..FILE.start + file.len()].copy_from_slice(&file);
        let mut sname = vec![66, 9];
        sname.extend_from_slice(b"10.0.0.1\0");
        sname.extend_from_slice(&[43, 1, 0xdd, 255]);
        bytes[SNAME.start..SNAME.start + sname.len()].copy_from_slice(&sname);
        bytes
    }

    #[test]
    fn option_overload_reads_file_then_sname() {
        let message = decode(&overloaded()).unwrap();
        assert_eq!(message.overload(), Overload::Both);
        assert_eq!(message.file(), None);
        assert_eq!(message.sname(), None);
        assert_eq!(message.inner().fname(), None);
        assert_eq!(message.message_type(), Some(MessageType::Ack));
        assert_eq!(message.raw(67), Some(&b"ipxe.efi"[..]));
        assert_eq!(message.raw(66), Some(&b"10.0.0.1\0"[..]));
        // RFC 3396 order: options field, then file, then sname.
        let vendor = message.option(43).unwrap();
        assert_eq!(vendor.data, vec![0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(
            (vendor.instances, vendor.area, vendor.offset),
            (3, Area::Options, 246)
        );
        let bootfile = message.option(67).unwrap();
        assert_eq!((bootfile.area, bootfile.offset), (Area::File, FILE.start));
        assert_eq!(message.option(66).unwrap().area, Area::Sname);
        let codes: Vec<u8> = message.options().iter().map(|o| o.code).collect();
        assert_eq!(codes, vec![53, 52, 43, 67, 66]);

        // Value 1: only file holds options, sname is a name again.
        let mut file_only = overloaded();
        file_only[245] = 1;
        let message = decode(&file_only).unwrap();
        assert_eq!(message.overload(), Overload::File);
        assert_eq!(message.raw(66), None);
        assert_eq!(message.sname().map(|s| s[0]), Some(66));
        assert_eq!(message.option(43).unwrap().data, vec![0xaa, 0xbb, 0xcc]);
    }

    #[test]
    fn unusable_option_overload_is_an_error() {
        let mut bad_value = overloaded();
        bad_value[245] = 4;
        assert_eq!(
            decode(&bad_value),
            Err(CodecError::Overload {
                offset: 243,
                problem: OverloadProblem::Value(4)
            })
        );
        let long = request(&[53, 1, 1, 52, 2, 1, 1, 255]);
        assert_eq!(
            decode(&long),
            Err(CodecError::Overload {
                offset: 243,
                problem: OverloadProblem::Length(2)
            })
        );
        let mut nested = overloaded();
        nested[FILE.start + 10..FILE.start + 13].copy_from_slice(&[52, 1, 3]);
        assert_eq!(
            decode(&nested),
            Err(CodecError::Overload {
                offset: FILE.start + 10,
                problem: OverloadProblem::Nested(Area::File)
            })
        );
        let mut past_field = overloaded();
        past_field[FILE.end - 2..FILE.end].copy_from_slice(&[60, 5]);
        past_field[FILE.start + 10] = 0; // drop the end option so the walk reaches it
        past_field[FILE.start + 11..FILE.start + 14].fill(0);
        assert_eq!(
            decode(&past_field),
            Err(CodecError::MalformedOption {
                code: 60,
                offset: FILE.end - 2,
                area: Area::File
            })
        );
    }

    #[test]
    fn instances_of_one_code_concatenate_even_when_apart() {
        let message = decode(&request(&[
            53, 1, 1, 43, 2, 0xa, 0xb, 60, 3, b'x', b'y', b'z', 43, 2, 0xc, 0xd, 255,
        ]))
        .unwrap();
        let vendor = message.option(43).unwrap();
        assert_eq!(vendor.data, vec![0xa, 0xb, 0xc, 0xd]);
        assert_eq!(vendor.instances, 2);
        assert_eq!(
            message.opts().get(OptionCode::VendorExtensions),
            Some(&DhcpOption::VendorExtensions(vec![0xa, 0xb, 0xc, 0xd]))
        );
    }

    #[test]
    fn bytes_after_the_end_option_and_missing_end_are_tolerated() {
        let message = decode(&request(&[53, 1, 1, 255, 60, 200, 1, 2])).unwrap();
        assert_eq!(message.options().len(), 1);
        let message = decode(&request(&[53, 1, 3, 0, 0, 50, 4, 10, 99, 0, 7])).unwrap();
        assert_eq!(message.requested_ip(), Some(Ipv4Addr::new(10, 99, 0, 7)));
        assert_eq!(message.message_type(), Some(MessageType::Request));
    }

    #[test]
    fn max_reply_len_follows_option_57_with_a_floor() {
        let none = decode(&request(&[53, 1, 1, 255])).unwrap();
        assert_eq!(none.max_reply_len(), DEFAULT_MAX_LEN);
        let small = decode(&request(&[57, 2, 1, 44, 255])).unwrap(); // 300
        assert_eq!(small.max_reply_len(), DEFAULT_MAX_LEN);
        let big = decode(&request(&[57, 2, 5, 220, 255])).unwrap(); // 1500
        assert_eq!(big.max_reply_len(), 1472);
    }

    fn bios_offer() -> Reply {
        let request = decode(&request(BIOS_PXE_OPTIONS)).unwrap();
        let mut reply = Reply::new(MessageType::Offer, &request);
        reply.yiaddr = Ipv4Addr::new(10, 99, 0, 100);
        reply.siaddr = Ipv4Addr::new(10, 99, 0, 1);
        reply
            .push(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 99, 0, 1)))
            .push_raw(code::RELAY_AGENT_INFO, vec![1, 2, 0xab, 0xcd])
            .push(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
            .push(DhcpOption::AddressLeaseTime(43_200))
            .push_raw(code::VENDOR_CLASS, b"PXEClient".to_vec())
            .push_raw(code::VENDOR_OPTIONS, pxe::skip_discovery())
            .push_raw(code::TFTP_SERVER_NAME, b"10.99.0.1".to_vec())
            .push_raw(code::CLIENT_UUID, request.client_uuid().unwrap().to_vec())
            .set_boot_file(b"undionly.kpxe");
        reply
    }

    #[test]
    fn encodes_every_byte_of_an_offer() {
        let reply = bios_offer();
        let bytes = encode(&reply).unwrap();
        let mut header = vec![
            0x02, 0x01, 0x06, 0x00, // BOOTREPLY, Ethernet, hlen 6, hops 0
            0x5e, 0x3a, 0x21, 0xc7, // xid from the request
            0x00, 0x00, 0x80, 0x00, // secs 0, broadcast flag copied
            0, 0, 0, 0, // ciaddr
            10, 99, 0, 100, // yiaddr
            10, 99, 0, 1, // siaddr
            0, 0, 0, 0, // giaddr
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // chaddr
        ];
        header.resize(SNAME.end, 0); // no sname
        header.extend_from_slice(b"undionly.kpxe");
        header.resize(FILE.end, 0);
        header.extend_from_slice(&MAGIC_COOKIE);
        assert_eq!(&bytes[..MIN_LEN], header.as_slice());

        let mut options = vec![
            53, 1, 2, // OFFER, first
            54, 4, 10, 99, 0, 1, //
            1, 4, 255, 255, 255, 0, //
            51, 4, 0, 0, 0xa8, 0xc0, // 43200 s
            60, 9, b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', //
            43, 4, 6, 1, 8, 255, // discovery control: use the boot file
            66, 9, b'1', b'0', b'.', b'9', b'9', b'.', b'0', b'.', b'1', //
            97, 17,
        ];
        options.extend_from_slice(&UUID);
        options.extend_from_slice(&[67, 13]);
        options.extend_from_slice(b"undionly.kpxe");
        options.extend_from_slice(&[82, 4, 1, 2, 0xab, 0xcd]); // relay info last
        options.push(255);
        let end = MIN_LEN + options.len();
        assert_eq!(&bytes[MIN_LEN..end], options.as_slice());
        assert_eq!(bytes.len(), end.max(BOOTP_MIN_LEN));
        assert!(bytes[end..].iter().all(|&b| b == 0));
    }

    #[test]
    fn short_replies_are_padded_to_300_bytes() {
        let request = decode(&request(&[53, 1, 3, 255])).unwrap();
        let mut nak = Reply::new(MessageType::Nak, &request);
        nak.push(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 99, 0, 1)));
        let bytes = encode(&nak).unwrap();
        assert_eq!(bytes.len(), BOOTP_MIN_LEN);
        assert_eq!(&bytes[240..250], &[53, 1, 6, 54, 4, 10, 99, 0, 1, 255]);
        assert!(bytes[250..].iter().all(|&b| b == 0));
        assert!(bytes[SNAME.start..FILE.end].iter().all(|&b| b == 0));
    }

    #[test]
    fn encoded_offers_decode_back() {
        let reply = bios_offer();
        let message = decode(&encode(&reply).unwrap()).unwrap();
        assert_eq!(message.opcode(), Opcode::BootReply);
        assert_eq!(message.message_type(), Some(MessageType::Offer));
        assert_eq!(message.yiaddr(), reply.yiaddr);
        assert_eq!(message.file(), Some(&b"undionly.kpxe"[..]));
        assert_eq!(message.vendor_options(), Some(&[6, 1, 8, 255][..]));
        assert_eq!(message.server_id(), Some(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(message.relay_agent_info(), Some(&[1, 2, 0xab, 0xcd][..]));
        assert_eq!(message.untyped_codes(), &[] as &[u8]);
    }

    #[test]
    fn long_boot_file_names_go_in_option_67_only() {
        let request = decode(&request(&[53, 1, 1, 255])).unwrap();
        let name = format!("http://boot.lab.test/{}/boot.ipxe", "x".repeat(150));
        let mut reply = Reply::new(MessageType::Offer, &request);
        reply.max_len = 1472;
        reply.set_boot_file(name.as_bytes());
        assert!(reply.file.is_empty());
        let message = decode(&encode(&reply).unwrap()).unwrap();
        assert_eq!(message.file(), None);
        assert_eq!(message.raw(67), Some(name.as_bytes()));
        // Exactly 127 bytes still fits the field.
        reply.set_boot_file(&[b'f'; MAX_FILE_LEN]);
        let message = decode(&encode(&reply).unwrap()).unwrap();
        assert_eq!(message.file(), Some(&[b'f'; MAX_FILE_LEN][..]));
        assert_eq!(reply.options.len(), 1, "set_boot_file replaces option 67");
    }

    #[test]
    fn options_longer_than_255_bytes_are_split_and_rejoined() {
        let request = decode(&request(&[53, 1, 1, 255])).unwrap();
        let mut reply = Reply::new(MessageType::Ack, &request);
        reply.max_len = 1472;
        let value: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        reply.push_raw(code::IPXE_ENCAP, value.clone());
        let bytes = encode(&reply).unwrap();
        assert_eq!(&bytes[243..245], &[175, 255]);
        assert_eq!(&bytes[245 + 255..245 + 257], &[175, 45]);
        let message = decode(&bytes).unwrap();
        assert_eq!(message.raw(175), Some(value.as_slice()));
        assert_eq!(message.option(175).unwrap().instances, 2);
    }

    #[test]
    fn empty_typed_options_are_sent_with_length_zero() {
        let request = decode(&request(&[53, 1, 1, 255])).unwrap();
        let mut reply = Reply::new(MessageType::Offer, &request);
        reply.push(DhcpOption::ClassIdentifier(Vec::new()));
        let bytes = encode(&reply).unwrap();
        assert_eq!(&bytes[240..246], &[53, 1, 2, 60, 0, 255]);
    }

    #[test]
    fn encode_refuses_what_does_not_fit_instead_of_panicking() {
        let base = bios_offer();
        let mut reply = base.clone();
        reply.chaddr = vec![1; 17];
        assert_eq!(
            encode(&reply),
            Err(CodecError::TooLong {
                field: Field::Chaddr,
                len: 17,
                max: 16
            })
        );
        let mut reply = base.clone();
        reply.sname = vec![b's'; 64];
        assert_eq!(
            encode(&reply),
            Err(CodecError::TooLong {
                field: Field::Sname,
                len: 64,
                max: 63
            })
        );
        let mut reply = base.clone();
        reply.file = vec![b'f'; 128];
        assert_eq!(
            encode(&reply),
            Err(CodecError::TooLong {
                field: Field::File,
                len: 128,
                max: 127
            })
        );
        let mut reply = base.clone();
        reply.file = b"a\0b".to_vec();
        assert_eq!(
            encode(&reply),
            Err(CodecError::EmbeddedNul { field: Field::File })
        );
        let mut reply = base.clone();
        reply.push_raw(code::VENDOR_CLASS, b"again".to_vec());
        assert_eq!(
            encode(&reply),
            Err(CodecError::DuplicateOption { code: 60 })
        );
        for reserved in [0, 52, 53, 255] {
            let mut reply = base.clone();
            reply.push_raw(reserved, vec![1]);
            assert_eq!(
                encode(&reply),
                Err(CodecError::ReservedOption { code: reserved })
            );
        }
        let mut reply = base.clone();
        reply.push(DhcpOption::MessageType(MessageType::Ack));
        assert_eq!(encode(&reply), Err(CodecError::ReservedOption { code: 53 }));
        let mut reply = base;
        reply.max_len = DEFAULT_MAX_LEN;
        reply.push_raw(code::IPXE_ENCAP, vec![0; 300]);
        assert!(matches!(
            encode(&reply),
            Err(CodecError::TooLong {
                field: Field::Message,
                max: DEFAULT_MAX_LEN,
                ..
            })
        ));
    }

    #[test]
    fn fuzz_entry_accepts_the_fixtures() {
        for options in [BIOS_PXE_OPTIONS, IPXE_OPTIONS, UEFI_X64_OPTIONS] {
            crate::v4::fuzzing::codec(&request(options));
        }
        crate::v4::fuzzing::codec(&overloaded());
    }

    /// Behaviour of dhcproto 0.15 that the wrapper exists for. Each test asserts the bug, so it
    /// fails (and the workaround can be reviewed) when an upgrade fixes it.
    mod dhcproto_bugs {
        use super::*;

        fn plain(bytes: &[u8]) -> v4::Message {
            v4::Message::decode(&mut Decoder::new(bytes)).unwrap()
        }

        fn panics(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
            catch_unwind(f).is_err()
        }

        #[test]
        fn no_cookie_check() {
            let mut bytes = request(BIOS_PXE_OPTIONS);
            bytes[236..240].fill(0);
            assert!(v4::Message::decode(&mut Decoder::new(&bytes)).is_ok());
        }

        #[test]
        fn an_untypable_value_silently_ends_the_option_list() {
            // [53 1 1] [1 3 ff ff 00] [60 9 "PXEClient"] [255]
            let mut options = vec![53, 1, 1, 1, 3, 255, 255, 0, 60, 9];
            options.extend_from_slice(b"PXEClient");
            options.push(255);
            let message = plain(&request(&options));
            assert!(message.opts().get(OptionCode::MessageType).is_some());
            assert!(message.opts().get(OptionCode::ClassIdentifier).is_none());
        }

        #[test]
        fn a_length_past_the_end_silently_ends_the_option_list() {
            let message = plain(&request(&[53, 1, 1, 60, 200, b'P', b'X', b'E']));
            assert_eq!(message.opts().len(), 1);
        }

        #[test]
        fn instances_apart_are_not_concatenated() {
            let message = plain(&request(&[
                53, 1, 1, 43, 1, 0xa, 60, 1, b'x', 43, 1, 0xb, 255,
            ]));
            assert_eq!(
                message.opts().get(OptionCode::VendorExtensions),
                Some(&DhcpOption::VendorExtensions(vec![0xb]))
            );
        }

        #[test]
        fn option_overload_is_ignored() {
            let message = plain(&overloaded());
            assert!(message.opts().get(OptionCode::BootfileName).is_none());
            assert!(message.fname().is_some_and(|f| f.starts_with(&[67, 8])));
        }

        #[test]
        fn names_keep_their_nul_and_a_full_field_is_lost() {
            let mut bytes = request(&[53, 1, 1, 255]);
            bytes[FILE.start..FILE.start + 8].copy_from_slice(b"ipxe.efi");
            bytes[SNAME].fill(b's');
            let message = plain(&bytes);
            assert_eq!(message.fname(), Some(&b"ipxe.efi\0"[..]));
            assert_eq!(message.sname(), None);
        }

        #[test]
        fn hlen_over_16_decodes_then_chaddr_panics() {
            let mut bytes = request(&[53, 1, 1, 255]);
            bytes[2] = 17;
            let message = plain(&bytes);
            assert!(panics(move || {
                let _ = message.chaddr();
            }));
        }

        #[test]
        fn option_37_is_filed_as_option_23() {
            let message = plain(&request(&[53, 1, 1, 37, 1, 64, 255]));
            assert!(message.opts().get(OptionCode::DefaultTcpTtl).is_none());
            assert_eq!(
                message.opts().get(OptionCode::DefaultIpTtl),
                Some(&DhcpOption::DefaultIpTtl(64))
            );
        }

        #[test]
        fn unknown_option_encodes_a_truncated_length_past_255_bytes() {
            let option = v4::UnknownOption::new(OptionCode::Unknown(175), vec![7; 300]);
            let mut wire = Vec::new();
            option.encode(&mut Encoder::new(&mut wire)).unwrap();
            assert_eq!(&wire[..2], &[175, 44]); // 300 as u8, then all 300 bytes
            assert_eq!(wire.len(), 302);
        }

        #[test]
        fn empty_byte_options_encode_to_nothing() {
            for option in [
                DhcpOption::ClassIdentifier(Vec::new()),
                DhcpOption::Unknown(v4::UnknownOption::new(OptionCode::Unknown(175), Vec::new())),
            ] {
                let mut wire = Vec::new();
                option.encode(&mut Encoder::new(&mut wire)).unwrap();
                assert!(wire.is_empty());
            }
        }

        #[test]
        fn debug_assertions_panic_on_option_lengths() {
            if !cfg!(debug_assertions) {
                return; // the asserts are compiled out; a release build returns Ok
            }
            for (code, value) in [
                (94u8, &[1u8, 2][..]),
                (81, &[0, 0][..]),
                (80, &[1][..]),
                (152, &[0, 0, 1][..]),
            ] {
                let mut options = vec![53, 1, 1, code, value.len() as u8];
                options.extend_from_slice(value);
                options.push(255);
                let bytes = request(&options);
                assert!(
                    panics(move || {
                        let _ = v4::Message::decode(&mut Decoder::new(&bytes));
                    }),
                    "option {code}"
                );
            }
        }

        #[test]
        fn setters_panic_on_long_values() {
            assert!(panics(|| {
                v4::Message::default().set_sname(&[b's'; 65]);
            }));
            assert!(panics(|| {
                v4::Message::default().set_fname(&[b'f'; 129]);
            }));
            assert!(panics(|| {
                let _ = v4::Message::new(
                    Ipv4Addr::UNSPECIFIED,
                    Ipv4Addr::UNSPECIFIED,
                    Ipv4Addr::UNSPECIFIED,
                    Ipv4Addr::UNSPECIFIED,
                    &[0; 17],
                );
            }));
        }
    }

    fn message_type() -> impl Strategy<Value = MessageType> {
        prop_oneof![
            Just(MessageType::Offer),
            Just(MessageType::Ack),
            Just(MessageType::Nak),
        ]
    }

    fn printable(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 0..=max)
    }

    fn reply() -> impl Strategy<Value = Reply> {
        let header = (
            message_type(),
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..=16),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
        );
        let names = (printable(MAX_SNAME_LEN), printable(MAX_FILE_LEN));
        let raw = proptest::collection::btree_map(
            (1u8..=254).prop_filter("encoder-owned codes", |c| ![52, 53, 1, 51, 54].contains(c)),
            proptest::collection::vec(any::<u8>(), 0..400),
            0..8,
        );
        let typed = (
            proptest::option::of(any::<[u8; 4]>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<[u8; 4]>()),
        );
        (header, names, raw, typed).prop_map(
            |(
                (message_type, xid, broadcast, chaddr, ci, yi, si, gi),
                (sname, file),
                raw,
                (mask, lease, server),
            )| {
                let flags = if broadcast {
                    Flags::default().set_broadcast()
                } else {
                    Flags::default()
                };
                let mut reply = Reply {
                    message_type,
                    xid,
                    flags,
                    htype: HType::Eth,
                    chaddr,
                    ciaddr: ci.into(),
                    yiaddr: yi.into(),
                    siaddr: si.into(),
                    giaddr: gi.into(),
                    sname,
                    file,
                    options: Vec::new(),
                    max_len: 65_507,
                };
                if let Some(ip) = server {
                    reply.push(DhcpOption::ServerIdentifier(ip.into()));
                }
                for (code, data) in raw {
                    reply.push_raw(code, data);
                }
                if let Some(mask) = mask {
                    reply.push(DhcpOption::SubnetMask(mask.into()));
                }
                if let Some(lease) = lease {
                    reply.push(DhcpOption::AddressLeaseTime(lease));
                }
                reply
            },
        )
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = decode(&bytes);
            crate::v4::fuzzing::codec(&bytes);
        }

        #[test]
        fn any_option_area_decodes_without_panic(
            header in proptest::collection::vec(any::<u8>(), HEADER_LEN),
            options in proptest::collection::vec(any::<u8>(), 0..600),
            hlen in 0u8..=16,
        ) {
            let mut bytes = header;
            bytes[2] = hlen;
            bytes.extend_from_slice(&MAGIC_COOKIE);
            bytes.extend_from_slice(&options);
            let _ = decode(&bytes);
            crate::v4::fuzzing::codec(&bytes);
        }

        #[test]
        fn decode_of_encode_gives_the_reply_back(reply in reply()) {
            let bytes = encode(&reply).unwrap();
            prop_assert!(bytes.len() >= BOOTP_MIN_LEN);
            let message = decode(&bytes).unwrap();
            prop_assert_eq!(message.opcode(), Opcode::BootReply);
            prop_assert_eq!(message.message_type(), Some(reply.message_type));
            prop_assert_eq!(message.xid(), reply.xid);
            prop_assert_eq!(message.flags(), reply.flags);
            prop_assert_eq!(message.chaddr(), reply.chaddr.as_slice());
            prop_assert_eq!(message.ciaddr(), reply.ciaddr);
            prop_assert_eq!(message.yiaddr(), reply.yiaddr);
            prop_assert_eq!(message.siaddr(), reply.siaddr);
            prop_assert_eq!(message.giaddr(), reply.giaddr);
            prop_assert_eq!(message.sname().unwrap_or_default(), reply.sname.as_slice());
            prop_assert_eq!(message.file().unwrap_or_default(), reply.file.as_slice());
            prop_assert_eq!(message.options().len(), reply.options.len() + 1);
            prop_assert_eq!(message.options()[0].code, code::MESSAGE_TYPE);
            for option in &reply.options {
                match option {
                    ReplyOption::Raw { code, data } => {
                        prop_assert_eq!(message.raw(*code), Some(data.as_slice()));
                    }
                    ReplyOption::Typed(typed) => {
                        let code = OptionCode::from(typed);
                        prop_assert_eq!(message.opts().get(code), Some(typed));
                    }
                }
            }
        }
    }
}
