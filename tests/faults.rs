//! Faults between the store and DynamoDB (DynamoDB Local behind a fault-injecting HTTP client): under
//! each fault every request either succeeds exactly once or fails with a SPEC error, counters stay
//! exact, and a write whose answer was lost is not reported as failed.

use futures::future::join_all;
use integration_tests::counter::RoundTrips;
use integration_tests::faults::{Fault, Faults};
use integration_tests::fixtures::{key_body, API_KEY, SHARED_KEY};
use integration_tests::{assert_error, error_of, Backend, Fixture, Instance, Setup, Transport};
use license_api::state::DEFAULT_DEADLINE;
use std::time::{Duration, Instant};

async fn fixture(name: &str) -> Fixture {
    Fixture::new(Setup::new(name, Backend::DynamoDb, Transport::Lambda)).await
}

async fn faulty(f: &Fixture, faults: &Faults, sdk_retries: bool, deadline: Duration) -> Instance {
    let store = f.env.faulty_store(faults, sdk_retries);
    f.env.instance_on(store, RoundTrips::default(), deadline).await
}

/// Faults only the first call of `operation`.
fn first(operation: &'static str, fault: Fault) -> Faults {
    Faults::new(move |op, n| if op == operation && n == 0 { fault } else { Fault::Pass })
}

