//! Headless logins at the real OpenID Connect provider the test run starts
//! (`scripts/lib/oidc-provider.sh`, configured by `tests/oidc/provider.mjs`): the helper plays the
//! user's browser — authorize, the provider's login form, its consent form, the redirect back — with a
//! cookie-keeping HTTP client, and hands back the `id_token` or `code` the provider redirects with.
//! Nothing is minted here: what the server under test gets is what a real provider issued.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use url::Url;

/// The customer account the SSO tests tie to the provider.
pub const ACCOUNT: &str = "acct";

/// The claims of a JWT, unverified: the tests check what a provider issued or what the server verified.
pub fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A request naming the user-based test product's license by an SSO grant (`id_token` or `code`) of
/// [`ACCOUNT`], for the device `hw`.
pub fn grant_body(grant: (&str, &str), hw: &str) -> serde_json::Value {
    serde_json::json!({"product": crate::fixtures::USER_PRODUCT, "hardware_id": hw, grant.0: grant.1, "customer_account_code": ACCOUNT})
}

/// The one client `tests/oidc/provider.mjs` registers.
pub const CLIENT_ID: &str = "license-server-test";
pub const CLIENT_SECRET: &str = "license-server-test-secret";
/// Registered redirect URIs; the helper reads the redirect, it never follows it, so the host need not
/// exist (the provider insists on https for implicit-grant web clients).
pub const REDIRECT_URI: &str = "https://app.example.test/callback";
pub const OTHER_REDIRECT_URI: &str = "https://app.example.test/other";

/// A provider user: the login name typed in the form and the email the provider vouches for.
#[derive(Clone, Copy, Debug)]
pub struct User {
    pub login: &'static str,
    pub email: &'static str,
}

pub const ANN: User = User {
    login: "ann",
    email: "ann@example.com",
};
pub const BOB: User = User {
    login: "bob",
    email: "bob@example.com",
};
/// A user the provider knows but no license names.
pub const EVE: User = User {
    login: "eve",
    email: "eve@unknown.example",
};

/// What the client asks the provider for (SPEC §7: `token` means an `id_token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Implicit grant: the `id_token` comes back in the redirect's fragment.
    IdToken,
    /// Authorization-code grant: a `code` comes back in the redirect's query.
    Code,
}

/// The provider's issuer URL, exported by `scripts/lib/oidc-provider.sh`.
pub fn issuer() -> String {
    std::env::var("OIDC_ISSUER").expect(
        "OIDC_ISSUER is not set: run the tests with scripts/test.sh, which starts the OpenID Connect \
         provider (or source scripts/lib/oidc-provider.sh)",
    )
}

/// Logs `user` in at the provider and returns the `id_token` or `code` it redirects to `redirect_uri`
/// with.
pub async fn login(user: User, flow: Flow, redirect_uri: &str) -> String {
    let state = format!("state-{}", std::process::id());
    let location = follow(user, &authorize_url(flow, redirect_uri, &state), redirect_uri).await;
    grant_from(&location, flow, &state)
}

/// Logs `user` in through a complete authorization request (e.g. the URL `sso_url` answers) and
/// returns where the provider finally redirects: `redirect_uri` with the grant in its query or
/// fragment (read it with [`grant_from`]).
pub async fn follow(user: User, authorize: &Url, redirect_uri: &str) -> Url {
    let mut browser = Browser::new();
    let mut next = authorize.clone();
    for _ in 0..10 {
        let location = browser.redirect(Method::GET, &next, None).await;
        if location.as_str().starts_with(redirect_uri) {
            return location;
        }
        next = if location.path().starts_with("/interaction/") {
            browser.interact(&location, user).await
        } else {
            location
        };
    }
    panic!("the provider did not redirect {authorize} back to {redirect_uri} within 10 hops")
}

fn authorize_url(flow: Flow, redirect_uri: &str, state: &str) -> Url {
    let mut url = Url::parse(&format!("{}/auth", issuer())).expect("issuer is a URL");
    let response_type = match flow {
        Flow::IdToken => "id_token",
        Flow::Code => "code",
    };
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("response_type", response_type)
        .append_pair("scope", "openid email")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("nonce", "test-nonce");
    url
}

