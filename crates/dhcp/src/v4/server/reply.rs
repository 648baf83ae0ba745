//! Building replies: the options of a lease (built in, then configured scope by scope, in the
//! client's parameter request order), the boot policy's fields, and where a reply goes
//! (RFC 2131 4.1).

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{HType, MessageType};

use crate::lease::MacAddr;
use crate::policy::{self, BootDecision, BootFile, BootRequest, Mode};
use crate::v4::codec::{self, CodecError, Message, Reply, code};

use super::{
    CLIENT_PORT, Core, Request, Reservation, SERVER_PORT, Silence, Subnet, Transmit,
    sanitize_hostname,
};

impl Core {
    /// An OFFER or ACK carrying a lease of `address`.
    pub(super) fn lease_reply(
        &self,
        message_type: MessageType,
        request: &Request<'_>,
        subnet: &Subnet,
        reservation: Option<&Reservation>,
        server_id: Ipv4Addr,
        address: Ipv4Addr,
    ) -> Result<Transmit, Silence> {
        let message = request.message;
        let mut reply = Reply::new(message_type, message);
        reply.yiaddr = address;
        if message_type == MessageType::Ack {
            reply.ciaddr = message.ciaddr();
        }
        let mut options = OptionSet::default();
        options.put(code::SERVER_ID, server_id.octets().to_vec());
        let lease = u32::try_from(subnet.lease_time.as_secs()).unwrap_or(u32::MAX);
        options.put(51, lease.to_be_bytes().to_vec());
        options.put(58, (lease / 2).to_be_bytes().to_vec());
        options.put(
            59,
            (u64::from(lease) * 7 / 8)
                .min(u64::from(u32::MAX))
                .to_be_bytes()[4..]
                .to_vec(),
        );
        self.subnet_options(&mut options, subnet, server_id);
        if let Some(hostname) = reservation.and_then(|r| r.hostname.as_ref()) {
            options.put(code::HOSTNAME, hostname.as_bytes().to_vec());
        }
        self.configured_options(
            &mut options,
            Some(subnet),
            message.vendor_class(),
            reservation,
        );
        self.boot_options(
            &mut reply,
            &mut options,
            request,
            Mode::Server,
            reservation,
            server_id,
        );
        options.finish(&mut reply, message);
        let bytes = encode_logged(&reply)?;
        let (to, hardware) = reply_destination(message, address);
        Ok(Transmit {
            bytes,
            to,
            from: server_id,
            ifindex: request.interface.index,
            port: request.port,
            hardware,
        })
    }

    pub(super) fn subnet_options(
        &self,
        options: &mut OptionSet,
        subnet: &Subnet,
        server_id: Ipv4Addr,
    ) {
        options.put(1, subnet.network.netmask().octets().to_vec());
        if let Some(router) = subnet.router {
            options.put(3, router.octets().to_vec());
        }
        let dns: Vec<Ipv4Addr> = match &subnet.dns {
            Some(list) => list.clone(),
            None if self.settings.environment.dns_domain.is_some() => vec![server_id],
            None => Vec::new(),
        };
        if !dns.is_empty() {
            options.put(6, dns.iter().flat_map(|a| a.octets()).collect());
        }
        if let Some(domain) = subnet.domain.as_ref().or(self
            .settings
            .environment
            .dns_domain
            .as_ref())
        {
            options.put(15, domain.as_bytes().to_vec());
        }
    }

    /// The configured options, each scope overriding the one before code by code: global,
    /// subnet, matching classes, reservation.
    pub(super) fn configured_options(
        &self,
        options: &mut OptionSet,
        subnet: Option<&Subnet>,
        vendor_class: Option<&[u8]>,
        reservation: Option<&Reservation>,
    ) {
        let scopes = std::iter::once(&self.settings.options)
            .chain(subnet.map(|s| &s.options))
            .chain(self.settings.classes_for(vendor_class).map(|c| &c.options))
            .chain(reservation.map(|r| &r.options));
        for scope in scopes {
            for option in scope {
                options.put_configured(option.code, option.data.clone());
            }
        }
    }

