//! The DHCP keys beyond the contract example: known_clients_only, ping_check, ping_timeout,
//! other_servers, advertise, vendor_classes, options (every scope), classes, and the
//! reservation keys client_id and ignore. Values, exact option bytes, errors with their key
//! and line, warnings, and the print-config round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use kindling_config::*;
use proptest::prelude::*;

fn fixture() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dhcp-keys.yaml"))
        .unwrap()
}

fn dhcp_of(text: &str) -> DhcpConfig {
    match parse(text, "test.yaml") {
        Ok(loaded) => loaded.config.dhcp.expect("dhcp on"),
        Err(e) => panic!("refused:\n{text}\n{e}"),
    }
}

fn errors_of(text: &str) -> ConfigErrors {
    match parse(text, "test.yaml") {
        Ok(loaded) => panic!("accepted:\n{text}\nconfig: {:?}", loaded.config),
        Err(e) => e,
    }
}

/// Exactly one error, at `key` and `line`, whose message contains `needle`.
#[track_caller]
fn one_error(text: &str, key: &str, line: usize, needle: &str) {
    let e = errors_of(text);
    assert_eq!(
        e.errors.len(),
        1,
        "expected one error for:\n{text}\ngot:\n{e}"
    );
    let d = &e.errors[0];
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.key, key, "{e}");
    assert_eq!(d.line, Some(line), "{e}");
    assert!(d.column.is_some(), "{e}");
    assert!(
        d.message.contains(needle),
        "message {:?} lacks {needle:?}",
        d.message
    );
}

