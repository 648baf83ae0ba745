//! DHCPv4: the checking codec wrapper over dhcproto ([`codec`]).

pub mod codec;
pub mod server;

pub use codec::{
    Area, CodecError, Field, Message, Overload, OverloadProblem, RawOption, Reply, ReplyOption,
    decode, encode,
};

/// Entry points shared by the cargo-fuzz targets (`fuzz/`) and the test that replays their
/// corpora (`tests/fuzz_corpus.rs`). Each function panics only when an invariant breaks.
#[doc(hidden)]
pub mod fuzzing {
    use dhcproto::v4::MessageType;

    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::OnceLock;
    use std::time::{Duration, UNIX_EPOCH};

    use super::codec::{self, CodecError, Field, MAX_SNAME_LEN, Reply, code};
    use super::server::{Action, Core, Datagram, Environment, Interface, ProbeId, Settings};
    use crate::lease::LeaseState;

    /// The options a server echoes to a PXE client, byte for byte.
    const ECHOED: [u8; 5] = [
        code::VENDOR_OPTIONS,
        code::VENDOR_CLASS,
        code::CLIENT_UUID,
        code::IPXE_ENCAP,
        code::RELAY_AGENT_INFO,
    ];

    /// Decodes arbitrary bytes. Whatever decodes must satisfy the decoder's invariants, and a
    /// reply echoing its options must encode and decode back to what was put in.
    pub fn codec(data: &[u8]) {
        let Ok(request) = codec::decode(data) else {
            return;
        };
        let mut codes = [false; 256];
        for option in request.options() {
            assert!(option.code != code::PAD && option.code != code::END);
            assert!(option.offset < data.len(), "offset past the datagram");
            assert!(option.instances >= 1);
            assert!(
                !std::mem::replace(&mut codes[usize::from(option.code)], true),
                "option {} listed twice",
                option.code
            );
        }
        for untyped in request.untyped_codes() {
            assert!(request.raw(*untyped).is_some());
        }
        for field in [request.sname(), request.file()].into_iter().flatten() {
            assert!(!field.is_empty() && !field.contains(&0));
        }
        assert!(request.chaddr().len() <= 16);
        assert!(request.max_reply_len() >= codec::DEFAULT_MAX_LEN);

        let mut reply = Reply::new(MessageType::Offer, &request);
        reply.max_len = usize::MAX;
        for echoed in ECHOED {
            if let Some(raw) = request.raw(echoed) {
                reply.push_raw(echoed, raw);
            }
        }
        if let Some(file) = request.file() {
            reply.set_boot_file(file);
        }
        if let Some(sname) = request.sname().filter(|s| s.len() <= MAX_SNAME_LEN) {
            reply.sname = sname.to_vec();
        }
        let bytes = match codec::encode(&reply) {
            Ok(bytes) => bytes,
            Err(CodecError::TooLong {
                field: Field::Message,
                ..
            }) => return,
            Err(error) => panic!("an echoing reply must encode: {error}"),
        };
        assert!(bytes.len() >= codec::BOOTP_MIN_LEN);
        let again = match codec::decode(&bytes) {
            Ok(again) => again,
            Err(error) => panic!("an encoded reply must decode: {error}"),
        };
        assert_eq!(again.message_type(), Some(MessageType::Offer));
        assert_eq!(again.xid(), reply.xid);
        assert_eq!(again.flags(), reply.flags);
        assert_eq!(again.chaddr(), reply.chaddr.as_slice());
        assert_eq!(again.giaddr(), reply.giaddr);
        assert_eq!(again.file().unwrap_or_default(), reply.file.as_slice());
        assert_eq!(again.sname().unwrap_or_default(), reply.sname.as_slice());
        assert_eq!(again.options().len(), reply.options.len() + 1);
        for option in &reply.options {
            assert_eq!(
                again.raw(option.code()),
                reply.raw(option.code()),
                "option {} changed in the round trip",
                option.code()
            );
        }
    }

