//! OAuth client credentials (issue 16, docs/oauth.md): clients imported from the catalog are stored
//! with their secret hashed (argon2id) and sealed under the deployment's sealing key, on every store.

use integration_tests::fixtures::{KEY_PRODUCT, SHARED_KEY};
use integration_tests::{Fixture, Setup};
use license_api::auth::Authenticator;
use license_api::catalog::{import, import_sealed, Catalog};
use license_api::ids::OAuthClientId;
use license_api::model::OAuthClientRecord;
use license_api::offline::file::Shape;
use license_api::offline::payload::Kind;
use license_api::sealed::SealingKey;
use license_api::secret::ExposeSecret;
use license_api::token::{AccessClaims, TokenKeys};
use serde_json::{json, Value};

const EXAMPLE: &str = include_str!("../examples/catalog.json");
const SECRET: &str = "oauth-secret-0123456789";

/// The example catalog with one OAuth client of company `demo`, restricted to product `demo`.
fn catalog_with(client: Value) -> Catalog {
    let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
    v["companies"][0]["oauth_clients"] = json!([client]);
    Catalog::parse(&v.to_string(), "oauth.json").expect("valid catalog")
}

fn client(secret: &str, revoked: bool) -> Value {
    json!({"client_id": "ci-1", "client_secret": secret, "products": ["demo"], "read_only": true, "revoked": revoked})
}

async fn stored(f: &Fixture) -> OAuthClientRecord {
    let id = OAuthClientId::parse("ci-1").unwrap();
    f.store()
        .oauth_client(&id)
        .await
        .unwrap()
        .expect("the client is stored")
}

integration_tests::matrix! {
    async fn oauth_clients_are_stored_hashed_and_sealed(setup) {
        let f = Fixture::new(setup).await;
        let key = SealingKey::generate().unwrap().0;
        let report = import_sealed(f.store(), &catalog_with(client(SECRET, false)), Some(&key)).await.unwrap();
        assert_eq!(report.oauth_clients, 1);
        let c = stored(&f).await;
        assert_eq!((c.company.as_str(), c.read_only, c.revoked), ("demo", true, false));
        assert_eq!(c.products.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["demo"]);
        assert!(c.secret_hash.starts_with("$argon2id$"), "{c:?}");
        assert!(license_api::password::verify(SECRET.into(), Some(c.secret_hash.clone())).await);
        let context = OAuthClientRecord::seal_context(&c.id);
        assert_eq!(key.open(&c.sealed_secret, &context).unwrap().expose_secret(), SECRET);
        let dump = f.env.dump().await;
        assert!(dump.iter().any(|row| row.contains("ci-1")), "{dump:?}");
        assert!(!dump.iter().any(|row| row.contains(SECRET)), "the secret is stored in clear: {dump:?}");

        // Re-importing the same catalog changes nothing: hash and sealed secret are kept.
        import_sealed(f.store(), &catalog_with(client(SECRET, false)), Some(&key)).await.unwrap();
        assert_eq!(f.env.dump().await, dump);

        // Revoking keeps the hash; a new secret replaces both.
        import_sealed(f.store(), &catalog_with(client(SECRET, true)), Some(&key)).await.unwrap();
        let revoked = stored(&f).await;
        assert!(revoked.revoked);
        assert_eq!(revoked.secret_hash, c.secret_hash);
        assert_eq!(revoked.sealed_secret, c.sealed_secret);
        let new_secret = "rotated-secret-9876543210";
        import_sealed(f.store(), &catalog_with(client(new_secret, false)), Some(&key)).await.unwrap();
        let rotated = stored(&f).await;
        assert!(license_api::password::verify(new_secret.into(), Some(rotated.secret_hash.clone())).await);
        assert!(!license_api::password::verify(SECRET.into(), Some(rotated.secret_hash.clone())).await);
        assert_eq!(key.open(&rotated.sealed_secret, &context).unwrap().expose_secret(), new_secret);
    }

    async fn oauth_clients_need_a_sealing_key(setup) {
        let f = Fixture::new(setup).await;
        let before = f.env.dump().await;
        let err = import(f.store(), &catalog_with(client(SECRET, false))).await.unwrap_err().to_string();
        assert!(err.contains("oauth_clients") && err.contains("sealing key"), "{err}");
        assert_eq!(f.env.dump().await, before, "nothing is written");
    }
}

