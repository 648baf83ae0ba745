//! The names model: static records, reservations and leases in; the zones' RRsets out.
//!
//! Pure: no sockets, clocks or tasks. The service feeds it [`NameChange`]s and settings, and
//! turns [`Names::zones`] into hickory zone handlers and the fast-path table.
//!
//! The rules for lease names:
//! - a lease whose hostname is a valid label gets `<hostname>.<domain>` A (AAAA for IPv6) and,
//!   when its address lies in a served network, the PTR in that network's reverse zone;
//! - a static record's name is never taken by a lease;
//! - a reservation's hostname goes only to the reservation's MAC;
//! - otherwise the first client to claim a name keeps it; later claimants get no record (and a
//!   warning naming both MACs) until the holder's lease ends, when the earliest waiting claimant
//!   takes over;
//! - a client is its MAC: renewing or moving address keeps the name, and the new address
//!   replaces the old one (one IPv4 and one IPv6 address per client);
//! - a release or expiry removes that address's A/AAAA and PTR; the name goes with the last.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RrKey};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::settings::{DnsSettings, StaticRecord, host_label};
use crate::{DnsError, LeaseName, NameChange};

pub(crate) type Mac = [u8; 6];

/// TTL of lease names and their PTRs: short, because leases come and go.
pub(crate) const LEASE_TTL: u32 = 60;
/// TTL of static records and NS.
pub(crate) const STATIC_TTL: u32 = 300;
/// TTL of the SOA record and its MINIMUM field: the negative-caching time (RFC 2308), kept at
/// a minute so a name looked up just before its lease exists soon resolves.
pub(crate) const NEGATIVE_TTL: u32 = 60;
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86_400;

/// One zone's records, as hickory's in-memory zone handler takes them.
#[derive(Debug, Clone)]
pub(crate) struct ZoneData {
    pub(crate) origin: Name,
    pub(crate) records: BTreeMap<RrKey, Arc<RecordSet>>,
}

/// What applying a change or a reload did, for the log and for the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// `name` now resolves to `address` (and back, if in a served network).
    Published {
        name: Name,
        mac: Mac,
        address: IpAddr,
    },
    /// `address` no longer belongs to `name`.
    Withdrawn {
        name: Name,
        mac: Mac,
        address: IpAddr,
    },
    /// `claimant` asked for a name `holder` already has.
    Conflict {
        name: Name,
        holder: Mac,
        claimant: Mac,
    },
    /// `claimant` asked for the name of a static record.
    StaticName { name: Name, claimant: Mac },
    /// `claimant` asked for the hostname of `owner`'s reservation.
    Reserved {
        name: Name,
        owner: Mac,
        claimant: Mac,
    },
    /// The name went from one client to another (the holder left, or a reload changed who may
    /// have it).
    PassedOn { name: Name, from: Mac, to: Mac },
    /// The client's hostname cannot be a DNS label.
    InvalidHostname { hostname: String, mac: Mac },
}

impl Event {
    /// Conflicts at warn (someone should look), everything else at debug.
    pub(crate) fn log(&self) {
        match self {
            Event::Conflict { .. } | Event::StaticName { .. } | Event::Reserved { .. } => {
                tracing::warn!("{self}");
            }
            _ => tracing::debug!("{self}"),
        }
    }
}

pub(crate) struct MacDisplay<'a>(pub(crate) &'a Mac);

impl fmt::Display for MacDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Published { name, mac, address } => {
                write!(f, "dns name {name} -> {address} (mac {})", MacDisplay(mac))
            }
            Event::Withdrawn { name, mac, address } => write!(
                f,
                "dns name {name} no longer -> {address} (mac {})",
                MacDisplay(mac)
            ),
            Event::Conflict {
                name,
                holder,
                claimant,
            } => write!(
                f,
                "dns name {name} is already held by mac {}; mac {} claims it too and gets no name",
                MacDisplay(holder),
                MacDisplay(claimant)
            ),
            Event::StaticName { name, claimant } => write!(
                f,
                "dns name {name} is a static record; mac {} claims it and gets no name",
                MacDisplay(claimant)
            ),
            Event::Reserved {
                name,
                owner,
                claimant,
            } => write!(
                f,
                "dns name {name} is reserved for mac {}; mac {} claims it and gets no name",
                MacDisplay(owner),
                MacDisplay(claimant)
            ),
            Event::PassedOn { name, from, to } => write!(
                f,
                "dns name {name} passes from mac {} to mac {}",
                MacDisplay(from),
                MacDisplay(to)
            ),
            Event::InvalidHostname { hostname, mac } => write!(
                f,
                "hostname {hostname:?} of mac {} is not a DNS label; no name published",
                MacDisplay(mac)
            ),
        }
    }
}

