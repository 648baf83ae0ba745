//! Property tests: no input makes the parser panic, and generated configs round-trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kindling_config::*;
use proptest::prelude::*;

fn full_example() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples/full.yaml"),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse(&text, "fuzz");
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[ a-z0-9:\\-\\[\\]{},\"'&*!|>#\n.~/]{0,200}") {
        let _ = parse(&text, "fuzz");
    }

    /// Small edits of a real config: every one either parses or reports errors with a line.
    #[test]
    fn edited_example_never_panics(cut in 0usize..4000, len in 0usize..20, insert in "[ a-z0-9:\\-\\[\\]{},\n]{0,8}") {
        let text = full_example();
        let start = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
        let end = text[start..].char_indices().map(|(i, _)| start + i).nth(len).unwrap_or(text.len());
        let edited = format!("{}{}{}", &text[..start], insert, &text[end..]);
        if let Err(e) = parse(&edited, "fuzz") {
            prop_assert!(!e.errors.is_empty());
            for d in &e.errors {
                prop_assert!(d.line.is_some(), "no line: {}", d);
            }
        }
    }

    #[test]
    fn generated_tftp_configs_round_trip(
        port in 0u16..,
        max_sessions in 1usize..=1_000_000,
        timeout_ms in 1_000u64..=255_000,
        queue_ms in 0u64..=3_600_000,
        retries in 1u32..=50,
        blksize in 8u16..=65464,
        windowsize in 1u16..,
        cache in any::<u64>(),
        max_size in 1u64..,
        low in 1u16..,
        span in 0u16..,
        overwrite in prop::sample::select(vec![OverwritePolicy::Refuse, OverwritePolicy::Replace, OverwritePolicy::Versioned]),
        single_port: bool,
        write_enabled: bool,
        restores: bool,
        per_address in 1usize..=1_000_000,
        per_prefix in 1usize..=1_000_000,
        prefix in 0u8..=32,
        root in "[a-zA-Z0-9 ._/-]{1,20}",
        dir in "[a-z]{1,8}(/[a-z]{1,8}){0,2}",
        level in prop::sample::select(vec!["info", "debug", "off", "info,kindling_tftp=trace"]),
    ) {
        let net = ipnet::IpNet::new(std::net::Ipv4Addr::new(10, 1, 2, 3).into(), prefix).unwrap().trunc();
        let high = low.saturating_add(span);
        let config = Config {
            state_dir: "/var/lib/kindling".into(),
            log: LogConfig { format: LogFormat::Json, level: level.to_string() },
            tftp: Some(TftpConfig {
                listen: vec![format!("127.0.0.1:{port}").parse().unwrap(), format!("[::1]:{port}").parse().unwrap()],
                root: root.trim().to_string().into(),
                max_sessions,
                queue_timeout: std::time::Duration::from_millis(queue_ms),
                allow_from: Some(vec![net]),
                single_port,
                port_range: Some(low..=high),
                timeout: std::time::Duration::from_millis(timeout_ms),
                retries,
                max_blksize: blksize,
                max_windowsize: windowsize,
                cache_size: cache,
                unconfirmed_per_address: per_address,
                unconfirmed_per_prefix: per_prefix,
                write: TftpWriteConfig {
                    enabled: write_enabled,
                    dir: dir.into(),
                    overwrite,
                    max_size,
                    allow_from: None,
                    read_from: restores.then(|| vec![net]),
                },
            }),
            boot: BootConfig::default(),
            dhcp: None,
            dns: None,
            profiles: Vec::new(),
        };
        prop_assume!(!root.trim().is_empty());
        let text = to_yaml(&config);
        let again = parse(&text, "generated").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(again.config, config);
    }
}
