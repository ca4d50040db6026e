//! Constant cost as a license grows (issue 19, item 5): activation, check, deactivation and
//! re-activation of one device cost the same on a license with 1 device and on one with 10,000, on both
//! stores. DynamoDB: requests, sequential round trips, bytes of the answers, consumed read and write
//! capacity. SQLite: jobs on the store's thread (its round trips) and the virtual machine steps SQLite
//! reports (every row a statement visits takes some, so a scan over the devices would show). Latency is
//! printed, never asserted.

use futures::stream::{self, StreamExt};
use integration_tests::counter::RoundTrips;
use integration_tests::fixtures::{hw, key_body};
use integration_tests::{Backend, Fixture, Instance, Setup, Transport};
use license_api::model::{device_id, Device, License};
use license_api::plan::LicenseAddr;
use license_api::state::DEFAULT_DEADLINE;
use license_api::store::dynamo::{DynamoStore, Usage};
use license_api::store::sqlite::{SqliteStore, Work};
use license_api::store::write::{Image, Item, Write};
use license_api::time::Timestamp;
use std::sync::Arc;
use std::time::Instant;

const MANY: usize = 10_000;
/// Bytes two equal requests' answers may differ by: the digits of the counters (`times_activated` 1
/// against 10,000) and of the license and device ids. A cost that grew with the devices would differ by
/// thousands of times an item's size.
const DIGITS_SLACK: usize = 16;

/// What one request cost the store; the fields a store cannot report stay zero.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Cost {
    requests: u64,
    sequential: u64,
    bytes: usize,
    read_units: f64,
    write_units: f64,
    steps: u64,
}

/// An instance whose store work is counted.
struct Measured {
    app: Instance,
    meter: Meter,
}

enum Meter {
    DynamoDb(RoundTrips, Arc<Usage>),
    Sqlite(Arc<Work>),
}

impl Meter {
    fn read(&self) -> Cost {
        match self {
            Meter::DynamoDb(rt, usage) => {
                let ((requests, sequential), used) = (rt.get(), usage.snapshot());
                Cost {
                    requests: requests as u64,
                    sequential: sequential as u64,
                    bytes: rt.bytes_received(),
                    read_units: used.read_units,
                    write_units: used.write_units,
                    steps: 0,
                }
            }
            Meter::Sqlite(work) => {
                let done = work.snapshot();
                Cost {
                    requests: done.jobs,
                    sequential: done.jobs,
                    steps: done.steps,
                    ..Cost::default()
                }
            }
        }
    }
}

async fn measured(f: &Fixture) -> Measured {
    let env = &f.env;
    let (store, meter): (Arc<dyn license_api::store::Store>, _) = match env.setup.backend {
        Backend::DynamoDb => {
            let rt = RoundTrips::default();
            let store = DynamoStore::new(integration_tests::client(&rt), env.location());
            let usage = store.usage();
            (Arc::new(store), Meter::DynamoDb(rt, usage))
        }
        Backend::Sqlite => {
            let path = integration_tests::scratch_dir().join(format!("{}.db", env.location()));
            let store = SqliteStore::open(path).expect("open sqlite");
            store.count_steps().await.expect("count steps");
            let work = store.work();
            (Arc::new(store), Meter::Sqlite(work))
        }
    };
    Measured {
        app: env.instance_on(store, RoundTrips::default(), DEFAULT_DEADLINE).await,
        meter,
    }
}

/// A key-based license `key` holding `n` active devices, written as items (not activations, which would
/// take minutes).
async fn seeded_license(f: &Fixture, key: &str, n: usize) -> License {
    let license = f
        .key_license(key, |l| {
            l.max_activations = n as i64 + 10;
            l.times_activated = n as i64;
        })
        .await;
    let addr = LicenseAddr::of(&license);
    let now = Timestamp::now();
    let writes: Vec<Write> = (0..n)
        .map(|i| {
            let hardware_id = hw(&format!("seed-{i:05}"));
            let device = Device {
                id: device_id(license.id, &hardware_id),
                hardware_id: hardware_id.clone(),
                active: true,
                user: None,
                first_activated_at: now,
                last_activated_at: now,
                deactivated_at: None,
                last_seen_at: Some(now),
                details: Default::default(),
                variables: Vec::new(),
                activations: 1,
                write_token: None,
            };
            Write::put(Item::Device(addr.clone(), hardware_id), Image::Device(Box::new(device)))
        })
        .collect();
    match f.env.setup.backend {
        // One transaction.
        Backend::Sqlite => f.store().write_all(writes).await.expect("seed devices"),
        // Each device its own item: no two writes conflict.
        Backend::DynamoDb => {
            stream::iter(writes)
                .for_each_concurrent(32, |w| async move { f.store().write(&w).await.expect("seed device") })
                .await
        }
    }
    assert_eq!(f.device_counts(&license).await, (n, n));
    assert_eq!(f.license_now(&license).await.times_activated, n as i64);
    license
}

