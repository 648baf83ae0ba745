//! The lab for the DHCP end-to-end tests: a switch, a server and clients in network namespaces,
//! real DHCP clients (ISC dhclient, and iPXE in a QEMU VM), and dnsmasq as a reference server.
//!
//! ```text
//!   server ns            bridge ns                       client ns (one per client)
//!   eth0 10.99.N.1/24 -- p-server  br0  p-NAME ------------ eth0 (no address, given MAC)
//!                                  br0  TAP  <- qemu-system-x86_64 runs in the bridge ns
//! ```
//!
//! Every namespace is made by the test and removed when its owner drops, panicking or not
//! (see [`crate::netns`] for the names, which carry the test's tag and the process id, and for
//! the removal of leftovers of killed runs). Processes the lab starts are killed on drop and
//! also die with the test process, even when it is killed. Nothing is routed: no namespace
//! has a default route and the host's own namespace is never touched, so nothing leaves the
//! lab. Only 10.99.N.0/24 (and fd00:99::/32) addresses are used.
//!
//! A Kindling test puts the daemon in the server namespace with
//! `fixture.start_in(&lab.server.exec_prefix(), ...)`, then drives [`run_dhclient`] in a client
//! namespace or boots a VM with [`Qemu::boot_bios_ipxe`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::{Netns, add_addr};
use crate::tools::{require, run};

/// The bridge inside the bridge namespace.
const BRIDGE: &str = "br0";
/// The interface of every host (server, peer, client) inside its own namespace.
const HOST_IF: &str = "eth0";
/// The longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

// ---------------------------------------------------------------------------------------------
// Background processes

unsafe extern "C" {
    fn prctl(option: i32, ...) -> i32;
}
const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: std::ffi::c_ulong = 9;

/// A process a test started and that must not outlive it: its stdout and stderr are collected
/// into one log, it is killed on drop (the log is printed if the test is panicking), and the
/// kernel kills it if the thread that started it dies, so that not even a killed test run
/// leaves a QEMU or a dnsmasq behind. Start it from the test's own thread.
pub(crate) struct Background {
    what: String,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    /// Set once a panic message carried the log, so that drop does not print it again.
    reported: bool,
}

impl Background {
    /// Starts `command` (described as `what` in messages), panicking if it cannot start.
    pub(crate) fn spawn(what: &str, command: &mut Command) -> Background {
        // SAFETY: the closure runs between fork and exec and only makes one system call,
        // which is async-signal-safe. The argument is passed as the unsigned long prctl reads.
        unsafe {
            command.pre_exec(|| {
                if prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what} ({command:?}): {error}"));
        let log = Arc::new(Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for pipe in pipes {
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).split(b'\n') {
                    let Ok(line) = line else { break };
                    let mut log = sink.lock().unwrap();
                    log.push_str(&String::from_utf8_lossy(&line));
                    log.push('\n');
                }
            });
        }
        Background {
            what: what.to_string(),
            child: Some(child),
            log,
            reported: false,
        }
    }

