//! A minimal TFTP codec for a read-only client: RRQ out, OACK/DATA/ERROR in, ACK out.
//!
//! Parsing borrows from the receive buffer (no allocation); building writes into a buffer the
//! caller owns. RFC 1350 (TFTP), RFC 2347 (option extension), RFC 2348 (blksize),
//! RFC 7440 (windowsize).

use std::fmt;

pub const OP_RRQ: u16 = 1;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// RFC 1350's block size, used when the server does not acknowledge `blksize`.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348's limits for `blksize`.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;
/// RFC 7440's limits for `windowsize`.
pub const MAX_WINDOWSIZE: u16 = 65535;

/// A packet received from a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    Data {
        block: u16,
        payload: &'a [u8],
    },
    Ack {
        block: u16,
    },
    Error {
        code: u16,
        message: &'a [u8],
    },
    /// The raw option area: NUL-terminated name/value pairs. See [`parse_oack`].
    Oack {
        options: &'a [u8],
    },
    /// RRQ/WRQ or an unknown opcode: nothing a reading client expects.
    Other {
        opcode: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    Short,
    BadOption(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Short => f.write_str("packet shorter than its opcode needs"),
            CodecError::BadOption(what) => write!(f, "bad OACK: {what}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Parses one datagram.
pub fn parse(packet: &[u8]) -> Result<Packet<'_>, CodecError> {
    let (Some(&op_hi), Some(&op_lo)) = (packet.first(), packet.get(1)) else {
        return Err(CodecError::Short);
    };
    let opcode = u16::from_be_bytes([op_hi, op_lo]);
    let body = &packet[2..];
    let number = || match body {
        [hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(CodecError::Short),
    };
    Ok(match opcode {
        OP_DATA => Packet::Data {
            block: number()?,
            payload: &body[2..],
        },
        OP_ACK => Packet::Ack { block: number()? },
        OP_ERROR => {
            let code = number()?;
            let text = &body[2..];
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            Packet::Error {
                code,
                message: &text[..end],
            }
        }
        OP_OACK => Packet::Oack { options: body },
        _ => Packet::Other { opcode },
    })
}

/// Writes an RRQ for `file` in octet mode with the given options (name, value) into `out`.
pub fn build_rrq(out: &mut Vec<u8>, file: &str, options: &[(&str, u64)]) {
    out.clear();
    out.extend_from_slice(&OP_RRQ.to_be_bytes());
    out.extend_from_slice(file.as_bytes());
    out.push(0);
    out.extend_from_slice(b"octet\0");
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.to_string().as_bytes());
        out.push(0);
    }
}

/// An ACK for `block`.
pub fn ack(block: u16) -> [u8; 4] {
    let [hi, lo] = block.to_be_bytes();
    [0, OP_ACK as u8, hi, lo]
}

/// What the client asked for, and what it ends up using.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub blksize: u16,
    pub windowsize: u16,
}

impl Settings {
    /// What applies when the server answers an RRQ with DATA (no OACK): RFC 2347 says the
    /// client then proceeds without any option, i.e. 512-byte lock-step.
    pub const PLAIN: Settings = Settings {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
    };
}

/// Applies an OACK's option area to the options the client requested (`None` = not
/// requested). Per RFC 2347 an option the server leaves out is declined, so its default
/// applies (512 / 1); an option the client did not request, or a value larger than requested
/// (or outside the RFC's range), makes the OACK unacceptable. `tsize` and `timeout` are
/// accepted if requested, and otherwise refused like any unrequested option.
pub fn parse_oack(
    options: &[u8],
    blksize: Option<u16>,
    windowsize: Option<u16>,
) -> Result<Settings, CodecError> {
    let mut settings = Settings::PLAIN;
    let mut fields = options.split(|&b| b == 0);
    // A well-formed option area ends with NUL, so split() yields one empty tail.
    let mut pairs = 0usize;
    while let Some(name) = fields.next() {
        if name.is_empty() {
            if fields.next().is_none() {
                break;
            }
            return Err(CodecError::BadOption("empty option name".into()));
        }
        let Some(value) = fields.next() else {
            return Err(CodecError::BadOption(format!(
                "option {} has no value",
                String::from_utf8_lossy(name)
            )));
        };
        pairs += 1;
        let number = parse_decimal(value).ok_or_else(|| {
            CodecError::BadOption(format!(
                "option {} has a non-numeric value {:?}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value)
            ))
        })?;
        if name.eq_ignore_ascii_case(b"blksize") {
            let Some(asked) = blksize else {
                return Err(CodecError::BadOption("unrequested blksize".into()));
            };
            if number < u64::from(MIN_BLKSIZE) || number > u64::from(asked) {
                return Err(CodecError::BadOption(format!(
                    "blksize {number} outside {MIN_BLKSIZE}..={asked}"
                )));
            }
            settings.blksize = number as u16;
        } else if name.eq_ignore_ascii_case(b"windowsize") {
            let Some(asked) = windowsize else {
                return Err(CodecError::BadOption("unrequested windowsize".into()));
            };
            if number < 1 || number > u64::from(asked) {
                return Err(CodecError::BadOption(format!(
                    "windowsize {number} outside 1..={asked}"
                )));
            }
            settings.windowsize = number as u16;
        } else {
            return Err(CodecError::BadOption(format!(
                "unrequested option {}",
                String::from_utf8_lossy(name)
            )));
        }
    }
    if pairs == 0 {
        return Err(CodecError::BadOption("no options".into()));
    }
    Ok(settings)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// Where a received block number stands relative to the one expected next, with 16-bit
/// rollover (after 65535 comes 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The expected block.
    InOrder,
    /// A later block: something in between was lost (or reordered).
    Ahead(u16),
    /// An earlier block: a retransmission of something already received.
    Behind(u16),
}

