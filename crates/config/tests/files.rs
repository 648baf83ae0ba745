//! The shipped config files, the embedded default, and the to_yaml round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kindling_config::*;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// Every `*.yaml` in config/ and config/examples/.
fn shipped_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [config_dir(), config_dir().join("examples")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn parse_file(path: &Path) -> Loaded {
    let text = std::fs::read_to_string(path).unwrap();
    match parse(&text, &path.display().to_string()) {
        Ok(loaded) => loaded,
        Err(e) => panic!("{e}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn every_shipped_file_parses_without_warnings() {
    let files = shipped_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "kindling.yaml",
        "full.yaml",
        "tftp-only.yaml",
        "switch-backups.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    for file in &files {
        let loaded = parse_file(file);
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:?}",
            file.display(),
            loaded.warnings
        );
    }
}

#[test]
fn embedded_default_is_safe_on_any_lan() {
    let loaded = parse(EMBEDDED_DEFAULT, "<embedded default>").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    let tftp = config.tftp.expect("TFTP on");
    assert_eq!(tftp.root, PathBuf::from("./tftpboot"));
    assert_eq!(tftp.listen, vec![addr("0.0.0.0:69"), addr("[::]:69")]);
    assert!(!tftp.write.enabled, "read-only");
    let dhcp = config.dhcp.expect("DHCP on");
    assert_eq!(dhcp.mode, DhcpMode::Proxy);
    assert!(dhcp.subnets.is_empty() && dhcp.reservations.is_empty() && dhcp.v6.is_none());
    assert!(config.dns.is_none(), "DNS off");
    assert_eq!(config.boot.bios.as_deref(), Some("undionly.kpxe"));
    assert_eq!(config.boot.uefi_x64.as_deref(), Some("ipxe.efi"));
    assert_eq!(config.boot.uefi_arm64.as_deref(), Some("ipxe-arm64.efi"));
    assert_eq!(config.boot.ipxe.as_deref(), Some("boot.ipxe"));
}

#[test]
fn embedded_default_reads_the_filesystem() {
    // Relative to the test's working directory (the crate), where there is no ./tftpboot.
    if Path::new("tftpboot").exists() {
        return;
    }
    let err = embedded_default().unwrap_err();
    assert_eq!(err.origin, "<embedded default>");
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].key, "tftp.root");
    assert!(err.errors[0].line.is_some());
}

#[test]
fn full_example_has_the_contract_values() {
    let c = parse_file(&config_dir().join("examples/full.yaml")).config;
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/kindling"));
    assert_eq!(
        c.log,
        LogConfig {
            format: LogFormat::Text,
            level: "info".into()
        }
    );

    let t = c.tftp.as_ref().unwrap();
    assert_eq!(t.listen, vec![addr("0.0.0.0:69"), addr("[::]:69")]);
    assert_eq!(t.root, PathBuf::from("/srv/tftp"));
    assert_eq!(t.max_sessions, 512);
    assert_eq!(t.queue_timeout, Duration::from_secs(5));
    assert_eq!(
        t.allow_from,
        Some(vec![
            "10.99.0.0/24".parse().unwrap(),
            "fd00:99::/64".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap()
        ])
    );
    assert!(!t.single_port);
    assert_eq!(t.port_range, Some(49152..=65535));
    assert_eq!(t.timeout, Duration::from_secs(1));
    assert_eq!((t.retries, t.max_blksize, t.max_windowsize), (5, 65464, 64));
    assert_eq!(t.cache_size, 256 << 20);
    assert_eq!(
        (t.unconfirmed_per_address, t.unconfirmed_per_prefix),
        (16, 64)
    );
    assert_eq!(
        t.write,
        TftpWriteConfig {
            enabled: false,
            dir: PathBuf::from("uploads"),
            overwrite: OverwritePolicy::Refuse,
            max_size: 256 << 20,
            allow_from: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            read_from: Some(vec!["10.0.0.0/24".parse().unwrap()]),
        }
    );

    assert_eq!(c.boot.bios.as_deref(), Some("undionly.kpxe"));
    assert_eq!(c.boot.ipxe.as_deref(), Some("boot.ipxe"));

    let d = c.dhcp.as_ref().unwrap();
    assert_eq!(d.mode, DhcpMode::Server);
    assert_eq!(d.interfaces, Some(vec!["eth1".to_string()]));
    assert_eq!(d.lease_time, Duration::from_secs(12 * 3600));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        d.subnets,
        vec![DhcpSubnet {
            network: "10.99.0.0/24".parse().unwrap(),
            range: (ip("10.99.0.100"), ip("10.99.0.200")),
            router: Some(ip("10.99.0.1")),
            dns: Some(vec![ip("10.99.0.1")]),
            domain: Some("lab.test".into()),
            lease_time: Some(Duration::from_secs(4 * 3600)),
            known_clients_only: false,
            options: d.subnets[0].options.clone(),
        }]
    );
    let codes: Vec<u8> = d.subnets[0].options.iter().map(|o| o.code).collect();
    assert_eq!(codes, vec![119, 121, 224]);
    assert_eq!(d.subnets[0].options[2].data, b"site-local".to_vec());
    assert!(d.ping_check);
    assert!(!d.other_servers_expected);
    assert_eq!(d.classes[0].vendor_class, "Cisco Systems, Inc. IP Phone");
    assert!(d.reservations[3].ignore && d.reservations[3].ip.is_none());
    assert_eq!(
        d.reservations[2].client_id.as_deref(),
        Some(&[1u8, 0x52, 0x54, 0, 0, 0, 0x12][..])
    );
    assert_eq!(
        d.reservations[0],
        DhcpReservation {
            mac: Some("52:54:00:00:00:10".into()),
            client_id: None,
            uuid: None,
            duid: None,
            ip: Some(ip("10.99.0.10")),
            hostname: Some("node10".into()),
            boot: BootConfig {
                bios: Some("pxelinux.0".into()),
                ..BootConfig::default()
            },
            ignore: false,
            options: Vec::new(),
            labels: Default::default(),
        }
    );
    assert_eq!(d.reservations[1].mac.as_deref(), Some("52:54:00:00:00:11"));
    assert_eq!(d.quiet_ra, QuietRa::Auto);
    assert!(d.quiet_ra_enabled());
    let v6 = d.v6.as_ref().unwrap();
    assert!(v6.router_advertisements);
    assert_eq!(v6.preference, 255);
    assert_eq!(v6.subnets[0].network, "fd00:99::/64".parse().unwrap());
    assert_eq!(
        v6.subnets[0].range,
        (ip("fd00:99::100"), ip("fd00:99::1ff"))
    );

    let n = c.dns.as_ref().unwrap();
    assert_eq!(n.listen, vec![addr("0.0.0.0:53"), addr("[::]:53")]);
    assert_eq!(n.domain, "lab.test");
    assert_eq!(
        n.records[0],
        DnsRecord {
            name: "nas".into(),
            data: DnsRecordData::A("10.99.0.5".parse().unwrap())
        }
    );
    assert_eq!(
        n.records[4].data,
        DnsRecordData::Srv {
            priority: 0,
            weight: 0,
            port: 69,
            target: "nas.lab.test".into()
        }
    );
    assert_eq!(n.upstreams, vec![addr("192.0.2.53:53")]);
    assert_eq!(
        n.allow_recursion_from,
        Some(vec!["10.99.0.0/24".parse().unwrap()])
    );
}

