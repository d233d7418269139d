//! An in-memory backend for tests: a storage double that models durability and injects faults.
//!
//! Role: stand in for [`super::LocalBackend`] in tests that need to stop the world at an exact
//! step (`engine/tests/crash_points.rs`). Input: the [`Backend`] calls of the engine. Output:
//! the objects, plus what of them survives a power cut ([`MemoryBackend::reboot`]).
//!
//! **The model.** A small file system, the way the crash-consistency literature models one
//! (redb's `tests/crash_consistency.rs`; Pillai et al., "All File Systems Are Not Created
//! Equal", OSDI 2014): files (inodes) with their bytes, and directories mapping names to files.
//! Each of them has a *live* state, what a running process sees, and a *durable* state, what a
//! power cut leaves:
//! - a file's bytes become durable only when the file is `fsync`ed;
//! - a directory's names (created, linked, unlinked) become durable only when the directory is
//!   `fsync`ed; then all of them do, whichever process made them.
//!
//! At a power cut every directory falls back to its durable names, and every file those names
//! reach to its durable bytes (possibly none: a name made durable before its file's bytes
//! were). This is the pessimistic end of what POSIX allows; nothing that was not `fsync`ed
//! survives, and nothing that was is lost.
//!
//! Objects are written exactly as `LocalBackend` writes them (format-spec/01-repository.md
//! §1.3), one step of the model per system call: create the temporary file `<kind dir>/.tmp-*`,
//! write its bytes, `fsync` it, `link` it to its final name (failing if that exists), unlink the
//! temporary name, `fsync` the final directory. `delete` unlinks and `fsync`s the directory.
//! Directories themselves are not modelled: every directory exists, durably (the local backend
//! creates and `fsync`s them at `init`).
//!
//! **Faults.** Each step above is a *fault point*, counted from the last
//! [`MemoryBackend::inject`]. [`Fault::Error`] makes the N-th step fail with an I/O error (the
//! step does not happen; later ones do). [`Fault::PowerCut`] cuts the power before the N-th
//! step: it and every call after it fail, reads included, so the process can change nothing
//! more, and [`MemoryBackend::reboot`] gives the durable state as a new backend. [`Fault::Kill`]
//! stops the process the same way, but the machine keeps running: [`MemoryBackend::restart`]
//! gives everything done before, durable or not (what SIGKILL leaves). Two backends
//! joined by [`MemoryBackend::with_machine_of`] share one step counter and one power supply (a
//! `vault copy` between two repositories of one machine).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    object_path, temp_name, Backend, ObjectInfo, ObjectKind, ObjectWriter, StagedObject,
    TemporaryObject, TEMP_PREFIX,
};
use crate::error::{Error, Result};

/// A fault to inject at the N-th step (1-based) after [`MemoryBackend::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The step fails with an I/O error and does not happen; the steps after it run normally.
    Error(u64),
    /// The power is cut before the step: it and every call after it fail, and only the durable
    /// state survives ([`MemoryBackend::reboot`]).
    PowerCut(u64),
    /// The process is killed before the step: it and every call after it fail, and everything
    /// done before survives, durable or not, as the operating system keeps it
    /// ([`MemoryBackend::restart`]).
    Kill(u64),
}

/// One step of the file-system model: the points where a fault can strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Create a temporary file (`open(O_CREAT | O_EXCL)`).
    Create,
    /// Append bytes to a temporary file.
    Write,
    /// `fsync` a file: its bytes become durable.
    SyncFile,
    /// `link` a temporary file to its final name.
    Link,
    /// `unlink` a name.
    Unlink,
    /// `fsync` a directory: its names become durable.
    SyncDir,
}

type Inode = u64;

#[derive(Debug, Default, Clone)]
struct File {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default, Clone)]
struct Dir {
    live: BTreeMap<String, Inode>,
    durable: BTreeMap<String, Inode>,
}

#[derive(Debug, Default)]
struct FileSystem {
    files: HashMap<Inode, File>,
    /// By path relative to the repository root (`""`, `packs`, `packs/ab`, `snapshots`, …).
    dirs: BTreeMap<String, Dir>,
    next_inode: Inode,
}

impl FileSystem {
    fn lookup(&self, dir: &str, name: &str) -> Option<Inode> {
        self.dirs.get(dir).and_then(|d| d.live.get(name)).copied()
    }

    fn dir(&mut self, dir: &str) -> &mut Dir {
        self.dirs.entry(dir.to_string()).or_default()
    }

    fn new_file(&mut self) -> Inode {
        self.next_inode += 1;
        self.files.insert(self.next_inode, File::default());
        self.next_inode
    }

