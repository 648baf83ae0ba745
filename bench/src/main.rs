//! `tftp-load`: a TFTP download load generator written for measuring.
//!
//! N clients (one thread and one UDP socket each) download the same file at once, starting
//! together; it prints one JSON line (counts, wall time, per-client median/max, aggregate
//! throughput, the options the server granted, what the clients saw go wrong) and exits
//! non-zero if any transfer failed or did not verify.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use kindling_bench::client::{self, Buffers, Outcome, Request};

#[derive(Debug, Parser)]
#[command(
    name = "tftp-load",
    version,
    about = "TFTP download load generator: N concurrent RFC 7440 clients, one JSON line out"
)]
struct Args {
    /// Server address, e.g. 127.0.0.1:6969.
    #[arg(long)]
    server: SocketAddr,
    /// File to read (as sent in the RRQ).
    #[arg(long)]
    file: String,
    /// Request this blksize (RFC 2348); not sent when absent.
    #[arg(long, value_parser = clap::value_parser!(u16).range(8..=65464))]
    blksize: Option<u16>,
    /// Request this windowsize (RFC 7440); not sent when absent.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    windowsize: Option<u16>,
    /// Concurrent clients, each with its own socket and thread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: u32,
    /// Fail a transfer whose size differs.
    #[arg(long)]
    expect_size: Option<u64>,
    /// Fail a transfer whose SHA-256 differs (computed incrementally; costs client CPU).
    #[arg(long)]
    expect_sha256: Option<String>,
    /// Receive timeout: re-send the RRQ, or ACK the last in-order block.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Consecutive timeouts before a transfer fails.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// SO_RCVBUF per client socket (capped by net.core.rmem_max; the kernel doubles it);
    /// 0 keeps the system default (net.core.rmem_default), as most real clients do.
    #[arg(long, default_value_t = 4 << 20)]
    rcvbuf: usize,
    /// Free text copied into the JSON line.
    #[arg(long)]
    label: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let expect_sha = match args.expect_sha256.as_deref().map(parse_hex32).transpose() {
        Ok(sha) => sha,
        Err(error) => {
            eprintln!("tftp-load: --expect-sha256: {error}");
            return ExitCode::from(2);
        }
    };
    let request = Arc::new(Request {
        server: args.server,
        file: args.file.clone(),
        blksize: args.blksize,
        windowsize: args.windowsize,
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        retries: args.retries,
        hash: expect_sha.is_some(),
        rcvbuf: args.rcvbuf,
    });

