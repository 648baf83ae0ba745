//! DHCPv4 options written in the config (`dhcp.options`, and `options` in subnets, classes and
//! reservations): a mapping from an option name or a decimal code to a value, encoded here into
//! the option's payload bytes by the option's type.
//!
//! Options the table knows take a natural value (`ntp-servers: [10.99.0.1]`); any option may
//! instead say its type explicitly (`{ hex: "01:04:0a:63:00:01" }`, `{ text: ... }`,
//! `{ ips: [...] }`, `{ u8: N }`, `{ u16: N }`, `{ u32: N }`), which is the only way to write a
//! code the table does not know. Options the server sets itself are refused.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::model::DhcpOptionValue;
use crate::yaml::{Kind, Node, Scalar};

use super::reader::*;

/// Largest payload one option can carry: the length octet is one byte. Longer values would
/// have to be split (RFC 3396), which the config does not do.
const MAX_PAYLOAD: usize = 255;

/// How a known option's value is written and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptionType {
    /// One IPv4 address.
    Ip,
    /// A list of IPv4 addresses, at least one.
    Ips,
    /// A signed 32-bit integer (network order).
    I32,
    /// An unsigned byte within a range.
    U8 { min: u8, max: u8 },
    /// An unsigned byte from a fixed set.
    U8Of(&'static [u8]),
    /// An unsigned 16-bit integer within a range.
    U16 { min: u16, max: u16 },
    /// A number of seconds in 32 bits: a whole number or a duration such as `"1h"`.
    Seconds,
    /// `true` or `false`, one byte.
    Bool,
    /// Non-empty text, sent as its UTF-8 bytes.
    Text,
    /// Binary, written as hex only.
    Hex,
    /// A list of DNS names in RFC 1035 wire form without compression (option 119).
    Domains,
    /// Option 33: a list of `"DESTINATION via ROUTER"` host or classful routes.
    StaticRoutes,
    /// Option 121 (RFC 3442): a list of `"NETWORK/LEN via ROUTER"`.
    ClasslessRoutes,
    /// Set by the server itself; refused in the config. The text says what to do instead.
    Owned(&'static str),
}

/// One option the table knows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptionDef {
    pub(crate) name: &'static str,
    pub(crate) code: u8,
    pub(crate) kind: OptionType,
}

const fn def(name: &'static str, code: u8, kind: OptionType) -> OptionDef {
    OptionDef { name, code, kind }
}

const SERVER_SETS: &str = "the server sets it in every reply";

use OptionType::*;

/// Every option with a name, by code. Documented in docs/config.md (a test keeps the two
/// in step).
pub(crate) const OPTIONS: &[OptionDef] = &[
    def("subnet-mask", 1, Ip),
    def("time-offset", 2, I32),
    def("router", 3, Ips),
    def("time-servers", 4, Ips),
    def("dns-servers", 6, Ips),
    def("log-servers", 7, Ips),
    def("lpr-servers", 9, Ips),
    def("hostname", 12, Text),
    def("domain-name", 15, Text),
    def("root-path", 17, Text),
    def("ip-forwarding", 19, Bool),
    def("default-ttl", 23, U8 { min: 1, max: 255 }),
    def(
        "interface-mtu",
        26,
        U16 {
            min: 68,
            max: u16::MAX,
        },
    ),
    def("broadcast-address", 28, Ip),
    def("static-routes", 33, StaticRoutes),
    def("arp-cache-timeout", 35, Seconds),
    def("nis-domain", 40, Text),
    def("nis-servers", 41, Ips),
    def("ntp-servers", 42, Ips),
    def("vendor-encapsulated-options", 43, Hex),
    def("netbios-name-servers", 44, Ips),
    def("netbios-node-type", 46, U8Of(&[1, 2, 4, 8])),
    def("netbios-scope", 47, Text),
    def(
        "requested-address",
        50,
        Owned("the client asks for it; a reservation fixes a client's address"),
    ),
    def(
        "lease-time",
        51,
        Owned("set dhcp.lease_time or a subnet's lease_time instead"),
    ),
    def(
        "option-overload",
        52,
        Owned("the server decides how a reply is packed"),
    ),
    def("message-type", 53, Owned(SERVER_SETS)),
    def("server-identifier", 54, Owned(SERVER_SETS)),
    def(
        "parameter-request-list",
        55,
        Owned("clients send it to ask for options"),
    ),
    def(
        "max-message-size",
        57,
        Owned("clients send it to say how much they accept"),
    ),
    def(
        "renewal-time",
        58,
        Owned("it follows from the lease time (dhcp.lease_time)"),
    ),
    def(
        "rebinding-time",
        59,
        Owned("it follows from the lease time (dhcp.lease_time)"),
    ),
    def(
        "client-identifier",
        61,
        Owned("clients send it; to match on it, give a reservation a client_id"),
    ),
    def("tftp-server-name", 66, Text),
    def("bootfile-name", 67, Text),
    def("smtp-server", 69, Ips),
    def("pop3-server", 70, Ips),
    def("www-server", 72, Ips),
    def("user-class", 77, Hex),
    def(
        "relay-agent-information",
        82,
        Owned("relay agents add it; the server echoes it back"),
    ),
    def("posix-timezone", 100, Text),
    def("tzdb-timezone", 101, Text),
    def("ipv6-only-preferred", 108, Seconds),
    def("captive-portal", 114, Text),
    def("domain-search", 119, Domains),
    def("classless-static-routes", 121, ClasslessRoutes),
    def("tftp-server-address", 150, Ips),
    def("pxe-config-file", 209, Text),
    def("pxe-path-prefix", 210, Text),
    def("reboot-time", 211, Seconds),
    def("wpad", 252, Text),
];

