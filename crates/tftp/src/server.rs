//! The tokio shell around the sans-IO transfer cores.
//!
//! One task per listening socket receives requests and admits them; one task per transfer
//! owns its own socket (bound to the address the request was sent to, on an ephemeral port or
//! one from `port_range`), feeds datagrams and timeouts to its `ReadTransfer` or
//! `WriteTransfer` and sends what the core asks for. In `single_port` mode the transfer shares
//! the listening socket: the listener forwards the peer's datagrams to the transfer's inbox and
//! the transfer answers with an explicit source address. The shell makes no protocol
//! decisions.

mod admission;

use std::collections::{HashMap, HashSet};
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use kindling_config::TftpConfig;
use kindling_udp::{RecvMeta, UdpEndpoint, interface_mtu};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use self::admission::{Route, Session, SessionGuard, Tally, UnconfirmedSlot, admit, allowed};
use crate::error::TftpError;
use crate::netascii;
use crate::proto::{
    BlockSource, DEFAULT_RECEIVE_BUFFER_BUDGET, Negotiated, Outcome, ReadTransfer, Settings, Stats,
    Transmit, UploadSink, WriteTransfer, negotiate_read, negotiate_write,
};
use crate::segments::{MAX_SEGMENTS, Segments};
use crate::unconfirmed::UnconfirmedBounds;
use crate::wire::{self, ErrorCode, MAX_BLKSIZE, MAX_PACKET, Mode, Packet, Request};
use kindling_files::{
    AccessError, BootFile, BootTree, Contents, Inbox, Lookup, Upload, WritePolicy,
};

/// Netascii files are converted in memory; larger ones are refused rather than buffered.
const MAX_NETASCII_FILE: u64 = 64 * 1024 * 1024;
const CACHE_SWEEP: Duration = Duration::from_secs(10);

/// A bound TFTP service, ready to `run`.
#[derive(Debug)]
pub struct TftpService {
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
    control_rx: mpsc::Receiver<Control>,
    control_tx: mpsc::Sender<Control>,
}

/// Controls a running service: reload and stop listening.
#[derive(Debug, Clone)]
pub struct TftpHandle {
    control: mpsc::Sender<Control>,
}

#[derive(Debug)]
enum Control {
    Reload(Arc<TftpConfig>, oneshot::Sender<Result<(), TftpError>>),
    StopListening,
}

#[derive(Debug)]
struct Listener {
    configured: SocketAddr,
    endpoint: Arc<UdpEndpoint>,
    local: SocketAddr,
}

#[derive(Debug)]
struct Active {
    config: Arc<TftpConfig>,
}

#[derive(Debug)]
struct Shared {
    active: RwLock<Arc<Active>>,
    /// What a requested name means: the binary's boot tree, shared with the other services
    /// that serve files. Its root is replaced by the binary on reload.
    tree: BootTree,
    /// Peers with a transfer queued or running.
    sessions: Mutex<HashMap<SocketAddr, Session>>,
    permits: Arc<Semaphore>,
    limit: AtomicUsize,
    queued: AtomicUsize,
    /// Read transfers not yet acknowledged, per source address and prefix.
    unconfirmed: Mutex<UnconfirmedBounds>,
    /// Woken whenever an unconfirmed slot frees.
    unconfirmed_freed: Notify,
    tally: Tally,
    transfers: TaskTracker,
    next_seed: AtomicU64,
}

impl TftpService {
    /// Binds every listening address; files are served from `tree`. Nothing is served until
    /// `run`.
    pub async fn bind(config: Arc<TftpConfig>, tree: BootTree) -> Result<Self, TftpError> {
        let listeners = bind_all(&config.listen)?;
        let (control_tx, control_rx) = mpsc::channel(4);
        let shared = Arc::new(Shared {
            tree,
            permits: Arc::new(Semaphore::new(config.max_sessions)),
            limit: AtomicUsize::new(config.max_sessions),
            queued: AtomicUsize::new(0),
            unconfirmed: Mutex::new(UnconfirmedBounds::new(
                config.unconfirmed_per_address,
                config.unconfirmed_per_prefix,
            )),
            unconfirmed_freed: Notify::new(),
            tally: Tally::default(),
            sessions: Mutex::new(HashMap::new()),
            transfers: TaskTracker::new(),
            next_seed: AtomicU64::new(seed_from_clock()),
            active: RwLock::new(Arc::new(Active { config })),
        });
        Ok(Self {
            shared,
            listeners,
            control_rx,
            control_tx,
        })
    }

