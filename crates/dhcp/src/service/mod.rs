//! The tokio shell around the DHCPv4 core: the port 67 socket (and 4011 in proxy mode), the
//! interface table, the lease store, ping probes, ARP entries and the lease event channel. One
//! task owns the core; commits complete on the store's writer thread and come back as messages,
//! so many clients' ACKs wait for one `fdatasync` together (group commit) while the task keeps
//! answering.

mod arp;
mod coexist;
mod ping;
mod ra;
mod v6;

pub use ra::{RaConfig, RaError, RaService};
pub use v6::{DUID_FILE, server_duid};

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kindling_udp::UdpEndpoint;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::event::LeaseEvent;
use crate::lease::{LeaseStore, RecoveryReport, StoreError};
use crate::v4::server::{
    Action, BOOT_SERVER_PORT, CLIENT_PORT, Core, Datagram, Interface, ProbeId, SERVER_PORT,
    ServiceMode, Settings, Transmit,
};

use kindling_udp::netif::InterfaceTable;

/// How often expired leases are reclaimed and stale offers dropped.
const EXPIRY_TICK: Duration = Duration::from_secs(10);
/// Datagrams handled per wake-up before the loop looks at its other inputs.
const BATCH: usize = 64;
/// How long the probe before serving listens for other servers' offers.
const COEXIST_WAIT: Duration = Duration::from_millis(1800);
/// How long the probes while serving listen: servers that ping an address before offering it
/// (dnsmasq waits about 3 s, ISC dhcpd about 1 s) answer the first probe late, and a probe in
/// the background holds nothing up.
const COEXIST_BACKGROUND_WAIT: Duration = Duration::from_secs(6);
/// How often the coexistence probe runs again while serving.
const COEXIST_INTERVAL: Duration = Duration::from_secs(600);
/// Lease events buffered for a slow subscriber before it starts missing some.
const EVENT_BUFFER: usize = 4096;
/// Bytes of receive buffer asked for on the DHCP sockets (capped by net.core.rmem_max).
const RECV_BUFFER: usize = 4 << 20;

/// Why the DHCP service could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("binding UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the lease store: {0}")]
    Store(#[from] StoreError),
    #[error("the DHCP service has stopped")]
    Stopped,
}

/// What the service is started with.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub settings: Settings,
    /// `dhcp.interfaces`; `None`: every interface but loopback.
    pub interfaces: Option<Vec<String>>,
    /// Where the lease store lives (server mode only).
    pub state_dir: PathBuf,
    pub ping_timeout: Duration,
    /// Another DHCP server on a served segment is expected: report it, serve anyway.
    pub other_servers_expected: bool,
    /// DHCPv6 (server mode with IPv6 subnets), served on port 547 beside DHCPv4.
    pub v6: Option<crate::v6::server::Settings>,
}

/// A bound DHCP service, ready to `run`.
#[derive(Debug)]
pub struct DhcpService {
    config: ServiceConfig,
    dhcp: Arc<UdpEndpoint>,
    boot_server: Option<Arc<UdpEndpoint>>,
    store: Option<Arc<LeaseStore>>,
    core: Core,
    v6: Option<v6::V6Part>,
    events: broadcast::Sender<LeaseEvent>,
    control_tx: mpsc::Sender<Control>,
    control_rx: mpsc::Receiver<Control>,
}

/// Controls a running service.
#[derive(Debug, Clone)]
pub struct DhcpHandle {
    control: mpsc::Sender<Control>,
    events: broadcast::Sender<LeaseEvent>,
}

#[derive(Debug)]
enum Control {
    Reload(Box<ServiceConfig>, oneshot::Sender<()>),
}

/// What a finished commit hands back to the loop.
struct Committed {
    result: Result<(), StoreError>,
    then: Option<Transmit>,
    events: Vec<LeaseEvent>,
}

fn bind(port: u16) -> Result<Arc<UdpEndpoint>, DhcpError> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let endpoint = UdpEndpoint::bind(addr).map_err(|source| DhcpError::Bind { addr, source })?;
    endpoint
        .set_broadcast(true)
        .map_err(|source| DhcpError::Bind { addr, source })?;
    // A rack powering on sends its DISCOVERs in one burst, and a burst that arrives while a
    // group commit is being handed over must queue, not overflow a default 208 KiB buffer.
    match endpoint.set_recv_buffer(RECV_BUFFER) {
        Ok(granted) => tracing::debug!(%addr, granted, "dhcp: socket receive buffer"),
        Err(error) => tracing::debug!(%addr, %error, "dhcp: could not enlarge the receive buffer"),
    }
    Ok(Arc::new(endpoint))
}

