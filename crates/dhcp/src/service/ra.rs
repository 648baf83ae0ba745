//! The tokio shell around the router advertisement core ([`crate::v6::ra`]): one raw ICMPv6
//! socket that sees only router solicitations and advertisements, joined to ff02::2 on every
//! served interface, the interface table (re-read every few seconds so interfaces and
//! addresses that appear later are served), the core's timer, and new settings on reload.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use ipnet::{IpNet, Ipv6Net};
use kindling_config::{DhcpConfig, DhcpMode};
use kindling_udp::icmpv6::{ALL_ROUTERS, Icmpv6Socket};
use kindling_udp::netif::{InterfaceTable, NetInterface};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::v6::ra::{Advertiser, DropReason, Event, Jitter, Link, Received, Sent, Settings, wire};

/// How often the interface table is read again.
const REFRESH: Duration = Duration::from_secs(5);
/// The receive buffer: the largest IPv6 payload, so nothing a link can carry is cut.
const RECV_BUFFER: usize = 65_536;

/// Why the router advertisement service could not start.
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    #[error("opening a raw ICMPv6 socket (needs CAP_NET_RAW): {0}")]
    Socket(#[source] std::io::Error),
}

/// What the service does, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaConfig {
    /// `dhcp.interfaces`; `None`: every interface but loopback.
    pub interfaces: Option<Vec<String>>,
    pub settings: Settings,
}

impl RaConfig {
    /// The service's config: `None` when it has nothing to do (neither the quiet RA nor, in
    /// server mode, `dhcp.v6.router_advertisements`). Full advertisements are sent only in
    /// server mode: in proxy mode the segment's own router advertises.
    pub fn from_config(dhcp: &DhcpConfig) -> Option<RaConfig> {
        let quiet = dhcp.quiet_ra_enabled();
        let (prefixes, default_router) = match &dhcp.v6 {
            Some(v6) if v6.router_advertisements && dhcp.mode == DhcpMode::Server => {
                let prefixes: Vec<Ipv6Net> = v6
                    .subnets
                    .iter()
                    .filter_map(|s| match s.network {
                        IpNet::V6(net) => Some(net),
                        IpNet::V4(_) => None,
                    })
                    .collect();
                (prefixes, v6.default_router)
            }
            _ => (Vec::new(), false),
        };
        if !quiet && prefixes.is_empty() {
            return None;
        }
        Some(RaConfig {
            interfaces: dhcp.interfaces.clone(),
            settings: Settings {
                quiet,
                prefixes,
                default_router,
            },
        })
    }
}

/// A bound router advertisement service, ready to `run`.
#[derive(Debug)]
pub struct RaService {
    socket: Icmpv6Socket,
    config: RaConfig,
}

impl RaService {
    /// Opens the raw ICMPv6 socket. Nothing is sent until `run`.
    pub fn bind(config: RaConfig) -> Result<RaService, RaError> {
        let socket = Icmpv6Socket::open(&[wire::ROUTER_SOLICITATION, wire::ROUTER_ADVERTISEMENT])
            .map_err(RaError::Socket)?;
        Ok(RaService { socket, config })
    }

