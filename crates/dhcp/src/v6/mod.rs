//! IPv6: the quiet router advertisement ([`ra`]); DHCPv6 comes later.

pub mod ra;

/// Entry points shared by the cargo-fuzz target (`fuzz/fuzz_targets/dhcp_v6_ra.rs`) and the
/// test that replays its corpus (`tests/fuzz_corpus.rs`). Each panics only when an invariant
/// breaks.
#[doc(hidden)]
pub mod fuzzing {
    use std::net::Ipv6Addr;
    use std::time::{Duration, Instant};

    use super::ra::{
        Jitter, Link, MIN_DELAY_BETWEEN_RAS, NdiscRepr, QuietRa, Received, RouterAdvert,
    };

    const IFINDEX: u32 = 2;
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// The delay drawn is the fuzzer's (it may exceed the maximum: the core must clamp it).
    struct ScriptedJitter(u64);

    impl Jitter for ScriptedJitter {
        fn delay(&mut self, _max: Duration) -> Duration {
            self.0 = self.0.rotate_left(7) ^ 0x9e37;
            Duration::from_millis(self.0 % 2000)
        }
    }

    /// A script of received messages: per step a flags byte (bit 0: hop limit 255; bits 1-3: the
    /// source: a client's link-local, ::, a global address, a router's link-local, ours; bit 4:
    /// truncated), a byte of elapsed time in 50 ms units, a length byte, then that many bytes.
    /// Whatever arrives, only router solicitations and the exact quiet advertisement leave, RAs
    /// on the interface are at least MIN_DELAY_BETWEEN_RAS apart, and no more RAs leave than
    /// solicitations arrived. Returns how many quiet RAs left.
    pub fn core(data: &[u8]) -> usize {
        let ours: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let start = Instant::now();
        let mut core = QuietRa::new(ScriptedJitter(u64::from(
            data.first().copied().unwrap_or(0),
        )));
        core.set_links(
            start,
            vec![Link {
                index: IFINDEX,
                name: "fuzz0".into(),
                link_local: Some(ours),
                mac: Some(MAC),
            }],
        );
        let mut quiet = Vec::new();
        NdiscRepr::RouterAdvert(RouterAdvert::quiet(Some(MAC))).emit(&mut quiet);
        let mut now = start;
        let mut solicitations = 0usize;
        let mut advertisements = 0usize;
        let mut last_sent: Option<Instant> = None;
        let mut check = |core: &mut QuietRa<ScriptedJitter>, at: Instant| {
            while let Some(transmit) = core.poll_transmit() {
                assert_eq!(transmit.ifindex, IFINDEX);
                assert_eq!(transmit.from, ours);
                match transmit.bytes.first() {
                    Some(133) => {
                        assert_eq!(transmit.to, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2))
                    }
                    _ => {
                        assert_eq!(transmit.bytes, quiet, "only the quiet RA is advertised");
                        assert_eq!(transmit.to, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
                        if let Some(last) = last_sent {
                            assert!(at - last >= MIN_DELAY_BETWEEN_RAS, "RAs too close");
                        }
                        last_sent = Some(at);
                        advertisements += 1;
                    }
                }
            }
            while core.poll_event().is_some() {}
        };
        let mut rest = data.get(1..).unwrap_or_default();
        while let [flags, elapsed, len, tail @ ..] = rest {
            let take = usize::from(*len).min(tail.len());
            let (bytes, next) = tail.split_at(take);
            rest = next;
            let target = now + Duration::from_millis(u64::from(*elapsed) * 50);
            while let Some(deadline) = core.poll_timeout().filter(|d| *d <= target) {
                core.handle_timeout(deadline);
                check(&mut core, deadline);
            }
            now = target;
            let source = match (flags >> 1) & 7 {
                0 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 1),
                1 => Ipv6Addr::UNSPECIFIED,
                2 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                3 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xfe),
                _ => ours,
            };
            if bytes.first() == Some(&133) {
                solicitations += 1;
            }
            core.handle(
                now,
                Received {
                    bytes,
                    source,
                    ifindex: IFINDEX,
                    hop_limit: Some(if flags & 1 == 1 { 255 } else { 64 }),
                    truncated: flags & 0x10 != 0,
                },
            );
            check(&mut core, now);
        }
        let end = now + Duration::from_secs(10);
        while let Some(deadline) = core.poll_timeout().filter(|d| *d <= end) {
            core.handle_timeout(deadline);
            check(&mut core, deadline);
        }
        assert!(advertisements <= solicitations, "an RA nobody asked for");
        advertisements
    }
}
