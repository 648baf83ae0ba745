//! The TFTP wire format: parse untrusted bytes into typed values, emit packets from typed values.
//!
//! This is Kindling's own codec for RFC 1350 (RRQ, WRQ, DATA, ACK, ERROR) and RFC 2347 (OACK).
//!
//! # Contract
//!
//! - [`Packet::parse`] accepts any byte slice. It never panics, never allocates more than the
//!   option list of a request, and borrows every string and payload from the input. Everything it
//!   cannot make sense of is a typed [`WireError`]; the caller drops the datagram with a debug log
//!   (or answers with [`WireError::reply_code`] where RFC 1350 asks for an ERROR).
//! - [`Packet::emit`] never panics. It writes exactly [`Packet::buffer_len`] bytes when the buffer
//!   is at least that long, and returns [`WireError::BufferTooSmall`] otherwise. It refuses values
//!   that would parse back differently (a string containing NUL, an empty filename, a DATA payload
//!   longer than [`MAX_BLKSIZE`]), so `Packet::parse(&buf[..n]) == Ok(packet)` after a successful
//!   `emit`.
//! - [`emit_error`] always succeeds on a buffer of at least 5 bytes: it truncates the message to
//!   fit and always terminates it with NUL.
//!
//! # Leniency (what a strict reading of the RFCs would refuse, and why we accept it)
//!
//! - Option lists (RFC 2347): a trailing name without a value, bytes after the last NUL, and empty
//!   option names (NUL padding some PXE ROMs append) are ignored rather than failing the request,
//!   because the request itself is well formed and a plain RFC 1350 server would serve it. An
//!   option whose name or value is not UTF-8 cannot be one we understand, so it is skipped; the
//!   request is still served.
//! - An ACK may carry trailing bytes after the block number (tftp-hpa's server accepts them too).
//! - An ERROR message without its terminating NUL is taken to run to the end of the datagram, and
//!   anything after the first NUL is ignored: the peer wants to stop either way.
//!
//! Strictness kept: the opcode must be known, a request's filename must be non-empty and
//! NUL-terminated, its mode must be NUL-terminated and one of `netascii` / `octet` (any case;
//! `mail` is obsolete and refused), and a DATA payload may not exceed [`MAX_BLKSIZE`].

use std::fmt;

/// The block size of RFC 1350, used when a client does not negotiate `blksize`.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// The largest block size RFC 2348 allows (a 65535-byte IPv4 datagram less IP, UDP and TFTP headers).
pub const MAX_BLKSIZE: u16 = 65464;
/// The largest TFTP packet we send or accept: a DATA header and a [`MAX_BLKSIZE`] payload.
pub const MAX_PACKET: usize = HEADER_LEN + MAX_BLKSIZE as usize;

/// The length of the opcode plus block-number (or error-code) header of DATA, ACK and ERROR.
pub(crate) const HEADER_LEN: usize = 4;

/// Opcodes of RFC 1350 section 5 and RFC 2347.
mod opcode {
    pub(super) const RRQ: u16 = 1;
    pub(super) const WRQ: u16 = 2;
    pub(super) const DATA: u16 = 3;
    pub(super) const ACK: u16 = 4;
    pub(super) const ERROR: u16 = 5;
    pub(super) const OACK: u16 = 6;
}

/// A transfer mode of RFC 1350.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Text: lines end in CR LF and a bare CR is sent as CR NUL (see [`crate::netascii`]).
    Netascii,
    /// Raw bytes.
    Octet,
}

impl Mode {
    /// The mode's name as it is sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
        }
    }

    /// Parses a mode name case-insensitively, as RFC 1350 requires.
    fn parse(raw: &[u8]) -> Result<Mode, WireError> {
        if raw.eq_ignore_ascii_case(b"octet") {
            Ok(Mode::Octet)
        } else if raw.eq_ignore_ascii_case(b"netascii") {
            Ok(Mode::Netascii)
        } else {
            Err(WireError::UnsupportedMode)
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of a read (RRQ) or write (WRQ) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name exactly as sent (never empty, no NUL); root confinement is the shell's job.
    pub filename: &'a [u8],
    /// The transfer mode.
    pub mode: Mode,
    /// RFC 2347 options in the order the client sent them, duplicates included.
    pub options: Vec<RequestOption<'a>>,
}

/// One RFC 2347 option of a request. Names are compared case-insensitively by the negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOption<'a> {
    /// The option name as sent (UTF-8, non-empty, no NUL).
    pub name: &'a str,
    /// The option value as sent (UTF-8, no NUL).
    pub value: &'a str,
}