    /// Advertises and answers solicitations until `shutdown` is cancelled, taking new configs
    /// from `reload`; at shutdown an interface that was a default router sends its final
    /// advertisement.
    pub async fn run(self, shutdown: CancellationToken, mut reload: watch::Receiver<RaConfig>) {
        let RaService { socket, config } = self;
        let mut interfaces = config.interfaces;
        let mut table = InterfaceTable::new();
        let mut core = Advertiser::new(SeededJitter::new(), config.settings.clone());
        let mut joined = BTreeSet::new();
        let links = served(&mut table, interfaces.as_deref(), &socket, &mut joined);
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        let advertise = !config.settings.prefixes.is_empty();
        tracing::info!(
            interfaces = ?names,
            quiet = config.settings.quiet,
            advertise,
            default_router = config.settings.default_router,
            "dhcp: router advertisements on"
        );
        core.set_links(Instant::now(), links);
        let mut advertising = Vec::new();
        note_advertising(&core, &mut advertising);
        flush(&socket, &mut core).await;
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.tick().await;
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let deadline = core.poll_timeout();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                changed = reload.changed() => {
                    if changed.is_err() {
                        // The sender is gone: keep serving what we have until shutdown.
                        shutdown.cancelled().await;
                        break;
                    }
                    let config = reload.borrow_and_update().clone();
                    interfaces = config.interfaces;
                    core.set_settings(Instant::now(), config.settings);
                    let links = served(&mut table, interfaces.as_deref(), &socket, &mut joined);
                    core.set_links(Instant::now(), links);
                    note_advertising(&core, &mut advertising);
                }
                received = socket.recv(&mut buf) => match received {
                    Ok(meta) => {
                        let Some(ifindex) = meta.ifindex else { continue };
                        core.handle(Instant::now(), Received {
                            bytes: &buf[..meta.len.min(buf.len())],
                            source: meta.source,
                            ifindex,
                            hop_limit: meta.hop_limit,
                            truncated: meta.truncated,
                        });
                    }
                    Err(error) => tracing::debug!(%error, "dhcp: ICMPv6 receive failed"),
                },
                _ = sleep_until(deadline) => core.handle_timeout(Instant::now()),
                _ = refresh.tick() => {
                    table.refresh();
                    let links = served(&mut table, interfaces.as_deref(), &socket, &mut joined);
                    core.set_links(Instant::now(), links);
                    note_advertising(&core, &mut advertising);
                }
            }
            flush(&socket, &mut core).await;
        }
        core.stop(Instant::now());
        flush(&socket, &mut core).await;
        for ifindex in joined {
            let _ = socket.leave(ALL_ROUTERS, ifindex);
        }
    }
}

