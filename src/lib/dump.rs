//! `dump`: prints labels, commit records, the pool root and tree nodes readably, as zdb
//! does. For people debugging a pool, not for scripts.

use crate::block::{BLOCK_BYTES, BlockPtr};
use crate::error::Result;
use crate::format::commit::CommitRecord;
use crate::format::label::{Label, REGION_BLOCKS, RING_SLOTS, region_start};
use crate::format::node::{NodeBody, TreeKind};
use crate::fs::inode::{ItemKind, key_is};
use crate::fs::record::Record;
use crate::pool::{Pool, guid_hex};
use crate::tree::{WalkStep, walk_nodes};
use std::fmt::Write;

pub fn describe_ptr(p: &BlockPtr) -> String {
    let ditto = if p.ditto.0 == 0 { String::new() } else { format!(",{}", p.ditto.0) };
    format!(
        "{}@{}{ditto} birth={} stored={} logical={} {:?} level={} cksum={}",
        p.kind.name(),
        p.addr.0,
        p.birth.0,
        p.stored_bytes,
        p.logical_bytes,
        p.compression,
        p.level,
        p.checksum[..6].iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn printable(bytes: &[u8]) -> String {
    if bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Labels and every valid commit record in both rings.
pub fn dump_labels(pool: &mut Pool, out: &mut String) -> Result<()> {
    for index in 0..2u32 {
        let start = region_start(index, pool.label.device_bytes);
        // Past the end of a shrunk device it reads as zeros: "missing".
        let region = crate::pool::read_blocks(pool.store.dev.as_ref(), start, REGION_BLOCKS)?;
        match Label::decode(&region[..BLOCK_BYTES as usize]) {
            Ok(Some(l)) => writeln!(
                out,
                "label {index} at block {start}: version={} guid={} device_bytes={} created_ns={} incompat={:#x} ro_compat={:#x}",
                l.version,
                guid_hex(&l.pool_guid),
                l.device_bytes,
                l.created_ns,
                l.features_incompat,
                l.features_ro_compat
            ),
            Ok(None) => writeln!(out, "label {index} at block {start}: missing"),
            Err(e) => writeln!(out, "label {index} at block {start}: BAD ({e})"),
        }
        .expect("write to String");
        let mut commits = Vec::new();
        for slot in 0..RING_SLOTS as usize {
            let at = (slot + 1) * BLOCK_BYTES as usize;
            if let Ok(Some(c)) = CommitRecord::decode(&region[at..at + BLOCK_BYTES as usize], &pool.label.pool_guid) {
                commits.push((slot, c));
            }
        }
        commits.sort_by_key(|(_, c)| c.txg);
        for (slot, c) in commits {
            writeln!(
                out,
                "  commit slot {slot:2}: txg={} time_ns={} root={}",
                c.txg.0,
                c.time_ns,
                describe_ptr(&c.root)
            )
            .expect("write to String");
        }
    }
    Ok(())
}

pub fn dump_root(pool: &Pool, out: &mut String) {
    let r = &pool.root;
    let _ = writeln!(out, "pool root of txg {} (time_ns {}):", r.txg.0, r.time_ns);
    for (name, p) in [
        ("trees", &r.trees),
        ("snapshots", &r.snapshots),
        ("history", &r.history),
        ("dead", &r.dead),
        ("space_log", &r.space_log),
    ] {
        let _ = writeln!(out, "  {name:10} {}", p.as_ref().map_or("null".to_string(), describe_ptr));
    }
    let _ = writeln!(
        out,
        "  space_log_blocks={} space_base_blocks={} next_tree_id={} dead_bytes={}",
        r.space_log_blocks, r.space_base_blocks, r.next_tree_id, r.dead_bytes
    );
    let _ = writeln!(
        out,
        "  config: history_seconds={} history_reserve_percent={} compression={}",
        r.config.history_seconds,
        r.config.history_reserve_percent,
        r.config.compression.name()
    );
}

/// A file record's blocks: its base, and the overlay laid over it.
fn describe_record(r: &Record) -> String {
    let mut out = format!("record of {} bytes: {}", r.logical_bytes(), describe_ptr(&r.ptr));
    if let Some(o) = &r.overlay {
        let _ = write!(out, " + overlay pieces={:#010x} {}", o.mask, describe_ptr(&o.ptr));
    }
    out
}

/// Every node of a tree with its entries (values shortened; file records decoded).
pub fn dump_tree(pool: &mut Pool, kind: TreeKind, root: &BlockPtr, out: &mut String) -> Result<()> {
    walk_nodes(&mut pool.store, root, kind, &mut |ptr, node| {
        let indent = "  ".repeat((root.level - ptr.level) as usize);
        let _ = writeln!(out, "{indent}node {}", describe_ptr(ptr));
        match &node.body {
            NodeBody::Leaf(entries) => {
                for (k, v) in entries {
                    let record = (kind == TreeKind::Files && key_is(k, ItemKind::Record))
                        .then(|| Record::decode(v).ok())
                        .flatten();
                    let shown = if let Some(r) = record {
                        describe_record(&r)
                    } else if v.len() > 48 {
                        format!("{}… ({} bytes)", printable(&v[..48]), v.len())
                    } else {
                        printable(v)
                    };
                    let _ = writeln!(out, "{indent}  {} = {}", printable(k), shown);
                }
            }
            NodeBody::Internal(children) => {
                for (k, p) in children {
                    let _ = writeln!(out, "{indent}  child {} -> {}@{}", printable(k), p.kind.name(), p.addr.0);
                }
            }
        }
        Ok(WalkStep::Descend)
    })
}

/// The whole pool: labels, root, metadata tables, and the head of every file tree.
pub fn dump_pool(pool: &mut Pool, with_files: bool) -> Result<String> {
    let mut out = String::new();
    dump_labels(pool, &mut out)?;
    dump_root(pool, &mut out);
    for (kind, root) in pool.meta_roots() {
        let _ = writeln!(out, "{} table:", kind.name());
        if let Some(root) = root {
            dump_tree(pool, kind, &root, &mut out)?;
        }
    }
    if with_files {
        let trees: Vec<_> = pool.trees()?.map(|t| (t.name.clone(), t.root)).collect();
        for (name, root) in trees {
            let _ = writeln!(out, "file tree {name:?}:");
            if let Some(root) = root {
                dump_tree(pool, TreeKind::Files, &root, &mut out)?;
            }
        }
    }
    Ok(out)
}
