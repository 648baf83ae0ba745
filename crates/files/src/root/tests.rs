//! Tests of root confinement and of the upload path, on real directories.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use super::upload::utc_stamp;
use super::*;

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-ROOT";

/// Only one test changes the (process-wide) umask, and only to values that leave files usable
/// by their owner; the lock keeps that test from racing itself if it is ever split.
static UMASK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    NotFound,
    Forbidden,
}

struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let root = base.join("root");
        fs::write(base.join("secret.txt"), SECRET).unwrap();
        fs::create_dir(base.join("outside")).unwrap();
        fs::write(base.join("outside/passwd"), SECRET).unwrap();
        fs::write(base.join("outside/f"), SECRET).unwrap();

        fs::create_dir(&root).unwrap();
        fs::write(root.join("pxelinux.0"), b"pxe").unwrap();
        fs::create_dir_all(root.join("boot/x64")).unwrap();
        fs::write(root.join("boot/x64/wdsnbp.com"), b"wds").unwrap();
        fs::create_dir(root.join("a")).unwrap();
        fs::write(root.join("a/b"), b"ab").unwrap();
        fs::create_dir(root.join("subdir")).unwrap();
        fs::create_dir(root.join("deep")).unwrap();
        fs::write(root.join(".pxelinux.0.kindling-tmp-1-2-3"), SECRET).unwrap();

        // In-root symlinks: allowed.
        symlink("pxelinux.0", root.join("link.0")).unwrap();
        symlink("boot", root.join("dirlink")).unwrap();
        symlink("../pxelinux.0", root.join("boot/up")).unwrap();
        symlink("../boot/x64/../../pxelinux.0", root.join("deep/inner")).unwrap();
        symlink("dirlink/x64/", root.join("chain")).unwrap();

        // Symlinks that leave the root, loop or lead to special files: refused.
        symlink(root.join("pxelinux.0"), root.join("abs_inside")).unwrap();
        symlink("/etc/passwd", root.join("etc_passwd")).unwrap();
        symlink(base.join("secret.txt"), root.join("secret_abs")).unwrap();
        symlink(base.join("outside"), root.join("escape_dir")).unwrap();
        symlink("../secret.txt", root.join("rel_escape")).unwrap();
        symlink("../../secret.txt", root.join("boot/rel_up2")).unwrap();
        symlink("../outside", root.join("rel_dir_escape")).unwrap();
        symlink("../..", root.join("boot/esc")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("self_loop", root.join("self_loop")).unwrap();
        symlink("/dev/null", root.join("devnull")).unwrap();
        symlink(
            "../../../../../../../../../../dev/null",
            root.join("devnull_rel"),
        )
        .unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("proc_root")).unwrap();
        symlink("subdir/../../secret.txt", root.join("sneaky")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        drop(listener);

        Fixture {
            _tmp: tmp,
            base,
            root,
        }
    }

    fn open(&self, resolver: Resolver) -> Root {
        Root::open_with(&self.root, resolver).unwrap()
    }
}

fn resolvers() -> Vec<Resolver> {
    let mut list = vec![Resolver::Walk];
    if openat2_available() {
        list.push(Resolver::Openat2);
    } else {
        eprintln!("openat2 unavailable here: only the fallback walk is tested");
    }
    list
}

fn openat2_available() -> bool {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH)
        .resolve(ResolveFlag::RESOLVE_BENEATH);
    match nix::fcntl::openat2(nix::fcntl::AT_FDCWD, ".", how) {
        Ok(_) => true,
        Err(Errno::ENOSYS | Errno::EPERM) => false,
        Err(other) => panic!("openat2 probe: {other}"),
    }
}

fn read_all(mut opened: OpenedFile) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    opened.file.read_to_end(&mut out).unwrap();
    out
}

