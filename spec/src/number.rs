//! JSON numbers as Python holds them: an `int` of any size, or a `float` (an IEEE double).
//!
//! The distinction is part of the signed bytes (`24000` and `24000.0` hash differently), so it
//! is kept from the wire to storage and back. Floats are written with Python's `repr`.

use std::fmt;

/// Python refuses to convert integers longer than this from text (`sys.int_info`), so a longer
/// one can never be part of a record that a Python peer accepted.
pub const MAX_INT_DIGITS: usize = 4300;

/// A JSON number with its Python type.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonNumber {
    /// Canonical decimal digits (optional `-`, no leading zeros, never `-0`).
    Int(String),
    Float(f64),
}

impl JsonNumber {
    /// An integer from JSON integer text (`-?(0|[1-9][0-9]*)`), normalised as Python's `int()`
    /// would print it. `None` when it is longer than Python accepts or not integer text.
    pub fn int_from_text(text: &str) -> Option<JsonNumber> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !well_formed || digits.len() > MAX_INT_DIGITS {
            return None;
        }
        if digits == "0" {
            return Some(JsonNumber::Int("0".into()));
        }
        Some(JsonNumber::Int(text.to_string()))
    }

    /// The value as an `f64` (ints are rounded to the nearest double).
    pub fn as_f64(&self) -> f64 {
        match self {
            JsonNumber::Float(x) => *x,
            JsonNumber::Int(text) => text.parse().unwrap_or(f64::NAN),
        }
    }

    /// The value as an `i64` if it is an int that fits, or an integral float that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            JsonNumber::Int(text) => text.parse().ok(),
            JsonNumber::Float(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => Some(*x as i64),
            JsonNumber::Float(_) => None,
        }
    }

    pub fn is_int(&self) -> bool {
        matches!(self, JsonNumber::Int(_))
    }

    /// False only for NaN and the infinities.
    pub fn is_finite(&self) -> bool {
        match self {
            JsonNumber::Int(_) => true,
            JsonNumber::Float(x) => x.is_finite(),
        }
    }
}

impl From<i64> for JsonNumber {
    fn from(value: i64) -> Self {
        JsonNumber::Int(value.to_string())
    }
}

impl From<f64> for JsonNumber {
    fn from(value: f64) -> Self {
        JsonNumber::Float(value)
    }
}

impl fmt::Display for JsonNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonNumber::Int(text) => f.write_str(text),
            JsonNumber::Float(x) => f.write_str(&python_float_repr(*x)),
        }
    }
}

/// Python's `repr(float)`, which `json.dumps` uses: the shortest digits that round-trip,
/// positional when the decimal exponent `E` (value = d.ddd × 10^E) satisfies -4 <= E < 16
/// (with `.0` added to integral values), otherwise `d[.ddd]e±XX`. Non-finite values are
/// written as Python's JSON writes them: `NaN`, `Infinity`, `-Infinity`.
pub fn python_float_repr(x: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_python_float(&mut out, x);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`python_float_repr`] of `x` to `out`.
pub fn write_python_float(out: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        return out.extend_from_slice(b"NaN");
    }
    if x.is_infinite() {
        return out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    }
    if x.is_sign_negative() {
        out.push(b'-');
    }
    if x == 0.0 {
        return out.extend_from_slice(b"0.0");
    }
    let mut buffer = ryu::Buffer::new();
    let (digits, exponent) = shortest_digits(buffer.format_finite(x.abs()));
    let digits = digits.as_slice();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
            out.extend_from_slice(digits);
        } else if digits.len() <= point as usize {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', point as usize - digits.len()));
            out.extend_from_slice(b".0");
        } else {
            let (int_part, frac_part) = digits.split_at(point as usize);
            out.extend_from_slice(int_part);
            out.push(b'.');
            out.extend_from_slice(frac_part);
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(magnitude.to_string().as_bytes());
    }
}

/// The significant digits of Ryū's shortest round-tripping text for a positive finite double
/// (the same digits as David Gay's `dtoa` mode 0, which Python uses: the shortest, and among
/// those the nearest), without leading or trailing zeros, and the decimal exponent `E` of
/// d.ddd × 10^E. Ryū writes `123.45`, `0.00012`, `1.2e-7` or `1e30`; at most 17 digits.
fn shortest_digits(text: &str) -> (Digits, i32) {
    let (mantissa, exponent) = match text.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = Digits::default();
    // The decimal exponent of the first digit of `int_part`, then of each digit after it.
    let mut place = exponent + int_part.len() as i32 - 1;
    let mut first = None;
    for &digit in int_part.as_bytes().iter().chain(frac_part.as_bytes()) {
        if first.is_none() && digit != b'0' {
            first = Some(place);
        }
        if first.is_some() {
            digits.push(digit);
        }
        place -= 1;
    }
    digits.trim_trailing_zeros();
    (digits, first.unwrap_or(0))
}

/// Up to 24 decimal digits on the stack.
#[derive(Default)]
struct Digits {
    bytes: [u8; 24],
    len: usize,
}

impl Digits {
    fn push(&mut self, digit: u8) {
        if self.len < self.bytes.len() {
            self.bytes[self.len] = digit;
            self.len += 1;
        }
    }

    fn trim_trailing_zeros(&mut self) {
        while self.len > 1 && self.bytes[self.len - 1] == b'0' {
            self.len -= 1;
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.30000000000000004, "0.30000000000000004"),
            (24000.0, "24000.0"),
            (1.5e-7, "1.5e-07"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1e22, "1e+22"),
            (-0.0, "-0.0"),
            (-2.5, "-2.5"),
            (123456789.123, "123456789.123"),
            (f64::NAN, "NaN"),
            (f64::from_bits(0x4301c25db58d77a2), "624847792221940.2"), // a tie: nearest-even digit
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(*x), *want, "repr of {x:?}");
        }
    }

    #[test]
    fn int_text_is_normalised_like_python_int() {
        assert_eq!(JsonNumber::int_from_text("-0"), Some(JsonNumber::Int("0".into())));
        assert_eq!(JsonNumber::int_from_text("007"), None);
        assert_eq!(JsonNumber::int_from_text("18446744073709551617").unwrap().to_string(), "18446744073709551617");
    }
}
