//! `GET /api/v4/user_licenses` (SPEC §9) on every setup: a license user's licenses on a product, each
//! `{license, user}`, proven by password the way activation proves them; wrong passwords and unknown
//! users answer alike; key-based products and license keys are refused.

use integration_tests::fixtures::{KEY_PRODUCT, PASSWORD, USER_PRODUCT};
use integration_tests::oidc::{self, Flow, ANN, REDIRECT_URI};
use integration_tests::{assert_error, Fixture};
use license_api::handlers::Endpoint;
use serde_json::{json, Value};

fn ask(username: &str, password: &str) -> Value {
    json!({"product": USER_PRODUCT, "username": username, "password": password})
}

integration_tests::matrix! {
// Every license of the user on the product, in assignment order, each with the user object of the
// user's seat on it; licenses of other users are not listed; the answer is signed.
async fn lists_every_license_of_the_user_on_the_product(setup) {
    let f = Fixture::new(setup).await;
    let first = f.user_license(901, |_| {}).await;
    let second = f.user_license(902, |l| l.max_activations = 7).await;
    let others = f.user_license(903, |_| {}).await;
    f.user("ann@example.com", 191, &[(&first, 2), (&second, 0)]).await;
    f.user("bob@example.com", 192, &[(&others, 1)]).await;
    let resp = f.app.send(f.client.call(Endpoint::UserLicenses, &ask(" Ann@Example.com", PASSWORD))).await;
    let body = f
        .client
        .verify_body(&resp)
        .unwrap_or_else(|e| panic!("user_licenses: {e}: {}", String::from_utf8_lossy(resp.body())));
    let body: Value = serde_json::from_slice(&body).unwrap();
    let entries = body.as_array().expect("an array");
    assert_eq!(entries.len(), 2, "{body}");
    assert_eq!(entries[0]["license"]["id"], 901);
    assert_eq!(entries[1]["license"]["id"], 902);
    assert_eq!(entries[1]["license"]["max_activations"], 7);
    assert_eq!(entries[0]["license"]["product_details"]["short_code"], USER_PRODUCT);
    for (entry, (max, unlimited)) in entries.iter().zip([(2, false), (0, true)]) {
        let user = &entry["user"];
        assert_eq!(user["email"], "ann@example.com");
        assert_eq!(user["id"], 191);
        assert_eq!(user["max_activations"], max);
        assert_eq!(user["allow_unlimited_activations"], unlimited);
        assert_eq!(entry["license"]["user"], *user);
        // No device: no device fields, variables or signature.
        for field in ["hardware_id", "device_id", "variables", "license_signature"] {
            assert!(entry["license"].get(field).is_none(), "{field}: {entry}");
        }
    }
    // A user without licenses of the product gets an empty list.
    f.user("cat@example.com", 193, &[]).await;
    let resp = f.app.send(f.client.call(Endpoint::UserLicenses, &ask("cat@example.com", PASSWORD))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(serde_json::from_slice::<Value>(resp.body()).unwrap(), json!([]));
}

// A wrong password and an unknown user answer the same `license_not_found`; a missing password,
// a missing username, a license key instead, and a key-based product are refused with their codes.
async fn refuses_wrong_credentials_alike(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(905, |_| {}).await;
    f.user("ann@example.com", 194, &[(&license, 1)]).await;
    let call = |params: Value| f.app.send(f.client.call(Endpoint::UserLicenses, &params));
    let wrong = call(ask("ann@example.com", "not her password")).await;
    assert_error(&wrong, 400, "license_not_found");
    let unknown = call(ask("nobody@example.com", PASSWORD)).await;
    assert_eq!(unknown.body(), wrong.body());
    assert_error(&call(json!({"product": USER_PRODUCT, "username": "ann@example.com"})).await, 400, "missing_parameters");
    assert_error(&call(json!({"product": USER_PRODUCT})).await, 400, "missing_parameters");
    assert_error(&call(json!({"product": USER_PRODUCT, "license_key": "K-1"})).await, 400, "validation_error");
    let key_product = json!({"product": KEY_PRODUCT, "username": "ann@example.com", "password": PASSWORD});
    assert_error(&call(key_product).await, 400, "validation_error");
    let unknown_product = json!({"product": "nope", "username": "ann@example.com", "password": PASSWORD});
    assert_error(&call(unknown_product).await, 400, "unknown_product");
}

// A real ID token from the test run's identity provider names the user without a password (the
// existing single sign-on resolver); an instance without a resolver refuses the grant.
async fn a_single_sign_on_grant_names_the_user(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(906, |_| {}).await;
    f.user(ANN.email, 195, &[(&license, 1)]).await;
    let app = crate::sso::sso_instance(&f).await;
    let token = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
    let params = json!({"product": USER_PRODUCT, "id_token": token, "customer_account_code": "acct"});
    let resp = app.send(f.client.call(Endpoint::UserLicenses, &params)).await;
    let body = f
        .client
        .verify_body(&resp)
        .unwrap_or_else(|e| panic!("user_licenses: {e}: {}", String::from_utf8_lossy(resp.body())));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body[0]["license"]["id"], 906);
    assert_eq!(body[0]["user"]["email"], ANN.email);
    // Without a resolver (the fixture's app), a grant is refused with a clear answer.
    assert_error(&f.app.send(f.client.call(Endpoint::UserLicenses, &params)).await, 400, "validation_error");
}
}
