//! Exact verification of many records at once: each signature is checked on its own, with the
//! same cofactorless equation and the same verdicts as [`crate::verify::verify_record`]; the
//! records share only the field inversion that turns each recomputed `R` into its encoding.
//!
//! `ed25519-dalek`'s `verify` computes `k = SHA-512(R ‖ A ‖ M) mod ℓ`, then
//! `R' = [k](−A) + [s]B`, and accepts when `R'` encodes to the signature's `R` byte for byte,
//! after refusing an `s` that is not below ℓ. The same steps run here, except that for a
//! frequent publisher `R'` comes from tables prepared once ([`PreparedKey`]: the same point from
//! the scalars' 64-bit limbs, with a quarter of the doublings), and the encodings of a chunk's
//! `R'` come from one batch inversion (`compress_batch_alloc`), which gives the same bytes as
//! encoding each point alone. Nothing probabilistic is involved, unlike batch verification
//! ([`crate::batch`]), so a record that Python rejects is rejected here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{EdwardsPoint, VartimeEdwardsPrecomputation};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimePrecomputedMultiscalarMul;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

use crate::record::ExperimentRecord;
use crate::verify::{KeyCache, VerifyError, check_cid, decode_signature, has_small_order, prepare_key};

/// `2^64·P`: 63 doublings by the cofactor's three at a time, and one more.
fn times_2_pow_64(point: &EdwardsPoint) -> EdwardsPoint {
    let p = (0..21).fold(*point, |p, _| p.mul_by_cofactor());
    p + p
}

/// `B, 2^64·B, 2^128·B, 2^192·B`.
fn base_multiples() -> &'static [EdwardsPoint; 4] {
    static MULTIPLES: OnceLock<[EdwardsPoint; 4]> = OnceLock::new();
    MULTIPLES.get_or_init(|| quarter_multiples(&ED25519_BASEPOINT_POINT))
}

fn quarter_multiples(point: &EdwardsPoint) -> [EdwardsPoint; 4] {
    let mut multiples = [*point; 4];
    for i in 1..4 {
        multiples[i] = times_2_pow_64(&multiples[i - 1]);
    }
    multiples
}

/// A publisher's key, and for a frequent publisher width-8 tables of `2^(64i)·B` and
/// `2^(64i)·(−A)` for `i` in `0..4` (eight tables, about 80 KiB).
///
/// With the tables, `[s]B + [k](−A)` is computed as `Σ [s_i](2^(64i)·B) + [k_i](2^(64i)·(−A))`
/// over the 64-bit limbs `s_i`, `k_i` of the two scalars: the same integers, so the same point.
/// The non-adjacent forms of 64-bit numbers are a quarter as long, and the vendored
/// `curve25519-dalek` starts its loop at the highest nonzero digit, so the product takes 65
/// doublings instead of 256, for the same number of additions.
pub struct PreparedKey {
    key: VerifyingKey,
    minus_a: EdwardsPoint,
    tables: Option<VartimeEdwardsPrecomputation>,
}

impl PreparedKey {
    /// The key without tables: the product is computed as `ed25519-dalek` does.
    pub fn new(key: VerifyingKey) -> Self {
        PreparedKey { key, minus_a: -key.to_edwards(), tables: None }
    }

    /// The key with its tables: about 70 µs of work, which saves about 12 µs per signature
    /// (`cargo bench -p spore-spec --bench spec -- 'key/|exact_64'`).
    pub fn with_tables(key: VerifyingKey) -> Self {
        let minus_a = -key.to_edwards();
        let points = base_multiples().iter().copied().chain(quarter_multiples(&minus_a));
        PreparedKey { key, minus_a, tables: Some(VartimeEdwardsPrecomputation::new(points)) }
    }

    /// Whether the key holds its tables.
    pub fn has_tables(&self) -> bool {
        self.tables.is_some()
    }

