//! Single sign-on (SPEC §2.1, §7) against the real OpenID Connect provider the run starts
//! (`scripts/lib/oidc-provider.sh`): the harness itself (a headless login yields the grants a relying
//! party gets from a real provider), then the OpenID Connect resolver with real grants on every setup.

use crate::bundles::{check, post, verify_array};
use base64::Engine;
use integration_tests::fixtures::{key_file, SHARED_KEY, USER_PRODUCT};
use integration_tests::oidc::{self, claims, grant_body, Flow, ANN, BOB, EVE, OTHER_REDIRECT_URI, REDIRECT_URI};
use integration_tests::oidc::{MintKey, MintingIssuer};
use integration_tests::{assert_error, Fixture, Instance};
use license_api::catalog::{import, import_sealed, Catalog};
use license_api::identity::oidc::{
    FixedAccounts, OidcResolver, ProviderAccount, ProviderTransport, StoredAccounts, KEY_REFETCH_INTERVAL,
};
use license_api::identity::Resolvers;
use license_api::ids::CustomerAccountCode;
use license_api::model::CustomerAccountRecord;
use license_api::offline::file::{RequestFile, Shape};
use license_api::offline::payload::Kind;
use license_api::sealed::SealingKey;
use license_api::secret::{ExposeSecret, SecretString};
use license_api::state::AppState;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn an_implicit_login_yields_an_id_token_naming_the_user() {
    for user in [ANN, BOB] {
        let token = oidc::login(user, Flow::IdToken, REDIRECT_URI).await;
        let c = claims(&token);
        assert_eq!(c["email"], user.email, "{c}");
        assert_eq!(c["iss"], oidc::issuer(), "{c}");
        assert_eq!(c["aud"], oidc::CLIENT_ID, "{c}");
        assert!(c["exp"].as_u64().is_some(), "{c}");
    }
}

