//! The tokio shell: sockets, the receive loops and the task that applies name changes.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_server::net::xfer::Protocol;
use hickory_server::resolver::config::{NameServerConfig, ResolverOpts};
use hickory_server::store::forwarder::{ForwardConfig, ForwardZoneHandler};
use kindling_udp::UdpEndpoint;
use socket2::{Domain, Protocol as SocketProtocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::answer::{Snapshot, respond};
use crate::names::Names;
use crate::{DnsError, DnsSettings, LeaseName, NameChange};

/// Queries waiting for the catalog (mostly forwarded ones) across all UDP sockets; beyond
/// this, new ones are dropped (the client retries) rather than piling up.
const MAX_SLOW_QUERIES: usize = 1024;
/// Concurrent TCP connections.
const MAX_TCP_CONNECTIONS: usize = 128;
/// A TCP connection that sends nothing for this long is closed; also the limit for reading
/// one message and writing one answer.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Large enough for any UDP datagram.
const UDP_BUFFER: usize = 65_536;
/// Tries at finding a port free for both UDP and TCP when a listen address has port 0.
const PORT_TRIES: usize = 32;

/// The running state every receive loop reads.
struct Shared {
    snapshot: ArcSwap<Snapshot>,
}

enum Control {
    Change(NameChange),
    Reload(Box<DnsSettings>, Option<Arc<ForwardZoneHandler>>),
    /// The service is stopping.
    Stop,
}

struct UdpListener {
    endpoint: Arc<UdpEndpoint>,
    local: SocketAddr,
    wildcard: bool,
}

/// The state the update task owns.
struct Updater {
    names: Names,
    settings: DnsSettings,
    forwarder: Option<Arc<ForwardZoneHandler>>,
    serial: u32,
}

impl Updater {
    fn snapshot(&self, previous: Option<&Snapshot>) -> Result<Snapshot, DnsError> {
        let zones = self.names.zones(self.serial)?;
        Ok(Snapshot::build(
            &zones,
            self.forwarder.as_ref(),
            self.settings.recursion_from.clone(),
            previous,
        ))
    }

    /// Applies one message; true when the zones must be rebuilt.
    fn handle(&mut self, control: Control) -> bool {
        match control {
            Control::Stop => false,
            Control::Change(change) => {
                let applied = self.names.apply(change);
                for event in &applied.events {
                    event.log();
                }
                applied.changed
            }
            Control::Reload(settings, forwarder) => {
                let applied = self.names.reload(&settings);
                for event in &applied.events {
                    event.log();
                }
                if settings.upstreams != self.settings.upstreams {
                    self.forwarder = forwarder;
                }
                self.settings = *settings;
                tracing::info!(
                    zone = %self.settings.domain(),
                    upstreams = ?self.settings.upstreams,
                    "dns settings reloaded"
                );
                true
            }
        }
    }
}

/// The DNS service: bound sockets, loaded names, not yet serving.
pub struct DnsService {
    udp: Vec<UdpListener>,
    tcp: Vec<(TcpListener, SocketAddr)>,
    shared: Arc<Shared>,
    updater: Updater,
    control_tx: mpsc::UnboundedSender<Control>,
    control_rx: mpsc::UnboundedReceiver<Control>,
}

impl fmt::Debug for DnsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsService")
            .field("local_addrs", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl DnsService {
    /// Binds UDP and TCP on every listen address and loads static records plus `initial` (the
    /// live leases after a restart) before returning, so that names are there before the
    /// first query is answered.
    pub async fn bind(
        settings: DnsSettings,
        initial: Vec<LeaseName>,
    ) -> Result<DnsService, DnsError> {
        let mut names = Names::new(&settings);
        for lease in initial {
            for event in names.apply(NameChange::Up(lease)).events {
                event.log();
            }
        }
        let forwarder = build_forwarder(&settings.upstreams)?;
        let updater = Updater {
            names,
            forwarder,
            serial: initial_serial(),
            settings,
        };
        let snapshot = updater.snapshot(None)?;
        let (udp, tcp) = bind_all(&updater.settings.listen)?;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let service = DnsService {
            udp,
            tcp,
            shared: Arc::new(Shared {
                snapshot: ArcSwap::from_pointee(snapshot),
            }),
            updater,
            control_tx,
            control_rx,
        };
        let zones: Vec<String> = service
            .updater
            .names
            .zone_origins()
            .iter()
            .map(|zone| zone.to_string())
            .collect();
        tracing::info!(
            addresses = ?service.local_addrs(),
            zone = %service.updater.settings.domain(),
            zones = ?zones,
            upstreams = ?service.updater.settings.upstreams,
            recursion_from = ?service.updater.settings.recursion_from,
            "dns listening"
        );
        Ok(service)
    }

    pub fn handle(&self) -> DnsHandle {
        DnsHandle {
            control: self.control_tx.clone(),
            listen: self.updater.settings.listen.clone().into(),
        }
    }

    /// The bound addresses (with the ports chosen for port 0); TCP listens on the same ones.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|listener| listener.local).collect()
    }

    /// Serves until `shutdown` is cancelled. Queries in flight are abandoned (their clients
    /// retry elsewhere); name changes queued before are applied or dropped with the state.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DnsError> {
        let DnsService {
            udp,
            tcp,
            shared,
            updater,
            control_tx,
            control_rx,
        } = self;
        // The updater thread stops when this is dropped, also if this future is (handles may
        // still hold the channel open, and a blocking thread cannot be aborted).
        let stop_updater = StopUpdater(control_tx);
        let token = shutdown.child_token();
        let slow = Arc::new(Semaphore::new(MAX_SLOW_QUERIES));
        let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
        let mut tasks = JoinSet::new();
        for listener in udp {
            tasks.spawn(serve_udp(
                listener,
                shared.clone(),
                slow.clone(),
                token.clone(),
            ));
        }
        for (listener, local) in tcp {
            tasks.spawn(serve_tcp(
                listener,
                local,
                shared.clone(),
                connections.clone(),
                token.clone(),
            ));
        }
        // Rebuilding the zones is CPU work (milliseconds per thousand leases): it runs on a
        // blocking thread so it never holds up a receive loop.
        tasks.spawn_blocking(move || update(control_rx, &shared, updater));
        let mut result = Ok(());
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        tracing::error!(%error, "dns: a task failed; stopping the DNS service");
                        result = Err(DnsError::Task(error.to_string()));
                        token.cancel();
                        break;
                    }
                },
            }
        }
        token.cancel();
        drop(stop_updater);
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined
                && result.is_ok()
                && !error.is_cancelled()
            {
                result = Err(DnsError::Task(error.to_string()));
            }
        }
        tracing::info!("dns stopped");
        result
    }
}

