//! Repository encryption: the keys of an encrypted repository and what they do. Pure: no I/O.
//!
//! An encrypted repository has two random 32-byte master keys, stored only wrapped in key files
//! (`keys/`, see [`keyfile`]): the *data key*, from which the AEAD key and the config MAC key
//! derive, and the *id key*, from which the chunk, tree and chunk-list id keys and the chunker's
//! gear table derive (BLAKE3 `derive_key`, contexts below). [`Encryption`] is what the rest of the
//! engine holds: either nothing (an unencrypted repository: plain BLAKE3 ids, bytes stored as they
//! are) or the derived keys. Layout of everything sealed: `nonce[24] | ciphertext | tag[16]`,
//! AES-256-GCM under a per-message key ([`aead`]) over the plaintext padded to a multiple of [`PAD_TO`] bytes
//! (ISO/IEC 7816-4: one `0x80` byte, then zeros). format-spec/10-encryption.md.

pub mod aead;
pub mod keyfile;

use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

use crate::format::DecodeError;
use crate::id::{BlobId, BlobKind, ChunkId, ID_LEN};

pub use aead::{NONCE_LEN, TAG_LEN};
/// Plaintext is padded to a multiple of this many bytes before it is encrypted.
pub const PAD_TO: usize = 64;

const AEAD_CONTEXT: &str = "vault 2026-12-02 aead key";
const CONFIG_MAC_CONTEXT: &str = "vault 2026-12-02 config mac key";
const CHUNK_ID_CONTEXT: &str = "vault 2026-12-02 chunk id key";
const TREE_ID_CONTEXT: &str = "vault 2026-12-02 tree id key";
const LIST_ID_CONTEXT: &str = "vault 2026-12-02 chunk list id key";
const GEAR_CONTEXT: &str = "vault 2026-12-02 chunker gear key";

/// Associated data of a pack trailer, a snapshot manifest, a prune plan: their magic bytes and
/// the format version, so that no sealed payload can stand in for one of another kind.
pub fn file_ad(magic: &[u8; 8], version: u32) -> [u8; 12] {
    let mut ad = [0u8; 12];
    ad[..8].copy_from_slice(magic);
    ad[8..].copy_from_slice(&version.to_le_bytes());
    ad
}

/// The two random master keys of an encrypted repository.
#[derive(Clone)]
pub struct MasterKeys {
    pub data: [u8; 32],
    pub id: [u8; 32],
}

impl Drop for MasterKeys {
    fn drop(&mut self) {
        self.data.zeroize();
        self.id.zeroize();
    }
}

impl MasterKeys {
    pub fn random() -> Self {
        let mut keys = MasterKeys {
            data: [0; 32],
            id: [0; 32],
        };
        getrandom::fill(&mut keys.data).expect("the operating system random source failed");
        getrandom::fill(&mut keys.id).expect("the operating system random source failed");
        keys
    }

    pub fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(&self.data);
        out[32..].copy_from_slice(&self.id);
        out
    }

    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        let mut keys = MasterKeys {
            data: [0; 32],
            id: [0; 32],
        };
        keys.data.copy_from_slice(&bytes[..32]);
        keys.id.copy_from_slice(&bytes[32..]);
        keys
    }
}

/// The keys derived from [`MasterKeys`].
struct Keyring {
    master: MasterKeys,
    aead: Zeroizing<[u8; 32]>,
    config_mac: Zeroizing<[u8; 32]>,
    chunk_id: Zeroizing<[u8; 32]>,
    tree_id: Zeroizing<[u8; 32]>,
    list_id: Zeroizing<[u8; 32]>,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

/// A repository's encryption: off, or the keys of an unlocked repository. Cheap to clone.
#[derive(Clone, Default)]
pub struct Encryption(Option<Arc<Keyring>>);

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_on() {
            "Encryption(on)"
        } else {
            "Encryption(off)"
        })
    }
}

/// Constant-time equality of two key slices (ring's, which vault already uses for MACs).
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    #[allow(deprecated)]
    ring::constant_time::verify_slices_are_equal(a, b).is_ok()
}

fn derive(context: &str, key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(blake3::derive_key(context, key))
}

