//! Bundles (seed 001): activate_bundle / check_bundle / deactivate_bundle and the offline forms. One
//! write for all members (all or none), every member's own limits, `bundle_code` on the single-license
//! endpoints, and counters that match the active devices after concurrent mixes.

use bytes::Bytes;
use integration_tests::fixtures::{API_KEY, PASSWORD, SHARED_KEY};
use integration_tests::interleave;
use integration_tests::{assert_error, Fixture};
use license_api::catalog::{import, Catalog};
use license_api::client::LicenseClient;
use license_api::ids::{CompanyId, LicenseKey, ProductCode};
use license_api::model::License;
use license_api::offline::file::{self, RequestFile, Shape};
use license_api::offline::payload::Kind;
use license_api::plan::{LicenseAddr, WriteToken};
use license_api::signing::verify;
use license_api::store::write::{Action, Attr, Effect, Item, ItemWrite, Write};
use serde_json::{json, Value};
use std::time::Duration;

/// Company `c1` of the fixture with two key-based products bundled as `kb` and two user-based ones
/// bundled as `ub`. Members' limits: m1 2, m2 3 (key-based); the user ann may activate 2 devices.
pub(crate) async fn bundles(f: &Fixture) {
    let catalog = json!({"companies": [{"code": "c1", "id": 7,
        "products": [
            {"short_code": "m1", "id": 31, "name": "Editor"}, {"short_code": "m2", "id": 32, "name": "Viewer"},
            {"short_code": "kb", "id": 30, "name": "Suite", "bundle_products": ["m1", "m2"]},
            {"short_code": "um1", "id": 41, "authorization_method": "user"},
            {"short_code": "um2", "id": 42, "authorization_method": "user"},
            {"short_code": "ub", "id": 40, "authorization_method": "user", "bundle_products": ["um1", "um2"]}],
        "license_users": [{"id": 1, "email": "ann@example.com", "password": PASSWORD}],
        "licenses": [
            {"id": 300, "product": "kb", "license_key": "KB-1", "max_activations": 2, "max_transfers": 10,
             "members": [{"id": 301, "product": "m1"}, {"id": 302, "product": "m2", "max_activations": 3}]},
            {"id": 400, "product": "ub", "max_activations": 5, "users": [{"email": "ann@example.com", "max_activations": 2}],
             "members": [{"id": 401, "product": "um1"}, {"id": 402, "product": "um2"}]}]}]});
    let catalog = Catalog::parse(&catalog.to_string(), "bundles.json").unwrap();
    import(f.store(), &catalog).await.unwrap();
}

fn key_member(f: &Fixture, product: &str) -> LicenseAddr {
    LicenseAddr::Key {
        company: f.company.clone(),
        product: ProductCode::parse(product).unwrap(),
        key: LicenseKey::parse("KB-1").unwrap(),
    }
}

pub(crate) async fn member(f: &Fixture, product: &str) -> License {
    f.store().get_license(&key_member(f, product)).await.unwrap().unwrap()
}

fn suite(hw: &str) -> Value {
    json!({"product": "kb", "hardware_id": hw, "license_key": "KB-1"})
}

pub(crate) fn post(client: &LicenseClient, path: &str, body: &Value) -> http::Request<Bytes> {
    client.request(http::Method::POST, path, Some(body.to_string().into_bytes()))
}

pub(crate) fn check(client: &LicenseClient, params: &Value) -> http::Request<Bytes> {
    let query: String = url_query(params);
    client.request(http::Method::GET, &format!("/api/v4/check_bundle?{query}"), None)
}

fn url_query(params: &Value) -> String {
    params
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap().replace('@', "%40")))
        .collect::<Vec<_>>()
        .join("&")
}

/// Verifies a bundle answer: the header over the array, each element's `license_signature`.
pub(crate) fn verify_array(client: &LicenseClient, resp: &http::Response<Bytes>, hw: &str, ident: &str) -> Vec<Value> {
    let body = client
        .verify_body(resp)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(resp.body())));
    let items: Vec<Value> = serde_json::from_slice(&body).unwrap();
    for item in &items {
        let validity = item["validity_period"].as_str().unwrap_or("");
        let message = license_api::signing::license_signature_message(hw, ident, validity);
        assert!(verify(
            &client.public_key_pem,
            message.as_bytes(),
            item["license_signature"].as_str().unwrap()
        ));
    }
    items
}

