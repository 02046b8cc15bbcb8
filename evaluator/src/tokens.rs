//! The pinned validation tokens: `val.bin` as `prepare.py` writes it (unsigned 16-bit,
//! little-endian), checked against the SHA-256 of the data manifest before use; and the
//! tokenizer's token-byte table, in the same encoding.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::EvalError;

/// Reads `path` (`-`: standard input, which is then closed), checks its digest when one is given
/// and that every token is below `vocab_size`.
///
/// Reading from a pipe lets the node hand the split to an evaluator that runs where the file is
/// hidden: the model being judged runs in this process and must not find the data again
/// (standard input is replaced by `/dev/null`, so `/proc/self/fd/0` leads nowhere).
pub fn read_tokens(path: &Path, expected_sha256: Option<&str>, vocab_size: i64) -> Result<Vec<i64>, EvalError> {
    let raw = if path == Path::new("-") {
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut raw)
            .map_err(|e| EvalError::Data(format!("cannot read standard input: {e}")))?;
        let null = std::fs::File::open("/dev/null").map_err(|e| EvalError::Data(format!("/dev/null: {e}")))?;
        nix::unistd::dup2_stdin(null).map_err(|e| EvalError::Data(format!("closing standard input: {e}")))?;
        raw
    } else {
        std::fs::read(path).map_err(|e| EvalError::Data(format!("cannot read {}: {e}", path.display())))?
    };
    parse_tokens(&raw, path, expected_sha256, vocab_size)
}

/// Reads the token-byte table at `path` (one u16 per token id), checks its digest when one is
/// given and that it has one entry per token of the vocabulary.
pub fn read_token_bytes(path: &Path, expected_sha256: Option<&str>, vocab_size: i64) -> Result<Vec<i64>, EvalError> {
    let raw = std::fs::read(path).map_err(|e| EvalError::Data(format!("cannot read {}: {e}", path.display())))?;
    let table = parse_tokens(&raw, path, expected_sha256, i64::from(u16::MAX) + 1)?;
    if table.len() as i64 != vocab_size {
        return Err(EvalError::Data(format!(
            "{} has {} entries, the vocabulary {vocab_size}",
            path.display(),
            table.len()
        )));
    }
    Ok(table)
}

fn parse_tokens(
    raw: &[u8],
    path: &Path,
    expected_sha256: Option<&str>,
    vocab_size: i64,
) -> Result<Vec<i64>, EvalError> {
    if let Some(expected) = expected_sha256 {
        let actual = hex::encode(Sha256::digest(raw));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(EvalError::Data(format!(
                "{} has SHA-256 {actual}, the manifest says {expected}",
                path.display()
            )));
        }
    }
    if !raw.len().is_multiple_of(2) {
        return Err(EvalError::Data(format!("{} has an odd length ({} bytes)", path.display(), raw.len())));
    }
    let tokens: Vec<i64> = raw.chunks_exact(2).map(|b| i64::from(u16::from_le_bytes([b[0], b[1]]))).collect();
    if let Some(bad) = tokens.iter().find(|&&t| t >= vocab_size) {
        return Err(EvalError::Data(format!(
            "{} holds token {bad}, outside the vocabulary of {vocab_size}",
            path.display()
        )));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_checks_digest_and_range() {
        let dir = std::env::temp_dir().join(format!("spore-eval-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("val.bin");
        std::fs::write(&path, [0u8, 1, 65, 0, 255, 0]).unwrap();
        assert_eq!(read_tokens(&path, None, 257).unwrap(), vec![256, 65, 255]);
        let digest = hex::encode(Sha256::digest([0u8, 1, 65, 0, 255, 0]));
        assert!(read_tokens(&path, Some(&digest), 257).is_ok());
        let wrong = "0".repeat(64);
        assert!(matches!(read_tokens(&path, Some(&wrong), 257), Err(EvalError::Data(m)) if m.contains("SHA-256")));
        assert!(matches!(read_tokens(&path, None, 256), Err(EvalError::Data(m)) if m.contains("token 256")));
        std::fs::write(&path, [0u8, 1, 65]).unwrap();
        assert!(matches!(read_tokens(&path, None, 257), Err(EvalError::Data(m)) if m.contains("odd length")));
        assert!(read_tokens(&dir.join("missing.bin"), None, 257).is_err());
        std::fs::write(&path, [1u8, 0, 0, 0, 3, 0]).unwrap();
        assert_eq!(read_token_bytes(&path, None, 3).unwrap(), vec![1, 0, 3]);
        assert!(matches!(read_token_bytes(&path, None, 4), Err(EvalError::Data(m)) if m.contains("3 entries")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
