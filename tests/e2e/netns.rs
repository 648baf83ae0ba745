//! Network namespaces and veth links that a test makes for itself and removes when it ends,
//! panicking or not.
//!
//! Every name carries the test's short tag and this process's id, so tests running in parallel
//! (and a second `cargo test` at the same time) never touch each other's namespaces, and a
//! leftover from a killed run with the same name is removed before it is reused. The veth ends
//! are created directly inside their namespaces, so nothing is ever added to the host's own
//! network namespace; deleting a namespace destroys the veth end inside it and with it the peer.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Once;
use std::time::Duration;

use crate::tools::{require, run};

const IP_DEADLINE: Duration = Duration::from_secs(20);

/// The longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// Runs `ip ARGS`, returning its output whatever the exit status.
fn ip_output(args: &[&str]) -> Output {
    require("ip");
    run(Command::new("ip").args(args), IP_DEADLINE)
}

/// Runs `ip ARGS` and panics with its stderr when it fails.
fn ip(args: &[&str]) {
    let output = ip_output(args);
    assert!(
        output.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A named network namespace with loopback up; deleted on drop.
///
/// Drop it after every process started inside it has exited (declare it before the daemon
/// that runs in it, so that the daemon is dropped first): a namespace stays alive as long as
/// a process is in it.
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    /// Creates `kindling-TAG-PID-ROLE`, removing a leftover of the same name first. The first
    /// call in a process also removes what killed runs left behind (see
    /// [`remove_stale_namespaces`]).
    pub(crate) fn new(tag: &str, role: &str) -> Netns {
        require("ip");
        static SWEEP: Once = Once::new();
        SWEEP.call_once(remove_stale_namespaces);
        let name = format!("kindling-{tag}-{}-{role}", std::process::id());
        // A leftover from an earlier, killed run of a process with the same id.
        let _ = ip_output(&["netns", "delete", &name]);
        ip(&["netns", "add", &name]);
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME`, to put in front of a command that should run inside.
    pub(crate) fn exec_prefix(&self) -> Vec<String> {
        vec![
            "ip".to_string(),
            "netns".to_string(),
            "exec".to_string(),
            self.name.clone(),
        ]
    }

    /// A command that runs `program` inside the namespace.
    pub(crate) fn command(&self, program: &str) -> Command {
        require("ip");
        require(program);
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `ip -n NAME ARGS`, panicking when it fails.
    pub(crate) fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let output = ip_output_quiet(&["netns", "delete", &self.name]);
        if !output.is_some_and(|output| output.status.success()) {
            eprintln!("warning: could not delete network namespace {}", self.name);
        }
    }
}

/// Like [`ip_output`] but never panics (for Drop, which may run while a test is panicking).
fn ip_output_quiet(args: &[&str]) -> Option<Output> {
    Command::new("ip").args(args).output().ok()
}

/// Deletes the namespaces that a killed test run left behind: those named
/// `kindling-TAG-PID-ROLE` by [`Netns::new`] whose process no longer exists and that no process
/// is inside. A namespace of a run still going (its process exists) is never touched.
fn remove_stale_namespaces() {
    let Some(list) = ip_output_quiet(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        // "NAME" or "NAME (id: 3)".
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("kindling-")
            .and_then(|rest| rest.split('-').nth(1))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let empty = ip_output_quiet(&["netns", "pids", name]).is_some_and(|output| {
            output.status.success() && String::from_utf8_lossy(&output.stdout).trim().is_empty()
        });
        if empty {
            eprintln!("removing network namespace {name}, left behind by a killed test run");
            let _ = ip_output_quiet(&["netns", "delete", name]);
        }
    }
}

/// Two namespaces, `server` and `client`, joined by a veth pair that is up at both ends.
///
/// Fields are dropped in order: the link first, then both namespaces.
pub(crate) struct VethPair {
    /// The veth end inside `server`.
    pub(crate) server_if: String,
    /// The veth end inside `client`.
    pub(crate) client_if: String,
    pub(crate) server: Netns,
    pub(crate) client: Netns,
}

impl VethPair {
    /// `tag` is a short name for the test (at most 5 characters, so that the interface
    /// names stay within 15 characters with the process id in them).
    pub(crate) fn new(tag: &str, mtu: u32) -> VethPair {
        let pid = std::process::id();
        let server_if = format!("k{tag}{pid}s");
        let client_if = format!("k{tag}{pid}c");
        assert!(
            server_if.len() <= IFNAME_MAX,
            "interface name {server_if} is longer than {IFNAME_MAX} characters: shorten the tag"
        );
        // Leftovers in the host namespace (only possible if an older run made them there).
        for name in [&server_if, &client_if] {
            let _ = ip_output(&["link", "delete", name]);
        }
        let server = Netns::new(tag, "s");
        let client = Netns::new(tag, "c");
        // Both ends are born inside their namespaces.
        server.ip(&[
            "link",
            "add",
            &server_if,
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "netns",
            client.name(),
        ]);
        let pair = VethPair {
            server_if,
            client_if,
            server,
            client,
        };
        pair.set_mtu(mtu);
        pair.server.ip(&["link", "set", &pair.server_if, "up"]);
        pair.client.ip(&["link", "set", &pair.client_if, "up"]);
        pair
    }

    /// Sets the MTU of both ends.
    pub(crate) fn set_mtu(&self, mtu: u32) {
        let mtu = mtu.to_string();
        self.server
            .ip(&["link", "set", &self.server_if, "mtu", &mtu]);
        self.client
            .ip(&["link", "set", &self.client_if, "mtu", &mtu]);
    }

    /// Adds `cidr` (such as `10.99.1.1/24` or `fd00:99:1::1/64`) to the server's end. IPv6
    /// addresses skip duplicate address detection, so they are usable at once.
    pub(crate) fn add_server_addr(&self, cidr: &str) {
        add_addr(&self.server, &self.server_if, cidr);
    }

    /// Adds `cidr` to the client's end (see [`VethPair::add_server_addr`]).
    pub(crate) fn add_client_addr(&self, cidr: &str) {
        add_addr(&self.client, &self.client_if, cidr);
    }
}

/// Adds `cidr` to `interface` inside `netns`; only the tests' private ranges (10.99.0.0/16,
/// fd00:99::/32) are accepted, and IPv6 addresses skip duplicate address detection.
pub(crate) fn add_addr(netns: &Netns, interface: &str, cidr: &str) {
    assert!(
        cidr.starts_with("10.99.") || cidr.starts_with("fd00:99:"),
        "tests use only 10.99.0.0/16 and fd00:99::/32 addresses, not {cidr}"
    );
    if cidr.contains(':') {
        netns.ip(&["addr", "add", cidr, "dev", interface, "nodad"]);
    } else {
        netns.ip(&["addr", "add", cidr, "dev", interface]);
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end removes the pair; the namespaces go when their fields drop.
        let _ = ip_output_quiet(&["-n", self.server.name(), "link", "delete", &self.server_if]);
    }
}