    /// The bound addresses (with the real port where the config said 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .map(|listener| listener.local)
            .collect()
    }

    pub fn handle(&self) -> TftpHandle {
        TftpHandle {
            control: self.control_tx.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled, then aborts transfers in flight (each peer gets
    /// an ERROR, partial uploads are removed) and returns once they are gone.
    pub async fn run(self, shutdown: CancellationToken) {
        let TftpService {
            shared,
            listeners,
            mut control_rx,
            control_tx,
        } = self;
        drop(control_tx);
        let mut running: Vec<RunningListener> = listeners
            .into_iter()
            .map(|listener| spawn_listener(listener, &shared, &shutdown))
            .collect();
        let mut sweep = tokio::time::interval(CACHE_SWEEP);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    shared.tree.evict_idle(now());
                    shared.tally.summarize(CACHE_SWEEP);
                }
                control = control_rx.recv() => match control {
                    Some(Control::Reload(config, reply)) => {
                        let result = reload(&shared, &mut running, config, &shutdown);
                        let _ = reply.send(result);
                    }
                    Some(Control::StopListening) => {
                        for listener in running.drain(..) {
                            listener.stop.cancel();
                        }
                        break;
                    }
                    None => {}
                },
            }
        }
        for listener in running {
            listener.stop.cancel();
            let _ = listener.task.await;
        }
        shared.transfers.close();
        shared.transfers.wait().await;
    }
}

impl TftpHandle {
    /// Applies a new `tftp` section to requests that arrive from now on; transfers in flight
    /// keep the settings they started with. Listening addresses are rebound when they
    /// changed. On error nothing changes.
    pub async fn reload(&self, config: Arc<TftpConfig>) -> Result<(), TftpError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.control
            .send(Control::Reload(config, reply_tx))
            .await
            .map_err(|_| TftpError::Stopped)?;
        reply_rx.await.map_err(|_| TftpError::Stopped)?
    }

    /// Stops accepting requests; transfers in flight run to completion and `run` returns
    /// once they are done.
    pub fn stop_listening(&self) {
        let _ = self.control.try_send(Control::StopListening);
    }
}

fn bind_all(addresses: &[SocketAddr]) -> Result<Vec<Listener>, TftpError> {
    addresses
        .iter()
        .map(|&configured| {
            let endpoint = UdpEndpoint::bind(configured).map_err(|source| TftpError::Bind {
                addr: configured,
                source,
            })?;
            let local = endpoint.local_addr().map_err(|source| TftpError::Bind {
                addr: configured,
                source,
            })?;
            Ok(Listener {
                configured,
                endpoint: Arc::new(endpoint),
                local,
            })
        })
        .collect()
}

