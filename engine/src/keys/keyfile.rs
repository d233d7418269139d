//! Key files: the master keys wrapped by a password, `keys/<key id>`.
//!
//! A key file is a sealed file (magic `VAULTKEY`) whose JSON payload names the Argon2id
//! parameters and salt and holds the 64 master-key bytes sealed (AES-256-GCM, [`super::aead`]) under the
//! key Argon2id derives from the password. The associated data binds the wrapped keys to the
//! repository id, so a key file copied from another repository does not open this one. Key id =
//! BLAKE3 of the whole file. Several key files (passwords) can open one repository.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{aead, MasterKeys, NONCE_LEN, TAG_LEN};
use crate::format::{sealed, DecodeError, OBJECT_VERSION};
use crate::id::RepositoryId;

pub const KEY_MAGIC: [u8; 8] = *b"VAULTKEY";

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory (Argon2 "t_cost").
    pub passes: u32,
    /// Lanes (Argon2 "p_cost").
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about 0.25 s on this project's reference machine.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            passes: 3,
            parallelism: 1,
        }
    }
}

/// Largest parameters a key file may ask for: a damaged or hostile key file must not make
/// `open` allocate more than 1 GiB or compute for more than some seconds per key file.
const MAX_MEMORY_KIB: u32 = 1 << 20;
const MAX_PASSES: u32 = 16;
const MAX_PARALLELISM: u32 = 16;

impl KdfParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_PARALLELISM).contains(&self.parallelism) {
            return Err(format!(
                "Argon2id parallelism {} is outside 1..={MAX_PARALLELISM}",
                self.parallelism
            ));
        }
        if !(1..=MAX_PASSES).contains(&self.passes) {
            return Err(format!(
                "Argon2id passes {} is outside 1..={MAX_PASSES}",
                self.passes
            ));
        }
        let lowest = 8 * self.parallelism;
        if !(lowest..=MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(format!(
                "Argon2id memory {} KiB is outside {lowest}..={MAX_MEMORY_KIB} KiB",
                self.memory_kib
            ));
        }
        Ok(())
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
        let params = Params::new(self.memory_kib, self.passes, self.parallelism, Some(32))
            .expect("validated parameters");
        let mut out = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, salt, out.as_mut())
            .expect("validated parameters and a 32-byte salt");
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `"argon2id"`.
    pub algorithm: String,
    #[serde(flatten)]
    pub params: KdfParams,
    /// 32 random bytes, hex.
    pub salt: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    /// RFC 3339 UTC time the key was added.
    pub created: String,
    /// Host it was added on; informational.
    pub host: String,
    pub kdf: Kdf,
    /// `nonce[24] | AES-256-GCM(master keys, 64 bytes) | tag[16]` ([`aead`]), hex.
    pub keys: String,
}

fn wrap_ad(repository: &RepositoryId) -> [u8; 40] {
    let mut ad = [0u8; 40];
    ad[..8].copy_from_slice(&KEY_MAGIC);
    ad[8..].copy_from_slice(repository.as_bytes());
    ad
}

/// A new key file wrapping `master` with `password`: (key id, file bytes).
pub fn create(
    master: &MasterKeys,
    password: &[u8],
    params: KdfParams,
    repository: &RepositoryId,
    host: &str,
) -> ([u8; 32], Vec<u8>) {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).expect("the operating system random source failed");
    let wrapping = params.derive(password, &salt);
    let mut body = master.to_bytes();
    let (nonce, tag) = aead::seal_in_place(&wrapping, &wrap_ad(repository), body.as_mut());
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(body.as_ref());
    wrapped.extend_from_slice(&tag);
    let file = KeyFile {
        version: OBJECT_VERSION,
        created: jiff::Timestamp::now().to_string(),
        host: host.to_string(),
        kdf: Kdf {
            algorithm: "argon2id".into(),
            params,
            salt: hex::encode(salt),
        },
        keys: hex::encode(wrapped),
    };
    let payload = serde_json::to_vec_pretty(&file).expect("key file serializes");
    let bytes = sealed::encode(KEY_MAGIC, OBJECT_VERSION, &payload);
    (*blake3::hash(&bytes).as_bytes(), bytes)
}

/// Decodes and validates a key file (not its password).
pub fn decode(data: &[u8]) -> Result<KeyFile, DecodeError> {
    let payload = sealed::decode(KEY_MAGIC, OBJECT_VERSION, data)?;
    let file: KeyFile = serde_json::from_slice(payload)
        .map_err(|e| DecodeError::invalid("key file", e.to_string()))?;
    if file.version != OBJECT_VERSION {
        return Err(DecodeError::invalid(
            "key file",
            "version field disagrees with envelope",
        ));
    }
    if file.kdf.algorithm != "argon2id" {
        return Err(DecodeError::invalid(
            "key file",
            format!("unknown key derivation {:?}", file.kdf.algorithm),
        ));
    }
    file.kdf
        .params
        .validate()
        .map_err(|e| DecodeError::invalid("key file", e))?;
    let salt = hex::decode(&file.kdf.salt).ok();
    if salt.as_ref().is_none_or(|s| s.len() != 32) {
        return Err(DecodeError::invalid("key file", "salt is not 32 hex bytes"));
    }
    let keys = hex::decode(&file.keys).ok();
    if keys
        .as_ref()
        .is_none_or(|k| k.len() != NONCE_LEN + 64 + TAG_LEN)
    {
        return Err(DecodeError::invalid(
            "key file",
            "wrapped keys are not 104 hex bytes",
        ));
    }
    Ok(file)
}

impl KeyFile {
    /// The master keys, if `password` is this key file's password (`None` otherwise).
    pub fn unwrap(&self, password: &[u8], repository: &RepositoryId) -> Option<MasterKeys> {
        let salt = hex::decode(&self.kdf.salt).ok()?;
        let wrapped = hex::decode(&self.keys).ok()?;
        if wrapped.len() != NONCE_LEN + 64 + TAG_LEN {
            return None;
        }
        let wrapping = self.kdf.params.derive(password, &salt);
        let (nonce, rest) = wrapped.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(64);
        let mut plain = Zeroizing::new([0u8; 64]);
        plain.copy_from_slice(body);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().ok()?;
        let tag: &[u8; TAG_LEN] = tag.try_into().ok()?;
        if !aead::open_in_place(&wrapping, nonce, &wrap_ad(repository), plain.as_mut(), tag) {
            return None;
        }
        Some(MasterKeys::from_bytes(&plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        memory_kib: 64,
        passes: 1,
        parallelism: 1,
    };

    #[test]
    fn right_password_unwraps_wrong_password_and_other_repository_do_not() {
        let master = MasterKeys::random();
        let repo = RepositoryId::random();
        let (id, bytes) = create(&master, b"secret", CHEAP, &repo, "host");
        assert_eq!(&id, blake3::hash(&bytes).as_bytes());
        let file = decode(&bytes).unwrap();
        let got = file.unwrap(b"secret", &repo).unwrap();
        assert_eq!((got.data, got.id), (master.data, master.id));
        assert!(file.unwrap(b"Secret", &repo).is_none());
        assert!(file.unwrap(b"secret", &RepositoryId::random()).is_none());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
    }
}
