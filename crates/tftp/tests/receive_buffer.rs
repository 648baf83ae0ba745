//! The window cap rests on a model of what the kernel charges a receiving socket per DATA
//! datagram (`datagram_memory_cost`). This checks the model against the running kernel: a
//! whole granted window, sent to a socket that reads nothing, must be queued in full in a
//! default-sized receive buffer (212,992 bytes), or a client with that buffer loses the end of
//! every window.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly")]

use std::io::{ErrorKind, IoSlice};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use kindling_tftp::proto::{DEFAULT_RECEIVE_BUFFER_BUDGET, datagram_memory_cost};

/// What Linux reports for a socket whose SO_RCVBUF was set to the usual default (106,496 is
/// doubled to 212,992).
const DEFAULT_RCVBUF: usize = 212_992;

fn set_rcvbuf(socket: &UdpSocket, bytes: libc::c_int) -> usize {
    let fd = socket.as_raw_fd();
    let len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap();
    // SAFETY: fd is an open socket, and the option value is a c_int of the given length.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const bytes).cast(),
            len,
        )
    };
    assert_eq!(set, 0, "setsockopt SO_RCVBUF");
    let mut value: libc::c_int = 0;
    let mut value_len = len;
    // SAFETY: as above, with room for a c_int.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut value).cast(),
            &raw mut value_len,
        )
    };
    assert_eq!(got, 0, "getsockopt SO_RCVBUF");
    usize::try_from(value).unwrap()
}

/// A socket with the usual default receive buffer, which will read nothing until counted.
fn idle_receiver() -> UdpSocket {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rcvbuf = set_rcvbuf(&receiver, 106_496);
    assert_eq!(
        rcvbuf, DEFAULT_RCVBUF,
        "the kernel did not give the usual default receive buffer (net.core.rmem_max too low?)"
    );
    receiver
}

/// Reads everything `receiver` kept, checking that each datagram is `payload` bytes long, and
/// returns how many there were.
fn count_kept(receiver: &UdpSocket, payload: usize) -> usize {
    receiver.set_nonblocking(true).unwrap();
    let mut buf = vec![0; 65_536];
    let mut received = 0;
    loop {
        match receiver.recv(&mut buf) {
            Ok(len) => {
                assert_eq!(len, payload);
                received += 1;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => return received,
            Err(error) => panic!("recv: {error}"),
        }
    }
}

/// How many of `count` datagrams of `payload` bytes a socket that reads nothing keeps.
fn queued(payload: usize, count: usize) -> usize {
    let receiver = idle_receiver();
    let to = receiver.local_addr().unwrap();
    let datagram = vec![0x5a; payload];
    for _ in 0..count {
        // A sender of its own for each datagram, so that nothing about one socket's send
        // buffer can hold datagrams back: only the receiver's buffer decides what is kept.
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(sender.send_to(&datagram, to).unwrap(), payload);
    }
    count_kept(&receiver, payload)
}

/// Sends, with `send`, the largest window the cap grants at each blksize to a default-sized
/// receive buffer, and checks that all of it was kept.
fn assert_granted_windows_fit(blksizes: &[u16], send: fn(usize, usize) -> usize, how: &str) {
    for &blksize in blksizes {
        let window = DEFAULT_RECEIVE_BUFFER_BUDGET / datagram_memory_cost(blksize) + 1;
        let payload = usize::from(blksize) + 4;
        assert_eq!(
            send(payload, window),
            window,
            "a window of {window} x {blksize}-byte blocks sent {how} overflowed a \
             {DEFAULT_RCVBUF}-byte buffer"
        );
    }
}

#[test]
fn a_granted_window_fits_a_default_receive_buffer() {
    assert_granted_windows_fit(
        &[8, 512, 1428, 1468, 4096, 8192, 8948, 16384, 32768, 65464],
        queued,
        "one by one",
    );
}

#[test]
fn the_cost_model_is_not_far_from_what_the_kernel_charges() {
    // A model that charged far too much would shrink windows for nothing: the kernel must drop
    // a window only a few datagrams larger than the one granted.
    for (blksize, slack) in [(512u16, 16), (1468, 8), (8192, 1), (65464, 1)] {
        let window = DEFAULT_RECEIVE_BUFFER_BUDGET / datagram_memory_cost(blksize) + 1;
        let payload = usize::from(blksize) + 4;
        let kept = queued(payload, window + slack + 1);
        assert!(
            kept <= window + slack,
            "the kernel kept {kept} of {}-byte datagrams; the model grants only {window}",
            payload
        );
    }
}

/// How many of `count` datagrams of `payload` bytes a socket that reads nothing keeps when
/// they arrive as the server sends a window: gathered into segmented sends (UDP GSO) of at
/// most 64 datagrams and 65,507 bytes, which the receiving kernel cuts apart.
fn queued_segmented(payload: usize, count: usize) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let receiver = idle_receiver();
    let to = receiver.local_addr().unwrap();
    let datagram = vec![0x5a; payload];
    let per_send = (65_507 / payload).clamp(1, 64);
    let mut left = count;
    while left > 0 {
        let batch = left.min(per_send);
        let parts: Vec<IoSlice<'_>> = (0..batch).map(|_| IoSlice::new(&datagram)).collect();
        let sent = runtime.block_on(async {
            let sender = kindling_udp::UdpEndpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            sender
                .send_segmented(&parts, u16::try_from(payload).unwrap(), to, None)
                .await
                .unwrap()
        });
        assert_eq!(sent, batch * payload);
        left -= batch;
    }
    // Every datagram cut from a batch is one segment long (the batches hold whole ones).
    count_kept(&receiver, payload)
}

#[test]
fn a_granted_window_sent_in_segmented_batches_fits_a_default_receive_buffer() {
    assert_granted_windows_fit(
        &[8, 512, 1428, 1468, 4096, 8192, 16384, 32768],
        queued_segmented,
        "in segmented batches",
    );
}
