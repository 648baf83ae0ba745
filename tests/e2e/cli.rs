//! The command line: check-config, print-config, leases, explain, --version.

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

/// A profile template that does not compile, or names something that is not a fact, fails
/// check-config with the config file line of the mistake.
#[test]
fn check_config_reports_profile_template_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.yaml");
    std::fs::write(
        &path,
        "profiles:\n  - name: default\n    ipxe: |\n      #!ipxe\n      echo {{ hostnme }}\n  - name: node10\n    match: { mac: \"52:54:00:00:00:10\" }\n    ipxe: |\n      #!ipxe\n\n      {% if mac %}\n",
    )
    .unwrap();
    let output = kindling(&["check-config", path.to_str().unwrap()]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(
        report.contains("profile \"default\" (line 5)") && report.contains("hostnme"),
        "{report}"
    );
    assert!(report.contains("profile \"node10\" (line 11)"), "{report}");
    assert!(report.contains("2 errors"), "{report}");
    // Fixed, it passes.
    std::fs::write(
        &path,
        "profiles:\n  - name: default\n    ipxe: |\n      #!ipxe\n      echo {{ hostname }} ${mac}\n",
    )
    .unwrap();
    let output = kindling(&["check-config", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
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

/// A scratch directory with a config for `explain` and `leases`: a TFTP root holding
/// `present` files, a state_dir, and `dhcp` (YAML, the lines under `dhcp:`).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(present: &[&str], dhcp: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        for file in present {
            std::fs::write(root.join(file), b"boot file").unwrap();
        }
        let config = format!(
            "state_dir: {state}\ntftp:\n  root: {root}\nboot:\n  bios: undionly.kpxe\n  \
             uefi_x64: ipxe.efi\n  ipxe: boot.ipxe\ndhcp:\n{dhcp}",
            state = dir.path().join("state").display(),
            root = root.display(),
        );
        std::fs::write(dir.path().join("kindling.yaml"), config).unwrap();
        Scratch { dir }
    }

    fn config(&self) -> String {
        self.dir.path().join("kindling.yaml").display().to_string()
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// Runs `kindling SUBCOMMAND --config THIS ARGS...`.
    fn run(&self, subcommand: &str, args: &[&str]) -> std::process::Output {
        let config = self.config();
        let mut all = vec![subcommand, "--config", config.as_str()];
        all.extend_from_slice(args);
        kindling(&all)
    }
}

const SERVER_DHCP: &str = "  mode: server
  subnets:
    - network: 10.99.0.0/24
      range: [10.99.0.100, 10.99.0.199]
      router: 10.99.0.1
  reservations:
    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, hostname: node10, boot: { bios: special.kpxe } }
";

const PROXY_DHCP: &str = "  mode: proxy\n";

const SERVER_DHCP6: &str = "  mode: server
  subnets:
    - { network: 10.99.0.0/24, range: [10.99.0.100, 10.99.0.199] }
  v6:
    subnets:
      - { network: \"fd00:99::/64\", range: [\"fd00:99::100\", \"fd00:99::1ff\"] }
";

/// `explain --v6` runs a SOLICIT through the DHCPv6 core: an EDK2-like client (arch 7) gets
/// an address and ipxe.efi by URL with the first v6 subnet's address, iPXE its script; proxy
/// mode explains why it sends nothing.
#[test]
fn explain_v6_prints_the_advertise_or_why_there_is_none() {
    let scratch = Scratch::new(&["ipxe.efi"], SERVER_DHCP6);
    let mac = ["--mac", "52:54:00:12:34:56", "--v6"];
    let output = scratch.run("explain", &[&mac[..], &["--arch", "7"]].concat());
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("reply:    ADVERTISE"), "{report}");
    assert!(report.contains("3 IA_NA iaid 1 T1"), "{report}");
    assert!(
        report.contains("fd00:99::1") && report.contains("(valid "),
        "{report}"
    );
    assert!(
        report.contains("59 boot file URL tftp://[fd00:99::1]/ipxe.efi"),
        "{report}"
    );
    assert!(report.contains("7 preference 255"), "{report}");
    assert!(
        !report.contains("16 vendor class [\"PXEClient\"]\n          59"),
        "{report}"
    );
    let ipxe = text(&scratch.run("explain", &[&mac[..], &["--ipxe"]].concat()));
    assert!(
        ipxe.contains("59 boot file URL tftp://[fd00:99::1]/boot.ipxe"),
        "{ipxe}"
    );
    let proxy = Scratch::new(&[], PROXY_DHCP);
    let none = text(&proxy.run("explain", &mac));
    assert!(none.contains("reply:    none"), "{none}");
    assert!(none.contains("proxy mode serves no DHCPv6"), "{none}");
}

