//! Exact verification of many records at once: each signature is checked on its own, with the
//! same cofactorless equation and the same verdicts as [`crate::verify::verify_record`]; the
//! records share only the field inversion that turns each recomputed `R` into its encoding.
//!
//! `ed25519-dalek`'s `verify` computes `k = SHA-512(R ‖ A ‖ M) mod ℓ`, then
//! `R' = [k](−A) + [s]B`, and accepts when `R'` encodes to the signature's `R` byte for byte,
//! after refusing an `s` that is not below ℓ. The same steps run here, except that `R'` comes
//! from tables prepared once per publisher ([`PreparedKey`]; the same point, computed with fewer
//! additions), and the encodings of a chunk's `R'` come from one batch inversion
//! (`compress_batch_alloc`), which gives the same bytes as encoding each point alone. Nothing
//! probabilistic is involved, unlike batch verification ([`crate::batch`]), so a record that
//! Python rejects is rejected here.

use std::collections::HashMap;
use std::sync::Arc;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{EdwardsPoint, VartimeEdwardsPrecomputation};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimePrecomputedMultiscalarMul;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

use crate::record::ExperimentRecord;
use crate::verify::{KeyCache, VerifyError, check_cid, decode_signature, has_small_order};

/// A publisher's key with width-8 tables of multiples of the base point and of the key's
/// negation (about 20 KiB), so that `[s]B + [k](−A)` takes fewer additions than when the key's
/// table is built for each signature.
pub struct PreparedKey {
    key: VerifyingKey,
    tables: VartimeEdwardsPrecomputation,
}

impl PreparedKey {
    pub fn new(key: VerifyingKey) -> Self {
        PreparedKey { key, tables: VartimeEdwardsPrecomputation::new([ED25519_BASEPOINT_POINT, -key.to_edwards()]) }
    }
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedKey").field("key", &self.key).finish_non_exhaustive()
    }
}

/// Prepared keys by `node_id`: the decoded keys of a [`KeyCache`], and tables for the most
/// recent publishers (a mesh has few; the tables are dropped all at once when there are more).
#[derive(Debug)]
pub struct PreparedKeyCache {
    keys: KeyCache,
    prepared: HashMap<String, Arc<PreparedKey>>,
    capacity: usize,
}

impl PreparedKeyCache {
    /// Default capacity: 256 publishers' tables, at most about 5 MiB.
    pub const DEFAULT_CAPACITY: usize = 256;

    pub fn new(capacity: usize) -> Self {
        PreparedKeyCache { keys: KeyCache::default(), prepared: HashMap::new(), capacity: capacity.max(1) }
    }

    /// The prepared key for `node_id`, or why it is unusable (as [`KeyCache::key`]).
    pub fn key(&mut self, node_id: &str) -> Result<Arc<PreparedKey>, VerifyError> {
        if let Some(prepared) = self.prepared.get(node_id) {
            return Ok(prepared.clone());
        }
        let prepared = Arc::new(PreparedKey::new(self.keys.key(node_id)?));
        if self.prepared.len() >= self.capacity {
            self.prepared.clear();
        }
        self.prepared.insert(node_id.to_owned(), prepared.clone());
        Ok(prepared)
    }
}

impl Default for PreparedKeyCache {
    fn default() -> Self {
        PreparedKeyCache::new(Self::DEFAULT_CAPACITY)
    }
}

/// A signature check done up to the final comparison.
#[derive(Debug, Clone)]
pub struct PendingSignature {
    /// `[k](−A) + [s]B`.
    recomputed: EdwardsPoint,
    /// The `R` the signature carries.
    claimed: [u8; 32],
}

