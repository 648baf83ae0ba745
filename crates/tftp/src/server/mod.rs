//! The tokio shell around the sans-IO transfer cores.
//!
//! One task per listening socket receives requests and admits them; one task per transfer
//! owns its own socket (bound to the address the request was sent to, on an ephemeral port or
//! one from `port_range`), feeds datagrams and timeouts to its `ReadTransfer` or
//! `WriteTransfer` and sends what the core asks for. In `single_port` mode the transfer shares
//! the listening socket: the listener forwards the peer's datagrams to the transfer's inbox and
//! the transfer answers with an explicit source address. The shell makes no protocol
//! decisions.
//!
//! Where things are:
//! - this file: the service's life (`TftpService::bind`, `run`, reload, stop) and the state
//!   the tasks share;
//! - `listen.rs` and `admission.rs`: listening and admission (a request's way from the
//!   listening socket to a running transfer: access lists, sessions, queue, unconfirmed bounds);
//! - `transport.rs`: how a transfer's datagrams leave and arrive (own socket or shared one,
//!   segmented sends, ERROR packets);
//! - `driver.rs`: the transfer driver (the boot tree lookup or the upload, then the core's loop);
//! - `report.rs`: the one log line each transfer leaves.

mod admission;
mod driver;
mod listen;
mod report;
mod transport;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use kindling_config::TftpConfig;
use kindling_files::BootTree;
use kindling_udp::UdpEndpoint;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use self::admission::{Session, Tally};
use self::listen::listen;
use crate::error::TftpError;
use crate::unconfirmed::UnconfirmedBounds;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
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

pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn seed_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
}
