//! The audit trail (docs/audit.md) on every setup: each change a request makes — activation and
//! deactivation online, offline and of a bundle, a password change — leaves exactly one record naming
//! the caller, the action and the license or user; a refused request leaves none; a check leaves none;
//! a catalog import records each item it changes and nothing when nothing changes; records expire
//! after the configured retention; and a write retried after a lost answer is recorded once.

use crate::bundles::{bundles, post};
use integration_tests::counter::RoundTrips;
use integration_tests::faults::{Fault, Faults};
use integration_tests::fixtures::{key_body, key_file, API_KEY, KEY_PRODUCT, PASSWORD, SHARED_KEY};
use integration_tests::{assert_error, Backend, Fixture, Setup, Transport};
use license_api::audit::{license_subject, AuditFilter};
use license_api::handlers::Endpoint;
use license_api::ids::{LicenseKey, ProductCode};
use license_api::model::{AuditRecord, License, LicenseType};
use license_api::offline::file::Shape;
use license_api::offline::payload::Kind;
use license_api::plan::LicenseAddr;
use license_api::state::DEFAULT_DEADLINE;
use license_api::time::Timestamp;
use serde_json::{json, Value};

/// The actor every request of the fixture's API key is recorded as.
const CALLER: &str = "api_key:api-key-1";

/// The company's records `filter` passes, newest first, as seen at `now`.
async fn records_at(f: &Fixture, filter: AuditFilter, now: Timestamp) -> Vec<AuditRecord> {
    let page = f
        .store()
        .audit_records(&f.company, &filter, None, 1000, now)
        .await
        .unwrap();
    assert_eq!(page.cursor, None, "one page holds them all");
    page.records
}

/// The records of the fixture's API key, newest first.
async fn by_caller(f: &Fixture) -> Vec<AuditRecord> {
    let filter = AuditFilter {
        actor: Some(CALLER.into()),
        ..AuditFilter::default()
    };
    records_at(f, filter, Timestamp::now()).await
}

/// (action, subject, hardware id, via) of each record.
fn summary(records: &[AuditRecord]) -> Vec<(String, String, Value, Value)> {
    records
        .iter()
        .map(|r| {
            let d = &r.detail;
            (
                r.action.clone(),
                r.subject.clone(),
                d["hardware_id"].clone(),
                d["via"].clone(),
            )
        })
        .collect()
}

fn subject(license: &License) -> String {
    license_subject(&LicenseAddr::of(license))
}

fn change(password: &str, new_password: &str) -> Value {
    json!({"username": "ann@example.com", "password": password, "new_password": new_password})
}

