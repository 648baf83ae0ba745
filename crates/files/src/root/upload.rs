//! The upload path: a WRQ name is validated like a read, must lie in the upload directory, and
//! its data goes to a hidden temporary file in the final directory that is fsynced and renamed
//! into place only on [`Upload::commit`].
//!
//! Decisions:
//! - Missing directories on the way (the upload directory itself, and subdirectories below it,
//!   so that `tftp://HOST/uploads/site1/sw1.cfg` works) are created with mode 0750 (set with
//!   `fchmod`, whatever the umask) and the parent directory is fsynced.
//! - No symlink is ever followed on the write path, not even one the administrator made: every
//!   directory is opened with `O_NOFOLLOW`, the final name is checked with
//!   `AT_SYMLINK_NOFOLLOW`, the temporary file is created with `O_EXCL | O_NOFOLLOW`, and
//!   renames replace directory entries without following them.
//! - In `versioned` mode the final name may be at most 234 bytes, so that the kept copy's
//!   `NAME.YYYYMMDDTHHMMSSZ.NNN` still fits in a 255-byte component.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::name::{MAX_COMPONENT, Name, TEMP_MARKER};
use super::{AccessError, OverwritePolicy, Root, file_type, refuse, rename_noreplace};

/// Mode of uploaded files: owner read/write, group read, never world-accessible.
const FILE_MODE: u32 = 0o640;
/// Mode of directories created for uploads.
const DIR_MODE: u32 = 0o750;
/// Data is written in chunks of this size rather than one `write` per protocol block.
const BUFFER: usize = 64 * 1024;
/// `.YYYYMMDDTHHMMSSZ.NNN`: the longest suffix of a kept copy in versioned mode.
const VERSION_SUFFIX_MAX: usize = 1 + 16 + 4;
/// Highest `.N` appended when timestamped names collide.
const MAX_VERSION_N: u32 = 999;
/// How often commit retries when racing uploads keep recreating the final name.
const COMMIT_ATTEMPTS: usize = 8;
/// Bytes of the final name kept in the temporary file's name.
const TEMP_STEM: usize = 120;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where and how uploads may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePolicy {
    /// The upload directory, relative to the root (e.g. `uploads`).
    pub dir: PathBuf,
    pub overwrite: OverwritePolicy,
    /// Largest upload accepted, in bytes.
    pub max_size: u64,
}