impl Measured {
    /// What the store did while `work` ran.
    async fn cost_of<T>(&self, work: impl std::future::Future<Output = T>) -> (T, Cost) {
        let before = self.meter.read();
        let out = work.await;
        let after = self.meter.read();
        let cost = Cost {
            requests: after.requests - before.requests,
            sequential: after.sequential - before.sequential,
            bytes: after.bytes - before.bytes,
            read_units: after.read_units - before.read_units,
            write_units: after.write_units - before.write_units,
            steps: after.steps - before.steps,
        };
        (out, cost)
    }

    /// The cost of each request of one device's life on the license `key`.
    async fn life_costs(&self, f: &Fixture, key: &str) -> Vec<(&'static str, Cost)> {
        let body = key_body(key, "probe");
        let mut costs = Vec::new();
        for (name, req) in [
            ("activate", f.client.activate(&body)),
            ("check", f.client.check(&body)),
            ("deactivate", f.client.deactivate(&body)),
            ("re-activate", f.client.activate(&body)),
            ("check again", f.client.check(&body)),
        ] {
            let started = Instant::now();
            let (resp, cost) = self.cost_of(self.app.send(req)).await;
            assert_eq!(
                resp.status(),
                200,
                "{key} {name}: {}",
                String::from_utf8_lossy(resp.body())
            );
            eprintln!("{key} {name}: {cost:?} in {:?}", started.elapsed());
            costs.push((name, cost));
        }
        costs
    }

    /// The cost of listing the devices of `license`: one that does grow with them.
    async fn listing_cost(&self, license: &License) -> Cost {
        let (devices, cost) = self
            .cost_of(self.app.state.store.list_devices(&LicenseAddr::of(license)))
            .await;
        assert!(!devices.expect("list devices").is_empty());
        cost
    }
}

async fn constant_cost(setup: Setup) {
    let f = Fixture::new(setup).await;
    // Keys of one length, so their items are of one size.
    let started = Instant::now();
    let one = seeded_license(&f, "GROW-1", 1).await;
    let many = seeded_license(&f, "GROW-M", MANY).await;
    eprintln!("seeded {} devices in {:?}", MANY + 1, started.elapsed());

    let m = measured(&f).await;
    // Warm: the API key is cached before anything is measured.
    assert_eq!(
        m.app.send(f.client.check(&key_body("GROW-1", "warmup"))).await.status(),
        400
    );
    // The meters see a cost that grows with the devices: listing them (so the comparison below can fail).
    let (listed_one, listed_many) = (m.listing_cost(&one).await, m.listing_cost(&many).await);
    eprintln!("listing: 1 device {listed_one:?}, {MANY} devices {listed_many:?}");
    let weight = |c: &Cost| c.bytes as u64 + c.steps;
    assert!(
        weight(&listed_many) > 100 * weight(&listed_one),
        "listing grows with the devices"
    );

    let small = m.life_costs(&f, "GROW-1").await;
    let large = m.life_costs(&f, "GROW-M").await;
    for ((name, a), (_, b)) in small.iter().zip(&large) {
        let context = format!("{name}: 1 device {a:?}, {MANY} devices {b:?}");
        assert_eq!((a.requests, a.sequential), (b.requests, b.sequential), "{context}");
        assert_eq!(
            (a.read_units, a.write_units),
            (b.read_units, b.write_units),
            "{context}"
        );
        assert_eq!(a.steps, b.steps, "{context}");
        assert!(a.bytes.abs_diff(b.bytes) <= DIGITS_SLACK, "{context}");
        assert!(a.requests > 0, "{context}: the meter counts");
    }
    assert_eq!(f.license_now(&many).await.times_activated, MANY as i64 + 1);
    assert_eq!(f.device_counts(&many).await, (MANY + 1, MANY + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_costs_the_same_on_1_and_10_000_devices_on_dynamodb() {
    constant_cost(Setup::new("growth-dynamodb", Backend::DynamoDb, Transport::Lambda)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_costs_the_same_on_1_and_10_000_devices_on_sqlite() {
    constant_cost(Setup::new("growth-sqlite", Backend::Sqlite, Transport::Http)).await;
}
