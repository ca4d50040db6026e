//! Catalog import on both stores: the example catalog imports and serves, importing twice leaves
//! identical state, activations survive a re-import, and a broken catalog changes nothing.

use integration_tests::{Fixture, Setup};
use license_api::catalog::{import, Catalog};
use serde_json::{json, Value};

const EXAMPLE: &str = include_str!("../examples/catalog.json");

fn example() -> Catalog {
    Catalog::parse(EXAMPLE, "examples/catalog.json").expect("the example catalog is valid")
}

async fn imported(setup: Setup) -> Fixture {
    let f = Fixture::new(setup).await;
    import(f.store(), &example()).await.expect("import");
    f
}

fn demo_client(f: &Fixture) -> license_api::client::LicenseClient {
    f.app.client("demo-api-key", "demo-shared-key-change-me")
}

integration_tests::matrix! {
    async fn importing_twice_changes_nothing(setup) {
        let f = imported(setup).await;
        let first = f.env.dump().await;
        import(f.store(), &example()).await.expect("second import");
        assert_eq!(f.env.dump().await, first);
    }

    async fn reimport_keeps_activations(setup) {
        let f = imported(setup).await;
        let c = demo_client(&f);
        let body = json!({"product": "demo", "hardware_id": "pc-1", "license_key": "DEMO-0000-0000-0001"});
        let obj = c.verify_license(&f.app.send(c.activate(&body)).await, "pc-1", "DEMO-0000-0000-0001").unwrap();
        assert_eq!(obj["customer"]["company_name"], "Buyer Inc");
        assert_eq!(obj["custom_fields"], json!([{"name": "seat-color", "data_type": "text", "value": "blue"}]));
        assert_eq!(obj["product_features"][1]["max_consumption"], 500);
        let user = json!({"product": "demo-team", "hardware_id": "pc-2", "username": "ann@example.com", "password": "demo-password"});
        assert_eq!(f.app.send(c.activate(&user)).await.status(), 200);
        let before = f.env.dump().await;
        import(f.store(), &example()).await.expect("re-import");
        assert_eq!(f.env.dump().await, before, "a re-import keeps counters, devices and password hashes");
        let check = c.check(&json!({"product": "demo", "hardware_id": "pc-1", "license_key": "DEMO-0000-0000-0001"}));
        let obj = c.verify_license(&f.app.send(check).await, "pc-1", "DEMO-0000-0000-0001").unwrap();
        assert_eq!(obj["times_activated"], 1);
    }

    async fn example_catalog_features_answer_as_configured(setup) {
        let f = imported(setup).await;
        let c = demo_client(&f);
        let act = |key: &str, hw: &str| c.activate(&json!({"product": "demo", "hardware_id": hw, "license_key": key}));
        assert_eq!(integration_tests::error_of(&f.app.send(act("DEMO-DISABLED-0005", "h")).await).1, "license_not_enabled");
        assert_eq!(integration_tests::error_of(&f.app.send(act("DEMO-0000-0000-0001", "stolen-laptop-1")).await).1, "blacklisted");
        assert_eq!(integration_tests::error_of(&f.app.send(act("DEMO-0000-0000-0001", "known-bad-hardware-id")).await).1, "blacklisted");
        let trial = c.verify_license(&f.app.send(act("DEMO-TRIAL-0000-0002", "h")).await, "h", "DEMO-TRIAL-0000-0002").unwrap();
        assert!(trial["validity_period"].is_string(), "a trial's first activation starts its clock");
        let old = c.activate(&json!({"product": "demo-legacy", "hardware_id": "h", "license_key": "X"}));
        assert_eq!(integration_tests::error_of(&f.app.send(old).await).1, "archived_product");
        let ro = f.app.client("demo-read-only-key", "demo-read-only-secret");
        assert_eq!(integration_tests::error_of(&f.app.send(ro.activate(&json!({"product": "demo", "hardware_id": "h2", "license_key": "DEMO-0000-0000-0001"}))).await).1, "read_only_api_key");
        let desktop = f.app.client("demo-desktop-only-key", "demo-desktop-secret");
        let team = json!({"product": "demo-team", "hardware_id": "h", "username": "bob@example.com", "password": "demo-password"});
        assert_eq!(integration_tests::error_of(&f.app.send(desktop.activate(&team)).await).1, "api_key_product_not_allowed");
        let revoked = f.app.client("demo-revoked-key", "demo-revoked-secret");
        assert_eq!(integration_tests::error_of(&f.app.send(revoked.activate(&team)).await).1, "revoked_api_key");
        let mut vm = team.clone();
        vm["is_vm"] = Value::Bool(true);
        assert_eq!(integration_tests::error_of(&f.app.send(c.activate(&vm)).await).1, "vm_not_allowed");
    }

    async fn broken_catalog_changes_nothing(setup) {
        let f = imported(setup).await;
        let before = f.env.dump().await;
        let mut broken: Value = serde_json::from_str(EXAMPLE).unwrap();
        // A valid change early in the file and a broken field late in it: neither may be written.
        broken["companies"][0]["licenses"][0]["max_activations"] = json!(99);
        broken["companies"][0]["licenses"][5]["users"][1]["max_activations"] = json!("lots");
        let err = Catalog::parse(&broken.to_string(), "broken.json").unwrap_err();
        assert_eq!(err.path, "companies[0].licenses[5].users[1].max_activations");
        assert!(err.to_string().starts_with("broken.json: companies[0].licenses[5].users[1].max_activations: "), "{err}");
        assert_eq!(f.env.dump().await, before);
    }
}
