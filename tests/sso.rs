//! Single sign-on (SPEC §2.1, §7) against the real OpenID Connect provider the run starts
//! (`scripts/lib/oidc-provider.sh`): the harness itself (a headless login yields the grants a relying
//! party gets from a real provider), then the OpenID Connect resolver with real grants on every setup.

use base64::Engine;
use integration_tests::fixtures::USER_PRODUCT;
use integration_tests::oidc::{self, Flow, ANN, BOB, EVE, OTHER_REDIRECT_URI, REDIRECT_URI};
use integration_tests::{assert_error, Fixture, Instance};
use license_api::identity::oidc::{FixedAccounts, OidcResolver, ProviderAccount, ProviderTransport};
use license_api::identity::Resolvers;
use license_api::ids::CustomerAccountCode;
use license_api::state::AppState;
use serde_json::json;
use std::sync::Arc;

/// The claims of a JWT, unverified: the harness checks what the provider issued, not its signature.
fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

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

/// The customer account `acct` of the fixture's company, tied to the test provider.
fn account(f: &Fixture) -> ProviderAccount {
    ProviderAccount {
        company: f.company.clone(),
        code: CustomerAccountCode::parse("acct").unwrap(),
        issuer: oidc::issuer(),
        client_id: oidc::CLIENT_ID.to_owned(),
        client_secret: oidc::CLIENT_SECRET.to_owned().into(),
        redirect_uris: vec![REDIRECT_URI.to_owned(), OTHER_REDIRECT_URI.to_owned()],
        email_claim: "email".to_owned(),
    }
}

/// An instance whose SSO grants are verified by the OpenID Connect resolver against the test provider
/// (plain HTTP opted into: the provider is on loopback).
async fn sso_instance(f: &Fixture) -> Instance {
    let resolver = OidcResolver::new(
        Arc::new(FixedAccounts(vec![account(f)])),
        ProviderTransport::AllowPlainHttp,
    )
    .expect("TLS roots");
    f.env
        .configured_instance(|state| AppState {
            identity: Resolvers {
                sso: Some(Arc::new(resolver)),
            },
            ..state
        })
        .await
}

fn grant_body(grant: (&str, &str), hw: &str) -> serde_json::Value {
    json!({"product": USER_PRODUCT, "hardware_id": hw, grant.0: grant.1, "customer_account_code": "acct"})
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
}
