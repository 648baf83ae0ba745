//! Router advertisements (`dhcp.v6.router_advertisements: true`) on the namespace lab of
//! [`crate::dhcp_lab`]: rdisc6 sees M and O set and the configured prefix on-link and not
//! autonomous, router lifetime 0 by default and non-zero with `dhcp.v6.default_router`; a
//! real router (radvd) on the segment is logged by name while Kindling keeps advertising; and
//! dhclient -6 on a host with no hand-made route reaches the server's ULA through the on-link
//! prefix the RA supplied.

use std::time::Duration;

use crate::dhcp_lab::{Background, Lab, LabHost};
use crate::dhcpv6::{dhclient6, env_value, soon, wait_link_local};
use crate::harness::{Daemon, Fixture, pattern};
use crate::quiet_ra::{capture_router_discovery, ip_out, link_local, rdisc6, sysctl};
use crate::tools::{require, run};

/// The lab's IPv6 prefix: fd00:99:N::/64, the server at ::1.
fn prefix(lab: &Lab) -> String {
    format!("fd00:99:{}::", lab.n())
}

/// Kindling in server mode with DHCPv4 and DHCPv6 and `v6_extra` under `dhcp.v6`.
fn start(lab: &Lab, fixture: Fixture, v6_extra: &str) -> Daemon {
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
    let section = format!(
        "  listen: [\"0.0.0.0:69\", \"[::]:69\"]\nboot:\n  bios: undionly.kpxe\n  uefi_x64: ipxe.efi\n  ipxe: boot.ipxe\ndhcp:\n  mode: server\n  interfaces: [eth0]\n  lease_time: 1h\n  ping_check: false\n  subnets:\n    - network: NET.0/24\n      range: [NET.100, NET.120]\n  v6:\n{v6_extra}    subnets:\n      - {{ network: \"{p}/64\", range: [\"{p}100\", \"{p}1ff\"] }}\n"
    )
    .replace("NET", &format!("10.99.{}", lab.n()));
    let mut daemon = fixture.start_in(&lab.server.exec_prefix(), &section);
    daemon.wait_for_log("router advertisements on", Duration::from_secs(10));
    daemon.wait_for_log(
        "advertising as the DHCPv6 segment's router",
        Duration::from_secs(10),
    );
    daemon
}

/// The value after the colon of the first line of `section` starting with `name`, its
/// whitespace collapsed.
fn value(section: &str, name: &str) -> String {
    section
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {name:?} in:\n{section}"))
}

/// The part of rdisc6's output about the advertisement from `router`: rdisc6 prints the
/// fields, then ` from ROUTER`.
fn advertisement_from<'a>(text: &'a str, router: &str) -> &'a str {
    let end = text
        .find(&format!("from {router}"))
        .unwrap_or_else(|| panic!("no advertisement from {router}:\n{text}"));
    let start = text[..end]
        .rfind("Hop limit")
        .unwrap_or_else(|| panic!("no header before the advertisement from {router}:\n{text}"));
    &text[start..end]
}

/// rdisc6 until it hears `router` (Kindling's first RA may come before or after it solicits).
fn rdisc6_from(host: &LabHost, router: &str, daemon: &Daemon) -> String {
    let (answered, text) = rdisc6(host, 2, 4000);
    assert!(
        answered && text.contains(&format!("from {router}")),
        "rdisc6 heard nothing from {router}:\n{text}\n{}",
        daemon.log()
    );
    text
}

/// What every full advertisement of Kindling says: M and O, the lab's prefix on-link and not
/// autonomous with the documented lifetimes, the server's MAC.
fn assert_full_advertisement(section: &str, lab: &Lab) {
    assert_eq!(value(section, "Stateful address conf."), "Yes", "{section}");
    assert_eq!(value(section, "Stateful other conf."), "Yes", "{section}");
    assert_eq!(
        value(section, "Prefix"),
        format!("{}/64", prefix(lab)),
        "{section}"
    );
    assert_eq!(value(section, "On-link"), "Yes", "{section}");
    assert_eq!(
        value(section, "Autonomous address conf."),
        "No",
        "{section}"
    );
    assert_eq!(
        value(section, "Valid time"),
        "86400 (0x00015180) seconds",
        "{section}"
    );
    assert_eq!(
        value(section, "Pref. time"),
        "14400 (0x00003840) seconds",
        "{section}"
    );
    assert_eq!(
        section.matches("Prefix").count(),
        1,
        "one prefix: {section}"
    );
    assert_eq!(
        value(section, "Source link-layer address").to_lowercase(),
        lab.server.mac.to_lowercase(),
        "{section}"
    );
}

