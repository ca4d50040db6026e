//! Consumption and features (SPEC §9): `add_consumption`, `add_feature_consumption` and
//! `check_license_feature` through the real interface on every setup — each rule and error code, the
//! answers' exact shapes and signatures, the state afterwards, and the concurrency races of issue 17
//! (50 additions of 3 against 100: exactly 33 succeed, the total is 99).

use crate::concurrency::race;
use integration_tests::fixtures::{key_body, user_body, KEY_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::model::{Feature, FeatureType, LicenseType, ProductDoc};
use license_api::time::Timestamp;
use serde_json::{json, Value};

const ADD: &str = "/api/v4/add_consumption";
const ADD_FEATURE: &str = "/api/v4/add_feature_consumption";
const CHECK_FEATURE: &str = "/api/v4/check_license_feature";

/// The key product `kp` with an activation feature, two consumption features (one limited to 100
/// without overages, one with overages, negatives and a daily reset) and an expired one.
async fn with_features(f: &Fixture) {
    let consumption = |id, code: &str| Feature {
        id,
        code: code.into(),
        name: code.to_uppercase(),
        feature_type: FeatureType::Consumption,
        ..Feature::default()
    };
    f.put_product(|p| {
        *p = ProductDoc {
            id: 11,
            code: integration_tests::fixtures::product_code(KEY_PRODUCT),
            name: "Key Product".into(),
            features: vec![
                Feature {
                    id: 1,
                    code: "pdf".into(),
                    name: "Export".into(),
                    ..Feature::default()
                },
                Feature {
                    max_consumption: 100,
                    ..consumption(2, "renders")
                },
                Feature {
                    max_consumption: 10,
                    total_consumptions: 4,
                    allow_overages: true,
                    max_overages: 2,
                    allow_negative_consumptions: true,
                    reset_consumption: true,
                    consumption_period: Some("daily".into()),
                    ..consumption(3, "credits")
                },
                Feature {
                    max_consumption: 100,
                    expiry_date: Timestamp::parse_iso("2020-01-01T00:00:00Z"),
                    ..consumption(4, "old")
                },
            ],
            ..ProductDoc::default()
        }
    })
    .await;
}

fn post(f: &Fixture, path: &str, body: Value) -> http::Request<bytes::Bytes> {
    f.client.post_json(path, &body)
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// A 200 whose `LicenseSignature` verifies, as JSON.
fn signed(f: &Fixture, resp: &http::Response<bytes::Bytes>) -> Value {
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let body = f.client.verify_body(resp).expect("LicenseSignature verifies");
    serde_json::from_slice(&body).unwrap()
}

async fn activate(f: &Fixture, key: &str, hw: &str) {
    let resp = f.app.send(f.client.activate(&key_body(key, hw))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}

async fn check(f: &Fixture, key: &str, hw: &str) -> Value {
    let resp = f.app.send(f.client.check(&key_body(key, hw))).await;
    signed(f, &resp)
}

fn count(results: &[(u16, String)], status: u16, code: &str) -> usize {
    results.iter().filter(|(s, c)| *s == status && c == code).count()
}

integration_tests::matrix! {
async fn add_consumption_answers_the_spec_fields_and_keeps_the_limit(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("CON-1", |l| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
        l.terms.total_consumptions = 2;
    }).await;
    activate(&f, "CON-1", "d1").await;
    let body = key_body("CON-1", "d1");

    let resp = f.app.send(post(&f, ADD, with(body.clone(), json!({"consumptions": 3, "event": "consumption_add"})))).await;
    signed(&f, &resp);
    // Exactly the SPEC's fields, in its order.
    assert_eq!(
        std::str::from_utf8(resp.body()).unwrap(),
        format!(r#"{{"id":{},"max_consumptions":10,"total_consumptions":5,"allow_unlimited_consumptions":false,"allow_negative_consumptions":false,"allow_overages":false,"max_overages":0,"reset_consumption":false,"consumption_period":null,"company":{{"id":7}}}}"#, license.id)
    );
    // `consumptions` defaults to 1, and arrives as a number or a numeric string.
    let answer = signed(&f, &f.app.send(post(&f, ADD, body.clone())).await);
    assert_eq!(answer["total_consumptions"], 6);
    let answer = signed(&f, &f.app.send(post(&f, ADD, with(body.clone(), json!({"consumptions": "2"})))).await);
    assert_eq!(answer["total_consumptions"], 8);
    // 8 + 3 > 10: refused, nothing written.
    let resp = f.app.send(post(&f, ADD, with(body.clone(), json!({"consumptions": 3})))).await;
    assert_error(&resp, 400, "license_not_enough_consumptions");
    assert_eq!(f.license_now(&license).await.consumptions, 6, "recorded 3 + 1 + 2 over the catalog's 2");
    // Exactly up to the limit is allowed.
    let answer = signed(&f, &f.app.send(post(&f, ADD, with(body.clone(), json!({"consumptions": 2})))).await);
    assert_eq!(answer["total_consumptions"], 10);
    // Check and activation answers show the same total.
    assert_eq!(check(&f, "CON-1", "d1").await["total_consumptions"], 10);
    for (extra, code) in [
        (json!({"consumptions": -1}), "negative_consumptions_not_allowed"),
        (json!({"consumptions": 1.5}), "validation_error"),
        (json!({"consumptions": 9_007_199_254_740_992_i64}), "validation_error"),
        (json!({"consumptions": "many"}), "validation_error"),
        (json!({"allow_overages": "perhaps"}), "validation_error"),
    ] {
        let resp = f.app.send(post(&f, ADD, with(body.clone(), extra.clone()))).await;
        assert_error(&resp, 400, code);
    }
    assert_eq!(f.license_now(&license).await.consumptions, 8);
}

async fn add_consumption_needs_an_active_device_of_a_consumption_license(setup) {
    let f = Fixture::new(setup).await;
    let metered = f.key_license("CON-2", |l| {
        l.max_activations = 2;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
    }).await;
    f.key_license("PERP", |_| {}).await;
    f.key_license("DISABLED", |l| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
    }).await;
    // No device active at all, then another device than the one active.
    assert_error(&f.app.send(post(&f, ADD, key_body("CON-2", "d1"))).await, 400, "license_not_active");
    activate(&f, "CON-2", "d1").await;
    assert_error(&f.app.send(post(&f, ADD, key_body("CON-2", "other"))).await, 400, "device_not_found");
    let resp = f.app.send(f.client.deactivate(&key_body("CON-2", "d1"))).await;
    assert_eq!(resp.status(), 200);
    assert_error(&f.app.send(post(&f, ADD, key_body("CON-2", "d1"))).await, 400, "license_not_active");
    // A license that is not a consumption license, even for 0.
    activate(&f, "PERP", "d1").await;
    for amount in [1, 0] {
        let resp = f.app.send(post(&f, ADD, with(key_body("PERP", "d1"), json!({"consumptions": amount})))).await;
        assert_error(&resp, 400, "license_not_consumption");
    }
    // The license as named: unknown key, unknown product, and a disabled license.
    assert_error(&f.app.send(post(&f, ADD, key_body("NOPE", "d1"))).await, 400, "license_not_found");
    let resp = f.app.send(post(&f, ADD, json!({"product": "nope", "hardware_id": "d1", "license_key": "CON-2"}))).await;
    assert_error(&resp, 400, "unknown_product");
    activate(&f, "DISABLED", "d1").await;
    f.key_license("DISABLED", |l| {
        l.enabled = false;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
    }).await;
    assert_error(&f.app.send(post(&f, ADD, key_body("DISABLED", "d1"))).await, 400, "license_not_enabled");
    // A read-only key may not add.
    let read_only = f.put_key("ro", |k| k.read_only = true).await;
    let resp = f.app.send(read_only.post_json(ADD, &key_body("CON-2", "d1"))).await;
    assert_error(&resp, 400, "read_only_api_key");
    assert_eq!(f.license_now(&metered).await.consumptions, 0, "nothing refused was written");
}

async fn add_consumption_for_a_license_user(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(700, |l| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 5;
    }).await;
    f.user("ann@example.com", 1, &[(&license, 0)]).await;
    let resp = f.app.send(f.client.activate(&user_body("ann@example.com", "u1"))).await;
    assert_eq!(resp.status(), 200);
    // No password needed, as for a check.
    let body = json!({"product": "up", "hardware_id": "u1", "username": "ann@example.com", "consumptions": 4});
    assert_eq!(signed(&f, &f.app.send(post(&f, ADD, body.clone())).await)["total_consumptions"], 4);
    assert_error(&f.app.send(post(&f, ADD, body)).await, 400, "license_not_enough_consumptions");
    // An unknown user answers like a device that is not active (SPEC §2.1: emails are not revealed).
    let resp = f.app.send(post(&f, ADD, json!({"product": "up", "hardware_id": "u1", "username": "eve@example.com"}))).await;
    assert_error(&resp, 400, "device_not_found");
}

async fn overages_unlimited_negative_and_the_safe_range(setup) {
    let f = Fixture::new(setup).await;
    let terms = |l: &mut license_api::model::License| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
    };
    f.key_license("OVER", |l| {
        terms(l);
        l.terms.allow_overages = true;
        l.terms.max_overages = 5;
    }).await;
    f.key_license("STRICT", terms).await;
    f.key_license("UNLIM", |l| {
        terms(l);
        l.terms.allow_unlimited_consumptions = true;
    }).await;
    f.key_license("NEG", |l| {
        terms(l);
        l.terms.allow_negative_consumptions = true;
    }).await;
    for key in ["OVER", "STRICT", "UNLIM", "NEG"] {
        activate(&f, key, "d1").await;
    }
    let add = |key: &str, extra: Value| post(&f, ADD, with(key_body(key, "d1"), extra));

    // Overages: up to max + max_overages = 15.
    assert_eq!(signed(&f, &f.app.send(add("OVER", json!({"consumptions": 10}))).await)["total_consumptions"], 10);
    // The request may only tighten the vendor's terms: no overages for it, or fewer of them.
    assert_error(&f.app.send(add("OVER", json!({"consumptions": 1, "allow_overages": false, "max_overages": 0}))).await, 400, "license_not_enough_consumptions");
    assert_error(&f.app.send(add("OVER", json!({"consumptions": 3, "allow_overages": true, "max_overages": 2}))).await, 400, "license_not_enough_consumptions");
    let answer = signed(&f, &f.app.send(add("OVER", json!({"consumptions": 2, "allow_overages": true, "max_overages": 2}))).await);
    assert_eq!((answer["total_consumptions"].as_i64(), answer["max_overages"].as_i64()), (Some(12), Some(5)), "the answer shows the vendor's terms");
    // A client asking for more overages, or a negative "no request", changes nothing.
    assert_eq!(signed(&f, &f.app.send(add("OVER", json!({"consumptions": 3, "max_overages": 1000}))).await)["total_consumptions"], 15);
    assert_error(&f.app.send(add("OVER", json!({"consumptions": 1, "max_overages": -1}))).await, 400, "license_not_enough_consumptions");
    // ... and can never allow overages the vendor did not.
    assert_error(&f.app.send(add("STRICT", json!({"consumptions": 11, "allow_overages": true, "max_overages": 100}))).await, 400, "license_not_enough_consumptions");

    // Unlimited: any total within ±(2^53 − 1), never beyond.
    let big = 9_007_199_254_740_000_i64;
    assert_eq!(signed(&f, &f.app.send(add("UNLIM", json!({"consumptions": big}))).await)["total_consumptions"], big);
    assert_error(&f.app.send(add("UNLIM", json!({"consumptions": 1000}))).await, 400, "license_not_enough_consumptions");
    assert_eq!(signed(&f, &f.app.send(add("UNLIM", json!({"consumptions": 991}))).await)["total_consumptions"], 9_007_199_254_740_991_i64);

    // Negative amounts only where allowed, and down to −(2^53 − 1) at most.
    assert_eq!(signed(&f, &f.app.send(add("NEG", json!({"consumptions": -4}))).await)["total_consumptions"], -4);
    assert_error(&f.app.send(add("STRICT", json!({"consumptions": -1}))).await, 400, "negative_consumptions_not_allowed");
    assert_error(&f.app.send(add("NEG", json!({"consumptions": -9_007_199_254_740_991_i64}))).await, 400, "license_not_enough_consumptions");
    assert_eq!(check(&f, "NEG", "d1").await["total_consumptions"], -4);
}

async fn a_periodic_counter_starts_a_new_period_at_zero(setup) {
    let f = Fixture::new(setup).await;
    // Counted 9 of 10 in a day long gone (the counter's stored period): today starts at zero.
    let license = f.key_license("DAILY", |l| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
        l.terms.total_consumptions = 1;
        l.terms.reset_consumption = true;
        l.terms.consumption_period = Some("daily".into());
        l.consumptions = 8;
        l.consumptions_period = Timestamp::parse_iso("2024-03-01T00:00:00Z");
    }).await;
    activate(&f, "DAILY", "d1").await;
    assert_eq!(check(&f, "DAILY", "d1").await["total_consumptions"], 0, "the period ended");
    let answer = signed(&f, &f.app.send(post(&f, ADD, with(key_body("DAILY", "d1"), json!({"consumptions": 7})))).await);
    assert_eq!((answer["total_consumptions"].as_i64(), answer["reset_consumption"].as_bool()), (Some(7), Some(true)));
    assert_eq!(answer["consumption_period"], "daily");
    let now = f.license_now(&license).await;
    assert_eq!(now.total_consumptions(), 7, "the catalog's 1 counts in the old period only");
    assert!(now.consumptions_period > Timestamp::parse_iso("2024-03-01T00:00:00Z"), "the new period is recorded");
    // Within the new period the limit holds again.
    assert_error(&f.app.send(post(&f, ADD, with(key_body("DAILY", "d1"), json!({"consumptions": 4})))).await, 400, "license_not_enough_consumptions");
    assert_eq!(check(&f, "DAILY", "d1").await["total_consumptions"], 7);
}

