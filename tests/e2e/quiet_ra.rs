//! The quiet router advertisement (`dhcp.v6.quiet_ra`) on the namespace lab of
//! [`crate::dhcp_lab`]: rdisc6 solicits and gets an RA that configures nothing; a Linux host
//! with accept_ra on gains no route and no address from it; a real router (radvd) on the
//! segment silences Kindling; a SeaBIOS iPXE machine solicits, gets the quiet RA and boots.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::dhcp_lab::{BOOT_DEADLINE, Background, Lab, LabHost, Qemu, write_marker_script};
use crate::harness::{Daemon, Fixture};
use crate::netns::Netns;
use crate::tools::{require, run};

const DEADLINE: Duration = Duration::from_secs(30);

/// Kindling in server mode on the lab's server, quiet_ra left at its default.
fn start_kindling(lab: &Lab, fixture: Fixture) -> Daemon {
    let section = "  listen: [\"0.0.0.0:69\"]\nboot:\n  bios: undionly.kpxe\n  ipxe: boot.ipxe\ndhcp:\n  mode: server\n  interfaces: [eth0]\n  lease_time: 1h\n  subnets:\n    - network: NET.0/24\n      range: [NET.100, NET.120]\n"
    .replace("NET", &format!("10.99.{}", lab.n()));
    let mut daemon = fixture.start_in(&lab.server.exec_prefix(), &section);
    daemon.wait_for_log("router advertisements on", Duration::from_secs(10));
    daemon
}

