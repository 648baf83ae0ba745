//! Root confinement for reads and the safe upload path for writes, below a directory fd
//! opened once. Every protocol that serves files goes through here (through
//! [`crate::BootTree`] for reads).
//!
//! # Reads
//! A request name is validated and normalised first (see [`Root::open_read`]): UTF-8, no
//! control characters, `\` mapped to `/`, leading `/` meaning the root, `..` refused. The
//! normalised path is then opened below a directory fd of `tftp.root` held since start-up:
//!
//! - with `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so the kernel refuses
//!   any step (absolute symlink, `..` in a symlink target, a directory renamed away
//!   concurrently) that would leave the root;
//! - where `openat2` is unavailable (kernels before 5.6, or a seccomp filter answering ENOSYS
//!   or EPERM), by a component-by-component walk that opens every component with
//!   `O_PATH | O_NOFOLLOW` and resolves symlinks itself: a relative symlink whose target stays
//!   inside the root is followed (`..` in a target pops a directory fd the walk itself opened,
//!   and popping past the root is refused), an absolute symlink is refused, like
//!   `RESOLVE_BENEATH` does, and more than 40 symlinks count as a loop.
//!
//! Absolute symlinks are refused in both modes, even when they point at a path inside the root.
//! The thing found is first opened `O_PATH` and `fstat`ed so that FIFOs, devices and sockets
//! are never opened at all; then it is opened for reading with `O_NONBLOCK | O_NOCTTY` (a FIFO
//! swapped in meanwhile cannot hang us) and `fstat`ed again: only a regular file is served.
//!
//! # Writes
//! See [`Root::create_upload`] and [`Upload`].

mod name;
mod upload;

#[cfg(test)]
mod tests;

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

pub use kindling_config::OverwritePolicy;
pub use upload::{CommitOutcome, Upload, WritePolicy};

pub(crate) use name::Name;

/// Why a request cannot be served. Each protocol maps it to its own answer (a TFTP error code,
/// an HTTP status) with a client-facing message that never names a server path; the reason in
/// `Forbidden` is for the log only.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file does not exist (TFTP error 1).
    #[error("file not found")]
    NotFound,
    /// The request is refused; the reason is for our log only (TFTP error 2).
    #[error("access violation: {0}")]
    Forbidden(String),
    /// The upload would overwrite an existing file (TFTP error 6).
    #[error("file already exists")]
    Exists,
    /// The disk or quota is full, or the upload is larger than allowed (TFTP error 3).
    #[error("disk full or allocation exceeded")]
    NoSpace,
    /// Anything else (TFTP error 0).
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

impl AccessError {
    /// A refusal with a reason for the log.
    pub fn forbidden(reason: impl Into<String>) -> AccessError {
        AccessError::Forbidden(reason.into())
    }

    /// Maps an error of an `open`/`stat`/`rename` below the root.
    fn from_errno(errno: Errno) -> AccessError {
        match errno {
            Errno::ENOENT | Errno::ENOTDIR => AccessError::NotFound,
            Errno::EACCES | Errno::EPERM => AccessError::forbidden("permission denied"),
            // RESOLVE_BENEATH refusing a step out of the root (absolute symlink, `..` above it).
            Errno::EXDEV => AccessError::forbidden("symlink leaves root"),
            // Symlink loop, or a symlink met where O_NOFOLLOW forbids one.
            Errno::ELOOP => AccessError::forbidden("symlink loop or symlink not allowed here"),
            Errno::ENAMETOOLONG => AccessError::forbidden("name too long"),
            Errno::ENXIO | Errno::ENODEV | Errno::EISDIR => {
                AccessError::forbidden("not a regular file")
            }
            Errno::EROFS => AccessError::forbidden("read-only file system"),
            Errno::ENOSPC | Errno::EDQUOT => AccessError::NoSpace,
            other => AccessError::Io(other.into()),
        }
    }

    /// Maps an error of reading or writing file data.
    fn from_io(err: std::io::Error) -> AccessError {
        match err.raw_os_error() {
            Some(code) if code == libc::ENOSPC || code == libc::EDQUOT => AccessError::NoSpace,
            _ if err.kind() == std::io::ErrorKind::StorageFull => AccessError::NoSpace,
            _ => AccessError::Io(err),
        }
    }
}

/// How paths are resolved below the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolver {
    /// `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`.
    Openat2,
    /// Component-by-component walk with `O_NOFOLLOW` (kernels without `openat2`).
    Walk,
}

