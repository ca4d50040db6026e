//! Single sign-on (SPEC §2.1, §7) against the real OpenID Connect provider the run starts
//! (`scripts/lib/oidc-provider.sh`). So far: the harness itself — a headless login yields the grants a
//! relying party gets from a real provider. The server-side resolver's tests come with it.

use base64::Engine;
use integration_tests::oidc::{self, Flow, ANN, BOB, REDIRECT_URI};

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
