//! The tokio shell around the DHCPv6 core: UDP port 547 on every IPv6 address, joined to
//! ff02::1:2 on the served interfaces, sharing the DHCP service's lease store (a REPLY leaves
//! only after its leases are durable) and its lease event channel. It runs as its own task,
//! beside the DHCPv4 loop, and takes new settings from it on reload.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kindling_udp::UdpEndpoint;
use kindling_udp::netif::InterfaceTable;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{DhcpError, RECV_BUFFER};
use crate::event::LeaseEvent;
use crate::lease::{LeaseStore, StoreError};
use crate::v6::server::coexist::{ForeignServer6, foreign_advertise, probe_solicit};
use crate::v6::server::{
    ALL_SERVERS_AND_RELAYS, Action, CLIENT_PORT, Core, Datagram, Interface, SERVER_PORT, Settings,
    Transmit, hex, parse_hex,
};

/// The file in `state_dir` that keeps the server's DUID across restarts (hex).
pub const DUID_FILE: &str = "dhcp6.duid";
/// How often the served interfaces are looked at again for multicast joins.
const JOIN_INTERVAL: Duration = Duration::from_secs(10);
/// How long the probe at start listens for other DHCPv6 servers' ADVERTISEs (a server
/// answers a SOLICIT at once, RFC 8415 has no server-side delay) before serving.
const COEXIST_WAIT: Duration = Duration::from_millis(1500);
/// How long the probes while serving listen.
const COEXIST_BACKGROUND_WAIT: Duration = Duration::from_secs(4);
/// How often the probe runs again while serving.
const COEXIST_INTERVAL: Duration = Duration::from_secs(600);

/// The server DUID kept in `state_dir`, created on first use: a DUID-UUID (RFC 6355, type 4)
/// of 16 random bytes, which names this server whatever its interfaces become.
pub fn server_duid(state_dir: &Path) -> io::Result<Vec<u8>> {
    let path = state_dir.join(DUID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let duid = parse_hex(text.trim()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a DUID in hex", path.display()),
                )
            })?;
            if !(2..=130).contains(&duid.len()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: a DUID is 2 to 130 bytes", path.display()),
                ));
            }
            Ok(duid)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let mut random = [0u8; 16];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
            let mut duid = vec![0, 4];
            duid.extend_from_slice(&random);
            std::fs::create_dir_all(state_dir)?;
            let temp = state_dir.join(format!("{DUID_FILE}.tmp"));
            let mut file = std::fs::File::create(&temp)?;
            writeln!(file, "{}", hex(&duid))?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&temp, &path)?;
            std::fs::File::open(state_dir)?.sync_all()?;
            tracing::info!(duid = %hex(&duid), file = %path.display(), "dhcpv6: created the server DUID");
            Ok(duid)
        }
        Err(error) => Err(error),
    }
}

/// The bound port 547 and its core, ready to run.
#[derive(Debug)]
pub(super) struct V6Part {
    endpoint: Arc<UdpEndpoint>,
    core: Core,
}

impl V6Part {
    pub(super) fn bind(settings: Settings, store: &LeaseStore) -> Result<V6Part, DhcpError> {
        let addr = SocketAddr::from((Ipv6Addr::UNSPECIFIED, SERVER_PORT));
        let endpoint =
            UdpEndpoint::bind(addr).map_err(|source| DhcpError::Bind { addr, source })?;
        if let Err(error) = endpoint.set_recv_buffer(RECV_BUFFER) {
            tracing::debug!(%addr, %error, "dhcpv6: could not enlarge the receive buffer");
        }
        Ok(V6Part {
            endpoint: Arc::new(endpoint),
            core: Core::new(settings, store.all_v6()),
        })
    }
}

/// What a finished commit hands back to the loop.
struct Committed {
    result: Result<(), StoreError>,
    then: Transmit,
    events: Vec<LeaseEvent>,
}

/// New settings and interface filter, from the DHCP service's reload.
pub(super) type Reload = (Settings, Option<Vec<String>>);

