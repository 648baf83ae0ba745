//! Every kind of error and warning, each with the key and line it names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kindling_config::*;

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

fn warnings_of(text: &str) -> Vec<Diagnostic> {
    match parse(text, "test.yaml") {
        Ok(loaded) => loaded.warnings,
        Err(e) => panic!("refused:\n{text}\n{e}"),
    }
}

#[track_caller]
fn one_warning(text: &str, key: &str, needle: &str) -> Diagnostic {
    let w = warnings_of(text);
    let found: Vec<&Diagnostic> = w.iter().filter(|d| d.key == key).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one warning on {key} for:\n{text}\ngot: {w:#?}"
    );
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(
        found[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        found[0].message
    );
    found[0].clone()
}

const TFTP: &str = "tftp:\n  root: /srv/tftp\n";

#[test]
fn three_problems_in_three_sections_are_reported_at_once() {
    let text = "\
tftp:
  root: /srv/tftp
  colour: blue
  write:
    enabled: true
    max_size: lots
    allow_from: [10.0.0.0/8]
dns:
  domain: lab.test
  upstreams: [192.0.2.53]
  allow_recursion_from: [10.0.0.0/33]
";
    let e = errors_of(text);
    let got: Vec<(&str, Option<usize>)> =
        e.errors.iter().map(|d| (d.key.as_str(), d.line)).collect();
    assert_eq!(
        got,
        vec![
            ("tftp.colour", Some(3)),
            ("tftp.write.max_size", Some(6)),
            ("dns.allow_recursion_from[0]", Some(11)),
        ],
        "{e}"
    );
    assert_eq!(e.errors[1].column, Some(15));
    assert_eq!(
        e.errors[1].to_string(),
        "error: line 6, column 15: tftp.write.max_size: expected a size such as \"512\", \"64KiB\", \"256MiB\", \"1GiB\" or \"1GB\", got \"lots\""
    );
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), 3, "{shown}");
    assert!(
        shown
            .lines()
            .all(|l| l.starts_with("test.yaml: error: line ")),
        "{shown}"
    );
}

#[test]
fn unknown_keys() {
    one_error("colour: blue\n", "colour", 1, "unknown key \"colour\"");
    one_error(
        "tftp:\n  root: /x\n  max_sesions: 5\n",
        "tftp.max_sesions",
        3,
        "did you mean \"max_sessions\"",
    );
    one_error(
        "tftp:\n  write:\n    enabled: false\n    mode: 1\n",
        "tftp.write.mode",
        4,
        "unknown key",
    );
    one_error("log: { colour: red }\n", "log.colour", 1, "unknown key");
    one_error(
        "boot: { pxe: x }\n",
        "boot.pxe",
        1,
        "known keys: bios, uefi_x64, uefi_arm64, ipxe",
    );
    one_error(
        "dhcp:\n  mode: proxy\n  v6: { ra: true }\n",
        "dhcp.v6.ra",
        3,
        "unknown key",
    );
    // `router` is IPv4-only: DHCPv6 clients learn their router from RAs.
    one_error(
        "dhcp:\n  v6:\n    subnets:\n      - { network: \"fd00::/64\", range: [\"fd00::1\", \"fd00::2\"], router: \"fd00::1\" }\n",
        "dhcp.v6.subnets[0].router",
        4,
        "unknown key",
    );
    // YAML merge keys are YAML 1.1 only.
    one_error("tftp:\n  <<: {root: /x}\n", "tftp.<<", 2, "unknown key");
}

#[test]
fn duplicate_keys() {
    one_error(
        "tftp:\n  root: /a\n  root: /b\n",
        "tftp.root",
        3,
        "duplicate key \"root\" (first at line 2)",
    );
    one_error("tftp: {}\ntftp: {}\n", "tftp", 2, "duplicate key");
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let e = errors_of("tftp:\n  root: /a\n  listen: [\"0.0.0.0:69\"\nboot: {}\n");
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(e.errors[0].line.is_some_and(|l| l >= 3), "{e}");
    assert!(e.errors[0].message.contains("syntax"), "{e}");
    let e = errors_of("tftp:\n  root: /a\n bad indent: 1\n");
    assert_eq!(e.errors[0].line, Some(3), "{e}");
    let e = errors_of("a: \"unterminated\n");
    assert_eq!(e.errors.len(), 1, "{e}");
    one_error("tftp: {}\n---\ndns: {}\n", "", 2, "only one YAML document");
}

