//! The `tftp` section.

use std::ops::RangeInclusive;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::model::*;
use crate::yaml::{Kind, Node};

use super::reader::*;

const DEFAULT_TFTP_LISTEN: [&str; 2] = ["0.0.0.0:69", "[::]:69"];
const DEFAULT_TFTP_ROOT: &str = "/srv/tftp";
const DEFAULT_MAX_SESSIONS: u64 = 512;
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RETRIES: u64 = 5;
const DEFAULT_MAX_BLKSIZE: u64 = 65464;
const DEFAULT_MAX_WINDOWSIZE: u64 = 64;
const DEFAULT_CACHE_SIZE: u64 = 256 << 20;
const DEFAULT_UNCONFIRMED_PER_ADDRESS: u64 = 16;
const DEFAULT_UNCONFIRMED_PER_PREFIX: u64 = 64;
const DEFAULT_WRITE_DIR: &str = "uploads";
const DEFAULT_WRITE_MAX_SIZE: u64 = 256 << 20;

const TFTP_KEYS: &[&str] = &[
    "enabled",
    "listen",
    "root",
    "max_sessions",
    "queue_timeout",
    "allow_from",
    "single_port",
    "port_range",
    "timeout",
    "retries",
    "max_blksize",
    "max_windowsize",
    "cache_size",
    "unconfirmed_per_address",
    "unconfirmed_per_prefix",
    "write",
];

const WRITE_KEYS: &[&str] = &[
    "enabled",
    "dir",
    "overwrite",
    "max_size",
    "allow_from",
    "read_from",
];

