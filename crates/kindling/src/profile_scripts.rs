//! Hands each machine its own boot script: installs a [`Generator`] in the boot tree that
//! answers the name `boot.ipxe` gives with the machine's rendered profile, over any protocol
//! that serves the tree.
//!
//! The machine is known by the address it asks from. In server mode its lease says its MAC
//! and host name (the lease is durable before the ACK, so it is in the journal by the time
//! iPXE fetches its script); in proxy mode, where Kindling hands out no leases, the kernel's
//! IPv4 neighbour table says its MAC (it just sent us a datagram). Its reservation adds labels,
//! a host name and its UUID. iPXE is the one that fetches `boot.ipxe`, so its kind is `ipxe`;
//! its architecture is not known at this step.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use kindling_config::{Config, DhcpMode};
use kindling_dhcp::lease::{LeaseState, read_snapshot};
use kindling_files::profiles::{DONE_NAME, Facts, Profiles};
use kindling_files::{AccessError, BootTree, Client, Generator};
use tracing::{info, warn};

/// How long the lease map read from the journal is reused before it is read again.
const LEASES_MAX_AGE: Duration = Duration::from_secs(1);

/// What one lease says about a machine.
#[derive(Debug, Clone)]
struct Leased {
    mac: [u8; 6],
    hostname: Option<String>,
}

/// A reservation's facts, by MAC.
#[derive(Debug, Clone)]
struct Reserved {
    hostname: Option<String>,
    uuid: Option<[u8; 16]>,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug)]
struct ScriptGenerator {
    /// The normalised name `boot.ipxe` gives (a TFTP path in the tree).
    script: String,
    profiles: Profiles,
    /// Where the lease journal is, in server mode.
    state_dir: Option<PathBuf>,
    /// Where the installed machines are kept (`after_install`).
    install_dir: PathBuf,
    /// The HTTP service's ports for IPv4 and IPv6 clients, when it serves the tree.
    http_ports: (Option<u16>, Option<u16>),
    reservations: HashMap<[u8; 6], Reserved>,
    leases: Mutex<Option<(Instant, HashMap<IpAddr, Leased>)>>,
}

/// Installs the profile generator in `tree` for `config`, or removes it when there are no
/// profiles or `boot.ipxe` is not a path in the tree.
pub(crate) fn install(tree: &BootTree, config: &Config) {
    tree.set_generator(generator(config).map(|g| Arc::new(g) as Arc<dyn Generator>));
}

fn generator(config: &Config) -> Option<ScriptGenerator> {
    if config.profiles.is_empty() {
        return None;
    }
    let Some(script) = config.boot.ipxe.as_deref() else {
        warn!("profiles are configured but boot.ipxe is not set: no machine fetches a script");
        return None;
    };
    if kindling_dhcp::policy::BootFile::parse(script)
        != kindling_dhcp::policy::BootFile::Tftp(script.to_string())
    {
        warn!(%script, "profiles are not served: boot.ipxe is a URL, not a file in the boot tree");
        return None;
    }
    let profiles = match Profiles::compile(&config.profiles) {
        Ok(profiles) => profiles,
        Err(errors) => {
            // check-config refuses such a file; a reload of one keeps the old config.
            for error in errors {
                warn!("profiles are not served: {error}");
            }
            return None;
        }
    };
    let dhcp = config.dhcp.as_ref();
    let reservations = generator_reservations(config);
    info!(profiles = config.profiles.len(), %script, "profiles: machines fetching the iPXE script get their own");
    Some(ScriptGenerator {
        script: script.trim_start_matches('/').replace('\\', "/"),
        profiles,
        state_dir: dhcp
            .filter(|d| d.mode == DhcpMode::Server)
            .map(|_| config.state_dir.clone()),
        install_dir: config.state_dir.clone(),
        http_ports: (
            crate::serve::http_port(config, false),
            crate::serve::http_port(config, true),
        ),
        reservations,
        leases: Mutex::new(None),
    })
}

/// The reservations' facts, by MAC.
fn generator_reservations(config: &Config) -> HashMap<[u8; 6], Reserved> {
    let Some(dhcp) = &config.dhcp else {
        return HashMap::new();
    };
    dhcp.reservations
        .iter()
        .filter_map(|r| {
            let mac = kindling_dhcp::v4::server::parse_mac(r.mac.as_deref()?)?.0;
            Some((
                mac,
                Reserved {
                    hostname: r.hostname.clone(),
                    uuid: r.uuid,
                    labels: r.labels.clone(),
                },
            ))
        })
        .collect()
}