    /// What a power cut leaves: durable names, reaching durable bytes.
    fn durable(&self) -> FileSystem {
        let mut out = FileSystem {
            next_inode: self.next_inode,
            ..FileSystem::default()
        };
        for (path, dir) in &self.dirs {
            for inode in dir.durable.values() {
                let bytes = self.files[inode].durable.clone();
                out.files.insert(
                    *inode,
                    File {
                        live: bytes.clone(),
                        durable: bytes,
                    },
                );
            }
            out.dirs.insert(
                path.clone(),
                Dir {
                    live: dir.durable.clone(),
                    durable: dir.durable.clone(),
                },
            );
        }
        out
    }
}

/// The step counter and the power supply, shared by the backends of one machine.
#[derive(Debug, Default)]
struct Machine {
    fault: Option<Fault>,
    steps: u64,
    powered_off: bool,
    /// The step a fault struck, for messages.
    struck: Option<String>,
}

#[derive(Debug, Default)]
pub struct MemoryBackend {
    fs: Mutex<FileSystem>,
    machine: Arc<Mutex<Machine>>,
}

fn not_found(kind: ObjectKind, name: &str) -> Error {
    Error::io(
        format!("memory:{}/{name}", kind.name()),
        io::Error::from(io::ErrorKind::NotFound),
    )
}

/// `packs/ab/<id>` -> (`packs/ab`, `<id>`); `config` -> (``, `config`).
fn split(kind: ObjectKind, name: &str) -> Result<(String, String)> {
    let path = object_path(kind, name)?;
    Ok(match path.rsplit_once('/') {
        Some((dir, file)) => (dir.to_string(), file.to_string()),
        None => (String::new(), path),
    })
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// This backend moved onto the machine of `other`: from now on they share one step
    /// counter and one power supply.
    pub fn with_machine_of(self, other: &MemoryBackend) -> Self {
        MemoryBackend {
            fs: self.fs,
            machine: other.machine.clone(),
        }
    }

    /// Arms `fault` (or none) and starts counting steps from zero.
    pub fn inject(&self, fault: Option<Fault>) {
        let mut machine = self.machine.lock().unwrap();
        machine.fault = fault;
        machine.steps = 0;
        machine.struck = None;
    }

    /// Steps taken since the last [`Self::inject`] (the one a fault struck included).
    pub fn steps(&self) -> u64 {
        self.machine.lock().unwrap().steps
    }

    /// The step the injected fault struck (`"power cut before step 7: link packs/ab/…"`), if
    /// it has.
    pub fn struck(&self) -> Option<String> {
        self.machine.lock().unwrap().struck.clone()
    }

    /// The machine after a power cut and a reboot: a new backend (on a machine of its own, with
    /// no fault armed) holding only what was durable. Without a power cut, the state that one
    /// would leave now.
    pub fn reboot(&self) -> MemoryBackend {
        MemoryBackend {
            fs: Mutex::new(self.fs.lock().unwrap().durable()),
            machine: Arc::default(),
        }
    }

    /// The machine after its process was killed ([`Fault::Kill`]): a new backend (on a machine
    /// of its own, with no fault armed) holding everything as the process left it.
    pub fn restart(&self) -> MemoryBackend {
        let fs = self.fs.lock().unwrap();
        MemoryBackend {
            fs: Mutex::new(FileSystem {
                files: fs.files.clone(),
                dirs: fs.dirs.clone(),
                next_inode: fs.next_inode,
            }),
            machine: Arc::default(),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, FileSystem>> {
        self.check_power()?;
        Ok(self.fs.lock().unwrap())
    }

    fn check_power(&self) -> Result<()> {
        if self.machine.lock().unwrap().powered_off {
            return Err(Error::io("memory", io::Error::other("the power is off")));
        }
        Ok(())
    }

    /// Counts one step on `path` and lets the armed fault strike.
    fn step(&self, step: Step, path: &str) -> Result<()> {
        let mut machine = self.machine.lock().unwrap();
        if machine.powered_off {
            return Err(Error::io(path, io::Error::other("the power is off")));
        }
        machine.steps += 1;
        let n = machine.steps;
        match machine.fault {
            Some(Fault::Error(at)) if at == n => {
                machine.struck = Some(format!("I/O error at step {n}: {step:?} {path}"));
                Err(Error::io(
                    path,
                    io::Error::other(format!("injected I/O error at step {n}")),
                ))
            }
            Some(Fault::PowerCut(at)) if at == n => {
                machine.struck = Some(format!("power cut before step {n}: {step:?} {path}"));
                machine.powered_off = true;
                Err(Error::io(path, io::Error::other("the power is off")))
            }
            Some(Fault::Kill(at)) if at == n => {
                machine.struck = Some(format!("killed before step {n}: {step:?} {path}"));
                machine.powered_off = true;
                Err(Error::io(path, io::Error::other("the process is dead")))
            }
            _ => Ok(()),
        }
    }

    fn unlink(&self, dir: &str, name: &str) -> Result<()> {
        let mut fs = self.lock()?;
        self.step(Step::Unlink, &format!("{dir}/{name}"))?;
        fs.dir(dir).live.remove(name);
        Ok(())
    }

    fn sync_dir(&self, dir: &str) -> Result<()> {
        let mut fs = self.lock()?;
        self.step(Step::SyncDir, dir)?;
        let dir = fs.dir(dir);
        dir.durable = dir.live.clone();
        Ok(())
    }

    fn object(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let (dir, file) = split(kind, name)?;
        let fs = self.lock()?;
        let inode = fs
            .lookup(&dir, &file)
            .ok_or_else(|| not_found(kind, name))?;
        Ok(fs.files[&inode].live.clone())
    }
}

/// A temporary file being written.
struct MemoryObject<'a> {
    backend: &'a MemoryBackend,
    kind: ObjectKind,
    staged: MemoryStaged<'a>,
}

impl<'a> ObjectWriter<'a> for MemoryObject<'a> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let staged = &self.staged;
        let mut fs = self.backend.lock()?;
        self.backend
            .step(Step::Write, &format!("{}/{}", staged.temp_dir, staged.temp))?;
        let file = fs.files.get_mut(&staged.inode).expect("created");
        file.live.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>, name: &str) -> Result<Box<dyn StagedObject + 'a>> {
        let mut staged = self.staged;
        let (dir, file) = split(self.kind, name)?;
        if self.backend.lock()?.lookup(&dir, &file).is_some() {
            return Err(Error::AlreadyExists {
                path: format!("memory:{dir}/{file}").into(),
            });
        }
        staged.dir = dir;
        staged.name = file;
        Ok(Box::new(staged))
    }
}