    let clients = args.clients as usize;
    let barrier = Arc::new(Barrier::new(clients));
    let mut handles = Vec::with_capacity(clients);
    for index in 0..clients {
        let request = Arc::clone(&request);
        let barrier = Arc::clone(&barrier);
        let spawned = thread::Builder::new()
            .name(format!("client-{index}"))
            .stack_size(256 << 10)
            .spawn(move || {
                let mut buffers = Buffers::default();
                barrier.wait();
                let started = Instant::now();
                let outcome = client::download(&request, &mut buffers, started);
                (started, Instant::now(), outcome)
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(error) => {
                // The threads already spawned wait at the barrier forever: give up.
                eprintln!("tftp-load: spawning client {index}: {error}");
                return ExitCode::from(2);
            }
        }
    }

    let mut results = Vec::with_capacity(clients);
    for handle in handles {
        match handle.join() {
            Ok(result) => results.push(result),
            Err(_) => {
                let now = Instant::now();
                results.push((
                    now,
                    now,
                    Outcome {
                        error: Some("client thread panicked".into()),
                        ..Outcome::default()
                    },
                ))
            }
        }
    }

    let report = summarize(&args, expect_sha, &mut results);
    println!("{}", report.json);
    if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

struct Report {
    json: String,
    failed: usize,
}

fn summarize(
    args: &Args,
    expect_sha: Option<[u8; 32]>,
    results: &mut [(Instant, Instant, Outcome)],
) -> Report {
    // Verification turns a completed transfer with the wrong content into a failure.
    for (_, _, outcome) in results.iter_mut() {
        if outcome.error.is_some() {
            continue;
        }
        if let Some(size) = args.expect_size
            && outcome.bytes != size
        {
            outcome.error = Some(format!("size {} != expected {size}", outcome.bytes));
        } else if let (Some(want), Some(got)) = (expect_sha, outcome.sha256)
            && want != got
        {
            outcome.error = Some(format!("sha256 {} != expected", hex(&got)));
        }
    }

    let start = results.iter().map(|r| r.0).min();
    let end = results.iter().map(|r| r.1).max();
    let wall = match (start, end) {
        (Some(start), Some(end)) => end.duration_since(start).as_secs_f64(),
        _ => 0.0,
    };
    let ok: Vec<&Outcome> = results
        .iter()
        .map(|r| &r.2)
        .filter(|o| o.error.is_none())
        .collect();
    let failed = results.len() - ok.len();
    let bytes: u64 = ok.iter().map(|o| o.bytes).sum();
    let mut seconds: Vec<f64> = ok.iter().map(|o| o.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let median = median(&seconds);
    let max = seconds.last().copied();
    let granted = results.iter().find_map(|r| r.2.granted);
    let mixed = results
        .iter()
        .filter_map(|r| r.2.granted)
        .any(|g| Some(g) != granted);
    let sum = |f: fn(&Outcome) -> u64| results.iter().map(|r| f(&r.2)).sum::<u64>();
    let mut errors: Vec<&str> = Vec::new();
    for error in results.iter().filter_map(|r| r.2.error.as_deref()) {
        if errors.len() < 5 && !errors.contains(&error) {
            errors.push(error);
        }
    }

    let mut j = String::with_capacity(1024);
    j.push('{');
    field_str(&mut j, "server", &args.server.to_string());
    field_str(&mut j, "file", &args.file);
    if let Some(label) = &args.label {
        field_str(&mut j, "label", label);
    }
    field(&mut j, "clients", results.len());
    field(&mut j, "ok", ok.len());
    field(&mut j, "failed", failed);
    field(&mut j, "bytes", bytes);
    field(&mut j, "wall_seconds", num(Some(wall)));
    field(&mut j, "client_median_seconds", num(median));
    field(&mut j, "client_max_seconds", num(max));
    let throughput = (wall > 0.0).then(|| bytes as f64 / wall / 1e6);
    field(&mut j, "throughput_mb_s", num(throughput));
    field(&mut j, "blksize_requested", opt(args.blksize));
    field(&mut j, "windowsize_requested", opt(args.windowsize));
    field(&mut j, "blksize_granted", opt(granted.map(|g| g.blksize)));
    field(
        &mut j,
        "windowsize_granted",
        opt(granted.map(|g| g.windowsize)),
    );
    field(&mut j, "granted_mixed", mixed);
    field(&mut j, "timeouts", sum(|o| o.timeouts));
    field(&mut j, "duplicates", sum(|o| o.duplicates));
    field(&mut j, "out_of_order", sum(|o| o.out_of_order));
    field(&mut j, "extra_acks", sum(|o| o.extra_acks));
    field(
        &mut j,
        "client_rcvbuf",
        results.first().map_or(0, |r| r.2.rcvbuf),
    );
    field(&mut j, "sha256_checked", expect_sha.is_some());
    j.push_str("\"errors\":[");
    for (i, error) in errors.iter().enumerate() {
        if i > 0 {
            j.push(',');
        }
        quote(&mut j, error);
    }
    j.push_str("]}");
    Report { json: j, failed }
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn num(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.6}"),
        _ => "null".into(),
    }
}

fn opt(value: Option<u16>) -> String {
    value.map_or_else(|| "null".into(), |v| v.to_string())
}

fn field(j: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(j, "\"{name}\":{value},");
}

fn field_str(j: &mut String, name: &str, value: &str) {
    let _ = write!(j, "\"{name}\":");
    quote(j, value);
    j.push(',');
}

fn quote(j: &mut String, s: &str) {
    j.push('"');
    for c in s.chars() {
        match c {
            '"' => j.push_str("\\\""),
            '\\' => j.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(j, "\\u{:04x}", c as u32);
            }
            c => j.push(c),
        }
    }
    j.push('"');
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_hex32(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(format!("want 64 hex digits, got {}", text.len()));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = text.get(2 * i..2 * i + 2).ok_or("not ASCII hex")?;
        *byte = u8::from_str_radix(pair, 16).map_err(|e| format!("{pair:?}: {e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_json_escapes() {
        let digest = [0xabu8; 32];
        assert_eq!(parse_hex32(&hex(&digest)), Ok(digest));
        assert!(parse_hex32("ab").is_err());
        assert!(parse_hex32(&"zz".repeat(32)).is_err());
        let mut j = String::new();
        quote(&mut j, "a\"b\\c\n");
        assert_eq!(j, "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(median(&[1.0, 2.0, 10.0]), Some(2.0));
        assert_eq!(median(&[1.0, 3.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