/// Serves DHCPv6 until `shutdown`.
pub(super) async fn run(
    part: V6Part,
    store: Arc<LeaseStore>,
    events: broadcast::Sender<LeaseEvent>,
    mut filter: Option<Vec<String>>,
    mut reloads: mpsc::Receiver<Reload>,
    shutdown: CancellationToken,
) {
    let V6Part { endpoint, mut core } = part;
    let mut interfaces = InterfaceTable::new();
    let mut joined = HashSet::new();
    join_served(&endpoint, &mut interfaces, filter.as_deref(), &mut joined);
    let mut join_timer = tokio::time::interval(JOIN_INTERVAL);
    let first = probe_targets(&mut interfaces, &core, filter.as_deref());
    let found = probe_all(first, core.settings().server_duid.clone(), COEXIST_WAIT).await;
    coexistence_results(&mut core, found);
    let (coexist_tx, mut coexist_rx) = mpsc::unbounded_channel::<Vec<ProbeResult>>();
    let mut coexist_timer = tokio::time::interval_at(
        tokio::time::Instant::now() + COEXIST_INTERVAL,
        COEXIST_INTERVAL,
    );
    let (commit_tx, mut commit_rx) = mpsc::unbounded_channel::<Committed>();
    let mut buf = vec![0u8; 4096];
    tracing::info!(
        subnets = core.settings().subnets.len(),
        "dhcpv6 listening on [::]:{SERVER_PORT}"
    );
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(done) = commit_rx.recv() => match done.result {
                Ok(()) => {
                    send(&endpoint, done.then).await;
                    for event in done.events {
                        let _ = events.send(event);
                    }
                }
                Err(error) => tracing::error!(%error, "dhcpv6: a lease could not be made durable; its REPLY is not sent"),
            },
            Some((settings, new_filter)) = reloads.recv() => {
                core.reconfigure(settings);
                filter = new_filter;
                join_served(&endpoint, &mut interfaces, filter.as_deref(), &mut joined);
            }
            _ = join_timer.tick() => {
                interfaces.refresh();
                join_served(&endpoint, &mut interfaces, filter.as_deref(), &mut joined);
            }
            _ = coexist_timer.tick() => {
                let targets = probe_targets(&mut interfaces, &core, filter.as_deref());
                let ours = core.settings().server_duid.clone();
                let coexist_tx = coexist_tx.clone();
                tokio::spawn(async move {
                    let _ = coexist_tx.send(probe_all(targets, ours, COEXIST_BACKGROUND_WAIT).await);
                });
            }
            Some(found) = coexist_rx.recv() => coexistence_results(&mut core, found),
            received = endpoint.recv(&mut buf) => {
                let meta = match received {
                    Ok(meta) => meta,
                    Err(error) => {
                        tracing::debug!(%error, "dhcpv6: receive failed");
                        continue;
                    }
                };
                if meta.truncated {
                    tracing::debug!(source = %meta.source, "dhcpv6: dropped a datagram larger than 4096 bytes");
                    continue;
                }
                let (SocketAddr::V6(source), Some(ifindex)) = (meta.source, meta.ifindex) else {
                    continue;
                };
                let Some(entry) = interfaces.get(ifindex).cloned() else {
                    continue;
                };
                if entry.loopback || !serves(filter.as_deref(), &entry.name) {
                    tracing::trace!(interface = %entry.name, "dhcpv6: not serving this interface");
                    continue;
                }
                let interface = Interface {
                    index: entry.index,
                    name: entry.name,
                    addresses: entry.ipv6,
                };
                let datagram = Datagram {
                    bytes: &buf[..meta.len],
                    source,
                    interface: &interface,
                };
                match core.decide(&datagram, SystemTime::now()) {
                    Ok(Action::Send(transmit)) => send(&endpoint, transmit).await,
                    Ok(Action::Commit { records, then, events }) => {
                        let commit_tx = commit_tx.clone();
                        store.submit(records, move |result| {
                            let _ = commit_tx.send(Committed { result, then, events });
                        });
                    }
                    Err(silence) => tracing::debug!(%source, interface = %interface.name, "dhcpv6: no reply: {silence}"),
                }
            }
        }
    }
}

/// One interface to probe: its index and name.
type ProbeTarget = (u32, String);

/// One interface's probe outcome.
struct ProbeResult {
    index: u32,
    interface: String,
    found: io::Result<Vec<ForeignServer6>>,
}

/// The served interfaces with an address inside a `dhcp.v6` subnet.
fn probe_targets(
    interfaces: &mut InterfaceTable,
    core: &Core,
    filter: Option<&[String]>,
) -> Vec<ProbeTarget> {
    interfaces.refresh();
    interfaces
        .all()
        .filter(|i| !i.loopback && serves(filter, &i.name))
        .filter(|i| {
            core.settings()
                .subnets
                .iter()
                .any(|s| i.ipv6.iter().any(|a| s.network.contains(&a.addr())))
        })
        .map(|i| (i.index, i.name.clone()))
        .collect()
}

async fn probe_all(targets: Vec<ProbeTarget>, ours: Vec<u8>, wait: Duration) -> Vec<ProbeResult> {
    let mut set = tokio::task::JoinSet::new();
    for (index, interface) in targets {
        let ours = ours.clone();
        set.spawn(async move {
            let found = probe(index, &interface, &ours, wait).await;
            ProbeResult {
                index,
                interface,
                found,
            }
        });
    }
    let mut results = Vec::new();
    while let Some(done) = set.join_next().await {
        if let Ok(result) = done {
            results.push(result);
        }
    }
    results
}

