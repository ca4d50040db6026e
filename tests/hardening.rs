//! Defects of the first core, each proven fixed on every setup: writes conditioned on the exact device
//! version (ABA), on the license or seat still being unlimited, checks that write only when they answer
//! 200, and a license item that stays small however many devices it has.

use futures::future::join_all;
use integration_tests::fixtures::{hw, key_body, product_code, user_body, USER_PRODUCT};
use integration_tests::{assert_error, error_of, Fixture};
use license_api::ids::Username;
use license_api::model::{Company, Device, ProductDoc, Seat};
use license_api::plan::{LicenseAddr, WriteToken};
use license_api::request::{LicenseRequest, Params};
use license_api::rules::{self, LicenseContext, Transport};
use license_api::store::Rejection;
use license_api::time::Timestamp;
use serde_json::json;

fn request(body: serde_json::Value) -> LicenseRequest {
    LicenseRequest::parse(&Params::from_json(body.to_string().as_bytes()).unwrap()).unwrap()
}

fn user_deactivation(email: &str, hw: &str) -> serde_json::Value {
    json!({"product": USER_PRODUCT, "hardware_id": hw, "username": email})
}

async fn device(f: &Fixture, addr: &LicenseAddr, hw_id: &str) -> Device {
    let devices = f.store().list_devices(addr).await.unwrap();
    devices
        .into_iter()
        .find(|d| d.hardware_id == hw(hw_id))
        .expect("device exists")
}

async fn seat_total(f: &Fixture, addr: &LicenseAddr, email: &str) -> i64 {
    f.store()
        .get_seat(addr, &Username::parse(email).unwrap())
        .await
        .unwrap()
        .expect("seat exists")
        .total_activations
}

