//! A JSON reader that keeps what Python's `json.loads` keeps.
//!
//! The canonical form of a record is re-derived from *parsed values*, so the parser must remember
//! for every number whether it was written as an integer (arbitrary precision, kept as digits) or
//! as a float (an IEEE double, correctly rounded), and must accept the tokens Python accepts
//! (`NaN`, `Infinity`, `-Infinity`). It refuses what Rust cannot represent faithfully (a lone
//! UTF-16 surrogate) and bounds what could exhaust memory or the stack (nesting depth, integer
//! digits, values per document), each with a typed error. Objects keep key order (the wire
//! envelope is not sorted). A duplicate key is refused: `json.dumps` never writes one, and a
//! reader that took the first or the last value would disagree with another that took the other
//! (a message charged as one type and handled as another). Parsing is linear in the input:
//! duplicate keys are found with a hash set once an object is past 32 members.

use std::collections::HashSet;

use crate::number::{JsonNumber, MAX_INT_DIGITS};

/// Deepest nesting accepted. Records and messages nest at most three levels; Python itself dies
/// with a `RecursionError` near 1000.
pub const MAX_DEPTH: usize = 64;

/// Most values (objects, arrays, strings, numbers, literals; keys not counted) in one document.
/// A record has about 25 and the largest honest message (a `pex_response` or `get_records` at
/// its size cap) a few thousand; the bound keeps a 10 MiB frame of `[0,0,0,…]` from becoming
/// hundreds of megabytes of parsed values.
pub const MAX_VALUES: usize = 1 << 16;

/// Objects up to this many members look for duplicate keys by scanning; larger ones by hash. A
/// record has 24 or 25 members: scanning their keys is cheaper than cloning and hashing them.
const SCAN_MEMBERS: usize = 32;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(JsonNumber),
    String(String),
    Array(Vec<Value>),
    /// Key order as first seen.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The value under `key` if this is an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The JSON type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(JsonNumber::Int(_)) => "int",
            Value::Number(JsonNumber::Float(_)) => "float",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Why a text is not JSON that Python would read (or that we refuse to read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("input is not valid UTF-8 (byte {0})")]
    InvalidUtf8(usize),
    #[error("unexpected end of input")]
    UnexpectedEnd,
    #[error("unexpected character {found:?} at byte {at}")]
    Unexpected { found: char, at: usize },
    #[error("trailing data at byte {0}")]
    TrailingData(usize),
    #[error("nesting deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
    #[error("invalid number at byte {0}")]
    InvalidNumber(usize),
    #[error("integer with more than {MAX_INT_DIGITS} digits at byte {0}")]
    IntegerTooLong(usize),
    #[error("invalid escape at byte {0}")]
    InvalidEscape(usize),
    #[error("unescaped control character in string at byte {0}")]
    ControlCharacter(usize),
    #[error("lone UTF-16 surrogate \\u{code:04x} at byte {at}: not representable, record dropped")]
    LoneSurrogate { code: u32, at: usize },
    #[error("duplicate key {key:?} at byte {at}")]
    DuplicateKey { key: String, at: usize },
    #[error("more than {MAX_VALUES} values (at byte {0})")]
    TooManyValues(usize),
}

/// Parses UTF-8 bytes as one JSON document (surrounding whitespace allowed).
pub fn parse_bytes(bytes: &[u8]) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::InvalidUtf8(e.valid_up_to()))?;
    parse(text)
}

/// Parses one JSON document (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Value, JsonError> {
    let mut parser = Parser::new(text, false);
    parser.document()
}

/// Byte ranges of a top-level object's member values, by key.
pub type MemberSpans = Vec<(String, std::ops::Range<usize>)>;

/// Parses one JSON document and also returns, when it is an object, the byte range of each
/// top-level member's value in `text` (so a message's payload can be kept exactly as sent).
pub fn parse_with_spans(text: &str) -> Result<(Value, MemberSpans), JsonError> {
    let mut parser = Parser::new(text, true);
    let value = parser.document()?;
    Ok((value, parser.spans))
}

