//! Admission: what happens to a request between the listening socket and its transfer. The
//! access lists, the session claim that recognises a repeated request, the bounds on
//! unconfirmed reads per source and the wait in the queue, and the counted, rate-bounded
//! logging of what was refused or held.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use ipnet::IpNet;
use kindling_udp::{RecvMeta, UdpEndpoint};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::driver::Job;
use super::listen::{reply_from_listener, request_name, usable_source};
use super::{Direction, Shared};
use crate::wire::ErrorCode;

/// Requests waiting for a slot, as a multiple of `max_sessions`; beyond it they are dropped
/// (the client retransmits).
const QUEUE_FACTOR: usize = 4;
/// Datagrams buffered per single-port transfer before the listener drops them.
const INBOX_DEPTH: usize = 256;

/// What the listener knows about a peer with a transfer queued or running.
#[derive(Debug)]
pub(super) struct Session {
    /// In single-port mode, where the peer's datagrams go.
    pub(super) inbox: Option<mpsc::Sender<Vec<u8>>>,
    /// For a read: the request that started it, and where a repeat of it is signalled.
    pub(super) repeat: Option<(Vec<u8>, mpsc::Sender<()>)>,
}

/// Where the listener sends a datagram from a peer.
pub(super) enum Route {
    /// The same RRQ again: the transfer may resend its first packet.
    Repeat(mpsc::Sender<()>),
    /// Single-port mode: the transfer's inbox.
    Inbox(mpsc::Sender<Vec<u8>>),
    /// Handled by the listener (a new request, or one it drops).
    Listener,
}

/// Admission events: counted, and logged at a bounded rate (the first of each kind in a
/// summary period at info, the rest at debug, then one summary line per period), so that a
/// flood of requests cannot flood the log.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) refused_by_acl: Counter,
    pub(super) refused_request: Counter,
    pub(super) held_by_unconfirmed_bound: Counter,
    pub(super) queued_for_session: Counter,
    pub(super) dropped_queue_full: Counter,
    pub(super) expired_in_queue: Counter,
    pub(super) ended_unconfirmed: Counter,
}

#[derive(Debug, Default)]
pub(super) struct Counter {
    count: AtomicU64,
    logged: AtomicBool,
}

impl Counter {
    /// Counts one event; true when it is the first of the period (log it at full level).
    pub(super) fn note(&self) -> bool {
        self.count.fetch_add(1, Ordering::Relaxed);
        !self.logged.swap(true, Ordering::Relaxed)
    }

    /// The events since the last call, starting a new period.
    fn take(&self) -> u64 {
        self.logged.store(false, Ordering::Relaxed);
        self.count.swap(0, Ordering::Relaxed)
    }
}

impl Tally {
    /// Logs one line for the period just ended, if anything happened in it.
    pub(super) fn summarize(&self, period: Duration) {
        let counts = [
            self.refused_by_acl.take(),
            self.refused_request.take(),
            self.held_by_unconfirmed_bound.take(),
            self.queued_for_session.take(),
            self.dropped_queue_full.take(),
            self.expired_in_queue.take(),
            self.ended_unconfirmed.take(),
        ];
        if counts.iter().all(|&count| count == 0) {
            return;
        }
        let [
            refused,
            refused_request,
            held,
            queued,
            dropped,
            expired,
            unconfirmed,
        ] = counts;
        info!(
            period_s = period.as_secs(),
            refused_by_allow_from = refused,
            refused_request,
            held_by_unconfirmed_bound = held,
            queued_for_session = queued,
            dropped_queue_full = dropped,
            expired_in_queue = expired,
            ended_unconfirmed = unconfirmed,
            "tftp admission summary"
        );
    }
}

impl Shared {
    /// Where a datagram from `peer` goes: a repeat of its read request to the transfer's
    /// repeat signal, anything else to its inbox (single-port mode) or to the listener.
    pub(super) fn route(&self, peer: SocketAddr, datagram: &[u8]) -> Route {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(session) = sessions.get(&peer) else {
            return Route::Listener;
        };
        match (&session.repeat, &session.inbox) {
            (Some((request, repeat)), _) if request.as_slice() == datagram => {
                Route::Repeat(repeat.clone())
            }
            (_, Some(inbox)) => Route::Inbox(inbox.clone()),
            _ => Route::Listener,
        }
    }

    /// Registers a peer; false if it already has a transfer queued or running.
    fn claim(&self, peer: SocketAddr, session: Session) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.contains_key(&peer) {
            return false;
        }
        sessions.insert(peer, session);
        true
    }

    fn release(&self, peer: SocketAddr) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.remove(&peer);
    }
}

