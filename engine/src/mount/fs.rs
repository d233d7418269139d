//! The FUSE adapter: kernel requests to [`super::nodes`] and [`super::cache`], replies with
//! attributes mapped from the trees' metadata. Read-only: every request that would change
//! something is refused with EROFS (the mount is also read-only for the kernel).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, OpenAccMode,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::nodes::{self, Inodes, Node, Snapshots, Trees};
use super::reader::Reader;
use crate::error::Error;
use crate::format::tree::{Entry, EntryKind};
use crate::repo::writers::Registration;
use crate::repo::Repository;

/// How long the kernel keeps the name space's attributes and names (they change as snapshots
/// come and go).
const NAMESPACE_TTL: Duration = nodes::RELIST;
/// How long it keeps a snapshot's (they never change).
const SNAPSHOT_TTL: Duration = Duration::from_secs(3600);
/// `st_blksize`: what `cp` and friends size their reads by.
const BLOCK_SIZE: u32 = 128 << 10;

/// The mounted repository, shared by the FUSE threads.
pub struct VaultFs {
    pub(super) repo: Arc<Repository>,
    pub(super) snapshots: Snapshots,
    pub(super) inodes: Inodes,
    pub(super) trees: Trees,
    pub(super) reader: Reader,
    /// The handle of the next file opened (each open file is a read-ahead stream of its own).
    pub(super) next_handle: AtomicU64,
    /// Registered as a reader for the life of the mount (format-spec/09-rotation.md): a prune
    /// does not delete packs this mount may read. Dropped when the session ends.
    pub(super) _reader: Option<Registration>,
    pub(super) started: SystemTime,
    pub(super) owner: (u32, u32),
}

fn time(sec: i64, nsec: u32) -> SystemTime {
    let since = Duration::new(sec.unsigned_abs(), 0);
    let whole = if sec >= 0 {
        UNIX_EPOCH + since
    } else {
        UNIX_EPOCH - since
    };
    whole + Duration::from_nanos(nsec.into())
}

/// The errno an engine error is reported to a reader as.
fn errno(error: &Error) -> Errno {
    match error {
        Error::NoSuchPath { .. } | Error::NoSuchSnapshot { .. } => Errno::ENOENT,
        _ => Errno::EIO,
    }
}

impl VaultFs {
    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (uid, gid) = self.owner;
        let mut attr = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid,
            gid,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        };
        match node {
            Node::Root | Node::Snapshots | Node::ByLabel => {}
            Node::LabelKey(_) | Node::LabelValue(..) => {}
            Node::Link { up, target } => {
                let shown = self.snapshots.current(&self.repo);
                let text = nodes::link_text(&shown, up, target).unwrap_or_default();
                attr.kind = FileType::Symlink;
                attr.perm = 0o777;
                attr.nlink = 1;
                attr.size = text.len() as u64;
            }
            Node::SnapshotRoot(id, _) => {
                let shown = self.snapshots.current(&self.repo);
                if let Some(s) = shown.iter().find(|s| s.id == *id) {
                    if let Ok(t) = s.manifest.time.parse::<jiff::Timestamp>() {
                        let at = time(t.as_second(), t.subsec_nanosecond().max(0) as u32);
                        (attr.mtime, attr.ctime, attr.atime) = (at, at, at);
                    }
                }
            }
            Node::Entry(_, entry) => entry_attr(&mut attr, entry),
        }
        attr
    }

    fn ttl(node: &Node) -> Duration {
        match node {
            Node::Entry(..) | Node::SnapshotRoot(..) => SNAPSHOT_TTL,
            _ => NAMESPACE_TTL,
        }
    }

    /// The node of `ino`, or ENOENT.
    fn node(&self, ino: INodeNo) -> Result<(Node, u64), Errno> {
        self.inodes.get(ino.0).ok_or(Errno::ENOENT)
    }
}

