//! The lifecycle of the Management API's resources (docs/management-resources.md) on every setup: a
//! disabled license user answered by the License API as an unknown one (yet free to deactivate), then
//! enabled again; License API keys and OAuth clients updated and deleted, as the License API then sees
//! them; and an `Idempotency-Key` on every create, including those whose answer holds a secret.

use crate::management::{audited_via_api as audited, call, new_key, request};
use integration_tests::fixtures::{key_body, user_body, KEY_PRODUCT, PASSWORD, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::handlers::Endpoint;
use license_api::sealed::SealingKey;
use license_api::time::Timestamp;
use serde_json::{json, Value};

fn with_key(mut req: http::Request<bytes::Bytes>, key: &str) -> http::Request<bytes::Bytes> {
    req.headers_mut().insert("idempotency-key", key.parse().unwrap());
    req
}

integration_tests::matrix! {
    async fn a_disabled_user_is_answered_as_an_unknown_one_until_enabled(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let license = f.user_license(61, |l| l.max_activations = 3).await;
        f.user("ann@example.com", 161, &[(&license, 3)]).await;
        assert_eq!(f.app.send(f.client.activate(&user_body("ann@example.com", "h1"))).await.status(), 200);
        let (status, disabled) = call(&f, "POST", "/users/ann@example.com/disable", &token, None).await;
        assert_eq!((status, disabled["disabled"].clone()), (200, json!(true)), "{disabled}");
        assert_eq!(call(&f, "POST", "/users/ann@example.com/disable", &token, None).await.0, 200, "again: nothing changes");

        // Every answer is the one an unknown user gets, byte for byte.
        let unknown = "nobody@example.com";
        let pairs = [
            (f.client.activate(&user_body("ann@example.com", "h2")), f.client.activate(&user_body(unknown, "h2"))),
            (f.client.check(&user_body("ann@example.com", "h1")), f.client.check(&user_body(unknown, "h1"))),
            (
                f.client.call(Endpoint::UserLicenses, &json!({"product": USER_PRODUCT, "username": "ann@example.com", "password": PASSWORD})),
                f.client.call(Endpoint::UserLicenses, &json!({"product": USER_PRODUCT, "username": unknown, "password": PASSWORD})),
            ),
            (
                f.client.call(Endpoint::ChangePassword, &json!({"username": "ann@example.com", "password": PASSWORD, "new_password": "a new secret"})),
                f.client.call(Endpoint::ChangePassword, &json!({"username": unknown, "password": PASSWORD, "new_password": "a new secret"})),
            ),
        ];
        for (disabled, unknown) in pairs {
            let (disabled, unknown) = (f.app.send(disabled).await, f.app.send(unknown).await);
            assert!(disabled.status().is_client_error(), "{}", String::from_utf8_lossy(disabled.body()));
            assert_eq!((disabled.status(), disabled.body()), (unknown.status(), unknown.body()));
        }
        assert_error(&f.app.send(f.client.activate(&user_body("ann@example.com", "h2"))).await, 400, "license_not_found");

        // Freeing a seat stays possible, as for a disabled license.
        assert_eq!(f.app.send(f.client.deactivate(&user_body("ann@example.com", "h1"))).await.status(), 200);
        assert_eq!(f.seat_now(&license, "ann@example.com").await.total_activations, 0);

        let (status, enabled) = call(&f, "POST", "/users/ann@example.com/enable", &token, None).await;
        assert_eq!((status, enabled["disabled"].clone()), (200, json!(false)));
        assert_eq!(f.app.send(f.client.activate(&user_body("ann@example.com", "h2"))).await.status(), 200, "enabled again");
        assert_error(&f.app.send(request("POST", "/users/nobody@example.com/disable", Some(&token), None)).await, 404, "not_found");

        let user = "user:ann@example.com".to_owned();
        let expected = vec![("user.disable".to_owned(), user.clone()), ("user.enable".to_owned(), user)];
        assert_eq!(audited(&f, &token, &actor).await, expected, "one record per change; the repeat and the refusal none");
    }

    async fn an_api_key_is_updated_and_deleted_only_once_revoked(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        f.key_license("UP-1", |_| ()).await;
        let (status, created) = call(&f, "POST", "/api-keys", &token, Some(json!({"api_key": "k-1", "products": [KEY_PRODUCT]}))).await;
        assert_eq!(status, 201, "{created}");
        let client = f.app.client("k-1", created["shared_key"].as_str().unwrap());
        assert_eq!(f.app.send(client.activate(&key_body("UP-1", "h1"))).await.status(), 200);

        let (status, updated) = call(&f, "PATCH", "/api-keys/k-1", &token, Some(json!({"read_only": true}))).await;
        assert_eq!((status, updated["read_only"].clone(), updated["products"].clone()), (200, json!(true), json!([KEY_PRODUCT])), "{updated}");
        assert_error(&f.app.send(client.activate(&key_body("UP-1", "h2"))).await, 400, "read_only_api_key");
        assert_eq!(f.app.send(client.check(&key_body("UP-1", "h1"))).await.status(), 200, "a read-only key still reads");
        let (status, narrowed) = call(&f, "PATCH", "/api-keys/k-1", &token, Some(json!({"products": [USER_PRODUCT]}))).await;
        assert_eq!((status, narrowed["products"].clone(), narrowed["read_only"].clone()), (200, json!([USER_PRODUCT]), json!(true)));
        assert!(!f.app.send(client.check(&key_body("UP-1", "h1"))).await.status().is_success(), "no longer its product");
        for bad in [json!({"products": ["nope"]}), json!({"shared_key": "x"}), json!({"read_only": "yes"})] {
            assert_error(&f.app.send(request("PATCH", "/api-keys/k-1", Some(&token), Some(bad))).await, 400, "validation_error");
        }

        assert_error(&f.app.send(request("DELETE", "/api-keys/k-1", Some(&token), None)).await, 409, "resource_in_use");
        assert_eq!(call(&f, "POST", "/api-keys/k-1/revoke", &token, None).await.0, 200);
        assert_eq!(call(&f, "DELETE", "/api-keys/k-1", &token, None).await.0, 200);
        assert_error(&f.app.send(request("GET", "/api-keys/k-1", Some(&token), None)).await, 404, "not_found");
        assert_error(&f.app.send(request("DELETE", "/api-keys/k-1", Some(&token), None)).await, 404, "not_found");
        assert_error(&f.app.send(client.check(&key_body("UP-1", "h1"))).await, 400, "invalid_api_key");

        let subject = "api_key:k-1";
        let expected: Vec<(String, String)> = ["api_key.create", "api_key.update", "api_key.update", "api_key.revoke", "api_key.delete"]
            .iter().map(|a| ((*a).to_owned(), subject.to_owned())).collect();
        assert_eq!(audited(&f, &token, &actor).await, expected, "refused changes leave no record");
    }

    async fn a_revocation_racing_an_update_undoes_neither(setup) {
        let f = Fixture::new(setup).await;
        let (token, _) = new_key(&f, "c1", false).await;
        let body = json!({"api_key": "k-race", "products": [KEY_PRODUCT]});
        assert_eq!(call(&f, "POST", "/api-keys", &token, Some(body)).await.0, 201);
        // The revocation reads the key; before its write, another instance widens the key's products.
        let other = f.env.instance().await;
        let widen = json!({"products": [KEY_PRODUCT, USER_PRODUCT]});
        let patch = request("PATCH", "/api-keys/k-race", Some(&token), Some(widen));
        let store = integration_tests::interleave::Interleave::new(f.env.new_store(), move || {
            Box::pin(async move { assert_eq!(other.send(patch).await.status(), 200) })
        });
        let racing = f.env.instance_on(std::sync::Arc::new(store), Default::default(), std::time::Duration::from_secs(8)).await;
        assert_eq!(racing.send(request("POST", "/api-keys/k-race/revoke", Some(&token), None)).await.status(), 200);
        let (status, stored) = call(&f, "GET", "/api-keys/k-race", &token, None).await;
        let seen = (status, stored["revoked"].clone(), stored["products"].clone());
        assert_eq!(seen, (200, json!(true), json!([KEY_PRODUCT, USER_PRODUCT])), "both changes kept: {stored}");
    }

    async fn an_oauth_client_is_updated_and_deleted_only_once_revoked(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let (key, _) = SealingKey::generate().unwrap();
        let app = f.env.configured_instance(|s| s.with_sealing_key(Some(key))).await;
        let send = |method: &'static str, path: &str, body: Option<Value>| app.send(request(method, path, Some(&token), body));
        assert_eq!(send("POST", "/oauth-clients", Some(json!({"client_id": "c-1", "products": [KEY_PRODUCT]}))).await.status(), 201);
        let resp = send("PATCH", "/oauth-clients/c-1", Some(json!({"read_only": true, "products": []}))).await;
        let updated: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(updated, json!({"client_id": "c-1", "products": [], "read_only": true, "revoked": false}));
        let stored = f.store().oauth_client(&license_api::ids::OAuthClientId::parse("c-1").unwrap()).await.unwrap().unwrap();
        assert!(stored.read_only && stored.products.is_empty(), "stored as answered");
        assert_error(&send("DELETE", "/oauth-clients/c-1", None).await, 409, "resource_in_use");
        assert_eq!(send("POST", "/oauth-clients/c-1/revoke", None).await.status(), 200);
        assert_eq!(send("DELETE", "/oauth-clients/c-1", None).await.status(), 200);
        assert!(f.store().oauth_client(&stored.id).await.unwrap().is_none());
        let subject = "oauth_client:c-1";
        let expected: Vec<(String, String)> = ["oauth_client.create", "oauth_client.update", "oauth_client.revoke", "oauth_client.delete"]
            .iter().map(|a| ((*a).to_owned(), subject.to_owned())).collect();
        assert_eq!(audited(&f, &token, &actor).await, expected);
    }

    async fn every_create_takes_an_idempotency_key(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let (key, _) = SealingKey::generate().unwrap();
        let app = f.env.configured_instance(|s| s.with_sealing_key(Some(key))).await;
        let creates = [
            ("/products", json!({"short_code": "ip", "name": "Idem"})),
            ("/users", json!({"email": "idem@example.com", "password": PASSWORD})),
            ("/api-keys", json!({"products": [KEY_PRODUCT]})),
            ("/oauth-clients", json!({"products": [KEY_PRODUCT]})),
            ("/keys", json!({"name": "idem"})),
        ];
        for (path, body) in &creates {
            // Keys are the company's, not the route's: each create its own.
            let (once, many) = (format!("{path}-once"), format!("{path}-many"));
            let send = |key: &str| app.send(with_key(request("POST", path, Some(&token), Some(body.clone())), key));
            let first = send(&once).await;
            assert_eq!(first.status(), 201, "{path}: {}", String::from_utf8_lossy(first.body()));
            let again = send(&once).await;
            assert_eq!((again.status(), again.body()), (first.status(), first.body()), "{path}: the same answer, secret included");
            let mut body = body.clone();
            // Another product and user than the first create's, so they can be created.
            if let Some(code) = body.get_mut("short_code") { *code = json!("iq"); }
            if let Some(email) = body.get_mut("email") { *email = json!("many@example.com"); }
            let concurrent = futures::future::join_all((0..10).map(|_| {
                app.send(with_key(request("POST", path, Some(&token), Some(body.clone())), &many))
            })).await;
            assert!(concurrent.iter().all(|r| r.status() == 201 && r.body() == concurrent[0].body()), "{path}: {:?}",
                concurrent.iter().map(|r| (r.status(), String::from_utf8_lossy(r.body()).into_owned())).collect::<Vec<_>>());
            let other = with_key(request("POST", path, Some(&token), Some(json!({"name": "other"}))), &once);
            assert_error(&app.send(other).await, 422, "idempotency_key_reused");
            let answer: Value = serde_json::from_slice(first.body()).unwrap();
            let secret = ["shared_key", "client_secret", "token"].iter().find_map(|k| answer[k].as_str());
            let company = license_api::ids::CompanyId::parse("c1").unwrap();
            let record = f.store().idempotency_record(&company, &once, Timestamp::now()).await.unwrap().unwrap();
            if let Some(secret) = secret {
                assert!(!record.answer.contains(secret), "{path}: the secret is recorded sealed");
            } else {
                assert_eq!(record.answer.as_bytes(), first.body().as_ref(), "{path}: a plain answer as sent");
            }
        }
        let records = audited(&f, &token, &actor).await;
        for action in ["product.create", "user.create", "api_key.create", "oauth_client.create", "key.create"] {
            assert_eq!(records.iter().filter(|(a, _)| a == action).count(), 2, "{action}: one per key: {records:?}");
        }

        // Without a sealing key, a secret's create refuses the header rather than store the secret.
        let refused = f.app.send(with_key(request("POST", "/api-keys", Some(&token), Some(json!({}))), "k")).await;
        assert_error(&refused, 400, "validation_error");
        assert_eq!(f.app.send(with_key(request("POST", "/products", Some(&token), Some(json!({"short_code": "ns", "name": "n"}))), "k")).await.status(), 201);
    }
}
