//! Write transfers (uploads: the server receives DATA and ACKs).

use std::io;
use std::time::Duration;

use super::harness::{
    CLIENT, Dir, Fate, Pair, Pkt, STRANGER, WriteScript, ack, data, drop_nth, error, file,
    first_matching, plain, random_drop, request, settings, unknown_tid_error,
};
use crate::netascii;
use crate::proto::{Negotiated, Outcome, Settings, UploadSink, WriteTransfer, negotiate_write};
use crate::wire::{ErrorCode, Mode};

fn oack_negotiated(options: &[(&str, &str)]) -> Negotiated {
    negotiate_write(&request(Mode::Octet, options), &settings()).unwrap()
}

/// Receives the final block, commits, and checks the final ACK and the dally.
fn commit_and_finish(script: &mut WriteScript, final_block: u16) {
    assert!(script.transfer.needs_commit());
    assert_eq!(script.poll(), vec![], "no ACK before the commit");
    script.transfer.handle_committed(script.now, Ok(()));
    assert!(!script.transfer.needs_commit());
    assert_eq!(script.poll(), vec![Pkt::Ack(final_block)]);
    assert_eq!(script.transfer.outcome(), None, "dallying");
    script.fire_timeout();
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
}

#[test]
fn rfc1350_plain_write_starts_with_ack_0() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    assert_eq!(script.poll(), vec![Pkt::Ack(0)]);
    assert_eq!(script.poll(), vec![]);
}

#[test]
fn rfc1350_write_acks_each_block_and_commits_before_the_final_ack() {
    let content = file(1100);
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, &content[..512]));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    script.recv(&data(2, &content[512..1024]));
    assert_eq!(script.poll(), vec![Pkt::Ack(2)]);
    script.recv(&data(3, &content[1024..]));
    assert_eq!(script.sink, content, "appended before the commit");
    commit_and_finish(&mut script, 3);
    assert_eq!(script.transfer.stats().bytes, 1100);
}

#[test]
fn rfc1350_final_ack_waits_for_the_commit_and_ignores_retransmissions_meanwhile() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, b"short"));
    assert!(script.transfer.needs_commit());
    assert_eq!(
        script.transfer.poll_timeout(),
        None,
        "the shell owns the clock now"
    );
    script.at(Duration::from_secs(3));
    script.transfer.handle_timeout(script.now);
    script.recv(&data(1, b"short"));
    assert_eq!(script.poll(), vec![]);
    assert_eq!(
        script.sink, b"short",
        "a retransmitted final block is not appended twice"
    );
    commit_and_finish(&mut script, 1);
}

#[test]
fn rfc1350_dally_reacks_a_retransmitted_final_block() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, b"x"));
    script.transfer.handle_committed(script.now, Ok(()));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    script.at(Duration::from_millis(500));
    script.recv(&data(1, b"x"));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    script.recv(&data(1, b"x"));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    assert_eq!(script.sink, b"x");
    script.at(Duration::from_millis(1999));
    script.transfer.handle_timeout(script.now);
    assert_eq!(script.transfer.outcome(), None, "still dallying");
    script.recv(&data(1, b"x"));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    script.fire_timeout();
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
    assert_eq!(
        script.elapsed(),
        Duration::from_secs(2),
        "two timeouts after the commit"
    );
}

#[test]
fn rfc1350_empty_upload_is_one_empty_block() {
    let mut pair = Pair::write(Vec::new(), &[], &settings(), false);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), b"");
    assert_eq!(
        pair.sent(Dir::ToServer),
        vec![Pkt::Data { block: 1, len: 0 }]
    );
    assert_eq!(pair.sent(Dir::ToClient), vec![Pkt::Ack(0), Pkt::Ack(1)]);
}

#[test]
fn rfc1350_exactly_one_block_upload() {
    let mut pair = Pair::write(file(512), &[], &settings(), false);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), file(512));
    assert_eq!(
        pair.sent(Dir::ToServer),
        vec![
            Pkt::Data { block: 1, len: 512 },
            Pkt::Data { block: 2, len: 0 }
        ]
    );
}

