//! Remote backends: S3-compatible object stores and SFTP servers, through Apache OpenDAL.
//!
//! Objects keep the local layout ([`super::object_path`]) under the bucket prefix or the SFTP
//! directory. Write-once: an object's name is checked before it is written, and the bytes
//! appear whole or not at all: S3 makes a PUT visible only when it is complete; on SFTP the
//! bytes go to a `.tmp-` name first, renamed into place when complete (SFTP's rename does not
//! replace an existing file).
//!
//! Packs are spooled to a temporary file in the cache directory as they are written (no pack is
//! ever whole in memory), and uploaded from it, memory-mapped, when finished: the upload starts
//! at once in the background and its commit waits for it, so up to
//! [`RemoteOptions::connections`] packs are on the wire while the snapshot goes on packing. A
//! pack can thus become visible before its commit returns; until the index names it, it is an
//! unreferenced pack like the ones a crash leaves, and `vault prune` removes it.
//!
//! Every request goes through OpenDAL's retry layer (exponential backoff with jitter on
//! temporary errors: timeouts, 5xx, reset connections) and timeout layer; after the retry budget
//! the error names the object and says so.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{services, Buffer, Operator};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::location::{Location, RemoteOptions};
use super::{object_path, Backend, ObjectInfo, ObjectKind, ObjectWriter, StagedObject};
use crate::error::{Error, Result};

/// A repository in an S3 bucket or on an SFTP server.
#[derive(Debug)]
pub struct RemoteBackend {
    location: String,
    operator: Operator,
    runtime: Arc<Runtime>,
    /// Uploads in flight (one permit each).
    uploads: Arc<Semaphore>,
    connections: usize,
    retries: usize,
    /// SFTP: write to a temporary name and rename (S3 PUTs are atomic on their own).
    rename_into_place: bool,
    spool_dir: std::path::PathBuf,
}

/// Large reads are split into pieces of this size, up to [`PIECES_IN_FLIGHT`] at once.
const READ_PIECE: usize = 4 << 20;
const PIECES_IN_FLIGHT: usize = 4;

/// SFTP connections (ssh sessions) at most, whatever `--connections` says.
const SFTP_SESSIONS: usize = 2;

/// Per-request timeout, and the longest pause in a transfer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

