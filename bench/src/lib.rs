//! Kindling's benchmark tools. `tftp-load` (src/main.rs) is a TFTP download load generator
//! written for measuring: a minimal RFC 1350/2347/2348/7440 client codec ([`codec`]) and a
//! blocking receiver ([`client`]) that reuses its buffers and allocates nothing per block.

pub mod client;
pub mod codec;