async fn add_feature_consumption_answers_the_feature(setup) {
    let f = Fixture::new(setup).await;
    with_features(&f).await;
    let license = f.key_license("FEAT", |_| {}).await;
    activate(&f, "FEAT", "d1").await;
    let add = |code: &str, amount: i64| post(&f, ADD_FEATURE, with(key_body("FEAT", "d1"), json!({"feature": code, "consumptions": amount})));

    let answer = signed(&f, &f.app.send(add("renders", 60)).await);
    assert_eq!(answer, json!({"id": 2, "code": "renders", "name": "RENDERS", "feature_type": "consumption",
        "expiry_date": null, "metadata": {}, "is_floating": false, "is_floating_cloud": false,
        "max_consumption": 100, "total_consumptions": 60, "allow_unlimited_consumptions": false,
        "allow_overages": false, "max_overages": 0, "reset_consumption": false, "consumption_period": null,
        "allow_negative_consumptions": false}));
    assert_error(&f.app.send(add("renders", 41)).await, 400, "license_not_enough_consumptions");
    assert_error(&f.app.send(add("renders", -1)).await, 400, "negative_consumptions_not_allowed");
    // Overages (10 + 2 over the catalog's 4), negative amounts, and the same answer in a check.
    assert_eq!(signed(&f, &f.app.send(add("credits", 8)).await)["total_consumptions"], 12);
    assert_error(&f.app.send(add("credits", 1)).await, 400, "license_not_enough_consumptions");
    assert_eq!(signed(&f, &f.app.send(add("credits", -5)).await)["total_consumptions"], 7);
    let checked = check(&f, "FEAT", "d1").await;
    let totals: Vec<_> = checked["product_features"].as_array().unwrap().iter()
        .map(|feature| (feature["code"].as_str().unwrap().to_owned(), feature["total_consumptions"].clone()))
        .collect();
    // The expired `old` is left out: the check did not send `include_expired_features=true`.
    assert_eq!(totals, [("pdf".into(), Value::Null), ("renders".into(), json!(60)), ("credits".into(), json!(7))]);
    // An activation feature, an unknown one, an expired one, none named.
    assert_error(&f.app.send(add("pdf", 1)).await, 400, "invalid_license_feature_code");
    assert_error(&f.app.send(add("nope", 1)).await, 400, "invalid_license_feature_code");
    assert_error(&f.app.send(add("old", 1)).await, 400, "license_feature_expired");
    let resp = f.app.send(post(&f, ADD_FEATURE, with(key_body("FEAT", "d1"), json!({"consumptions": 1})))).await;
    assert_error(&resp, 400, "missing_parameters");
    // A device that is not active.
    let resp = f.app.send(post(&f, ADD_FEATURE, with(key_body("FEAT", "d2"), json!({"feature": "renders"})))).await;
    assert_error(&resp, 400, "device_not_found");
    let now = f.license_now(&license).await;
    assert_eq!(now.feature_consumptions.into_iter().collect::<Vec<_>>(), [("credits".to_owned(), 3), ("renders".to_owned(), 60)]);
}