#[test]
fn structure_errors() {
    one_error("- tftp\n", "", 1, "must be a mapping");
    one_error("just text\n", "", 1, "must be a mapping");
    one_error("tftp: [1, 2]\n", "tftp", 1, "must be a mapping");
    one_error(
        "tftp:\n  root: [a, b]\n",
        "tftp.root",
        2,
        "expected a string, got a list",
    );
    one_error(
        "tftp:\n  listen: {a: 1}\n",
        "tftp.listen",
        2,
        "expected a list",
    );
    one_error(
        "dhcp:\n  subnets: 10.0.0.0/24\n",
        "dhcp.subnets",
        2,
        "expected a list",
    );
    one_error(
        "tftp:\n  root: !custom /x\n",
        "",
        2,
        "tag !custom is not supported",
    );
    one_error("? [a, b]\n: 1\n", "", 1, "keys must be plain words");
}

#[test]
fn yaml_1_2_booleans_and_strings() {
    // `no`, `off`, `yes` are text in YAML 1.2, so not booleans...
    one_error(
        "tftp:\n  enabled: no\n",
        "tftp.enabled",
        2,
        "expected true or false, got \"no\"",
    );
    one_error(
        "tftp:\n  single_port: yes\n",
        "tftp.single_port",
        2,
        "expected true or false",
    );
    one_error(
        "tftp:\n  single_port: \"true\"\n",
        "tftp.single_port",
        2,
        "without quotes",
    );
    // ...and a boolean is not text.
    one_error(
        "boot:\n  bios: true\n",
        "boot.bios",
        2,
        "got the boolean true (quote it",
    );
    one_error(
        "dhcp:\n  mode: false\n",
        "dhcp.mode",
        2,
        "expected server, proxy, or off, got the boolean false",
    );
    // Where text is expected, `no`/`off`/`0755` stay text.
    let c = parse("dhcp:\n  mode: off\n", "t").unwrap().config;
    assert!(c.dhcp.is_none());
    let c = parse(
        "dns:\n  domain: no\n  records:\n    - { name: off, txt: 0755 }\n    - { name: y, txt: 1e3 }\n",
        "t",
    )
    .unwrap()
    .config;
    let dns = c.dns.unwrap();
    assert_eq!(dns.domain, "no");
    assert_eq!(
        dns.records[0],
        DnsRecord {
            name: "off".into(),
            data: DnsRecordData::Txt("0755".into())
        }
    );
    assert_eq!(dns.records[1].data, DnsRecordData::Txt("1e3".into()));
    // Quoted or tagged booleans are text too.
    let c = parse("boot:\n  bios: \"true\"\n  ipxe: !!str false\n", "t")
        .unwrap()
        .config;
    assert_eq!(
        (c.boot.bios.as_deref(), c.boot.ipxe.as_deref()),
        (Some("true"), Some("false"))
    );
}

#[test]
fn numbers() {
    one_error(
        "tftp:\n  max_sessions: 0\n",
        "tftp.max_sessions",
        2,
        "between 1 and 1000000",
    );
    one_error(
        "tftp:\n  max_sessions: -4\n",
        "tftp.max_sessions",
        2,
        "between 1 and",
    );
    one_error(
        "tftp:\n  max_sessions: \"12\"\n",
        "tftp.max_sessions",
        2,
        "without quotes",
    );
    one_error(
        "tftp:\n  max_sessions: 0x10\n",
        "tftp.max_sessions",
        2,
        "expected a whole number",
    );
    one_error(
        "tftp:\n  max_sessions: 1.5\n",
        "tftp.max_sessions",
        2,
        "expected a whole number",
    );
    one_error(
        "tftp:\n  retries: 51\n",
        "tftp.retries",
        2,
        "between 1 and 50",
    );
    one_error(
        "tftp:\n  max_blksize: 7\n",
        "tftp.max_blksize",
        2,
        "between 8 and 65464",
    );
    one_error(
        "tftp:\n  max_blksize: 65465\n",
        "tftp.max_blksize",
        2,
        "between 8 and 65464",
    );
    one_error(
        "tftp:\n  max_windowsize: 0\n",
        "tftp.max_windowsize",
        2,
        "between 1 and 65535",
    );
    one_error(
        "tftp:\n  max_windowsize: 99999999999999999999999\n",
        "tftp.max_windowsize",
        2,
        "between 1 and 65535",
    );
    one_error(
        "tftp:\n  unconfirmed_per_address: 0\n",
        "tftp.unconfirmed_per_address",
        2,
        "between 1 and 1000000",
    );
    one_error(
        "tftp:\n  unconfirmed_per_prefix: many\n",
        "tftp.unconfirmed_per_prefix",
        2,
        "",
    );
    one_error(
        "tftp:\n  write:\n    read_from: [10.0.0.0/33]\n",
        "tftp.write.read_from[0]",
        3,
        "",
    );
}

