//! The crate's error type.

use std::io;
use std::net::SocketAddr;

/// Everything that can go wrong building, starting or reloading the DNS service.
///
/// Nothing a query can carry reaches this type: bad packets are dropped or answered (FORMERR,
/// REFUSED, SERVFAIL) and never stop the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// A name from the configuration (the domain, a record name or target, a reservation's
    /// hostname) is not a usable DNS name.
    #[error("dns: {what} \"{name}\" is not a valid DNS name: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: String,
    },
    /// The records in the configuration contradict each other.
    #[error("dns: {0}")]
    Records(String),
    /// A zone could not be assembled from the records (a bug if it ever shows).
    #[error("dns: zone {zone}: {reason}")]
    Zone { zone: String, reason: String },
    /// The forwarder for `dns.upstreams` could not be set up.
    #[error("dns: forwarder for {upstreams:?}: {reason}")]
    Forwarder {
        upstreams: Vec<SocketAddr>,
        reason: String,
    },
    /// A listen address could not be bound.
    #[error("dns: cannot listen on {protocol} {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// `dns.listen` changed: sockets are only bound at start.
    #[error(
        "dns: dns.listen changed from {old:?} to {new:?}; restart kindling to listen on the new addresses"
    )]
    RestartNeeded {
        old: Vec<SocketAddr>,
        new: Vec<SocketAddr>,
    },
    /// The service has stopped, so the handle has nobody to talk to.
    #[error("dns: the DNS service is not running")]
    Stopped,
    /// A task of the service ended abnormally.
    #[error("dns: internal task failed: {0}")]
    Task(String),
}
