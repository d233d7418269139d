//! Export: a snapshot (or one path of it) as a tar stream, for machines without vault.
//!
//! Input: a snapshot and an optional path in it. Output: a POSIX (pax) tar archive written to a
//! [`Write`], optionally zstd-compressed. Entries are written depth-first in name order, each
//! directory before its contents; paths are relative (`srv/cms/file`). Metadata that ustar
//! cannot hold (long names and link targets, nanosecond or negative mtimes, large ids and
//! sizes, long owner names) goes in a pax extended header before the entry. Hard-linked files
//! (equal `(dev, inode)`) are stored once; later names are hard-link entries pointing at the
//! first. Files with all-zero chunks are written in GNU tar's sparse pax format 1.0, their
//! holes omitted; a zero chunk is recognised by its id, without reading it.
//!
//! Memory is bounded: file content is streamed chunk batch by chunk batch through the
//! repository's content reader ([`content`]: every chunk's digest checked); only the directories on the current path and, for a sparse
//! file, its map of data regions are held.

use std::collections::HashMap;
use std::io::Write;

use crate::error::{Error, Result};
use crate::format::tree::{ChunkRef, Entry, EntryKind, FileData, Metadata};
use crate::id::ChunkId;
use crate::limits::MAX_TREE_DEPTH;
use crate::progress::Progress;
use crate::repo::content::{self, BATCH};
use crate::repo::{lookup_path, Repository, SnapshotInfo};

/// Where the pieces of a file's content go: written to the archive, with its padding.
type PieceSink<'a> = dyn FnMut(&mut dyn Write, &[u8]) -> Result<()> + 'a;

/// How the archive is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Tar,
    /// Tar compressed with zstd at this level (1..=22).
    TarZstd {
        level: i32,
    },
}

pub struct ExportOptions {
    /// Path inside the snapshot (`/srv/cms`); `None` exports everything. A directory's
    /// contents are at the top level of the archive (with its own metadata as `./`); a file is
    /// the archive's one entry, by its name.
    pub subpath: Option<String>,
    pub format: ExportFormat,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    /// Sparse files (written with holes).
    pub sparse: u64,
    /// Content bytes of the regular files (holes included).
    pub bytes: u64,
}

const BLOCK: usize = 512;
/// Where errors writing the archive are reported.
const OUTPUT: &str = "archive output";
/// Largest value of a 12-byte octal field (size, mtime), and of an 8-byte one (uid, gid).
const MAX_OCTAL_12: u64 = 0o77777777777;
const MAX_OCTAL_8: u64 = 0o7777777;

/// Writes `snapshot` (or `options.subpath` of it) to `out` as `options.format` says.
pub fn export(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    options: &ExportOptions,
    out: &mut (dyn Write + Send),
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    repo.io_scope(|| {
        // Prune waits for registered readers before deleting packs (format-spec/09-rotation.md).
        let _reader = repo.register("export", false)?;
        let subpath = options.subpath.as_deref().unwrap_or("/");
        let entry = lookup_path(repo, snapshot, subpath)?;
        if options.subpath.is_none() {
            let summary = &snapshot.manifest.summary;
            progress.total(summary.files, summary.bytes_total);
        }
        match options.format {
            ExportFormat::Tar => write_archive(repo, &entry, out, progress),
            ExportFormat::TarZstd { level } => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level)
                    .map_err(|e| Error::io(OUTPUT, e))?;
                let summary = write_archive(repo, &entry, &mut encoder, progress)?;
                encoder.finish().map_err(|e| Error::io(OUTPUT, e))?;
                Ok(summary)
            }
        }
    })
}

