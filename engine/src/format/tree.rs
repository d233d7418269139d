//! Tree objects (one per directory) and chunk lists.
//!
//! A tree lists the entries of one directory, sorted by name bytes, each with its metadata and
//! its content: a file's chunk references (inline up to [`INLINE_CHUNKS`], otherwise references to
//! chunk-list blobs), a directory's subtree id, a symlink's target. Trees are content-addressed
//! (their id is the BLAKE3 of the encoding), so an unchanged directory encodes to the same bytes
//! and is stored once for every snapshot that contains it. See `format-spec/05-trees.md`.

use super::{check_limit, DecodeError, Put, Reader};
use crate::id::{ChunkId, ListId, TreeId};
use crate::limits::*;

const TREE_VERSION: u8 = 1;
const LIST_VERSION: u8 = 1;

/// A reference to one chunk of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// A reference to one chunk-list blob: the list's id, the bytes and the chunks it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRef {
    pub id: ListId,
    pub size: u64,
    pub chunks: u32,
}

/// A file's content: its chunks in order, either inline or through chunk lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Inline(Vec<ChunkRef>),
    Lists(Vec<ListRef>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    pub size: u64,
    /// [`crate::format::config::ChunkerProfile`] the content was cut with.
    pub profile: u8,
    /// The file had more than one hard link; entries with equal `(dev, inode)` in one snapshot
    /// are restored as hard links of each other.
    pub hardlinked: bool,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File(FileData),
    Dir(TreeId),
    Symlink(Vec<u8>),
    Fifo,
    CharDevice { rdev: u64 },
    BlockDevice { rdev: u64 },
}

impl EntryKind {
    fn code(&self) -> u8 {
        match self {
            EntryKind::File(_) => 1,
            EntryKind::Dir(_) => 2,
            EntryKind::Symlink(_) => 3,
            EntryKind::Fifo => 4,
            EntryKind::CharDevice { .. } => 5,
            EntryKind::BlockDevice { .. } => 6,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::File(_) => "file",
            EntryKind::Dir(_) => "directory",
            EntryKind::Symlink(_) => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::CharDevice { .. } => "character device",
            EntryKind::BlockDevice { .. } => "block device",
        }
    }
}

/// File metadata as recorded. `ctime`, `dev` and `inode` serve change detection and hard links;
/// they are not restored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
    pub dev: u64,
    pub inode: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub meta: Metadata,
    pub kind: EntryKind,
}

/// One directory's entries, sorted by name bytes with no duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

impl Tree {
    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Whether `name` is acceptable as one path component: non-empty, at most 255 bytes, not `.` or
/// `..`, and free of `/` and NUL. Decoders reject trees with any other name, so a restore can
/// never be steered outside its target by a name.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != b"."
        && name != b".."
        && !name.iter().any(|&b| b == b'/' || b == 0)
}

/// Smallest encoded entry: name length + 1-byte name + kind + mode, uid, gid + two empty owner
/// names + mtime + ctime + dev + inode, and no kind payload.
const MIN_ENTRY_LEN: usize = 1 + 1 + 1 + 12 + 2 + 12 + 12 + 8 + 8;

