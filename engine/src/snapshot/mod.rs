//! The snapshot pipeline.
//!
//! ```text
//! walk -> read -> chunk -> hash -> write::BlobWriter (dedup, compress, seal) ==> packer -> index
//!                                                      ^
//!            tree (file contents, directories, root) --+
//! ```
//! Directories are walked depth-first in parallel (rayon); within one file or stream, reading and
//! cutting the next window overlaps hashing and compressing the current one (`rayon::join`), and
//! hashing and compression are parallel across the chunks of a window. Only this module knows
//! about the thread pool; each stage module sees just its own input and output. Blobs are
//! stored through the shared write path ([`crate::write`]), which owns the packer thread and
//! its queue.
//!
//! Commit order: every pack is durable and indexed (by [`crate::write::session`]) before the
//! manifest that reaches it is written (I3); a crash at any point leaves only unreferenced
//! packs.

mod commit;
mod hash;
mod parent;
mod paths;
mod prepare;
mod profile;
mod read;
mod source;
mod tree;
mod walk;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::format::config::ChunkerProfile;
use crate::format::manifest::{Manifest, SourceProblem};
use crate::format::pack::BlobKind;
use crate::format::tree::{
    encode_list, encode_tree, valid_name, ChunkRef, Entry, EntryKind, FileData, Tree,
};
use crate::id::{BlobId, ListId, SnapshotId, TreeId};
use crate::keys::Encryption;
use crate::limits::{MAX_BLOB_SIZE, MAX_TREE_ENTRIES};
use crate::meta::{self, OwnerNames};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::write::{self, BlobWriter};
use paths::{components_of, open_source_file, OpenError};
use profile::ParentFile;
use read::WindowReader;
use tree::{ContentBuilder, RootBuilder};
use walk::Excludes;

pub use crate::chunk::Chunker as ContentChunker;
/// Compression as the write path does it (kept here for the benches and the spec vectors).
pub use crate::write::compress::compress as compress_blob;
pub use source::StreamSource;

/// What to snapshot and how to label it.
#[derive(Default)]
pub struct SnapshotOptions {
    /// Stream sources, taken first, in order.
    pub streams: Vec<StreamSource>,
    /// Filesystem paths, walked after the streams.
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
    /// Defaults to the machine's host name.
    pub host: Option<String>,
    pub excludes: Vec<String>,
    /// Read every file even when the parent snapshot says it is unchanged.
    pub force_read: bool,
    /// Defaults to now.
    pub time: Option<jiff::Timestamp>,
    /// Protect the snapshot from every retention policy (`--protect`).
    pub protect: bool,
    /// Accept a stream that ends without a byte (`--allow-empty`). Without it an empty stream
    /// fails the snapshot: `pg_dump typo | vault snapshot --stdin` sends nothing, and a 0-byte
    /// dump committed as the newest good backup is worse than no backup.
    pub allow_empty: bool,
    /// Directories vault itself keeps (the repository, the cache): never backed up. One found
    /// inside a source is left out and listed in [`SnapshotReport::excluded`]; a source inside
    /// one is refused.
    pub own_dirs: Vec<OwnDir>,
}

/// A directory vault keeps for itself, which no snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnDir {
    /// What it is, for messages: `repository` or `cache`.
    pub what: &'static str,
    /// Where it is: as configured in [`SnapshotOptions::own_dirs`]; where the walk found it
    /// in [`SnapshotReport::excluded`].
    pub path: PathBuf,
}

/// A committed snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotReport {
    pub id: SnapshotId,
    pub manifest: Manifest,
    /// Vault's own directories found inside the sources and left out.
    pub excluded: Vec<OwnDir>,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    files_unchanged: AtomicU64,
    bytes_total: AtomicU64,
    bytes_read: AtomicU64,
    chunks_total: AtomicU64,
    chunks_new: AtomicU64,
    trees_new: AtomicU64,
    problems_unrecorded: AtomicU64,
}

/// Source problems listed in a manifest at most; more are counted in one final entry.
const MAX_RECORDED_PROBLEMS: usize = 10_000;

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A failure while taking a source's content: the source's fault, or the repository's.
enum ContentError {
    Source(io::Error),
    Repository(Error),
}

