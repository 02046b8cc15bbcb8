//! Record verification: the CID first, then the Ed25519 signature, with libsodium's verdicts.
//!
//! Python checks `id == sha256(canonical)` by exact string comparison, then verifies with
//! libsodium (`crypto_sign_verify_detached`), which rejects: a non-canonical `S` (≥ ℓ), an `R`
//! or public key on libsodium's small-order list, a non-canonical public-key encoding, and any
//! signature whose recomputed `R` differs byte for byte (the cofactorless equation). We check the
//! same things in the same way: `ed25519-dalek`'s cofactorless `verify` (which also rejects
//! `S` ≥ ℓ) plus the same list comparisons, so no `R` has to be decompressed. Hex decoding
//! follows Python's `bytes.fromhex` (either case, ASCII whitespace allowed between byte pairs).
//!
//! Decompressing a public key is a fifth of a verification, and a mesh has few publishers, so
//! [`KeyCache`] keeps prepared keys.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::batch::{BatchItem, verify_grouped};
use crate::record::ExperimentRecord;

/// Why a record does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("CID mismatch: record says {claimed:?}, canonical bytes hash to {computed}")]
    CidMismatch { claimed: String, computed: String },
    #[error("node_id is not a valid Ed25519 public key (32 hex-encoded bytes, canonical, not small-order)")]
    BadPublicKey,
    #[error("signature is not 64 hex-encoded bytes")]
    MalformedSignature,
    #[error("signature does not verify against node_id")]
    BadSignature,
}

/// libsodium's `ge25519_has_small_order` list: encodings (sign bit ignored) of points of order
/// 1, 2, 4 and 8, including the non-canonical encodings of 0 and 1.
const SMALL_ORDER_ENCODINGS: [[u8; 32]; 7] = [
    [0; 32],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
    p_plus(-1),
    p_plus(0),
    p_plus(1),
];

/// The little-endian encoding of p + delta (p = 2^255 - 19), for delta in -1..=1.
const fn p_plus(delta: i8) -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[0] = (0xed_i16 + delta as i16) as u8;
    bytes[31] = 0x7f;
    bytes
}

pub(crate) fn has_small_order(encoding: &[u8; 32]) -> bool {
    SMALL_ORDER_ENCODINGS.iter().any(|bad| encoding[..31] == bad[..31] && (encoding[31] & 0x7f) == bad[31])
}

/// libsodium's `ge25519_is_canonical`: the y coordinate is below p.
fn is_canonical_point(encoding: &[u8; 32]) -> bool {
    let top_all_ones = (encoding[31] & 0x7f) == 0x7f && encoding[1..31].iter().all(|b| *b == 0xff);
    !(top_all_ones && encoding[0] >= 0xed)
}

/// Python's `bytes.fromhex`: pairs of hex digits, ASCII whitespace allowed before each pair.
pub fn python_fromhex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut i = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            i += 1;
            continue;
        }
        let hi = (*bytes.get(i)? as char).to_digit(16)?;
        let lo = (*bytes.get(i + 1)? as char).to_digit(16)?;
        out.push((hi * 16 + lo) as u8);
        i += 2;
    }
    Some(out)
}

/// Decodes and checks a `node_id` as libsodium would before verifying.
pub fn prepare_key(node_id: &str) -> Result<VerifyingKey, VerifyError> {
    let bytes: [u8; 32] = python_fromhex(node_id).and_then(|b| b.try_into().ok()).ok_or(VerifyError::BadPublicKey)?;
    if !is_canonical_point(&bytes) || has_small_order(&bytes) {
        return Err(VerifyError::BadPublicKey);
    }
    VerifyingKey::from_bytes(&bytes).map_err(|_| VerifyError::BadPublicKey)
}

