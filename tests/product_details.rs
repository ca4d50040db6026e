//! SPEC §9 `product_details`: a product named alone (no license, no device), with its custom fields and
//! latest version when asked for.

use integration_tests::fixtures::KEY_PRODUCT;
use integration_tests::{assert_error, Fixture};
use license_api::handlers::Endpoint;
use license_api::model::{CustomField, ProductDoc, ProductVersion};
use license_api::time::Timestamp;
use serde_json::{json, Value};

fn version(version: &str, env: Option<&str>) -> ProductVersion {
    ProductVersion {
        version: version.into(),
        environment: env.map(str::to_owned),
        release_date: Timestamp::parse_iso("2026-11-01T00:00:00Z"),
        url: Some(format!("https://downloads.example.com/{version}")),
        md5_hash: None,
        requires_version: None,
    }
}

fn shaped(p: &mut ProductDoc) {
    p.allow_trial = true;
    p.trial_days = 14;
    p.metadata = json!({"edition": "pro"}).as_object().unwrap().clone();
    p.custom_fields = vec![CustomField {
        name: "tier".into(),
        data_type: "text".into(),
        value: "gold".into(),
    }];
    p.versions = vec![
        version("1.0", Some("linux")),
        version("1.1", Some("win64")),
        version("1.2", Some("linux")),
    ];
}

integration_tests::matrix! {
async fn product_details_answer_the_product(setup) {
    let f = Fixture::new(setup).await;
    f.put_product(shaped).await;
    let details = |params: Value| f.app.send(f.client.call(Endpoint::ProductDetails, &params));
    let resp = details(json!({"product": "p-custom"})).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    let body: Value = serde_json::from_slice(&f.client.verify_body(&resp).expect("signed")).unwrap();
    assert_eq!(body["product_id"], 99);
    assert_eq!(body["product_name"], "Custom");
    assert_eq!(body["short_code"], "p-custom");
    assert_eq!(body["authorization_method"], "license-key");
    assert_eq!((body["allow_trial"].clone(), body["trial_days"].clone()), (json!(true), json!(14)));
    assert_eq!(body["metadata"], json!({"edition": "pro"}));
    for key in ["prevent_vm", "allow_overages", "max_overages", "floating_timeout", "validity_period"] {
        assert!(body.get(key).is_some(), "{key} present: {body}");
    }
    assert!(body.get("custom_fields").is_none() && body.get("latest_version").is_none(), "only when asked: {body}");

    let resp = details(json!({"product": "p-custom", "include_custom_fields": "true", "include_latest_version": "true"})).await;
    let body: Value = serde_json::from_slice(&f.client.verify_body(&resp).expect("signed")).unwrap();
    assert_eq!(body["custom_fields"], json!([{"name": "tier", "data_type": "text", "value": "gold"}]));
    assert_eq!(body["latest_version"]["version"], "1.2", "the last listed: {body}");
    assert_eq!(body["latest_version"]["url"], "https://downloads.example.com/1.2");
    assert_eq!(body["latest_version"]["release_date"], "2026-11-01T00:00:00.000Z");

    let resp = details(json!({"product": "p-custom", "include_latest_version": "true", "env": "win64"})).await;
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["latest_version"]["version"], "1.1", "the environment's own");
    let resp = details(json!({"product": "p-custom", "include_latest_version": "true", "env": "mac"})).await;
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["latest_version"], Value::Null, "none for that environment: {body}");
    // A product without custom fields answers an empty list.
    let resp = details(json!({"product": KEY_PRODUCT, "include_custom_fields": true})).await;
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["custom_fields"], json!([]));
}

async fn every_product_details_exception(setup) {
    let f = Fixture::new(setup).await;
    let details = |params: Value| f.app.send(f.client.call(Endpoint::ProductDetails, &params));
    assert_error(&details(json!({"product": "nope"})).await, 400, "unknown_product");
    assert_error(&details(json!({})).await, 400, "missing_parameters");
    assert_error(&details(json!({"product": KEY_PRODUCT, "include_latest_version": "maybe"})).await, 400, "validation_error");
    f.put_product(|p| p.archived = true).await;
    assert_error(&details(json!({"product": "p-custom"})).await, 400, "archived_product");
    f.put_product(|p| p.disabled = true).await;
    assert_error(&details(json!({"product": "p-custom"})).await, 400, "disabled_product");
    // A key restricted to other products may not read this one; a read-only key may.
    let other = f.put_key("other-products", |k| k.products = vec![license_api::ids::ProductCode::parse("up").unwrap()]).await;
    assert_error(&f.app.send(other.call(Endpoint::ProductDetails, &json!({"product": KEY_PRODUCT}))).await, 400, "api_key_product_not_allowed");
    let read_only = f.put_key("read-only-pd", |k| k.read_only = true).await;
    assert_eq!(f.app.send(read_only.call(Endpoint::ProductDetails, &json!({"product": KEY_PRODUCT}))).await.status(), 200);
    let unsigned = http::Request::get(format!("{}?product={KEY_PRODUCT}", Endpoint::ProductDetails.path()))
        .body(bytes::Bytes::new())
        .unwrap();
    assert_error(&f.app.send(unsigned).await, 400, "missing_headers");
}
}
