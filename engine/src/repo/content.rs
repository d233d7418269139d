//! Reading file content: the one read path from a file's chunk references to its bytes.
//!
//! Role: every operation that reads file content goes through here — restore (which writes
//! spans at their offsets itself), dump, export, `restore --dry-run --verify`, copy, and the
//! coming mount and web server (random access). Whole packs checked by `verify --read-data`
//! are read by [`crate::verify`] itself: it checks every blob of a pack, not a file's content.
//!
//! Input: a file's [`FileData`] (chunk references inline or in chunk lists), or plain chunk
//! references. Output: the content's raw bytes, handed to a sink in file order, in pieces of
//! one or more whole chunks (a range read cuts the first and last piece to the range).
//!
//! How: chunk references are taken a batch ([`BATCH`]) at a time, looked up in the index with
//! one read transaction, and grouped into *spans*: chunks whose blobs lie close together in one
//! pack (as a snapshot writes a file's new chunks: back to back, or in an encrypted repository
//! shuffled within a window), read with one range read ([`Repository::read_run`]). The spans of
//! a batch are fetched in parallel, each blob opened (decrypted), decompressed and checked; a
//! span decodes to at most [`SPAN_RAW_BYTES`], so a batch of deltas (a few hundred stored bytes
//! each) is several spans and keeps every core busy.
//! Before that, the distinct bases of the batch's delta chunks are fetched once, together
//! ([`read_bases`]: looked up with the same reader, grouped into spans in pack order like the
//! chunks, the spans read in parallel), so no span waits on a base read of its own.
//!
//! Invariants:
//! - No byte reaches a sink before the blob it came from was checked against its id, and its
//!   length against the chunk reference (a mismatch is [`crate::Error::Corrupt`] or damage).
//! - A chunk list is checked against the size and chunk count its tree records before any of
//!   its chunks is read.
//! - Memory is bounded however large the file: one chunk list, one batch's spans (at most
//!   [`BATCH`] chunks and [`BATCH_BYTES`] content bytes) and its bases (at most [`BASE_BYTES`])
//!   at a time; a restore, which looks up the next batch and fetches its bases while it writes
//!   the current one, holds two batches' bases.
//!
//! Random access (mount, web server): [`read_range`] hands out the bytes `[offset, offset +
//! len)` of a file. Chunk lists wholly outside the range are skipped by their recorded sizes,
//! without being read; inside one, only the chunks overlapping the range are fetched. A caller
//! serving `read(offset, size)` requests calls it once per request; a reader that wants whole
//! chunks (to cache them) reads the chunk-aligned range around the request.

use rayon::prelude::*;

use std::collections::HashSet;
use std::sync::Arc;

use crate::blobs::BaseSet;
use crate::error::{Error, Result};
use crate::format::pack::{BlobKind, Encoding};
use crate::format::tree::{ChunkRef, Content, FileData, ListRef};
use crate::id::{BlobId, PackId};
use crate::index::BlobLocation;
use crate::repo::Repository;

/// Chunk references looked up together (one index read transaction) and fetched together.
pub const BATCH: usize = 256;
/// Content bytes fetched together at most (a batch of large chunks is cut short): what bounds
/// the memory of one batch, whatever the chunker's sizes (256 chunks of 1 MiB would be 256 MiB).
pub const BATCH_BYTES: u64 = 32 << 20;

/// Stored bytes read with one range read at most.
const SPAN_BYTES: u64 = 4 << 20;
/// Bytes between two needed blobs that a span reads rather than splitting in two.
const SPAN_GAP: u64 = 256 << 10;
/// Raw (decoded) bytes of one span at most: a span is decoded on one thread, and delta chunks
/// store a few hundred bytes for 16 KiB of content, so a span bounded by stored bytes alone
/// could hold a whole batch of deltas and leave the other cores idle. A single larger blob is
/// a span of its own.
const SPAN_RAW_BYTES: u64 = 1 << 20;

/// Raw bytes of delta bases fetched ahead for one batch at most; the bases past it are read
/// through the base cache as their deltas are decoded.
pub const BASE_BYTES: u64 = 64 << 20;

