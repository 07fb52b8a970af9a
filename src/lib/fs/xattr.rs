//! Extended attributes: values up to 64 KiB (Linux's XATTR_SIZE_MAX), in tree items.
//!
//! A tree value holds at most 4800 bytes (format/node.rs), so a value over
//! XATTR_CHUNK_BYTES is cut: its first XATTR_CHUNK_BYTES stay in the attribute's own item
//! and the rest go into continuation items 1, 2, ... of XATTR_CHUNK_BYTES each, the last
//! possibly shorter (keys in fs/inode.rs: name ‖ 0 ‖ index, right after the attribute's
//! own key). Everything stays in tree nodes, so copy-on-write, snapshots sharing nodes,
//! birth times, freeing, check, scrub and send need nothing new for them.
//!
//! Invariants (check and the receiver prove them, fs/validate.rs): an attribute with
//! continuations has a full first item; continuations are numbered 1..=n without a gap,
//! all full but the last, which holds 1..=XATTR_CHUNK_BYTES bytes; none exists without
//! its attribute. A value of up to XATTR_CHUNK_BYTES has no continuation, so pools
//! written before large values existed read unchanged. The first commit that stores a
//! continuation sets the label's `large_xattrs` bit (pool/features.rs): an older binary
//! would take continuations for attributes of their own.

use super::FsTree;
use super::inode::{ItemKind, key, parse_xattr_suffix, xattr_key, xattr_part_key};
use super::tree_ops::NAME_BYTES_MAX;
use crate::error::{Error, Result};
use crate::format::label::FEATURE_LARGE_XATTRS;

// The sizes live with the key layout, which depends on them (inode.rs).
pub use super::inode::{XATTR_CHUNK_BYTES, XATTR_PARTS_MAX, XATTR_VALUE_BYTES_MAX};
const _: () = assert!(XATTR_CHUNK_BYTES <= crate::format::node::VALUE_BYTES_MAX);
const _: () = assert!(9 + NAME_BYTES_MAX + 2 <= crate::format::node::KEY_BYTES_MAX);
const _: () = assert!(XATTR_PARTS_MAX <= u8::MAX as usize);