/// The outcome of [`Names::apply`].
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Whether the zones differ from before (else there is nothing to rebuild).
    pub(crate) changed: bool,
    pub(crate) events: Vec<Event>,
}

#[derive(Debug, Clone, Default)]
struct Client {
    /// The name this client claims, fully qualified and lower case.
    name: Option<Name>,
    /// When it claimed that name (orders rival claimants).
    seq: u64,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
}

impl Client {
    fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }
}

/// Static data from the settings that the rules consult.
#[derive(Debug, Clone)]
struct Statics {
    domain: Name,
    records: Vec<StaticRecord>,
    names: HashSet<Name>,
    reserved: BTreeMap<Name, Mac>,
    served: Vec<IpNet>,
    reverse: Vec<Name>,
}

impl Statics {
    fn new(settings: &DnsSettings) -> Statics {
        Statics {
            domain: settings.domain.clone(),
            records: settings.records.clone(),
            names: settings.records.iter().map(|r| r.name.clone()).collect(),
            reserved: settings.reserved.clone(),
            served: settings.served.clone(),
            reverse: reverse_zones(&settings.served, &settings.domain),
        }
    }
}

/// Static records, reservations and the live leases.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    statics: Statics,
    clients: HashMap<Mac, Client>,
    /// Every client claiming each name, by claim order.
    claims: HashMap<Name, BTreeMap<u64, Mac>>,
    next_seq: u64,
}

impl Names {
    pub(crate) fn new(settings: &DnsSettings) -> Names {
        Names {
            statics: Statics::new(settings),
            clients: HashMap::new(),
            claims: HashMap::new(),
            next_seq: 0,
        }
    }

    /// The zones this model serves: the domain, then the reverse zones.
    pub(crate) fn zone_origins(&self) -> Vec<Name> {
        std::iter::once(self.statics.domain.clone())
            .chain(self.statics.reverse.iter().cloned())
            .collect()
    }

    /// Who holds `name` now.
    fn owner(&self, name: &Name) -> Option<Mac> {
        if self.statics.names.contains(name) {
            return None;
        }
        let claimants = self.claims.get(name)?;
        if let Some(reserved_for) = self.statics.reserved.get(name) {
            return claimants
                .values()
                .any(|mac| mac == reserved_for)
                .then_some(*reserved_for);
        }
        claimants.values().next().copied()
    }

    /// Why `claimant` does not hold `name` (it does not, when this is called).
    fn refusal(&self, name: &Name, claimant: Mac) -> Option<Event> {
        if self.statics.names.contains(name) {
            return Some(Event::StaticName {
                name: name.clone(),
                claimant,
            });
        }
        if let Some(owner) = self.statics.reserved.get(name)
            && *owner != claimant
        {
            return Some(Event::Reserved {
                name: name.clone(),
                owner: *owner,
                claimant,
            });
        }
        self.owner(name).map(|holder| Event::Conflict {
            name: name.clone(),
            holder,
            claimant,
        })
    }

    fn fqdn(&self, hostname: &str) -> Option<Name> {
        let label = host_label(hostname, &self.statics.domain)?;
        Name::from_ascii(label)
            .and_then(|name| name.append_domain(&self.statics.domain))
            .ok()
    }

    pub(crate) fn apply(&mut self, change: NameChange) -> Applied {
        match change {
            NameChange::Up(lease) => self.up(lease),
            NameChange::Down { mac, address } => self.down(mac, address),
        }
    }

