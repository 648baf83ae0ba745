//! Kindling's DHCPv6 server end to end on the namespace lab of [`crate::dhcp_lab`], with ISC
//! `dhclient -6` as the client: an address from the range, option 59 with this box's ULA, the
//! lease durable in the journal, and RELEASE.

use std::process::Command;
use std::time::{Duration, Instant};

use kindling_dhcp::lease::{LeaseState, read_snapshot};

use crate::dhcp_lab::{
    DhclientOptions, Lab, LabHost, forget_dhcp_lease, release_dhclient, run_dhclient,
};
use crate::harness::{Daemon, Fixture};
use crate::tools::{require, run};

const DEADLINE: Duration = Duration::from_secs(30);

/// The lab's IPv6 prefix: fd00:99:N::/64, the server at ::1.
fn prefix(lab: &Lab) -> String {
    format!("fd00:99:{}::", lab.n())
}

fn start(lab: &Lab, fixture: Fixture) -> Daemon {
    start_with(lab, fixture, "")
}

/// Kindling with DHCPv4 and DHCPv6 on the lab; `extra` is appended to the config (a `dns:`
/// section).
fn start_with(lab: &Lab, fixture: Fixture, extra: &str) -> Daemon {
    let p = prefix(lab);
    // The server's ULA, without duplicate address detection so that it is usable at once.
    lab.server.netns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{p}1/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    let section = format!(
        "  listen: [\"0.0.0.0:69\", \"[::]:69\"]\nboot:\n  bios: undionly.kpxe\n  uefi_x64: ipxe.efi\n  ipxe: boot.ipxe\ndhcp:\n  mode: server\n  interfaces: [eth0]\n  lease_time: 1h\n  ping_check: false\n  subnets:\n    - network: NET.0/24\n      range: [NET.100, NET.120]\n  v6:\n    subnets:\n      - {{ network: \"{p}/64\", range: [\"{p}100\", \"{p}1ff\"] }}\n"
    )
    .replace("NET", &format!("10.99.{}", lab.n()))
        + extra;
    let mut daemon = fixture.start_in(&lab.server.exec_prefix(), &section);
    daemon.wait_for_log("dhcpv6 listening", Duration::from_secs(10));
    daemon
}

/// `ip -n NS -6 addr show dev eth0 EXTRA...` as text.
fn addresses(host: &LabHost, extra: &[&str]) -> String {
    let mut command = Command::new("ip");
    command
        .args(["-n", host.netns.name(), "-6", "addr", "show", "dev", "eth0"])
        .args(extra);
    String::from_utf8_lossy(&run(&mut command, DEADLINE).stdout).into_owned()
}

/// Waits until `host`'s link-local address has finished duplicate address detection
/// (dhclient -6 sends from it).
pub(crate) fn wait_link_local(host: &LabHost) {
    let started = Instant::now();
    while !(addresses(host, &["tentative"]).trim().is_empty()
        && addresses(host, &["scope", "link"]).contains("inet6"))
    {
        assert!(started.elapsed() < DEADLINE, "no link-local address");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `dhclient -6 ARGS` on `host`'s eth0 with a script that puts the address on eth0 and
/// records every event's environment; returns the events as text.
pub(crate) fn dhclient6(host: &LabHost, args: &[&str]) -> String {
    use std::os::unix::fs::PermissionsExt;
    require("dhclient");
    let dir = host.dir.path();
    let events = dir.join("events6");
    let script = dir.join("dhclient6-script");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$reason\" in\nBOUND6|RENEW6|REBIND6|REBOOT6)\n    ip -6 addr replace \"$new_ip6_address/$new_ip6_prefixlen\" dev \"$interface\" nodad ;;\nRELEASE6|STOP6|EXPIRE6)\n    ip -6 addr del \"$old_ip6_address/$old_ip6_prefixlen\" dev \"$interface\" 2>/dev/null ;;\nesac\n{{ echo \"reason=$reason\"; env | LC_ALL=C sort; echo --end--; }} >> '{}'\nexit 0\n",
            events.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.join("dhclient6.conf");
    std::fs::write(&config, "also request dhcp6.bootfile-url;\n").unwrap();
    let mut command = host.command("dhclient");
    command
        .args(["-6", "-v", "--no-pid", "-cf"])
        .arg(&config)
        .arg("-lf")
        .arg(dir.join("dhclient6.leases"))
        .arg("-sf")
        .arg(&script)
        .args(args)
        .arg("eth0");
    let output = run(&mut command, Duration::from_secs(40));
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dhclient -6 {args:?} failed:\n{text}"
    );
    std::fs::read_to_string(&events).unwrap_or_default() + "\n--dhclient--\n" + &text
}

pub(crate) fn env_value<'a>(events: &'a str, key: &str) -> Option<&'a str> {
    events
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
}