#[track_caller]
fn one_warning(text: &str, key: &str, needle: &str) -> Diagnostic {
    let w = match parse(text, "test.yaml") {
        Ok(loaded) => loaded.warnings,
        Err(e) => panic!("refused:\n{text}\n{e}"),
    };
    let found: Vec<&Diagnostic> = w.iter().filter(|d| d.key == key).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one warning on {key} for:\n{text}\ngot: {w:#?}"
    );
    assert!(
        found[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        found[0].message
    );
    found[0].clone()
}

/// Five lines: a server with one subnet.
const BASE: &str = "dhcp:\n  mode: server\n  subnets:\n    - network: 10.99.0.0/24\n      range: [10.99.0.100, 10.99.0.200]\n";

/// `BASE`, then `dhcp.options` on line 6 with `lines` from line 7.
fn with_options(lines: &str) -> String {
    format!("{BASE}  options:\n{lines}")
}

/// The payload of option `code` in `options`.
fn payload(options: &[DhcpOptionValue], code: u8) -> &[u8] {
    &options
        .iter()
        .find(|o| o.code == code)
        .unwrap_or_else(|| panic!("no option {code} in {options:?}"))
        .data
}

fn option_bytes(line: &str, code: u8) -> Vec<u8> {
    let d = dhcp_of(&with_options(line));
    assert_eq!(d.options.len(), 1, "{:?}", d.options);
    payload(&d.options, code).to_vec()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn defaults() {
    let d = dhcp_of("dhcp: {}\n");
    assert!(!d.known_clients_only);
    assert!(d.ping_check);
    assert_eq!(d.ping_timeout, Duration::from_millis(300));
    assert!(!d.other_servers_expected);
    assert_eq!(d.advertise, None);
    assert_eq!(
        d.vendor_classes,
        DhcpVendorClasses {
            pxe: vec!["PXEClient".into()],
            http: vec!["HTTPClient".into()]
        }
    );
    assert!(d.options.is_empty() && d.classes.is_empty());
    let d = dhcp_of(&format!(
        "{BASE}  reservations:\n    - {{ mac: \"52:54:00:00:00:10\", ip: 10.99.0.10 }}\n"
    ));
    let s = &d.subnets[0];
    assert_eq!(
        (s.lease_time, s.known_clients_only, s.options.len()),
        (None, false, 0)
    );
    let r = &d.reservations[0];
    assert_eq!((&r.client_id, r.ignore, r.options.len()), (&None, false, 0));
    // Each vendor_classes list defaults on its own.
    let d = dhcp_of("dhcp:\n  vendor_classes: { http: [] }\n");
    assert_eq!(d.vendor_classes.pxe, vec!["PXEClient".to_string()]);
    assert!(d.vendor_classes.http.is_empty());
}

#[test]
fn the_fixture_decodes_to_exact_values() {
    let loaded = parse(&fixture(), "dhcp-keys.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let d = loaded.config.dhcp.unwrap();
    assert!(d.known_clients_only);
    assert!(d.ping_check);
    assert_eq!(d.ping_timeout, Duration::from_millis(500));
    assert!(d.other_servers_expected);
    assert_eq!(d.advertise, Some(v4("10.99.0.1")));
    assert_eq!(d.vendor_classes.pxe, vec!["PXEClient", "Etherboot"]);
    assert_eq!(d.vendor_classes.http, vec!["HTTPClient"]);

    let codes: Vec<u8> = d.options.iter().map(|o| o.code).collect();
    assert_eq!(
        codes,
        vec![42, 119, 121, 150, 43, 224, 2, 211],
        "file order"
    );
    assert_eq!(payload(&d.options, 42), [10, 99, 0, 1, 10, 99, 0, 2]);
    assert_eq!(
        payload(&d.options, 119),
        b"\x03lab\x04test\x00\x07example\x03org\x00"
    );
    assert_eq!(
        payload(&d.options, 121),
        [8, 10, 10, 99, 0, 1, 0, 10, 99, 0, 1]
    );
    assert_eq!(payload(&d.options, 150), [10, 99, 0, 1]);
    assert_eq!(payload(&d.options, 43), [1, 4, 10, 99, 0, 1]);
    assert_eq!(payload(&d.options, 224), b"site-local");
    assert_eq!(payload(&d.options, 2), (-3600i32).to_be_bytes());
    assert_eq!(payload(&d.options, 211), 3600u32.to_be_bytes());

    let s = &d.subnets[0];
    assert_eq!(s.lease_time, Some(Duration::from_secs(3600)));
    assert!(!s.known_clients_only);
    assert_eq!(
        s.options,
        vec![
            DhcpOptionValue {
                code: 26,
                data: 9000u16.to_be_bytes().to_vec()
            },
            DhcpOptionValue {
                code: 42,
                data: vec![10, 99, 0, 3]
            },
        ]
    );

    assert_eq!(
        d.classes,
        vec![
            DhcpClass {
                name: "arm64".into(),
                vendor_class: "PXEClient:Arch:00011".into(),
                options: vec![DhcpOptionValue {
                    code: 67,
                    data: b"ipxe-arm64.efi".to_vec()
                }],
            },
            DhcpClass {
                name: "cisco-phones".into(),
                vendor_class: "Cisco".into(),
                options: vec![DhcpOptionValue {
                    code: 150,
                    data: vec![10, 99, 0, 5]
                }],
            },
        ]
    );

    let r = &d.reservations;
    assert_eq!(r.len(), 5);
    assert_eq!(
        r[0].client_id.as_deref(),
        Some(&[1u8, 0x52, 0x54, 0, 0, 0, 0x10][..])
    );
    assert_eq!(
        r[0].options,
        vec![
            DhcpOptionValue {
                code: 12,
                data: b"node10".to_vec()
            },
            DhcpOptionValue {
                code: 250,
                data: vec![0, 0, 0, 7]
            },
        ]
    );
    assert!(!r[0].ignore);
    assert_eq!(r[1].client_id.as_deref(), Some(&b"node11"[..]));
    assert_eq!(r[1].ip, Some(IpAddr::V4(v4("10.99.0.11"))));
    assert!(r[2].ignore);
    assert_eq!(r[2].ip, None);
    assert_eq!(r[2].mac.as_deref(), Some("52:54:00:00:00:12"));
    assert_eq!(r[3].mac, None);
    assert_eq!(
        r[3].uuid,
        Some([
            0x4c, 0x4c, 0x45, 0x44, 0x00, 0x42, 0x35, 0x10, 0x80, 0x52, 0xb3, 0xc0, 0x4f, 0x59,
            0x52, 0x31
        ])
    );
    assert_eq!(
        r[4].duid.as_deref(),
        Some(
            &[
                0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 0x52, 0x54, 0, 0, 0, 0x14
            ][..]
        )
    );
    assert_eq!(r[4].client_id.as_deref(), Some(&b"node14"[..]));
}

#[test]
fn the_fixture_round_trips_through_print_config() {
    let config = parse(&fixture(), "dhcp-keys.yaml").unwrap().config;
    let text = to_yaml(&config);
    match parse(&text, "printed") {
        Ok(again) => assert_eq!(again.config, config, "{text}"),
        Err(e) => panic!("print-config output does not parse:\n{e}\n{text}"),
    }
    // Options are printed by code, in hex, named in a comment.
    assert!(
        text.contains("42: { ips: [10.99.0.1, 10.99.0.2] }  # ntp-servers"),
        "{text}"
    );
    assert!(
        text.contains("43: { hex: \"01:04:0a:63:00:01\" }  # vendor-encapsulated-options"),
        "{text}"
    );
    assert!(
        text.contains("67: { text: ipxe-arm64.efi }  # bootfile-name"),
        "{text}"
    );
    assert!(text.contains("224: { hex: "), "{text}");
    assert!(
        text.contains("client_id: { hex: \"01:52:54:00:00:00:10\" }"),
        "{text}"
    );
    assert!(text.contains("client_id: node11"), "{text}");
    assert!(text.contains("other_servers: expected"), "{text}");
    assert!(text.contains("ignore: true"), "{text}");
}

#[test]
fn unusual_values_round_trip_through_print_config() {
    let text = r#"
dhcp:
  mode: proxy
  ping_check: false
  ping_timeout: 10ms
  vendor_classes: { pxe: ["PXE Client: \"odd\" #1"], http: [] }
  options:
    1: { hex: "" }
    254: { hex: "ff" }
    hostname: "true"
  subnets:
    - { network: 192.168.0.0/30, range: [192.168.0.1, 192.168.0.2], known_clients_only: true, lease_time: 365d }
  classes:
    - { name: "no", vendor_class: "0x1f", options: {} }
  reservations:
    - { mac: "aa:bb:cc:dd:ee:ff", client_id: { hex: "00" }, ignore: true, ip: 192.168.0.2 }
    - { mac: "aa:bb:cc:dd:ee:00", client_id: "a b: #c", ip: 192.168.0.1, options: { 200: { u8: 0 } } }
"#;
    let config = match parse(text, "unusual") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    let d = config.dhcp.as_ref().unwrap();
    assert!(d.vendor_classes.http.is_empty());
    assert_eq!(payload(&d.options, 1), b"");
    let printed = to_yaml(&config);
    match parse(&printed, "printed") {
        Ok(again) => assert_eq!(again.config, config, "{printed}"),
        Err(e) => panic!("print-config output does not parse:\n{e}\n{printed}"),
    }
}

#[test]
fn option_encodings() {
    assert_eq!(
        option_bytes("    subnet-mask: 255.255.255.0\n", 1),
        [255, 255, 255, 0]
    );
    assert_eq!(
        option_bytes("    time-offset: 7200\n", 2),
        7200i32.to_be_bytes()
    );
    assert_eq!(option_bytes("    router: 10.99.0.1\n", 3), [10, 99, 0, 1]);
    assert_eq!(option_bytes("    hostname: \"0755\"\n", 12), b"0755");
    assert_eq!(option_bytes("    ip-forwarding: false\n", 19), [0]);
    assert_eq!(option_bytes("    ip-forwarding: true\n", 19), [1]);
    assert_eq!(option_bytes("    default-ttl: 64\n", 23), [64]);
    assert_eq!(option_bytes("    interface-mtu: 1500\n", 26), [5, 220]);
    assert_eq!(
        option_bytes(
            "    static-routes: [\"192.168.5.0 via 10.99.0.1\", \"172.16.0.0 via 10.99.0.2\"]\n",
            33
        ),
        [192, 168, 5, 0, 10, 99, 0, 1, 172, 16, 0, 0, 10, 99, 0, 2]
    );
    assert_eq!(
        option_bytes("    arp-cache-timeout: 2m\n", 35),
        120u32.to_be_bytes()
    );
    assert_eq!(option_bytes("    netbios-node-type: 8\n", 46), [8]);
    assert_eq!(option_bytes("    user-class: 69505845\n", 77), b"iPXE");
    assert_eq!(
        option_bytes("    domain-search: [lab.test, example.org]\n", 119),
        b"\x03lab\x04test\x00\x07example\x03org\x00"
    );
    // RFC 3442's own examples, and a host route.
    assert_eq!(
        option_bytes(
            "    classless-static-routes: [\"10.0.0.0/8 via 10.99.0.1\"]\n",
            121
        ),
        [8, 10, 10, 99, 0, 1]
    );
    assert_eq!(
        option_bytes(
            "    classless-static-routes: [\"0.0.0.0/0 via 10.99.0.1\", \"10.17.0.0/16 via 10.99.0.2\", \"10.27.129.0/24 via 10.99.0.3\", \"192.0.2.7 via 10.99.0.4\"]\n",
            121
        ),
        [
            0, 10, 99, 0, 1, //
            16, 10, 17, 10, 99, 0, 2, //
            24, 10, 27, 129, 10, 99, 0, 3, //
            32, 192, 0, 2, 7, 10, 99, 0, 4
        ]
    );
    assert_eq!(
        option_bytes("    tftp-server-address: [10.99.0.1, 10.99.0.2]\n", 150),
        [10, 99, 0, 1, 10, 99, 0, 2]
    );
    assert_eq!(
        option_bytes(
            "    vendor-encapsulated-options: \"01:04:0a:63:00:01\"\n",
            43
        ),
        [1, 4, 10, 99, 0, 1]
    );
    assert_eq!(
        option_bytes("    43: { hex: \"01040A630001\" }\n", 43),
        [1, 4, 10, 99, 0, 1]
    );
    assert_eq!(
        option_bytes("    reboot-time: 300\n", 211),
        300u32.to_be_bytes()
    );
    assert_eq!(
        option_bytes("    wpad: \"http://wpad/wpad.dat\"\n", 252),
        b"http://wpad/wpad.dat"
    );
    // Unknown codes with an explicit type, and explicit types on known codes.
    assert_eq!(option_bytes("    224: { text: hello }\n", 224), b"hello");
    assert_eq!(
        option_bytes("    224: { ips: [10.0.0.1, 10.0.0.2] }\n", 224),
        [10, 0, 0, 1, 10, 0, 0, 2]
    );
    assert_eq!(option_bytes("    224: { u8: 255 }\n", 224), [255]);
    assert_eq!(option_bytes("    224: { u16: 258 }\n", 224), [1, 2]);
    assert_eq!(
        option_bytes("    224: { u32: 4294967295 }\n", 224),
        [255; 4]
    );
    assert_eq!(option_bytes("    224: { hex: 0a0b }\n", 224), [10, 11]);
    assert_eq!(
        option_bytes("    42: { hex: \"0a:63:00:01\" }\n", 42),
        [10, 99, 0, 1]
    );
    assert_eq!(
        option_bytes("    \"6\": [10.99.0.53]\n", 6),
        [10, 99, 0, 53]
    );
    // A 255-byte payload is the most an option holds.
    let d = dhcp_of(&with_options(&format!(
        "    224: {{ text: {} }}\n",
        "x".repeat(255)
    )));
    assert_eq!(d.options[0].data.len(), 255);
}

#[test]
fn option_errors() {
    let o = |lines: &str| with_options(lines);
    one_error(
        &o("    ntp-server: [10.99.0.1]\n"),
        "dhcp.options.ntp-server",
        7,
        "unknown option \"ntp-server\" (did you mean \"ntp-servers\"?",
    );
    one_error(
        &o("    domain-name-servers: [10.99.0.1]\n"),
        "dhcp.options.domain-name-servers",
        7,
        "did you mean \"dns-servers\"",
    );
    let e = errors_of(&o("    frobnicate: 1\n"));
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(
        e.errors[0]
            .message
            .contains("unknown option \"frobnicate\"")
            && !e.errors[0].message.contains("did you mean"),
        "{e}"
    );
    one_error(&o("    0: { u8: 1 }\n"), "dhcp.options.0", 7, "padding");
    one_error(
        &o("    255: { u8: 1 }\n"),
        "dhcp.options.255",
        7,
        "end of the options",
    );
    one_error(
        &o("    256: { u8: 1 }\n"),
        "dhcp.options.256",
        7,
        "codes are 1 to 254",
    );
    one_error(
        &o("    51: { u32: 3600 }\n"),
        "dhcp.options.51",
        7,
        "option 51 (lease-time) is set by the server itself and cannot be configured: set dhcp.lease_time",
    );
    one_error(
        &o("    lease-time: 1h\n"),
        "dhcp.options.lease-time",
        7,
        "set by the server itself",
    );
    for code in [50, 52, 53, 54, 55, 57, 58, 59, 61, 82] {
        one_error(
            &o(&format!("    {code}: {{ hex: \"01\" }}\n")),
            &format!("dhcp.options.{code}"),
            7,
            &format!("option {code} ("),
        );
    }
    one_error(
        &o("    ntp-servers: [10.99.0.1]\n    42: { ips: [10.99.0.2] }\n"),
        "dhcp.options.42",
        8,
        "option 42 (ntp-servers) is set twice (first as \"ntp-servers\" at line 7)",
    );
    one_error(
        &o("    224: hello\n"),
        "dhcp.options.224",
        7,
        "must say its type",
    );
    one_error(
        &o(&format!("    224: {{ text: {} }}\n", "x".repeat(256))),
        "dhcp.options.224",
        7,
        "encodes to 256 bytes; an option holds at most 255",
    );
    let names: Vec<String> = (0..20).map(|i| format!("host{i}.example.org")).collect();
    one_error(
        &o(&format!("    domain-search: [{}]\n", names.join(", "))),
        "dhcp.options.domain-search",
        7,
        "at most 255",
    );
    one_error(
        &o("    224: { hex: \"01\", text: a }\n"),
        "dhcp.options.224",
        7,
        "one form, not several",
    );
    one_error(
        &o("    224: {}\n"),
        "dhcp.options.224",
        7,
        "one explicit form",
    );
    one_error(
        &o("    224: { u8: 256 }\n"),
        "dhcp.options.224.u8",
        7,
        "between 0 and 255",
    );
    one_error(
        &o("    224: { u16: -1 }\n"),
        "dhcp.options.224.u16",
        7,
        "between 0 and 65535",
    );
    one_error(
        &o("    224: { u32: \"5\" }\n"),
        "dhcp.options.224.u32",
        7,
        "without quotes",
    );
    one_error(
        &o("    224: { i8: 5 }\n"),
        "dhcp.options.224.i8",
        7,
        "unknown key \"i8\"",
    );
    one_error(
        &o("    224: { hex: \"0g\" }\n"),
        "dhcp.options.224.hex",
        7,
        "expected hex bytes",
    );
    one_error(
        &o("    224: { hex: \"1:2\" }\n"),
        "dhcp.options.224.hex",
        7,
        "expected hex bytes",
    );
    one_error(
        &o("    224: { ips: [] }\n"),
        "dhcp.options.224.ips",
        7,
        "at least one",
    );
    one_error(
        &o("    router: [10.99.0.1, \"fd00::1\"]\n"),
        "dhcp.options.router[1]",
        7,
        "not an IPv4 address",
    );
    one_error(
        &o("    router: []\n"),
        "dhcp.options.router",
        7,
        "at least one",
    );
    one_error(
        &o("    subnet-mask: [255.0.0.0, 255.0.0.0]\n"),
        "dhcp.options.subnet-mask",
        7,
        "expected a string",
    );
    one_error(
        &o("    ntp-servers:\n"),
        "dhcp.options.ntp-servers",
        7,
        "has no value",
    );
    one_error(
        &o("    classless-static-routes: [\"10.0.0.0/8 10.99.0.1\"]\n"),
        "dhcp.options.classless-static-routes[0]",
        7,
        "expected a route such as \"10.0.0.0/8 via 10.99.0.1\"",
    );
    one_error(
        &o("    classless-static-routes: [\"10.0.0.0/33 via 10.99.0.1\"]\n"),
        "dhcp.options.classless-static-routes[0]",
        7,
        "not an IPv4 network",
    );
    one_error(
        &o("    classless-static-routes: [\"10.0.0.0/8 via gw\"]\n"),
        "dhcp.options.classless-static-routes[0]",
        7,
        "\"gw\" is not an IPv4 address",
    );
    one_error(
        &o("    static-routes: [\"0.0.0.0 via 10.99.0.1\"]\n"),
        "dhcp.options.static-routes[0]",
        7,
        "default route",
    );
    one_error(
        &o("    static-routes: [\"10.0.0.0/8 via 10.99.0.1\"]\n"),
        "dhcp.options.static-routes[0]",
        7,
        "classless-static-routes",
    );
    one_error(
        &o("    domain-search: [lab.test, \"bad..name\"]\n"),
        "dhcp.options.domain-search[1]",
        7,
        "not a valid DNS name",
    );
    one_error(
        &o(&format!("    domain-search: [{}.test]\n", "a".repeat(64))),
        "dhcp.options.domain-search[0]",
        7,
        "longer than 63",
    );
    one_error(
        &o("    interface-mtu: 60\n"),
        "dhcp.options.interface-mtu",
        7,
        "between 68 and 65535",
    );
    one_error(
        &o("    default-ttl: 0\n"),
        "dhcp.options.default-ttl",
        7,
        "between 1 and 255",
    );
    one_error(
        &o("    netbios-node-type: 3\n"),
        "dhcp.options.netbios-node-type",
        7,
        "one of 1, 2, 4, 8",
    );
    one_error(
        &o("    ip-forwarding: yes\n"),
        "dhcp.options.ip-forwarding",
        7,
        "true or false",
    );
    one_error(
        &o("    time-offset: 2147483648\n"),
        "dhcp.options.time-offset",
        7,
        "between -2147483648",
    );
    one_error(
        &o("    time-offset: 1h\n"),
        "dhcp.options.time-offset",
        7,
        "whole number",
    );
    one_error(
        &o("    reboot-time: 1500ms\n"),
        "dhcp.options.reboot-time",
        7,
        "whole seconds",
    );
    one_error(
        &o("    reboot-time: 50000d\n"),
        "dhcp.options.reboot-time",
        7,
        "must be between",
    );
    one_error(
        &o("    hostname: \"\"\n"),
        "dhcp.options.hostname",
        7,
        "must not be empty",
    );
    one_error(
        &o("    vendor-encapsulated-options: hello\n"),
        "dhcp.options.vendor-encapsulated-options",
        7,
        "expected hex bytes",
    );
    one_error(
        &format!("{BASE}  options: [1, 2]\n"),
        "dhcp.options",
        6,
        "expected a mapping of option names or codes",
    );
    // Every scope reports under its own key.
    one_error(
        &format!("{BASE}      options: {{ router: [\"x\"] }}\n"),
        "dhcp.subnets[0].options.router[0]",
        6,
        "expected an IP address",
    );
    one_error(
        &format!("{BASE}  classes:\n    - {{ name: a, vendor_class: b, options: {{ 224: 1 }} }}\n"),
        "dhcp.classes[0].options.224",
        7,
        "must say its type",
    );
    one_error(
        &format!(
            "{BASE}  reservations:\n    - {{ mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, options: {{ ntp: [] }} }}\n"
        ),
        "dhcp.reservations[0].options.ntp",
        7,
        "unknown option",
    );
}

#[test]
fn scalar_key_errors() {
    one_error(
        "dhcp:\n  known_clients_only: \"yes\"\n",
        "dhcp.known_clients_only",
        2,
        "true or false",
    );
    one_error(
        "dhcp:\n  ping_check: 1\n",
        "dhcp.ping_check",
        2,
        "true or false",
    );
    one_error(
        "dhcp:\n  ping_timeout: 5ms\n",
        "dhcp.ping_timeout",
        2,
        "between 10ms and 5s",
    );
    one_error(
        "dhcp:\n  ping_timeout: 6s\n",
        "dhcp.ping_timeout",
        2,
        "between 10ms and 5s",
    );
    one_error(
        "dhcp:\n  other_servers: allow\n",
        "dhcp.other_servers",
        2,
        "expected refuse or expected",
    );
    one_error(
        "dhcp:\n  advertise: \"fd00::1\"\n",
        "dhcp.advertise",
        2,
        "not an IPv4 address",
    );
    one_error(
        "dhcp:\n  advertise: 0.0.0.0\n",
        "dhcp.advertise",
        2,
        "not an address clients can",
    );
    one_error(
        "dhcp:\n  advertise: tftp.lab\n",
        "dhcp.advertise",
        2,
        "expected an IP address",
    );
    one_error(
        "dhcp:\n  vendor_classes: { pxe: [\"\"] }\n",
        "dhcp.vendor_classes.pxe[0]",
        2,
        "must not be empty",
    );
    one_error(
        "dhcp:\n  vendor_classes:\n    http: [A, A]\n",
        "dhcp.vendor_classes.http[1]",
        3,
        "listed twice",
    );
    one_error(
        "dhcp:\n  vendor_classes: { ftp: [x] }\n",
        "dhcp.vendor_classes.ftp",
        2,
        "unknown key",
    );
    one_error(
        "dhcp:\n  vendor_classes: [PXEClient]\n",
        "dhcp.vendor_classes",
        2,
        "must be a mapping",
    );
    one_error(
        &format!("{BASE}      lease_time: 30s\n"),
        "dhcp.subnets[0].lease_time",
        6,
        "between 1m and 365d",
    );
    one_error(
        &format!("{BASE}      known_clients_only: on\n"),
        "dhcp.subnets[0].known_clients_only",
        6,
        "true or false",
    );
    one_error(
        "dhcp:\n  v6:\n    subnets:\n      - { network: \"fd00::/64\", range: [\"fd00::1\", \"fd00::2\"], options: {} }\n",
        "dhcp.v6.subnets[0].options",
        4,
        "unknown key",
    );
    let d = dhcp_of(
        "dhcp:\n  known_clients_only: true\n  other_servers: refuse\n  vendor_classes: { pxe: PXEClient:Arch }\n",
    );
    assert!(d.known_clients_only && !d.other_servers_expected);
    assert_eq!(d.vendor_classes.pxe, vec!["PXEClient:Arch"]);
}

#[test]
fn class_errors() {
    let c = |lines: &str| format!("{BASE}  classes:\n{lines}");
    one_error(
        &c("    - { vendor_class: PXEClient }\n"),
        "dhcp.classes[0].name",
        7,
        "missing",
    );
    one_error(
        &c("    - { name: \" \", vendor_class: PXEClient }\n"),
        "dhcp.classes[0].name",
        7,
        "must not be empty",
    );
    one_error(
        &c(
            "    - { name: a, vendor_class: PXEClient }\n    - { name: a, vendor_class: HTTPClient }\n",
        ),
        "dhcp.classes[1].name",
        8,
        "\"a\" is used twice",
    );
    one_error(
        &c("    - { name: a }\n"),
        "dhcp.classes[0].vendor_class",
        7,
        "missing",
    );
    one_error(
        &c("    - { name: a, vendor_class: \"\" }\n"),
        "dhcp.classes[0].vendor_class",
        7,
        "must not be empty",
    );
    one_error(
        &c(&format!(
            "    - {{ name: a, vendor_class: {} }}\n",
            "v".repeat(256)
        )),
        "dhcp.classes[0].vendor_class",
        7,
        "longer than 255",
    );
    one_error(
        &c("    - { name: a, vendor_class: b, match: c }\n"),
        "dhcp.classes[0].match",
        7,
        "unknown key",
    );
    one_error(
        &format!("{BASE}  classes: {{ name: a }}\n"),
        "dhcp.classes",
        6,
        "expected a list",
    );
}

#[test]
fn reservation_keys() {
    let r = |lines: &str| format!("{BASE}  reservations:\n{lines}");
    // Without an address a reservation still names a known client, kept with its hostname.
    let d = dhcp_of(&r("    - { mac: \"52:54:00:00:00:10\", hostname: n10 }\n"));
    assert_eq!(d.reservations.len(), 1);
    assert!(!d.reservations[0].ignore && d.reservations[0].ip.is_none());
    assert_eq!(d.reservations[0].hostname.as_deref(), Some("n10"));
    let d = dhcp_of(&r("    - { mac: \"52:54:00:00:00:10\", ignore: true }\n"));
    assert!(d.reservations[0].ignore && d.reservations[0].ip.is_none());
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ignore: 1 }\n"),
        "dhcp.reservations[0].ignore",
        7,
        "true or false",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, client_id: { hex: zz } }\n"),
        "dhcp.reservations[0].client_id.hex",
        7,
        "expected hex bytes",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, client_id: \"\" }\n"),
        "dhcp.reservations[0].client_id",
        7,
        "1 to 255 bytes",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, client_id: {} }\n"),
        "dhcp.reservations[0].client_id",
        7,
        "expected { hex:",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, client_id: { text: a } }\n"),
        "dhcp.reservations[0].client_id.text",
        7,
        "unknown key",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, client_id: true }\n"),
        "dhcp.reservations[0].client_id",
        7,
        "boolean",
    );
    one_error(
        &r(
            "    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, client_id: { hex: \"01:aa\" } }\n    - { mac: \"52:54:00:00:00:11\", ip: 10.99.0.11, client_id: { hex: 01AA } }\n",
        ),
        "dhcp.reservations[1].client_id",
        8,
        "already in an earlier reservation",
    );
    // An ignored reservation's other keys are never used: one warning per key.
    let text = r(
        "    - mac: \"52:54:00:00:00:10\"\n      ignore: true\n      ip: 10.99.0.10\n      hostname: n10\n      boot: { bios: x.kpxe }\n      options: { hostname: n10 }\n",
    );
    for (key, line) in [("ip", 9), ("hostname", 10), ("boot", 11), ("options", 12)] {
        let w = one_warning(
            &text,
            &format!("dhcp.reservations[0].{key}"),
            "ignore: true",
        );
        assert_eq!(w.line, Some(line), "{w}");
    }
    // client_id alone does not draw a warning.
    let w = parse(
        &r("    - { mac: \"52:54:00:00:00:10\", ignore: true, client_id: x }\n"),
        "t",
    )
    .unwrap()
    .warnings;
    assert!(
        w.iter().all(|d| !d.key.starts_with("dhcp.reservations")),
        "{w:?}"
    );
}

