//! The mount's name space and inode table, independent of FUSE.
//!
//! ```text
//! /snapshots/<id>/…                     every snapshot shown, by full id: its tree
//! /latest                               symlink to snapshots/<id> of the newest snapshot
//! /by-label/<key>/<value>/latest        symlink to the newest snapshot with that label
//! /by-label/<key>/<value>/<id>          symlink to each snapshot with that label
//! ```
//!
//! Input: the snapshots shown (re-listed at most every [`RELIST`] when a directory of the
//! name space is looked at, so snapshots taken while mounted appear) and their trees, read
//! through the repository (trees are checked against their ids). Output: [`Node`]s under inode
//! numbers that stay the same for the life of the mount.
//!
//! Invariants: an inode number names one node for the life of the mount; names inside a
//! snapshot come from its trees, which decoders already checked to be single path components;
//! the files of one snapshot that were hard links of each other share one inode number.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::{SnapshotId, TreeId};
use crate::repo::{Repository, SnapshotFilter, SnapshotInfo};

/// How long a listing of the snapshots is used before the repository is listed again.
pub const RELIST: Duration = Duration::from_secs(1);

/// The root directory's inode number (FUSE's).
pub const ROOT: u64 = 1;

/// One node of the mount.
#[derive(Debug, Clone)]
pub enum Node {
    Root,
    Snapshots,
    ByLabel,
    LabelKey(String),
    LabelValue(String, String),
    /// A symlink to a snapshot, with the path from its own directory to `/`.
    Link {
        up: &'static str,
        target: LinkTarget,
    },
    /// `/snapshots/<id>`: the root tree of a snapshot.
    SnapshotRoot(SnapshotId, TreeId),
    /// An entry of a snapshot's tree.
    Entry(SnapshotId, Arc<Entry>),
}

/// Which snapshot a name-space symlink points at (resolved when it is read).
#[derive(Debug, Clone)]
pub enum LinkTarget {
    Latest,
    LabelLatest(String, String),
    Snapshot(SnapshotId),
}

/// What the mount shows and how it finds it.
pub struct Snapshots {
    filter: SnapshotFilter,
    /// Only these (all when empty).
    only: Vec<SnapshotId>,
    listed: Mutex<(Instant, Arc<Vec<SnapshotInfo>>)>,
}

impl Snapshots {
    pub fn new(repo: &Repository, filter: SnapshotFilter, only: Vec<SnapshotId>) -> Result<Self> {
        let shown = Self::list(repo, &filter, &only)?;
        Ok(Snapshots {
            filter,
            only,
            listed: Mutex::new((Instant::now(), Arc::new(shown))),
        })
    }

    fn list(
        repo: &Repository,
        filter: &SnapshotFilter,
        only: &[SnapshotId],
    ) -> Result<Vec<SnapshotInfo>> {
        let (mut all, _unreadable) = repo.snapshots()?;
        all.retain(|s| filter.matches(&s.manifest) && (only.is_empty() || only.contains(&s.id)));
        Ok(all)
    }

    /// The snapshots shown, oldest first; listed again when the last listing is older than
    /// [`RELIST`]. When new ones appeared, the index is brought up to date first so their
    /// content can be read.
    pub fn current(&self, repo: &Repository) -> Arc<Vec<SnapshotInfo>> {
        let mut listed = self.listed.lock().expect("listing lock");
        if listed.0.elapsed() >= RELIST {
            if let Ok(shown) = Self::list(repo, &self.filter, &self.only) {
                let known = |s: &SnapshotInfo| listed.1.iter().any(|k| k.id == s.id);
                if !shown.iter().all(known) {
                    // A failed refresh leaves the new snapshots unreadable (EIO), nothing more.
                    let _ = repo.refresh();
                }
                listed.1 = Arc::new(shown);
            }
            listed.0 = Instant::now();
        }
        listed.1.clone()
    }

    pub fn count(&self) -> usize {
        self.listed.lock().expect("listing lock").1.len()
    }
}

