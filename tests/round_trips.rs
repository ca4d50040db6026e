//! DynamoDB round trips per operation on a warm function (API key cached), counted on the wire:
//! key-based activate/deactivate ≤ 2, user-based ≤ 3; a check is its read alone (1 request key-based,
//! 2 user-based) unless its device's record is due, which adds one plain update after the read;
//! offline uploads cost what the online request costs, a repeat upload the read plus one GetItem;
//! adding consumptions costs what a deactivation does (2 key-based, 3 user-based), a feature check its
//! read alone.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::counter::{RoundTrips, Written};
use integration_tests::fixtures::{key_body, user_body, API_KEY, KEY_PRODUCT, SHARED_KEY};
use integration_tests::{Backend, Fixture, Setup, Transport};
use license_api::handlers::Endpoint;
use license_api::offline::file::Shape;
use license_api::offline::payload::Kind;
use serde_json::json;
use std::collections::HashMap;

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
    // The warm-up check is refused (no device): a refused check sends no write.
    assert_eq!(cold_requests, 2, "cold check = API key + read");
    assert_eq!(get("key activate"), (2, 2));
    assert_eq!(get("key deactivate"), (2, 2));
    // Right after the activation, which recorded the device as seen: nothing to write.
    assert_eq!(
        get("key check"),
        (1, 1),
        "a check within the interval is its read alone"
    );
    assert_eq!(get("user activate"), (3, 3));
    assert_eq!(get("user deactivate"), (3, 3));
    assert_eq!(get("user check"), (2, 2));
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
    // One read of the bundle license, then every member's product and license at once, then one write;
    // the check right after the activation has nothing to write.
    for (name, got) in &measure {
        let write = usize::from(*name != "bundle check");
        assert_eq!(*got, (1 + 2 * 3 + write, 2 + write), "{name}");
    }
}

/// Consumption and features (SPEC §9), warm: a key-based addition is the check's read and one
/// transaction (the device checked, the license charged), a user-based one the user's read more; a
/// feature check is the read alone.
#[tokio::test]
async fn round_trips_per_consumption_operation() {
    use integration_tests::fixtures::USER_PRODUCT;
    use license_api::model::{AuthorizationMethod, Feature, FeatureType, LicenseType};
    let f = Fixture::new(Setup::new(
        "round-trips-consumption",
        Backend::DynamoDb,
        Transport::Lambda,
    ))
    .await;
    // Both fixture products with a consumption feature.
    for (id, code, method) in [
        (11, KEY_PRODUCT, AuthorizationMethod::LicenseKey),
        (12, USER_PRODUCT, AuthorizationMethod::User),
    ] {
        f.put_product(|p| {
            p.id = id;
            p.code = integration_tests::fixtures::product_code(code);
            p.authorization_method = method;
            p.features = vec![Feature {
                id: 1,
                code: "renders".into(),
                feature_type: FeatureType::Consumption,
                max_consumption: 100,
                ..Feature::default()
            }];
        })
        .await;
    }
    let metered = |l: &mut license_api::model::License| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 100;
    };
    f.key_license("RT-C", metered).await;
    let license = f.user_license(802, metered).await;
    f.user("ann@example.com", 1, &[(&license, 0)]).await;
    let app = &f.app;
    for req in [
        f.client.activate(&key_body("RT-C", "h1")),
        f.client.activate(&user_body("ann@example.com", "h1")),
    ] {
        assert_eq!(app.send(req).await.status(), 200);
    }
    let key = key_body("RT-C", "h1");
    let user = json!({"product": "up", "hardware_id": "h1", "username": "ann@example.com"});
    let with = |mut body: serde_json::Value, extra: serde_json::Value| {
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let feature = json!({"feature": "renders", "consumptions": 2});
    let mut measure = Vec::new();
    for (name, req) in [
        (
            "key add_consumption",
            f.client.post_json("/api/v4/add_consumption", &key),
        ),
        (
            "key add_feature_consumption",
            f.client
                .post_json("/api/v4/add_feature_consumption", &with(key.clone(), feature.clone())),
        ),
        (
            "key check_license_feature",
            f.client.get(
                "/api/v4/check_license_feature",
                &with(key.clone(), json!({"feature": "renders"})),
            ),
        ),
        (
            "user add_consumption",
            f.client.post_json("/api/v4/add_consumption", &user),
        ),
        (
            "user check_license_feature",
            f.client.get(
                "/api/v4/check_license_feature",
                &with(user.clone(), json!({"feature": "renders"})),
            ),
        ),
    ] {
        app.round_trips.reset();
        let resp = app.send(req).await;
        assert_eq!(resp.status(), 200, "{name}: {}", String::from_utf8_lossy(resp.body()));
        measure.push((name, app.round_trips.get()));
    }
    for (name, (requests, sequential)) in &measure {
        println!("{name}: {requests} requests, {sequential} sequential round trips");
    }
    let get = |name: &str| measure.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(get("key add_consumption"), (2, 2));
    assert_eq!(get("key add_feature_consumption"), (2, 2));
    assert_eq!(get("key check_license_feature"), (1, 1));
    assert_eq!(get("user add_consumption"), (3, 3));
    assert_eq!(get("user check_license_feature"), (2, 2));
}

