//! Hot files shared between concurrent transfers, whatever the protocol.
//!
//! A rack powering on fetches the same kernel a hundred times at once; each transfer must not
//! read the file once per block. The first transfer of a file loads it into one shared buffer,
//! concurrent and later transfers of the same file (same device, inode, size and mtime) read
//! that buffer, and entries nobody uses are evicted when the budget is needed or after they
//! sit idle. Files larger than the budget are read with positioned reads instead.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::root::FileIdentity;

/// How long an unused entry stays in memory.
const IDLE_EVICTION: Duration = Duration::from_secs(60);

/// The bytes of a boot file: a shared in-memory copy, or a file read on demand. Cheap to clone;
/// every reader of the same content shares one copy.
#[derive(Debug, Clone)]
pub enum Contents {
    Memory(Arc<[u8]>),
    File(Arc<File>, u64),
    /// Read from the file until the shared copy is loaded, then from the copy: a transfer
    /// that started during the load moves to memory as soon as it can.
    Loading {
        cell: Arc<OnceCell<Arc<[u8]>>>,
        file: Arc<File>,
        len: u64,
    },
}

impl Contents {
    /// The length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Contents::Memory(bytes) => bytes.len() as u64,
            Contents::File(_, len) | Contents::Loading { len, .. } => *len,
        }
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from `offset` on; fewer bytes only at the end of the contents.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Contents::Loading { cell, file, len } => match cell.get() {
                Some(bytes) => read_memory(bytes, offset, buf),
                None => read_file(file, *len, offset, buf),
            },
            Contents::Memory(bytes) => read_memory(bytes, offset, buf),
            Contents::File(file, len) => read_file(file, *len, offset, buf),
        }
    }

    /// `len` bytes at `offset` without a copy, when they are in memory.
    pub fn lend(&self, offset: u64, len: usize) -> Option<&[u8]> {
        match self {
            Contents::Memory(bytes) => lend_from(bytes, offset, len),
            Contents::Loading { cell, .. } => lend_from(cell.get()?, offset, len),
            Contents::File(..) => None,
        }
    }
}

