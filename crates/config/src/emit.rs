//! Writing a [`Config`] back as YAML, every default filled in (`kindling print-config`).
//!
//! The output parses back into an equal `Config`. Strings are written plain only when no YAML
//! reader (1.1 or 1.2) could take them for anything but text; otherwise double-quoted.

use std::fmt::Write as _;
use std::path::Path;

use crate::decode::dhcp_options::{OptionType, by_code, format_hex};
use crate::model::*;
use crate::units::{format_duration, format_size};

/// Plain if unambiguous, else a double-quoted YAML string.
pub(crate) fn quote(s: &str) -> String {
    if is_safe_plain(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{2027}'
            | '\u{202a}'..='\u{d7ff}'
            | '\u{e000}'..='\u{fefe}'
            | '\u{ff00}'..='\u{fffd}' => out.push(c),
            c if u32::from(c) >= 0x10000 => out.push(c),
            c if u32::from(c) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

fn is_safe_plain(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    let chars_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    let first_ok = first.is_ascii_alphanumeric() || first == '/' || first == '_';
    let word = WORDS.iter().any(|w| w.eq_ignore_ascii_case(s));
    let numeric = s.parse::<f64>().is_ok()
        || (s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'_' || b == b'.')
            && s.matches('.').count() <= 1)
        || s.starts_with("0x")
        || s.starts_with("0o")
        || s.starts_with("0b")
        || s.eq_ignore_ascii_case(".inf")
        || s.eq_ignore_ascii_case(".nan");
    chars_ok && first_ok && !word && !numeric
}

fn path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

fn flow<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| quote(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

struct Out(String);

impl Out {
    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.0, "{:indent$}{text}", "");
    }
    fn kv(&mut self, indent: usize, key: &str, value: &str) {
        self.line(indent, &format!("{key}: {value}"));
    }
}

fn boot(out: &mut Out, indent: usize, key: &str, boot: &BootConfig) {
    let entries: Vec<(&str, &str)> = crate::decode::boot_entries(boot).collect();
    if entries.is_empty() {
        out.kv(indent, key, "{}");
        return;
    }
    out.line(indent, &format!("{key}:"));
    for (name, value) in entries {
        out.kv(indent + 2, name, &quote(value));
    }
}

