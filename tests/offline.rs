//! SPEC §6 (seed 003): offline activation and deactivation. Request files in every shape real clients
//! write, uploaded as text and as multipart; every exception with its code; consumptions; and uploads of
//! one file applied at most once, also when 20 race.

use bytes::Bytes;
use integration_tests::fixtures::{key_body, KEY_PRODUCT, PASSWORD, SHARED_KEY, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::client::LicenseClient;
use license_api::model::{Feature, FeatureType, LicenseType};
use license_api::offline::file::{self, RequestFile, Shape};
use license_api::offline::payload::Kind;
use serde_json::{json, Map, Value};
use std::time::SystemTime;

const ACTIVATE: &str = "/api/v4/activate_offline";
const DEACTIVATE: &str = "/api/v4/deactivate_offline";

/// How the file travels.
#[derive(Clone, Copy, Debug)]
enum Upload {
    Text,
    Multipart,
}

fn upload(client: &LicenseClient, path: &str, base64_text: &str, how: Upload) -> http::Request<Bytes> {
    match how {
        // As curl --data-binary sends a file saved with a trailing newline.
        Upload::Text => client.upload(path, "text/plain", format!("{base64_text}\n")),
        Upload::Multipart => {
            let (content_type, body) = file::multipart(base64_text, "----offline-test-boundary-7MA4YWxkTrZu0gW");
            client.upload(path, &content_type, body)
        }
    }
}

fn key_file(kind: Kind, key: &str, hw: &str, request_id: &str) -> RequestFile {
    integration_tests::fixtures::key_file(kind, KEY_PRODUCT, key, hw, Some(request_id))
}

/// What a client puts besides the required fields: hardware details, a float written `1.0` by Python,
/// non-ASCII text (escaped by Python's ensure_ascii, raw elsewhere).
fn details() -> Map<String, Value> {
    json!({"os_ver": "Windows 11 — Pro ✓", "hostname": "lab-pc-ü", "is_vm": false, "app_ver": 1.0,
           "variables": {"site": "Zürich 😀"}})
    .as_object()
    .unwrap()
    .clone()
}

fn shapes(kind: Kind) -> &'static [Shape] {
    match kind {
        Kind::Activation => &[Shape::PythonActivation, Shape::JavaScript, Shape::V1],
        Kind::Deactivation => &[
            Shape::PythonDeactivation,
            Shape::JavaScript,
            Shape::BareDeactivation,
            Shape::V1,
        ],
    }
}

fn dated(mut file: RequestFile, shape: Shape) -> RequestFile {
    if shape == Shape::JavaScript {
        file.date = file::javascript_date(SystemTime::now());
    }
    file
}

