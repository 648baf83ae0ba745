//! Reading typed values out of the YAML tree, recording every problem in [`Ctx`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::units;
use crate::yaml::{Kind, Node, Scalar};
use crate::{Diagnostic, Severity};

/// Collects diagnostics and the position of every key seen, by dotted path.
#[derive(Default)]
pub(crate) struct Ctx {
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) positions: HashMap<String, (usize, usize)>,
}

impl Ctx {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        key: &str,
        at: Option<(usize, usize)>,
        message: impl Into<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            severity,
            key: key.to_string(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            message: message.into(),
        });
    }

    pub(crate) fn error(&mut self, key: &str, node: &Node, message: impl Into<String>) {
        self.push(Severity::Error, key, Some(pos(node)), message);
    }

    pub(crate) fn warn(&mut self, key: &str, node: &Node, message: impl Into<String>) {
        self.push(Severity::Warning, key, Some(pos(node)), message);
    }

    pub(crate) fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Where `key` (or its nearest ancestor that appears in the file) was written.
    pub(crate) fn position_of(&self, key: &str) -> Option<(usize, usize)> {
        let mut key = key;
        loop {
            if let Some(at) = self.positions.get(key) {
                return Some(*at);
            }
            let cut = key.rfind(['.', '['])?;
            key = &key[..cut];
        }
    }
}

pub(crate) fn pos(node: &Node) -> (usize, usize) {
    (node.line, node.column)
}

pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The known keys of one mapping, first occurrence of each.
pub(crate) struct Fields<'a> {
    pub(crate) path: String,
    pub(crate) node: &'a Node,
    /// Whether the mapping had keys that were reported as unknown.
    pub(crate) unknown: bool,
    pub(crate) values: Vec<(&'static str, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// The value of `name`; `None` when absent or null (`key:` with nothing, `~`, `null`).
    pub(crate) fn get(&self, name: &str) -> Option<&'a Node> {
        self.values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_null())
    }

    /// The value of `name` even when null: a section written as `tftp:` alone is present.
    pub(crate) fn section(&self, name: &str) -> Option<&'a Node> {
        self.values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    pub(crate) fn key(&self, name: &str) -> String {
        join(&self.path, name)
    }
}

/// Small edit distance for "did you mean" hints.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

pub(crate) fn unknown_key_message(name: &str, allowed: &[&str]) -> String {
    let near = allowed
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && 2 * d < name.len().max(k.len()))
        .min();
    let list = allowed.join(", ");
    match near {
        Some((_, k)) => {
            format!("unknown key \"{name}\" (did you mean \"{k}\"? known keys: {list})")
        }
        None => format!("unknown key \"{name}\" (known keys: {list})"),
    }
}

/// Checks that `node` is a mapping (null counts as an empty one), reports unknown,
/// duplicate and non-text keys, and returns the known ones.
pub(crate) fn open_map<'a>(
    ctx: &mut Ctx,
    path: &str,
    node: &'a Node,
    allowed: &'static [&'static str],
) -> Option<Fields<'a>> {
    if !path.is_empty() {
        ctx.positions.insert(path.to_string(), pos(node));
    }
    let mut fields = Fields {
        path: path.to_string(),
        node,
        unknown: false,
        values: Vec::new(),
    };
    let pairs = match &node.kind {
        Kind::Map(pairs) => pairs,
        Kind::Scalar(s) if s.is_null() => return Some(fields),
        _ => {
            let what = if path.is_empty() {
                "the config"
            } else {
                "this section"
            };
            ctx.error(
                path,
                node,
                format!("{what} must be a mapping of keys, got {}", node.describe()),
            );
            return None;
        }
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (key, value) in pairs {
        let name = match &key.kind {
            Kind::Scalar(Scalar { text, .. }) => text.as_str(),
            _ => {
                ctx.error(
                    path,
                    key,
                    format!("keys must be plain words, got {}", key.describe()),
                );
                continue;
            }
        };
        let full = join(path, name);
        let Some(known) = allowed.iter().find(|k| **k == name) else {
            ctx.error(&full, key, unknown_key_message(name, allowed));
            fields.unknown = true;
            continue;
        };
        if let Some(first) = seen.get(name) {
            ctx.error(
                &full,
                key,
                format!("duplicate key \"{name}\" (first at line {first})"),
            );
            continue;
        }
        seen.insert(name, key.line);
        let at = if value.is_null() {
            pos(key)
        } else {
            pos(value)
        };
        ctx.positions.insert(full, at);
        fields.values.push((known, value));
    }
    Some(fields)
}

