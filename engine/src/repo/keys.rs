//! Key files in the repository: unlocking, adding, listing and removing keys.
//! The format of a key file is in [`crate::keys::keyfile`].

use std::path::{Path, PathBuf};

use super::{Password, Repository};
use crate::error::{Error, Result};
use crate::format::config::{Config, EncryptionConfig};
use crate::id::{resolve_prefix, KeyId, PrefixMatch, RepositoryId};
use crate::keys::keyfile::{self, KdfParams, KeyFile};
use crate::keys::{Encryption, MasterKeys};
use crate::storage::{Backend, ObjectKind};

/// A key file as `vault key list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key id: BLAKE3 of the key file (its name in `keys/`).
    pub id: KeyId,
    pub created: String,
    pub host: String,
    pub kdf: KdfParams,
    /// Whether this key unlocked the repository in this process.
    pub current: bool,
}

/// Writes a new key file wrapping `master`; returns its id.
pub(super) fn write_key_file(
    backend: &dyn Backend,
    master: &MasterKeys,
    password: &[u8],
    kdf: KdfParams,
    repository: &RepositoryId,
) -> Result<String> {
    let (id, bytes) = keyfile::create(master, password, kdf, repository, &crate::host::hostname());
    let name = hex::encode(id);
    backend.write(ObjectKind::Key, &name, &bytes)?;
    Ok(name)
}

/// Every key file (name, decoded) and the ones that are damaged (name, error).
type KeyFiles = (Vec<(String, KeyFile)>, Vec<(String, Error)>);

fn key_files(backend: &dyn Backend) -> Result<KeyFiles> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut listed = backend.list(ObjectKind::Key)?;
    // In name order: unlock and `key list` do the same on every run.
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    for info in listed {
        let bytes = backend.read(ObjectKind::Key, &info.name)?;
        let object = format!("key file {}/keys/{}", backend.location(), info.name);
        if hex::encode(blake3::hash(&bytes).as_bytes()) != info.name {
            bad.push((
                info.name,
                Error::Corrupt {
                    object,
                    reason: "content does not match its name".into(),
                },
            ));
            continue;
        }
        match keyfile::decode(&bytes) {
            Ok(file) => good.push((info.name, file)),
            Err(e) => bad.push((info.name, Error::damaged(object, e))),
        }
    }
    Ok((good, bad))
}

/// Unlocks an encrypted repository: the first key file the password opens gives the master
/// keys; then the config's MAC is checked with them. Returns the encryption and the key's name.
pub(super) fn unlock(
    backend: &dyn Backend,
    config: &Config,
    id: &RepositoryId,
    password: &dyn Fn() -> Result<Password>,
) -> Result<(Encryption, String)> {
    let (files, damaged) = key_files(backend)?;
    if files.is_empty() {
        return Err(damaged
            .into_iter()
            .next()
            .map(|(_, e)| e)
            .unwrap_or_else(|| Error::Corrupt {
                object: format!("{}/keys", backend.location()),
                reason: "the config says the repository is encrypted, but there is no key file"
                    .into(),
            }));
    }
    let password = password()?;
    let Some((name, master)) = files
        .iter()
        .find_map(|(name, file)| file.unwrap(&password, id).map(|m| (name.clone(), m)))
    else {
        return Err(match damaged.first() {
            Some((_, first)) => Error::KeyFilesDamaged {
                path: backend.location().into(),
                intact: files.len(),
                damaged: damaged.len(),
                first: first.to_string(),
            },
            None => Error::WrongPassword {
                path: backend.location().into(),
                keys: files.len(),
            },
        });
    };
    let encryption = Encryption::with_keys(master);
    let EncryptionConfig::Repokey { mac, .. } = &config.encryption else {
        unreachable!("called for encrypted repositories only");
    };
    let expected = encryption
        .config_mac(&config.mac_input())
        .expect("encrypted");
    // blake3::Hash compares in constant time.
    if blake3::Hash::from_hex(mac).ok() != Some(blake3::Hash::from(expected)) {
        return Err(Error::Corrupt {
            object: format!("{}/config", backend.location()),
            reason: "authentication failed: its settings were changed by someone without the repository key".into(),
        });
    }
    Ok((encryption, name))
}

/// The local files recording that a repository is encrypted: one per repository id, one per
/// location (so that a foreign unencrypted config, with another id, is refused there too).
pub(super) fn encrypted_markers(
    cache_root: &Path,
    id: &RepositoryId,
    location: &str,
) -> [PathBuf; 2] {
    let location = super::canonical_location(location);
    [
        cache_root.join(id.to_hex()).join("encrypted"),
        cache_root
            .join("encrypted-locations")
            .join(blake3::hash(location.as_bytes()).to_hex().as_str()),
    ]
}

