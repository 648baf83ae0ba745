//! The files in deploy/ load where users run them: the systemd unit passes `systemd-analyze
//! verify` without a single warning and uses nothing newer than the oldest systemd we claim
//! (docs/install.md), and the Containerfile names paths, users and capabilities that exist in
//! the build and agree with the unit. No container runtime is needed for these checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Ubuntu 22.04's systemd; Debian 12 has 252. docs/install.md names both.
const OLDEST_SYSTEMD: u32 = 249;

/// Every directive the unit may use, with the systemd version that added it (the "Added in
/// version" notes of systemd.directives(7); directives older than the notes are given as
/// 200). A directive missing here fails the test until its version is looked up and added.
const DIRECTIVES: &[(&str, u32)] = &[
    ("Description", 200),
    ("Documentation", 200),
    ("Wants", 200),
    ("After", 200),
    ("Type", 200),
    ("ExecStartPre", 200),
    ("ExecStart", 200),
    ("ExecReload", 200),
    ("Restart", 200),
    ("RestartSec", 200),
    ("TimeoutStopSec", 200),
    ("DynamicUser", 232),
    ("User", 200),
    ("Group", 200),
    ("StateDirectory", 235),
    ("StateDirectoryMode", 235),
    ("WorkingDirectory", 200),
    ("AmbientCapabilities", 229),
    ("CapabilityBoundingSet", 200),
    ("NoNewPrivileges", 200),
    ("ProtectSystem", 232),
    ("ReadWritePaths", 231),
    ("ProtectHome", 214),
    ("PrivateTmp", 200),
    ("PrivateDevices", 209),
    ("ProtectKernelTunables", 232),
    ("ProtectKernelModules", 232),
    ("ProtectKernelLogs", 244),
    ("ProtectControlGroups", 232),
    ("ProtectClock", 245),
    ("ProtectHostname", 242),
    ("ProtectProc", 247),
    ("ProcSubset", 247),
    ("RestrictAddressFamilies", 211),
    ("RestrictNamespaces", 233),
    ("RestrictRealtime", 231),
    ("RestrictSUIDSGID", 242),
    ("LockPersonality", 235),
    ("MemoryDenyWriteExecute", 231),
    ("RemoveIPC", 232),
    ("SystemCallArchitectures", 200),
    ("SystemCallFilter", 231),
    ("UMask", 200),
    ("WantedBy", 200),
];

/// Service types and the systemd version that added each.
const SERVICE_TYPES: &[(&str, u32)] = &[
    ("simple", 200),
    ("forking", 200),
    ("oneshot", 200),
    ("notify", 200),
    ("exec", 240),
    ("notify-reload", 253),
];

const INSTALLED_BINARY: &str = "/usr/local/bin/kindling";
/// Where deploy/kindling.yaml keeps boot files and state, for the image and the unit alike.
const TFTP_ROOT: &str = "/srv/tftp";
const STATE_DIR: &str = "/var/lib/kindling";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn unit_text() -> String {
    read(&workspace().join("deploy/kindling.service"))
}

/// The unit's `Key=value` settings in order, comments and section headers left out.
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('['))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a Key=value line in the unit: {line}"));
            (key.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit_settings(unit)
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect()
}

/// Capability names in the unit's spelling (`CAP_NET_RAW`), upper case without the prefix.
fn unit_capabilities(unit: &str, key: &str) -> BTreeSet<String> {
    let values = unit_values(unit, key);
    assert_eq!(values.len(), 1, "one {key}= line in the unit");
    values[0]
        .split_whitespace()
        .map(|cap| {
            cap.strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("{key}: {cap} has no CAP_ prefix"))
                .to_string()
        })
        .collect()
}

#[test]
fn systemd_unit_verifies_without_a_warning() {
    let analyze = "systemd-analyze";
    let found = Command::new(analyze).arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|output| output.status.success()),
        "{analyze} is missing: install the systemd package (scripts/install-test-deps does)"
    );
    // The unit as installed, pointed at the binary this build made: verify checks that every
    // Exec*= command exists and is executable.
    let binary = env!("CARGO_BIN_EXE_kindling");
    let unit = unit_text().replace(INSTALLED_BINARY, binary);
    assert!(unit.contains(binary), "the unit runs {INSTALLED_BINARY}");
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
    let path = dir.path().join("kindling.service");
    std::fs::write(&path, unit).unwrap_or_else(|error| panic!("{}: {error}", path.display()));

    let output = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|error| panic!("{analyze} verify: {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stderr.trim().is_empty() && stdout.trim().is_empty(),
        "systemd-analyze verify reported problems (exit {:?}):\n{stdout}{stderr}",
        output.status.code()
    );
}

