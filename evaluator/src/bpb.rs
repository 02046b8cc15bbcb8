//! Bits per byte of an exported model, exactly as `prepare.py`'s `evaluate_bpb` defines it:
//! `eval_tokens / seq_len` rows of the validation split — cut from one token stream (each row's
//! targets run one token past it) or, [`Layout::Rows`], packed rows of `seq_len + 1` tokens —
//! cross-entropy in nats summed over the targets that stand for bytes, divided by ln 2 times the
//! bytes of all targets. What a token stands for is the tokenizer's table
//! ([`TokenBytes::Table`]), or one byte for every token but BOS ([`TokenBytes::ByteLevel`]).

use std::time::Instant;

use serde::Serialize;
use tch::{CModule, Device, Kind, Reduction, Tensor};

use crate::EvalError;
use crate::causal::{Dice, check_batch};

/// How the validation tokens are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One stream: row `i` is tokens `i·seq_len ..= (i+1)·seq_len`.
    Stream,
    /// Rows of `seq_len + 1` tokens, one after the other (packed documents).
    Rows,
}

/// How many bytes each target token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenBytes {
    /// Byte-level vocabulary: every token is a byte but BOS.
    ByteLevel,
    /// The tokenizer's table: the bytes of token `i`, 0 for special tokens.
    Table(Vec<i64>),
}

/// What `prepare.py` pins for the profile that ran: printed in its `eval` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalPlan {
    pub seq_len: i64,
    pub eval_tokens: i64,
    pub vocab_size: i64,
    /// The token that starts every document; with [`TokenBytes::ByteLevel`], targets equal to it
    /// are not bytes.
    pub bos: i64,
    /// Rows per forward pass (does not change the result).
    pub batch_size: i64,
    pub layout: Layout,
    pub token_bytes: TokenBytes,
}

/// The measurement.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    pub val_bpb: f64,
    /// Byte targets scored.
    pub bytes: i64,
    /// Rows of `seq_len` tokens evaluated.
    pub rows: i64,
    pub seconds: f64,
    pub device: String,
}

/// Loads a TorchScript module (`torch.jit.trace`/`script` + `save`) onto `device`, once its code
/// has passed [`crate::graph::check_archive`].
pub fn load_model(path: &std::path::Path, device: Device, max_bytes: u64) -> Result<CModule, EvalError> {
    let size = std::fs::metadata(path)
        .map_err(|e| EvalError::Model(format!("no exported model at {}: {e}", path.display())))?
        .len();
    if size > max_bytes {
        return Err(EvalError::Model(format!("{} is {size} bytes, over the limit of {max_bytes}", path.display())));
    }
    crate::graph::check_archive(path)?;
    let mut module = CModule::load_on_device(path, device).map_err(|e| {
        EvalError::Model(format!("{} is not a loadable TorchScript model: {}", path.display(), first_line(&e)))
    })?;
    module.f_set_eval().map_err(|e| EvalError::Model(first_line(&e)))?;
    Ok(module)
}

