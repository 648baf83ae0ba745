//! The lease record and its versioned binary encoding (the payload of one journal frame).
//!
//! Payload, version 1 (all integers little-endian):
//!
//! ```text
//! u8  record version (1)      u8  family (4 = DHCPv4; 6 is reserved for DHCPv6 leases)
//! u8  state (0 active, 1 released, 2 expired, 3 abandoned)
//! u8  abandon reason (0 none, 1 declined by the client, 2 address in use, 3 other)
//! [6] MAC                     [4] IPv4 address
//! i64 granted-at seconds, u32 nanoseconds (since the Unix epoch; negative seconds before it)
//! i64 expires-at seconds, u32 nanoseconds
//! u8  client-id present, u8 length, bytes
//! u8  hostname present, u8 length, UTF-8 bytes
//! u8  reason text length, UTF-8 bytes (only for "other")
//! ```
//!
//! Bytes after these fields are ignored, so a later build may append fields without a new record
//! version; anything incompatible gets a new version byte, which older builds refuse to rewrite.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Record version written by this build.
pub(crate) const RECORD_VERSION: u8 = 1;
const FAMILY_V4: u8 = 4;

/// The longest client identifier, hostname or reason text a record holds (DHCP option length).
pub const MAX_FIELD_LEN: usize = 255;

/// A 6-byte Ethernet hardware address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why an address was set aside.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AbandonReason {
    /// The client sent DHCPDECLINE (someone else answered for the address).
    Declined,
    /// Our own ARP/ICMP probe found something answering on the address.
    InUse,
    /// Anything else, in words.
    Other(String),
}

/// The durable states of a lease. Offers are not durable and never reach the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Bound to the client until `expires_at`.
    Active,
    /// The client released it; kept so that the client gets the same address back.
    Released,
    /// Ran out without a renewal (see [`LeaseStore::reclaim_expired`](super::LeaseStore::reclaim_expired)).
    Expired,
    /// Set aside until `expires_at` (ISC dhcpd's "abandoned", Kea's "declined"). Such a record is
    /// not found by MAC or client identifier: the address belongs to no client.
    Abandoned(AbandonReason),
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseState::Active => f.write_str("active"),
            LeaseState::Released => f.write_str("released"),
            LeaseState::Expired => f.write_str("expired"),
            LeaseState::Abandoned(AbandonReason::Declined) => f.write_str("abandoned (declined)"),
            LeaseState::Abandoned(AbandonReason::InUse) => f.write_str("abandoned (in use)"),
            LeaseState::Abandoned(AbandonReason::Other(why)) => write!(f, "abandoned ({why})"),
        }
    }
}

/// One DHCPv4 lease as the store keeps it. The newest record for an address replaces older ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseRecord {
    pub mac: MacAddr,
    /// Option 61, when the client sent one (at most 255 bytes).
    pub client_id: Option<Vec<u8>>,
    pub address: Ipv4Addr,
    /// Already sanitized by the caller (at most 255 bytes).
    pub hostname: Option<String>,
    pub state: LeaseState,
    /// Wall-clock time of the grant, as the caller saw it.
    pub granted_at: SystemTime,
    pub expires_at: SystemTime,
}

/// A record that cannot be stored (a caller error, found before anything is written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    #[error("{field} is {len} bytes, at most {MAX_FIELD_LEN} fit")]
    TooLong { field: &'static str, len: usize },
    #[error("{field} is outside the range a lease file can hold")]
    TimeOutOfRange { field: &'static str },
}

/// Why a payload with a good checksum could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Written by a newer build: must not be dropped by a rewrite.
    UnknownVersion(u8),
    Malformed(&'static str),
}

fn time_to_parts(t: SystemTime, field: &'static str) -> Result<(i64, u32), InvalidRecord> {
    let out_of_range = InvalidRecord::TimeOutOfRange { field };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Ok((
            i64::try_from(d.as_secs()).map_err(|_| out_of_range)?,
            d.subsec_nanos(),
        )),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).map_err(|_| out_of_range.clone())?;
            if d.subsec_nanos() == 0 {
                Ok((-secs, 0))
            } else {
                let secs = secs.checked_add(1).ok_or(out_of_range)?;
                Ok((-secs, 1_000_000_000 - d.subsec_nanos()))
            }
        }
    }
}

