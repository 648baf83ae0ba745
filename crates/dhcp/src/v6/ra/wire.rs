//! Router Solicitation and Router Advertisement (RFC 4861 4.1, 4.2) with the Source Link-Layer
//! Address and Prefix Information options (4.6.1, 4.6.2): parsed from untrusted bytes into
//! typed values and emitted only from typed values, as smoltcp's `NdiscRepr` does.
//! Hand-written because only these two messages and two options are needed and the checks of
//! RFC 4861 6.1 must be exact (see docs/ARCHITECTURE.md).
//!
//! The ICMPv6 checksum is left zero on emit and not checked on parse: the kernel fills it in
//! on raw ICMPv6 sockets and drops what arrives with a bad one before a raw socket sees it.

use std::net::Ipv6Addr;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// Option type of the Source Link-Layer Address option (RFC 4861 4.6.1).
const OPTION_SOURCE_LINK_LAYER: u8 = 1;
/// Option type of the Prefix Information option (RFC 4861 4.6.2).
const OPTION_PREFIX_INFORMATION: u8 = 3;
/// The Prefix Information option's length: 32 bytes, 4 units of 8.
pub const PREFIX_INFORMATION_LEN: usize = 32;
const ON_LINK_FLAG: u8 = 0x80;
const AUTONOMOUS_FLAG: u8 = 0x40;

const SOLICITATION_HEADER_LEN: usize = 8;
const ADVERTISEMENT_HEADER_LEN: usize = 16;
const MANAGED_FLAG: u8 = 0x80;
const OTHER_FLAG: u8 = 0x40;

/// Why bytes are not a well-formed RS or RA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{len} bytes: shorter than the {needed}-byte message header")]
    Truncated { len: usize, needed: usize },
    #[error("ICMPv6 type {0} is neither a router solicitation nor an advertisement")]
    UnexpectedType(u8),
    #[error("ICMPv6 code {0} (must be 0)")]
    NonZeroCode(u8),
    #[error("option at offset {offset} has length 0")]
    ZeroLengthOption { offset: usize },
    #[error("option at offset {offset} runs past the end of the message")]
    OptionOverrun { offset: usize },
}

/// The Source Link-Layer Address option's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLayerAddress {
    /// A 6-byte (Ethernet-style) hardware address.
    Ethernet([u8; 6]),
    /// Another length: present, kept only as present.
    Other,
}

/// A Prefix Information option (RFC 4861 4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInformation {
    pub prefix_len: u8,
    /// L: the prefix is on-link (hosts reach its addresses without a router).
    pub on_link: bool,
    /// A: hosts may form addresses in it by stateless autoconfiguration (RFC 4862).
    pub autonomous: bool,
    /// Seconds the prefix stays on-link; `u32::MAX`: forever.
    pub valid_lifetime: u32,
    /// Seconds addresses formed in it stay preferred; `u32::MAX`: forever.
    pub preferred_lifetime: u32,
    /// The prefix as sent (bits past `prefix_len` are not cleared on parse).
    pub prefix: Ipv6Addr,
}

impl PrefixInformation {
    /// Reads the option from its 32 bytes (type and length included). `None` when the bytes
    /// are not a Prefix Information option of length 4.
    pub fn parse(option: &[u8]) -> Option<PrefixInformation> {
        let option: &[u8; PREFIX_INFORMATION_LEN] = option.try_into().ok()?;
        if option[0] != OPTION_PREFIX_INFORMATION || option[1] != 4 {
            return None;
        }
        let word = |at: usize| {
            u32::from_be_bytes([option[at], option[at + 1], option[at + 2], option[at + 3]])
        };
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&option[16..32]);
        Some(PrefixInformation {
            prefix_len: option[2],
            on_link: option[3] & ON_LINK_FLAG != 0,
            autonomous: option[3] & AUTONOMOUS_FLAG != 0,
            valid_lifetime: word(4),
            preferred_lifetime: word(8),
            prefix: Ipv6Addr::from(prefix),
        })
    }

    /// Writes every byte of the option, the reserved fields zero.
    pub fn emit(&self, option: &mut [u8; PREFIX_INFORMATION_LEN]) {
        option[0] = OPTION_PREFIX_INFORMATION;
        option[1] = 4;
        option[2] = self.prefix_len;
        option[3] = if self.on_link { ON_LINK_FLAG } else { 0 }
            | if self.autonomous { AUTONOMOUS_FLAG } else { 0 };
        option[4..8].copy_from_slice(&self.valid_lifetime.to_be_bytes());
        option[8..12].copy_from_slice(&self.preferred_lifetime.to_be_bytes());
        option[12..16].fill(0);
        option[16..32].copy_from_slice(&self.prefix.octets());
    }
}

