//! The boot policy: which file a netbooting client is told to load, and why. Pure: no I/O.
//!
//! # Client kinds
//!
//! - **iPXE** is recognised by option 77 (the bare string `iPXE` iPXE sends, or an RFC 3004
//!   length-prefixed item `iPXE`) or by the presence of option 175. Never by the vendor class:
//!   iPXE chainloaded from UEFI sends `PXEClient` like the firmware did.
//! - Otherwise a client netboots when its vendor class (option 60) starts with an accepted PXE
//!   prefix (`PXEClient` by default) or HTTP prefix (`HTTPClient`); the prefixes are a parameter
//!   ([`VendorClasses`]) because some ROMs send other strings (`HW-Client`).
//! - The architecture comes from option 93 (its first entry), else from the `Arch:NNNNN` field of
//!   the vendor class, else it is taken as 0 (BIOS: PXE ROMs older than option 93 are x86 BIOS).
//!   0 BIOS; 6 IA32 UEFI; 7 and 9 x64 UEFI; 11 ARM64 UEFI; 16 x64 UEFI HTTP; 19 ARM64 UEFI HTTP;
//!   anything else is [`ClientKind::Unknown`].
//!
//! # Decisions ([`choose`])
//!
//! - A client that is not netbooting gets no boot options at all.
//! - Each kind reads one key of `boot`; a reservation's `boot` key, when set, wins over the
//!   global one. iPXE reads `boot.ipxe` (a TFTP path or an http(s) URL, typically a script), never
//!   the binary for its architecture, so chainloading cannot loop.
//! - PXE ROMs (BIOS and UEFI) load over TFTP only, so an http(s) URL is refused for them; UEFI
//!   HTTP boot clients need an http(s) URL, so a TFTP path is refused for them. A kind with no
//!   usable file gets [`BootDecision::NoFile`] with the reason.
//! - Option 60 echoes the accepted prefix the client matched (`PXEClient`, `HTTPClient`, or the
//!   custom one); option 97 is echoed only when the client sent it.
//! - Option 43 (discovery control 8: "use the boot file, skip discovery") goes to PXE ROMs in
//!   server mode, and to BIOS PXE ROMs in a proxyDHCP offer. UEFI PXE clients in proxy mode get no
//!   option 43, so they ask the boot server on port 4011 as the PXE specification and EDK2 expect
//!   (pixiecore and dnsmasq do the same); the port-4011 answer carries none either. iPXE and HTTP
//!   boot clients never need it.

use std::fmt;

use kindling_config::BootConfig;

use crate::v4::codec::{Message, pxe};

/// An architecture type of option 93 (RFC 4578 and the IANA registry), as far as booting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 0: x86 BIOS.
    Bios,
    /// 6: 32-bit x86 UEFI.
    UefiIa32,
    /// 7 (EFI BC) and 9 (x86-64): x64 UEFI.
    UefiX64,
    /// 11: ARM64 UEFI.
    UefiArm64,
    /// 16: x64 UEFI HTTP boot.
    UefiHttpX64,
    /// 19: ARM64 UEFI HTTP boot.
    UefiHttpArm64,
    /// Any other code.
    Unknown(u16),
}

impl Arch {
    /// The architecture of an option 93 code.
    pub fn from_code(code: u16) -> Arch {
        match code {
            0 => Arch::Bios,
            6 => Arch::UefiIa32,
            7 | 9 => Arch::UefiX64,
            11 => Arch::UefiArm64,
            16 => Arch::UefiHttpX64,
            19 => Arch::UefiHttpArm64,
            other => Arch::Unknown(other),
        }
    }

    /// A short human name.
    pub fn describe(self) -> String {
        match self {
            Arch::Bios => "x86 BIOS".into(),
            Arch::UefiIa32 => "32-bit x86 UEFI".into(),
            Arch::UefiX64 => "x64 UEFI".into(),
            Arch::UefiArm64 => "ARM64 UEFI".into(),
            Arch::UefiHttpX64 => "x64 UEFI HTTP boot".into(),
            Arch::UefiHttpArm64 => "ARM64 UEFI HTTP boot".into(),
            Arch::Unknown(code) => format!("unknown architecture {code}"),
        }
    }
}

/// What kind of netboot client sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// An x86 BIOS PXE ROM.
    Bios,
    /// A 32-bit x86 UEFI PXE client.
    UefiIa32,
    /// An x64 UEFI PXE client.
    UefiX64,
    /// An ARM64 UEFI PXE client.
    UefiArm64,
    /// An x64 UEFI HTTP boot client.
    UefiHttpX64,
    /// An ARM64 UEFI HTTP boot client.
    UefiHttpArm64,
    /// iPXE, on the platform its option 93 names (if it sent one).
    Ipxe {
        /// The architecture from option 93 or the vendor class.
        platform_hint: Option<Arch>,
    },
    /// A PXE or HTTP client of an architecture Kindling has no boot key for.
    Unknown(u16),
    /// Not a netboot client: no accepted vendor class and no iPXE marker.
    NotNetboot,
}

impl ClientKind {
    fn from_arch(arch: Arch) -> ClientKind {
        match arch {
            Arch::Bios => ClientKind::Bios,
            Arch::UefiIa32 => ClientKind::UefiIa32,
            Arch::UefiX64 => ClientKind::UefiX64,
            Arch::UefiArm64 => ClientKind::UefiArm64,
            Arch::UefiHttpX64 => ClientKind::UefiHttpX64,
            Arch::UefiHttpArm64 => ClientKind::UefiHttpArm64,
            Arch::Unknown(code) => ClientKind::Unknown(code),
        }
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKind::Bios => f.write_str("x86 BIOS PXE client"),
            ClientKind::UefiIa32 => f.write_str("32-bit x86 UEFI PXE client"),
            ClientKind::UefiX64 => f.write_str("x64 UEFI PXE client"),
            ClientKind::UefiArm64 => f.write_str("ARM64 UEFI PXE client"),
            ClientKind::UefiHttpX64 => f.write_str("x64 UEFI HTTP boot client"),
            ClientKind::UefiHttpArm64 => f.write_str("ARM64 UEFI HTTP boot client"),
            ClientKind::Ipxe {
                platform_hint: Some(arch),
            } => write!(f, "iPXE on {}", arch.describe()),
            ClientKind::Ipxe {
                platform_hint: None,
            } => f.write_str("iPXE"),
            ClientKind::Unknown(code) => write!(f, "netboot client of unknown architecture {code}"),
            ClientKind::NotNetboot => f.write_str("not a netboot client"),
        }
    }
}

