//! Reading an LLM's reply: the `Description:` and `Hypothesis:` lines and the complete
//! `train.py` in the first fenced code block tagged `python` (or `py`, or untagged).
//!
//! The code must look like a whole `train.py` (it imports the harness and prints the summary);
//! a diff or a fragment is refused with a reason instead of being run.

use super::{Proposal, ProposeError};

/// The longest description kept (as Python).
const MAX_DESCRIPTION: usize = 500;

/// The first fenced block: tagged `python`/`py`/`python3` first, else an untagged one.
fn code_block(reply: &str) -> Option<String> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in reply.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(tag) = trimmed.strip_prefix("```") {
                    open = Some((tag.trim().to_ascii_lowercase(), Vec::new()));
                }
            }
            Some((tag, body)) => {
                if trimmed.starts_with("```") {
                    blocks.push((std::mem::take(tag), body.join("\n")));
                    open = None;
                } else {
                    body.push(line);
                }
            }
        }
    }
    let tagged = blocks.iter().find(|(tag, _)| matches!(tag.as_str(), "python" | "py" | "python3"));
    tagged.or_else(|| blocks.iter().find(|(tag, _)| tag.is_empty())).map(|(_, body)| body.clone())
}

fn labelled<'a>(reply: &'a str, label: &str) -> Option<&'a str> {
    reply.lines().find_map(|line| {
        let line = line.trim().trim_start_matches(['*', '-', ' ']).trim_start();
        let rest = line.strip_prefix(label)?;
        Some(rest.trim_start_matches(['*', ':', ' ']).trim())
    })
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Parses a reply into a proposal.
pub fn parse_reply(reply: &str) -> Result<Proposal, ProposeError> {
    let code = code_block(reply).ok_or_else(|| ProposeError::Malformed("the reply has no ```python block".into()))?;
    let code = code.trim().to_string() + "\n";
    if code.lines().take(5).any(|l| l.starts_with("--- ") || l.starts_with("@@ ")) {
        return Err(ProposeError::Malformed("the reply's code block is a diff, not the complete train.py".into()));
    }
    if !code.contains("from prepare import") || !code.contains("val_bpb") {
        return Err(ProposeError::Malformed(
            "the reply's code is not a complete train.py (it must import prepare and print val_bpb)".into(),
        ));
    }
    let description = labelled(reply, "Description").filter(|d| !d.is_empty()).map(str::to_string).or_else(|| {
        reply
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("```") && !l.starts_with('#') && !l.starts_with("Hypothesis"))
            .map(str::to_string)
    });
    let description = cut(&description.unwrap_or_else(|| "LLM-proposed modification".into()), MAX_DESCRIPTION);
    let hypothesis = cut(labelled(reply, "Hypothesis").unwrap_or(""), MAX_DESCRIPTION);
    Ok(Proposal { code, description, hypothesis })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "from prepare import evaluate_bpb\nprint('val_bpb:')";

    #[test]
    fn reads_description_hypothesis_and_code() {
        let reply =
            format!("Description: raise the LR\nHypothesis: faster convergence\n```python\n{CODE}\n```\ntrailing");
        let p = parse_reply(&reply).unwrap();
        assert_eq!(p.description, "raise the LR");
        assert_eq!(p.hypothesis, "faster convergence");
        assert_eq!(p.code, format!("{CODE}\n"));
    }

    #[test]
    fn falls_back_to_the_first_prose_line_and_accepts_py_tags() {
        let reply = format!("# Plan\n\nI doubled the depth.\n```py\n{CODE}\n```");
        let p = parse_reply(&reply).unwrap();
        assert_eq!(p.description, "I doubled the depth.");
        assert_eq!(p.hypothesis, "");
        let reply = format!("**Description:** wider MLP\n```\n{CODE}\n```");
        assert_eq!(parse_reply(&reply).unwrap().description, "wider MLP");
    }

    #[test]
    fn refuses_fragments_diffs_and_replies_without_code() {
        assert!(matches!(parse_reply("no code here"), Err(ProposeError::Malformed(_))));
        assert!(matches!(parse_reply("```python\nx = 1\n```"), Err(ProposeError::Malformed(_))));
        let diff = format!("```python\n--- train.py\n+++ train.py\n@@ -1 +1 @@\n{CODE}\n```");
        assert!(matches!(parse_reply(&diff), Err(ProposeError::Malformed(_))));
    }

    #[test]
    fn long_descriptions_are_cut() {
        let reply = format!("Description: {}\n```python\n{CODE}\n```", "x".repeat(900));
        assert_eq!(parse_reply(&reply).unwrap().description.len(), 500);
    }
}
