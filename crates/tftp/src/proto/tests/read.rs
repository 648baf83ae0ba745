//! Read transfers (the server sends DATA).

use std::io;
use std::time::Duration;

use super::harness::{
    CLIENT, Dir, Fate, Pair, Pkt, ReadScript, STRANGER, ack, data, drain_read, emit, error, file,
    first_matching, plain, random_drop, request, settings, unknown_tid_error,
};
use crate::netascii;
use crate::proto::{BlockSource, Negotiated, Outcome, ReadTransfer, negotiate_read};
use crate::wire::{ErrorCode, Mode, Packet, Request, RequestOption};

fn d(block: u16, len: usize) -> Pkt {
    Pkt::Data { block, len }
}

/// A windowed read as negotiated: the window comes with an OACK.
fn windowed(blksize: u16, windowsize: u16) -> Negotiated {
    Negotiated {
        oack: Some(vec![("windowsize".to_owned(), windowsize.to_string())]),
        ..plain(blksize, windowsize)
    }
}

/// A read whose OACK the peer has acknowledged (ACK 0): confirmed, DATA 1 is next.
fn started(source: Vec<u8>, negotiated: &Negotiated) -> ReadScript {
    let mut script = ReadScript::new(source, negotiated);
    assert!(matches!(script.poll()[..], [Pkt::Oack(_)]));
    script.recv(&ack(0));
    script
}

#[test]
fn rfc1350_plain_read_starts_with_data_1() {
    let mut script = ReadScript::new(file(1000), &plain(512, 1));
    assert_eq!(script.poll(), vec![d(1, 512)]);
    assert_eq!(script.poll(), vec![], "lock-step: one block, then wait");
}

#[test]
fn rfc1350_read_completes_when_the_final_block_is_acked() {
    let mut script = ReadScript::new(file(1000), &plain(512, 1));
    assert_eq!(script.poll(), vec![d(1, 512)]);
    script.recv(&ack(1));
    assert_eq!(script.poll(), vec![d(2, 488)]);
    assert_eq!(script.transfer.outcome(), None);
    script.recv(&ack(2));
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
    assert_eq!(script.transfer.poll_timeout(), None);
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.transfer.stats().bytes, 1000);
    assert_eq!(script.transfer.stats().blocks_sent, 2);
}

#[test]
fn rfc1350_file_of_whole_blocks_ends_with_an_empty_block() {
    let mut pair = Pair::read(file(1024), &[], &settings());
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(1024));
    assert_eq!(
        pair.sent(Dir::ToClient),
        vec![d(1, 512), d(2, 512), d(3, 0)]
    );
}

#[test]
fn rfc1350_empty_file_is_one_empty_block() {
    let mut pair = Pair::read(Vec::new(), &[("tsize", "0")], &settings());
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sent(Dir::ToClient), vec![d(1, 0)]);
    assert!(pair.reader().done);
    assert!(pair.reader().data.is_empty());
}

#[test]
fn rfc1350_exactly_one_block_file() {
    let mut pair = Pair::read(file(512), &[], &settings());
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sent(Dir::ToClient), vec![d(1, 512), d(2, 0)]);
    assert_eq!(pair.reader().data, file(512));
    let mut pair = Pair::read(file(1), &[], &settings());
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.sent(Dir::ToClient), vec![d(1, 1)]);
}

#[test]
fn rfc2347_read_with_oack_waits_for_ack_0() {
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("blksize", "1024"), ("tsize", "0")]),
        &settings(),
        3000,
    );
    let mut script = ReadScript::new(file(3000), &negotiated);
    assert_eq!(
        script.poll(),
        vec![Pkt::Oack(vec![
            ("blksize".to_owned(), "1024".to_owned()),
            ("tsize".to_owned(), "3000".to_owned())
        ])]
    );
    assert_eq!(script.poll(), vec![], "no DATA before ACK 0");
    script.recv(&ack(1));
    assert_eq!(
        script.poll(),
        vec![],
        "an ACK other than 0 does not start the transfer"
    );
    script.recv(&ack(0));
    assert_eq!(script.poll(), vec![d(1, 1024)]);
}

#[test]
fn rfc2347_read_oack_resent_when_the_request_is_repeated() {
    // Not on a timeout: until ACK 0 the request may be forged (see `confirm`).
    let negotiated = negotiate_read(&request(Mode::Octet, &[("blksize", "8")]), &settings(), 20);
    let mut script = ReadScript::new(file(20), &negotiated);
    let oack = Pkt::Oack(vec![("blksize".to_owned(), "8".to_owned())]);
    assert_eq!(script.poll(), vec![oack.clone()]);
    script.fire_timeout();
    assert_eq!(script.elapsed(), Duration::from_secs(1));
    script.transfer.handle_repeated_request(script.now);
    assert_eq!(script.poll(), vec![oack]);
    script.recv(&ack(0));
    assert_eq!(script.poll(), vec![d(1, 8)]);
}