/// Names other servers use (ISC dhcpd, dnsmasq, Kea), only for "did you mean" hints.
const OTHER_NAMES: &[(&str, &str)] = &[
    ("routers", "router"),
    ("gateway", "router"),
    ("domain-name-servers", "dns-servers"),
    ("dns-server", "dns-servers"),
    ("name-servers", "dns-servers"),
    ("host-name", "hostname"),
    ("default-ip-ttl", "default-ttl"),
    ("ntp-server", "ntp-servers"),
    ("vendor-encap", "vendor-encapsulated-options"),
    ("tftp-server", "tftp-server-name"),
    ("boot-file-name", "bootfile-name"),
    ("filename", "bootfile-name"),
    ("classless-static-route", "classless-static-routes"),
    ("classless-route", "classless-static-routes"),
    ("search-domain", "domain-search"),
    ("mtu", "interface-mtu"),
    ("netbios-ns", "netbios-name-servers"),
    ("wpad-url", "wpad"),
    ("dhcp-lease-time", "lease-time"),
];

/// The explicit forms, usable with any code.
const EXPLICIT_KEYS: &[&str] = &["hex", "text", "ips", "u8", "u16", "u32"];

pub(crate) fn by_code(code: u8) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|d| d.code == code)
}

fn by_name(name: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|d| d.name == name)
}

/// A close known name, for "did you mean".
fn closest_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    if let Some(d) = by_name(&lower) {
        return Some(d.name);
    }
    if let Some((_, to)) = OTHER_NAMES.iter().find(|(from, _)| *from == lower) {
        return Some(to);
    }
    OPTIONS
        .iter()
        .map(|d| (distance(&lower, d.name), d.name))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && 2 * d < lower.len().max(k.len()))
        .min()
        .map(|(_, k)| k)
}

/// `"42"` (and `042`): the code, or why it is not one.
fn parse_code(text: &str) -> Option<Result<u8, String>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = text.trim_start_matches('0');
    let n: u32 = if value.len() > 3 {
        u32::MAX
    } else {
        value.parse().unwrap_or(0)
    };
    Some(match n {
        0 => Err("option 0 is padding, not an option: codes are 1 to 254".to_string()),
        255 => Err("option 255 marks the end of the options: codes are 1 to 254".to_string()),
        1..=254 => Ok(n as u8),
        _ => Err(format!("{text} is not an option code: codes are 1 to 254")),
    })
}

/// `01:04:0a:63:00:01` or `01040a630001`, any case; `""` is no bytes.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let bad = || {
        format!(
            "expected hex bytes such as \"01:04:0a:63:00:01\" or \"01040a630001\", got \"{}\"",
            s.escape_debug()
        )
    };
    let byte = |pair: &str| -> Option<u8> {
        (pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u8::from_str_radix(pair, 16).ok())
            .flatten()
    };
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if s.contains(':') {
        return s.split(':').map(|p| byte(p).ok_or_else(bad)).collect();
    }
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(byte).ok_or_else(bad))
        .collect()
}