/// A parsed router discovery message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdiscRepr {
    RouterSolicit {
        source_link_layer: Option<LinkLayerAddress>,
    },
    RouterAdvert(RouterAdvert),
}

/// The fields of a Router Advertisement that matter to Kindling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    pub cur_hop_limit: u8,
    /// M: addresses from DHCPv6.
    pub managed: bool,
    /// O: other configuration from DHCPv6.
    pub other: bool,
    /// Seconds this router is a default router; 0: not a default router.
    pub router_lifetime: u16,
    /// Milliseconds; 0: unspecified.
    pub reachable_time: u32,
    /// Milliseconds; 0: unspecified.
    pub retrans_timer: u32,
    pub source_link_layer: Option<LinkLayerAddress>,
    /// The Prefix Information options, in order (emitted after the link-layer address).
    pub prefixes: Vec<PrefixInformation>,
}

impl RouterAdvert {
    /// The advertisement that configures nothing: not a default router (lifetime 0), no M or
    /// O flag, every parameter left unspecified (0), no prefix, only the sender's link-layer
    /// address (RFC 4861 4.2 says it SHOULD be there).
    pub fn quiet(mac: Option<[u8; 6]>) -> RouterAdvert {
        RouterAdvert {
            cur_hop_limit: 0,
            managed: false,
            other: false,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_timer: 0,
            source_link_layer: mac.map(LinkLayerAddress::Ethernet),
            prefixes: Vec::new(),
        }
    }
}

impl NdiscRepr {
    /// Parses an ICMPv6 message (without the IPv6 header) with the message checks of RFC 4861
    /// 6.1.1 and 6.1.2 that do not need the IPv6 header: code 0, the header complete, no
    /// option of length 0 and none running past the end. Unknown options are skipped (RFC
    /// 4861 4.6).
    pub fn parse(bytes: &[u8]) -> Result<NdiscRepr, WireError> {
        let Some(&kind) = bytes.first() else {
            return Err(WireError::Truncated { len: 0, needed: 1 });
        };
        let needed = match kind {
            ROUTER_SOLICITATION => SOLICITATION_HEADER_LEN,
            ROUTER_ADVERTISEMENT => ADVERTISEMENT_HEADER_LEN,
            other => return Err(WireError::UnexpectedType(other)),
        };
        if bytes.len() < needed {
            return Err(WireError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        if bytes[1] != 0 {
            return Err(WireError::NonZeroCode(bytes[1]));
        }
        let (source_link_layer, prefixes) = parse_options(bytes, needed)?;
        if kind == ROUTER_SOLICITATION {
            return Ok(NdiscRepr::RouterSolicit { source_link_layer });
        }
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Ok(NdiscRepr::RouterAdvert(RouterAdvert {
            cur_hop_limit: bytes[4],
            managed: bytes[5] & MANAGED_FLAG != 0,
            other: bytes[5] & OTHER_FLAG != 0,
            router_lifetime: u16::from_be_bytes([bytes[6], bytes[7]]),
            reachable_time: word(8),
            retrans_timer: word(12),
            source_link_layer,
            prefixes,
        }))
    }

    /// How many bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let (header, link, prefixes) = match self {
            NdiscRepr::RouterSolicit { source_link_layer } => {
                (SOLICITATION_HEADER_LEN, source_link_layer, 0)
            }
            NdiscRepr::RouterAdvert(advert) => (
                ADVERTISEMENT_HEADER_LEN,
                &advert.source_link_layer,
                advert.prefixes.len(),
            ),
        };
        header
            + usize::from(matches!(link, Some(LinkLayerAddress::Ethernet(_)))) * 8
            + prefixes * PREFIX_INFORMATION_LEN
    }

