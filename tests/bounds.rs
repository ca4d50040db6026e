//! Numbers and sizes with bounds (issue 14, items 6, 8 and 9): consumption totals stay within what every
//! client reads exactly (±(2^53 − 1)), also under concurrent reports; a device's variables are bounded
//! in total; and the largest writes clients can cause (100 consumption features in one file, an offline
//! bundle of 24 members with the most variables a device may hold) fit DynamoDB's limits and answer 200,
//! while anything beyond the bounds answers a 4xx and changes nothing.

use bytes::Bytes;
use integration_tests::fixtures::{key_body, product_code, KEY_PRODUCT, SHARED_KEY};
use integration_tests::{assert_error, Fixture};
use license_api::catalog::{import, Catalog};
use license_api::ids::{LicenseKey, ProductCode};
use license_api::model::{Company, Feature, FeatureType, License, LicenseType, ProductDoc};
use license_api::offline::file::{RequestFile, Shape};
use license_api::offline::payload::Kind;
use license_api::plan::{LicenseAddr, WriteToken};
use license_api::rules::{self, Consumptions, LicenseContext};
use license_api::store::Rejection;
use license_api::time::Timestamp;
use serde_json::{json, Map, Value};

const DEACTIVATE: &str = "/api/v4/deactivate_offline";
/// `Number.MAX_SAFE_INTEGER`.
const MAX: i64 = 9_007_199_254_740_991;

fn file(kind: Kind, product: &str, key: &str, hw: &str, request_id: &str, extra: Value) -> RequestFile {
    RequestFile {
        extra: extra.as_object().cloned().unwrap_or_default(),
        ..integration_tests::fixtures::key_file(kind, product, key, hw, Some(request_id))
    }
}

fn upload(f: &Fixture, path: &str, file: &RequestFile) -> http::Request<Bytes> {
    f.client
        .upload(path, "text/plain", file.encode(Shape::PythonDeactivation, SHARED_KEY))
}

fn text_of(resp: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

fn consumption(code: &str, shape: impl FnOnce(&mut Feature)) -> Feature {
    let mut f = Feature {
        id: code.bytes().map(i64::from).sum(),
        code: code.into(),
        name: code.into(),
        feature_type: FeatureType::Consumption,
        ..Feature::default()
    };
    shape(&mut f);
    f
}

/// `n` variables of `value_len` bytes each, named `{prefix}{i}`.
fn variables(prefix: &str, n: usize, value_len: usize) -> Value {
    let map: Map<String, Value> = (0..n)
        .map(|i| (format!("{prefix}{i}"), Value::String("v".repeat(value_len))))
        .collect();
    Value::Object(map)
}

async fn active(f: &Fixture, key: &str, hw: &str) -> bool {
    let check = json!({"product": KEY_PRODUCT, "hardware_id": hw, "license_key": key});
    f.app.send(f.client.check(&check)).await.status() == 200
}

/// A deactivation of `hw` reporting `report`, planned as if at `now` (the rules' clock is their `now`).
async fn planned_at(
    f: &Fixture,
    product: &ProductDoc,
    license: &License,
    hw: &str,
    report: &Consumptions,
    now: &str,
) -> Result<license_api::plan::DeactivationPlan, String> {
    let addr = LicenseAddr::of(license);
    let current = f.store().get_license(&addr).await.unwrap().unwrap();
    let device = f
        .store()
        .list_devices(&addr)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.hardware_id.as_str() == hw);
    let ctx = LicenseContext {
        device,
        ..LicenseContext::new(product.clone(), Company::default(), current)
    };
    let now = Timestamp::parse_iso(now).unwrap();
    let mut plan =
        rules::plan_deactivation(&ctx, &integration_tests::fixtures::hw(hw), now).map_err(|e| e.code().to_owned())?;
    plan.charges = rules::plan_consumptions(&ctx, report, now).map_err(|e| e.code().to_owned())?;
    Ok(plan)
}

