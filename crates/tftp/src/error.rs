//! The service-level error: what stops the TFTP service from starting or reloading. Errors
//! that concern one transfer are TFTP ERROR packets (`wire::ErrorCode`) and log lines, never
//! this type.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TftpError {
    /// A listening address cannot be bound (in use, not an address of this host, no
    /// permission for a port below 1024...).
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The service task has ended; nothing can be reloaded any more.
    #[error("the TFTP service is not running")]
    Stopped,
}
