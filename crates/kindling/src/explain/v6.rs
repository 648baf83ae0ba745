//! `kindling explain --v6`: the DHCPv6 ADVERTISE a client would get, and why; the same sans-IO
//! core the daemon runs, over the config's `dhcp.v6` section and the v6 leases in `state_dir`.
//! Nothing is sent and nothing is written (the server DUID is read if it exists, never made).

use std::fmt::Write as _;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::SystemTime;

use ipnet::Ipv6Net;
use kindling_config::{Config, DhcpConfig};
use kindling_dhcp::lease;
use kindling_dhcp::lease::MacAddr;
use kindling_dhcp::v6::codec::{
    IaNa, Message, MessageType, Options, class_data, class_items, code,
};
use kindling_dhcp::v6::server::{
    Action, CLIENT_PORT, Core, Datagram, Interface, PXE_ENTERPRISE, Settings, eui64_link_local,
    hex, mac_of_duid, parse_hex,
};

use super::Args;

/// The DUID shown when `state_dir` holds none yet (the daemon makes one at its first start).
const PLACEHOLDER_DUID: [u8; 6] = [0, 4, 0x4b, 0x49, 0x4e, 0x44];

pub(super) fn explain(
    args: &Args,
    config: &Config,
    dhcp: &DhcpConfig,
    origin: &str,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let duid_path = config.state_dir.join(kindling_dhcp::service::DUID_FILE);
    let server_duid = std::fs::read_to_string(&duid_path)
        .ok()
        .and_then(|text| parse_hex(text.trim()));
    let duid_note = match &server_duid {
        Some(_) => format!("from {}", duid_path.display()),
        None => format!(
            "none in {} yet (the daemon makes one when it starts); a placeholder is shown",
            duid_path.display()
        ),
    };
    let dns_domain = config.dns.as_ref().map(|dns| dns.domain.clone());
    let Some(mut settings) = Settings::from_config(
        dhcp,
        &config.boot,
        server_duid.unwrap_or_else(|| PLACEHOLDER_DUID.to_vec()),
        dns_domain,
    ) else {
        let why = if dhcp.mode != kindling_config::DhcpMode::Server {
            "proxy mode serves no DHCPv6 (the network's own DHCPv6 server hands out addresses)"
        } else {
            "the config has no dhcp.v6.subnets, so Kindling serves no DHCPv6"
        };
        let _ = writeln!(
            out,
            "config:   {origin}\nreply:    none\n\nwhy:\n  no reply: {why}"
        );
        return Ok(out);
    };
    settings.http_port = crate::serve::http_port(config, true);
    let subnet = &settings.subnets[0];
    let server = args
        .server_ip6
        .unwrap_or_else(|| Ipv6Addr::from(u128::from(subnet.network.network()) + 1));
    let prefix = settings
        .subnets
        .iter()
        .find(|s| s.network.contains(&server))
        .map_or(64, |s| s.network.prefix_len());
    let (records, lease_note) = match lease::read_snapshot(&config.state_dir) {
        Ok((snapshot, _)) => {
            let note = format!("{} v6 lease(s) in state_dir", snapshot.v6.len());
            (snapshot.v6, note)
        }
        Err(error) => (
            Vec::new(),
            format!("unreadable ({error}); explained as if there were none"),
        ),
    };
    let duid = match &args.duid {
        Some(text) => parse_hex(text)
            .filter(|d| (2..=130).contains(&d.len()))
            .ok_or_else(|| {
                anyhow::anyhow!("--duid {text:?} is not a DUID in hex (2 to 130 bytes)")
            })?,
        // A DUID-UUID as EDK2 makes from SMBIOS, else the DUID-LL of the MAC, as a client
        // without a stored DUID would make.
        None => match (args.uuid, args.mac) {
            (Some(uuid), _) => [&[0u8, 4][..], &uuid].concat(),
            (None, Some(mac)) => [&[0u8, 3, 0, 1][..], &mac.0].concat(),
            (None, None) => anyhow::bail!("--mac, --uuid or --duid names the client"),
        },
    };
    // The MAC the request's link-local source shows (its EUI-64), as the wire would.
    let mac = args
        .mac
        .map(|m| MacAddr(m.0))
        .or_else(|| mac_of_duid(&duid));
    let request = solicit(args, &duid);
    let interface = Interface {
        index: 1,
        name: "explain".into(),
        addresses: vec![Ipv6Net::new(server, prefix)?],
    };
    let link_local = mac.map_or(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), eui64_link_local);
    let source = SocketAddrV6::new(link_local, CLIENT_PORT, 0, 1);
    let reservation = settings.reservation(&duid, mac).map(|r| {
        let by = if r.duid.as_deref() == Some(&duid[..]) {
            "its DUID"
        } else if let (Some(reserved), Some(sent)) =
            (r.uuid, kindling_dhcp::identity::SystemUuid::of_duid(&duid))
            && reserved.matches(sent)
        {
            "its SMBIOS UUID (DUID-UUID)"
        } else {
            "its MAC"
        };
        format!("dhcp.reservations[{}] names this client by {by}", r.index)
    });
    let mut core = Core::new(settings.clone(), records);
    let bytes = request.emit();
    let verdict = core.decide(
        &Datagram {
            bytes: &bytes,
            source,
            interface: &interface,
        },
        SystemTime::now(),
    );

    let _ = writeln!(out, "request:  SOLICIT from {source} (DUID {})", hex(&duid));
    if let Some(mac) = mac_of_duid(&duid) {
        let _ = writeln!(out, "          (the DUID names MAC {mac})");
    }
    write_options(&mut out, &request.options);
    let _ = writeln!(out, "config:   {origin}");
    let _ = writeln!(
        out,
        "server:   {server} (--server-ip6 sets another), DUID {duid_note}"
    );
    let _ = writeln!(out, "leases:   {lease_note}");
    let _ = writeln!(
        out,
        "reservation: {}",
        reservation.as_deref().unwrap_or("none names this client")
    );
    out.push('\n');
    match verdict {
        Ok(Action::Send(transmit) | Action::Commit { then: transmit, .. }) => {
            let reply = Message::parse(&transmit.bytes)
                .map_err(|error| anyhow::anyhow!("the core's reply does not parse: {error}"))?;
            let _ = writeln!(out, "reply:    {} to {}", reply.message_type, transmit.to);
            write_options(&mut out, &reply.options);
        }
        Err(silence) => {
            let _ = writeln!(out, "reply:    none\n\nwhy:\n  no reply: {silence}");
        }
    }
    Ok(out)
}

