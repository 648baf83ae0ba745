//! The sans-IO TFTP transfer engine: option negotiation and one state machine per direction.
//!
//! Nothing in this module touches a socket, a clock or a file. The shell hands it datagrams, the
//! current time (as a [`std::time::Instant`] it read itself) and, for reads, a [`BlockSource`];
//! it gets back datagrams to send ([`Transmit`], written into the shell's buffer), the next
//! deadline, and finally an [`Outcome`]. The same inputs always give the same outputs, which is
//! what lets `proto::tests` replay loss, duplication, reordering and timeouts on a virtual clock.
//!
//! # Driving a transfer (quinn-proto's order)
//!
//! 1. Negotiate: [`negotiate_read`] / [`negotiate_write`] turn the request's RFC 2347 options and
//!    the server's [`Settings`] into a [`Negotiated`] (and the OACK to send, if any).
//! 2. Create the transfer with [`ReadTransfer::new`] / [`WriteTransfer::new`], then loop:
//!    - drain `poll_transmit` until it returns `None`, sending each [`Transmit`] from the
//!      transfer's own socket (`buf[..len]` to `to`);
//!    - if `outcome()` is `Some`, the transfer is over: log it and drop the transfer;
//!    - for a write, if `needs_commit()` is true: fsync and rename the upload, then call
//!      `handle_committed` (the final ACK leaves only after that);
//!    - wait for a datagram (`handle_datagram`) or until `poll_timeout()` (`handle_timeout`;
//!      calling it early or late is harmless, it acts on the time it is given).
//!
//! # Decisions where the RFCs leave room
//!
//! - A datagram from any address or port other than the peer's gets ERROR 5 (unknown transfer
//!   ID) sent back to that source and changes nothing else (RFC 1350 section 4). An ERROR from a
//!   stranger is not answered (errors are never acknowledged), and at most a few such replies are
//!   queued at once, so a flood cannot grow memory.
//! - A packet from the peer that does not parse, or that makes no sense in this direction (a
//!   request, an OACK, DATA during a read, ACK during an upload), is dropped with a debug log and
//!   counted in [`Stats::malformed_packets`]. RFC 1350 lets a host end the transfer on a packet
//!   that "cannot be explained", but a single stray packet must not kill an otherwise healthy
//!   transfer; the retry limit bounds what a confused peer costs. The exceptions are the ERRORs
//!   the RFCs ask for: DATA larger than the negotiated blksize gets ERROR 4, and an upload past
//!   its size limit gets ERROR 3.
//! - Any ERROR from the peer ends the transfer at once with [`Outcome::PeerError`] and nothing is
//!   sent back (RFC 1350; RFC 2347 uses ERROR 8 for a refused OACK).
//! - `max_retries` counts retransmissions: after a timeout with no progress the transfer
//!   retransmits, up to `max_retries` times in a row; the next timeout ends it with
//!   [`Outcome::TimedOut`]. So a dead peer is given up at most `(max_retries + 1) * timeout`
//!   after the last packet sent (which pacing may delay by up to a quarter timeout after the
//!   last progress). No ERROR is sent on giving up (the peer is presumably gone).
//! - Confirmation (reads; no RFC asks for it, it keeps the server from being a reflection
//!   amplifier): a read transfer is unconfirmed until its peer acknowledges something (ACK 0
//!   of the OACK, or an ACK of a DATA block it was sent). Anyone can forge an RRQ's source
//!   address, but only the real peer sees the transfer's packets. An unconfirmed transfer
//!   sends its first packet (DATA 1 or the OACK) once, and resends it only when the shell
//!   reports the same request arriving again from the same address and port
//!   ([`ReadTransfer::handle_repeated_request`]): RFC 1350 clients, PXE ROMs, tftp-hpa, curl
//!   and atftp repeat their RRQ on timeout, so one packet goes out per packet that came in. Its
//!   window is one block. Its timeouts still count against `max_retries`, and it ends with
//!   [`Outcome::Unconfirmed`] (no ERROR) when the budget is spent. After the first ACK
//!   everything below applies as written. Confirmation is per transfer: a peer that confirmed
//!   one transfer earns nothing for the next, since a forged RRQ can carry its address.
//! - `abort` (shutdown) queues the ERROR the shell asks for and reports [`Outcome::Aborted`]
//!   once it is out; an upload that is already committed and dallying is not aborted but
//!   completes (its final ACK still goes out, no ERROR follows).
//! - Block numbers are 16 bits on the wire and roll over from 65535 to 0, as tftp-hpa, curl and
//!   atftp expect; internally every block is a `u64` counted from 1, so any file transfers at
//!   any blksize.
//!
//! # Windowed reads and pacing (RFC 7440)
//!
//! The read side sends a whole window of `windowsize` blocks, then waits for an ACK:
//!
//! - An ACK of the window's last block opens the next window.
//! - An ACK of an earlier block of the window means the receiver saw a gap: the sender goes back
//!   to the block after it and sends a full window from there (go-back-N). This happens once per
//!   distinct ACK: an ACK equal to the highest one seen, or below it (stale), is counted in
//!   [`Stats::duplicate_acks`] and ignored. Duplicate ACKs never cause a retransmission, so the
//!   Sorcerer's Apprentice syndrome cannot start here.
//! - On a timeout with no progress the sender resends from the first unacknowledged block. It
//!   always resends a full window (fewer only at the end of the file): receivers such as atftp
//!   0.8 ACK only after a full window or on their own timeout, so a shorter burst would leave
//!   them waiting for a timeout on every loss.
//! - Pacing: a loss signal (an ACK inside the window, or a timeout) starts or doubles a gap
//!   between the DATA packets of a window: 50 µs at first, doubling up to 4 ms, and never so
//!   large that a whole window takes more than a quarter of the retransmission timeout (which
//!   would make a receiver's own timer fire mid-window). Each window acknowledged in full halves
//!   the gap; below 50 µs it drops to zero. The first block of a window always leaves at once;
//!   while a paced block is not yet due, `poll_transmit` returns `None` and `poll_timeout`
//!   reports when it is. On a lossy link this spreads a window out instead of resending it
//!   again and again in a burst the receiver's socket buffer cannot hold.
//! - The window granted in the OACK is capped so that a whole window fits the receiver's socket
//!   buffer: `(windowsize - 1) * datagram_memory_cost(blksize)` stays within
//!   [`Settings::receive_buffer_budget`] (192 KiB by default, just under the 208 KiB a default
//!   Linux socket receive buffer holds; atftpd and atftp stall when a window overflows it),
//!   never below 1. The kernel charges a datagram by its buffer allocation, not its payload
//!   (an 8 KiB block costs about 16 KiB), so `windowsize * blksize` alone would overflow the
//!   buffer at large blksizes: measured on loopback, an atftp client lost the 13th block of a
//!   16 x 8192 window every time. The kernel admits a datagram while the buffer holds less
//!   than its limit, so only the datagrams before the last one must fit. The grants: blksize
//!   512 and 1468 get the configured maximum (64), 8192 gets 12, 65464 gets 3 (a datagram of
//!   16 KiB or more is charged at about its size, not a power of two).
//! - A paced block that is due is scheduled from when it was due, not from when it left: the
//!   shell's timers fire late (tokio's resolution is a millisecond, coarser than a gap of tens
//!   of microseconds), so the late blocks leave together and the average rate holds. Lateness
//!   beyond 2 ms is forgotten rather than caught up in one burst.
//!
//! The write side ACKs every block at windowsize 1; at a larger window it ACKs after a full
//! window, at the final block, and on its own timeout (the last in-order block). An out-of-order
//! block is dropped and answered at once with an ACK of the last in-order block (once per gap);
//! a block it already has is answered with the same ACK (once until the next progress or
//! timeout, so a resent window does not trigger a burst of identical ACKs). The final block is
//! not acknowledged until the shell has committed the upload (`needs_commit` /
//! `handle_committed`); then the transfer dallies to re-ACK a retransmitted final DATA, and
//! completes. The dally lasts two timeout periods, not one: a sender with the same timeout as
//! ours retransmits a lost final block one timeout plus a round trip after sending it, which is
//! just after a one-period dally would have ended.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::{self, ErrorCode};

