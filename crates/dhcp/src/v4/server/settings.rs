//! The server's view of the config: `dhcp` and `boot` compiled into lookups the core uses per
//! packet (IPv4 subnets as integer ranges, reservations by MAC and client identifier, options
//! merged per scope).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use kindling_config::{BootConfig, DhcpConfig, DhcpMode, DhcpOptionValue};

use crate::identity::SystemUuid;
use crate::lease::MacAddr;
use crate::policy::VendorClasses;

/// What the core needs to know beyond the `dhcp` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// DNS is served by this box: subnets without `dns` get the server's own address, and
    /// without `domain` get this one.
    pub dns_domain: Option<String>,
}

/// One IPv4 subnet to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Position in `dhcp.subnets`, for log lines.
    pub index: usize,
    pub network: Ipv4Net,
    /// First and last address of the range, inclusive.
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    /// `None`: this box when DNS is enabled (see [`Environment`]), else no option 6.
    pub dns: Option<Vec<Ipv4Addr>>,
    pub domain: Option<String>,
    pub lease_time: Duration,
    pub known_clients_only: bool,
    pub options: Vec<DhcpOptionValue>,
}

impl Subnet {
    /// True when `address` is inside the range handed out dynamically.
    pub fn in_range(&self, address: Ipv4Addr) -> bool {
        self.first <= address && address <= self.last
    }

    /// The addresses of the range, in order.
    pub fn range(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }

    /// The number of addresses in the range.
    pub fn range_len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// How the config names this subnet, for messages.
    pub fn name(&self) -> super::SubnetName {
        super::SubnetName {
            index: self.index,
            network: self.network,
        }
    }
}

/// A reservation from `dhcp.reservations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its position in `dhcp.reservations`.
    pub index: usize,
    pub mac: Option<MacAddr>,
    pub client_id: Option<Vec<u8>>,
    /// Matched against option 97.
    pub uuid: Option<SystemUuid>,
    pub address: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub boot: BootConfig,
    pub ignore: bool,
    pub options: Vec<DhcpOptionValue>,
}

/// A client class (`dhcp.classes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub name: String,
    pub vendor_class: Vec<u8>,
    pub options: Vec<DhcpOptionValue>,
}

/// How the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMode {
    /// A full DHCP server.
    Server,
    /// proxyDHCP: boot information for PXE clients only, no addresses.
    Proxy,
}

/// Everything the core reads from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: ServiceMode,
    pub subnets: Vec<Subnet>,
    pub reservations: Vec<Reservation>,
    by_mac: HashMap<MacAddr, usize>,
    by_client_id: HashMap<Vec<u8>, usize>,
    by_address: HashMap<Ipv4Addr, usize>,
    pub classes: Vec<Class>,
    pub options: Vec<DhcpOptionValue>,
    pub boot: BootConfig,
    pub vendor_classes: VendorClasses,
    pub known_clients_only: bool,
    pub ping_check: bool,
    pub advertise: Option<Ipv4Addr>,
    pub environment: Environment,
    /// How long an offered address stays set aside for the client it was offered to.
    pub offer_hold: Duration,
    /// The port of this box's HTTP service on IPv4, when it serves the boot tree (UEFI HTTP
    /// boot clients whose boot key is a path get a URL on it).
    pub http_port: Option<u16>,
}

/// Parses `aa:bb:cc:dd:ee:ff` (the config normalises reservations to this form).
pub fn parse_mac(text: &str) -> Option<MacAddr> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddr(mac))
}

