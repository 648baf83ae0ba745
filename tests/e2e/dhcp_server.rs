//! Kindling's DHCP service end to end, in the namespace lab of [`crate::dhcp_lab`]: dhclient
//! and a QEMU VM with iPXE as clients, dnsmasq as the network's other server where a test
//! needs one.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use kindling_dhcp::lease::{LeaseState, read_snapshot};

use crate::dhcp_lab::{
    BOOT_DEADLINE, Dhclient, DhclientOptions, Lab, Qemu, forget_dhcp_lease, release_dhclient,
    run_dhclient, start_dnsmasq, write_marker_script,
};
use crate::harness::{Daemon, Fixture};

const RESERVED_MAC: &str = "52:54:00:99:00:10";

/// The daemon's config after the `tftp:` line: TFTP on port 69, the boot files, and `dhcp`.
fn config(lab: &Lab, dhcp: &str) -> String {
    format!(
        "  listen: [\"0.0.0.0:69\"]\nboot:\n  bios: undionly.kpxe\n  ipxe: boot.ipxe\ndhcp:\n  interfaces: [eth0]\n{dhcp}",
    )
    .replace("NET", &format!("10.99.{}", lab.n()))
}

fn server_mode(lab: &Lab) -> String {
    config(
        lab,
        &format!(
            "  mode: server\n  lease_time: 1h\n  subnets:\n    - network: NET.0/24\n      range: [NET.100, NET.120]\n      router: NET.1\n      dns: [NET.1]\n      domain: lab.test\n      options: {{ ntp-servers: [NET.1] }}\n  reservations:\n    - {{ mac: \"{RESERVED_MAC}\", ip: NET.10, hostname: node10 }}\n"
        ),
    )
}

fn start(lab: &Lab, fixture: Fixture, section: &str) -> Daemon {
    let mut daemon = fixture.start_in(&lab.server.exec_prefix(), section);
    daemon.wait_for_log("dhcp listening", Duration::from_secs(10));
    daemon
}

fn in_range(lab: &Lab, address: Ipv4Addr) -> bool {
    (lab.ip(100)..=lab.ip(120)).contains(&address)
}

fn journal(daemon: &Daemon) -> Vec<kindling_dhcp::lease::LeaseRecord> {
    read_snapshot(daemon.dir.path().join("state")).unwrap().0.v4
}

