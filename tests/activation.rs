//! SPEC §2.2, §3, §4, §5: activation — every exception, the license object, both signatures, and the
//! state each activation leaves in DynamoDB.

use integration_tests::fixtures::{hw, key_body, user_body, KEY_PRODUCT, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::auth::Principal;
use license_api::client::ClientError;
use license_api::handlers::activate;
use license_api::model::{ApiKeyRecord, LicenseType};
use license_api::plan::LicenseAddr;
use license_api::request::{LicenseRequest, Params};
use license_api::rules::Transport;
use license_api::time::Timestamp;
use serde_json::{json, Value};

async fn activate_ok(f: &Fixture, body: &Value, ident: &str) -> Value {
    let resp = f.app.send(f.client.activate(body)).await;
    let hw = body["hardware_id"].as_str().unwrap();
    f.client
        .verify_license(&resp, hw, ident)
        .unwrap_or_else(|e| panic!("activation failed: {e}"))
}

async fn activate_code(f: &Fixture, body: &Value) -> (u16, String) {
    integration_tests::error_of(&f.app.send(f.client.activate(body)).await)
}

integration_tests::matrix! {
async fn key_based_activation_returns_a_signed_license_object(setup) {
    let f = Fixture::new(setup).await;
    let license = f
        .key_license("AAAA-BBBB", |l| {
            l.terms.metadata = serde_json::from_value(json!({"tier": "pro", "seats": 3})).unwrap();
            l.terms.customer.email = Some("buyer@example.com".into());
        })
        .await;
    let body = json!({"product": KEY_PRODUCT, "hardware_id": "HW-Ünï", "license_key": "AAAA-BBBB", "os_ver": "14.1",
        "hostname": "box", "is_vm": false, "variables": {"seat": "blue", "n": 3}, "sdk_ver": "7", "unknown_field": [1]});
    let resp = f.app.send(f.client.activate(&body)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    // LicenseSignature verifies over the bytes received; a single changed byte does not.
    let obj = f.client.verify_license(&resp, "HW-Ünï", "AAAA-BBBB").unwrap();
    let mut tampered = resp.body().to_vec();
    tampered[10] ^= 1;
    let sig = resp.headers()["LicenseSignature"].to_str().unwrap();
    assert!(!license_api::signing::verify(&f.app.public_key_pem(), &tampered, sig));
    // The body is exactly what JSON.stringify(JSON.parse(body)) gives: compact, raw UTF-8.
    let text = std::str::from_utf8(resp.body()).unwrap();
    assert!(text.contains("\"hardware_id\":\"HW-Ünï\""));
    assert!(!text.ends_with('\n') && !text.contains(": ") && !text.contains(".0,"));

    assert_eq!(obj["id"], license.id);
    assert_eq!(obj["license_key"], "AAAA-BBBB");
    assert_eq!(obj["license_type"], "perpetual");
    assert_eq!(obj["request"], "activation");
    assert_eq!(obj["active"], true);
    assert_eq!(obj["hardware_id"], "HW-Ünï");
    assert!(obj["device_id"].as_i64().is_some_and(|id| id > 0 && id < (1 << 53)));
    assert_eq!(obj["times_activated"], 1);
    assert_eq!(obj["max_activations"], 5);
    assert_eq!(obj["is_expired"], false);
    assert_eq!(obj["validity_period"], Value::Null);
    assert_eq!(obj["installation_file"], Value::Null);
    assert_eq!(obj["grace_period"], 0);
    assert_eq!(obj["authorization_method"], "license-key");
    assert_eq!(obj["company"], json!({"id": 7}));
    assert_eq!(obj["metadata"], json!({"seats": 3, "tier": "pro"}));
    assert_eq!(obj["customer"]["email"], "buyer@example.com");
    assert_eq!(obj["product_details"]["short_code"], KEY_PRODUCT);
    assert_eq!(obj["product_details"]["prevent_vm"], false);
    assert_eq!(obj["product_features"], json!([]));
    for flag in [
        "allow_grace_period",
        "allow_overages",
        "allow_unlimited_activations",
        "allow_offline_activation",
        "can_borrow",
        "enable_maintenance_period",
        "is_air_gapped",
        "is_floating",
        "is_floating_cloud",
        "is_hardware_key_auth",
        "prevent_vm",
        "is_trial",
    ] {
        assert!(obj[flag].is_boolean(), "{flag} is a boolean");
    }
    for key in [
        "validity_period",
        "maintenance_period",
        "start_date",
        "license_template_id",
        "order_store_id",
    ] {
        assert!(obj.as_object().unwrap().contains_key(key), "{key} present");
    }
    let vars = obj["variables"].as_array().unwrap();
    assert_eq!(vars.len(), 2);
    assert!(vars
        .iter()
        .any(|v| v["variable"] == "n" && v["value"] == "3" && v["device_id"] == obj["device_id"]));

    // State: one active device holding the hardware details and variables.
    let addr = LicenseAddr::of(&license);
    let devices = f.store().list_devices(&addr).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].active);
    assert_eq!(devices[0].details["os_ver"], "14.1");
    assert_eq!(devices[0].details["hostname"], "box");
    assert_eq!(devices[0].details["is_vm"], false);
    assert_eq!(devices[0].variables.len(), 2);
    assert_eq!(f.license_now(&license).await.times_activated, 1);
}

async fn user_based_activation_signs_username_and_validity(setup) {
    let f = Fixture::new(setup).await;
    let validity = Timestamp::parse_iso("2099-05-06T07:08:09.010Z").unwrap();
    let license = f
        .user_license(501, |l| {
            l.validity_period = Some(validity);
            l.terms.license_type = LicenseType::TimeLimited;
        })
        .await;
    f.user("ann@example.com", 77, &[(&license, 2)]).await;
    let body = json!({"product": USER_PRODUCT, "hardware_id": "HW-1", "username": "Ann@Example.com", "password": "correct horse"});
    let resp = f.app.send(f.client.activate(&body)).await;
    let obj = f.client.verify_license(&resp, "HW-1", "ann@example.com").unwrap();
    assert_eq!(obj["validity_period"], "2099-05-06T07:08:09.010Z");
    assert_eq!(obj["license_type"], "time-limited");
    assert_eq!(obj["authorization_method"], "user");
    assert_eq!(obj["user"]["id"], 77);
    assert_eq!(obj["user"]["email"], "ann@example.com");
    assert_eq!(obj["user"]["total_activations"], 1);
    assert_eq!(obj["user"]["max_activations"], 2);
    assert!(obj.get("license_key").is_none());
    // license_signature is over lowercase(hw#username#validity).
    let msg = "hw-1#ann@example.com#2099-05-06t07:08:09.010z";
    assert!(license_api::signing::verify(
        &f.app.public_key_pem(),
        msg.as_bytes(),
        obj["license_signature"].as_str().unwrap()
    ));
    let seat = f.seat_now(&license, "ann@example.com").await;
    assert_eq!(seat.total_activations, 1);
}

async fn unknown_user_and_wrong_password_look_the_same(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(502, |_| {}).await;
    f.user("ann@example.com", 78, &[(&license, 0)]).await;
    let wrong = json!({"product": USER_PRODUCT, "hardware_id": "h", "username": "ann@example.com", "password": "nope"});
    let unknown = json!({"product": USER_PRODUCT, "hardware_id": "h", "username": "bob@example.com", "password": "correct horse"});
    let a = f.app.send(f.client.activate(&wrong)).await;
    let b = f.app.send(f.client.activate(&unknown)).await;
    assert_error(&a, 400, "license_not_found");
    assert_eq!(a.body(), b.body(), "same body for unknown user and wrong password");
    let no_password = json!({"product": USER_PRODUCT, "hardware_id": "h", "username": "ann@example.com"});
    assert_eq!(
        activate_code(&f, &no_password).await,
        (400, "missing_parameters".into())
    );
    let key_for_user_product = json!({"product": USER_PRODUCT, "hardware_id": "h", "license_key": "K"});
    assert_eq!(
        activate_code(&f, &key_for_user_product).await,
        (400, "missing_parameters".into())
    );
    // license_id picks among the user's licenses; a foreign id is not found.
    let mut pick = user_body("ann@example.com", "h");
    pick["license_id"] = json!("502");
    assert_eq!(activate_ok(&f, &pick, "ann@example.com").await["id"], 502);
    pick["license_id"] = json!(9999);
    pick["hardware_id"] = json!("h2");
    assert_eq!(activate_code(&f, &pick).await, (400, "license_not_found".into()));
}

async fn every_activation_exception(setup) {
    let f = Fixture::new(setup).await;
    let now = Timestamp::now();
    f.key_license("OK", |_| {}).await;
    f.key_license("DISABLED", |l| l.enabled = false).await;
    f.key_license("NO-VM", |l| l.terms.prevent_vm = Some(true)).await;
    f.key_license("LATER", |l| l.terms.start_date = Some(now.plus_days(3)))
        .await;
    f.key_license("EXPIRED", |l| l.validity_period = Some(now.plus_days(-1)))
        .await;
    f.key_license("TRIAL-OVER", |l| {
        l.terms.is_trial = true;
        l.validity_period = Some(now.plus_days(-1));
    })
    .await;
    f.key_license("ONE", |l| l.max_activations = 1).await;
    f.key_license("NO-TRANSFER", |l| {
        l.max_activations = 1;
        l.max_transfers = -1;
    })
    .await;
    f.put_product(|p| {
        p.code = integration_tests::fixtures::product_code("blk");
        p.blacklist.insert(hw("BAD-HW"));
    })
    .await;
    f.put_product(|p| {
        p.code = integration_tests::fixtures::product_code("off");
        p.disabled = true;
    })
    .await;
    f.put_product(|p| {
        p.code = integration_tests::fixtures::product_code("old");
        p.archived = true;
    })
    .await;
    f.update_company(|c| {
        c.blacklist.insert(hw("COMPANY-BAD"));
    })
    .await;

    let code = |product: &str, key: &str, hw: &str| json!({"product": product, "hardware_id": hw, "license_key": key});
    assert_eq!(
        activate_code(&f, &code("nope", "OK", "h")).await,
        (400, "unknown_product".into())
    );
    assert_eq!(
        activate_code(&f, &code("off", "OK", "h")).await,
        (400, "disabled_product".into())
    );
    assert_eq!(
        activate_code(&f, &code("old", "OK", "h")).await,
        (400, "archived_product".into())
    );
    assert_eq!(
        activate_code(&f, &key_body("MISSING", "h")).await,
        (400, "license_not_found".into())
    );
    let mut wrong_id = key_body("OK", "h");
    wrong_id["license_id"] = json!(1);
    assert_eq!(activate_code(&f, &wrong_id).await, (400, "license_not_found".into()));
    assert_eq!(
        activate_code(&f, &key_body("DISABLED", "h")).await,
        (400, "license_not_enabled".into())
    );
    let mut vm = key_body("NO-VM", "h");
    vm["is_vm"] = json!(true);
    assert_eq!(activate_code(&f, &vm).await, (400, "vm_not_allowed".into()));
    vm["is_vm"] = json!(false);
    assert_eq!(f.app.send(f.client.activate(&vm)).await.status(), 200);
    let resp = f.app.send(f.client.activate(&key_body("LATER", "h"))).await;
    assert_error(&resp, 400, "license_start_date_error");
    assert!(String::from_utf8_lossy(resp.body()).contains(&now.plus_days(3).to_string()[..10]));
    assert_eq!(
        activate_code(&f, &key_body("OK", "COMPANY-BAD")).await,
        (400, "blacklisted".into())
    );
    f.store()
        .put_license(&{
            let mut l = f.license_now(&f.key_license("BLK-1", |_| {}).await).await;
            l.product = integration_tests::fixtures::product_code("blk");
            l
        })
        .await
        .unwrap();
    assert_eq!(
        activate_code(&f, &code("blk", "BLK-1", "BAD-HW")).await,
        (400, "blacklisted".into())
    );
    assert_eq!(
        activate_code(&f, &key_body("EXPIRED", "h")).await,
        (400, "license_expired".into())
    );
    assert_eq!(
        activate_code(&f, &key_body("TRIAL-OVER", "h")).await,
        (400, "trial_expired".into())
    );

    activate_ok(&f, &key_body("ONE", "h1"), "ONE").await;
    let resp = f.app.send(f.client.activate(&key_body("ONE", "h1"))).await;
    assert_error(&resp, 409, "license_device_exists");
    assert_eq!(
        activate_code(&f, &key_body("ONE", "h2")).await,
        (400, "license_activated_max_times".into())
    );

    activate_ok(&f, &key_body("NO-TRANSFER", "h1"), "NO-TRANSFER").await;
    assert_eq!(
        f.app
            .send(f.client.deactivate(&key_body("NO-TRANSFER", "h1")))
            .await
            .status(),
        200
    );
    assert_eq!(
        activate_code(&f, &key_body("NO-TRANSFER", "h2")).await,
        (400, "license_transferred_max_times".into())
    );
    // The device that released the slot may take it back: that is no transfer.
    activate_ok(&f, &key_body("NO-TRANSFER", "h1"), "NO-TRANSFER").await;
}

async fn user_activation_limit(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(503, |l| l.max_activations = 10).await;
    f.user("ann@example.com", 1, &[(&license, 1)]).await;
    f.user("bob@example.com", 2, &[(&license, 0)]).await;
    activate_ok(&f, &user_body("ann@example.com", "a1"), "ann@example.com").await;
    assert_eq!(
        activate_code(&f, &user_body("ann@example.com", "a2")).await,
        (400, "license_user_activated_max_times".into())
    );
    // Bob's seat is unlimited; the license limit still applies to both.
    for i in 0..3 {
        activate_ok(&f, &user_body("bob@example.com", &format!("b{i}")), "bob@example.com").await;
    }
    assert_eq!(f.license_now(&license).await.times_activated, 4);
}

async fn transfers_follow_released_slots(setup) {
    let f = Fixture::new(setup).await;
    let license = f
        .key_license("T", |l| {
            l.max_activations = 1;
            l.max_transfers = 2;
        })
        .await;
    let act = |h: &str| key_body("T", h);
    // A → deactivate A → B → deactivate B → A: two transfers (SPEC §3 example).
    for (step, h) in ["A", "B", "A"].iter().enumerate() {
        let obj = activate_ok(&f, &act(h), "T").await;
        assert_eq!(obj["transfer_count"], step as i64);
        assert_eq!(f.app.send(f.client.deactivate(&act(h))).await.status(), 200);
    }
    let l = f.license_now(&license).await;
    assert_eq!((l.transfer_count, l.times_activated), (2, 0));
    // Only A's own slot is free for A; any other device would be a third transfer.
    assert_eq!(
        activate_code(&f, &act("C")).await,
        (400, "license_transferred_max_times".into())
    );
    activate_ok(&f, &act("A"), "T").await;
    assert_eq!(f.license_now(&license).await.transfer_count, 2);
}

async fn reactivation_after_deactivation_takes_a_slot_again(setup) {
    let f = Fixture::new(setup).await;
    let license = f.key_license("R", |l| l.max_activations = 1).await;
    let first = activate_ok(&f, &key_body("R", "h"), "R").await;
    assert_eq!(f.app.send(f.client.deactivate(&key_body("R", "h"))).await.status(), 200);
    let again = activate_ok(&f, &key_body("R", "h"), "R").await;
    assert_eq!(again["device_id"], first["device_id"], "a device keeps its id");
    assert_eq!(again["transfer_count"], 0);
    assert_eq!(f.license_now(&license).await.times_activated, 1);
    assert_eq!(f.device_counts(&license).await, (1, 1));
}

async fn trial_first_activation_sets_validity(setup) {
    let f = Fixture::new(setup).await;
    let license = f
        .key_license("TRIAL", |l| {
            l.terms.is_trial = true;
            l.terms.trial_days = 14;
        })
        .await;
    let before = Timestamp::now();
    let obj = activate_ok(&f, &key_body("TRIAL", "h1"), "TRIAL").await;
    let validity = Timestamp::parse_iso(obj["validity_period"].as_str().unwrap()).unwrap();
    assert!(validity >= before.plus_days(14) && validity <= Timestamp::now().plus_days(14));
    assert_eq!(obj["is_trial"], true);
    // The second activation keeps the first one's validity.
    let second = activate_ok(&f, &key_body("TRIAL", "h2"), "TRIAL").await;
    assert_eq!(second["validity_period"], obj["validity_period"]);
    assert_eq!(f.license_now(&license).await.validity_period, Some(validity));
}

async fn unlimited_activations_ignore_max(setup) {
    let f = Fixture::new(setup).await;
    let license = f
        .key_license("U", |l| {
            l.max_activations = 1;
            l.allow_unlimited_activations = true;
        })
        .await;
    for i in 0..4 {
        activate_ok(&f, &key_body("U", &format!("h{i}")), "U").await;
    }
    assert_eq!(f.license_now(&license).await.times_activated, 4);
}

async fn floating_cloud_cannot_be_activated_offline(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("FC", |l| l.terms.is_floating_cloud = true).await;
    let key: ApiKeyRecord = f
        .store()
        .api_key(&license_api::ids::ApiKeyId::parse("api-key-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    let auth = Principal::api_key(&key);
    let req = LicenseRequest::parse(&Params::from_json(key_body("FC", "h").to_string().as_bytes()).unwrap()).unwrap();
    let err = activate(&f.app.state, &auth, &req, Transport::Offline)
        .await
        .expect_err("offline activation refused");
    assert_eq!(err.code(), "offline_floating_cloud_not_supported");
    assert!(activate(&f.app.state, &auth, &req, Transport::Online).await.is_ok());
}

async fn client_rejects_a_response_signed_by_another_key(setup) {
    let f = Fixture::new(setup).await;
    f.key_license("W", |_| {}).await;
    let resp = f.app.send(f.client.activate(&key_body("W", "h"))).await;
    let (other, _) = license_api::signing::Signer::generate(2048).unwrap();
    let impostor = license_api::client::LicenseClient::new("api-key-1", "shared-key-1", other.public_key_pem());
    assert_eq!(
        impostor.verify_license(&resp, "h", "W").unwrap_err(),
        ClientError::BadSignature
    );
    assert_eq!(
        f.client.verify_license(&resp, "h", "OTHER").unwrap_err(),
        ClientError::BadLicenseSignature
    );
}
}
