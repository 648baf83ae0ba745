//! Kindling's DHCP service (work in progress for issue 4): the DHCPv4 codec wrapper over
//! dhcproto, the PXE/iPXE boot policy, and the durable lease store. The sans-IO server core and
//! the tokio shell come next; until then the binary does not serve DHCP.

pub mod lease;
pub mod policy;
pub mod service;
pub mod v4;
pub mod v6;
