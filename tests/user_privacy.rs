//! SPEC §2.1: the API never reveals which emails exist. Requests that name a license user without a
//! password (check and deactivation, bundles too) answer the same status and code for an unknown email
//! as for a known one — whether that user has no license of the product, a license with no active
//! device, or other devices active — after the same number of sequential store round trips.

use integration_tests::fixtures::{user_body, PASSWORD, USER_PRODUCT};
use integration_tests::{assert_error, Backend, Fixture};
use license_api::catalog::{import, Catalog};
use serde_json::{json, Value};

/// The sequential store round trips a request takes: the fewest seen over a few sends, since two
/// concurrent reads are sometimes counted as two when one finishes before the other starts.
async fn depth(
    app: &integration_tests::Instance,
    request: impl Fn() -> http::Request<bytes::Bytes>,
    code: &str,
) -> usize {
    let mut fewest = usize::MAX;
    for _ in 0..5 {
        app.round_trips.reset();
        assert_error(&app.send(request()).await, 400, code);
        fewest = fewest.min(app.round_trips.get().1);
    }
    fewest
}

fn named(email: &str, product: &str) -> Value {
    json!({"product": product, "hardware_id": "probe-hw", "username": email})
}

integration_tests::matrix! {
async fn username_requests_never_reveal_which_emails_exist(setup) {
    let f = Fixture::new(setup).await;
    let busy = f.user_license(700, |l| l.max_activations = 5).await;
    let idle = f.user_license(701, |l| l.max_activations = 5).await;
    f.user("ann@example.com", 1, &[(&busy, 0)]).await;
    f.user("bob@example.com", 2, &[(&idle, 0)]).await;
    f.user("cat@example.com", 3, &[]).await;
    assert_eq!(f.app.send(f.client.activate(&user_body("ann@example.com", "ann-hw"))).await.status(), 200);
    let read_only = f.put_key("ro-key", |k| k.read_only = true).await;
    // Warm the instance's API key cache, so every probe below costs only its own reads.
    let _ = f.app.send(read_only.check(&named("zed@example.com", USER_PRODUCT))).await;
    let _ = f.app.send(f.client.deactivate(&named("zed@example.com", USER_PRODUCT))).await;
    let mut trips = Vec::new();
    for email in ["ann@example.com", "bob@example.com", "cat@example.com", "nobody@example.com"] {
        let check = depth(&f.app, || read_only.check(&named(email, USER_PRODUCT)), "device_not_found").await;
        let deactivate = depth(&f.app, || f.client.deactivate(&named(email, USER_PRODUCT)), "device_not_found").await;
        trips.push((email, check, deactivate));
    }
    if f.env.setup.backend == Backend::DynamoDb {
        let (_, check, deactivate) = trips[0];
        assert!(trips.iter().all(|t| (t.1, t.2) == (check, deactivate)), "round trips: {trips:?}");
    }
    // The real holder of the device is answered as before.
    let holder = json!({"product": USER_PRODUCT, "hardware_id": "ann-hw", "username": "ann@example.com"});
    assert_eq!(f.app.send(read_only.check(&holder)).await.status(), 200);
    assert_eq!(f.app.send(f.client.deactivate(&holder)).await.status(), 200);
    assert_error(&f.app.send(f.client.deactivate(&holder)).await, 400, "device_not_found");
}

async fn bundle_username_requests_never_reveal_which_emails_exist(setup) {
    let f = Fixture::new(setup).await;
    let catalog = json!({"companies": [{"code": "c1", "id": 7,
        "products": [
            {"short_code": "um1", "id": 41, "authorization_method": "user"},
            {"short_code": "um2", "id": 42, "authorization_method": "user"},
            {"short_code": "ub", "id": 40, "authorization_method": "user", "bundle_products": ["um1", "um2"]}],
        "license_users": [{"id": 1, "email": "ann@example.com", "password": PASSWORD}],
        "licenses": [
            {"id": 400, "product": "ub", "max_activations": 5, "users": [{"email": "ann@example.com", "max_activations": 2}],
             "members": [{"id": 401, "product": "um1"}, {"id": 402, "product": "um2"}]}]}]});
    import(f.store(), &Catalog::parse(&catalog.to_string(), "ub.json").unwrap()).await.unwrap();
    let post = |path: &str, body: &Value| f.client.request(http::Method::POST, path, Some(body.to_string().into_bytes()));
    let check = |email: &str| {
        let query = format!("product=ub&hardware_id=probe-hw&username={}", email.replace('@', "%40"));
        f.client.request(http::Method::GET, &format!("/api/v4/check_bundle?{query}"), None)
    };
    let _ = f.app.send(check("zed@example.com")).await;
    let mut trips = Vec::new();
    for email in ["ann@example.com", "nobody@example.com"] {
        let c = depth(&f.app, || check(email), "device_not_found").await;
        let d = depth(&f.app, || post("/api/v4/deactivate_bundle", &named(email, "ub")), "device_not_found").await;
        trips.push((email, c, d));
    }
    if f.env.setup.backend == Backend::DynamoDb {
        assert_eq!((trips[0].1, trips[0].2), (trips[1].1, trips[1].2), "round trips: {trips:?}");
    }
}
}