pub(super) fn decode_tftp(ctx: &mut Ctx, node: &Node) -> Option<TftpConfig> {
    let f = open_map(ctx, "tftp", node, TFTP_KEYS)?;
    let enabled = f
        .get("enabled")
        .and_then(|n| boolean(ctx, "tftp.enabled", n))
        .unwrap_or(true);
    let listen = match f.get("listen") {
        Some(n) => {
            let before = ctx.errors();
            let addrs = socket_addrs(ctx, "tftp.listen", n, None).unwrap_or_default();
            if addrs.is_empty() && enabled && ctx.errors() == before {
                ctx.error(
                    "tftp.listen",
                    n,
                    "needs at least one address (to turn TFTP off, set tftp.enabled: false)",
                );
            }
            addrs
        }
        None => default_addrs(&DEFAULT_TFTP_LISTEN),
    };
    let root = f
        .get("root")
        .and_then(|n| path_value(ctx, "tftp.root", n))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TFTP_ROOT));
    let max_sessions = f
        .get("max_sessions")
        .and_then(|n| integer(ctx, "tftp.max_sessions", n, 1..=1_000_000))
        .unwrap_or(DEFAULT_MAX_SESSIONS);
    let queue_timeout = f
        .get("queue_timeout")
        .and_then(|n| {
            duration(
                ctx,
                "tftp.queue_timeout",
                n,
                Duration::ZERO..=Duration::from_secs(3600),
            )
        })
        .unwrap_or(DEFAULT_QUEUE_TIMEOUT);
    let allow_from = f
        .get("allow_from")
        .and_then(|n| cidr_list(ctx, "tftp.allow_from", n));
    let single_port = f
        .get("single_port")
        .and_then(|n| boolean(ctx, "tftp.single_port", n))
        .unwrap_or(false);
    let port_range = f
        .get("port_range")
        .and_then(|n| port_range(ctx, "tftp.port_range", n));
    let timeout = f
        .get("timeout")
        .and_then(|n| {
            duration(
                ctx,
                "tftp.timeout",
                n,
                Duration::from_secs(1)..=Duration::from_secs(255),
            )
        })
        .unwrap_or(DEFAULT_TIMEOUT);
    let retries = f
        .get("retries")
        .and_then(|n| integer(ctx, "tftp.retries", n, 1..=50))
        .unwrap_or(DEFAULT_RETRIES);
    let max_blksize = f
        .get("max_blksize")
        .and_then(|n| integer(ctx, "tftp.max_blksize", n, 8..=65464))
        .unwrap_or(DEFAULT_MAX_BLKSIZE);
    let max_windowsize = f
        .get("max_windowsize")
        .and_then(|n| integer(ctx, "tftp.max_windowsize", n, 1..=65535))
        .unwrap_or(DEFAULT_MAX_WINDOWSIZE);
    let cache_size = f
        .get("cache_size")
        .and_then(|n| size(ctx, "tftp.cache_size", n, 0..=u64::MAX))
        .unwrap_or(DEFAULT_CACHE_SIZE);
    let unconfirmed_per_address = f
        .get("unconfirmed_per_address")
        .and_then(|n| integer(ctx, "tftp.unconfirmed_per_address", n, 1..=1_000_000))
        .unwrap_or(DEFAULT_UNCONFIRMED_PER_ADDRESS);
    let unconfirmed_per_prefix = f
        .get("unconfirmed_per_prefix")
        .and_then(|n| integer(ctx, "tftp.unconfirmed_per_prefix", n, 1..=1_000_000))
        .unwrap_or(DEFAULT_UNCONFIRMED_PER_PREFIX);
    let write = decode_write(ctx, f.get("write"), enabled);

    if single_port
        && port_range.is_some()
        && let Some(n) = f.get("port_range")
    {
        ctx.warn(
            "tftp.port_range",
            n,
            "ignored: with single_port every transfer uses the listening port",
        );
    }
    if let (Some(nets), Some(n)) = (&allow_from, f.get("allow_from"))
        && nets.is_empty()
        && enabled
    {
        ctx.warn(
            "tftp.allow_from",
            n,
            "is empty: nobody may read (omit it to allow anyone)",
        );
    }
    if !enabled {
        return None;
    }
    Some(TftpConfig {
        listen,
        root,
        max_sessions: usize::try_from(max_sessions).unwrap_or(usize::MAX),
        queue_timeout,
        allow_from,
        single_port,
        port_range,
        timeout,
        retries: u32::try_from(retries).unwrap_or(u32::MAX),
        max_blksize: u16::try_from(max_blksize).unwrap_or(u16::MAX),
        max_windowsize: u16::try_from(max_windowsize).unwrap_or(u16::MAX),
        cache_size,
        unconfirmed_per_address: usize::try_from(unconfirmed_per_address).unwrap_or(usize::MAX),
        unconfirmed_per_prefix: usize::try_from(unconfirmed_per_prefix).unwrap_or(usize::MAX),
        write,
    })
}

fn port_range(ctx: &mut Ctx, key: &str, node: &Node) -> Option<RangeInclusive<u16>> {
    let bad = "expected [low, high] or \"low-high\" with ports from 1 to 65535";
    let (lo, hi) = match &node.kind {
        Kind::Seq(items) if items.len() == 2 => {
            let lo = integer(ctx, &item_key(key, 0), &items[0], 1..=65535);
            let hi = integer(ctx, &item_key(key, 1), &items[1], 1..=65535);
            (lo?, hi?)
        }
        Kind::Scalar(s) if !s.is_null() => {
            let parsed = s.text.split_once('-').and_then(|(a, b)| {
                let ok = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
                if ok(a) && ok(b) {
                    Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
                } else {
                    None
                }
            });
            match parsed {
                Some((lo, hi)) if (1..=65535).contains(&lo) && (1..=65535).contains(&hi) => {
                    (lo, hi)
                }
                _ => {
                    ctx.error(key, node, format!("{bad}, got {}", node.describe()));
                    return None;
                }
            }
        }
        _ => {
            ctx.error(key, node, format!("{bad}, got {}", node.describe()));
            return None;
        }
    };
    if lo > hi {
        ctx.error(
            key,
            node,
            format!("the low port {lo} is above the high port {hi}"),
        );
        return None;
    }
    let (lo, hi) = (u16::try_from(lo).ok()?, u16::try_from(hi).ok()?);
    Some(lo..=hi)
}

