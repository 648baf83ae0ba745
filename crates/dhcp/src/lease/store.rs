//! The store: open and recover, the group-commit writer thread, compaction, and the read-only
//! snapshot for a second process.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use super::index::{Indexes, Owner};
use super::journal::{self, Corruption, RecoveryReport};
use super::record::{Lease6Record, LeaseRecord, LeaseState, MacAddr, StoredLease};
use super::{COMPACT_TEMP_FILE, DAMAGED_PREFIX, JOURNAL_FILE, LOCK_FILE, StoreError};

/// Tuning of a [`LeaseStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Compact only once the journal holds at least this many records...
    pub compact_min_records: usize,
    /// ...and at least this many times as many records as there are leases.
    pub compact_ratio: usize,
    /// Test hook: sleep this long before each `fdatasync` so that commits pile up.
    #[cfg(test)]
    pub(crate) sync_delay: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            compact_min_records: 10_000,
            compact_ratio: 4,
            #[cfg(test)]
            sync_delay: std::time::Duration::ZERO,
        }
    }
}

/// Counters since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Commit requests that became durable.
    pub commits: u64,
    /// Records written by those commits and by reclaims.
    pub records: u64,
    /// `fdatasync` calls on the journal (commits / syncs is the group-commit factor).
    pub syncs: u64,
    /// Compactions finished.
    pub compactions: u64,
}

type Done<T> = Box<dyn FnOnce(Result<T, StoreError>) + Send>;

enum Request {
    Commit {
        frames: Vec<u8>,
        records: Vec<StoredLease>,
        done: Done<()>,
    },
    Reclaim {
        now: SystemTime,
        done: Done<Vec<StoredLease>>,
    },
    Compact {
        done: Done<()>,
    },
}

#[derive(Default)]
struct Shared {
    index: RwLock<Indexes>,
    commits: AtomicU64,
    records: AtomicU64,
    syncs: AtomicU64,
    compactions: AtomicU64,
}

/// The lease store of one daemon. `Send + Sync`: share it with `Arc` and commit from any thread.
pub struct LeaseStore {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    /// Holds the exclusive `flock` for as long as the store is open.
    _lock: File,
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore")
            .field("leases", &self.index().len())
            .finish_non_exhaustive()
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

fn read_journal(path: &Path) -> Result<Vec<u8>, StoreError> {
    match fs::read(path) {
        Ok(buf) => Ok(buf),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(StoreError::io("read", path)(error)),
    }
}

/// Scans a journal image into an index and a report; fails only on a newer file format.
fn recover(path: &Path, buf: &[u8]) -> Result<(Indexes, RecoveryReport, u64), StoreError> {
    let scan = journal::scan(buf);
    if let Some(found) = scan.newer_format {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found,
        });
    }
    let mut index = Indexes::default();
    let records_loaded = scan.records.len();
    for record in scan.records {
        index.apply(record);
    }
    let report = RecoveryReport {
        path: path.to_path_buf(),
        records_loaded,
        live_leases: index.len(),
        bad_header: scan.bad_header,
        corrupt: scan.corrupt,
        torn_tail: scan.torn_tail,
        damaged_copy: None,
        removed_compaction_temp: None,
    };
    Ok((index, report, scan.valid_end))
}

/// Reads the lease journal in `state_dir` without locking or changing anything: safe while a
/// daemon holds the store (what `kindling leases` uses). Returns the newest record per address,
/// ordered by address, and what the scan found (a torn tail here may be a write in flight).
pub fn read_snapshot(
    state_dir: impl AsRef<Path>,
) -> Result<(Snapshot, RecoveryReport), StoreError> {
    let path = state_dir.as_ref().join(JOURNAL_FILE);
    let buf = read_journal(&path)?;
    let (index, report, _) = recover(&path, &buf)?;
    let snapshot = Snapshot {
        v4: index.v4.all(),
        v6: index.v6.all(),
    };
    Ok((snapshot, report))
}