/// One reservation names a machine by its SMBIOS UUID on both families: option 97 on v4, a
/// DUID-UUID on v6 (here in EDK2's byte order), whatever MAC the machine shows.
#[test]
fn explain_finds_a_reservation_by_smbios_uuid_on_both_families() {
    let dhcp = format!(
        "{SERVER_DHCP6}  reservations:\n    - {{ uuid: \"4c4c4544-0042-3510-8052-b3c04f595231\", \
         hostname: node13, boot: {{ uefi_x64: special.efi }} }}\n"
    );
    let scratch = Scratch::new(&["ipxe.efi", "special.efi"], &dhcp);
    let uuid = "4c4c4544-0042-3510-8052-b3c04f595231";
    let v4 = text(&scratch.run(
        "explain",
        &["--mac", "52:54:00:12:34:56", "--arch", "7", "--uuid", uuid],
    ));
    assert!(
        v4.contains("dhcp.reservations[0] matches by SMBIOS UUID (option 97)"),
        "{v4}"
    );
    assert!(v4.contains("67 (boot file name): \"special.efi\""), "{v4}");
    let v6 = text(&scratch.run("explain", &["--v6", "--arch", "7", "--uuid", uuid]));
    assert!(
        v6.contains("dhcp.reservations[0] names this client by its SMBIOS UUID"),
        "{v6}"
    );
    assert!(v6.contains("tftp://[fd00:99::1]/special.efi"), "{v6}");
    // EDK2 puts its EFI_GUID into the DUID-UUID as it lies in memory.
    let edk2 = text(&scratch.run(
        "explain",
        &[
            "--v6",
            "--arch",
            "7",
            "--duid",
            "00:04:44:45:4c:4c:42:00:10:35:80:52:b3:c0:4f:59:52:31",
        ],
    ));
    assert!(edk2.contains("tftp://[fd00:99::1]/special.efi"), "{edk2}");
    // Another machine is not the reserved one.
    let other = text(&scratch.run(
        "explain",
        &[
            "--v6",
            "--arch",
            "7",
            "--uuid",
            "4c4c4544-0042-3510-8052-b3c04f595232",
        ],
    ));
    assert!(
        other.contains("reservation: none names this client"),
        "{other}"
    );
    assert!(other.contains("tftp://[fd00:99::1]/ipxe.efi"), "{other}");
}

/// `explain --ipxe` shows the profile a machine gets for boot.ipxe, why, and the script.
#[test]
fn explain_shows_the_profile_and_the_rendered_script() {
    let dhcp = format!(
        "{SERVER_DHCP6}  reservations:\n    - {{ mac: \"52:54:00:12:34:56\", hostname: node10, labels: {{ role: worker }} }}\nprofiles:\n  - name: workers\n    match: {{ labels: {{ role: worker }} }}\n    ipxe: |\n      #!ipxe\n      echo {{{{ hostname }}}} {{{{ mac }}}} ${{net0/ip}}\n  - name: default\n    ipxe: \"#!ipxe\\nexit\\n\"\n"
    );
    let scratch = Scratch::new(&["boot.ipxe", "ipxe.efi"], &dhcp);
    let worker = text(&scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--ipxe"]));
    assert!(
        worker.contains("profile:      \"workers\", matched by labels"),
        "{worker}"
    );
    assert!(
        worker.contains("echo node10 52:54:00:12:34:56 ${net0/ip}"),
        "{worker}"
    );
    let other = text(&scratch.run("explain", &["--mac", "52:54:00:12:34:57", "--ipxe"]));
    assert!(
        other.contains("profile:      \"default\", the default profile"),
        "{other}"
    );
    // A PXE ROM does not fetch the script: no profile line.
    let rom = text(&scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "7"]));
    assert!(!rom.contains("profile:"), "{rom}");
}

