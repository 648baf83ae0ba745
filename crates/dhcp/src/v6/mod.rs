//! IPv6: the DHCPv6 wire format and sans-IO server core (RFC 8415), and the quiet router
//! advertisement ([`ra`], RFC 4861).

pub mod codec;
#[doc(hidden)]
pub mod fuzzing;
pub mod ra;
pub mod server;
