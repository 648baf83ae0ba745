//! The bridge between the DHCP service's lease events and the DNS service's names. Neither
//! service crate knows the other: this module turns kindling-dhcp's lease records and events
//! into kindling-dns's `NameChange`s.
//!
//! It remembers which name it told DNS about for each MAC, so that a lost stretch of events
//! (the broadcast channel lagging behind a flood of grants) is repaired by comparing that
//! memory with the lease journal on disk, and nothing is left behind or missing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use kindling_dhcp::event::{Family, LeaseEvent};
use kindling_dhcp::lease::{LeaseState, Snapshot, read_snapshot};
use kindling_dns::{DnsHandle, LeaseName, NameChange, ReservedName};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The names of the leases in `leases` that are live at `now` and carry a hostname, both
/// families. A v6 lease names a machine only when Kindling learned its MAC (DNS keys names by
/// machine); without a name of its own it takes the name of the machine's v4 lease.
pub(crate) fn live_names(leases: &Snapshot, now: SystemTime) -> Vec<LeaseName> {
    let live = |state: &LeaseState, expires_at: SystemTime| {
        *state == LeaseState::Active && expires_at > now
    };
    let v4 = leases
        .v4
        .iter()
        .filter(|r| live(&r.state, r.expires_at))
        .filter_map(|r| {
            Some(LeaseName {
                mac: r.mac.0,
                address: IpAddr::V4(r.address),
                hostname: r.hostname.clone()?,
            })
        });
    let v4: Vec<LeaseName> = v4.collect();
    // A v6 lease without a name takes the name of the same machine's v4 lease.
    let v4_name = |mac: [u8; 6]| v4.iter().find(|n| n.mac == mac).map(|n| n.hostname.clone());
    let v6: Vec<LeaseName> = leases
        .v6
        .iter()
        .filter(|r| live(&r.state, r.expires_at))
        .filter_map(|r| {
            let mac = r.mac?.0;
            Some(LeaseName {
                mac,
                address: IpAddr::V6(r.address),
                hostname: r.hostname.clone().or_else(|| v4_name(mac))?,
            })
        })
        .collect();
    v4.into_iter().chain(v6).collect()
}

/// The hostnames of `dhcp.reservations`, each owned by its MAC.
pub(crate) fn reserved_names(config: &kindling_config::Config) -> Vec<ReservedName> {
    let Some(dhcp) = &config.dhcp else {
        return Vec::new();
    };
    dhcp.reservations
        .iter()
        .filter(|r| !r.ignore)
        .filter_map(|r| {
            Some(ReservedName {
                hostname: r.hostname.clone()?,
                mac: kindling_dhcp::v4::server::parse_mac(r.mac.as_deref()?)?.0,
            })
        })
        .collect()
}

/// A machine's lease of one family: the key of what DNS was told. A machine with a v4 and a
/// v6 lease has two, so the end of one never takes the other's address out of DNS.
type LeaseKey = ([u8; 6], Family);

fn key_of(name: &LeaseName) -> LeaseKey {
    (name.mac, Family::of(name.address))
}

/// What DNS was told, per machine and family: the address and name it holds.
#[derive(Debug, Default)]
pub(crate) struct NameBridge {
    told: HashMap<LeaseKey, (IpAddr, String)>,
}

impl NameBridge {
    /// A bridge that knows DNS was started with `initial`.
    pub(crate) fn new(initial: &[LeaseName]) -> NameBridge {
        NameBridge {
            told: initial
                .iter()
                .map(|n| (key_of(n), (n.address, n.hostname.clone())))
                .collect(),
        }
    }

    /// The changes one lease event makes. A v6 lease that carries no name (a DHCPv6 client
    /// need not send option 39) takes the name of the same machine's v4 lease.
    pub(crate) fn on_event(&mut self, event: &LeaseEvent) -> Vec<NameChange> {
        let hostname = event.hostname.clone().or_else(|| {
            (event.family() == Family::V6)
                .then(|| self.told.get(&(event.mac.0, Family::V4)))
                .flatten()
                .map(|(_, name)| name.clone())
        });
        match (&hostname, event.kind.holds_address()) {
            (Some(hostname), true) => {
                let name = LeaseName {
                    mac: event.mac.0,
                    address: event.address,
                    hostname: hostname.clone(),
                };
                self.up(name)
            }
            // A lease without a name, or one that ended: whatever name it had goes.
            _ => self.down((event.mac.0, event.family()), Some(event.address)),
        }
    }

