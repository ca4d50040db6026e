//! Catalog import on both stores: the example catalog imports and serves, importing twice leaves
//! identical state and writes nothing, a dry run reports every change and writes none, hashes may stand
//! for passwords, activations and passwords users changed survive a re-import, and a broken catalog changes nothing.

use integration_tests::{Fixture, Setup};
use license_api::catalog::{import, import_with, Catalog, ImportOptions};
use license_api::handlers::Endpoint;
use license_api::store::write::{Attr, Image, Item, Write};
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

    // The administrative listing `license-server show` prints a license's users from: every seat, by
    // email, with its counters, on every store.
    async fn a_licenses_seats_are_listed(setup) {
        let f = imported(setup).await;
        let c = demo_client(&f);
        let user = json!({"product": "demo-team", "hardware_id": "pc-2", "username": "ann@example.com", "password": "demo-password"});
        assert_eq!(f.app.send(c.activate(&user)).await.status(), 200);
        let addr = license_api::plan::LicenseAddr::Id {
            company: license_api::ids::CompanyId::parse("demo").unwrap(),
            product: license_api::ids::ProductCode::parse("demo-team").unwrap(),
            id: 6,
        };
        let seats = f.store().list_seats(&addr).await.expect("list seats");
        let listed: Vec<_> = seats
            .iter()
            .map(|s| (s.user.as_str(), s.max_activations, s.allow_unlimited_activations, s.total_activations))
            .collect();
        assert_eq!(
            listed,
            [("ann@example.com", 2, false, 1), ("bob@example.com", 0, true, 0), ("carol@example.com", 1, false, 0)]
        );
    }

    // Provenance (docs/data-model.md): the import marks what it writes as the catalog's; the
    // Management API marks what it creates as its own, and a re-import that names it claims it.
    async fn the_import_records_what_it_owns(setup) {
        let f = imported(setup).await;
        let catalog = Some(license_api::model::LicenseSource::Catalog);
        let key = f.store().api_key(&license_api::ids::ApiKeyId::parse("demo-api-key").unwrap()).await.unwrap();
        assert_eq!(key.unwrap().source, catalog);
        let demo = license_api::ids::CompanyId::parse("demo").unwrap();
        let ann = license_api::ids::Username::parse("ann@example.com").unwrap();
        assert_eq!(f.store().get_user(&demo, &ann).await.unwrap().unwrap().source, catalog);
        let cli = license_api::auth::Principal::cli(demo.clone());
        let entry = json!({"api_key": "support-key"}).as_object().unwrap().clone();
        let input = license_api::management::api_keys::CreateApiKey { entry };
        license_api::management::api_keys::create(&f.app.state, &cli, input).await.unwrap();
        let id = license_api::ids::ApiKeyId::parse("support-key").unwrap();
        let made = f.store().api_key(&id).await.unwrap().unwrap();
        assert_eq!(made.source, Some(license_api::model::LicenseSource::Management));
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["companies"][0]["api_keys"].as_array_mut().unwrap().push(json!({"api_key": "support-key", "shared_key": made.shared_key}));
        import(f.store(), &Catalog::parse(&v.to_string(), "claims.json").unwrap()).await.unwrap();
        assert_eq!(f.store().api_key(&id).await.unwrap().unwrap().source, catalog, "claimed");
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

    // A password the user changed through `change_password` survives a re-import (the catalog's password is
    // where the user starts); once the catalog manages it (`password_change_disabled`), the import resets it.
    async fn reimport_keeps_a_password_the_user_changed(setup) {
        let f = imported(setup).await;
        let c = demo_client(&f);
        let change = json!({"username": "ann@example.com", "password": "demo-password", "new_password": "ann's own secret"});
        let resp = f.app.send(c.call(Endpoint::ChangePassword, &change)).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        let activate = |password: &str, hw: &str| {
            c.activate(&json!({"product": "demo-team", "hardware_id": hw, "username": "ann@example.com", "password": password}))
        };
        import(f.store(), &example()).await.expect("re-import");
        assert_eq!(f.app.send(activate("ann's own secret", "pc-1")).await.status(), 200, "the user's password was kept");
        assert_eq!(integration_tests::error_of(&f.app.send(activate("demo-password", "pc-2")).await).1, "license_not_found");
        let mut managed: Value = serde_json::from_str(EXAMPLE).unwrap();
        for user in managed["companies"][0]["license_users"].as_array_mut().unwrap() {
            if user["email"] == "ann@example.com" {
                user["password_change_disabled"] = json!(true);
            }
        }
        let managed = Catalog::parse(&managed.to_string(), "managed.json").expect("valid");
        import(f.store(), &managed).await.expect("managed import");
        assert_eq!(f.app.send(activate("demo-password", "pc-2")).await.status(), 200, "the catalog's password again");
        assert_eq!(integration_tests::error_of(&f.app.send(activate("ann's own secret", "pc-3")).await).1, "license_not_found");
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

    // A dry run reports every change (an emptied blacklist, a raised limit, a new license) and writes
    // nothing: the blacklisted device is still refused. The import itself then makes exactly those
    // changes, and importing the same file again finds nothing to write.
    async fn a_dry_run_reports_every_change_and_writes_nothing(setup) {
        let f = imported(setup).await;
        let c = demo_client(&f);
        let stolen = json!({"product": "demo", "hardware_id": "stolen-laptop-1", "license_key": "DEMO-0000-0000-0001"});
        let before = f.env.dump().await;
        let mut edited: Value = serde_json::from_str(EXAMPLE).unwrap();
        edited["companies"][0]["blacklist"] = json!([]);
        edited["companies"][0]["licenses"][0]["max_activations"] = json!(7);
        let mut new_license = edited["companies"][0]["licenses"][0].clone();
        new_license["id"] = json!(9001);
        new_license["license_key"] = json!("DEMO-NEW-9001");
        edited["companies"][0]["licenses"].as_array_mut().unwrap().push(new_license);
        let edited = Catalog::parse(&edited.to_string(), "edited.json").unwrap();
        let dry = import_with(f.store(), &edited, None, ImportOptions { dry_run: true, ..ImportOptions::default() }).await.unwrap();
        let described: Vec<String> = dry.changes.iter().map(|c| c.describe()).collect();
        assert_eq!(
            described,
            [
                r#"update company demo: blacklist: +[] -["stolen-laptop-1"] (1 → 0 entries)"#,
                "update license demo/demo DEMO-0000-0000-0001: max_activations: 3 → 7",
                "create license demo/demo DEMO-NEW-9001",
                // The new license names the same customer: their index lists it too.
                r#"update customer index demo/buyer@example.com: licenses: [{"id":1,"product":"demo"}] → [{"id":1,"product":"demo"},{"id":9001,"product":"demo"}]"#,
            ]
        );
        assert_eq!(f.env.dump().await, before, "a dry run writes nothing");
        assert_eq!(integration_tests::error_of(&f.app.send(c.activate(&stolen)).await).1, "blacklisted");
        let done = import(f.store(), &edited).await.unwrap();
        assert_eq!(done.changes, dry.changes, "the import makes what the dry run reported");
        let resp = f.app.send(c.activate(&stolen)).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        let again = import(f.store(), &edited).await.unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes.iter().map(|c| c.describe()).collect::<Vec<_>>());
        assert_eq!(again.unchanged, done.unchanged + done.changes.len());
    }

    // A catalog may give an argon2id hash instead of a password: the user signs in with the password it
    // hashes, and a re-import compares it without hashing anything.
    async fn a_catalog_password_hash_signs_in(setup) {
        let f = imported(setup).await;
        let c = demo_client(&f);
        let mut hashed: Value = serde_json::from_str(EXAMPLE).unwrap();
        for user in hashed["companies"][0]["license_users"].as_array_mut().unwrap() {
            if user["email"] == "ann@example.com" {
                user.as_object_mut().unwrap().remove("password");
                user["password_hash"] = json!(license_api::password::hash("ann's hashed secret"));
            }
        }
        let hashed = Catalog::parse(&hashed.to_string(), "hashed.json").unwrap();
        let report = import(f.store(), &hashed).await.unwrap();
        assert_eq!(report.changes.iter().map(|c| c.describe()).collect::<Vec<_>>(), ["update license user demo/ann@example.com: password_hash changed"]);
        let activate = |password: &str| c.activate(&json!({"product": "demo-team", "hardware_id": "pc-1", "username": "ann@example.com", "password": password}));
        assert_eq!(integration_tests::error_of(&f.app.send(activate("demo-password")).await).1, "license_not_found");
        assert_eq!(f.app.send(activate("ann's hashed secret")).await.status(), 200);
        assert!(import(f.store(), &hashed).await.unwrap().changes.is_empty());
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

/// One item of each kind with every attribute it has set to a value no default gives.
fn every_kind(company: &license_api::ids::CompanyId) -> Vec<(Item, Image)> {
    use license_api::ids::{ApiKeyId, CustomerAccountCode, HardwareId, LicenseKey, ProductCode, RequestKey, Username};
    use license_api::model::*;
    use license_api::plan::LicenseAddr;
    use license_api::time::Timestamp;
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let product = ProductCode::parse("every-attr").unwrap();
    let hw = HardwareId::parse("hw-every-attr").unwrap();
    let user = Username::parse("ann@example.com").unwrap();
    let addr = LicenseAddr::Key {
        company: company.clone(),
        product: product.clone(),
        key: LicenseKey::parse("EVERY-ATTR").unwrap(),
    };
    let license = License {
        enabled: false,
        max_activations: 7,
        allow_unlimited_activations: true,
        max_transfers: 3,
        validity_period: Some(t(1)),
        times_activated: 2,
        transfer_count: 1,
        released_count: 1,
        consumptions: -4,
        feature_consumptions: [("f1".to_owned(), 5)].into(),
        consumptions_period: Some(t(2)),
        feature_periods: [("f1".to_owned(), t(3))].into(),
        source: Some(license_api::model::LicenseSource::Management),
        ..License::new(
            41,
            company.clone(),
            product.clone(),
            Some(LicenseKey::parse("EVERY-ATTR").unwrap()),
        )
    };
    let mut doc = ProductDoc {
        disabled: true,
        archived: true,
        blacklist: [hw.clone()].into(),
        ..Default::default()
    };
    doc.code = product.clone();
    let device = Device {
        id: 9,
        hardware_id: hw.clone(),
        active: true,
        user: Some(user.clone()),
        first_activated_at: t(4),
        last_activated_at: t(5),
        deactivated_at: Some(t(6)),
        last_seen_at: Some(t(7)),
        details: serde_json::from_value(json!({"os": "linux", "vm": true})).unwrap(),
        variables: vec![DeviceVariable {
            variable: "v".into(),
            value: "1".into(),
            created_at: t(8),
        }],
        activations: 3,
        write_token: Some("token".into()),
    };
    let key = RequestKey::new("activation", b"every attr");
    vec![
        (
            Item::ApiKey(ApiKeyId::parse("every-attr-key").unwrap()),
            Image::ApiKey(Box::new(ApiKeyRecord {
                id: ApiKeyId::parse("every-attr-key").unwrap(),
                company: company.clone(),
                shared_key: "secret".into(),
                products: vec![product.clone()],
                read_only: true,
                revoked: true,
                source: Some(license_api::model::LicenseSource::Management),
            })),
        ),
        (
            Item::Company(company.clone()),
            Image::Company(Box::new(Company {
                id: 5,
                blacklist: [hw.clone()].into(),
                management_blacklist: [hw.clone()].into(),
            })),
        ),
        (
            Item::Product(company.clone(), product.clone()),
            Image::Product(Box::new(doc)),
        ),
        (
            Item::User(company.clone(), user.clone()),
            Image::User(Box::new(LicenseUser {
                id: 6,
                email: user.clone(),
                first_name: Some("Ann".into()),
                last_name: None,
                phone_number: None,
                is_initial_password: true,
                password_hash: Some("$argon2id$stub".into()),
                licenses: vec![(product.clone(), 41)],
                bundle_licenses: Vec::new(),
                password_change_disabled: false,
                trial_password: false,
                password_changed_by_user: false,
                management_licenses: vec![(product.clone(), 42)],
                source: Some(license_api::model::LicenseSource::Trial),
            })),
        ),
        (Item::License(addr.clone()), Image::License(Box::new(license))),
        (Item::Device(addr.clone(), hw.clone()), Image::Device(Box::new(device))),
        (
            Item::Seat(addr.clone(), user.clone()),
            Image::Seat(Seat {
                user,
                max_activations: 4,
                allow_unlimited_activations: true,
                total_activations: 2,
            }),
        ),
        (Item::Released(addr.clone(), hw), Image::Marker),
        (
            Item::Request(addr, key.clone()),
            Image::Request(Box::new(ProcessedRequest {
                key,
                answer: "{}".into(),
                processed_at: t(9),
                expires_at: 4_000_000_000,
            })),
        ),
        (
            Item::Audit(company.clone(), "0001700000000000#a".into()),
            Image::Audit(Box::new(AuditRecord {
                company: company.clone(),
                id: "0001700000000000#a".into(),
                at: t(10),
                actor: "key".into(),
                action: "license.update".into(),
                subject: "EVERY-ATTR".into(),
                detail: json!({"enabled": false}),
                expires_at: 4_000_000_000,
            })),
        ),
        (
            Item::OAuthClient(license_api::ids::OAuthClientId::parse("every-attr-client").unwrap()),
            Image::OAuthClient(Box::new(OAuthClientRecord {
                id: license_api::ids::OAuthClientId::parse("every-attr-client").unwrap(),
                company: company.clone(),
                secret_hash: "$argon2id$stub".into(),
                sealed_secret: license_api::sealed::SealingKey::generate()
                    .unwrap()
                    .0
                    .seal(&"secret".into(), "oauth-client:every-attr-client")
                    .unwrap(),
                products: vec![product.clone()],
                read_only: true,
                revoked: true,
                source: Some(license_api::model::LicenseSource::Catalog),
            })),
        ),
        (
            Item::CustomerAccount(company.clone(), CustomerAccountCode::parse("every-attr-acct").unwrap()),
            Image::CustomerAccount(Box::new(CustomerAccountRecord {
                company: company.clone(),
                code: CustomerAccountCode::parse("every-attr-acct").unwrap(),
                issuer: "https://idp.example".into(),
                client_id: "every-attr-cid".into(),
                sealed_secret: license_api::sealed::SealingKey::generate()
                    .unwrap()
                    .0
                    .seal(&"secret".into(), "customer-account:every-attr:every-attr-acct")
                    .unwrap(),
                redirect_uris: vec!["https://app.example/cb".into(), "https://app.example/other".into()],
                email_claim: "upn".into(),
            })),
        ),
        (
            Item::Customer(company.clone(), Username::parse("buyer@example.com").unwrap()),
            Image::Customer(Box::new(CustomerLicenses {
                email: Username::parse("buyer@example.com").unwrap(),
                licenses: vec![CustomerLicense {
                    product: product.clone(),
                    id: 5,
                    users: vec![Username::parse("ann@example.com").unwrap()],
                }],
            })),
        ),
        (
            Item::Trial(
                company.clone(),
                license_api::ids::ProductCode::parse("p").unwrap(),
                license_api::ids::HardwareId::parse("every-attr-hw").unwrap(),
            ),
            Image::Trial(Box::new(license_api::model::TrialRecord {
                license_id: 77,
                license_key: Some(license_api::ids::LicenseKey::parse("EVERY-TRIAL").unwrap()),
                user: Some(license_api::ids::Username::parse("trial@example.com").unwrap()),
                created_at: t(11),
            })),
        ),
        (
            Item::ManagementKey(
                company.clone(),
                license_api::ids::ManagementKeyId::parse("0123abcd0123abcd").unwrap(),
            ),
            Image::ManagementKey(Box::new(license_api::model::ManagementKeyRecord {
                id: license_api::ids::ManagementKeyId::parse("0123abcd0123abcd").unwrap(),
                company: company.clone(),
                name: "billing".into(),
                secret_hash: "ab".repeat(32),
                read_only: true,
                revoked: true,
                created_at: t(12),
            })),
        ),
        (
            Item::Idempotency(company.clone(), "order-1".into()),
            Image::Idempotency(Box::new(license_api::model::IdempotencyRecord {
                company: company.clone(),
                key: "order-1".into(),
                request_digest: "cd".repeat(32),
                status: 201,
                answer: r#"{"id":1}"#.into(),
                expires_at: 4_000_000_000,
            })),
        ),
    ]
}

integration_tests::matrix! {
    // Every attribute is written and read back by the store: one a codec or a table forgot fails here.
    async fn every_attribute_round_trips(setup) {
        let f = Fixture::new(setup).await;
        // A company of its own: the fixture's one exists already.
        let items = every_kind(&license_api::ids::CompanyId::parse("every-attr").unwrap());
        for &attr in Attr::ALL {
            // The per-feature maps are SQLite's form of DynamoDB's per-feature attributes.
            assert!(items.iter().any(|(_, image)| image.get(attr).is_some()), "no sample holds {attr:?}");
        }
        for (item, image) in &items {
            f.store().write(&Write::create(item.clone(), image.clone())).await.expect("create");
            let stored = f.store().load(item).await.expect("load").expect("created");
            for &attr in Attr::ALL {
                assert_eq!(stored.get(attr), image.get(attr), "{attr:?} of {item:?}");
            }
            let again = f.store().write(&Write::create(item.clone(), image.clone())).await;
            assert!(again.is_err(), "create refuses an existing {item:?}");
        }
        let (item, _) = &items[0];
        f.store().write(&Write::delete(item.clone())).await.expect("delete");
        assert!(f.store().load(item).await.unwrap().is_none());
    }
}
