#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| snapfs::fuzzing::stream_reader::run(data));
