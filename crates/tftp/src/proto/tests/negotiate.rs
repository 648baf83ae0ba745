//! RFC 2347 / 2348 / 2349 / 7440 negotiation.

use std::time::Duration;

use super::harness::{request, settings};
use crate::proto::{Refusal, Settings, negotiate_read, negotiate_write};
use crate::wire::{ErrorCode, Mode};

fn oack(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    Some(
        pairs
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
    )
}

#[test]
fn rfc2347_no_options_means_no_oack() {
    let read = negotiate_read(&request(Mode::Octet, &[]), &settings(), 1000);
    assert_eq!(read.oack, None);
    assert_eq!(read.blksize, 512);
    assert_eq!(read.windowsize, 1);
    assert_eq!(read.timeout, Duration::from_secs(1));
    assert_eq!(read.tsize, None);
    let write = negotiate_write(&request(Mode::Octet, &[]), &settings()).unwrap();
    assert_eq!(write.oack, None);
    assert_eq!(write.blksize, 512);
}

#[test]
fn rfc2347_option_names_are_case_insensitive_and_echoed_as_sent() {
    let negotiated = negotiate_read(
        &request(
            Mode::Octet,
            &[("BlkSize", "1024"), ("TSIZE", "0"), ("WindowSize", "4")],
        ),
        &settings(),
        5000,
    );
    assert_eq!(negotiated.blksize, 1024);
    assert_eq!(negotiated.windowsize, 4);
    assert_eq!(negotiated.tsize, Some(5000));
    assert_eq!(
        negotiated.oack,
        oack(&[("BlkSize", "1024"), ("TSIZE", "5000"), ("WindowSize", "4")])
    );
}

#[test]
fn rfc2347_unknown_options_are_ignored_and_not_echoed() {
    let negotiated = negotiate_read(
        &request(
            Mode::Octet,
            &[
                ("multicast", ""),
                ("blksize2", "1024"),
                ("utimeout", "500"),
                ("timeout", "3"),
            ],
        ),
        &settings(),
        100,
    );
    assert_eq!(negotiated.oack, oack(&[("timeout", "3")]));
    assert_eq!(negotiated.blksize, 512);
}

#[test]
fn rfc2347_only_unknown_options_means_no_oack() {
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("multicast", ""), ("rollover", "0")]),
        &settings(),
        100,
    );
    assert_eq!(negotiated.oack, None);
    let write = negotiate_write(&request(Mode::Octet, &[("foo", "bar")]), &settings()).unwrap();
    assert_eq!(write.oack, None);
}

#[test]
fn rfc2347_duplicate_options_first_wins() {
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("blksize", "600"), ("BLKSIZE", "700")]),
        &settings(),
        100,
    );
    assert_eq!(negotiated.blksize, 600);
    assert_eq!(negotiated.oack, oack(&[("blksize", "600")]));
    // The first occurrence decides even when it is ignored.
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("blksize", "1"), ("blksize", "700")]),
        &settings(),
        100,
    );
    assert_eq!(negotiated.blksize, 512);
    assert_eq!(negotiated.oack, None);
}

#[test]
fn rfc2347_oack_keeps_the_request_order() {
    let negotiated = negotiate_read(
        &request(
            Mode::Octet,
            &[
                ("windowsize", "2"),
                ("tsize", "0"),
                ("timeout", "2"),
                ("blksize", "8"),
            ],
        ),
        &settings(),
        10,
    );
    assert_eq!(
        negotiated.oack,
        oack(&[
            ("windowsize", "2"),
            ("tsize", "10"),
            ("timeout", "2"),
            ("blksize", "8")
        ])
    );
}

#[test]
fn rfc2348_blksize_clamped_to_settings() {
    let settings = Settings {
        max_blksize: 1468,
        ..settings()
    };
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("blksize", "65464")]),
        &settings,
        100,
    );
    assert_eq!(negotiated.blksize, 1468);
    assert_eq!(negotiated.oack, oack(&[("blksize", "1468")]));
    let write = negotiate_write(&request(Mode::Octet, &[("blksize", "9000")]), &settings).unwrap();
    assert_eq!(write.blksize, 1468);
    // A smaller request than the cap is granted as asked.
    let negotiated = negotiate_read(&request(Mode::Octet, &[("blksize", "1432")]), &settings, 1);
    assert_eq!(negotiated.blksize, 1432);
}