/// One option's payload in an explicit form that reads back to the same bytes: `text` for
/// text options, `ips` for address lists, else `hex`.
fn option_value(o: &DhcpOptionValue) -> String {
    let kind = by_code(o.code).map(|d| d.kind);
    if kind == Some(OptionType::Text)
        && let Ok(s) = std::str::from_utf8(&o.data)
        && !s.is_empty()
        && !s.chars().any(char::is_control)
    {
        return format!("{{ text: {} }}", quote(s));
    }
    if matches!(kind, Some(OptionType::Ips | OptionType::Ip))
        && !o.data.is_empty()
        && o.data.len().is_multiple_of(4)
    {
        let ips: Vec<std::net::Ipv4Addr> = o
            .data
            .chunks_exact(4)
            .map(|c| std::net::Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect();
        return format!("{{ ips: {} }}", flow(&ips));
    }
    format!("{{ hex: {} }}", quote(&format_hex(&o.data)))
}

/// Options keyed by code, each in an explicit form, with the option's name as a comment.
fn options(out: &mut Out, indent: usize, key: &str, list: &[DhcpOptionValue]) {
    if list.is_empty() {
        out.kv(indent, key, "{}");
        return;
    }
    out.line(indent, &format!("{key}:"));
    for o in list {
        let value = option_value(o);
        match by_code(o.code) {
            Some(d) => out.line(indent + 2, &format!("{}: {value}  # {}", o.code, d.name)),
            None => out.kv(indent + 2, &o.code.to_string(), &value),
        }
    }
}

fn subnet(out: &mut Out, indent: usize, s: &DhcpSubnet) {
    out.kv(indent, "- network", &quote(&s.network.to_string()));
    let i = indent + 2;
    out.kv(i, "range", &flow(&[s.range.0, s.range.1]));
    if let Some(router) = s.router {
        out.kv(i, "router", &quote(&router.to_string()));
    }
    match &s.dns {
        Some(dns) => out.kv(i, "dns", &flow(dns)),
        None => out.line(i, "# dns: not set (this box, when DNS is enabled)"),
    }
    match &s.domain {
        Some(domain) => out.kv(i, "domain", &quote(domain)),
        None => out.line(i, "# domain: not set (dns.domain, when DNS is enabled)"),
    }
    // DHCPv6 subnets have none of these keys (and always hold their defaults).
    if s.network.addr().is_ipv4() {
        match s.lease_time {
            Some(d) => out.kv(i, "lease_time", &quote(&format_duration(d))),
            None => out.line(i, "# lease_time: not set (dhcp.lease_time)"),
        }
        out.kv(i, "known_clients_only", &s.known_clients_only.to_string());
        options(out, i, "options", &s.options);
    }
}

fn subnets(out: &mut Out, indent: usize, list: &[DhcpSubnet]) {
    if list.is_empty() {
        out.kv(indent, "subnets", "[]");
        return;
    }
    out.line(indent, "subnets:");
    for s in list {
        subnet(out, indent + 2, s);
    }
}

fn tftp(out: &mut Out, t: &TftpConfig) {
    out.line(0, "tftp:");
    out.kv(2, "enabled", "true");
    out.kv(2, "listen", &flow(&t.listen));
    out.kv(2, "root", &path(&t.root));
    out.kv(2, "max_sessions", &t.max_sessions.to_string());
    out.kv(
        2,
        "queue_timeout",
        &quote(&format_duration(t.queue_timeout)),
    );
    match &t.allow_from {
        Some(nets) => out.kv(2, "allow_from", &flow(nets)),
        None => out.line(2, "# allow_from: not set (anyone may read)"),
    }
    out.kv(2, "single_port", &t.single_port.to_string());
    match &t.port_range {
        Some(r) => out.kv(2, "port_range", &format!("[{}, {}]", r.start(), r.end())),
        None => out.line(
            2,
            "# port_range: not set (ephemeral ports chosen by the kernel)",
        ),
    }
    out.kv(2, "timeout", &quote(&format_duration(t.timeout)));
    out.kv(2, "retries", &t.retries.to_string());
    out.kv(2, "max_blksize", &t.max_blksize.to_string());
    out.kv(2, "max_windowsize", &t.max_windowsize.to_string());
    out.kv(2, "cache_size", &quote(&format_size(t.cache_size)));
    out.kv(
        2,
        "unconfirmed_per_address",
        &t.unconfirmed_per_address.to_string(),
    );
    out.kv(
        2,
        "unconfirmed_per_prefix",
        &t.unconfirmed_per_prefix.to_string(),
    );
    let w = &t.write;
    out.line(2, "write:");
    out.kv(4, "enabled", &w.enabled.to_string());
    out.kv(4, "dir", &path(&w.dir));
    let overwrite = match w.overwrite {
        OverwritePolicy::Refuse => "false",
        OverwritePolicy::Replace => "true",
        OverwritePolicy::Versioned => "versioned",
    };
    out.kv(4, "overwrite", overwrite);
    out.kv(4, "max_size", &quote(&format_size(w.max_size)));
    match &w.allow_from {
        Some(nets) => out.kv(4, "allow_from", &flow(nets)),
        None => out.line(4, "# allow_from: not set (anyone may upload)"),
    }
    match &w.read_from {
        Some(nets) => out.kv(4, "read_from", &flow(nets)),
        None => out.line(
            4,
            "# read_from: not set (nobody may read the upload directory)",
        ),
    }
}

fn dhcp(out: &mut Out, d: &DhcpConfig) {
    out.line(0, "dhcp:");
    out.kv(
        2,
        "mode",
        if d.mode == DhcpMode::Server {
            "server"
        } else {
            "proxy"
        },
    );
    match &d.interfaces {
        Some(names) => out.kv(2, "interfaces", &flow(names)),
        None => out.line(2, "# interfaces: not set (every non-loopback interface)"),
    }
    out.kv(2, "lease_time", &quote(&format_duration(d.lease_time)));
    out.kv(2, "known_clients_only", &d.known_clients_only.to_string());
    out.kv(2, "ping_check", &d.ping_check.to_string());
    out.kv(2, "ping_timeout", &quote(&format_duration(d.ping_timeout)));
    out.kv(
        2,
        "other_servers",
        if d.other_servers_expected {
            "expected"
        } else {
            "refuse"
        },
    );
    match d.advertise {
        Some(a) => out.kv(2, "advertise", &quote(&a.to_string())),
        None => out.line(
            2,
            "# advertise: not set (the address of the interface a request came in on)",
        ),
    }
    out.line(2, "vendor_classes:");
    out.kv(4, "pxe", &flow(&d.vendor_classes.pxe));
    out.kv(4, "http", &flow(&d.vendor_classes.http));
    options(out, 2, "options", &d.options);
    subnets(out, 2, &d.subnets);
    if d.classes.is_empty() {
        out.kv(2, "classes", "[]");
    } else {
        out.line(2, "classes:");
        for c in &d.classes {
            out.kv(4, "- name", &quote(&c.name));
            out.kv(6, "vendor_class", &quote(&c.vendor_class));
            options(out, 6, "options", &c.options);
        }
    }
    if d.reservations.is_empty() {
        out.kv(2, "reservations", "[]");
    } else {
        out.line(2, "reservations:");
        for r in &d.reservations {
            // The first key of the item carries the list dash.
            let mut first = true;
            let mut key = |name: &str| {
                let dashed = if first {
                    format!("- {name}")
                } else {
                    name.to_string()
                };
                let indent = if first { 4 } else { 6 };
                first = false;
                (indent, dashed)
            };
            if let Some(mac) = &r.mac {
                let (indent, name) = key("mac");
                out.kv(indent, &name, &quote(mac));
            }
            if let Some(uuid) = &r.uuid {
                let (indent, name) = key("uuid");
                out.kv(indent, &name, &quote(&format_uuid(uuid)));
            }
            if let Some(duid) = &r.duid {
                let (indent, name) = key("duid");
                out.kv(indent, &name, &quote(&format_hex(duid)));
            }
            if let Some(id) = &r.client_id {
                let (indent, name) = key("client_id");
                let value = match std::str::from_utf8(id) {
                    Ok(s) if !s.chars().any(char::is_control) => quote(s),
                    _ => format!("{{ hex: {} }}", quote(&format_hex(id))),
                };
                out.kv(indent, &name, &value);
            }
            if r.ignore {
                out.kv(6, "ignore", "true");
            }
            if let Some(ip) = r.ip {
                out.kv(6, "ip", &quote(&ip.to_string()));
            }
            if let Some(hostname) = &r.hostname {
                out.kv(6, "hostname", &quote(hostname));
            }
            if r.boot != BootConfig::default() {
                boot(out, 6, "boot", &r.boot);
            }
            if !r.options.is_empty() {
                options(out, 6, "options", &r.options);
            }
            if !r.labels.is_empty() {
                labels(out, 6, &r.labels);
            }
        }
    }
    out.line(2, "v6:");
    match d.quiet_ra {
        QuietRa::Auto if d.mode == DhcpMode::Server => {
            out.kv(4, "quiet_ra", "auto  # on: server mode")
        }
        QuietRa::Auto => out.line(4, "# quiet_ra: auto (off in proxy mode)"),
        QuietRa::Off => out.kv(4, "quiet_ra", "off"),
    }
    match &d.v6 {
        Some(v6) => {
            out.kv(
                4,
                "router_advertisements",
                &v6.router_advertisements.to_string(),
            );
            out.kv(4, "default_router", &v6.default_router.to_string());
            out.kv(4, "preference", &v6.preference.to_string());
            subnets(out, 4, &v6.subnets);
        }
        None => out.line(4, "# router_advertisements, subnets: not set (no DHCPv6)"),
    }
}

fn dns(out: &mut Out, d: &DnsConfig) {
    out.line(0, "dns:");
    out.kv(2, "enabled", "true");
    out.kv(2, "listen", &flow(&d.listen));
    out.kv(2, "domain", &quote(&d.domain));
    if d.records.is_empty() {
        out.kv(2, "records", "[]");
    } else {
        out.line(2, "records:");
        for r in &d.records {
            out.kv(4, "- name", &quote(&r.name));
            match &r.data {
                DnsRecordData::A(ip) => out.kv(6, "a", &quote(&ip.to_string())),
                DnsRecordData::Aaaa(ip) => out.kv(6, "aaaa", &quote(&ip.to_string())),
                DnsRecordData::Cname(target) => out.kv(6, "cname", &quote(target)),
                DnsRecordData::Txt(text) => out.kv(6, "txt", &quote(text)),
                DnsRecordData::Srv {
                    priority,
                    weight,
                    port,
                    target,
                } => {
                    out.line(6, "srv:");
                    out.kv(8, "priority", &priority.to_string());
                    out.kv(8, "weight", &weight.to_string());
                    out.kv(8, "port", &port.to_string());
                    out.kv(8, "target", &quote(target));
                }
            }
        }
    }
    out.kv(2, "upstreams", &flow(&d.upstreams));
    match &d.allow_recursion_from {
        Some(nets) => out.kv(2, "allow_recursion_from", &flow(nets)),
        None => out.line(
            2,
            "# allow_recursion_from: not set (loopback and the DHCP subnets)",
        ),
    }
}

pub(crate) fn to_yaml(config: &Config) -> String {
    let mut out = Out(String::new());
    out.line(
        0,
        "# Kindling: the effective configuration, every default filled in.",
    );
    out.line(0, "# A section that is absent here is off.");
    out.kv(0, "state_dir", &path(&config.state_dir));
    out.line(0, "log:");
    out.kv(
        2,
        "format",
        if config.log.format == LogFormat::Json {
            "json"
        } else {
            "text"
        },
    );
    out.kv(2, "level", &quote(&config.log.level));
    match &config.tftp {
        Some(t) => tftp(&mut out, t),
        None => out.line(0, "# tftp: off"),
    }
    boot(&mut out, 0, "boot", &config.boot);
    match &config.dhcp {
        Some(d) => dhcp(&mut out, d),
        None => out.line(0, "# dhcp: off"),
    }
    match &config.dns {
        Some(d) => dns(&mut out, d),
        None => out.line(0, "# dns: off"),
    }
    profiles(&mut out, &config.profiles);
    out.0
}

fn labels(out: &mut Out, indent: usize, labels: &std::collections::BTreeMap<String, String>) {
    let items: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
        .collect();
    out.kv(indent, "labels", &format!("{{ {} }}", items.join(", ")));
}

fn profiles(out: &mut Out, profiles: &[ProfileConfig]) {
    if profiles.is_empty() {
        out.kv(0, "profiles", "[]");
        return;
    }
    out.line(0, "profiles:");
    for p in profiles {
        out.kv(2, "- name", &quote(&p.name));
        let m = &p.selectors;
        if *m != ProfileMatch::default() {
            out.line(4, "match:");
            let list = |items: Vec<String>| format!("[{}]", items.join(", "));
            if !m.mac.is_empty() {
                out.kv(6, "mac", &list(m.mac.iter().map(|x| quote(x)).collect()));
            }
            if !m.uuid.is_empty() {
                out.kv(
                    6,
                    "uuid",
                    &list(m.uuid.iter().map(|u| quote(&format_uuid(u))).collect()),
                );
            }
            if !m.arch.is_empty() {
                out.kv(
                    6,
                    "arch",
                    &list(m.arch.iter().map(u16::to_string).collect()),
                );
            }
            if !m.kind.is_empty() {
                out.kv(6, "kind", &list(m.kind.iter().map(|x| quote(x)).collect()));
            }
            if !m.hostname.is_empty() {
                out.kv(
                    6,
                    "hostname",
                    &list(m.hostname.iter().map(|x| quote(x)).collect()),
                );
            }
            if !m.labels.is_empty() {
                labels(out, 6, &m.labels);
            }
        }
        // A block scalar keeps the script readable when it round-trips exactly as one.
        let block = p.ipxe.ends_with('\n')
            && !p.ipxe.ends_with("\n\n")
            && !p.ipxe.starts_with([' ', '\n'])
            && !p.ipxe.contains(['\r', '\t']);
        if block {
            out.line(4, "ipxe: |");
            for line in p.ipxe.lines() {
                if line.is_empty() {
                    out.0.push('\n');
                } else {
                    out.line(6, line);
                }
            }
        } else {
            out.kv(4, "ipxe", &quote(&p.ipxe));
        }
    }
}

/// An RFC 4122 UUID as `8-4-4-4-12` lower-case hex.
fn format_uuid(uuid: &[u8; 16]) -> String {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ambiguous_words_are_quoted() {
        for s in [
            "no",
            "off",
            "On",
            "true",
            "null",
            "~",
            "",
            "12",
            "1.5",
            "0x1f",
            "1e3",
            "-5",
            ".inf",
            "a b",
            "[::]:69",
            "52:54:00:00:00:10",
            "#x",
            "&a",
            "*a",
            "!x",
            "-",
            "@",
        ] {
            assert!(quote(s).starts_with('"'), "{s:?} -> {}", quote(s));
        }
        for s in [
            "undionly.kpxe",
            "10.0.0.0/8",
            "/srv/tftp",
            "uploads",
            "lab.test",
            "12h",
            "256MiB",
            "10.99.0.1",
        ] {
            assert_eq!(quote(s), s);
        }
    }

    proptest! {
        #[test]
        fn any_text_survives_quoting(s in "\\PC*|[\\x00-\\x7f]*|\\s*") {
            let yaml = format!(
                "dns:\n  domain: lab.test\n  records:\n    - name: x\n      txt: {}\n",
                quote(&s)
            );
            let loaded = crate::parse(&yaml, "test")
                .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
            let dns = loaded.config.dns.ok_or_else(|| TestCaseError::fail("no dns"))?;
            prop_assert_eq!(&dns.records[0].data, &DnsRecordData::Txt(s));
        }
    }
}
