//! SPEC §9 `trial_key`: a trial license of a product for one device, created once per (product,
//! hardware id) — a conditional create, exact under concurrency — key-based (`license`) or user-based
//! (`license_user` + `initial_password`, a login that works), from the product's trial settings or a
//! license policy, refused as the SPEC says.

use futures::future::join_all;
use integration_tests::fixtures::user_body;
use integration_tests::{assert_error, Backend, Fixture, Instance};
use license_api::client::LicenseClient;
use license_api::handlers::Endpoint;
use license_api::ids::{LicenseKey, Username};
use license_api::model::{AuthorizationMethod, LicensePolicy, LicenseType, ProductDoc};
use license_api::plan::LicenseAddr;
use license_api::time::Timestamp;
use serde_json::{json, Value};

const TRIAL_PRODUCT: &str = "p-custom";

fn trial_product(p: &mut ProductDoc) {
    p.allow_trial = true;
    p.trial_days = 14;
}

fn user_trial_product(p: &mut ProductDoc) {
    trial_product(p);
    p.authorization_method = AuthorizationMethod::User;
}

fn policies(p: &mut ProductDoc) {
    p.license_policies = vec![
        LicensePolicy {
            code: "trial-30".into(),
            trial_days: 30,
            max_activations: 2,
            ..LicensePolicy::default()
        },
        LicensePolicy {
            code: "full".into(),
            is_trial: false,
            license_type: LicenseType::Perpetual,
            ..LicensePolicy::default()
        },
    ];
}

fn trial_params(hw: &str) -> Value {
    json!({"product": TRIAL_PRODUCT, "hardware_id": hw})
}

