//! The Management API's lists of products, license users, API keys and OAuth clients
//! (docs/management-resources.md, *Lists*) through HTTP on every setup: pages return every item exactly
//! once, a deleted one is not listed, no secret, hash or password is in any list, a mangled cursor or
//! limit is `validation_error`, and another company's key sees none of them; a principal restricted to
//! some products sees only what they allow. On DynamoDB, `reindex` gives items written without index
//! attributes their entries (they are then listed and found), changes nothing the second time, and
//! never brings back an item deleted after the scan read it.

use crate::management::{call, new_key, request};
use integration_tests::counter::RoundTrips;
use integration_tests::fixtures::{product_code, API_KEY, KEY_PRODUCT, SHARED_KEY, USER_PRODUCT};
use integration_tests::{assert_error, client, Backend, Fixture, Setup, Transport};
use license_api::auth::Principal;
use license_api::ids::{HardwareId, LicenseKey};
use license_api::management::lists::{self, ListItems};
use license_api::management::search::{search_licenses_in, SearchLicenses};
use license_api::model::LicenseUser;
use license_api::sealed::SealingKey;
use license_api::store::dynamo::{Backfill, DynamoStore};
use license_api::store::listing::ItemKind;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Every page of `GET path` (`?limit=` included) as one list of `field`'s entries' `name`, and the
/// sizes of the pages; each page's body must hold none of `secrets`.
async fn all_pages(
    f: &Fixture,
    token: &str,
    path: &str,
    field: &str,
    name: &str,
    secrets: &[String],
) -> (Vec<String>, Vec<usize>) {
    let (mut names, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let at = match &cursor {
            Some(c) => format!(
                "{path}&cursor={}",
                url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
            ),
            None => path.to_owned(),
        };
        let (status, page) = call(f, "GET", &at, token, None).await;
        assert_eq!(status, 200, "{page}");
        let text = page.to_string();
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
        let entries = page[field].as_array().unwrap_or_else(|| panic!("{page}"));
        sizes.push(entries.len());
        names.extend(entries.iter().map(|e| e[name].as_str().unwrap().to_owned()));
        cursor = page["cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return (names, sizes);
        }
    }
}