/// dhclient -6 gets an address of the range and option 59 with the server's ULA; the lease is
/// durable in the journal before the REPLY; a RELEASE marks it released.
#[test]
fn dhclient6_gets_an_address_and_a_boot_url_and_releases_it() {
    let lab = Lab::new("kv6", 61);
    let client = lab.add_client("c6", "52:54:00:99:61:21");
    let daemon = start(&lab, Fixture::new());
    wait_link_local(&client);

    let events = dhclient6(&client, &["-1"]);
    assert!(
        events.contains("reason=BOUND6"),
        "{events}\n{}",
        daemon.log()
    );
    let address: std::net::Ipv6Addr = env_value(&events, "new_ip6_address")
        .unwrap_or_else(|| panic!("no address:\n{events}"))
        .parse()
        .unwrap();
    let p = prefix(&lab);
    let first: std::net::Ipv6Addr = format!("{p}100").parse().unwrap();
    let last: std::net::Ipv6Addr = format!("{p}1ff").parse().unwrap();
    assert!(
        (first..=last).contains(&address),
        "{address} is not in the range"
    );
    assert_eq!(
        env_value(&events, "new_dhcp6_bootfile_url"),
        Some(format!("tftp://[{p}1]/ipxe.efi").as_str()),
        "option 59 names this box's ULA, not a link-local address:\n{events}"
    );
    let on_eth0 = run(
        Command::new("ip").args([
            "-n",
            client.netns.name(),
            "-6",
            "addr",
            "show",
            "dev",
            "eth0",
        ]),
        DEADLINE,
    );
    assert!(
        String::from_utf8_lossy(&on_eth0.stdout).contains(&address.to_string()),
        "the address is on the client's eth0"
    );

    let journal = || read_snapshot(daemon.dir.path().join("state")).unwrap().0.v6;
    let record = journal()
        .into_iter()
        .find(|r| r.address == address)
        .unwrap_or_else(|| panic!("the REPLY's lease is in the journal:\n{}", daemon.log()));
    assert_eq!(record.state, LeaseState::Active);
    assert_eq!(
        record.mac.map(|m| m.to_string()).as_deref(),
        Some(client.mac.as_str()),
        "the MAC from dhclient's DUID-LLT"
    );

    dhclient6(&client, &["-r"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = journal()
            .into_iter()
            .find(|r| r.address == address)
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
}

/// `dig +short @server ARGS` from `host`: the answer's data, one per line.
pub(crate) fn dig(host: &LabHost, server: &str, args: &[&str]) -> Vec<String> {
    require("dig");
    let output = host
        .command("dig")
        .arg(format!("@{server}"))
        .arg("+short")
        .args(args)
        .args(["+time=1", "+tries=1"])
        .output()
        .expect("running dig");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with(';'))
        .map(str::to_string)
        .collect()
}

/// Polls until `probe` holds, for at most 5 s.
pub(crate) fn soon(what: &str, mut probe: impl FnMut() -> bool) {
    let started = Instant::now();
    while !probe() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A machine with a v4 and a v6 lease has an A and an AAAA record under its v4 lease's name
/// (dhclient -6 sends no name; the v6 lease takes the machine's) and the ip6.arpa PTR; the end
/// of the v4 lease leaves the AAAA, and the end of the v6 lease leaves the A.
#[test]
fn a_machine_keeps_its_aaaa_when_its_v4_lease_ends_and_its_a_when_its_v6_lease_ends() {
    let lab = Lab::new("kv6dns", 62);
    let client = lab.add_client("c6", "52:54:00:99:62:21");
    let daemon = start_with(
        &lab,
        Fixture::new(),
        "dns:\n  listen: [\"0.0.0.0:53\", \"[::]:53\"]\n  domain: lab.test\n",
    );
    let server = format!("{}1", prefix(&lab));
    wait_link_local(&client);
    let options = DhclientOptions::with_hostname("web");
    let v4 = run_dhclient(&client, &options).address;
    let events = dhclient6(&client, &["-1"]);
    let v6: std::net::Ipv6Addr = env_value(&events, "new_ip6_address")
        .unwrap_or_else(|| panic!("no v6 address:\n{events}"))
        .parse()
        .unwrap();
    // DHCPv6 gives the client a /128; the on-link prefix comes from a router's RA, which this
    // test does not turn on (dhcp.v6.router_advertisements), so it adds the route an RA would
    // give (router_adverts.rs shows Kindling's RA giving it).
    client.netns.ip(&[
        "-6",
        "route",
        "add",
        &format!("{}/64", prefix(&lab)),
        "dev",
        "eth0",
    ]);
    let name = "web.lab.test";
    soon("the AAAA record", || {
        dig(&client, &server, &[name, "AAAA"]) == vec![v6.to_string()]
    });
    assert_eq!(dig(&client, &server, &[name, "A"]), vec![v4.to_string()]);
    assert_eq!(
        dig(&client, &server, &["-x", &v6.to_string()]),
        vec![format!("{name}.")],
        "the ip6.arpa PTR\n{}",
        daemon.log()
    );

    release_dhclient(&client, &options);
    soon("the A record gone", || {
        dig(&client, &server, &[name, "A"]).is_empty()
    });
    assert_eq!(
        dig(&client, &server, &[name, "AAAA"]),
        vec![v6.to_string()],
        "the v6 lease keeps its AAAA when the v4 lease ends"
    );

    forget_dhcp_lease(&client);
    let v4 = run_dhclient(&client, &options).address;
    soon("the A record back", || {
        dig(&client, &server, &[name, "A"]) == vec![v4.to_string()]
    });
    dhclient6(&client, &["-r"]);
    soon("the AAAA record gone", || {
        dig(&client, &server, &[name, "AAAA"]).is_empty()
    });
    assert_eq!(
        dig(&client, &server, &[name, "A"]),
        vec![v4.to_string()],
        "the v4 lease keeps its A when the v6 lease ends"
    );
}

/// Another DHCPv6 server on the link (dnsmasq): Kindling's probe finds it, names it, and
/// lowers its own preference there to 0; Kindling's own probe is never taken for another
/// server.
#[test]
fn another_dhcpv6_server_on_the_link_lowers_the_preference_to_zero() {
    let lab = Lab::new("kv6coex", 66);
    let p = prefix(&lab);
    let other = lab.add_peer("other6", 254);
    other.netns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{p}fe/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    wait_link_local(&other);
    let _dnsmasq =
        crate::dhcp_lab::start_dnsmasq(&other, &[&format!("--dhcp-range={p}200,{p}2ff,64,1h")]);
    let mut daemon = start(&lab, Fixture::new());
    daemon.wait_for_log("lowering this server's preference", Duration::from_secs(20));
    let log = daemon.log();
    assert!(
        log.lines()
            // It answers our source: the link-local address, or another address of ours
            // while that one is still tentative at start.
            .any(|l| l.contains("another DHCPv6 server answers on this link")
                && l.contains("preference 0")
                && l.contains(&format!("offered {p}2"))),
        "{log}"
    );
    assert!(
        !log.contains("our own coexistence probe"),
        "the probe stays off our own port 547:\n{log}"
    );
}

/// Alone on its link, Kindling keeps its preference and says nothing about other servers.
#[test]
fn alone_on_its_link_kindling_keeps_its_preference() {
    let lab = Lab::new("kv6alone", 67);
    let mut daemon = start(&lab, Fixture::new());
    // The probe at start listens for 1.5 s before the service runs its loop.
    daemon.wait_for_log("dhcpv6 listening", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    let log = daemon.log();
    assert!(!log.contains("another DHCPv6 server"), "{log}");
    assert!(!log.contains("could not probe"), "{log}");
}
