#![no_main]

use snapfs::fuzzing::receive::ReceiveTarget;
use std::sync::LazyLock;

/// Prepared once per process: the empty pool and the pool holding the seeds' base.
static TARGET: LazyLock<ReceiveTarget> = LazyLock::new(|| {
    ReceiveTarget::new(include_bytes!("../seeds/receive/base.stream")).expect("the base stream applies")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
