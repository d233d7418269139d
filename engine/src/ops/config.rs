//! The operations config file (`vault.toml`): repositories and the applications backed up into
//! them, as data with a schema.
//!
//! Input: the file's text. Output: a [`Config`] whose every reference is checked (an
//! application names a repository that exists, a schedule parses, a repository states its
//! password source or that it is unencrypted), or a [`ConfigError`] with the file, line,
//! column and dotted key of the first problem. Unknown keys are errors (`deny_unknown_fields`
//! everywhere): a misspelt key must never fall back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::repo::Password;
use crate::retention::Policy;

/// A problem in the config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}:{line}:{column}: {}{message}", file.display(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not at one place (the file cannot be read).
    pub line: usize,
    pub column: usize,
    /// Dotted key, e.g. `applications.cms.retention.keep_daily` ("" when unknown).
    pub key: String,
    pub message: String,
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub repositories: BTreeMap<String, Spanned<RepositoryConfig>>,
    #[serde(default)]
    pub applications: BTreeMap<String, Spanned<ApplicationConfig>>,
    /// Hooks of every application that does not set its own (key by key).
    pub hooks: Option<HooksConfig>,
    /// Notifications of every application that does not set its own (key by key).
    pub notify: Option<NotifyConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus textfile written after every run (node_exporter's textfile collector).
    pub textfile: Option<PathBuf>,
}

/// Whether a repository is encrypted, as the config states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionSetting {
    /// Encrypted (the default): a password source is required.
    Repokey,
    /// Not encrypted, stated on purpose; no password source may be given.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// A directory, `s3:…` or `sftp:…`, as `--repo` takes it.
    pub location: String,
    #[serde(default = "default_encryption")]
    pub encryption: EncryptionSetting,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// Requests in flight to a remote repository.
    pub connections: Option<u16>,
}

fn default_encryption() -> EncryptionSetting {
    EncryptionSetting::Repokey
}

/// Where a repository's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Command(String),
    Env(String),
}

impl RepositoryConfig {
    /// The one password source of an encrypted repository; `None` for `encryption = "none"`.
    pub fn password_source(&self) -> Option<PasswordSource> {
        if let Some(path) = &self.password_file {
            return Some(PasswordSource::File(path.clone()));
        }
        if let Some(command) = &self.password_command {
            return Some(PasswordSource::Command(command.clone()));
        }
        self.password_env.clone().map(PasswordSource::Env)
    }
}

impl PasswordSource {
    /// Reads the password (one trailing newline of a file or command output is dropped).
    pub fn read(&self) -> Result<Password, String> {
        let trimmed = |mut bytes: Vec<u8>| {
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            Password::new(bytes)
        };
        match self {
            PasswordSource::File(path) => std::fs::read(path)
                .map(trimmed)
                .map_err(|e| format!("password file {}: {e}", path.display())),
            PasswordSource::Command(command) => {
                let output = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| format!("password command {command:?}: cannot run it: {e}"))?;
                if !output.status.success() {
                    return Err(format!(
                        "password command {command:?} failed ({})",
                        output.status
                    ));
                }
                Ok(trimmed(output.stdout))
            }
            PasswordSource::Env(name) => std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(|v| Password::new(v.into_encoded_bytes()))
                .ok_or_else(|| format!("environment variable {name} (password_env) is not set")),
        }
    }
}

/// One application: what to back up, into which repository, and what to do after.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// A name under `[repositories]`.
    pub repository: Spanned<String>,
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub excludes: Vec<String>,
    #[serde(default)]
    pub databases: Vec<DatabaseConfig>,
    /// Labels added to every snapshot besides `app=NAME`.
    #[serde(default)]
    pub labels: BTreeMap<String, LabelSource>,
    pub retention: Option<RetentionConfig>,
    pub prune: Option<PruneConfig>,
    pub verify: Option<VerifyConfig>,
    #[serde(default)]
    pub copy_to: Vec<CopyTarget>,
    /// Cron expression (5 or 6 fields), e.g. `"0 2 * * *"`; stored and validated.
    pub schedule: Option<Spanned<String>>,
    /// The newest snapshot is stale past this age (e.g. `"26h"`) [default: twice the longest
    /// gap between scheduled runs, else 26h].
    pub stale_after: Option<Spanned<String>>,
    /// Kill a database dump that runs longer than this (e.g. `"2h"`).
    pub dump_timeout: Option<Spanned<String>>,
    pub hooks: Option<HooksConfig>,
    pub notify: Option<NotifyConfig>,
    /// `vault restore-test`: the newest snapshot restored into scratch space and checked.
    pub restore_test: Option<RestoreTestConfig>,
}

/// A restore test: the newest complete snapshot restored into a scratch directory and scratch
/// databases, the checks run, everything removed again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTestConfig {
    /// Cron expression, as the application's `schedule`.
    pub schedule: Option<Spanned<String>>,
    /// Where scratch directories are made [default: `<state dir>/restore-tests`].
    pub scratch_dir: Option<PathBuf>,
    /// What must hold in the restored copy; every one runs.
    #[serde(default)]
    pub checks: Vec<Spanned<RestoreCheck>>,
}