    /// The changes that bring DNS from what it was told to `live` (the leases on disk).
    pub(crate) fn resync(&mut self, live: Vec<LeaseName>) -> Vec<NameChange> {
        let mut changes = Vec::new();
        let live_keys: std::collections::HashSet<LeaseKey> = live.iter().map(key_of).collect();
        let gone: Vec<LeaseKey> = self
            .told
            .keys()
            .filter(|key| !live_keys.contains(*key))
            .copied()
            .collect();
        for key in gone {
            changes.extend(self.down(key, None));
        }
        for name in live {
            changes.extend(self.up(name));
        }
        changes
    }

    fn up(&mut self, name: LeaseName) -> Vec<NameChange> {
        let key = key_of(&name);
        let current = (name.address, name.hostname.clone());
        if self.told.get(&key) == Some(&current) {
            return Vec::new();
        }
        self.told.insert(key, current);
        vec![NameChange::Up(name)]
    }

    fn down(&mut self, key: LeaseKey, address: Option<IpAddr>) -> Vec<NameChange> {
        match self.told.get(&key) {
            // A release of an address the lease no longer holds (it moved) leaves the new name.
            Some((told, _)) if address.is_some_and(|a| a != *told) => Vec::new(),
            Some(&(told, _)) => {
                self.told.remove(&key);
                vec![NameChange::Down {
                    mac: key.0,
                    address: told,
                }]
            }
            None => Vec::new(),
        }
    }
}

