//! Pack files: immutable containers of blobs with a self-describing trailer.
//!
//! ```text
//! header:  "VAULTPAK" | version u32                                  (12 bytes)
//! blobs:   stored bytes of each blob, back to back
//! trailer: count u32 | count x entry (52 bytes) | blake3(count..entries)[32]
//! footer:  trailer_len u32 | "VAULTEND"                              (12 bytes)
//! entry:   id[32] | kind u8 | encoding u8 | reserved u16 = 0 | offset u64 | stored_len u32 | raw_len u32
//! ```
//! Version 5: the trailer's entries are followed by one base id (32 bytes) per delta entry
//! (encoding 2), in entry order, before the checksum (format-spec/04-packs.md §4.9).
//! The pack's name is the BLAKE3 of the whole file. A blob is verified on read by decompressing
//! it and comparing the BLAKE3 of the result with its id, so every byte of a pack is covered by a
//! checksum: blob bytes by their id, the trailer by its own checksum, the whole by the name.

use super::{check_limit, DecodeError, Put, Reader, OBJECT_VERSION};
pub use crate::id::BlobKind;
use crate::id::{BlobId, PackId};
use crate::keys::{self, Encryption};
use crate::limits::{MAX_BLOBS_PER_PACK, MAX_BLOB_SIZE, MAX_PACK_SIZE};

pub const HEADER_MAGIC: [u8; 8] = *b"VAULTPAK";
pub const FOOTER_MAGIC: [u8; 8] = *b"VAULTEND";
pub const HEADER_LEN: usize = 12;
pub const FOOTER_LEN: usize = 12;
pub const ENTRY_LEN: usize = 52;
const CHECKSUM_LEN: usize = 32;
/// Bytes of a delta entry's base id in the trailer's base table (version 5).
pub const BASE_LEN: usize = 32;

/// How a blob's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The raw bytes (code 0).
    Raw,
    /// One zstd frame (code 1).
    Zstd,
    /// One zstd frame compressed with the raw bytes of chunk `base` as its dictionary (code 2,
    /// format version 5; chunks only, and `base` is never a delta itself).
    Delta { base: BlobId },
}

/// The trailer code of [`Encoding::Delta`].
pub const DELTA_CODE: u8 = 2;

impl Encoding {
    /// The encoding with trailer code `v`; a delta's needs its base.
    pub fn from_code(v: u8, base: Option<BlobId>) -> Option<Self> {
        match (v, base) {
            (0, _) => Some(Self::Raw),
            (1, _) => Some(Self::Zstd),
            (DELTA_CODE, Some(base)) => Some(Self::Delta { base }),
            _ => None,
        }
    }

    /// The code a trailer entry records.
    pub fn code(&self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Zstd => 1,
            Self::Delta { .. } => DELTA_CODE,
        }
    }

    /// The base chunk of a delta.
    pub fn base(&self) -> Option<BlobId> {
        match self {
            Self::Delta { base } => Some(*base),
            _ => None,
        }
    }
}

/// Associated data of a blob: binds its ciphertext to its id and its trailer entry, so a blob
/// moved to another entry (or given another kind, encoding, length or base) fails
/// authentication. 46 bytes; a delta's 78 (its base id appended).
pub fn blob_ad(kind: BlobKind, encoding: Encoding, raw_len: u32, id: &BlobId) -> Vec<u8> {
    let mut ad = Vec::with_capacity(78);
    ad.extend_from_slice(b"VAULTBLB");
    ad.push(kind as u8);
    ad.push(encoding.code());
    ad.extend_from_slice(&raw_len.to_le_bytes());
    ad.extend_from_slice(&id.0);
    if let Some(base) = encoding.base() {
        ad.extend_from_slice(&base.0);
    }
    ad
}

