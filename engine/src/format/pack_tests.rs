//! Tests of the pack codec (format/pack.rs): round trips, every flipped byte, delta chunks and
//! their base table.
use super::*;
use proptest::prelude::*;

fn build(blobs: &[Vec<u8>]) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
    build_with(&Encryption::none(), blobs)
}

fn build_with(enc: &Encryption, blobs: &[Vec<u8>]) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
    let mut b = PackBuilder::new();
    for blob in blobs {
        let id = enc.blob_id(BlobKind::Chunk, blob);
        let z = zstd::bulk::compress(blob, 1).unwrap();
        let ad = blob_ad(BlobKind::Chunk, Encoding::Zstd, blob.len() as u32, &id);
        let stored = enc.seal(&ad, z);
        b.add(
            id,
            BlobKind::Chunk,
            Encoding::Zstd,
            blob.len() as u32,
            &stored,
        );
    }
    b.finish(enc)
}

fn stored<'a>(data: &'a [u8], e: &BlobEntry) -> &'a [u8] {
    &data[e.offset as usize..(e.offset + e.stored_len as u64) as usize]
}

#[test]
fn encrypted_pack_round_trips_and_detects_flips_and_swapped_blobs() {
    let enc = Encryption::with_keys(crate::keys::MasterKeys::random());
    let blobs = vec![b"first blob".repeat(30), b"second blob".repeat(30)];
    let (_, data, entries) = build_with(&enc, &blobs);
    assert_eq!(decode_pack(&enc, &data).unwrap(), entries);
    // Without the key the trailer does not open.
    assert!(decode_pack(&Encryption::none(), &data).is_err());
    let other = Encryption::with_keys(crate::keys::MasterKeys::random());
    assert_eq!(decode_pack(&other, &data), Err(DecodeError::Authentication));
    for (e, blob) in entries.iter().zip(&blobs) {
        let s = stored(&data, e);
        assert_eq!(
            &open_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, s).unwrap(),
            blob
        );
        assert!(check_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, s, None).is_ok());
    }
    // Blob 1's bytes under entry 0 (a swap): authentication fails.
    let (a, b) = (entries[0], entries[1]);
    assert_eq!(
        check_blob(
            &enc,
            a.id,
            a.kind,
            a.encoding,
            a.raw_len,
            stored(&data, &b),
            None
        ),
        Err(DecodeError::Authentication)
    );
    for i in 0..data.len() {
        let mut bad = data.clone();
        bad[i] ^= 0x01;
        let whole = decode_pack(&enc, &bad).and_then(|entries| {
            entries.iter().try_for_each(|e| {
                check_blob(
                    &enc,
                    e.id,
                    e.kind,
                    e.encoding,
                    e.raw_len,
                    stored(&bad, e),
                    None,
                )
            })
        });
        // The header's version 5 flipped into 4 is a version 4 pack without deltas,
        // which it is: only the pack's name tells (as verify checks).
        let other_version = i == 8 && super::super::supported(bad[8] as u32);
        assert!(whole.is_err() || other_version, "flip at {i} undetected");
    }
}

/// A delta of `raw` against `base` as the writer makes it (zstd with a raw-content
/// dictionary).
fn delta(raw: &[u8], base: &[u8]) -> Vec<u8> {
    let mut cctx = zstd::zstd_safe::CCtx::create();
    let mut out = Vec::with_capacity(raw.len() + 64);
    cctx.compress_using_dict(&mut out, raw, base, 1).unwrap();
    out
}

fn rows(n: usize, tag: &str) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{i}\tuser{i}@example.com\t{tag}\n").into_bytes())
        .collect()
}

/// A version 5 pack with a whole chunk and a delta of it, under `enc`.
fn delta_pack(enc: &Encryption) -> (Vec<u8>, Vec<BlobEntry>, Vec<u8>, Vec<u8>) {
    let base = rows(500, "old");
    let mut raw = base.clone();
    raw.splice(4000..4020, b"an updated row\n".iter().copied());
    let base_id = enc.blob_id(BlobKind::Chunk, &base);
    let id = enc.blob_id(BlobKind::Chunk, &raw);
    let encoding = Encoding::Delta { base: base_id };
    let mut b = PackBuilder::with_capacity(5, 0);
    let ad = blob_ad(BlobKind::Chunk, Encoding::Raw, base.len() as u32, &base_id);
    b.add(
        base_id,
        BlobKind::Chunk,
        Encoding::Raw,
        base.len() as u32,
        &enc.seal(&ad, base.clone()),
    );
    let ad = blob_ad(BlobKind::Chunk, encoding, raw.len() as u32, &id);
    let stored = enc.seal(&ad, delta(&raw, &base));
    b.add(id, BlobKind::Chunk, encoding, raw.len() as u32, &stored);
    let (_, data, entries) = b.finish(enc);
    (data, entries, base, raw)
}

