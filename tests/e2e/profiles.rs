//! Per-machine boot scripts end to end: two machines that got their leases from Kindling fetch
//! `boot.ipxe` over TFTP (and one over HTTP too) and each gets its own rendered profile; a machine without a lease
//! (proxy-style, known by the neighbour table) still gets one; a reload that breaks a template
//! is refused and the old profiles keep serving.

use std::time::Duration;

use crate::dhcp_lab::{DhclientOptions, Lab, LabHost, run_dhclient};
use crate::harness::{Fixture, SIGHUP};
use crate::tools::{require, run};

const WORKER_MAC: &str = "52:54:00:99:68:10";
const OTHER_MAC: &str = "52:54:00:99:68:21";

fn section(lab: &Lab, profiles: &str) -> String {
    format!(
        "  listen: [\"0.0.0.0:69\"]\nhttp:\n  listen: [\"0.0.0.0:8080\"]\nboot:\n  bios: undionly.kpxe\n  ipxe: boot.ipxe\ndhcp:\n  mode: server\n  interfaces: [eth0]\n  ping_check: false\n  lease_time: 1h\n  subnets:\n    - {{ network: NET.0/24, range: [NET.100, NET.120] }}\n  reservations:\n    - {{ mac: \"{WORKER_MAC}\", ip: NET.10, hostname: node10, labels: {{ role: worker }} }}\n{profiles}"
    )
    .replace("NET", &format!("10.99.{}", lab.n()))
}

const PROFILES: &str = "profiles:\n  - name: workers\n    match: { labels: { role: worker } }\n    ipxe: |\n      #!ipxe\n      echo worker {{ hostname }} {{ mac }} from {{ server }}\n      chain http://${next-server}/install\n  - name: default\n    ipxe: |\n      #!ipxe\n      echo default {{ mac }} {{ ip }} [{{ hostname }}]\n";

