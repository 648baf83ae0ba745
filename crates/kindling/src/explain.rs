//! `kindling explain`: given a MAC and a client kind, the reply Kindling would send and why.
//!
//! The request is built byte by byte the way a client would send it and handed to the same
//! sans-IO DHCPv4 core the daemon runs, over the config's `dhcp` section and the leases in
//! `state_dir`; the reply is decoded and printed option by option. Nothing is sent, nothing is
//! written (the core's lease commits are dropped), and the ping check is skipped.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::ValueEnum;
use ipnet::Ipv4Net;
use kindling_config::{BootConfig, Config, DhcpConfig};
use kindling_dhcp::lease::{self, LeaseRecord, MacAddr};
use kindling_dhcp::policy::{self, Arch, BootDecision, BootFile, BootRequest, Mode};
use kindling_dhcp::v4::server::{
    Action, BOOT_SERVER_PORT, CLIENT_PORT, Core, Datagram, Environment, Interface, Reservation,
    SERVER_PORT, ServiceMode, Settings, Silence, Subnet, Transmit,
};
use kindling_dhcp::v4::{self, Message};

mod v6;

/// The arguments of `kindling explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The client's MAC address (aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff). With --v6, --duid
    /// may name the client instead.
    #[arg(long, value_name = "MAC", value_parser = parse_mac, required_unless_present_any = ["duid", "uuid"])]
    mac: Option<Mac>,
    /// The machine's SMBIOS UUID (8-4-4-4-12 hex): sent as option 97, or with --v6 as a
    /// DUID-UUID when --duid is not given.
    #[arg(long, value_name = "UUID", value_parser = parse_uuid)]
    uuid: Option<[u8; 16]>,
    /// The client architecture (option 93): 0 BIOS, 7 or 9 x64 UEFI, 11 ARM64 UEFI, 16 x64 UEFI
    /// HTTP, 19 ARM64 UEFI HTTP.
    #[arg(long, value_name = "N")]
    arch: Option<u16>,
    /// The vendor class (option 60). Default with --arch: "PXEClient:Arch:NNNNN:UNDI:003010"
    /// ("HTTPClient:..." for the HTTP boot architectures 16 and 19).
    #[arg(long, value_name = "S")]
    vendor_class: Option<String>,
    /// The user class (option 77), sent as the raw string.
    #[arg(long, value_name = "S", conflicts_with = "ipxe")]
    user_class: Option<String>,
    /// The client is iPXE (sends user class "iPXE").
    #[arg(long)]
    ipxe: bool,
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// How the request reaches Kindling; default: `dhcp.mode` of the config. `boot-server` is
    /// the REQUEST a UEFI PXE client sends to port 4011 after a proxyDHCP offer.
    #[arg(long, value_enum)]
    mode: Option<ExplainMode>,
    /// The address Kindling answers from. Default: the first host address of the first IPv4
    /// subnet, else (proxy mode without subnets) 192.0.2.1.
    #[arg(long, value_name = "IP")]
    server_ip: Option<Ipv4Addr>,
    /// Explain the DHCPv6 ADVERTISE instead: a SOLICIT with IA_NA and an option request for
    /// 59, 23 and 24, and option 61, 16 and 15 from --arch, --vendor-class, --user-class and
    /// --ipxe.
    #[arg(long)]
    v6: bool,
    /// The client's DUID in hex (with --v6). Default: the DUID-LL of --mac.
    #[arg(long, value_name = "HEX", requires = "v6")]
    duid: Option<String>,
    /// With --v6: this box's address on the client's link. Default: the first host address of
    /// the first dhcp.v6 subnet.
    #[arg(long, value_name = "IP", requires = "v6")]
    server_ip6: Option<std::net::Ipv6Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExplainMode {
    /// A DHCPDISCOVER to a full DHCP server.
    Server,
    /// A DHCPDISCOVER to proxyDHCP.
    Proxy,
    /// A DHCPREQUEST to the proxy's boot server on port 4011.
    BootServer,
}

fn parse_uuid(text: &str) -> Result<[u8; 16], String> {
    kindling_config::parse_uuid(text).ok_or_else(|| {
        format!("{text:?} is not a UUID: expected 8-4-4-4-12 hex digits, like 4c4c4544-0042-3510-8052-b3c04f595231")
    })
}