fn assert_round_trip(config: &Config, what: &str) {
    let text = to_yaml(config);
    match parse(&text, what) {
        Ok(again) => assert_eq!(&again.config, config, "{what}:\n{text}"),
        Err(e) => panic!("{what}: to_yaml output does not parse:\n{e}\n{text}"),
    }
}

#[test]
fn to_yaml_round_trips_every_shipped_file_and_the_default() {
    for file in shipped_files() {
        assert_round_trip(&parse_file(&file).config, &file.display().to_string());
    }
    assert_round_trip(
        &parse(EMBEDDED_DEFAULT, "default").unwrap().config,
        "default",
    );
    assert_round_trip(&parse("", "empty").unwrap().config, "empty");
    // Every DHCP key the shipped files do not use (options, classes, client_id, ignore...).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dhcp-keys.yaml");
    assert_round_trip(&parse_file(&fixture).config, "tests/data/dhcp-keys.yaml");
}

#[test]
fn to_yaml_round_trips_unusual_values() {
    let text = r#"
state_dir: "/var/lib/kindling state"
log: { format: json, level: "info,kindling_tftp=debug" }
tftp:
  listen: ["127.0.0.1:0"]
  root: "./root with spaces"
  max_sessions: 1
  queue_timeout: 0s
  allow_from: []
  single_port: true
  port_range: "40000-40010"
  timeout: 1500ms
  retries: 50
  max_blksize: 8
  max_windowsize: 1
  cache_size: 1000
  write: { enabled: true, dir: "./a/b", overwrite: true, max_size: 1, allow_from: ["::1"] }
boot: { ipxe: "https://boot.example/menu.ipxe?x=1#y" }
dhcp:
  mode: proxy
  lease_time: 1m
  subnets:
    - { network: 192.168.0.0/30, range: [192.168.0.1, 192.168.0.2], dns: [] }
  reservations:
    - { mac: "AA-BB-CC-DD-EE-FF", ip: 192.168.0.2, hostname: "true" }
    - { mac: "aa:bb:cc:dd:ee:00", ip: 192.168.0.1, hostname: "42" }
  v6: { subnets: [] }
dns:
  listen: ["[::1]:5353"]
  domain: "no"
  records:
    - { name: "@", txt: "quote \" backslash \\ tab \t newline \n bell \a: # [x]" }
    - { name: "*.wild", cname: "nas.example." }
    - { name: "_x._tcp", srv: { priority: 65535, weight: 1, port: 0, target: "." } }
    - { name: "off", aaaa: "::ffff:1.2.3.4" }
  upstreams: ["2001:db8::53", "192.0.2.1:5353"]
"#;
    let loaded = parse(text, "unusual");
    let config = match loaded {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_round_trip(&config, "unusual");
}
