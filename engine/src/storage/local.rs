//! The local-directory backend: the default.
//!
//! Layout: `config`, `packs/<first two hex digits>/<pack id>`, `snapshots/<snapshot id>`.
//! Temporary files start with `.tmp-` and are never listed.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{
    temp_name, Backend, ObjectInfo, ObjectKind, ObjectWriter, StagedObject, TemporaryObject,
    TEMP_PREFIX,
};
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    /// Packs opened by `read_range`, kept open: restore and verify read many blobs of one pack,
    /// and an open + seek + close per blob costs more than the read. Objects are immutable, so
    /// a handle never sees other bytes than a fresh open would (a deleted pack stays readable
    /// through it, with the same bytes).
    open_packs: Arc<Mutex<HashMap<PathBuf, Arc<File>>>>,
}

/// Open pack handles kept at most (then the cache starts over).
const OPEN_PACKS: usize = 64;

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            open_packs: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A shared handle on the object at `path`, opened once for many range reads.
    fn open_for_ranges(&self, path: &Path) -> Result<Arc<File>> {
        if let Some(file) = self.open_packs.lock().unwrap().get(path) {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(path).at(path)?);
        let mut open = self.open_packs.lock().unwrap();
        if open.len() >= OPEN_PACKS {
            open.clear();
        }
        open.insert(path.to_path_buf(), file.clone());
        Ok(file)
    }

    fn dir_of(&self, kind: ObjectKind) -> PathBuf {
        self.root.join(kind.dir())
    }

    fn path_of(&self, kind: ObjectKind, name: &str) -> Result<PathBuf> {
        Ok(self.root.join(super::object_path(kind, name)?))
    }
}

/// Kinds whose objects live directly in their directory (no fan-out).
const FLAT_KINDS: [ObjectKind; 8] = [
    ObjectKind::Snapshot,
    ObjectKind::Forgotten,
    ObjectKind::Protected,
    ObjectKind::Writer,
    ObjectKind::Plan,
    ObjectKind::Lock,
    ObjectKind::Key,
    ObjectKind::Index,
];

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// An object being written into its temp file.
struct LocalObject<'a> {
    backend: &'a LocalBackend,
    kind: ObjectKind,
    /// Its final path and directory are set by `finish`.
    staged: LocalStaged,
}

impl<'a> ObjectWriter<'a> for LocalObject<'a> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.staged.file.as_mut().expect("open until finished");
        file.write_all(bytes).at(&self.staged.temp)
    }

    fn finish(self: Box<Self>, name: &str) -> Result<Box<dyn StagedObject + 'a>> {
        let mut staged = self.staged;
        let path = self.backend.path_of(self.kind, name)?;
        if path.exists() {
            return Err(Error::AlreadyExists { path });
        }
        let dir = path
            .parent()
            .expect("object paths have a parent")
            .to_path_buf();
        if !dir.is_dir() {
            // A fan-out directory removed by hand (or never made): recreate it.
            fs::create_dir_all(&dir).at(&dir)?;
            sync_dir(dir.parent().unwrap_or(&dir))?;
        }
        let file = staged.file.as_ref().expect("open until finished");
        // Start writing back now, so that the commit's fsync finds little left to do.
        // SAFETY: sync_file_range only reads the descriptor, which `file` keeps open.
        unsafe {
            libc::sync_file_range(
                std::os::fd::AsRawFd::as_raw_fd(file),
                0,
                0,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        staged.path = path;
        staged.dir = dir;
        Ok(Box::new(staged))
    }
}

/// A temp file holding a staged object's bytes; removed unless committed.
struct LocalStaged {
    file: Option<File>,
    temp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
}

