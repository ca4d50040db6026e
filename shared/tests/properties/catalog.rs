//! `Catalog::parse` on arbitrary text, arbitrary JSON and catalog-shaped JSON built from small pools of
//! codes, ids and emails (so duplicates, unknown references and limits occur often): never a panic,
//! and every error names the file and the entry, `companies[i]...` of a company that exists.

use crate::strategies::{json_value, text};
use license_api::catalog::Catalog;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};

const FILE: &str = "prop-catalog.json";

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::sample::select(pool).prop_map(Value::from)
}

/// Mostly well-formed values, sometimes a wrong type or anything at all.
fn or_any(good: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![8 => good, 1 => json_value()]
}

/// Whether generated dates stay ASCII. The hand-written parser `Timestamp::parse_iso` once had panicked
/// when a multi-byte character straddled a byte offset it sliced at (`2026-01-01T10:00:00+0é00`, kept in
/// `catalog.proptest-regressions`); the `time` crate parses them now, so multi-byte near misses are on.
const ASCII_DATES: bool = false;

/// Catalog dates: the ISO forms `Timestamp::parse_iso` accepts; the same with a few characters replaced
/// by one arbitrary character (near misses of every length, multi-byte characters as often as ASCII
/// ones, often in the time zone where most parsing by position happens); and arbitrary text.
fn date() -> impl Strategy<Value = Value> {
    // Always a real calendar date and time, so that the parser gets as far as the time zone.
    const DAY: &str = "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])";
    const TIME: &str = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,4})?";
    let regex = |pattern: String| prop::string::string_regex(&pattern).expect("valid pattern");
    let with_offset = || regex(format!("{DAY}T{TIME}[+-]([01][0-9]|2[0-3]):[0-5][0-9]"));
    let valid = prop_oneof![
        Just("2026-01-31".to_owned()),
        regex(DAY.to_owned()),
        regex(format!("{DAY}[T ]{TIME}Z?")),
        with_offset(),
    ];
    let replacement = if ASCII_DATES {
        prop::char::range(' ', '~').boxed()
    } else {
        prop_oneof![
            any::<char>(),
            prop::char::range('\u{80}', '\u{7ff}'),
            prop::char::range('\u{800}', '\u{d7ff}'),
            prop::char::range('\u{10000}', '\u{10ffff}'),
        ]
        .boxed()
    };
    let position = prop_oneof![1 => any::<prop::sample::Index>().prop_map(Ok), 2 => (1usize..8).prop_map(Err)];
    let base = prop_oneof![1 => valid.clone(), 2 => with_offset()];
    let mutated = (base, position, 1usize..4, replacement).prop_map(|(s, at, len, c)| {
        // The valid date is ASCII, so every index is a character boundary.
        let at = match at {
            Ok(index) => index.index(s.len() + 1),
            Err(from_end) => s.len().saturating_sub(from_end),
        };
        format!("{}{c}{}", &s[..at], s.get(at + len..).unwrap_or(""))
    });
    let arbitrary = if ASCII_DATES {
        "[\\x20-\\x7e]{0,30}".boxed()
    } else {
        any::<String>().boxed()
    };
    prop_oneof![
        3 => valid.prop_map(Value::from),
        5 => mutated.prop_map(Value::from),
        1 => "[0-9T:+.Z -]{0,30}".prop_map(Value::from),
        1 => arbitrary.prop_map(Value::from),
    ]
}

