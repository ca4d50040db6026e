//! Generators shared by the properties, and the check that an error is SPEC-shaped.

use license_api::error::ApiError;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::Value;

/// proptest's defaults (256 cases, or `PROPTEST_CASES`) without its regression files: proptest looks
/// for them beside a `lib.rs` these test modules do not have. A failure prints its minimal input, which
/// belongs in a unit test.
pub fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

/// Short strings that matter to these parsers (separators, quotes, `#`, `%`, digits), control
/// characters, and arbitrary Unicode.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9#=&,;%+\" .@_-]{0,12}",
        2 => "\\PC{0,10}",
        1 => any::<String>(),
        1 => "[\\x00-\\x1f\\x7f]{1,3}",
    ]
}

/// Any JSON value, a few levels deep. Non-finite floats become `null`, as serde_json makes them.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A string just over a length limit whose cut falls inside a multi-byte character.
pub fn long_multibyte(limit: usize) -> impl Strategy<Value = String> {
    (limit - 6..limit + 2, any::<char>()).prop_map(|(n, c)| format!("{}{}", "a".repeat(n), c.to_string().repeat(4)))
}

/// `err` is a client error with one of `codes`, and its body is exactly `{"status","code","message"}`
/// with `status` equal to the HTTP status (SPEC §1.1).
pub fn spec_error(err: &ApiError, codes: &[&str]) -> Result<(), TestCaseError> {
    prop_assert!(
        (400..500).contains(&err.status()),
        "{err:?} has status {}",
        err.status()
    );
    prop_assert!(codes.contains(&err.code()), "unexpected code {} ({err})", err.code());
    let body: Value = serde_json::from_str(&err.body()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let obj = body
        .as_object()
        .ok_or_else(|| TestCaseError::fail("error body is not an object"))?;
    prop_assert_eq!(obj.len(), 3);
    prop_assert_eq!(body["status"].as_u64(), Some(u64::from(err.status())));
    prop_assert_eq!(body["code"].as_str(), Some(err.code()));
    prop_assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    Ok(())
}
