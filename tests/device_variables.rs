//! SPEC §9 device variables: `track_device_variables` stores on the device (activation's storage and
//! per-device bound), `get_device_variables` and activation and check answers show the same objects;
//! concurrent tracking of one device loses no variable, and the bound holds under concurrency.

use crate::concurrency::race;
use integration_tests::fixtures::{key_body, user_body, USER_PRODUCT};
use integration_tests::{assert_error, Fixture, Instance};
use license_api::handlers::Endpoint;
use license_api::model::{Device, License, MAX_DEVICE_VARIABLES};
use license_api::plan::LicenseAddr;
use serde_json::{json, Value};

fn with_variables(mut body: Value, variables: Value) -> Value {
    body["variables"] = variables;
    body
}

/// The device `hw` of `license` as stored.
async fn device(f: &Fixture, license: &License, hw: &str) -> Device {
    let devices = f.store().list_devices(&LicenseAddr::of(license)).await.unwrap();
    devices
        .into_iter()
        .find(|d| d.hardware_id.as_str() == hw)
        .expect("device stored")
}

/// A 200 answer's body, its signature verified.
fn verified(f: &Fixture, resp: &http::Response<bytes::Bytes>) -> Value {
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let body = f.client.verify_body(resp).expect("signed with the server's key");
    serde_json::from_slice(&body).unwrap()
}