    /// Everything the process printed so far (stdout and stderr, interleaved by line).
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The exit status if the process has ended.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits until the log contains `needle`; fails with the log if the process exits first or
    /// `deadline` passes.
    pub(crate) fn wait_for_log(&mut self, needle: &str, deadline: Duration) {
        let started = Instant::now();
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(status) = self.exited() {
                // Let the readers catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                self.reported = true;
                panic!(
                    "{} exited ({status}) before printing {needle:?}:\n{}",
                    self.what,
                    self.log()
                );
            }
            if started.elapsed() > deadline {
                self.reported = true;
                panic!(
                    "{} did not print {needle:?} within {deadline:?}:\n{}",
                    self.what,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL: it gets no chance to send anything) and waits for it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && !self.reported {
            eprintln!("---- {} output ----\n{}", self.what, self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab

/// Tags of the labs alive in this process: two labs with one tag would share namespaces.
static TAGS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Holds a lab's tag for as long as the lab lives.
struct TagClaim(String);

impl TagClaim {
    fn new(tag: &str) -> TagClaim {
        let mut tags = TAGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(
            tags.insert(tag.to_string()),
            "two labs use the tag {tag:?} at once: give every test its own tag"
        );
        TagClaim(tag.to_string())
    }
}

impl Drop for TagClaim {
    fn drop(&mut self) {
        let mut tags = TAGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tags.remove(&self.0);
    }
}

/// A machine on the lab's switch: its own namespace with one interface, `eth0`, plugged into
/// the bridge. Dropping it removes the namespace, and with it the cable.
pub(crate) struct LabHost {
    /// The name given when it was added (`server` for the lab's server).
    pub(crate) name: String,
    /// Its interface inside its namespace: always `eth0`.
    pub(crate) interface: String,
    /// The MAC address of `interface`, as `52:54:00:...`.
    pub(crate) mac: String,
    /// Its static address: 10.99.N.1 for the server, the one asked for a peer, none for a client.
    pub(crate) ipv4: Option<Ipv4Addr>,
    /// Its namespace.
    pub(crate) netns: Netns,
    /// A scratch directory for the tools run on this host (dhclient keeps its lease file here,
    /// so that a second run renews the first run's lease).
    pub(crate) dir: tempfile::TempDir,
}

impl LabHost {
    /// `ip netns exec NS`: the prefix for `Fixture::start_in` or any command to run inside.
    #[allow(dead_code, reason = "API for the Kindling DHCP tests")]
    pub(crate) fn exec_prefix(&self) -> Vec<String> {
        self.netns.exec_prefix()
    }

    /// A command that runs `program` inside this host's namespace (fails if it is missing).
    pub(crate) fn command(&self, program: &str) -> Command {
        self.netns.command(program)
    }

    /// Adds another address (`10.99.x.y/p` or `fd00:99:...`) to `eth0`.
    #[allow(dead_code, reason = "API for the Kindling DHCP tests")]
    pub(crate) fn add_addr(&self, cidr: &str) {
        add_addr(&self.netns, &self.interface, cidr);
    }

    /// The IPv4 addresses on `eth0` right now, as `10.99.N.x/24` (dhclient's script puts the
    /// leased address there and removes it on release).
    pub(crate) fn ipv4_addresses(&self) -> Vec<String> {
        let output = run(
            Command::new("ip").args([
                "-n",
                self.netns.name(),
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                &self.interface,
            ]),
            Duration::from_secs(20),
        );
        assert!(output.status.success(), "ip addr show failed: {output:?}");
        // "2: eth0    inet 10.99.21.130/24 scope global eth0\       valid_lft ..."
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                words.find(|word| *word == "inet")?;
                words.next().map(str::to_string)
            })
            .collect()
    }
}

/// One isolated layer-2 segment: a bridge in its own namespace and a server on it at
/// 10.99.N.1/24. Add clients (no address; they ask DHCP), peers (other servers with a static
/// address, such as the home router a proxyDHCP test needs) and taps for QEMU.
///
/// Dropping the lab removes the bridge and server namespaces; hosts returned by
/// [`Lab::add_client`] and [`Lab::add_peer`] are owned by the test and removed when it drops
/// them. Declare processes (the daemon, dnsmasq, QEMU) after the lab and its hosts, so that
/// they are dropped, and killed, first.
pub(crate) struct Lab {
    n: u8,
    tag: String,
    /// The server: `eth0` at 10.99.N.1/24, MAC 02:00:0a:63:NN:01.
    pub(crate) server: LabHost,
    bridge: Netns,
    _claim: TagClaim,
}

impl Lab {
    /// Builds the lab for the test tagged `tag` (1 to 10 lowercase letters or digits, unique
    /// among the tests) on 10.99.`n`.0/24. The labs are isolated from each other, so `n` only
    /// needs to differ between tests for readable logs.
    pub(crate) fn new(tag: &str, n: u8) -> Lab {
        require("ip");
        assert!(
            !tag.is_empty()
                && tag.len() <= 10
                && tag
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "a lab tag is 1 to 10 lowercase letters or digits, not {tag:?}"
        );
        let claim = TagClaim::new(tag);
        let bridge = Netns::new(&format!("lab{tag}"), "br");
        // No STP (ports forward at once) and no multicast snooping (multicast is flooded, so
        // DHCPv6 and neighbour discovery reach everyone whatever MLD reports were seen).
        bridge.ip(&[
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        bridge.ip(&["link", "set", BRIDGE, "up"]);
        let address = Ipv4Addr::new(10, 99, n, 1);
        let server = attach_host(&bridge, tag, "server", &derived_mac(address), Some(address));
        Lab {
            n,
            tag: tag.to_string(),
            server,
            bridge,
            _claim: claim,
        }
    }

    /// The third octet: the lab's subnet is 10.99.N.0/24.
    #[allow(dead_code, reason = "API for the Kindling DHCP tests")]
    pub(crate) fn n(&self) -> u8 {
        self.n
    }

    /// `10.99.N.0/24`.
    #[allow(dead_code, reason = "API for the Kindling DHCP tests")]
    pub(crate) fn subnet(&self) -> String {
        format!("10.99.{}.0/24", self.n)
    }

    /// `10.99.N.host`.
    pub(crate) fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.n, host)
    }

    /// The server's address, 10.99.N.1.
    pub(crate) fn server_ip(&self) -> Ipv4Addr {
        self.ip(1)
    }

    /// The bridge namespace (where taps live and QEMU runs; for nftables rules on a tap).
    pub(crate) fn bridge(&self) -> &Netns {
        &self.bridge
    }

    /// Adds a client: a namespace whose `eth0` has MAC `mac` (such as `52:54:00:99:21:10`) and
    /// no IPv4 address. `name` is 1 to 12 letters, digits or `-`, unique in the lab.
    pub(crate) fn add_client(&self, name: &str, mac: &str) -> LabHost {
        attach_host(&self.bridge, &self.tag, name, mac, None)
    }

    /// Adds a peer: another server on the segment at 10.99.N.`host`/24 (MAC 02:00:0a:63:NN:HH),
    /// for example the home router that hands out addresses while Kindling runs in proxy mode.
    pub(crate) fn add_peer(&self, name: &str, host: u8) -> LabHost {
        let address = self.ip(host);
        attach_host(
            &self.bridge,
            &self.tag,
            name,
            &derived_mac(address),
            Some(address),
        )
    }

    /// Adds a persistent tap device `name` (at most 15 characters) to the bridge, for
    /// [`Qemu`]. It lives in the bridge namespace and goes with it.
    pub(crate) fn add_tap(&self, name: &str) -> String {
        assert!(
            !name.is_empty() && name.len() <= IFNAME_MAX,
            "tap name {name:?} must be 1 to {IFNAME_MAX} characters"
        );
        self.bridge
            .ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        self.bridge
            .ip(&["link", "set", name, "master", BRIDGE, "up"]);
        name.to_string()
    }

    /// Adds a tap like [`Lab::add_tap`] whose IPv4 and ARP frames are dropped as they enter the
    /// bridge (an nftables `netdev` table with an ingress hook on the tap, in the bridge
    /// namespace), so that a VM on it can reach nothing but IPv6: its DHCPv4 requests never
    /// reach a server. [`Lab::ipv4_frames_dropped`] counts what the filter dropped.
    pub(crate) fn add_ipv6_only_tap(&self, name: &str) -> String {
        require("nft");
        let tap = self.add_tap(name);
        let rules = format!(
            "table netdev {table} {{\n  chain ingress {{\n    type filter hook ingress device \"{tap}\" priority 0;\n    ether type {{ ip, arp }} counter drop\n  }}\n}}\n",
            table = ipv6_only_table(&tap)
        );
        let rules_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(rules_file.path(), rules).unwrap();
        let output = run(
            self.bridge.command("nft").arg("-f").arg(rules_file.path()),
            Duration::from_secs(20),
        );
        assert!(
            output.status.success(),
            "nft could not install the IPv4 filter on {tap}: {output:?}"
        );
        tap
    }

    /// How many IPv4 and ARP frames the filter of [`Lab::add_ipv6_only_tap`] dropped on `tap`.
    pub(crate) fn ipv4_frames_dropped(&self, tap: &str) -> u64 {
        let output = run(
            self.bridge
                .command("nft")
                .args(["list", "table", "netdev", &ipv6_only_table(tap)]),
            Duration::from_secs(20),
        );
        assert!(output.status.success(), "nft list: {output:?}");
        // "ether type { ip, arp } counter packets 12 bytes 4104 drop"
        let text = String::from_utf8_lossy(&output.stdout);
        text.split_whitespace()
            .skip_while(|word| *word != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter in the IPv4 filter:\n{text}"))
    }

    /// Starts a router-advertisement beacon on the bridge: RAs with no prefix, no M or O flag
    /// and a router lifetime of 0 (so no host gains an address or a route), sent every second
    /// and at once in answer to a router solicitation.
    ///
    /// iPXE configures IPv4 and IPv6 together and waits for a router advertisement: without
    /// one, "Configuring (net0 ...)" takes about 13 s longer (measured: 18 s to the marker
    /// instead of 6 s). IPv4 boot tests start this; a test of IPv6 boot must not, since iPXE
    /// would take this RA instead of the server's M/O flags.
    pub(crate) fn start_ra_beacon(&self) -> Background {
        require("python3");
        // A fixed link-local address without duplicate address detection, usable at once.
        self.bridge
            .ip(&["addr", "add", "fe80::99:1/64", "dev", BRIDGE, "nodad"]);
        let mut command = self.bridge.command("python3");
        command.args(["-c", RA_BEACON, BRIDGE, "fe80::99:1"]);
        let mut beacon = Background::spawn("the router-advertisement beacon", &mut command);
        beacon.wait_for_log("ready", Duration::from_secs(10));
        beacon
    }
}

/// Sends router advertisements on argv[1] from argv[2]; see [`Lab::start_ra_beacon`].
const RA_BEACON: &str = r#"
import select, socket, struct, sys, time
index = socket.if_nametoindex(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
             socket.inet_pton(socket.AF_INET6, "ff02::2") + struct.pack("@I", index))
s.bind((sys.argv[2], 0, 0, index))
# Type 134, code 0, checksum (the kernel fills it in), hop limit 64, no flags, router
# lifetime 0, reachable time 0, retransmission timer 0; no options.
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
print("ready", flush=True)
due = 0.0
while True:
    now = time.monotonic()
    if now >= due:
        s.sendto(ra, ("ff02::1", 0, 0, index))
        due = now + 1.0
    readable, _, _ = select.select([s], [], [], max(0.0, due - now))
    if readable and s.recv(1500)[:1] == b"\x85":
        s.sendto(ra, ("ff02::1", 0, 0, index))
"#;

/// The nftables table that keeps IPv4 off `tap`.
fn ipv6_only_table(tap: &str) -> String {
    format!("kindling_v6only_{}", tap.replace('-', "_"))
}

/// A locally administered MAC made from an IPv4 address: 02:00 and the four octets.
fn derived_mac(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Makes the namespace for host `name`, a veth pair from it into the bridge (`eth0` inside,
/// `p-NAME` on the bridge), both ends up, and `address` on `eth0` if given.
fn attach_host(
    bridge: &Netns,
    tag: &str,
    name: &str,
    mac: &str,
    address: Option<Ipv4Addr>,
) -> LabHost {
    let port = format!("p-{name}");
    assert!(
        !name.is_empty()
            && port.len() <= IFNAME_MAX
            && name != "br"
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "a lab host name is 1 to 13 letters, digits or '-' (and not \"br\"), not {name:?}"
    );
    let netns = Netns::new(&format!("lab{tag}"), name);
    // The host's end is born inside its namespace with its MAC; nothing touches the host's
    // own namespace.
    bridge.ip(&[
        "link",
        "add",
        &port,
        "type",
        "veth",
        "peer",
        "name",
        HOST_IF,
        "netns",
        netns.name(),
        "address",
        mac,
    ]);
    bridge.ip(&["link", "set", &port, "master", BRIDGE, "up"]);
    netns.ip(&["link", "set", HOST_IF, "up"]);
    if let Some(address) = address {
        add_addr(&netns, HOST_IF, &format!("{address}/24"));
    }
    LabHost {
        name: name.to_string(),
        interface: HOST_IF.to_string(),
        mac: mac.to_string(),
        ipv4: address,
        netns,
        dir: tempfile::tempdir().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// dnsmasq

/// dnsmasq running in a lab host's namespace; killed on drop.
pub(crate) struct Dnsmasq {
    process: Background,
    dir: tempfile::TempDir,
}

/// Starts dnsmasq in `host`'s namespace on its `eth0` with `args` added (`--dhcp-range=...`,
/// `--enable-tftp`, `--tftp-root=...`, `--dhcp-boot=...`, ...), and returns once it serves.
///
/// Always set: no daemon, no config file, DNS off (`--port=0`), bound to `eth0` only, no ping
/// before offering (faster), running as root (so it reads a TFTP root in a private temporary
/// directory), DHCP logged in detail to its stderr (see [`Dnsmasq::log`]), and its lease and
/// pid files in a private directory (see [`Dnsmasq::leases`]) so that tests never share them.
pub(crate) fn start_dnsmasq(host: &LabHost, args: &[&str]) -> Dnsmasq {
    let dir = tempfile::tempdir().unwrap();
    let mut command = host.command("dnsmasq");
    command
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-hosts",
            "--no-resolv",
            "--port=0",
            "--bind-interfaces",
            "--no-ping",
            "--user=root",
            "--log-facility=-",
            "--log-dhcp",
        ])
        .arg(format!("--interface={}", host.interface))
        .arg(format!(
            "--dhcp-leasefile={}",
            dir.path().join("leases").display()
        ))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .args(args);
    let mut process = Background::spawn(&format!("dnsmasq in {}", host.name), &mut command);
    process.wait_for_log("started, version", Duration::from_secs(20));
    Dnsmasq { process, dir }
}

impl Dnsmasq {
    /// Everything dnsmasq logged so far (with `--log-dhcp`: every packet and option).
    pub(crate) fn log(&self) -> String {
        self.process.log()
    }

    /// Waits until the log contains `needle` (for example `DHCPRELEASE(eth0) 10.99.21.130`).
    pub(crate) fn wait_for_log(&mut self, needle: &str, deadline: Duration) {
        self.process.wait_for_log(needle, deadline);
    }

    /// The lease file: one line per lease, `EXPIRY MAC IP HOSTNAME CLIENT-ID`.
    pub(crate) fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("leases")).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// dhclient

/// How long dhclient tries for a lease unless told otherwise.
pub(crate) const DHCLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// What dhclient asks for, beyond its defaults. `DhclientOptions::default()` asks for a lease
/// with the parameter request list subnet-mask, routers, domain-name-servers, domain-name,
/// host-name and no host name, giving up after [`DHCLIENT_TIMEOUT`].
#[derive(Clone, Debug, Default)]
pub(crate) struct DhclientOptions {
    /// Sent as option 12 (`send host-name "NAME";`).
    pub(crate) hostname: Option<String>,
    /// More options for the parameter request list, by dhclient's names (`ntp-servers`,
    /// `domain-search`, `interface-mtu`, ...).
    pub(crate) also_request: Vec<String>,
    /// More dhclient.conf statements, each with its `;`, such as
    /// `send dhcp-client-identifier "node-a";` or `reboot 3;`.
    pub(crate) config: Vec<String>,
    /// How long dhclient tries before giving up; [`DHCLIENT_TIMEOUT`] if unset.
    pub(crate) timeout: Option<Duration>,
}

impl DhclientOptions {
    /// Options that send `hostname` as option 12.
    pub(crate) fn with_hostname(hostname: &str) -> DhclientOptions {
        DhclientOptions {
            hostname: Some(hostname.to_string()),
            ..DhclientOptions::default()
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DHCLIENT_TIMEOUT)
    }

    fn config_text(&self) -> String {
        let mut request = vec![
            "subnet-mask",
            "routers",
            "domain-name-servers",
            "domain-name",
            "host-name",
        ];
        request.extend(self.also_request.iter().map(String::as_str));
        let mut text = format!(
            "# Written by the Kindling e2e tests.\ntimeout {};\ninitial-interval 1;\nrequest {};\n",
            self.timeout().as_secs().max(1),
            request.join(", ")
        );
        if let Some(hostname) = &self.hostname {
            assert!(
                !hostname.contains(['"', '\\', '\n']),
                "host name {hostname:?} would break dhclient.conf"
            );
            text.push_str(&format!("send host-name \"{hostname}\";\n"));
        }
        for statement in &self.config {
            text.push_str(statement);
            text.push('\n');
        }
        text
    }
}

/// A lease as dhclient handed it to its script (the `new_*` variables).
#[derive(Clone, Debug)]
pub(crate) struct DhcpLease {
    /// Why the script ran: `BOUND` (after DISCOVER), `REBOOT` (INIT-REBOOT: a new dhclient
    /// confirmed the lease in its lease file), `RENEW` or `REBIND` (a running dhclient at T1 or T2).
    pub(crate) reason: String,
    /// yiaddr.
    pub(crate) address: Ipv4Addr,
    /// Option 1.
    pub(crate) subnet_mask: Option<Ipv4Addr>,
    /// Option 3.
    pub(crate) routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub(crate) dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub(crate) domain_name: Option<String>,
    /// Option 12 as the server sent it.
    pub(crate) host_name: Option<String>,
    /// The boot file: the `file` field, or option 67.
    pub(crate) filename: Option<String>,
    /// siaddr (dhclient omits it when it is 0.0.0.0).
    pub(crate) next_server: Option<Ipv4Addr>,
    /// Option 54.
    pub(crate) server_identifier: Option<Ipv4Addr>,
    /// Option 51, in seconds.
    pub(crate) lease_time: Option<u32>,
    /// Option 58, in seconds.
    pub(crate) renewal_time: Option<u32>,
    /// Option 59, in seconds.
    pub(crate) rebinding_time: Option<u32>,
    /// Every variable dhclient passed to its script (`new_*`, `old_*`, `requested_*`,
    /// `interface`, ...), for options the fields above do not cover.
    #[allow(dead_code, reason = "API for the Kindling DHCP tests")]
    pub(crate) env: BTreeMap<String, String>,
}

impl DhcpLease {
    fn from_event(event: &DhclientEvent) -> DhcpLease {
        let env = &event.env;
        let get = |name: &str| env.get(&format!("new_{name}")).cloned();
        let ip = |name: &str| {
            get(name).map(|value| {
                value
                    .parse::<Ipv4Addr>()
                    .unwrap_or_else(|_| panic!("new_{name}={value} is not an IPv4 address"))
            })
        };
        let ips = |name: &str| -> Vec<Ipv4Addr> {
            get(name)
                .unwrap_or_default()
                .split_whitespace()
                .map(|value| {
                    value
                        .parse()
                        .unwrap_or_else(|_| panic!("new_{name} holds {value}, not an address"))
                })
                .collect()
        };
        let seconds = |name: &str| {
            get(name).map(|value| {
                value
                    .parse::<u32>()
                    .unwrap_or_else(|_| panic!("new_{name}={value} is not a number"))
            })
        };
        DhcpLease {
            reason: event.reason.clone(),
            address: ip("ip_address").unwrap_or_else(|| {
                panic!(
                    "dhclient reported {} without an address: {env:?}",
                    event.reason
                )
            }),
            subnet_mask: ip("subnet_mask"),
            routers: ips("routers"),
            dns_servers: ips("domain_name_servers"),
            domain_name: get("domain_name"),
            host_name: get("host_name"),
            filename: get("filename"),
            next_server: ip("next_server"),
            server_identifier: ip("dhcp_server_identifier"),
            lease_time: seconds("dhcp_lease_time"),
            renewal_time: seconds("dhcp_renewal_time"),
            rebinding_time: seconds("dhcp_rebinding_time"),
            env: env.clone(),
        }
    }
}

/// One run of dhclient's script: the reason and every variable it was given.
#[derive(Clone, Debug)]
pub(crate) struct DhclientEvent {
    /// `PREINIT`, `BOUND`, `REBOOT`, `RENEW`, `REBIND`, `EXPIRE`, `FAIL`, `RELEASE`, `TIMEOUT`...
    pub(crate) reason: String,
    /// The variables, such as `new_ip_address` or `old_ip_address`.
    pub(crate) env: BTreeMap<String, String>,
}

/// The script dhclient runs on every state change (`-sf`): it records the variables, and puts
/// the leased address on the interface (never a route) or takes it off, like the real
/// dhclient-script does, so that a renewal or a release can be sent by unicast. It rejects
/// TIMEOUT, so that a dhclient that heard no server never falls back to an old lease from its
/// lease file: no answer is a failure, not a lease.
fn dhclient_script(events: &Path) -> String {
    format!(
        r#"#!/bin/sh
# Written by the Kindling e2e tests.
status=0
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
        ip -4 addr del "$old_ip_address/${{old_subnet_mask:-255.255.255.255}}" dev "$interface" 2>/dev/null
    fi
    ip -4 addr replace "$new_ip_address/${{new_subnet_mask:-255.255.255.255}}" dev "$interface" || status=1
    ;;
EXPIRE|FAIL|RELEASE|STOP)
    if [ -n "$old_ip_address" ]; then
        ip -4 addr del "$old_ip_address/${{old_subnet_mask:-255.255.255.255}}" dev "$interface" 2>/dev/null
    fi
    ;;
TIMEOUT)
    status=1
    ;;
esac
{{ echo "reason=$reason"; env | LC_ALL=C sort; echo "--end--"; }} >> '{events}'
exit $status
"#,
        events = events.display()
    )
}

/// Where dhclient keeps its lease file for `host` (kept between runs; see [`run_dhclient`]).
pub(crate) fn dhclient_lease_file(host: &LabHost) -> PathBuf {
    host.dir.path().join("dhclient.leases")
}

/// Forgets `host`'s lease, so that the next [`run_dhclient`] starts from DHCPDISCOVER.
pub(crate) fn forget_dhcp_lease(host: &LabHost) {
    let _ = std::fs::remove_file(dhclient_lease_file(host));
}

/// Writes dhclient's config and script for `host` and returns the arguments common to every
/// run: `-v --no-pid -cf CONF -lf LEASES -sf SCRIPT`.
fn dhclient_files(host: &LabHost, options: &DhclientOptions, events: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let config = host.dir.path().join("dhclient.conf");
    std::fs::write(&config, options.config_text()).unwrap();
    let script = host.dir.path().join("dhclient-script");
    std::fs::write(&script, dhclient_script(events)).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = |path: &Path| path.to_str().unwrap().to_string();
    vec![
        "-v".to_string(),
        // No pid file: `dhclient -r` would otherwise kill whatever process it names.
        "--no-pid".to_string(),
        "-cf".to_string(),
        path(&config),
        "-lf".to_string(),
        path(&dhclient_lease_file(host)),
        "-sf".to_string(),
        path(&script),
    ]
}

fn read_events(path: &Path) -> Vec<DhclientEvent> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut events = Vec::new();
    let mut env = BTreeMap::new();
    for line in text.lines() {
        if line == "--end--" {
            let env = std::mem::take(&mut env);
            let reason = env.get("reason").cloned().unwrap_or_default();
            events.push(DhclientEvent { reason, env });
        } else if let Some((name, value)) = line.split_once('=') {
            env.insert(name.to_string(), value.to_string());
        }
    }
    // A record without its end line is still being written: left for the next read.
    events
}

/// ISC dhclient running in the foreground (`-1 -d`) in a client's namespace; killed on drop
/// (SIGKILL: it sends nothing, and its lease file keeps the lease for the next run).
///
/// [`run_dhclient`] is the one-shot form; keep a `Dhclient` to watch it renew at T1
/// ([`Dhclient::wait_lease`] again returns the `RENEW`).
pub(crate) struct Dhclient {
    process: Background,
    events: PathBuf,
    timeout: Duration,
    /// Events already looked at by [`Dhclient::wait_lease`].
    seen: usize,
    /// Leases returned so far.
    leases: usize,
}

impl Dhclient {
    /// Starts dhclient on `host`'s `eth0`. With no lease file it starts from DHCPDISCOVER;
    /// with the lease file of an earlier run it first asks to keep that lease (INIT-REBOOT:
    /// a broadcast DHCPREQUEST with option 50), as a rebooted machine does.
    pub(crate) fn start(host: &LabHost, options: &DhclientOptions) -> Dhclient {
        require("dhclient");
        let events = host.dir.path().join("dhclient-events");
        let _ = std::fs::remove_file(&events);
        let mut command = host.command("dhclient");
        command
            .args(["-1", "-d"])
            .args(dhclient_files(host, options, &events))
            .arg(&host.interface);
        let process = Background::spawn(&format!("dhclient in {}", host.name), &mut command);
        Dhclient {
            process,
            events,
            timeout: options.timeout(),
            seen: 0,
            leases: 0,
        }
    }

    /// Every script run so far.
    pub(crate) fn events(&self) -> Vec<DhclientEvent> {
        read_events(&self.events)
    }

    /// The script runs in one line each: the reason and the addresses.
    fn summary(&self) -> String {
        let lines: Vec<String> = self
            .events()
            .iter()
            .map(|event| {
                let mut line = event.reason.clone();
                for name in ["new_ip_address", "old_ip_address"] {
                    if let Some(value) = event.env.get(name) {
                        line.push_str(&format!(" {name}={value}"));
                    }
                }
                line
            })
            .collect();
        lines.join(", ")
    }

    /// dhclient's own log (`DHCPDISCOVER on eth0 ...`, `DHCPACK of ...`, `bound to ...`).
    pub(crate) fn log(&self) -> String {
        self.process.log()
    }

    /// Waits for the next lease (a `BOUND`, `REBOOT`, `RENEW` or `REBIND`) and returns it once
    /// dhclient has also written it to its lease file. Fails with dhclient's log and script
    /// events if dhclient gives up or `deadline` passes.
    pub(crate) fn wait_lease(&mut self, deadline: Duration) -> DhcpLease {
        let started = Instant::now();
        let mut found: Option<DhcpLease> = None;
        loop {
            if found.is_none() {
                let events = self.events();
                while let Some(event) = events.get(self.seen) {
                    self.seen += 1;
                    if ["BOUND", "REBOOT", "RENEW", "REBIND"].contains(&event.reason.as_str()) {
                        self.leases += 1;
                        found = Some(DhcpLease::from_event(event));
                        break;
                    }
                }
            }
            // dhclient logs "bound to" after writing the lease file (and after the script).
            if let Some(lease) = &found
                && self.log().matches("bound to ").count() >= self.leases
            {
                return lease.clone();
            }
            if let Some(status) = self.process.exited() {
                std::thread::sleep(Duration::from_millis(100));
                self.process.reported = true;
                panic!(
                    "dhclient exited ({status}) without a lease:\n{}\nscript runs: {}",
                    self.log(),
                    self.summary()
                );
            }
            if started.elapsed() > deadline {
                self.process.kill();
                self.process.reported = true;
                panic!(
                    "dhclient got no lease within {deadline:?}:\n{}\nscript runs: {}",
                    self.log(),
                    self.summary()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs dhclient once on `host` and returns its lease: DHCPDISCOVER, OFFER, REQUEST, ACK
/// (reason `BOUND`) the first time; run again on the same host it asks to keep the lease from
/// its lease file (INIT-REBOOT, reason `REBOOT`, or `BOUND` with a new lease if the server
/// refused it). The address is put on the client's `eth0` (no route), dhclient is then killed
/// without sending anything. Fails with dhclient's output if no lease comes within the
/// options' timeout (20 s by default).
pub(crate) fn run_dhclient(host: &LabHost, options: &DhclientOptions) -> DhcpLease {
    let mut dhclient = Dhclient::start(host, options);
    let deadline = dhclient.timeout + Duration::from_secs(5);
    dhclient.wait_lease(deadline)
}

/// Releases `host`'s lease (`dhclient -r`): a DHCPRELEASE sent by unicast to the server that
/// granted it (its address must still be on `eth0`, as [`run_dhclient`] leaves it), and the
/// address taken off `eth0`. Returns dhclient's output.
pub(crate) fn release_dhclient(host: &LabHost, options: &DhclientOptions) -> String {
    require("dhclient");
    let events = host.dir.path().join("dhclient-events");
    let _ = std::fs::remove_file(&events);
    let mut command = host.command("dhclient");
    command
        .arg("-r")
        .args(dhclient_files(host, options, &events))
        .arg(&host.interface);
    let output = run(&mut command, options.timeout() + Duration::from_secs(5));
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && text.contains("DHCPRELEASE of"),
        "dhclient -r sent no DHCPRELEASE ({}):\n{text}",
        output.status
    );
    assert!(
        !text.contains("send_packet"),
        "dhclient -r could not send its DHCPRELEASE:\n{text}"
    );
    text
}

// ---------------------------------------------------------------------------------------------
// QEMU

/// How long a VM gets to reach its marker: the boot takes about 6 s under TCG here.
pub(crate) const BOOT_DEADLINE: Duration = Duration::from_secs(60);

/// The iPXE option ROM for QEMU's e1000 under SeaBIOS (package ipxe-qemu).
pub(crate) const IPXE_E1000_ROM: &str = "/usr/lib/ipxe/qemu/pxe-e1000.rom";

/// UEFI firmware for QEMU (package ovmf): the code, and the variables each VM gets a copy of.
pub(crate) const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub(crate) const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// iPXE for x86-64 UEFI (package ipxe): what OVMF's PXE client is handed to chainload.
#[allow(dead_code, reason = "API for the Kindling boot tests")]
pub(crate) const IPXE_EFI: &str = "/usr/lib/ipxe/ipxe.efi";

/// What [`write_marker_script`] makes iPXE print, one `kindling-info NAME=VALUE` line each
/// (read back with [`Qemu::ipxe_info`]); `net0/ip6` is the IPv6 address DHCPv6 gave.
const IPXE_INFO: [&str; 13] = [
    "ip",
    "netmask",
    "gateway",
    "dns",
    "domain",
    "hostname",
    "dhcp-server",
    "next-server",
    "filename",
    "platform",
    "buildarch",
    "mac",
    "net0/ip6",
];

/// Writes an iPXE script to `path` (such as `fixture.root().join("boot.ipxe")`) and returns
/// the marker the VM prints when iPXE really ran it: `KINDLING-BOOTED-<random hex>`, split
/// across two variables in the script so that it appears on the console only when the script
/// executed. The script first prints the settings iPXE got from DHCP (see [`Qemu::ipxe_info`])
/// and then sleeps, so that the VM neither reboots nor asks DHCP again until it is killed.
pub(crate) fn write_marker_script(path: &Path) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let token = format!("{:016x}", hasher.finish());
    let mut script = String::from("#!ipxe\n# Written by the Kindling e2e tests.\n");
    for name in IPXE_INFO {
        script.push_str(&format!("echo kindling-info {name}=${{{name}}}\n"));
    }
    script.push_str(&format!(
        "set a KINDLING\nset b BOOTED-{token}\necho ${{a}}-${{b}}\nsleep 3600\n"
    ));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, script).unwrap();
    format!("KINDLING-BOOTED-{token}")
}

/// A QEMU VM (`qemu-system-x86_64 -accel tcg`, no display, 256 MiB) on one of the lab's taps,
/// run inside the bridge namespace, with its serial console in a file; killed on drop (the
/// tail of the console is printed if the test is panicking).
pub(crate) struct Qemu {
    process: Background,
    serial: PathBuf,
    _dir: tempfile::TempDir,
}

impl Qemu {
    /// Boots a BIOS machine from the network: SeaBIOS with the iPXE e1000 ROM, so iPXE is the
    /// first DHCP client (option 77 `iPXE`, option 93 arch 0), on tap `tap` with MAC `mac`.
    /// SeaBIOS mirrors its console, and iPXE's, to the serial port (fw_cfg `etc/sercon-port`).
    /// Start [`Lab::start_ra_beacon`] first, or iPXE spends 13 s waiting for IPv6.
    pub(crate) fn boot_bios_ipxe(lab: &Lab, tap: &str, mac: &str) -> Qemu {
        assert!(
            Path::new(IPXE_E1000_ROM).is_file(),
            "{IPXE_E1000_ROM} is missing: install the ipxe-qemu package"
        );
        let dir = tempfile::tempdir().unwrap();
        // COM1 (0x3f8) as two little-endian bytes.
        let sercon = dir.path().join("sercon-port");
        std::fs::write(&sercon, [0xf8, 0x03]).unwrap();
        let machine = vec![
            "-device".to_string(),
            format!("e1000,netdev=n0,mac={mac},romfile={IPXE_E1000_ROM}"),
            "-fw_cfg".to_string(),
            format!("name=etc/sercon-port,file={}", sercon.display()),
            "-boot".to_string(),
            "n".to_string(),
        ];
        Qemu::launch(lab, tap, dir, &machine)
    }

    /// Boots a UEFI machine from the network with UEFI's own PXE client, as real UEFI servers
    /// do: OVMF (`-machine q35`, code read-only and a private copy of the variables) and a
    /// virtio NIC without an option ROM, on tap `tap` with MAC `mac`. OVMF writes its console
    /// to the serial port by itself. `ipv4_pxe: false` turns OVMF's IPv4 PXE off (fw_cfg
    /// `opt/org.tianocore/IPv4PXESupport`), so that it goes straight to PXE over IPv6 instead
    /// of waiting for DHCPv4 first.
    #[allow(dead_code, reason = "API for the Kindling boot tests")]
    pub(crate) fn boot_ovmf_pxe(lab: &Lab, tap: &str, mac: &str, ipv4_pxe: bool) -> Qemu {
        for file in [OVMF_CODE, OVMF_VARS] {
            assert!(
                Path::new(file).is_file(),
                "{file} is missing: install the ovmf package"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let vars = dir.path().join("OVMF_VARS.fd");
        std::fs::copy(OVMF_VARS, &vars).unwrap();
        let mut machine = vec![
            "-machine".to_string(),
            "q35".to_string(),
            "-drive".to_string(),
            format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
            "-drive".to_string(),
            format!("if=pflash,format=raw,file={}", vars.display()),
            "-device".to_string(),
            format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
        ];
        if !ipv4_pxe {
            machine.push("-fw_cfg".to_string());
            machine.push("name=opt/org.tianocore/IPv4PXESupport,string=n".to_string());
        }
        Qemu::launch(lab, tap, dir, &machine)
    }

    /// Starts a VM with the caller's machine arguments (firmware, NIC, boot order): the
    /// network backend is `-netdev tap,id=n0,...` on `tap`, so the NIC must say `netdev=n0`.
    /// Added by this function: `-accel tcg -nodefaults -display none -m 256 -no-reboot` and
    /// the serial console in a file. For example UEFI's own PXE client needs `-machine q35`,
    /// OVMF as two pflash drives and `-device virtio-net-pci,netdev=n0,mac=...,romfile=`.
    #[allow(dead_code, reason = "API for the Kindling DHCP tests")]
    pub(crate) fn start(lab: &Lab, tap: &str, machine: &[String]) -> Qemu {
        Qemu::launch(lab, tap, tempfile::tempdir().unwrap(), machine)
    }

    fn launch(lab: &Lab, tap: &str, dir: tempfile::TempDir, machine: &[String]) -> Qemu {
        let serial = dir.path().join("serial.log");
        let mut command = lab.bridge().command("qemu-system-x86_64");
        command
            .args(["-name", &format!("kindling-{}", lab.tag)])
            // KVM dies in iPXE's real mode under nested virtualisation here.
            .args(["-accel", "tcg", "-nodefaults", "-display", "none"])
            .args(["-m", "256", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
            .args(machine);
        let process = Background::spawn(&format!("QEMU on {tap}"), &mut command);
        Qemu {
            process,
            serial,
            _dir: dir,
        }
    }

    /// The serial console so far, cleaned of terminal escapes, carriage returns and
    /// backspaces.
    pub(crate) fn serial_log(&self) -> String {
        let bytes = std::fs::read(&self.serial).unwrap_or_default();
        clean_console(&String::from_utf8_lossy(&bytes))
    }

    /// Waits until the console shows `needle` (a marker from [`write_marker_script`]); fails
    /// with the tail of the console if QEMU exits or `deadline` passes (QEMU is killed).
    pub(crate) fn wait_for_serial(&mut self, needle: &str, deadline: Duration) {
        let started = Instant::now();
        loop {
            if self.serial_log().contains(needle) {
                return;
            }
            if let Some(status) = self.process.exited() {
                self.process.reported = true;
                panic!(
                    "QEMU exited ({status}) before its console showed {needle:?}\nQEMU said:\n{}\n\
                     ---- console (tail) ----\n{}",
                    self.process.log(),
                    self.serial_tail()
                );
            }
            if started.elapsed() > deadline {
                self.process.kill();
                self.process.reported = true;
                panic!(
                    "the VM's console did not show {needle:?} within {deadline:?}\nQEMU said:\n{}\n\
                     ---- console (tail) ----\n{}",
                    self.process.log(),
                    self.serial_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The settings iPXE printed through the marker script: `ip`, `netmask`, `gateway`, `dns`,
    /// `domain`, `hostname`, `dhcp-server`, `next-server`, `filename`, `platform` (`pcbios`
    /// or `efi`), `buildarch`, `mac` and `net0/ip6`; a setting iPXE does not have is an empty
    /// string.
    pub(crate) fn ipxe_info(&self) -> BTreeMap<String, String> {
        self.serial_log()
            .lines()
            .filter_map(|line| line.trim().strip_prefix("kindling-info "))
            .filter_map(|rest| rest.split_once('='))
            .map(|(name, value)| (name.to_string(), value.trim().to_string()))
            .collect()
    }

    fn serial_tail(&self) -> String {
        let log = self.serial_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.process.kill();
        if std::thread::panicking() && !self.process.reported {
            eprintln!("---- VM console (tail) ----\n{}", self.serial_tail());
        }
    }
}

/// Drops ANSI escape sequences and carriage returns, and applies backspaces.
fn clean_console(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // ESC [ parameters final-letter
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '\u{8}' => {
                if !out.ends_with('\n') {
                    out.pop();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The lab proven against dnsmasq, before Kindling serves DHCP. These also pin the dnsmasq setup
// that the proxyDHCP tests use as the network's ordinary DHCP server.

/// dnsmasq as a PXE network's DHCP and TFTP server on `lab`: addresses .100 to .200 for an
/// hour, the server as router and DNS server, domain lab.test, boot.ipxe from `tftp_root`.
fn dnsmasq_pxe_args(lab: &Lab, tftp_root: &Path) -> Vec<String> {
    let server = lab.server_ip();
    vec![
        format!(
            "--dhcp-range={},{},255.255.255.0,1h",
            lab.ip(100),
            lab.ip(200)
        ),
        format!("--dhcp-option=option:router,{server}"),
        format!("--dhcp-option=option:dns-server,{server}"),
        "--domain=lab.test".to_string(),
        "--enable-tftp".to_string(),
        format!("--tftp-root={}", tftp_root.display()),
        // iPXE (the e1000 ROM) is the first client here, so it gets the script directly.
        "--dhcp-boot=boot.ipxe".to_string(),
    ]
}

fn in_pool(lab: &Lab, address: Ipv4Addr) -> bool {
    (lab.ip(100)..=lab.ip(200)).contains(&address)
}

/// A BIOS VM with iPXE in ROM boots from dnsmasq over the lab: DHCP, TFTP of boot.ipxe, and
/// the script runs (the marker appears), with the settings DHCP gave.
#[test]
fn lab_dnsmasq_boots_qemu_ipxe() {
    require("qemu-system-x86_64");
    let started = Instant::now();
    let lab = Lab::new("dnsqemu", 20);
    let tftp = tempfile::tempdir().unwrap();
    let marker = write_marker_script(&tftp.path().join("boot.ipxe"));
    let args = dnsmasq_pxe_args(&lab, tftp.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dnsmasq = start_dnsmasq(&lab.server, &args);
    let _beacon = lab.start_ra_beacon();
    let tap = lab.add_tap("tap0");
    let mut vm = Qemu::boot_bios_ipxe(&lab, &tap, "52:54:00:99:20:10");
    let booting = Instant::now();
    vm.wait_for_serial(&marker, BOOT_DEADLINE);
    let boot = booting.elapsed();

    let info = vm.ipxe_info();
    let server = lab.server_ip().to_string();
    let ip: Ipv4Addr = info["ip"].parse().unwrap();
    assert!(in_pool(&lab, ip), "iPXE got {ip}: {info:?}");
    assert_eq!(info["netmask"], "255.255.255.0", "{info:?}");
    assert_eq!(info["gateway"], server, "{info:?}");
    assert_eq!(info["dns"], server, "{info:?}");
    assert_eq!(info["domain"], "lab.test", "{info:?}");
    assert_eq!(info["dhcp-server"], server, "{info:?}");
    assert_eq!(info["next-server"], server, "{info:?}");
    assert_eq!(info["filename"], "boot.ipxe", "{info:?}");
    assert_eq!(info["platform"], "pcbios", "{info:?}");
    assert_eq!(info["mac"], "52:54:00:99:20:10", "{info:?}");
    let log = dnsmasq.log();
    assert!(
        log.contains("user class: iPXE") && log.contains(&format!("boot.ipxe to {ip}")),
        "dnsmasq saw no iPXE client fetch boot.ipxe:\n{log}"
    );
    eprintln!(
        "lab_dnsmasq_boots_qemu_ipxe: VM at the marker {boot:?} after QEMU started, {:?} in all",
        started.elapsed()
    );
}

/// dhclient gets a lease from dnsmasq across the lab with everything a PXE client needs,
/// sending its host name; a second run confirms the same lease (INIT-REBOOT); a release
/// frees it on the server; after forgetting it, a new DISCOVER gets a lease again.
#[test]
fn lab_dnsmasq_dhclient() {
    let started = Instant::now();
    let lab = Lab::new("dnsdhcl", 21);
    let client = lab.add_client("c1", "52:54:00:99:21:10");
    let tftp = tempfile::tempdir().unwrap();
    write_marker_script(&tftp.path().join("boot.ipxe"));
    let args = dnsmasq_pxe_args(&lab, tftp.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut dnsmasq = start_dnsmasq(&lab.server, &args);
    let server = lab.server_ip();
    let options = DhclientOptions::with_hostname("node-a");

    let lease = run_dhclient(&client, &options);
    assert_eq!(lease.reason, "BOUND", "{lease:#?}");
    assert!(in_pool(&lab, lease.address), "{lease:#?}");
    assert_eq!(lease.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(lease.routers, vec![server], "{lease:#?}");
    assert_eq!(lease.dns_servers, vec![server], "{lease:#?}");
    assert_eq!(lease.domain_name.as_deref(), Some("lab.test"), "{lease:#?}");
    assert_eq!(lease.filename.as_deref(), Some("boot.ipxe"), "{lease:#?}");
    assert_eq!(lease.next_server, Some(server), "{lease:#?}");
    assert_eq!(lease.server_identifier, lab.server.ipv4, "{lease:#?}");
    assert_eq!(lease.lease_time, Some(3600), "{lease:#?}");
    assert_eq!(lease.renewal_time, Some(1800), "{lease:#?}");
    assert_eq!(lease.rebinding_time, Some(3150), "{lease:#?}");
    assert_eq!(lease.host_name.as_deref(), Some("node-a"), "{lease:#?}");
    assert_eq!(
        client.ipv4_addresses(),
        vec![format!("{}/24", lease.address)],
        "the leased address is on the client's eth0"
    );
    let leases = dnsmasq.leases();
    assert!(
        leases.contains(&format!("{} {} node-a", client.mac, lease.address)),
        "dnsmasq recorded no lease for node-a:\n{leases}"
    );
    let first = started.elapsed();

    let renewed = run_dhclient(&client, &options);
    assert_eq!(renewed.reason, "REBOOT", "{renewed:#?}");
    assert_eq!(renewed.address, lease.address);
    assert_eq!(renewed.filename.as_deref(), Some("boot.ipxe"));

    release_dhclient(&client, &options);
    dnsmasq.wait_for_log(
        &format!("DHCPRELEASE(eth0) {} {}", lease.address, client.mac),
        Duration::from_secs(5),
    );
    assert!(
        client.ipv4_addresses().is_empty(),
        "the released address is off eth0"
    );
    assert!(
        !dnsmasq.leases().contains(&client.mac),
        "dnsmasq still holds the released lease:\n{}",
        dnsmasq.leases()
    );

    forget_dhcp_lease(&client);
    let again = run_dhclient(&client, &DhclientOptions::default());
    assert_eq!(again.reason, "BOUND", "{again:#?}");
    assert!(in_pool(&lab, again.address), "{again:#?}");
    eprintln!(
        "lab_dnsmasq_dhclient: first lease after {first:?}, all four exchanges in {:?}",
        started.elapsed()
    );
}