/// The error codes of RFC 1350 section 5 and RFC 2347 (code 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see the error message.
    NotDefined = 0,
    /// File not found.
    FileNotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Disk full or allocation exceeded.
    DiskFull = 3,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
    /// Unknown transfer ID.
    UnknownTransferId = 5,
    /// File already exists.
    FileExists = 6,
    /// No such user.
    NoSuchUser = 7,
    /// The transfer should be terminated because of option negotiation (RFC 2347).
    OptionRefused = 8,
}

impl ErrorCode {
    /// The code as it goes on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code with this number, or `None` for a code outside RFC 1350 and RFC 2347.
    pub fn from_u16(code: u16) -> Option<ErrorCode> {
        Some(match code {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTransferId,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            _ => return None,
        })
    }

    /// The short description RFC 1350 gives for the code.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::NotDefined => "not defined",
            ErrorCode::FileNotFound => "file not found",
            ErrorCode::AccessViolation => "access violation",
            ErrorCode::DiskFull => "disk full or allocation exceeded",
            ErrorCode::IllegalOperation => "illegal TFTP operation",
            ErrorCode::UnknownTransferId => "unknown transfer ID",
            ErrorCode::FileExists => "file already exists",
            ErrorCode::NoSuchUser => "no such user",
            ErrorCode::OptionRefused => "option negotiation refused",
        }
    }
}

/// Unknown codes map to [`ErrorCode::NotDefined`]; [`Packet::Error`] keeps the raw number.
impl From<u16> for ErrorCode {
    fn from(code: u16) -> ErrorCode {
        ErrorCode::from_u16(code).unwrap_or(ErrorCode::NotDefined)
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.as_u16()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_u16(), self.description())
    }
}

/// One TFTP packet, borrowing its strings and payload from the datagram it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request (opcode 1).
    Rrq(Request<'a>),
    /// Write request (opcode 2).
    Wrq(Request<'a>),
    /// A block of file data (opcode 3); at most [`MAX_BLKSIZE`] bytes.
    Data {
        /// The 16-bit block number (it rolls over from 65535 to 0).
        block: u16,
        /// The payload.
        data: &'a [u8],
    },
    /// Acknowledgement (opcode 4).
    Ack {
        /// The block number acknowledged (0 acknowledges a WRQ or an OACK).
        block: u16,
    },
    /// Error (opcode 5). The transfer ends; an ERROR is never acknowledged.
    Error {
        /// The raw error code (see [`ErrorCode`]; unknown codes are kept as sent).
        code: u16,
        /// The raw message bytes without the NUL. Untrusted: log them lossily and truncated.
        message: &'a [u8],
    },
    /// Option acknowledgement of RFC 2347 (opcode 6).
    Oack {
        /// The accepted options, in order.
        options: Vec<(&'a str, &'a str)>,
    },
}

/// Why bytes could not be parsed, or a packet could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The datagram ends before a fixed-size field (opcode, block number, error code).
    #[error("packet truncated")]
    Truncated,
    /// The opcode is not one of RFC 1350 or RFC 2347.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A request's filename or mode is not terminated by NUL.
    #[error("string not NUL-terminated")]
    MissingNul,
    /// A request's filename is empty.
    #[error("empty filename")]
    EmptyFilename,
    /// A request's mode is neither `netascii` nor `octet` (`mail` included).
    #[error("unsupported transfer mode")]
    UnsupportedMode,
    /// A DATA packet carries more than [`MAX_BLKSIZE`] bytes.
    #[error("packet larger than {MAX_PACKET} bytes")]
    Oversize,
    /// Emitting: a string to be written contains NUL, so it would not parse back as written.
    #[error("string contains NUL")]
    ContainsNul,
    /// Emitting: the buffer is shorter than [`Packet::buffer_len`].
    #[error("buffer too small")]
    BufferTooSmall,
}

impl WireError {
    /// The ERROR code to answer a request with when parsing it failed with this error, or `None`
    /// when the datagram should only be dropped. Only a request (RRQ/WRQ) that could be
    /// identified deserves an answer: RFC 1350 names a malformed request an illegal operation.
    pub fn reply_code(self) -> Option<ErrorCode> {
        match self {
            WireError::MissingNul | WireError::EmptyFilename | WireError::UnsupportedMode => {
                Some(ErrorCode::IllegalOperation)
            }
            WireError::Truncated
            | WireError::UnknownOpcode(_)
            | WireError::Oversize
            | WireError::ContainsNul
            | WireError::BufferTooSmall => None,
        }
    }
}

