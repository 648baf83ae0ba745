//! The `dns` section.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::*;
use crate::yaml::{Kind, Node};

use super::reader::*;

const DEFAULT_DNS_LISTEN: [&str; 2] = ["0.0.0.0:53", "[::]:53"];

const DNS_KEYS: &[&str] = &[
    "enabled",
    "listen",
    "domain",
    "records",
    "upstreams",
    "allow_recursion_from",
];

const RECORD_KEYS: &[&str] = &["name", "a", "aaaa", "cname", "txt", "srv"];

const RECORD_DATA_KEYS: &[&str] = &["a", "aaaa", "cname", "txt", "srv"];

const SRV_KEYS: &[&str] = &["priority", "weight", "port", "target"];

pub(super) fn decode_dns(ctx: &mut Ctx, node: &Node) -> Option<DnsConfig> {
    let f = open_map(ctx, "dns", node, DNS_KEYS)?;
    let enabled = f
        .get("enabled")
        .and_then(|n| boolean(ctx, "dns.enabled", n))
        .unwrap_or(true);
    let listen = match f.get("listen") {
        Some(n) => {
            let before = ctx.errors();
            let addrs = socket_addrs(ctx, "dns.listen", n, None).unwrap_or_default();
            if addrs.is_empty() && enabled && ctx.errors() == before {
                ctx.error(
                    "dns.listen",
                    n,
                    "needs at least one address (to turn DNS off, set dns.enabled: false)",
                );
            }
            addrs
        }
        None => default_addrs(&DEFAULT_DNS_LISTEN),
    };
    let domain = match f.get("domain") {
        Some(n) => dns_name(ctx, "dns.domain", n, false),
        None => {
            if enabled {
                ctx.error(
                    "dns.domain",
                    node,
                    "missing: DNS needs the local domain, such as \"lab.test\"",
                );
            }
            None
        }
    };
    let records = f
        .get("records")
        .map(|n| decode_records(ctx, n, domain.as_deref()))
        .unwrap_or_default();
    let upstreams = f.get("upstreams").and_then(|n| {
        let addrs = socket_addrs(ctx, "dns.upstreams", n, Some(53))?;
        for (i, addr) in addrs.iter().enumerate() {
            if addr.port() == 0 || addr.ip().is_unspecified() {
                let item = match &n.kind {
                    Kind::Seq(items) => items.get(i).unwrap_or(n),
                    _ => n,
                };
                ctx.error(
                    &item_key("dns.upstreams", i),
                    item,
                    format!("{addr} is not an address a query can be sent to"),
                );
            }
        }
        Some(addrs)
    });
    let upstreams = upstreams.unwrap_or_default();
    let allow_recursion_from = f
        .get("allow_recursion_from")
        .and_then(|n| cidr_list(ctx, "dns.allow_recursion_from", n));
    if let (Some(nets), Some(n)) = (&allow_recursion_from, f.get("allow_recursion_from")) {
        if upstreams.is_empty() {
            ctx.warn(
                "dns.allow_recursion_from",
                n,
                "has no effect: dns.upstreams is empty, so nothing is forwarded",
            );
        } else if nets.iter().any(|net| net.prefix_len() == 0) {
            ctx.warn(
                "dns.allow_recursion_from",
                n,
                "allows everyone: this is an open resolver that can be abused for amplification",
            );
        }
    }
    if !enabled {
        return None;
    }
    Some(DnsConfig {
        listen,
        domain: domain.unwrap_or_default(),
        records,
        upstreams,
        allow_recursion_from,
    })
}

fn u16_field(ctx: &mut Ctx, f: &Fields<'_>, name: &str, node: &Node) -> Option<u16> {
    match f.get(name) {
        Some(n) => integer(ctx, &f.key(name), n, 0..=65535).and_then(|v| u16::try_from(v).ok()),
        None => {
            ctx.error(
                &f.key(name),
                node,
                format!("missing: an SRV record needs {name}"),
            );
            None
        }
    }
}