async fn check_license_feature_answers_the_feature_object(setup) {
    let f = Fixture::new(setup).await;
    with_features(&f).await;
    f.key_license("CHK", |_| {}).await;
    activate(&f, "CHK", "d1").await;
    let get = |extra: Value| f.client.get(CHECK_FEATURE, &with(key_body("CHK", "d1"), extra));

    let pdf = signed(&f, &f.app.send(get(json!({"feature": "pdf"}))).await);
    assert_eq!(pdf, json!({"id": 1, "code": "pdf", "name": "Export", "feature_type": "activation", "expiry_date": null,
        "metadata": {}, "is_floating": false, "is_floating_cloud": false}));
    // The same item the check's `product_features` holds, for a consumption feature too.
    signed(&f, &f.app.send(post(&f, ADD_FEATURE, with(key_body("CHK", "d1"), json!({"feature": "credits", "consumptions": 2})))).await);
    let credits = signed(&f, &f.app.send(get(json!({"feature": "credits"}))).await);
    let checked = check(&f, "CHK", "d1").await;
    assert_eq!(credits, checked["product_features"][2]);
    assert_eq!(credits["total_consumptions"], 6);
    // Expired: refused, unless the request asks for expired features too.
    assert_error(&f.app.send(get(json!({"feature": "old"}))).await, 400, "license_feature_expired");
    let old = signed(&f, &f.app.send(get(json!({"feature": "old", "include_expired_features": "true"}))).await);
    assert_eq!(old["expiry_date"], "2020-01-01T00:00:00.000Z");
    assert_error(&f.app.send(get(json!({"feature": "old", "include_expired_features": "false"}))).await, 400, "license_feature_expired");
    assert_error(&f.app.send(get(json!({"feature": "nope"}))).await, 400, "invalid_license_feature_code");
    assert_error(&f.app.send(get(json!({}))).await, 400, "missing_parameters");
    // The device must be active; a read-only key may ask.
    let resp = f.app.send(f.client.get(CHECK_FEATURE, &json!({"product": KEY_PRODUCT, "hardware_id": "d2", "license_key": "CHK", "feature": "pdf"}))).await;
    assert_error(&resp, 400, "device_not_found");
    let read_only = f.put_key("ro", |k| k.read_only = true).await;
    let resp = f.app.send(read_only.get(CHECK_FEATURE, &with(key_body("CHK", "d1"), json!({"feature": "pdf"})))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}

async fn additions_racing_the_deactivation_of_their_device_count_exactly(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("GONE", |l| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.allow_unlimited_consumptions = true;
    }).await;
    activate(&f, "GONE", "d1").await;
    let apps = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    // 30 additions of 1 with the device's deactivation in their midst.
    let mut requests: Vec<_> = (0..30).map(|_| post(&f, ADD, key_body("GONE", "d1"))).collect();
    requests.insert(10, f.client.deactivate(&key_body("GONE", "d1")));
    let results = race(&apps, requests).await;
    assert_eq!(results[10], (200, String::new()), "the deactivation");
    let added = results.iter().enumerate().filter(|(i, r)| *i != 10 && r.0 == 200).count();
    assert_eq!(
        added + count(&results, 400, "license_not_active"),
        30,
        "an addition after the deactivation is refused: {results:?}"
    );
    let now = f.license_now(&license).await;
    assert_eq!((now.consumptions, now.times_activated), (added as i64, 0), "exactly the additions answered 200");
}

