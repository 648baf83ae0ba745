//! `profiles`: per-machine iPXE scripts, each chosen by selectors.

use std::collections::BTreeMap;

use crate::model::{ProfileConfig, ProfileMatch};
use crate::yaml::{Kind, Node, Scalar};

use super::dhcp::{normalise_mac, parse_uuid};
use super::reader::*;

const PROFILE_KEYS: &[&str] = &["name", "match", "ipxe"];
const MATCH_KEYS: &[&str] = &["mac", "uuid", "arch", "kind", "hostname", "labels"];

/// The client kinds a profile may select (`match.kind`), as the boot section names them.
pub const CLIENT_KINDS: &[&str] = &[
    "bios",
    "uefi_x64",
    "uefi_arm64",
    "uefi_x64_http",
    "uefi_arm64_http",
    "ipxe",
];

pub(crate) fn decode_profiles(ctx: &mut Ctx, node: &Node) -> Vec<ProfileConfig> {
    let mut out: Vec<ProfileConfig> = Vec::new();
    let Some(items) = seq(ctx, "profiles", node) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let key = item_key("profiles", i);
        let before = ctx.errors();
        let Some(f) = open_map(ctx, &key, item, PROFILE_KEYS) else {
            continue;
        };
        let name = match f.get("name") {
            Some(n) => nonempty_text(ctx, &f.key("name"), n).inspect(|name| {
                if out.iter().any(|p| &p.name == name) {
                    ctx.error(
                        &f.key("name"),
                        n,
                        format!("the profile name \"{name}\" is used twice"),
                    );
                }
            }),
            None => {
                ctx.error(&key, item, "missing: a profile needs a name");
                None
            }
        };
        let selectors = f
            .get("match")
            .map(|n| decode_match(ctx, &f.key("match"), n))
            .unwrap_or_default();
        let (ipxe, ipxe_line) = match f.get("ipxe") {
            Some(n) => match &n.kind {
                // The parser places a block scalar (`ipxe: |`) at its first content line.
                Kind::Scalar(Scalar { text, .. }) if !text.trim().is_empty() => {
                    (Some(text.clone()), n.line)
                }
                _ => {
                    ctx.error(
                        &f.key("ipxe"),
                        n,
                        format!("expected the iPXE script template, got {}", n.describe()),
                    );
                    (None, 0)
                }
            },
            None => {
                ctx.error(
                    &key,
                    item,
                    "missing: a profile needs its `ipxe` script template",
                );
                (None, 0)
            }
        };
        if ctx.errors() > before {
            continue;
        }
        if let (Some(name), Some(ipxe)) = (name, ipxe) {
            if selectors == ProfileMatch::default()
                && let Some(first) = out.iter().find(|p| p.selectors == ProfileMatch::default())
            {
                ctx.error(
                    &key,
                    item,
                    format!(
                        "a second default profile (no `match`): \"{}\" is already the default",
                        first.name
                    ),
                );
                continue;
            }
            out.push(ProfileConfig {
                name,
                selectors,
                ipxe,
                ipxe_line,
            });
        }
    }
    out
}

fn decode_match(ctx: &mut Ctx, key: &str, node: &Node) -> ProfileMatch {
    let mut m = ProfileMatch::default();
    let Some(f) = open_map(ctx, key, node, MATCH_KEYS) else {
        return m;
    };
    let texts = |ctx: &mut Ctx, name: &str| -> Vec<(String, &Node)> {
        let Some(n) = f.get(name) else {
            return Vec::new();
        };
        let k = f.key(name);
        let Some(items) = list(ctx, &k, n) else {
            return Vec::new();
        };
        items
            .into_iter()
            .filter_map(|item| Some((text(ctx, &k, item)?, item)))
            .collect()
    };
    for (s, n) in texts(ctx, "mac") {
        match normalise_mac(&s) {
            Some(mac) => m.mac.push(mac),
            None => ctx.error(
                &f.key("mac"),
                n,
                format!("expected a MAC address such as \"52:54:00:00:00:10\", got \"{s}\""),
            ),
        }
    }
    for (s, n) in texts(ctx, "uuid") {
        match parse_uuid(&s) {
            Some(uuid) => m.uuid.push(uuid),
            None => ctx.error(
                &f.key("uuid"),
                n,
                format!("expected an SMBIOS UUID such as \"4c4c4544-0042-3510-8052-b3c04f595231\", got \"{s}\""),
            ),
        }
    }
    if let Some(n) = f.get("arch") {
        let k = f.key("arch");
        for item in list(ctx, &k, n).unwrap_or_default() {
            if let Some(code) = integer(ctx, &k, item, 0..=u64::from(u16::MAX)) {
                m.arch.push(code as u16);
            }
        }
    }
    for (s, n) in texts(ctx, "kind") {
        if CLIENT_KINDS.contains(&s.as_str()) {
            m.kind.push(s);
        } else {
            ctx.error(
                &f.key("kind"),
                n,
                format!(
                    "\"{s}\" is not a client kind: one of {}",
                    CLIENT_KINDS.join(", ")
                ),
            );
        }
    }
    for (s, n) in texts(ctx, "hostname") {
        if s.is_empty() {
            ctx.error(&f.key("hostname"), n, "an empty host name matches nothing");
        } else {
            m.hostname.push(s.to_ascii_lowercase());
        }
    }
    if let Some(n) = f.get("labels") {
        m.labels = labels(ctx, &f.key("labels"), n);
    }
    m
}

/// A mapping of label names to values, both non-empty strings (`{ role: worker }`).
pub(crate) fn labels(ctx: &mut Ctx, key: &str, node: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let pairs = match &node.kind {
        Kind::Map(pairs) => pairs,
        Kind::Scalar(s) if s.is_null() => return out,
        _ => {
            ctx.error(
                key,
                node,
                format!(
                    "expected a mapping of labels such as {{ role: worker }}, got {}",
                    node.describe()
                ),
            );
            return out;
        }
    };
    for (name, value) in pairs {
        let Kind::Scalar(Scalar { text: name, .. }) = &name.kind else {
            ctx.error(key, name, "label names are plain words");
            continue;
        };
        let k = join(key, name);
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !valid_name {
            ctx.error(
                &k,
                value,
                format!("\"{name}\" is not a label name (letters, digits, _ - .)"),
            );
            continue;
        }
        if out.contains_key(name) {
            ctx.error(&k, value, format!("duplicate label \"{name}\""));
            continue;
        }
        if let Some(v) = nonempty_text(ctx, &k, value) {
            out.insert(name.clone(), v);
        }
    }
    out
}