pub(crate) fn decode_signature(text: &str) -> Result<Signature, VerifyError> {
    let bytes: [u8; 64] =
        python_fromhex(text).and_then(|b| b.try_into().ok()).ok_or(VerifyError::MalformedSignature)?;
    Ok(Signature::from_bytes(&bytes))
}

/// Verifies a detached signature with an already prepared key.
pub fn check_signature_with_key(key: &VerifyingKey, signature_hex: &str, message: &[u8]) -> Result<(), VerifyError> {
    let signature = decode_signature(signature_hex)?;
    if has_small_order(signature.r_bytes()) {
        return Err(VerifyError::BadSignature);
    }
    key.verify(message, &signature).map_err(|_| VerifyError::BadSignature)
}

/// Python's `verify_signature()` over already computed canonical bytes.
pub fn check_signature(node_id: &str, signature_hex: &str, canonical: &[u8]) -> Result<(), VerifyError> {
    check_signature_with_key(&prepare_key(node_id)?, signature_hex, canonical)
}

/// Python's `verify_cid()`: the claimed id equals the recomputed CID, exactly.
pub fn check_cid(record: &ExperimentRecord, canonical: &[u8]) -> Result<(), VerifyError> {
    let computed = crate::cid::cid_of(canonical);
    if record.id == computed { Ok(()) } else { Err(VerifyError::CidMismatch { claimed: record.id.clone(), computed }) }
}

/// CID, then signature: what a receiver requires before storing or relaying a record.
pub fn verify_record(record: &ExperimentRecord) -> Result<(), VerifyError> {
    verify_record_with(record, prepare_key)
}

/// [`verify_record`] with the publisher's key from `key` (a cache, perhaps shared), asked for
/// only once the CID holds.
pub fn verify_record_with(
    record: &ExperimentRecord,
    key: impl FnOnce(&str) -> Result<VerifyingKey, VerifyError>,
) -> Result<(), VerifyError> {
    let canonical = record.canonical_bytes();
    check_cid(record, &canonical)?;
    check_signature_with_key(&key(&record.node_id)?, &record.signature, &canonical)
}

/// Prepared public keys by `node_id` text. Bounded: when full it starts over, which costs one
/// decompression per publisher and keeps memory flat whatever ids peers invent.
#[derive(Debug)]
pub struct KeyCache {
    keys: HashMap<String, Result<VerifyingKey, VerifyError>>,
    capacity: usize,
}