integration_tests::matrix! {
async fn every_client_shape_activates_and_deactivates_as_text_and_multipart(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("OFF-1", |l| l.max_activations = 100).await;
    let mut active = 0;
    for how in [Upload::Text, Upload::Multipart] {
        for (i, shape) in shapes(Kind::Activation).iter().enumerate() {
            // Astral characters become surrogate pairs in the Python shape.
            let hw = format!("hw-😀-ü-{how:?}-{i}");
            let mut file = dated(key_file(Kind::Activation, "OFF-1", &hw, &format!("act-{how:?}-{i}")), *shape);
            file.extra = details();
            let resp = f.app.send(upload(&f.client, ACTIVATE, &file.encode(*shape, SHARED_KEY), how)).await;
            let object = f
                .client
                .verify_offline_license(&resp, &hw, "OFF-1")
                .unwrap_or_else(|e| panic!("{shape:?} {how:?}: {e}: {}", String::from_utf8_lossy(resp.body())));
            active += 1;
            assert_eq!(object["request"], "activation");
            assert_eq!(object["hardware_id"], hw.as_str());
            assert_eq!(object["request_id"], format!("act-{how:?}-{i}"));
            assert_eq!(object["times_activated"], active);
            assert_eq!(object["product_details"]["short_code"], KEY_PRODUCT);
            assert_eq!(object["variables"][0]["value"], "Zürich 😀");
        }
        for (i, shape) in shapes(Kind::Deactivation).iter().enumerate() {
            let hw = format!("hw-deact-😀-{how:?}-{i}");
            assert_eq!(f.app.send(f.client.activate(&key_body("OFF-1", &hw))).await.status(), 200);
            let mut file = dated(key_file(Kind::Deactivation, "OFF-1", &hw, &format!("deact-{how:?}-{i}")), *shape);
            file.extra = details();
            let resp = f.app.send(upload(&f.client, DEACTIVATE, &file.encode(*shape, SHARED_KEY), how)).await;
            assert_eq!(resp.status(), 200, "{shape:?} {how:?}: {}", String::from_utf8_lossy(resp.body()));
            assert_eq!(resp.headers()["content-type"], "text/plain");
            assert_eq!(resp.body().as_ref(), b"license_deactivated");
        }
    }
    let now = f.license_now(&license).await;
    assert_eq!(now.times_activated, active, "offline activations stay, offline deactivations freed theirs");
    assert_eq!(f.device_counts(&license).await, (active as usize, active as usize + 2 * 4));
}

async fn user_based_licenses_work_offline(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(601, |l| l.max_activations = 5).await;
    f.user("ann@example.com", 90, &[(&license, 2)]).await;
    for (i, shape) in shapes(Kind::Activation).iter().enumerate() {
        let hw = format!("user-hw-{i}");
        let file = dated(
            RequestFile {
                product: USER_PRODUCT.into(),
                license_key: None,
                username: Some("Ann@Example.com".into()),
                password: Some(PASSWORD.into()),
                ..key_file(Kind::Activation, "unused", &hw, &format!("user-act-{i}"))
            },
            *shape,
        );
        let resp = f.app.send(upload(&f.client, ACTIVATE, &file.encode(*shape, SHARED_KEY), Upload::Text)).await;
        if i < 2 {
            let object = f.client.verify_offline_license(&resp, &hw, "Ann@Example.com").unwrap();
            assert_eq!(object["user"]["email"], "ann@example.com");
        } else {
            // The user's own limit (2) applies offline as online.
            assert_error(&resp, 400, "license_user_activated_max_times");
        }
    }
    // A wrong password answers like an unknown user.
    let file = RequestFile {
        product: USER_PRODUCT.into(),
        license_key: None,
        username: Some("ann@example.com".into()),
        password: Some("wrong".into()),
        ..key_file(Kind::Activation, "unused", "user-hw-x", "user-act-x")
    };
    let resp = f.app.send(upload(&f.client, ACTIVATE, &file.encode(Shape::V1, SHARED_KEY), Upload::Text)).await;
    assert_error(&resp, 400, "license_not_found");
    // Deactivation needs the username only.
    let file = RequestFile {
        product: USER_PRODUCT.into(),
        license_key: None,
        username: Some("ann@example.com".into()),
        ..key_file(Kind::Deactivation, "unused", "user-hw-0", "user-deact-0")
    };
    let resp = f.app.send(upload(&f.client, DEACTIVATE, &file.encode(Shape::BareDeactivation, SHARED_KEY), Upload::Multipart)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(f.license_now(&license).await.times_activated, 1);
}

async fn every_transport_and_payload_exception(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("OFF-E", |l| l.max_activations = 1).await;
    let good = key_file(Kind::Activation, "OFF-E", "hw-e", "e-1");
    let text = good.encode(Shape::V1, SHARED_KEY);
    let send = |req| f.app.send(req);

    let mut no_headers = upload(&f.client, ACTIVATE, &text, Upload::Text);
    no_headers.headers_mut().remove("authorization");
    assert_error(&send(no_headers).await, 400, "missing_headers");
    assert_error(&send(f.client.upload(ACTIVATE, "text/plain", "")).await, 400, "missing_parameters");
    assert_error(&send(f.client.upload(DEACTIVATE, "text/plain", " \n")).await, 400, "missing_parameters");
    let boundary = "b0undary";
    let no_file = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n{text}\r\n--{boundary}--\r\n");
    let multipart = format!("multipart/form-data; boundary={boundary}");
    assert_error(&send(f.client.upload(ACTIVATE, &multipart, no_file)).await, 400, "missing_parameters");
    let (content_type, empty) = file::multipart("", boundary);
    assert_error(&send(f.client.upload(ACTIVATE, &content_type, empty)).await, 400, "missing_content");

    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for body in ["%%% not base64 %%%".to_owned(), b64("not json"), b64("[1, 2]")] {
        assert_error(&send(f.client.upload(ACTIVATE, "text/plain", body)).await, 400, "authorization_missing_params");
    }
    let without = |field: &str| {
        let mut v: Value = serde_json::from_str(&good.json(Shape::V1, SHARED_KEY)).unwrap();
        v.as_object_mut().unwrap().remove(field);
        b64(&v.to_string())
    };
    for field in ["hardware_id", "license_key", "api_key", "date", "signature"] {
        let resp = send(f.client.upload(ACTIVATE, "text/plain", without(field))).await;
        assert_error(&resp, 400, "authorization_missing_params");
    }

    // The file's own signature: another key's, or a tampered file.
    assert_error(&send(upload(&f.client, ACTIVATE, &good.encode(Shape::V1, "other-key"), Upload::Text)).await, 400, "signature_mismatch");
    let tampered = RequestFile { hardware_id: "hw-other".into(), ..good.clone() }.json(Shape::JavaScript, SHARED_KEY);
    let original = good.json(Shape::JavaScript, SHARED_KEY);
    let forged = original.replace("hw-e", "hw-f");
    assert_ne!(forged, tampered);
    assert_error(&send(f.client.upload(ACTIVATE, "text/plain", b64(&forged))).await, 400, "signature_mismatch");
    // Signed by an API key of another company, or by no key at all.
    f.store()
        .put_company(&license_api::ids::CompanyId::parse("c2").unwrap(), &Default::default())
        .await
        .unwrap();
    let other_company = f.put_key("other-co-key", |k| k.company = license_api::ids::CompanyId::parse("c2").unwrap()).await;
    let foreign = RequestFile { api_key: "other-co-key".into(), ..good.clone() }.encode(Shape::V1, "other-co-key-secret");
    assert_error(&send(upload(&f.client, ACTIVATE, &foreign, Upload::Text)).await, 400, "invalid_api_key");
    drop(other_company);
    let unknown = RequestFile { api_key: "no-such-key".into(), ..good.clone() }.encode(Shape::V1, SHARED_KEY);
    assert_error(&send(upload(&f.client, ACTIVATE, &unknown, Upload::Text)).await, 400, "invalid_api_key");
    // Signed by a key of the company that is restricted to another product.
    f.put_key("other-product-key", |k| k.products = vec![integration_tests::fixtures::product_code(USER_PRODUCT)]).await;
    let restricted = RequestFile { api_key: "other-product-key".into(), ..good.clone() }.encode(Shape::V1, "other-product-key-secret");
    assert_error(&send(upload(&f.client, ACTIVATE, &restricted, Upload::Text)).await, 400, "api_key_product_not_allowed");
    // A deactivation file on the activation endpoint.
    let wrong_kind = key_file(Kind::Deactivation, "OFF-E", "hw-e", "e-2").encode(Shape::V1, SHARED_KEY);
    assert_error(&send(upload(&f.client, ACTIVATE, &wrong_kind, Upload::Text)).await, 400, "validation_error");

    // The activation and deactivation exceptions, through files.
    let act = |key: &str, hw: &str, id: &str| upload(&f.client, ACTIVATE, &key_file(Kind::Activation, key, hw, id).encode(Shape::V1, SHARED_KEY), Upload::Text);
    let deact = |key: &str, hw: &str, id: &str| upload(&f.client, DEACTIVATE, &key_file(Kind::Deactivation, key, hw, id).encode(Shape::BareDeactivation, SHARED_KEY), Upload::Multipart);
    assert_error(&send(act("NO-SUCH", "hw-e", "e-3")).await, 400, "license_not_found");
    assert_error(&send(deact("OFF-E", "hw-e", "e-4")).await, 400, "license_not_active");
    assert_eq!(send(act("OFF-E", "hw-e", "e-5")).await.status(), 200);
    assert_error(&send(act("OFF-E", "hw-e2", "e-6")).await, 400, "license_activated_max_times");
    assert_error(&send(deact("OFF-E", "hw-e2", "e-7")).await, 400, "device_not_found");
    let product_file = RequestFile { product: "no-such-product".into(), ..key_file(Kind::Deactivation, "OFF-E", "hw-e", "e-8") };
    assert_error(&send(upload(&f.client, DEACTIVATE, &product_file.encode(Shape::V1, SHARED_KEY), Upload::Text)).await, 400, "unknown_product");
    f.key_license("OFF-CLOUD", |l| l.terms.is_floating_cloud = true).await;
    assert_error(&send(act("OFF-CLOUD", "hw-c", "e-9")).await, 400, "offline_floating_cloud_not_supported");
    f.key_license("OFF-VM", |l| l.terms.prevent_vm = Some(true)).await;
    let mut vm = key_file(Kind::Activation, "OFF-VM", "hw-vm", "e-10");
    vm.extra.insert("is_vm".into(), json!(true));
    assert_error(&send(upload(&f.client, ACTIVATE, &vm.encode(Shape::PythonActivation, SHARED_KEY), Upload::Text)).await, 400, "vm_not_allowed");
}

async fn a_repeated_upload_answers_the_first_result_and_changes_nothing(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("OFF-R", |l| {
        l.max_activations = 2;
        l.max_transfers = 5;
    }).await;
    let activation = key_file(Kind::Activation, "OFF-R", "hw-r", "r-1").encode(Shape::PythonActivation, SHARED_KEY);
    let first = f.app.send(upload(&f.client, ACTIVATE, &activation, Upload::Text)).await;
    f.client.verify_offline_license(&first, "hw-r", "OFF-R").unwrap();
    let again = f.app.send(upload(&f.client, ACTIVATE, &activation, Upload::Multipart)).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.body(), first.body(), "the same file answers the same license file, byte for byte");
    assert_eq!(f.license_now(&license).await.times_activated, 1);

    // A deactivation file uploaded twice: the second is not `license_not_active`.
    let deactivation = key_file(Kind::Deactivation, "OFF-R", "hw-r", "r-2").encode(Shape::JavaScript, SHARED_KEY);
    for _ in 0..2 {
        let resp = f.app.send(upload(&f.client, DEACTIVATE, &deactivation, Upload::Text)).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        assert_eq!(resp.body().as_ref(), b"license_deactivated");
    }
    // The device comes back online, then the old deactivation file is uploaded again: nothing happens.
    assert_eq!(f.app.send(f.client.activate(&key_body("OFF-R", "hw-r"))).await.status(), 200);
    let resp = f.app.send(upload(&f.client, DEACTIVATE, &deactivation, Upload::Multipart)).await;
    assert_eq!(resp.status(), 200);
    let now = f.license_now(&license).await;
    assert_eq!(now.times_activated, 1, "the re-activated device stays active");
    assert_eq!(now.transfer_count, 0);
    // A file without request_id is identified by its signature.
    let bare = RequestFile { request_id: None, ..key_file(Kind::Deactivation, "OFF-R", "hw-r", "unused") };
    let bare = bare.encode(Shape::BareDeactivation, SHARED_KEY);
    for _ in 0..2 {
        assert_eq!(f.app.send(upload(&f.client, DEACTIVATE, &bare, Upload::Text)).await.status(), 200);
    }
    assert_eq!(f.license_now(&license).await.times_activated, 0);
}

async fn deactivation_adds_consumptions_within_the_limits(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(|p| {
        p.code = integration_tests::fixtures::product_code(KEY_PRODUCT);
        p.features = vec![
            Feature { id: 1, code: "f1".into(), name: "Renders".into(), feature_type: FeatureType::Consumption, max_consumption: 5, total_consumptions: 1, ..Feature::default() },
            Feature { id: 2, code: "f2".into(), name: "Export".into(), feature_type: FeatureType::Activation, ..Feature::default() },
            Feature { id: 3, code: "neg".into(), name: "Credits".into(), feature_type: FeatureType::Consumption, max_consumption: 5, allow_negative_consumptions: true, ..Feature::default() },
        ];
    }).await;
    let license = f.key_license("OFF-C", |l| {
        l.max_activations = 10;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
        l.terms.total_consumptions = 2;
        l.terms.allow_overages = true;
        l.terms.max_overages = 1;
    }).await;
    f.key_license("OFF-P", |_| {}).await;
    let mut n = 0;
    let mut deactivate = |key: &str, extra: Value| {
        n += 1;
        let hw = format!("c-hw-{n}");
        let mut file = key_file(Kind::Deactivation, key, &hw, &format!("c-{n}"));
        file.extra = extra.as_object().unwrap().clone();
        (hw, file.encode(Shape::PythonDeactivation, SHARED_KEY))
    };
    let run = |key: &'static str, hw: String, text: String| {
        let f = &f;
        async move {
            assert_eq!(f.app.send(f.client.activate(&key_body(key, &hw))).await.status(), 200);
            f.app.send(upload(&f.client, DEACTIVATE, &text, Upload::Text)).await
        }
    };
    let (hw, text) = deactivate("OFF-C", json!({"consumptions": 3.0, "product_features": [{"feature": "f1", "consumptions": 2}, {"feature": "f1", "consumptions": 1}]}));
    assert_eq!(run("OFF-C", hw, text).await.status(), 200);
    let now = f.license_now(&license).await;
    assert_eq!((now.consumptions, now.feature_consumptions.get("f1").copied()), (3, Some(3)));
    assert_eq!(now.total_consumptions(), 5);

    // Over the limit: 2 (catalog) + 3 + 7 = 12 > 10 + 1 overage; f1: 1 + 3 + 2 = 6 > 5.
    for (extra, code) in [
        (json!({"consumptions": 7}), "license_not_enough_consumptions"),
        (json!({"product_features": [{"feature": "f1", "consumptions": 2}]}), "license_not_enough_consumptions"),
        (json!({"consumptions": -1}), "negative_consumptions_not_allowed"),
        (json!({"product_features": [{"feature": "f2", "consumptions": 1}]}), "invalid_license_feature_code"),
        (json!({"product_features": [{"feature": "nope", "consumptions": 1}]}), "invalid_license_feature_code"),
    ] {
        let (hw, text) = deactivate("OFF-C", extra.clone());
        let resp = run("OFF-C", hw.clone(), text).await;
        assert_error(&resp, 400, code);
        // Nothing was written: the device is still active.
        let check = f.app.send(f.client.check(&json!({"product": KEY_PRODUCT, "hardware_id": hw, "license_key": "OFF-C"}))).await;
        assert_eq!(check.status(), 200, "{extra}");
    }
    // Exactly up to the limit with the overage, and negatives where allowed.
    let (hw, text) = deactivate("OFF-C", json!({"consumptions": 6, "product_features": [{"feature": "neg", "consumptions": -4}]}));
    assert_eq!(run("OFF-C", hw.clone(), text).await.status(), 200);
    let now = f.license_now(&license).await;
    assert_eq!((now.total_consumptions(), now.feature_consumptions.get("neg").copied()), (11, Some(-4)));
    // Answers read the same totals.
    let (hw, _) = deactivate("OFF-C", json!({}));
    assert_eq!(f.app.send(f.client.activate(&key_body("OFF-C", &hw))).await.status(), 200);
    let check = f.app.send(f.client.check(&json!({"product": KEY_PRODUCT, "hardware_id": hw, "license_key": "OFF-C"}))).await;
    let object = f.client.verify_license(&check, &hw, "OFF-C").unwrap();
    assert_eq!(object["total_consumptions"], 11);
    let features = object["product_features"].as_array().unwrap();
    assert_eq!(features[0]["total_consumptions"], 4, "catalog 1 + recorded 3");
    assert_eq!(features[2]["total_consumptions"], -4);
    // Consumptions on a license that does not count them.
    let (hw, text) = deactivate("OFF-P", json!({"consumptions": 1}));
    assert_error(&run("OFF-P", hw, text).await, 400, "license_not_consumption");
}

