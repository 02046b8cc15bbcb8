//! Applying a record's `diff` (the unified diff [`super::diff::unified_diff`] writes, or one from
//! `diff -u` / `git diff`) to the parent's `train.py`, strictly: every context and removed line
//! must be where the hunk says, or the diff does not apply. No fuzz, no offsets: a candidate
//! that is not exactly what its author meant is not run.

/// Why a diff does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("line {line} of the diff is not a hunk header: {text:?}")]
    BadHeader { line: usize, text: String },
    #[error("hunk at diff line {line} starts before the end of the previous hunk")]
    Overlap { line: usize },
    #[error("hunk at diff line {line}: line {at} of train.py is {found:?}, the diff expects {expected:?}")]
    Mismatch { line: usize, at: usize, expected: String, found: String },
    #[error("hunk at diff line {line}: it counts {header} lines for {side}, its body has {body}")]
    Count { line: usize, side: &'static str, header: usize, body: usize },
    #[error("line {line} of the diff is neither context, removal nor addition: {text:?}")]
    BadLine { line: usize, text: String },
}

struct Hunk {
    /// 1-based line of the diff where the hunk header is.
    line: usize,
    old_start: usize,
    old_len: usize,
    new_len: usize,
    body: Vec<(char, String)>,
}

/// `-s[,l]` or `+s[,l]` of a hunk header.
fn range(text: &str) -> Option<(usize, usize)> {
    let (start, len) = text.split_once(',').unwrap_or((text, "1"));
    Some((start.parse().ok()?, len.parse().ok()?))
}

fn parse(diff: &str) -> Result<Vec<Hunk>, PatchError> {
    let mut hunks: Vec<Hunk> = Vec::new();
    for (i, text) in diff.lines().enumerate() {
        let line = i + 1;
        if let Some(header) = text.strip_prefix("@@ ") {
            let bad = || PatchError::BadHeader { line, text: text.to_string() };
            let mut parts = header.split_whitespace();
            let old = parts.next().and_then(|p| p.strip_prefix('-')).and_then(range).ok_or_else(bad)?;
            let new = parts.next().and_then(|p| p.strip_prefix('+')).and_then(range).ok_or_else(bad)?;
            if parts.next() != Some("@@") {
                return Err(bad());
            }
            hunks.push(Hunk { line, old_start: old.0, old_len: old.1, new_len: new.1, body: Vec::new() });
            continue;
        }
        let Some(hunk) = hunks.last_mut() else { continue }; // headers before the first hunk
        let (used_old, used_new) = hunk.body.iter().fold((0, 0), |(o, n), (kind, _)| match kind {
            ' ' => (o + 1, n + 1),
            '-' => (o + 1, n),
            _ => (o, n + 1),
        });
        if used_old == hunk.old_len && used_new == hunk.new_len {
            // The hunk is complete: what follows until the next header is trailing text.
            if text.starts_with("--- ") || text.starts_with("+++ ") || text.starts_with("diff ") || text.is_empty() {
                continue;
            }
        }
        match text.chars().next() {
            Some(kind @ (' ' | '-' | '+')) => hunk.body.push((kind, text[1..].to_string())),
            // Some editors strip the space of an empty context line.
            None => hunk.body.push((' ', String::new())),
            Some('\\') => {} // "\ No newline at end of file"
            Some(_) => return Err(PatchError::BadLine { line, text: text.to_string() }),
        }
    }
    Ok(hunks)
}