/// UEFI HTTP boot (arch 16): with the boot tree served over HTTP, a path becomes a URL on
/// this box (option 60 HTTPClient echoed on v4, option 16 on v6); `boot.uefi_x64_http` wins
/// over `boot.uefi_x64`; without HTTP a path cannot be handed to an HTTP boot client.
#[test]
fn explain_an_http_boot_client_gets_a_url_on_this_box() {
    let scratch = Scratch::new(&["ipxe.efi", "shim.efi"], SERVER_DHCP6);
    let original = std::fs::read_to_string(scratch.config()).unwrap();
    let with_http = |extra: &str| {
        let config = original.replacen(
            "boot:\n",
            &format!("http:\n  listen: [\"0.0.0.0:8080\", \"[::]:8081\"]\nboot:\n{extra}"),
            1,
        );
        std::fs::write(scratch.config(), config).unwrap();
    };
    let none = text(&scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "16"]));
    assert!(none.contains("this box serves no HTTP"), "{none}");

    with_http("");
    let v4 = text(&scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "16"]));
    assert!(v4.contains("HTTPClient"), "{v4}");
    assert!(v4.contains("http://10.99.0.1:8080/ipxe.efi"), "{v4}");
    let v6 = text(&scratch.run(
        "explain",
        &["--mac", "52:54:00:12:34:56", "--arch", "16", "--v6"],
    ));
    assert!(
        v6.contains("59 boot file URL http://[fd00:99::1]:8081/ipxe.efi"),
        "{v6}"
    );
    assert!(v6.contains("HTTPClient"), "{v6}");

    with_http("  uefi_x64_http: shim.efi\n");
    let v4 = text(&scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "16"]));
    assert!(v4.contains("http://10.99.0.1:8080/shim.efi"), "{v4}");
    assert!(v4.contains("boot.uefi_x64_http"), "{v4}");
    // A PXE client of the same architecture keeps its TFTP file.
    let pxe = text(&scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "7"]));
    assert!(pxe.contains("67 (boot file name): \"ipxe.efi\""), "{pxe}");
}

#[test]
fn explain_a_bios_pxe_client_gets_undionly_and_option_43() {
    let scratch = Scratch::new(&["undionly.kpxe"], SERVER_DHCP);
    let output = scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "0"]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("reply:    DHCPOFFER"), "{report}");
    assert!(report.contains("yiaddr:   10.99.0.100"), "{report}");
    assert!(
        report.contains("siaddr:   10.99.0.1 (next-server)"),
        "{report}"
    );
    assert!(report.contains("file:     \"undionly.kpxe\""), "{report}");
    assert!(
        report.contains("67 (boot file name): \"undionly.kpxe\""),
        "{report}"
    );
    assert!(
        report.contains("43 (vendor-specific): 06 01 08 ff"),
        "{report}"
    );
    assert!(report.contains("51 (lease time): 43200 s"), "{report}");
    assert!(
        report.contains("chosen by boot.bios for arch 0"),
        "the why names the rule: {report}"
    );
    assert!(
        report.contains("\"undionly.kpxe\" is in the TFTP root"),
        "{report}"
    );
    assert!(!report.contains("WARNING"), "{report}");
}

#[test]
fn explain_an_ipxe_client_gets_the_ipxe_script() {
    let scratch = Scratch::new(&["boot.ipxe", "ipxe.efi"], SERVER_DHCP);
    let output = scratch.run(
        "explain",
        &["--mac", "52-54-00-12-34-56", "--ipxe", "--arch", "7"],
    );
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("77 (user class): \"iPXE\""), "{report}");
    assert!(report.contains("file:     \"boot.ipxe\""), "{report}");
    assert!(report.contains("chosen by boot.ipxe for iPXE"), "{report}");
    assert!(
        !report.contains("43 (vendor-specific)"),
        "iPXE needs no option 43: {report}"
    );
}

