//! The `diff` field of a record: a unified diff of the parent's `train.py` to the child's, in
//! the form Python's `difflib.unified_diff(old.splitlines(), new.splitlines(), "train.py",
//! "train.py", lineterm="")` joined with `\n` produces (3 lines of context, no trailing
//! newline, no "\ No newline" markers); `""` when the files are equal.

use similar::{DiffOp, TextDiff};

/// The unified diff of `old` to `new`.
pub fn unified_diff(old: &str, new: &str) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let diff = TextDiff::configure().diff_slices(&old_lines, &new_lines);
    let groups = diff.grouped_ops(3);
    if groups.is_empty() {
        return String::new();
    }
    let mut out = vec!["--- train.py".to_string(), "+++ train.py".to_string()];
    for group in groups {
        let Some(first) = group.first() else { continue };
        // The lengths are summed over the ops: a trailing deletion's `new_range` does not always
        // sit at the end of what came before it.
        let old_len: usize = group.iter().map(|op| op.old_range().len()).sum();
        let new_len: usize = group.iter().map(|op| op.new_range().len()).sum();
        let old_range = first.old_range().start..first.old_range().start + old_len;
        let new_range = first.new_range().start..first.new_range().start + new_len;
        out.push(format!("@@ -{} +{} @@", range(old_range), range(new_range)));
        for op in &group {
            match *op {
                DiffOp::Equal { old_index, len, .. } => {
                    out.extend(old_lines[old_index..old_index + len].iter().map(|l| format!(" {l}")));
                }
                DiffOp::Delete { old_index, old_len, .. } => {
                    out.extend(old_lines[old_index..old_index + old_len].iter().map(|l| format!("-{l}")));
                }
                DiffOp::Insert { new_index, new_len, .. } => {
                    out.extend(new_lines[new_index..new_index + new_len].iter().map(|l| format!("+{l}")));
                }
                DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                    out.extend(old_lines[old_index..old_index + old_len].iter().map(|l| format!("-{l}")));
                    out.extend(new_lines[new_index..new_index + new_len].iter().map(|l| format!("+{l}")));
                }
            }
        }
    }
    out.join("\n")
}

/// difflib's `_format_range_unified`: 1-based start, length omitted when 1, start - 1 when empty.
fn range(r: std::ops::Range<usize>) -> String {
    let len = r.end - r.start;
    match len {
        0 => format!("{},0", r.start),
        1 => format!("{}", r.start + 1),
        _ => format!("{},{}", r.start + 1, len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_files_have_an_empty_diff() {
        assert_eq!(unified_diff("a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn matches_difflib_for_a_one_line_change() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        // python3 -c 'import difflib; print("\n".join(difflib.unified_diff(o.splitlines(), n.splitlines(),
        //   "train.py", "train.py", lineterm="")))'
        assert_eq!(
            unified_diff(old, new),
            "--- train.py\n+++ train.py\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h"
        );
    }

    #[test]
    fn hunk_headers_count_what_the_hunk_holds() {
        // Found by applying diffs back (research::patch): the header once said 25 new lines here.
        let old = ["", "", "a", "", "", "", "c", "aa", "b"];
        let new = ["", "", "", "b", "", "a", "a", "", "ab", "a", "a", "a", "", "", "", "", "", "", "", "", "", "ab"];
        let lines = |items: &[&str]| items.iter().map(|l| format!("{l}\n")).collect::<String>();
        let new = [&new[..], &["", "", "c", "c"]].concat();
        let diff = unified_diff(&lines(&old), &lines(&new));
        let header = diff.lines().nth(2).unwrap();
        assert_eq!(header, "@@ -1,9 +1,26 @@", "{diff}");
    }

    #[test]
    fn insertion_at_the_start_and_deletion_of_everything() {
        assert_eq!(unified_diff("x\n", "new\nx\n"), "--- train.py\n+++ train.py\n@@ -1 +1,2 @@\n+new\n x");
        assert_eq!(unified_diff("x\ny\n", ""), "--- train.py\n+++ train.py\n@@ -1,2 +0,0 @@\n-x\n-y");
    }
}