#[test]
fn warnings() {
    one_warning(
        "dhcp:\n  ping_check: false\n  ping_timeout: 1s\n",
        "dhcp.ping_timeout",
        "no effect",
    );
    one_warning(
        "dhcp:\n  vendor_classes: { pxe: [] }\n",
        "dhcp.vendor_classes.pxe",
        "no client is taken for a PXE client",
    );
    let w = one_warning(
        &format!("{BASE}      router: 10.99.0.1\n      options: {{ router: [10.99.0.2] }}\n"),
        "dhcp.subnets[0].options",
        "option 3 (router) and the subnet's router key",
    );
    assert_eq!(w.line, Some(7));
    one_warning(
        &format!("{BASE}      dns: [10.99.0.1]\n      options: {{ 6: {{ ips: [10.99.0.2] }} }}\n"),
        "dhcp.subnets[0].options",
        "option 6 (dns-servers)",
    );
    let w = one_warning(
        &with_options("    classless-static-routes: [\"10.1.2.3/8 via 10.99.0.1\"]\n"),
        "dhcp.options.classless-static-routes[0]",
        "it means 10.0.0.0/8",
    );
    assert_eq!(w.line, Some(7));
    assert_eq!(
        option_bytes(
            "    classless-static-routes: [\"10.1.2.3/8 via 10.99.0.1\"]\n",
            121
        ),
        [8, 10, 10, 99, 0, 1]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "\
dhcp:
  ping_timeout: 1ms
  other_servers: maybe
  options:
    ntp-servers: [x]
    53: { u8: 1 }
    224: text
  classes:
    - { name: a }
  reservations:
    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.300, client_id: { hex: z } }
";
    let e = errors_of(text);
    let got: Vec<(&str, Option<usize>)> =
        e.errors.iter().map(|d| (d.key.as_str(), d.line)).collect();
    assert_eq!(
        got,
        vec![
            ("dhcp.ping_timeout", Some(2)),
            ("dhcp.other_servers", Some(3)),
            ("dhcp.options.ntp-servers[0]", Some(5)),
            ("dhcp.options.53", Some(6)),
            ("dhcp.options.224", Some(7)),
            ("dhcp.classes[0].vendor_class", Some(9)),
            ("dhcp.reservations[0].ip", Some(11)),
            ("dhcp.reservations[0].client_id.hex", Some(11)),
        ],
        "{e}"
    );
}

