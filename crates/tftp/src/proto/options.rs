//! RFC 2347 option negotiation: blksize (RFC 2348), timeout and tsize (RFC 2349), windowsize
//! (RFC 7440).
//!
//! Rules, for reads and writes alike:
//!
//! - Option names are compared case-insensitively; the OACK echoes the client's spelling, in the
//!   client's order. Values are parsed as plain decimal digits (no sign, no spaces).
//! - Unknown options are ignored and not echoed. A known option whose value is out of range or
//!   not a number is ignored too (never refused): a plain RFC 1350 client would finish the
//!   transfer, so a client asking for something odd must be able to as well.
//! - When an option appears more than once, the first occurrence decides, even if it is ignored.
//! - No accepted option means no OACK: a read starts with DATA 1, a write with ACK 0.
//!
//! Per option:
//!
//! - `blksize` 8..=65464 is granted, lowered to [`Settings::max_blksize`].
//! - `timeout` 1..=255 seconds is granted exactly (RFC 2349 has the server echo it or ignore it).
//! - `windowsize` 1..=65535 is granted, lowered to [`Settings::max_windowsize`] and to
//!   `receive_buffer_budget / datagram_memory_cost(blksize) + 1` (all but the last datagram
//!   of a window must fit the receive buffer).
//! - `tsize` on a read is answered with the file length (whatever number the client sent,
//!   normally 0), except for an empty file: tsize is then left out of the OACK, because curl 7.88
//!   rejects an OACK carrying `tsize 0` and must still be able to fetch empty files. On a write
//!   the client's declared size is echoed, or the request is refused with ERROR 3 when it exceeds
//!   [`Settings::max_upload_size`] (for netascii uploads the declared size is the wire size,
//!   slightly larger than the stored file, so the check errs on the strict side).

use std::time::Duration;

use crate::proto::{Negotiated, Refusal, Settings};
use crate::wire::{ErrorCode, MAX_BLKSIZE, MIN_BLKSIZE, Request};

/// Negotiates the options of a read request for a file of `file_len` bytes (the encoded length
/// for netascii). Never refuses: anything it does not like it ignores.
pub fn negotiate_read(request: &Request<'_>, settings: &Settings, file_len: u64) -> Negotiated {
    let requested = RequestedOptions::collect(request);
    let mut accepted = Accepted::new(requested.common(settings));
    if let Some(tsize) = requested.tsize
        && parse_decimal(tsize.value).is_some()
        && file_len > 0
    {
        accepted.push(tsize, file_len.to_string());
        accepted.tsize = Some(file_len);
    }
    accepted.finish(settings)
}

/// Negotiates the options of a write request. Refuses (ERROR 3) a declared tsize larger than
/// [`Settings::max_upload_size`].
pub fn negotiate_write(request: &Request<'_>, settings: &Settings) -> Result<Negotiated, Refusal> {
    let requested = RequestedOptions::collect(request);
    let mut accepted = Accepted::new(requested.common(settings));
    if let Some(tsize) = requested.tsize
        && let Some(declared) = parse_decimal(tsize.value)
    {
        if declared > settings.max_upload_size {
            return Err(Refusal {
                code: ErrorCode::DiskFull,
                message: format!(
                    "declared size {declared} exceeds the upload limit of {} bytes",
                    settings.max_upload_size
                ),
            });
        }
        accepted.push(tsize, declared.to_string());
        accepted.tsize = Some(declared);
    }
    Ok(accepted.finish(settings))
}

/// One option as the client sent it, with its position in the request.
#[derive(Debug, Clone, Copy)]
struct Requested<'a> {
    position: usize,
    name: &'a str,
    value: &'a str,
}

/// The first occurrence of each option we understand.
#[derive(Debug, Default)]
struct RequestedOptions<'a> {
    blksize: Option<Requested<'a>>,
    timeout: Option<Requested<'a>>,
    tsize: Option<Requested<'a>>,
    windowsize: Option<Requested<'a>>,
}

impl<'a> RequestedOptions<'a> {
    fn collect(request: &Request<'a>) -> Self {
        let mut requested = RequestedOptions::default();
        for (position, option) in request.options.iter().enumerate() {
            let slot = if option.name.eq_ignore_ascii_case("blksize") {
                &mut requested.blksize
            } else if option.name.eq_ignore_ascii_case("timeout") {
                &mut requested.timeout
            } else if option.name.eq_ignore_ascii_case("tsize") {
                &mut requested.tsize
            } else if option.name.eq_ignore_ascii_case("windowsize") {
                &mut requested.windowsize
            } else {
                tracing::trace!(option = option.name, "unknown option ignored");
                continue;
            };
            if slot.is_none() {
                *slot = Some(Requested {
                    position,
                    name: option.name,
                    value: option.value,
                });
            } else {
                tracing::trace!(option = option.name, "duplicate option ignored");
            }
        }
        requested
    }

