//! Lease store tests: round trips, restarts, group commit, torn and corrupt journals,
//! compaction and its crashes, a reader beside the writer, expiry. The kill -9 test is in
//! `tests/lease_kill9.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::journal::{self, Corruption, HEADER_LEN};
use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn lease(i: u32) -> LeaseRecord {
    let b = i.to_be_bytes();
    LeaseRecord {
        mac: MacAddr([0x52, 0x54, b[0], b[1], b[2], b[3]]),
        client_id: i.is_multiple_of(3).then(|| vec![1, b[2], b[3]]),
        address: Ipv4Addr::from(0x0A00_0000 | i),
        hostname: i.is_multiple_of(2).then(|| format!("node{i}")),
        state: LeaseState::Active,
        granted_at: t(u64::from(i)),
        expires_at: t(u64::from(i) + 3600),
    }
}

fn open(dir: &Path) -> (LeaseStore, RecoveryReport) {
    LeaseStore::open(dir, t(0)).unwrap()
}

fn journal_path(dir: &Path) -> PathBuf {
    dir.join(JOURNAL_FILE)
}

/// The newest record per address, as the store should hold it.
fn expected(records: &[LeaseRecord]) -> Vec<LeaseRecord> {
    let mut map = BTreeMap::new();
    for record in records {
        map.insert(record.address, record.clone());
    }
    map.into_values().collect()
}

/// Commits `records` one per commit, closes, returns the journal bytes and each frame's
/// (start, end) offsets.
fn write_journal(dir: &Path, records: &[LeaseRecord]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let (store, _) = open(dir);
    for record in records {
        store.commit(vec![record.clone()]).unwrap();
    }
    store.close();
    let bytes = std::fs::read(journal_path(dir)).unwrap();
    let mut frames = Vec::new();
    let mut pos = HEADER_LEN;
    for record in records {
        let mut buf = Vec::new();
        journal::encode_frame(&record.clone().into(), &mut buf).unwrap();
        frames.push((pos, pos + buf.len()));
        pos += buf.len();
    }
    assert_eq!(
        pos,
        bytes.len(),
        "the journal is the header and one frame per record"
    );
    (bytes, frames)
}

fn damaged_copies(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(DAMAGED_PREFIX)
        })
        .collect();
    out.sort();
    out
}

fn every_state() -> Vec<LeaseRecord> {
    let states = [
        LeaseState::Active,
        LeaseState::Released,
        LeaseState::Expired,
        LeaseState::Abandoned(AbandonReason::Declined),
        LeaseState::Abandoned(AbandonReason::InUse),
        LeaseState::Abandoned(AbandonReason::Other("ping answered".into())),
    ];
    states
        .into_iter()
        .enumerate()
        .map(|(i, state)| LeaseRecord {
            state,
            ..lease(i as u32 + 1)
        })
        .collect()
}

#[test]
fn round_trip_through_the_store_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = every_state();
    // Times before the epoch and with nanoseconds, a 255-byte client id and hostname.
    records.push(LeaseRecord {
        client_id: Some(vec![0xAB; MAX_FIELD_LEN]),
        hostname: Some("h".repeat(MAX_FIELD_LEN)),
        granted_at: UNIX_EPOCH - Duration::new(5, 250),
        expires_at: UNIX_EPOCH + Duration::new(7, 999_999_999),
        ..lease(100)
    });
    let (store, report) = open(dir.path());
    assert!(report.is_clean());
    assert_eq!(report.records_loaded, 0);
    store.commit(records.clone()).unwrap();
    assert_eq!(store.all(), expected(&records));
    for record in &records {
        assert_eq!(store.lookup_addr(record.address).as_ref(), Some(record));
    }
    drop(store);
    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.records_loaded, records.len());
    assert_eq!(store.all(), expected(&records));
    assert!(damaged_copies(dir.path()).is_empty());
}

