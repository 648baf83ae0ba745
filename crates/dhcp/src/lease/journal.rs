//! The journal file format and the scan that recovers records from a damaged file.
//!
//! ```text
//! file   := header frame*
//! header := "KINDLING-LEASES\n" (16 bytes) | u32 LE format version (1)
//! frame  := magic C5 4B 4C 52 | u32 LE payload length (1..=65536) | u32 LE CRC-32 (IEEE) of
//!           the length bytes and the payload | payload (see record.rs)
//! ```
//!
//! A frame is valid when its magic, length bound, extent and checksum all hold. After an invalid
//! frame the scan resynchronises on the next offset where a valid frame starts; the bytes in
//! between are reported as a corrupt region. Invalid bytes with no valid frame after them are
//! the torn tail.

use std::fmt;
use std::path::PathBuf;

use super::record::{DecodeError, InvalidRecord, StoredLease};

pub(crate) const HEADER_MAGIC: &[u8; 16] = b"KINDLING-LEASES\n";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 20;
pub(crate) const FRAME_MAGIC: [u8; 4] = [0xC5, 0x4B, 0x4C, 0x52];
pub(crate) const FRAME_HEADER_LEN: usize = 12;
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024;

pub(crate) fn header() -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    out[..16].copy_from_slice(HEADER_MAGIC);
    out[16..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out
}

/// Appends one framed record to `out`; on error `out` is left as it was.
pub(crate) fn encode_frame(record: &StoredLease, out: &mut Vec<u8>) -> Result<(), InvalidRecord> {
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&[0; 8]);
    if let Err(error) = record.encode(out) {
        out.truncate(start);
        return Err(error);
    }
    let payload_len = out.len() - start - FRAME_HEADER_LEN;
    // A record is at most a few hundred bytes, far below MAX_PAYLOAD and u32::MAX.
    let len_bytes = u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(&out[start + FRAME_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&len_bytes);
    out[start + 8..start + 12].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(())
}

/// Why bytes of the journal were not taken as a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// No frame starts here.
    BadMagic,
    /// The length field is zero or larger than any record.
    BadLength(u32),
    /// The frame runs past the end of the file.
    Truncated,
    /// The checksum does not match the bytes.
    BadChecksum,
    /// The checksum matches but the record cannot be decoded.
    Undecodable(&'static str),
    /// The record was written by a newer Kindling (record version shown).
    UnknownVersion(u8),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::BadMagic => f.write_str("no frame marker"),
            Corruption::BadLength(len) => write!(f, "impossible record length {len}"),
            Corruption::Truncated => f.write_str("record cut short by the end of the file"),
            Corruption::BadChecksum => f.write_str("checksum mismatch"),
            Corruption::Undecodable(why) => write!(f, "undecodable record ({why})"),
            Corruption::UnknownVersion(v) => write!(f, "record version {v} from a newer build"),
        }
    }
}

/// A span of the journal that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRegion {
    /// Byte offset in the journal where the damage starts.
    pub offset: u64,
    /// How many bytes were skipped.
    pub len: u64,
    /// What was wrong at `offset`.
    pub reason: Corruption,
}

/// What opening (or reading) the lease journal found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The journal that was read.
    pub path: PathBuf,
    /// Valid records read, superseded ones included.
    pub records_loaded: usize,
    /// Leases in the recovered state (the newest record per address).
    pub live_leases: usize,
    /// The file header was missing or damaged (frames were still recovered).
    pub bad_header: bool,
    /// Records skipped in the middle of the file; valid records after them were kept.
    pub corrupt: Vec<DamagedRegion>,
    /// Invalid bytes at the end with no valid record after them (a torn write). A writer cuts
    /// them off; a reader running beside the daemon may see a write that is still in flight.
    pub torn_tail: Option<DamagedRegion>,
    /// Where the damaged file was copied before it was repaired (writer only).
    pub damaged_copy: Option<PathBuf>,
    /// A leftover compaction file from an interrupted compaction, removed (writer only).
    pub removed_compaction_temp: Option<PathBuf>,
}

impl RecoveryReport {
    /// True when the journal held nothing but valid records.
    pub fn is_clean(&self) -> bool {
        !self.bad_header && self.corrupt.is_empty() && self.torn_tail.is_none()
    }

