//! The checks serde cannot make: references between sections, value formats, and the rule that
//! a repository states its password source or that it is not encrypted.
//!
//! Input: a deserialized [`Config`]. Output: the byte span and message of the first problem.

use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;

use super::config::{
    parse_duration, parse_read_subset, parse_schedule, ApplicationConfig, Config, DatabaseConfig,
    EncryptionSetting, HooksConfig, NotifyConfig, RepositoryConfig, RestoreTestConfig,
};
use super::databases;
use crate::storage::Location;

type Problem = (Range<usize>, String);

pub(crate) fn check(config: &Config) -> Result<(), Problem> {
    for (name, repository) in &config.repositories {
        check_repository(name, repository)?;
    }
    for (name, application) in &config.applications {
        check_application(config, name, application)?;
        let app = application.get_ref();
        check_hooks_and_notify(app.hooks.as_ref(), app.notify.as_ref())?;
    }
    check_hooks_and_notify(config.hooks.as_ref(), config.notify.as_ref())
}

fn check_hooks_and_notify(
    hooks: Option<&HooksConfig>,
    notify: Option<&NotifyConfig>,
) -> Result<(), Problem> {
    let timeouts = [
        hooks.and_then(|h| h.timeout.as_ref()),
        notify.and_then(|n| n.timeout.as_ref()),
    ];
    for timeout in timeouts.into_iter().flatten() {
        parse_duration(timeout.get_ref()).map_err(|e| (timeout.span(), e))?;
    }
    let urls = [
        notify.and_then(|n| n.webhook.as_ref()),
        notify.and_then(|n| n.ping.as_ref()),
    ];
    for url in urls.into_iter().flatten() {
        check_url(url.get_ref()).map_err(|e| (url.span(), e))?;
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.contains(char::is_whitespace) {
        return Err(format!(
            "{url:?} has no host or contains spaces; write it as https://host/path"
        ));
    }
    Ok(())
}

fn check_repository(name: &str, repository: &Spanned<RepositoryConfig>) -> Result<(), Problem> {
    let span = repository.span();
    let r = repository.get_ref();
    let fail = |message: String| Err((span.clone(), message));
    if let Err(e) = Location::parse(&r.location) {
        return fail(format!("repository {name:?}: location: {e}"));
    }
    let sources = [
        r.password_file.is_some(),
        r.password_command.is_some(),
        r.password_env.is_some(),
    ]
    .iter()
    .filter(|&&s| s)
    .count();
    match (r.encryption, sources) {
        (EncryptionSetting::Repokey, 0) => fail(format!(
            "repository {name:?} has no password source: add password_file, password_command or password_env, or, for a repository that is not encrypted, state encryption = \"none\""
        )),
        (EncryptionSetting::Repokey, 1) => Ok(()),
        (EncryptionSetting::Repokey, _) => fail(format!(
            "repository {name:?} has more than one of password_file, password_command, password_env; keep one"
        )),
        (EncryptionSetting::None, 0) => Ok(()),
        (EncryptionSetting::None, _) => fail(format!(
            "repository {name:?} says encryption = \"none\" but gives a password source; remove one of them"
        )),
    }
}

fn check_application(
    config: &Config,
    name: &str,
    application: &Spanned<ApplicationConfig>,
) -> Result<(), Problem> {
    let app = application.get_ref();
    let whole = application.span();
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
        return Err((
            whole,
            format!(
                "application name {name:?} cannot be a file name; use letters, digits, '-' and '_'"
            ),
        ));
    }
    let known = |repository: &Spanned<String>| {
        if config.repositories.contains_key(repository.get_ref()) {
            Ok(())
        } else {
            Err((
                repository.span(),
                format!(
                    "no repository {:?}: define it under [repositories.{}] (defined: {})",
                    repository.get_ref(),
                    repository.get_ref(),
                    listed(config.repositories.keys())
                ),
            ))
        }
    };
    known(&app.repository)?;
    if app.paths.is_empty() && app.databases.is_empty() {
        return Err((
            whole,
            format!("application {name:?} has neither paths nor databases: give at least one"),
        ));
    }
    if let Some(schedule) = &app.schedule {
        parse_schedule(schedule.get_ref()).map_err(|e| (schedule.span(), e))?;
    }
    for duration in [&app.stale_after, &app.dump_timeout].into_iter().flatten() {
        parse_duration(duration.get_ref()).map_err(|e| (duration.span(), e))?;
    }
    if let Some(prune) = &app.prune {
        if let Some(every) = &prune.every {
            parse_duration(every.get_ref()).map_err(|e| (every.span(), e))?;
        }
        if prune.max_unused.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
            return Err((whole, format!("application {name:?}: prune.max_unused must be a fraction from 0 to 1 (0.1 = 10%)")));
        }
    }
    if let Some(verify) = &app.verify {
        parse_read_subset(verify.read_data_subset.get_ref())
            .map_err(|e| (verify.read_data_subset.span(), e))?;
    }
    let empty_policy = |what: &str| {
        Err((whole.clone(), format!("application {name:?}: {what} keeps nothing and would forget every snapshot; give at least one keep_* above 0, or leave the section out to keep everything")))
    };
    if app
        .retention
        .as_ref()
        .is_some_and(|r| r.policy().is_empty())
    {
        return empty_policy("retention");
    }
    let mut targets = BTreeSet::new();
    for target in &app.copy_to {
        known(&target.repository)?;
        if target.repository.get_ref() == app.repository.get_ref() {
            return Err((
                target.repository.span(),
                "copy_to names the application's own repository; name an off-site one".into(),
            ));
        }
        if !targets.insert(target.repository.get_ref()) {
            return Err((
                target.repository.span(),
                "this repository is named twice in copy_to".into(),
            ));
        }
        if target
            .retention
            .as_ref()
            .is_some_and(|r| r.policy().is_empty())
        {
            return empty_policy("copy_to.retention");
        }
    }
    for label in app.labels.keys() {
        if label == "app" || label.is_empty() || label.contains('=') {
            return Err((whole, format!("application {name:?}: label {label:?} cannot be used (\"app\" is set to the application's name; no '=' or empty names)")));
        }
    }
    let mut dumps = BTreeSet::new();
    for database in &app.databases {
        let file = databases::stored_name(database)
            .map_err(|e| (whole.clone(), format!("application {name:?}: {e}")))?;
        if !dumps.insert(file.clone()) {
            return Err((whole, format!("application {name:?}: two databases would be stored as {file}; give one a different name")));
        }
    }
    if let Some(test) = &app.restore_test {
        check_restore_test(name, app, test, &whole)?;
    }
    Ok(())
}

