//! Proxy mode (PXE specification 2.1): boot information only, to netboot clients, on port 67
//! and as the boot server on port 4011.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::MessageType;

use crate::policy::{BootDecision, Mode};
use crate::v4::codec::{Reply, code};

use super::reply::{OptionSet, encode_logged};
use super::{Action, CLIENT_PORT, Core, Request, SERVER_PORT, Silence, Transmit, Verdict};

impl Core {
    pub(super) fn proxy(&mut self, request: &Request<'_>) -> Verdict {
        let message = request.message;
        match request.message_type {
            MessageType::Discover => {}
            MessageType::Request
                if message.server_id().is_some_and(|id| {
                    request.interface.addresses.iter().any(|a| a.addr() == id)
                }) => {}
            other => return Err(Silence::NotForProxy(other)),
        }
        let mac = request.client.mac;
        let reservation = request.client.reservation(&self.settings).cloned();
        if self.settings.known_clients_only && reservation.is_none() {
            tracing::debug!(%mac, "dhcp proxy: not answering: known clients only and no reservation");
            return Err(Silence::KnownClientsOnly(None));
        }
        let subnet = self
            .subnet_index(request)
            .map(|i| self.settings.subnets[i].clone());
        let server_id = self
            .server_id(request, subnet.as_ref())
            .ok_or(Silence::NoServerAddress)?;
        let reply_type = if request.message_type == MessageType::Discover {
            MessageType::Offer
        } else {
            MessageType::Ack
        };
        let mut reply = Reply::new(reply_type, message);
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        let decision = self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::Proxy,
            reservation.as_ref(),
            server_id,
        );
        let BootDecision::Boot(offer) = decision else {
            if !matches!(decision, BootDecision::NotNetboot { .. }) {
                tracing::info!(%mac, "dhcp proxy: no answer: {decision}");
            }
            return Err(Silence::NoBootFile(Box::new(decision)));
        };
        // The PXE specification requires option 60 in a proxy offer, whatever prefix matched.
        if offer.vendor_class.is_none() {
            options.put(code::VENDOR_CLASS, b"PXEClient".to_vec());
        }
        options.finish(&mut reply, message);
        let bytes = encode_logged(&reply)?;
        let to = if !message.giaddr().is_unspecified() {
            SocketAddrV4::new(message.giaddr(), SERVER_PORT)
        } else {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        };
        tracing::info!(%mac, file = offer.file.as_str(), "dhcp proxy: {reply_type:?} with boot information ({})", offer.kind);
        Ok(Action::Send(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware: None,
        }))
    }

    /// Port 4011: the PXE boot server's ACK to a client that already has its address.
    pub(super) fn boot_server(&mut self, request: &Request<'_>) -> Verdict {
        if !matches!(
            request.message_type,
            MessageType::Request | MessageType::Inform
        ) {
            return Err(Silence::NotForProxy(request.message_type));
        }
        let mac = request.client.mac;
        let reservation = request.client.reservation(&self.settings).cloned();
        if self.settings.known_clients_only && reservation.is_none() {
            return Err(Silence::KnownClientsOnly(None));
        }
        let server_id = self
            .server_id(request, None)
            .ok_or(Silence::NoServerAddress)?;
        let mut reply = Reply::new(MessageType::Ack, request.message);
        reply.ciaddr = request.message.ciaddr();
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        let decision = self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::BootServer,
            reservation.as_ref(),
            server_id,
        );
        let BootDecision::Boot(offer) = decision else {
            tracing::info!(%mac, "dhcp boot server: no answer: {decision}");
            return Err(Silence::NoBootFile(Box::new(decision)));
        };
        if offer.vendor_class.is_none() {
            options.put(code::VENDOR_CLASS, b"PXEClient".to_vec());
        }
        options.finish(&mut reply, request.message);
        let bytes = encode_logged(&reply)?;
        let to = if request.source.ip().is_unspecified() {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, request.source.port())
        } else {
            request.source
        };
        tracing::info!(%mac, file = offer.file.as_str(), "dhcp boot server: ACK on port 4011 ({})", offer.kind);
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
