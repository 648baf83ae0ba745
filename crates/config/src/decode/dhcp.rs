//! The `dhcp` section.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;

use crate::model::*;
use crate::yaml::{Kind, Node};

use super::decode_boot;
use super::dhcp_options::{by_code, decode_options, hex_value};
use super::reader::*;

const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(12 * 3600);
const LEASE_TIME_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(365 * 86_400);
const DEFAULT_PING_TIMEOUT: Duration = Duration::from_millis(300);

const DHCP_KEYS: &[&str] = &[
    "mode",
    "interfaces",
    "lease_time",
    "subnets",
    "reservations",
    "v6",
    "known_clients_only",
    "ping_check",
    "ping_timeout",
    "other_servers",
    "advertise",
    "vendor_classes",
    "options",
    "classes",
];

const SUBNET_KEYS: &[&str] = &[
    "network",
    "range",
    "router",
    "dns",
    "domain",
    "lease_time",
    "known_clients_only",
    "options",
];

const SUBNET6_KEYS: &[&str] = &["network", "range", "dns", "domain"];

const RESERVATION_KEYS: &[&str] = &[
    "mac",
    "client_id",
    "uuid",
    "duid",
    "ip",
    "hostname",
    "boot",
    "ignore",
    "options",
    "labels",
];

const VENDOR_CLASSES_KEYS: &[&str] = &["pxe", "http"];

const CLASS_KEYS: &[&str] = &["name", "vendor_class", "options"];

const CLIENT_ID_KEYS: &[&str] = &["hex"];

const V6_KEYS: &[&str] = &[
    "router_advertisements",
    "default_router",
    "quiet_ra",
    "preference",
    "subnets",
];