    fn up(&mut self, lease: LeaseName) -> Applied {
        let LeaseName {
            mac,
            address,
            hostname,
        } = lease;
        let mut applied = Applied::default();
        let name = self.fqdn(&hostname);
        if name.is_none() && !hostname.trim().is_empty() {
            applied
                .events
                .push(Event::InvalidHostname { hostname, mac });
        }
        let before = self.clients.get(&mac).cloned().unwrap_or_default();
        let old_owner = before.name.as_ref().and_then(|n| self.owner(n));
        let new_claim = name != before.name;
        if new_claim && let Some(old) = &before.name {
            self.unclaim(old, before.seq);
        }
        let seq = if new_claim {
            self.next_seq += 1;
            self.next_seq
        } else {
            before.seq
        };
        let mut after = before.clone();
        after.name = name.clone();
        after.seq = seq;
        match address {
            IpAddr::V4(v4) => after.v4 = Some(v4),
            IpAddr::V6(v6) => after.v6 = Some(v6),
        }
        if new_claim && let Some(name) = &name {
            self.claims
                .entry(name.clone())
                .or_default()
                .insert(seq, mac);
        }
        self.clients.insert(mac, after.clone());

        // What the old name's holder and this client's published addresses became.
        if let Some(old) = before.name.as_ref().filter(|_| new_claim)
            && old_owner == Some(mac)
        {
            for address in before.addresses() {
                applied.events.push(Event::Withdrawn {
                    name: old.clone(),
                    mac,
                    address,
                });
            }
            if let Some(next) = self.owner(old) {
                applied.events.push(Event::PassedOn {
                    name: old.clone(),
                    from: mac,
                    to: next,
                });
            }
            applied.changed = true;
        }
        if let Some(name) = &name {
            if self.owner(name) == Some(mac) {
                let moved = |old: Option<IpAddr>, new: Option<IpAddr>| old != new;
                let (old, new) = match address {
                    IpAddr::V4(_) => (before.v4.map(IpAddr::V4), after.v4.map(IpAddr::V4)),
                    IpAddr::V6(_) => (before.v6.map(IpAddr::V6), after.v6.map(IpAddr::V6)),
                };
                if new_claim || moved(old, new) {
                    if let (Some(old), false) = (old, new_claim) {
                        applied.events.push(Event::Withdrawn {
                            name: name.clone(),
                            mac,
                            address: old,
                        });
                    }
                    applied.events.push(Event::Published {
                        name: name.clone(),
                        mac,
                        address,
                    });
                    applied.changed = true;
                }
                if new_claim {
                    // The client's other-family address moves to the new name too.
                    for other in after.addresses().filter(|a| *a != address) {
                        applied.events.push(Event::Published {
                            name: name.clone(),
                            mac,
                            address: other,
                        });
                    }
                }
            } else if new_claim {
                applied.events.extend(self.refusal(name, mac));
            }
        }
        applied
    }

    fn down(&mut self, mac: Mac, address: IpAddr) -> Applied {
        let mut applied = Applied::default();
        let Some(client) = self.clients.get(&mac).cloned() else {
            return applied;
        };
        let mut after = client.clone();
        match address {
            IpAddr::V4(v4) if client.v4 == Some(v4) => after.v4 = None,
            IpAddr::V6(v6) if client.v6 == Some(v6) => after.v6 = None,
            // A release of an address the client no longer has (it moved): nothing to do.
            _ => return applied,
        }
        let owned = client.name.as_ref().filter(|n| self.owner(n) == Some(mac));
        if let Some(name) = owned {
            applied.events.push(Event::Withdrawn {
                name: name.clone(),
                mac,
                address,
            });
            applied.changed = true;
        }
        if after.v4.is_none() && after.v6.is_none() {
            self.clients.remove(&mac);
            if let Some(name) = &client.name {
                self.unclaim(name, client.seq);
                if owned.is_some()
                    && let Some(next) = self.owner(name)
                {
                    applied.events.push(Event::PassedOn {
                        name: name.clone(),
                        from: mac,
                        to: next,
                    });
                }
            }
        } else {
            self.clients.insert(mac, after);
        }
        applied
    }

    fn unclaim(&mut self, name: &Name, seq: u64) {
        if let Some(claimants) = self.claims.get_mut(name) {
            claimants.remove(&seq);
            if claimants.is_empty() {
                self.claims.remove(name);
            }
        }
    }

    /// New static records, reservations, domain or served networks; the leases stay, and
    /// every claim is judged again under the new rules.
    pub(crate) fn reload(&mut self, settings: &DnsSettings) -> Applied {
        let before: HashMap<Name, Mac> = self
            .claims
            .keys()
            .filter_map(|name| Some((name.clone(), self.owner(name)?)))
            .collect();
        let clients = std::mem::take(&mut self.clients);
        let mut ordered: Vec<(Mac, Client)> = clients.into_iter().collect();
        ordered.sort_by_key(|(_, client)| client.seq);
        let old_domain = self.statics.domain.clone();
        self.statics = Statics::new(settings);
        self.claims.clear();
        let mut applied = Applied {
            changed: true,
            events: Vec::new(),
        };
        for (mac, mut client) in ordered {
            // A new domain renames every lease name: keep the label, change the suffix.
            if old_domain != self.statics.domain {
                client.name = client
                    .name
                    .as_ref()
                    .and_then(|n| {
                        n.iter()
                            .next()
                            .map(|l| String::from_utf8_lossy(l).into_owned())
                    })
                    .and_then(|label| self.fqdn(&label));
            }
            if let Some(name) = &client.name {
                self.claims
                    .entry(name.clone())
                    .or_default()
                    .insert(client.seq, mac);
            }
            self.clients.insert(mac, client);
        }
        for (name, claimants) in &self.claims {
            let now = self.owner(name);
            match (before.get(name), now) {
                (Some(from), Some(to)) if *from != to => applied.events.push(Event::PassedOn {
                    name: name.clone(),
                    from: *from,
                    to,
                }),
                (_, None) => {
                    if let Some(first) = claimants.values().next() {
                        applied.events.extend(self.refusal(name, *first));
                    }
                }
                _ => {}
            }
        }
        applied
    }