impl Encryption {
    /// An unencrypted repository.
    pub fn none() -> Self {
        Encryption(None)
    }

    pub fn with_keys(master: MasterKeys) -> Self {
        let aead_key = derive(AEAD_CONTEXT, &master.data);
        let gear_key = derive(GEAR_CONTEXT, &master.id);
        let mut table = Zeroizing::new([0u8; 256 * 8]);
        blake3::Hasher::new_keyed(&gear_key)
            .finalize_xof()
            .fill(table.as_mut());
        let mut gear = Box::new([0u64; 256]);
        let mut gear_ls = Box::new([0u64; 256]);
        for (i, word) in table.chunks_exact(8).enumerate() {
            gear[i] = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            gear_ls[i] = gear[i] << 1;
        }
        Encryption(Some(Arc::new(Keyring {
            aead: aead_key,
            config_mac: derive(CONFIG_MAC_CONTEXT, &master.data),
            chunk_id: derive(CHUNK_ID_CONTEXT, &master.id),
            tree_id: derive(TREE_ID_CONTEXT, &master.id),
            list_id: derive(LIST_ID_CONTEXT, &master.id),
            gear,
            gear_ls,
            master,
        })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `other` names blobs alike (both unencrypted, or the same id keys): then a blob
    /// keeps its id when copied between the two repositories.
    pub fn same_ids(&self, other: &Encryption) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                use subtle_eq as eq;
                eq(&a.chunk_id[..], &b.chunk_id[..])
                    && eq(&a.tree_id[..], &b.tree_id[..])
                    && eq(&a.list_id[..], &b.list_id[..])
            }
            _ => false,
        }
    }

    /// The master keys, to wrap them in another key file.
    pub fn master(&self) -> Option<&MasterKeys> {
        self.0.as_deref().map(|k| &k.master)
    }

    /// A chunk's id: plain BLAKE3, or BLAKE3 keyed with the chunk id key.
    pub fn chunk_id(&self, raw: &[u8]) -> ChunkId {
        match &self.0 {
            None => ChunkId::digest(raw),
            Some(k) => ChunkId(*blake3::keyed_hash(&k.chunk_id, raw).as_bytes()),
        }
    }

    /// The id of a blob of `kind` with these raw bytes.
    pub fn blob_id(&self, kind: BlobKind, raw: &[u8]) -> BlobId {
        let Some(k) = &self.0 else {
            return kind.digest(raw);
        };
        let key = match kind {
            BlobKind::Chunk => &k.chunk_id,
            BlobKind::Tree => &k.tree_id,
            BlobKind::List => &k.list_id,
        };
        BlobId(*blake3::keyed_hash(key, raw).as_bytes())
    }

    /// The keyed gear table and its left-shifted twin for FastCDC, if encrypted.
    pub fn gear(&self) -> Option<(&[u64; 256], &[u64; 256])> {
        self.0.as_deref().map(|k| (&*k.gear, &*k.gear_ls))
    }

    /// The config MAC (keyed BLAKE3) of `bytes`, if encrypted.
    pub fn config_mac(&self, bytes: &[u8]) -> Option<[u8; ID_LEN]> {
        self.0
            .as_deref()
            .map(|k| *blake3::keyed_hash(&k.config_mac, bytes).as_bytes())
    }

    /// Bytes [`Self::seal`] turns `len` plaintext bytes into (`len` when off).
    pub fn sealed_len(&self, len: usize) -> usize {
        match self.0 {
            None => len,
            Some(_) => NONCE_LEN + (len / PAD_TO + 1) * PAD_TO + TAG_LEN,
        }
    }