/// Symlinks followed during one resolution before it counts as a loop (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;
/// Retries of `openat2` when the kernel answers EAGAIN (a rename raced a `..` step).
const OPENAT2_RETRIES: usize = 8;

/// The boot tree's root directory (`tftp.root`), opened once; every request is resolved below this directory fd, so renaming
/// or replacing the configured path later does not move the root.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    resolver: Resolver,
}

/// A file opened for reading, with what identifies its content.
#[derive(Debug)]
pub struct OpenedFile {
    pub file: std::fs::File,
    pub len: u64,
    /// Cache key: concurrent readers of the same content share one copy.
    pub identity: FileIdentity,
    /// Normalised path inside the root, for logs.
    pub relative: String,
}

/// What identifies a file's content: device, inode, size and modification time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_sec: i64,
    mtime_nsec: i64,
}

impl FileIdentity {
    /// The identity of a file from its metadata.
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.size(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }

    fn from_stat(st: &FileStat) -> FileIdentity {
        FileIdentity {
            dev: st.st_dev,
            ino: st.st_ino,
            len: u64::try_from(st.st_size).unwrap_or(0),
            mtime_sec: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
        }
    }

    /// The size in bytes when the identity was taken.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when the identity was taken.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The path the kernel resolved for an open fd.
fn fd_path(fd: BorrowedFd<'_>) -> Result<PathBuf, AccessError> {
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    std::fs::read_link(link).map_err(|error| {
        AccessError::forbidden(format!("cannot tell where the file lies: {error}"))
    })
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Logs a refusal and returns it.
pub(crate) fn refuse(op: &'static str, requested: &[u8], err: AccessError) -> AccessError {
    match &err {
        AccessError::Forbidden(reason) => {
            tracing::debug!(op, name = ?String::from_utf8_lossy(requested), reason = %reason, "file request refused");
        }
        other => {
            tracing::debug!(op, name = ?String::from_utf8_lossy(requested), error = %other, "file request failed");
        }
    }
    err
}

impl Root {
    /// Opens `tftp.root` (`O_PATH | O_DIRECTORY`) and picks how names will be resolved below
    /// it: `openat2` where the kernel has it, the fallback walk otherwise.
    pub fn open(path: &Path) -> Result<Root, std::io::Error> {
        let mut root = Self::open_with(path, Resolver::Openat2)?;
        root.resolver = probe_openat2(root.fd.as_fd(), path)?;
        Ok(root)
    }

    /// Opens the root with a given resolver (tests exercise both).
    pub(crate) fn open_with(path: &Path, resolver: Resolver) -> Result<Root, std::io::Error> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_owned(),
            resolver,
        })
    }

    /// The configured path of the root, for logs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves a client-supplied name and opens it read-only.
    ///
    /// Errors: a name that breaks the rules, a symlink leading out of the root, anything but a
    /// regular file, or a file the daemon may not read is `Forbidden`; a missing file (or a
    /// missing directory on the way) is `NotFound`. Every refusal is logged at debug level.
    pub fn open_read(&self, requested: &[u8]) -> Result<OpenedFile, AccessError> {
        self.open_read_inner(requested)
            .map_err(|err| refuse("read", requested, err))
    }

    fn open_read_inner(&self, requested: &[u8]) -> Result<OpenedFile, AccessError> {
        let name = Name::parse(requested).map_err(AccessError::forbidden)?;
        // Look before opening: a FIFO, device or socket is never opened at all.
        let probe = self.open_beneath(&name, OFlag::O_PATH)?;
        let st = nix::sys::stat::fstat(&probe).map_err(AccessError::from_errno)?;
        require_regular(&st)?;
        drop(probe);
        // The authoritative check is the fstat after the real open: the name may have been
        // replaced in between. O_NONBLOCK keeps a FIFO swapped in from hanging us; it has no
        // effect on regular files.
        let fd = self.open_beneath(&name, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)?;
        let st = nix::sys::stat::fstat(&fd).map_err(AccessError::from_errno)?;
        require_regular(&st)?;
        let identity = FileIdentity::from_stat(&st);
        Ok(OpenedFile {
            file: std::fs::File::from(fd),
            len: identity.len,
            identity,
            relative: name.relative(),
        })
    }

    /// Whether `file`, opened below this root, lies inside `dir` (relative to the root, as
    /// `tftp.write.dir` is written): the upload inbox, which reads must not reach unless the
    /// caller allows them.
    ///
    /// The answer comes from where the kernel resolved the file, not from the name a client
    /// spelt: the file's real path (from `/proc/self/fd`) is walked from the root one directory
    /// at a time, and each directory on the way is compared with the inbox by device and inode.
    /// So `/uploads/x`, `./uploads//x`, a symlink to the inbox or to a file in it, a bind mount
    /// of it and a case-folding filesystem's `Uploads/x` are all seen as inside. A missing inbox
    /// holds nothing. When the path cannot be established the answer is an error (the caller
    /// refuses the read) rather than a guess.
    pub fn is_inside(&self, dir: &Path, file: &std::fs::File) -> Result<bool, AccessError> {
        let components = Name::parse_dir(dir.as_os_str().as_bytes()).map_err(|reason| {
            AccessError::forbidden(format!("upload directory is invalid: {reason}"))
        })?;
        if components.is_empty() {
            return Ok(true);
        }
        let inbox = match self.open_beneath(&Name::from_components(components), OFlag::O_PATH) {
            Ok(fd) => nix::sys::stat::fstat(&fd).map_err(AccessError::from_errno)?,
            Err(AccessError::NotFound) => return Ok(false),
            Err(other) => return Err(other),
        };
        if file_type(&inbox) != SFlag::S_IFDIR {
            return Ok(false);
        }
        let root_path = fd_path(self.fd.as_fd())?;
        let file_path = fd_path(file.as_fd())?;
        let relative = file_path
            .strip_prefix(&root_path)
            .map_err(|_| AccessError::forbidden("file resolved outside the root"))?;
        let mut current = nix::fcntl::openat(
            &self.fd,
            ".",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(AccessError::from_errno)?;
        let parents = relative
            .parent()
            .map(Path::components)
            .into_iter()
            .flatten();
        for component in parents {
            let std::path::Component::Normal(part) = component else {
                return Err(AccessError::forbidden(
                    "unexpected component in resolved path",
                ));
            };
            current = openat_nofollow(current.as_fd(), part.as_bytes(), OFlag::O_PATH)?;
            let st = nix::sys::stat::fstat(&current).map_err(AccessError::from_errno)?;
            if (st.st_dev, st.st_ino) == (inbox.st_dev, inbox.st_ino) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Opens a validated name below the root with `flags` (plus `O_CLOEXEC`), never leaving it.
    fn open_beneath(&self, name: &Name, flags: OFlag) -> Result<OwnedFd, AccessError> {
        match self.resolver {
            Resolver::Openat2 => openat2_beneath(self.fd.as_fd(), name, flags),
            Resolver::Walk => walk_beneath(self.fd.as_fd(), name.components(), flags),
        }
    }
}

/// Whether `openat2` with `RESOLVE_BENEATH` works here; seccomp filters answer ENOSYS or EPERM
/// for system calls they do not know, old kernels ENOSYS.
fn probe_openat2(root: BorrowedFd<'_>, path: &Path) -> Result<Resolver, std::io::Error> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(root, ".", how) {
        Ok(_) => Ok(Resolver::Openat2),
        Err(Errno::ENOSYS | Errno::EPERM | Errno::EINVAL | Errno::E2BIG) => {
            tracing::info!(
                root = %path.display(),
                "openat2 unavailable; confining boot tree paths with a component-by-component walk"
            );
            Ok(Resolver::Walk)
        }
        Err(other) => Err(other.into()),
    }
}

fn require_regular(st: &FileStat) -> Result<(), AccessError> {
    if file_type(st) == SFlag::S_IFREG {
        Ok(())
    } else {
        Err(AccessError::forbidden("not a regular file"))
    }
}

fn openat2_beneath(
    root: BorrowedFd<'_>,
    name: &Name,
    flags: OFlag,
) -> Result<OwnedFd, AccessError> {
    // Components hold no NUL (control characters are refused), so this cannot fail.
    let path = CString::new(name.relative()).map_err(|_| AccessError::forbidden("NUL in name"))?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut attempts = 0;
    loop {
        match nix::fcntl::openat2(root, path.as_c_str(), how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::EAGAIN | Errno::EINTR) if attempts < OPENAT2_RETRIES => attempts += 1,
            Err(Errno::EAGAIN) => {
                return Err(AccessError::forbidden("path changed during resolution"));
            }
            Err(errno) => return Err(AccessError::from_errno(errno)),
        }
    }
}