/// Logs which interfaces advertise which prefixes when that changes.
fn note_advertising<J: Jitter>(core: &Advertiser<J>, last: &mut Vec<(String, Vec<Ipv6Net>)>) {
    let now = core.advertising();
    if now == *last {
        return;
    }
    for (interface, prefixes) in &now {
        let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
        tracing::info!(%interface, ?prefixes, "dhcp: advertising as the DHCPv6 segment's router (M and O set)");
    }
    *last = now;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The served interfaces as links, joining ff02::2 on each one not joined yet.
fn served(
    table: &mut InterfaceTable,
    filter: Option<&[String]>,
    socket: &Icmpv6Socket,
    joined: &mut BTreeSet<u32>,
) -> Vec<Link> {
    let serves = |interface: &NetInterface| match filter {
        Some(names) => names.iter().any(|n| n == &interface.name),
        None => !interface.loopback,
    };
    let mut links = Vec::new();
    for interface in table.all().filter(|i| serves(i)) {
        if !joined.contains(&interface.index) {
            match socket.join(ALL_ROUTERS, interface.index) {
                Ok(()) => {
                    joined.insert(interface.index);
                }
                Err(error) => {
                    tracing::debug!(interface = %interface.name, %error, "dhcp: cannot join ff02::2 yet");
                    continue;
                }
            }
        }
        links.push(Link {
            index: interface.index,
            name: interface.name.clone(),
            link_local: interface.ipv6_link_local,
            mac: interface.mac,
            addresses: interface.ipv6.iter().map(Ipv6Net::addr).collect(),
        });
    }
    joined.retain(|index| links.iter().any(|l| l.index == *index));
    links
}

async fn flush(socket: &Icmpv6Socket, core: &mut Advertiser<SeededJitter>) {
    while let Some(transmit) = core.poll_transmit() {
        if let Err(error) = socket
            .send(
                &transmit.bytes,
                transmit.to,
                transmit.ifindex,
                Some(transmit.from),
            )
            .await
        {
            tracing::debug!(%error, to = %transmit.to, ifindex = transmit.ifindex, "dhcp: ICMPv6 send failed");
        }
    }
    while let Some(event) = core.poll_event() {
        log(event);
    }
}

fn log(event: Event) {
    match event {
        Event::Sent {
            interface,
            kind: Sent::Quiet,
            solicitations,
            ..
        } => tracing::debug!(%interface, solicitations, "dhcp: quiet router advertisement sent"),
        Event::Sent {
            interface,
            kind: Sent::Final,
            ..
        } => {
            tracing::info!(%interface, "dhcp: final router advertisement sent (router lifetime 0)")
        }
        Event::Sent {
            interface,
            kind,
            router_lifetime,
            solicitations,
        } => tracing::debug!(
            %interface,
            ?kind,
            router_lifetime,
            solicitations,
            "dhcp: router advertisement sent"
        ),
        Event::RouterHeard {
            interface,
            router,
            router_lifetime,
            silent_for,
        } => tracing::info!(
            %interface,
            %router,
            router_lifetime,
            "dhcp: another router advertises on this interface; no quiet router advertisements \
             there until it has been silent for {}s",
            silent_for.as_secs()
        ),
        Event::RoutersGone { interface } => tracing::info!(
            %interface,
            "dhcp: no router has advertised here for its lifetime; answering router solicitations again"
        ),
        Event::OtherRouter {
            interface,
            router,
            router_lifetime,
            managed,
            other,
            prefixes,
            flags_disagree,
            prefixes_disagree,
        } => {
            let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
            let disagreement = match (flags_disagree, prefixes_disagree) {
                (false, false) => "its flags and prefixes agree with ours",
                (true, false) => "its M/O flags disagree with ours (M=1 O=1)",
                (false, true) => "its on-link prefixes disagree with ours",
                (true, true) => {
                    "its M/O flags (ours: M=1 O=1) and on-link prefixes disagree with ours"
                }
            };
            tracing::warn!(
                %interface,
                %router,
                router_lifetime,
                managed,
                other,
                ?prefixes,
                flags_disagree,
                prefixes_disagree,
                "dhcp: another router {router} advertises on {interface}, where Kindling advertises too \
                 (dhcp.v6.router_advertisements); {disagreement}"
            );
        }
        Event::Dropped {
            interface,
            source,
            reason: DropReason::NotServed,
        } => tracing::trace!(?interface, %source, "dhcp: ICMPv6 from an interface not served"),
        Event::Dropped {
            interface,
            source,
            reason,
        } => tracing::debug!(?interface, %source, %reason, "dhcp: ICMPv6 message dropped"),
    }
}

/// xorshift64*, seeded from the clock and the process id: the RFC 4861 delay only has to keep
/// responders from answering in step, not to be unpredictable.
#[derive(Debug)]
struct SeededJitter(u64);

impl SeededJitter {
    fn new() -> SeededJitter {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SeededJitter((nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }
}

impl Jitter for SeededJitter {
    fn delay(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let draw = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let max_micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(draw % max_micros.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn ra_config(text: &str) -> Option<RaConfig> {
        let config = kindling_config::parse(text, "test.yaml").unwrap().config;
        RaConfig::from_config(config.dhcp.as_ref().unwrap())
    }

    const SERVER: &str = "dhcp:\n  mode: server\n  interfaces: [eth1]\n  subnets:\n    - network: 10.99.0.0/24\n      range: [10.99.0.100, 10.99.0.200]\n";
    const V6: &str = "    subnets:\n      - { network: \"fd00:99::/64\", range: [\"fd00:99::100\", \"fd00:99::1ff\"] }\n";

    #[test]
    fn router_advertisements_in_server_mode_advertise_the_v6_subnets() {
        let config = ra_config(&format!(
            "{SERVER}  v6:\n    router_advertisements: true\n    default_router: true\n{V6}"
        ))
        .unwrap();
        assert_eq!(config.interfaces, Some(vec!["eth1".to_string()]));
        assert_eq!(
            config.settings,
            Settings {
                quiet: true,
                prefixes: vec!["fd00:99::/64".parse().unwrap()],
                default_router: true,
            }
        );
        // Without the key: the quiet RA alone.
        let quiet = ra_config(&format!("{SERVER}  v6:\n{V6}")).unwrap();
        assert!(quiet.settings.quiet && quiet.settings.prefixes.is_empty());
        // Advertising without the quiet RA still runs the service.
        let alone = ra_config(&format!(
            "{SERVER}  v6:\n    quiet_ra: off\n    router_advertisements: true\n{V6}"
        ))
        .unwrap();
        assert!(!alone.settings.quiet && alone.settings.prefixes.len() == 1);
        assert_eq!(
            ra_config(&format!("{SERVER}  v6:\n    quiet_ra: off\n{V6}")),
            None
        );
    }

    #[test]
    fn proxy_mode_sends_no_router_advertisements() {
        let text = "dhcp:\n  mode: proxy\n  v6:\n    router_advertisements: true\n    subnets:\n      - { network: \"fd00:99::/64\", range: [\"fd00:99::100\", \"fd00:99::1ff\"] }\n";
        assert_eq!(ra_config(text), None);
    }
}