#[test]
fn durations_and_sizes() {
    one_error(
        "tftp:\n  timeout: 500ms\n",
        "tftp.timeout",
        2,
        "between 1s and 255s, got 500ms",
    );
    one_error(
        "tftp:\n  timeout: 256\n",
        "tftp.timeout",
        2,
        "between 1s and 255s",
    );
    one_error(
        "tftp:\n  timeout: 3 parsecs\n",
        "tftp.timeout",
        2,
        "expected a duration",
    );
    one_error(
        "tftp:\n  queue_timeout: -1s\n",
        "tftp.queue_timeout",
        2,
        "expected a duration",
    );
    one_error(
        "tftp:\n  queue_timeout: 2h\n",
        "tftp.queue_timeout",
        2,
        "between 0s and 1h",
    );
    one_error(
        "dhcp:\n  lease_time: 30s\n",
        "dhcp.lease_time",
        2,
        "between 1m and 365d",
    );
    one_error(
        "tftp:\n  cache_size: 1M\n",
        "tftp.cache_size",
        2,
        "ambiguous",
    );
    one_error(
        "tftp:\n  cache_size: 12 parsecs\n",
        "tftp.cache_size",
        2,
        "expected a size",
    );
    one_error(
        "tftp:\n  cache_size: 99999999999TiB\n",
        "tftp.cache_size",
        2,
        "too large",
    );
    one_error(
        "tftp:\n  write:\n    max_size: 0\n",
        "tftp.write.max_size",
        3,
        "between 1 and",
    );
    let c = parse(
        "tftp:\n  timeout: 90\n  cache_size: 1GB\n  queue_timeout: 0\n",
        "t",
    )
    .unwrap()
    .config;
    let t = c.tftp.unwrap();
    assert_eq!(t.timeout, std::time::Duration::from_secs(90));
    assert_eq!(t.cache_size, 1_000_000_000);
    assert_eq!(t.queue_timeout, std::time::Duration::ZERO);
}

#[test]
fn addresses_and_networks() {
    one_error(
        "tftp:\n  listen: [\"0.0.0.0\"]\n",
        "tftp.listen[0]",
        2,
        "expected an address and port",
    );
    one_error(
        "tftp:\n  listen:\n    - 0.0.0.0:69\n    - \"[::]:69\"\n    - 0.0.0.0:69\n",
        "tftp.listen[2]",
        5,
        "listed twice",
    );
    one_error(
        "tftp:\n  listen: []\n",
        "tftp.listen",
        2,
        "at least one address",
    );
    one_error(
        "tftp:\n  allow_from: [10.0.0.0/8, 300.0.0.0/8]\n",
        "tftp.allow_from[1]",
        2,
        "expected a network",
    );
    one_error(
        "dns:\n  domain: a.test\n  allow_recursion_from: [10.0.0.0/33]\n  upstreams: [192.0.2.1]\n",
        "dns.allow_recursion_from[0]",
        3,
        "expected a network",
    );
    one_error(
        "dns:\n  domain: a.test\n  upstreams: [dns.google]\n",
        "dns.upstreams[0]",
        3,
        "expected an address",
    );
    one_error(
        "dns:\n  domain: a.test\n  upstreams: [\"0.0.0.0\"]\n",
        "dns.upstreams[0]",
        3,
        "not an address a query can be sent to",
    );
    one_error(
        "dns:\n  domain: a.test\n  listen: [\"0.0.0.0:69\"]\ntftp:\n  listen: [\"0.0.0.0:69\"]\n",
        "dns.listen",
        3,
        "also in tftp.listen",
    );
    // A bare address means one host; a single scalar is a list of one; port 0 is allowed.
    let c = parse(
        "tftp:\n  listen: \"127.0.0.1:0\"\n  allow_from: 192.0.2.7\ndns:\n  domain: a.test\n  upstreams: [\"2001:db8::1\", \"[2001:db8::2]:5353\"]\n",
        "t",
    )
    .unwrap()
    .config;
    let t = c.tftp.unwrap();
    assert_eq!(t.listen, vec!["127.0.0.1:0".parse().unwrap()]);
    assert_eq!(t.allow_from, Some(vec!["192.0.2.7/32".parse().unwrap()]));
    let d = c.dns.unwrap();
    assert_eq!(
        d.upstreams,
        vec![
            "[2001:db8::1]:53".parse().unwrap(),
            "[2001:db8::2]:5353".parse().unwrap()
        ]
    );
}