pub(super) fn decode_dhcp(ctx: &mut Ctx, node: &Node) -> Option<DhcpConfig> {
    let f = open_map(ctx, "dhcp", node, DHCP_KEYS)?;
    let mode = match f.get("mode") {
        Some(n) => choice(ctx, "dhcp.mode", n, &["server", "proxy", "off"]),
        None => Some("proxy"),
    };
    let interfaces = f
        .get("interfaces")
        .and_then(|n| interfaces(ctx, "dhcp.interfaces", n));
    let lease_time = f
        .get("lease_time")
        .and_then(|n| duration(ctx, "dhcp.lease_time", n, LEASE_TIME_RANGE))
        .unwrap_or(DEFAULT_LEASE_TIME);
    let known_clients_only = f
        .get("known_clients_only")
        .and_then(|n| boolean(ctx, "dhcp.known_clients_only", n))
        .unwrap_or(false);
    let ping_check = f
        .get("ping_check")
        .and_then(|n| boolean(ctx, "dhcp.ping_check", n))
        .unwrap_or(true);
    let ping_timeout = f
        .get("ping_timeout")
        .and_then(|n| {
            let d = duration(
                ctx,
                "dhcp.ping_timeout",
                n,
                Duration::from_millis(10)..=Duration::from_secs(5),
            )?;
            if !ping_check {
                ctx.warn(
                    "dhcp.ping_timeout",
                    n,
                    "has no effect: dhcp.ping_check is false",
                );
            }
            Some(d)
        })
        .unwrap_or(DEFAULT_PING_TIMEOUT);
    let other_servers_expected = f
        .get("other_servers")
        .and_then(|n| choice(ctx, "dhcp.other_servers", n, &["refuse", "expected"]))
        == Some("expected");
    let advertise = f
        .get("advertise")
        .and_then(|n| advertise(ctx, "dhcp.advertise", n));
    let vendor_classes = f
        .get("vendor_classes")
        .map(|n| vendor_classes(ctx, n))
        .unwrap_or_default();
    let options = f
        .get("options")
        .map(|n| decode_options(ctx, "dhcp.options", n))
        .unwrap_or_default();
    let classes = f
        .get("classes")
        .map(|n| decode_classes(ctx, n))
        .unwrap_or_default();
    let subnets = match f.get("subnets") {
        Some(n) => decode_subnets(ctx, "dhcp.subnets", n, false),
        None => Vec::new(),
    };
    let mut v6 = None;
    let mut subnets6 = Vec::new();
    let mut quiet_ra = QuietRa::Auto;
    if let Some(n) = f.get("v6")
        && let Some(g) = open_map(ctx, "dhcp.v6", n, V6_KEYS)
    {
        if let Some(n) = g.get("quiet_ra") {
            match choice(ctx, "dhcp.v6.quiet_ra", n, &["auto", "off"]) {
                Some("off") => quiet_ra = QuietRa::Off,
                Some(_) if mode == Some("proxy") => ctx.warn(
                    "dhcp.v6.quiet_ra",
                    n,
                    "auto is off in proxy mode: another DHCP server's segment is not ours to \
                     advertise on",
                ),
                _ => {}
            }
        }
        // quiet_ra alone does not turn DHCPv6 on.
        let only_quiet_ra = g.get("quiet_ra").is_some()
            && g.values
                .iter()
                .all(|(k, v)| *k == "quiet_ra" || v.is_null());
        let router_advertisements = g
            .get("router_advertisements")
            .and_then(|n| boolean(ctx, "dhcp.v6.router_advertisements", n))
            .unwrap_or(false);
        if router_advertisements
            && mode == Some("proxy")
            && let Some(n) = g.get("router_advertisements")
        {
            ctx.warn(
                "dhcp.v6.router_advertisements",
                n,
                "not sent in proxy mode: the segment's own router advertises (and names the \
                 DHCPv6 server with its M flag)",
            );
        }
        let default_router = match g.get("default_router") {
            Some(n) => {
                let on = boolean(ctx, "dhcp.v6.default_router", n).unwrap_or(false);
                if on && !router_advertisements {
                    ctx.warn(
                        "dhcp.v6.default_router",
                        n,
                        "does nothing without dhcp.v6.router_advertisements: true (the router \
                         lifetime is carried by those advertisements)",
                    );
                }
                on
            }
            None => false,
        };
        let preference = g
            .get("preference")
            .and_then(|n| integer(ctx, "dhcp.v6.preference", n, 0..=255))
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(DEFAULT_V6_PREFERENCE);
        if let Some(n) = g.get("subnets") {
            subnets6 = decode_subnets(ctx, "dhcp.v6.subnets", n, true);
        }
        if !only_quiet_ra {
            v6 = Some((router_advertisements, default_router, preference));
        }
    }
    let all_subnets_ok = subnets.iter().chain(&subnets6).all(Option::is_some);
    let subnets: Vec<DhcpSubnet> = subnets.into_iter().flatten().collect();
    let subnets6: Vec<DhcpSubnet> = subnets6.into_iter().flatten().collect();

    let mut reservations = Vec::new();
    if let Some(n) = f.get("reservations") {
        reservations = decode_reservations(ctx, n, all_subnets_ok.then_some((&subnets, &subnets6)));
    }
    if mode == Some("server") && subnets.is_empty() && subnets6.is_empty() && all_subnets_ok {
        let at = f.get("subnets").unwrap_or(f.node);
        ctx.error(
            "dhcp.subnets",
            at,
            "mode: server needs at least one subnet (in dhcp.subnets or dhcp.v6.subnets) \
             to hand out addresses",
        );
    }
    let mode = match mode {
        Some("server") => DhcpMode::Server,
        Some("off") => return None,
        _ => DhcpMode::Proxy,
    };
    Some(DhcpConfig {
        mode,
        interfaces,
        lease_time,
        subnets,
        reservations,
        v6: v6.map(
            |(router_advertisements, default_router, preference)| Dhcp6Config {
                router_advertisements,
                default_router,
                preference,
                subnets: subnets6,
            },
        ),
        quiet_ra,
        known_clients_only,
        ping_check,
        ping_timeout,
        other_servers_expected,
        advertise,
        vendor_classes,
        options,
        classes,
    })
}

