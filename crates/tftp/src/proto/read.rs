//! The sending side of a read request (RRQ): the server sends DATA, the client ACKs.
//!
//! See the `proto` module doc for the windowing and pacing rules.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::{
    BlockSource, Closing, Negotiated, Outcome, Stats, StrangerReplies, Transmit, deadline_after,
    sanitize_peer_message, wire_block,
};
use crate::wire::{self, ErrorCode, HEADER_LEN, Packet};

/// The first inter-packet gap after a loss.
const PACING_INITIAL_GAP: Duration = Duration::from_micros(50);
/// The largest inter-packet gap.
const PACING_MAX_GAP: Duration = Duration::from_millis(4);
/// How late a paced block may be and still be caught up from its due time.
const PACING_MAX_LAG: Duration = Duration::from_millis(2);

/// One read transfer: a file sent block by block to one peer.
#[derive(Debug)]
pub struct ReadTransfer {
    peer: SocketAddr,
    blksize: u16,
    windowsize: u16,
    timeout: Duration,
    max_retries: u32,
    file_len: u64,
    /// The number of the final block (the short one, possibly empty), counting from 1.
    last_block: u64,
    /// The OACK to send and resend until ACK 0 arrives; `None` for a plain RFC 1350 start.
    oack: Option<Vec<(String, String)>>,
    state: State,
    /// The highest block the peer has acknowledged (0: none yet).
    acked: u64,
    /// The highest block ever sent.
    highest_sent: u64,
    /// The next block to send in the current window.
    next_to_send: u64,
    /// The last block of the current window.
    window_end: u64,
    /// The OACK is due to be (re)sent.
    oack_due: bool,
    /// When the current window, or the OACK, is given up on and resent.
    retransmit_at: Instant,
    /// When the next paced DATA of the current window may leave (`None`: now).
    next_send_at: Option<Instant>,
    /// The current pacing gap between DATA packets of a window.
    gap: Duration,
    /// Timeouts in a row without progress.
    retries: u32,
    /// The peer has acknowledged something (ACK 0 of the OACK, or a DATA block). Until then
    /// the request may have been forged: nothing is resent on our own timer.
    confirmed: bool,
    strangers: StrangerReplies,
    stats: Stats,
}

#[derive(Debug)]
enum State {
    /// The OACK was sent; waiting for ACK 0.
    AwaitingOackAck,
    /// Sending windows of DATA.
    Sending,
    /// An ERROR to the peer is waiting to be polled out; then the transfer ends.
    Closing(Closing),
    /// Over.
    Finished(Outcome),
}

impl ReadTransfer {
    /// Starts sending a file of `file_len` bytes (the length the source will serve) to `peer`.
    /// With an OACK in `negotiated`, the OACK goes first and DATA 1 waits for ACK 0; otherwise
    /// DATA 1 goes at once.
    pub fn new(peer: SocketAddr, negotiated: &Negotiated, file_len: u64, now: Instant) -> Self {
        let blksize = negotiated.blksize.max(1);
        let windowsize = negotiated.windowsize.max(1);
        let last_block = file_len / u64::from(blksize) + 1;
        let mut transfer = ReadTransfer {
            peer,
            blksize,
            windowsize,
            timeout: negotiated.timeout,
            max_retries: negotiated.max_retries,
            file_len,
            last_block,
            oack: negotiated.oack.clone(),
            state: State::AwaitingOackAck,
            acked: 0,
            highest_sent: 0,
            next_to_send: 1,
            window_end: 0,
            oack_due: false,
            retransmit_at: deadline_after(now, negotiated.timeout),
            next_send_at: None,
            gap: Duration::ZERO,
            retries: 0,
            confirmed: false,
            strangers: StrangerReplies::default(),
            stats: Stats::default(),
        };
        if transfer.oack.is_some() {
            transfer.oack_due = true;
        } else {
            transfer.state = State::Sending;
            transfer.open_window(now);
        }
        transfer
    }