async fn fifty_concurrent_additions_of_three_against_one_hundred(setup) {
    let f = Fixture::new(setup).await;
    with_features(&f).await;
    let license = f.key_license("RACE", |l| {
        l.max_activations = 2;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 100;
    }).await;
    activate(&f, "RACE", "d1").await;
    let apps = [f.env.instance().await, f.env.instance().await, f.env.instance().await, f.env.instance().await, f.env.instance().await];

    for (path, extra) in [(ADD, json!({"consumptions": 3})), (ADD_FEATURE, json!({"feature": "renders", "consumptions": 3}))] {
        let requests = (0..50).map(|_| post(&f, path, with(key_body("RACE", "d1"), extra.clone()))).collect();
        let results = race(&apps, requests).await;
        assert_eq!(
            (count(&results, 200, ""), count(&results, 400, "license_not_enough_consumptions")),
            (33, 17),
            "{path}: exactly the additions that fit: {results:?}"
        );
    }
    let now = f.license_now(&license).await;
    assert_eq!((now.consumptions, now.feature_consumptions.get("renders").copied()), (99, Some(99)));
    // Check and activation answers show the same totals.
    let checked = check(&f, "RACE", "d1").await;
    assert_eq!((checked["total_consumptions"].as_i64(), checked["product_features"][1]["total_consumptions"].as_i64()), (Some(99), Some(99)));
    let resp = f.app.send(f.client.activate(&key_body("RACE", "d2"))).await;
    let activated = signed(&f, &resp);
    assert_eq!((activated["total_consumptions"].as_i64(), activated["product_features"][1]["total_consumptions"].as_i64()), (Some(99), Some(99)));
}
}

