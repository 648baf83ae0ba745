//! Booting over IPv6 alone, on the namespace lab of [`crate::dhcp_lab`]: a QEMU VM whose IPv4
//! and ARP frames are dropped at its tap (an nftables netdev filter), so that nothing but IPv6
//! can work, boots from Kindling: a router advertisement with the M flag, DHCPv6 with option
//! 59 (`tftp://[the server's ULA]/file`) and TFTP over IPv6, up to the marker the served iPXE
//! script prints on the serial console.
//!
//! - OVMF's own PXE client (IPv4 PXE turned off) loads `ipxe.efi` named by option 59 in the
//!   ADVERTISE, and that iPXE, sending user class `iPXE`, gets `boot.ipxe` in the REPLY.
//! - SeaBIOS with the iPXE NIC ROM reaches its script the same way.
//!
//! The router advertisements are Kindling's own (`dhcp.v6.router_advertisements: true`: M=1,
//! O=1, the prefix on-link with A=0, router lifetime 0); no other router is on the segment.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use kindling_dhcp::lease::{LeaseState, read_snapshot};

use crate::dhcp_lab::{IPXE_EFI, Lab, Qemu, write_marker_script};
use crate::harness::{Daemon, Fixture};
use crate::tools::require;

/// OVMF PXE over IPv6 takes about 45 s to the marker here under TCG (10 s of it is EDK2
/// looking for a route to the boot server, which an RA with router lifetime 0 never gives);
/// SeaBIOS iPXE about 18 s (iPXE's DHCPv4 attempt times out first). Room for a loaded CI box.
const OVMF_DEADLINE: Duration = Duration::from_secs(110);
const BIOS_DEADLINE: Duration = Duration::from_secs(80);

/// The lab's IPv6 prefix: fd00:99:N::, the server at ::1.
fn prefix(lab: &Lab) -> String {
    format!("fd00:99:{}::", lab.n())
}

/// Kindling in server mode on the lab with DHCPv4 and DHCPv6 subnets, router advertisements
/// and TFTP on both families: `ipxe.efi` for UEFI x64 PXE clients, `boot.ipxe` for iPXE.
fn start_kindling(lab: &Lab, fixture: Fixture) -> Daemon {
    let p = prefix(lab);
    lab.server.netns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{p}1/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    // A second ULA with a lifetime, as SLAAC from another router's RA gives one (the boot
    // benchmark's server picked one up from dnsmasq): the kernel lists it first, being newer,
    // but option 59 must keep naming the configured ::1.
    lab.server.netns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{p}aaaa/64"),
        "dev",
        "eth0",
        "nodad",
        "valid_lft",
        "3600",
        "preferred_lft",
        "3600",
    ]);
    let section = format!(
        "  listen: [\"0.0.0.0:69\", \"[::]:69\"]\nboot:\n  bios: undionly.kpxe\n  uefi_x64: ipxe.efi\n  ipxe: boot.ipxe\ndhcp:\n  mode: server\n  interfaces: [eth0]\n  lease_time: 1h\n  ping_check: false\n  subnets:\n    - network: NET.0/24\n      range: [NET.100, NET.120]\n  v6:\n    router_advertisements: true\n    subnets:\n      - {{ network: \"{p}/64\", range: [\"{p}100\", \"{p}1ff\"] }}\n"
    )
    .replace("NET", &format!("10.99.{}", lab.n()));
    let mut daemon = fixture.start_in(&lab.server.exec_prefix(), &section);
    daemon.wait_for_log("dhcpv6 listening", Duration::from_secs(10));
    daemon.wait_for_log(
        "advertising as the DHCPv6 segment's router",
        Duration::from_secs(10),
    );
    daemon
}

/// The `tftp transfer complete` log lines of `file` sent to an address of `prefix`.
fn transfers<'a>(log: &'a str, file: &str, prefix: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| {
            l.contains("tftp transfer complete")
                && l.contains(&format!("file={file} "))
                && l.contains(&format!("peer=[{prefix}"))
        })
        .collect()
}

/// What both boots must show once the marker is on the console: iPXE has an IPv6 address from
/// the range and no IPv4 one, it took `boot.ipxe` from option 59 naming the server's ULA, the
/// script went out over TFTP on IPv6, the lease is in the journal under the VM's MAC, no
/// DHCPv4 lease exists, and the tap's filter did drop IPv4 frames (the VM tried).
fn check_ipv6_only_boot(lab: &Lab, tap: &str, vm: &Qemu, daemon: &Daemon, mac: &str) {
    let p = prefix(lab);
    let info = vm.ipxe_info();
    let log = daemon.log();
    let ip6: Ipv6Addr = info["net0/ip6"]
        .parse()
        .unwrap_or_else(|_| panic!("iPXE has no IPv6 address: {info:?}\n{log}"));
    let first: Ipv6Addr = format!("{p}100").parse().unwrap();
    let last: Ipv6Addr = format!("{p}1ff").parse().unwrap();
    assert!(
        (first..=last).contains(&ip6),
        "{ip6} is not in the range: {info:?}"
    );
    assert_eq!(info["ip"], "", "iPXE got an IPv4 address: {info:?}");
    assert_eq!(
        info["filename"],
        format!("tftp://[{p}1]/boot.ipxe"),
        "option 59 for iPXE names the script on this box's ULA: {info:?}"
    );
    assert_eq!(info["mac"], mac, "{info:?}");
    assert!(
        !transfers(&log, "boot.ipxe", &p).is_empty(),
        "no TFTP transfer of boot.ipxe over IPv6 in Kindling's log:\n{log}"
    );
    let (snapshot, _) = read_snapshot(daemon.dir.path().join("state")).unwrap();
    assert!(
        snapshot.v4.is_empty(),
        "a DHCPv4 lease exists although IPv4 was dropped: {:?}",
        snapshot.v4
    );
    let lease = snapshot
        .v6
        .iter()
        .find(|r| r.address == ip6)
        .unwrap_or_else(|| panic!("iPXE's address is not in the journal: {:?}", snapshot.v6));
    assert_eq!(lease.state, LeaseState::Active, "{lease:?}");
    assert_eq!(
        lease.mac.map(|m| m.to_string()).as_deref(),
        Some(mac),
        "the MAC learned from iPXE's link-local address: {lease:?}"
    );
    let dropped = lab.ipv4_frames_dropped(tap);
    assert!(
        dropped > 0,
        "the VM sent no IPv4 or ARP frame: the filter proved nothing"
    );
}

