//! DECLINE and RELEASE (RFC 2131 4.3.3, 4.3.4): a client gives an address back, because it
//! found it in use or no longer needs it.

use std::time::SystemTime;

use dhcproto::v4::MessageType;

use crate::event::{LeaseEvent, LeaseEventKind};
use crate::lease::{AbandonReason, LeaseRecord, LeaseState};

use super::{Action, Core, Request, Silence, Verdict};

impl Core {
    pub(super) fn decline(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let message = request.message;
        let subnet_index = self.subnet_index(request).ok_or(Silence::NoSubnet)?;
        let subnet = self.settings.subnets[subnet_index].clone();
        let server_id = self
            .server_id(request, Some(&subnet))
            .ok_or(Silence::NoServerAddress)?;
        if let Some(other) = message.server_id().filter(|id| *id != server_id) {
            return Err(Silence::OtherServersDecline(other));
        }
        let address = message
            .requested_ip()
            .ok_or(Silence::NoAddressToFree(MessageType::Decline))?;
        let not_held = Silence::NotHeld(MessageType::Decline, address);
        let record = self
            .leases
            .by_addr(address)
            .ok_or(not_held.clone())?
            .clone();
        if !request.client.owns(&record) || matches!(record.state, LeaseState::Abandoned(_)) {
            tracing::debug!(mac = %request.client.mac, %address, "dhcp: ignored a DECLINE for an address the client does not hold");
            return Err(not_held);
        }
        tracing::warn!(mac = %request.client.mac, %address,
            "dhcp: DECLINE: the client found {address} in use; set aside for {}s", subnet.lease_time.as_secs());
        let mut events = Vec::new();
        if record.state == LeaseState::Active {
            events.push(LeaseEvent::of(LeaseEventKind::Released, &record));
        }
        let abandoned = LeaseRecord {
            state: LeaseState::Abandoned(AbandonReason::Declined),
            granted_at: now,
            expires_at: now + subnet.lease_time,
            ..record
        };
        self.leases.apply(abandoned.clone());
        Ok(Action::Commit {
            records: vec![abandoned],
            then: None,
            events,
        })
    }

    pub(super) fn release(&mut self, request: &Request<'_>, now: SystemTime) -> Verdict {
        let address = request.message.ciaddr();
        if address.is_unspecified() {
            return Err(Silence::NoAddressToFree(MessageType::Release));
        }
        let not_held = Silence::NotHeld(MessageType::Release, address);
        let record = self
            .leases
            .by_addr(address)
            .ok_or(not_held.clone())?
            .clone();
        if !request.client.owns(&record) || record.state != LeaseState::Active {
            tracing::debug!(mac = %request.client.mac, %address, "dhcp: ignored a RELEASE for an address the client does not hold");
            return Err(not_held);
        }
        tracing::info!(mac = %record.mac, %address, "dhcp: RELEASE");
        let released = LeaseRecord {
            state: LeaseState::Released,
            expires_at: now.min(record.expires_at),
            ..record
        };
        self.leases.apply(released.clone());
        let events = vec![LeaseEvent::of(LeaseEventKind::Released, &released)];
        Ok(Action::Commit {
            records: vec![released],
            then: None,
            events,
        })
    }
}
