//! The whole request path of the local server, `handlers::route`, on an SQLite store with the example
//! catalog: any method and path, requests signed with one of the catalog's API keys (or stale, or
//! unsigned, or with arbitrary headers), and fields either as arbitrary bytes or as a JSON object / query
//! built from the catalog's products, keys and users, so inputs reach activation, deactivation and
//! check. State carries over between inputs, as on a real server. Every answer must be a 200 (signed,
//! when JSON, with a signature that verifies) or a SPEC-shaped error that is not a 500.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use license_api::client::LicenseClient;
use license_api::handlers;
use license_api::http::ApiRequest;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

#[path = "common.rs"]
mod common;

// Variants and fields are ordered so that a short input (arbitrary fills what runs out with zeros,
// the first variant) is a well-formed, signed request for the demo license: the fuzzer starts from the
// requests that reach the business rules and mutates away from them.
#[derive(Arbitrary, Debug)]
struct Input<'a> {
    path: Path<'a>,
    fields: Fields<'a>,
    signing: Signing<'a>,
    method: Method,
}

#[derive(Arbitrary, Debug)]
enum Path<'a> {
    Known(u8),
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Method {
    /// The endpoint's own method.
    Natural,
    Other(u8),
}

#[derive(Arbitrary, Debug)]
enum Signing<'a> {
    Now(u8),
    /// Signed for a `Date` this many seconds away from now.
    Dated(u8, i16),
    Missing,
    Raw(&'a str, &'a str),
}

#[derive(Arbitrary, Debug)]
enum Fields<'a> {
    Request {
        product: Choice<'a>,
        hardware_id: Choice<'a>,
        credentials: Credentials<'a>,
        more: Vec<(Field<'a>, FieldValue<'a>)>,
    },
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
enum Credentials<'a> {
    Key(Choice<'a>),
    User(Choice<'a>, Option<Choice<'a>>),
    None,
}

/// A field's value: one of the catalog's, absent, or anything.
#[derive(Arbitrary, Debug)]
enum Choice<'a> {
    Known(u8),
    Absent,
    Value(FieldValue<'a>),
}

#[derive(Arbitrary, Debug)]
enum Field<'a> {
    Product,
    HardwareId,
    LicenseKey,
    Username,
    Password,
    LicenseId,
    IsVm,
    Variables,
    OsVer,
    IdToken,
    Code,
    CustomerAccountCode,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum FieldValue<'a> {
    /// One of the catalog's values for that field.
    Known(u8),
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Null,
    Json(&'a str),
}

const METHODS: &[&str] = &["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"];
const PATHS: &[&str] = &[
    "/api/v4/activate_license",
    "/api/v4/check_license",
    "/api/v4/deactivate_license",
    "/",
    "/api/v4/check_license/",
    "/prod/api/v4/activate_license",
];
/// (API key, shared key) pairs of examples/catalog.json, and one it does not have.
const KEYS: &[(&str, &str)] = &[
    ("demo-api-key", "demo-shared-key-change-me"),
    ("demo-read-only-key", "demo-read-only-secret"),
    ("demo-desktop-only-key", "demo-desktop-secret"),
    ("demo-revoked-key", "demo-revoked-secret"),
    ("no-such-key", "whatever"),
];

fn pick<'a>(pool: &[&'a str], i: u8) -> &'a str {
    pool[usize::from(i) % pool.len()]
}

fn field(f: &Field<'_>, v: &FieldValue<'_>) -> (String, Value) {
    let (name, pool): (&str, &[&str]) = match f {
        Field::Product => ("product", &["demo", "demo-team", "demo-legacy", "nope"]),
        Field::HardwareId => (
            "hardware_id",
            &["h1", "h2", "H1 ", "stolen-laptop-1", "known-bad-hardware-id"],
        ),
        Field::LicenseKey => (
            "license_key",
            &[
                "DEMO-0000-0000-0001",
                "DEMO-TRIAL-0000-0002",
                "DEMO-SUBS-0000-0003",
                "DEMO-UNLIMITED-0004",
                "DEMO-DISABLED-0005",
                "NOPE",
            ],
        ),
        Field::Username => ("username", &["ann@example.com", "BOB@example.com", "zed@example.com"]),
        Field::Password => ("password", &["demo-password", "wrong"]),
        Field::LicenseId => ("license_id", &["1", "6", "x"]),
        Field::IsVm => ("is_vm", &["true", "false", "1"]),
        Field::Variables => ("variables", &["{}"]),
        Field::OsVer => ("os_ver", &["Ubuntu 24.04"]),
        Field::IdToken => ("id_token", &["t"]),
        Field::Code => ("code", &["c"]),
        Field::CustomerAccountCode => ("customer_account_code", &["acme"]),
        Field::Other(name) => (name, &[""]),
    };
    let value = match v {
        FieldValue::Known(i) => Value::from(pick(pool, *i)),
        FieldValue::Str(s) => Value::from(*s),
        FieldValue::Int(i) => Value::from(*i),
        FieldValue::Bool(b) => Value::from(*b),
        FieldValue::Null => Value::Null,
        FieldValue::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
    };
    (name.to_owned(), value)
}

