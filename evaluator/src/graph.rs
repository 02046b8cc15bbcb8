//! What a model may call. A TorchScript archive carries its program as source text
//! (`<archive>/code/**.py`), which libtorch compiles when it loads the model; that text is read
//! here first. Operators of two namespaces are allowed, `aten` (tensor math) and `prim` (the
//! interpreter's own), except the two `aten` operators that touch files (`from_file`, `save`);
//! any other namespace (`c10d` networking, `profiler`, custom libraries, ...) is refused. An
//! archive with entries stored in another way than plain or deflated (all `torch.jit.save`
//! writes, and all libtorch reads) is refused too: text this check cannot read must not reach
//! libtorch.

use std::io::Read;
use std::path::Path;

use crate::EvalError;

/// Operator namespaces a model may use.
pub const ALLOWED_NAMESPACES: [&str; 2] = ["aten", "prim"];
/// `aten` operators that read or write files.
pub const DENIED_OPS: [&str; 2] = ["from_file", "save"];
/// Largest code entry read (a model's code is kilobytes).
const MAX_CODE_BYTES: u64 = 16 << 20;

/// Refuses the archive at `path` if its code calls anything outside the allowed operators.
pub fn check_archive(path: &Path) -> Result<(), EvalError> {
    let refuse = |why: String| EvalError::Model(format!("{}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot open: {e}")))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        EvalError::Model(format!("{} is not a loadable TorchScript model (not a zip archive: {e})", path.display()))
    })?;
    let mut code_files = 0;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| refuse(format!("unreadable archive entry: {e}")))?;
        if !matches!(entry.compression(), zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated) {
            return Err(refuse(format!("entry {} is compressed with {:?}", entry.name(), entry.compression())));
        }
        let name = entry.name().to_string();
        if !(name.contains("/code/") && name.ends_with(".py")) {
            continue;
        }
        let mut text = String::new();
        (&mut entry)
            .take(MAX_CODE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| refuse(format!("code entry {name} is not text: {e}")))?;
        if text.len() as u64 > MAX_CODE_BYTES {
            return Err(refuse(format!("code entry {name} is over {MAX_CODE_BYTES} bytes")));
        }
        check_code(&text).map_err(|why| refuse(format!("{name}: {why}")))?;
        code_files += 1;
    }
    if code_files == 0 {
        return Err(refuse("no TorchScript code in the archive".into()));
    }
    Ok(())
}

/// Refuses serialized TorchScript source that names a denied operator or a namespace outside
/// [`ALLOWED_NAMESPACES`]. Works on identifiers, so a name inside a string literal counts too
/// (a model has no reason to spell them).
pub fn check_code(text: &str) -> Result<(), String> {
    let words: Vec<&str> = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).collect();
    for word in words {
        let parts: Vec<&str> = word.split('.').collect();
        if let Some(op) = parts.iter().find(|part| DENIED_OPS.contains(part) && word.starts_with("torch.")) {
            return Err(format!("calls torch.{op}, which touches files"));
        }
        if parts.contains(&"from_file") {
            return Err("calls from_file, which reads files".into());
        }
        for pair in parts.windows(2) {
            if pair[0] == "ops" && !ALLOWED_NAMESPACES.contains(&pair[1]) {
                return Err(format!("calls an operator of namespace {:?} (only {ALLOWED_NAMESPACES:?})", pair[1]));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_code;

    #[test]
    fn allows_tensor_math_and_refuses_files_and_foreign_namespaces() {
        let honest = "def forward(self, x: Tensor) -> Tensor:\n  y = torch.softmax(torch.matmul(x, x), -1)\n  \
                      _0 = ops.prim.NumToTensor(torch.size(y, 0))\n  return torch.save_a_copy(y)\n";
        assert_eq!(check_code(honest), Ok(()));
        for bad in [
            "  t = torch.from_file(\"/etc/passwd\", True, 10)\n",
            "  _0 = torch.save(x, \"/tmp/x\")\n",
            "  _0 = ops.c10d.allreduce_([x])\n",
            "  _0 = torch.ops.profiler._record_function_enter(\"x\")\n",
            "  _0 = x.from_file\n",
        ] {
            assert!(check_code(bad).is_err(), "{bad}");
        }
    }
}