/// `boot.ipxe` fetched over TFTP from inside `host`'s namespace.
fn fetch_script(lab: &Lab, host: &LabHost) -> String {
    require("curl");
    let output = run(
        host.command("curl")
            .args(["-s", "--max-time", "10"])
            .arg(format!("tftp://{}/boot.ipxe", lab.ip(1))),
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn two_machines_fetch_their_own_rendered_scripts_over_tftp() {
    let lab = Lab::new("kprofile", 68);
    let worker = lab.add_client("w1", WORKER_MAC);
    let other = lab.add_client("o1", OTHER_MAC);
    let fixture = Fixture::new();
    // The file on disk is what a machine without a profile would get: never served here.
    std::fs::write(fixture.root().join("boot.ipxe"), "#!ipxe\necho from disk\n").unwrap();
    let mut daemon = fixture.start_in(&lab.server.exec_prefix(), &section(&lab, PROFILES));
    daemon.wait_for_log("dhcp listening", Duration::from_secs(10));

    let worker_lease = run_dhclient(&worker, &DhclientOptions::default());
    assert_eq!(worker_lease.address, lab.ip(10));
    let other_lease = run_dhclient(&other, &DhclientOptions::default());

    let script = fetch_script(&lab, &worker);
    assert_eq!(
        script,
        format!(
            "#!ipxe\necho worker node10 {WORKER_MAC} from {}\nchain http://${{next-server}}/install\n",
            lab.ip(1)
        ),
        "{}",
        daemon.log()
    );
    // Over HTTP the same boot tree answers: the same machine gets the same script.
    let output = run(
        worker
            .command("curl")
            .args(["-s", "--max-time", "10"])
            .arg(format!("http://{}:8080/boot.ipxe", lab.ip(1))),
        Duration::from_secs(20),
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        script,
        "{}",
        daemon.log()
    );
    let script = fetch_script(&lab, &other);
    assert_eq!(
        script,
        format!(
            "#!ipxe\necho default {OTHER_MAC} {} []\n",
            other_lease.address
        ),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains("profiles: rendered the boot script") && log.contains("profile=\"workers\""),
        "{log}"
    );

    // A machine without a lease (its address set by hand) is known by the neighbour table.
    let stranger = lab.add_client("s1", "52:54:00:99:68:33");
    stranger
        .netns
        .ip(&["addr", "add", &format!("{}/24", lab.ip(77)), "dev", "eth0"]);
    let script = fetch_script(&lab, &stranger);
    assert_eq!(
        script,
        format!("#!ipxe\necho default 52:54:00:99:68:33 {} []\n", lab.ip(77)),
        "{}",
        daemon.log()
    );

    // A reload with a template that does not render is refused; the old profiles stay.
    let path = daemon.config_path();
    let broken = std::fs::read_to_string(&path)
        .unwrap()
        .replace("{{ server }}", "{{ srever }}");
    std::fs::write(&path, broken).unwrap();
    daemon.signal(SIGHUP);
    daemon.wait_for_log("the new profiles do not render", Duration::from_secs(10));
    assert!(fetch_script(&lab, &worker).starts_with("#!ipxe\necho worker node10"));
}

/// Install once, then boot from disk: the machine gets its install script until its
/// installer fetches `kindling/installed`, then its `after_install` script, also after the
/// daemon is killed with SIGKILL and started again, until `kindling profiles reset`.
#[test]
fn an_install_once_profile_switches_to_local_boot_and_stays_switched_across_kill_9() {
    let lab = Lab::new("kinstall", 69);
    let worker = lab.add_client("w1", WORKER_MAC);
    let profiles = "profiles:\n  - name: workers\n    match: { labels: { role: worker } }\n    ipxe: |\n      #!ipxe\n      echo installing, then fetch {{ done_url }}\n    after_install: |\n      #!ipxe\n      echo {{ hostname }} boots from disk\n      sanboot --no-describe --drive 0x80\n";
    let fixture = Fixture::new();
    let prefix = lab.server.exec_prefix();
    let mut daemon = fixture.start_in(&prefix, &section(&lab, profiles));
    daemon.wait_for_log("dhcp listening", Duration::from_secs(10));
    run_dhclient(&worker, &DhclientOptions::default());

    let install = format!(
        "#!ipxe\necho installing, then fetch http://{}:8080/kindling/installed\n",
        lab.ip(1)
    );
    assert_eq!(fetch_script(&lab, &worker), install, "{}", daemon.log());
    assert_eq!(
        fetch_script(&lab, &worker),
        install,
        "no switch before the report"
    );
    // The installer reports over HTTP (done_url), as a late command would.
    let report = run(
        worker
            .command("curl")
            .args(["-s", "--max-time", "10"])
            .arg(format!("http://{}:8080/kindling/installed", lab.ip(1))),
        Duration::from_secs(20),
    );
    assert_eq!(String::from_utf8_lossy(&report.stdout), "installed\n");
    let local = "#!ipxe\necho node10 boots from disk\nsanboot --no-describe --drive 0x80\n";
    assert_eq!(fetch_script(&lab, &worker), local, "{}", daemon.log());

    daemon.signal(9);
    let _ = daemon.wait_exit(Duration::from_secs(10));
    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    let dir = daemon.into_dir();
    let mut daemon = crate::harness::Daemon::start_with_prefix(dir, &config, &prefix);
    daemon.wait_for_log("dhcp listening", Duration::from_secs(10));
    assert_eq!(fetch_script(&lab, &worker), local, "kept across kill -9");

    let listed = run(
        std::process::Command::new(crate::harness::BINARY).args([
            "profiles",
            "installed",
            "--config",
            daemon.config_path().to_str().unwrap(),
        ]),
        Duration::from_secs(10),
    );
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&format!("{WORKER_MAC} workers")),
        "{listed:?}"
    );
    let reset = run(
        std::process::Command::new(crate::harness::BINARY).args([
            "profiles",
            "reset",
            WORKER_MAC,
            "--config",
            daemon.config_path().to_str().unwrap(),
        ]),
        Duration::from_secs(10),
    );
    assert!(reset.status.success(), "{reset:?}");
    assert_eq!(
        fetch_script(&lab, &worker),
        install,
        "reset: it installs again"
    );
}