impl<'a> Packet<'a> {
    /// Parses one datagram. See the module doc for what is accepted.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, WireError> {
        let (opcode, body) = split_u16(bytes)?;
        match opcode {
            opcode::RRQ => parse_request(body).map(Packet::Rrq),
            opcode::WRQ => parse_request(body).map(Packet::Wrq),
            opcode::DATA => {
                let (block, data) = split_u16(body)?;
                if data.len() > usize::from(MAX_BLKSIZE) {
                    return Err(WireError::Oversize);
                }
                Ok(Packet::Data { block, data })
            }
            opcode::ACK => {
                // Trailing bytes after the block number are ignored (see the module doc).
                let (block, _rest) = split_u16(body)?;
                Ok(Packet::Ack { block })
            }
            opcode::ERROR => {
                let (code, rest) = split_u16(body)?;
                let message = match split_cstr(rest) {
                    Some((message, _after)) => message,
                    None => rest,
                };
                Ok(Packet::Error { code, message })
            }
            opcode::OACK => {
                let options = parse_options(body)
                    .map(|option| (option.name, option.value))
                    .collect();
                Ok(Packet::Oack { options })
            }
            other => Err(WireError::UnknownOpcode(other)),
        }
    }

    /// The packet's type as RFC 1350 and RFC 2347 name it ("RRQ", "DATA", ...), for logs that
    /// must not dump payloads.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Rrq(_) => "RRQ",
            Packet::Wrq(_) => "WRQ",
            Packet::Data { .. } => "DATA",
            Packet::Ack { .. } => "ACK",
            Packet::Error { .. } => "ERROR",
            Packet::Oack { .. } => "OACK",
        }
    }

    /// The number of bytes [`Packet::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Packet::Rrq(request) | Packet::Wrq(request) => {
                2 + request.filename.len()
                    + 1
                    + request.mode.as_str().len()
                    + 1
                    + request
                        .options
                        .iter()
                        .map(|option| option.name.len() + 1 + option.value.len() + 1)
                        .sum::<usize>()
            }
            Packet::Data { data, .. } => HEADER_LEN + data.len(),
            Packet::Ack { .. } => HEADER_LEN,
            Packet::Error { message, .. } => HEADER_LEN + message.len() + 1,
            Packet::Oack { options } => {
                2 + options
                    .iter()
                    .map(|(name, value)| name.len() + 1 + value.len() + 1)
                    .sum::<usize>()
            }
        }
    }

    /// Writes the packet to the front of `buf` and returns its length ([`Packet::buffer_len`]).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.check_emittable()?;
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        let mut writer = Writer { buf: out, pos: 0 };
        match self {
            Packet::Rrq(request) | Packet::Wrq(request) => {
                let code = if matches!(self, Packet::Rrq(_)) {
                    opcode::RRQ
                } else {
                    opcode::WRQ
                };
                writer.put_u16(code);
                writer.put_cstr(request.filename);
                writer.put_cstr(request.mode.as_str().as_bytes());
                for option in &request.options {
                    writer.put_cstr(option.name.as_bytes());
                    writer.put_cstr(option.value.as_bytes());
                }
            }
            Packet::Data { block, data } => {
                writer.put_u16(opcode::DATA);
                writer.put_u16(*block);
                writer.put(data);
            }
            Packet::Ack { block } => {
                writer.put_u16(opcode::ACK);
                writer.put_u16(*block);
            }
            Packet::Error { code, message } => {
                writer.put_u16(opcode::ERROR);
                writer.put_u16(*code);
                writer.put_cstr(message);
            }
            Packet::Oack { options } => {
                writer.put_u16(opcode::OACK);
                for (name, value) in options {
                    writer.put_cstr(name.as_bytes());
                    writer.put_cstr(value.as_bytes());
                }
            }
        }
        debug_assert_eq!(writer.pos, len);
        Ok(len)
    }

    /// Refuses values that would not parse back as they are (see the module doc).
    fn check_emittable(&self) -> Result<(), WireError> {
        let has_nul = |bytes: &[u8]| bytes.contains(&0);
        match self {
            Packet::Rrq(request) | Packet::Wrq(request) => {
                if request.filename.is_empty() {
                    return Err(WireError::EmptyFilename);
                }
                let bad_option = request.options.iter().any(|option| {
                    option.name.is_empty()
                        || has_nul(option.name.as_bytes())
                        || has_nul(option.value.as_bytes())
                });
                if has_nul(request.filename) || bad_option {
                    return Err(WireError::ContainsNul);
                }
            }
            Packet::Data { data, .. } => {
                if data.len() > usize::from(MAX_BLKSIZE) {
                    return Err(WireError::Oversize);
                }
            }
            Packet::Ack { .. } => {}
            Packet::Error { message, .. } => {
                if has_nul(message) {
                    return Err(WireError::ContainsNul);
                }
            }
            Packet::Oack { options } => {
                let bad_option = options.iter().any(|(name, value)| {
                    name.is_empty() || has_nul(name.as_bytes()) || has_nul(value.as_bytes())
                });
                if bad_option {
                    return Err(WireError::ContainsNul);
                }
            }
        }
        Ok(())
    }
}