/// An addition whose answer DynamoDB lost (dropped, or a timeout after it applied) is retried with its
/// write's token, so it is counted once and answered as done — with and without the SDK's own retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_addition_whose_answer_was_lost_counts_once() {
    use integration_tests::counter::RoundTrips;
    use integration_tests::faults::{Fault, Faults};
    use integration_tests::fixtures::{API_KEY, SHARED_KEY};
    use integration_tests::{Backend, Setup, Transport};
    for fault in [Fault::DropResponse, Fault::TimeoutAfterApply] {
        for sdk_retries in [false, true] {
            let f = Fixture::new(Setup::new("lost-addition", Backend::DynamoDb, Transport::Lambda)).await;
            let license = f
                .key_license("LOST-C", |l| {
                    l.terms.license_type = LicenseType::Consumption;
                    l.terms.max_consumptions = 10;
                })
                .await;
            activate(&f, "LOST-C", "d1").await;
            let faults = Faults::new(move |op, n| {
                if op == "TransactWriteItems" && n == 0 {
                    fault
                } else {
                    Fault::Pass
                }
            });
            let store = f.env.faulty_store(&faults, sdk_retries);
            let app = f
                .env
                .instance_on(store, RoundTrips::default(), license_api::state::DEFAULT_DEADLINE)
                .await;
            let client = app.client(API_KEY, SHARED_KEY);
            let resp = app
                .send(client.post_json(ADD, &with(key_body("LOST-C", "d1"), json!({"consumptions": 4}))))
                .await;
            assert_eq!(
                resp.status(),
                200,
                "{fault:?} (SDK retries {sdk_retries}): {:?}",
                resp.body()
            );
            assert_eq!(faults.injected(), [("TransactWriteItems".to_owned(), fault)]);
            assert_eq!(f.license_now(&license).await.consumptions, 4, "{fault:?}: counted once");
        }
    }
}