mod options;
mod read;
mod write;

#[cfg(test)]
mod tests;

pub use options::{negotiate_read, negotiate_write};
pub use read::ReadTransfer;
pub use write::WriteTransfer;

/// The default for [`Settings::receive_buffer_budget`]: a little under the 212,992 bytes a
/// default Linux socket receive buffer (`net.core.rmem_default`) holds.
pub const DEFAULT_RECEIVE_BUFFER_BUDGET: usize = 192 * 1024;

/// What one DATA datagram of `blksize` costs in a Linux receive buffer (its truesize). A
/// datagram of up to about 16 KiB is built in one allocation, charged at its size rounded up
/// to a power of two (payload, TFTP/UDP/IP headers and the shared info) plus the socket buffer
/// head. A larger one gets a small head and its payload in page fragments, charged at about its
/// size: on loopback, 16,388 bytes of UDP payload cost 17,220 and 65,468 cost 66,300.
pub fn datagram_memory_cost(blksize: u16) -> usize {
    const HEADERS_AND_SHARED_INFO: usize = 4 + 8 + 40 + 320;
    const SKB_HEAD: usize = 256;
    // The kernel switches to fragments a little below 16 KiB of payload (SKB_MAX_ALLOC, less
    // headers); from 16 KiB on it is certain, and the few sizes just below are costed as one
    // allocation, the larger of the two.
    const PAGED_FROM: u16 = 16 * 1024;
    const PAGED_OVERHEAD: usize = 4 + 832;
    // Small datagrams come from a cache of 576-byte heads (Linux 6.3 on): a 12-byte datagram
    // costs 832.
    const SMALL_HEAD: usize = 576;
    if blksize >= PAGED_FROM {
        usize::from(blksize) + PAGED_OVERHEAD
    } else {
        (usize::from(blksize) + HEADERS_AND_SHARED_INFO)
            .next_power_of_two()
            .max(SMALL_HEAD)
            + SKB_HEAD
    }
}

