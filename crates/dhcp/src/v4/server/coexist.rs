//! Finding another DHCP server on a segment (the classic netboot outage) before serving it.
//!
//! The probe is a DISCOVER from one stable, locally administered MAC ([`PROBE_MAC`]): a fresh
//! MAC per probe would drain a router's pool one offer at a time. It asks for broadcast replies
//! (the prober has no address) and carries a PXE vendor class, so that a proxyDHCP server or a
//! DHCP server that hands out boot options answers too. Linux loops our own broadcast back to
//! our port 67, so the core ignores requests from [`PROBE_MAC`], and offers whose server
//! identifier is one of our addresses are not "another server".

use std::fmt;
use std::net::Ipv4Addr;

use dhcproto::v4::MessageType;

use super::{CLIENT_PORT, SERVER_PORT};
use crate::lease::MacAddr;
use crate::v4::codec::{self, HEADER_LEN, MAGIC_COOKIE, code};

/// The probe's hardware address: locally administered (bit 1 of the first octet), unicast,
/// and the same on every run ("\x02KINDL").
pub const PROBE_MAC: MacAddr = MacAddr([0x02, 0x4b, 0x49, 0x4e, 0x44, 0x4c]);

/// Ports the probe uses: it sends to servers' 67 from the client port 68.
pub const PROBE_PORTS: (u16, u16) = (CLIENT_PORT, SERVER_PORT);

/// The probe DISCOVER with transaction ID `xid`.
pub fn probe_discover(xid: u32) -> Vec<u8> {
    let mut b = vec![1, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0x80, 0]); // secs 0, broadcast flag
    b.resize(28, 0);
    b.extend_from_slice(&PROBE_MAC.0);
    b.resize(HEADER_LEN, 0);
    b.extend_from_slice(&MAGIC_COOKIE);
    b.extend_from_slice(&[code::MESSAGE_TYPE, 1, u8::from(MessageType::Discover)]);
    let class = b"PXEClient:Arch:00000:UNDI:002001";
    b.extend_from_slice(&[code::VENDOR_CLASS, class.len() as u8]);
    b.extend_from_slice(class);
    b.extend_from_slice(&[code::CLIENT_ARCH, 2, 0, 0]);
    b.extend_from_slice(&[
        code::PARAMETER_REQUEST_LIST,
        7,
        1,
        3,
        6,
        code::VENDOR_OPTIONS,
        code::VENDOR_CLASS,
        code::TFTP_SERVER_NAME,
        code::BOOTFILE_NAME,
    ]);
    b.push(code::END);
    b.resize(b.len().max(codec::BOOTP_MIN_LEN), 0);
    b
}

/// Another server's answer to the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignServer {
    /// Option 54, else the IP source of the datagram.
    pub server_id: Ipv4Addr,
    /// The address offered (0.0.0.0 from a proxyDHCP server).
    pub offered: Ipv4Addr,
    pub next_server: Ipv4Addr,
    /// Option 67 or the `file` field.
    pub file: Option<String>,
    /// Option 60 echoed (what proxyDHCP and PXE-aware servers send).
    pub vendor_class: Option<String>,
    /// Option 66.
    pub tftp_server: Option<String>,
}

impl ForeignServer {
    /// A proxyDHCP server: boot information without an address.
    pub fn is_proxy(&self) -> bool {
        self.offered.is_unspecified()
    }

    /// It hands out boot options (60, 66, 67 or a file), so it would answer PXE clients too.
    pub fn gives_boot_options(&self) -> bool {
        self.file.is_some()
            || self.tftp_server.is_some()
            || self
                .vendor_class
                .as_deref()
                .is_some_and(|c| c.starts_with("PXEClient"))
    }
}

impl fmt::Display for ForeignServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_proxy() {
            write!(f, "proxyDHCP server {}", self.server_id)?;
        } else {
            write!(
                f,
                "DHCP server {} offering {}",
                self.server_id, self.offered
            )?;
        }
        if !self.next_server.is_unspecified() {
            write!(f, ", next-server {}", self.next_server)?;
        }
        if let Some(file) = &self.file {
            write!(f, ", file {file:?}")?;
        }
        if let Some(tftp) = &self.tftp_server {
            write!(f, ", option 66 {tftp:?}")?;
        }
        if let Some(class) = &self.vendor_class {
            write!(f, ", option 60 {class:?}")?;
        }
        Ok(())
    }
}