integration_tests::matrix! {
// One record per change, newest first, naming the API key, the action, the license and the device;
// refusals (409 device exists, the limit reached, a second deactivation) and checks record nothing.
async fn activations_and_deactivations_are_recorded_once_and_refusals_not_at_all(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("AUD-1", |l| l.max_activations = 1).await;
    let other = f.key_license("AUD-2", |_| {}).await;
    let ok = |resp: http::Response<bytes::Bytes>| assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    ok(f.app.send(f.client.activate(&key_body("AUD-1", "hw-1"))).await);
    assert_error(&f.app.send(f.client.activate(&key_body("AUD-1", "hw-1"))).await, 409, "license_device_exists");
    assert_error(&f.app.send(f.client.activate(&key_body("AUD-1", "hw-2"))).await, 400, "license_activated_max_times");
    ok(f.app.send(f.client.check(&key_body("AUD-1", "hw-1"))).await);
    ok(f.app.send(f.client.deactivate(&key_body("AUD-1", "hw-1"))).await);
    assert_error(&f.app.send(f.client.deactivate(&key_body("AUD-1", "hw-1"))).await, 400, "license_not_active");
    ok(f.app.send(f.client.activate(&key_body("AUD-2", "hw-9"))).await);

    let records = by_caller(&f).await;
    let s = subject(&license);
    assert_eq!(
        summary(&records),
        [
            ("license.activate".into(), subject(&other), json!("hw-9"), json!("online")),
            ("license.deactivate".into(), s.clone(), json!("hw-1"), json!("online")),
            ("license.activate".into(), s.clone(), json!("hw-1"), json!("online")),
        ]
    );
    assert!(records.iter().all(|r| r.actor == CALLER && r.company == f.company));
    assert!(records.windows(2).all(|w| w[0].id > w[1].id && w[0].at >= w[1].at), "newest first");
    let of_license = AuditFilter { subject: Some(s), ..AuditFilter::default() };
    assert_eq!(records_at(&f, of_license, Timestamp::now()).await, records[1..]);
}

// Offline activation and deactivation each leave one record marked `offline`; a repeated upload,
// answered from the first one's record, leaves none. A bundle's activation and deactivation leave one
// record each, for the bundle license, naming the member licenses it changed.
async fn offline_and_bundle_changes_are_recorded_once(setup) {
    let f = Fixture::new(setup).await;
    bundles(&f).await;
    let license = f.key_license("AUD-OFF", |_| {}).await;
    for (kind, path) in [(Kind::Activation, "/api/v4/activate_offline"), (Kind::Deactivation, "/api/v4/deactivate_offline")] {
        let file = key_file(kind, KEY_PRODUCT, "AUD-OFF", "hw-off", Some(&format!("{kind:?}-1")));
        let text = format!("{}\n", file.encode(Shape::V1, SHARED_KEY));
        for _ in 0..2 {
            let resp = f.app.send(f.client.upload(path, "text/plain", text.clone())).await;
            assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        }
    }
    let suite = json!({"product": "kb", "hardware_id": "hw-b", "license_key": "KB-1"});
    for path in ["/api/v4/activate_bundle", "/api/v4/deactivate_bundle"] {
        let resp = f.app.send(post(&f.client, path, &suite)).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    }
    assert_error(&f.app.send(post(&f.client, "/api/v4/deactivate_bundle", &suite)).await, 400, "license_not_active");

    let records = by_caller(&f).await;
    let bundle = license_subject(&LicenseAddr::Key {
        company: f.company.clone(),
        product: ProductCode::parse("kb").unwrap(),
        key: LicenseKey::parse("KB-1").unwrap(),
    });
    let s = subject(&license);
    assert_eq!(
        summary(&records),
        [
            ("bundle.deactivate".into(), bundle.clone(), json!("hw-b"), json!("online")),
            ("bundle.activate".into(), bundle, json!("hw-b"), json!("online")),
            ("license.deactivate".into(), s.clone(), json!("hw-off"), json!("offline")),
            ("license.activate".into(), s, json!("hw-off"), json!("offline")),
        ]
    );
    assert_eq!(records[0].detail["member_license_ids"], json!([301, 302]));
    assert_eq!(records[1].detail["member_license_ids"], json!([301, 302]));
}

// A password change is recorded for the user, with neither password anywhere in the record; a
// wrong current password records nothing.
async fn a_password_change_is_recorded_without_the_passwords(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(931, |_| {}).await;
    f.user("ann@example.com", 391, &[(&license, 0)]).await;
    let call = |params: Value| f.app.send(f.client.call(Endpoint::ChangePassword, &params));
    assert_error(&call(change("not her password", "a new secret")).await, 400, "license_not_found");
    assert!(by_caller(&f).await.is_empty(), "a refused change records nothing");
    let resp = call(change(PASSWORD, "a new secret")).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let records = by_caller(&f).await;
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].action.as_str(), records[0].subject.as_str()), ("user.change_password", "user:ann@example.com"));
    let text = format!("{records:?}");
    assert!(!text.contains(PASSWORD) && !text.contains("a new secret") && !text.contains("argon2"), "{text}");
    // A user-based activation names its user.
    let resp = f.app.send(f.client.activate(&json!({"product": "up", "hardware_id": "hw-u", "username": "ann@example.com", "password": "a new secret"}))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(by_caller(&f).await[0].detail["user"], "ann@example.com");
}