/// Faults every call of `operation`.
fn always(operation: &'static str, fault: Fault) -> Faults {
    Faults::new(move |op, _| if op == operation { fault } else { Fault::Pass })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_write_whose_answer_was_lost_is_reported_as_done() {
    for fault in [Fault::DropResponse, Fault::TimeoutAfterApply] {
        for sdk_retries in [false, true] {
            let f = fixture("lost-answer").await;
            let license = f.key_license("LOST", |l| l.max_activations = 1).await;
            let faults = first("TransactWriteItems", fault);
            let app = faulty(&f, &faults, sdk_retries, DEFAULT_DEADLINE).await;
            let client = app.client(API_KEY, SHARED_KEY);
            let resp = app.send(client.activate(&key_body("LOST", "h1"))).await;
            assert_eq!(
                resp.status(),
                200,
                "{fault:?} (SDK retries {sdk_retries}): {:?}",
                resp.body()
            );
            assert_eq!(faults.injected(), [("TransactWriteItems".to_owned(), fault)]);
            let l = f.license_now(&license).await;
            assert_eq!((l.times_activated, f.device_counts(&license).await), (1, (1, 1)));

            let faults = first("TransactWriteItems", fault);
            let app = faulty(&f, &faults, sdk_retries, DEFAULT_DEADLINE).await;
            let resp = app.send(client.deactivate(&key_body("LOST", "h1"))).await;
            assert_eq!(resp.status(), 200, "{fault:?} deactivation: {:?}", resp.body());
            assert_eq!(resp.body().as_ref(), b"license_deactivated");
            let l = f.license_now(&license).await;
            assert_eq!((l.times_activated, l.released_count), (0, 1));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_every_fault_answers_are_spec_shaped_and_counters_exact() {
    for fault in Fault::ALL {
        let f = fixture("every-fault").await;
        let license = f.key_license("FLT", |l| l.max_activations = 8).await;
        // Every other write fails; reads pass.
        let faults = Faults::new(move |op, n| {
            if op == "TransactWriteItems" && n % 2 == 0 {
                fault
            } else {
                Fault::Pass
            }
        });
        let apps = [
            faulty(&f, &faults, false, DEFAULT_DEADLINE).await,
            faulty(&f, &faults, false, DEFAULT_DEADLINE).await,
        ];
        let client = apps[0].client(API_KEY, SHARED_KEY);
        let mut reqs: Vec<_> = (0..12)
            .map(|i| client.activate(&key_body("FLT", &format!("d{i}"))))
            .collect();
        reqs.extend((0..6).map(|_| client.activate(&key_body("FLT", "same"))));
        let sends = reqs.into_iter().enumerate().map(|(i, r)| apps[i % 2].send(r));
        let answers: Vec<_> = join_all(sends).await;
        let mut ok = 0;
        let mut same_ok = 0;
        for (i, resp) in answers.iter().enumerate() {
            if resp.status() == 200 {
                ok += 1;
                same_ok += usize::from(i >= 12);
                continue;
            }
            let (status, code) = error_of(resp);
            assert!(
                matches!(
                    code.as_str(),
                    "license_activated_max_times" | "license_device_exists" | "service_busy"
                ),
                "{fault:?}: unexpected {status} {code}"
            );
        }
        assert!(same_ok <= 1, "{fault:?}: one device activated {same_ok} times");
        let (active, all) = f.device_counts(&license).await;
        let l = f.license_now(&license).await;
        assert_eq!(
            l.times_activated as usize, active,
            "{fault:?}: counter equals active devices"
        );
        assert!(l.times_activated <= 8);
        assert!(
            ok <= active && active == all,
            "{fault:?}: every success is an active device"
        );
        assert!(!faults.injected().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endless_conflicts_end_in_503_at_the_deadline() {
    let f = fixture("endless-conflict").await;
    f.key_license("BUSY", |_| {}).await;
    let faults = always("TransactWriteItems", Fault::TransactionConflict);
    let app = faulty(&f, &faults, false, Duration::from_secs(1)).await;
    let started = Instant::now();
    let resp = app
        .send(app.client(API_KEY, SHARED_KEY).activate(&key_body("BUSY", "h1")))
        .await;
    assert_error(&resp, 503, "service_busy");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "bounded by the deadline, took {took:?}");
    assert!(faults.injected().len() > 1, "it did retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_read_that_never_completes_ends_in_503() {
    let f = fixture("unprocessed").await;
    f.key_license("UNP", |_| {}).await;
    let faults = always("BatchGetItem", Fault::Unprocessed);
    let app = faulty(&f, &faults, false, DEFAULT_DEADLINE).await;
    let started = Instant::now();
    let resp = app
        .send(app.client(API_KEY, SHARED_KEY).activate(&key_body("UNP", "h1")))
        .await;
    assert_error(&resp, 503, "service_busy");
    assert!(started.elapsed() < DEFAULT_DEADLINE);
    assert_eq!(faults.injected().len(), 8, "a bounded number of attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_or_unreachable_reads_answer_503() {
    for fault in [Fault::Throttle, Fault::Unreachable] {
        let f = fixture("read-fault").await;
        f.key_license("RDF", |_| {}).await;
        let faults = always("BatchGetItem", fault);
        let app = faulty(&f, &faults, false, DEFAULT_DEADLINE).await;
        let resp = app
            .send(app.client(API_KEY, SHARED_KEY).check(&key_body("RDF", "h1")))
            .await;
        assert_error(&resp, 503, "service_busy");
    }
}

/// A check whose device's record is due writes it with one plain `UpdateItem`: under every fault of that
/// write the check answers 200 once the retry gets through, and the device is recorded; endless
/// conflicts answer 503 at the deadline, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recorded_check_survives_faults_of_its_update() {
    for fault in Fault::ALL {
        let f = fixture("check-fault").await;
        let license = f.key_license("CF", |_| {}).await;
        assert_eq!(f.app.send(f.client.activate(&key_body("CF", "h1"))).await.status(), 200);
        let faults = first("UpdateItem", fault);
        let app = eager(&f, &faults, DEFAULT_DEADLINE).await;
        let started = license_api::time::Timestamp::now();
        let resp = app
            .send(app.client(API_KEY, SHARED_KEY).check(&key_body("CF", "h1")))
            .await;
        assert_eq!(resp.status(), 200, "{fault:?}: {:?}", resp.body());
        assert_eq!(faults.injected(), [("UpdateItem".to_owned(), fault)]);
        let devices = f
            .store()
            .list_devices(&license_api::plan::LicenseAddr::of(&license))
            .await
            .unwrap();
        assert!(
            devices[0].last_seen_at.unwrap() >= started,
            "{fault:?}: the check was recorded"
        );
    }
    let f = fixture("check-conflicts").await;
    f.key_license("CB", |_| {}).await;
    assert_eq!(f.app.send(f.client.activate(&key_body("CB", "h1"))).await.status(), 200);
    let faults = always("UpdateItem", Fault::TransactionConflict);
    let app = eager(&f, &faults, Duration::from_secs(1)).await;
    let resp = app
        .send(app.client(API_KEY, SHARED_KEY).check(&key_body("CB", "h1")))
        .await;
    assert_error(&resp, 503, "service_busy");
    assert!(faults.injected().len() > 1, "it did retry");
}

/// An instance on a faulty store whose every check is due (interval 0).
async fn eager(f: &Fixture, faults: &Faults, deadline: Duration) -> Instance {
    let state = f.env.state(f.env.faulty_store(faults, false), deadline);
    f.env
        .serve(state.with_last_seen_interval(Duration::ZERO), RoundTrips::default())
        .await
}

/// A tracking of device variables (SPEC §9) is a write of the same loop, one plain UpdateItem: a lost
/// answer is recognised by the token it recorded on the device and answered 200, a transient conflict
/// is retried, and the variables are stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tracking_whose_answer_was_lost_is_reported_as_done() {
    use license_api::handlers::Endpoint;
    use license_api::plan::LicenseAddr;
    for fault in [
        Fault::DropResponse,
        Fault::TimeoutAfterApply,
        Fault::TransactionConflict,
    ] {
        for sdk_retries in [false, true] {
            let f = fixture("lost-tracking").await;
            let license = f.key_license("LOST-VAR", |_| {}).await;
            assert_eq!(
                f.app
                    .send(f.client.activate(&key_body("LOST-VAR", "h1")))
                    .await
                    .status(),
                200
            );
            let faults = first("UpdateItem", fault);
            let app = faulty(&f, &faults, sdk_retries, DEFAULT_DEADLINE).await;
            let client = app.client(API_KEY, SHARED_KEY);
            let mut body = key_body("LOST-VAR", "h1");
            body["variables"] = serde_json::json!({"a": "1", "b": 2});
            let resp = app.send(client.call(Endpoint::TrackDeviceVariables, &body)).await;
            assert_eq!(
                resp.status(),
                200,
                "{fault:?} (SDK retries {sdk_retries}): {:?}",
                resp.body()
            );
            let answer: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            assert_eq!(answer.as_array().map(Vec::len), Some(2), "{answer}");
            assert_eq!(faults.injected(), [("UpdateItem".to_owned(), fault)]);
            let devices = f.store().list_devices(&LicenseAddr::of(&license)).await.unwrap();
            let names: Vec<&str> = devices[0].variables.iter().map(|v| v.variable.as_str()).collect();
            assert_eq!(names, ["a", "b"], "{fault:?}: stored once");
        }
    }
}
