//! Progress of a training run, read from the progress lines `train.py` prints
//! (`step 00042 (13.9%) | loss: 4.123456 | ... | remaining: 258s`), shown as a bar on a
//! terminal and as a plain line every 10 % otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// One progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub step: u64,
    pub percent: f64,
    pub loss: Option<f64>,
    pub remaining_seconds: Option<u64>,
}

/// Parses a progress line; `None` for anything else.
pub fn parse_progress(line: &str) -> Option<Progress> {
    let rest = line.trim_start_matches('\r').trim_start().strip_prefix("step ")?;
    let (step, rest) = rest.trim_start().split_once(' ')?;
    let step = step.parse().ok()?;
    let percent = rest.trim_start().strip_prefix('(')?.split_once("%)")?.0.trim().parse().ok()?;
    let field = |name: &str| {
        rest.split('|')
            .find_map(|part| part.trim().strip_prefix(name).map(|v| v.trim().trim_end_matches('s').to_string()))
    };
    Some(Progress {
        step,
        percent,
        loss: field("loss:").and_then(|v| v.parse().ok()),
        remaining_seconds: field("remaining:").and_then(|v| v.parse().ok()),
    })
}

/// Shows progress for one run.
#[derive(Debug)]
pub struct ProgressReporter {
    label: String,
    bar: Option<ProgressBar>,
    last_decile: Mutex<i64>,
}

impl ProgressReporter {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(1000);
            if let Ok(style) = ProgressStyle::with_template("  {prefix} [{bar:30}] {percent:>3}% {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_string());
            bar
        });
        ProgressReporter { label: label.to_string(), bar, last_decile: Mutex::new(-1) }
    }

    pub fn update(&self, progress: &Progress) {
        let loss = progress.loss.map(|l| format!("loss {l:.4}")).unwrap_or_default();
        let remaining = progress.remaining_seconds.map(|s| format!(", {s}s left")).unwrap_or_default();
        if let Some(bar) = &self.bar {
            bar.set_position((progress.percent * 10.0).clamp(0.0, 1000.0) as u64);
            bar.set_message(format!("step {} {loss}{remaining}", progress.step));
            return;
        }
        let decile = (progress.percent / 10.0).floor() as i64;
        if let Ok(mut last) = self.last_decile.lock()
            && decile > *last
        {
            *last = decile;
            tracing::info!("{}: step {} ({:.0}%) {loss}{remaining}", self.label, progress.step, progress.percent);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_progress_line_of_train_py() {
        let line = "\rstep 00042 (13.9%) | loss: 4.123456 | lrm: 1.00 | dt: 312ms | tok/sec: 1,680,000 | mfu: 38.1% \
                    | epoch: 1 | remaining: 258s    ";
        let p = parse_progress(line).unwrap();
        assert_eq!(p.step, 42);
        assert_eq!(p.percent, 13.9);
        assert_eq!(p.loss, Some(4.123456));
        assert_eq!(p.remaining_seconds, Some(258));
        assert_eq!(parse_progress("val_bpb: 1.0"), None);
        assert_eq!(parse_progress("step forward"), None);
    }
}