impl WritePolicy {
    /// The policy of a `tftp.write` config section.
    pub fn from_config(config: &kindling_config::TftpWriteConfig) -> WritePolicy {
        WritePolicy {
            dir: config.dir.clone(),
            overwrite: config.overwrite,
            max_size: config.max_size,
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The final path inside the root.
    pub relative: String,
    /// In versioned mode, where the file previously at that name was kept (path inside the root).
    pub kept_previous_as: Option<String>,
}

/// An upload in progress: owns a hidden temporary file in the final directory, which is
/// removed on drop unless the upload was committed.
pub struct Upload {
    dir: OwnedFd,
    file: File,
    buf: Vec<u8>,
    temp: String,
    file_name: String,
    dir_relative: String,
    relative: String,
    overwrite: OverwritePolicy,
    max_size: u64,
    written: u64,
    committed: bool,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("relative", &self.relative)
            .field("temp", &self.temp)
            .field("overwrite", &self.overwrite)
            .field("written", &self.written)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

impl Root {
    /// Validates a WRQ name and creates a hidden temporary file in the target directory.
    ///
    /// The name follows the read rules and is resolved from the root (never prefixed with the
    /// upload directory); it must lie strictly inside `policy.dir`, compared component by
    /// component after normalisation. A regular file already at the name is `Exists` under
    /// [`OverwritePolicy::Refuse`]; a symlink, directory or special file there is `Forbidden`.
    /// Missing directories are created (0750). Whether writes are enabled at all, and for whom,
    /// is the caller's decision.
    pub fn create_upload(
        &self,
        requested: &[u8],
        policy: &WritePolicy,
    ) -> Result<Upload, AccessError> {
        self.create_upload_inner(requested, policy)
            .map_err(|err| refuse("write", requested, err))
    }

    fn create_upload_inner(
        &self,
        requested: &[u8],
        policy: &WritePolicy,
    ) -> Result<Upload, AccessError> {
        let name = Name::parse(requested).map_err(AccessError::forbidden)?;
        let upload_dir = Name::parse_dir(policy.dir.as_os_str().as_bytes()).map_err(|reason| {
            AccessError::forbidden(format!("upload directory is invalid: {reason}"))
        })?;
        let components = name.components();
        if components.len() <= upload_dir.len() || components[..upload_dir.len()] != upload_dir[..]
        {
            return Err(AccessError::forbidden("outside the upload directory"));
        }
        let file_name = name.file_name();
        if policy.overwrite == OverwritePolicy::Versioned
            && file_name.len() > MAX_COMPONENT - VERSION_SUFFIX_MAX
        {
            return Err(AccessError::forbidden("name too long to keep versions of"));
        }

        let dir = open_upload_dir(self, name.parent())?;
        if let Some(existing) = stat_nofollow(&dir, file_name)? {
            check_replaceable(existing)?;
            if policy.overwrite == OverwritePolicy::Refuse {
                return Err(AccessError::Exists);
            }
        }

        let (temp, file) = create_temp(&dir, file_name)?;
        Ok(Upload {
            dir,
            file,
            buf: Vec::new(),
            temp,
            file_name: file_name.to_owned(),
            dir_relative: name.parent().join("/"),
            relative: name.relative(),
            overwrite: policy.overwrite,
            max_size: policy.max_size,
            written: 0,
            committed: false,
        })
    }
}

impl Upload {
    /// The final path inside the root, for logs.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// Bytes accepted so far (some may still be buffered).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends data. Fails with [`io::ErrorKind::StorageFull`] when the disk or quota is full
    /// or when the upload would grow beyond the policy's `max_size`.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let total = self
            .written
            .checked_add(data.len() as u64)
            .filter(|&n| n <= self.max_size);
        let Some(total) = total else {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "upload larger than the configured max_size",
            ));
        };
        if self.buf.len() + data.len() > BUFFER {
            self.flush_buf()?;
        }
        if data.len() >= BUFFER {
            (&self.file).write_all(data).map_err(storage_full)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        self.written = total;
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            (&self.file).write_all(&self.buf).map_err(storage_full)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Makes the upload durable under its final name: writes out the buffer, fsyncs the file,
    /// renames it into place as the overwrite policy says, and fsyncs the directory, all before
    /// returning. `now` names the kept copy in versioned mode (UTC).
    ///
    /// - `Refuse`: `RENAME_NOREPLACE`; a file that appeared at the name since the WRQ is never
    ///   replaced (`Exists`).
    /// - `Replace`: plain atomic `renameat`.
    /// - `Versioned`: an existing file is first renamed (`RENAME_NOREPLACE`) to
    ///   `NAME.YYYYMMDDTHHMMSSZ` (or `.1`, `.2`... after it), then the upload moves in with
    ///   `RENAME_NOREPLACE`; racing uploads make it try again a few times.
    ///
    /// On error the temporary file is removed (when `self` drops) and nothing was replaced.
    pub fn commit(mut self, now: SystemTime) -> Result<CommitOutcome, AccessError> {
        let result = self.commit_inner(now);
        match &result {
            Ok(outcome) => tracing::debug!(
                file = %outcome.relative,
                bytes = self.written,
                kept_previous_as = ?outcome.kept_previous_as,
                "upload committed"
            ),
            Err(AccessError::Forbidden(reason)) => {
                tracing::debug!(file = %self.relative, reason = %reason, "upload refused at commit");
            }
            Err(err) => {
                tracing::debug!(file = %self.relative, error = %err, "upload failed at commit")
            }
        }
        result
    }

    fn commit_inner(&mut self, now: SystemTime) -> Result<CommitOutcome, AccessError> {
        self.flush_buf().map_err(AccessError::from_io)?;
        self.file.sync_all().map_err(AccessError::from_io)?;
        let kept = match self.overwrite {
            OverwritePolicy::Refuse => {
                rename_noreplace(self.dir.as_fd(), &self.temp, &self.file_name).map_err(
                    |errno| {
                        if errno == Errno::EEXIST {
                            AccessError::Exists
                        } else {
                            AccessError::from_errno(errno)
                        }
                    },
                )?;
                self.committed = true;
                None
            }
            OverwritePolicy::Replace => {
                if let Some(existing) = stat_nofollow(&self.dir, &self.file_name)? {
                    check_replaceable(existing)?;
                }
                nix::fcntl::renameat(
                    &self.dir,
                    self.temp.as_str(),
                    &self.dir,
                    self.file_name.as_str(),
                )
                .map_err(AccessError::from_errno)?;
                self.committed = true;
                None
            }
            OverwritePolicy::Versioned => self.commit_versioned(now)?,
        };
        nix::unistd::fsync(&self.dir).map_err(|errno| AccessError::Io(errno.into()))?;
        Ok(CommitOutcome {
            relative: self.relative.clone(),
            kept_previous_as: kept.map(|name| self.in_dir(&name)),
        })
    }

    fn commit_versioned(&mut self, now: SystemTime) -> Result<Option<String>, AccessError> {
        let mut kept = None;
        for _ in 0..COMMIT_ATTEMPTS {
            match rename_noreplace(self.dir.as_fd(), &self.temp, &self.file_name) {
                Ok(()) => {
                    self.committed = true;
                    return Ok(kept);
                }
                Err(Errno::EEXIST) => {}
                Err(errno) => return Err(AccessError::from_errno(errno)),
            }
            if let Some(existing) = stat_nofollow(&self.dir, &self.file_name)? {
                check_replaceable(existing)?;
            }
            if let Some(name) = self.move_aside(now)? {
                kept = Some(name);
            }
        }
        Err(AccessError::Exists)
    }

    /// Renames the file at the final name to its timestamped sibling, never replacing one.
    /// `None` when the final name vanished meanwhile.
    fn move_aside(&self, now: SystemTime) -> Result<Option<String>, AccessError> {
        let stamp = utc_stamp(now);
        for n in 0..=MAX_VERSION_N {
            let candidate = if n == 0 {
                format!("{}.{stamp}", self.file_name)
            } else {
                format!("{}.{stamp}.{n}", self.file_name)
            };
            match rename_noreplace(self.dir.as_fd(), &self.file_name, &candidate) {
                Ok(()) => return Ok(Some(candidate)),
                Err(Errno::EEXIST) => {}
                Err(Errno::ENOENT) => return Ok(None),
                Err(errno) => return Err(AccessError::from_errno(errno)),
            }
        }
        Err(AccessError::Exists)
    }

    fn in_dir(&self, file_name: &str) -> String {
        if self.dir_relative.is_empty() {
            file_name.to_owned()
        } else {
            format!("{}/{file_name}", self.dir_relative)
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        match nix::unistd::unlinkat(&self.dir, self.temp.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(errno) => {
                tracing::warn!(file = %self.relative, temp = %self.temp, error = %errno, "cannot remove the temporary file of an abandoned upload");
            }
        }
    }
}

/// EDQUOT is reported as StorageFull like ENOSPC, so callers need to check one kind.
fn storage_full(err: io::Error) -> io::Error {
    if err.raw_os_error() == Some(libc::EDQUOT) {
        io::Error::new(io::ErrorKind::StorageFull, err)
    } else {
        err
    }
}

/// Opens (creating where missing) the directories `components` below the root, never
/// following a symlink. The returned fd is readable, so it can be fsynced.
fn open_upload_dir(root: &Root, components: &[String]) -> Result<OwnedFd, AccessError> {
    let mut dir = nix::fcntl::openat(
        &root.fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(AccessError::from_errno)?;
    for component in components {
        dir = open_or_create_dir(&dir, component)?;
    }
    Ok(dir)
}

fn open_or_create_dir(parent: &OwnedFd, component: &str) -> Result<OwnedFd, AccessError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let open = || match nix::fcntl::openat(parent, component, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP | Errno::ENOTDIR) => Err(not_a_directory(parent, component)),
        Err(errno) => Err(AccessError::from_errno(errno)),
    };
    if let Some(fd) = open()? {
        return Ok(fd);
    }
    let created =
        match nix::sys::stat::mkdirat(parent, component, Mode::from_bits_truncate(DIR_MODE)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(errno) => return Err(AccessError::from_errno(errno)),
        };
    let fd = open()?.ok_or(AccessError::NotFound)?;
    if created {
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(DIR_MODE))
            .map_err(AccessError::from_errno)?;
        nix::unistd::fsync(parent).map_err(|errno| AccessError::Io(errno.into()))?;
        tracing::debug!(dir = component, "created upload directory");
    }
    Ok(fd)
}

fn not_a_directory(parent: &OwnedFd, component: &str) -> AccessError {
    match stat_nofollow(parent, component) {
        Ok(Some(SFlag::S_IFLNK)) => AccessError::forbidden("symlink in the upload path"),
        Ok(Some(_)) => AccessError::forbidden("not a directory in the upload path"),
        Ok(None) => AccessError::NotFound,
        Err(err) => err,
    }
}

/// The type of what is at `name` in `dir`, without following a symlink; `None` if nothing.
fn stat_nofollow(dir: &OwnedFd, name: &str) -> Result<Option<SFlag>, AccessError> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(file_type(&st))),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(AccessError::from_errno(errno)),
    }
}

