//! The Management API's other resources (docs/management-resources.md) through HTTP on every setup:
//! products, license users, License API keys and OAuth clients each created, read, updated and
//! revoked or deleted, as the License API then sees them; secrets shown once and never read back;
//! every change with its one audit record, read through `GET /audit`, and a refused change with none;
//! and support's device, user and search operations at their routes — among them support freeing a
//! device over HTTP while the device frees itself, which frees it exactly once.

use crate::management::{audited_via_api as audited, call, new_key, request};
use integration_tests::fixtures::{key_body, user_body, KEY_PRODUCT, PASSWORD, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::ids::{OAuthClientId, ProductCode};
use license_api::model::OAuthClientRecord;
use license_api::sealed::SealingKey;
use license_api::secret::ExposeSecret;
use serde_json::{json, Value};

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, s)| ((*a).to_owned(), (*s).to_owned()))
        .collect()
}

integration_tests::matrix! {
    async fn a_product_lives_through_the_routes_and_every_change_is_audited(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let entry = json!({"short_code": "np", "id": 77, "name": "New", "metadata": {"tier": 1}});
        let (status, created) = call(&f, "POST", "/products", &token, Some(entry.clone())).await;
        assert_eq!((status, created["code"].clone(), created["name"].clone()), (201, json!("np"), json!("New")), "{created}");
        assert_error(&f.app.send(request("POST", "/products", Some(&token), Some(entry))).await, 409, "already_exists");
        let unknown_field = json!({"short_code": "bad", "name": "x", "colour": "red"});
        assert_error(&f.app.send(request("POST", "/products", Some(&token), Some(unknown_field))).await, 400, "validation_error");
        let bundle = json!({"short_code": "bn", "name": "b", "bundle_products": ["kp"]});
        assert_error(&f.app.send(request("POST", "/products", Some(&token), Some(bundle))).await, 400, "validation_error");

        let (status, shown) = call(&f, "GET", "/products/np", &token, None).await;
        assert_eq!((status, shown["metadata"].clone()), (200, json!({"tier": 1})));
        let (status, updated) = call(&f, "PATCH", "/products/np", &token, Some(json!({"name": "Renamed"}))).await;
        assert_eq!((status, updated["name"].clone(), updated["metadata"].clone()), (200, json!("Renamed"), json!({"tier": 1})), "{updated}");
        for fixed in [json!({"id": 1}), json!({"authorization_method": "user"})] {
            let refused = f.app.send(request("PATCH", "/products/np", Some(&token), Some(fixed))).await;
            assert_error(&refused, 400, "validation_error");
        }

        // A license of the new product is served by the License API; the product cannot go while it exists.
        let license = json!({"license_key": "NP-1"});
        assert_eq!(call(&f, "POST", "/products/np/licenses", &token, Some(license)).await.0, 201);
        let activation = json!({"product": "np", "hardware_id": "h1", "license_key": "NP-1"});
        assert_eq!(f.app.send(f.client.activate(&activation)).await.status(), 200);
        assert_error(&f.app.send(request("DELETE", "/products/np", Some(&token), None)).await, 409, "resource_in_use");
        assert_eq!(call(&f, "DELETE", "/products/np/licenses/NP-1?force=true", &token, None).await.0, 200);
        assert_eq!(call(&f, "DELETE", "/products/np", &token, None).await.0, 200);
        assert_error(&f.app.send(request("GET", "/products/np", Some(&token), None)).await, 404, "not_found");
        assert_error(&f.app.send(f.client.check(&activation)).await, 400, "unknown_product");

        let expected = pairs(&[
            ("product.create", "product:np"),
            ("product.update", "product:np"),
            ("license.create", "license:np/key/NP-1"),
            ("license.delete", "license:np/key/NP-1"),
            ("product.delete", "product:np"),
        ]);
        assert_eq!(audited(&f, &token, &actor).await, expected, "one record per change; refused ones none");
    }

    async fn a_license_user_lives_through_the_routes_and_its_password_is_never_read(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let license = f.user_license(41, |l| l.max_activations = 3).await;
        let entry = json!({"email": "ann@example.com", "password": PASSWORD, "first_name": "Ann"});
        let (status, created) = call(&f, "POST", "/users", &token, Some(entry.clone())).await;
        assert_eq!((status, created["has_password"].clone()), (201, json!(true)), "{created}");
        assert_error(&f.app.send(request("POST", "/users", Some(&token), Some(entry))).await, 409, "already_exists");
        let short = json!({"email": "bo@example.com", "password": "short"});
        assert_error(&f.app.send(request("POST", "/users", Some(&token), Some(short))).await, 400, "validation_error");
        let (status, shown) = call(&f, "GET", "/users/ann@example.com", &token, None).await;
        assert_eq!((status, shown["first_name"].clone()), (200, json!("Ann")));
        for secret in ["password", "password_hash"] {
            assert!(created.get(secret).is_none() && shown.get(secret).is_none(), "{secret}: {shown}");
        }
        let (status, updated) = call(&f, "PATCH", "/users/ann@example.com", &token, Some(json!({"last_name": "Lee"}))).await;
        assert_eq!((status, updated["first_name"].clone(), updated["last_name"].clone()), (200, json!("Ann"), json!("Lee")));

        // Assigned at its route, the user activates with the password given at creation.
        let seat = format!("/products/{USER_PRODUCT}/licenses/{}/users/ann@example.com", license.id);
        assert_eq!(call(&f, "POST", &seat, &token, Some(json!({"max_activations": 2}))).await.0, 200);
        assert_eq!(f.app.send(f.client.activate(&user_body("ann@example.com", "h1"))).await.status(), 200);
        assert_error(&f.app.send(request("DELETE", "/users/ann@example.com", Some(&token), None)).await, 409, "resource_in_use");
        let password = json!({"password": "another horse"});
        assert_eq!(call(&f, "PUT", "/users/ann@example.com/password", &token, Some(password)).await.0, 200);
        let mut with_new = user_body("ann@example.com", "h1");
        with_new["password"] = json!("another horse");
        assert_eq!(f.app.send(f.client.check(&with_new)).await.status(), 200, "the password set at its route");
        let devices = format!("/products/{USER_PRODUCT}/licenses/{}/devices/h1/deactivate", license.id);
        assert_eq!(call(&f, "POST", &devices, &token, None).await.0, 200);
        assert_eq!(call(&f, "DELETE", &seat, &token, None).await.0, 200);
        assert_eq!(call(&f, "DELETE", "/users/ann@example.com", &token, None).await.0, 200);
        assert_error(&f.app.send(request("GET", "/users/ann@example.com", Some(&token), None)).await, 404, "not_found");

        let user = "user:ann@example.com";
        let on_license = format!("license:{USER_PRODUCT}/id/{}", license.id);
        let expected = pairs(&[
            ("user.create", user),
            ("user.update", user),
            ("user.assign", user),
            ("user.set_password", user),
            ("license.deactivate", &on_license),
            ("user.unassign", user),
            ("user.delete", user),
        ]);
        assert_eq!(audited(&f, &token, &actor).await, expected);
    }

    async fn an_api_key_made_through_the_routes_serves_the_license_api_until_revoked(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let (other_company, _) = new_key(&f, "c2", false).await;
        f.key_license("AK-1", |_| ()).await;
        let (status, created) = call(&f, "POST", "/api-keys", &token, Some(json!({"api_key": "made-1", "products": [KEY_PRODUCT]}))).await;
        assert_eq!((status, created["api_key"].clone()), (201, json!("made-1")), "{created}");
        let shared_key = created["shared_key"].as_str().unwrap().to_owned();
        let unknown_product = json!({"products": ["nope"]});
        assert_error(&f.app.send(request("POST", "/api-keys", Some(&token), Some(unknown_product))).await, 400, "validation_error");
        let given_secret = json!({"shared_key": "mine"});
        assert_error(&f.app.send(request("POST", "/api-keys", Some(&token), Some(given_secret))).await, 400, "validation_error");
        assert_error(&f.app.send(request("POST", "/api-keys", Some(&token), Some(json!({"api_key": "made-1"})))).await, 409, "already_exists");

        let client = f.app.client("made-1", &shared_key);
        assert_eq!(f.app.send(client.activate(&key_body("AK-1", "h1"))).await.status(), 200, "the new key signs requests");
        let (status, shown) = call(&f, "GET", "/api-keys/made-1", &token, None).await;
        assert_eq!((status, shown["products"].clone(), shown["revoked"].clone()), (200, json!([KEY_PRODUCT]), json!(false)));
        assert!(shown.get("shared_key").is_none(), "{shown}");
        assert_error(&f.app.send(request("GET", "/api-keys/made-1", Some(&other_company), None)).await, 404, "not_found");

        let (status, revoked) = call(&f, "POST", "/api-keys/made-1/revoke", &token, None).await;
        assert_eq!((status, revoked["revoked"].clone()), (200, json!(true)));
        assert_eq!(call(&f, "POST", "/api-keys/made-1/revoke", &token, None).await.0, 200, "again: nothing changes");
        assert_error(&f.app.send(client.check(&key_body("AK-1", "h1"))).await, 400, "revoked_api_key");

        let expected = pairs(&[("api_key.create", "api_key:made-1"), ("api_key.revoke", "api_key:made-1")]);
        assert_eq!(audited(&f, &token, &actor).await, expected);
    }

    async fn an_oauth_client_is_stored_hashed_and_sealed_and_its_secret_shown_once(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let without_key = f.app.send(request("POST", "/oauth-clients", Some(&token), Some(json!({})))).await;
        assert_eq!(without_key.status(), 500, "no sealing key is the deployment's fault");
        let (key, text) = SealingKey::generate().unwrap();
        let app = f.env.configured_instance(|s| s.with_sealing_key(Some(key))).await;
        let send = |method: &'static str, path: String, body: Option<Value>| app.send(request(method, &path, Some(&token), body));
        let resp = send("POST", "/oauth-clients".into(), Some(json!({"client_id": "cli-1", "products": [KEY_PRODUCT]}))).await;
        let created: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!((resp.status().as_u16(), created["client_id"].clone()), (201, json!("cli-1")), "{created}");
        let secret = created["client_secret"].as_str().unwrap().to_owned();

        let stored: OAuthClientRecord = f.store().oauth_client(&OAuthClientId::parse("cli-1").unwrap()).await.unwrap().unwrap();
        assert!(license_api::password::verify(secret.clone(), Some(stored.secret_hash.clone())).await, "the hash is the secret's");
        let opener = SealingKey::from_text(text.expose_secret()).unwrap();
        let opened = opener.open(&stored.sealed_secret, &OAuthClientRecord::seal_context(&stored.id)).unwrap();
        assert_eq!(opened.expose_secret(), secret, "sealed for this client, as the import seals it");
        assert_eq!(stored.products, vec![ProductCode::parse(KEY_PRODUCT).unwrap()]);

        let shown: Value = serde_json::from_slice(send("GET", "/oauth-clients/cli-1".into(), None).await.body()).unwrap();
        assert_eq!(shown, json!({"client_id": "cli-1", "products": [KEY_PRODUCT], "read_only": false, "revoked": false}));
        assert_eq!(send("POST", "/oauth-clients/cli-1/revoke".into(), None).await.status(), 200);
        let stored = f.store().oauth_client(&stored.id).await.unwrap().unwrap();
        assert!(stored.revoked);
        let expected = pairs(&[("oauth_client.create", "oauth_client:cli-1"), ("oauth_client.revoke", "oauth_client:cli-1")]);
        assert_eq!(audited(&f, &token, &actor).await, expected, "the refused create left none");
    }

    async fn the_audit_route_filters_and_pages_as_the_cli_does(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        for key in ["A-1", "A-2"] {
            assert_eq!(call(&f, "POST", &format!("/products/{KEY_PRODUCT}/licenses"), &token, Some(json!({"license_key": key}))).await.0, 201);
        }
        let (status, first) = call(&f, "GET", &format!("/audit?actor={actor}&limit=1"), &token, None).await;
        assert_eq!((status, first["records"][0]["subject"].clone()), (200, json!("license:kp/key/A-2")), "newest first: {first}");
        let cursor = first["cursor"].as_str().unwrap();
        let (_, second) = call(&f, "GET", &format!("/audit?actor={actor}&limit=1&cursor={}", cursor.replace('#', "%23")), &token, None).await;
        assert_eq!(second["records"][0]["subject"], json!("license:kp/key/A-1"));
        let (_, one) = call(&f, "GET", &format!("/audit?product={KEY_PRODUCT}&license_key=A-1"), &token, None).await;
        assert_eq!(one["records"].as_array().map(Vec::len), Some(1), "{one}");
        let (_, later) = call(&f, "GET", &format!("/audit?actor={actor}&since=2999-01-01"), &token, None).await;
        assert_eq!(later["records"], json!([]));
        for bad in ["license_key=A-1", "since=yesterday", "limit=0", "cursor=nonsense", "license_id=x", "colour=red"] {
            assert_error(&f.app.send(request("GET", &format!("/audit?{bad}"), Some(&token), None)).await, 400, "validation_error");
        }
    }

    async fn support_routes_list_search_reset_and_blacklist(setup) {
        let f = Fixture::new(setup).await;
        let (token, _) = new_key(&f, "c1", false).await;
        f.key_license("S-1", |l| { l.max_activations = 2; l.max_transfers = 1; }).await;
        for hw in ["h1", "h2"] {
            assert_eq!(f.app.send(f.client.activate(&key_body("S-1", hw))).await.status(), 200);
        }
        let base = format!("/products/{KEY_PRODUCT}/licenses/S-1");
        let (status, page) = call(&f, "GET", &format!("{base}/devices?limit=1"), &token, None).await;
        assert_eq!((status, page["devices"][0]["hardware_id"].clone(), page["next"].clone()), (200, json!("h1"), json!("h1")), "{page}");
        let (status, found) = call(&f, "GET", "/licenses/search?hardware_id=h2", &token, None).await;
        assert_eq!((status, found["licenses"][0]["license_key"].clone()), (200, json!("S-1")), "{found}");
        let made = json!({"license_key": "S-2"});
        assert_eq!(call(&f, "POST", &format!("/products/{KEY_PRODUCT}/licenses"), &token, Some(made)).await.0, 201);
        let (status, listed) = call(&f, "GET", &format!("/licenses?product={KEY_PRODUCT}"), &token, None).await;
        let sources: Vec<(Value, Value)> = listed["licenses"].as_array().unwrap().iter().map(|l| (l["license_key"].clone(), l["source"].clone())).collect();
        // A license the Management API made is its, not the catalog's: `import --prune` keeps it.
        assert_eq!((status, sources), (200, vec![(json!("S-1"), Value::Null), (json!("S-2"), json!("management"))]), "{listed}");

        let (status, reset) = call(&f, "POST", &format!("{base}/devices/reset"), &token, None).await;
        assert_eq!((status, reset["deactivated"].as_array().map(Vec::len)), (200, Some(2)), "{reset}");
        assert_eq!(call(&f, "POST", &format!("{base}/reset-transfers"), &token, None).await.0, 200);
        let (status, blacklisted) = call(&f, "POST", "/blacklist", &token, Some(json!({"hardware_id": "h3"}))).await;
        assert_eq!((status, blacklisted["added"].clone()), (200, json!(true)));
        assert_error(&f.app.send(f.client.activate(&key_body("S-1", "h3"))).await, 400, "blacklisted");
        assert_error(&f.app.send(request("GET", "/products/nope/licenses/S-1/devices", Some(&token), None)).await, 400, "unknown_product");
    }

    async fn support_frees_a_device_over_http_while_it_frees_itself_exactly_once(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let license = f.key_license("RACE", |l| l.max_activations = 3).await;
        let support = f.env.instance().await;
        let device = f.env.instance().await;
        assert_eq!(f.app.send(f.client.activate(&key_body("RACE", "stays"))).await.status(), 200);
        let path = format!("/products/{KEY_PRODUCT}/licenses/RACE/devices/d/deactivate");
        let rounds = 10;
        let mut by_support = 0;
        for _ in 0..rounds {
            assert_eq!(f.app.send(f.client.activate(&key_body("RACE", "d"))).await.status(), 200);
            let (managed, own) = tokio::join!(
                support.send(request("POST", &path, Some(&token), None)),
                device.send(f.client.deactivate(&key_body("RACE", "d"))),
            );
            if managed.status() == 200 {
                by_support += 1;
            } else {
                assert_error(&managed, 400, "device_not_found");
            }
            assert!((managed.status() == 200) != (own.status() == 200), "exactly one of the two freed it");
        }
        let l = f.license_now(&license).await;
        assert_eq!((l.times_activated, l.released_count, l.transfer_count), (1, 1, 0));
        let records = audited(&f, &token, &actor).await;
        assert_eq!(records.len(), by_support, "one record per deactivation support made: {records:?}");
    }

    async fn racing_creates_of_one_product_create_it_once(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let mut apps = Vec::new();
        for _ in 0..6 {
            apps.push(f.env.instance().await);
        }
        let sends = apps.iter().enumerate().map(|(i, app)| {
            let entry = json!({"short_code": "race", "name": format!("by {i}")});
            app.send(request("POST", "/products", Some(&token), Some(entry)))
        });
        let answers = futures::future::join_all(sends).await;
        let created = answers.iter().filter(|r| r.status() == 201).count();
        for refused in answers.iter().filter(|r| r.status() != 201) {
            assert_error(refused, 409, "already_exists");
        }
        assert_eq!(created, 1, "exactly one create wins");
        assert_eq!(audited(&f, &token, &actor).await, pairs(&[("product.create", "product:race")]));
    }

    async fn a_user_assigned_between_the_deletes_read_and_write_is_not_deleted(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let license = f.user_license(42, |l| l.max_activations = 3).await;
        assert_eq!(call(&f, "POST", "/users", &token, Some(json!({"email": "race@example.com"}))).await.0, 201);
        // The delete reads the user unassigned; before its write, another instance assigns the user.
        let other = f.env.instance().await;
        let seat = format!("/products/{USER_PRODUCT}/licenses/{}/users/race@example.com", license.id);
        let assign = request("POST", &seat, Some(&token), Some(json!({})));
        let store = integration_tests::interleave::Interleave::new(f.env.new_store(), move || {
            Box::pin(async move { assert_eq!(other.send(assign).await.status(), 200) })
        });
        let racing = f.env.instance_on(std::sync::Arc::new(store), Default::default(), std::time::Duration::from_secs(8)).await;
        let delete = racing.send(request("DELETE", "/users/race@example.com", Some(&token), None)).await;
        assert_error(&delete, 409, "resource_in_use");
        let (status, stored) = call(&f, "GET", "/users/race@example.com", &token, None).await;
        assert_eq!((status, stored["licenses"].clone()), (200, json!([[USER_PRODUCT, license.id]])));
        let user = "user:race@example.com";
        assert_eq!(audited(&f, &token, &actor).await, pairs(&[("user.create", user), ("user.assign", user)]));
    }
}
