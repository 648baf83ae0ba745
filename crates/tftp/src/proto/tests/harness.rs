//! A deterministic harness: a server transfer and a simulated client on a virtual clock, with
//! the datagrams between them in a queue that tests can drop, duplicate, delay and reorder
//! (quinn-proto's `tests/util.rs` `Pair` idea).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::proto::{
    BlockSource, Negotiated, Outcome, ReadTransfer, Settings, Transmit, WriteTransfer,
    negotiate_read, negotiate_write,
};
use crate::wire::{self, ErrorCode, Mode, Packet, Request, RequestOption};

/// The transfer's own socket.
pub(super) const SERVER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000);
/// The peer.
pub(super) const CLIENT: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 50000);
/// Same host as the peer, another port: a different transfer ID.
pub(super) const STRANGER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 50001);

/// The virtual clock's origin. This is the only clock read in the proto tests: an `Instant` can
/// only be made by reading the clock, and everything after it is `origin + Duration`.
#[allow(
    clippy::disallowed_methods,
    reason = "the test harness needs one Instant to start its virtual clock from"
)]
pub(super) fn origin() -> Instant {
    Instant::now()
}

/// Server settings for tests: generous limits, a 1 s timeout, 5 retries.
pub(super) fn settings() -> Settings {
    Settings {
        max_blksize: wire::MAX_BLKSIZE,
        max_windowsize: 64,
        receive_buffer_budget: crate::proto::DEFAULT_RECEIVE_BUFFER_BUDGET,
        default_timeout: Duration::from_secs(1),
        max_retries: 5,
        max_upload_size: 1 << 30,
    }
}

/// A request for `file` with these options.
pub(super) fn request<'a>(mode: Mode, options: &[(&'a str, &'a str)]) -> Request<'a> {
    Request {
        filename: b"file",
        mode,
        options: options
            .iter()
            .map(|&(name, value)| RequestOption { name, value })
            .collect(),
    }
}

/// A plain RFC 1350 negotiation result (no OACK) with this blksize and windowsize.
pub(super) fn plain(blksize: u16, windowsize: u16) -> Negotiated {
    Negotiated {
        blksize,
        windowsize,
        timeout: Duration::from_secs(1),
        tsize: None,
        oack: None,
        max_retries: 5,
    }
}

/// A file of `len` bytes whose content is not periodic in any block size.
pub(super) fn file(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

pub(super) fn ack(block: u16) -> Vec<u8> {
    emit(&Packet::Ack { block })
}

pub(super) fn data(block: u16, payload: &[u8]) -> Vec<u8> {
    emit(&Packet::Data {
        block,
        data: payload,
    })
}

pub(super) fn error(code: u16, message: &str) -> Vec<u8> {
    emit(&Packet::Error {
        code,
        message: message.as_bytes(),
    })
}

pub(super) fn emit(packet: &Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0; packet.buffer_len()];
    let len = packet.emit(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// A datagram, summarized for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pkt {
    Rrq,
    Wrq,
    Data { block: u16, len: usize },
    Ack(u16),
    Oack(Vec<(String, String)>),
    Error { code: u16, message: String },
    Garbage,
}

pub(super) fn summarize(bytes: &[u8]) -> Pkt {
    match Packet::parse(bytes) {
        Ok(Packet::Rrq(_)) => Pkt::Rrq,
        Ok(Packet::Wrq(_)) => Pkt::Wrq,
        Ok(Packet::Data { block, data }) => Pkt::Data {
            block,
            len: data.len(),
        },
        Ok(Packet::Ack { block }) => Pkt::Ack(block),
        Ok(Packet::Oack { options }) => Pkt::Oack(
            options
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        ),
        Ok(Packet::Error { code, message }) => Pkt::Error {
            code,
            message: String::from_utf8_lossy(message).into_owned(),
        },
        Err(_) => Pkt::Garbage,
    }
}

/// The whole datagram a transmit describes: its head in `buf`, then the lent tail.
pub(super) fn datagram(buf: &[u8], transmit: &Transmit<'_>) -> Vec<u8> {
    let mut bytes = buf[..transmit.len].to_vec();
    bytes.extend_from_slice(transmit.tail);
    bytes
}

/// Everything a read transfer sends right now, summarized.
pub(super) fn drain_read(
    transfer: &mut ReadTransfer,
    now: Instant,
    source: &dyn BlockSource,
) -> Vec<(SocketAddr, Pkt)> {
    let mut buf = vec![0_u8; wire::MAX_PACKET];
    let mut out = Vec::new();
    while let Some(transmit) = transfer.poll_transmit(now, source, &mut buf) {
        out.push((transmit.to, summarize(&datagram(&buf, &transmit))));
        assert!(out.len() < 1_000_000, "poll_transmit never returns None");
    }
    out
}

/// Everything a write transfer sends right now, summarized.
pub(super) fn drain_write(transfer: &mut WriteTransfer, now: Instant) -> Vec<(SocketAddr, Pkt)> {
    let mut buf = vec![0_u8; wire::MAX_PACKET];
    let mut out = Vec::new();
    while let Some(transmit) = transfer.poll_transmit(now, &mut buf) {
        out.push((transmit.to, summarize(&datagram(&buf, &transmit))));
        assert!(out.len() < 1_000_000, "poll_transmit never returns None");
    }
    out
}

/// The packets only, for transmits that all go to the peer.
pub(super) fn to_client(transmits: Vec<(SocketAddr, Pkt)>) -> Vec<Pkt> {
    transmits
        .into_iter()
        .map(|(to, pkt)| {
            assert_eq!(to, CLIENT, "{pkt:?} sent to {to}");
            pkt
        })
        .collect()
}

/// Which way a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    ToClient,
    ToServer,
}