#[test]
fn delta_chunks_round_trip_with_their_base_and_fail_without_or_with_another() {
    for enc in [
        Encryption::none(),
        Encryption::with_keys(crate::keys::MasterKeys::random()),
    ] {
        let (data, entries, base, raw) = delta_pack(&enc);
        assert_eq!(decode_pack(&enc, &data).unwrap(), entries);
        let d = entries[1];
        assert_eq!(d.encoding.base(), Some(entries[0].id));
        assert!(d.stored_len < 600, "delta of {} bytes", d.stored_len);
        let mut out = Vec::new();
        open_blob_append(
            &enc,
            d.id,
            d.kind,
            d.encoding,
            d.raw_len,
            stored(&data, &d),
            Some(&base),
            &mut out,
        )
        .unwrap();
        assert!(out == raw);
        assert!(check_blob(
            &enc,
            d.id,
            d.kind,
            d.encoding,
            d.raw_len,
            stored(&data, &d),
            Some(&base)
        )
        .is_ok());
        // Without its base, or with another chunk as base, it does not decode.
        assert!(open_blob(&enc, d.id, d.kind, d.encoding, d.raw_len, stored(&data, &d)).is_err());
        let other = rows(500, "new");
        assert!(check_blob(
            &enc,
            d.id,
            d.kind,
            d.encoding,
            d.raw_len,
            stored(&data, &d),
            Some(&other)
        )
        .is_err());
        // A base starting with zstd's dictionary magic is never one.
        let mut magic = base.clone();
        magic[..4].copy_from_slice(&DICTIONARY_MAGIC);
        assert!(!usable_base(&magic));
        assert!(check_blob(
            &enc,
            d.id,
            d.kind,
            d.encoding,
            d.raw_len,
            stored(&data, &d),
            Some(&magic)
        )
        .is_err());
    }
}

#[test]
fn an_encrypted_delta_is_bound_to_its_base() {
    let enc = Encryption::with_keys(crate::keys::MasterKeys::random());
    let (data, entries, base, _) = delta_pack(&enc);
    let d = entries[1];
    // The same stored bytes under an entry naming another base fail authentication.
    let other = Encoding::Delta {
        base: BlobId([9; 32]),
    };
    assert_eq!(
        check_blob(
            &enc,
            d.id,
            d.kind,
            other,
            d.raw_len,
            stored(&data, &d),
            Some(&base)
        ),
        Err(DecodeError::Authentication)
    );
}

#[test]
fn the_base_table_must_match_the_delta_entries() {
    let enc = Encryption::none();
    let (_, entries, _, _) = delta_pack(&enc);
    let trailer = encode_trailer(&entries);
    assert_eq!(trailer.len(), 4 + 2 * ENTRY_LEN + BASE_LEN + CHECKSUM_LEN);
    let end = entries[1].offset + entries[1].stored_len as u64;
    assert_eq!(decode_trailer_in(&trailer, end, false).unwrap(), entries);
    let rechecksum = |mut body: Vec<u8>| {
        let sum = blake3::hash(&body);
        body.extend_from_slice(sum.as_bytes());
        body
    };
    let body = &trailer[..trailer.len() - CHECKSUM_LEN];
    // One base id short, one too many.
    let short = rechecksum(body[..body.len() - BASE_LEN].to_vec());
    assert!(decode_trailer_in(&short, end, false).is_err());
    let mut long = body.to_vec();
    long.extend_from_slice(&[7; BASE_LEN]);
    assert!(decode_trailer_in(&rechecksum(long), end, false).is_err());
    // A delta that is not a chunk.
    let mut tree = body.to_vec();
    tree[4 + ENTRY_LEN + 32] = BlobKind::Tree as u8;
    assert!(decode_trailer_in(&rechecksum(tree), end, false).is_err());
    // A version 4 pack cannot hold deltas.
    let (mut data, _, _, _) = delta_pack(&enc);
    data[8] = 4;
    assert!(decode_pack(&enc, &data).is_err());
    data[8] = 6;
    assert_eq!(decode_pack(&enc, &data), Err(DecodeError::Version(6)));
}

proptest! {
    #[test]
    fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..20)) {
        let (id, data, entries) = build(&blobs);
        prop_assert_eq!(PackId::digest(&data), id);
        let decoded = decode_pack(&Encryption::none(), &data).unwrap();
        prop_assert_eq!(&decoded, &entries);
        for (e, blob) in decoded.iter().zip(&blobs) {
            let stored = &data[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
            prop_assert_eq!(&open_blob(&Encryption::none(), e.id, e.kind, e.encoding, e.raw_len, stored).unwrap(), blob);
        }
    }

    #[test]
    fn decode_pack_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_pack(&Encryption::none(), &data);
    }
}

#[test]
fn flipped_trailer_byte_is_detected() {
    let (_, data, _) = build(&[b"hello world".to_vec(), vec![7u8; 5000]]);
    let trailer_start = data.len() - FOOTER_LEN - (4 + 2 * ENTRY_LEN + 32);
    for i in trailer_start..data.len() {
        let mut bad = data.clone();
        bad[i] ^= 0x10;
        assert!(
            decode_pack(&Encryption::none(), &bad).is_err(),
            "flip at {i} undetected"
        );
    }
}

#[test]
fn flipped_blob_byte_is_detected() {
    let blob = b"some compressible text some compressible text".repeat(20);
    let (_, data, entries) = build(std::slice::from_ref(&blob));
    let e = entries[0];
    for i in e.offset..e.offset + e.stored_len as u64 {
        let mut bad = data.clone();
        bad[i as usize] ^= 0x04;
        let stored = &bad[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        assert!(open_blob(
            &Encryption::none(),
            e.id,
            e.kind,
            e.encoding,
            e.raw_len,
            stored
        )
        .is_err());
    }
}