#[tokio::test]
async fn round_trips_per_floating_operation() {
    let f = Fixture::new(Setup::new("round-trips-floating", Backend::DynamoDb, Transport::Lambda)).await;
    f.key_license("RT-FLOAT", |l| {
        l.terms.is_floating_cloud = true;
        l.terms.floating_users = 2;
        l.terms.floating_timeout = 10;
        l.terms.can_borrow = true;
        l.terms.max_borrow_time = 24;
    })
    .await;
    let app = &f.app;
    let rt = &app.round_trips;
    assert_eq!(
        app.send(f.client.activate(&key_body("RT-FLOAT", "h1"))).await.status(),
        200
    );
    let until = license_api::time::Timestamp::now().plus_days(1).to_string();
    let mut borrow = key_body("RT-FLOAT", "h1");
    borrow["borrowed_until"] = json!(until);
    let mut measure = Vec::new();
    for (name, req) in [
        // Right after the activation the device's record is not due: the slot's update alone.
        (
            "floating check (takes the slot)",
            f.client.check(&key_body("RT-FLOAT", "h1")),
        ),
        (
            "floating check (refreshes it)",
            f.client.check(&key_body("RT-FLOAT", "h1")),
        ),
        (
            "floating release",
            f.client.call(Endpoint::FloatingRelease, &key_body("RT-FLOAT", "h1")),
        ),
        (
            "floating release (holds none)",
            f.client.call(Endpoint::FloatingRelease, &key_body("RT-FLOAT", "h1")),
        ),
        ("floating borrow", f.client.call(Endpoint::FloatingBorrow, &borrow)),
    ] {
        rt.reset();
        let resp = app.send(req).await;
        assert_eq!(resp.status(), 200, "{name}: {}", String::from_utf8_lossy(resp.body()));
        measure.push((name, rt.get()));
    }
    for (name, (requests, sequential)) in &measure {
        println!("{name}: {requests} requests, {sequential} sequential round trips");
    }
    // The read, then one conditional UpdateItem of the license; a release with nothing held reads alone.
    for (name, got) in &measure {
        let expected = if name.ends_with("(holds none)") { (1, 1) } else { (2, 2) };
        assert_eq!(*got, expected, "{name}");
    }
}

#[tokio::test]
async fn round_trips_user_licenses() {
    let f = Fixture::new(Setup::new(
        "round-trips-user-licenses",
        Backend::DynamoDb,
        Transport::Lambda,
    ))
    .await;
    let first = f.user_license(810, |_| {}).await;
    let second = f.user_license(811, |_| {}).await;
    let third = f.user_license(812, |_| {}).await;
    f.user("ann@example.com", 2, &[(&first, 0), (&second, 0), (&third, 0)])
        .await;
    let rt = &f.app.round_trips;
    assert_eq!(
        f.app.send(f.client.check(&key_body("RT", "warmup"))).await.status(),
        400
    );
    let params =
        json!({"product": "up", "username": "ann@example.com", "password": integration_tests::fixtures::PASSWORD});
    rt.reset();
    let resp = f
        .app
        .send(f.client.call(license_api::handlers::Endpoint::UserLicenses, &params))
        .await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let (requests, sequential) = rt.get();
    println!("user_licenses (3 licenses): {requests} requests, {sequential} sequential round trips");
    // The context read, then each license and its seat at once.
    assert_eq!((requests, sequential), (1 + 2 * 3, 2));
}

