//! Which offline request a file is, and who may sign one (issue 14): a file is recognised by what its
//! signature covers — never by a `request_id` another device's file may reuse, nor by the spelling of its
//! signature — and files signed with a read-only key, or for a license that does not allow offline
//! activation, are refused.

use base64::Engine;
use bytes::Bytes;
use integration_tests::fixtures::{key_body, KEY_PRODUCT, SHARED_KEY};
use integration_tests::{assert_error, Fixture};
use license_api::client::LicenseClient;
use license_api::model::LicenseType;
use license_api::offline::file::{RequestFile, Shape};
use license_api::offline::payload::Kind;
use serde_json::{json, Value};

const ACTIVATE: &str = "/api/v4/activate_offline";
const DEACTIVATE: &str = "/api/v4/deactivate_offline";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn key_file(kind: Kind, key: &str, hw: &str, request_id: Option<&str>) -> RequestFile {
    integration_tests::fixtures::key_file(kind, KEY_PRODUCT, key, hw, request_id)
}

fn upload(client: &LicenseClient, path: &str, text: &str) -> http::Request<Bytes> {
    client.upload(path, "text/plain", text.to_owned())
}

/// The same v1 file with its signature written in hex instead of base64.
fn respelled_in_hex(json_text: &str) -> String {
    let mut v: Value = serde_json::from_str(json_text).unwrap();
    let sig = B64.decode(v["signature"].as_str().unwrap()).unwrap();
    v["signature"] = json!(sig.iter().map(|b| format!("{b:02x}")).collect::<String>());
    B64.encode(v.to_string())
}

integration_tests::matrix! {
async fn a_reused_request_id_never_answers_for_another_device(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("OFF-ID", |l| l.max_activations = 5).await;
    // Two devices' activation files share a request_id (v1 does not even sign it): each is applied and
    // answered for its own device.
    for hw in ["id-a", "id-b"] {
        let text = key_file(Kind::Activation, "OFF-ID", hw, Some("same")).encode(Shape::V1, SHARED_KEY);
        let resp = f.app.send(upload(&f.client, ACTIVATE, &text)).await;
        let object = f.client.verify_offline_license(&resp, hw, "OFF-ID").unwrap();
        assert_eq!(object["request_id"], "same");
    }
    assert_eq!(f.license_now(&license).await.times_activated, 2);
    // And two deactivation files sharing one: both devices are released, not just the first.
    for (hw, shape) in [("id-a", Shape::V1), ("id-b", Shape::JavaScript)] {
        let text = key_file(Kind::Deactivation, "OFF-ID", hw, Some("same-d")).encode(shape, SHARED_KEY);
        let resp = f.app.send(upload(&f.client, DEACTIVATE, &text)).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    }
    assert_eq!(f.license_now(&license).await.times_activated, 0, "both devices released");
    assert_eq!(f.device_counts(&license).await.0, 0);
}

async fn a_respelled_signature_is_the_same_request(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("OFF-SP", |l| {
        l.max_activations = 5;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 100;
    }).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("OFF-SP", "sp-1"))).await.status(), 200);
    let mut file = key_file(Kind::Deactivation, "OFF-SP", "sp-1", None);
    file.extra = json!({"consumptions": 7}).as_object().unwrap().clone();
    let json_text = file.json(Shape::V1, SHARED_KEY);
    let first = f.app.send(upload(&f.client, DEACTIVATE, &B64.encode(&json_text))).await;
    assert_eq!(first.status(), 200);
    assert_eq!(f.app.send(f.client.activate(&key_body("OFF-SP", "sp-1"))).await.status(), 200);
    // The same file, its signature in hex: recognised, answered as before, nothing applied again.
    let again = f.app.send(upload(&f.client, DEACTIVATE, &respelled_in_hex(&json_text))).await;
    assert_eq!(again.status(), 200, "{}", String::from_utf8_lossy(again.body()));
    let now = f.license_now(&license).await;
    assert_eq!(now.consumptions, 7, "consumptions charged once");
    assert_eq!(now.times_activated, 1, "the re-activated device stays active");
}

async fn a_file_signed_with_a_read_only_key_is_refused(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("OFF-RO", |l| l.max_activations = 5).await;
    f.put_key("ro-key", |k| k.read_only = true).await;
    let mut file = key_file(Kind::Activation, "OFF-RO", "ro-1", Some("ro"));
    file.api_key = "ro-key".into();
    let resp = f.app.send(upload(&f.client, ACTIVATE, &file.encode(Shape::V1, "ro-key-secret"))).await;
    assert_error(&resp, 400, "read_only_api_key");
    assert_eq!(f.app.send(f.client.activate(&key_body("OFF-RO", "ro-1"))).await.status(), 200);
    let mut file = key_file(Kind::Deactivation, "OFF-RO", "ro-1", Some("ro-d"));
    file.api_key = "ro-key".into();
    let resp = f.app.send(upload(&f.client, DEACTIVATE, &file.encode(Shape::V1, "ro-key-secret"))).await;
    assert_error(&resp, 400, "read_only_api_key");
    assert_eq!(f.license_now(&license).await.times_activated, 1, "nothing changed");
}

async fn a_license_without_offline_activation_is_refused_offline(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("OFF-NO", |l| {
        l.max_activations = 5;
        l.terms.allow_offline_activation = false;
    }).await;
    let text = key_file(Kind::Activation, "OFF-NO", "no-1", Some("no")).encode(Shape::PythonActivation, SHARED_KEY);
    assert_error(&f.app.send(upload(&f.client, ACTIVATE, &text)).await, 400, "offline_activation_not_allowed");
    assert_eq!(f.license_now(&license).await.times_activated, 0);
    // Online activation, and releasing the device offline, still work.
    assert_eq!(f.app.send(f.client.activate(&key_body("OFF-NO", "no-1"))).await.status(), 200);
    let text = key_file(Kind::Deactivation, "OFF-NO", "no-1", Some("no-d")).encode(Shape::V1, SHARED_KEY);
    assert_eq!(f.app.send(upload(&f.client, DEACTIVATE, &text)).await.status(), 200);
    assert_eq!(f.license_now(&license).await.times_activated, 0);
}
}
