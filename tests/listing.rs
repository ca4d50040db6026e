//! Listing, search and `import --prune` on every setup (docs/management-listing.md, docs/catalog.md):
//! pages return every license exactly once; a search by hardware id finds exactly the licenses holding
//! that device, and by key, customer email (any case) and order id the license that has it; a foreign
//! cursor is the caller's error. A dry run with `--prune` writes nothing and lists each removal;
//! `--prune` removes only what the catalog wrote (a trial survives), with its devices, one
//! `import.delete` record each, and the License API answers `license_not_found` for it afterwards;
//! likewise the catalog's license users, API keys and OAuth clients it no longer names (not those
//! created otherwise, nor a user still assigned to a license that stays).

use integration_tests::fixtures::{
    hw, key_body, product_code, user_body, API_KEY, KEY_PRODUCT, PASSWORD, SHARED_KEY, USER_PRODUCT,
};
use integration_tests::interleave::Interleave;
use integration_tests::{assert_error, Fixture};
use license_api::audit::{license_subject, AuditFilter};
use license_api::auth::Principal;
use license_api::catalog::{import, import_sealed, import_with, Catalog, ImportOptions};
use license_api::error::ApiError;
use license_api::handlers::Endpoint;
use license_api::ids::{ApiKeyId, LicenseKey, OAuthClientId, OrderId, Username};
use license_api::management::search::{
    list_licenses_in, search_licenses_in, LicensePage, ListLicenses, SearchLicenses,
};
use license_api::model::{License, LicenseSource};
use license_api::plan::LicenseAddr;
use license_api::sealed::SealingKey;
use license_api::store::listing::{LicenseQuery, MAX_PAGE};
use license_api::time::Timestamp;
use serde_json::json;
use std::collections::BTreeSet;

/// Company `c1` as the fixture has it, with product `kp` (trials allowed) and a license per key: id
/// `i + 1`, customer `Buyer<i>@Example.com`, order `order-<i>`.
fn catalog(keys: &[&str]) -> Catalog {
    let licenses: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            json!({"id": i + 1, "product": KEY_PRODUCT, "license_key": k, "max_activations": 5,
                   "customer": {"email": format!("Buyer{i}@Example.com")}, "order_store_id": format!("order-{i}")})
        })
        .collect();
    let doc = json!({"companies": [{"code": "c1", "id": 7,
        "api_keys": [{"api_key": API_KEY, "shared_key": SHARED_KEY}],
        "products": [{"short_code": KEY_PRODUCT, "id": 11, "allow_trial": true, "trial_days": 14}],
        "licenses": licenses}]});
    Catalog::parse(&doc.to_string(), "listing.json").expect("a valid catalog")
}

fn cli(f: &Fixture) -> Principal {
    Principal::cli(f.company.clone())
}

async fn search(f: &Fixture, input: SearchLicenses) -> BTreeSet<String> {
    let page = search_licenses_in(f.store(), &cli(f), input).await.unwrap();
    assert_eq!(page.cursor, None);
    keys_of(&page)
}

fn keys_of(page: &LicensePage) -> BTreeSet<String> {
    page.licenses
        .iter()
        .map(|l| l.license_key.as_ref().map_or(format!("#{}", l.id), |k| k.to_string()))
        .collect()
}

