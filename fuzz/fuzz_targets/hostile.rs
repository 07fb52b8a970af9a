#![no_main]

use snapfs::fuzzing::hostile::HostileTarget;
use std::sync::LazyLock;

/// Real streams to mutate, and the pools they apply to, prepared once per process.
static TARGET: LazyLock<HostileTarget> = LazyLock::new(|| {
    let sources: [&[u8]; 3] = [
        include_bytes!("../seeds/receive/full-a.stream"),
        include_bytes!("../seeds/receive/incremental-a-b.stream"),
        include_bytes!("../seeds/receive/run-a-c.stream"),
    ];
    HostileTarget::new(include_bytes!("../seeds/receive/base.stream"), &sources).expect("the seed streams apply")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