/// dhclient gets an address from the range with the router, DNS, domain and a configured
/// option; the lease is in the journal; a second run (INIT-REBOOT) keeps the address; a
/// release marks it released; a fresh DISCOVER gets the same address back.
#[test]
fn dhclient_gets_a_lease_keeps_it_and_releases_it() {
    let lab = Lab::new("kdora", 40);
    let client = lab.add_client("c1", "52:54:00:99:40:21");
    let daemon = start(&lab, Fixture::new(), &server_mode(&lab));
    let server = lab.server_ip();
    let mut options = DhclientOptions::with_hostname("Web_01");
    options.also_request.push("ntp-servers".into());

    let lease = run_dhclient(&client, &options);
    assert_eq!(lease.reason, "BOUND", "{lease:#?}");
    assert!(in_range(&lab, lease.address), "{lease:#?}");
    assert_eq!(lease.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(lease.routers, vec![server], "{lease:#?}");
    assert_eq!(lease.dns_servers, vec![server], "{lease:#?}");
    assert_eq!(lease.domain_name.as_deref(), Some("lab.test"));
    assert_eq!(lease.server_identifier, Some(server));
    assert_eq!(lease.lease_time, Some(3600));
    assert_eq!(lease.renewal_time, Some(1800));
    assert_eq!(lease.rebinding_time, Some(3150));
    assert_eq!(
        lease.env.get("new_ntp_servers").map(String::as_str),
        Some(server.to_string().as_str()),
        "{lease:#?}"
    );
    assert_eq!(lease.filename, None, "dhclient is not a PXE client");

    let records = journal(&daemon);
    let record = records
        .iter()
        .find(|r| r.address == lease.address)
        .expect("the ACKed lease is in the journal");
    assert_eq!(record.mac.to_string(), client.mac);
    assert_eq!(record.state, LeaseState::Active);
    assert_eq!(record.hostname.as_deref(), Some("web-01"), "sanitized");

    let again = run_dhclient(&client, &options);
    assert_eq!(again.reason, "REBOOT", "{again:#?}");
    assert_eq!(again.address, lease.address);

    release_dhclient(&client, &options);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = journal(&daemon)
            .into_iter()
            .find(|r| r.address == lease.address)
            .map(|r| r.state);
        if state == Some(LeaseState::Released) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not released: {state:?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    forget_dhcp_lease(&client);
    let back = run_dhclient(&client, &DhclientOptions::default());
    assert_eq!(back.reason, "BOUND");
    assert_eq!(
        back.address, lease.address,
        "a client gets its old address back"
    );
}

/// A reserved MAC gets its fixed address and the reservation's host name.
#[test]
fn a_reservation_gets_its_address() {
    let lab = Lab::new("kresv", 41);
    let client = lab.add_client("c1", RESERVED_MAC);
    let daemon = start(&lab, Fixture::new(), &server_mode(&lab));
    let mut options = DhclientOptions::with_hostname("whatever");
    options.also_request.push("host-name".into());
    let lease = run_dhclient(&client, &options);
    assert_eq!(lease.address, lab.ip(10), "{lease:#?}");
    assert_eq!(lease.host_name.as_deref(), Some("node10"), "{lease:#?}");
    let records = journal(&daemon);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hostname.as_deref(), Some("node10"));
}

/// Many clients arriving one after another, the daemon killed with SIGKILL in the middle:
/// every lease a client was ACKed is in the journal after the crash, and after a restart each
/// of those clients confirms the same address (INIT-REBOOT).
#[test]
fn kill_9_loses_no_acknowledged_lease() {
    const CLIENTS: usize = 20;
    let lab = Lab::new("kkill", 42);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            lab.add_client(
                &format!("c{i}"),
                &format!("52:54:00:99:42:{:02x}", 0x30 + i),
            )
        })
        .collect();
    let fixture = Fixture::new();
    let section = server_mode(&lab);
    let daemon = start(
        &lab,
        fixture,
        &section.replace("range: [NET.100, NET.120]", "range: [NET.100, NET.140]"),
    );
    let options = DhclientOptions {
        timeout: Some(Duration::from_secs(5)),
        ..DhclientOptions::default()
    };
    let acked: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                let options = &options;
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(60 * i as u64));
                    let lease = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_dhclient(client, options)
                    }))
                    .ok()?;
                    (lease.reason == "BOUND").then_some((i, lease))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(600));
        daemon.signal(9);
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    });
    let state = daemon.dir.path().join("state");
    let (snapshot, report) = read_snapshot(&state).unwrap();
    let records = snapshot.v4;
    eprintln!(
        "kill_9: {} of {CLIENTS} clients were ACKed before SIGKILL; the journal holds {} records ({report:?})",
        acked.len(),
        records.len()
    );
    assert!(
        !acked.is_empty(),
        "no client got a lease before the kill:\n{}",
        daemon.log()
    );
    for (_, lease) in &acked {
        assert!(
            records
                .iter()
                .any(|r| r.address == lease.address && r.state == LeaseState::Active),
            "ACKed lease {} lost by kill -9; journal: {records:?}",
            lease.address
        );
    }
    // A new daemon over the same state: every ACKed client keeps its address.
    let dir = daemon.into_dir();
    let config = std::fs::read_to_string(dir.path().join("kindling.yaml")).unwrap();
    let mut restarted = Daemon::start_with_prefix(dir, &config, &lab.server.exec_prefix());
    restarted.wait_for_log("dhcp listening", Duration::from_secs(10));
    for (i, lease) in &acked {
        let again = run_dhclient(&clients[*i], &options);
        assert_eq!(again.reason, "REBOOT", "{again:#?}");
        assert_eq!(
            again.address, lease.address,
            "client {i} lost its address across kill -9"
        );
    }
}

