//! A permanent-for-now ARP entry for a client that has no address yet, so that an OFFER or ACK
//! can be unicast to its new address (RFC 2131 4.1; ISC dhcpd and dnsmasq do the same).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Socket, Type};

use crate::lease::MacAddr;

/// Tells the kernel that `address` on `interface` is at `mac` (SIOCSARP, needs CAP_NET_ADMIN).
pub(crate) fn set_entry(interface: &str, address: Ipv4Addr, mac: MacAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: arpreq is plain old data; all-zero is a valid value.
    let mut request: libc::arpreq = unsafe { std::mem::zeroed() };
    let protocol = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(address).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in fits in the sockaddr the kernel reads arp_pa as (both 16 bytes).
    request.arp_pa = unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(protocol) };
    request.arp_ha.sa_family = libc::ARPHRD_ETHER;
    for (slot, byte) in request.arp_ha.sa_data.iter_mut().zip(mac.0) {
        *slot = byte as libc::c_char;
    }
    request.arp_flags = libc::ATF_COM;
    let name = interface.as_bytes();
    if name.len() >= request.arp_dev.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (slot, byte) in request.arp_dev.iter_mut().zip(name) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCSARP reads the arpreq we own; the fd is a valid socket for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSARP, &raw const request) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
