//! The mark phase: every blob a snapshot reaches, walking each tree once however many
//! snapshots share it. Trees and chunk lists are read one at a time (memory holds the set of
//! ids, never the trees).

use std::collections::HashSet;

use super::CondemnedBlobs;
use crate::error::{Error, Result};
use crate::format::pack::{self, BlobKind};
use crate::format::tree::{self, Content, EntryKind};
use crate::id::{BlobId, TreeId};
use crate::index::{BlobLocation, IndexReader};
use crate::repo::{Repository, SnapshotInfo};
use crate::storage::ObjectKind;

pub(super) struct Marker<'a> {
    repo: &'a Repository,
    reader: &'a IndexReader<'a>,
    /// Phase 2: where blobs of condemned packs are; blobs found only there are rescued.
    condemned: Option<&'a CondemnedBlobs>,
    live: HashSet<BlobId>,
    rescued: HashSet<BlobId>,
    /// Reachable blobs found in no pack.
    pub missing: u64,
}

impl<'a> Marker<'a> {
    pub fn new(
        repo: &'a Repository,
        reader: &'a IndexReader<'a>,
        condemned: Option<&'a CondemnedBlobs>,
    ) -> Self {
        Marker {
            repo,
            reader,
            condemned,
            live: HashSet::new(),
            rescued: HashSet::new(),
            missing: 0,
        }
    }

    pub fn into_live(self) -> HashSet<BlobId> {
        self.live
    }

    pub fn into_rescued(self) -> HashSet<BlobId> {
        self.rescued
    }

    /// Where a blob is: the index, else (phase 2) a condemned pack, which marks it for rescue.
    fn locate(&mut self, id: BlobId) -> Result<Option<BlobLocation>> {
        if let Some(loc) = self.reader.lookup(&id)? {
            return Ok(Some(loc));
        }
        match self.condemned.and_then(|c| c.get(&id)) {
            Some(loc) => {
                self.rescued.insert(id);
                Ok(Some(loc))
            }
            None => {
                self.missing += 1;
                Ok(None)
            }
        }
    }

    /// Marks a blob; true when it was not marked before.
    fn mark(&mut self, id: BlobId) -> Result<Option<Option<BlobLocation>>> {
        if !self.live.insert(id) {
            return Ok(None);
        }
        self.locate(id).map(Some)
    }

    /// Marks a chunk, and a delta chunk's base with it (a delta is readable only with its base,
    /// format-spec/01-repository.md §1.5).
    fn mark_chunk(&mut self, id: BlobId) -> Result<()> {
        if let Some(Some(loc)) = self.mark(id)? {
            if let Some(base) = loc.encoding.base() {
                self.mark(base)?;
            }
        }
        Ok(())
    }

    fn read(&self, id: BlobId, kind: BlobKind, loc: &BlobLocation, what: &str) -> Result<Vec<u8>> {
        let stored = self.repo.backend().read_range(
            ObjectKind::Pack,
            &loc.pack.to_hex(),
            loc.offset,
            loc.stored_len as u64,
        )?;
        pack::open_blob(
            self.repo.encryption(),
            id,
            kind,
            loc.encoding,
            loc.raw_len,
            &stored,
        )
        .map_err(|e| Error::Corrupt {
            object: format!("{what} {} in pack {}", id.to_hex(), loc.pack.to_hex()),
            reason: format!(
                "{e}; prune cannot know what it reaches and changes nothing (run `vault verify`)"
            ),
        })
    }

    /// An unreadable tree or chunk list stops the prune: the blobs below it are unknown, and
    /// deleting them could destroy data a repaired snapshot would need.
    fn unreachable(id: BlobId, what: &str, snapshot: &SnapshotInfo) -> Error {
        Error::Corrupt {
            object: format!("{what} {}", id.to_hex()),
            reason: format!(
                "reached by snapshot {} but in no pack of the repository; prune changes nothing (run `vault verify --read-data` to see which snapshots and paths are affected)",
                snapshot.id.to_hex()
            ),
        }
    }

    pub fn snapshot(&mut self, snapshot: &SnapshotInfo) -> Result<()> {
        let root = snapshot.manifest.root().ok_or_else(|| Error::Corrupt {
            object: format!("snapshot {}", snapshot.id.to_hex()),
            reason: "root tree id is not 64 hex characters".into(),
        })?;
        let mut stack: Vec<TreeId> = vec![root];
        while let Some(id) = stack.pop() {
            let Some(found) = self.mark(id.into())? else {
                continue;
            };
            let loc = found.ok_or_else(|| Self::unreachable(id.into(), "tree", snapshot))?;
            let raw = self.read(id.into(), BlobKind::Tree, &loc, "tree")?;
            let tree = tree::decode_tree(&raw)
                .map_err(|e| Error::damaged(format!("tree {}", id.to_hex()), e))?;
            for entry in tree.entries {
                match entry.kind {
                    EntryKind::Dir(sub) => stack.push(sub),
                    EntryKind::File(data) => match data.content {
                        Content::Inline(refs) => {
                            for r in refs {
                                self.mark_chunk(r.id.into())?;
                            }
                        }
                        Content::Lists(lists) => {
                            for list in lists {
                                let Some(found) = self.mark(list.id.into())? else {
                                    continue;
                                };
                                let loc = found.ok_or_else(|| {
                                    Self::unreachable(list.id.into(), "chunk list", snapshot)
                                })?;
                                let raw =
                                    self.read(list.id.into(), BlobKind::List, &loc, "chunk list")?;
                                let refs = tree::decode_list(&raw).map_err(|e| {
                                    Error::damaged(format!("chunk list {}", list.id.to_hex()), e)
                                })?;
                                for r in refs {
                                    self.mark_chunk(r.id.into())?;
                                }
                            }
                        }
                    },
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
