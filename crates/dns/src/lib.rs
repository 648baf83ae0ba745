//! DNS for Kindling: authoritative for the local domain and the reverse zones of the served
//! networks, with names that follow the DHCP leases, and a forwarder for everything else.
//!
//! Layers, from the wire in:
//! - `service`: the tokio shell. Our own UDP receive loops (reply from the address the query
//!   was sent to, via `kindling_udp`) and TCP connections, and the task that applies name
//!   changes and reloads.
//! - `fast`: exact positive answers from a table of precomputed responses, in the UDP loop.
//! - `answer`: everything else through hickory-server's `Catalog` (our zones as
//!   `InMemoryZoneHandler`s wrapped in `zone::LocalZone` for fast negative answers,
//!   `ForwardZoneHandler` on `.` for clients that may recurse), with the response captured as
//!   bytes and sent by our sockets.
//! - `names`: the pure model: static records + reservations + leases -> RRsets per zone.
//!
//! This crate does not know the DHCP crate: the binary turns lease events into
//! [`NameChange`]s and hands them to a [`DnsHandle`].

mod answer;
#[cfg(test)]
mod equality;
mod error;
mod fast;
pub mod fuzzing;
mod names;
mod service;
mod settings;
mod zone;

use std::net::IpAddr;

pub use error::DnsError;
pub use service::{DnsHandle, DnsService};
pub use settings::{DnsSettings, ReservedName};

/// A lease as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseName {
    pub mac: [u8; 6],
    pub address: IpAddr,
    /// What the client calls itself (or the reservation's hostname). Made into one DNS label
    /// (`Node1.lab.test.` -> `node1`); a hostname that cannot be one publishes no name.
    pub hostname: String,
}

/// A change to the lease names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    /// A lease was granted or renewed (a client moving address replaces its old one).
    Up(LeaseName),
    /// A lease was released or expired.
    Down { mac: [u8; 6], address: IpAddr },
}