/// Hex bytes as `01:04:0a`, the form print-config writes.
pub(crate) fn format_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A hex value from the YAML text (quoted or not).
pub(crate) fn hex_value(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let s = text(ctx, key, node)?;
    match parse_hex(&s) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            ctx.error(key, node, e);
            None
        }
    }
}

/// DNS names in RFC 1035 wire form, no compression: each label behind its length, each name
/// ended by a zero byte.
pub(crate) fn encode_domains<S: AsRef<str>>(names: &[S]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref();
        if let Some(problem) = dns_name_problem(name, false) {
            return Err(format!("\"{name}\" is not a valid DNS name: {problem}"));
        }
        let name = name.strip_suffix('.').unwrap_or(name);
        let start = out.len();
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        if out.len() - start > 255 {
            return Err(format!("\"{name}\" is longer than 255 bytes in wire form"));
        }
    }
    Ok(out)
}

/// One RFC 3442 route: the prefix length, the significant octets of the destination, the
/// router.
pub(crate) fn encode_classless_route(net: Ipv4Net, router: Ipv4Addr) -> Vec<u8> {
    let significant = usize::from(net.prefix_len()).div_ceil(8);
    let mut out = vec![net.prefix_len()];
    out.extend_from_slice(&net.network().octets()[..significant]);
    out.extend_from_slice(&router.octets());
    out
}

fn ipv4(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Ipv4Addr> {
    match ip(ctx, key, node)? {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => {
            ctx.error(
                key,
                node,
                format!("{a} is not an IPv4 address (DHCPv4 options carry IPv4 addresses)"),
            );
            None
        }
    }
}

fn ipv4_list(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let items = list(ctx, key, node)?;
    if items.is_empty() {
        ctx.error(key, node, "needs at least one address");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        match ipv4(ctx, &item_key(key, i), item) {
            Some(a) => out.extend_from_slice(&a.octets()),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn signed32(ctx: &mut Ctx, key: &str, node: &Node) -> Option<i32> {
    let s = scalar(ctx, key, node, "a whole number")?;
    let digits = s.text.strip_prefix('-').unwrap_or(&s.text);
    if !s.plain || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        ctx.error(
            key,
            node,
            format!(
                "expected a whole number without quotes (negative allowed), got {}",
                node.describe()
            ),
        );
        return None;
    }
    match s.text.parse::<i32>() {
        Ok(n) => Some(n),
        Err(_) => {
            ctx.error(
                key,
                node,
                format!(
                    "must be between {} and {}, got {}",
                    i32::MIN,
                    i32::MAX,
                    s.text
                ),
            );
            None
        }
    }
}

/// A whole number of seconds that fits 32 bits, written as a number or a duration.
fn seconds32(ctx: &mut Ctx, key: &str, node: &Node) -> Option<u32> {
    let d = duration(
        ctx,
        key,
        node,
        Duration::ZERO..=Duration::from_secs(u64::from(u32::MAX)),
    )?;
    if d.subsec_millis() != 0 {
        ctx.error(
            key,
            node,
            "must be whole seconds (the option counts seconds)",
        );
        return None;
    }
    u32::try_from(d.as_secs()).ok()
}

fn nonempty_list<'a>(ctx: &mut Ctx, key: &str, node: &'a Node) -> Option<Vec<&'a Node>> {
    let items = list(ctx, key, node)?;
    if items.is_empty() {
        ctx.error(key, node, "needs at least one entry");
        return None;
    }
    Some(items)
}

/// `"A via B"`: the two words around `via`.
fn split_via(s: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = s.split_whitespace().collect();
    match words.as_slice() {
        [dest, via, router] if via.eq_ignore_ascii_case("via") => Some((dest, router)),
        _ => None,
    }
}

fn router_address(ctx: &mut Ctx, key: &str, node: &Node, s: &str) -> Option<Ipv4Addr> {
    match s.parse::<Ipv4Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.error(
                key,
                node,
                format!("\"{s}\" is not an IPv4 address (the router of the route)"),
            );
            None
        }
    }
}

