//! Property tests: any sequence of datagrams (from the peer or from strangers) and timeouts
//! leaves no panic and no stuck session.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::harness::{
    CLIENT, Pkt, STRANGER, ack, data, drain_read, drain_write, error, file, origin,
};
use crate::proto::{Negotiated, ReadTransfer, WriteTransfer};

/// One thing that happens to a transfer.
#[derive(Debug, Clone)]
enum Event {
    /// Arbitrary bytes from the peer.
    PeerBytes(Vec<u8>),
    /// An ACK of the highest DATA block sent so far, minus `back` (reads).
    AckRecent {
        back: u16,
    },
    /// An ACK of any block.
    PeerAck(u16),
    /// The next in-order DATA block, full or final (writes).
    DataNext {
        is_final: bool,
    },
    /// Any DATA block, of any length up to 600.
    PeerData {
        block: u16,
        len: u16,
    },
    PeerError(u16),
    StrangerBytes(Vec<u8>),
    /// Time passes; `handle_timeout` is called.
    Advance {
        millis: u32,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Event::PeerBytes),
        6 => (0_u16..3).prop_map(|back| Event::AckRecent { back }),
        2 => any::<u16>().prop_map(Event::PeerAck),
        6 => prop::bool::weighted(0.05).prop_map(|is_final| Event::DataNext { is_final }),
        2 => (any::<u16>(), 0_u16..600).prop_map(|(block, len)| Event::PeerData { block, len }),
        1 => any::<u16>().prop_map(Event::PeerError),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Event::StrangerBytes),
        4 => (0_u32..3000).prop_map(|millis| Event::Advance { millis }),
    ]
}

fn negotiated() -> impl Strategy<Value = Negotiated> {
    (
        prop_oneof![Just(8_u16), Just(512)],
        prop_oneof![Just(1_u16), Just(4)],
        1_u64..=3,
        0_u32..=3,
        any::<bool>(),
    )
        .prop_map(
            |(blksize, windowsize, timeout, max_retries, with_oack)| Negotiated {
                blksize,
                windowsize,
                timeout: Duration::from_secs(timeout),
                tsize: None,
                oack: with_oack.then(|| vec![("blksize".to_owned(), blksize.to_string())]),
                max_retries,
            },
        )
}

