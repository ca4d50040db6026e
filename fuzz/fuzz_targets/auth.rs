//! The SPEC §1.2 checks on arbitrary headers: `parse_authorization`, `check_date` at an arbitrary
//! server time, `verify_hmac_base64` against the HMAC it must equal, and the whole
//! `Authenticator::authenticate` over an SQLite store holding the example catalog's API keys, with
//! headers either raw or assembled from parts (a current `Date`, a catalog key, the right signature)
//! so that inputs get past the date window to the key lookup and the signature check. An assembled
//! header that is correct in every part must be accepted.

#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use license_api::auth::{
    check_date, hmac_base64, parse_authorization, signing_message, verify_hmac_base64, Access, Authenticator,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "common.rs"]
mod common;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    authorization: &'a str,
    date: &'a str,
    now_secs: u64,
    shared_key: &'a str,
    message: &'a [u8],
    signature: &'a str,
    date_header: DateHeader<'a>,
    authorization_header: AuthorizationHeader<'a>,
    write: bool,
}

#[derive(Arbitrary, Debug)]
enum DateHeader<'a> {
    /// Now, moved by this many seconds.
    Now(i16),
    /// Raw bytes (not all are valid header values, nor UTF-8).
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
enum AuthorizationHeader<'a> {
    Built {
        algorithm: Part<'a>,
        headers: Part<'a>,
        signature: Signature<'a>,
        key: Key<'a>,
        /// Spaces after the commas, as some clients send.
        spaced: bool,
    },
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
enum Part<'a> {
    Expected,
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Signature<'a> {
    /// The HMAC of the `Date` header under the key's shared key.
    Valid,
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Key<'a> {
    Known(u8),
    Raw(&'a str),
}

/// (API key, shared key, usable, read-only) of examples/catalog.json.
const KEYS: &[(&str, &str, bool, bool)] = &[
    ("demo-api-key", "demo-shared-key-change-me", true, false),
    ("demo-read-only-key", "demo-read-only-secret", true, true),
    ("demo-desktop-only-key", "demo-desktop-secret", true, false),
    ("demo-revoked-key", "demo-revoked-secret", false, false),
];

fuzz_target!(|input: Input<'_>| {
    if let Err(e) = parse_authorization(input.authorization) {
        assert!(
            matches!(
                e.code(),
                "authorization_invalid_headers" | "authorization_missing_params"
            ),
            "{e:?}"
        );
    }

    // Any server clock httpdate can represent (years 1970 to 9999).
    let now = UNIX_EPOCH + Duration::from_secs(input.now_secs % 253_402_300_800);
    if let Err(e) = check_date(input.date, now) {
        assert_eq!(e.code(), "date_header_diff");
    }

    let expected = B64
        .decode(hmac_base64(input.shared_key, input.message))
        .expect("own base64");
    let given = B64.decode(input.signature.trim()).ok();
    assert_eq!(
        verify_hmac_base64(input.shared_key, input.message, input.signature),
        given.as_deref() == Some(&expected[..])
    );

    let server_now = SystemTime::now();
    let (date, date_ok) = match input.date_header {
        DateHeader::Now(offset) => {
            let secs = Duration::from_secs(u64::from(offset.unsigned_abs()));
            let at = if offset >= 0 {
                server_now + secs
            } else {
                server_now - secs
            };
            // Within the window with a second to spare for the time this input takes.
            (httpdate::fmt_http_date(at).into_bytes(), offset.unsigned_abs() < 899)
        }
        DateHeader::Raw(bytes) => (bytes.to_vec(), false),
    };
    let (authorization, authorization_ok, read_only) = match input.authorization_header {
        AuthorizationHeader::Built {
            algorithm,
            headers,
            signature,
            key,
            spaced,
        } => {
            let (api_key, shared_key, usable, read_only) = match key {
                Key::Known(i) => KEYS[usize::from(i) % KEYS.len()],
                Key::Raw(k) => (k, "", false, false),
            };
            let (algorithm, algorithm_ok) = part(algorithm, "hmac-sha256");
            let (headers, headers_ok) = part(headers, "date");
            let (signature, signature_ok) = match signature {
                Signature::Valid => (
                    hmac_base64(shared_key, signing_message(&String::from_utf8_lossy(&date)).as_bytes()),
                    true,
                ),
                Signature::Raw(raw) => (raw.to_owned(), false),
            };
            let separator = if spaced { ", " } else { "," };
            let value = [
                format!("algorithm=\"{algorithm}\""),
                format!("headers=\"{headers}\""),
                format!("signature=\"{signature}\""),
                format!("apikey=\"{api_key}\""),
            ]
            .join(separator);
            let ok = algorithm_ok && headers_ok && signature_ok && usable;
            (value.into_bytes(), ok, read_only)
        }
        AuthorizationHeader::Raw(bytes) => (bytes.to_vec(), false, false),
    };
    let mut headers = http::HeaderMap::new();
    for (name, value) in [("date", &date), ("authorization", &authorization)] {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    let (runtime, state) = common::world();
    // A fresh authenticator each time, so every input reaches the store rather than the cache.
    let auth = Authenticator::new(Duration::ZERO);
    let access = if input.write { Access::Write } else { Access::Read };
    let result = runtime.block_on(auth.authenticate(&headers, &*state.store, access, server_now));
    if let Err(e) = &result {
        assert!(e.status() == 400, "{e:?}");
    }
    if date_ok && authorization_ok {
        let expected = if read_only && input.write {
            Some("read_only_api_key")
        } else {
            None
        };
        assert_eq!(result.as_ref().err().map(|e| e.code()), expected, "{headers:?}");
    }
});

/// An assembled header part: what a client sends, or anything.
fn part<'a>(p: Part<'a>, expected: &'a str) -> (&'a str, bool) {
    match p {
        Part::Expected => (expected, true),
        Part::Raw(raw) => (raw, false),
    }
}