pub fn order(block: u16, expected: u16) -> Order {
    match block.wrapping_sub(expected) {
        0 => Order::InOrder,
        ahead @ 1..=0x7fff => Order::Ahead(ahead),
        _ => Order::Behind(expected.wrapping_sub(block)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_data_ack_error() {
        assert_eq!(
            parse(&[0, 3, 0x12, 0x34, b'h', b'i']),
            Ok(Packet::Data {
                block: 0x1234,
                payload: b"hi"
            })
        );
        assert_eq!(
            parse(&[0, 3, 0xff, 0xff]),
            Ok(Packet::Data {
                block: 65535,
                payload: b""
            })
        );
        assert_eq!(parse(&[0, 4, 0, 7]), Ok(Packet::Ack { block: 7 }));
        assert_eq!(
            parse(b"\x00\x05\x00\x01File not found\x00"),
            Ok(Packet::Error {
                code: 1,
                message: b"File not found"
            })
        );
        // No NUL terminator: the message runs to the end.
        assert_eq!(
            parse(b"\x00\x05\x00\x08nope"),
            Ok(Packet::Error {
                code: 8,
                message: b"nope"
            })
        );
        assert_eq!(parse(&[0, 3, 1]), Err(CodecError::Short));
        assert_eq!(parse(&[0]), Err(CodecError::Short));
        assert_eq!(parse(&[0, 9, 1, 2]), Ok(Packet::Other { opcode: 9 }));
    }

    #[test]
    fn builds_rrq_and_ack() {
        let mut out = Vec::new();
        build_rrq(&mut out, "a/b.bin", &[("blksize", 1468), ("windowsize", 8)]);
        assert_eq!(
            out,
            b"\x00\x01a/b.bin\x00octet\x00blksize\x001468\x00windowsize\x008\x00"
        );
        build_rrq(&mut out, "x", &[]);
        assert_eq!(out, b"\x00\x01x\x00octet\x00");
        assert_eq!(ack(0x0102), [0, 4, 1, 2]);
    }

    fn oack(
        options: &[u8],
        blksize: Option<u16>,
        windowsize: Option<u16>,
    ) -> Result<Settings, CodecError> {
        match parse(options) {
            Ok(Packet::Oack { options }) => parse_oack(options, blksize, windowsize),
            other => panic!("not an OACK: {other:?}"),
        }
    }

    #[test]
    fn oack_grants_and_declines() {
        let both = oack(
            b"\x00\x06blksize\x001468\x00windowsize\x0016\x00",
            Some(1468),
            Some(64),
        );
        assert_eq!(
            both,
            Ok(Settings {
                blksize: 1468,
                windowsize: 16
            })
        );
        // Case-insensitive names; a smaller blksize than asked is allowed.
        let smaller = oack(b"\x00\x06BLKSIZE\x001024\x00", Some(1468), Some(8));
        // windowsize left out of the OACK: declined, lock-step (RFC 2347).
        assert_eq!(
            smaller,
            Ok(Settings {
                blksize: 1024,
                windowsize: 1
            })
        );
        let only_window = oack(b"\x00\x06windowsize\x008\x00", Some(1468), Some(8));
        assert_eq!(
            only_window,
            Ok(Settings {
                blksize: 512,
                windowsize: 8
            })
        );
    }

    #[test]
    fn oack_rejects_what_was_not_asked() {
        // Larger than requested.
        assert!(oack(b"\x00\x06blksize\x002000\x00", Some(1468), None).is_err());
        assert!(oack(b"\x00\x06windowsize\x0065\x00", None, Some(64)).is_err());
        // Not requested at all.
        assert!(oack(b"\x00\x06windowsize\x004\x00", Some(1468), None).is_err());
        assert!(oack(b"\x00\x06tsize\x00100\x00", Some(1468), None).is_err());
        // Malformed.
        assert!(oack(b"\x00\x06blksize\x00abc\x00", Some(1468), None).is_err());
        assert!(oack(b"\x00\x06blksize\x00", Some(1468), None).is_err());
        assert!(oack(b"\x00\x06blksize\x007\x00", Some(1468), None).is_err());
        assert!(oack(b"\x00\x06", Some(1468), None).is_err());
        assert!(oack(b"\x00\x06windowsize\x000\x00", None, Some(8)).is_err());
    }

    #[test]
    fn block_order_rolls_over() {
        assert_eq!(order(5, 5), Order::InOrder);
        assert_eq!(order(7, 5), Order::Ahead(2));
        assert_eq!(order(4, 5), Order::Behind(1));
        // After 65535 comes 0.
        assert_eq!(order(0, 65535), Order::Ahead(1));
        assert_eq!(order(0, 0), Order::InOrder);
        assert_eq!(order(65535, 0), Order::Behind(1));
        assert_eq!(order(65500, 10), Order::Behind(46));
        assert_eq!(order(30, 65530), Order::Ahead(36));
        assert_eq!(65535u16.wrapping_add(1), 0);
    }
}
