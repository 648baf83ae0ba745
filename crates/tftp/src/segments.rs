//! DATA blocks of one window gathered for a single segmented send.
//!
//! A window of small blocks is many datagrams, and each one sent alone costs a system call and
//! a trip through the IP stack. With UDP generic segmentation offload (`UDP_SEGMENT`, Linux
//! 4.18) one `sendmsg` carries them all: the bytes are laid end to end and the kernel (or the
//! NIC) cuts them into datagrams of one size, the last possibly shorter, just before they
//! leave. The receiver sees the same datagrams as before. This module decides which blocks can
//! travel together; the server sends them.

use std::io::IoSlice;
use std::net::SocketAddr;

use crate::proto::Transmit;
use crate::wire::HEADER_LEN;

/// The most datagrams one segmented send may carry (`UDP_MAX_SEGMENTS` since Linux 4.18).
pub(crate) const MAX_SEGMENTS: usize = 64;

/// The most bytes one segmented send may carry: the largest UDP payload of an IPv4 datagram,
/// since the kernel builds the whole batch as one datagram before it cuts it.
const MAX_BYTES: usize = 65_507;

/// Blocks polled out together, in order, all to one peer, all of one size except possibly the
/// last.
#[derive(Debug)]
pub(crate) struct Segments<'s> {
    to: Option<SocketAddr>,
    headers: [[u8; HEADER_LEN]; MAX_SEGMENTS],
    blocks: [&'s [u8]; MAX_SEGMENTS],
    count: usize,
    /// The bytes gathered so far, every head and block.
    bytes: usize,
    /// The size of every datagram but possibly the last.
    segment_len: usize,
    /// A shorter datagram was added: it must be the last.
    closed: bool,
}

impl<'s> Segments<'s> {
    pub(crate) fn new() -> Self {
        Segments {
            to: None,
            headers: [[0; HEADER_LEN]; MAX_SEGMENTS],
            blocks: [&[]; MAX_SEGMENTS],
            count: 0,
            bytes: 0,
            segment_len: 0,
            closed: false,
        }
    }

    /// Adds the datagram `head` + `transmit.tail` if it can travel with the ones already
    /// gathered; false leaves the batch as it was. Only a DATA block lent by the source (a
    /// 4-byte head and a non-empty tail) is gathered: anything else is sent on its own.
    pub(crate) fn push(&mut self, head: &[u8], transmit: &Transmit<'s>) -> bool {
        let Ok(header) = <[u8; HEADER_LEN]>::try_from(head) else {
            return false;
        };
        let len = transmit.datagram_len();
        if transmit.tail.is_empty() || len > MAX_BYTES || self.count == MAX_SEGMENTS || self.closed
        {
            return false;
        }
        if self.count == 0 {
            self.to = Some(transmit.to);
            self.segment_len = len;
        } else if self.to != Some(transmit.to)
            || len > self.segment_len
            || self.bytes + len > MAX_BYTES
        {
            return false;
        }
        self.closed = len < self.segment_len;
        self.headers[self.count] = header;
        self.blocks[self.count] = transmit.tail;
        self.count += 1;
        self.bytes += len;
        true
    }

    /// The number of datagrams gathered.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Where the datagrams go; `None` while the batch is empty.
    pub(crate) fn to(&self) -> Option<SocketAddr> {
        self.to
    }

    /// The size the kernel cuts the batch at.
    pub(crate) fn segment_len(&self) -> u16 {
        u16::try_from(self.segment_len).unwrap_or(u16::MAX)
    }

