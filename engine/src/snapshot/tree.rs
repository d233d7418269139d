//! Stage 8, tree: chunk references -> file content; entries -> tree objects; sources -> the
//! snapshot's root tree. Input: [`ChunkRef`]s and [`Entry`]s. Output: encoded trees and chunk
//! lists, handed to a store function, and the root [`TreeId`].

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::format::tree::{ChunkRef, Content, Entry, EntryKind, ListRef, Metadata, Tree};
use crate::id::{ListId, TreeId};
use crate::limits::{CHUNKS_PER_LIST, INLINE_CHUNKS, MAX_LISTS_PER_FILE};

/// Accumulates a file's chunk references in order. Memory stays bounded: every
/// [`CHUNKS_PER_LIST`] references are sealed into a chunk-list blob.
#[derive(Default)]
pub struct ContentBuilder {
    pending: Vec<ChunkRef>,
    pending_size: u64,
    lists: Vec<ListRef>,
    size: u64,
}

impl ContentBuilder {
    pub fn push(
        &mut self,
        refs: Vec<ChunkRef>,
        store_list: &dyn Fn(&[ChunkRef]) -> Result<ListId>,
    ) -> Result<()> {
        for r in refs {
            self.pending.push(r);
            self.pending_size += r.len as u64;
            self.size += r.len as u64;
            if self.pending.len() == CHUNKS_PER_LIST {
                self.seal(store_list)?;
            }
        }
        Ok(())
    }

    fn seal(&mut self, store_list: &dyn Fn(&[ChunkRef]) -> Result<ListId>) -> Result<()> {
        if self.lists.len() as u32 >= MAX_LISTS_PER_FILE {
            return Err(Error::invalid(
                "file content",
                "file has more chunks than a file entry can reference",
            ));
        }
        let id = store_list(&self.pending)?;
        self.lists.push(ListRef {
            id,
            size: self.pending_size,
            chunks: self.pending.len() as u32,
        });
        self.pending.clear();
        self.pending_size = 0;
        Ok(())
    }

    pub fn finish(
        mut self,
        store_list: &dyn Fn(&[ChunkRef]) -> Result<ListId>,
    ) -> Result<(u64, Content)> {
        if self.lists.is_empty() && self.pending.len() <= INLINE_CHUNKS {
            return Ok((self.size, Content::Inline(self.pending)));
        }
        if !self.pending.is_empty() {
            self.seal(store_list)?;
        }
        Ok((self.size, Content::Lists(self.lists)))
    }
}

/// A node of the snapshot's top levels, above the sources.
enum Node {
    Dir {
        meta: Metadata,
        children: BTreeMap<Vec<u8>, Node>,
    },
    Leaf(Entry),
}

/// Assembles the root tree from sources placed at absolute snapshot paths.
pub struct RootBuilder {
    children: BTreeMap<Vec<u8>, Node>,
}

impl RootBuilder {
    pub fn new() -> Self {
        RootBuilder {
            children: BTreeMap::new(),
        }
    }

    /// Places `entry` inside the directory at `parents` (components below the root).
    /// `meta_of(depth)` gives the metadata of the directory `parents[..=depth]` if it has to be
    /// created. Fails if the place is taken by another source.
    pub fn insert(
        &mut self,
        parents: &[Vec<u8>],
        entry: Entry,
        meta_of: &dyn Fn(usize) -> Metadata,
    ) -> Result<(), String> {
        let mut children = &mut self.children;
        for (depth, name) in parents.iter().enumerate() {
            let node = children.entry(name.clone()).or_insert_with(|| Node::Dir {
                meta: meta_of(depth),
                children: BTreeMap::new(),
            });
            children = match node {
                Node::Dir { children, .. } => children,
                Node::Leaf(_) => {
                    return Err(format!(
                        "{} is both a source and a directory of another source",
                        String::from_utf8_lossy(name)
                    ))
                }
            };
        }
        if children.contains_key(&entry.name) {
            return Err(format!(
                "two sources are named {}",
                String::from_utf8_lossy(&entry.name)
            ));
        }
        children.insert(entry.name.clone(), Node::Leaf(entry));
        Ok(())
    }

    /// Puts the entries of a source that is the filesystem root itself at the top level.
    pub fn insert_root_entries(&mut self, entries: Vec<Entry>) -> Result<(), String> {
        for entry in entries {
            if self.children.contains_key(&entry.name) {
                return Err(format!(
                    "two sources are named {}",
                    String::from_utf8_lossy(&entry.name)
                ));
            }
            self.children.insert(entry.name.clone(), Node::Leaf(entry));
        }
        Ok(())
    }

    /// Stores every level bottom-up with `store_tree`; returns the root tree id.
    pub fn build(self, store_tree: &dyn Fn(&Tree) -> Result<TreeId>) -> Result<TreeId> {
        fn build_dir(
            children: BTreeMap<Vec<u8>, Node>,
            store_tree: &dyn Fn(&Tree) -> Result<TreeId>,
        ) -> Result<TreeId> {
            let mut entries = Vec::with_capacity(children.len());
            for (name, node) in children {
                entries.push(match node {
                    Node::Leaf(entry) => entry,
                    Node::Dir { meta, children } => Entry {
                        name,
                        meta,
                        kind: EntryKind::Dir(build_dir(children, store_tree)?),
                    },
                });
            }
            store_tree(&Tree { entries })
        }
        build_dir(self.children, store_tree)
    }
}

impl Default for RootBuilder {
    fn default() -> Self {
        Self::new()
    }
}
