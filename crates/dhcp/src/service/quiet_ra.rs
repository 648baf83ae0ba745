//! The tokio shell around the quiet-RA core ([`crate::v6::ra`]): one raw ICMPv6 socket that
//! sees only router solicitations and advertisements, joined to ff02::2 on every served
//! interface, the interface table (re-read every few seconds so interfaces and link-local
//! addresses that appear later are served), and the core's timer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use kindling_udp::icmpv6::{ALL_ROUTERS, Icmpv6Socket};
use kindling_udp::netif::{InterfaceTable, NetInterface};
use tokio_util::sync::CancellationToken;

use crate::v6::ra::{DropReason, Event, Jitter, Link, QuietRa, Received, wire};

/// How often the interface table is read again.
const REFRESH: Duration = Duration::from_secs(5);
/// The receive buffer: the largest IPv6 payload, so nothing a link can carry is cut.
const RECV_BUFFER: usize = 65_536;

/// Why the quiet-RA responder could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuietRaError {
    #[error("opening a raw ICMPv6 socket (needs CAP_NET_RAW): {0}")]
    Socket(#[source] std::io::Error),
}

/// A bound quiet-RA responder, ready to `run`.
#[derive(Debug)]
pub struct QuietRaService {
    socket: Icmpv6Socket,
    /// `dhcp.interfaces`; `None`: every interface but loopback.
    interfaces: Option<Vec<String>>,
}

impl QuietRaService {
    /// Opens the raw ICMPv6 socket. Nothing is sent until `run`.
    pub fn bind(interfaces: Option<Vec<String>>) -> Result<QuietRaService, QuietRaError> {
        let socket = Icmpv6Socket::open(&[wire::ROUTER_SOLICITATION, wire::ROUTER_ADVERTISEMENT])
            .map_err(QuietRaError::Socket)?;
        Ok(QuietRaService { socket, interfaces })
    }

    /// Answers solicitations until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let QuietRaService { socket, interfaces } = self;
        let mut table = InterfaceTable::new();
        let mut core = QuietRa::new(SeededJitter::new());
        let mut joined = BTreeSet::new();
        let links = served(&mut table, interfaces.as_deref(), &socket, &mut joined);
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        tracing::info!(interfaces = ?names, "dhcp: quiet router advertisements on");
        core.set_links(Instant::now(), links);
        flush(&socket, &mut core).await;
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.tick().await;
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let deadline = core.poll_timeout();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
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
                }
            }
            flush(&socket, &mut core).await;
        }
        for ifindex in joined {
            let _ = socket.leave(ALL_ROUTERS, ifindex);
        }
    }
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
        });
    }
    joined.retain(|index| links.iter().any(|l| l.index == *index));
    links
}

async fn flush(socket: &Icmpv6Socket, core: &mut QuietRa<SeededJitter>) {
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
            solicitations,
        } => tracing::debug!(%interface, solicitations, "dhcp: quiet router advertisement sent"),
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
