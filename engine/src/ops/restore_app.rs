//! `vault restore-app APP [SNAPSHOT] --as NAME`: an application's snapshot restored under a new
//! name: its paths into a target directory, each database dump into a new database.
//!
//! ```text
//! snapshot (given, else the newest complete one labelled app=APP)
//!   ─► plan (new names, tools, the dumps exist in the snapshot, the target is empty)
//!   ─► create every new database (refusing one that exists)
//!   ─► restore the paths (restore::run, includes = the application's paths)
//!   ─► load each dump (restore::dump streamed into the client)
//! ```
//! All or nothing for the databases: when creating, restoring the files or loading fails,
//! every database this restore created is dropped again and the report says which step and
//! which database failed. Files already written stay (as `vault restore` leaves them).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::config::LoadedConfig;
use super::restore_db::{self, NewDatabase};
use super::run::{open, RunOptions};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repo::{lookup_path, Repository, SnapshotFilter, SnapshotInfo};
use crate::restore::{self, RestoreOptions, RestoreReport};

pub struct RestoreAppOptions {
    pub app: String,
    /// A snapshot id or prefix; `None`: the newest complete snapshot labelled `app=APP`.
    pub snapshot: Option<String>,
    /// The new name (see [`restore_db`]'s naming rule).
    pub name: String,
    /// Where the application's paths are restored; required when it has paths.
    pub target: Option<PathBuf>,
    /// Restore into a non-empty target, replacing what is in the way (`vault restore`'s).
    pub overwrite: bool,
    /// New SQLite files are placed relative to this directory.
    pub base: PathBuf,
    /// Cache, remote settings and state, as `vault run` takes them.
    pub run: RunOptions,
}

/// One database's restore.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseRestoreReport {
    /// The name it is stored under (`databases/<database>.sql`).
    pub database: String,
    pub kind: String,
    pub stored_as: String,
    /// The new database's name, or the new SQLite file.
    pub restored_as: String,
    /// `loaded`, `failed`, `dropped` (created, then removed because the restore failed) or
    /// `not_loaded` (the restore stopped before it).
    pub status: String,
    /// Dump bytes loaded.
    pub bytes: u64,
    pub duration_secs: f64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreAppReport {
    pub app: String,
    pub snapshot: String,
    pub snapshot_time: String,
    pub target: Option<PathBuf>,
    /// The paths' restore; `None` when the application has no paths.
    pub files: Option<RestoreReport>,
    pub databases: Vec<DatabaseRestoreReport>,
    /// Every database loaded and the files restored.
    pub ok: bool,
    /// What failed (`None` when `ok`).
    pub error: Option<String>,
}

/// The newest complete snapshot labelled `app=APP`, or the one `wanted` names (which must be
/// the application's).
pub fn find_app_snapshot(
    repo: &Repository,
    app: &str,
    wanted: Option<&str>,
) -> Result<SnapshotInfo> {
    let filter = SnapshotFilter {
        labels: vec![("app".into(), app.into())],
        ..SnapshotFilter::default()
    };
    match wanted {
        Some(wanted) => {
            let snapshot = repo.find_snapshot(wanted, &SnapshotFilter::default())?;
            if !filter.matches(&snapshot.manifest) {
                return Err(Error::invalid(
                    format!("snapshot {}", snapshot.id.short()),
                    format!("is not labelled app={app}; `vault list --label app={app}` lists the application's snapshots"),
                ));
            }
            Ok(snapshot)
        }
        None => repo
            .snapshots_for_latest()?
            .into_iter()
            .rev()
            .find(|s| s.manifest.complete && filter.matches(&s.manifest))
            .ok_or_else(|| Error::NoSuchSnapshot {
                wanted: format!("latest complete snapshot labelled app={app}"),
            }),
    }
}

/// What one restore of an application did so far; also the scratch restore of a restore test.
pub struct AppRestore {
    pub report: RestoreAppReport,
    /// The databases created, in order (dropped again by [`AppRestore::drop_databases`]).
    pub created: Vec<NewDatabase>,
}

impl AppRestore {
    /// Drops every database created, marking each `dropped`; the first error, if any.
    pub fn drop_databases(&mut self) -> std::result::Result<(), String> {
        let mut first = Ok(());
        for database in self.created.drain(..) {
            let row = self
                .report
                .databases
                .iter_mut()
                .find(|d| d.restored_as == database.restored_as);
            match database.drop() {
                Ok(true) => {
                    if let Some(row) = row {
                        row.status = "dropped".into();
                    }
                }
                Ok(false) => {
                    if let Some(row) = row {
                        row.message += "; vault cannot remove what a restore_command created: check it by hand";
                    }
                }
                Err(e) => {
                    if first.is_ok() {
                        first = Err(format!(
                            "could not remove the new {} database {:?}: {e}",
                            database.kind, database.restored_as
                        ));
                    }
                }
            }
        }
        first
    }

    fn fail(&mut self, message: String) {
        self.report.ok = false;
        self.report.error.get_or_insert(message);
    }
}