fn check_restore_test(
    name: &str,
    app: &ApplicationConfig,
    test: &RestoreTestConfig,
    whole: &Range<usize>,
) -> Result<(), Problem> {
    if let Some(schedule) = &test.schedule {
        parse_schedule(schedule.get_ref()).map_err(|e| (schedule.span(), e))?;
    }
    if test.checks.is_empty() {
        return Err((whole.clone(), format!("application {name:?}: restore_test has no checks; give checks = [{{ query = \"SELECT 1 FROM t\" }}, {{ file = \"/srv/app/config.yml\" }}, {{ command = \"...\" }}]")));
    }
    for check in &test.checks {
        let c = check.get_ref();
        let fail = |message: String| Err((check.span(), message));
        let kinds = [c.query.is_some(), c.file.is_some(), c.command.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return fail(
                "a check is exactly one of query = \"SQL\", file = \"PATH\" or command = \"CMD\""
                    .into(),
            );
        }
        if c.database.is_some() && c.query.is_none() {
            return fail("database goes with query only".into());
        }
        if c.query.is_none() {
            continue;
        }
        let stored: Vec<(String, &DatabaseConfig)> = app
            .databases
            .iter()
            .filter_map(|d| {
                let file = databases::stored_name(d).ok()?;
                let stem = file
                    .strip_prefix("databases/")?
                    .strip_suffix(".sql")?
                    .to_string();
                Some((stem, d))
            })
            .collect();
        let names = || listed(stored.iter().map(|(n, _)| n));
        let database = match &c.database {
            Some(wanted) => stored.iter().find(|(n, _)| n == wanted).ok_or_else(|| {
                (
                    check.span(),
                    format!(
                        "no database {wanted:?} in application {name:?} (defined: {})",
                        names()
                    ),
                )
            })?,
            None if stored.len() == 1 => &stored[0],
            None => {
                return fail(format!("application {name:?} has {} databases: name the one to query with database = \"...\" ({})", stored.len(), names()));
            }
        };
        if matches!(database.1, DatabaseConfig::Command { .. }) {
            return fail(format!(
                "database {:?} is of kind \"command\": vault cannot query it; use a command check",
                database.0
            ));
        }
    }
    Ok(())
}

