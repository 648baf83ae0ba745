//! Replays the committed fuzz corpora (`fuzz/corpus/`) through the same entry points the
//! cargo-fuzz targets use, so every input the fuzzer found interesting stays a test.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus {} is missing: {error}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "corpus {} is empty", dir.display());
    inputs
}

fn replay(target: &str, run: fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let result = std::panic::catch_unwind(|| run(&bytes));
        assert!(result.is_ok(), "{} fails {target}", path.display());
    }
}

#[test]
fn tftp_packet_corpus() {
    replay("tftp_packet", kindling_tftp::fuzzing::packet);
}

#[test]
fn tftp_read_corpus() {
    replay("tftp_read", kindling_tftp::fuzzing::read);
}

#[test]
fn tftp_write_corpus() {
    replay("tftp_write", kindling_tftp::fuzzing::write);
}
