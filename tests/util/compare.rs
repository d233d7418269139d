//! Byte-for-byte and metadata-for-metadata tree comparison that reports precise differences.

use super::*;

// ------------------------------------------------------------------------------------------------
// Tree comparison
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
    BlockDev,
    Socket,
}

/// What the comparison looks at for one entry.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub nlink: u64,
    pub dev_ino: (u64, u64),
    pub rdev: u64,
    pub link_target: Option<Vec<u8>>,
}

/// Every entry under `root` (the root itself at the empty path), keyed by path bytes relative
/// to `root`. Does not follow symlinks.
pub fn scan(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((path, rel)) = stack.pop() {
        let m =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_char_device() {
            Kind::CharDev
        } else if ft.is_block_device() {
            Kind::BlockDev
        } else {
            Kind::Socket
        };
        let link_target = (kind == Kind::Symlink)
            .then(|| fs::read_link(&path).unwrap().into_os_string().into_vec());
        if kind == Kind::Dir {
            for e in fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
                let e = e.unwrap();
                let mut child_rel = rel.clone();
                if !child_rel.is_empty() {
                    child_rel.push(b'/');
                }
                child_rel.extend_from_slice(e.file_name().as_bytes());
                stack.push((e.path(), child_rel));
            }
        }
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                size: m.len(),
                nlink: m.nlink(),
                dev_ino: (m.dev(), m.ino()),
                rdev: m.rdev(),
                link_target,
            },
        );
    }
    out
}

pub fn show(rel: &[u8]) -> String {
    if rel.is_empty() {
        "<root>".into()
    } else {
        format!("{:?}", OsStr::from_bytes(rel))
    }
}

/// First offset at which two files differ, or `None` when they are equal (streamed).
pub fn first_difference(a: &Path, b: &Path) -> io::Result<Option<u64>> {
    let mut fa = io::BufReader::with_capacity(1 << 20, File::open(a)?);
    let mut fb = io::BufReader::with_capacity(1 << 20, File::open(b)?);
    let mut offset = 0u64;
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        let n = na.min(nb);
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What [`compare_trees`] checks.
#[derive(Clone, Copy)]
pub struct Compare {
    /// Compare the metadata of the two roots themselves (not just their contents).
    pub root_meta: bool,
    /// Compare uid/gid (only meaningful when the restore ran as root).
    pub owners: bool,
    /// Compare hard-link groups.
    pub hardlinks: bool,
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            root_meta: true,
            owners: is_root(),
            hardlinks: true,
        }
    }
}