fn hostile_corpus() -> Vec<(Vec<u8>, Expect)> {
    use Expect::{Forbidden as F, NotFound as N};
    let mut corpus: Vec<(Vec<u8>, Expect)> = vec![
        (b"../etc/passwd".to_vec(), F),
        (b"..\\..\\windows".to_vec(), F),
        (b"..\\secret.txt".to_vec(), F),
        (b"/../..".to_vec(), F),
        (b"/../secret.txt".to_vec(), F),
        (b"foo/../../bar".to_vec(), F),
        (b"a/./../../b".to_vec(), F),
        (b"pxelinux.0/..".to_vec(), F),
        (b"subdir/../../secret.txt".to_vec(), F),
        (b"%2e%2e/x".to_vec(), N),
        (b"%2e%2e%2fsecret.txt".to_vec(), N),
        (b"..%00".to_vec(), N),
        (b"..;/secret.txt".to_vec(), N),
        (b"....".to_vec(), N),
        (b"/etc/passwd".to_vec(), N),
        (b"\\\\server\\share\\secret.txt".to_vec(), N),
        (b"C:\\secret.txt".to_vec(), N),
        (b"pxelinux.0/x".to_vec(), N),
        (b"a\nb".to_vec(), F),
        (b"pxelinux.0\r".to_vec(), F),
        (b"pxelinux.0\t".to_vec(), F),
        (b"\x1b[31mpxelinux.0".to_vec(), F),
        (b"pxelinux.0\x7f".to_vec(), F),
        (b"pxelinux.0\0../secret.txt".to_vec(), F),
        ("pxe\u{85}linux.0".as_bytes().to_vec(), F),
        (vec![b'a'; 2000], F),
        ([b"a/".as_slice(), &[b'b'; 300]].concat(), F),
        (b"////".to_vec(), F),
        (b"/".to_vec(), F),
        (b"".to_vec(), F),
        (b".".to_vec(), F),
        (b"..".to_vec(), F),
        (b"\xc0\xae\xc0\xae/secret.txt".to_vec(), F),
        (b"\xe0\x80\xaf".to_vec(), F),
        (b"\xff\xfe".to_vec(), F),
        (b"etc_passwd".to_vec(), F),
        (b"secret_abs".to_vec(), F),
        (b"abs_inside".to_vec(), F),
        (b"escape_dir/passwd".to_vec(), F),
        (b"rel_escape".to_vec(), F),
        (b"boot/rel_up2".to_vec(), F),
        (b"rel_dir_escape/passwd".to_vec(), F),
        (b"boot/esc/secret.txt".to_vec(), F),
        (b"dirlink/esc/secret.txt".to_vec(), F),
        (b"sneaky".to_vec(), F),
        (b"proc_root".to_vec(), F),
        (b"loop1".to_vec(), F),
        (b"self_loop".to_vec(), F),
        (b"self_loop/x".to_vec(), F),
        (b"fifo".to_vec(), F),
        (b"sock".to_vec(), F),
        (b"devnull".to_vec(), F),
        (b"devnull_rel".to_vec(), F),
        (b"subdir".to_vec(), F),
        (b"boot/".to_vec(), F),
        (b"dirlink".to_vec(), F),
        (b".pxelinux.0.kindling-tmp-1-2-3".to_vec(), F),
    ];
    corpus.sort();
    corpus.dedup();
    corpus
}