/// A MAC address from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mac(pub(crate) [u8; 6]);

/// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (one separator throughout, two hex
/// digits per byte, either case).
pub(crate) fn parse_mac(text: &str) -> Result<Mac, String> {
    let bad = || {
        format!(
            "{text:?} is not a MAC address: expected six bytes of two hex digits, like \
             52:54:00:12:34:56 or 52-54-00-12-34-56"
        )
    };
    let separator = if text.contains(':') { ':' } else { '-' };
    let parts: Vec<&str> = text.split(separator).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    Ok(Mac(mac))
}

/// The stand-in server address when the config names none (TEST-NET-1, RFC 5737).
const TEST_NET_SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The transaction id of the made-up request ("KIND").
const XID: [u8; 4] = *b"KIND";

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let loaded = crate::cli::parse_only(args.config.as_deref())?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let origin = args.config.as_ref().map_or_else(
        || kindling_config::EMBEDDED_ORIGIN.to_string(),
        |path| path.display().to_string(),
    );
    let config = &loaded.config;
    let Some(dhcp) = &config.dhcp else {
        println!(
            "reply: none\n\nwhy:\n  no reply: {origin} has no dhcp section, so Kindling runs no \
             DHCP service"
        );
        return Ok(ExitCode::SUCCESS);
    };
    if args.v6 {
        print!("{}", v6::explain(args, config, dhcp, &origin)?);
    } else {
        print!("{}", explain(args, config, dhcp, &origin)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Everything the explanation is built from.
struct Scene<'a> {
    config: &'a Config,
    settings: Settings,
    mac: MacAddr,
    /// The SMBIOS UUID the request carries (option 97).
    uuid: Option<[u8; 16]>,
    mode: ExplainMode,
    server: Ipv4Net,
    records: Vec<LeaseRecord>,
}

fn explain(
    args: &Args,
    config: &Config,
    dhcp: &DhcpConfig,
    origin: &str,
) -> anyhow::Result<String> {
    let mut quiet = dhcp.clone();
    quiet.ping_check = false;
    let environment = Environment {
        dns_domain: config.dns.as_ref().map(|dns| dns.domain.clone()),
    };
    let mut settings = Settings::new(&quiet, &config.boot, environment);
    settings.http_port = crate::serve::http_port(config, false);
    let configured_mode = match settings.mode {
        ServiceMode::Server => ExplainMode::Server,
        ServiceMode::Proxy => ExplainMode::Proxy,
    };
    let mode = args.mode.unwrap_or(configured_mode);
    match mode {
        ExplainMode::Server => settings.mode = ServiceMode::Server,
        ExplainMode::Proxy => settings.mode = ServiceMode::Proxy,
        // Port 4011 is answered the same whatever the mode.
        ExplainMode::BootServer => {}
    }
    let mut out = String::new();
    let (server, server_note) = server_address(&settings, args.server_ip);

    let (records, lease_note) = match lease::read_snapshot(&config.state_dir) {
        Ok((snapshot, report)) => {
            let records = snapshot.v4;
            let journal = report.path.display();
            let note = if !report.path.exists() {
                format!("none (no lease journal at {journal} yet)")
            } else if records.is_empty() {
                format!("none in {journal}")
            } else {
                format!("{} from {journal}", records.len())
            };
            let note = if report.is_clean() {
                note
            } else {
                format!("{note} (the journal is damaged: `kindling leases` says how)")
            };
            (records, note)
        }
        Err(error) => (
            Vec::new(),
            format!("unreadable ({error}); explained as if there were none"),
        ),
    };

    let mac = MacAddr(
        args.mac
            .ok_or_else(|| anyhow::anyhow!("--mac is needed to explain a DHCPv4 request"))?
            .0,
    );
    let request_bytes = request_bytes(args, mac, mode, server);
    let request = v4::decode(&request_bytes)
        .map_err(|error| anyhow::anyhow!("the made-up request does not decode: {error}"))?;
    let (source, destination, port) = match mode {
        ExplainMode::BootServer => (
            SocketAddrV4::new(client_address(server), BOOT_SERVER_PORT),
            server.addr(),
            BOOT_SERVER_PORT,
        ),
        _ => (
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT),
            Ipv4Addr::BROADCAST,
            SERVER_PORT,
        ),
    };
    let interface = Interface {
        index: 1,
        name: "explain".into(),
        addresses: vec![server],
    };
    let mut core = Core::new(settings.clone(), records.clone());
    let verdict = core.decide(
        &Datagram {
            bytes: &request_bytes,
            source,
            destination,
            interface: &interface,
            port,
        },
        SystemTime::now(),
    );
    let (transmit, silence) = match verdict {
        Ok(Action::Send(transmit))
        | Ok(Action::Commit {
            then: Some(transmit),
            ..
        }) => (Some(transmit), None),
        Ok(other) => anyhow::bail!("the core asked for {other:?} instead of a reply"),
        Err(silence) => (None, Some(silence)),
    };

    let scene = Scene {
        config,
        settings,
        mac,
        uuid: args.uuid,
        mode,
        server,
        records,
    };

    // The request.
    let kind = match mode {
        ExplainMode::BootServer => format!(
            "DHCPREQUEST from {} ({source}) to the boot server on port {BOOT_SERVER_PORT}",
            scene.mac
        ),
        _ => format!(
            "DHCPDISCOVER from {}, broadcast to port {SERVER_PORT}",
            scene.mac
        ),
    };
    let _ = writeln!(out, "request:  {kind}");
    for option in request.options().iter().filter(|o| o.code != 53) {
        let _ = writeln!(
            out,
            "          {}",
            describe_option(option.code, &option.data)
        );
    }
    if let Some(made_up) = made_up_vendor_class(args) {
        let _ = writeln!(
            out,
            "          (option 60 {made_up:?} is what a PXE ROM of arch {} sends; \
             --vendor-class sets another)",
            args.arch.unwrap_or_default()
        );
    }
    let mode_source = if args.mode.is_some() {
        "--mode"
    } else {
        "dhcp.mode"
    };
    let _ = writeln!(out, "config:   {origin}");
    let _ = writeln!(
        out,
        "mode:     {} ({mode_source})",
        mode.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string())
    );
    let _ = writeln!(out, "server:   {server_note}");
    let _ = writeln!(out, "leases:   {lease_note}");
    if dhcp.ping_check && mode == ExplainMode::Server {
        let _ = writeln!(
            out,
            "          (dhcp.ping_check is on: the daemon probes a new address before offering \
             it; explain does not)"
        );
    }
    out.push('\n');

    // The reply.
    let reply = match &transmit {
        Some(transmit) => {
            let reply = v4::decode(&transmit.bytes)
                .map_err(|error| anyhow::anyhow!("the core's reply does not decode: {error}"))?;
            write_reply(&mut out, &reply, transmit);
            Some(reply)
        }
        None => {
            let _ = writeln!(out, "reply:    none");
            None
        }
    };
    out.push('\n');

    // Why.
    let _ = writeln!(out, "why:");
    let reservation = scene
        .settings
        .reservation(None, scene.uuid.as_ref().map(|u| &u[..]), Some(scene.mac))
        .cloned();
    let policy_mode = match (mode, scene.settings.mode) {
        (ExplainMode::BootServer, _) => Mode::BootServer,
        (_, ServiceMode::Server) => Mode::Server,
        (_, ServiceMode::Proxy) => Mode::Proxy,
    };
    let boot_request =
        BootRequest::from_message(&request, &scene.settings.vendor_classes, policy_mode);
    let decision = policy::choose(
        &boot_request,
        &scene.settings.boot,
        reservation.as_ref().map(|r| &r.boot),
    );
    if let Some(silence) = &silence {
        let _ = writeln!(
            out,
            "  no reply:     {}",
            silence_text(&scene, reservation.as_ref(), silence)
        );
    }
    let _ = writeln!(out, "  boot policy:  {decision}");
    write_reservation(&mut out, &scene, reservation.as_ref(), &decision);
    write_subnet(&mut out, &scene);
    if let Some(reply) = &reply {
        write_address(&mut out, &scene, reservation.as_ref(), reply.yiaddr());
    }
    if let Some(offer) = decision.offer() {
        write_boot_file_check(&mut out, &scene, &offer.file, reply.is_some());
        if matches!(offer.kind, policy::ClientKind::Ipxe { .. }) {
            let facts = crate::profile_scripts::facts_for_explain(
                config,
                scene.mac.0,
                reply.as_ref().map(|r| std::net::IpAddr::V4(r.yiaddr())),
                scene.server.addr(),
            );
            out.push_str(&crate::profile_scripts::explain(config, &facts));
        }
    }
    Ok(out)
}

