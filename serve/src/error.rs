//! What can stop `vault serve`, and what a request can fail with.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Listening beyond loopback without a token would publish every backup to the network.
    #[error("refusing to listen on {addr} without --token-file: only loopback addresses may serve without a token")]
    InsecureListen { addr: SocketAddr },
    #[error("token file {}: {reason}", path.display())]
    TokenFile { path: PathBuf, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Engine(#[from] vault_engine::Error),
}

impl ServeError {
    /// True when the operator asked for something that cannot be done (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ServeError::InsecureListen { .. } | ServeError::TokenFile { .. }
        ) || matches!(self, ServeError::Engine(e) if e.kind() == vault_engine::ErrorKind::Usage)
    }
}