/// The whole chain in server mode: a BIOS VM with iPXE in ROM gets its address from Kindling,
/// loads boot.ipxe over TFTP from Kindling and runs it.
#[test]
fn qemu_ipxe_boots_from_kindling() {
    crate::tools::require("qemu-system-x86_64");
    let lab = Lab::new("kqemu", 43);
    let fixture = Fixture::new();
    let marker = write_marker_script(&fixture.root().join("boot.ipxe"));
    let daemon = start(&lab, fixture, &server_mode(&lab));
    let _beacon = lab.start_ra_beacon();
    let tap = lab.add_tap("tap0");
    let mut vm = Qemu::boot_bios_ipxe(&lab, &tap, "52:54:00:99:43:10");
    vm.wait_for_serial(&marker, BOOT_DEADLINE);
    let info = vm.ipxe_info();
    let server = lab.server_ip().to_string();
    let ip: Ipv4Addr = info["ip"].parse().unwrap();
    assert!(in_range(&lab, ip), "{info:?}\n{}", daemon.log());
    assert_eq!(info["gateway"], server, "{info:?}");
    assert_eq!(info["next-server"], server, "{info:?}");
    assert_eq!(info["filename"], "boot.ipxe", "{info:?}");
    let log = daemon.log();
    assert!(log.contains("boot.ipxe"), "{log}");
}

/// Proxy mode beside the network's own DHCP server (dnsmasq handing out addresses only):
/// the VM takes its address from dnsmasq and its boot file from Kindling.
#[test]
fn qemu_ipxe_boots_through_proxy_mode_beside_dnsmasq() {
    crate::tools::require("qemu-system-x86_64");
    let lab = Lab::new("kproxy", 44);
    let router = lab.add_peer("router", 254);
    let dnsmasq = start_dnsmasq(
        &router,
        &[&format!(
            "--dhcp-range={},{},255.255.255.0,1h",
            lab.ip(150),
            lab.ip(160)
        )],
    );
    let fixture = Fixture::new();
    let marker = write_marker_script(&fixture.root().join("boot.ipxe"));
    let daemon = start(&lab, fixture, &config(&lab, "  mode: proxy\n"));
    let _beacon = lab.start_ra_beacon();
    let tap = lab.add_tap("tap0");
    let mut vm = Qemu::boot_bios_ipxe(&lab, &tap, "52:54:00:99:44:10");
    vm.wait_for_serial(&marker, BOOT_DEADLINE);
    let info = vm.ipxe_info();
    let ip: Ipv4Addr = info["ip"].parse().unwrap();
    assert!(
        (lab.ip(150)..=lab.ip(160)).contains(&ip),
        "the address comes from dnsmasq: {info:?}"
    );
    assert_eq!(info["filename"], "boot.ipxe", "{info:?}");
    assert!(dnsmasq.log().contains("DHCPACK"), "{}", dnsmasq.log());
    // dnsmasq runs no TFTP: the script came from Kindling, named by its proxy offer (iPXE
    // keeps the DHCP server's siaddr in ${next-server} and uses the proxy's for the file).
    let log = daemon.log();
    assert!(
        log.contains("dhcp proxy: Offer with boot information"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("boot.ipxe") && l.contains(&ip.to_string()) && l.contains("tftp")),
        "no TFTP transfer of boot.ipxe to {ip} in Kindling's log:\n{log}"
    );
}

/// Another DHCP server on the segment: server mode refuses to serve the interface and says
/// what the other server offers; clients get their lease from the other server only.
#[test]
fn another_dhcp_server_on_the_segment_stops_server_mode() {
    let lab = Lab::new("kcoex", 45);
    let router = lab.add_peer("router", 254);
    let _dnsmasq = start_dnsmasq(
        &router,
        &[
            &format!(
                "--dhcp-range={},{},255.255.255.0,1h",
                lab.ip(150),
                lab.ip(160)
            ),
            "--no-ping",
        ],
    );
    let mut daemon = Fixture::new().start_in(&lab.server.exec_prefix(), &server_mode(&lab));
    daemon.wait_for_log("refusing to serve this interface", Duration::from_secs(15));
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "ANOTHER DHCP SERVER answers on this segment: DHCP server {}",
            lab.ip(254)
        )),
        "{log}"
    );
    let client = lab.add_client("c1", "52:54:00:99:45:21");
    let lease = run_dhclient(&client, &DhclientOptions::default());
    assert!(
        (lab.ip(150)..=lab.ip(160)).contains(&lease.address),
        "{lease:#?}"
    );
    assert!(journal(&daemon).is_empty(), "Kindling handed out nothing");
}