fn write_archive(
    repo: &Repository,
    top: &Entry,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    let mut archive = Archive {
        repo,
        out,
        progress,
        summary: ExportSummary::default(),
        links: HashMap::new(),
        zero_ids: HashMap::new(),
    };
    match &top.kind {
        EntryKind::Dir(id) => {
            if !top.name.is_empty() {
                // A subpath directory: its metadata on the extraction directory, like restore.
                archive.write_entry(b"./", top)?;
            }
            // Depth-first without recursion (trees nest up to MAX_TREE_DEPTH levels): a stack of
            // (directory entries, next index, archive path prefix).
            let reader = repo.index().reader()?;
            let tree = repo.read_tree(&reader, *id)?;
            drop(reader);
            let mut stack = vec![(tree.entries, 0usize, Vec::<u8>::new())];
            while let Some((entries, next, prefix)) = stack.last_mut() {
                let Some(entry) = entries.get(*next) else {
                    stack.pop();
                    continue;
                };
                *next += 1;
                let mut path = prefix.clone();
                path.extend_from_slice(&entry.name);
                if let EntryKind::Dir(id) = entry.kind {
                    path.push(b'/');
                    let entry = entry.clone();
                    archive.write_entry(&path, &entry)?;
                    if stack.len() >= MAX_TREE_DEPTH {
                        return Err(Error::Corrupt {
                            object: "snapshot tree".into(),
                            reason: format!(
                                "nested deeper than {MAX_TREE_DEPTH} levels (a cycle?)"
                            ),
                        });
                    }
                    let reader = repo.index().reader()?;
                    let tree = repo.read_tree(&reader, id)?;
                    drop(reader);
                    stack.push((tree.entries, 0, path));
                } else {
                    let entry = entry.clone();
                    archive.write_entry(&path, &entry)?;
                }
            }
        }
        _ => archive.write_entry(&top.name.clone(), top)?,
    }
    // End of archive: two zero blocks.
    archive.write(&[0u8; 2 * BLOCK])?;
    archive.out.flush().map_err(|e| Error::io(OUTPUT, e))?;
    Ok(archive.summary)
}

struct Archive<'a> {
    repo: &'a Repository,
    out: &'a mut dyn Write,
    progress: &'a dyn Progress,
    summary: ExportSummary,
    /// (dev, inode) -> archive path of the first name of a hard-linked file.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Chunk length -> id of that many zero bytes.
    zero_ids: HashMap<u32, ChunkId>,
}

/// Pax records (`LEN key=value\n`, LEN counting the whole record).
#[derive(Default)]
struct Pax(Vec<u8>);

impl Pax {
    fn add(&mut self, key: &str, value: &[u8]) {
        let rest = key.len() + value.len() + 3; // space, '=', newline
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        self.0.extend_from_slice(format!("{len} {key}=").as_bytes());
        self.0.extend_from_slice(value);
        self.0.push(b'\n');
    }
}

/// `sec.nsec` as pax writes a time (a negative time with nanoseconds is `-(|sec| - 1).(1e9 - nsec)`).
fn pax_time(sec: i64, nsec: u32) -> String {
    match (sec < 0, nsec) {
        (_, 0) => sec.to_string(),
        (false, n) => format!("{sec}.{n:09}"),
        (true, n) => format!("-{}.{:09}", -(sec + 1), 1_000_000_000 - n),
    }
}

/// Copies `src` into a fixed field, cut to its length (pax carries the full value).
fn set_field(field: &mut [u8], src: &[u8]) {
    field.fill(0);
    let n = src.len().min(field.len());
    field[..n].copy_from_slice(&src[..n]);
}