#[test]
fn commit_failure_sends_the_error_and_fails() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, b"x"));
    script.transfer.handle_committed(
        script.now,
        Err((ErrorCode::FileExists, "file already exists".to_owned())),
    );
    assert_eq!(
        script.poll(),
        vec![Pkt::Error {
            code: 6,
            message: "file already exists".to_owned()
        }]
    );
    assert_eq!(
        script.transfer.outcome(),
        Some(&Outcome::Failed {
            code: ErrorCode::FileExists,
            message: "file already exists".to_owned()
        })
    );
}

#[test]
fn handle_committed_without_a_pending_commit_is_ignored() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.transfer.handle_committed(script.now, Ok(()));
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.transfer.outcome(), None);
}

#[test]
fn rfc2347_write_with_oack_waits_for_data_1() {
    let negotiated = oack_negotiated(&[("blksize", "8"), ("tsize", "20")]);
    let oack = Pkt::Oack(vec![
        ("blksize".to_owned(), "8".to_owned()),
        ("tsize".to_owned(), "20".to_owned()),
    ]);
    let mut script = WriteScript::new(&negotiated, 1 << 20, false);
    assert_eq!(script.poll(), vec![oack.clone()], "the OACK replaces ACK 0");
    script.fire_timeout();
    assert_eq!(script.poll(), vec![oack], "the OACK is resent on timeout");
    script.recv(&data(1, b"01234567"));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
}

#[test]
fn rfc2347_peer_error_8_ends_the_write_with_nothing_sent() {
    let negotiated = oack_negotiated(&[("blksize", "8")]);
    let mut script = WriteScript::new(&negotiated, 1 << 20, false);
    script.poll();
    script.recv(&error(8, "no"));
    assert_eq!(script.poll(), vec![]);
    assert_eq!(
        script.transfer.outcome(),
        Some(&Outcome::PeerError {
            code: 8,
            message: "no".to_owned()
        })
    );
}

#[test]
fn peer_error_while_dallying_keeps_the_committed_upload_completed() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, b"x"));
    script.transfer.handle_committed(script.now, Ok(()));
    script.poll();
    script.recv(&error(0, "bye"));
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
}

#[test]
fn rfc1350_duplicate_data_is_reacked_and_not_appended_twice() {
    let content = file(1024);
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, &content[..512]));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    // Our ACK 1 was lost; the sender retransmits DATA 1.
    script.recv(&data(1, &content[..512]));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    // The network duplicated it again right away: no second re-ACK until progress or timeout.
    script.recv(&data(1, &content[..512]));
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.sink, &content[..512]);
    assert_eq!(script.transfer.stats().duplicate_blocks, 2);
    script.recv(&data(2, &content[512..]));
    assert_eq!(script.poll(), vec![Pkt::Ack(2)]);
}

#[test]
fn rfc7440_write_acks_after_a_full_window() {
    let content = file(8 * 10);
    let mut script = WriteScript::new(&plain(8, 4), 1 << 20, false);
    assert_eq!(script.poll(), vec![Pkt::Ack(0)]);
    for block in 1..=3_u16 {
        let start = usize::from(block - 1) * 8;
        script.recv(&data(block, &content[start..start + 8]));
        assert_eq!(script.poll(), vec![], "block {block}");
    }
    script.recv(&data(4, &content[24..32]));
    assert_eq!(script.poll(), vec![Pkt::Ack(4)]);
}

#[test]
fn rfc7440_write_final_block_inside_a_window_completes() {
    let mut pair = Pair::write(
        file(8 * 6 + 3),
        &[("blksize", "8"), ("windowsize", "4")],
        &settings(),
        false,
    );
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), file(8 * 6 + 3));
    assert_eq!(pair.sent(Dir::ToClient)[1..], [Pkt::Ack(4), Pkt::Ack(7)]);
}