impl RemoteBackend {
    pub fn open(location: &Location, options: &RemoteOptions) -> Result<RemoteBackend> {
        static CRYPTO: OnceLock<()> = OnceLock::new();
        CRYPTO.get_or_init(|| {
            // rustls on ring, the crypto library vault already uses (no second one).
            let _ = rustls::crypto::ring::default_provider().install_default();
            opendal_http_transport_reqwest::install_default();
        });
        let display = location.display();
        let config_error = |e: opendal::Error| {
            Error::invalid(format!("repository location {display}"), one_line(&e))
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vault-net")
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        let _context = runtime.enter();
        let (operator, rename_into_place) = match location {
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                let mut builder = services::S3::default()
                    .endpoint(endpoint)
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(options.s3_region.as_deref().unwrap_or("us-east-1"));
                if options.s3_virtual_host {
                    builder = builder.enable_virtual_host_style();
                }
                (Operator::new(builder).map_err(config_error)?, false)
            }
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => {
                let endpoint = match port {
                    Some(port) => format!("ssh://{host}:{port}"),
                    None => format!("ssh://{host}"),
                };
                let mut builder = services::Sftp::default()
                    .endpoint(&endpoint)
                    .root(path)
                    .known_hosts_strategy(&options.sftp_known_hosts);
                if let Some(user) = user {
                    builder = builder.user(user);
                }
                if let Some(key) = &options.sftp_key {
                    builder = builder.key(&key.to_string_lossy());
                }
                (Operator::new(builder).map_err(config_error)?, true)
            }
            Location::Local(_) => unreachable!("local locations use LocalBackend"),
        };
        let operator = operator
            .layer(
                TimeoutLayer::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(options.retries)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(10))
                    .with_factor(2.0)
                    .with_jitter(),
            );
        // Each SFTP connection is an ssh process with its own session set-up and cipher: more
        // than a couple cost more than they bring (benches/README.md, remote section).
        let connections = match location {
            Location::Sftp { .. } => options.connections.clamp(1, SFTP_SESSIONS),
            _ => options.connections.max(1),
        };
        drop(_context);
        Ok(RemoteBackend {
            location: display,
            operator,
            runtime: Arc::new(runtime),
            uploads: Arc::new(Semaphore::new(connections)),
            connections,
            retries: options.retries,
            rename_into_place,
            spool_dir: options.spool_dir.clone(),
        })
    }

    /// An OpenDAL error as an engine error naming the object: "not found" stays recognizable
    /// ([`super::is_not_found`]), everything else is an I/O error with OpenDAL's account of it
    /// on one line.
    fn error(&self, path: &str, e: opendal::Error) -> Error {
        let kind = match e.kind() {
            opendal::ErrorKind::NotFound => io::ErrorKind::NotFound,
            opendal::ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            opendal::ErrorKind::AlreadyExists => {
                return Error::AlreadyExists {
                    path: self.full(path).into(),
                }
            }
            _ => io::ErrorKind::Other,
        };
        Error::Io {
            path: self.full(path).into(),
            source: io::Error::new(kind, describe(&e, self.retries)),
        }
    }

    fn full(&self, path: &str) -> String {
        format!("{}/{path}", self.location)
    }

    fn block_on<T>(&self, future: impl std::future::IntoFuture<Output = T>) -> T {
        self.runtime.block_on(future.into_future())
    }

    fn exists(&self, path: &str) -> Result<bool> {
        match self.block_on(self.operator.stat(path)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(path, e)),
        }
    }

    /// Fails with [`Error::AlreadyExists`] when `path` names an object already.
    fn refuse_existing(&self, path: &str) -> Result<()> {
        if self.exists(path)? {
            return Err(Error::AlreadyExists {
                path: self.full(path).into(),
            });
        }
        Ok(())
    }

    /// The upload of one whole object, as a future that owns what it needs.
    fn upload(&self, path: String, bytes: Buffer) -> impl std::future::Future<Output = Result<()>> {
        let operator = self.operator.clone();
        let rename = self.rename_into_place;
        let full = self.full(&path);
        let retries = self.retries;
        async move {
            let result = if rename {
                let dir = path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                let temp = format!("{dir}/{}", super::temp_name());
                match operator.write(&temp, bytes).await {
                    Ok(_) => match operator.rename(&temp, &path).await {
                        Ok(()) => Ok(()),
                        Err(e) => {
                            let _ = operator.delete(&temp).await;
                            Err(e)
                        }
                    },
                    Err(e) => {
                        let _ = operator.delete(&temp).await;
                        Err(e)
                    }
                }
            } else {
                operator.write(&path, bytes).await.map(|_| ())
            };
            result.map_err(|e| Error::Io {
                path: full.into(),
                source: io::Error::other(describe(&e, retries)),
            })
        }
    }
}

/// A failure on one line: what the store or the transport said (the S3 error code when there is
/// one, the chain of causes), a hint at the usual fix, and whether the retries ran out.
fn describe(e: &opendal::Error, retries: usize) -> String {
    let mut text = squeeze(e.message());
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = squeeze(&cause.to_string());
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    if let Some(code) = quoted_field(&text, "code: ") {
        text = code;
    } else if let Some(code) = xml_field(&text, "Code") {
        text = match xml_field(&text, "Message") {
            Some(message) => format!("{code}: {message}"),
            None => code,
        };
    }
    if text.is_empty() {
        text = match e.kind() {
            opendal::ErrorKind::PermissionDenied => "access denied".into(),
            kind => kind.to_string(),
        };
    }
    let hint = match e.kind() {
        opendal::ErrorKind::PermissionDenied => {
            "; check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the ssh user and key)"
        }
        _ if text.contains("failed to connect to the remote host") => {
            "; ssh could not log in: check the host key (known_hosts, VAULT_SFTP_KNOWN_HOSTS), the user and the key (VAULT_SFTP_KEY); `ssh -p PORT USER@HOST` tells why"
        }
        _ if text.contains("NoSuchBucket") => "; create the bucket first",
        _ if text.contains("failed to load signing credential") => {
            "; no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION if the store needs one)"
        }
        _ => "",
    };
    // The retry layer marks a temporary error persistent when it gives up on it.
    let retried = matches!(
        e.kind(),
        opendal::ErrorKind::Unexpected | opendal::ErrorKind::RateLimited
    );
    let gave_up = if e.is_persistent() && retried && retries > 0 {
        format!(
            " (gave up after {retries} {})",
            if retries == 1 { "retry" } else { "retries" }
        )
    } else {
        String::new()
    };
    format!("{text}{hint}{gave_up}")
}