    /// `[s]B + [k](−A)`.
    fn double_base(&self, s: &Scalar, k: &Scalar) -> EdwardsPoint {
        let Some(tables) = &self.tables else {
            return EdwardsPoint::vartime_double_scalar_mul_basepoint(k, &self.minus_a, s);
        };
        let mut pieces = [Scalar::ZERO; 8];
        for (pieces, scalar) in pieces.chunks_exact_mut(4).zip([s, k]) {
            for (piece, limb) in pieces.iter_mut().zip(scalar.as_bytes().chunks_exact(8)) {
                *piece = Scalar::from(u64::from_le_bytes(limb.try_into().unwrap_or_default()));
            }
        }
        tables.vartime_multiscalar_mul(pieces)
    }
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedKey")
            .field("key", &self.key)
            .field("tables", &self.tables.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Entry {
    key: Arc<PreparedKey>,
    /// Uses since the key was decoded or last lost its tables.
    uses: u32,
    /// The cache's clock at the last use.
    last_used: u64,
}

/// Decoded keys by `node_id` text, with tables for the frequent publishers.
///
/// A key gets its tables at its `prepare_after`-th use, so a publisher seen once (or a peer
/// inventing keys) costs no more than plain verification. At most `table_capacity` keys hold
/// tables; when one more qualifies, the least recently used of them loses its tables and has to
/// earn them again with `prepare_after` more uses. Each preparation follows `prepare_after` uses
/// of its key that no other preparation counted, so whatever the mix of publishers there is at
/// most one preparation per `prepare_after` records (at the defaults about 4 µs a record, when
/// a signature takes 20–35 µs), and a peer publishing from fresh keys takes one key's tables per
/// `prepare_after` of its records. Like [`KeyCache`], the map starts over when it holds
/// [`KeyCache::DEFAULT_CAPACITY`] keys, whatever ids peers invent.
#[derive(Debug)]
pub struct PreparedKeyCache {
    entries: HashMap<String, Result<Entry, VerifyError>>,
    /// The ids of the keys that hold tables.
    tabled: Vec<String>,
    table_capacity: usize,
    prepare_after: u32,
    clock: u64,
}

impl PreparedKeyCache {
    /// Default table capacity: 32 publishers' tables, at most about 2.5 MiB.
    pub const DEFAULT_TABLE_CAPACITY: usize = 32;
    /// Default use count at which a key gets its tables.
    pub const DEFAULT_PREPARE_AFTER: u32 = 16;

    pub fn new(table_capacity: usize, prepare_after: u32) -> Self {
        PreparedKeyCache {
            entries: HashMap::new(),
            tabled: Vec::new(),
            table_capacity: table_capacity.max(1),
            prepare_after: prepare_after.max(1),
            clock: 0,
        }
    }

    /// The prepared key for `node_id`, or why it is unusable (as [`KeyCache::key`]).
    pub fn key(&mut self, node_id: &str) -> Result<Arc<PreparedKey>, VerifyError> {
        self.clock += 1;
        let (now, prepare_after) = (self.clock, self.prepare_after);
        let entry = self.entry(node_id)?;
        entry.uses = entry.uses.saturating_add(1);
        entry.last_used = now;
        if entry.key.tables.is_some() || entry.uses < prepare_after {
            return Ok(entry.key.clone());
        }
        if self.tabled.len() >= self.table_capacity {
            self.evict_least_recent();
        }
        let entry = self.entry(node_id)?;
        entry.key = Arc::new(PreparedKey::with_tables(entry.key.key));
        let key = entry.key.clone();
        self.tabled.push(node_id.to_owned());
        Ok(key)
    }

    fn entry(&mut self, node_id: &str) -> Result<&mut Entry, VerifyError> {
        if self.entries.len() >= KeyCache::DEFAULT_CAPACITY && !self.entries.contains_key(node_id) {
            self.entries.clear();
            self.tabled.clear();
        }
        let new =
            || prepare_key(node_id).map(|key| Entry { key: Arc::new(PreparedKey::new(key)), uses: 0, last_used: 0 });
        self.entries.entry(node_id.to_owned()).or_insert_with(new).as_mut().map_err(|e| e.clone())
    }

    /// Takes the tables of the key used least recently; it counts its uses from zero again.
    fn evict_least_recent(&mut self) {
        let last_used = |id: &String| match self.entries.get(id) {
            Some(Ok(entry)) => entry.last_used,
            _ => 0,
        };
        let Some(index) = (0..self.tabled.len()).min_by_key(|&i| last_used(&self.tabled[i])) else {
            return;
        };
        let id = self.tabled.swap_remove(index);
        if let Some(Ok(entry)) = self.entries.get_mut(&id) {
            entry.key = Arc::new(PreparedKey::new(entry.key.key));
            entry.uses = 0;
        }
    }
}

impl Default for PreparedKeyCache {
    fn default() -> Self {
        PreparedKeyCache::new(Self::DEFAULT_TABLE_CAPACITY, Self::DEFAULT_PREPARE_AFTER)
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
    let recomputed = prepared.double_base(&s, &k);
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
            task_id: None,
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

    /// The chunk verdicts, which must be the same whether keys get tables at once, never, or
    /// from a cache so small that they are evicted again and again.
    fn together(records: &[ExperimentRecord]) -> Vec<Result<(), VerifyError>> {
        let refs: Vec<&ExperimentRecord> = records.iter().collect();
        let runs = [(1024, 1), (2, 1), (1024, u32::MAX)]
            .map(|(capacity, after)| verify_records_exact(&refs, &mut PreparedKeyCache::new(capacity, after)));
        assert!(runs.iter().all(|run| run == &runs[0]), "tables and plain keys disagree: {runs:?}");
        runs[0].clone()
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

    #[test]
    fn the_split_product_is_the_double_base_product() {
        let mut scalars: Vec<Scalar> = [0u64, 1, 2, u64::MAX].map(Scalar::from).to_vec();
        for bit in [63, 64, 127, 128, 191, 192, 252] {
            let mut bytes = [0u8; 32];
            bytes[bit / 8] = 1 << (bit % 8);
            scalars.push(Scalar::from_bytes_mod_order(bytes));
        }
        scalars.push(-Scalar::ONE); // ℓ − 1
        scalars.extend((1..8u8).map(|n| Scalar::from_bytes_mod_order_wide(&[n.wrapping_mul(37); 64])));
        for key_torsion in [0, 1, 4] {
            let point = Scalar::from(0x5eed_u64) * ED25519_BASEPOINT_POINT + EIGHT_TORSION[key_torsion];
            let key = VerifyingKey::from(point);
            let (plain, tabled) = (PreparedKey::new(key), PreparedKey::with_tables(key));
            assert!(!plain.has_tables() && tabled.has_tables());
            for s in &scalars {
                for k in &scalars {
                    let expected = k * -point + s * ED25519_BASEPOINT_POINT;
                    assert_eq!(plain.double_base(s, k), expected, "s {s:?}, k {k:?}");
                    assert_eq!(tabled.double_base(s, k), expected, "s {s:?}, k {k:?}");
                }
            }
        }
    }

    #[test]
    fn keys_get_tables_at_the_nth_use_and_the_least_recent_loses_them() {
        let ids: Vec<String> = (1..=3u8).map(|n| Identity::from_seed([n; 32]).node_id()).collect();
        let mut cache = PreparedKeyCache::new(2, 3);
        let mut has_tables = |id: &str| cache.key(id).map(|key| key.has_tables());
        assert_eq!(has_tables(&ids[0]), Ok(false));
        assert_eq!(has_tables(&ids[0]), Ok(false));
        assert_eq!(has_tables(&ids[0]), Ok(true), "the third use prepares");
        for _ in 0..3 {
            has_tables(&ids[1]).unwrap();
        }
        assert_eq!(has_tables(&ids[0]), Ok(true));
        assert_eq!(has_tables(&ids[1]), Ok(true));
        // A third frequent key: the cache holds two tables, so the least recently used key,
        // ids[0], gives up its own.
        for _ in 0..2 {
            assert_eq!(has_tables(&ids[2]), Ok(false));
        }
        assert_eq!(has_tables(&ids[2]), Ok(true));
        assert_eq!(has_tables(&ids[1]), Ok(true), "a recent key keeps its tables");
        assert_eq!(has_tables(&ids[0]), Ok(false), "the evicted key counts again");
        assert_eq!(has_tables(&ids[0]), Ok(false));
        assert_eq!(has_tables(&ids[0]), Ok(true), "and earns them back, from ids[2] this time");
        assert_eq!(has_tables(&ids[1]), Ok(true));
        assert_eq!(has_tables(&ids[2]), Ok(false));
        assert_eq!(has_tables("zz"), Err(VerifyError::BadPublicKey));
    }

    /// ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
}
