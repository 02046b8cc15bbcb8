//! Kubernetes quantities as the CRDs' schemas take them.

/// Whether `s` is a Kubernetes quantity as the CRD's schema takes it (`4`, `500m`, `32Gi`,
/// `1e3`): digits, an optional fraction, an optional suffix.
pub fn is_quantity(s: &str) -> bool {
    let digits = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let whole = digits(s);
    if whole == 0 {
        return false;
    }
    let mut rest = &s[whole..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = digits(fraction);
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    matches!(rest, "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei")
        || rest.strip_prefix('e').is_some_and(|e| !e.is_empty() && digits(e) == e.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_as_the_schema_reads_them() {
        for good in [
            "4",
            "500m",
            "32Gi",
            "1.5",
            "0.5Gi",
            "1e3",
            super::super::pod::TRAINING_MEMORY,
            super::super::pod::TRAINING_EPHEMERAL_STORAGE,
        ] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "4 Gi", "-1", "1.Gi", ".5", "32GB", "1e", "4x", "1.5.2"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