fn parts_to_time(secs: i64, nanos: u32) -> Option<SystemTime> {
    if nanos >= 1_000_000_000 {
        return None;
    }
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

fn check_len(field: &'static str, len: usize) -> Result<u8, InvalidRecord> {
    u8::try_from(len).map_err(|_| InvalidRecord::TooLong { field, len })
}

fn put_optional(
    out: &mut Vec<u8>,
    bytes: Option<&[u8]>,
    field: &'static str,
) -> Result<(), InvalidRecord> {
    match bytes {
        None => out.extend_from_slice(&[0, 0]),
        Some(bytes) => {
            out.push(1);
            out.push(check_len(field, bytes.len())?);
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}

impl LeaseRecord {
    /// Appends the version-1 payload to `out`; on error `out` may hold a partial payload.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), InvalidRecord> {
        let (granted_secs, granted_nanos) = time_to_parts(self.granted_at, "granted_at")?;
        let (expires_secs, expires_nanos) = time_to_parts(self.expires_at, "expires_at")?;
        let (state, reason, reason_text): (u8, u8, &str) = match &self.state {
            LeaseState::Active => (0, 0, ""),
            LeaseState::Released => (1, 0, ""),
            LeaseState::Expired => (2, 0, ""),
            LeaseState::Abandoned(AbandonReason::Declined) => (3, 1, ""),
            LeaseState::Abandoned(AbandonReason::InUse) => (3, 2, ""),
            LeaseState::Abandoned(AbandonReason::Other(text)) => (3, 3, text),
        };
        out.extend_from_slice(&[RECORD_VERSION, FAMILY_V4, state, reason]);
        out.extend_from_slice(&self.mac.0);
        out.extend_from_slice(&self.address.octets());
        out.extend_from_slice(&granted_secs.to_le_bytes());
        out.extend_from_slice(&granted_nanos.to_le_bytes());
        out.extend_from_slice(&expires_secs.to_le_bytes());
        out.extend_from_slice(&expires_nanos.to_le_bytes());
        put_optional(out, self.client_id.as_deref(), "client_id")?;
        put_optional(out, self.hostname.as_deref().map(str::as_bytes), "hostname")?;
        out.push(check_len("abandon reason", reason_text.len())?);
        out.extend_from_slice(reason_text.as_bytes());
        Ok(())
    }

    /// Decodes one payload (the inverse of [`encode`](Self::encode)).
    pub(crate) fn decode(payload: &[u8]) -> Result<LeaseRecord, DecodeError> {
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        if r.u8()? != FAMILY_V4 {
            return Err(DecodeError::Malformed("address family"));
        }
        let state = r.u8()?;
        let reason = r.u8()?;
        let mac = MacAddr(r.array()?);
        let address = Ipv4Addr::from(r.array::<4>()?);
        let granted_at = r.time()?;
        let expires_at = r.time()?;
        let client_id = r.optional()?.map(<[u8]>::to_vec);
        let hostname = match r.optional()? {
            None => None,
            Some(bytes) => Some(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| DecodeError::Malformed("hostname is not UTF-8"))?,
            ),
        };
        let reason_len = usize::from(r.u8()?);
        let reason_text = std::str::from_utf8(r.take(reason_len)?)
            .map_err(|_| DecodeError::Malformed("reason is not UTF-8"))?;
        let state = match (state, reason) {
            (0, 0) => LeaseState::Active,
            (1, 0) => LeaseState::Released,
            (2, 0) => LeaseState::Expired,
            (3, 1) => LeaseState::Abandoned(AbandonReason::Declined),
            (3, 2) => LeaseState::Abandoned(AbandonReason::InUse),
            (3, 3) => LeaseState::Abandoned(AbandonReason::Other(reason_text.to_owned())),
            _ => return Err(DecodeError::Malformed("state")),
        };
        Ok(LeaseRecord {
            mac,
            client_id,
            address,
            hostname,
            state,
            granted_at,
            expires_at,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Malformed("record is too short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn time(&mut self) -> Result<SystemTime, DecodeError> {
        let secs = i64::from_le_bytes(self.array()?);
        let nanos = u32::from_le_bytes(self.array()?);
        parts_to_time(secs, nanos).ok_or(DecodeError::Malformed("time out of range"))
    }

    fn optional(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let present = self.u8()?;
        let len = usize::from(self.u8()?);
        match present {
            0 if len == 0 => Ok(None),
            1 => Ok(Some(self.take(len)?)),
            _ => Err(DecodeError::Malformed("optional field flag")),
        }
    }
}