/// Only a regular file may be replaced or kept as a version.
fn check_replaceable(existing: SFlag) -> Result<(), AccessError> {
    match existing {
        SFlag::S_IFREG => Ok(()),
        SFlag::S_IFLNK => Err(AccessError::forbidden("symlink at the final name")),
        _ => Err(AccessError::forbidden("not a regular file")),
    }
}

/// Creates `.NAME.kindling-tmp-PID-N-NANOS` exclusively, mode 0640 whatever the umask.
fn create_temp(dir: &OwnedFd, file_name: &str) -> Result<(String, File), AccessError> {
    let mut end = file_name.len().min(TEMP_STEM);
    while !file_name.is_char_boundary(end) {
        end -= 1;
    }
    let stem = &file_name[..end];
    let pid = std::process::id();
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for _ in 0..16 {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temp = format!(".{stem}{TEMP_MARKER}{pid}-{n}-{nanos:08x}");
        let fd = match nix::fcntl::openat(
            dir,
            temp.as_str(),
            flags,
            Mode::from_bits_truncate(FILE_MODE),
        ) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => continue,
            Err(errno) => return Err(AccessError::from_errno(errno)),
        };
        if let Err(errno) = nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(FILE_MODE)) {
            let _ = nix::unistd::unlinkat(dir, temp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(AccessError::from_errno(errno));
        }
        return Ok((temp, File::from(fd)));
    }
    Err(AccessError::Io(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    )))
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub(super) fn utc_stamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