    /// Appends the message to `out`, checksum zero. A link-layer address of another length
    /// than 6 bytes is not emitted (it was only ever parsed).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let (link, prefixes) = match self {
            NdiscRepr::RouterSolicit { source_link_layer } => {
                out.extend_from_slice(&[ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
                (source_link_layer, &[][..])
            }
            NdiscRepr::RouterAdvert(advert) => {
                let flags = if advert.managed { MANAGED_FLAG } else { 0 }
                    | if advert.other { OTHER_FLAG } else { 0 };
                out.extend_from_slice(&[
                    ROUTER_ADVERTISEMENT,
                    0,
                    0,
                    0,
                    advert.cur_hop_limit,
                    flags,
                ]);
                out.extend_from_slice(&advert.router_lifetime.to_be_bytes());
                out.extend_from_slice(&advert.reachable_time.to_be_bytes());
                out.extend_from_slice(&advert.retrans_timer.to_be_bytes());
                (&advert.source_link_layer, &advert.prefixes[..])
            }
        };
        if let Some(LinkLayerAddress::Ethernet(mac)) = link {
            out.extend_from_slice(&[OPTION_SOURCE_LINK_LAYER, 1]);
            out.extend_from_slice(mac);
        }
        for prefix in prefixes {
            let mut option = [0u8; PREFIX_INFORMATION_LEN];
            prefix.emit(&mut option);
            out.extend_from_slice(&option);
        }
    }
}

/// Walks the options after the header; returns the source link-layer address, if any, and the
/// Prefix Information options (one of another length than 4 units is skipped, as RFC 4861
/// 4.6.2 fixes the length and 6.1.2 lets a host ignore what it cannot read).
type Options = (Option<LinkLayerAddress>, Vec<PrefixInformation>);