    /// Bytes of torn tail discarded.
    pub fn torn_bytes(&self) -> u64 {
        self.torn_tail.as_ref().map_or(0, |tail| tail.len)
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} records read, {} leases",
            self.path.display(),
            self.records_loaded,
            self.live_leases
        )?;
        if self.bad_header {
            f.write_str("; damaged file header")?;
        }
        for region in &self.corrupt {
            write!(
                f,
                "; skipped {} bytes at offset {} ({})",
                region.len, region.offset, region.reason
            )?;
        }
        if let Some(tail) = &self.torn_tail {
            write!(
                f,
                "; torn tail of {} bytes at offset {} ({})",
                tail.len, tail.offset, tail.reason
            )?;
        }
        if let Some(copy) = &self.damaged_copy {
            write!(f, "; damaged file kept as {}", copy.display())?;
        }
        if let Some(temp) = &self.removed_compaction_temp {
            write!(
                f,
                "; removed {} left by an interrupted compaction",
                temp.display()
            )?;
        }
        Ok(())
    }
}

/// Everything a scan found. `valid_end` is where the torn tail starts (or the file length).
pub(crate) struct Scan {
    pub(crate) records: Vec<StoredLease>,
    pub(crate) bad_header: bool,
    /// The header names a format newer than this build.
    pub(crate) newer_format: Option<u32>,
    pub(crate) corrupt: Vec<DamagedRegion>,
    pub(crate) torn_tail: Option<DamagedRegion>,
    pub(crate) valid_end: u64,
}

/// Checks the frame at `pos`: `Ok(frame length)` or why not.
fn check_frame(buf: &[u8], pos: usize) -> Result<usize, Corruption> {
    let rest = &buf[pos..];
    if rest.len() < FRAME_MAGIC.len() {
        return Err(if FRAME_MAGIC.starts_with(rest) {
            Corruption::Truncated
        } else {
            Corruption::BadMagic
        });
    }
    if rest[..4] != FRAME_MAGIC {
        return Err(Corruption::BadMagic);
    }
    let Some(head) = rest.get(..FRAME_HEADER_LEN) else {
        return Err(Corruption::Truncated);
    };
    let len_bytes = [head[4], head[5], head[6], head[7]];
    let len = u32::from_le_bytes(len_bytes);
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if len == 0 || len_usize > MAX_PAYLOAD {
        return Err(Corruption::BadLength(len));
    }
    let Some(payload) = rest.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len_usize) else {
        return Err(Corruption::Truncated);
    };
    let stored = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(payload);
    if crc.finalize() != stored {
        return Err(Corruption::BadChecksum);
    }
    Ok(FRAME_HEADER_LEN + len_usize)
}

/// The first offset at or after `from` where a valid frame starts.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos + FRAME_HEADER_LEN <= buf.len() {
        let found = buf[pos..]
            .windows(FRAME_MAGIC.len())
            .position(|w| w == FRAME_MAGIC)?;
        pos += found;
        if check_frame(buf, pos).is_ok() {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

fn region(start: usize, end: usize, reason: Corruption) -> DamagedRegion {
    DamagedRegion {
        offset: start as u64,
        len: (end - start) as u64,
        reason,
    }
}

/// Reads every valid record of a journal image, reporting (never failing on) damage.
pub(crate) fn scan(buf: &[u8]) -> Scan {
    let mut scan = Scan {
        records: Vec::new(),
        bad_header: false,
        newer_format: None,
        corrupt: Vec::new(),
        torn_tail: None,
        valid_end: 0,
    };
    if buf.is_empty() {
        return scan;
    }
    let mut pos = 0;
    if buf.len() < HEADER_LEN && header().starts_with(buf) {
        // The creating write was torn: nothing but a partial header.
        scan.torn_tail = Some(region(0, buf.len(), Corruption::Truncated));
        return scan;
    }
    if buf.len() >= HEADER_LEN && &buf[..16] == HEADER_MAGIC {
        let version = u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if version != FORMAT_VERSION {
            scan.newer_format = Some(version);
            return scan;
        }
        pos = HEADER_LEN;
    } else {
        scan.bad_header = true;
    }
    while pos < buf.len() {
        let failure = match check_frame(buf, pos) {
            Ok(frame_len) => {
                let payload = &buf[pos + FRAME_HEADER_LEN..pos + frame_len];
                match StoredLease::decode(payload) {
                    Ok(record) => scan.records.push(record),
                    Err(DecodeError::UnknownVersion(v)) => {
                        scan.corrupt.push(region(
                            pos,
                            pos + frame_len,
                            Corruption::UnknownVersion(v),
                        ));
                    }
                    Err(DecodeError::Malformed(why)) => {
                        scan.corrupt.push(region(
                            pos,
                            pos + frame_len,
                            Corruption::Undecodable(why),
                        ));
                    }
                }
                pos += frame_len;
                continue;
            }
            Err(reason) => reason,
        };
        match resync(buf, pos + 1) {
            Some(next) => {
                scan.corrupt.push(region(pos, next, failure));
                pos = next;
            }
            None => {
                scan.torn_tail = Some(region(pos, buf.len(), failure));
                scan.valid_end = pos as u64;
                return scan;
            }
        }
    }
    scan.valid_end = buf.len() as u64;
    scan
}