/// A scalar that is not null; anything else is reported as "expected `what`".
pub(crate) fn scalar<'a>(
    ctx: &mut Ctx,
    key: &str,
    node: &'a Node,
    what: &str,
) -> Option<&'a Scalar> {
    match &node.kind {
        Kind::Scalar(s) if !s.is_null() => Some(s),
        _ => {
            ctx.error(
                key,
                node,
                format!("expected {what}, got {}", node.describe()),
            );
            None
        }
    }
}

/// A string. A plain `true`/`false` is a boolean in YAML 1.2 and is refused (quote it);
/// `no`, `off`, `0755` and the like are plain text.
pub(crate) fn text(ctx: &mut Ctx, key: &str, node: &Node) -> Option<String> {
    let s = scalar(ctx, key, node, "a string")?;
    if let Some(b) = s.as_bool() {
        ctx.error(
            key,
            node,
            format!("expected a string, got the boolean {b} (quote it if you mean the text)"),
        );
        return None;
    }
    Some(s.text.clone())
}

pub(crate) fn nonempty_text(ctx: &mut Ctx, key: &str, node: &Node) -> Option<String> {
    let s = text(ctx, key, node)?;
    if s.trim().is_empty() {
        ctx.error(key, node, "must not be empty");
        return None;
    }
    Some(s)
}

pub(crate) fn boolean(ctx: &mut Ctx, key: &str, node: &Node) -> Option<bool> {
    let s = scalar(ctx, key, node, "true or false")?;
    match s.as_bool() {
        Some(b) => Some(b),
        None if !s.plain => {
            ctx.error(
                key,
                node,
                format!(
                    "expected true or false without quotes, got the string \"{}\"",
                    s.text
                ),
            );
            None
        }
        None => {
            ctx.error(
                key,
                node,
                format!("expected true or false, got {}", node.describe()),
            );
            None
        }
    }
}

/// One of a fixed set of words (quoted or not).
pub(crate) fn choice<'a>(
    ctx: &mut Ctx,
    key: &str,
    node: &Node,
    options: &[&'a str],
) -> Option<&'a str> {
    let expected = match options {
        [a, b] => format!("{a} or {b}"),
        [init @ .., last] => format!("{}, or {last}", init.join(", ")),
        [] => String::new(),
    };
    let found = match &node.kind {
        Kind::Scalar(s) if !s.is_null() && s.as_bool().is_none() => {
            options.iter().find(|o| **o == s.text).copied()
        }
        _ => None,
    };
    if found.is_none() {
        ctx.error(
            key,
            node,
            format!("expected {expected}, got {}", node.describe()),
        );
    }
    found
}

pub(crate) fn integer(
    ctx: &mut Ctx,
    key: &str,
    node: &Node,
    range: RangeInclusive<u64>,
) -> Option<u64> {
    let s = scalar(ctx, key, node, "a whole number")?;
    let (lo, hi) = (*range.start(), *range.end());
    let out_of_range = || format!("must be between {lo} and {hi}, got {}", s.text);
    let digits = !s.text.is_empty() && s.text.bytes().all(|b| b.is_ascii_digit());
    let negative = s
        .text
        .strip_prefix('-')
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()));
    if !s.plain {
        ctx.error(
            key,
            node,
            format!(
                "expected a whole number without quotes, got the string \"{}\"",
                s.text
            ),
        );
        return None;
    }
    if negative {
        ctx.error(key, node, out_of_range());
        return None;
    }
    if !digits {
        ctx.error(
            key,
            node,
            format!("expected a whole number, got {}", node.describe()),
        );
        return None;
    }
    match s.text.parse::<u64>() {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            ctx.error(key, node, out_of_range());
            None
        }
    }
}