/// The newest of `shown` with label `key` = `value`.
pub fn newest_with_label<'a>(
    shown: &'a [SnapshotInfo],
    key: &str,
    value: &str,
) -> Option<&'a SnapshotInfo> {
    shown
        .iter()
        .rev()
        .find(|s| s.manifest.labels.get(key).map(String::as_str) == Some(value))
}

/// Every label key and its values among `shown`.
pub fn labels(shown: &[SnapshotInfo]) -> BTreeMap<&str, Vec<&str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in shown {
        for (k, v) in &s.manifest.labels {
            let values = out.entry(k).or_default();
            if !values.contains(&v.as_str()) {
                values.push(v);
            }
        }
    }
    for values in out.values_mut() {
        values.sort_unstable();
    }
    out
}

/// The target text of a name-space symlink, or `None` when it names no snapshot now.
pub fn link_text(shown: &[SnapshotInfo], up: &str, target: &LinkTarget) -> Option<String> {
    let id = match target {
        LinkTarget::Latest => shown.last()?.id,
        LinkTarget::LabelLatest(k, v) => newest_with_label(shown, k, v)?.id,
        LinkTarget::Snapshot(id) => *id,
    };
    Some(format!("{up}snapshots/{}", id.to_hex()))
}

/// Inode numbers: each node once, found again by its parent and name.
#[derive(Default)]
struct Table {
    /// Inode `n` is `nodes[n - 1]`, with its parent's inode.
    nodes: Vec<(Node, u64)>,
    by_name: HashMap<(u64, Vec<u8>), u64>,
    /// (snapshot, device, inode) of hard-linked files -> their one inode number.
    links: HashMap<(SnapshotId, u64, u64), u64>,
}

/// The inode table, shared by the FUSE threads.
pub struct Inodes {
    table: RwLock<Table>,
}

impl Default for Inodes {
    fn default() -> Self {
        let mut table = Table::default();
        table.nodes.push((Node::Root, ROOT));
        Inodes {
            table: RwLock::new(table),
        }
    }
}

impl Inodes {
    pub fn get(&self, ino: u64) -> Option<(Node, u64)> {
        let table = self.table.read().expect("inode lock");
        let index = usize::try_from(ino).ok()?.checked_sub(1)?;
        table.nodes.get(index).cloned()
    }

