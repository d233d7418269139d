//! The repository config: format version, repository id, chunker and compression settings.
//!
//! Stored as a sealed file (see [`super::sealed`]) named `config` at the repository root, written
//! once at `init` and never changed.

use serde::{Deserialize, Serialize};

use super::{sealed, DecodeError};
use crate::id::RepositoryId;
use crate::limits::*;

/// FastCDC parameters for one kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// Checks the bounds FastCDC v2020 accepts and `min <= avg <= max`.
    pub fn validate(&self) -> Result<(), String> {
        let in_range = |v: u32, lo: u32, hi: u32, what: &str| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{what} chunk size {v} is outside {lo}..={hi} bytes"
                ))
            }
        };
        in_range(self.min, CHUNK_MIN_LOWEST, CHUNK_MIN_HIGHEST, "minimum")?;
        in_range(self.avg, CHUNK_AVG_LOWEST, CHUNK_AVG_HIGHEST, "average")?;
        in_range(self.max, CHUNK_MAX_LOWEST, CHUNK_MAX_HIGHEST, "maximum")?;
        if !self.min.is_multiple_of(2) || !self.avg.is_multiple_of(2) || !self.max.is_multiple_of(2)
        {
            return Err(format!(
                "chunk sizes must be even (got {} / {} / {})",
                self.min, self.avg, self.max
            ));
        }
        if !(self.min <= self.avg && self.avg <= self.max) {
            return Err(format!(
                "chunk sizes must satisfy min <= avg <= max (got {} / {} / {})",
                self.min, self.avg, self.max
            ));
        }
        Ok(())
    }
}

/// Which chunker parameters a file's content was cut with. Recorded per file entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkerProfile {
    /// Streams (stdin, command output): database dumps, where small chunks pay off.
    Stream = 0,
    /// Regular files from a walked directory.
    File = 1,
}

impl ChunkerProfile {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Stream),
            1 => Some(Self::File),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd { level: i32 },
}

impl Compression {
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Compression::None => Ok(()),
            Compression::Zstd { level } if (-7..=22).contains(level) && *level != 0 => Ok(()),
            Compression::Zstd { level } => Err(format!(
                "zstd level {level} is outside -7..=22 (0 is not a level)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerConfig {
    pub stream: ChunkerParams,
    pub file: ChunkerParams,
}

impl ChunkerConfig {
    pub fn params(&self, profile: ChunkerProfile) -> ChunkerParams {
        match profile {
            ChunkerProfile::Stream => self.stream,
            ChunkerProfile::File => self.file,
        }
    }
}

/// The one AEAD encrypted repositories use.
pub const AEAD: &str = "aes-256-gcm-blake3-subkey";

/// Whether, and how, a repository's contents are encrypted (format-spec/10-encryption.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "lowercase")]
pub enum EncryptionConfig {
    /// Nothing is encrypted; ids are plain BLAKE3.
    None,
    /// Master keys in `keys/`, wrapped by passwords.
    Repokey {
        /// Always [`AEAD`].
        aead: String,
        /// Keyed BLAKE3 (config MAC key) of [`Config::mac_input`], hex. Checked once the
        /// repository is unlocked: settings changed by someone without the key are refused.
        mac: String,
    },
}

impl EncryptionConfig {
    pub fn is_on(&self) -> bool {
        !matches!(self, EncryptionConfig::None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// Hex of the [`RepositoryId`].
    pub id: String,
    /// RFC 3339 UTC time of `init`.
    pub created: String,
    pub chunker: ChunkerConfig,
    pub compression: Compression,
    /// Packs are closed once they reach this many bytes.
    pub pack_target_size: u32,
    pub encryption: EncryptionConfig,
}

impl Config {
    pub fn repository_id(&self) -> Option<RepositoryId> {
        RepositoryId::from_hex(&self.id)
    }

    /// What the config MAC covers: the compact JSON of this config with `mac` empty.
    pub fn mac_input(&self) -> Vec<u8> {
        let mut plain = self.clone();
        if let EncryptionConfig::Repokey { mac, .. } = &mut plain.encryption {
            mac.clear();
        }
        serde_json::to_vec(&plain).expect("config serializes")
    }

    /// Checks every field a reader relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.repository_id().is_none() {
            return Err("repository id is not 64 hex characters".into());
        }
        self.chunker.stream.validate()?;
        self.chunker.file.validate()?;
        self.compression.validate()?;
        if !(PACK_TARGET_LOWEST..=PACK_TARGET_HIGHEST).contains(&self.pack_target_size) {
            return Err(format!(
                "pack target size {} is outside {PACK_TARGET_LOWEST}..={PACK_TARGET_HIGHEST}",
                self.pack_target_size
            ));
        }
        if let EncryptionConfig::Repokey { aead, mac } = &self.encryption {
            if aead != AEAD {
                return Err(format!("unknown AEAD {aead:?} (this vault knows {AEAD:?})"));
            }
            if mac.len() != 64 || hex::decode(mac).is_err() {
                return Err("encryption.mac is not 64 hex characters".into());
            }
        }
        Ok(())
    }
}

pub fn encode(config: &Config) -> Vec<u8> {
    let payload = serde_json::to_vec_pretty(config).expect("config serializes");
    sealed::encode(sealed::CONFIG_MAGIC, config.version, &payload)
}

/// Decodes and validates. An unknown version is [`DecodeError::Version`].
pub fn decode(data: &[u8]) -> Result<Config, DecodeError> {
    let (version, payload) =
        sealed::decode_versioned(sealed::CONFIG_MAGIC, super::supported, data)?;
    let config: Config = serde_json::from_slice(payload)
        .map_err(|e| DecodeError::invalid("config", e.to_string()))?;
    if config.version != version {
        return Err(DecodeError::invalid(
            "config",
            "version field disagrees with envelope",
        ));
    }
    config
        .validate()
        .map_err(|e| DecodeError::invalid("config", e))?;
    Ok(config)
}
