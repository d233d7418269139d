//! Pack files: immutable containers of blobs with a self-describing trailer.
//!
//! ```text
//! header:  "VAULTPAK" | version u32                                  (12 bytes)
//! blobs:   stored bytes of each blob, back to back
//! trailer: count u32 | count x entry (52 bytes) | blake3(count..entries)[32]
//! footer:  trailer_len u32 | "VAULTEND"                              (12 bytes)
//! entry:   id[32] | kind u8 | encoding u8 | reserved u16 = 0 | offset u64 | stored_len u32 | raw_len u32
//! ```
//! The pack's name is the BLAKE3 of the whole file. A blob is verified on read by decompressing
//! it and comparing the BLAKE3 of the result with its id, so every byte of a pack is covered by a
//! checksum: blob bytes by their id, the trailer by its own checksum, the whole by the name.

use super::{check_limit, DecodeError, Put, Reader, FORMAT_VERSION};
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

/// How a blob's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Raw = 0,
    Zstd = 1,
}

impl Encoding {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Raw),
            1 => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// Associated data of a blob: binds its ciphertext to its id and its trailer entry, so a blob
/// moved to another entry (or given another kind, encoding or length) fails authentication.
pub fn blob_ad(kind: BlobKind, encoding: Encoding, raw_len: u32, id: &BlobId) -> [u8; 46] {
    let mut ad = [0u8; 46];
    ad[..8].copy_from_slice(b"VAULTBLB");
    ad[8] = kind as u8;
    ad[9] = encoding as u8;
    ad[10..14].copy_from_slice(&raw_len.to_le_bytes());
    ad[14..].copy_from_slice(&id.0);
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
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A builder whose pending buffer will not reallocate before `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut pending = Vec::with_capacity(bytes.max(HEADER_LEN));
        pending.extend_from_slice(&HEADER_MAGIC);
        pending.put_u32(FORMAT_VERSION);
        PackBuilder {
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

/// Bytes of a pack holding `blobs` blobs that are not blob data: header, trailer, footer.
pub fn overhead(encryption: &Encryption, blobs: u64) -> u64 {
    let trailer = 4 + CHECKSUM_LEN + blobs as usize * ENTRY_LEN;
    (HEADER_LEN + FOOTER_LEN + encryption.sealed_len(trailer)) as u64
}

/// Associated data of a sealed trailer.
fn trailer_ad() -> [u8; 12] {
    keys::file_ad(&FOOTER_MAGIC, FORMAT_VERSION)
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
        out.put_u8(e.encoding as u8);
        out.put_u16(0);
        out.put_u64(e.offset);
        out.put_u32(e.stored_len);
        out.put_u32(e.raw_len);
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
    if r.remaining() != count as usize * ENTRY_LEN {
        return Err(DecodeError::invalid(
            "trailer",
            format!(
                "{count} entries need {} bytes, found {}",
                count as usize * ENTRY_LEN,
                r.remaining()
            ),
        ));
    }
    let mut next_free = HEADER_LEN as u64;
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = BlobId(r.array()?);
        let kind = BlobKind::from_u8(r.u8()?)
            .ok_or_else(|| DecodeError::invalid("blob kind", "unknown"))?;
        let encoding = Encoding::from_u8(r.u8()?)
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
    r.finish()?;
    Ok(entries)
}

/// Checks a pack header (the first [`HEADER_LEN`] bytes).
pub fn decode_header(header: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(header);
    if r.array::<8>()? != HEADER_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u32()?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(version));
    }
    r.finish()
}

/// Decodes a whole pack file: header, footer and trailer.
pub fn decode_pack(encryption: &Encryption, data: &[u8]) -> Result<Vec<BlobEntry>, DecodeError> {
    if data.len() < HEADER_LEN + FOOTER_LEN {
        return Err(DecodeError::Truncated {
            offset: data.len(),
            needed: HEADER_LEN + FOOTER_LEN - data.len(),
        });
    }
    decode_header(&data[..HEADER_LEN])?;
    let size = data.len() as u64;
    let trailer_len = decode_footer(&data[data.len() - FOOTER_LEN..], size)? as usize;
    let start = data.len() - FOOTER_LEN - trailer_len;
    open_trailer(encryption, &data[start..data.len() - FOOTER_LEN], size)
}

thread_local! {
    /// One zstd decompression context per thread: creating one per blob costs more than
    /// decompressing a small blob.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a zstd blob into a buffer of exactly `raw_len` bytes (more is an error).
fn decompress(stored: &[u8], raw_len: u32) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(raw_len as usize);
    decompress_into(stored, &mut out)?;
    Ok(out)
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
/// id (in the domain of `kind`) against the entry. Returns the raw bytes.
pub fn open_blob(
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
        |encoded| {
            let raw = match encoding {
                Encoding::Raw => encoded.to_vec(),
                Encoding::Zstd => decompress(encoded, raw_len)?,
            };
            check_raw(encryption, id, kind, raw_len, &raw)?;
            Ok(raw)
        },
    )
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
/// that gather several blobs into one buffer. On error `out` is left as it was.
pub fn open_blob_append(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    encoding: Encoding,
    raw_len: u32,
    stored: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let start = out.len();
    let checked = with_unsealed(
        encryption,
        (id, kind, encoding, raw_len),
        stored,
        |encoded| {
            out.reserve(raw_len as usize);
            match encoding {
                Encoding::Raw => out.extend_from_slice(encoded),
                Encoding::Zstd => decompress_into(encoded, out)?,
            }
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

/// [`open_blob`] without keeping the raw bytes: what verify and prune need to know.
pub fn check_blob(
    encryption: &Encryption,
    id: BlobId,
    kind: BlobKind,
    encoding: Encoding,
    raw_len: u32,
    stored: &[u8],
) -> Result<(), DecodeError> {
    with_unsealed(
        encryption,
        (id, kind, encoding, raw_len),
        stored,
        |encoded| {
            match encoding {
                Encoding::Raw => check_raw(encryption, id, kind, raw_len, encoded),
                Encoding::Zstd => {
                    let mut buffer = CHECK_BUFFER.take();
                    buffer.clear();
                    buffer.reserve_exact(raw_len as usize);
                    // The capacity may exceed raw_len (an earlier, larger blob): the length check
                    // below still catches output past raw_len.
                    let checked = decompress_into(encoded, &mut buffer)
                        .and_then(|()| check_raw(encryption, id, kind, raw_len, &buffer));
                    CHECK_BUFFER.set(buffer);
                    checked
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(blobs: &[Vec<u8>]) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
        build_with(&Encryption::none(), blobs)
    }

    fn build_with(enc: &Encryption, blobs: &[Vec<u8>]) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
        let mut b = PackBuilder::new();
        for blob in blobs {
            let id = enc.blob_id(BlobKind::Chunk, blob);
            let z = zstd::bulk::compress(blob, 1).unwrap();
            let ad = blob_ad(BlobKind::Chunk, Encoding::Zstd, blob.len() as u32, &id);
            let stored = enc.seal(&ad, z);
            b.add(
                id,
                BlobKind::Chunk,
                Encoding::Zstd,
                blob.len() as u32,
                &stored,
            );
        }
        b.finish(enc)
    }

    fn stored<'a>(data: &'a [u8], e: &BlobEntry) -> &'a [u8] {
        &data[e.offset as usize..(e.offset + e.stored_len as u64) as usize]
    }

    #[test]
    fn encrypted_pack_round_trips_and_detects_flips_and_swapped_blobs() {
        let enc = Encryption::with_keys(crate::keys::MasterKeys::random());
        let blobs = vec![b"first blob".repeat(30), b"second blob".repeat(30)];
        let (_, data, entries) = build_with(&enc, &blobs);
        assert_eq!(decode_pack(&enc, &data).unwrap(), entries);
        // Without the key the trailer does not open.
        assert!(decode_pack(&Encryption::none(), &data).is_err());
        let other = Encryption::with_keys(crate::keys::MasterKeys::random());
        assert_eq!(decode_pack(&other, &data), Err(DecodeError::Authentication));
        for (e, blob) in entries.iter().zip(&blobs) {
            let s = stored(&data, e);
            assert_eq!(
                &open_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, s).unwrap(),
                blob
            );
            assert!(check_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, s).is_ok());
        }
        // Blob 1's bytes under entry 0 (a swap): authentication fails.
        let (a, b) = (entries[0], entries[1]);
        assert_eq!(
            check_blob(&enc, a.id, a.kind, a.encoding, a.raw_len, stored(&data, &b)),
            Err(DecodeError::Authentication)
        );
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x01;
            let whole = decode_pack(&enc, &bad).and_then(|entries| {
                entries.iter().try_for_each(|e| {
                    check_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, stored(&bad, e))
                })
            });
            assert!(whole.is_err(), "flip at {i} undetected");
        }
    }

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..20)) {
            let (id, data, entries) = build(&blobs);
            prop_assert_eq!(PackId::digest(&data), id);
            let decoded = decode_pack(&Encryption::none(), &data).unwrap();
            prop_assert_eq!(&decoded, &entries);
            for (e, blob) in decoded.iter().zip(&blobs) {
                let stored = &data[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
                prop_assert_eq!(&open_blob(&Encryption::none(), e.id, e.kind, e.encoding, e.raw_len, stored).unwrap(), blob);
            }
        }

        #[test]
        fn decode_pack_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_pack(&Encryption::none(), &data);
        }
    }

    #[test]
    fn flipped_trailer_byte_is_detected() {
        let (_, data, _) = build(&[b"hello world".to_vec(), vec![7u8; 5000]]);
        let trailer_start = data.len() - FOOTER_LEN - (4 + 2 * ENTRY_LEN + 32);
        for i in trailer_start..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_pack(&Encryption::none(), &bad).is_err(),
                "flip at {i} undetected"
            );
        }
    }

    #[test]
    fn flipped_blob_byte_is_detected() {
        let blob = b"some compressible text some compressible text".repeat(20);
        let (_, data, entries) = build(std::slice::from_ref(&blob));
        let e = entries[0];
        for i in e.offset..e.offset + e.stored_len as u64 {
            let mut bad = data.clone();
            bad[i as usize] ^= 0x04;
            let stored = &bad[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
            assert!(open_blob(
                &Encryption::none(),
                e.id,
                e.kind,
                e.encoding,
                e.raw_len,
                stored
            )
            .is_err());
        }
    }
}
