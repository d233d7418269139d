//! The HTTP layer: routes, authentication, path checking, request limits, downloads.
//!
//! Every route is a GET except `POST /login`; nothing writes, deletes or restores (axum
//! answers 405 to any other method). Engine calls run on the blocking pool, at most
//! [`Limits::work`] at a time; downloads stream through bounded channels, at most
//! [`Limits::downloads`] at a time (503 beyond).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, Semaphore};
use vault_engine::export::{self, ExportFormat, ExportOptions};
use vault_engine::format::tree::EntryKind;
use vault_engine::repo::{content, lookup_path};
use vault_engine::NoProgress;

use crate::data::Dashboard;
use crate::error::ServeError;
use crate::html;
use crate::Limits;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");
/// The cookie the login form sets.
const COOKIE: &str = "vault_token";
/// Bytes a download's writer gathers before handing them to the connection.
const PIECE: usize = 64 << 10;
/// Pieces in flight between the engine's thread and the connection (the backpressure).
const PIECES_IN_FLIGHT: usize = 4;

pub struct AppState {
    pub dashboard: Dashboard,
    pub token: Option<String>,
    pub limits: Limits,
    downloads: Arc<Semaphore>,
    work: Arc<Semaphore>,
}

impl AppState {
    pub fn new(dashboard: Dashboard, token: Option<String>, limits: Limits) -> AppState {
        AppState {
            dashboard,
            token,
            downloads: Arc::new(Semaphore::new(limits.downloads)),
            work: Arc::new(Semaphore::new(limits.work)),
            limits,
        }
    }
}

type Shared = Arc<AppState>;

/// What a request failed with: its status and a message (HTML for pages, text for the API).
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
        }
    }
    fn bad_path(why: &str) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, format!("bad path: {why}"))
    }
}

impl From<ServeError> for HttpError {
    fn from(error: ServeError) -> HttpError {
        use vault_engine::Error as E;
        let status = match &error {
            ServeError::Engine(E::NoSuchSnapshot { .. } | E::NoSuchPath { .. }) => {
                StatusCode::NOT_FOUND
            }
            ServeError::Engine(
                E::AmbiguousSnapshot { .. } | E::NotAFile { .. } | E::InvalidArgument { .. },
            ) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError::new(status, error.to_string())
    }
}

impl From<vault_engine::Error> for HttpError {
    fn from(error: vault_engine::Error) -> HttpError {
        ServeError::from(error).into()
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html::error(self.status.as_u16(), &self.message),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// An API error: the same status, the message as JSON.
struct ApiError(HttpError);

impl<E: Into<HttpError>> From<E> for ApiError {
    fn from(error: E) -> ApiError {
        ApiError(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json(&serde_json::json!({ "error": self.0.message }));
        *response.status_mut() = self.0.status;
        response
    }
}

pub fn router(state: Shared) -> Router {
    let body_limit = state.limits.body_bytes;
    Router::new()
        .route("/", get(overview_page))
        .route("/apps/{app}", get(app_page))
        .route("/snapshots/{id}", get(snapshot_page))
        .route("/snapshots/{id}/tree/{*path}", get(snapshot_page))
        .route("/snapshots/{id}/diff", get(diff_page))
        .route("/verify", get(verify_page))
        .route("/api/overview", get(api_overview))
        .route("/api/apps/{app}", get(api_app))
        .route("/api/snapshots/{id}", get(api_snapshot))
        .route("/api/snapshots/{id}/tree", get(api_tree))
        .route("/api/snapshots/{id}/tree/{*path}", get(api_tree))
        .route("/api/snapshots/{id}/diff", get(api_diff))
        .route("/api/verify", get(api_verify))
        .route("/metrics", get(metrics))
        .route("/download/{id}/file/{*path}", get(download_file))
        .route("/download/{id}/tar", get(download_tar))
        .route("/download/{id}/tar/{*path}", get(download_tar))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css", STYLE) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .route("/login", get(login_page).post(login))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

fn asset(kind: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        text,
    )
        .into_response()
}

// ------------------------------------------------------------------------------------------
// Authentication
// ------------------------------------------------------------------------------------------

/// Whether `given` is the token, compared in constant time.
fn token_matches(token: &str, given: &str) -> bool {
    token.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The token a request carries: `Authorization: Bearer …`, else the login cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

async fn authenticate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    if presented(request.headers()).is_some_and(|given| token_matches(token, &given)) {
        return next.run(request).await;
    }
    let api = path.starts_with("/api/") || path == "/metrics" || path.starts_with("/download/");
    let mut response = if api {
        (
            StatusCode::UNAUTHORIZED,
            "a token is required: send `Authorization: Bearer TOKEN`\n",
        )
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html::login(
                presented(request.headers())
                    .is_some()
                    .then_some("That token is not valid."),
            ),
        )
            .into_response()
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"vault\""),
    );
    response
}

async fn login_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html::login(None),
    )
        .into_response()
}