#[test]
fn port_range() {
    one_error(
        "tftp:\n  port_range: [5000, 4000]\n",
        "tftp.port_range",
        2,
        "low port 5000 is above the high port 4000",
    );
    one_error(
        "tftp:\n  port_range: \"5000-4000\"\n",
        "tftp.port_range",
        2,
        "above",
    );
    one_error(
        "tftp:\n  port_range: [0, 4000]\n",
        "tftp.port_range[0]",
        2,
        "between 1 and 65535",
    );
    one_error(
        "tftp:\n  port_range: [1, 2, 3]\n",
        "tftp.port_range",
        2,
        "[low, high]",
    );
    one_error(
        "tftp:\n  port_range: 4000-70000\n",
        "tftp.port_range",
        2,
        "[low, high]",
    );
    one_error(
        "tftp:\n  port_range: 4000\n",
        "tftp.port_range",
        2,
        "[low, high]",
    );
    let t = parse("tftp:\n  port_range: 4000-4000\n", "t")
        .unwrap()
        .config
        .tftp
        .unwrap();
    assert_eq!(t.port_range, Some(4000..=4000));
}

#[test]
fn write_section() {
    one_error(
        "tftp:\n  write:\n    dir: /etc\n",
        "tftp.write.dir",
        3,
        "relative, without \"..\"",
    );
    one_error(
        "tftp:\n  write:\n    dir: up/../../etc\n",
        "tftp.write.dir",
        3,
        "without \"..\"",
    );
    one_error(
        "tftp:\n  write:\n    dir: ./\n",
        "tftp.write.dir",
        3,
        "not the root itself",
    );
    one_error(
        "tftp:\n  write:\n    dir: \"\"\n",
        "tftp.write.dir",
        3,
        "must not be empty",
    );
    one_error(
        "tftp:\n  write:\n    overwrite: sometimes\n",
        "tftp.write.overwrite",
        3,
        "versioned",
    );
    one_error(
        "tftp:\n  write:\n    overwrite: no\n",
        "tftp.write.overwrite",
        3,
        "expected false (refuse)",
    );
    let w = |v: &str| {
        parse(&format!("tftp:\n  write:\n    overwrite: {v}\n"), "t")
            .unwrap()
            .config
            .tftp
            .unwrap()
            .write
            .overwrite
    };
    assert_eq!(w("false"), OverwritePolicy::Refuse);
    assert_eq!(w("true"), OverwritePolicy::Replace);
    assert_eq!(w("versioned"), OverwritePolicy::Versioned);
    assert_eq!(w("\"versioned\""), OverwritePolicy::Versioned);
    let t = parse("tftp:\n  write:\n    dir: ./backups/switches/\n", "t")
        .unwrap()
        .config
        .tftp
        .unwrap();
    assert_eq!(t.write.dir, std::path::PathBuf::from("backups/switches"));
}

#[test]
fn boot_values() {
    one_error(
        &format!("{TFTP}boot:\n  bios: \"\"\n"),
        "boot.bios",
        4,
        "must not be empty",
    );
    one_error(
        &format!("{TFTP}boot:\n  ipxe: ftp://host/x\n"),
        "boot.ipxe",
        4,
        "only http:// and https://",
    );
    one_error(
        &format!("{TFTP}boot:\n  ipxe: \"http://\"\n"),
        "boot.ipxe",
        4,
        "not a valid http(s) URL",
    );
    one_error(
        &format!("{TFTP}boot:\n  bios: ../../etc/passwd\n"),
        "boot.bios",
        4,
        "\"..\"",
    );
    let c = parse(
        &format!("{TFTP}boot:\n  ipxe: HTTPS://boot.example/x.ipxe\n  bios: /pxe/undionly.kpxe\n"),
        "t",
    )
    .unwrap()
    .config;
    assert_eq!(c.boot.ipxe.as_deref(), Some("HTTPS://boot.example/x.ipxe"));
}

#[test]
fn log_section() {
    one_error(
        "log:\n  format: xml\n",
        "log.format",
        2,
        "expected text or json",
    );
    one_error(
        "log:\n  level: \"info,=debug\"\n",
        "log.level",
        2,
        "not a log directive",
    );
    one_error(
        "log:\n  level: \"kindling=loud\"\n",
        "log.level",
        2,
        "not a log directive",
    );
    one_error("log:\n  level: \"\"\n", "log.level", 2, "must not be empty");
    let c = parse(
        "log: { format: json, level: \"warn,kindling_tftp=TRACE\" }\n",
        "t",
    )
    .unwrap()
    .config;
    assert_eq!(
        c.log,
        LogConfig {
            format: LogFormat::Json,
            level: "warn,kindling_tftp=TRACE".into()
        }
    );
    one_error("state_dir: \"\"\n", "state_dir", 1, "must not be empty");
}

