//! Human units: durations ("500ms", "30s", "5m", "12h", "7d") and sizes ("512", "64KiB", "1GB").
//!
//! Both are strict: one non-negative integer immediately followed by one unit from a fixed,
//! case-sensitive list. No spaces, signs, fractions or compound forms ("1h30m": write "90m").
//! Ambiguous size units ("1K", "1M", "1G") are rejected: write `KiB` (1024) or `KB` (1000).

use std::time::Duration;

/// Duration units, longest suffix first so that "ms" is tried before "m" and "s".
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Size units with their multipliers.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

const DURATION_HINT: &str = "a duration such as \"500ms\", \"30s\", \"5m\", \"12h\" or \"7d\"";
const SIZE_HINT: &str = "a size such as \"512\", \"64KiB\", \"256MiB\", \"1GiB\" or \"1GB\"";

/// Splits "123abc" into (123, "abc"); `None` when there is no leading digit or the number
/// does not fit in a u64.
fn split_number(s: &str) -> Option<Result<(u64, &str), ()>> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (number, unit) = s.split_at(digits);
    Some(number.parse::<u64>().map(|n| (n, unit)).map_err(|_| ()))
}

/// Parses a duration: an integer followed by `ms`, `s`, `m`, `h` or `d`. A bare integer is
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("expected {DURATION_HINT}, got \"{s}\"");
    let (number, unit) = match split_number(s) {
        None => return Err(bad()),
        Some(Err(())) => return Err(format!("duration \"{s}\" is too large")),
        Some(Ok(split)) => split,
    };
    let millis_per_unit = if unit.is_empty() {
        1_000
    } else {
        match DURATION_UNITS.iter().find(|(name, _)| *name == unit) {
            Some((_, factor)) => *factor,
            None => return Err(bad()),
        }
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| format!("duration \"{s}\" is too large"))?;
    Ok(Duration::from_millis(millis))
}

/// Formats a duration in the largest unit that represents it exactly, so that
/// `parse_duration(&format_duration(d)) == Ok(d)` for every duration with whole milliseconds
/// (the only ones `parse_duration` produces). Sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    for (name, factor) in DURATION_UNITS.iter().rev() {
        let factor = u128::from(*factor);
        if millis.is_multiple_of(factor) {
            return format!("{}{name}", millis / factor);
        }
    }
    format!("{millis}ms")
}

/// Parses a size: an integer (bytes) optionally followed by `B`, `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024) or `KB`/`kB`, `MB`, `GB`, `TB` (powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("expected {SIZE_HINT}, got \"{s}\"");
    let (number, unit) = match split_number(s) {
        None => return Err(bad()),
        Some(Err(())) => return Err(format!("size \"{s}\" is too large")),
        Some(Ok(split)) => split,
    };
    let factor = if unit.is_empty() {
        1
    } else if let Some((_, factor)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) {
        *factor
    } else if matches!(unit, "K" | "k" | "M" | "G" | "T") {
        return Err(format!(
            "size \"{s}\" has an ambiguous unit \"{unit}\": \
             write {unit}iB (powers of 1024) or {}B (powers of 1000)",
            unit.to_ascii_uppercase()
        ));
    } else {
        return Err(bad());
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size \"{s}\" is too large"))
}

/// Formats a size in the largest binary unit that divides it exactly, else the largest
/// decimal unit, else plain bytes. `parse_size(&format_size(n)) == Ok(n)` for every `n`.
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    for name in ["TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "KB"] {
        if let Some((_, factor)) = SIZE_UNITS.iter().find(|(unit, _)| *unit == name)
            && bytes.is_multiple_of(*factor)
        {
            return format!("{}{name}", bytes / factor);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bare_integer_duration_is_seconds() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn durations_rejected() {
        for bad in [
            "",
            "s",
            "-5s",
            "+5s",
            "1.5h",
            "5 s",
            " 5s",
            "5s ",
            "12 parsecs",
            "5sec",
            "5S",
            "5M",
            "1h30m",
            "5w",
            "ms",
            "0x10s",
            "5ms5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn duration_overflow_rejected() {
        let err = parse_duration("99999999999999999999s").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        let err = parse_duration("999999999999999999d").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn duration_error_names_the_input() {
        let err = parse_duration("lots").unwrap_err();
        assert!(err.contains("\"lots\""), "{err}");
        assert!(err.contains("30s"), "{err}");
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("512B").unwrap(), 512);
        assert_eq!(parse_size("64KiB").unwrap(), 64 * 1024);
        assert_eq!(parse_size("64MiB").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2TiB").unwrap(), 2 << 40);
        assert_eq!(parse_size("1KB").unwrap(), 1000);
        assert_eq!(parse_size("1kB").unwrap(), 1000);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("3TB").unwrap(), 3_000_000_000_000);
        assert_eq!(parse_size("0").unwrap(), 0);
    }

    #[test]
    fn ambiguous_size_units_rejected_with_a_hint() {
        for bad in ["1K", "1k", "1M", "1G", "1T"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("ambiguous"), "{bad}: {err}");
            assert!(err.contains("iB"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_rejected() {
        for bad in [
            "",
            "B",
            "-1",
            "-1KiB",
            "+1",
            "1.5GiB",
            "1 GiB",
            "12 parsecs",
            "1kib",
            "1MIB",
            "1mb",
            "1Gb",
            "lots",
            "1EiB",
            "0x100",
            "1KiB2",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn size_overflow_rejected() {
        assert!(parse_size("18446744073709551615").is_ok());
        assert!(
            parse_size("18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("16777216TiB").unwrap_err().contains("too large"));
        assert!(parse_size("20000000TB").unwrap_err().contains("too large"));
    }

    #[test]
    fn formatting_picks_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(12 * 3600)), "12h");
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_size(256 << 20), "256MiB");
        assert_eq!(format_size(1 << 40), "1TiB");
        assert_eq!(format_size(1000), "1KB");
        assert_eq!(format_size(1_500_000), "1500KB");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(513), "513");
        assert_eq!(format_size(0), "0");
    }

    proptest! {
        #[test]
        fn duration_round_trip(millis in any::<u64>()) {
            let d = Duration::from_millis(millis);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn size_round_trip(bytes in any::<u64>()) {
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn size_round_trip_of_unit_multiples(
            n in 0u64..1_000_000,
            shift in prop::sample::select(vec![10u32, 20, 30, 40]),
        ) {
            let bytes = n << shift;
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }
    }
}