impl From<Error> for ContentError {
    fn from(e: Error) -> Self {
        ContentError::Repository(e)
    }
}

/// State shared by every stage of one snapshot run.
struct Pipeline<'a> {
    repo: &'a Repository,
    writer: &'a BlobWriter<'a>,
    encryption: Encryption,
    stream_chunker: Chunker,
    file_chunker: Chunker,
    owners: OwnerNames,
    excludes: Excludes,
    /// (device, inode, what) of vault's own directories, never backed up.
    own_dirs: Vec<(u64, u64, &'static str)>,
    /// Own directories met in the walk (and left out).
    excluded: Mutex<Vec<OwnDir>>,
    force_read: bool,
    progress: &'a dyn Progress,
    problems: Mutex<Vec<SourceProblem>>,
    counters: Counters,
    /// (dev, inode) -> (size, mtime, ctime, content) of hard-linked files already read this run.
    hardlinks: Mutex<HashMap<(u64, u64), FileData>>,
    parent_root: Option<TreeId>,
    /// Verify has recorded damaged blobs: before reusing a parent's file, also read its chunk
    /// lists and check every chunk in them, so that the damaged data is read and stored again.
    check_lists: bool,
}

fn lossy(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Pipeline<'_> {
    fn problem(&self, path: &Path, reason: impl std::fmt::Display) {
        let reason = reason.to_string();
        self.progress
            .warning(&format!("{}: {reason}", path.display()));
        let mut problems = self.problems.lock().unwrap();
        // The manifest must stay small: past the cap, problems are only counted.
        if problems.len() < MAX_RECORDED_PROBLEMS {
            problems.push(SourceProblem {
                path: lossy(path),
                reason,
            });
        } else {
            add(&self.counters.problems_unrecorded, 1);
        }
    }

    /// Hash, dedup, compress and send the chunks of `data` cut at `lengths`: each chunk goes
    /// through all three on one thread, while its bytes are in that core's cache.
    fn store_chunks(&self, data: &[u8], lengths: &[u32]) -> Result<Vec<ChunkRef>> {
        let offsets = hash::offsets(lengths);
        let stored: Vec<(ChunkRef, bool)> = (0..lengths.len())
            .into_par_iter()
            .map_init(
                || self.writer.handle(),
                |handle, i| {
                    let (raw, id) = hash::chunk(&self.encryption, data, &offsets, lengths, i);
                    let new = handle.store_named(BlobKind::Chunk, id.into(), raw)?;
                    Ok((
                        ChunkRef {
                            id,
                            len: lengths[i],
                        },
                        new,
                    ))
                },
            )
            .collect::<Result<_>>()?;
        add(&self.counters.chunks_total, stored.len() as u64);
        add(
            &self.counters.chunks_new,
            stored.iter().filter(|(_, new)| *new).count() as u64,
        );
        Ok(stored.into_iter().map(|(r, _)| r).collect())
    }

    /// Stores one metadata blob (tree or chunk list) unless the repository has it.
    fn store_meta(&self, kind: BlobKind, raw: Vec<u8>) -> Result<BlobId> {
        let (id, new) = self.writer.store(kind, &raw)?;
        if new && kind == BlobKind::Tree {
            add(&self.counters.trees_new, 1);
        }
        Ok(id)
    }

    fn store_tree(&self, tree: &Tree) -> Result<TreeId> {
        let raw = encode_tree(tree);
        if tree.entries.len() as u64 > MAX_TREE_ENTRIES as u64
            || raw.len() as u64 > MAX_BLOB_SIZE as u64
        {
            // Refuse to write what no reader would accept.
            return Err(Error::invalid(
                "directory",
                format!(
                    "{} entries ({} bytes of metadata) exceed what one tree may hold",
                    tree.entries.len(),
                    raw.len()
                ),
            ));
        }
        Ok(TreeId(self.store_meta(BlobKind::Tree, raw)?.0))
    }

    fn store_list(&self, chunks: &[ChunkRef]) -> Result<ListId> {
        Ok(ListId(
            self.store_meta(BlobKind::List, encode_list(chunks))?.0,
        ))
    }

    /// Reads a source to its end and stores its content. Reading and cutting the next window
    /// runs beside hashing and compressing the current one.
    fn take_content<R: Read + Send>(
        &self,
        source: R,
        profile: ChunkerProfile,
        expected: Option<u64>,
    ) -> std::result::Result<(u64, crate::format::tree::Content), ContentError> {
        let chunker = match profile {
            ChunkerProfile::Stream => &self.stream_chunker,
            ChunkerProfile::File => &self.file_chunker,
        };
        let mut reader = WindowReader::new(source, chunker.window_size(), expected);
        let mut content = ContentBuilder::default();
        let store_list = |c: &[ChunkRef]| self.store_list(c);
        let mut current = reader.fill(Vec::new(), &[]).map_err(ContentError::Source)?;
        let mut cuts = chunker.cut(&current.data, current.eof);
        let mut spare = Vec::new();
        loop {
            let consumed: usize = cuts.iter().map(|&c| c as usize).sum();
            if current.eof {
                debug_assert_eq!(consumed, current.data.len());
                let refs = self.store_chunks(&current.data, &cuts)?;
                self.progress.bytes(current.data.len() as u64);
                content.push(refs, &store_list)?;
                break;
            }
            let (head, tail) = current.data.split_at(consumed);
            let buffer = std::mem::take(&mut spare);
            let (next, refs) = rayon::join(
                || {
                    reader.fill(buffer, tail).map(|w| {
                        let c = chunker.cut(&w.data, w.eof);
                        (w, c)
                    })
                },
                || self.store_chunks(head, &cuts),
            );
            let refs = refs?;
            self.progress.bytes(consumed as u64);
            content.push(refs, &store_list)?;
            let (window, next_cuts) = next.map_err(ContentError::Source)?;
            spare = std::mem::replace(&mut current, window).data;
            cuts = next_cuts;
        }
        add(&self.counters.bytes_read, reader.bytes_read);
        Ok(content.finish(&store_list)?)
    }

    /// The entry for one filesystem object, or `None` when it is skipped (recorded as a problem
    /// or, for sockets, a warning).
    fn entry_for(
        &self,
        path: &Path,
        name: &OsStr,
        stat: &fs::Metadata,
        parent: Option<&Entry>,
    ) -> Result<Option<Entry>> {
        let name = name.as_bytes().to_vec();
        if !valid_name(&name) {
            self.problem(
                path,
                "name is longer than 255 bytes or otherwise unrecordable",
            );
            return Ok(None);
        }
        let meta = meta::capture(stat, &self.owners);
        let file_type = stat.file_type();
        let kind = if file_type.is_dir() {
            let parent_tree = self.parent_tree(parent);
            let entries = self.dir_entries(path, stat, parent_tree.as_ref())?;
            add(&self.counters.dirs, 1);
            EntryKind::Dir(self.store_tree(&Tree { entries })?)
        } else if file_type.is_file() {
            match self.file_data(path, stat, parent)? {
                Some(data) => EntryKind::File(data),
                None => return Ok(None),
            }
        } else if file_type.is_symlink() {
            match fs::read_link(path) {
                Ok(target) if !target.as_os_str().is_empty() => {
                    EntryKind::Symlink(target.as_os_str().as_bytes().to_vec())
                }
                Ok(_) => return Ok(None),
                Err(e) => {
                    self.problem(path, format!("cannot read symlink: {e}"));
                    return Ok(None);
                }
            }
        } else if file_type.is_fifo() {
            EntryKind::Fifo
        } else if file_type.is_char_device() {
            EntryKind::CharDevice { rdev: stat.rdev() }
        } else if file_type.is_block_device() {
            EntryKind::BlockDevice { rdev: stat.rdev() }
        } else {
            self.progress.warning(&format!(
                "{}: socket skipped (sockets cannot be restored)",
                path.display()
            ));
            return Ok(None);
        };
        Ok(Some(Entry { name, meta, kind }))
    }

    /// The entries of a directory, each child processed in parallel.
    fn dir_entries(
        &self,
        path: &Path,
        stat: &fs::Metadata,
        parent_tree: Option<&Tree>,
    ) -> Result<Vec<Entry>> {
        let children = match walk::list_dir(path, stat, &self.excludes) {
            Ok(children) => children,
            Err(e) => {
                self.problem(path, format!("cannot list directory: {e}"));
                return Ok(Vec::new());
            }
        };
        let children: Vec<_> = children
            .into_iter()
            .filter(|child| !self.is_own_dir(&child.path, &child.stat))
            .collect();
        let entries: Vec<Option<Entry>> = children
            .par_iter()
            .map(|child| {
                let previous = parent_tree.and_then(|t| t.find(child.name.as_bytes()));
                self.entry_for(&child.path, &child.name, &child.stat, previous)
            })
            .collect::<Result<_>>()?;
        Ok(entries.into_iter().flatten().collect())
    }

    /// Whether `path` (with its `lstat`) is one of vault's own directories; then it is
    /// recorded as left out.
    fn is_own_dir(&self, path: &Path, stat: &fs::Metadata) -> bool {
        if !stat.is_dir() {
            return false;
        }
        let Some(&(_, _, what)) = self
            .own_dirs
            .iter()
            .find(|&&(dev, ino, _)| (dev, ino) == (stat.dev(), stat.ino()))
        else {
            return false;
        };
        self.excluded.lock().unwrap().push(OwnDir {
            what,
            path: path.to_path_buf(),
        });
        true
    }

    fn file_data(
        &self,
        path: &Path,
        stat: &fs::Metadata,
        parent: Option<&Entry>,
    ) -> Result<Option<FileData>> {
        let hardlinked = stat.nlink() > 1;
        add(&self.counters.files, 1);
        let mut parent_file = None;
        // Change detection: size, mtime, ctime and inode equal -> reuse without reading.
        if let Some(Entry {
            kind: EntryKind::File(previous),
            meta: pm,
            ..
        }) = parent
        {
            parent_file = Some(ParentFile {
                data: previous,
                changed: previous.size != stat.len()
                    || pm.mtime_sec != stat.mtime()
                    || pm.mtime_nsec != stat.mtime_nsec() as u32,
            });
            let unchanged = previous.size == stat.len()
                && pm.mtime_sec == stat.mtime()
                && pm.mtime_nsec == stat.mtime_nsec() as u32
                && pm.ctime_sec == stat.ctime()
                && pm.ctime_nsec == stat.ctime_nsec() as u32
                && pm.inode == stat.ino();
            // Reused only when its content is still stored: verify removes damaged blobs from
            // the index, and the next snapshot must store them again (self-healing).
            if unchanged && !self.force_read && self.content_stored(&previous.content)? {
                add(&self.counters.files_unchanged, 1);
                add(&self.counters.bytes_total, previous.size);
                self.progress.file_done();
                return Ok(Some(FileData {
                    hardlinked,
                    ..previous.clone()
                }));
            }
        }
        if hardlinked {
            if let Some(data) = self
                .hardlinks
                .lock()
                .unwrap()
                .get(&(stat.dev(), stat.ino()))
            {
                if data.size == stat.len() {
                    add(&self.counters.bytes_total, data.size);
                    return Ok(Some(data.clone()));
                }
            }
        }
        let file = match open_source_file(path, stat) {
            Ok(file) => file,
            Err(OpenError::Replaced(now)) => {
                self.problem(
                    path,
                    format!(
                        "was replaced by {now} while the snapshot ran; left out of the snapshot"
                    ),
                );
                return Ok(None);
            }
            Err(OpenError::Io(e)) => {
                self.problem(path, format!("cannot open: {e}"));
                return Ok(None);
            }
        };
        let profile = profile::choose(&file, stat.len(), self.file_chunker.params(), parent_file);
        let (size, content) = match self.take_content(&file, profile, Some(stat.len())) {
            Ok(taken) => taken,
            Err(ContentError::Source(e)) => {
                self.problem(path, format!("read failed: {e}"));
                return Ok(None);
            }
            Err(ContentError::Repository(e)) => return Err(e),
        };
        match file.metadata() {
            Ok(after)
                if after.len() == size
                    && after.mtime() == stat.mtime()
                    && after.mtime_nsec() == stat.mtime_nsec() => {}
            Ok(_) => self.problem(
                path,
                "file changed while it was read; the snapshot holds a mix of old and new content",
            ),
            Err(e) => self.problem(path, format!("cannot stat after reading: {e}")),
        }
        add(&self.counters.bytes_total, size);
        self.progress.file_done();
        let data = FileData {
            size,
            profile: profile as u8,
            hardlinked,
            content,
        };
        if hardlinked {
            self.hardlinks
                .lock()
                .unwrap()
                .insert((stat.dev(), stat.ino()), data.clone());
        }
        Ok(Some(data))
    }
}