/// `POST /login` with `token=…` (form-encoded): sets the cookie and goes to the overview.
async fn login(State(state): State<Shared>, method: Method, body: Bytes) -> Response {
    debug_assert_eq!(method, Method::POST);
    let Some(token) = &state.token else {
        return axum::response::Redirect::to("/").into_response();
    };
    let given = std::str::from_utf8(&body)
        .ok()
        .and_then(|form| {
            form.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == "token")
                .map(|(_, value)| value.replace('+', " "))
        })
        .map(|value| percent_decode_str(&value).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    if !token_matches(token, &given) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html::login(Some("That token is not valid.")),
        )
            .into_response();
    }
    // The token itself is the cookie: HttpOnly (no script reads it), SameSite=Strict (no other
    // site's page sends it).
    let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
    let mut response = axum::response::Redirect::to("/").into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => {
            HttpError::new(StatusCode::BAD_REQUEST, "the token cannot be a cookie").into_response()
        }
    }
}

// ------------------------------------------------------------------------------------------
// Paths
// ------------------------------------------------------------------------------------------

/// The snapshot path that the raw (still percent-encoded) URL path names after its first
/// `skip` segments, e.g. `/api/snapshots/ID/tree/srv/a%20b` with `skip` 5 -> `/srv/a b`.
///
/// Refused (400): `..` and `.` segments, empty segments (`//`: an absolute path), a segment that
/// decodes to something holding `/` or `\`, NUL, or bytes that are not UTF-8. The result is
/// always an absolute path inside the snapshot; the engine resolves it in the snapshot's trees
/// alone, never on the server's filesystem.
pub fn snapshot_path(raw: &str, skip: usize) -> Result<String, HttpError> {
    let mut segments = raw.split('/').skip(skip + 1).peekable();
    let mut parts = Vec::new();
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            if segments.peek().is_none() && !parts.is_empty() {
                break; // a trailing slash
            }
            if segments.peek().is_none() && parts.is_empty() {
                break; // the root
            }
            return Err(HttpError::bad_path(
                "empty segment (an absolute path or `//`)",
            ));
        }
        let decoded: Vec<u8> = percent_decode_str(segment).collect();
        if decoded.contains(&b'/') || decoded.contains(&b'\\') {
            return Err(HttpError::bad_path("encoded slash in a name"));
        }
        if decoded.contains(&0) {
            return Err(HttpError::bad_path("NUL in a name"));
        }
        if decoded == b".." || decoded == b"." {
            return Err(HttpError::bad_path("`.` and `..` are not allowed"));
        }
        let name = String::from_utf8(decoded).map_err(|_| HttpError::bad_path("not UTF-8"))?;
        parts.push(name);
    }
    Ok(format!("/{}", parts.join("/")))
}

// ------------------------------------------------------------------------------------------
// Pages and API
// ------------------------------------------------------------------------------------------

/// Runs `f` on the blocking pool, at most [`Limits::work`] at a time.
async fn blocking<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&Dashboard) -> Result<T, ServeError> + Send + 'static,
) -> Result<T, HttpError> {
    let _permit = state
        .work
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state.dashboard))
        .await
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(HttpError::from)
}

fn html_response(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

fn not_found(what: &str) -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, format!("no such {what}"))
}

async fn overview_page(State(state): State<Shared>) -> Result<Response, HttpError> {
    let overview = blocking(&state, |d| d.overview()).await?;
    Ok(html_response(html::overview(&overview)))
}

async fn app_page(
    State(state): State<Shared>,
    Path(app): Path<String>,
) -> Result<Response, HttpError> {
    let detail = blocking(&state, move |d| d.app(&app)).await?;
    let detail = detail.ok_or_else(|| not_found("application"))?;
    Ok(html_response(html::app(&detail)))
}

/// `/snapshots/{id}` and `/snapshots/{id}/tree/{path}`.
async fn snapshot_page(State(state): State<Shared>, uri: Uri) -> Result<Response, HttpError> {
    let raw = uri.path();
    let id = raw.split('/').nth(2).unwrap_or_default().to_string();
    let path = if raw.split('/').nth(3) == Some("tree") {
        snapshot_path(raw, 3)?
    } else {
        "/".into()
    };
    let (detail, tree) =
        blocking(&state, move |d| Ok((d.snapshot(&id)?, d.tree(&id, &path)?))).await?;
    Ok(html_response(html::snapshot(&detail, &tree)))
}