pub(super) fn write_markers(markers: &[PathBuf; 2]) -> Result<()> {
    for marker in markers {
        if marker.exists() {
            continue;
        }
        let dir = marker.parent().expect("markers live in a directory");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        std::fs::write(marker, b"").map_err(|e| Error::io(marker, e))?;
    }
    Ok(())
}

/// Refuses to use an unencrypted config where the repository was encrypted: key files exist,
/// or this machine has opened the repository or its location as encrypted before (`markers`).
/// Someone who can write the repository could otherwise replace the config to make the next
/// snapshot store plaintext.
pub(super) fn refuse_downgrade(backend: &dyn Backend, markers: &[PathBuf; 2]) -> Result<()> {
    let keys = backend.list(ObjectKind::Key)?;
    if !keys.is_empty() || markers.iter().any(|m| m.exists()) {
        return Err(Error::Corrupt {
            object: format!("{}/config", backend.location()),
            reason: format!(
                "says the repository is not encrypted, but {}; the config may have been replaced, so nothing is read or written (restore the original config)",
                if keys.is_empty() {
                    "this machine opened it as encrypted before".to_string()
                } else {
                    format!("keys/ holds {} key files", keys.len())
                }
            ),
        });
    }
    Ok(())
}

impl Repository {
    /// Key files that are damaged (name, error): unusable, whatever their password.
    pub fn damaged_keys(&self) -> Result<Vec<(String, Error)>> {
        Ok(key_files(self.backend.as_ref())?.1)
    }

    /// The repository's key files (encrypted repositories).
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let (files, _) = key_files(self.backend.as_ref())?;
        Ok(files
            .into_iter()
            // Key files are read only when their name is the digest of their bytes.
            .filter_map(|(name, file)| {
                Some(KeyInfo {
                    current: self.key.as_deref() == Some(name.as_str()),
                    id: KeyId::from_hex(&name)?,
                    created: file.created,
                    host: file.host,
                    kdf: file.kdf.params,
                })
            })
            .collect())
    }

    fn master(&self) -> Result<&MasterKeys> {
        self.encryption.master().ok_or_else(|| {
            Error::invalid(
                "key",
                "the repository is not encrypted; it has no keys (create an encrypted one with `vault init --encryption repokey`)",
            )
        })
    }

    /// Adds a key file opening the repository with `password`; returns its id.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        kdf.validate().map_err(|r| Error::invalid("key add", r))?;
        write_key_file(
            self.backend.as_ref(),
            self.master()?,
            password,
            kdf,
            &self.id,
        )
    }

    /// Removes the key file whose id starts with `wanted`. The key that unlocked this process
    /// and the last key are refused.
    pub fn remove_key(&self, wanted: &str) -> Result<String> {
        self.master()?;
        let keys = self.keys()?;
        let name = match resolve_prefix(wanted, keys.iter().map(|k| k.id), |id| id.to_hex()) {
            PrefixMatch::One(id) => id.to_hex(),
            PrefixMatch::None => {
                return Err(Error::invalid(
                    format!("key {wanted}"),
                    "no such key; see `vault key list`",
                ))
            }
            PrefixMatch::Ambiguous => {
                return Err(Error::invalid(
                    format!("key {wanted}"),
                    "ambiguous; give more characters of the id",
                ))
            }
            PrefixMatch::Invalid => {
                return Err(Error::invalid(
                    format!("key {wanted}"),
                    "a key id is at least 4 hex characters; see `vault key list`",
                ))
            }
        };
        if keys.len() == 1 {
            return Err(Error::invalid(
                format!("key {name}"),
                "it is the last key; without it nobody can open the repository (add another with `vault key add` first)",
            ));
        }
        if self.key.as_deref() == Some(name.as_str()) {
            return Err(Error::invalid(
                format!("key {name}"),
                "it is the key this command was unlocked with; unlock with another key to remove it, or use `vault key passwd`",
            ));
        }
        self.backend.delete(ObjectKind::Key, &name)?;
        Ok(name)
    }

    /// Replaces the key this process was unlocked with by one with `password`: the new key file
    /// is written (durably) before the old one is removed. Returns the new key's id.
    pub fn change_password(&mut self, password: &[u8], kdf: KdfParams) -> Result<String> {
        let new = self.add_key(password, kdf)?;
        if let Some(old) = self.key.replace(new.clone()) {
            self.backend.delete(ObjectKind::Key, &old)?;
        }
        Ok(new)
    }
}
