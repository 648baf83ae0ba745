//! Replays the committed `config_yaml` fuzz corpus: arbitrary text must never panic the
//! config parser.

use std::path::PathBuf;

#[test]
fn config_yaml_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config_yaml");
    let mut replayed = 0;
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
    {
        let Ok(entry) = entry else { continue };
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let _ = kindling_config::parse(&text, "<corpus>");
        replayed += 1;
    }
    assert!(replayed > 0, "corpus {} is empty", dir.display());
}
