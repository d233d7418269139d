//! Which chunker profile cuts a regular file's content (format-spec/03-chunking.md §3.1.1).
//!
//! Input: the file's size, the parent snapshot's entry at the same path, and a content sample
//! read only when the first two do not decide. Output: a [`ChunkerProfile`], recorded in the
//! file's entry.
//!
//! The fine (stream) profile finds small changes in large files that change in place — dumps
//! written by a nightly job, logs, CSV — at the price of more index entries and a little less
//! compression; the coarse (file) profile keeps files written once (media, documents) cheap. The choice must not flip from one day to
//! the next (a flip re-stores the whole file), so the parent's choice is sticky, and where there
//! is no parent it depends only on the content.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::format::config::{ChunkerParams, ChunkerProfile};
use crate::format::tree::FileData;

/// Bytes in each of the samples a new large file's compressibility is judged by.
const SAMPLE_LEN: u64 = 16 << 10;
/// Samples, spread evenly from the start to the end of the file.
const SAMPLES: u64 = 4;
/// A new file is judged by its content only from this many coarse average chunks on (16 MiB by
/// default): database dumps are that large, while text assets (JSON, XML, documents) that never
/// change would only compress worse in small chunks.
const DUMP_SIZED: u64 = 16;

/// The parent snapshot's file at the same path, and whether its size or mtime differ now.
pub(super) struct ParentFile<'a> {
    pub data: &'a FileData,
    pub changed: bool,
}

/// The profile rule of §3.1.1, in order:
/// 1. a file smaller than the coarse profile's average chunk is coarse (one or two chunks either
///    way, and small files are the many);
/// 2. a file whose parent entry was cut fine stays fine;
/// 3. a large file that changed in place since the parent (same path, parent already large) is
///    cut fine from now on;
/// 4. a large file the parent holds unchanged keeps the coarse profile;
/// 5. any other file of at least [`DUMP_SIZED`] coarse average chunks (new, or grown past the
///    threshold) is cut fine when a sample of its content compresses to at most 3/4 of its size
///    (dumps, logs, CSV), coarse otherwise;
/// 6. any other large file is coarse until it changes in place (rule 3).
pub(super) fn choose(
    file: &File,
    size: u64,
    coarse: ChunkerParams,
    parent: Option<ParentFile<'_>>,
) -> ChunkerProfile {
    let large_from = u64::from(coarse.avg);
    if size < large_from {
        return ChunkerProfile::File;
    }
    if let Some(parent) = parent {
        if parent.data.profile == ChunkerProfile::Stream as u8 {
            return ChunkerProfile::Stream;
        }
        if parent.data.size >= large_from {
            return if parent.changed {
                ChunkerProfile::Stream
            } else {
                ChunkerProfile::File
            };
        }
    }
    if size >= DUMP_SIZED * large_from && compressible(file, size) {
        ChunkerProfile::Stream
    } else {
        ChunkerProfile::File
    }
}

/// Whether [`SAMPLES`] samples of the file, compressed together with zstd level 1, take at most
/// 3/4 of their size. A sample that cannot be read counts as incompressible (the read of the whole
/// file reports the error).
fn compressible(file: &File, size: u64) -> bool {
    let sample_len = SAMPLE_LEN.min(size);
    let stride = (size - sample_len) / (SAMPLES - 1).max(1);
    let mut sample = Vec::with_capacity((SAMPLES * sample_len) as usize);
    for i in 0..SAMPLES {
        let start = sample.len();
        sample.resize(start + sample_len as usize, 0);
        if file
            .read_exact_at(&mut sample[start..], i * stride)
            .is_err()
        {
            return false;
        }
    }
    match zstd::bulk::compress(&sample, 1) {
        Ok(packed) => packed.len() * 4 <= sample.len() * 3,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Content;
    use crate::test_data::noise;
    use std::io::Write;

    /// Large from 128 KiB, dump-sized from 2 MiB.
    fn coarse() -> ChunkerParams {
        ChunkerParams {
            min: 32 << 10,
            avg: 128 << 10,
            max: 512 << 10,
        }
    }

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn text(len: usize) -> Vec<u8> {
        (0..)
            .flat_map(|i: u64| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").into_bytes())
            .take(len)
            .collect()
    }

    fn parent(profile: ChunkerProfile, size: u64) -> FileData {
        FileData {
            size,
            profile: profile as u8,
            hardlinked: false,
            content: Content::Inline(Vec::new()),
        }
    }

    #[test]
    fn new_dump_sized_files_are_judged_by_their_content_and_smaller_ones_stay_coarse() {
        let dump = text(3 << 20);
        let media = noise(3 << 20, 5);
        let f = file_with(&dump);
        assert_eq!(
            choose(&f, dump.len() as u64, coarse(), None),
            ChunkerProfile::Stream
        );
        let f = file_with(&media);
        assert_eq!(
            choose(&f, media.len() as u64, coarse(), None),
            ChunkerProfile::File
        );
        // Large but not dump-sized text (a JSON asset): coarse until it changes in place.
        let asset = text(1 << 20);
        let f = file_with(&asset);
        assert_eq!(
            choose(&f, asset.len() as u64, coarse(), None),
            ChunkerProfile::File
        );
        let small = text(100 << 10);
        let f = file_with(&small);
        assert_eq!(
            choose(&f, small.len() as u64, coarse(), None),
            ChunkerProfile::File
        );
    }

    #[test]
    fn the_parent_decides_for_files_it_already_held_large() {
        let media = noise(2 << 20, 5);
        let f = file_with(&media);
        let size = media.len() as u64;
        let coarse_parent = parent(ChunkerProfile::File, size);
        let fine_parent = parent(ChunkerProfile::Stream, size);
        let with = |data, changed| Some(ParentFile { data, changed });
        // Changed in place: fine from now on, whatever the content.
        assert_eq!(
            choose(&f, size, coarse(), with(&coarse_parent, true)),
            ChunkerProfile::Stream
        );
        // Unchanged (read again, e.g. --force-read): keeps its coarse chunks.
        assert_eq!(
            choose(&f, size, coarse(), with(&coarse_parent, false)),
            ChunkerProfile::File
        );
        // Fine stays fine.
        assert_eq!(
            choose(&f, size, coarse(), with(&fine_parent, false)),
            ChunkerProfile::Stream
        );
        // A parent that was small says nothing: the content decides.
        let small_parent = parent(ChunkerProfile::File, 10);
        assert_eq!(
            choose(&f, size, coarse(), with(&small_parent, true)),
            ChunkerProfile::File
        );
        let dump = text(2 << 20);
        let f = file_with(&dump);
        assert_eq!(
            choose(&f, size, coarse(), with(&small_parent, true)),
            ChunkerProfile::Stream
        );
    }
}
