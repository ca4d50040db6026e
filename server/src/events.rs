//! API Gateway HTTP API (payload v2) events for every endpoint — a success and an error case each —
//! for `sam local invoke -e` and `cargo lambda invoke --data-file`. Requests are HMAC-signed with a
//! `Date`, so they go stale after 15 minutes: `license-server events` writes them freshly signed, and
//! [`resign`] refreshes one in place (the tests use it before running each file through the handlers).
//!
//! File names are `<function>-<expected>.json`: `ok` for a 200, else the expected error code
//! (`default_route` is the function behind the HTTP API's `$default` route). They use
//! the example catalog (`examples/catalog.json`) and run in the order `license-server events --list` prints
//! (the order of [`specs`], successes first: activate, check, deactivate; the offline ones; the bundle
//! `demo-suite`). The offline request files inside
//! the offline events are dated [`FILE_DATE`] and never go stale (SPEC §6.2: no window on their date);
//! only the upload's own headers are re-signed. Multipart bodies are base64-encoded, as API Gateway
//! delivers them.

use base64::Engine;
use license_api::client::LicenseClient;
use license_api::handlers::endpoints::Input;
use license_api::handlers::Endpoint;
use license_api::offline::file::{multipart, RequestFile, Shape};
use license_api::offline::payload::Kind;
use serde_json::{json, Map, Value};

pub const API_KEY: &str = "demo-api-key";
pub const SHARED_KEY: &str = "demo-shared-key-change-me";
/// The OAuth client of the token endpoint's events: not in the example catalog (a catalog with OAuth
/// clients needs a sealing key to import), added by [`catalog_with_oauth_client`].
pub const OAUTH_CLIENT_ID: &str = "sam-local-client";
pub const OAUTH_CLIENT_SECRET: &str = "sam-local-client-secret-0123";
/// The management key of the Management API's events (company `demo`): not in any catalog; a session
/// creates its record from the token ([`license_api::management::keys::record_of`]).
pub const MANAGEMENT_TOKEN: &str =
    "lsm_ZGVtbw_5a3c0e11ab5e7700_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const HOST: &str = "abcdef1234.execute-api.us-east-1.amazonaws.com";
/// The date inside the offline request files of the events.
pub const FILE_DATE: &str = "Mon, 23 Nov 2026 07:00:00 GMT";
const FILE_DATE_JS: &str = "Mon Nov 23 2026 07:00:00 GMT+0000";
const SUITE: (&str, &str) = ("demo-suite", "SUITE-0000-0007");
const BOUNDARY: &str = "----sam-local-boundary-1f3a";

/// An offline request file as an upload: the base64 text, raw or in a multipart `file` part.
struct Upload {
    text: String,
    multipart: bool,
}

struct Spec {
    file: &'static str,
    method: &'static str,
    path: &'static str,
    /// JSON body (POST) or query parameters (GET).
    params: Value,
    signed: bool,
    /// The body of an offline upload (then `params` is unused).
    upload: Option<Upload>,
}

/// An offline request file for the demo license's `sam-local-device` (the same device throughout, so
/// the events take its own released slot back and never count a transfer).
fn offline_file(kind: Kind, shape: Shape, request_id: Option<&str>, api_key: &str, shared_key: &str) -> String {
    license_file(
        ("demo", "DEMO-0000-0000-0001"),
        kind,
        shape,
        request_id,
        api_key,
        shared_key,
    )
}

/// An offline request file of `sam-local-device` for the license (product, key).
fn license_file(
    (product, key): (&str, &str),
    kind: Kind,
    shape: Shape,
    request_id: Option<&str>,
    api_key: &str,
    shared_key: &str,
) -> String {
    let file = RequestFile {
        kind,
        product: product.into(),
        hardware_id: "sam-local-device".into(),
        license_key: Some(key.into()),
        username: None,
        password: None,
        api_key: api_key.into(),
        date: if shape == Shape::JavaScript {
            FILE_DATE_JS
        } else {
            FILE_DATE
        }
        .into(),
        request_id: request_id.map(str::to_owned),
        extra: Map::new(),
    };
    file.encode(shape, shared_key)
}

