//! Host names clients ask for (option 12 or 81) become one safe DNS label.

/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// The first label of `raw`, lower-cased, with `_` and spaces turned into `-`, every other
/// character outside `[a-z0-9-]` dropped and `-` trimmed from both ends; `None` if nothing is
/// left. A client cannot smuggle dots, NULs, escapes or control characters into a DNS name.
pub fn sanitize_hostname(raw: &[u8]) -> Option<String> {
    let first = raw
        .split(|&b| b == b'.' || b == 0)
        .next()
        .unwrap_or_default();
    let mut out = String::with_capacity(first.len().min(MAX_LABEL));
    for &b in first {
        let c = match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => b as char,
            b'A'..=b'Z' => b.to_ascii_lowercase() as char,
            b'_' | b' ' => '-',
            _ => continue,
        };
        out.push(c);
    }
    let trimmed = out.trim_matches('-');
    let mut label: String = trimmed.chars().take(MAX_LABEL).collect();
    while label.ends_with('-') {
        label.pop();
    }
    (!label.is_empty()).then_some(label)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reduced_to_one_safe_label() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"node10", Some("node10")),
            (b"Node-10.lab.test", Some("node-10")),
            (b"my_laptop", Some("my-laptop")),
            (b"  spaced  ", Some("spaced")),
            (b"evil\0name", Some("evil")),
            (b"a;rm -rf /", Some("arm--rf")),
            (b"\xff\xfe", None),
            (b"---", None),
            (b"", None),
            (b".hidden", None),
            (b"caf\xc3\xa9", Some("caf")),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize_hostname(raw).as_deref(), *want, "{raw:?}");
        }
    }

    #[test]
    fn a_label_is_at_most_63_characters() {
        let long = vec![b'a'; 300];
        assert_eq!(sanitize_hostname(&long).map(|s| s.len()), Some(63));
        let mut dashed = vec![b'a'; 62];
        dashed.extend(b"-b");
        assert_eq!(
            sanitize_hostname(&dashed).as_deref(),
            Some(&*"a".repeat(62))
        );
    }
}
