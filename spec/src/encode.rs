//! A JSON writer byte-identical to Python's `json.dumps(..., ensure_ascii=True)`.
//!
//! Compact form (`separators=(",", ":")`) with the keys either as given (the wire envelope) or
//! sorted by code point (`sort_keys=True`, the canonical payload), and the `indent=2` form that
//! `ExperimentRecord.to_json()` writes.

use crate::json::Value;
use crate::number::JsonNumber;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `text` as a JSON string literal with Python's `ensure_ascii` escapes: the short
/// escapes for `"` `\` `\n` `\r` `\t` `\b` `\f`, and `\uXXXX` (lowercase, UTF-16 surrogate pairs
/// above U+FFFF) for every other character outside printable ASCII, DEL included. `/` is kept.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            continue;
        }
        if b >= 0x80 && !is_char_start(b) {
            continue; // continuation byte: handled with its lead byte
        }
        out.extend_from_slice(&bytes[run_start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write_u_escape(out, *unit);
                }
            }
        }
        run_start = i + if b >= 0x80 { utf8_len(b) } else { 1 };
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

fn is_char_start(b: u8) -> bool {
    b & 0xC0 != 0x80
}

fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        _ => 2,
    }
}

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// Appends a number as Python prints it (`int` digits or `repr(float)`).
pub fn write_number(out: &mut Vec<u8>, number: &JsonNumber) {
    match number {
        JsonNumber::Int(text) => out.extend_from_slice(text.as_bytes()),
        JsonNumber::Float(x) => crate::number::write_python_float(out, *x),
    }
}

/// Key order for `write_compact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// As stored in the value (Python dict insertion order).
    AsGiven,
    /// Sorted by code point at every level (`sort_keys=True`).
    Sorted,
}

/// `json.dumps(value, separators=(",", ":"), sort_keys=..., ensure_ascii=True)`.
pub fn write_compact(out: &mut Vec<u8>, value: &Value, order: KeyOrder) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(out, item, order);
            }
            out.push(b']');
        }
        Value::Object(entries) => {
            out.push(b'{');
            for (i, (key, item)) in ordered(entries, order).into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_compact(out, item, order);
            }
            out.push(b'}');
        }
    }
}

/// `json.dumps(value, sort_keys=True, indent=2)` (Python's default separators with indent:
/// `","` at line ends and `": "` after keys; no trailing newline).
pub fn write_pretty_sorted(out: &mut Vec<u8>, value: &Value, level: usize) {
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                out.extend_from_slice(if i > 0 { b",\n" } else { b"\n" });
                indent(out, level + 1);
                write_pretty_sorted(out, item, level + 1);
            }
            out.push(b'\n');
            indent(out, level);
            out.push(b']');
        }
        Value::Object(entries) if !entries.is_empty() => {
            out.push(b'{');
            for (i, (key, item)) in ordered(entries, KeyOrder::Sorted).into_iter().enumerate() {
                out.extend_from_slice(if i > 0 { b",\n" } else { b"\n" });
                indent(out, level + 1);
                write_string(out, key);
                out.extend_from_slice(b": ");
                write_pretty_sorted(out, item, level + 1);
            }
            out.push(b'\n');
            indent(out, level);
            out.push(b'}');
        }
        other => write_compact(out, other, KeyOrder::Sorted),
    }
}

fn indent(out: &mut Vec<u8>, level: usize) {
    out.extend(std::iter::repeat_n(b' ', level * 2));
}

fn ordered(entries: &[(String, Value)], order: KeyOrder) -> Vec<(&str, &Value)> {
    let mut refs: Vec<(&str, &Value)> = entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if order == KeyOrder::Sorted {
        // Python compares str by code point; UTF-8 byte order is the same order.
        refs.sort_by(|a, b| a.0.cmp(b.0));
    }
    refs
}

/// Convenience: the compact encoding as a `String` (always ASCII).
pub fn to_compact_string(value: &Value, order: KeyOrder) -> String {
    let mut out = Vec::new();
    write_compact(&mut out, value, order);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_python_ensure_ascii() {
        assert_eq!(escaped("a/b"), r#""a/b""#);
        assert_eq!(escaped("\"\\\n\r\t\u{8}\u{c}"), r#""\"\\\n\r\t\b\f""#);
        assert_eq!(escaped("\u{1}\u{1f}\u{7f}"), r#""\u0001\u001f\u007f""#);
        assert_eq!(escaped("naïve π"), r#""na\u00efve \u03c0""#);
        assert_eq!(escaped("😀"), r#""\ud83d\ude00""#);
        assert_eq!(escaped("\u{2028}\u{feff}"), r#""\u2028\ufeff""#);
    }

    #[test]
    fn pretty_form_matches_python_indent_2() {
        let value = crate::json::parse(r#"{"b":[],"a":{"y":1,"x":null},"c":[1,2]}"#).unwrap();
        let mut out = Vec::new();
        write_pretty_sorted(&mut out, &value, 0);
        let want =
            "{\n  \"a\": {\n    \"x\": null,\n    \"y\": 1\n  },\n  \"b\": [],\n  \"c\": [\n    1,\n    2\n  ]\n}";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}
