//! A raw ICMPv6 socket for neighbour discovery: only the message types asked for reach it
//! (ICMP6_FILTER), every datagram comes with the interface it arrived on, its destination and
//! its IPv6 hop limit (IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT), and everything sent leaves with hop
//! limit 255 from a chosen interface and source. The kernel fills in the ICMPv6 checksum (it
//! always does on raw ICMPv6 sockets, RFC 3542 3.1), so callers leave that field zero.
//!
//! Opening one needs CAP_NET_RAW.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6, SockaddrStorage, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// `ICMP6_FILTER` from linux/icmpv6.h (not in the libc crate).
const ICMP6_FILTER: libc::c_int = 1;

/// The all-routers link-scope group, where router solicitations go (RFC 4861 6.3.7).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// The all-nodes link-scope group, where router advertisements go (RFC 4861 6.2.6).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// What came with one received ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Meta {
    /// ICMPv6 message length in the caller's buffer (the IPv6 header is not included).
    pub len: usize,
    /// The IPv6 source address.
    pub source: Ipv6Addr,
    /// The IPv6 destination address.
    pub destination: Option<Ipv6Addr>,
    /// The interface the message arrived on.
    pub ifindex: Option<u32>,
    /// The IPv6 hop limit it arrived with.
    pub hop_limit: Option<u8>,
    /// True when the message did not fit the buffer and was cut.
    pub truncated: bool,
}

/// A raw ICMPv6 socket registered with tokio.
#[derive(Debug)]
pub struct Icmpv6Socket {
    socket: AsyncFd<Socket>,
}

impl Icmpv6Socket {
    /// Opens a raw ICMPv6 socket that receives only the ICMPv6 `types` given, sends with hop
    /// limit 255 (unicast and multicast) and does not loop its own multicasts back to itself.
    pub fn open(types: &[u8]) -> io::Result<Icmpv6Socket> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        set_filter(&socket, types)?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_unicast_hops_v6(255)?;
        socket.set_multicast_loop_v6(false)?;
        socket::setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        socket::setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
        socket.set_nonblocking(true)?;
        // SAFETY: `socket` owns its descriptor, which stays open and the same until the
        // AsyncFd (its new owner) is dropped.
        let socket = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(Icmpv6Socket { socket })
    }

    /// Joins a multicast group on one interface (an already joined group is not an error).
    pub fn join(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        match self.socket.get_ref().join_multicast_v6(&group, ifindex) {
            Err(error) if error.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            other => other,
        }
    }

    /// Leaves a multicast group on one interface.
    pub fn leave(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        self.socket.get_ref().leave_multicast_v6(&group, ifindex)
    }

    /// Receives one ICMPv6 message with its packet info.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Icmpv6Meta> {
        self.socket
            .async_io(Interest::READABLE, |socket| receive(socket, buf))
            .await
    }

    /// Sends one ICMPv6 message (checksum field zero: the kernel fills it in) to `to` out of
    /// interface `ifindex`, from `from` (a link-local address of that interface) or the
    /// kernel's choice of source.
    pub async fn send(
        &self,
        message: &[u8],
        to: Ipv6Addr,
        ifindex: u32,
        from: Option<Ipv6Addr>,
    ) -> io::Result<usize> {
        self.socket
            .async_io(Interest::WRITABLE, |socket| {
                transmit(socket, message, to, ifindex, from)
            })
            .await
    }
}

/// Blocks every ICMPv6 type but `types` (ICMP6_FILTER_SETBLOCKALL, then SETPASS per type).
fn set_filter(socket: &Socket, types: &[u8]) -> io::Result<()> {
    let mut filter = [u32::MAX; 8];
    for &kind in types {
        filter[usize::from(kind >> 5)] &= !(1u32 << (kind & 31));
    }
    // SAFETY: the fd is a valid socket owned by `socket`; `filter` is the kernel's
    // `struct icmp6_filter` (eight u32 words), alive for the call, with its size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn receive(socket: &Socket, buf: &mut [u8]) -> io::Result<Icmpv6Meta> {
    let mut control = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let message = socket::recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let source = message
        .address
        .as_ref()
        .and_then(|a| a.as_sockaddr_in6())
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "message without a source"))?;
    let mut destination = None;
    let mut ifindex = None;
    let mut hop_limit = None;
    for control_message in message.cmsgs().map_err(io::Error::from)? {
        match control_message {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                ifindex = Some(info.ipi6_ifindex);
            }
            ControlMessageOwned::Ipv6HopLimit(limit) => hop_limit = u8::try_from(limit).ok(),
            _ => {}
        }
    }
    Ok(Icmpv6Meta {
        len: message.bytes,
        source,
        destination,
        ifindex,
        hop_limit,
        truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
    })
}

fn transmit(
    socket: &Socket,
    message: &[u8],
    to: Ipv6Addr,
    ifindex: u32,
    from: Option<Ipv6Addr>,
) -> io::Result<usize> {
    let info = libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: from.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
        },
        ipi6_ifindex: ifindex,
    };
    let destination = SockaddrIn6::from(SocketAddrV6::new(to, 0, 0, ifindex));
    socket::sendmsg(
        socket.as_raw_fd(),
        &[IoSlice::new(message)],
        &[ControlMessage::Ipv6PacketInfo(&info)],
        MsgFlags::empty(),
        Some(&destination),
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

    use super::*;

    const ROUTER_SOLICITATION: u8 = 133;
    const ECHO_REQUEST: u8 = 128;

    #[tokio::test]
    async fn only_the_filtered_types_arrive_with_hop_limit_and_interface() {
        let loopback = nix::net::if_::if_nametoindex("lo").unwrap();
        let listener = Icmpv6Socket::open(&[ROUTER_SOLICITATION]).unwrap();
        let sender = Icmpv6Socket::open(&[]).unwrap();
        let localhost = Ipv6Addr::LOCALHOST;
        // An echo request first: the filter must keep it (and the kernel's echo reply) out.
        sender
            .send(
                &[ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1],
                localhost,
                loopback,
                None,
            )
            .await
            .unwrap();
        let solicitation = [ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        sender
            .send(&solicitation, localhost, loopback, Some(localhost))
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let meta = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            buf[0], ROUTER_SOLICITATION,
            "the filter let another type through"
        );
        assert_eq!(meta.len, 8);
        assert_eq!(meta.source, localhost);
        assert_eq!(meta.destination, Some(localhost));
        assert_eq!(meta.ifindex, Some(loopback));
        assert_eq!(meta.hop_limit, Some(255), "sends must carry hop limit 255");
        assert!(!meta.truncated);
        // The kernel filled in the checksum.
        assert_ne!(&buf[2..4], &[0, 0]);
    }

    #[test]
    fn the_filter_passes_exactly_the_types_given() {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
        set_filter(&socket, &[133, 134]).unwrap();
        let mut filter = [0u32; 8];
        let mut len = std::mem::size_of_val(&filter) as libc::socklen_t;
        // SAFETY: valid fd; filter and len live across the call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMP6_FILTER,
                filter.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0);
        let passes = |kind: u8| filter[usize::from(kind >> 5)] & (1 << (kind & 31)) == 0;
        let passed: Vec<u8> = (0..=255).filter(|&k| passes(k)).collect();
        assert_eq!(passed, vec![133, 134]);
    }
}