#[test]
fn rdisc6_sees_m_and_o_and_the_prefix_on_link_not_autonomous_with_router_lifetime_0() {
    let lab = Lab::new("ra", 64);
    let client = lab.add_client("client", "52:54:00:99:64:10");
    let server_ll = link_local(&lab.server);
    link_local(&client);
    let daemon = start(&lab, Fixture::new(), "    router_advertisements: true\n");
    let text = rdisc6_from(&client, &server_ll, &daemon);
    let section = advertisement_from(&text, &server_ll);
    assert_full_advertisement(section, &lab);
    assert_eq!(
        value(section, "Router lifetime"),
        "0 (0x00000000) seconds",
        "not a default router unless dhcp.v6.default_router: {section}"
    );
    // The quiet RA is superseded: no advertisement without the flags left.
    assert!(
        !daemon.log().contains("quiet router advertisement sent"),
        "{}",
        daemon.log()
    );
}

#[test]
fn default_router_advertises_a_router_lifetime_and_a_final_zero_at_shutdown() {
    let lab = Lab::new("radefrt", 65);
    let client = lab.add_client("client", "52:54:00:99:65:10");
    let server_ll = link_local(&lab.server);
    link_local(&client);
    let mut daemon = start(
        &lab,
        Fixture::new(),
        "    router_advertisements: true\n    default_router: true\n",
    );
    let text = rdisc6_from(&client, &server_ll, &daemon);
    let section = advertisement_from(&text, &server_ll);
    assert_full_advertisement(section, &lab);
    assert_eq!(
        value(section, "Router lifetime"),
        "90 (0x0000005a) seconds",
        "{section}"
    );
    // RFC 4861 6.2.5: stopping, it says lifetime 0 once more.
    let capture = capture_router_discovery(&client.netns, "eth0");
    daemon.signal(15);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    soon("the final advertisement on the wire", || {
        let seen = capture.log();
        let lines: Vec<&str> = seen.lines().collect();
        // tcpdump -vv: the header line, then the fields on the next one.
        lines.windows(2).any(|pair| {
            pair[0].contains(&format!("{server_ll} > ff02::1"))
                && pair[0].contains("router advertisement")
                && pair[1].contains("router lifetime 0s")
        })
    });
}

/// SIGHUP with `default_router: true` added: the running service takes it (no restart) and
/// its advertisements carry the router lifetime.
#[test]
fn a_reload_turns_the_default_router_on() {
    let lab = Lab::new("rareload", 68);
    let client = lab.add_client("client", "52:54:00:99:68:10");
    let server_ll = link_local(&lab.server);
    link_local(&client);
    let mut daemon = start(&lab, Fixture::new(), "    router_advertisements: true\n");
    let text = rdisc6_from(&client, &server_ll, &daemon);
    assert_eq!(
        value(advertisement_from(&text, &server_ll), "Router lifetime"),
        "0 (0x00000000) seconds"
    );
    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    let reloaded = config.replace(
        "router_advertisements: true\n",
        "router_advertisements: true\n    default_router: true\n",
    );
    assert_ne!(config, reloaded);
    std::fs::write(daemon.config_path(), reloaded).unwrap();
    daemon.signal(1);
    daemon.wait_for_log("config reloaded", Duration::from_secs(5));
    let text = rdisc6_from(&client, &server_ll, &daemon);
    let section = advertisement_from(&text, &server_ll);
    assert_full_advertisement(section, &lab);
    assert_eq!(
        value(section, "Router lifetime"),
        "90 (0x0000005a) seconds",
        "{section}\n{}",
        daemon.log()
    );
    // One service throughout: it did not start again.
    assert_eq!(
        daemon.log().matches("router advertisements on").count(),
        1,
        "{}",
        daemon.log()
    );
}

