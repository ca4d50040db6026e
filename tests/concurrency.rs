//! Concurrency is part of correctness (SPEC §3): requests race through several independent "Lambda
//! instances" (own client, own cache) against one table; every limit must hold exactly.

use futures::future::join_all;
use integration_tests::fixtures::{key_body, user_body};
use integration_tests::{error_of, Fixture, Instance};
use license_api::plan::LicenseAddr;
use std::collections::HashMap;

const INSTANCES: usize = 5;

async fn instances(f: &Fixture) -> Vec<Instance> {
    let mut apps = Vec::new();
    for _ in 0..INSTANCES {
        apps.push(f.env.instance().await);
    }
    apps
}

/// Fires every request at once, spread over the instances; returns (status, error code or "").
pub(crate) async fn race(apps: &[Instance], requests: Vec<http::Request<bytes::Bytes>>) -> Vec<(u16, String)> {
    let sends = requests
        .into_iter()
        .enumerate()
        .map(|(i, req)| apps[i % apps.len()].send(req));
    join_all(sends)
        .await
        .iter()
        .map(|resp| {
            if resp.status() == 200 {
                (200, String::new())
            } else {
                error_of(resp)
            }
        })
        .collect()
}

fn tally(results: &[(u16, String)]) -> HashMap<(u16, String), usize> {
    let mut t = HashMap::new();
    for r in results {
        *t.entry(r.clone()).or_insert(0) += 1;
    }
    t
}

fn count(t: &HashMap<(u16, String), usize>, status: u16, code: &str) -> usize {
    t.get(&(status, code.to_owned())).copied().unwrap_or(0)
}

