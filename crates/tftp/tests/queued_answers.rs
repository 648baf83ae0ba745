//! A read transfer whose next datagram is always already queued never has to wait for one
//! (when client and server share a CPU, the ACK is queued before the send returns). It must
//! still notice shutdown, and still retransmit when the timeout passes. Here the client keeps
//! the transfer's socket full of duplicate ACKs, so the transfer never finds it empty.
//!
//! One current-thread runtime runs the server and the client: the client acts only while the
//! transfer task has yielded. Whether the transfer first wakes to the shutdown or to the full
//! socket is the runtime's choice, so the scenario runs several times: a read loop that took
//! queued datagrams without ever looking at the shutdown got through one run in two or three,
//! and through all of them almost never.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kindling_config::TftpConfig;
use kindling_files::{BootTree, TreeConfig};
use kindling_tftp::TftpService;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// More duplicate ACKs than a default receive buffer holds, so that every top-up fills it.
const TOP_UP: usize = 400;
/// Rounds in which the transfer must have answered; it needs one.
const ROUNDS: usize = 20;
/// Times the whole scenario runs.
const RUNS: usize = 16;

fn config(root: &Path) -> Arc<TftpConfig> {
    let yaml = format!(
        "tftp:\n  root: {:?}\n  listen: [\"127.0.0.1:0\"]\n",
        root.display().to_string()
    );
    let loaded = kindling_config::parse(&yaml, "test").unwrap();
    Arc::new(loaded.config.tftp.unwrap())
}

fn read_request(file: &str) -> Vec<u8> {
    let mut packet = vec![0, 1];
    packet.extend_from_slice(file.as_bytes());
    packet.push(0);
    packet.extend_from_slice(b"octet\0");
    packet
}

/// Fills the transfer's socket with duplicates of ACK 1 (the server ignores them: it has that
/// ACK already), without waiting: what does not fit is dropped by the kernel.
fn top_up(client: &UdpSocket, tid: SocketAddr) {
    for _ in 0..TOP_UP {
        let _ = client.try_send_to(&[0, 4, 0, 1], tid);
    }
}

/// The opcodes of everything the server has sent the client so far.
fn drain(client: &UdpSocket) -> Vec<u16> {
    let mut buf = [0u8; 600];
    let mut opcodes = Vec::new();
    while let Ok((len, _)) = client.try_recv_from(&mut buf) {
        if len >= 2 {
            opcodes.push(u16::from_be_bytes([buf[0], buf[1]]));
        }
    }
    opcodes
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_reaches_a_transfer_whose_answers_are_always_queued() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("big"), vec![7u8; 512 * 1000]).unwrap();
    for run in 0..RUNS {
        shut_down_while_flooded(root.path(), run).await;
    }
}

/// A service for `root` and a client whose read of `big` has begun and is confirmed: DATA 1
/// has arrived, ACK 1 has gone and DATA 2 has arrived.
async fn begin_read(root: &Path) -> (CancellationToken, JoinHandle<()>, UdpSocket, SocketAddr) {
    let tree = BootTree::open(&TreeConfig::from_tftp(&config(root))).unwrap();
    let service = TftpService::bind(config(root), tree).await.unwrap();
    let server = service.local_addrs()[0];
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(service.run(shutdown.clone()));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(&read_request("big"), server).await.unwrap();
    let mut buf = [0u8; 600];
    let (len, tid) = client.recv_from(&mut buf).await.unwrap();
    assert_eq!((len, &buf[..4]), (516, &[0u8, 3, 0, 1][..]), "DATA 1");
    client.send_to(&[0, 4, 0, 1], tid).await.unwrap();
    let (len, _) = client.recv_from(&mut buf).await.unwrap();
    assert_eq!((len, &buf[..4]), (516, &[0u8, 3, 0, 2][..]), "DATA 2");
    (shutdown, serving, client, tid)
}

async fn shut_down_while_flooded(root: &Path, run: usize) {
    let (shutdown, serving, client, tid) = begin_read(root).await;

    // The transfer wakes to a full socket and keeps taking duplicates until its budget runs out.
    top_up(&client, tid);
    tokio::task::yield_now().await;
    assert_eq!(drain(&client), Vec::<u16>::new(), "duplicates are ignored");

    shutdown.cancel();
    let mut told = None;
    for round in 0..ROUNDS {
        top_up(&client, tid);
        tokio::task::yield_now().await;
        if drain(&client).contains(&5) {
            told = Some(round);
            break;
        }
    }
    assert!(
        told.is_some(),
        "run {run}: no ERROR after {ROUNDS} rounds: a transfer that never waits never noticed the shutdown"
    );
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the service returns once its transfers are gone")
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_duplicate_acks_does_not_hold_off_the_retransmission() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("big"), vec![7u8; 512 * 1000]).unwrap();
    let (shutdown, serving, client, tid) = begin_read(root.path()).await;
    // ACK 2 never comes, only duplicates of ACK 1: after the 1 s timeout DATA 2 goes again.
    let started = Instant::now();
    let mut resent = false;
    while !resent && started.elapsed() < Duration::from_secs(3) {
        top_up(&client, tid);
        tokio::task::yield_now().await;
        resent = drain(&client).contains(&3);
    }
    assert!(
        resent,
        "DATA 2 not resent within 3 s of a 1 s timeout while the socket was never empty"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "resent before the timeout"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the service returns once its transfers are gone")
        .unwrap();
}
