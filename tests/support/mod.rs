//! Shared test harness. Every behaviour test runs through [`matrix!`] on three setups:
//! DynamoDB Local behind the Lambda adapter, DynamoDB Local behind the HTTP server, and the embedded
//! SQLite store behind the HTTP server — one suite, both stores, both transports.
//! DynamoDB Local is started once per run by `scripts/test.sh` (`DYNAMODB_ENDPOINT`); each test gets
//! its own table (or SQLite file).

pub mod counter;
pub mod faults;
pub mod fixtures;
pub mod interleave;
pub mod oidc;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use counter::RoundTrips;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use license_api::client::LicenseClient;
use license_api::handlers::Endpoint;
use license_api::signing::Signer;
use license_api::state::AppState;
use license_api::store::dynamo::{DynamoStore, Usage, UsageSnapshot};
use license_api::store::sqlite::SqliteStore;
use license_api::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use fixtures::Fixture;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    DynamoDb,
    Sqlite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// API Gateway events through `license_api::lambda::serve`.
    Lambda,
    /// Real HTTP to `license_server::http_server::serve` on a loopback port.
    Http,
}

#[derive(Clone, Debug)]
pub struct Setup {
    pub name: String,
    pub backend: Backend,
    pub transport: Transport,
}

impl Setup {
    pub fn new(name: &str, backend: Backend, transport: Transport) -> Self {
        Self {
            name: name.to_owned(),
            backend,
            transport,
        }
    }
}

/// Runs each test body on every setup: `matrix! { async fn name(setup) { ... } }`.
#[macro_export]
macro_rules! matrix {
    ($(async fn $name:ident($setup:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn body($setup: $crate::Setup) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn dynamodb_lambda() {
                    body($crate::Setup::new(stringify!($name), $crate::Backend::DynamoDb, $crate::Transport::Lambda)).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn dynamodb_http() {
                    body($crate::Setup::new(stringify!($name), $crate::Backend::DynamoDb, $crate::Transport::Http)).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite_http() {
                    body($crate::Setup::new(stringify!($name), $crate::Backend::Sqlite, $crate::Transport::Http)).await
                }
            }
        )*
    };
}

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

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("t-{}-{clean}-{n}", std::process::id())
}

/// Where SQLite test databases go: one file per test, removed when the run's directory is reused.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("license-api-tests")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A test's world: its own table or database file, served by any number of instances.
pub struct TestEnv {
    pub setup: Setup,
    location: String,
    pub store: Arc<dyn Store>,
}

impl TestEnv {
    pub async fn new(setup: Setup) -> Self {
        let location = unique(&setup.name);
        let env = Self {
            store: open(setup.backend, &location, &RoundTrips::default()).0,
            location,
            setup,
        };
        if let Backend::DynamoDb = env.setup.backend {
            DynamoStore::new(client(&RoundTrips::default()), &env.location)
                .create_table()
                .await
                .expect("create table");
        }
        env
    }

    /// A new instance — a "Lambda instance" or server process — on this store: its own client or
    /// connection, signer and API key cache.
    pub async fn instance(&self) -> Instance {
        self.configured_instance(|state| state).await
    }

    /// [`Self::instance`] with its state adjusted by `configure` (e.g. the last-seen interval).
    pub async fn configured_instance(&self, configure: impl FnOnce(AppState) -> AppState) -> Instance {
        let round_trips = RoundTrips::default();
        let (store, usage) = open(self.setup.backend, &self.location, &round_trips);
        let state = configure(self.state(store, license_api::state::DEFAULT_DEADLINE));
        Instance {
            usage,
            ..self.serve(state, round_trips).await
        }
    }

    /// A new handle (client or connection) on this test's table or file.
    pub fn new_store(&self) -> Arc<dyn Store> {
        open(self.setup.backend, &self.location, &RoundTrips::default()).0
    }

    /// A DynamoDB store on this test's table whose every request goes through `faults`, with the SDK's
    /// own retries off (so each fault reaches the store's code) or on.
    pub fn faulty_store(&self, faults: &faults::Faults, sdk_retries: bool) -> Arc<dyn Store> {
        let retry = if sdk_retries {
            aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        } else {
            aws_sdk_dynamodb::config::retry::RetryConfig::disabled()
        };
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .endpoint_url(endpoint())
            .http_client(faults.http_client())
            .retry_config(retry)
            .build();
        Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            &self.location,
        ))
    }

    /// A new instance on a given store (e.g. one behind injected faults) with a request deadline.
    pub async fn instance_on(&self, store: Arc<dyn Store>, round_trips: RoundTrips, deadline: Duration) -> Instance {
        self.serve(self.state(store, deadline), round_trips).await
    }

    /// The state an instance on `store` serves, with a request deadline.
    pub fn state(&self, store: Arc<dyn Store>, deadline: Duration) -> AppState {
        let signer = Signer::from_pem(signing_key_pem()).expect("test key parses");
        AppState::new(store, signer, Duration::from_secs(60)).with_deadline(deadline)
    }

    /// Serves `state` the way the setup does (through the Lambda adapter, or a loopback HTTP server).
    pub async fn serve(&self, state: AppState, round_trips: RoundTrips) -> Instance {
        let state = Arc::new(state);
        let server = match self.setup.transport {
            Transport::Lambda => None,
            Transport::Http => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind loopback");
                let addr = listener.local_addr().expect("local addr");
                tokio::spawn(license_server::http_server::serve(
                    listener,
                    state.clone(),
                    std::future::pending(),
                ));
                Some((addr, Client::builder(TokioExecutor::new()).build_http()))
            }
        };
        Instance {
            state,
            round_trips,
            usage: None,
            server,
        }
    }
}

