//! Request authentication (SPEC §1.2): the `Date` + `Authorization: algorithm=…,headers=…,signature=…,
//! apikey=…` scheme, HMAC-SHA256 over `"licenseSpring\ndate: " + Date`, a ±15 minute window, and API
//! key records looked up in the store through a short in-process cache (`cache`).
//!
//! An embedding server may scope a request in an [`Admission`] (see [`admitted`]): it is asked once the
//! request's signature verified, and before each password check, whether the request may go on. The
//! Lambda functions set none.

use crate::cache::RecordCache;
use crate::error::ApiError;
use crate::ids::{ApiKeyId, CompanyId, ManagementKeyId, OAuthClientId, ProductCode, Username};
use crate::model::{ApiKeyRecord, OAuthClientRecord};
use crate::store::{Store, StoreError};
use crate::token::{TokenError, TokenKeys};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// Per-request limits an embedding server applies once it knows who is asking. Refusals are
/// [`ApiError::TooManyRequests`].
pub trait Admission: Send + Sync {
    /// A request whose credentials verified: signed with an API key's shared key, or carrying a valid
    /// bearer token of an OAuth client. Charge that caller's budget. Only verified requests reach this,
    /// so an unsigned flood naming a vendor's (public) API key or client id cannot spend its budget.
    fn verified(&self, caller: &Via) -> Result<(), ApiError>;
    /// A password or client secret is about to be checked for `claimant` (known or not): bound
    /// guessing per user or client.
    fn password_check(&self, claimant: Claimant<'_>) -> Result<(), ApiError>;
}

tokio::task_local! {
    static ADMISSION: Arc<dyn Admission>;
}

/// Runs a request's future under `admission`.
pub async fn admitted<F: Future>(admission: Arc<dyn Admission>, request: F) -> F::Output {
    ADMISSION.scope(admission, request).await
}

/// Asks the current request's [`Admission`], if any.
pub(crate) fn admit(ask: impl FnOnce(&dyn Admission) -> Result<(), ApiError>) -> Result<(), ApiError> {
    ADMISSION.try_with(|a| ask(a.as_ref())).unwrap_or(Ok(()))
}

/// Whose secret a request is about to check: a license user's password or an OAuth client's secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimant<'a> {
    User(&'a Username),
    Client(&'a OAuthClientId),
}

/// Whether the endpoint changes state (read-only keys may only check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Who is calling, once a request's credentials verified: the company whose licenses it acts on, the
/// products it may name, whether it may change state, and how it proved who it is. Handlers and rules
/// read only this, so another way to authenticate (an OAuth client, a management key, the CLI) is
/// another [`Via`], not another code path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub company: CompanyId,
    /// The products it may name; empty: every product of its company.
    pub products: Vec<ProductCode>,
    pub read_only: bool,
    pub via: Via,
}

/// How a [`Principal`] authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A License API key and its HMAC request signature (SPEC §1.2).
    ApiKey(ApiKeyId),
    /// An OAuth client's bearer token (SPEC §7, docs/oauth.md).
    OAuthClient(OAuthClientId),
    /// A management key (the Management API, docs/management.md).
    ManagementKey(ManagementKeyId),
    /// The command line, run by this OS user with the store's own credentials.
    Cli(String),
}

impl Principal {
    /// The caller an API key's verified signature names.
    pub fn api_key(key: &ApiKeyRecord) -> Self {
        Self {
            company: key.company.clone(),
            products: key.products.clone(),
            read_only: key.read_only,
            via: Via::ApiKey(key.id.clone()),
        }
    }

    /// The caller a verified bearer token names, restricted as its client record says.
    pub fn oauth_client(client: &OAuthClientRecord) -> Self {
        Self {
            company: client.company.clone(),
            products: client.products.clone(),
            read_only: client.read_only,
            via: Via::OAuthClient(client.id.clone()),
        }
    }

    /// The command line acting on `company` with every right: whoever can open the store can write it.
    pub fn cli(company: CompanyId) -> Self {
        Self {
            company,
            products: Vec::new(),
            read_only: false,
            via: Via::Cli(crate::audit::Actor::os_user()),
        }
    }

    pub fn allows(&self, product: &ProductCode) -> bool {
        self.products.is_empty() || self.products.contains(product)
    }

    /// The product restriction is checked once the body has named the product.
    pub fn ensure_product(&self, product: &ProductCode) -> Result<(), ApiError> {
        if self.allows(product) {
            Ok(())
        } else {
            Err(ApiError::ApiKeyProductNotAllowed)
        }
    }