/// The text of `<name>…</name>` in an S3 error body, if there is one.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_string())
}

/// The text of `<label>"…"` (an S3 error as OpenDAL prints it: `S3Error { code: "…", … }`).
fn quoted_field(text: &str, label: &str) -> Option<String> {
    let start = text.find(&format!("{label}\""))? + label.len() + 1;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string()).filter(|code| !code.is_empty())
}

/// Whitespace (newlines included) squeezed to single spaces.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// OpenDAL's full error text on one line.
fn one_line(e: &opendal::Error) -> String {
    squeeze(&e.to_string())
}

/// A pack being spooled to a temporary file.
struct RemoteObject<'a> {
    backend: &'a RemoteBackend,
    kind: ObjectKind,
    file: io::BufWriter<File>,
}

impl<'a> ObjectWriter<'a> for RemoteObject<'a> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.backend.spool_dir, e))
    }

    fn finish(self: Box<Self>, name: &str) -> Result<Box<dyn StagedObject + 'a>> {
        let backend = self.backend;
        let path = object_path(self.kind, name)?;
        backend.refuse_existing(&path)?;
        let spool = |e: io::Error| Error::io(&backend.spool_dir, e);
        let file = self.file.into_inner().map_err(|e| spool(e.into_error()))?;
        // SAFETY: the file is this process's own unlinked temporary file; nothing else maps or
        // changes it while the mapping lives.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(spool)?;
        let bytes = Buffer::from(bytes::Bytes::from_owner(map));
        // Backpressure: at most `connections` uploads in flight.
        let permit = backend
            .block_on(backend.uploads.clone().acquire_owned())
            .expect("the semaphore is never closed");
        let upload = backend.upload(path, bytes);
        let handle = backend.runtime.spawn(async move {
            let _permit = permit;
            upload.await
        });
        Ok(Box::new(RemoteStaged {
            runtime: backend.runtime.clone(),
            upload: Some(handle),
        }))
    }
}

/// An upload started by [`RemoteObject::finish`]; its commit waits for it.
struct RemoteStaged {
    runtime: Arc<Runtime>,
    upload: Option<JoinHandle<Result<()>>>,
}

impl StagedObject for RemoteStaged {
    fn commit(mut self: Box<Self>) -> Result<()> {
        let upload = self.upload.take().expect("committed once");
        match self.runtime.block_on(upload) {
            Ok(result) => result,
            Err(e) => Err(Error::io("upload", io::Error::other(e.to_string()))),
        }
    }
}

impl Drop for RemoteStaged {
    fn drop(&mut self) {
        // Not committed: stop the upload (a PUT cut short leaves nothing; an SFTP temp name
        // may stay behind, never listed).
        if let Some(upload) = self.upload.take() {
            upload.abort();
        }
    }
}

/// A small object held in memory, uploaded at commit.
struct MemoryStaged<'a> {
    backend: &'a RemoteBackend,
    path: String,
    data: Vec<u8>,
}

impl StagedObject for MemoryStaged<'_> {
    fn commit(self: Box<Self>) -> Result<()> {
        let backend = self.backend;
        backend.block_on(backend.upload(self.path, Buffer::from(self.data)))
    }
}