#[test]
fn rfc2347_duplicate_ack_0_after_oack_is_ignored() {
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("blksize", "8"), ("windowsize", "2")]),
        &settings(),
        40,
    );
    let mut script = ReadScript::new(file(40), &negotiated);
    script.poll();
    script.recv(&ack(0));
    assert_eq!(script.poll(), vec![d(1, 8), d(2, 8)]);
    script.recv(&ack(0));
    assert_eq!(script.poll(), vec![], "a repeated ACK 0 resends nothing");
    assert_eq!(script.transfer.stats().duplicate_acks, 1);
}

#[test]
fn rfc2347_peer_error_8_ends_the_read_with_nothing_sent() {
    let negotiated = negotiate_read(&request(Mode::Octet, &[("blksize", "8")]), &settings(), 20);
    let mut script = ReadScript::new(file(20), &negotiated);
    script.poll();
    script.recv(&error(8, "blksize refused"));
    assert_eq!(script.poll(), vec![]);
    assert_eq!(
        script.transfer.outcome(),
        Some(&Outcome::PeerError {
            code: 8,
            message: "blksize refused".to_owned()
        })
    );
    assert_eq!(script.transfer.poll_timeout(), None);
}

#[test]
fn rfc1350_peer_error_mid_transfer_ends_the_read() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    script.recv(&ack(1));
    script.poll();
    script.recv(b"\x00\x05\x00\x03disk \x1b[31mfull\x00");
    assert_eq!(script.poll(), vec![]);
    match script.transfer.outcome() {
        Some(Outcome::PeerError { code: 3, message }) => {
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing moves afterwards.
    script.recv(&ack(2));
    script.at(Duration::from_secs(100));
    script.transfer.handle_timeout(script.now);
    assert_eq!(script.poll(), vec![]);
}

#[test]
fn rfc1350_lost_data_is_retransmitted_after_a_timeout() {
    let mut pair = Pair::read(file(2000), &[], &settings());
    pair.fault = first_matching(Dir::ToClient, d(2, 512), Fate::Drop);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(2000));
    assert_eq!(pair.data_sent(), vec![1, 2, 2, 3, 4]);
    let stats = pair.server.stats();
    assert_eq!(stats.timeouts, 1);
    assert_eq!(stats.retransmitted_blocks, 1);
}

#[test]
fn rfc1350_lost_ack_is_recovered() {
    let mut pair = Pair::read(file(2000), &[], &settings());
    pair.fault = first_matching(Dir::ToServer, Pkt::Ack(2), Fate::Drop);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(2000));
    // Either the server's timeout or the client's re-ACK recovers; block 3 goes out twice at
    // most.
    let sent = pair.data_sent();
    assert_eq!(sent.iter().filter(|&&block| block == 3).count(), 1);
    assert!(pair.server.stats().duplicate_acks <= 1);
}

#[test]
fn sorcerers_apprentice_duplicate_ack_never_resends_data() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    assert_eq!(script.poll(), vec![d(1, 512)]);
    script.recv(&ack(1));
    assert_eq!(script.poll(), vec![d(2, 512)]);
    script.recv(&ack(1));
    script.recv(&ack(1));
    assert_eq!(
        script.poll(),
        vec![],
        "a duplicate ACK must not resend DATA 2"
    );
    assert_eq!(script.transfer.stats().duplicate_acks, 2);
    script.recv(&ack(2));
    assert_eq!(script.poll(), vec![d(3, 512)]);
}