/// The grant in the final redirect: the fragment carries an `id_token`, the query a `code`; its `state`
/// must be the one the login was started with.
pub fn grant_from(location: &Url, flow: Flow, state: &str) -> String {
    let (name, pairs) = match flow {
        Flow::IdToken => ("id_token", location.fragment().unwrap_or_default()),
        Flow::Code => ("code", location.query().unwrap_or_default()),
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(pairs.as_bytes()).into_owned().collect();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(get("state").as_deref(), Some(state), "state in {location}");
    get(name).unwrap_or_else(|| panic!("no {name} in the redirect {location}"))
}

/// Exchanges a `code` at the provider's token endpoint the way a relying party does, returning the
/// raw JSON answer (status, body) — for tests that check the harness or replay a code.
pub async fn exchange(code: &str, redirect_uri: &str) -> (StatusCode, serde_json::Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("client_id", CLIENT_ID)
        .append_pair("client_secret", CLIENT_SECRET)
        .finish();
    let url = Url::parse(&format!("{}/token", issuer())).expect("issuer is a URL");
    let (status, _, body) = Browser::new().send(Method::POST, &url, Some(body)).await;
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// A minimal browser: follows nothing on its own, keeps cookies by path.
struct Browser {
    http: Client<HttpConnector, Full<Bytes>>,
    /// (name, value, path) — the provider scopes its interaction cookies to per-interaction paths.
    cookies: Vec<(String, String, String)>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: Client::builder(TokioExecutor::new()).build_http(),
            cookies: Vec::new(),
        }
    }

    /// Answers one interaction page: the login form with the user's name, or the consent form.
    async fn interact(&mut self, page: &Url, user: User) -> Url {
        let (status, _, html) = self.send(Method::GET, page, None).await;
        let html = String::from_utf8_lossy(&html);
        assert_eq!(status, StatusCode::OK, "interaction page {page}: {html}");
        let form = if html.contains(r#"name="prompt" value="login""#) {
            format!("prompt=login&login={}&password=any", user.login)
        } else if html.contains(r#"name="prompt" value="consent""#) {
            "prompt=consent".to_owned()
        } else {
            panic!("unexpected interaction page {page}: {html}")
        };
        self.redirect(Method::POST, page, Some(form)).await
    }

    /// Sends one request that must answer with a redirect, and returns where it points.
    async fn redirect(&mut self, method: Method, url: &Url, form: Option<String>) -> Url {
        let (status, location, body) = self.send(method, url, form).await;
        let location = location.unwrap_or_else(|| {
            panic!(
                "{url} answered {status} without a redirect: {}",
                String::from_utf8_lossy(&body)
            )
        });
        url.join(&location).expect("Location is a URL")
    }

    async fn send(&mut self, method: Method, url: &Url, form: Option<String>) -> (StatusCode, Option<String>, Bytes) {
        let mut req = Request::builder().method(method).uri(url.as_str());
        let cookie = self.cookie_header(url.path());
        if !cookie.is_empty() {
            req = req.header(header::COOKIE, cookie);
        }
        if form.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .expect("request");
        let resp = self.http.request(req).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        for set in resp.headers().get_all(header::SET_COOKIE) {
            self.store_cookie(set.to_str().unwrap_or_default());
        }
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().expect("Location").to_owned());
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, location, body)
    }

    fn cookie_header(&self, path: &str) -> String {
        let sent: Vec<String> = self
            .cookies
            .iter()
            .filter(|(_, _, p)| path.starts_with(p.as_str()))
            .map(|(n, v, _)| format!("{n}={v}"))
            .collect();
        sent.join("; ")
    }

    /// Keeps `name=value` under its path; an empty value (how the provider clears one) drops it.
    fn store_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let path = parts
            .find_map(|a| a.strip_prefix("path=").or_else(|| a.strip_prefix("Path=")))
            .unwrap_or("/")
            .to_owned();
        self.cookies.retain(|(n, _, p)| !(n == name && *p == path));
        if !value.is_empty() {
            self.cookies.push((name.to_owned(), value.to_owned(), path));
        }
    }
}

/// An issuer whose keys the tests hold, for tokens no real provider would issue (expired, wrong
/// audience, tampered, signed with an unknown or rotated key): it serves only what a relying party
/// reads — the discovery document and the JWKS — on a loopback port, and counts JWKS fetches.
pub struct MintingIssuer {
    pub issuer: String,
    state: std::sync::Arc<MintState>,
}

struct MintState {
    issuer: String,
    /// The published keys (private PEM, kid); tokens are signed with any of them or with others.
    published: std::sync::Mutex<Vec<MintKey>>,
    jwks_fetches: std::sync::atomic::AtomicUsize,
}

/// An RSA signing key and its `kid`.
#[derive(Clone)]
pub struct MintKey {
    pub kid: String,
    pem: String,
}

impl MintKey {
    pub fn generate(kid: &str) -> Self {
        let (_, pem) = license_api::signing::Signer::generate(2048).expect("RSA key");
        Self {
            kid: kid.to_owned(),
            pem,
        }
    }

    fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_rsa_pem(self.pem.as_bytes()).expect("RSA PEM")
    }

    /// The public half as a JWK, as a provider publishes it.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.encoding_key(), jsonwebtoken::Algorithm::RS256)
            .expect("JWK");
        jwk.common.key_id = Some(self.kid.clone());
        serde_json::to_value(jwk).expect("JWK JSON")
    }

    /// A token with these claims, signed RS256 under this key's `kid`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).expect("signing")
    }
}

impl MintingIssuer {
    pub async fn start(keys: Vec<MintKey>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let state = std::sync::Arc::new(MintState {
            issuer: issuer.clone(),
            published: std::sync::Mutex::new(keys),
            jwks_fetches: Default::default(),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = state.answer(req.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(body) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
            }
        });
        Self { issuer, state }
    }

    /// Publishes `keys` instead of the current ones (a key rotation).
    pub fn rotate(&self, keys: Vec<MintKey>) {
        *self.state.published.lock().expect("keys") = keys;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Claims a valid token for `email` carries at this issuer, for `audience`.
    pub fn claims(&self, email: &str, audience: &str) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        serde_json::json!({"iss": self.issuer, "aud": audience, "sub": email, "email": email,
            "iat": now, "exp": now + 600})
    }
}

impl MintState {
    fn answer(&self, path: &str) -> http::Response<Full<Bytes>> {
        let body = match path {
            "/.well-known/openid-configuration" => serde_json::json!({
                "issuer": self.issuer,
                "authorization_endpoint": format!("{}/auth", self.issuer),
                "token_endpoint": format!("{}/token", self.issuer),
                "jwks_uri": format!("{}/jwks", self.issuer),
            }),
            "/jwks" => {
                self.jwks_fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let keys: Vec<_> = self.published.lock().expect("keys").iter().map(MintKey::jwk).collect();
                serde_json::json!({ "keys": keys })
            }
            _ => {
                return http::Response::builder()
                    .status(404)
                    .body(Full::default())
                    .expect("response")
            }
        };
        http::Response::new(Full::new(Bytes::from(body.to_string())))
    }
}
