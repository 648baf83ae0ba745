//! The host's interfaces and their IPv4 addresses, by index (what a datagram's IP_PKTINFO
//! names), refreshed when an unknown index shows up or the table is old.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::{InterfaceFlags, if_nametoindex};

use crate::v4::server::Interface;

/// How old the table may get before a datagram triggers a refresh (addresses added after
/// start, DHCP-configured uplinks).
const MAX_AGE: Duration = Duration::from_secs(5);

/// One interface as the service sees it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) interface: Interface,
    pub(crate) loopback: bool,
}

#[derive(Debug)]
pub(crate) struct InterfaceTable {
    by_index: HashMap<u32, Entry>,
    loaded_at: Option<Instant>,
}

impl InterfaceTable {
    pub(crate) fn new() -> InterfaceTable {
        let mut table = InterfaceTable {
            by_index: HashMap::new(),
            loaded_at: None,
        };
        table.refresh();
        table
    }

    /// Re-reads the interfaces. A failure keeps the old table (and is logged).
    pub(crate) fn refresh(&mut self) {
        self.loaded_at = Some(Instant::now());
        let addresses = match getifaddrs() {
            Ok(addresses) => addresses,
            Err(error) => {
                tracing::warn!(%error, "dhcp: could not list the network interfaces");
                return;
            }
        };
        let mut by_index: HashMap<u32, Entry> = HashMap::new();
        for address in addresses {
            let Ok(index) = if_nametoindex(address.interface_name.as_str()) else {
                continue;
            };
            let entry = by_index.entry(index).or_insert_with(|| Entry {
                interface: Interface {
                    index,
                    name: address.interface_name.clone(),
                    addresses: Vec::new(),
                },
                loopback: address.flags.contains(InterfaceFlags::IFF_LOOPBACK),
            });
            let ip = address
                .address
                .as_ref()
                .and_then(|a| a.as_sockaddr_in())
                .map(|a| a.ip());
            let mask = address
                .netmask
                .as_ref()
                .and_then(|a| a.as_sockaddr_in())
                .map(|a| a.ip());
            if let (Some(ip), Some(mask)) = (ip, mask) {
                let prefix = u32::from(mask).leading_ones();
                if let Ok(net) = Ipv4Net::new(ip, u8::try_from(prefix).unwrap_or(32)) {
                    entry.interface.addresses.push(net);
                }
            }
        }
        self.by_index = by_index;
    }

    /// The interface with this index, refreshing the table first when needed.
    pub(crate) fn get(&mut self, index: u32) -> Option<&Entry> {
        let stale = self.loaded_at.is_none_or(|at| at.elapsed() > MAX_AGE);
        if stale || !self.by_index.contains_key(&index) {
            self.refresh();
        }
        self.by_index.get(&index)
    }

    /// Every interface.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Entry> {
        self.by_index.values()
    }
}