impl DhcpService {
    /// Binds port 67 (and 4011 in proxy mode) on every IPv4 address and, in server mode, opens
    /// the lease store (recovering it). Nothing is answered until `run`.
    pub fn bind(
        config: ServiceConfig,
        now: SystemTime,
    ) -> Result<(DhcpService, Option<RecoveryReport>), DhcpError> {
        let dhcp = bind(SERVER_PORT)?;
        let boot_server = match config.settings.mode {
            ServiceMode::Proxy => Some(bind(BOOT_SERVER_PORT)?),
            ServiceMode::Server => None,
        };
        let (store, report, records) = match config.settings.mode {
            ServiceMode::Server => {
                let (store, report) = LeaseStore::open(&config.state_dir, now)?;
                let records = store.all();
                (Some(Arc::new(store)), Some(report), records)
            }
            ServiceMode::Proxy => (None, None, Vec::new()),
        };
        let core = Core::new(config.settings.clone(), records);
        let v6 = match (&config.v6, &store) {
            (Some(settings), Some(store)) => Some(v6::V6Part::bind(settings.clone(), store)?),
            _ => None,
        };
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (control_tx, control_rx) = mpsc::channel(4);
        Ok((
            DhcpService {
                config,
                dhcp,
                boot_server,
                store,
                core,
                v6,
                events,
                control_tx,
                control_rx,
            },
            report,
        ))
    }

    /// The lease records the service starts with.
    pub fn leases(&self) -> Vec<crate::lease::LeaseRecord> {
        self.core.leases()
    }

