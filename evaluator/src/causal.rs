//! The look-ahead check. A language model's logits at position `t` may depend only on the
//! tokens at `0..=t`: a model that reads `t + 1` (the target) scores near zero bits per byte and
//! would be certified by every verifier running the same evaluator.
//!
//! For a few batches chosen at random among those scored, the batch is run again with each
//! row's suffix after a cut replaced (every token changed), and the logits up to the cut must
//! not move. The cuts of one batch are spread over the row (one per stratum, plus the first and
//! the last position that can peek), so a model that peeks only in part of each row is caught
//! too. A checked batch is also scored, so a model cannot tell checked batches from the rest
//! before it has answered; the comparison allows float noise, not information.

use tch::{CModule, Kind, Tensor};

use crate::EvalError;

/// Scored batches checked per evaluation (all of them when there are fewer).
pub const CHECKED_BATCHES: usize = 4;

/// Logits up to the cut may move by this much (relative to the largest logit, plus the same
/// absolute amount): float noise of a re-run, far below what a peek changes.
const TOLERANCE: f64 = 1e-3;

/// A small random generator (splitmix64), seeded from the process's hash keys: the cuts and
/// batches must not be predictable from the model file.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new() -> Dice {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(std::process::id() as u64);
        Dice(hasher.finish())
    }

    pub fn seeded(seed: u64) -> Dice {
        Dice(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `count` distinct batch indices of `0..batches`, sorted.
    pub fn batches(&mut self, batches: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..batches).collect();
        for i in (1..all.len()).rev() {
            all.swap(i, self.below(i as u64 + 1) as usize);
        }
        all.truncate(CHECKED_BATCHES);
        all.sort_unstable();
        all
    }

    /// One cut per row of a batch of `rows` rows of `seq_len` tokens: the last position that
    /// can peek (`seq_len - 2`), the first (0), and the rest one per stratum of the row.
    pub fn cuts(&mut self, rows: i64, seq_len: i64) -> Vec<i64> {
        let span = (seq_len - 1).max(1);
        (0..rows)
            .map(|row| match row {
                0 => span - 1,
                1 => 0,
                _ => {
                    let strata = (rows - 2).max(1);
                    let (lo, hi) =
                        ((row - 2) * span / strata, ((row - 1) * span / strata).max((row - 2) * span / strata + 1));
                    lo + self.below((hi - lo) as u64) as i64
                }
            })
            .map(|cut| cut.clamp(0, span - 1))
            .collect()
    }
}

impl Default for Dice {
    fn default() -> Self {
        Dice::new()
    }
}

/// Re-runs `model` on `inputs` (`[rows, seq_len]`, tokens below `vocab_size`) with each row's
/// tokens after its cut changed, and refuses the model if any logit up to a cut moved beyond
/// the tolerance. `logits` are the model's logits for `inputs` (`[rows, seq_len, vocab]`).
pub fn check_batch(
    model: &CModule,
    inputs: &Tensor,
    logits: &Tensor,
    vocab_size: i64,
    dice: &mut Dice,
) -> Result<(), EvalError> {
    let size = inputs.size();
    let (rows, seq_len) = (size[0], size[1]);
    let device = inputs.device();
    let cuts = dice.cuts(rows, seq_len);
    // Every token after the cut becomes another valid token: (token + shift) mod vocab, with a
    // shift in 1..vocab per row.
    let shifts: Vec<i64> = (0..rows).map(|_| 1 + dice.below((vocab_size - 1).max(1) as u64) as i64).collect();
    let column = |values: &[i64]| Tensor::f_from_slice(values).and_then(|t| t.f_to_device(device)?.f_view([rows, 1]));
    let positions =
        Tensor::f_arange(seq_len, (Kind::Int64, device)).and_then(|t| t.f_view([1, seq_len])).map_err(torch)?;
    let after = positions.f_gt_tensor(&column(&cuts).map_err(torch)?).map_err(torch)?;
    let kept = after.f_logical_not().map_err(torch)?;
    let shifted =
        inputs.f_add(&column(&shifts).map_err(torch)?).and_then(|t| t.f_remainder(vocab_size)).map_err(torch)?;
    let changed = inputs.f_where_self(&kept, &shifted).map_err(torch)?;
    let moved = model
        .forward_ts(&[changed])
        .map_err(|e| EvalError::Model(format!("the model's forward pass failed: {}", crate::bpb::first_line(&e))))?;
    if moved.size() != logits.size() {
        return Err(EvalError::Model("the model's output shape depends on its input's content".into()));
    }
    let worst = (|| -> Result<(f64, f64), tch::TchError> {
        let a = logits.f_to_kind(Kind::Double)?.f_to_device(device)?;
        let b = moved.f_to_kind(Kind::Double)?.f_to_device(device)?;
        let scale = a.f_abs()?.f_max()?.f_double_value(&[])?;
        let mask = kept.f_unsqueeze(-1)?.f_expand_as(&a)?;
        let worst = a.f_sub(&b)?.f_abs()?.f_masked_select(&mask)?.f_max()?.f_double_value(&[])?;
        Ok((worst, scale.max(1.0)))
    })();
    let (worst, scale) = worst.map_err(torch)?;
    if worst.is_nan() || worst > TOLERANCE * scale {
        return Err(EvalError::Model(format!(
            "the model looks ahead: its logits changed by {worst:.3e} at positions before a cut when only the \
             tokens after it changed (a causal model's do not); refused"
        )));
    }
    Ok(())
}

fn torch(e: tch::TchError) -> EvalError {
    EvalError::Torch(crate::bpb::first_line(&e))
}