/// The SOLICIT a client of the given kind sends (as EDK2 and iPXE do: IA_NA, an option request
/// for 59, 23 and 24, and its architecture and classes).
fn solicit(args: &Args, duid: &[u8]) -> Message {
    let mut message = Message::new(MessageType::Solicit, *b"KIN");
    message.options.push(code::CLIENT_ID, duid.to_vec());
    let ia = IaNa {
        iaid: 1,
        t1: 0,
        t2: 0,
        addresses: Vec::new(),
        status: None,
    };
    message.options.push(code::IA_NA, ia.emit());
    let oro = [code::BOOTFILE_URL, code::DNS_SERVERS, code::DOMAIN_LIST];
    message.options.push(
        code::ORO,
        oro.iter().flat_map(|c| c.to_be_bytes()).collect(),
    );
    if let Some(arch) = args.arch {
        message
            .options
            .push(code::CLIENT_ARCH, arch.to_be_bytes().to_vec());
    }
    if let Some(class) = args
        .vendor_class
        .clone()
        .or_else(|| super::made_up_vendor_class(args))
    {
        let mut data = PXE_ENTERPRISE.to_be_bytes().to_vec();
        data.extend(class_data(&[class.as_bytes()]));
        message.options.push(code::VENDOR_CLASS, data);
    }
    let user_class = if args.ipxe {
        Some("iPXE".to_string())
    } else {
        args.user_class.clone()
    };
    if let Some(class) = user_class {
        message
            .options
            .push(code::USER_CLASS, class_data(&[class.as_bytes()]));
    }
    message
}