/// The vendor-class prefixes (option 60) that mark PXE and HTTP boot clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorClasses {
    /// PXE prefixes, compared byte for byte (case-sensitive). Default: `PXEClient`.
    pub pxe: Vec<String>,
    /// UEFI HTTP boot prefixes. Default: `HTTPClient`.
    pub http: Vec<String>,
}

impl Default for VendorClasses {
    fn default() -> VendorClasses {
        VendorClasses {
            pxe: vec!["PXEClient".into()],
            http: vec!["HTTPClient".into()],
        }
    }
}

impl VendorClasses {
    /// The accepted prefix `vendor_class` starts with (HTTP prefixes are tried first, so an
    /// `HTTPClient` client is never taken for PXE by a short custom PXE prefix).
    pub fn matching(&self, vendor_class: &[u8]) -> Option<VendorMatch> {
        let hit = |prefixes: &[String]| {
            prefixes
                .iter()
                .find(|p| !p.is_empty() && vendor_class.starts_with(p.as_bytes()))
                .cloned()
        };
        hit(&self.http)
            .map(VendorMatch::Http)
            .or_else(|| hit(&self.pxe).map(VendorMatch::Pxe))
    }
}

/// The accepted vendor-class prefix a client matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VendorMatch {
    /// A PXE prefix.
    Pxe(String),
    /// An HTTP boot prefix.
    Http(String),
}

impl VendorMatch {
    /// The prefix, which is also what option 60 of the reply carries.
    pub fn prefix(&self) -> &str {
        match self {
            VendorMatch::Pxe(prefix) | VendorMatch::Http(prefix) => prefix,
        }
    }
}

/// What marked a client as iPXE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpxeSignal {
    /// Option 77 is the bare string `iPXE` (what iPXE sends).
    UserClass,
    /// Option 77 holds an RFC 3004 item `iPXE`.
    UserClassRfc3004,
    /// Option 175 (iPXE's encapsulated options) is present.
    Option175,
}

impl fmt::Display for IpxeSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpxeSignal::UserClass => "user class \"iPXE\"",
            IpxeSignal::UserClassRfc3004 => "RFC 3004 user class \"iPXE\"",
            IpxeSignal::Option175 => "option 175",
        })
    }
}

/// Where the architecture code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchSource {
    /// Option 93.
    Option93,
    /// The `Arch:NNNNN` field of the vendor class.
    VendorClass,
    /// Neither: PXE ROMs without option 93 predate UEFI, so 0 (BIOS) is assumed.
    Assumed,
}

/// How the reply reaches the client, which decides option 43.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A full DHCP server's OFFER or ACK (port 67).
    Server,
    /// A proxyDHCP offer on port 67 (no address).
    Proxy,
    /// The boot server's ACK to a request on port 4011 (proxy mode, PXE spec).
    BootServer,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Server => "server mode",
            Mode::Proxy => "a proxyDHCP offer",
            Mode::BootServer => "a port 4011 boot server reply",
        })
    }
}

/// The facts the policy reads from a request. [`ClientFacts::from_message`] takes them from a
/// decoded DHCPv4 message; `kindling explain` builds them from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientFacts<'a> {
    /// The Ethernet MAC address.
    pub mac: Option<[u8; 6]>,
    /// Option 93, raw.
    pub arch: Option<&'a [u8]>,
    /// Option 60, raw.
    pub vendor_class: Option<&'a [u8]>,
    /// Option 77, raw.
    pub user_class: Option<&'a [u8]>,
    /// Whether option 175 is present.
    pub ipxe_options: bool,
    /// Option 97, raw.
    pub uuid: Option<&'a [u8]>,
}

impl<'a> ClientFacts<'a> {
    /// The facts of a decoded request.
    pub fn from_message(message: &'a Message) -> ClientFacts<'a> {
        ClientFacts {
            mac: message.mac(),
            arch: message.client_arch_raw(),
            vendor_class: message.vendor_class(),
            user_class: message.user_class(),
            ipxe_options: message.ipxe_options().is_some(),
            uuid: message.client_uuid(),
        }
    }
}

/// A request as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRequest {
    /// The client's MAC address, for explanations.
    pub mac: Option<[u8; 6]>,
    /// The client kind.
    pub kind: ClientKind,
    /// The architecture code, when the client is netbooting.
    pub arch_code: Option<u16>,
    /// Where [`BootRequest::arch_code`] came from.
    pub arch_source: ArchSource,
    /// What marked the client as iPXE, if anything did.
    pub ipxe: Option<IpxeSignal>,
    /// The accepted vendor-class prefix the client matched.
    pub vendor: Option<VendorMatch>,
    /// The vendor class as sent (lossy UTF-8), for explanations.
    pub vendor_class: Option<String>,
    /// Option 97 as sent.
    pub uuid: Option<Vec<u8>>,
    /// How the reply reaches the client.
    pub mode: Mode,
    /// The port of this box's HTTP service, when it serves the boot tree: an HTTP boot client
    /// whose boot key is a path gets a URL on it.
    pub http_port: Option<u16>,
}

/// What in option 77 or 175 marks iPXE.
fn ipxe_signal(facts: &ClientFacts<'_>) -> Option<IpxeSignal> {
    if let Some(user_class) = facts.user_class {
        if user_class == b"iPXE" {
            return Some(IpxeSignal::UserClass);
        }
        if rfc3004_items(user_class).any(|item| item == b"iPXE") {
            return Some(IpxeSignal::UserClassRfc3004);
        }
    }
    facts.ipxe_options.then_some(IpxeSignal::Option175)
}

/// The items of an RFC 3004 user class (each a length byte and that many bytes). Iteration stops
/// at the first item that runs past the end, so a bare string yields nothing sensible.
fn rfc3004_items(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (&len, rest) = data.split_first()?;
        let len = usize::from(len);
        if len == 0 || len > rest.len() {
            return None;
        }
        let (item, tail) = rest.split_at(len);
        data = tail;
        Some(item)
    })
}

/// The `Arch:NNNNN` field of a PXE vendor class (`PXEClient:Arch:00007:UNDI:003000`).
fn arch_from_vendor_class(vendor_class: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(vendor_class).ok()?;
    let mut fields = text.split(':');
    while let Some(field) = fields.next() {
        if field == "Arch" {
            let digits = fields.next()?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return digits.parse().ok();
        }
    }
    None
}