/// An owner name as stored: at most [`MAX_OWNER_NAME`] bytes, cut at a character boundary.
fn owner_bytes(name: &str) -> &[u8] {
    let mut end = name.len().min(MAX_OWNER_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name.as_bytes()[..end]
}

fn put_short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.put_u8(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// Encodes a tree. The entries must be sorted and valid (the snapshot pipeline guarantees it);
/// a debug assertion checks.
pub fn encode_tree(tree: &Tree) -> Vec<u8> {
    debug_assert!(tree.entries.windows(2).all(|w| w[0].name < w[1].name));
    let mut out = Vec::with_capacity(16 + tree.entries.len() * 96);
    out.put_u8(TREE_VERSION);
    out.put_u32(tree.entries.len() as u32);
    for e in &tree.entries {
        debug_assert!(valid_name(&e.name));
        put_short_bytes(&mut out, &e.name);
        out.put_u8(e.kind.code());
        let m = &e.meta;
        out.put_u32(m.mode);
        out.put_u32(m.uid);
        out.put_u32(m.gid);
        put_short_bytes(&mut out, owner_bytes(&m.user));
        put_short_bytes(&mut out, owner_bytes(&m.group));
        out.put_i64(m.mtime_sec);
        out.put_u32(m.mtime_nsec);
        out.put_i64(m.ctime_sec);
        out.put_u32(m.ctime_nsec);
        out.put_u64(m.dev);
        out.put_u64(m.inode);
        match &e.kind {
            EntryKind::File(f) => {
                out.put_u64(f.size);
                out.put_u8(f.profile);
                out.put_u8(f.hardlinked as u8);
                match &f.content {
                    Content::Inline(chunks) => {
                        out.put_u8(0);
                        out.put_u32(chunks.len() as u32);
                        for c in chunks {
                            out.extend_from_slice(&c.id.0);
                            out.put_u32(c.len);
                        }
                    }
                    Content::Lists(lists) => {
                        out.put_u8(1);
                        out.put_u32(lists.len() as u32);
                        for l in lists {
                            out.extend_from_slice(&l.id.0);
                            out.put_u64(l.size);
                            out.put_u32(l.chunks);
                        }
                    }
                }
            }
            EntryKind::Dir(id) => out.extend_from_slice(&id.0),
            EntryKind::Symlink(target) => {
                out.put_u16(target.len() as u16);
                out.extend_from_slice(target);
            }
            EntryKind::Fifo => {}
            EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev } => out.put_u64(*rdev),
        }
    }
    out
}

fn short_string(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let len = r.u8()? as usize;
    String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| DecodeError::invalid(what, "not UTF-8"))
}

pub fn decode_tree(data: &[u8]) -> Result<Tree, DecodeError> {
    let mut r = Reader::new(data);
    let version = r.u8()?;
    if version != TREE_VERSION {
        return Err(DecodeError::Version(version as u32));
    }
    let count = r.u32()?;
    check_limit("tree entry count", count as u64, MAX_TREE_ENTRIES as u64)?;
    // An entry takes at least MIN_ENTRY_LEN bytes (a FIFO with a one-byte name and no owner
    // names), so a count the data cannot hold fails before anything is allocated.
    if count as usize > r.remaining() / MIN_ENTRY_LEN {
        return Err(DecodeError::invalid(
            "tree entry count",
            format!("{count} entries cannot fit in {} bytes", r.remaining()),
        ));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name_len = r.u8()? as usize;
        let name = r.bytes(name_len)?.to_vec();
        if !valid_name(&name) {
            return Err(DecodeError::invalid(
                "entry name",
                format!("{:?}", String::from_utf8_lossy(&name)),
            ));
        }
        if let Some(prev) = entries.last() {
            if prev.name >= name {
                return Err(DecodeError::invalid(
                    "tree",
                    "entries not sorted or duplicated",
                ));
            }
        }
        let code = r.u8()?;
        let meta = Metadata {
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
            user: short_string(&mut r, "user name")?,
            group: short_string(&mut r, "group name")?,
            mtime_sec: r.i64()?,
            mtime_nsec: r.u32()?,
            ctime_sec: r.i64()?,
            ctime_nsec: r.u32()?,
            dev: r.u64()?,
            inode: r.u64()?,
        };
        if meta.mtime_nsec >= 1_000_000_000 || meta.ctime_nsec >= 1_000_000_000 {
            return Err(DecodeError::invalid(
                "timestamp",
                "nanoseconds out of range",
            ));
        }
        if meta.mode > 0o7777 {
            return Err(DecodeError::invalid("mode", format!("{:o}", meta.mode)));
        }
        let kind = match code {
            1 => EntryKind::File(decode_file(&mut r)?),
            2 => EntryKind::Dir(TreeId(r.array()?)),
            3 => {
                let len = r.u16()? as usize;
                let target = r.bytes(len)?.to_vec();
                if target.is_empty() || target.contains(&0) {
                    return Err(DecodeError::invalid(
                        "symlink target",
                        "empty or contains NUL",
                    ));
                }
                EntryKind::Symlink(target)
            }
            4 => EntryKind::Fifo,
            5 => EntryKind::CharDevice { rdev: r.u64()? },
            6 => EntryKind::BlockDevice { rdev: r.u64()? },
            other => return Err(DecodeError::invalid("entry kind", other.to_string())),
        };
        entries.push(Entry { name, meta, kind });
    }
    r.finish()?;
    Ok(Tree { entries })
}

