//! The Management API (docs/management.md) on every setup — the HTTP server's listener, and the
//! `management` Lambda function: a license's whole life through its routes (create, read, update,
//! disable, enable, delete) as License API requests see it, each change with its one audit record
//! and a refused one with none; management keys (unknown, wrong secret, revoked, read-only, another
//! company's); the router's 404 and 405; and concurrent changes that neither lose an activation nor
//! create a license twice.

use bytes::Bytes;
use integration_tests::fixtures::key_body;
use integration_tests::{assert_error, Fixture};
use license_api::audit::AuditFilter;
use license_api::auth::Principal;
use license_api::ids::CompanyId;
use license_api::management::cors::Origins;
use license_api::management::keys;
use license_api::management::routes::PREFIX;
use license_api::model::AuditRecord;
use license_api::time::Timestamp;
use serde_json::{json, Value};

/// A management key of `company` made through the CLI's path; its token and its audit actor.
pub(crate) async fn new_key(f: &Fixture, company: &str, read_only: bool) -> (String, String) {
    let principal = Principal::cli(CompanyId::parse(company).unwrap());
    let input = keys::CreateKey {
        name: "tests".into(),
        read_only,
    };
    let created = keys::create(&f.app.state, &principal, input).await.unwrap();
    (created.token, format!("management_key:{}", created.key.id))
}

pub(crate) fn request(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> http::Request<Bytes> {
    let mut req = http::Request::builder().method(method).uri(format!("{PREFIX}{path}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or(Bytes::new(), |b| Bytes::from(b.to_string()));
    req.header("content-type", "application/json").body(body).unwrap()
}

/// Sends a management request; its status and JSON body.
pub(crate) async fn call(f: &Fixture, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let resp = f.app.send(request(method, path, Some(token), body)).await;
    let json = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), json)
}

/// `(action, subject)` of the audit records `actor` made, oldest first, read through `GET /audit`.
pub(crate) async fn audited_via_api(f: &Fixture, token: &str, actor: &str) -> Vec<(String, String)> {
    let (status, page) = call(f, "GET", &format!("/audit?actor={actor}&limit=1000"), token, None).await;
    assert_eq!(status, 200, "{page}");
    let records = page["records"].as_array().cloned().unwrap_or_default();
    let pair = |r: &Value| {
        (
            r["action"].as_str().unwrap().to_owned(),
            r["subject"].as_str().unwrap().to_owned(),
        )
    };
    records.iter().rev().map(pair).collect()
}

/// The company's audit records by `actor`, oldest first, as (action, subject).
async fn audited(f: &Fixture, actor: &str) -> Vec<(String, String)> {
    let filter = AuditFilter {
        actor: Some(actor.into()),
        ..AuditFilter::default()
    };
    let page = f
        .store()
        .audit_records(&f.company, &filter, None, 1000, Timestamp::now())
        .await
        .unwrap();
    let records: Vec<AuditRecord> = page.records.into_iter().rev().collect();
    records.into_iter().map(|r| (r.action, r.subject)).collect()
}

fn check_status(resp: &http::Response<Bytes>) -> (u16, String) {
    let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), body["code"].as_str().unwrap_or("").to_owned())
}

const LICENSE: &str = "/products/kp/licenses/M-1";

