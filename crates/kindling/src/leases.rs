//! `kindling leases`: the DHCP leases in `state_dir`, read from the lease journal without
//! locking it, so it works beside a running daemon.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use kindling_dhcp::lease::{
    self, AbandonReason, Lease6Record, LeaseRecord, LeaseState, RecoveryReport,
};

/// Prints the leases of the config's `state_dir`, as a table or as JSON lines.
pub(crate) fn run(config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let loaded = crate::cli::parse_only(config)?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let state_dir = &loaded.config.state_dir;
    let (snapshot, report) = lease::read_snapshot(state_dir).map_err(|error| {
        anyhow::anyhow!(
            "reading the leases in state_dir {}: {error}",
            state_dir.display()
        )
    })?;
    // v4 leases first, then v6, each family by address (as the snapshot orders them).
    let records: Vec<Row<'_>> = snapshot
        .v4
        .iter()
        .map(Row::V4)
        .chain(snapshot.v6.iter().map(Row::V6))
        .collect();
    if let Some(warning) = damage_warning(&report, records.len()) {
        eprintln!("kindling: warning: {warning}");
    }
    let now = SystemTime::now();
    if records.is_empty() {
        let journal = state_dir.join(lease::JOURNAL_FILE);
        let why = if journal.exists() {
            String::new()
        } else {
            format!(": no lease journal ({}) yet", journal.display())
        };
        let line = format!("no leases (state_dir {}{why})", state_dir.display());
        // JSON output is one object per lease: nothing at all on stdout.
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let out = if json {
        records
            .iter()
            .map(|record| json_line(record, now) + "\n")
            .collect()
    } else {
        table(&records, now)
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// What a damaged journal lost, in words, or `None` for a clean one.
fn damage_warning(report: &RecoveryReport, recovered: usize) -> Option<String> {
    if report.is_clean() {
        return None;
    }
    let path = report.path.display();
    let mut problems = Vec::new();
    if report.bad_header {
        problems.push("the file header is damaged".to_string());
    }
    for region in &report.corrupt {
        problems.push(format!(
            "{} bytes at offset {} were skipped ({})",
            region.len, region.offset, region.reason
        ));
    }
    let mid_file = !problems.is_empty();
    if let Some(tail) = &report.torn_tail {
        problems.push(format!(
            "the last {} bytes (from offset {}) are not a complete record ({}): a write in \
             flight if the daemon is running, else a write cut short",
            tail.len, tail.offset, tail.reason
        ));
    }
    let mut text = format!("{path}: {}", problems.join("; "));
    let _ = write!(
        text,
        "; showing the {recovered} lease{} recovered from {} valid record{}",
        plural(recovered),
        report.records_loaded,
        plural(report.records_loaded)
    );
    if mid_file {
        text.push_str(
            " (the daemon keeps a copy of the damaged file and repairs the journal when it next \
             opens it)",
        );
    }
    Some(text)
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// A lease of either family, for printing.
#[derive(Clone, Copy)]
enum Row<'a> {
    V4(&'a LeaseRecord),
    V6(&'a Lease6Record),
}

impl Row<'_> {
    fn address(&self) -> String {
        match self {
            Row::V4(r) => r.address.to_string(),
            Row::V6(r) => r.address.to_string(),
        }
    }

    /// The machine's MAC; a v6 lease has one only when Kindling learned it.
    fn mac(&self) -> Option<String> {
        match self {
            Row::V4(r) => Some(r.mac.to_string()),
            Row::V6(r) => r.mac.map(|mac| mac.to_string()),
        }
    }

    fn hostname(&self) -> Option<&str> {
        match self {
            Row::V4(r) => r.hostname.as_deref(),
            Row::V6(r) => r.hostname.as_deref(),
        }
    }

    fn state(&self) -> &LeaseState {
        match self {
            Row::V4(r) => &r.state,
            Row::V6(r) => &r.state,
        }
    }

    fn granted_at(&self) -> SystemTime {
        match self {
            Row::V4(r) => r.granted_at,
            Row::V6(r) => r.granted_at,
        }
    }

    fn expires_at(&self) -> SystemTime {
        match self {
            Row::V4(r) => r.expires_at,
            Row::V6(r) => r.expires_at,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The leases as an aligned table.
fn table(records: &[Row<'_>], now: SystemTime) -> String {
    let header = ["ADDRESS", "MAC", "HOSTNAME", "STATE", "EXPIRES (UTC)"];
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|record| {
            [
                record.address(),
                record.mac().unwrap_or_else(|| "-".to_string()),
                record.hostname().map_or_else(|| "-".to_string(), printable),
                record.state().to_string(),
                format!(
                    "{} ({})",
                    utc_datetime(unix_seconds(record.expires_at()), ' '),
                    relative(unix_seconds(record.expires_at()) - unix_seconds(now))
                ),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

/// A hostname for the table: control characters (never written by the daemon, which
/// sanitizes names, but a journal is a file) shown escaped.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// One lease as a JSON object on one line. A v4 lease carries its client identifier, a v6
/// lease its DUID and IAID.
fn json_line(record: &Row<'_>, now: SystemTime) -> String {
    let (state, reason) = match record.state() {
        LeaseState::Active => ("active", None),
        LeaseState::Released => ("released", None),
        LeaseState::Expired => ("expired", None),
        LeaseState::Abandoned(AbandonReason::Declined) => ("abandoned", Some("declined")),
        LeaseState::Abandoned(AbandonReason::InUse) => ("abandoned", Some("in use")),
        LeaseState::Abandoned(AbandonReason::Other(why)) => ("abandoned", Some(why.as_str())),
    };
    let granted = unix_seconds(record.granted_at());
    let expires = unix_seconds(record.expires_at());
    let optional = |value: Option<&str>| value.map_or_else(|| "null".to_string(), json_string);
    let client = match record {
        Row::V4(r) => format!(
            "\"client_id\":{}",
            optional(r.client_id.as_deref().map(hex).as_deref())
        ),
        Row::V6(r) => format!(
            "\"duid\":{},\"iaid\":{}",
            json_string(&hex(&r.duid)),
            r.iaid
        ),
    };
    format!(
        "{{\"address\":{},\"mac\":{},\"hostname\":{},{client},\"state\":{},\
         \"abandon_reason\":{},\"granted_at\":{},\"granted_at_unix\":{granted},\
         \"expires_at\":{},\"expires_at_unix\":{expires},\"expires_in_seconds\":{}}}",
        json_string(&record.address()),
        optional(record.mac().as_deref()),
        optional(record.hostname()),
        json_string(state),
        optional(reason),
        json_string(&(utc_datetime(granted, 'T') + "Z")),
        json_string(&(utc_datetime(expires, 'T') + "Z")),
        expires - unix_seconds(now),
    )
}

/// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Seconds since the Unix epoch, negative before it (whole seconds, rounded down).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() == 0 {
                -secs
            } else {
                -secs.saturating_add(1)
            }
        }
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01: (year, month 1-12, day 1-31).
/// Howard Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
/// in eras of 400 years that start on 1 March so that the leap day is the era's last.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let shifted_month = (5 * day_of_year + 2) / 153; // [0, 11], March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1; // [1, 31]
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// `YYYY-MM-DD HH:MM:SS` (with `separator` between date and time) of Unix seconds, in UTC.
pub(crate) fn utc_datetime(unix: i64, separator: char) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}{separator}{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A time difference for people: `in 3h12m`, `2m ago`, `in 4d2h`, `now`.
pub(crate) fn relative(delta: i64) -> String {
    let magnitude = delta.unsigned_abs();
    let text = match magnitude {
        0 => return "now".to_string(),
        1..60 => format!("{magnitude}s"),
        60..3600 => format!("{}m", magnitude / 60),
        3600..86_400 => format!("{}h{}m", magnitude / 3600, magnitude % 3600 / 60),
        _ => format!("{}d{}h", magnitude / 86_400, magnitude % 86_400 / 3600),
    };
    if delta > 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::Ipv4Addr;
    use std::time::Duration;

    use kindling_dhcp::lease::MacAddr;

    use super::*;

    #[test]
    fn civil_dates_of_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
        // 1900 and 2100 are not leap years.
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn civil_dates_agree_with_counting_days_one_by_one() {
        let month_len = |year: i64, month: u32| match month {
            4 | 6 | 9 | 11 => 30,
            2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
            2 => 28,
            _ => 31,
        };
        let (mut year, mut month, mut day) = (1900i64, 1u32, 1u32);
        for days in -25_567..=47_481 {
            // 1900-01-01 ..= 2099-12-31
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            day += 1;
            if day > month_len(year, month) {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn utc_datetimes() {
        assert_eq!(utc_datetime(0, ' '), "1970-01-01 00:00:00");
        assert_eq!(utc_datetime(951_782_400, ' '), "2000-02-29 00:00:00");
        assert_eq!(utc_datetime(1_800_000_000, ' '), "2027-01-15 08:00:00");
        assert_eq!(utc_datetime(-86_400, ' '), "1969-12-31 00:00:00");
        assert_eq!(utc_datetime(-1, 'T'), "1969-12-31T23:59:59");
        assert_eq!(utc_datetime(253_402_300_799, ' '), "9999-12-31 23:59:59");
    }

    #[test]
    fn unix_seconds_round_down() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(1500)), -2);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(3)), -3);
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(0), "now");
        assert_eq!(relative(45), "in 45s");
        assert_eq!(relative(-120), "2m ago");
        assert_eq!(relative(3 * 3600 + 12 * 60 + 59), "in 3h12m");
        assert_eq!(relative(-(2 * 86_400 + 5 * 3600)), "2d5h ago");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("plain"), "\"plain\"");
        assert_eq!(
            json_string("a\"b\\c\nd\u{1}é"),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
    }

    #[test]
    fn a_lease_as_a_table_row_and_as_json() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let record = LeaseRecord {
            mac: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            client_id: Some(vec![1, 0x52, 0x54]),
            address: Ipv4Addr::new(10, 99, 0, 100),
            hostname: Some("node\"1".into()),
            state: LeaseState::Abandoned(AbandonReason::Declined),
            granted_at: now,
            expires_at: now + Duration::from_secs(3 * 3600 + 12 * 60),
        };
        let table = table(&[Row::V4(&record)], now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ADDRESS      MAC"), "{table}");
        assert!(
            lines[1].contains("10.99.0.100  52:54:00:12:34:56  node\"1")
                && lines[1].ends_with("abandoned (declined)  2027-01-15 11:12:00 (in 3h12m)"),
            "{table}"
        );
        assert_eq!(
            json_line(&Row::V4(&record), now),
            "{\"address\":\"10.99.0.100\",\"mac\":\"52:54:00:12:34:56\",\"hostname\":\"node\\\"1\",\
             \"client_id\":\"015254\",\"state\":\"abandoned\",\"abandon_reason\":\"declined\",\
             \"granted_at\":\"2027-01-15T08:00:00Z\",\"granted_at_unix\":1800000000,\
             \"expires_at\":\"2027-01-15T11:12:00Z\",\"expires_at_unix\":1800011520,\
             \"expires_in_seconds\":11520}"
        );
    }
}