/// The address the made-up interface has, and a line saying where it came from.
fn server_address(settings: &Settings, server_ip: Option<Ipv4Addr>) -> (Ipv4Net, String) {
    let net = |address: Ipv4Addr, prefix: u8| {
        Ipv4Net::new(address, prefix).unwrap_or_else(|_| Ipv4Net::from(address))
    };
    if let Some(address) = server_ip {
        let subnet = settings.subnet_of(address);
        let prefix = subnet.map_or(24, |s| s.network.prefix_len());
        let where_from = match subnet {
            Some(s) => format!("in dhcp.subnets[{}] ({})", s.index, s.network),
            None => "in no configured subnet; /24 assumed".to_string(),
        };
        return (
            net(address, prefix),
            format!("{address} (--server-ip, {where_from})"),
        );
    }
    match settings.subnets.first() {
        Some(subnet) => {
            let address = subnet
                .network
                .hosts()
                .next()
                .unwrap_or(subnet.network.addr());
            (
                net(address, subnet.network.prefix_len()),
                format!(
                    "{address}, the first host address of dhcp.subnets[{}] ({}); the daemon \
                     answers from the address of the interface the request arrives on \
                     (--server-ip to pick another)",
                    subnet.index, subnet.network
                ),
            )
        }
        None => (
            net(TEST_NET_SERVER, 24),
            format!(
                "{TEST_NET_SERVER}, a stand-in (TEST-NET-1, RFC 5737): no IPv4 subnet is \
                 configured and no --server-ip was given; the daemon answers from the address \
                 of the interface the request arrives on"
            ),
        ),
    }
}

