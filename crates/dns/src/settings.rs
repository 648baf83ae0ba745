//! What the service is told: the `dns` config section turned into DNS names and record data,
//! plus the facts the binary adds (the networks DHCP serves, the reservations' hostnames).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV, TXT};
use hickory_proto::rr::{Name, RData};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kindling_config::{DnsConfig, DnsRecordData};

use crate::DnsError;

/// A DHCP reservation's hostname and the client that owns it: no other client may take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedName {
    pub hostname: String,
    pub mac: [u8; 6],
}

/// One static record, resolved to absolute names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StaticRecord {
    pub(crate) name: Name,
    pub(crate) data: RData,
}

/// The DNS service's settings, built from the config (see [`DnsSettings::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    pub(crate) listen: Vec<SocketAddr>,
    /// Lower case, fully qualified.
    pub(crate) domain: Name,
    pub(crate) records: Vec<StaticRecord>,
    pub(crate) served: Vec<IpNet>,
    /// Fully qualified lower-case name -> the MAC that owns it.
    pub(crate) reserved: BTreeMap<Name, [u8; 6]>,
    pub(crate) upstreams: Vec<SocketAddr>,
    pub(crate) recursion_from: Vec<IpNet>,
}

impl DnsSettings {
    /// `served_networks`: the DHCP subnets (v4 and v6) this box serves: they get reverse zones
    /// and, when `dns.allow_recursion_from` is absent, they plus loopback may recurse.
    /// `reserved_names`: hostnames of DHCP reservations with the MAC that owns each.
    ///
    /// Record names are relative to `dns.domain` unless they already end in it (the config
    /// drops a trailing dot, so `nas.lab.test.` and `nas.lab.test` both mean the same name).
    /// CNAME and SRV targets with a single label are relative to the domain (`cname: nas` is
    /// `nas.lab.test.`); targets with several labels are absolute (`www.example.org`).
    pub fn new(
        config: &DnsConfig,
        served_networks: &[IpNet],
        reserved_names: &[ReservedName],
    ) -> Result<DnsSettings, DnsError> {
        let domain = parse_name("dns.domain", &config.domain)?;
        if domain.is_root() || domain.is_wildcard() {
            return Err(DnsError::InvalidName {
                what: "dns.domain",
                name: config.domain.clone(),
                reason: "the local zone needs a name below the root, without wildcards".into(),
            });
        }
        let mut records: Vec<StaticRecord> = Vec::with_capacity(config.records.len());
        for record in &config.records {
            let name = owner_name(&domain, &record.name)?;
            let data = match &record.data {
                DnsRecordData::A(address) => RData::A(A(*address)),
                DnsRecordData::Aaaa(address) => RData::AAAA(AAAA(*address)),
                DnsRecordData::Cname(target) => {
                    RData::CNAME(CNAME(target_name(&domain, "CNAME target", target)?))
                }
                DnsRecordData::Txt(text) => RData::TXT(txt(text)),
                DnsRecordData::Srv {
                    priority,
                    weight,
                    port,
                    target,
                } => RData::SRV(SRV::new(
                    *priority,
                    *weight,
                    *port,
                    target_name(&domain, "SRV target", target)?,
                )),
            };
            let is_cname = matches!(data, RData::CNAME(_));
            if records
                .iter()
                .any(|r| r.name == name && (is_cname || matches!(r.data, RData::CNAME(_))))
            {
                return Err(DnsError::Records(format!(
                    "{name} has a CNAME and another record: a CNAME must be the only record of its name"
                )));
            }
            records.push(StaticRecord { name, data });
        }
        let mut reserved = BTreeMap::new();
        for reservation in reserved_names {
            // A hostname DNS cannot publish protects nothing: no lease can claim it either.
            let Some(label) = host_label(&reservation.hostname, &domain) else {
                tracing::debug!(hostname = %reservation.hostname, "reservation hostname is not a DNS label; ignored");
                continue;
            };
            let Ok(fqdn) = Name::from_ascii(&label).and_then(|n| n.append_domain(&domain)) else {
                continue;
            };
            reserved.entry(fqdn).or_insert(reservation.mac);
        }
        let recursion_from = match &config.allow_recursion_from {
            Some(nets) => nets.clone(),
            None => {
                let mut nets = served_networks.to_vec();
                nets.push(IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::LOCALHOST, 8)));
                nets.push(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)));
                nets
            }
        };
        Ok(DnsSettings {
            listen: config.listen.clone(),
            domain,
            records,
            served: served_networks.iter().map(IpNet::trunc).collect(),
            reserved,
            upstreams: config.upstreams.clone(),
            recursion_from,
        })
    }

    /// The addresses to listen on (UDP and TCP).
    pub fn listen(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The local zone, without the trailing dot.
    pub fn domain(&self) -> String {
        self.domain.to_ascii().trim_end_matches('.').to_string()
    }

    /// Who may have names outside our zones forwarded: `dns.allow_recursion_from`, or the
    /// served networks plus loopback when it is absent.
    pub fn recursion_allowed_from(&self) -> &[IpNet] {
        &self.recursion_from
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// True when `client` may recurse (IPv4-mapped IPv6 addresses count as IPv4).
    #[cfg(test)]
    pub(crate) fn may_recurse(&self, client: IpAddr) -> bool {
        may_recurse(&self.recursion_from, client)
    }
}

pub(crate) fn may_recurse(allowed: &[IpNet], client: IpAddr) -> bool {
    let client = client.to_canonical();
    allowed.iter().any(|net| net.contains(&client))
}

fn parse_name(what: &'static str, text: &str) -> Result<Name, DnsError> {
    let absolute = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    Name::from_ascii(&absolute)
        .map(|name| name.to_lowercase())
        .map_err(|error| DnsError::InvalidName {
            what,
            name: text.to_string(),
            reason: error.to_string(),
        })
}

/// A record's owner: `@` is the domain; a trailing dot makes a name absolute (it must be in
/// the domain); names already ending in the domain are taken as they are; everything else is
/// relative to the domain.
fn owner_name(domain: &Name, text: &str) -> Result<Name, DnsError> {
    if text == "@" {
        return Ok(domain.clone());
    }
    let name = parse_name("record name", text)?;
    if domain.zone_of(&name) {
        return Ok(name);
    }
    if text.ends_with('.') {
        return Err(DnsError::InvalidName {
            what: "record name",
            name: text.to_string(),
            reason: format!("it is outside the domain {domain}"),
        });
    }
    let relative =
        Name::from_ascii(text.trim_end_matches('.')).map_err(|error| DnsError::InvalidName {
            what: "record name",
            name: text.to_string(),
            reason: error.to_string(),
        })?;
    relative
        .to_lowercase()
        .append_domain(domain)
        .map_err(|error| DnsError::InvalidName {
            what: "record name",
            name: text.to_string(),
            reason: error.to_string(),
        })
}

/// A CNAME or SRV target: `.` is the root, a trailing dot or several labels make it absolute,
/// and one label is relative to the domain.
fn target_name(domain: &Name, what: &'static str, text: &str) -> Result<Name, DnsError> {
    if text == "." {
        return Ok(Name::root());
    }
    let trimmed = text.trim_end_matches('.');
    if trimmed.contains('.') || text.ends_with('.') {
        return parse_name(what, trimmed);
    }
    parse_name(what, trimmed)?
        .append_domain(domain)
        .map_err(|error| DnsError::InvalidName {
            what,
            name: text.to_string(),
            reason: error.to_string(),
        })
}

/// TXT data: one string, cut into the 255-byte pieces a character-string can hold.
fn txt(text: &str) -> TXT {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return TXT::from_bytes(vec![&[]]);
    }
    TXT::from_bytes(bytes.chunks(255).collect())
}