/// The `(name, value)` a request field contributes, if any.
fn choice(f: Field<'_>, c: &Choice<'_>) -> Option<(String, Value)> {
    match c {
        Choice::Known(i) => Some(field(&f, &FieldValue::Known(*i))),
        Choice::Absent => None,
        Choice::Value(v) => Some(field(&f, v)),
    }
}

fn query_of(map: &Map<String, Value>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in map {
        match v {
            Value::String(s) => q.append_pair(k, s),
            other => q.append_pair(k, &other.to_string()),
        };
    }
    q.finish()
}

fuzz_target!(|input: Input<'_>| {
    let (runtime, state) = common::world();
    let path = match input.path {
        Path::Known(i) => pick(PATHS, i).to_owned(),
        Path::Raw(p) => p.to_owned(),
    };
    let method = match input.method {
        Method::Natural => handlers::Endpoint::for_path(&path).map_or(http::Method::GET, |e| e.method()),
        Method::Other(i) => http::Method::from_bytes(pick(METHODS, i).as_bytes()).expect("known method"),
    };
    let mut headers = http::HeaderMap::new();
    let signed = |key: u8, offset: i64| {
        let (api_key, shared_key) = KEYS[usize::from(key) % KEYS.len()];
        let now = SystemTime::now();
        let at = if offset >= 0 {
            now + Duration::from_secs(offset.unsigned_abs())
        } else {
            now - Duration::from_secs(offset.unsigned_abs())
        };
        let date = httpdate::fmt_http_date(at);
        let authorization = LicenseClient::new(api_key, shared_key, "").authorization(&date);
        (date, authorization)
    };
    let (date, authorization) = match input.signing {
        Signing::Now(key) => signed(key, 0),
        Signing::Dated(key, offset) => signed(key, i64::from(offset)),
        Signing::Missing => (String::new(), String::new()),
        Signing::Raw(d, a) => (d.to_owned(), a.to_owned()),
    };
    for (name, value) in [("date", date), ("authorization", authorization)] {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            if !value.is_empty() {
                headers.insert(name, value);
            }
        }
    }
    let (query, body) = match input.fields {
        Fields::Raw(bytes) => (
            Some(String::from_utf8_lossy(bytes).into_owned()),
            Bytes::copy_from_slice(bytes),
        ),
        Fields::Request {
            product,
            hardware_id,
            credentials,
            more,
        } => {
            let mut map: Map<String, Value> = [
                choice(Field::Product, &product),
                choice(Field::HardwareId, &hardware_id),
            ]
            .into_iter()
            .flatten()
            .collect();
            match &credentials {
                Credentials::Key(key) => map.extend(choice(Field::LicenseKey, key)),
                Credentials::User(user, password) => {
                    map.extend(choice(Field::Username, user));
                    map.extend(password.as_ref().and_then(|p| choice(Field::Password, p)));
                }
                Credentials::None => {}
            }
            map.extend(more.iter().map(|(f, v)| field(f, v)));
            (Some(query_of(&map)), Bytes::from(Value::Object(map).to_string()))
        }
    };
    let req = ApiRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    let resp = runtime.block_on(handlers::route(&req, state));

    assert!(
        resp.status == 200 || (400..500).contains(&resp.status),
        "status {}: {:?}",
        resp.status,
        resp.body
    );
    if resp.status == 200 {
        if resp.content_type == "application/json" {
            let signature = resp.signature.as_deref().expect("a JSON answer is signed");
            let answer = http::Response::builder()
                .header("LicenseSignature", signature)
                .body(resp.body.clone())
                .expect("response");
            LicenseClient::new("", "", state.signer.public_key_pem())
                .verify_body(&answer)
                .expect("the signature verifies");
        }
    } else {
        let body: Value = serde_json::from_slice(&resp.body).expect("error body is JSON");
        assert_eq!(body.as_object().map(Map::len), Some(3), "{body}");
        assert_eq!(body["status"], resp.status);
        assert_eq!(body["code"].as_str(), resp.error_code);
    }
});
