//! Any name, resolved against a real tree that holds traps (symlinks out of the root, a
//! secret next to it, the inbox): the answer is a file of the tree or a refusal, never a byte
//! from outside, and never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Instant;

use kindling_files::{BootTree, Inbox, Lookup, TreeConfig};
use proptest::prelude::*;

const SECRET: &[u8] = b"SECRET";

struct Fixture {
    _dir: tempfile::TempDir,
    tree: BootTree,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::create_dir_all(root.join("up")).unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        std::fs::write(root.join("a"), b"A").unwrap();
        std::fs::write(root.join("d/b"), b"B").unwrap();
        std::fs::write(root.join("d/e/c"), b"C").unwrap();
        std::fs::write(root.join("up/cfg"), b"INBOX").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("rel")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("d/e/top")).unwrap();
        std::os::unix::fs::symlink("a", root.join("in")).unwrap();
        std::os::unix::fs::symlink("up", root.join("inbox")).unwrap();
        // No in-memory copies: resolving needs no runtime then.
        let tree = BootTree::open(&TreeConfig {
            root,
            cache_size: 0,
            inbox: "up".into(),
        })
        .unwrap();
        Fixture { _dir: dir, tree }
    })
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        Just(b"..".to_vec()),
        Just(b".".to_vec()),
        Just(b"a".to_vec()),
        Just(b"d".to_vec()),
        Just(b"e".to_vec()),
        Just(b"b".to_vec()),
        Just(b"c".to_vec()),
        Just(b"rel".to_vec()),
        Just(b"abs".to_vec()),
        Just(b"top".to_vec()),
        Just(b"in".to_vec()),
        Just(b"up".to_vec()),
        Just(b"cfg".to_vec()),
        Just(b"inbox".to_vec()),
        Just(b"secret".to_vec()),
        Just(b"%2e%2e".to_vec()),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    let separator = prop_oneof![
        Just(b"/".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"//".to_vec())
    ];
    prop::collection::vec((separator, part), 0..8).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(sep, part)| [sep, part])
            .flatten()
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn any_name_is_a_file_of_the_tree_or_a_refusal(name in name(), readable in any::<bool>()) {
        let inbox = if readable { Inbox::Readable } else { Inbox::Hidden };
        let lookup = Lookup {
            name: &name,
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            inbox,
        };
        if let Ok(file) = fixture().tree.resolve(&lookup, Instant::now()) {
            let mut bytes = vec![0u8; 16];
            let n = file.contents.read_at(0, &mut bytes).unwrap();
            let bytes = &bytes[..n];
            prop_assert!(bytes != SECRET, "{:?} reached outside the root", String::from_utf8_lossy(&name));
            let allowed: &[&[u8]] = if readable { &[b"A", b"B", b"C", b"INBOX"] } else { &[b"A", b"B", b"C"] };
            prop_assert!(allowed.contains(&bytes), "{:?} served {:?}", String::from_utf8_lossy(&name), bytes);
            prop_assert!(!file.relative.split('/').any(|part| part == ".." || part.is_empty()));
        }
    }
}