    /// Negotiates blksize, timeout and windowsize, which work the same for reads and writes.
    fn common(&self, settings: &Settings) -> Common<'a> {
        let mut common = Common::default();
        let max_blksize = settings.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
        if let Some(option) = self.blksize {
            match parse_decimal(option.value) {
                Some(wanted)
                    if (u64::from(MIN_BLKSIZE)..=u64::from(MAX_BLKSIZE)).contains(&wanted) =>
                {
                    let granted = u16::try_from(wanted)
                        .unwrap_or(MAX_BLKSIZE)
                        .min(max_blksize);
                    common.blksize = Some((option, granted));
                }
                _ => tracing::debug!(value = option.value, "blksize out of range, ignored"),
            }
        }
        if let Some(option) = self.timeout {
            match parse_decimal(option.value) {
                Some(seconds @ 1..=255) => common.timeout = Some((option, seconds)),
                _ => tracing::debug!(value = option.value, "timeout out of range, ignored"),
            }
        }
        if let Some(option) = self.windowsize {
            match parse_decimal(option.value) {
                Some(wanted @ 1..=65535) => {
                    let blksize = common
                        .blksize
                        .map_or(crate::wire::DEFAULT_BLKSIZE, |(_, granted)| granted);
                    // The kernel admits a datagram while the buffer holds less than its limit,
                    // so the last datagram of a window may overshoot: a window fits when all
                    // but its last datagram fit.
                    let by_bytes =
                        settings.receive_buffer_budget / super::datagram_memory_cost(blksize) + 1;
                    let by_bytes = u16::try_from(by_bytes).unwrap_or(u16::MAX).max(1);
                    let granted = u16::try_from(wanted)
                        .unwrap_or(u16::MAX)
                        .min(settings.max_windowsize.max(1))
                        .min(by_bytes);
                    common.windowsize = Some((option, granted));
                }
                _ => tracing::debug!(value = option.value, "windowsize out of range, ignored"),
            }
        }
        common
    }
}

/// The granted values of the options reads and writes share.
#[derive(Debug, Default)]
struct Common<'a> {
    blksize: Option<(Requested<'a>, u16)>,
    timeout: Option<(Requested<'a>, u64)>,
    windowsize: Option<(Requested<'a>, u16)>,
}

/// The OACK being built.
#[derive(Debug)]
struct Accepted {
    blksize: u16,
    windowsize: u16,
    timeout: Option<Duration>,
    tsize: Option<u64>,
    /// (position in the request, name as sent, value granted)
    entries: Vec<(usize, String, String)>,
}

impl Accepted {
    fn new(common: Common<'_>) -> Self {
        let mut accepted = Accepted {
            blksize: crate::wire::DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout: None,
            tsize: None,
            entries: Vec::new(),
        };
        if let Some((option, granted)) = common.blksize {
            accepted.blksize = granted;
            accepted.push(option, granted.to_string());
        }
        if let Some((option, seconds)) = common.timeout {
            accepted.timeout = Some(Duration::from_secs(seconds));
            accepted.push(option, seconds.to_string());
        }
        if let Some((option, granted)) = common.windowsize {
            accepted.windowsize = granted;
            accepted.push(option, granted.to_string());
        }
        accepted
    }

    fn push(&mut self, option: Requested<'_>, value: String) {
        self.entries
            .push((option.position, option.name.to_owned(), value));
    }

    fn finish(mut self, settings: &Settings) -> Negotiated {
        self.entries.sort_by_key(|(position, _, _)| *position);
        let oack = (!self.entries.is_empty()).then(|| {
            self.entries
                .into_iter()
                .map(|(_, name, value)| (name, value))
                .collect()
        });
        Negotiated {
            blksize: self.blksize,
            windowsize: self.windowsize,
            timeout: self.timeout.unwrap_or(settings.default_timeout),
            tsize: self.tsize,
            oack,
            max_retries: settings.max_retries,
        }
    }
}

/// Parses an option value made only of ASCII digits (1 to 20 of them) that fits in a u64.
fn parse_decimal(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}