#[tokio::test]
async fn round_trips_change_password() {
    let f = Fixture::new(Setup::new(
        "round-trips-change-password",
        Backend::DynamoDb,
        Transport::Lambda,
    ))
    .await;
    let license = f.user_license(820, |_| {}).await;
    f.user("ann@example.com", 3, &[(&license, 0)]).await;
    let rt = &f.app.round_trips;
    assert_eq!(
        f.app.send(f.client.check(&key_body("RT", "warmup"))).await.status(),
        400
    );
    let params = json!({"username": "ann@example.com", "password": integration_tests::fixtures::PASSWORD,
        "new_password": "a new secret"});
    rt.reset();
    let resp = f
        .app
        .send(f.client.call(license_api::handlers::Endpoint::ChangePassword, &params))
        .await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let (requests, sequential) = rt.get();
    println!("change_password: {requests} requests, {sequential} sequential round trips");
    // The user's record, then its conditional put.
    assert_eq!((requests, sequential), (2, 2));
}

/// An item's size as DynamoDB bills it: attribute names plus values (strings and binaries their bytes,
/// numbers about one byte per two digits plus one, booleans and nulls one byte, lists and maps 3 bytes
/// plus one byte per element plus the elements).
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(t) => t.len(),
        AttributeValue::N(n) => {
            n.trim_start_matches('-')
                .replace('.', "")
                .trim_start_matches('0')
                .len()
                .div_ceil(2)
                + 1
        }
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(items) => 3 + items.iter().map(|i| value_size(i) + 1).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        _ => 1,
    }
}

/// Every item of the test's table with its billed size, by (PK, SK).
async fn item_sizes(f: &Fixture) -> HashMap<(String, String), usize> {
    let client = integration_tests::client(&RoundTrips::default());
    let out = client
        .scan()
        .table_name(f.env.location())
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(out.last_evaluated_key.is_none(), "the test table fits one scan page");
    let part = |item: &HashMap<String, AttributeValue>, name: &str| item[name].as_s().unwrap().clone();
    out.items()
        .iter()
        .map(|item| {
            let size = item.iter().map(|(k, v)| k.len() + value_size(v)).sum();
            ((part(item, "PK"), part(item, "SK")), size)
        })
        .collect()
}

/// Write units the writes would cost on DynamoDB: each item in a transaction 2 per KB (condition checks
/// included), a plain write 1 per KB, of the larger of the item's sizes before and after.
fn billed_write_units(
    writes: &[Written],
    before: &HashMap<(String, String), usize>,
    after: &HashMap<(String, String), usize>,
) -> usize {
    writes
        .iter()
        .map(|w| {
            let per_kb = if w.operation == "TransactWriteItems" { 2 } else { 1 };
            w.items
                .iter()
                .map(|key| {
                    let size = before.get(key).copied().max(after.get(key).copied()).unwrap_or(1);
                    per_kb * size.div_ceil(1024).max(1)
                })
                .sum::<usize>()
        })
        .sum()
}

