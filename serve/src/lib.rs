//! `vault serve`: a read-only web dashboard and JSON API over one repository and, with the
//! operations config, the state `vault run` records.
//!
//! ```text
//! request ─► http (auth, path checks, limits) ─► data (engine reports) ─► html / JSON
//!                                    └─ downloads: content::read_range / export::export
//!                                       on a blocking thread ─► bounded channel ─► socket
//! ```
//! Layers: [`data`] gathers, from the engine's APIs only; [`html`] and [`plot`] render; the
//! `http` module routes. Invariants: no route writes, deletes or restores; a path parameter is
//! resolved inside the snapshot's trees only, after `..`, `.`, empty segments, encoded
//! slashes and NUL are refused; memory per download is bounded by the channel, not the size.

pub mod data;
mod error;
pub mod escape;
pub mod html;
mod http;
pub mod plot;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use data::Dashboard;
pub use error::ServeError;
pub use http::{parse_range, snapshot_path};

/// Bounds on what clients can make the server do at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Downloads streaming at once; more are answered 503.
    pub downloads: usize,
    /// Engine calls (pages, API) running at once; more wait.
    pub work: usize,
    /// Largest request body accepted (only the login form has one).
    pub body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            downloads: 4,
            work: 4,
            body_bytes: 4096,
        }
    }
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Required off loopback ([`check_listen`]).
    pub token: Option<String>,
    pub limits: Limits,
}

/// Refuses to listen beyond loopback without a token.
pub fn check_listen(listen: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if !listen.ip().is_loopback() && token.is_none() {
        return Err(ServeError::InsecureListen { addr: listen });
    }
    Ok(())
}

/// The token in `path`: its first line, which must not be empty.
pub fn read_token(path: &Path) -> Result<String, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|e| ServeError::TokenFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.len() < 16 || token.bytes().any(|b| !b.is_ascii_graphic() || b == b';') {
        return Err(ServeError::TokenFile {
            path: path.to_path_buf(),
            reason: "the token must be at least 16 printable characters without spaces or `;` (e.g. `openssl rand -hex 32`)".into(),
        });
    }
    Ok(token)
}

/// Serves `dashboard` until the process ends; `ready` is called with the bound address once
/// the socket listens.
pub fn serve(
    dashboard: Dashboard,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    check_listen(options.listen, options.token.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(options.limits.work + options.limits.downloads + 2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(ServeError::Runtime)?;
        ready(addr);
        let state = Arc::new(http::AppState::new(
            dashboard,
            options.token,
            options.limits,
        ));
        axum::serve(listener, http::router(state))
            .await
            .map_err(ServeError::Runtime)
    })
}
