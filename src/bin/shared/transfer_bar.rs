//! The progress bar of a stream going out (snapsend -v) or coming in (snaprecv -v), on
//! standard error: bytes, rate, time left against the run's exact size.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `total_bytes` (None until a Begin record says it), hidden unless `verbose`.
pub fn transfer_bar(verbose: bool, total_bytes: Option<u64>) -> ProgressBar {
    if !verbose {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{binary_bytes:>10} / {binary_total_bytes} {wide_bar} {binary_bytes_per_sec:>12} eta {eta}",
    )
    .expect("a valid template");
    bar.set_style(style);
    bar
}