/// The file a read transfer serves, read by position. The shell implements it over an
/// already-confined file (or a shared cache); for netascii it serves the encoded bytes.
pub trait BlockSource {
    /// The number of bytes the transfer will send.
    fn len(&self) -> u64;

    /// True when [`BlockSource::len`] is 0.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads bytes at `offset` into `buf`, filling as much of it as possible. A short read
    /// happens only at the end of the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// The `len` bytes at `offset` in place, when the source holds them in memory; `None` (the
    /// default) makes the transfer copy them with [`BlockSource::read_at`] instead.
    fn lend(&self, _offset: u64, _len: usize) -> Option<&[u8]> {
        None
    }
}

/// Where an upload goes. It receives the payload in order, after netascii decoding.
pub trait UploadSink {
    /// Appends the next bytes of the file.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
}

impl BlockSource for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.as_slice().read_at(offset, buf)
    }

    fn lend(&self, offset: u64, len: usize) -> Option<&[u8]> {
        lend_from(self, offset, len)
    }
}

impl BlockSource for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let available = self.get(start..).unwrap_or_default();
        let n = available.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn lend(&self, offset: u64, len: usize) -> Option<&[u8]> {
        lend_from(self, offset, len)
    }
}

/// `bytes[offset..offset + len]`, or `None` when that range is not all there.
fn lend_from(bytes: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

impl UploadSink for Vec<u8> {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
}

/// Per-request server limits, from the config and the path MTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The largest blksize to grant, already clamped by the shell to the path MTU and the config.
    pub max_blksize: u16,
    /// The largest windowsize to grant (config cap).
    pub max_windowsize: u16,
    /// A granted window's datagrams must fit in this much receive buffer on the client,
    /// counted with [`datagram_memory_cost`]; the window is never below 1
    /// ([`DEFAULT_RECEIVE_BUFFER_BUDGET`]).
    pub receive_buffer_budget: usize,
    /// The retransmission timeout when the client sends no `timeout` option.
    pub default_timeout: Duration,
    /// Retransmissions in a row, without progress, before a transfer gives up.
    pub max_retries: u32,
    /// The largest upload accepted, in bytes (also checked against a declared tsize).
    pub max_upload_size: u64,
}

/// What negotiation settled for one transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Bytes per DATA block.
    pub blksize: u16,
    /// Blocks per window (1: RFC 1350 lock-step).
    pub windowsize: u16,
    /// The retransmission timeout.
    pub timeout: Duration,
    /// The transfer size announced in the OACK (the file length on reads, the client's declared
    /// size on writes); `None` when no tsize is in the OACK.
    pub tsize: Option<u64>,
    /// The options to put in the OACK, in the order the client sent them, with the client's
    /// spelling of each name. `None`: no OACK; the transfer starts the plain RFC 1350 way.
    pub oack: Option<Vec<(String, String)>>,
    /// Copied from [`Settings::max_retries`], so that a transfer needs nothing but this.
    pub max_retries: u32,
}

/// Why a write request is refused before any data moves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (TFTP error {code})")]
pub struct Refusal {
    /// The ERROR code to answer the request with.
    pub code: ErrorCode,
    /// The message for the ERROR packet and the log.
    pub message: String,
}

/// One datagram to send: `buf[..len]` of the buffer passed to `poll_transmit`, followed by
/// `tail`.
///
/// `tail` holds a DATA block's payload when the [`BlockSource`] lends it in place
/// ([`BlockSource::lend`]), so that a block served from the shared cache goes from the cache to
/// the socket without a copy on the way; it is empty otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit<'a> {
    /// The destination: the peer, or a stranger being told ERROR 5.
    pub to: SocketAddr,
    /// The length of the datagram's head at the front of the buffer.
    pub len: usize,
    /// The rest of the datagram, lent by the source.
    pub tail: &'a [u8],
}

