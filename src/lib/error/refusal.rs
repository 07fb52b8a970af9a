//! Commands refused because they would destroy or lose something, as facts. The front
//! end says how to go ahead anyway, or what to do instead (`cli::hint`).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Formatting would destroy the snapfs pool on `device` (without --force).
    FormatOverPool { device: String },
    /// Formatting would destroy what `device` holds (`found`: "an ext4 file system").
    FormatOverForeign { device: String, found: String },
    /// Exporting into `dir`, which holds files.
    ExportIntoNonEmpty { dir: String },
    /// A file of the tree (`path` on the host) is larger than any host file can be.
    FileTooLarge { path: String, bytes: u64, max_bytes: u64 },
    /// A host file's extended attribute `name` that the tree cannot store.
    XattrUnstorable { path: String, name: String, why: String },
    /// Writing a binary stream to a terminal.
    StreamToTerminal,
    /// Destroying `@base`, the base of the saved partial receive of `@receiving`.
    BaseOfPartialReceive { base: String, receiving: String },
    /// Rolling back to `@target`, which snapshots taken after it (`later`, oldest
    /// first) would outlive, without leave to destroy them.
    LaterSnapshots { target: String, later: Vec<String> },
    /// Rolling back to `@target`, behind the bookmarks `later`.
    LaterBookmarks { target: String, later: Vec<String> },
    /// Destroying `@name`, which holds with `tags` keep.
    HeldSnapshot { name: String, tags: Vec<String> },
    /// Rolling back while the partial receive of `@receiving` is saved on the pool.
    PartialReceiveSaved { receiving: String },
    /// Destroying or dropping `what` (a snapshot, a retained commit), which the reader
    /// `holder` has pinned (pool/pins.rs).
    BeingRead { what: String, holder: String },
    /// Destroying `@snapshot`, the origin of the clones `clones`.
    CloneOrigin { snapshot: String, clones: Vec<String> },
    /// Destroying `@snapshot`, which the merged snapshots `merges` take files from.
    MergedInto { snapshot: String, merges: Vec<String> },
    /// Destroying `@snapshot`, which subset snapshot `@subset` (a refinement or a merge)
    /// is still being extracted from (pool/extraction.rs).
    ExtractedFrom { snapshot: String, subset: String },
    /// `what` needs the whole tree of subset snapshot `@name`, still being extracted.
    StillExtracting { name: String, what: String },
    /// Destroying clone `name`, which still has the snapshots `snapshots`.
    CloneHasSnapshots { name: String, snapshots: Vec<String> },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::FormatOverPool { device } => write!(f, "{device} already holds a snapfs pool"),
            Refusal::FormatOverForeign { device, found } => write!(f, "{device} holds {found}"),
            Refusal::ExportIntoNonEmpty { dir } => write!(f, "{dir} is not empty"),
            Refusal::FileTooLarge { path, bytes, max_bytes } => {
                write!(f, "{path}: the tree's file is {bytes} bytes, past the largest file, {max_bytes}")
            }
            Refusal::XattrUnstorable { path, why, .. } => write!(f, "{path}: {why}"),
            Refusal::StreamToTerminal => {
                write!(f, "standard output is a terminal: refusing to write a binary stream to it")
            }
            Refusal::BaseOfPartialReceive { base, receiving } => {
                write!(f, "@{base} is the base of the partial receive of @{receiving} saved on this pool")
            }
            Refusal::HeldSnapshot { name, tags } => {
                let noun = if tags.len() == 1 { "hold" } else { "holds" };
                write!(f, "@{name} is held ({noun} {})", tags.join(", "))
            }
            Refusal::BeingRead { what, holder } => write!(f, "{what} is being read by {holder}"),
            Refusal::CloneOrigin { snapshot, clones } => {
                let noun = if clones.len() == 1 { "clone" } else { "clones" };
                // A thousand clones make no readable message: the first few, and a count.
                let named = clones.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
                let more = clones.len().saturating_sub(5);
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                write!(f, "@{snapshot} is the origin of the {noun} {named}{more}")
            }
            Refusal::MergedInto { snapshot, merges } => {
                let names: Vec<String> = merges.iter().map(|n| format!("@{n}")).collect();
                write!(f, "@{snapshot} holds files that the merged snapshot {} took from it", names.join(", "))
            }
            Refusal::ExtractedFrom { snapshot, subset } => {
                write!(f, "@{snapshot} is a source of @{subset}, whose files are still being extracted from it")
            }
            Refusal::StillExtracting { name, what } => write!(
                f,
                "@{name} is a subset snapshot whose files are still being extracted: {what} needs its whole tree"
            ),
            Refusal::CloneHasSnapshots { name, snapshots } => {
                let names: Vec<String> = snapshots.iter().map(|s| format!("{name}@{s}")).collect();
                write!(f, "clone {name} has snapshots: {}", names.join(", "))
            }
            Refusal::PartialReceiveSaved { receiving } => {
                write!(f, "the partial receive of @{receiving} is saved on this pool")
            }
            Refusal::LaterBookmarks { target, later } => {
                let names: Vec<String> = later.iter().map(|n| format!("#{n}")).collect();
                let noun = if later.len() == 1 { "bookmark" } else { "bookmarks" };
                write!(f, "{noun} {} made after @{target} would no longer lead to the live tree", names.join(", "))
            }
            Refusal::LaterSnapshots { target, later } => {
                let names: Vec<String> = later.iter().map(|n| format!("@{n}")).collect();
                let (noun, verb) = if later.len() == 1 { ("snapshot", "was") } else { ("snapshots", "were") };
                write!(f, "@{target} is not the newest snapshot: {noun} {} {verb} taken after it", names.join(", "))
            }
        }
    }
}