/// One token key per test process (generating is cheap, but one key keeps the tests' tokens alike).
fn token_pem() -> &'static str {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PEM.get_or_init(|| TokenKeys::generate_pem().unwrap().expose_secret().to_owned())
}

fn token_keys() -> TokenKeys {
    TokenKeys::from_pem(token_pem()).unwrap()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token for `client_id` of company `demo`, issued `age` seconds ago.
fn token(client_id: &str, age: i64) -> String {
    token_keys().issue(&AccessClaims::new(client_id, "demo", false, unix_now() - age))
}

/// `req` authenticated with `Authorization: Bearer <token>` instead of the API key's signature.
fn with_bearer(mut req: http::Request<bytes::Bytes>, token: &str) -> http::Request<bytes::Bytes> {
    let headers = req.headers_mut();
    headers.remove("date");
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// The example catalog with four clients: full access, read-only, restricted to `demo-team`, revoked.
async fn oauth_fixture(setup: Setup, cache: std::time::Duration) -> Fixture {
    let mut f = Fixture::new(setup).await;
    let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
    v["companies"][0]["oauth_clients"] = json!([
        {"client_id": "ci-rw", "client_secret": SECRET},
        {"client_id": "ci-ro", "client_secret": SECRET, "read_only": true},
        {"client_id": "ci-team", "client_secret": SECRET, "products": ["demo-team"]},
        {"client_id": "ci-revoked", "client_secret": SECRET, "revoked": true}
    ]);
    let catalog = Catalog::parse(&v.to_string(), "oauth.json").unwrap();
    let key = SealingKey::generate().unwrap().0;
    import_sealed(f.store(), &catalog, Some(&key)).await.unwrap();
    f.app = f
        .env
        .configured_instance(|mut state| {
            state.core.auth = Authenticator::new(cache);
            state.with_token_keys(Some(token_keys()))
        })
        .await;
    f
}

const LICENSE: &str = "DEMO-0000-0000-0001";

/// The codes of a request authentication refused (SPEC §1.2).
const AUTH_CODES: [&str; 11] = [
    "missing_headers",
    "authorization_invalid_headers",
    "authorization_missing_params",
    "hmac_required",
    "date_header_diff",
    "invalid_api_key",
    "revoked_api_key",
    "read_only_api_key",
    "signature_mismatch",
    "oauth_token_expired",
    "oauth_token_malformed",
];

fn license_body(hw: &str) -> Value {
    json!({"product": "demo", "hardware_id": hw, "license_key": LICENSE})
}

integration_tests::matrix! {
    async fn a_bearer_token_activates_checks_and_deactivates(setup) {
        let f = oauth_fixture(setup, std::time::Duration::from_secs(60)).await;
        let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
        let t = token("ci-rw", 0);
        let resp = f.app.send(with_bearer(c.activate(&license_body("pc-1")), &t)).await;
        let obj = c.verify_license(&resp, "pc-1", LICENSE).expect("activated with a bearer token");
        assert_eq!(obj["times_activated"], 1);
        let resp = f.app.send(with_bearer(c.check(&license_body("pc-1")), &t)).await;
        c.verify_license(&resp, "pc-1", LICENSE).expect("checked with a bearer token");
        let resp = f.app.send(with_bearer(c.deactivate(&license_body("pc-1")), &t)).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
        let resp = f.app.send(with_bearer(c.check(&license_body("pc-1")), &t)).await;
        assert_eq!(integration_tests::error_of(&resp), (400, "license_not_active".into()), "the deactivation was stored");
    }

    // A request carrying only a bearer token is served by each License API endpoint (SPEC §2: online,
    // bundles, offline, single and bundle), and accepted by every endpoint the table authenticates.
    async fn a_bearer_token_works_on_every_endpoint_that_authenticates(setup) {
        let f = integration_tests::Fixture::new(setup).await;
        crate::bundles::bundles(&f).await;
        let license = f.key_license("BR-1", |_| {}).await;
        let c = &f.client;
        let t = token_keys().issue(&AccessClaims::new("ci-rw", "c1", false, unix_now()));
        let app = f.env.configured_instance(|state| state.with_token_keys(Some(token_keys()))).await;
        let key_file = |kind, product, key| {
            integration_tests::fixtures::key_file(kind, product, key, "br-off", None).encode(Shape::JavaScript, SHARED_KEY)
        };
        let sealing = SealingKey::generate().unwrap().0;
        f.put_oauth_client("ci-rw", &sealing, |_| {}).await;
        let single = json!({"product": KEY_PRODUCT, "hardware_id": "br-1", "license_key": "BR-1"});
        let suite = json!({"product": "kb", "hardware_id": "br-1", "license_key": "KB-1"});
        let post = |path: &str, body: &Value| c.request(http::Method::POST, path, Some(body.to_string().into_bytes()));
        let upload = |path: &str, text: String| c.upload(path, "text/plain", text);
        let requests = [
            ("/api/v4/activate_license", post("/api/v4/activate_license", &single)),
            ("/api/v4/check_license", c.check(&single)),
            ("/api/v4/deactivate_license", c.deactivate(&single)),
            ("/api/v4/activate_bundle", post("/api/v4/activate_bundle", &suite)),
            ("/api/v4/check_bundle", crate::bundles::check(c, &suite)),
            ("/api/v4/deactivate_bundle", post("/api/v4/deactivate_bundle", &suite)),
            ("/api/v4/activate_offline", upload("/api/v4/activate_offline", key_file(Kind::Activation, KEY_PRODUCT, "BR-1"))),
            ("/api/v4/deactivate_offline", upload("/api/v4/deactivate_offline", key_file(Kind::Deactivation, KEY_PRODUCT, "BR-1"))),
            ("/api/v4/activate_bundle_offline", upload("/api/v4/activate_bundle_offline", key_file(Kind::Activation, "kb", "KB-1"))),
            ("/api/v4/deactivate_bundle_offline", upload("/api/v4/deactivate_bundle_offline", key_file(Kind::Deactivation, "kb", "KB-1"))),
        ];
        for (path, req) in requests {
            let resp = app.send(with_bearer(req, &t)).await;
            assert_eq!(resp.status(), 200, "{path}: {}", String::from_utf8_lossy(resp.body()));
            c.verify_body(&resp).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        // Every endpoint the table says authenticates, those added later too: a bad token is refused as
        // such, a good one gets past authentication (to whatever the empty request then answers).
        let authenticating = license_api::handlers::Endpoint::ALL.iter().map(|e| e.descriptor()).filter(|d| d.access.is_some());
        for d in authenticating {
            let bare = || c.request(d.method.clone(), d.path, None);
            let resp = app.send(with_bearer(bare(), "not-a-token")).await;
            assert_eq!(integration_tests::error_of(&resp), (401, "oauth_token_malformed".into()), "{}", d.path);
            let resp = app.send(with_bearer(bare(), &t)).await;
            if resp.status() != 200 {
                let (status, code) = integration_tests::error_of(&resp);
                assert!(status != 401 && !AUTH_CODES.contains(&code.as_str()), "{}: {status} {code}", d.path);
            }
        }
        // Each request did its work: the single license and the bundle's members end free again.
        assert_eq!(f.license_now(&license).await.times_activated, 0);
        let members = (crate::bundles::member(&f, "m1").await, crate::bundles::member(&f, "m2").await);
        assert_eq!((members.0.times_activated, members.1.times_activated), (0, 0));
    }

    async fn bearer_failures_answer_their_codes(setup) {
        let f = oauth_fixture(setup, std::time::Duration::from_secs(60)).await;
        let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
        // Every 401 challenges for a bearer token (RFC 6750 §3.1); the 400s do not.
        let code = |resp: http::Response<bytes::Bytes>| {
            let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(challenge.as_deref().is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")), resp.status() == 401, "{challenge:?}");
            integration_tests::error_of(&resp)
        };
        // Issued 481 s ago: expired; 479 s ago: still valid.
        assert_eq!(code(f.app.send(with_bearer(c.check(&license_body("pc-1")), &token("ci-rw", 481))).await), (401, "oauth_token_expired".into()));
        let fresh = f.app.send(with_bearer(c.activate(&license_body("pc-1")), &token("ci-rw", 470))).await;
        assert_eq!(fresh.status(), 200, "{:?}", fresh.body());
        // Not ours: garbage, another deployment's key, a tampered signature.
        assert_eq!(code(f.app.send(with_bearer(c.check(&license_body("pc-1")), "not-a-token")).await), (401, "oauth_token_malformed".into()));
        let foreign = TokenKeys::from_pem(TokenKeys::generate_pem().unwrap().expose_secret()).unwrap();
        let other = foreign.issue(&AccessClaims::new("ci-rw", "demo", false, unix_now()));
        assert_eq!(code(f.app.send(with_bearer(c.check(&license_body("pc-1")), &other)).await), (401, "oauth_token_malformed".into()));
        // One signature character changed (not the last: its low bits are padding).
        let mut tampered = token("ci-rw", 0).into_bytes();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let tampered_code = code(f.app.send(with_bearer(c.check(&license_body("pc-1")), &tampered)).await);
        assert_eq!(tampered_code, (401, "oauth_token_malformed".into()));
        // Restrictions as for API keys: read-only, products, revoked, unknown client.
        assert_eq!(code(f.app.send(with_bearer(c.activate(&license_body("pc-2")), &token("ci-ro", 0))).await), (400, "read_only_api_key".into()));
        let ro_check = f.app.send(with_bearer(c.check(&license_body("pc-1")), &token("ci-ro", 0))).await;
        c.verify_license(&ro_check, "pc-1", LICENSE).expect("a read-only client checks");
        assert_eq!(code(f.app.send(with_bearer(c.check(&license_body("pc-1")), &token("ci-team", 0))).await), (400, "api_key_product_not_allowed".into()));
        assert_eq!(code(f.app.send(with_bearer(c.check(&license_body("pc-1")), &token("ci-revoked", 0))).await), (400, "revoked_api_key".into()));
        assert_eq!(code(f.app.send(with_bearer(c.check(&license_body("pc-1")), &token("ci-nobody", 0))).await), (400, "invalid_api_key".into()));
        // Nothing but the one activation was written.
        let check = f.app.send(c.check(&license_body("pc-1"))).await;
        assert_eq!(c.verify_license(&check, "pc-1", LICENSE).unwrap()["times_activated"], 1);
    }

    async fn a_revoked_client_stops_within_the_cache_ttl(setup) {
        // TTL zero: every request reads the client, so revoking takes effect at once.
        let f = oauth_fixture(setup, std::time::Duration::ZERO).await;
        let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
        let t = token("ci-rw", 0);
        assert_eq!(f.app.send(with_bearer(c.activate(&license_body("pc-1")), &t)).await.status(), 200);
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["companies"][0]["oauth_clients"] = json!([{"client_id": "ci-rw", "client_secret": SECRET, "revoked": true}]);
        let key = SealingKey::generate().unwrap().0;
        import_sealed(f.store(), &Catalog::parse(&v.to_string(), "r.json").unwrap(), Some(&key)).await.unwrap();
        let resp = f.app.send(with_bearer(c.check(&license_body("pc-1")), &t)).await;
        assert_eq!(integration_tests::error_of(&resp), (400, "revoked_api_key".into()));
    }
}

/// `GET /api/v4/oauth_url` without any credentials, with extra request headers, on `path`.
fn oauth_url_request(path_and_query: &str, headers: &[(&str, &str)]) -> http::Request<bytes::Bytes> {
    let mut b = http::Request::builder().method(http::Method::GET).uri(path_and_query);
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(bytes::Bytes::new()).unwrap()
}

/// The `url` of a successful `oauth_url` answer, its signature checked.
fn token_url_of(f: &Fixture, resp: &http::Response<bytes::Bytes>) -> String {
    let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
    let body: Value = serde_json::from_slice(&c.verify_body(resp).expect("a signed 200")).unwrap();
    assert_eq!(body["login_type"], "client_credentials", "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    body["url"].as_str().unwrap().to_owned()
}

integration_tests::matrix! {
    async fn oauth_url_names_the_token_endpoint_without_credentials(setup) {
        let transport = setup.transport;
        let f = Fixture::new(setup).await;
        let url = "/api/v4/oauth_url?login_type=client_credentials";
        // The request's own host: what the client reached (the gateway's domain through the Lambda
        // adapter, where API Gateway says https; the loopback address over plain HTTP).
        let own = token_url_of(&f, &f.app.send(oauth_url_request(url, &[])).await);
        match transport {
            integration_tests::Transport::Lambda => assert_eq!(own, "https://test.execute-api.us-east-1.amazonaws.com/api/v4/oauth_token"),
            integration_tests::Transport::Http => assert!(own.starts_with("http://127.0.0.1:") && own.ends_with("/api/v4/oauth_token"), "{own}"),
        }
        // Behind a proxy or a custom domain: its Host and X-Forwarded-Proto; a stage prefix is kept.
        let proxied = [("host", "licenses.example.com"), ("x-forwarded-proto", "https")];
        assert_eq!(token_url_of(&f, &f.app.send(oauth_url_request(url, &proxied)).await), "https://licenses.example.com/api/v4/oauth_token");
        let staged = format!("/prod{url}");
        assert_eq!(token_url_of(&f, &f.app.send(oauth_url_request(&staged, &proxied)).await), "https://licenses.example.com/prod/api/v4/oauth_token");
        // A configured public URL wins over the request's host.
        let mut configured = Fixture::new(f.env.setup.clone()).await;
        let public = license_api::config::PublicUrl::parse("https://api.example.com/v/").unwrap();
        configured.app = configured.env.configured_instance(|s| s.with_public_url(Some(public))).await;
        assert_eq!(token_url_of(&configured, &configured.app.send(oauth_url_request(url, &proxied)).await), "https://api.example.com/v/api/v4/oauth_token");
        // Only the client-credentials flow; the parameter is required.
        let other = f.app.send(oauth_url_request("/api/v4/oauth_url?login_type=password", &[])).await;
        assert_eq!(integration_tests::error_of(&other), (400, "validation_error".into()));
        let missing = f.app.send(oauth_url_request("/api/v4/oauth_url", &[])).await;
        assert_eq!(integration_tests::error_of(&missing), (400, "missing_parameters".into()));
        let long = f.app.send(oauth_url_request(&format!("/api/v4/oauth_url?login_type={}", "x".repeat(2_000)), &[])).await;
        assert_eq!(integration_tests::error_of(&long), (400, "validation_error".into()));
        assert!(long.body().len() < 300, "the value is not echoed");
    }
}

/// A token request: `body` as a form, with HTTP Basic credentials when given (form-urlencoded, then
/// base64, as RFC 6749 §2.3.1 says).
fn token_request(body: &[(&str, &str)], basic: Option<(&str, &str)>) -> http::Request<bytes::Bytes> {
    use base64::Engine;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(body);
    let mut b = http::Request::builder()
        .method(http::Method::POST)
        .uri("/api/v4/oauth_token")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(id), encode(secret));
        b = b.header(
            "authorization",
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)),
        );
    }
    b.body(bytes::Bytes::from(form.finish())).unwrap()
}

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

/// A successful token answer's access token, checked: not cached, `Bearer`, 480 s, and the claims of
/// `client_id` of company `demo`.
fn access_token_of(resp: &http::Response<bytes::Bytes>, client_id: &str) -> String {
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("Bearer"), Some(480)),
        "{body}"
    );
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = token_keys()
        .verify(&token, unix_now())
        .expect("a token of the deployment's keys");
    assert_eq!((claims.sub.as_str(), claims.company.as_str()), (client_id, "demo"));
    token
}