    /// Every zone's records, with `serial` in the SOAs.
    pub(crate) fn zones(&self, serial: u32) -> Result<Vec<ZoneData>, DnsError> {
        let domain = &self.statics.domain;
        let mut forward = ZoneBuilder::new(domain.clone(), domain, serial)?;
        let mut reverse: Vec<ZoneBuilder> = self
            .statics
            .reverse
            .iter()
            .map(|origin| ZoneBuilder::new(origin.clone(), domain, serial))
            .collect::<Result<_, _>>()?;
        let mut with_ptr: HashSet<IpAddr> = HashSet::new();
        let mut add_ptr = |address: IpAddr, target: &Name, ttl: u32| -> Result<(), DnsError> {
            if !self.statics.served.iter().any(|net| net.contains(&address)) {
                return Ok(());
            }
            let owner = Name::from(address).to_lowercase();
            let Some(zone) = reverse.iter_mut().find(|z| z.origin.zone_of(&owner)) else {
                return Ok(());
            };
            if with_ptr.insert(address) {
                zone.add(owner, ttl, RData::PTR(PTR(target.clone())))?;
            }
            Ok(())
        };
        for record in &self.statics.records {
            forward.add(record.name.clone(), STATIC_TTL, record.data.clone())?;
            if record.name.is_wildcard() {
                continue;
            }
            match &record.data {
                RData::A(a) => add_ptr(IpAddr::V4(a.0), &record.name, STATIC_TTL)?,
                RData::AAAA(aaaa) => add_ptr(IpAddr::V6(aaaa.0), &record.name, STATIC_TTL)?,
                _ => {}
            }
        }
        let mut owned: Vec<(u64, &Name, &Client)> = self
            .claims
            .keys()
            .filter_map(|name| {
                let mac = self.owner(name)?;
                let client = self.clients.get(&mac)?;
                Some((client.seq, name, client))
            })
            .collect();
        owned.sort_by_key(|(seq, _, _)| *seq);
        for (_, name, client) in owned {
            if let Some(v4) = client.v4 {
                forward.add(name.clone(), LEASE_TTL, RData::A(A(v4)))?;
                add_ptr(IpAddr::V4(v4), name, LEASE_TTL)?;
            }
            if let Some(v6) = client.v6 {
                forward.add(name.clone(), LEASE_TTL, RData::AAAA(AAAA(v6)))?;
                add_ptr(IpAddr::V6(v6), name, LEASE_TTL)?;
            }
        }
        Ok(std::iter::once(forward)
            .chain(reverse)
            .map(ZoneBuilder::finish)
            .collect())
    }
}

struct ZoneBuilder {
    origin: Name,
    serial: u32,
    records: BTreeMap<RrKey, RecordSet>,
}

impl ZoneBuilder {
    /// A zone with its SOA and NS. Both name the forward domain: it is the one name every
    /// client of this box can look up (give it an address with a `@` record).
    fn new(origin: Name, domain: &Name, serial: u32) -> Result<ZoneBuilder, DnsError> {
        let mut zone = ZoneBuilder {
            origin: origin.clone(),
            serial,
            records: BTreeMap::new(),
        };
        let hostmaster = Name::from_ascii("hostmaster")
            .and_then(|name| name.append_domain(domain))
            .map_err(|error| DnsError::Zone {
                zone: origin.to_string(),
                reason: error.to_string(),
            })?;
        let soa = SOA::new(
            domain.clone(),
            hostmaster,
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            NEGATIVE_TTL,
        );
        zone.add(origin.clone(), NEGATIVE_TTL, RData::SOA(soa))?;
        zone.add(origin, STATIC_TTL, RData::NS(NS(domain.clone())))?;
        Ok(zone)
    }

    fn add(&mut self, name: Name, ttl: u32, data: RData) -> Result<(), DnsError> {
        let record_type = data.record_type();
        let key = RrKey::new(LowerName::new(&name), record_type);
        let set = self
            .records
            .entry(key)
            .or_insert_with(|| RecordSet::new(name.clone(), record_type, self.serial));
        // RecordSet::insert asserts the name and type match, which they do by construction;
        // an identical record is merged (returns false), which is what we want.
        if set.name() != &name {
            return Err(DnsError::Zone {
                zone: self.origin.to_string(),
                reason: format!("record {name} filed under {}", set.name()),
            });
        }
        set.insert(Record::from_rdata(name, ttl, data), self.serial);
        Ok(())
    }