/// Writes an ERROR packet with `code` and `message` to the front of `buf` and returns its length.
///
/// The message is cut at its first NUL and truncated (on a UTF-8 character boundary) to fit the
/// buffer; it is always NUL-terminated. Returns 0, writing nothing, when `buf` is shorter than
/// the 5 bytes of an ERROR with an empty message.
pub fn emit_error(buf: &mut [u8], code: ErrorCode, message: &str) -> usize {
    let Some(room) = buf.len().checked_sub(HEADER_LEN + 1) else {
        return 0;
    };
    let message = message.split('\0').next().unwrap_or_default();
    let message = truncate_on_char_boundary(message, room);
    let packet = Packet::Error {
        code: code.as_u16(),
        message: message.as_bytes(),
    };
    packet.emit(buf).unwrap_or(0)
}

/// Writes an ACK for `block` to the front of `buf`; `None` when `buf` is shorter than 4 bytes.
pub(crate) fn emit_ack(buf: &mut [u8], block: u16) -> Option<usize> {
    Packet::Ack { block }.emit(buf).ok()
}

/// Writes a DATA header for `block` into `buf[..4]`; the payload goes at `buf[4..]`.
/// `None` when `buf` is shorter than 4 bytes.
pub(crate) fn emit_data_header(buf: &mut [u8], block: u16) -> Option<()> {
    let header = buf.get_mut(..HEADER_LEN)?;
    let mut writer = Writer {
        buf: header,
        pos: 0,
    };
    writer.put_u16(opcode::DATA);
    writer.put_u16(block);
    Some(())
}

/// The longest prefix of `text` that is at most `max` bytes and ends on a character boundary.
pub(crate) fn truncate_on_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// A bounds-checked cursor over a buffer that the caller has already sized exactly.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }

    fn put_u16(&mut self, value: u16) {
        self.put(&value.to_be_bytes());
    }

    fn put_cstr(&mut self, bytes: &[u8]) {
        self.put(bytes);
        self.put(&[0]);
    }
}

/// Splits a big-endian u16 off the front of `bytes`.
fn split_u16(bytes: &[u8]) -> Result<(u16, &[u8]), WireError> {
    match bytes {
        [high, low, rest @ ..] => Ok((u16::from_be_bytes([*high, *low]), rest)),
        _ => Err(WireError::Truncated),
    }
}

/// Splits a NUL-terminated string off the front of `bytes`: (string without NUL, rest after NUL).
fn split_cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = bytes.iter().position(|&byte| byte == 0)?;
    let (string, rest) = bytes.split_at(nul);
    Some((string, rest.get(1..).unwrap_or_default()))
}

fn parse_request(body: &[u8]) -> Result<Request<'_>, WireError> {
    let (filename, rest) = split_cstr(body).ok_or(WireError::MissingNul)?;
    if filename.is_empty() {
        return Err(WireError::EmptyFilename);
    }
    let (mode, rest) = split_cstr(rest).ok_or(WireError::MissingNul)?;
    let mode = Mode::parse(mode)?;
    let options = parse_options(rest).collect();
    Ok(Request {
        filename,
        mode,
        options,
    })
}