/// Forwards lease events to DNS until `shutdown` (or until the DHCP service goes away), then
/// hands back what DNS was told. When the channel lags (events were dropped), DNS is brought
/// in line with the lease journal in `state_dir`.
pub(crate) async fn forward(
    mut events: broadcast::Receiver<LeaseEvent>,
    dns: DnsHandle,
    mut bridge: NameBridge,
    state_dir: PathBuf,
    shutdown: CancellationToken,
) -> NameBridge {
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return bridge,
            received = events.recv() => received,
        };
        let changes = match received {
            Ok(event) => bridge.on_event(&event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "dns: fell behind the DHCP lease events; re-reading the lease journal"
                );
                match read_snapshot(&state_dir) {
                    Ok((records, _)) => bridge.resync(live_names(&records, SystemTime::now())),
                    Err(error) => {
                        warn!(%error, "dns: could not read the lease journal; names may be stale until the next lease event");
                        Vec::new()
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return bridge,
        };
        for change in changes {
            debug!(?change, "dns: lease name change");
            dns.apply(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use kindling_dhcp::event::LeaseEventKind;
    use kindling_dhcp::lease::MacAddr;

    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];

    fn event(kind: LeaseEventKind, last: u8, hostname: Option<&str>) -> LeaseEvent {
        LeaseEvent {
            kind,
            mac: MacAddr(MAC),
            address: addr(last),
            hostname: hostname.map(str::to_string),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
        }
    }

    fn addr(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 99, 0, last))
    }

    #[test]
    fn grants_renewals_and_releases_become_name_changes() {
        let mut bridge = NameBridge::default();
        let up = bridge.on_event(&event(LeaseEventKind::Granted, 100, Some("web")));
        assert!(
            matches!(&up[..], [NameChange::Up(n)] if n.hostname == "web" && n.address == addr(100))
        );
        // A renewal that changes nothing tells DNS nothing.
        assert!(
            bridge
                .on_event(&event(LeaseEventKind::Renewed, 100, Some("web")))
                .is_empty()
        );
        // A lease without a name: nothing to publish.
        let mut other = NameBridge::default();
        assert!(
            other
                .on_event(&event(LeaseEventKind::Granted, 101, None))
                .is_empty()
        );
        // A renamed client republishes.
        assert_eq!(
            bridge
                .on_event(&event(LeaseEventKind::Renewed, 100, Some("db")))
                .len(),
            1
        );
        let down = bridge.on_event(&event(LeaseEventKind::Released, 100, Some("db")));
        assert!(
            matches!(&down[..], [NameChange::Down { mac, address }] if *mac == MAC && *address == addr(100))
        );
        assert!(
            bridge
                .on_event(&event(LeaseEventKind::Expired, 100, None))
                .is_empty()
        );
    }

    #[test]
    fn the_end_of_an_old_address_leaves_the_new_name() {
        let mut bridge = NameBridge::default();
        bridge.on_event(&event(LeaseEventKind::Granted, 100, Some("web")));
        bridge.on_event(&event(LeaseEventKind::Granted, 105, Some("web")));
        assert!(
            bridge
                .on_event(&event(LeaseEventKind::Expired, 100, Some("web")))
                .is_empty()
        );
        let down = bridge.on_event(&event(LeaseEventKind::Expired, 105, Some("web")));
        assert_eq!(down.len(), 1);
    }

    #[test]
    fn resync_removes_what_is_gone_and_adds_what_is_missing() {
        let other = [0x52, 0x54, 0, 0, 0, 2];
        let mut bridge = NameBridge::new(&[
            LeaseName {
                mac: MAC,
                address: addr(100),
                hostname: "web".into(),
            },
            LeaseName {
                mac: other,
                address: addr(101),
                hostname: "db".into(),
            },
        ]);
        let changes = bridge.resync(vec![
            LeaseName {
                mac: MAC,
                address: addr(100),
                hostname: "web".into(),
            },
            LeaseName {
                mac: [0x52, 0x54, 0, 0, 0, 3],
                address: addr(102),
                hostname: "new".into(),
            },
        ]);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, NameChange::Down { mac, .. } if *mac == other))
        );
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, NameChange::Up(n) if n.hostname == "new"))
        );
    }

    fn v6_event(kind: LeaseEventKind, hostname: Option<&str>) -> LeaseEvent {
        LeaseEvent {
            address: v6_addr(),
            ..event(kind, 0, hostname)
        }
    }

    fn v6_addr() -> IpAddr {
        IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x100))
    }

    #[test]
    fn a_machine_keeps_its_v4_name_when_its_v6_lease_ends_and_the_other_way_round() {
        let mut bridge = NameBridge::default();
        bridge.on_event(&event(LeaseEventKind::Granted, 100, Some("web")));
        let v6_up = bridge.on_event(&v6_event(LeaseEventKind::Granted, Some("web")));
        assert!(
            matches!(&v6_up[..], [NameChange::Up(n)] if n.address == v6_addr()),
            "the v6 lease is told to DNS beside the v4 one: {v6_up:?}"
        );
        // The v4 lease's renewal is still a no-op: the v6 grant did not overwrite it.
        assert!(
            bridge
                .on_event(&event(LeaseEventKind::Renewed, 100, Some("web")))
                .is_empty()
        );
        let v6_down = bridge.on_event(&v6_event(LeaseEventKind::Released, Some("web")));
        assert!(
            matches!(&v6_down[..], [NameChange::Down { address, .. }] if *address == v6_addr()),
            "only the v6 address goes: {v6_down:?}"
        );
        bridge.on_event(&v6_event(LeaseEventKind::Granted, Some("web")));
        let v4_down = bridge.on_event(&event(LeaseEventKind::Expired, 100, Some("web")));
        assert!(
            matches!(&v4_down[..], [NameChange::Down { address, .. }] if *address == addr(100)),
            "only the v4 address goes: {v4_down:?}"
        );
        // A resync from a journal that holds only the v6 lease keeps it and adds nothing.
        assert!(
            bridge
                .resync(vec![LeaseName {
                    mac: MAC,
                    address: v6_addr(),
                    hostname: "web".into(),
                }])
                .is_empty()
        );
    }

    #[test]
    fn a_v6_lease_without_a_name_takes_the_name_of_the_machines_v4_lease() {
        let mut bridge = NameBridge::default();
        bridge.on_event(&event(LeaseEventKind::Granted, 100, Some("web")));
        let up = bridge.on_event(&v6_event(LeaseEventKind::Granted, None));
        assert!(
            matches!(&up[..], [NameChange::Up(n)] if n.hostname == "web" && n.address == v6_addr()),
            "{up:?}"
        );
        // A machine with no v4 name gets none for its nameless v6 lease.
        let mut other = NameBridge::default();
        assert!(
            other
                .on_event(&v6_event(LeaseEventKind::Granted, None))
                .is_empty()
        );
        // The same rule when DNS is rebuilt from the journal.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let v4 = kindling_dhcp::lease::LeaseRecord {
            mac: MacAddr(MAC),
            client_id: None,
            address: Ipv4Addr::new(10, 99, 0, 100),
            hostname: Some("web".into()),
            state: LeaseState::Active,
            granted_at: t,
            expires_at: t + Duration::from_secs(3600),
        };
        let v6 = kindling_dhcp::lease::Lease6Record {
            duid: vec![0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 1],
            iaid: 1,
            mac: Some(MacAddr(MAC)),
            address: std::net::Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x100),
            hostname: None,
            state: LeaseState::Active,
            granted_at: t,
            expires_at: t + Duration::from_secs(3600),
        };
        let names = live_names(
            &Snapshot {
                v4: vec![v4],
                v6: vec![v6],
            },
            t,
        );
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.hostname == "web"), "{names:?}");
    }
}