integration_tests::matrix! {
async fn a_paused_deactivation_cannot_land_on_the_next_activation(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(500, |l| l.max_activations = 10).await;
    let addr = LicenseAddr::of(&license);
    let a = f.user("a@example.com", 1, &[(&license, 2)]).await;
    f.user("b@example.com", 2, &[(&license, 2)]).await;
    assert_eq!(f.app.send(f.client.activate(&user_body("a@example.com", "X"))).await.status(), 200);

    // D1 reads device X (active, user A) and plans its deactivation, then pauses.
    let read = f.store().read_license(&addr, Some(&a.email), &hw("X")).await.unwrap();
    let ctx = LicenseContext {
        seat: read.seat,
        device: read.device,
        ..LicenseContext::new(ProductDoc::default(), Company::default(), read.license.unwrap())
    };
    let paused = rules::plan_deactivation(&ctx, &hw("X"), Timestamp::now()).unwrap();
    assert_eq!(paused.seat, Some(a.email.clone()));

    // Meanwhile D2 deactivates X and user B activates X again.
    let resp = f.app.send(f.client.deactivate(&user_deactivation("a@example.com", "X"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(f.app.send(f.client.activate(&user_body("b@example.com", "X"))).await.status(), 200);

    // D1 resumes: its write was planned against the previous activation and must not land.
    match f.store().deactivate_device(&paused, &WriteToken::new()).await {
        Err(Rejection::Device(Some(d))) => {
            assert!(d.active);
            assert_eq!(d.user.as_ref().map(Username::as_str), Some("b@example.com"));
        }
        other => panic!("the stale deactivation must be refused by the device version, got {other:?}"),
    }
    let x = device(&f, &addr, "X").await;
    assert!(x.active, "B's device stays active");
    assert_eq!(x.activations, 2);
    assert_eq!(seat_total(&f, &addr, "a@example.com").await, 0);
    assert_eq!(seat_total(&f, &addr, "b@example.com").await, 1);
    assert_eq!(f.license_now(&license).await.times_activated, 1);
}

async fn two_users_racing_on_the_same_devices_keep_exact_seats(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(501, |l| l.max_activations = 100).await;
    let addr = LicenseAddr::of(&license);
    let users = ["a@example.com", "b@example.com"];
    for (i, u) in users.iter().enumerate() {
        f.user(u, 10 + i as i64, &[(&license, 3)]).await;
    }
    let apps = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    for round in 0..12 {
        let mut reqs = Vec::new();
        for u in users {
            for h in ["h0", "h1", "h2", "h3"] {
                reqs.push(f.client.activate(&user_body(u, h)));
                reqs.push(f.client.deactivate(&user_deactivation(u, h)));
            }
        }
        // A different interleaving each round.
        let n = reqs.len();
        reqs.rotate_left(round * 3 % n);
        let sends = reqs.into_iter().enumerate().map(|(i, r)| apps[i % apps.len()].send(r));
        for resp in join_all(sends).await {
            if resp.status() != 200 {
                let (status, code) = error_of(&resp);
                assert!(
                    matches!(
                        code.as_str(),
                        "license_device_exists" | "device_not_found" | "license_not_active" | "license_user_activated_max_times"
                    ),
                    "unexpected answer {status} {code}"
                );
            }
        }
    }
    let devices = f.store().list_devices(&addr).await.unwrap();
    for u in users {
        let active = devices
            .iter()
            .filter(|d| d.active && d.user.as_ref().map(Username::as_str) == Some(u))
            .count() as i64;
        assert_eq!(seat_total(&f, &addr, u).await, active, "seat of {u} equals their active devices");
        assert!(active <= 3);
    }
    let active = devices.iter().filter(|d| d.active).count() as i64;
    assert_eq!(f.license_now(&license).await.times_activated, active);
}

async fn an_unlimited_decision_is_not_written_once_the_license_is_limited(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("UNL", |l| {
        l.allow_unlimited_activations = true;
        l.max_activations = 1;
    }).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("UNL", "h1"))).await.status(), 200);

    // Planned while unlimited...
    let ctx = LicenseContext::new(ProductDoc::default(), Company::default(), f.license_now(&license).await);
    let plan = rules::plan_activation(&ctx, &request(key_body("UNL", "h2")), Timestamp::now(), Transport::Online).unwrap();
    assert!(!plan.enforce_max_activations);
    // ...then the vendor re-imports the license as limited to one device.
    f.key_license("UNL", |l| l.max_activations = 1).await;
    match f.store().activate_device(&plan, &WriteToken::new()).await {
        Err(Rejection::License(Some(l))) => assert!(!l.allow_unlimited_activations),
        other => panic!("a stale unlimited plan must be refused, got {other:?}"),
    }
    assert_error(&f.app.send(f.client.activate(&key_body("UNL", "h2"))).await, 400, "license_activated_max_times");
    assert_eq!(f.license_now(&license).await.times_activated, 1);
    assert_eq!(f.device_counts(&license).await, (1, 1));
}

async fn an_unlimited_seat_decision_is_not_written_once_the_seat_is_limited(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(502, |l| l.max_activations = 10).await;
    let addr = LicenseAddr::of(&license);
    let user = f.user("u@example.com", 1, &[(&license, 0)]).await; // 0: unlimited
    assert_eq!(f.app.send(f.client.activate(&user_body("u@example.com", "h1"))).await.status(), 200);

    let read = f.store().read_license(&addr, Some(&user.email), &hw("h2")).await.unwrap();
    let ctx = LicenseContext {
        seat: read.seat,
        ..LicenseContext::new(ProductDoc::default(), Company::default(), read.license.unwrap())
    };
    let plan = rules::plan_activation(&ctx, &request(user_body("u@example.com", "h2")), Timestamp::now(), Transport::Online).unwrap();
    assert_eq!(plan.seat, Some((user.email.clone(), false)));
    let limited = Seat { user: user.email.clone(), max_activations: 1, allow_unlimited_activations: false, total_activations: 0 };
    f.store().put_seat(&addr, &limited).await.unwrap();
    match f.store().activate_device(&plan, &WriteToken::new()).await {
        Err(Rejection::Seat(Some(s))) => assert!(!s.allow_unlimited_activations),
        other => panic!("a stale unlimited seat plan must be refused, got {other:?}"),
    }
    assert_error(&f.app.send(f.client.activate(&user_body("u@example.com", "h2"))).await, 400, "license_user_activated_max_times");
    assert_eq!(seat_total(&f, &addr, "u@example.com").await, 1);
}

async fn a_refused_check_changes_no_device(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("CHK", |_| {}).await;
    let addr = LicenseAddr::of(&license);
    let mut body = key_body("CHK", "h1");
    body["hostname"] = json!("first");
    assert_eq!(f.app.send(f.client.activate(&body)).await.status(), 200);
    let before = device(&f, &addr, "h1").await;
    let mut check = key_body("CHK", "h1");
    check["hostname"] = json!("changed");

    // A key restricted to another product: refused before any store I/O.
    let other = f.put_key("only-up", |k| k.products = vec![product_code(USER_PRODUCT)]).await;
    assert_error(&f.app.send(other.check(&check)).await, 400, "api_key_product_not_allowed");
    // A license id that is not this license's.
    let mut wrong_id = check.clone();
    wrong_id["license_id"] = json!(license.id + 1);
    assert_error(&f.app.send(f.client.check(&wrong_id)).await, 400, "license_not_found");
    // A disabled license.
    f.key_license("CHK", |l| l.enabled = false).await;
    assert_error(&f.app.send(f.client.check(&check)).await, 400, "license_not_enabled");
    f.key_license("CHK", |_| {}).await;
    // A blacklisted device, for the product and for the company.
    f.store().put_product(&f.company, &ProductDoc {
        id: 11, code: product_code("kp"), name: "Key Product".into(),
        blacklist: [hw("h1")].into(), ..ProductDoc::default()
    }).await.unwrap();
    assert_error(&f.app.send(f.client.check(&check)).await, 400, "blacklisted");
    f.store().put_product(&f.company, &ProductDoc {
        id: 11, code: product_code("kp"), name: "Key Product".into(), ..ProductDoc::default()
    }).await.unwrap();
    f.update_company(|c| c.blacklist = [hw("h1")].into()).await;
    assert_error(&f.app.send(f.client.check(&check)).await, 400, "blacklisted");
    // A disabled product.
    f.store().put_product(&f.company, &ProductDoc {
        id: 11, code: product_code("kp"), name: "Key Product".into(), disabled: true, ..ProductDoc::default()
    }).await.unwrap();
    f.update_company(|_| {}).await;
    assert_error(&f.app.send(f.client.check(&check)).await, 400, "disabled_product");

    assert_eq!(device(&f, &addr, "h1").await, before, "no refused check changed the device");

    // Once nothing refuses it, the check records the device.
    f.store().put_product(&f.company, &ProductDoc {
        id: 11, code: product_code("kp"), name: "Key Product".into(), ..ProductDoc::default()
    }).await.unwrap();
    assert_eq!(f.app.send(f.client.check(&check)).await.status(), 200);
    let after = device(&f, &addr, "h1").await;
    assert_eq!(after.details["hostname"], json!("changed"));
    assert!(after.last_seen_at >= before.last_seen_at);
    assert_eq!(after.activations, before.activations);
}
}

