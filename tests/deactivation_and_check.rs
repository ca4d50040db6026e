//! SPEC §2.3 and §3 "Check": deactivation answers and state, check fields and exceptions.

use integration_tests::fixtures::{hw, key_body, user_body, KEY_PRODUCT};
use integration_tests::{assert_error, error_of, Fixture, Instance};
use license_api::client::LicenseClient;
use license_api::ids::Username;
use license_api::model::{Device, License, ProductDoc};
use license_api::plan::{LicenseAddr, WriteToken};
use license_api::store::write::{Action, Attr, Effect, Item, ItemWrite, Write};
use license_api::time::Timestamp;
use serde_json::{json, Value};
use std::time::Duration;

fn check_body(key: &str, h: &str) -> Value {
    json!({"product": KEY_PRODUCT, "hardware_id": h, "license_key": key})
}

/// The last-seen interval of the coalescing test: long enough that two checks in a row fall within it on
/// a loaded machine, short enough to wait out.
const INTERVAL: Duration = Duration::from_secs(3);

/// The device `hw` of `license` as stored.
async fn device(f: &Fixture, license: &License, hw: &str) -> Device {
    let devices = f.store().list_devices(&LicenseAddr::of(license)).await.unwrap();
    devices
        .into_iter()
        .find(|d| d.hardware_id.as_str() == hw)
        .expect("device stored")
}

