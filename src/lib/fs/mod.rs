//! A POSIX-like file tree on top of one copy-on-write B+tree: inodes, directories, hard
//! links, symlinks, extended attributes and file records.

pub mod apply;
pub mod export;
pub mod host_file;
pub mod inode;
pub mod path;
pub mod path_diff;
pub mod record;
pub mod select;
pub mod subset;
pub mod sync;
mod tree_ops;
pub mod validate;
pub mod xattr;

pub use inode::DirEntry;
pub use inode::{FileType, Inode, ROOT_INO, Timespec};

use crate::store::Store;
use crate::tree::Tree;

pub struct FsTree<'a> {
    pub(crate) tree: &'a mut Tree,
    pub(crate) store: &'a mut Store,
    writable: bool,
}

impl<'a> FsTree<'a> {
    pub fn new(tree: &'a mut Tree, store: &'a mut Store, writable: bool) -> FsTree<'a> {
        FsTree { tree, store, writable }
    }

    pub fn store(&mut self) -> &mut Store {
        self.store
    }

    /// The B+tree underneath, to set or read its node cache's bound.
    pub fn tree(&mut self) -> &mut Tree {
        self.tree
    }
}
pub mod pipeline;