/// Codes the server sets itself, refused in the config.
const OWNED: &[u8] = &[50, 51, 52, 53, 54, 55, 57, 58, 59, 61, 82];

proptest! {
    /// Any payload under any configurable code, in every scope, prints and reads back the same.
    #[test]
    fn any_option_payload_round_trips(
        options in prop::collection::btree_map(1u8..=254, prop::collection::vec(any::<u8>(), 0..=255), 0..6),
        client_id in prop::collection::vec(any::<u8>(), 1..=255),
        name in "[a-zA-Z0-9]\\PC{0,19}",
    ) {
        let options: Vec<DhcpOptionValue> = options
            .into_iter()
            .filter(|(code, _)| !OWNED.contains(code))
            .map(|(code, data)| DhcpOptionValue { code, data })
            .collect();
        let mut config = parse(&fixture(), "dhcp-keys.yaml").unwrap().config;
        let d = config.dhcp.as_mut().unwrap();
        d.options = options.clone();
        d.subnets[0].options = options.clone();
        d.classes[0].options = options.clone();
        d.classes[0].name = name.clone();
        d.classes[0].vendor_class = name;
        d.reservations[0].options = options;
        d.reservations[0].client_id = Some(client_id);
        let text = to_yaml(&config);
        let again = parse(&text, "printed").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(again.config, config);
    }
}

