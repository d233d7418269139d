//! Repository locations: a local path, `s3:URL/BUCKET[/PREFIX]` or
//! `sftp:[USER@]HOST[:PORT]/PATH`, and opening the backend each names.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Backend, LocalBackend};
use crate::error::{Error, Result};

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on a local (or mounted) file system.
    Local(PathBuf),
    /// An S3-compatible object store: `endpoint` is `http[s]://HOST[:PORT]`; objects are under
    /// `PREFIX/` of `bucket` (an empty prefix: the bucket's root).
    S3 {
        endpoint: String,
        bucket: String,
        prefix: String,
    },
    /// A directory on an SFTP server, reached through the system's `ssh`.
    Sftp {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        path: String,
    },
}

const S3_FORM: &str = "s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]";
const SFTP_FORM: &str = "sftp:[USER@]HOST[:PORT]/ABSOLUTE/PATH";

impl Location {
    /// Parses a location as given on the command line. Anything without an `s3:` or `sftp:`
    /// prefix is a local path.
    pub fn parse(text: &str) -> Result<Location> {
        if let Some(rest) = text.strip_prefix("s3:") {
            return parse_s3(rest).ok_or_else(|| {
                Error::invalid(
                    format!("repository location {text:?}"),
                    format!("an S3 location has the form {S3_FORM}, with a bucket name of 3-63 characters of a-z, 0-9, '.' and '-'"),
                )
            });
        }
        if let Some(rest) = text.strip_prefix("sftp:") {
            return parse_sftp(rest).ok_or_else(|| {
                Error::invalid(
                    format!("repository location {text:?}"),
                    format!("an SFTP location has the form {SFTP_FORM}"),
                )
            });
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    pub fn is_remote(&self) -> bool {
        !matches!(self, Location::Local(_))
    }

    /// The location as a user would write it (the form [`Location::parse`] reads).
    pub fn display(&self) -> String {
        match self {
            Location::Local(path) => path.display().to_string(),
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } if prefix.is_empty() => format!("s3:{endpoint}/{bucket}"),
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } => format!("s3:{endpoint}/{bucket}/{prefix}"),
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => format!(
                "sftp:{}{host}{}{path}",
                user.as_ref().map(|u| format!("{u}@")).unwrap_or_default(),
                port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
        }
    }
}

fn parse_s3(rest: &str) -> Option<Location> {
    let (scheme, after) = rest.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, path) = after.split_once('/')?;
    if host.is_empty() || host.contains('@') {
        return None;
    }
    let path = path.trim_matches('/');
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket || prefix.split('/').any(|part| part == ".." || part == ".") {
        return None;
    }
    Some(Location::S3 {
        endpoint: format!("{scheme}://{host}"),
        bucket: bucket.to_string(),
        prefix: prefix.trim_end_matches('/').to_string(),
    })
}

fn parse_sftp(rest: &str) -> Option<Location> {
    let (user, rest) = match rest.split_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return None,
        None => (None, rest),
    };
    // HOST[:PORT]/PATH, or restic's HOST:/PATH.
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    let (host, port) = match authority.split_once(':') {
        Some((host, "")) => (host, None),
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (authority, None),
    };
    if host.is_empty() || path.len() < 2 {
        return None;
    }
    Some(Location::Sftp {
        user,
        host: host.to_string(),
        port,
        path: path.trim_end_matches('/').to_string(),
    })
}

/// How remote backends connect; ignored for local repositories.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Requests in flight at once (uploads of packs, range reads).
    pub connections: usize,
    /// Retries of a transient failure (timeout, 5xx, reset connection), with exponential
    /// backoff, before the operation fails.
    pub retries: usize,
    /// Where staged packs wait for their upload (the cache directory).
    pub spool_dir: PathBuf,
    /// S3 region (signature scope); `us-east-1` when `None`.
    pub s3_region: Option<String>,
    /// Virtual-hosted-style S3 addressing (`BUCKET.HOST`) instead of path style (`HOST/BUCKET`,
    /// what self-hosted stores expect).
    pub s3_virtual_host: bool,
    /// SSH identity file; `None`: ssh's own defaults and agent.
    pub sftp_key: Option<PathBuf>,
    /// Host-key checking: `strict` (the key must be in known_hosts), `add` (unknown hosts are
    /// added, changed keys refused) or `accept` (no checking).
    pub sftp_known_hosts: String,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            connections: 8,
            retries: 6,
            spool_dir: std::env::temp_dir(),
            s3_region: None,
            s3_virtual_host: false,
            sftp_key: None,
            sftp_known_hosts: "strict".into(),
        }
    }
}

/// Opens the backend of `location`.
pub fn open(location: &Location, options: &RemoteOptions) -> Result<Arc<dyn Backend>> {
    match location {
        Location::Local(path) if path.metadata().is_ok_and(|m| !m.is_dir()) => {
            Err(Error::RepositoryIsAFile { path: path.clone() })
        }
        Location::Local(path) => Ok(Arc::new(LocalBackend::new(path))),
        #[cfg(feature = "remote")]
        remote => Ok(Arc::new(super::RemoteBackend::open(remote, options)?)),
        #[cfg(not(feature = "remote"))]
        remote => {
            let _ = options;
            Err(Error::invalid(
                format!("repository location {}", remote.display()),
                "this vault was built without remote backends (feature `remote`)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("s3:http://127.0.0.1:9000/backups/prod/cms").unwrap(),
            Location::S3 {
                endpoint: "http://127.0.0.1:9000".into(),
                bucket: "backups".into(),
                prefix: "prod/cms".into()
            }
        );
        assert_eq!(
            Location::parse("s3:https://s3.example.com/backups/").unwrap(),
            Location::S3 {
                endpoint: "https://s3.example.com".into(),
                bucket: "backups".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Location::parse("sftp:backup@host.example:2222/srv/vault").unwrap(),
            Location::Sftp {
                user: Some("backup".into()),
                host: "host.example".into(),
                port: Some(2222),
                path: "/srv/vault".into()
            }
        );
        assert_eq!(
            Location::parse("sftp:host:/srv/vault/").unwrap(),
            Location::Sftp {
                user: None,
                host: "host".into(),
                port: None,
                path: "/srv/vault".into()
            }
        );
        assert_eq!(
            Location::parse("/var/backups/vault").unwrap(),
            Location::Local("/var/backups/vault".into())
        );
        for bad in [
            "s3:backups",
            "s3:ftp://h/b",
            "s3:http://h",
            "s3:http://h/B_ucket",
            "s3:http://h/bucket/../x",
            "sftp:host",
            "sftp:@host/x",
            "sftp:host:port/x",
            "sftp:host/",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        for text in [
            "s3:http://127.0.0.1:9000/backups/prod/cms",
            "sftp:u@h:22/srv/x",
            "sftp:h/srv/x",
        ] {
            assert_eq!(Location::parse(text).unwrap().display(), text);
        }
    }
}
