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

/// The crate names a `[dependencies]` table lists.
fn dependency_names(krate: &str) -> Vec<String> {
    dependencies(krate)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(['=', '.', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// docs/ARCHITECTURE.md: "kindling-tftp does not depend on the DHCP or DNS crates",
/// "kindling-dhcp ... never calls DNS", "kindling-dns does not depend on the DHCP or TFTP
/// crates": no service crate depends on another; only the binary wires them.
#[test]
fn service_crates_do_not_depend_on_each_other() {
    let services = [
        ("tftp", "kindling-tftp"),
        ("dhcp", "kindling-dhcp"),
        ("dns", "kindling-dns"),
    ];
    for (krate, own_name) in services {
        let deps = dependency_names(krate);
        assert!(
            !deps.is_empty(),
            "crates/{krate}/Cargo.toml has a [dependencies] table"
        );
        for (_, other) in services {
            if other != own_name {
                assert!(
                    !deps.iter().any(|dep| dep == other),
                    "crates/{krate} must not depend on {other}: the binary wires services"
                );
            }
        }
    }
    // The protocol libraries stay with their services: DHCP knows no DNS library, DNS no DHCP
    // codec, TFTP neither.
    for (krate, foreign) in [
        ("tftp", &["dhcproto", "hickory-proto", "hickory-server"][..]),
        ("dhcp", &["hickory-proto", "hickory-server"][..]),
        ("dns", &["dhcproto"][..]),
    ] {
        let deps = dependency_names(krate);
        for library in foreign {
            assert!(
                !deps.iter().any(|dep| dep == library),
                "crates/{krate} must not depend on {library}"
            );
        }
    }
}

/// docs/ARCHITECTURE.md: "kindling-files knows no protocol: it depends on no service crate
/// and no protocol library".
#[test]
fn the_boot_tree_knows_no_protocol() {
    let deps = dependency_names("files");
    assert!(
        deps.iter().any(|dep| dep == "nix"),
        "crates/files/Cargo.toml has a [dependencies] table: {deps:?}"
    );
    for service in [
        "kindling-tftp",
        "kindling-dhcp",
        "kindling-dns",
        "kindling-http",
        "kindling-udp",
    ] {
        assert!(
            !deps.iter().any(|dep| dep == service),
            "crates/files must not depend on {service}: services use the boot tree, not the other way"
        );
    }
    for library in [
        "dhcproto",
        "hickory-proto",
        "hickory-server",
        "hyper",
        "axum",
        "http",
        "socket2",
    ] {
        assert!(
            !deps.iter().any(|dep| dep == library),
            "crates/files knows no protocol, yet depends on {library}"
        );
    }
}

/// "kindling-tftp ... opens no path itself: reads go through `BootTree::resolve`": the TFTP
/// crate's sources never open a file or directory by name.
#[test]
fn the_tftp_shell_asks_the_boot_tree_for_files() {
    assert!(
        dependency_names("tftp")
            .iter()
            .any(|dep| dep == "kindling-files"),
        "kindling-tftp gets its files from kindling-files"
    );
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/tftp/src"), &mut files);
    for file in files {
        for (number, line) in read(&file).lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in [
                "File::open",
                "OpenOptions",
                "openat",
                "Root::open",
                "open_read",
                "std::fs::read",
                "tokio::fs",
            ] {
                assert!(
                    !code.contains(word),
                    "{}:{}: the TFTP crate opens a path itself (`{word}`); ask the boot tree: {line}",
                    file.display(),
                    number + 1
                );
            }
        }
    }
}

/// "kindling-config depends on no other Kindling crate, no tokio and no sockets" and
/// "kindling-udp knows no protocol".
#[test]
fn ground_crates_depend_on_no_kindling_crate_and_no_protocol() {
    for krate in ["udp", "config"] {
        let deps = dependency_names(krate);
        assert!(
            !deps.iter().any(|dep| dep.starts_with("kindling-")),
            "crates/{krate} depends on no other Kindling crate: {deps:?}"
        );
        for protocol in ["dhcproto", "hickory-proto", "hickory-server"] {
            assert!(
                !deps.iter().any(|dep| dep == protocol),
                "crates/{krate} knows no protocol, yet depends on {protocol}"
            );
        }
    }
    let config = dependency_names("config");
    for runtime_or_socket in ["tokio", "socket2", "nix", "libc"] {
        assert!(
            !config.iter().any(|dep| dep == runtime_or_socket),
            "kindling-config needs no runtime or sockets, yet depends on {runtime_or_socket}"
        );
    }
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/config/src"), &mut files);
    for file in files {
        let text = read(&file);
        for word in ["UdpSocket", "TcpListener", "TcpStream", "socket2"] {
            assert!(
                !text.contains(word),
                "{}: kindling-config opens no sockets ({word})",
                file.display()
            );
        }
    }
}

#[test]
fn protocol_cores_touch_no_socket_clock_or_file() {
    let tftp = workspace().join("crates/tftp/src");
    let mut files = vec![tftp.join("wire.rs"), tftp.join("netascii.rs")];
    rust_files(&tftp.join("proto"), &mut files);
    let dhcp = workspace().join("crates/dhcp/src");
    files.extend([
        dhcp.join("policy.rs"),
        dhcp.join("v4/codec.rs"),
        dhcp.join("v6/codec.rs"),
    ]);
    rust_files(&dhcp.join("v4/server"), &mut files);
    rust_files(&dhcp.join("v6/server"), &mut files);
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
    for krate in ["config", "udp", "files", "tftp", "dhcp", "dns"] {
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