#[test]
fn hostile_names_are_refused_and_nothing_outside_is_read() {
    let fixture = Fixture::new();
    // A device node inside the root, where we may create one.
    let dev = fixture.root.join("null_dev");
    let have_dev = nix::sys::stat::mknod(
        &dev,
        nix::sys::stat::SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .is_ok();
    let mut corpus = hostile_corpus();
    assert!(corpus.len() >= 40, "corpus has {} names", corpus.len());
    if have_dev {
        corpus.push((b"null_dev".to_vec(), Expect::Forbidden));
    }
    for resolver in resolvers() {
        let root = fixture.open(resolver);
        for (name, expect) in &corpus {
            match (root.open_read(name), expect) {
                (Ok(opened), _) => {
                    let content = read_all(opened);
                    assert_ne!(
                        content, SECRET,
                        "{resolver:?} read the secret through {name:?}"
                    );
                    panic!(
                        "{resolver:?}: {:?} was served",
                        String::from_utf8_lossy(name)
                    );
                }
                (Err(AccessError::NotFound), Expect::NotFound) => {}
                (Err(AccessError::Forbidden(_)), Expect::Forbidden) => {}
                (Err(other), _) => panic!(
                    "{resolver:?}: {:?} gave {other:?}, expected {expect:?}",
                    String::from_utf8_lossy(name)
                ),
            }
        }
    }
}

#[test]
fn allowed_names_are_served() {
    let fixture = Fixture::new();
    let cases: &[(&[u8], &[u8], &str)] = &[
        (b"/pxelinux.0", b"pxe", "pxelinux.0"),
        (b"pxelinux.0", b"pxe", "pxelinux.0"),
        (b"//pxelinux.0", b"pxe", "pxelinux.0"),
        (b"./pxelinux.0", b"pxe", "pxelinux.0"),
        (b"./a/b", b"ab", "a/b"),
        (b"a//b", b"ab", "a/b"),
        (b"boot\\x64\\wdsnbp.com", b"wds", "boot/x64/wdsnbp.com"),
        (b"\\boot\\x64\\wdsnbp.com", b"wds", "boot/x64/wdsnbp.com"),
        (b"link.0", b"pxe", "link.0"),
        (b"dirlink/x64/wdsnbp.com", b"wds", "dirlink/x64/wdsnbp.com"),
        (b"boot/up", b"pxe", "boot/up"),
        (b"deep/inner", b"pxe", "deep/inner"),
        (b"chain/wdsnbp.com", b"wds", "chain/wdsnbp.com"),
    ];
    for resolver in resolvers() {
        let root = fixture.open(resolver);
        for (name, content, relative) in cases {
            let opened = root.open_read(name).unwrap_or_else(|e| {
                panic!("{resolver:?}: {:?}: {e:?}", String::from_utf8_lossy(name))
            });
            assert_eq!(opened.relative, *relative);
            assert_eq!(opened.len, content.len() as u64);
            assert_eq!(opened.identity.len(), content.len() as u64);
            assert_eq!(read_all(opened), *content, "{resolver:?} {name:?}");
        }
    }
}

#[test]
fn root_open_picks_openat2_when_the_kernel_has_it() {
    let fixture = Fixture::new();
    let root = Root::open(&fixture.root).unwrap();
    let expected = if openat2_available() {
        Resolver::Openat2
    } else {
        Resolver::Walk
    };
    assert_eq!(root.resolver, expected);
    assert_eq!(root.path(), fixture.root.as_path());
    assert!(Root::open(&fixture.root.join("pxelinux.0")).is_err());
    assert!(Root::open(&fixture.root.join("missing")).is_err());
}

#[test]
fn the_root_stays_put_when_its_path_is_renamed() {
    let fixture = Fixture::new();
    for resolver in resolvers() {
        let root = fixture.open(resolver);
        let moved = fixture.base.join("moved");
        fs::rename(&fixture.root, &moved).unwrap();
        fs::create_dir(&fixture.root).unwrap();
        fs::write(fixture.root.join("pxelinux.0"), SECRET).unwrap();
        assert_eq!(read_all(root.open_read(b"pxelinux.0").unwrap()), b"pxe");
        fs::remove_dir_all(&fixture.root).unwrap();
        fs::rename(&moved, &fixture.root).unwrap();
    }
}

#[test]
fn identity_follows_content() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Walk);
    let first = root.open_read(b"pxelinux.0").unwrap();
    let again = root.open_read(b"/link.0").unwrap();
    assert_eq!(first.identity, again.identity);
    assert_eq!(
        first.identity,
        FileIdentity::of(&first.file.metadata().unwrap())
    );
    assert_ne!(first.identity, root.open_read(b"a/b").unwrap().identity);
    fs::write(fixture.root.join("pxelinux.0"), b"pxe, but longer").unwrap();
    assert_ne!(
        first.identity,
        root.open_read(b"pxelinux.0").unwrap().identity
    );
}

#[test]
fn unreadable_files_are_forbidden() {
    let fixture = Fixture::new();
    let path = fixture.root.join("private");
    fs::write(&path, b"private").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    if nix::unistd::geteuid().is_root() {
        eprintln!("running as root: DAC does not apply, only the errno mapping is checked");
    } else {
        for resolver in resolvers() {
            let err = fixture.open(resolver).open_read(b"private").unwrap_err();
            assert!(matches!(err, AccessError::Forbidden(_)), "{err:?}");
        }
    }
    assert!(matches!(
        AccessError::from_errno(Errno::EACCES),
        AccessError::Forbidden(_)
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::EPERM),
        AccessError::Forbidden(_)
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::ENOENT),
        AccessError::NotFound
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::ENOTDIR),
        AccessError::NotFound
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::ELOOP),
        AccessError::Forbidden(_)
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::EXDEV),
        AccessError::Forbidden(_)
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::ENOSPC),
        AccessError::NoSpace
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::EDQUOT),
        AccessError::NoSpace
    ));
    assert!(matches!(
        AccessError::from_errno(Errno::EIO),
        AccessError::Io(_)
    ));
}

/// `renameat2(RENAME_EXCHANGE)`, for swapping a directory with a symlink while readers run.
fn exchange(dir: &Path, a: &str, b: &str) {
    let dir = fs::File::open(dir).unwrap();
    let a = std::ffi::CString::new(a).unwrap();
    let b = std::ffi::CString::new(b).unwrap();
    // SAFETY: both strings are NUL-terminated and outlive the call; the fd is open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            dir.as_raw_fd(),
            a.as_ptr(),
            dir.as_raw_fd(),
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "renameat2: {}", Errno::last());
}

