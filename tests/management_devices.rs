//! Support's device and license-user operations (`license_api::management::{devices, users}`,
//! docs/management-devices.md) on every setup, observed through the License API: support frees a device
//! with the License API's own conditional write (a race with the device's own deactivation frees it
//! once), resets all devices and the transfer count, blacklists a device, sets a user's password and
//! assigns a user (a re-import keeps what support added); every change leaves one audit record naming the command line's user, a refused
//! change none.

use integration_tests::fixtures::{key_body, user_body, KEY_PRODUCT, PASSWORD, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::audit::{Actor, AuditFilter};
use license_api::auth::Principal;
use license_api::error::ApiError;
use license_api::ids::{HardwareId, LicenseKey, ProductCode, Username};
use license_api::management::devices::{self, BlacklistDevice, DeviceRef, LicenseInput, LicenseRef, ListDevices};
use license_api::management::users::{self, AssignUser, SetPassword, UnassignUser};
use license_api::model::AuditRecord;
use license_api::plan::LicenseAddr;
use license_api::time::Timestamp;
use serde_json::json;

fn key_ref(key: &str) -> LicenseRef {
    LicenseRef {
        product: ProductCode::parse(KEY_PRODUCT).unwrap(),
        license_key: Some(LicenseKey::parse(key).unwrap()),
        license_id: None,
    }
}

fn id_ref(id: i64) -> LicenseRef {
    LicenseRef {
        product: ProductCode::parse(USER_PRODUCT).unwrap(),
        license_key: None,
        license_id: Some(id),
    }
}

fn hw(s: &str) -> HardwareId {
    HardwareId::parse(s).unwrap()
}

fn cli(f: &Fixture) -> Principal {
    Principal::cli(f.company.clone())
}

/// The command line's records, newest first.
async fn cli_records(f: &Fixture) -> Vec<AuditRecord> {
    let filter = AuditFilter {
        actor: Some(Actor::cli_user().as_str().to_owned()),
        ..AuditFilter::default()
    };
    let page = f
        .store()
        .audit_records(&f.company, &filter, None, 1000, Timestamp::now())
        .await
        .unwrap();
    page.records
}

async fn activate(f: &Fixture, body: serde_json::Value) -> u16 {
    f.app.send(f.client.activate(&body)).await.status().as_u16()
}

/// The example catalog without Carol's seat on the team license (#6), so support can assign her.
fn catalog_without_carols_seat() -> license_api::catalog::Catalog {
    let mut v: serde_json::Value = serde_json::from_str(include_str!("../examples/catalog.json")).unwrap();
    let team = v["companies"][0]["licenses"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["id"] == 6)
        .unwrap();
    team["users"]
        .as_array_mut()
        .unwrap()
        .retain(|u| u["email"] != "carol@example.com");
    license_api::catalog::Catalog::parse(&v.to_string(), "catalog.json").unwrap()
}

integration_tests::matrix! {
async fn support_and_the_device_deactivating_it_at_once_free_it_once(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("RACE", |l| l.max_activations = 3).await;
    let support = f.env.instance().await;
    let device = f.env.instance().await;
    let principal = cli(&f);
    assert_eq!(activate(&f, key_body("RACE", "stays")).await, 200);
    let rounds = 15;
    let (mut by_support, mut by_device) = (0, 0);
    for _ in 0..rounds {
        assert_eq!(activate(&f, key_body("RACE", "d")).await, 200);
        let input = DeviceRef { license: key_ref("RACE"), hardware_id: hw("d") };
        let (managed, own) = tokio::join!(
            devices::deactivate_device(&support.state, &principal, input),
            device.send(f.client.deactivate(&key_body("RACE", "d"))),
        );
        match &managed {
            Ok(_) => by_support += 1,
            Err(e) => assert!(matches!(e, ApiError::DeviceNotFound), "{e:?}"),
        }
        if own.status() == 200 {
            by_device += 1;
        } else {
            assert_error(&own, 400, "device_not_found");
        }
        assert!(managed.is_ok() != (own.status() == 200), "exactly one of the two freed it");
    }
    assert_eq!(by_support + by_device, rounds, "each round freed the device exactly once");
    let l = f.license_now(&license).await;
    assert_eq!((l.times_activated, l.released_count, l.transfer_count), (1, 1, 0));
    assert_eq!(f.device_counts(&license).await, (1, 2));
    let records = cli_records(&f).await;
    assert_eq!(records.len(), by_support as usize, "one record per deactivation support made");
    for r in &records {
        assert_eq!(r.action, "license.deactivate");
        assert_eq!(r.detail["via"], "management");
        assert_eq!(r.detail["hardware_id"], "d");
    }
}

async fn support_frees_a_user_based_device_and_gives_the_seat_back(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(40, |l| l.max_activations = 2).await;
    f.user("ann@example.com", 1, &[(&license, 1)]).await;
    assert_eq!(activate(&f, user_body("ann@example.com", "h1")).await, 200);
    let input = DeviceRef { license: id_ref(40), hardware_id: hw("h1") };
    devices::deactivate_device(&f.app.state, &cli(&f), input).await.unwrap();
    let seat = f.seat_now(&license, "ann@example.com").await;
    assert_eq!(seat.total_activations, 0);
    assert_eq!(f.license_now(&license).await.times_activated, 0);
    // The seat's limit of 1 lets the user activate another device.
    assert_eq!(activate(&f, user_body("ann@example.com", "h2")).await, 200);
    let input = DeviceRef { license: id_ref(40), hardware_id: hw("h1") };
    let again = devices::deactivate_device(&f.app.state, &cli(&f), input).await;
    assert!(matches!(again, Err(ApiError::DeviceNotFound)), "{again:?}");
    assert_eq!(cli_records(&f).await.len(), 1, "the refused one left no record");
}

async fn list_pages_every_device_active_or_not(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("LIST", |l| l.max_activations = 5).await;
    for d in ["a", "b", "c"] {
        assert_eq!(activate(&f, key_body("LIST", d)).await, 200);
    }
    f.app.send(f.client.deactivate(&key_body("LIST", "b"))).await;
    let page = |after: Option<&str>| ListDevices {
        license: key_ref("LIST"),
        after: after.map(hw),
        limit: Some(2),
    };
    let first = devices::list_devices(&f.app.state, &cli(&f), page(None)).await.unwrap();
    let seen: Vec<_> = first.devices.iter().map(|d| (d.hardware_id.as_str(), d.active)).collect();
    assert_eq!(seen, [("a", true), ("b", false)]);
    assert_eq!(first.next, Some(hw("b")));
    assert_eq!(first.times_activated, 2);
    let second = devices::list_devices(&f.app.state, &cli(&f), page(Some("b"))).await.unwrap();
    assert_eq!(second.devices.len(), 1);
    assert_eq!(second.next, None);
    let too_many = ListDevices { limit: Some(1001), ..page(None) };
    assert!(matches!(
        devices::list_devices(&f.app.state, &cli(&f), too_many).await,
        Err(ApiError::Validation(_))
    ));
    let unknown = ListDevices { license: key_ref("NOPE"), ..page(None) };
    assert!(matches!(
        devices::list_devices(&f.app.state, &cli(&f), unknown).await,
        Err(ApiError::LicenseNotFound(_))
    ));
    assert_eq!(f.device_counts(&license).await, (2, 3));
}

async fn reset_frees_every_device_and_activations_succeed_again(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("RESET", |l| l.max_activations = 3).await;
    for d in ["a", "b", "c"] {
        assert_eq!(activate(&f, key_body("RESET", d)).await, 200);
    }
    let full = f.app.send(f.client.activate(&key_body("RESET", "d"))).await;
    assert_error(&full, 400, "license_activated_max_times");
    let input = LicenseInput { license: key_ref("RESET") };
    let reset = devices::reset_devices(&f.app.state, &cli(&f), input).await.unwrap();
    assert_eq!(reset.deactivated, [hw("a"), hw("b"), hw("c")]);
    assert!(!reset.more);
    assert_eq!(f.license_now(&license).await.times_activated, 0);
    assert_eq!(f.device_counts(&license).await, (0, 3));
    for d in ["a", "b", "c"] {
        assert_eq!(activate(&f, key_body("RESET", d)).await, 200);
    }
    let full = f.app.send(f.client.activate(&key_body("RESET", "d"))).await;
    assert_error(&full, 400, "license_activated_max_times");
    assert_eq!(cli_records(&f).await.len(), 3, "one record per device freed");
}

async fn reset_transfers_lets_a_refused_transfer_through(setup) {
    let f = Fixture::new(setup).await;
    let license = f
        .key_license("MOVE", |l| {
            l.max_activations = 1;
            l.max_transfers = 1;
        })
        .await;
    assert_eq!(activate(&f, key_body("MOVE", "h1")).await, 200);
    f.app.send(f.client.deactivate(&key_body("MOVE", "h1"))).await;
    assert_eq!(activate(&f, key_body("MOVE", "h2")).await, 200, "the one transfer allowed");
    f.app.send(f.client.deactivate(&key_body("MOVE", "h2"))).await;
    let refused = f.app.send(f.client.activate(&key_body("MOVE", "h3"))).await;
    assert_error(&refused, 400, "license_transferred_max_times");
    let input = LicenseInput { license: key_ref("MOVE") };
    let reset = devices::reset_transfers(&f.app.state, &cli(&f), input).await.unwrap();
    assert_eq!(reset.transfer_count_before, 1);
    assert_eq!(f.license_now(&license).await.transfer_count, 0);
    assert_eq!(activate(&f, key_body("MOVE", "h3")).await, 200);
    assert_eq!(f.license_now(&license).await.transfer_count, 1);
    let records = cli_records(&f).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "license.reset_transfers");
    assert_eq!(records[0].detail["transfer_count_before"], 1);
    // Nothing to reset now? It is 1 again; reset twice: the second finds 0 and records nothing.
    let input = LicenseInput { license: key_ref("MOVE") };
    devices::reset_transfers(&f.app.state, &cli(&f), input).await.unwrap();
    let input = LicenseInput { license: key_ref("MOVE") };
    let none = devices::reset_transfers(&f.app.state, &cli(&f), input).await.unwrap();
    assert_eq!(none.transfer_count_before, 0);
    assert_eq!(cli_records(&f).await.len(), 2);
}

async fn a_blacklisted_device_is_freed_and_refused(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("BL", |l| l.max_activations = 2).await;
    assert_eq!(activate(&f, key_body("BL", "bad")).await, 200);
    let input = BlacklistDevice { hardware_id: hw("bad"), license: Some(key_ref("BL")) };
    let done = devices::blacklist_device(&f.app.state, &cli(&f), input.clone()).await.unwrap();
    assert!(done.added && done.deactivated, "{done:?}");
    assert_eq!(f.license_now(&license).await.times_activated, 0);
    let refused = f.app.send(f.client.activate(&key_body("BL", "bad"))).await;
    assert_error(&refused, 400, "blacklisted");
    assert_eq!(activate(&f, key_body("BL", "good")).await, 200);
    let again = devices::blacklist_device(&f.app.state, &cli(&f), input).await.unwrap();
    assert!(!again.added && !again.deactivated, "{again:?}");
    let actions: Vec<_> = cli_records(&f).await.into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["license.deactivate", "company.blacklist_device"], "the repeat recorded nothing");
}

