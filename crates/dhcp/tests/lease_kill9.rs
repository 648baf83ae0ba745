//! kill -9 of a process in the middle of committing leases loses no acknowledged lease.
//!
//! The test runs its own executable again as the child (switched by an environment variable).
//! The child commits leases from several threads, with renewals so that compactions happen too,
//! and prints `ACK <seq>` only after `commit` returned. The parent SIGKILLs it after about a
//! second, reopens the store and checks every printed sequence number; three rounds on one
//! directory, so each child also recovers from the previous kill. Every commit holds a v4 and
//! a v6 lease, so both families are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kindling_dhcp::lease::{
    Lease6Record, LeaseRecord, LeaseState, LeaseStore, MacAddr, StoreOptions, StoredLease,
};

const CHILD_ENV: &str = "KINDLING_LEASE_KILL9_CHILD";
const ROUND_ENV: &str = "KINDLING_LEASE_KILL9_ROUND";
const THREADS: u32 = 8;

fn record(seq: u32) -> LeaseRecord {
    let b = seq.to_be_bytes();
    let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    LeaseRecord {
        mac: MacAddr([0x52, 0x54, b[0], b[1], b[2], b[3]]),
        client_id: None,
        address: Ipv4Addr::from(seq),
        hostname: Some(format!("host-{seq}")),
        state: LeaseState::Active,
        granted_at: t,
        expires_at: t + Duration::from_secs(u64::from(seq)),
    }
}

fn record6(seq: u32) -> Lease6Record {
    let v4 = record(seq);
    Lease6Record {
        duid: [&[0u8, 3, 0, 1][..], &v4.mac.0].concat(),
        iaid: seq,
        mac: Some(v4.mac),
        address: Ipv6Addr::from(0xfd00_0099_u128 << 96 | u128::from(seq)),
        hostname: v4.hostname,
        state: v4.state,
        granted_at: v4.granted_at,
        expires_at: v4.expires_at,
    }
}

/// A lease of each family for `seq`.
fn both(seq: u32) -> [StoredLease; 2] {
    [StoredLease::V4(record(seq)), StoredLease::V6(record6(seq))]
}

fn child(dir: &Path, round: u32) -> ! {
    let options = StoreOptions {
        compact_min_records: 2_000,
        compact_ratio: 2,
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000 + u64::from(round));
    let (store, report) = LeaseStore::open_with(dir, now, options).expect("open in the child");
    eprintln!("child round {round}: {report}");
    let store = std::sync::Arc::new(store);
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                let base = round * 10_000_000 + thread * 1_000_000;
                for n in 0..1_000_000 {
                    if started.elapsed() > Duration::from_secs(60) {
                        break; // The parent is gone; do not run forever.
                    }
                    let seq = base + n;
                    let mut batch = both(seq).to_vec();
                    if n > 0 {
                        // Renewals, so that compactions run during the test.
                        batch.extend(both(base + n / 2));
                        batch.extend(both(base + n / 3));
                    }
                    store.commit(batch).expect("commit in the child");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {seq}").expect("stdout");
                    out.flush().expect("stdout");
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    std::process::exit(0);
}

#[test]
fn kill9_loses_no_acknowledged_lease() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let round = std::env::var(ROUND_ENV)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        child(Path::new(&dir), round);
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_total = Vec::new();
    let mut compacted = false;
    for round in 0..3u32 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill9_loses_no_acknowledged_lease",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A line cut by the kill has no newline: not an acknowledgement.
                let Some(text) = line.strip_suffix(b"\n") else {
                    break;
                };
                if let Some(seq) = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.strip_prefix("ACK "))
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    if acked.is_empty() {
                        let _ = first_tx.send(());
                    }
                    acked.push(seq);
                }
            }
            acked
        });
        // The child is committing once the first ACK arrives; kill it a second later.
        let started = first_rx.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(1000));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert!(
            started.is_ok(),
            "round {round}: the child acknowledged nothing ({status})"
        );
        assert!(
            acked.len() >= 100,
            "round {round}: only {} acknowledgements",
            acked.len()
        );

        let reopened_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_950_000_000);
        let (store, report) = LeaseStore::open(dir.path(), reopened_at).unwrap();
        eprintln!(
            "round {round}: {} leases acknowledged before SIGKILL; reopened: {report}",
            acked.len()
        );
        acked_total.extend(acked);
        let missing: Vec<u32> = acked_total
            .iter()
            .copied()
            .filter(|seq| {
                store.lookup_addr(Ipv4Addr::from(*seq)) != Some(record(*seq))
                    || store.lookup_v6_addr(record6(*seq).address) != Some(record6(*seq))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged leases lost, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        // Three records of each family per commit on distinct addresses: without compaction
        // the journal would hold three records per lease.
        compacted |= report.records_loaded < 2 * report.live_leases;
        drop(store);
    }
    assert!(
        compacted,
        "no compaction ran while the children were killed"
    );
}
