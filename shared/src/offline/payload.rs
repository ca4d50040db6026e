//! Reading and verifying an offline request file (SPEC §6.2) once the upload is decoded to JSON text.
//!
//! Two schema versions exist in the field. v1 is a flat object signed over a short message built from
//! a few of its fields; v2 wraps the v1 fields in `{"request": {...}, "signature": "..."}` and signs the
//! `request` value byte for byte. Clients serialise that value differently (spaced or compact, `\u`
//! escapes or raw UTF-8, `1.0` floats), so v2 is verified over the exact span of the decoded text and
//! never over a re-serialisation.
//!
//! Nothing here decides what the request does: [`Payload::fields`] hands the v1 fields to the same
//! parser the online endpoints use.

use crate::auth::signing_message;
use crate::error::ApiError;
use crate::request::Params;
use crate::secret::redacted_option;
use crate::time::{Timestamp, MAX_MILLIS, MIN_MILLIS};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// What the file asks for, when it says so (v2 files and bare deactivation files may not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Activation,
    Deactivation,
}

impl Kind {
    /// The value of the `request` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activation => "activation",
            Self::Deactivation => "deactivation",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schema {
    /// Flat object, signed over `licenseSpring\ndate: …` and three of its fields.
    V1,
    /// `{"request": {...}, "signature": …}`, signed over the raw bytes of `request`.
    V2,
}

/// Who the device says it talks to: an API key (signed with its shared key) or an OAuth client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyId<'a> {
    ApiKey(&'a str),
    ClientId(&'a str),
}

impl<'a> KeyId<'a> {
    /// The value itself, whichever field carried it; it ends the v1 signing message.
    pub fn as_str(&self) -> &'a str {
        match self {
            Self::ApiKey(s) | Self::ClientId(s) => s,
        }
    }
}

/// A parsed request file. `Debug` prints what identifies the request, never the field values (they
/// may hold a password).
pub struct Payload {
    schema: Schema,
    fields: Params,
    kind: Option<Kind>,
    request_id: Option<String>,
    date: String,
    date_time: Timestamp,
    hardware_id: String,
    /// `license_key`, else `username`: the value the v1 message signs.
    identity: String,
    key_id: String,
    key_is_client_id: bool,
    signature: String,
    /// v2 only: the `request` value exactly as it appears in the decoded text.
    signed_span: Option<String>,
}

/// The message a v1 signature (and a response's `offline_signature`) signs (SPEC §6.2, §6.3).
pub fn v1_message(date: &str, identity: &str, hardware_id: &str, key_id: &str) -> String {
    format!("{}\n{identity}\n{hardware_id}\n{key_id}", signing_message(date))
}

fn bad(what: &str) -> ApiError {
    ApiError::OfflinePayload(what.to_owned())
}

impl Payload {
    /// Reads the decoded JSON text of a request file. Errors name the field that is missing or wrong:
    /// `authorization_missing_params` for what authenticates the file, `missing_parameters` for
    /// `product` (as online), `validation_error` for a `date` in no known format.
    pub fn parse(json_text: &str) -> Result<Payload, ApiError> {
        // Top level as raw values borrowed from the text: v2's `request` must keep its exact bytes.
        let top: BTreeMap<String, &RawValue> =
            serde_json::from_str(json_text).map_err(|_| bad("the body is not base64 of a JSON object"))?;
        let request = top.get("request").map(|raw| raw.get());
        let is_object = |raw: &str| raw.starts_with('{');
        let (schema, fields, signature, signed_span) = match request {
            Some(raw) if is_object(raw) => {
                let inner: Map<String, Value> =
                    serde_json::from_str(raw).map_err(|_| bad("`request` is not a JSON object"))?;
                let signature = outer_string(&top, "signature")?;
                (Schema::V2, Params::from_map(inner), signature, Some(raw.to_owned()))
            }
            // A v1 `request` names the kind; anything else that is not an object cannot be either schema.
            Some(raw) if !(raw.starts_with('"') || raw == "null") => {
                return Err(bad("`request` must be an object (schema v2) or a string (schema v1)"));
            }
            _ => {
                if top.get("schema_version").map(|raw| raw.get()) == Some("2") {
                    return Err(bad("`request` must be an object in a schema v2 file"));
                }
                let flat: Map<String, Value> =
                    serde_json::from_str(json_text).map_err(|_| bad("the body is not base64 of a JSON object"))?;
                let fields = Params::from_map(flat);
                let signature = fields.string("signature")?.ok_or_else(|| bad("signature"))?;
                (Schema::V1, fields, signature, None)
            }
        };

        refuse_sso_grant(&fields)?;
        let hardware_id = fields.string("hardware_id")?.ok_or_else(|| bad("hardware_id"))?;
        let identity = match fields.string("license_key")? {
            Some(key) => key,
            None => fields
                .string("username")?
                .ok_or_else(|| bad("license_key or username"))?,
        };
        let (key_id, key_is_client_id) = match fields.string("api_key")? {
            Some(key) => (key, false),
            None => (
                fields.string("client_id")?.ok_or_else(|| bad("api_key or client_id"))?,
                true,
            ),
        };
        let date = fields.string("date")?.ok_or_else(|| bad("date"))?;
        if signature.trim().is_empty() {
            return Err(bad("signature"));
        }
        fields.required("product")?;
        let date_time = parse_date(&date).ok_or_else(|| {
            ApiError::Validation(
                "`date` must be an RFC 7231 date (`Tue, 03 Nov 2026 05:58:48 GMT`), a JavaScript date \
                 (`Tue Nov 03 2026 05:58:48 GMT+0000`) or ISO 8601"
                    .into(),
            )
        })?;
        let kind = match fields.string("request")? {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("activation") => Some(Kind::Activation),
            Some(s) if s.eq_ignore_ascii_case("deactivation") => Some(Kind::Deactivation),
            Some(_) => {
                return Err(ApiError::Validation(
                    "`request` must be \"activation\" or \"deactivation\"".into(),
                ))
            }
        };
        let request_id = fields.string("request_id")?;
        Ok(Payload {
            schema,
            kind,
            request_id,
            date,
            date_time,
            hardware_id,
            identity,
            key_id,
            key_is_client_id,
            signature,
            signed_span,
            fields,
        })
    }

