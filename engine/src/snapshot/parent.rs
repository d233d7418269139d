//! Change detection against the parent snapshot: its tree at a directory, its entry at a path,
//! and whether the content of an unchanged file is still stored (verify removes damaged blobs
//! from the index, and the next snapshot must store them again).
//! Input: the parent snapshot's root tree id. Output: trees and entries of the parent, read
//! through the index; a parent that cannot be read only costs change detection.

use super::Pipeline;
use crate::error::Result;
use crate::format::tree::{Content, Entry, EntryKind, Tree};
use crate::id::BlobId;

impl Pipeline<'_> {
    pub(super) fn parent_tree(&self, parent: Option<&Entry>) -> Option<Tree> {
        let Some(Entry {
            kind: EntryKind::Dir(id),
            ..
        }) = parent
        else {
            return None;
        };
        // A parent tree that cannot be read only costs change detection, never correctness.
        let reader = self.repo.index().reader().ok()?;
        self.repo.read_tree(&reader, *id).ok()
    }

    /// Whether every blob a parent's file content references is stored (chunk lists' own chunks
    /// only when verify has recorded damage; otherwise the list ids stand for them).
    pub(super) fn content_stored(&self, content: &Content) -> Result<bool> {
        let direct: Vec<BlobId> = match content {
            Content::Inline(refs) => refs.iter().map(|r| r.id.into()).collect(),
            Content::Lists(lists) => lists.iter().map(|l| l.id.into()).collect(),
        };
        if !self.writer.all_stored(&direct)? {
            return Ok(false);
        }
        if let (true, Content::Lists(lists)) = (self.check_lists, content) {
            let reader = self.repo.index().reader()?;
            for list in lists {
                let Ok(refs) = self.repo.read_list(&reader, list.id) else {
                    return Ok(false);
                };
                let ids: Vec<BlobId> = refs.iter().map(|r| r.id.into()).collect();
                if !self.writer.all_stored(&ids)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The parent snapshot's entry at `components` (from the root), if any.
    pub(super) fn parent_entry_at(&self, components: &[Vec<u8>]) -> Option<Entry> {
        let mut tree = self.parent_tree(Some(&Entry {
            name: b"root".to_vec(),
            meta: Default::default(),
            kind: EntryKind::Dir(self.parent_root?),
        }))?;
        for (i, name) in components.iter().enumerate() {
            let entry = tree.find(name)?.clone();
            if i + 1 == components.len() {
                return Some(entry);
            }
            tree = self.parent_tree(Some(&entry))?;
        }
        None
    }
}