/// A temporary file holding a staged object's bytes; unlinked unless committed.
struct MemoryStaged<'a> {
    backend: &'a MemoryBackend,
    inode: Inode,
    temp_dir: String,
    temp: String,
    /// The final directory and name, set by `finish`.
    dir: String,
    name: String,
    committed: bool,
}

impl StagedObject for MemoryStaged<'_> {
    fn commit(mut self: Box<Self>) -> Result<()> {
        let backend = self.backend;
        {
            let mut fs = backend.lock()?;
            backend.step(Step::SyncFile, &format!("{}/{}", self.temp_dir, self.temp))?;
            let file = fs.files.get_mut(&self.inode).expect("created");
            file.durable = file.live.clone();
        }
        {
            let path = format!("{}/{}", self.dir, self.name);
            let mut fs = backend.lock()?;
            if fs.lookup(&self.dir, &self.name).is_some() {
                return Err(Error::AlreadyExists {
                    path: format!("memory:{path}").into(),
                });
            }
            backend.step(Step::Link, &path)?;
            let inode = self.inode;
            fs.dir(&self.dir).live.insert(self.name.clone(), inode);
        }
        self.committed = true;
        // As the local backend: a temporary name left behind is harmless.
        let _ = backend.unlink(&self.temp_dir, &self.temp);
        backend.sync_dir(&self.dir)
    }
}