async fn diff_page(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let view = blocking(&state, move |d| d.diff(&id)).await?;
    Ok(html_response(html::diff(&view)))
}

async fn verify_page(State(state): State<Shared>) -> Result<Response, HttpError> {
    let view = blocking(&state, |d| d.verify()).await?;
    Ok(html_response(html::verify(&view)))
}

type Api = Result<Response, ApiError>;

fn json<T: serde::Serialize>(value: &T) -> Response {
    let mut body = serde_json::to_vec_pretty(value).expect("reports serialize");
    body.push(b'\n');
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn api_overview(State(state): State<Shared>) -> Api {
    Ok(json(&blocking(&state, |d| d.overview()).await?))
}

async fn api_app(State(state): State<Shared>, Path(app): Path<String>) -> Api {
    let detail = blocking(&state, move |d| d.app(&app)).await?;
    Ok(json(&detail.ok_or_else(|| not_found("application"))?))
}

async fn api_snapshot(State(state): State<Shared>, Path(id): Path<String>) -> Api {
    Ok(json(&blocking(&state, move |d| d.snapshot(&id)).await?))
}

/// `/api/snapshots/{id}/tree[/{path}]`: `vault ls` of one directory.
async fn api_tree(State(state): State<Shared>, uri: Uri) -> Api {
    let raw = uri.path();
    let id = raw.split('/').nth(3).unwrap_or_default().to_string();
    let path = snapshot_path(raw, 4)?;
    Ok(json(&blocking(&state, move |d| d.tree(&id, &path)).await?))
}

async fn api_diff(State(state): State<Shared>, Path(id): Path<String>) -> Api {
    Ok(json(&blocking(&state, move |d| d.diff(&id)).await?))
}

async fn api_verify(State(state): State<Shared>) -> Api {
    Ok(json(&blocking(&state, |d| d.verify()).await?))
}

/// The Prometheus text of `vault run`'s textfile ([`vault_engine::ops::metrics::render`]);
/// needs `--config`.
async fn metrics(State(state): State<Shared>) -> Result<Response, HttpError> {
    let text = blocking(&state, |d| match (&d.config, &d.state) {
        (Some(config), Some(state)) => Ok(Some(vault_engine::ops::metrics::render(
            config, state,
        )?)),
        _ => Ok(None),
    })
    .await?
    .ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "metrics come from the recorded state of `vault run`: start `vault serve --config FILE`",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

// ------------------------------------------------------------------------------------------
// Downloads
// ------------------------------------------------------------------------------------------

/// The pieces of a download, from the engine's thread to the connection.
type Piece = Result<Bytes, std::io::Error>;

/// Takes a download slot, or says to retry.
fn download_slot(state: &Shared) -> Result<tokio::sync::OwnedSemaphorePermit, HttpError> {
    state.downloads.clone().try_acquire_owned().map_err(|_| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} downloads are in progress (the limit); retry when one has finished",
                state.limits.downloads
            ),
        )
    })
}

/// The error that stops the engine when the client has gone.
fn gone() -> vault_engine::Error {
    vault_engine::Error::Io {
        path: "download".into(),
        source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"),
    }
}

/// `filename="…"` with only safe characters.
fn disposition(name: &str) -> HeaderValue {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A `Range` that lies outside the file (answered 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A single `bytes=` range of a file of `size` bytes: `Ok(None)` for none (or one this
/// server does not serve partially: several ranges), `Err` when it cannot be satisfied.
pub fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (start, end) = (start.trim(), end.trim());
    let (first, last) = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| Unsatisfiable)?;
        if suffix == 0 || size == 0 {
            return Err(Unsatisfiable);
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let first: u64 = start.parse().map_err(|_| Unsatisfiable)?;
        let last = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .min(size.saturating_sub(1))
        };
        (first, last)
    };
    if first >= size || first > last {
        return Err(Unsatisfiable);
    }
    Ok(Some((first, last)))
}

