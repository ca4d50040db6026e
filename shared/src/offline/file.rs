//! Writing offline request files the way real clients do (SPEC §6.2), for our own client, the tests and
//! the `events` generator. The server must verify a v2 file over the exact bytes a client wrote, so each
//! [`Shape`] reproduces one client's serialisation byte for byte: separators, escapes and how a float
//! with no fraction is spelled. That rules out serde_json's serialiser (compact only, and `1.0` stays
//! `1.0`), hence the small writer at the bottom of this file.

use super::payload::{v1_message, Kind};
use crate::auth::hmac_base64;
use crate::secret::redacted_option;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{Map, Value};
use std::fmt::{self, Write as _};
use std::time::SystemTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// The file layouts clients produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Python client, activation: `json.dumps` defaults — `, ` and `: ` separators, ensure_ascii
    /// (non-ASCII as `\uXXXX`, astral characters as surrogate pairs), floats like `1.0` kept; v2 wrapped
    /// `{"request": {..., "schema_version": 2}, "signature": v2}` with the inner v1 signature present.
    PythonActivation,
    /// Python client, deactivation: the same separators but raw UTF-8 (`ensure_ascii=False`), v2 wrapped.
    PythonDeactivation,
    /// JavaScript client: compact `JSON.stringify`, raw UTF-8, `1.0` written `1`, v2 wrapped, no inner
    /// v1 `signature`.
    JavaScript,
    /// The bare `deactivate_offline.req` shape: v1 flat, no `request`, no `request_id`; compact raw UTF-8.
    BareDeactivation,
    /// v1 flat with `request`, `request_id` and `signature`; Python's spaced, ensure_ascii style.
    V1,
}

/// Who a request file names as its signer (SPEC §6.2): an API key, whose shared key signs it, or under
/// OAuth a client, whose secret signs it. Text converts to an API key, the common case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKey {
    /// Written as `api_key`.
    ApiKey(String),
    /// Written as `client_id`.
    ClientId(String),
}

impl FileKey {
    fn field(&self) -> (&'static str, &str) {
        match self {
            Self::ApiKey(id) => ("api_key", id),
            Self::ClientId(id) => ("client_id", id),
        }
    }
}

impl From<&str> for FileKey {
    fn from(id: &str) -> Self {
        Self::ApiKey(id.to_owned())
    }
}

impl From<String> for FileKey {
    fn from(id: String) -> Self {
        Self::ApiKey(id)
    }
}

/// What a request file says. `date` is the text put in the file as is (see [`rfc7231_date`] and
/// [`javascript_date`]); `extra` holds the optional fields (`consumptions`, `product_features`,
/// `variables`, `is_vm`, `os_ver`, `license_id`, ...), written in key order after the required ones;
/// an `extra` entry named like one of those (or `signature`, `schema_version`) is left out.
#[derive(Clone)]
pub struct RequestFile {
    pub kind: Kind,
    pub product: String,
    pub hardware_id: String,
    pub license_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The `api_key` field, or under OAuth the `client_id` field.
    pub api_key: FileKey,
    pub date: String,
    pub request_id: Option<String>,
    pub extra: Map<String, Value>,
}

impl fmt::Debug for RequestFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestFile")
            .field("kind", &self.kind)
            .field("product", &self.product)
            .field("hardware_id", &self.hardware_id)
            .field("license_key", &self.license_key)
            .field("username", &self.username)
            .field("password", &redacted_option(&self.password))
            .field("api_key", &self.api_key)
            .field("date", &self.date)
            .field("request_id", &self.request_id)
            .field("extra", &self.extra)
            .finish()
    }
}

/// The names [`RequestFile::json`] writes itself.
const WRITTEN: &[&str] = &[
    "request",
    "product",
    "hardware_id",
    "license_key",
    "username",
    "password",
    "api_key",
    "client_id",
    "date",
    "request_id",
    "signature",
    "schema_version",
];

/// How a shape writes JSON.
#[derive(Clone, Copy)]
struct Style {
    /// `, ` and `: ` (Python) rather than `,` and `:` (JavaScript).
    spaced: bool,
    /// Python's `ensure_ascii`: everything outside ASCII as `\uXXXX`.
    ascii: bool,
    /// Python writes a float with no fraction as `1.0`; JavaScript has no such float and writes `1`.
    python_floats: bool,
}

impl Style {
    fn comma(self) -> &'static str {
        if self.spaced {
            ", "
        } else {
            ","
        }
    }

    fn colon(self) -> &'static str {
        if self.spaced {
            ": "
        } else {
            ":"
        }
    }
}

const PYTHON_ASCII: Style = Style {
    spaced: true,
    ascii: true,
    python_floats: true,
};
const PYTHON_UTF8: Style = Style {
    ascii: false,
    ..PYTHON_ASCII
};
const JAVASCRIPT: Style = Style {
    spaced: false,
    ascii: false,
    python_floats: false,
};

