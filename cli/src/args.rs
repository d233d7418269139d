//! Command-line arguments (clap derive). Parsing only: the value parsers are in `parse.rs`,
//! conversion to engine options in `convert.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "vault", version, about = "Content-addressed, deduplicating backups", long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 error (nothing committed), 2 usage error, 3 completed with problems, 4 another vault holds a lock (a prune is running), 141 the reader of standard output closed the pipe (`vault list | head -1`)."
)]
pub struct Cli {
    /// Repository location: a directory, s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX] (credentials
    /// from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, region from AWS_REGION) or
    /// sftp:[USER@]HOST[:PORT]/PATH (through ssh: keys from ssh's defaults, its agent or
    /// VAULT_SFTP_KEY) [default: ~/.local/share/vault/repo, created on first snapshot]
    #[arg(long, global = true, env = "VAULT_REPO", value_name = "LOCATION", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub repo: Option<String>,

    /// Where the local index cache lives [default: ~/.cache/vault]
    #[arg(long, global = true, env = "VAULT_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but errors (and the ids a command creates, and the notice that the
    /// default repository is being created, unencrypted)
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Read the password of an encrypted repository from this file (one trailing newline is
    /// ignored). Without it: --password-command, then $VAULT_PASSWORD, then a prompt on the terminal
    #[arg(long, global = true, env = "VAULT_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Run this shell command and use its standard output as the password (e.g. a secrets manager)
    #[arg(
        long,
        global = true,
        env = "VAULT_PASSWORD_COMMAND",
        value_name = "CMD"
    )]
    pub password_command: Option<String>,

    /// Requests in flight at once to a remote repository (uploads, range reads; SFTP uses at
    /// most 2 ssh sessions)
    #[arg(long, global = true, env = "VAULT_CONNECTIONS", value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,

    /// Retries of a transient remote failure (timeout, server error, reset connection), with
    /// exponential backoff, before the command fails
    #[arg(long, global = true, env = "VAULT_RETRIES", value_name = "N", default_value_t = 6,
          value_parser = clap::value_parser!(u16).range(0..=100))]
    pub retries: u16,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository
    Init(InitArgs),
    /// Back up paths, standard input or command output into a new snapshot
    Snapshot(SnapshotArgs),
    /// List snapshots
    List(ListArgs),
    /// Restore a snapshot (or one path of it) into a directory
    Restore(RestoreArgs),
    /// Write one file of a snapshot to standard output
    Dump(DumpArgs),
    /// Write a snapshot (or one path of it) to standard output as a tar archive
    Export(ExportArgs),
    /// Check that snapshots can be restored; report what is damaged and what it affects
    Verify(VerifyArgs),
    /// Forget snapshots by retention policy or id (soft delete until `vault prune`)
    Forget(ForgetArgs),
    /// Delete what no snapshot needs: forgotten snapshots and unused data (repacking partly used packs)
    Prune(PruneArgs),
    /// Protect snapshots from every retention policy and from prune
    Protect(SnapshotIdsArgs),
    /// Remove the protection of snapshots
    Unprotect(SnapshotIdsArgs),
    /// Bring back forgotten snapshots (possible until a prune deletes them)
    Undelete(SnapshotIdsArgs),
    /// Add or remove labels of a snapshot (writes a new manifest that replaces it; prints its id)
    Label(LabelArgs),
    /// Add or remove tags of a snapshot (writes a new manifest that replaces it; prints its id)
    Tag(TagArgs),
    /// Remove the prune lock and snapshot registrations left by vault processes that are gone
    Unlock(UnlockArgs),
    /// Manage the local index cache
    #[command(subcommand)]
    Index(IndexCommand),
    /// Manage the passwords (key files) of an encrypted repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Copy snapshots into another repository (e.g. off-site), storing only what it lacks
    Copy(CopyArgs),
    /// List the entries of a directory of a snapshot (reads only its trees, never file content)
    Ls(LsArgs),
    /// Find entries by name across snapshots: which snapshots hold them, in which version
    Find(FindArgs),
    /// Show what changed between two snapshots (added, removed, modified, metadata, type)
    Diff(DiffArgs),
    /// Show sizes, deduplication, growth, and the bytes each snapshot alone holds
    Stats(StatsArgs),
    /// Show snapshots as a read-only filesystem (FUSE) until unmounted
    Mount(MountArgs),
    /// Check the operations config file (vault.toml: repositories and applications)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run applications' backup jobs from the config: dumps and paths, forget, prune, copy, verify
    Run(RunArgs),
    /// Restore an application's snapshot under a new name: its paths into --target, each database dump into a new database
    RestoreApp(RestoreAppArgs),
    /// Test restores: restore applications' newest snapshots into scratch space, run their checks, clean up
    RestoreTest(RestoreTestArgs),
    /// Show each application's last run, snapshot age and verify cycle, from recorded state
    Status(StatusArgs),
    /// Serve a read-only web dashboard and JSON API: applications, snapshots, verify, downloads
    Serve(ServeArgs),
    /// Install, remove or show the applications' schedules as systemd timers or crontab lines
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Run the applications' schedules in the foreground (containers) until SIGINT or SIGTERM
    Daemon(DaemonArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the key files; the one this password opens is marked
    List,
    /// Add a password: a new key file wrapping the same repository keys
    Add(NewKeyArgs),
    /// Remove a key file (not the last one, nor the one this password opens)
    Remove {
        /// Key id or unique prefix (see `vault key list`)
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change the password this command is unlocked with (adds the new key, then removes the old)
    Passwd(NewKeyArgs),
}

#[derive(Debug, Args)]
pub struct NewKeyArgs {
    /// Read the new password from this file [default: $VAULT_NEW_PASSWORD, else ask twice on the terminal]
    #[arg(long, value_name = "PATH")]
    pub new_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

/// Cost of deriving the key from a password (Argon2id).
#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Argon2id memory (e.g. 64MiB); more makes guessing passwords dearer
    #[arg(long, value_name = "SIZE", env = "VAULT_KDF_MEMORY", default_value = "64MiB", value_parser = crate::parse::parse_size)]
    pub kdf_memory: u32,
    /// Argon2id passes over that memory
    #[arg(long, value_name = "N", env = "VAULT_KDF_PASSES", default_value_t = 3)]
    pub kdf_passes: u32,
}

#[derive(Debug, Args)]
pub struct SnapshotIdsArgs {
    /// Snapshot ids or unique id prefixes
    #[arg(value_name = "SNAPSHOT", required = true)]
    pub snapshots: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["add", "remove"]))]