struct StopUpdater(mpsc::UnboundedSender<Control>);

impl Drop for StopUpdater {
    fn drop(&mut self) {
        let _ = self.0.send(Control::Stop);
    }
}

/// Talks to a running (or about to run) [`DnsService`].
#[derive(Clone)]
pub struct DnsHandle {
    control: mpsc::UnboundedSender<Control>,
    listen: Arc<[SocketAddr]>,
}

impl fmt::Debug for DnsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsHandle")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl DnsHandle {
    /// Queues a name change; never blocks. Queries see it within milliseconds.
    pub fn apply(&self, change: NameChange) {
        if self.control.send(Control::Change(change)).is_err() {
            tracing::debug!("dns: the service has stopped; name change dropped");
        }
    }

    /// New static records, domain, served networks, reservations, upstreams and recursion
    /// ACL, without rebinding. A changed `listen` is refused with
    /// [`DnsError::RestartNeeded`]: sockets are bound only at start.
    pub fn reload(&self, settings: DnsSettings) -> Result<(), DnsError> {
        if settings.listen[..] != self.listen[..] {
            return Err(DnsError::RestartNeeded {
                old: self.listen.to_vec(),
                new: settings.listen.clone(),
            });
        }
        let forwarder = build_forwarder(&settings.upstreams)?;
        self.control
            .send(Control::Reload(Box::new(settings), forwarder))
            .map_err(|_| DnsError::Stopped)
    }
}

fn initial_serial() -> u32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_secs());
    u32::try_from(seconds).unwrap_or(u32::MAX / 2)
}

fn build_forwarder(upstreams: &[SocketAddr]) -> Result<Option<Arc<ForwardZoneHandler>>, DnsError> {
    if upstreams.is_empty() {
        return Ok(None);
    }
    let name_servers = upstreams
        .iter()
        .map(|upstream| {
            let mut server = NameServerConfig::udp_and_tcp(upstream.ip());
            for connection in &mut server.connections {
                connection.port = upstream.port();
            }
            server
        })
        .collect();
    let mut options = ResolverOpts::default();
    // A client waits for us; answer within its own retry interval rather than hickory's 5 s.
    options.timeout = Duration::from_secs(2);
    let config = ForwardConfig {
        name_servers,
        options: Some(options),
    };
    ForwardZoneHandler::builder_tokio(config)
        .build()
        .map(|forwarder| Some(Arc::new(forwarder)))
        .map_err(|reason| DnsError::Forwarder {
            upstreams: upstreams.to_vec(),
            reason,
        })
}