/// Iterates over the complete, UTF-8, non-empty-named name/value pairs of an RFC 2347 option
/// list, skipping everything else as the module doc describes.
fn parse_options(mut bytes: &[u8]) -> impl Iterator<Item = RequestOption<'_>> {
    std::iter::from_fn(move || {
        loop {
            let (name, rest) = split_cstr(bytes)?;
            if name.is_empty() {
                // NUL padding: skip one byte and look again.
                bytes = rest;
                continue;
            }
            let (value, rest) = split_cstr(rest)?;
            bytes = rest;
            if let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) {
                return Some(RequestOption { name, value });
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests: a panic is the failure report"
    )]

    use proptest::prelude::*;

    use super::*;

    /// An iPXE-style read request: `pxelinux.0`, octet, blksize 1468, tsize 0.
    const RRQ_BYTES: &[u8] = b"\x00\x01pxelinux.0\x00octet\x00blksize\x001468\x00tsize\x000\x00";
    /// A Cisco-style write request with no options.
    const WRQ_BYTES: &[u8] = b"\x00\x02uploads/sw1.cfg\x00netascii\x00";
    const DATA_BYTES: &[u8] = b"\x00\x03\x12\x34hello";
    const ACK_BYTES: &[u8] = b"\x00\x04\xff\xfe";
    const ERROR_BYTES: &[u8] = b"\x00\x05\x00\x01File not found\x00";
    const OACK_BYTES: &[u8] = b"\x00\x06blksize\x001468\x00tsize\x0012345\x00";

    fn option<'a>(name: &'a str, value: &'a str) -> RequestOption<'a> {
        RequestOption { name, value }
    }

    fn rrq_repr() -> Packet<'static> {
        Packet::Rrq(Request {
            filename: b"pxelinux.0",
            mode: Mode::Octet,
            options: vec![option("blksize", "1468"), option("tsize", "0")],
        })
    }

    fn wrq_repr() -> Packet<'static> {
        Packet::Wrq(Request {
            filename: b"uploads/sw1.cfg",
            mode: Mode::Netascii,
            options: vec![],
        })
    }

    /// Emits into a buffer pre-filled with 0xa5 that is longer than needed, and checks every
    /// byte: the packet is exactly `expected` and nothing past it was touched.
    fn check_emit(packet: &Packet<'_>, expected: &[u8]) {
        assert_eq!(packet.buffer_len(), expected.len());
        let mut buf = vec![0xa5_u8; expected.len() + 16];
        let len = packet.emit(&mut buf).unwrap();
        assert_eq!(len, expected.len());
        assert_eq!(&buf[..len], expected);
        assert!(buf[len..].iter().all(|&byte| byte == 0xa5));
        // An exactly sized buffer works too, and one byte less is refused untouched.
        let mut exact = vec![0xa5_u8; expected.len()];
        assert_eq!(packet.emit(&mut exact), Ok(expected.len()));
        assert_eq!(exact, expected);
        let mut short = vec![0xa5_u8; expected.len() - 1];
        assert_eq!(packet.emit(&mut short), Err(WireError::BufferTooSmall));
        assert!(short.iter().all(|&byte| byte == 0xa5));
    }

    #[test]
    fn test_parse_rrq() {
        assert_eq!(Packet::parse(RRQ_BYTES), Ok(rrq_repr()));
    }

    #[test]
    fn test_emit_rrq() {
        check_emit(&rrq_repr(), RRQ_BYTES);
    }

    #[test]
    fn test_parse_wrq() {
        assert_eq!(Packet::parse(WRQ_BYTES), Ok(wrq_repr()));
    }

    #[test]
    fn test_emit_wrq() {
        check_emit(&wrq_repr(), WRQ_BYTES);
    }

    #[test]
    fn test_parse_data() {
        let expected = Packet::Data {
            block: 0x1234,
            data: b"hello",
        };
        assert_eq!(Packet::parse(DATA_BYTES), Ok(expected));
    }

    #[test]
    fn test_emit_data() {
        let packet = Packet::Data {
            block: 0x1234,
            data: b"hello",
        };
        check_emit(&packet, DATA_BYTES);
        check_emit(
            &Packet::Data {
                block: 7,
                data: b"",
            },
            b"\x00\x03\x00\x07",
        );
    }

    #[test]
    fn test_parse_ack() {
        assert_eq!(Packet::parse(ACK_BYTES), Ok(Packet::Ack { block: 0xfffe }));
    }

    #[test]
    fn test_emit_ack() {
        check_emit(&Packet::Ack { block: 0xfffe }, ACK_BYTES);
    }

    #[test]
    fn test_parse_error() {
        let expected = Packet::Error {
            code: 1,
            message: b"File not found",
        };
        assert_eq!(Packet::parse(ERROR_BYTES), Ok(expected));
    }

    #[test]
    fn test_emit_error() {
        let packet = Packet::Error {
            code: 1,
            message: b"File not found",
        };
        check_emit(&packet, ERROR_BYTES);
    }

    #[test]
    fn test_parse_oack() {
        let expected = Packet::Oack {
            options: vec![("blksize", "1468"), ("tsize", "12345")],
        };
        assert_eq!(Packet::parse(OACK_BYTES), Ok(expected));
    }

    #[test]
    fn test_emit_oack() {
        let packet = Packet::Oack {
            options: vec![("blksize", "1468"), ("tsize", "12345")],
        };
        check_emit(&packet, OACK_BYTES);
    }

    #[test]
    fn packet_kinds_name_the_opcode() {
        let kinds: Vec<&str> = [
            RRQ_BYTES,
            WRQ_BYTES,
            DATA_BYTES,
            ACK_BYTES,
            ERROR_BYTES,
            OACK_BYTES,
        ]
        .iter()
        .map(|bytes| Packet::parse(bytes).unwrap().kind())
        .collect();
        assert_eq!(kinds, ["RRQ", "WRQ", "DATA", "ACK", "ERROR", "OACK"]);
    }

    #[test]
    fn rfc1350_mode_is_case_insensitive() {
        for (raw, mode) in [
            (&b"\x00\x01f\x00OcTeT\x00"[..], Mode::Octet),
            (b"\x00\x01f\x00NETASCII\x00", Mode::Netascii),
            (b"\x00\x01f\x00netascii\x00", Mode::Netascii),
        ] {
            match Packet::parse(raw) {
                Ok(Packet::Rrq(request)) => assert_eq!(request.mode, mode),
                other => panic!("{raw:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn rfc1350_mail_and_unknown_modes_are_unsupported() {
        for raw in [
            &b"\x00\x01f\x00mail\x00"[..],
            b"\x00\x02f\x00MAIL\x00",
            b"\x00\x01f\x00binary\x00",
            b"\x00\x01f\x00\x00",
            b"\x00\x01f\x00oct\xffet\x00",
        ] {
            assert_eq!(
                Packet::parse(raw),
                Err(WireError::UnsupportedMode),
                "{raw:?}"
            );
        }
        assert_eq!(
            WireError::UnsupportedMode.reply_code(),
            Some(ErrorCode::IllegalOperation)
        );
    }

    #[test]
    fn rfc1350_request_strings_must_be_nul_terminated_and_filename_non_empty() {
        assert_eq!(
            Packet::parse(b"\x00\x01pxelinux.0"),
            Err(WireError::MissingNul)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01pxelinux.0\x00octet"),
            Err(WireError::MissingNul)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01\x00octet\x00"),
            Err(WireError::EmptyFilename)
        );
        assert_eq!(Packet::parse(b"\x00\x02"), Err(WireError::MissingNul));
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        assert_eq!(Packet::parse(b""), Err(WireError::Truncated));
        assert_eq!(Packet::parse(b"\x00"), Err(WireError::Truncated));
        assert_eq!(Packet::parse(b"\x00\x03\x00"), Err(WireError::Truncated));
        assert_eq!(Packet::parse(b"\x00\x04"), Err(WireError::Truncated));
        assert_eq!(Packet::parse(b"\x00\x05\x00"), Err(WireError::Truncated));
        assert_eq!(
            Packet::parse(b"\x00\x00\x00\x01"),
            Err(WireError::UnknownOpcode(0))
        );
        assert_eq!(Packet::parse(b"\x00\x07"), Err(WireError::UnknownOpcode(7)));
        assert_eq!(
            Packet::parse(b"GET / HTTP/1.0\r\n"),
            Err(WireError::UnknownOpcode(0x4745))
        );
        assert_eq!(WireError::Truncated.reply_code(), None);
    }

    #[test]
    fn data_longer_than_max_packet_is_an_error() {
        let mut datagram = vec![0, 3, 0, 1];
        datagram.resize(MAX_PACKET, 0x42);
        match Packet::parse(&datagram) {
            Ok(Packet::Data { block: 1, data }) => assert_eq!(data.len(), 65464),
            other => panic!("{other:?}"),
        }
        datagram.push(0x42);
        assert_eq!(Packet::parse(&datagram), Err(WireError::Oversize));
        let payload = vec![0_u8; usize::from(MAX_BLKSIZE) + 1];
        let oversize = Packet::Data {
            block: 1,
            data: &payload,
        };
        let mut buf = vec![0_u8; MAX_PACKET + 10];
        assert_eq!(oversize.emit(&mut buf), Err(WireError::Oversize));
    }

    #[test]
    fn rfc2347_incomplete_trailing_option_is_ignored() {
        // A name without a value, then an unterminated tail: the request is still served.
        let raw = b"\x00\x01f\x00octet\x00blksize\x001024\x00tsize\x00";
        let expected = Packet::Rrq(Request {
            filename: b"f",
            mode: Mode::Octet,
            options: vec![option("blksize", "1024")],
        });
        assert_eq!(Packet::parse(raw), Ok(expected.clone()));
        let raw = b"\x00\x01f\x00octet\x00blksize\x001024\x00garbage";
        assert_eq!(Packet::parse(raw), Ok(expected));
    }

    #[test]
    fn rfc2347_nul_padding_after_options_is_ignored() {
        let raw = b"\x00\x01f\x00octet\x00tsize\x000\x00\x00\x00\x00\x00";
        let expected = Packet::Rrq(Request {
            filename: b"f",
            mode: Mode::Octet,
            options: vec![option("tsize", "0")],
        });
        assert_eq!(Packet::parse(raw), Ok(expected));
    }

    #[test]
    fn rfc2347_non_utf8_option_is_skipped_and_request_kept() {
        let raw = b"\x00\x01f\x00octet\x00bl\xffk\x001\x00blksize\x00\xfe\x00tsize\x000\x00";
        let expected = Packet::Rrq(Request {
            filename: b"f",
            mode: Mode::Octet,
            options: vec![option("tsize", "0")],
        });
        assert_eq!(Packet::parse(raw), Ok(expected));
    }

    #[test]
    fn rfc2347_options_keep_order_and_duplicates() {
        let raw = b"\x00\x02f\x00octet\x00BLKSIZE\x00600\x00blksize\x00700\x00";
        let expected = Packet::Wrq(Request {
            filename: b"f",
            mode: Mode::Octet,
            options: vec![option("BLKSIZE", "600"), option("blksize", "700")],
        });
        assert_eq!(Packet::parse(raw), Ok(expected));
    }

    #[test]
    fn ack_with_trailing_bytes_is_accepted() {
        assert_eq!(
            Packet::parse(b"\x00\x04\x00\x09\x00\x00junk"),
            Ok(Packet::Ack { block: 9 })
        );
    }

    #[test]
    fn error_message_without_nul_runs_to_end_and_stops_at_first_nul() {
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x08refused"),
            Ok(Packet::Error {
                code: 8,
                message: b"refused"
            })
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x12\x34a\x00b\x00"),
            Ok(Packet::Error {
                code: 0x1234,
                message: b"a"
            })
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x00"),
            Ok(Packet::Error {
                code: 0,
                message: b""
            })
        );
    }

    #[test]
    fn emit_refuses_values_that_would_not_parse_back() {
        let mut buf = [0_u8; 64];
        let request = |filename: &'static [u8], options| {
            Packet::Rrq(Request {
                filename,
                mode: Mode::Octet,
                options,
            })
        };
        assert_eq!(
            request(b"", vec![]).emit(&mut buf),
            Err(WireError::EmptyFilename)
        );
        assert_eq!(
            request(b"a\0b", vec![]).emit(&mut buf),
            Err(WireError::ContainsNul)
        );
        assert_eq!(
            request(b"a", vec![option("", "1")]).emit(&mut buf),
            Err(WireError::ContainsNul)
        );
        assert_eq!(
            request(b"a", vec![option("x", "1\0")]).emit(&mut buf),
            Err(WireError::ContainsNul)
        );
        let error = Packet::Error {
            code: 0,
            message: b"x\0y",
        };
        assert_eq!(error.emit(&mut buf), Err(WireError::ContainsNul));
        let oack = Packet::Oack {
            options: vec![("a\0", "1")],
        };
        assert_eq!(oack.emit(&mut buf), Err(WireError::ContainsNul));
    }

    #[test]
    fn emit_error_truncates_and_always_terminates() {
        let mut buf = [0xa5_u8; 12];
        let len = emit_error(&mut buf, ErrorCode::DiskFull, "upload too large");
        assert_eq!(len, 12);
        assert_eq!(&buf, b"\x00\x05\x00\x03upload \x00");
        // A multi-byte character that does not fit is dropped whole.
        let mut buf = [0xa5_u8; 8];
        let len = emit_error(&mut buf, ErrorCode::NotDefined, "ab\u{e9}");
        assert_eq!(&buf[..len], b"\x00\x05\x00\x00ab\x00");
        assert_eq!(buf[len], 0xa5);
        // An embedded NUL ends the message.
        let mut buf = [0xa5_u8; 32];
        let len = emit_error(&mut buf, ErrorCode::AccessViolation, "no\0pe");
        assert_eq!(&buf[..len], b"\x00\x05\x00\x02no\x00");
        // Too small for even an empty message: nothing is written.
        let mut buf = [0xa5_u8; 4];
        assert_eq!(emit_error(&mut buf, ErrorCode::NotDefined, "x"), 0);
        assert_eq!(buf, [0xa5; 4]);
        let mut buf = [0xa5_u8; 5];
        assert_eq!(emit_error(&mut buf, ErrorCode::UnknownTransferId, "x"), 5);
        assert_eq!(&buf, b"\x00\x05\x00\x05\x00");
    }

    #[test]
    fn error_code_numbers_round_trip_and_unknown_maps_to_not_defined() {
        for number in 0..=8_u16 {
            let code = ErrorCode::from_u16(number).unwrap();
            assert_eq!(code.as_u16(), number);
            assert_eq!(u16::from(code), number);
            assert_eq!(ErrorCode::from(number), code);
        }
        assert_eq!(ErrorCode::from_u16(9), None);
        assert_eq!(ErrorCode::from(0xffff), ErrorCode::NotDefined);
    }

    /// A packet with owned contents, so that proptest can generate it.
    #[derive(Debug, Clone)]
    enum OwnedPacket {
        Rrq(Vec<u8>, Mode, Vec<(String, String)>),
        Wrq(Vec<u8>, Mode, Vec<(String, String)>),
        Data(u16, Vec<u8>),
        Ack(u16),
        Error(u16, Vec<u8>),
        Oack(Vec<(String, String)>),
    }

    impl OwnedPacket {
        fn as_packet(&self) -> Packet<'_> {
            fn request<'a>(
                filename: &'a [u8],
                mode: Mode,
                options: &'a [(String, String)],
            ) -> Request<'a> {
                Request {
                    filename,
                    mode,
                    options: options
                        .iter()
                        .map(|(name, value)| RequestOption { name, value })
                        .collect(),
                }
            }
            match self {
                OwnedPacket::Rrq(filename, mode, options) => {
                    Packet::Rrq(request(filename, *mode, options))
                }
                OwnedPacket::Wrq(filename, mode, options) => {
                    Packet::Wrq(request(filename, *mode, options))
                }
                OwnedPacket::Data(block, data) => Packet::Data {
                    block: *block,
                    data,
                },
                OwnedPacket::Ack(block) => Packet::Ack { block: *block },
                OwnedPacket::Error(code, message) => Packet::Error {
                    code: *code,
                    message,
                },
                OwnedPacket::Oack(options) => Packet::Oack {
                    options: options
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect(),
                },
            }
        }
    }

    fn non_nul_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(1_u8..=255, 1..=max)
    }

    fn options() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(("[^\\x00]{1,10}", "[^\\x00]{0,10}"), 0..6)
    }

    fn mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(Mode::Octet), Just(Mode::Netascii)]
    }

    fn owned_packet() -> impl Strategy<Value = OwnedPacket> {
        prop_oneof![
            (non_nul_bytes(64), mode(), options())
                .prop_map(|(filename, mode, options)| OwnedPacket::Rrq(filename, mode, options)),
            (non_nul_bytes(64), mode(), options())
                .prop_map(|(filename, mode, options)| OwnedPacket::Wrq(filename, mode, options)),
            (any::<u16>(), prop::collection::vec(any::<u8>(), 0..1500))
                .prop_map(|(block, data)| OwnedPacket::Data(block, data)),
            any::<u16>().prop_map(OwnedPacket::Ack),
            (any::<u16>(), prop::collection::vec(1_u8..=255, 0..100))
                .prop_map(|(code, message)| OwnedPacket::Error(code, message)),
            options().prop_map(OwnedPacket::Oack),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Packet::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_any_bytes_after_a_valid_opcode(
            opcode in 0_u16..=7,
            body in prop::collection::vec(prop_oneof![Just(0_u8), any::<u8>()], 0..512),
        ) {
            let mut bytes = opcode.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            if let Ok(packet) = Packet::parse(&bytes) {
                // Whatever parsed must emit without panicking into a buffer of its own size.
                let mut buf = vec![0_u8; packet.buffer_len()];
                let _ = packet.emit(&mut buf);
            }
        }

        #[test]
        fn parse_of_emit_is_identity(owned in owned_packet()) {
            let packet = owned.as_packet();
            let mut buf = vec![0xa5_u8; packet.buffer_len() + 8];
            let len = packet.emit(&mut buf).unwrap();
            prop_assert_eq!(len, packet.buffer_len());
            prop_assert!(buf[len..].iter().all(|&byte| byte == 0xa5));
            prop_assert_eq!(Packet::parse(&buf[..len]).unwrap(), packet);
        }

        #[test]
        fn emit_error_never_panics_and_parses_back(
            len in 0_usize..64,
            code in 0_u16..=8,
            message in "\\PC{0,40}",
        ) {
            let mut buf = vec![0xa5_u8; len];
            let code = ErrorCode::from(code);
            let written = emit_error(&mut buf, code, &message);
            if len < 5 {
                prop_assert_eq!(written, 0);
            } else {
                match Packet::parse(&buf[..written]) {
                    Ok(Packet::Error { code: parsed, message: parsed_message }) => {
                        prop_assert_eq!(parsed, code.as_u16());
                        prop_assert!(message.as_bytes().starts_with(parsed_message));
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }
}
