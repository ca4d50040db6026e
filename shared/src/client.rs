//! A client of the License API, independent of transport: it builds signed `http::Request`s (SPEC §1.2)
//! and verifies responses — the `LicenseSignature` header over the exact body bytes (§5.1) and the
//! `license_signature` inside the license object (§5.2). The integration tests drive the server with it.

use crate::auth::{hmac_base64, signing_message};
use crate::handlers::Endpoint;
use crate::http::SIGNATURE_HEADER;
use crate::secret::{ExposeSecret, SecretString};
use crate::signing::{license_signature_message, verify};
use bytes::Bytes;
use http::{Method, Request, Response};
use serde_json::Value;
use std::time::SystemTime;

#[derive(Clone, Debug)]
pub struct LicenseClient {
    pub api_key: String,
    /// Redacted in `Debug`: test failures print clients.
    pub shared_key: SecretString,
    /// The server's public key (SPKI PEM) that responses must verify against.
    pub public_key_pem: String,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("{status} {code}: {message}")]
    Api { status: u16, code: String, message: String },
    #[error("the LicenseSignature header is missing or does not verify")]
    BadSignature,
    #[error("license_signature does not verify")]
    BadLicenseSignature,
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl LicenseClient {
    pub fn new(api_key: impl Into<String>, shared_key: impl Into<String>, public_key_pem: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            shared_key: SecretString::from(shared_key.into()),
            public_key_pem: public_key_pem.into(),
        }
    }

    /// The `Authorization` header value for a given `Date` value.
    pub fn authorization(&self, date: &str) -> String {
        let signature = hmac_base64(self.shared_key.expose_secret(), signing_message(date).as_bytes());
        format!(
            r#"algorithm="hmac-sha256",headers="date",signature="{signature}",apikey="{}""#,
            self.api_key
        )
    }

    /// A signed request dated now. `path` is e.g. `/api/v4/activate_license`.
    pub fn request(&self, method: Method, path_and_query: &str, body: Option<Vec<u8>>) -> Request<Bytes> {
        self.request_dated(
            method,
            path_and_query,
            body,
            &httpdate::fmt_http_date(SystemTime::now()),
        )
    }

    pub fn request_dated(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        date: &str,
    ) -> Request<Bytes> {
        let mut b = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("date", date)
            .header("authorization", self.authorization(date));
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        b.body(Bytes::from(body.unwrap_or_default()))
            .expect("method, uri and headers are valid")
    }

    /// A signed request to `endpoint` with license parameters where its method carries them: the query
    /// string for GET, a JSON body otherwise. `params` is a JSON object.
    pub fn call(&self, endpoint: Endpoint, params: &Value) -> Request<Bytes> {
        match endpoint.method() {
            Method::GET => self.get(endpoint.path(), params),
            method => self.request(method, endpoint.path(), Some(params.to_string().into_bytes())),
        }
    }

    /// A signed POST of `params` as a JSON body to `path`.
    pub fn post_json(&self, path: &str, params: &Value) -> Request<Bytes> {
        self.request(Method::POST, path, Some(params.to_string().into_bytes()))
    }

    /// A signed GET of `path` with `params` (a JSON object) as query parameters.
    pub fn get(&self, path: &str, params: &Value) -> Request<Bytes> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(map) = params.as_object() {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                query.append_pair(k, &text);
            }
        }
        self.request(Method::GET, &format!("{path}?{}", query.finish()), None)
    }

    pub fn activate(&self, params: &Value) -> Request<Bytes> {
        self.call(Endpoint::ActivateLicense, params)
    }

    pub fn deactivate(&self, params: &Value) -> Request<Bytes> {
        self.call(Endpoint::DeactivateLicense, params)
    }

    /// `params` is a JSON object whose values become query parameters.
    pub fn check(&self, params: &Value) -> Request<Bytes> {
        self.call(Endpoint::CheckLicense, params)
    }

    /// A signed upload of an offline request file (SPEC §6.1) to `path`, e.g. `/api/v4/activate_offline`:
    /// the base64 text as a `text/plain` body, or a multipart body with its content type
    /// (`offline::file::multipart`).
    pub fn upload(&self, path: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Bytes> {
        let mut req = self.request(Method::POST, path, None);
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_str(content_type).expect("a valid content type"),
        );
        *req.body_mut() = body.into();
        req
    }

    /// Verifies an offline license file (SPEC §6.3) the way a client loading it does: the response
    /// signature, `license_signature` (v1), `license_signature_v2` over the object without both
    /// signatures, and `offline_signature` (HMAC with the shared key). Returns it parsed.
    pub fn verify_offline_license(
        &self,
        resp: &Response<Bytes>,
        hardware_id: &str,
        ident: &str,
    ) -> Result<Value, ClientError> {
        let object = self.verify_license(resp, hardware_id, ident)?;
        let body = std::str::from_utf8(resp.body()).map_err(|e| ClientError::Malformed(e.to_string()))?;
        let field = |name: &str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| ClientError::Malformed(format!("`{name}` missing")))
        };
        // Deleting both signatures from the parsed object and serialising it again (what a
        // JavaScript client does) leaves the body up to them, closed.
        let tail = body
            .rfind(",\"license_signature\":")
            .ok_or_else(|| ClientError::Malformed("license_signature is not where SPEC §6.3 puts it".into()))?;
        let after: Value = serde_json::from_str(&format!("{{{}", &body[tail + 1..]))
            .map_err(|e| ClientError::Malformed(format!("signature fields: {e}")))?;
        if after.as_object().map(|m| m.len()) != Some(2) || after.get("license_signature_v2").is_none() {
            return Err(ClientError::Malformed(
                "only the two signatures may follow license_signature".into(),
            ));
        }
        let signed = format!("{}}}", &body[..tail]);
        if !verify(&self.public_key_pem, signed.as_bytes(), field("license_signature_v2")?) {
            return Err(ClientError::BadLicenseSignature);
        }
        let message = crate::offline::payload::v1_message(field("date")?, ident, hardware_id, &self.api_key);
        if !crate::auth::verify_hmac_base64(
            self.shared_key.expose_secret(),
            message.as_bytes(),
            field("offline_signature")?,
        ) {
            return Err(ClientError::BadSignature);
        }
        field("request_id")?;
        Ok(object)
    }

    /// Verifies a license-object response for `hardware_id` and `ident` (license key or username) and
    /// returns it parsed. Error responses become [`ClientError::Api`].
    pub fn verify_license(&self, resp: &Response<Bytes>, hardware_id: &str, ident: &str) -> Result<Value, ClientError> {
        let body = self.verify_body(resp)?;
        let object: Value = serde_json::from_slice(&body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.verify_license_signature(&object, hardware_id, ident)?;
        Ok(object)
    }

    /// `license_signature` (SPEC §5.2) of one license object.
    fn verify_license_signature(&self, object: &Value, hardware_id: &str, ident: &str) -> Result<(), ClientError> {
        let validity = object.get("validity_period").and_then(Value::as_str).unwrap_or("");
        let sig = object
            .get("license_signature")
            .and_then(Value::as_str)
            .ok_or(ClientError::BadLicenseSignature)?;
        let message = license_signature_message(hardware_id, ident, validity);
        if !verify(&self.public_key_pem, message.as_bytes(), sig) {
            return Err(ClientError::BadLicenseSignature);
        }
        Ok(())
    }

    /// Verifies a bundle answer (SPEC §9): the `LicenseSignature` header over the array and each
    /// element's `license_signature` for `hardware_id` and `ident`. Returns the elements.
    pub fn verify_licenses(
        &self,
        resp: &Response<Bytes>,
        hardware_id: &str,
        ident: &str,
    ) -> Result<Vec<Value>, ClientError> {
        let body = self.verify_body(resp)?;
        let items: Vec<Value> = serde_json::from_slice(&body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        for item in &items {
            self.verify_license_signature(item, hardware_id, ident)?;
        }
        Ok(items)
    }

    /// Verifies an offline bundle file: the `LicenseSignature` header and `bundle_signature_v2`, which
    /// signs the `licenses` array exactly as it appears in the body. Returns it parsed.
    pub fn verify_offline_bundle(&self, resp: &Response<Bytes>) -> Result<Value, ClientError> {
        let body = self.verify_body(resp)?;
        let text = std::str::from_utf8(&body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        let answer: Value = serde_json::from_str(text).map_err(|e| ClientError::Malformed(e.to_string()))?;
        let array = text
            .strip_prefix("{\"licenses\":")
            .and_then(|rest| Some(&rest[..rest.rfind(",\"bundle_signature_v2\"")?]))
            .ok_or_else(|| {
                ClientError::Malformed("not an offline bundle file (licenses, bundle_signature_v2)".into())
            })?;
        let sig = answer["bundle_signature_v2"].as_str().unwrap_or_default();
        if !verify(&self.public_key_pem, array.as_bytes(), sig) {
            return Err(ClientError::BadLicenseSignature);
        }
        Ok(answer)
    }

    /// Checks the status and, for JSON success bodies, the `LicenseSignature` header; returns the body.
    pub fn verify_body(&self, resp: &Response<Bytes>) -> Result<Bytes, ClientError> {
        let body = resp.body().clone();
        if !resp.status().is_success() {
            let err: Value =
                serde_json::from_slice(&body).map_err(|e| ClientError::Malformed(format!("error body: {e}")))?;
            return Err(ClientError::Api {
                status: err["status"].as_u64().unwrap_or(0) as u16,
                code: err["code"].as_str().unwrap_or_default().to_owned(),
                message: err["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        let is_json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if is_json {
            let sig = resp
                .headers()
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .ok_or(ClientError::BadSignature)?;
            if !verify(&self.public_key_pem, &body, sig) {
                return Err(ClientError::BadSignature);
            }
        }
        Ok(body)
    }
}