/// Capacity per request kind, warm, one request at a time: the table issue 15 asks for. DynamoDB Local
/// answers `ReturnConsumedCapacity`, but for a transaction it reports about one item's units whatever
/// the number of items (a transaction of three device updates: 2), so the table also gives what
/// DynamoDB bills by its rules for the items each write named. A check whose device was seen within
/// the interval writes nothing; one that is due writes its device alone, never the product or company.
#[tokio::test]
async fn capacity_per_request_kind() {
    let f = Fixture::new(Setup::new("capacity", Backend::DynamoDb, Transport::Lambda)).await;
    f.key_license("CU", |_| {}).await;
    let license = f.user_license(801, |_| {}).await;
    f.user("ann@example.com", 1, &[(&license, 0)]).await;
    let catalog = json!({"companies": [{"code": "c1", "id": 7,
        "products": [{"short_code": "m1"}, {"short_code": "m2"}, {"short_code": "m3"},
                     {"short_code": "kb", "bundle_products": ["m1", "m2", "m3"]}],
        "licenses": [{"id": 300, "product": "kb", "license_key": "KB-1", "max_activations": 2,
                      "members": [{"id": 301, "product": "m1"}, {"id": 302, "product": "m2"}, {"id": 303, "product": "m3"}]}]}]});
    let catalog = license_api::catalog::Catalog::parse(&catalog.to_string(), "capacity.json").unwrap();
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    // Every check of `eager` is due (interval 0); `warm` has the default interval.
    let warm = f.env.instance().await;
    let eager = f
        .env
        .configured_instance(|s| s.with_last_seen_interval(std::time::Duration::ZERO))
        .await;
    for app in [&warm, &eager] {
        assert_eq!(app.send(f.client.check(&key_body("CU", "warmup"))).await.status(), 400);
    }
    let user_check = json!({"product": "up", "hardware_id": "h1", "username": "ann@example.com"});
    let bundle_body = json!({"product": "kb", "hardware_id": "h1", "license_key": "KB-1"}).to_string();
    let post = |path: &str| {
        f.client.request(
            http::Method::POST,
            &format!("/api/v4/{path}"),
            Some(bundle_body.clone().into_bytes()),
        )
    };
    let get = |path: &str| {
        let query = format!("/api/v4/{path}?product=kb&hardware_id=h1&license_key=KB-1");
        f.client.request(http::Method::GET, &query, None)
    };
    let mut tracked = key_body("CU", "h1");
    tracked["variables"] = json!({"a": "1"});
    let mut changed = key_body("CU", "h1");
    changed["os_ver"] = json!("16.0");
    let mut table = Vec::new();
    for (name, app, req) in [
        ("key activate", &warm, f.client.activate(&key_body("CU", "h1"))),
        (
            "key check, seen within the interval",
            &warm,
            f.client.check(&key_body("CU", "h1")),
        ),
        ("key check, due", &eager, f.client.check(&key_body("CU", "h1"))),
        ("key check, details changed", &warm, f.client.check(&changed)),
        ("key deactivate", &warm, f.client.deactivate(&key_body("CU", "h1"))),
        (
            "user activate",
            &warm,
            f.client.activate(&user_body("ann@example.com", "h1")),
        ),
        (
            "user check, seen within the interval",
            &warm,
            f.client.check(&user_check),
        ),
        ("user check, due", &eager, f.client.check(&user_check)),
        (
            "user deactivate",
            &warm,
            f.client.deactivate(&user_body("ann@example.com", "h1")),
        ),
        ("bundle activate (3 members)", &warm, post("activate_bundle")),
        ("bundle check, seen within the interval", &warm, get("check_bundle")),
        ("bundle check, due", &eager, get("check_bundle")),
        ("bundle deactivate", &warm, post("deactivate_bundle")),
        ("key activate again", &warm, f.client.activate(&key_body("CU", "h1"))),
        (
            "key track device variables",
            &warm,
            f.client.call(Endpoint::TrackDeviceVariables, &tracked),
        ),
    ] {
        let (before, sizes) = (app.usage(), item_sizes(&f).await);
        app.round_trips.reset();
        let resp = app.send(req).await;
        assert_eq!(resp.status(), 200, "{name}: {}", String::from_utf8_lossy(resp.body()));
        let writes = app.round_trips.writes();
        let billed = billed_write_units(&writes, &sizes, &item_sizes(&f).await);
        let items: Vec<usize> = writes.iter().map(|w| w.items.len()).collect();
        table.push((name, app.usage() - before, billed, items));
    }
    println!("| request | items written | write units (DynamoDB billing) | write units (DynamoDB Local) | read units (Local) | conflicts |");
    println!("|---|---|---|---|---|---|");
    for (name, used, billed, items) in &table {
        println!(
            "| {name} | {items:?} | {billed} | {} | {} | {} |",
            used.write_units, used.read_units, used.conflicts
        );
    }
    let billed = |name: &str| table.iter().find(|(n, ..)| *n == name).unwrap().2;
    for name in [
        "key check, seen within the interval",
        "user check, seen within the interval",
        "bundle check, seen within the interval",
    ] {
        assert_eq!(billed(name), 0, "{name}");
    }
    for name in ["key check, due", "key check, details changed", "user check, due"] {
        assert_eq!(billed(name), 1, "{name}: one plain update of the device");
    }
    assert_eq!(
        billed("key track device variables"),
        1,
        "one plain update of the device"
    );
    // The three members' devices in one transaction (2 units each): all members or none.
    assert_eq!(billed("bundle check, due"), 6);
    // A change's audit record (docs/audit.md) is one more item of its own transaction: 2 units (it is
    // below 1 KB) and no round trip; checks and tracked variables, which are not audited, write none.
    let items = |name: &str| table.iter().find(|(n, ..)| *n == name).unwrap().3.clone();
    assert_eq!(
        (items("key activate"), billed("key activate")),
        (vec![3], 8),
        "device, license, record"
    );
    assert_eq!(
        (items("key deactivate"), billed("key deactivate")),
        (vec![4], 10),
        "+ released slot"
    );
    assert_eq!(items("bundle activate (3 members)"), [7], "one record for the bundle");
    assert!(table.iter().all(|(_, used, ..)| used.conflicts == 0));
}