impl Archive<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::io(OUTPUT, e))
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let rest = (len % BLOCK as u64) as usize;
        if rest != 0 {
            self.write(&[0u8; BLOCK][..BLOCK - rest])?;
        }
        Ok(())
    }

    /// Whether a chunk is all zeros, from its id alone.
    fn is_zero_chunk(&mut self, chunk: &ChunkRef) -> bool {
        let encryption = self.repo.encryption();
        let zero = *self
            .zero_ids
            .entry(chunk.len)
            .or_insert_with(|| encryption.chunk_id(&vec![0u8; chunk.len as usize]));
        zero == chunk.id
    }

    /// Calls `f` with every chunk reference of a file in order, one chunk list at a time.
    fn for_each_ref(
        &mut self,
        data: &FileData,
        mut f: impl FnMut(&mut Self, &ChunkRef) -> Result<()>,
    ) -> Result<()> {
        let repo = self.repo;
        content::for_each_batch(repo, data, BATCH, |refs| {
            refs.iter().try_for_each(|r| f(self, r))
        })
    }

    /// The data regions `(offset, length)` of a file whose zero chunks are holes; `None` when
    /// it has no zero chunk (then it is written as a normal entry).
    fn sparse_map(&mut self, data: &FileData) -> Result<Option<Vec<(u64, u64)>>> {
        let mut regions: Vec<(u64, u64)> = Vec::new();
        let mut at = 0u64;
        let mut holes = false;
        self.for_each_ref(data, |this, r| {
            if this.is_zero_chunk(r) {
                holes = true;
            } else {
                match regions.last_mut() {
                    Some((start, len)) if *start + *len == at => *len += r.len as u64,
                    _ => regions.push((at, r.len as u64)),
                }
            }
            at += r.len as u64;
            Ok(())
        })?;
        if at != data.size {
            return Err(size_mismatch(data.size, at));
        }
        if !holes {
            return Ok(None);
        }
        // GNU tar reads a region's data in whole 512-byte blocks from the region's start: a
        // region that starts or ends inside a block (fine chunks of a zero run end anywhere)
        // makes it lose its place in the archive. Widen every region to the blocks it touches,
        // taking the zeros of the neighbouring holes into the data.
        let block = BLOCK as u64;
        let mut aligned: Vec<(u64, u64)> = Vec::with_capacity(regions.len() + 1);
        for (start, len) in regions {
            let (start, end) = (
                start / block * block,
                (start + len)
                    .div_ceil(block)
                    .saturating_mul(block)
                    .min(data.size),
            );
            match aligned.last_mut() {
                Some((s, l)) if *s + *l >= start => *l = end - *s,
                _ => aligned.push((start, end - start)),
            }
        }
        let mut regions = aligned;
        // A file ending in a hole ends with an empty region at its size (as GNU tar writes).
        if regions
            .last()
            .is_none_or(|(start, len)| start + len != data.size)
        {
            regions.push((data.size, 0));
        }
        Ok(Some(regions))
    }

    /// Streams a file's content: all of it, or (sparse) only the bytes of the map's regions:
    /// the non-zero chunks, and the zeros that block alignment takes into a region.
    fn write_content(&mut self, data: &FileData, sparse: Option<&[(u64, u64)]>) -> Result<u64> {
        let mut written = 0u64;
        let mut sink = |out: &mut dyn Write, piece: &[u8]| -> Result<()> {
            out.write_all(piece).map_err(|e| Error::io(OUTPUT, e))?;
            written += piece.len() as u64;
            Ok(())
        };
        let Some(regions) = sparse else {
            let out = &mut *self.out;
            let progress = self.progress;
            content::read_content(self.repo, data, |piece| {
                progress.bytes(piece.len() as u64);
                sink(out, piece)
            })?;
            return Ok(written);
        };
        // Non-zero chunks in batches, read as a file of their own; zeros of a zero chunk where
        // it overlaps a region (at most a block's worth at each end).
        let mut at = 0u64;
        let mut next_region = 0usize;
        let mut batch: Vec<ChunkRef> = Vec::new();
        let flush =
            |this: &mut Self, batch: &mut Vec<ChunkRef>, sink: &mut PieceSink<'_>| -> Result<()> {
                let out = &mut *this.out;
                let progress = this.progress;
                content::read_chunks(this.repo, batch, |piece| {
                    progress.bytes(piece.len() as u64);
                    sink(out, piece)
                })?;
                batch.clear();
                Ok(())
            };
        self.for_each_ref(data, |this, r| {
            let end = at + r.len as u64;
            if !this.is_zero_chunk(r) {
                batch.push(*r);
                if batch.len() >= BATCH {
                    flush(this, &mut batch, &mut sink)?;
                }
            } else {
                while regions.get(next_region).is_some_and(|&(s, l)| s + l <= at) {
                    next_region += 1;
                }
                let zeros: u64 = regions[next_region..]
                    .iter()
                    .take_while(|&&(s, _)| s < end)
                    .map(|&(s, l)| (s + l).min(end).saturating_sub(s.max(at)))
                    .sum();
                if zeros > 0 {
                    flush(this, &mut batch, &mut sink)?;
                    sink(&mut *this.out, &vec![0u8; zeros as usize])?;
                }
            }
            at = end;
            Ok(())
        })?;
        flush(self, &mut batch, &mut sink)?;
        Ok(written)
    }

    /// Writes one entry (header, pax header if needed, content) at archive path `path`.
    fn write_entry(&mut self, path: &[u8], entry: &Entry) -> Result<()> {
        let meta = &entry.meta;
        let mut pax = Pax::default();
        let mut header = tar::Header::new_ustar();
        let mut link: Option<Vec<u8>> = None;
        let mut size = 0u64;
        let mut name = path.to_vec();
        let mut sparse_map = None;
        match &entry.kind {
            EntryKind::Dir(_) => {
                header.set_entry_type(tar::EntryType::Directory);
                self.summary.dirs += 1;
            }
            EntryKind::File(data) => {
                let key = (meta.dev, meta.inode);
                if let Some(first) = data.hardlinked.then(|| self.links.get(&key)).flatten() {
                    header.set_entry_type(tar::EntryType::Link);
                    link = Some(first.clone());
                    self.summary.hardlinks += 1;
                } else {
                    if data.hardlinked {
                        self.links.insert(key, path.to_vec());
                    }
                    header.set_entry_type(tar::EntryType::Regular);
                    size = data.size;
                    sparse_map = self.sparse_map(data)?;
                    if let Some(map) = &sparse_map {
                        // GNU sparse 1.0: the real name in pax, a stand-in name in ustar, and
                        // the size stored: the map (padded to a block) plus the data regions.
                        self.summary.sparse += 1;
                        pax.add("GNU.sparse.major", b"1");
                        pax.add("GNU.sparse.minor", b"0");
                        pax.add("GNU.sparse.name", path);
                        pax.add("GNU.sparse.realsize", data.size.to_string().as_bytes());
                        let (dir, base) = match path.iter().rposition(|&b| b == b'/') {
                            Some(i) => (&path[..=i], &path[i + 1..]),
                            None => (&b""[..], path),
                        };
                        name = [dir, b"GNUSparseFile.0/", base].concat();
                        let map_len = sparse_map_bytes(map).len() as u64;
                        size = map_len + map.iter().map(|(_, len)| len).sum::<u64>();
                    }
                    self.summary.files += 1;
                    self.summary.bytes += data.size;
                }
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                link = Some(target.clone());
                self.summary.symlinks += 1;
            }
            EntryKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                self.summary.special += 1;
            }
            EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev } => {
                header.set_entry_type(if matches!(entry.kind, EntryKind::CharDevice { .. }) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                let (major, minor) = (libc::major(*rdev), libc::minor(*rdev));
                header
                    .set_device_major(major)
                    .and_then(|()| header.set_device_minor(minor))
                    .map_err(|e| Error::io(OUTPUT, e))?;
                self.summary.special += 1;
            }
        }
        self.fill_header(&mut header, &mut pax, &name, link.as_deref(), meta, size);
        if !pax.0.is_empty() {
            let mut pax_header = tar::Header::new_ustar();
            pax_header.set_entry_type(tar::EntryType::XHeader);
            let base = name
                .rsplit(|&b| b == b'/')
                .find(|p| !p.is_empty())
                .unwrap_or(b".");
            let pax_name = [b"PaxHeaders/".as_slice(), base].concat();
            set_field(
                &mut pax_header.as_ustar_mut().expect("ustar").name,
                &pax_name,
            );
            pax_header.set_mode(0o644);
            pax_header.set_size(pax.0.len() as u64);
            pax_header.set_mtime(meta.mtime_sec.clamp(0, MAX_OCTAL_12 as i64) as u64);
            pax_header.set_cksum();
            self.write(pax_header.as_bytes())?;
            self.write(&pax.0)?;
            self.pad(pax.0.len() as u64)?;
        }
        self.write(header.as_bytes())?;
        if let EntryKind::File(data) = &entry.kind {
            if link.is_none() {
                let written = match &sparse_map {
                    Some(map) => {
                        let map_bytes = sparse_map_bytes(map);
                        self.write(&map_bytes)?;
                        map_bytes.len() as u64 + self.write_content(data, Some(map))?
                    }
                    None => self.write_content(data, None)?,
                };
                if written != size {
                    return Err(size_mismatch(size, written));
                }
                self.pad(size)?;
                self.progress.file_done();
            }
        }
        Ok(())
    }

    /// Sets the ustar fields of `header`, putting in `pax` what they cannot hold.
    fn fill_header(
        &self,
        header: &mut tar::Header,
        pax: &mut Pax,
        name: &[u8],
        link: Option<&[u8]>,
        meta: &Metadata,
        size: u64,
    ) {
        let ustar = header.as_ustar_mut().expect("ustar header");
        if name.len() > ustar.name.len() {
            pax.add("path", name);
        }
        set_field(&mut ustar.name, name);
        if let Some(link) = link {
            if link.len() > ustar.linkname.len() {
                pax.add("linkpath", link);
            }
            set_field(&mut ustar.linkname, link);
        }
        for (key, value, field) in [
            ("uname", &meta.user, &mut ustar.uname),
            ("gname", &meta.group, &mut ustar.gname),
        ] {
            if value.len() > field.len() {
                pax.add(key, value.as_bytes());
            }
            set_field(field, value.as_bytes());
        }
        header.set_mode(meta.mode & 0o7777);
        for (key, id) in [("uid", meta.uid), ("gid", meta.gid)] {
            if id as u64 > MAX_OCTAL_8 {
                pax.add(key, id.to_string().as_bytes());
            }
        }
        header.set_uid(meta.uid as u64);
        header.set_gid(meta.gid as u64);
        if meta.mtime_nsec != 0 || meta.mtime_sec < 0 || meta.mtime_sec as u64 > MAX_OCTAL_12 {
            pax.add(
                "mtime",
                pax_time(meta.mtime_sec, meta.mtime_nsec).as_bytes(),
            );
        }
        header.set_mtime(meta.mtime_sec.clamp(0, MAX_OCTAL_12 as i64) as u64);
        if size > MAX_OCTAL_12 {
            pax.add("size", size.to_string().as_bytes());
        }
        header.set_size(size);
        header.set_cksum();
    }
}

