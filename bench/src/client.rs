//! One TFTP download, as a blocking RFC 7440 receiver on its own UDP socket.
//!
//! The receiver ACKs after a full window, at the last block, or on its own timeout (the last
//! in-order block); on an out-of-order or duplicate block it ACKs the last in-order block once,
//! until the expected block arrives (so a burst of out-of-order blocks costs one ACK, not one
//! each). Block numbers roll over from 65535 to 0.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};

use crate::codec::{self, Order, Packet, Settings};

/// What one client is asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    pub server: SocketAddr,
    pub file: String,
    /// `None`: the option is not sent.
    pub blksize: Option<u16>,
    pub windowsize: Option<u16>,
    pub timeout: Duration,
    /// Consecutive timeouts tolerated before the transfer fails.
    pub retries: u32,
    pub hash: bool,
    /// SO_RCVBUF to ask for (the kernel caps it at net.core.rmem_max, then doubles it).
    pub rcvbuf: usize,
}

/// What one client saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub bytes: u64,
    pub blocks: u64,
    pub seconds: f64,
    pub granted: Option<Settings>,
    pub sha256: Option<[u8; 32]>,
    /// Receive timeouts (each one sent an ACK or re-sent the RRQ).
    pub timeouts: u64,
    /// Blocks received again (server retransmissions).
    pub duplicates: u64,
    /// Blocks received ahead of the expected one (a gap: loss or reordering).
    pub out_of_order: u64,
    /// ACKs sent for something other than a full window or the last block.
    pub extra_acks: u64,
    pub rcvbuf: usize,
    pub error: Option<String>,
}

/// Buffers a client keeps across its whole transfer (and across transfers).
pub struct Buffers {
    packet: Vec<u8>,
    rrq: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            // Largest datagram a server may send us: 4-byte header + 65464 (and some slack to
            // notice an oversized one).
            packet: vec![0; 65536],
            rrq: Vec::with_capacity(512),
        }
    }
}