/// A token endpoint error: the SPEC's three fields and RFC 6749's two, `error` equal to `code`.
fn oauth_error_of(resp: &http::Response<bytes::Bytes>) -> (u16, String) {
    let body: Value = serde_json::from_slice(resp.body()).expect("a JSON error body");
    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["code", "error", "error_description", "message", "status"],
        "{body}"
    );
    assert_eq!(
        body["status"].as_u64(),
        Some(u64::from(resp.status().as_u16())),
        "{body}"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // A 401 names the scheme to authenticate with (RFC 6749 §5.2); other errors have no challenge.
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap());
    assert_eq!(
        challenge,
        (resp.status() == 401).then_some("Basic realm=\"License API\""),
        "{body}"
    );
    (resp.status().as_u16(), body["error"].as_str().unwrap().to_owned())
}

integration_tests::matrix! {
    async fn the_token_endpoint_issues_tokens_that_work_on_every_license_endpoint(setup) {
        let f = oauth_fixture(setup, std::time::Duration::from_secs(60)).await;
        let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
        // Credentials in the body, and as HTTP Basic.
        let in_body = f.app.send(token_request(&[GRANT, ("client_id", "ci-rw"), ("client_secret", SECRET)], None)).await;
        let t = access_token_of(&in_body, "ci-rw");
        let as_basic = f.app.send(token_request(&[GRANT], Some(("ci-rw", SECRET)))).await;
        let t2 = access_token_of(&as_basic, "ci-rw");
        let resp = f.app.send(with_bearer(c.activate(&license_body("pc-1")), &t)).await;
        assert_eq!(c.verify_license(&resp, "pc-1", LICENSE).expect("activated")["times_activated"], 1);
        let resp = f.app.send(with_bearer(c.check(&license_body("pc-1")), &t2)).await;
        c.verify_license(&resp, "pc-1", LICENSE).expect("checked");
        let resp = f.app.send(with_bearer(c.deactivate(&license_body("pc-1")), &t)).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
        // A read-only client's token reads but does not write.
        let ro = access_token_of(&f.app.send(token_request(&[GRANT], Some(("ci-ro", SECRET)))).await, "ci-ro");
        assert_eq!(token_keys().verify(&ro, unix_now()).unwrap().scope, license_api::token::SCOPE_READ);
        let refused = f.app.send(with_bearer(c.activate(&license_body("pc-2")), &ro)).await;
        assert_eq!(integration_tests::error_of(&refused), (400, "read_only_api_key".into()));
    }

    async fn the_token_endpoint_refuses_bad_credentials_alike(setup) {
        let f = oauth_fixture(setup, std::time::Duration::from_secs(60)).await;
        let before = f.env.dump().await;
        let invalid = (401, "invalid_client".to_owned());
        for request in [
            token_request(&[GRANT, ("client_id", "ci-rw"), ("client_secret", "wrong-secret-0123456789")], None),
            token_request(&[GRANT], Some(("ci-rw", "wrong-secret-0123456789"))),
            token_request(&[GRANT, ("client_id", "ci-nobody"), ("client_secret", SECRET)], None),
            token_request(&[GRANT], Some(("ci-revoked", SECRET))),
            token_request(&[GRANT], None),
            token_request(&[GRANT, ("client_id", "ci-rw")], None),
            token_request(&[GRANT, ("client_id", "ci-rw"), ("client_secret", &"s".repeat(300))], None),
            token_request(&[GRANT, ("client_id", &"c".repeat(600)), ("client_secret", SECRET)], None),
        ] {
            let resp = f.app.send(request).await;
            assert_eq!(oauth_error_of(&resp), invalid);
            assert!(!String::from_utf8_lossy(resp.body()).contains("revoked"), "one answer for every failure");
        }
        let grant = |g: &str| token_request(&[("grant_type", g), ("client_id", "ci-rw"), ("client_secret", SECRET)], None);
        assert_eq!(oauth_error_of(&f.app.send(grant("password")).await), (400, "unsupported_grant_type".into()));
        assert_eq!(oauth_error_of(&f.app.send(grant("")).await), (400, "invalid_request".into()));
        let both = token_request(&[GRANT, ("client_secret", SECRET)], Some(("ci-rw", SECRET)));
        assert_eq!(oauth_error_of(&f.app.send(both).await), (400, "invalid_request".into()));
        let mut json = token_request(&[GRANT, ("client_id", "ci-rw"), ("client_secret", SECRET)], None);
        json.headers_mut().insert("content-type", "application/json".parse().unwrap());
        assert_eq!(oauth_error_of(&f.app.send(json).await), (400, "invalid_request".into()));
        let get = http::Request::builder().uri("/api/v4/oauth_token").body(bytes::Bytes::new()).unwrap();
        assert_eq!(integration_tests::error_of(&f.app.send(get).await), (405, "method_not_allowed".into()));
        assert_eq!(f.env.dump().await, before, "nothing is written");
    }

    async fn the_token_endpoint_without_token_keys_answers_a_server_error(setup) {
        let mut f = oauth_fixture(setup, std::time::Duration::from_secs(60)).await;
        f.app = f.env.configured_instance(|s| s.with_token_keys(None)).await;
        let resp = f.app.send(token_request(&[GRANT], Some(("ci-rw", SECRET)))).await;
        assert_eq!(oauth_error_of(&resp), (500, "server_error".into()));
        assert!(String::from_utf8_lossy(resp.body()).contains("token keys are not configured"));
    }
}

