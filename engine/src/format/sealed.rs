//! The sealed-file envelope shared by the config and snapshot manifests.
//!
//! ```text
//! magic[8] | version u32 | payload_len u32 | payload | blake3(everything before)[32]
//! ```
//! The payload is UTF-8 JSON. The checksum detects any damage; the version lets a reader refuse a
//! format it does not know before it looks at the payload.

use super::{check_limit, DecodeError, Put, Reader};
use crate::limits::MAX_SEALED_FILE_SIZE;

pub const CONFIG_MAGIC: [u8; 8] = *b"VAULTCFG";
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VAULTSNP";
const CHECKSUM_LEN: usize = 32;

pub fn encode(magic: [u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + payload.len() + CHECKSUM_LEN);
    out.extend_from_slice(&magic);
    out.put_u32(version);
    out.put_u32(payload.len() as u32);
    out.extend_from_slice(payload);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Returns the payload of a sealed file of version `supported`. The version is checked right
/// after the magic, before anything else, so a file of a newer format (a different envelope)
/// is reported as [`DecodeError::Version`], not as damage.
pub fn decode(magic: [u8; 8], supported: u32, data: &[u8]) -> Result<&[u8], DecodeError> {
    decode_versioned(magic, |v| v == supported, data).map(|(_, payload)| payload)
}

/// [`decode`] for a file that may carry any version `supported` accepts: returns the version too.
pub fn decode_versioned(
    magic: [u8; 8],
    supported: impl Fn(u32) -> bool,
    data: &[u8],
) -> Result<(u32, &[u8]), DecodeError> {
    let mut r = Reader::new(data);
    if r.array::<8>()? != magic {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u32()?;
    if !supported(version) {
        return Err(DecodeError::Version(version));
    }
    check_limit("sealed file size", data.len() as u64, MAX_SEALED_FILE_SIZE)?;
    let len = r.u32()? as usize;
    let payload = r.bytes(len)?;
    let body_len = 16 + len;
    let sum: [u8; CHECKSUM_LEN] = r.array()?;
    r.finish()?;
    if blake3::hash(&data[..body_len]).as_bytes() != &sum {
        return Err(DecodeError::Checksum);
    }
    Ok((version, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_detected() {
        let file = encode(CONFIG_MAGIC, 1, b"{\"a\":1}");
        assert_eq!(decode(CONFIG_MAGIC, 1, &file).unwrap(), &b"{\"a\":1}"[..]);
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(
                decode(CONFIG_MAGIC, 1, &bad).is_err(),
                "flip at {i} undetected"
            );
        }
        assert!(decode(SNAPSHOT_MAGIC, 1, &file).is_err());
        assert!(decode(CONFIG_MAGIC, 1, &file[..file.len() - 1]).is_err());
    }

    #[test]
    fn a_newer_version_is_reported_as_such_whatever_follows() {
        let mut file = encode(CONFIG_MAGIC, 3, b"{}");
        file.truncate(14);
        assert_eq!(decode(CONFIG_MAGIC, 1, &file), Err(DecodeError::Version(3)));
    }
}