#[test]
fn another_router_on_the_segment_is_logged_and_kindling_keeps_advertising() {
    require("radvd");
    let lab = Lab::new("raradvd", 66);
    let router = lab.add_peer("router", 254);
    let client = lab.add_client("client", "52:54:00:99:66:10");
    sysctl(&router.netns, "net.ipv6.conf.all.forwarding=1");
    let router_ll = link_local(&router);
    let server_ll = link_local(&lab.server);
    link_local(&client);
    // A router with another prefix and no M flag: both disagree with Kindling's.
    let config = router.dir.path().join("radvd.conf");
    std::fs::write(
        &config,
        "interface eth0 {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n  AdvDefaultLifetime 0;\n  prefix fd00:98::/64 { AdvOnLink on; AdvAutonomous off; };\n};\n",
    )
    .unwrap();
    let pid = router.dir.path().join("radvd.pid");
    let mut radvd_command = router.command("radvd");
    radvd_command.args(["-n", "-m", "stderr", "-d", "1", "-C"]);
    radvd_command.arg(&config).arg("-p").arg(&pid);
    let _radvd = Background::spawn("radvd", &mut radvd_command);
    let mut daemon = start(&lab, Fixture::new(), "    router_advertisements: true\n");
    daemon.wait_for_log(
        &format!("another router {router_ll} advertises on eth0"),
        Duration::from_secs(20),
    );
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("another router {router_ll}")))
        .unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("M/O flags") && line.contains("prefixes disagree"),
        "{line}"
    );
    assert!(line.contains("fd00:98::/64"), "{line}");
    // Kindling keeps advertising beside it.
    // Two solicitations waiting 4 s each: Kindling answers at most every 3 s.
    let (_, text) = rdisc6(&client, 2, 4000);
    assert!(text.contains(&format!("from {server_ll}")), "{text}");
    assert_full_advertisement(advertisement_from(&text, &server_ll), &lab);
}

/// dhclient -6 gets a /128; the on-link route to the rest of fd00:99:N::/64 comes from
/// Kindling's RA (L=1), so the client reaches the server's ULA with no hand-made route.
#[test]
fn dhclient6_reaches_the_servers_ula_through_the_advertised_on_link_prefix() {
    require("tftp");
    let lab = Lab::new("radhcp6", 67);
    let client = lab.add_client("c6", "52:54:00:99:67:21");
    // A host that listens to router advertisements (what Linux does without forwarding).
    sysctl(&client.netns, "net.ipv6.conf.eth0.accept_ra=2");
    let fixture = Fixture::new();
    let body = pattern(3000, 67);
    fixture.write("probe.bin", &body);
    let daemon = start(&lab, fixture, "    router_advertisements: true\n");
    wait_link_local(&client);
    let p = prefix(&lab);
    let net = format!("{p}/64");
    let routes = || ip_out(&client.netns, &["-6", "route", "show", "table", "all"]);
    soon_long(
        "the on-link route from the RA",
        || {
            routes()
                .lines()
                .any(|l| l.starts_with(&net) && l.contains("expires"))
        },
        || format!("{}\n{}", routes(), daemon.log()),
    );
    let events = dhclient6(&client, &["-1"]);
    let address = env_value(&events, "new_ip6_address")
        .unwrap_or_else(|| panic!("no address:\n{events}\n{}", daemon.log()))
        .to_string();
    assert!(address.starts_with(&p), "{address}");
    // The server's ULA over TFTP: reachable only through the RA's on-link prefix (the client
    // has a /128 and no default route).
    let server = format!("{p}1");
    let local = client.dir.path().join("probe.bin");
    let output = run(
        client
            .command("tftp")
            .args(["-6", "-m", "binary", &server, "-c", "get", "probe.bin"])
            .arg(&local),
        Duration::from_secs(20),
    );
    assert_eq!(
        std::fs::read(&local).ok().as_deref(),
        Some(&body[..]),
        "no file from {server}: {output:?}\nroutes:\n{}",
        ip_out(&client.netns, &["-6", "route", "show", "table", "all"])
    );
    // And no SLAAC address: A was clear.
    let global = ip_out(&client.netns, &["-6", "addr", "show", "scope", "global"]);
    assert_eq!(
        global.matches("inet6").count(),
        1,
        "only the DHCPv6 address: {global}"
    );
}

/// Polls until `probe` holds, for at most 15 s; `context` says what was seen when not.
fn soon_long(what: &str, mut probe: impl FnMut() -> bool, context: impl Fn() -> String) {
    let started = std::time::Instant::now();
    while !probe() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what}: not within 15 s\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