/// Restores application `options.app` under `options.name`. Problems found before anything is
/// written are errors; a failure after that is in the report (`ok: false`), with every new
/// database dropped again.
pub fn restore_app(
    config: &LoadedConfig,
    options: &RestoreAppOptions,
    progress: &dyn Progress,
) -> Result<RestoreAppReport> {
    let repo = open_app_repository(config, &options.app, &options.run)?;
    let snapshot = find_app_snapshot(&repo, &options.app, options.snapshot.as_deref())?;
    let mut restore = restore_snapshot(config, &repo, &snapshot, options, progress)?;
    if !restore.report.ok {
        if let Err(e) = restore.drop_databases() {
            let error = restore.report.error.take().unwrap_or_default();
            restore.report.error = Some(format!("{error}; {e}"));
        }
    }
    Ok(restore.report)
}

/// Opens the repository of application `app` (an unknown application is a usage error).
pub fn open_app_repository(
    config: &LoadedConfig,
    app: &str,
    run: &RunOptions,
) -> Result<Repository> {
    super::config::select_apps(config, &[app.to_string()])?;
    let repository = config
        .application(app)
        .expect("selected")
        .repository
        .get_ref();
    open(config, repository, run).map_err(|reason| Error::invalid("repository", reason))
}

/// Creates the databases, restores the paths and loads the dumps of `snapshot`. The databases
/// it created are in the result even when it failed; the caller drops them.
pub fn restore_snapshot(
    config: &LoadedConfig,
    repo: &Repository,
    snapshot: &SnapshotInfo,
    options: &RestoreAppOptions,
    progress: &dyn Progress,
) -> Result<AppRestore> {
    let app = config.application(&options.app).expect("selected");
    let invalid = |reason: String| Error::invalid(format!("restore-app {}", options.app), reason);
    let databases =
        restore_db::plan(&app.databases, &options.name, &options.base).map_err(invalid)?;
    for database in &databases {
        lookup_path(repo, snapshot, &format!("/{}", database.stored_as)).map_err(|_| {
            invalid(format!(
                "snapshot {} has no {} (it was taken before database {:?} was configured?); pick a newer snapshot",
                snapshot.id.short(),
                database.stored_as,
                database.database
            ))
        })?;
    }
    let target = match (&options.target, app.paths.is_empty()) {
        (Some(target), false) => {
            if !options.overwrite && !restore::target::is_empty_or_missing(target)? {
                return Err(Error::TargetNotEmpty {
                    path: target.clone(),
                });
            }
            Some(target.clone())
        }
        (None, false) => {
            return Err(invalid(format!(
                "the application has {} path(s) to restore: give --target DIR",
                app.paths.len()
            )))
        }
        (target, true) => target.clone(),
    };
    let mut restore = AppRestore {
        report: RestoreAppReport {
            app: options.app.clone(),
            snapshot: snapshot.id.to_hex(),
            snapshot_time: snapshot.manifest.time.clone(),
            target: target.clone(),
            files: None,
            databases: databases
                .iter()
                .map(|d| DatabaseRestoreReport {
                    database: d.database.clone(),
                    kind: d.kind.into(),
                    stored_as: d.stored_as.clone(),
                    restored_as: d.restored_as.clone(),
                    status: "not_loaded".into(),
                    bytes: 0,
                    duration_secs: 0.0,
                    message: String::new(),
                })
                .collect(),
            ok: true,
            error: None,
        },
        created: Vec::new(),
    };
    for (index, database) in databases.iter().enumerate() {
        if let Err(e) = database.create() {
            restore.report.databases[index].message = e.clone();
            restore.fail(e);
            return Ok(restore);
        }
        restore.created.push(database.clone());
    }
    if let (Some(target), false) = (&target, app.paths.is_empty()) {
        let files = RestoreOptions {
            includes: app
                .paths
                .iter()
                .map(|p| globset::escape(&p.to_string_lossy()))
                .collect(),
            overwrite: options.overwrite,
            ..RestoreOptions::new(target.clone())
        };
        match restore::run(repo, snapshot, &files, progress) {
            Ok(report) => restore.report.files = Some(report),
            Err(e) => {
                restore.fail(format!("restoring the files to {}: {e}", target.display()));
                return Ok(restore);
            }
        }
    }
    for (index, database) in databases.iter().enumerate() {
        let started = Instant::now();
        let outcome = database.load(repo, snapshot);
        let row = &mut restore.report.databases[index];
        row.duration_secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(bytes) => {
                row.status = "loaded".into();
                row.bytes = bytes;
                row.message = format!("{bytes} bytes of {} loaded", database.stored_as);
            }
            Err(e) => {
                row.status = "failed".into();
                row.message = e.clone();
                restore.fail(format!(
                    "loading {} into the new {} database {:?} failed: {e}",
                    database.stored_as, database.kind, database.restored_as
                ));
                return Ok(restore);
            }
        }
    }
    Ok(restore)
}

impl crate::report::JsonReport for RestoreAppReport {}