/// The address of a client that already has one (port 4011 requests come from it).
fn client_address(server: Ipv4Net) -> Ipv4Addr {
    server
        .hosts()
        .find(|address| *address != server.addr())
        .unwrap_or(server.addr())
}

/// The vendor class made up from --arch when none was given.
fn made_up_vendor_class(args: &Args) -> Option<String> {
    if args.vendor_class.is_some() {
        return None;
    }
    let arch = args.arch?;
    let prefix = if matches!(
        Arch::from_code(arch),
        Arch::UefiHttpX64 | Arch::UefiHttpArm64
    ) {
        "HTTPClient"
    } else {
        "PXEClient"
    };
    Some(format!("{prefix}:Arch:{arch:05}:UNDI:003010"))
}

/// The request as a client would send it.
fn request_bytes(args: &Args, mac: MacAddr, mode: ExplainMode, server: Ipv4Net) -> Vec<u8> {
    let boot_server = mode == ExplainMode::BootServer;
    let ciaddr = if boot_server {
        client_address(server)
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut bytes = vec![1, 1, 6, 0];
    bytes.extend_from_slice(&XID);
    bytes.extend_from_slice(&[0, 0, 0, 0]); // secs, flags
    bytes.extend_from_slice(&ciaddr.octets());
    bytes.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    bytes.extend_from_slice(&mac.0);
    bytes.resize(v4::codec::HEADER_LEN, 0);
    bytes.extend_from_slice(&v4::codec::MAGIC_COOKIE);
    let message_type = if boot_server { 3 } else { 1 };
    let mut options: Vec<(u8, Vec<u8>)> = vec![(53, vec![message_type])];
    if let Some(arch) = args.arch {
        options.push((93, arch.to_be_bytes().to_vec()));
    }
    if let Some(uuid) = args.uuid {
        options.push((97, [&[0][..], &uuid].concat()));
    }
    let vendor_class = args
        .vendor_class
        .clone()
        .or_else(|| made_up_vendor_class(args));
    if let Some(class) = vendor_class {
        options.push((60, class.into_bytes()));
    }
    if args.ipxe {
        options.push((77, b"iPXE".to_vec()));
    } else if let Some(user_class) = &args.user_class {
        options.push((77, user_class.as_bytes().to_vec()));
    }
    for (code, data) in options {
        // Longer values are split into several instances (RFC 3396), as clients do.
        if data.is_empty() {
            bytes.extend_from_slice(&[code, 0]);
        }
        for chunk in data.chunks(255) {
            bytes.push(code);
            bytes.push(u8::try_from(chunk.len()).unwrap_or(255));
            bytes.extend_from_slice(chunk);
        }
    }
    bytes.push(255);
    bytes
}

fn write_reply(out: &mut String, reply: &Message, transmit: &Transmit) {
    let kind = reply
        .raw(53)
        .and_then(|t| t.first())
        .map_or("a reply without a message type".to_string(), |&t| {
            message_type_name(t)
        });
    let hardware = match transmit.hardware {
        Some(mac) => format!(" (unicast at {mac})"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "reply:    {kind} to {}{hardware}, from {}:{}",
        transmit.to, transmit.from, transmit.port
    );
    let yiaddr = reply.yiaddr();
    let yiaddr_note = if yiaddr.is_unspecified() {
        " (no address: a proxyDHCP or boot server reply leaves that to the DHCP server)"
    } else {
        ""
    };
    let _ = writeln!(out, "  yiaddr:   {yiaddr}{yiaddr_note}");
    let _ = writeln!(out, "  siaddr:   {} (next-server)", reply.siaddr());
    if let Some(sname) = reply.sname() {
        let _ = writeln!(out, "  sname:    {}", quoted(sname));
    }
    match reply.file() {
        Some(file) => {
            let _ = writeln!(out, "  file:     {}", quoted(file));
        }
        None => {
            let _ = writeln!(out, "  file:     (empty)");
        }
    }
    let _ = writeln!(out, "  options:");
    for option in reply.options() {
        let _ = writeln!(out, "    {}", describe_option(option.code, &option.data));
    }
}

/// The core's reason for staying silent, with what only the config knows added: which
/// reservation says ignore, and which address the made-up interface had.
fn silence_text(scene: &Scene<'_>, reservation: Option<&Reservation>, silence: &Silence) -> String {
    match (silence, reservation) {
        (Silence::Ignored, Some(reservation)) => format!(
            "ignored: {} says `ignore: true`",
            reservation_name(reservation)
        ),
        (Silence::NoSubnet, _) => format!(
            "{silence} (the request came in on an interface with address {}; the daemon offers \
             addresses on interfaces inside a configured subnet, or to relays inside one)",
            scene.server.addr()
        ),
        _ => silence.to_string(),
    }
}

/// `dhcp.reservations[i]` of the config for a compiled reservation.
fn reservation_name(reservation: &Reservation) -> String {
    format!("dhcp.reservations[{}]", reservation.index)
}

fn write_reservation(
    out: &mut String,
    scene: &Scene<'_>,
    reservation: Option<&Reservation>,
    decision: &BootDecision,
) {
    let Some(reservation) = reservation else {
        let _ = writeln!(
            out,
            "  reservation:  none for {} (the global boot section applies)",
            scene.mac
        );
        return;
    };
    let mut facts = Vec::new();
    if let Some(mac) = reservation.mac {
        facts.push(format!("mac {mac}"));
    }
    if reservation.uuid.is_some() {
        facts.push("uuid".to_string());
    }
    if let Some(address) = reservation.address {
        facts.push(format!("ip {address}"));
    }
    if let Some(hostname) = &reservation.hostname {
        facts.push(format!("hostname {hostname:?}"));
    }
    let overrides: Vec<String> = boot_keys(&reservation.boot)
        .map(|(key, value)| format!("boot.{key} {value:?}"))
        .collect();
    if !overrides.is_empty() {
        facts.push(format!("overrides {}", overrides.join(", ")));
    }
    if reservation.ignore {
        facts.push("ignore: true".to_string());
    }
    let _ = writeln!(
        out,
        "  reservation:  {} matches by {} ({})",
        reservation_name(reservation),
        match (reservation.uuid, scene.uuid) {
            (Some(reserved), Some(sent)) if reserved.matches(&sent) => "SMBIOS UUID (option 97)",
            _ => "MAC",
        },
        facts.join(", ")
    );
    if let Some(offer) = decision.offer()
        && offer.rule.reservation.is_some()
    {
        let global = policy::BootKey::get(offer.rule.key, &scene.config.boot)
            .map_or_else(|| "unset".to_string(), |v| format!("{v:?}"));
        let _ = writeln!(
            out,
            "                its {} {:?} wins over the global {} ({global})",
            offer.rule.key.name(),
            offer.file.as_str(),
            offer.rule.key.name()
        );
    }
}

fn boot_keys(boot: &BootConfig) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("bios", boot.bios.as_deref()),
        ("uefi_x64", boot.uefi_x64.as_deref()),
        ("uefi_arm64", boot.uefi_arm64.as_deref()),
        ("ipxe", boot.ipxe.as_deref()),
        ("uefi_x64_http", boot.uefi_x64_http.as_deref()),
        ("uefi_arm64_http", boot.uefi_arm64_http.as_deref()),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|v| (key, v)))
}