integration_tests::matrix! {
async fn consumption_periods_restart_inside_the_write(setup) {
    let f = Fixture::new(setup).await;
    let product = f.put_product(|p| {
        p.code = product_code(KEY_PRODUCT);
        p.features = vec![consumption("renders", |c| {
            c.max_consumption = 5;
            c.reset_consumption = true;
            c.consumption_period = Some("daily".into());
        })];
    }).await;
    // 10 a month, 2 of them counted by the catalog.
    let license = f.key_license("PER-1", |l| {
        l.max_activations = 10;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
        l.terms.total_consumptions = 2;
        l.terms.reset_consumption = true;
        l.terms.consumption_period = Some("monthly".into());
    }).await;
    for i in 0..4 {
        assert_eq!(f.app.send(f.client.activate(&key_body("PER-1", &format!("per-hw-{i}")))).await.status(), 200);
    }
    let report = |license: i64, renders: i64| Consumptions { license, features: vec![("renders".into(), renders)] };
    // January 2026 used up: the license's 10 and the day's 5 renders.
    let plan = planned_at(&f, &product, &license, "per-hw-0", &report(8, 5), "2026-01-15T10:00:00Z").await.unwrap();
    assert!(f.store().deactivate_device(&plan, &WriteToken::new()).await.is_ok());
    let err = planned_at(&f, &product, &license, "per-hw-1", &report(1, 0), "2026-01-31T23:59:59Z").await.unwrap_err();
    assert_eq!(err, "license_not_enough_consumptions");
    // Two reports planned on February 2nd against January's counters: one starts February, the
    // other's write is refused (its condition on the period) and, planned again, adds to February's.
    let first = planned_at(&f, &product, &license, "per-hw-1", &report(6, 5), "2026-02-02T00:00:00Z").await.unwrap();
    let second = planned_at(&f, &product, &license, "per-hw-2", &report(3, 1), "2026-02-02T00:00:00Z").await.unwrap();
    assert!(f.store().deactivate_device(&first, &WriteToken::new()).await.is_ok());
    assert!(matches!(f.store().deactivate_device(&second, &WriteToken::new()).await, Err(Rejection::License(Some(_)))));
    let err = planned_at(&f, &product, &license, "per-hw-2", &report(5, 0), "2026-02-02T00:00:00Z").await.unwrap_err();
    assert_eq!(err, "license_not_enough_consumptions", "February has 10 − 6 left");
    let second = planned_at(&f, &product, &license, "per-hw-2", &report(4, 0), "2026-02-02T00:00:00Z").await.unwrap();
    assert!(f.store().deactivate_device(&second, &WriteToken::new()).await.is_ok());
    let now = f.license_now(&license).await;
    assert_eq!((now.total_consumptions(), now.feature_consumptions.get("renders").copied()), (10, Some(5)));
    // Today, through HTTP: a new month and a new day, so the full allowance again.
    let mut report = file(Kind::Deactivation, KEY_PRODUCT, "PER-1", "per-hw-3", "per-3", json!({"consumptions": 10, "product_features": [{"feature": "renders", "consumptions": 5}]}));
    let resp = f.app.send(upload(&f, DEACTIVATE, &report)).await;
    assert_eq!(resp.status(), 200, "{}", text_of(&resp));
    let now = f.license_now(&license).await;
    assert_eq!((now.total_consumptions(), now.feature_consumptions.get("renders").copied()), (10, Some(5)));
    assert_eq!(now.consumptions_period, Some(license_api::model::ConsumptionPeriod::Monthly.start(None, Timestamp::now())));
    // And not one more this month.
    assert_eq!(f.app.send(f.client.activate(&key_body("PER-1", "per-hw-3"))).await.status(), 200);
    report.request_id = Some("per-4".into());
    report.extra = json!({"consumptions": 1}).as_object().unwrap().clone();
    assert_error(&f.app.send(upload(&f, DEACTIVATE, &report)).await, 400, "license_not_enough_consumptions");
}

async fn concurrent_reports_start_a_new_period_once(setup) {
    let f = Fixture::new(setup).await;
    let product = f.put_product(|p| p.code = product_code(KEY_PRODUCT)).await;
    let license = f.key_license("PER-2", |l| {
        l.max_activations = 20;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
        l.terms.total_consumptions = 2;
        l.terms.reset_consumption = true;
        l.terms.consumption_period = Some("monthly".into());
    }).await;
    for i in 0..11 {
        assert_eq!(f.app.send(f.client.activate(&key_body("PER-2", &format!("per2-hw-{i}")))).await.status(), 200);
    }
    // January 2026 used up.
    let used = Consumptions { license: 8, features: vec![] };
    let plan = planned_at(&f, &product, &license, "per2-hw-10", &used, "2026-01-15T10:00:00Z").await.unwrap();
    assert!(f.store().deactivate_device(&plan, &WriteToken::new()).await.is_ok());
    // Ten devices report 3 at once in a later month: every one finds January's counter, one starts
    // the new period and the others add to it, so exactly three fit in 10. Two resets would lose counts.
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    let answers = futures::future::join_all((0..10).map(|i| {
        let hw = format!("per2-hw-{i}");
        let report = file(Kind::Deactivation, KEY_PRODUCT, "PER-2", &hw, &format!("per2-{i}"), json!({"consumptions": 3}));
        instances[i % 3].send(upload(&f, DEACTIVATE, &report))
    }))
    .await;
    for resp in answers.iter().filter(|r| r.status() != 200) {
        assert_error(resp, 400, "license_not_enough_consumptions");
    }
    assert_eq!(answers.iter().filter(|r| r.status() == 200).count(), 3);
    let now = f.license_now(&license).await;
    assert_eq!((now.total_consumptions(), now.times_activated), (9, 10 - 3));
}

async fn consumption_totals_stay_within_2_pow_53(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(|p| {
        p.code = product_code(KEY_PRODUCT);
        p.features = vec![consumption("credits", |c| {
            c.allow_unlimited_consumptions = true;
            c.allow_negative_consumptions = true;
        })];
    }).await;
    // Unlimited, negatives allowed: no limit of the vendor's bounds the totals, only the range.
    let license = f.key_license("NUM-1", |l| {
        l.max_activations = 20;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.allow_unlimited_consumptions = true;
        l.terms.allow_negative_consumptions = true;
        l.terms.total_consumptions = MAX - 5;
    }).await;
    let mut n = 0;
    let mut report = |extra: Value| {
        n += 1;
        let hw = format!("num-hw-{n}");
        (hw.clone(), file(Kind::Deactivation, KEY_PRODUCT, "NUM-1", &hw, &format!("num-{n}"), extra))
    };
    // Amounts beyond the range are refused as such, whatever the license allows.
    for amount in [json!(MAX + 1), json!(i64::MAX), json!(-MAX - 1), json!(i64::MIN)] {
        for extra in [json!({"consumptions": amount}), json!({"product_features": [{"feature": "credits", "consumptions": amount}]})] {
            let (hw, file) = report(extra.clone());
            assert_eq!(f.app.send(f.client.activate(&key_body("NUM-1", &hw))).await.status(), 200);
            let resp = f.app.send(upload(&f, DEACTIVATE, &file)).await;
            assert_error(&resp, 400, "validation_error");
            assert!(active(&f, "NUM-1", &hw).await, "{extra}: a refused report deactivates nothing");
        }
    }
    // Two reports of one feature in one file add up beyond the range.
    let (hw, file) = report(json!({"product_features": [{"feature": "credits", "consumptions": MAX}, {"feature": "credits", "consumptions": 1}]}));
    assert_eq!(f.app.send(f.client.activate(&key_body("NUM-1", &hw))).await.status(), 200);
    assert_error(&f.app.send(upload(&f, DEACTIVATE, &file)).await, 400, "validation_error");
    let now = f.license_now(&license).await;
    assert_eq!((now.consumptions, now.feature_consumptions.get("credits").copied()), (0, None));

    // Ten devices report 3 at once on a total of 2^53 − 6: exactly one report fits.
    let mut files = Vec::new();
    for _ in 0..10 {
        let (hw, file) = report(json!({"consumptions": 3}));
        assert_eq!(f.app.send(f.client.activate(&key_body("NUM-1", &hw))).await.status(), 200);
        files.push(file);
    }
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    let answers = futures::future::join_all(files.iter().enumerate().map(|(i, file)| instances[i % 3].send(upload(&f, DEACTIVATE, file)))).await;
    for resp in answers.iter().filter(|r| r.status() != 200) {
        assert_error(resp, 400, "license_not_enough_consumptions");
    }
    assert_eq!(answers.iter().filter(|r| r.status() == 200).count(), 1, "exactly the report that fits");
    let now = f.license_now(&license).await;
    assert_eq!(now.total_consumptions(), MAX - 2);
    assert_eq!(now.times_activated, 9 + 10 - 1, "refused reports deactivated nothing");

    // Down to exactly −(2^53 − 1) on the feature, not one further.
    let (hw, file) = report(json!({"product_features": [{"feature": "credits", "consumptions": -MAX}]}));
    assert_eq!(f.app.send(f.client.activate(&key_body("NUM-1", &hw))).await.status(), 200);
    let resp = f.app.send(upload(&f, DEACTIVATE, &file)).await;
    assert_eq!(resp.status(), 200, "{}", text_of(&resp));
    let (hw, file) = report(json!({"product_features": [{"feature": "credits", "consumptions": -1}]}));
    assert_eq!(f.app.send(f.client.activate(&key_body("NUM-1", &hw))).await.status(), 200);
    assert_error(&f.app.send(upload(&f, DEACTIVATE, &file)).await, 400, "license_not_enough_consumptions");
    assert!(active(&f, "NUM-1", &hw).await);
    // Up to exactly 2^53 − 1 on the license.
    let (hw, file) = report(json!({"consumptions": 2}));
    assert_eq!(f.app.send(f.client.activate(&key_body("NUM-1", &hw))).await.status(), 200);
    assert_eq!(f.app.send(upload(&f, DEACTIVATE, &file)).await.status(), 200);
    let now = f.license_now(&license).await;
    assert_eq!((now.total_consumptions(), now.feature_consumptions.get("credits").copied()), (MAX, Some(-MAX)));
    // The license stays readable, its totals exact in the answer.
    let hw = "num-hw-last";
    assert_eq!(f.app.send(f.client.activate(&key_body("NUM-1", hw))).await.status(), 200);
    let check = f.app.send(f.client.check(&json!({"product": KEY_PRODUCT, "hardware_id": hw, "license_key": "NUM-1"}))).await;
    let object = f.client.verify_license(&check, hw, "NUM-1").unwrap();
    assert_eq!(object["total_consumptions"], MAX);
    assert_eq!(object["product_features"][0]["total_consumptions"], -MAX);
}

async fn device_variables_are_bounded_per_device(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("VAR-1", |l| l.max_activations = 2).await;
    let activate = |hw: &str, vars: Value| {
        let mut b = key_body("VAR-1", hw);
        b["variables"] = vars;
        f.client.activate(&b)
    };
    let deactivate = |hw: &str| f.client.deactivate(&key_body("VAR-1", hw));
    // Count: 40 new names per activation; the third would make 120 of at most 100.
    for round in 0..2 {
        let resp = f.app.send(activate("var-hw", variables(&format!("r{round}-"), 40, 1))).await;
        assert_eq!(resp.status(), 200, "{}", text_of(&resp));
        assert_eq!(f.app.send(deactivate("var-hw")).await.status(), 200);
    }
    let resp = f.app.send(activate("var-hw", variables("r2-", 40, 1))).await;
    assert_error(&resp, 400, "validation_error");
    assert!(text_of(&resp).contains("100"), "{}", text_of(&resp));
    let devices = f.store().list_devices(&LicenseAddr::of(&license)).await.unwrap();
    assert_eq!((devices.len(), devices[0].active, devices[0].variables.len()), (1, false, 80), "nothing changed");
    assert_eq!(f.license_now(&license).await.times_activated, 0);
    // Names already held (new values) and up to exactly 100 names are fine.
    let resp = f.app.send(activate("var-hw", variables("r1-", 40, 2))).await;
    assert_eq!(resp.status(), 200, "{}", text_of(&resp));
    assert_eq!(f.app.send(deactivate("var-hw")).await.status(), 200);
    let resp = f.app.send(activate("var-hw", variables("r2-", 20, 1))).await;
    assert_eq!(resp.status(), 200, "{}", text_of(&resp));
    let devices = f.store().list_devices(&LicenseAddr::of(&license)).await.unwrap();
    assert_eq!(devices[0].variables.len(), 100);

    // Bytes: 3 KB of values per activation; the third would pass 8 KiB.
    for round in 0..2 {
        let resp = f.app.send(activate("big-hw", variables(&format!("b{round}-"), 3, 1000))).await;
        assert_eq!(resp.status(), 200, "{}", text_of(&resp));
        assert_eq!(f.app.send(deactivate("big-hw")).await.status(), 200);
    }
    let resp = f.app.send(activate("big-hw", variables("b2-", 3, 1000))).await;
    assert_error(&resp, 400, "validation_error");
    assert!(text_of(&resp).contains("8192"), "{}", text_of(&resp));
    let devices = f.store().list_devices(&LicenseAddr::of(&license)).await.unwrap();
    let big = devices.iter().find(|d| d.hardware_id.as_str() == "big-hw").unwrap();
    assert_eq!((big.active, big.variables.len()), (false, 6));
}

async fn a_file_with_100_consumption_features_applies(setup) {
    let f = Fixture::new(setup).await;
    // Long codes: attribute names are placeholders, so their length never reaches the expression.
    let codes: Vec<String> = (0..100).map(|i| format!("consumption-feature-with-a-long-code-{i:03}")).collect();
    f.put_product(|p| {
        p.code = product_code(KEY_PRODUCT);
        p.features = codes.iter().map(|c| consumption(c, |c| c.max_consumption = 10)).collect();
    }).await;
    let license = f.key_license("FEAT-100", |l| {
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
    }).await;
    let features: Vec<Value> = codes.iter().map(|c| json!({"feature": c, "consumptions": 10})).collect();
    assert_eq!(f.app.send(f.client.activate(&key_body("FEAT-100", "feat-hw"))).await.status(), 200);
    let report = file(Kind::Deactivation, KEY_PRODUCT, "FEAT-100", "feat-hw", "feat-1", json!({"consumptions": 10, "product_features": features}));
    let resp = f.app.send(upload(&f, DEACTIVATE, &report)).await;
    assert_eq!(resp.status(), 200, "{}", text_of(&resp));
    let now = f.license_now(&license).await;
    assert_eq!(now.consumptions, 10);
    assert_eq!(now.feature_consumptions.len(), 100);
    assert!(now.feature_consumptions.values().all(|v| *v == 10));
    // Every limit is still enforced, one over on the last feature refuses the whole file.
    assert_eq!(f.app.send(f.client.activate(&key_body("FEAT-100", "feat-hw"))).await.status(), 200);
    let mut features: Vec<Value> = codes.iter().map(|c| json!({"feature": c, "consumptions": 0})).collect();
    features[99]["consumptions"] = json!(1);
    let report = file(Kind::Deactivation, KEY_PRODUCT, "FEAT-100", "feat-hw", "feat-2", json!({"product_features": features}));
    assert_error(&f.app.send(upload(&f, DEACTIVATE, &report)).await, 400, "license_not_enough_consumptions");
    assert!(active(&f, "FEAT-100", "feat-hw").await);
}

async fn an_offline_bundle_of_24_members_with_the_most_variables(setup) {
    let f = Fixture::new(setup).await;
    let members: Vec<String> = (0..24).map(|i| format!("bm{i:02}")).collect();
    let mut products: Vec<Value> = members.iter().enumerate().map(|(i, m)| json!({"short_code": m, "id": 100 + i, "name": format!("Member {i}")})).collect();
    products.push(json!({"short_code": "big", "id": 99, "name": "Big suite", "bundle_products": members}));
    let license_members: Vec<Value> = members.iter().enumerate().map(|(i, m)| json!({"id": 600 + i, "product": m})).collect();
    let catalog = json!({"companies": [{"code": "c1", "id": 7, "products": products,
        "licenses": [{"id": 500, "product": "big", "license_key": "BIG-1", "max_activations": 3, "members": license_members}]}]});
    import(f.store(), &Catalog::parse(&catalog.to_string(), "big.json").unwrap()).await.unwrap();
    let member = |code: &str| LicenseAddr::Key {
        company: f.company.clone(),
        product: ProductCode::parse(code).unwrap(),
        key: LicenseKey::parse("BIG-1").unwrap(),
    };
    let times = || async {
        let mut all = Vec::new();
        for m in &members {
            let l: License = f.store().get_license(&member(m)).await.unwrap().unwrap();
            all.push(l.times_activated);
        }
        all
    };
    let activation = |hw: &str, id: &str, vars: Value| {
        let file = file(Kind::Activation, "big", "BIG-1", hw, id, json!({"variables": vars}));
        f.client.upload("/api/v4/activate_bundle_offline", "text/plain", file.encode(Shape::PythonActivation, SHARED_KEY))
    };
    // Beyond what a device may hold (20 KB): refused before anything is written.
    let resp = f.app.send(activation("big-hw-1", "big-1", variables("x", 5, 4000))).await;
    assert_error(&resp, 400, "validation_error");
    assert!(times().await.iter().all(|t| *t == 0));
    // At the bound: 100 names holding 8 KiB in all, on every member; the record of the answer fits.
    let vars = variables("v", 100, 12);
    let upload = activation("big-hw-2", "big-2", vars);
    let resend = upload.clone();
    let resp = f.app.send(upload).await;
    assert_eq!(resp.status(), 200, "{}", text_of(&resp));
    let answer: Value = serde_json::from_slice(&f.client.verify_body(&resp).unwrap()).unwrap();
    let licenses = answer["licenses"].as_array().unwrap();
    assert_eq!(licenses.len(), 24);
    let size = resp.body().len();
    eprintln!("offline bundle answer at the variables bound, 24 members: {size} bytes");
    assert!(size < license_api::store::write::MAX_RECORDED_ANSWER_BYTES, "{size} bytes");
    assert!(licenses.iter().all(|l| l["variables"].as_array().unwrap().len() == 100));
    assert!(times().await.iter().all(|t| *t == 1));
    // The repeat upload of the same file answers the recorded answer, byte for byte.
    let again = f.app.send(resend).await;
    assert_eq!(again.body(), resp.body());
}
}