#[test]
fn concurrent_renames_never_lead_outside() {
    let fixture = Fixture::new();
    fs::create_dir(fixture.root.join("d")).unwrap();
    fs::write(fixture.root.join("d/f"), b"inside").unwrap();
    symlink(fixture.base.join("outside"), fixture.root.join("swap_abs")).unwrap();
    symlink("../outside", fixture.root.join("swap_rel")).unwrap();
    for resolver in resolvers() {
        let root = fixture.open(resolver);
        for swap in ["swap_abs", "swap_rel"] {
            let stop = AtomicBool::new(false);
            let (mut served, mut refused) = (0, 0);
            std::thread::scope(|s| {
                // Stops the swapper even when an assertion below panics (the scope would
                // otherwise wait for it forever).
                struct StopOnDrop<'a>(&'a AtomicBool);
                impl Drop for StopOnDrop<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::Relaxed);
                    }
                }
                let _stop = StopOnDrop(&stop);
                s.spawn(|| {
                    let mut swaps = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        exchange(&fixture.root, "d", swap);
                        swaps += 1;
                    }
                    // Leave "d" the directory.
                    if swaps % 2 == 1 {
                        exchange(&fixture.root, "d", swap);
                    }
                });
                for _ in 0..3000 {
                    match root.open_read(b"d/f") {
                        Ok(opened) => {
                            assert_eq!(read_all(opened), b"inside", "{resolver:?} {swap}");
                            served += 1;
                        }
                        Err(AccessError::Forbidden(_) | AccessError::NotFound) => refused += 1,
                        Err(other) => panic!("{resolver:?} {swap}: {other:?}"),
                    }
                }
            });
            eprintln!("{resolver:?} {swap}: {served} served, {refused} refused");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writes

fn policy(overwrite: OverwritePolicy) -> WritePolicy {
    WritePolicy {
        dir: PathBuf::from("uploads"),
        overwrite,
        max_size: 1 << 20,
    }
}

fn upload(
    root: &Root,
    name: &[u8],
    policy: &WritePolicy,
    data: &[u8],
) -> Result<CommitOutcome, AccessError> {
    let mut upload = root.create_upload(name, policy)?;
    upload.append(data).map_err(AccessError::Io)?;
    upload.commit(SystemTime::now())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn forbidden_reason(result: Result<Upload, AccessError>) -> String {
    match result {
        Err(AccessError::Forbidden(reason)) => reason,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[test]
fn writes_land_in_the_upload_directory_only() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Refuse);
    for name in [
        b"sw1.cfg".as_slice(),
        b"/sw1.cfg",
        b"other/sw1.cfg",
        b"uploadsx/sw1.cfg",
        b"uploads",
        b"/uploads/",
        b"boot/uploads/sw1.cfg",
    ] {
        assert_eq!(
            forbidden_reason(root.create_upload(name, &policy)),
            "outside the upload directory",
            "{name:?}"
        );
    }
    for name in [
        b"uploads/../sw1.cfg".as_slice(),
        b"uploads/a\nb",
        b"uploads/\xff",
        b"../uploads/x",
    ] {
        assert!(
            matches!(
                root.create_upload(name, &policy),
                Err(AccessError::Forbidden(_))
            ),
            "{name:?}"
        );
    }
    assert!(!fixture.root.join("sw1.cfg").exists());
    assert!(!fixture.root.join("other").exists());
    assert!(!fixture.root.join("uploadsx").exists());

    let outcome = upload(&root, b"/uploads/sw1.cfg", &policy, b"hostname sw1\n").unwrap();
    assert_eq!(
        outcome,
        CommitOutcome {
            relative: "uploads/sw1.cfg".into(),
            kept_previous_as: None
        }
    );
    assert_eq!(
        fs::read(fixture.root.join("uploads/sw1.cfg")).unwrap(),
        b"hostname sw1\n"
    );
    assert_eq!(mode_of(&fixture.root.join("uploads")), 0o750);
    assert_eq!(mode_of(&fixture.root.join("uploads/sw1.cfg")), 0o640);

    upload(&root, b"uploads\\sw2.cfg", &policy, b"sw2").unwrap();
    assert_eq!(
        fs::read(fixture.root.join("uploads/sw2.cfg")).unwrap(),
        b"sw2"
    );

    // Subdirectories below the upload directory are created.
    let outcome = upload(&root, b"uploads/site1/rack2/sw3.cfg", &policy, b"sw3").unwrap();
    assert_eq!(outcome.relative, "uploads/site1/rack2/sw3.cfg");
    assert_eq!(
        fs::read(fixture.root.join("uploads/site1/rack2/sw3.cfg")).unwrap(),
        b"sw3"
    );
    assert_eq!(mode_of(&fixture.root.join("uploads/site1")), 0o750);
    assert_eq!(mode_of(&fixture.root.join("uploads/site1/rack2")), 0o750);
    assert_eq!(
        entries(&fixture.root.join("uploads")),
        ["site1", "sw1.cfg", "sw2.cfg"]
    );

    // A nested upload directory, given with a leading slash and a trailing one.
    let nested = WritePolicy {
        dir: PathBuf::from("/backups/switches/"),
        ..policy.clone()
    };
    assert_eq!(
        forbidden_reason(root.create_upload(b"backups/sw1.cfg", &nested)),
        "outside the upload directory"
    );
    upload(&root, b"backups/switches/sw1.cfg", &nested, b"nested").unwrap();
    assert_eq!(
        fs::read(fixture.root.join("backups/switches/sw1.cfg")).unwrap(),
        b"nested"
    );

    // An upload directory that is not a clean relative path refuses everything.
    let bad = WritePolicy {
        dir: PathBuf::from("../outside"),
        ..policy
    };
    assert!(matches!(
        root.create_upload(b"outside/x", &bad),
        Err(AccessError::Forbidden(_))
    ));
    assert_eq!(entries(&fixture.base.join("outside")), ["f", "passwd"]);
}

#[test]
fn refuse_policy_answers_exists_before_any_data() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Refuse);
    upload(&root, b"uploads/sw1.cfg", &policy, b"first").unwrap();
    assert!(matches!(
        root.create_upload(b"uploads/sw1.cfg", &policy),
        Err(AccessError::Exists)
    ));
    assert_eq!(
        fs::read(fixture.root.join("uploads/sw1.cfg")).unwrap(),
        b"first"
    );
    assert_eq!(entries(&fixture.root.join("uploads")), ["sw1.cfg"]);
}