    pub fn schema(&self) -> Schema {
        self.schema.clone()
    }

    /// The v1 fields: the flat object (v1) or the inner `request` object (v2).
    pub fn fields(&self) -> &Params {
        &self.fields
    }

    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The `date` exactly as in the file; it is signed (v1) and echoed in the response (SPEC §6.3).
    pub fn date(&self) -> &str {
        &self.date
    }

    pub fn date_time(&self) -> Timestamp {
        self.date_time
    }

    pub fn key_id(&self) -> KeyId<'_> {
        if self.key_is_client_id {
            KeyId::ClientId(&self.key_id)
        } else {
            KeyId::ApiKey(&self.key_id)
        }
    }

    /// The signature that authenticates the file: v1 the flat `signature`, v2 the outer one.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Whether the file's signature verifies with `key` (the shared key of its `api_key`, or under
    /// OAuth the client secret). v1 signs [`v1_message`]; v2 signs the raw bytes of `request`. The
    /// signature may be base64 (either alphabet, padded or not) or hex; comparison is constant-time.
    pub fn verify(&self, key: &str) -> bool {
        let v1;
        let message = match &self.signed_span {
            Some(span) => span,
            None => {
                v1 = v1_message(&self.date, &self.identity, &self.hardware_id, &self.key_id);
                &v1
            }
        };
        signature_candidates(&self.signature).iter().any(|given| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
            mac.update(message.as_bytes());
            mac.verify_slice(given).is_ok()
        })
    }

    /// What identifies the request for at-most-once application: a digest of exactly what its signature
    /// covers (v2: the `request` bytes; v1: the signed message) and, for v1, the product it does not sign.
    /// Not the `request_id`: v1 does not sign it and two devices' files may share one, and a file must
    /// never get another request's answer. Not the signature's spelling either (base64 or hex, padded or
    /// not): the same file re-spelled is the same request.
    pub fn content_digest(&self) -> [u8; 32] {
        use sha2::Digest;
        match &self.signed_span {
            Some(span) => Sha256::new().chain_update(b"v2\0").chain_update(span.as_bytes()),
            None => Sha256::new()
                .chain_update(b"v1\0")
                .chain_update(v1_message(&self.date, &self.identity, &self.hardware_id, &self.key_id).as_bytes())
                .chain_update(b"\0")
                .chain_update(
                    self.fields
                        .string("product")
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                        .as_bytes(),
                ),
        }
        .finalize()
        .into()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("schema", &self.schema)
            .field("kind", &self.kind)
            .field("request_id", &self.request_id)
            .field("date", &self.date)
            .field("hardware_id", &self.hardware_id)
            .field("key_id", &self.key_id())
            .field(
                "password",
                &redacted_option(&self.fields.string("password").ok().flatten()),
            )
            .finish_non_exhaustive()
    }
}