/// Stands in for the location of a chunk that is not read from the repository.
const UNUSED: BlobLocation = BlobLocation {
    pack: PackId([0; 32]),
    offset: 0,
    stored_len: 0,
    raw_len: 0,
    kind: BlobKind::Chunk,
    encoding: Encoding::Raw,
};

/// The chunk references of chunk list `list`, checked against what its tree records. Public
/// for random access that keeps a list's chunk offsets (mount).
pub fn read_list(repo: &Repository, list: &ListRef) -> Result<Vec<ChunkRef>> {
    let reader = repo.index().reader()?;
    let refs = repo.read_list(&reader, list.id)?;
    let covered: u64 = refs.iter().map(|r| r.len as u64).sum();
    if covered != list.size || refs.len() != list.chunks as usize {
        return Err(Error::Corrupt {
            object: format!("chunk list {}", list.id.to_hex()),
            reason: "does not match the size recorded in its tree".into(),
        });
    }
    Ok(refs)
}

/// Calls `f` with consecutive batches of at most `batch` chunk references, in content order.
/// Memory holds one chunk list at a time however large the file.
pub fn for_each_batch(
    repo: &Repository,
    data: &FileData,
    batch: usize,
    mut f: impl FnMut(&[ChunkRef]) -> Result<()>,
) -> Result<()> {
    for_each_list(repo, data, |refs| refs.chunks(batch).try_for_each(&mut f))
}

/// Calls `f` with the chunk references of each chunk list of `data` (at most
/// [`crate::limits::CHUNKS_PER_LIST`]), or once with its inline ones, in content order: for
/// callers that cut batches themselves and prepare the next while the current is written.
pub fn for_each_list(
    repo: &Repository,
    data: &FileData,
    mut f: impl FnMut(&[ChunkRef]) -> Result<()>,
) -> Result<()> {
    match &data.content {
        Content::Inline(refs) => f(refs),
        Content::Lists(lists) => lists.iter().try_for_each(|list| f(&read_list(repo, list)?)),
    }
}

/// Reads every chunk of `data` (each checked) and hands the content to `sink` in order, in
/// pieces of one or more whole chunks.
pub fn read_content(
    repo: &Repository,
    data: &FileData,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for_each_batch(repo, data, BATCH, |refs| {
        read_bounded(repo, refs, &mut sink)
    })
}

/// `refs` read in batches of at most [`BATCH`] chunks and [`BATCH_BYTES`] bytes (a single
/// larger chunk alone).
fn read_bounded(
    repo: &Repository,
    refs: &[ChunkRef],
    sink: &mut impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut start = 0;
    while start < refs.len() {
        let mut end = start;
        let mut bytes = 0u64;
        while end < refs.len()
            && end - start < BATCH
            && (end == start || bytes + refs[end].len as u64 <= BATCH_BYTES)
        {
            bytes += refs[end].len as u64;
            end += 1;
        }
        read_batch(repo, &refs[start..end], sink)?;
        start = end;
    }
    Ok(())
}

/// Reads the chunks `refs` (each checked) and hands their bytes to `sink` in the order of
/// `refs`, in pieces of one or more whole chunks: the content of a file made of these chunks.
pub fn read_chunks(
    repo: &Repository,
    refs: &[ChunkRef],
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    read_bounded(repo, refs, &mut sink)
}

/// Reads the bytes `[offset, offset + len)` of `data` (cut to its size) and hands them to
/// `sink` in order; returns how many it handed out. Only the chunks overlapping the range are
/// read, each checked whole; chunk lists outside it are not read at all.
pub fn read_range(
    repo: &Repository,
    data: &FileData,
    offset: u64,
    len: u64,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let end = offset.saturating_add(len).min(data.size);
    if offset >= end {
        return Ok(0);
    }
    let mut handed = 0u64;
    // The chunks of `refs` (the first at file offset `base`) that overlap the range, read and
    // cut to it.
    let mut overlapping = |base: u64, refs: &[ChunkRef]| -> Result<()> {
        let mut at = base;
        let mut first: Option<(usize, u64)> = None;
        let mut last = 0usize;
        for (i, r) in refs.iter().enumerate() {
            let stop = at + r.len as u64;
            if stop > offset && at < end {
                first.get_or_insert((i, at));
                last = i + 1;
            }
            at = stop;
        }
        let Some((first, mut at)) = first else {
            return Ok(());
        };
        read_chunks(repo, &refs[first..last], |piece| {
            let (start, stop) = (at, at + piece.len() as u64);
            at = stop;
            let (lo, hi) = (offset.max(start), end.min(stop));
            if lo < hi {
                sink(&piece[(lo - start) as usize..(hi - start) as usize])?;
                handed += hi - lo;
            }
            Ok(())
        })
    };
    match &data.content {
        Content::Inline(refs) => overlapping(0, refs)?,
        Content::Lists(lists) => {
            let mut base = 0u64;
            for list in lists {
                if base >= end {
                    break;
                }
                if base + list.size > offset {
                    overlapping(base, &read_list(repo, list)?)?;
                }
                base += list.size;
            }
        }
    }
    Ok(handed)
}