const SUBNET: &str = "dhcp:\n  mode: server\n  subnets:\n    - network: 10.99.0.0/24\n      range: [10.99.0.100, 10.99.0.200]\n";

#[test]
fn dhcp_mode_and_subnets() {
    one_error(
        "dhcp:\n  mode: relay\n",
        "dhcp.mode",
        2,
        "expected server, proxy, or off, got \"relay\"",
    );
    one_error(
        "dhcp:\n  mode: server\n",
        "dhcp.subnets",
        2,
        "needs at least one subnet",
    );
    one_error(
        "dhcp:\n  mode: server\n  subnets:\n    - { network: 10.99.0.0/24, range: [10.99.0.100, 10.99.1.5] }\n",
        "dhcp.subnets[0].range[1]",
        4,
        "outside the subnet's network 10.99.0.0/24",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { network: 10.99.0.0/24, range: [10.99.0.200, 10.99.0.100] }\n",
        "dhcp.subnets[0].range",
        3,
        "above the last",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { network: 10.99.0.0/24, range: [10.99.0.0, 10.99.0.100] }\n",
        "dhcp.subnets[0].range[0]",
        3,
        "network or broadcast",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { network: 10.99.0.0/24, range: [10.99.0.1, \"fd00::1\"] }\n",
        "dhcp.subnets[0].range[1]",
        3,
        "not an IPv4 address",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { network: 10.99.0.0/24, range: [10.99.0.1] }\n",
        "dhcp.subnets[0].range",
        3,
        "expected [first, last]",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { network: 10.99.0.0/24 }\n",
        "dhcp.subnets[0].range",
        3,
        "missing",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { range: [10.99.0.1, 10.99.0.2] }\n",
        "dhcp.subnets[0].network",
        3,
        "missing",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { network: \"fd00::/64\", range: [\"fd00::1\", \"fd00::2\"] }\n",
        "dhcp.subnets[0].network",
        3,
        "belong under dhcp.v6.subnets",
    );
    one_error(
        "dhcp:\n  v6:\n    subnets:\n      - { network: 10.0.0.0/24, range: [10.0.0.1, 10.0.0.2] }\n",
        "dhcp.v6.subnets[0].network",
        4,
        "belong under dhcp.subnets",
    );
    one_error(
        &format!("{SUBNET}      router: 10.98.0.1\n"),
        "dhcp.subnets[0].router",
        6,
        "not a host address inside the subnet's network 10.99.0.0/24",
    );
    one_error(
        &format!("{SUBNET}      dns: [\"fd00::53\"]\n"),
        "dhcp.subnets[0].dns[0]",
        6,
        "must be IPv4",
    );
    one_error(
        &format!("{SUBNET}      domain: \"lab..test\"\n"),
        "dhcp.subnets[0].domain",
        6,
        "empty label",
    );
    one_error(
        &format!(
            "{SUBNET}    - {{ network: 10.99.0.128/25, range: [10.99.0.130, 10.99.0.140] }}\n"
        ),
        "dhcp.subnets[1].network",
        6,
        "overlaps 10.99.0.0/24",
    );
    one_error(
        "dhcp:\n  subnets:\n    - { network: 10.0.0.0/31, range: [10.0.0.0, 10.0.0.1] }\n",
        "dhcp.subnets[0].network",
        3,
        "/30 or larger",
    );
    one_error("dhcp:\n  interfaces: []\n", "dhcp.interfaces", 2, "omit it");
    one_error(
        "dhcp:\n  interfaces: [eth0, eth0]\n",
        "dhcp.interfaces[1]",
        2,
        "listed twice",
    );
    one_error(
        "dhcp:\n  interfaces: [\"a/b\"]\n",
        "dhcp.interfaces[0]",
        2,
        "not a valid interface name",
    );
}

#[test]
fn dhcp_reservations() {
    let r = |lines: &str| format!("{SUBNET}  reservations:\n{lines}");
    one_error(
        &r("    - { mac: \"52:54:00:00:00\", ip: 10.99.0.10 }\n"),
        "dhcp.reservations[0].mac",
        7,
        "expected a MAC address",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:zz\", ip: 10.99.0.10 }\n"),
        "dhcp.reservations[0].mac",
        7,
        "expected a MAC",
    );
    one_error(
        &r("    - { mac: \"52:54-00:00:00:10\", ip: 10.99.0.10 }\n"),
        "dhcp.reservations[0].mac",
        7,
        "expected a MAC",
    );
    one_error(
        &r(
            "    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10 }\n    - { mac: \"52-54-00-00-00-10\", ip: 10.99.0.11 }\n",
        ),
        "dhcp.reservations[1].mac",
        8,
        "52:54:00:00:00:10 is reserved twice",
    );
    one_error(
        &r(
            "    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10 }\n    - { mac: \"52:54:00:00:00:11\", ip: 10.99.0.10 }\n",
        ),
        "dhcp.reservations[1].ip",
        8,
        "reserved twice",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.98.0.10 }\n"),
        "dhcp.reservations[0].ip",
        7,
        "not inside any subnet",
    );
    one_error(
        &r("    - { ip: 10.99.0.10 }\n"),
        "dhcp.reservations[0]",
        7,
        "needs the machine's mac, client_id, uuid or duid",
    );
    one_error(
        &r("    - { uuid: \"4c4c4544-0042-3510-8052\", ip: 10.99.0.10 }\n"),
        "dhcp.reservations[0].uuid",
        7,
        "expected an SMBIOS UUID",
    );
    one_error(
        &r("    - { uuid: \"4c4c4544-00423-510-8052-b3c04f595231\", ip: 10.99.0.10 }\n"),
        "dhcp.reservations[0].uuid",
        7,
        "expected an SMBIOS UUID",
    );
    one_error(
        &r(
            "    - { uuid: \"4C4C4544-0042-3510-8052-B3C04F595231\" }\n    - { uuid: \"4c4c454400423510 8052b3c04f595231\" }\n",
        ),
        "dhcp.reservations[1].uuid",
        8,
        "expected an SMBIOS UUID",
    );
    // The same UUID, written in capitals and then as 32 digits, is one machine.
    one_error(
        &r(
            "    - { uuid: \"4C4C4544-0042-3510-8052-B3C04F595231\" }\n    - { uuid: \"4c4c4544004235108052b3c04f595231\" }\n",
        ),
        "dhcp.reservations[1].uuid",
        8,
        "is reserved twice",
    );
    one_error(
        &r("    - { duid: \"00:04\" }\n"),
        "dhcp.reservations[0].duid",
        7,
        "3 to 130 bytes",
    );
    one_error(
        &r(
            "    - { duid: \"00:03:00:01:52:54:00:00:00:10\" }\n    - { duid: \"0003000152540000 0010\" }\n",
        ),
        "dhcp.reservations[1].duid",
        8,
        "expected hex bytes",
    );
    one_error(
        &r(
            "    - { duid: \"00:03:00:01:52:54:00:00:00:10\" }\n    - { duid: \"00030001525400000010\" }\n",
        ),
        "dhcp.reservations[1].duid",
        8,
        "already in an earlier reservation",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, hostname: node.ten }\n"),
        "dhcp.reservations[0].hostname",
        7,
        "not a valid host name",
    );
    one_error(
        &r("    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, hostname: -node }\n"),
        "dhcp.reservations[0].hostname",
        7,
        "must not start or end with '-'",
    );
    one_error(
        &r(
            "    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10, hostname: n1 }\n    - { mac: \"52:54:00:00:00:11\", ip: 10.99.0.11, hostname: N1 }\n",
        ),
        "dhcp.reservations[1].hostname",
        8,
        "used twice",
    );
    one_error(
        &r("    - mac: \"52:54:00:00:00:10\"\n      ip: 10.99.0.10\n      boot: { bios: \"\" }\n"),
        "dhcp.reservations[0].boot.bios",
        9,
        "must not be empty",
    );
    // A bad subnet does not also make every reservation "outside any subnet".
    let e = errors_of(
        "dhcp:\n  subnets:\n    - { network: 10.99.0.0/24, range: [10.99.0.1, x] }\n  reservations:\n    - { mac: \"52:54:00:00:00:10\", ip: 10.99.0.10 }\n",
    );
    assert_eq!(e.errors.len(), 1, "{e}");
    let c = parse(
        &r("    - { mac: \"AA-BB-CC-DD-EE-0F\", ip: 10.99.0.10 }\n"),
        "t",
    )
    .unwrap()
    .config;
    assert_eq!(
        c.dhcp.unwrap().reservations[0].mac.as_deref(),
        Some("aa:bb:cc:dd:ee:0f")
    );
}

