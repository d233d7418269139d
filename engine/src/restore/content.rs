//! Walking a file's chunk references in order, loading chunk lists one at a time.

use crate::error::Result;
use crate::format::tree::{ChunkRef, Content, FileData};
use crate::repo::Repository;

/// Calls `f` with consecutive batches of at most `batch` chunk references, in content order.
/// Memory holds one chunk list at a time however large the file.
pub fn for_each_batch(
    repo: &Repository,
    data: &FileData,
    batch: usize,
    mut f: impl FnMut(&[ChunkRef]) -> Result<()>,
) -> Result<()> {
    match &data.content {
        Content::Inline(refs) => refs.chunks(batch).try_for_each(&mut f),
        Content::Lists(lists) => {
            for list in lists {
                let reader = repo.index().reader()?;
                let refs = repo.read_list(&reader, list.id)?;
                let covered: u64 = refs.iter().map(|r| r.len as u64).sum();
                if covered != list.size || refs.len() != list.chunks as usize {
                    return Err(crate::Error::Corrupt {
                        object: format!("chunk list {}", list.id.to_hex()),
                        reason: "does not match the size recorded in its tree".into(),
                    });
                }
                refs.chunks(batch).try_for_each(&mut f)?;
            }
            Ok(())
        }
    }
}