#[test]
fn quiet_ra_is_auto_by_default_and_runs_only_in_server_mode() {
    // No dhcp.v6 section at all: auto, on in server mode.
    let d = dhcp_of(BASE);
    assert_eq!(d.quiet_ra, QuietRa::Auto);
    assert!(d.quiet_ra_enabled());
    assert!(d.v6.is_none());
    // Proxy mode: auto means off.
    let d = dhcp_of("dhcp:\n  mode: proxy\n");
    assert_eq!(d.quiet_ra, QuietRa::Auto);
    assert!(!d.quiet_ra_enabled());
    // off turns it off in server mode, and quiet_ra alone does not turn DHCPv6 on.
    let d = dhcp_of(&format!("{BASE}  v6:\n    quiet_ra: off\n"));
    assert_eq!(d.quiet_ra, QuietRa::Off);
    assert!(!d.quiet_ra_enabled());
    assert!(d.v6.is_none());
    let d = dhcp_of(&format!("{BASE}  v6:\n    quiet_ra: auto\n"));
    assert!(d.quiet_ra_enabled());
    assert!(d.v6.is_none());
    // Beside other DHCPv6 keys the section is DHCPv6's.
    let d = dhcp_of(&format!(
        "{BASE}  v6:\n    quiet_ra: off\n    router_advertisements: true\n"
    ));
    assert_eq!(d.quiet_ra, QuietRa::Off);
    assert!(d.v6.as_ref().unwrap().router_advertisements);
}