#[test]
fn explain_names_the_reservation_whose_boot_override_wins() {
    let scratch = Scratch::new(&["undionly.kpxe", "special.kpxe"], SERVER_DHCP);
    let output = scratch.run("explain", &["--mac", "52:54:00:00:00:10", "--arch", "0"]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("file:     \"special.kpxe\""), "{report}");
    assert!(report.contains("yiaddr:   10.99.0.10"), "{report}");
    assert!(
        report.contains("chosen by reservation 52:54:00:00:00:10 boot.bios for arch 0"),
        "{report}"
    );
    assert!(
        report.contains("dhcp.reservations[0] matches by MAC"),
        "{report}"
    );
    assert!(
        report.contains("wins over the global boot.bios (\"undionly.kpxe\")"),
        "{report}"
    );
    assert!(
        report.contains("10.99.0.10: the reservation's address"),
        "{report}"
    );
}

#[test]
fn explain_warns_about_a_missing_boot_file() {
    let scratch = Scratch::new(&["undionly.kpxe"], SERVER_DHCP);
    let output = scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "7"]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("file:     \"ipxe.efi\""), "{report}");
    assert!(
        report.contains("WARNING: boot file \"ipxe.efi\" cannot be served from the TFTP root")
            && report.contains("file not found"),
        "{report}"
    );
}

#[test]
fn explain_in_proxy_mode_gives_a_non_pxe_client_no_reply_and_says_why() {
    let scratch = Scratch::new(&[], PROXY_DHCP);
    let output = scratch.run("explain", &["--mac", "52:54:00:12:34:56"]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("reply:    none"), "{report}");
    assert!(
        report.contains("no reply:     not a netboot client: proxy mode answers"),
        "{report}"
    );
    assert!(
        report.contains("192.0.2.1") && report.contains("TEST-NET-1"),
        "the stand-in server address is called one: {report}"
    );
    // A PXE client in the same setup is answered, without an address.
    let output = scratch.run("explain", &["--mac", "52:54:00:12:34:56", "--arch", "0"]);
    let report = text(&output);
    assert!(report.contains("reply:    DHCPOFFER"), "{report}");
    assert!(report.contains("yiaddr:   0.0.0.0"), "{report}");
    assert!(report.contains("file:     \"undionly.kpxe\""), "{report}");
}