/// `(variable, value)` of every object of a variables answer, sorted.
fn pairs(list: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = list
        .as_array()
        .expect("a list of variables")
        .iter()
        .map(|v| {
            (
                v["variable"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

async fn instances(f: &Fixture) -> Vec<Instance> {
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(f.env.instance().await);
    }
    apps
}

integration_tests::matrix! {
async fn tracked_variables_are_stored_and_every_answer_shows_them(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("VAR-T", |_| {}).await;
    let act = with_variables(key_body("VAR-T", "h1"), json!({"seat": "blue"}));
    let activated = verified(&f, &f.app.send(f.client.activate(&act)).await);
    let seat_created = activated["variables"][0]["created_at"].clone();

    // Any JSON scalar; a name the device holds takes the new value and keeps its creation time.
    let track = with_variables(key_body("VAR-T", "h1"), json!({"build": 42, "beta": true, "seat": "red", "ratio": 0.5}));
    let resp = f.app.send(f.client.call(Endpoint::TrackDeviceVariables, &track)).await;
    let tracked = verified(&f, &resp);
    assert_eq!(
        pairs(&tracked),
        owned(&[("beta", "true"), ("build", "42"), ("ratio", "0.5"), ("seat", "red")]),
        "the variables sent, as stored: {tracked}"
    );
    let device_id = activated["device_id"].clone();
    for v in tracked.as_array().unwrap() {
        assert_eq!(keys(v), ["created_at", "device_id", "value", "variable"], "{v}");
        assert_eq!(v["device_id"], device_id);
    }
    let seat = tracked.as_array().unwrap().iter().find(|v| v["variable"] == "seat").unwrap();
    assert_eq!(seat["created_at"], seat_created, "a tracked name keeps its creation time");

    // State: the device holds the union, once each.
    let stored = device(&f, &license, "h1").await;
    let mut names: Vec<&str> = stored.variables.iter().map(|v| v.variable.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["beta", "build", "ratio", "seat"]);

    // get_device_variables lists them with their ids (SPEC §9); check and a re-activation answer the
    // same objects, without ids (SPEC §3).
    let listed = verified(&f, &f.app.send(f.client.call(Endpoint::GetDeviceVariables, &key_body("VAR-T", "h1"))).await);
    let listed = listed.as_array().unwrap().clone();
    assert_eq!(listed.len(), 4);
    let mut ids = Vec::new();
    for v in &listed {
        assert_eq!(keys(v), ["created_at", "device_id", "id", "value", "variable"], "{v}");
        let id = v["id"].as_i64().expect("an integer id");
        assert!(id > 0 && id < 1 << 53, "{v}");
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one id per variable");
    let without_ids: Vec<Value> = listed
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v.as_object_mut().unwrap().remove("id");
            v
        })
        .collect();
    assert!(without_ids.contains(seat));
    let checked = f.client.verify_license(&f.app.send(f.client.check(&key_body("VAR-T", "h1"))).await, "h1", "VAR-T").unwrap();
    assert_eq!(checked["variables"], json!(without_ids), "check shows what get_device_variables lists");
    assert_eq!(f.app.send(f.client.deactivate(&key_body("VAR-T", "h1"))).await.status(), 200);
    let again = verified(&f, &f.app.send(f.client.activate(&key_body("VAR-T", "h1"))).await);
    assert_eq!(again["variables"], json!(without_ids), "activation shows the device's variables, tracked ones too");
    let relisted = verified(&f, &f.app.send(f.client.call(Endpoint::GetDeviceVariables, &key_body("VAR-T", "h1"))).await);
    assert_eq!(relisted, json!(listed), "ids are stable");
}

async fn user_based_devices_track_and_list_their_variables(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(701, |_| {}).await;
    f.user("ann@example.com", 1, &[(&license, 0)]).await;
    assert_eq!(f.app.send(f.client.activate(&user_body("ann@example.com", "h1"))).await.status(), 200);
    let named = json!({"product": USER_PRODUCT, "hardware_id": "h1", "username": "ann@example.com"});
    let track = with_variables(named.clone(), json!({"k": "v"}));
    let tracked = verified(&f, &f.app.send(f.client.call(Endpoint::TrackDeviceVariables, &track)).await);
    assert_eq!(pairs(&tracked), owned(&[("k", "v")]));
    let listed = verified(&f, &f.app.send(f.client.call(Endpoint::GetDeviceVariables, &named)).await);
    assert_eq!(pairs(&listed), pairs(&tracked));
    // An unknown user answers like a device not found (SPEC §2.1: emails are not revealed).
    let stranger = json!({"product": USER_PRODUCT, "hardware_id": "h1", "username": "nobody@example.com"});
    assert_error(&f.app.send(f.client.call(Endpoint::GetDeviceVariables, &stranger)).await, 400, "device_not_found");
    let stranger = with_variables(stranger, json!({"k": "x"}));
    assert_error(&f.app.send(f.client.call(Endpoint::TrackDeviceVariables, &stranger)).await, 400, "device_not_found");
    assert_eq!(device(&f, &license, "h1").await.variables.len(), 1);
}

async fn every_variables_exception(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("VAR-E", |_| {}).await;
    let track = |body: Value| f.app.send(f.client.call(Endpoint::TrackDeviceVariables, &body));
    let list = |body: Value| f.app.send(f.client.call(Endpoint::GetDeviceVariables, &body));
    let vars = json!({"a": "1"});
    let unknown = json!({"product": "nope", "hardware_id": "h1", "license_key": "VAR-E"});
    assert_error(&track(with_variables(unknown.clone(), vars.clone())).await, 400, "unknown_product");
    assert_error(&list(unknown).await, 400, "unknown_product");
    assert_error(&track(with_variables(key_body("MISSING", "h1"), vars.clone())).await, 400, "license_not_found");
    assert_error(&list(key_body("MISSING", "h1")).await, 400, "license_not_found");
    // No device active on the license at all, then another device than the active one.
    assert_error(&track(with_variables(key_body("VAR-E", "h1"), vars.clone())).await, 400, "license_not_active");
    assert_error(&list(key_body("VAR-E", "h1")).await, 400, "license_not_active");
    assert_eq!(f.app.send(f.client.activate(&key_body("VAR-E", "h1"))).await.status(), 200);
    assert_error(&track(with_variables(key_body("VAR-E", "h2"), vars.clone())).await, 400, "device_not_found");
    assert_error(&list(key_body("VAR-E", "h2")).await, 400, "device_not_found");
    // Malformed requests.
    assert_error(&track(key_body("VAR-E", "h1")).await, 400, "missing_parameters");
    assert_error(&track(with_variables(key_body("VAR-E", "h1"), json!({}))).await, 400, "missing_parameters");
    assert_error(&track(with_variables(key_body("VAR-E", "h1"), json!(["a"]))).await, 400, "validation_error");
    assert_error(&track(json!({"product": "kp", "license_key": "VAR-E", "variables": vars})).await, 400, "missing_parameters");
    // A read-only key may list but not track.
    let read_only = f.put_key("read-only-var", |k| k.read_only = true).await;
    let resp = f.app.send(read_only.call(Endpoint::TrackDeviceVariables, &with_variables(key_body("VAR-E", "h1"), json!({"a": "1"})))).await;
    assert_error(&resp, 400, "read_only_api_key");
    assert_eq!(f.app.send(read_only.call(Endpoint::GetDeviceVariables, &key_body("VAR-E", "h1"))).await.status(), 200);
    // A disabled license refuses both, as a check does.
    let disabled = f.key_license("VAR-D", |l| l.enabled = false).await;
    assert_error(&track(with_variables(key_body("VAR-D", "h1"), json!({"a": "1"}))).await, 400, "license_not_enabled");
    assert_error(&list(key_body("VAR-D", "h1")).await, 400, "license_not_enabled");
    assert_eq!(f.device_counts(&disabled).await, (0, 0));
    // Nothing above changed the device.
    assert!(device(&f, &license, "h1").await.variables.is_empty());
    // A deactivated device neither tracks nor lists.
    assert_eq!(f.app.send(f.client.deactivate(&key_body("VAR-E", "h1"))).await.status(), 200);
    assert_error(&track(with_variables(key_body("VAR-E", "h1"), json!({"a": "1"}))).await, 400, "license_not_active");
    assert!(device(&f, &license, "h1").await.variables.is_empty());
}

async fn tracking_is_bounded_like_activation_variables(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("VAR-B", |_| {}).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("VAR-B", "h1"))).await.status(), 200);
    let names = |prefix: &str, n: usize| -> Value {
        (0..n).map(|i| (format!("{prefix}{i}"), json!("x"))).collect::<serde_json::Map<_, _>>().into()
    };
    let track = |vars: Value| f.app.send(f.client.call(Endpoint::TrackDeviceVariables, &with_variables(key_body("VAR-B", "h1"), vars)));
    assert_eq!(track(names("a", 60)).await.status(), 200);
    let resp = track(names("b", 41)).await;
    assert_error(&resp, 400, "validation_error");
    assert!(String::from_utf8_lossy(resp.body()).contains("100"), "names the bound");
    assert_eq!(device(&f, &license, "h1").await.variables.len(), 60, "nothing changed");
    // Names held already do not count again; exactly the bound is fine.
    assert_eq!(track(names("a", 60)).await.status(), 200);
    assert_eq!(track(names("b", 40)).await.status(), 200);
    assert_eq!(device(&f, &license, "h1").await.variables.len(), MAX_DEVICE_VARIABLES);
    // Bytes: the 8 KiB bound of activation's variables.
    let big = f.key_license("VAR-BIG", |_| {}).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("VAR-BIG", "h1"))).await.status(), 200);
    let value = "v".repeat(1000);
    let big_track = |name: &str| {
        f.app.send(f.client.call(Endpoint::TrackDeviceVariables, &with_variables(key_body("VAR-BIG", "h1"), json!({ name: value }))))
    };
    for i in 0..7 {
        assert_eq!(big_track(&format!("n{i}")).await.status(), 200);
    }
    let resp = big_track("n8").await;
    assert_error(&resp, 400, "validation_error");
    assert!(String::from_utf8_lossy(resp.body()).contains("8192"));
    assert_eq!(device(&f, &big, "h1").await.variables.len(), 7);
}