/// The leases of a journal read by [`read_snapshot`]: the newest record per address, each
/// family ordered by address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub v4: Vec<LeaseRecord>,
    pub v6: Vec<Lease6Record>,
}

/// Writes `buf` to a fresh file next to the journal: `leases.damaged-<secs>[-n]`, fsynced.
fn save_damaged_copy(dir: &Path, buf: &[u8], now: SystemTime) -> Result<PathBuf, StoreError> {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut attempt = 0u32;
    loop {
        let name = if attempt == 0 {
            format!("{DAMAGED_PREFIX}{secs}")
        } else {
            format!("{DAMAGED_PREFIX}{secs}-{attempt}")
        };
        let path = dir.join(name);
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                attempt += 1;
                continue;
            }
            Err(error) => return Err(StoreError::io("create", path)(error)),
        };
        file.write_all(buf)
            .and_then(|()| file.sync_all())
            .map_err(StoreError::io("write", &path))?;
        sync_dir(dir)?;
        return Ok(path);
    }
}

/// Compaction, step 1: the live records into `leases.journal.compact`, fsynced, then renamed
/// over the journal. A failure here leaves the old journal in place and in use.
fn write_and_rename(dir: &Path, records: &[StoredLease]) -> Result<(), StoreError> {
    let temp = dir.join(COMPACT_TEMP_FILE);
    let mut buf = journal::header().to_vec();
    for record in records {
        journal::encode_frame(record, &mut buf).map_err(|source| StoreError::InvalidRecord {
            address: record.address(),
            source,
        })?;
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(StoreError::io("create", &temp))?;
        file.write_all(&buf)
            .and_then(|()| file.sync_all())
            .map_err(StoreError::io("write", &temp))?;
        drop(file);
        fs::rename(&temp, dir.join(JOURNAL_FILE)).map_err(StoreError::io("rename", &temp))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Compaction, step 2: make the rename durable and open the new journal for appending. A
/// failure here leaves the state on disk unknown to us.
fn install(dir: &Path) -> Result<(File, u64), StoreError> {
    sync_dir(dir)?;
    let path = dir.join(JOURNAL_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(StoreError::io("open", &path))?;
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(StoreError::io("seek", &path))?;
    Ok((file, len))
}

impl LeaseStore {
    /// Opens (creating if needed) the store in `state_dir` with default options. See
    /// [`open_with`](Self::open_with).
    pub fn open(
        state_dir: impl AsRef<Path>,
        now: SystemTime,
    ) -> Result<(LeaseStore, RecoveryReport), StoreError> {
        Self::open_with(state_dir, now, StoreOptions::default())
    }

    /// Opens the store for writing: takes the lock (one writer per `state_dir`), recovers every
    /// valid record, and repairs damage after copying the damaged journal to
    /// `leases.damaged-<now as Unix seconds>`: a torn tail is truncated away, a damaged header
    /// or records in the middle are dropped by rewriting the live records (as a compaction).
    /// Refuses (without touching anything) a journal with records from a newer build.
    pub fn open_with(
        state_dir: impl AsRef<Path>,
        now: SystemTime,
        options: StoreOptions,
    ) -> Result<(LeaseStore, RecoveryReport), StoreError> {
        let dir = state_dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(StoreError::io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { path: lock_path }),
            Err(TryLockError::Error(error)) => {
                return Err(StoreError::io("lock", lock_path)(error));
            }
        }

        let temp = dir.join(COMPACT_TEMP_FILE);
        let removed_temp = match fs::remove_file(&temp) {
            Ok(()) => Some(temp),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(StoreError::io("remove", temp)(error)),
        };

        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(StoreError::io("read", &path))?;
        let (index, mut report, valid_end) = recover(&path, &buf)?;
        report.removed_compaction_temp = removed_temp;
        let newer = report
            .corrupt
            .iter()
            .find_map(|region| match region.reason {
                Corruption::UnknownVersion(version) => Some((region.offset, version)),
                _ => None,
            });
        if let Some((offset, version)) = newer {
            return Err(StoreError::NewerRecord {
                path,
                offset,
                version,
            });
        }

        if !report.is_clean() {
            report.damaged_copy = Some(save_damaged_copy(&dir, &buf, now)?);
        }
        let rewrite =
            buf.len() < journal::HEADER_LEN || report.bad_header || !report.corrupt.is_empty();
        let (file, len) = if rewrite {
            drop(file);
            write_and_rename(&dir, &index.in_write_order())?;
            install(&dir)?
        } else {
            if valid_end < buf.len() as u64 {
                file.set_len(valid_end)
                    .and_then(|()| file.sync_all())
                    .map_err(StoreError::io("truncate", &path))?;
            }
            let len = file
                .seek(SeekFrom::End(0))
                .map_err(StoreError::io("seek", &path))?;
            (file, len)
        };
        // The journal now holds exactly the live records (rewritten) or every valid one.
        let frames_in_file = if rewrite {
            index.len()
        } else {
            report.records_loaded
        };
        if report.is_clean() && report.removed_compaction_temp.is_none() {
            tracing::debug!(%report, "lease store opened");
        } else {
            tracing::warn!(%report, "lease store recovered from damage");
        }

        let shared = Arc::new(Shared {
            index: RwLock::new(index),
            ..Shared::default()
        });
        let (requests, inbox) = mpsc::channel();
        let writer = Writer {
            dir,
            file,
            len,
            frames_in_file,
            shared: Arc::clone(&shared),
            options,
            failed: None,
        };
        let handle = std::thread::Builder::new()
            .name("lease-writer".into())
            .spawn(move || writer.run(inbox))
            .map_err(StoreError::io("spawn the writer thread for", &path))?;
        Ok((
            LeaseStore {
                shared,
                requests: Some(requests),
                writer: Some(handle),
                _lock: lock,
            },
            report,
        ))
    }

    fn index(&self) -> RwLockReadGuard<'_, Indexes> {
        self.shared
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, request: Request) {
        let refused = match &self.requests {
            Some(requests) => match requests.send(request) {
                Ok(()) => return,
                Err(mpsc::SendError(request)) => request,
            },
            None => request,
        };
        match refused {
            Request::Commit { done, .. } | Request::Compact { done } => {
                done(Err(StoreError::Closed))
            }
            Request::Reclaim { done, .. } => done(Err(StoreError::Closed)),
        }
    }

    /// Queues `records` for the next group commit and calls `done` once they are durable (or
    /// failed). `done` runs on the writer thread: it must be quick and must not block (send on a
    /// channel). Records are written in the order their commits are queued; the index shows
    /// them only once they are durable. An invalid record fails the whole call at once.
    pub fn submit<R: Into<StoredLease>>(
        &self,
        records: Vec<R>,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) {
        let records: Vec<StoredLease> = records.into_iter().map(Into::into).collect();
        let mut frames = Vec::with_capacity(records.len() * 64);
        for record in &records {
            if let Err(source) = journal::encode_frame(record, &mut frames) {
                done(Err(StoreError::InvalidRecord {
                    address: record.address(),
                    source,
                }));
                return;
            }
        }
        if records.is_empty() {
            done(Ok(()));
            return;
        }
        self.send(Request::Commit {
            frames,
            records,
            done: Box::new(done),
        });
    }

    /// Writes `records` and returns once they are durable: the moment an ACK may leave. Safe to
    /// call from many threads at once; concurrent commits share one `fdatasync`.
    pub fn commit<R: Into<StoredLease>>(&self, records: Vec<R>) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(records, move |result| {
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Durably marks every active lease of either family whose expiry is at or before `now` as
    /// expired and returns the new records (for the Expired events). Ordered with commits: a
    /// renewal queued before this call is seen, so a renewed lease is not expired.
    pub fn reclaim_expired(&self, now: SystemTime) -> Result<Vec<StoredLease>, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Reclaim {
            now,
            done: Box::new(move |result| {
                let _ = tx.send(result);
            }),
        });
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Rewrites the journal to the live records now (it also happens on its own, see
    /// [`StoreOptions`]).
    pub fn compact(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Compact {
            done: Box::new(move |result| {
                let _ = tx.send(result);
            }),
        });
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// The newest DHCPv4 lease held by this MAC (not an abandoned one).
    pub fn lookup_mac(&self, mac: MacAddr) -> Option<LeaseRecord> {
        self.index().v4.by_mac(mac).cloned()
    }

    /// The newest DHCPv4 lease held by this client identifier (not an abandoned one).
    pub fn lookup_client_id(&self, client_id: &[u8]) -> Option<LeaseRecord> {
        self.index().v4.by_client_id(client_id).cloned()
    }

    /// The record for this IPv4 address, in whatever state.
    pub fn lookup_addr(&self, address: Ipv4Addr) -> Option<LeaseRecord> {
        self.index().v4.by_addr(address).cloned()
    }

    /// The newest DHCPv6 lease of this identity association (DUID and IAID), not an abandoned
    /// one.
    pub fn lookup_binding(&self, duid: &[u8], iaid: u32) -> Option<Lease6Record> {
        self.index()
            .v6
            .by_owner(&Owner::Binding(duid.to_vec(), iaid))
            .cloned()
    }

    /// The record for this IPv6 address, in whatever state.
    pub fn lookup_v6_addr(&self, address: Ipv6Addr) -> Option<Lease6Record> {
        self.index().v6.by_addr(address).cloned()
    }

    /// Every DHCPv4 record (newest per address), ordered by address.
    pub fn all(&self) -> Vec<LeaseRecord> {
        self.index().v4.all()
    }

    /// Every DHCPv6 record (newest per address), ordered by address.
    pub fn all_v6(&self) -> Vec<Lease6Record> {
        self.index().v6.all()
    }

    /// How many addresses of either family have a record.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    /// True when no address has a record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters since open.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            records: self.shared.records.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            compactions: self.shared.compactions.load(Ordering::Relaxed),
        }
    }

    /// Finishes queued commits, stops the writer and releases the lock (dropping the store
    /// does the same).
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.requests = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the lease writer thread panicked");
        }
    }
}

