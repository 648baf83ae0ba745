#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kindling_dhcp::v4::fuzzing::codec(data);
});