#[test]
fn sorcerers_apprentice_duplicated_acks_on_the_network_cause_no_extra_data() {
    // Every ACK arrives twice, and the client re-ACKs every duplicate DATA: a server with the
    // Sorcerer's Apprentice bug would send every block twice from then on.
    let mut pair = Pair::read(file(20 * 512 + 10), &[], &settings());
    pair.fault = Box::new(|sent| {
        if sent.dir == Dir::ToServer {
            Fate::Duplicate
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(20 * 512 + 10));
    assert_eq!(pair.data_sent(), (1..=21).collect::<Vec<u16>>());
    assert_eq!(pair.server.stats().duplicate_acks, 20);
}

#[test]
fn rfc7440_duplicated_acks_never_resend_a_window() {
    let mut pair = Pair::read(
        file(64 * 100),
        &[("blksize", "64"), ("windowsize", "8")],
        &settings(),
    );
    pair.fault = Box::new(|sent| {
        if sent.dir == Dir::ToServer {
            Fate::Duplicate
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(64 * 100));
    assert_eq!(pair.data_sent(), (1..=101).collect::<Vec<u16>>());
    assert_eq!(pair.server.stats().retransmitted_blocks, 0);
    assert!(pair.server.stats().duplicate_acks >= 12);
}

#[test]
fn rfc7440_read_sends_a_full_window_then_waits() {
    let mut script = started(file(10 * 8), &windowed(8, 4));
    assert_eq!(script.poll(), vec![d(1, 8), d(2, 8), d(3, 8), d(4, 8)]);
    assert_eq!(script.poll(), vec![]);
    script.recv(&ack(4));
    assert_eq!(script.poll(), vec![d(5, 8), d(6, 8), d(7, 8), d(8, 8)]);
    script.recv(&ack(8));
    // The end of the file cuts the last window short: blocks 9, 10 and the empty 11.
    assert_eq!(script.poll(), vec![d(9, 8), d(10, 8), d(11, 0)]);
    script.recv(&ack(11));
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
}

#[test]
fn upcoming_names_the_block_after_the_highest_sent() {
    let mut script = ReadScript::new(file(1000), &plain(512, 1));
    assert_eq!(script.transfer.upcoming(), Some((0, 512)), "before DATA 1");
    assert_eq!(script.poll(), vec![d(1, 512)]);
    assert_eq!(script.transfer.upcoming(), Some((512, 488)));
    script.recv(&ack(1));
    assert_eq!(script.poll(), vec![d(2, 488)]);
    assert_eq!(script.transfer.upcoming(), None, "the final block is out");
    script.recv(&ack(2));
    assert_eq!(script.transfer.upcoming(), None, "finished");

    let mut script = started(file(10 * 8), &windowed(8, 4));
    assert_eq!(script.poll().len(), 4);
    assert_eq!(
        script.transfer.upcoming(),
        Some((32, 8)),
        "the next window's first block"
    );
    script.recv(&ack(2));
    // Going back resends blocks already sent (the rest of the window is paced): the first
    // new block is still 5.
    assert_eq!(script.poll(), vec![d(3, 8)]);
    assert_eq!(script.transfer.upcoming(), Some((32, 8)));
    script.transfer.abort(ErrorCode::NotDefined, "stop");
    assert_eq!(script.transfer.upcoming(), None, "aborted");
}

#[test]
fn rfc7440_partial_ack_goes_back_n_once_per_distinct_ack() {
    let mut script = started(file(100 * 8), &windowed(8, 8));
    assert_eq!(script.poll().len(), 8);
    script.recv(&ack(3));
    let resent = script.poll();
    // A full window from block 4, paced now: the first block leaves at once.
    assert_eq!(resent, vec![d(4, 8)]);
    script.recv(&ack(3));
    script.recv(&ack(2));
    let mut blocks = resent;
    blocks.extend(script.poll_paced(7));
    assert_eq!(
        blocks,
        (4..=11).map(|block| d(block, 8)).collect::<Vec<_>>()
    );
    assert_eq!(
        script.poll_paced(1),
        vec![],
        "the repeated ACK 3 caused nothing more"
    );
    assert_eq!(script.transfer.stats().duplicate_acks, 2);
    assert_eq!(script.transfer.stats().retransmitted_blocks, 5);
}

#[test]
fn rfc7440_stale_and_unsent_acks_are_ignored() {
    let mut script = started(file(100 * 8), &windowed(8, 4));
    script.poll();
    script.recv(&ack(4));
    assert_eq!(script.poll().len(), 4);
    script.recv(&ack(2)); // stale: below the highest ACK
    script.recv(&ack(4)); // repeat
    script.recv(&ack(9)); // a block never sent
    script.recv(&ack(60000)); // far away
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.transfer.stats().duplicate_acks, 4);
    script.recv(&ack(8));
    assert_eq!(script.poll().len(), 4);
}

#[test]
fn rfc7440_timeout_resends_a_full_window_from_the_first_unacked_block() {
    let mut script = started(file(100 * 8), &windowed(8, 4));
    assert_eq!(
        script.poll(),
        (1..=4).map(|block| d(block, 8)).collect::<Vec<_>>()
    );
    script.fire_timeout();
    let resent = script.poll_paced(4);
    assert_eq!(resent, (1..=4).map(|block| d(block, 8)).collect::<Vec<_>>());
    script.recv(&ack(2));
    let resent = script.poll_paced(4);
    assert_eq!(resent, (3..=6).map(|block| d(block, 8)).collect::<Vec<_>>());
    script.fire_timeout();
    let resent = script.poll_paced(4);
    assert_eq!(
        resent,
        (3..=6).map(|block| d(block, 8)).collect::<Vec<_>>(),
        "a full window, not only the lost block"
    );
}

#[test]
fn rfc7440_atftp_style_receiver_recovers_through_its_own_timeout() {
    // atftp 0.8 ACKs only after a full window or on its own timeout.
    let mut pair = Pair::read(
        file(8 * 200),
        &[("blksize", "8"), ("windowsize", "16")],
        &settings(),
    );
    pair.reader().gap_ack = false;
    pair.fault = first_matching(Dir::ToClient, d(20, 8), Fate::Drop);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(8 * 200));
    // The server's timeout and the receiver's race (both fire about 1 s after the window): the
    // server resends the full window, then the receiver's ACK 19 makes it go back to 20. At
    // most two extra windows for one loss.
    let sent = pair.data_sent();
    assert!(sent.len() <= 201 + 2 * 16, "{} DATA sent", sent.len());
    assert_eq!(pair.server.stats().timeouts, 1);
}

#[test]
fn pacing_engages_on_loss_and_relaxes_on_clean_windows() {
    let mut script = started(file(1000 * 8), &windowed(8, 4));
    assert_eq!(script.poll().len(), 4, "no gap before any loss");
    // A partial ACK is a loss signal: the window from block 3 is paced 50 µs apart.
    script.recv(&ack(2));
    let start = script.now;
    assert_eq!(
        script.poll(),
        vec![d(3, 8)],
        "the first block leaves at once"
    );
    assert_eq!(
        script.transfer.poll_timeout(),
        Some(start + Duration::from_micros(50))
    );
    script
        .transfer
        .handle_timeout(start + Duration::from_micros(49));
    script.now = start + Duration::from_micros(49);
    assert_eq!(script.poll(), vec![], "not before the paced time");
    script.now = start + Duration::from_micros(50);
    script.transfer.handle_timeout(script.now);
    assert_eq!(script.poll(), vec![d(4, 8)]);
    assert_eq!(
        script.transfer.stats().timeouts,
        0,
        "a paced send is not a timeout"
    );
    // A second loss doubles the gap.
    script.recv(&ack(3));
    let start = script.now;
    assert_eq!(script.poll(), vec![d(4, 8)]);
    assert_eq!(
        script.transfer.poll_timeout(),
        Some(start + Duration::from_micros(100))
    );
    // Drain the window, ACK it in full: the gap halves (100 -> 50 µs)...
    let mut sent = 1;
    while sent < 4 {
        script.now = script.transfer.poll_timeout().unwrap();
        sent += script.poll().len();
    }
    script.recv(&ack(7));
    let start = script.now;
    assert_eq!(script.poll(), vec![d(8, 8)]);
    assert_eq!(
        script.transfer.poll_timeout(),
        Some(start + Duration::from_micros(50))
    );
    let mut sent = 1;
    while sent < 4 {
        script.now = script.transfer.poll_timeout().unwrap();
        sent += script.poll().len();
    }
    // ...and after another clean window it is gone.
    script.recv(&ack(11));
    assert_eq!(script.poll().len(), 4, "back to bursts");
}

#[test]
fn pacing_catches_up_when_the_timer_fires_late() {
    // The shell's timer has millisecond resolution: a 50 µs gap polled 1 ms late must release
    // the blocks that became due meanwhile, not one block per timer tick.
    let mut script = started(file(1000 * 8), &windowed(8, 32));
    assert_eq!(script.poll().len(), 32);
    script.recv(&ack(2));
    let start = script.now;
    assert_eq!(
        script.poll(),
        vec![d(3, 8)],
        "the first block leaves at once"
    );
    script.now = start + Duration::from_millis(1);
    script.transfer.handle_timeout(script.now);
    let burst = script.poll();
    assert_eq!(burst.len(), 20, "1 ms at a 50 µs gap: 20 blocks were due");
    assert_eq!(burst.first(), Some(&d(4, 8)));
    // Lateness beyond the catch-up limit is forgotten, not released in one burst.
    script.now += Duration::from_secs(1);
    script.transfer.handle_timeout(script.now);
    let after_long_stall = script.poll();
    assert!(
        after_long_stall.len() <= 2 * 20 + 1,
        "{}",
        after_long_stall.len()
    );
}

#[test]
fn pacing_gap_never_stretches_a_window_past_a_quarter_of_the_timeout() {
    let negotiated = Negotiated {
        timeout: Duration::from_secs(1),
        ..windowed(8, 1000)
    };
    let mut script = started(file(100_000), &negotiated);
    script.poll();
    for _ in 0..10 {
        // Ten partial ACKs in a row: the nominal gap reaches its 4 ms cap.
        let acked = script.transfer.stats().bytes / 8 + 1;
        script.recv(&ack(acked as u16));
        script.poll();
        let gap = script.transfer.poll_timeout().unwrap() - script.now;
        assert!(gap <= Duration::from_micros(250), "{gap:?}");
    }
}

#[test]
fn rfc1350_read_times_out_after_max_retries() {
    let negotiated = Negotiated {
        max_retries: 3,
        ..plain(512, 1)
    };
    let mut script = ReadScript::new(file(2000), &negotiated);
    assert_eq!(script.poll(), vec![d(1, 512)]);
    script.recv(&ack(1));
    assert_eq!(script.poll(), vec![d(2, 512)]);
    for retry in 1..=3 {
        script.fire_timeout();
        assert_eq!(script.poll(), vec![d(2, 512)], "retry {retry}");
    }
    script.fire_timeout();
    assert_eq!(script.transfer.outcome(), Some(&Outcome::TimedOut));
    assert_eq!(script.poll(), vec![], "no ERROR to a peer that is gone");
    assert_eq!(script.elapsed(), Duration::from_secs(4));
    assert_eq!(script.transfer.stats().timeouts, 4);
    assert_eq!(script.transfer.poll_timeout(), None);
}

#[test]
fn rfc1350_retry_count_resets_on_progress() {
    let negotiated = Negotiated {
        max_retries: 1,
        ..plain(512, 1)
    };
    let mut script = ReadScript::new(file(2000), &negotiated);
    script.poll();
    for block in 1..=3 {
        script.fire_timeout();
        script.poll();
        script.recv(&ack(block));
        script.poll();
    }
    assert_eq!(script.transfer.outcome(), None);
    assert_eq!(script.transfer.stats().timeouts, 3);
}

#[test]
fn handle_timeout_before_the_deadline_does_nothing() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    script.at(Duration::from_millis(999));
    script.transfer.handle_timeout(script.now);
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.transfer.stats().timeouts, 0);
}