fn write_dir(ctx: &mut Ctx, key: &str, node: &Node) -> Option<PathBuf> {
    let s = nonempty_text(ctx, key, node)?;
    let mut dir = PathBuf::new();
    for component in Path::new(&s).components() {
        match component {
            Component::Normal(part) => dir.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                ctx.error(
                    key,
                    node,
                    format!(
                        "\"{s}\" must be a directory inside the TFTP root: relative, without \"..\""
                    ),
                );
                return None;
            }
        }
    }
    if dir.as_os_str().is_empty() {
        ctx.error(
            key,
            node,
            format!("\"{s}\" must name a directory inside the TFTP root, not the root itself"),
        );
        return None;
    }
    Some(dir)
}

fn overwrite(ctx: &mut Ctx, key: &str, node: &Node) -> Option<OverwritePolicy> {
    let expected = "expected false (refuse), true (replace) or versioned";
    let Kind::Scalar(s) = &node.kind else {
        ctx.error(key, node, format!("{expected}, got {}", node.describe()));
        return None;
    };
    match (s.as_bool(), s.text.as_str()) {
        (Some(false), _) => Some(OverwritePolicy::Refuse),
        (Some(true), _) => Some(OverwritePolicy::Replace),
        (None, "versioned") => Some(OverwritePolicy::Versioned),
        (None, "refuse") => Some(OverwritePolicy::Refuse),
        (None, "replace") => Some(OverwritePolicy::Replace),
        _ => {
            ctx.error(key, node, format!("{expected}, got {}", node.describe()));
            None
        }
    }
}

/// `tftp_enabled`: whether TFTP itself is on (uploads to a server that is off need no warning).
fn decode_write(ctx: &mut Ctx, node: Option<&Node>, tftp_enabled: bool) -> TftpWriteConfig {
    let mut write = TftpWriteConfig {
        enabled: false,
        dir: PathBuf::from(DEFAULT_WRITE_DIR),
        overwrite: OverwritePolicy::Refuse,
        max_size: DEFAULT_WRITE_MAX_SIZE,
        allow_from: None,
        read_from: None,
    };
    let Some(node) = node else { return write };
    let Some(f) = open_map(ctx, "tftp.write", node, WRITE_KEYS) else {
        return write;
    };
    if let Some(b) = f
        .get("enabled")
        .and_then(|n| boolean(ctx, "tftp.write.enabled", n))
    {
        write.enabled = b;
    }
    if let Some(dir) = f
        .get("dir")
        .and_then(|n| write_dir(ctx, "tftp.write.dir", n))
    {
        write.dir = dir;
    }
    if let Some(policy) = f
        .get("overwrite")
        .and_then(|n| overwrite(ctx, "tftp.write.overwrite", n))
    {
        write.overwrite = policy;
    }
    if let Some(max) = f
        .get("max_size")
        .and_then(|n| size(ctx, "tftp.write.max_size", n, 1..=u64::MAX))
    {
        write.max_size = max;
    }
    write.allow_from = f
        .get("allow_from")
        .and_then(|n| cidr_list(ctx, "tftp.write.allow_from", n));
    write.read_from = f
        .get("read_from")
        .and_then(|n| cidr_list(ctx, "tftp.write.read_from", n));
    if write.enabled && tftp_enabled {
        match (&write.allow_from, f.get("allow_from")) {
            (None, _) => ctx.warn(
                "tftp.write.allow_from",
                f.get("enabled").unwrap_or(f.node),
                "uploads are enabled and allow_from is not set: \
                 anyone who can reach the server can upload",
            ),
            (Some(nets), Some(n)) if nets.is_empty() => ctx.warn(
                "tftp.write.allow_from",
                n,
                "is empty: nobody may upload (omit it to allow anyone)",
            ),
            _ => {}
        }
    }
    write
}
