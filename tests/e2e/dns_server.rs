//! Kindling's DNS service end to end, wired to its DHCP service, in the namespace lab of
//! [`crate::dhcp_lab`]: `dig` from a client namespace, dhclient for the leases that name
//! machines, dnsmasq as a local upstream that the test starts itself.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::dhcp_lab::{DhclientOptions, Lab, LabHost, release_dhclient, run_dhclient};
use crate::harness::{Daemon, Fixture};
use crate::tools::require;

/// Runs `dig @server ARGS +time=1 +tries=1` inside `host` and returns its output.
fn dig(host: &LabHost, server: Ipv4Addr, args: &[&str]) -> String {
    require("dig");
    let output = host
        .command("dig")
        .arg(format!("@{server}"))
        .args(args)
        .args(["+time=1", "+tries=1"])
        .output()
        .expect("running dig");
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// `dig +short`: the answer's data, one per line.
fn short(host: &LabHost, server: Ipv4Addr, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    dig(host, server, &all)
        .lines()
        .map(str::to_string)
        .filter(|line| !line.is_empty() && !line.starts_with(';'))
        .collect()
}

/// Polls `probe` until it holds, for at most `deadline`.
fn within(deadline: Duration, what: &str, mut probe: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if probe() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn config(lab: &Lab, upstream: Option<Ipv4Addr>) -> String {
    let upstreams = upstream.map_or("[]".to_string(), |u| format!("[\"{u}:53\"]"));
    // Too many TXT records for one 512-byte UDP answer: the TCP fallback has to carry them.
    let big: String = (0..30)
        .map(|i| format!("    - {{ name: big, txt: \"record {i:02} of a big answer\" }}\n"))
        .collect();
    let records = format!("{big}    - {{ name: nas, a: NET.5 }}\n");
    format!(
        "  listen: [\"0.0.0.0:69\"]\n\
         dhcp:\n  mode: server\n  interfaces: [eth0]\n  ping_check: false\n  lease_time: 1h\n  subnets:\n    - network: NET.0/24\n      range: [NET.100, NET.120]\n  reservations:\n    - {{ mac: \"52:54:00:99:51:10\", ip: NET.10, hostname: node10 }}\n\
         dns:\n  listen: [\"0.0.0.0:53\"]\n  domain: lab.test\n  upstreams: {upstreams}\n  records:\n{records}    - {{ name: files, cname: nas }}\n    - {{ name: nas, txt: \"the big box\" }}\n"
    )
    .replace("NET", &format!("10.99.{}", lab.n()))
}

fn start(lab: &Lab, section: &str) -> Daemon {
    let mut daemon = Fixture::new().start_in(&lab.server.exec_prefix(), section);
    daemon.wait_for_log("dhcp listening", Duration::from_secs(10));
    daemon
}

/// A dhclient that sends a host name gets a lease; its name and reverse answer within a
/// second of the ACK; a client claiming a static name or another's reservation gets none;
/// after release the name is gone; static records, SOA/NS and NXDOMAIN with the SOA answer.
#[test]
fn leased_machines_get_names_that_follow_their_leases() {
    let lab = Lab::new("kdnsl", 51);
    let web = lab.add_client("web", "52:54:00:99:51:21");
    let thief = lab.add_client("thief", "52:54:00:99:51:22");
    let daemon = start(&lab, &config(&lab, None));
    let server = lab.server_ip();

    // The client needs an address before it can ask anything.
    let lease = run_dhclient(&web, &DhclientOptions::with_hostname("web01"));
    assert_eq!(
        short(&web, server, &["nas.lab.test", "A"]),
        vec![lab.ip(5).to_string()]
    );
    assert_eq!(
        short(&web, server, &["files.lab.test", "A"]),
        vec!["nas.lab.test.".to_string(), lab.ip(5).to_string()]
    );
    assert_eq!(
        short(&web, server, &["nas.lab.test", "TXT"]),
        vec!["\"the big box\""]
    );
    let soa = dig(&web, server, &["lab.test", "SOA"]);
    assert!(
        soa.contains("status: NOERROR") && soa.contains(" aa"),
        "{soa}"
    );
    assert!(!short(&web, server, &["lab.test", "NS"]).is_empty());
    let big = dig(&web, server, &["big.lab.test", "TXT", "+noedns"]);
    assert!(big.contains("Truncated, retrying in TCP mode"), "{big}");
    assert_eq!(big.matches("of a big answer").count(), 30, "{big}");
    let missing = dig(&web, server, &["nobody.lab.test", "A"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    assert!(
        missing.contains("SOA"),
        "a negative answer carries the SOA: {missing}"
    );

    let ptr_name = format!("{}.in-addr.arpa", {
        let o = lease.address.octets();
        format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
    });
    let took = within(
        Duration::from_secs(1),
        "web01.lab.test after the ACK",
        || short(&web, server, &["web01.lab.test", "A"]) == vec![lease.address.to_string()],
    );
    assert_eq!(
        short(&web, server, &[&ptr_name, "PTR"]),
        vec!["web01.lab.test."],
        "the reverse answers too (name visible after {took:?})"
    );

    // A client claiming a static name, then one claiming the reservation's name: no record.
    let stolen = run_dhclient(&thief, &DhclientOptions::with_hostname("nas"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        short(&web, server, &["nas.lab.test", "A"]),
        vec![lab.ip(5).to_string()]
    );
    assert!(
        !short(&web, server, &["-x", &stolen.address.to_string()])
            .iter()
            .any(|name| name.starts_with("nas."))
    );

    release_dhclient(&web, &DhclientOptions::with_hostname("web01"));
    // The release took web's address away: ask from the other client.
    within(
        Duration::from_secs(1),
        "web01.lab.test gone after release",
        || dig(&thief, server, &["web01.lab.test", "A"]).contains("status: NXDOMAIN"),
    );
    within(Duration::from_secs(1), "the PTR gone after release", || {
        dig(&thief, server, &[&ptr_name, "PTR"]).contains("status: NXDOMAIN")
    });
    let log = daemon.log();
    assert!(log.contains("dns listening"), "{log}");
}

/// kill -9 and a restart: the name of a live lease answers the very first query.
#[test]
fn lease_names_survive_kill_9() {
    let lab = Lab::new("kdnsk", 52);
    let client = lab.add_client("c1", "52:54:00:99:52:21");
    let section = config(&lab, None);
    let daemon = start(&lab, &section);
    let server = lab.server_ip();
    let lease = run_dhclient(&client, &DhclientOptions::with_hostname("db01"));
    within(Duration::from_secs(1), "db01 after the ACK", || {
        short(&client, server, &["db01.lab.test", "A"]) == vec![lease.address.to_string()]
    });
    daemon.signal(9);
    let dir = daemon.into_dir();
    let config = std::fs::read_to_string(dir.path().join("kindling.yaml")).unwrap();
    let _restarted = Daemon::start_with_prefix(dir, &config, &lab.server.exec_prefix());
    // "kindling ready" comes after DNS is bound with the journal's names: the first answer.
    assert_eq!(
        short(&client, server, &["db01.lab.test", "A"]),
        vec![lease.address.to_string()]
    );
}

/// Names outside the zone: forwarded to an upstream (dnsmasq that the test starts in its own
/// namespace) for clients in the served subnet; REFUSED for a client outside
/// `allow_recursion_from`; REFUSED at once without upstreams.
#[test]
fn forwarding_only_for_allowed_clients_and_refused_without_upstreams() {
    let lab = Lab::new("kdnsf", 53);
    let upstream_host = lab.add_peer("upstream", 53);
    let client = lab.add_client("c1", "52:54:00:99:53:21");
    let outsider = lab.add_peer("outsider", 250);
    // The upstream is a second Kindling, authoritative for far.example.
    let mut upstream = Fixture::new().start_in(
        &upstream_host.exec_prefix(),
        "  listen: [\"0.0.0.0:69\"]\ndns:\n  listen: [\"0.0.0.0:53\"]\n  domain: far.example\n  records:\n    - { name: \"@\", a: 192.0.2.77 }\n",
    );
    upstream.wait_for_log("dns listening", Duration::from_secs(10));
    // The range (.100 - .120) may recurse; the outsider at .250 may not.
    let section = config(&lab, Some(lab.ip(53))).replace(
        "  domain: lab.test\n",
        &format!(
            "  domain: lab.test\n  allow_recursion_from: [10.99.{}.96/27]\n",
            lab.n()
        ),
    );
    let _daemon = start(&lab, &section);
    let server = lab.server_ip();
    let lease = run_dhclient(&client, &DhclientOptions::default());
    assert!((lab.ip(100)..=lab.ip(120)).contains(&lease.address));
    let forwarded = dig(&client, server, &["far.example", "A"]);
    assert!(
        forwarded.contains("192.0.2.77") && forwarded.contains(" ra"),
        "forwarded through the upstream: {forwarded}"
    );
    let refused = dig(&outsider, server, &["far.example", "A"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    // Our own zone still answers the outsider: only recursion is refused.
    assert_eq!(
        short(&outsider, server, &["nas.lab.test", "A"]),
        vec![lab.ip(5).to_string()]
    );

    drop(_daemon);
    let _daemon = start(&lab, &config(&lab, None));
    let started = Instant::now();
    let answer = dig(&client, server, &["far.example", "A"]);
    assert!(answer.contains("status: REFUSED"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "REFUSED at once, not a timeout"
    );
}

/// A lease that runs out without a release (the client vanished) takes its name and PTR with
/// it: lease_time 1m, and the expiry sweep runs every 10 s.
#[test]
fn an_expired_lease_takes_its_name_away() {
    let lab = Lab::new("kdnse", 54);
    let client = lab.add_client("gone", "52:54:00:99:54:21");
    let section = config(&lab, None).replace("lease_time: 1h", "lease_time: 1m");
    let daemon = start(&lab, &section);
    let server = lab.server_ip();
    // run_dhclient kills dhclient once it has the lease: nobody renews it.
    let lease = run_dhclient(&client, &DhclientOptions::with_hostname("brief01"));
    let granted = Instant::now();
    within(
        Duration::from_secs(1),
        "brief01.lab.test after the ACK",
        || short(&client, server, &["brief01.lab.test", "A"]) == vec![lease.address.to_string()],
    );
    let o = lease.address.octets();
    let ptr_name = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
    // Still there shortly before the lease runs out.
    std::thread::sleep(Duration::from_secs(50).saturating_sub(granted.elapsed()));
    assert_eq!(
        short(&client, server, &["brief01.lab.test", "A"]),
        vec![lease.address.to_string()],
        "the name went before its lease ran out"
    );
    // Gone within a sweep after the expiry.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(granted.elapsed()));
    within(
        Duration::from_secs(15),
        "brief01.lab.test gone after expiry",
        || dig(&client, server, &["brief01.lab.test", "A"]).contains("status: NXDOMAIN"),
    );
    assert!(
        dig(&client, server, &[&ptr_name, "PTR"]).contains("status: NXDOMAIN"),
        "the PTR outlived the lease"
    );
    let log = daemon.log();
    assert!(log.contains("lease(s) expired"), "{log}");
}