pub(crate) fn duration(
    ctx: &mut Ctx,
    key: &str,
    node: &Node,
    range: RangeInclusive<Duration>,
) -> Option<Duration> {
    let s = scalar(ctx, key, node, "a duration such as \"30s\"")?;
    match units::parse_duration(&s.text) {
        Ok(d) if range.contains(&d) => Some(d),
        Ok(_) => {
            let (lo, hi) = (
                units::format_duration(*range.start()),
                units::format_duration(*range.end()),
            );
            ctx.error(
                key,
                node,
                format!("must be between {lo} and {hi}, got {}", s.text),
            );
            None
        }
        Err(e) => {
            ctx.error(key, node, e);
            None
        }
    }
}

pub(crate) fn size(
    ctx: &mut Ctx,
    key: &str,
    node: &Node,
    range: RangeInclusive<u64>,
) -> Option<u64> {
    let s = scalar(ctx, key, node, "a size such as \"256MiB\"")?;
    match units::parse_size(&s.text) {
        Ok(n) if range.contains(&n) => Some(n),
        Ok(_) => {
            let (lo, hi) = (
                units::format_size(*range.start()),
                units::format_size(*range.end()),
            );
            ctx.error(
                key,
                node,
                format!("must be between {lo} and {hi}, got {}", s.text),
            );
            None
        }
        Err(e) => {
            ctx.error(key, node, e);
            None
        }
    }
}

/// A list; a single scalar counts as a list of one.
pub(crate) fn list<'a>(ctx: &mut Ctx, key: &str, node: &'a Node) -> Option<Vec<&'a Node>> {
    match &node.kind {
        Kind::Seq(items) => Some(items.iter().collect()),
        Kind::Scalar(s) if !s.is_null() => Some(vec![node]),
        _ => {
            ctx.error(
                key,
                node,
                format!("expected a list, got {}", node.describe()),
            );
            None
        }
    }
}

/// A list of mappings (each item is decoded by the caller).
pub(crate) fn seq<'a>(ctx: &mut Ctx, key: &str, node: &'a Node) -> Option<&'a [Node]> {
    ctx.positions.insert(key.to_string(), pos(node));
    match &node.kind {
        Kind::Seq(items) => Some(items),
        _ => {
            ctx.error(
                key,
                node,
                format!("expected a list, got {}", node.describe()),
            );
            None
        }
    }
}

pub(crate) fn item_key(key: &str, index: usize) -> String {
    format!("{key}[{index}]")
}

pub(crate) fn ip(ctx: &mut Ctx, key: &str, node: &Node) -> Option<IpAddr> {
    let s = text(ctx, key, node)?;
    match s.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            ctx.error(key, node, format!("expected an IP address, got \"{s}\""));
            None
        }
    }
}

/// A CIDR such as `10.0.0.0/8`; a bare address means /32 or /128. Host bits are cleared
/// with a warning (`10.0.0.1/8` means `10.0.0.0/8`).
pub(crate) fn cidr(ctx: &mut Ctx, key: &str, node: &Node) -> Option<IpNet> {
    let s = text(ctx, key, node)?;
    let net = match s.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                ctx.error(
                    key,
                    node,
                    format!("expected a network such as \"10.0.0.0/8\" or an address, got \"{s}\""),
                );
                return None;
            }
        },
    };
    let trunc = net.trunc();
    if trunc != net {
        ctx.warn(
            key,
            node,
            format!("\"{s}\" has host bits set; it means {trunc}"),
        );
    }
    Some(trunc)
}