/// `ip -n NS ARGS` output.
pub(crate) fn ip_out(netns: &Netns, args: &[&str]) -> String {
    let mut command = Command::new("ip");
    command.args(["-n", netns.name()]).args(args);
    let output = run(&mut command, DEADLINE);
    assert!(output.status.success(), "ip {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits for `eth0`'s link-local address to finish duplicate address detection; returns it.
pub(crate) fn link_local(host: &LabHost) -> String {
    let started = Instant::now();
    loop {
        let tentative = ip_out(
            &host.netns,
            &["-6", "addr", "show", "dev", "eth0", "tentative"],
        );
        let link = ip_out(
            &host.netns,
            &["-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"],
        );
        let address = link
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .map(str::to_string);
        if let (true, Some(address)) = (tentative.trim().is_empty(), address) {
            return address;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{}: no usable link-local address",
            host.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sets a sysctl inside a namespace.
pub(crate) fn sysctl(netns: &Netns, setting: &str) {
    let output = run(netns.command("sysctl").args(["-w", setting]), DEADLINE);
    assert!(output.status.success(), "sysctl {setting}: {output:?}");
}

/// rdisc6 on the host's eth0: `attempts` solicitations, each waiting `wait_ms`, printing every
/// advertisement heard.
pub(crate) fn rdisc6(host: &LabHost, attempts: u32, wait_ms: u32) -> (bool, String) {
    require("rdisc6");
    let output = run(
        host.command("rdisc6").args([
            "-m",
            "-n",
            "-r",
            &attempts.to_string(),
            "-w",
            &wait_ms.to_string(),
            "eth0",
        ]),
        DEADLINE,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// tcpdump of router solicitations and advertisements on `interface` in `netns`, with link
/// headers, one line per packet.
pub(crate) fn capture_router_discovery(netns: &Netns, interface: &str) -> Background {
    let mut command = netns.command("tcpdump");
    command.args([
        "-i",
        interface,
        "-n",
        "-e",
        "-l",
        "-vv",
        "icmp6 and (ip6[40] == 133 or ip6[40] == 134)",
    ]);
    let mut capture = Background::spawn("tcpdump", &mut command);
    capture.wait_for_log("listening on", Duration::from_secs(10));
    capture
}

/// Lines of a `tcpdump -vv` capture that are router advertisements from `source`.
pub(crate) fn advertisements_from(capture: &str, source: &str) -> usize {
    capture
        .lines()
        .filter(|l| {
            l.contains(&format!("{source} > ff02::1")) && l.contains("router advertisement")
        })
        .count()
}

#[test]
fn rdisc6_gets_an_advertisement_that_configures_nothing_and_the_host_gains_nothing() {
    let lab = Lab::new("qra", 61);
    let client = lab.add_client("client", "52:54:00:99:61:10");
    // A host that listens to router advertisements (what Linux does without forwarding).
    sysctl(&client.netns, "net.ipv6.conf.eth0.accept_ra=2");
    sysctl(&client.netns, "net.ipv6.conf.eth0.autoconf=1");
    let server_ll = link_local(&lab.server);
    link_local(&client);
    let routes_before = ip_out(&client.netns, &["-6", "route", "show", "table", "all"]);
    let addresses_before = ip_out(&client.netns, &["-6", "addr", "show", "scope", "global"]);
    let fixture = Fixture::new();
    let daemon = start_kindling(&lab, fixture);
    let capture = capture_router_discovery(&client.netns, "eth0");
    // Three solicitations 2 s apart: the first may fall in Kindling's start-up listening.
    let (answered, text) = rdisc6(&client, 3, 2000);
    assert!(
        answered,
        "rdisc6 heard no advertisement:\n{text}\n{}",
        daemon.log()
    );
    assert!(text.contains(&format!("from {server_ll}")), "{text}");
    // The client's kernel has processed the same multicast advertisements by now.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        advertisements_from(&capture.log(), &server_ll) >= 1,
        "{}",
        capture.log()
    );
    let routes_after = ip_out(&client.netns, &["-6", "route", "show", "table", "all"]);
    let addresses_after = ip_out(&client.netns, &["-6", "addr", "show", "scope", "global"]);
    assert_eq!(routes_before, routes_after, "the host gained a route");
    assert_eq!(
        addresses_before, addresses_after,
        "the host gained an address"
    );
    assert!(addresses_after.trim().is_empty(), "{addresses_after}");
    // What rdisc6 read in the advertisement: "Router lifetime   :   0 (0x00000000) seconds".
    let value = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {name:?} in:\n{text}"))
    };
    assert_eq!(value("Router lifetime"), "0 (0x00000000) seconds", "{text}");
    assert_eq!(value("Stateful address conf."), "No", "{text}");
    assert_eq!(value("Stateful other conf."), "No", "{text}");
    assert_eq!(value("Hop limit"), "undefined ( 0x00)", "{text}");
    assert_eq!(
        value("Reachable time"),
        "unspecified (0x00000000)",
        "{text}"
    );
    assert_eq!(
        value("Retransmit time"),
        "unspecified (0x00000000)",
        "{text}"
    );
    assert!(
        !text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("Prefix") || l.starts_with("MTU") || l.starts_with("Route ")
        }),
        "the advertisement carries more than its link-layer address:\n{text}"
    );
    let log = daemon.log();
    assert!(log.contains("quiet router advertisement sent"), "{log}");
}

#[test]
fn a_router_on_the_segment_silences_the_quiet_advertisement() {
    require("radvd");
    let lab = Lab::new("qrarouter", 62);
    let router = lab.add_peer("router", 254);
    let client = lab.add_client("client", "52:54:00:99:62:10");
    sysctl(&router.netns, "net.ipv6.conf.all.forwarding=1");
    let router_ll = link_local(&router);
    let server_ll = link_local(&lab.server);
    link_local(&client);
    // A real router: prefix on-link but not for autoconfiguration, not a default router.
    let config = router.dir.path().join("radvd.conf");
    std::fs::write(
        &config,
        "interface eth0 {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n  AdvDefaultLifetime 0;\n  prefix fd00:99::/64 { AdvOnLink on; AdvAutonomous off; };\n};\n",
    )
    .unwrap();
    let pid = router.dir.path().join("radvd.pid");
    let mut radvd_command = router.command("radvd");
    radvd_command.args(["-n", "-m", "stderr", "-d", "1", "-C"]);
    radvd_command.arg(&config).arg("-p").arg(&pid);
    let _radvd = Background::spawn("radvd", &mut radvd_command);
    let capture = capture_router_discovery(&client.netns, "eth0");
    // radvd's first advertisement is on the wire before Kindling starts.
    let started = Instant::now();
    while advertisements_from(&capture.log(), &router_ll) == 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "radvd sent nothing:\n{}",
            capture.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let fixture = Fixture::new();
    let mut daemon = start_kindling(&lab, fixture);
    daemon.wait_for_log(
        "another router advertises on this interface",
        Duration::from_secs(10),
    );
    let (answered, text) = rdisc6(&client, 2, 4000);
    assert!(answered, "radvd did not answer rdisc6:\n{text}");
    assert!(text.contains(&format!("from {router_ll}")), "{text}");
    assert!(
        !text.contains(&format!("from {server_ll}")),
        "Kindling advertised beside radvd:\n{text}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let seen = capture.log();
    assert_eq!(
        advertisements_from(&seen, &server_ll),
        0,
        "Kindling advertised:\n{seen}"
    );
    // Kindling did solicit at start-up, from its link-local address.
    assert!(
        seen.lines()
            .any(|l| l.contains(&format!("{server_ll} > ff02::2"))
                && l.contains("router solicitation")),
        "no start-up solicitation:\n{seen}"
    );
    assert!(
        !daemon.log().contains("quiet router advertisement sent"),
        "{}",
        daemon.log()
    );
}

#[test]
fn qemu_ipxe_solicits_gets_the_quiet_advertisement_and_boots() {
    require("qemu-system-x86_64");
    let lab = Lab::new("qraqemu", 63);
    let server_ll = link_local(&lab.server);
    let fixture = Fixture::new();
    let marker = write_marker_script(&fixture.root().join("boot.ipxe"));
    let daemon = start_kindling(&lab, fixture);
    let capture = capture_router_discovery(lab.bridge(), "br0");
    let tap = lab.add_tap("tap0");
    let mac = "52:54:00:99:63:10";
    let mut vm = Qemu::boot_bios_ipxe(&lab, &tap, mac);
    vm.wait_for_serial(&marker, BOOT_DEADLINE);
    let seen = capture.log();
    assert!(
        seen.lines()
            .any(|l| from_mac(l, mac) && l.contains("router solicitation")),
        "iPXE sent no router solicitation:\n{seen}\n{}",
        daemon.log()
    );
    assert!(
        advertisements_from(&seen, &server_ll) >= 1,
        "no quiet RA on the wire:\n{seen}\n{}",
        daemon.log()
    );
}

/// Whether a `tcpdump -e` line is a frame from `mac` (the source MAC follows the timestamp).
fn from_mac(line: &str, mac: &str) -> bool {
    line.split_whitespace().nth(1) == Some(mac)
}
