//! A site license with 10,000 devices (512-byte hardware ids), 3,000 of them released: the license item
//! stays O(1) in the number of devices (released slots are markers beside it, not a set on it), so
//! deactivations, transfers and re-use keep working where a set on the item would pass DynamoDB's
//! 400 KB item limit.

use futures::stream::{self, StreamExt};
use integration_tests::counter::RoundTrips;
use integration_tests::fixtures::{hw, key_body};
use integration_tests::{Backend, Fixture, Setup, Transport};
use license_api::ids::HardwareId;
use license_api::model::{Company, ProductDoc};
use license_api::plan::{DeactivationPlan, LicenseAddr, WriteToken};
use license_api::request::{LicenseRequest, Params};
use license_api::rules::{self, LicenseContext};
use license_api::store::{Rejection, Store};
use license_api::time::Timestamp;
use std::time::{Duration, Instant};

const DEVICES: usize = 10_000;
const RELEASED: usize = 3_000;

fn long_id(i: usize) -> String {
    let id = format!("{i:05}-{}", "x".repeat(506));
    assert_eq!(id.len(), 512);
    id
}

/// Applies a write, retrying transient conflicts (many writers share one license item).
async fn until_done<F, Fut>(mut write: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Rejection>>,
{
    loop {
        match write().await {
            Ok(()) => return,
            Err(Rejection::Conflict) => tokio::time::sleep(Duration::from_millis(rand_ms())).await,
            Err(other) => panic!("write refused: {other:?}"),
        }
    }
}

fn rand_ms() -> u64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 20) as u64
}

async fn large_license(setup: Setup) {
    let backend = setup.backend;
    let f = Fixture::new(setup).await;
    let license = f.key_license("BIG", |l| l.max_activations = DEVICES as i64 + 10).await;
    let addr = LicenseAddr::of(&license);
    let store: &dyn Store = f.store();
    let started = Instant::now();

    // Every activation is planned by the rules and written through the store's conditional write.
    let ctx = LicenseContext::new(ProductDoc::default(), Company::default(), license.clone());
    let now = Timestamp::now();
    stream::iter(0..DEVICES)
        .for_each_concurrent(32, |i| {
            let ctx = &ctx;
            async move {
                let body = key_body("BIG", &long_id(i)).to_string();
                let req = LicenseRequest::parse(&Params::from_json(body.as_bytes()).unwrap()).unwrap();
                let plan = rules::plan_activation(ctx, &req, now, rules::Transport::Online).unwrap();
                let token = WriteToken::new();
                until_done(|| store.activate_device(&plan, &token)).await;
            }
        })
        .await;
    stream::iter(0..RELEASED)
        .for_each_concurrent(32, |i| {
            let addr = &addr;
            async move {
                let plan = DeactivationPlan {
                    addr: addr.clone(),
                    license_id: license.id,
                    hardware_id: HardwareId::parse(&long_id(i)).unwrap(),
                    device_activations: 1,
                    release_slot: true,
                    seat: None,
                    at: now,
                    charges: Vec::new(),
                    once: None,
                };
                let token = WriteToken::new();
                until_done(|| store.deactivate_device(&plan, &token)).await;
            }
        })
        .await;
    eprintln!(
        "{backend:?}: {DEVICES} activations and {RELEASED} deactivations in {:?}",
        started.elapsed()
    );
    let l = f.license_now(&license).await;
    assert_eq!(
        (l.times_activated, l.released_count),
        ((DEVICES - RELEASED) as i64, RELEASED as i64)
    );

    // Through the API: one more deactivation, a transfer into a released slot, a device taking its own
    // released slot back.
    let app = &f.app;
    let resp = app
        .send(f.client.deactivate(&key_body("BIG", &long_id(DEVICES - 1))))
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    let resp = app.send(f.client.activate(&key_body("BIG", "a-new-device"))).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    let resp = app
        .send(f.client.activate(&key_body("BIG", &long_id(RELEASED - 1))))
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    let l = f.license_now(&license).await;
    assert_eq!(
        l.transfer_count, 1,
        "the new device took a released slot; the old one its own"
    );
    assert_eq!(l.times_activated, (DEVICES - RELEASED - 1 + 2) as i64);
    assert_eq!(l.released_count, (RELEASED + 1 - 2) as i64);
    assert_eq!(f.device_counts(&license).await, (DEVICES - RELEASED + 1, DEVICES + 1));
    // The transfer took the smallest released hardware id, which is no longer waiting.
    assert_ne!(store.released_slot(&addr).await.unwrap(), Some(hw(&long_id(0))));

    if backend == Backend::DynamoDb {
        let item = integration_tests::client(&RoundTrips::default())
            .get_item()
            .table_name(f.env.location())
            .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(addr.storage_key()))
            .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("#".into()))
            .send()
            .await
            .unwrap()
            .item
            .expect("license item");
        let size: usize = item
            .iter()
            .map(|(k, v)| k.len() + v.as_s().map_or(8, String::len))
            .sum();
        eprintln!("license item: {size} bytes");
        assert!(size < 4096, "the license item stays small: {size} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_devices_on_dynamodb() {
    large_license(Setup::new("large-dynamodb", Backend::DynamoDb, Transport::Lambda)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_devices_on_sqlite() {
    large_license(Setup::new("large-sqlite", Backend::Sqlite, Transport::Http)).await;
}