#[test]
fn refuse_policy_never_replaces_a_file_that_appeared_meanwhile() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Refuse);
    let mut up = root.create_upload(b"uploads/sw1.cfg", &policy).unwrap();
    up.append(b"late").unwrap();
    fs::write(fixture.root.join("uploads/sw1.cfg"), b"racer").unwrap();
    assert!(matches!(
        up.commit(SystemTime::now()),
        Err(AccessError::Exists)
    ));
    assert_eq!(
        fs::read(fixture.root.join("uploads/sw1.cfg")).unwrap(),
        b"racer"
    );
    assert_eq!(
        entries(&fixture.root.join("uploads")),
        ["sw1.cfg"],
        "no temporary file left"
    );
}

#[test]
fn replace_policy_replaces() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Replace);
    upload(&root, b"uploads/sw1.cfg", &policy, b"old").unwrap();
    let outcome = upload(&root, b"uploads/sw1.cfg", &policy, b"new").unwrap();
    assert_eq!(outcome.kept_previous_as, None);
    assert_eq!(
        fs::read(fixture.root.join("uploads/sw1.cfg")).unwrap(),
        b"new"
    );
    assert_eq!(entries(&fixture.root.join("uploads")), ["sw1.cfg"]);
}

#[test]
fn versioned_policy_keeps_the_old_file() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Versioned);
    let now = UNIX_EPOCH + Duration::from_secs(1_772_600_767); // 2026-03-04T05:06:07Z
    let dir = fixture.root.join("uploads");

    let mut up = root.create_upload(b"uploads/sw1.cfg", &policy).unwrap();
    up.append(b"v1").unwrap();
    assert_eq!(up.commit(now).unwrap().kept_previous_as, None);

    let mut up = root.create_upload(b"uploads/sw1.cfg", &policy).unwrap();
    up.append(b"v2").unwrap();
    let outcome = up.commit(now).unwrap();
    assert_eq!(outcome.relative, "uploads/sw1.cfg");
    assert_eq!(
        outcome.kept_previous_as.as_deref(),
        Some("uploads/sw1.cfg.20260304T050607Z")
    );
    assert_eq!(fs::read(dir.join("sw1.cfg")).unwrap(), b"v2");
    assert_eq!(
        fs::read(dir.join("sw1.cfg.20260304T050607Z")).unwrap(),
        b"v1"
    );

    // Same second again: the kept copy gets a counter instead of replacing the first one.
    let mut up = root.create_upload(b"uploads/sw1.cfg", &policy).unwrap();
    up.append(b"v3").unwrap();
    let outcome = up.commit(now).unwrap();
    assert_eq!(
        outcome.kept_previous_as.as_deref(),
        Some("uploads/sw1.cfg.20260304T050607Z.1")
    );
    assert_eq!(fs::read(dir.join("sw1.cfg")).unwrap(), b"v3");
    assert_eq!(
        fs::read(dir.join("sw1.cfg.20260304T050607Z")).unwrap(),
        b"v1"
    );
    assert_eq!(
        fs::read(dir.join("sw1.cfg.20260304T050607Z.1")).unwrap(),
        b"v2"
    );

    // A file that appears between the WRQ and the commit is kept too.
    let later = now + Duration::from_secs(60);
    let mut up = root.create_upload(b"uploads/sw9.cfg", &policy).unwrap();
    up.append(b"mine").unwrap();
    fs::write(dir.join("sw9.cfg"), b"racer").unwrap();
    let outcome = up.commit(later).unwrap();
    assert_eq!(
        outcome.kept_previous_as.as_deref(),
        Some("uploads/sw9.cfg.20260304T050707Z")
    );
    assert_eq!(fs::read(dir.join("sw9.cfg")).unwrap(), b"mine");
    assert_eq!(
        fs::read(dir.join("sw9.cfg.20260304T050707Z")).unwrap(),
        b"racer"
    );
    assert_eq!(mode_of(&dir.join("sw9.cfg")), 0o640);

    assert_eq!(
        entries(&dir),
        [
            "sw1.cfg",
            "sw1.cfg.20260304T050607Z",
            "sw1.cfg.20260304T050607Z.1",
            "sw9.cfg",
            "sw9.cfg.20260304T050707Z"
        ]
    );

    // Names too long to carry the suffix are refused up front.
    let long = format!("uploads/{}", "x".repeat(240));
    assert_eq!(
        forbidden_reason(root.create_upload(long.as_bytes(), &policy)),
        "name too long to keep versions of"
    );
}

