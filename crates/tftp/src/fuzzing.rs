//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the tests that replay their
//! corpora (`tests/fuzz_corpus.rs`), so that every input the fuzzer keeps is also a regression
//! test in CI. Each function panics only when an invariant breaks.
//!
//! The transfer scripts are byte programs: a request, then operations (a datagram from the
//! peer or from a stranger, time passing, a commit result, an abort). After the script the
//! transfer is driven by timeouts alone and must finish: no input can leave a session stuck.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::{
    DEFAULT_RECEIVE_BUFFER_BUDGET, ReadTransfer, Settings, WriteTransfer, negotiate_read,
    negotiate_write,
};
use crate::wire::{ErrorCode, MAX_PACKET, Packet};

/// Parses arbitrary bytes; whatever parses must emit and parse back to the same packet.
pub fn packet(data: &[u8]) {
    let Ok(parsed) = Packet::parse(data) else {
        return;
    };
    let mut buf = vec![0u8; parsed.buffer_len()];
    let Ok(len) = parsed.emit(&mut buf) else {
        panic!("a parsed packet must emit into buffer_len() bytes: {parsed:?}");
    };
    assert_eq!(
        len,
        buf.len(),
        "emit wrote {len} bytes, buffer_len said {}",
        buf.len()
    );
    match Packet::parse(&buf[..len]) {
        Ok(again) => assert_eq!(again, parsed, "parse(emit(p)) != p"),
        Err(error) => panic!("emitted packet does not parse ({error}): {parsed:?}"),
    }
}

const PEER: ([u8; 4], u16) = ([10, 99, 0, 20], 40_000);
const STRANGER: ([u8; 4], u16) = ([10, 99, 0, 21], 40_001);
const FILE_LEN: usize = 70_000;
/// Upper bound on datagrams drained after one input; a core that keeps producing more is
/// broken (a storm).
const MAX_TRANSMITS_PER_STEP: usize = 70_000;
const MAX_DRIVE_STEPS: usize = 10_000;

fn settings() -> Settings {
    Settings {
        max_blksize: 1468,
        max_windowsize: 16,
        receive_buffer_budget: DEFAULT_RECEIVE_BUFFER_BUDGET,
        default_timeout: Duration::from_secs(1),
        max_retries: 3,
        max_upload_size: 50_000,
    }
}

/// A read transfer driven by a byte script (see the module doc).
pub fn read(data: &[u8]) {
    let (request_bytes, script) = split_request(data);
    let source: Vec<u8> = (0..FILE_LEN).map(|i| (i % 251) as u8).collect();
    let negotiated = match Packet::parse(request_bytes) {
        Ok(Packet::Rrq(request)) => negotiate_read(&request, &settings(), source.len() as u64),
        _ => negotiate_read(&default_request(), &settings(), source.len() as u64),
    };
    let origin = origin();
    let mut now = origin;
    let mut transfer = ReadTransfer::new(peer(), &negotiated, source.len() as u64, now);
    let mut buf = vec![0u8; MAX_PACKET];
    let drain = |transfer: &mut ReadTransfer, now: Instant, buf: &mut Vec<u8>| {
        for _ in 0..MAX_TRANSMITS_PER_STEP {
            match transfer.poll_transmit(now, &source, buf) {
                Some(transmit) => check_transmit(transmit.to, transmit.datagram_len()),
                None => return,
            }
        }
        panic!("a read transfer kept transmitting after one input");
    };
    drain(&mut transfer, now, &mut buf);
    let mut ops = Ops(script);
    while let Some(op) = ops.next_op() {
        match op {
            // The shell hands a request from the peer's address and port to the transfer as
            // a repeat.
            Op::Datagram(from, bytes)
                if from == peer() && matches!(Packet::parse(bytes), Ok(Packet::Rrq(_))) =>
            {
                transfer.handle_repeated_request(now);
            }
            Op::Datagram(from, bytes) => transfer.handle_datagram(now, from, bytes),
            Op::Advance(by) => {
                now += by;
                transfer.handle_timeout(now);
            }
            Op::Deadline => {
                if let Some(deadline) = transfer.poll_timeout() {
                    now = now.max(deadline);
                    transfer.handle_timeout(now);
                }
            }
            Op::Commit(_) => {}
            Op::Abort => transfer.abort(ErrorCode::NotDefined, "fuzz abort"),
        }
        drain(&mut transfer, now, &mut buf);
    }
    let last_input = now;
    for _ in 0..MAX_DRIVE_STEPS {
        if transfer.outcome().is_some() {
            break;
        }
        let Some(deadline) = transfer.poll_timeout() else {
            panic!("an unfinished read has no deadline: it would wait forever");
        };
        now = now.max(deadline);
        transfer.handle_timeout(now);
        drain(&mut transfer, now, &mut buf);
    }
    assert!(
        transfer.outcome().is_some(),
        "the read never finished on timeouts alone"
    );
    let bound = idle_bound(&negotiated.timeout, negotiated.max_retries);
    assert!(
        now - last_input <= bound,
        "the read took {:?} to give up (bound {bound:?})",
        now - last_input
    );
}