/// Attributes from an entry's recorded metadata.
fn entry_attr(attr: &mut FileAttr, entry: &Entry) {
    let meta = &entry.meta;
    attr.perm = (meta.mode & 0o7777) as u16;
    attr.uid = meta.uid;
    attr.gid = meta.gid;
    attr.mtime = time(meta.mtime_sec, meta.mtime_nsec);
    attr.atime = attr.mtime;
    attr.ctime = time(meta.ctime_sec, meta.ctime_nsec);
    attr.nlink = 1;
    attr.kind = match &entry.kind {
        EntryKind::File(data) => {
            attr.size = data.size;
            attr.blocks = data.size.div_ceil(512);
            // The number of names is not recorded; more than one is what `cp -a` and `tar`
            // look at to keep hard links together.
            if data.hardlinked {
                attr.nlink = 2;
            }
            FileType::RegularFile
        }
        EntryKind::Dir(_) => {
            attr.nlink = 2;
            FileType::Directory
        }
        EntryKind::Symlink(target) => {
            attr.size = target.len() as u64;
            FileType::Symlink
        }
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDevice { rdev } => {
            attr.rdev = *rdev as u32;
            FileType::CharDevice
        }
        EntryKind::BlockDevice { rdev } => {
            attr.rdev = *rdev as u32;
            FileType::BlockDevice
        }
    };
}

impl Filesystem for VaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (node, _) = match self.node(parent) {
            Ok(found) => found,
            Err(e) => return reply.error(e),
        };
        let shown = self.snapshots.current(&self.repo);
        match nodes::child_named(&self.repo, &self.trees, &shown, &node, name.as_bytes()) {
            Ok(Some(child)) => {
                let ttl = Self::ttl(&child);
                let ino = self.inodes.child(parent.0, name.as_bytes(), || child);
                let (child, _) = self.inodes.get(ino).expect("just made");
                reply.entry(&ttl, &self.attr(ino, &child), fuser::Generation(0));
            }
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok((node, _)) => reply.attr(&Self::ttl(&node), &self.attr(ino.0, &node)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino) {
            Ok((Node::Entry(_, entry), _)) => match &entry.kind {
                EntryKind::Symlink(target) => reply.data(target),
                _ => reply.error(Errno::EINVAL),
            },
            Ok((Node::Link { up, target }, _)) => {
                let shown = self.snapshots.current(&self.repo);
                match nodes::link_text(&shown, up, &target) {
                    Some(text) => reply.data(text.as_bytes()),
                    None => reply.error(Errno::ENOENT),
                }
            }
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.node(ino) {
            // Content never changes: the kernel may keep its pages across opens.
            Ok((Node::Entry(..), _)) => {
                let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
                reply.opened(FileHandle(handle), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Ok(_) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let entry = match self.node(ino) {
            Ok((Node::Entry(_, entry), _)) => entry,
            Ok(_) => return reply.error(Errno::EISDIR),
            Err(e) => return reply.error(e),
        };
        let EntryKind::File(data) = &entry.kind else {
            return reply.error(Errno::EINVAL);
        };
        match self.reader.read(fh.0, data, offset, size.into()) {
            Ok(served) => reply.data(served.bytes()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.reader.forget(fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (node, parent) = match self.node(ino) {
            Ok(found) => found,
            Err(e) => return reply.error(e),
        };
        let shown = self.snapshots.current(&self.repo);
        let children = match nodes::children(&self.repo, &self.trees, &shown, &node) {
            Ok(Some(children)) => children,
            Ok(None) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(errno(&e)),
        };
        let dots = [
            (ino.0, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        let listed = children.into_iter().map(|(name, child)| {
            let kind = self.attr(0, &child).kind;
            let child_ino = self.inodes.child(ino.0, &name, || child);
            (child_ino, kind, name)
        });
        for (i, (child_ino, kind, name)) in dots
            .into_iter()
            .chain(listed)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(
                INodeNo(child_ino),
                i as u64 + 1,
                kind,
                OsStr::from_bytes(&name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn access(
        &self,
        _req: &Request,
        _ino: INodeNo,
        mask: fuser::AccessFlags,
        reply: fuser::ReplyEmpty,
    ) {
        if mask.contains(fuser::AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok();
        }
    }
}
