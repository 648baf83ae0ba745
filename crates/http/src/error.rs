//! The service-level error: what stops the HTTP service from starting. A refused request is an
//! HTTP status and a log line, never this type.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A listening address cannot be bound (in use, not an address of this host, no
    /// permission for a port below 1024...).
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
