//! The bounds on unconfirmed read transfers: how many transfers whose client has not
//! acknowledged anything yet may run at once per source address and per source prefix (/24
//! for IPv4, /64 for IPv6).
//!
//! A forged RRQ can only ever start an unconfirmed transfer (its source never sees our packets,
//! so it never ACKs), and each unconfirmed transfer sends one packet per request received (see
//! the `proto` module doc). The bounds keep a flood of forged requests aimed at one victim, or at
//! one victim network, from occupying the session slots and the queue meant for everyone else:
//! requests over a bound wait in the server's queue until a slot frees. A real client confirms
//! within one round trip, so its slot frees almost at once and a rack booting together, or many
//! clients behind one address, only waits that long.
//!
//! Pure bookkeeping: no clock, no I/O. The shell holds one behind a mutex.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

/// The network a source address counts against: its /24 (IPv4) or /64 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Prefix {
    V4([u8; 3]),
    V6([u8; 8]),
}

/// Counts unconfirmed transfers per address and per prefix against two limits.
#[derive(Debug)]
pub(crate) struct UnconfirmedBounds {
    per_address: usize,
    per_prefix: usize,
    addresses: HashMap<IpAddr, usize>,
    prefixes: HashMap<Prefix, usize>,
}

impl UnconfirmedBounds {
    /// Bounds of `per_address` per source address and `per_prefix` per /24 or /64 (each at
    /// least 1).
    pub(crate) fn new(per_address: usize, per_prefix: usize) -> Self {
        UnconfirmedBounds {
            per_address: per_address.max(1),
            per_prefix: per_prefix.max(1),
            addresses: HashMap::new(),
            prefixes: HashMap::new(),
        }
    }

    /// Changes the limits (a reload). Transfers already counted stay counted; a lowered limit
    /// only holds new requests back until enough of them end.
    pub(crate) fn set_limits(&mut self, per_address: usize, per_prefix: usize) {
        self.per_address = per_address.max(1);
        self.per_prefix = per_prefix.max(1);
    }

    /// Counts one more unconfirmed transfer from `source` if both of its bounds allow it;
    /// false (and nothing counted) otherwise.
    pub(crate) fn try_acquire(&mut self, source: IpAddr) -> bool {
        let (address, prefix) = keys(source);
        let at_address = self.addresses.get(&address).copied().unwrap_or(0);
        let in_prefix = self.prefixes.get(&prefix).copied().unwrap_or(0);
        if at_address >= self.per_address || in_prefix >= self.per_prefix {
            return false;
        }
        *self.addresses.entry(address).or_insert(0) += 1;
        *self.prefixes.entry(prefix).or_insert(0) += 1;
        true
    }

    /// Uncounts one transfer from `source` (it was confirmed, or it ended). Entries that drop
    /// to zero are removed, so memory follows the sources with transfers, not every source
    /// ever seen.
    pub(crate) fn release(&mut self, source: IpAddr) {
        let (address, prefix) = keys(source);
        decrement(&mut self.addresses, address);
        decrement(&mut self.prefixes, prefix);
    }

    /// The unconfirmed transfers counted for `source`'s address and prefix.
    #[cfg(test)]
    fn counts(&self, source: IpAddr) -> (usize, usize) {
        let (address, prefix) = keys(source);
        (
            self.addresses.get(&address).copied().unwrap_or(0),
            self.prefixes.get(&prefix).copied().unwrap_or(0),
        )
    }

    /// How many addresses and prefixes have entries.
    #[cfg(test)]
    fn entries(&self) -> (usize, usize) {
        (self.addresses.len(), self.prefixes.len())
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Entry::Occupied(mut entry) = map.entry(key) {
        if *entry.get() <= 1 {
            entry.remove();
        } else {
            *entry.get_mut() -= 1;
        }
    }
}

/// The address (an IPv4-mapped IPv6 address counts as the IPv4 address it carries) and its
/// prefix.
fn keys(source: IpAddr) -> (IpAddr, Prefix) {
    let address = match source {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
        v4 => v4,
    };
    let prefix = match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Prefix::V4([a, b, c])
        }
        IpAddr::V6(v6) => {
            let octets = v6.octets();
            let mut network = [0u8; 8];
            network.copy_from_slice(&octets[..8]);
            Prefix::V6(network)
        }
    };
    (address, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("bad test address {text}"))
    }

    #[test]
    fn the_per_address_bound_holds_and_frees_as_transfers_end() {
        let mut bounds = UnconfirmedBounds::new(2, 100);
        let client = ip("10.99.0.7");
        assert!(bounds.try_acquire(client));
        assert!(bounds.try_acquire(client));
        assert!(!bounds.try_acquire(client), "a third one is over the bound");
        assert_eq!(bounds.counts(client), (2, 2), "a refusal counts nothing");
        // Another address of the same /24 is not held back by this one's bound.
        assert!(bounds.try_acquire(ip("10.99.0.8")));
        bounds.release(client);
        assert!(bounds.try_acquire(client), "a released slot is free again");
        assert!(!bounds.try_acquire(client));
    }

    #[test]
    fn the_per_prefix_bound_spans_a_slash_24_and_a_slash_64() {
        let mut bounds = UnconfirmedBounds::new(10, 3);
        for host in 1..=3 {
            assert!(bounds.try_acquire(ip(&format!("192.0.2.{host}"))));
        }
        assert!(!bounds.try_acquire(ip("192.0.2.200")), "same /24: held");
        assert!(bounds.try_acquire(ip("192.0.3.1")), "next /24: free");
        // An IPv4-mapped IPv6 source counts as its IPv4 address.
        assert!(!bounds.try_acquire(ip("::ffff:192.0.2.9")));
        for host in 1..=3 {
            assert!(bounds.try_acquire(ip(&format!("fd00:99::{host}"))));
        }
        assert!(!bounds.try_acquire(ip("fd00:99::ffff:1")), "same /64: held");
        assert!(bounds.try_acquire(ip("fd00:99:0:1::1")), "next /64: free");
        bounds.release(ip("fd00:99::2"));
        assert!(bounds.try_acquire(ip("fd00:99::abcd")));
    }

    #[test]
    fn released_sources_leave_no_entries_behind() {
        let mut bounds = UnconfirmedBounds::new(4, 4);
        let sources: Vec<IpAddr> = (0..50u8)
            .map(|n| IpAddr::from([10, n, 0, 1]))
            .chain((0..50u16).map(|n| IpAddr::from([0xfd00, n, 0, 0, 0, 0, 0, 1])))
            .collect();
        for &source in &sources {
            assert!(bounds.try_acquire(source));
        }
        assert_eq!(bounds.entries(), (100, 100));
        for &source in &sources {
            bounds.release(source);
        }
        assert_eq!(bounds.entries(), (0, 0));
        // A stray release (nothing counted) changes nothing.
        bounds.release(ip("10.0.0.1"));
        assert_eq!(bounds.entries(), (0, 0));
    }

    #[test]
    fn lowered_limits_hold_new_requests_until_enough_end() {
        let mut bounds = UnconfirmedBounds::new(3, 3);
        let client = ip("10.99.0.7");
        for _ in 0..3 {
            assert!(bounds.try_acquire(client));
        }
        bounds.set_limits(1, 1);
        bounds.release(client);
        assert!(!bounds.try_acquire(client), "two still counted, limit 1");
        bounds.release(client);
        bounds.release(client);
        assert!(bounds.try_acquire(client));
    }
}