/// A listening socket being served by its own task.
#[derive(Debug)]
struct RunningListener {
    configured: SocketAddr,
    local: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

fn spawn_listener(
    listener: Listener,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
) -> RunningListener {
    let stop = shutdown.child_token();
    let task = tokio::spawn(listen(
        Arc::clone(&listener.endpoint),
        Arc::clone(shared),
        stop.clone(),
        shutdown.clone(),
    ));
    RunningListener {
        configured: listener.configured,
        local: listener.local,
        stop,
        task,
    }
}

fn reload(
    shared: &Arc<Shared>,
    running: &mut Vec<RunningListener>,
    config: Arc<TftpConfig>,
    shutdown: &CancellationToken,
) -> Result<(), TftpError> {
    // A listener stays when the new config names it as before or by the address it is bound
    // to (a config that said port 0 and now names the port the kernel chose).
    let is_running = |addr: &SocketAddr| {
        running
            .iter()
            .any(|listener| listener.configured == *addr || listener.local == *addr)
    };
    let to_bind: Vec<SocketAddr> = config
        .listen
        .iter()
        .copied()
        .filter(|addr| !is_running(addr))
        .collect();
    // Bind the new addresses first so that a failure leaves the service as it was.
    let new_listeners = bind_all(&to_bind)?;
    let wanted: HashSet<SocketAddr> = config.listen.iter().copied().collect();
    running.retain(|listener| {
        let keep = wanted.contains(&listener.configured) || wanted.contains(&listener.local);
        if !keep {
            listener.stop.cancel();
            info!(addr = %listener.local, "tftp stopped listening");
        }
        keep
    });
    for listener in new_listeners {
        info!(addr = %listener.local, "tftp listening");
        running.push(spawn_listener(listener, shared, shutdown));
    }
    shared.resize(config.max_sessions);
    shared
        .unconfirmed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .set_limits(
            config.unconfirmed_per_address,
            config.unconfirmed_per_prefix,
        );
    *shared
        .active
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Arc::new(Active { config });
    Ok(())
}

impl Shared {
    fn active(&self) -> Arc<Active> {
        Arc::clone(&self.active.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn resize(&self, new_limit: usize) {
        let old_limit = self.limit.swap(new_limit, Ordering::SeqCst);
        if new_limit > old_limit {
            self.permits.add_permits(new_limit - old_limit);
        } else if new_limit < old_limit {
            // Retire permits as running transfers hand them back.
            let permits = Arc::clone(&self.permits);
            let surplus = u32::try_from(old_limit - new_limit).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(retired) = permits.acquire_many_owned(surplus).await {
                    retired.forget();
                }
            });
        }
    }
}

async fn listen(
    endpoint: Arc<UdpEndpoint>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            received = endpoint.recv(&mut buf) => received,
        };
        let meta = match received {
            Ok(meta) => meta,
            Err(recv_error) => {
                debug!(error = %recv_error, "tftp receive error");
                continue;
            }
        };
        if meta.truncated {
            debug!(peer = %meta.source, "oversize datagram dropped");
            continue;
        }
        let datagram = &buf[..meta.len];
        match shared.route(meta.source, datagram) {
            Route::Repeat(repeat) => {
                // A full signal already means "resend": one more adds nothing.
                let _ = repeat.try_send(());
                debug!(peer = %meta.source, "request repeated");
                continue;
            }
            Route::Inbox(inbox) => {
                if inbox.try_send(datagram.to_vec()).is_err() {
                    debug!(peer = %meta.source, "transfer inbox full, datagram dropped");
                }
                continue;
            }
            Route::Listener => {}
        }
        match Packet::parse(datagram) {
            Ok(Packet::Rrq(_)) => admit(
                &shared,
                Direction::Read,
                datagram,
                meta,
                &endpoint,
                &shutdown,
            ),
            Ok(Packet::Wrq(_)) => admit(
                &shared,
                Direction::Write,
                datagram,
                meta,
                &endpoint,
                &shutdown,
            ),
            Ok(_) => debug!(peer = %meta.source, "not a request on the listening port, dropped"),
            Err(parse_error) if is_request(datagram) && parse_error.reply_code().is_some() => {
                if shared.tally.refused_request.note() {
                    info!(peer = %meta.source, error = %parse_error, "malformed request refused (further refusals in this period are counted in the admission summary)");
                } else {
                    debug!(peer = %meta.source, error = %parse_error, "malformed request refused");
                }
                let code = parse_error
                    .reply_code()
                    .unwrap_or(ErrorCode::IllegalOperation);
                reply_from_listener(&endpoint, &meta, code, &parse_error.to_string());
            }
            Err(parse_error) => {
                debug!(peer = %meta.source, error = %parse_error, "malformed request dropped");
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

/// Sends an ERROR from the listening socket, sourced from the address the request was sent to.
fn reply_from_listener(
    endpoint: &Arc<UdpEndpoint>,
    meta: &RecvMeta,
    code: ErrorCode,
    message: &str,
) {
    let mut buf = [0u8; 256];
    let len = wire::emit_error(&mut buf, code, message);
    let packet = buf[..len].to_vec();
    let endpoint = Arc::clone(endpoint);
    let (to, from, ifindex) = (meta.source, meta.local_ip, meta.ifindex);
    tokio::spawn(async move {
        let sent = match from {
            Some(from) if usable_source(from) => {
                endpoint.send_from(&packet, to, from, ifindex).await
            }
            _ => endpoint.send_to(&packet, to).await,
        };
        if let Err(send_error) = sent {
            debug!(peer = %to, error = %send_error, "could not send ERROR");
        }
    });
}

/// Only a datagram that claims to be an RRQ or WRQ is answered when it does not parse: an
/// answer to anything else could start a ping-pong with another server.
fn is_request(datagram: &[u8]) -> bool {
    matches!(datagram, [0, 1 | 2, ..])
}

fn usable_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

fn request_name(datagram: &[u8]) -> String {
    match Packet::parse(datagram) {
        Ok(Packet::Rrq(request) | Packet::Wrq(request)) => printable(request.filename),
        _ => String::new(),
    }
}

/// A client-supplied name made safe for a log line.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]);
    text.escape_debug().to_string()
}

/// The next repeat of the request, if the transfer listens for them.
async fn next_repeat(repeats: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match repeats {
        Some(repeats) => repeats.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs `inner`, calling `before_wait` the first time it has to wait (returns pending), if
/// ever.
async fn before_first_wait<F: Future>(inner: F, before_wait: impl FnOnce()) -> F::Output {
    let mut inner = std::pin::pin!(inner);
    let mut before_wait = Some(before_wait);
    std::future::poll_fn(|cx| {
        let poll = inner.as_mut().poll(cx);
        if poll.is_pending()
            && let Some(before_wait) = before_wait.take()
        {
            before_wait();
        }
        poll
    })
    .await
}

/// Reads one byte of every cache line of `bytes`, so that they are in the CPU cache when the
/// send that copies them comes. A lock-step block leaves only after the peer's ACK; warming it
/// while that round trip runs takes its cache misses off the path from ACK to DATA (a
/// server that reads its file ahead gets the same). Blocks read from a file instead of lent
/// from memory are left to the kernel's readahead.
fn warm(bytes: &[u8]) {
    const CACHE_LINE: usize = 64;
    let touched = bytes
        .iter()
        .step_by(CACHE_LINE)
        .fold(0u8, |acc, &byte| acc ^ byte);
    std::hint::black_box(touched);
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn seed_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
}

/// One admitted request and everything its transfer needs.
struct Job {
    shared: Arc<Shared>,
    active: Arc<Active>,
    direction: Direction,
    datagram: Vec<u8>,
    peer: SocketAddr,
    local_ip: IpAddr,
    ifindex: Option<u32>,
    listener: Arc<UdpEndpoint>,
    inbox: Option<mpsc::Receiver<Vec<u8>>>,
    /// Reads: signalled when the same request arrives again.
    repeats: Option<mpsc::Receiver<()>>,
    /// Reads: this transfer's place within its source's unconfirmed bounds, held until the
    /// client acknowledges something.
    unconfirmed: Option<UnconfirmedSlot>,
    shutdown: CancellationToken,
    _guard: SessionGuard,
}

/// How a transfer talks to its peer.
enum Transport {
    /// A socket of its own: the RFC 1350 transfer identifier.
    Own(UdpEndpoint),
    /// The listening socket, shared by every transfer (`single_port`).
    Shared {
        endpoint: Arc<UdpEndpoint>,
        local_ip: IpAddr,
        ifindex: Option<u32>,
        inbox: mpsc::Receiver<Vec<u8>>,
        peer: SocketAddr,
    },
}

impl Transport {
    async fn send(&self, packet: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.send_vectored(&[IoSlice::new(packet)], to).await
    }

    async fn send_vectored(&self, parts: &[IoSlice<'_>], to: SocketAddr) -> std::io::Result<usize> {
        let (endpoint, from) = self.sender();
        endpoint.send_vectored(parts, to, from).await
    }

    /// The socket to send on, and the source address to send from when it is shared.
    fn sender(&self) -> (&UdpEndpoint, Option<(IpAddr, Option<u32>)>) {
        match self {
            Transport::Own(endpoint) => (endpoint, None),
            Transport::Shared {
                endpoint,
                local_ip,
                ifindex,
                ..
            } => (endpoint, Some((*local_ip, *ifindex))),
        }
    }

    /// Sends the gathered blocks with one segmented `sendmsg` while the kernel takes them
    /// (`gso` turns false for good when it does not), else one by one. Failures are only
    /// logged, as in [`Transport::send_transmit`].
    async fn send_segments(&self, segments: &Segments<'_>, gso: &mut bool) {
        let Some(to) = segments.to() else {
            return;
        };
        if *gso && segments.len() > 1 {
            let mut slices = [IoSlice::new(&[]); 2 * MAX_SEGMENTS];
            let parts = segments.io_slices(&mut slices);
            let (endpoint, source) = self.sender();
            match endpoint
                .send_segmented(parts, segments.segment_len(), to, source)
                .await
            {
                Ok(_) => return,
                Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {
                    debug!(peer = %to, %error, "segmented send unsupported; sending blocks one by one");
                    *gso = false;
                }
                Err(error) => {
                    debug!(peer = %to, %error, "send failed");
                    return;
                }
            }
        }
        for index in 0..segments.len() {
            if let Err(send_error) = self.send_vectored(&segments.datagram(index), to).await {
                debug!(peer = %to, error = %send_error, "send failed");
            }
        }
    }

    /// Sends what the core asked for: the head in `buf`, then the block the source lent,
    /// gathered by the kernel. A failed send is only logged, since the core's retransmission
    /// timer covers a datagram that never left.
    async fn send_transmit(&self, buf: &[u8], transmit: &Transmit<'_>) {
        let parts = [
            IoSlice::new(&buf[..transmit.len]),
            IoSlice::new(transmit.tail),
        ];
        let parts = if transmit.tail.is_empty() {
            &parts[..1]
        } else {
            &parts[..]
        };
        if let Err(send_error) = self.send_vectored(parts, transmit.to).await {
            debug!(peer = %transmit.to, error = %send_error, "send failed");
        }
    }

    /// Receives the next datagram for this transfer: its length and its source.
    async fn recv(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        match self {
            Transport::Own(endpoint) => loop {
                // The buffer holds the largest TFTP packet, so a datagram that fills it was
                // oversize (and cut by the kernel).
                match endpoint.recv_from(buf).await {
                    Ok((len, source)) if len >= buf.len() => {
                        debug!(peer = %source, "oversize datagram dropped");
                    }
                    Ok((len, source)) => return Some((len, source)),
                    Err(recv_error) => debug!(error = %recv_error, "tftp transfer receive error"),
                }
            },
            Transport::Shared { inbox, peer, .. } => {
                let datagram = inbox.recv().await?;
                let len = datagram.len().min(buf.len());
                buf[..len].copy_from_slice(&datagram[..len]);
                Some((len, *peer))
            }
        }
    }
}

/// What one finished transfer reports in its log line.
struct Report {
    file: String,
    bytes: u64,
    negotiated: Option<Negotiated>,
    stats: Option<Stats>,
    outcome: String,
    success: bool,
    /// A read whose client never acknowledged anything: possibly a forged request, logged at
    /// a bounded rate.
    unconfirmed: bool,
    /// Refused before any data moved (missing file, access violation, ...): logged at a
    /// bounded rate, since the request may have been forged.
    refused: bool,
    kept_previous_as: Option<String>,
    /// When the data was safely stored (an upload's commit); the dally after the final ACK is
    /// not part of the transfer's duration or rate.
    stored_at: Option<Instant>,
}

impl Report {
    fn refused(file: String, reason: String) -> Self {
        Report {
            file,
            bytes: 0,
            negotiated: None,
            stats: None,
            outcome: reason,
            success: false,
            unconfirmed: false,
            refused: true,
            kept_previous_as: None,
            stored_at: None,
        }
    }
}

impl Job {
    async fn run(mut self, permit: OwnedSemaphorePermit) {
        let _permit = permit;
        let started = now();
        let transport = match self.transport() {
            Ok(transport) => transport,
            Err(bind_error) => {
                error!(peer = %self.peer, error = %bind_error, "no socket for the transfer");
                self.refuse(ErrorCode::NotDefined, "server error").await;
                return;
            }
        };
        let report = match self.direction {
            Direction::Read => {
                let unconfirmed = self.unconfirmed.take();
                let repeats = self.repeats.take();
                self.read(transport, unconfirmed, repeats).await
            }
            Direction::Write => self.write(transport).await,
        };
        self.log(&report, started);
    }

    fn transport(&mut self) -> std::io::Result<Transport> {
        if let Some(inbox) = self.inbox.take() {
            return Ok(Transport::Shared {
                endpoint: Arc::clone(&self.listener),
                local_ip: self.local_ip,
                ifindex: self.ifindex,
                inbox,
                peer: self.peer,
            });
        }
        let ports = self
            .active
            .config
            .port_range
            .as_ref()
            .map(|range| (*range.start(), *range.end()));
        let seed = self
            .shared
            .next_seed
            .fetch_add(0x9e37_79b9, Ordering::Relaxed);
        UdpEndpoint::bind_ephemeral(self.local_ip, self.ifindex, ports, seed).map(Transport::Own)
    }

    /// Answers the request with an ERROR from the listening socket (used before a transfer
    /// socket exists).
    async fn refuse(&self, code: ErrorCode, message: &str) {
        let mut buf = [0u8; 256];
        let len = wire::emit_error(&mut buf, code, message);
        let sent = self
            .listener
            .send_from(&buf[..len], self.peer, self.local_ip, self.ifindex)
            .await;
        if let Err(send_error) = sent {
            debug!(peer = %self.peer, error = %send_error, "could not send ERROR");
        }
    }

    fn settings(&self) -> Settings {
        let config = &self.active.config;
        Settings {
            max_blksize: path_blksize(self.local_ip, self.ifindex)
                .min(config.max_blksize)
                .min(MAX_BLKSIZE),
            max_windowsize: config.max_windowsize,
            receive_buffer_budget: DEFAULT_RECEIVE_BUFFER_BUDGET,
            default_timeout: config.timeout,
            max_retries: config.retries,
            max_upload_size: config.write.max_size,
        }
    }

    async fn read(
        &self,
        mut transport: Transport,
        mut unconfirmed: Option<UnconfirmedSlot>,
        mut repeats: Option<mpsc::Receiver<()>>,
    ) -> Report {
        let Ok(Packet::Rrq(request)) = Packet::parse(&self.datagram) else {
            return Report::refused(String::new(), "unparsable request".into());
        };
        let file = printable(request.filename);
        let tree = self.shared.tree.clone();
        let name = request.filename.to_vec();
        let client = self.peer.ip();
        // The inbox holds switch configs (password hashes, SNMP communities): it is
        // write-only except for the restore network.
        let inbox = match &self.active.config.write.read_from {
            Some(networks) if allowed(Some(networks), client) => Inbox::Readable,
            _ => Inbox::Hidden,
        };
        let opened = tokio::task::spawn_blocking(move || {
            tree.resolve(
                &Lookup {
                    name: &name,
                    client,
                    inbox,
                },
                now(),
            )
        })
        .await;
        let opened = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(access_error)) => {
                send_access_error(&transport, self.peer, &access_error).await;
                return Report::refused(file, format!("refused: {access_error}"));
            }
            Err(join_error) => {
                return Report::refused(file, format!("internal error: {join_error}"));
            }
        };
        let file = opened.relative.clone();
        let source = match self.source_for(&request, opened).await {
            Ok(source) => source,
            Err((code, message, reason)) => {
                send_error(&transport, self.peer, code, message).await;
                return Report::refused(file, reason);
            }
        };
        let negotiated = negotiate_read(&request, &self.settings(), source.len());
        // Repeats that arrived while the request waited in the queue are answered by the
        // first packet itself.
        if let Some(repeats) = repeats.as_mut() {
            while repeats.try_recv().is_ok() {}
        }
        let mut transfer = ReadTransfer::new(self.peer, &negotiated, source.len(), now());
        let mut send_buf = vec![0u8; MAX_PACKET];
        let mut recv_buf = vec![0u8; MAX_PACKET];
        let mut shutting_down = false;
        let mut timer = Timer::new();
        // One cancellation waiter for the whole transfer, not one registered per packet.
        let cancelled = self.shutdown.cancelled();
        tokio::pin!(cancelled);
        let mut segments = Segments::new();
        let mut gso = true;
        loop {
            // Blocks polled out together leave together: one segmented send per window.
            while let Some(transmit) = transfer.poll_transmit(now(), &source, &mut send_buf) {
                let head = &send_buf[..transmit.len];
                if segments.push(head, &transmit) {
                    continue;
                }
                transport.send_segments(&segments, &mut gso).await;
                segments.clear();
                if !segments.push(head, &transmit) {
                    transport.send_transmit(&send_buf, &transmit).await;
                }
            }
            transport.send_segments(&segments, &mut gso).await;
            segments.clear();
            if transfer.outcome().is_some() {
                break;
            }
            // Only a transfer that has to wait warms its next block: when the answer is queued
            // already (always, when the peer shares this CPU) the warming would only add to
            // the copy that follows.
            let upcoming = transfer
                .upcoming()
                .and_then(|(offset, len)| source.lend(offset, len));
            let deadline = transfer.poll_timeout();
            tokio::select! {
                _ = &mut cancelled, if !shutting_down => {
                    shutting_down = true;
                    transfer.abort(ErrorCode::NotDefined, "server shutting down");
                }
                received = before_first_wait(transport.recv(&mut recv_buf), || {
                    warm(upcoming.unwrap_or_default());
                }) => match received {
                    Some((len, from)) => transfer.handle_datagram(now(), from, &recv_buf[..len]),
                    None => transfer.abort(ErrorCode::NotDefined, "transfer cancelled"),
                },
                Some(()) = next_repeat(&mut repeats), if unconfirmed.is_some() => {
                    transfer.handle_repeated_request(now());
                }
                _ = timer.fired(deadline) => transfer.handle_timeout(now()),
            }
            if unconfirmed.is_some() && transfer.is_confirmed() {
                // The client answered: the request was not forged. Its slot goes to the next.
                unconfirmed = None;
            }
        }
        let outcome = transfer.outcome().map(describe).unwrap_or_default();
        let success = matches!(transfer.outcome(), Some(Outcome::Completed));
        Report {
            file,
            bytes: transfer.stats().bytes,
            negotiated: Some(negotiated),
            stats: Some(transfer.stats().clone()),
            outcome,
            success,
            unconfirmed: matches!(transfer.outcome(), Some(Outcome::Unconfirmed)),
            refused: false,
            kept_previous_as: None,
            stored_at: None,
        }
    }

    async fn source_for(
        &self,
        request: &Request<'_>,
        opened: BootFile,
    ) -> Result<Contents, (ErrorCode, &'static str, String)> {
        if request.mode == Mode::Netascii {
            if opened.len() > MAX_NETASCII_FILE {
                return Err((
                    ErrorCode::NotDefined,
                    "file too large for netascii",
                    "refused: file too large for netascii mode".into(),
                ));
            }
            let contents = opened.contents;
            let encoded = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let mut raw = vec![0u8; usize::try_from(contents.len()).unwrap_or(0)];
                let read = contents.read_at(0, &mut raw)?;
                raw.truncate(read);
                Ok(netascii::encode(&raw))
            })
            .await;
            return match encoded {
                Ok(Ok(bytes)) => Ok(Contents::Memory(bytes.into())),
                Ok(Err(read_error)) => Err((
                    ErrorCode::NotDefined,
                    "read error",
                    format!("read error: {read_error}"),
                )),
                Err(join_error) => Err((
                    ErrorCode::NotDefined,
                    "server error",
                    format!("internal error: {join_error}"),
                )),
            };
        }
        Ok(opened.contents)
    }

    async fn write(&mut self, mut transport: Transport) -> Report {
        let Ok(Packet::Wrq(request)) = Packet::parse(&self.datagram) else {
            return Report::refused(String::new(), "unparsable request".into());
        };
        let file = printable(request.filename);
        let settings = self.settings();
        let negotiated = match negotiate_write(&request, &settings) {
            Ok(negotiated) => negotiated,
            Err(refusal) => {
                send_error(&transport, self.peer, refusal.code, &refusal.message).await;
                return Report::refused(file, format!("refused: {}", refusal.message));
            }
        };
        let write_config = &self.active.config.write;
        let policy = WritePolicy {
            dir: write_config.dir.clone(),
            overwrite: write_config.overwrite,
            max_size: write_config.max_size,
        };
        let root = self.shared.tree.root();
        let name = request.filename.to_vec();
        let created = tokio::task::spawn_blocking(move || root.create_upload(&name, &policy)).await;
        let upload = match created {
            Ok(Ok(upload)) => upload,
            Ok(Err(access_error)) => {
                send_access_error(&transport, self.peer, &access_error).await;
                return Report::refused(file, format!("refused: {access_error}"));
            }
            Err(join_error) => {
                return Report::refused(file, format!("internal error: {join_error}"));
            }
        };
        let file = upload.relative().to_string();
        let netascii = request.mode == Mode::Netascii;
        let mut transfer = WriteTransfer::new(
            self.peer,
            &negotiated,
            write_config.max_size,
            netascii,
            now(),
        );
        let mut pending_upload = Some(upload);
        let mut kept_previous_as = None;
        let mut stored_at = None;
        let mut send_buf = vec![0u8; MAX_PACKET];
        let mut recv_buf = vec![0u8; MAX_PACKET];
        let mut shutting_down = false;
        let mut timer = Timer::new();
        // One cancellation waiter for the whole transfer, not one registered per packet.
        let cancelled = self.shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            while let Some(transmit) = transfer.poll_transmit(now(), &mut send_buf) {
                transport.send_transmit(&send_buf, &transmit).await;
            }
            if transfer.outcome().is_some() {
                break;
            }
            if transfer.needs_commit()
                && let Some(upload) = pending_upload.take()
            {
                let committed =
                    tokio::task::spawn_blocking(move || upload.commit(SystemTime::now())).await;
                let result = match committed {
                    Ok(Ok(outcome)) => {
                        kept_previous_as = outcome.kept_previous_as;
                        stored_at = Some(now());
                        Ok(())
                    }
                    Ok(Err(access_error)) => {
                        warn!(peer = %self.peer, file = %file, error = %access_error, "upload could not be stored");
                        Err((
                            access_code(&access_error),
                            client_message(&access_error).to_string(),
                        ))
                    }
                    Err(join_error) => Err((
                        ErrorCode::NotDefined,
                        format!("internal error: {join_error}"),
                    )),
                };
                transfer.handle_committed(now(), result);
                continue;
            }
            let deadline = transfer.poll_timeout();
            tokio::select! {
                _ = &mut cancelled, if !shutting_down => {
                    shutting_down = true;
                    transfer.abort(ErrorCode::NotDefined, "server shutting down");
                }
                received = transport.recv(&mut recv_buf) => match received {
                    Some((len, from)) => match pending_upload.as_mut() {
                        Some(upload) => transfer.handle_datagram(now(), from, &recv_buf[..len], &mut UploadWriter(upload)),
                        None => transfer.handle_datagram(now(), from, &recv_buf[..len], &mut Discard),
                    },
                    None => transfer.abort(ErrorCode::NotDefined, "transfer cancelled"),
                },
                _ = timer.fired(deadline) => transfer.handle_timeout(now()),
            }
        }
        // An upload that never committed is dropped here, which removes its temporary file.
        drop(pending_upload);
        let outcome = transfer.outcome().map(describe).unwrap_or_default();
        let success = matches!(transfer.outcome(), Some(Outcome::Completed));
        Report {
            file,
            bytes: transfer.stats().bytes,
            negotiated: Some(negotiated),
            stats: Some(transfer.stats().clone()),
            outcome,
            success,
            unconfirmed: false,
            refused: false,
            kept_previous_as,
            stored_at,
        }
    }