fn decode_file(r: &mut Reader<'_>) -> Result<FileData, DecodeError> {
    let size = r.u64()?;
    let profile = r.u8()?;
    if profile > 1 {
        return Err(DecodeError::invalid("chunker profile", profile.to_string()));
    }
    let hardlinked = match r.u8()? {
        0 => false,
        1 => true,
        other => return Err(DecodeError::invalid("file flags", other.to_string())),
    };
    let form = r.u8()?;
    let count = r.u32()?;
    let content = match form {
        0 => {
            check_limit("inline chunk count", count as u64, INLINE_CHUNKS as u64)?;
            let mut chunks = Vec::with_capacity(count as usize);
            let mut total = 0u64;
            for _ in 0..count {
                let c = ChunkRef {
                    id: ChunkId(r.array()?),
                    len: r.u32()?,
                };
                total += c.len as u64;
                chunks.push(c);
            }
            if total != size {
                return Err(DecodeError::invalid(
                    "file content",
                    format!("chunks cover {total} bytes, size is {size}"),
                ));
            }
            Content::Inline(chunks)
        }
        1 => {
            check_limit("chunk list count", count as u64, MAX_LISTS_PER_FILE as u64)?;
            if count as usize > r.remaining() / 44 {
                return Err(DecodeError::invalid(
                    "chunk list count",
                    "larger than the tree",
                ));
            }
            let mut lists = Vec::with_capacity(count as usize);
            let mut total = 0u64;
            for _ in 0..count {
                let l = ListRef {
                    id: ListId(r.array()?),
                    size: r.u64()?,
                    chunks: r.u32()?,
                };
                check_limit("chunks per list", l.chunks as u64, CHUNKS_PER_LIST as u64)?;
                total = total
                    .checked_add(l.size)
                    .ok_or_else(|| DecodeError::invalid("file content", "size overflows"))?;
                lists.push(l);
            }
            if total != size {
                return Err(DecodeError::invalid(
                    "file content",
                    format!("lists cover {total} bytes, size is {size}"),
                ));
            }
            Content::Lists(lists)
        }
        other => return Err(DecodeError::invalid("content form", other.to_string())),
    };
    Ok(FileData {
        size,
        profile,
        hardlinked,
        content,
    })
}

/// Encodes a chunk list (at most [`CHUNKS_PER_LIST`] references).
pub fn encode_list(chunks: &[ChunkRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + chunks.len() * 36);
    out.put_u8(LIST_VERSION);
    out.put_u32(chunks.len() as u32);
    for c in chunks {
        out.extend_from_slice(&c.id.0);
        out.put_u32(c.len);
    }
    out
}