/// Devices stored before devices had versions (no `activations` attribute) still deactivate and
/// re-activate: they count as version 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_stored_before_versions_still_work() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use integration_tests::{counter::RoundTrips, Backend, Setup, Transport};
    let f = Fixture::new(Setup::new("legacy-device", Backend::DynamoDb, Transport::Lambda)).await;
    let license = f.key_license("OLD", |_| {}).await;
    let addr = LicenseAddr::of(&license);
    assert_eq!(
        f.app.send(f.client.activate(&key_body("OLD", "h1"))).await.status(),
        200
    );
    integration_tests::client(&RoundTrips::default())
        .update_item()
        .table_name(f.env.location())
        .key("PK", AttributeValue::S(addr.storage_key()))
        .key("SK", AttributeValue::S("DEVICE#h1".into()))
        .update_expression("REMOVE activations, write_token")
        .send()
        .await
        .unwrap();
    assert_eq!(device(&f, &addr, "h1").await.activations, 0);
    let resp = f.app.send(f.client.deactivate(&key_body("OLD", "h1"))).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert_eq!(
        f.app.send(f.client.activate(&key_body("OLD", "h1"))).await.status(),
        200
    );
    assert_eq!(device(&f, &addr, "h1").await.activations, 1);
    assert_eq!(f.license_now(&license).await.times_activated, 1);
}