    fn log(&self, report: &Report, started: Instant) {
        let elapsed = report
            .stored_at
            .unwrap_or_else(now)
            .saturating_duration_since(started);
        let seconds = elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            report.bytes as f64 / seconds / 1_000_000.0
        } else {
            0.0
        };
        let (blksize, windowsize, timeout_s, tsize) =
            report.negotiated.as_ref().map_or((0, 0, 0, None), |n| {
                (n.blksize, n.windowsize, n.timeout.as_secs(), n.tsize)
            });
        let (retransmitted, timeouts) = report
            .stats
            .as_ref()
            .map_or((0, 0), |s| (s.retransmitted_blocks, s.timeouts));
        let tsize = tsize.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        let kept = report.kept_previous_as.as_deref().unwrap_or("-");
        if report.unconfirmed {
            if self.shared.tally.ended_unconfirmed.note() {
                info!(peer = %self.peer, file = %report.file, duration_ms = elapsed.as_millis() as u64, outcome = %report.outcome,
                    "tftp read never acknowledged, given up (further ones in this period are counted in the admission summary)");
            } else {
                debug!(peer = %self.peer, file = %report.file, duration_ms = elapsed.as_millis() as u64, outcome = %report.outcome,
                    "tftp read never acknowledged, given up");
            }
            return;
        }
        if report.refused {
            if self.shared.tally.refused_request.note() {
                info!(peer = %self.peer, file = %report.file, direction = self.direction.as_str(), outcome = %report.outcome,
                    "tftp request refused (further refusals in this period are counted in the admission summary)");
            } else {
                debug!(peer = %self.peer, file = %report.file, direction = self.direction.as_str(), outcome = %report.outcome,
                    "tftp request refused");
            }
            return;
        }
        if report.success {
            info!(
                peer = %self.peer, file = %report.file, direction = self.direction.as_str(),
                bytes = report.bytes, duration_ms = elapsed.as_millis() as u64, rate_mb_s = format_args!("{rate:.1}"),
                blksize, windowsize, timeout_s, tsize = %tsize, retransmitted, timeouts, kept_previous_as = %kept,
                outcome = %report.outcome, "tftp transfer complete"
            );
        } else {
            info!(
                peer = %self.peer, file = %report.file, direction = self.direction.as_str(),
                bytes = report.bytes, duration_ms = elapsed.as_millis() as u64, rate_mb_s = format_args!("{rate:.1}"),
                blksize, windowsize, timeout_s, tsize = %tsize, retransmitted, timeouts,
                outcome = %report.outcome, "tftp transfer failed"
            );
        }
    }
}