/// `dhcp.advertise`: an IPv4 address clients can send to.
fn advertise(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Ipv4Addr> {
    let addr = match ip(ctx, key, node)? {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => {
            ctx.error(
                key,
                node,
                format!("{a} is not an IPv4 address (it goes in siaddr and option 66)"),
            );
            return None;
        }
    };
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
        ctx.error(
            key,
            node,
            format!("{addr} is not an address clients can fetch boot files from"),
        );
        return None;
    }
    Some(addr)
}

/// One list of `dhcp.vendor_classes`: option 60 prefixes, none empty, none twice.
fn prefixes(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<String>> {
    let items = list(ctx, key, node)?;
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        let k = item_key(key, i);
        let Some(prefix) = vendor_class_text(ctx, &k, item) else {
            ok = false;
            continue;
        };
        if out.contains(&prefix) {
            ctx.error(&k, item, format!("\"{prefix}\" is listed twice"));
            ok = false;
            continue;
        }
        out.push(prefix);
    }
    ok.then_some(out)
}

/// A vendor class (option 60) or a prefix of one: not empty, at most 255 bytes.
fn vendor_class_text(ctx: &mut Ctx, key: &str, node: &Node) -> Option<String> {
    let s = nonempty_text(ctx, key, node)?;
    if s.len() > 255 {
        ctx.error(
            key,
            node,
            "is longer than 255 bytes, so no vendor class (option 60) can start with it",
        );
        return None;
    }
    Some(s)
}

fn vendor_classes(ctx: &mut Ctx, node: &Node) -> DhcpVendorClasses {
    let mut out = DhcpVendorClasses::default();
    let Some(f) = open_map(ctx, "dhcp.vendor_classes", node, VENDOR_CLASSES_KEYS) else {
        return out;
    };
    if let Some(n) = f.get("pxe")
        && let Some(list) = prefixes(ctx, &f.key("pxe"), n)
    {
        if list.is_empty() {
            ctx.warn(
                &f.key("pxe"),
                n,
                "is empty: no client is taken for a PXE client (PXE ROMs send \"PXEClient\")",
            );
        }
        out.pxe = list;
    }
    if let Some(n) = f.get("http")
        && let Some(list) = prefixes(ctx, &f.key("http"), n)
    {
        out.http = list;
    }
    out
}

fn decode_classes(ctx: &mut Ctx, node: &Node) -> Vec<DhcpClass> {
    let mut out: Vec<DhcpClass> = Vec::new();
    let Some(items) = seq(ctx, "dhcp.classes", node) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let key = item_key("dhcp.classes", i);
        let before = ctx.errors();
        let Some(f) = open_map(ctx, &key, item, CLASS_KEYS) else {
            continue;
        };
        let name = match f.get("name") {
            None => {
                ctx.error(
                    &f.key("name"),
                    item,
                    "missing: every class needs a name (used in logs)",
                );
                None
            }
            Some(n) => nonempty_text(ctx, &f.key("name"), n).inspect(|name| {
                if out.iter().any(|c| c.name == *name) {
                    ctx.error(
                        &f.key("name"),
                        n,
                        format!("the class name \"{name}\" is used twice"),
                    );
                }
            }),
        };
        let vendor_class = match f.get("vendor_class") {
            None => {
                ctx.error(
                    &f.key("vendor_class"),
                    item,
                    "missing: a class matches clients by the start of their vendor class \
                     (option 60), such as \"PXEClient:Arch:00007\"",
                );
                None
            }
            Some(n) => vendor_class_text(ctx, &f.key("vendor_class"), n),
        };
        let options = f
            .get("options")
            .map(|n| decode_options(ctx, &f.key("options"), n))
            .unwrap_or_default();
        if ctx.errors() > before {
            continue;
        }
        if let (Some(name), Some(vendor_class)) = (name, vendor_class) {
            out.push(DhcpClass {
                name,
                vendor_class,
                options,
            });
        }
    }
    out
}

