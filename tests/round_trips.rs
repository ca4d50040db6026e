//! DynamoDB round trips per operation on a warm function (API key cached), counted on the wire:
//! key-based activate/deactivate ≤ 2, user-based ≤ 3, check ≤ 2 requests in one round trip of latency;
//! offline uploads cost what the online request costs, a repeat upload the read plus one GetItem.

use integration_tests::fixtures::{key_body, user_body, API_KEY, KEY_PRODUCT, SHARED_KEY};
use integration_tests::{Backend, Fixture, Setup, Transport};
use license_api::offline::file::Shape;
use license_api::offline::payload::Kind;
use serde_json::json;

#[tokio::test]
async fn round_trips_per_operation() {
    let f = Fixture::new(Setup::new("round-trips", Backend::DynamoDb, Transport::Lambda)).await;
    f.key_license("RT", |_| {}).await;
    f.key_license("RT-OFF", |_| {}).await;
    let license = f.user_license(800, |_| {}).await;
    f.user("ann@example.com", 1, &[(&license, 0)]).await;
    let app = &f.app;
    let rt = &app.round_trips;

    // Cold: the first request also fetches the API key record.
    rt.reset();
    assert_eq!(app.send(f.client.check(&key_body("RT", "warmup"))).await.status(), 400);
    let (cold_requests, _) = rt.get();

    // Offline request files (SPEC §6): the same writes as online, one request record more in them.
    let offline = |kind, hw: &str, id: &str| {
        let file = license_api::offline::file::RequestFile {
            kind,
            product: KEY_PRODUCT.into(),
            hardware_id: hw.into(),
            license_key: Some("RT-OFF".into()),
            username: None,
            password: None,
            api_key: API_KEY.into(),
            date: license_api::offline::file::rfc7231_date(std::time::SystemTime::now()),
            request_id: Some(id.into()),
            extra: Default::default(),
        };
        let path = match kind {
            Kind::Activation => "/api/v4/activate_offline",
            Kind::Deactivation => "/api/v4/deactivate_offline",
        };
        f.client.upload(path, "text/plain", file.encode(Shape::V1, SHARED_KEY))
    };
    let mut measure = Vec::new();
    for (name, req, status) in [
        ("offline activate", offline(Kind::Activation, "h0", "o1"), 200),
        (
            "offline activate (repeat upload)",
            offline(Kind::Activation, "h0", "o1"),
            200,
        ),
        ("offline deactivate", offline(Kind::Deactivation, "h0", "o2"), 200),
        (
            "offline deactivate (repeat upload)",
            offline(Kind::Deactivation, "h0", "o2"),
            200,
        ),
        ("key activate", f.client.activate(&key_body("RT", "h1")), 200),
        ("key check", f.client.check(&key_body("RT", "h1")), 200),
        ("key deactivate", f.client.deactivate(&key_body("RT", "h1")), 200),
        (
            "user activate",
            f.client.activate(&user_body("ann@example.com", "h1")),
            200,
        ),
        (
            "user check",
            f.client
                .check(&json!({"product": "up", "hardware_id": "h1", "username": "ann@example.com"})),
            200,
        ),
        (
            "user deactivate",
            f.client.deactivate(&user_body("ann@example.com", "h1")),
            200,
        ),
    ] {
        rt.reset();
        let resp = app.send(req).await;
        assert_eq!(
            resp.status(),
            status,
            "{name}: {}",
            String::from_utf8_lossy(resp.body())
        );
        measure.push((name, rt.get()));
    }
    println!("cold check (API key fetched): {cold_requests} requests");
    for (name, (requests, sequential)) in &measure {
        println!("{name}: {requests} requests, {sequential} sequential round trips");
    }
    let get = |name: &str| measure.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(cold_requests, 3, "cold check = API key + read + device update");
    assert_eq!(get("key activate"), (2, 2));
    assert_eq!(get("key deactivate"), (2, 2));
    assert_eq!(get("key check"), (2, 1), "check's two requests overlap");
    assert_eq!(get("user activate"), (3, 3));
    assert_eq!(get("user deactivate"), (3, 3));
    assert_eq!(get("user check"), (3, 2));
    assert_eq!(get("offline activate"), (2, 2));
    assert_eq!(get("offline deactivate"), (2, 2));
    // The rules refuse a repeat first (device already active / gone); one GetItem finds the record.
    assert_eq!(get("offline activate (repeat upload)"), (2, 2));
    assert_eq!(get("offline deactivate (repeat upload)"), (2, 2));
}

#[tokio::test]
async fn round_trips_per_bundle_operation() {
    let f = Fixture::new(Setup::new("round-trips-bundle", Backend::DynamoDb, Transport::Lambda)).await;
    let catalog = json!({"companies": [{"code": "c1", "id": 7,
        "products": [{"short_code": "m1"}, {"short_code": "m2"}, {"short_code": "m3"},
                     {"short_code": "kb", "bundle_products": ["m1", "m2", "m3"]}],
        "licenses": [{"id": 300, "product": "kb", "license_key": "KB-1", "max_activations": 2,
                      "members": [{"id": 301, "product": "m1"}, {"id": 302, "product": "m2"}, {"id": 303, "product": "m3"}]}]}]});
    let catalog = license_api::catalog::Catalog::parse(&catalog.to_string(), "rt.json").unwrap();
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    let body = json!({"product": "kb", "hardware_id": "h1", "license_key": "KB-1"});
    let rt = &f.app.round_trips;
    assert_eq!(
        f.app.send(f.client.check(&key_body("KB-1", "warmup"))).await.status(),
        400
    );
    let mut measure = Vec::new();
    for (name, method, path) in [
        ("bundle activate", http::Method::POST, "/api/v4/activate_bundle"),
        ("bundle check", http::Method::GET, "/api/v4/check_bundle"),
        ("bundle deactivate", http::Method::POST, "/api/v4/deactivate_bundle"),
    ] {
        let req = if method == http::Method::GET {
            f.client.request(
                method,
                &format!("{path}?product=kb&hardware_id=h1&license_key=KB-1"),
                None,
            )
        } else {
            f.client.request(method, path, Some(body.to_string().into_bytes()))
        };
        rt.reset();
        let resp = f.app.send(req).await;
        assert_eq!(resp.status(), 200, "{name}: {}", String::from_utf8_lossy(resp.body()));
        measure.push((name, rt.get()));
    }
    for (name, (requests, sequential)) in &measure {
        println!("{name} (3 members): {requests} requests, {sequential} sequential round trips");
    }
    // One read of the bundle license, then every member's product and license at once, then one write.
    for (name, got) in &measure {
        assert_eq!(*got, (1 + 2 * 3 + 1, 3), "{name}");
    }
}