#[test]
fn rfc7440_write_gap_acks_the_last_in_order_block_once_and_drops_the_data() {
    let content = file(8 * 10);
    let block = |n: u16| {
        let start = usize::from(n - 1) * 8;
        data(n, &content[start..start + 8])
    };
    let mut script = WriteScript::new(&plain(8, 4), 1 << 20, false);
    script.poll();
    script.recv(&block(1));
    script.recv(&block(3));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)], "ACK at once on a gap");
    script.recv(&block(4));
    assert_eq!(script.poll(), vec![], "once per gap");
    assert_eq!(script.sink, &content[..8], "out-of-order data dropped");
    assert_eq!(script.transfer.stats().out_of_order_blocks, 2);
    // The sender goes back to block 2 and sends a full window.
    for n in 2..=5 {
        script.recv(&block(n));
    }
    assert_eq!(script.poll(), vec![Pkt::Ack(5)]);
    assert_eq!(script.sink, &content[..40]);
}

#[test]
fn rfc7440_write_receiver_timeout_acks_the_last_in_order_block() {
    let content = file(8 * 10);
    let mut script = WriteScript::new(&plain(8, 4), 1 << 20, false);
    script.poll();
    script.recv(&data(1, &content[..8]));
    script.recv(&data(2, &content[8..16]));
    assert_eq!(script.poll(), vec![]);
    script.fire_timeout();
    assert_eq!(script.poll(), vec![Pkt::Ack(2)]);
    assert_eq!(script.elapsed(), Duration::from_secs(1));
}

#[test]
fn rfc7440_write_duplicate_window_is_reacked_once() {
    let content = file(8 * 10);
    let mut script = WriteScript::new(&plain(8, 4), 1 << 20, false);
    script.poll();
    for n in 1..=4_u16 {
        let start = usize::from(n - 1) * 8;
        script.recv(&data(n, &content[start..start + 8]));
    }
    assert_eq!(script.poll(), vec![Pkt::Ack(4)]);
    // ACK 4 was lost: the sender resends its whole window.
    for n in 1..=4_u16 {
        let start = usize::from(n - 1) * 8;
        script.recv(&data(n, &content[start..start + 8]));
    }
    assert_eq!(
        script.poll(),
        vec![Pkt::Ack(4)],
        "one ACK for the whole resent window"
    );
    assert_eq!(script.sink, &content[..32]);
}

#[test]
fn rfc1350_write_data_longer_than_blksize_gets_error_4() {
    let mut script = WriteScript::new(&plain(8, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, b"123456789"));
    assert_eq!(
        script.poll(),
        vec![Pkt::Error {
            code: 4,
            message: "block larger than blksize".to_owned()
        }]
    );
    assert!(matches!(
        script.transfer.outcome(),
        Some(Outcome::Failed {
            code: ErrorCode::IllegalOperation,
            ..
        })
    ));
    assert!(script.sink.is_empty());
}

#[test]
fn write_beyond_max_size_gets_error_3() {
    let content = file(1536);
    let mut script = WriteScript::new(&plain(512, 1), 1000, false);
    script.poll();
    script.recv(&data(1, &content[..512]));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    script.recv(&data(2, &content[512..1024]));
    assert_eq!(
        script.poll(),
        vec![Pkt::Error {
            code: 3,
            message: "upload exceeds the maximum size".to_owned()
        }]
    );
    assert!(matches!(
        script.transfer.outcome(),
        Some(Outcome::Failed {
            code: ErrorCode::DiskFull,
            ..
        })
    ));
    assert_eq!(
        script.sink.len(),
        512,
        "nothing past the limit reaches the sink"
    );
}

#[test]
fn write_of_exactly_max_size_is_accepted() {
    let settings = Settings {
        max_upload_size: 1000,
        ..settings()
    };
    let mut pair = Pair::write(file(1000), &[("tsize", "1000")], &settings, false);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), file(1000));
}

#[test]
fn rfc2349_write_tsize_over_the_limit_is_refused_before_any_data() {
    let settings = Settings {
        max_upload_size: 1000,
        ..settings()
    };
    let refusal =
        negotiate_write(&request(Mode::Octet, &[("tsize", "5000")]), &settings).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::DiskFull);
}