pub struct LabelArgs {
    /// Snapshot id, unique id prefix or `latest` (with --host, --tag, --label)
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// Set a label (repeatable; replaces the value of an existing key), e.g. --add app=website
    #[arg(long, value_name = "KEY=VALUE", value_parser = crate::parse::parse_label)]
    pub add: Vec<(String, String)>,
    /// Remove the label with this key (repeatable)
    #[arg(long, value_name = "KEY", value_parser = crate::parse::parse_label_key)]
    pub remove: Vec<String>,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["add", "remove"]))]
pub struct TagArgs {
    /// Snapshot id, unique id prefix or `latest` (with --host, --tag, --label)
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// Add a tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub add: Vec<String>,
    /// Remove a tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub remove: Vec<String>,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Also remove registrations and locks of processes on other hosts, or that seem alive
    /// (only when no vault process uses the repository anywhere)
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Debug, Args)]
pub struct PruneOptionsArgs {
    /// Repack a pack when more than this share of it is unused (e.g. 10%, 0% repacks every pack with unused data)
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = crate::parse::parse_percent)]
    pub max_unused: f64,
    /// Do not wait for running snapshots before deleting packs; the next prune finishes instead
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Report what would be deleted and repacked, change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub options: PruneOptionsArgs,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Forget these snapshots (ids or prefixes) instead of applying a policy
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within DURATION before the group's newest (e.g. 30d, 2w, 6m, 1y)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Apply the policy per group of: host, paths, tags, label:KEY (comma-separated; "" = one group)
    #[arg(long, value_name = "KEYS", default_value = "host,paths")]
    pub group_by: String,
    /// Compute hour, day, week, month and year buckets in UTC instead of local time
    #[arg(long)]
    pub utc: bool,
    /// Show what would be kept and forgotten, and why; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Run `vault prune` afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_options: PruneOptionsArgs,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also read every pack and check every blob's digest
    #[arg(long)]
    pub read_data: bool,
    /// Read only part of the packs: N/M (the N-th of M slices; M runs cover all) or P% (random)
    #[arg(long, value_name = "N/M|P%", value_parser = crate::parse::parse_subset)]
    pub read_data_subset: Option<vault_engine::verify::ReadData>,
    /// Read the packs verified longest ago first, until SIZE (e.g. 20GiB) is read or DURATION
    /// (e.g. 30m) has passed; records each clean pack's verification time
    #[arg(long, value_name = "SIZE|DURATION", value_parser = crate::parse::parse_budget, conflicts_with = "read_data_subset")]
    pub read_data_budget: Option<vault_engine::verify::ReadData>,
    /// Check only what one snapshot reaches (id, prefix or `latest`; with --tag, --label or
    /// --host, `latest` is the newest snapshot they select)
    #[arg(long, value_name = "SNAPSHOT")]
    pub snapshot: Option<String>,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Recreate the index cache from the pack trailers alone
    Rebuild,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Minimum chunk size for all sources (e.g. 16KiB) [default: per source kind, see --help]
    #[arg(long, value_name = "SIZE", value_parser = crate::parse::parse_size)]
    pub chunk_min: Option<u32>,
    /// Average chunk size for all sources [default: 64KiB for streams, 1MiB for files]
    #[arg(long, value_name = "SIZE", value_parser = crate::parse::parse_size)]
    pub chunk_avg: Option<u32>,
    /// Maximum chunk size for all sources
    #[arg(long, value_name = "SIZE", value_parser = crate::parse::parse_size)]
    pub chunk_max: Option<u32>,
    /// Compression of stored blobs: zstd:LEVEL (-7..22) or none
    #[arg(long, value_name = "zstd:LEVEL|none", default_value = "zstd:1", value_parser = crate::parse::parse_compression)]
    pub compression: vault_engine::Compression,
    /// repokey: encrypt and authenticate everything with keys wrapped by a password (the
    /// default: backups hold personal data and often leave the machine); none: store plainly
    #[arg(long, value_enum, default_value = "repokey")]
    pub encryption: EncryptionArg,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncryptionArg {
    Repokey,
    None,
}