/// One check of a restore test: exactly one of `query`, `file` and `command`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreCheck {
    /// SQL that must return at least one row in the scratch copy of `database`.
    pub query: Option<String>,
    /// With `query`: the database (its stored name) [default: the application's only one].
    pub database: Option<String>,
    /// A path as in the snapshot (`/srv/cms/assets/logo.png`) that must exist in the restored
    /// files.
    pub file: Option<PathBuf>,
    /// A shell command run in the restored files that must exit 0.
    pub command: Option<String>,
}

impl RestoreCheck {
    /// One line naming the check.
    pub fn describe(&self) -> String {
        if let Some(query) = &self.query {
            match &self.database {
                Some(database) => format!("query {query:?} in {database}"),
                None => format!("query {query:?}"),
            }
        } else if let Some(file) = &self.file {
            format!("file {}", file.display())
        } else {
            format!("command {:?}", self.command.as_deref().unwrap_or(""))
        }
    }
}

/// Shell commands (`sh -c`) run around a job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    /// Runs first; when it fails the job stops before anything is written.
    pub before: Option<String>,
    /// Runs after the steps whenever `before` succeeded (or there is none), whatever they did.
    pub after: Option<String>,
    /// Runs when the job failed (a step, or the `before` / `after` hook).
    pub on_failure: Option<String>,
    /// A hook running longer than this is killed and fails [default: 1h].
    pub timeout: Option<Spanned<String>>,
}

/// Where a job's result goes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `http(s)://…`: receives the job report as a JSON POST after every run.
    pub webhook: Option<Spanned<String>>,
    /// A healthchecks-style URL: `<url>/start` when the job starts, `<url>` when it succeeds,
    /// `<url>/fail` when it fails.
    pub ping: Option<Spanned<String>>,
    /// A shell command receiving the job report (JSON) on standard input after every run.
    pub command: Option<String>,
    /// Per request or command [default: 30s].
    pub timeout: Option<Spanned<String>>,
}

impl HooksConfig {
    /// `self`'s keys, each falling back to `defaults`' key.
    pub fn or(&self, defaults: &HooksConfig) -> HooksConfig {
        HooksConfig {
            before: self.before.clone().or_else(|| defaults.before.clone()),
            after: self.after.clone().or_else(|| defaults.after.clone()),
            on_failure: self
                .on_failure
                .clone()
                .or_else(|| defaults.on_failure.clone()),
            timeout: self.timeout.clone().or_else(|| defaults.timeout.clone()),
        }
    }
}

impl NotifyConfig {
    /// `self`'s keys, each falling back to `defaults`' key.
    pub fn or(&self, defaults: &NotifyConfig) -> NotifyConfig {
        NotifyConfig {
            webhook: self.webhook.clone().or_else(|| defaults.webhook.clone()),
            ping: self.ping.clone().or_else(|| defaults.ping.clone()),
            command: self.command.clone().or_else(|| defaults.command.clone()),
            timeout: self.timeout.clone().or_else(|| defaults.timeout.clone()),
        }
    }
}

/// A database dumped into the snapshot as `databases/<name>.sql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DatabaseConfig {
    Postgresql {
        /// The database name.
        name: String,
        host: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        /// Directory of `pg_dump` when it is not on PATH (e.g. `/usr/lib/postgresql/17/bin`).
        bin_dir: Option<PathBuf>,
    },
    #[serde(alias = "mariadb")]
    Mysql {
        name: String,
        host: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        /// A client option file holding the password (`--defaults-extra-file`).
        options_file: Option<PathBuf>,
        bin_dir: Option<PathBuf>,
    },
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Stored as `databases/<name>.sql` [default: the file's name without extension].
        name: Option<String>,
    },
    Command {
        name: String,
        /// Writes the dump to standard output.
        dump_command: String,
        /// Reads a dump on standard input (used by restores; stored with the config).
        restore_command: Option<String>,
    },
}

/// A label value: text, a command's output, or a file's content (first line, trimmed).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LabelSource {
    Text(String),
    Command { command: String },
    File { file: PathBuf },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
}

