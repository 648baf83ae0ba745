#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kindling_dhcp::v6::fuzzing::codec(data);
});
