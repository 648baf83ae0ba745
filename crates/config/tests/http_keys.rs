//! The `http` section.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kindling_config::*;

const TFTP: &str = "tftp:\n  root: /srv/tftp\n";

#[test]
fn http_takes_listen_addresses_on_both_families_and_has_defaults() {
    let text = format!(
        "{TFTP}http:\n  listen: [\"0.0.0.0:8080\", \"[::]:8081\"]\n  max_connections: 64\n  header_timeout: 5s\n  send_timeout: 2m\n"
    );
    let http = parse(&text, "t").unwrap().config.http.unwrap();
    assert_eq!(
        http.listen,
        vec![
            "0.0.0.0:8080".parse().unwrap(),
            "[::]:8081".parse().unwrap()
        ]
    );
    assert_eq!(http.max_connections, 64);
    assert_eq!(http.header_timeout, Duration::from_secs(5));
    assert_eq!(http.send_timeout, Duration::from_secs(120));

    let defaults = parse(&format!("{TFTP}http: {{}}\n"), "t")
        .unwrap()
        .config
        .http
        .unwrap();
    assert_eq!(
        defaults.listen,
        vec![
            "0.0.0.0:8080".parse().unwrap(),
            "[::]:8080".parse().unwrap()
        ]
    );
    let off = parse(&format!("{TFTP}http:\n  enabled: false\n"), "t").unwrap();
    assert_eq!(off.config.http, None);
    assert_eq!(
        parse(TFTP, "t").unwrap().config.http,
        None,
        "no section: off"
    );
}

#[test]
fn http_needs_the_tftp_root_and_valid_values() {
    let errors = parse("http:\n  listen: [\"127.0.0.1:8080\"]\n", "t").unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("tftp.root"), "{text}");
    for (bad, key) in [
        ("http:\n  listen: []\n", "http.listen"),
        ("http:\n  listen: [\"nonsense\"]\n", "http.listen"),
        ("http:\n  max_connections: 0\n", "http.max_connections"),
        ("http:\n  header_timeout: 0s\n", "http.header_timeout"),
        ("http:\n  send_timeout: 0s\n", "http.send_timeout"),
        ("http:\n  bogus: 1\n", "http.bogus"),
    ] {
        let text = parse(&format!("{TFTP}{bad}"), "t").unwrap_err().to_string();
        assert!(text.contains(key), "{bad}: {text}");
    }
}

#[test]
fn http_round_trips_through_print_config() {
    let text = format!("{TFTP}http:\n  listen: [\"[::1]:8080\"]\n  header_timeout: 30s\n");
    let config = parse(&text, "t").unwrap().config;
    let printed = to_yaml(&config);
    assert_eq!(
        parse(&printed, "printed").unwrap().config,
        config,
        "{printed}"
    );
    assert!(printed.contains("http:"), "{printed}");
}