#[test]
fn dns_section() {
    one_error(
        "dns:\n  listen: [\"0.0.0.0:53\"]\n",
        "dns.domain",
        2,
        "missing",
    );
    one_error(
        "dns:\n  domain: lab_test\n",
        "dns.domain",
        2,
        "letters, digits and '-'",
    );
    one_error(
        &format!("dns:\n  domain: {}.test\n", "a".repeat(64)),
        "dns.domain",
        2,
        "longer than 63",
    );
    let rec = |lines: &str| format!("dns:\n  domain: lab.test\n  records:\n{lines}");
    one_error(
        &rec("    - { name: nas, a: 10.0.0.1, aaaa: \"::1\" }\n"),
        "dns.records[0]",
        4,
        "exactly one of a, aaaa, cname, txt, srv (found: a, aaaa)",
    );
    one_error(
        &rec("    - { name: nas }\n"),
        "dns.records[0]",
        4,
        "found: none",
    );
    one_error(
        &rec("    - { a: 10.0.0.1 }\n"),
        "dns.records[0].name",
        4,
        "missing",
    );
    one_error(
        &rec("    - { name: nas, a: \"::1\" }\n"),
        "dns.records[0].a",
        4,
        "not an IPv4 address",
    );
    one_error(
        &rec("    - { name: nas, aaaa: 10.0.0.1 }\n"),
        "dns.records[0].aaaa",
        4,
        "not an IPv6 address",
    );
    one_error(
        &rec("    - { name: \"bad name\", a: 10.0.0.1 }\n"),
        "dns.records[0].name",
        4,
        "not a valid DNS name",
    );
    one_error(
        &rec("    - { name: www, a: 10.0.0.1 }\n    - { name: WWW, cname: nas }\n"),
        "dns.records[1]",
        5,
        "a CNAME must be the only record",
    );
    one_error(
        &rec("    - { name: nas, a: 10.0.0.1 }\n    - { name: NAS.lab.test., cname: x }\n"),
        "dns.records[1]",
        5,
        "a CNAME must be the only record",
    );
    one_error(
        &rec("    - { name: host.example.org., a: 10.0.0.1 }\n"),
        "dns.records[0].name",
        4,
        "outside dns.domain \"lab.test\"",
    );
    one_error(
        &rec("    - name: _x._tcp\n      srv: { priority: 1, weight: 1, target: nas }\n"),
        "dns.records[0].srv.port",
        5,
        "missing",
    );
    one_error(
        &rec(
            "    - name: _x._tcp\n      srv: { priority: 1, weight: 1, port: 65536, target: nas }\n",
        ),
        "dns.records[0].srv.port",
        5,
        "between 0 and 65535",
    );
    one_error(
        &rec("    - { name: nas, mx: mail }\n"),
        "dns.records[0].mx",
        4,
        "unknown key",
    );
    assert!(
        parse("dns:\n  enabled: false\n", "t")
            .unwrap()
            .config
            .dns
            .is_none()
    );
}

