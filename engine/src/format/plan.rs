//! Prune plans: which packs a prune condemned, durable before any of them is deleted.
//!
//! A sealed file (magic `VAULTPLN`) with a JSON payload, named by its own BLAKE3 digest and
//! stored as `prune/<id>`. It is deleted after the last condemned pack
//! (format-spec/09-rotation.md).

use serde::{Deserialize, Serialize};

use super::{sealed, DecodeError, OBJECT_VERSION};
use crate::id::PackId;
use crate::keys::{self, Encryption};

pub const PLAN_MAGIC: [u8; 8] = *b"VAULTPLN";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    /// RFC 3339, when the plan was written.
    pub time: String,
    pub host: String,
    /// Packs to delete (hex ids). None holds a blob that a snapshot in `snapshots` reaches
    /// without another copy elsewhere.
    pub condemned: Vec<String>,
    /// Packs written by this prune to hold the live blobs of repacked packs (hex ids).
    pub written: Vec<String>,
    /// The snapshots whose reachable blobs were marked live (hex ids). Snapshots not listed
    /// here were committed later and are checked again before any pack is deleted.
    pub snapshots: Vec<String>,
}

impl Plan {
    pub fn condemned_packs(&self) -> Vec<PackId> {
        self.condemned
            .iter()
            .filter_map(|h| PackId::from_hex(h))
            .collect()
    }
}

/// Returns the plan's file and its id (BLAKE3 of the file).
/// In an encrypted repository the JSON payload is sealed (associated data: magic and version).
pub fn encode(encryption: &Encryption, plan: &Plan) -> ([u8; 32], Vec<u8>) {
    let payload = serde_json::to_vec(plan).expect("plan serializes");
    let ad = keys::file_ad(&PLAN_MAGIC, OBJECT_VERSION);
    let file = sealed::encode(PLAN_MAGIC, OBJECT_VERSION, &encryption.seal(&ad, payload));
    (*blake3::hash(&file).as_bytes(), file)
}

pub fn decode(encryption: &Encryption, data: &[u8]) -> Result<Plan, DecodeError> {
    let sealed_payload = sealed::decode(PLAN_MAGIC, OBJECT_VERSION, data)?;
    let ad = keys::file_ad(&PLAN_MAGIC, OBJECT_VERSION);
    let mut scratch = Vec::new();
    let payload = encryption.open(&ad, sealed_payload, &mut scratch)?;
    let plan: Plan =
        serde_json::from_slice(payload).map_err(|e| DecodeError::invalid("plan", e.to_string()))?;
    if plan.version != OBJECT_VERSION {
        return Err(DecodeError::invalid(
            "plan",
            format!("version field {} disagrees with the envelope", plan.version),
        ));
    }
    if plan.condemned.iter().any(|h| PackId::from_hex(h).is_none()) {
        return Err(DecodeError::invalid(
            "plan",
            "a condemned pack id is not 64 hex characters",
        ));
    }
    Ok(plan)
}