async fn activate(f: &Fixture, key: &str, hardware_id: &str) {
    let resp = f.app.send(f.client.activate(&key_body(key, hardware_id))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}

fn license(f: &Fixture, product: &str, id: i64) -> License {
    License {
        source: Some(LicenseSource::Catalog),
        ..License::new(id, f.company.clone(), product_code(product), None)
    }
}

integration_tests::matrix! {
// 120 licenses of one product and 5 of another: pages of 50 return each exactly once (50, 50, then the
// rest of the company's), a product's listing only its own, a principal restricted to a product only
// that product's, and a cursor of another listing is refused.
async fn pages_return_every_license_exactly_once(setup) {
    let f = Fixture::new(setup).await;
    for id in 1..=120 {
        f.store().put_license(&license(&f, USER_PRODUCT, id)).await.unwrap();
    }
    for id in 1..=5 {
        f.store().put_license(&license(&f, KEY_PRODUCT, 1000 + id)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let input = ListLicenses { product: None, cursor: cursor.clone(), limit: Some(50) };
        let page = list_licenses_in(f.store(), &cli(&f), input).await.unwrap();
        sizes.push(page.licenses.len());
        seen.extend(page.licenses.iter().map(|l| (l.product.to_string(), l.id)));
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 125, "every license once: {sizes:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 125, "no license twice");
    assert!(sizes.iter().all(|n| *n <= 50) && sizes[..2] == [50, 50], "{sizes:?}");

    let mut products = BTreeSet::new();
    let mut cursor = None;
    let mut count = 0;
    loop {
        let input = ListLicenses { product: Some(product_code(KEY_PRODUCT)), cursor, limit: Some(2) };
        let page = list_licenses_in(f.store(), &cli(&f), input).await.unwrap();
        count += page.licenses.len();
        products.extend(page.licenses.iter().map(|l| l.product.to_string()));
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!((count, products), (5, BTreeSet::from([KEY_PRODUCT.to_owned()])));

    let foreign = ListLicenses { product: None, cursor: Some("LICENSE#other#up#ID#1".into()), limit: None };
    let refused = list_licenses_in(f.store(), &cli(&f), foreign).await.unwrap_err();
    assert!(matches!(refused, ApiError::Validation(_)), "{refused:?}");
    // A principal restricted to `kp` sees only its licenses, and may not name another product.
    let restricted = Principal { products: vec![product_code(KEY_PRODUCT)], ..cli(&f) };
    let first = ListLicenses { limit: Some(100), ..ListLicenses::default() };
    let page = list_licenses_in(f.store(), &restricted, first).await.unwrap();
    assert_eq!(page.licenses.iter().map(|l| l.product.to_string()).collect::<Vec<_>>(), vec![KEY_PRODUCT; 5]);
    let other = ListLicenses { product: Some(product_code(USER_PRODUCT)), ..ListLicenses::default() };
    assert!(matches!(list_licenses_in(f.store(), &restricted, other).await, Err(ApiError::ApiKeyProductNotAllowed)));
    let too_many = ListLicenses { limit: Some(101), ..ListLicenses::default() };
    assert!(matches!(list_licenses_in(f.store(), &cli(&f), too_many).await, Err(ApiError::Validation(_))));
    // The store takes any limit as 1 to MAX_PAGE, whichever caller passes it.
    let every = LicenseQuery { company: f.company.clone(), product: None, search: None };
    for (limit, expected) in [(0, 1), (10_000, MAX_PAGE)] {
        let page = f.store().find_licenses(&every, None, limit).await.unwrap();
        assert_eq!((page.licenses.len(), page.cursor.is_some()), (expected, true), "limit {limit}");
    }
}

// Devices activated through the License API: a hardware id finds exactly the licenses holding it; a
// key, an email (in another case) and an order id find their license; two terms at once are refused.
async fn searches_find_exactly_the_licenses_that_match(setup) {
    let f = Fixture::new(setup).await;
    import(f.store(), &catalog(&["L-1", "L-2", "L-3"])).await.unwrap();
    activate(&f, "L-1", "hw-shared").await;
    activate(&f, "L-3", "hw-shared").await;
    activate(&f, "L-2", "hw-other").await;
    let by_hw = |h: &str| SearchLicenses { hardware_id: Some(hw(h)), ..SearchLicenses::default() };
    assert_eq!(search(&f, by_hw("hw-shared")).await, BTreeSet::from(["L-1".to_owned(), "L-3".to_owned()]));
    assert_eq!(search(&f, by_hw("hw-other")).await, BTreeSet::from(["L-2".to_owned()]));
    assert_eq!(search(&f, by_hw("hw-none")).await, BTreeSet::new());

    let key = SearchLicenses { key: Some(LicenseKey::parse("L-2").unwrap()), ..SearchLicenses::default() };
    assert_eq!(search(&f, key).await, BTreeSet::from(["L-2".to_owned()]));
    let email = SearchLicenses { email: Some(Username::parse("BUYER2@example.COM").unwrap()), ..SearchLicenses::default() };
    assert_eq!(search(&f, email).await, BTreeSet::from(["L-3".to_owned()]));
    let order = SearchLicenses { order_id: Some(OrderId::parse("order-0").unwrap()), ..SearchLicenses::default() };
    assert_eq!(search(&f, order).await, BTreeSet::from(["L-1".to_owned()]));

    let two = SearchLicenses {
        key: Some(LicenseKey::parse("L-2").unwrap()),
        order_id: Some(OrderId::parse("order-0").unwrap()),
        ..SearchLicenses::default()
    };
    assert!(matches!(search_licenses_in(f.store(), &cli(&f), two).await, Err(ApiError::Validation(_))));
    assert!(matches!(
        search_licenses_in(f.store(), &cli(&f), SearchLicenses::default()).await,
        Err(ApiError::Validation(_))
    ));
}

// The catalog drops L-2 (with a device) and L-3; a trial of the product exists. Without --prune the
// dry run counts them and nothing is removed; the dry run with --prune lists both and writes nothing;
// --prune removes exactly those two with their device, records one `import.delete` each, and the
// License API answers `license_not_found` for them while L-1 and the trial still work.
async fn prune_removes_only_what_the_catalog_wrote(setup) {
    let f = Fixture::new(setup).await;
    import(f.store(), &catalog(&["L-1", "L-2", "L-3"])).await.unwrap();
    activate(&f, "L-2", "hw-2").await;
    let resp = f.app.send(f.client.call(Endpoint::TrialKey, &json!({"product": KEY_PRODUCT, "hardware_id": "hw-trial"}))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let trial_key: String = serde_json::from_slice::<serde_json::Value>(resp.body()).unwrap()["license"].as_str().unwrap().into();
    activate(&f, &trial_key, "hw-trial").await;

    let smaller = catalog(&["L-1"]);
    let before = f.env.dump().await;
    let counted = import_with(f.store(), &smaller, None, ImportOptions { dry_run: true, ..ImportOptions::default() }).await.unwrap();
    assert_eq!((counted.prunable, counted.prunable_beside, counted.removals.len()), (2, 1, 0));
    let preview = ImportOptions { dry_run: true, prune: true, ..ImportOptions::default() };
    let dry = import_with(f.store(), &smaller, None, preview).await.unwrap();
    let lines: Vec<String> = dry.removals.iter().map(|r| r.describe()).collect();
    assert_eq!(lines, [
        "delete license c1/kp L-2 and the 1 item(s) beside it (devices, seats, markers)",
        "delete license c1/kp L-3 and the 0 item(s) beside it (devices, seats, markers)",
    ]);
    assert_eq!(f.env.dump().await, before, "a dry run writes nothing");
    import_with(f.store(), &smaller, None, ImportOptions::default()).await.unwrap();
    assert_eq!(f.env.dump().await, before, "without --prune nothing is removed (and L-1 is unchanged)");

    let done = import_with(f.store(), &smaller, None, ImportOptions { prune: true, ..ImportOptions::default() }).await.unwrap();
    assert_eq!(done.removals, dry.removals, "the import removes what the preview listed");
    for gone in ["L-2", "L-3"] {
        assert_error(&f.app.send(f.client.check(&key_body(gone, "hw-2"))).await, 400, "license_not_found");
        let addr = key_addr(&f, gone);
        assert_eq!(f.store().get_license(&addr).await.unwrap().map(|l| l.id), None);
        assert_eq!(f.store().items_beside(&addr).await.unwrap(), vec![], "its device went too");
    }
    for kept in ["L-1", &trial_key] {
        let resp = f.app.send(f.client.check(&key_body(kept, if kept == "L-1" { "hw-x" } else { "hw-trial" }))).await;
        assert_ne!(error_code(&resp), Some("license_not_found".into()), "{kept} stays");
    }
    let records = f.store().audit_records(&f.company, &AuditFilter::default(), None, 1000, Timestamp::now()).await.unwrap();
    let deleted: Vec<&str> = records.records.iter().filter(|r| r.action == "import.delete").map(|r| r.subject.as_str()).collect();
    let subject = |k: &str| license_subject(&key_addr(&f, k));
    assert_eq!(deleted.iter().collect::<BTreeSet<_>>(), BTreeSet::from([&subject("L-2").as_str(), &subject("L-3").as_str()]));
    assert_eq!(deleted.len(), 2, "one record per removal");

    let again = import_with(f.store(), &smaller, None, ImportOptions { prune: true, ..ImportOptions::default() }).await.unwrap();
    assert_eq!(again.removals.len(), 0, "nothing left to prune");
}

// A device activated on the dropped license after the prune read it and before the license's deletion
// is removed too (the sweep after the writes); an activation after the deletion is `license_not_found`.
async fn a_device_activated_while_pruning_goes_with_the_license(setup) {
    let f = Fixture::new(setup).await;
    import(f.store(), &catalog(&["L-1", "L-2"])).await.unwrap();
    activate(&f, "L-2", "hw-before").await;
    let other = f.env.instance().await;
    let racing = f.client.activate(&key_body("L-2", "hw-racing"));
    let store = Interleave::new(f.env.new_store(), move || {
        Box::pin(async move { assert_eq!(other.send(racing).await.status(), 200) })
    });
    let options = ImportOptions { prune: true, ..ImportOptions::default() };
    let done = import_with(&store, &catalog(&["L-1"]), None, options).await.unwrap();
    assert_eq!(done.removals[0].beside.len(), 1, "the plan read one device");
    assert_eq!(f.store().items_beside(&key_addr(&f, "L-2")).await.unwrap(), vec![], "both devices went");
    assert_error(&f.app.send(f.client.activate(&key_body("L-2", "hw-after"))).await, 400, "license_not_found");
    assert_eq!(f.store().items_beside(&key_addr(&f, "L-2")).await.unwrap(), vec![]);
}

// The catalog drops user `drop@` (and its license), API key `k-drop` and OAuth client `oc-drop`, and
// user `held@`, whom support assigned to a license the import keeps. A plain dry run counts the three;
// the dry run with --prune names each, says why `held@` stays, and writes nothing; --prune removes the
// three with one `import.delete` record each and keeps `held@` and every management-created or
// unknown-source key, client and user. Then the removed key is `invalid_api_key` (on a fresh instance:
// no cached key) and the removed user's activation `license_not_found`.
async fn prune_removes_the_users_keys_and_clients_the_catalog_dropped(setup) {
    let f = Fixture::new(setup).await;
    let (sealing_key, _) = SealingKey::generate().unwrap();
    let management = |source: &mut Option<LicenseSource>| *source = Some(LicenseSource::Management);
    f.put_key("k-mgmt", |k| management(&mut k.source)).await;
    f.put_key("k-unknown", |_| {}).await;
    f.put_oauth_client("oc-mgmt", &sealing_key, |c| management(&mut c.source)).await;
    f.put_oauth_client("oc-unknown", &sealing_key, |_| {}).await;
    let kept_license = f.user_license(9, |_| {}).await;
    let mut mgmt_user = f.user("mgmt@example.com", 20, &[]).await;
    mgmt_user.source = Some(LicenseSource::Management);
    f.store().put_user(&f.company, &mgmt_user).await.unwrap();
    f.user("unknown@example.com", 21, &[]).await;
    import_sealed(f.store(), &owned_catalog(true), Some(&sealing_key)).await.unwrap();
    let held = Username::parse("held@example.com").unwrap();
    let mut user = f.store().get_user(&f.company, &held).await.unwrap().unwrap();
    user.licenses.push((kept_license.product.clone(), kept_license.id));
    f.store().put_user(&f.company, &user).await.unwrap();
    let before_prune = f.env.instance().await;
    let dropped_key = before_prune.client("k-drop", "k-drop-secret");
    assert_eq!(before_prune.send(dropped_key.activate(&user_body("drop@example.com", "hw-1"))).await.status(), 200);

    let smaller = owned_catalog(false);
    let before = f.env.dump().await;
    let counted = import_with(f.store(), &smaller, None, ImportOptions { dry_run: true, ..ImportOptions::default() }).await.unwrap();
    assert_eq!((counted.prunable, counted.prunable_items, counted.item_removals.len()), (1, 3, 0));
    let preview = ImportOptions { dry_run: true, prune: true, ..ImportOptions::default() };
    let dry = import_with(f.store(), &smaller, None, preview).await.unwrap();
    let lines: Vec<String> = dry.item_removals.iter().map(|r| r.describe()).collect();
    assert_eq!(lines, [
        "delete license user c1/drop@example.com (no longer in the catalog)",
        "delete API key k-drop (no longer in the catalog)",
        "delete OAuth client oc-drop (no longer in the catalog)",
    ]);
    assert!(dry.kept.iter().any(|l| l.starts_with("keep license user c1/held@example.com") && l.contains("assigned to 1 license(s)")), "{:?}", dry.kept);
    assert_eq!(f.env.dump().await, before, "a dry run writes nothing");

    let done = import_with(f.store(), &smaller, None, ImportOptions { prune: true, ..ImportOptions::default() }).await.unwrap();
    assert_eq!(done.item_removals, dry.item_removals, "the import removes what the preview listed");
    for (email, stays) in [("drop@example.com", false), ("held@example.com", true), ("mgmt@example.com", true), ("unknown@example.com", true)] {
        let stored = f.store().get_user(&f.company, &Username::parse(email).unwrap()).await.unwrap();
        assert_eq!(stored.is_some(), stays, "{email}");
    }
    for (key, stays) in [("k-drop", false), ("k-mgmt", true), ("k-unknown", true), (API_KEY, true)] {
        assert_eq!(f.store().api_key(&ApiKeyId::parse(key).unwrap()).await.unwrap().is_some(), stays, "{key}");
    }
    for (client, stays) in [("oc-drop", false), ("oc-mgmt", true), ("oc-unknown", true)] {
        assert_eq!(f.store().oauth_client(&OAuthClientId::parse(client).unwrap()).await.unwrap().is_some(), stays, "{client}");
    }
    let fresh = f.env.instance().await;
    let dropped_key = fresh.client("k-drop", "k-drop-secret");
    assert_error(&fresh.send(dropped_key.activate(&user_body("held@example.com", "hw-2"))).await, 400, "invalid_api_key");
    assert_error(&fresh.send(f.client.activate(&user_body("drop@example.com", "hw-3"))).await, 400, "license_not_found");

    let records = f.store().audit_records(&f.company, &AuditFilter::default(), None, 1000, Timestamp::now()).await.unwrap();
    let mut deleted: Vec<&str> = records.records.iter().filter(|r| r.action == "import.delete").map(|r| r.subject.as_str()).collect();
    deleted.sort();
    assert_eq!(deleted, ["api_key:k-drop", "license:up/id/1", "oauth_client:oc-drop", "user:drop@example.com"], "one record per removal");
    let again = import_with(f.store(), &smaller, None, ImportOptions { prune: true, ..ImportOptions::default() }).await.unwrap();
    assert_eq!(again.item_removals.len(), 0, "nothing left to prune");
}
}

/// Company `c1` owning (through the catalog) API key `api-key-1` and, when `full`, API key `k-drop`,
/// OAuth client `oc-drop`, and users `drop@` (with license `up` #1) and `held@`.
fn owned_catalog(full: bool) -> Catalog {
    let mut company = json!({"code": "c1", "id": 7,
        "api_keys": [{"api_key": API_KEY, "shared_key": SHARED_KEY}],
        "products": [{"short_code": KEY_PRODUCT, "id": 11}, {"short_code": USER_PRODUCT, "id": 12, "authorization_method": "user"}]});
    if full {
        company["api_keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({"api_key": "k-drop", "shared_key": "k-drop-secret"}));
        company["oauth_clients"] = json!([{"client_id": "oc-drop", "client_secret": "oc-drop-secret-0123456789"}]);
        company["license_users"] = json!([{"id": 1, "email": "drop@example.com", "password": PASSWORD},
                                          {"id": 2, "email": "held@example.com", "password": PASSWORD}]);
        company["licenses"] = json!([{"id": 1, "product": USER_PRODUCT, "max_activations": 5,
                                      "users": [{"email": "drop@example.com", "max_activations": 2}]}]);
    }
    Catalog::parse(&json!({"companies": [company]}).to_string(), "owned.json").expect("a valid catalog")
}

/// The SPEC error code of an answer, if it is an error.
fn error_code(resp: &http::Response<bytes::Bytes>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(resp.body()).ok()?;
    v.get("code")?.as_str().map(str::to_owned)
}

/// The address of the fixture company's `kp` license with this key.
fn key_addr(f: &Fixture, key: &str) -> LicenseAddr {
    LicenseAddr::Key {
        company: f.company.clone(),
        product: product_code(KEY_PRODUCT),
        key: LicenseKey::parse(key).unwrap(),
    }
}