#[test]
fn restart_keeps_every_committed_lease() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for round in 0..3u32 {
        let (store, report) = open(dir.path());
        assert!(report.is_clean(), "{report}");
        assert_eq!(store.all(), expected(&all), "round {round}");
        for i in 0..200u32 {
            // New leases, and renewals of earlier ones (the newest record wins).
            let mut record = lease(i * (round + 1) % 300);
            record.expires_at = t(u64::from(round) * 10_000 + u64::from(i));
            all.push(record.clone());
            store.commit(vec![record]).unwrap();
        }
        assert_eq!(store.all(), expected(&all));
    }
    let (store, _) = open(dir.path());
    assert_eq!(store.all(), expected(&all));
}

#[test]
fn group_commit_from_16_threads_shares_fsyncs_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        sync_delay: Duration::from_millis(3),
        ..StoreOptions::default()
    };
    let (store, _) = LeaseStore::open_with(dir.path(), t(0), options).unwrap();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..16u32)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..40u32 {
                    let i = thread * 1000 + n;
                    store.commit(vec![lease(i)]).unwrap();
                    // Durable means visible: the index shows it as soon as commit returns.
                    assert_eq!(store.lookup_addr(lease(i).address), Some(lease(i)));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 16 * 40);
    assert!(
        stats.syncs * 4 <= stats.commits,
        "group commit should share fsyncs: {stats:?}"
    );
    drop(store);
    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "{report}");
    let want: Vec<LeaseRecord> = (0..16u32)
        .flat_map(|thread| (0..40).map(move |n| lease(thread * 1000 + n)))
        .collect();
    assert_eq!(store.all(), expected(&want));
}

/// Opens a copy of `bytes` and checks that exactly `keep` records survive and a tear is reported.
fn check_torn(bytes: &[u8], records: &[LeaseRecord], keep: usize, cut: usize, tear_at: usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(journal_path(dir.path()), &bytes[..cut]).unwrap();
    let (store, report) = open(dir.path());
    assert_eq!(store.all(), expected(&records[..keep]), "cut at {cut}");
    assert_eq!(report.records_loaded, keep, "cut at {cut}");
    assert!(report.corrupt.is_empty(), "cut at {cut}: {report}");
    if cut == tear_at {
        assert!(report.is_clean(), "cut at a frame boundary: {report}");
        return;
    }
    let tail = report.torn_tail.as_ref().expect("tear reported");
    assert_eq!(
        (tail.offset, tail.len),
        (tear_at as u64, (cut - tear_at) as u64)
    );
    assert_eq!(report.torn_bytes(), (cut - tear_at) as u64);
    // The damaged file was kept whole, and the journal was cut back to the last valid record.
    let copies = damaged_copies(dir.path());
    assert_eq!(copies.len(), 1);
    assert_eq!(report.damaged_copy.as_ref(), Some(&copies[0]));
    assert_eq!(std::fs::read(&copies[0]).unwrap(), &bytes[..cut]);
    // New commits land after the valid records and survive a restart.
    store.commit(vec![lease(9999)]).unwrap();
    drop(store);
    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "cut at {cut}: {report}");
    let mut want = records[..keep].to_vec();
    want.push(lease(9999));
    assert_eq!(store.all(), expected(&want));
}

#[test]
fn a_torn_last_record_is_cut_off_at_every_byte_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<LeaseRecord> = (1..=8).map(lease).collect();
    let (bytes, frames) = write_journal(dir.path(), &records);
    let (start, end) = frames[frames.len() - 1];
    for cut in start..end {
        check_torn(&bytes, &records, records.len() - 1, cut, start);
    }
}