/// Sends a check that must answer 200; returns the write units DynamoDB reported for it (0 on SQLite).
async fn checked(app: &Instance, client: &LicenseClient, body: &Value) -> f64 {
    let before = app.usage();
    let resp = app.send(client.check(body)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    (app.usage() - before).write_units
}

integration_tests::matrix! {
async fn deactivation_frees_the_slot_and_answers_plain_text(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("D", |l| l.max_activations = 1).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("D", "h1"))).await.status(), 200);
    let resp = f.app.send(f.client.deactivate(&key_body("D", "h1"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.body().as_ref(), b"license_deactivated");
    assert!(resp.headers().get("LicenseSignature").is_none());
    let l = f.license_now(&license).await;
    assert_eq!(l.times_activated, 0);
    assert_eq!(l.released_count, 1);
    let addr = license_api::plan::LicenseAddr::of(&license);
    assert_eq!(f.store().released_slot(&addr).await.unwrap(), Some(hw("h1")));
    assert_eq!(
        f.device_counts(&license).await,
        (0, 1),
        "the device record stays, inactive"
    );
    let devices = f.store().list_devices(&LicenseAddr::of(&license)).await.unwrap();
    assert!(devices[0].deactivated_at.is_some());
}

async fn every_deactivation_exception(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("D", |_| {}).await;
    let deact = |body: &Value| f.app.send(f.client.deactivate(body));
    assert_error(
        &deact(&json!({"product": "nope", "hardware_id": "h", "license_key": "D"})).await,
        400,
        "unknown_product",
    );
    assert_error(&deact(&key_body("MISSING", "h")).await, 400, "license_not_found");
    assert_error(&deact(&key_body("D", "h")).await, 400, "license_not_active");
    assert_eq!(f.app.send(f.client.activate(&key_body("D", "h1"))).await.status(), 200);
    assert_error(&deact(&key_body("D", "other")).await, 400, "device_not_found");
    assert_eq!(deact(&key_body("D", "h1")).await.status(), 200);
    // A second deactivation of the same device: nothing is active any more.
    assert_error(&deact(&key_body("D", "h1")).await, 400, "license_not_active");
    let no_headers = http::Request::post("/api/v4/deactivate_license")
        .body(bytes::Bytes::from(key_body("D", "h1").to_string()))
        .unwrap();
    assert_error(&f.app.send(no_headers).await, 400, "missing_headers");
}

async fn user_deactivation_returns_the_users_activation(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(601, |_| {}).await;
    f.user("ann@example.com", 1, &[(&license, 1)]).await;
    assert_eq!(
        f.app
            .send(f.client.activate(&user_body("ann@example.com", "h1")))
            .await
            .status(),
        200
    );
    // Deactivation needs only the username.
    let body = json!({"product": "up", "hardware_id": "h1", "username": "ann@example.com"});
    assert_eq!(f.app.send(f.client.deactivate(&body)).await.status(), 200);
    let seat = f.seat_now(&license, "ann@example.com").await;
    assert_eq!(seat.total_activations, 0);
    assert_eq!(
        f.app
            .send(f.client.activate(&user_body("ann@example.com", "h2")))
            .await
            .status(),
        200
    );
}

async fn a_deactivation_releases_a_device_whose_seat_is_gone(setup) {
    // The seat a device's activation charged is at 0 (stored counts inconsistent, e.g. after a
    // re-import): the slot is released without the seat, whoever deactivates, rather than never.
    let f = Fixture::new(setup).await;
    let license = f.user_license(602, |l| l.max_activations = 5).await;
    let addr = LicenseAddr::of(&license);
    f.user("ann@example.com", 1, &[(&license, 2)]).await;
    f.user("bob@example.com", 2, &[(&license, 2)]).await;
    for h in ["a1", "a2"] {
        assert_eq!(f.app.send(f.client.activate(&user_body("ann@example.com", h))).await.status(), 200);
    }
    let ann = Username::parse("ann@example.com").unwrap();
    let zero = Write {
        items: vec![ItemWrite {
            item: Item::Seat(addr.clone(), ann.clone()),
            conditions: vec![],
            action: Action::Update(vec![Effect::Add(Attr::TotalActivations, -2)]),
        }],
    };
    f.store().apply(&zero, &WriteToken::new()).await.unwrap();
    // Ann deactivates her own device; Bob deactivates Ann's other one.
    for (user, h) in [("ann@example.com", "a1"), ("bob@example.com", "a2")] {
        let body = json!({"product": "up", "hardware_id": h, "username": user});
        let resp = f.app.send(f.client.deactivate(&body)).await;
        assert_eq!(resp.status(), 200, "{user} {h}: {}", String::from_utf8_lossy(resp.body()));
        assert_eq!(resp.body().as_ref(), b"license_deactivated");
    }
    assert_eq!(f.store().get_seat(&addr, &ann).await.unwrap().unwrap().total_activations, 0, "not below 0");
    let bob = Username::parse("bob@example.com").unwrap();
    assert_eq!(f.store().get_seat(&addr, &bob).await.unwrap().unwrap().total_activations, 0, "Bob's untouched");
    assert_eq!(f.license_now(&license).await.times_activated, 0);
    assert!(f.store().list_devices(&addr).await.unwrap().iter().all(|d| !d.active));
}

async fn check_reports_the_license_and_records_the_device(setup) {
    let f = Fixture::new(setup).await;
    let validity = Timestamp::now().plus_days(30);
    let license = f.key_license("C", |l| l.validity_period = Some(validity)).await;
    let mut act = key_body("C", "h1");
    act["variables"] = json!({"v": "1"});
    assert_eq!(f.app.send(f.client.activate(&act)).await.status(), 200);
    let mut q = check_body("C", "h1");
    q["os_ver"] = json!("15.0");
    q["is_vm"] = json!("false");
    q["include_expired_features"] = json!("true");
    let resp = f.app.send(f.client.check(&q)).await;
    let obj = f.client.verify_license(&resp, "h1", "C").unwrap();
    assert_eq!(obj["license_active"], true);
    assert_eq!(obj["license_enabled"], true);
    assert_eq!(obj["is_expired"], false);
    assert_eq!(obj["is_borrowed"], false);
    assert_eq!(obj["borrowed_until"], Value::Null);
    assert_eq!(obj["hardware_id"], "h1");
    assert_eq!(obj["validity_period"], validity.to_string());
    assert_eq!(obj["variables"][0]["variable"], "v");
    assert!(obj.get("request").is_none() && obj.get("installation_file").is_none());
    let device = &f.store().list_devices(&LicenseAddr::of(&license)).await.unwrap()[0];
    assert_eq!(device.details["os_ver"], "15.0");
    assert_eq!(device.details["is_vm"], false);
    assert!(device.last_seen_at.unwrap() >= device.last_activated_at);
}

async fn every_check_exception_and_expired_is_200(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("C", |_| {}).await;
    let f = &f;
    let check = |body: Value| async move { error_of(&f.app.send(f.client.check(&body)).await) };
    assert_eq!(
        check(json!({"product": "nope", "hardware_id": "h", "license_key": "C"})).await,
        (400, "unknown_product".into())
    );
    assert_eq!(
        check(check_body("MISSING", "h")).await,
        (400, "license_not_found".into())
    );
    assert_eq!(check(check_body("C", "h1")).await, (400, "license_not_active".into()));
    assert_eq!(f.app.send(f.client.activate(&key_body("C", "h1"))).await.status(), 200);
    assert_eq!(check(check_body("C", "h2")).await, (400, "device_not_found".into()));
    // A check never creates a device.
    assert_eq!(f.device_counts(&license).await, (1, 1));

    f.update_company(|c| {
        c.blacklist.insert(hw("h1"));
    })
    .await;
    assert_eq!(check(check_body("C", "h1")).await, (400, "blacklisted".into()));
    f.update_company(|_| {}).await;

    let mut disabled = f.license_now(&license).await;
    disabled.enabled = false;
    f.store().put_license(&disabled).await.unwrap();
    assert_eq!(check(check_body("C", "h1")).await, (400, "license_not_enabled".into()));

    let mut expired = disabled;
    expired.enabled = true;
    expired.validity_period = Some(Timestamp::now().plus_days(-1));
    f.store().put_license(&expired).await.unwrap();
    let resp = f.app.send(f.client.check(&check_body("C", "h1"))).await;
    let obj = f.client.verify_license(&resp, "h1", "C").unwrap();
    assert_eq!(obj["is_expired"], true);
}

async fn head_check_answers_like_get_without_a_body(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("C", |_| {}).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("C", "h1"))).await.status(), 200);
    let head = |req: http::Request<bytes::Bytes>| {
        let (mut parts, body) = req.into_parts();
        parts.method = http::Method::HEAD;
        http::Request::from_parts(parts, body)
    };
    // A HEAD carries its fields in the query like the GET; reading a JSON body instead would make
    // every HEAD a 400 invalid_json. Same status and headers as the GET, no body.
    for (body, status) in [(check_body("C", "h1"), 200), (check_body("C", "h2"), 400)] {
        let get = f.app.send(f.client.check(&body)).await;
        let resp = f.app.send(head(f.client.check(&body))).await;
        assert_eq!(get.status(), status, "{}", String::from_utf8_lossy(get.body()));
        assert_eq!(resp.status(), get.status(), "HEAD of {body}");
        assert_eq!(resp.headers()["content-type"], get.headers()["content-type"]);
        assert_eq!(
            resp.headers().contains_key("LicenseSignature"),
            get.headers().contains_key("LicenseSignature")
        );
        assert!(resp.body().is_empty(), "HEAD answered a body: {:?}", resp.body());
    }
    let unsigned = http::Request::head(format!("/api/v4/check_license?product={KEY_PRODUCT}&hardware_id=h1&license_key=C"))
        .body(bytes::Bytes::new())
        .unwrap();
    assert_eq!(f.app.send(unsigned).await.status(), 400, "missing_headers, as for GET");
    let root = f.app.send(http::Request::head("/").body(bytes::Bytes::new()).unwrap()).await;
    assert_eq!(root.status(), 200);
    assert!(root.body().is_empty());
}

