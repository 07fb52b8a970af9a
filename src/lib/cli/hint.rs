//! What the operator should do next, after an error or a warning: the library says what
//! is wrong, the CLI what to type. Never the command that just failed, never advice to
//! format a pool that may be recovered.

use crate::device::lock::LOCK_DIR_ENV;
use crate::error::{DeviceError, Error, ReceiveRefusal, Refusal, Shrunk, SnapshotId, human_bytes};
use crate::pool::OpenWarning;

/// What to do about how a pool was opened, printed after the warning.
pub fn warning_advice(warning: &OpenWarning) -> Option<String> {
    match warning {
        OpenWarning::LabelCopyUsed { .. } => Some("`snapctl scrub` rewrites the damaged copy".into()),
        OpenWarning::Shrunk(shrunk) => Some(format!("to recover, {}", shrunk_recovery(shrunk))),
        OpenWarning::ExpandFinished { .. } => None,
        OpenWarning::NewestCommitsUnreadable { .. } => Some("run `snapctl check`".into()),
    }
}

/// A line that tells the operator what to do next, when there is one: the library says
/// what is wrong, the CLI what to type.
pub fn hint(error: &Error) -> Option<String> {
    match error {
        Error::Corrupt { .. } => Some(
            "run `snapctl scrub DEVICE`: it finds every damaged block, names the files and snapshots \
             each affects, and rewrites bad metadata copies from good ones"
                .into(),
        ),
        Error::NotSnapfs { .. } => Some("format it first with `snapfmt DEVICE`".into()),
        Error::Unsupported { .. } => Some("use a newer snapfs to open this pool".into()),
        Error::InUse { .. } => Some(
            "wait for that process to finish, then run the command again (snapctl and snaprecv wait by themselves \
             unless given --nowait or a --wait that ran out)"
                .into(),
        ),
        Error::NoSpace { history_bytes, snapshots, .. } => Some(no_space_hint(*snapshots, *history_bytes)),
        Error::Device(e) => Some(device_hint(e)),
        Error::Refused(refusal) => Some(refusal_hint(refusal)),
        Error::SnapshotNotFound { .. } => Some("`snapctl list DEVICE` shows the snapshots the pool has".into()),
        Error::MomentNotRetained { .. } => Some(
            "`snapctl history DEVICE` lists the moments still retained; `snapctl set history=7d DEVICE` keeps \
             commits longer from now on (what has expired is gone)"
                .into(),
        ),
        Error::BadResumeToken { .. } => Some("copy it whole from `snapctl status` on the receiving side".into()),
        Error::Receive(refusal) => receive_hint(refusal),
        Error::PartSaved { token, .. } => {
            Some(format!("resume with\n  snapsend -t {token} DEVICE | snaprecv -s TARGET"))
        }
        Error::Stream { .. } => Some(
            "the part that failed is not on the target (earlier parts of a multi-part stream are); send it \
             again (with snaprecv -s, a broken transfer can be resumed; `snaprecv -n` checks a stored stream \
             without applying it)"
                .into(),
        ),
        Error::InvalidTree { .. } => Some(
            "nothing of this part was received; sending it again cannot help: run `snapctl check` on \
             the sending pool, and receive only streams from pools you trust"
                .into(),
        ),
        Error::SourceChanged { .. } => Some(
            "run the command again: it reads the source afresh; if the source keeps changing, copy \
             a frozen view of it (a file system snapshot) or pause what writes to it"
                .into(),
        ),
        _ => None,
    }
}

