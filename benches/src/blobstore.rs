//! A deterministic asset store, the file half of an application backup: files of 4 KiB to
//! 8 MiB (log-uniform), 60% of them incompressible (images, PDFs, archives) and 40% text, in a
//! two-level fan-out of directories. Each day about 1% new files appear and 0.2% are deleted;
//! existing files are never rewritten, as in a CMS upload directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::data;
use crate::dumpgen::Rng;

const MIN_SIZE: f64 = 4096.0;
const MAX_SIZE: f64 = 8.0 * 1048576.0;

/// One file of the store; its bytes depend only on `number` and `size`.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub number: u64,
    pub size: u64,
    pub compressible: bool,
}

impl Asset {
    fn draw(number: u64, rng: &mut Rng) -> Asset {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let size = (MIN_SIZE.ln() + u * (MAX_SIZE.ln() - MIN_SIZE.ln())).exp() as u64;
        Asset {
            number,
            size,
            compressible: rng.below(10) < 4,
        }
    }

    /// Path relative to the store's root.
    pub fn relative_path(&self) -> PathBuf {
        let h = self.number.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48;
        let ext = if self.compressible { "json" } else { "jpg" };
        PathBuf::from(format!("{:02x}", h >> 8))
            .join(format!("{:02x}", h & 0xff))
            .join(format!("asset-{}.{ext}", self.number))
    }

    pub fn content(&self) -> Vec<u8> {
        let mut rng = Rng::new(0xA55E7 ^ self.number);
        if self.compressible {
            let mut out = Vec::with_capacity(self.size as usize);
            data::text_into(&mut out, self.size as usize, &mut rng);
            out
        } else {
            data::random(self.size as usize, rng.next())
        }
    }
}

/// The store on disk and the list of what it holds.
pub struct BlobStore {
    root: PathBuf,
    assets: BTreeMap<u64, Asset>,
    next: u64,
}

/// What one day changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct DayChange {
    pub added: u64,
    pub added_bytes: u64,
    pub deleted: u64,
}

impl BlobStore {
    /// Writes a store of about `bytes` bytes under `root` (which must not exist yet).
    pub fn create(root: &Path, bytes: u64) -> io::Result<BlobStore> {
        let mut rng = Rng::new(0xB10B);
        let mut store = BlobStore {
            root: root.to_path_buf(),
            assets: BTreeMap::new(),
            next: 0,
        };
        let mut total = 0;
        let mut planned = Vec::new();
        while total < bytes {
            let asset = Asset::draw(store.next, &mut rng);
            store.next += 1;
            total += asset.size;
            planned.push(asset);
        }
        fs::create_dir_all(root)?;
        write_all(root, &planned)?;
        store
            .assets
            .extend(planned.into_iter().map(|a| (a.number, a)));
        Ok(store)
    }

    /// Day `day` (1, 2, ...): about 1% new files (at least one) and 0.2% deleted (at least one).
    pub fn advance(&mut self, day: u64) -> io::Result<DayChange> {
        let mut rng = Rng::new(0xDA7 ^ (day << 20));
        let count = self.assets.len() as u64;
        let mut change = DayChange::default();
        let deletions = (count / 500).max(1).min(count);
        for _ in 0..deletions {
            let keys: Vec<u64> = self.assets.keys().copied().collect();
            let victim = keys[rng.below(keys.len() as u64) as usize];
            let asset = self.assets.remove(&victim).expect("listed");
            fs::remove_file(self.root.join(asset.relative_path()))?;
            change.deleted += 1;
        }
        let mut new = Vec::new();
        for _ in 0..(count / 100).max(1) {
            let asset = Asset::draw(self.next, &mut rng);
            self.next += 1;
            change.added += 1;
            change.added_bytes += asset.size;
            new.push(asset);
        }
        write_all(&self.root, &new)?;
        self.assets.extend(new.into_iter().map(|a| (a.number, a)));
        Ok(change)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn files(&self) -> u64 {
        self.assets.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.assets.values().map(|a| a.size).sum()
    }
}

fn write_all(root: &Path, assets: &[Asset]) -> io::Result<()> {
    use rayon::prelude::*;
    assets.par_iter().try_for_each(|asset| {
        let path = root.join(asset.relative_path());
        fs::create_dir_all(path.parent().expect("has a parent"))?;
        fs::write(&path, asset.content())
    })
}
