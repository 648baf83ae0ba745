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
    /// Its global and unique-local IPv6 addresses with their prefixes (no link-local ones), the
    /// most dependable first: configured (permanent) addresses, then those with a lifetime
    /// (SLAAC, DHCPv6), then privacy (temporary) addresses, then deprecated ones, then those
    /// still in or failed at duplicate address detection; in the kernel's order within each
    /// kind. The kernel itself lists the newest first, so without this a SLAAC address picked
    /// up from some router's advertisement would come before the address the operator
    /// configured. Where the flags cannot be read (no /proc/net/if_inet6), the kernel's order.
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

/// Address flags from linux/if_addr.h, as /proc/net/if_inet6 prints them (the low 8 bits).
const IFA_F_TEMPORARY: u8 = 0x01;
const IFA_F_DADFAILED: u8 = 0x08;
const IFA_F_DEPRECATED: u8 = 0x20;
const IFA_F_TENTATIVE: u8 = 0x40;
const IFA_F_PERMANENT: u8 = 0x80;

/// How far an IPv6 address with these flags can be counted on: 0 is best. See
/// [`NetInterface::ipv6`].
fn unreliability(flags: u8) -> u8 {
    if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0 {
        4
    } else if flags & IFA_F_DEPRECATED != 0 {
        3
    } else if flags & IFA_F_TEMPORARY != 0 {
        2
    } else if flags & IFA_F_PERMANENT == 0 {
        1
    } else {
        0
    }
}

/// The flags of every IPv6 address in the text of /proc/net/if_inet6, by interface index and
/// address. Lines it cannot read are skipped.
fn parse_if_inet6(text: &str) -> HashMap<(u32, Ipv6Addr), u8> {
    text.lines()
        .filter_map(|line| {
            // "fd000099000000000000000000000001 02 40 00 80     eth0"
            let mut fields = line.split_whitespace();
            let address = u128::from_str_radix(fields.next()?, 16).ok()?;
            let index = u32::from_str_radix(fields.next()?, 16).ok()?;
            let _prefix = fields.next()?;
            let _scope = fields.next()?;
            let flags = u8::from_str_radix(fields.next()?, 16).ok()?;
            Some(((index, Ipv6Addr::from(address)), flags))
        })
        .collect()
}

/// Orders `addresses` of interface `index` most dependable first (a stable sort: the kernel's
/// order stays within each kind); addresses without flags count as configured ones.
fn order_by_reliability(
    index: u32,
    addresses: &mut [Ipv6Net],
    flags: &HashMap<(u32, Ipv6Addr), u8>,
) {
    addresses.sort_by_key(|net| {
        flags
            .get(&(index, net.addr()))
            .map_or(0, |f| unreliability(*f))
    });
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
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        let flags = parse_if_inet6(&text);
        for entry in by_index.values_mut() {
            order_by_reliability(entry.index, &mut entry.ipv6, &flags);
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

    /// What the boot lab showed: the server's configured ULA (permanent) listed after a SLAAC
    /// address another router's RA gave it, because the kernel lists the newest first.
    #[test]
    fn configured_addresses_come_before_slaac_privacy_deprecated_and_tentative_ones() {
        let text = "\
fd0000990000000000000afffe635001 02 40 00 00     eth0
fd000099000000000000000000000005 02 40 00 40     eth0
fd000099000000000000000000000004 02 40 00 20     eth0
fd000099000000000000000000000003 02 40 00 01     eth0
fd000099000000000000000000000001 02 40 00 82     eth0
fd000099000000000000000000000002 02 40 00 80     eth0
20010db8000000000000000000000001 03 40 00 80     eth1
not a line
00000000000000000000000000000001 01 80 10 80       lo
";
        let flags = parse_if_inet6(text);
        assert_eq!(flags.len(), 8);
        let net = |a: &str| Ipv6Net::new(a.parse().unwrap(), 64).unwrap();
        let mut addresses = vec![
            net("fd00:99::aff:fe63:5001"),
            net("fd00:99::5"),
            net("fd00:99::4"),
            net("fd00:99::3"),
            net("fd00:99::1"),
            net("fd00:99::2"),
            net("fd00:99::99"),
        ];
        order_by_reliability(2, &mut addresses, &flags);
        let order: Vec<String> = addresses.iter().map(|n| n.addr().to_string()).collect();
        assert_eq!(
            order,
            [
                // Configured (permanent, with or without nodad) and unknown ones, in the
                // kernel's order; then SLAAC, privacy, deprecated, tentative.
                "fd00:99::1",
                "fd00:99::2",
                "fd00:99::99",
                "fd00:99::aff:fe63:5001",
                "fd00:99::3",
                "fd00:99::4",
                "fd00:99::5",
            ]
        );
        // The flags belong to an interface: eth1's address does not rank eth0's.
        assert_eq!(flags.get(&(3, "2001:db8::1".parse().unwrap())), Some(&0x80));
        assert_eq!(flags.get(&(2, "2001:db8::1".parse().unwrap())), None);
    }

    #[test]
    fn link_local_is_fe80_slash_10() {
        assert!(is_unicast_link_local(&"fe80::1".parse().unwrap()));
        assert!(is_unicast_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_unicast_link_local(&"fec0::1".parse().unwrap()));
        assert!(!is_unicast_link_local(&"::".parse().unwrap()));
    }
}
