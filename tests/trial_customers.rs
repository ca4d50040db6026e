//! Trials in their customer's index (SPEC §9 `trial_key` → `customer_license_users`): a trial
//! requested with an email is appended to that customer's index in the trial's own transaction, only
//! over the index as read — so racing trials for one customer are all listed — and a re-import of the
//! catalog keeps the entries of licenses it does not name.

use futures::future::join_all;
use integration_tests::fixtures::{product_code, USER_PRODUCT};
use integration_tests::{assert_error, Fixture, Instance};
use license_api::catalog::{import, Catalog};
use license_api::handlers::Endpoint;
use license_api::ids::Username;
use license_api::model::{AuthorizationMethod, ProductDoc};
use license_api::store::write::{Image, Item};
use serde_json::{json, Value};

const KEY_TRIAL: &str = "p-key-trial";
const USER_TRIAL: &str = "p-user-trial";

/// The fixture with a key-based and a user-based trial product, and [`Fixture::sealed_instances`].
async fn trial_products(f: &Fixture, n: usize) -> Vec<Instance> {
    for (id, code, method) in [
        (21, KEY_TRIAL, AuthorizationMethod::LicenseKey),
        (22, USER_TRIAL, AuthorizationMethod::User),
    ] {
        let product = ProductDoc {
            id,
            code: product_code(code),
            authorization_method: method,
            allow_trial: true,
            trial_days: 14,
            ..ProductDoc::default()
        };
        f.store().put_product(&f.company, &product).await.unwrap();
    }
    f.sealed_instances(n).await
}

