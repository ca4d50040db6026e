//! SPEC §2.1, §4.1, §5.2: how a request names its license, and the username it names a user-based
//! license with — looked up case-insensitively, but echoed and signed exactly as the client sent it,
//! because clients re-derive `license_signature` from their own request.

use integration_tests::fixtures::{user_body, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::model::LicenseType;
use license_api::time::Timestamp;
use serde_json::json;

integration_tests::matrix! {
async fn naming_the_license_two_ways_is_a_validation_error(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(601, |_| {}).await;
    f.user("ann@example.com", 81, &[(&license, 0)]).await;
    let mut both = user_body("ann@example.com", "h1");
    both["license_key"] = json!("K-1");
    assert_error(&f.app.send(f.client.activate(&both)).await, 400, "validation_error");
    assert_error(&f.app.send(f.client.deactivate(&both)).await, 400, "validation_error");
    assert_error(&f.app.send(f.client.check(&both)).await, 400, "validation_error");
    // Nothing was activated by the rejected request.
    assert_eq!(f.device_counts(&license).await, (0, 0));
}

// Activation and check for a user whose login the client sends padded and in mixed case: the lookup
// still finds `ann@example.com`, while the echo and `license_signature` use the value as sent (a
// trimmed value would sign `hw#ann@example.com#…`, which the client's own message does not match).
async fn username_is_echoed_and_signed_as_sent(setup) {
    let f = Fixture::new(setup).await;
    let validity = Timestamp::parse_iso("2099-05-06T07:08:09.010Z").unwrap();
    let license = f
        .user_license(602, |l| {
            l.validity_period = Some(validity);
            l.terms.license_type = LicenseType::TimeLimited;
        })
        .await;
    f.user("ann@example.com", 82, &[(&license, 0)]).await;
    let sent = "  Ann@Example.com ";
    let body = user_body(sent, "HW-1");
    let resp = f.app.send(f.client.activate(&body)).await;
    let obj = f
        .client
        .verify_license(&resp, "HW-1", sent)
        .unwrap_or_else(|e| panic!("activation: {e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(obj["username"], sent);
    assert_eq!(obj["user"]["email"], "ann@example.com");
    assert_eq!(obj["validity_period"], "2099-05-06T07:08:09.010Z");
    let check = json!({"product": USER_PRODUCT, "hardware_id": "HW-1", "username": sent});
    let resp = f.app.send(f.client.check(&check)).await;
    f.client
        .verify_license(&resp, "HW-1", sent)
        .unwrap_or_else(|e| panic!("check: {e}: {}", String::from_utf8_lossy(resp.body())));
}
}