/// One unconfirmed read transfer counted against its source's bounds; uncounted (and the
/// requests waiting for a slot woken) when dropped: when the client confirms or the transfer
/// ends.
#[derive(Debug)]
pub(super) struct UnconfirmedSlot {
    shared: Arc<Shared>,
    source: IpAddr,
}

impl UnconfirmedSlot {
    fn try_acquire(shared: &Arc<Shared>, source: IpAddr) -> Option<Self> {
        let acquired = shared
            .unconfirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_acquire(source);
        acquired.then(|| UnconfirmedSlot {
            shared: Arc::clone(shared),
            source,
        })
    }

    /// Waits until `source` is within its bounds and counts it.
    async fn acquire(shared: &Arc<Shared>, source: IpAddr) -> Self {
        loop {
            let freed = shared.unconfirmed_freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so that a slot freed in between still wakes us.
            freed.as_mut().enable();
            if let Some(slot) = Self::try_acquire(shared, source) {
                return slot;
            }
            freed.await;
        }
    }
}

impl Drop for UnconfirmedSlot {
    fn drop(&mut self) {
        self.shared
            .unconfirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.source);
        self.shared.unconfirmed_freed.notify_waiters();
    }
}

/// Removes the peer's session entry when the transfer (or its wait in the queue) ends.
pub(super) struct SessionGuard {
    shared: Arc<Shared>,
    peer: SocketAddr,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.shared.release(self.peer);
    }
}

/// Whether `ip` is in `acl` (`None`: anyone); an IPv4-mapped IPv6 source counts as IPv4.
pub(super) fn allowed(acl: Option<&Vec<IpNet>>, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    acl.is_none_or(|networks| networks.iter().any(|network| network.contains(&ip)))
}