impl BootRequest {
    /// Classifies a client from its facts.
    pub fn new(facts: &ClientFacts<'_>, classes: &VendorClasses, mode: Mode) -> BootRequest {
        let vendor = facts.vendor_class.and_then(|vc| classes.matching(vc));
        let ipxe = ipxe_signal(facts);
        let option93 = facts
            .arch
            .and_then(|raw| raw.get(..2))
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
        let from_class = facts.vendor_class.and_then(arch_from_vendor_class);
        let (arch_code, arch_source) = match (option93, from_class) {
            (Some(code), _) => (Some(code), ArchSource::Option93),
            (None, Some(code)) => (Some(code), ArchSource::VendorClass),
            (None, None) => (None, ArchSource::Assumed),
        };
        let kind = if ipxe.is_some() {
            ClientKind::Ipxe {
                platform_hint: arch_code.map(Arch::from_code),
            }
        } else if vendor.is_some() {
            ClientKind::from_arch(Arch::from_code(arch_code.unwrap_or(0)))
        } else {
            ClientKind::NotNetboot
        };
        let arch_code = match kind {
            ClientKind::NotNetboot => None,
            ClientKind::Ipxe { .. } => arch_code,
            _ => Some(arch_code.unwrap_or(0)),
        };
        BootRequest {
            mac: facts.mac,
            kind,
            arch_code,
            arch_source,
            ipxe,
            vendor,
            vendor_class: facts
                .vendor_class
                .map(|vc| String::from_utf8_lossy(vc).into_owned()),
            uuid: facts.uuid.map(<[u8]>::to_vec),
            mode,
            http_port: None,
        }
    }

    /// Classifies the client of a decoded request.
    pub fn from_message(message: &Message, classes: &VendorClasses, mode: Mode) -> BootRequest {
        BootRequest::new(&ClientFacts::from_message(message), classes, mode)
    }

    /// Why the client is of its kind, in words.
    pub fn describe(&self) -> String {
        let arch = match (self.arch_code, self.arch_source) {
            (Some(code), ArchSource::Option93) => format!("option 93 = {code}"),
            (Some(code), ArchSource::VendorClass) => {
                format!("arch {code} from the vendor class (no option 93)")
            }
            (Some(code), ArchSource::Assumed) => format!("no option 93, arch {code} assumed"),
            (None, _) => "no option 93".into(),
        };
        let class = match &self.vendor_class {
            Some(vc) => format!("vendor class {vc:?}"),
            None => "no vendor class".into(),
        };
        match (self.kind, self.ipxe) {
            (ClientKind::NotNetboot, _) if self.vendor_class.is_none() => {
                "not a netboot client (no vendor class, no iPXE marker)".into()
            }
            (ClientKind::NotNetboot, _) => {
                format!("not a netboot client ({class} matches no accepted prefix, no iPXE marker)")
            }
            (kind, Some(signal)) => format!("{kind} ({signal}, {arch}, {class})"),
            (kind, None) => format!("{kind} ({arch}, {class})"),
        }
    }

    fn mac_string(&self) -> String {
        match self.mac {
            Some(mac) => mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            None => "this client".into(),
        }
    }
}

/// A key of the `boot` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootKey {
    /// `boot.bios`.
    Bios,
    /// `boot.uefi_x64`.
    UefiX64,
    /// `boot.uefi_arm64`.
    UefiArm64,
    /// `boot.ipxe`.
    Ipxe,
    /// `boot.uefi_x64_http`.
    UefiX64Http,
    /// `boot.uefi_arm64_http`.
    UefiArm64Http,
}

impl BootKey {
    /// The key's value in `boot`, if set and not empty.
    pub fn get(self, boot: &BootConfig) -> Option<&str> {
        let value = match self {
            BootKey::Bios => boot.bios.as_deref(),
            BootKey::UefiX64 => boot.uefi_x64.as_deref(),
            BootKey::UefiArm64 => boot.uefi_arm64.as_deref(),
            BootKey::Ipxe => boot.ipxe.as_deref(),
            BootKey::UefiX64Http => boot.uefi_x64_http.as_deref(),
            BootKey::UefiArm64Http => boot.uefi_arm64_http.as_deref(),
        };
        value.filter(|v| !v.is_empty())
    }

    /// The key as written in the config file.
    pub fn name(self) -> &'static str {
        match self {
            BootKey::Bios => "boot.bios",
            BootKey::UefiX64 => "boot.uefi_x64",
            BootKey::UefiArm64 => "boot.uefi_arm64",
            BootKey::Ipxe => "boot.ipxe",
            BootKey::UefiX64Http => "boot.uefi_x64_http",
            BootKey::UefiArm64Http => "boot.uefi_arm64_http",
        }
    }
}

/// A boot file: a path on the TFTP server or an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BootFile {
    /// A path the client fetches over TFTP from this box (siaddr / option 66).
    Tftp(String),
    /// An `http://` or `https://` URL.
    Url(String),
    /// A path in the tree served by this box's HTTP service on `port`: the client is handed
    /// `http://<the address its request came to>:<port>/<path>` ([`BootFile::url_on`]).
    Http { path: String, port: u16 },
}

impl BootFile {
    /// Classifies a configured value.
    pub fn parse(value: &str) -> BootFile {
        let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            BootFile::Url(value.to_string())
        } else {
            BootFile::Tftp(value.to_string())
        }
    }

    /// The value for option 67 and the `file` field, for a reply sent from `server`.
    pub fn url_on(&self, server: std::net::IpAddr) -> String {
        match self {
            BootFile::Tftp(path) | BootFile::Url(path) => path.clone(),
            BootFile::Http { path, port } => {
                let path = path.trim_start_matches('/');
                match server {
                    std::net::IpAddr::V4(v4) => format!("http://{v4}:{port}/{path}"),
                    std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{port}/{path}"),
                }
            }
        }
    }

    /// The configured value.
    pub fn as_str(&self) -> &str {
        match self {
            BootFile::Tftp(path) | BootFile::Url(path) | BootFile::Http { path, .. } => path,
        }
    }
}

impl fmt::Display for BootFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootFile::Tftp(path) => write!(f, "{path:?} over TFTP"),
            BootFile::Url(url) => write!(f, "{url:?}"),
            BootFile::Http { path, port } => {
                write!(f, "{path:?} over HTTP (this box, port {port})")
            }
        }
    }
}

