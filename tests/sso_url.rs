//! `GET /api/v4/sso_url` (SPEC §7, docs/sso.md) on every setup, against the real OpenID Connect provider
//! the run starts: the URL it answers is followed through the provider's own login (headless), and the
//! `code` or `id_token` the provider redirects with — carrying the nonce the server minted — activates.
//! Nonces of the server's format that it did not mint for that account, or that expired, are refused;
//! a nonce of another format (the application's own login) is the application's business.

use integration_tests::fixtures::{KEY_PRODUCT, USER_PRODUCT};
use integration_tests::oidc::{
    self, claims, grant_body, Flow, MintKey, MintingIssuer, ANN, OTHER_REDIRECT_URI, REDIRECT_URI,
};
use integration_tests::{assert_error, Fixture, Instance};
use license_api::handlers::Endpoint;
use license_api::identity::nonce::{NonceKey, NONCE_LIFETIME};
use license_api::identity::oidc::ProviderTransport;
use license_api::ids::{CompanyId, CustomerAccountCode};
use license_api::model::CustomerAccountRecord;
use license_api::sealed::SealingKey;
use license_api::secret::ExposeSecret;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use url::Url;

/// The sealing key of a deployment, as text: each instance (function) opens its own copy of it.
fn sealing_key_text() -> String {
    SealingKey::generate().unwrap().1.expose_secret().to_owned()
}

/// Stores the customer account `acct` of the fixture's company, tied to the provider at `issuer`, its
/// secret sealed with `key`.
async fn store_account(f: &Fixture, key: &str, issuer: &str) {
    let key = SealingKey::from_text(key).unwrap();
    let code = CustomerAccountCode::parse("acct").unwrap();
    let context = CustomerAccountRecord::seal_context(&f.company, &code);
    let record = CustomerAccountRecord {
        company: f.company.clone(),
        code,
        issuer: issuer.to_owned(),
        client_id: oidc::CLIENT_ID.to_owned(),
        sealed_secret: key.seal(&oidc::CLIENT_SECRET.to_owned().into(), &context).unwrap(),
        redirect_uris: vec![REDIRECT_URI.to_owned(), OTHER_REDIRECT_URI.to_owned()],
        email_claim: "email".to_owned(),
    };
    f.env.store.put_customer_account(&record).await.unwrap();
}

/// An instance configured as a deployment is: SSO from the stored customer accounts, with the sealing
/// key (plain HTTP opted into: the providers are on loopback).
async fn deployment(f: &Fixture, key: &str) -> Instance {
    let key = SealingKey::from_text(key).unwrap();
    f.env
        .configured_instance(|state| {
            state
                .with_sealing_key(Some(key))
                .with_sso(ProviderTransport::AllowPlainHttp)
        })
        .await
}

/// A deployment whose account `acct` is tied to the test run's provider; and its sealing key.
async fn sso_deployment(f: &Fixture) -> (Instance, String) {
    let key = sealing_key_text();
    store_account(f, &key, &oidc::issuer()).await;
    (deployment(f, &key).await, key)
}

fn url_request(response_type: &str) -> serde_json::Value {
    json!({"product": USER_PRODUCT, "customer_account_code": "acct", "response_type": response_type})
}

