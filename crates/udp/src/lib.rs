//! UDP sockets for Kindling's services: socket options set once, and per-datagram packet info
//! (the destination address a datagram was sent to and the interface it arrived on), so that a
//! reply can leave from the very address the client talked to.
//!
//! This crate knows no protocol. It is Linux-only: `IP_PKTINFO` and `IPV6_RECVPKTINFO` carry
//! the packet info, `SIOCGIFMTU` the interface MTU.
//!
//! Architecture invariant: service sockets never set `SO_REUSEADDR` or `SO_REUSEPORT`, so a
//! second daemon on the same port fails loudly instead of silently sharing it.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

pub mod icmpv6;
pub mod netif;

use netif::is_unicast_link_local;

/// Where a datagram came from and where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Payload length in the caller's buffer.
    pub len: usize,
    /// The sender.
    pub source: SocketAddr,
    /// The destination address in the IP header (ours, or a broadcast/multicast address).
    pub local_ip: Option<IpAddr>,
    /// The interface the datagram arrived on.
    pub ifindex: Option<u32>,
    /// True when the datagram did not fit the buffer and was cut.
    pub truncated: bool,
}

/// A UDP socket registered with tokio, with packet info enabled.
#[derive(Debug)]
pub struct UdpEndpoint {
    socket: tokio::net::UdpSocket,
}

impl UdpEndpoint {
    /// Binds a service socket: `IPV6_V6ONLY` on IPv6 (so `0.0.0.0:N` and `[::]:N` can both
    /// be bound), no address reuse, packet info on, and no DF bit (some PXE ROMs choke on it).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let domain = if addr.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        set_no_fragment_bit(&socket, addr.is_ipv6())?;
        if addr.is_ipv4() {
            socket::setsockopt(&socket, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
        } else {
            socket::setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
                .map_err(io::Error::from)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = tokio::net::UdpSocket::from_std(socket.into())?;
        Ok(Self { socket })
    }

    /// Binds a socket for one transfer on `ip` (with the scope of `ifindex` for link-local
    /// IPv6), on a port from `ports` when given, else on a kernel-chosen ephemeral port.
    ///
    /// Ports in the range are tried from a starting point derived from `seed`, so that
    /// concurrent transfers spread over the range instead of racing for its first port.
    pub fn bind_ephemeral(
        ip: IpAddr,
        ifindex: Option<u32>,
        ports: Option<(u16, u16)>,
        seed: u64,
    ) -> io::Result<Self> {
        let with_port = |port: u16| -> SocketAddr {
            match ip {
                IpAddr::V4(v4) => SocketAddr::from((v4, port)),
                IpAddr::V6(v6) => {
                    let scope = if is_unicast_link_local(&v6) {
                        ifindex.unwrap_or(0)
                    } else {
                        0
                    };
                    SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
                }
            }
        };
        let Some((low, high)) = ports else {
            return Self::bind(with_port(0));
        };
        let span = u64::from(high.saturating_sub(low)) + 1;
        let start = seed % span;
        let mut last_error = io::Error::new(io::ErrorKind::AddrInUse, "port range is empty");
        for step in 0..span {
            let offset = (start + step) % span;
            let Ok(port) = u16::try_from(u64::from(low) + offset) else {
                continue;
            };
            match Self::bind(with_port(port)) {
                Ok(endpoint) => return Ok(endpoint),
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("every port in {low}-{high} is in use ({last_error})"),
        ))
    }

    /// Allows sending to broadcast addresses (DHCP replies to clients without an address).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket.set_broadcast(on)
    }