    pub fn handle(&self) -> DhcpHandle {
        DhcpHandle {
            control: self.control_tx.clone(),
            events: self.events.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled; queued commits are finished before it returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let DhcpService {
            mut config,
            dhcp,
            boot_server,
            store,
            mut core,
            v6,
            events,
            control_tx,
            mut control_rx,
        } = self;
        drop(control_tx);
        let (v6_reload, v6_task) = match (v6, &store) {
            (Some(part), Some(store)) => {
                let (reload_tx, reload_rx) = mpsc::channel(4);
                let task = tokio::spawn(v6::run(
                    part,
                    Arc::clone(store),
                    events.clone(),
                    config.interfaces.clone(),
                    reload_rx,
                    shutdown.clone(),
                ));
                (Some(reload_tx), Some(task))
            }
            _ => (None, None),
        };
        let mut shell = Shell {
            interfaces: InterfaceTable::new(),
            dhcp: dhcp.clone(),
            boot_server: boot_server.clone(),
            store,
            events,
            ping_timeout: config.ping_timeout,
            ping_unavailable_logged: false,
            ping_ident: std::process::id() as u16,
            filter: config.interfaces.clone(),
            refused: HashSet::new(),
            other_servers_expected: config.other_servers_expected,
        };
        let mode = core.settings().mode;
        let first = shell.coexistence_targets(&core);
        let results = probe_all(first, mode, COEXIST_WAIT).await;
        shell.coexistence_results(results, mode);
        shell.log_interfaces(&core);
        let (coexist_tx, mut coexist_rx) = mpsc::unbounded_channel::<Vec<ProbeResult>>();
        // The first tick is at once: a second, longer probe right after start.
        let mut coexist_timer = tokio::time::interval(COEXIST_INTERVAL);
        let (commit_tx, mut commit_rx) = mpsc::unbounded_channel::<Committed>();
        let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<(ProbeId, Result<bool, String>)>();
        let mut expiry = tokio::time::interval(EXPIRY_TICK);
        let mut buf67 = vec![0u8; 4096];
        let mut buf4011 = vec![0u8; 4096];
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(done) = commit_rx.recv() => shell.committed(done).await,
                Some((id, answered)) = probe_rx.recv() => {
                    let answered = match answered {
                        Ok(answered) => answered,
                        Err(error) => {
                            if !shell.ping_unavailable_logged {
                                shell.ping_unavailable_logged = true;
                                tracing::warn!("dhcp: the ping check cannot run ({error}); offering without it");
                            }
                            false
                        }
                    };
                    for action in core.probe_finished(id, answered, SystemTime::now()) {
                        shell.execute(action, &commit_tx, &probe_tx).await;
                    }
                }
                Some(control) = control_rx.recv() => match control {
                    Control::Reload(new, done) => {
                        core.reconfigure(new.settings.clone());
                        if let (Some(reload), Some(settings)) = (&v6_reload, &new.v6) {
                            let _ = reload.send((settings.clone(), new.interfaces.clone())).await;
                        }
                        shell.filter = new.interfaces.clone();
                        shell.ping_timeout = new.ping_timeout;
                        shell.other_servers_expected = new.other_servers_expected;
                        if new.other_servers_expected {
                            shell.refused.clear();
                        }
                        config = *new;
                        shell.log_interfaces(&core);
                        let _ = done.send(());
                    }
                },
                received = dhcp.recv(&mut buf67) => {
                    shell.received(&mut core, received, &buf67, SERVER_PORT, &commit_tx, &probe_tx).await;
                    for _ in 0..BATCH {
                        let Ok(meta) = dhcp.try_recv(&mut buf67) else { break };
                        shell.received(&mut core, Ok(meta), &buf67, SERVER_PORT, &commit_tx, &probe_tx).await;
                    }
                }
                received = recv_optional(boot_server.as_deref(), &mut buf4011) => {
                    shell.received(&mut core, received, &buf4011, BOOT_SERVER_PORT, &commit_tx, &probe_tx).await;
                }
                _ = coexist_timer.tick() => {
                    let targets = shell.coexistence_targets(&core);
                    let coexist_tx = coexist_tx.clone();
                    tokio::spawn(async move {
                        let _ = coexist_tx.send(probe_all(targets, mode, COEXIST_BACKGROUND_WAIT).await);
                    });
                }
                Some(results) = coexist_rx.recv() => shell.coexistence_results(results, mode),
                _ = expiry.tick() => {
                    if let Some(action) = core.expire(SystemTime::now()) {
                        shell.execute(action, &commit_tx, &probe_tx).await;
                    }
                }
            }
        }
        let _ = config;
        drop(commit_rx);
        if let Some(task) = v6_task {
            // It stops on the same shutdown; the store closes once it holds the last reference.
            let _ = task.await;
        }
        if let Some(store) = shell.store.take() {
            // Finishes queued commits and releases the lock; a blocking join, off the runtime.
            let closing = tokio::task::spawn_blocking(move || match Arc::try_unwrap(store) {
                Ok(store) => store.close(),
                Err(shared) => drop(shared),
            });
            let _ = closing.await;
        }
    }
}

async fn recv_optional(
    endpoint: Option<&UdpEndpoint>,
    buf: &mut [u8],
) -> std::io::Result<kindling_udp::RecvMeta> {
    match endpoint {
        Some(endpoint) => endpoint.recv(buf).await,
        None => std::future::pending().await,
    }
}

impl DhcpHandle {
    /// Applies new settings to requests from now on (leases stay). A change of mode or state
    /// directory needs a new service; the caller restarts it.
    pub async fn reload(&self, config: ServiceConfig) -> Result<(), DhcpError> {
        let (done_tx, done_rx) = oneshot::channel();
        self.control
            .send(Control::Reload(Box::new(config), done_tx))
            .await
            .map_err(|_| DhcpError::Stopped)?;
        done_rx.await.map_err(|_| DhcpError::Stopped)
    }

    /// Lease events (granted, renewed, released, expired), each sent once durable.
    pub fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }
}

struct Shell {
    interfaces: InterfaceTable,
    dhcp: Arc<UdpEndpoint>,
    boot_server: Option<Arc<UdpEndpoint>>,
    store: Option<Arc<LeaseStore>>,
    events: broadcast::Sender<LeaseEvent>,
    ping_timeout: Duration,
    ping_unavailable_logged: bool,
    ping_ident: u16,
    filter: Option<Vec<String>>,
    /// Interfaces not served because another DHCP server answers there.
    refused: HashSet<String>,
    other_servers_expected: bool,
}

/// One interface's coexistence probe outcome.
struct ProbeResult {
    interface: String,
    found: std::io::Result<Vec<crate::v4::server::coexist::ForeignServer>>,
}

