use super::*;

#[test]
fn keeps_integer_and_float_apart() {
    let v = parse(r#"{"a":1,"b":1.0,"c":1e2,"d":-0}"#).unwrap();
    assert_eq!(v.get("a"), Some(&Value::Number(JsonNumber::int_from_text("1").unwrap())));
    assert_eq!(v.get("b"), Some(&Value::Number(JsonNumber::Float(1.0))));
    assert_eq!(v.get("c"), Some(&Value::Number(JsonNumber::Float(100.0))));
    assert_eq!(v.get("d"), Some(&Value::Number(JsonNumber::int_from_text("0").unwrap())));
}

#[test]
fn accepts_python_non_finite_tokens() {
    let v = parse("[NaN,Infinity,-Infinity]").unwrap();
    let Value::Array(items) = v else { panic!("not an array") };
    assert!(matches!(items[0], Value::Number(JsonNumber::Float(x)) if x.is_nan()));
    assert_eq!(items[1], Value::Number(JsonNumber::Float(f64::INFINITY)));
    assert_eq!(items[2], Value::Number(JsonNumber::Float(f64::NEG_INFINITY)));
}

#[test]
fn duplicate_keys_are_refused_in_small_and_large_objects() {
    assert_eq!(parse(r#"{"a":1,"b":2,"a":3}"#), Err(JsonError::DuplicateKey { key: "a".into(), at: 13 }));
    let mut large: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
    assert!(parse(&format!("{{{}}}", large.join(","))).is_ok());
    large.push("\"k7\":0".into());
    assert!(matches!(parse(&format!("{{{}}}", large.join(","))), Err(JsonError::DuplicateKey { .. })));
    // A record's size (found by scanning), and one member short of and past the scan's limit.
    for members in [25, 32, 33] {
        let mut keys: Vec<String> = (0..members).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(parse(&format!("{{{}}}", keys.join(","))).is_ok());
        keys.push(format!("\"k{}\":0", members - 1));
        let duplicate = parse(&format!("{{{}}}", keys.join(",")));
        assert!(matches!(duplicate, Err(JsonError::DuplicateKey { .. })), "{members}: {duplicate:?}");
    }
    // The same key at different levels is no duplicate.
    assert!(parse(r#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#).is_ok());
}

#[test]
fn an_object_of_many_keys_parses_in_linear_time_and_too_many_values_are_refused() {
    // 60,000 members: a quadratic duplicate scan would compare 1.8 billion key pairs.
    let members: Vec<String> = (0..60_000).map(|i| format!("\"{i}\":0")).collect();
    let text = format!("{{{}}}", members.join(","));
    let Ok(Value::Object(entries)) = parse(&text) else { panic!("not parsed") };
    assert_eq!(entries.len(), 60_000);
    let zeros = format!("[{}0]", "0,".repeat(MAX_VALUES));
    assert!(matches!(parse(&zeros), Err(JsonError::TooManyValues(_))));
    let fits = format!("[{}0]", "0,".repeat(MAX_VALUES - 2));
    assert!(parse(&fits).is_ok());
}

#[test]
fn top_level_string_skims_to_the_key() {
    let text = r#" {"payload": {"type": "inner", "x": ["}", "\"", {"a": [1, 2]}]}, "type" : "ping"} "#;
    assert_eq!(top_level_string(text, "type"), Ok(Some("ping".into())));
    assert_eq!(top_level_string(r#"{"a":1}"#, "type"), Ok(None));
    assert_eq!(top_level_string(r#"{"type":7}"#, "type"), Ok(None));
    assert_eq!(top_level_string(r#"{}"#, "type"), Ok(None));
    assert!(matches!(
        top_level_string(r#"{"type":"experiment","payload":{},"type":"ping"}"#, "type"),
        Err(JsonError::DuplicateKey { .. })
    ));
    assert_eq!(top_level_string("[1]", "type"), Ok(None));
    for bad in ["{", r#"{"a":"#, r#"{"a":"x"#, r#"{"a":[[[["#] {
        assert!(top_level_string(bad, "type").is_err(), "{bad:?}");
    }
    let deep = format!(r#"{{"a":{}}}"#, "[".repeat(10_000));
    assert!(matches!(top_level_string(&deep, "type"), Err(JsonError::TooDeep(_))));
}

#[test]
fn reports_top_level_value_spans() {
    let text = r#" {"type": "x", "payload": {"a": [1, 2]} } "#;
    let (_, spans) = parse_with_spans(text).unwrap();
    let payload = spans.iter().find(|(k, _)| k == "payload").unwrap().1.clone();
    assert_eq!(&text[payload], r#"{"a": [1, 2]}"#);
    assert_eq!(spans.len(), 2, "nested members are not listed");
}

#[test]
fn rejects_lone_surrogates() {
    assert!(matches!(parse(r#""\ud800""#), Err(JsonError::LoneSurrogate { .. })));
    assert!(matches!(parse(r#""\udc00x""#), Err(JsonError::LoneSurrogate { .. })));
    assert_eq!(parse(r#""\ud83d\ude00""#).unwrap(), Value::String("😀".into()));
}

#[test]
fn rejects_deep_nesting_without_overflowing_the_stack() {
    let deep = "[".repeat(100_000);
    assert!(matches!(parse(&deep), Err(JsonError::TooDeep(_))));
}

#[test]
fn strings_keep_every_run_and_escape_and_stop_at_the_first_control_character() {
    let long = "a".repeat(100);
    let text = format!("\"{long}\\n\\\"x\\u00e9\\\\{long}\"");
    assert_eq!(parse(&text), Ok(Value::String(format!("{long}\n\"x\u{e9}\\{long}"))));
    assert_eq!(parse("\"\""), Ok(Value::String(String::new())));
    assert_eq!(parse("\"ab\u{1}c\"d\""), Err(JsonError::ControlCharacter(3)));
    assert_eq!(parse("\"a\\nb\tc\""), Err(JsonError::ControlCharacter(5)));
    assert_eq!(parse("\"abc"), Err(JsonError::UnexpectedEnd));
    assert_eq!(parse("\"ab\ncd"), Err(JsonError::ControlCharacter(3)));
    assert_eq!(parse("\"ab\\"), Err(JsonError::UnexpectedEnd));
}

#[test]
fn rejects_malformed_numbers_and_text() {
    for bad in ["01", "1.", ".5", "1e", "-", "+1", "[1,]", "{\"a\" 1}", "\"\u{1}\"", "nul", "\u{feff}{}"] {
        assert!(parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn rejects_invalid_utf8_and_overlong_integers() {
    assert_eq!(parse_bytes(b"\"\xff\""), Err(JsonError::InvalidUtf8(1)));
    let long = "9".repeat(MAX_INT_DIGITS + 1);
    assert!(matches!(parse(&long), Err(JsonError::IntegerTooLong(0))));
}
