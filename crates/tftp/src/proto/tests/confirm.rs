//! Confirmation: a read transfer whose peer has acknowledged nothing yet sends its first packet
//! once, resends it only when the request is repeated, and never sends more than one block
//! (see the `proto` module doc). This is what keeps a forged RRQ from buying a burst of DATA
//! aimed at the forged source.

use std::time::Duration;

use super::harness::{
    Dir, Fate, Pair, Pkt, ReadScript, ack, file, first_matching, plain, request, settings,
};
use crate::proto::{Negotiated, Outcome, negotiate_read};
use crate::wire::Mode;

fn d(block: u16, len: usize) -> Pkt {
    Pkt::Data { block, len }
}

fn with_options(options: &[(&str, &str)], len: u64) -> Negotiated {
    negotiate_read(&request(Mode::Octet, options), &settings(), len)
}

#[test]
fn an_unconfirmed_plain_read_sends_data_1_once_and_ends_quietly_after_its_budget() {
    let mut script = ReadScript::new(file(5000), &plain(512, 1));
    assert_eq!(script.poll(), vec![d(1, 512)]);
    assert!(!script.transfer.is_confirmed());
    for timeout in 1..=5 {
        script.fire_timeout();
        assert_eq!(script.poll(), vec![], "resent on timeout {timeout}");
        assert_eq!(script.transfer.outcome(), None);
    }
    script.fire_timeout();
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Unconfirmed));
    assert_eq!(
        script.poll(),
        vec![],
        "no ERROR to a source that never answered"
    );
    assert_eq!(
        script.elapsed(),
        Duration::from_secs(6),
        "the normal budget: (max_retries + 1) * timeout"
    );
    assert_eq!(script.transfer.stats().blocks_sent, 1);
}

#[test]
fn each_repeat_of_the_request_resends_the_first_data_once() {
    let mut script = ReadScript::new(file(5000), &plain(512, 1));
    assert_eq!(script.poll(), vec![d(1, 512)]);
    script.at(Duration::from_millis(900));
    script.transfer.handle_repeated_request(script.now);
    assert_eq!(script.poll(), vec![d(1, 512)]);
    assert_eq!(script.poll(), vec![], "one packet per repeat");
    script.fire_timeout();
    assert_eq!(script.poll(), vec![], "still nothing on the timer");
    script.transfer.handle_repeated_request(script.now);
    script.transfer.handle_repeated_request(script.now);
    assert_eq!(
        script.poll(),
        vec![d(1, 512)],
        "two repeats before a poll: the packet is due, once"
    );
    assert_eq!(script.transfer.stats().repeated_requests, 3);
    assert_eq!(script.transfer.stats().retransmitted_blocks, 2);
}

#[test]
fn after_the_first_ack_losses_are_recovered_on_the_timer_as_before() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    assert_eq!(script.poll(), vec![d(1, 512)]);
    script.recv(&ack(1));
    assert!(script.transfer.is_confirmed());
    assert_eq!(script.poll(), vec![d(2, 512)]);
    script.fire_timeout();
    assert_eq!(script.poll(), vec![d(2, 512)], "resent on the timer");
    script.transfer.handle_repeated_request(script.now);
    assert_eq!(
        script.poll(),
        vec![],
        "a confirmed transfer ignores a repeat"
    );
    for block in 2..=4 {
        script.recv(&ack(block));
        script.poll();
    }
    assert_eq!(script.transfer.outcome(), Some(&Outcome::Completed));
}

#[test]
fn a_confirmed_transfer_that_goes_silent_still_times_out_as_before() {
    let mut script = ReadScript::new(file(2000), &plain(512, 1));
    script.poll();
    script.recv(&ack(1));
    script.poll();
    for _ in 1..=5 {
        script.fire_timeout();
        assert_eq!(script.poll(), vec![d(2, 512)]);
    }
    script.fire_timeout();
    assert_eq!(script.transfer.outcome(), Some(&Outcome::TimedOut));
}