/// Sends `count` DISCOVERs from random MACs, then malformed, truncated and oversized
/// datagrams, to port 67 from inside `host`'s namespace.
fn flood(host: &crate::dhcp_lab::LabHost, count: usize) {
    let script = format!(
        r#"
import os, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.bind(("0.0.0.0", 68))
def discover(mac):
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, int.from_bytes(os.urandom(4), "big"),
                       0, 0x8000, bytes(4), bytes(4), bytes(4), bytes(4), mac + bytes(10), bytes(64), bytes(128))
    return head + bytes([99, 130, 83, 99, 53, 1, 1, 255]) + bytes(50)
for i in range({count}):
    s.sendto(discover(b"\x02" + os.urandom(5)), ("255.255.255.255", 67))
bad = [b"", b"\x01", discover(b"\x02\x00\x00\x00\x00\x01")[:200],
       discover(b"\x02\x00\x00\x00\x00\x02")[:240] + bytes([53, 1, 1, 12, 200, 65]),
       discover(b"\x02\x00\x00\x00\x00\x03")[:240] + bytes([53, 1, 1]) + bytes([12, 255]) + b"A" * 255 + bytes([255]) + bytes(3000),
       os.urandom(600)]
for b in bad:
    s.sendto(b, ("255.255.255.255", 67))
"#
    );
    let output = crate::tools::run(
        host.command("python3").args(["-c", &script]),
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "the flood did not run: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A DISCOVER flood from random MACs exhausts the pool: a clear log line, no offer, no crash;
/// a client that already holds a lease keeps renewing it and a reserved client still gets its
/// address. Malformed, truncated and oversized datagrams are dropped.
#[test]
fn a_discover_flood_exhausts_the_pool_and_harms_no_one_else() {
    crate::tools::require("python3");
    let lab = Lab::new("kflood", 46);
    let holder = lab.add_client("holder", "52:54:00:99:46:21");
    let attacker = lab.add_client("attacker", "52:54:00:99:46:66");
    let reserved = lab.add_client("reserved", RESERVED_MAC);
    let section = server_mode(&lab).replace(
        "  lease_time: 1h\n",
        "  lease_time: 1h\n  ping_check: false\n",
    );
    let mut daemon = start(&lab, Fixture::new(), &section);
    let held = run_dhclient(&holder, &DhclientOptions::default());
    flood(&attacker, 500);
    daemon.wait_for_log("pool exhausted", Duration::from_secs(10));
    let renewed = run_dhclient(&holder, &DhclientOptions::default());
    assert_eq!(renewed.reason, "REBOOT");
    assert_eq!(renewed.address, held.address);
    let fixed = run_dhclient(&reserved, &DhclientOptions::default());
    assert_eq!(fixed.address, lab.ip(10));
    let log = daemon.log();
    assert!(log.contains("dhcp: dropped a malformed datagram"), "{log}");
    assert_eq!(
        log.matches("pool exhausted").count(),
        1,
        "the exhausted pool is logged once per interval, not per DISCOVER"
    );
    // The daemon is alive and well.
    assert!(daemon.log().contains("kindling ready"));
    daemon.signal(15);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
}

/// dhclient posing as a PXE ROM (vendor class `PXEClient`, option 93 = 0) gets the BIOS boot
/// file in `file` and option 67, this box in siaddr and option 66; posing as iPXE (user class
/// `iPXE`) it gets `boot.ipxe` instead, so that chainloading never loops. An ordinary dhclient
/// on the same server gets no boot file (see `dhclient_gets_a_lease_keeps_it_and_releases_it`).
#[test]
fn pxe_and_ipxe_clients_get_their_boot_file_and_next_server() {
    let lab = Lab::new("kpxe", 47);
    let rom = lab.add_client("rom", "52:54:00:99:47:21");
    let ipxe = lab.add_client("ipxe", "52:54:00:99:47:22");
    let _daemon = start(&lab, Fixture::new(), &server_mode(&lab));
    let server = lab.server_ip();
    let pxe_options = |extra: &str| DhclientOptions {
        also_request: vec!["tftp-server-name".into(), "bootfile-name".into()],
        config: vec![
            "option pxe-client-arch code 93 = unsigned integer 16;".into(),
            "send vendor-class-identifier \"PXEClient:Arch:00000:UNDI:002001\";".into(),
            "send pxe-client-arch 0;".into(),
            extra.into(),
        ],
        ..DhclientOptions::default()
    };

    let lease = run_dhclient(&rom, &pxe_options(""));
    assert!(in_range(&lab, lease.address), "{lease:#?}");
    assert_eq!(
        lease.filename.as_deref(),
        Some("undionly.kpxe"),
        "{lease:#?}"
    );
    assert_eq!(lease.next_server, Some(server), "{lease:#?}");
    assert_eq!(
        lease.env.get("new_tftp_server_name").map(String::as_str),
        Some(server.to_string().as_str()),
        "option 66: {lease:#?}"
    );
    assert_eq!(
        lease.env.get("new_bootfile_name").map(String::as_str),
        Some("undionly.kpxe"),
        "option 67: {lease:#?}"
    );

    let lease = run_dhclient(&ipxe, &pxe_options("send user-class \"iPXE\";"));
    assert_eq!(lease.filename.as_deref(), Some("boot.ipxe"), "{lease:#?}");
    assert_eq!(lease.next_server, Some(server), "{lease:#?}");
}

/// Static gear inside the range: a host already using the first address of the range answers
/// the ping check, so Kindling sets that address aside (and says so) and offers the next one.
#[test]
fn the_ping_check_skips_an_address_something_already_uses() {
    let lab = Lab::new("kping", 48);
    let _static_device = lab.add_peer("printer", 100);
    let client = lab.add_client("c1", "52:54:00:99:48:21");
    let daemon = start(&lab, Fixture::new(), &server_mode(&lab));
    let lease = run_dhclient(&client, &DhclientOptions::default());
    assert!(in_range(&lab, lease.address), "{lease:#?}");
    assert_ne!(
        lease.address,
        lab.ip(100),
        "offered an address in use:\n{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains(&format!("something answers on {}", lab.ip(100))),
        "{log}"
    );
}

/// In proxy mode, a DHCP server on the segment that already hands out boot options would
/// fight Kindling over every PXE client: Kindling finds it with its probe and warns, naming
/// the file it hands out.
#[test]
fn proxy_mode_reports_a_server_that_already_gives_boot_options() {
    let lab = Lab::new("krival", 49);
    let router = lab.add_peer("router", 254);
    let _dnsmasq = start_dnsmasq(
        &router,
        &[
            &format!(
                "--dhcp-range={},{},255.255.255.0,1h",
                lab.ip(150),
                lab.ip(160)
            ),
            "--dhcp-boot=pxelinux.0",
        ],
    );
    let mut daemon = start(&lab, Fixture::new(), &config(&lab, "  mode: proxy\n"));
    daemon.wait_for_log("will fight over PXE clients", Duration::from_secs(20));
    let log = daemon.log();
    let warning = log
        .lines()
        .find(|l| l.contains("will fight over PXE clients"))
        .unwrap_or_default();
    assert!(warning.contains(&lab.ip(254).to_string()), "{warning}");
    assert!(warning.contains("pxelinux.0"), "{warning}");
}

/// A running dhclient renews at T1 (RENEWING: a unicast REQUEST from its address) and keeps its
/// address; the renewal reaches the lease journal with a later expiry. T1 is shortened on the
/// client side (`supersede dhcp-renewal-time`) so that the test does not wait half an hour.
#[test]
fn a_renewal_keeps_the_address_and_extends_the_lease() {
    let lab = Lab::new("krenew", 50);
    let client = lab.add_client("c1", "52:54:00:99:50:21");
    let daemon = start(&lab, Fixture::new(), &server_mode(&lab));
    let options = DhclientOptions {
        config: vec!["supersede dhcp-renewal-time 2;".into()],
        ..DhclientOptions::default()
    };
    let mut dhclient = Dhclient::start(&client, &options);
    let bound = dhclient.wait_lease(Duration::from_secs(25));
    assert_eq!(bound.reason, "BOUND", "{bound:#?}");
    let first_expiry = journal(&daemon)
        .into_iter()
        .find(|r| r.address == bound.address)
        .expect("the lease is in the journal")
        .expires_at;
    let renewed = dhclient.wait_lease(Duration::from_secs(20));
    assert_eq!(renewed.reason, "RENEW", "{renewed:#?}\n{}", dhclient.log());
    assert_eq!(renewed.address, bound.address);
    let record = journal(&daemon)
        .into_iter()
        .find(|r| r.address == bound.address)
        .expect("the lease is still in the journal");
    assert_eq!(record.state, LeaseState::Active);
    assert!(
        record.expires_at > first_expiry,
        "the renewal extended the lease: {:?} then {:?}",
        first_expiry,
        record.expires_at
    );
}
