//! Batch verification of Ed25519 signatures that shares work between signatures by one key.
//!
//! One random-linear-combination equation checks all signatures at once:
//! `(Σ zᵢsᵢ)·B − Σ zᵢ·Rᵢ − Σⱼ (Σ_{i signed by j} zᵢkᵢ)·Aⱼ = O` with 128-bit random `zᵢ`.
//! Records arrive in bursts from few publishers (a sync is mostly one peer's history), so
//! grouping the public-key terms makes the multiscalar multiplication nearly half as long as
//! `ed25519_dalek::verify_batch`, which keeps one term per signature.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use rand_core::RngCore;
use sha2::{Digest, Sha512};

/// One signature to check.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub message: &'a [u8],
    pub signature: &'a Signature,
    pub key: &'a VerifyingKey,
}

/// True when every signature verifies (with overwhelming probability); false when at least one
/// does not, or when any `R` or `S` is malformed. An empty batch verifies.
pub fn verify_grouped(items: &[BatchItem<'_>]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut weights = vec![0u8; 16 * items.len()];
    rand_core::OsRng.fill_bytes(&mut weights);
    let mut basepoint_coefficient = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(items.len() + 8);
    let mut points = Vec::with_capacity(items.len() + 8);
    let mut key_slots: HashMap<[u8; 32], usize> = HashMap::new();
    let mut key_coefficients: Vec<(Scalar, EdwardsPoint)> = Vec::new();
    for (item, weight) in items.iter().zip(weights.chunks_exact(16)) {
        let mut z_bytes = [0u8; 32];
        z_bytes[..16].copy_from_slice(weight);
        let z = Scalar::from_bytes_mod_order(z_bytes);
        let Some(r) = CompressedEdwardsY(*item.signature.r_bytes()).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*item.signature.s_bytes())) else {
            return false;
        };
        let mut hash = Sha512::new();
        hash.update(item.signature.r_bytes());
        hash.update(item.key.as_bytes());
        hash.update(item.message);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        basepoint_coefficient += z * s;
        scalars.push(-z);
        points.push(r);
        let slot = *key_slots.entry(*item.key.as_bytes()).or_insert_with(|| {
            key_coefficients.push((Scalar::ZERO, item.key.to_edwards()));
            key_coefficients.len() - 1
        });
        key_coefficients[slot].0 += z * k;
    }
    scalars.push(basepoint_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    for (coefficient, key) in key_coefficients {
        scalars.push(-coefficient);
        points.push(key);
    }
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn accepts_good_batches_and_rejects_any_bad_signature() {
        let keys: Vec<SigningKey> = (1..4u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
        let messages: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + i as usize]).collect();
        let signed: Vec<(Signature, VerifyingKey)> =
            messages.iter().enumerate().map(|(i, m)| (keys[i % 3].sign(m), keys[i % 3].verifying_key())).collect();
        let items: Vec<BatchItem> =
            messages.iter().zip(&signed).map(|(m, (s, k))| BatchItem { message: m, signature: s, key: k }).collect();
        assert!(verify_grouped(&items));
        assert!(verify_grouped(&[]));

        let mut wrong_message = items.clone();
        wrong_message[7].message = b"something else";
        assert!(!verify_grouped(&wrong_message));

        let mut wrong_key = items.clone();
        wrong_key[3].key = &signed[4].1;
        assert!(!verify_grouped(&wrong_key));

        let mut malleated = signed[5].0.to_bytes();
        malleated[40] ^= 1;
        let malleated = Signature::from_bytes(&malleated);
        let mut bad_s = items.clone();
        bad_s[5].signature = &malleated;
        assert!(!verify_grouped(&bad_s));
    }
}