#[derive(Debug, Args)]
pub struct SnapshotFilterArgs {
    /// Only snapshots with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots with this label (repeatable: all must match)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = crate::parse::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Only snapshots of this host
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Files and directories to back up (recorded by their absolute paths). A local repository
    /// or the cache directory inside them is left out: vault never backs up its own data
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Back up standard input as one file (see --stdin-name)
    #[arg(long)]
    pub stdin: bool,
    /// Name of the --stdin file inside the snapshot, e.g. db/website.sql (stored at /db/website.sql)
    #[arg(long, value_name = "NAME", default_value = "stdin", requires = "stdin")]
    pub stdin_name: String,
    /// Back up the stdout of `sh -c CMD` as file NAME (repeatable; run in order, before PATHs).
    /// A non-zero exit status or a signal fails the snapshot: nothing is committed.
    #[arg(long = "command", value_name = "NAME=CMD", value_parser = crate::parse::parse_command)]
    pub commands: Vec<(String, String)>,
    /// Accept an empty --stdin or --command stream (0 bytes). Without it an empty stream fails
    /// the snapshot: a failed `pg_dump | vault snapshot --stdin` sends nothing
    #[arg(long)]
    pub allow_empty: bool,
    /// Kill a --command that runs longer than this (e.g. 30m, 2h, 90s) and fail the snapshot
    #[arg(long, value_name = "DURATION", value_parser = crate::parse::parse_duration, requires = "commands")]
    pub command_timeout: Option<std::time::Duration>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Label the snapshot (repeatable), e.g. --label app=website
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = crate::parse::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Host name to record [default: this machine's]
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Skip paths matching GLOB (with a '/': the whole absolute path; without: the name)
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Read every file, even those unchanged since the parent snapshot
    #[arg(long)]
    pub force_read: bool,
    /// Record this time instead of now (RFC 3339, e.g. 2026-01-31T23:00:00Z)
    #[arg(long, value_name = "RFC3339", value_parser = crate::parse::parse_time)]
    pub time: Option<jiff::Timestamp>,
    /// Protect the snapshot from every retention policy (manual and pre-upgrade backups)
    #[arg(long)]
    pub protect: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The repository to copy into (a path, s3:... or sftp:...; it must exist: `vault init`)
    #[arg(long, value_name = "LOCATION")]
    pub to: String,
    /// Snapshots to copy (ids, unique prefixes or `latest`) [default: every snapshot the
    /// filters select]; snapshots the destination has already are skipped
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Password file of the destination (if encrypted); else --to-password-command,
    /// $VAULT_TO_PASSWORD, a prompt
    #[arg(long, env = "VAULT_TO_PASSWORD_FILE", value_name = "PATH")]
    pub to_password_file: Option<PathBuf>,
    /// Command printing the destination's password
    #[arg(long, env = "VAULT_TO_PASSWORD_COMMAND", value_name = "CMD")]
    pub to_password_command: Option<String>,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// List forgotten snapshots (restorable with `vault undelete` until a prune) instead
    #[arg(long)]
    pub forgotten: bool,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix or `latest`, optionally with :SUBPATH (e.g. latest:/srv/blobs); several restore each into its own target (see --target)
    #[arg(
        value_name = "SNAPSHOT[:SUBPATH]",
        required_unless_present = "latest_per"
    )]
    pub snapshots: Vec<String>,
    /// Directory to restore into (created if missing; must be empty unless --overwrite or --delta). May hold {id}, {host} and {label:KEY}, filled in per snapshot, e.g. '/srv/dev/{label:app}'
    #[arg(long, value_name = "DIR", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub target: String,
    /// Restore the latest snapshot of every group (host, paths, tags, label:KEY, comma-separated) among those the filters select, each into its --target template
    #[arg(long, value_name = "GROUP", conflicts_with = "snapshots")]
    pub latest_per: Option<String>,
    /// Restore only paths matching GLOB, e.g. '/srv/cms/**/*.jpg' (repeatable)
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Restore into a non-empty target, replacing what is in the way
    #[arg(long)]
    pub overwrite: bool,
    /// Restore into an existing tree, writing only what differs: files with the snapshot's size and mtime are left alone, others patched chunk by chunk; metadata is made to match. A file with another hard link, or whose owner or setuid/setgid/sticky bits would change, is rewritten instead
    #[arg(long)]
    pub delta: bool,
    /// With --delta: compare the content of files whose size and mtime match too (they are hashed, not trusted)
    #[arg(long, requires = "delta")]
    pub verify_existing: bool,
    /// With --delta: remove files and directories the snapshot does not have
    #[arg(long, requires = "delta")]
    pub delete: bool,
    /// Write nothing; report what the restore would do
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: read and check every chunk the restore would write; exit 3 on any problem (a scheduled restore test)
    #[arg(long, requires = "dry_run")]
    pub verify: bool,
    /// When the repository is damaged, restore everything that can be restored: a file (or directory) whose data is damaged is left out, not written partly, and listed with its path; exit 3
    #[arg(long)]
    pub keep_going: bool,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// `vault export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormatArg {
    /// POSIX (pax) tar, readable by GNU tar, bsdtar and Python's tarfile
    Tar,
    /// The same, compressed with zstd (`tar --zstd -xf`, or `zstd -d` then `tar -xf`)
    #[value(name = "tar.zst")]
    TarZst,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Extract with `tar -xpf FILE.tar -C DIR` (as root add --same-owner). Sparse files use GNU tar's sparse format; hard links, symlinks, fifos, devices, modes, owners and nanosecond mtimes are kept."
)]
pub struct ExportArgs {
    /// Snapshot id, unique id prefix or `latest`, optionally with :SUBPATH
    #[arg(value_name = "SNAPSHOT[:SUBPATH]")]
    pub snapshot: String,
    /// Archive format [default: tar, or tar.zst when --output ends in .zst]
    #[arg(long, value_enum)]
    pub format: Option<ExportFormatArg>,
    /// zstd compression level for tar.zst (1 fastest .. 22 smallest)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
    /// Write the archive to FILE instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot id, unique id prefix or `latest`
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// Path of a file inside the snapshot, e.g. /db/website.sql
    #[arg(value_name = "PATH")]
    pub path: String,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id, unique id prefix or `latest`, optionally with a path in it:
    /// 1a2b3c4d:/srv/cms
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    pub snapshot: String,
    /// List everything below the path, not only its direct entries
    #[arg(long, short = 'R')]
    pub recursive: bool,
    /// Show type, mode, owner, size and mtime, like `ls -l`
    #[arg(long, short = 'l')]
    pub long: bool,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Glob matched against each entry's name, e.g. '*.sql' (quote it for the shell)
    #[arg(value_name = "PATTERN")]
    pub pattern: String,
    /// Search only this snapshot (id, prefix or `latest`; repeatable)
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "all")]
    pub snapshot: Vec<String>,
    /// Search every snapshot --tag/--label/--host select (the default)
    #[arg(long)]
    pub all: bool,
    /// Only entries whose whole path matches this glob, e.g. '/srv/cms/**'
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only entries modified after TIME (RFC 3339, or a date YYYY-MM-DD meaning its start in UTC)
    #[arg(long, value_name = "TIME", value_parser = crate::parse::parse_time_or_date)]
    pub newer: Option<jiff::Timestamp>,
    /// Only entries modified before TIME
    #[arg(long, value_name = "TIME", value_parser = crate::parse::parse_time_or_date)]
    pub older: Option<jiff::Timestamp>,
    /// Only regular files of this size: +SIZE larger, -SIZE smaller, SIZE exactly (e.g. +10MiB)
    #[arg(long, value_name = "[+|-]SIZE", value_parser = crate::parse::parse_size_filter, allow_hyphen_values = true)]
    pub size: Option<vault_engine::browse::SizeFilter>,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot (id, unique prefix or `latest`)
    #[arg(value_name = "A")]
    pub a: String,
    /// The newer snapshot
    #[arg(value_name = "B")]
    pub b: String,
    /// Compare only this path of both, e.g. /srv/cms
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
    /// Show totals per directory instead of every entry, like `diff --stat`
    #[arg(long)]
    pub stat: bool,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Snapshots to report on (ids, prefixes or `latest`) [default: every snapshot
    /// --tag/--label/--host select]
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Days of growth to show, ending today (UTC)
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Layout: /snapshots/<id>/... (every snapshot by full id), /latest (a symlink to the newest), /by-label/<key>/<value>/latest and /by-label/<key>/<value>/<id>. Snapshots taken while mounted appear within a second. Unmount with Ctrl-C, SIGTERM or `fusermount3 -u MOUNTPOINT`. Needs /dev/fuse and fusermount3 (Debian: apt-get install fuse3)."
)]
pub struct MountArgs {
    /// An existing directory to mount the repository on
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
    /// Show only this snapshot: id, unique id prefix or `latest` (repeatable) [default: all]
    #[arg(long = "snapshot", value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Memory for decoded chunks kept for readers, e.g. 64MiB
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = crate::parse::parse_size)]
    pub cache_size: u32,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// Where the operations config and state are.
