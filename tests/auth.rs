//! SPEC §1: authentication errors, transport errors and the error body shape, through the Lambda adapter.

use bytes::Bytes;
use http::Method;
use integration_tests::fixtures::{key_body, KEY_PRODUCT};
use integration_tests::{assert_error, error_of, Fixture};
use license_api::auth::Access;
use license_api::client::LicenseClient;
use license_api::handlers::endpoints::Input;
use license_api::handlers::Endpoint;
use serde_json::json;
use std::time::{Duration, SystemTime};

fn raw(method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> http::Request<Bytes> {
    let mut b = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Bytes::from(body.to_owned())).unwrap()
}

fn now_date() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

const ACTIVATE: &str = "/api/v4/activate_license";

/// The access SPEC §1.2 gives an endpoint, from the rule rather than from the endpoint table (which the
/// server enforces, so it cannot be its own check): no key for the root probe and the OAuth endpoints
/// (`oauth_url`, the token endpoint, which authenticates the OAuth client itself), and `read_only_api_key`
/// on a state-changing endpoint — every one but the GETs, which only read, except `trial_key`, a GET
/// that creates a license (SPEC §9).
fn spec_access(endpoint: Endpoint) -> Option<Access> {
    match endpoint.method() {
        // SPEC §1.2: "every endpoint except `GET /` and the OAuth token discovery" (§7: `oauth_url`).
        _ if matches!(endpoint, Endpoint::Root | Endpoint::OauthUrl | Endpoint::OauthToken) => None,
        _ if endpoint == Endpoint::TrialKey => Some(Access::Write),
        Method::GET => Some(Access::Read),
        _ => Some(Access::Write),
    }
}