fn write_subnet(out: &mut String, scene: &Scene<'_>) {
    let server = scene.server.addr();
    match scene.settings.subnet_of(server) {
        Some(subnet) => {
            let _ = writeln!(out, "  subnet:       {}", subnet_text(subnet));
        }
        None if scene.settings.mode == ServiceMode::Proxy
            || scene.mode == ExplainMode::BootServer =>
        {
            let _ = writeln!(
                out,
                "  subnet:       none contains {server} (proxyDHCP hands out no addresses and \
                 needs none)"
            );
        }
        None => {
            let _ = writeln!(out, "  subnet:       none contains {server}");
        }
    }
}

fn subnet_text(subnet: &Subnet) -> String {
    let mut text = format!(
        "dhcp.subnets[{}] {}, range {} - {}, lease time {}s",
        subnet.index,
        subnet.network,
        subnet.first,
        subnet.last,
        subnet.lease_time.as_secs()
    );
    if subnet.known_clients_only {
        text.push_str(", known clients only");
    }
    text
}

fn write_address(
    out: &mut String,
    scene: &Scene<'_>,
    reservation: Option<&Reservation>,
    yiaddr: Ipv4Addr,
) {
    if yiaddr.is_unspecified() {
        return;
    }
    let why = if reservation.and_then(|r| r.address) == Some(yiaddr) {
        "the reservation's address".to_string()
    } else if let Some(record) = scene
        .records
        .iter()
        .find(|r| r.address == yiaddr && r.mac == scene.mac)
    {
        format!(
            "the client's own lease on record ({}, expires {} UTC)",
            record.state,
            crate::leases::utc_datetime(crate::leases::unix_seconds(record.expires_at), ' ')
        )
    } else {
        "a free address of the range (no lease or reservation names this client)".to_string()
    };
    let _ = writeln!(out, "  address:      {yiaddr}: {why}");
}

