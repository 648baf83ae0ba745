//! IPv6: the quiet router advertisement ([`ra`]); DHCPv6 comes later.

pub mod ra;