async fn user_based_check(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(602, |_| {}).await;
    f.user("ann@example.com", 5, &[(&license, 3)]).await;
    assert_eq!(
        f.app
            .send(f.client.activate(&user_body("ann@example.com", "h1")))
            .await
            .status(),
        200
    );
    let q = json!({"product": "up", "hardware_id": "h1", "username": "ann@example.com", "license_id": 602});
    let obj = f
        .client
        .verify_license(&f.app.send(f.client.check(&q)).await, "h1", "ann@example.com")
        .unwrap();
    assert_eq!(obj["user"]["total_activations"], 1);
    assert_eq!(obj["user"]["max_activations"], 3);
    assert!(obj.get("username").is_none(), "only activation echoes username");
    // An unknown user answers like a known one without that device (SPEC §2.1).
    let q = json!({"product": "up", "hardware_id": "h1", "username": "zed@example.com"});
    assert_error(&f.app.send(f.client.check(&q)).await, 400, "device_not_found");
}

// Item 10 of issue 15: a device's checks are recorded at most once per interval, and at once when the
// hardware details change; every other check writes nothing at all.
async fn checks_are_recorded_once_per_interval_or_when_details_change(setup) {
    let dynamodb = setup.backend == integration_tests::Backend::DynamoDb;
    let f = Fixture::new(setup).await;
    let license = f.key_license("C", |_| {}).await;
    let app = f.env.configured_instance(|s| s.with_last_seen_interval(INTERVAL)).await;
    let client = &f.client;
    let mut body = check_body("C", "h1");
    body["os_ver"] = json!("15.0");
    assert_eq!(app.send(client.activate(&body)).await.status(), 200);
    let activated = device(&f, &license, "h1").await;
    assert_eq!(activated.last_seen_at, Some(activated.last_activated_at), "activation records a sighting");

    // Within the interval, with the details as stored: two checks, nothing written.
    let before = f.env.dump().await;
    assert_eq!(checked(&app, client, &body).await, 0.0);
    assert_eq!(checked(&app, client, &body).await, 0.0);
    assert_eq!(f.env.dump().await, before, "checks within the interval wrote");

    // Once the interval has passed: the next check records the device, the one after it does not.
    tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
    let due = Timestamp::now();
    let units = checked(&app, client, &body).await;
    let recorded = device(&f, &license, "h1").await;
    assert!(recorded.last_seen_at.unwrap() >= due, "the check after the interval was not recorded");
    let before = f.env.dump().await;
    assert_eq!(checked(&app, client, &body).await, 0.0);
    assert_eq!(f.env.dump().await, before, "a check right after a recorded one wrote");

    // Changed details are recorded at once, within the interval; the same details again are not.
    tokio::time::sleep(Duration::from_millis(5)).await;
    body["os_ver"] = json!("16.0");
    assert_eq!(checked(&app, client, &body).await, units);
    let changed = device(&f, &license, "h1").await;
    assert_eq!(changed.details["os_ver"], "16.0");
    assert!(changed.last_seen_at > recorded.last_seen_at);
    let before = f.env.dump().await;
    assert_eq!(checked(&app, client, &body).await, 0.0);
    assert_eq!(f.env.dump().await, before, "a check with the details as stored wrote");
    // What a write costs: one plain update of the small device item (DynamoDB Local reports units).
    if dynamodb {
        assert_eq!(units, 1.0, "a recorded check's write units");
    }
}

