#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| snapfs::fuzzing::label_commit::run(data));
