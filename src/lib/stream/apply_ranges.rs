//! Applies a part from a bookmark (FEATURE_RANGES): each RANGE says which keys of the
//! target the records after it replace; the target's items in that range that no record
//! names go. The keys outside every range stay as the base has them (the sender's
//! walk, tree/born_after.rs, says why that is exact).

use crate::error::{Error, Result};
use crate::fs::FsTree;
use std::collections::VecDeque;

/// The open range: its end, the target's items in it not yet reached, and the last key
/// a record named.
struct Open {
    first: Vec<u8>,
    end: Option<Vec<u8>>,
    old: VecDeque<(Vec<u8>, Vec<u8>)>,
    last: Option<Vec<u8>>,
}

#[derive(Default)]
pub struct RangeApplier {
    open: Option<Open>,
    /// The end of the last range closed (Some(None): it ran to the end of the keys).
    closed_end: Option<Option<Vec<u8>>>,
}

impl RangeApplier {
    /// Opens the range [first, end), closing the one before; ranges come in key order
    /// and do not overlap.
    pub fn range(&mut self, fs: &mut FsTree, first: Vec<u8>, end: Option<Vec<u8>>) -> Result<()> {
        self.close(fs)?;
        match &self.closed_end {
            Some(None) => return Err(Error::stream("RANGE after a range that ran to the end of the keys")),
            Some(Some(before)) if &first < before => {
                return Err(Error::stream("RANGE that starts before the previous one ends"));
            }
            _ => {}
        }
        let old = fs.items_in(&first, end.as_deref())?.into();
        self.open = Some(Open { first, end, old, last: None });
        Ok(())
    }

    /// Moves the open range on to `key`, which a record names: the target's items before
    /// it go. Returns the target's item under `key`, if it has one.
    pub fn advance(&mut self, fs: &mut FsTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(open) = self.open.as_mut() else {
            return Err(Error::stream("a record of a part from a bookmark before any RANGE"));
        };
        let inside = key >= open.first.as_slice() && open.end.as_deref().is_none_or(|end| key < end);
        if !inside || open.last.as_deref().is_some_and(|last| key <= last) {
            return Err(Error::stream("a record whose key is outside its RANGE or not after the one before"));
        }
        open.last = Some(key.to_vec());
        while let Some((old_key, _)) = open.old.front() {
            if old_key.as_slice() >= key {
                break;
            }
            let (old_key, old_value) = open.old.pop_front().expect("a front item");
            fs.remove_item(&old_key, &old_value)?;
        }
        match open.old.front() {
            Some((old_key, _)) if old_key.as_slice() == key => Ok(open.old.pop_front().map(|(_, v)| v)),
            _ => Ok(None),
        }
    }

    /// Closes the open range: the target's items in it that no record named go.
    pub fn close(&mut self, fs: &mut FsTree) -> Result<()> {
        if let Some(open) = self.open.take() {
            for (key, value) in open.old {
                fs.remove_item(&key, &value)?;
            }
            self.closed_end = Some(open.end);
        }
        Ok(())
    }
}