impl Backend for RemoteBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        // Fails early on a missing bucket, a refused connection or bad credentials.
        let listed = self.block_on(self.operator.list_with("").limit(1));
        match listed {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Err(Error::Io {
                path: self.location.clone().into(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "the bucket (or directory) does not exist; create it first",
                ),
            }),
            Err(e) => Err(self.error("", e)),
        }
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        if kind == ObjectKind::Config {
            return match self.block_on(self.operator.stat("config")) {
                Ok(meta) => Ok(vec![ObjectInfo {
                    name: "config".into(),
                    size: meta.content_length(),
                }]),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(self.error("config", e)),
            };
        }
        let dir = format!("{}/", kind.dir());
        let entries = match self.block_on(
            self.operator
                .list_with(&dir)
                .recursive(kind == ObjectKind::Pack),
        ) {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.error(&dir, e)),
        };
        let mut out: Vec<ObjectInfo> = entries
            .into_iter()
            .filter(|entry| entry.metadata().mode().is_file())
            .filter(|entry| !entry.name().starts_with('.') && !entry.name().is_empty())
            .map(|entry| ObjectInfo {
                name: entry.name().to_string(),
                size: entry.metadata().content_length(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let path = object_path(kind, name)?;
        // Whole objects (packs, for verify --read-data and prune) come in parallel pieces: one
        // stream from an object store is often slower than the link.
        let read = self
            .operator
            .read_with(&path)
            .chunk(READ_PIECE)
            .concurrent(self.connections.min(PIECES_IN_FLIGHT));
        match self.block_on(read) {
            Ok(buffer) => Ok(buffer.to_vec()),
            Err(e) => Err(self.error(&path, e)),
        }
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = object_path(kind, name)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = offset
            .checked_add(len)
            .ok_or_else(|| Error::invalid("read range", format!("{offset}+{len}")))?;
        let mut read = self.operator.read_with(&path).range(offset..end);
        if len > READ_PIECE as u64 {
            read = read
                .chunk(READ_PIECE)
                .concurrent(self.connections.min(PIECES_IN_FLIGHT));
        }
        let buffer = self.block_on(read).map_err(|e| self.error(&path, e))?;
        if buffer.len() as u64 != len {
            return Err(Error::Io {
                path: self.full(&path).into(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "asked for {len} bytes at offset {offset}, got {}",
                        buffer.len()
                    ),
                ),
            });
        }
        Ok(buffer.to_vec())
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        let path = object_path(kind, name)?;
        match self.block_on(self.operator.stat(&path)) {
            Ok(meta) => Ok(meta.content_length()),
            Err(e) => Err(self.error(&path, e)),
        }
    }

    fn write(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()> {
        self.stage(kind, name, data)?.commit()
    }

    fn stage<'a>(
        &'a self,
        kind: ObjectKind,
        name: &str,
        data: &[u8],
    ) -> Result<Box<dyn StagedObject + 'a>> {
        let path = object_path(kind, name)?;
        self.refuse_existing(&path)?;
        Ok(Box::new(MemoryStaged {
            backend: self,
            path,
            data: data.to_vec(),
        }))
    }

    fn create_object<'a>(&'a self, kind: ObjectKind) -> Result<Box<dyn ObjectWriter<'a> + 'a>> {
        std::fs::create_dir_all(&self.spool_dir).map_err(|e| Error::io(&self.spool_dir, e))?;
        let file =
            tempfile::tempfile_in(&self.spool_dir).map_err(|e| Error::io(&self.spool_dir, e))?;
        Ok(Box::new(RemoteObject {
            backend: self,
            kind,
            file: io::BufWriter::with_capacity(1 << 20, file),
        }))
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        let path = object_path(kind, name)?;
        // OpenDAL's delete succeeds on a missing object; the contract says NotFound.
        self.refuse_missing(&path)?;
        self.block_on(self.operator.delete(&path))
            .map_err(|e| self.error(&path, e))
    }

    fn concurrency(&self) -> usize {
        self.connections
    }

    fn is_remote(&self) -> bool {
        true
    }
}

impl RemoteBackend {
    fn refuse_missing(&self, path: &str) -> Result<()> {
        if !self.exists(path)? {
            return Err(Error::Io {
                path: self.full(path).into(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such object"),
            });
        }
        Ok(())
    }
}