integration_tests::matrix! {
    async fn a_client_with_only_client_credentials_activates_checks_and_deactivates(setup) {
        use license_api::client::{OAuthClient, SecretIn};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let f = oauth_fixture(setup, std::time::Duration::from_secs(60)).await;
        // Requests built without an API key: the OAuth client puts its bearer token on them.
        let c = license_api::client::LicenseClient::new("", "", f.app.public_key_pem());
        let token_requests = AtomicUsize::new(0);
        let send = |req: http::Request<bytes::Bytes>| {
            if req.uri().path() == "/api/v4/oauth_token" {
                token_requests.fetch_add(1, Ordering::SeqCst);
            }
            f.app.send(req)
        };
        for secret_in in [SecretIn::Body, SecretIn::Basic] {
            let oauth = OAuthClient::new("ci-rw", SECRET, secret_in);
            let before = token_requests.load(Ordering::SeqCst);
            let resp = oauth.send(c.activate(&license_body("pc-1")), send).await.unwrap();
            assert_eq!(c.verify_license(&resp, "pc-1", LICENSE).expect("activated")["times_activated"], 1);
            let resp = oauth.send(c.check(&license_body("pc-1")), send).await.unwrap();
            c.verify_license(&resp, "pc-1", LICENSE).expect("checked");
            let resp = oauth.send(c.deactivate(&license_body("pc-1")), send).await.unwrap();
            assert_eq!(resp.status(), 200, "{:?}", resp.body());
            assert_eq!(token_requests.load(Ordering::SeqCst), before + 1, "one token for the three requests");
            // An expired token and a foreign one: the client fetches a new token and the request passes.
            oauth.set_token(&token("ci-rw", 481));
            let resp = oauth.send(c.check(&license_body("pc-1")), send).await.unwrap();
            assert_eq!(integration_tests::error_of(&resp), (400, "license_not_active".into()), "answered past the token");
            oauth.set_token("not-a-token");
            let resp = oauth.send(c.activate(&license_body("pc-1")), send).await.unwrap();
            assert_eq!(resp.status(), 200, "{:?}", resp.body());
            oauth.send(c.deactivate(&license_body("pc-1")), send).await.unwrap();
            assert_eq!(token_requests.load(Ordering::SeqCst), before + 3);
        }
        // Credentials the token endpoint refuses are the client's error, `invalid_client`.
        for (id, secret) in [("ci-rw", "wrong-secret-0123456789"), ("ci-nobody", SECRET), ("ci-revoked", SECRET)] {
            let oauth = OAuthClient::new(id, secret, SecretIn::Basic);
            let err = oauth.send(c.check(&license_body("pc-1")), send).await.unwrap_err();
            assert!(matches!(err, license_api::client::ClientError::Api { status: 401, ref code, .. } if code == "invalid_client"), "{id}: {err:?}");
        }
    }

    async fn a_token_from_the_endpoint_is_accepted_by_every_endpoint(setup) {
        use license_api::handlers::endpoints::Input;
        use license_api::handlers::Endpoint;
        let f = oauth_fixture(setup, std::time::Duration::from_secs(60)).await;
        let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
        let issued = f.app.send(token_request(&[GRANT], Some(("ci-rw", SECRET)))).await;
        let t = access_token_of(&issued, "ci-rw");
        let mut served = 0;
        for endpoint in Endpoint::ALL.into_iter().filter(|e| e.descriptor().access.is_some()) {
            let req = match endpoint.descriptor().input {
                Input::Upload => c.upload(endpoint.path(), "text/plain", ""),
                _ => c.call(endpoint, &license_body("pc-9")),
            };
            let resp = f.app.send(with_bearer(req, &t)).await;
            if !resp.status().is_success() {
                let (status, code) = integration_tests::error_of(&resp);
                assert!(status != 401 && !AUTH_CODES.contains(&code.as_str()), "{endpoint:?}: {status} {code}");
            }
            served += u32::from(resp.status().is_success());
        }
        // In table order: the activation and the deactivation succeed (the check after it finds none).
        assert!(served >= 2, "activation and deactivation succeeded: {served}");
    }
}