#[test]
fn systemd_unit_uses_nothing_newer_than_the_oldest_supported_systemd() {
    let unit = unit_text();
    for (key, value) in unit_settings(&unit) {
        let added = DIRECTIVES
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, version)| *version)
            .unwrap_or_else(|| {
                panic!(
                    "{key}= is not in this test's table: look up the systemd version that \
                     added it and add it to DIRECTIVES"
                )
            });
        assert!(
            added <= OLDEST_SYSTEMD,
            "{key}= needs systemd {added}; docs/install.md promises {OLDEST_SYSTEMD}"
        );
        if key == "Type" {
            let added = SERVICE_TYPES
                .iter()
                .find(|(name, _)| *name == value)
                .map(|(_, version)| *version)
                .unwrap_or_else(|| panic!("unknown service type {value}"));
            assert!(
                added <= OLDEST_SYSTEMD,
                "Type={value} needs systemd {added}; older ones ignore the line and run the \
                 service as Type=simple"
            );
        }
    }
}

#[test]
fn systemd_unit_waits_for_readiness_and_reloads_by_sighup() {
    let unit = unit_text();
    // The daemon sends READY=1 once its sockets are bound; only Type=notify waits for it.
    assert_eq!(unit_values(&unit, "Type"), ["notify"]);
    let reload = unit_values(&unit, "ExecReload");
    assert!(
        reload
            .iter()
            .any(|command| command == "/bin/kill -HUP $MAINPID"),
        "ExecReload sends SIGHUP: {reload:?}"
    );
    let serve = unit_values(&unit, "ExecStart");
    assert_eq!(serve.len(), 1);
    let config = serve[0]
        .split_once("--config ")
        .map(|(_, path)| path.to_string())
        .unwrap_or_else(|| panic!("ExecStart names its config: {}", serve[0]));
    for check in unit_values(&unit, "ExecStartPre")
        .iter()
        .chain(reload.iter().filter(|command| !command.contains("kill")))
    {
        assert_eq!(
            *check,
            format!("{INSTALLED_BINARY} check-config {config}"),
            "a config check before start and reload checks the file serve loads"
        );
    }
}

/// The Containerfile's instructions, continuation lines joined.
fn container_instructions() -> Vec<(String, String)> {
    let text = read(&workspace().join("deploy/Containerfile"));
    let mut joined = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => joined.push_str(head),
            None => {
                joined.push_str(line);
                joined.push('\n');
            }
        }
    }
    joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
            (instruction.to_string(), rest.trim().to_string())
        })
        .collect()
}

fn instruction(instructions: &[(String, String)], name: &str) -> Vec<String> {
    instructions
        .iter()
        .filter(|(i, _)| i == name)
        .map(|(_, rest)| rest.clone())
        .collect()
}

/// A JSON-array instruction (`["a", "b"]`) as its strings.
fn exec_form(value: &str) -> Vec<String> {
    value
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|part| part.trim().trim_matches('"').to_string())
        .collect()
}

