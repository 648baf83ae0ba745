//! The lease record and its versioned binary encoding (the payload of one journal frame).
//!
//! Payload, version 1: a DHCPv4 lease (all integers little-endian):
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
//! Payload, version 2: a DHCPv6 lease (IA_NA address). Version 1 builds see the new version
//! byte and refuse to rewrite the journal (`StoreError::NewerRecord`) instead of dropping the
//! lease; v4 leases stay at version 1, so a journal without v6 leases still opens in an older
//! build.
//!
//! ```text
//! u8  record version (2)      u8  family (6)
//! u8  state                   u8  abandon reason          (as in version 1)
//! u8  MAC known (0 or 1)      [6] MAC (zero when unknown)
//! [16] IPv6 address           u32 IAID
//! i64 granted-at seconds, u32 nanoseconds
//! i64 expires-at seconds, u32 nanoseconds
//! u8  DUID length (1..=255), bytes
//! u8  hostname present, u8 length, UTF-8 bytes
//! u8  reason text length, UTF-8 bytes (only for "other")
//! ```
//!
//! Bytes after these fields are ignored, so a later build may append fields without a new record
//! version; anything incompatible gets a new version byte, which older builds refuse to rewrite.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Record version of a DHCPv4 lease.
pub(crate) const RECORD_VERSION: u8 = 1;
/// Record version of a DHCPv6 lease.
pub(crate) const RECORD_VERSION_V6: u8 = 2;
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

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

/// One DHCPv6 lease (an IA_NA address) as the store keeps it. The client is its DUID and the
/// IAID of the identity association; the MAC is what Kindling learned of the machine (from a
/// DUID-LL/LLT, the EUI-64 of its link-local address or a relay's option 79), when it did.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease6Record {
    pub duid: Vec<u8>,
    pub iaid: u32,
    pub mac: Option<MacAddr>,
    pub address: Ipv6Addr,
    /// Already sanitized by the caller (at most 255 bytes).
    pub hostname: Option<String>,
    pub state: LeaseState,
    pub granted_at: SystemTime,
    pub expires_at: SystemTime,
}

/// A lease of either family, as one journal frame holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoredLease {
    V4(LeaseRecord),
    V6(Lease6Record),
}

impl StoredLease {
    /// The leased address.
    pub fn address(&self) -> IpAddr {
        match self {
            StoredLease::V4(r) => IpAddr::V4(r.address),
            StoredLease::V6(r) => IpAddr::V6(r.address),
        }
    }

    /// Appends the payload to `out` (version 1 for v4, 2 for v6).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), InvalidRecord> {
        match self {
            StoredLease::V4(record) => record.encode(out),
            StoredLease::V6(record) => record.encode(out),
        }
    }

    /// Decodes one payload of either version.
    pub(crate) fn decode(payload: &[u8]) -> Result<StoredLease, DecodeError> {
        match payload.first() {
            Some(&RECORD_VERSION_V6) => Lease6Record::decode(payload).map(StoredLease::V6),
            _ => LeaseRecord::decode(payload).map(StoredLease::V4),
        }
    }
}

impl From<LeaseRecord> for StoredLease {
    fn from(record: LeaseRecord) -> StoredLease {
        StoredLease::V4(record)
    }
}

impl From<Lease6Record> for StoredLease {
    fn from(record: Lease6Record) -> StoredLease {
        StoredLease::V6(record)
    }
}

