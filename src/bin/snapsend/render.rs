//! What snapsend prints besides the stream: the plan of a run (-P lines for scripts, or
//! -n -v's sentences) and the summary of -v. The -P lines are an API: tests and scripts
//! read them.

use super::PROGRAM;
use snapfs::cmd::send::{Plan, Sent};
use snapfs::error::human_bytes;
use snapfs::stream::send::Part;

/// The plan as -P prints it (one line per part, then the size), or as -n -v does.
pub fn planned(plan: &Plan, parsable: bool, verbose: bool) -> String {
    let mut text = String::new();
    let total = plan.total_bytes();
    if parsable {
        for (part, bytes) in plan.parts() {
            text.push_str(&part_line(part, bytes));
            text.push('\n');
        }
        text.push_str(&format!("size\t{total}\n"));
    } else if verbose {
        for (part, bytes) in plan.parts() {
            text.push_str(&format!("would send {}: {} ({bytes} bytes)\n", part.describe(), human_bytes(bytes)));
        }
        text.push_str(&format!("total size is {} ({total} bytes), exact\n", human_bytes(total)));
    }
    text
}

fn part_line(part: &Part, bytes: u64) -> String {
    match &part.base {
        Some(base) if part.resume.is_some() => {
            format!("resume\t@{}\t@{}\t{bytes}", base.name, part.target.name)
        }
        Some(_) if part.bookmark.is_some() => {
            format!("incremental\t#{}\t@{}\t{bytes}", part.bookmark.as_deref().unwrap_or_default(), part.target.name)
        }
        Some(base) => format!("incremental\t@{}\t@{}\t{bytes}", base.name, part.target.name),
        None if part.resume.is_some() => format!("resume\t@{}\t{bytes}", part.target.name),
        None => format!("full\t@{}\t{bytes}", part.target.name),
    }
}

pub fn sent(sent: &Sent) -> String {
    format!(
        "{PROGRAM}: sent {} in {} part{} ({} of file data)\n",
        human_bytes(sent.bytes),
        sent.parts,
        if sent.parts == 1 { "" } else { "s" },
        human_bytes(sent.data_bytes)
    )
}