/// Round trips of the other credentials (issue 16): a bearer token costs what an API key costs (its
/// OAuth client is cached like a key); a single sign-on grant costs what a username does, plus one read
/// of its customer account when that is not cached. (The identity provider is asked nothing for a warm
/// `id_token`, its keys being cached; a `code` costs one request to its token endpoint.)
#[tokio::test]
async fn round_trips_with_a_bearer_token_and_single_sign_on() {
    use integration_tests::oidc::{self, Flow, ANN, REDIRECT_URI};
    use license_api::identity::oidc::ProviderTransport;
    use license_api::ids::CustomerAccountCode;
    use license_api::model::CustomerAccountRecord;
    use license_api::sealed::SealingKey;
    use license_api::token::{AccessClaims, TokenKeys};

    let f = Fixture::new(Setup::new("round-trips-sso", Backend::DynamoDb, Transport::Lambda)).await;
    f.key_license("RT", |_| {}).await;
    let license = f.user_license(800, |_| {}).await;
    f.user(ANN.email, 1, &[(&license, 0)]).await;
    let sealing = SealingKey::generate().unwrap().0;
    f.put_oauth_client("ci-rt", &sealing, |_| {}).await;
    let code = CustomerAccountCode::parse("acct").unwrap();
    let context = CustomerAccountRecord::seal_context(&f.company, &code);
    let account = CustomerAccountRecord {
        company: f.company.clone(),
        sealed_secret: sealing.seal(&oidc::CLIENT_SECRET.to_owned().into(), &context).unwrap(),
        code,
        issuer: oidc::issuer(),
        client_id: oidc::CLIENT_ID.to_owned(),
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        email_claim: "email".to_owned(),
    };
    f.store().put_customer_account(&account).await.unwrap();
    let token_pem = TokenKeys::generate_pem().unwrap();
    let keys = || TokenKeys::from_pem(license_api::secret::ExposeSecret::expose_secret(&token_pem)).unwrap();
    let app = f
        .env
        .configured_instance(|state| {
            state
                .with_token_keys(Some(keys()))
                .with_sealing_key(Some(sealing))
                .with_sso(ProviderTransport::AllowPlainHttp)
        })
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let bearer = keys().issue(&AccessClaims::new("ci-rt", f.company.as_str(), false, now));
    let with_bearer = |mut req: http::Request<bytes::Bytes>| {
        req.headers_mut().remove("date");
        req.headers_mut()
            .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        req
    };
    let id_token = oidc::login(ANN, Flow::IdToken, REDIRECT_URI).await;
    let sso = |grant: (&str, &str), hw: &str| json!({"product": "up", "hardware_id": hw, grant.0: grant.1, "customer_account_code": "acct"});
    let grant = ("id_token", id_token.as_str());
    let mut requests = vec![
        (
            "bearer check (cold)",
            with_bearer(f.client.check(&key_body("RT", "warmup"))),
            400,
        ),
        (
            "bearer activate",
            with_bearer(f.client.activate(&key_body("RT", "h1"))),
            200,
        ),
        ("bearer check", with_bearer(f.client.check(&key_body("RT", "h1"))), 200),
        (
            "bearer deactivate",
            with_bearer(f.client.deactivate(&key_body("RT", "h1"))),
            200,
        ),
        ("sso activate (cold account)", f.client.activate(&sso(grant, "h1")), 200),
        ("sso check", f.client.check(&sso(grant, "h1")), 200),
        ("sso deactivate", f.client.deactivate(&sso(grant, "h1")), 200),
    ];
    let code = oidc::login(ANN, Flow::Code, REDIRECT_URI).await;
    let mut code_body = sso(("code", &code), "h1");
    code_body["redirect_uri"] = json!(REDIRECT_URI);
    requests.push(("sso activate (code, again)", f.client.activate(&code_body), 200));
    let mut measure = Vec::new();
    for (name, req, status) in requests {
        app.round_trips.reset();
        let resp = app.send(req).await;
        assert_eq!(
            resp.status(),
            status,
            "{name}: {}",
            String::from_utf8_lossy(resp.body())
        );
        measure.push((name, app.round_trips.get()));
    }
    for (name, (requests, sequential)) in &measure {
        println!("{name}: {requests} requests, {sequential} sequential round trips");
    }
    let get = |name: &str| measure.iter().find(|(n, _)| *n == name).unwrap().1;
    // As with an API key (round_trips_per_operation): the client record is read once, then cached.
    assert_eq!(get("bearer check (cold)"), (2, 2), "cold = client record + read");
    assert_eq!(get("bearer activate"), (2, 2));
    assert_eq!(get("bearer check"), (1, 1));
    assert_eq!(get("bearer deactivate"), (2, 2));
    // As with a username (3), plus the first request's reads of the API key (the bearer requests
    // did not need it) and the customer account; later grants find both cached.
    assert_eq!(get("sso activate (cold account)"), (5, 5));
    assert_eq!(get("sso check"), (2, 2));
    assert_eq!(get("sso deactivate"), (3, 3));
    assert_eq!(get("sso activate (code, again)"), (3, 3));
}