/// Takes a snapshot. Returns the committed snapshot, complete or marked incomplete (source
/// problems are in `manifest.summary.errors`). An `Err` before the manifest's write means nothing
/// was committed; an I/O error in the write's last step (the directory fsync after the link, found
/// by `engine/tests/crash_points.rs`) returns `Err` with the manifest in place and whole. Either
/// way the snapshot exists whole or not at all (I3).
///
/// Phases: [`prepare`] (options, sources, parent snapshot), [`store_sources`] (the pipeline,
/// its blobs through [`write::session`]), [`commit`] (summary and manifest, written last: I3).
pub fn run(
    repo: &Repository,
    options: SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotReport> {
    let started = Instant::now();
    let time = options.time.unwrap_or_else(jiff::Timestamp::now);
    let host = options.host.clone().unwrap_or_else(crate::host::hostname);
    let excludes = prepare::check_options(&options)?;

    // Register as a writer, then re-read the prune plans: from here on no prune deletes a
    // pack this run might deduplicate against (format-spec/09-rotation.md).
    let _writer = repo.register("snapshot", true)?;

    let sources = prepare::sources(repo, &options, &host)?;
    let SnapshotOptions {
        streams,
        tags,
        labels,
        force_read,
        allow_empty,
        protect,
        ..
    } = options;
    let flags = RunFlags {
        force_read,
        allow_empty,
        time_sec: time.as_second(),
    };
    let stored = store_sources(repo, &sources, streams, excludes, flags, progress)?;
    let description = commit::Description {
        time,
        host,
        records: sources.records,
        tags,
        labels,
        parent: sources.parent.map(|p| p.id),
        protect,
    };
    commit::commit(repo, stored, description, started)
}

/// Options of one run that the stages consult.
#[derive(Clone, Copy)]
struct RunFlags {
    force_read: bool,
    allow_empty: bool,
    /// The snapshot's time, for the metadata of directories it makes up.
    time_sec: i64,
}

/// Runs the pipeline over every source, storing blobs through one [`write::session`]; returns
/// once every pack is durable and indexed, with the root tree and what the run counted.
fn store_sources(
    repo: &Repository,
    sources: &prepare::Sources,
    streams: Vec<StreamSource>,
    excludes: Excludes,
    flags: RunFlags,
    progress: &dyn Progress,
) -> Result<commit::Stored> {
    let config = repo.config();
    let check_lists = !repo.index().damaged()?.is_empty();
    let ((root, counters, problems, excluded), packed) =
        write::session(&repo.write_destination(), |writer| {
            let pipeline = Pipeline {
                repo,
                writer,
                encryption: repo.encryption().clone(),
                stream_chunker: Chunker::new(config.chunker.stream, repo.encryption()),
                file_chunker: Chunker::new(config.chunker.file, repo.encryption()),
                owners: OwnerNames::default(),
                excludes,
                own_dirs: sources.own_dirs.clone(),
                excluded: Mutex::new(Vec::new()),
                force_read: flags.force_read,
                progress,
                problems: Mutex::new(Vec::new()),
                counters: Counters::default(),
                hardlinks: Mutex::new(HashMap::new()),
                parent_root: sources.parent.as_ref().and_then(|p| p.manifest.root()),
                check_lists,
            };
            let built = take_sources(
                &pipeline,
                streams,
                &sources.stream_places,
                &sources.paths,
                flags.time_sec,
                flags.allow_empty,
            );
            let Pipeline {
                counters,
                problems,
                excluded,
                ..
            } = pipeline;
            (
                built,
                counters,
                problems.into_inner().unwrap(),
                excluded.into_inner().unwrap(),
            )
        });
    // A packer failure is the cause of any "packer stopped" error in the pipeline.
    let root = match (root, &packed) {
        (Err(_), Err(e)) => Err(Error::Corrupt {
            object: "pack writer".into(),
            reason: e.to_string(),
        }),
        (built, _) => built,
    };
    let packed = packed?;
    let root = root?;
    Ok(commit::Stored {
        root,
        counters,
        problems,
        excluded,
        packed,
    })
}

/// Streams first (in order), then paths; returns the root tree id.
fn take_sources(
    p: &Pipeline<'_>,
    streams: Vec<StreamSource>,
    places: &[Vec<Vec<u8>>],
    paths: &[PathBuf],
    time_sec: i64,
    allow_empty: bool,
) -> Result<TreeId> {
    let mut root = RootBuilder::new();
    for (stream, place) in streams.into_iter().zip(places) {
        let name = stream.name.clone();
        let empty = stream.empty_reason();
        let source::OpenStream { reader, finish } =
            stream.open().map_err(|reason| Error::SourceFailed {
                name: name.clone(),
                reason,
            })?;
        let (size, content) = match p.take_content(reader, ChunkerProfile::Stream, None) {
            Ok(taken) => taken,
            Err(ContentError::Source(e)) => {
                return Err(Error::SourceFailed {
                    name,
                    reason: format!("read failed: {e}"),
                })
            }
            Err(ContentError::Repository(e)) => return Err(e),
        };
        if let Some(finish) = finish {
            finish().map_err(|reason| Error::SourceFailed {
                name: name.clone(),
                reason,
            })?;
        }
        // After `finish`: a command that failed says so, rather than that it wrote nothing.
        if size == 0 && !allow_empty {
            return Err(Error::SourceFailed {
                name,
                reason: format!("{empty}; pass --allow-empty if an empty stream is expected"),
            });
        }
        add(&p.counters.files, 1);
        add(&p.counters.bytes_total, size);
        p.progress.file_done();
        let mut meta = meta::synthetic_dir(time_sec, &p.owners);
        meta.mode = 0o644;
        let (leaf, parents) = place.split_last().expect("validated non-empty");
        let entry = Entry {
            name: leaf.clone(),
            meta,
            kind: EntryKind::File(FileData {
                size,
                profile: ChunkerProfile::Stream as u8,
                hardlinked: false,
                content,
            }),
        };
        root.insert(parents, entry, &|_| {
            meta::synthetic_dir(time_sec, &p.owners)
        })
        .map_err(|e| Error::invalid(format!("--stdin-name/--command {name:?}"), e))?;
    }
    for path in paths {
        let components = components_of(path);
        let stat = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
        if p.is_own_dir(path, &stat) {
            continue;
        }
        let previous = p.parent_entry_at(&components);
        if components.is_empty() {
            let parent_tree = p.parent_tree(previous.as_ref());
            let entries = p.dir_entries(path, &stat, parent_tree.as_ref())?;
            root.insert_root_entries(entries)
                .map_err(|e| Error::invalid("source /", e))?;
            continue;
        }
        let Some(entry) = p.entry_for(
            path,
            path.file_name().expect("has a name"),
            &stat,
            previous.as_ref(),
        )?
        else {
            continue;
        };
        let (_, parents) = components.split_last().expect("non-empty");
        let ancestor_meta = |depth: usize| {
            let ancestor: PathBuf = std::iter::once(PathBuf::from("/"))
                .chain(
                    parents[..=depth]
                        .iter()
                        .map(|c| PathBuf::from(OsStr::from_bytes(c))),
                )
                .collect();
            fs::symlink_metadata(&ancestor)
                .map(|s| meta::capture(&s, &p.owners))
                .unwrap_or_else(|_| meta::synthetic_dir(time_sec, &p.owners))
        };
        root.insert(parents, entry, &ancestor_meta)
            .map_err(|e| Error::invalid(format!("source {}", path.display()), e))?;
    }
    root.build(&|tree| p.store_tree(tree))
}
