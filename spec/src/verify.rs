//! Record verification: the CID first, then the Ed25519 signature.
//!
//! Python checks `id == sha256(canonical)` by exact string comparison, then verifies with
//! libsodium, which rejects non-canonical `S`, small-order public keys and small-order `R`;
//! `ed25519_dalek::VerifyingKey::verify_strict` rejects the same. Hex decoding follows Python's
//! `bytes.fromhex` (either case, ASCII whitespace allowed between byte pairs).

use ed25519_dalek::{Signature, VerifyingKey};

use crate::record::ExperimentRecord;

/// Why a record does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("CID mismatch: record says {claimed:?}, canonical bytes hash to {computed}")]
    CidMismatch { claimed: String, computed: String },
    #[error("node_id is not a 32-byte hex public key")]
    BadPublicKey,
    #[error("signature is not 64 hex-encoded bytes")]
    MalformedSignature,
    #[error("signature does not verify against node_id")]
    BadSignature,
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

fn verifying_key(node_id: &str) -> Result<VerifyingKey, VerifyError> {
    let bytes: [u8; 32] = python_fromhex(node_id)
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::BadPublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| VerifyError::BadPublicKey)
}

fn signature(text: &str) -> Result<Signature, VerifyError> {
    let bytes: [u8; 64] = python_fromhex(text)
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::MalformedSignature)?;
    Ok(Signature::from_bytes(&bytes))
}

/// Python's `verify_cid()`: the claimed id equals the recomputed CID, exactly.
pub fn check_cid(record: &ExperimentRecord, canonical: &[u8]) -> Result<(), VerifyError> {
    let computed = crate::cid::cid_of(canonical);
    if record.id == computed {
        Ok(())
    } else {
        Err(VerifyError::CidMismatch {
            claimed: record.id.clone(),
            computed,
        })
    }
}

/// Python's `verify_signature()` over already computed canonical bytes.
pub fn check_signature(
    node_id: &str,
    signature_hex: &str,
    canonical: &[u8],
) -> Result<(), VerifyError> {
    let key = verifying_key(node_id)?;
    let sig = signature(signature_hex)?;
    key.verify_strict(canonical, &sig)
        .map_err(|_| VerifyError::BadSignature)
}

/// CID, then signature: what a receiver requires before storing or relaying a record.
pub fn verify_record(record: &ExperimentRecord) -> Result<(), VerifyError> {
    let canonical = record.canonical_bytes();
    check_cid(record, &canonical)?;
    check_signature(&record.node_id, &record.signature, &canonical)
}

/// Verifies many records at once. CIDs are checked one by one; signatures with one batch
/// equation, which is about twice as fast per record. The batch equation is cofactored, so
/// records with a weak (small-order) key are checked strictly first, and when the batch fails
/// every record is checked strictly to say which ones are bad. Returns one result per record.
pub fn verify_records(records: &[&ExperimentRecord]) -> Vec<Result<(), VerifyError>> {
    let mut results: Vec<Result<(), VerifyError>> = Vec::with_capacity(records.len());
    let mut canonicals = Vec::with_capacity(records.len());
    let mut keys = Vec::with_capacity(records.len());
    let mut sigs = Vec::with_capacity(records.len());
    let mut batch_members = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let canonical = record.canonical_bytes();
        let prepared = check_cid(record, &canonical).and_then(|()| {
            Ok((
                verifying_key(&record.node_id)?,
                signature(&record.signature)?,
            ))
        });
        match prepared {
            Ok((key, _)) if key.is_weak() => {
                results.push(check_signature(
                    &record.node_id,
                    &record.signature,
                    &canonical,
                ));
            }
            Ok((key, sig)) => {
                results.push(Ok(()));
                keys.push(key);
                sigs.push(sig);
                canonicals.push(canonical);
                batch_members.push(i);
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let messages: Vec<&[u8]> = canonicals.iter().map(Vec::as_slice).collect();
    if ed25519_dalek::verify_batch(&messages, &sigs, &keys).is_err() {
        for (slot, i) in batch_members.iter().enumerate() {
            results[*i] = keys[slot]
                .verify_strict(messages[slot], &sigs[slot])
                .map_err(|_| VerifyError::BadSignature);
        }
    }
    results
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
}