fn interfaces(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<String>> {
    let items = list(ctx, key, node)?;
    if items.is_empty() {
        ctx.error(
            key,
            node,
            "is empty: omit it to use every non-loopback interface",
        );
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let k = item_key(key, i);
        let Some(name) = nonempty_text(ctx, &k, item) else {
            continue;
        };
        if name.len() > 15
            || name.contains(['/', '\0'])
            || name.contains(char::is_whitespace)
            || name == "."
            || name == ".."
        {
            ctx.error(
                &k,
                item,
                format!("\"{name}\" is not a valid interface name"),
            );
            continue;
        }
        if names.contains(&name) {
            ctx.error(&k, item, format!("\"{name}\" is listed twice"));
            continue;
        }
        names.push(name);
    }
    Some(names)
}

/// Decodes a list of subnets; one entry per item, `None` for those with errors.
fn decode_subnets(ctx: &mut Ctx, key: &str, node: &Node, v6: bool) -> Vec<Option<DhcpSubnet>> {
    let Some(items) = seq(ctx, key, node) else {
        return vec![None];
    };
    let mut out: Vec<Option<DhcpSubnet>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let k = item_key(key, i);
        let subnet = decode_subnet(ctx, &k, item, v6);
        if let Some(s) = &subnet {
            let earlier = out.iter().flatten().find(|o| {
                o.network.contains(&s.network.network()) || s.network.contains(&o.network.network())
            });
            if let Some(o) = earlier {
                ctx.error(
                    &format!("{k}.network"),
                    item,
                    format!("{} overlaps {} listed earlier", s.network, o.network),
                );
            }
        }
        out.push(subnet);
    }
    out
}