// A check that any rule refuses writes nothing, even where an accepted one would write (interval 0):
// the gates on shared items (product, company) are decided from the request's consistent read.
async fn a_refused_check_writes_nothing(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("C", |_| {}).await;
    let app = f.env.configured_instance(|s| s.with_last_seen_interval(Duration::ZERO)).await;
    for hw in ["h1", "h2"] {
        assert_eq!(app.send(f.client.activate(&check_body("C", hw))).await.status(), 200);
    }
    assert_eq!(app.send(f.client.deactivate(&check_body("C", "h2"))).await.status(), 200);
    let product = |shape: fn(&mut ProductDoc)| {
        let mut p = ProductDoc {
            id: 11,
            code: integration_tests::fixtures::product_code(KEY_PRODUCT),
            name: "Key Product".into(),
            ..ProductDoc::default()
        };
        shape(&mut p);
        p
    };
    let mut body = check_body("C", "h1");
    body["hostname"] = json!("a new name");
    let refused = |body: Value, status: u16, code: &'static str| {
        let (app, f) = (&app, &f);
        async move {
            let before = f.env.dump().await;
            assert_error(&app.send(f.client.check(&body)).await, status, code);
            assert_eq!(f.env.dump().await, before, "a check refused with {code} wrote");
        }
    };
    refused(check_body("C", "h2"), 400, "device_not_found").await;
    let mut wrong_id = body.clone();
    wrong_id["license_id"] = json!(license.id + 1);
    refused(wrong_id, 400, "license_not_found").await;
    f.store().put_product(&f.company, &product(|p| p.blacklist = [hw("h1")].into())).await.unwrap();
    refused(body.clone(), 400, "blacklisted").await;
    f.store().put_product(&f.company, &product(|p| p.disabled = true)).await.unwrap();
    refused(body.clone(), 400, "disabled_product").await;
    f.store().put_product(&f.company, &product(|p| p.archived = true)).await.unwrap();
    refused(body.clone(), 400, "archived_product").await;
    f.store().put_product(&f.company, &product(|_| {})).await.unwrap();
    f.update_company(|c| c.blacklist = [hw("h1")].into()).await;
    refused(body.clone(), 400, "blacklisted").await;
    f.update_company(|_| {}).await;
    f.key_license("C", |l| l.enabled = false).await;
    refused(body.clone(), 400, "license_not_enabled").await;
    // Nothing refuses it any more: it writes.
    f.key_license("C", |_| {}).await;
    assert_eq!(app.send(f.client.check(&body)).await.status(), 200);
    assert_eq!(device(&f, &license, "h1").await.details["hostname"], "a new name");
}
}