#[test]
fn a_journal_cut_at_random_offsets_keeps_every_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<LeaseRecord> = (1..=40).map(lease).collect();
    let (bytes, frames) = write_journal(dir.path(), &records);
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut cuts = vec![0, 1, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 1];
    for _ in 0..60 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        cuts.push((seed % bytes.len() as u64) as usize);
    }
    for cut in cuts {
        let keep = frames.iter().filter(|(_, end)| *end <= cut).count();
        let tear_at = if cut < HEADER_LEN {
            0
        } else {
            frames
                .iter()
                .map(|(_, end)| *end)
                .filter(|end| *end <= cut)
                .max()
                .unwrap_or(HEADER_LEN)
        };
        if cut == 0 {
            // An empty file: a fresh store.
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(journal_path(dir.path()), b"").unwrap();
            let (store, report) = open(dir.path());
            assert!(report.is_clean() && store.is_empty());
            continue;
        }
        check_torn(&bytes, &records, keep, cut, tear_at);
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_loses_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<LeaseRecord> = (1..=7).map(lease).collect();
    let (bytes, frames) = write_journal(dir.path(), &records);
    let middle = 3;
    let (start, end) = frames[middle];
    for pos in start..end {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x5A;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(journal_path(dir.path()), &damaged).unwrap();

        // A reader sees the same, and changes nothing.
        let (snapshot, report) = read_snapshot(dir.path()).unwrap();
        assert_eq!(report.corrupt.len(), 1, "byte {pos}: {report}");
        assert_eq!(std::fs::read(journal_path(dir.path())).unwrap(), damaged);

        let (store, report) = open(dir.path());
        let mut want = records.clone();
        want.remove(middle);
        assert_eq!(store.all(), expected(&want), "byte {pos}");
        assert_eq!(snapshot.v4, expected(&want), "byte {pos}");
        assert_eq!(report.records_loaded, records.len() - 1);
        assert!(report.torn_tail.is_none(), "byte {pos}: {report}");
        let region = &report.corrupt[0];
        assert_eq!(region.offset, start as u64, "byte {pos}: {report}");
        assert_eq!(region.len, (end - start) as u64, "byte {pos}: {report}");
        let copies = damaged_copies(dir.path());
        assert_eq!(copies.len(), 1);
        assert_eq!(std::fs::read(&copies[0]).unwrap(), damaged);
        drop(store);
        // The journal was rewritten without the damage.
        let (store, report) = open(dir.path());
        assert!(report.is_clean(), "byte {pos}: {report}");
        assert_eq!(store.all(), expected(&want));
        assert_eq!(damaged_copies(dir.path()).len(), 1);
    }
}

#[test]
fn damage_without_a_later_record_keeps_everything_before_it() {
    // A multi-record write torn in the middle of a page: zeros, then the rest of the batch
    // never arrived. Nothing after the damage is valid, so it is a tail.
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<LeaseRecord> = (1..=6).map(lease).collect();
    let (mut bytes, frames) = write_journal(dir.path(), &records);
    let (start, _) = frames[4];
    for byte in &mut bytes[start + 5..] {
        *byte = 0;
    }
    check_torn(&bytes, &records, 4, bytes.len(), start);
}

#[test]
fn a_damaged_header_is_reported_and_records_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<LeaseRecord> = (1..=5).map(lease).collect();
    let (mut bytes, _) = write_journal(dir.path(), &records);
    bytes[3] = b'X';
    std::fs::write(journal_path(dir.path()), &bytes).unwrap();
    let (store, report) = open(dir.path());
    assert!(report.bad_header, "{report}");
    assert_eq!(store.all(), expected(&records));
    assert_eq!(damaged_copies(dir.path()).len(), 1);
    drop(store);
    let (_, report) = open(dir.path());
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_newer_format_or_record_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<LeaseRecord> = (1..=3).map(lease).collect();
    let (bytes, frames) = write_journal(dir.path(), &records);

    let mut newer = bytes.clone();
    newer[16] = 2;
    std::fs::write(journal_path(dir.path()), &newer).unwrap();
    assert!(matches!(
        LeaseStore::open(dir.path(), t(0)),
        Err(StoreError::NewerFormat { found: 2, .. })
    ));
    assert!(matches!(
        read_snapshot(dir.path()),
        Err(StoreError::NewerFormat { .. })
    ));
    assert_eq!(std::fs::read(journal_path(dir.path())).unwrap(), newer);

    // A valid frame whose record version is 9.
    let mut payload = vec![9, 4, 0, 0];
    payload.extend_from_slice(&[0; 40]);
    let mut frame = journal::FRAME_MAGIC.to_vec();
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&payload);
    frame.extend_from_slice(&len);
    frame.extend_from_slice(&crc.finalize().to_le_bytes());
    frame.extend_from_slice(&payload);
    let mut with_newer_record = bytes[..frames[1].1].to_vec();
    with_newer_record.extend_from_slice(&frame);
    with_newer_record.extend_from_slice(&bytes[frames[2].0..]);
    std::fs::write(journal_path(dir.path()), &with_newer_record).unwrap();
    match LeaseStore::open(dir.path(), t(0)) {
        Err(StoreError::NewerRecord {
            offset, version, ..
        }) => assert_eq!((offset, version), (frames[1].1 as u64, 9)),
        other => panic!("expected NewerRecord, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(journal_path(dir.path())).unwrap(),
        with_newer_record
    );
    let (snapshot, report) = read_snapshot(dir.path()).unwrap();
    assert_eq!(snapshot.v4, expected(&records));
    assert_eq!(report.corrupt[0].reason, Corruption::UnknownVersion(9));
    assert!(damaged_copies(dir.path()).is_empty());
}