/// The string value of `key` in a top-level object, found without building any value: the
/// other members are skipped structurally (strings with `memchr`), so the cost is one linear pass
/// and no allocation beyond the keys. `Ok(None)` when the text is not an object, or an object
/// without that key or with a non-string value there; an error when the object is cut short or
/// names the key twice. It does not validate what it skips: [`parse`] does that afterwards.
pub fn top_level_string(text: &str, key: &str) -> Result<Option<String>, JsonError> {
    let mut parser = Parser::new(text, false);
    parser.skip_ws();
    if parser.bytes.get(parser.pos) != Some(&b'{') {
        return Ok(None);
    }
    parser.pos += 1;
    let mut found: Option<Option<String>> = None;
    parser.skip_ws();
    if parser.peek()? == b'}' {
        return Ok(None);
    }
    loop {
        parser.skip_ws();
        if parser.peek()? != b'"' {
            return Err(parser.unexpected());
        }
        let at = parser.pos;
        let name = parser.string()?;
        parser.skip_ws();
        parser.expect(b':')?;
        parser.skip_ws();
        if name == key {
            if found.is_some() {
                return Err(JsonError::DuplicateKey { key: name, at });
            }
            found = Some(match parser.peek()? {
                b'"' => Some(parser.string()?),
                _ => {
                    parser.skip_value()?;
                    None
                }
            });
        } else {
            parser.skip_value()?;
        }
        parser.skip_ws();
        match parser.peek()? {
            b',' => parser.pos += 1,
            b'}' => return Ok(found.flatten()),
            _ => return Err(parser.unexpected()),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Value ranges of the top-level object's members, when asked for.
    spans: MemberSpans,
    keep_spans: bool,
    /// Values read so far.
    values: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, keep_spans: bool) -> Self {
        Parser { text, bytes: text.as_bytes(), pos: 0, spans: Vec::new(), keep_spans, values: 0 }
    }

    /// One value, with only whitespace around it.
    fn document(&mut self) -> Result<Value, JsonError> {
        self.skip_ws();
        let value = self.value(0)?;
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(JsonError::TrailingData(self.pos));
        }
        Ok(value)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Result<u8, JsonError> {
        self.bytes.get(self.pos).copied().ok_or(JsonError::UnexpectedEnd)
    }

    fn unexpected(&self) -> JsonError {
        match self.text[self.pos..].chars().next() {
            Some(found) => JsonError::Unexpected { found, at: self.pos },
            None => JsonError::UnexpectedEnd,
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.peek()? == byte {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn keyword(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.unexpected())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(JsonError::TooManyValues(self.pos));
        }
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => Ok(Value::String(self.string()?)),
            b'n' => self.keyword("null", Value::Null),
            b't' => self.keyword("true", Value::Bool(true)),
            b'f' => self.keyword("false", Value::Bool(false)),
            b'N' => self.keyword("NaN", Value::Number(JsonNumber::Float(f64::NAN))),
            b'I' => self.keyword("Infinity", Value::Number(JsonNumber::Float(f64::INFINITY))),
            b'-' if self.text[self.pos..].starts_with("-Infinity") => {
                self.pos += "-Infinity".len();
                Ok(Value::Number(JsonNumber::Float(f64::NEG_INFINITY)))
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.unexpected()),
        }
    }

    /// Moves past one value without reading it: brackets counted (to [`MAX_DEPTH`]), strings
    /// jumped over.
    fn skip_value(&mut self) -> Result<(), JsonError> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(JsonError::TooDeep(self.pos));
                    }
                    self.pos += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.pos += 1;
                }
                b',' | b'}' | b']' if depth == 0 => return Ok(()),
                _ => self.pos += 1,
            }
            if depth == 0 && matches!(self.bytes.get(self.pos), None | Some(b',' | b'}' | b']')) {
                return Ok(());
            }
        }
    }

    /// Moves past the string starting at the current quote.
    fn skip_string(&mut self) -> Result<(), JsonError> {
        self.pos += 1;
        loop {
            let rest = &self.bytes[self.pos..];
            self.pos += memchr::memchr2(b'"', b'\\', rest).ok_or(JsonError::UnexpectedEnd)?;
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok(());
            }
            self.pos += 2;
            if self.pos > self.bytes.len() {
                return Err(JsonError::UnexpectedEnd);
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep(self.pos));
        }
        self.pos += 1;
        let mut entries: Vec<(String, Value)> = Vec::new();
        // The keys of a large object, for finding duplicates in O(1).
        let mut keys: Option<HashSet<String>> = None;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(Value::Object(entries));
        }
        loop {
            self.skip_ws();
            if self.peek()? != b'"' {
                return Err(self.unexpected());
            }
            let key_at = self.pos;
            let key = self.string()?;
            let duplicate = match &mut keys {
                Some(keys) => !keys.insert(key.clone()),
                None => entries.iter().any(|(k, _)| *k == key),
            };
            if duplicate {
                return Err(JsonError::DuplicateKey { key, at: key_at });
            }
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let start = self.pos;
            let value = self.value(depth)?;
            if depth == 1 && self.keep_spans {
                self.spans.push((key.clone(), start..self.pos));
            }
            entries.push((key, value));
            if keys.is_none() && entries.len() == SCAN_MEMBERS {
                keys = Some(entries.iter().map(|(k, _)| k.clone()).collect());
            }
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(Value::Object(entries));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep(self.pos));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Python's number grammar: `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`; integer if neither
    /// fraction nor exponent is present.
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::InvalidNumber(start)),
        }
        let mut is_float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(JsonError::InvalidNumber(start));
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::InvalidNumber(start));
            }
            is_float = true;
        }
        let text = &self.text[start..self.pos];
        if is_float {
            let value: f64 = text.parse().map_err(|_| JsonError::InvalidNumber(start))?;
            Ok(Value::Number(JsonNumber::Float(value)))
        } else {
            JsonNumber::int_from_text(text).map(Value::Number).ok_or(JsonError::IntegerTooLong(start))
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let at = self.pos;
        let chunk = self.bytes.get(self.pos..self.pos + 4).ok_or(JsonError::InvalidEscape(at))?;
        let mut code = 0u32;
        for &b in chunk {
            let digit = (b as char).to_digit(16).ok_or(JsonError::InvalidEscape(at))?;
            code = code * 16 + digit;
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // The run up to the next quote or backslash, found with `memchr` (a diff is long and
            // mostly plain), then checked for control characters in one vectorisable pass.
            let run_start = self.pos;
            let rest = &self.bytes[run_start..];
            let run = &rest[..memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len())];
            self.pos += match run.iter().fold(false, |seen, &b| seen | (b < 0x20)) {
                true => run.iter().position(|&b| b < 0x20).unwrap_or(run.len()),
                false => run.len(),
            };
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let at = self.pos;
                    self.pos += 1;
                    let escape = self.peek()?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape(at)?),
                        _ => return Err(JsonError::InvalidEscape(at)),
                    }
                }
                _ => return Err(JsonError::ControlCharacter(self.pos)),
            }
        }
    }

    /// After `\u`: one BMP character, or a high surrogate that must be followed by `\uDC00..DFFF`.
    fn unicode_escape(&mut self, at: usize) -> Result<char, JsonError> {
        let first = self.hex4()?;
        if (0xDC00..0xE000).contains(&first) {
            return Err(JsonError::LoneSurrogate { code: first, at });
        }
        if (0xD800..0xDC00).contains(&first) {
            if self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u") {
                let save = self.pos;
                self.pos += 2;
                let second = self.hex4()?;
                if (0xDC00..0xE000).contains(&second) {
                    let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    return char::from_u32(code).ok_or(JsonError::InvalidEscape(at));
                }
                self.pos = save;
            }
            return Err(JsonError::LoneSurrogate { code: first, at });
        }
        char::from_u32(first).ok_or(JsonError::InvalidEscape(at))
    }
}

#[cfg(test)]
mod tests;
