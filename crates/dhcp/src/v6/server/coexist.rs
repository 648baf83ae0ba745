//! Finding another DHCPv6 server on a link. Unlike DHCPv4, where two servers on one segment
//! hand out conflicting leases and Kindling stops serving, RFC 8415 lets clients choose among
//! ADVERTISEs by their preference option (18.2.9). So when another server answers, Kindling
//! keeps serving and lowers its own preference on that link to 0, leaving the segment's
//! clients to the server that was there first, and says so in the log.
//!
//! The probe is a SOLICIT from one stable DUID ([`PROBE_DUID`], the DUID-LL of the DHCPv4
//! probe's MAC) with one IA_NA and no Rapid Commit, so no server commits a lease to it. The
//! core ignores SOLICITs from that DUID in case our own probe loops back.

use std::fmt;
use std::net::Ipv6Addr;

use super::hex;
use crate::v4::server::coexist::PROBE_MAC;
use crate::v6::codec::{IaNa, Message, MessageType, Status, code};

/// The probe's client DUID: DUID-LL (type 3, hardware type 1) of the DHCPv4 probe's MAC.
pub const PROBE_DUID: [u8; 10] = [
    0,
    3,
    0,
    1,
    PROBE_MAC.0[0],
    PROBE_MAC.0[1],
    PROBE_MAC.0[2],
    PROBE_MAC.0[3],
    PROBE_MAC.0[4],
    PROBE_MAC.0[5],
];
/// The probe's IA_NA identifier ("KIND").
pub const PROBE_IAID: u32 = 0x4b49_4e44;

/// The probe SOLICIT with `transaction_id`: an EDK2-like request (IA_NA, option request for
/// the boot file URL and DNS), so a server that hands out boot URLs shows it.
pub fn probe_solicit(transaction_id: [u8; 3]) -> Vec<u8> {
    let mut message = Message::new(MessageType::Solicit, transaction_id);
    message.options.push(code::CLIENT_ID, PROBE_DUID.to_vec());
    message.options.push(code::ELAPSED_TIME, vec![0, 0]);
    message.options.push(
        code::IA_NA,
        IaNa {
            iaid: PROBE_IAID,
            t1: 0,
            t2: 0,
            addresses: Vec::new(),
            status: None,
        }
        .emit(),
    );
    let requested: Vec<u8> = [code::BOOTFILE_URL, code::DNS_SERVERS, code::DOMAIN_LIST]
        .iter()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    message.options.push(code::ORO, requested);
    message.emit()
}

/// Another server's ADVERTISE to the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignServer6 {
    /// Its DUID (option 2).
    pub duid: Vec<u8>,
    /// Where the ADVERTISE came from.
    pub source: Ipv6Addr,
    /// Option 7; a server that sends none has preference 0 (RFC 8415 18.2.9).
    pub preference: u8,
    /// The first address it offered, if any.
    pub offered: Option<Ipv6Addr>,
    /// Option 59, when it hands out a boot file URL.
    pub boot_url: Option<String>,
}

impl fmt::Display for ForeignServer6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (DUID {}), preference {}",
            self.source,
            hex(&self.duid),
            self.preference
        )?;
        match self.offered {
            Some(address) => write!(f, ", offered {address}")?,
            None => f.write_str(", offered no address")?,
        }
        if let Some(url) = &self.boot_url {
            write!(f, ", boot file URL {url}")?;
        }
        Ok(())
    }
}

/// The other server behind `bytes`, when it is an ADVERTISE to our probe `transaction_id`
/// from a server whose DUID is not `ours`.
pub fn foreign_advertise(
    bytes: &[u8],
    source: Ipv6Addr,
    transaction_id: [u8; 3],
    ours: &[u8],
) -> Option<ForeignServer6> {
    let message = Message::parse(bytes).ok()?;
    if message.message_type != MessageType::Advertise
        || message.transaction_id != transaction_id
        || message.client_id() != Some(&PROBE_DUID[..])
    {
        return None;
    }
    let duid = message.server_id()?;
    if duid == ours {
        return None;
    }
    let offered = message
        .ia_nas()
        .iter()
        .filter(|ia| {
            ia.status
                .as_ref()
                .is_none_or(|(s, _)| *s == Status::Success)
        })
        .flat_map(|ia| ia.addresses.iter().map(|a| a.address))
        .next();
    Some(ForeignServer6 {
        duid: duid.to_vec(),
        source,
        preference: message
            .options
            .get(code::PREFERENCE)
            .and_then(|p| p.first().copied())
            .unwrap_or(0),
        offered,
        boot_url: message
            .options
            .get(code::BOOTFILE_URL)
            .map(|u| String::from_utf8_lossy(u).into_owned()),
    })
}