fn write_boot_file_check(out: &mut String, scene: &Scene<'_>, file: &BootFile, replied: bool) {
    let (BootFile::Tftp(path) | BootFile::Http { path, .. }) = file else {
        let _ = writeln!(
            out,
            "  boot file:    {:?} is an http(s) URL (not checked)",
            file.as_str()
        );
        return;
    };
    let Some(tftp) = &scene.config.tftp else {
        let _ = writeln!(
            out,
            "  boot file:    {path:?} is fetched over TFTP, but the config has no tftp section: \
             another TFTP server at next-server must serve it"
        );
        return;
    };
    let root = &tftp.root;
    let problem = match kindling_files::Root::open(root) {
        Err(error) => format!(
            "the TFTP root \"{}\" cannot be opened ({error}; a relative root is relative to \
             the working directory), so {path:?} cannot be served",
            root.display()
        ),
        Ok(opened) => match opened.open_read(path.as_bytes()) {
            Ok(file) => {
                let _ = writeln!(
                    out,
                    "  boot file:    {path:?} is in the TFTP root \"{}\" ({} byte{})",
                    root.display(),
                    file.len,
                    if file.len == 1 { "" } else { "s" }
                );
                return;
            }
            Err(error) => format!(
                "boot file {path:?} cannot be served from the TFTP root \"{}\": {error}",
                root.display()
            ),
        },
    };
    let consequence = if replied {
        "the client will get a TFTP error and fail to boot"
    } else {
        "a client told to load it would fail to boot"
    };
    let _ = writeln!(out, "  WARNING: {problem}; {consequence}");
}

