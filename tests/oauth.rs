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
            state.auth = Authenticator::new(cache);
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
        let code = |resp: http::Response<bytes::Bytes>| integration_tests::error_of(&resp);
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
