//! The boot tree's resolver: generated names before the disk, the inbox, and one root swapped
//! for another on reload.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kindling_files::{
    AccessError, BootFile, BootTree, Client, Generator, Inbox, Lookup, Origin, TreeConfig,
};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 7));

/// Answers `boot.ipxe` with a script naming the client, and records every name it is asked.
#[derive(Debug, Default)]
struct Scripts {
    asked: Mutex<Vec<String>>,
}

impl Generator for Scripts {
    fn generate(&self, name: &str, client: &Client) -> Option<Result<Vec<u8>, AccessError>> {
        self.asked.lock().unwrap().push(name.to_string());
        (name == "boot.ipxe").then(|| Ok(format!("#!ipxe\necho {}\n", client.address).into_bytes()))
    }
}

fn tree(root: &Path) -> BootTree {
    BootTree::open(&TreeConfig {
        root: root.to_path_buf(),
        cache_size: 1 << 20,
        inbox: "uploads".into(),
    })
    .unwrap()
}

fn lookup(name: &[u8], inbox: Inbox) -> Lookup<'_> {
    Lookup {
        name,
        client: CLIENT,
        inbox,
    }
}

fn bytes(file: &BootFile) -> Vec<u8> {
    let mut out = vec![0u8; file.len() as usize];
    let n = file.contents.read_at(0, &mut out).unwrap();
    out.truncate(n);
    out
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("boot.ipxe"), b"#!ipxe\necho from disk\n").unwrap();
    std::fs::write(dir.path().join("ipxe.efi"), b"MZ efi").unwrap();
    std::fs::create_dir(dir.path().join("uploads")).unwrap();
    std::fs::write(dir.path().join("uploads/sw1.cfg"), b"enable secret 5 x").unwrap();
    dir
}

#[tokio::test]
async fn a_generator_answers_its_names_and_leaves_the_rest_to_the_disk() {
    let dir = fixture();
    let tree = tree(dir.path());
    let now = Instant::now();
    let before = tree
        .resolve(&lookup(b"boot.ipxe", Inbox::Hidden), now)
        .unwrap();
    assert_eq!(bytes(&before), b"#!ipxe\necho from disk\n");
    assert!(matches!(before.origin, Origin::Disk(_)));

    let scripts = Arc::new(Scripts::default());
    tree.set_generator(Some(scripts.clone()));
    let generated = tree
        .resolve(&lookup(b"/boot.ipxe", Inbox::Hidden), now)
        .unwrap();
    assert_eq!(generated.origin, Origin::Generated);
    assert_eq!(bytes(&generated), b"#!ipxe\necho 10.99.0.7\n");
    assert_eq!(generated.relative, "boot.ipxe");

    let disk = tree
        .resolve(&lookup(b"ipxe.efi", Inbox::Hidden), now)
        .unwrap();
    assert_eq!(bytes(&disk), b"MZ efi");

    // Hostile names are refused by the name rules before the generator is asked.
    for hostile in [
        &b"../boot.ipxe"[..],
        b"a/../../boot.ipxe",
        b"boot.ipxe\0",
        b"\xff",
    ] {
        let refused = tree.resolve(&lookup(hostile, Inbox::Hidden), now);
        assert!(
            matches!(refused, Err(AccessError::Forbidden(_))),
            "{hostile:?}"
        );
    }
    assert_eq!(
        *scripts.asked.lock().unwrap(),
        ["boot.ipxe", "ipxe.efi"],
        "the generator sees normalised names that passed the rules, nothing else"
    );
}

#[tokio::test]
async fn the_inbox_is_served_only_to_who_may_read_it() {
    let dir = fixture();
    let tree = tree(dir.path());
    let now = Instant::now();
    for name in [
        &b"uploads/sw1.cfg"[..],
        b"/uploads//sw1.cfg",
        b"uploads\\sw1.cfg",
    ] {
        assert!(
            matches!(
                tree.resolve(&lookup(name, Inbox::Hidden), now),
                Err(AccessError::Forbidden(_))
            ),
            "{name:?}"
        );
        let readable = tree.resolve(&lookup(name, Inbox::Readable), now).unwrap();
        assert_eq!(bytes(&readable), b"enable secret 5 x");
    }
}

#[tokio::test]
async fn a_prepared_root_serves_once_installed_and_a_missing_one_changes_nothing() {
    let dir = fixture();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("ipxe.efi"), b"MZ new").unwrap();
    let tree = tree(dir.path());
    let now = Instant::now();
    let config = |root: &Path| TreeConfig {
        root: root.to_path_buf(),
        cache_size: 1 << 20,
        inbox: "uploads".into(),
    };
    assert!(BootTree::prepare(&config(&dir.path().join("missing"))).is_err());
    let prepared = BootTree::prepare(&config(other.path())).unwrap();
    let file = tree
        .resolve(&lookup(b"ipxe.efi", Inbox::Hidden), now)
        .unwrap();
    assert_eq!(bytes(&file), b"MZ efi", "nothing changes before install");
    tree.install(prepared);
    let file = tree
        .resolve(&lookup(b"ipxe.efi", Inbox::Hidden), now)
        .unwrap();
    assert_eq!(bytes(&file), b"MZ new");
    assert_eq!(tree.root_path(), other.path());
}
