//! Decoding the YAML tree into the model types.
//!
//! Every function here records problems in [`Ctx`] and carries on with a fallback value, so a
//! single pass reports every unknown key, bad value and inconsistency in the file. The caller
//! throws the resulting [`Config`] away when any error was recorded.

mod dhcp;
pub(crate) mod dhcp_options;
mod dns;
mod http;
mod profiles;
mod reader;
mod tftp;

use std::path::PathBuf;

use crate::Severity;
use crate::model::*;
use crate::yaml::{Kind, Node};
use dhcp::decode_dhcp;
pub use dhcp::parse_uuid;
use dns::decode_dns;
use http::decode_http;
pub use profiles::CLIENT_KINDS;
use profiles::decode_profiles;
pub(crate) use reader::Ctx;
use reader::*;
use tftp::decode_tftp;

const DEFAULT_STATE_DIR: &str = "/var/lib/kindling";
const DEFAULT_LOG_LEVEL: &str = "info";

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "log",
    "tftp",
    "boot",
    "dhcp",
    "dns",
    "http",
    "profiles",
];
const LOG_KEYS: &[&str] = &["format", "level"];
const BOOT_KEYS: &[&str] = &[
    "bios",
    "uefi_x64",
    "uefi_arm64",
    "ipxe",
    "uefi_x64_http",
    "uefi_arm64_http",
];

/// `http://` or `https://` (any case).
pub(crate) fn is_url(value: &str) -> bool {
    let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn boot_value(ctx: &mut Ctx, key: &str, node: &Node) -> Option<String> {
    let s = nonempty_text(ctx, key, node)?;
    if s.chars().any(char::is_control) {
        ctx.error(key, node, "must not contain control characters");
        return None;
    }
    if is_url(&s) {
        let rest = s.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if rest.is_empty() || rest.starts_with('/') || s.chars().any(char::is_whitespace) {
            ctx.error(key, node, format!("\"{s}\" is not a valid http(s) URL"));
            return None;
        }
        return Some(s);
    }
    if s.contains("://") {
        ctx.error(
            key,
            node,
            format!(
                "\"{s}\": only http:// and https:// URLs are supported (else it is a TFTP path)"
            ),
        );
        return None;
    }
    if s.split(['/', '\\']).any(|part| part == "..") {
        ctx.error(
            key,
            node,
            format!("\"{s}\": a TFTP path must not contain \"..\""),
        );
        return None;
    }
    if s.len() > 127 {
        ctx.warn(
            key,
            node,
            "longer than 127 bytes: it does not fit the DHCP `file` field, \
             and some PXE firmware ignores option 67",
        );
    }
    Some(s)
}

fn decode_boot(ctx: &mut Ctx, path: &str, node: &Node) -> BootConfig {
    let mut boot = BootConfig::default();
    let Some(f) = open_map(ctx, path, node, BOOT_KEYS) else {
        return boot;
    };
    let mut get = |name: &str| f.get(name).and_then(|n| boot_value(ctx, &f.key(name), n));
    boot.bios = get("bios");
    boot.uefi_x64 = get("uefi_x64");
    boot.uefi_arm64 = get("uefi_arm64");
    boot.ipxe = get("ipxe");
    boot.uefi_x64_http = get("uefi_x64_http");
    boot.uefi_arm64_http = get("uefi_arm64_http");
    boot
}

/// `env-filter` directives: `info`, `kindling_tftp=debug`, comma-separated. Span filters
/// (`[...]`) are passed through unchecked.
fn log_level(ctx: &mut Ctx, key: &str, node: &Node) -> Option<String> {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let s = nonempty_text(ctx, key, node)?;
    for directive in s.split(',') {
        let directive = directive.trim();
        if directive.contains('[') {
            continue;
        }
        let is_word = |w: &str| !w.is_empty() && !w.contains(char::is_whitespace);
        let valid = match directive.rsplit_once('=') {
            Some((target, level)) => {
                is_word(target) && LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level))
            }
            // A level, or a target alone (which means every level for that target).
            None => is_word(directive),
        };
        if !valid {
            ctx.error(
                key,
                node,
                format!(
                    "\"{directive}\" is not a log directive such as \"info\" or \"kindling_tftp=debug\""
                ),
            );
            return None;
        }
    }
    Some(s)
}