/// Compares two trees byte-for-byte and metadata-for-metadata: entry set, type, mode (incl.
/// setuid/setgid/sticky), uid, gid, mtime sec+nsec (files, dirs, symlinks, FIFOs), size,
/// content, symlink target, and hard-link grouping. Returns one line per difference.
pub fn compare_trees(src: &Path, dst: &Path, how: Compare) -> Vec<String> {
    let a = scan(src);
    let b = scan(dst);
    let mut diffs = Vec::new();
    for (rel, na) in &a {
        let Some(nb) = b.get(rel) else {
            diffs.push(format!("{}: missing in restore ({:?})", show(rel), na.kind));
            continue;
        };
        let p = show(rel);
        if na.kind != nb.kind {
            diffs.push(format!("{p}: type {:?} restored as {:?}", na.kind, nb.kind));
            continue;
        }
        let meta = !rel.is_empty() || how.root_meta;
        if meta {
            if na.kind != Kind::Symlink && na.mode != nb.mode {
                diffs.push(format!("{p}: mode {:o} restored as {:o}", na.mode, nb.mode));
            }
            if how.owners && (na.uid, na.gid) != (nb.uid, nb.gid) {
                diffs.push(format!(
                    "{p}: owner {}:{} restored as {}:{}",
                    na.uid, na.gid, nb.uid, nb.gid
                ));
            }
            if na.mtime != nb.mtime {
                diffs.push(format!(
                    "{p}: mtime {}.{:09} restored as {}.{:09}",
                    na.mtime.0, na.mtime.1, nb.mtime.0, nb.mtime.1
                ));
            }
        }
        match na.kind {
            Kind::File => {
                if na.size != nb.size {
                    diffs.push(format!("{p}: size {} restored as {}", na.size, nb.size));
                } else {
                    let (pa, pb) = if rel.is_empty() {
                        (src.to_path_buf(), dst.to_path_buf())
                    } else {
                        (bytes_path(src, rel), bytes_path(dst, rel))
                    };
                    match first_difference(&pa, &pb) {
                        Ok(None) => {}
                        Ok(Some(off)) => {
                            diffs.push(format!("{p}: content differs from byte {off}"))
                        }
                        Err(e) => diffs.push(format!("{p}: cannot compare content: {e}")),
                    }
                }
            }
            Kind::Symlink if na.link_target != nb.link_target => diffs.push(format!(
                "{p}: symlink target {:?} restored as {:?}",
                OsStr::from_bytes(na.link_target.as_deref().unwrap()),
                OsStr::from_bytes(nb.link_target.as_deref().unwrap_or(b""))
            )),
            Kind::CharDev | Kind::BlockDev if na.rdev != nb.rdev => {
                diffs.push(format!("{p}: rdev {} restored as {}", na.rdev, nb.rdev))
            }
            _ => {}
        }
    }
    for (rel, nb) in &b {
        if !a.contains_key(rel) {
            diffs.push(format!(
                "{}: unexpected in restore ({:?})",
                show(rel),
                nb.kind
            ));
        }
    }
    if how.hardlinks {
        let ga = link_groups(&a);
        let gb = link_groups(&b);
        for g in ga.difference(&gb) {
            diffs.push(format!(
                "hard-link group {} not restored as one inode",
                show_group(g)
            ));
        }
        for g in gb.difference(&ga) {
            diffs.push(format!(
                "restore has hard-link group {} not in the source",
                show_group(g)
            ));
        }
    }
    diffs
}

fn show_group(g: &BTreeSet<Vec<u8>>) -> String {
    format!(
        "[{}]",
        g.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ")
    )
}

/// Sets of paths that share an inode (regular files with more than one name in the tree).
pub fn link_groups(tree: &BTreeMap<Vec<u8>, Node>) -> BTreeSet<BTreeSet<Vec<u8>>> {
    let mut by_inode: HashMap<(u64, u64), BTreeSet<Vec<u8>>> = HashMap::new();
    for (rel, n) in tree {
        if n.kind == Kind::File && n.nlink > 1 {
            by_inode.entry(n.dev_ino).or_default().insert(rel.clone());
        }
    }
    by_inode.into_values().filter(|g| g.len() > 1).collect()
}

/// Panics with every difference between the trees.
#[track_caller]
pub fn assert_same_tree(src: &Path, dst: &Path, how: Compare) {
    let diffs = compare_trees(src, dst, how);
    if !diffs.is_empty() {
        let n = diffs.len();
        let shown: Vec<&String> = diffs.iter().take(60).collect();
        panic!(
            "{} differs from {} in {n} way(s):\n  {}{}",
            dst.display(),
            src.display(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            if n > 60 { "\n  ..." } else { "" }
        );
    }
}

/// A digest of everything under `root` (paths, types, modes, sizes, mtimes, contents, link
/// targets): to prove that a directory was not touched.
pub fn fingerprint(root: &Path) -> Vec<String> {
    if fs::symlink_metadata(root).is_err() {
        return vec!["<absent>".into()];
    }
    scan(root)
        .into_iter()
        .map(|(rel, n)| {
            let content = if n.kind == Kind::File {
                let p = if rel.is_empty() {
                    root.to_path_buf()
                } else {
                    bytes_path(root, &rel)
                };
                file_digest(&p).0.to_hex().to_string()
            } else {
                String::new()
            };
            format!(
                "{} {:?} {:o} {} {:?} {:?} {}",
                show(&rel),
                n.kind,
                n.mode,
                n.size,
                n.mtime,
                n.link_target.as_deref().map(OsStr::from_bytes),
                content
            )
        })
        .collect()
}