fn upload(path: &'static str, file: &'static str, text: String, multipart: bool) -> Spec {
    Spec {
        file,
        method: "POST",
        path,
        params: Value::Null,
        signed: true,
        upload: Some(Upload { text, multipart }),
    }
}

fn specs(api_key: &str, shared_key: &str) -> Vec<Spec> {
    let suite = json!({"product": "demo-suite", "hardware_id": "sam-local-device", "license_key": "SUITE-0000-0007"});
    let device = json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001"});
    let metered = json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-UNLIMITED-0004"});
    // The floating cloud license: activated, borrowed, released and deactivated again, so the events
    // run any number of times. Its borrow is a fixed date (event files do not change between runs), which the
    // license's max_borrow_time (100 years) allows.
    let floating = json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-FLOAT-0008"});
    vec![
        Spec {
            file: "activate_license-ok.json",
            method: "POST",
            path: "/api/v4/activate_license",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001",
                "os_ver": "Ubuntu 24.04", "hostname": "build-box", "app_ver": "1.2.3", "variables": {"channel": "stable"}}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "activate_license-license_not_found.json",
            method: "POST",
            path: "/api/v4/activate_license",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "NO-SUCH-KEY"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "check_license-ok.json",
            method: "GET",
            path: "/api/v4/check_license",
            params: device.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "check_license-missing_headers.json",
            method: "GET",
            path: "/api/v4/check_license",
            params: device.clone(),
            signed: false,
            upload: None,
        },
        Spec {
            file: "check_license-root-ok.json",
            method: "GET",
            path: "/",
            params: json!({}),
            signed: false,
            upload: None,
        },
        // Consumption and features while the device is active: the product `demo`'s features on the
        // demo license, and the consumption license `DEMO-UNLIMITED-0004` activated on the same device
        // for its sync and deactivated after it.
        Spec {
            file: "check_license_feature-ok.json",
            method: "GET",
            path: "/api/v4/check_license_feature",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001", "feature": "export-pdf"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "add_feature_consumption-ok.json",
            method: "POST",
            path: "/api/v4/add_feature_consumption",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001", "feature": "cloud-renders", "consumptions": 2}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "activate_license-consumption-ok.json",
            method: "POST",
            path: "/api/v4/activate_license",
            params: metered.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "add_consumption-ok.json",
            method: "POST",
            path: "/api/v4/add_consumption",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-UNLIMITED-0004", "consumptions": 3, "event": "consumption_add"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "deactivate_license-consumption-ok.json",
            method: "POST",
            path: "/api/v4/deactivate_license",
            params: metered,
            signed: true,
            upload: None,
        },
        Spec {
            file: "add_consumption-unknown_product.json",
            method: "POST",
            path: "/api/v4/add_consumption",
            params: json!({"product": "no-such-product", "hardware_id": "sam-local-device", "license_key": "DEMO-UNLIMITED-0004", "consumptions": 3}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "add_feature_consumption-missing_parameters.json",
            method: "POST",
            path: "/api/v4/add_feature_consumption",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001", "consumptions": 1}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "check_license_feature-missing_headers.json",
            method: "GET",
            path: "/api/v4/check_license_feature",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001", "feature": "export-pdf"}),
            signed: false,
            upload: None,
        },
        // Device variables and product details, while the demo device is active.
        Spec {
            file: "track_device_variables-ok.json",
            method: "POST",
            path: "/api/v4/track_device_variables",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001",
                "variables": {"channel": "beta", "build": 42, "telemetry": true}}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "track_device_variables-missing_parameters.json",
            method: "POST",
            path: "/api/v4/track_device_variables",
            params: device.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "get_device_variables-ok.json",
            method: "GET",
            path: "/api/v4/get_device_variables",
            params: device.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "get_device_variables-unknown_product.json",
            method: "GET",
            path: "/api/v4/get_device_variables",
            params: json!({"product": "no-such-product", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "product_details-ok.json",
            method: "GET",
            path: "/api/v4/product_details",
            params: json!({"product": "demo", "include_latest_version": "true", "include_custom_fields": "true", "env": "linux"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "product_details-unknown_product.json",
            method: "GET",
            path: "/api/v4/product_details",
            params: json!({"product": "no-such-product"}),
            signed: true,
            upload: None,
        },
        // The same device's trial on every run: the first creates it, the others answer it again.
        Spec {
            file: "trial_key-ok.json",
            method: "GET",
            path: "/api/v4/trial_key",
            params: json!({"product": "demo", "hardware_id": "trial-event-device", "license_policy": "trial-30", "email": "trial@example.com", "first_name": "Tess"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "trial_key-trial_not_allowed.json",
            method: "GET",
            path: "/api/v4/trial_key",
            params: json!({"product": "demo-viewer", "hardware_id": "trial-event-device"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "activate_license-floating-ok.json",
            method: "POST",
            path: "/api/v4/activate_license",
            params: floating.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "floating_borrow-ok.json",
            method: "POST",
            path: "/api/v4/floating/borrow",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-FLOAT-0008",
                "borrowed_until": "2099-01-01T00:00:00.000Z"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "floating_borrow-missing_parameters.json",
            method: "POST",
            path: "/api/v4/floating/borrow",
            params: device.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "floating_release-ok.json",
            method: "POST",
            path: "/api/v4/floating/release",
            params: floating.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "floating_release-unknown_product.json",
            method: "POST",
            path: "/api/v4/floating/release",
            params: json!({"product": "no-such-product", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "deactivate_license-floating-ok.json",
            method: "POST",
            path: "/api/v4/deactivate_license",
            params: floating,
            signed: true,
            upload: None,
        },
        Spec {
            file: "deactivate_license-ok.json",
            method: "POST",
            path: "/api/v4/deactivate_license",
            params: device,
            signed: true,
            upload: None,
        },
        Spec {
            file: "deactivate_license-unknown_product.json",
            method: "POST",
            path: "/api/v4/deactivate_license",
            params: json!({"product": "no-such-product", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001"}),
            signed: true,
            upload: None,
        },
        upload(
            "/api/v4/activate_offline",
            "activate_offline-ok.json",
            offline_file(
                Kind::Activation,
                Shape::PythonActivation,
                Some("sam-local-offline-1"),
                api_key,
                shared_key,
            ),
            false,
        ),
        upload(
            "/api/v4/deactivate_offline",
            "deactivate_offline-ok.json",
            offline_file(
                Kind::Deactivation,
                Shape::JavaScript,
                Some("sam-local-offline-2"),
                api_key,
                shared_key,
            ),
            false,
        ),
        upload(
            "/api/v4/activate_offline",
            "activate_offline-multipart-ok.json",
            offline_file(
                Kind::Activation,
                Shape::V1,
                Some("sam-local-offline-3"),
                api_key,
                shared_key,
            ),
            true,
        ),
        upload(
            "/api/v4/deactivate_offline",
            "deactivate_offline-multipart-ok.json",
            offline_file(Kind::Deactivation, Shape::BareDeactivation, None, api_key, shared_key),
            true,
        ),
        upload(
            "/api/v4/activate_offline",
            "activate_offline-signature_mismatch.json",
            offline_file(
                Kind::Activation,
                Shape::V1,
                Some("sam-local-offline-4"),
                api_key,
                "not-the-shared-key",
            ),
            false,
        ),
        upload(
            "/api/v4/deactivate_offline",
            "deactivate_offline-missing_content.json",
            String::new(),
            true,
        ),
        // The example catalog's bundle `demo-suite` (members `demo` and `demo-viewer`).
        Spec {
            file: "activate_bundle-ok.json",
            method: "POST",
            path: "/api/v4/activate_bundle",
            params: suite.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "activate_bundle-product_not_bundle.json",
            method: "POST",
            path: "/api/v4/activate_bundle",
            params: json!({"product": "demo", "hardware_id": "sam-local-device", "license_key": "DEMO-0000-0000-0001"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "check_bundle-ok.json",
            method: "GET",
            path: "/api/v4/check_bundle",
            params: suite.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "check_bundle-missing_headers.json",
            method: "GET",
            path: "/api/v4/check_bundle",
            params: suite.clone(),
            signed: false,
            upload: None,
        },
        Spec {
            file: "deactivate_bundle-ok.json",
            method: "POST",
            path: "/api/v4/deactivate_bundle",
            params: suite.clone(),
            signed: true,
            upload: None,
        },
        Spec {
            file: "deactivate_bundle-license_not_found.json",
            method: "POST",
            path: "/api/v4/deactivate_bundle",
            params: json!({"product": "demo-suite", "hardware_id": "sam-local-device", "license_key": "NO-SUCH-KEY"}),
            signed: true,
            upload: None,
        },
        upload(
            "/api/v4/activate_bundle_offline",
            "activate_bundle_offline-ok.json",
            license_file(
                SUITE,
                Kind::Activation,
                Shape::JavaScript,
                Some("sam-local-bundle-1"),
                api_key,
                shared_key,
            ),
            false,
        ),
        upload(
            "/api/v4/activate_bundle_offline",
            "activate_bundle_offline-signature_mismatch.json",
            license_file(
                SUITE,
                Kind::Activation,
                Shape::V1,
                Some("sam-local-bundle-3"),
                api_key,
                "not-the-shared-key",
            ),
            false,
        ),
        upload(
            "/api/v4/deactivate_bundle_offline",
            "deactivate_bundle_offline-multipart-ok.json",
            license_file(
                SUITE,
                Kind::Deactivation,
                Shape::PythonDeactivation,
                Some("sam-local-bundle-2"),
                api_key,
                shared_key,
            ),
            true,
        ),
        upload(
            "/api/v4/deactivate_bundle_offline",
            "deactivate_bundle_offline-missing_parameters.json",
            String::new(),
            false,
        ),
        // Single sign-on's sign-in URL for the user-based product `demo-team`, customer account
        // `demo-sso` (not in the example catalog: its identity provider is the test run's, see
        // [`NEED_IDENTITY_PROVIDER`]).
        Spec {
            file: "sso_url-ok.json",
            method: "GET",
            path: "/api/v4/sso_url",
            params: json!({"product": "demo-team", "customer_account_code": "demo-sso", "response_type": "code"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "sso_url-validation_error.json",
            method: "GET",
            path: "/api/v4/sso_url",
            params: json!({"product": "demo-team", "customer_account_code": "demo-sso", "response_type": "password"}),
            signed: true,
            upload: None,
        },
        // The licenses of the example catalog's user ann@example.com on `demo-team`.
        Spec {
            file: "user_licenses-ok.json",
            method: "GET",
            path: "/api/v4/user_licenses",
            params: json!({"product": "demo-team", "username": "ann@example.com", "password": "demo-password"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "user_licenses-license_not_found.json",
            method: "GET",
            path: "/api/v4/user_licenses",
            params: json!({"product": "demo-team", "username": "ann@example.com", "password": "not-her-password"}),
            signed: true,
            upload: None,
        },
        // The license users of the example catalog's customer team-buyer@example.com on `demo-team`.
        Spec {
            file: "customer_license_users-ok.json",
            method: "GET",
            path: "/api/v4/customer_license_users",
            params: json!({"product": "demo-team", "customer": "team-buyer@example.com"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "customer_license_users-license_not_found.json",
            method: "GET",
            path: "/api/v4/customer_license_users",
            params: json!({"product": "demo-team", "customer": "nobody@example.com"}),
            signed: true,
            upload: None,
        },
        // bob@example.com "changes" his password to the same one, so the events can run again.
        Spec {
            file: "change_password-ok.json",
            method: "POST",
            path: "/api/v4/change_password",
            params: json!({"username": "bob@example.com", "password": "demo-password", "new_password": "demo-password"}),
            signed: true,
            upload: None,
        },
        Spec {
            file: "change_password-license_not_found.json",
            method: "POST",
            path: "/api/v4/change_password",
            params: json!({"username": "bob@example.com", "password": "not-his-password", "new_password": "whatever-else"}),
            signed: true,
            upload: None,
        },
        // OAuth client credentials (docs/oauth.md): where the token endpoint is; no key needed.
        Spec {
            file: "oauth_url-ok.json",
            method: "GET",
            path: "/api/v4/oauth_url",
            params: json!({"login_type": "client_credentials"}),
            signed: false,
            upload: None,
        },
        Spec {
            file: "oauth_url-validation_error.json",
            method: "GET",
            path: "/api/v4/oauth_url",
            params: json!({"login_type": "authorization_code"}),
            signed: false,
            upload: None,
        },
        Spec {
            file: "oauth_token-ok.json",
            method: "POST",
            path: "/api/v4/oauth_token",
            params: json!({"grant_type": "client_credentials", "client_id": OAUTH_CLIENT_ID,
                "client_secret": OAUTH_CLIENT_SECRET}),
            signed: false,
            upload: None,
        },
        Spec {
            file: "oauth_token-invalid_client.json",
            method: "POST",
            path: "/api/v4/oauth_token",
            params: json!({"grant_type": "client_credentials", "client_id": OAUTH_CLIENT_ID,
                "client_secret": "not-the-client-secret"}),
            signed: false,
            upload: None,
        },
        // The Management API's function, with the events' management key.
        Spec {
            file: "management-ok.json",
            method: "GET",
            path: "/api/management/v1/products/demo/licenses/DEMO-FLOAT-0008",
            params: json!({}),
            signed: false,
            upload: None,
        },
        Spec {
            file: "management-not_found.json",
            method: "GET",
            path: "/api/management/v1/no_such_route",
            params: json!({}),
            signed: false,
            upload: None,
        },
        // What the HTTP API's `$default` route passes on: a path no route has, and a route's path with
        // a method it does not take.
        Spec {
            file: "default_route-not_found.json",
            method: "GET",
            path: "/api/v4/no_such_endpoint",
            params: json!({}),
            signed: false,
            upload: None,
        },
        Spec {
            file: "default_route-method_not_allowed.json",
            method: "GET",
            path: "/api/v4/activate_license",
            params: json!({}),
            signed: false,
            upload: None,
        },
    ]
}

/// Whether the endpoint at `path` takes a form body (the token endpoint).
fn is_form(path: &str) -> bool {
    Endpoint::for_path(path).is_some_and(|e| e.descriptor().input == Input::Form)
}

/// The example catalog (`examples/catalog.json`, given as text) with the events' OAuth client in its
/// first company: what the events run against (`license-server events --catalog FILE` writes it).
pub fn catalog_with_oauth_client(example: &str) -> Result<String, serde_json::Error> {
    let mut catalog: Value = serde_json::from_str(example)?;
    catalog["companies"][0]["oauth_clients"] =
        json!([{"client_id": OAUTH_CLIENT_ID, "client_secret": OAUTH_CLIENT_SECRET}]);
    serde_json::to_string_pretty(&catalog)
}

/// Events that succeed only where single sign-on reaches an identity provider and knows the customer
/// account `demo-sso`: `tests/events.rs` runs them against the test run's provider; the `sam local`
/// containers reach none, so `smoke --invoke-events` skips them and says so.
pub const NEED_IDENTITY_PROVIDER: &[&str] = &["sso_url-ok.json"];

/// Events that succeed only where the table holds [`MANAGEMENT_TOKEN`]'s key: `tests/events.rs`
/// stores it; `smoke --invoke-events` skips them and says so.
pub const NEED_MANAGEMENT_KEY: &[&str] = &["management-ok.json"];

fn query_string(params: &Value) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.as_object().into_iter().flatten() {
        q.append_pair(k, v.as_str().unwrap_or_default());
    }
    q.finish()
}

/// Every event, signed for `api_key`/`shared_key` at `date` (an IMF-fixdate), in the order a session
/// runs them: the successes in the order of [`specs`], then the errors (`tests/events.rs` and
/// scripts/sam-local.sh run them so, through `license-server events --list`).
pub fn generate(api_key: &str, shared_key: &str, date: &str) -> Vec<(&'static str, Value)> {
    let mut specs = specs(api_key, shared_key);
    specs.sort_by_key(|s| expected(s.file).is_some());
    specs
        .into_iter()
        .map(|s| {
            let management = s.path.starts_with(license_api::management::routes::PREFIX);
            let route = if s.file.starts_with("default_route-") {
                "$default".to_owned()
            } else if management {
                "ANY /api/management/{proxy+}".to_owned()
            } else if s.path == "/" {
                "GET /".to_owned()
            } else {
                format!("{} {}", s.method, s.path)
            };
            let mut headers = json!({"host": HOST, "user-agent": "license-client/1.0", "x-forwarded-proto": "https"});
            if management {
                headers["authorization"] = json!(format!("Bearer {MANAGEMENT_TOKEN}"));
            }
            let mut base64_encoded = false;
            let (body, query) = match &s.upload {
                Some(Upload { text, multipart: true }) => {
                    let (content_type, body) = multipart(text, BOUNDARY);
                    headers["content-type"] = json!(content_type);
                    base64_encoded = true;
                    (json!(base64::engine::general_purpose::STANDARD.encode(body)), String::new())
                }
                Some(Upload { text, multipart: false }) => {
                    headers["content-type"] = json!("text/plain");
                    (json!(format!("{text}\n")), String::new())
                }
                None if is_form(s.path) => {
                    headers["content-type"] = json!("application/x-www-form-urlencoded");
                    (Value::String(query_string(&s.params)), String::new())
                }
                None if s.method == "POST" => {
                    headers["content-type"] = json!("application/json");
                    (Value::String(s.params.to_string()), String::new())
                }
                None => (Value::Null, query_string(&s.params)),
            };
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
                "isBase64Encoded": base64_encoded
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
    event["headers"]
        .get("authorization")
        .and_then(Value::as_str)
        .is_some_and(|a| !a.starts_with("Bearer "))
}

/// The expected outcome encoded in a file name: `None` for `ok`, else the error code.
pub fn expected(file: &str) -> Option<&str> {
    let stem = file.strip_suffix(".json")?;
    let outcome = stem.rsplit('-').next()?;
    (outcome != "ok").then_some(outcome)
}

/// The HTTP status the outcome of a file name means: 200 for `ok`; `not_found` and
/// `method_not_allowed` (the `$default` route's answers) are 404 and 405, and every other error code
/// the events expect is a 400 (SPEC §1.1, §1.2) but `invalid_client`, the token endpoint's 401 (§7).
pub fn expected_status(file: &str) -> u16 {
    match expected(file) {
        None => 200,
        Some("invalid_client") => 401,
        Some("not_found") => 404,
        Some("method_not_allowed") => 405,
        Some(_) => 400,
    }
}

/// Where `file` runs in a session: its position in [`generate`]'s order (files it does not write last,
/// by name).
pub fn order(file: &str) -> (usize, String) {
    let ordered: Vec<&str> = generate(API_KEY, SHARED_KEY, FILE_DATE)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let rank = ordered.iter().position(|f| *f == file).unwrap_or(ordered.len());
    (rank, file.to_owned())
}