integration_tests::matrix! {
// A check lists an expired feature only when it sends `include_expired_features=true` (the official
// clients' parameter; false or absent leave it out); an activation answer lists every feature, expired
// ones with their `expiry_date`.
async fn check_lists_expired_features_only_when_asked(setup) {
    let f = Fixture::new(setup).await;
    with_features(&f).await;
    f.key_license("EXP", |_| {}).await;
    let codes = |obj: &Value| -> Vec<String> {
        obj["product_features"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
    };
    let all = ["pdf", "renders", "credits", "old"];
    let activated = f.app.send(f.client.activate(&key_body("EXP", "e1"))).await;
    let activated = f.client.verify_license(&activated, "e1", "EXP").unwrap();
    assert_eq!(codes(&activated), all);
    assert_eq!(activated["product_features"][3]["expiry_date"], "2020-01-01T00:00:00.000Z");
    let query = |flag: Option<&str>| {
        let mut q = key_body("EXP", "e1");
        if let Some(flag) = flag {
            q["include_expired_features"] = json!(flag);
        }
        f.client.check(&q)
    };
    for (flag, expected) in [(None, &all[..3]), (Some("false"), &all[..3]), (Some("true"), &all[..])] {
        let checked = f.client.verify_license(&f.app.send(query(flag)).await, "e1", "EXP").unwrap();
        assert_eq!(codes(&checked), expected, "include_expired_features {flag:?}");
    }
    assert_error(&f.app.send(f.client.check(&with(key_body("EXP", "e1"), json!({"include_expired_features": "maybe"})))).await, 400, "validation_error");
}
}
