//! `load` and `check_environment`: the checks that look at the filesystem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use kindling_config::*;

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("kindling.yaml");
    fs::write(&path, body).unwrap();
    path
}

#[test]
fn unreadable_file_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.origin, missing.display().to_string());
    assert_eq!(e.errors.len(), 1);
    assert!(e.errors[0].message.contains("cannot read"), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: error: cannot read", missing.display())),
        "{e}"
    );
}

#[test]
fn missing_root_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("absent");
    let path = write_config(
        dir.path(),
        &format!("# comment\ntftp:\n  root: {}\n", root.display()),
    );
    let e = load(&path).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].key, "tftp.root");
    assert_eq!(e.errors[0].line, Some(3));
    assert!(e.errors[0].message.contains("does not exist"), "{e}");
}

#[test]
fn root_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let path = write_config(dir.path(), &format!("tftp:\n  root: {}\n", file.display()));
    let e = load(&path).unwrap_err();
    assert!(e.errors[0].message.contains("not a directory"), "{e}");
}

#[test]
fn missing_boot_files_and_upload_dir_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tftpboot");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("undionly.kpxe"), "x").unwrap();
    fs::create_dir(root.join("ipxe.efi")).unwrap(); // a directory is not a boot file
    let path = write_config(
        dir.path(),
        &format!(
            "tftp:
  root: {}
  write:
    enabled: true
    allow_from: [10.0.0.0/8]
boot:
  bios: /undionly.kpxe
  uefi_x64: ipxe.efi
  ipxe: http://boot.example/boot.ipxe
dhcp:
  mode: server
  subnets: [{{ network: 10.0.0.0/24, range: [10.0.0.10, 10.0.0.20] }}]
  reservations:
    - {{ mac: \"52:54:00:00:00:01\", ip: 10.0.0.5, boot: {{ bios: missing.0 }} }}
",
            root.display()
        ),
    );
    let loaded = load(&path).unwrap();
    let got: Vec<(&str, Option<usize>)> = loaded
        .warnings
        .iter()
        .map(|d| (d.key.as_str(), d.line))
        .collect();
    assert_eq!(
        got,
        vec![
            ("tftp.write.dir", Some(4)),
            ("boot.uefi_x64", Some(8)),
            ("dhcp.reservations[0].boot.bios", Some(14)),
        ],
        "{:#?}",
        loaded.warnings
    );
    assert!(loaded.warnings[0].message.contains("does not exist"));
    assert!(
        loaded.warnings[1]
            .message
            .contains("\"ipxe.efi\" is not a file under the TFTP root")
    );
    assert!(
        loaded
            .warnings
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );

    // Once everything is there, nothing is left to say.
    fs::remove_dir(root.join("ipxe.efi")).unwrap();
    fs::write(root.join("ipxe.efi"), "x").unwrap();
    fs::write(root.join("missing.0"), "x").unwrap();
    fs::create_dir(root.join("uploads")).unwrap();
    assert_eq!(load(&path).unwrap().warnings, vec![]);

    // check_environment itself carries no lines; load adds them.
    let env = check_environment(&loaded.config);
    assert!(env.is_empty(), "{env:?}");
}

#[test]
fn upload_dir_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("uploads"), "x").unwrap();
    let text = format!(
        "tftp:\n  root: {}\n  write: {{ enabled: true, allow_from: [127.0.0.1] }}\n",
        root.display()
    );
    let config = parse(&text, "t").unwrap().config;
    let env = check_environment(&config);
    assert_eq!(env.len(), 1, "{env:?}");
    assert_eq!(
        (env[0].severity, env[0].key.as_str(), env[0].line),
        (Severity::Error, "tftp.write.dir", None)
    );
}

#[test]
fn environment_is_not_checked_for_services_that_are_off() {
    let config = parse("boot: { bios: x }\ndns: { domain: a.test }\n", "t")
        .unwrap()
        .config;
    assert!(check_environment(&config).is_empty());
}

#[test]
fn shipped_quick_start_loads_when_its_root_exists() {
    // config/kindling.yaml uses ./tftpboot: run it from a directory that has one.
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/kindling.yaml"),
    )
    .unwrap();
    let root = dir.path().join("tftpboot");
    fs::create_dir(&root).unwrap();
    let text = text.replace("./tftpboot", &root.display().to_string());
    let path = write_config(dir.path(), &text);
    let loaded = load(&path).unwrap();
    // The boot files and the upload directory are not there yet: warnings only.
    assert!(
        loaded
            .warnings
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
    assert!(loaded.warnings.iter().any(|d| d.key == "tftp.write.dir"));
}