integration_tests::matrix! {
async fn a_bundle_activates_checks_and_deactivates_every_member(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let resp = f.app.send(post(&f.client, "/api/v4/activate_bundle", &suite("hw-1"))).await;
    let items = verify_array(&f.client, &resp, "hw-1", "KB-1");
    let codes: Vec<_> = items.iter().map(|i| i["product_details"]["short_code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["m1", "m2"]);
    assert_eq!(items[0]["id"], 301);
    assert_eq!((items[0]["max_activations"].as_i64(), items[1]["max_activations"].as_i64()), (Some(2), Some(3)));
    assert!(items.iter().all(|i| i["times_activated"] == 1 && i["request"] == "activation"));
    assert_error(&f.app.send(post(&f.client, "/api/v4/activate_bundle", &suite("hw-1"))).await, 409, "license_device_exists");

    let resp = f.app.send(check(&f.client, &suite("hw-1"))).await;
    let items = verify_array(&f.client, &resp, "hw-1", "KB-1");
    assert!(items.iter().all(|i| i["license_active"] == true && i["hardware_id"] == "hw-1"));
    assert_error(&f.app.send(check(&f.client, &suite("hw-other"))).await, 400, "device_not_found");

    let resp = f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &suite("hw-1"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), b"license_deactivated");
    assert_eq!((member(&f, "m1").await.times_activated, member(&f, "m2").await.times_activated), (0, 0));
    assert_error(&f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &suite("hw-1"))).await, 400, "license_not_active");
}

async fn all_members_or_none(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    for hw in ["a", "b"] {
        assert_eq!(f.app.send(post(&f.client, "/api/v4/activate_bundle", &suite(hw))).await.status(), 200);
    }
    // m1 (2) is full, m2 (3) is not: the third device is refused with m1's error, and m2 keeps 2.
    assert_error(&f.app.send(post(&f.client, "/api/v4/activate_bundle", &suite("c"))).await, 400, "license_activated_max_times");
    assert_eq!((member(&f, "m1").await.times_activated, member(&f, "m2").await.times_activated), (2, 2));
    assert_eq!(f.store().list_devices(&key_member(&f, "m2")).await.unwrap().len(), 2, "no device written on m2");
}

async fn every_bundle_exception(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let activate = |b: Value| f.app.send(post(&f.client, "/api/v4/activate_bundle", &b));
    assert_error(&activate(json!({"product": "m1", "hardware_id": "h", "license_key": "KB-1"})).await, 400, "product_not_bundle");
    assert_error(&activate(json!({"product": "nope", "hardware_id": "h", "license_key": "KB-1"})).await, 400, "unknown_product");
    assert_error(&activate(json!({"product": "kb", "hardware_id": "h", "license_key": "NOPE"})).await, 400, "license_not_found");
    let deactivate = |b: Value| f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &b));
    assert_error(&deactivate(json!({"product": "m2", "hardware_id": "h", "license_key": "KB-1"})).await, 400, "product_not_bundle");
    assert_error(&deactivate(json!({"product": "nope", "hardware_id": "h", "license_key": "KB-1"})).await, 400, "unknown_product");
    assert_error(&deactivate(json!({"product": "kb", "hardware_id": "h", "license_key": "NOPE"})).await, 400, "license_not_found");
    assert_error(&deactivate(suite("h")).await, 400, "license_not_active");
    assert_eq!(activate(suite("h")).await.status(), 200);
    assert_error(&deactivate(suite("other")).await, 400, "device_not_found");
    let no_headers = http::Request::post("/api/v4/deactivate_bundle").body(Bytes::from(suite("h").to_string())).unwrap();
    assert_error(&f.app.send(no_headers).await, 400, "missing_headers");
    assert_error(&f.app.send(check(&f.client, &json!({"product": "m1", "hardware_id": "h", "license_key": "KB-1"}))).await, 400, "product_not_bundle");
}

