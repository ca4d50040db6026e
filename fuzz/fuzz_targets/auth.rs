//! The SPEC §1.2 checks on arbitrary headers: `parse_authorization`, `check_date` at an arbitrary
//! server time, `verify_hmac_base64` against the HMAC it must equal, and the whole
//! `Authenticator::authenticate` over an SQLite store holding the example catalog's API keys.

#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use license_api::auth::{check_date, hmac_base64, parse_authorization, verify_hmac_base64, Access, Authenticator};
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
    /// Header values as raw bytes (not all are valid `HeaderValue`s, nor UTF-8).
    raw_date: &'a [u8],
    raw_authorization: &'a [u8],
    write: bool,
}

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

    let mut headers = http::HeaderMap::new();
    for (name, value) in [("date", input.raw_date), ("authorization", input.raw_authorization)] {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    let (runtime, state) = common::world();
    // A fresh authenticator each time, so every input reaches the store rather than the cache.
    let auth = Authenticator::new(Duration::ZERO);
    let access = if input.write { Access::Write } else { Access::Read };
    let result = runtime.block_on(auth.authenticate(&headers, &*state.store, access, SystemTime::now()));
    if let Err(e) = result {
        assert!(e.status() == 400, "{e:?}");
    }
});