#[test]
fn compaction_keeps_the_live_set_and_the_client_pointers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let mut written = Vec::new();
    for round in 0..50u64 {
        for i in 0..20u32 {
            let mut record = lease(i);
            record.expires_at = t(round * 100 + u64::from(i));
            written.push(record.clone());
            store.commit(vec![record]).unwrap();
        }
    }
    // A client moves to another address; its old address goes to someone else.
    let moved = LeaseRecord {
        address: Ipv4Addr::new(10, 1, 0, 1),
        ..lease(5)
    };
    let taken = LeaseRecord {
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        client_id: None,
        ..lease(6)
    };
    let declined = LeaseRecord {
        state: LeaseState::Abandoned(AbandonReason::Declined),
        ..lease(7)
    };
    store
        .commit(vec![moved.clone(), taken.clone(), declined.clone()])
        .unwrap();
    written.extend([moved.clone(), taken.clone(), declined.clone()]);
    let before = std::fs::metadata(journal_path(dir.path())).unwrap().len();
    let lookups = |store: &LeaseStore| {
        (
            store.lookup_mac(lease(5).mac),
            store.lookup_mac(lease(6).mac),
            store.lookup_mac(lease(7).mac),
            store.lookup_client_id(&[1, 0, 6]),
            store.lookup_mac(taken.mac),
        )
    };
    let want_lookups = lookups(&store);
    assert_eq!(want_lookups.0.as_ref(), Some(&moved));
    assert_eq!(want_lookups.1, None, "address 6 went to another client");
    assert_eq!(
        want_lookups.2, None,
        "an abandoned address belongs to no one"
    );
    assert_eq!(want_lookups.3, None);
    assert_eq!(want_lookups.4.as_ref(), Some(&taken));

    store.compact().unwrap();
    assert_eq!(store.stats().compactions, 1);
    let after = std::fs::metadata(journal_path(dir.path())).unwrap().len();
    assert!(after * 10 < before, "{before} -> {after} bytes");
    assert_eq!(store.all(), expected(&written));
    store.commit(vec![lease(100)]).unwrap();
    written.push(lease(100));
    drop(store);
    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report.records_loaded, 22,
        "21 live records after compaction + 1"
    );
    assert_eq!(store.all(), expected(&written));
    assert_eq!(lookups(&store), want_lookups);
}

#[test]
fn compaction_runs_on_its_own_past_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        compact_min_records: 100,
        compact_ratio: 4,
        ..StoreOptions::default()
    };
    let (store, _) = LeaseStore::open_with(dir.path(), t(0), options).unwrap();
    let mut written = Vec::new();
    for n in 0..1000u32 {
        let mut record = lease(n % 10);
        record.expires_at = t(u64::from(n));
        written.push(record.clone());
        store.commit(vec![record]).unwrap();
    }
    assert!(store.stats().compactions >= 5, "{:?}", store.stats());
    drop(store);
    let (store, report) = open(dir.path());
    assert!(report.records_loaded < 200, "{report}");
    assert_eq!(store.all(), expected(&written));
}

