//! Single sign-on against a customer account's OpenID Connect provider (SPEC §2.1, §7). The provider's
//! discovery document is fetched once and cached per issuer, its signing keys on the first token (and
//! again on an unknown `kid` — key rotation — at most once per [`KEY_REFETCH_INTERVAL`]); an `id_token` is verified with them
//! — asymmetric algorithms only, issuer, audience, expiry, not-before — and its email claim names the
//! license user. A `code` is first exchanged at the provider's token endpoint with the account's client
//! secret. Every grant the provider does not vouch for answers like an unknown user
//! (`license_not_found`), so a caller learns nothing more from a forged token than from a wrong password.
//!
//! It also makes the provider's sign-in URL for `GET /sso_url` (the discovery document's
//! `authorization_endpoint`), with a `nonce` minted by [`super::nonce`], and refuses an ID token that
//! carries a nonce of that format unless it was minted here, for the same account, and has not expired.

use super::nonce::{self, NonceKey};
use super::SsoResolver;
use crate::auth::Principal;
use crate::cache::RecordCache;
use crate::error::ApiError;
use crate::ids::{CompanyId, CustomerAccountCode, Username};
use crate::model::CustomerAccountRecord;
use crate::request::{SsoGrant, SsoResponseType, SsoToken, SsoUrlRequest};
use crate::sealed::SealingKey;
use crate::store::Store;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Largest discovery document, JWKS or token answer read from a provider.
pub const MAX_PROVIDER_RESPONSE: usize = 256 * 1024;
/// How long one request to a provider may take.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// An unknown `kid` refetches the provider's keys at most this often, so forged `kid`s cannot make the
/// server hammer the provider.
pub const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp` and `nbf`.
pub const CLOCK_LEEWAY_SECS: u64 = 60;

/// The signature algorithms accepted: asymmetric only, never `none` nor HMAC (an HMAC "signed" with the
/// provider's public key would otherwise verify).
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A customer account's identity provider, as the vendor registered it.
#[derive(Clone, Debug)]
pub struct ProviderAccount {
    pub company: CompanyId,
    pub code: CustomerAccountCode,
    /// The provider's issuer URL, exactly as its tokens carry it in `iss`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// The redirect URIs a code may have been issued for; the first is the default.
    pub redirect_uris: Vec<String>,
    /// The claim that carries the user's email (`email` for most providers).
    pub email_claim: String,
}

impl ProviderAccount {
    /// The redirect URI a login or a code exchange uses: the requested one if the account registered
    /// it, else the account's first.
    pub fn redirect_uri<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str, ApiError> {
        match requested {
            Some(uri) if self.redirect_uris.iter().any(|r| r == uri) => Ok(uri),
            Some(_) => Err(ApiError::Validation(
                "`redirect_uri` is not registered for this customer account".into(),
            )),
            None => self.redirect_uris.first().map(String::as_str).ok_or_else(|| {
                ApiError::Validation(
                    "the customer account registers no redirect URI: add one to its `redirect_uris` in the catalog"
                        .into(),
                )
            }),
        }
    }
}

/// Where customer accounts come from (the catalog, or a fixed list).
#[async_trait]
pub trait CustomerAccounts: Send + Sync {
    async fn account(
        &self,
        company: &CompanyId,
        code: &CustomerAccountCode,
    ) -> Result<Option<ProviderAccount>, ApiError>;
}

/// A fixed list of customer accounts.
pub struct FixedAccounts(pub Vec<ProviderAccount>);

#[async_trait]
impl CustomerAccounts for FixedAccounts {
    async fn account(
        &self,
        company: &CompanyId,
        code: &CustomerAccountCode,
    ) -> Result<Option<ProviderAccount>, ApiError> {
        Ok(self
            .0
            .iter()
            .find(|a| a.company == *company && a.code == *code)
            .cloned())
    }
}

/// Customer accounts as the store keeps them (`Item::CustomerAccount`), their client secrets opened with
/// the deployment's sealing key. Records are cached like API keys (`cache`), so a warm function resolves
/// a grant without reading its account, and a changed account takes effect within the same TTL.
pub struct StoredAccounts {
    store: Arc<dyn Store>,
    sealing_key: Arc<SealingKey>,
    cache: RecordCache<(CompanyId, CustomerAccountCode), CustomerAccountRecord>,
}

impl StoredAccounts {
    pub fn new(store: Arc<dyn Store>, sealing_key: Arc<SealingKey>, ttl: Duration) -> Self {
        Self {
            store,
            sealing_key,
            cache: RecordCache::new(ttl),
        }
    }
}

#[async_trait]
impl CustomerAccounts for StoredAccounts {
    async fn account(
        &self,
        company: &CompanyId,
        code: &CustomerAccountCode,
    ) -> Result<Option<ProviderAccount>, ApiError> {
        let id = (company.clone(), code.clone());
        let fetch = || self.store.customer_account(company, code);
        let Some(stored) = self.cache.get_or_fetch(&id, fetch).await.map_err(ApiError::store)? else {
            return Ok(None);
        };
        let context = CustomerAccountRecord::seal_context(company, code);
        let client_secret = self
            .sealing_key
            .open(&stored.sealed_secret, &context)
            .map_err(|e| ApiError::internal(format!("customer account {code}: opening the client secret: {e}")))?;
        Ok(Some(ProviderAccount {
            company: stored.company,
            code: stored.code,
            issuer: stored.issuer,
            client_id: stored.client_id,
            client_secret,
            redirect_uris: stored.redirect_uris,
            email_claim: stored.email_claim,
        }))
    }
}

/// Whether providers may be reached over plain HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderTransport {
    /// The default: an `http://` issuer is refused.
    HttpsOnly,
    /// Explicit opt-in for a provider on loopback in tests.
    AllowPlainHttp,
}

type ProviderClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The OpenID Connect [`SsoResolver`].
pub struct OidcResolver {
    accounts: Arc<dyn CustomerAccounts>,
    transport: ProviderTransport,
    key_refetch_interval: Duration,
    /// Mints the nonces of sign-in URLs and recognises them in ID tokens; `None`: no sign-in URLs, and
    /// an ID token with a nonce of our format is refused (it cannot be checked).
    nonce_key: Option<NonceKey>,
    /// Built on the first request to a provider, not with the resolver: loading the system's root
    /// certificates costs milliseconds, which would be every function's cold start in a deployment with
    /// SSO configured, though few requests ever reach a provider.
    http: OnceLock<ProviderClient>,
    providers: Mutex<HashMap<String, Arc<Provider>>>,
}

/// What the resolver knows of one issuer.
struct Provider {
    /// Where a login starts (`sso_url`); optional, so a provider used only to verify grants needs none.
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    jwks_uri: String,
    /// The keys and when they were fetched: not at discovery but on the first token, so `sso_url`,
    /// which verifies nothing, asks the provider one question, not two.
    keys: Mutex<(JwkSet, Option<Instant>)>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    jwks_uri: String,
}

impl OidcResolver {
    pub fn new(accounts: Arc<dyn CustomerAccounts>, transport: ProviderTransport) -> Self {
        Self {
            accounts,
            transport,
            key_refetch_interval: KEY_REFETCH_INTERVAL,
            nonce_key: None,
            http: OnceLock::new(),
            providers: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTPS client for providers, trusting the system's root certificates. Two first requests at
    /// once may both build one; the first stored wins and the other is dropped.
    fn http(&self) -> Result<&ProviderClient, ApiError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| provider_error(format!("the system's TLS root certificates could not be loaded: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(self
            .http
            .get_or_init(|| Client::builder(TokioExecutor::new()).build(connector)))
    }

    /// Refetches keys on an unknown `kid` at most this often (tests rotate keys without waiting).
    pub fn with_key_refetch_interval(self, interval: Duration) -> Self {
        Self {
            key_refetch_interval: interval,
            ..self
        }
    }

    /// Makes sign-in URLs and checks their nonces with `key` (derived from the sealing key, so every
    /// function of a deployment agrees).
    pub fn with_nonce_key(self, key: NonceKey) -> Self {
        Self {
            nonce_key: Some(key),
            ..self
        }
    }

    /// The principal's customer account the request names.
    async fn account(&self, principal: &Principal, code: &CustomerAccountCode) -> Result<ProviderAccount, ApiError> {
        self.accounts
            .account(&principal.company, code)
            .await?
            .ok_or(ApiError::LicenseNotFound("customer account"))
    }

    /// The `id_token` the grant stands for: as sent, or exchanged for its code.
    async fn id_token(
        &self,
        account: &ProviderAccount,
        provider: &Provider,
        grant: &SsoGrant,
    ) -> Result<String, ApiError> {
        let code = match &grant.grant {
            SsoToken::IdToken(token) => return Ok(token.clone()),
            SsoToken::Code(code) => code,
        };
        let redirect_uri = account.redirect_uri(grant.redirect_uri.as_deref())?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_id", &account.client_id)
            .append_pair("client_secret", account.client_secret.expose_secret())
            .finish();
        let (status, body) = self.post_form(&provider.token_endpoint, form).await?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: String,
        }
        match serde_json::from_slice::<TokenAnswer>(&body) {
            Ok(answer) if status.is_success() => Ok(answer.id_token),
            _ => {
                tracing::info!(%status, body = %String::from_utf8_lossy(&body), "the provider refused a code");
                Err(not_vouched())
            }
        }
    }

    /// The issuer's endpoints, discovered once.
    async fn provider(&self, issuer: &str) -> Result<Arc<Provider>, ApiError> {
        if let Some(p) = self.providers.lock().expect("provider cache").get(issuer) {
            return Ok(p.clone());
        }
        self.check_transport(issuer)?;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let discovery: Discovery = serde_json::from_slice(&self.get(&url).await?)
            .map_err(|e| provider_error(format!("discovery document {url}: {e}")))?;
        if discovery.issuer != issuer {
            return Err(provider_error(format!(
                "{url} names issuer {}, not {issuer}",
                discovery.issuer
            )));
        }
        self.check_transport(&discovery.token_endpoint)?;
        self.check_transport(&discovery.jwks_uri)?;
        if let Some(endpoint) = &discovery.authorization_endpoint {
            self.check_transport(endpoint)?;
        }
        let provider = Arc::new(Provider {
            authorization_endpoint: discovery.authorization_endpoint,
            token_endpoint: discovery.token_endpoint,
            jwks_uri: discovery.jwks_uri,
            keys: Mutex::new((JwkSet { keys: Vec::new() }, None)),
        });
        self.providers
            .lock()
            .expect("provider cache")
            .insert(issuer.to_owned(), provider.clone());
        Ok(provider)
    }

    async fn fetch_keys(&self, jwks_uri: &str) -> Result<JwkSet, ApiError> {
        serde_json::from_slice(&self.get(jwks_uri).await?).map_err(|e| provider_error(format!("JWKS {jwks_uri}: {e}")))
    }

    /// The key for `kid`, refetching the provider's keys once if it is unknown (key rotation) and the
    /// last fetch is older than the refetch interval.
    async fn key(&self, provider: &Provider, kid: &str) -> Result<DecodingKey, ApiError> {
        let stale = {
            let keys = provider.keys.lock().expect("key cache");
            if let Some(jwk) = keys.0.find(kid) {
                return DecodingKey::from_jwk(jwk).map_err(|e| provider_error(format!("key {kid}: {e}")));
            }
            keys.1
                .is_none_or(|fetched| fetched.elapsed() >= self.key_refetch_interval)
        };
        if !stale {
            return Err(not_vouched());
        }
        let fresh = self.fetch_keys(&provider.jwks_uri).await?;
        let jwk = fresh.find(kid).cloned();
        *provider.keys.lock().expect("key cache") = (fresh, Some(Instant::now()));
        let jwk = jwk.ok_or_else(not_vouched)?;
        DecodingKey::from_jwk(&jwk).map_err(|e| provider_error(format!("key {kid}: {e}")))
    }

    /// The user an `id_token` names, once its signature and claims check out.
    async fn verify(&self, account: &ProviderAccount, provider: &Provider, token: &str) -> Result<Username, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| refused("header", e))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(refused("algorithm", format!("{:?}", header.alg)));
        }
        let key = self.key(provider, header.kid.as_deref().unwrap_or_default()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&account.issuer]);
        validation.set_audience(&[&account.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| refused("token", e))?
            .claims;
        self.check_nonce(account, &claims)?;
        let email = claims.get(&account.email_claim).and_then(|v| v.as_str());
        let email = email.ok_or_else(|| refused("claims", format!("no string `{}` claim", account.email_claim)))?;
        Username::parse(email).map_err(|e| refused("email", e))
    }

    /// A nonce of our format must be ours, for this account, unexpired (docs/sso.md); any other nonce
    /// belongs to a login the application ran itself, which checks it.
    fn check_nonce(&self, account: &ProviderAccount, claims: &serde_json::Value) -> Result<(), ApiError> {
        let Some(found) = claims
            .get("nonce")
            .and_then(|v| v.as_str())
            .filter(|n| nonce::is_ours(n))
        else {
            return Ok(());
        };
        let Some(key) = &self.nonce_key else {
            return Err(refused("nonce", "a nonce of our format, and no nonce key to check it"));
        };
        let leeway = Duration::from_secs(CLOCK_LEEWAY_SECS);
        key.verify(found, &account.company, &account.code, SystemTime::now(), leeway)
            .map_err(|e| refused("nonce", e))
    }

    fn check_transport(&self, url: &str) -> Result<(), ApiError> {
        let https = url.starts_with("https://");
        let http_allowed = self.transport == ProviderTransport::AllowPlainHttp && url.starts_with("http://");
        if https || http_allowed {
            Ok(())
        } else {
            Err(provider_error(format!(
                "{url} is not HTTPS; plain HTTP needs the deployment's explicit opt-in (tests on loopback only)"
            )))
        }
    }

    async fn get(&self, url: &str) -> Result<Bytes, ApiError> {
        let req = http::Request::get(url)
            .body(Full::default())
            .map_err(|e| provider_error(format!("{url}: {e}")))?;
        let (status, body) = self.send(url, req).await?;
        if !status.is_success() {
            return Err(provider_error(format!("{url} answered {status}")));
        }
        Ok(body)
    }

    async fn post_form(&self, url: &str, form: String) -> Result<(http::StatusCode, Bytes), ApiError> {
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| provider_error(format!("{url}: {e}")))?;
        self.send(url, req).await
    }

    /// One bounded request: [`PROVIDER_TIMEOUT`] for all of it, [`MAX_PROVIDER_RESPONSE`] of body.
    async fn send(&self, url: &str, req: http::Request<Full<Bytes>>) -> Result<(http::StatusCode, Bytes), ApiError> {
        let client = self.http()?;
        let exchange = async {
            let resp = client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_PROVIDER_RESPONSE).collect().await;
            let body =
                body.map_err(|e| format!("{url}: reading the answer (at most {MAX_PROVIDER_RESPONSE} bytes): {e}"))?;
            Ok::<_, String>((status, body.to_bytes()))
        };
        match tokio::time::timeout(PROVIDER_TIMEOUT, exchange).await {
            Ok(result) => result.map_err(provider_error),
            Err(_) => Err(provider_error(format!("{url}: no answer within {PROVIDER_TIMEOUT:?}"))),
        }
    }
}

