//! The transfer driver: one task per admitted request. It resolves the name through the boot
//! tree (or creates the upload), then runs the sans-IO core: drain `poll_transmit`, wait for a
//! datagram, the core's deadline or shutdown, feed it to the core, until the core has an
//! outcome.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use kindling_files::{BootFile, Contents, Inbox, Lookup, Upload, WritePolicy};
use kindling_udp::{UdpEndpoint, interface_mtu};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::admission::{SessionGuard, UnconfirmedSlot, allowed};
use super::report::{self, Report, describe, printable};
use super::transport::{Transport, access_code, client_message, send_access_error, send_error};
use super::{Active, Direction, Shared, now};
use crate::netascii;
use crate::proto::{
    BlockSource, DEFAULT_RECEIVE_BUFFER_BUDGET, Outcome, ReadTransfer, Settings, UploadSink,
    WriteTransfer, negotiate_read, negotiate_write,
};
use crate::segments::Segments;
use crate::wire::{self, ErrorCode, MAX_BLKSIZE, MAX_PACKET, Mode, Packet, Request};

/// Netascii files are converted in memory; larger ones are refused rather than buffered.
const MAX_NETASCII_FILE: u64 = 64 * 1024 * 1024;

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

/// One admitted request and everything its transfer needs.
pub(super) struct Job {
    pub(super) shared: Arc<Shared>,
    pub(super) active: Arc<Active>,
    pub(super) direction: Direction,
    pub(super) datagram: Vec<u8>,
    pub(super) peer: SocketAddr,
    pub(super) local_ip: IpAddr,
    pub(super) ifindex: Option<u32>,
    pub(super) listener: Arc<UdpEndpoint>,
    pub(super) inbox: Option<mpsc::Receiver<Vec<u8>>>,
    /// Reads: signalled when the same request arrives again.
    pub(super) repeats: Option<mpsc::Receiver<()>>,
    /// Reads: this transfer's place within its source's unconfirmed bounds, held until the
    /// client acknowledges something.
    pub(super) unconfirmed: Option<UnconfirmedSlot>,
    pub(super) shutdown: CancellationToken,
    pub(super) _guard: SessionGuard,
}

impl Job {
    pub(super) async fn run(mut self, permit: OwnedSemaphorePermit) {
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
        report::log(
            &self.shared.tally,
            self.peer,
            self.direction,
            &report,
            started,
        );
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
    pub(super) async fn refuse(&self, code: ErrorCode, message: &str) {
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