/// Which config rule chose a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The key read.
    pub key: BootKey,
    /// The reservation's MAC when the reservation's `boot` supplied the value.
    pub reservation: Option<String>,
    /// What selected the key: iPXE, or the architecture code.
    pub trigger: Trigger,
}

/// What selected a boot key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The client is iPXE.
    Ipxe,
    /// The client's architecture code.
    Arch(u16),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(mac) = &self.reservation {
            write!(f, "reservation {mac} ")?;
        }
        f.write_str(self.key.name())?;
        match self.trigger {
            Trigger::Ipxe => f.write_str(" for iPXE"),
            Trigger::Arch(code) => write!(f, " for arch {code}"),
        }
    }
}

/// Why a netboot client gets no file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NoFileReason {
    /// The key for the kind is not set (nor in the client's reservation).
    KeyUnset(BootKey),
    /// Kindling has no `boot` key for this kind (32-bit UEFI, unknown architectures).
    NoKeyForKind,
    /// An HTTP boot client got a TFTP path from the rule.
    NeedsUrl(Rule, String),
    /// A PXE ROM got an http(s) URL from the rule.
    NeedsTftp(Rule, String),
}

impl fmt::Display for NoFileReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoFileReason::KeyUnset(BootKey::Ipxe) => f.write_str(
                "boot.ipxe is not set (iPXE is never handed its architecture's binary, so \
                 chainloading cannot loop)",
            ),
            NoFileReason::KeyUnset(key) => write!(f, "{} is not set", key.name()),
            NoFileReason::NoKeyForKind => f.write_str("the boot section has no key for this kind"),
            NoFileReason::NeedsUrl(rule, value) => write!(
                f,
                "{rule} is the path {value:?}, but an HTTP boot client needs an http(s) URL \
                 and this box serves no HTTP (no http section) to make one"
            ),
            NoFileReason::NeedsTftp(rule, value) => write!(
                f,
                "{rule} is the URL {value:?}, but a PXE ROM loads over TFTP only"
            ),
        }
    }
}

/// The boot options a reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOffer {
    /// The client kind.
    pub kind: ClientKind,
    /// Why the client is of that kind ([`BootRequest::describe`]).
    pub client: String,
    /// The file for option 67 and the `file` field.
    pub file: BootFile,
    /// The rule that chose the file.
    pub rule: Rule,
    /// Option 60 to send (the accepted prefix the client matched), if any.
    pub vendor_class: Option<String>,
    /// Option 43 to send, if any.
    pub vendor_options: Option<Vec<u8>>,
    /// Option 97 to echo, if the client sent one.
    pub uuid: Option<Vec<u8>>,
    /// How the reply reaches the client.
    pub mode: Mode,
}

/// What the policy decided for one request. `Display` explains it for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootDecision {
    /// Not a netboot client: no boot options.
    NotNetboot {
        /// Why ([`BootRequest::describe`]).
        client: String,
    },
    /// A netboot client for which no usable file is configured: no boot options.
    NoFile {
        /// The client kind.
        kind: ClientKind,
        /// Why the client is of that kind.
        client: String,
        /// Why there is no file.
        reason: NoFileReason,
    },
    /// Boot options to send.
    Boot(BootOffer),
}

impl BootDecision {
    /// The boot offer, when there is one.
    pub fn offer(&self) -> Option<&BootOffer> {
        match self {
            BootDecision::Boot(offer) => Some(offer),
            _ => None,
        }
    }
}

impl fmt::Display for BootDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootDecision::NotNetboot { client } => write!(f, "{client}: no boot options"),
            BootDecision::NoFile { client, reason, .. } => {
                write!(f, "{client}: no boot file, {reason}; no boot options")
            }
            BootDecision::Boot(offer) => {
                write!(
                    f,
                    "{}: boot file {}, chosen by {}",
                    offer.client, offer.file, offer.rule
                )?;
                match &offer.vendor_class {
                    Some(class) => write!(f, "; option 60 {class:?}")?,
                    None => f.write_str("; no option 60")?,
                }
                match &offer.vendor_options {
                    Some(_) => write!(
                        f,
                        "; option 43 tells the PXE ROM to skip boot server discovery ({})",
                        offer.mode
                    )?,
                    None => f.write_str("; no option 43")?,
                }
                match &offer.uuid {
                    Some(_) => f.write_str("; option 97 echoed"),
                    None => f.write_str("; no option 97 (the client sent none)"),
                }
            }
        }
    }
}

/// Whether option 43 with discovery control goes in the reply (see the module doc).
fn needs_discovery_bypass(kind: ClientKind, vendor: Option<&VendorMatch>, mode: Mode) -> bool {
    if !matches!(vendor, Some(VendorMatch::Pxe(_))) {
        return false;
    }
    match kind {
        ClientKind::Bios => matches!(mode, Mode::Server | Mode::Proxy),
        ClientKind::UefiIa32 | ClientKind::UefiX64 | ClientKind::UefiArm64 => mode == Mode::Server,
        _ => false,
    }
}

/// Which transport a kind can load from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tftp,
    Http,
    Either,
}

/// The key an HTTP boot client reads: its `_http` key when set (in the reservation or
/// globally), else the key of the same architecture's PXE clients.
fn http_key(
    http: BootKey,
    fallback: BootKey,
    boot: &BootConfig,
    reservation_boot: Option<&BootConfig>,
) -> BootKey {
    let set = reservation_boot
        .and_then(|b| http.get(b))
        .or_else(|| http.get(boot));
    if set.is_some() { http } else { fallback }
}