/// OVMF's PXE client over IPv6 only: option 59 in the ADVERTISE names `ipxe.efi` on the
/// server's ULA, the firmware downloads it over TFTP on IPv6 (the exact bytes), and that iPXE
/// gets `boot.ipxe` through DHCPv6 and runs it.
#[test]
fn qemu_ovmf_pxe_boots_over_ipv6_only() {
    require("qemu-system-x86_64");
    let started = Instant::now();
    let lab = Lab::new("k6ovmf", 66);
    let fixture = Fixture::new();
    let marker = write_marker_script(&fixture.root().join("boot.ipxe"));
    let ipxe_efi = fixture.root().join("ipxe.efi");
    assert!(
        std::path::Path::new(IPXE_EFI).is_file(),
        "{IPXE_EFI} is missing: install the ipxe package"
    );
    std::fs::copy(IPXE_EFI, &ipxe_efi).unwrap();
    let daemon = start_kindling(&lab, fixture);
    let tap = lab.add_ipv6_only_tap("tap0");
    let mac = "52:54:00:99:66:10";
    let mut vm = Qemu::boot_ovmf_pxe(&lab, &tap, mac, false);
    let booting = Instant::now();
    vm.wait_for_serial(&marker, OVMF_DEADLINE);
    let boot = booting.elapsed();

    let p = prefix(&lab);
    let console = vm.serial_log();
    assert!(
        console.contains("Start PXE over IPv6"),
        "OVMF did not boot with PXE over IPv6:\n{console}"
    );
    assert!(
        console.contains("NBP filename is ipxe.efi")
            && console.contains(&format!("Server IP address is {}", edk2_address(&p, 1))),
        "OVMF did not take ipxe.efi on this box's ULA from option 59:\n{console}"
    );
    check_ipv6_only_boot(&lab, &tap, &vm, &daemon, mac);
    let log = daemon.log();
    let sent = transfers(&log, "ipxe.efi", &p);
    let size = std::fs::metadata(&ipxe_efi).unwrap().len();
    assert!(
        sent.iter().any(|l| l.contains(&format!("bytes={size} "))),
        "no whole TFTP transfer of ipxe.efi over IPv6 in Kindling's log:\n{log}"
    );
    eprintln!(
        "qemu_ovmf_pxe_boots_over_ipv6_only: marker {boot:?} after QEMU started, {:?} in all",
        started.elapsed()
    );
}

/// SeaBIOS with the iPXE e1000 ROM over IPv6 only: the RA's M flag starts DHCPv6, option 59 in
/// the REPLY names `boot.ipxe` on the server's ULA, and the script runs.
#[test]
fn qemu_bios_ipxe_boots_over_ipv6_only() {
    require("qemu-system-x86_64");
    let started = Instant::now();
    let lab = Lab::new("k6bios", 67);
    let fixture = Fixture::new();
    let marker = write_marker_script(&fixture.root().join("boot.ipxe"));
    let daemon = start_kindling(&lab, fixture);
    let tap = lab.add_ipv6_only_tap("tap0");
    let mac = "52:54:00:99:67:10";
    let mut vm = Qemu::boot_bios_ipxe(&lab, &tap, mac);
    let booting = Instant::now();
    vm.wait_for_serial(&marker, BIOS_DEADLINE);
    let boot = booting.elapsed();
    check_ipv6_only_boot(&lab, &tap, &vm, &daemon, mac);
    assert_eq!(vm.ipxe_info()["platform"], "pcbios");
    eprintln!(
        "qemu_bios_ipxe_boots_over_ipv6_only: marker {boot:?} after QEMU started, {:?} in all",
        started.elapsed()
    );
}

/// An address of `prefix` (`fd00:99:N::`) the way EDK2 prints it: every group, upper case
/// (`FD00:99:42:0:0:0:0:1`).
fn edk2_address(prefix: &str, host: u16) -> String {
    let address: Ipv6Addr = format!("{prefix}{host:x}").parse().unwrap();
    address
        .segments()
        .iter()
        .map(|s| format!("{s:X}"))
        .collect::<Vec<_>>()
        .join(":")
}
