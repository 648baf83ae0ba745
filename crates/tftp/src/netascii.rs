//! Netascii (RFC 1350 mode `netascii`, the Telnet NVT ASCII of RFC 764) for Unix files.
//!
//! On the wire a line ends in CR LF and a carriage return that is not part of a line end is sent
//! as CR NUL. On disk (Unix) a line ends in LF. So:
//!
//! - encoding (reads, file to wire): LF becomes CR LF, CR becomes CR NUL, every other byte is
//!   kept. Encoding has no state across chunks, so a file can be encoded in pieces.
//! - decoding (writes, wire to file): CR LF becomes LF, CR NUL becomes CR. A CR followed by any
//!   other byte is kept as it is (a sloppy client's bare CR) and the byte after it is decoded
//!   normally. [`Decoder`] is streaming: a CR at the end of one DATA block is held until the first
//!   byte of the next block (or [`Decoder::finish`]) says what it was.
//!
//! For every byte string `x` and every way of cutting `encode(x)` into blocks, decoding the blocks
//! in order and then calling `finish` gives back `x`.

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;

/// Encodes file bytes as netascii.
pub fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 16);
    encode_into(input, &mut out);
    out
}

/// Encodes file bytes as netascii, appending to `out`.
pub fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    for &byte in input {
        match byte {
            LF => out.extend_from_slice(&[CR, LF]),
            CR => out.extend_from_slice(&[CR, NUL]),
            other => out.push(other),
        }
    }
}

/// The length of `encode(input)`, without encoding (for an exact RFC 2349 tsize).
pub fn encoded_len(input: &[u8]) -> u64 {
    let expanded = input
        .iter()
        .filter(|&&byte| byte == CR || byte == LF)
        .count();
    (input.len() as u64).saturating_add(expanded as u64)
}

/// A streaming netascii decoder for uploads.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    /// The previous input ended in a CR whose meaning depends on the next byte.
    pending_cr: bool,
}

impl Decoder {
    /// A decoder at the start of a file.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Decodes the next chunk of the wire stream, appending the file bytes to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &byte in input {
            if self.pending_cr {
                match byte {
                    LF => out.push(LF),
                    NUL => out.push(CR),
                    CR => {
                        // The first CR was bare; the new one is pending in its turn.
                        out.push(CR);
                        continue;
                    }
                    other => out.extend_from_slice(&[CR, other]),
                }
                self.pending_cr = false;
            } else if byte == CR {
                self.pending_cr = true;
            } else {
                out.push(byte);
            }
        }
    }

    /// Ends the stream: a CR held back from the last chunk is kept as a bare CR.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.push(CR);
            self.pending_cr = false;
        }
    }
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

    fn decode_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.decode(chunk, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn rfc1350_netascii_encode_lf_and_cr() {
        assert_eq!(encode(b"a\nb\rc\r\n"), b"a\r\nb\r\0c\r\0\r\n");
        assert_eq!(encode(b""), b"");
        assert_eq!(encoded_len(b"a\nb\rc\r\n"), 11);
    }

    #[test]
    fn rfc1350_netascii_decode_crlf_and_crnul() {
        assert_eq!(decode_all(&[b"a\r\nb\r\0c"]), b"a\nb\rc");
    }

    #[test]
    fn netascii_decode_cr_split_across_blocks() {
        assert_eq!(decode_all(&[b"line\r", b"\nnext"]), b"line\nnext");
        assert_eq!(decode_all(&[b"cr\r", b"\0x"]), b"cr\rx");
        assert_eq!(decode_all(&[b"a\r", b"", b"\n"]), b"a\n");
    }

    #[test]
    fn netascii_decode_keeps_a_lone_cr() {
        assert_eq!(decode_all(&[b"a\rb"]), b"a\rb");
        assert_eq!(decode_all(&[b"a\r\r\n"]), b"a\r\n");
        assert_eq!(decode_all(&[b"end\r"]), b"end\r");
        assert_eq!(decode_all(&[b"\r", b"\r", b"\r"]), b"\r\r\r");
    }

    proptest! {
        #[test]
        fn netascii_decode_of_encode_is_identity_for_any_split(
            input in prop::collection::vec(
                prop_oneof![Just(CR), Just(LF), Just(NUL), any::<u8>()],
                0..300,
            ),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let encoded = encode(&input);
            prop_assert_eq!(encoded.len() as u64, encoded_len(&input));
            let mut cut_points: Vec<usize> =
                cuts.iter().map(|cut| cut.index(encoded.len() + 1)).collect();
            cut_points.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cut_points {
                chunks.push(&encoded[start..cut]);
                start = cut;
            }
            chunks.push(&encoded[start..]);
            prop_assert_eq!(decode_all(&chunks), input);
        }

        #[test]
        fn netascii_decode_never_panics_and_never_grows(
            input in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let out = decode_all(&[&input]);
            prop_assert!(out.len() <= input.len());
        }
    }
}
