//! Request authentication (SPEC §1.2): the `Date` + `Authorization: algorithm=…,headers=…,signature=…,
//! apikey=…` scheme, HMAC-SHA256 over `"licenseSpring\ndate: " + Date`, a ±15 minute window, and API
//! key records looked up in the store with a short in-process cache.

use crate::error::ApiError;
use crate::ids::{ApiKeyId, ProductCode};
use crate::model::ApiKeyRecord;
use crate::store::Store;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

type HmacSha256 = Hmac<Sha256>;

/// How far the `Date` header may be from the server clock, in either direction.
pub const DATE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The message an API request signs.
pub fn signing_message(date: &str) -> String {
    format!("licenseSpring\ndate: {date}")
}

/// base64(HMAC-SHA256(shared key, message)).
pub fn hmac_base64(shared_key: &str, message: &[u8]) -> String {
    B64.encode(hmac_raw(shared_key, message))
}

fn hmac_raw(shared_key: &str, message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(shared_key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time check of a base64 HMAC against the expected one.
pub fn verify_hmac_base64(shared_key: &str, message: &[u8], signature_b64: &str) -> bool {
    let Ok(given) = B64.decode(signature_b64.trim()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(shared_key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(message);
    mac.verify_slice(&given).is_ok()
}

/// The parameters of an `Authorization` header, names folded to lower case.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthorizationParams {
    pub algorithm: String,
    pub headers: String,
    pub signature: String,
    pub api_key: String,
}

pub fn parse_authorization(value: &str) -> Result<AuthorizationParams, ApiError> {
    let mut params: HashMap<String, String> = HashMap::new();
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, raw) = part.split_once('=').ok_or(ApiError::AuthorizationInvalidHeaders)?;
        let raw = raw.trim();
        let unquoted = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
        params.insert(name.trim().to_ascii_lowercase(), unquoted.to_owned());
    }
    let mut take = |name: &'static str| params.remove(name).ok_or(ApiError::AuthorizationMissingParams(name));
    Ok(AuthorizationParams {
        algorithm: take("algorithm")?,
        headers: take("headers")?,
        signature: take("signature")?,
        api_key: take("apikey")?,
    })
}

/// Accepts an IMF-fixdate (or the other RFC 7231 forms) within [`DATE_WINDOW`] of `now`.
pub fn check_date(date: &str, now: SystemTime) -> Result<(), ApiError> {
    let sent = httpdate::parse_http_date(date.trim()).map_err(|_| ApiError::DateHeaderDiff)?;
    let skew = match now.duration_since(sent) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > DATE_WINDOW {
        return Err(ApiError::DateHeaderDiff);
    }
    Ok(())
}

/// Whether the endpoint changes state (read-only keys may only check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A request whose API key and signature have been verified.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub key: ApiKeyRecord,
}

impl Authenticated {
    /// The product restriction is checked once the body has named the product.
    pub fn ensure_product(&self, product: &ProductCode) -> Result<(), ApiError> {
        if self.key.allows(product) {
            Ok(())
        } else {
            Err(ApiError::ApiKeyProductNotAllowed)
        }
    }
}

/// Verifies requests, caching API key records for `ttl` so a warm function authenticates without a
/// store round trip. A revoked or changed key therefore takes effect within `ttl` (documented).
pub struct Authenticator {
    ttl: Duration,
    negative_ttl: Duration,
    cache: Mutex<HashMap<ApiKeyId, (Instant, Option<ApiKeyRecord>)>>,
}

const CACHE_CAPACITY: usize = 10_000;

impl Authenticator {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(10)),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        store: &dyn Store,
        access: Access,
        now: SystemTime,
    ) -> Result<Authenticated, ApiError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(date), Some(authorization)) = (header("date"), header("authorization")) else {
            return Err(ApiError::MissingHeaders);
        };
        let params = parse_authorization(authorization)?;
        if !params.algorithm.eq_ignore_ascii_case("hmac-sha256") {
            return Err(ApiError::HmacRequired);
        }
        if !params.headers.trim().eq_ignore_ascii_case("date") {
            return Err(ApiError::AuthorizationInvalidHeaders);
        }
        check_date(date, now)?;
        let key_id = ApiKeyId::parse(&params.api_key).map_err(|_| ApiError::InvalidApiKey)?;
        let record = self.lookup(&key_id, store).await?.ok_or(ApiError::InvalidApiKey)?;
        if record.revoked {
            return Err(ApiError::RevokedApiKey);
        }
        if !verify_hmac_base64(&record.shared_key, signing_message(date).as_bytes(), &params.signature) {
            return Err(ApiError::SignatureMismatch);
        }
        if access == Access::Write && record.read_only {
            return Err(ApiError::ReadOnlyApiKey);
        }
        Ok(Authenticated { key: record })
    }

    async fn lookup(&self, id: &ApiKeyId, store: &dyn Store) -> Result<Option<ApiKeyRecord>, ApiError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, record)) = cache.get(id) {
                let ttl = if record.is_some() { self.ttl } else { self.negative_ttl };
                if at.elapsed() < ttl {
                    return Ok(record.clone());
                }
            }
        }
        let record = store.api_key(id).await.map_err(ApiError::internal)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(id.clone(), (Instant::now(), record.clone()));
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_test_vector() {
        let sig = hmac_base64(
            "kw4qSnpSwXzgiv5yxYpZZmFEd9QAeiKTQ6OuyMja",
            signing_message("Tue, 07 Jun 2011 20:51:35 GMT").as_bytes(),
        );
        assert_eq!(sig, "UDysfR6MndUZReo07Y9r+vErn8vSxrnQ5ulit18iJ/Q=");
        assert!(verify_hmac_base64(
            "kw4qSnpSwXzgiv5yxYpZZmFEd9QAeiKTQ6OuyMja",
            signing_message("Tue, 07 Jun 2011 20:51:35 GMT").as_bytes(),
            &sig
        ));
        assert!(!verify_hmac_base64("other", b"x", &sig));
        assert!(!verify_hmac_base64("other", b"x", "not base64!"));
    }

    #[test]
    fn parses_both_apikey_spellings_and_spaces() {
        let p =
            parse_authorization(r#"algorithm="hmac-sha256", headers="date", signature="c2ln", apiKey="k-1""#).unwrap();
        assert_eq!(p.api_key, "k-1");
        assert_eq!(p.signature, "c2ln");
        let missing = parse_authorization(r#"algorithm="hmac-sha256",headers="date",apikey="k""#);
        assert!(matches!(
            missing,
            Err(ApiError::AuthorizationMissingParams("signature"))
        ));
        assert!(matches!(
            parse_authorization("garbage"),
            Err(ApiError::AuthorizationInvalidHeaders)
        ));
    }

    #[test]
    fn date_window_both_directions() {
        let now = httpdate::parse_http_date("Tue, 07 Jun 2011 20:51:35 GMT").unwrap();
        assert!(check_date("Tue, 07 Jun 2011 21:06:35 GMT", now).is_ok());
        assert!(check_date("Tue, 07 Jun 2011 21:06:36 GMT", now).is_err());
        assert!(check_date("Tue, 07 Jun 2011 20:36:34 GMT", now).is_err());
        assert!(check_date("yesterday", now).is_err());
    }
}
