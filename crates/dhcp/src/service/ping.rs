//! The ping check: does anything answer an ICMP echo on an address before it is offered?

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// How a probe socket was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An unprivileged ICMP datagram socket (net.ipv4.ping_group_range): the kernel fills in
    /// the identifier and delivers only our replies, without the IP header.
    Datagram,
    /// A raw ICMP socket (CAP_NET_RAW): every ICMP datagram, with the IP header.
    Raw,
}

fn open() -> io::Result<(Socket, Kind)> {
    let (socket, kind) = match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
        Ok(socket) => (socket, Kind::Datagram),
        Err(_) => (
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?,
            Kind::Raw,
        ),
    };
    socket.set_nonblocking(true)?;
    Ok((socket, kind))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends up to two echo requests to `address` and reports whether an echo reply came back
/// within `timeout`. `Err` when no ICMP socket can be opened (the caller treats the address
/// as silent and says so once).
pub(crate) async fn probe(address: Ipv4Addr, timeout: Duration, ident: u16) -> io::Result<bool> {
    let (socket, kind) = open()?;
    // tokio's UDP socket only issues sendto/recvfrom, which ICMP sockets take as well.
    let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
    let mut request = vec![8, 0, 0, 0];
    request.extend_from_slice(&ident.to_be_bytes());
    request.extend_from_slice(&1u16.to_be_bytes());
    request.extend_from_slice(b"kindling ping check");
    let sum = checksum(&request);
    request[2..4].copy_from_slice(&sum.to_be_bytes());
    let target = std::net::SocketAddr::V4(SocketAddrV4::new(address, 0));
    let deadline = tokio::time::Instant::now() + timeout;
    let resend_at = tokio::time::Instant::now() + timeout / 2;
    let mut resent = false;
    send(&socket, &request, &target).await?;
    let mut buf = [0u8; 1500];
    loop {
        let wake = if resent {
            deadline
        } else {
            resend_at.min(deadline)
        };
        let received = tokio::time::timeout_at(wake, socket.recv_from(&mut buf)).await;
        let (len, from) = match received {
            Err(_) if !resent && tokio::time::Instant::now() < deadline => {
                resent = true;
                send(&socket, &request, &target).await?;
                continue;
            }
            Err(_) => return Ok(false),
            Ok(got) => got?,
        };
        if from.ip() != std::net::IpAddr::V4(address) {
            continue;
        }
        let bytes = &buf[..len];
        let icmp = match kind {
            Kind::Datagram => bytes,
            Kind::Raw => {
                let header = usize::from(bytes.first().copied().unwrap_or(0) & 0x0f) * 4;
                bytes.get(header..).unwrap_or_default()
            }
        };
        let is_reply = icmp.first() == Some(&0);
        let ours = kind == Kind::Datagram || icmp.get(4..6) == Some(&ident.to_be_bytes()[..]);
        if is_reply && ours {
            return Ok(true);
        }
    }
}

async fn send(
    socket: &tokio::net::UdpSocket,
    request: &[u8],
    target: &std::net::SocketAddr,
) -> io::Result<()> {
    socket.send_to(request, target).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_the_internet_checksum() {
        // RFC 1071's example words sum to 0xddf2; the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A packet with its checksum filled in sums to zero.
        let mut packet = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'x'];
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&packet), 0);
    }
}