impl TestEnv {
    /// The test's DynamoDB table (or SQLite file stem).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Every stored item, in a stable order: the whole state of the store, for before/after comparisons.
    pub async fn dump(&self) -> Vec<String> {
        let mut rows = match self.setup.backend {
            Backend::DynamoDb => {
                let client = client(&RoundTrips::default());
                let mut rows = Vec::new();
                let mut start = None;
                loop {
                    let out = client
                        .scan()
                        .table_name(&self.location)
                        .consistent_read(true)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .expect("scan");
                    for item in out.items() {
                        let sorted: std::collections::BTreeMap<_, _> = item.iter().collect();
                        rows.push(format!("{sorted:?}"));
                    }
                    start = out.last_evaluated_key;
                    if start.is_none() {
                        break rows;
                    }
                }
            }
            Backend::Sqlite => {
                let conn =
                    rusqlite::Connection::open(scratch_dir().join(format!("{}.db", self.location))).expect("open");
                let mut rows = Vec::new();
                for table in [
                    "api_keys",
                    "companies",
                    "products",
                    "users",
                    "customers",
                    "licenses",
                    "devices",
                    "seats",
                    "released",
                    "oauth_clients",
                ] {
                    let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).expect("prepare");
                    let n = stmt.column_count();
                    let found = stmt
                        .query_map([], |r| {
                            (0..n)
                                .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .expect("query");
                    for row in found {
                        rows.push(format!("{table}: {}", row.expect("row").join(" | ")));
                    }
                }
                rows
            }
        };
        rows.sort();
        rows
    }
}

/// A store on the test's table or file, with the DynamoDB store's usage counters.
fn open(backend: Backend, location: &str, counter: &RoundTrips) -> (Arc<dyn Store>, Option<Arc<Usage>>) {
    match backend {
        Backend::DynamoDb => {
            let store = DynamoStore::new(client(counter), location);
            let usage = store.usage();
            (Arc::new(store), Some(usage))
        }
        Backend::Sqlite => (
            Arc::new(SqliteStore::open(scratch_dir().join(format!("{location}.db"))).expect("open sqlite")),
            None,
        ),
    }
}

/// One server instance and how to reach it.
pub struct Instance {
    pub state: Arc<AppState>,
    /// DynamoDB requests of this instance (DynamoDB backends only).
    pub round_trips: RoundTrips,
    /// Capacity and transaction conflicts DynamoDB reported to this instance (DynamoDB backends made
    /// by [`TestEnv::instance`] only).
    usage: Option<Arc<Usage>>,
    server: Option<(SocketAddr, Client<HttpConnector, Full<Bytes>>)>,
}

impl Instance {
    /// Sends a request the way the setup's clients do: as an API Gateway event, or over HTTP.
    pub async fn send(&self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        match &self.server {
            Some((addr, client)) => {
                let (mut parts, body) = req.into_parts();
                let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
                parts.uri = format!("http://{addr}{pq}").parse().expect("valid uri");
                let resp = client
                    .request(http::Request::from_parts(parts, Full::new(body)))
                    .await
                    .expect("HTTP request");
                let (parts, body) = resp.into_parts();
                http::Response::from_parts(parts, body.collect().await.expect("response body").to_bytes())
            }
            None => self.send_lambda(req).await,
        }
    }

