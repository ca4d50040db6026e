//! Reading an offline upload (SPEC §6.1): the body is a request file's base64 text, either sent as is
//! (`text/plain`, `application/octet-stream`, curl's `--data` form type, or no type at all) or as the
//! `file` part of a `multipart/form-data` form, and [`decode`] turns that text into the JSON text of the
//! request file. Verifying what the file says is [`super::payload`]'s job.

use crate::error::ApiError;
use crate::request::MAX_BODY_BYTES;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use bytes::Bytes;

/// Largest upload accepted: base64 and a multipart envelope add about a third to a request file.
pub const MAX_UPLOAD_BYTES: usize = MAX_BODY_BYTES * 2;
/// Largest decoded request file, the same bound as an online JSON body.
pub const MAX_DECODED_BYTES: usize = MAX_BODY_BYTES;

const NOT_BASE64_JSON: &str = "the body is not base64 of a JSON object";

/// The base64 text of an upload, with surrounding and interior ASCII whitespace removed (files end with
/// a newline, and some tools wrap base64 at 76 columns).
pub async fn upload_text(content_type: Option<&str>, body: Bytes) -> Result<String, ApiError> {
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_UPLOAD_BYTES));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MissingParameters("request body".into()));
    }
    let text = match content_type.filter(|ct| is_multipart(ct)) {
        Some(content_type) => {
            let file = file_part(content_type, body).await?;
            if file.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::MissingContent);
            }
            file
        }
        None => body,
    };
    let text =
        std::str::from_utf8(&text).map_err(|_| ApiError::OfflinePayload(format!("{NOT_BASE64_JSON} (not text)")))?;
    Ok(text.split_ascii_whitespace().collect())
}

/// Whether the media type is `multipart/form-data`, whatever its parameters and letter case.
fn is_multipart(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("multipart/form-data")
}

/// The contents of the first part named `file`. The form is parsed by `multer`: boundaries and part
/// headers are where hand-written parsers go wrong.
async fn file_part(content_type: &str, body: Bytes) -> Result<Bytes, ApiError> {
    let malformed = |why: &dyn std::fmt::Display| {
        ApiError::MissingParameters(format!("file (the body is not valid multipart/form-data: {why})"))
    };
    let boundary = multer::parse_boundary(content_type).map_err(|e| malformed(&e))?;
    let limits = multer::SizeLimit::new().whole_stream(MAX_UPLOAD_BYTES as u64);
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::with_constraints(stream, boundary, multer::Constraints::new().size_limit(limits));
    let too_large = |e: &multer::Error| {
        matches!(
            e,
            multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. }
        )
    };
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                return field.bytes().await.map_err(|e| {
                    if too_large(&e) {
                        ApiError::PayloadTooLarge(MAX_UPLOAD_BYTES)
                    } else {
                        malformed(&e)
                    }
                });
            }
            // Other parts are drained by the next `next_field`.
            Ok(Some(_)) => continue,
            Ok(None) => return Err(ApiError::MissingParameters("file".into())),
            Err(e) if too_large(&e) => return Err(ApiError::PayloadTooLarge(MAX_UPLOAD_BYTES)),
            Err(e) => return Err(malformed(&e)),
        }
    }
}

