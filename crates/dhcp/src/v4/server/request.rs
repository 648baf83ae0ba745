//! REQUEST in every client state (RFC 2131 4.3.2): SELECTING, INIT-REBOOT, RENEWING and
//! REBINDING, answered with an ACK (after the lease is durable), a NAK, or silence.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::SystemTime;

use dhcproto::v4::{DhcpOption, Flags, MessageType};

use crate::event::{LeaseEvent, LeaseEventKind};
use crate::lease::{LeaseRecord, LeaseState};
use crate::v4::codec::{Reply, code};

use super::reply::{client_hostname, encode_logged};
use super::{
    Action, CLIENT_PORT, Core, Request, Reservation, SERVER_PORT, Silence, Subnet, Transmit,
    Verdict,
};

impl Core {
    pub(super) fn request(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let message = request.message;
        let mac = request.client.mac;
        let subnet_index = self.subnet_index(request).ok_or(Silence::NoSubnet)?;
        let subnet = self.settings.subnets[subnet_index].clone();
        let reservation = request.client.reservation(&self.settings).cloned();
        let server_id = self
            .server_id(request, Some(&subnet))
            .ok_or(Silence::NoServerAddress)?;
        if let Some(chosen) = message.server_id() {
            // SELECTING.
            if !request
                .interface
                .addresses
                .iter()
                .any(|a| a.addr() == chosen)
                && chosen != server_id
            {
                let before = self.holds.len();
                self.holds.retain(|_, hold| hold.client != request.client);
                if self.holds.len() != before {
                    tracing::debug!(%mac, server = %chosen, "dhcp: the client took another server's offer; ours is withdrawn");
                }
                return Err(Silence::OtherServerChosen(chosen));
            }
            let Some(address) = message.requested_ip() else {
                tracing::debug!(%mac, "dhcp: dropped a REQUEST with our server identifier but no requested address");
                return Err(Silence::NoRequestedAddress);
            };
            if subnet.known_clients_only && reservation.is_none() {
                return Err(Silence::KnownClientsOnly(Some(subnet.name())));
            }
            if !self.may_take(address, &request.client, &subnet, reservation.as_ref(), now) {
                return self.nak(
                    request,
                    server_id,
                    address,
                    "the address is no longer available",
                );
            }
            return self.ack(
                request,
                &subnet,
                reservation.as_ref(),
                server_id,
                address,
                now,
            );
        }
        let ciaddr = message.ciaddr();
        let (address, state) = match (message.requested_ip(), ciaddr.is_unspecified()) {
            (Some(address), true) => (address, "INIT-REBOOT"),
            (_, false) => (
                ciaddr,
                if request.destination.is_broadcast() {
                    "REBINDING"
                } else {
                    "RENEWING"
                },
            ),
            (None, true) => {
                tracing::debug!(%mac, "dhcp: dropped a REQUEST with neither a requested address nor ciaddr");
                return Err(Silence::NoAddressInRequest);
            }
        };
        if !subnet.network.contains(&address) {
            return self.nak(
                request,
                server_id,
                address,
                "the address is not on this network",
            );
        }
        if let Some(reserved) = reservation.as_ref().and_then(|r| r.address)
            && subnet.network.contains(&reserved)
        {
            if address != reserved {
                return self.nak(
                    request,
                    server_id,
                    address,
                    "the client has a reservation for another address",
                );
            }
            return self.ack(
                request,
                &subnet,
                reservation.as_ref(),
                server_id,
                address,
                now,
            );
        }
        let owned = self.leases.by_addr(address).is_some_and(|r| {
            request.client.owns(r) && !matches!(r.state, LeaseState::Abandoned(_))
        });
        if owned {
            if !self.free_for(address, &request.client, now) || !subnet.in_range(address) {
                return self.nak(
                    request,
                    server_id,
                    address,
                    "the address is no longer available",
                );
            }
            return self.ack(
                request,
                &subnet,
                reservation.as_ref(),
                server_id,
                address,
                now,
            );
        }
        if !self.free_for(address, &request.client, now) {
            return self.nak(
                request,
                server_id,
                address,
                "another client holds the address",
            );
        }
        tracing::debug!(%mac, %address, "dhcp: {state} REQUEST from a client we have no record of; staying silent (RFC 2131 4.3.2)");
        Err(Silence::UnknownClient { state })
    }

    pub(super) fn ack(
        &mut self,
        request: &Request<'_>,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        server_id: Ipv4Addr,
        address: Ipv4Addr,
        now: SystemTime,
    ) -> Verdict {
        let transmit = self.lease_reply(
            MessageType::Ack,
            request,
            subnet,
            reservation,
            server_id,
            address,
        )?;
        let hostname = reservation
            .and_then(|r| r.hostname.clone())
            .or_else(|| client_hostname(request.message));
        let previous = self.leases.by_addr(address);
        let kind = match previous {
            Some(p)
                if p.state == LeaseState::Active
                    && request.client.owns(p)
                    && p.expires_at > now =>
            {
                LeaseEventKind::Renewed
            }
            _ => LeaseEventKind::Granted,
        };
        let record = LeaseRecord {
            mac: request.client.mac,
            client_id: request.client.client_id.clone(),
            address,
            hostname,
            state: LeaseState::Active,
            granted_at: now,
            expires_at: now + subnet.lease_time,
        };
        self.holds.remove(&address);
        self.leases.apply(record.clone());
        tracing::info!(mac = %record.mac, %address, hostname = record.hostname.as_deref().unwrap_or(""),
            "dhcp: ACK, lease {kind} for {}s", subnet.lease_time.as_secs());
        let events = vec![LeaseEvent::of(kind, &record)];
        Ok(Action::Commit {
            records: vec![record],
            then: Some(transmit),
            events,
        })
    }

    pub(super) fn nak(
        &mut self,
        request: &Request<'_>,
        server_id: Ipv4Addr,
        address: Ipv4Addr,
        why: &str,
    ) -> Verdict {
        tracing::info!(mac = %request.client.mac, %address, "dhcp: NAK: {why}");
        let mut reply = Reply::new(MessageType::Nak, request.message);
        reply.push(DhcpOption::ServerIdentifier(server_id));
        reply.push_raw(56, why.as_bytes());
        if let Some(info) = request.message.relay_agent_info() {
            reply.push_raw(code::RELAY_AGENT_INFO, info);
        }
        let relayed = !request.message.giaddr().is_unspecified();
        if relayed {
            reply.flags = Flags::default().set_broadcast();
        }
        let bytes = encode_logged(&reply)?;
        let to = if relayed {
            SocketAddrV4::new(request.message.giaddr(), SERVER_PORT)
        } else {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        };
        Ok(Action::Send(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware: None,
        }))
    }
}