/// What to probe: (interface name, this host's addresses).
type ProbeTargets = Vec<(String, Vec<Ipv4Addr>)>;

async fn probe_all(targets: ProbeTargets, mode: ServiceMode, wait: Duration) -> Vec<ProbeResult> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (interface, ours)) in targets.into_iter().enumerate() {
        let nanos = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let xid = std::process::id().rotate_left(16)
            ^ nanos
            ^ (i as u32)
            ^ u32::from(mode == ServiceMode::Proxy);
        set.spawn(async move {
            let found = coexist::probe(&interface, &ours, wait, xid).await;
            ProbeResult { interface, found }
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

impl Shell {
    /// The served interfaces that have an address (in server mode: one inside a subnet).
    fn coexistence_targets(&mut self, core: &Core) -> ProbeTargets {
        self.interfaces.refresh();
        let ours: Vec<Ipv4Addr> = self
            .interfaces
            .all()
            .flat_map(|e| e.ipv4.iter().map(|a| a.addr()))
            .collect();
        self.interfaces
            .all()
            .filter(|e| self.serves(&e.name, e.loopback) && !e.loopback)
            .filter(|e| match core.settings().mode {
                ServiceMode::Server => core
                    .settings()
                    .subnets
                    .iter()
                    .any(|s| e.ipv4.iter().any(|a| s.network.contains(&a.addr()))),
                ServiceMode::Proxy => !e.ipv4.is_empty(),
            })
            .map(|e| (e.name.clone(), ours.clone()))
            .collect()
    }

    fn coexistence_results(&mut self, results: Vec<ProbeResult>, mode: ServiceMode) {
        for result in results {
            let interface = result.interface;
            let found = match result.found {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%interface, %error, "dhcp: could not probe for other DHCP servers");
                    continue;
                }
            };
            match mode {
                ServiceMode::Server => {
                    if found.is_empty() {
                        if self.refused.remove(&interface) {
                            tracing::warn!(%interface, "dhcp: the other DHCP server is gone; serving this interface again");
                        }
                        continue;
                    }
                    for server in &found {
                        if self.other_servers_expected {
                            tracing::warn!(%interface, "dhcp: another DHCP server answers on this segment: {server} (expected: dhcp.other_servers is expected)");
                        } else {
                            tracing::error!(%interface, "dhcp: ANOTHER DHCP SERVER answers on this segment: {server}");
                        }
                    }
                    if !self.other_servers_expected && self.refused.insert(interface.clone()) {
                        tracing::error!(%interface,
                            "dhcp: refusing to serve this interface while another DHCP server answers there; \
                             use dhcp.mode: proxy next to an existing DHCP server, or set dhcp.other_servers: expected");
                    }
                }
                ServiceMode::Proxy => {
                    for server in &found {
                        if server.is_proxy() || server.gives_boot_options() {
                            tracing::warn!(%interface,
                                "dhcp: another server hands out boot information on this segment and will fight over PXE clients: {server}");
                        } else {
                            tracing::info!(%interface, "dhcp: the segment's DHCP server: {server}");
                        }
                    }
                }
            }
        }
    }

    fn serves(&self, name: &str, loopback: bool) -> bool {
        match &self.filter {
            Some(names) => names.iter().any(|n| n == name),
            None => !loopback,
        }
    }

    fn log_interfaces(&mut self, core: &Core) {
        self.interfaces.refresh();
        if let Some(names) = &self.filter {
            for name in names {
                if !self.interfaces.all().any(|e| &e.name == name) {
                    tracing::warn!(interface = %name, "dhcp: dhcp.interfaces names an interface this host does not have (yet)");
                }
            }
        }
        for entry in self.interfaces.all() {
            if !self.serves(&entry.name, entry.loopback) || self.refused.contains(&entry.name) {
                continue;
            }
            let subnets: Vec<String> = core
                .settings()
                .subnets
                .iter()
                .filter(|s| entry.ipv4.iter().any(|a| s.network.contains(&a.addr())))
                .map(|s| s.network.to_string())
                .collect();
            tracing::info!(
                interface = %entry.name,
                addresses = ?entry.ipv4.iter().map(ToString::to_string).collect::<Vec<_>>(),
                subnets = ?subnets,
                mode = ?core.settings().mode,
                "dhcp listening"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn received(
        &mut self,
        core: &mut Core,
        received: std::io::Result<kindling_udp::RecvMeta>,
        buf: &[u8],
        port: u16,
        commit_tx: &mpsc::UnboundedSender<Committed>,
        probe_tx: &mpsc::UnboundedSender<(ProbeId, Result<bool, String>)>,
    ) {
        let meta = match received {
            Ok(meta) => meta,
            Err(error) => {
                tracing::debug!(%error, "dhcp: receive failed");
                return;
            }
        };
        if meta.truncated {
            tracing::debug!(source = %meta.source, "dhcp: dropped a datagram larger than 4096 bytes");
            return;
        }
        let (SocketAddr::V4(source), Some(ifindex)) = (meta.source, meta.ifindex) else {
            return;
        };
        let destination = match meta.local_ip {
            Some(IpAddr::V4(ip)) => ip,
            _ => Ipv4Addr::BROADCAST,
        };
        let Some(entry) = self.interfaces.get(ifindex).cloned() else {
            return;
        };
        if self.refused.contains(&entry.name) {
            tracing::debug!(interface = %entry.name, "dhcp: not serving: another DHCP server answers here");
            return;
        }
        if !self.serves(&entry.name, entry.loopback) {
            tracing::trace!(interface = %entry.name, "dhcp: not serving this interface");
            return;
        }
        let interface = Interface {
            index: entry.index,
            name: entry.name,
            addresses: entry.ipv4,
        };
        let datagram = Datagram {
            bytes: &buf[..meta.len],
            source,
            destination,
            interface: &interface,
            port,
        };
        if let Some(action) = core.handle(&datagram, SystemTime::now()) {
            self.execute(action, commit_tx, probe_tx).await;
        }
    }

    async fn execute(
        &mut self,
        action: Action,
        commit_tx: &mpsc::UnboundedSender<Committed>,
        probe_tx: &mpsc::UnboundedSender<(ProbeId, Result<bool, String>)>,
    ) {
        match action {
            Action::Send(transmit) => self.send(transmit).await,
            Action::Commit {
                records,
                then,
                events,
            } => {
                let Some(store) = &self.store else {
                    tracing::error!("dhcp: a lease change without a lease store; nothing sent");
                    return;
                };
                let commit_tx = commit_tx.clone();
                store.submit(records, move |result| {
                    let _ = commit_tx.send(Committed {
                        result,
                        then,
                        events,
                    });
                });
            }
            Action::Probe { id, address, .. } => {
                let timeout = self.ping_timeout;
                let probe_tx = probe_tx.clone();
                let ident = self.ping_ident;
                self.ping_ident = self.ping_ident.wrapping_add(1);
                tokio::spawn(async move {
                    let answered = ping::probe(address, timeout, ident)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = probe_tx.send((id, answered));
                });
            }
        }
    }

    async fn committed(&mut self, done: Committed) {
        match done.result {
            Ok(()) => {
                if let Some(transmit) = done.then {
                    self.send(transmit).await;
                }
                for event in done.events {
                    let _ = self.events.send(event);
                }
            }
            Err(error) => {
                tracing::error!(%error, "dhcp: a lease could not be made durable; its ACK is not sent");
            }
        }
    }

    async fn send(&mut self, mut transmit: Transmit) {
        if let Some(mac) = transmit.hardware {
            let name = self
                .interfaces
                .get(transmit.ifindex)
                .map(|e| e.name.clone());
            let armed = match name {
                Some(name) => arp::set_entry(&name, *transmit.to.ip(), mac),
                None => Err(std::io::Error::other("unknown interface")),
            };
            if let Err(error) = armed {
                tracing::debug!(%error, address = %transmit.to.ip(), "dhcp: no ARP entry for the client; broadcasting the reply instead");
                transmit.to = SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT);
            }
        }
        let endpoint = if transmit.port == BOOT_SERVER_PORT {
            self.boot_server.as_ref().unwrap_or(&self.dhcp)
        } else {
            &self.dhcp
        };
        if let Err(error) = endpoint
            .send_from(
                &transmit.bytes,
                SocketAddr::V4(transmit.to),
                IpAddr::V4(transmit.from),
                Some(transmit.ifindex),
            )
            .await
        {
            tracing::warn!(%error, to = %transmit.to, "dhcp: sending a reply failed");
        }
    }
}
