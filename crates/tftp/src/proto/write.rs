//! The receiving side of a write request (WRQ): the client sends DATA, the server ACKs.
//!
//! See the `proto` module doc for the acknowledgement rules.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::netascii;
use crate::proto::{
    Closing, Negotiated, Outcome, Stats, StrangerReplies, Transmit, UploadSink, deadline_after,
    sanitize_peer_message, wire_block,
};
use crate::wire::{self, ErrorCode, Packet};

/// How many timeout periods the transfer dallies after the final ACK. One is not enough: a
/// sender whose timeout equals ours retransmits the final DATA about one timeout plus a round
/// trip after sending it, just after a one-period dally would have ended, and would then report
/// a failed upload that is in fact safely on disk.
const DALLY_TIMEOUTS: u32 = 2;

/// One write transfer: an upload received block by block from one peer.
#[derive(Debug)]
pub struct WriteTransfer {
    peer: SocketAddr,
    blksize: u16,
    windowsize: u16,
    timeout: Duration,
    max_retries: u32,
    max_size: u64,
    /// The OACK to send (and resend) until DATA 1 arrives; `None`: ACK 0 instead.
    oack: Option<Vec<(String, String)>>,
    /// Netascii decoding state, for netascii uploads.
    decoder: Option<netascii::Decoder>,
    /// Reused buffer for decoded netascii.
    decoded: Vec<u8>,
    state: State,
    /// The last block received in order (0: none yet).
    received: u64,
    /// In-order blocks received since the last ACK we sent.
    unacked_blocks: u64,
    /// An ACK of `received` (or, before DATA 1, the OACK) is due.
    reply_due: bool,
    /// A duplicate block already caused a re-ACK since the last progress or timeout.
    duplicate_answered: bool,
    /// The current gap (out-of-order block) has already been answered.
    gap_answered: bool,
    /// Receiving: when we resend our last reply. Dallying: when the transfer completes.
    deadline: Instant,
    /// When `handle_committed(Ok)` was called (the start of the dally).
    committed_at: Instant,
    /// Timeouts in a row without progress.
    retries: u32,
    strangers: StrangerReplies,
    stats: Stats,
}

#[derive(Debug)]
enum State {
    /// Taking DATA.
    Receiving,
    /// The final block was appended; waiting for the shell's `handle_committed`.
    Committing,
    /// Committed and the final ACK queued; re-ACKing a retransmitted final block until the
    /// deadline.
    Dallying,
    /// An ERROR to the peer is waiting to be polled out; then the transfer ends.
    Closing(Closing),
    /// Over.
    Finished(Outcome),
}

impl WriteTransfer {
    /// Starts receiving an upload of at most `max_size` bytes (after netascii decoding when
    /// `netascii`). The first reply, the OACK or ACK 0, is queued at once.
    pub fn new(
        peer: SocketAddr,
        negotiated: &Negotiated,
        max_size: u64,
        netascii: bool,
        now: Instant,
    ) -> Self {
        WriteTransfer {
            peer,
            blksize: negotiated.blksize.max(1),
            windowsize: negotiated.windowsize.max(1),
            timeout: negotiated.timeout,
            max_retries: negotiated.max_retries,
            max_size,
            oack: negotiated.oack.clone(),
            decoder: netascii.then(netascii::Decoder::new),
            decoded: Vec::new(),
            state: State::Receiving,
            received: 0,
            unacked_blocks: 0,
            reply_due: true,
            duplicate_answered: false,
            gap_answered: false,
            deadline: deadline_after(now, negotiated.timeout),
            committed_at: now,
            retries: 0,
            strangers: StrangerReplies::default(),
            stats: Stats::default(),
        }
    }

