//! Transport-neutral request and response types. The Lambda adapter and the local server both convert
//! to and from these, so every handler and every error rendering exists once.

use crate::error::ApiError;
use crate::signing::Signer;
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// `LicenseSignature` for signed JSON bodies.
    pub signature: Option<String>,
    pub body: Bytes,
    /// The error code, for the request log line.
    pub error_code: Option<&'static str>,
    /// `Cache-Control: no-store` and `Pragma: no-cache`: the body holds a credential (RFC 6749 §5.1).
    pub no_store: bool,
    /// `WWW-Authenticate` of a 401: the scheme the client must authenticate with (RFC 7235 §3.1).
    pub challenge: Option<&'static str>,
    /// `Access-Control-Allow-Origin`: an allowed browser origin (the Management API's CORS).
    pub allow_origin: Option<String>,
    /// The answer to a CORS preflight: with an allowed origin, the methods and headers allowed too.
    pub preflight: bool,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain";
pub const SIGNATURE_HEADER: &str = "LicenseSignature";

/// The headers of an answer that must not be cached ([`ApiResponse::no_store`]).
pub const NO_STORE_HEADERS: [(&str, &str); 2] = [("cache-control", "no-store"), ("pragma", "no-cache")];

impl ApiResponse {
    /// The one place an [`ApiError`] becomes a response. Server faults are logged with their cause.
    pub fn error(err: &ApiError) -> Self {
        if err.status() >= 500 {
            tracing::error!(code = err.code(), error = %error_chain(err), "request failed");
        } else {
            tracing::debug!(code = err.code(), message = %err, "request rejected");
        }
        Self {
            status: err.status(),
            content_type: JSON,
            signature: None,
            body: Bytes::from(err.body()),
            error_code: Some(err.code()),
            no_store: false,
            challenge: err.challenge(),
            allow_origin: None,
            preflight: false,
        }
    }

    /// An error of the OAuth token endpoint: [`Self::error`] with the body of [`ApiError::oauth_body`],
    /// not to be cached.
    pub fn oauth_error(err: &ApiError) -> Self {
        Self {
            body: Bytes::from(err.oauth_body()),
            no_store: true,
            ..Self::error(err)
        }
    }

    /// The headers besides the content type and the signature: the no-store pair, the challenge and
    /// the CORS headers.
    pub fn extra_headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let no_store: &[(&str, &str)] = if self.no_store { &NO_STORE_HEADERS } else { &[] };
        let origin = self.allow_origin.as_deref();
        let cors = origin.map(|o| [("access-control-allow-origin", o), ("vary", "Origin")]);
        let preflight: &[(&str, &str)] = match origin {
            Some(_) if self.preflight => &crate::management::cors::PREFLIGHT_HEADERS,
            _ => &[],
        };
        no_store
            .iter()
            .copied()
            .chain(self.challenge.map(|c| ("www-authenticate", c)))
            .chain(cors.into_iter().flatten())
            .chain(preflight.iter().copied())
    }

    /// This answer, marked not to be cached ([`Self::no_store`]).
    pub fn not_stored(self) -> Self {
        Self { no_store: true, ..self }
    }

    /// A JSON body with `LicenseSignature` over exactly the bytes sent.
    pub fn signed_json<T: Serialize>(value: &T, signer: &Signer) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status: 200,
                content_type: JSON,
                signature: Some(signer.sign(&body)),
                body: Bytes::from(body),
                error_code: None,
                no_store: false,
                challenge: None,
                allow_origin: None,
                preflight: false,
            },
            Err(e) => Self::error(&ApiError::internal(e)),
        }
    }

    /// An already serialised JSON body with `LicenseSignature` over exactly its bytes.
    pub fn signed_body(body: String, signer: &Signer) -> Self {
        Self {
            status: 200,
            content_type: JSON,
            signature: Some(signer.sign(body.as_bytes())),
            body: Bytes::from(body),
            error_code: None,
            no_store: false,
            challenge: None,
            allow_origin: None,
            preflight: false,
        }
    }

    pub fn text(body: &'static str) -> Self {
        Self {
            status: 200,
            content_type: TEXT,
            signature: None,
            body: Bytes::from_static(body.as_bytes()),
            error_code: None,
            no_store: false,
            challenge: None,
            allow_origin: None,
            preflight: false,
        }
    }
}

/// The one structured log line per request, shared by the Lambda adapter and the local server.
pub fn log_request(method: &http::Method, path: &str, resp: &ApiResponse, started: std::time::Instant) {
    tracing::info!(
        method = %method,
        path = %path,
        status = resp.status,
        latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        error_code = resp.error_code,
        "request"
    );
}

/// An error and its sources, `: `-separated, for the log.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    crate::store::ErrorChain(err).to_string()
}