fn static_routes(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let items = nonempty_list(ctx, key, node)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        let k = item_key(key, i);
        let Some(s) = text(ctx, &k, item) else {
            ok = false;
            continue;
        };
        let Some((dest, router)) = split_via(&s) else {
            ctx.error(
                &k,
                item,
                format!("expected a route such as \"192.168.5.0 via 10.99.0.1\", got \"{s}\""),
            );
            ok = false;
            continue;
        };
        let dest = match dest.parse::<Ipv4Addr>() {
            Ok(a) if a.is_unspecified() => {
                ctx.error(
                    &k,
                    item,
                    "0.0.0.0 (a default route) is not allowed in option 33: \
                     use router, or classless-static-routes with 0.0.0.0/0",
                );
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                ctx.error(
                    &k,
                    item,
                    format!(
                        "\"{dest}\" is not an IPv4 address (option 33 routes are classful: \
                         use classless-static-routes for \"NETWORK/LEN via ROUTER\")"
                    ),
                );
                None
            }
        };
        let router = router_address(ctx, &k, item, router);
        match (dest, router) {
            (Some(d), Some(r)) => {
                out.extend_from_slice(&d.octets());
                out.extend_from_slice(&r.octets());
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn classless_routes(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let items = nonempty_list(ctx, key, node)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        let k = item_key(key, i);
        let Some(s) = text(ctx, &k, item) else {
            ok = false;
            continue;
        };
        let Some((dest, router)) = split_via(&s) else {
            ctx.error(
                &k,
                item,
                format!("expected a route such as \"10.0.0.0/8 via 10.99.0.1\", got \"{s}\""),
            );
            ok = false;
            continue;
        };
        let net = match dest.parse::<Ipv4Net>() {
            Ok(net) => Some(net),
            Err(_) => match dest.parse::<Ipv4Addr>() {
                Ok(a) => Some(Ipv4Net::from(a)),
                Err(_) => {
                    ctx.error(
                        &k,
                        item,
                        format!(
                            "\"{dest}\" is not an IPv4 network such as \"10.0.0.0/8\" \
                             (or \"0.0.0.0/0\" for the default route)"
                        ),
                    );
                    None
                }
            },
        };
        let net = net.map(|net| {
            let trunc = net.trunc();
            if trunc != net {
                ctx.warn(
                    &k,
                    item,
                    format!("\"{net}\" has host bits set; it means {trunc}"),
                );
            }
            trunc
        });
        let router = router_address(ctx, &k, item, router);
        match (net, router) {
            (Some(n), Some(r)) => out.extend(encode_classless_route(n, r)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn domains(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let items = nonempty_list(ctx, key, node)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        let k = item_key(key, i);
        let Some(s) = text(ctx, &k, item) else {
            ok = false;
            continue;
        };
        match encode_domains(&[&s]) {
            Ok(bytes) => out.extend(bytes),
            Err(e) => {
                ctx.error(&k, item, e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn text_bytes(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let s = text(ctx, key, node)?;
    if s.is_empty() {
        ctx.error(key, node, "must not be empty");
        return None;
    }
    Some(s.into_bytes())
}

fn unsigned(ctx: &mut Ctx, key: &str, node: &Node, max: u64) -> Option<u64> {
    integer(ctx, key, node, 0..=max)
}

/// A value written in the option's own form.
fn natural(ctx: &mut Ctx, key: &str, node: &Node, kind: OptionType) -> Option<Vec<u8>> {
    match kind {
        Ip => ipv4(ctx, key, node).map(|a| a.octets().to_vec()),
        Ips => ipv4_list(ctx, key, node),
        I32 => signed32(ctx, key, node).map(|n| n.to_be_bytes().to_vec()),
        U8 { min, max } => {
            integer(ctx, key, node, u64::from(min)..=u64::from(max)).map(|n| vec![n as u8])
        }
        U8Of(allowed) => {
            let n = unsigned(ctx, key, node, 255)?;
            if !allowed.iter().any(|a| u64::from(*a) == n) {
                let list: Vec<String> = allowed.iter().map(u8::to_string).collect();
                ctx.error(
                    key,
                    node,
                    format!("must be one of {}, got {n}", list.join(", ")),
                );
                return None;
            }
            Some(vec![n as u8])
        }
        U16 { min, max } => integer(ctx, key, node, u64::from(min)..=u64::from(max))
            .map(|n| (n as u16).to_be_bytes().to_vec()),
        Seconds => seconds32(ctx, key, node).map(|n| n.to_be_bytes().to_vec()),
        Bool => boolean(ctx, key, node).map(|b| vec![u8::from(b)]),
        Text => text_bytes(ctx, key, node),
        Hex => hex_value(ctx, key, node),
        Domains => domains(ctx, key, node),
        StaticRoutes => static_routes(ctx, key, node),
        ClasslessRoutes => classless_routes(ctx, key, node),
        Owned(_) => None,
    }
}

/// `{ hex: ... }` and the other explicit forms.
fn explicit(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<u8>> {
    let f = open_map(ctx, key, node, EXPLICIT_KEYS)?;
    let present: Vec<(&'static str, &Node)> = f.values.clone();
    match present.as_slice() {
        [(form, value)] => {
            let k = f.key(form);
            if value.is_null() {
                ctx.error(&k, node, "has no value");
                return None;
            }
            match *form {
                "hex" => hex_value(ctx, &k, value),
                "text" => text_bytes(ctx, &k, value),
                "ips" => ipv4_list(ctx, &k, value),
                "u8" => unsigned(ctx, &k, value, u8::MAX.into()).map(|n| vec![n as u8]),
                "u16" => unsigned(ctx, &k, value, u16::MAX.into())
                    .map(|n| (n as u16).to_be_bytes().to_vec()),
                _ => unsigned(ctx, &k, value, u32::MAX.into())
                    .map(|n| (n as u32).to_be_bytes().to_vec()),
            }
        }
        [] if f.unknown => None,
        [] => {
            ctx.error(
                key,
                node,
                "expected one explicit form: { hex: \"..\" }, { text: \"..\" }, { ips: [..] }, \
                 { u8: N }, { u16: N } or { u32: N }",
            );
            None
        }
        _ => {
            let names: Vec<&str> = present.iter().map(|(k, _)| *k).collect();
            ctx.error(
                key,
                node,
                format!("give one form, not several (found: {})", names.join(", ")),
            );
            None
        }
    }
}

/// Decodes an `options` mapping. Every problem is recorded; the options that decoded are
/// returned in file order.
pub(crate) fn decode_options(ctx: &mut Ctx, key: &str, node: &Node) -> Vec<DhcpOptionValue> {
    ctx.positions.insert(key.to_string(), pos(node));
    let mut out: Vec<DhcpOptionValue> = Vec::new();
    let pairs = match &node.kind {
        Kind::Map(pairs) => pairs,
        Kind::Scalar(s) if s.is_null() => return out,
        _ => {
            ctx.error(
                key,
                node,
                format!(
                    "expected a mapping of option names or codes to values, such as \
                     {{ ntp-servers: [10.99.0.1] }}, got {}",
                    node.describe()
                ),
            );
            return out;
        }
    };
    // Code -> (as written, line), for duplicates.
    let mut seen: HashMap<u8, (String, usize)> = HashMap::new();
    for (k, value) in pairs {
        let written = match &k.kind {
            Kind::Scalar(Scalar { text, .. }) if !text.is_empty() => text.clone(),
            _ => {
                ctx.error(
                    key,
                    k,
                    format!("option keys are names or codes, got {}", k.describe()),
                );
                continue;
            }
        };
        let full = join(key, &written);
        let known = match parse_code(&written) {
            Some(Ok(code)) => (code, by_code(code)),
            Some(Err(e)) => {
                ctx.error(&full, k, e);
                continue;
            }
            None => match by_name(&written) {
                Some(d) => (d.code, Some(d)),
                None => {
                    let hint = match closest_name(&written) {
                        Some(near) => format!("did you mean \"{near}\"? "),
                        None => String::new(),
                    };
                    ctx.error(
                        &full,
                        k,
                        format!(
                            "unknown option \"{written}\" ({hint}options are written by a name \
                             from the table in docs/config.md, or by code with an explicit \
                             type such as 224: {{ hex: \"01:02\" }})"
                        ),
                    );
                    continue;
                }
            },
        };
        let (code, def) = known;
        let label = match def {
            Some(d) => format!("option {code} ({})", d.name),
            None => format!("option {code}"),
        };
        if let Some(OptionDef {
            kind: Owned(instead),
            ..
        }) = def
        {
            ctx.error(
                &full,
                k,
                format!("{label} is set by the server itself and cannot be configured: {instead}"),
            );
            continue;
        }
        if let Some((first, line)) = seen.get(&code) {
            ctx.error(
                &full,
                k,
                format!("{label} is set twice (first as \"{first}\" at line {line})"),
            );
            continue;
        }
        seen.insert(code, (written.clone(), k.line));
        let at = if value.is_null() { pos(k) } else { pos(value) };
        ctx.positions.insert(full.clone(), at);
        let data = if value.is_null() {
            ctx.error(&full, k, "has no value");
            None
        } else if matches!(value.kind, Kind::Map(_)) {
            explicit(ctx, &full, value)
        } else if let Some(d) = def {
            natural(ctx, &full, value, d.kind)
        } else {
            ctx.error(
                &full,
                value,
                format!(
                    "{label} is not in Kindling's option table, so its value must say its type: \
                     {{ hex: \"..\" }}, {{ text: \"..\" }}, {{ ips: [..] }}, {{ u8: N }}, \
                     {{ u16: N }} or {{ u32: N }}"
                ),
            );
            None
        };
        let Some(data) = data else { continue };
        if data.len() > MAX_PAYLOAD {
            ctx.error(
                &full,
                value,
                format!(
                    "{label} encodes to {} bytes; an option holds at most {MAX_PAYLOAD} \
                     (Kindling does not split long options)",
                    data.len()
                ),
            );
            continue;
        }
        out.push(DhcpOptionValue { code, data });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, a) in OPTIONS.iter().enumerate() {
            assert!((1..=254).contains(&a.code), "{}", a.name);
            for b in &OPTIONS[i + 1..] {
                assert!(a.code < b.code, "{} and {} out of order", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
            assert!(
                a.name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                "{}",
                a.name
            );
            assert!(parse_code(a.name).is_none());
        }
        for code in [50, 51, 52, 53, 54, 55, 57, 58, 59, 61, 82] {
            assert!(matches!(by_code(code).unwrap().kind, Owned(_)), "{code}");
        }
        for (_, to) in OTHER_NAMES {
            assert!(by_name(to).is_some(), "{to}");
        }
    }

    /// docs/config.md lists every option with its code, and every refused one.
    #[test]
    fn docs_list_every_option() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
        let docs = std::fs::read_to_string(path).unwrap();
        for d in OPTIONS {
            let row = match d.kind {
                Owned(_) => format!("`{}` ({}", d.name, d.code),
                _ => format!("| `{}` | {} |", d.name, d.code),
            };
            assert!(docs.contains(&row), "docs/config.md lacks {row:?}");
        }
    }

    #[test]
    fn hex_forms() {
        assert_eq!(
            parse_hex("01:04:0a:63:00:01").unwrap(),
            [1, 4, 10, 99, 0, 1]
        );
        assert_eq!(parse_hex("01040A630001").unwrap(), [1, 4, 10, 99, 0, 1]);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        for bad in ["0", "1:2", "01:", "0g", "01 02", "0104:05", "é1"] {
            assert!(parse_hex(bad).is_err(), "{bad}");
        }
        assert_eq!(format_hex(&[1, 0xab]), "01:ab");
    }

    #[test]
    fn codes() {
        assert_eq!(parse_code("42"), Some(Ok(42)));
        assert_eq!(parse_code("042"), Some(Ok(42)));
        assert!(matches!(parse_code("0"), Some(Err(_))));
        assert!(matches!(parse_code("255"), Some(Err(_))));
        assert!(matches!(parse_code("99999999999999999999"), Some(Err(_))));
        assert_eq!(parse_code("ntp-servers"), None);
    }

    #[test]
    fn domain_search_wire_form() {
        assert_eq!(
            encode_domains(&["lab.test", "example.org."]).unwrap(),
            b"\x03lab\x04test\x00\x07example\x03org\x00"
        );
        assert!(encode_domains(&[format!("{}.test", "a".repeat(64))]).is_err());
    }

    #[test]
    fn classless_route_wire_form() {
        let r: Ipv4Addr = "10.99.0.1".parse().unwrap();
        assert_eq!(
            encode_classless_route("10.0.0.0/8".parse().unwrap(), r),
            [8, 10, 10, 99, 0, 1]
        );
        assert_eq!(
            encode_classless_route("0.0.0.0/0".parse().unwrap(), r),
            [0, 10, 99, 0, 1]
        );
        assert_eq!(
            encode_classless_route("10.1.128.0/17".parse().unwrap(), r),
            [17, 10, 1, 128, 10, 99, 0, 1]
        );
        assert_eq!(
            encode_classless_route("192.0.2.7/32".parse().unwrap(), r),
            [32, 192, 0, 2, 7, 10, 99, 0, 1]
        );
    }

    #[test]
    fn close_names() {
        assert_eq!(closest_name("ntp_servers"), Some("ntp-servers"));
        assert_eq!(closest_name("routers"), Some("router"));
        assert_eq!(closest_name("domain-name-servers"), Some("dns-servers"));
        assert_eq!(closest_name("NTP-Servers"), Some("ntp-servers"));
        assert_eq!(closest_name("frobnicate"), None);
    }
}
