//! The command line: check-config, print-config, --version.

use std::process::Command;

use crate::harness::BINARY;

fn kindling(args: &[&str]) -> std::process::Output {
    Command::new(BINARY).args(args).output().unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn version_prints_the_package_version() {
    let output = kindling(&["--version"]);
    assert!(output.status.success());
    assert!(text(&output).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_reports_every_problem_with_its_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "tftp:\n  root: /tmp\n  colour: blue\n  write:\n    max_size: lots\ndns:\n  domain: lab.test\n  allow_recursion_from: [10.0.0.0/33]\n",
    )
    .unwrap();
    let output = kindling(&["check-config", path.to_str().unwrap()]);
    let report = text(&output);
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains("colour") && report.contains("line 3"),
        "{report}"
    );
    assert!(
        report.contains("max_size") && report.contains("line 5"),
        "{report}"
    );
    assert!(
        report.contains("allow_recursion_from") && report.contains("line 8"),
        "{report}"
    );
}

#[test]
fn check_config_passes_with_warnings_for_a_missing_boot_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        format!(
            "tftp:\n  root: {}\nboot:\n  bios: undionly.kpxe\n",
            dir.path().join("root").display()
        ),
    )
    .unwrap();
    let output = kindling(&["check-config", path.to_str().unwrap()]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("undionly.kpxe"),
        "the missing boot file is named: {report}"
    );
}

#[test]
fn the_shipped_configs_validate() {
    let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
    let mut checked = 0;
    for dir in [config_dir.to_string(), format!("{config_dir}/examples")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                let output = kindling(&["check-config", path.to_str().unwrap()]);
                // Roots such as /srv/tftp may be missing on a test machine: only schema
                // errors count here.
                let report = text(&output);
                let schema_errors = report
                    .lines()
                    .filter(|line| line.contains("error:") && !line.contains(".root"))
                    .count();
                assert_eq!(schema_errors, 0, "{}: {report}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "expected config/kindling.yaml and examples");
}

#[test]
fn print_config_shows_the_effective_embedded_default() {
    let output = kindling(&["print-config"]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("tftpboot"), "{report}");
    assert!(
        report.contains("proxy"),
        "the default DHCP mode is proxy: {report}"
    );
}
