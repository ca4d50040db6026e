//! Shared test harness: a fresh table per test on the DynamoDB Local started by `scripts/test.sh`
//! (`DYNAMODB_ENDPOINT`), catalog fixtures, a DynamoDB round-trip counter, and `send`, which drives a
//! client request through the real Lambda adapter and handlers.

pub mod counter;
pub mod fixtures;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use counter::RoundTrips;
use license_api::client::LicenseClient;
use license_api::handlers::Endpoint;
use license_api::signing::Signer;
use license_api::state::AppState;
use license_api::store::dynamo::DynamoStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use fixtures::Fixture;

/// One RSA key per test process: generating keys is slow and irrelevant to what is tested.
pub fn signing_key_pem() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| Signer::generate(2048).expect("RSA key generation").1)
}

pub fn endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT is not set: run the tests with scripts/test.sh, which starts DynamoDB Local")
}

/// A DynamoDB client for DynamoDB Local whose requests are counted by `counter`.
pub fn client(counter: &RoundTrips) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
        .endpoint_url(endpoint())
        .interceptor(counter.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

fn unique_table(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("t-{}-{}-{n}", std::process::id(), clean)
}

/// One simulated Lambda instance: its own client, store, signer and API key cache.
pub struct Instance {
    pub state: AppState,
    pub round_trips: RoundTrips,
}

/// A test's world: its own table, and any number of instances serving it.
pub struct TestEnv {
    pub table: String,
    pub store: DynamoStore,
    pub round_trips: RoundTrips,
}

impl TestEnv {
    pub async fn new(name: &str) -> Self {
        let round_trips = RoundTrips::default();
        let table = unique_table(name);
        let store = DynamoStore::new(client(&round_trips), &table);
        store.create_table().await.expect("create test table");
        Self {
            table,
            store,
            round_trips,
        }
    }

    /// A new "Lambda instance" on this table.
    pub fn instance(&self) -> Instance {
        let round_trips = RoundTrips::default();
        let store = DynamoStore::new(client(&round_trips), &self.table);
        let signer = Signer::from_pem(signing_key_pem()).expect("test key parses");
        Instance {
            state: AppState::new(Arc::new(store), signer, Duration::from_secs(60)),
            round_trips,
        }
    }
}

impl Instance {
    /// Sends a request through the Lambda adapter exactly as API Gateway would hand it over.
    pub async fn send(&self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        let endpoint = Endpoint::for_path(req.uri().path());
        let (parts, body) = req.into_parts();
        let event = lambda_http::Request::from_parts(parts, lambda_http::Body::from(body.to_vec()));
        let response = match endpoint {
            Some(endpoint) => license_api::lambda::serve(endpoint, &self.state, event)
                .await
                .expect("infallible"),
            None => {
                let req = license_api::lambda::to_api_request(event);
                license_api::lambda::to_lambda_response(license_api::handlers::route(&req, &self.state).await)
            }
        };
        let (parts, body) = response.into_parts();
        let bytes = match body {
            lambda_http::Body::Empty => Bytes::new(),
            lambda_http::Body::Text(t) => Bytes::from(t),
            lambda_http::Body::Binary(b) => Bytes::from(b),
            _ => Bytes::new(),
        };
        http::Response::from_parts(parts, bytes)
    }

    pub fn public_key_pem(&self) -> String {
        self.state.signer.public_key_pem().to_owned()
    }

    pub fn client(&self, api_key: &str, shared_key: &str) -> LicenseClient {
        LicenseClient::new(api_key, shared_key, self.public_key_pem())
    }
}

/// Parses an error response and checks its shape: JSON content type, exactly `status`, `code`,
/// `message`, with `status` equal to the HTTP status. Returns (status, code).
pub fn error_of(resp: &http::Response<Bytes>) -> (u16, String) {
    assert_eq!(resp.headers()["content-type"], "application/json", "error content type");
    let body: serde_json::Value = serde_json::from_slice(resp.body()).expect("error body is JSON");
    let obj = body.as_object().expect("error body is an object");
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "status"], "error body keys: {body}");
    assert_eq!(
        body["status"].as_u64(),
        Some(u64::from(resp.status().as_u16())),
        "status field matches HTTP status"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message present"
    );
    (resp.status().as_u16(), body["code"].as_str().unwrap().to_owned())
}

/// Asserts an error response with this status and code.
#[track_caller]
pub fn assert_error(resp: &http::Response<Bytes>, status: u16, code: &str) {
    let got = error_of(resp);
    assert_eq!(
        got,
        (status, code.to_owned()),
        "body: {}",
        String::from_utf8_lossy(resp.body())
    );
}