#[test]
fn an_interrupted_compaction_leaves_the_journal_in_charge() {
    let records: Vec<LeaseRecord> = (1..=10).map(lease).collect();
    // What the temp file may hold when the crash came: nothing yet, half a compaction, or a
    // whole one of an older state (fsynced, not yet renamed).
    let mut whole_old = journal::header().to_vec();
    for record in &records[..4] {
        journal::encode_frame(&record.clone().into(), &mut whole_old).unwrap();
    }
    let half = whole_old[..whole_old.len() / 2].to_vec();
    for temp in [Vec::new(), half, whole_old] {
        let dir = tempfile::tempdir().unwrap();
        write_journal(dir.path(), &records);
        let temp_path = dir.path().join(COMPACT_TEMP_FILE);
        std::fs::write(&temp_path, &temp).unwrap();
        let (store, report) = open(dir.path());
        assert_eq!(report.removed_compaction_temp.as_ref(), Some(&temp_path));
        assert!(!temp_path.exists());
        assert_eq!(store.all(), expected(&records));
        // A compaction now works, and its result is what a restart sees.
        store.compact().unwrap();
        store.commit(vec![lease(50)]).unwrap();
        drop(store);
        let (store, report) = open(dir.path());
        assert!(report.is_clean() && report.removed_compaction_temp.is_none());
        let mut want = records.clone();
        want.push(lease(50));
        assert_eq!(store.all(), expected(&want));
    }
}

#[test]
fn a_reader_sees_the_leases_while_the_writer_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        compact_min_records: 50,
        compact_ratio: 2,
        ..StoreOptions::default()
    };
    let (store, _) = LeaseStore::open_with(dir.path(), t(0), options).unwrap();
    assert!(matches!(
        LeaseStore::open(dir.path(), t(0)),
        Err(StoreError::Locked { .. })
    ));
    store.commit(vec![lease(1), lease(2)]).unwrap();
    let (snapshot, report) = read_snapshot(dir.path()).unwrap();
    assert_eq!(snapshot.v4, vec![lease(1), lease(2)]);
    assert!(report.is_clean());

    // Readers run while the writer appends and compacts: every snapshot holds at least every
    // lease whose commit had returned before the read began.
    let store = Arc::new(store);
    let done = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let writer = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for i in 3..600u32 {
                store.commit(vec![lease(i)]).unwrap();
                // Renewals too, so that compaction has work.
                store.commit(vec![lease(i % 10 + 1)]).unwrap();
                store.commit(vec![lease(i % 10 + 1)]).unwrap();
                done.store(i, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    loop {
        let committed = done.load(std::sync::atomic::Ordering::SeqCst);
        let (snapshot, report) = read_snapshot(dir.path()).unwrap();
        assert!(report.corrupt.is_empty() && !report.bad_header, "{report}");
        let have: std::collections::HashSet<Ipv4Addr> =
            snapshot.v4.iter().map(|r| r.address).collect();
        for i in 1..=committed {
            assert!(have.contains(&lease(i).address), "lease {i} missing");
        }
        if committed == 599 {
            break;
        }
    }
    writer.join().unwrap();
    assert!(store.stats().compactions > 0, "{:?}", store.stats());
}

#[test]
fn reclaim_expired_marks_them_durably_and_returns_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let short = LeaseRecord {
        expires_at: t(100),
        ..lease(1)
    };
    let exact = LeaseRecord {
        expires_at: t(200),
        ..lease(2)
    };
    let long = LeaseRecord {
        expires_at: t(10_000),
        ..lease(3)
    };
    let released = LeaseRecord {
        state: LeaseState::Released,
        expires_at: t(50),
        ..lease(4)
    };
    store
        .commit(vec![
            short.clone(),
            exact.clone(),
            long.clone(),
            released.clone(),
        ])
        .unwrap();
    assert!(store.reclaim_expired(t(99)).unwrap().is_empty());
    let reclaimed = store.reclaim_expired(t(200)).unwrap();
    let expire = |r: &LeaseRecord| LeaseRecord {
        state: LeaseState::Expired,
        ..r.clone()
    };
    assert_eq!(
        reclaimed,
        vec![
            StoredLease::V4(expire(&short)),
            StoredLease::V4(expire(&exact))
        ]
    );
    assert!(store.reclaim_expired(t(300)).unwrap().is_empty());
    // A renewal queued before the reclaim is honoured.
    let renewed = LeaseRecord {
        expires_at: t(20_000),
        ..long.clone()
    };
    store.commit(vec![renewed.clone()]).unwrap();
    assert!(store.reclaim_expired(t(15_000)).unwrap().is_empty());
    assert_eq!(store.lookup_mac(short.mac), Some(expire(&short)));
    drop(store);
    let (store, _) = open(dir.path());
    assert_eq!(
        store.all(),
        vec![expire(&short), expire(&exact), renewed, released]
    );
}