/// SPEC §9 device variables and product details on a warm function: tracking is the license read plus
/// one plain update of the device; listing is the read alone; product details one GetItem of the product.
#[tokio::test]
async fn round_trips_of_device_variables_and_product_details() {
    let f = Fixture::new(Setup::new(
        "round-trips-variables",
        Backend::DynamoDb,
        Transport::Lambda,
    ))
    .await;
    f.key_license("RT-VAR", |_| {}).await;
    let license = f.user_license(801, |_| {}).await;
    f.user("bea@example.com", 1, &[(&license, 0)]).await;
    let app = &f.app;
    let rt = &app.round_trips;
    assert_eq!(
        app.send(f.client.activate(&key_body("RT-VAR", "h1"))).await.status(),
        200
    );
    assert_eq!(
        app.send(f.client.activate(&user_body("bea@example.com", "h1")))
            .await
            .status(),
        200
    );
    let mut tracked = key_body("RT-VAR", "h1");
    tracked["variables"] = json!({"a": "1"});
    let mut user_tracked = json!({"product": "up", "hardware_id": "h1", "username": "bea@example.com"});
    let user_listed = user_tracked.clone();
    user_tracked["variables"] = json!({"a": "1"});
    let mut measure = Vec::new();
    for (name, req) in [
        ("key track", f.client.call(Endpoint::TrackDeviceVariables, &tracked)),
        (
            "key list",
            f.client.call(Endpoint::GetDeviceVariables, &key_body("RT-VAR", "h1")),
        ),
        (
            "user track",
            f.client.call(Endpoint::TrackDeviceVariables, &user_tracked),
        ),
        ("user list", f.client.call(Endpoint::GetDeviceVariables, &user_listed)),
        (
            "product details",
            f.client.call(
                Endpoint::ProductDetails,
                &json!({"product": KEY_PRODUCT, "include_latest_version": true, "include_custom_fields": true}),
            ),
        ),
    ] {
        rt.reset();
        let resp = app.send(req).await;
        assert_eq!(resp.status(), 200, "{name}: {}", String::from_utf8_lossy(resp.body()));
        measure.push((name, rt.get()));
    }
    for (name, (requests, sequential)) in &measure {
        println!("{name}: {requests} requests, {sequential} sequential round trips");
    }
    let get = |name: &str| measure.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(get("key track"), (2, 2), "read + the device's write");
    assert_eq!(get("key list"), (1, 1), "the read alone");
    assert_eq!(get("user track"), (3, 3), "user read, license read, the device's write");
    assert_eq!(get("user list"), (2, 2));
    assert_eq!(get("product details"), (1, 1), "one GetItem of the product");
}