/// The next step after a refused part: never the command that just failed, never a base
/// only the target has.
fn receive_hint(refusal: &ReceiveRefusal) -> Option<String> {
    use ReceiveRefusal::*;
    let fresh = "receive a full stream into a freshly formatted device";
    let from_newest = |newest: &SnapshotId, snapshot: &str| {
        format!(
            "if the source has @{} (guid {}), send incrementally from it: snapsend -i @{} @{snapshot} ...",
            newest.name,
            newest.guid_hex(),
            newest.name
        )
    };
    Some(match refusal {
        AlreadyReceived { .. } => return None,
        NameTaken { .. } => "rename or destroy the target's snapshot, or send a snapshot of another name".into(),
        FullOntoSnapshots { snapshot, newest } => format!(
            "if the source has @{} (guid {}), send incrementally from it (snapsend -i @{} @{snapshot} ...); \
             otherwise receive into a freshly formatted device",
            newest.name,
            newest.guid_hex(),
            newest.name
        ),
        PartialPending { .. } => "resume it: `snapctl status DEVICE` shows the token for `snapsend -t TOKEN`, or \
                                  discard it with `snaprecv -A DEVICE`"
            .into(),
        NothingToResume { .. } => "send the whole snapshot again (without -t)".into(),
        ResumeMismatch { .. } => {
            "send with the token `snapctl status DEVICE` shows now, or discard it with `snaprecv -A DEVICE`".into()
        }
        StreamTooNew { .. } => "receive it with a newer snaprecv, or send it with the snapsend of this version".into(),
        UnknownFeatures { .. } => "receive it with a newer snaprecv".into(),
        LiveTreeNotEmpty => "receive into a freshly formatted device, or add -F to replace the live tree (its old \
                             state stays in the commit history for a while)"
            .into(),
        NoSnapshots { base } => {
            format!("send a full stream of @{base} first (snapsend @{base} DEVICE | snaprecv TARGET)")
        }
        BaseNotNewest { held_as, newest, snapshot, .. } => format!(
            "{}; or destroy the target's snapshots after @{held_as} (snapctl destroy) to receive this stream",
            from_newest(newest, snapshot)
        ),
        BaseNameOtherGuid { .. } => format!(
            "send incrementally from a snapshot both pools have (the same guid: `snapctl list --json` shows them), \
             or {fresh}"
        ),
        BaseMissing { newest, snapshot, .. } => {
            format!("{}; if not, the pools share no snapshot from there: {fresh}", from_newest(newest, snapshot))
        }
        HeadChanged { newest } => {
            format!("add -F to roll the live tree back to @{newest} first (no snapshot is destroyed)")
        }
    })
}

/// What can make room on a full pool: only what it has (snapshots, retained commits),
/// and files, which any pool has.
fn no_space_hint(snapshots: u64, history_bytes: u64) -> String {
    let mut ways = Vec::new();
    if snapshots == crate::error::SNAPSHOTS_UNCOUNTED {
        ways.push("destroy snapshots you no longer need (`snapctl list DEVICE` shows what each holds)".into());
    } else if snapshots > 0 {
        ways.push(format!(
            "destroy snapshots you no longer need (the pool has {snapshots}; `snapctl list DEVICE` shows what each holds)"
        ));
    }
    if history_bytes > 0 {
        ways.push(format!(
            "release the commit history ({}) with `snapctl history --prune DEVICE`",
            human_bytes(history_bytes)
        ));
    }
    ways.push("remove files you no longer need (`snapctl rm PATH DEVICE`), or use a larger device".into());
    ways.join(", or ")
}

/// How to get a device back into use, or the pool on it back.
fn device_hint(error: &DeviceError) -> String {
    match error {
        DeviceError::NotWritable { .. } => {
            "check that the device is not read-only (blockdev --getro, blockdev --setrw) and that you may write it"
                .into()
        }
        DeviceError::LockDirUnusable { .. } => format!(
            "snapfs locks storage there so that one writer at a time reaches it by any name; make it a directory \
             every snapfs user may write (mode 1777, owned by root), or set {LOCK_DIR_ENV} to one, the same for \
             every process"
        ),
        DeviceError::ShrunkWrite(shrunk) | DeviceError::ShrunkRead { shrunk, .. } => shrunk_recovery(shrunk),
        DeviceError::LabelsLost { device_bytes, .. } => format!(
            "do not format it: that destroys the pool. If the device was resized since the pool was made or last \
             expanded, resize it back to that size ({device_bytes} bytes now) so that the copy at its end is found"
        ),
    }
}