impl<'a> Transmit<'a> {
    /// A datagram that lies wholly in the buffer.
    fn in_buffer(to: SocketAddr, len: usize) -> Self {
        Transmit { to, len, tail: &[] }
    }

    /// The length of the whole datagram on the wire.
    pub fn datagram_len(&self) -> usize {
        self.len + self.tail.len()
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte was delivered (read: the final block was ACKed; write: committed, ACKed,
    /// dallied).
    Completed,
    /// The peer sent an ERROR. The message is sanitized (lossy UTF-8, no control characters,
    /// truncated): it came from the network.
    PeerError {
        /// The raw error code.
        code: u16,
        /// The sanitized message.
        message: String,
    },
    /// The peer stopped answering: `max_retries` retransmissions in a row went unanswered.
    TimedOut,
    /// A read whose peer never acknowledged anything nor repeated its request within the
    /// timeout budget: possibly a forged request, given up without a word.
    Unconfirmed,
    /// We ended the transfer and sent an ERROR with `code`; `message` is for the log and may
    /// say more than the ERROR packet did.
    Failed {
        /// The code sent to the peer.
        code: ErrorCode,
        /// Why, for the log.
        message: String,
    },
    /// The shell called `abort`; the ERROR it asked for was sent.
    Aborted,
}

/// Counters for the per-transfer log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// File bytes delivered: acknowledged by the peer (reads) or appended to the sink (writes).
    pub bytes: u64,
    /// DATA packets sent, retransmissions included (reads).
    pub blocks_sent: u64,
    /// DATA packets sent more than once (reads).
    pub retransmitted_blocks: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u32,
    /// ACKs that did not advance the transfer: repeats and stale ones (reads).
    pub duplicate_acks: u64,
    /// Datagrams from a source other than the peer (each answered with ERROR 5).
    pub unknown_tid_packets: u64,
    /// Datagrams from the peer that did not parse or made no sense here (dropped).
    pub malformed_packets: u64,
    /// DATA blocks received that were already received (writes).
    pub duplicate_blocks: u64,
    /// DATA blocks received ahead of a gap and dropped (writes).
    pub out_of_order_blocks: u64,
    /// ACKs sent (writes), the OACK excluded.
    pub acks_sent: u64,
    /// Repeats of the request that reached the transfer (reads).
    pub repeated_requests: u64,
}

/// How many ERROR 5 replies to strangers may wait to be polled out; more are dropped.
const MAX_QUEUED_STRANGER_REPLIES: usize = 8;

/// The longest peer ERROR message kept, in bytes.
const MAX_PEER_MESSAGE: usize = 200;

/// ERROR 5 replies waiting to go to sources that are not the peer.
#[derive(Debug, Default)]
struct StrangerReplies {
    queue: std::collections::VecDeque<SocketAddr>,
}

impl StrangerReplies {
    /// Records a datagram from `from`, which is not the peer, and queues ERROR 5 unless it is
    /// itself an ERROR (errors are never answered).
    fn on_datagram(&mut self, stats: &mut Stats, from: SocketAddr, bytes: &[u8]) {
        stats.unknown_tid_packets += 1;
        let is_error = matches!(wire::Packet::parse(bytes), Ok(wire::Packet::Error { .. }));
        tracing::debug!(%from, is_error, "datagram from an unknown transfer ID");
        if !is_error && self.queue.len() < MAX_QUEUED_STRANGER_REPLIES {
            self.queue.push_back(from);
        }
    }

    /// Writes the next queued ERROR 5 into `buf`.
    fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit<'static>> {
        let to = self.queue.pop_front()?;
        let len = wire::emit_error(buf, ErrorCode::UnknownTransferId, "unknown transfer ID");
        (len > 0).then(|| Transmit::in_buffer(to, len))
    }
}

/// An ERROR to send to the peer, and the outcome to report once it has been sent.
#[derive(Debug)]
struct Closing {
    code: ErrorCode,
    wire_message: String,
    outcome: Outcome,
}

impl Closing {
    fn emit(&self, peer: SocketAddr, buf: &mut [u8]) -> Option<Transmit<'static>> {
        let len = wire::emit_error(buf, self.code, &self.wire_message);
        (len > 0).then(|| Transmit::in_buffer(peer, len))
    }
}

/// `now + duration`, saturating at `now` if the sum is not representable.
fn deadline_after(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or(now)
}

/// Makes a peer's ERROR message safe to log: lossy UTF-8, control characters replaced,
/// truncated.
fn sanitize_peer_message(message: &[u8]) -> String {
    let cut = message.get(..MAX_PEER_MESSAGE).unwrap_or(message);
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The 16-bit wire number of an internal (u64, counted from 1) block number.
fn wire_block(block: u64) -> u16 {
    (block & 0xffff) as u16
}
