//! The validated runtime configuration: what the services receive.
//!
//! These types are the contract between `kindling-config` and the services. They carry no
//! serde shape of their own; `crate::load`/`crate::parse` build them from the YAML text after
//! every check has passed, so a service never sees an invalid value.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where leases and other state live (`state_dir`).
    pub state_dir: PathBuf,
    pub log: LogConfig,
    /// `None` when the `tftp` section is absent or `enabled: false`.
    pub tftp: Option<TftpConfig>,
    pub boot: BootConfig,
    /// Parsed and validated so that configs written for the whole appliance load; served once
    /// the DHCP service exists.
    pub dhcp: Option<DhcpConfig>,
    /// Parsed and validated likewise; served once the DNS service exists.
    pub dns: Option<DnsConfig>,
    /// `None` when the `http` section is absent or `enabled: false`. Needs `tftp` (its root
    /// is the tree HTTP serves).
    pub http: Option<HttpConfig>,
    /// `profiles`: per-machine iPXE scripts.
    pub profiles: Vec<ProfileConfig>,
}

/// The `http` section: the boot tree (`tftp.root`) over HTTP, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: Vec<SocketAddr>,
    /// Connections served at once (`http.max_connections`); more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client may take to send its request line and headers (`http.header_timeout`).
    pub header_timeout: Duration,
    /// How long a client may take no bytes of a reply before it is disconnected
    /// (`http.send_timeout`).
    pub send_timeout: Duration,
}

/// One of `profiles`: an iPXE script template for the machines its selectors match.
#[derive(Debug, Clone, Eq)]
pub struct ProfileConfig {
    pub name: String,
    /// `match`; all empty: the default profile.
    pub selectors: ProfileMatch,
    /// The minijinja template (`ipxe`).
    pub ipxe: String,
    /// The config file line of the template's first line.
    pub ipxe_line: usize,
    /// `after_install`: the script a machine gets instead once it has reported its install
    /// done, with its config line ("install once, then boot from disk").
    pub after_install: Option<(String, usize)>,
}

/// `profiles[].match`: every selector given must match; within one, any listed value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileMatch {
    /// Normalised `aa:bb:cc:dd:ee:ff`.
    pub mac: Vec<String>,
    /// SMBIOS UUIDs, RFC 4122 byte order.
    pub uuid: Vec<[u8; 16]>,
    /// Client architecture codes (DHCPv4 option 93, DHCPv6 option 61).
    pub arch: Vec<u16>,
    /// Client kinds, named as the `boot` keys (`bios`, `uefi_x64`, `ipxe`, ...).
    pub kind: Vec<String>,
    /// Lower-case host names.
    pub hostname: Vec<String>,
    /// Labels the machine's reservation must carry, each with this value.
    pub labels: BTreeMap<String, String>,
}

/// Equal when the profiles are: where the template sits in its file does not matter.
impl PartialEq for ProfileConfig {
    fn eq(&self, other: &ProfileConfig) -> bool {
        self.name == other.name
            && self.selectors == other.selectors
            && self.ipxe == other.ipxe
            && self.after_install.as_ref().map(|(t, _)| t)
                == other.after_install.as_ref().map(|(t, _)| t)
    }
}

