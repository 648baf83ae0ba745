//! What the DHCP service tells the rest of the process about leases, for either address family.
//!
//! The DHCP crate knows nothing of DNS (docs/ARCHITECTURE.md): it publishes a [`LeaseEvent`]
//! once a lease change is durable, and the binary turns events into names. An event carries the
//! machine (its MAC) and one address; the address's family says which lease it is, so a machine
//! with a v4 and a v6 lease has two independent streams of events.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::lease::{LeaseRecord, MacAddr};

/// What a lease event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseEventKind {
    Granted,
    Renewed,
    Released,
    Expired,
}

impl LeaseEventKind {
    /// True while the lease holds its address after this event (granted or renewed).
    pub fn holds_address(self) -> bool {
        matches!(self, LeaseEventKind::Granted | LeaseEventKind::Renewed)
    }
}

impl fmt::Display for LeaseEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeaseEventKind::Granted => "granted",
            LeaseEventKind::Renewed => "renewed",
            LeaseEventKind::Released => "released",
            LeaseEventKind::Expired => "expired",
        })
    }
}

/// The address families a lease can be of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of `address`.
    pub fn of(address: IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A change to a lease, published once it is durable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseEvent {
    pub kind: LeaseEventKind,
    /// The machine the lease belongs to.
    pub mac: MacAddr,
    /// The leased address; its family says which of the machine's leases changed.
    pub address: IpAddr,
    pub hostname: Option<String>,
    pub expires_at: SystemTime,
}

impl LeaseEvent {
    /// The event `kind` for the lease `record` describes.
    pub fn of(kind: LeaseEventKind, record: &LeaseRecord) -> LeaseEvent {
        LeaseEvent {
            kind,
            mac: record.mac,
            address: IpAddr::V4(record.address),
            hostname: record.hostname.clone(),
            expires_at: record.expires_at,
        }
    }

    /// The family of the lease that changed.
    pub fn family(&self) -> Family {
        Family::of(self.address)
    }
}