/// A write transfer driven by a byte script (see the module doc).
pub fn write(data: &[u8]) {
    let (request_bytes, script) = split_request(data);
    let (negotiated, netascii) = match Packet::parse(request_bytes) {
        Ok(Packet::Wrq(request)) => match negotiate_write(&request, &settings()) {
            Ok(negotiated) => (negotiated, request.mode == crate::wire::Mode::Netascii),
            Err(_) => return,
        },
        _ => match negotiate_write(&default_request(), &settings()) {
            Ok(negotiated) => (negotiated, false),
            Err(error) => panic!("the default request must be accepted: {error}"),
        },
    };
    let max_size = settings().max_upload_size;
    let mut now = origin();
    let mut transfer = WriteTransfer::new(peer(), &negotiated, max_size, netascii, now);
    let mut sink: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; MAX_PACKET];
    let drain = |transfer: &mut WriteTransfer, now: Instant, buf: &mut Vec<u8>| {
        for _ in 0..MAX_TRANSMITS_PER_STEP {
            match transfer.poll_transmit(now, buf) {
                Some(transmit) => check_transmit(transmit.to, transmit.datagram_len()),
                None => return,
            }
        }
        panic!("a write transfer kept transmitting after one input");
    };
    drain(&mut transfer, now, &mut buf);
    let mut ops = Ops(script);
    while let Some(op) = ops.next_op() {
        match op {
            Op::Datagram(from, bytes) => transfer.handle_datagram(now, from, bytes, &mut sink),
            Op::Advance(by) => {
                now += by;
                transfer.handle_timeout(now);
            }
            Op::Deadline => {
                if let Some(deadline) = transfer.poll_timeout() {
                    now = now.max(deadline);
                    transfer.handle_timeout(now);
                }
            }
            Op::Commit(ok) => {
                if transfer.needs_commit() {
                    let result = if ok {
                        Ok(())
                    } else {
                        Err((ErrorCode::DiskFull, "full".into()))
                    };
                    transfer.handle_committed(now, result);
                }
            }
            Op::Abort => transfer.abort(ErrorCode::NotDefined, "fuzz abort"),
        }
        assert!(
            sink.len() as u64 <= max_size,
            "an upload grew past max_size"
        );
        drain(&mut transfer, now, &mut buf);
    }
    let last_input = now;
    for _ in 0..MAX_DRIVE_STEPS {
        if transfer.outcome().is_some() {
            break;
        }
        if transfer.needs_commit() {
            // The shell always answers a commit request; a core waiting for one is not stuck.
            transfer.handle_committed(now, Ok(()));
            drain(&mut transfer, now, &mut buf);
            continue;
        }
        let Some(deadline) = transfer.poll_timeout() else {
            panic!("an unfinished upload has no deadline: it would wait forever");
        };
        now = now.max(deadline);
        transfer.handle_timeout(now);
        drain(&mut transfer, now, &mut buf);
    }
    assert!(
        transfer.outcome().is_some(),
        "the upload never finished on timeouts alone"
    );
    // A committed upload dallies for two timeouts after its final ACK.
    let bound = idle_bound(&negotiated.timeout, negotiated.max_retries) + 2 * negotiated.timeout;
    assert!(
        now - last_input <= bound,
        "the upload took {:?} to give up (bound {bound:?})",
        now - last_input
    );
}

fn idle_bound(timeout: &Duration, max_retries: u32) -> Duration {
    *timeout * (max_retries + 2) + *timeout / 4
}

fn peer() -> SocketAddr {
    SocketAddr::from(PEER)
}

fn check_transmit(to: SocketAddr, len: usize) {
    assert!(len <= MAX_PACKET, "datagram of {len} bytes");
    assert!(
        to == SocketAddr::from(PEER) || to == SocketAddr::from(STRANGER),
        "a datagram to {to}, who never sent anything"
    );
}

#[allow(
    clippy::disallowed_methods,
    reason = "the fuzz harness needs one Instant to start from"
)]
fn origin() -> Instant {
    Instant::now()
}

fn default_request() -> crate::wire::Request<'static> {
    crate::wire::Request {
        filename: b"boot.img",
        mode: crate::wire::Mode::Octet,
        options: vec![
            crate::wire::RequestOption {
                name: "blksize",
                value: "512",
            },
            crate::wire::RequestOption {
                name: "windowsize",
                value: "4",
            },
        ],
    }
}

fn split_request(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return (&[], &[]);
    };
    let len = usize::from(len).min(rest.len());
    rest.split_at(len)
}

enum Op<'a> {
    Datagram(SocketAddr, &'a [u8]),
    Advance(Duration),
    Deadline,
    Commit(bool),
    Abort,
}

struct Ops<'a>(&'a [u8]);

impl<'a> Ops<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).first().copied()
    }

    fn next_op(&mut self) -> Option<Op<'a>> {
        let op = self.byte()?;
        Some(match op % 8 {
            0..=3 => {
                let len = usize::from(self.byte().unwrap_or(0)) * 4;
                Op::Datagram(peer(), self.take(len))
            }
            4 => {
                let len = usize::from(self.byte().unwrap_or(0));
                Op::Datagram(SocketAddr::from(STRANGER), self.take(len))
            }
            5 => Op::Advance(Duration::from_millis(
                u64::from(self.byte().unwrap_or(0)) * 10,
            )),
            6 => Op::Deadline,
            _ => match op / 8 % 4 {
                0 => Op::Abort,
                1 => Op::Commit(false),
                _ => Op::Commit(true),
            },
        })
    }
}