fn message_type_name(code: u8) -> String {
    match code {
        1 => "DHCPDISCOVER".into(),
        2 => "DHCPOFFER".into(),
        3 => "DHCPREQUEST".into(),
        4 => "DHCPDECLINE".into(),
        5 => "DHCPACK".into(),
        6 => "DHCPNAK".into(),
        7 => "DHCPRELEASE".into(),
        8 => "DHCPINFORM".into(),
        other => format!("message type {other}"),
    }
}

/// The name of a DHCPv4 option code (RFC 2132 and later).
fn option_name(code: u8) -> &'static str {
    match code {
        1 => "subnet mask",
        2 => "time offset",
        3 => "router",
        4 => "time server",
        6 => "DNS servers",
        7 => "log server",
        12 => "host name",
        13 => "boot file size",
        15 => "domain name",
        17 => "root path",
        19 => "IP forwarding",
        23 => "default IP TTL",
        26 => "interface MTU",
        28 => "broadcast address",
        33 => "static routes",
        40 => "NIS domain",
        42 => "NTP servers",
        43 => "vendor-specific",
        44 => "NetBIOS name servers",
        46 => "NetBIOS node type",
        50 => "requested address",
        51 => "lease time",
        52 => "option overload",
        53 => "message type",
        54 => "server identifier",
        55 => "parameter request list",
        56 => "message",
        57 => "maximum message size",
        58 => "renewal time",
        59 => "rebinding time",
        60 => "vendor class",
        61 => "client identifier",
        66 => "TFTP server name",
        67 => "boot file name",
        77 => "user class",
        81 => "client FQDN",
        82 => "relay agent information",
        93 => "client architecture",
        94 => "client network interface",
        97 => "client UUID",
        100 => "POSIX time zone",
        101 => "time zone name",
        114 => "captive portal",
        119 => "domain search",
        121 => "classless static routes",
        150 => "TFTP server addresses",
        175 => "iPXE options",
        209 => "PXELINUX config file",
        210 => "PXELINUX path prefix",
        211 => "PXELINUX reboot time",
        252 => "WPAD URL",
        _ => "unknown",
    }
}

/// How an option's value reads.
enum Shape {
    Addresses,
    Seconds,
    Text,
    U16,
    U8,
    MessageType,
    Codes,
    Arch,
    Hex,
}

fn shape(code: u8) -> Shape {
    match code {
        1 | 3..=11 | 16 | 28 | 32 | 41 | 42 | 44 | 45 | 48 | 49 | 50 | 54 | 65 | 68..=76 | 150 => {
            Shape::Addresses
        }
        2 | 24 | 35 | 38 | 51 | 58 | 59 | 211 => Shape::Seconds,
        12 | 14 | 15 | 17 | 18 | 40 | 47 | 56 | 60 | 64 | 66 | 67 | 77 | 100 | 101 | 114 | 209
        | 210 | 252 => Shape::Text,
        13 | 22 | 26 | 57 => Shape::U16,
        19 | 20 | 23 | 27 | 29..=31 | 34 | 36 | 37 | 39 | 46 | 52 => Shape::U8,
        53 => Shape::MessageType,
        55 => Shape::Codes,
        93 => Shape::Arch,
        _ => Shape::Hex,
    }
}

