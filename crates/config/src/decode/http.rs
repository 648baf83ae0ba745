//! The `http` section: the boot tree over HTTP.

use std::time::Duration;

use crate::model::*;
use crate::yaml::Node;

use super::reader::*;

const DEFAULT_HTTP_LISTEN: [&str; 2] = ["0.0.0.0:8080", "[::]:8080"];
const DEFAULT_MAX_CONNECTIONS: u64 = 512;
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

const HTTP_KEYS: &[&str] = &[
    "enabled",
    "listen",
    "max_connections",
    "header_timeout",
    "send_timeout",
];

pub(super) fn decode_http(ctx: &mut Ctx, node: &Node) -> Option<HttpConfig> {
    let f = open_map(ctx, "http", node, HTTP_KEYS)?;
    let enabled = f
        .get("enabled")
        .and_then(|n| boolean(ctx, "http.enabled", n))
        .unwrap_or(true);
    let listen = match f.get("listen") {
        Some(n) => {
            let before = ctx.errors();
            let addrs = socket_addrs(ctx, "http.listen", n, None).unwrap_or_default();
            if addrs.is_empty() && enabled && ctx.errors() == before {
                ctx.error(
                    "http.listen",
                    n,
                    "needs at least one address (to turn HTTP off, set http.enabled: false)",
                );
            }
            addrs
        }
        None => default_addrs(&DEFAULT_HTTP_LISTEN),
    };
    let max_connections = f
        .get("max_connections")
        .and_then(|n| integer(ctx, "http.max_connections", n, 1..=1_000_000))
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let header_timeout = f
        .get("header_timeout")
        .and_then(|n| {
            duration(
                ctx,
                "http.header_timeout",
                n,
                Duration::from_secs(1)..=Duration::from_secs(3600),
            )
        })
        .unwrap_or(DEFAULT_HEADER_TIMEOUT);
    let send_timeout = f
        .get("send_timeout")
        .and_then(|n| {
            duration(
                ctx,
                "http.send_timeout",
                n,
                Duration::from_secs(1)..=Duration::from_secs(3600),
            )
        })
        .unwrap_or(DEFAULT_SEND_TIMEOUT);
    if !enabled {
        return None;
    }
    Some(HttpConfig {
        listen,
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        header_timeout,
        send_timeout,
    })
}