impl RequestFile {
    /// The base64 upload text of the file in `shape`, signed with `shared_key` (under OAuth: the client
    /// secret).
    pub fn encode(&self, shape: Shape, shared_key: &str) -> String {
        B64.encode(self.json(shape, shared_key))
    }

    /// The decoded JSON text of the file in `shape`: what [`super::transport::decode`] returns.
    pub fn json(&self, shape: Shape, shared_key: &str) -> String {
        let identity = self.license_key.as_deref().or(self.username.as_deref()).unwrap_or("");
        let (key_field, key_id) = self.api_key.field();
        let v1_signature = || {
            let message = v1_message(&self.date, identity, &self.hardware_id, key_id);
            Value::String(hmac_base64(shared_key, message.as_bytes()))
        };
        let (style, wrapped, with_request, inner_signature) = match shape {
            Shape::PythonActivation => (PYTHON_ASCII, true, true, true),
            Shape::PythonDeactivation => (PYTHON_UTF8, true, true, true),
            Shape::JavaScript => (JAVASCRIPT, true, true, false),
            Shape::BareDeactivation => (JAVASCRIPT, false, false, true),
            Shape::V1 => (PYTHON_ASCII, false, true, true),
        };
        let mut fields: Vec<(&str, Value)> = Vec::new();
        if with_request {
            fields.push(("request", Value::from(self.kind.as_str())));
        }
        fields.push(("product", Value::from(self.product.as_str())));
        fields.push(("hardware_id", Value::from(self.hardware_id.as_str())));
        for (name, value) in [
            ("license_key", &self.license_key),
            ("username", &self.username),
            ("password", &self.password),
        ] {
            if let Some(value) = value {
                fields.push((name, Value::from(value.as_str())));
            }
        }
        fields.push((key_field, Value::from(key_id)));
        fields.push(("date", Value::from(self.date.as_str())));
        if let (true, Some(id)) = (with_request, &self.request_id) {
            fields.push(("request_id", Value::from(id.as_str())));
        }
        // No name is written twice: a file with duplicate keys means different things to different
        // parsers.
        let extra = self.extra.iter().filter(|(k, _)| !WRITTEN.contains(&k.as_str()));
        fields.extend(extra.map(|(k, v)| (k.as_str(), v.clone())));
        if inner_signature {
            fields.push(("signature", v1_signature()));
        }
        if wrapped {
            fields.push(("schema_version", Value::from(2)));
        }
        let mut body = String::new();
        write_object(&mut body, fields.iter().map(|(k, v)| (*k, v)), style);
        if !wrapped {
            return body;
        }
        // v2 signs the inner object exactly as written here, then places those bytes in the wrapper.
        let signature = hmac_base64(shared_key, body.as_bytes());
        let (comma, colon) = (style.comma(), style.colon());
        format!("{{\"request\"{colon}{body}{comma}\"signature\"{colon}\"{signature}\"}}")
    }
}

/// A `multipart/form-data` upload of `base64_text` as the `file` part (`filename="request.req"`,
/// `application/octet-stream`), CRLF line endings as browsers and curl send. Returns (content type, body).
pub fn multipart(base64_text: &str, boundary: &str) -> (String, Vec<u8>) {
    let body = format!(
        "--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"request.req\"\r\n\
         Content-Type: application/octet-stream\r\n\
         \r\n\
         {base64_text}\r\n\
         --{boundary}--\r\n"
    );
    (format!("multipart/form-data; boundary={boundary}"), body.into_bytes())
}

/// `Tue, 03 Nov 2026 05:58:48 GMT`, as the Python client writes `date`.
pub fn rfc7231_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

const JAVASCRIPT_DATE: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short] [month repr:short] [day padding:none] [year] [hour]:[minute]:[second] GMT+0000"
);

/// `Tue Nov 3 2026 05:58:48 GMT+0000`, as the JavaScript client writes `date` (SPEC §6.2), in UTC.
pub fn javascript_date(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(JAVASCRIPT_DATE)
        .expect("every SystemTime formats")
}

/// `{"k": v, ...}` in the given order.
fn write_object<'a>(out: &mut String, fields: impl IntoIterator<Item = (&'a str, &'a Value)>, style: Style) {
    out.push('{');
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push_str(style.comma());
        }
        write_string(out, key, style);
        out.push_str(style.colon());
        write_value(out, value, style);
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &Value, style: Style) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n, style),
        Value::String(s) => write_string(out, s, style),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(style.comma());
                }
                write_value(out, item, style);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map.iter().map(|(k, v)| (k.as_str(), v)), style),
    }
}