/// Turns what a client calls itself into one lower-case DNS label, or `None` when it cannot be
/// one. A trailing dot and our own domain are dropped (`node1.lab.test` is `node1`); of any
/// other dotted name only the first label is kept, as dnsmasq does.
pub(crate) fn host_label(hostname: &str, domain: &Name) -> Option<String> {
    // Some clients NUL-terminate option 12.
    let mut name = hostname
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let suffix = format!(".{}", domain.to_ascii().trim_end_matches('.'));
    if let Some(stripped) = name.strip_suffix(&suffix) {
        name = stripped.to_string();
    }
    let label = name.split('.').next().unwrap_or_default();
    let valid = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    valid.then(|| label.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use kindling_config::DnsRecord;

    fn config(records: Vec<(&str, DnsRecordData)>) -> DnsConfig {
        DnsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            domain: "Lab.Test".into(),
            records: records
                .into_iter()
                .map(|(name, data)| DnsRecord {
                    name: name.into(),
                    data,
                })
                .collect(),
            upstreams: vec![],
            allow_recursion_from: None,
        }
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn record_names_are_relative_to_the_domain_unless_they_end_in_it() {
        let settings = DnsSettings::new(
            &config(vec![
                ("nas", DnsRecordData::A(Ipv4Addr::new(10, 99, 0, 5))),
                ("@", DnsRecordData::A(Ipv4Addr::new(10, 99, 0, 1))),
                (
                    "nas2.lab.test",
                    DnsRecordData::A(Ipv4Addr::new(10, 99, 0, 6)),
                ),
                ("_tftp._udp", DnsRecordData::Txt("x".into())),
                ("*.dev", DnsRecordData::A(Ipv4Addr::new(10, 99, 0, 7))),
                ("files", DnsRecordData::Cname("nas".into())),
                ("www", DnsRecordData::Cname("www.example.org".into())),
                (
                    "_http._tcp",
                    DnsRecordData::Srv {
                        priority: 1,
                        weight: 2,
                        port: 80,
                        target: ".".into(),
                    },
                ),
            ]),
            &[],
            &[],
        )
        .unwrap();
        let names: Vec<String> = settings.records.iter().map(|r| r.name.to_ascii()).collect();
        assert_eq!(
            names,
            [
                "nas.lab.test.",
                "lab.test.",
                "nas2.lab.test.",
                "_tftp._udp.lab.test.",
                "*.dev.lab.test.",
                "files.lab.test.",
                "www.lab.test.",
                "_http._tcp.lab.test."
            ]
        );
        assert_eq!(
            settings.records[5].data,
            RData::CNAME(CNAME(name("nas.lab.test.")))
        );
        assert_eq!(
            settings.records[6].data,
            RData::CNAME(CNAME(name("www.example.org.")))
        );
        assert_eq!(
            settings.records[7].data,
            RData::SRV(SRV::new(1, 2, 80, Name::root()))
        );
        assert_eq!(settings.domain(), "lab.test");
    }

    #[test]
    fn a_trailing_dot_makes_a_name_absolute() {
        let settings = DnsSettings::new(
            &config(vec![
                (
                    "printer.lab.test.",
                    DnsRecordData::A(Ipv4Addr::new(10, 99, 0, 8)),
                ),
                ("lab.test.", DnsRecordData::Txt("apex".into())),
                ("mail", DnsRecordData::Cname("relay.".into())),
                ("ns", DnsRecordData::Cname("relay".into())),
            ]),
            &[],
            &[],
        )
        .unwrap();
        let names: Vec<String> = settings.records.iter().map(|r| r.name.to_ascii()).collect();
        assert_eq!(
            names,
            [
                "printer.lab.test.",
                "lab.test.",
                "mail.lab.test.",
                "ns.lab.test."
            ]
        );
        assert_eq!(
            settings.records[2].data,
            RData::CNAME(CNAME(name("relay.")))
        );
        assert_eq!(
            settings.records[3].data,
            RData::CNAME(CNAME(name("relay.lab.test.")))
        );
        // An absolute owner outside the zone cannot be served; it is not quietly made relative.
        let error = DnsSettings::new(
            &config(vec![(
                "host.example.org.",
                DnsRecordData::A(Ipv4Addr::new(10, 99, 0, 9)),
            )]),
            &[],
            &[],
        )
        .unwrap_err();
        assert!(error.to_string().contains("host.example.org."), "{error}");
    }

    #[test]
    fn a_cname_must_be_alone_even_when_spelled_two_ways() {
        let error = DnsSettings::new(
            &config(vec![
                ("nas", DnsRecordData::A(Ipv4Addr::new(10, 99, 0, 5))),
                ("NAS.lab.test", DnsRecordData::Cname("x".into())),
            ]),
            &[],
            &[],
        )
        .unwrap_err();
        assert!(matches!(error, DnsError::Records(_)), "{error}");
    }

    #[test]
    fn long_txt_is_split_into_character_strings() {
        let long = "x".repeat(600);
        let data = txt(&long);
        let pieces: Vec<usize> = data.txt_data.iter().map(|piece| piece.len()).collect();
        assert_eq!(pieces, [255, 255, 90]);
    }

    #[test]
    fn recursion_defaults_to_served_networks_and_loopback() {
        let served: Vec<IpNet> = vec!["10.99.0.0/24".parse().unwrap()];
        let settings = DnsSettings::new(&config(vec![]), &served, &[]).unwrap();
        assert!(settings.may_recurse("10.99.0.20".parse().unwrap()));
        assert!(settings.may_recurse("127.0.0.1".parse().unwrap()));
        assert!(settings.may_recurse("::1".parse().unwrap()));
        assert!(settings.may_recurse("::ffff:10.99.0.20".parse().unwrap()));
        assert!(!settings.may_recurse("192.0.2.1".parse().unwrap()));
        let mut explicit = config(vec![]);
        explicit.allow_recursion_from = Some(vec!["192.0.2.0/24".parse().unwrap()]);
        let settings = DnsSettings::new(&explicit, &served, &[]).unwrap();
        assert!(!settings.may_recurse("127.0.0.1".parse().unwrap()));
        assert!(settings.may_recurse("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn hostnames_become_one_label() {
        let domain = name("lab.test.");
        assert_eq!(host_label("Node1", &domain).as_deref(), Some("node1"));
        assert_eq!(host_label("node1\0", &domain).as_deref(), Some("node1"));
        assert_eq!(
            host_label("node1.lab.test.", &domain).as_deref(),
            Some("node1")
        );
        assert_eq!(
            host_label("node1.example.org", &domain).as_deref(),
            Some("node1")
        );
        assert_eq!(host_label("my laptop", &domain), None);
        assert_eq!(host_label("my_laptop", &domain), None);
        assert_eq!(host_label("-x", &domain), None);
        assert_eq!(host_label("", &domain), None);
        assert_eq!(host_label(&"a".repeat(64), &domain), None);
    }
}