#[async_trait]
impl SsoResolver for OidcResolver {
    async fn user(&self, principal: &Principal, grant: &SsoGrant) -> Result<Username, ApiError> {
        let account = self.account(principal, &grant.customer_account_code).await?;
        let provider = self.provider(&account.issuer).await?;
        let token = self.id_token(&account, &provider, grant).await?;
        self.verify(&account, &provider, &token).await
    }

    /// The request is checked (account, redirect URI) before the provider is asked anything.
    async fn sign_in_url(&self, principal: &Principal, request: &SsoUrlRequest) -> Result<String, ApiError> {
        let account = self.account(principal, &request.customer_account_code).await?;
        let redirect_uri = account.redirect_uri(request.redirect_uri.as_deref())?;
        let key = self.nonce_key.as_ref().ok_or_else(|| {
            ApiError::internal("sign-in URLs need a nonce key: configure a sealing key (docs/sso.md)")
        })?;
        let login = Login {
            response_type: request.response_type,
            redirect_uri,
            state: nonce::random_token().map_err(ApiError::internal)?,
            nonce: key
                .mint(&account.company, &account.code, SystemTime::now())
                .map_err(ApiError::internal)?,
        };
        let provider = self.provider(&account.issuer).await?;
        let endpoint = provider.authorization_endpoint.as_deref().ok_or_else(|| {
            provider_error(format!(
                "{}: its discovery document names no authorization_endpoint",
                account.issuer
            ))
        })?;
        authorize_url(endpoint, &account, &login)
    }
}

