//! Replays the committed fuzz corpus (`fuzz/corpus/dhcp_v4_codec/`) through the entry point the
//! cargo-fuzz target uses, so every input the fuzzer found interesting stays a test.

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

#[test]
fn dhcp_v4_codec_corpus() {
    let mut decoded = 0;
    for (path, bytes) in corpus("dhcp_v4_codec") {
        let result = std::panic::catch_unwind(|| kindling_dhcp::v4::fuzzing::codec(&bytes));
        assert!(result.is_ok(), "{} fails dhcp_v4_codec", path.display());
        decoded += usize::from(kindling_dhcp::v4::decode(&bytes).is_ok());
    }
    assert!(
        decoded > 0,
        "no corpus input decodes: the replay would prove nothing"
    );
}
