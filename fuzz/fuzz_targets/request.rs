//! Request parsing: the input as a JSON body and as a query string, then `LicenseRequest::parse`.
//! Anything but `Ok` or a SPEC-shaped 4xx (a panic included) is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use license_api::error::ApiError;
use license_api::request::{LicenseRequest, Params};

fuzz_target!(|data: &[u8]| {
    check(Params::from_json(data));
    // A query string reaches the handlers as text: the URI is UTF-8 (lossy where it was not).
    check(Params::from_query(Some(&String::from_utf8_lossy(data))));
});

fn check(params: Result<Params, ApiError>) {
    let Err(e) = params.and_then(|p| LicenseRequest::parse(&p)) else {
        return;
    };
    assert!(
        matches!(
            (e.status(), e.code()),
            (400, "invalid_json" | "validation_error" | "missing_parameters") | (413, "payload_too_large")
        ),
        "unexpected error {e:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&e.body()).expect("error body is JSON");
    assert_eq!(body["code"], e.code());
}