/// One trailer entry: where a blob sits in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    pub encoding: Encoding,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// Accumulates blobs into one pack. Pure: the caller writes the bytes. The bytes may be taken
/// piece by piece as the pack grows ([`Self::take`]), so that a pack never needs to be in memory
/// whole; the pack id (the BLAKE3 of all its bytes) is computed on the way.
pub struct PackBuilder {
    /// The pack header's version: the repository's format version.
    version: u32,
    /// Bytes added since the last [`Self::take`] (at first, the header).
    pending: Vec<u8>,
    /// BLAKE3 of the bytes taken so far.
    hasher: blake3::Hasher,
    len: u64,
    entries: Vec<BlobEntry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    /// A builder of a pack of the current format version.
    pub fn new() -> Self {
        Self::with_capacity(super::FORMAT_VERSION, 0)
    }

    /// A builder of a pack of format `version` (the repository's) whose pending buffer will not
    /// reallocate before `bytes`.
    pub fn with_capacity(version: u32, bytes: usize) -> Self {
        let mut pending = Vec::with_capacity(bytes.max(HEADER_LEN));
        pending.extend_from_slice(&HEADER_MAGIC);
        pending.put_u32(version);
        PackBuilder {
            version,
            pending,
            hasher: blake3::Hasher::new(),
            len: HEADER_LEN as u64,
            entries: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the pack will have without its trailer.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Bytes added since the last [`Self::take`].
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn entries(&self) -> &[BlobEntry] {
        &self.entries
    }

    /// The pack header's format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn add(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        encoding: Encoding,
        raw_len: u32,
        stored: &[u8],
    ) {
        self.entries.push(BlobEntry {
            id,
            kind,
            encoding,
            offset: self.len,
            stored_len: stored.len() as u32,
            raw_len,
        });
        self.pending.extend_from_slice(stored);
        self.len += stored.len() as u64;
    }

    /// Like [`Self::add`] followed by [`Self::take`], without copying `stored`: the pending
    /// bytes, then `stored`, go to `sink`. For large blobs.
    #[allow(clippy::too_many_arguments)]
    pub fn add_through<E>(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        encoding: Encoding,
        raw_len: u32,
        stored: &[u8],
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.take(&mut sink)?;
        self.entries.push(BlobEntry {
            id,
            kind,
            encoding,
            offset: self.len,
            stored_len: stored.len() as u32,
            raw_len,
        });
        self.len += stored.len() as u64;
        self.hasher.update(stored);
        sink(stored)
    }

    /// Hands the bytes added since the last call to `sink`, in file order, and forgets them.
    pub fn take<E>(&mut self, sink: impl FnOnce(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.hasher.update(&self.pending);
        let written = sink(&self.pending);
        self.pending.clear();
        written
    }

    /// Appends trailer (sealed when `encryption` is on) and footer; returns the pack's id, its
    /// bytes not taken yet (all of them if [`Self::take`] was never called) and its entries.
    pub fn finish(mut self, encryption: &Encryption) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
        let trailer = seal_trailer(encryption, &self.entries);
        self.pending.extend_from_slice(&trailer);
        self.pending.put_u32(trailer.len() as u32);
        self.pending.extend_from_slice(&FOOTER_MAGIC);
        self.hasher.update(&self.pending);
        (
            PackId(*self.hasher.finalize().as_bytes()),
            self.pending,
            self.entries,
        )
    }
}

/// Bytes of a pack holding `blobs` blobs, `deltas` of them delta chunks, that are not blob
/// data: header, trailer, footer.
pub fn overhead(encryption: &Encryption, blobs: u64, deltas: u64) -> u64 {
    let trailer = 4 + CHECKSUM_LEN + blobs as usize * ENTRY_LEN + deltas as usize * BASE_LEN;
    (HEADER_LEN + FOOTER_LEN + encryption.sealed_len(trailer)) as u64
}

/// Associated data of a sealed trailer.
fn trailer_ad() -> [u8; 12] {
    keys::file_ad(&FOOTER_MAGIC, OBJECT_VERSION)
}

/// The trailer as stored: [`encode_trailer`], sealed when `encryption` is on.
pub fn seal_trailer(encryption: &Encryption, entries: &[BlobEntry]) -> Vec<u8> {
    encryption.seal(&trailer_ad(), encode_trailer(entries))
}

/// Opens a stored trailer of a pack of `pack_size` bytes and decodes it ([`decode_trailer_in`]).
pub fn open_trailer(
    encryption: &Encryption,
    stored: &[u8],
    pack_size: u64,
) -> Result<Vec<BlobEntry>, DecodeError> {
    let blob_end = pack_size
        .checked_sub((stored.len() + FOOTER_LEN) as u64)
        .ok_or_else(|| DecodeError::invalid("trailer", "larger than its pack"))?;
    let mut scratch = Vec::new();
    let trailer = encryption.open(&trailer_ad(), stored, &mut scratch)?;
    decode_trailer_in(trailer, blob_end, encryption.is_on())
}

pub fn encode_trailer(entries: &[BlobEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * ENTRY_LEN + CHECKSUM_LEN);
    out.put_u32(entries.len() as u32);
    for e in entries {
        out.extend_from_slice(&e.id.0);
        out.put_u8(e.kind as u8);
        out.put_u8(e.encoding.code());
        out.put_u16(0);
        out.put_u64(e.offset);
        out.put_u32(e.stored_len);
        out.put_u32(e.raw_len);
    }
    // The base table (version 5): one base id per delta entry, in entry order.
    for base in entries.iter().filter_map(|e| e.encoding.base()) {
        out.extend_from_slice(&base.0);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Reads the footer (the last [`FOOTER_LEN`] bytes of a pack of `pack_size` bytes) and returns
/// the trailer's length, checked to fit in the pack.
pub fn decode_footer(footer: &[u8], pack_size: u64) -> Result<u32, DecodeError> {
    check_limit("pack size", pack_size, MAX_PACK_SIZE)?;
    let mut r = Reader::new(footer);
    let trailer_len = r.u32()?;
    if r.array::<8>()? != FOOTER_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    r.finish()?;
    let room = pack_size.saturating_sub((HEADER_LEN + FOOTER_LEN) as u64);
    if trailer_len as u64 > room || (trailer_len as usize) < 4 + CHECKSUM_LEN {
        return Err(DecodeError::invalid(
            "trailer length",
            format!("{trailer_len} does not fit a pack of {pack_size} bytes"),
        ));
    }
    Ok(trailer_len)
}

/// Decodes a plain trailer of a pack of `pack_size` bytes and checks that every entry lies inside
/// the blob area, in order, without overlap.
pub fn decode_trailer(trailer: &[u8], pack_size: u64) -> Result<Vec<BlobEntry>, DecodeError> {
    let blob_end = pack_size
        .checked_sub((trailer.len() + FOOTER_LEN) as u64)
        .ok_or_else(|| DecodeError::invalid("trailer", "larger than its pack"))?;
    decode_trailer_in(trailer, blob_end, false)
}

/// Decodes a plain trailer whose blob area ends at `blob_end`. With `sealed_blobs` (an encrypted
/// repository) a raw blob's stored length is that of its ciphertext, not its raw length.
pub fn decode_trailer_in(
    trailer: &[u8],
    blob_end: u64,
    sealed_blobs: bool,
) -> Result<Vec<BlobEntry>, DecodeError> {
    if trailer.len() < 4 + CHECKSUM_LEN {
        return Err(DecodeError::Truncated {
            offset: 0,
            needed: 4 + CHECKSUM_LEN - trailer.len(),
        });
    }
    let body = &trailer[..trailer.len() - CHECKSUM_LEN];
    if blake3::hash(body).as_bytes()[..] != trailer[body.len()..] {
        return Err(DecodeError::Checksum);
    }
    let mut r = Reader::new(body);
    let count = r.u32()?;
    check_limit("blob count", count as u64, MAX_BLOBS_PER_PACK as u64)?;
    if r.remaining() < count as usize * ENTRY_LEN {
        return Err(DecodeError::invalid(
            "trailer",
            format!(
                "{count} entries need {} bytes, found {}",
                count as usize * ENTRY_LEN,
                r.remaining()
            ),
        ));
    }
    // The base table follows the entries: one base id for each entry with the delta code.
    let mut bases = Reader::new(&body[4 + count as usize * ENTRY_LEN..]);
    let mut next_free = HEADER_LEN as u64;
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = BlobId(r.array()?);
        let kind = BlobKind::from_u8(r.u8()?)
            .ok_or_else(|| DecodeError::invalid("blob kind", "unknown"))?;
        let code = r.u8()?;
        let base = match code {
            DELTA_CODE if kind != BlobKind::Chunk => {
                return Err(DecodeError::invalid(
                    "blob encoding",
                    "a delta that is not a chunk",
                ))
            }
            DELTA_CODE => Some(BlobId(bases.array().map_err(|_| {
                DecodeError::invalid("trailer", "base table shorter than its delta entries")
            })?)),
            _ => None,
        };
        let encoding = Encoding::from_code(code, base)
            .ok_or_else(|| DecodeError::invalid("blob encoding", "unknown"))?;
        if r.u16()? != 0 {
            return Err(DecodeError::invalid(
                "trailer entry",
                "reserved bytes are not zero",
            ));
        }
        let offset = r.u64()?;
        let stored_len = r.u32()?;
        let raw_len = r.u32()?;
        check_limit("blob size", raw_len as u64, MAX_BLOB_SIZE as u64)?;
        let end = offset
            .checked_add(stored_len as u64)
            .ok_or_else(|| DecodeError::invalid("blob offset", "overflows"))?;
        if offset < next_free || end > blob_end {
            return Err(DecodeError::invalid(
                "blob location",
                format!("{offset}+{stored_len} overlaps or lies outside the blob area"),
            ));
        }
        if encoding == Encoding::Raw && stored_len != raw_len && !sealed_blobs {
            return Err(DecodeError::invalid(
                "raw blob",
                "stored length differs from raw length",
            ));
        }
        next_free = end;
        entries.push(BlobEntry {
            id,
            kind,
            encoding,
            offset,
            stored_len,
            raw_len,
        });
    }
    bases
        .finish()
        .map_err(|_| DecodeError::invalid("trailer", "base table longer than its delta entries"))?;
    Ok(entries)
}

/// Checks a pack header (the first [`HEADER_LEN`] bytes); returns its format version.
pub fn decode_header(header: &[u8]) -> Result<u32, DecodeError> {
    let mut r = Reader::new(header);
    if r.array::<8>()? != HEADER_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u32()?;
    if !super::supported(version) {
        return Err(DecodeError::Version(version));
    }
    r.finish()?;
    Ok(version)
}

/// Decodes a whole pack file: header, footer and trailer.
pub fn decode_pack(encryption: &Encryption, data: &[u8]) -> Result<Vec<BlobEntry>, DecodeError> {
    if data.len() < HEADER_LEN + FOOTER_LEN {
        return Err(DecodeError::Truncated {
            offset: data.len(),
            needed: HEADER_LEN + FOOTER_LEN - data.len(),
        });
    }
    let version = decode_header(&data[..HEADER_LEN])?;
    let size = data.len() as u64;
    let trailer_len = decode_footer(&data[data.len() - FOOTER_LEN..], size)? as usize;
    let start = data.len() - FOOTER_LEN - trailer_len;
    let entries = open_trailer(encryption, &data[start..data.len() - FOOTER_LEN], size)?;
    if version < 5 && entries.iter().any(|e| e.encoding.base().is_some()) {
        return Err(DecodeError::invalid(
            "pack",
            format!("version {version} pack holds delta chunks"),
        ));
    }
    Ok(entries)
}

thread_local! {
    /// One zstd decompression context per thread: creating one per blob costs more than
    /// decompressing a small blob.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// One zstd context per thread for delta chunks (a dictionary per frame).
    static DELTA_DECOMPRESSOR: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The bytes an encoded blob decodes to, appended to `out` (whose capacity bounds the output):
/// raw bytes copied, a zstd frame decompressed, a delta decompressed with its base's raw bytes
/// `base_raw` as dictionary.
fn decode_into(
    encoding: Encoding,
    encoded: &[u8],
    base_raw: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    match (encoding, base_raw) {
        (Encoding::Raw, _) => {
            out.extend_from_slice(encoded);
            Ok(())
        }
        (Encoding::Zstd, _) => decompress_into(encoded, out),
        (Encoding::Delta { base }, Some(dictionary)) => {
            if !usable_base(dictionary) {
                return Err(DecodeError::invalid(
                    "delta chunk",
                    format!("base {} cannot be a dictionary", base.to_hex()),
                ));
            }
            decompress_delta_into(encoded, dictionary, out)
        }
        (Encoding::Delta { base }, None) => Err(DecodeError::invalid(
            "delta chunk",
            format!("decoded without its base {}", base.to_hex()),
        )),
    }
}

/// zstd's magic number of a formatted dictionary (RFC 8878 §5), little-endian.
const DICTIONARY_MAGIC: [u8; 4] = 0xEC30_A437u32.to_le_bytes();

/// Whether a chunk's raw bytes can be a delta's base: zstd takes them as raw content only if
/// they do not start with a formatted dictionary's magic number (RFC 8878 §5).
pub fn usable_base(raw: &[u8]) -> bool {
    raw.len() >= 8 && raw[..4] != DICTIONARY_MAGIC
}

fn decompress_delta_into(
    encoded: &[u8],
    dictionary: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let start = out.len() as u64;
    let mut cursor = std::io::Cursor::new(out);
    cursor.set_position(start);
    DELTA_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
        dctx.decompress_using_dict(&mut cursor, encoded, dictionary)
            .map(|_| ())
            .map_err(|code| {
                DecodeError::invalid("zstd delta", zstd::zstd_safe::get_error_name(code))
            })
    })
}

/// Decompresses a zstd blob onto the end of `out`, whose capacity bounds the output.
fn decompress_into(stored: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let start = out.len() as u64;
    let mut cursor = std::io::Cursor::new(out);
    cursor.set_position(start);
    DECOMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            slot.as_mut()
                .expect("just set")
                .decompress_to_buffer(stored, &mut cursor)
        })
        .map_err(|e| DecodeError::invalid("zstd data", e.to_string()))?;
    Ok(())
}