/// Everything of a signature check but encoding the recomputed `R`: the signature's format,
/// libsodium's small-order `R` list, a canonical `s`, the challenge and the double-base product.
pub fn begin_signature_check(
    prepared: &PreparedKey,
    signature_hex: &str,
    message: &[u8],
) -> Result<PendingSignature, VerifyError> {
    let key = &prepared.key;
    let signature = decode_signature(signature_hex)?;
    let claimed = *signature.r_bytes();
    if has_small_order(&claimed) {
        return Err(VerifyError::BadSignature);
    }
    let s =
        Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes())).ok_or(VerifyError::BadSignature)?;
    let hash = Sha512::new().chain_update(claimed).chain_update(key.as_bytes()).chain_update(message).finalize();
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&hash);
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    let recomputed = prepared.tables.vartime_multiscalar_mul([s, k]);
    Ok(PendingSignature { recomputed, claimed })
}

/// CID, then the signature up to its final comparison, as [`crate::verify::verify_record_with`].
pub fn begin_record_check(
    record: &ExperimentRecord,
    key: impl FnOnce(&str) -> Result<Arc<PreparedKey>, VerifyError>,
) -> Result<PendingSignature, VerifyError> {
    let canonical = record.canonical_bytes();
    check_cid(record, &canonical)?;
    let key = key(&record.node_id)?;
    begin_signature_check(&key, &record.signature, &canonical)
}

/// Ends the checks: true for each signature whose recomputed `R` encodes to the claimed one.
pub fn finish_signature_checks(pending: &[PendingSignature]) -> Vec<bool> {
    let points: Vec<EdwardsPoint> = pending.iter().map(|p| p.recomputed).collect();
    EdwardsPoint::compress_batch_alloc(&points)
        .iter()
        .zip(pending)
        .map(|(encoded, p)| encoded.to_bytes() == p.claimed)
        .collect()
}