#[test]
fn rfc2348_blksize_range_limits_are_accepted() {
    for value in ["8", "65464", "0008"] {
        let negotiated =
            negotiate_read(&request(Mode::Octet, &[("blksize", value)]), &settings(), 1);
        let expected: u16 = value.parse().unwrap();
        assert_eq!(negotiated.blksize, expected, "{value}");
        assert_eq!(negotiated.oack, oack(&[("blksize", &expected.to_string())]));
    }
}

#[test]
fn rfc2348_blksize_out_of_range_is_ignored() {
    for value in [
        "0",
        "7",
        "65465",
        "99999999999999999999999",
        "",
        "abc",
        "-512",
        "+512",
        " 512",
        "512 ",
    ] {
        let negotiated =
            negotiate_read(&request(Mode::Octet, &[("blksize", value)]), &settings(), 1);
        assert_eq!(negotiated.blksize, 512, "{value:?}");
        assert_eq!(negotiated.oack, None, "{value:?}");
        let write = negotiate_write(&request(Mode::Octet, &[("blksize", value)]), &settings());
        assert_eq!(write.unwrap().oack, None, "{value:?}");
    }
}

#[test]
fn rfc2348_settings_outside_the_rfc_range_are_clamped_into_it() {
    let settings = Settings {
        max_blksize: 2,
        ..settings()
    };
    let negotiated = negotiate_read(&request(Mode::Octet, &[("blksize", "1024")]), &settings, 1);
    assert_eq!(negotiated.blksize, 8);
}

#[test]
fn rfc2349_timeout_echoed_and_used() {
    let negotiated = negotiate_read(&request(Mode::Octet, &[("timeout", "3")]), &settings(), 1);
    assert_eq!(negotiated.timeout, Duration::from_secs(3));
    assert_eq!(negotiated.oack, oack(&[("timeout", "3")]));
    let write = negotiate_write(&request(Mode::Octet, &[("timeout", "255")]), &settings()).unwrap();
    assert_eq!(write.timeout, Duration::from_secs(255));
}

#[test]
fn rfc2349_timeout_out_of_range_is_ignored() {
    for value in ["0", "256", "1000", "x", "1.5"] {
        let negotiated =
            negotiate_read(&request(Mode::Octet, &[("timeout", value)]), &settings(), 1);
        assert_eq!(negotiated.timeout, Duration::from_secs(1), "{value}");
        assert_eq!(negotiated.oack, None, "{value}");
    }
}

#[test]
fn rfc2349_tsize_on_read_answers_the_file_length() {
    for asked in ["0", "12345"] {
        let negotiated = negotiate_read(
            &request(Mode::Octet, &[("tsize", asked)]),
            &settings(),
            7777,
        );
        assert_eq!(negotiated.tsize, Some(7777));
        assert_eq!(negotiated.oack, oack(&[("tsize", "7777")]));
    }
    let negotiated = negotiate_read(&request(Mode::Octet, &[("tsize", "x")]), &settings(), 7777);
    assert_eq!(negotiated.oack, None);
}

#[test]
fn rfc2349_tsize_omitted_for_an_empty_file() {
    // curl 7.88 rejects an OACK with tsize 0 and must still fetch empty files.
    let negotiated = negotiate_read(&request(Mode::Octet, &[("tsize", "0")]), &settings(), 0);
    assert_eq!(negotiated.tsize, None);
    assert_eq!(negotiated.oack, None);
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("tsize", "0"), ("blksize", "1024")]),
        &settings(),
        0,
    );
    assert_eq!(negotiated.oack, oack(&[("blksize", "1024")]));
}

#[test]
fn rfc2349_tsize_on_write_is_echoed() {
    let negotiated =
        negotiate_write(&request(Mode::Octet, &[("tsize", "4096")]), &settings()).unwrap();
    assert_eq!(negotiated.tsize, Some(4096));
    assert_eq!(negotiated.oack, oack(&[("tsize", "4096")]));
}