/// The fallback resolver: opens `components` below `root` one at a time with
/// `O_PATH | O_NOFOLLOW`, following relative symlinks that stay inside the root and refusing
/// absolute ones, `..` above the root and symlink loops. The final component is opened with
/// `flags | O_NOFOLLOW` after it was seen not to be a symlink, so a symlink swapped in at the
/// last moment fails with ELOOP instead of being followed.
fn walk_beneath(
    root: BorrowedFd<'_>,
    components: &[String],
    flags: OFlag,
) -> Result<OwnedFd, AccessError> {
    use std::collections::VecDeque;

    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut pending: VecDeque<Vec<u8>> = components.iter().map(|c| c.as_bytes().to_vec()).collect();
    let mut symlinks = 0usize;
    while let Some(component) = pending.pop_front() {
        match component.as_slice() {
            b"" | b"." => {
                if pending.is_empty() {
                    let cur = stack.last().map_or(root, AsFd::as_fd);
                    return openat_nofollow(cur, b".", flags);
                }
                continue;
            }
            b".." => {
                // Only symlink targets can bring `..` here; go back up along the fds we opened.
                if stack.pop().is_none() {
                    return Err(AccessError::forbidden("symlink leaves root"));
                }
                if pending.is_empty() {
                    let cur = stack.last().map_or(root, AsFd::as_fd);
                    return openat_nofollow(cur, b".", flags);
                }
                continue;
            }
            _ => {}
        }
        let cur = stack.last().map_or(root, AsFd::as_fd);
        let fd = openat_nofollow(cur, &component, OFlag::O_PATH)?;
        let st = nix::sys::stat::fstat(&fd).map_err(AccessError::from_errno)?;
        let kind = file_type(&st);
        if kind == SFlag::S_IFLNK {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(AccessError::forbidden("symlink loop"));
            }
            // Read the link we opened (empty path on an O_PATH fd), not the name again.
            let target = nix::fcntl::readlinkat(&fd, "").map_err(AccessError::from_errno)?;
            let target = target.as_bytes().to_vec();
            if target.first() == Some(&b'/') {
                return Err(AccessError::forbidden("symlink leaves root"));
            }
            for part in target.split(|&b| b == b'/').rev() {
                pending.push_front(part.to_vec());
            }
            continue;
        }
        if pending.is_empty() {
            if flags.contains(OFlag::O_PATH) {
                return Ok(fd);
            }
            return openat_nofollow(cur, &component, flags);
        }
        if kind != SFlag::S_IFDIR {
            return Err(AccessError::NotFound);
        }
        stack.push(fd);
    }
    // Unreachable with a non-empty name: every path out of the loop returns.
    Err(AccessError::forbidden("empty name"))
}