/// Verdicts for many records, each exactly [`crate::verify::verify_record_with`]'s.
pub fn verify_records_exact(
    records: &[&ExperimentRecord],
    keys: &mut PreparedKeyCache,
) -> Vec<Result<(), VerifyError>> {
    let mut verdicts = Vec::with_capacity(records.len());
    let mut pending = Vec::new();
    let mut slots = Vec::new();
    for record in records {
        match begin_record_check(record, |node_id| keys.key(node_id)) {
            Ok(check) => {
                slots.push(verdicts.len());
                pending.push(check);
                verdicts.push(Ok(()));
            }
            Err(e) => verdicts.push(Err(e)),
        }
    }
    for (slot, holds) in slots.into_iter().zip(finish_signature_checks(&pending)) {
        if !holds {
            verdicts[slot] = Err(VerifyError::BadSignature);
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};

    use super::*;
    use crate::verify::verify_record;
    use crate::{Identity, JsonNumber, Status};

    fn record(n: i64) -> ExperimentRecord {
        ExperimentRecord {
            parent: None,
            depth: JsonNumber::from(0),
            code_cid: "c".repeat(64),
            diff: format!("--- a/train.py\n+++ b/train.py\n-LR = {n}\n"),
            dataset_cid: String::new(),
            prepare_cid: String::new(),
            time_budget: JsonNumber::from(300),
            val_bpb: JsonNumber::Float(1.0 - n as f64 * 1e-3),
            peak_vram_mb: JsonNumber::Float(1.0),
            num_steps: JsonNumber::from(10),
            num_params: JsonNumber::from(10),
            status: Status::Keep,
            description: String::new(),
            hypothesis: String::new(),
            agent_model: String::new(),
            gpu_model: "CPU".into(),
            cuda_version: String::new(),
            torch_version: String::new(),
            node_id: String::new(),
            timestamp: JsonNumber::from(1_773_072_000 + n),
            signature: String::new(),
            id: String::new(),
            version: JsonNumber::from(1),
        }
    }

    /// Signs as a signer who adds `r_torsion` to `R` and whose public key carries `key_torsion`:
    /// the signatures that tell the cofactorless equation from the cofactored one.
    fn crafted(n: i64, r_torsion: usize, key_torsion: usize) -> ExperimentRecord {
        let a = Scalar::from(0x1234_5678_u64 + n as u64);
        let key = a * ED25519_BASEPOINT_POINT + EIGHT_TORSION[key_torsion];
        let mut record = record(n);
        record.node_id = hex::encode(key.compress().to_bytes());
        let canonical = record.canonical_bytes();
        let r = Scalar::from(0x9abc_u64 + 7 * n as u64);
        let big_r = (r * ED25519_BASEPOINT_POINT + EIGHT_TORSION[r_torsion]).compress().to_bytes();
        let hash = Sha512::new().chain_update(big_r).chain_update(key.compress().to_bytes()).chain_update(&canonical);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&hash.finalize());
        let s = r + Scalar::from_bytes_mod_order_wide(&wide) * a;
        record.signature = hex::encode([big_r, s.to_bytes()].concat());
        record.id = crate::cid::cid_of(&canonical);
        record
    }

    fn one_by_one(records: &[ExperimentRecord]) -> Vec<Result<(), VerifyError>> {
        records.iter().map(verify_record).collect()
    }

    fn together(records: &[ExperimentRecord]) -> Vec<Result<(), VerifyError>> {
        let refs: Vec<&ExperimentRecord> = records.iter().collect();
        verify_records_exact(&refs, &mut PreparedKeyCache::new(4))
    }

    #[test]
    fn honest_and_broken_records_get_the_single_check_verdicts() {
        let identity = Identity::from_seed([3; 32]);
        let mut records: Vec<ExperimentRecord> = (0..12)
            .map(|n| {
                let mut r = record(n);
                identity.sign_record(&mut r);
                r
            })
            .collect();
        records[1].val_bpb = JsonNumber::Float(0.5); // CID no longer holds
        records[2].signature.replace_range(0..2, "00"); // R changed
        records[3].signature.replace_range(70..72, "ff"); // s changed
        let mut s = [0u8; 32];
        hex::decode_to_slice(&records[4].signature[64..], &mut s).unwrap();
        // s + ℓ: the same point, not canonical; libsodium and dalek refuse it.
        let mut wide = [0u8; 32];
        let mut carry = 0u16;
        for (i, byte) in wide.iter_mut().enumerate() {
            let sum = s[i] as u16 + ELL[i] as u16 + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        records[4].signature.replace_range(64.., &hex::encode(wide));
        records[5].signature.truncate(126);
        records[6].node_id = hex::encode([0u8; 32]); // small-order key
        records[6].id = records[6].compute_cid();
        records[7].signature.replace_range(0..64, &hex::encode(EIGHT_TORSION[2].compress().to_bytes()));
        let expected = one_by_one(&records);
        assert_eq!(together(&records), expected);
        assert_eq!(expected.iter().filter(|v| v.is_ok()).count(), 5, "{expected:?}");
        assert_eq!(expected[4], Err(VerifyError::BadSignature));
        assert_eq!(expected[6], Err(VerifyError::BadPublicKey));
        assert!(together(&[]).is_empty());
    }

    #[test]
    fn torsion_in_r_or_in_the_key_gets_the_cofactorless_verdict() {
        let mut records = Vec::new();
        for n in 0..64 {
            records.push(crafted(n, 0, 0));
            records.push(crafted(n, 1 + (n as usize % 7), 0));
            records.push(crafted(n, 0, 1 + (n as usize % 7)));
        }
        let expected = one_by_one(&records);
        assert_eq!(together(&records), expected);
        for (n, triple) in expected.chunks(3).enumerate() {
            assert_eq!(triple[0], Ok(()), "#{n}: a plain signature verifies");
            assert_eq!(triple[1], Err(VerifyError::BadSignature), "#{n}: torsion in R never verifies");
        }
        let mixed_key_accepted = expected.chunks(3).filter(|t| t[2].is_ok()).count();
        assert!(mixed_key_accepted > 0 && mixed_key_accepted < 64, "{mixed_key_accepted} of 64");
    }

    /// ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
}
