//! The in-memory view of the journal: the newest record per address, found by address, MAC or
//! client identifier.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::record::{LeaseRecord, LeaseState, MacAddr};

#[derive(Default)]
pub(crate) struct Index {
    /// Address -> (sequence number of the record's write, record).
    by_addr: HashMap<Ipv4Addr, (u64, LeaseRecord)>,
    by_mac: HashMap<MacAddr, Ipv4Addr>,
    by_client_id: HashMap<Vec<u8>, Ipv4Addr>,
    next_seq: u64,
}

impl Index {
    /// Applies one record in journal order: it replaces the address's previous record. A MAC (or
    /// client identifier) leads to the newest record that carries it and is not abandoned, so
    /// replaying the live records in write order (compaction) rebuilds the same pointers.
    pub(crate) fn apply(&mut self, record: LeaseRecord) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let address = record.address;
        let owned = !matches!(record.state, LeaseState::Abandoned(_));
        let (mac, client_id) = (record.mac, record.client_id.clone());
        let previous = self.by_addr.insert(address, (seq, record));
        if owned {
            self.by_mac.insert(mac, address);
            if let Some(id) = &client_id {
                self.by_client_id.insert(id.clone(), address);
            }
        }
        let Some((_, old)) = previous else { return };
        // The previous holder's pointers may still lead here: move them to its newest other
        // lease. (A renewal by the same client claimed them above and needs no scan.)
        if (!owned || old.mac != mac) && self.by_mac.get(&old.mac) == Some(&address) {
            match self.newest(|r| r.mac == old.mac) {
                Some(other) => self.by_mac.insert(old.mac, other),
                None => self.by_mac.remove(&old.mac),
            };
        }
        if let Some(id) = old.client_id
            && (!owned || client_id.as_ref() != Some(&id))
            && self.by_client_id.get(&id) == Some(&address)
        {
            match self.newest(|r| r.client_id.as_ref() == Some(&id)) {
                Some(other) => self.by_client_id.insert(id, other),
                None => self.by_client_id.remove(&id),
            };
        }
    }

    /// The address of the newest client-owned (not abandoned) record matching `wanted`. A scan,
    /// needed only when an address passes from one client to another.
    fn newest(&self, wanted: impl Fn(&LeaseRecord) -> bool) -> Option<Ipv4Addr> {
        self.by_addr
            .iter()
            .filter(|(_, (_, r))| !matches!(r.state, LeaseState::Abandoned(_)) && wanted(r))
            .max_by_key(|(_, (seq, _))| *seq)
            .map(|(address, _)| *address)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub(crate) fn by_addr(&self, address: Ipv4Addr) -> Option<&LeaseRecord> {
        self.by_addr.get(&address).map(|(_, record)| record)
    }

    pub(crate) fn by_mac(&self, mac: MacAddr) -> Option<&LeaseRecord> {
        self.by_mac.get(&mac).and_then(|a| self.by_addr(*a))
    }

    pub(crate) fn by_client_id(&self, id: &[u8]) -> Option<&LeaseRecord> {
        self.by_client_id.get(id).and_then(|a| self.by_addr(*a))
    }

    /// Every live record, ordered by address.
    pub(crate) fn all(&self) -> Vec<LeaseRecord> {
        let mut out: Vec<LeaseRecord> = self.by_addr.values().map(|(_, r)| r.clone()).collect();
        out.sort_by_key(|r| r.address);
        out
    }

    /// Every live record in the order it was written, so that replaying them rebuilds the same
    /// MAC and client-identifier pointers (what compaction writes).
    pub(crate) fn in_write_order(&self) -> Vec<LeaseRecord> {
        let mut out: Vec<&(u64, LeaseRecord)> = self.by_addr.values().collect();
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// Active leases whose expiry is at or before `now`.
    pub(crate) fn expired_active(&self, now: std::time::SystemTime) -> Vec<LeaseRecord> {
        let mut out: Vec<&(u64, LeaseRecord)> = self
            .by_addr
            .values()
            .filter(|(_, r)| r.state == LeaseState::Active && r.expires_at <= now)
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, r)| r.clone()).collect()
    }
}