#[test]
fn utc_stamps() {
    assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
    assert_eq!(
        utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "20000229T000000Z"
    );
    assert_eq!(
        utc_stamp(UNIX_EPOCH + Duration::from_secs(1_772_600_767)),
        "20260304T050607Z"
    );
    assert_eq!(
        utc_stamp(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
        "20991231T235959Z"
    );
    assert_eq!(
        utc_stamp(UNIX_EPOCH - Duration::from_secs(10)),
        "19700101T000000Z"
    );
}

#[test]
fn uploads_are_0640_and_directories_0750_whatever_the_umask() {
    let _guard = UMASK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Refuse);
    for (i, mask) in [0o077u32, 0o000, 0o027, 0o002].into_iter().enumerate() {
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(mask));
        let name = format!("uploads/m{i}/sw.cfg");
        let result = root.create_upload(name.as_bytes(), &policy);
        nix::sys::stat::umask(old);
        let mut up = result.unwrap();
        up.append(b"x").unwrap();
        let dir = fixture.root.join(format!("uploads/m{i}"));
        let temps = entries(&dir);
        assert_eq!(temps.len(), 1);
        assert!(temps[0].starts_with(".sw.cfg.kindling-tmp-"), "{temps:?}");
        assert_eq!(
            mode_of(&dir.join(&temps[0])),
            0o640,
            "temp file, umask {mask:o}"
        );
        up.commit(SystemTime::now()).unwrap();
        assert_eq!(mode_of(&dir.join("sw.cfg")), 0o640, "umask {mask:o}");
        assert_eq!(mode_of(&dir), 0o750, "umask {mask:o}");
    }
}

#[test]
fn dropped_uploads_leave_nothing_behind() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    for overwrite in [
        OverwritePolicy::Refuse,
        OverwritePolicy::Replace,
        OverwritePolicy::Versioned,
    ] {
        let policy = policy(overwrite);
        let mut up = root.create_upload(b"uploads/partial.cfg", &policy).unwrap();
        up.append(&[7u8; 100_000]).unwrap();
        assert_eq!(up.written(), 100_000);
        assert_eq!(up.relative(), "uploads/partial.cfg");
        assert_eq!(
            entries(&fixture.root.join("uploads")).len(),
            1,
            "the temporary file exists"
        );
        drop(up);
        assert!(
            entries(&fixture.root.join("uploads")).is_empty(),
            "{overwrite:?}"
        );
    }
}

#[test]
fn temporary_files_are_neither_served_nor_writable_by_name() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Replace);
    let up = root.create_upload(b"uploads/sw1.cfg", &policy).unwrap();
    let temp = entries(&fixture.root.join("uploads")).remove(0);
    let name = format!("uploads/{temp}");
    for resolver in resolvers() {
        let err = fixture
            .open(resolver)
            .open_read(name.as_bytes())
            .unwrap_err();
        assert!(matches!(err, AccessError::Forbidden(_)), "{err:?}");
    }
    assert!(matches!(
        root.create_upload(name.as_bytes(), &policy),
        Err(AccessError::Forbidden(_))
    ));
    drop(up);
}

