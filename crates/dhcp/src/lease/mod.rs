//! The durable lease store: an append-only journal in `state_dir`, an in-memory index, and a
//! group-commit writer thread that makes a lease durable (written and `fdatasync`ed) before the
//! caller may send its ACK.
//!
//! Why a journal and not redb: the requirements that decide it are recovery and a second reader.
//! Damaged state must be reported and recovered record by record. A journal of framed,
//! checksummed records lets us keep every valid record before *and after* a damaged one, say
//! which bytes were lost and keep a copy of the damaged file; with redb the damage is handled
//! inside the engine (its checksums, its repair on open), which opens or fails as a whole and
//! cannot tell us which leases were lost. `kindling leases` must read the store while the daemon
//! holds it: a journal reader just reads the file and stops at the last valid record, with no
//! locking protocol between processes (redb needs its 4.5+ multi-process mode for that). The
//! kill -9 results and commit rates of the two were alike (notes/crates.md §6), and what a
//! journal costs (our own compaction, the live set in RAM) is small for DHCP pools of a few ten
//! thousand leases. Kea's memfile and ISC dhcpd's `dhcpd.leases` make the same choice.
//!
//! One journal holds the leases of both families with the same guarantees: a DHCPv4 lease is a
//! version-1 record ([`LeaseRecord`]), a DHCPv6 lease a version-2 record ([`Lease6Record`],
//! keyed by DUID and IAID); [`StoredLease`] is either. Each family has its own index
//! (`index.rs`), so a v6 lease never shadows the v4 lease of the same machine.
//!
//! Files in `state_dir`: `leases.journal` (a versioned header, then frames of magic, length,
//! CRC-32 and a versioned record; see `journal.rs` and `record.rs`); `leases.lock` (an exclusive `flock` held by the one writer);
//! `leases.journal.compact` (a compaction in progress; a leftover one is deleted on open); and
//! `leases.damaged-<unix seconds>` (a copy of a damaged journal, kept for forensics and never
//! deleted by Kindling). Compaction runs on the writer thread, so commits wait for it (a few ms
//! for 10,000 leases).
//!
//! Use from async code: [`LeaseStore::submit`] takes the records and a completion callback that
//! runs on the writer thread once they are durable, so the tokio shell passes a closure that
//! sends on a `tokio::sync::oneshot` and awaits the receiver; no blocking thread is held per
//! commit. [`LeaseStore::commit`] is the blocking form of the same thing (threads, tests,
//! `spawn_blocking`). Every commit queued while the previous `fdatasync` ran shares the next one.
//!
//! The store never reads the clock: the grant and expiry times, the `now` of
//! [`LeaseStore::reclaim_expired`] and the timestamp of a damaged copy are arguments.

pub(crate) mod index;
mod journal;
mod record;
mod store;
#[cfg(test)]
mod tests;

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use journal::{Corruption, DamagedRegion, RecoveryReport};
pub use record::{
    AbandonReason, InvalidRecord, Lease6Record, LeaseRecord, LeaseState, MAX_FIELD_LEN, MacAddr,
    StoredLease,
};
pub use store::{LeaseStore, Snapshot, StoreOptions, StoreStats, read_snapshot};

/// The journal's file name in `state_dir`.
pub const JOURNAL_FILE: &str = "leases.journal";
/// The lock file's name in `state_dir`.
pub const LOCK_FILE: &str = "leases.lock";
/// The name a compaction writes before it renames the file over the journal.
pub const COMPACT_TEMP_FILE: &str = "leases.journal.compact";
/// The prefix of a damaged journal's copy (followed by Unix seconds of the `now` given to open).
pub const DAMAGED_PREFIX: &str = "leases.damaged-";

/// What can go wrong with the lease store. Cheap to clone: one I/O failure is reported to every
/// commit of the batch it hit.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("{}: the lease store is held by another process", path.display())]
    Locked { path: PathBuf },
    #[error("{}: lease file format {found} is newer than this build reads", path.display())]
    NewerFormat { path: PathBuf, found: u32 },
    #[error(
        "{}: the record at byte {offset} comes from a newer build (record version {version}); \
         refusing to rewrite the file",
        path.display()
    )]
    NewerRecord {
        path: PathBuf,
        offset: u64,
        version: u8,
    },
    #[error("lease for {address}: {source}")]
    InvalidRecord {
        address: IpAddr,
        #[source]
        source: InvalidRecord,
    },
    /// An earlier write or `fdatasync` failed. After a failed `fdatasync` the kernel may have
    /// dropped the data, so the store stops taking writes; reopening recovers what is durable.
    #[error("the lease store stopped taking writes after an earlier failure: {0}")]
    Failed(Arc<StoreError>),
    #[error("the lease store is closed")]
    Closed,
}

impl StoreError {
    fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io {
            op,
            path,
            source: Arc::new(source),
        }
    }
}