#[test]
fn spec_hmac_test_vector_through_the_client() {
    let client = LicenseClient::new("k", "kw4qSnpSwXzgiv5yxYpZZmFEd9QAeiKTQ6OuyMja", "");
    let header = client.authorization("Tue, 07 Jun 2011 20:51:35 GMT");
    assert!(
        header.contains(r#"signature="UDysfR6MndUZReo07Y9r+vErn8vSxrnQ5ulit18iJ/Q=""#),
        "{header}"
    );
}

integration_tests::matrix! {
async fn missing_and_malformed_authorization(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("K-1", |_| {}).await;
    let body = key_body("K-1", "h1").to_string();
    let date = now_date();
    let auth = f.client.authorization(&date);

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "missing_headers"),
        (vec![("date", &date)], "missing_headers"),
        (vec![("authorization", &auth)], "missing_headers"),
        (
            vec![("date", &date), ("authorization", "garbage")],
            "authorization_invalid_headers",
        ),
        (
            vec![
                ("date", &date),
                (
                    "authorization",
                    r#"algorithm="hmac-sha256",headers="host",signature="x",apikey="api-key-1""#,
                ),
            ],
            "authorization_invalid_headers",
        ),
        (
            vec![
                ("date", &date),
                (
                    "authorization",
                    r#"algorithm="hmac-sha256",headers="date",apikey="api-key-1""#,
                ),
            ],
            "authorization_missing_params",
        ),
        (
            vec![
                ("date", &date),
                ("authorization", r#"headers="date",signature="x",apikey="api-key-1""#),
            ],
            "authorization_missing_params",
        ),
        (
            vec![
                ("date", &date),
                (
                    "authorization",
                    r#"algorithm="hmac-sha1",headers="date",signature="x",apikey="api-key-1""#,
                ),
            ],
            "hmac_required",
        ),
        (
            vec![("date", "not a date"), ("authorization", &auth)],
            "date_header_diff",
        ),
    ];
    for (headers, code) in cases {
        let resp = f.app.send(raw(Method::POST, ACTIVATE, &headers, &body)).await;
        assert_error(&resp, 400, code);
    }
}

async fn date_window_is_fifteen_minutes_both_ways(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("K-1", |_| {}).await;
    let body = || Some(key_body("K-1", "h1").to_string().into_bytes());
    for offset in [-16i64 * 60, 16 * 60] {
        let t = if offset < 0 {
            SystemTime::now() - Duration::from_secs(16 * 60)
        } else {
            SystemTime::now() + Duration::from_secs(16 * 60)
        };
        let req = f
            .client
            .request_dated(Method::POST, ACTIVATE, body(), &httpdate::fmt_http_date(t));
        assert_error(&f.app.send(req).await, 400, "date_header_diff");
    }
    let t = SystemTime::now() - Duration::from_secs(14 * 60);
    let req = f
        .client
        .request_dated(Method::POST, ACTIVATE, body(), &httpdate::fmt_http_date(t));
    assert_eq!(f.app.send(req).await.status(), 200);
}

async fn api_key_states(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("K-1", |_| {}).await;
    let body = key_body("K-1", "h1");

    let unknown = LicenseClient::new("nobody", "x", f.app.public_key_pem());
    assert_error(&f.app.send(unknown.activate(&body)).await, 400, "invalid_api_key");

    let revoked = f.put_key("revoked-key", |k| k.revoked = true).await;
    assert_error(&f.app.send(revoked.activate(&body)).await, 400, "revoked_api_key");

    let wrong_secret = LicenseClient::new("api-key-1", "not-the-secret", f.app.public_key_pem());
    assert_error(
        &f.app.send(wrong_secret.activate(&body)).await,
        400,
        "signature_mismatch",
    );

    let read_only = f.put_key("ro-key", |k| k.read_only = true).await;
    assert_error(&f.app.send(read_only.activate(&body)).await, 400, "read_only_api_key");
    assert_error(&f.app.send(read_only.deactivate(&body)).await, 400, "read_only_api_key");
    // Read-only keys may check: the answer is about the device, not the key.
    assert_error(&f.app.send(read_only.check(&body)).await, 400, "license_not_active");

    let restricted = f
        .put_key("restricted-key", |k| {
            k.products = vec![integration_tests::fixtures::product_code("other")]
        })
        .await;
    assert_error(
        &f.app.send(restricted.activate(&body)).await,
        400,
        "api_key_product_not_allowed",
    );
    let allowed = f
        .put_key("allowed-key", |k| {
            k.products = vec![integration_tests::fixtures::product_code(KEY_PRODUCT)]
        })
        .await;
    assert_eq!(f.app.send(allowed.activate(&body)).await.status(), 200);
}

async fn apikey_parameter_is_case_insensitive_and_spaces_are_tolerated(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("K-1", |_| {}).await;
    let date = now_date();
    let sig = license_api::auth::hmac_base64(
        integration_tests::fixtures::SHARED_KEY,
        license_api::auth::signing_message(&date).as_bytes(),
    );
    let auth = format!(r#"algorithm="hmac-sha256", headers="date", signature="{sig}", apiKey="api-key-1""#);
    let body = key_body("K-1", "h1").to_string();
    let resp = f
        .app
        .send(raw(
            Method::POST,
            ACTIVATE,
            &[("date", &date), ("authorization", &auth)],
            &body,
        ))
        .await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}

async fn unrouted_requests_get_the_error_shape(setup) {
    let f = Fixture::new(setup).await;
    let c = &f.client;
    // On AWS these reach the HTTP API's `$default` route function; the server routes them itself.
    for (method, path, status, code) in [
        (Method::GET, "/api/v4/no_such_endpoint", 404, "not_found"),
        (Method::POST, "/nope", 404, "not_found"),
        (Method::DELETE, "/api/v4/activate_license/extra", 404, "not_found"),
        (Method::POST, "/api/v4/check_license", 405, "method_not_allowed"),
        (Method::PUT, ACTIVATE, 405, "method_not_allowed"),
        (Method::HEAD, "/api/v4/deactivate_license", 405, "method_not_allowed"),
        (Method::DELETE, "/", 405, "method_not_allowed"),
    ] {
        let resp = f.app.send(c.request(method.clone(), path, None)).await;
        if method == Method::HEAD {
            assert_eq!(resp.status(), status, "HEAD {path}");
            assert!(resp.body().is_empty());
        } else {
            assert_error(&resp, status, code);
        }
    }
}

async fn transport_errors_use_the_error_shape(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("K-1", |_| {}).await;
    let c = &f.client;

    let root = f.app.send(raw(Method::GET, "/", &[], "")).await;
    assert_eq!(root.status(), 200);

    assert_error(
        &f.app
            .send(c.request(Method::GET, "/api/v4/no_such_endpoint", None))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &f.app.send(c.request(Method::GET, ACTIVATE, None)).await,
        405,
        "method_not_allowed",
    );
    assert_error(
        &f.app
            .send(c.request(Method::POST, ACTIVATE, Some(b"{not json".to_vec())))
            .await,
        400,
        "invalid_json",
    );
    assert_error(
        &f.app.send(c.request(Method::POST, ACTIVATE, Some(b"".to_vec()))).await,
        400,
        "invalid_json",
    );
    assert_error(
        &f.app
            .send(c.request(Method::POST, ACTIVATE, Some(b"[1,2]".to_vec())))
            .await,
        400,
        "validation_error",
    );
    assert_error(
        &f.app
            .send(c.activate(&json!({"product": KEY_PRODUCT, "license_key": "K-1"})))
            .await,
        400,
        "missing_parameters",
    );
    assert_error(
        &f.app
            .send(c.activate(&json!({"product": KEY_PRODUCT, "hardware_id": "h"})))
            .await,
        400,
        "missing_parameters",
    );
    let bad_id = json!({"product": KEY_PRODUCT, "hardware_id": "h", "license_key": "K-1", "license_id": "abc"});
    assert_error(&f.app.send(c.activate(&bad_id)).await, 400, "validation_error");
    let both_sso =
        json!({"product": KEY_PRODUCT, "hardware_id": "h", "id_token": "a", "code": "b", "customer_account_code": "c"});
    assert_error(&f.app.send(c.activate(&both_sso)).await, 400, "validation_error");
    let huge = json!({"product": KEY_PRODUCT, "hardware_id": "h", "license_key": "K-1", "pad": "x".repeat(70_000)});
    assert_error(&f.app.send(c.activate(&huge)).await, 413, "payload_too_large");
    let long_hw = json!({"product": KEY_PRODUCT, "hardware_id": "h".repeat(600), "license_key": "K-1"});
    assert_error(&f.app.send(c.activate(&long_hw)).await, 400, "validation_error");
    let not_utf8 = c.request(Method::POST, ACTIVATE, Some(vec![b'{', 0xff, 0xfe, b'}']));
    assert_error(&f.app.send(not_utf8).await, 400, "invalid_json");
}

// Each endpoint enforces the access the SPEC gives it: a key is asked for by every endpoint but the root
// probe, and a read-only key is refused by exactly the state-changing ones. The endpoint table is where
// the server takes an endpoint's access from (its handlers state none), so a wrong row there fails here.
async fn every_endpoint_enforces_its_declared_access(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("K-1", |_| {}).await;
    let read_only = f.put_key("ro-key", |k| k.read_only = true).await;
    let unknown = LicenseClient::new("nobody", "x", f.app.public_key_pem());
    let mut body = key_body("K-1", "h1");
    // What `oauth_url` needs; the license endpoints ignore it (an unknown field, SPEC §1).
    body["login_type"] = json!("client_credentials");
    let request = |client: &LicenseClient, endpoint: Endpoint| match endpoint.descriptor().input {
        Input::Upload => client.upload(endpoint.path(), "text/plain", ""),
        Input::Params | Input::Nothing => client.call(endpoint, &body),
        Input::Form => {
            let mut req = client.request(endpoint.method(), endpoint.path(), Some(b"grant_type=client_credentials".to_vec()));
            req.headers_mut().insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
            req
        }
    };
    for endpoint in Endpoint::ALL {
        let from_read_only = f.app.send(request(&read_only, endpoint)).await;
        let from_unknown = f.app.send(request(&unknown, endpoint)).await;
        match spec_access(endpoint) {
            Some(access) => {
                assert_error(&from_unknown, 400, "invalid_api_key");
                let refused = from_read_only.status() == 400 && error_of(&from_read_only).1 == "read_only_api_key";
                assert_eq!(refused, access == Access::Write, "{endpoint:?} needs {access:?}");
            }
            None => {
                // The token endpoint answers by the OAuth client's credentials (none here: a 401
                // `invalid_client`, not an API key's error); the others answer.
                let status = if endpoint == Endpoint::OauthToken { 401 } else { 200 };
                assert_eq!(from_unknown.status(), status, "{endpoint:?} needs no key");
                assert_eq!(from_read_only.status(), status, "{endpoint:?} needs no key");
            }
        }
    }
}
}
