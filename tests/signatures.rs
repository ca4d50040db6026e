//! RSA signatures per request (issue 19, item 2): the v1 `license_signature` is made once per device and
//! then served from the signer's cache, so a check or a re-activation costs one RSA signature (the
//! body's `LicenseSignature`), and every answer still verifies as a client verifies it.

use integration_tests::fixtures::{key_body, user_body};
use integration_tests::Fixture;
use serde_json::{json, Value};

/// Sends `req`, expects a verified license object for (`hw`, `ident`); returns it and the RSA
/// signatures the instance made meanwhile.
async fn signed(f: &Fixture, req: http::Request<bytes::Bytes>, hw: &str, ident: &str) -> (Value, u64) {
    let before = f.app.state.signer.signatures();
    let resp = f.app.send(req).await;
    let object = f
        .client
        .verify_license(&resp, hw, ident)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(resp.body())));
    (object, f.app.state.signer.signatures() - before)
}

integration_tests::matrix! {
async fn a_check_or_reactivation_of_a_known_device_costs_one_signature(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("SIG", |_| {}).await;
    let body = key_body("SIG", "h1");
    let (activated, n) = signed(&f, f.client.activate(&body), "h1", "SIG").await;
    assert_eq!(n, 2, "a first activation signs the license object and the body");
    for _ in 0..2 {
        let (checked, n) = signed(&f, f.client.check(&body), "h1", "SIG").await;
        assert_eq!(n, 1, "a check signs only its body");
        assert_eq!(checked["license_signature"], activated["license_signature"]);
    }
    let before = f.app.state.signer.signatures();
    let resp = f.app.send(f.client.deactivate(&body)).await;
    assert_eq!(resp.status(), 200);
    let n = f.app.state.signer.signatures() - before;
    assert_eq!(n, 0, "a deactivation answers plain text and signs nothing");
    let (reactivated, n) = signed(&f, f.client.activate(&body), "h1", "SIG").await;
    assert_eq!(n, 1, "a re-activation signs only its body");
    assert_eq!(reactivated["license_signature"], activated["license_signature"]);
    // Another device is another message: its own signature, made once.
    let (other, n) = signed(&f, f.client.activate(&key_body("SIG", "h2")), "h2", "SIG").await;
    assert_eq!(n, 2);
    assert_ne!(other["license_signature"], activated["license_signature"]);
}

async fn the_same_device_under_another_identity_or_validity_is_signed_anew(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(800, |_| {}).await;
    let bobs = f.user_license(801, |_| {}).await;
    f.user("ann@example.com", 1, &[(&license, 0)]).await;
    f.user("bob@example.com", 2, &[(&bobs, 0)]).await;
    let (ann, n) = signed(&f, f.client.activate(&user_body("ann@example.com", "h1")), "h1", "ann@example.com").await;
    assert_eq!(n, 2);
    let (bob, n) = signed(&f, f.client.activate(&user_body("bob@example.com", "h1")), "h1", "bob@example.com").await;
    assert_eq!(n, 2, "bob's identity is another message than ann's on the same hardware id");
    assert_ne!(ann["license_signature"], bob["license_signature"]);
    // A validity set on the license changes the message: the check signs it anew, once.
    let mut changed = f.license_now(&license).await;
    changed.validity_period = license_api::time::Timestamp::parse_iso("2031-01-01T00:00:00.000Z");
    f.store().put_license(&changed).await.unwrap();
    let check = json!({"product": "up", "hardware_id": "h1", "username": "ann@example.com"});
    let (first, n) = signed(&f, f.client.check(&check), "h1", "ann@example.com").await;
    assert_eq!(n, 2, "a new validity is a new message");
    assert_ne!(first["license_signature"], ann["license_signature"]);
    let (second, n) = signed(&f, f.client.check(&check), "h1", "ann@example.com").await;
    assert_eq!(n, 1);
    assert_eq!(second["license_signature"], first["license_signature"]);
}
}