fn parse_options(bytes: &[u8], start: usize) -> Result<Options, WireError> {
    let mut offset = start;
    let mut source_link_layer = None;
    let mut prefixes = Vec::new();
    while offset < bytes.len() {
        let Some(&units) = bytes.get(offset + 1) else {
            return Err(WireError::OptionOverrun { offset });
        };
        if units == 0 {
            return Err(WireError::ZeroLengthOption { offset });
        }
        let end = offset + usize::from(units) * 8;
        if end > bytes.len() {
            return Err(WireError::OptionOverrun { offset });
        }
        // A second source link-layer option is not an error (RFC 4861 is silent); the first wins.
        if bytes[offset] == OPTION_SOURCE_LINK_LAYER && source_link_layer.is_none() {
            let body = &bytes[offset + 2..end];
            source_link_layer = Some(match <[u8; 6]>::try_from(&body[..body.len().min(6)]) {
                Ok(mac) if units == 1 => LinkLayerAddress::Ethernet(mac),
                _ => LinkLayerAddress::Other,
            });
        }
        if let Some(prefix) = PrefixInformation::parse(&bytes[offset..end]) {
            prefixes.push(prefix);
        }
        offset = end;
    }
    Ok((source_link_layer, prefixes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn the_quiet_advertisement_is_exactly_these_bytes() {
        let mut out = Vec::new();
        let repr = NdiscRepr::RouterAdvert(RouterAdvert::quiet(Some(MAC)));
        repr.emit(&mut out);
        #[rustfmt::skip]
        let expected = [
            134, 0, 0, 0,         // type RA, code 0, checksum left to the kernel
            0,                    // Cur Hop Limit: unspecified
            0,                    // no M, no O, nothing else
            0, 0,                 // Router Lifetime 0: not a default router
            0, 0, 0, 0,           // Reachable Time: unspecified
            0, 0, 0, 0,           // Retrans Timer: unspecified
            1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // source link-layer address, no prefix
        ];
        assert_eq!(out, expected);
        assert_eq!(repr.buffer_len(), out.len());
        assert_eq!(NdiscRepr::parse(&out).unwrap(), repr);

        let mut bare = Vec::new();
        NdiscRepr::RouterAdvert(RouterAdvert::quiet(None)).emit(&mut bare);
        assert_eq!(bare, expected[..16]);
    }

    #[test]
    fn an_advertisement_round_trips_its_fields() {
        let advert = RouterAdvert {
            cur_hop_limit: 64,
            managed: true,
            other: true,
            router_lifetime: 1800,
            reachable_time: 30_000,
            retrans_timer: 1_000,
            source_link_layer: Some(LinkLayerAddress::Ethernet(MAC)),
            prefixes: Vec::new(),
        };
        let mut out = Vec::new();
        NdiscRepr::RouterAdvert(advert.clone()).emit(&mut out);
        assert_eq!(out[5], 0xc0);
        assert_eq!(&out[6..8], &1800u16.to_be_bytes());
        assert_eq!(
            NdiscRepr::parse(&out).unwrap(),
            NdiscRepr::RouterAdvert(advert)
        );
    }

    #[test]
    fn a_solicitation_with_and_without_link_layer_address() {
        let mut out = Vec::new();
        let with = NdiscRepr::RouterSolicit {
            source_link_layer: Some(LinkLayerAddress::Ethernet(MAC)),
        };
        with.emit(&mut out);
        assert_eq!(
            out,
            [
                133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56
            ]
        );
        assert_eq!(NdiscRepr::parse(&out).unwrap(), with);
        assert_eq!(
            NdiscRepr::parse(&out[..8]).unwrap(),
            NdiscRepr::RouterSolicit {
                source_link_layer: None
            }
        );
    }

    #[test]
    fn unknown_options_are_skipped_and_odd_link_layer_lengths_kept_as_present() {
        let mut message = vec![133, 0, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&[200, 1, 0, 0, 0, 0, 0, 0]);
        message.extend_from_slice(&[1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        assert_eq!(
            NdiscRepr::parse(&message).unwrap(),
            NdiscRepr::RouterSolicit {
                source_link_layer: Some(LinkLayerAddress::Other)
            }
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_their_reason() {
        assert_eq!(
            NdiscRepr::parse(&[]),
            Err(WireError::Truncated { len: 0, needed: 1 })
        );
        assert_eq!(
            NdiscRepr::parse(&[133, 0, 0, 0, 0, 0, 0]),
            Err(WireError::Truncated { len: 7, needed: 8 })
        );
        assert_eq!(
            NdiscRepr::parse(&[134, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::Truncated { len: 8, needed: 16 })
        );
        assert_eq!(
            NdiscRepr::parse(&[128, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::UnexpectedType(128))
        );
        assert_eq!(
            NdiscRepr::parse(&[133, 1, 0, 0, 0, 0, 0, 0]),
            Err(WireError::NonZeroCode(1))
        );
        assert_eq!(
            NdiscRepr::parse(&[133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::ZeroLengthOption { offset: 8 })
        );
        assert_eq!(
            NdiscRepr::parse(&[133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0]),
            Err(WireError::OptionOverrun { offset: 8 })
        );
        assert_eq!(
            NdiscRepr::parse(&[133, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(WireError::OptionOverrun { offset: 8 })
        );
    }

    /// RFC 4861 4.6.2: type 3, length 4, prefix length, L and A flags, valid and preferred
    /// lifetimes, 4 reserved bytes, the prefix.
    #[rustfmt::skip]
    static PREFIX_BYTES: [u8; 32] = [
        3, 4,                   // Prefix Information, 4 units of 8 bytes
        64,                     // prefix length
        0x80,                   // L set, A clear, reserved bits zero
        0x00, 0x01, 0x51, 0x80, // valid lifetime 86400 s
        0x00, 0x00, 0x38, 0x40, // preferred lifetime 14400 s
        0, 0, 0, 0,             // reserved
        0xfd, 0x00, 0x00, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // fd00:99::
    ];

    fn prefix_repr() -> PrefixInformation {
        PrefixInformation {
            prefix_len: 64,
            on_link: true,
            autonomous: false,
            valid_lifetime: 86_400,
            preferred_lifetime: 14_400,
            prefix: "fd00:99::".parse().unwrap(),
        }
    }

    #[test]
    fn prefix_information_deconstruct() {
        assert_eq!(PrefixInformation::parse(&PREFIX_BYTES), Some(prefix_repr()));
        let mut both = PREFIX_BYTES;
        both[3] = 0xff; // L, A and the reserved bits set: the reserved bits are ignored
        let parsed = PrefixInformation::parse(&both).unwrap();
        assert!(parsed.on_link && parsed.autonomous);
        let mut wrong_len = PREFIX_BYTES;
        wrong_len[1] = 3;
        assert_eq!(PrefixInformation::parse(&wrong_len), None);
        assert_eq!(PrefixInformation::parse(&PREFIX_BYTES[..24]), None);
    }

    #[test]
    fn prefix_information_construct() {
        // Every byte is written, the reserved ones zeroed: nothing of the 0xa5 fill survives.
        let mut option = [0xa5u8; PREFIX_INFORMATION_LEN];
        prefix_repr().emit(&mut option);
        assert_eq!(option, PREFIX_BYTES);
    }

    #[test]
    fn an_advertisement_carries_its_prefixes_after_the_link_layer_address() {
        let mut second = prefix_repr();
        second.prefix = "fd00:98::".parse().unwrap();
        second.autonomous = true;
        let repr = NdiscRepr::RouterAdvert(RouterAdvert {
            cur_hop_limit: 0,
            managed: true,
            other: true,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_timer: 0,
            source_link_layer: Some(LinkLayerAddress::Ethernet(MAC)),
            prefixes: vec![prefix_repr(), second],
        });
        let mut out = vec![0xa5; 3];
        repr.emit(&mut out);
        let out = &out[3..];
        assert_eq!(out.len(), repr.buffer_len());
        assert_eq!(out.len(), 16 + 8 + 64);
        assert_eq!(out[5], 0xc0, "M and O");
        assert_eq!(&out[16..24], &[1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(&out[24..56], &PREFIX_BYTES);
        assert_eq!(out[56 + 3], 0xc0, "the second prefix: L and A");
        assert_eq!(NdiscRepr::parse(out).unwrap(), repr);
        // A solicitation carrying a prefix option parses, the option skipped.
        let mut solicitation = vec![133, 0, 0, 0, 0, 0, 0, 0];
        solicitation.extend_from_slice(&PREFIX_BYTES);
        assert_eq!(
            NdiscRepr::parse(&solicitation).unwrap(),
            NdiscRepr::RouterSolicit {
                source_link_layer: None
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn any_prefix_information_round_trips(
            prefix_len in proptest::prelude::any::<u8>(),
            on_link in proptest::prelude::any::<bool>(),
            autonomous in proptest::prelude::any::<bool>(),
            valid_lifetime in proptest::prelude::any::<u32>(),
            preferred_lifetime in proptest::prelude::any::<u32>(),
            prefix in proptest::prelude::any::<u128>(),
        ) {
            let repr = PrefixInformation {
                prefix_len,
                on_link,
                autonomous,
                valid_lifetime,
                preferred_lifetime,
                prefix: Ipv6Addr::from(prefix),
            };
            let mut option = [0xa5u8; PREFIX_INFORMATION_LEN];
            repr.emit(&mut option);
            proptest::prop_assert_eq!(PrefixInformation::parse(&option), Some(repr));
        }

        #[test]
        fn any_advertisement_round_trips(
            header in proptest::prelude::any::<(u8, bool, bool, u16, u32, u32)>(),
            mac in proptest::prelude::any::<Option<[u8; 6]>>(),
            prefixes in proptest::collection::vec(
                proptest::prelude::any::<(u8, bool, bool, u32, u32, u128)>(),
                0..5,
            ),
        ) {
            let (cur_hop_limit, managed, other, router_lifetime, reachable_time, retrans_timer) =
                header;
            let repr = NdiscRepr::RouterAdvert(RouterAdvert {
                cur_hop_limit,
                managed,
                other,
                router_lifetime,
                reachable_time,
                retrans_timer,
                source_link_layer: mac.map(LinkLayerAddress::Ethernet),
                prefixes: prefixes
                    .into_iter()
                    .map(|(prefix_len, on_link, autonomous, valid, preferred, prefix)| {
                        PrefixInformation {
                            prefix_len,
                            on_link,
                            autonomous,
                            valid_lifetime: valid,
                            preferred_lifetime: preferred,
                            prefix: Ipv6Addr::from(prefix),
                        }
                    })
                    .collect(),
            });
            let mut out = Vec::new();
            repr.emit(&mut out);
            proptest::prop_assert_eq!(out.len(), repr.buffer_len());
            proptest::prop_assert_eq!(NdiscRepr::parse(&out).unwrap(), repr);
        }
    }
}