    /// The boot policy's options: siaddr, option 66, file and option 67, 60, 43, 97.
    pub(super) fn boot_options(
        &self,
        reply: &mut Reply,
        options: &mut OptionSet,
        request: &Request<'_>,
        mode: Mode,
        reservation: Option<&Reservation>,
        server_id: Ipv4Addr,
    ) -> BootDecision {
        let mut boot_request =
            BootRequest::from_message(request.message, &self.settings.vendor_classes, mode);
        boot_request.http_port = self.settings.http_port;
        let decision = policy::choose(
            &boot_request,
            &self.settings.boot,
            reservation.map(|r| &r.boot),
        );
        if let BootDecision::Boot(offer) = &decision {
            let next_server = self.settings.advertise.unwrap_or(server_id);
            reply.siaddr = next_server;
            if let BootFile::Tftp(_) = offer.file {
                options.put(code::TFTP_SERVER_NAME, next_server.to_string().into_bytes());
            }
            let file = offer
                .file
                .url_on(std::net::IpAddr::V4(server_id))
                .into_bytes();
            let file = &file[..];
            options.put(code::BOOTFILE_NAME, file.to_vec());
            reply.file = if file.len() <= codec::MAX_FILE_LEN && !file.contains(&0) {
                file.to_vec()
            } else {
                Vec::new()
            };
            if let Some(class) = &offer.vendor_class {
                options.put(code::VENDOR_CLASS, class.as_bytes().to_vec());
            }
            if let Some(vendor) = &offer.vendor_options {
                options.put(code::VENDOR_OPTIONS, vendor.clone());
            }
            if let Some(uuid) = &offer.uuid {
                options.put(code::CLIENT_UUID, uuid.clone());
            }
        }
        tracing::debug!(mac = %request.client.mac, "dhcp: boot policy: {decision}");
        decision
    }
}

/// The host name a client asks for: option 81's (RFC 4702) first label, else option 12's,
/// sanitized.
pub(super) fn client_hostname(message: &Message) -> Option<String> {
    if let Some(fqdn) = message.client_fqdn()
        && fqdn.len() > 3
    {
        let flags = fqdn[0];
        let name = &fqdn[3..];
        let first_label: Vec<u8> = if flags & 0x04 != 0 {
            let len = usize::from(name[0]);
            name.get(1..1 + len).map(<[u8]>::to_vec).unwrap_or_default()
        } else {
            name.to_vec()
        };
        if let Some(clean) = sanitize_hostname(&first_label) {
            return Some(clean);
        }
    }
    message.hostname().and_then(sanitize_hostname)
}

/// Where a lease reply goes (RFC 2131 4.1) and the hardware address a unicast to a client
/// without an address needs.
pub(super) fn reply_destination(
    message: &Message,
    yiaddr: Ipv4Addr,
) -> (SocketAddrV4, Option<MacAddr>) {
    if !message.giaddr().is_unspecified() {
        return (SocketAddrV4::new(message.giaddr(), SERVER_PORT), None);
    }
    if !message.ciaddr().is_unspecified() {
        return (SocketAddrV4::new(message.ciaddr(), CLIENT_PORT), None);
    }
    if message.flags().broadcast() || yiaddr.is_unspecified() {
        return (SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT), None);
    }
    match message.mac() {
        Some(mac) if message.htype() == HType::Eth => {
            (SocketAddrV4::new(yiaddr, CLIENT_PORT), Some(MacAddr(mac)))
        }
        _ => (SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT), None),
    }
}

pub(super) fn encode_logged(reply: &Reply) -> Result<Vec<u8>, Silence> {
    codec::encode(reply).map_err(|error| {
        tracing::warn!(%error, "dhcp: could not encode the {:?}; nothing sent", reply.message_type);
        Silence::Unencodable
    })
}

/// The options of a reply by code, built-in ones first and configured ones overriding them;
/// written in the order of the client's parameter request list, then the rest.
#[derive(Default)]
pub(super) struct OptionSet {
    values: Vec<(u8, Vec<u8>, bool)>,
}

impl OptionSet {
    pub(super) fn put(&mut self, code: u8, data: Vec<u8>) {
        self.insert(code, data, false);
    }

    pub(super) fn put_configured(&mut self, code: u8, data: Vec<u8>) {
        self.insert(code, data, true);
    }

    fn insert(&mut self, code: u8, data: Vec<u8>, configured: bool) {
        match self.values.iter_mut().find(|(c, _, _)| *c == code) {
            Some(slot) => *slot = (code, data, configured),
            None => self.values.push((code, data, configured)),
        }
    }

    /// Moves the options into `reply`. If the reply would not fit the client's size limit,
    /// configured options the client did not ask for are left out first.
    pub(super) fn finish(mut self, reply: &mut Reply, request: &Message) {
        let requested = request.parameter_request_list().unwrap_or_default();
        let rank = |code: u8| match code {
            code::SERVER_ID => 0,
            _ => requested
                .iter()
                .position(|&c| c == code)
                .map_or(usize::MAX, |p| p + 1),
        };
        self.values.sort_by_key(|(code, _, _)| rank(*code));
        if let Some(info) = request.relay_agent_info() {
            self.values
                .push((code::RELAY_AGENT_INFO, info.to_vec(), false));
        }
        let base = reply.options.len();
        for (code, data, _) in &self.values {
            reply.push_raw(*code, data.clone());
        }
        if matches!(codec::encode(reply), Err(CodecError::TooLong { .. })) {
            reply.options.truncate(base);
            for (code, data, configured) in self.values {
                if !configured || requested.contains(&code) {
                    reply.push_raw(code, data);
                }
            }
        }
    }
}