thread_local! {
    /// Where [`check_blob`] decompresses, reused: checking a pack's blobs allocates nothing.
    static CHECK_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    /// Where a sealed blob is decrypted, reused.
    static PLAIN: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Checks a blob's raw bytes against its trailer entry: length, then id in `kind`'s domain.
fn check_raw(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    raw_len: u32,
    raw: &[u8],
) -> Result<(), DecodeError> {
    if raw.len() != raw_len as usize {
        return Err(DecodeError::invalid(
            "blob length",
            format!("decoded {} bytes, trailer says {raw_len}", raw.len()),
        ));
    }
    if encryption.blob_id(kind, raw) != id {
        return Err(DecodeError::Checksum);
    }
    Ok(())
}

/// Runs `f` on a blob's encoded bytes: `stored` itself, or, in an encrypted repository, its
/// authenticated plaintext (associated data: kind, encoding, raw length and id).
fn with_unsealed<T>(
    encryption: &Encryption,
    entry: (BlobId, BlobKind, Encoding, u32),
    stored: &[u8],
    f: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    check_limit("blob size", entry.3 as u64, MAX_BLOB_SIZE as u64)?;
    if !encryption.is_on() {
        return f(stored);
    }
    let (id, kind, encoding, raw_len) = entry;
    let mut scratch = PLAIN.take();
    let result = encryption
        .open(&blob_ad(kind, encoding, raw_len, &id), stored, &mut scratch)
        .and_then(|encoded| {
            if encoding == Encoding::Raw && encoded.len() != raw_len as usize {
                return Err(DecodeError::invalid(
                    "raw blob",
                    "stored length differs from raw length",
                ));
            }
            f(encoded)
        });
    PLAIN.set(scratch);
    result
}

/// Decrypts (if sealed) and decompresses (if needed) a blob's stored bytes and checks length and
/// id (in the domain of `kind`) against the entry. Returns the raw bytes. A delta chunk is an
/// error here: it decodes only with its base ([`open_blob_append`]).
pub fn open_blob(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    encoding: Encoding,
    raw_len: u32,
    stored: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(raw_len as usize);
    open_blob_append(
        encryption, id, kind, encoding, raw_len, stored, None, &mut out,
    )?;
    Ok(out)
}

/// [`open_blob`] on stored bytes the caller owns: a raw blob of an unencrypted repository is
/// returned without a copy.
pub fn open_blob_owned(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    encoding: Encoding,
    raw_len: u32,
    stored: Vec<u8>,
) -> Result<Vec<u8>, DecodeError> {
    if encryption.is_on() || encoding != Encoding::Raw {
        return open_blob(encryption, id, kind, encoding, raw_len, &stored);
    }
    check_limit("blob size", raw_len as u64, MAX_BLOB_SIZE as u64)?;
    check_raw(encryption, id, kind, raw_len, &stored)?;
    Ok(stored)
}

/// [`open_blob`] appending the raw bytes to `out` (decompressed straight into it), for readers
/// that gather several blobs into one buffer; `base_raw` is a delta chunk's base's raw bytes
/// (checked against the base's id by the caller). On error `out` is left as it was.
#[allow(clippy::too_many_arguments)]
pub fn open_blob_append(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    encoding: Encoding,
    raw_len: u32,
    stored: &[u8],
    base_raw: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let start = out.len();
    let checked = with_unsealed(
        encryption,
        (id, kind, encoding, raw_len),
        stored,
        |encoded| {
            out.reserve(raw_len as usize);
            decode_into(encoding, encoded, base_raw, out)?;
            check_raw(encryption, id, kind, raw_len, &out[start..])
        },
    );
    if checked.is_err() {
        out.truncate(start);
    }
    checked
}

/// A sealed blob's stored bytes sealed again under a fresh nonce (authenticated on the way, not
/// decompressed), for copying it into a new pack: the copy shares no ciphertext with the
/// original, so comparing packs before and after a prune shows no blob boundaries.
pub fn reseal_blob(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    encoding: Encoding,
    raw_len: u32,
    stored: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    with_unsealed(
        encryption,
        (id, kind, encoding, raw_len),
        stored,
        |encoded| Ok(encryption.seal(&blob_ad(kind, encoding, raw_len, &id), encoded.to_vec())),
    )
}

/// [`open_blob`] without keeping the raw bytes: what verify and prune need to know. A delta
/// chunk needs its base's raw bytes `base_raw`.
pub fn check_blob(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    encoding: Encoding,
    raw_len: u32,
    stored: &[u8],
    base_raw: Option<&[u8]>,
) -> Result<(), DecodeError> {
    with_unsealed(
        encryption,
        (id, kind, encoding, raw_len),
        stored,
        |encoded| {
            match encoding {
                Encoding::Raw => check_raw(encryption, id, kind, raw_len, encoded),
                Encoding::Zstd | Encoding::Delta { .. } => {
                    let mut buffer = CHECK_BUFFER.take();
                    buffer.clear();
                    buffer.reserve_exact(raw_len as usize);
                    // The capacity may exceed raw_len (an earlier, larger blob): the length check
                    // below still catches output past raw_len.
                    let checked = decode_into(encoding, encoded, base_raw, &mut buffer)
                        .and_then(|()| check_raw(encryption, id, kind, raw_len, &buffer));
                    CHECK_BUFFER.set(buffer);
                    checked
                }
            }
        },
    )
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