#[tokio::test]
async fn a_code_login_yields_a_code_the_token_endpoint_exchanges_once() {
    let code = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let (status, body) = oidc::exchange(&code, REDIRECT_URI).await;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["id_token"].as_str().expect("an id_token"));
    assert_eq!(c["email"], ANN.email, "{c}");
    let (status, body) = oidc::exchange(&code, REDIRECT_URI).await;
    assert_eq!(status, 400, "a replayed code is refused: {body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

/// The customer account `acct` of the fixture's company, tied to the provider at `issuer`.
fn account(f: &Fixture, issuer: &str) -> ProviderAccount {
    ProviderAccount {
        company: f.company.clone(),
        code: CustomerAccountCode::parse("acct").unwrap(),
        issuer: issuer.to_owned(),
        client_id: oidc::CLIENT_ID.to_owned(),
        client_secret: oidc::CLIENT_SECRET.to_owned().into(),
        redirect_uris: vec![REDIRECT_URI.to_owned(), OTHER_REDIRECT_URI.to_owned()],
        email_claim: "email".to_owned(),
    }
}

/// An instance whose SSO grants are verified by the OpenID Connect resolver against the test provider
/// (plain HTTP opted into: the provider is on loopback).
pub(crate) async fn sso_instance(f: &Fixture) -> Instance {
    resolver_instance(f, &oidc::issuer(), KEY_REFETCH_INTERVAL).await
}

async fn resolver_instance(f: &Fixture, issuer: &str, key_refetch: Duration) -> Instance {
    let resolver = OidcResolver::new(
        Arc::new(FixedAccounts(vec![account(f, issuer)])),
        ProviderTransport::AllowPlainHttp,
    )
    .with_key_refetch_interval(key_refetch);
    f.env
        .configured_instance(|state| AppState {
            identity: Resolvers {
                sso: Some(Arc::new(resolver)),
            },
            ..state
        })
        .await
}

integration_tests::matrix! {
// A real id_token (implicit grant) activates, checks and deactivates the license of the user its email
// names, without a password.
async fn a_real_id_token_names_the_license_user(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(701, |_| {}).await;
    f.user(ANN.email, 91, &[(&license, 0)]).await;
    let app = sso_instance(&f).await;
    let token = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
    let resp = app.send(f.client.activate(&grant_body(("id_token", &token), "HW-1"))).await;
    let obj = f
        .client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(obj["user"]["email"], ANN.email);
    assert_eq!(f.device_counts(&license).await, (1, 1));
    let resp = app.send(f.client.check(&grant_body(("id_token", &token), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("check: {e}: {}", String::from_utf8_lossy(resp.body())));
    let resp = app.send(f.client.deactivate(&grant_body(("id_token", &token), "HW-1"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(f.device_counts(&license).await, (0, 1));
}

// A real code (authorization-code grant) is exchanged with the client secret and activates; the same
// code a second time is refused by the provider, so it activates nothing.
async fn a_real_code_names_the_license_user_once(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(702, |_| {}).await;
    f.user(ANN.email, 92, &[(&license, 0)]).await;
    let app = sso_instance(&f).await;
    let code = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let resp = app.send(f.client.activate(&grant_body(("code", &code), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(f.device_counts(&license).await, (1, 1));
    let resp = app.send(f.client.activate(&grant_body(("code", &code), "HW-2"))).await;
    assert_error(&resp, 400, "license_not_found");
    assert_eq!(f.device_counts(&license).await, (1, 1));
    // A code issued for the other registered redirect URI needs it named.
    let code = oidc::login(ANN, Flow::Code, OTHER_REDIRECT_URI).await;
    let mut body = grant_body(("code", &code), "HW-2");
    body["redirect_uri"] = json!(OTHER_REDIRECT_URI);
    let resp = app.send(f.client.activate(&body)).await;
    f.client
        .verify_license(&resp, "HW-2", ANN.email)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    body["redirect_uri"] = json!("https://attacker.example/cb");
    assert_error(&app.send(f.client.activate(&body)).await, 400, "validation_error");
}

// The provider vouches for a user no license names, or for a user of another license: nothing is
// activated; a grant for an unknown customer account likewise.
async fn a_grant_for_someone_else_activates_nothing(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(703, |_| {}).await;
    f.user(ANN.email, 93, &[(&license, 0)]).await;
    let app = sso_instance(&f).await;
    let eve = oidc::login(EVE, Flow::IdToken, REDIRECT_URI).await;
    assert_error(&app.send(f.client.activate(&grant_body(("id_token", &eve), "HW-1"))).await, 400, "license_not_found");
    let ann = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
    let mut other = grant_body(("id_token", &ann), "HW-1");
    other["customer_account_code"] = json!("other");
    assert_error(&app.send(f.client.activate(&other)).await, 400, "license_not_found");
    let mut both = grant_body(("id_token", &ann), "HW-1");
    both["code"] = json!("c");
    assert_error(&app.send(f.client.activate(&both)).await, 400, "validation_error");
    assert_eq!(f.device_counts(&license).await, (0, 0));
}

// Tokens no provider would issue, signed or forged by the tests: each is refused like an unknown user
// and activates nothing, while the same mint's valid token activates (so each refusal has its cause).
async fn tokens_that_do_not_verify_activate_nothing(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(704, |_| {}).await;
    f.user(ANN.email, 94, &[(&license, 0)]).await;
    let key = MintKey::generate("k1");
    let mint = MintingIssuer::start(vec![key.clone()]).await;
    let app = resolver_instance(&f, &mint.issuer, KEY_REFETCH_INTERVAL).await;
    let valid = mint.claims(ANN.email, oidc::CLIENT_ID);
    let with = |field: &str, value: serde_json::Value| {
        let mut c = valid.clone();
        c[field] = value;
        c
    };
    let now = valid["iat"].as_u64().unwrap();
    let signed = key.sign(&valid);
    let (header, payload) = (signed.split('.').next().unwrap(), signed.split('.').nth(1).unwrap());
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let public_jwk = key.jwk().to_string();
    let hs256 = {
        let header = jsonwebtoken::Header { kid: Some("k1".into()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) };
        jsonwebtoken::encode(&header, &valid, &jsonwebtoken::EncodingKey::from_secret(public_jwk.as_bytes())).unwrap()
    };
    let bob_payload = b64(with("email", json!(BOB.email)));
    let cases = [
        ("expired", key.sign(&with("exp", json!(now - 3600)))),
        ("not yet valid", key.sign(&with("nbf", json!(now + 3600)))),
        ("wrong issuer", key.sign(&with("iss", json!("http://127.0.0.1:1")))),
        ("wrong audience", key.sign(&with("aud", json!("another-client")))),
        ("no expiry", key.sign(&{ let mut c = valid.clone(); c.as_object_mut().unwrap().remove("exp"); c })),
        ("alg none", format!("{}.{payload}.", b64(json!({"alg": "none", "kid": "k1"})))),
        ("HS256 keyed with the public key", hs256),
        ("tampered payload", format!("{header}.{bob_payload}.{}", signed.split('.').nth(2).unwrap())),
        ("unknown kid", MintKey::generate("k-forged").sign(&valid)),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    for (case, token) in &cases {
        let resp = app.send(f.client.activate(&grant_body(("id_token", token), "HW-1"))).await;
        assert_eq!(resp.status(), 400, "{case}: {}", String::from_utf8_lossy(resp.body()));
        assert_error(&resp, 400, "license_not_found");
    }
    assert_eq!(f.device_counts(&license).await, (0, 0));
    // Forged kids do not make the server refetch the keys each time: one fetch at discovery, none since.
    assert_eq!(mint.jwks_fetches(), 1);
    let resp = app.send(f.client.activate(&grant_body(("id_token", &signed), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("the valid minted token: {e}: {}", String::from_utf8_lossy(resp.body())));
}

// The provider rotates its key: a token under the new kid makes the server refetch the keys once, and
// verifies; a token under the retired key then no longer does.
async fn a_rotated_key_is_fetched_on_its_first_token(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(705, |_| {}).await;
    f.user(ANN.email, 95, &[(&license, 0)]).await;
    let (old, new) = (MintKey::generate("old"), MintKey::generate("new"));
    let mint = MintingIssuer::start(vec![old.clone()]).await;
    let app = resolver_instance(&f, &mint.issuer, Duration::ZERO).await;
    let claims = mint.claims(ANN.email, oidc::CLIENT_ID);
    let resp = app.send(f.client.check(&grant_body(("id_token", &old.sign(&claims)), "HW-1"))).await;
    assert_error(&resp, 400, "device_not_found");
    assert_eq!(mint.jwks_fetches(), 1);
    mint.rotate(vec![new.clone()]);
    let resp = app.send(f.client.activate(&grant_body(("id_token", &new.sign(&claims)), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("after rotation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(mint.jwks_fetches(), 2);
    let resp = app.send(f.client.check(&grant_body(("id_token", &old.sign(&claims)), "HW-1"))).await;
    assert_error(&resp, 400, "license_not_found");
}

// The customer account as the store keeps it (`Item::CustomerAccount`, secret sealed): it round-trips
// through the store, and the resolver reading it opens the secret and exchanges a real code with it.
async fn a_stored_customer_account_resolves_a_real_code(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(706, |_| {}).await;
    f.user(ANN.email, 96, &[(&license, 0)]).await;
    let (key, _) = SealingKey::generate().unwrap();
    let code = CustomerAccountCode::parse("acct").unwrap();
    let secret = SecretString::from(oidc::CLIENT_SECRET.to_owned());
    let record = CustomerAccountRecord {
        company: f.company.clone(),
        code: code.clone(),
        issuer: oidc::issuer(),
        client_id: oidc::CLIENT_ID.to_owned(),
        sealed_secret: key.seal(&secret, &CustomerAccountRecord::seal_context(&f.company, &code)).unwrap(),
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        email_claim: "email".to_owned(),
    };
    f.env.store.put_customer_account(&record).await.unwrap();
    let stored = f.env.store.customer_account(&f.company, &code).await.unwrap().expect("stored");
    assert_eq!(
        (stored.issuer.as_str(), stored.client_id.as_str(), &stored.redirect_uris, stored.email_claim.as_str()),
        (record.issuer.as_str(), oidc::CLIENT_ID, &record.redirect_uris, "email")
    );
    assert!(!stored.sealed_secret.as_str().contains(oidc::CLIENT_SECRET), "the secret is stored sealed");
    let accounts = StoredAccounts::new(f.env.store.clone(), Arc::new(key), std::time::Duration::from_secs(60));
    let resolver = OidcResolver::new(Arc::new(accounts), ProviderTransport::AllowPlainHttp);
    let app = f
        .env
        .configured_instance(|state| AppState { identity: Resolvers { sso: Some(Arc::new(resolver)) }, ..state })
        .await;
    let grant = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let resp = app.send(f.client.activate(&grant_body(("code", &grant), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(f.device_counts(&license).await, (1, 1));
}

// The catalog's `customer_accounts` are imported with the secret sealed (a catalog with them needs a
// sealing key), re-importing keeps the sealed secret, and the imported account resolves a real code.
async fn a_catalog_customer_account_is_imported_sealed_and_resolves(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(707, |_| {}).await;
    f.user(ANN.email, 97, &[(&license, 0)]).await;
    let catalog = Catalog::parse(
        &json!({"companies": [{"code": "c1", "id": 7, "customer_accounts": [{
            "code": "acct", "issuer": oidc::issuer(), "client_id": oidc::CLIENT_ID,
            "client_secret": oidc::CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]}]}]})
        .to_string(),
        "sso.json",
    )
    .expect("valid catalog");
    let err = import(f.store(), &catalog).await.unwrap_err().to_string();
    assert!(err.contains("customer_accounts") && err.contains("sealing key"), "{err}");
    let code = CustomerAccountCode::parse("acct").unwrap();
    assert!(f.store().customer_account(&f.company, &code).await.unwrap().is_none());
    let (key, key_text) = SealingKey::generate().unwrap();
    let key_text = key_text.expose_secret().to_owned();
    let report = import_sealed(f.store(), &catalog, Some(&key)).await.unwrap();
    assert_eq!(report.customer_accounts, 1);
    let first = f.store().customer_account(&f.company, &code).await.unwrap().expect("imported");
    assert_eq!(first.email_claim, "email", "the default claim");
    import_sealed(f.store(), &catalog, Some(&key)).await.unwrap();
    let again = f.store().customer_account(&f.company, &code).await.unwrap().unwrap();
    assert_eq!(again.sealed_secret.as_str(), first.sealed_secret.as_str(), "re-import keeps the sealed secret");
    // SSO comes with the sealing key (AppState::with_sso); HTTPS-only by default, so this plain-HTTP
    // provider is refused (a deployment error, logged) and nothing is activated.
    let sealing = SealingKey::from_text(&key_text).unwrap();
    let https_only = f
        .env
        .configured_instance(|state| state.with_sealing_key(Some(sealing)).with_sso(ProviderTransport::HttpsOnly))
        .await;
    let grant = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
    let resp = https_only.send(f.client.activate(&grant_body(("id_token", &grant), "HW-1"))).await;
    assert_eq!(resp.status(), 500, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(f.device_counts(&license).await, (0, 0));
    let sealing = SealingKey::from_text(&key_text).unwrap();
    let app = f
        .env
        .configured_instance(|state| {
            state.with_sealing_key(Some(sealing)).with_sso(ProviderTransport::AllowPlainHttp)
        })
        .await;
    let grant = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let resp = app.send(f.client.activate(&grant_body(("code", &grant), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
}

// A real code also checks and deactivates a single license (seed 000 lists `code` for deactivation):
// each code once, a replayed one deactivates nothing.
async fn a_real_code_checks_and_deactivates(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(709, |_| {}).await;
    f.user(ANN.email, 99, &[(&license, 0)]).await;
    let app = sso_instance(&f).await;
    for hw in ["HW-1", "HW-2"] {
        let token = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
        assert_eq!(app.send(f.client.activate(&grant_body(("id_token", &token), hw))).await.status(), 200);
    }
    let code = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let resp = app.send(f.client.check(&grant_body(("code", &code), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("check: {e}: {}", String::from_utf8_lossy(resp.body())));
    let code = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let resp = app.send(f.client.deactivate(&grant_body(("code", &code), "HW-1"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(f.device_counts(&license).await, (1, 2));
    let resp = app.send(f.client.deactivate(&grant_body(("code", &code), "HW-2"))).await;
    assert_error(&resp, 400, "license_not_found");
    assert_eq!(f.device_counts(&license).await, (1, 2), "the replayed code deactivated nothing");
}

// Bundles (seeds 001, 002; issue 16 item 7): a real id_token activates, checks and deactivates every
// member of the user's bundle; a real code activates and another deactivates, each once.
async fn real_grants_act_on_a_users_bundle(setup) {
    let f = Fixture::new(setup).await;
    crate::bundles::bundles(&f).await;
    let app = sso_instance(&f).await;
    let body = |grant: (&str, &str), hw: &str| {
        json!({"product": "ub", "hardware_id": hw, grant.0: grant.1, "customer_account_code": "acct"})
    };
    let token = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
    let resp = app.send(post(&f.client, "/api/v4/activate_bundle", &body(("id_token", &token), "sso-1"))).await;
    let items = verify_array(&f.client, &resp, "sso-1", ANN.email);
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["user"]["email"] == ANN.email && i["user"]["total_activations"] == 1), "{items:?}");
    let resp = app.send(check(&f.client, &body(("id_token", &token), "sso-1"))).await;
    let items = verify_array(&f.client, &resp, "sso-1", ANN.email);
    assert!(items.iter().all(|i| i["license_active"] == true && i["hardware_id"] == "sso-1"), "{items:?}");
    let resp = app.send(post(&f.client, "/api/v4/deactivate_bundle", &body(("id_token", &token), "sso-1"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(resp.body().as_ref(), b"license_deactivated");
    let by_name = json!({"product": "ub", "hardware_id": "sso-1", "username": ANN.email});
    assert_error(&app.send(check(&f.client, &by_name)).await, 400, "device_not_found");

    let code = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let resp = app.send(post(&f.client, "/api/v4/activate_bundle", &body(("code", &code), "sso-2"))).await;
    assert_eq!(verify_array(&f.client, &resp, "sso-2", ANN.email).len(), 2);
    let code = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let deactivate = body(("code", &code), "sso-2");
    let resp = app.send(post(&f.client, "/api/v4/deactivate_bundle", &deactivate)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_error(&app.send(check(&f.client, &json!({"product": "ub", "hardware_id": "sso-2", "username": ANN.email}))).await, 400, "device_not_found");
    // The code is spent: replayed, it names nobody.
    let resp = app.send(post(&f.client, "/api/v4/activate_bundle", &body(("code", &code), "sso-3"))).await;
    assert_error(&resp, 400, "license_not_found");
    let resp = app.send(post(&f.client, "/api/v4/deactivate_bundle", &deactivate)).await;
    assert_error(&resp, 400, "license_not_found");
}

// An offline request file names its license by license_key or username (SPEC §6.2, seed 003): a file
// carrying a single sign-on grant, alone or beside a username, is refused with a validation_error that
// says so, on the single and bundle endpoints, although SSO is configured; nothing is activated.
async fn an_offline_file_cannot_carry_a_single_sign_on_grant(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(708, |_| {}).await;
    f.user(ANN.email, 98, &[(&license, 0)]).await;
    let app = sso_instance(&f).await;
    let token = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
    let base = key_file(Kind::Activation, USER_PRODUCT, "unused", "off-sso", Some("off-sso"));
    let grants = [("id_token", token.as_str()), ("code", "a-code")];
    for ((grant, value), username) in grants.into_iter().flat_map(|g| [(g, None), (g, Some(ANN.email))]) {
        let mut file = RequestFile { license_key: None, username: username.map(Into::into), ..base.clone() };
        file.extra.insert(grant.into(), json!(value));
        file.extra.insert("customer_account_code".into(), json!("acct"));
        for path in ["/api/v4/activate_offline", "/api/v4/activate_bundle_offline"] {
            let text = file.encode(Shape::PythonActivation, SHARED_KEY);
            let resp = app.send(f.client.upload(path, "text/plain", text)).await;
            assert_error(&resp, 400, "validation_error");
            let message = String::from_utf8_lossy(resp.body()).into_owned();
            assert!(message.contains("single sign-on"), "{grant} {username:?} {path}: {message}");
        }
    }
    assert_eq!(f.device_counts(&license).await, (0, 0));
}
}