#[test]
fn block_numbers_roll_over_in_a_lock_step_read() {
    // 600 KB at blksize 8: 75 001 blocks, so the 16-bit block number wraps once.
    let content = file(600_000);
    let mut pair = Pair::read(content.clone(), &[("blksize", "8")], &settings());
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, content);
    let sent = pair.data_sent();
    assert_eq!(sent.len(), 75_001);
    assert_eq!(&sent[65_534..65_537], &[65_535, 0, 1]);
    assert_eq!(pair.server.stats().retransmitted_blocks, 0);
}

#[test]
fn block_numbers_roll_over_in_a_windowed_read_with_loss_at_the_wrap() {
    let content = file(600_000);
    let mut pair = Pair::read(
        content.clone(),
        &[("blksize", "8"), ("windowsize", "32")],
        &settings(),
    );
    let mut dropped = [false; 2];
    pair.fault = Box::new(move |sent| match sent.pkt {
        Pkt::Data { block: 65_535, .. } if !dropped[0] => {
            dropped[0] = true;
            Fate::Drop
        }
        Pkt::Data { block: 0, .. } if !dropped[1] => {
            dropped[1] = true;
            Fate::Drop
        }
        _ => Fate::Deliver,
    });
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, content);
    assert!(pair.data_sent().len() < 75_001 + 3 * 32);
}