async fn twenty_concurrent_uploads_of_one_file_apply_once(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(|p| {
        p.code = integration_tests::fixtures::product_code(KEY_PRODUCT);
        p.features = vec![Feature { id: 1, code: "f1".into(), name: "Renders".into(), feature_type: FeatureType::Consumption, max_consumption: 1000, ..Feature::default() }];
    }).await;
    let license = f.key_license("OFF-X", |l| {
        l.max_activations = 3;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 1000;
    }).await;
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    // Activation: 20 uploads of one file, one activation, the same license file for all.
    let activation = key_file(Kind::Activation, "OFF-X", "hw-x", "x-act").encode(Shape::JavaScript, SHARED_KEY);
    let answers = futures::future::join_all((0..20).map(|i| {
        let how = if i % 2 == 0 { Upload::Text } else { Upload::Multipart };
        instances[i % 3].send(upload(&f.client, ACTIVATE, &activation, how))
    }))
    .await;
    for resp in &answers {
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        assert_eq!(resp.body(), answers[0].body());
    }
    assert_eq!(f.license_now(&license).await.times_activated, 1);

    // Deactivation with consumptions: applied once.
    let mut file = key_file(Kind::Deactivation, "OFF-X", "hw-x", "x-deact");
    file.extra = json!({"consumptions": 7, "product_features": [{"feature": "f1", "consumptions": 5}]}).as_object().unwrap().clone();
    let deactivation = file.encode(Shape::PythonDeactivation, SHARED_KEY);
    let answers = futures::future::join_all((0..20).map(|i| {
        let how = if i % 2 == 0 { Upload::Multipart } else { Upload::Text };
        instances[i % 3].send(upload(&f.client, DEACTIVATE, &deactivation, how))
    }))
    .await;
    for resp in &answers {
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        assert_eq!(resp.body().as_ref(), b"license_deactivated");
    }
    let now = f.license_now(&license).await;
    assert_eq!(now.consumptions, 7, "consumptions added exactly once");
    assert_eq!(now.feature_consumptions.get("f1").copied(), Some(5));
    assert_eq!((now.times_activated, now.released_count, now.transfer_count), (0, 1, 0));
}

async fn concurrent_consumption_reports_never_pass_the_limit(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("OFF-L", |l| {
        l.max_activations = 10;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
    }).await;
    for i in 0..10 {
        assert_eq!(f.app.send(f.client.activate(&key_body("OFF-L", &format!("l-hw-{i}")))).await.status(), 200);
    }
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    // Ten devices each report 3 at once: only three reports fit in 10.
    let answers = futures::future::join_all((0..10).map(|i| {
        let mut file = key_file(Kind::Deactivation, "OFF-L", &format!("l-hw-{i}"), &format!("l-{i}"));
        file.extra = json!({"consumptions": 3}).as_object().unwrap().clone();
        instances[i % 3].send(upload(&f.client, DEACTIVATE, &file.encode(Shape::V1, SHARED_KEY), Upload::Text))
    }))
    .await;
    let ok = answers.iter().filter(|r| r.status() == 200).count();
    for resp in answers.iter().filter(|r| r.status() != 200) {
        assert_error(resp, 400, "license_not_enough_consumptions");
    }
    assert_eq!(ok, 3, "exactly the reports that fit");
    let now = f.license_now(&license).await;
    assert_eq!((now.consumptions, now.times_activated), (9, 7), "a refused report deactivated nothing");
}
}