fn socket_for(request: &Request) -> io::Result<(UdpSocket, usize)> {
    let domain = Domain::for_address(request.server);
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a bigger buffer keeps a 64 x 64 KiB window from overflowing the client.
    // 0 leaves the system default (net.core.rmem_default), like most real clients.
    if request.rcvbuf > 0 {
        let _ = socket.set_recv_buffer_size(request.rcvbuf);
    }
    let rcvbuf = socket.recv_buffer_size().unwrap_or(0);
    let local = SocketAddr::new(
        if request.server.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        },
        0,
    );
    socket.bind(&local.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(request.timeout))?;
    Ok((socket, rcvbuf))
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Runs one download. Never panics on packet data; every failure ends up in `Outcome::error`.
pub fn download(request: &Request, buffers: &mut Buffers, started: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let mut hasher = request.hash.then(Sha256::new);
    if let Err(error) = run(request, buffers, &mut outcome, hasher.as_mut()) {
        outcome.error = Some(error);
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    if outcome.error.is_none() {
        outcome.sha256 = hasher.map(|h| h.finalize().into());
    }
    outcome
}

fn run(
    request: &Request,
    buffers: &mut Buffers,
    outcome: &mut Outcome,
    mut hasher: Option<&mut Sha256>,
) -> Result<(), String> {
    let (socket, rcvbuf) = socket_for(request).map_err(|e| format!("socket: {e}"))?;
    outcome.rcvbuf = rcvbuf;
    let mut options: [(&str, u64); 2] = [("", 0); 2];
    let mut n_options = 0;
    if let Some(blksize) = request.blksize {
        options[n_options] = ("blksize", u64::from(blksize));
        n_options += 1;
    }
    if let Some(windowsize) = request.windowsize {
        options[n_options] = ("windowsize", u64::from(windowsize));
        n_options += 1;
    }
    codec::build_rrq(&mut buffers.rrq, &request.file, &options[..n_options]);
    let send_rrq = |socket: &UdpSocket, rrq: &[u8]| {
        socket
            .send_to(rrq, request.server)
            .map(drop)
            .map_err(|e| format!("sending RRQ: {e}"))
    };
    send_rrq(&socket, &buffers.rrq)?;

    // Negotiation: wait for OACK, DATA 1 or ERROR from the server's address (any port: the
    // server answers from its transfer TID).
    let mut consecutive_timeouts = 0u32;
    let settings;
    let first_data_len;
    loop {
        let (len, from) = match socket.recv_from(&mut buffers.packet) {
            Ok(got) => got,
            Err(e) if is_timeout(&e) => {
                outcome.timeouts += 1;
                consecutive_timeouts += 1;
                if consecutive_timeouts > request.retries {
                    return Err(format!(
                        "no answer to the RRQ after {} tries",
                        consecutive_timeouts
                    ));
                }
                send_rrq(&socket, &buffers.rrq)?;
                continue;
            }
            Err(e) => return Err(format!("receiving: {e}")),
        };
        if from.ip() != request.server.ip() {
            continue;
        }
        match codec::parse(&buffers.packet[..len]) {
            Ok(Packet::Oack { options }) => {
                let granted = codec::parse_oack(options, request.blksize, request.windowsize)
                    .map_err(|e| {
                        // RFC 2347: refuse the OACK with ERROR 8.
                        let _ = socket.send_to(b"\x00\x05\x00\x08bad OACK\x00", from);
                        e.to_string()
                    })?;
                socket
                    .connect(from)
                    .map_err(|e| format!("connect to TID: {e}"))?;
                socket
                    .send(&codec::ack(0))
                    .map_err(|e| format!("sending ACK: {e}"))?;
                settings = granted;
                first_data_len = None;
                break;
            }
            Ok(Packet::Data { block: 1, payload }) => {
                // No OACK: every option declined (RFC 2347), plain RFC 1350.
                socket
                    .connect(from)
                    .map_err(|e| format!("connect to TID: {e}"))?;
                settings = Settings::PLAIN;
                first_data_len = Some(payload.len());
                break;
            }
            Ok(Packet::Error { code, message }) => {
                return Err(format!(
                    "server error {code}: {}",
                    String::from_utf8_lossy(message)
                ));
            }
            Ok(other) => return Err(format!("unexpected answer to RRQ: {other:?}")),
            Err(e) => return Err(format!("bad answer to RRQ: {e}")),
        }
    }
    outcome.granted = Some(settings);
    let blksize = usize::from(settings.blksize);
    let window = u64::from(settings.windowsize);

    let mut expected: u16 = 1;
    let mut since_ack: u64 = 0;
    // Set once we have re-ACKed the last in-order block for a gap or a duplicate; cleared by
    // the next in-order block.
    let mut nak_sent = false;
    consecutive_timeouts = 0;
    let mut pending_len = first_data_len;
    loop {
        let len = match pending_len.take() {
            // DATA 1 already sitting in the buffer from the negotiation loop.
            Some(payload_len) => payload_len + 4,
            None => match socket.recv(&mut buffers.packet) {
                Ok(len) => len,
                Err(e) if is_timeout(&e) => {
                    outcome.timeouts += 1;
                    consecutive_timeouts += 1;
                    if consecutive_timeouts > request.retries {
                        return Err(format!(
                            "timed out waiting for block {expected} ({} bytes received)",
                            outcome.bytes
                        ));
                    }
                    outcome.extra_acks += 1;
                    since_ack = 0;
                    socket
                        .send(&codec::ack(expected.wrapping_sub(1)))
                        .map_err(|e| format!("sending ACK: {e}"))?;
                    continue;
                }
                // ICMP port unreachable after connect(): the transfer socket is gone.
                Err(e) => return Err(format!("receiving: {e}")),
            },
        };
        match codec::parse(&buffers.packet[..len]) {
            Ok(Packet::Data { block, payload }) => {
                if payload.len() > blksize {
                    return Err(format!(
                        "block {block} carries {} bytes, blksize is {blksize}",
                        payload.len()
                    ));
                }
                match codec::order(block, expected) {
                    Order::InOrder => {
                        consecutive_timeouts = 0;
                        nak_sent = false;
                        outcome.bytes += payload.len() as u64;
                        outcome.blocks += 1;
                        if let Some(h) = hasher.as_deref_mut() {
                            h.update(payload);
                        }
                        expected = expected.wrapping_add(1);
                        since_ack += 1;
                        let last = payload.len() < blksize;
                        if last || since_ack >= window {
                            socket
                                .send(&codec::ack(block))
                                .map_err(|e| format!("sending ACK: {e}"))?;
                            since_ack = 0;
                        }
                        if last {
                            return Ok(());
                        }
                    }
                    gap_or_duplicate => {
                        if matches!(gap_or_duplicate, Order::Ahead(_)) {
                            outcome.out_of_order += 1;
                        } else {
                            outcome.duplicates += 1;
                        }
                        if !nak_sent {
                            nak_sent = true;
                            since_ack = 0;
                            outcome.extra_acks += 1;
                            socket
                                .send(&codec::ack(expected.wrapping_sub(1)))
                                .map_err(|e| format!("sending ACK: {e}"))?;
                        }
                    }
                }
            }
            Ok(Packet::Oack { .. }) if outcome.blocks == 0 => {
                // Our ACK 0 was lost or late: the server re-sent its OACK.
                outcome.duplicates += 1;
                if !nak_sent {
                    nak_sent = true;
                    outcome.extra_acks += 1;
                    socket
                        .send(&codec::ack(0))
                        .map_err(|e| format!("sending ACK: {e}"))?;
                }
            }
            Ok(Packet::Error { code, message }) => {
                return Err(format!(
                    "server error {code} after {} bytes: {}",
                    outcome.bytes,
                    String::from_utf8_lossy(message)
                ));
            }
            Ok(other) => {
                return Err(format!(
                    "unexpected packet after {} bytes: {other:?}",
                    outcome.bytes
                ));
            }
            Err(e) => return Err(format!("bad packet after {} bytes: {e}", outcome.bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::thread;

    /// A windowed RFC 7440 sender that drops the first transmission of some blocks (numbered
    /// from 1 over the whole file, so past 65535 the wire number rolls over).
    fn fake_server(
        data: Vec<u8>,
        blksize: usize,
        windowsize: u64,
        mut drop: HashSet<u64>,
    ) -> (SocketAddr, thread::JoinHandle<Result<u64, String>>) {
        let listen = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string());
        let listen = match listen {
            Ok(s) => s,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listen.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("local_addr: {e}"),
        };
        let handle = thread::spawn(move || -> Result<u64, String> {
            let e = |e: io::Error| e.to_string();
            let mut buf = vec![0u8; 65536];
            let (_, client) = listen.recv_from(&mut buf).map_err(e)?;
            let tid = UdpSocket::bind("127.0.0.1:0").map_err(e)?;
            tid.connect(client).map_err(e)?;
            tid.set_read_timeout(Some(Duration::from_millis(200)))
                .map_err(e)?;
            let oack = format!("\0\x06blksize\0{blksize}\0windowsize\0{windowsize}\0");
            let total = (data.len() / blksize) as u64 + 1;
            let mut acked: u64 = 0;
            let mut sent_packets = 0u64;
            let mut packet = Vec::with_capacity(blksize + 4);
            tid.send(oack.as_bytes()).map_err(e)?;
            loop {
                match tid.recv(&mut buf) {
                    Ok(4) if buf[1] == 4 => {
                        let wire = u16::from_be_bytes([buf[2], buf[3]]);
                        let ahead = u64::from(wire.wrapping_sub(acked as u16));
                        if ahead > windowsize {
                            continue; // stale
                        }
                        acked += ahead;
                        if acked == total {
                            return Ok(sent_packets);
                        }
                    }
                    Ok(_) => return Err("not an ACK".into()),
                    Err(err) if is_timeout(&err) => {
                        if acked == 0 {
                            tid.send(oack.as_bytes()).map_err(e)?;
                            continue;
                        }
                    }
                    Err(err) => return Err(err.to_string()),
                }
                for n in acked + 1..=(acked + windowsize).min(total) {
                    if drop.remove(&n) {
                        continue;
                    }
                    let start = (n as usize - 1) * blksize;
                    let end = (start + blksize).min(data.len());
                    packet.clear();
                    packet.extend_from_slice(&[0, 3]);
                    packet.extend_from_slice(&(n as u16).to_be_bytes());
                    packet.extend_from_slice(&data[start..end]);
                    tid.send(&packet).map_err(e)?;
                    sent_packets += 1;
                }
            }
        });
        (addr, handle)
    }

    #[test]
    fn window_with_losses_across_rollover() {
        let blksize = 16;
        // 70000 blocks: block numbers wrap past 65535 to 0.
        let data: Vec<u8> = (0..70_000u32 * 16 - 5).map(|i| (i % 251) as u8).collect();
        // Lose a block inside a window, the blocks numbered 0 and 1 after the wrap, and the last
        // block (a tail loss: only the receiver's timeout recovers it).
        let drop: HashSet<u64> = [5, 65536, 65537, 70_000].into_iter().collect();
        let (addr, server) = fake_server(data.clone(), blksize, 8, drop);
        let request = Request {
            server: addr,
            file: "f".into(),
            blksize: Some(blksize as u16),
            windowsize: Some(8),
            timeout: Duration::from_millis(100),
            retries: 5,
            hash: true,
            rcvbuf: 1 << 20,
        };
        let outcome = download(&request, &mut Buffers::default(), Instant::now());
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.bytes, data.len() as u64);
        assert_eq!(
            outcome.granted,
            Some(Settings {
                blksize: 16,
                windowsize: 8
            })
        );
        let want: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(outcome.sha256, Some(want));
        assert!(outcome.out_of_order >= 2, "{outcome:?}");
        assert!(outcome.timeouts >= 1, "{outcome:?}");
        assert!(matches!(server.join(), Ok(Ok(_))));
    }

    #[test]
    fn lock_step_without_oack_and_server_error() {
        // A server that ignores options: DATA 1 straight away, 512-byte blocks.
        let listen = match UdpSocket::bind("127.0.0.1:0") {
            Ok(s) => s,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listen.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let server = thread::spawn(move || -> Result<(), String> {
            let e = |e: io::Error| e.to_string();
            let mut buf = [0u8; 1024];
            let (_, client) = listen.recv_from(&mut buf).map_err(e)?;
            let mut block = [0u8; 516];
            block[1] = 3;
            block[3] = 1;
            listen.send_to(&block, client).map_err(e)?;
            listen.recv_from(&mut buf).map_err(e)?;
            if buf[..4] != [0, 4, 0, 1] {
                return Err(format!("want ACK 1, got {:?}", &buf[..4]));
            }
            listen.send_to(&[0, 3, 0, 2, 7], client).map_err(e)?;
            listen.recv_from(&mut buf).map_err(e)?;
            // Second request: refused.
            let (_, client) = listen.recv_from(&mut buf).map_err(e)?;
            listen
                .send_to(b"\0\x05\0\x01File not found\0", client)
                .map_err(e)?;
            Ok(())
        });
        let request = Request {
            server: addr,
            file: "f".into(),
            blksize: Some(1468),
            windowsize: Some(8),
            timeout: Duration::from_millis(500),
            retries: 3,
            hash: false,
            rcvbuf: 0,
        };
        let outcome = download(&request, &mut Buffers::default(), Instant::now());
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.bytes, 513);
        assert_eq!(outcome.granted, Some(Settings::PLAIN));
        let refused = download(&request, &mut Buffers::default(), Instant::now());
        assert_eq!(
            refused.error.as_deref(),
            Some("server error 1: File not found")
        );
        assert!(matches!(server.join(), Ok(Ok(()))));
    }
}