#[test]
fn rfc1350_unknown_tid_gets_error_5_and_the_read_is_untouched() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    script.recv_from(STRANGER, &ack(1));
    assert_eq!(script.poll_to(), vec![(STRANGER, unknown_tid_error())]);
    assert_eq!(script.transfer.stats().unknown_tid_packets, 1);
    // The stranger's ACK 1 did not advance the transfer.
    script.recv(&ack(1));
    assert_eq!(script.poll(), vec![d(2, 512)]);
    // Same IP, other port; other IP, same port: both strangers.
    let other_ip = std::net::SocketAddr::new("192.0.2.99".parse().unwrap(), CLIENT.port());
    script.recv_from(other_ip, b"garbage");
    assert_eq!(script.poll_to(), vec![(other_ip, unknown_tid_error())]);
}

#[test]
fn unknown_tid_error_packets_are_not_answered_and_replies_are_bounded() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    script.recv_from(STRANGER, &error(0, "go away"));
    assert_eq!(script.poll_to(), vec![]);
    for _ in 0..100 {
        script.recv_from(STRANGER, &ack(1));
    }
    let replies = script.poll_to();
    assert!(replies.len() <= 8, "{} replies queued", replies.len());
    assert_eq!(script.transfer.stats().unknown_tid_packets, 101);
}