#[tokio::test]
async fn round_trips_of_trials() {
    let f = Fixture::new(Setup::new("round-trips-trials", Backend::DynamoDb, Transport::Lambda)).await;
    for (code, method) in [
        ("p-trial", license_api::model::AuthorizationMethod::LicenseKey),
        ("p-user-trial", license_api::model::AuthorizationMethod::User),
    ] {
        let product = license_api::model::ProductDoc {
            code: integration_tests::fixtures::product_code(code),
            authorization_method: method,
            allow_trial: true,
            trial_days: 14,
            ..Default::default()
        };
        f.store().put_product(&f.company, &product).await.unwrap();
    }
    let (key, _) = license_api::sealed::SealingKey::generate().unwrap();
    let app = f.env.configured_instance(|s| s.with_sealing_key(Some(key))).await;
    let rt = &app.round_trips;
    assert_eq!(app.send(f.client.check(&key_body("RT", "warmup"))).await.status(), 400);
    let key_based = json!({"product": "p-trial", "hardware_id": "h1"});
    let user_based = json!({"product": "p-user-trial", "hardware_id": "h1", "email": "new@example.com"});
    let key_for_customer = json!({"product": "p-trial", "hardware_id": "h2", "email": "buyer@example.com"});
    let mut measure = Vec::new();
    for (name, params) in [
        ("key-based new", &key_based),
        ("key-based again", &key_based),
        ("key-based for a customer", &key_for_customer),
        ("user-based new", &user_based),
        ("user-based again", &user_based),
    ] {
        rt.reset();
        let resp = app.send(f.client.call(Endpoint::TrialKey, params)).await;
        assert_eq!(resp.status(), 200, "{name}: {}", String::from_utf8_lossy(resp.body()));
        measure.push((name, rt.get()));
    }
    for (name, (requests, sequential)) in &measure {
        println!("trial_key {name}: {requests} requests, {sequential} sequential round trips");
    }
    let get = |name: &str| measure.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(
        get("key-based new"),
        (4, 2),
        "product, company and marker at once, then the transaction"
    );
    assert_eq!(
        get("key-based again"),
        (4, 2),
        "product, company and marker at once, then the license"
    );
    assert_eq!(
        get("key-based for a customer"),
        (6, 2),
        "product, company, marker, the email's user (read before the product is known) and the customer's index at once, then the transaction"
    );
    assert_eq!(
        get("user-based new"),
        (6, 2),
        "product, company, marker, user and the customer's index at once, then the transaction"
    );
    assert_eq!(
        get("user-based again"),
        (6, 2),
        "product, company, marker, user and the customer's index at once, then the license"
    );
}