#[test]
fn quiet_ra_takes_only_auto_or_off() {
    one_error(
        &format!("{BASE}  v6:\n    quiet_ra: on\n"),
        "dhcp.v6.quiet_ra",
        7,
        "auto",
    );
    one_error(
        &format!("{BASE}  v6:\n    quiet_ra: true\n"),
        "dhcp.v6.quiet_ra",
        7,
        "off",
    );
}

#[test]
fn quiet_ra_auto_written_in_proxy_mode_is_a_warning() {
    one_warning(
        "dhcp:\n  mode: proxy\n  v6:\n    quiet_ra: auto\n",
        "dhcp.v6.quiet_ra",
        "off in proxy mode",
    );
    let loaded = parse("dhcp:\n  mode: proxy\n  v6:\n    quiet_ra: off\n", "t").unwrap();
    assert!(
        !loaded.warnings.iter().any(|w| w.key.starts_with("dhcp.v6")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn quiet_ra_round_trips_through_print_config() {
    for text in [
        BASE.to_string(),
        format!("{BASE}  v6:\n    quiet_ra: off\n"),
        "dhcp:\n  mode: proxy\n".to_string(),
        "dhcp:\n  mode: proxy\n  v6: { quiet_ra: off }\n".to_string(),
        format!("{BASE}  v6: {{ quiet_ra: off, subnets: [] }}\n"),
    ] {
        let config = parse(&text, "t").unwrap().config;
        let printed = to_yaml(&config);
        let again = parse(&printed, "printed").unwrap();
        assert_eq!(again.config, config, "{text}\n---\n{printed}");
        assert!(
            !again.warnings.iter().any(|w| w.key.starts_with("dhcp.v6")),
            "{printed}: {:?}",
            again.warnings
        );
    }
}

#[test]
fn v6_preference_defaults_to_255_and_takes_0_to_255() {
    let v6 = |text: &str| dhcp_of(&format!("{BASE}  v6:\n{text}")).v6.unwrap();
    assert_eq!(v6("    router_advertisements: false\n").preference, 255);
    assert_eq!(v6("    preference: 0\n").preference, 0);
    assert_eq!(v6("    preference: 128\n").preference, 128);
    one_error(
        &format!("{BASE}  v6:\n    preference: 256\n"),
        "dhcp.v6.preference",
        7,
        "between 0 and 255",
    );
    one_error(
        &format!("{BASE}  v6:\n    preference: high\n"),
        "dhcp.v6.preference",
        7,
        "whole number",
    );
}

#[test]
fn default_router_is_false_by_default_and_warns_without_router_advertisements() {
    let v6 = |text: &str| dhcp_of(&format!("{BASE}  v6:\n{text}")).v6.unwrap();
    assert!(!v6("    router_advertisements: true\n").default_router);
    assert!(v6("    router_advertisements: true\n    default_router: true\n").default_router);
    one_warning(
        &format!("{BASE}  v6:\n    default_router: true\n"),
        "dhcp.v6.default_router",
        "does nothing without dhcp.v6.router_advertisements",
    );
    one_error(
        &format!("{BASE}  v6:\n    router_advertisements: true\n    default_router: yes please\n"),
        "dhcp.v6.default_router",
        8,
        "true or false",
    );
    let loaded = parse(
        &format!("{BASE}  v6:\n    router_advertisements: true\n    default_router: true\n"),
        "t",
    )
    .unwrap();
    assert!(
        !loaded.warnings.iter().any(|w| w.key.starts_with("dhcp.v6")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn router_advertisements_in_proxy_mode_is_a_warning() {
    one_warning(
        "dhcp:\n  mode: proxy\n  v6:\n    router_advertisements: true\n",
        "dhcp.v6.router_advertisements",
        "not sent in proxy mode",
    );
}

#[test]
fn default_router_round_trips_through_print_config() {
    for text in [
        format!("{BASE}  v6:\n    router_advertisements: true\n    default_router: true\n"),
        format!("{BASE}  v6:\n    router_advertisements: true\n"),
    ] {
        let config = parse(&text, "t").unwrap().config;
        let printed = to_yaml(&config);
        assert!(printed.contains("default_router:"), "{printed}");
        let again = parse(&printed, "printed").unwrap();
        assert_eq!(again.config, config, "{text}\n---\n{printed}");
    }
}
