//! DISCOVER: which address a client is offered (RFC 2131 4.3.1), and the rules of who may take
//! an address, shared with REQUEST.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use dhcproto::v4::MessageType;

use crate::lease::{LeaseRecord, LeaseState};

use super::{
    Action, ClientKey, Core, EXHAUSTED_LOG_INTERVAL, Hold, PROBE_MEMORY, PendingProbe, ProbeId,
    Request, Reservation, Silence, Subnet, Verdict,
};

impl Core {
    pub(super) fn discover_with(
        &mut self,
        request: &Request<'_>,
        now: SystemTime,
        attempts: u32,
    ) -> Verdict {
        let mac = request.client.mac;
        let Some(subnet_index) = self.subnet_index(request) else {
            tracing::debug!(%mac, interface = %request.interface.name, giaddr = %request.message.giaddr(),
                "dhcp: no subnet is configured for this network; no offer");
            return Err(Silence::NoSubnet);
        };
        let reservation = request.client.reservation(&self.settings).cloned();
        let subnet = self.settings.subnets[subnet_index].clone();
        if subnet.known_clients_only && reservation.is_none() {
            tracing::info!(%mac, "dhcp: no offer: subnet {} answers known clients only", subnet.network);
            return Err(Silence::KnownClientsOnly(Some(subnet.name())));
        }
        if self
            .probes
            .values()
            .any(|p| attempts == 0 && p.request.mac() == Some(mac.0))
        {
            // A retransmitted DISCOVER while its probe runs: the probe's outcome answers it.
            return Err(Silence::ProbeInProgress);
        }
        let (address, probe) =
            match self.choose_address(request, &subnet, reservation.as_ref(), now) {
                Some(choice) => choice,
                None => {
                    let last = self.exhausted_logged.get(&subnet_index);
                    if last.is_none_or(|at| {
                        now.duration_since(*at)
                            .is_ok_and(|d| d >= EXHAUSTED_LOG_INTERVAL)
                    }) {
                        self.exhausted_logged.insert(subnet_index, now);
                        tracing::warn!(subnet = %subnet.network,
                        "dhcp: no free address in {}..={} (pool exhausted); DISCOVERs get no offer",
                        subnet.first, subnet.last);
                    }
                    return Err(Silence::PoolExhausted {
                        subnet: subnet.name(),
                        first: subnet.first,
                        last: subnet.last,
                    });
                }
            };
        let hold_until = now + self.settings.offer_hold;
        self.holds.insert(
            address,
            Hold {
                client: request.client.clone(),
                until: hold_until,
            },
        );
        if probe && self.settings.ping_check {
            let id = ProbeId(self.next_probe);
            self.next_probe += 1;
            self.probes.insert(
                id,
                PendingProbe {
                    request: request.message.clone(),
                    interface: request.interface.clone(),
                    source: request.source,
                    destination: request.destination,
                    port: request.port,
                    address,
                    attempts: attempts + 1,
                },
            );
            return Ok(Action::Probe {
                id,
                address,
                ifindex: request.interface.index,
            });
        }
        let server_id = self
            .server_id(request, Some(&subnet))
            .ok_or(Silence::NoServerAddress)?;
        let reply = self.lease_reply(
            MessageType::Offer,
            request,
            &subnet,
            reservation.as_ref(),
            server_id,
            address,
        )?;
        tracing::debug!(%mac, %address, "dhcp: OFFER");
        Ok(Action::Send(reply))
    }

    /// The address to offer and whether it must be probed first.
    pub(super) fn choose_address(
        &mut self,
        request: &Request<'_>,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        now: SystemTime,
    ) -> Option<(Ipv4Addr, bool)> {
        let client = &request.client;
        if let Some(address) = reservation.and_then(|r| r.address)
            && subnet.network.contains(&address)
        {
            return Some((address, false));
        }
        if let Some(record) = self.client_record(client)
            && subnet.in_range(record.address)
            && self.free_for(record.address, client, now)
        {
            return Some((record.address, false));
        }
        if let Some((&address, _)) = self
            .holds
            .iter()
            .find(|(a, hold)| hold.client == *client && hold.until > now && subnet.in_range(**a))
        {
            return Some((address, false));
        }
        if let Some(requested) = request.message.requested_ip()
            && subnet.in_range(requested)
            && self.free_for(requested, client, now)
        {
            return Some((requested, self.needs_probe(requested, now)));
        }
        let index = self
            .settings
            .subnets
            .iter()
            .position(|s| s.index == subnet.index)?;
        let len = subnet.range_len();
        let start = self.cursors[index] % len;
        let first = u32::from(subnet.first);
        let mut used_before = None;
        for step in 0..len {
            let offset = (start + step) % len;
            let address = Ipv4Addr::from(first + offset);
            if !self.free_for(address, client, now) {
                continue;
            }
            if self.leases.by_addr(address).is_none() {
                self.cursors[index] = offset + 1;
                return Some((address, self.needs_probe(address, now)));
            }
            if used_before.is_none() {
                used_before = Some(address);
            }
        }
        used_before.map(|a| (a, self.needs_probe(a, now)))
    }

    pub(super) fn needs_probe(&self, address: Ipv4Addr, now: SystemTime) -> bool {
        self.settings.ping_check
            && !self
                .probed_free
                .get(&address)
                .is_some_and(|at| now.duration_since(*at).is_ok_and(|d| d < PROBE_MEMORY))
    }

    /// The newest lease record of a client (not an abandoned one).
    pub(super) fn client_record(&self, client: &ClientKey) -> Option<&LeaseRecord> {
        if let Some(id) = &client.client_id
            && let Some(record) = self.leases.by_client_id(id)
        {
            return Some(record);
        }
        self.leases.by_mac(client.mac).filter(|r| client.owns(r))
    }

    /// True when `address` may be handed to `client` now: not reserved for someone else, not
    /// held by another client's live lease or offer, not set aside.
    pub(super) fn free_for(&self, address: Ipv4Addr, client: &ClientKey, now: SystemTime) -> bool {
        if let Some(reservation) = self.settings.reservation_of_address(address)
            && client.reservation(&self.settings).map(|r| r.index) != Some(reservation.index)
        {
            return false;
        }
        if let Some(hold) = self.holds.get(&address)
            && hold.until > now
            && hold.client != *client
        {
            return false;
        }
        match self.leases.by_addr(address) {
            None => true,
            Some(record) => match &record.state {
                LeaseState::Active => record.expires_at <= now || client.owns(record),
                LeaseState::Abandoned(_) => record.expires_at <= now,
                LeaseState::Released | LeaseState::Expired => true,
            },
        }
    }

    /// True when `address` is the client's to take: its reservation, or a free address of the
    /// subnet's range.
    pub(super) fn may_take(
        &self,
        address: Ipv4Addr,
        client: &ClientKey,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        now: SystemTime,
    ) -> bool {
        if let Some(reserved) = reservation.and_then(|r| r.address)
            && subnet.network.contains(&reserved)
        {
            return address == reserved;
        }
        subnet.in_range(address) && self.free_for(address, client, now)
    }
}
