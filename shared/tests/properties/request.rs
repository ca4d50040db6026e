//! `Params::from_json`, `Params::from_query` and `LicenseRequest::parse` on arbitrary input: never a
//! panic, always `Ok` or a 400/413 with a request code, and what is accepted respects the limits.

use crate::strategies::{json_value, long_multibyte, spec_error, text};
use license_api::request::{LicenseRequest, Params, MAX_BODY_BYTES};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const CODES: &[&str] = &[
    "invalid_json",
    "validation_error",
    "missing_parameters",
    "payload_too_large",
];

/// Every field `LicenseRequest::parse` reads, and a few it ignores.
const FIELDS: &[&str] = &[
    "product",
    "hardware_id",
    "license_key",
    "username",
    "password",
    "id_token",
    "code",
    "customer_account_code",
    "license_id",
    "is_vm",
    "variables",
    "os_ver",
    "hostname",
    "ip",
    "mac_address",
    "vm_info",
    "app_ver",
    "sdk_ver",
    "device_name",
    "include_expired_features",
];

/// Values a client plausibly sends for those fields, edge cases of each, and anything at all.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => "[A-Za-z0-9._@#-]{1,16}".prop_map(Value::from),
        2 => "( 42 |-7|1e3|0x1F|9223372036854775808|true|false|TRUE|0|1|yes|)".prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => long_multibyte(4096).prop_map(Value::from),
        1 => long_multibyte(512).prop_map(Value::from),
        1 => (95usize..106).prop_map(|n| Value::Object((0..n).map(|i| (format!("v{i}"), Value::from(i))).collect())),
        1 => prop::collection::btree_map(
            prop_oneof![text(), long_multibyte(255)],
            prop_oneof![json_value(), long_multibyte(4096).prop_map(Value::from)],
            0..4,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        2 => json_value(),
    ]
}

/// A request object: a subset of the known fields plus unknown ones.
fn request_object() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::collection::btree_map(prop::sample::select(FIELDS), field_value(), 0..FIELDS.len()),
        prop::collection::btree_map(text(), json_value(), 0..3),
    )
        .prop_map(|(known, unknown)| {
            let mut map: Map<String, Value> = unknown.into_iter().collect();
            map.extend(known.into_iter().map(|(k, v)| (k.to_owned(), v)));
            map
        })
}

/// What an accepted request must satisfy whatever it was parsed from.
fn check_parse(params: &Params) -> Result<(), TestCaseError> {
    match LicenseRequest::parse(params) {
        Ok(r) => {
            prop_assert!(!r.product.as_str().is_empty());
            prop_assert!(!r.hardware_id.as_str().is_empty());
            prop_assert!(r.variables.len() <= 100);
            for (name, value) in &r.variables {
                prop_assert!((1..=255).contains(&name.len()), "variable name of {} bytes", name.len());
                prop_assert!(value.len() <= 4096, "variable value of {} bytes", value.len());
            }
            for (name, value) in &r.details {
                if let Value::String(s) = value {
                    prop_assert!(s.len() <= 4096, "detail {name} of {} bytes", s.len());
                }
            }
            Ok(())
        }
        Err(e) => spec_error(&e, CODES),
    }
}

fn check_json(body: &[u8]) -> Result<(), TestCaseError> {
    match Params::from_json(body) {
        Ok(params) => check_parse(&params),
        Err(e) => spec_error(&e, CODES),
    }
}

fn check_query(query: &str) -> Result<(), TestCaseError> {
    match Params::from_query(Some(query)) {
        Ok(params) => check_parse(&params),
        Err(e) => spec_error(&e, CODES),
    }
}

fn query_of(map: &BTreeMap<String, String>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in map {
        q.append_pair(k, v);
    }
    q.finish()
}

proptest! {
    #![proptest_config(crate::strategies::config())]

    #[test]
    fn arbitrary_bytes_as_a_body(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_json(&body)?;
    }

    #[test]
    fn arbitrary_json_as_a_body(value in json_value()) {
        check_json(value.to_string().as_bytes())?;
    }

    #[test]
    fn request_shaped_json(map in request_object(), pretty in any::<bool>()) {
        let value = Value::Object(map);
        let body = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) };
        check_json(&body.map_err(|e| TestCaseError::fail(e.to_string()))?)?;
    }

    #[test]
    fn arbitrary_query_strings(query in prop_oneof![any::<String>(), "[a-z_=&%0-9A-Fa-f+;#]{0,64}"]) {
        check_query(&query)?;
    }

    /// The same string fields sent as a query and as a JSON body get the same answer: the
    /// form-urlencoded round trip loses nothing (`&`, `=`, `+`, `%`, Unicode).
    #[test]
    fn query_and_json_agree(map in prop::collection::btree_map(
        prop_oneof![prop::sample::select(FIELDS).prop_map(str::to_owned), text()],
        prop_oneof![3 => "[A-Za-z0-9._@-]{1,12}", 1 => text()],
        0..8,
    )) {
        let json: Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        let from_json = Params::from_json(Value::Object(json).to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from_query = Params::from_query(Some(&query_of(&map))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let outcome = |p: &Params| match LicenseRequest::parse(p) {
            Ok(r) => format!("{r:?}"),
            Err(e) => e.body(),
        };
        prop_assert_eq!(outcome(&from_json), outcome(&from_query));
    }
}

#[test]
fn oversized_query_and_body_are_413() {
    let big = "a".repeat(MAX_BODY_BYTES + 1);
    for result in [Params::from_query(Some(&big)), Params::from_json(big.as_bytes())] {
        let err = result.err().expect("over the limit");
        assert_eq!((err.status(), err.code()), (413, "payload_too_large"));
    }
}