/// Sends the request and returns the verified body as JSON (panics on anything but a signed 200).
async fn trial(app: &Instance, client: &LicenseClient, params: &Value) -> (String, Value) {
    let resp = app.send(client.call(Endpoint::TrialKey, params)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let body = client.verify_body(&resp).expect("a signed answer");
    let text = String::from_utf8(body.to_vec()).unwrap();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

/// How many licenses the store holds (every item, counted from a dump of the table or file).
async fn stored_licenses(f: &Fixture) -> usize {
    let rows = f.env.dump().await;
    match f.env.setup.backend {
        Backend::Sqlite => rows.iter().filter(|r| r.starts_with("licenses: ")).count(),
        Backend::DynamoDb => rows
            .iter()
            .filter(|r| r.contains(r##""PK": S("LICENSE#"##) && r.contains(r##""SK": S("#")"##))
            .count(),
    }
}

fn is_generated_key(key: &str) -> bool {
    let groups: Vec<&str> = key.split('-').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(&b)))
}

/// Every request fired at once, spread over the instances: each answer's status and body.
async fn race(apps: &[Instance], client: &LicenseClient, params: &Value, n: usize) -> Vec<(u16, String)> {
    let sends = (0..n).map(|i| apps[i % apps.len()].send(client.call(Endpoint::TrialKey, params)));
    join_all(sends)
        .await
        .into_iter()
        .map(|resp| {
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(resp.body()).into_owned(),
            )
        })
        .collect()
}

integration_tests::matrix! {
async fn a_device_gets_one_trial_that_runs_from_its_first_activation(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(trial_product).await;
    let mut params = trial_params("dev-1");
    params["email"] = json!("Tess@Example.com");
    params["first_name"] = json!("Tess");
    params["city"] = json!("Ljubljana");
    let (text, body) = trial(&f.app, &f.client, &params).await;
    let key = body["license"].as_str().expect("a key-based trial answers `license`").to_owned();
    assert!(is_generated_key(&key), "{key}");
    assert!(body.get("license_user").is_none() && body.get("initial_password").is_none(), "{body}");
    assert_eq!((body["is_trial"].clone(), body["trial_days"].clone()), (json!(true), json!(14)));
    assert_eq!(body["license_type"], "time-limited");
    assert_eq!(body["max_activations"], 1);
    assert_eq!(body["validity_period"], Value::Null, "it runs from the first activation");
    assert_eq!(body["customer"]["email"], "tess@example.com");
    assert_eq!((body["customer"]["first_name"].clone(), body["customer"]["city"].clone()), (json!("Tess"), json!("Ljubljana")));

    // The same device asks again: the same trial, byte for byte; another device gets its own.
    assert_eq!(trial(&f.app, &f.client, &params).await.0, text);
    let (_, other) = trial(&f.app, &f.client, &trial_params("dev-2")).await;
    assert_ne!(other["license"], body["license"]);
    assert_ne!(other["id"], body["id"]);
    assert_eq!(stored_licenses(&f).await, 2);

    // The key activates on the device: the trial's validity starts now.
    let activation = json!({"product": TRIAL_PRODUCT, "hardware_id": "dev-1", "license_key": key});
    let resp = f.app.send(f.client.activate(&activation)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let activated: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(activated["is_trial"], true);
    assert_eq!(activated["id"], body["id"]);
    let addr = LicenseAddr::Key {
        company: f.company.clone(),
        product: integration_tests::fixtures::product_code(TRIAL_PRODUCT),
        key: LicenseKey::parse(&key).unwrap(),
    };
    let mut license = f.store().get_license(&addr).await.unwrap().expect("stored");
    let validity = license.validity_period.expect("set by the first activation");
    let days = (validity.millis() - Timestamp::now().millis()) as f64 / 86_400_000.0;
    assert!((13.9..=14.0).contains(&days), "{days} days");
    let (_, again) = trial(&f.app, &f.client, &params).await;
    assert_eq!(again["validity_period"], activated["validity_period"], "the running trial, as it stands");

    // Once it has run out, the device gets no other trial of the product.
    license.validity_period = Some(Timestamp::from_millis(Timestamp::now().millis() - 1000));
    f.store().put_license(&license).await.unwrap();
    assert_error(&f.app.send(f.client.call(Endpoint::TrialKey, &params)).await, 400, "trial_expired");
    assert_eq!(stored_licenses(&f).await, 2, "no new trial");
}

async fn twenty_racing_requests_create_one_trial(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(trial_product).await;
    let apps = f.sealed_instances(4).await;
    let results = race(&apps, &f.client, &trial_params("racer"), 20).await;
    assert!(results.iter().all(|(status, _)| *status == 200), "{results:?}");
    assert!(results.iter().all(|r| r.1 == results[0].1), "20 identical answers: {results:?}");
    assert_eq!(stored_licenses(&f).await, 1, "exactly one license created");

    // The same for a user-based product: one license, one user, one initial password.
    f.store().put_product(&f.company, &ProductDoc { code: integration_tests::fixtures::product_code("p-user"), authorization_method: AuthorizationMethod::User, ..trial_product_doc() }).await.unwrap();
    let params = json!({"product": "p-user", "hardware_id": "racer", "email": "racer@example.com"});
    let results = race(&apps, &f.client, &params, 20).await;
    assert!(results.iter().all(|(status, _)| *status == 200), "{results:?}");
    assert!(results.iter().all(|r| r.1 == results[0].1), "20 identical answers: {results:?}");
    assert_eq!(stored_licenses(&f).await, 2, "exactly one more license");
    let user = f.store().get_user(&f.company, &Username::parse("racer@example.com").unwrap()).await.unwrap().expect("created");
    assert_eq!(user.licenses.len(), 1, "assigned once: {user:?}");
}

async fn a_user_based_trial_is_a_login_that_works(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(user_trial_product).await;
    let apps = f.sealed_instances(2).await;
    let no_email = apps[0].send(f.client.call(Endpoint::TrialKey, &trial_params("dev-1"))).await;
    assert_error(&no_email, 400, "email_missing");
    let mut params = trial_params("dev-1");
    params["email"] = json!("new@example.com");
    params["last_name"] = json!("Novak");
    let (text, body) = trial(&apps[0], &f.client, &params).await;
    assert_eq!(body["license_user"], "new@example.com");
    assert!(body.get("license").is_none(), "{body}");
    let password = body["initial_password"].as_str().expect("an initial password").to_owned();
    assert_eq!(password.len(), 20);
    // Another instance of the deployment answers the same password: it is derived, not stored.
    assert_eq!(trial(&apps[1], &f.client, &params).await.0, text);
    let user = f.store().get_user(&f.company, &Username::parse("new@example.com").unwrap()).await.unwrap().unwrap();
    assert!(user.is_initial_password && user.password_hash.as_deref().is_some_and(|h| h.starts_with("$argon2id$")), "{user:?}");
    assert_eq!(user.last_name.as_deref(), Some("Novak"));

    let login = json!({"product": TRIAL_PRODUCT, "hardware_id": "dev-1", "username": "new@example.com", "password": password});
    let resp = apps[0].send(f.client.activate(&login)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let activated: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!((activated["id"].clone(), activated["is_trial"].clone()), (body["id"].clone(), json!(true)));
    let mut wrong = login.clone();
    wrong["password"] = json!("not-the-password");
    wrong["hardware_id"] = json!("dev-2");
    assert_error(&apps[0].send(f.client.activate(&wrong)).await, 400, "license_not_found");
    // The same device asking with another email gets its trial, without the password.
    let mut other = params.clone();
    other["email"] = json!("someone.else@example.com");
    let (_, theirs) = trial(&apps[0], &f.client, &other).await;
    assert_eq!((theirs["license_user"].clone(), theirs["initial_password"].clone()), (json!("new@example.com"), Value::Null));
    // Once the user has changed it, the initial password is no longer shown (nor valid).
    let change = json!({"username": "new@example.com", "password": password, "new_password": "my own secret"});
    let resp = apps[0].send(f.client.call(Endpoint::ChangePassword, &change)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let (_, after) = trial(&apps[1], &f.client, &params).await;
    assert_eq!((after["license_user"].clone(), after["initial_password"].clone(), after["id"].clone()), (json!("new@example.com"), Value::Null, body["id"].clone()));

    // A user who exists already gets the trial assigned and keeps their own password: none is shown.
    let existing = f.user_license(700, |_| {}).await;
    f.user("ann@example.com", 5, &[(&existing, 0)]).await;
    let mut params = trial_params("dev-3");
    params["email"] = json!("ann@example.com");
    let (_, body) = trial(&apps[0], &f.client, &params).await;
    assert_eq!((body["license_user"].clone(), body["initial_password"].clone()), (json!("ann@example.com"), Value::Null));
    let mut login = user_body("ann@example.com", "dev-3");
    login["product"] = json!(TRIAL_PRODUCT);
    let resp = apps[0].send(f.client.activate(&login)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let ann = f.store().get_user(&f.company, &Username::parse("ann@example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(ann.licenses.len(), 2, "the catalog's license and the trial: {ann:?}");
}

async fn license_policies_shape_the_trial(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(|p| {
        policies(p);
        p.trial_days = 7;
    }).await;
    // Without allow_trial and without a default trial policy, only a named trial policy makes a trial.
    assert_error(&f.app.send(f.client.call(Endpoint::TrialKey, &trial_params("dev-1"))).await, 400, "trial_not_allowed");
    let mut params = trial_params("dev-1");
    params["license_policy"] = json!("trial-30");
    let (_, body) = trial(&f.app, &f.client, &params).await;
    assert_eq!((body["trial_days"].clone(), body["max_activations"].clone()), (json!(30), json!(2)));
    params["license_policy"] = json!("full");
    params["hardware_id"] = json!("dev-2");
    assert_error(&f.app.send(f.client.call(Endpoint::TrialKey, &params)).await, 400, "trial_not_allowed");
    params["license_policy"] = json!("no-such-policy");
    assert_error(&f.app.send(f.client.call(Endpoint::TrialKey, &params)).await, 400, "trial_not_allowed");

    // The default trial policy applies when the request names none.
    f.put_product(|p| {
        policies(p);
        p.license_policies[0].default_trial = true;
    }).await;
    let (_, body) = trial(&f.app, &f.client, &trial_params("dev-3")).await;
    assert_eq!(body["trial_days"], 30);
}

async fn every_trial_key_exception(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(trial_product).await;
    let send = |params: Value| f.app.send(f.client.call(Endpoint::TrialKey, &params));
    assert_error(&send(json!({"product": "nope", "hardware_id": "h"})).await, 400, "unknown_product");
    assert_error(&send(json!({"hardware_id": "h"})).await, 400, "missing_parameters");
    assert_error(&send(json!({"product": TRIAL_PRODUCT})).await, 400, "missing_hardware_id");
    assert_error(&send(json!({"product": TRIAL_PRODUCT, "hardware_id": ""})).await, 400, "missing_hardware_id");
    assert_error(&send(json!({"product": TRIAL_PRODUCT, "hardware_id": "x".repeat(513)})).await, 400, "validation_error");
    assert_error(&send(json!({"product": "kp", "hardware_id": "h"})).await, 400, "trial_not_allowed");
    let mut params = trial_params("h");
    params["email"] = json!("not-an-email");
    assert_error(&send(params).await, 400, "validation_error");
    let mut params = trial_params("h");
    params["city"] = json!("x".repeat(256));
    assert_error(&send(params).await, 400, "validation_error");
    let mut params = trial_params("h");
    params["license_policy"] = json!("x".repeat(256));
    assert_error(&send(params).await, 400, "validation_error");
    // A user-based trial needs the deployment's sealing key: without one, a logged configuration error.
    f.put_product(|p| {
        user_trial_product(p);
        p.code = integration_tests::fixtures::product_code("p-user");
    }).await;
    let resp = send(json!({"product": "p-user", "hardware_id": "h", "email": "u@example.com"})).await;
    assert_eq!(resp.status(), 500, "{}", String::from_utf8_lossy(resp.body()));
    f.put_product(|p| {
        trial_product(p);
        p.disabled = true;
    }).await;
    assert_error(&send(trial_params("h")).await, 400, "disabled_product");
    f.put_product(|p| {
        trial_product(p);
        p.archived = true;
    }).await;
    assert_error(&send(trial_params("h")).await, 400, "archived_product");
    // Blacklisted devices, by the product or by the company, get no trial.
    f.put_product(|p| {
        trial_product(p);
        p.blacklist.insert(license_api::ids::HardwareId::parse("product-bad").unwrap());
    }).await;
    f.update_company(|c| {
        c.blacklist.insert(license_api::ids::HardwareId::parse("company-bad").unwrap());
    }).await;
    assert_error(&send(trial_params("product-bad")).await, 400, "blacklisted");
    assert_error(&send(trial_params("company-bad")).await, 400, "blacklisted");
    let read_only = f.put_key("ro-key", |k| k.read_only = true).await;
    assert_error(&f.app.send(read_only.call(Endpoint::TrialKey, &trial_params("h"))).await, 400, "read_only_api_key");
    assert_eq!(stored_licenses(&f).await, 0, "no refused request created anything");
}
}

fn trial_product_doc() -> ProductDoc {
    let mut p = ProductDoc {
        id: 98,
        name: "User trials".into(),
        ..ProductDoc::default()
    };
    trial_product(&mut p);
    p
}