    /// Read-only callers may only check.
    pub fn ensure_access(&self, access: Access) -> Result<(), ApiError> {
        if access == Access::Write && self.read_only {
            return Err(ApiError::ReadOnlyApiKey);
        }
        Ok(())
    }
}

/// Verifies requests, caching API key and OAuth client records for `ttl` so a warm function
/// authenticates without a store round trip. A revoked or changed key or client therefore takes effect
/// within `ttl` (documented).
pub struct Authenticator {
    cache: RecordCache<ApiKeyId, ApiKeyRecord>,
    /// OAuth clients named by verified bearer tokens (docs/oauth.md).
    clients: RecordCache<OAuthClientId, OAuthClientRecord>,
    /// Verify bearer tokens; `None`: the deployment issues none, a bearer header is not understood.
    token_keys: Option<Arc<TokenKeys>>,
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Authenticator {
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: RecordCache::new(ttl),
            clients: RecordCache::new(ttl),
            token_keys: None,
        }
    }

    /// Accepts bearer tokens verified with `keys` (`AppState::with_token_keys`).
    pub fn with_token_keys(self, token_keys: Option<Arc<TokenKeys>>) -> Self {
        Self { token_keys, ..self }
    }

    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        store: &dyn Store,
        access: Access,
        now: SystemTime,
    ) -> Result<Principal, ApiError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let (Some(keys), Some(token)) = (&self.token_keys, header("authorization").and_then(bearer_token)) {
            return self.bearer(keys, token, store, access, now).await;
        }
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
        let principal = Principal::api_key(&record);
        admit(|a| a.verified(&principal.via))?;
        principal.ensure_access(access)?;
        Ok(principal)
    }

    /// A bearer token: verified without the store (`token::TokenKeys::verify`); the client it names is
    /// then read through the cache, so a revoked or removed client stops within the cache's TTL, like
    /// an API key. Only a token that is expired or not ours answers `oauth_token_*` (clients retry those
    /// without limit); a revoked client answers `revoked_api_key`, a removed one `invalid_api_key`.
    async fn bearer(
        &self,
        keys: &TokenKeys,
        token: &str,
        store: &dyn Store,
        access: Access,
        now: SystemTime,
    ) -> Result<Principal, ApiError> {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let claims = keys.verify(token, now).map_err(|e| match e {
            TokenError::Expired => ApiError::OAuthTokenExpired,
            TokenError::Malformed => ApiError::OAuthTokenMalformed,
        })?;
        let id = OAuthClientId::parse(&claims.sub).map_err(|_| ApiError::OAuthTokenMalformed)?;
        let record = self
            .client(&id, store)
            .await?
            .filter(|c| c.company.as_str() == claims.company)
            .ok_or(ApiError::InvalidApiKey)?;
        if record.revoked {
            return Err(ApiError::RevokedApiKey);
        }
        let principal = Principal::oauth_client(&record);
        admit(|a| a.verified(&principal.via))?;
        principal.ensure_access(access)?;
        Ok(principal)
    }

    /// The record of the API key `id` names (through the cache), for checks beyond the request's own
    /// header: an offline request file names the key that signed it. `None` for an id that is not a key.
    pub async fn key_record(&self, id: &str, store: &dyn Store) -> Result<Option<ApiKeyRecord>, ApiError> {
        match ApiKeyId::parse(id) {
            Ok(id) => self.lookup(&id, store).await,
            Err(_) => Ok(None),
        }
    }

    /// The record of the OAuth client `id` names (through the same cache as bearer tokens): an offline
    /// request file in OAuth mode names the client whose secret signed it. `None` for an id that is not
    /// a client.
    pub async fn client_record(&self, id: &str, store: &dyn Store) -> Result<Option<OAuthClientRecord>, ApiError> {
        match OAuthClientId::parse(id) {
            Ok(id) => self.client(&id, store).await,
            Err(_) => Ok(None),
        }
    }

    async fn lookup(&self, id: &ApiKeyId, store: &dyn Store) -> Result<Option<ApiKeyRecord>, ApiError> {
        self.lookup_with(id, || store.api_key(id)).await
    }

    /// The cache in front of `fetch`, the store read (a parameter so tests can count reads).
    async fn lookup_with<F, Fut>(&self, id: &ApiKeyId, fetch: F) -> Result<Option<ApiKeyRecord>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<ApiKeyRecord>, StoreError>>,
    {
        self.cache.get_or_fetch(id, fetch).await.map_err(ApiError::store)
    }

    async fn client(&self, id: &OAuthClientId, store: &dyn Store) -> Result<Option<OAuthClientRecord>, ApiError> {
        self.clients
            .get_or_fetch(id, || store.oauth_client(id))
            .await
            .map_err(ApiError::store)
    }

    /// Forgets the cached record of an API key this process changed (`management::api_keys`).
    pub fn forget_api_key(&self, id: &ApiKeyId) {
        self.cache.forget(id);
    }

    /// Forgets the cached record of an OAuth client this process changed (`management::oauth_clients`).
    pub fn forget_client(&self, id: &OAuthClientId) {
        self.clients.forget(id);
    }

    /// How long a cached record is served: the bound on how soon a change to a key takes effect.
    pub fn ttl(&self) -> Duration {
        self.cache.ttl()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{KEY_CACHE_CAPACITY, UNKNOWN_KEY_CACHE_CAPACITY};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn only_the_bearer_scheme_yields_a_token() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("  bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER x"), Some("x"));
        assert_eq!(bearer_token("Basic Y2k6cw=="), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(
            bearer_token(r#"algorithm="hmac-sha256",headers="date",signature="c2ln",apikey="k""#),
            None
        );
    }

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

    fn key(id: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: ApiKeyId::parse(id).unwrap(),
            company: CompanyId::parse("c").unwrap(),
            shared_key: "s".into(),
            products: Vec::new(),
            read_only: false,
            revoked: false,
            source: None,
        }
    }

    /// Looks `id` up through the cache, answering misses from `known` and counting store reads.
    async fn lookup(auth: &Authenticator, id: &str, known: &[&str], reads: &AtomicUsize) -> Option<ApiKeyRecord> {
        let id = ApiKeyId::parse(id).unwrap();
        let record = known.contains(&id.as_str()).then(|| key(id.as_str()));
        auth.lookup_with(&id, || async {
            reads.fetch_add(1, Ordering::Relaxed);
            Ok(record)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_flood_of_unknown_keys_does_not_evict_a_real_one() {
        let auth = Authenticator::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        assert!(lookup(&auth, "real", &["real"], &reads).await.is_some());
        for i in 0..KEY_CACHE_CAPACITY + UNKNOWN_KEY_CACHE_CAPACITY + 1 {
            assert!(lookup(&auth, &format!("random-{i}"), &["real"], &reads).await.is_none());
        }
        let before = reads.load(Ordering::Relaxed);
        assert!(lookup(&auth, "real", &["real"], &reads).await.is_some());
        assert_eq!(reads.load(Ordering::Relaxed), before, "the real key was still cached");
        // A recent unknown id is still answered from the cache; the oldest ones were evicted.
        lookup(
            &auth,
            &format!("random-{}", KEY_CACHE_CAPACITY + UNKNOWN_KEY_CACHE_CAPACITY),
            &[],
            &reads,
        )
        .await;
        assert_eq!(reads.load(Ordering::Relaxed), before);
        lookup(&auth, "random-0", &[], &reads).await;
        assert_eq!(reads.load(Ordering::Relaxed), before + 1);
    }

    #[tokio::test]
    async fn known_keys_evict_the_least_recently_used() {
        let auth = Authenticator::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        let ids: Vec<String> = (0..=KEY_CACHE_CAPACITY).map(|i| format!("k{i}")).collect();
        let known: Vec<&str> = ids.iter().map(String::as_str).collect();
        for id in &known[..KEY_CACHE_CAPACITY] {
            lookup(&auth, id, &known, &reads).await;
        }
        lookup(&auth, "k0", &known, &reads).await; // k0 becomes the most recently used
        lookup(&auth, &ids[KEY_CACHE_CAPACITY], &known, &reads).await; // one over capacity: k1 goes
        let before = reads.load(Ordering::Relaxed);
        assert_eq!(before, KEY_CACHE_CAPACITY + 1);
        lookup(&auth, "k0", &known, &reads).await;
        assert_eq!(reads.load(Ordering::Relaxed), before, "k0 stayed cached");
        lookup(&auth, "k1", &known, &reads).await;
        assert_eq!(reads.load(Ordering::Relaxed), before + 1, "k1 was evicted");
    }

    #[tokio::test]
    async fn entries_expire_and_a_key_moves_between_known_and_unknown() {
        let auth = Authenticator::new(Duration::ZERO);
        let reads = AtomicUsize::new(0);
        assert!(lookup(&auth, "k", &[], &reads).await.is_none());
        assert!(
            lookup(&auth, "k", &["k"], &reads).await.is_some(),
            "a new key is seen once the TTL passes"
        );
        assert!(lookup(&auth, "k", &[], &reads).await.is_none(), "and a deleted one");
        assert_eq!(reads.load(Ordering::Relaxed), 3);
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