impl Drop for MemoryStaged<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.backend.unlink(&self.temp_dir, &self.temp);
        }
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn create(&self) -> Result<()> {
        self.check_power()
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let fs = self.lock()?;
        let listed = |dir: &Dir| -> Vec<ObjectInfo> {
            dir.live
                .iter()
                .filter(|(name, _)| !name.starts_with('.'))
                .map(|(name, inode)| ObjectInfo {
                    name: name.clone(),
                    size: fs.files[inode].live.len() as u64,
                })
                .collect()
        };
        let mut out = Vec::new();
        for (path, dir) in &fs.dirs {
            match kind {
                ObjectKind::Config if path.is_empty() => out.extend(
                    listed(dir)
                        .into_iter()
                        .filter(|object| object.name == "config"),
                ),
                ObjectKind::Pack
                    if path
                        .strip_prefix("packs/")
                        .is_some_and(|fan| fan.len() == 2) =>
                {
                    out.extend(listed(dir))
                }
                ObjectKind::Config | ObjectKind::Pack => {}
                _ if *path == kind.dir() => out.extend(listed(dir)),
                _ => {}
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        self.object(kind, name)
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let data = self.object(kind, name)?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| {
                Error::io(
                    format!("memory:{name}"),
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                )
            })?;
        Ok(data[offset as usize..end as usize].to_vec())
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        Ok(self.object(kind, name)?.len() as u64)
    }

    fn write(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()> {
        self.stage(kind, name, data)?.commit()
    }

    fn create_object<'a>(&'a self, kind: ObjectKind) -> Result<Box<dyn ObjectWriter<'a> + 'a>> {
        let temp_dir = kind.dir().to_string();
        let temp = temp_name();
        let mut fs = self.lock()?;
        self.step(Step::Create, &format!("{temp_dir}/{temp}"))?;
        let inode = fs.new_file();
        fs.dir(&temp_dir).live.insert(temp.clone(), inode);
        Ok(Box::new(MemoryObject {
            backend: self,
            kind,
            staged: MemoryStaged {
                backend: self,
                inode,
                temp_dir,
                temp,
                dir: String::new(),
                name: String::new(),
                committed: false,
            },
        }))
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        let (dir, file) = split(kind, name)?;
        if self.lock()?.lookup(&dir, &file).is_none() {
            return Err(not_found(kind, name));
        }
        self.unlink(&dir, &file)?;
        self.sync_dir(&dir)
    }

    fn list_temporary(&self) -> Result<Vec<TemporaryObject>> {
        let fs = self.lock()?;
        let mut out = Vec::new();
        for kind in ObjectKind::ALL {
            let Some(dir) = fs.dirs.get(kind.dir()) else {
                continue;
            };
            for (name, inode) in &dir.live {
                if name.starts_with(TEMP_PREFIX) {
                    out.push(TemporaryObject {
                        kind,
                        name: name.clone(),
                        size: fs.files[inode].live.len() as u64,
                    });
                }
            }
        }
        Ok(out)
    }

    fn delete_temporary(&self, object: &TemporaryObject) -> Result<()> {
        let dir = object.kind.dir();
        if self.lock()?.lookup(dir, &object.name).is_none() {
            return Ok(());
        }
        self.unlink(dir, &object.name)?;
        self.sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn a_written_object_survives_a_power_cut_and_a_half_written_one_does_not() {
        let backend = MemoryBackend::new();
        backend.write(ObjectKind::Snapshot, ID, b"whole").unwrap();
        // The steps of one write: create, write, fsync, link, unlink temp, fsync dir.
        backend.inject(Some(Fault::PowerCut(6)));
        let err = backend.write(ObjectKind::Pack, ID, b"lost").unwrap_err();
        assert!(err.to_string().contains("power"), "{err}");
        assert!(backend.struck().unwrap().contains("SyncDir packs/00"));
        assert!(backend.read(ObjectKind::Snapshot, ID).is_err(), "power off");

        let rebooted = backend.reboot();
        assert_eq!(rebooted.read(ObjectKind::Snapshot, ID).unwrap(), b"whole");
        assert!(rebooted.list(ObjectKind::Pack).unwrap().is_empty());
        assert!(rebooted.list_temporary().unwrap().is_empty());
    }

    #[test]
    fn a_kill_keeps_what_was_done_durable_or_not() {
        let backend = MemoryBackend::new();
        // Cut before the directory fsync: linked, not durable.
        backend.inject(Some(Fault::Kill(6)));
        assert!(backend.write(ObjectKind::Pack, ID, b"pack").is_err());
        assert!(backend
            .struck()
            .unwrap()
            .starts_with("killed before step 6"));
        assert_eq!(
            backend.restart().read(ObjectKind::Pack, ID).unwrap(),
            b"pack"
        );
        assert!(backend.reboot().list(ObjectKind::Pack).unwrap().is_empty());
    }

    #[test]
    fn an_unsynced_delete_is_undone_by_a_power_cut_and_an_error_leaves_the_rest_running() {
        let backend = MemoryBackend::new();
        backend.write(ObjectKind::Pack, ID, b"pack").unwrap();
        backend.inject(Some(Fault::Error(1)));
        assert!(backend.delete(ObjectKind::Pack, ID).is_err());
        assert_eq!(backend.steps(), 1);
        assert_eq!(backend.read(ObjectKind::Pack, ID).unwrap(), b"pack");

        backend.inject(Some(Fault::PowerCut(2)));
        assert!(backend.delete(ObjectKind::Pack, ID).is_err());
        let rebooted = backend.reboot();
        assert_eq!(rebooted.read(ObjectKind::Pack, ID).unwrap(), b"pack");
        assert!(matches!(
            rebooted.write(ObjectKind::Pack, ID, b"pack"),
            Err(Error::AlreadyExists { .. })
        ));
    }

    #[test]
    fn a_file_synced_but_not_linked_durably_leaves_at_most_a_temporary_file() {
        let backend = MemoryBackend::new();
        let other = MemoryBackend::new().with_machine_of(&backend);
        backend.inject(Some(Fault::PowerCut(12)));
        other.write(ObjectKind::Plan, ID, b"plan").unwrap();
        // Five steps of the second write run on the shared counter, the sixth is cut.
        assert!(backend.write(ObjectKind::Plan, ID, b"plan").is_err());
        assert_eq!(backend.steps(), 12);
        assert!(backend.reboot().list(ObjectKind::Plan).unwrap().is_empty());
        assert_eq!(other.reboot().list(ObjectKind::Plan).unwrap().len(), 1);
    }
}