#[test]
fn unknown_tid_in_the_pair_gets_error_5() {
    let mut pair = Pair::read(file(3000), &[], &settings());
    pair.step();
    pair.inject(STRANGER, super::harness::SERVER, ack(1));
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.stranger_received, vec![unknown_tid_error()]);
    assert_eq!(pair.reader().data, file(3000));
}

#[test]
fn malformed_packets_from_the_peer_are_dropped_and_the_read_continues() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    for bytes in [
        &b""[..],
        b"\x00",
        b"\x00\x04\x00",
        b"\x00\x09\x00\x01",
        b"\xff\xff",
    ] {
        script.recv(bytes);
    }
    assert_eq!(script.poll(), vec![]);
    assert_eq!(script.transfer.stats().malformed_packets, 5);
    script.recv(&ack(1));
    assert_eq!(script.poll(), vec![d(2, 512)]);
}

#[test]
fn rfc1350_requests_oack_and_data_from_the_peer_mid_read_are_dropped() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    let rrq = emit(&Packet::Rrq(Request {
        filename: b"other",
        mode: Mode::Octet,
        options: vec![],
    }));
    let wrq = emit(&Packet::Wrq(Request {
        filename: b"other",
        mode: Mode::Octet,
        options: vec![RequestOption {
            name: "tsize",
            value: "1",
        }],
    }));
    let oack = emit(&Packet::Oack {
        options: vec![("blksize", "8")],
    });
    for bytes in [rrq, wrq, oack, data(1, b"x")] {
        script.recv(&bytes);
    }
    assert_eq!(
        script.poll(),
        vec![],
        "no ERROR: a stray packet must not kill the transfer"
    );
    assert_eq!(script.transfer.outcome(), None);
    assert_eq!(script.transfer.stats().malformed_packets, 4);
    script.recv(&ack(1));
    assert_eq!(script.poll(), vec![d(2, 512)]);
}

/// A source that fails on every read.
struct FailingSource;

impl BlockSource for FailingSource {
    fn len(&self) -> u64 {
        4096
    }

    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("medium error"))
    }
}

#[test]
fn source_read_error_sends_error_0_and_fails() {
    let origin = super::harness::origin();
    let mut transfer = ReadTransfer::new(CLIENT, &plain(512, 1), 4096, origin);
    let sent = drain_read(&mut transfer, origin, &FailingSource);
    assert_eq!(
        sent,
        vec![(
            CLIENT,
            Pkt::Error {
                code: 0,
                message: "read error".to_owned()
            }
        )]
    );
    match transfer.outcome() {
        Some(Outcome::Failed {
            code: ErrorCode::NotDefined,
            message,
        }) => assert!(message.contains("medium error"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(transfer.poll_timeout(), None);
}

#[test]
fn source_shorter_than_announced_fails_instead_of_ending_early() {
    let origin = super::harness::origin();
    let source = file(600);
    // The shell announced 2000 bytes, but the file shrank to 600.
    let mut transfer = ReadTransfer::new(CLIENT, &plain(512, 1), 2000, origin);
    assert_eq!(
        drain_read(&mut transfer, origin, &source),
        vec![(CLIENT, d(1, 512))]
    );
    transfer.handle_datagram(origin, CLIENT, &ack(1));
    let sent = drain_read(&mut transfer, origin, &source);
    assert!(
        matches!(sent.as_slice(), [(_, Pkt::Error { code: 0, .. })]),
        "{sent:?}"
    );
    assert!(matches!(transfer.outcome(), Some(Outcome::Failed { .. })));
}

/// A source that returns at most 3 bytes per call (partial reads are not the end of the file).
struct TrickleSource(Vec<u8>);

impl BlockSource for TrickleSource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap().min(self.0.len());
        let n = buf.len().min(3).min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

#[test]
fn short_reads_from_the_source_are_retried_until_the_block_is_full() {
    let origin = super::harness::origin();
    let source = TrickleSource(file(700));
    let mut transfer = ReadTransfer::new(CLIENT, &plain(512, 1), 700, origin);
    let mut buf = vec![0; 516];
    let transmit = transfer.poll_transmit(origin, &source, &mut buf).unwrap();
    assert_eq!(transmit.len, 516);
    assert_eq!(&buf[4..516], &file(700)[..512]);
}

/// A source that holds its bytes in memory but never lends them, so every block is copied.
struct CopiedSource(Vec<u8>);

impl BlockSource for CopiedSource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(offset, buf)
    }
}

/// A source that lends one byte too few: a broken lender must not shorten a block.
struct ShortLender(Vec<u8>);

impl BlockSource for ShortLender {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(offset, buf)
    }

    fn lend(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        self.0.get(start..start + len.checked_sub(1)?)
    }
}