#[test]
fn an_unconfirmed_oack_is_sent_once_and_resent_only_on_a_repeat() {
    let negotiated = with_options(&[("blksize", "1024"), ("tsize", "0")], 3000);
    let mut script = ReadScript::new(file(3000), &negotiated);
    let oack = script.poll();
    assert!(matches!(oack[..], [Pkt::Oack(_)]), "{oack:?}");
    script.fire_timeout();
    assert_eq!(script.poll(), vec![], "not resent on the timer");
    script.transfer.handle_repeated_request(script.now);
    assert_eq!(script.poll(), oack);
    script.recv(&ack(0));
    assert!(script.transfer.is_confirmed(), "ACK 0 confirms");
    assert_eq!(script.poll(), vec![d(1, 1024)]);
    script.fire_timeout();
    assert_eq!(
        script.poll(),
        vec![d(1, 1024)],
        "confirmed: the timer resends"
    );
}

#[test]
fn an_unconfirmed_windowed_read_sends_only_the_oack_then_full_windows_after_ack_0() {
    let negotiated = with_options(&[("blksize", "512"), ("windowsize", "8")], 20_000);
    assert_eq!(negotiated.windowsize, 8);
    let mut script = ReadScript::new(file(20_000), &negotiated);
    assert!(matches!(script.poll()[..], [Pkt::Oack(_)]));
    script.transfer.handle_repeated_request(script.now);
    assert!(
        matches!(script.poll()[..], [Pkt::Oack(_)]),
        "a repeat is still one packet"
    );
    script.recv(&ack(0));
    let window = script.poll_paced(8);
    assert_eq!(window, (1..=8).map(|b| d(b, 512)).collect::<Vec<_>>());
}

#[test]
fn an_unconfirmed_transfer_never_sends_more_than_one_block_whatever_its_window() {
    // No OACK but a window (only a test can negotiate that): the window waits for an ACK.
    let mut script = ReadScript::new(file(20_000), &plain(512, 8));
    assert_eq!(script.poll(), vec![d(1, 512)]);
    script.transfer.handle_repeated_request(script.now);
    assert_eq!(script.poll(), vec![d(1, 512)]);
    script.recv(&ack(1));
    assert_eq!(
        script.poll_paced(8),
        (2..=9).map(|b| d(b, 512)).collect::<Vec<_>>()
    );
}

#[test]
fn confirmation_is_per_transfer() {
    let mut first = ReadScript::new(file(600), &plain(512, 1));
    first.poll();
    first.recv(&ack(1));
    first.poll();
    first.recv(&ack(2));
    assert_eq!(first.transfer.outcome(), Some(&Outcome::Completed));
    // The same peer's next request starts from nothing: forged RRQs can carry its address.
    let mut second = ReadScript::new(file(600), &plain(512, 1));
    assert_eq!(second.poll(), vec![d(1, 512)]);
    second.fire_timeout();
    assert_eq!(second.poll(), vec![]);
}

#[test]
fn a_client_that_repeats_its_request_gets_over_a_lost_first_data() {
    let mut pair = Pair::read(file(3000), &[], &settings());
    pair.fault = first_matching(Dir::ToClient, d(1, 512), Fate::Drop);
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(3000));
    assert_eq!(pair.reader().requests_sent, 2);
    let data_1 = pair
        .sent(Dir::ToClient)
        .into_iter()
        .filter(|pkt| *pkt == d(1, 512))
        .count();
    assert_eq!(data_1, 2, "once, then once for the repeat");
}

#[test]
fn a_client_that_repeats_its_request_gets_over_a_lost_oack() {
    let mut pair = Pair::read(file(3000), &[("blksize", "1024")], &settings());
    pair.fault = first_matching(
        Dir::ToClient,
        Pkt::Oack(vec![("blksize".to_owned(), "1024".to_owned())]),
        Fate::Drop,
    );
    assert_eq!(pair.drive(), Outcome::Completed);
    assert_eq!(pair.reader().data, file(3000));
    assert_eq!(pair.reader().requests_sent, 2);
}

#[test]
fn a_forged_request_gets_one_packet_and_nothing_more() {
    // The "client" is a victim that never asked: it neither ACKs nor repeats.
    let mut pair = Pair::read(file(100_000), &[], &settings());
    pair.reader().repeats_request = false;
    pair.fault = Box::new(|sent| {
        if sent.dir == Dir::ToServer {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(pair.drive(), Outcome::Unconfirmed);
    assert_eq!(pair.sent(Dir::ToClient), vec![d(1, 512)]);
    // A 516-byte DATA for a request of at least 10 bytes of TFTP (a one-letter name in octet
    // mode), each in 28 bytes of IPv4 and UDP headers: under 15x.
    let (bytes_out, bytes_in) = (516 + 28, 10 + 28);
    assert!(bytes_out < 15 * bytes_in);
}