impl Drop for LeaseStore {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Writer {
    dir: PathBuf,
    file: File,
    len: u64,
    frames_in_file: usize,
    shared: Arc<Shared>,
    options: StoreOptions,
    failed: Option<Arc<StoreError>>,
}

struct PendingCommit {
    records: Vec<StoredLease>,
    done: Done<()>,
}

impl Writer {
    fn run(mut self, inbox: mpsc::Receiver<Request>) {
        let mut frames = Vec::new();
        let mut pending = Vec::new();
        while let Ok(first) = inbox.recv() {
            // Group commit: everything queued while the last fdatasync ran goes in this one.
            let mut next = Some(first);
            while let Some(request) = next.take().or_else(|| inbox.try_recv().ok()) {
                match request {
                    Request::Commit {
                        frames: bytes,
                        records,
                        done,
                    } => {
                        frames.extend_from_slice(&bytes);
                        pending.push(PendingCommit { records, done });
                    }
                    Request::Reclaim { now, done } => {
                        self.flush(&mut frames, &mut pending);
                        done(self.reclaim(now));
                    }
                    Request::Compact { done } => {
                        self.flush(&mut frames, &mut pending);
                        done(self.compact());
                    }
                }
            }
            self.flush(&mut frames, &mut pending);
            if self.should_compact()
                && let Err(error) = self.compact()
            {
                tracing::warn!(%error, "lease journal compaction failed");
            }
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// Appends `frames` and fdatasyncs. Any failure poisons the writer.
    fn append(&mut self, frames: &[u8]) -> Result<(), StoreError> {
        if let Some(failed) = &self.failed {
            return Err(StoreError::Failed(Arc::clone(failed)));
        }
        let result = self
            .file
            .write_all(frames)
            .map_err(StoreError::io("write", self.path()))
            .and_then(|()| {
                #[cfg(test)]
                std::thread::sleep(self.options.sync_delay);
                self.file
                    .sync_data()
                    .map_err(StoreError::io("fdatasync", self.path()))
            });
        match result {
            Ok(()) => {
                self.len += frames.len() as u64;
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "lease journal write failed; the store takes no more writes");
                self.failed = Some(Arc::new(error.clone()));
                Err(error)
            }
        }
    }

    /// Makes the pending commits durable, applies them to the index and answers them.
    fn flush(&mut self, frames: &mut Vec<u8>, pending: &mut Vec<PendingCommit>) {
        if pending.is_empty() {
            return;
        }
        let result = self.append(frames);
        frames.clear();
        let batch = std::mem::take(pending);
        match result {
            Ok(()) => {
                let mut dones = Vec::with_capacity(batch.len());
                let mut records = 0;
                {
                    let mut index = self
                        .shared
                        .index
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    for commit in batch {
                        records += commit.records.len();
                        for record in commit.records {
                            index.apply(record);
                        }
                        dones.push(commit.done);
                    }
                }
                self.frames_in_file += records;
                self.shared
                    .commits
                    .fetch_add(dones.len() as u64, Ordering::Relaxed);
                self.shared
                    .records
                    .fetch_add(records as u64, Ordering::Relaxed);
                for done in dones {
                    done(Ok(()));
                }
            }
            Err(error) => {
                for commit in batch {
                    (commit.done)(Err(error.clone()));
                }
            }
        }
    }

    fn reclaim(&mut self, now: SystemTime) -> Result<Vec<StoredLease>, StoreError> {
        let expired: Vec<StoredLease> = {
            let index = self
                .shared
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let v4 = index.v4.expired_active(now).into_iter().map(|mut record| {
                record.state = LeaseState::Expired;
                StoredLease::V4(record)
            });
            let v6 = index.v6.expired_active(now).into_iter().map(|mut record| {
                record.state = LeaseState::Expired;
                StoredLease::V6(record)
            });
            v4.chain(v6).collect()
        };
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut frames = Vec::new();
        for record in &expired {
            journal::encode_frame(record, &mut frames).map_err(|source| {
                StoreError::InvalidRecord {
                    address: record.address(),
                    source,
                }
            })?;
        }
        self.append(&frames)?;
        {
            let mut index = self
                .shared
                .index
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for record in &expired {
                index.apply(record.clone());
            }
        }
        self.frames_in_file += expired.len();
        self.shared
            .records
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        Ok(expired)
    }

    fn should_compact(&self) -> bool {
        let live = self
            .shared
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.failed.is_none()
            && self.frames_in_file >= self.options.compact_min_records
            && self.frames_in_file >= live.saturating_mul(self.options.compact_ratio)
    }

    fn compact(&mut self) -> Result<(), StoreError> {
        if let Some(failed) = &self.failed {
            return Err(StoreError::Failed(Arc::clone(failed)));
        }
        let records = self
            .shared
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .in_write_order();
        write_and_rename(&self.dir, &records)?;
        match install(&self.dir) {
            Ok((file, len)) => {
                let before = self.len;
                self.file = file;
                self.len = len;
                self.frames_in_file = records.len();
                self.shared.compactions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    leases = records.len(),
                    bytes_before = before,
                    bytes_after = len,
                    "lease journal compacted"
                );
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "lease journal compaction failed after the rename; the store takes no more writes");
                self.failed = Some(Arc::new(error.clone()));
                Err(error)
            }
        }
    }
}