impl KeyCache {
    /// Default capacity: far more publishers than a mesh has, 10k keys is under 2 MiB.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    pub fn new(capacity: usize) -> Self {
        KeyCache { keys: HashMap::new(), capacity: capacity.max(1) }
    }

    /// The prepared key for `node_id` (or why it is unusable).
    pub fn key(&mut self, node_id: &str) -> Result<VerifyingKey, VerifyError> {
        if let Some(cached) = self.keys.get(node_id) {
            return cached.clone();
        }
        if self.keys.len() >= self.capacity {
            self.keys.clear();
        }
        let prepared = prepare_key(node_id);
        self.keys.insert(node_id.to_string(), prepared.clone());
        prepared
    }

    /// [`verify_record`] with cached keys.
    pub fn verify_record(&mut self, record: &ExperimentRecord) -> Result<(), VerifyError> {
        verify_record_with(record, |node_id| self.key(node_id))
    }

    /// Verifies many records with one batch equation ([`crate::batch`]), falling
    /// back to one-by-one verification to say which are bad when the batch fails.
    ///
    /// The batch equation is not the cofactorless one: a *signer* can craft a signature with a
    /// small-order component in `R` that single verification (and Python) rejects and the batch
    /// accepts with probability up to 1/2. Nobody can forge someone else's signature this way,
    /// so batch results suit bulk work (benchmarks, re-verifying a store); the gossip path uses
    /// [`KeyCache::verify_record`], whose verdicts are exactly Python's.
    pub fn verify_records(&mut self, records: &[&ExperimentRecord]) -> Vec<Result<(), VerifyError>> {
        let mut results = Vec::with_capacity(records.len());
        let mut members = Vec::with_capacity(records.len());
        let (mut messages, mut signatures, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for (i, record) in records.iter().enumerate() {
            let canonical = record.canonical_bytes();
            let prepared = check_cid(record, &canonical).and_then(|()| {
                let key = self.key(&record.node_id)?;
                let signature = decode_signature(&record.signature)?;
                if has_small_order(signature.r_bytes()) {
                    return Err(VerifyError::BadSignature);
                }
                Ok((key, signature))
            });
            match prepared {
                Ok((key, signature)) => {
                    results.push(Ok(()));
                    members.push(i);
                    messages.push(canonical);
                    signatures.push(signature);
                    keys.push(key);
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let items: Vec<BatchItem<'_>> = (0..members.len())
            .map(|slot| BatchItem { message: &messages[slot], signature: &signatures[slot], key: &keys[slot] })
            .collect();
        if !verify_grouped(&items) {
            for (item, i) in items.iter().zip(&members) {
                results[*i] = item.key.verify(item.message, item.signature).map_err(|_| VerifyError::BadSignature);
            }
        }
        results
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fromhex_is_python_compatible() {
        assert_eq!(python_fromhex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(python_fromhex(" ab\tcd\n"), Some(vec![0xab, 0xcd]));
        assert_eq!(python_fromhex("a bcd"), None);
        assert_eq!(python_fromhex("abc"), None);
        assert_eq!(python_fromhex("zz"), None);
    }

    #[test]
    fn small_order_list_matches_the_eight_torsion_points() {
        // Every small-order point dalek knows is on the list, in both sign-bit forms.
        for i in 0u8..8 {
            let encoding = (curve25519_dalek::constants::EIGHT_TORSION[i as usize]).compress().to_bytes();
            assert!(has_small_order(&encoding), "torsion point {i}");
            let mut flipped = encoding;
            flipped[31] ^= 0x80;
            assert!(has_small_order(&flipped), "torsion point {i} with sign bit flipped");
        }
        let basepoint = curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.to_bytes();
        assert!(!has_small_order(&basepoint));
    }

    #[test]
    fn rejects_non_canonical_and_small_order_keys() {
        assert_eq!(prepare_key(&hex::encode(p_plus(1))), Err(VerifyError::BadPublicKey));
        assert_eq!(prepare_key(&hex::encode([0u8; 32])), Err(VerifyError::BadPublicKey));
        let mut high = [0xffu8; 32];
        high[0] = 0xf0;
        assert!(!is_canonical_point(&high));
        assert!(prepare_key("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").is_ok());
    }

    #[test]
    fn batch_verdicts_match_single_verdicts() {
        let identity = crate::Identity::from_seed([3; 32]);
        let mut records: Vec<ExperimentRecord> = (0..6)
            .map(|i| {
                let mut r = crate::ExperimentRecord::from_json(&format!(
                    r#"{{"parent":null,"depth":0,"code_cid":"","diff":"","dataset_cid":"","prepare_cid":"","time_budget":300,"val_bpb":1.0,"peak_vram_mb":0.0,"num_steps":{i},"num_params":1,"status":"keep","description":"","hypothesis":"","agent_model":"","gpu_model":"","cuda_version":"","torch_version":"","node_id":"","timestamp":1}}"#
                ))
                .unwrap();
                identity.sign_record(&mut r);
                r
            })
            .collect();
        records[2].signature = records[3].signature.clone();
        records[4].id = "0".repeat(64);
        let refs: Vec<&ExperimentRecord> = records.iter().collect();
        let mut cache = KeyCache::default();
        let batch = cache.verify_records(&refs);
        let single: Vec<_> = records.iter().map(verify_record).collect();
        assert_eq!(batch, single);
        assert!(batch[0].is_ok() && batch[2].is_err() && batch[4].is_err());
    }
}