pub(crate) fn decode(root: Option<&Node>, ctx: &mut Ctx) -> Config {
    let empty = Node {
        kind: Kind::Map(Vec::new()),
        line: 1,
        column: 1,
    };
    let root = root.unwrap_or(&empty);
    let mut config = Config {
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        log: LogConfig {
            format: LogFormat::Text,
            level: DEFAULT_LOG_LEVEL.to_string(),
        },
        tftp: None,
        boot: BootConfig::default(),
        dhcp: None,
        dns: None,
        http: None,
        profiles: Vec::new(),
    };
    let Some(top) = open_map(ctx, "", root, TOP_KEYS) else {
        return config;
    };
    if let Some(n) = top.get("state_dir")
        && let Some(p) = path_value(ctx, "state_dir", n)
    {
        config.state_dir = p;
    }
    if let Some(n) = top.get("log")
        && let Some(f) = open_map(ctx, "log", n, LOG_KEYS)
    {
        if let Some(n) = f.get("format") {
            match choice(ctx, "log.format", n, &["text", "json"]) {
                Some("json") => config.log.format = LogFormat::Json,
                Some(_) => config.log.format = LogFormat::Text,
                None => {}
            }
        }
        if let Some(level) = f.get("level").and_then(|n| log_level(ctx, "log.level", n)) {
            config.log.level = level;
        }
    }
    if let Some(n) = top.get("boot") {
        config.boot = decode_boot(ctx, "boot", n);
    }
    if let Some(n) = top.section("tftp") {
        config.tftp = decode_tftp(ctx, n);
    }
    if let Some(n) = top.section("dhcp") {
        config.dhcp = decode_dhcp(ctx, n);
    }
    if let Some(n) = top.section("dns") {
        config.dns = decode_dns(ctx, n);
    }
    if let Some(n) = top.section("http") {
        config.http = decode_http(ctx, n);
        if config.http.is_some() && config.tftp.is_none() {
            ctx.error(
                "http",
                n,
                "HTTP serves the boot tree, tftp.root, but the tftp section is off or missing",
            );
        }
    }
    if let Some(n) = top.get("profiles") {
        config.profiles = decode_profiles(ctx, n);
    }
    if let (Some(tftp), Some(dns)) = (&config.tftp, &config.dns) {
        for addr in &tftp.listen {
            if addr.port() != 0 && dns.listen.contains(addr) {
                let at = ctx.position_of("dns.listen");
                ctx.push(
                    Severity::Error,
                    "dns.listen",
                    at,
                    format!("{addr} is also in tftp.listen: both are UDP and cannot share it"),
                );
            }
        }
    }
    config
}

/// Warnings that need more than one section.
pub(crate) fn cross_check(ctx: &mut Ctx, config: &Config) {
    if config.tftp.is_none() {
        let mut boots = vec![("boot".to_string(), &config.boot)];
        if let Some(dhcp) = &config.dhcp {
            for (i, r) in dhcp.reservations.iter().enumerate() {
                boots.push((format!("dhcp.reservations[{i}].boot"), &r.boot));
            }
        }
        for (path, boot) in boots {
            for (name, value) in boot_entries(boot) {
                if !is_url(value) {
                    let key = format!("{path}.{name}");
                    let at = ctx.position_of(&key);
                    ctx.push(
                        Severity::Warning,
                        &key,
                        at,
                        format!(
                            "\"{value}\" is a TFTP path but TFTP is off, so clients cannot fetch it"
                        ),
                    );
                }
            }
        }
    }
    if config.dhcp.is_some() && boot_entries(&config.boot).next().is_none() {
        let at = ctx.position_of("boot").or(ctx.position_of("dhcp"));
        ctx.push(
            Severity::Warning,
            "boot",
            at,
            "DHCP is on but boot is empty: PXE clients are not told what to load",
        );
    }
    if config.tftp.is_none()
        && config.dhcp.is_none()
        && config.dns.is_none()
        && config.http.is_none()
    {
        ctx.push(
            Severity::Warning,
            "",
            None,
            "nothing to serve: tftp, dhcp and dns are all off \
             (a section left out means that service is off)",
        );
    }
}

/// The boot entries that are set, by key name.
pub(crate) fn boot_entries(boot: &BootConfig) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("bios", &boot.bios),
        ("uefi_x64", &boot.uefi_x64),
        ("uefi_arm64", &boot.uefi_arm64),
        ("ipxe", &boot.ipxe),
        ("uefi_x64_http", &boot.uefi_x64_http),
        ("uefi_arm64_http", &boot.uefi_arm64_http),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
}