/// The names of the single sign-on grants (SPEC §2.1).
const SSO_GRANTS: [&str; 2] = ["id_token", "code"];

/// An offline file names its license by `license_key` or `username` only (SPEC §6.2, seed 003's schema):
/// its signature covers one of them, an ID token expires in minutes while a file is uploaded hours or days
/// later, and an authorization code is single-use and bound to a browser redirect. A file carrying a grant
/// is told so, rather than "license_key or username missing" or a conflict of credentials.
fn refuse_sso_grant(fields: &Params) -> Result<(), ApiError> {
    match SSO_GRANTS
        .iter()
        .find(|name| !matches!(fields.get(name), None | Some(Value::Null)))
    {
        Some(name) => Err(ApiError::Validation(format!(
            "an offline request file cannot carry a single sign-on grant (`{name}`): name the license by \
             `license_key` or by `username`; single sign-on works with the online endpoints only"
        ))),
        None => Ok(()),
    }
}

/// A top-level string of a v2 file (only `signature` is read there).
fn outer_string(top: &BTreeMap<String, &RawValue>, name: &str) -> Result<String, ApiError> {
    match top.get(name).map(|raw| serde_json::from_str::<Value>(raw.get())) {
        Some(Ok(Value::String(s))) if !s.trim().is_empty() => Ok(s),
        _ => Err(bad(name)),
    }
}

/// The byte strings a signature text may stand for. Hex of an HMAC-SHA256 is 64 characters, which as
/// base64 would be 48 bytes and never match, so trying both readings cannot confuse one for the other.
fn signature_candidates(text: &str) -> Vec<Vec<u8>> {
    let text = text.trim();
    let mut out = Vec::new();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        out.push(
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("checked hex"))
                .collect(),
        );
    }
    let lenient = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    for alphabet in [&base64::alphabet::STANDARD, &base64::alphabet::URL_SAFE] {
        if let Ok(bytes) = GeneralPurpose::new(alphabet, lenient).decode(text) {
            out.push(bytes);
        }
    }
    out
}

// `DD Mon YYYY HH:MM:SS ±HHMM`: both human formats are rewritten to this before parsing, so the
// `time` crate does the calendar checks and no byte-slicing of untrusted text happens here.
const CANONICAL: &[BorrowedFormatItem<'_>] = format_description!(
    "[day] [month repr:short case_sensitive:false] [year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
);