    /// Joins an IPv6 multicast group on one interface (DHCPv6's ff02::1:2).
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, ifindex: u32) -> io::Result<()> {
        self.socket.join_multicast_v6(group, ifindex)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Asks for a receive buffer of `bytes` (the kernel caps it at net.core.rmem_max and
    /// doubles it for its bookkeeping) so that a burst of requests arriving while the service
    /// is busy waits in the queue instead of being dropped; returns what the kernel granted.
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<usize> {
        let socket = socket2::SockRef::from(&self.socket);
        socket.set_recv_buffer_size(bytes)?;
        socket.recv_buffer_size()
    }

    /// Receives one datagram with its packet info.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        self.socket
            .async_io(Interest::READABLE, || recv_with_info(&self.socket, buf))
            .await
    }

    /// Receives one datagram without packet info: the cheaper path for a socket bound to one
    /// address, where the destination is known.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// Receives one datagram if one is queued, without waiting.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        self.socket
            .try_io(Interest::READABLE, || recv_with_info(&self.socket, buf))
    }

    /// Sends with the kernel's choice of source address (right for a socket bound to one
    /// address).
    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(buf, to).await
    }

    /// Sends one datagram gathered from `parts`, in order: a header and a payload that lives
    /// elsewhere leave without being copied together first. `from` sends from that address
    /// (and interface), as [`UdpEndpoint::send_from`] does; `None` leaves the source to the
    /// kernel.
    pub async fn send_vectored(
        &self,
        parts: &[IoSlice<'_>],
        to: SocketAddr,
        from: Option<(IpAddr, Option<u32>)>,
    ) -> io::Result<usize> {
        self.send_parts(parts, to, from, None).await
    }

    /// Sends from the given local address (and interface), for a socket bound to a wildcard
    /// address that must answer from the address the client talked to.
    pub async fn send_from(
        &self,
        buf: &[u8],
        to: SocketAddr,
        from: IpAddr,
        ifindex: Option<u32>,
    ) -> io::Result<usize> {
        self.send_parts(&[IoSlice::new(buf)], to, Some((from, ifindex)), None)
            .await
    }

    /// Sends several datagrams in one call: the bytes gathered from `parts` are cut into
    /// datagrams of `segment_size` bytes each, the last one possibly shorter (UDP generic
    /// segmentation offload, Linux 4.18 and later). The stack is walked once for all of them,
    /// and the NIC or the kernel cuts them just before they leave; the receiver sees ordinary
    /// datagrams. `from` sends from that address (and interface), as
    /// [`UdpEndpoint::send_from`] does.
    ///
    /// An error of kind `Unsupported` means this kernel or route cannot segment: send the
    /// datagrams one by one instead.
    pub async fn send_segmented(
        &self,
        parts: &[IoSlice<'_>],
        segment_size: u16,
        to: SocketAddr,
        from: Option<(IpAddr, Option<u32>)>,
    ) -> io::Result<usize> {
        self.send_parts(parts, to, from, Some(segment_size))
            .await
            .map_err(|error| match error.raw_os_error() {
                // EIO: no segmentation on this route (e.g. IPsec); EMSGSIZE (EINVAL before
                // Linux 6.x): a segment larger than the route's MTU, which only unsegmented
                // datagrams may exceed (the kernel fragments them); EINVAL/ENOPROTOOPT: a
                // kernel without UDP_SEGMENT.
                Some(libc::EIO | libc::EMSGSIZE | libc::EINVAL | libc::ENOPROTOOPT) => {
                    io::Error::new(io::ErrorKind::Unsupported, error)
                }
                _ => error,
            })
    }

    /// One `sendmsg` once the socket is writable; see [`send_message`].
    async fn send_parts(
        &self,
        parts: &[IoSlice<'_>],
        to: SocketAddr,
        from: Option<(IpAddr, Option<u32>)>,
        segment_size: Option<u16>,
    ) -> io::Result<usize> {
        let source = from.map(|(ip, ifindex)| SourceAddress { ip, ifindex });
        self.socket
            .async_io(Interest::WRITABLE, || {
                send_message(&self.socket, parts, to, source, segment_size)
            })
            .await
    }
}

/// Clears the DF bit on IPv4 (Linux sets it on UDP by default) and lets the kernel fragment on
/// IPv6 rather than fail with EMSGSIZE.
fn set_no_fragment_bit(socket: &Socket, ipv6: bool) -> io::Result<()> {
    let (level, name, value) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )
    };
    let value: libc::c_int = value;
    // SAFETY: the fd is a valid socket owned by `socket`; the option value is a c_int that
    // lives for the duration of the call and its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn recv_with_info(socket: &tokio::net::UdpSocket, buf: &mut [u8]) -> io::Result<RecvMeta> {
    let mut control = nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let message = socket::recvmsg::<SockaddrStorage>(
        socket.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let source = message
        .address
        .as_ref()
        .and_then(storage_to_socket_addr)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without a source"))?;
    let mut local_ip = None;
    let mut ifindex = None;
    for control_message in message.cmsgs().map_err(io::Error::from)? {
        match control_message {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                local_ip = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
                ifindex = u32::try_from(info.ipi_ifindex).ok();
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                local_ip = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                ifindex = Some(info.ipi6_ifindex);
            }
            _ => {}
        }
    }
    Ok(RecvMeta {
        len: message.bytes,
        source,
        local_ip,
        ifindex,
        truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
    })
}