fn decode_subnet(ctx: &mut Ctx, key: &str, node: &Node, v6: bool) -> Option<DhcpSubnet> {
    let before = ctx.errors();
    let f = open_map(ctx, key, node, if v6 { SUBNET6_KEYS } else { SUBNET_KEYS })?;
    let family = if v6 { "IPv6" } else { "IPv4" };
    // With the network in the wrong family, every address would be reported too: once is enough.
    let mut wrong_family = false;
    let network = match f.get("network") {
        None => {
            ctx.error(
                &f.key("network"),
                node,
                "missing: every subnet needs a network such as \"10.99.0.0/24\"",
            );
            None
        }
        Some(n) => cidr(ctx, &f.key("network"), n).and_then(|net| {
            let problem = match net {
                IpNet::V4(v4) if !v6 => (v4.prefix_len() > 30)
                    .then_some("a DHCP subnet needs room for hosts: /30 or larger"),
                IpNet::V6(_) if v6 => None,
                IpNet::V4(_) => Some("IPv4 subnets belong under dhcp.subnets"),
                IpNet::V6(_) => Some("IPv6 subnets belong under dhcp.v6.subnets"),
            };
            wrong_family = net.addr().is_ipv6() != v6;
            match problem {
                Some(problem) => {
                    ctx.error(&f.key("network"), n, format!("{net}: {problem}"));
                    None
                }
                None => Some(net),
            }
        }),
    };
    let in_network = |net: &Option<IpNet>, ip: &IpAddr| net.is_none_or(|net| net.contains(ip));
    let reserved_v4 = |net: &Option<IpNet>, ip: &IpAddr| match net {
        Some(IpNet::V4(n)) => *ip == IpAddr::V4(n.network()) || *ip == IpAddr::V4(n.broadcast()),
        _ => false,
    };
    let range = match f.get("range") {
        None => {
            ctx.error(
                &f.key("range"),
                node,
                "missing: every subnet needs a range [first, last] of addresses to hand out",
            );
            None
        }
        Some(n) => match &n.kind {
            Kind::Seq(items) if items.len() == 2 => {
                let rk = f.key("range");
                let start = ip(ctx, &item_key(&rk, 0), &items[0]);
                let end = ip(ctx, &item_key(&rk, 1), &items[1]);
                let mut ok = true;
                for (i, addr) in [start, end].iter().enumerate() {
                    let Some(addr) = addr else { continue };
                    if addr.is_ipv6() != v6 {
                        if !wrong_family {
                            ctx.error(
                                &item_key(&rk, i),
                                &items[i],
                                format!("{addr} is not an {family} address"),
                            );
                        }
                        ok = false;
                    } else if !in_network(&network, addr) {
                        if let Some(net) = &network {
                            ctx.error(
                                &item_key(&rk, i),
                                &items[i],
                                format!("{addr} is outside the subnet's network {net}"),
                            );
                        }
                        ok = false;
                    } else if reserved_v4(&network, addr) {
                        ctx.error(
                            &item_key(&rk, i),
                            &items[i],
                            format!("{addr} is the network or broadcast address"),
                        );
                        ok = false;
                    }
                }
                match (start, end) {
                    (Some(s), Some(e)) if ok => {
                        if s > e {
                            ctx.error(
                                &rk,
                                n,
                                format!("the first address {s} is above the last {e}"),
                            );
                            None
                        } else {
                            Some((s, e))
                        }
                    }
                    _ => None,
                }
            }
            _ => {
                ctx.error(
                    &f.key("range"),
                    n,
                    format!(
                        "expected [first, last] (two addresses), got {}",
                        n.describe()
                    ),
                );
                None
            }
        },
    };
    let router = f.get("router").and_then(|n| {
        let k = f.key("router");
        let addr = ip(ctx, &k, n)?;
        if addr.is_ipv6() || !in_network(&network, &addr) || reserved_v4(&network, &addr) {
            let net = network.map(|n| n.to_string()).unwrap_or_default();
            ctx.error(
                &k,
                n,
                format!("{addr} is not a host address inside the subnet's network {net}"),
            );
            return None;
        }
        if let Some((s, e)) = range
            && s <= addr
            && addr <= e
        {
            ctx.warn(
                &k,
                n,
                format!("{addr} is inside the range, so it could be handed out to a client"),
            );
        }
        Some(addr)
    });
    let dns = f.get("dns").and_then(|n| {
        let k = f.key("dns");
        let items = list(ctx, &k, n)?;
        let mut addrs = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let Some(addr) = ip(ctx, &item_key(&k, i), item) else {
                continue;
            };
            if addr.is_ipv6() != v6 {
                ctx.error(
                    &item_key(&k, i),
                    item,
                    format!(
                        "{addr}: the DNS servers of an {family} subnet must be {family} addresses"
                    ),
                );
                continue;
            }
            addrs.push(addr);
        }
        Some(addrs)
    });
    let domain = f
        .get("domain")
        .and_then(|n| dns_name(ctx, &f.key("domain"), n, false));
    let lease_time = f
        .get("lease_time")
        .and_then(|n| duration(ctx, &f.key("lease_time"), n, LEASE_TIME_RANGE));
    let known_clients_only = f
        .get("known_clients_only")
        .and_then(|n| boolean(ctx, &f.key("known_clients_only"), n))
        .unwrap_or(false);
    let options = match f.get("options") {
        Some(n) => {
            let options = decode_options(ctx, &f.key("options"), n);
            let keys = [
                (f.get("router").is_some(), "router", 3),
                (f.get("dns").is_some(), "dns", 6),
                (f.get("domain").is_some(), "domain", 15),
            ];
            for (set, name, code) in keys {
                if set && options.iter().any(|o| o.code == code) {
                    let option = by_code(code).map(|d| d.name).unwrap_or_default();
                    ctx.warn(
                        &f.key("options"),
                        n,
                        format!(
                            "sets option {code} ({option}) and the subnet's {name} key too: \
                             write only one of them"
                        ),
                    );
                }
            }
            options
        }
        None => Vec::new(),
    };
    if ctx.errors() > before {
        return None;
    }
    Some(DhcpSubnet {
        network: network?,
        range: range?,
        router,
        dns,
        domain,
        lease_time,
        known_clients_only,
        options,
    })
}