/// A trial of `product` for device `hw` and customer `email`: the trial license's id.
async fn trial(f: &Fixture, app: &Instance, product: &str, hw: &str, email: &str) -> i64 {
    let params = json!({"product": product, "hardware_id": hw, "email": email});
    let resp = app.send(f.client.call(Endpoint::TrialKey, &params)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    body["id"].as_i64().expect("the trial's id")
}

/// The customer's index as stored: (product, license id, license users) per entry.
async fn index(f: &Fixture, email: &str) -> Vec<(String, i64, Vec<String>)> {
    let item = Item::Customer(f.company.clone(), Username::parse(email).unwrap());
    match f.store().load(&item).await.unwrap() {
        Some(Image::Customer(index)) => index
            .licenses
            .iter()
            .map(|l| {
                let users = l.users.iter().map(|u| u.as_str().to_owned()).collect();
                (l.product.as_str().to_owned(), l.id, users)
            })
            .collect(),
        None => Vec::new(),
        Some(other) => panic!("{item:?} read back as {other:?}"),
    }
}

/// `customer_license_users` for the customer on `product`: (email, license_id) per listed user.
async fn listed(f: &Fixture, product: &str, customer: &str) -> Vec<(String, i64)> {
    let params = json!({"product": product, "customer": customer});
    let resp = f.app.send(f.client.call(Endpoint::CustomerLicenseUsers, &params)).await;
    let body = f
        .client
        .verify_body(&resp)
        .unwrap_or_else(|e| panic!("customer_license_users: {e}: {}", String::from_utf8_lossy(resp.body())));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["customer"]["email"].as_str().map(str::to_lowercase).as_deref(),
        Some(customer),
        "{body}"
    );
    let users = body["users"].as_array().expect("a list of users");
    users
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap().to_owned(),
                u["license_id"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Every trial request fired at once, spread over the instances: one device each, one customer.
async fn race(f: &Fixture, apps: &[Instance], product: &str, email: &str, n: usize) -> Vec<i64> {
    let sends = (0..n).map(|i| {
        let params = json!({"product": product, "hardware_id": format!("racer-{i}"), "email": email});
        apps[i % apps.len()].send(f.client.call(Endpoint::TrialKey, &params))
    });
    let mut ids: Vec<i64> = join_all(sends)
        .await
        .into_iter()
        .map(|resp| {
            assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
            let body: Value = serde_json::from_slice(resp.body()).unwrap();
            body["id"].as_i64().expect("the trial's id")
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A catalog for the fixture's company: license 901 of `up` for customer buyer@example.com with ann
/// as its user; `more`: license 902 for them too, with bob. `up` offers trials.
fn catalog(more: bool) -> Catalog {
    let mut licenses = vec![
        json!({"id": 901, "product": USER_PRODUCT, "customer": {"email": "buyer@example.com"},
        "users": [{"email": "ann@example.com"}]}),
    ];
    if more {
        licenses.push(
            json!({"id": 902, "product": USER_PRODUCT, "customer": {"email": "buyer@example.com"},
            "users": [{"email": "bob@example.com"}]}),
        );
    }
    let text = json!({"companies": [{
        "code": "c1", "id": 7,
        "products": [{"short_code": USER_PRODUCT, "id": 12, "name": "User Product",
            "authorization_method": "user", "allow_trial": true, "trial_days": 14}],
        "license_users": [{"id": 191, "email": "ann@example.com"}, {"id": 192, "email": "bob@example.com"}],
        "licenses": licenses
    }]});
    Catalog::parse(&text.to_string(), "customers.json").expect("a valid catalog")
}

integration_tests::matrix! {
// A key-based trial is in its customer's index (without users: `customer_license_users` answers only
// for user-based products); a user-based trial lists its user with the trial's license id.
async fn a_trial_with_an_email_is_in_its_customer_s_index(setup) {
    let f = Fixture::new(setup).await;
    let apps = trial_products(&f, 1).await;
    let key_trial = trial(&f, &apps[0], KEY_TRIAL, "dev-1", "Tess@Example.com").await;
    assert_eq!(index(&f, "tess@example.com").await, [(KEY_TRIAL.to_owned(), key_trial, vec![])]);
    let params = json!({"product": KEY_TRIAL, "customer": "tess@example.com"});
    assert_error(&f.app.send(f.client.call(Endpoint::CustomerLicenseUsers, &params)).await, 400, "validation_error");

    let user_trial = trial(&f, &apps[0], USER_TRIAL, "dev-1", "tess@example.com").await;
    assert_eq!(listed(&f, USER_TRIAL, "tess@example.com").await, [("tess@example.com".to_owned(), user_trial)]);
    assert_eq!(
        index(&f, "tess@example.com").await,
        [
            (KEY_TRIAL.to_owned(), key_trial, vec![]),
            (USER_TRIAL.to_owned(), user_trial, vec!["tess@example.com".to_owned()])
        ]
    );
    // The same device asking again creates nothing: the index is unchanged.
    assert_eq!(trial(&f, &apps[0], USER_TRIAL, "dev-1", "tess@example.com").await, user_trial);
    assert_eq!(index(&f, "tess@example.com").await.len(), 2);
    // A trial without an email has no customer index.
    let resp = apps[0].send(f.client.call(Endpoint::TrialKey, &json!({"product": KEY_TRIAL, "hardware_id": "dev-2"}))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}

// Ten trials of ten devices for one customer at once, key-based (only the index condition orders
// them) and user-based (the user's record too): every one of them is in the index, and
// `customer_license_users` lists every user-based one.
async fn racing_trials_for_one_customer_are_all_indexed(setup) {
    let f = Fixture::new(setup).await;
    let apps = trial_products(&f, 4).await;
    let ids = race(&f, &apps, KEY_TRIAL, "racer@example.com", 10).await;
    let indexed = sorted(index(&f, "racer@example.com").await.into_iter().map(|(_, id, _)| id).collect());
    assert_eq!(indexed, ids, "all 10 key-based trials indexed");

    let ids = race(&f, &apps, USER_TRIAL, "racer@example.com", 10).await;
    let listed = listed(&f, USER_TRIAL, "racer@example.com").await;
    assert!(listed.iter().all(|(email, _)| email == "racer@example.com"), "{listed:?}");
    assert_eq!(sorted(listed.into_iter().map(|(_, id)| id).collect()), ids, "all 10 user-based trials listed");
    assert_eq!(index(&f, "racer@example.com").await.len(), 20);
}

// A re-import writes the index the catalog computes plus the entries of licenses it does not name: the
// trial stays listed, whether the catalog's part changed (902 added) or not.
async fn a_reimport_keeps_the_trials_in_the_index(setup) {
    let f = Fixture::new(setup).await;
    let apps = f.sealed_instances(1).await;
    import(f.store(), &catalog(false)).await.expect("import");
    let trial_id = trial(&f, &apps[0], USER_PRODUCT, "dev-1", "buyer@example.com").await;
    let before = [("ann@example.com".to_owned(), 901), ("buyer@example.com".to_owned(), trial_id)];
    assert_eq!(listed(&f, USER_PRODUCT, "buyer@example.com").await, before);

    let report = import(f.store(), &catalog(false)).await.expect("the same catalog again");
    assert!(report.changes.is_empty(), "nothing to write: {:?}", report.changes);
    assert_eq!(listed(&f, USER_PRODUCT, "buyer@example.com").await, before);

    import(f.store(), &catalog(true)).await.expect("re-import with license 902");
    assert_eq!(
        listed(&f, USER_PRODUCT, "buyer@example.com").await,
        [
            ("ann@example.com".to_owned(), 901),
            ("bob@example.com".to_owned(), 902),
            ("buyer@example.com".to_owned(), trial_id)
        ]
    );
}
}