async fn a_password_set_by_support_replaces_the_old_one(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(41, |l| l.max_activations = 5).await;
    f.user("bo@example.com", 2, &[(&license, 0)]).await;
    let input = SetPassword {
        email: Username::parse("bo@example.com").unwrap(),
        password: Some("a-new-password".into()),
        initial: None,
    };
    let set = users::set_password(&f.app.state, &cli(&f), input).await.unwrap();
    assert!(set.generated_password.is_none());
    let old = f.app.send(f.client.activate(&user_body("bo@example.com", "h1"))).await;
    assert_error(&old, 400, "license_not_found");
    let new = json!({"product": USER_PRODUCT, "hardware_id": "h1", "username": "bo@example.com", "password": "a-new-password"});
    assert_eq!(activate(&f, new).await, 200);
    // A generated one is returned once and works too.
    let input = SetPassword { email: Username::parse("bo@example.com").unwrap(), password: None, initial: None };
    let generated = users::set_password(&f.app.state, &cli(&f), input).await.unwrap().generated_password.unwrap();
    let body = json!({"product": USER_PRODUCT, "hardware_id": "h2", "username": "bo@example.com", "password": generated});
    assert_eq!(activate(&f, body).await, 200);
    let unknown = SetPassword { email: Username::parse("nobody@example.com").unwrap(), password: Some("whatever-1".into()), initial: None };
    let refused = users::set_password(&f.app.state, &cli(&f), unknown).await;
    assert!(matches!(refused, Err(ApiError::LicenseNotFound(_))), "{refused:?}");
    let short = SetPassword { email: Username::parse("bo@example.com").unwrap(), password: Some("short".into()), initial: None };
    assert!(matches!(users::set_password(&f.app.state, &cli(&f), short).await, Err(ApiError::Validation(_))));
    let records = cli_records(&f).await;
    assert_eq!(records.len(), 2, "two changes, two records; the refused ones none");
    for r in &records {
        assert_eq!((r.action.as_str(), r.subject.as_str()), ("user.set_password", "user:bo@example.com"));
        let detail = r.detail.to_string();
        assert!(!detail.contains("a-new-password") && !detail.contains(&generated) && !detail.contains(PASSWORD));
    }
}