fn write_options(out: &mut String, options: &Options) {
    for option in &options.0 {
        let _ = writeln!(out, "          {}", describe(option.code, &option.data));
    }
}

/// One DHCPv6 option as people read it.
fn describe(option: u16, data: &[u8]) -> String {
    let text = |d: &[u8]| String::from_utf8_lossy(d).into_owned();
    match option {
        code::CLIENT_ID => format!("1 client-id {}", hex(data)),
        code::SERVER_ID => format!("2 server-id {}", hex(data)),
        code::IA_NA => match IaNa::parse(data, 0) {
            Ok(ia) => {
                let addresses: Vec<String> = ia
                    .addresses
                    .iter()
                    .map(|a| format!("{} (valid {}s)", a.address, a.valid))
                    .collect();
                let status = Options::parse(data.get(12..).unwrap_or_default(), 0)
                    .ok()
                    .and_then(|o| o.get(code::STATUS_CODE).map(status_text))
                    .map(|s| format!(", status {s}"))
                    .unwrap_or_default();
                format!(
                    "3 IA_NA iaid {} T1 {} T2 {}: {}{status}",
                    ia.iaid,
                    ia.t1,
                    ia.t2,
                    if addresses.is_empty() {
                        "no address".to_string()
                    } else {
                        addresses.join(", ")
                    }
                )
            }
            Err(error) => format!("3 IA_NA (malformed: {error})"),
        },
        code::ORO => {
            let codes: Vec<String> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]).to_string())
                .collect();
            format!("6 option request: {}", codes.join(", "))
        }
        code::PREFERENCE => format!("7 preference {}", data.first().copied().unwrap_or(0)),
        code::STATUS_CODE => format!("13 status {}", status_text(data)),
        code::RAPID_COMMIT => "14 rapid commit".to_string(),
        code::USER_CLASS => {
            let items: Vec<String> = class_items(data).into_iter().map(text).collect();
            format!("15 user class {items:?}")
        }
        code::VENDOR_CLASS => {
            let items: Vec<String> = class_items(data.get(4..).unwrap_or_default())
                .into_iter()
                .map(text)
                .collect();
            format!("16 vendor class {items:?}")
        }
        code::DNS_SERVERS => {
            let servers: Vec<String> = data
                .chunks_exact(16)
                .filter_map(|c| <[u8; 16]>::try_from(c).ok())
                .map(|o| Ipv6Addr::from(o).to_string())
                .collect();
            format!("23 DNS servers {}", servers.join(", "))
        }
        code::DOMAIN_LIST => format!("24 domain search {}", dns_names(data)),
        code::BOOTFILE_URL => format!("59 boot file URL {}", text(data)),
        code::CLIENT_ARCH => {
            let arches: Vec<String> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]).to_string())
                .collect();
            format!("61 client architecture {}", arches.join(", "))
        }
        other => format!("{other} ({} bytes) {}", data.len(), hex(data)),
    }
}

fn status_text(data: &[u8]) -> String {
    let code = data
        .get(..2)
        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    let name = match code {
        0 => "Success",
        1 => "UnspecFail",
        2 => "NoAddrsAvail",
        3 => "NoBinding",
        4 => "NotOnLink",
        5 => "UseMulticast",
        _ => "unknown",
    };
    format!(
        "{code} {name} {:?}",
        String::from_utf8_lossy(data.get(2..).unwrap_or_default())
    )
}

/// Domain names in DNS wire format, as text.
fn dns_names(mut data: &[u8]) -> String {
    let mut names = Vec::new();
    let mut labels = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        if len == 0 {
            names.push(labels.join("."));
            labels.clear();
            data = rest;
            continue;
        }
        let Some(label) = rest.get(..usize::from(len)) else {
            break;
        };
        labels.push(String::from_utf8_lossy(label).into_owned());
        data = &rest[usize::from(len)..];
    }
    names.join(", ")
}