/// Reads a datagram received on the probe socket: `Some` when it is another server's OFFER to
/// our probe `xid`; our own offers (server identifier in `ours`) and everything else are `None`.
pub fn foreign_offer(
    bytes: &[u8],
    source: Ipv4Addr,
    xid: u32,
    ours: &[Ipv4Addr],
) -> Option<ForeignServer> {
    let message = codec::decode(bytes).ok()?;
    if message.opcode() != dhcproto::v4::Opcode::BootReply
        || message.xid() != xid
        || message.mac() != Some(PROBE_MAC.0)
        || message.message_type() != Some(MessageType::Offer)
    {
        return None;
    }
    let server_id = message.server_id().unwrap_or(source);
    if ours.contains(&server_id) || ours.contains(&source) {
        return None;
    }
    let text = |raw: Option<&[u8]>| raw.map(|r| String::from_utf8_lossy(r).into_owned());
    Some(ForeignServer {
        server_id,
        offered: message.yiaddr(),
        next_server: message.siaddr(),
        file: text(message.raw(code::BOOTFILE_NAME).or(message.file())),
        vendor_class: text(message.vendor_class()),
        tftp_server: text(message.raw(code::TFTP_SERVER_NAME)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::v4::codec::{Reply, encode};

    #[test]
    fn the_probe_is_a_broadcast_pxe_discover_from_a_stable_local_mac() {
        let bytes = probe_discover(0x1234_5678);
        let m = codec::decode(&bytes).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Discover));
        assert_eq!(m.mac(), Some(PROBE_MAC.0));
        assert!(m.flags().broadcast());
        assert_eq!(m.xid(), 0x1234_5678);
        assert!(m.vendor_class().unwrap().starts_with(b"PXEClient"));
        assert_eq!(PROBE_MAC.0[0] & 0b11, 0b10, "locally administered unicast");
        assert_eq!(
            probe_discover(1)[28..34],
            probe_discover(2)[28..34],
            "same MAC every time"
        );
        assert!(bytes.len() >= 300);
    }

    fn offer(server: Ipv4Addr, yiaddr: Ipv4Addr, boot: bool) -> Vec<u8> {
        let request = codec::decode(&probe_discover(7)).unwrap();
        let mut reply = Reply::new(MessageType::Offer, &request);
        reply.yiaddr = yiaddr;
        reply.push_raw(code::SERVER_ID, server.octets());
        if boot {
            reply.siaddr = server;
            reply.push_raw(code::VENDOR_CLASS, b"PXEClient".to_vec());
            reply.set_boot_file(b"pxelinux.0");
        }
        encode(&reply).unwrap()
    }

    #[test]
    fn another_servers_offer_is_reported_with_what_it_offers() {
        let router = Ipv4Addr::new(10, 99, 0, 254);
        let found = foreign_offer(
            &offer(router, Ipv4Addr::new(10, 99, 0, 77), false),
            router,
            7,
            &[],
        )
        .unwrap();
        assert_eq!(found.server_id, router);
        assert_eq!(found.offered, Ipv4Addr::new(10, 99, 0, 77));
        assert!(!found.is_proxy());
        assert!(!found.gives_boot_options());
        assert_eq!(
            found.to_string(),
            "DHCP server 10.99.0.254 offering 10.99.0.77"
        );

        let proxy =
            foreign_offer(&offer(router, Ipv4Addr::UNSPECIFIED, true), router, 7, &[]).unwrap();
        assert!(proxy.is_proxy());
        assert!(proxy.gives_boot_options());
        assert_eq!(
            proxy.to_string(),
            "proxyDHCP server 10.99.0.254, next-server 10.99.0.254, file \"pxelinux.0\", option 60 \"PXEClient\""
        );
    }

    #[test]
    fn our_own_offers_and_other_transactions_are_not_foreign() {
        let us = Ipv4Addr::new(10, 99, 0, 1);
        let bytes = offer(us, Ipv4Addr::new(10, 99, 0, 100), false);
        assert_eq!(foreign_offer(&bytes, us, 7, &[us]), None);
        let other = Ipv4Addr::new(10, 99, 0, 2);
        let bytes = offer(other, Ipv4Addr::new(10, 99, 0, 100), false);
        assert_eq!(foreign_offer(&bytes, other, 8, &[us]), None, "another xid");
        assert_eq!(
            foreign_offer(&probe_discover(7), other, 7, &[us]),
            None,
            "a request"
        );
        assert_eq!(foreign_offer(&[0; 10], other, 7, &[us]), None);
    }
}