#[test]
fn invalid_records_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let long_name = LeaseRecord {
        hostname: Some("x".repeat(256)),
        ..lease(2)
    };
    let error = store.commit(vec![lease(1), long_name]).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::InvalidRecord {
                source: InvalidRecord::TooLong {
                    field: "hostname",
                    len: 256
                },
                ..
            }
        ),
        "{error}"
    );
    assert!(store.is_empty());
    store.commit(Vec::<LeaseRecord>::new()).unwrap();
    drop(store);
    assert_eq!(
        std::fs::metadata(journal_path(dir.path())).unwrap().len(),
        HEADER_LEN as u64
    );
}

#[test]
fn lookups_by_mac_and_client_id_follow_the_newest_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let first = lease(3); // has a client id
    let second = LeaseRecord {
        address: Ipv4Addr::new(10, 9, 9, 9),
        ..lease(3)
    };
    store.commit(vec![first.clone()]).unwrap();
    assert_eq!(store.lookup_client_id(&[1, 0, 3]), Some(first.clone()));
    store.commit(vec![second.clone()]).unwrap();
    assert_eq!(store.lookup_mac(first.mac), Some(second.clone()));
    assert_eq!(store.lookup_client_id(&[1, 0, 3]), Some(second.clone()));
    // The second address is declined: the client falls back to its older record.
    let declined = LeaseRecord {
        state: LeaseState::Abandoned(AbandonReason::Declined),
        ..second.clone()
    };
    store.commit(vec![declined.clone()]).unwrap();
    assert_eq!(store.lookup_mac(first.mac), Some(first.clone()));
    assert_eq!(store.lookup_client_id(&[1, 0, 3]), Some(first.clone()));
    assert_eq!(store.lookup_addr(second.address), Some(declined));
    assert_eq!(store.lookup_mac(MacAddr([9; 6])), None);
    assert_eq!(store.len(), 2);
}

fn arb_record() -> impl Strategy<Value = LeaseRecord> {
    let state = prop_oneof![
        Just(LeaseState::Active),
        Just(LeaseState::Released),
        Just(LeaseState::Expired),
        Just(LeaseState::Abandoned(AbandonReason::Declined)),
        Just(LeaseState::Abandoned(AbandonReason::InUse)),
        ".{0,60}".prop_map(|s| LeaseState::Abandoned(AbandonReason::Other(s))),
    ];
    (
        any::<[u8; 6]>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=255)),
        any::<u32>(),
        proptest::option::of("[a-z0-9-]{0,63}"),
        state,
        (-(1i64 << 40)..(1i64 << 40), 0u32..1_000_000_000),
        (-(1i64 << 40)..(1i64 << 40), 0u32..1_000_000_000),
    )
        .prop_map(
            |(mac, client_id, address, hostname, state, granted, expires)| {
                let time = |(secs, nanos): (i64, u32)| {
                    if secs >= 0 {
                        UNIX_EPOCH + Duration::new(secs as u64, nanos)
                    } else {
                        UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0)
                            + Duration::from_nanos(u64::from(nanos))
                    }
                };
                LeaseRecord {
                    mac: MacAddr(mac),
                    client_id,
                    address: Ipv4Addr::from(address),
                    hostname,
                    state,
                    granted_at: time(granted),
                    expires_at: time(expires),
                }
            },
        )
}

