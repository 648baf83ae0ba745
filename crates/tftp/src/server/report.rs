//! What a finished transfer reports: one info line with its figures, or, for refusals and
//! reads never acknowledged (possibly forged), a line at a bounded rate.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, info};

use super::admission::Tally;
use super::{Direction, now};
use crate::proto::{Negotiated, Outcome, Stats};

/// What one finished transfer reports in its log line.
pub(super) struct Report {
    pub(super) file: String,
    pub(super) bytes: u64,
    pub(super) negotiated: Option<Negotiated>,
    pub(super) stats: Option<Stats>,
    pub(super) outcome: String,
    pub(super) success: bool,
    /// A read whose client never acknowledged anything: possibly a forged request, logged at
    /// a bounded rate.
    pub(super) unconfirmed: bool,
    /// Refused before any data moved (missing file, access violation, ...): logged at a
    /// bounded rate, since the request may have been forged.
    pub(super) refused: bool,
    pub(super) kept_previous_as: Option<String>,
    /// When the data was safely stored (an upload's commit); the dally after the final ACK is
    /// not part of the transfer's duration or rate.
    pub(super) stored_at: Option<Instant>,
}

impl Report {
    pub(super) fn refused(file: String, reason: String) -> Self {
        Report {
            file,
            bytes: 0,
            negotiated: None,
            stats: None,
            outcome: reason,
            success: false,
            unconfirmed: false,
            refused: true,
            kept_previous_as: None,
            stored_at: None,
        }
    }
}

pub(super) fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Completed => "completed".into(),
        Outcome::PeerError { code, message } => {
            format!("peer sent ERROR {code}: {}", message.escape_debug())
        }
        Outcome::TimedOut => "timed out".into(),
        Outcome::Unconfirmed => "never acknowledged, request not repeated".into(),
        Outcome::Failed { code, message } => {
            format!("failed, sent ERROR {}: {message}", *code as u16)
        }
        Outcome::Aborted => "aborted".into(),
    }
}

/// A client-supplied name made safe for a log line.
pub(super) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]);
    text.escape_debug().to_string()
}
/// Writes the transfer's one log line (refusals and unconfirmed reads at a bounded rate).
pub(super) fn log(
    tally: &Tally,
    peer: SocketAddr,
    direction: Direction,
    report: &Report,
    started: Instant,
) {
    let elapsed = report
        .stored_at
        .unwrap_or_else(now)
        .saturating_duration_since(started);
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        report.bytes as f64 / seconds / 1_000_000.0
    } else {
        0.0
    };
    let (blksize, windowsize, timeout_s, tsize) =
        report.negotiated.as_ref().map_or((0, 0, 0, None), |n| {
            (n.blksize, n.windowsize, n.timeout.as_secs(), n.tsize)
        });
    let (retransmitted, timeouts) = report
        .stats
        .as_ref()
        .map_or((0, 0), |s| (s.retransmitted_blocks, s.timeouts));
    let tsize = tsize.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    let kept = report.kept_previous_as.as_deref().unwrap_or("-");
    if report.unconfirmed {
        if tally.ended_unconfirmed.note() {
            info!(peer = %peer, file = %report.file, duration_ms = elapsed.as_millis() as u64, outcome = %report.outcome,
                "tftp read never acknowledged, given up (further ones in this period are counted in the admission summary)");
        } else {
            debug!(peer = %peer, file = %report.file, duration_ms = elapsed.as_millis() as u64, outcome = %report.outcome,
                "tftp read never acknowledged, given up");
        }
        return;
    }
    if report.refused {
        if tally.refused_request.note() {
            info!(peer = %peer, file = %report.file, direction = direction.as_str(), outcome = %report.outcome,
                "tftp request refused (further refusals in this period are counted in the admission summary)");
        } else {
            debug!(peer = %peer, file = %report.file, direction = direction.as_str(), outcome = %report.outcome,
                "tftp request refused");
        }
        return;
    }
    if report.success {
        info!(
            peer = %peer, file = %report.file, direction = direction.as_str(),
            bytes = report.bytes, duration_ms = elapsed.as_millis() as u64, rate_mb_s = format_args!("{rate:.1}"),
            blksize, windowsize, timeout_s, tsize = %tsize, retransmitted, timeouts, kept_previous_as = %kept,
            outcome = %report.outcome, "tftp transfer complete"
        );
    } else {
        info!(
            peer = %peer, file = %report.file, direction = direction.as_str(),
            bytes = report.bytes, duration_ms = elapsed.as_millis() as u64, rate_mb_s = format_args!("{rate:.1}"),
            blksize, windowsize, timeout_s, tsize = %tsize, retransmitted, timeouts,
            outcome = %report.outcome, "tftp transfer failed"
        );
    }
}
