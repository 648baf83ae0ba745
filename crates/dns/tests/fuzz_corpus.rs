//! Replays the committed fuzz corpus (`fuzz/corpus/dns_query/`) through the entry point the
//! cargo-fuzz target uses, so every input the fuzzer found interesting stays a test.

use std::path::PathBuf;

#[test]
fn dns_query_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dns_query");
    let mut seeds = 0;
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus {} is missing: {error}", dir.display()));
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(bytes) = std::fs::read(&path) else {
            panic!("{} cannot be read", path.display());
        };
        let result = std::panic::catch_unwind(|| kindling_dns::fuzzing::query(&bytes));
        assert!(result.is_ok(), "{} fails dns_query", path.display());
        seeds += usize::from(path.to_string_lossy().contains("seed-"));
    }
    assert!(seeds >= 24, "the corpus lost its seeds ({seeds} left)");
}