/// The address (and interface) a datagram must leave from, for a wildcard-bound socket.
#[derive(Debug, Clone, Copy)]
struct SourceAddress {
    ip: IpAddr,
    ifindex: Option<u32>,
}

/// One `sendmsg`: the datagram gathered from `iov`, from `source` when given (packet info),
/// cut by the kernel into datagrams of `segment_size` bytes when given (UDP GSO).
fn send_message(
    socket: &tokio::net::UdpSocket,
    iov: &[IoSlice<'_>],
    to: SocketAddr,
    source: Option<SourceAddress>,
    segment_size: Option<u16>,
) -> io::Result<usize> {
    let fd = socket.as_fd().as_raw_fd();
    let info_v4 = match source {
        Some(SourceAddress {
            ip: IpAddr::V4(from),
            ifindex,
        }) => Some(libc::in_pktinfo {
            ipi_ifindex: ifindex.and_then(|i| i32::try_from(i).ok()).unwrap_or(0),
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(from).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        }),
        _ => None,
    };
    let info_v6 = match source {
        Some(SourceAddress {
            ip: IpAddr::V6(from),
            ifindex,
        }) => Some(libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: from.octets(),
            },
            ipi6_ifindex: ifindex.unwrap_or(0),
        }),
        _ => None,
    };
    let packet_info = match (to, &info_v4, &info_v6) {
        (SocketAddr::V4(_), Some(info), None) => Some(ControlMessage::Ipv4PacketInfo(info)),
        (SocketAddr::V6(_), None, Some(info)) => Some(ControlMessage::Ipv6PacketInfo(info)),
        (_, None, None) => None,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination address families differ",
            ));
        }
    };
    let segmentation = segment_size.as_ref().map(ControlMessage::UdpGsoSegments);
    // No allocation on the per-datagram path: the control messages live on the stack.
    let (one, two);
    let control: &[ControlMessage<'_>] = match (packet_info, segmentation) {
        (Some(info), Some(gso)) => {
            two = [info, gso];
            &two
        }
        (Some(only), None) | (None, Some(only)) => {
            one = [only];
            &one
        }
        (None, None) => &[],
    };
    match to {
        SocketAddr::V4(to) => socket::sendmsg(
            fd,
            iov,
            control,
            MsgFlags::empty(),
            Some(&SockaddrIn::from(to)),
        ),
        SocketAddr::V6(to) => socket::sendmsg(
            fd,
            iov,
            control,
            MsgFlags::empty(),
            Some(&SockaddrIn6::from(to)),
        ),
    }
    .map_err(io::Error::from)
}

fn storage_to_socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    storage.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