async fn members_are_single_licenses_with_bundle_code(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let single = |path: &str, product: &str, hw: &str, bundle: &str| {
        post(&f.client, path, &json!({"product": product, "hardware_id": hw, "license_key": "KB-1", "bundle_code": bundle}))
    };
    let resp = f.app.send(single("/api/v4/activate_license", "m1", "solo", "kb")).await;
    let object = f.client.verify_license(&resp, "solo", "KB-1").unwrap();
    assert_eq!(object["id"], 301);
    assert_error(&f.app.send(single("/api/v4/activate_license", "m2", "solo", "other-bundle")).await, 400, "license_not_found");
    let check = f.client.check(&json!({"product": "m1", "hardware_id": "solo", "license_key": "KB-1", "bundle_code": "kb"}));
    assert_eq!(f.app.send(check).await.status(), 200);
    let wrong = f.client.check(&json!({"product": "m1", "hardware_id": "solo", "license_key": "KB-1", "bundle_code": "ub"}));
    assert_error(&f.app.send(wrong).await, 400, "license_not_found");

    // Active on m1 only: the bundle activation completes m2 and answers both members.
    let resp = f.app.send(post(&f.client, "/api/v4/activate_bundle", &suite("solo"))).await;
    let items = verify_array(&f.client, &resp, "solo", "KB-1");
    assert_eq!((items[0]["times_activated"].as_i64(), items[1]["times_activated"].as_i64()), (Some(1), Some(1)));
    // Deactivated on m1 alone, then the bundle: m2 is freed, m1 is not touched twice.
    assert_eq!(f.app.send(single("/api/v4/deactivate_license", "m1", "solo", "kb")).await.status(), 200);
    assert_eq!(f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &suite("solo"))).await.status(), 200);
    assert_eq!((member(&f, "m1").await.times_activated, member(&f, "m2").await.times_activated), (0, 0));
}

async fn user_based_bundles(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let user = |hw: &str| json!({"product": "ub", "hardware_id": hw, "username": "ann@example.com", "password": PASSWORD});
    let resp = f.app.send(post(&f.client, "/api/v4/activate_bundle", &user("u-1"))).await;
    let items = verify_array(&f.client, &resp, "u-1", "ann@example.com");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["user"]["email"] == "ann@example.com" && i["user"]["total_activations"] == 1));
    assert_eq!(f.app.send(post(&f.client, "/api/v4/activate_bundle", &user("u-2"))).await.status(), 200);
    // The user's own limit (2) holds on every member.
    assert_error(&f.app.send(post(&f.client, "/api/v4/activate_bundle", &user("u-3"))).await, 400, "license_user_activated_max_times");
    let wrong = json!({"product": "ub", "hardware_id": "u-3", "username": "ann@example.com", "password": "wrong"});
    assert_error(&f.app.send(post(&f.client, "/api/v4/activate_bundle", &wrong)).await, 400, "license_not_found");
    let check = check(&f.client, &json!({"product": "ub", "hardware_id": "u-1", "username": "ann@example.com"}));
    assert_eq!(verify_array(&f.client, &f.app.send(check).await, "u-1", "ann@example.com").len(), 2);
    let deact = json!({"product": "ub", "hardware_id": "u-1", "username": "ann@example.com"});
    assert_eq!(f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &deact)).await.status(), 200);
    // The member licenses of a user's bundle are reached with the bundle's code.
    let single = json!({"product": "um1", "hardware_id": "u-1", "username": "ann@example.com", "password": PASSWORD, "bundle_code": "ub"});
    let object = f.client.verify_license(&f.app.send(f.client.activate(&single)).await, "u-1", "ann@example.com").unwrap();
    assert_eq!(object["id"], 401);
}

async fn offline_bundles_answer_once(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let file = |kind, id: &str| RequestFile {
        kind,
        product: "kb".into(),
        hardware_id: "off-1".into(),
        license_key: Some("KB-1".into()),
        username: None,
        password: None,
        api_key: API_KEY.into(),
        date: file::rfc7231_date(std::time::SystemTime::now()),
        request_id: Some(id.into()),
        extra: Default::default(),
    };
    let text = file(Kind::Activation, "bundle-act").encode(Shape::PythonActivation, SHARED_KEY);
    let upload = || f.client.upload("/api/v4/activate_bundle_offline", "text/plain", text.clone());
    let first = f.app.send(upload()).await;
    let body = f.client.verify_body(&first).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(first.body())));
    let text_body = std::str::from_utf8(&body).unwrap();
    let answer: Value = serde_json::from_str(text_body).unwrap();
    // bundle_signature_v2 signs the `licenses` array exactly as it appears.
    let array = &text_body["{\"licenses\":".len()..text_body.rfind(",\"bundle_signature_v2\"").unwrap()];
    assert!(verify(&f.client.public_key_pem, array.as_bytes(), answer["bundle_signature_v2"].as_str().unwrap()));
    let licenses = answer["licenses"].as_array().unwrap();
    assert_eq!(licenses.len(), 2);
    assert!(licenses.iter().all(|l| l["request_id"] == "bundle-act" && l["license_signature_v2"].is_string()));
    assert_eq!(f.app.send(upload()).await.body(), first.body(), "a repeat upload answers the same file");
    assert_eq!((member(&f, "m1").await.times_activated, member(&f, "m2").await.times_activated), (1, 1));

    let text = file(Kind::Deactivation, "bundle-deact").encode(Shape::JavaScript, SHARED_KEY);
    for _ in 0..2 {
        let (content_type, multipart) = file::multipart(&text, "bundle-boundary");
        let resp = f.app.send(f.client.upload("/api/v4/deactivate_bundle_offline", &content_type, multipart)).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        assert_eq!(resp.body().as_ref(), b"license_deactivated");
    }
    assert_eq!((member(&f, "m1").await.times_activated, member(&f, "m2").await.times_activated), (0, 0));
}