/// Feeds in-order upload data to the temporary file.
struct UploadWriter<'a>(&'a mut Upload);

impl UploadSink for UploadWriter<'_> {
    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.append(data)
    }
}

/// After the upload is handed to commit, late duplicates need no storage.
struct Discard;

impl UploadSink for Discard {
    fn append(&mut self, _data: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Completed => "completed".into(),
        Outcome::PeerError { code, message } => {
            format!("peer sent ERROR {code}: {}", message.escape_debug())
        }
        Outcome::TimedOut => "timed out".into(),
        Outcome::Unconfirmed => "never acknowledged, request not repeated".into(),
        Outcome::Failed { code, message } => {
            format!("failed, sent ERROR {}: {message}", *code as u16)
        }
        Outcome::Aborted => "aborted".into(),
    }
}

async fn send_error(transport: &Transport, peer: SocketAddr, code: ErrorCode, message: &str) {
    let mut buf = [0u8; 512];
    let len = wire::emit_error(&mut buf, code, message);
    if let Err(send_error) = transport.send(&buf[..len], peer).await {
        debug!(peer = %peer, error = %send_error, "could not send ERROR");
    }
}

async fn send_access_error(transport: &Transport, peer: SocketAddr, access_error: &AccessError) {
    // The transfer's report says it too, at a bounded rate.
    debug!(peer = %peer, reason = %access_error, "request refused");
    send_error(
        transport,
        peer,
        access_code(access_error),
        client_message(access_error),
    )
    .await;
}