async fn an_assigned_user_activates_within_their_own_limit(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(42, |l| l.max_activations = 5).await;
    f.user("cy@example.com", 3, &[]).await;
    let cy = Username::parse("cy@example.com").unwrap();
    let refused = f.app.send(f.client.activate(&user_body("cy@example.com", "h1"))).await;
    assert_error(&refused, 400, "license_not_found");
    let input = AssignUser { email: cy.clone(), license: id_ref(42), max_activations: 1 };
    let assigned = users::assign_user(&f.app.state, &cli(&f), input).await.unwrap();
    assert!(!assigned.already);
    assert_eq!(activate(&f, user_body("cy@example.com", "h1")).await, 200);
    let over = f.app.send(f.client.activate(&user_body("cy@example.com", "h2"))).await;
    assert_error(&over, 400, "license_user_activated_max_times");
    // Unassigning is refused while the user's device is active, then allowed.
    let unassign = || UnassignUser { email: cy.clone(), license: id_ref(42) };
    let busy = users::unassign_user(&f.app.state, &cli(&f), unassign()).await;
    assert!(matches!(busy, Err(ApiError::Validation(_))), "{busy:?}");
    let input = DeviceRef { license: id_ref(42), hardware_id: hw("h1") };
    devices::deactivate_device(&f.app.state, &cli(&f), input).await.unwrap();
    assert!(users::unassign_user(&f.app.state, &cli(&f), unassign()).await.unwrap().removed);
    let gone = f.app.send(f.client.activate(&user_body("cy@example.com", "h1"))).await;
    assert_error(&gone, 400, "license_not_found");
    let seat = f.store().get_seat(&LicenseAddr::of(&license), &cy).await.unwrap();
    assert_eq!(seat, None);
    let actions: Vec<_> = cli_records(&f).await.into_iter().rev().map(|r| r.action).collect();
    assert_eq!(actions, ["user.assign", "license.deactivate", "user.unassign"]);
    let key_based = AssignUser { email: cy, license: key_ref("K"), max_activations: 1 };
    assert!(matches!(users::assign_user(&f.app.state, &cli(&f), key_based).await, Err(ApiError::Validation(_))));
}

