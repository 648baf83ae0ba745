//! The host's interfaces by index (what a datagram's packet info names): their IPv4 addresses,
//! their link-local IPv6 address and their MAC, refreshed when an unknown index shows up or the
//! table is old.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ipnet::{Ipv4Net, Ipv6Net};
use nix::ifaddrs::getifaddrs;
use nix::net::if_::{InterfaceFlags, if_nametoindex};

/// How old the table may get before a lookup triggers a refresh (addresses added after start,
/// DHCP-configured uplinks).
const MAX_AGE: Duration = Duration::from_secs(5);

/// One interface of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetInterface {
    pub index: u32,
    pub name: String,
    pub loopback: bool,
    /// Its IPv4 addresses with their prefixes, in the order the kernel lists them.
    pub ipv4: Vec<Ipv4Net>,
    /// Its first link-local IPv6 address (fe80::/10), the source of anything sent to the link
    /// on IPv6 (RFC 4861 wants router advertisements from one).
    pub ipv6_link_local: Option<Ipv6Addr>,
    /// Its hardware address, when it has an Ethernet-style one.
    pub mac: Option<[u8; 6]>,
    /// Its global and unique-local IPv6 addresses with their prefixes (no link-local ones).
    pub ipv6: Vec<Ipv6Net>,
}

/// The interface table, re-read from the kernel (getifaddrs) when it is asked about an index
/// it does not know or when it is older than a few seconds.
#[derive(Debug)]
pub struct InterfaceTable {
    by_index: HashMap<u32, NetInterface>,
    loaded_at: Option<Instant>,
}

impl Default for InterfaceTable {
    fn default() -> Self {
        InterfaceTable::new()
    }
}

impl InterfaceTable {
    /// Reads the table now.
    pub fn new() -> InterfaceTable {
        let mut table = InterfaceTable {
            by_index: HashMap::new(),
            loaded_at: None,
        };
        table.refresh();
        table
    }

    /// Re-reads the interfaces. A failure keeps the old table (and is logged).
    pub fn refresh(&mut self) {
        self.loaded_at = Some(Instant::now());
        match read_interfaces() {
            Ok(by_index) => self.by_index = by_index,
            Err(error) => {
                tracing::warn!(%error, "could not list the network interfaces");
            }
        }
    }

    /// The interface with this index, refreshing the table first when needed.
    pub fn get(&mut self, index: u32) -> Option<&NetInterface> {
        let stale = self.loaded_at.is_none_or(|at| at.elapsed() > MAX_AGE);
        if stale || !self.by_index.contains_key(&index) {
            self.refresh();
        }
        self.by_index.get(&index)
    }

    /// Every interface.
    pub fn all(&self) -> impl Iterator<Item = &NetInterface> {
        self.by_index.values()
    }
}

fn read_interfaces() -> nix::Result<HashMap<u32, NetInterface>> {
    let mut by_index: HashMap<u32, NetInterface> = HashMap::new();
    for address in getifaddrs()? {
        let Ok(index) = if_nametoindex(address.interface_name.as_str()) else {
            continue;
        };
        let entry = by_index.entry(index).or_insert_with(|| NetInterface {
            index,
            name: address.interface_name.clone(),
            loopback: address.flags.contains(InterfaceFlags::IFF_LOOPBACK),
            ipv4: Vec::new(),
            ipv6_link_local: None,
            mac: None,
            ipv6: Vec::new(),
        });
        let Some(storage) = address.address.as_ref() else {
            continue;
        };
        if let Some(v4) = storage.as_sockaddr_in() {
            let mask = address
                .netmask
                .as_ref()
                .and_then(|a| a.as_sockaddr_in())
                .map(|a| a.ip());
            if let Some(mask) = mask {
                let prefix = u32::from(mask).leading_ones();
                if let Ok(net) = Ipv4Net::new(v4.ip(), u8::try_from(prefix).unwrap_or(32)) {
                    entry.ipv4.push(net);
                }
            }
        } else if let Some(v6) = storage.as_sockaddr_in6() {
            if is_unicast_link_local(&v6.ip()) {
                if entry.ipv6_link_local.is_none() {
                    entry.ipv6_link_local = Some(v6.ip());
                }
            } else if !v6.ip().is_loopback() && !v6.ip().is_multicast() {
                let prefix = address
                    .netmask
                    .as_ref()
                    .and_then(|a| a.as_sockaddr_in6())
                    .map_or(128, |mask| u128::from(mask.ip()).leading_ones());
                if let Ok(net) = Ipv6Net::new(v6.ip(), u8::try_from(prefix).unwrap_or(128)) {
                    entry.ipv6.push(net);
                }
            }
        } else if let Some(link) = storage.as_link_addr()
            && let Some(mac) = link.addr()
            && mac != [0; 6]
        {
            entry.mac = Some(mac);
        }
    }
    Ok(by_index)
}

/// fe80::/10.
pub fn is_unicast_link_local(address: &Ipv6Addr) -> bool {
    (address.segments()[0] & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

    use super::*;

    #[test]
    fn loopback_is_listed_with_its_address_and_no_mac() {
        let mut table = InterfaceTable::new();
        let index = if_nametoindex("lo").unwrap();
        let lo = table.get(index).unwrap().clone();
        assert_eq!(lo.name, "lo");
        assert!(lo.loopback);
        assert!(lo.ipv4.contains(&"127.0.0.1/8".parse().unwrap()));
        assert_eq!(lo.mac, None);
        // ::1 is not link-local.
        assert_eq!(lo.ipv6_link_local, None);
    }

    #[test]
    fn link_local_is_fe80_slash_10() {
        assert!(is_unicast_link_local(&"fe80::1".parse().unwrap()));
        assert!(is_unicast_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_unicast_link_local(&"fec0::1".parse().unwrap()));
        assert!(!is_unicast_link_local(&"::".parse().unwrap()));
    }
}