#[tokio::test]
async fn round_trips_customer_license_users() {
    let f = Fixture::new(Setup::new(
        "round-trips-customer-license-users",
        Backend::DynamoDb,
        Transport::Lambda,
    ))
    .await;
    let text = json!({"companies": [{
        "code": "c1", "id": 7,
        "products": [{"short_code": "up", "id": 12, "authorization_method": "user"}],
        "license_users": [{"id": 1, "email": "ann@example.com"}, {"id": 2, "email": "bob@example.com"}],
        "licenses": [
            {"id": 820, "product": "up", "customer": {"email": "buyer@example.com"},
             "users": [{"email": "ann@example.com"}, {"email": "bob@example.com"}]},
            {"id": 821, "product": "up", "customer": {"email": "buyer@example.com"}, "users": [{"email": "ann@example.com"}]}
        ]
    }]});
    let catalog = license_api::catalog::Catalog::parse(&text.to_string(), "rt.json").unwrap();
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    let rt = &f.app.round_trips;
    assert_eq!(
        f.app.send(f.client.check(&key_body("RT", "warmup"))).await.status(),
        400
    );
    rt.reset();
    let params = json!({"product": "up", "customer": "buyer@example.com"});
    let resp = f.app.send(f.client.call(Endpoint::CustomerLicenseUsers, &params)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let (requests, sequential) = rt.get();
    println!("customer_license_users (2 licenses, 3 users): {requests} requests, {sequential} sequential round trips");
    // The product and the index at once, then each license and each user with their seat at once.
    assert_eq!((requests, sequential), (2 + 2 + 2 * 3, 2));
}

/// The Management API's operations on a warm `management` function: each request first reads its
/// management key (one GetItem: never cached, so a revocation holds at once), then the operation's
/// reads and its one conditional write with the audit record; lists and searches are one index query
/// plus one consistent batch read of the licenses found.
#[tokio::test]
async fn round_trips_per_management_operation() {
    use crate::management::{call, new_key};
    let f = Fixture::new(Setup::new("round-trips-mgmt", Backend::DynamoDb, Transport::Lambda)).await;
    f.key_license("MG", |l| l.max_activations = 3).await;
    let (token, _) = new_key(&f, f.company.as_str(), false).await;
    let rt = &f.app.round_trips;
    assert_eq!(f.app.send(f.client.activate(&key_body("MG", "h1"))).await.status(), 200);
    assert_eq!(f.app.send(f.client.activate(&key_body("MG", "h2"))).await.status(), 200);
    let lic = "/products/kp/licenses/MG";
    let created = json!({"license_key": "MG-NEW", "max_activations": 2});
    let mut measured = Vec::new();
    for (name, method, path, body, status) in [
        (
            "license create",
            "POST",
            "/products/kp/licenses".to_owned(),
            Some(created),
            201,
        ),
        ("license read", "GET", lic.to_owned(), None, 200),
        (
            "license update",
            "PATCH",
            lic.to_owned(),
            Some(json!({"max_activations": 4})),
            200,
        ),
        ("license disable", "POST", format!("{lic}/disable"), None, 200),
        ("license enable", "POST", format!("{lic}/enable"), None, 200),
        ("device list", "GET", format!("{lic}/devices"), None, 200),
        (
            "device deactivate",
            "POST",
            format!("{lic}/devices/h1/deactivate"),
            None,
            200,
        ),
        ("reset transfers", "POST", format!("{lic}/reset-transfers"), None, 200),
        (
            "blacklist",
            "POST",
            "/blacklist".to_owned(),
            Some(json!({"hardware_id": "bad"})),
            200,
        ),
        (
            "device reset (1 active)",
            "POST",
            format!("{lic}/devices/reset"),
            None,
            200,
        ),
        ("license list", "GET", "/licenses".to_owned(), None, 200),
        (
            "search by hardware id",
            "GET",
            "/licenses/search?hardware_id=h2".to_owned(),
            None,
            200,
        ),
        ("audit query", "GET", "/audit?limit=10".to_owned(), None, 200),
        (
            "license delete",
            "DELETE",
            "/products/kp/licenses/MG-NEW".to_owned(),
            None,
            200,
        ),
        (
            "product create",
            "POST",
            "/products".to_owned(),
            Some(json!({"short_code": "rt", "name": "RT"})),
            201,
        ),
        (
            "product update",
            "PATCH",
            "/products/rt".to_owned(),
            Some(json!({"name": "RT 2"})),
            200,
        ),
        ("product list", "GET", "/products".to_owned(), None, 200),
        ("product delete", "DELETE", "/products/rt".to_owned(), None, 200),
        (
            "user create",
            "POST",
            "/users".to_owned(),
            Some(json!({"email": "rt@example.com"})),
            201,
        ),
        (
            "user disable",
            "POST",
            "/users/rt@example.com/disable".to_owned(),
            None,
            200,
        ),
        ("user list", "GET", "/users".to_owned(), None, 200),
        ("user delete", "DELETE", "/users/rt@example.com".to_owned(), None, 200),
        (
            "API key create",
            "POST",
            "/api-keys".to_owned(),
            Some(json!({"api_key": "rt-key", "products": ["kp"]})),
            201,
        ),
        (
            "API key update",
            "PATCH",
            "/api-keys/rt-key".to_owned(),
            Some(json!({"read_only": true})),
            200,
        ),
        (
            "API key revoke",
            "POST",
            "/api-keys/rt-key/revoke".to_owned(),
            None,
            200,
        ),
        ("API key list", "GET", "/api-keys".to_owned(), None, 200),
        ("API key delete", "DELETE", "/api-keys/rt-key".to_owned(), None, 200),
    ] {
        rt.reset();
        let (got, answer) = call(&f, method, &path, &token, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        measured.push((name, rt.get()));
    }
    let expected = [
        ("license create", 3),
        ("license read", 2),
        ("license update", 4),
        ("license disable", 3),
        ("license enable", 3),
        ("device list", 4),
        ("device deactivate", 4),
        ("reset transfers", 3),
        ("blacklist", 3),
        ("device reset (1 active)", 6),
        ("license list", 3),
        ("search by hardware id", 3),
        ("audit query", 2),
        ("license delete", 5),
        ("product create", 3),
        ("product update", 3),
        ("product list", 3),
        ("product delete", 4),
        ("user create", 3),
        ("user disable", 3),
        ("user list", 3),
        ("user delete", 3),
        ("API key create", 3),
        ("API key update", 3),
        ("API key revoke", 3),
        ("API key list", 3),
        ("API key delete", 3),
    ];
    // Every request is sequential: no operation overlaps its round trips.
    let got: Vec<_> = measured
        .iter()
        .map(|(name, (requests, _))| (*name, *requests))
        .collect();
    assert_eq!(got, expected);
    assert!(measured
        .iter()
        .all(|(_, (requests, sequential))| requests == sequential));
}