type Bound = (Vec<UdpListener>, Vec<(TcpListener, SocketAddr)>);

fn bind_all(listen: &[SocketAddr]) -> Result<Bound, DnsError> {
    let mut udp = Vec::with_capacity(listen.len());
    let mut tcp = Vec::with_capacity(listen.len());
    for &addr in listen {
        let (endpoint, listener) = bind_pair(addr)?;
        let local = endpoint.local_addr().map_err(|source| DnsError::Bind {
            protocol: "UDP",
            addr,
            source,
        })?;
        udp.push(UdpListener {
            endpoint: Arc::new(endpoint),
            local,
            wildcard: addr.ip().is_unspecified(),
        });
        tcp.push((listener, local));
    }
    Ok((udp, tcp))
}

/// UDP and TCP on the same address and port. With port 0 the kernel picks the UDP port and
/// TCP takes the same one, trying again if it is taken for TCP.
fn bind_pair(addr: SocketAddr) -> Result<(UdpEndpoint, TcpListener), DnsError> {
    let tries = if addr.port() == 0 { PORT_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let endpoint = UdpEndpoint::bind(addr).map_err(|source| DnsError::Bind {
            protocol: "UDP",
            addr,
            source,
        })?;
        let local = endpoint.local_addr().map_err(|source| DnsError::Bind {
            protocol: "UDP",
            addr,
            source,
        })?;
        match bind_tcp(SocketAddr::new(addr.ip(), local.port())) {
            Ok(listener) => return Ok((endpoint, listener)),
            Err(source) if addr.port() == 0 && source.kind() == io::ErrorKind::AddrInUse => {
                last = Some(source);
            }
            Err(source) => {
                return Err(DnsError::Bind {
                    protocol: "TCP",
                    addr,
                    source,
                });
            }
        }
    }
    Err(DnsError::Bind {
        protocol: "TCP",
        addr,
        source: last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)),
    })
}

/// A TCP listener: IPV6_V6ONLY on IPv6 (so `0.0.0.0:53` and `[::]:53` coexist) and no
/// SO_REUSEPORT. SO_REUSEADDR is set: on Linux it lets a restarted daemon bind while old
/// connections sit in TIME_WAIT, and it never lets a second socket listen on a port that
/// already has a listener, so a second daemon still fails loudly (tested).
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(SocketProtocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn serve_udp(
    listener: UdpListener,
    shared: Arc<Shared>,
    slow: Arc<Semaphore>,
    token: CancellationToken,
) {
    let mut waiting = JoinSet::new();
    // One select for the socket's lifetime: the loop inside never returns, and cancelling
    // drops it at its next await.
    tokio::select! {
        () = token.cancelled() => {}
        () = receive_loop(&listener, &shared, &slow, &mut waiting) => {}
    }
    waiting.shutdown().await;
}

async fn receive_loop(
    listener: &UdpListener,
    shared: &Shared,
    slow: &Arc<Semaphore>,
    waiting: &mut JoinSet<()>,
) {
    let mut buf = vec![0u8; UDP_BUFFER];
    let mut out = Vec::with_capacity(512);
    loop {
        let (len, client, local_ip, ifindex) = match receive(listener, &mut buf).await {
            Ok(received) => received,
            Err(error) => {
                // ICMP errors from earlier replies surface here (ECONNREFUSED); keep going.
                tracing::debug!(local = %listener.local, %error, "dns: udp receive error");
                continue;
            }
        };
        if client.port() == 0 {
            continue;
        }
        let query = &buf[..len];
        let answered = {
            let snapshot = shared.snapshot.load();
            snapshot.fast.answer(query, &mut out)
        };
        if answered {
            send(
                &listener.endpoint,
                listener.wildcard,
                &out,
                client,
                local_ip,
                ifindex,
            )
            .await;
            continue;
        }
        let Ok(permit) = slow.clone().try_acquire_owned() else {
            tracing::debug!(%client, "dns: too many queries waiting; dropped one");
            continue;
        };
        waiting.spawn(answer_slowly(
            shared.snapshot.load_full(),
            query.to_vec(),
            client,
            listener.endpoint.clone(),
            listener.wildcard,
            local_ip,
            ifindex,
            permit,
        ));
        while waiting.try_join_next().is_some() {}
    }
}

#[allow(clippy::too_many_arguments, reason = "one datagram's whole context")]
async fn answer_slowly(
    snapshot: Arc<Snapshot>,
    raw: Vec<u8>,
    client: SocketAddr,
    endpoint: Arc<UdpEndpoint>,
    wildcard: bool,
    local_ip: Option<IpAddr>,
    ifindex: Option<u32>,
    _permit: OwnedSemaphorePermit,
) {
    if let Some(response) = respond(&snapshot, raw, client, Protocol::Udp).await {
        send(&endpoint, wildcard, &response, client, local_ip, ifindex).await;
    }
}

async fn receive(
    listener: &UdpListener,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<IpAddr>, Option<u32>)> {
    if listener.wildcard {
        let meta = listener.endpoint.recv(buf).await?;
        if meta.truncated {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("oversized datagram from {}", meta.source),
            ));
        }
        Ok((meta.len, meta.source, meta.local_ip, meta.ifindex))
    } else {
        let (len, source) = listener.endpoint.recv_from(buf).await?;
        Ok((len, source, None, None))
    }
}