impl Generator for ScriptGenerator {
    fn generate(&self, name: &str, client: &Client) -> Option<Result<Vec<u8>, AccessError>> {
        if name == DONE_NAME {
            return Some(self.report_installed(client));
        }
        if name != self.script {
            return None;
        }
        let facts = self.facts(client.address);
        let selected = self.profiles.select(&facts)?;
        let installed = self.profiles.has_after_install(selected.index)
            && facts
                .mac
                .is_some_and(|mac| self.is_installed(mac, selected.name));
        let rendered = if installed {
            self.profiles.render_after_install(selected.index, &facts)
        } else {
            self.profiles.render(selected.index, &facts)
        };
        match rendered {
            Ok(script) => {
                info!(client = %client.address, mac = %facts.mac_text(), profile = selected.name,
                    why = %selected.why, stage = if installed { "after_install" } else { "ipxe" },
                    "profiles: rendered the boot script");
                Some(Ok(script.into_bytes()))
            }
            Err(error) => {
                warn!(client = %client.address, "profiles: {error}");
                Some(Err(AccessError::forbidden(format!(
                    "profile failed to render: {error}"
                ))))
            }
        }
    }
}

impl ScriptGenerator {
    /// A machine's installer reports it installed: from then on it gets its profile's
    /// `after_install` script.
    fn report_installed(&self, client: &Client) -> Result<Vec<u8>, AccessError> {
        let facts = self.facts(client.address);
        let Some(mac) = facts.mac else {
            warn!(client = %client.address, "profiles: an install was reported from an address Kindling cannot tie to a MAC");
            return Err(AccessError::forbidden(
                "unknown machine: its MAC is not known",
            ));
        };
        let Some(selected) = self.profiles.select(&facts) else {
            return Err(AccessError::forbidden("no profile for this machine"));
        };
        if !self.profiles.has_after_install(selected.index) {
            return Err(AccessError::forbidden(format!(
                "profile \"{}\" has no after_install script",
                selected.name
            )));
        }
        match crate::installed::record(&self.install_dir, mac, selected.name) {
            Ok(news) => {
                if news {
                    info!(client = %client.address, mac = %facts.mac_text(), profile = selected.name,
                        "profiles: install reported done; the machine gets its after_install script from now on");
                }
                Ok(b"installed\n".to_vec())
            }
            Err(error) => {
                warn!(%error, "profiles: could not record the install");
                Err(AccessError::Io(error))
            }
        }
    }

    fn is_installed(&self, mac: [u8; 6], profile: &str) -> bool {
        match crate::installed::load(&self.install_dir) {
            Ok(machines) => machines.get(&mac).is_some_and(|p| p == profile),
            Err(error) => {
                warn!(%error, "profiles: could not read the installed machines");
                false
            }
        }
    }

    fn facts(&self, address: IpAddr) -> Facts {
        let leased = self.leased(address);
        let mac = leased
            .as_ref()
            .map(|l| l.mac)
            .or_else(|| neighbour_mac(address));
        let reserved = mac.and_then(|m| self.reservations.get(&m));
        let server = local_address_towards(address);
        let http_base = server.and_then(|s| http_base(s, self.http_ports));
        Facts {
            mac,
            ip: Some(address),
            hostname: reserved
                .and_then(|r| r.hostname.clone())
                .or_else(|| leased.and_then(|l| l.hostname)),
            uuid: reserved.and_then(|r| r.uuid),
            arch: None,
            kind: Some("ipxe".into()),
            labels: reserved.map(|r| r.labels.clone()).unwrap_or_default(),
            server,
            http_base: http_base.clone(),
            done_url: server.map(|s| done_url(s, http_base.as_deref())),
        }
    }

    /// The live lease of `address`, from a map of the journal at most a second old.
    fn leased(&self, address: IpAddr) -> Option<Leased> {
        let state_dir = self.state_dir.as_ref()?;
        let mut cache = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = cache
            .as_ref()
            .is_some_and(|(read, _)| read.elapsed() < LEASES_MAX_AGE);
        if !fresh {
            let map = match read_snapshot(state_dir) {
                Ok((snapshot, _)) => lease_map(&snapshot, SystemTime::now()),
                Err(error) => {
                    warn!(%error, "profiles: could not read the lease journal");
                    HashMap::new()
                }
            };
            *cache = Some((Instant::now(), map));
        }
        cache.as_ref()?.1.get(&address).cloned()
    }
}

fn lease_map(
    snapshot: &kindling_dhcp::lease::Snapshot,
    now: SystemTime,
) -> HashMap<IpAddr, Leased> {
    let live = |state: &LeaseState, expires_at: SystemTime| {
        *state == LeaseState::Active && expires_at > now
    };
    let v4 = snapshot
        .v4
        .iter()
        .filter(|r| live(&r.state, r.expires_at))
        .map(|r| {
            (
                IpAddr::V4(r.address),
                Leased {
                    mac: r.mac.0,
                    hostname: r.hostname.clone(),
                },
            )
        });
    let v6 = snapshot
        .v6
        .iter()
        .filter(|r| live(&r.state, r.expires_at))
        .filter_map(|r| {
            Some((
                IpAddr::V6(r.address),
                Leased {
                    mac: r.mac?.0,
                    hostname: r.hostname.clone(),
                },
            ))
        });
    v4.chain(v6).collect()
}