/// Decides the boot options for a request. `reservation_boot` is the `boot` of the client's
/// reservation, if it has one: each of its keys that is set wins over the global key.
pub fn choose(
    request: &BootRequest,
    boot: &BootConfig,
    reservation_boot: Option<&BootConfig>,
) -> BootDecision {
    let client = request.describe();
    let kind = request.kind;
    let arch = request.arch_code.unwrap_or(0);
    let (key, transport, trigger) = match kind {
        ClientKind::NotNetboot => return BootDecision::NotNetboot { client },
        ClientKind::Bios => (BootKey::Bios, Transport::Tftp, Trigger::Arch(arch)),
        ClientKind::UefiX64 => (BootKey::UefiX64, Transport::Tftp, Trigger::Arch(arch)),
        ClientKind::UefiArm64 => (BootKey::UefiArm64, Transport::Tftp, Trigger::Arch(arch)),
        ClientKind::UefiHttpX64 => (
            http_key(
                BootKey::UefiX64Http,
                BootKey::UefiX64,
                boot,
                reservation_boot,
            ),
            Transport::Http,
            Trigger::Arch(arch),
        ),
        ClientKind::UefiHttpArm64 => (
            http_key(
                BootKey::UefiArm64Http,
                BootKey::UefiArm64,
                boot,
                reservation_boot,
            ),
            Transport::Http,
            Trigger::Arch(arch),
        ),
        ClientKind::Ipxe { .. } => (BootKey::Ipxe, Transport::Either, Trigger::Ipxe),
        ClientKind::UefiIa32 | ClientKind::Unknown(_) => {
            return BootDecision::NoFile {
                kind,
                client,
                reason: NoFileReason::NoKeyForKind,
            };
        }
    };
    let from_reservation = reservation_boot.and_then(|b| key.get(b));
    let Some(value) = from_reservation.or_else(|| key.get(boot)) else {
        return BootDecision::NoFile {
            kind,
            client,
            reason: NoFileReason::KeyUnset(key),
        };
    };
    let rule = Rule {
        key,
        reservation: from_reservation.map(|_| request.mac_string()),
        trigger,
    };
    let mut file = BootFile::parse(value);
    if let (BootFile::Tftp(path), Transport::Http, Some(port)) =
        (&file, transport, request.http_port)
    {
        file = BootFile::Http {
            path: path.clone(),
            port,
        };
    }
    let refused = match (&file, transport) {
        (BootFile::Tftp(_), Transport::Http) => {
            Some(NoFileReason::NeedsUrl(rule.clone(), value.into()))
        }
        (BootFile::Url(_), Transport::Tftp) => {
            Some(NoFileReason::NeedsTftp(rule.clone(), value.into()))
        }
        _ => None,
    };
    if let Some(reason) = refused {
        return BootDecision::NoFile {
            kind,
            client,
            reason,
        };
    }
    BootDecision::Boot(BootOffer {
        kind,
        client,
        file,
        rule,
        vendor_class: request.vendor.as_ref().map(|v| v.prefix().to_string()),
        vendor_options: needs_discovery_bypass(kind, request.vendor.as_ref(), request.mode)
            .then(pxe::skip_discovery),
        uuid: request.uuid.clone(),
        mode: request.mode,
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests fail loudly on unexpected values"
    )]

    use proptest::prelude::*;

    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const UUID: [u8; 17] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

    fn boot() -> BootConfig {
        BootConfig {
            bios: Some("undionly.kpxe".into()),
            uefi_x64: Some("ipxe.efi".into()),
            uefi_arm64: Some("ipxe-arm64.efi".into()),
            ipxe: Some("boot.ipxe".into()),
            ..BootConfig::default()
        }
    }

    fn facts<'a>(arch: Option<&'a [u8]>, vendor_class: Option<&'a [u8]>) -> ClientFacts<'a> {
        ClientFacts {
            mac: Some(MAC),
            arch,
            vendor_class,
            user_class: None,
            ipxe_options: false,
            uuid: Some(&UUID),
        }
    }

    fn pxe(arch: u16) -> BootRequest {
        let code = arch.to_be_bytes();
        let class = format!("PXEClient:Arch:{arch:05}:UNDI:003000");
        BootRequest::new(
            &facts(Some(&code), Some(class.as_bytes())),
            &VendorClasses::default(),
            Mode::Server,
        )
    }

    fn with_mode(mut request: BootRequest, mode: Mode) -> BootRequest {
        request.mode = mode;
        request
    }

    #[test]
    fn every_architecture_code_maps_to_its_kind() {
        for (code, kind) in [
            (0, ClientKind::Bios),
            (6, ClientKind::UefiIa32),
            (7, ClientKind::UefiX64),
            (9, ClientKind::UefiX64),
            (11, ClientKind::UefiArm64),
            (16, ClientKind::UefiHttpX64),
            (19, ClientKind::UefiHttpArm64),
            (1, ClientKind::Unknown(1)),
            (10, ClientKind::Unknown(10)),
            (15, ClientKind::Unknown(15)),
            (0xffff, ClientKind::Unknown(0xffff)),
        ] {
            let request = pxe(code);
            assert_eq!(request.kind, kind, "arch {code}");
            assert_eq!(request.arch_code, Some(code));
            assert_eq!(request.arch_source, ArchSource::Option93);
        }
    }

    #[test]
    fn option_93_wins_and_its_first_entry_counts() {
        let request = BootRequest::new(
            &facts(
                Some(&[0, 11, 0, 7]),
                Some(b"PXEClient:Arch:00007:UNDI:003000"),
            ),
            &VendorClasses::default(),
            Mode::Server,
        );
        assert_eq!(request.kind, ClientKind::UefiArm64);
    }

    #[test]
    fn without_option_93_the_vendor_class_or_bios_is_used() {
        let classes = VendorClasses::default();
        let from_class = BootRequest::new(
            &facts(None, Some(b"PXEClient:Arch:00007:UNDI:003016")),
            &classes,
            Mode::Server,
        );
        assert_eq!(from_class.kind, ClientKind::UefiX64);
        assert_eq!(from_class.arch_source, ArchSource::VendorClass);
        let bare = BootRequest::new(&facts(None, Some(b"PXEClient")), &classes, Mode::Server);
        assert_eq!(bare.kind, ClientKind::Bios);
        assert_eq!(bare.arch_source, ArchSource::Assumed);
        assert_eq!(bare.arch_code, Some(0));
        let odd = BootRequest::new(
            &facts(Some(&[7]), Some(b"PXEClient")),
            &classes,
            Mode::Server,
        );
        assert_eq!(
            odd.kind,
            ClientKind::Bios,
            "a 1-byte option 93 is not an arch"
        );
    }

    fn ipxe_request(
        user_class: Option<&[u8]>,
        option175: bool,
        arch: Option<&[u8]>,
    ) -> BootRequest {
        let mut facts = facts(arch, Some(b"PXEClient:Arch:00007:UNDI:003010"));
        facts.user_class = user_class;
        facts.ipxe_options = option175;
        BootRequest::new(&facts, &VendorClasses::default(), Mode::Server)
    }

    #[test]
    fn ipxe_is_recognised_by_either_user_class_form_or_option_175() {
        let arch = Some(&[0u8, 7][..]);
        let uefi = ClientKind::Ipxe {
            platform_hint: Some(Arch::UefiX64),
        };
        let bare = ipxe_request(Some(b"iPXE"), false, arch);
        assert_eq!((bare.kind, bare.ipxe), (uefi, Some(IpxeSignal::UserClass)));
        let rfc = ipxe_request(Some(&[4, b'i', b'P', b'X', b'E']), false, arch);
        assert_eq!(
            (rfc.kind, rfc.ipxe),
            (uefi, Some(IpxeSignal::UserClassRfc3004))
        );
        let second_item = ipxe_request(
            Some(&[3, b'f', b'o', b'o', 4, b'i', b'P', b'X', b'E']),
            false,
            arch,
        );
        assert_eq!(second_item.ipxe, Some(IpxeSignal::UserClassRfc3004));
        let encap = ipxe_request(None, true, arch);
        assert_eq!(
            (encap.kind, encap.ipxe),
            (uefi, Some(IpxeSignal::Option175))
        );
        let no_hint = ipxe_request(Some(b"iPXE"), true, None);
        assert_eq!(
            no_hint.kind,
            ClientKind::Ipxe {
                platform_hint: Some(Arch::UefiX64) // from the vendor class
            }
        );
        for not_ipxe in [
            &b"ipxe"[..],
            b"iPXE2",
            b"gPXE",
            &[5, b'i', b'P', b'X', b'E'],
        ] {
            let request = ipxe_request(Some(not_ipxe), false, arch);
            assert_eq!(request.kind, ClientKind::UefiX64, "{not_ipxe:?}");
            assert_eq!(request.ipxe, None);
        }
    }

    #[test]
    fn ipxe_chainloaded_from_uefi_sending_pxeclient_gets_boot_ipxe() {
        let request = ipxe_request(Some(b"iPXE"), true, Some(&[0, 7]));
        assert_eq!(request.vendor, Some(VendorMatch::Pxe("PXEClient".into())));
        for mode in [Mode::Server, Mode::Proxy, Mode::BootServer] {
            let decision = choose(&with_mode(request.clone(), mode), &boot(), None);
            let offer = decision.offer().unwrap();
            assert_eq!(offer.file, BootFile::Tftp("boot.ipxe".into()));
            assert_eq!(offer.rule.key, BootKey::Ipxe);
            assert_eq!(offer.vendor_class.as_deref(), Some("PXEClient"));
            assert_eq!(offer.vendor_options, None, "iPXE never needs option 43");
            assert!(decision.to_string().contains("boot.ipxe for iPXE"));
        }
    }

    #[test]
    fn ipxe_without_boot_ipxe_gets_no_binary() {
        let request = ipxe_request(Some(b"iPXE"), false, Some(&[0, 0]));
        let mut config = boot();
        config.ipxe = None;
        let decision = choose(&request, &config, None);
        assert_eq!(
            decision,
            BootDecision::NoFile {
                kind: request.kind,
                client: request.describe(),
                reason: NoFileReason::KeyUnset(BootKey::Ipxe)
            }
        );
        assert!(decision.to_string().contains("boot.ipxe is not set"));
        // An http URL is fine for iPXE.
        config.ipxe = Some("http://10.99.0.1/boot.ipxe".into());
        let offer = choose(&request, &config, None).offer().cloned().unwrap();
        assert_eq!(
            offer.file,
            BootFile::Url("http://10.99.0.1/boot.ipxe".into())
        );
    }

    #[test]
    fn pxe_kinds_get_their_key() {
        for (arch, key, file) in [
            (0, BootKey::Bios, "undionly.kpxe"),
            (7, BootKey::UefiX64, "ipxe.efi"),
            (9, BootKey::UefiX64, "ipxe.efi"),
            (11, BootKey::UefiArm64, "ipxe-arm64.efi"),
        ] {
            let decision = choose(&pxe(arch), &boot(), None);
            let offer = decision.offer().unwrap();
            assert_eq!(offer.file, BootFile::Tftp(file.into()));
            assert_eq!(offer.rule.key, key);
            assert_eq!(offer.rule.trigger, Trigger::Arch(arch));
            assert_eq!(offer.rule.reservation, None);
            assert_eq!(offer.vendor_class.as_deref(), Some("PXEClient"));
            assert_eq!(offer.uuid.as_deref(), Some(&UUID[..]));
            assert!(
                decision
                    .to_string()
                    .contains(&format!("{} for arch {arch}", key.name())),
                "{decision}"
            );
        }
    }

    #[test]
    fn a_reservation_override_wins_key_by_key() {
        let reservation = BootConfig {
            bios: Some("pxelinux.0".into()),
            ..BootConfig::default()
        };
        let bios = choose(&pxe(0), &boot(), Some(&reservation));
        let offer = bios.offer().unwrap();
        assert_eq!(offer.file, BootFile::Tftp("pxelinux.0".into()));
        assert_eq!(offer.rule.reservation.as_deref(), Some("52:54:00:12:34:56"));
        assert!(
            bios.to_string()
                .contains("reservation 52:54:00:12:34:56 boot.bios for arch 0"),
            "{bios}"
        );
        let uefi = choose(&pxe(7), &boot(), Some(&reservation));
        let offer = uefi.offer().unwrap();
        assert_eq!(offer.file, BootFile::Tftp("ipxe.efi".into()));
        assert_eq!(offer.rule.reservation, None);
        // The reservation can also supply a key the global section lacks.
        let global = BootConfig::default();
        let offer = choose(&pxe(0), &global, Some(&reservation))
            .offer()
            .cloned();
        assert_eq!(offer.unwrap().file, BootFile::Tftp("pxelinux.0".into()));
    }

    #[test]
    fn http_boot_clients_get_a_url_and_httpclient() {
        let mut config = boot();
        config.uefi_x64 = Some("http://10.99.0.1/ipxe.efi".into());
        config.uefi_arm64 = Some("HTTPS://boot.lab.test/arm64.efi".into());
        for (arch, url) in [
            (16, "http://10.99.0.1/ipxe.efi"),
            (19, "HTTPS://boot.lab.test/arm64.efi"),
        ] {
            let code = u16::to_be_bytes(arch);
            let class = format!("HTTPClient:Arch:{arch:05}:UNDI:003000");
            let request = BootRequest::new(
                &facts(Some(&code), Some(class.as_bytes())),
                &VendorClasses::default(),
                Mode::Server,
            );
            assert_eq!(request.vendor, Some(VendorMatch::Http("HTTPClient".into())));
            let offer = choose(&request, &config, None).offer().cloned().unwrap();
            assert_eq!(offer.file, BootFile::Url(url.into()));
            assert_eq!(offer.vendor_class.as_deref(), Some("HTTPClient"));
            assert_eq!(offer.vendor_options, None);
        }
        // A TFTP path is refused for HTTP boot, a URL for a PXE ROM.
        let request = BootRequest::new(
            &facts(Some(&[0, 16]), Some(b"HTTPClient:Arch:00016:UNDI:003000")),
            &VendorClasses::default(),
            Mode::Server,
        );
        let decision = choose(&request, &boot(), None);
        assert!(matches!(
            &decision,
            BootDecision::NoFile {
                reason: NoFileReason::NeedsUrl(rule, value),
                ..
            } if rule.key == BootKey::UefiX64 && value == "ipxe.efi"
        ));
        assert!(decision.to_string().contains("needs an http(s) URL"));
        let decision = choose(&pxe(7), &config, None);
        assert!(matches!(
            &decision,
            BootDecision::NoFile {
                reason: NoFileReason::NeedsTftp(..),
                ..
            }
        ));
        assert!(decision.to_string().contains("TFTP only"));
    }

    #[test]
    fn non_netboot_clients_get_nothing() {
        let classes = VendorClasses::default();
        for class in [
            None,
            Some(&b"MSFT 5.0"[..]),
            Some(b"android-dhcp-14"),
            Some(b"pxeclient"),
        ] {
            let mut client = facts(Some(&[0, 7]), class);
            client.user_class = Some(b"linux");
            let request = BootRequest::new(&client, &classes, Mode::Server);
            assert_eq!(request.kind, ClientKind::NotNetboot);
            assert_eq!(request.arch_code, None);
            let decision = choose(&request, &boot(), None);
            assert!(matches!(decision, BootDecision::NotNetboot { .. }));
            assert!(decision.to_string().ends_with("no boot options"));
            assert_eq!(decision.offer(), None);
        }
    }

    #[test]
    fn accepted_vendor_prefixes_are_a_parameter() {
        let custom = VendorClasses {
            pxe: vec!["PXEClient".into(), "HW-Client".into()],
            http: vec!["HTTPClient".into(), "Lab-HTTP".into()],
        };
        let client = facts(Some(&[0, 0]), Some(b"HW-Client:Arch:00000"));
        let by_default = BootRequest::new(&client, &VendorClasses::default(), Mode::Server);
        assert_eq!(by_default.kind, ClientKind::NotNetboot);
        let request = BootRequest::new(&client, &custom, Mode::Server);
        assert_eq!(request.kind, ClientKind::Bios);
        let offer = choose(&request, &boot(), None).offer().cloned().unwrap();
        assert_eq!(offer.vendor_class.as_deref(), Some("HW-Client"));
        assert_eq!(offer.vendor_options, Some(pxe::skip_discovery()));

        let http = BootRequest::new(
            &facts(Some(&[0, 16]), Some(b"Lab-HTTP/1")),
            &custom,
            Mode::Server,
        );
        assert_eq!(http.vendor, Some(VendorMatch::Http("Lab-HTTP".into())));
        // An empty prefix matches nothing rather than everything.
        let empty = VendorClasses {
            pxe: vec![String::new()],
            http: Vec::new(),
        };
        assert_eq!(empty.matching(b"anything"), None);
    }

    #[test]
    fn option_43_follows_the_mode() {
        let cases = [
            (0, Mode::Server, true),
            (0, Mode::Proxy, true),
            (0, Mode::BootServer, false),
            (7, Mode::Server, true),
            (7, Mode::Proxy, false),
            (7, Mode::BootServer, false),
            (11, Mode::Server, true),
            (11, Mode::Proxy, false),
        ];
        for (arch, mode, expected) in cases {
            let decision = choose(&with_mode(pxe(arch), mode), &boot(), None);
            let offer = decision.offer().unwrap();
            assert_eq!(
                offer.vendor_options.is_some(),
                expected,
                "arch {arch} in {mode}"
            );
            if expected {
                assert_eq!(offer.vendor_options.as_deref(), Some(&[6, 1, 8, 255][..]));
                assert!(decision.to_string().contains("option 43"));
            }
        }
    }

    #[test]
    fn option_97_is_echoed_only_when_sent() {
        let mut client = facts(Some(&[0, 0]), Some(b"PXEClient"));
        client.uuid = None;
        let request = BootRequest::new(&client, &VendorClasses::default(), Mode::Proxy);
        let decision = choose(&request, &boot(), None);
        assert_eq!(decision.offer().unwrap().uuid, None);
        assert!(decision.to_string().contains("no option 97"));
        let sent = choose(&pxe(0), &boot(), None);
        assert_eq!(sent.offer().unwrap().uuid.as_deref(), Some(&UUID[..]));
    }

    #[test]
    fn kinds_without_a_key_and_unset_keys_explain_themselves() {
        for arch in [6, 2, 15] {
            let decision = choose(&pxe(arch), &boot(), None);
            assert!(matches!(
                decision,
                BootDecision::NoFile {
                    reason: NoFileReason::NoKeyForKind,
                    ..
                }
            ));
        }
        let decision = choose(&pxe(11), &BootConfig::default(), None);
        assert!(matches!(
            decision,
            BootDecision::NoFile {
                kind: ClientKind::UefiArm64,
                reason: NoFileReason::KeyUnset(BootKey::UefiArm64),
                ..
            }
        ));
        assert!(decision.to_string().contains("boot.uefi_arm64 is not set"));
        let empty = BootConfig {
            bios: Some(String::new()),
            ..BootConfig::default()
        };
        assert!(choose(&pxe(0), &empty, None).offer().is_none());
    }

    #[test]
    fn decisions_from_decoded_requests() {
        use crate::v4::codec::{HEADER_LEN, MAGIC_COOKIE, decode};
        let mut bytes = vec![1, 1, 6, 0];
        bytes.resize(28, 0);
        bytes.extend_from_slice(&MAC);
        bytes.resize(HEADER_LEN, 0);
        bytes.extend_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(&[53, 1, 1, 93, 2, 0, 7, 77, 4, b'i', b'P', b'X', b'E', 60, 32]);
        bytes.extend_from_slice(b"PXEClient:Arch:00007:UNDI:003010");
        bytes.push(255);
        let message = decode(&bytes).unwrap();
        let request = BootRequest::from_message(&message, &VendorClasses::default(), Mode::Proxy);
        assert_eq!(request.mac, Some(MAC));
        assert_eq!(
            request.kind,
            ClientKind::Ipxe {
                platform_hint: Some(Arch::UefiX64)
            }
        );
        assert_eq!(request.uuid, None);
        let decision = choose(&request, &boot(), None);
        assert_eq!(
            decision.to_string(),
            "iPXE on x64 UEFI (user class \"iPXE\", option 93 = 7, vendor class \
             \"PXEClient:Arch:00007:UNDI:003010\"): boot file \"boot.ipxe\" over TFTP, chosen by \
             boot.ipxe for iPXE; option 60 \"PXEClient\"; no option 43; no option 97 (the client \
             sent none)"
        );
    }

    /// A client profile for the property test: what it sends and which key serves it.
    #[derive(Debug, Clone)]
    struct Profile {
        arch: u16,
        ipxe: Option<IpxeSignal>,
        http: bool,
        custom_prefix: bool,
        uuid: bool,
        mode: Mode,
    }

    fn profile() -> impl Strategy<Value = Profile> {
        let mode = prop_oneof![
            Just(Mode::Server),
            Just(Mode::Proxy),
            Just(Mode::BootServer)
        ];
        let ipxe = prop_oneof![
            Just(None),
            Just(Some(IpxeSignal::UserClass)),
            Just(Some(IpxeSignal::UserClassRfc3004)),
            Just(Some(IpxeSignal::Option175)),
        ];
        (
            prop::sample::select(vec![0u16, 7, 9, 11, 16, 19]),
            ipxe,
            any::<bool>(),
            any::<bool>(),
            mode,
        )
            .prop_map(|(arch, ipxe, custom_prefix, uuid, mode)| Profile {
                arch,
                ipxe,
                http: matches!(arch, 16 | 19),
                custom_prefix,
                uuid,
                mode,
            })
    }

    fn path() -> impl Strategy<Value = String> {
        "[a-z0-9_./-]{1,40}".prop_filter("not a URL", |p| !p.starts_with("http"))
    }

    fn url() -> impl Strategy<Value = String> {
        "[a-z0-9./-]{1,40}".prop_map(|p| format!("http://boot.lab.test/{p}"))
    }

    fn file_for(http: bool) -> BoxedStrategy<String> {
        if http { url().boxed() } else { path().boxed() }
    }

    proptest! {
        #[test]
        fn every_kind_with_a_configured_file_gets_it_and_the_vendor_echo(
            profile in profile(),
            global in (path(), path(), path(), path()),
            http_files in (url(), url()),
            overrides in (any::<bool>(), any::<bool>()),
            ipxe_file in any::<bool>().prop_flat_map(file_for),
        ) {
            let prefix = match (profile.http, profile.custom_prefix) {
                (true, false) => "HTTPClient",
                (true, true) => "Lab-HTTP",
                (false, false) => "PXEClient",
                (false, true) => "HW-Client",
            };
            let classes = VendorClasses {
                pxe: vec!["PXEClient".into(), "HW-Client".into()],
                http: vec!["HTTPClient".into(), "Lab-HTTP".into()],
            };
            let class = format!("{prefix}:Arch:{:05}:UNDI:003000", profile.arch);
            let arch = profile.arch.to_be_bytes();
            let rfc3004 = [4, b'i', b'P', b'X', b'E'];
            let client = ClientFacts {
                mac: Some(MAC),
                arch: Some(&arch),
                vendor_class: Some(class.as_bytes()),
                user_class: match profile.ipxe {
                    Some(IpxeSignal::UserClass) => Some(&b"iPXE"[..]),
                    Some(IpxeSignal::UserClassRfc3004) => Some(&rfc3004[..]),
                    _ => None,
                },
                ipxe_options: profile.ipxe == Some(IpxeSignal::Option175),
                uuid: profile.uuid.then_some(&UUID[..]),
            };
            let request = BootRequest::new(&client, &classes, profile.mode);

            // The global section has files of the right transport for this profile.
            let (x64, arm64) = if profile.http { http_files } else { (global.1, global.2) };
            let config = BootConfig {
                bios: Some(global.0),
                uefi_x64: Some(x64),
                uefi_arm64: Some(arm64),
                ipxe: Some(global.3),
                ..BootConfig::default()
            };
            let key = match (profile.ipxe, profile.arch) {
                (Some(_), _) => BootKey::Ipxe,
                (None, 0) => BootKey::Bios,
                (None, 7 | 9 | 16) => BootKey::UefiX64,
                (None, _) => BootKey::UefiArm64,
            };
            // Maybe a reservation overriding this key (and maybe one irrelevant key).
            let mut reservation = BootConfig::default();
            let override_value = if key == BootKey::Ipxe { ipxe_file } else {
                let http = profile.http;
                format!("{}reserved-{}", if http { "http://r.test/" } else { "" }, profile.arch)
            };
            if overrides.0 {
                match key {
                    BootKey::Bios => reservation.bios = Some(override_value.clone()),
                    BootKey::UefiX64 => reservation.uefi_x64 = Some(override_value.clone()),
                    BootKey::UefiArm64 => reservation.uefi_arm64 = Some(override_value.clone()),
                    BootKey::Ipxe => reservation.ipxe = Some(override_value.clone()),
                    BootKey::UefiX64Http => reservation.uefi_x64_http = Some(override_value.clone()),
                    BootKey::UefiArm64Http => {
                        reservation.uefi_arm64_http = Some(override_value.clone())
                    }
                }
            }
            if overrides.1 && key != BootKey::Bios {
                reservation.bios = Some("other.0".into());
            }
            let expected = if overrides.0 {
                override_value
            } else {
                key.get(&config).unwrap().to_string()
            };

            let decision = choose(&request, &config, Some(&reservation));
            let offer = decision.offer().cloned();
            prop_assert!(offer.is_some(), "{}", decision);
            let offer = offer.unwrap();
            prop_assert_eq!(offer.file.as_str(), expected.as_str());
            prop_assert_eq!(offer.rule.key, key);
            prop_assert_eq!(offer.rule.reservation.is_some(), overrides.0);
            prop_assert_eq!(offer.vendor_class.as_deref(), Some(prefix));
            prop_assert_eq!(offer.uuid.is_some(), profile.uuid);
            prop_assert_eq!(offer.mode, profile.mode);
            if profile.ipxe.is_some() || profile.http {
                prop_assert!(offer.vendor_options.is_none());
            }
            prop_assert!(decision.to_string().contains(offer.rule.key.name()));
        }
    }
}