    /// Handles one datagram received on the transfer's socket from `from`; in-order payload
    /// goes to `sink`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        sink: &mut dyn UploadSink,
    ) {
        if from != self.peer {
            self.strangers.on_datagram(&mut self.stats, from, bytes);
            return;
        }
        if !matches!(
            self.state,
            State::Receiving | State::Committing | State::Dallying
        ) {
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
            Packet::Data { block, data } => self.on_data(now, block, data, sink),
            Packet::Error { code, message } => {
                let message = sanitize_peer_message(message);
                tracing::debug!(peer = %self.peer, code, %message, "peer sent ERROR");
                let outcome = if matches!(self.state, State::Dallying) {
                    // The upload is committed and the final ACK sent; the peer's late
                    // complaint does not undo that.
                    Outcome::Completed
                } else {
                    Outcome::PeerError { code, message }
                };
                self.state = State::Finished(outcome);
            }
            other => {
                self.stats.malformed_packets += 1;
                tracing::debug!(peer = %self.peer, packet = other.kind(), "unexpected packet during a write, dropped");
            }
        }
    }

    /// Handles the passing of time: the receiver's own timeout (resend the last reply, give up
    /// after `max_retries`) and the end of the dally. Harmless at any other time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.deadline {
            return;
        }
        match self.state {
            State::Receiving => {
                self.stats.timeouts += 1;
                self.retries += 1;
                if self.retries > self.max_retries {
                    tracing::debug!(peer = %self.peer, received = self.received, "peer stopped sending");
                    self.state = State::Finished(Outcome::TimedOut);
                    return;
                }
                tracing::trace!(peer = %self.peer, received = self.received, retry = self.retries, "timeout, re-acknowledging");
                self.reply_due = true;
                self.duplicate_answered = false;
                self.gap_answered = false;
                self.deadline = deadline_after(now, self.timeout);
            }
            State::Dallying => self.state = State::Finished(Outcome::Completed),
            State::Committing | State::Closing(_) | State::Finished(_) => {}
        }
    }

    /// True once the final DATA has been received and appended: the shell must make the upload
    /// durable and call [`WriteTransfer::handle_committed`] before the final ACK can leave.
    pub fn needs_commit(&self) -> bool {
        matches!(self.state, State::Committing)
    }

    /// The shell's answer to [`WriteTransfer::needs_commit`]. `Ok`: the final ACK is queued and
    /// the transfer dallies two timeout periods (re-ACKing a retransmitted final DATA) before
    /// completing. `Err`: that ERROR is sent and
    /// the outcome is [`Outcome::Failed`]. Ignored unless a commit is pending.
    pub fn handle_committed(&mut self, now: Instant, result: Result<(), (ErrorCode, String)>) {
        if !self.needs_commit() {
            tracing::debug!(peer = %self.peer, "handle_committed without a pending commit, ignored");
            return;
        }
        match result {
            Ok(()) => {
                self.state = State::Dallying;
                self.reply_due = true;
                self.committed_at = now;
                self.deadline = deadline_after(now, self.timeout.saturating_mul(DALLY_TIMEOUTS));
            }
            Err((code, message)) => self.fail(code, &message, message.clone()),
        }
    }

    /// Writes the next datagram to send into `buf` (516 bytes are enough; [`wire::MAX_PACKET`]
    /// always is). Call until it returns `None`.
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<Transmit<'static>> {
        if let Some(transmit) = self.strangers.poll_transmit(buf) {
            return Some(transmit);
        }
        match self.state {
            State::Receiving | State::Dallying if self.reply_due => {
                self.reply_due = false;
                if self.received == 0
                    && let Some(oack) = &self.oack
                {
                    // Before DATA 1 the OACK stands in for ACK 0 (RFC 2347).
                    let options = oack
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect();
                    return match (Packet::Oack { options }).emit(buf) {
                        Ok(len) => Some(Transmit::in_buffer(self.peer, len)),
                        Err(error) => {
                            let message = format!("cannot emit OACK: {error}");
                            self.fail(ErrorCode::NotDefined, "internal error", message);
                            self.poll_closing(buf)
                        }
                    };
                }
                let len = wire::emit_ack(buf, wire_block(self.received))?;
                self.unacked_blocks = 0;
                self.stats.acks_sent += 1;
                tracing::trace!(peer = %self.peer, block = self.received, "ACK");
                Some(Transmit::in_buffer(self.peer, len))
            }
            State::Closing(_) => self.poll_closing(buf),
            State::Receiving | State::Dallying | State::Committing | State::Finished(_) => None,
        }
    }

    /// The next time [`WriteTransfer::handle_timeout`] has something to do; `None` while
    /// waiting for a commit and once the transfer is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Receiving | State::Dallying => Some(self.deadline),
            State::Committing | State::Closing(_) | State::Finished(_) => None,
        }
    }

    /// Ends the transfer: an ERROR with `code` and `message` is queued for the peer, and the
    /// outcome is [`Outcome::Aborted`] once it has been polled out. No-op once the transfer is
    /// over.
    ///
    /// While dallying the upload is already committed and acknowledged, so no ERROR is sent:
    /// the dally is cut short (after the final ACK, if it has not been polled out yet) and the
    /// outcome is [`Outcome::Completed`].
    pub fn abort(&mut self, code: ErrorCode, message: &str) {
        match self.state {
            State::Receiving | State::Committing => {
                self.state = State::Closing(Closing {
                    code,
                    wire_message: message.to_owned(),
                    outcome: Outcome::Aborted,
                });
            }
            State::Dallying if self.reply_due => self.deadline = self.committed_at,
            State::Dallying => self.state = State::Finished(Outcome::Completed),
            State::Closing(_) | State::Finished(_) => {}
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

    fn on_data(&mut self, now: Instant, block: u16, data: &[u8], sink: &mut dyn UploadSink) {
        let ahead = block.wrapping_sub(wire_block(self.received));
        match self.state {
            State::Receiving => {}
            State::Dallying if ahead == 0 => {
                // The sender did not get our final ACK: send it again.
                self.stats.duplicate_blocks += 1;
                self.reply_due = true;
                return;
            }
            _ => {
                // The upload is complete (committing or committed): nothing can change it now.
                self.stats.duplicate_blocks += 1;
                tracing::trace!(peer = %self.peer, block, "DATA while committing or dallying, ignored");
                return;
            }
        }
        if data.len() > usize::from(self.blksize) {
            let message = format!(
                "DATA block of {} bytes exceeds the negotiated blksize {}",
                data.len(),
                self.blksize
            );
            self.fail(
                ErrorCode::IllegalOperation,
                "block larger than blksize",
                message,
            );
            return;
        }
        if ahead == 1 {
            self.on_in_order(now, data, sink);
        } else if ahead == 0 || ahead >= 0x8000 {
            // Already received: the sender may have lost our ACK.
            self.stats.duplicate_blocks += 1;
            if !self.duplicate_answered {
                self.duplicate_answered = true;
                self.reply_due = true;
            }
            tracing::trace!(peer = %self.peer, block, received = self.received, "duplicate DATA");
        } else {
            // A gap: drop the block and tell the sender where we are, once per gap (RFC 7440).
            self.stats.out_of_order_blocks += 1;
            if !self.gap_answered {
                self.gap_answered = true;
                self.reply_due = true;
            }
            tracing::trace!(peer = %self.peer, block, received = self.received, "out-of-order DATA dropped");
        }
    }

    fn on_in_order(&mut self, now: Instant, data: &[u8], sink: &mut dyn UploadSink) {
        let is_final = data.len() < usize::from(self.blksize);
        let result = match &mut self.decoder {
            None => append_limited(sink, data, &mut self.stats.bytes, self.max_size),
            Some(decoder) => {
                self.decoded.clear();
                decoder.decode(data, &mut self.decoded);
                if is_final {
                    decoder.finish(&mut self.decoded);
                }
                append_limited(sink, &self.decoded, &mut self.stats.bytes, self.max_size)
            }
        };
        if let Err(failure) = result {
            let (code, wire_message, log_message) = match failure {
                AppendFailure::TooLarge => (
                    ErrorCode::DiskFull,
                    "upload exceeds the maximum size".to_owned(),
                    format!("upload exceeds the maximum size of {} bytes", self.max_size),
                ),
                AppendFailure::Io(error) => {
                    let code = match error.kind() {
                        io::ErrorKind::StorageFull
                        | io::ErrorKind::QuotaExceeded
                        | io::ErrorKind::FileTooLarge => ErrorCode::DiskFull,
                        _ => ErrorCode::NotDefined,
                    };
                    (
                        code,
                        "write error".to_owned(),
                        format!("write error: {error}"),
                    )
                }
            };
            self.fail(code, &wire_message, log_message);
            return;
        }
        self.received += 1;
        self.unacked_blocks += 1;
        self.retries = 0;
        self.duplicate_answered = false;
        self.gap_answered = false;
        self.deadline = deadline_after(now, self.timeout);
        if is_final {
            tracing::trace!(peer = %self.peer, blocks = self.received, "final block received, awaiting commit");
            self.reply_due = false;
            self.state = State::Committing;
        } else if self.unacked_blocks >= u64::from(self.windowsize) {
            self.reply_due = true;
        }
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

    fn fail(&mut self, code: ErrorCode, wire_message: &str, log_message: String) {
        tracing::debug!(peer = %self.peer, %code, message = %log_message, "upload failed");
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

enum AppendFailure {
    TooLarge,
    Io(io::Error),
}

/// Appends `data` to `sink` unless that would take `written` past `max_size`.
fn append_limited(
    sink: &mut dyn UploadSink,
    data: &[u8],
    written: &mut u64,
    max_size: u64,
) -> Result<(), AppendFailure> {
    let total = written.saturating_add(data.len() as u64);
    if total > max_size {
        return Err(AppendFailure::TooLarge);
    }
    if !data.is_empty() {
        sink.append(data).map_err(AppendFailure::Io)?;
    }
    *written = total;
    Ok(())
}
