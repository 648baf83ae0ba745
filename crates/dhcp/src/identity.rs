//! How a reservation recognises its machine on either family: the SMBIOS system UUID that
//! DHCPv4 option 97 and a DHCPv6 DUID-UUID carry, compared in the byte orders firmware uses.

/// An SMBIOS system UUID as a reservation names it: RFC 4122 byte order, the order
/// `dmidecode -s system-uuid` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SystemUuid(pub [u8; 16]);

impl SystemUuid {
    /// True when `sent`, 16 bytes from a client, is this UUID. iPXE sends RFC 4122 order;
    /// EDK2 copies its EFI_GUID as it lies in memory, the first three fields little-endian
    /// (as SMBIOS 2.6+ stores them), into both option 97 and its DUID-UUID. Both are the same
    /// machine, so both orders match.
    pub fn matches(&self, sent: &[u8]) -> bool {
        sent == self.0 || sent == guid_order(&self.0)
    }

    /// The UUID in DHCPv4 option 97 (RFC 4578 2.2: type 0, then 16 bytes).
    pub fn of_v4_option(raw: &[u8]) -> Option<&[u8]> {
        match raw {
            [0, uuid @ ..] if uuid.len() == 16 => Some(uuid),
            _ => None,
        }
    }

    /// The UUID in a DUID-UUID (RFC 6355: type 4, then 16 bytes).
    pub fn of_duid(duid: &[u8]) -> Option<&[u8]> {
        match duid {
            [0, 4, uuid @ ..] if uuid.len() == 16 => Some(uuid),
            _ => None,
        }
    }
}

/// The same UUID with its first three fields byte-swapped (RFC 4122 order <-> EFI_GUID order).
fn guid_order(uuid: &[u8; 16]) -> [u8; 16] {
    let mut out = *uuid;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANONICAL: [u8; 16] = [
        0x4c, 0x4c, 0x45, 0x44, 0x00, 0x42, 0x35, 0x10, 0x80, 0x52, 0xb3, 0xc0, 0x4f, 0x59, 0x52,
        0x31,
    ];
    const EFI_GUID_ORDER: [u8; 16] = [
        0x44, 0x45, 0x4c, 0x4c, 0x42, 0x00, 0x10, 0x35, 0x80, 0x52, 0xb3, 0xc0, 0x4f, 0x59, 0x52,
        0x31,
    ];

    #[test]
    fn a_uuid_matches_in_rfc_4122_and_in_efi_guid_order_and_nothing_else() {
        let uuid = SystemUuid(CANONICAL);
        assert!(uuid.matches(&CANONICAL));
        assert!(uuid.matches(&EFI_GUID_ORDER));
        let mut other = CANONICAL;
        other[15] ^= 1;
        assert!(!uuid.matches(&other));
        assert!(!uuid.matches(&CANONICAL[..15]));
    }

    #[test]
    fn option_97_and_duid_uuid_yield_the_uuid_only_when_well_formed() {
        let mut option = vec![0];
        option.extend_from_slice(&CANONICAL);
        assert_eq!(SystemUuid::of_v4_option(&option), Some(&CANONICAL[..]));
        option[0] = 1;
        assert_eq!(SystemUuid::of_v4_option(&option), None);
        assert_eq!(SystemUuid::of_v4_option(&option[..16]), None);

        let mut duid = vec![0, 4];
        duid.extend_from_slice(&CANONICAL);
        assert_eq!(SystemUuid::of_duid(&duid), Some(&CANONICAL[..]));
        duid[1] = 3;
        assert_eq!(SystemUuid::of_duid(&duid), None);
        duid[1] = 4;
        duid.push(0);
        assert_eq!(SystemUuid::of_duid(&duid), None);
    }
}