/// One batch: its spans fetched in parallel, its chunks' bytes handed to `sink` in order.
fn read_batch(
    repo: &Repository,
    refs: &[ChunkRef],
    sink: &mut impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let all: Vec<usize> = (0..refs.len()).collect();
    let batch = Batch::new(repo, refs, &all)?;
    let fetched: Vec<Vec<u8>> = batch
        .spans
        .par_iter()
        .map(|span| batch.fetch(repo, span))
        .collect::<Result<_>>()?;
    // In file order: each chunk's bytes, wherever its span put them.
    let mut pieces: Vec<(u64, &[u8])> = batch
        .spans
        .iter()
        .zip(&fetched)
        .flat_map(|(span, bytes)| batch.pieces(span, bytes))
        .collect();
    pieces.sort_unstable_by_key(|(at, _)| *at);
    pieces.iter().try_for_each(|(_, p)| sink(p))
}

/// The index locations of a batch of chunk references, looked up with one reader.
/// Only the chunks at `need` are looked up.
fn locate_batch(
    repo: &Repository,
    refs: &[ChunkRef],
    need: &[usize],
) -> Result<Vec<Option<BlobLocation>>> {
    let reader = repo.index().reader()?;
    let mut out = vec![None; refs.len()];
    for &i in need {
        out[i] = Some(repo.locate(&reader, refs[i].id.into(), BlobKind::Chunk)?);
    }
    Ok(out)
}

/// Groups a batch's chunks into spans: each the indices of chunks in one pack in pack order,
/// none farther than [`SPAN_GAP`] from the previous, at most [`SPAN_BYTES`] from the first's
/// start to the last's end and at most [`SPAN_RAW_BYTES`] decoded (a single larger blob is a
/// span of its own). Chunks stored once but referenced twice are read twice.
#[cfg(test)]
fn spans(locations: &[BlobLocation]) -> Vec<Vec<usize>> {
    let all: Vec<usize> = (0..locations.len()).collect();
    spans_of(locations, all)
}

/// [`spans`] of the chunks at `order` only.
fn spans_of(locations: &[BlobLocation], mut order: Vec<usize>) -> Vec<Vec<usize>> {
    order.sort_by_key(|&i| (locations[i].pack, locations[i].offset));
    let mut out: Vec<Vec<usize>> = Vec::new();
    // Raw bytes of the last span so far.
    let mut raw = 0u64;
    for i in order {
        let here = &locations[i];
        let joins = raw + here.raw_len as u64 <= SPAN_RAW_BYTES
            && out.last().is_some_and(|span| {
                let (first, prev) = (
                    &locations[span[0]],
                    &locations[*span.last().expect("non-empty")],
                );
                let prev_end = prev.offset + prev.stored_len as u64;
                here.pack == prev.pack
                    && here.offset >= prev_end
                    && here.offset - prev_end <= SPAN_GAP
                    && here.offset + here.stored_len as u64 - first.offset <= SPAN_BYTES
            });
        match out.last_mut() {
            Some(span) if joins => span.push(i),
            _ => {
                raw = 0;
                out.push(vec![i]);
            }
        }
        raw += here.raw_len as u64;
    }
    out
}