/// A sparse map as GNU sparse 1.0 stores it before the data: decimal lines (the number of
/// regions, then offset and length of each), padded with zeros to a block.
fn sparse_map_bytes(map: &[(u64, u64)]) -> Vec<u8> {
    let mut text = format!("{}\n", map.len());
    for (offset, len) in map {
        text.push_str(&format!("{offset}\n{len}\n"));
    }
    let mut bytes = text.into_bytes();
    bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, 0);
    bytes
}

fn size_mismatch(recorded: u64, found: u64) -> Error {
    Error::Corrupt {
        object: "file content".into(),
        reason: format!("its chunks hold {found} bytes but its tree records {recorded}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        let mut pax = Pax::default();
        pax.add("mtime", b"1.5");
        assert_eq!(pax.0, b"13 mtime=1.5\n");
        let mut pax = Pax::default();
        pax.add("path", &[b'a'; 93]);
        // "path" + 93 bytes + space, '=' and newline = 100, plus three digits: 103.
        assert_eq!(&pax.0[..4], b"103 ");
        assert_eq!(pax.0.len(), 103);
    }

    #[test]
    fn pax_time_of_negative_times_counts_down() {
        assert_eq!(pax_time(5, 0), "5");
        assert_eq!(pax_time(5, 7), "5.000000007");
        assert_eq!(pax_time(-2, 500_000_000), "-1.500000000");
    }

    #[test]
    fn sparse_map_is_padded_decimal_lines() {
        let bytes = sparse_map_bytes(&[(0, 10), (100, 0)]);
        assert_eq!(bytes.len(), BLOCK);
        assert!(bytes.starts_with(b"2\n0\n10\n100\n0\n\0"));
    }
}