#[derive(Debug, Args)]
pub struct OpsArgs {
    /// The config file [default: $VAULT_CONFIG, else ~/.config/vault/vault.toml, else
    /// /etc/vault/vault.toml]
    #[arg(long, env = "VAULT_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where run history and status are kept [default: $XDG_STATE_HOME/vault; for root
    /// /var/lib/vault; else ~/.local/state/vault]
    #[arg(long, env = "VAULT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file; a problem is reported with its file, line, column and key
    /// (exit 2)
    Check {
        #[command(flatten)]
        ops: OpsArgs,
    },
}

#[derive(Debug, Args)]
#[command(
    after_help = "Repositories come from the config only (never --repo / VAULT_REPO). Exit codes: 0 every job succeeded, 1 a step or hook of some job failed, or a notification could not be sent (the job's snapshot is kept; see its report), 2 the config is wrong, 4 a job was skipped because the same application's job was running."
)]
pub struct RunArgs {
    /// Applications to run, in this order [default: every application in the config]
    #[arg(value_name = "APP")]
    pub apps: Vec<String>,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each application's newest complete snapshot is restored into <scratch_dir>/<app>-<pid>/files (scratch_dir: restore_test.scratch_dir, default <state dir>/restore-tests) and its dumps into new databases vault_restoretest_<app>_<pid> (with several databases, _<db> appended; SQLite files under <scratch_dir>/<app>-<pid>/databases/); then every check runs, and the scratch databases and directory are removed whatever happened. The result is recorded in the state directory (vault status, the metrics textfile). Exit codes: 0 every test passed, 1 a restore, a check or the cleanup failed (named), 2 the config is wrong or a named application has no restore_test."
)]
pub struct RestoreTestArgs {
    /// Applications to test [default: every application with a restore_test]
    #[arg(value_name = "APP")]
    pub apps: Vec<String>,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Naming: an application with one database restores it as NAME, one with several as NAME_<db> (<db>: the name its dump is stored under, databases/<db>.sql). PostgreSQL and MariaDB/MySQL databases are created with that name (an existing one is refused); an SQLite database becomes the file NAME (a path, relative to the current directory; an existing file is refused); a `command` database's restore_command reads the dump on standard input with the name in VAULT_RESTORE_AS. A load stops at the first error; then every database this restore created is dropped again. Exit codes: 0 restored, 1 creating or loading a database (an existing one included) or restoring the files failed, and what failed is named, 2 bad arguments or a non-empty target."
)]
pub struct RestoreAppArgs {
    /// The application (a name under [applications] in the config)
    #[arg(value_name = "APP")]
    pub app: String,
    /// Snapshot id or unique prefix [default: the newest complete snapshot labelled app=APP]
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: Option<String>,
    /// The new name of the restored database(s) (see Naming below)
    #[arg(long = "as", value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: String,
    /// Directory to restore the application's paths into (created if missing; must be empty unless --overwrite); required when the application has paths
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Restore the paths into a non-empty target, replacing what is in the way
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every application is healthy, 3 one's last run failed, its newest snapshot is stale, or it never ran, 2 the config is wrong."
)]
pub struct StatusArgs {
    /// Applications to show [default: every application in the config]
    #[arg(value_name = "APP")]
    pub apps: Vec<String>,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Serve a read-only web dashboard and JSON API over the repository (--repo) and, with \
--config, the state `vault run` records: an overview per application (red/amber/green with the \
reason), each application's snapshots, retention and growth plots, a snapshot's files (browse, \
diff against the previous snapshot, download a file with Range support or a directory as \
.tar.zst), verify problems with their impact, and /metrics. No route writes, deletes or restores.",
    after_help = "The first line on standard output is `listening on http://ADDRESS/`. Listening on an \
address that is not loopback requires --token-file (clients send `Authorization: Bearer TOKEN` or \
sign in at /login, which sets an HttpOnly, SameSite=Strict cookie); without it vault serve refuses \
to start (exit 2). Put it behind a TLS-terminating reverse proxy to reach it from elsewhere.\n\
Exit codes: 2 bad arguments (an unsafe listen address, a bad token file), 1 the server could not start."
)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8440")]
    pub listen: std::net::SocketAddr,
    /// File whose first line is the access token (at least 16 printable characters); required
    /// for an address that is not loopback
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Downloads streaming at once; more are refused with 503 until one ends
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_downloads: u16,
    /// The operations config: its applications, retention policies and recorded runs (without
    /// it, applications are the snapshots' `app` labels); without --repo, its one repository
    #[arg(long, env = "VAULT_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where `vault run` keeps history and status [default: as `vault status`]
    #[arg(long, env = "VAULT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Write a .service and a .timer per scheduled application and enable the timers (or, with
    /// --cron, a marked block of crontab lines); replaces what an earlier install wrote
    Install(ScheduleArgs),
    /// Delete exactly what `install` wrote for this config (timers disabled first)
    Remove(ScheduleArgs),
    /// Show the scheduled applications, whether they are installed, and their next runs
    Status(ScheduleArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without --unit-dir, install and remove run `systemctl [--user] daemon-reload` and enable or disable the timers; with it they only write or delete files. Exit codes: 0 done, 1 systemctl, crontab or a file failed, 2 the config is wrong or a schedule cannot be translated."
)]
pub struct ScheduleArgs {
    /// User units (~/.config/systemd/user, `systemctl --user`) [default when not root]
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// System units (/etc/systemd/system) [default for root]
    #[arg(long)]
    pub system: bool,
    /// Crontab lines in the invoking user's crontab instead of systemd units
    #[arg(long, conflicts_with_all = ["user", "system", "unit_dir"])]
    pub cron: bool,
    /// Write the units into this directory and do not run systemctl
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Show what would be written or removed; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Jobs run one at a time; a scheduled run that comes while the previous run of the same application is still going is skipped and recorded. Exit codes: 0 stopped by SIGINT or SIGTERM, 2 the config is wrong or schedules nothing."
)]
pub struct DaemonArgs {
    /// Applications to schedule [default: every application with a schedule]
    #[arg(value_name = "APP")]
    pub apps: Vec<String>,
    #[command(flatten)]
    pub ops: OpsArgs,
}
