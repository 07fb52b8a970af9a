//! Fuzz target `tree_node`: a tree node as the store hands it over (decompressed, checksum
//! already verified), decoded both ways the code does (`EncodedNode::decode` and the diff
//! walk's `decode_leaf`), then every leaf value by the table its kind names: inodes and
//! file records of a file tree; entries of the trees, snapshots, history and dead
//! tables. An input that starts like a zstd frame is also decompressed
//! as a compressed block would be (nodes written by earlier binaries, file data).
//!
//! The expected kind and level are taken from the node's own header, so a mutation gets
//! past that check to the entries. Whatever decodes must encode back to the same bytes:
//! a node the decoder accepts and the encoder refuses would panic when the tree next
//! writes it.

use crate::block::Compression;
use crate::compress::{decompress, decompress_frames_where};
use crate::format::node::{EncodedNode, NODE_BYTES_MAX, NodeBody, TreeKind, decode_leaf};
use crate::format::tables::{
    BookmarkEntry, HistoryCommit, HistoryEntry, HistoryRoot, SnapshotEntry, TreeEntry, decode_dead,
    decode_snapshot_index, encode_ptr, history_key, snapshot_index_key,
};
use crate::fs::inode::{FileKey, Inode, ItemKind};
use crate::fs::record::{RECORD_BYTES, Record, check_kinds};

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Header bytes that name the node's level and kind.
const LEVEL_AT: usize = 4;
const KIND_AT: usize = 5;

pub fn run(data: &[u8]) {
    decode_node(data);
    if data.starts_with(&ZSTD_MAGIC) {
        decompress_block(data);
    }
}

fn decode_node(bytes: &[u8]) {
    let level = bytes.get(LEVEL_AT).copied().unwrap_or(0);
    let kind = bytes.get(KIND_AT).and_then(|&k| TreeKind::from_u8(k)).unwrap_or(TreeKind::Files);
    let decoded = EncodedNode::decode(bytes, kind, level);
    if level == 0 {
        let spans = decode_leaf(bytes, kind);
        assert_eq!(spans.is_ok(), decoded.is_ok(), "decode_leaf and EncodedNode::decode disagree");
        if let (Ok(spans), Ok(EncodedNode { body: NodeBody::Leaf(entries), .. })) = (&spans, &decoded) {
            let from_spans: Vec<_> = spans.iter().map(|s| (s.key(bytes), s.value(bytes))).collect();
            let from_entries: Vec<_> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            assert_eq!(from_spans, from_entries);
        }
    }
    let Ok(node) = decoded else { return };
    assert_eq!(node.encode(), bytes, "{node:?}");
    if let NodeBody::Leaf(entries) = &node.body {
        for (key, value) in entries {
            decode_value(kind, key, value);
        }
    }
}

/// Decodes one leaf entry as its table does; each value that decodes must encode back.
fn decode_value(kind: TreeKind, key: &[u8], value: &[u8]) {
    match kind {
        TreeKind::Files => decode_file_item(key, value),
        TreeKind::Trees => {
            if let Ok(entry) = TreeEntry::decode(key, value) {
                // An entry from before version 10 lacks the counter: it encodes longer,
                // and decodes back to the same entry.
                let encoded = entry.encode_value();
                assert_eq!(TreeEntry::key(entry.id), key);
                assert_eq!(TreeEntry::decode(key, &encoded).unwrap(), entry);
                assert!(encoded == value || encoded.len() == value.len() + 8);
            }
        }
        TreeKind::Snapshots => {
            if let Ok(entry) = SnapshotEntry::decode(key, value) {
                let encoded = (SnapshotEntry::key(entry.tree, &entry.name), entry.encode_value());
                assert_eq!(encoded, (key.to_vec(), value.to_vec()));
            }
        }
        TreeKind::History => {
            if let Ok(entry) = HistoryEntry::decode(key, value) {
                assert_eq!(entry.encode_value(), value);
            }
            if let Ok(commit) = HistoryCommit::decode(key, value) {
                assert_eq!(commit.encode_value(), value);
            }
            if let Ok(root) = HistoryRoot::decode(key, value) {
                assert_eq!((history_key(root.tree, root.txg), root.encode_value()), (key.to_vec(), value.to_vec()));
            }
        }
        TreeKind::SnapshotIndex => {
            if let Ok((tree, txg, name)) = decode_snapshot_index(key, value) {
                assert_eq!(snapshot_index_key(tree, txg, &name), key);
            }
        }
        TreeKind::Bookmarks => {
            if let Ok(entry) = BookmarkEntry::decode(key, value) {
                assert_eq!(
                    (BookmarkEntry::key(entry.tree, &entry.name), entry.encode_value()),
                    (key.to_vec(), value.to_vec())
                );
            }
        }
        TreeKind::Dead => {
            if let Ok((_, _, ptr)) = decode_dead(key, value) {
                assert_eq!(encode_ptr(&ptr), value);
            }
        }
    }
}

/// A file tree's key is the inode (8 bytes, big-endian), the item kind, then the rest.
fn decode_file_item(key: &[u8], value: &[u8]) {
    let Some(kind) = FileKey::parse(key).and_then(|k| k.kind()) else { return };
    if kind == ItemKind::Inode {
        if let Ok(inode) = Inode::decode(value) {
            assert_eq!(inode.encode(), value);
        }
    } else if kind == ItemKind::Record {
        if let Ok(record) = Record::decode(value) {
            let _ = check_kinds(&record);
            assert_eq!(record.encode(), value);
        }
    }
}

/// The input as a zstd or lz4 block holding a whole node, and as one holding a whole file
/// record. Decompressing frame by frame must give what decompressing the block whole gives.
fn decompress_block(stored: &[u8]) {
    let kinds = [Compression::Zstd, Compression::Lz4];
    for (compression, logical_bytes) in
        kinds.into_iter().flat_map(|c| [(c, NODE_BYTES_MAX as u32), (c, RECORD_BYTES as u32)])
    {
        let by_frames = decompress_frames_where(stored, compression, logical_bytes, &|_, _| true);
        let whole = decompress(stored.to_vec(), compression, logical_bytes);
        if let Ok(by_frames) = &by_frames {
            assert_eq!(whole.as_ref().ok(), Some(by_frames), "frames and the whole block differ");
        }
        if let Ok(logical) = whole {
            decode_node(&logical);
        }
        let first_half = |start: usize, _: usize| start < logical_bytes as usize / 2;
        let _ = decompress_frames_where(stored, compression, logical_bytes, &first_half);
    }
}