pub(crate) fn cidr_list(ctx: &mut Ctx, key: &str, node: &Node) -> Option<Vec<IpNet>> {
    let items = list(ctx, key, node)?;
    let mut nets = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(net) = cidr(ctx, &item_key(key, i), item) {
            nets.push(net);
        }
    }
    Some(nets)
}

/// Socket addresses; with `default_port`, a bare IP address takes it.
pub(crate) fn socket_addrs(
    ctx: &mut Ctx,
    key: &str,
    node: &Node,
    default_port: Option<u16>,
) -> Option<Vec<SocketAddr>> {
    let items = list(ctx, key, node)?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let k = item_key(key, i);
        let Some(s) = text(ctx, &k, item) else {
            continue;
        };
        let addr = match (s.parse::<SocketAddr>(), default_port) {
            (Ok(addr), _) => addr,
            (Err(_), Some(port)) => match s.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, port),
                Err(_) => {
                    let hint = "an address such as \"192.0.2.53\" or \"[2001:db8::53]:53\"";
                    ctx.error(&k, item, format!("expected {hint}, got \"{s}\""));
                    continue;
                }
            },
            (Err(_), None) => {
                let hint = "an address and port such as \"0.0.0.0:69\" or \"[::]:69\"";
                ctx.error(&k, item, format!("expected {hint}, got \"{s}\""));
                continue;
            }
        };
        if addrs.contains(&addr) {
            ctx.error(&k, item, format!("{addr} is listed twice"));
            continue;
        }
        addrs.push(addr);
    }
    Some(addrs)
}

pub(crate) fn default_addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

/// A DNS name: dot-separated labels of letters, digits and hyphens (underscores too when
/// `underscore`), at most 63 characters each and 253 in all. A trailing dot is removed.
pub(crate) fn dns_name_problem(name: &str, underscore: bool) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Some("it is empty".to_string());
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters".to_string());
    }
    for (i, label) in name.split('.').enumerate() {
        if label.is_empty() {
            return Some("it has an empty label (two dots in a row?)".to_string());
        }
        if i == 0 && label == "*" {
            continue;
        }
        if let Some(problem) = label_problem(label, underscore) {
            return Some(format!("label \"{label}\" {problem}"));
        }
    }
    None
}

pub(crate) fn label_problem(label: &str, underscore: bool) -> Option<&'static str> {
    if label.len() > 63 {
        return Some("is longer than 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscore && b == b'_'))
    {
        return Some(if underscore {
            "may only hold letters, digits, '-' and '_'"
        } else {
            "may only hold letters, digits and '-'"
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Some("must not start or end with '-'");
    }
    None
}

/// A DNS name with its trailing dot dropped (for names that are always absolute, such as
/// `dns.domain`).
pub(crate) fn dns_name(ctx: &mut Ctx, key: &str, node: &Node, underscore: bool) -> Option<String> {
    let s = dns_name_as_written(ctx, key, node, underscore)?;
    Some(s.strip_suffix('.').unwrap_or(&s).to_string())
}

/// A DNS name kept as written, trailing dot included: in a record a trailing dot is what makes
/// a name absolute instead of relative to the domain.
pub(crate) fn dns_name_as_written(
    ctx: &mut Ctx,
    key: &str,
    node: &Node,
    underscore: bool,
) -> Option<String> {
    let s = text(ctx, key, node)?;
    if let Some(problem) = dns_name_problem(&s, underscore) {
        ctx.error(
            key,
            node,
            format!("\"{s}\" is not a valid DNS name: {problem}"),
        );
        return None;
    }
    Some(s)
}

pub(crate) fn path_value(ctx: &mut Ctx, key: &str, node: &Node) -> Option<PathBuf> {
    let s = nonempty_text(ctx, key, node)?;
    if s.contains('\0') {
        ctx.error(key, node, "must not contain NUL");
        return None;
    }
    Some(PathBuf::from(s))
}
