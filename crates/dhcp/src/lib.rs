//! Kindling's DHCP service: the DHCPv4 codec wrapper over dhcproto (`v4::codec`), the PXE/iPXE
//! boot policy (`policy`), the sans-IO server and proxyDHCP core (`v4::server`), the durable
//! lease store (`lease`), the lease events it publishes for the rest of the process (`event`),
//! and the tokio shell around them (`service`).

pub mod event;
pub mod identity;
pub mod lease;
pub mod policy;
pub mod service;
pub mod v4;
pub mod v6;