/// The TFTP error code (RFC 1350) for a refusal of the boot tree.
fn access_code(access_error: &AccessError) -> ErrorCode {
    match access_error {
        AccessError::NotFound => ErrorCode::FileNotFound,
        AccessError::Forbidden(_) => ErrorCode::AccessViolation,
        AccessError::NoSpace => ErrorCode::DiskFull,
        AccessError::Exists => ErrorCode::FileExists,
        AccessError::Io(_) => ErrorCode::NotDefined,
    }
}

/// The message sent to the client: short, and never a server path or reason.
fn client_message(access_error: &AccessError) -> &'static str {
    match access_error {
        AccessError::NotFound => "File not found",
        AccessError::Forbidden(_) => "Access violation",
        AccessError::NoSpace => "Disk full or allocation exceeded",
        AccessError::Exists => "File already exists",
        AccessError::Io(_) => "I/O error",
    }
}

/// The boot tree's bytes, as the transfer core reads them.
impl BlockSource for Contents {
    fn len(&self) -> u64 {
        Contents::len(self)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        Contents::read_at(self, offset, buf)
    }

    fn lend(&self, offset: u64, len: usize) -> Option<&[u8]> {
        Contents::lend(self, offset, len)
    }
}

/// The largest blksize that crosses the receiving interface without IP fragmentation.
fn path_blksize(local_ip: IpAddr, ifindex: Option<u32>) -> u16 {
    const UDP_AND_TFTP_HEADERS: u32 = 8 + 4;
    let ip_header = if local_ip.is_ipv4() { 20 } else { 40 };
    let mtu = ifindex
        .and_then(|index| interface_mtu(index).ok())
        .unwrap_or(1500);
    let payload = mtu.saturating_sub(ip_header + UDP_AND_TFTP_HEADERS);
    u16::try_from(payload)
        .unwrap_or(MAX_BLKSIZE)
        .clamp(wire::MIN_BLKSIZE, MAX_BLKSIZE)
}

