//! The in-memory view of the journal, one per address family: the newest record per address,
//! found by address or by one of the identities of its client (MAC, client identifier, DUID and
//! IAID).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use super::record::{Lease6Record, LeaseRecord, LeaseState, MacAddr, StoredLease};

/// An identity that leads to a client's lease.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Mac(MacAddr),
    /// DHCPv4 option 61.
    ClientId(Vec<u8>),
    /// A DHCPv6 identity association: the client's DUID and the IAID.
    Binding(Vec<u8>, u32),
}

/// What the index needs of a lease record.
pub(crate) trait Lease: Clone {
    type Address: Copy + Eq + Hash + Ord;
    fn address(&self) -> Self::Address;
    /// The identities that lead to this record (none count while it is abandoned).
    fn owners(&self) -> Vec<Owner>;
    fn state(&self) -> &LeaseState;
    fn expires_at(&self) -> SystemTime;
}

impl Lease for LeaseRecord {
    type Address = Ipv4Addr;

    fn address(&self) -> Ipv4Addr {
        self.address
    }

    fn owners(&self) -> Vec<Owner> {
        let mut owners = vec![Owner::Mac(self.mac)];
        owners.extend(self.client_id.clone().map(Owner::ClientId));
        owners
    }

    fn state(&self) -> &LeaseState {
        &self.state
    }

    fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl Lease for Lease6Record {
    type Address = Ipv6Addr;

    fn address(&self) -> Ipv6Addr {
        self.address
    }

    fn owners(&self) -> Vec<Owner> {
        let mut owners = vec![Owner::Binding(self.duid.clone(), self.iaid)];
        owners.extend(self.mac.map(Owner::Mac));
        owners
    }

    fn state(&self) -> &LeaseState {
        &self.state
    }

    fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// The newest record per address of one family, and its owners' pointers.
pub(crate) struct FamilyIndex<R: Lease> {
    /// Address -> (sequence number of the record's write, record).
    by_addr: HashMap<R::Address, (u64, R)>,
    by_owner: HashMap<Owner, R::Address>,
    next_seq: u64,
}

/// The DHCPv4 index (what the v4 core keeps).
pub(crate) type Index = FamilyIndex<LeaseRecord>;

impl<R: Lease> Default for FamilyIndex<R> {
    fn default() -> Self {
        FamilyIndex {
            by_addr: HashMap::new(),
            by_owner: HashMap::new(),
            next_seq: 0,
        }
    }
}

fn owned(state: &LeaseState) -> bool {
    !matches!(state, LeaseState::Abandoned(_))
}

impl<R: Lease> FamilyIndex<R> {
    /// Applies one record in journal order: it replaces the address's previous record. An
    /// owner (MAC, client identifier, binding) leads to the newest record that carries it and is
    /// not abandoned, so replaying the live records in write order (compaction) rebuilds the
    /// same pointers.
    pub(crate) fn apply(&mut self, record: R) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let address = record.address();
        let is_owned = owned(record.state());
        let owners = record.owners();
        let previous = self.by_addr.insert(address, (seq, record));
        if is_owned {
            for owner in &owners {
                self.by_owner.insert(owner.clone(), address);
            }
        }
        let Some((_, old)) = previous else { return };
        // The previous holder's pointers may still lead here: move them to its newest other
        // lease. (A renewal by the same client claimed them above and needs no scan.)
        for old_owner in old.owners() {
            if (!is_owned || !owners.contains(&old_owner))
                && self.by_owner.get(&old_owner) == Some(&address)
            {
                match self.newest(&old_owner) {
                    Some(other) => self.by_owner.insert(old_owner, other),
                    None => self.by_owner.remove(&old_owner),
                };
            }
        }
    }

    /// The address of the newest client-owned (not abandoned) record of `owner`. A scan,
    /// needed only when an address passes from one client to another.
    fn newest(&self, owner: &Owner) -> Option<R::Address> {
        self.by_addr
            .iter()
            .filter(|(_, (_, r))| owned(r.state()) && r.owners().contains(owner))
            .max_by_key(|(_, (seq, _))| *seq)
            .map(|(address, _)| *address)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub(crate) fn by_addr(&self, address: R::Address) -> Option<&R> {
        self.by_addr.get(&address).map(|(_, record)| record)
    }

    pub(crate) fn by_owner(&self, owner: &Owner) -> Option<&R> {
        self.by_owner.get(owner).and_then(|a| self.by_addr(*a))
    }

    pub(crate) fn by_mac(&self, mac: MacAddr) -> Option<&R> {
        self.by_owner(&Owner::Mac(mac))
    }

    /// Every live record, ordered by address.
    pub(crate) fn all(&self) -> Vec<R> {
        let mut out: Vec<R> = self.by_addr.values().map(|(_, r)| r.clone()).collect();
        out.sort_by_key(Lease::address);
        out
    }

    /// Every live record in the order it was written, so that replaying them rebuilds the same
    /// owner pointers (what compaction writes).
    pub(crate) fn in_write_order(&self) -> Vec<R> {
        let mut out: Vec<&(u64, R)> = self.by_addr.values().collect();
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// Active leases whose expiry is at or before `now`.
    pub(crate) fn expired_active(&self, now: SystemTime) -> Vec<R> {
        let mut out: Vec<&(u64, R)> = self
            .by_addr
            .values()
            .filter(|(_, r)| *r.state() == LeaseState::Active && r.expires_at() <= now)
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, r)| r.clone()).collect()
    }
}

impl Index {
    pub(crate) fn by_client_id(&self, id: &[u8]) -> Option<&LeaseRecord> {
        self.by_owner(&Owner::ClientId(id.to_vec()))
    }
}

/// Both families, as the store keeps them.
#[derive(Default)]
pub(crate) struct Indexes {
    pub(crate) v4: FamilyIndex<LeaseRecord>,
    pub(crate) v6: FamilyIndex<Lease6Record>,
}

impl Indexes {
    pub(crate) fn apply(&mut self, lease: StoredLease) {
        match lease {
            StoredLease::V4(record) => self.v4.apply(record),
            StoredLease::V6(record) => self.v6.apply(record),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Every live record, v4 then v6, each family in the order it was written (what compaction
    /// writes: replaying it rebuilds each family's pointers).
    pub(crate) fn in_write_order(&self) -> Vec<StoredLease> {
        let v4 = self.v4.in_write_order().into_iter().map(StoredLease::V4);
        let v6 = self.v6.in_write_order().into_iter().map(StoredLease::V6);
        v4.chain(v6).collect()
    }
}