/// `old` with `diff` applied. A file that ended with a newline (or was empty) still does.
pub fn apply(old: &str, diff: &str) -> Result<String, PatchError> {
    let old_lines: Vec<&str> = old.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut cursor = 0usize;
    for hunk in parse(diff)? {
        let line = hunk.line;
        let (old_count, new_count) = hunk.body.iter().fold((0, 0), |(o, n), (kind, _)| match kind {
            ' ' => (o + 1, n + 1),
            '-' => (o + 1, n),
            _ => (o, n + 1),
        });
        if old_count != hunk.old_len {
            return Err(PatchError::Count { line, side: "train.py", header: hunk.old_len, body: old_count });
        }
        if new_count != hunk.new_len {
            return Err(PatchError::Count { line, side: "the candidate", header: hunk.new_len, body: new_count });
        }
        // An empty old range names the line after which the hunk goes.
        let start = if hunk.old_len == 0 { hunk.old_start } else { hunk.old_start.saturating_sub(1) };
        if start < cursor || start > old_lines.len() {
            return Err(PatchError::Overlap { line });
        }
        out.extend(old_lines[cursor..start].iter().map(|l| l.to_string()));
        let mut at = start;
        for (kind, text) in hunk.body {
            if kind == '+' {
                out.push(text);
                continue;
            }
            let found = old_lines.get(at).copied();
            if found != Some(text.as_str()) {
                return Err(PatchError::Mismatch {
                    line,
                    at: at + 1,
                    expected: text,
                    found: found.unwrap_or("<end of file>").to_string(),
                });
            }
            if kind == ' ' {
                out.push(text);
            }
            at += 1;
        }
        cursor = at;
    }
    out.extend(old_lines[cursor..].iter().map(|l| l.to_string()));
    let mut new = out.join("\n");
    if !out.is_empty() && (old.is_empty() || old.ends_with('\n')) {
        new.push('\n');
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::research::diff::unified_diff;

    #[test]
    fn applies_a_one_line_change_and_an_insertion_at_the_start() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let diff = "--- train.py\n+++ train.py\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h";
        assert_eq!(apply(old, diff).unwrap(), "a\nb\nc\nd\nE\nf\ng\nh\n");
        assert_eq!(apply("x\n", "--- train.py\n+++ train.py\n@@ -1 +1,2 @@\n+new\n x").unwrap(), "new\nx\n");
        assert_eq!(apply("x\ny\n", "@@ -1,2 +0,0 @@\n-x\n-y").unwrap(), "");
        assert_eq!(apply("LR = 0.04\n", "").unwrap(), "LR = 0.04\n", "an empty diff changes nothing");
    }

    #[test]
    fn a_diff_against_other_code_does_not_apply() {
        let diff = "@@ -1 +1 @@\n-LR = 0.04\n+LR = 0.05";
        let error = apply("LR = 0.03\n", diff).unwrap_err();
        assert_eq!(
            error,
            PatchError::Mismatch { line: 1, at: 1, expected: "LR = 0.04".into(), found: "LR = 0.03".into() }
        );
        assert!(matches!(apply("a\n", "@@ -1,2 +1 @@\n-a\n+b").unwrap_err(), PatchError::Count { .. }));
        assert!(matches!(apply("a\n", "@@ -x +1 @@\n-a\n+b").unwrap_err(), PatchError::BadHeader { .. }));
        assert!(matches!(apply("a\n", "@@ -1 +1 @@\n*a\n+b").unwrap_err(), PatchError::BadLine { .. }));
        assert!(matches!(apply("a\n", "@@ -5 +5 @@\n-a\n+b").unwrap_err(), PatchError::Overlap { .. }));
    }

    #[test]
    fn takes_git_style_headers_and_no_newline_markers() {
        let diff = "diff --git a/train.py b/train.py\nindex 1..2 100644\n--- a/train.py\n+++ b/train.py\n\
                    @@ -1,2 +1,2 @@\n keep\n-old\n\\ No newline at end of file\n+new\n\\ No newline at end of file\n";
        assert_eq!(apply("keep\nold", diff).unwrap(), "keep\nnew");
    }

    proptest! {
        #[test]
        fn what_unified_diff_writes_applies_back(
            old in prop::collection::vec("[a-c]{0,2}", 0..30),
            new in prop::collection::vec("[a-c]{0,2}", 0..30),
        ) {
            let (old, new) = (lines(&old), lines(&new));
            prop_assert_eq!(apply(&old, &unified_diff(&old, &new)).unwrap(), new);
        }
    }

    fn lines(items: &[String]) -> String {
        items.iter().map(|l| format!("{l}\n")).collect()
    }
}