fn listed<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// What `vault config check` reports: the file is valid, and what it declares; or its problem.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigCheckReport {
    pub config: String,
    pub valid: bool,
    pub error: Option<super::config::ConfigError>,
    pub repositories: Vec<RepositorySummary>,
    pub applications: Vec<ApplicationSummary>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RepositorySummary {
    pub name: String,
    pub location: String,
    /// `repokey` or `none`.
    pub encryption: String,
    /// `file`, `command`, `env` or null (unencrypted).
    pub password_source: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplicationSummary {
    pub name: String,
    pub repository: String,
    /// `kind:stored path`, e.g. `postgresql:databases/cms.sql`.
    pub databases: Vec<String>,
    pub paths: Vec<String>,
    pub schedule: Option<String>,
    pub stale_after_secs: u64,
    pub copy_to: Vec<String>,
}

impl ConfigCheckReport {
    pub fn valid(loaded: &super::config::LoadedConfig) -> ConfigCheckReport {
        use super::config::{DatabaseConfig, PasswordSource};
        let config = &loaded.config;
        let repositories = config
            .repositories
            .iter()
            .map(|(name, r)| {
                let r = r.get_ref();
                RepositorySummary {
                    name: name.clone(),
                    location: r.location.clone(),
                    encryption: match r.encryption {
                        EncryptionSetting::Repokey => "repokey".into(),
                        EncryptionSetting::None => "none".into(),
                    },
                    password_source: r.password_source().map(|s| {
                        match s {
                            PasswordSource::File(_) => "file",
                            PasswordSource::Command(_) => "command",
                            PasswordSource::Env(_) => "env",
                        }
                        .into()
                    }),
                }
            })
            .collect();
        let applications = config
            .applications
            .iter()
            .map(|(name, a)| {
                let a = a.get_ref();
                ApplicationSummary {
                    name: name.clone(),
                    repository: a.repository.get_ref().clone(),
                    databases: a
                        .databases
                        .iter()
                        .map(|d| {
                            let kind = match d {
                                DatabaseConfig::Postgresql { .. } => "postgresql",
                                DatabaseConfig::Mysql { .. } => "mysql",
                                DatabaseConfig::Sqlite { .. } => "sqlite",
                                DatabaseConfig::Command { .. } => "command",
                            };
                            format!("{kind}:{}", databases::stored_name(d).unwrap_or_default())
                        })
                        .collect(),
                    paths: a.paths.iter().map(|p| p.display().to_string()).collect(),
                    schedule: a.schedule.as_ref().map(|s| s.get_ref().clone()),
                    stale_after_secs: super::config::stale_after(a).as_secs(),
                    copy_to: a
                        .copy_to
                        .iter()
                        .map(|t| t.repository.get_ref().clone())
                        .collect(),
                }
            })
            .collect();
        ConfigCheckReport {
            config: loaded.file.display().to_string(),
            valid: true,
            error: None,
            repositories,
            applications,
        }
    }

    pub fn invalid(error: super::config::ConfigError) -> ConfigCheckReport {
        ConfigCheckReport {
            config: error.file.display().to_string(),
            valid: false,
            error: Some(error),
            repositories: Vec::new(),
            applications: Vec::new(),
        }
    }
}