/// One datagram as it was sent, with what the fault injector did to it.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    /// Time since the origin.
    pub(super) at: Duration,
    pub(super) dir: Dir,
    /// Index among the datagrams sent in this direction, from 0.
    pub(super) index: usize,
    pub(super) pkt: Pkt,
    pub(super) fate: Fate,
}

/// What the network does to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// Delivered this much later than usual (reordering).
    Delay(Duration),
}

pub(super) type Fault = Box<dyn FnMut(&Sent) -> Fate>;

/// Drops the `n`th datagram (from 0) of `dir`.
pub(super) fn drop_nth(dir: Dir, n: usize) -> Fault {
    Box::new(move |sent| {
        if sent.dir == dir && sent.index == n {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    })
}

/// Applies `fate` to the first datagram of `dir` that matches `pkt`.
pub(super) fn first_matching(dir: Dir, pkt: Pkt, fate: Fate) -> Fault {
    let mut done = false;
    Box::new(move |sent| {
        if !done && sent.dir == dir && sent.pkt == pkt {
            done = true;
            fate
        } else {
            Fate::Deliver
        }
    })
}

/// Drops every datagram (both directions) with probability `per_mille / 1000`, from a seeded
/// generator.
pub(super) fn random_drop(seed: u64, per_mille: u64) -> Fault {
    let mut rng = SplitMix(seed);
    Box::new(move |_| {
        if rng.next() % 1000 < per_mille {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    })
}

/// A tiny deterministic random generator (SplitMix64).
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The server side of a pair.
pub(super) enum Server {
    Read {
        transfer: ReadTransfer,
        source: Vec<u8>,
    },
    Write {
        transfer: WriteTransfer,
        sink: Vec<u8>,
        /// Commit as soon as the transfer asks (else the test calls `handle_committed`).
        auto_commit: bool,
    },
}

impl Server {
    pub(super) fn outcome(&self) -> Option<&Outcome> {
        match self {
            Server::Read { transfer, .. } => transfer.outcome(),
            Server::Write { transfer, .. } => transfer.outcome(),
        }
    }

    pub(super) fn stats(&self) -> &crate::proto::Stats {
        match self {
            Server::Read { transfer, .. } => transfer.stats(),
            Server::Write { transfer, .. } => transfer.stats(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Server::Read { transfer, .. } => transfer.poll_timeout(),
            Server::Write { transfer, .. } => transfer.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Server::Read { transfer, .. } => transfer.handle_timeout(now),
            Server::Write { transfer, .. } => transfer.handle_timeout(now),
        }
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match self {
            // The shell routes a repeat of the request from the peer's address and port to
            // the running transfer; this pair delivers the client's RRQ there too.
            Server::Read { transfer, .. } if from == CLIENT && summarize(bytes) == Pkt::Rrq => {
                transfer.handle_repeated_request(now);
            }
            Server::Read { transfer, .. } => transfer.handle_datagram(now, from, bytes),
            Server::Write { transfer, sink, .. } => {
                transfer.handle_datagram(now, from, bytes, sink);
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit<'_>> {
        match self {
            Server::Read { transfer, source } => transfer.poll_transmit(now, source, buf),
            Server::Write { transfer, .. } => transfer.poll_transmit(now, buf),
        }
    }
}

/// A simulated downloading client (the receiver of a read).
#[derive(Debug)]
pub(super) struct SimReader {
    pub(super) blksize: u16,
    pub(super) windowsize: u16,
    pub(super) timeout: Duration,
    pub(super) max_timeouts: u32,
    /// ACK the last in-order block at once when a block arrives out of order (once per gap).
    /// false models atftp 0.8, which ACKs only after a full window or on its own timeout.
    pub(super) gap_ack: bool,
    /// Repeat the RRQ on a timeout before the first DATA or OACK arrived, as RFC 1350
    /// clients, PXE ROMs, tftp-hpa, curl and atftp do. false models a client that does not.
    pub(super) repeats_request: bool,
    /// RRQs sent, the first one included.
    pub(super) requests_sent: u32,
    pub(super) received: u64,
    pub(super) data: Vec<u8>,
    pub(super) oacks: Vec<Vec<(String, String)>>,
    pub(super) done: bool,
    pub(super) error: Option<(u16, String)>,
    pub(super) gave_up: bool,
    started: bool,
    unacked: u64,
    gap_acked: bool,
    deadline: Option<Instant>,
    timeouts: u32,
    pending: VecDeque<Vec<u8>>,
}

impl SimReader {
    pub(super) fn new() -> Self {
        SimReader {
            blksize: wire::DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout: Duration::from_secs(1),
            max_timeouts: 5,
            gap_ack: true,
            repeats_request: true,
            requests_sent: 1,
            received: 0,
            data: Vec::new(),
            oacks: Vec::new(),
            done: false,
            error: None,
            gave_up: false,
            started: false,
            unacked: 0,
            gap_acked: false,
            deadline: None,
            timeouts: 0,
            pending: VecDeque::new(),
        }
    }

    fn queue_ack(&mut self, now: Instant) {
        self.pending.push_back(ack((self.received & 0xffff) as u16));
        self.unacked = 0;
        self.deadline = Some(now + self.timeout);
    }

    fn handle(&mut self, now: Instant, bytes: &[u8]) {
        match Packet::parse(bytes) {
            Ok(Packet::Oack { options }) if self.received == 0 => {
                for (name, value) in &options {
                    if name.eq_ignore_ascii_case("blksize") {
                        self.blksize = value.parse().unwrap();
                    }
                    if name.eq_ignore_ascii_case("windowsize") {
                        self.windowsize = value.parse().unwrap();
                    }
                }
                self.oacks.push(
                    options
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .collect(),
                );
                self.started = true;
                self.queue_ack(now);
            }
            Ok(Packet::Data { block, data }) => {
                self.started = true;
                let ahead = block.wrapping_sub((self.received & 0xffff) as u16);
                if self.done {
                    if ahead == 0 {
                        // Dallying: the server lost our final ACK.
                        self.pending.push_back(ack(block));
                    }
                    return;
                }
                if ahead == 1 {
                    self.received += 1;
                    self.unacked += 1;
                    self.gap_acked = false;
                    self.timeouts = 0;
                    self.data.extend_from_slice(data);
                    self.deadline = Some(now + self.timeout);
                    if data.len() < usize::from(self.blksize) {
                        self.done = true;
                        self.deadline = None;
                        self.pending.push_back(ack(block));
                    } else if self.unacked >= u64::from(self.windowsize) {
                        self.queue_ack(now);
                    }
                } else if ahead == 0 || ahead >= 0x8000 {
                    // A duplicate: lock-step clients re-ACK it, windowed ones wait.
                    if self.windowsize == 1 {
                        self.queue_ack(now);
                    }
                } else if self.gap_ack && !self.gap_acked {
                    self.gap_acked = true;
                    self.queue_ack(now);
                }
            }
            Ok(Packet::Error { code, message }) => {
                self.error = Some((code, String::from_utf8_lossy(message).into_owned()));
                self.done = true;
                self.deadline = None;
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline || self.done {
            return;
        }
        self.timeouts += 1;
        if self.timeouts > self.max_timeouts {
            self.gave_up = true;
            self.done = true;
            self.deadline = None;
            return;
        }
        if self.started {
            self.queue_ack(now);
        } else if self.repeats_request {
            self.pending
                .push_back(emit(&Packet::Rrq(request(Mode::Octet, &[]))));
            self.requests_sent += 1;
            self.deadline = Some(now + self.timeout);
        }
    }
}

/// A simulated uploading client (the sender of a write).
#[derive(Debug)]
pub(super) struct SimWriter {
    pub(super) data: Vec<u8>,
    pub(super) blksize: u16,
    pub(super) windowsize: u16,
    pub(super) timeout: Duration,
    pub(super) max_timeouts: u32,
    pub(super) done: bool,
    pub(super) error: Option<(u16, String)>,
    pub(super) gave_up: bool,
    pub(super) blocks_sent: u64,
    started: bool,
    acked: u64,
    next: u64,
    window_end: u64,
    highest_sent: u64,
    last_block: u64,
    deadline: Option<Instant>,
    timeouts: u32,
}

impl SimWriter {
    pub(super) fn new(data: Vec<u8>) -> Self {
        SimWriter {
            data,
            blksize: wire::DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout: Duration::from_secs(1),
            max_timeouts: 5,
            done: false,
            error: None,
            gave_up: false,
            blocks_sent: 0,
            started: false,
            acked: 0,
            next: 1,
            window_end: 0,
            highest_sent: 0,
            last_block: 0,
            deadline: None,
            timeouts: 0,
        }
    }

    fn open_window(&mut self) {
        self.next = self.acked + 1;
        self.window_end = (self.acked + u64::from(self.windowsize)).min(self.last_block);
    }

    fn start(&mut self, now: Instant) {
        self.started = true;
        self.last_block = self.data.len() as u64 / u64::from(self.blksize) + 1;
        self.deadline = Some(now + self.timeout);
        self.open_window();
    }

    fn handle(&mut self, now: Instant, bytes: &[u8]) {
        if self.done {
            return;
        }
        match Packet::parse(bytes) {
            Ok(Packet::Oack { options }) if !self.started => {
                for (name, value) in &options {
                    if name.eq_ignore_ascii_case("blksize") {
                        self.blksize = value.parse().unwrap();
                    }
                    if name.eq_ignore_ascii_case("windowsize") {
                        self.windowsize = value.parse().unwrap();
                    }
                }
                self.start(now);
            }
            Ok(Packet::Ack { block: 0 }) if !self.started => self.start(now),
            Ok(Packet::Ack { block }) if self.started => {
                let ahead = u64::from(block.wrapping_sub((self.acked & 0xffff) as u16));
                if ahead == 0 || ahead > self.highest_sent - self.acked {
                    return;
                }
                self.acked += ahead;
                self.timeouts = 0;
                if self.acked >= self.last_block {
                    self.done = true;
                    self.deadline = None;
                } else {
                    self.open_window();
                }
            }
            Ok(Packet::Error { code, message }) => {
                self.error = Some((code, String::from_utf8_lossy(message).into_owned()));
                self.done = true;
                self.deadline = None;
            }
            _ => {}
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.done || !self.started || self.next > self.window_end {
            return None;
        }
        let block = self.next;
        let start = usize::try_from((block - 1) * u64::from(self.blksize)).unwrap();
        let end = (start + usize::from(self.blksize)).min(self.data.len());
        let bytes = data((block & 0xffff) as u16, &self.data[start..end]);
        self.next += 1;
        self.highest_sent = self.highest_sent.max(block);
        self.blocks_sent += 1;
        self.deadline = Some(now + self.timeout);
        Some(bytes)
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline || self.done {
            return;
        }
        self.timeouts += 1;
        if self.timeouts > self.max_timeouts {
            self.gave_up = true;
            self.done = true;
            self.deadline = None;
            return;
        }
        self.deadline = Some(now + self.timeout);
        self.open_window();
    }
}

/// The client side of a pair.
pub(super) enum Client {
    Reader(SimReader),
    Writer(SimWriter),
}

impl Client {
    fn handle(&mut self, now: Instant, bytes: &[u8]) {
        match self {
            Client::Reader(reader) => reader.handle(now, bytes),
            Client::Writer(writer) => writer.handle(now, bytes),
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        match self {
            Client::Reader(reader) => reader.pending.pop_front(),
            Client::Writer(writer) => writer.poll_transmit(now),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Client::Reader(reader) => reader.deadline,
            Client::Writer(writer) => writer.deadline,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Client::Reader(reader) => reader.handle_timeout(now),
            Client::Writer(writer) => writer.handle_timeout(now),
        }
    }
}

struct InFlight {
    deliver_at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// A server transfer and a simulated client, joined by a faulty network on a virtual clock.
pub(super) struct Pair {
    pub(super) origin: Instant,
    pub(super) now: Instant,
    pub(super) server: Server,
    pub(super) client: Client,
    /// One-way delay of every datagram.
    pub(super) latency: Duration,
    pub(super) fault: Fault,
    /// Every datagram either side sent, in order, with its fate.
    pub(super) log: Vec<Sent>,
    /// Datagrams that reached a third party (a stranger's TID).
    pub(super) stranger_received: Vec<Pkt>,
    in_flight: Vec<InFlight>,
    seq: u64,
    sent_per_dir: [usize; 2],
    buf: Vec<u8>,
}

impl Pair {
    fn new(server: Server, client: Client, origin: Instant) -> Self {
        Pair {
            origin,
            now: origin,
            server,
            client,
            latency: Duration::from_millis(1),
            fault: Box::new(|_| Fate::Deliver),
            log: Vec::new(),
            stranger_received: Vec::new(),
            in_flight: Vec::new(),
            seq: 0,
            sent_per_dir: [0, 0],
            buf: vec![0; wire::MAX_PACKET],
        }
    }

    /// A read of `source` requested with `options` (octet), negotiated with `settings`.
    pub(super) fn read(source: Vec<u8>, options: &[(&str, &str)], settings: &Settings) -> Self {
        let negotiated = negotiate_read(
            &request(Mode::Octet, options),
            settings,
            source.len() as u64,
        );
        Self::read_negotiated(source, &negotiated)
    }

    pub(super) fn read_negotiated(source: Vec<u8>, negotiated: &Negotiated) -> Self {
        let origin = origin();
        let transfer = ReadTransfer::new(CLIENT, negotiated, source.len() as u64, origin);
        let mut reader = SimReader::new();
        reader.timeout = negotiated.timeout;
        // The client's request left at the origin; its timer runs from then.
        reader.deadline = Some(origin + negotiated.timeout);
        Pair::new(
            Server::Read { transfer, source },
            Client::Reader(reader),
            origin,
        )
    }

    /// An upload of `content` requested with `options`, negotiated with `settings`.
    pub(super) fn write(
        content: Vec<u8>,
        options: &[(&str, &str)],
        settings: &Settings,
        netascii: bool,
    ) -> Self {
        let mode = if netascii {
            Mode::Netascii
        } else {
            Mode::Octet
        };
        let negotiated = negotiate_write(&request(mode, options), settings).unwrap();
        let origin = origin();
        let transfer = WriteTransfer::new(
            CLIENT,
            &negotiated,
            settings.max_upload_size,
            netascii,
            origin,
        );
        let mut writer = SimWriter::new(content);
        writer.timeout = negotiated.timeout;
        Pair::new(
            Server::Write {
                transfer,
                sink: Vec::new(),
                auto_commit: true,
            },
            Client::Writer(writer),
            origin,
        )
    }

    pub(super) fn reader(&mut self) -> &mut SimReader {
        match &mut self.client {
            Client::Reader(reader) => reader,
            Client::Writer(_) => panic!("not a read pair"),
        }
    }

    pub(super) fn writer(&mut self) -> &mut SimWriter {
        match &mut self.client {
            Client::Writer(writer) => writer,
            Client::Reader(_) => panic!("not a write pair"),
        }
    }

    pub(super) fn write_transfer(&mut self) -> &mut WriteTransfer {
        match &mut self.server {
            Server::Write { transfer, .. } => transfer,
            Server::Read { .. } => panic!("not a write pair"),
        }
    }

    pub(super) fn sink(&self) -> &[u8] {
        match &self.server {
            Server::Write { sink, .. } => sink,
            Server::Read { .. } => panic!("not a write pair"),
        }
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.origin
    }

    /// Puts a datagram on the wire now, bypassing the fault injector.
    pub(super) fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(InFlight {
            deliver_at: self.now,
            seq: self.seq,
            from,
            to,
            bytes,
        });
    }

    fn send(&mut self, dir: Dir, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let index_slot = match dir {
            Dir::ToClient => 0,
            Dir::ToServer => 1,
        };
        let mut sent = Sent {
            at: self.elapsed(),
            dir,
            index: self.sent_per_dir[index_slot],
            pkt: summarize(&bytes),
            fate: Fate::Deliver,
        };
        self.sent_per_dir[index_slot] += 1;
        sent.fate = (self.fault)(&sent);
        let deliveries = match sent.fate {
            Fate::Deliver => vec![Duration::ZERO],
            Fate::Drop => vec![],
            Fate::Duplicate => vec![Duration::ZERO, Duration::ZERO],
            Fate::Delay(extra) => vec![extra],
        };
        for extra in deliveries {
            self.seq += 1;
            self.in_flight.push(InFlight {
                deliver_at: self.now + self.latency + extra,
                seq: self.seq,
                from,
                to,
                bytes: bytes.clone(),
            });
        }
        self.log.push(sent);
    }

    /// Does everything that can happen at the current time. Returns whether anything did.
    pub(super) fn step(&mut self) -> bool {
        let mut progressed = false;
        while let Some((to, bytes)) = self
            .server
            .poll_transmit(self.now, &mut self.buf)
            .map(|transmit| (transmit.to, datagram(&self.buf, &transmit)))
        {
            self.send(Dir::ToClient, SERVER, to, bytes);
            progressed = true;
        }
        if let Server::Write {
            transfer,
            auto_commit: true,
            ..
        } = &mut self.server
            && transfer.needs_commit()
        {
            transfer.handle_committed(self.now, Ok(()));
            progressed = true;
        }
        while let Some(bytes) = self.client.poll_transmit(self.now) {
            self.send(Dir::ToServer, CLIENT, SERVER, bytes);
            progressed = true;
        }
        self.in_flight
            .sort_by_key(|packet| (packet.deliver_at, packet.seq));
        let due = self
            .in_flight
            .iter()
            .take_while(|packet| packet.deliver_at <= self.now)
            .count();
        let delivered: Vec<InFlight> = self.in_flight.drain(..due).collect();
        for packet in delivered {
            progressed = true;
            if packet.to == CLIENT {
                self.client.handle(self.now, &packet.bytes);
            } else if packet.to == SERVER {
                self.server
                    .handle_datagram(self.now, packet.from, &packet.bytes);
            } else {
                self.stranger_received.push(summarize(&packet.bytes));
            }
        }
        progressed
    }

    /// The next time anything is due, if anything is.
    pub(super) fn next_event(&self) -> Option<Instant> {
        [
            self.server.poll_timeout(),
            self.client.poll_timeout(),
            self.in_flight.iter().map(|packet| packet.deliver_at).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Moves the clock to the next event and fires the timers. Returns false if nothing is due.
    pub(super) fn advance(&mut self) -> bool {
        let Some(next) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(next);
        self.server.handle_timeout(self.now);
        self.client.handle_timeout(self.now);
        true
    }

    /// Runs until the server's transfer is over and the network is quiet (or nothing is left to
    /// happen), and returns its outcome. Panics if the virtual clock passes an hour.
    pub(super) fn drive(&mut self) -> Outcome {
        self.drive_until(|pair| pair.server.outcome().is_some() && pair.in_flight.is_empty())
    }

    /// Runs until `done` holds after a step or nothing is left to happen.
    pub(super) fn drive_until(&mut self, mut done: impl FnMut(&Pair) -> bool) -> Outcome {
        loop {
            while self.step() {}
            if done(self) || !self.advance() {
                break;
            }
            assert!(
                self.elapsed() < Duration::from_secs(3600),
                "virtual clock passed an hour: stuck transfer"
            );
        }
        self.server
            .outcome()
            .cloned()
            .unwrap_or_else(|| panic!("transfer not finished after {:?}", self.elapsed()))
    }

    /// The DATA packets the server sent (whatever their fate).
    pub(super) fn data_sent(&self) -> Vec<u16> {
        self.log
            .iter()
            .filter(|sent| sent.dir == Dir::ToClient)
            .filter_map(|sent| match sent.pkt {
                Pkt::Data { block, .. } => Some(block),
                _ => None,
            })
            .collect()
    }

    /// The datagrams one side sent, summarized.
    pub(super) fn sent(&self, dir: Dir) -> Vec<Pkt> {
        self.log
            .iter()
            .filter(|sent| sent.dir == dir)
            .map(|sent| sent.pkt.clone())
            .collect()
    }
}

/// The expected ERROR 5 reply to a stranger.
pub(super) fn unknown_tid_error() -> Pkt {
    Pkt::Error {
        code: ErrorCode::UnknownTransferId.as_u16(),
        message: "unknown transfer ID".to_owned(),
    }
}

/// A read transfer driven by hand: the test plays the client, one datagram at a time.
pub(super) struct ReadScript {
    pub(super) origin: Instant,
    pub(super) now: Instant,
    pub(super) transfer: ReadTransfer,
    pub(super) source: Vec<u8>,
}

impl ReadScript {
    pub(super) fn new(source: Vec<u8>, negotiated: &Negotiated) -> Self {
        let origin = origin();
        let transfer = ReadTransfer::new(CLIENT, negotiated, source.len() as u64, origin);
        ReadScript {
            origin,
            now: origin,
            transfer,
            source,
        }
    }

    /// Everything the transfer sends now; all of it must go to the peer.
    pub(super) fn poll(&mut self) -> Vec<Pkt> {
        to_client(drain_read(&mut self.transfer, self.now, &self.source))
    }

    /// Everything the transfer sends now, with destinations.
    pub(super) fn poll_to(&mut self) -> Vec<(SocketAddr, Pkt)> {
        drain_read(&mut self.transfer, self.now, &self.source)
    }

    /// Polls, following paced send times, until `count` datagrams are out (or the next
    /// deadline is a retransmission, which this does not fire).
    pub(super) fn poll_paced(&mut self, count: usize) -> Vec<Pkt> {
        let mut out = self.poll();
        while out.len() < count {
            let Some(next) = self.transfer.poll_timeout() else {
                break;
            };
            if next >= self.now + Duration::from_millis(100) {
                break;
            }
            self.now = self.now.max(next);
            out.extend(self.poll());
        }
        out
    }

    pub(super) fn recv(&mut self, bytes: &[u8]) {
        self.transfer.handle_datagram(self.now, CLIENT, bytes);
    }

    pub(super) fn recv_from(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.transfer.handle_datagram(self.now, from, bytes);
    }

    /// Moves the clock to `elapsed` after the origin (never backwards).
    pub(super) fn at(&mut self, elapsed: Duration) {
        self.now = self.now.max(self.origin + elapsed);
    }

    /// Moves the clock to the transfer's deadline and fires it.
    pub(super) fn fire_timeout(&mut self) {
        let deadline = self.transfer.poll_timeout().expect("no deadline");
        self.now = self.now.max(deadline);
        self.transfer.handle_timeout(self.now);
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.origin
    }
}

/// A write transfer driven by hand: the test plays the client.
pub(super) struct WriteScript {
    pub(super) origin: Instant,
    pub(super) now: Instant,
    pub(super) transfer: WriteTransfer,
    pub(super) sink: Vec<u8>,
}

impl WriteScript {
    pub(super) fn new(negotiated: &Negotiated, max_size: u64, netascii: bool) -> Self {
        let origin = origin();
        let transfer = WriteTransfer::new(CLIENT, negotiated, max_size, netascii, origin);
        WriteScript {
            origin,
            now: origin,
            transfer,
            sink: Vec::new(),
        }
    }

    pub(super) fn poll(&mut self) -> Vec<Pkt> {
        to_client(drain_write(&mut self.transfer, self.now))
    }

    pub(super) fn poll_to(&mut self) -> Vec<(SocketAddr, Pkt)> {
        drain_write(&mut self.transfer, self.now)
    }

    pub(super) fn recv(&mut self, bytes: &[u8]) {
        self.transfer
            .handle_datagram(self.now, CLIENT, bytes, &mut self.sink);
    }

    pub(super) fn recv_from(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.transfer
            .handle_datagram(self.now, from, bytes, &mut self.sink);
    }

    pub(super) fn at(&mut self, elapsed: Duration) {
        self.now = self.now.max(self.origin + elapsed);
    }

    pub(super) fn fire_timeout(&mut self) {
        let deadline = self.transfer.poll_timeout().expect("no deadline");
        self.now = self.now.max(deadline);
        self.transfer.handle_timeout(self.now);
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.origin
    }
}