/// The MTU of an interface, by index.
pub fn interface_mtu(ifindex: u32) -> io::Result<u32> {
    let name = nix::net::if_::if_indextoname(ifindex).map_err(io::Error::from)?;
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value for it.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    let name_bytes = name.as_bytes();
    if name_bytes.len() >= request.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(name_bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_ifru.ifru_mtu of the ifreq we own; the
    // fd is a valid socket for the duration of the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &raw mut request) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFMTU the union holds the MTU.
    let mtu = unsafe { request.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative MTU"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

    use super::*;

    #[tokio::test]
    async fn the_receive_buffer_grows_up_to_the_system_cap() {
        let endpoint = UdpEndpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let default = socket2::SockRef::from(&endpoint.socket)
            .recv_buffer_size()
            .unwrap();
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let asked = 4 << 20;
        let granted = endpoint.set_recv_buffer(asked).unwrap();
        // Linux doubles the value for its bookkeeping and caps the request at rmem_max.
        assert_eq!(granted, 2 * asked.min(cap));
        assert!(granted >= default);
    }

    #[tokio::test]
    async fn reports_destination_address_and_interface_on_ipv4() {
        let server = UdpEndpoint::bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", ("127.0.0.2", port)).unwrap();
        let mut buf = [0u8; 64];
        let meta = server.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..meta.len], b"hello");
        assert_eq!(meta.local_ip, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(meta.source, client.local_addr().unwrap());
        let ifindex = meta.ifindex.unwrap();
        assert!(interface_mtu(ifindex).unwrap() >= 1500);
    }

    #[tokio::test]
    async fn replies_from_the_address_the_client_talked_to() {
        let server = UdpEndpoint::bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"ping", ("127.0.0.3", port)).unwrap();
        let mut buf = [0u8; 64];
        let meta = server.recv(&mut buf).await.unwrap();
        server
            .send_from(b"pong", meta.source, meta.local_ip.unwrap(), meta.ifindex)
            .await
            .unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 3], port)));
    }

    #[tokio::test]
    async fn gathered_parts_leave_as_one_datagram() {
        let server = UdpEndpoint::bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = client.local_addr().unwrap();
        let parts = [IoSlice::new(b"\x00\x03\x00\x01"), IoSlice::new(b"payload")];
        assert_eq!(server.send_vectored(&parts, to, None).await.unwrap(), 11);
        let from_address = "127.0.0.4".parse().unwrap();
        assert_eq!(
            server
                .send_vectored(&parts, to, Some((from_address, None)))
                .await
                .unwrap(),
            11
        );
        let mut buf = [0u8; 64];
        for expected_source in [
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from(([127, 0, 0, 4], port)),
        ] {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"\x00\x03\x00\x01payload");
            assert_eq!(from, expected_source);
        }
    }

    #[tokio::test]
    async fn a_segmented_send_arrives_as_datagrams_cut_at_the_segment_size() {
        let server = UdpEndpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = client.local_addr().unwrap();
        let (a, b, c) = ([1u8; 100], [2u8; 100], [3u8; 30]);
        let parts = [IoSlice::new(&a), IoSlice::new(&b), IoSlice::new(&c)];
        assert_eq!(
            server.send_segmented(&parts, 100, to, None).await.unwrap(),
            230
        );
        let from = Some(("127.0.0.1".parse().unwrap(), None));
        assert_eq!(
            server.send_segmented(&parts, 100, to, from).await.unwrap(),
            230
        );
        let mut buf = [0u8; 512];
        for _ in 0..2 {
            for expected in [&a[..], &b[..], &c[..]] {
                let (n, _) = client.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], expected);
            }
        }
        // A batch the kernel will not build (70 segments, 70,000 bytes) is refused as
        // unsupported, so that the caller sends the datagrams one by one.
        let too_big = [0u8; 1000];
        let parts = [IoSlice::new(&too_big); 70];
        let refused = server.send_segmented(&parts, 1000, to, None).await;
        assert_eq!(refused.unwrap_err().kind(), io::ErrorKind::Unsupported);
    }

    #[tokio::test]
    async fn reports_destination_on_ipv6() {
        let server = UdpEndpoint::bind("[::1]:0".parse().unwrap()).unwrap();
        let to = server.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("[::1]:0").unwrap();
        client.send_to(b"v6", to).unwrap();
        let mut buf = [0u8; 64];
        let meta = server.recv(&mut buf).await.unwrap();
        assert_eq!(meta.local_ip, Some("::1".parse().unwrap()));
        server
            .send_from(b"ok", meta.source, meta.local_ip.unwrap(), meta.ifindex)
            .await
            .unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ok");
    }

    #[test]
    fn a_second_bind_on_the_same_port_fails() {
        let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let taken = first.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let error = UdpEndpoint::bind(taken).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn v4_and_v6_wildcards_bind_side_by_side() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let v6 = UdpEndpoint::bind("[::]:0".parse().unwrap()).unwrap();
        let port = v6.local_addr().unwrap().port();
        UdpEndpoint::bind(SocketAddr::from(([0, 0, 0, 0], port))).unwrap();
    }

    #[test]
    fn port_range_binds_inside_the_range_and_reports_exhaustion() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = UdpEndpoint::bind_ephemeral(ip, None, Some((port, port)), 7).unwrap();
        assert_eq!(first.local_addr().unwrap().port(), port);
        let error = UdpEndpoint::bind_ephemeral(ip, None, Some((port, port)), 7).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn df_bit_is_cleared() {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        set_no_fragment_bit(&socket, false).unwrap();
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, value and len live across the call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0);
        assert_eq!(value, libc::IP_PMTUDISC_DONT);
    }
}
