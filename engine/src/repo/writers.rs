//! Who is writing: registrations of running snapshots (`writers/`) and the prune lock (`locks/`).
//!
//! A snapshot registers itself before it reads the prune plans and the index, and removes its
//! registration when it ends. Prune deletes condemned packs only once every writer registered
//! when its plan became durable is gone (format-spec/09-rotation.md). A registration left by a
//! crashed process is recognised as dead when it was made on this host (same host name and boot,
//! and the process id no longer runs the process that registered); one from another host counts
//! as alive until removed with `vault unlock`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host;
use crate::storage::{is_not_found, Backend, ObjectKind};

/// What a registration or lock file says about its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id` of the owner's boot ("" where unknown).
    pub boot_id: String,
    /// The owner's start time in clock ticks since boot (`/proc/<pid>/stat` field 22; 0 where
    /// unknown), so that a reused process id is not mistaken for the owner.
    pub start_ticks: u64,
    /// RFC 3339, when it registered.
    pub time: String,
    /// What the owner is doing (`snapshot`, `prune`).
    pub what: String,
}

impl Owner {
    pub fn current(what: &str) -> Owner {
        let pid = std::process::id();
        Owner {
            host: host::hostname(),
            pid,
            boot_id: host::boot_id(),
            start_ticks: host::start_ticks(pid).unwrap_or(0),
            time: jiff::Timestamp::now().to_string(),
            what: what.into(),
        }
    }

    /// True only when the owner certainly no longer runs: it registered on this host, and
    /// either the host has rebooted since or its process is gone (or is another process now).
    pub fn is_dead(&self) -> bool {
        host::is_dead(&self.host, &self.boot_id, self.pid, self.start_ticks)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} on host {} (pid {}, since {})",
            self.what, self.host, self.pid, self.time
        )
    }
}

/// A registration or lock object; removed from the repository when dropped.
#[derive(Debug)]
pub struct Registration {
    backend: Arc<dyn Backend>,
    kind: ObjectKind,
    name: String,
}

impl Registration {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // A registration that cannot be removed is left behind; prune recognises it as dead
        // once this process has exited.
        let _ = self.backend.delete(self.kind, &self.name);
    }
}

fn random_name() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("random source");
    hex::encode(bytes)
}

/// Registers a running writer (`writers/<random>`); durable when this returns.
pub fn register_writer(backend: &Arc<dyn Backend>, what: &str) -> Result<Registration> {
    let name = random_name();
    let owner = serde_json::to_vec(&Owner::current(what)).expect("owner serializes");
    backend.write(ObjectKind::Writer, &name, &owner)?;
    Ok(Registration {
        backend: backend.clone(),
        kind: ObjectKind::Writer,
        name,
    })
}

/// Every registered writer: its name and owner (`None` when the file is unreadable, which
/// counts as alive).
pub fn writers(backend: &dyn Backend) -> Result<Vec<(String, Option<Owner>)>> {
    owners(backend, ObjectKind::Writer)
}

/// Every lock: its name and owner.
pub fn locks(backend: &dyn Backend) -> Result<Vec<(String, Option<Owner>)>> {
    owners(backend, ObjectKind::Lock)
}

fn owners(backend: &dyn Backend, kind: ObjectKind) -> Result<Vec<(String, Option<Owner>)>> {
    let mut out = Vec::new();
    for info in backend.list(kind)? {
        match backend.read(kind, &info.name) {
            Ok(bytes) => out.push((info.name, serde_json::from_slice(&bytes).ok())),
            Err(e) if is_not_found(&e) => {} // ended between list and read
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Takes the exclusive lock `locks/<name>`. A lock whose owner is dead is broken and taken
/// (its owner is returned, for a message); a live one gives [`Error::Locked`].
pub fn lock(
    backend: &Arc<dyn Backend>,
    name: &str,
    what: &str,
) -> Result<(Registration, Option<Owner>)> {
    let owner = serde_json::to_vec(&Owner::current(what)).expect("owner serializes");
    let mut broken = None;
    for _ in 0..2 {
        match backend.write(ObjectKind::Lock, name, &owner) {
            Ok(()) => {
                let lock = Registration {
                    backend: backend.clone(),
                    kind: ObjectKind::Lock,
                    name: name.into(),
                };
                return Ok((lock, broken));
            }
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        let holder: Option<Owner> = match backend.read(ObjectKind::Lock, name) {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        match holder {
            Some(h) if h.is_dead() => {
                match backend.delete(ObjectKind::Lock, name) {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
                broken = Some(h);
            }
            holder => {
                return Err(Error::Locked {
                    lock: format!("{}/locks/{name}", backend.location()),
                    holder: holder
                        .map(|h| h.describe())
                        .unwrap_or_else(|| "an unknown process".into()),
                })
            }
        }
    }
    Err(Error::Locked {
        lock: format!("{}/locks/{name}", backend.location()),
        holder: "another process (it changed while being broken)".into(),
    })
}

/// What `vault unlock` may remove.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnlockOptions {
    /// Also remove registrations and locks of processes on other hosts, or that seem alive, or
    /// whose file is unreadable (only safe when no vault process uses the repository anywhere).
    pub remove_all: bool,
}

/// A registration (`writers/`) or lock (`locks/`) found by [`unlock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub kind: ObjectKind,
    pub name: String,
    /// `None` when the file is unreadable.
    pub owner: Option<Owner>,
}

impl Holder {
    pub fn describe(&self) -> String {
        self.owner
            .as_ref()
            .map(Owner::describe)
            .unwrap_or_else(|| format!("unreadable {} {}", self.kind.name(), self.name))
    }
}

/// What [`unlock`] did: registrations first, then locks, each in listing order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnlockReport {
    pub removed: Vec<Holder>,
    /// Still running, on another host, or unreadable: left in place.
    pub kept: Vec<Holder>,
}

/// `vault unlock`: removes every registration and lock whose owner is certainly dead
/// ([`Owner::is_dead`]), or all of them with [`UnlockOptions::remove_all`]; keeps the rest.
pub fn unlock(backend: &dyn Backend, options: &UnlockOptions) -> Result<UnlockReport> {
    let mut found = Vec::new();
    for kind in [ObjectKind::Writer, ObjectKind::Lock] {
        for (name, owner) in owners(backend, kind)? {
            found.push(Holder { kind, name, owner });
        }
    }
    let mut report = UnlockReport::default();
    for holder in found {
        if options.remove_all || holder.owner.as_ref().is_some_and(Owner::is_dead) {
            remove(backend, holder.kind, &holder.name)?;
            report.removed.push(holder);
        } else {
            report.kept.push(holder);
        }
    }
    Ok(report)
}

/// Removes a registration or lock by name.
pub fn remove(backend: &dyn Backend, kind: ObjectKind, name: &str) -> Result<()> {
    match backend.delete(kind, name) {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}