#[test]
fn sections_present_absent_and_disabled() {
    let c = parse("", "t").unwrap().config;
    assert!(c.tftp.is_none() && c.dhcp.is_none() && c.dns.is_none());
    assert_eq!(c.state_dir, std::path::PathBuf::from("/var/lib/kindling"));
    assert_eq!(
        c.log,
        LogConfig {
            format: LogFormat::Text,
            level: "info".into()
        }
    );
    assert!(
        parse("tftp: { enabled: false }\n", "t")
            .unwrap()
            .config
            .tftp
            .is_none()
    );
    // A disabled section is still checked.
    one_error(
        "tftp: { enabled: false, retries: 0 }\n",
        "tftp.retries",
        1,
        "between 1 and 50",
    );
    // A present but empty section is on, with every default.
    let t = parse("tftp:\n", "t").unwrap().config.tftp.unwrap();
    assert_eq!(
        t.listen,
        vec!["0.0.0.0:69".parse().unwrap(), "[::]:69".parse().unwrap()]
    );
    assert_eq!(t.root, std::path::PathBuf::from("/srv/tftp"));
    assert_eq!(
        (t.max_sessions, t.retries, t.max_blksize, t.max_windowsize),
        (512, 5, 65464, 64)
    );
    assert_eq!(
        (t.queue_timeout, t.timeout),
        (
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(1)
        )
    );
    assert_eq!(
        (t.allow_from.as_ref(), t.single_port, t.port_range.as_ref()),
        (None, false, None)
    );
    assert_eq!(t.cache_size, 256 << 20);
    assert_eq!(
        (t.unconfirmed_per_address, t.unconfirmed_per_prefix),
        (16, 64)
    );
    assert_eq!(
        t.write,
        TftpWriteConfig {
            enabled: false,
            dir: "uploads".into(),
            overwrite: OverwritePolicy::Refuse,
            max_size: 256 << 20,
            allow_from: None,
            read_from: None,
        }
    );
    let d = parse("dhcp: {}\n", "t").unwrap().config.dhcp.unwrap();
    assert_eq!(d.mode, DhcpMode::Proxy);
    assert_eq!(d.lease_time, std::time::Duration::from_secs(12 * 3600));
    assert_eq!(d.interfaces, None);
    let n = parse("dns: { domain: lab.test. }\n", "t")
        .unwrap()
        .config
        .dns
        .unwrap();
    assert_eq!(n.domain, "lab.test");
    assert_eq!(
        n.listen,
        vec!["0.0.0.0:53".parse().unwrap(), "[::]:53".parse().unwrap()]
    );
    assert!(n.upstreams.is_empty() && n.records.is_empty() && n.allow_recursion_from.is_none());
}

