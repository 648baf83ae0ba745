#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kindling_dns::fuzzing::query(data);
});