/// Takes a request from the listener: refuses it (access lists, uploads off), drops it (a
/// request from a peer whose transfer is queued or running), or claims the peer's session and
/// starts its transfer, at once or after a wait in the queue for an unconfirmed slot (reads)
/// and a session slot.
pub(super) fn admit(
    shared: &Arc<Shared>,
    direction: Direction,
    datagram: &[u8],
    meta: RecvMeta,
    endpoint: &Arc<UdpEndpoint>,
    shutdown: &CancellationToken,
) {
    let active = shared.active();
    let config = &active.config;
    let peer = meta.source;
    let file = request_name(datagram);
    let acl = match direction {
        Direction::Read => config.allow_from.as_ref(),
        Direction::Write => config.write.allow_from.as_ref(),
    };
    if !allowed(acl, peer.ip()) {
        if shared.tally.refused_by_acl.note() {
            info!(peer = %peer, file = %file, direction = direction.as_str(), "request refused: source not in allow_from (further refusals in this period are counted in the admission summary)");
        } else {
            debug!(peer = %peer, file = %file, direction = direction.as_str(), "request refused: source not in allow_from");
        }
        reply_from_listener(endpoint, &meta, ErrorCode::AccessViolation, "access denied");
        return;
    }
    if direction == Direction::Write && !config.write.enabled {
        if shared.tally.refused_request.note() {
            info!(peer = %peer, file = %file, "write refused: uploads are disabled (tftp.write.enabled; further refusals in this period are counted in the admission summary)");
        } else {
            debug!(peer = %peer, file = %file, "write refused: uploads are disabled (tftp.write.enabled)");
        }
        reply_from_listener(
            endpoint,
            &meta,
            ErrorCode::AccessViolation,
            "writes are disabled",
        );
        return;
    }
    let local_ip = match meta.local_ip.filter(|ip| usable_source(*ip)) {
        Some(ip) => ip,
        None => match endpoint.local_addr().map(|addr| addr.ip()) {
            Ok(ip) if usable_source(ip) => ip,
            _ => {
                debug!(peer = %peer, "request to a broadcast or unknown address dropped");
                return;
            }
        },
    };
    let (inbox_tx, inbox_rx) = if config.single_port {
        let (tx, rx) = mpsc::channel(INBOX_DEPTH);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (repeat_tx, repeat_rx) = match direction {
        Direction::Read => {
            let (tx, rx) = mpsc::channel(1);
            (Some((datagram.to_vec(), tx)), Some(rx))
        }
        Direction::Write => (None, None),
    };
    let session = Session {
        inbox: inbox_tx,
        repeat: repeat_tx,
    };
    if !shared.claim(peer, session) {
        debug!(peer = %peer, file = %file, "another request while a transfer is queued or running, dropped");
        return;
    }
    let guard = SessionGuard {
        shared: Arc::clone(shared),
        peer,
    };
    let mut job = Job {
        shared: Arc::clone(shared),
        active: Arc::clone(&active),
        direction,
        datagram: datagram.to_vec(),
        peer,
        local_ip,
        ifindex: meta.ifindex,
        listener: Arc::clone(endpoint),
        inbox: inbox_rx,
        repeats: repeat_rx,
        unconfirmed: None,
        shutdown: shutdown.clone(),
        _guard: guard,
    };
    // A read counts against its source's unconfirmed bounds until the client ACKs; over a
    // bound it waits in the queue like a request over max_sessions, and no ERROR is sent
    // (the source may be forged).
    job.unconfirmed = match direction {
        Direction::Read => UnconfirmedSlot::try_acquire(shared, peer.ip()),
        Direction::Write => None,
    };
    let held = direction == Direction::Read && job.unconfirmed.is_none();
    if !held && let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() {
        shared.transfers.spawn(job.run(permit));
        return;
    }
    let limit = shared.limit.load(Ordering::Relaxed);
    let queued = shared.queued.load(Ordering::Relaxed);
    if queued >= limit.saturating_mul(QUEUE_FACTOR) {
        if shared.tally.dropped_queue_full.note() {
            warn!(peer = %peer, file = %file, queued, "the request queue is full: request dropped, the client will retry (further drops in this period are counted in the admission summary)");
        } else {
            debug!(peer = %peer, file = %file, queued, "the request queue is full: request dropped");
        }
        return;
    }
    shared.queued.fetch_add(1, Ordering::Relaxed);
    if held {
        if shared.tally.held_by_unconfirmed_bound.note() {
            info!(peer = %peer, file = %file, "unconfirmed transfers from this source at their bound (tftp.unconfirmed_per_address / _per_prefix): request queued (further ones in this period are counted in the admission summary)");
        } else {
            debug!(peer = %peer, file = %file, "unconfirmed bound reached: request queued");
        }
    } else if shared.tally.queued_for_session.note() {
        info!(peer = %peer, file = %file, max_sessions = limit, "max_sessions reached: request queued (further ones in this period are counted in the admission summary)");
    } else {
        debug!(peer = %peer, file = %file, max_sessions = limit, "max_sessions reached: request queued");
    }
    let queue_timeout = config.queue_timeout;
    let shared = Arc::clone(shared);
    shared.clone().transfers.spawn(async move {
        let mut job = job;
        let shutdown = job.shutdown.clone();
        let waited = tokio::select! {
            _ = shutdown.cancelled() => None,
            permit = tokio::time::timeout(queue_timeout, job.wait_for_slots()) => Some(permit),
        };
        shared.queued.fetch_sub(1, Ordering::Relaxed);
        match waited {
            Some(Ok(Ok(permit))) => job.run(permit).await,
            Some(Err(_elapsed)) if job.direction == Direction::Read && job.unconfirmed.is_none() => {
                // Still over its unconfirmed bound: the source may be forged, so no ERROR; a
                // real client repeats its request.
                if shared.tally.expired_in_queue.note() {
                    info!(peer = %job.peer, file = %request_name(&job.datagram), waited_ms = queue_timeout.as_millis() as u64, "no unconfirmed slot freed in time: request dropped (further ones in this period are counted in the admission summary)");
                } else {
                    debug!(peer = %job.peer, waited_ms = queue_timeout.as_millis() as u64, "no unconfirmed slot freed in time: request dropped");
                }
            }
            Some(Err(_elapsed)) => {
                shared.tally.expired_in_queue.note();
                warn!(peer = %job.peer, file = %request_name(&job.datagram), waited_ms = queue_timeout.as_millis() as u64, "no transfer slot freed in time: request refused");
                job.refuse(ErrorCode::NotDefined, "server busy, try again").await;
            }
            _ => {}
        }
    });
}

impl Job {
    /// Waits for what a queued request lacks: a place within its source's unconfirmed bounds
    /// (reads), then a session slot.
    async fn wait_for_slots(&mut self) -> Result<OwnedSemaphorePermit, tokio::sync::AcquireError> {
        if self.direction == Direction::Read && self.unconfirmed.is_none() {
            self.unconfirmed = Some(UnconfirmedSlot::acquire(&self.shared, self.peer.ip()).await);
        }
        Arc::clone(&self.shared.permits).acquire_owned().await
    }
}