#[test]
fn a_lent_block_leaves_only_the_header_in_the_buffer() {
    let origin = super::harness::origin();
    let source = file(1300);
    let mut transfer = ReadTransfer::new(CLIENT, &plain(512, 8), 1300, origin);
    // Four bytes are enough when the source lends: the payload never passes through `buf`.
    let mut buf = vec![0xAA; 4];
    let mut blocks = Vec::new();
    // DATA 1 alone until the peer confirms, then the rest of the window.
    for ack_after in [Some(1), None] {
        while let Some(transmit) = transfer.poll_transmit(origin, &source, &mut buf) {
            assert_eq!(transmit.len, 4);
            assert_eq!(transmit.datagram_len(), 4 + transmit.tail.len());
            blocks.push(super::harness::datagram(&buf, &transmit));
        }
        if let Some(block) = ack_after {
            transfer.handle_datagram(origin, CLIENT, &ack(block));
        }
    }
    let offsets_and_lens = [(0, 512), (512, 512), (1024, 276)];
    assert_eq!(blocks.len(), offsets_and_lens.len());
    for (index, (bytes, (offset, len))) in blocks.iter().zip(offsets_and_lens).enumerate() {
        let block = u16::try_from(index + 1).unwrap();
        assert_eq!(bytes[..4], [0, 3, 0, block as u8], "block {block} header");
        assert_eq!(&bytes[4..], &source[offset..offset + len], "block {block}");
    }
}

#[test]
fn lent_and_copied_blocks_are_the_same_datagrams() {
    for (file_len, blksize, windowsize) in
        [(0, 512, 1), (512, 512, 1), (5000, 512, 4), (3000, 1468, 2)]
    {
        let bytes = file(file_len);
        let lent = run_to_completion(&bytes, blksize, windowsize);
        let copied = run_to_completion(&CopiedSource(bytes.clone()), blksize, windowsize);
        let short = run_to_completion(&ShortLender(bytes.clone()), blksize, windowsize);
        assert_eq!(lent, copied, "{file_len} bytes at blksize {blksize}");
        assert_eq!(short, copied, "a short loan is copied instead");
    }
}

/// Every datagram a lock-step or windowed read sends when each window is ACKed at once.
fn run_to_completion(source: &dyn BlockSource, blksize: u16, windowsize: u16) -> Vec<Vec<u8>> {
    let origin = super::harness::origin();
    let mut transfer = ReadTransfer::new(CLIENT, &plain(blksize, windowsize), source.len(), origin);
    let mut buf = vec![0; crate::wire::MAX_PACKET];
    let mut sent = Vec::new();
    while transfer.outcome().is_none() {
        let mut last_block = None;
        while let Some(transmit) = transfer.poll_transmit(origin, source, &mut buf) {
            let datagram = super::harness::datagram(&buf, &transmit);
            last_block = Some(u16::from_be_bytes([datagram[2], datagram[3]]));
            sent.push(datagram);
            assert!(sent.len() < 10_000, "the transfer never ends");
        }
        if let Some(block) = last_block {
            transfer.handle_datagram(origin, CLIENT, &ack(block));
        }
    }
    assert_eq!(transfer.outcome(), Some(&Outcome::Completed));
    sent
}

#[test]
fn a_transmit_buffer_too_small_fails_without_panicking() {
    let origin = super::harness::origin();
    let source = CopiedSource(file(2000));
    let mut transfer = ReadTransfer::new(CLIENT, &plain(1024, 1), 2000, origin);
    let mut buf = vec![0; 600];
    let transmit = transfer.poll_transmit(origin, &source, &mut buf).unwrap();
    assert!(matches!(
        super::harness::summarize(&buf[..transmit.len]),
        Pkt::Error { code: 0, .. }
    ));
    assert!(matches!(transfer.outcome(), Some(Outcome::Failed { .. })));
}

#[test]
fn abort_sends_the_error_and_reports_aborted() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    script
        .transfer
        .abort(ErrorCode::NotDefined, "server shutting down");
    assert_eq!(
        script.transfer.outcome(),
        None,
        "not before the ERROR is out"
    );
    assert_eq!(
        script.poll(),
        vec![Pkt::Error {
            code: 0,
            message: "server shutting down".to_owned()
        }]
    );
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Aborted));
    script.transfer.abort(ErrorCode::NotDefined, "again");
    assert_eq!(script.poll(), vec![], "abort after the end is a no-op");
}

