//! The SPEC §1.2 request checks on arbitrary input: `parse_authorization`, `check_date` and
//! `verify_hmac_base64` never panic, reject with the SPEC codes only, and accept exactly what a client
//! may send.

use crate::strategies::{spec_error, text};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use license_api::auth::{check_date, hmac_base64, parse_authorization, verify_hmac_base64, DATE_WINDOW};
use proptest::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second `httpdate` can print (9999-12-31T23:59:59Z), kept clear of by the generators.
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// A parameter value as clients write it: no `"` and no `,` (the header has no escaping).
fn param_value() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9+/=_.-]{0,24}", "[^\",]{0,12}"]
}

/// `name` in a random mix of upper and lower case (SPEC: names are case-insensitive).
fn any_case(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn now() -> impl Strategy<Value = SystemTime> {
    (3_600..MAX_HTTP_DATE_SECS - 3_600).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

proptest! {
    #![proptest_config(crate::strategies::config())]

    #[test]
    fn any_authorization_value(value in prop_oneof![any::<String>(), "[a-zA-Z=\", ]{0,48}"]) {
        if let Err(e) = parse_authorization(&value) {
            spec_error(&e, &["authorization_invalid_headers", "authorization_missing_params"])?;
        }
    }

    /// Any order, any name case, optional quotes, spaces around separators and stray empty parts.
    #[test]
    fn well_formed_headers_parse_to_their_values(
        values in prop::array::uniform4(param_value()),
        names in (any_case("algorithm"), any_case("headers"), any_case("signature"), any_case("apikey")),
        order in Just([0usize, 1, 2, 3]).prop_shuffle(),
        quoted in prop::array::uniform4(any::<bool>()),
        space in prop::array::uniform4("[ \t]{0,2}"),
        stray_comma in any::<bool>(),
    ) {
        let names = [names.0, names.1, names.2, names.3];
        let parts: Vec<String> = order
            .iter()
            .map(|&i| {
                let v = if quoted[i] { format!("\"{}\"", values[i]) } else { values[i].clone() };
                format!("{}{}={v}", space[i], names[i])
            })
            .collect();
        let mut header = parts.join(",");
        if stray_comma {
            header.push_str(", ");
        }
        let parsed = parse_authorization(&header).map_err(|e| TestCaseError::fail(format!("{header}: {e}")))?;
        // Unquoted values lose surrounding whitespace, which no client relies on.
        let expect = |i: usize| if quoted[i] { values[i].clone() } else { values[i].trim().to_owned() };
        prop_assert_eq!(parsed.algorithm, expect(0));
        prop_assert_eq!(parsed.headers, expect(1));
        prop_assert_eq!(parsed.signature, expect(2));
        prop_assert_eq!(parsed.api_key, expect(3));
    }

    #[test]
    fn any_date_value(date in prop_oneof![any::<String>(), "[A-Za-z0-9 ,:-]{0,40}"], now in now()) {
        if let Err(e) = check_date(&date, now) {
            spec_error(&e, &["date_header_diff"])?;
        }
    }

    /// An IMF-fixdate is accepted exactly when it is at most 15 minutes from the server clock.
    #[test]
    fn date_window(now in now(), offset in -2_000i64..2_000) {
        let sent = if offset >= 0 {
            now + Duration::from_secs(offset.unsigned_abs())
        } else {
            now - Duration::from_secs(offset.unsigned_abs())
        };
        let date = httpdate::fmt_http_date(sent);
        prop_assert_eq!(check_date(&date, now).is_ok(), offset.unsigned_abs() <= DATE_WINDOW.as_secs(), "{}", date);
    }

    /// A signature verifies exactly when it decodes to the HMAC; padding spaces are tolerated.
    #[test]
    fn hmac_verification(
        key in text(),
        message in prop::collection::vec(any::<u8>(), 0..64),
        signature in prop_oneof![any::<String>(), "[A-Za-z0-9+/=]{0,48}"],
    ) {
        let expected = hmac_base64(&key, &message);
        prop_assert!(verify_hmac_base64(&key, &message, &expected));
        let padded = format!(" {expected} ");
        prop_assert!(verify_hmac_base64(&key, &message, &padded));
        let raw = B64.decode(&expected).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let matches = B64.decode(signature.trim()).is_ok_and(|given| given == raw);
        prop_assert_eq!(verify_hmac_base64(&key, &message, &signature), matches);
    }

    #[test]
    fn any_changed_bit_fails(key in text(), message in prop::collection::vec(any::<u8>(), 0..64), bit in 0usize..256) {
        let mut raw = B64.decode(hmac_base64(&key, &message)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        raw[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!verify_hmac_base64(&key, &message, &B64.encode(raw)));
    }
}