#[test]
fn writes_never_follow_symlinks() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let uploads = fixture.root.join("uploads");
    fs::create_dir(&uploads).unwrap();
    symlink(fixture.base.join("secret.txt"), uploads.join("abs.cfg")).unwrap();
    symlink("../../secret.txt", uploads.join("rel.cfg")).unwrap();
    symlink(
        fixture.base.join("outside/new.cfg"),
        uploads.join("dangling.cfg"),
    )
    .unwrap();
    symlink("../pxelinux.0", uploads.join("inside.cfg")).unwrap();
    symlink(fixture.base.join("outside"), uploads.join("subout")).unwrap();
    fs::create_dir(uploads.join("adir")).unwrap();
    nix::unistd::mkfifo(&uploads.join("fifo.cfg"), Mode::from_bits_truncate(0o644)).unwrap();
    for overwrite in [
        OverwritePolicy::Refuse,
        OverwritePolicy::Replace,
        OverwritePolicy::Versioned,
    ] {
        let policy = policy(overwrite);
        for name in ["abs.cfg", "rel.cfg", "dangling.cfg", "inside.cfg"] {
            let reason =
                forbidden_reason(root.create_upload(format!("uploads/{name}").as_bytes(), &policy));
            assert_eq!(reason, "symlink at the final name", "{name} {overwrite:?}");
        }
        for name in ["adir", "fifo.cfg"] {
            let reason =
                forbidden_reason(root.create_upload(format!("uploads/{name}").as_bytes(), &policy));
            assert_eq!(reason, "not a regular file", "{name} {overwrite:?}");
        }
        let reason = forbidden_reason(root.create_upload(b"uploads/subout/x.cfg", &policy));
        assert_eq!(reason, "symlink in the upload path");
    }
    assert_eq!(fs::read(fixture.base.join("secret.txt")).unwrap(), SECRET);
    assert_eq!(fs::read(fixture.root.join("pxelinux.0")).unwrap(), b"pxe");
    assert_eq!(entries(&fixture.base.join("outside")), ["f", "passwd"]);

    // The upload directory itself being a symlink is refused too.
    let other = Fixture::new();
    symlink("../outside", other.root.join("uploads")).unwrap();
    let root = other.open(Resolver::Openat2);
    let reason =
        forbidden_reason(root.create_upload(b"uploads/x.cfg", &policy(OverwritePolicy::Replace)));
    assert_eq!(reason, "symlink in the upload path");
    assert_eq!(entries(&other.base.join("outside")), ["f", "passwd"]);
}

#[test]
fn a_symlink_that_appears_before_commit_is_never_followed() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let uploads = fixture.root.join("uploads");
    for overwrite in [
        OverwritePolicy::Refuse,
        OverwritePolicy::Replace,
        OverwritePolicy::Versioned,
    ] {
        let mut up = root
            .create_upload(b"uploads/late.cfg", &policy(overwrite))
            .unwrap();
        up.append(b"payload").unwrap();
        symlink(fixture.base.join("secret.txt"), uploads.join("late.cfg")).unwrap();
        let result = up.commit(SystemTime::now());
        match overwrite {
            OverwritePolicy::Refuse => {
                assert!(matches!(result, Err(AccessError::Exists)), "{result:?}")
            }
            _ => assert!(
                matches!(result, Err(AccessError::Forbidden(_))),
                "{overwrite:?}: {result:?}"
            ),
        }
        assert_eq!(fs::read(fixture.base.join("secret.txt")).unwrap(), SECRET);
        assert!(
            fs::symlink_metadata(uploads.join("late.cfg"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(entries(&uploads), ["late.cfg"], "no temporary file left");
        fs::remove_file(uploads.join("late.cfg")).unwrap();
    }
}

#[test]
fn max_size_is_enforced_by_append() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = WritePolicy {
        max_size: 10,
        ..policy(OverwritePolicy::Refuse)
    };
    let mut up = root.create_upload(b"uploads/small.cfg", &policy).unwrap();
    up.append(b"123456").unwrap();
    let err = up.append(b"78901").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    assert_eq!(up.written(), 6);
    up.append(b"7890").unwrap();
    assert_eq!(up.written(), 10);
    assert_eq!(
        up.append(b"x").unwrap_err().kind(),
        std::io::ErrorKind::StorageFull
    );
    up.append(b"").unwrap();
    up.commit(SystemTime::now()).unwrap();
    assert_eq!(
        fs::read(fixture.root.join("uploads/small.cfg")).unwrap(),
        b"1234567890"
    );
}

#[test]
fn large_uploads_are_written_in_order() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = policy(OverwritePolicy::Refuse);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut up = root.create_upload(b"uploads/big.bin", &policy).unwrap();
    let mut offset = 0;
    for size in [512usize, 1468, 100_000, 7, 65_536, 65_464].iter().cycle() {
        if offset == data.len() {
            break;
        }
        let end = (offset + size).min(data.len());
        up.append(&data[offset..end]).unwrap();
        offset = end;
    }
    assert_eq!(up.written(), data.len() as u64);
    up.commit(SystemTime::now()).unwrap();
    assert_eq!(
        fs::read(fixture.root.join("uploads/big.bin")).unwrap(),
        data
    );
}