fn once(names: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(set.len(), names.len(), "an item listed twice: {names:?}");
    set
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn user(id: i64, hash: Option<&str>) -> LicenseUser {
    let email = format!("user{id:03}@example.com");
    serde_json::from_value(json!({"id": id, "email": email, "password_hash": hash})).unwrap()
}

integration_tests::matrix! {
// 120 users (one deleted) in pages of 50; products, API keys and OAuth clients created through the
// routes beside the fixture's, in pages of 2: each exactly once, nothing secret in any page.
async fn every_item_is_listed_exactly_once_and_no_secret(setup) {
    let f = Fixture::new(setup).await;
    let (token, _) = new_key(&f, "c1", true).await;
    let (writer, _) = new_key(&f, "c1", false).await;
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    for id in 1..=120 {
        f.store().put_user(&f.company, &user(id, Some(hash))).await.unwrap();
    }
    assert_eq!(call(&f, "DELETE", "/users/user007@example.com", &writer, None).await.0, 200);
    let mut secrets = vec![hash.to_owned(), SHARED_KEY.to_owned(), "password_hash".into(), "secret".into()];

    for code in ["p1", "p2", "p3"] {
        let (status, body) = call(&f, "POST", "/products", &writer, Some(json!({"short_code": code, "name": code}))).await;
        assert_eq!(status, 201, "{body}");
    }
    for id in ["made-1", "made-2", "made-3"] {
        let (status, body) = call(&f, "POST", "/api-keys", &writer, Some(json!({"api_key": id}))).await;
        assert_eq!(status, 201, "{body}");
        secrets.push(body["shared_key"].as_str().unwrap().to_owned());
    }
    let (key, _) = SealingKey::generate().unwrap();
    let sealed = f.env.configured_instance(|s| s.with_sealing_key(Some(key))).await;
    for id in ["cl-1", "cl-2"] {
        let resp = sealed.send(request("POST", "/oauth-clients", Some(&writer), Some(json!({"client_id": id})))).await;
        let body: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(resp.status(), 201, "{body}");
        secrets.push(body["client_secret"].as_str().unwrap().to_owned());
    }

    let (users, sizes) = all_pages(&f, &token, "/users?limit=50", "users", "email", &secrets).await;
    let expected: BTreeSet<String> = (1..=120).filter(|i| *i != 7).map(|i| user(i, None).email.to_string()).collect();
    assert_eq!(once(&users), expected, "every user once, the deleted one not: {sizes:?}");
    assert_eq!(sizes[..2], [50, 50], "{sizes:?}");
    let (products, _) = all_pages(&f, &token, "/products?limit=2", "products", "code", &secrets).await;
    assert_eq!(once(&products), set(&[KEY_PRODUCT, USER_PRODUCT, "p1", "p2", "p3"]));
    let (keys, _) = all_pages(&f, &token, "/api-keys?limit=2", "api_keys", "api_key", &secrets).await;
    assert_eq!(once(&keys), set(&[API_KEY, "made-1", "made-2", "made-3"]));
    let (clients, _) = all_pages(&f, &token, "/oauth-clients?limit=1", "oauth_clients", "client_id", &secrets).await;
    assert_eq!(once(&clients), set(&["cl-1", "cl-2"]));

    for bad in ["/users?limit=0", "/users?limit=101", "/products?cursor=a%23b", "/users?colour=red"] {
        assert_error(&f.app.send(request("GET", bad, Some(&token), None)).await, 400, "validation_error");
    }
    let (other, _) = new_key(&f, "c2", true).await;
    for (path, field) in [("/products", "products"), ("/users", "users"), ("/api-keys", "api_keys"), ("/oauth-clients", "oauth_clients")] {
        let (status, page) = call(&f, "GET", path, &other, None).await;
        assert_eq!((status, page[field].clone(), page["cursor"].clone()), (200, json!([]), Value::Null), "{path}");
    }
}

// A principal restricted to `kp` sees that product only, every user, and only the credentials
// restricted to products it may name (not the fixture's key, which serves every product).
async fn a_restricted_principal_sees_only_what_its_products_allow(setup) {
    let f = Fixture::new(setup).await;
    f.store().put_user(&f.company, &user(1, None)).await.unwrap();
    f.put_key("kp-only", |k| k.products = vec![product_code(KEY_PRODUCT)]).await;
    f.put_key("kp-and-up", |k| k.products = vec![product_code(KEY_PRODUCT), product_code(USER_PRODUCT)]).await;
    let (key, _) = SealingKey::generate().unwrap();
    f.put_oauth_client("cl-kp", &key, |c| c.products = vec![product_code(KEY_PRODUCT)]).await;
    f.put_oauth_client("cl-all", &key, |_| {}).await;
    let restricted = Principal { products: vec![product_code(KEY_PRODUCT)], ..Principal::cli(f.company.clone()) };
    let state = &f.app.state;
    let all = ListItems::default;

    let products = lists::list_products(state, &restricted, all()).await.unwrap();
    assert_eq!(products.products.iter().map(|p| p.code.to_string()).collect::<Vec<_>>(), [KEY_PRODUCT]);
    let users = lists::list_users(state, &restricted, all()).await.unwrap();
    assert_eq!(users.users.iter().map(|u| u.email.to_string()).collect::<Vec<_>>(), ["user001@example.com"]);
    let keys = lists::list_api_keys(state, &restricted, all()).await.unwrap();
    assert_eq!(keys.api_keys.iter().map(|k| k.api_key.to_string()).collect::<Vec<_>>(), ["kp-only"]);
    let clients = lists::list_oauth_clients(state, &restricted, all()).await.unwrap();
    assert_eq!(clients.oauth_clients.iter().map(|c| c.client_id.to_string()).collect::<Vec<_>>(), ["cl-kp"]);

    let everyone = Principal::cli(f.company.clone());
    let keys = lists::list_api_keys(state, &everyone, all()).await.unwrap();
    assert_eq!(keys.api_keys.len(), 3, "an unrestricted principal sees every key");
}
}

/// The index attributes of every item of the table removed, as an item written before the indexes
/// existed has none; how many items had some.
async fn strip_index_attributes(location: &str) -> usize {
    let client = client(&RoundTrips::default());
    let scan = client
        .scan()
        .table_name(location)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let mut stripped = 0;
    for item in scan.items() {
        if !item.keys().any(|a| a.starts_with("GSI")) {
            continue;
        }
        let key = [("PK", item["PK"].clone()), ("SK", item["SK"].clone())];
        let names: Vec<&String> = item.keys().filter(|a| a.starts_with("GSI")).collect();
        client
            .update_item()
            .table_name(location)
            .set_key(Some(key.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
            .update_expression(format!(
                "REMOVE {}",
                names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            ))
            .send()
            .await
            .unwrap();
        stripped += 1;
    }
    stripped
}

// Items written before the indexes (stripped of them here): not listed, not found; `reindex` indexes
// each of them, after which they are listed and found; a second run indexes nothing; and an item
// deleted after the scan read it stays deleted.
#[tokio::test]
async fn reindex_backfills_what_older_items_lack_once_and_resurrects_nothing() {
    let f = Fixture::new(Setup::new("reindex", Backend::DynamoDb, Transport::Http)).await;
    f.store().put_user(&f.company, &user(1, None)).await.unwrap();
    f.key_license("OLD-1", |_| {}).await;
    let activation = json!({"product": KEY_PRODUCT, "hardware_id": "hw-old", "license_key": "OLD-1"});
    assert_eq!(f.app.send(f.client.activate(&activation)).await.status(), 200);
    let stripped = strip_index_attributes(f.env.location()).await;
    // Products kp, up; user; API key; license; device.
    assert_eq!(stripped, 6);
    let cli = Principal::cli(f.company.clone());
    let f = &f;
    let listed = |kind| async move {
        f.store()
            .list_items(kind, &f.company, None, 100)
            .await
            .unwrap()
            .items
            .len()
    };
    let by_hw = || SearchLicenses {
        hardware_id: Some(HardwareId::parse("hw-old").unwrap()),
        ..SearchLicenses::default()
    };
    let by_key = || SearchLicenses {
        key: Some(LicenseKey::parse("OLD-1").unwrap()),
        ..SearchLicenses::default()
    };
    assert_eq!(
        (listed(ItemKind::Products).await, listed(ItemKind::Users).await),
        (0, 0),
        "not indexed yet"
    );
    assert!(search_licenses_in(f.store(), &cli, by_key())
        .await
        .unwrap()
        .licenses
        .is_empty());

    let store = DynamoStore::new(client(&RoundTrips::default()), f.env.location());
    let report = store.reindex().await.unwrap();
    assert_eq!(
        (report.indexed, report.changed_meanwhile, report.unreadable),
        (6, 0, 0),
        "{report:?}"
    );
    assert_eq!(
        (
            listed(ItemKind::Products).await,
            listed(ItemKind::Users).await,
            listed(ItemKind::ApiKeys).await
        ),
        (2, 1, 1)
    );
    assert_eq!(
        search_licenses_in(f.store(), &cli, by_key())
            .await
            .unwrap()
            .licenses
            .len(),
        1
    );
    assert_eq!(
        search_licenses_in(f.store(), &cli, by_hw())
            .await
            .unwrap()
            .licenses
            .len(),
        1
    );
    let again = store.reindex().await.unwrap();
    assert_eq!((again.indexed, again.complete), (0, report.indexed), "{again:?}");

    // A product the scan read, deleted before its update: the update is refused, nothing reappears.
    strip_index_attributes(f.env.location()).await;
    let raw = client(&RoundTrips::default());
    let key = [
        ("PK".to_owned(), license_api_s("PRODUCT#c1#up")),
        ("SK".to_owned(), license_api_s("#")),
    ];
    let read = raw
        .get_item()
        .table_name(f.env.location())
        .set_key(Some(key.clone().into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let stored = read.item().unwrap().clone();
    raw.delete_item()
        .table_name(f.env.location())
        .set_key(Some(key.clone().into()))
        .send()
        .await
        .unwrap();
    assert_eq!(store.backfill(&stored).await.unwrap(), Backfill::ChangedMeanwhile);
    let after = raw
        .get_item()
        .table_name(f.env.location())
        .set_key(Some(key.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(after.item().is_none(), "the deleted product stays deleted");
}

fn license_api_s(v: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned())
}

// `reindex` racing the deletion of half of 40 stripped users: every deleted user stays deleted (no
// update recreates an item), and every user left is listed afterwards (one more run indexes any the
// race left out as *changed meanwhile*, and then nothing is left to do).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reindex_racing_deletions_resurrects_none_and_misses_none() {
    let f = Fixture::new(Setup::new("reindex-race", Backend::DynamoDb, Transport::Http)).await;
    for id in 1..=40 {
        f.store().put_user(&f.company, &user(id, None)).await.unwrap();
    }
    strip_index_attributes(f.env.location()).await;
    let store = DynamoStore::new(client(&RoundTrips::default()), f.env.location());
    let deletions = async {
        for id in (1..=40).filter(|i| i % 2 == 0) {
            let item = license_api::store::write::Item::User(f.company.clone(), user(id, None).email);
            f.store()
                .write(&license_api::store::write::Write::delete(item))
                .await
                .unwrap();
        }
    };
    let (report, ()) = tokio::join!(store.reindex(), deletions);
    report.unwrap();
    store.reindex().await.unwrap();
    let listed = f
        .store()
        .list_items(ItemKind::Users, &f.company, None, 100)
        .await
        .unwrap();
    let emails: Vec<String> = listed
        .items
        .iter()
        .map(|i| match i {
            license_api::store::write::Image::User(u) => u.email.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    let odd: Vec<String> = (1..=40)
        .filter(|i| i % 2 == 1)
        .map(|i| user(i, None).email.to_string())
        .collect();
    assert_eq!(emails, odd, "every user left is listed, no deleted one");
    for id in (1..=40).filter(|i| i % 2 == 0) {
        assert!(
            f.store()
                .get_user(&f.company, &user(id, None).email)
                .await
                .unwrap()
                .is_none(),
            "user {id} came back"
        );
    }
    assert_eq!(store.reindex().await.unwrap().indexed, 0);
}