    fn finish(self) -> ZoneData {
        ZoneData {
            origin: self.origin,
            records: self
                .records
                .into_iter()
                .map(|(key, set)| (key, Arc::new(set)))
                .collect(),
        }
    }
}

/// The reverse zones for the served networks: in-addr.arpa zones on octet boundaries (a /20
/// gets sixteen /24 zones, a /26 the /24 around it) and ip6.arpa zones on nibble boundaries.
/// Zones inside another one, and zones that overlap the forward domain, are left out.
pub(crate) fn reverse_zones(served: &[IpNet], domain: &Name) -> Vec<Name> {
    let mut zones: Vec<Name> = Vec::new();
    for net in served {
        let names = match net {
            IpNet::V4(net) => v4_zones(*net),
            IpNet::V6(net) => v6_zones(*net),
        };
        for name in names {
            if !zones.contains(&name) {
                zones.push(name);
            }
        }
    }
    let all = zones.clone();
    zones.retain(|zone| {
        !all.iter().any(|other| other != zone && other.zone_of(zone))
            && !domain.zone_of(zone)
            && !zone.zone_of(domain)
    });
    zones
}

fn v4_zones(net: Ipv4Net) -> Vec<Name> {
    let prefix = u32::from(net.prefix_len());
    let zone_prefix = if prefix > 24 {
        24
    } else {
        prefix.div_ceil(8).max(1) * 8
    };
    let base = u32::from(net.network()) & mask_v4(zone_prefix);
    let count = 1u32 << zone_prefix.saturating_sub(prefix);
    (0..count)
        .filter_map(|i| {
            let address = base.checked_add(i.checked_shl(32 - zone_prefix)?)?;
            let octets = address.to_be_bytes();
            let labels: Vec<String> = octets[..(zone_prefix / 8) as usize]
                .iter()
                .rev()
                .map(u8::to_string)
                .collect();
            Name::from_ascii(format!("{}.in-addr.arpa.", labels.join("."))).ok()
        })
        .collect()
}

fn mask_v4(prefix: u32) -> u32 {
    u32::MAX.checked_shl(32 - prefix).unwrap_or(0)
}