#[test]
fn empty_uploads_and_the_whole_root_as_upload_directory() {
    let fixture = Fixture::new();
    let root = fixture.open(Resolver::Openat2);
    let policy = WritePolicy {
        dir: PathBuf::from("."),
        ..policy(OverwritePolicy::Refuse)
    };
    let up = root.create_upload(b"/empty.cfg", &policy).unwrap();
    assert_eq!(up.commit(SystemTime::now()).unwrap().relative, "empty.cfg");
    assert_eq!(fs::read(fixture.root.join("empty.cfg")).unwrap(), b"");
    assert!(matches!(
        root.create_upload(b"pxelinux.0", &policy),
        Err(AccessError::Exists)
    ));
    assert!(matches!(
        root.create_upload(b"link.0", &policy),
        Err(AccessError::Forbidden(_))
    ));
}

#[test]
fn rename_fallback_never_replaces() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fs::File::open(tmp.path()).unwrap();
    fs::write(tmp.path().join("a"), b"a").unwrap();
    fs::write(tmp.path().join("b"), b"b").unwrap();
    for rename in [rename_noreplace, link_noreplace] {
        assert_eq!(rename(dir.as_fd(), "a", "b"), Err(Errno::EEXIST));
        assert_eq!(fs::read(tmp.path().join("b")).unwrap(), b"b");
        rename(dir.as_fd(), "a", "c").unwrap();
        assert_eq!(entries(tmp.path()), ["b", "c"]);
        assert_eq!(fs::read(tmp.path().join("c")).unwrap(), b"a");
        fs::rename(tmp.path().join("c"), tmp.path().join("a")).unwrap();
    }
}

#[test]
fn the_inbox_is_recognised_by_where_a_file_resolves_not_by_its_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    fs::create_dir_all(base.join("uploads/site1")).unwrap();
    fs::write(base.join("uploads/sw1.cfg"), b"enable secret 5 x").unwrap();
    fs::write(base.join("uploads/site1/sw2.cfg"), b"snmp community").unwrap();
    fs::create_dir(base.join("uploadsx")).unwrap();
    fs::write(base.join("uploadsx/f"), b"not the inbox").unwrap();
    fs::write(base.join("pxelinux.0"), b"pxe").unwrap();
    symlink("uploads/sw1.cfg", base.join("latest.cfg")).unwrap();
    symlink("uploads", base.join("backups")).unwrap();
    symlink("../uploads/site1", base.join("uploadsx/site")).unwrap();
    let inside: &[&[u8]] = &[
        b"uploads/sw1.cfg",
        b"/uploads/sw1.cfg",
        b"./uploads//sw1.cfg",
        b"uploads\\sw1.cfg",
        b"uploads/./site1/sw2.cfg",
        b"latest.cfg",
        b"backups/sw1.cfg",
        b"uploadsx/site/sw2.cfg",
    ];
    let outside: &[&[u8]] = &[b"pxelinux.0", b"uploadsx/f"];
    for resolver in resolvers() {
        let root = Root::open_with(base, resolver).unwrap();
        for name in inside {
            let opened = root.open_read(name).unwrap();
            assert!(
                root.is_inside(Path::new("uploads"), &opened.file).unwrap(),
                "{resolver:?}: {:?} not seen in the inbox",
                String::from_utf8_lossy(name)
            );
        }
        for name in outside {
            let opened = root.open_read(name).unwrap();
            assert!(
                !root.is_inside(Path::new("uploads"), &opened.file).unwrap(),
                "{resolver:?}: {:?} seen in the inbox",
                String::from_utf8_lossy(name)
            );
        }
        let opened = root.open_read(b"uploads/site1/sw2.cfg").unwrap();
        assert!(
            root.is_inside(Path::new("uploads/site1"), &opened.file)
                .unwrap()
        );
        assert!(!root.is_inside(Path::new("missing"), &opened.file).unwrap());
        assert!(
            !root
                .is_inside(Path::new("pxelinux.0"), &opened.file)
                .unwrap()
        );
    }
}