async fn concurrent_mixes_keep_every_member_exact(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    for round in 0..4 {
        let requests: Vec<http::Request<Bytes>> = (0..12)
            .map(|i| {
                let hw = format!("mix-{}", i % 5);
                match (i + round) % 4 {
                    0 | 1 => post(&f.client, "/api/v4/activate_bundle", &suite(&hw)),
                    2 => post(&f.client, "/api/v4/activate_license", &json!({"product": if i % 2 == 0 { "m1" } else { "m2" }, "hardware_id": hw, "license_key": "KB-1", "bundle_code": "kb"})),
                    _ => post(&f.client, "/api/v4/deactivate_bundle", &suite(&hw)),
                }
            })
            .collect();
        let answers = futures::future::join_all(requests.into_iter().enumerate().map(|(i, r)| instances[i % 3].send(r))).await;
        for resp in &answers {
            assert!(resp.status() == 200 || resp.status() == 400 || resp.status() == 409, "{}", String::from_utf8_lossy(resp.body()));
        }
        for (product, max) in [("m1", 2), ("m2", 3)] {
            let l = member(&f, product).await;
            let devices = f.store().list_devices(&key_member(&f, product)).await.unwrap();
            let active = devices.iter().filter(|d| d.active).count() as i64;
            assert_eq!(l.times_activated, active, "round {round}: {product} counts its active devices");
            assert!(active <= max, "round {round}: {product} within its limit");
        }
    }
    let _ = CompanyId::parse("c1");
}

async fn a_bundle_acts_only_on_its_own_members(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    // Another customer's standalone license of m1 now holds the address (m1, KB-1) — e.g. imported
    // from another catalog: a bundle request must neither change it nor answer for it.
    let standalone = License {
        max_activations: 5,
        ..License::new(500, f.company.clone(), ProductCode::parse("m1").unwrap(), Some(LicenseKey::parse("KB-1").unwrap()))
    };
    f.store().put_license(&standalone).await.unwrap();
    let before = f.env.dump().await;
    assert_error(&f.app.send(post(&f.client, "/api/v4/activate_bundle", &suite("hw-x"))).await, 400, "license_not_found");
    assert_error(&f.app.send(check(&f.client, &suite("hw-x"))).await, 400, "license_not_found");
    assert_error(&f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &suite("hw-x"))).await, 400, "license_not_found");
    assert_eq!(f.env.dump().await, before, "nothing written");
    let now = member(&f, "m1").await;
    assert_eq!((now.id, now.times_activated), (500, 0), "the standalone license is untouched");
}

async fn a_member_skipped_by_activation_must_still_be_active_at_the_write(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let single = |path: &str| post(&f.client, path, &json!({"product": "m1", "hardware_id": "sk", "license_key": "KB-1", "bundle_code": "kb"}));
    assert_eq!(f.app.send(single("/api/v4/activate_license")).await.status(), 200);
    // The bundle activation reads m1 active (and skips it); before its write, m1 is deactivated alone.
    let other = f.env.instance().await;
    let deactivate = single("/api/v4/deactivate_license");
    let store = interleave::Interleave::new(f.env.new_store(), move || {
        Box::pin(async move { assert_eq!(other.send(deactivate).await.status(), 200) })
    });
    let racing = f.env.instance_on(std::sync::Arc::new(store), Default::default(), Duration::from_secs(8)).await;
    let resp = racing.send(post(&f.client, "/api/v4/activate_bundle", &suite("sk"))).await;
    let items = verify_array(&f.client, &resp, "sk", "KB-1");
    assert!(items.iter().all(|i| i["times_activated"] == 1), "{items:?}");
    for product in ["m1", "m2"] {
        let devices = f.store().list_devices(&key_member(&f, product)).await.unwrap();
        assert!(devices.iter().any(|d| d.hardware_id.as_str() == "sk" && d.active), "{product}: the answer says active");
        assert_eq!(member(&f, product).await.times_activated, 1, "{product}");
    }
}

