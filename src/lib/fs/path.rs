//! Paths inside a file tree: "a/b/c", with or without a leading '/'. Symlinks are not
//! followed: a path names the link itself, as lstat(2) does.

use super::inode::ROOT_INO;
use super::tree_ops::check_name;
use super::{FileType, FsTree};
use crate::error::{Error, Result};

/// Path components, with "." dropped; ".." is refused (paths are relative to the root).
pub fn components(path: &str) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part == ".." {
            return Err(Error::invalid(format!("path {path:?} contains '..'; give paths from the tree's root")));
        }
        check_name(part.as_bytes())?;
        out.push(part.as_bytes());
    }
    Ok(out)
}

impl<'a> FsTree<'a> {
    /// The inode a path names.
    pub fn resolve(&mut self, path: &str) -> Result<u64> {
        let mut ino = ROOT_INO;
        let parts = components(path)?;
        for (i, part) in parts.iter().enumerate() {
            let entry = self.lookup(ino, part)?.ok_or_else(|| Error::not_found(format!("path {path:?}")))?;
            if i + 1 < parts.len() && entry.file_type != FileType::Directory {
                return Err(Error::invalid(format!(
                    "{:?} in path {path:?} is not a directory",
                    String::from_utf8_lossy(part)
                )));
            }
            ino = entry.ino;
        }
        Ok(ino)
    }

    /// The directory that holds the last component, and that component.
    pub fn resolve_parent(&mut self, path: &str) -> Result<(u64, Vec<u8>)> {
        let parts = components(path)?;
        let Some((last, dirs)) = parts.split_last() else {
            return Err(Error::invalid("the path names the root directory"));
        };
        let mut ino = ROOT_INO;
        for part in dirs {
            let entry = self.lookup(ino, part)?.ok_or_else(|| Error::not_found(format!("path {path:?}")))?;
            if entry.file_type != FileType::Directory {
                return Err(Error::invalid(format!(
                    "{:?} in path {path:?} is not a directory",
                    String::from_utf8_lossy(part)
                )));
            }
            ino = entry.ino;
        }
        Ok((ino, last.to_vec()))
    }
}