    /// Routes like the HTTP API in template.yaml: an endpoint's own methods (and HEAD for GET) reach its
    /// function, everything else the `$default` route's function.
    async fn send_lambda(&self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        let endpoint = Endpoint::for_path(req.uri().path()).filter(|e| e.accepts(req.method()));
        let event =
            lambda_http::request::from_str(&gateway_event(&req).to_string()).expect("an API Gateway HTTP API event");
        let management = req.uri().path().starts_with(license_api::management::routes::PREFIX);
        let response = match endpoint {
            _ if management => license_api::lambda::serve_management(&self.state, event).await,
            Some(endpoint) => license_api::lambda::serve(endpoint, &self.state, event).await,
            None => license_api::lambda::serve_default_route(event).await,
        }
        .expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = match body {
            lambda_http::Body::Empty => Bytes::new(),
            lambda_http::Body::Text(t) => Bytes::from(t),
            lambda_http::Body::Binary(b) => Bytes::from(b),
            _ => Bytes::new(),
        };
        http::Response::from_parts(parts, bytes)
    }

    /// What DynamoDB reported to this instance so far (zero on SQLite); subtract two to measure.
    pub fn usage(&self) -> UsageSnapshot {
        self.usage.as_ref().map(|u| u.snapshot()).unwrap_or_default()
    }

    pub fn public_key_pem(&self) -> String {
        self.state.signer.public_key_pem().to_owned()
    }

    pub fn client(&self, api_key: &str, shared_key: &str) -> LicenseClient {
        LicenseClient::new(api_key, shared_key, self.public_key_pem())
    }
}

/// The API Gateway HTTP API (payload 2.0) event that carries `req`, as the gateway writes it: a body
/// that is not UTF-8 text, or is multipart, is base64-encoded with `isBase64Encoded`, so the Lambda
/// adapter's decoding is exercised, not bypassed.
pub fn gateway_event(req: &http::Request<Bytes>) -> serde_json::Value {
    use base64::Engine;
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        headers.insert(
            name.as_str().to_owned(),
            serde_json::Value::String(value.to_str().expect("test headers are text").to_owned()),
        );
    }
    let multipart = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"multipart/"));
    let (body, encoded) = match std::str::from_utf8(req.body()) {
        Ok(text) if !multipart => (text.to_owned(), false),
        _ => (base64::engine::general_purpose::STANDARD.encode(req.body()), true),
    };
    let path = req.uri().path();
    let method = req.method().as_str();
    let mut event = serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": req.uri().query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "test",
            "domainName": "test.execute-api.us-east-1.amazonaws.com",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "test"},
            "requestId": "test",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "23/Nov/2026:07:00:00 +0000",
            "timeEpoch": 1_795_417_200_000_i64
        },
        "isBase64Encoded": encoded
    });
    if !req.body().is_empty() {
        event["body"] = serde_json::Value::String(body);
    }
    event
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