async fn a_member_skipped_by_deactivation_must_still_be_inactive_at_the_write(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let single = |path: &str| post(&f.client, path, &json!({"product": "m1", "hardware_id": "sd", "license_key": "KB-1", "bundle_code": "kb"}));
    assert_eq!(f.app.send(post(&f.client, "/api/v4/activate_bundle", &suite("sd"))).await.status(), 200);
    assert_eq!(f.app.send(single("/api/v4/deactivate_license")).await.status(), 200);
    // The bundle deactivation reads m1 inactive (and skips it); before its write, m1 is activated alone.
    let other = f.env.instance().await;
    let activate = single("/api/v4/activate_license");
    let store = interleave::Interleave::new(f.env.new_store(), move || {
        Box::pin(async move { assert_eq!(other.send(activate).await.status(), 200) })
    });
    let racing = f.env.instance_on(std::sync::Arc::new(store), Default::default(), Duration::from_secs(8)).await;
    let resp = racing.send(post(&f.client, "/api/v4/deactivate_bundle", &suite("sd"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    for product in ["m1", "m2"] {
        let devices = f.store().list_devices(&key_member(&f, product)).await.unwrap();
        assert!(devices.iter().all(|d| !d.active), "{product}: deactivated means inactive on every member");
        assert_eq!(member(&f, product).await.times_activated, 0, "{product}");
    }
}

async fn a_bundle_deactivation_releases_a_member_whose_seat_is_gone(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let ann = |hw: &str| json!({"product": "ub", "hardware_id": hw, "username": "ann@example.com", "password": PASSWORD});
    assert_eq!(f.app.send(post(&f.client, "/api/v4/activate_bundle", &ann("seat-1"))).await.status(), 200);
    // um1's seat count is inconsistent (at 0 while ann's device is active).
    let um1 = LicenseAddr::Id { company: f.company.clone(), product: ProductCode::parse("um1").unwrap(), id: 401 };
    let ann_user = license_api::ids::Username::parse("ann@example.com").unwrap();
    let fix = Write {
        items: vec![ItemWrite {
            item: Item::Seat(um1.clone(), ann_user.clone()),
            conditions: vec![],
            action: Action::Update(vec![Effect::Add(Attr::TotalActivations, -1)]),
        }],
    };
    f.store().apply(&fix, &WriteToken::new()).await.unwrap();
    let deact = json!({"product": "ub", "hardware_id": "seat-1", "username": "ann@example.com"});
    let resp = f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &deact)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(f.store().get_seat(&um1, &ann_user).await.unwrap().unwrap().total_activations, 0, "not below 0");
    let um2 = LicenseAddr::Id { company: f.company.clone(), product: ProductCode::parse("um2").unwrap(), id: 402 };
    assert_eq!(f.store().get_seat(&um2, &ann_user).await.unwrap().unwrap().total_activations, 0, "um2's seat released");
    for addr in [&um1, &um2] {
        assert_eq!(f.store().get_license(addr).await.unwrap().unwrap().times_activated, 0);
    }
}

async fn concurrent_single_and_bundle_operations_on_one_device(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    let single = |path: &str, product: &str| post(&f.client, path, &json!({"product": product, "hardware_id": "one", "license_key": "KB-1", "bundle_code": "kb"}));
    for round in 0..6 {
        let requests: Vec<http::Request<Bytes>> = (0..10)
            .map(|i| match (i + round) % 5 {
                0 => post(&f.client, "/api/v4/activate_bundle", &suite("one")),
                1 => post(&f.client, "/api/v4/deactivate_bundle", &suite("one")),
                2 => single("/api/v4/activate_license", if i % 2 == 0 { "m1" } else { "m2" }),
                3 => single("/api/v4/deactivate_license", if i % 2 == 0 { "m2" } else { "m1" }),
                _ => check(&f.client, &suite("one")),
            })
            .collect();
        let answers = futures::future::join_all(requests.into_iter().enumerate().map(|(i, r)| instances[i % 3].send(r))).await;
        for resp in &answers {
            assert!(matches!(resp.status().as_u16(), 200 | 400 | 409), "{}", String::from_utf8_lossy(resp.body()));
        }
        for product in ["m1", "m2"] {
            let devices = f.store().list_devices(&key_member(&f, product)).await.unwrap();
            let active = devices.iter().filter(|d| d.active).count() as i64;
            assert_eq!(member(&f, product).await.times_activated, active, "round {round}: {product}");
        }
    }
}
}
