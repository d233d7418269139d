//! How each tool is driven through the steps: the command lines, and where a restore puts the
//! dump and the asset store. With the dump streamed ([`DumpAs::Stream`]), vault takes the dump
//! (stdin) and the store in one snapshot; restic and borg take two per day (a stdin snapshot and
//! a path snapshot), whose costs are summed. With the dump written to a file by a nightly job
//! ([`DumpAs::File`]), every tool takes the dump's directory and the store in one snapshot.
//! vault-enc is the same vault binary on an encrypted repository (`--encryption repokey`, the
//! default KDF cost, the password from `VAULT_PASSWORD`), driven exactly like vault.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vault,
    /// vault on a `--encryption repokey` repository.
    VaultEnc,
    Restic,
    Borg,
}

/// How the day's dump reaches the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpAs {
    /// Piped to the tool's stdin (vault `--stdin`, restic `--stdin`, borg `-`).
    Stream,
    /// A file in a directory that the tool backs up with the asset store.
    File,
}

/// One command line of a step.
pub struct Invocation {
    pub args: Vec<OsString>,
    /// Fed to the command's stdin through a pipe.
    pub stdin: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
}

fn inv(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Invocation {
    Invocation {
        args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
        stdin: None,
        cwd: None,
    }
}

pub struct Tool {
    pub kind: Kind,
    pub name: &'static str,
    pub program: PathBuf,
    /// Repository and cache live under here.
    pub dir: PathBuf,
}

/// RFC 3339 date of day `day` (day 0 = 2026-01-01), 02:00 UTC.
fn date(day: u64) -> (i64, u32, u32) {
    // Days since 1970-01-01 to civil date (Howard Hinnant's algorithm).
    let z = 20454 + day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Tool {
    pub fn new(kind: Kind, program: PathBuf, work: &Path) -> Tool {
        let name = match kind {
            Kind::Vault => "vault",
            Kind::VaultEnc => "vault-enc",
            Kind::Restic => "restic",
            Kind::Borg => "borg",
        };
        Tool {
            kind,
            name,
            program,
            dir: work.join(name),
        }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// Whether this is vault (encrypted or not).
    pub fn is_vault(&self) -> bool {
        matches!(self.kind, Kind::Vault | Kind::VaultEnc)
    }

    /// Environment of every command: the repository, a private cache, no prompts.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let repo = self.repo().into_os_string();
        let cache = self.cache().into_os_string();
        match self.kind {
            Kind::Vault => vec![("VAULT_REPO", repo), ("VAULT_CACHE_DIR", cache)],
            // A fixed password; the KDF cost stays vault's default (see `env_remove`).
            Kind::VaultEnc => vec![
                ("VAULT_REPO", repo),
                ("VAULT_CACHE_DIR", cache),
                ("VAULT_PASSWORD", "vault-bench".into()),
            ],
            // restic 0.14 has no --insecure-no-password (0.17 does): a fixed password.
            Kind::Restic => vec![
                ("RESTIC_REPOSITORY", repo),
                ("RESTIC_CACHE_DIR", cache),
                ("RESTIC_PASSWORD", "vault-bench".into()),
            ],
            Kind::Borg => vec![
                ("BORG_REPO", repo),
                ("BORG_BASE_DIR", cache),
                ("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes".into()),
                ("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes".into()),
            ],
        }
    }

    /// Variables of the caller's environment that must not reach the command: for vault, every
    /// other password source (a password file or command would win over `VAULT_PASSWORD`) and
    /// the KDF cost, so that vault-enc always measures the default parameters.
    pub fn env_remove(&self) -> &'static [&'static str] {
        if self.is_vault() {
            &[
                "VAULT_PASSWORD",
                "VAULT_PASSWORD_FILE",
                "VAULT_PASSWORD_COMMAND",
                "VAULT_NEW_PASSWORD",
                "VAULT_KDF_MEMORY",
                "VAULT_KDF_PASSES",
            ]
        } else {
            &[]
        }
    }

    pub fn version_args(&self) -> Vec<&'static str> {
        match self.kind {
            Kind::Restic => vec!["version"],
            _ => vec!["--version"],
        }
    }

    /// Exit codes that mean success (borg's 1 is "finished with warnings").
    pub fn ok(&self, code: i32) -> bool {
        code == 0 || (self.kind == Kind::Borg && code == 1)
    }

    pub fn init(&self) -> Vec<Invocation> {
        match self.kind {
            Kind::Vault => vec![inv(&[&"init", &"-q", &"--encryption", &"none"])],
            Kind::VaultEnc => vec![inv(&[&"init", &"-q", &"--encryption", &"repokey"])],
            Kind::Restic => vec![inv(&[&"init"])],
            Kind::Borg => vec![inv(&[&"init", &"-e", &"none"])],
        }
    }

    pub fn snapshot(
        &self,
        day: u64,
        dump: &Path,
        blobs: &Path,
        dump_as: DumpAs,
    ) -> Vec<Invocation> {
        if dump_as == DumpAs::File {
            return self.snapshot_paths(day, dump.parent().expect("dump directory"), blobs);
        }
        let (y, m, d) = date(day);
        let with_stdin = |mut i: Invocation| {
            i.stdin = Some(dump.to_path_buf());
            i
        };
        match self.kind {
            Kind::Vault | Kind::VaultEnc => {
                let time = format!("{y}-{m:02}-{d:02}T02:00:00Z");
                vec![with_stdin(inv(&[
                    &"snapshot",
                    &"-q",
                    &"--stdin",
                    &"--stdin-name",
                    &"db/app.sql",
                    &"--time",
                    &time,
                    &blobs,
                ]))]
            }
            Kind::Restic => {
                let time = format!("{y}-{m:02}-{d:02} 02:00:00");
                vec![
                    with_stdin(inv(&[
                        &"backup",
                        &"-q",
                        &"--stdin",
                        &"--stdin-filename",
                        &"app.sql",
                        &"--tag",
                        &"db",
                        &"--time",
                        &time,
                    ])),
                    inv(&[
                        &"backup", &"-q", &"--tag", &"blobs", &"--time", &time, &blobs,
                    ]),
                ]
            }
            Kind::Borg => {
                let time = format!("{y}-{m:02}-{d:02}T02:00:00");
                let (db, store) = (format!("::db-{day}"), format!("::blobs-{day}"));
                vec![
                    with_stdin(inv(&[
                        &"create",
                        &"--compression",
                        &"zstd,1",
                        &"--timestamp",
                        &time,
                        &"--stdin-name",
                        &"app.sql",
                        &db,
                        &"-",
                    ])),
                    inv(&[
                        &"create",
                        &"--compression",
                        &"zstd,1",
                        &"--timestamp",
                        &time,
                        &store,
                        &blobs,
                    ]),
                ]
            }
        }
    }

    /// One snapshot of the dump's directory and the asset store.
    fn snapshot_paths(&self, day: u64, db: &Path, blobs: &Path) -> Vec<Invocation> {
        let (y, m, d) = date(day);
        match self.kind {
            Kind::Vault | Kind::VaultEnc => {
                let time = format!("{y}-{m:02}-{d:02}T02:00:00Z");
                vec![inv(&[&"snapshot", &"-q", &"--time", &time, &db, &blobs])]
            }
            Kind::Restic => {
                let time = format!("{y}-{m:02}-{d:02} 02:00:00");
                vec![inv(&[&"backup", &"-q", &"--time", &time, &db, &blobs])]
            }
            Kind::Borg => {
                let time = format!("{y}-{m:02}-{d:02}T02:00:00");
                let name = format!("::all-{day}");
                vec![inv(&[
                    &"create",
                    &"--compression",
                    &"zstd,1",
                    &"--timestamp",
                    &time,
                    &name,
                    &db,
                    &blobs,
                ])]
            }
        }
    }

    pub fn restore(&self, day: u64, target: &Path, dump_as: DumpAs) -> Vec<Invocation> {
        if dump_as == DumpAs::File {
            return match self.kind {
                Kind::Vault | Kind::VaultEnc => {
                    vec![inv(&[&"restore", &"latest", &"--target", &target])]
                }
                Kind::Restic => vec![inv(&[&"restore", &"latest", &"--target", &target])],
                Kind::Borg => {
                    let mut i = inv(&[&"extract", &format!("::all-{day}")]);
                    i.cwd = Some(target.to_path_buf());
                    vec![i]
                }
            };
        }
        match self.kind {
            Kind::Vault | Kind::VaultEnc => {
                vec![inv(&[&"restore", &"latest", &"--target", &target])]
            }
            Kind::Restic => ["db", "blobs"]
                .iter()
                .map(|tag| inv(&[&"restore", &"latest", &"--tag", tag, &"--target", &target]))
                .collect(),
            Kind::Borg => ["db", "blobs"]
                .iter()
                .map(|name| {
                    let mut i = inv(&[&"extract", &format!("::{name}-{day}")]);
                    i.cwd = Some(target.to_path_buf());
                    i
                })
                .collect(),
        }
    }

    /// Where the restored dump and asset store are under `target`.
    pub fn restored(
        &self,
        target: &Path,
        dump: &Path,
        blobs: &Path,
        dump_as: DumpAs,
    ) -> (PathBuf, PathBuf) {
        let store = target.join(blobs.strip_prefix("/").unwrap_or(blobs));
        if dump_as == DumpAs::File {
            return (target.join(dump.strip_prefix("/").unwrap_or(dump)), store);
        }
        match self.kind {
            Kind::Vault | Kind::VaultEnc => (target.join("db/app.sql"), store),
            Kind::Restic | Kind::Borg => (target.join("app.sql"), store),
        }
    }

    pub fn verify(&self) -> Vec<Invocation> {
        match self.kind {
            Kind::Vault | Kind::VaultEnc => vec![inv(&[&"verify", &"-q", &"--read-data"])],
            Kind::Restic => vec![inv(&[&"check", &"--read-data"])],
            Kind::Borg => vec![inv(&[&"check", &"--verify-data"])],
        }
    }

    /// vault only: a command that opens the repository and does almost nothing else (for
    /// vault-enc, the key derivation every command pays once); empty for the peers.
    pub fn open_only(&self) -> Vec<Invocation> {
        if self.is_vault() {
            vec![inv(&[&"list", &"-q"])]
        } else {
            Vec::new()
        }
    }

    pub fn prune(&self, keep: u64, dump_as: DumpAs) -> Vec<Invocation> {
        let keep = keep.to_string();
        if dump_as == DumpAs::File && self.kind == Kind::Borg {
            return vec![
                inv(&[
                    &"prune",
                    &"--keep-last",
                    &keep,
                    &"--glob-archives",
                    &"all-*",
                ]),
                inv(&[&"compact"]),
            ];
        }
        match self.kind {
            Kind::Vault | Kind::VaultEnc => {
                vec![inv(&[&"forget", &"-q", &"--keep-last", &keep, &"--prune"])]
            }
            Kind::Restic => vec![inv(&[&"forget", &"-q", &"--keep-last", &keep, &"--prune"])],
            // borg prunes all archives as one group unless told: one prune per series.
            Kind::Borg => vec![
                inv(&[&"prune", &"--keep-last", &keep, &"--glob-archives", &"db-*"]),
                inv(&[
                    &"prune",
                    &"--keep-last",
                    &keep,
                    &"--glob-archives",
                    &"blobs-*",
                ]),
                inv(&[&"compact"]),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), (2026, 1, 1));
        assert_eq!(super::date(31), (2026, 2, 1));
        assert_eq!(super::date(365), (2027, 1, 1));
    }
}