/// Asks `app` for a sign-in URL; the answer is signed and is exactly `{"url": ...}`.
async fn sign_in_url(f: &Fixture, app: &Instance, params: &serde_json::Value) -> Url {
    let resp = app.send(f.client.call(Endpoint::SsoUrl, params)).await;
    let body = f
        .client
        .verify_body(&resp)
        .unwrap_or_else(|e| panic!("sso_url: {e}: {}", String::from_utf8_lossy(resp.body())));
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    Url::parse(body["url"].as_str().expect("a url")).expect("an absolute URL")
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Checks the authorization request a sign-in URL makes, and returns its state and nonce.
fn check_authorization_request(url: &Url, response_type: &str, redirect_uri: &str) -> (String, String) {
    assert_eq!(
        format!("{}{}", url.origin().ascii_serialization(), url.path()),
        format!("{}/auth", oidc::issuer()),
        "the provider's authorization_endpoint: {url}"
    );
    let q = query(url);
    assert_eq!(q["client_id"], oidc::CLIENT_ID, "{url}");
    assert_eq!(q["response_type"], response_type, "{url}");
    assert_eq!(q["scope"], "openid email", "{url}");
    assert_eq!(q["redirect_uri"], redirect_uri, "{url}");
    assert_eq!(
        q.len(),
        6,
        "client_id, response_type, scope, redirect_uri, state, nonce: {url}"
    );
    assert!(q["state"].len() >= 22, "{url}");
    assert!(q["nonce"].starts_with("sso-v1."), "{url}");
    (q["state"].clone(), q["nonce"].clone())
}

integration_tests::matrix! {
// The authorization-code grant end to end: the URL sso_url answers, followed through the provider's
// login, yields a real code (the provider puts our nonce in the ID token it exchanges it for), and the
// code activates the license of the user who logged in. The default grant is the code grant.
async fn a_sign_in_url_leads_to_a_code_that_activates(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(801, |_| {}).await;
    f.user(ANN.email, 181, &[(&license, 0)]).await;
    let (app, _) = sso_deployment(&f).await;
    let url = sign_in_url(&f, &app, &url_request("code")).await;
    let (state, nonce) = check_authorization_request(&url, "code", REDIRECT_URI);
    let default = sign_in_url(&f, &app, &json!({"product": USER_PRODUCT, "customer_account_code": "acct"})).await;
    let (other_state, other_nonce) = check_authorization_request(&default, "code", REDIRECT_URI);
    assert!(state != other_state && nonce != other_nonce, "fresh state and nonce per URL");
    let redirect = oidc::follow(ANN, &url, REDIRECT_URI).await;
    let code = oidc::grant_from(&redirect, Flow::Code, &state);
    let resp = app.send(f.client.activate(&grant_body(("code", &code), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(f.device_counts(&license).await, (1, 1));
}

// The implicit grant: `token` asks the provider for an `id_token` (SPEC §7), which comes back in the
// fragment of the redirect the client named (one of the account's), carrying our nonce, and activates.
async fn a_sign_in_url_for_token_leads_to_an_id_token_with_our_nonce(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(802, |_| {}).await;
    f.user(ANN.email, 182, &[(&license, 0)]).await;
    let (app, key) = sso_deployment(&f).await;
    let mut params = url_request("token");
    params["redirect_uri"] = json!(OTHER_REDIRECT_URI);
    let url = sign_in_url(&f, &app, &params).await;
    let (state, nonce) = check_authorization_request(&url, "id_token", OTHER_REDIRECT_URI);
    let redirect = oidc::follow(ANN, &url, OTHER_REDIRECT_URI).await;
    let token = oidc::grant_from(&redirect, Flow::IdToken, &state);
    assert_eq!(claims(&token)["nonce"], nonce.as_str());
    let resp = app.send(f.client.activate(&grant_body(("id_token", &token), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    // The same token checks on another instance (function) of the deployment: the nonce is verified
    // with the key every instance derives from the sealing key, not with memory of this one.
    let other_instance = deployment(&f, &key).await;
    let resp = other_instance.send(f.client.check(&grant_body(("id_token", &token), "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", ANN.email)
        .unwrap_or_else(|e| panic!("check: {e}: {}", String::from_utf8_lossy(resp.body())));
}

// ID tokens whose nonce has our format but that we did not mint for that account, or that expired, are
// refused like any grant the provider does not vouch for, and activate nothing; our own valid nonce and
// a nonce of another format (the application ran its own login) are accepted. Minted tokens: a real
// provider signs whatever nonce it is given, so the cases are the nonces, not the signatures.
async fn a_nonce_of_our_format_must_be_ours_for_the_account_and_fresh(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(803, |_| {}).await;
    f.user(ANN.email, 183, &[(&license, 0)]).await;
    let signing = MintKey::generate("k1");
    let mint = MintingIssuer::start(vec![signing.clone()]).await;
    let key = sealing_key_text();
    store_account(&f, &key, &mint.issuer).await;
    let app = deployment(&f, &key).await;
    // A sign-in URL asks the provider for its discovery document only: the keys wait for a token.
    let url = sign_in_url(&f, &app, &url_request("token")).await;
    assert!(url.as_str().starts_with(&format!("{}/auth?", mint.issuer)), "{url}");
    assert_eq!(mint.jwks_fetches(), 0);
    let nonces = NonceKey::derived(&SealingKey::from_text(&key).unwrap());
    let acct = CustomerAccountCode::parse("acct").unwrap();
    let now = SystemTime::now();
    let ours = nonces.mint(&f.company, &acct, now).unwrap();
    let (head, mac) = ours.rsplit_once('.').unwrap();
    let flipped = format!("{head}.{}{}", if mac.starts_with('A') { "B" } else { "A" }, &mac[1..]);
    let expired = nonces.mint(&f.company, &acct, now - NONCE_LIFETIME - Duration::from_secs(120)).unwrap();
    let other_account = nonces.mint(&f.company, &CustomerAccountCode::parse("other").unwrap(), now).unwrap();
    let other_company = nonces.mint(&CompanyId::parse("another-company").unwrap(), &acct, now).unwrap();
    let other_deployment = NonceKey::derived(&SealingKey::generate().unwrap().0).mint(&f.company, &acct, now).unwrap();
    let token = |nonce: &str| {
        let mut c = mint.claims(ANN.email, oidc::CLIENT_ID);
        c["nonce"] = json!(nonce);
        signing.sign(&c)
    };
    let refused = [
        ("altered MAC", flipped),
        ("expired", expired),
        ("minted for another account", other_account),
        ("minted for another company", other_company),
        ("minted by another deployment", other_deployment),
        ("our prefix, not our shape", "sso-v1.garbage".to_owned()),
    ];
    for (case, nonce) in &refused {
        let resp = app.send(f.client.activate(&grant_body(("id_token", &token(nonce)), "HW-1"))).await;
        assert_eq!(resp.status(), 400, "{case}: {}", String::from_utf8_lossy(resp.body()));
        assert_error(&resp, 400, "license_not_found");
    }
    assert_eq!(f.device_counts(&license).await, (0, 0));
    for (hw, nonce) in [("HW-1", ours.as_str()), ("HW-2", "the-applications-own-nonce")] {
        let resp = app.send(f.client.activate(&grant_body(("id_token", &token(nonce)), hw))).await;
        f.client
            .verify_license(&resp, hw, ANN.email)
            .unwrap_or_else(|e| panic!("nonce {nonce}: {e}: {}", String::from_utf8_lossy(resp.body())));
    }
}

// Requests sso_url refuses, each with its SPEC code, before the provider is asked anything.
async fn sign_in_url_requests_are_checked(setup) {
    let f = Fixture::new(setup).await;
    let (app, _) = sso_deployment(&f).await;
    let send = |params: serde_json::Value| {
        let req = f.client.call(Endpoint::SsoUrl, &params);
        async { app.send(req).await }
    };
    let with = |field: &str, value: &str| {
        let mut p = url_request("code");
        p[field] = json!(value);
        p
    };
    assert_error(&send(with("redirect_uri", "https://attacker.example/cb")).await, 400, "validation_error");
    for bad in ["id_token", "password", "CODE"] {
        assert_error(&send(with("response_type", bad)).await, 400, "validation_error");
    }
    assert_error(&send(with("customer_account_code", "nobody")).await, 400, "license_not_found");
    assert_error(&send(with("product", "no-such-product")).await, 400, "unknown_product");
    assert_error(&send(with("product", KEY_PRODUCT)).await, 400, "validation_error");
    assert_error(&send(json!({"product": USER_PRODUCT})).await, 400, "missing_parameters");
    assert_error(&send(json!({"customer_account_code": "acct"})).await, 400, "missing_parameters");
    // On a deployment without single sign-on (no sealing key).
    let resp = f.app.send(f.client.call(Endpoint::SsoUrl, &url_request("code"))).await;
    assert_error(&resp, 400, "validation_error");
}
}