#[test]
fn explain_refuses_a_bad_mac_with_exit_code_2() {
    let output = kindling(&["explain", "--mac", "52:54:00:12:34"]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(report.contains("not a MAC address"), "{report}");
}

#[test]
fn leases_on_an_empty_state_dir() {
    let scratch = Scratch::new(&[], PROXY_DHCP);
    let output = scratch.run("leases", &[]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains(&format!(
            "no leases (state_dir {}",
            scratch.state().display()
        )),
        "{report}"
    );
    let output = scratch.run("leases", &["--json"]);
    assert!(output.status.success());
    assert!(output.stdout.is_empty(), "JSON output holds leases only");
}

/// Writes two leases with the daemon's own store: an active one expiring in 3 hours and one
/// that expired 2 minutes ago.
fn write_leases(state: &std::path::Path) {
    use kindling_dhcp::lease::{LeaseRecord, LeaseState, LeaseStore, MacAddr};
    use std::time::{Duration, SystemTime};
    let now = SystemTime::now();
    let (store, _) = LeaseStore::open(state, now).unwrap();
    store
        .commit(vec![
            LeaseRecord {
                mac: MacAddr([0x52, 0x54, 0, 0, 0, 0xb2]),
                client_id: None,
                address: "10.99.0.120".parse().unwrap(),
                hostname: None,
                state: LeaseState::Expired,
                granted_at: now - Duration::from_secs(3600),
                expires_at: now - Duration::from_secs(150),
            },
            LeaseRecord {
                mac: MacAddr([0x52, 0x54, 0, 0, 0, 0xa1]),
                client_id: Some(vec![1, 0x52, 0x54, 0, 0, 0, 0xa1]),
                address: "10.99.0.101".parse().unwrap(),
                hostname: Some("node\"a".into()),
                state: LeaseState::Active,
                granted_at: now,
                expires_at: now + Duration::from_secs(3 * 3600 + 60),
            },
        ])
        .unwrap();
    store.close();
}

#[test]
fn leases_lists_a_journal_written_by_the_lease_store() {
    let scratch = Scratch::new(&[], SERVER_DHCP);
    write_leases(&scratch.state());
    let output = scratch.run("leases", &[]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    for column in ["ADDRESS", "MAC", "HOSTNAME", "STATE", "EXPIRES"] {
        assert!(lines[0].contains(column), "{report}");
    }
    // Ordered by address.
    assert!(
        lines[1].starts_with("10.99.0.101  52:54:00:00:00:a1  node\"a"),
        "{report}"
    );
    assert!(
        lines[1].contains("active") && lines[1].contains("(in 3h"),
        "{report}"
    );
    assert!(lines[2].starts_with("10.99.0.120"), "{report}");
    assert!(
        lines[2].contains("expired") && lines[2].ends_with("2m ago)"),
        "{report}"
    );

    let output = scratch.run("leases", &["--json"]);
    assert!(output.status.success());
    let json = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 2, "{json}");
    assert!(
        lines[0].starts_with(
            "{\"address\":\"10.99.0.101\",\"mac\":\"52:54:00:00:00:a1\",\
             \"hostname\":\"node\\\"a\",\"client_id\":\"015254000000a1\""
        ),
        "{json}"
    );
    assert!(lines[0].contains("\"state\":\"active\""), "{json}");
    assert!(lines[1].contains("\"hostname\":null"), "{json}");
    assert!(lines[1].contains("\"state\":\"expired\""), "{json}");
    assert!(lines.iter().all(|l| l.ends_with('}')), "{json}");
}

#[test]
fn leases_lists_v6_leases_after_the_v4_ones() {
    use kindling_dhcp::lease::{Lease6Record, LeaseState, LeaseStore, MacAddr};
    use std::time::{Duration, SystemTime};
    let scratch = Scratch::new(&[], SERVER_DHCP);
    write_leases(&scratch.state());
    let now = SystemTime::now();
    let (store, _) = LeaseStore::open(scratch.state(), now).unwrap();
    let v6 = |last: u16, mac: Option<MacAddr>, hostname: Option<&str>| Lease6Record {
        duid: vec![0, 4, 0xde, 0xad, last as u8],
        iaid: u32::from(last),
        mac,
        address: std::net::Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, last),
        hostname: hostname.map(str::to_string),
        state: LeaseState::Active,
        granted_at: now,
        expires_at: now + Duration::from_secs(3600 + 60),
    };
    store
        .commit(vec![
            v6(0x1ff, None, None),
            v6(
                0x100,
                Some(MacAddr([0x52, 0x54, 0, 0, 0, 0xa1])),
                Some("node-a"),
            ),
        ])
        .unwrap();
    store.close();

    let output = scratch.run("leases", &[]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 5, "{report}");
    assert!(lines[1].starts_with("10.99.0.101"), "{report}");
    assert!(lines[2].starts_with("10.99.0.120"), "{report}");
    assert!(
        lines[3].starts_with("fd00:99::100") && lines[3].contains("52:54:00:00:00:a1  node-a"),
        "{report}"
    );
    assert!(
        lines[4].starts_with("fd00:99::1ff") && lines[4].contains(" -  "),
        "a v6 lease whose MAC is unknown shows -: {report}"
    );

    let output = scratch.run("leases", &["--json"]);
    let json = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 4, "{json}");
    assert!(
        lines[2].starts_with(
            "{\"address\":\"fd00:99::100\",\"mac\":\"52:54:00:00:00:a1\",\
             \"hostname\":\"node-a\",\"duid\":\"0004dead00\",\"iaid\":256,"
        ),
        "{json}"
    );
    assert!(lines[3].contains("\"mac\":null"), "{json}");
}

#[test]
fn leases_from_a_damaged_journal_come_with_a_warning() {
    let scratch = Scratch::new(&[], SERVER_DHCP);
    write_leases(&scratch.state());
    let journal = scratch.state().join(kindling_dhcp::lease::JOURNAL_FILE);
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(b"half a record");
    std::fs::write(&journal, bytes).unwrap();
    let output = scratch.run("leases", &[]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout.lines().count(), 3, "both leases are shown: {stdout}");
    assert!(
        stderr.contains("warning")
            && stderr.contains("the last 13 bytes")
            && stderr.contains("showing the 2 leases recovered"),
        "{stderr}"
    );
}