/// Sends the probe SOLICIT out of one interface and collects the other servers' ADVERTISEs
/// until `wait` has passed. The socket is bound to the device, not to the link-local address:
/// at boot that address may still be tentative (duplicate address detection), and the kernel
/// then sends from another address of the interface, which servers answer just as well.
async fn probe(
    index: u32,
    interface: &str,
    ours: &[u8],
    wait: Duration,
) -> io::Result<Vec<ForeignServer6>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    // Not a service socket: a DHCPv6 client on this host may hold port 546 too.
    socket.set_reuse_address(true)?;
    socket.set_only_v6(true)?;
    socket.set_multicast_if_v6(index)?;
    // Our own port 547 has joined ff02::1:2 on this host: keep the probe off it.
    socket.set_multicast_loop_v6(false)?;
    socket.bind_device(Some(interface.as_bytes()))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, CLIENT_PORT)).into())?;
    let socket = tokio::net::UdpSocket::from_std(socket.into())?;
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let [_, a, b, c] = (nanos ^ std::process::id().rotate_left(8) ^ index).to_be_bytes();
    let transaction_id = [a, b, c];
    socket
        .send_to(
            &probe_solicit(transaction_id),
            SocketAddrV6::new(ALL_SERVERS_AND_RELAYS, SERVER_PORT, 0, index),
        )
        .await?;
    let mut deadline = tokio::time::Instant::now() + wait;
    let mut found: Vec<ForeignServer6> = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let (len, from) = received?;
        let SocketAddr::V6(from) = from else { continue };
        if let Some(server) = foreign_advertise(&buf[..len], *from.ip(), transaction_id, ours)
            && !found.iter().any(|f| f.duid == server.duid)
        {
            found.push(server);
            deadline = deadline.min(tokio::time::Instant::now() + Duration::from_millis(300));
        }
    }
    Ok(found)
}

/// Lowers the preference on the links where another DHCPv6 server answers, raises it back
/// where none answers any more, and says so.
fn coexistence_results(core: &mut Core, results: Vec<ProbeResult>) {
    for result in results {
        let interface = result.interface;
        let found = match result.found {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%interface, %error, "dhcpv6: could not probe for other DHCPv6 servers");
                continue;
            }
        };
        for server in &found {
            tracing::warn!(%interface, "dhcpv6: another DHCPv6 server answers on this link: {server}");
        }
        if core.set_contested(result.index, !found.is_empty()) {
            if found.is_empty() {
                tracing::warn!(%interface, preference = core.settings().preference,
                    "dhcpv6: the other DHCPv6 server is gone; ADVERTISEs here carry dhcp.v6.preference again");
            } else {
                tracing::warn!(%interface,
                    "dhcpv6: lowering this server's preference on this link to 0 (from dhcp.v6.preference {}), \
                     so clients take the other server's ADVERTISE", core.settings().preference);
            }
        }
    }
}

fn serves(filter: Option<&[String]>, name: &str) -> bool {
    filter.is_none_or(|names| names.iter().any(|n| n == name))
}

/// Joins ff02::1:2 on every served interface not joined yet.
fn join_served(
    endpoint: &UdpEndpoint,
    interfaces: &mut InterfaceTable,
    filter: Option<&[String]>,
    joined: &mut HashSet<u32>,
) {
    let served: Vec<(u32, String)> = interfaces
        .all()
        .filter(|i| !i.loopback && serves(filter, &i.name))
        .map(|i| (i.index, i.name.clone()))
        .collect();
    for (index, name) in served {
        if joined.contains(&index) {
            continue;
        }
        match endpoint.join_multicast_v6(&ALL_SERVERS_AND_RELAYS, index) {
            Ok(()) => {
                joined.insert(index);
                tracing::debug!(interface = %name, "dhcpv6: joined ff02::1:2");
            }
            Err(error) => {
                tracing::debug!(interface = %name, %error, "dhcpv6: could not join ff02::1:2");
            }
        }
    }
}

async fn send(endpoint: &UdpEndpoint, transmit: Transmit) {
    let to = SocketAddr::V6(SocketAddrV6::new(
        *transmit.to.ip(),
        transmit.to.port(),
        0,
        transmit.to.scope_id(),
    ));
    if let Err(error) = endpoint.send_to(&transmit.bytes, to).await {
        tracing::warn!(%error, %to, "dhcpv6: sending a reply failed");
    }
}