async fn concurrent_tracking_of_one_device_loses_no_variable(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("VAR-C", |_| {}).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("VAR-C", "h1"))).await.status(), 200);
    let apps = instances(&f).await;
    let reqs = (0..20)
        .map(|i| {
            let body = with_variables(key_body("VAR-C", "h1"), json!({ format!("v{i}"): i }));
            f.client.call(Endpoint::TrackDeviceVariables, &body)
        })
        .collect();
    let results = race(&apps, reqs).await;
    assert!(results.iter().all(|r| r.0 == 200), "{results:?}");
    let stored = device(&f, &license, "h1").await;
    let mut names: Vec<String> = stored.variables.iter().map(|v| v.variable.clone()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(names, expected, "all 20 present, once each");
    assert!(stored.active);
    let listed = verified(&f, &f.app.send(f.client.call(Endpoint::GetDeviceVariables, &key_body("VAR-C", "h1"))).await);
    assert_eq!(listed.as_array().unwrap().len(), 20);
}

async fn the_bound_holds_when_trackings_race(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("VAR-R", |_| {}).await;
    let held: serde_json::Map<String, Value> = (0..95).map(|i| (format!("held{i}"), json!("x"))).collect();
    let act = with_variables(key_body("VAR-R", "h1"), held.into());
    assert_eq!(f.app.send(f.client.activate(&act)).await.status(), 200);
    let apps = instances(&f).await;
    let reqs = (0..12)
        .map(|i| {
            let body = with_variables(key_body("VAR-R", "h1"), json!({ format!("new{i}"): "y" }));
            f.client.call(Endpoint::TrackDeviceVariables, &body)
        })
        .collect();
    let results = race(&apps, reqs).await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let refused = results.iter().filter(|r| *r == &(400, "validation_error".to_owned())).count();
    assert_eq!((ok, refused), (5, 7), "{results:?}");
    assert_eq!(device(&f, &license, "h1").await.variables.len(), MAX_DEVICE_VARIABLES);
}
}