/// What one sign-in URL asks the provider for.
struct Login<'a> {
    response_type: SsoResponseType,
    redirect_uri: &'a str,
    state: String,
    nonce: String,
}

/// The provider's authorization request (OpenID Connect Core §3.1.2.1, §3.2.2.1): the endpoint's own
/// query kept (some providers put a policy there), then the login's parameters. Clients ask for
/// `token`, but an OpenID provider issues ID tokens for `id_token` (SPEC §7); each grant's default
/// response mode (query for a code, fragment for an ID token) is what clients expect, so none is set.
fn authorize_url(endpoint: &str, account: &ProviderAccount, login: &Login<'_>) -> Result<String, ApiError> {
    let mut url =
        url::Url::parse(endpoint).map_err(|e| provider_error(format!("authorization_endpoint `{endpoint}`: {e}")))?;
    let response_type = match login.response_type {
        SsoResponseType::Code => "code",
        SsoResponseType::Token => "id_token",
    };
    url.query_pairs_mut()
        .append_pair("client_id", &account.client_id)
        .append_pair("response_type", response_type)
        .append_pair("scope", &scope(&account.email_claim))
        .append_pair("redirect_uri", login.redirect_uri)
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce);
    Ok(url.into())
}

/// The scopes a login asks for: `openid email`, plus `profile` when the email comes in another claim
/// (Entra ID's `preferred_username` needs it).
fn scope(email_claim: &str) -> String {
    if email_claim == "email" {
        "openid email".to_owned()
    } else {
        "openid email profile".to_owned()
    }
}