/// The delta bases `ids` (repeats allowed), fetched together: the distinct ones looked up with
/// one reader, grouped into spans in pack order ([`spans_of`]), the spans read in parallel,
/// each base checked against its id. Bases already in the base cache are taken from it; the
/// set holds at most [`BASE_BYTES`] (in the order the ids come). Fetched bases also go into
/// the cache, where the next batch (often sharing them) finds them.
///
/// Nothing here fails: a base that cannot be looked up or read is left out of the set, and the
/// delta that needs it reads it through the cache, which reports what is wrong with it (and a
/// delta restore or `--keep-going` sees exactly the error it saw before bases were fetched
/// ahead).
pub fn read_bases(repo: &Repository, ids: impl IntoIterator<Item = BlobId>) -> BaseSet {
    let mut set = BaseSet::none();
    let mut seen = HashSet::new();
    let mut wanted: Vec<BlobId> = Vec::new();
    let mut bytes = 0u64;
    for id in ids {
        if !seen.insert(id) {
            continue;
        }
        match repo.cached_base(&id) {
            Some(raw) if bytes + raw.len() as u64 <= BASE_BYTES => {
                bytes += raw.len() as u64;
                set.insert(id, raw);
            }
            Some(_) => {}
            None => wanted.push(id),
        }
    }
    if wanted.is_empty() {
        return set;
    }
    let Ok(reader) = repo.index().reader() else {
        return set;
    };
    let mut found: Vec<(BlobId, BlobLocation)> = Vec::new();
    for id in wanted {
        let Ok(Some(loc)) = reader.lookup(&id) else {
            continue;
        };
        // A base is a chunk stored whole (delta depth 1); anything else is reported by the
        // delta's own read.
        if loc.kind != BlobKind::Chunk || loc.encoding.base().is_some() {
            continue;
        }
        if bytes + loc.raw_len as u64 > BASE_BYTES {
            continue;
        }
        bytes += loc.raw_len as u64;
        found.push((id, loc));
    }
    drop(reader);
    let locations: Vec<BlobLocation> = found.iter().map(|(_, l)| *l).collect();
    let spans = spans_of(&locations, (0..found.len()).collect());
    let fetched: Vec<Vec<(BlobId, Arc<Vec<u8>>)>> = spans
        .par_iter()
        .map(|span| {
            let ids: Vec<BlobId> = span.iter().map(|&i| found[i].0).collect();
            let locs: Vec<BlobLocation> = span.iter().map(|&i| found[i].1).collect();
            let Ok(raw) = repo.read_run(&ids, BlobKind::Chunk, &locs, None, &BaseSet::none())
            else {
                return Vec::new();
            };
            let mut at = 0usize;
            locs.iter()
                .zip(ids)
                .map(|(loc, id)| {
                    let piece = raw[at..at + loc.raw_len as usize].to_vec();
                    at += loc.raw_len as usize;
                    (id, Arc::new(piece))
                })
                .collect()
        })
        .collect();
    for (id, raw) in fetched.into_iter().flatten() {
        repo.cache_base(id, raw.clone());
        set.insert(id, raw);
    }
    set
}

/// A batch's chunk references with their locations, grouped into spans, and each chunk's offset
/// in the file (relative to the batch). For callers that place chunks themselves (restore
/// writes each span at its offsets as soon as it is fetched); others use [`read_content`].
pub(crate) struct Batch<'r> {
    refs: &'r [ChunkRef],
    /// Looked up for the chunks that are read from the repository only.
    locations: Vec<Option<BlobLocation>>,
    /// Indices into `refs`, in pack order within a span.
    pub(crate) spans: Vec<Vec<usize>>,
    /// Each chunk's offset from the batch's first.
    pub(crate) offsets: Vec<u64>,
    /// The bases of the batch's delta chunks, fetched before any span.
    bases: BaseSet,
}

impl<'r> Batch<'r> {
    /// The chunks at `need` are looked up and grouped into spans; the others are neither
    /// looked up nor in any span.
    pub(crate) fn new(repo: &Repository, refs: &'r [ChunkRef], need: &[usize]) -> Result<Self> {
        let locations = locate_batch(repo, refs, need)?;
        let mut at = 0u64;
        let offsets = refs
            .iter()
            .map(|r| {
                let start = at;
                at += r.len as u64;
                start
            })
            .collect();
        let spans = {
            let placeholder = |i: usize| locations[i].unwrap_or(UNUSED);
            let dense: Vec<BlobLocation> = (0..refs.len()).map(placeholder).collect();
            spans_of(&dense, need.to_vec())
        };
        let bases = read_bases(
            repo,
            locations.iter().flatten().filter_map(|l| l.encoding.base()),
        );
        Ok(Batch {
            refs,
            spans,
            locations,
            offsets,
            bases,
        })
    }