/// The longest a transfer may live after its last input: every retransmission of the retry
/// budget, the one that gives up, plus the pacing of one window (at most a quarter timeout); or
/// the dally of a committed upload.
fn give_up_bound(negotiated: &Negotiated) -> Duration {
    let retries = negotiated.timeout * (negotiated.max_retries + 1) + negotiated.timeout / 4;
    // A committed upload dallies two timeouts.
    retries.max(negotiated.timeout * 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn read_any_events_no_panic_no_stuck_session(
        negotiated in negotiated(),
        file_len in 0_usize..3000,
        events in prop::collection::vec(event(), 0..60),
    ) {
        let source = file(file_len);
        let mut now = origin();
        let mut transfer = ReadTransfer::new(CLIENT, &negotiated, file_len as u64, now);
        let mut highest_sent: u16 = 0;
        let note_sent = |highest_sent: &mut u16, sent: Vec<(std::net::SocketAddr, Pkt)>| {
            for (_, pkt) in sent {
                if let Pkt::Data { block, .. } = pkt {
                    *highest_sent = block;
                }
            }
        };
        note_sent(&mut highest_sent, drain_read(&mut transfer, now, &source));
        for event in events {
            match event {
                Event::PeerBytes(bytes) => transfer.handle_datagram(now, CLIENT, &bytes),
                Event::AckRecent { back } => {
                    transfer.handle_datagram(now, CLIENT, &ack(highest_sent.wrapping_sub(back)));
                }
                Event::PeerAck(block) => transfer.handle_datagram(now, CLIENT, &ack(block)),
                Event::DataNext { .. } => transfer.handle_datagram(now, CLIENT, &data(1, b"x")),
                Event::PeerData { block, len } => {
                    transfer.handle_datagram(now, CLIENT, &data(block, &vec![0; usize::from(len)]));
                }
                Event::PeerError(code) => transfer.handle_datagram(now, CLIENT, &error(code, "e")),
                Event::StrangerBytes(bytes) => transfer.handle_datagram(now, STRANGER, &bytes),
                Event::Advance { millis } => {
                    now += Duration::from_millis(u64::from(millis));
                    transfer.handle_timeout(now);
                }
            }
            note_sent(&mut highest_sent, drain_read(&mut transfer, now, &source));
        }
        // No more input: the transfer must end on its own, in bounded time.
        let last_input = now;
        let mut rounds = 0;
        while transfer.outcome().is_none() {
            let deadline = transfer.poll_timeout();
            prop_assert!(deadline.is_some(), "running transfer without a deadline: stuck");
            now = now.max(deadline.unwrap_or(now));
            transfer.handle_timeout(now);
            drain_read(&mut transfer, now, &source);
            rounds += 1;
            prop_assert!(rounds < 100_000, "never finishes");
        }
        prop_assert!(
            now - last_input <= give_up_bound(&negotiated),
            "finished {:?} after the last input", now - last_input
        );
        prop_assert_eq!(transfer.poll_timeout(), None);
    }

    #[test]
    fn write_any_events_no_panic_no_stuck_session(
        negotiated in negotiated(),
        netascii in any::<bool>(),
        max_size in prop_oneof![Just(u64::MAX), 0_u64..5000],
        events in prop::collection::vec(event(), 0..60),
    ) {
        let mut now = origin();
        let mut transfer = WriteTransfer::new(CLIENT, &negotiated, max_size, netascii, now);
        let mut sink: Vec<u8> = Vec::new();
        let mut next_block: u16 = 1;
        let blksize = usize::from(negotiated.blksize);
        drain_write(&mut transfer, now);
        for event in events {
            match event {
                Event::PeerBytes(bytes) => transfer.handle_datagram(now, CLIENT, &bytes, &mut sink),
                Event::AckRecent { back } => {
                    transfer.handle_datagram(now, CLIENT, &ack(back), &mut sink);
                }
                Event::PeerAck(block) => transfer.handle_datagram(now, CLIENT, &ack(block), &mut sink),
                Event::DataNext { is_final } => {
                    let len = if is_final { blksize / 2 } else { blksize };
                    let payload = vec![b'\r'; len];
                    transfer.handle_datagram(now, CLIENT, &data(next_block, &payload), &mut sink);
                    next_block = next_block.wrapping_add(1);
                }
                Event::PeerData { block, len } => {
                    let payload = vec![b'a'; usize::from(len)];
                    transfer.handle_datagram(now, CLIENT, &data(block, &payload), &mut sink);
                }
                Event::PeerError(code) => {
                    transfer.handle_datagram(now, CLIENT, &error(code, "e"), &mut sink);
                }
                Event::StrangerBytes(bytes) => {
                    transfer.handle_datagram(now, STRANGER, &bytes, &mut sink);
                }
                Event::Advance { millis } => {
                    now += Duration::from_millis(u64::from(millis));
                    transfer.handle_timeout(now);
                }
            }
            if transfer.needs_commit() {
                transfer.handle_committed(now, Ok(()));
            }
            drain_write(&mut transfer, now);
            prop_assert!(sink.len() as u64 <= max_size, "sink past max_size");
        }
        let last_input = now;
        let mut rounds = 0;
        while transfer.outcome().is_none() {
            if transfer.needs_commit() {
                transfer.handle_committed(now, Ok(()));
            }
            drain_write(&mut transfer, now);
            if transfer.outcome().is_some() {
                break;
            }
            let deadline: Option<Instant> = transfer.poll_timeout();
            prop_assert!(deadline.is_some(), "running transfer without a deadline: stuck");
            now = now.max(deadline.unwrap_or(now));
            transfer.handle_timeout(now);
            rounds += 1;
            prop_assert!(rounds < 100_000, "never finishes");
        }
        prop_assert!(
            now - last_input <= give_up_bound(&negotiated),
            "finished {:?} after the last input", now - last_input
        );
        prop_assert_eq!(transfer.poll_timeout(), None);
    }
}