impl StagedObject for LocalStaged {
    fn commit(mut self: Box<Self>) -> Result<()> {
        let file = self.file.take().expect("staged with its file");
        file.sync_all().at(&self.temp)?;
        drop(file);
        match fs::hard_link(&self.temp, &self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists {
                    path: self.path.clone(),
                })
            }
            // Filesystems without hard links: rename (the existence check at staging stands
            // in for link's atomic one; names here are content digests or unique).
            Err(_) => fs::rename(&self.temp, &self.path).at(&self.path)?,
        }
        let _ = fs::remove_file(&self.temp);
        sync_dir(&self.dir)
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        // After a commit the temp name is gone already (or renamed away): this fails quietly.
        let _ = fs::remove_file(&self.temp);
    }
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

    fn read_into(&self, kind: ObjectKind, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        let path = self.path_of(kind, name)?;
        let mut file = File::open(&path).at(&path)?;
        let size = file.metadata().at(&path)?.len();
        buf.clear();
        // Amortized growth: packs differ in size by a few MiB, and reallocating the buffer for
        // each slightly larger one fragments the heap.
        buf.reserve(size as usize);
        std::io::Read::read_to_end(&mut file, buf).at(&path)?;
        Ok(())
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_range_into(kind, name, offset, len, &mut buf)?;
        Ok(buf)
    }

    fn read_range_into(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let path = self.path_of(kind, name)?;
        let len =
            usize::try_from(len).map_err(|_| Error::invalid("read length", len.to_string()))?;
        let file = self.open_for_ranges(&path)?;
        // Only memory the buffer did not hold yet is zeroed; the read overwrites all of it.
        buf.resize(len, 0);
        file.read_exact_at(buf, offset).at(&path)
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        let path = self.path_of(kind, name)?;
        Ok(fs::metadata(&path).at(&path)?.len())
    }

    fn write(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()> {
        self.stage(kind, name, data)?.commit()
    }

    /// A temp file in the kind's directory (for packs: `packs/`, above the fan-out, since the
    /// name is not known yet). Finishing it starts its writeback; the commit fsyncs it,
    /// hard-links it to the final name (which fails if that exists, so nothing is ever
    /// replaced), removes the temp name and fsyncs the final directory.
    fn create_object<'a>(&'a self, kind: ObjectKind) -> Result<Box<dyn ObjectWriter<'a> + 'a>> {
        let dir = self.dir_of(kind);
        let temp = dir.join(temp_name());
        let create = || OpenOptions::new().write(true).create_new(true).open(&temp);
        let file = match create() {
            // A directory removed by hand (or never made): recreate it.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(&dir).at(&dir)?;
                sync_dir(dir.parent().unwrap_or(&dir))?;
                create().at(&temp)?
            }
            other => other.at(&temp)?,
        };
        Ok(Box::new(LocalObject {
            backend: self,
            kind,
            staged: LocalStaged {
                file: Some(file),
                temp,
                path: PathBuf::new(),
                dir: PathBuf::new(),
            },
        }))
    }

    fn list_temporary(&self) -> Result<Vec<TemporaryObject>> {
        let mut out = Vec::new();
        for kind in ObjectKind::ALL {
            let dir = self.dir_of(kind);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(dir, e)),
            };
            for entry in entries {
                let entry = entry.at(&dir)?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if !name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                match entry.metadata() {
                    Ok(meta) if meta.is_file() => out.push(TemporaryObject {
                        kind,
                        name,
                        size: meta.len(),
                    }),
                    Ok(_) => {}
                    // Committed or dropped by its writer since the listing.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(entry.path(), e)),
                }
            }
        }
        Ok(out)
    }

    fn delete_temporary(&self, object: &TemporaryObject) -> Result<()> {
        if !object.name.starts_with(TEMP_PREFIX) || object.name.contains('/') {
            return Err(Error::invalid(
                "temporary object",
                format!("{:?} is not a temporary object name", object.name),
            ));
        }
        let dir = self.dir_of(object.kind);
        let path = dir.join(&object.name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            other => other.at(&path)?,
        }
        sync_dir(&dir)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        let path = self.path_of(kind, name)?;
        // A handle kept open would keep the deleted pack's space in use.
        self.open_packs.lock().unwrap().remove(&path);
        fs::remove_file(&path).at(&path)?;
        sync_dir(path.parent().expect("object paths have a parent"))
    }
}
