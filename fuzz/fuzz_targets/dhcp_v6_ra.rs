#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kindling_dhcp::v6::fuzzing::quiet_ra(data);
});