/// A sink that fails once it holds `capacity` bytes.
struct FullDisk {
    capacity: usize,
    held: usize,
}

impl UploadSink for FullDisk {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.held + data.len() > self.capacity {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.held += data.len();
        Ok(())
    }
}

#[test]
fn sink_write_error_sends_error_and_fails() {
    let origin = super::harness::origin();
    let mut transfer = WriteTransfer::new(CLIENT, &plain(512, 1), 1 << 20, false, origin);
    let mut sink = FullDisk {
        capacity: 600,
        held: 0,
    };
    let mut buf = vec![0; 600];
    let _ = transfer.poll_transmit(origin, &mut buf);
    transfer.handle_datagram(origin, CLIENT, &data(1, &[7; 512]), &mut sink);
    let _ = transfer.poll_transmit(origin, &mut buf);
    transfer.handle_datagram(origin, CLIENT, &data(2, &[7; 512]), &mut sink);
    let transmit = transfer.poll_transmit(origin, &mut buf).unwrap();
    assert_eq!(
        super::harness::summarize(&buf[..transmit.len]),
        Pkt::Error {
            code: 3,
            message: "write error".to_owned()
        }
    );
    assert!(matches!(
        transfer.outcome(),
        Some(Outcome::Failed {
            code: ErrorCode::DiskFull,
            ..
        })
    ));
}

#[test]
fn rfc1350_write_times_out_after_max_retries() {
    let negotiated = Negotiated {
        max_retries: 2,
        ..plain(512, 1)
    };
    let mut script = WriteScript::new(&negotiated, 1 << 20, false);
    assert_eq!(script.poll(), vec![Pkt::Ack(0)]);
    script.fire_timeout();
    assert_eq!(script.poll(), vec![Pkt::Ack(0)]);
    script.fire_timeout();
    assert_eq!(script.poll(), vec![Pkt::Ack(0)]);
    script.fire_timeout();
    assert_eq!(script.transfer.outcome(), Some(&Outcome::TimedOut));
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.elapsed(), Duration::from_secs(3));
}

#[test]
fn rfc1350_write_timeout_resends_the_last_ack() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, &[1; 512]));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
    script.fire_timeout();
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
}

#[test]
fn block_numbers_roll_over_in_a_lock_step_upload() {
    let content = file(600_000);
    let mut pair = Pair::write(content.clone(), &[("blksize", "8")], &settings(), false);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), content);
    assert_eq!(pair.write_transfer().stats().bytes, 600_000);
}

#[test]
fn block_numbers_roll_over_in_a_windowed_upload_with_loss_at_the_wrap() {
    let content = file(600_000);
    let mut pair = Pair::write(
        content.clone(),
        &[("blksize", "8"), ("windowsize", "16")],
        &settings(),
        false,
    );
    pair.fault = first_matching(Dir::ToServer, Pkt::Data { block: 0, len: 8 }, Fate::Drop);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), content);
}

#[test]
fn rfc1350_unknown_tid_gets_error_5_and_the_write_is_untouched() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv_from(STRANGER, &data(1, b"evil"));
    assert_eq!(script.poll_to(), vec![(STRANGER, unknown_tid_error())]);
    assert!(script.sink.is_empty());
    assert_eq!(script.transfer.stats().unknown_tid_packets, 1);
    script.recv(&data(1, b"good"));
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.sink, b"good");
}

#[test]
fn malformed_and_unexpected_packets_are_dropped_and_the_write_continues() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    for bytes in [&b"\x00"[..], b"\x00\x03\x00", b"\x00\x63", &ack(1)] {
        script.recv(bytes);
    }
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.transfer.stats().malformed_packets, 4);
    script.recv(&data(1, &[5; 512]));
    assert_eq!(script.poll(), vec![Pkt::Ack(1)]);
}

