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

    use super::codec::{self, CodecError, Field, MAX_SNAME_LEN, Reply, code};

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
}