#[test]
fn warnings() {
    let w = one_warning(
        "tftp:\n  write:\n    enabled: true\n",
        "tftp.write.allow_from",
        "anyone who can reach the server can upload",
    );
    assert_eq!(w.line, Some(3));
    one_warning(
        "tftp:\n  write: { enabled: true, allow_from: [] }\n",
        "tftp.write.allow_from",
        "nobody may upload",
    );
    one_warning(
        "tftp:\n  allow_from: []\n",
        "tftp.allow_from",
        "nobody may read",
    );
    let w = one_warning(
        "boot:\n  bios: undionly.kpxe\n  ipxe: http://x/boot.ipxe\ndhcp: {}\n",
        "boot.bios",
        "TFTP is off",
    );
    assert_eq!(w.line, Some(2));
    one_warning(
        &format!("{TFTP}  single_port: true\n  port_range: [1000, 2000]\n"),
        "tftp.port_range",
        "ignored",
    );
    one_warning(
        "tftp:\n  allow_from: [10.1.2.3/8]\n",
        "tftp.allow_from[0]",
        "it means 10.0.0.0/8",
    );
    one_warning(
        &format!("{SUBNET}      router: 10.99.0.150\n"),
        "dhcp.subnets[0].router",
        "inside the range",
    );
    one_warning(
        "dns:\n  domain: a.test\n  upstreams: [192.0.2.1]\n  allow_recursion_from: [0.0.0.0/0]\n",
        "dns.allow_recursion_from",
        "open resolver",
    );
    one_warning(
        "dns:\n  domain: a.test\n  allow_recursion_from: [10.0.0.0/8]\n",
        "dns.allow_recursion_from",
        "no effect",
    );
    one_warning("dhcp:\n  mode: proxy\n", "boot", "not told what to load");
    one_warning("state_dir: /x\n", "", "nothing to serve");
    // Listening on every address with no allow_from is normal: no warning.
    assert!(warnings_of("tftp:\n  listen: [\"0.0.0.0:69\"]\n").is_empty());
    // Warnings travel with errors too.
    let e = errors_of("tftp:\n  retries: 0\n  write: { enabled: true }\n");
    assert_eq!((e.errors.len(), e.warnings.len()), (1, 1), "{e}");
    assert!(e.to_string().contains("test.yaml: warning: line 3"), "{e}");
}

#[test]
fn diagnostic_display() {
    let d = Diagnostic {
        severity: Severity::Error,
        key: "tftp.write.max_size".into(),
        line: Some(12),
        column: Some(5),
        message: "expected a size such as \"256MiB\", got \"lots\"".into(),
    };
    assert_eq!(
        d.to_string(),
        "error: line 12, column 5: tftp.write.max_size: expected a size such as \"256MiB\", got \"lots\""
    );
    let d = Diagnostic {
        severity: Severity::Warning,
        key: "tftp.root".into(),
        line: None,
        column: None,
        message: "m".into(),
    };
    assert_eq!(d.to_string(), "warning: tftp.root: m");
    let d = Diagnostic {
        severity: Severity::Error,
        key: String::new(),
        line: Some(3),
        column: Some(1),
        message: "m".into(),
    };
    assert_eq!(d.to_string(), "error: line 3, column 1: m");
}

#[test]
fn an_earlier_error_does_not_hide_an_empty_listen() {
    let e = errors_of("tftp:\n  retries: 0\n  listen: []\n");
    let keys: Vec<&str> = e.errors.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, vec!["tftp.retries", "tftp.listen"], "{e}");
}

#[test]
fn no_upload_warning_when_tftp_is_off() {
    let w = warnings_of(
        "tftp:\n  enabled: false\n  write: { enabled: true }\ndns: { domain: a.test }\n",
    );
    assert!(w.is_empty(), "{w:?}");
}
