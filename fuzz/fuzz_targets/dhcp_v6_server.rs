#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _replies = kindling_dhcp::v6::fuzzing::server(data);
});