/// How to get a writable pool back from a shrunk device.
pub fn shrunk_recovery(shrunk: &Shrunk) -> String {
    let Shrunk { device, pool_bytes, .. } = shrunk;
    format!(
        "grow it back to {pool_bytes} bytes (`truncate -s {pool_bytes} {device}` for an image file, or resize the \
         volume), then run `snapctl scrub {device}` to rewrite the label at its end; or copy the files out \
         (`snapctl export`, `snapsend`) to a new pool"
    )
}

/// How to go ahead anyway, or what to do instead.
fn refusal_hint(refusal: &Refusal) -> String {
    match refusal {
        Refusal::FormatOverPool { .. } => {
            "formatting destroys it and every snapshot in it; add --force if that is what you want".into()
        }
        Refusal::FormatOverForeign { .. } => "formatting destroys it; add --force if that is what you want".into(),
        Refusal::ExportIntoNonEmpty { .. } => "export into a new or empty directory".into(),
        Refusal::FileTooLarge { .. } => {
            "export the directories beside it, or remove it (`snapctl rm PATH DEVICE`) and export again".into()
        }
        Refusal::XattrUnstorable { name, .. } => format!(
            "remove it from that file (`setfattr -x {name} FILE`) or move the file out of the source, then sync again"
        ),
        Refusal::StreamToTerminal => "pipe it into snaprecv (snapsend ... | snaprecv TARGET) or redirect it to a \
                                      file; -n -v shows its size"
            .into(),
        Refusal::BaseOfPartialReceive { .. } | Refusal::PartialReceiveSaved { .. } => {
            "finish it (snapctl status shows the resume token) or discard it with `snaprecv -A DEVICE` first".into()
        }
        Refusal::HeldSnapshot { name, tags } => format!(
            "release it first if nothing needs it any more (`snapctl release {} @{name} DEVICE`); `snapctl holds @{name} \
             DEVICE` shows when each was placed",
            tags.first().map_or("TAG", String::as_str)
        ),
        Refusal::BeingRead { .. } => "run the command again when that reader is done (its pin goes when it \
                                      exits, even if it is killed)"
            .into(),
        Refusal::CloneOrigin { clones, .. } => format!(
            "destroy the clone first if nothing needs it (`snapctl destroy {} DEVICE`)",
            clones.first().map_or("CLONE", String::as_str)
        ),
        Refusal::MergedInto { merges, .. } => format!(
            "destroy the merge first if nothing needs it (`snapctl destroy @{} DEVICE`)",
            merges.first().map_or("MERGE", String::as_str)
        ),
        Refusal::ExtractedFrom { subset, .. } => format!(
            "finish its extraction first (`snapctl extract @{subset} DEVICE`), or destroy @{subset} if nothing needs it"
        ),
        Refusal::StillExtracting { name, .. } => format!(
            "finish it with `snapctl extract @{name} DEVICE` (it goes on from where it stopped); `ls` and `cat` read \
             it meanwhile"
        ),
        Refusal::CloneHasSnapshots { name, snapshots } => format!(
            "destroy them first (`snapctl destroy {name}@{} DEVICE`), then the clone",
            snapshots.first().map_or("SNAP", String::as_str)
        ),
        Refusal::LaterBookmarks { target, .. } => {
            format!("add -r to destroy the later bookmarks with the rollback (`snapctl rollback -r @{target} DEVICE`)")
        }
        Refusal::LaterSnapshots { target, .. } => {
            format!("add -r to destroy the later snapshots with the rollback (`snapctl rollback -r @{target} DEVICE`)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::no_space_hint;
    use crate::error::SNAPSHOTS_UNCOUNTED;

    #[test]
    fn the_device_full_hint_counts_snapshots_only_when_they_were_counted() {
        assert!(no_space_hint(3, 0).contains("destroy snapshots you no longer need (the pool has 3;"));
        let uncounted = no_space_hint(SNAPSHOTS_UNCOUNTED, 0);
        assert!(uncounted.contains("destroy snapshots you no longer need (`snapctl list DEVICE`"), "{uncounted}");
        assert!(!uncounted.contains(&SNAPSHOTS_UNCOUNTED.to_string()), "{uncounted}");
        assert!(!no_space_hint(0, 0).contains("destroy snapshots"));
    }
}
