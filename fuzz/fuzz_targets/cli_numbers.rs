#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| snapfs::fuzzing::cli_numbers::run(data));
