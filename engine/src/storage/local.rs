//! The local-directory backend: the default.
//!
//! Layout: `config`, `packs/<first two hex digits>/<pack id>`, `snapshots/<snapshot id>`.
//! Temporary files start with `.tmp-` and are never listed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Backend, ObjectInfo, ObjectKind};
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

const TEMP_PREFIX: &str = ".tmp-";

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, kind: ObjectKind) -> PathBuf {
        self.root.join(kind.dir())
    }

    fn path_of(&self, kind: ObjectKind, name: &str) -> Result<PathBuf> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if kind != ObjectKind::Config && !valid {
            return Err(Error::invalid(
                "object name",
                format!("{name:?} is not a valid object name"),
            ));
        }
        Ok(match kind {
            ObjectKind::Config => self.root.join("config"),
            ObjectKind::Pack => self
                .dir_of(kind)
                .join(&name[..2.min(name.len())])
                .join(name),
            _ => self.dir_of(kind).join(name),
        })
    }
}

/// Kinds whose objects live directly in their directory (no fan-out).
const FLAT_KINDS: [ObjectKind; 6] = [
    ObjectKind::Snapshot,
    ObjectKind::Forgotten,
    ObjectKind::Protected,
    ObjectKind::Writer,
    ObjectKind::Plan,
    ObjectKind::Lock,
];

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn temp_name() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random source");
    format!("{TEMP_PREFIX}{}", hex::encode(bytes))
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.root).at(&self.root)?;
        let packs = self.dir_of(ObjectKind::Pack);
        fs::create_dir_all(&packs).at(&packs)?;
        for i in 0..=255u8 {
            let sub = packs.join(format!("{i:02x}"));
            fs::create_dir_all(&sub).at(&sub)?;
        }
        sync_dir(&packs)?;
        for kind in FLAT_KINDS {
            let dir = self.dir_of(kind);
            fs::create_dir_all(&dir).at(&dir)?;
        }
        sync_dir(&self.root)?;
        if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut scan = |dir: &Path| -> Result<()> {
            let entries = match fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io(dir, e)),
            };
            for entry in entries {
                let entry = entry.at(dir)?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let meta = entry.metadata().at(entry.path())?;
                if meta.is_file() {
                    out.push(ObjectInfo {
                        name: name.to_string(),
                        size: meta.len(),
                    });
                }
            }
            Ok(())
        };
        match kind {
            ObjectKind::Config => {
                if let Ok(meta) = fs::metadata(self.root.join("config")) {
                    out.push(ObjectInfo {
                        name: "config".into(),
                        size: meta.len(),
                    });
                }
            }
            ObjectKind::Pack => {
                for i in 0..=255u8 {
                    scan(&self.dir_of(kind).join(format!("{i:02x}")))?;
                }
            }
            _ => scan(&self.dir_of(kind))?,
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let path = self.path_of(kind, name)?;
        fs::read(&path).at(path)
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path_of(kind, name)?;
        let mut file = File::open(&path).at(&path)?;
        file.seek(SeekFrom::Start(offset)).at(&path)?;
        let mut buf = vec![
            0u8;
            usize::try_from(len)
                .map_err(|_| Error::invalid("read length", len.to_string()))?
        ];
        file.read_exact(&mut buf).at(&path)?;
        Ok(buf)
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        let path = self.path_of(kind, name)?;
        Ok(fs::metadata(&path).at(&path)?.len())
    }

    /// temp file in the target directory -> write -> fsync -> hard link to the final name (fails
    /// if it exists, so nothing is ever replaced) -> remove temp -> fsync the directory.
    fn write(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path_of(kind, name)?;
        let dir = path
            .parent()
            .expect("object paths have a parent")
            .to_path_buf();
        if path.exists() {
            return Err(Error::AlreadyExists { path });
        }
        let temp = dir.join(temp_name());
        let result = (|| {
            let create = || OpenOptions::new().write(true).create_new(true).open(&temp);
            let mut file = match create() {
                // A fan-out directory removed by hand (or never made): recreate it.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    fs::create_dir_all(&dir).at(&dir)?;
                    sync_dir(dir.parent().unwrap_or(&dir))?;
                    create().at(&temp)?
                }
                other => other.at(&temp)?,
            };
            file.write_all(data).at(&temp)?;
            file.sync_all().at(&temp)?;
            drop(file);
            match fs::hard_link(&temp, &path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    Err(Error::AlreadyExists { path: path.clone() })
                }
                // Filesystems without hard links: rename (the existence check above stands in
                // for link's atomic one; names here are content digests or unique).
                Err(_) => fs::rename(&temp, &path).at(&path),
            }
        })();
        let _ = fs::remove_file(&temp);
        result?;
        sync_dir(&dir)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        let path = self.path_of(kind, name)?;
        fs::remove_file(&path).at(&path)?;
        sync_dir(path.parent().expect("object paths have a parent"))
    }
}
