//! API Gateway HTTP API (payload v2) events for every endpoint — a success and an error case each —
//! for `sam local invoke -e` and `cargo lambda invoke --data-file`. Requests are HMAC-signed with a
//! `Date`, so they go stale after 15 minutes: `license-server events` writes them freshly signed, and
//! [`resign`] refreshes one in place (the tests use it before running each file through the handlers).
//!
//! File names are `<function>-<expected>.json`: `ok` for a 200, else the expected error code
//! (`default_route` is the function behind the HTTP API's `$default` route). They use
//! the example catalog (`examples/catalog.json`): run `activate_license-ok`, then `check_license-ok`,
//! then `deactivate_license-ok`.

use license_api::client::LicenseClient;
use serde_json::{json, Value};

pub const API_KEY: &str = "demo-api-key";
pub const SHARED_KEY: &str = "demo-shared-key-change-me";
const HOST: &str = "abcdef1234.execute-api.us-east-1.amazonaws.com";

struct Spec {
    file: &'static str,
    method: &'static str,
    path: &'static str,
    /// JSON body (POST) or query parameters (GET).
    params: Value,
    signed: bool,
}

fn specs() -> Vec<Spec> {
    let device = json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001"});
    vec![
        Spec {
            file: "activate_license-ok.json",
            method: "POST",
            path: "/api/v4/activate_license",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001",
                "os_ver": "Ubuntu 24.04", "hostname": "build-box", "app_ver": "1.2.3", "variables": {"channel": "stable"}}),
            signed: true,
        },
        Spec {
            file: "activate_license-license_not_found.json",
            method: "POST",
            path: "/api/v4/activate_license",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "NO-SUCH-KEY"}),
            signed: true,
        },
        Spec {
            file: "check_license-ok.json",
            method: "GET",
            path: "/api/v4/check_license",
            params: device.clone(),
            signed: true,
        },
        Spec {
            file: "check_license-missing_headers.json",
            method: "GET",
            path: "/api/v4/check_license",
            params: device.clone(),
            signed: false,
        },
        Spec {
            file: "check_license-root-ok.json",
            method: "GET",
            path: "/",
            params: json!({}),
            signed: false,
        },
        Spec {
            file: "deactivate_license-ok.json",
            method: "POST",
            path: "/api/v4/deactivate_license",
            params: device,
            signed: true,
        },
        Spec {
            file: "deactivate_license-unknown_product.json",
            method: "POST",
            path: "/api/v4/deactivate_license",
            params: json!({"product": "no-such-product", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001"}),
            signed: true,
        },
        // What the HTTP API's `$default` route passes on: a path no route has, and a route's path with
        // a method it does not take.
        Spec {
            file: "default_route-not_found.json",
            method: "GET",
            path: "/api/v4/no_such_endpoint",
            params: json!({}),
            signed: false,
        },
        Spec {
            file: "default_route-method_not_allowed.json",
            method: "GET",
            path: "/api/v4/activate_license",
            params: json!({}),
            signed: false,
        },
    ]
}

fn query_string(params: &Value) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.as_object().into_iter().flatten() {
        q.append_pair(k, v.as_str().unwrap_or_default());
    }
    q.finish()
}

/// Every event, signed for `api_key`/`shared_key` at `date` (an IMF-fixdate).
pub fn generate(api_key: &str, shared_key: &str, date: &str) -> Vec<(&'static str, Value)> {
    specs()
        .into_iter()
        .map(|s| {
            let route = if s.file.starts_with("default_route-") {
                "$default".to_owned()
            } else if s.path == "/" {
                "GET /".to_owned()
            } else {
                format!("{} {}", s.method, s.path)
            };
            let (body, query) =
                if s.method == "POST" { (Value::String(s.params.to_string()), String::new()) } else { (Value::Null, query_string(&s.params)) };
            let mut headers = json!({"host": HOST, "user-agent": "license-client/1.0", "x-forwarded-proto": "https"});
            if s.method == "POST" {
                headers["content-type"] = json!("application/json");
            }
            let mut event = json!({
                "version": "2.0",
                "routeKey": route,
                "rawPath": s.path,
                "rawQueryString": query,
                "headers": headers,
                "requestContext": {
                    "accountId": "123456789012",
                    "apiId": "abcdef1234",
                    "domainName": HOST,
                    "domainPrefix": "abcdef1234",
                    "http": {"method": s.method, "path": s.path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "license-client/1.0"},
                    "requestId": format!("event-{}", s.file.trim_end_matches(".json")),
                    "routeKey": route,
                    "stage": "$default",
                    "time": "23/Nov/2026:07:00:00 +0000",
                    "timeEpoch": 1_795_417_200_000_i64
                },
                "isBase64Encoded": false
            });
            if !body.is_null() {
                event["body"] = body;
            }
            if s.signed {
                resign(&mut event, api_key, shared_key, date);
            }
            (s.file, event)
        })
        .collect()
}

/// Sets the event's `date` and `authorization` headers, signed for `date`.
pub fn resign(event: &mut Value, api_key: &str, shared_key: &str, date: &str) {
    let client = LicenseClient::new(api_key, shared_key, "");
    let headers = &mut event["headers"];
    headers["date"] = Value::String(date.to_owned());
    headers["authorization"] = Value::String(client.authorization(date));
}

/// Whether the event carries request signing headers.
pub fn is_signed(event: &Value) -> bool {
    event["headers"].get("authorization").is_some()
}

/// The expected outcome encoded in a file name: `None` for `ok`, else the error code.
pub fn expected(file: &str) -> Option<&str> {
    let stem = file.strip_suffix(".json")?;
    let outcome = stem.rsplit('-').next()?;
    (outcome != "ok").then_some(outcome)
}