/// Runs `model` over the validation tokens, and refuses it if it looks ahead
/// ([`crate::causal`]: a few scored batches, chosen by `dice`, run again with later tokens
/// changed).
pub fn evaluate(
    model: &CModule,
    tokens: &[i64],
    plan: &EvalPlan,
    device: Device,
    dice: &mut Dice,
) -> Result<Evaluation, EvalError> {
    if plan.seq_len < 1 || plan.batch_size < 1 || plan.eval_tokens < 1 {
        return Err(EvalError::Usage("seq_len, batch_size and eval_tokens must be positive".into()));
    }
    let (stride, tail) = match plan.layout {
        Layout::Stream => (plan.seq_len, 1),
        Layout::Rows => (plan.seq_len + 1, 0),
    };
    let available = match plan.layout {
        Layout::Stream => (tokens.len() as i64 - 1).max(0) / plan.seq_len,
        Layout::Rows => tokens.len() as i64 / stride,
    };
    let rows = (plan.eval_tokens / plan.seq_len).min(available);
    let weights = match &plan.token_bytes {
        TokenBytes::ByteLevel => {
            let mut weights = vec![1i64; plan.vocab_size.max(0) as usize];
            if let Some(bos) = weights.get_mut(plan.bos as usize) {
                *bos = 0;
            }
            weights
        }
        TokenBytes::Table(table) => table.clone(),
    };
    if weights.len() as i64 != plan.vocab_size {
        return Err(EvalError::Data(format!(
            "the token-byte table has {} entries for a vocabulary of {}",
            weights.len(),
            plan.vocab_size
        )));
    }
    let weights = Tensor::f_from_slice(&weights).and_then(|t| t.f_to_device(device)).map_err(torch)?;
    if rows == 0 {
        return Err(EvalError::Data(format!(
            "the validation split has {} tokens, not one row of {}",
            tokens.len(),
            plan.seq_len
        )));
    }
    let started = Instant::now();
    let all = Tensor::f_from_slice(&tokens[..(rows * stride + tail) as usize]).map_err(torch)?;
    let checked = dice.batches(((rows + plan.batch_size - 1) / plan.batch_size) as usize);
    let (nats, bytes) = tch::no_grad(|| -> Result<(f64, i64), EvalError> {
        let mut total_nats = 0.0f64;
        let mut total_bytes = 0i64;
        let mut start = 0;
        let mut batch = 0;
        while start < rows {
            let count = plan.batch_size.min(rows - start);
            let n = count * plan.seq_len;
            let (inputs, targets) = batch_of(&all, plan, start, count)?;
            let inputs = inputs.f_to_device(device).map_err(torch)?;
            let targets = targets.f_to_device(device).map_err(torch)?;
            let logits = model
                .forward_ts(&[&inputs])
                .map_err(|e| EvalError::Model(format!("the model's forward pass failed: {}", first_line(&e))))?;
            let shape = logits.size();
            if shape != [count, plan.seq_len, plan.vocab_size] {
                return Err(EvalError::Model(format!(
                    "the model returned logits of shape {shape:?}, expected [{count}, {}, {}]",
                    plan.seq_len, plan.vocab_size
                )));
            }
            if checked.contains(&batch) {
                check_batch(model, &inputs, &logits, plan.vocab_size, dice)?;
            }
            batch += 1;
            let logits = logits.f_to_kind(Kind::Float).and_then(|t| t.f_view([n, plan.vocab_size])).map_err(torch)?;
            let nats =
                logits.f_cross_entropy_loss::<Tensor>(&targets, None, Reduction::None, -100, 0.0).map_err(torch)?;
            let bytes = weights.f_index_select(0, &targets).map_err(torch)?;
            let is_byte = bytes.f_gt(0).map_err(torch)?;
            let batch_nats = nats
                .f_masked_select(&is_byte)
                .and_then(|t| t.f_sum(Kind::Double))
                .and_then(|t| t.f_double_value(&[]))
                .map_err(torch)?;
            total_nats += batch_nats;
            total_bytes += bytes.f_sum(Kind::Int64).and_then(|t| t.f_int64_value(&[])).map_err(torch)?;
            start += count;
        }
        Ok((total_nats, total_bytes))
    })?;
    if bytes == 0 {
        return Err(EvalError::Data("the evaluated rows hold no byte targets".into()));
    }
    let val_bpb = nats / (std::f64::consts::LN_2 * bytes as f64);
    if !val_bpb.is_finite() || val_bpb <= 0.0 {
        return Err(EvalError::Model(format!("the model's val_bpb is {val_bpb}, not a positive finite number")));
    }
    Ok(Evaluation {
        val_bpb,
        bytes,
        rows,
        seconds: started.elapsed().as_secs_f64(),
        device: format!("{device:?}").to_lowercase(),
    })
}

/// Inputs `[count, seq_len]` and flat targets of rows `start..start + count`.
fn batch_of(all: &Tensor, plan: &EvalPlan, start: i64, count: i64) -> Result<(Tensor, Tensor), EvalError> {
    let n = count * plan.seq_len;
    match plan.layout {
        Layout::Stream => {
            let window = all.f_narrow(0, start * plan.seq_len, n + 1).map_err(torch)?;
            let inputs = window.f_narrow(0, 0, n).and_then(|t| t.f_view([count, plan.seq_len])).map_err(torch)?;
            let targets = window.f_narrow(0, 1, n).map_err(torch)?;
            Ok((inputs, targets))
        }
        Layout::Rows => {
            let stride = plan.seq_len + 1;
            let rows = all
                .f_narrow(0, start * stride, count * stride)
                .and_then(|t| t.f_view([count, stride]))
                .map_err(torch)?;
            let inputs = rows.f_narrow(1, 0, plan.seq_len).and_then(|t| t.f_contiguous()).map_err(torch)?;
            let targets = rows.f_narrow(1, 1, plan.seq_len).and_then(|t| t.f_reshape([n])).map_err(torch)?;
            Ok((inputs, targets))
        }
    }
}

fn torch(e: tch::TchError) -> EvalError {
    EvalError::Torch(first_line(&e))
}

/// libtorch errors carry a C++ backtrace after the message; the first line says what happened.
pub(crate) fn first_line(e: &tch::TchError) -> String {
    let text = e.to_string();
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("unknown libtorch error").trim().to_string()
}