/// Parses a request file's `date`: RFC 7231 (`Tue, 03 Nov 2026 05:58:48 GMT`), JavaScript's
/// `Date.toString()` shape (`Tue Nov 3 2026 05:58:48 GMT+0000`, optionally followed by ` (zone name)`),
/// or ISO 8601. No time window applies: offline requests are uploaded late.
///
/// The weekday is not checked. `httpdate` rejects a weekday that does not match the date, and files
/// carry such dates (SPEC §6.2's own example is one); the date is signed text, and its weekday decides
/// nothing.
pub fn parse_date(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(t) = httpdate::parse_http_date(text) {
        return Some(Timestamp::from_system(t));
    }
    if let Some(t) = Timestamp::parse_iso(text) {
        return Some(t);
    }
    // A JavaScript zone name in parentheses may follow; it repeats the offset in words.
    let text = match text.find(" (") {
        Some(i) if text.ends_with(')') => &text[..i],
        Some(_) => return None,
        None => text,
    };
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let (day, month, year, clock, zone) = match tokens.as_slice() {
        // RFC 7231 with any weekday: `Www, DD Mon YYYY HH:MM:SS GMT`.
        [weekday, day, month, year, clock, zone] if weekday.ends_with(',') => (day, month, year, clock, zone),
        // JavaScript: `Www Mon D YYYY HH:MM:SS GMT+HHMM`.
        [_, month, day, year, clock, zone] => (day, month, year, clock, zone),
        _ => return None,
    };
    let day = match day.len() {
        1 if day.bytes().all(|b| b.is_ascii_digit()) => format!("0{day}"),
        2 if day.bytes().all(|b| b.is_ascii_digit()) => (*day).to_owned(),
        _ => return None,
    };
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset = zone
        .strip_prefix("GMT")
        .or_else(|| zone.strip_prefix("UTC"))?
        .replace(':', "");
    let offset = if offset.is_empty() { "+0000".to_owned() } else { offset };
    let canonical = format!("{day} {month} {year} {clock} {offset}");
    let instant = OffsetDateTime::parse(&canonical, CANONICAL).ok()?;
    let ms = i64::try_from(instant.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?;
    (MIN_MILLIS..=MAX_MILLIS)
        .contains(&ms)
        .then(|| Timestamp::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hmac_base64;
    use crate::offline::file::{RequestFile, Shape};
    use crate::offline::transport;

    const KEY: &str = "shared-key-1";

    fn file(kind: Kind) -> RequestFile {
        let mut extra = Map::new();
        extra.insert("os_ver".into(), Value::from("Windows 11 Pro für Workstations"));
        extra.insert("consumptions".into(), serde_json::json!(1.0));
        RequestFile {
            kind,
            product: "prod".into(),
            hardware_id: "hw-1".into(),
            license_key: Some("AAAA-BBBB".into()),
            username: None,
            password: None,
            api_key: "api-key-1".into(),
            date: "Tue, 03 Nov 2026 05:58:48 GMT".into(),
            request_id: Some("req-1".into()),
            extra,
        }
    }

    fn parse(json: &str) -> Result<Payload, ApiError> {
        Payload::parse(json)
    }

    fn code(json: &str) -> (&'static str, String) {
        let e = parse(json).unwrap_err();
        (e.code(), e.to_string())
    }

    fn v1_signed(fields: &str, date: &str) -> String {
        let sig = hmac_base64(KEY, v1_message(date, "K-1", "h1", "ak").as_bytes());
        format!(
            r#"{{"request":"activation","product":"p","hardware_id":"h1","license_key":"K-1","api_key":"ak","date":"{date}","signature":"{sig}"{fields}}}"#
        )
    }

    #[test]
    fn a_single_sign_on_grant_is_refused_by_name() {
        const DATE: &str = "Tue, 03 Nov 2026 05:58:48 GMT";
        for grant in ["id_token", "code"] {
            for identity in ["", r#","username":"a@b.c""#] {
                let json = v1_signed(
                    &format!(r#","{grant}":"g","customer_account_code":"acct"{identity}"#),
                    DATE,
                );
                let (code, message) = code(&json);
                assert_eq!(code, "validation_error", "{json}");
                assert!(
                    message.contains(grant) && message.contains("single sign-on"),
                    "{message}"
                );
            }
        }
        assert!(parse(&v1_signed(r#","id_token":null"#, DATE)).is_ok());
    }

    #[test]
    fn v2_is_verified_over_the_raw_span_not_a_reserialisation() {
        let inner = r#"{"request": "activation", "product": "p", "hardware_id": "h\u00fc", "license_key": "K-1", "api_key": "ak", "date": "Tue, 03 Nov 2026 05:58:48 GMT", "consumptions": 1.0, "schema_version": 2}"#;
        let json = format!(
            r#"{{"request": {inner}, "signature": "{}"}}"#,
            hmac_base64(KEY, inner.as_bytes())
        );
        let reserialised = serde_json::to_string(&serde_json::from_str::<Value>(inner).unwrap()).unwrap();
        assert_ne!(reserialised, inner);
        let p = parse(&json).unwrap();
        assert_eq!(p.schema(), Schema::V2);
        assert_eq!(p.fields().string("hardware_id").unwrap().as_deref(), Some("hü"));
        assert!(p.verify(KEY));
        assert!(!p.verify("another-key"));
        // The same request signed over its re-serialisation does not verify: only the bytes count.
        let other = format!(
            r#"{{"request": {inner}, "signature": "{}"}}"#,
            hmac_base64(KEY, reserialised.as_bytes())
        );
        assert!(!parse(&other).unwrap().verify(KEY));
    }

    #[test]
    fn hex_and_unpadded_signatures_are_accepted() {
        let inner =
            r#"{"product":"p","hardware_id":"h","license_key":"k","client_id":"c","date":"2026-11-03T05:58:48.000Z"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(inner.as_bytes());
        let raw = mac.finalize().into_bytes();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let p = parse(&format!(r#"{{"request":{inner},"signature":"{hex}"}}"#)).unwrap();
        assert!(p.verify(KEY));
        assert!(!p.verify("other"));
        assert_eq!(p.key_id(), KeyId::ClientId("c"));
        let p = parse(&format!(
            r#"{{"request":{inner},"signature":"{}"}}"#,
            hex.to_uppercase()
        ))
        .unwrap();
        assert!(p.verify(KEY));
        let b64 = hmac_base64(KEY, inner.as_bytes());
        let unpadded = b64.trim_end_matches('=');
        assert!(parse(&format!(r#"{{"request":{inner},"signature":"{unpadded}"}}"#))
            .unwrap()
            .verify(KEY));
        let url_safe = b64.replace('+', "-").replace('/', "_");
        assert!(parse(&format!(r#"{{"request":{inner},"signature":"{url_safe}"}}"#))
            .unwrap()
            .verify(KEY));
    }

    #[test]
    fn v1_signs_date_identity_hardware_and_key() {
        let json = v1_signed(r#","os_ver":"anything""#, "Tue, 03 Nov 2026 05:58:48 GMT");
        let p = parse(&json).unwrap();
        assert_eq!(p.schema(), Schema::V1);
        assert_eq!(p.kind(), Some(Kind::Activation));
        assert_eq!(p.key_id(), KeyId::ApiKey("ak"));
        assert!(p.verify(KEY));
        assert!(!p.verify("other"));
        // v1 does not sign the other fields; it does sign these four.
        assert!(parse(&json.replace("anything", "else")).unwrap().verify(KEY));
        for (from, to) in [
            ("\"h1\"", "\"h2\""),
            ("\"K-1\"", "\"K-2\""),
            ("\"ak\"", "\"ak2\""),
            ("05:58", "05:59"),
        ] {
            assert!(!parse(&json.replacen(from, to, 1)).unwrap().verify(KEY), "{from}");
        }
    }

    #[test]
    fn username_signs_when_there_is_no_license_key() {
        let date = "Tue, 03 Nov 2026 05:58:48 GMT";
        let sig = hmac_base64(KEY, v1_message(date, "a@b.c", "h1", "ak").as_bytes());
        let json = format!(
            r#"{{"product":"p","hardware_id":"h1","username":"a@b.c","password":"hunter2-secret","api_key":"ak","date":"{date}","signature":"{sig}"}}"#
        );
        let p = parse(&json).unwrap();
        assert!(p.verify(KEY));
        assert_eq!(p.kind(), None);
        let printed = format!("{p:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[REDACTED]"), "{printed}");
    }

    #[test]
    fn every_missing_field_is_named_with_its_code() {
        let date = "Tue, 03 Nov 2026 05:58:48 GMT";
        let full = v1_signed("", date);
        assert!(parse(&full).is_ok());
        let without = |field: &str| {
            let mut map: Map<String, Value> = serde_json::from_str(&full).unwrap();
            map.remove(field);
            serde_json::to_string(&map).unwrap()
        };
        let cases = [
            ("hardware_id", "authorization_missing_params", "hardware_id"),
            ("license_key", "authorization_missing_params", "license_key or username"),
            ("api_key", "authorization_missing_params", "api_key or client_id"),
            ("date", "authorization_missing_params", "date"),
            ("signature", "authorization_missing_params", "signature"),
            ("product", "missing_parameters", "product"),
        ];
        for (field, want_code, named) in cases {
            let (got, message) = code(&without(field));
            assert_eq!(got, want_code, "{field}");
            assert!(message.contains(named), "{field}: {message}");
        }
        // Empty strings count as absent, as online.
        assert_eq!(code(&full.replace("\"h1\"", "\"\"")).0, "authorization_missing_params");
        assert_eq!(code("[1, 2]").0, "authorization_missing_params");
        assert_eq!(code("\"text\"").0, "authorization_missing_params");
        assert_eq!(code("{").0, "authorization_missing_params");
        assert_eq!(
            code(r#"{"request": [1], "signature": "x"}"#).0,
            "authorization_missing_params"
        );
        assert_eq!(
            code(r#"{"request": "activation", "schema_version": 2, "signature": "x"}"#).0,
            "authorization_missing_params"
        );
        // v2: the outer signature is required, the inner one is not.
        let inner = r#"{"product":"p","hardware_id":"h","license_key":"k","api_key":"a","date":"Tue, 03 Nov 2026 05:58:48 GMT"}"#;
        let (got, message) = code(&format!(r#"{{"request":{inner}}}"#));
        assert_eq!(got, "authorization_missing_params");
        assert!(message.contains("signature"), "{message}");
        assert_eq!(
            code(&format!(r#"{{"request":{inner},"signature":""}}"#)).0,
            "authorization_missing_params"
        );
        assert_eq!(
            code(&format!(r#"{{"request":{inner},"signature":5}}"#)).0,
            "authorization_missing_params"
        );
        let v2 = parse(&format!(r#"{{"request":{inner},"signature":"c2ln"}}"#)).unwrap();
        assert_eq!((v2.kind(), v2.request_id()), (None, None));
        // A date in no known format.
        let (got, message) = code(&v1_signed("", "yesterday"));
        assert_eq!(got, "validation_error");
        assert!(message.contains("`date`"), "{message}");
        // A kind that is neither.
        assert_eq!(
            code(&full.replace("\"activation\"", "\"transfer\"")).0,
            "validation_error"
        );
    }

    #[test]
    fn dates_in_every_client_format() {
        let t = Timestamp::parse_iso("2026-11-03T05:58:48Z").unwrap();
        for text in [
            "Tue, 03 Nov 2026 05:58:48 GMT",
            // SPEC §6.2's own examples carry the wrong weekday.
            "Mon, 03 Nov 2026 05:58:48 GMT",
            "Mon Nov 3 2026 05:58:48 GMT+0000",
            "Tue Nov 03 2026 05:58:48 GMT+0000",
            "Tue Nov 03 2026 05:58:48 GMT+0000 (Coordinated Universal Time)",
            "Tue Nov 03 2026 06:58:48 GMT+0100 (Mitteleuropäische Normalzeit)",
            "Mon Nov 02 2026 21:58:48 GMT-0800 (Pacific Standard Time)",
            "Tue Nov 3 2026 05:58:48 GMT",
            "2026-11-03T05:58:48.000Z",
            "2026-11-03T06:58:48+01:00",
        ] {
            assert_eq!(parse_date(text), Some(t), "{text}");
        }
        for text in [
            "",
            "Tue Nov 3 2026",
            "Tue Nov 32 2026 05:58:48 GMT+0000",
            "Tue Nov 3 2026 25:58:48 GMT+0000",
            "Tue Nov 3 2026 05:58:48 GMT+0000 (unclosed",
            "Tue Nov 3 2026 05:58:48 EST",
            "Tue Foo 3 2026 05:58:48 GMT",
            "Tue Nov 3 +202 05:58:48 GMT",
            "Tue Nov é 2026 05:58:48 GMT+0000",
        ] {
            assert_eq!(parse_date(text), None, "{text}");
        }
        let p = parse(&v1_signed(
            "",
            "Tue Nov 3 2026 05:58:48 GMT+0000 (Coordinated Universal Time)",
        ))
        .unwrap();
        assert_eq!(
            p.date(),
            "Tue Nov 3 2026 05:58:48 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(p.date_time(), t);
        assert!(p.verify(KEY));
        // No window: a date years ago is fine.
        assert!(parse(&v1_signed("", "Sat, 01 Jan 2000 00:00:00 GMT"))
            .unwrap()
            .verify(KEY));
    }

    #[test]
    fn the_content_digest_is_what_was_signed_not_the_request_id_or_the_signature_spelling() {
        let date = "Tue, 03 Nov 2026 05:58:48 GMT";
        let p = parse(&v1_signed(r#","request_id":"r-9""#, date)).unwrap();
        assert_eq!(p.request_id(), Some("r-9"));
        for extra in ["", r#","request_id":"""#, r#","request_id":"r-10""#] {
            let same = parse(&v1_signed(extra, date)).unwrap();
            assert_eq!(
                same.content_digest(),
                p.content_digest(),
                "v1 does not sign `request_id`"
            );
        }
        let other_day = parse(&v1_signed(r#","request_id":"r-9""#, "Wed, 04 Nov 2026 05:58:48 GMT")).unwrap();
        assert_ne!(other_day.content_digest(), p.content_digest());
        let other_product = v1_signed(r#","request_id":"r-9""#, date).replace(r#""p""#, r#""q""#);
        assert_ne!(
            parse(&other_product).unwrap().content_digest(),
            p.content_digest(),
            "v1's product counts"
        );
    }

    #[test]
    fn numbers_are_tolerated_and_unknown_fields_ignored() {
        let p = parse(&v1_signed(
            r#","license_id":42,"whatever":{"x":[1]}"#,
            "Tue, 03 Nov 2026 05:58:48 GMT",
        ))
        .unwrap();
        assert_eq!(p.fields().integer("license_id").unwrap(), Some(42));
        assert!(p.verify(KEY));
    }

    /// Every shape our client writes, for both kinds, through both transports, decodes, parses and
    /// verifies; and a changed byte inside what the shape signs fails verification.
    #[tokio::test]
    async fn every_shape_round_trips_through_the_transport() {
        use crate::offline::file::multipart;
        for shape in [
            Shape::PythonActivation,
            Shape::PythonDeactivation,
            Shape::JavaScript,
            Shape::BareDeactivation,
            Shape::V1,
        ] {
            for kind in [Kind::Activation, Kind::Deactivation] {
                let f = file(kind);
                let text = f.encode(shape, KEY);
                let (content_type, body) = multipart(&text, "----boundary42");
                let uploads = [
                    (Some("text/plain"), format!("{text}\r\n").into_bytes()),
                    (None, format!("\n{text}\n").into_bytes()),
                    (Some(content_type.as_str()), body),
                ];
                for (content_type, body) in uploads {
                    let got = transport::upload_text(content_type, body.into()).await.unwrap();
                    let json = transport::decode(&got).unwrap();
                    assert_eq!(json, f.json(shape, KEY), "{shape:?}");
                    let p = parse(&json).unwrap();
                    assert!(p.verify(KEY), "{shape:?} {kind:?}");
                    assert!(!p.verify("another-key"), "{shape:?} {kind:?}");
                    let (schema, want_kind, request_id) = match shape {
                        Shape::BareDeactivation => (Schema::V1, None, None),
                        Shape::V1 => (Schema::V1, Some(kind), Some("req-1")),
                        _ => (Schema::V2, Some(kind), Some("req-1")),
                    };
                    assert_eq!(p.schema(), schema, "{shape:?}");
                    assert_eq!(p.kind(), want_kind, "{shape:?}");
                    assert_eq!(p.request_id(), request_id, "{shape:?}");
                    assert_eq!(p.date(), f.date);
                    assert_eq!(p.fields().string("hardware_id").unwrap().as_deref(), Some("hw-1"));
                    // A signed field changed by one byte.
                    assert!(
                        !parse(&json.replacen("hw-1", "hw-2", 1)).unwrap().verify(KEY),
                        "{shape:?}"
                    );
                    if schema == Schema::V2 {
                        // v2 signs every byte of `request`, including fields v1 leaves out.
                        let tampered = json.replacen("Workstations", "Workstationz", 1);
                        assert_ne!(tampered, json);
                        assert!(!parse(&tampered).unwrap().verify(KEY), "{shape:?}");
                    }
                }
            }
        }
    }
}
