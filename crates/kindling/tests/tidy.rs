//! Architecture invariants from docs/ARCHITECTURE.md, checked in code so the map cannot rot.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The `[dependencies]` table of a crate manifest, as text.
fn dependencies(krate: &str) -> String {
    let manifest = read(&workspace().join("crates").join(krate).join("Cargo.toml"));
    let start = manifest
        .find("[dependencies]")
        .map_or(manifest.len(), |i| i + "[dependencies]".len());
    let rest = &manifest[start..];
    let end = rest.find("\n[").unwrap_or(rest.len());
    rest[..end].to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
    {
        let path = entry.unwrap_or_else(|error| panic!("{error}")).path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn service_crates_do_not_depend_on_each_other() {
    let services = ["kindling-tftp", "kindling-dhcp", "kindling-dns"];
    for krate in ["tftp", "udp", "config"] {
        let deps = dependencies(krate);
        for service in services {
            assert!(
                !deps.contains(service),
                "crates/{krate} must not depend on {service}"
            );
        }
    }
    for krate in ["udp", "config"] {
        let deps = dependencies(krate);
        assert!(
            !deps.contains("kindling-"),
            "crates/{krate} depends on no other Kindling crate"
        );
    }
    assert!(
        !dependencies("config").contains("tokio"),
        "kindling-config needs no runtime"
    );
}

#[test]
fn protocol_cores_touch_no_socket_clock_or_file() {
    let tftp = workspace().join("crates/tftp/src");
    let mut files = vec![tftp.join("wire.rs"), tftp.join("netascii.rs")];
    rust_files(&tftp.join("proto"), &mut files);
    let dhcp = workspace().join("crates/dhcp/src");
    files.extend([dhcp.join("policy.rs"), dhcp.join("v4/codec.rs")]);
    rust_files(&dhcp.join("v4/server"), &mut files);
    rust_files(&dhcp.join("v6/ra"), &mut files);
    let dns = workspace().join("crates/dns/src");
    files.extend([dns.join("names.rs"), dns.join("fast.rs")]);
    let forbidden = [
        "Instant::now",
        "SystemTime::now",
        "std::fs",
        "tokio",
        "UdpSocket",
        "std::net::Udp",
        "File::open",
        "thread::sleep",
    ];
    let mut checked = 0;
    for file in files {
        // The test harness must make one Instant to start its virtual clock from.
        let path = file.to_string_lossy();
        let is_test_harness = path.contains("proto/tests/") || path.ends_with("v6/ra/tests.rs");
        for (number, line) in read(&file).lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in forbidden {
                if code.contains(word) && !(is_test_harness && word == "Instant::now") {
                    panic!(
                        "{}:{}: a sans-IO core uses `{word}`: {line}",
                        file.display(),
                        number + 1
                    );
                }
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "expected the TFTP wire, netascii and proto files and the DHCP policy, codec and server core"
    );
}

#[test]
fn only_the_binary_builds_a_runtime_or_installs_a_subscriber() {
    let mut files = Vec::new();
    for krate in ["config", "udp", "tftp", "dhcp", "dns"] {
        rust_files(
            &workspace().join("crates").join(krate).join("src"),
            &mut files,
        );
    }
    for file in files {
        let text = read(&file);
        // Unit tests may build their own runtime.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        if file.to_string_lossy().contains("/tests/") {
            continue;
        }
        for word in [
            "Runtime::new",
            "runtime::Builder",
            "tracing_subscriber",
            "set_global_default",
        ] {
            assert!(
                !text.contains(word),
                "{}: library code uses {word}",
                file.display()
            );
        }
    }
}