/// The JSON text of a request file from its base64 text: standard or URL-safe alphabet, padded or not,
/// ASCII whitespace anywhere ignored. The result is a JSON object (syntax checked here, fields in
/// [`super::payload`]).
pub fn decode(text: &str) -> Result<String, ApiError> {
    let compact: String = text.split_ascii_whitespace().collect();
    if compact.is_empty() {
        return Err(ApiError::OfflinePayload(format!("{NOT_BASE64_JSON} (it is empty)")));
    }
    // Checked before decoding so an oversized upload costs no allocation of its decoded size.
    if compact.len() / 4 * 3 > MAX_DECODED_BYTES + 3 {
        return Err(ApiError::PayloadTooLarge(MAX_DECODED_BYTES));
    }
    // The alphabets differ only in `+/` vs `-_`, so at most one of them can read a given text.
    let alphabet = if compact.contains(['-', '_']) {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let bytes = GeneralPurpose::new(alphabet, config)
        .decode(compact.as_bytes())
        .map_err(|_| ApiError::OfflinePayload(format!("{NOT_BASE64_JSON} (invalid base64)")))?;
    if bytes.len() > MAX_DECODED_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_DECODED_BYTES));
    }
    let mut json = String::from_utf8(bytes)
        .map_err(|_| ApiError::OfflinePayload(format!("{NOT_BASE64_JSON} (the decoded bytes are not UTF-8)")))?;
    // Files written by Windows tools may start with a byte order mark; it is outside any signed span.
    if json.starts_with('\u{feff}') {
        json.drain(..'\u{feff}'.len_utf8());
    }
    let is_object = json.trim_start().starts_with('{');
    if !is_object || serde_json::from_str::<serde::de::IgnoredAny>(&json).is_err() {
        return Err(ApiError::OfflinePayload(format!(
            "{NOT_BASE64_JSON} (the decoded text is not a JSON object)"
        )));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::file::multipart;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    // Chosen so its base64 has `+`, `/` and padding.
    const JSON: &str = r#"{"hardware_id": "h", "note": "ü~ü?"}"#;

    async fn upload(content_type: Option<&str>, body: impl Into<Bytes>) -> Result<String, ApiError> {
        upload_text(content_type, body.into()).await
    }

    fn code<T: std::fmt::Debug>(r: Result<T, ApiError>) -> &'static str {
        r.unwrap_err().code()
    }

    #[tokio::test]
    async fn raw_bodies_of_any_type_are_the_text() {
        let text = STANDARD.encode(JSON);
        for ct in [
            None,
            Some("text/plain"),
            Some("text/plain; charset=utf-8"),
            Some("application/octet-stream"),
            Some("application/x-www-form-urlencoded"),
        ] {
            for body in [
                text.clone(),
                format!("{text}\n"),
                format!("{text}\r\n"),
                format!("  \r\n{text}\r\n\r\n"),
            ] {
                assert_eq!(upload(ct, body).await.unwrap(), text, "{ct:?}");
            }
        }
    }

    #[tokio::test]
    async fn empty_bodies_are_missing_parameters() {
        for body in ["", " ", "\r\n", "\n\t "] {
            let e = upload(Some("text/plain"), body).await.unwrap_err();
            assert_eq!(e.code(), "missing_parameters");
            assert!(e.to_string().contains("request body"), "{e}");
        }
        assert_eq!(
            code(upload(Some("multipart/form-data; boundary=x"), "").await),
            "missing_parameters"
        );
    }

    #[tokio::test]
    async fn multipart_file_part_is_the_text() {
        let text = STANDARD.encode(JSON);
        let (ct, body) = multipart(&format!("{text}\r\n"), "XyZ-boundary");
        assert_eq!(ct, "multipart/form-data; boundary=XyZ-boundary");
        assert_eq!(upload(Some(&ct), body).await.unwrap(), text);
        // Other parts before it, no filename, another content type, upper-case media type.
        let body = "--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"file\"\r\nContent-Type: text/plain\r\n\r\n"
            .to_owned()
            + &text
            + "\n\r\n--b--\r\n";
        assert_eq!(
            upload(Some("Multipart/Form-Data; boundary=\"b\""), body).await.unwrap(),
            text
        );
    }

    #[tokio::test]
    async fn multipart_without_a_file_part_or_with_an_empty_one() {
        let no_file = "--b\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\nabc\r\n--b--\r\n";
        let e = upload(Some("multipart/form-data; boundary=b"), no_file)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().ends_with("file")),
            ("missing_parameters", true),
            "{e}"
        );
        for content in ["", "\r\n", "  "] {
            let (ct, body) = multipart(content, "b");
            assert_eq!(code(upload(Some(&ct), body).await), "missing_content", "{content:?}");
        }
        // Not multipart at all, no boundary, or a truncated form: missing `file`, said to be malformed.
        for (ct, body) in [
            ("multipart/form-data; boundary=b", "just some text"),
            ("multipart/form-data", "--b\r\n"),
            (
                "multipart/form-data; boundary=b",
                "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
            ),
        ] {
            let e = upload(Some(ct), body).await.unwrap_err();
            assert_eq!(e.code(), "missing_parameters", "{body:?}");
            assert!(
                e.to_string().contains("file") && e.to_string().contains("multipart"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_uploads_are_refused() {
        let big = "A".repeat(MAX_UPLOAD_BYTES + 1);
        assert_eq!(code(upload(None, big.clone()).await), "payload_too_large");
        let (ct, body) = multipart(&big, "b");
        assert_eq!(code(upload(Some(&ct), body).await), "payload_too_large");
        assert_eq!(
            code(decode(&"QUFB".repeat(MAX_DECODED_BYTES / 3 + 2))),
            "payload_too_large"
        );
    }

    #[test]
    fn decode_accepts_every_base64_spelling() {
        let standard = STANDARD.encode(JSON);
        assert!(standard.contains(['+', '/']) && standard.ends_with('='), "{standard}");
        let wrapped: String = standard
            .as_bytes()
            .chunks(20)
            .map(|line| std::str::from_utf8(line).unwrap().to_owned() + "\r\n")
            .collect();
        for text in [
            standard.clone(),
            standard.trim_end_matches('=').to_owned(),
            URL_SAFE_NO_PAD.encode(JSON),
            wrapped,
            format!("\n{standard}\n"),
        ] {
            assert_eq!(decode(&text).unwrap(), JSON, "{text:?}");
        }
        assert_eq!(decode(&STANDARD.encode(format!("\u{feff}{JSON}"))).unwrap(), JSON);
    }

    #[test]
    fn decode_refuses_what_is_not_base64_of_an_object() {
        for text in [
            "not base64!".to_owned(),
            "====".to_owned(),
            " ".to_owned(),
            STANDARD.encode("[1, 2]"),
            STANDARD.encode("\"string\""),
            STANDARD.encode("{\"unterminated\": "),
            STANDARD.encode([0xff, 0xfe, 0x7b]),
        ] {
            let e = decode(&text).unwrap_err();
            assert_eq!(e.code(), "authorization_missing_params", "{text:?}");
            assert!(e.to_string().contains("not base64 of a JSON object"), "{e}");
        }
    }
}
