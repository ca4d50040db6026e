//! SPEC §9 "Floating cloud" (issue 17 item 8): a check of an `is_floating_cloud` license takes or
//! refreshes one of `floating_users` slots, exactly under concurrency; an expired slot is free again.
//! Expiry is decided against the stored times (`rules::floating` has the clock-driven unit tests); here
//! expired holders are stored as such instead of waited for.

use futures::future::join_all;
use integration_tests::fixtures::{key_body, KEY_PRODUCT};
use integration_tests::{assert_error, error_of, Fixture};
use license_api::handlers::Endpoint;
use license_api::model::License;
use license_api::rules::floating;
use license_api::time::Timestamp;
use serde_json::{json, Value};

fn check_body(key: &str, hw: &str) -> Value {
    json!({"product": KEY_PRODUCT, "hardware_id": hw, "license_key": key})
}

/// A floating cloud license with `slots` slots held for 10 minutes, up to 30 active devices.
fn floating(slots: i64) -> impl FnOnce(&mut License) {
    move |l| {
        l.max_activations = 30;
        l.terms.is_floating_cloud = true;
        l.terms.floating_users = slots;
        l.terms.floating_timeout = 10;
    }
}

async fn activate_all(f: &Fixture, key: &str, devices: &[String]) {
    for hw in devices {
        let resp = f.app.send(f.client.activate(&key_body(key, hw))).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    }
}

fn in_use_of(resp: &http::Response<bytes::Bytes>) -> Value {
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    body["floating_in_use_devices"].clone()
}