pub fn decode_list(data: &[u8]) -> Result<Vec<ChunkRef>, DecodeError> {
    let mut r = Reader::new(data);
    let version = r.u8()?;
    if version != LIST_VERSION {
        return Err(DecodeError::Version(version as u32));
    }
    let count = r.u32()?;
    check_limit("chunks per list", count as u64, CHUNKS_PER_LIST as u64)?;
    let mut chunks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        chunks.push(ChunkRef {
            id: ChunkId(r.array()?),
            len: r.u32()?,
        });
    }
    r.finish()?;
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..40).prop_filter("valid", |n| valid_name(n))
    }

    fn arb_meta() -> impl Strategy<Value = Metadata> {
        (
            0u32..=0o7777,
            any::<u32>(),
            any::<u32>(),
            "[a-z]{0,12}",
            any::<i64>(),
            0u32..1_000_000_000,
            any::<u64>(),
        )
            .prop_map(
                |(mode, uid, gid, user, mtime_sec, mtime_nsec, inode)| Metadata {
                    mode,
                    uid,
                    gid,
                    group: user.clone(),
                    user,
                    mtime_sec,
                    mtime_nsec,
                    ctime_sec: mtime_sec / 2,
                    ctime_nsec: mtime_nsec / 3,
                    dev: inode ^ 7,
                    inode,
                },
            )
    }

    fn arb_kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            proptest::collection::vec((any::<[u8; 32]>(), 0u32..100_000), 0..INLINE_CHUNKS)
                .prop_map(|refs| {
                    let chunks: Vec<ChunkRef> = refs
                        .into_iter()
                        .map(|(id, len)| ChunkRef {
                            id: ChunkId(id),
                            len,
                        })
                        .collect();
                    let size = chunks.iter().map(|c| c.len as u64).sum();
                    EntryKind::File(FileData {
                        size,
                        profile: 1,
                        hardlinked: size % 2 == 0,
                        content: Content::Inline(chunks),
                    })
                }),
            proptest::collection::vec((any::<[u8; 32]>(), 0u64..1 << 40, 0u32..=8192), 1..5)
                .prop_map(|refs| {
                    let lists: Vec<ListRef> = refs
                        .into_iter()
                        .map(|(id, size, chunks)| ListRef {
                            id: ListId(id),
                            size,
                            chunks,
                        })
                        .collect();
                    let size = lists.iter().map(|l| l.size).sum();
                    EntryKind::File(FileData {
                        size,
                        profile: 0,
                        hardlinked: false,
                        content: Content::Lists(lists),
                    })
                }),
            any::<[u8; 32]>().prop_map(|id| EntryKind::Dir(TreeId(id))),
            proptest::collection::vec(1u8..=255, 1..300).prop_map(EntryKind::Symlink),
            Just(EntryKind::Fifo),
            any::<u64>().prop_map(|rdev| EntryKind::CharDevice { rdev }),
            any::<u64>().prop_map(|rdev| EntryKind::BlockDevice { rdev }),
        ]
    }

    proptest! {
        #[test]
        fn tree_round_trip(raw in proptest::collection::btree_map(arb_name(), (arb_meta(), arb_kind()), 0..30)) {
            let tree = Tree { entries: raw.into_iter().map(|(name, (meta, kind))| Entry { name, meta, kind }).collect() };
            let bytes = encode_tree(&tree);
            prop_assert_eq!(decode_tree(&bytes).unwrap(), tree);
        }

        #[test]
        fn list_round_trip(refs in proptest::collection::vec((any::<[u8; 32]>(), any::<u32>()), 0..200)) {
            let chunks: Vec<ChunkRef> = refs.into_iter().map(|(id, len)| ChunkRef { id: ChunkId(id), len }).collect();
            prop_assert_eq!(decode_list(&encode_list(&chunks)).unwrap(), chunks);
        }

        #[test]
        fn decode_tree_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_tree(&data);
        }
    }

    /// Regression: the smallest entry (57 bytes) was rejected by a 60-byte estimate.
    #[test]
    fn smallest_entry_decodes() {
        let tree = Tree {
            entries: vec![Entry {
                name: b"p".to_vec(),
                meta: Metadata::default(),
                kind: EntryKind::Fifo,
            }],
        };
        let bytes = encode_tree(&tree);
        assert_eq!(bytes.len(), 5 + MIN_ENTRY_LEN);
        assert_eq!(decode_tree(&bytes).unwrap(), tree);
    }

    /// Long multi-byte owner names are cut at a character boundary and still decode.
    #[test]
    fn long_owner_names_round_trip_truncated() {
        let meta = Metadata {
            user: "é".repeat(200),
            ..Metadata::default()
        };
        let tree = Tree {
            entries: vec![Entry {
                name: b"f".to_vec(),
                meta,
                kind: EntryKind::Fifo,
            }],
        };
        let decoded = decode_tree(&encode_tree(&tree)).unwrap();
        assert_eq!(decoded.entries[0].meta.user, "é".repeat(127));
    }

    #[test]
    fn hostile_names_are_rejected() {
        for bad in [&b".."[..], b".", b"a/b", b"/etc", b"a\0b", b""] {
            let mut tree = Tree::default();
            tree.entries.push(Entry {
                name: b"ok".to_vec(),
                meta: Metadata::default(),
                kind: EntryKind::Fifo,
            });
            let mut bytes = encode_tree(&tree);
            // Re-encode with the hostile name spliced in place of "ok".
            let pos = 5;
            assert_eq!(&bytes[pos + 1..pos + 3], b"ok");
            bytes.splice(
                pos..pos + 3,
                std::iter::once(bad.len() as u8).chain(bad.iter().copied()),
            );
            assert!(decode_tree(&bytes).is_err(), "{bad:?} accepted");
        }
    }
}
