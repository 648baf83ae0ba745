//! The coexistence probe on the wire: one DISCOVER out of an interface from port 68, and the
//! offers that come back within the wait (see `v4::server::coexist` for what is sent and how
//! answers are read).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::v4::server::coexist::{ForeignServer, PROBE_PORTS, foreign_offer, probe_discover};

/// Probes `interface` for other DHCP servers: sends the probe DISCOVER and collects the other
/// servers' offers until `wait` has passed. `ours` are this host's addresses (our own offers
/// and looped-back datagrams are not "another server").
pub(crate) async fn probe(
    interface: &str,
    ours: &[Ipv4Addr],
    wait: Duration,
    xid: u32,
) -> io::Result<Vec<ForeignServer>> {
    let (client_port, server_port) = PROBE_PORTS;
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Not a service socket: a DHCP client on this host may hold port 68 too, and sharing it
    // for two seconds is what we want.
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(interface.as_bytes()))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, client_port)).into())?;
    let socket = tokio::net::UdpSocket::from_std(socket.into())?;
    let discover = probe_discover(xid);
    socket
        .send_to(
            &discover,
            SocketAddrV4::new(Ipv4Addr::BROADCAST, server_port),
        )
        .await?;
    let mut deadline = tokio::time::Instant::now() + wait;
    let mut found: Vec<ForeignServer> = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let (len, from) = received?;
        let SocketAddr::V4(from) = from else { continue };
        if let Some(server) = foreign_offer(&buf[..len], *from.ip(), xid, ours)
            && !found.iter().any(|f| f.server_id == server.server_id)
        {
            found.push(server);
            // Report soon; a little longer for a second server answering the same broadcast.
            deadline = deadline.min(tokio::time::Instant::now() + Duration::from_millis(300));
        }
    }
    Ok(found)
}