/// `bytes[offset..offset + len]`, or `None` when that range is not all there.
fn lend_from(bytes: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

fn read_memory(bytes: &[u8], offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let available = bytes.get(start..).unwrap_or_default();
    let n = available.len().min(buf.len());
    buf[..n].copy_from_slice(&available[..n]);
    Ok(n)
}

fn read_file(file: &File, len: u64, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() && offset + (filled as u64) < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[derive(Debug)]
struct Entry {
    cell: Arc<OnceCell<Arc<[u8]>>>,
    len: u64,
    last_used: Instant,
}

#[derive(Debug)]
pub(crate) struct FileCache {
    budget: u64,
    entries: Mutex<HashMap<FileIdentity, Entry>>,
    /// Entries whose background load failed; dropped at the next sweep so a later transfer
    /// tries again.
    failed: Arc<Mutex<Vec<FileIdentity>>>,
}

impl FileCache {
    pub(crate) fn new(budget: u64) -> Self {
        Self {
            budget,
            entries: Mutex::new(HashMap::new()),
            failed: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Returns a source for the file: the shared copy once it is in memory, else the file
    /// itself. The first transfer of a file that fits the budget starts loading it in the
    /// background and streams from the file meanwhile, so that nobody waits for a whole image
    /// to be read before the first block leaves; transfers that start after the load share
    /// one copy.
    pub(crate) fn contents(
        &self,
        identity: FileIdentity,
        file: File,
        len: u64,
        now: Instant,
    ) -> Contents {
        let file = Arc::new(file);
        let Some(cell) = self.reserve(identity, len, now) else {
            return Contents::File(file, len);
        };
        if let Some(bytes) = cell.get() {
            return Contents::Memory(Arc::clone(bytes));
        }
        if !cell.initialized() && Arc::strong_count(&cell) <= 2 {
            // Only this call and the cache hold the cell: nobody is loading it yet.
            self.load_in_background(identity, Arc::clone(&cell), Arc::clone(&file), len);
        }
        Contents::Loading { cell, file, len }
    }

    fn load_in_background(
        &self,
        identity: FileIdentity,
        cell: Arc<OnceCell<Arc<[u8]>>>,
        file: Arc<File>,
        len: u64,
    ) {
        let failed = Arc::clone(&self.failed);
        tokio::spawn(async move {
            let loaded = cell
                .get_or_try_init(|| async move {
                    tokio::task::spawn_blocking(move || read_whole(&file, len))
                        .await
                        .map_err(io::Error::other)?
                })
                .await;
            if let Err(error) = loaded {
                tracing::debug!(%error, "loading a file into the shared cache failed; it is read on demand");
                failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(identity);
            }
        });
    }

    /// Finds or makes room for an entry; `None` when the file cannot fit.
    fn reserve(
        &self,
        identity: FileIdentity,
        len: u64,
        now: Instant,
    ) -> Option<Arc<OnceCell<Arc<[u8]>>>> {
        if len > self.budget {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&identity) {
            entry.last_used = now;
            return Some(Arc::clone(&entry.cell));
        }
        evict(&mut entries, now, IDLE_EVICTION);
        let mut used: u64 = entries.values().map(|entry| entry.len).sum();
        while used + len > self.budget {
            // Drop the least recently used entry that no transfer is reading.
            let victim = entries
                .iter()
                .filter(|(_, entry)| !in_use(entry))
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(identity, _)| *identity)?;
            if let Some(entry) = entries.remove(&victim) {
                used -= entry.len;
            }
        }
        let cell = Arc::new(OnceCell::new());
        entries.insert(
            identity,
            Entry {
                cell: Arc::clone(&cell),
                len,
                last_used: now,
            },
        );
        Some(cell)
    }

    /// Drops entries that have sat unused for a while, so an idle daemon holds no images.
    pub(crate) fn evict_idle(&self, now: Instant) {
        let failed: Vec<FileIdentity> =
            std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for identity in failed {
            entries.remove(&identity);
        }
        evict(&mut entries, now, IDLE_EVICTION);
    }

    #[cfg(test)]
    fn resident_bytes(&self) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.values().map(|entry| entry.len).sum()
    }
}

/// An entry is in use while a transfer holds its bytes (or is loading them).
fn in_use(entry: &Entry) -> bool {
    Arc::strong_count(&entry.cell) > 1
        || entry
            .cell
            .get()
            .is_some_and(|bytes| Arc::strong_count(bytes) > 1)
}

fn evict(entries: &mut HashMap<FileIdentity, Entry>, now: Instant, idle: Duration) {
    entries
        .retain(|_, entry| in_use(entry) || now.saturating_duration_since(entry.last_used) < idle);
}

fn read_whole(file: &File, len: u64) -> io::Result<Arc<[u8]>> {
    let size = usize::try_from(len).map_err(|_| io::Error::other("file too large for memory"))?;
    let mut bytes = vec![0u8; size];
    let mut filled = 0;
    while filled < size {
        match file.read_at(&mut bytes[filled..], filled as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while it was being read",
                ));
            }
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(bytes.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

    use std::io::Write;

    use super::*;

    fn identity_of(file: &File) -> FileIdentity {
        FileIdentity::of(&file.metadata().unwrap())
    }

    fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    /// Waits until the background load of `identity` has finished.
    async fn loaded(cache: &FileCache, identity: FileIdentity) {
        for _ in 0..500 {
            let done = {
                let entries = cache.entries.lock().unwrap();
                entries
                    .get(&identity)
                    .is_some_and(|entry| entry.cell.initialized())
            };
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the file was never loaded into the cache");
    }

    #[tokio::test]
    async fn the_first_transfer_streams_while_the_file_loads_and_later_ones_share_one_copy() {
        let file = temp_file(b"kernel image");
        let cache = FileCache::new(1024);
        let now = Instant::now();
        let open = || File::open(file.path()).unwrap();
        let identity = identity_of(&open());
        let first = cache.contents(identity, open(), 12, now);
        assert!(
            matches!(first, Contents::Loading { .. }),
            "nobody waits for the whole image"
        );
        loaded(&cache, identity).await;
        let second = cache.contents(identity, open(), 12, now);
        let third = cache.contents(identity, open(), 12, now);
        match (&second, &third) {
            (Contents::Memory(a), Contents::Memory(b)) => assert!(Arc::ptr_eq(a, b)),
            other => panic!("expected shared memory sources, got {other:?}"),
        }
        let mut buf = [0u8; 6];
        assert_eq!(third.read_at(7, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"image");
        assert_eq!(
            first.read_at(7, &mut buf).unwrap(),
            5,
            "the file source reads the same"
        );
        assert_eq!(&buf[..5], b"image");
    }

    #[tokio::test]
    async fn blocks_are_lent_from_memory_and_copied_from_a_file() {
        let file = temp_file(b"kernel image");
        let cache = FileCache::new(1024);
        let now = Instant::now();
        let open = || File::open(file.path()).unwrap();
        let identity = identity_of(&open());
        let loading = cache.contents(identity, open(), 12, now);
        loaded(&cache, identity).await;
        let memory = cache.contents(identity, open(), 12, now);
        assert_eq!(memory.lend(7, 5), Some(&b"image"[..]));
        assert_eq!(memory.lend(7, 6), None, "past the end");
        assert_eq!(
            loading.lend(0, 6),
            Some(&b"kernel"[..]),
            "a transfer that started during the load borrows once it is done"
        );
        let over_budget = FileCache::new(4).contents(identity, open(), 12, now);
        assert_eq!(over_budget.lend(0, 6), None);
    }

    #[tokio::test]
    async fn files_over_the_budget_are_read_on_demand() {
        let file = temp_file(&[7u8; 100]);
        let cache = FileCache::new(10);
        let opened = File::open(file.path()).unwrap();
        let identity = identity_of(&opened);
        let source = cache.contents(identity, opened, 100, Instant::now());
        assert!(matches!(source, Contents::File(..)));
        let mut buf = [0u8; 8];
        assert_eq!(source.read_at(96, &mut buf).unwrap(), 4);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(cache.resident_bytes(), 0);
    }

    #[tokio::test]
    async fn unused_entries_make_room_and_idle_ones_are_evicted() {
        let a = temp_file(&[1u8; 60]);
        let b = temp_file(&[2u8; 60]);
        let cache = FileCache::new(100);
        let now = Instant::now();
        let id_a = identity_of(&File::open(a.path()).unwrap());
        let _ = cache.contents(id_a, File::open(a.path()).unwrap(), 60, now);
        loaded(&cache, id_a).await;
        let source_a = cache.contents(id_a, File::open(a.path()).unwrap(), 60, now);
        assert!(matches!(source_a, Contents::Memory(..)));
        let id_b = identity_of(&File::open(b.path()).unwrap());
        // `a` is still being read, so `b` cannot evict it and is served from the file alone.
        let source_b = cache.contents(id_b, File::open(b.path()).unwrap(), 60, now);
        assert!(matches!(source_b, Contents::File(..)));
        drop(source_a);
        let _ = cache.contents(id_b, File::open(b.path()).unwrap(), 60, now);
        loaded(&cache, id_b).await;
        let source_b = cache.contents(id_b, File::open(b.path()).unwrap(), 60, now);
        assert!(matches!(source_b, Contents::Memory(..)));
        assert_eq!(cache.resident_bytes(), 60);
        drop(source_b);
        cache.evict_idle(now + IDLE_EVICTION + Duration::from_secs(1));
        assert_eq!(cache.resident_bytes(), 0);
    }
}