#[test]
fn containerfile_names_what_the_build_has() {
    let instructions = container_instructions();
    let copies = instruction(&instructions, "COPY");

    // The binary: built by name, copied from where cargo puts it, run from where it lands.
    let manifest = read(&workspace().join("crates/kindling/Cargo.toml"));
    assert!(
        manifest.contains("[[bin]]\nname = \"kindling\""),
        "the binary is called kindling"
    );
    let builds = instruction(&instructions, "RUN");
    assert!(
        builds
            .iter()
            .any(|run| run.contains("cargo build --release --locked --bin kindling")),
        "the build stage builds the kindling binary: {builds:?}"
    );
    let binary_copy = copies
        .iter()
        .find(|copy| copy.starts_with("--from=build"))
        .unwrap_or_else(|| panic!("no COPY --from=build: {copies:?}"));
    let parts: Vec<&str> = binary_copy.split_whitespace().collect();
    assert_eq!(
        parts,
        [
            "--from=build",
            "/src/target/release/kindling",
            INSTALLED_BINARY
        ]
    );
    let entrypoint = exec_form(&instruction(&instructions, "ENTRYPOINT")[0]);
    assert_eq!(entrypoint, [INSTALLED_BINARY]);

    // The config: a file of the repository, copied to where CMD and the unit read it, and one
    // that `check-config` accepts.
    let config_copy = copies
        .iter()
        .find(|copy| !copy.starts_with("--from") && *copy != ". .")
        .unwrap_or_else(|| panic!("no config COPY: {copies:?}"));
    let (source, destination) = config_copy
        .split_once(' ')
        .unwrap_or_else(|| panic!("COPY SOURCE DEST: {config_copy}"));
    let source = workspace().join(source);
    assert!(
        source.is_file(),
        "{} is in the repository",
        source.display()
    );
    let cmd = exec_form(&instruction(&instructions, "CMD")[0]);
    assert_eq!(cmd, ["serve", "--config", destination]);
    let unit = unit_text();
    assert_eq!(
        unit_values(&unit, "ExecStart"),
        [format!("{INSTALLED_BINARY} serve --config {destination}")],
        "the unit and the image read the config from the same place"
    );
    // check-config wants the TFTP root to exist: give it one in place of the image's volume.
    let config = read(&source);
    assert!(config.contains(&format!("root: {TFTP_ROOT} ")), "{config}");
    assert!(
        config.contains(&format!("state_dir: {STATE_DIR} ")),
        "{config}"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
    let root = dir.path().join("tftp");
    std::fs::create_dir(&root).unwrap_or_else(|error| panic!("{}: {error}", root.display()));
    let local = dir.path().join("kindling.yaml");
    let local_config = config.replace(TFTP_ROOT, &root.display().to_string());
    std::fs::write(&local, local_config)
        .unwrap_or_else(|error| panic!("{}: {error}", local.display()));
    let check = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg("check-config")
        .arg(&local)
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|error| panic!("kindling check-config: {error}"));
    assert!(
        check.status.success(),
        "the image's config passes check-config:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The user: created in the image, the one it runs as, the one the unit runs as; the
    // directories the config names exist in the image, the writable ones owned by that user
    // and writable under the unit's read-only system.
    let runs = instruction(&instructions, "RUN").join("\n");
    assert!(runs.contains("useradd --system --home-dir /var/lib/kindling"));
    let uploads = format!("{TFTP_ROOT}/uploads");
    assert!(config.contains("dir: uploads "), "{config}");
    assert!(
        runs.contains(&format!("mkdir -p {uploads} {STATE_DIR} /etc/kindling")),
        "{runs}"
    );
    assert!(
        runs.contains(&format!("chown kindling:kindling {STATE_DIR} {uploads}")),
        "{runs}"
    );
    assert_eq!(
        unit_values(&unit, "ReadWritePaths"),
        [format!("{STATE_DIR} {uploads}")]
    );
    assert_eq!(unit_values(&unit, "WorkingDirectory"), [STATE_DIR]);
    assert_eq!(instruction(&instructions, "USER"), ["kindling"]);
    assert_eq!(unit_values(&unit, "User"), ["kindling"]);
    assert_eq!(
        instruction(&instructions, "WORKDIR"),
        ["/src", "/var/lib/kindling"]
    );
}

#[test]
fn containerfile_grants_the_capabilities_the_unit_grants() {
    let unit = unit_text();
    let ambient = unit_capabilities(&unit, "AmbientCapabilities");
    assert_eq!(
        ambient,
        unit_capabilities(&unit, "CapabilityBoundingSet"),
        "the unit bounds exactly what it grants"
    );

    let runs = instruction(&container_instructions(), "RUN").join("\n");
    let setcap = runs
        .split_whitespace()
        .skip_while(|word| *word != "setcap")
        .nth(1)
        .unwrap_or_else(|| panic!("the image sets file capabilities on the binary: {runs}"));
    let file_caps: BTreeSet<String> = setcap
        .strip_suffix("=+ep")
        .unwrap_or_else(|| panic!("setcap grants effective and permitted: {setcap}"))
        .split(',')
        .map(|cap| {
            cap.strip_prefix("cap_")
                .unwrap_or_else(|| panic!("{cap}"))
                .to_uppercase()
        })
        .collect();
    assert_eq!(
        file_caps, ambient,
        "image and unit grant the same capabilities"
    );
    assert!(
        runs.contains(&format!("{setcap} {INSTALLED_BINARY}")),
        "setcap is applied to the installed binary"
    );

    // The run commands people copy (the Containerfile's header and docs/install.md) add the
    // same capabilities and drop the rest.
    for (name, text) in [
        (
            "deploy/Containerfile",
            read(&workspace().join("deploy/Containerfile")),
        ),
        (
            "docs/install.md",
            read(&workspace().join("docs/install.md")),
        ),
    ] {
        assert!(
            text.contains("--cap-drop all"),
            "{name} drops every capability"
        );
        let added: BTreeSet<String> = text
            .split("--cap-add ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .collect();
        assert_eq!(
            added, ambient,
            "{name}'s run command adds what the unit grants"
        );
    }
}
