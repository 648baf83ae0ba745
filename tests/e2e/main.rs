//! End-to-end tests: the real `kindling` binary driven by real clients (curl, tftp-hpa,
//! atftp) on loopback, IPv4 and IPv6. Every test starts its own daemon on ports the kernel
//! picks, so tests run in parallel. A missing client tool fails the test loudly. Tests across
//! real links run in network namespaces: veth pairs (`netns`) and, for DHCP, a bridged lab
//! with dhclient and QEMU/iPXE clients (`dhcp_lab`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on setup errors"
)]

mod boot_v6;
mod cli;
mod daemon;
mod dhcp_lab;
mod dhcp_server;
mod dhcpv6;
mod dns_server;
mod harness;
mod http_boot;
mod http_server;
mod netns;
mod profiles;
mod quiet_ra;
mod router_adverts;
mod tftp_clients;
mod tftp_hostile;
mod tftp_netns;
mod tftp_reflection;
mod tftp_server;
mod tftp_uploads;
mod tools;