#[test]
fn rfc2349_tsize_on_write_over_the_limit_is_refused_with_disk_full() {
    let settings = Settings {
        max_upload_size: 1000,
        ..settings()
    };
    let refusal: Refusal =
        negotiate_write(&request(Mode::Octet, &[("tsize", "1001")]), &settings).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::DiskFull);
    assert!(refusal.message.contains("1001"), "{}", refusal.message);
    let at_limit = negotiate_write(&request(Mode::Octet, &[("tsize", "1000")]), &settings);
    assert_eq!(at_limit.unwrap().tsize, Some(1000));
}

#[test]
fn rfc7440_windowsize_clamped_to_settings() {
    let settings = Settings {
        max_windowsize: 16,
        ..settings()
    };
    let negotiated = negotiate_read(&request(Mode::Octet, &[("windowsize", "64")]), &settings, 1);
    assert_eq!(negotiated.windowsize, 16);
    assert_eq!(negotiated.oack, oack(&[("windowsize", "16")]));
    let negotiated = negotiate_read(&request(Mode::Octet, &[("windowsize", "1")]), &settings, 1);
    assert_eq!(negotiated.windowsize, 1);
    assert_eq!(negotiated.oack, oack(&[("windowsize", "1")]));
}

#[test]
fn rfc7440_windowsize_clamped_to_the_receive_buffer() {
    let settings = Settings {
        max_windowsize: 1024,
        receive_buffer_budget: crate::proto::DEFAULT_RECEIVE_BUFFER_BUDGET,
        ..settings()
    };
    let cases = [
        ("1468", "200", 86), // 196608 / (2048 + 256) + 1
        ("8192", "64", 12),  // 196608 / (16384 + 256) + 1: a 13th overflowed 208 KiB
        ("65464", "64", 3),  // 196608 / (65464 + 836) + 1
        ("16384", "64", 12), // 196608 / (16384 + 836) + 1
        ("16383", "64", 6),  // 196608 / (32768 + 256) + 1: costed as one allocation
        ("8", "65535", 237), // 196608 / (576 + 256) + 1
        ("512", "300", 154), // blksize 512 (the default size when asked): 196608 / 1280 + 1
    ];
    for (blksize, windowsize, expected) in cases {
        let negotiated = negotiate_read(
            &request(
                Mode::Octet,
                &[("windowsize", windowsize), ("blksize", blksize)],
            ),
            &settings,
            1,
        );
        assert_eq!(negotiated.windowsize, expected, "{blksize} x {windowsize}");
    }
    // Without a blksize option the window is counted in 512-byte blocks.
    let negotiated = negotiate_read(
        &request(Mode::Octet, &[("windowsize", "1000")]),
        &settings,
        1,
    );
    assert_eq!(negotiated.windowsize, 154);
    // Never below 1, however small the byte budget.
    let tiny = Settings {
        receive_buffer_budget: 100,
        ..settings
    };
    let negotiated = negotiate_read(&request(Mode::Octet, &[("windowsize", "8")]), &tiny, 1);
    assert_eq!(negotiated.windowsize, 1);
    let zero_cap = Settings {
        max_windowsize: 0,
        ..settings
    };
    let negotiated = negotiate_read(&request(Mode::Octet, &[("windowsize", "8")]), &zero_cap, 1);
    assert_eq!(negotiated.windowsize, 1);
}

#[test]
fn rfc7440_windowsize_out_of_range_is_ignored() {
    for value in ["0", "65536", "-1", "many"] {
        let negotiated = negotiate_read(
            &request(Mode::Octet, &[("windowsize", value)]),
            &settings(),
            1,
        );
        assert_eq!(negotiated.windowsize, 1, "{value}");
        assert_eq!(negotiated.oack, None, "{value}");
    }
}

#[test]
fn negotiated_carries_max_retries_from_settings() {
    let settings = Settings {
        max_retries: 9,
        ..settings()
    };
    assert_eq!(
        negotiate_read(&request(Mode::Octet, &[]), &settings, 1).max_retries,
        9
    );
    assert_eq!(
        negotiate_write(&request(Mode::Octet, &[]), &settings)
            .unwrap()
            .max_retries,
        9
    );
}
