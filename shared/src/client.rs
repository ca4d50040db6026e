//! A client of the License API, independent of transport: it builds signed `http::Request`s (SPEC §1.2)
//! and verifies responses — the `LicenseSignature` header over the exact body bytes (§5.1) and the
//! `license_signature` inside the license object (§5.2). The integration tests drive the server with it.
//! [`OAuthClient`] sends such requests as a client configured with only `client_id`/`client_secret`
//! (SPEC §7): bearer tokens fetched from the endpoint `oauth_url` names, cached, renewed on demand.

use crate::auth::{hmac_base64, signing_message};
use crate::handlers::Endpoint;
use crate::http::SIGNATURE_HEADER;
use crate::secret::{ExposeSecret, SecretString};
use crate::signing::{license_signature_message, verify};
use bytes::Bytes;
use http::{Method, Request, Response};
use serde_json::Value;
use std::future::Future;
use std::sync::Mutex;
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

/// How often [`OAuthClient::send`] fetches a new token and retries one request that the server answered
/// `oauth_token_expired` or `oauth_token_malformed`: clients may retry those without limit (SPEC §7),
/// ours stops, so a server that refuses every token cannot keep it busy.
pub const MAX_TOKEN_RENEWALS: usize = 2;

/// Where an [`OAuthClient`] puts its credentials in the token request (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretIn {
    /// `client_id` and `client_secret` form fields.
    Body,
    /// `Authorization: Basic`, each value form-urlencoded.
    Basic,
}

/// A client configured with only `client_id` and `client_secret`: it asks `oauth_url` where the token
/// endpoint is, fetches a token there, caches it, and sends requests with `Authorization: Bearer`.
/// Requests are built by a [`LicenseClient`] (their HMAC `Authorization` is replaced) and sent through
/// a transport the caller gives (a function from request to response).
#[derive(Debug)]
pub struct OAuthClient {
    pub client_id: String,
    client_secret: SecretString,
    pub secret_in: SecretIn,
    /// The token endpoint's URL, once `oauth_url` named it.
    token_url: Mutex<Option<String>>,
    /// The cached access token (redacted in `Debug`).
    token: Mutex<Option<SecretString>>,
}

impl OAuthClient {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>, secret_in: SecretIn) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            secret_in,
            token_url: Mutex::new(None),
            token: Mutex::new(None),
        }
    }

    /// Replaces the cached token (tests: an expired or forged one).
    pub fn set_token(&self, token: &str) {
        *lock(&self.token) = Some(SecretString::from(token.to_owned()));
    }

    /// Sends `req` with a bearer token: the cached one, or one fetched first. An answer 401
    /// `oauth_token_expired` / `oauth_token_malformed` fetches a new token and sends again, at most
    /// [`MAX_TOKEN_RENEWALS`] times; then that answer is returned as it is. A failed token request is
    /// [`ClientError::Api`] with the token endpoint's status and `error`.
    pub async fn send<F, Fut>(&self, req: Request<Bytes>, transport: F) -> Result<Response<Bytes>, ClientError>
    where
        F: Fn(Request<Bytes>) -> Fut,
        Fut: Future<Output = Response<Bytes>>,
    {
        let mut renewals = 0;
        loop {
            // The guard is dropped before anything is awaited (a `match` on it would hold it).
            let cached = lock(&self.token).clone();
            let token = match cached {
                Some(token) => token,
                None => self.fetch_token(&transport).await?,
            };
            let resp = transport(with_bearer(&req, token.expose_secret())).await;
            if renewals == MAX_TOKEN_RENEWALS || !is_token_refusal(&resp) {
                return Ok(resp);
            }
            renewals += 1;
            lock(&self.token).take();
        }
    }

    /// A new token from the token endpoint (asking `oauth_url` for it the first time), now cached.
    async fn fetch_token<F, Fut>(&self, transport: &F) -> Result<SecretString, ClientError>
    where
        F: Fn(Request<Bytes>) -> Fut,
        Fut: Future<Output = Response<Bytes>>,
    {
        let known = lock(&self.token_url).clone();
        let url = match known {
            Some(url) => url,
            None => {
                let path = format!("{}?login_type=client_credentials", Endpoint::OauthUrl.path());
                let answer = json_of(&transport(bare(Method::GET, &path, Bytes::new())).await)?;
                let url = answer["url"]
                    .as_str()
                    .ok_or_else(|| ClientError::Malformed(format!("oauth_url answered no `url`: {answer}")))?
                    .to_owned();
                *lock(&self.token_url) = Some(url.clone());
                url
            }
        };
        let answer = json_of(&transport(self.token_request(&url)).await)?;
        let token = answer["access_token"]
            .as_str()
            .ok_or_else(|| ClientError::Malformed("the token answer has no `access_token`".into()))?;
        let token = SecretString::from(token.to_owned());
        *lock(&self.token) = Some(token.clone());
        Ok(token)
    }

    /// `POST url` with `grant_type=client_credentials` and the credentials where [`Self::secret_in`] says.
    fn token_request(&self, url: &str) -> Request<Bytes> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        let secret = self.client_secret.expose_secret();
        if self.secret_in == SecretIn::Body {
            form.append_pair("client_id", &self.client_id);
            form.append_pair("client_secret", secret);
        }
        let mut req = bare(Method::POST, url, Bytes::from(form.finish()));
        let headers = req.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        if self.secret_in == SecretIn::Basic {
            use base64::Engine;
            let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", encode(&self.client_id), encode(secret));
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(http::header::AUTHORIZATION, value);
            }
        }
        req
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A request without credentials.
fn bare(method: Method, uri: &str, body: Bytes) -> Request<Bytes> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri.parse().unwrap_or_default();
    req
}