/// An extended attribute as `check` accepts it: its name, and its whole value's size.
pub fn check_xattr(name: &[u8], value_bytes: usize) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.contains(&0) {
        return Err(format!(
            "extended attribute name {:?} ({} bytes): 1 to {NAME_BYTES_MAX} bytes, no NUL",
            String::from_utf8_lossy(name),
            name.len()
        ));
    }
    if value_bytes > XATTR_VALUE_BYTES_MAX {
        return Err(format!(
            "extended attribute {} has a value of {value_bytes} bytes; snapfs stores at most {XATTR_VALUE_BYTES_MAX} \
             (Linux's limit)",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

/// One attribute put together from its items: the attribute's own value, then each
/// continuation (index, bytes) in key order. Says what is wrong if they break the
/// invariants.
pub fn assemble(name: &[u8], head: Option<&[u8]>, parts: &[(u8, &[u8])]) -> std::result::Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(name);
    let Some(head) = head else {
        let (index, _) = parts.first().ok_or_else(|| format!("extended attribute {text} has no items"))?;
        return Err(format!("extended attribute {text} has continuation {index} but no first item"));
    };
    if !parts.is_empty() && head.len() != XATTR_CHUNK_BYTES {
        return Err(format!(
            "extended attribute {text} has continuations after a first item of {} bytes (not {XATTR_CHUNK_BYTES})",
            head.len()
        ));
    }
    let mut value = head.to_vec();
    for (i, (index, bytes)) in parts.iter().enumerate() {
        if *index as usize != i + 1 || i >= XATTR_PARTS_MAX {
            return Err(format!(
                "extended attribute {text} has continuation {index} where {} belongs (at most {XATTR_PARTS_MAX})",
                i + 1
            ));
        }
        let last = i + 1 == parts.len();
        if bytes.is_empty() || bytes.len() > XATTR_CHUNK_BYTES || (!last && bytes.len() != XATTR_CHUNK_BYTES) {
            return Err(format!("extended attribute {text} has a continuation {index} of {} bytes", bytes.len()));
        }
        value.extend_from_slice(bytes);
    }
    check_xattr(name, value.len())?;
    Ok(value)
}

/// An attribute's items as stored: its own value, and its continuations (index, bytes)
/// in order.
pub(crate) type XattrItems = (Option<Vec<u8>>, Vec<(u8, Vec<u8>)>);

/// An inode's attributes from its Xattr items in key order: (name, value), by name.
fn collect(items: Vec<(Vec<u8>, Vec<u8>)>, prefix_len: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    // (name, head value, continuations) of the attribute being put together.
    type Pending = (Vec<u8>, Vec<u8>, Vec<(u8, Vec<u8>)>);
    let finish = |(name, head, parts): Pending| {
        let parts: Vec<(u8, &[u8])> = parts.iter().map(|(i, b)| (*i, b.as_slice())).collect();
        assemble(&name, Some(&head), &parts).map(|v| (name, v)).map_err(Error::corrupt)
    };
    let mut out = Vec::new();
    let mut pending: Option<Pending> = None;
    for (k, v) in items {
        let suffix = &k[prefix_len..];
        let (name, index) = parse_xattr_suffix(suffix).ok_or_else(|| {
            Error::corrupt(format!("extended attribute key {:?} with a NUL byte", String::from_utf8_lossy(suffix)))
        })?;
        if index == 0 {
            if let Some(done) = pending.take() {
                out.push(finish(done)?);
            }
            pending = Some((name.to_vec(), v, Vec::new()));
            continue;
        }
        match pending.as_mut() {
            Some((n, _, parts)) if n.as_slice() == name => parts.push((index, v)),
            _ => {
                return Err(Error::corrupt(format!(
                    "extended attribute {} has continuation {index} but no first item",
                    String::from_utf8_lossy(name)
                )));
            }
        }
    }
    if let Some(done) = pending.take() {
        out.push(finish(done)?);
    }
    Ok(out)
}

impl<'a> FsTree<'a> {
    /// Every attribute of an inode, whole, in name order.
    pub fn xattrs(&mut self, ino: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let prefix = key(ino, ItemKind::Xattr, &[]);
        let items = self.tree.scan_prefix(self.store, &prefix)?;
        collect(items, prefix.len())
    }

    /// One attribute's value, whole, or None.
    pub fn xattr(&mut self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let (head, parts) = self.xattr_items(ino, name)?;
        if head.is_none() && parts.is_empty() {
            return Ok(None);
        }
        let parts: Vec<(u8, &[u8])> = parts.iter().map(|(i, b)| (*i, b.as_slice())).collect();
        assemble(name, head.as_deref(), &parts).map(Some).map_err(Error::corrupt)
    }

    /// An attribute's items as stored, not yet checked.
    pub(crate) fn xattr_items(&mut self, ino: u64, name: &[u8]) -> Result<XattrItems> {
        let head = self.tree.get(self.store, &xattr_key(ino, name))?;
        Ok((head, self.xattr_parts(ino, name)?))
    }

    /// The continuations of an attribute: (index, bytes), in order.
    fn xattr_parts(&mut self, ino: u64, name: &[u8]) -> Result<Vec<(u8, Vec<u8>)>> {
        let mut prefix = xattr_key(ino, name);
        prefix.push(0);
        let mut out = Vec::new();
        for (k, v) in self.tree.scan_prefix(self.store, &prefix)? {
            match parse_xattr_suffix(&k[9..]) {
                Some((n, index)) if n == name && index != 0 => out.push((index, v)),
                _ => {
                    let suffix = String::from_utf8_lossy(&k[9..]).into_owned();
                    return Err(Error::corrupt(format!("extended attribute key {suffix:?} with a NUL byte")));
                }
            }
        }
        Ok(out)
    }

    /// Sets an attribute, replacing its value whole (continuations it no longer needs
    /// go).
    pub fn set_xattr(&mut self, ino: u64, name: &[u8], value: &[u8]) -> Result<()> {
        self.must_write();
        check_xattr(name, value.len()).map_err(Error::invalid)?;
        let mut chunks = value.chunks(XATTR_CHUNK_BYTES);
        let head = chunks.next().unwrap_or(&[]);
        self.tree.insert(self.store, &xattr_key(ino, name), head)?;
        let mut index = 0u8;
        for chunk in chunks {
            index += 1;
            self.tree.insert(self.store, &xattr_part_key(ino, name, index), chunk)?;
        }
        if index > 0 {
            self.store.features_needed |= FEATURE_LARGE_XATTRS;
        }
        for (old, _) in self.xattr_parts(ino, name)? {
            if old > index {
                self.tree.remove(self.store, &xattr_part_key(ino, name, old))?;
            }
        }
        Ok(())
    }

    /// Removes an attribute and its continuations.
    pub fn remove_xattr(&mut self, ino: u64, name: &[u8]) -> Result<()> {
        self.must_write();
        for (index, _) in self.xattr_parts(ino, name)? {
            self.tree.remove(self.store, &xattr_part_key(ino, name, index))?;
        }
        self.tree.remove(self.store, &xattr_key(ino, name))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_and_put_back_together() {
        let value: Vec<u8> = (0..XATTR_VALUE_BYTES_MAX).map(|i| (i * 7 % 251) as u8).collect();
        let mut chunks = value.chunks(XATTR_CHUNK_BYTES);
        let head = chunks.next().unwrap();
        let parts: Vec<(u8, &[u8])> = chunks.enumerate().map(|(i, c)| (i as u8 + 1, c)).collect();
        assert_eq!(parts.len(), XATTR_PARTS_MAX);
        assert_eq!(assemble(b"user.a", Some(head), &parts).unwrap(), value);
        assert_eq!(assemble(b"user.a", Some(b"small"), &[]).unwrap(), b"small");
    }

    #[test]
    fn broken_continuations_are_named() {
        let full = vec![1u8; XATTR_CHUNK_BYTES];
        type Case<'a> = (Option<&'a [u8]>, Vec<(u8, &'a [u8])>, &'a str);
        let cases: Vec<Case> = vec![
            (None, vec![(1, b"x")], "continuation 1 but no first item"),
            (Some(b"short"), vec![(1, b"x")], "after a first item of 5 bytes"),
            (Some(&full), vec![(2, b"x")], "continuation 2 where 1 belongs"),
            (Some(&full), vec![(1, b"x"), (2, b"y")], "a continuation 1 of 1 bytes"),
            (Some(&full), vec![(1, b"")], "a continuation 1 of 0 bytes"),
        ];
        for (head, parts, words) in cases {
            let e = assemble(b"user.a", head, &parts).unwrap_err();
            assert!(e.contains(words), "{e}");
        }
        let many: Vec<(u8, &[u8])> = (1..=16).map(|i| (i, &full[..])).collect();
        let e = assemble(b"user.a", Some(&full), &many).unwrap_err();
        assert!(e.contains("continuation 16 where 16 belongs (at most 15)"), "{e}");
    }
}
