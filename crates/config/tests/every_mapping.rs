//! An unknown key injected into every mapping of the full example is refused, naming the key
//! and the line it was written on (the idea of hickory-dns's test that walks every table).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

const BOGUS: &str = "kindling_bogus";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(path).unwrap()
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// One injection: the modified text, the mapping's path and the line of the bogus key.
struct Case {
    text: String,
    mapping: String,
    line: usize,
}

/// Walks the block structure of the example (two-space indents, `- ` items, one-line flow
/// mappings) and makes one case per block key line and per `{` of a flow mapping.
fn cases(text: &str) -> Vec<Case> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    // (lines indented at least this much belong to it, its path).
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut item_counts: std::collections::HashMap<String, usize> = Default::default();
    for (i, raw) in lines.iter().enumerate() {
        let content = raw.split(" #").next().unwrap_or("");
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = content.len() - trimmed.len();
        let (is_item, body, body_indent) = match trimmed.strip_prefix("- ") {
            Some(rest) => (true, rest, indent + 2),
            None => (false, trimmed, indent),
        };
        while stack
            .last()
            .is_some_and(|(child_indent, _)| *child_indent > indent)
        {
            stack.pop();
        }
        let parent = stack.last().map(|(_, p)| p.clone()).unwrap_or_default();
        let base = if is_item {
            let n = item_counts.entry(parent.clone()).or_insert(0);
            let item = format!("{parent}[{n}]");
            *n += 1;
            stack.push((indent + 1, item.clone()));
            item
        } else {
            parent
        };
        let line_no = i + 1;
        // A block key: inject a sibling before it.
        if let Some((key, _)) = body.split_once(':').filter(|(k, _)| !k.starts_with('{')) {
            let key = key.trim();
            let mut text = String::new();
            for (j, l) in lines.iter().enumerate() {
                if j == i {
                    if is_item {
                        text.push_str(&format!(
                            "{:indent$}- {BOGUS}: 1\n{:body_indent$}{body}\n",
                            "", ""
                        ));
                    } else {
                        text.push_str(&format!("{:indent$}{BOGUS}: 1\n{l}\n", ""));
                    }
                } else {
                    text.push_str(l);
                    text.push('\n');
                }
            }
            out.push(Case {
                text,
                mapping: base.clone(),
                line: line_no,
            });
            stack.push((body_indent + 1, join(&base, key)));
        }
        // Flow mappings on this line: inject after each `{`.
        let mut depth_paths: Vec<String> = Vec::new();
        for (at, c) in raw.char_indices() {
            match c {
                '{' => {
                    let before = raw[..at].trim_end().trim_end_matches(':');
                    let key: String = before
                        .chars()
                        .rev()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    let path = match (depth_paths.last(), raw[..at].trim_end().ends_with(':')) {
                        (Some(outer), true) => join(outer, &key),
                        (None, true) => join(&base, &key),
                        (_, false) => base.clone(),
                    };
                    depth_paths.push(path.clone());
                    let mut text = String::new();
                    for (j, l) in lines.iter().enumerate() {
                        if j == i {
                            text.push_str(&l[..=at]);
                            text.push_str(&format!(" {BOGUS}: 1,"));
                            text.push_str(&l[at + 1..]);
                        } else {
                            text.push_str(l);
                        }
                        text.push('\n');
                    }
                    out.push(Case {
                        text,
                        mapping: path,
                        line: line_no,
                    });
                }
                '}' => {
                    depth_paths.pop();
                }
                _ => {}
            }
        }
    }
    out
}

/// Injects the bogus key into every mapping of `text` and checks each is refused alone, at
/// its line; returns the mappings reached.
fn check_every_mapping(text: &str, origin: &str) -> (BTreeSet<String>, usize) {
    kindling_config::parse(text, origin).unwrap();
    let cases = cases(text);
    let mut covered = BTreeSet::new();
    for case in &cases {
        let expected_key = join(&case.mapping, BOGUS);
        let e = match kindling_config::parse(&case.text, origin) {
            Ok(_) => panic!(
                "accepted an unknown key in {}:\n{}",
                case.mapping, case.text
            ),
            Err(e) => e,
        };
        assert_eq!(
            e.errors.len(),
            1,
            "mapping {}:\n{e}\n{}",
            case.mapping,
            case.text
        );
        let d = &e.errors[0];
        assert_eq!(d.key, expected_key, "{e}");
        assert_eq!(d.line, Some(case.line), "{e}");
        // In an `options` mapping the keys are option names.
        let what = if case.mapping.ends_with(".options") {
            "option"
        } else {
            "key"
        };
        assert!(
            d.message.contains(&format!("unknown {what} \"{BOGUS}\"")),
            "{e}"
        );
        covered.insert(case.mapping.clone());
    }
    (covered, cases.len())
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn an_unknown_key_in_any_mapping_is_an_error_with_its_line() {
    let (covered, cases) =
        check_every_mapping(&read("../../config/examples/full.yaml"), "full.yaml");
    // The walk must reach every mapping of the example, or this test proves little.
    let expected = set(&[
        "",
        "log",
        "tftp",
        "tftp.write",
        "boot",
        "dhcp",
        "dhcp.classes[0]",
        "dhcp.classes[0].options",
        "dhcp.options",
        "dhcp.subnets[0]",
        "dhcp.subnets[0].options",
        "dhcp.subnets[0].options.224",
        "dhcp.reservations[0]",
        "dhcp.reservations[0].boot",
        "dhcp.reservations[1]",
        "dhcp.reservations[1].boot",
        "dhcp.reservations[2]",
        "dhcp.reservations[2].client_id",
        "dhcp.reservations[2].options",
        "dhcp.reservations[3]",
        "dhcp.vendor_classes",
        "dhcp.v6",
        "dhcp.v6.subnets[0]",
        "dns",
        "dns.records[0]",
        "dns.records[1]",
        "dns.records[2]",
        "dns.records[3]",
        "dns.records[4]",
        "dns.records[4].srv",
    ]);
    assert_eq!(covered, expected);
    assert!(cases > 60, "only {cases} cases");
}

#[test]
fn an_unknown_key_in_any_dhcp_mapping_is_an_error_with_its_line() {
    let (covered, cases) =
        check_every_mapping(&read("tests/data/dhcp-keys.yaml"), "dhcp-keys.yaml");
    let expected = set(&[
        "",
        "tftp",
        "boot",
        "dhcp",
        "dhcp.vendor_classes",
        "dhcp.options",
        "dhcp.options.224",
        "dhcp.subnets[0]",
        "dhcp.subnets[0].options",
        "dhcp.subnets[0].options.42",
        "dhcp.classes[0]",
        "dhcp.classes[0].options",
        "dhcp.classes[1]",
        "dhcp.classes[1].options",
        "dhcp.reservations[0]",
        "dhcp.reservations[0].client_id",
        "dhcp.reservations[0].options",
        "dhcp.reservations[0].options.250",
        "dhcp.reservations[1]",
        "dhcp.reservations[2]",
        "dhcp.reservations[3]",
        "dhcp.reservations[4]",
    ]);
    assert_eq!(covered, expected);
    assert!(cases > 40, "only {cases} cases");
}