// An import records each item it creates or changes, as the CLI's user, in that item's own write; a
// re-import that changes nothing records nothing.
async fn an_import_records_what_it_changes(setup) {
    let f = Fixture::new(setup).await;
    let imports = AuditFilter::default();
    bundles(&f).await;
    let first = records_at(&f, imports.clone(), Timestamp::now()).await;
    assert!(first.iter().all(|r| r.actor.starts_with("cli:") && r.action == "import.create"), "{first:?}");
    let kb = first.iter().filter(|r| r.subject == "license:kb/key/KB-1").count();
    assert_eq!(kb, 1, "one record for the bundle license: {first:?}");
    bundles(&f).await;
    assert_eq!(records_at(&f, imports, Timestamp::now()).await, first, "nothing changed, nothing recorded");
}

// A record expires after the configured retention: its TTL attribute says when, queries no longer
// return it after that (DynamoDB deletes it within days), and the embedded store deletes it.
async fn records_expire_after_the_retention(setup) {
    let f = Fixture::new(setup).await;
    let backend = setup_backend(&f);
    f.key_license("AUD-TTL", |_| {}).await;
    let app = f.env.configured_instance(|s| s.with_audit_retention_days(2)).await;
    let resp = app.send(app.client(API_KEY, SHARED_KEY).activate(&key_body("AUD-TTL", "hw-t"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let records = by_caller(&f).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.expires_at, r.at.plus_days(2).unix_seconds());
    let filter = || AuditFilter { actor: Some(CALLER.into()), ..AuditFilter::default() };
    let before = Timestamp::from_millis(r.at.plus_days(2).millis() - 1000);
    let after = Timestamp::from_millis(r.at.plus_days(2).millis() + 1000);
    assert_eq!(records_at(&f, filter(), before).await.len(), 1, "kept until it expires");
    assert!(records_at(&f, filter(), after).await.is_empty(), "not returned once expired");
    assert_eq!(f.store().purge_audit(before).await.unwrap(), 0);
    let purged = f.store().purge_audit(after).await.unwrap();
    assert_eq!(purged, usize::from(backend == Backend::Sqlite), "SQLite deletes it; DynamoDB's TTL does");
}

// A consumption, a borrow and a release are recorded; a floating check that takes a slot, a release
// that frees nothing, a refused consumption and tracked device variables are not.
async fn consumptions_and_floating_slots_are_recorded(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("AUD-FL", |l| {
        l.max_activations = 5;
        l.terms.license_type = LicenseType::Consumption;
        l.terms.max_consumptions = 10;
        l.terms.is_floating_cloud = true;
        l.terms.floating_users = 1;
        l.terms.floating_timeout = 10;
        l.terms.can_borrow = true;
        l.terms.max_borrow_time = 48;
    }).await;
    let call = |endpoint, body: Value| f.app.send(f.client.call(endpoint, &body));
    let body = key_body("AUD-FL", "hw-f");
    let with = |extra: Value| {
        let mut b = body.clone();
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let until = Timestamp::from_millis(Timestamp::now().millis() + 3_600_000);
    for (endpoint, params, status) in [
        (Endpoint::ActivateLicense, body.clone(), 200),
        (Endpoint::CheckLicense, body.clone(), 200),
        (Endpoint::AddConsumption, with(json!({"consumptions": 3})), 200),
        (Endpoint::AddConsumption, with(json!({"consumptions": 30})), 400),
        (Endpoint::TrackDeviceVariables, with(json!({"variables": {"a": "1"}})), 200),
        (Endpoint::FloatingBorrow, with(json!({"borrowed_until": until.to_string()})), 200),
        (Endpoint::FloatingRelease, body.clone(), 200),
        (Endpoint::FloatingRelease, body.clone(), 200),
    ] {
        let resp = call(endpoint, params).await;
        assert_eq!(resp.status(), status, "{endpoint:?}: {}", String::from_utf8_lossy(resp.body()));
    }
    let records = by_caller(&f).await;
    let actions: Vec<_> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["floating.release", "floating.borrow", "license.consume", "license.activate"]);
    assert!(records.iter().all(|r| r.subject == subject(&license) && r.detail["hardware_id"] == "hw-f"));
    assert_eq!(records[2].detail["charges"], json!([{"amount": 3}]));
    assert_eq!(records[1].detail["until"], json!(until.to_string()));
}

// A trial's creation is recorded for its new license; asking again for the same device answers the
// same trial and records nothing.
async fn a_trial_is_recorded_when_it_is_created(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(|p| {
        p.code = ProductCode::parse("p-trial").unwrap();
        p.allow_trial = true;
        p.trial_days = 14;
    }).await;
    let params = json!({"product": "p-trial", "hardware_id": "hw-trial"});
    let mut keys = Vec::new();
    for _ in 0..2 {
        let resp = f.app.send(f.client.call(Endpoint::TrialKey, &params)).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        let body: Value = serde_json::from_slice(resp.body()).unwrap();
        keys.push(body["license"].as_str().unwrap().to_owned());
    }
    assert_eq!(keys[0], keys[1]);
    let records = by_caller(&f).await;
    assert_eq!(summary(&records), [("trial.create".into(), format!("license:p-trial/key/{}", keys[0]), json!("hw-trial"), Value::Null)]);
}

// Pages follow each other through the cursor, newest first, with no record twice or left out.
async fn pages_follow_the_cursor(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("AUD-PG", |l| l.max_activations = 10).await;
    for i in 0..5 {
        let resp = f.app.send(f.client.activate(&key_body("AUD-PG", &format!("hw-{i}")))).await;
        assert_eq!(resp.status(), 200);
    }
    let filter = AuditFilter { actor: Some(CALLER.into()), ..AuditFilter::default() };
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = f.store().audit_records(&f.company, &filter, cursor.as_deref(), 2, Timestamp::now()).await.unwrap();
        seen.extend(page.records.iter().map(|r| r.detail["hardware_id"].as_str().unwrap().to_owned()));
        assert!(page.records.len() <= 2);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["hw-4", "hw-3", "hw-2", "hw-1", "hw-0"]);
    let since = AuditFilter { since: Some(Timestamp::now().plus_days(1)), ..filter };
    assert!(records_at(&f, since, Timestamp::now()).await.is_empty());
}
}