integration_tests::matrix! {
async fn fifty_activations_of_a_five_seat_license(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("MAX5", |l| l.max_activations = 5).await;
    let apps = instances(&f).await;
    let reqs = (0..50)
        .map(|i| f.client.activate(&key_body("MAX5", &format!("dev-{i}"))))
        .collect();
    let t = tally(&race(&apps, reqs).await);
    assert_eq!(count(&t, 200, ""), 5, "{t:?}");
    assert_eq!(count(&t, 400, "license_activated_max_times"), 45, "{t:?}");
    assert_eq!(f.license_now(&license).await.times_activated, 5);
    assert_eq!(f.device_counts(&license).await, (5, 5));
}

async fn twenty_activations_of_one_device(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("SAME", |l| l.max_activations = 5).await;
    let apps = instances(&f).await;
    let reqs = (0..20)
        .map(|_| f.client.activate(&key_body("SAME", "the-device")))
        .collect();
    let t = tally(&race(&apps, reqs).await);
    assert_eq!(count(&t, 200, ""), 1, "{t:?}");
    assert_eq!(count(&t, 409, "license_device_exists"), 19, "{t:?}");
    assert_eq!(f.license_now(&license).await.times_activated, 1);
    assert_eq!(f.device_counts(&license).await, (1, 1));
}

async fn interleaved_activations_and_deactivations_keep_the_count_exact(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("MIX", |l| l.max_activations = 6).await;
    let apps = instances(&f).await;
    // 200 operations over 12 devices, activations and deactivations interleaved, all at once.
    let ops: Vec<(bool, String)> = (0..200)
        .map(|i| (i % 3 != 2, format!("dev-{}", (i * 7) % 12)))
        .collect();
    let reqs = ops
        .iter()
        .map(|(activate, hw)| {
            if *activate {
                f.client.activate(&key_body("MIX", hw))
            } else {
                f.client.deactivate(&key_body("MIX", hw))
            }
        })
        .collect();
    let results = race(&apps, reqs).await;
    for (status, code) in &results {
        let expected = [
            "",
            "license_activated_max_times",
            "license_device_exists",
            "device_not_found",
            "license_not_active",
        ];
        assert!(expected.contains(&code.as_str()), "unexpected answer {status} {code}");
    }
    // Per device, successes alternate activate/deactivate, so the net count is its final state.
    let mut net: HashMap<&str, i64> = HashMap::new();
    for ((activate, hw), (status, _)) in ops.iter().zip(&results) {
        if *status == 200 {
            *net.entry(hw).or_insert(0) += if *activate { 1 } else { -1 };
        }
    }
    let devices = f.store().list_devices(&LicenseAddr::of(&license)).await.unwrap();
    for d in &devices {
        let n = net.get(d.hardware_id.as_str()).copied().unwrap_or(0);
        assert_eq!(
            n,
            i64::from(d.active),
            "device {} net {n} active {}",
            d.hardware_id,
            d.active
        );
    }
    assert_eq!(
        devices.len(),
        net.len(),
        "every device that ever succeeded has a record"
    );
    let active = devices.iter().filter(|d| d.active).count() as i64;
    let l = f.license_now(&license).await;
    assert_eq!(l.times_activated, active);
    assert!(l.times_activated <= 6);
    // Released slots never exceed the free ones.
    assert!(l.released_count <= 6 - l.times_activated);
}

async fn per_user_limit_under_races(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(700, |l| l.max_activations = 100).await;
    f.user("ann@example.com", 1, &[(&license, 3)]).await;
    let apps = instances(&f).await;
    let reqs = (0..30)
        .map(|i| f.client.activate(&user_body("ann@example.com", &format!("u-{i}"))))
        .collect();
    let t = tally(&race(&apps, reqs).await);
    assert_eq!(count(&t, 200, ""), 3, "{t:?}");
    assert_eq!(count(&t, 400, "license_user_activated_max_times"), 27, "{t:?}");
    let seat = f.seat_now(&license, "ann@example.com").await;
    assert_eq!(seat.total_activations, 3);
    assert_eq!(f.license_now(&license).await.times_activated, 3);
    assert_eq!(f.device_counts(&license).await, (3, 3));
}

async fn transfer_limit_under_races(setup) {
    let f = Fixture::new(setup).await;
    let license = f
        .key_license("TR", |l| {
            l.max_activations = 10;
            l.max_transfers = 3;
        })
        .await;
    // Fill every never-used slot, then release them all: ten released slots, no transfer yet.
    for i in 0..10 {
        assert_eq!(
            f.app
                .send(f.client.activate(&key_body("TR", &format!("old-{i}"))))
                .await
                .status(),
            200
        );
    }
    for i in 0..10 {
        assert_eq!(
            f.app
                .send(f.client.deactivate(&key_body("TR", &format!("old-{i}"))))
                .await
                .status(),
            200
        );
    }
    assert_eq!(f.license_now(&license).await.transfer_count, 0);
    assert_eq!(f.license_now(&license).await.released_count, 10);
    let apps = instances(&f).await;
    let reqs = (0..30)
        .map(|i| f.client.activate(&key_body("TR", &format!("new-{i}"))))
        .collect();
    let t = tally(&race(&apps, reqs).await);
    assert_eq!(count(&t, 200, ""), 3, "{t:?}");
    assert_eq!(count(&t, 400, "license_transferred_max_times"), 27, "{t:?}");
    let l = f.license_now(&license).await;
    assert_eq!((l.transfer_count, l.times_activated, l.released_count), (3, 3, 7));
    assert_eq!(f.device_counts(&license).await, (3, 13));
}

// Item 10 of issue 15: a request's write touches only its own license's items, so requests on
// different licenses of one product never cancel each other, however many run at once. Every check
// here writes (interval 0), racing the activations' transactions. DynamoDB cancels concurrent
// transactions that share an item, and only those: so on DynamoDB every write sent must name items
// of one license only (all under its partition key). DynamoDB Local serialises transactions and never
// reports `TransactionConflict` (64 concurrent transactions updating one item all succeed there), so
// the store's conflict counter, which must stay 0, proves it only against real DynamoDB; the items
// each write names prove it here.
async fn checks_and_activations_of_different_licenses_of_one_product_never_conflict(setup) {
    const PER_KIND: usize = 24;
    let f = Fixture::new(setup).await;
    let checked: Vec<String> = (0..PER_KIND).map(|i| format!("CHK-{i}")).collect();
    let activated: Vec<String> = (0..PER_KIND).map(|i| format!("ACT-{i}")).collect();
    let mut licenses = HashMap::new();
    for key in checked.iter().chain(&activated) {
        licenses.insert(key.clone(), f.key_license(key, |_| {}).await);
    }
    for key in &checked {
        assert_eq!(f.app.send(f.client.activate(&key_body(key, "d0"))).await.status(), 200);
    }
    let mut apps = Vec::new();
    for _ in 0..INSTANCES {
        apps.push(f.env.configured_instance(|s| s.with_last_seen_interval(std::time::Duration::ZERO)).await);
    }
    let started = license_api::time::Timestamp::now();
    // Interleaved: a check, an activation, a check, ...
    let reqs = checked
        .iter()
        .zip(&activated)
        .flat_map(|(c, a)| [f.client.check(&key_body(c, "d0")), f.client.activate(&key_body(a, "d1"))])
        .collect();
    let t = tally(&race(&apps, reqs).await);
    assert_eq!(count(&t, 200, ""), 2 * PER_KIND, "{t:?}");
    let conflicts: u64 = apps.iter().map(|a| a.usage().conflicts).sum();
    assert_eq!(conflicts, 0, "transaction conflicts between requests on different licenses");
    if f.env.setup.backend == integration_tests::Backend::DynamoDb {
        let writes: Vec<_> = apps.iter().flat_map(|a| a.round_trips.writes()).collect();
        assert_eq!(writes.len(), 2 * PER_KIND, "one write per request");
        let mut records = std::collections::HashSet::new();
        for write in &writes {
            // An activation's audit record (docs/audit.md) is an item of its own in the company's
            // partition, with a sort key no other write names: DynamoDB's conflicts are per item.
            let (audit, items): (Vec<_>, Vec<_>) = write.items.iter().partition(|(pk, _)| pk.starts_with("AUDIT#"));
            assert!(audit.len() <= 1 && audit.iter().all(|key| records.insert((*key).clone())), "{audit:?}");
            let license = &items[0].0;
            assert!(
                license.starts_with("LICENSE#") && items.iter().all(|(pk, _)| pk == license),
                "a write names items beyond its own license: {items:?}"
            );
        }
        assert_eq!(records.len(), PER_KIND, "one record per activation, none per check");
    }
    // Every check was recorded, every activation happened.
    for key in &checked {
        let devices = f.store().list_devices(&LicenseAddr::of(&licenses[key])).await.unwrap();
        assert!(devices[0].last_seen_at.unwrap() >= started, "{key}: the check was recorded");
    }
    for key in &activated {
        assert_eq!(f.license_now(&licenses[key]).await.times_activated, 1, "{key}");
    }
}

async fn concurrent_deactivations_of_one_device_decrement_once(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("DD", |_| {}).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("DD", "d"))).await.status(), 200);
    assert_eq!(f.app.send(f.client.activate(&key_body("DD", "e"))).await.status(), 200);
    let apps = instances(&f).await;
    let reqs = (0..20).map(|_| f.client.deactivate(&key_body("DD", "d"))).collect();
    let t = tally(&race(&apps, reqs).await);
    assert_eq!(count(&t, 200, ""), 1, "{t:?}");
    assert_eq!(count(&t, 400, "device_not_found"), 19, "{t:?}");
    assert_eq!(f.license_now(&license).await.times_activated, 1);
}
}