/// A v6 lease built from a v4 one's fields, so both families share the same edge cases.
fn arb_v6_record() -> impl Strategy<Value = Lease6Record> {
    (
        arb_record(),
        proptest::collection::vec(any::<u8>(), 1..=255),
        any::<u32>(),
        any::<u128>(),
        any::<bool>(),
    )
        .prop_map(|(v4, duid, iaid, address, mac_known)| Lease6Record {
            duid,
            iaid,
            mac: mac_known.then_some(v4.mac),
            address: std::net::Ipv6Addr::from(address),
            hostname: v4.hostname,
            state: v4.state,
            granted_at: v4.granted_at,
            expires_at: v4.expires_at,
        })
}

fn arb_stored() -> impl Strategy<Value = StoredLease> {
    prop_oneof![
        arb_record().prop_map(StoredLease::V4),
        arb_v6_record().prop_map(StoredLease::V6),
    ]
}

proptest! {
    #[test]
    fn records_round_trip_through_frames(records in proptest::collection::vec(arb_stored(), 0..20)) {
        let mut buf = journal::header().to_vec();
        for record in &records {
            journal::encode_frame(record, &mut buf).unwrap();
        }
        let scan = journal::scan(&buf);
        prop_assert!(scan.corrupt.is_empty() && scan.torn_tail.is_none() && !scan.bad_header);
        prop_assert_eq!(scan.records, records);
    }

    #[test]
    fn any_bytes_scan_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let scan = journal::scan(&bytes);
        let skipped: u64 = scan.corrupt.iter().map(|r| r.len).sum();
        prop_assert!(skipped <= bytes.len() as u64);
        prop_assert!(scan.valid_end <= bytes.len() as u64);
    }

    #[test]
    fn garbage_spliced_between_records_is_skipped(
        records in proptest::collection::vec(arb_stored(), 2..8),
        garbage in proptest::collection::vec(any::<u8>(), 1..100),
        at in any::<prop::sample::Index>(),
    ) {
        let mut frames = Vec::new();
        for record in &records {
            let mut frame = Vec::new();
            journal::encode_frame(record, &mut frame).unwrap();
            frames.push(frame);
        }
        let at = at.index(records.len() - 1) + 1;
        let mut buf = journal::header().to_vec();
        for (i, frame) in frames.iter().enumerate() {
            if i == at {
                buf.extend_from_slice(&garbage);
            }
            buf.extend_from_slice(frame);
        }
        let scan = journal::scan(&buf);
        prop_assert_eq!(scan.records, records);
        prop_assert!(scan.torn_tail.is_none());
        prop_assert!(scan.corrupt.iter().map(|r| r.len).sum::<u64>() <= garbage.len() as u64);
    }
}

fn lease6(i: u32) -> Lease6Record {
    let b = i.to_be_bytes();
    Lease6Record {
        // DUID-LL (type 3, hardware type 1) of the machine's MAC.
        duid: vec![0, 3, 0, 1, 0x52, 0x54, b[0], b[1], b[2], b[3]],
        iaid: i,
        mac: i
            .is_multiple_of(2)
            .then_some(MacAddr([0x52, 0x54, b[0], b[1], b[2], b[3]])),
        address: std::net::Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x100 + i as u16),
        hostname: Some(format!("node{i}")),
        state: LeaseState::Active,
        granted_at: t(u64::from(i)),
        expires_at: t(u64::from(i) + 3600),
    }
}