/// `/download/{id}/file/{path}`: one file, streamed, with `Range` support.
async fn download_file(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let raw = uri.path();
    let id = raw.split('/').nth(2).unwrap_or_default().to_string();
    let path = snapshot_path(raw, 3)?;
    if path == "/" {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "name a file"));
    }
    let found = {
        let path = path.clone();
        blocking(&state, move |d| {
            let info = d.snapshot_info(&id)?;
            let entry = lookup_path(&d.repo, &info, &path)?;
            match entry.kind {
                EntryKind::File(data) => Ok(Ok((info, data))),
                _ => Ok(Err(())),
            }
        })
        .await?
    };
    let Ok((_info, data)) = found else {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("{path} is not a regular file: download a directory as .tar.zst"),
        ));
    };
    let size = data.size;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size))
        .unwrap_or(Ok(None));
    let (status, first, len) = match range {
        Err(Unsatisfiable) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response())
        }
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((first, last))) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
    };
    let permit = download_slot(&state)?;
    let (tx, rx) = mpsc::channel::<Piece>(PIECES_IN_FLIGHT);
    let shared = state.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let repo = &shared.dashboard.repo;
        let result = repo.io_scope(|| {
            content::read_range(repo, &data, first, len, |piece| {
                for part in piece.chunks(PIECE) {
                    tx.blocking_send(Ok(Bytes::copy_from_slice(part)))
                        .map_err(|_| gone())?;
                }
                Ok(())
            })
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let name = path.rsplit('/').next().unwrap_or("file").to_string();
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_DISPOSITION, disposition(&name));
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{}/{size}", first + len - 1),
        );
    }
    response
        .body(Body::from_stream(receiver_stream(rx)))
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn receiver_stream(rx: mpsc::Receiver<Piece>) -> impl futures_util::Stream<Item = Piece> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    })
}

/// A [`std::io::Write`] that hands what is written to the connection in [`PIECE`]-sized
/// pieces, blocking while [`PIECES_IN_FLIGHT`] are waiting: the archive is never held whole.
struct ChannelWriter {
    tx: mpsc::Sender<Piece>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PIECE),
        ));
        self.tx.blocking_send(Ok(piece)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = PIECE - self.buffer.len();
        let n = bytes.len().min(room);
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() >= PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// `/download/{id}/tar[/{path}]`: the snapshot, or a directory of it, as `.tar.zst`, written
/// by `vault export`'s code path ([`export::export`]) as the client reads it.
async fn download_tar(State(state): State<Shared>, uri: Uri) -> Result<Response, HttpError> {
    let raw = uri.path();
    let id = raw.split('/').nth(2).unwrap_or_default().to_string();
    let path = snapshot_path(raw, 3)?;
    let info = {
        let (id, path) = (id.clone(), path.clone());
        blocking(&state, move |d| {
            let info = d.snapshot_info(&id)?;
            lookup_path(&d.repo, &info, &path)?;
            Ok(info)
        })
        .await?
    };
    let permit = download_slot(&state)?;
    let (tx, rx) = mpsc::channel::<Piece>(PIECES_IN_FLIGHT);
    let shared = state.clone();
    let subpath = (path != "/").then(|| path.clone());
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buffer: Vec::with_capacity(PIECE),
        };
        let options = ExportOptions {
            subpath,
            format: ExportFormat::TarZstd { level: 3 },
        };
        let result = export::export(
            &shared.dashboard.repo,
            &info,
            &options,
            &mut writer,
            &NoProgress,
        )
        .and_then(|_| {
            std::io::Write::flush(&mut writer).map_err(|e| vault_engine::Error::Io {
                path: "download".into(),
                source: e,
            })
        });
        if let Err(e) = result {
            // The client sees a cut archive, never a complete-looking one.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let name = match path.rsplit('/').next().filter(|n| !n.is_empty()) {
        Some(dir) => format!("snapshot-{}-{dir}.tar.zst", &id.get(..8).unwrap_or(&id)),
        None => format!("snapshot-{}.tar.zst", &id.get(..8).unwrap_or(&id)),
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/zstd")
        .header(header::CONTENT_DISPOSITION, disposition(&name))
        .body(Body::from_stream(receiver_stream(rx)))
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_snapshot() {
        let ok = |raw: &str| snapshot_path(raw, 2).map_err(|e| e.message);
        assert_eq!(ok("/x/id/srv/a%20b").unwrap(), "/srv/a b");
        assert_eq!(ok("/x/id/srv/dir/").unwrap(), "/srv/dir");
        assert_eq!(ok("/x/id").unwrap(), "/");
        assert_eq!(ok("/x/id/").unwrap(), "/");
        for bad in [
            "/x/id/../etc",
            "/x/id/srv/%2e%2e/x",
            "/x/id/srv%2Fetc",
            "/x/id//etc/passwd",
            "/x/id/a%00b",
            "/x/id/.",
            "/x/id/a%5Cb",
            "/x/id/%ff",
        ] {
            assert!(ok(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=9-3", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