fn openat_nofollow(
    dir: BorrowedFd<'_>,
    component: &[u8],
    flags: OFlag,
) -> Result<OwnedFd, AccessError> {
    let path = OsStr::from_bytes(component);
    nix::fcntl::openat(
        dir,
        path,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(AccessError::from_errno)
}

/// `renameat2(olddir, old, newdir, new, RENAME_NOREPLACE)`: moves `old` to `new` only if `new`
/// does not exist (EEXIST otherwise), atomically. Filesystems without RENAME_NOREPLACE
/// (EINVAL) get `linkat` + `unlinkat`, which is just as exclusive.
fn rename_noreplace(dir: BorrowedFd<'_>, old: &str, new: &str) -> Result<(), Errno> {
    let old_c = CString::new(old).map_err(|_| Errno::EINVAL)?;
    let new_c = CString::new(new).map_err(|_| Errno::EINVAL)?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&dir);
    // SAFETY: renameat2 only reads the two NUL-terminated strings, which outlive the call, and
    // uses `raw`, a directory fd borrowed for the duration of the call. It writes no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            raw,
            old_c.as_ptr(),
            raw,
            new_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    match Errno::last() {
        Errno::EINVAL | Errno::ENOSYS => link_noreplace(dir, old, new),
        errno => Err(errno),
    }
}

/// The fallback of [`rename_noreplace`] for filesystems without `RENAME_NOREPLACE`: `linkat`
/// fails with EEXIST if `new` exists, then `old` is unlinked.
fn link_noreplace(dir: BorrowedFd<'_>, old: &str, new: &str) -> Result<(), Errno> {
    nix::unistd::linkat(dir, old, dir, new, nix::fcntl::AtFlags::empty())?;
    // `new` is in place; a leftover `old` link is only a stray hidden file.
    if let Err(errno) = nix::unistd::unlinkat(dir, old, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        tracing::warn!(name = old, error = %errno, "cannot remove the old link after linkat");
    }
    Ok(())
}
