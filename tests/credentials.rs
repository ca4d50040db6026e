//! SPEC §2.1, §4.1, §5.2: how a request names its license, and the username it names a user-based
//! license with — looked up case-insensitively, but echoed and signed exactly as the client sent it,
//! because clients re-derive `license_signature` from their own request.

use integration_tests::fixtures::{user_body, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::auth::Principal;
use license_api::error::ApiError;
use license_api::identity::{Resolvers, SsoResolver};
use license_api::ids::Username;
use license_api::model::LicenseType;
use license_api::request::{SsoGrant, SsoToken};
use license_api::state::AppState;
use license_api::time::Timestamp;
use serde_json::json;
use std::sync::Arc;

/// An identity provider that knows one ID token, for account `acct` of the principal's company: the
/// seam single sign-on plugs into. (The real OpenID Connect resolver is tested against a real provider.)
struct OneToken;

#[async_trait::async_trait]
impl SsoResolver for OneToken {
    async fn user(&self, principal: &Principal, grant: &SsoGrant) -> Result<Username, ApiError> {
        match &grant.grant {
            SsoToken::IdToken(t) if t == "token-of-ann" && grant.customer_account_code.as_str() == "acct" => {
                assert_eq!(principal.company.as_str(), "c1");
                Ok(Username::parse("Ann@Example.com").unwrap())
            }
            _ => Err(ApiError::LicenseNotFound("license user")),
        }
    }
}

fn sso_body(token: &str, hw: &str) -> serde_json::Value {
    json!({"product": USER_PRODUCT, "hardware_id": hw, "id_token": token, "customer_account_code": "acct"})
}

integration_tests::matrix! {
async fn naming_the_license_two_ways_is_a_validation_error(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(601, |_| {}).await;
    f.user("ann@example.com", 81, &[(&license, 0)]).await;
    let mut both = user_body("ann@example.com", "h1");
    both["license_key"] = json!("K-1");
    assert_error(&f.app.send(f.client.activate(&both)).await, 400, "validation_error");
    assert_error(&f.app.send(f.client.deactivate(&both)).await, 400, "validation_error");
    assert_error(&f.app.send(f.client.check(&both)).await, 400, "validation_error");
    // Nothing was activated by the rejected request.
    assert_eq!(f.device_counts(&license).await, (0, 0));
}

// Activation and check for a user whose login the client sends padded and in mixed case: the lookup
// still finds `ann@example.com`, while the echo and `license_signature` use the value as sent (a
// trimmed value would sign `hw#ann@example.com#…`, which the client's own message does not match).
async fn username_is_echoed_and_signed_as_sent(setup) {
    let f = Fixture::new(setup).await;
    let validity = Timestamp::parse_iso("2099-05-06T07:08:09.010Z").unwrap();
    let license = f
        .user_license(602, |l| {
            l.validity_period = Some(validity);
            l.terms.license_type = LicenseType::TimeLimited;
        })
        .await;
    f.user("ann@example.com", 82, &[(&license, 0)]).await;
    let sent = "  Ann@Example.com ";
    let body = user_body(sent, "HW-1");
    let resp = f.app.send(f.client.activate(&body)).await;
    let obj = f
        .client
        .verify_license(&resp, "HW-1", sent)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(obj["username"], sent);
    assert_eq!(obj["user"]["email"], "ann@example.com");
    assert_eq!(obj["validity_period"], "2099-05-06T07:08:09.010Z");
    let check = json!({"product": USER_PRODUCT, "hardware_id": "HW-1", "username": sent});
    let resp = f.app.send(f.client.check(&check)).await;
    f.client
        .verify_license(&resp, "HW-1", sent)
        .unwrap_or_else(|e| panic!("check: {e}: {}", String::from_utf8_lossy(resp.body())));
}

// Without single sign-on configured, a grant gets a clear 400 on every endpoint, and changes nothing.
async fn an_sso_grant_is_refused_where_single_sign_on_is_not_configured(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(603, |_| {}).await;
    f.user("ann@example.com", 83, &[(&license, 0)]).await;
    let body = sso_body("token-of-ann", "HW-1");
    for req in [f.client.activate(&body), f.client.check(&body), f.client.deactivate(&body)] {
        let resp = f.app.send(req).await;
        assert_error(&resp, 400, "validation_error");
        let text = String::from_utf8_lossy(resp.body());
        assert!(text.contains("single sign-on is not configured"), "{text}");
    }
    assert_eq!(f.device_counts(&license).await, (0, 0));
}

// A grant resolves to the user its provider names before the lookup: activation needs no password, and
// the answer is the one a username request gets (echoing and signing the user's email).
async fn an_sso_grant_names_the_user_its_provider_vouches_for(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(604, |_| {}).await;
    f.user("ann@example.com", 84, &[(&license, 0)]).await;
    let app = f
        .env
        .configured_instance(|state| AppState {
            identity: Resolvers { sso: Some(Arc::new(OneToken)) },
            ..state
        })
        .await;
    let resp = app.send(f.client.activate(&sso_body("token-of-ann", "HW-1"))).await;
    let obj = f
        .client
        .verify_license(&resp, "HW-1", "ann@example.com")
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(obj["user"]["email"], "ann@example.com");
    assert_eq!(f.device_counts(&license).await, (1, 1));
    let resp = app.send(f.client.check(&sso_body("token-of-ann", "HW-1"))).await;
    f.client
        .verify_license(&resp, "HW-1", "ann@example.com")
        .unwrap_or_else(|e| panic!("check: {e}: {}", String::from_utf8_lossy(resp.body())));
    // A token the provider does not vouch for activates nothing.
    let resp = app.send(f.client.activate(&sso_body("forged", "HW-2"))).await;
    assert_error(&resp, 400, "license_not_found");
    let resp = app.send(f.client.deactivate(&sso_body("token-of-ann", "HW-1"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(f.device_counts(&license).await, (0, 1));
}
}