impl RetentionConfig {
    pub fn policy(&self) -> Policy {
        Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: None,
            tags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// Prune when the last prune of this application is older than this (e.g. `"7d"`)
    /// [default: every run].
    pub every: Option<Spanned<String>>,
    /// Repack packs whose unused share exceeds this fraction [default: 0.1].
    pub max_unused: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// `"1/N"`: each run reads the next of N slices of the packs, so every pack is read once
    /// per N runs; `"all"` reads every pack; `"none"` checks structure only.
    pub read_data_subset: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyTarget {
    /// A name under `[repositories]`.
    pub repository: Spanned<String>,
    /// What the copy keeps [default: the application's retention].
    pub retention: Option<RetentionConfig>,
}

/// How much of the packs one verify reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ReadSubset {
    None,
    All,
    /// One slice of this many per run.
    Cycle(u64),
}

/// `"none"`, `"all"` or `"1/N"` (N from 1 to 1000).
pub fn parse_read_subset(text: &str) -> Result<ReadSubset, String> {
    match text {
        "none" => return Ok(ReadSubset::None),
        "all" => return Ok(ReadSubset::All),
        _ => {}
    }
    let wrong = || {
        format!("{text:?} is not \"none\", \"all\" or \"1/N\" (e.g. \"1/7\": a seventh of the packs per run)")
    };
    let (one, n) = text.split_once('/').ok_or_else(wrong)?;
    let n: u64 = n.trim().parse().map_err(|_| wrong())?;
    if one.trim() != "1" || !(1..=1000).contains(&n) {
        return Err(wrong());
    }
    Ok(ReadSubset::Cycle(n))
}

/// A duration such as `"90s"`, `"30m"`, `"26h"`, `"7d"`, `"2w"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let wrong = || format!("{text:?} is not a duration such as \"30m\", \"26h\", \"7d\" or \"2w\"");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(wrong)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| wrong())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(wrong()),
    };
    if number == 0 {
        return Err(format!("{text:?}: a duration of 0 means nothing here"));
    }
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// Parses a cron expression (croner: 5 fields, or 6 with seconds).
pub fn parse_schedule(text: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
        .map_err(|e| {
            format!(
                "{text:?} is not a cron expression such as \"0 2 * * *\" (02:00 every day): {e}"
            )
        })
}

/// The file to read: `explicit` (`--config` / `VAULT_CONFIG`), else the first that exists of
/// `~/.config/vault/vault.toml` and `/etc/vault/vault.toml`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        candidates.push(PathBuf::from(home).join(".config/vault/vault.toml"));
    }
    candidates.push(PathBuf::from("/etc/vault/vault.toml"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no config file: none of {} exists; pass --config PATH or set VAULT_CONFIG",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// A loaded, checked config with its source.
#[derive(Debug)]
pub struct LoadedConfig {
    pub file: PathBuf,
    pub config: Config,
}

impl LoadedConfig {
    pub fn repository(&self, name: &str) -> &RepositoryConfig {
        self.config.repositories[name].get_ref()
    }

    pub fn application(&self, name: &str) -> Option<&ApplicationConfig> {
        self.config.applications.get(name).map(|a| a.get_ref())
    }

    /// The hooks of application `name`: its own keys, else the file's `[hooks]`.
    pub fn hooks(&self, name: &str) -> HooksConfig {
        let own = self.application(name).and_then(|a| a.hooks.clone());
        own.unwrap_or_default().or(self
            .config
            .hooks
            .as_ref()
            .unwrap_or(&HooksConfig::default()))
    }

    /// The notifications of application `name`: its own keys, else the file's `[notify]`.
    pub fn notify(&self, name: &str) -> NotifyConfig {
        let own = self.application(name).and_then(|a| a.notify.clone());
        own.unwrap_or_default().or(self
            .config
            .notify
            .as_ref()
            .unwrap_or(&NotifyConfig::default()))
    }
}

/// Staleness threshold without a schedule or `stale_after`.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(26 * 3600);

/// The staleness threshold of `app`: `stale_after`, else twice the longest gap between the
/// next ten scheduled runs, else [`DEFAULT_STALE_AFTER`].
pub fn stale_after(app: &ApplicationConfig) -> Duration {
    if let Some(d) = app
        .stale_after
        .as_ref()
        .and_then(|d| parse_duration(d.get_ref()).ok())
    {
        return d;
    }
    let Some(cron) = app
        .schedule
        .as_ref()
        .and_then(|s| parse_schedule(s.get_ref()).ok())
    else {
        return DEFAULT_STALE_AFTER;
    };
    let now = jiff::Zoned::now();
    let times: Vec<jiff::Zoned> = cron.iter_after(now).take(11).collect();
    let gap = times
        .windows(2)
        .filter_map(|w| {
            w[1].timestamp()
                .duration_since(w[0].timestamp())
                .try_into()
                .ok()
        })
        .max()
        .unwrap_or(DEFAULT_STALE_AFTER / 2);
    gap * 2
}

/// The applications `names` selects (all when empty); an unknown name is a usage error.
pub fn select_apps(config: &LoadedConfig, names: &[String]) -> crate::error::Result<Vec<String>> {
    if names.is_empty() {
        return Ok(config.config.applications.keys().cloned().collect());
    }
    for name in names {
        if config.application(name).is_none() {
            return Err(crate::error::Error::invalid(
                "vault run",
                format!(
                    "no application {name:?} in {}; defined: {}",
                    config.file.display(),
                    config
                        .config
                        .applications
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(names.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_subsets_and_schedules() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("0h").is_err());
        assert_eq!(parse_read_subset("1/7"), Ok(ReadSubset::Cycle(7)));
        assert!(parse_read_subset("2/7").is_err());
        assert!(parse_schedule("30 2 * * *").is_ok());
        assert!(parse_schedule("nightly").is_err());
    }
}