    /// Every datagram end to end, as `sendmsg` gathers them: head, block, head, block...
    pub(crate) fn io_slices<'b>(
        &'b self,
        slices: &'b mut [IoSlice<'b>; 2 * MAX_SEGMENTS],
    ) -> &'b [IoSlice<'b>] {
        for (index, (header, block)) in self
            .headers
            .iter()
            .zip(self.blocks)
            .take(self.count)
            .enumerate()
        {
            slices[2 * index] = IoSlice::new(header);
            slices[2 * index + 1] = IoSlice::new(block);
        }
        &slices[..2 * self.count]
    }

    /// Datagram `index` alone: its head and its block.
    pub(crate) fn datagram(&self, index: usize) -> [IoSlice<'_>; 2] {
        [
            IoSlice::new(&self.headers[index]),
            IoSlice::new(self.blocks[index]),
        ]
    }

    /// Empties the batch for the next window.
    pub(crate) fn clear(&mut self) {
        self.to = None;
        self.count = 0;
        self.bytes = 0;
        self.segment_len = 0;
        self.closed = false;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000);
    const OTHER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4001);

    fn block(to: SocketAddr, tail: &[u8]) -> Transmit<'_> {
        Transmit {
            to,
            len: HEADER_LEN,
            tail,
        }
    }

    fn header(number: u8) -> [u8; 4] {
        [0, 3, 0, number]
    }

    fn gathered(segments: &Segments<'_>) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 2 * MAX_SEGMENTS];
        segments
            .io_slices(&mut slices)
            .iter()
            .flat_map(|slice| slice.to_vec())
            .collect()
    }

    #[test]
    fn equal_blocks_to_one_peer_travel_together_and_a_shorter_one_ends_the_batch() {
        let data = vec![7u8; 1024];
        let mut segments = Segments::new();
        assert!(segments.push(&header(1), &block(PEER, &data[..512])));
        assert!(segments.push(&header(2), &block(PEER, &data[..512])));
        assert!(
            segments.push(&header(3), &block(PEER, &data[..100])),
            "the short last block"
        );
        assert!(
            !segments.push(&header(4), &block(PEER, &data[..100])),
            "nothing after it"
        );
        assert_eq!(segments.len(), 3);
        assert_eq!(segments.segment_len(), 516);
        assert_eq!(segments.to(), Some(PEER));
        let mut expected = Vec::new();
        for (number, len) in [(1, 512), (2, 512), (3, 100)] {
            expected.extend_from_slice(&header(number));
            expected.extend_from_slice(&data[..len]);
        }
        assert_eq!(gathered(&segments), expected);
        let single: Vec<u8> = segments
            .datagram(2)
            .iter()
            .flat_map(|slice| slice.to_vec())
            .collect();
        assert_eq!(single, expected[1032..]);
    }

    #[test]
    fn a_longer_block_another_peer_or_a_copied_packet_is_refused() {
        let data = vec![1u8; 1024];
        let mut segments = Segments::new();
        assert!(segments.push(&header(1), &block(PEER, &data[..512])));
        assert!(
            !segments.push(&header(2), &block(PEER, &data[..513])),
            "longer"
        );
        assert!(
            !segments.push(&header(2), &block(OTHER, &data[..512])),
            "another peer"
        );
        assert!(
            !segments.push(&data[..516], &block(PEER, &[])),
            "not lent: all in the buffer"
        );
        assert!(
            !segments.push(&header(2)[..3], &block(PEER, &data[..512])),
            "odd head"
        );
        assert_eq!(segments.len(), 1);
        segments.clear();
        assert_eq!((segments.len(), segments.to()), (0, None));
        assert!(
            segments.push(&header(2), &block(OTHER, &data[..1000])),
            "a fresh batch"
        );
    }

    #[test]
    fn a_batch_stops_at_the_segment_count_and_the_byte_limit() {
        let data = vec![0u8; 65_464];
        let mut segments = Segments::new();
        for number in 0..MAX_SEGMENTS {
            assert!(segments.push(&header(number as u8), &block(PEER, &data[..8])));
        }
        assert!(
            !segments.push(&header(0), &block(PEER, &data[..8])),
            "count"
        );
        segments.clear();
        let mut pushed = 0;
        while segments.push(&header(0), &block(PEER, &data[..8192])) {
            pushed += 1;
        }
        assert_eq!(pushed, MAX_BYTES / (8192 + HEADER_LEN), "bytes");
        segments.clear();
        assert!(segments.push(&header(1), &block(PEER, &data[..65_464])));
        assert!(!segments.push(&header(2), &block(PEER, &data[..65_464])));
    }
}
