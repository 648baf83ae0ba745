//! `profiles` and reservation `labels`: what they decode to, the errors they give, and their
//! round trip through print-config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kindling_config::*;

const PROFILES: &str = r##"dhcp:
  mode: server
  subnets:
    - { network: 10.99.0.0/24, range: [10.99.0.100, 10.99.0.200] }
  reservations:
    - { mac: "52:54:00:00:00:10", hostname: node10, labels: { role: worker, rack: r1 } }
profiles:
  - name: default
    ipxe: |
      #!ipxe
      echo unknown machine {{ mac }}
      exit
  - name: node10
    match: { mac: ["52-54-00-00-00-10", "52:54:00:00:00:11"], uuid: "4C4C4544-0042-3510-8052-B3C04F595231" }
    ipxe: |
      #!ipxe
      kernel http://${next-server}/vmlinuz hostname={{ hostname }}

      boot
  - name: workers
    match:
      labels: { role: worker }
      kind: [ipxe, uefi_x64]
      arch: [7, 9]
      hostname: Node10
    ipxe: "#!ipxe\necho {{ labels.role }}\n"
"##;

#[test]
fn profiles_decode_with_their_selectors_and_template_lines() {
    let config = parse(PROFILES, "p.yaml").unwrap().config;
    let p = &config.profiles;
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].name, "default");
    assert_eq!(p[0].selectors, ProfileMatch::default());
    assert_eq!(p[0].selectors.specificity(), 0);
    assert_eq!(p[0].ipxe, "#!ipxe\necho unknown machine {{ mac }}\nexit\n");
    assert_eq!(
        p[0].ipxe_line, 10,
        "the block starts on the line after `ipxe: |`"
    );
    assert_eq!(
        p[1].selectors.mac,
        vec![
            "52:54:00:00:00:10".to_string(),
            "52:54:00:00:00:11".to_string()
        ]
    );
    assert_eq!(p[1].selectors.uuid.len(), 1);
    assert_eq!(p[1].selectors.specificity(), 2);
    assert!(
        p[1].ipxe.contains("${next-server}"),
        "iPXE variables are text"
    );
    let w = &p[2].selectors;
    assert_eq!(w.labels.get("role").map(String::as_str), Some("worker"));
    assert_eq!(w.kind, vec!["ipxe".to_string(), "uefi_x64".to_string()]);
    assert_eq!(w.arch, vec![7, 9]);
    assert_eq!(w.hostname, vec!["node10".to_string()]);
    assert_eq!(w.specificity(), 4);
    assert_eq!(p[2].ipxe_line, 26);
    let r = &config.dhcp.unwrap().reservations[0];
    assert_eq!(r.labels.len(), 2);
    assert_eq!(r.labels.get("rack").map(String::as_str), Some("r1"));
}

#[test]
fn profiles_and_labels_round_trip_through_print_config() {
    let config = parse(PROFILES, "p.yaml").unwrap().config;
    let text = to_yaml(&config);
    match parse(&text, "printed") {
        Ok(again) => assert_eq!(again.config, config, "{text}"),
        Err(e) => panic!("print-config output does not parse:\n{e}\n{text}"),
    }
    assert!(text.contains("    ipxe: |\n      #!ipxe\n"), "{text}");
}

#[track_caller]
fn one_error(text: &str, key: &str, needle: &str) {
    let e = match parse(text, "p.yaml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].key, key, "{e}");
    assert!(e.errors[0].line.is_some(), "{e}");
    assert!(e.errors[0].message.contains(needle), "{e}");
}

#[test]
fn bad_profiles_are_errors_naming_the_key() {
    let p = |body: &str| format!("profiles:\n{body}");
    one_error(&p("  - { ipxe: x }\n"), "profiles[0]", "needs a name");
    one_error(&p("  - { name: a }\n"), "profiles[0]", "needs its `ipxe`");
    one_error(
        &p("  - { name: a, ipxe: x }\n  - { name: a, ipxe: y, match: { arch: 7 } }\n"),
        "profiles[1].name",
        "used twice",
    );
    one_error(
        &p("  - { name: a, ipxe: x }\n  - { name: b, ipxe: y }\n"),
        "profiles[1]",
        "a second default profile",
    );
    one_error(
        &p("  - { name: a, ipxe: x, match: { mac: \"52:54:00\" } }\n"),
        "profiles[0].match.mac",
        "expected a MAC",
    );
    one_error(
        &p("  - { name: a, ipxe: x, match: { uuid: nope } }\n"),
        "profiles[0].match.uuid",
        "expected an SMBIOS UUID",
    );
    one_error(
        &p("  - { name: a, ipxe: x, match: { kind: pxe } }\n"),
        "profiles[0].match.kind",
        "is not a client kind",
    );
    one_error(
        &p("  - { name: a, ipxe: x, match: { arch: 70000 } }\n"),
        "profiles[0].match.arch",
        "between 0 and 65535",
    );
    one_error(
        &p("  - { name: a, ipxe: x, match: { labels: [role] } }\n"),
        "profiles[0].match.labels",
        "expected a mapping of labels",
    );
    one_error(
        &p("  - { name: a, ipxe: x, match: { colour: red } }\n"),
        "profiles[0].match.colour",
        "unknown key",
    );
    one_error(
        &p("  - { name: a, ipxe: \"\" }\n"),
        "profiles[0].ipxe",
        "expected the iPXE script",
    );
}