impl Settings {
    /// Compiles the config. IPv6 subnets and reservations are left to the DHCPv6 service.
    pub fn new(dhcp: &DhcpConfig, boot: &BootConfig, environment: Environment) -> Settings {
        let subnets: Vec<Subnet> = dhcp
            .subnets
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                let (IpNet::V4(network), (IpAddr::V4(first), IpAddr::V4(last))) =
                    (s.network, s.range)
                else {
                    return None;
                };
                let v4 = |list: &Vec<IpAddr>| -> Vec<Ipv4Addr> {
                    list.iter()
                        .filter_map(|a| match a {
                            IpAddr::V4(a) => Some(*a),
                            IpAddr::V6(_) => None,
                        })
                        .collect()
                };
                Some(Subnet {
                    index,
                    network: network.trunc(),
                    first,
                    last,
                    router: match s.router {
                        Some(IpAddr::V4(r)) => Some(r),
                        _ => None,
                    },
                    dns: s.dns.as_ref().map(v4),
                    domain: s.domain.clone(),
                    lease_time: s.lease_time.unwrap_or(dhcp.lease_time),
                    known_clients_only: s.known_clients_only,
                    options: s.options.clone(),
                })
            })
            .collect();
        let mut reservations = Vec::new();
        for (index, r) in dhcp.reservations.iter().enumerate() {
            let address = match r.ip {
                Some(IpAddr::V4(a)) => Some(a),
                Some(IpAddr::V6(_)) => continue,
                None => None,
            };
            let mac = r.mac.as_deref().and_then(parse_mac);
            let uuid = r.uuid.map(SystemUuid);
            if mac.is_none() && r.client_id.is_none() && uuid.is_none() {
                // Named by its DUID only: a DHCPv6 reservation.
                continue;
            }
            reservations.push(Reservation {
                index,
                mac,
                client_id: r.client_id.clone(),
                uuid,
                address,
                hostname: r.hostname.clone(),
                boot: r.boot.clone(),
                ignore: r.ignore,
                options: r.options.clone(),
            });
        }
        let mut by_mac = HashMap::new();
        let mut by_client_id = HashMap::new();
        let mut by_address = HashMap::new();
        for (i, r) in reservations.iter().enumerate() {
            if let Some(mac) = r.mac {
                by_mac.insert(mac, i);
            }
            if let Some(id) = &r.client_id {
                by_client_id.insert(id.clone(), i);
            }
            if let Some(a) = r.address {
                by_address.insert(a, i);
            }
        }
        Settings {
            mode: match dhcp.mode {
                DhcpMode::Server => ServiceMode::Server,
                DhcpMode::Proxy => ServiceMode::Proxy,
            },
            subnets,
            reservations,
            by_mac,
            by_client_id,
            by_address,
            classes: dhcp
                .classes
                .iter()
                .map(|c| Class {
                    name: c.name.clone(),
                    vendor_class: c.vendor_class.as_bytes().to_vec(),
                    options: c.options.clone(),
                })
                .collect(),
            options: dhcp.options.clone(),
            boot: boot.clone(),
            vendor_classes: VendorClasses {
                pxe: dhcp.vendor_classes.pxe.clone(),
                http: dhcp.vendor_classes.http.clone(),
            },
            known_clients_only: dhcp.known_clients_only,
            ping_check: dhcp.ping_check,
            advertise: dhcp.advertise,
            environment,
            offer_hold: Duration::from_secs(30),
            http_port: None,
        }
    }

    /// The reservation of a client: by client identifier first (RFC 2131 4.2: it names the
    /// client when present), then by SMBIOS UUID (option 97), then by MAC.
    pub fn reservation(
        &self,
        client_id: Option<&[u8]>,
        uuid: Option<&[u8]>,
        mac: Option<MacAddr>,
    ) -> Option<&Reservation> {
        client_id
            .and_then(|id| self.by_client_id.get(id))
            .map(|&i| &self.reservations[i])
            .or_else(|| {
                let uuid = uuid?;
                self.reservations
                    .iter()
                    .find(|r| r.uuid.is_some_and(|u| u.matches(uuid)))
            })
            .or_else(|| {
                mac.and_then(|m| self.by_mac.get(&m))
                    .map(|&i| &self.reservations[i])
            })
    }

    /// The reservation that holds `address`, if one does.
    pub fn reservation_of_address(&self, address: Ipv4Addr) -> Option<&Reservation> {
        self.by_address
            .get(&address)
            .map(|&i| &self.reservations[i])
    }

    /// The subnet containing `address`.
    pub fn subnet_of(&self, address: Ipv4Addr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.network.contains(&address))
    }

    /// The classes a vendor class matches, in config order.
    pub fn classes_for<'a>(
        &'a self,
        vendor_class: Option<&'a [u8]>,
    ) -> impl Iterator<Item = &'a Class> {
        self.classes.iter().filter(move |c| {
            vendor_class
                .is_some_and(|vc| !c.vendor_class.is_empty() && vc.starts_with(&c.vendor_class))
        })
    }
}