integration_tests::matrix! {
async fn thirty_devices_check_a_five_slot_license_at_once(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("FLOAT5", floating(5)).await;
    let devices: Vec<String> = (0..30).map(|i| format!("dev-{i}")).collect();
    activate_all(&f, "FLOAT5", &devices).await;
    let mut apps = Vec::new();
    for _ in 0..5 {
        apps.push(f.env.instance().await);
    }
    let sends = devices
        .iter()
        .enumerate()
        .map(|(i, hw)| apps[i % apps.len()].send(f.client.check(&check_body("FLOAT5", hw))));
    let answers = join_all(sends).await;
    let held: Vec<&String> = devices.iter().zip(&answers).filter(|(_, r)| r.status() == 200).map(|(d, _)| d).collect();
    let not_available = (400, "floating_not_available".to_owned());
    let refused = answers.iter().filter(|r| r.status() != 200 && error_of(r) == not_available).count();
    assert_eq!((held.len(), refused), (5, 25), "exactly the slots are handed out");
    let stored = f.license_now(&license).await;
    let now = Timestamp::now();
    let holders: Vec<String> = floating::live(&stored, now).into_keys().collect();
    let mut expected: Vec<String> = held.iter().map(|d| d.to_string()).collect();
    expected.sort();
    assert_eq!(holders, expected, "the license holds exactly the devices that were answered 200");
    // A holder's check refreshes its slot; the answer counts the holders.
    let again = f.app.send(f.client.check(&check_body("FLOAT5", held[0]))).await;
    assert_eq!(again.status(), 200);
    assert_eq!(in_use_of(&again), json!(5));
    let refused = f.app.send(f.client.check(&check_body("FLOAT5", "dev-not-holding"))).await;
    assert_error(&refused, 400, "device_not_found");
}

async fn an_expired_slot_is_free_again(setup) {
    let f = Fixture::new(setup).await;
    let past = Timestamp::now().millis() - 1;
    let license = f
        .key_license("FLOATX", |l| {
            floating(2)(l);
            l.floating = [("gone-1".to_owned(), past), ("gone-2".to_owned(), past)].into();
            l.floating_version = 3;
        })
        .await;
    activate_all(&f, "FLOATX", &["dev-a".to_owned()]).await;
    let resp = f.app.send(f.client.check(&check_body("FLOATX", "dev-a"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(in_use_of(&resp), json!(1));
    let stored = f.license_now(&license).await;
    assert_eq!(stored.floating.keys().collect::<Vec<_>>(), ["dev-a"], "expired holders are pruned");
    assert_eq!(stored.floating_version, 4);
}

async fn a_license_that_is_not_floating_holds_no_slot(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("PLAIN", |l| l.terms.floating_users = 1).await;
    activate_all(&f, "PLAIN", &["a".to_owned(), "b".to_owned()]).await;
    for hw in ["a", "b"] {
        let resp = f.app.send(f.client.check(&check_body("PLAIN", hw))).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(in_use_of(&resp), Value::Null, "no floating_in_use_devices");
    }
    assert!(f.license_now(&license).await.floating.is_empty());
}

async fn a_release_frees_the_slot_at_once(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("FLOAT1", floating(1)).await;
    activate_all(&f, "FLOAT1", &["a".to_owned(), "b".to_owned()]).await;
    let check = |hw: &str| f.app.send(f.client.check(&check_body("FLOAT1", hw)));
    let release = |hw: &str| f.app.send(f.client.call(Endpoint::FloatingRelease, &check_body("FLOAT1", hw)));
    assert_eq!(check("a").await.status(), 200);
    assert_error(&check("b").await, 400, "floating_not_available");
    // A device that holds no slot releases nothing: the same answer, nothing written.
    let version = f.license_now(&license).await.floating_version;
    let resp = release("b").await;
    assert_eq!((resp.status().as_u16(), resp.body().as_ref()), (200, &b"license_released"[..]));
    assert_eq!(f.license_now(&license).await.floating_version, version);
    let resp = release("a").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.body().as_ref(), b"license_released");
    assert!(resp.headers().get("LicenseSignature").is_none(), "a plain-string answer is not signed");
    assert!(f.license_now(&license).await.floating.is_empty());
    let taken = check("b").await;
    assert_eq!(taken.status(), 200, "the released slot is free at once");
    assert_eq!(in_use_of(&taken), json!(1));
    assert_error(&release("never-activated").await, 400, "device_not_found");
    assert_error(
        &f.app.send(f.client.call(Endpoint::FloatingRelease, &json!({"product": "nope", "hardware_id": "a", "license_key": "FLOAT1"}))).await,
        400,
        "unknown_product",
    );
}

async fn a_borrow_holds_the_slot_within_max_borrow_time(setup) {
    let f = Fixture::new(setup).await;
    let license = f
        .key_license("FLOATB", |l| {
            floating(1)(l);
            l.terms.can_borrow = true;
            l.terms.max_borrow_time = 48;
        })
        .await;
    activate_all(&f, "FLOATB", &["a".to_owned(), "b".to_owned()]).await;
    let borrow = |hw: &str, until: Timestamp| {
        let mut body = check_body("FLOATB", hw);
        body["borrowed_until"] = json!(until.to_string());
        f.app.send(f.client.call(Endpoint::FloatingBorrow, &body))
    };
    let now = Timestamp::now();
    let hours = |h: i64| Timestamp::from_millis(now.millis() + h * 3_600_000);
    assert_error(&borrow("a", hours(49)).await, 400, "license_not_borrowable");
    assert_error(&borrow("a", hours(-1)).await, 400, "license_not_borrowable");
    let resp = borrow("a", hours(47)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert!(resp.headers().get("LicenseSignature").is_some());
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["is_borrowed"], json!(true));
    assert_eq!(body["borrowed_until"], json!(hours(47).to_string()));
    assert_eq!(body["license_key"], json!("FLOATB"));
    // The borrowed slot is held: another device gets none, and a check by the borrower shows the borrow.
    assert_error(&borrow("b", hours(1)).await, 400, "floating_not_available");
    let check: Value = serde_json::from_slice(f.app.send(f.client.check(&check_body("FLOATB", "a"))).await.body()).unwrap();
    assert_eq!((check["is_borrowed"].clone(), check["borrowed_until"].clone()), (json!(true), json!(hours(47).to_string())));
    assert_eq!(f.license_now(&license).await.floating["a"], hours(47).millis(), "a check keeps the borrow");
    assert_error(
        &f.app.send(f.client.call(Endpoint::FloatingBorrow, &check_body("FLOATB", "a"))).await,
        400,
        "missing_parameters",
    );
    let not_borrowable = f.key_license("NOBORROW", floating(1)).await;
    activate_all(&f, "NOBORROW", &["a".to_owned()]).await;
    let mut body = check_body("NOBORROW", "a");
    body["borrowed_until"] = json!(hours(1).to_string());
    assert_error(&f.app.send(f.client.call(Endpoint::FloatingBorrow, &body)).await, 400, "license_not_borrowable");
    assert!(f.license_now(&not_borrowable).await.floating.is_empty(), "a refused borrow writes nothing");
}

// A bundle check takes or refreshes the device's slot on each floating cloud member exactly as
// `check_license` does, in the same all-or-nothing write as the members' device records: 10 devices
// checking a bundle whose floating member has 3 slots at once → exactly 3 hold one, the others get
// `floating_not_available` and write nothing; the other member holds no slots.
async fn a_bundle_check_takes_the_floating_members_slot(setup) {
    let f = Fixture::new(setup).await;
    let catalog = json!({"companies": [{"code": "c1", "id": 7,
        "products": [{"short_code": "fm1", "id": 51}, {"short_code": "fm2", "id": 52},
                     {"short_code": "fb", "id": 50, "bundle_products": ["fm1", "fm2"]}],
        "licenses": [{"id": 500, "product": "fb", "license_key": "FB-1", "max_activations": 20,
            "members": [{"id": 501, "product": "fm1", "is_floating_cloud": true, "floating_users": 3, "floating_timeout": 10},
                        {"id": 502, "product": "fm2"}]}]}]});
    let catalog = license_api::catalog::Catalog::parse(&catalog.to_string(), "floating-bundle.json").unwrap();
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    let suite = |hw: &str| json!({"product": "fb", "hardware_id": hw, "license_key": "FB-1"});
    let devices: Vec<String> = (0..10).map(|i| format!("dev-{i}")).collect();
    for hw in &devices {
        let resp = f.app.send(crate::bundles::post(&f.client, "/api/v4/activate_bundle", &suite(hw))).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    }
    let mut apps = Vec::new();
    for _ in 0..5 {
        apps.push(f.env.instance().await);
    }
    let sends = devices
        .iter()
        .enumerate()
        .map(|(i, hw)| apps[i % apps.len()].send(crate::bundles::check(&f.client, &suite(hw))));
    let answers = join_all(sends).await;
    let held: Vec<&String> = devices.iter().zip(&answers).filter(|(_, r)| r.status() == 200).map(|(d, _)| d).collect();
    let not_available = (400, "floating_not_available".to_owned());
    let refused = answers.iter().filter(|r| r.status() != 200 && error_of(r) == not_available).count();
    assert_eq!((held.len(), refused), (3, 7), "exactly the floating member's slots are handed out");
    let member = |product: &str| license_api::plan::LicenseAddr::Key {
        company: f.company.clone(),
        product: integration_tests::fixtures::product_code(product),
        key: license_api::ids::LicenseKey::parse("FB-1").unwrap(),
    };
    let stored = f.store().get_license(&member("fm1")).await.unwrap().unwrap();
    let holders: Vec<&String> = stored.floating.keys().collect();
    let mut expected = held.clone();
    expected.sort();
    assert_eq!(holders, expected, "the holders are the devices answered 200");
    let other = f.store().get_license(&member("fm2")).await.unwrap().unwrap();
    assert!(other.floating.is_empty(), "a member that is not floating holds no slots");
    // A holder's check refreshes its slot and shows the slots in use on the floating member only.
    let again = f.app.send(crate::bundles::check(&f.client, &suite(held[0]))).await;
    assert_eq!(again.status(), 200, "{}", String::from_utf8_lossy(again.body()));
    let elements: Vec<Value> = serde_json::from_slice(again.body()).unwrap();
    assert_eq!(elements[0]["product_details"]["short_code"], "fm1");
    assert_eq!((elements[0]["floating_in_use_devices"].clone(), elements[1].get("floating_in_use_devices")), (json!(3), None));
    let refreshed = f.store().get_license(&member("fm1")).await.unwrap().unwrap();
    assert!(refreshed.floating[held[0].as_str()] >= stored.floating[held[0].as_str()], "the slot was refreshed");
    assert_eq!(refreshed.floating_version, stored.floating_version + 1);
}
}