fn setup_backend(f: &Fixture) -> Backend {
    f.env.setup.backend
}

/// A transaction whose answer is lost (applied, then a timeout or a dropped connection) is retried
/// with the same token and the same record: DynamoDB applies it once (`ClientRequestToken`), and the
/// change has exactly one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_write_is_recorded_once() {
    for fault in [Fault::DropResponse, Fault::TimeoutAfterApply] {
        for sdk_retries in [false, true] {
            let f = Fixture::new(Setup::new("audit-retry", Backend::DynamoDb, Transport::Lambda)).await;
            f.key_license("AUD-RETRY", |_| {}).await;
            let faults = Faults::new(move |op, n| {
                if op == "TransactWriteItems" && n == 0 {
                    fault
                } else {
                    Fault::Pass
                }
            });
            let store = f.env.faulty_store(&faults, sdk_retries);
            let app = f.env.instance_on(store, RoundTrips::default(), DEFAULT_DEADLINE).await;
            let client = app.client(API_KEY, SHARED_KEY);
            for req in [
                client.activate(&key_body("AUD-RETRY", "h1")),
                client.deactivate(&key_body("AUD-RETRY", "h1")),
            ] {
                let resp = app.send(req).await;
                assert_eq!(
                    resp.status(),
                    200,
                    "{fault:?} (SDK retries {sdk_retries}): {:?}",
                    resp.body()
                );
            }
            assert_eq!(faults.injected(), [("TransactWriteItems".to_owned(), fault)]);
            let actions: Vec<_> = by_caller(&f).await.into_iter().map(|r| r.action).collect();
            assert_eq!(
                actions,
                ["license.deactivate", "license.activate"],
                "{fault:?} (SDK retries {sdk_retries})"
            );
        }
    }
}