#[test]
fn abort_sends_the_error_and_reports_aborted_on_write() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script
        .transfer
        .abort(ErrorCode::NotDefined, "shutting down");
    assert_eq!(
        script.poll(),
        vec![Pkt::Error {
            code: 0,
            message: "shutting down".to_owned()
        }]
    );
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Aborted));
}

#[test]
fn netascii_upload_is_decoded_before_the_sink() {
    // CR LF split across a block boundary: block 1 ends in CR, block 2 starts with LF.
    let mut text = vec![b'a'; 511];
    text.extend_from_slice(b"\nsecond line\rbare\n");
    let encoded = netascii::encode(&text);
    assert_eq!(encoded[511], b'\r');
    assert_eq!(encoded[512], b'\n');
    let mut pair = Pair::write(encoded, &[], &settings(), true);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), text);
}

#[test]
fn netascii_upload_ending_in_a_bare_cr_keeps_it() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, true);
    script.poll();
    script.recv(&data(1, b"abc\r"));
    assert!(script.transfer.needs_commit());
    assert_eq!(script.sink, b"abc\r");
}

#[test]
fn lossy_link_upload_completes_with_bounded_retransmissions() {
    let content = file(512 * 1500);
    for (seed, options) in [
        (11_u64, &[][..]),
        (12, &[("blksize", "1468"), ("windowsize", "16")][..]),
    ] {
        let mut pair = Pair::write(content.clone(), options, &settings(), false);
        pair.fault = random_drop(seed, 10);
        assert_eq!(pair.drive(), Outcome::Completed, "{options:?}");
        assert_eq!(pair.sink(), content);
        let blocks = pair.writer().blocks_sent;
        let needed = content.len() as u64 / u64::from(pair.writer().blksize) + 1;
        assert!(
            blocks <= needed * 3 / 2,
            "{options:?}: {blocks} DATA for {needed} blocks"
        );
    }
}

#[test]
fn reordered_upload_data_is_recovered() {
    let mut pair = Pair::write(
        file(64 * 40),
        &[("blksize", "64"), ("windowsize", "8")],
        &settings(),
        false,
    );
    pair.fault = first_matching(
        Dir::ToServer,
        Pkt::Data { block: 2, len: 64 },
        Fate::Delay(Duration::from_micros(10)),
    );
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), file(64 * 40));
}

#[test]
fn lost_final_ack_is_resent_while_dallying() {
    let mut pair = Pair::write(file(2000), &[], &settings(), false);
    pair.fault = first_matching(Dir::ToClient, Pkt::Ack(4), Fate::Drop);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert!(pair.writer().done);
    assert!(!pair.writer().gave_up);
    assert_eq!(pair.sink(), file(2000));
}

#[test]
fn rfc1350_lost_ack_0_is_retransmitted() {
    let mut pair = Pair::write(file(700), &[], &settings(), false);
    pair.fault = drop_nth(Dir::ToClient, 0);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sink(), file(700));
    assert_eq!(pair.sent(Dir::ToClient)[..2], [Pkt::Ack(0), Pkt::Ack(0)]);
}

#[test]
fn abort_while_dallying_keeps_the_upload_completed_and_sends_the_final_ack() {
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, b"x"));
    script.transfer.handle_committed(script.now, Ok(()));
    script
        .transfer
        .abort(ErrorCode::NotDefined, "shutting down");
    assert_eq!(
        script.poll(),
        vec![Pkt::Ack(1)],
        "the final ACK still leaves, no ERROR"
    );
    let deadline = script.transfer.poll_timeout().unwrap();
    assert!(deadline <= script.now, "the dally is cut short");
    script.transfer.handle_timeout(script.now);
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
    // Once the final ACK is out, an abort finishes at once.
    let mut script = WriteScript::new(&plain(512, 1), 1 << 20, false);
    script.poll();
    script.recv(&data(1, b"x"));
    script.transfer.handle_committed(script.now, Ok(()));
    script.poll();
    script
        .transfer
        .abort(ErrorCode::NotDefined, "shutting down");
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
}