    /// Whether every chunk of `span` was looked up (so [`Self::fetch`] can read it).
    pub(crate) fn located(&self, span: &[usize]) -> bool {
        span.iter().all(|&i| self.locations[i].is_some())
    }

    /// The raw bytes of a span's chunks, in span order, every chunk checked (id and length).
    pub(crate) fn fetch(&self, repo: &Repository, span: &[usize]) -> Result<Vec<u8>> {
        let ids: Vec<BlobId> = span.iter().map(|&i| self.refs[i].id.into()).collect();
        let lens: Vec<u32> = span.iter().map(|&i| self.refs[i].len).collect();
        let locations: Vec<BlobLocation> = span
            .iter()
            .map(|&i| self.locations[i].expect("spans hold looked-up chunks"))
            .collect();
        repo.read_run(&ids, BlobKind::Chunk, &locations, Some(&lens), &self.bases)
    }

    /// A fetched span cut into pieces that are contiguous in the file: (batch offset, bytes).
    pub(crate) fn pieces<'b>(&self, span: &[usize], bytes: &'b [u8]) -> Vec<(u64, &'b [u8])> {
        let mut out: Vec<(u64, &'b [u8])> = Vec::new();
        let mut pos = 0usize;
        let mut prev: Option<usize> = None;
        for &i in span {
            let len = self.refs[i].len as usize;
            match out.last_mut() {
                Some((_, piece)) if prev.is_some_and(|p| p + 1 == i) => {
                    *piece = &bytes[pos - piece.len()..pos + len];
                }
                _ => out.push((self.offsets[i], &bytes[pos..pos + len])),
            }
            pos += len;
            prev = Some(i);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pack: u8, offset: u64, stored_len: u32) -> BlobLocation {
        BlobLocation {
            pack: PackId([pack; 32]),
            offset,
            stored_len,
            raw_len: stored_len,
            kind: BlobKind::Chunk,
            encoding: Encoding::Raw,
        }
    }

    #[test]
    fn spans_follow_pack_order_and_split_at_gaps_packs_and_the_size_bound() {
        let mib = 1 << 20;
        // Stored sizes only matter here: each blob decodes to 1,000 bytes.
        let small = |l: BlobLocation| BlobLocation { raw_len: 1000, ..l };
        let locations = [
            at(1, 12, 100),
            at(1, 112, 50),                       // back to back with the first
            at(1, 112 + 50 + 300 * 1024, 10),     // a gap over SPAN_GAP
            at(2, 510, 10),                       // another pack
            at(2, 520, mib),                      // back to back
            at(2, 520 + mib as u64, 3 * mib),     // would pass 4 MiB
            at(2, 520 + 4 * mib as u64, 5 * mib), // larger than the bound on its own
        ]
        .map(small);
        assert_eq!(
            spans(&locations),
            vec![vec![0, 1], vec![2], vec![3, 4], vec![5], vec![6]]
        );
        assert_eq!(spans(&[]), Vec::<Vec<usize>>::new());
        // Shuffled: file order 0,1,2 stored as 2,0,1 with small gaps: one span in pack order.
        let shuffled = [at(3, 300, 100), at(3, 450, 100), at(3, 12, 200)];
        assert_eq!(spans(&shuffled), vec![vec![2, 0, 1]]);
    }

    #[test]
    fn spans_of_deltas_are_cut_by_their_decoded_size() {
        // 100 deltas of 300 stored bytes back to back, each 16 KiB decoded: 64 fill 1 MiB.
        let deltas: Vec<BlobLocation> = (0..100u64)
            .map(|i| BlobLocation {
                raw_len: 16 << 10,
                ..at(4, 12 + 300 * i, 300)
            })
            .collect();
        let spans = spans(&deltas);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0], (0..64).collect::<Vec<_>>());
        assert_eq!(spans[1], (64..100).collect::<Vec<_>>());
        // A blob larger than the bound on its own is a span of its own.
        let big = [
            at(5, 12, 100),
            at(5, 112, 2 << 20),
            at(5, 112 + (2 << 20), 100),
        ];
        assert_eq!(super::spans(&big), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn pieces_merge_chunks_contiguous_in_the_file() {
        let refs: Vec<ChunkRef> = [3u32, 4, 5]
            .iter()
            .map(|&len| ChunkRef {
                id: crate::id::ChunkId([0; 32]),
                len,
            })
            .collect();
        let batch = Batch {
            refs: &refs,
            locations: Vec::new(),
            spans: Vec::new(),
            offsets: vec![0, 3, 7],
            bases: BaseSet::none(),
        };
        // Span order 2, 0, 1: chunk 2's bytes first, then 0 and 1 (contiguous in the file).
        let bytes = b"cccccaaabbbb";
        assert_eq!(
            batch.pieces(&[2, 0, 1], bytes),
            vec![(7, &b"ccccc"[..]), (0, &b"aaabbbb"[..])]
        );
    }

    /// A repository holding one stream of `len` pseudo-random bytes cut into chunks of about
    /// 256 bytes (so its content spans several chunk lists), that stream's content and bytes.
    fn repository_with_stream(
        dir: &std::path::Path,
        len: usize,
    ) -> (Repository, FileData, Vec<u8>) {
        use crate::format::config::ChunkerParams;
        use crate::format::tree::EntryKind;
        use crate::snapshot::{self, SnapshotOptions, StreamSource};
        let small = ChunkerParams {
            min: 64,
            avg: 256,
            max: 1024,
        };
        let mut options = crate::repo::InitOptions::default();
        options.chunker.stream = small;
        let repo = Repository::init(
            std::sync::Arc::new(crate::storage::LocalBackend::new(dir.join("repo"))),
            &dir.join("cache"),
            &options,
        )
        .unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let stream = StreamSource::from_reader(
            "stream",
            "stdin",
            Box::new(std::io::Cursor::new(bytes.clone())),
        );
        let options = SnapshotOptions {
            streams: vec![stream],
            ..Default::default()
        };
        snapshot::run(&repo, options, &crate::progress::NoProgress).unwrap();
        let info = repo
            .find_snapshot("latest", &crate::repo::SnapshotFilter::default())
            .unwrap();
        let EntryKind::File(data) = crate::repo::lookup_path(&repo, &info, "/stream")
            .unwrap()
            .kind
        else {
            panic!("the stream is not a file");
        };
        (repo, data, bytes)
    }

    /// Text lines, one per row, each tagged with its version (`versions[i]` for row i).
    fn lines(versions: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            // A little noise per row, so that the text does not compress to one pack.
            let noise = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let more = noise.rotate_left(29).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let line = format!(
                "{i}\t{noise:016x}{more:016x}\tuser{}@example.com\tv{v}\n",
                i * 7 % 1009
            );
            out.extend_from_slice(line.as_bytes());
        }
        out
    }

    /// Takes one stream snapshot of `bytes` named `name`; returns its content.
    fn snapshot_stream(repo: &Repository, name: &str, bytes: &[u8]) -> FileData {
        use crate::format::tree::EntryKind;
        use crate::snapshot::{self, SnapshotOptions, StreamSource};
        let stream = StreamSource::from_reader(
            name,
            "stdin",
            Box::new(std::io::Cursor::new(bytes.to_vec())),
        );
        let options = SnapshotOptions {
            streams: vec![stream],
            ..Default::default()
        };
        snapshot::run(repo, options, &crate::progress::NoProgress).unwrap();
        let info = repo
            .find_snapshot("latest", &crate::repo::SnapshotFilter::default())
            .unwrap();
        let EntryKind::File(data) = crate::repo::lookup_path(repo, &info, &format!("/{name}"))
            .unwrap()
            .kind
        else {
            panic!("the stream is not a file");
        };
        data
    }

    #[test]
    fn a_batch_of_deltas_fetches_bases_from_several_packs_and_reads_exactly() {
        use crate::format::config::ChunkerParams;
        let dir = tempfile::tempdir().unwrap();
        let mut options = crate::repo::InitOptions::default();
        options.chunker.stream = ChunkerParams {
            min: 2 << 10,
            avg: 4 << 10,
            max: 16 << 10,
        };
        // The smallest packs: day 0's chunks (the bases) spread over several.
        options.pack_target_size = crate::limits::PACK_TARGET_LOWEST;
        let backend: std::sync::Arc<dyn crate::storage::Backend> =
            std::sync::Arc::new(crate::storage::LocalBackend::new(dir.path().join("repo")));
        let repo = Repository::init(backend.clone(), &dir.path().join("cache"), &options).unwrap();
        // Day 0: 60,000 rows (about 4 MiB); day 1: every 40th row updated in place, so nearly
        // every chunk changes a little and is stored as a delta of its day-0 self.
        let mut versions = vec![0u32; 60_000];
        let day0 = lines(&versions);
        snapshot_stream(&repo, "day0", &day0);
        for v in versions.iter_mut().step_by(40) {
            *v = 1;
        }
        let day1 = lines(&versions);
        let data = snapshot_stream(&repo, "day1", &day1);
        drop(repo);
        // Opened again: nothing in the base cache, every base is fetched.
        let repo = Repository::open(backend, &dir.path().join("cache")).unwrap();
        let mut checked = 0;
        for_each_batch(&repo, &data, BATCH, |refs| {
            let all: Vec<usize> = (0..refs.len()).collect();
            let locations = locate_batch(&repo, refs, &all)?;
            let bases: HashSet<BlobId> = locations
                .iter()
                .flatten()
                .filter_map(|l| l.encoding.base())
                .collect();
            let reader = repo.index().reader()?;
            let packs: HashSet<PackId> = bases
                .iter()
                .map(|b| reader.lookup(b).unwrap().unwrap().pack)
                .collect();
            if bases.len() * 2 > refs.len() && packs.len() >= 2 {
                checked += 1;
                let batch = Batch::new(&repo, refs, &all)?;
                assert_eq!(batch.bases.len(), bases.len(), "every base fetched ahead");
                assert!(bases.iter().all(|b| batch.bases.contains(b)));
            }
            Ok(())
        })
        .unwrap();
        assert!(
            checked > 0,
            "no batch of deltas with bases in several packs ({} packs)",
            repo.backend()
                .list(crate::storage::ObjectKind::Pack)
                .unwrap()
                .len()
        );
        let mut whole = Vec::new();
        read_content(&repo, &data, |piece| {
            whole.extend_from_slice(piece);
            Ok(())
        })
        .unwrap();
        assert!(whole == day1, "day 1 read back differs");
    }

    #[test]
    fn read_range_hands_out_exactly_the_bytes_asked_for_across_chunk_lists() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, data, bytes) = repository_with_stream(dir.path(), 3 << 20);
        let Content::Lists(lists) = &data.content else {
            panic!("expected content in chunk lists");
        };
        assert!(lists.len() >= 2, "{} chunk lists", lists.len());
        let mut whole = Vec::new();
        read_content(&repo, &data, |piece| {
            whole.extend_from_slice(piece);
            Ok(())
        })
        .unwrap();
        assert!(whole == bytes, "read_content differs from the stream");
        let size = bytes.len() as u64;
        let boundary = lists[0].size;
        let cases = [
            (0, 0),
            (0, 1),
            (1000, 5000),
            (boundary - 100, 200),
            (boundary, 1),
            (boundary - 1, 1),
            (size - 10, 100),
            (size, 10),
            (size + 5, 10),
            (0, size),
            (12345, u64::MAX),
        ];
        for (offset, len) in cases {
            let mut got = Vec::new();
            let handed = read_range(&repo, &data, offset, len, |piece| {
                got.extend_from_slice(piece);
                Ok(())
            })
            .unwrap();
            let start = offset.min(size) as usize;
            let end = offset.saturating_add(len).min(size) as usize;
            assert_eq!(handed, (end - start) as u64, "range {offset}+{len}");
            assert!(got == bytes[start..end], "range {offset}+{len} differs");
        }
    }
}