/// `http://server:port` when HTTP serves the tree to clients of `server`'s family.
fn http_base(server: IpAddr, ports: (Option<u16>, Option<u16>)) -> Option<String> {
    match server {
        IpAddr::V4(v4) => ports.0.map(|port| format!("http://{v4}:{port}")),
        IpAddr::V6(v6) => ports.1.map(|port| format!("http://[{v6}]:{port}")),
    }
}

/// Where an installer reports done: over HTTP when it is served, else TFTP.
fn done_url(server: IpAddr, http_base: Option<&str>) -> String {
    match http_base {
        Some(base) => format!("{base}/{DONE_NAME}"),
        None => match server {
            IpAddr::V4(v4) => format!("tftp://{v4}/{DONE_NAME}"),
            IpAddr::V6(v6) => format!("tftp://[{v6}]/{DONE_NAME}"),
        },
    }
}

/// The MAC of an IPv4 neighbour, from the kernel's table (`/proc/net/arp`).
fn neighbour_mac(address: IpAddr) -> Option<[u8; 6]> {
    let IpAddr::V4(v4) = address else {
        return None;
    };
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    parse_arp_table(&table, v4)
}

fn parse_arp_table(table: &str, address: std::net::Ipv4Addr) -> Option<[u8; 6]> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (ip, mac) = (fields.first()?, fields.get(3)?);
        if ip.parse::<std::net::Ipv4Addr>().ok()? != address {
            return None;
        }
        let mac = kindling_dhcp::v4::server::parse_mac(mac)?.0;
        (mac != [0; 6]).then_some(mac)
    })
}

/// This host's address on the interface whose network holds `address`.
fn local_address_towards(address: IpAddr) -> Option<IpAddr> {
    let table = kindling_udp::netif::InterfaceTable::new();
    table.all().find_map(|interface| match address {
        IpAddr::V4(v4) => interface
            .ipv4
            .iter()
            .find(|net| net.contains(&v4))
            .map(|net| IpAddr::V4(net.addr())),
        IpAddr::V6(v6) => interface
            .ipv6
            .iter()
            .find(|net| net.contains(&v6))
            .map(|net| IpAddr::V6(net.addr())),
    })
}

/// The facts `kindling explain` renders with: the machine as the request names it, with its
/// reservation, fetching the script as iPXE.
pub(crate) fn facts_for_explain(
    config: &Config,
    mac: [u8; 6],
    ip: Option<IpAddr>,
    server: std::net::Ipv4Addr,
) -> Facts {
    let reserved = generator_reservations(config).remove(&mac);
    Facts {
        mac: Some(mac),
        ip: ip.filter(|a| !a.is_unspecified()),
        hostname: reserved.as_ref().and_then(|r| r.hostname.clone()),
        uuid: reserved.as_ref().and_then(|r| r.uuid),
        arch: None,
        kind: Some("ipxe".into()),
        labels: reserved.map(|r| r.labels).unwrap_or_default(),
        server: Some(IpAddr::V4(server)),
        http_base: http_base(
            IpAddr::V4(server),
            (crate::serve::http_port(config, false), None),
        ),
        done_url: Some(done_url(
            IpAddr::V4(server),
            http_base(
                IpAddr::V4(server),
                (crate::serve::http_port(config, false), None),
            )
            .as_deref(),
        )),
    }
}

/// What `kindling explain` says about the script an iPXE client fetching `boot.ipxe` gets.
pub(crate) fn explain(config: &Config, facts: &Facts) -> String {
    if config.profiles.is_empty() {
        return "  profile:      none configured (the file boot.ipxe names is served as it is)\n"
            .to_string();
    }
    let profiles = match Profiles::compile(&config.profiles) {
        Ok(profiles) => profiles,
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return format!(
                "  profile:      the profiles do not compile: {}\n",
                list.join("; ")
            );
        }
    };
    let Some(selected) = profiles.select(facts) else {
        return "  profile:      no profile matches and there is no default (the file boot.ipxe names is served)\n"
            .to_string();
    };
    let mut out = format!(
        "  profile:      \"{}\", {} (the script this machine gets for boot.ipxe):\n",
        selected.name, selected.why
    );
    match profiles.render(selected.index, facts) {
        Ok(script) => {
            for line in script.lines() {
                out.push_str("                ");
                out.push_str(line);
                out.push('\n');
            }
        }
        Err(error) => out.push_str(&format!("                does not render: {error}\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn the_arp_table_gives_the_mac_of_a_complete_entry_only() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.99.0.100      0x1         0x2         52:54:00:ab:cd:ef     *        eth0\n\
                     10.99.0.101      0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert_eq!(
            parse_arp_table(table, Ipv4Addr::new(10, 99, 0, 100)),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef])
        );
        assert_eq!(parse_arp_table(table, Ipv4Addr::new(10, 99, 0, 101)), None);
        assert_eq!(parse_arp_table(table, Ipv4Addr::new(10, 99, 0, 102)), None);
    }
}
