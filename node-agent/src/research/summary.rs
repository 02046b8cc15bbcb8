//! The summary block `train.py` prints at the end of a run (see `workspace/train.py`):
//!
//! ```text
//! ---
//! training_seconds: 300.1
//! ...
//! num_steps:        953
//! num_params_M:     50.3
//! ```
//!
//! Only the block after the **last** line that is exactly `---` counts, and only labels at the
//! start of a line. A `val_bpb:` line in the block is what the script *claims*
//! ([`Summary::reported_val_bpb`]): the trusted evaluator's measurement replaces it, and it is
//! used as the metric only when the node runs on self-reported metrics, as Python does. `num_steps` comes from `num_steps:` (Python 0.1.2 read the last
//! progress index instead, one too few) and `num_params` from `num_params_M` × 10⁶ (0.1.2 looked
//! for a label the script never prints and recorded 0).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The metrics of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The `val_bpb:` the script printed, if any: a hint, not the result.
    pub reported_val_bpb: Option<f64>,
    pub training_seconds: f64,
    pub total_seconds: f64,
    pub peak_vram_mb: f64,
    pub mfu_percent: f64,
    pub total_tokens_m: f64,
    pub num_steps: i64,
    pub num_params: i64,
    pub depth: i64,
}

#[derive(Debug, Error, PartialEq)]
pub enum SummaryError {
    #[error("the run printed no summary block (a line `---` followed by `num_steps:` and the other metrics)")]
    Missing,
    #[error("summary line {line:?}: {reason}")]
    Malformed { line: String, reason: String },
    #[error("the summary has no `{0}:` line")]
    MissingField(&'static str),
}

/// Parses the summary block out of a run's output (lines as printed; `\r` also ends a line).
pub fn parse_summary(output: &str) -> Result<Summary, SummaryError> {
    let lines: Vec<&str> = output.split(['\n', '\r']).map(str::trim_end).collect();
    let start = lines.iter().rposition(|l| *l == "---").ok_or(SummaryError::Missing)?;
    let mut summary = Summary::default();
    let mut seen_steps = false;
    for line in &lines[start + 1..] {
        let Some((label, value)) = line.split_once(':') else { continue };
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let value = value.trim();
        let malformed = |reason: &str| SummaryError::Malformed { line: line.to_string(), reason: reason.into() };
        let float = || -> Result<f64, SummaryError> {
            let x: f64 = value.parse().map_err(|_| malformed("not a number"))?;
            if x.is_finite() { Ok(x) } else { Err(malformed("not a finite number")) }
        };
        let int = || -> Result<i64, SummaryError> { value.parse().map_err(|_| malformed("not an integer")) };
        match label {
            "val_bpb" => summary.reported_val_bpb = Some(float()?),
            "training_seconds" => summary.training_seconds = float()?,
            "total_seconds" => summary.total_seconds = float()?,
            "peak_vram_mb" => summary.peak_vram_mb = float()?,
            "mfu_percent" => summary.mfu_percent = float()?,
            "total_tokens_M" => summary.total_tokens_m = float()?,
            "num_steps" => {
                summary.num_steps = int()?;
                seen_steps = true;
            }
            "num_params_M" => {
                let millions = float()?;
                if !(0.0..1e9).contains(&millions) {
                    return Err(malformed("out of range"));
                }
                summary.num_params = (millions * 1e6).round() as i64;
            }
            "depth" => summary.depth = int()?,
            _ => {}
        }
    }
    if !seen_steps {
        let labelled = lines[start + 1..].iter().any(|l| l.split_once(':').is_some());
        return Err(if labelled { SummaryError::MissingField("num_steps") } else { SummaryError::Missing });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "---\nval_bpb:          0.997900\ntraining_seconds: 300.1\ntotal_seconds:    325.9\n\
        peak_vram_mb:     45060.2\nmfu_percent:      39.80\ntotal_tokens_M:   499.6\nnum_steps:        953\n\
        num_params_M:     50.3\ndepth:            8\n";

    #[test]
    fn parses_the_block_of_section_7_3() {
        let s = parse_summary(&format!("Device: cuda\n\rstep 00952 (100.0%) | loss: 3.1    \n{BLOCK}")).unwrap();
        assert_eq!(s.reported_val_bpb, Some(0.9979));
        assert_eq!(s.num_steps, 953);
        assert_eq!(s.num_params, 50_300_000);
        assert_eq!(s.depth, 8);
        assert_eq!(s.peak_vram_mb, 45060.2);
        assert_eq!(s.mfu_percent, 39.8);
        assert_eq!(s.total_tokens_m, 499.6);
        assert_eq!(s.training_seconds, 300.1);
    }

    #[test]
    fn an_early_fake_val_bpb_is_not_the_result() {
        let out = format!("val_bpb: 0.000001\n---\nval_bpb: 0.5\n{BLOCK}");
        assert_eq!(parse_summary(&out).unwrap().reported_val_bpb, Some(0.9979));
        // A fake value with no block after it is no result at all.
        assert_eq!(parse_summary("val_bpb:          0.100000\nnum_steps: 3\n"), Err(SummaryError::Missing));
        // Labels only count at the start of a line.
        let out = "---\nnote val_bpb: 0.1\nnum_steps: 3\n";
        assert_eq!(parse_summary(out).unwrap().reported_val_bpb, None);
        // The evaluator's contract: no val_bpb at all is a complete summary.
        let out = "---\ntraining_seconds: 20.0\nnum_steps: 3\n";
        assert_eq!(parse_summary(out).unwrap(), Summary { training_seconds: 20.0, num_steps: 3, ..Summary::default() });
    }

    #[test]
    fn malformed_values_are_errors_not_zeros() {
        let out = "---\nval_bpb: 1.2.3\nnum_steps: 3\n";
        assert!(matches!(parse_summary(out), Err(SummaryError::Malformed { .. })));
        let out = "---\nval_bpb: nan\nnum_steps: 3\n";
        assert!(matches!(parse_summary(out), Err(SummaryError::Malformed { .. })));
        let out = "---\nval_bpb: 1.0\n";
        assert_eq!(parse_summary(out), Err(SummaryError::MissingField("num_steps")));
        let out = "---\nval_bpb: 1.0\nnum_steps: 4.5\n";
        assert!(matches!(parse_summary(out), Err(SummaryError::Malformed { .. })));
    }

    #[test]
    fn carriage_returns_end_lines() {
        let out = BLOCK.replace('\n', "\r\n");
        assert_eq!(parse_summary(&out).unwrap().num_steps, 953);
    }
}
