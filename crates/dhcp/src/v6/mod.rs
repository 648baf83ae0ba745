//! DHCPv6 (RFC 8415): the wire format and the sans-IO server core.

pub mod codec;
#[doc(hidden)]
pub mod fuzzing;
pub mod server;