fn decode_records(ctx: &mut Ctx, node: &Node, domain: Option<&str>) -> Vec<DnsRecord> {
    let mut out: Vec<DnsRecord> = Vec::new();
    // Per owner (however spelled): whether the records kept so far include a CNAME.
    let mut owners: HashMap<String, bool> = HashMap::new();
    let Some(items) = seq(ctx, "dns.records", node) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let key = item_key("dns.records", i);
        let Some(f) = open_map(ctx, &key, item, RECORD_KEYS) else {
            continue;
        };
        let name = match f.get("name") {
            Some(n) => {
                let s = text(ctx, &f.key("name"), n);
                s.and_then(|s| {
                    if s == "@" {
                        return Some(s);
                    }
                    let name = dns_name_as_written(ctx, &f.key("name"), n, true)?;
                    let absolute = name.strip_suffix('.');
                    match (absolute, domain) {
                        (Some(absolute), Some(domain)) if !in_domain(absolute, domain) => {
                            ctx.error(
                                &f.key("name"),
                                n,
                                format!(
                                    "\"{name}\" is outside dns.domain \"{domain}\": a trailing dot makes a \
                                     name absolute, and only names in the domain can be served \
                                     (drop the dot for \"{absolute}.{domain}\")"
                                ),
                            );
                            None
                        }
                        _ => Some(name),
                    }
                })
            }
            None => {
                ctx.error(&f.key("name"), item, "missing: a record needs a name");
                None
            }
        };
        let present: Vec<&str> = RECORD_DATA_KEYS
            .iter()
            .copied()
            .filter(|k| f.get(k).is_some())
            .collect();
        let [kind] = present.as_slice() else {
            if present.is_empty() && f.unknown {
                continue; // the unknown key is the problem, already reported
            }
            let found = if present.is_empty() {
                "none".to_string()
            } else {
                present.join(", ")
            };
            ctx.error(
                &key,
                item,
                format!("a record needs exactly one of a, aaaa, cname, txt, srv (found: {found})"),
            );
            continue;
        };
        let Some(n) = f.get(kind) else { continue };
        let k = f.key(kind);
        let data = match *kind {
            "a" => match ip(ctx, &k, n) {
                Some(IpAddr::V4(v4)) => Some(DnsRecordData::A(v4)),
                Some(other) => {
                    ctx.error(&k, n, format!("{other} is not an IPv4 address (use aaaa)"));
                    None
                }
                None => None,
            },
            "aaaa" => match ip(ctx, &k, n) {
                Some(IpAddr::V6(v6)) => Some(DnsRecordData::Aaaa(v6)),
                Some(other) => {
                    ctx.error(&k, n, format!("{other} is not an IPv6 address (use a)"));
                    None
                }
                None => None,
            },
            "cname" => dns_name_as_written(ctx, &k, n, true).map(DnsRecordData::Cname),
            "txt" => text(ctx, &k, n).map(DnsRecordData::Txt),
            _ => open_map(ctx, &k, n, SRV_KEYS).and_then(|g| {
                let priority = u16_field(ctx, &g, "priority", n);
                let weight = u16_field(ctx, &g, "weight", n);
                let port = u16_field(ctx, &g, "port", n);
                let target = match g.get("target") {
                    Some(t) => {
                        let s = text(ctx, &g.key("target"), t);
                        s.and_then(|s| {
                            if s == "." {
                                Some(s)
                            } else {
                                dns_name_as_written(ctx, &g.key("target"), t, false)
                            }
                        })
                    }
                    None => {
                        ctx.error(&g.key("target"), n, "missing: an SRV record needs target");
                        None
                    }
                };
                Some(DnsRecordData::Srv {
                    priority: priority?,
                    weight: weight?,
                    port: port?,
                    target: target?,
                })
            }),
        };
        let (Some(name), Some(data)) = (name, data) else {
            continue;
        };
        let is_cname = matches!(data, DnsRecordData::Cname(_));
        let owner = owner_key(&name, domain);
        if owners
            .get(&owner)
            .is_some_and(|has_cname| is_cname || *has_cname)
        {
            ctx.error(
                &key,
                item,
                format!(
                    "\"{name}\" has a CNAME and another record: \
                     a CNAME must be the only record of its name"
                ),
            );
            continue;
        }
        *owners.entry(owner).or_default() |= is_cname;
        out.push(DnsRecord { name, data });
    }
    out
}

/// True when `name` is `domain` or below it (both without a trailing dot; case-insensitive).
fn in_domain(name: &str, domain: &str) -> bool {
    let (name, domain) = (name.to_ascii_lowercase(), domain.to_ascii_lowercase());
    name == domain || name.ends_with(&format!(".{domain}"))
}

/// The owner a record name stands for, spelled one way (`nas`, `NAS.lab.test` and
/// `nas.lab.test.` are one name in the domain `lab.test`), so that a CNAME cannot share it.
fn owner_key(name: &str, domain: Option<&str>) -> String {
    let name = name.to_ascii_lowercase();
    let Some(domain) = domain else { return name };
    let domain = domain.to_ascii_lowercase();
    if name == "@" {
        return domain;
    }
    let bare = name.strip_suffix('.').unwrap_or(&name);
    if name.ends_with('.') || in_domain(bare, &domain) {
        bare.to_string()
    } else {
        format!("{bare}.{domain}")
    }
}