fn write_number(out: &mut String, n: &serde_json::Number, style: Style) {
    match n.as_f64() {
        // Integers are written alike by every client.
        _ if n.is_i64() || n.is_u64() => out.push_str(&n.to_string()),
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 => {
            if style.python_floats {
                // Python's repr of a float with no fraction in this range: `1.0`, `-3.0`.
                let _ = write!(out, "{f:.1}");
            } else {
                // JavaScript numbers have no integer/float distinction: `1.0` is `1`, `-0` is `0`.
                let _ = write!(out, "{}", f as i64);
            }
        }
        // Other floats: shortest round-trip digits, as both clients write them in ordinary ranges.
        _ => out.push_str(&n.to_string()),
    }
}

fn write_string(out: &mut String, s: &str, style: Style) {
    if !style.ascii {
        // Python with ensure_ascii=False and JSON.stringify escape exactly `"`, `\` and control
        // characters, as serde_json does.
        out.push_str(&serde_json::to_string(s).expect("strings serialise"));
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='\u{7e}' | '\u{7f}' => out.push(c),
            _ => {
                // Outside the BMP a character is two UTF-16 code units, each escaped (`\ud83d\ude00`).
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::payload::{Payload, Schema};
    use crate::offline::transport;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    const KEY: &str = "file-test-key";

    fn request(kind: Kind) -> RequestFile {
        let mut extra = Map::new();
        extra.insert("consumptions".into(), json!(1.0));
        extra.insert("os_ver".into(), json!("macOS 14 — Ünïcode 😀 \"quoted\"\n"));
        extra.insert("is_vm".into(), json!(false));
        extra.insert("license_id".into(), json!(42));
        extra.insert(
            "product_features".into(),
            json!([{"feature": "f1", "consumptions": -2.0}, {"feature": "f2", "consumptions": 0.5}]),
        );
        extra.insert("variables".into(), json!({"seat": "a", "empty": null}));
        RequestFile {
            kind,
            product: "prod".into(),
            hardware_id: "hw-ü".into(),
            license_key: None,
            username: Some("user@example.com".into()),
            password: Some("hunter2-secret".into()),
            api_key: "ak-1".into(),
            date: "Tue Nov 3 2026 05:58:48 GMT+0000".into(),
            request_id: Some("rid-1".into()),
            extra,
        }
    }

    #[test]
    fn python_activation_is_spaced_ascii_with_python_floats() {
        let json = request(Kind::Activation).json(Shape::PythonActivation, KEY);
        let inner_start =
            "{\"request\": {\"request\": \"activation\", \"product\": \"prod\", \"hardware_id\": \"hw-\\u00fc\", ";
        assert!(json.starts_with(inner_start), "{json}");
        assert!(json.is_ascii(), "{json}");
        assert!(json.contains(r#""consumptions": 1.0, "#), "{json}");
        assert!(json.contains(r#"{"consumptions": -2.0, "feature": "f1"}"#), "{json}");
        assert!(json.contains(r#""consumptions": 0.5"#), "{json}");
        assert!(
            json.contains(r#""os_ver": "macOS 14 \u2014 \u00dcn\u00efcode \ud83d\ude00 \"quoted\"\n""#),
            "{json}"
        );
        assert!(json.contains(r#""variables": {"empty": null, "seat": "a"}"#), "{json}");
        assert!(json.contains(r#", "signature": "#), "{json}");
        assert!(json.contains(r#""schema_version": 2}, "signature": ""#), "{json}");
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["request"]["os_ver"], "macOS 14 — Ünïcode 😀 \"quoted\"\n");
    }

    #[test]
    fn python_deactivation_is_spaced_raw_utf8() {
        let json = request(Kind::Deactivation).json(Shape::PythonDeactivation, KEY);
        assert!(
            json.starts_with(r#"{"request": {"request": "deactivation", "product": "prod", "hardware_id": "hw-ü", "#)
        );
        assert!(
            json.contains(r#""os_ver": "macOS 14 — Ünïcode 😀 \"quoted\"\n""#),
            "{json}"
        );
        assert!(json.contains(r#""consumptions": 1.0, "#), "{json}");
    }

    #[test]
    fn javascript_is_compact_utf8_without_inner_signature() {
        let json = request(Kind::Activation).json(Shape::JavaScript, KEY);
        assert!(json.starts_with(r#"{"request":{"request":"activation","product":"prod","hardware_id":"hw-ü","#));
        assert!(json.contains(r#""consumptions":1,"#), "{json}");
        assert!(json.contains(r#"{"consumptions":-2,"feature":"f1"}"#), "{json}");
        assert!(json.contains(r#""schema_version":2},"signature":""#), "{json}");
        let value: Value = serde_json::from_str(&json).unwrap();
        assert!(value["request"].get("signature").is_none());
    }

    #[test]
    fn flat_shapes() {
        let mut file = request(Kind::Deactivation);
        file.extra.insert("request_id".into(), json!("sneaked-in"));
        file.extra.insert("signature".into(), json!("x"));
        let bare = file.json(Shape::BareDeactivation, KEY);
        assert_eq!(bare.matches("\"signature\"").count(), 1, "{bare}");
        let value: Value = serde_json::from_str(&bare).unwrap();
        for absent in ["request", "request_id", "schema_version"] {
            assert!(value.get(absent).is_none(), "{absent}: {bare}");
        }
        assert!(value["signature"].is_string());
        let v1 = request(Kind::Activation).json(Shape::V1, KEY);
        let value: Value = serde_json::from_str(&v1).unwrap();
        assert_eq!(
            (value["request"].as_str(), value["request_id"].as_str()),
            (Some("activation"), Some("rid-1"))
        );
        assert!(value.get("schema_version").is_none());
    }

    /// Every shape × kind through both transports, verified with the right key and refused with
    /// another one or after one byte inside the signed span changed. The password stays out of `Debug`.
    #[tokio::test]
    async fn round_trip_every_shape_and_kind() {
        for shape in [
            Shape::PythonActivation,
            Shape::PythonDeactivation,
            Shape::JavaScript,
            Shape::BareDeactivation,
            Shape::V1,
        ] {
            for kind in [Kind::Activation, Kind::Deactivation] {
                let file = request(kind);
                let text = file.encode(shape, KEY);
                let (ct, body) = multipart(&text, "------------------------d74496d66958873e");
                for (ct, body) in [
                    (Some("text/plain"), format!("{text}\n").into_bytes()),
                    (Some(ct.as_str()), body),
                ] {
                    let json = transport::decode(&transport::upload_text(ct, body.into()).await.unwrap()).unwrap();
                    let p = Payload::parse(&json).unwrap();
                    assert!(p.verify(KEY), "{shape:?} {kind:?}");
                    assert!(!p.verify("wrong-key"), "{shape:?} {kind:?}");
                    let wrapped = matches!(
                        shape,
                        Shape::PythonActivation | Shape::PythonDeactivation | Shape::JavaScript
                    );
                    assert_eq!(p.schema(), if wrapped { Schema::V2 } else { Schema::V1 });
                    // One byte of the username (signed by both schemas), inside the `request` span.
                    let tampered = json.replacen("user@example.com", "user@example.con", 1);
                    assert!(!Payload::parse(&tampered).unwrap().verify(KEY), "{shape:?} {kind:?}");
                    let printed = format!("{p:?} {file:?}");
                    assert!(!printed.contains("hunter2"), "{printed}");
                }
            }
        }
    }

    /// Under OAuth the file names `client_id` instead of `api_key`, and its v1 signature ends with it.
    #[test]
    fn an_oauth_file_names_its_client() {
        use crate::offline::payload::KeyId;
        let file = RequestFile {
            api_key: FileKey::ClientId("ci-1".into()),
            ..request(Kind::Activation)
        };
        for shape in [Shape::V1, Shape::PythonActivation, Shape::JavaScript] {
            let json = file.json(shape, KEY);
            let value: Value = serde_json::from_str(&json).unwrap();
            let fields = value["request"].as_object().filter(|_| shape != Shape::V1);
            let fields = fields.unwrap_or_else(|| value.as_object().unwrap());
            assert_eq!(fields["client_id"], "ci-1", "{json}");
            assert!(fields.get("api_key").is_none(), "{json}");
            let p = Payload::parse(&json).unwrap();
            assert_eq!(p.key_id(), KeyId::ClientId("ci-1"));
            assert!(p.verify(KEY), "{shape:?}");
        }
        let v1: Value = serde_json::from_str(&file.json(Shape::V1, KEY)).unwrap();
        let message = v1_message(&file.date, "user@example.com", &file.hardware_id, "ci-1");
        assert_eq!(v1["signature"], hmac_base64(KEY, message.as_bytes()));
    }

    #[test]
    fn dates_in_both_client_formats_parse_back() {
        let t = UNIX_EPOCH + Duration::from_secs(1_793_685_528);
        assert_eq!(rfc7231_date(t), "Tue, 03 Nov 2026 05:58:48 GMT");
        assert_eq!(javascript_date(t), "Tue Nov 3 2026 05:58:48 GMT+0000");
        let want = crate::time::Timestamp::from_system(t);
        assert_eq!(crate::offline::payload::parse_date(&rfc7231_date(t)), Some(want));
        assert_eq!(crate::offline::payload::parse_date(&javascript_date(t)), Some(want));
    }

    #[test]
    fn multipart_body_is_one_crlf_file_part() {
        let (ct, body) = multipart("QUJD", "bnd");
        assert_eq!(ct, "multipart/form-data; boundary=bnd");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"request.req\"\r\n\
             Content-Type: application/octet-stream\r\n\r\nQUJD\r\n--bnd--\r\n"
        );
    }
}
