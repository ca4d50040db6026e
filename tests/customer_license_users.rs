//! `GET /api/v4/customer_license_users` (SPEC §9) on every setup: the license users of a customer's
//! licenses on a user-based product, found through the customer index the catalog import writes; an
//! unknown customer, a customer without licenses of the product and a stale index entry answer
//! `license_not_found`; key-based products are refused.

use integration_tests::fixtures::{KEY_PRODUCT, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::catalog::{import, Catalog};
use license_api::handlers::Endpoint;
use serde_json::{json, Value};

/// A catalog for the fixture's company `c1`: licenses 901 and 902 of `up` and 904 of `kp` belong to
/// customer Buyer@Example.com, 903 of `up` to other@example.com (`moved`: 903 belongs to the buyer too).
fn catalog(moved: bool) -> Catalog {
    let other = if moved {
        "buyer@example.com"
    } else {
        "other@example.com"
    };
    let text = json!({"companies": [{
        "code": "c1", "id": 7,
        "products": [
            {"short_code": KEY_PRODUCT, "id": 11, "name": "Key Product"},
            {"short_code": USER_PRODUCT, "id": 12, "name": "User Product", "authorization_method": "user"}
        ],
        "license_users": [
            {"id": 191, "email": "ann@example.com", "password": "ann-password", "first_name": "Ann"},
            {"id": 192, "email": "bob@example.com", "password": "bob-password", "last_name": "Bell"},
            {"id": 193, "email": "cat@example.com"}
        ],
        "licenses": [
            {"id": 901, "product": USER_PRODUCT, "max_activations": 3,
             "customer": {"email": "Buyer@Example.com", "company_name": "Buyer Inc", "first_name": "Jo", "metadata": {"tier": "gold"}},
             "users": [{"email": "ann@example.com", "max_activations": 2}, {"email": "bob@example.com", "max_activations": 0}]},
            {"id": 902, "product": USER_PRODUCT, "customer": {"email": "buyer@example.com", "company_name": "Buyer Inc (2)"},
             "users": [{"email": "cat@example.com", "max_activations": 5}]},
            {"id": 903, "product": USER_PRODUCT, "customer": {"email": other}, "users": [{"email": "bob@example.com"}]},
            {"id": 904, "product": KEY_PRODUCT, "license_key": "K-904", "customer": {"email": "buyer@example.com"}}
        ]
    }]});
    Catalog::parse(&text.to_string(), "customers.json").expect("a valid catalog")
}

fn ask(product: &str, customer: &str) -> Value {
    json!({"product": product, "customer": customer})
}

integration_tests::matrix! {
// The customer object of the customer's first license of the product, and every license user of each
// of their licenses of the product with that license's seat, in catalog order; no password or hash;
// licenses of other customers and of other products are not listed; the answer is signed.
async fn lists_the_users_of_the_customers_licenses(setup) {
    let f = Fixture::new(setup).await;
    import(f.store(), &catalog(false)).await.expect("import");
    let resp = f.app.send(f.client.call(Endpoint::CustomerLicenseUsers, &ask(USER_PRODUCT, " BUYER@example.com"))).await;
    let body = f
        .client
        .verify_body(&resp)
        .unwrap_or_else(|e| panic!("customer_license_users: {e}: {}", String::from_utf8_lossy(resp.body())));
    let body: Value = serde_json::from_slice(&body).unwrap();
    let customer = &body["customer"];
    assert_eq!(customer["email"], "Buyer@Example.com", "{body}");
    assert_eq!(customer["company_name"], "Buyer Inc");
    assert_eq!(customer["first_name"], "Jo");
    assert_eq!(customer["metadata"], json!({"tier": "gold"}));
    let users = body["users"].as_array().expect("a list of users");
    let listed: Vec<_> = users.iter().map(|u| (u["email"].clone(), u["license_id"].clone())).collect();
    assert_eq!(
        listed,
        [json!(["ann@example.com", 901]), json!(["bob@example.com", 901]), json!(["cat@example.com", 902])]
            .iter()
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect::<Vec<_>>(),
        "{body}"
    );
    assert_eq!(users[0]["id"], 191);
    assert_eq!(users[0]["first_name"], "Ann");
    assert_eq!(users[0]["max_activations"], 2);
    assert_eq!(users[0]["allow_unlimited_activations"], false);
    assert_eq!(users[1]["last_name"], "Bell");
    assert_eq!(users[1]["allow_unlimited_activations"], true);
    assert_eq!(users[2]["max_activations"], 5);
    for user in users {
        assert_eq!(user["total_activations"], 0);
        for field in ["password", "password_hash"] {
            assert!(user.get(field).is_none(), "{field}: {user}");
        }
    }
    assert!(!String::from_utf8_lossy(resp.body()).contains("argon2"), "no hash in the answer");
}

// Unknown customers and customers without a license of the product answer `license_not_found`; a
// key-based product, a missing or malformed customer and an unknown product are refused with their codes.
async fn refuses_unknown_customers_and_key_based_products(setup) {
    let f = Fixture::new(setup).await;
    import(f.store(), &catalog(false)).await.expect("import");
    let call = |params: Value| f.app.send(f.client.call(Endpoint::CustomerLicenseUsers, &params));
    let unknown = call(ask(USER_PRODUCT, "nobody@example.com")).await;
    assert_error(&unknown, 400, "license_not_found");
    assert_eq!(
        serde_json::from_slice::<Value>(unknown.body()).unwrap()["message"],
        "License with the provided customer not found"
    );
    assert_error(&call(ask(KEY_PRODUCT, "buyer@example.com")).await, 400, "validation_error");
    assert_error(&call(json!({"product": USER_PRODUCT})).await, 400, "missing_parameters");
    assert_error(&call(ask(USER_PRODUCT, "a\u{1}b")).await, 400, "validation_error");
    assert_error(&call(ask("nope", "buyer@example.com")).await, 400, "unknown_product");
}

// A re-import that gives license 903 to another customer rewrites both indexes; the old customer's
// index is not deleted (the catalog no longer names them), and the license's own `customer` decides:
// the stale entry is skipped, so they answer `license_not_found`, and the new owner lists 903's users.
async fn a_license_given_to_another_customer_leaves_the_old_one(setup) {
    let f = Fixture::new(setup).await;
    import(f.store(), &catalog(false)).await.expect("import");
    let call = |customer: &str| f.app.send(f.client.call(Endpoint::CustomerLicenseUsers, &ask(USER_PRODUCT, customer)));
    let before = call("other@example.com").await;
    assert_eq!(before.status(), 200, "{}", String::from_utf8_lossy(before.body()));
    let body: Value = serde_json::from_slice(before.body()).unwrap();
    assert_eq!(body["users"][0]["license_id"], 903, "{body}");
    import(f.store(), &catalog(true)).await.expect("re-import");
    assert_error(&call("other@example.com").await, 400, "license_not_found");
    let resp = call("buyer@example.com").await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    let ids: Vec<_> = body["users"].as_array().unwrap().iter().map(|u| u["license_id"].clone()).collect();
    assert_eq!(ids, [json!(901), json!(901), json!(902), json!(903)], "{body}");
}
}