fn metadata() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop_oneof![
            pick(&["0", "1", "01", "10", "a", ""]).prop_map(|v| v.as_str().unwrap_or_default().to_owned()),
            text()
        ],
        prop_oneof![json_value(), any::<f64>().prop_map(Value::from), Just(json!(1e300))],
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// An object of `required` fields plus some of `optional`, and now and then an unknown field.
fn entry(
    required: Vec<(&'static str, BoxedStrategy<Value>)>,
    optional: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> impl Strategy<Value = Value> {
    let optional: Vec<_> = optional
        .into_iter()
        .map(|(name, s)| prop::option::weighted(0.5, s).prop_map(move |v| v.map(|v| (name, v))))
        .collect();
    let required: Vec<_> = required
        .into_iter()
        .map(|(name, s)| prop::option::weighted(0.97, s).prop_map(move |v| v.map(|v| (name, v))))
        .collect();
    (required, optional, prop::option::weighted(0.05, (text(), json_value()))).prop_map(|(req, opt, unknown)| {
        let mut map: Map<String, Value> = req
            .into_iter()
            .chain(opt)
            .flatten()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        if let Some((k, v)) = unknown {
            map.insert(k, v);
        }
        Value::Object(map)
    })
}

const PRODUCTS: &[&str] = &["app", "team", "old", "bad#code", ""];
const EMAILS: &[&str] = &[
    "ann@example.com",
    "bob@example.com",
    "ANN@example.com",
    "zed@example.com",
];
const KEYS: &[&str] = &["K-1", "K-2", "K-1 ", ""];

fn small_int() -> BoxedStrategy<Value> {
    prop_oneof![(-3i64..12).prop_map(Value::from), any::<i64>().prop_map(Value::from)].boxed()
}

fn flag() -> BoxedStrategy<Value> {
    or_any(any::<bool>().prop_map(Value::from)).boxed()
}

fn list(item: impl Strategy<Value = Value> + 'static, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..max).prop_map(Value::Array).boxed()
}

fn feature() -> BoxedStrategy<Value> {
    entry(
        vec![("id", small_int()), ("code", text().prop_map(Value::from).boxed())],
        vec![
            (
                "feature_type",
                or_any(pick(&["activation", "consumption", "other"])).boxed(),
            ),
            ("expiry_date", date().boxed()),
            ("metadata", metadata().boxed()),
            ("max_consumption", small_int()),
            ("consumption_period", or_any(pick(&["monthly", "daily"])).boxed()),
        ],
    )
    .boxed()
}

fn product() -> BoxedStrategy<Value> {
    entry(
        vec![("short_code", or_any(pick(PRODUCTS)).boxed())],
        vec![
            ("id", small_int()),
            ("name", text().prop_map(Value::from).boxed()),
            (
                "authorization_method",
                or_any(pick(&["license-key", "user", "sso"])).boxed(),
            ),
            ("prevent_vm", flag()),
            ("trial_days", small_int()),
            ("validity_period", date().boxed()),
            ("disabled", flag()),
            ("blacklist", list(text().prop_map(Value::from), 3)),
            ("metadata", metadata().boxed()),
            ("features", list(feature(), 3)),
        ],
    )
    .boxed()
}

fn seat() -> BoxedStrategy<Value> {
    entry(
        vec![("email", or_any(pick(EMAILS)).boxed())],
        vec![
            ("max_activations", small_int()),
            ("allow_unlimited_activations", flag()),
        ],
    )
    .boxed()
}

fn license() -> BoxedStrategy<Value> {
    entry(
        vec![
            ("id", or_any((1i64..4).prop_map(Value::from)).boxed()),
            ("product", or_any(pick(PRODUCTS)).boxed()),
        ],
        vec![
            ("license_key", or_any(pick(KEYS)).boxed()),
            ("enabled", flag()),
            ("max_activations", small_int()),
            ("max_transfers", small_int()),
            ("validity_period", date().boxed()),
            ("start_date", date().boxed()),
            ("maintenance_period", date().boxed()),
            (
                "license_type",
                or_any(pick(&["perpetual", "time-limited", "subscription", "consumption", "x"])).boxed(),
            ),
            ("max_license_users", small_int()),
            ("users", list(seat(), 4)),
            ("metadata", metadata().boxed()),
            (
                "customer",
                entry(
                    vec![],
                    vec![
                        ("email", text().prop_map(Value::from).boxed()),
                        ("metadata", metadata().boxed()),
                        ("customer_account", json_value().boxed()),
                    ],
                )
                .boxed(),
            ),
            (
                "custom_fields",
                list(Just(json!({"name": "n", "data_type": "text", "value": "v"})), 2),
            ),
        ],
    )
    .boxed()
}

fn company() -> BoxedStrategy<Value> {
    entry(
        vec![
            ("code", or_any(pick(&["acme", "beta", "a#b", ""])).boxed()),
            ("id", small_int()),
        ],
        vec![
            ("blacklist", list(text().prop_map(Value::from), 3)),
            (
                "api_keys",
                list(
                    entry(
                        vec![
                            ("api_key", or_any(pick(&["k1", "k2", ""])).boxed()),
                            ("shared_key", or_any(pick(&["secret", ""])).boxed()),
                        ],
                        vec![
                            ("products", list(pick(PRODUCTS), 3)),
                            ("read_only", flag()),
                            ("revoked", flag()),
                        ],
                    ),
                    3,
                ),
            ),
            ("products", list(product(), 4)),
            (
                "license_users",
                list(
                    entry(
                        vec![("id", small_int()), ("email", or_any(pick(EMAILS)).boxed())],
                        vec![
                            ("password", text().prop_map(Value::from).boxed()),
                            ("first_name", text().prop_map(Value::from).boxed()),
                        ],
                    ),
                    3,
                ),
            ),
            ("licenses", list(license(), 5)),
        ],
    )
    .boxed()
}

fn catalog() -> impl Strategy<Value = Value> {
    prop_oneof![
        9 => list(company(), 3).prop_map(|companies| json!({ "companies": companies })),
        1 => json_value(),
    ]
}

/// Parses `text` and checks the outcome; `companies` is how many companies the input has, if known.
fn check(text: &str, companies: Option<usize>) -> Result<(), TestCaseError> {
    match Catalog::parse(text, FILE) {
        Ok(c) => {
            if let Some(n) = companies {
                prop_assert_eq!(c.companies.len(), n);
            }
        }
        Err(e) => {
            prop_assert_eq!(&e.file, FILE);
            prop_assert!(!e.message.is_empty(), "empty message at {}", e.path);
            prop_assert!(e.to_string().starts_with(FILE));
            // Entries are named `companies[i]...`, with a `catalog.` in front when serde found the fault.
            let path = e.path.as_str();
            if let Some(rest) = path.trim_start_matches("catalog.").strip_prefix("companies[") {
                let index: usize = rest
                    .split(']')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| TestCaseError::fail(format!("unparsable path {path}")))?;
                if let Some(n) = companies {
                    prop_assert!(index < n, "{path} but only {n} companies");
                }
            } else {
                // Not in an entry: the file is not JSON, or not an object with a `companies` list.
                prop_assert!(
                    path == "catalog" || path.starts_with("catalog.") || path.starts_with("line "),
                    "error does not name an entry: {path}: {}",
                    e.message
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::strategies::config())]

    #[test]
    fn arbitrary_text(text in prop_oneof![any::<String>(), "[\\[\\]{}\",:a-z0-9 ]{0,40}"]) {
        check(&text, None)?;
    }

    #[test]
    fn catalog_shaped_json(value in catalog()) {
        let companies = value.get("companies").and_then(Value::as_array).map(Vec::len);
        check(&value.to_string(), companies)?;
    }

    /// A valid catalog whose dates vary, so that every case reaches the date parser five times.
    #[test]
    fn catalog_dates(dates in prop::array::uniform5(date())) {
        let [product_validity, expiry, validity, start, maintenance] = dates;
        let value = json!({"companies": [{
            "code": "acme", "id": 1,
            "products": [{"short_code": "app", "validity_period": product_validity,
                          "features": [{"id": 1, "code": "f", "expiry_date": expiry}]}],
            "licenses": [{"id": 1, "product": "app", "license_key": "K-1", "validity_period": validity,
                          "start_date": start, "maintenance_period": maintenance}],
        }]});
        check(&value.to_string(), Some(1))?;
    }
}

/// What the Unicode date generator found (shrunk) while `Timestamp::parse_iso` sliced the time zone by
/// byte offset and panicked on a multi-byte character there; the `time` crate now rejects them.
#[test]
fn multi_byte_time_zones_are_errors_not_panics() {
    for date in [
        "2000-01-01 00:00:00+00\u{800}",
        "2000-10-01T00:00:00-00\u{a1}0",
        "2026-01-01T10:00:00+0\u{e9}00",
    ] {
        let catalog = json!({"companies": [{"code": "acme", "id": 1,
            "products": [{"short_code": "app", "validity_period": date}]}]});
        let err = Catalog::parse(&catalog.to_string(), FILE).expect_err(date);
        assert_eq!(err.path, "companies[0].products[0].validity_period", "{date}");
    }
}
