//! The AEAD every sealed byte string uses: AES-256-GCM under a per-message key.
//!
//! ```text
//! sealed  = nonce[24] | AES-256-GCM(subkey, gcm_nonce, ad, plaintext) | tag[16]
//! subkey  = BLAKE3 keyed_hash(key, nonce[0..12])      (32 bytes)
//! gcm_nonce = nonce[12..24]
//! ```
//! The nonce is random. Deriving a fresh AES key from half of it (as Tink's AES-GCM-HKDF and
//! C2SP's XAES-256-GCM do) lifts AES-GCM's limit for random 96-bit nonces (about 2^32 messages
//! per key) out of reach: a repeated (subkey, GCM nonce) pair needs a repeated 192-bit nonce.
//! AES-256-GCM itself is ring's (BoringSSL's assembly: AES-NI/VAES and carry-less multiply).

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use zeroize::Zeroizing;

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;

fn message_key(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
    let subkey = Zeroizing::new(*blake3::keyed_hash(key, &nonce[..12]).as_bytes());
    let aes = UnboundKey::new(&AES_256_GCM, subkey.as_ref()).expect("32-byte AES-256 key");
    let gcm_nonce = Nonce::try_assume_unique_for_key(&nonce[12..]).expect("12-byte GCM nonce");
    (LessSafeKey::new(aes), gcm_nonce)
}

/// Encrypts `body` in place under a random nonce; returns (nonce, tag).
pub fn seal_in_place(
    key: &[u8; 32],
    ad: &[u8],
    body: &mut [u8],
) -> ([u8; NONCE_LEN], [u8; TAG_LEN]) {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the operating system random source failed");
    let (aes, gcm_nonce) = message_key(key, &nonce);
    let tag = aes
        .seal_in_place_separate_tag(gcm_nonce, Aad::from(ad), body)
        .expect("AES-256-GCM seals any length a blob can have");
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    (nonce, out)
}

/// Decrypts `body` in place; `false` (and `body` unspecified) when it does not authenticate.
#[must_use]
pub fn open_in_place(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    let (aes, gcm_nonce) = message_key(key, nonce);
    aes.open_in_place_separate_tag(gcm_nonce, Aad::from(ad), Tag::from(*tag), body, 0..)
        .is_ok()
}