/// Sends from the address the query came to (wildcard sockets), else the socket's own.
async fn send(
    endpoint: &UdpEndpoint,
    wildcard: bool,
    response: &[u8],
    client: SocketAddr,
    local_ip: Option<IpAddr>,
    ifindex: Option<u32>,
) {
    let sent = match (wildcard, local_ip) {
        (true, Some(from)) => endpoint.send_from(response, client, from, ifindex).await,
        _ => endpoint.send_to(response, client).await,
    };
    if let Err(error) = sent {
        tracing::debug!(%client, %error, "dns: could not send an answer");
    }
}

async fn serve_tcp(
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
    connections: Arc<Semaphore>,
    token: CancellationToken,
) {
    let mut open = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%local, %error, "dns: tcp accept error");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%client, "dns: too many tcp connections; closed one");
            continue;
        };
        open.spawn(serve_connection(
            stream,
            client,
            shared.clone(),
            token.clone(),
            permit,
        ));
        while open.try_join_next().is_some() {}
    }
    open.shutdown().await;
}

/// One TCP connection: length-prefixed queries, answered in order, through the catalog.
async fn serve_connection(
    mut stream: TcpStream,
    client: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    loop {
        let mut prefix = [0u8; 2];
        let read = tokio::select! {
            () = token.cancelled() => return,
            read = tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut prefix)) => read,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut message)).await {
            Ok(Ok(_)) => {}
            _ => {
                tracing::debug!(%client, "dns: tcp query cut short");
                return;
            }
        }
        let snapshot = shared.snapshot.load_full();
        let response = tokio::select! {
            () = token.cancelled() => return,
            response = respond(&snapshot, message, client, Protocol::Tcp) => response,
        };
        let Some(response) = response else { continue };
        let Ok(len) = u16::try_from(response.len()) else {
            continue;
        };
        let mut frame = Vec::with_capacity(2 + response.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&response);
        match tokio::time::timeout(TCP_IDLE, stream.write_all(&frame)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Applies name changes and reloads, in batches: everything queued is applied, then the zones
/// are rebuilt once and swapped in. Runs on a blocking thread until [`Control::Stop`].
fn update(mut control: mpsc::UnboundedReceiver<Control>, shared: &Shared, mut updater: Updater) {
    while let Some(first) = control.blocking_recv() {
        let mut stop = matches!(first, Control::Stop);
        let mut changed = updater.handle(first);
        while let Ok(next) = control.try_recv() {
            stop |= matches!(next, Control::Stop);
            changed |= updater.handle(next);
        }
        if stop {
            return;
        }
        if !changed {
            continue;
        }
        updater.serial = updater.serial.wrapping_add(1);
        let previous = shared.snapshot.load_full();
        match updater.snapshot(Some(&previous)) {
            Ok(snapshot) => {
                tracing::debug!(
                    serial = updater.serial,
                    fast_answers = snapshot.fast.len(),
                    "dns zones rebuilt"
                );
                shared.snapshot.store(Arc::new(snapshot));
            }
            Err(error) => {
                tracing::error!(%error, "dns: could not rebuild the zones; still serving the previous ones");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[tokio::test]
    async fn a_second_service_on_the_same_port_fails_loudly() {
        let first = bind_all(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let taken = first.0[0].local;
        let error = bind_all(&[taken]).err().unwrap();
        assert!(
            matches!(
                error,
                DnsError::Bind {
                    protocol: "UDP",
                    ..
                }
            ),
            "{error}"
        );
        // TCP alone too: SO_REUSEADDR does not let a second listener in.
        let error = bind_tcp(taken).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }
}