    /// Handles one datagram received on the transfer's socket from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if from != self.peer {
            self.strangers.on_datagram(&mut self.stats, from, bytes);
            return;
        }
        if !matches!(self.state, State::AwaitingOackAck | State::Sending) {
            tracing::trace!("datagram after the transfer ended, ignored");
            return;
        }
        let packet = match Packet::parse(bytes) {
            Ok(packet) => packet,
            Err(error) => {
                self.stats.malformed_packets += 1;
                tracing::debug!(peer = %self.peer, %error, len = bytes.len(), "malformed packet dropped");
                return;
            }
        };
        match packet {
            Packet::Ack { block } => self.on_ack(now, block),
            Packet::Error { code, message } => {
                let message = sanitize_peer_message(message);
                tracing::debug!(peer = %self.peer, code, %message, "peer sent ERROR");
                self.state = State::Finished(Outcome::PeerError { code, message });
            }
            other => {
                self.stats.malformed_packets += 1;
                tracing::debug!(peer = %self.peer, packet = other.kind(), "unexpected packet during a read, dropped");
            }
        }
    }

    /// Handles the passing of time: retransmits after `poll_timeout`, gives up after
    /// `max_retries` retransmissions in a row. Harmless at any other time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !matches!(self.state, State::AwaitingOackAck | State::Sending)
            || now < self.retransmit_at
        {
            return;
        }
        self.stats.timeouts += 1;
        self.retries += 1;
        if self.retries > self.max_retries {
            tracing::debug!(peer = %self.peer, acked = self.acked, confirmed = self.confirmed, "peer stopped answering");
            self.state = State::Finished(if self.confirmed {
                Outcome::TimedOut
            } else {
                Outcome::Unconfirmed
            });
            return;
        }
        if !self.confirmed {
            // Only a repeat of the request earns a resend (`handle_repeated_request`).
            self.retransmit_at = deadline_after(now, self.timeout);
            return;
        }
        tracing::trace!(peer = %self.peer, acked = self.acked, retry = self.retries, "timeout, resending");
        self.retransmit_at = deadline_after(now, self.timeout);
        match self.state {
            State::AwaitingOackAck => self.oack_due = true,
            _ => {
                self.on_loss();
                self.open_window(now);
            }
        }
    }

    /// Handles the peer's request arriving again (same source address and port) while this
    /// transfer runs: RFC 1350 clients and PXE ROMs repeat their RRQ when the first DATA or
    /// the OACK does not arrive. Until the peer has acknowledged something, this is the only
    /// thing that resends that first packet; each repeat resends it once. Once confirmed, a
    /// repeat is ignored (the transfer's own timer recovers losses).
    pub fn handle_repeated_request(&mut self, now: Instant) {
        self.stats.repeated_requests += 1;
        if self.confirmed {
            return;
        }
        match self.state {
            State::AwaitingOackAck => self.oack_due = true,
            State::Sending => self.open_window(now),
            State::Closing(_) | State::Finished(_) => return,
        }
        tracing::trace!(peer = %self.peer, "request repeated, resending the first packet");
    }

    /// Whether the peer has acknowledged anything yet (see
    /// [`ReadTransfer::handle_repeated_request`]).
    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }

    /// Writes the next datagram to send into `buf` (at least `4 + blksize` bytes;
    /// [`wire::MAX_PACKET`] is always enough), or its head when the source lends the block in
    /// place (see [`Transmit`]). Call until it returns `None`.
    pub fn poll_transmit<'s>(
        &mut self,
        now: Instant,
        source: &'s dyn BlockSource,
        buf: &mut [u8],
    ) -> Option<Transmit<'s>> {
        if let Some(transmit) = self.strangers.poll_transmit(buf) {
            return Some(transmit);
        }
        match &self.state {
            State::Finished(_) => None,
            State::Closing(_) => self.poll_closing(buf),
            State::AwaitingOackAck => {
                if !self.oack_due {
                    return None;
                }
                self.oack_due = false;
                self.retransmit_at = deadline_after(now, self.timeout);
                let options = self
                    .oack
                    .iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                match (Packet::Oack { options }).emit(buf) {
                    Ok(len) => Some(Transmit::in_buffer(self.peer, len)),
                    Err(error) => {
                        self.fail(
                            ErrorCode::NotDefined,
                            "internal error",
                            format!("cannot emit OACK: {error}"),
                        );
                        self.poll_transmit(now, source, buf)
                    }
                }
            }
            State::Sending => self.poll_data(now, source, buf),
        }
    }

    /// The next time [`ReadTransfer::handle_timeout`] (or, for a paced block,
    /// [`ReadTransfer::poll_transmit`]) has something to do; `None` once the transfer is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingOackAck => Some(self.retransmit_at),
            State::Sending => match self.next_send_at {
                Some(paced) if self.next_to_send <= self.window_end => {
                    Some(paced.min(self.retransmit_at))
                }
                _ => Some(self.retransmit_at),
            },
            State::Closing(_) | State::Finished(_) => None,
        }
    }

    /// Ends the transfer: an ERROR with `code` and `message` is queued for the peer, and the
    /// outcome is [`Outcome::Aborted`] once it has been polled out. No-op once the transfer is
    /// over.
    pub fn abort(&mut self, code: ErrorCode, message: &str) {
        if matches!(self.state, State::AwaitingOackAck | State::Sending) {
            self.state = State::Closing(Closing {
                code,
                wire_message: message.to_owned(),
                outcome: Outcome::Aborted,
            });
        }
    }

    /// How the transfer ended; `None` while it runs (and while a final ERROR waits to be polled).
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state {
            State::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The peer this transfer talks to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Where the next block never sent before lies in the file (offset and length), while
    /// the transfer is running and has one left: what the peer's next ACK will ask for. The
    /// shell can bring those bytes close to the CPU while it waits, as a server reading ahead
    /// does, so that the send after the ACK does not start with a cold copy.
    pub fn upcoming(&self) -> Option<(u64, usize)> {
        if !matches!(self.state, State::AwaitingOackAck | State::Sending) {
            return None;
        }
        let block = self.highest_sent + 1;
        (block <= self.last_block).then(|| self.block_bytes(block))
    }

    /// Sends the final ERROR and finishes with the outcome it was queued with.
    fn poll_closing(&mut self, buf: &mut [u8]) -> Option<Transmit<'static>> {
        match std::mem::replace(&mut self.state, State::Finished(Outcome::Aborted)) {
            State::Closing(closing) => {
                let transmit = closing.emit(self.peer, buf);
                self.state = State::Finished(closing.outcome);
                transmit
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16) {
        if matches!(self.state, State::AwaitingOackAck) {
            if block == 0 {
                tracing::trace!(peer = %self.peer, "OACK acknowledged");
                self.confirmed = true;
                self.retries = 0;
                self.state = State::Sending;
                self.open_window(now);
            } else {
                self.stats.duplicate_acks += 1;
                tracing::debug!(peer = %self.peer, block, "ACK before the OACK was acknowledged, ignored");
            }
            return;
        }
        let outstanding = self.highest_sent - self.acked;
        let ahead = u64::from(block.wrapping_sub(wire_block(self.acked)));
        if ahead == 0 || ahead > outstanding {
            // A repeat of the highest ACK, a stale one from an earlier window, or an ACK of a
            // block never sent: never a reason to send anything (Sorcerer's Apprentice).
            self.stats.duplicate_acks += 1;
            tracing::trace!(peer = %self.peer, block, acked = self.acked, "duplicate or stale ACK ignored");
            return;
        }
        self.acked += ahead;
        self.retries = 0;
        self.confirmed = true;
        self.stats.bytes = self
            .acked
            .saturating_mul(u64::from(self.blksize))
            .min(self.file_len);
        if self.acked >= self.last_block {
            tracing::trace!(peer = %self.peer, blocks = self.acked, "final block acknowledged");
            self.state = State::Finished(Outcome::Completed);
            return;
        }
        if self.acked >= self.window_end {
            self.on_clean_window();
        } else {
            // The receiver saw a gap: go back to the block after its ACK (RFC 7440).
            tracing::trace!(peer = %self.peer, acked = self.acked, window_end = self.window_end, "partial window ACK, going back");
            self.on_loss();
        }
        self.open_window(now);
    }

    /// Where block `block` (counting from 1) lies in the file: its offset and length.
    fn block_bytes(&self, block: u64) -> (u64, usize) {
        let offset = (block - 1) * u64::from(self.blksize);
        let remaining = self.file_len.saturating_sub(offset);
        let len = usize::try_from(remaining.min(u64::from(self.blksize))).unwrap_or(0);
        (offset, len)
    }

    /// Starts a window at the first unacknowledged block, a full window long (or up to the end
    /// of the file), its first block due at once. An unconfirmed transfer's window is one
    /// block: a forged request must not buy a burst.
    fn open_window(&mut self, now: Instant) {
        let windowsize = if self.confirmed { self.windowsize } else { 1 };
        self.next_to_send = self.acked + 1;
        self.window_end = (self.acked + u64::from(windowsize)).min(self.last_block);
        self.next_send_at = None;
        self.retransmit_at = deadline_after(now, self.timeout);
    }

    fn on_loss(&mut self) {
        self.gap = if self.gap.is_zero() {
            PACING_INITIAL_GAP
        } else {
            self.gap.saturating_mul(2).min(PACING_MAX_GAP)
        };
        tracing::trace!(peer = %self.peer, gap_us = self.gap.as_micros(), "loss: pacing gap increased");
    }

    fn on_clean_window(&mut self) {
        let halved = self.gap / 2;
        self.gap = if halved < PACING_INITIAL_GAP {
            Duration::ZERO
        } else {
            halved
        };
    }

    /// The gap actually applied: never so large that a window takes more than a quarter of the
    /// timeout.
    fn effective_gap(&self) -> Duration {
        let cap = self.timeout / 4 / u32::from(self.windowsize);
        self.gap.min(cap)
    }

    fn poll_data<'s>(
        &mut self,
        now: Instant,
        source: &'s dyn BlockSource,
        buf: &mut [u8],
    ) -> Option<Transmit<'s>> {
        if self.next_to_send > self.window_end {
            return None;
        }
        if let Some(paced) = self.next_send_at
            && now < paced
        {
            return None;
        }
        let block = self.next_to_send;
        let (offset, len) = self.block_bytes(block);
        let lent = source
            .lend(offset, len)
            .filter(|tail| <[u8]>::len(tail) == len);
        let in_buffer = if lent.is_some() { 0 } else { len };
        let Some(payload) = buf.get_mut(HEADER_LEN..HEADER_LEN + in_buffer) else {
            self.fail(
                ErrorCode::NotDefined,
                "internal error",
                format!(
                    "transmit buffer of {} bytes is too small for blksize {}",
                    buf.len(),
                    self.blksize
                ),
            );
            return self.poll_transmit(now, source, buf);
        };
        // A lent block leaves `payload` empty: there is nothing to read.
        match read_exact_at(source, offset, payload) {
            Ok(()) => {}
            Err(error) => {
                tracing::debug!(peer = %self.peer, %error, offset, "source read failed");
                self.fail(
                    ErrorCode::NotDefined,
                    "read error",
                    format!("read error: {error}"),
                );
                return self.poll_transmit(now, source, buf);
            }
        }
        wire::emit_data_header(buf, wire_block(block))?;
        self.stats.blocks_sent += 1;
        if block <= self.highest_sent {
            self.stats.retransmitted_blocks += 1;
        }
        self.highest_sent = self.highest_sent.max(block);
        self.next_to_send = block + 1;
        self.retransmit_at = deadline_after(now, self.timeout);
        let gap = self.effective_gap();
        // Schedule from the due time, so that a late timer releases the late blocks together
        // and the average rate holds; forget lateness beyond PACING_MAX_LAG.
        let base = match self.next_send_at {
            Some(due) if now.saturating_duration_since(due) <= PACING_MAX_LAG => due,
            _ => now,
        };
        self.next_send_at = (!gap.is_zero() && self.next_to_send <= self.window_end)
            .then(|| deadline_after(base, gap));
        tracing::trace!(peer = %self.peer, block, len, "DATA");
        Some(Transmit {
            to: self.peer,
            len: HEADER_LEN + in_buffer,
            tail: lent.unwrap_or_default(),
        })
    }

    fn fail(&mut self, code: ErrorCode, wire_message: &str, log_message: String) {
        self.state = State::Closing(Closing {
            code,
            wire_message: wire_message.to_owned(),
            outcome: Outcome::Failed {
                code,
                message: log_message,
            },
        });
    }
}

/// Fills `buf` from `source` at `offset`; a short read (the file shrank) is an error.
fn read_exact_at(source: &dyn BlockSource, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            return Ok(());
        }
        match source.read_at(offset + filled as u64, rest) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shorter than its announced length",
                ));
            }
            Ok(n) => filled += n.min(rest.len()),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