    const SERVER_CONFIG: &str = "boot: { bios: undionly.kpxe, uefi_x64: ipxe.efi, ipxe: boot.ipxe }
dhcp:
  mode: server
  lease_time: 1h
  options: { ntp-servers: [10.99.0.1] }
  subnets:
    - { network: 10.99.0.0/24, range: [10.99.0.100, 10.99.0.107], router: 10.99.0.1 }
    - { network: 10.98.0.0/24, range: [10.98.0.10, 10.98.0.12] }
  reservations:
    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, hostname: node10 }
    - { mac: \"52:54:00:00:00:11\", ignore: true }
";

    fn settings(proxy: bool) -> Settings {
        static SETTINGS: OnceLock<Option<(Settings, Settings)>> = OnceLock::new();
        let pair = SETTINGS.get_or_init(|| {
            let loaded = kindling_config::parse(SERVER_CONFIG, "fuzz").ok()?;
            let mut dhcp = loaded.config.dhcp?;
            let server = Settings::new(&dhcp, &loaded.config.boot, Environment::default());
            dhcp.mode = kindling_config::DhcpMode::Proxy;
            let proxy = Settings::new(&dhcp, &loaded.config.boot, Environment::default());
            Some((server, proxy))
        });
        match pair {
            Some((server, proxy_settings)) => {
                if proxy {
                    proxy_settings.clone()
                } else {
                    server.clone()
                }
            }
            None => panic!("the fuzz config must parse"),
        }
    }

    /// Drives the server core with a script of datagrams and events: each step is a tag byte
    /// (bit 0: port 4011, bit 1: unicast destination, bit 2: a probe outcome instead of a
    /// datagram, bit 3: the probe answered, bit 4: expire, bit 5: proxy mode on the first
    /// step), a little-endian u16 length and that many bytes. Checks that every reply decodes and is padded,
    /// that no address is ever actively leased to two clients, and that addresses handed out
    /// are in a range or reserved. Returns how many replies the core sent.
    pub fn server(data: &[u8]) -> usize {
        let mut replies = 0;
        let proxy = data.first().is_some_and(|tag| tag & 0x20 != 0);
        let mut core = Core::new(settings(proxy), Vec::new());
        let interface = Interface {
            index: 3,
            name: "lab0".into(),
            addresses: vec![
                ipnet::Ipv4Net::new(Ipv4Addr::new(10, 99, 0, 1), 24).unwrap_or_default(),
            ],
        };
        let mut now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut probes: Vec<ProbeId> = Vec::new();
        let mut rest = data;
        while let [tag, low, high, tail @ ..] = rest {
            let len = usize::from(u16::from_le_bytes([*low, *high])).min(tail.len());
            let (bytes, next) = tail.split_at(len);
            rest = next;
            now += Duration::from_secs(u64::from(*tag >> 6) * 600);
            let actions: Vec<Action> = if tag & 0x10 != 0 {
                core.expire(now).into_iter().collect()
            } else if tag & 0x04 != 0 {
                match probes.pop() {
                    Some(id) => core.probe_finished(id, tag & 0x08 != 0, now),
                    None => Vec::new(),
                }
            } else {
                let datagram = Datagram {
                    bytes,
                    source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                    destination: if tag & 0x02 != 0 {
                        Ipv4Addr::new(10, 99, 0, 1)
                    } else {
                        Ipv4Addr::BROADCAST
                    },
                    interface: &interface,
                    port: if tag & 0x01 != 0 { 4011 } else { 67 },
                };
                core.handle(&datagram, now).into_iter().collect()
            };
            for action in actions {
                let transmit = match action {
                    Action::Send(t) => Some(t),
                    Action::Commit { then, .. } => then,
                    Action::Probe { id, .. } => {
                        probes.push(id);
                        None
                    }
                };
                if let Some(t) = transmit {
                    replies += 1;
                    assert!(t.bytes.len() >= codec::BOOTP_MIN_LEN, "reply not padded");
                    let reply = match codec::decode(&t.bytes) {
                        Ok(reply) => reply,
                        Err(error) => panic!("our reply does not decode: {error}"),
                    };
                    let yiaddr = reply.yiaddr();
                    if !yiaddr.is_unspecified() {
                        let settings = core.settings();
                        let in_range = settings.subnets.iter().any(|s| s.in_range(yiaddr));
                        let reserved = settings.reservation_of_address(yiaddr).is_some();
                        assert!(in_range || reserved, "handed out {yiaddr}");
                    }
                }
            }
            let mut active = std::collections::HashMap::new();
            for lease in core.leases() {
                if lease.state == LeaseState::Active && lease.expires_at > now {
                    assert!(
                        active.insert(lease.address, lease.mac).is_none(),
                        "two active leases for {}",
                        lease.address
                    );
                }
            }
        }
        replies
    }
}