/// A copy of `req` whose `Authorization` is `Bearer <token>` (the `Date` stays: SPEC §1.2).
fn with_bearer(req: &Request<Bytes>, token: &str) -> Request<Bytes> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    if let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
        copy.headers_mut().insert(http::header::AUTHORIZATION, value);
    }
    copy
}

/// Whether the server refused the token itself: the codes clients answer with a new token (SPEC §7).
fn is_token_refusal(resp: &Response<Bytes>) -> bool {
    resp.status() == http::StatusCode::UNAUTHORIZED
        && serde_json::from_slice::<Value>(resp.body()).is_ok_and(|body| {
            matches!(
                body["code"].as_str(),
                Some("oauth_token_expired" | "oauth_token_malformed")
            )
        })
}

/// A 200's JSON body, or the error it answers: `status` and `error` (the token endpoint's RFC 6749
/// field, which OAuth clients read), else `code`.
fn json_of(resp: &Response<Bytes>) -> Result<Value, ClientError> {
    let body: Value =
        serde_json::from_slice(resp.body()).map_err(|e| ClientError::Malformed(format!("not JSON: {e}")))?;
    if resp.status().is_success() {
        return Ok(body);
    }
    let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    Err(ClientError::Api {
        status: resp.status().as_u16(),
        code: body["error"].as_str().map_or_else(|| text("code"), str::to_owned),
        message: text("message"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer(status: u16, body: Value) -> Response<Bytes> {
        let mut resp = Response::new(Bytes::from(body.to_string()));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
        resp
    }

    /// A server that names its token endpoint, issues token `t<n>` on the n-th token request, and
    /// answers every other request `refusal` (or 200 when `None`), counting what it is asked.
    async fn serve(
        req: Request<Bytes>,
        tokens: &AtomicUsize,
        calls: &AtomicUsize,
        refusal: Option<&str>,
    ) -> Response<Bytes> {
        match req.uri().path() {
            "/api/v4/oauth_url" => answer(200, serde_json::json!({"url": "https://h/api/v4/oauth_token"})),
            "/api/v4/oauth_token" => {
                let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                answer(
                    200,
                    serde_json::json!({"access_token": format!("t{n}"), "expires_in": 480, "token_type": "Bearer"}),
                )
            }
            _ => {
                calls.fetch_add(1, Ordering::SeqCst);
                let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
                match refusal {
                    Some(code) => answer(401, serde_json::json!({"status": 401, "code": code, "message": auth})),
                    None => answer(200, serde_json::json!({"auth": auth})),
                }
            }
        }
    }

    #[tokio::test]
    async fn a_token_is_fetched_once_then_renewed_only_when_refused_and_at_most_twice() {
        let (tokens, calls) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let client = OAuthClient::new("ci", "secret", SecretIn::Basic);
        let req = || bare(Method::GET, "/api/v4/check_license", Bytes::new());
        for _ in 0..3 {
            let resp = client.send(req(), |r| serve(r, &tokens, &calls, None)).await.unwrap();
            assert_eq!(json_of(&resp).unwrap()["auth"], "Bearer t1");
        }
        assert_eq!(tokens.load(Ordering::SeqCst), 1, "cached");
        // Refused without end: one try and two renewals, then the refusal is the answer.
        let resp = client
            .send(req(), |r| serve(r, &tokens, &calls, Some("oauth_token_expired")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!((tokens.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)), (3, 6));
        // Another 401 is not about the token: no renewal.
        client
            .send(req(), |r| serve(r, &tokens, &calls, Some("invalid_api_key")))
            .await
            .unwrap();
        assert_eq!((tokens.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)), (3, 7));
    }

    #[tokio::test]
    async fn a_failed_token_request_is_the_endpoints_error() {
        let client = OAuthClient::new("ci", "bad", SecretIn::Body);
        let err = client
            .send(bare(Method::GET, "/x", Bytes::new()), |r| async move {
                if r.uri().path() == "/api/v4/oauth_url" {
                    return answer(200, serde_json::json!({"url": "/api/v4/oauth_token"}));
                }
                assert_eq!(r.headers()["content-type"], "application/x-www-form-urlencoded");
                assert_eq!(r.body(), "grant_type=client_credentials&client_id=ci&client_secret=bad");
                answer(401, serde_json::json!({"status": 401, "code": "invalid_client", "message": "m", "error": "invalid_client"}))
            })
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ClientError::Api {
                status: 401,
                code: "invalid_client".into(),
                message: "m".into()
            }
        );
    }
}