    /// Encrypts `plain` with a fresh random nonce and associated data `ad`:
    /// `nonce | ciphertext of padded plain | tag`. Off: returns `plain` unchanged.
    pub fn seal(&self, ad: &[u8], plain: Vec<u8>) -> Vec<u8> {
        let Some(k) = &self.0 else {
            return plain;
        };
        let mut out = Vec::with_capacity(self.sealed_len(plain.len()));
        out.resize(NONCE_LEN, 0);
        out.extend_from_slice(&plain);
        pad(&mut out, NONCE_LEN);
        let (nonce, tag) = aead::seal_in_place(&k.aead, ad, &mut out[NONCE_LEN..]);
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts and authenticates what [`Self::seal`] made, into `scratch` (reused), and returns
    /// the plaintext. Off: returns `sealed` itself.
    pub fn open<'a>(
        &self,
        ad: &[u8],
        sealed: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], DecodeError> {
        let Some(k) = &self.0 else {
            return Ok(sealed);
        };
        if sealed.len() < NONCE_LEN + PAD_TO + TAG_LEN
            || !(sealed.len() - NONCE_LEN - TAG_LEN).is_multiple_of(PAD_TO)
        {
            return Err(DecodeError::invalid(
                "sealed length",
                format!("{} bytes is not a sealed length", sealed.len()),
            ));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        scratch.clear();
        scratch.extend_from_slice(body);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let tag: &[u8; TAG_LEN] = tag.try_into().expect("split at TAG_LEN");
        if !aead::open_in_place(&k.aead, nonce, ad, scratch, tag) {
            return Err(DecodeError::Authentication);
        }
        let len = unpadded_len(scratch)?;
        Ok(&scratch[..len])
    }

    /// [`Self::open`] into a fresh buffer.
    pub fn open_owned(&self, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut scratch = Vec::new();
        let len = self.open(ad, sealed, &mut scratch)?.len();
        if self.is_on() {
            scratch.truncate(len);
            Ok(scratch)
        } else {
            Ok(sealed.to_vec())
        }
    }
}

/// Pads `buf[from..]` to a multiple of [`PAD_TO`]: `0x80`, then zeros (always at least one byte).
fn pad(buf: &mut Vec<u8>, from: usize) {
    buf.push(0x80);
    let len = buf.len() - from;
    buf.resize(from + len.div_ceil(PAD_TO) * PAD_TO, 0);
}

fn unpadded_len(padded: &[u8]) -> Result<usize, DecodeError> {
    match padded.iter().rposition(|&b| b != 0) {
        Some(i) if padded[i] == 0x80 && padded.len() - i <= PAD_TO => Ok(i),
        _ => Err(DecodeError::invalid("padding", "no 0x80 marker")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_for_every_length_and_every_flip_fails() {
        let enc = Encryption::with_keys(MasterKeys::random());
        let mut scratch = Vec::new();
        for len in [0usize, 1, 63, 64, 65, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = enc.seal(b"ad", plain.clone());
            assert_eq!(sealed.len(), enc.sealed_len(len));
            assert_eq!(enc.open(b"ad", &sealed, &mut scratch).unwrap(), &plain[..]);
            assert!(enc.open(b"other", &sealed, &mut scratch).is_err());
            for i in (0..sealed.len()).step_by(7) {
                let mut bad = sealed.clone();
                bad[i] ^= 1;
                assert!(enc.open(b"ad", &bad, &mut scratch).is_err(), "flip at {i}");
            }
        }
        let other = Encryption::with_keys(MasterKeys::random());
        let sealed = enc.seal(b"ad", b"x".to_vec());
        assert_eq!(
            other.open(b"ad", &sealed, &mut scratch),
            Err(DecodeError::Authentication)
        );
    }

    #[test]
    fn keyed_ids_differ_per_repository_and_per_kind() {
        let a = Encryption::with_keys(MasterKeys::random());
        let b = Encryption::with_keys(MasterKeys::random());
        let data = b"same bytes";
        assert_ne!(a.chunk_id(data), b.chunk_id(data));
        assert_ne!(a.chunk_id(data), Encryption::none().chunk_id(data));
        assert_eq!(
            BlobId::from(a.chunk_id(data)),
            a.blob_id(BlobKind::Chunk, data)
        );
        assert_ne!(
            a.blob_id(BlobKind::Tree, data),
            a.blob_id(BlobKind::List, data)
        );
        assert_ne!(a.gear().unwrap().0[..], b.gear().unwrap().0[..]);
    }

    #[test]
    fn off_is_the_identity() {
        let none = Encryption::none();
        assert_eq!(none.seal(b"ad", b"abc".to_vec()), b"abc");
        let mut scratch = Vec::new();
        assert_eq!(none.open(b"ad", b"abc", &mut scratch).unwrap(), b"abc");
    }
}