fn v6_zones(net: Ipv6Net) -> Vec<Name> {
    let prefix = u32::from(net.prefix_len());
    let zone_prefix = if prefix > 124 {
        124
    } else {
        prefix.div_ceil(4).max(1) * 4
    };
    let base = u128::from(net.network()) & u128::MAX.checked_shl(128 - zone_prefix).unwrap_or(0);
    let count = 1u128 << zone_prefix.saturating_sub(prefix);
    (0..count)
        .filter_map(|i| {
            let address = base.checked_add(i.checked_shl(128 - zone_prefix)?)?;
            let nibbles: Vec<String> = (0..zone_prefix / 4)
                .rev()
                .map(|n| format!("{:x}", (address >> (124 - 4 * n)) & 0xf))
                .collect();
            Name::from_ascii(format!("{}.ip6.arpa.", nibbles.join("."))).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::ReservedName;
    use hickory_proto::rr::RecordType;
    use kindling_config::{DnsConfig, DnsRecord, DnsRecordData};

    const A1: Mac = [2, 0, 0, 0, 0, 1];
    const A2: Mac = [2, 0, 0, 0, 0, 2];
    const A3: Mac = [2, 0, 0, 0, 0, 3];
    const RESERVED: Mac = [2, 0, 0, 0, 0, 0x10];

    fn settings() -> DnsSettings {
        let config = DnsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            domain: "lab.test".into(),
            records: vec![
                DnsRecord {
                    name: "nas".into(),
                    data: DnsRecordData::A("10.99.0.5".parse().unwrap()),
                },
                DnsRecord {
                    name: "files".into(),
                    data: DnsRecordData::Cname("nas".into()),
                },
                DnsRecord {
                    name: "docs".into(),
                    data: DnsRecordData::Txt("hello".into()),
                },
            ],
            upstreams: vec![],
            allow_recursion_from: None,
        };
        DnsSettings::new(
            &config,
            &[
                "10.99.0.0/24".parse().unwrap(),
                "fd00:99::/64".parse().unwrap(),
            ],
            &[ReservedName {
                hostname: "node10".into(),
                mac: RESERVED,
            }],
        )
        .unwrap()
    }

    fn up(mac: Mac, address: &str, hostname: &str) -> NameChange {
        NameChange::Up(LeaseName {
            mac,
            address: address.parse().unwrap(),
            hostname: hostname.into(),
        })
    }

    fn down(mac: Mac, address: &str) -> NameChange {
        NameChange::Down {
            mac,
            address: address.parse().unwrap(),
        }
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    /// The data of one RRset across all zones.
    fn lookup(names: &Names, owner: &str, record_type: RecordType) -> Vec<RData> {
        let key = RrKey::new(LowerName::new(&name(owner)), record_type);
        names
            .zones(1)
            .unwrap()
            .iter()
            .filter_map(|zone| zone.records.get(&key))
            .flat_map(|set| set.records_without_rrsigs().map(|r| r.data.clone()))
            .collect()
    }

    fn a(text: &str) -> RData {
        RData::A(A(text.parse().unwrap()))
    }

    fn ptr(text: &str) -> RData {
        RData::PTR(PTR(name(text)))
    }

    #[test]
    fn a_lease_gets_a_and_ptr() {
        let mut names = Names::new(&settings());
        let applied = names.apply(up(A1, "10.99.0.100", "pc1"));
        assert!(applied.changed);
        assert_eq!(
            lookup(&names, "pc1.lab.test.", RecordType::A),
            [a("10.99.0.100")]
        );
        assert_eq!(
            lookup(&names, "100.0.99.10.in-addr.arpa.", RecordType::PTR),
            [ptr("pc1.lab.test.")]
        );
    }

    #[test]
    fn ipv6_leases_get_aaaa_and_nibble_ptr() {
        let mut names = Names::new(&settings());
        names.apply(up(A1, "fd00:99::100", "pc1"));
        assert_eq!(
            lookup(&names, "pc1.lab.test.", RecordType::AAAA),
            [RData::AAAA(AAAA("fd00:99::100".parse().unwrap()))]
        );
        let owner = Name::from("fd00:99::100".parse::<IpAddr>().unwrap()).to_ascii();
        assert!(owner.ends_with("9.9.0.0.0.0.d.f.ip6.arpa."), "{owner}");
        assert_eq!(
            lookup(&names, &owner, RecordType::PTR),
            [ptr("pc1.lab.test.")]
        );
    }

    #[test]
    fn a_static_name_is_never_taken() {
        let mut names = Names::new(&settings());
        let applied = names.apply(up(A1, "10.99.0.100", "nas"));
        assert!(!applied.changed);
        assert_eq!(
            applied.events,
            [Event::StaticName {
                name: name("nas.lab.test."),
                claimant: A1
            }]
        );
        assert_eq!(
            lookup(&names, "nas.lab.test.", RecordType::A),
            [a("10.99.0.5")]
        );
        assert!(lookup(&names, "100.0.99.10.in-addr.arpa.", RecordType::PTR).is_empty());
        // A CNAME's name and a TXT-only name are static names too.
        names.apply(up(A2, "10.99.0.101", "files"));
        names.apply(up(A3, "10.99.0.102", "docs"));
        assert!(lookup(&names, "files.lab.test.", RecordType::A).is_empty());
        assert!(lookup(&names, "docs.lab.test.", RecordType::A).is_empty());
    }

    #[test]
    fn static_addresses_in_served_networks_get_a_ptr() {
        let names = Names::new(&settings());
        assert_eq!(
            lookup(&names, "5.0.99.10.in-addr.arpa.", RecordType::PTR),
            [ptr("nas.lab.test.")]
        );
    }

    #[test]
    fn a_reserved_hostname_goes_only_to_its_mac() {
        let mut names = Names::new(&settings());
        let applied = names.apply(up(A1, "10.99.0.100", "node10"));
        assert_eq!(
            applied.events,
            [Event::Reserved {
                name: name("node10.lab.test."),
                owner: RESERVED,
                claimant: A1
            }]
        );
        assert!(lookup(&names, "node10.lab.test.", RecordType::A).is_empty());
        // The owner gets it although another client asked first.
        names.apply(up(RESERVED, "10.99.0.10", "node10"));
        assert_eq!(
            lookup(&names, "node10.lab.test.", RecordType::A),
            [a("10.99.0.10")]
        );
        // The impostor leaving changes nothing for the owner.
        names.apply(down(A1, "10.99.0.100"));
        assert_eq!(
            lookup(&names, "node10.lab.test.", RecordType::A),
            [a("10.99.0.10")]
        );
    }

    #[test]
    fn the_first_claimant_keeps_the_name() {
        let mut names = Names::new(&settings());
        names.apply(up(A1, "10.99.0.100", "pc"));
        let applied = names.apply(up(A2, "10.99.0.101", "PC"));
        assert!(!applied.changed);
        assert_eq!(
            applied.events,
            [Event::Conflict {
                name: name("pc.lab.test."),
                holder: A1,
                claimant: A2
            }]
        );
        assert_eq!(
            lookup(&names, "pc.lab.test.", RecordType::A),
            [a("10.99.0.100")]
        );
        assert!(lookup(&names, "101.0.99.10.in-addr.arpa.", RecordType::PTR).is_empty());
        // The loser renewing warns no more.
        let again = names.apply(up(A2, "10.99.0.101", "pc"));
        assert!(again.events.is_empty() && !again.changed);
        // The holder renewing changes nothing.
        let renew = names.apply(up(A1, "10.99.0.100", "pc"));
        assert!(renew.events.is_empty() && !renew.changed);
        // When the holder leaves, the waiting client takes over.
        let applied = names.apply(down(A1, "10.99.0.100"));
        assert!(applied.changed);
        assert!(applied.events.contains(&Event::PassedOn {
            name: name("pc.lab.test."),
            from: A1,
            to: A2
        }));
        assert_eq!(
            lookup(&names, "pc.lab.test.", RecordType::A),
            [a("10.99.0.101")]
        );
        assert_eq!(
            lookup(&names, "101.0.99.10.in-addr.arpa.", RecordType::PTR),
            [ptr("pc.lab.test.")]
        );
        assert!(lookup(&names, "100.0.99.10.in-addr.arpa.", RecordType::PTR).is_empty());
    }

    #[test]
    fn the_same_mac_moving_address_keeps_its_name_and_replaces_a_and_ptr() {
        let mut names = Names::new(&settings());
        names.apply(up(A1, "10.99.0.100", "pc"));
        let applied = names.apply(up(A1, "10.99.0.150", "pc"));
        assert!(applied.changed);
        assert_eq!(
            lookup(&names, "pc.lab.test.", RecordType::A),
            [a("10.99.0.150")]
        );
        assert!(lookup(&names, "100.0.99.10.in-addr.arpa.", RecordType::PTR).is_empty());
        assert_eq!(
            lookup(&names, "150.0.99.10.in-addr.arpa.", RecordType::PTR),
            [ptr("pc.lab.test.")]
        );
        // A late expiry of the old address does not remove the new one.
        let stale = names.apply(down(A1, "10.99.0.100"));
        assert!(!stale.changed);
        assert_eq!(
            lookup(&names, "pc.lab.test.", RecordType::A),
            [a("10.99.0.150")]
        );
    }

    #[test]
    fn the_same_mac_renaming_itself_frees_the_old_name() {
        let mut names = Names::new(&settings());
        names.apply(up(A1, "10.99.0.100", "old"));
        names.apply(up(A2, "10.99.0.101", "old"));
        names.apply(up(A1, "10.99.0.100", "new"));
        assert_eq!(
            lookup(&names, "new.lab.test.", RecordType::A),
            [a("10.99.0.100")]
        );
        assert_eq!(
            lookup(&names, "old.lab.test.", RecordType::A),
            [a("10.99.0.101")]
        );
        assert_eq!(
            lookup(&names, "100.0.99.10.in-addr.arpa.", RecordType::PTR),
            [ptr("new.lab.test.")]
        );
    }

    #[test]
    fn release_and_expiry_remove_a_and_ptr() {
        let mut names = Names::new(&settings());
        names.apply(up(A1, "10.99.0.100", "pc"));
        names.apply(up(A1, "fd00:99::100", "pc"));
        let applied = names.apply(down(A1, "10.99.0.100"));
        assert!(applied.changed);
        assert!(lookup(&names, "pc.lab.test.", RecordType::A).is_empty());
        assert!(lookup(&names, "100.0.99.10.in-addr.arpa.", RecordType::PTR).is_empty());
        assert_eq!(lookup(&names, "pc.lab.test.", RecordType::AAAA).len(), 1);
        names.apply(down(A1, "fd00:99::100"));
        assert!(lookup(&names, "pc.lab.test.", RecordType::AAAA).is_empty());
        let zones = names.zones(1).unwrap();
        let total: usize = zones.iter().map(|z| z.records.len()).sum();
        // SOA + NS in the forward zone and the two reverse zones, nas A, files CNAME, docs
        // TXT, and nas's PTR: nothing of the lease is left.
        assert_eq!(total, 2 * 3 + 3 + 1);
        // Unknown MACs and addresses are ignored.
        assert!(!names.apply(down(A2, "10.99.0.1")).changed);
    }

    #[test]
    fn ptr_only_inside_served_networks() {
        let mut names = Names::new(&settings());
        names.apply(up(A1, "192.0.2.7", "outside"));
        assert_eq!(
            lookup(&names, "outside.lab.test.", RecordType::A),
            [a("192.0.2.7")]
        );
        assert!(lookup(&names, "7.2.0.192.in-addr.arpa.", RecordType::PTR).is_empty());
        let zones: Vec<String> = names.zone_origins().iter().map(Name::to_ascii).collect();
        assert_eq!(
            zones,
            [
                "lab.test.",
                "0.99.10.in-addr.arpa.",
                "0.0.0.0.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa."
            ]
        );
    }

    #[test]
    fn soa_minimum_and_ttl_are_at_most_60() {
        let names = Names::new(&settings());
        for zone in names.zones(7).unwrap() {
            let key = RrKey::new(LowerName::new(&zone.origin), RecordType::SOA);
            let record = zone.records[&key]
                .records_without_rrsigs()
                .next()
                .unwrap()
                .clone();
            let RData::SOA(soa) = &record.data else {
                panic!("not an SOA")
            };
            assert!(soa.minimum <= 60 && record.ttl <= 60);
            assert_eq!(soa.serial, 7);
        }
    }

    #[test]
    fn invalid_hostnames_get_no_name_but_are_reported() {
        let mut names = Names::new(&settings());
        let applied = names.apply(up(A1, "10.99.0.100", "my laptop"));
        assert!(!applied.changed);
        assert!(matches!(
            applied.events[..],
            [Event::InvalidHostname { .. }]
        ));
        // No hostname at all is no event.
        assert!(names.apply(up(A2, "10.99.0.101", "")).events.is_empty());
    }

    #[test]
    fn cname_exclusivity_holds_for_every_zone() {
        let mut names = Names::new(&settings());
        for (i, host) in ["files", "nas", "docs", "pc", "files"].iter().enumerate() {
            names.apply(up(
                [2, 0, 0, 0, 1, i as u8],
                &format!("10.99.0.{}", 100 + i),
                host,
            ));
        }
        for zone in names.zones(1).unwrap() {
            for (key, _) in zone
                .records
                .iter()
                .filter(|(k, _)| k.record_type == RecordType::CNAME)
            {
                let others = zone
                    .records
                    .keys()
                    .filter(|k| k.name() == key.name() && k.record_type != RecordType::CNAME)
                    .count();
                assert_eq!(others, 0, "{} has a CNAME and other data", key.name());
            }
        }
    }

    #[test]
    fn reload_rejudges_claims() {
        let mut names = Names::new(&settings());
        names.apply(up(A1, "10.99.0.100", "pc"));
        names.apply(up(A2, "10.99.0.101", "box"));
        // A static record now uses "pc"; a reservation gives "box" to A2's rival... and the
        // domain changes.
        let config = DnsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            domain: "new.test".into(),
            records: vec![DnsRecord {
                name: "pc".into(),
                data: DnsRecordData::A("10.99.0.9".parse().unwrap()),
            }],
            upstreams: vec![],
            allow_recursion_from: None,
        };
        let new = DnsSettings::new(&config, &["10.99.0.0/24".parse().unwrap()], &[]).unwrap();
        let applied = names.reload(&new);
        assert!(applied.events.contains(&Event::StaticName {
            name: name("pc.new.test."),
            claimant: A1
        }));
        assert_eq!(
            lookup(&names, "pc.new.test.", RecordType::A),
            [a("10.99.0.9")]
        );
        assert_eq!(
            lookup(&names, "box.new.test.", RecordType::A),
            [a("10.99.0.101")]
        );
        assert!(lookup(&names, "box.lab.test.", RecordType::A).is_empty());
    }

    #[test]
    fn reverse_zones_follow_octet_and_nibble_boundaries() {
        let domain = name("lab.test.");
        let zones = |nets: &[&str]| -> Vec<String> {
            let nets: Vec<IpNet> = nets.iter().map(|n| n.parse().unwrap()).collect();
            reverse_zones(&nets, &domain)
                .iter()
                .map(Name::to_ascii)
                .collect()
        };
        assert_eq!(zones(&["10.99.0.0/24"]), ["0.99.10.in-addr.arpa."]);
        assert_eq!(zones(&["10.99.0.128/26"]), ["0.99.10.in-addr.arpa."]);
        assert_eq!(zones(&["10.0.0.0/8"]), ["10.in-addr.arpa."]);
        let twenty = zones(&["10.99.16.0/20"]);
        assert_eq!(twenty.len(), 16);
        assert_eq!(twenty[0], "16.99.10.in-addr.arpa.");
        assert_eq!(twenty[15], "31.99.10.in-addr.arpa.");
        // A /24 inside a served /16 adds no zone of its own.
        assert_eq!(
            zones(&["10.99.0.0/16", "10.99.5.0/24"]),
            ["99.10.in-addr.arpa."]
        );
        assert_eq!(
            zones(&["fd00:99::/63"]),
            [
                "0.0.0.0.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa.",
                "1.0.0.0.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa."
            ]
        );
        assert_eq!(
            zones(&["fd00:99::/48"]),
            ["0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa."]
        );
    }
}