async fn a_reimport_keeps_the_password_support_set(setup) {
    let f = Fixture::new(setup).await;
    let example = include_str!("../examples/catalog.json");
    let catalog = license_api::catalog::Catalog::parse(example, "examples/catalog.json").unwrap();
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    let demo = Principal::cli(license_api::ids::CompanyId::parse("demo").unwrap());
    let input = SetPassword {
        email: Username::parse("ann@example.com").unwrap(),
        password: Some("set-by-support".into()),
        initial: None,
    };
    users::set_password(&f.app.state, &demo, input).await.unwrap();
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
    let activate = |password: &str, hw: &str| {
        c.activate(&json!({"product": "demo-team", "hardware_id": hw, "username": "ann@example.com", "password": password}))
    };
    assert_eq!(f.app.send(activate("set-by-support", "pc-1")).await.status(), 200, "kept by the re-import");
    assert_error(&f.app.send(activate("demo-password", "pc-2")).await, 400, "license_not_found");
}

// What support added is not the catalog's to undo: a re-import of the unchanged catalog keeps the
// device support blacklisted and the license it assigned (docs/catalog.md, *Ownership*), and its dry
// run says so; a catalog that lists the device claims it, and one that then drops it unlists it.
async fn a_reimport_keeps_what_support_added(setup) {
    let f = Fixture::new(setup).await;
    let catalog = catalog_without_carols_seat();
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    let demo = Principal::cli(license_api::ids::CompanyId::parse("demo").unwrap());
    let input = BlacklistDevice { hardware_id: hw("pc-stolen"), license: None };
    devices::blacklist_device(&f.app.state, &demo, input).await.unwrap();
    let carol = Username::parse("carol@example.com").unwrap();
    let team = LicenseRef { product: ProductCode::parse("demo-team").unwrap(), license_key: None, license_id: Some(6) };
    let input = AssignUser { email: carol.clone(), license: team, max_activations: 1 };
    users::assign_user(&f.app.state, &demo, input).await.unwrap();

    let options = license_api::catalog::ImportOptions { dry_run: true, ..Default::default() };
    let preview = license_api::catalog::import_with(f.store(), &catalog, None, options).await.unwrap();
    assert_eq!(preview.changes, [], "the unchanged catalog changes nothing");
    assert_eq!(
        preview.kept,
        [
            "keep blacklist entry pc-stolen of company demo: support added it",
            "keep the assignment of license demo/demo-team #6 to license user carol@example.com: support made it",
        ]
    );
    license_api::catalog::import(f.store(), &catalog).await.unwrap();
    let c = f.app.client("demo-api-key", "demo-shared-key-change-me");
    let key = |hw: &str| c.activate(&json!({"product": "demo", "hardware_id": hw, "license_key": "DEMO-0000-0000-0001"}));
    assert_error(&f.app.send(key("pc-stolen")).await, 400, "blacklisted");
    let body = json!({"product": "demo-team", "hardware_id": "carol-pc", "username": "carol@example.com", "password": "demo-password"});
    assert_eq!(f.app.send(c.activate(&body)).await.status(), 200, "Carol's assignment was kept");

    // A catalog that lists the device claims it; one that then drops it unlists it.
    let mut v: serde_json::Value = serde_json::from_str(include_str!("../examples/catalog.json")).unwrap();
    v["companies"][0]["blacklist"] = json!(["stolen-laptop-1", "pc-stolen"]);
    let claims = license_api::catalog::Catalog::parse(&v.to_string(), "claims.json").unwrap();
    assert_eq!(license_api::catalog::import(f.store(), &claims).await.unwrap().kept, Vec::<String>::new());
    v["companies"][0]["blacklist"] = json!(["stolen-laptop-1"]);
    let drops = license_api::catalog::Catalog::parse(&v.to_string(), "drops.json").unwrap();
    license_api::catalog::import(f.store(), &drops).await.unwrap();
    assert_eq!(f.app.send(key("pc-stolen")).await.status(), 200, "the catalog's own entry was removed");
}