#[test]
fn v4_and_v6_leases_share_the_journal_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    // Interleaved commits of both families, one of them mixed in a single commit.
    store.commit(vec![lease(1)]).unwrap();
    store.commit(vec![lease6(1)]).unwrap();
    store
        .commit(vec![StoredLease::V4(lease(2)), StoredLease::V6(lease6(2))])
        .unwrap();
    assert_eq!(store.len(), 4);
    store.close();

    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(store.all(), vec![lease(1), lease(2)]);
    assert_eq!(store.all_v6(), vec![lease6(1), lease6(2)]);
    assert_eq!(
        store.lookup_binding(&lease6(2).duid, 2),
        Some(lease6(2)),
        "a v6 lease is found by its DUID and IAID"
    );
    assert_eq!(
        store.lookup_binding(&lease6(2).duid, 3),
        None,
        "another IA of the same client is another binding"
    );
    // A v6 lease of a machine never answers a v4 lookup by its MAC.
    assert_eq!(store.lookup_mac(lease(2).mac), Some(lease(2)));
    let (snapshot, _) = read_snapshot(dir.path()).unwrap();
    assert_eq!(snapshot.v4, vec![lease(1), lease(2)]);
    assert_eq!(snapshot.v6, vec![lease6(1), lease6(2)]);

    // Compaction keeps both families, and the v6 lease that passed to another client moves
    // its old owner's binding.
    let moved = Lease6Record {
        duid: vec![0, 4, 1, 2, 3, 4],
        iaid: 7,
        ..lease6(1)
    };
    store.commit(vec![moved.clone()]).unwrap();
    assert_eq!(store.lookup_binding(&lease6(1).duid, 1), None);
    store.compact().unwrap();
    store.close();
    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(store.all_v6(), vec![moved.clone(), lease6(2)]);
    assert_eq!(store.lookup_binding(&[0, 4, 1, 2, 3, 4], 7), Some(moved));
    assert_eq!(store.lookup_binding(&lease6(1).duid, 1), None);
}

/// A journal as the first Kindling wrote it (format 1, v4 records of version 1), byte by byte
/// from the documented layout, not from today's encoder: it must still load.
#[test]
fn a_v4_journal_of_the_first_format_loads() {
    let mut payload = vec![1, 4, 0, 0]; // record version 1, family 4, active, no reason
    payload.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 0x10]); // MAC
    payload.extend_from_slice(&[10, 99, 0, 10]); // address
    payload.extend_from_slice(&1_800_000_000i64.to_le_bytes()); // granted at
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&1_800_003_600i64.to_le_bytes()); // expires at
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&[1, 2, 0xab, 0xcd]); // client id present, 2 bytes
    payload.extend_from_slice(&[1, 6]); // hostname present, 6 bytes
    payload.extend_from_slice(b"node10");
    payload.push(0); // no reason text
    let mut file = b"KINDLING-LEASES\n".to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&payload);
    file.extend_from_slice(&[0xC5, 0x4B, 0x4C, 0x52]);
    file.extend_from_slice(&len);
    file.extend_from_slice(&crc.finalize().to_le_bytes());
    file.extend_from_slice(&payload);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(journal_path(dir.path()), &file).unwrap();

    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "{report}");
    let expected = LeaseRecord {
        mac: MacAddr([0x52, 0x54, 0, 0, 0, 0x10]),
        client_id: Some(vec![0xab, 0xcd]),
        address: Ipv4Addr::new(10, 99, 0, 10),
        hostname: Some("node10".into()),
        state: LeaseState::Active,
        granted_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        expires_at: UNIX_EPOCH + Duration::from_secs(1_800_003_600),
    };
    assert_eq!(store.all(), vec![expected.clone()]);
    store.close();
    // Today's encoder writes a v4 lease byte for byte as the first format did, so a journal
    // without v6 leases still opens in an older build.
    let mut encoded = Vec::new();
    journal::encode_frame(&StoredLease::V4(expected), &mut encoded).unwrap();
    assert_eq!(encoded, file[journal::HEADER_LEN..]);
}

#[test]
fn a_v6_lease_is_a_record_older_builds_refuse_to_rewrite_and_needs_a_duid() {
    let mut frame = Vec::new();
    journal::encode_frame(&StoredLease::V6(lease6(1)), &mut frame).unwrap();
    // The payload starts after magic, length and checksum: record version 2, family 6. A
    // version-1 build reports version 2 as a newer record and refuses to rewrite the file.
    assert_eq!(&frame[journal::FRAME_HEADER_LEN..][..2], &[2, 6]);
    let no_duid = Lease6Record {
        duid: Vec::new(),
        ..lease6(1)
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    assert!(matches!(
        store.commit(vec![no_duid]),
        Err(StoreError::InvalidRecord {
            source: InvalidRecord::Empty { field: "duid" },
            ..
        })
    ));
    assert!(store.all_v6().is_empty());
}