/// A record that cannot be stored (a caller error, found before anything is written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    #[error("{field} is {len} bytes, at most {MAX_FIELD_LEN} fit")]
    TooLong { field: &'static str, len: usize },
    #[error("{field} is outside the range a lease file can hold")]
    TimeOutOfRange { field: &'static str },
    #[error("{field} is empty")]
    Empty { field: &'static str },
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

/// The state byte, the abandon-reason byte and the reason text of `state`.
fn state_parts(state: &LeaseState) -> (u8, u8, &str) {
    match state {
        LeaseState::Active => (0, 0, ""),
        LeaseState::Released => (1, 0, ""),
        LeaseState::Expired => (2, 0, ""),
        LeaseState::Abandoned(AbandonReason::Declined) => (3, 1, ""),
        LeaseState::Abandoned(AbandonReason::InUse) => (3, 2, ""),
        LeaseState::Abandoned(AbandonReason::Other(text)) => (3, 3, text),
    }
}

fn state_from_parts(state: u8, reason: u8, reason_text: &str) -> Result<LeaseState, DecodeError> {
    Ok(match (state, reason) {
        (0, 0) => LeaseState::Active,
        (1, 0) => LeaseState::Released,
        (2, 0) => LeaseState::Expired,
        (3, 1) => LeaseState::Abandoned(AbandonReason::Declined),
        (3, 2) => LeaseState::Abandoned(AbandonReason::InUse),
        (3, 3) => LeaseState::Abandoned(AbandonReason::Other(reason_text.to_owned())),
        _ => return Err(DecodeError::Malformed("state")),
    })
}

/// Appends the two times of a lease.
fn put_times(
    out: &mut Vec<u8>,
    granted_at: SystemTime,
    expires_at: SystemTime,
) -> Result<(), InvalidRecord> {
    for (time, field) in [(granted_at, "granted_at"), (expires_at, "expires_at")] {
        let (secs, nanos) = time_to_parts(time, field)?;
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&nanos.to_le_bytes());
    }
    Ok(())
}

/// Appends the hostname and the reason text, the fields both versions end with.
fn put_name_and_reason(
    out: &mut Vec<u8>,
    hostname: Option<&str>,
    reason_text: &str,
) -> Result<(), InvalidRecord> {
    put_optional(out, hostname.map(str::as_bytes), "hostname")?;
    out.push(check_len("abandon reason", reason_text.len())?);
    out.extend_from_slice(reason_text.as_bytes());
    Ok(())
}

/// Reads the hostname and the reason text.
fn name_and_reason<'a>(r: &mut Reader<'a>) -> Result<(Option<String>, &'a str), DecodeError> {
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
    Ok((hostname, reason_text))
}

impl LeaseRecord {
    /// Appends the version-1 payload to `out`; on error `out` may hold a partial payload.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), InvalidRecord> {
        let (state, reason, reason_text) = state_parts(&self.state);
        out.extend_from_slice(&[RECORD_VERSION, FAMILY_V4, state, reason]);
        out.extend_from_slice(&self.mac.0);
        out.extend_from_slice(&self.address.octets());
        put_times(out, self.granted_at, self.expires_at)?;
        put_optional(out, self.client_id.as_deref(), "client_id")?;
        put_name_and_reason(out, self.hostname.as_deref(), reason_text)
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
        let (hostname, reason_text) = name_and_reason(&mut r)?;
        let state = state_from_parts(state, reason, reason_text)?;
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

impl Lease6Record {
    /// Appends the version-2 payload to `out`; on error `out` may hold a partial payload.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), InvalidRecord> {
        let (state, reason, reason_text) = state_parts(&self.state);
        if self.duid.is_empty() {
            return Err(InvalidRecord::Empty { field: "duid" });
        }
        out.extend_from_slice(&[RECORD_VERSION_V6, FAMILY_V6, state, reason]);
        out.push(u8::from(self.mac.is_some()));
        out.extend_from_slice(&self.mac.map_or([0; 6], |m| m.0));
        out.extend_from_slice(&self.address.octets());
        out.extend_from_slice(&self.iaid.to_le_bytes());
        put_times(out, self.granted_at, self.expires_at)?;
        out.push(check_len("duid", self.duid.len())?);
        out.extend_from_slice(&self.duid);
        put_name_and_reason(out, self.hostname.as_deref(), reason_text)
    }

    /// Decodes one version-2 payload (the inverse of [`encode`](Self::encode)).
    pub(crate) fn decode(payload: &[u8]) -> Result<Lease6Record, DecodeError> {
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != RECORD_VERSION_V6 {
            return Err(DecodeError::UnknownVersion(version));
        }
        if r.u8()? != FAMILY_V6 {
            return Err(DecodeError::Malformed("address family"));
        }
        let state = r.u8()?;
        let reason = r.u8()?;
        let mac_known = r.u8()?;
        let mac = MacAddr(r.array()?);
        let mac = match mac_known {
            0 => None,
            1 => Some(mac),
            _ => return Err(DecodeError::Malformed("MAC flag")),
        };
        let address = Ipv6Addr::from(r.array::<16>()?);
        let iaid = u32::from_le_bytes(r.array()?);
        let granted_at = r.time()?;
        let expires_at = r.time()?;
        let duid_len = usize::from(r.u8()?);
        if duid_len == 0 {
            return Err(DecodeError::Malformed("empty DUID"));
        }
        let duid = r.take(duid_len)?.to_vec();
        let (hostname, reason_text) = name_and_reason(&mut r)?;
        let state = state_from_parts(state, reason, reason_text)?;
        Ok(Lease6Record {
            duid,
            iaid,
            mac,
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