/// `code (name): value`, the value in a readable form.
pub(crate) fn describe_option(code: u8, data: &[u8]) -> String {
    let value = match shape(code) {
        Shape::Addresses if !data.is_empty() && data.len().is_multiple_of(4) => data
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Shape::Seconds if data.len() == 4 => {
            let value = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            if code == 2 {
                format!("{} s", value.cast_signed())
            } else {
                format!("{value} s")
            }
        }
        Shape::Text if printable_text(data) => quoted(data),
        Shape::U16 if data.len() == 2 => u16::from_be_bytes([data[0], data[1]]).to_string(),
        Shape::U8 if data.len() == 1 => data[0].to_string(),
        Shape::MessageType if data.len() == 1 => message_type_name(data[0]),
        Shape::Codes if !data.is_empty() => data
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        Shape::Arch if !data.is_empty() && data.len().is_multiple_of(2) => data
            .chunks_exact(2)
            .map(|c| {
                let arch = u16::from_be_bytes([c[0], c[1]]);
                format!("{arch} ({})", Arch::from_code(arch).describe())
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => hex(data),
    };
    let note = if code == 43 && pxe_discovery_control(data) == Some(8) {
        " (PXE discovery control 8: boot from the file name, skip boot server discovery)"
    } else {
        ""
    };
    format!("{code} ({}): {value}{note}", option_name(code))
}

/// PXE vendor sub-option 6 (discovery control), if option 43 carries it.
fn pxe_discovery_control(mut data: &[u8]) -> Option<u8> {
    while let [tag, rest @ ..] = data {
        match *tag {
            0 => data = rest,
            255 => return None,
            tag => {
                let (&len, rest) = rest.split_first()?;
                let value = rest.get(..usize::from(len))?;
                if tag == 6 && len == 1 {
                    return Some(value[0]);
                }
                data = &rest[usize::from(len)..];
            }
        }
    }
    None
}

fn printable_text(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(|text| !text.chars().any(char::is_control))
}

/// Bytes as a quoted string (lossy UTF-8, escapes as Rust writes them).
fn quoted(data: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(data))
}

fn hex(data: &[u8]) -> String {
    if data.is_empty() {
        return "(empty)".to_string();
    }
    data.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn macs_with_colons_or_dashes_in_either_case() {
        let expected = Mac([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
        assert_eq!(parse_mac("52:54:00:ab:cd:ef"), Ok(expected));
        assert_eq!(parse_mac("52-54-00-AB-CD-EF"), Ok(expected));
        assert_eq!(parse_mac("52:54:00:Ab:cD:eF"), Ok(expected));
    }

    #[test]
    fn bad_macs_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00-ab:cd:ef",
            "5:54:00:ab:cd:ef",
            "052:54:00:ab:cd:ef",
            "52:54:00:ab:cd:eg",
            "+5:54:00:ab:cd:ef",
            "525400abcdef",
            "52 54 00 ab cd ef",
        ] {
            let error = parse_mac(bad).unwrap_err();
            assert!(error.contains("not a MAC address"), "{bad}: {error}");
            assert!(error.contains("52:54:00:12:34:56"), "{error}");
        }
    }

    #[test]
    fn options_read_as_people_read_them() {
        assert_eq!(
            describe_option(6, &[10, 0, 0, 53, 10, 0, 0, 54]),
            "6 (DNS servers): 10.0.0.53, 10.0.0.54"
        );
        assert_eq!(
            describe_option(51, &3600u32.to_be_bytes()),
            "51 (lease time): 3600 s"
        );
        assert_eq!(
            describe_option(67, b"undionly.kpxe"),
            "67 (boot file name): \"undionly.kpxe\""
        );
        assert_eq!(describe_option(53, &[2]), "53 (message type): DHCPOFFER");
        assert_eq!(
            describe_option(93, &[0, 7]),
            "93 (client architecture): 7 (x64 UEFI)"
        );
        assert_eq!(
            describe_option(43, &[6, 1, 8, 255]),
            "43 (vendor-specific): 06 01 08 ff (PXE discovery control 8: boot from the file \
             name, skip boot server discovery)"
        );
        assert_eq!(describe_option(224, &[1, 2]), "224 (unknown): 01 02");
        // A value of the wrong shape falls back to hex.
        assert_eq!(
            describe_option(1, &[255, 255, 0]),
            "1 (subnet mask): ff ff 00"
        );
        assert_eq!(describe_option(15, b"a\nb"), "15 (domain name): 61 0a 62");
    }

    #[test]
    fn the_vendor_class_made_up_from_the_arch() {
        let args = |arch: Option<u16>, vendor_class: Option<&str>| Args {
            mac: Some(Mac([0; 6])),
            uuid: None,
            arch,
            vendor_class: vendor_class.map(str::to_string),
            user_class: None,
            ipxe: false,
            config: None,
            mode: None,
            server_ip: None,
            v6: false,
            duid: None,
            server_ip6: None,
        };
        assert_eq!(
            made_up_vendor_class(&args(Some(7), None)).as_deref(),
            Some("PXEClient:Arch:00007:UNDI:003010")
        );
        assert_eq!(
            made_up_vendor_class(&args(Some(16), None)).as_deref(),
            Some("HTTPClient:Arch:00016:UNDI:003010")
        );
        assert_eq!(made_up_vendor_class(&args(Some(0), Some("X"))), None);
        assert_eq!(made_up_vendor_class(&args(None, None)), None);
    }
}
