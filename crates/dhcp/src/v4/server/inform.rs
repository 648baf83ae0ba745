//! INFORM (RFC 2131 4.3.5): options for a client that configured its address itself.

use std::net::SocketAddrV4;

use dhcproto::v4::MessageType;

use crate::policy::Mode;
use crate::v4::codec::{Reply, code};

use super::reply::{OptionSet, encode_logged};
use super::{Action, CLIENT_PORT, Core, Request, SERVER_PORT, Silence, Transmit, Verdict};

impl Core {
    pub(super) fn inform(&mut self, request: &Request<'_>) -> Verdict {
        let message = request.message;
        let subnet_index = self.subnet_index(request);
        let subnet = subnet_index.map(|i| self.settings.subnets[i].clone());
        let server_id = self
            .server_id(request, subnet.as_ref())
            .ok_or(Silence::NoServerAddress)?;
        let mut reply = Reply::new(MessageType::Ack, message);
        reply.ciaddr = message.ciaddr();
        let reservation = request.client.reservation(&self.settings).cloned();
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        if let Some(subnet) = &subnet {
            self.subnet_options(&mut options, subnet, server_id);
        }
        self.configured_options(
            &mut options,
            subnet.as_ref(),
            request.message.vendor_class(),
            reservation.as_ref(),
        );
        self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::Server,
            reservation.as_ref(),
            server_id,
        );
        options.finish(&mut reply, message);
        let bytes = encode_logged(&reply)?;
        let to = if !message.giaddr().is_unspecified() {
            SocketAddrV4::new(message.giaddr(), SERVER_PORT)
        } else if !message.ciaddr().is_unspecified() {
            SocketAddrV4::new(message.ciaddr(), CLIENT_PORT)
        } else {
            SocketAddrV4::new(*request.source.ip(), request.source.port())
        };
        tracing::debug!(mac = %request.client.mac, "dhcp: ACK to INFORM");
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
