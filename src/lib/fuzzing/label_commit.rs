//! Fuzz target `label_commit`: the blocks an open reads before any tree, in its order:
//! the label, the commit records, the pool root, the space log and the receive state.
//!
//! The input is one block (cut or zero-padded to 4 KiB for the label and the commit
//! record), decoded as each structure. The label and the commit record are also decoded
//! sealed: with their magic and their own blake3 checksum set, and the commit record's
//! pool guid taken as the one expected, so that mutations reach the fields behind the
//! checksum. Whatever decodes must encode back to the same bytes (or, for the pool root,
//! whose version follows its fields, to an equal value).

use crate::alloc::space_log::SpaceLogBlock;
use crate::block::BLOCK_BYTES;
use crate::checksum::blake3;
use crate::format::commit::{COMMIT_CHECKSUM_OFFSET, COMMIT_MAGIC, CommitRecord};
use crate::format::label::{LABEL_CHECKSUM_OFFSET, LABEL_MAGIC, Label};
use crate::format::pool_root::{POOL_ROOT_BYTES, PoolRoot};
use crate::format::receive_state::ReceiveState;

pub fn run(data: &[u8]) {
    let mut block = data.to_vec();
    block.resize(BLOCK_BYTES as usize, 0);
    decode_label(&block);
    decode_label(&sealed_label(block.clone()));
    let guid: [u8; 16] = block[16..32].try_into().expect("16 bytes");
    decode_commit(&block, &guid);
    decode_commit(&sealed_commit(block.clone()), &guid);
    decode_pool_root(&block[..POOL_ROOT_BYTES]);
    decode_space_log(data);
    decode_receive_state(data);
}

fn sealed_label(mut block: Vec<u8>) -> Vec<u8> {
    block[..8].copy_from_slice(&LABEL_MAGIC);
    let sum = blake3(&block[..LABEL_CHECKSUM_OFFSET]);
    block[LABEL_CHECKSUM_OFFSET..].copy_from_slice(&sum);
    block
}

fn sealed_commit(mut block: Vec<u8>) -> Vec<u8> {
    block[..8].copy_from_slice(&COMMIT_MAGIC);
    let sum = blake3(&block[..COMMIT_CHECKSUM_OFFSET]);
    block[COMMIT_CHECKSUM_OFFSET..COMMIT_CHECKSUM_OFFSET + 32].copy_from_slice(&sum);
    block
}

fn decode_label(block: &[u8]) {
    if let Ok(Some(label)) = Label::decode(block) {
        let _ = label.read_only_reason();
        assert_eq!(label.encode(), block, "{label:?}");
    }
}

fn decode_commit(block: &[u8], pool_guid: &[u8; 16]) {
    if let Ok(Some(commit)) = CommitRecord::decode(block, pool_guid) {
        assert_eq!(commit.encode(), block, "{commit:?}");
    }
}

fn decode_pool_root(bytes: &[u8]) {
    if let Ok(root) = PoolRoot::decode(bytes) {
        assert_eq!(PoolRoot::decode(&root.encode()).expect("an encoded pool root decodes"), root);
    }
}

fn decode_space_log(bytes: &[u8]) {
    if let Ok(block) = SpaceLogBlock::decode(bytes) {
        assert_eq!(block.encode(), bytes, "{block:?}");
    }
}

fn decode_receive_state(bytes: &[u8]) {
    if let Ok(state) = ReceiveState::decode(bytes) {
        assert_eq!(state.encode(), bytes, "{state:?}");
    }
}