integration_tests::matrix! {
    async fn a_license_lives_through_the_routes_and_every_change_is_audited(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let create = json!({"license_key": "M-1", "max_activations": 2, "metadata": {"plan": "pro"}});
        let (status, created) = call(&f, "POST", "/products/kp/licenses", &token, Some(create)).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!((created["license_key"].clone(), created["max_activations"].clone()), (json!("M-1"), json!(2)));
        let (status, shown) = call(&f, "GET", LICENSE, &token, None).await;
        assert_eq!((status, shown["id"].clone(), shown["metadata"].clone()), (200, created["id"].clone(), json!({"plan": "pro"})));
        assert_eq!(f.app.send(f.client.activate(&key_body("M-1", "h1"))).await.status(), 200);

        let (status, updated) = call(&f, "PATCH", LICENSE, &token, Some(json!({"max_activations": 5}))).await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!((updated["max_activations"].clone(), updated["times_activated"].clone()), (json!(5), json!(1)), "the counter stays");
        assert_eq!(updated["metadata"], json!({"plan": "pro"}), "fields not given stay");
        let dated = call(&f, "PATCH", LICENSE, &token, Some(json!({"validity_period": "2030-01-01T00:00:00Z"}))).await;
        assert_eq!((dated.0, dated.1["validity_period"].clone()), (200, json!("2030-01-01T00:00:00.000Z")));
        let cleared = f.app.send(request("PATCH", LICENSE, Some(&token), Some(json!({"validity_period": null})))).await;
        assert_error(&cleared, 400, "validation_error");

        assert_eq!(call(&f, "POST", &format!("{LICENSE}/disable"), &token, None).await.0, 200);
        let check = f.app.send(f.client.check(&key_body("M-1", "h1"))).await;
        assert_eq!(check_status(&check), (400, "license_not_enabled".into()));
        assert_eq!(call(&f, "POST", &format!("{LICENSE}/enable"), &token, None).await.0, 200);
        assert_eq!(f.app.send(f.client.check(&key_body("M-1", "h1"))).await.status(), 200);

        let refused = f.app.send(request("DELETE", LICENSE, Some(&token), None)).await;
        assert_error(&refused, 409, "license_in_use");
        let (status, _) = call(&f, "DELETE", &format!("{LICENSE}?force=true"), &token, None).await;
        assert_eq!(status, 200);
        let check = f.app.send(f.client.check(&key_body("M-1", "h1"))).await;
        assert_eq!(check_status(&check), (400, "license_not_found".into()));
        assert_error(&f.app.send(request("GET", LICENSE, Some(&token), None)).await, 404, "license_not_found");

        let subject = "license:kp/key/M-1".to_owned();
        let expected: Vec<(String, String)> = ["license.create", "license.update", "license.update", "license.disable", "license.enable", "license.delete"]
            .iter()
            .map(|a| ((*a).to_owned(), subject.clone()))
            .collect();
        assert_eq!(audited(&f, &actor).await, expected, "one record per change; the refused delete none");
    }

    async fn management_keys_authenticate_and_are_scoped(setup) {
        let f = Fixture::new(setup).await;
        let (token, _) = new_key(&f, "c1", false).await;
        let (read_only, read_only_actor) = new_key(&f, "c1", true).await;
        let (other_company, _) = new_key(&f, "c2", false).await;

        let missing = f.app.send(request("GET", "/keys", None, None)).await;
        assert_error(&missing, 401, "invalid_api_key");
        assert!(missing.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let last = if token.ends_with('0') { '1' } else { '0' };
        let wrong_secret = format!("{}{last}", &token[..token.len() - 1]);
        assert_error(&f.app.send(request("GET", "/keys", Some(&wrong_secret), None)).await, 401, "invalid_api_key");
        assert_error(&f.app.send(request("GET", "/keys", Some("lsm_nonsense"), None)).await, 401, "invalid_api_key");

        let create = json!({"license_key": "M-1"});
        let refused = f.app.send(request("POST", "/products/kp/licenses", Some(&read_only), Some(create.clone()))).await;
        assert_error(&refused, 403, "read_only_api_key");
        assert_eq!(audited(&f, &read_only_actor).await, vec![], "a refused change leaves no record");
        assert_eq!(call(&f, "POST", "/products/kp/licenses", &token, Some(create)).await.0, 201);
        assert_eq!(call(&f, "GET", LICENSE, &read_only, None).await.0, 200, "a read-only key reads");
        assert_error(&f.app.send(request("GET", LICENSE, Some(&other_company), None)).await, 404, "license_not_found");

        let (status, listed) = call(&f, "GET", "/keys?limit=1", &token, None).await;
        assert_eq!((status, listed["items"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");
        assert!(listed["cursor"].is_string(), "a second key is on the next page: {listed}");
        let next = format!("/keys?limit=1&cursor={}", listed["cursor"].as_str().unwrap());
        let (_, second) = call(&f, "GET", &next, &token, None).await;
        assert_eq!(second["items"].as_array().map(Vec::len), Some(1), "{second}");
        assert_ne!(second["items"][0]["id"], listed["items"][0]["id"]);
        let (_, all) = call(&f, "GET", "/keys", &token, None).await;
        assert_eq!((all["items"].as_array().map(Vec::len), &all["cursor"]), (Some(2), &Value::Null), "c2's key is not listed");
        assert!(listed["items"][0].get("secret_hash").is_none() && listed["items"][0].get("token").is_none());

        let read_only_id = read_only.rsplit('_').nth(1).unwrap().to_owned();
        assert_eq!(call(&f, "POST", &format!("/keys/{read_only_id}/revoke"), &token, None).await.0, 200);
        assert_error(&f.app.send(request("GET", LICENSE, Some(&read_only), None)).await, 401, "revoked_api_key");

        assert_error(&f.app.send(request("GET", "/nope", Some(&token), None)).await, 404, "not_found");
        assert_error(&f.app.send(request("PUT", "/keys", Some(&token), None)).await, 405, "method_not_allowed");
        let bad = f.app.send(request("PATCH", LICENSE, Some(&token), Some(json!({"max_activations": -1})))).await;
        assert_error(&bad, 400, "validation_error");
    }

    async fn concurrent_creates_of_one_key_make_one_license(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let body = json!({"license_key": "M-1", "max_activations": 3});
        let sends = (0..10).map(|_| call(&f, "POST", "/products/kp/licenses", &token, Some(body.clone())));
        let answers = futures::future::join_all(sends).await;
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [vec![201], vec![409; 9]].concat(), "{answers:?}");
        assert!(answers.iter().filter(|(s, _)| *s == 409).all(|(_, b)| b["code"] == "already_exists"));
        assert_eq!(audited(&f, &actor).await.len(), 1);
    }

    async fn an_idempotency_key_creates_once_and_answers_alike(setup) {
        let f = Fixture::new(setup).await;
        let (token, actor) = new_key(&f, "c1", false).await;
        let create = |key: &str, body: Value| {
            let mut req = request("POST", "/products/kp/licenses", Some(&token), Some(body));
            req.headers_mut().insert("idempotency-key", key.parse().unwrap());
            f.app.send(req)
        };
        let body = json!({"max_activations": 3});
        let first = create("order-1", body.clone()).await;
        let again = create("order-1", body.clone()).await;
        assert_eq!((first.status().as_u16(), again.status().as_u16()), (201, 201));
        assert_eq!(first.body(), again.body(), "the same answer, byte for byte");
        let concurrent = futures::future::join_all((0..10).map(|_| create("order-2", body.clone()))).await;
        assert!(concurrent.iter().all(|r| r.status() == 201 && r.body() == concurrent[0].body()));
        assert_ne!(concurrent[0].body(), first.body(), "another key, another license");
        assert_error(&create("order-1", json!({"max_activations": 4})).await, 422, "idempotency_key_reused");
        let creates = audited(&f, &actor).await.into_iter().filter(|(a, _)| a == "license.create").count();
        assert_eq!(creates, 2, "one license per key");
    }

    async fn browsers_may_call_from_the_configured_origins_only(setup) {
        let f = Fixture::new(setup).await;
        let origins = Origins::new(vec!["https://admin.example.com".into()]).unwrap();
        let app = f.env.configured_instance(|s| s.with_management_cors(origins)).await;
        let (token, _) = new_key(&f, "c1", false).await;
        let from = |origin: &str, method: &str| {
            let mut req = request(method, "/keys", Some(&token), None);
            req.headers_mut().insert("origin", origin.parse().unwrap());
            app.send(req)
        };
        let preflight = from("https://admin.example.com", "OPTIONS").await;
        assert_eq!(preflight.status().as_u16(), 204);
        assert_eq!(preflight.headers()["access-control-allow-origin"], "https://admin.example.com");
        assert!(preflight.headers()["access-control-allow-headers"].to_str().unwrap().contains("idempotency-key"));
        let allowed = from("https://admin.example.com", "GET").await;
        assert_eq!(allowed.status().as_u16(), 200);
        assert_eq!(allowed.headers()["access-control-allow-origin"], "https://admin.example.com");
        for other in [from("https://evil.example.com", "GET").await, from("https://evil.example.com", "OPTIONS").await] {
            assert!(other.headers().get("access-control-allow-origin").is_none());
        }
        let unconfigured = f.app.send(request("GET", "/keys", Some(&token), None)).await;
        assert!(unconfigured.headers().get("access-control-allow-origin").is_none());
    }

    async fn changes_racing_activations_lose_none(setup) {
        let f = Fixture::new(setup).await;
        let (token, _) = new_key(&f, "c1", false).await;
        let body = json!({"license_key": "M-1", "max_activations": 20});
        assert_eq!(call(&f, "POST", "/products/kp/licenses", &token, Some(body)).await.0, 201);
        let f = &f;
        let activations = (0..6).map(|i| async move {
            f.app.send(f.client.activate(&key_body("M-1", &format!("h{i}")))).await.status().as_u16()
        });
        let updates = (0..6).map(|i| {
            let token = token.clone();
            async move { call(f, "PATCH", LICENSE, &token, Some(json!({"metadata": {"n": i}}))).await.0 }
        });
        let (activated, updated) = futures::future::join(
            futures::future::join_all(activations),
            futures::future::join_all(updates),
        )
        .await;
        assert!(activated.iter().all(|s| *s == 200), "{activated:?}");
        assert!(updated.iter().all(|s| *s == 200), "{updated:?}");
        let (_, now) = call(f, "GET", LICENSE, &token, None).await;
        assert_eq!(now["times_activated"], json!(6), "{now}");
    }
}