/// A grant the provider does not vouch for answers like an unknown user (SPEC §2.1's decision).
fn not_vouched() -> ApiError {
    ApiError::LicenseNotFound("license user")
}

fn refused(what: &str, why: impl std::fmt::Display) -> ApiError {
    tracing::info!(%why, "single sign-on {what} refused");
    not_vouched()
}

/// The provider cannot be used (unreachable, misconfigured): the cause goes to the log.
fn provider_error(why: String) -> ApiError {
    ApiError::internal(format!("identity provider: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(email_claim: &str) -> ProviderAccount {
        ProviderAccount {
            company: CompanyId::parse("c1").unwrap(),
            code: CustomerAccountCode::parse("acct").unwrap(),
            issuer: "https://idp.example".into(),
            client_id: "client one".into(),
            client_secret: SecretString::from("s".to_owned()),
            redirect_uris: vec!["https://app.example/cb".into(), "https://app.example/other".into()],
            email_claim: email_claim.into(),
        }
    }

    fn query(url: &str) -> HashMap<String, String> {
        url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
    }

    #[test]
    fn a_sign_in_url_asks_for_the_grant_with_state_and_nonce_and_keeps_the_endpoint_query() {
        let login = |response_type| Login {
            response_type,
            redirect_uri: "https://app.example/cb",
            state: "st".into(),
            nonce: "sso-v1.1.r.m".into(),
        };
        let url = authorize_url(
            "https://idp.example/authorize?p=B2C_1_signin",
            &account("email"),
            &login(SsoResponseType::Token),
        )
        .unwrap();
        assert!(url.starts_with("https://idp.example/authorize?"), "{url}");
        let q = query(&url);
        let expected = [
            ("p", "B2C_1_signin"),
            ("client_id", "client one"),
            ("response_type", "id_token"),
            ("scope", "openid email"),
            ("redirect_uri", "https://app.example/cb"),
            ("state", "st"),
            ("nonce", "sso-v1.1.r.m"),
        ];
        assert_eq!(
            q,
            expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        );
        let url = authorize_url(
            "https://idp.example/auth",
            &account("preferred_username"),
            &login(SsoResponseType::Code),
        )
        .unwrap();
        let q = query(&url);
        assert_eq!(
            (q["response_type"].as_str(), q["scope"].as_str()),
            ("code", "openid email profile")
        );
        assert_eq!(
            authorize_url("not a url", &account("email"), &login(SsoResponseType::Code))
                .unwrap_err()
                .code(),
            "internal_error"
        );
    }

    #[test]
    fn the_redirect_uri_is_a_registered_one_or_the_first() {
        let a = account("email");
        assert_eq!(a.redirect_uri(None).unwrap(), "https://app.example/cb");
        assert_eq!(
            a.redirect_uri(Some("https://app.example/other")).unwrap(),
            "https://app.example/other"
        );
        assert_eq!(
            a.redirect_uri(Some("https://evil.example/cb")).unwrap_err().code(),
            "validation_error"
        );
        let none = ProviderAccount {
            redirect_uris: Vec::new(),
            ..a
        };
        assert_eq!(none.redirect_uri(None).unwrap_err().code(), "validation_error");
    }
}
