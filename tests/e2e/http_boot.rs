//! UEFI HTTP boot end to end: OVMF with both of its PXE stacks turned off goes straight to
//! "HTTP Boot over IPv4", asks DHCPv4 as an `HTTPClient` of architecture 16, gets
//! `http://<server>:<port>/ipxe.efi` built from `boot.uefi_x64` and `http.listen`, downloads it
//! from Kindling's HTTP service, and that iPXE runs the script Kindling serves, up to a marker
//! on the serial console.

use std::time::{Duration, Instant};

use crate::dhcp_lab::{IPXE_EFI, Lab, OVMF_CODE, OVMF_VARS, Qemu, write_marker_script};
use crate::harness::Fixture;
use crate::tools::require;

/// OVMF under TCG takes about a minute to reach the script here; room for a loaded CI box.
const DEADLINE: Duration = Duration::from_secs(150);

#[test]
fn qemu_ovmf_http_boot_loads_ipxe_over_http_and_runs_its_script() {
    require("qemu-system-x86_64");
    let started = Instant::now();
    let lab = Lab::new("khttpboot", 70);
    let fixture = Fixture::new();
    let marker = write_marker_script(&fixture.root().join("boot.ipxe"));
    assert!(
        std::path::Path::new(IPXE_EFI).is_file(),
        "{IPXE_EFI} is missing: install the ipxe package"
    );
    let ipxe_efi = fixture.root().join("ipxe.efi");
    std::fs::copy(IPXE_EFI, &ipxe_efi).unwrap();
    let section = "  listen: [\"0.0.0.0:69\"]\nhttp:\n  listen: [\"0.0.0.0:8080\"]\nboot:\n  uefi_x64: ipxe.efi\n  ipxe: boot.ipxe\ndhcp:\n  mode: server\n  interfaces: [eth0]\n  lease_time: 1h\n  ping_check: false\n  subnets:\n    - network: NET.0/24\n      range: [NET.100, NET.120]\n"
        .replace("NET", &format!("10.99.{}", lab.n()));
    let mut daemon = fixture.start_in(&lab.server.exec_prefix(), &section);
    daemon.wait_for_log("dhcp listening", Duration::from_secs(10));
    let tap = lab.add_tap("tap0");

    for file in [OVMF_CODE, OVMF_VARS] {
        assert!(
            std::path::Path::new(file).is_file(),
            "{file} is missing: install the ovmf package"
        );
    }
    let vars_dir = tempfile::tempdir().unwrap();
    let vars = vars_dir.path().join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let mac = "52:54:00:99:70:10";
    let machine: Vec<String> = [
        "-machine",
        "q35",
        "-drive",
        &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
        "-drive",
        &format!("if=pflash,format=raw,file={}", vars.display()),
        "-device",
        &format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
        // Both PXE stacks off: OVMF goes straight to HTTP boot.
        "-fw_cfg",
        "name=opt/org.tianocore/IPv4PXESupport,string=n",
        "-fw_cfg",
        "name=opt/org.tianocore/IPv6PXESupport,string=n",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let mut vm = Qemu::start(&lab, &tap, &machine);
    let booting = Instant::now();
    vm.wait_for_serial(&marker, DEADLINE);
    let boot = booting.elapsed();

    let console = vm.serial_log();
    let log = daemon.log();
    assert!(
        console.contains("HTTP Boot over IPv4"),
        "OVMF did not boot by HTTP:\n{console}"
    );
    let url = format!("http://{}:8080/ipxe.efi", lab.ip(1));
    assert!(
        log.lines()
            .any(|l| l.contains("ipxe.efi") && l.contains("status=200") && l.contains("http")),
        "no HTTP download of ipxe.efi in Kindling's log ({url}):\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("tftp transfer complete") && l.contains("file=ipxe.efi")),
        "ipxe.efi went over TFTP, not HTTP:\n{log}"
    );
    let info = vm.ipxe_info();
    assert_eq!(info["mac"], mac, "{info:?}");
    eprintln!(
        "qemu_ovmf_http_boot: marker {boot:?} after QEMU started, {:?} in all",
        started.elapsed()
    );
}