async fn concurrent_blacklistings_are_all_kept(setup) {
    let f = Fixture::new(setup).await;
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    let principal = cli(&f);
    let calls = (0..12).map(|i| {
        let input = BlacklistDevice { hardware_id: hw(&format!("bad-{i:02}")), license: None };
        devices::blacklist_device(&instances[i % 3].state, &principal, input)
    });
    for done in futures::future::join_all(calls).await {
        assert!(done.unwrap().added);
    }
    let company = match f.store().load(&license_api::store::write::Item::Company(f.company.clone())).await.unwrap() {
        Some(license_api::store::write::Image::Company(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(company.blacklist.len(), 12, "no blacklisting overwrote another");
    assert_eq!(cli_records(&f).await.len(), 12);
}

async fn concurrent_assignments_of_one_user_are_all_kept(setup) {
    let f = Fixture::new(setup).await;
    for id in 60..68 {
        f.user_license(id, |l| l.max_activations = 2).await;
    }
    f.user("dee@example.com", 4, &[]).await;
    let instances = [f.env.instance().await, f.env.instance().await, f.env.instance().await];
    let principal = cli(&f);
    let dee = Username::parse("dee@example.com").unwrap();
    let calls = (60..68).map(|id| {
        let input = AssignUser { email: dee.clone(), license: id_ref(id), max_activations: 1 };
        users::assign_user(&instances[id as usize % 3].state, &principal, input)
    });
    for done in futures::future::join_all(calls).await {
        assert!(!done.unwrap().already);
    }
    let user = f.store().get_user(&f.company, &dee).await.unwrap().unwrap();
    let mut ids: Vec<i64> = user.licenses.iter().map(|(_, id)| *id).collect();
    ids.sort();
    assert_eq!(ids, (60..68).collect::<Vec<_>>(), "no assignment overwrote another");
    assert_eq!(cli_records(&f).await.len(), 8);
}
}