impl ProfileMatch {
    /// How many selectors are given: the more, the more specific the profile.
    pub fn specificity(&self) -> usize {
        usize::from(!self.mac.is_empty())
            + usize::from(!self.uuid.is_empty())
            + usize::from(!self.arch.is_empty())
            + usize::from(!self.kind.is_empty())
            + usize::from(!self.hostname.is_empty())
            + self.labels.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive such as `info` or `kindling_tftp=debug`.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TftpConfig {
    /// Addresses to listen on; port 0 means "any free port" (used by tests).
    pub listen: Vec<SocketAddr>,
    /// Every request resolves inside this directory. Relative paths are relative to the
    /// working directory of the daemon.
    pub root: PathBuf,
    /// Concurrent transfers; requests beyond it wait up to `queue_timeout`.
    pub max_sessions: usize,
    /// How long a request past `max_sessions` waits for a free slot before it gets an ERROR.
    pub queue_timeout: Duration,
    /// Who may read (`tftp.allow_from`); `None` means any source.
    pub allow_from: Option<Vec<IpNet>>,
    /// Serve every transfer from the listening port (NAT and strict firewalls).
    pub single_port: bool,
    /// Local ports for per-transfer sockets; `None` means kernel-chosen ephemeral ports.
    pub port_range: Option<RangeInclusive<u16>>,
    /// Retransmission timeout when the client does not negotiate one (RFC 2349).
    pub timeout: Duration,
    /// Retransmissions of one packet or window before the transfer is abandoned.
    pub retries: u32,
    /// Upper bound for the negotiated blksize (also clamped to the path MTU at run time).
    pub max_blksize: u16,
    /// Upper bound for the negotiated windowsize (RFC 7440).
    pub max_windowsize: u16,
    /// Total memory for boot images shared between concurrent transfers of the same file.
    pub cache_size: u64,
    /// Read transfers not yet acknowledged by their client, per source address; more wait in
    /// the queue (`tftp.unconfirmed_per_address`).
    pub unconfirmed_per_address: usize,
    /// The same per /24 (IPv4) or /64 (IPv6) (`tftp.unconfirmed_per_prefix`).
    pub unconfirmed_per_prefix: usize,
    pub write: TftpWriteConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverwritePolicy {
    /// An upload to an existing name is refused with ERROR 6 in answer to the WRQ.
    Refuse,
    /// An upload replaces the existing file atomically once it is complete.
    Replace,
    /// An upload to an existing name keeps the old file as a timestamped sibling.
    Versioned,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TftpWriteConfig {
    pub enabled: bool,
    /// Relative to the TFTP root; the only place a write may land.
    pub dir: PathBuf,
    pub overwrite: OverwritePolicy,
    /// Largest upload accepted, in bytes.
    pub max_size: u64,
    /// Who may upload; `None` means any source.
    pub allow_from: Option<Vec<IpNet>>,
    /// Who may read files in `dir` back (restores); `None` means nobody.
    pub read_from: Option<Vec<IpNet>>,
}

/// What PXE clients are told to load, by client kind. Paths are TFTP paths or http(s) URLs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootConfig {
    pub bios: Option<String>,
    pub uefi_x64: Option<String>,
    pub uefi_arm64: Option<String>,
    pub ipxe: Option<String>,
    /// What UEFI HTTP boot clients (arch 16) load: a path in the tree, handed out as a URL on
    /// this box's HTTP service, or a URL. Unset: `uefi_x64`.
    pub uefi_x64_http: Option<String>,
    /// The same for ARM64 UEFI HTTP boot (arch 19). Unset: `uefi_arm64`.
    pub uefi_arm64_http: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpMode {
    Server,
    Proxy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DhcpConfig {
    pub mode: DhcpMode,
    /// `None`: every non-loopback interface.
    pub interfaces: Option<Vec<String>>,
    pub lease_time: Duration,
    pub subnets: Vec<DhcpSubnet>,
    pub reservations: Vec<DhcpReservation>,
    pub v6: Option<Dhcp6Config>,
    /// `dhcp.v6.quiet_ra` (default `auto`), read also when there is no other DHCPv6 setting.
    pub quiet_ra: QuietRa,
    /// Proxy mode: answer only clients with a reservation (`dhcp.known_clients_only`).
    pub known_clients_only: bool,
    /// Before offering an address no lease holds, check that nothing answers on it
    /// (`dhcp.ping_check`, default true).
    pub ping_check: bool,
    /// How long that check waits for an answer (`dhcp.ping_timeout`, default 300ms).
    pub ping_timeout: Duration,
    /// Another DHCP server on the served segments is expected (`dhcp.other_servers: expected`):
    /// the coexistence probe then only logs what it finds instead of refusing to serve.
    pub other_servers_expected: bool,
    /// The address put in siaddr / option 66 instead of the receiving interface's own
    /// (`dhcp.advertise`).
    pub advertise: Option<std::net::Ipv4Addr>,
    /// Accepted vendor-class prefixes (`dhcp.vendor_classes`).
    pub vendor_classes: DhcpVendorClasses,
    /// Options for every client (`dhcp.options`); subnets, classes and reservations override
    /// them code by code in that order.
    pub options: Vec<DhcpOptionValue>,
    /// Client classes matched by vendor class (`dhcp.classes`).
    pub classes: Vec<DhcpClass>,
}

/// `dhcp.vendor_classes`: the option 60 prefixes that mark netboot clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpVendorClasses {
    /// Default `["PXEClient"]`.
    pub pxe: Vec<String>,
    /// Default `["HTTPClient"]`.
    pub http: Vec<String>,
}

impl Default for DhcpVendorClasses {
    fn default() -> Self {
        DhcpVendorClasses {
            pxe: vec!["PXEClient".into()],
            http: vec!["HTTPClient".into()],
        }
    }
}

/// One DHCP option from the config, already encoded as the option's payload bytes (without the
/// code and length octets). Written by name (`ntp-servers`) or code (`42`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptionValue {
    pub code: u8,
    pub data: Vec<u8>,
}

/// A client class: clients whose vendor class (option 60) starts with `vendor_class` get its
/// options (`dhcp.classes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpClass {
    pub name: String,
    pub vendor_class: String,
    pub options: Vec<DhcpOptionValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DhcpSubnet {
    pub network: IpNet,
    pub range: (IpAddr, IpAddr),
    pub router: Option<IpAddr>,
    /// `None`: this box, when DNS is enabled.
    pub dns: Option<Vec<IpAddr>>,
    pub domain: Option<String>,
    /// `None`: `dhcp.lease_time`.
    pub lease_time: Option<Duration>,
    /// Answer only clients with a reservation on this subnet.
    pub known_clients_only: bool,
    pub options: Vec<DhcpOptionValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DhcpReservation {
    /// Normalised to lower-case `aa:bb:cc:dd:ee:ff`. A reservation names its machine by at
    /// least one of `mac`, `client_id`, `uuid` and `duid`.
    pub mac: Option<String>,
    /// Option 61 the client sends, when the reservation is keyed by it as well.
    pub client_id: Option<Vec<u8>>,
    /// The machine's SMBIOS system UUID in RFC 4122 byte order (as `dmidecode -s
    /// system-uuid` prints it): v4 option 97 and a DHCPv6 DUID-UUID carry it.
    pub uuid: Option<[u8; 16]>,
    /// The exact DHCPv6 client DUID (option 1).
    pub duid: Option<Vec<u8>>,
    /// `None` only with `ignore: true`.
    pub ip: Option<IpAddr>,
    pub hostname: Option<String>,
    pub boot: BootConfig,
    /// Never answer this client (a machine set to PXE-boot first that must not be reimaged).
    pub ignore: bool,
    pub options: Vec<DhcpOptionValue>,
    /// Labels profiles select on (`labels: { role: worker }`).
    pub labels: BTreeMap<String, String>,
}

/// `dhcp.v6.quiet_ra`: answer router solicitations with an advertisement that configures
/// nothing, so iPXE stops waiting for a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuietRa {
    /// On in server mode, off in proxy mode (a segment with someone else's DHCP server is
    /// someone else's network).
    #[default]
    Auto,
    Off,
}

impl DhcpConfig {
    /// Whether the quiet router advertisement runs: `auto` in server mode.
    pub fn quiet_ra_enabled(&self) -> bool {
        self.quiet_ra == QuietRa::Auto && self.mode == DhcpMode::Server
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dhcp6Config {
    /// `dhcp.v6.router_advertisements`: router advertisements with the M and O flags and the
    /// subnets' prefixes (on-link, not autonomous) on the interfaces inside a v6 subnet.
    pub router_advertisements: bool,
    /// `dhcp.v6.default_router` (default false): those advertisements name this box a default
    /// router (a non-zero router lifetime); false: lifetime 0, clients get no default route.
    pub default_router: bool,
    /// The DHCPv6 preference option (7) in ADVERTISE (`dhcp.v6.preference`, default 255: EDK2
    /// takes an offer of 255 at once instead of collecting offers for its first retransmission
    /// time).
    pub preference: u8,
    pub subnets: Vec<DhcpSubnet>,
}

/// The default of `dhcp.v6.preference`.
pub const DEFAULT_V6_PREFERENCE: u8 = 255;

#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    pub listen: Vec<SocketAddr>,
    pub domain: String,
    pub records: Vec<DnsRecord>,
    pub upstreams: Vec<SocketAddr>,
    pub allow_recursion_from: Option<Vec<IpNet>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsRecord {
    pub name: String,
    pub data: DnsRecordData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DnsRecordData {
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Cname(String),
    Txt(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}