#[test]
fn netascii_read_serves_the_encoded_source_with_an_exact_tsize() {
    let text = b"line one\nline two\r\nbare\rcr\n".repeat(40);
    let encoded = netascii::encode(&text);
    let negotiated = negotiate_read(
        &request(Mode::Netascii, &[("tsize", "0")]),
        &settings(),
        netascii::encoded_len(&text),
    );
    assert_eq!(negotiated.tsize, Some(encoded.len() as u64));
    let mut pair = Pair::read_negotiated(encoded.clone(), &negotiated);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, encoded);
    let mut decoder = netascii::Decoder::new();
    let mut decoded = Vec::new();
    for block in pair.reader().data.chunks(512) {
        decoder.decode(block, &mut decoded);
    }
    decoder.finish(&mut decoded);
    assert_eq!(decoded, text);
}

#[test]
fn reordered_data_is_recovered_by_go_back_n() {
    let mut pair = Pair::read(
        file(64 * 50),
        &[("blksize", "64"), ("windowsize", "8")],
        &settings(),
    );
    pair.fault = first_matching(
        Dir::ToClient,
        d(3, 64),
        Fate::Delay(Duration::from_micros(10)),
    );
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(64 * 50));
    assert!(pair.elapsed() < Duration::from_secs(1), "no timeout needed");
}

#[test]
fn reordered_acks_are_harmless() {
    let mut pair = Pair::read(
        file(64 * 50),
        &[("blksize", "64"), ("windowsize", "4")],
        &settings(),
    );
    pair.fault = first_matching(
        Dir::ToServer,
        Pkt::Ack(4),
        Fate::Delay(Duration::from_millis(5)),
    );
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(64 * 50));
}

#[test]
fn lossy_link_lock_step_read_completes_with_bounded_retransmissions() {
    let content = file(512 * 2000);
    let mut pair = Pair::read(content.clone(), &[], &settings());
    pair.fault = random_drop(0x5eed, 10);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, content);
    let sent = pair.data_sent().len();
    assert!(sent <= 2001 * 21 / 20, "{sent} DATA for 2001 blocks");
}

#[test]
fn lossy_link_windowed_read_completes_with_bounded_retransmissions() {
    let content = file(1468 * 3000);
    for (seed, windowsize) in [(1_u64, "8"), (2, "16"), (3, "64")] {
        let mut pair = Pair::read(
            content.clone(),
            &[("blksize", "1468"), ("windowsize", windowsize)],
            &settings(),
        );
        pair.fault = random_drop(seed, 10);
        assert_eq!(pair.drive(), Outcome::Completed, "windowsize {windowsize}");
        assert_eq!(pair.reader().data, content);
        let sent = pair.data_sent().len();
        // Go-back-N resends part of a window per loss; bounded well below "every window twice".
        assert!(
            sent <= 3001 * 3 / 2,
            "windowsize {windowsize}: {sent} DATA for 3001 blocks"
        );
        assert!(
            pair.server.stats().timeouts < 40,
            "windowsize {windowsize}: {} timeouts",
            pair.server.stats().timeouts
        );
    }
}

#[test]
fn lossy_link_pacing_engages() {
    let content = file(1468 * 1000);
    let mut pair = Pair::read(
        content.clone(),
        &[("blksize", "1468"), ("windowsize", "16")],
        &settings(),
    );
    pair.fault = random_drop(7, 20);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, content);
    let data_times: Vec<Duration> = pair
        .log
        .iter()
        .filter(|sent| matches!(sent.pkt, Pkt::Data { .. }))
        .map(|sent| sent.at)
        .collect();
    // Unpaced, consecutive DATA leave at the same instant (inside a window) or at least a round
    // trip (2 ms) apart (across windows). A gap strictly between is pacing.
    let paced = data_times
        .windows(2)
        .filter(|pair| {
            let gap = pair[1] - pair[0];
            gap >= Duration::from_micros(50) && gap < Duration::from_millis(2)
        })
        .count();
    assert!(paced > 10, "only {paced} paced DATA seen");
}

#[test]
fn rfc2347_lost_oack_is_retransmitted_in_the_pair() {
    let mut pair = Pair::read(file(3000), &[("blksize", "1024")], &settings());
    pair.fault = super::harness::drop_nth(Dir::ToClient, 0);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(3000));
    assert_eq!(pair.reader().oacks.len(), 1);
    let sent = pair.sent(Dir::ToClient);
    assert!(
        matches!(sent[..2], [Pkt::Oack(_), Pkt::Oack(_)]),
        "{sent:?}"
    );
    assert!(
        pair.elapsed() > Duration::from_secs(1),
        "the OACK waited for a timeout"
    );
}