/// Accepts `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` in any case; returns lower-case colons.
/// An SMBIOS UUID written `8-4-4-4-12` (or as 32 hex digits), in RFC 4122 byte order.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    let dashes_ok = !s.contains('-') || s.split('-').map(str::len).eq([8, 4, 4, 4, 12]);
    if !dashes_ok || digits.len() != 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut uuid = [0u8; 16];
    for (i, byte) in uuid.iter_mut().enumerate() {
        *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(uuid)
}

pub(crate) fn normalise_mac(s: &str) -> Option<String> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = s.split(sep).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| parts.join(":").to_ascii_lowercase())
}

type SubnetLists<'a> = (&'a Vec<DhcpSubnet>, &'a Vec<DhcpSubnet>);

fn decode_reservations(
    ctx: &mut Ctx,
    node: &Node,
    subnets: Option<SubnetLists<'_>>,
) -> Vec<DhcpReservation> {
    let mut out: Vec<DhcpReservation> = Vec::new();
    let Some(items) = seq(ctx, "dhcp.reservations", node) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let key = item_key("dhcp.reservations", i);
        let before = ctx.errors();
        let Some(f) = open_map(ctx, &key, item, RESERVATION_KEYS) else {
            continue;
        };
        let mac = f.get("mac").and_then(|n| {
            let s = text(ctx, &f.key("mac"), n)?;
            match normalise_mac(&s) {
                Some(mac) => {
                    if out.iter().any(|r| r.mac.as_ref() == Some(&mac)) {
                        ctx.error(&f.key("mac"), n, format!("{mac} is reserved twice"));
                    }
                    Some(mac)
                }
                None => {
                    ctx.error(
                        &f.key("mac"),
                        n,
                        format!(
                            "expected a MAC address such as \"52:54:00:00:00:10\", got \"{s}\""
                        ),
                    );
                    None
                }
            }
        });
        let uuid = f.get("uuid").and_then(|n| {
            let k = f.key("uuid");
            let s = text(ctx, &k, n)?;
            let Some(uuid) = parse_uuid(&s) else {
                ctx.error(
                    &k,
                    n,
                    format!(
                        "expected an SMBIOS UUID such as \"4c4c4544-0042-3510-8052-b3c04f595231\", \
                         got \"{s}\""
                    ),
                );
                return None;
            };
            if out.iter().any(|r| r.uuid == Some(uuid)) {
                ctx.error(&k, n, format!("{s} is reserved twice"));
            }
            Some(uuid)
        });
        let duid = f.get("duid").and_then(|n| {
            let k = f.key("duid");
            let duid = hex_value(ctx, &k, n)?;
            if duid.len() < 3 || duid.len() > 130 {
                // RFC 8415 11.1: a type code and at least one byte, at most 128 bytes after it.
                ctx.error(
                    &k,
                    n,
                    format!("a DUID is 3 to 130 bytes long, this one is {}", duid.len()),
                );
                return None;
            }
            if out.iter().any(|r| r.duid.as_ref() == Some(&duid)) {
                ctx.error(&k, n, "this duid is already in an earlier reservation");
            }
            Some(duid)
        });
        // `None` when `ignore` is written but is not a boolean (already reported).
        let ignore = match f.get("ignore") {
            Some(n) => boolean(ctx, &f.key("ignore"), n),
            None => Some(false),
        };
        let client_id = f.get("client_id").and_then(|n| {
            let k = f.key("client_id");
            let id = client_id(ctx, &k, n)?;
            if out.iter().any(|r| r.client_id.as_ref() == Some(&id)) {
                ctx.error(&k, n, "this client_id is already in an earlier reservation");
            }
            Some(id)
        });
        // Without an address the reservation still names a known client (for
        // known_clients_only), its hostname, boot files and options; it gets an address from
        // the range, and proxy mode never hands out one anyway.
        let addr = match f.get("ip") {
            None => None,
            Some(n) => ip(ctx, &f.key("ip"), n).inspect(|addr| {
                if out.iter().any(|r| r.ip == Some(*addr)) {
                    ctx.error(&f.key("ip"), n, format!("{addr} is reserved twice"));
                }
                if let Some((v4, v6)) = subnets
                    && !v4.iter().chain(v6.iter()).any(|s| s.network.contains(addr))
                {
                    ctx.error(
                        &f.key("ip"),
                        n,
                        format!(
                            "{addr} is not inside any subnet in dhcp.subnets or dhcp.v6.subnets"
                        ),
                    );
                }
            }),
        };
        let hostname = f.get("hostname").and_then(|n| {
            let k = f.key("hostname");
            let name = text(ctx, &k, n)?;
            if let Some(problem) =
                label_problem(&name, false).or(name.is_empty().then_some("is empty"))
            {
                ctx.error(
                    &k,
                    n,
                    format!("\"{name}\" is not a valid host name (one DNS label): it {problem}"),
                );
                return None;
            }
            if out.iter().any(|r| {
                r.hostname
                    .as_ref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&name))
            }) {
                ctx.error(&k, n, format!("the host name \"{name}\" is used twice"));
            }
            Some(name)
        });
        let boot = f
            .get("boot")
            .map(|n| decode_boot(ctx, &f.key("boot"), n))
            .unwrap_or_default();
        let options = f
            .get("options")
            .map(|n| decode_options(ctx, &f.key("options"), n))
            .unwrap_or_default();
        let labels = f
            .get("labels")
            .map(|n| super::profiles::labels(ctx, &f.key("labels"), n))
            .unwrap_or_default();
        let ignore = ignore.unwrap_or(false);
        if ignore {
            for name in ["ip", "hostname", "boot", "options"] {
                if let Some(n) = f.get(name) {
                    ctx.warn(
                        &f.key(name),
                        n,
                        "is never used: this reservation has ignore: true \
                         (the client is never answered)",
                    );
                }
            }
        }
        if ctx.errors() > before {
            continue;
        }
        if mac.is_none() && client_id.is_none() && uuid.is_none() && duid.is_none() {
            ctx.error(
                &key,
                item,
                "a reservation needs the machine's mac, client_id, uuid or duid",
            );
            continue;
        }
        {
            out.push(DhcpReservation {
                mac,
                client_id,
                uuid,
                duid,
                ip: addr,
                hostname,
                boot,
                ignore,
                options,
                labels,
            });
        }
    }
    out
}

/// `client_id`: `{ hex: "01:52:54:00:00:00:10" }` for the exact bytes of option 61, or a
/// string whose bytes are the identifier.
fn client_id(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let bytes = match &node.kind {
        Kind::Map(_) => {
            let f = open_map(ctx, key, node, CLIENT_ID_KEYS)?;
            match f.get("hex") {
                Some(n) => hex_value(ctx, &f.key("hex"), n)?,
                None => {
                    if !f.unknown {
                        ctx.error(
                            key,
                            node,
                            "expected { hex: \"01:52:54:00:00:00:10\" } or a string",
                        );
                    }
                    return None;
                }
            }
        }
        _ => text(ctx, key, node)?.into_bytes(),
    };
    if bytes.is_empty() || bytes.len() > 255 {
        ctx.error(
            key,
            node,
            format!(
                "is {} bytes: a client identifier (option 61) is 1 to 255 bytes",
                bytes.len()
            ),
        );
        return None;
    }
    Some(bytes)
}