/// One timer per transfer, armed from the core's deadline. It is moved earlier when the
/// deadline comes earlier, but never pushed later: a lock-step transfer moves its deadline on
/// every packet, and re-registering a timer per packet costs more than the packet. A timer
/// that fires before the current deadline is harmless: the core acts on the time it is given
/// and the timer is armed again (quinn's driver does the same).
struct Timer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            armed: None,
        }
    }

    /// Waits for the armed time, after arming it for `deadline` if that is earlier.
    async fn fired(&mut self, deadline: Option<Instant>) {
        if let Some(deadline) = deadline
            && self.armed.is_none_or(|armed| deadline < armed)
        {
            self.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            self.armed = Some(deadline);
        }
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_tree_refusals_map_to_tftp_codes_without_leaking_paths() {
        let cases = [
            (AccessError::NotFound, 1),
            (
                AccessError::forbidden("symlink leaves root: /srv/tftp/x"),
                2,
            ),
            (AccessError::NoSpace, 3),
            (AccessError::Exists, 6),
            (AccessError::Io(std::io::Error::other("/srv/tftp/x")), 0),
        ];
        for (err, code) in cases {
            assert_eq!(access_code(&err).as_u16(), code, "{err:?}");
            assert!(!client_message(&err).contains("/srv"), "{err:?}");
            assert!(!client_message(&err).is_empty());
        }
    }
}