    /// The inode number of `parent`'s child `name`, made by `make` the first time.
    pub fn child(&self, parent: u64, name: &[u8], make: impl FnOnce() -> Node) -> u64 {
        let key = (parent, name.to_vec());
        if let Some(&ino) = self.table.read().expect("inode lock").by_name.get(&key) {
            return ino;
        }
        let mut table = self.table.write().expect("inode lock");
        if let Some(&ino) = table.by_name.get(&key) {
            return ino;
        }
        let node = make();
        let link = match &node {
            Node::Entry(snapshot, entry) => match &entry.kind {
                EntryKind::File(data) if data.hardlinked => {
                    Some((*snapshot, entry.meta.dev, entry.meta.inode))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(&ino) = link.and_then(|l| table.links.get(&l)) {
            table.by_name.insert(key, ino);
            return ino;
        }
        table.nodes.push((node, parent));
        let ino = table.nodes.len() as u64;
        table.by_name.insert(key, ino);
        if let Some(link) = link {
            table.links.insert(link, ino);
        }
        ino
    }
}

/// A directory's entry: its name and node.
pub type Child = (Vec<u8>, Node);

/// The entries of a directory node, as (name, node): the name space's own directories from
/// `shown`, a snapshot's from its tree. `None` for a node that is not a directory.
pub fn children(
    repo: &Repository,
    trees: &Trees,
    shown: &[SnapshotInfo],
    node: &Node,
) -> Result<Option<Vec<Child>>> {
    let link = |up: &'static str, target: LinkTarget| Node::Link { up, target };
    let out = match node {
        Node::Root => vec![
            (b"snapshots".to_vec(), Node::Snapshots),
            (b"by-label".to_vec(), Node::ByLabel),
            (b"latest".to_vec(), link("", LinkTarget::Latest)),
        ],
        Node::Snapshots => shown
            .iter()
            .filter_map(|s| {
                let root = s.manifest.root()?;
                Some((s.id.to_hex().into_bytes(), Node::SnapshotRoot(s.id, root)))
            })
            .collect(),
        Node::ByLabel => labels(shown)
            .into_keys()
            .map(|k| (k.as_bytes().to_vec(), Node::LabelKey(k.into())))
            .collect(),
        Node::LabelKey(key) => labels(shown)
            .remove(key.as_str())
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                (
                    v.as_bytes().to_vec(),
                    Node::LabelValue(key.clone(), v.into()),
                )
            })
            .collect(),
        Node::LabelValue(key, value) => {
            let up = "../../../";
            let mut out = vec![(
                b"latest".to_vec(),
                link(up, LinkTarget::LabelLatest(key.clone(), value.clone())),
            )];
            for s in shown {
                if s.manifest.labels.get(key) == Some(value) {
                    out.push((
                        s.id.to_hex().into_bytes(),
                        link(up, LinkTarget::Snapshot(s.id)),
                    ));
                }
            }
            out
        }
        Node::SnapshotRoot(snapshot, tree) => tree_children(repo, trees, *snapshot, *tree)?,
        Node::Entry(snapshot, entry) => match entry.kind {
            EntryKind::Dir(tree) => tree_children(repo, trees, *snapshot, tree)?,
            _ => return Ok(None),
        },
        Node::Link { .. } => return Ok(None),
    };
    Ok(Some(out))
}

/// The child `name` of a directory node: by binary search in a snapshot's tree, by name among
/// the name space's own entries. `None` when there is no such child.
pub fn child_named(
    repo: &Repository,
    trees: &Trees,
    shown: &[SnapshotInfo],
    node: &Node,
    name: &[u8],
) -> Result<Option<Node>> {
    let tree = match node {
        Node::SnapshotRoot(snapshot, tree) => Some((*snapshot, *tree)),
        Node::Entry(snapshot, entry) => match entry.kind {
            EntryKind::Dir(tree) => Some((*snapshot, tree)),
            _ => None,
        },
        _ => None,
    };
    if let Some((snapshot, tree)) = tree {
        let tree = trees.read(repo, tree)?;
        return Ok(tree
            .find(name)
            .map(|e| Node::Entry(snapshot, Arc::new(e.clone()))));
    }
    Ok(children(repo, trees, shown, node)?
        .unwrap_or_default()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, node)| node))
}

fn tree_children(
    repo: &Repository,
    trees: &Trees,
    snapshot: SnapshotId,
    tree: TreeId,
) -> Result<Vec<Child>> {
    let tree = trees.read(repo, tree)?;
    Ok(tree
        .entries
        .iter()
        .map(|e| (e.name.clone(), Node::Entry(snapshot, Arc::new(e.clone()))))
        .collect())
}

/// Trees decoded lately (a directory is listed, then each of its entries looked up).
pub struct Trees {
    recent: Mutex<Recent>,
}

/// Trees read lately: in the order read, and by id.
type Recent = (VecDeque<TreeId>, HashMap<TreeId, Arc<Tree>>);

/// Trees [`Trees`] keeps.
const TREES_KEPT: usize = 64;

impl Default for Trees {
    fn default() -> Self {
        Trees {
            recent: Mutex::new((VecDeque::new(), HashMap::new())),
        }
    }
}

impl Trees {
    /// The tree `id`, read (and checked) unless it was read lately.
    pub fn read(&self, repo: &Repository, id: TreeId) -> Result<Arc<Tree>> {
        if let Some(tree) = self.recent.lock().expect("tree lock").1.get(&id) {
            return Ok(tree.clone());
        }
        let reader = repo.index().reader()?;
        let tree = Arc::new(repo.read_tree(&reader, id)?);
        let mut recent = self.recent.lock().expect("tree lock");
        if recent.1.insert(id, tree.clone()).is_none() {
            recent.0.push_back(id);
        }
        while recent.0.len() > TREES_KEPT {
            if let Some(old) = recent.0.pop_front() {
                recent.1.remove(&old);
            }
        }
        Ok(tree)
    }
}
