//! The `license-server` binary under abuse (docs/limits.md): a flood of wrong-password activations
//! must neither exhaust memory nor stall key-based checks; the rate limiter answers 429 in the SPEC
//! shape once a client's burst is spent; forged signatures cannot spend an API key's budget; password
//! guesses are bounded per username and per address. The server runs as a child process so its peak
//! memory (VmHWM) can be read from /proc.

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use license_api::client::LicenseClient;
use license_server::events;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::BIN;

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");
/// No single request may take longer than this, flood or not: a hang fails the test.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
const FLOOD: usize = 500;
const PEAK_BOUND_KIB: u64 = 512 * 1024;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A running `serve`, killed when dropped so a failed assertion leaves no process behind.
struct Server {
    child: Child,
    addr: String,
    data: PathBuf,
}

impl Server {
    /// Keygen and import into a fresh data directory, then `serve` with `args`.
    fn start(name: &str, args: &[&str]) -> (Self, LicenseClient) {
        Self::start_with(name, CATALOG, args)
    }

    /// [`Self::start`] with the example catalog plus the events' OAuth client (its secret sealed with
    /// the data directory's sealing key; `keygen` also wrote the token keys).
    fn start_with_oauth_client(name: &str, args: &[&str]) -> (Self, LicenseClient) {
        let catalog = scratch(&format!("{name}-catalog"));
        std::fs::create_dir_all(&catalog).unwrap();
        let example = std::fs::read_to_string(CATALOG).unwrap();
        let path = catalog.join("catalog.json");
        std::fs::write(&path, events::catalog_with_oauth_client(&example).unwrap()).unwrap();
        Self::start_with(name, path.to_str().unwrap(), args)
    }

    fn start_with(name: &str, catalog: &str, args: &[&str]) -> (Self, LicenseClient) {
        let data = scratch(name);
        let d = data.to_str().unwrap();
        for step in [
            vec!["keygen", "--data", d, "--create", "--bits", "2048"],
            vec!["import", catalog, "--data", d, "--create"],
        ] {
            let out = Command::new(BIN).args(&step).output().expect("run license-server");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let (child, addr) = support::serve(&data, args);
        let public = std::fs::read_to_string(data.join("signing-key.pub.pem")).unwrap();
        let client = LicenseClient::new("demo-api-key", "demo-shared-key-change-me", public);
        (Self { child, addr, data }, client)
    }

    /// The process's peak resident set so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    async fn send(&self, client: &HttpClient, req: http::Request<Bytes>) -> http::Response<Bytes> {
        let (mut parts, body) = req.into_parts();
        parts.uri = format!("http://{}{}", self.addr, parts.uri.path_and_query().unwrap())
            .parse()
            .unwrap();
        let exchange = async {
            let resp = client
                .request(http::Request::from_parts(parts, Full::new(body)))
                .await
                .expect("request");
            let (parts, body) = resp.into_parts();
            http::Response::from_parts(parts, body.collect().await.expect("response body").to_bytes())
        };
        tokio::time::timeout(REQUEST_DEADLINE, exchange)
            .await
            .expect("the server answers within the deadline")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("license-server-flood-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The SPEC §1.1 error body: exactly status, code and message, status repeating the HTTP status.
fn error_body(resp: &http::Response<Bytes>) -> (u16, String) {
    let body: Value = serde_json::from_slice(resp.body()).expect("error body is JSON");
    let obj = body.as_object().expect("error body is an object");
    assert_eq!(obj.len(), 3, "{body}");
    assert_eq!(body["status"], resp.status().as_u16(), "{body}");
    assert!(body["message"].is_string(), "{body}");
    (resp.status().as_u16(), body["code"].as_str().unwrap().to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    format!(
        "n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    )
}

const KEY: &str = "DEMO-0000-0000-0001";

fn key_body() -> Value {
    json!({"product": "demo", "hardware_id": "checker", "license_key": KEY})
}

/// One signed, verified check; returns its latency.
async fn check(server: &Server, http: &HttpClient, client: &LicenseClient) -> Duration {
    let started = Instant::now();
    let resp = server.send(http, client.check(&key_body())).await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    client
        .verify_license(&resp, "checker", KEY)
        .expect("a signed license object");
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(target_os = "linux"), ignore = "reads the server's peak memory from /proc")]
async fn wrong_password_flood_neither_exhausts_memory_nor_stalls_checks() {
    // Rate limits off: this is the distributed attacker the per-IP limit cannot see; what must hold
    // is the hashing pool and the connection cap.
    // Likewise the per-address connection and password-check limits: 500 connections from one address
    // stand for 500 clients.
    let (server, client) = Server::start(
        "flood",
        &[
            "--rate-per-ip",
            "0",
            "--rate-per-key",
            "0",
            "--max-connections-per-ip",
            "0",
            "--password-checks-per-ip",
            "0",
            "--password-checks-per-user",
            "0",
        ],
    );
    let server = Arc::new(server);
    let http = http_client();
    let resp = server.send(&http, client.activate(&key_body())).await;
    client.verify_license(&resp, "checker", KEY).expect("activation");

    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(check(&server, &http, &client).await);
    }
    let idle_peak = server.peak_rss_kib();

    let flooding = Arc::new(AtomicBool::new(true));
    let checker = tokio::spawn({
        let (server, client, flooding) = (server.clone(), client.clone(), flooding.clone());
        async move {
            let http = http_client();
            let mut latencies = Vec::new();
            while flooding.load(Ordering::Relaxed) || latencies.len() < 20 {
                latencies.push(check(&server, &http, &client).await);
            }
            latencies
        }
    });
    let flood_started = Instant::now();
    let flood = join_all((0..FLOOD).map(|i| {
        let (server, client) = (server.clone(), client.clone());
        tokio::spawn(async move {
            // One connection per request, as 500 separate clients would.
            let http = http_client();
            let body = json!({
                "product": "demo-team", "hardware_id": format!("flood-{i}"),
                "username": "ann@example.com", "password": format!("wrong-{i}"),
            });
            let resp = server.send(&http, client.activate(&body)).await;
            error_body(&resp)
        })
    }))
    .await;
    let flood_time = flood_started.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let during = checker.await.expect("checker task");

    let (mut not_found, mut too_many) = (0, 0);
    for answer in flood {
        match answer.expect("flood task") {
            (400, code) if code == "license_not_found" => not_found += 1,
            (429, code) if code == "too_many_requests" => too_many += 1,
            other => panic!("a flood request answered {other:?}"),
        }
    }
    let peak = server.peak_rss_kib();
    println!(
        "flood of {FLOOD} wrong-password activations in {:.2} s: {not_found} × 400 license_not_found, \
         {too_many} × 429 too_many_requests",
        flood_time.as_secs_f64()
    );
    println!(
        "server peak RSS (VmHWM): {:.1} MiB after idle checks, {:.1} MiB after the flood",
        idle_peak as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("check latency idle:        {}", summary(idle));
    println!("check latency under flood: {}", summary(during));
    assert_eq!(not_found + too_many, FLOOD);
    assert!(not_found > 0, "some wrong passwords were actually checked");
    assert!(
        peak < PEAK_BOUND_KIB,
        "peak RSS {peak} KiB exceeds {PEAK_BOUND_KIB} KiB"
    );

    // And the server is still itself afterwards.
    check(&server, &http, &client).await;
}

#[tokio::test]
async fn rate_limits_answer_429_after_the_burst() {
    let (server, client) = Server::start(
        "rate",
        &[
            "--trust-forwarded-for",
            "--rate-per-ip",
            "1",
            "--burst-per-ip",
            "3",
            "--rate-per-key",
            "1",
            "--burst-per-key",
            "5",
        ],
    );
    let http = http_client();
    let from = |ip: &str| {
        let mut req = client.check(&key_body());
        req.headers_mut().insert("x-forwarded-for", ip.parse().unwrap());
        req
    };
    // The first request activates, so later checks are plain 200s.
    let resp = server
        .send(&http, {
            let mut req = client.activate(&key_body());
            req.headers_mut()
                .insert("x-forwarded-for", "203.0.113.1".parse().unwrap());
            req
        })
        .await;
    assert_eq!(resp.status(), 200);
    for _ in 0..2 {
        assert_eq!(server.send(&http, from("203.0.113.1")).await.status(), 200);
    }
    // That IP's burst of 3 is spent (within 1 s, at most one more token has arrived).
    let mut limited = None;
    for _ in 0..2 {
        let resp = server.send(&http, from("203.0.113.1")).await;
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let resp = limited.expect("the IP is limited after its burst");
    assert_eq!(error_body(&resp), (429, "too_many_requests".to_owned()));
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");

    // Other IPs still pass, until the API key's own burst of 5 (shared by every IP) is spent.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = server.send(&http, from(&format!("198.51.100.{i}"))).await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert_eq!(error_body(&resp), (429, "too_many_requests".to_owned()));
            break;
        }
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert_eq!(
        statuses.last(),
        Some(&429),
        "the key is limited across IPs: {statuses:?}"
    );

    // A request with another API key is not held back by this key's bucket.
    let other = LicenseClient::new("demo-read-only-key", "demo-read-only-secret", "");
    let mut req = other.check(&key_body());
    req.headers_mut()
        .insert("x-forwarded-for", "192.0.2.99".parse().unwrap());
    let resp = server.send(&http, req).await;
    assert_ne!(resp.status(), 429, "{:?}", resp.body());
}

/// `req` as sent through a trusted proxy for `ip`.
fn via(ip: &str, mut req: http::Request<Bytes>) -> http::Request<Bytes> {
    req.headers_mut().insert("x-forwarded-for", ip.parse().unwrap());
    req
}

/// `req` with its signature replaced: it names the vendor's API key (public: it ships inside every
/// copy of the application) without having been signed with the key's shared key.
fn forged(mut req: http::Request<Bytes>) -> http::Request<Bytes> {
    let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
    let start = auth.find("signature=\"").unwrap() + "signature=\"".len();
    let end = start + auth[start..].find('"').unwrap();
    let forged = format!("{}Zm9yZ2VkIHNpZ25hdHVyZQ=={}", &auth[..start], &auth[end..]);
    req.headers_mut().insert("authorization", forged.parse().unwrap());
    req
}

#[tokio::test]
async fn forged_signatures_from_many_addresses_do_not_spend_the_keys_budget() {
    let (server, client) = Server::start(
        "forged",
        &["--trust-forwarded-for", "--rate-per-key", "2", "--burst-per-key", "10"],
    );
    let http = http_client();
    let resp = server
        .send(&http, via("203.0.113.1", client.activate(&key_body())))
        .await;
    client.verify_license(&resp, "checker", KEY).expect("activation");
    // 200 forged checks from 20 addresses, each within its address's own limit.
    for a in 0..20 {
        for _ in 0..10 {
            let req = via(&format!("198.51.100.{a}"), forged(client.check(&key_body())));
            let resp = server.send(&http, req).await;
            assert_eq!(error_body(&resp), (400, "signature_mismatch".to_owned()));
        }
    }
    // The key's budget is untouched: the real client's signed checks from its own address pass.
    for _ in 0..5 {
        let resp = server.send(&http, via("203.0.113.1", client.check(&key_body()))).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
    }
}

/// A wrong-password activation for `username` from `ip`: `(status, code)`.
async fn guess(server: &Server, http: &HttpClient, client: &LicenseClient, ip: &str, username: &str) -> (u16, String) {
    let body = json!({
        "product": "demo-team", "hardware_id": format!("guess-{ip}"),
        "username": username, "password": "not the password",
    });
    error_body(&server.send(http, via(ip, client.activate(&body))).await)
}

/// A token bucket of `burst` refilled by at most `refilled` tokens during the run: the first `burst`
/// guesses are checked (400 license_not_found), then 429s, with at most `refilled` more checks among
/// them (a token that came back while a slow machine sent the guesses); and at least one 429.
fn checked_then_limited(answers: &[(u16, String)], burst: usize, refilled: usize) {
    let checked = (400, "license_not_found".to_owned());
    let limited = (429, "too_many_requests".to_owned());
    assert!(answers[..burst].iter().all(|a| *a == checked), "{answers:?}");
    assert!(answers.iter().all(|a| *a == checked || *a == limited), "{answers:?}");
    let extra = answers[burst..].iter().filter(|a| **a == checked).count();
    assert!(
        extra <= refilled,
        "{extra} checks beyond the burst, {refilled} refilled: {answers:?}"
    );
    assert!(answers.contains(&limited), "{answers:?}");
}

#[tokio::test]
async fn password_guesses_are_bounded_per_username_across_addresses() {
    // Defaults: 10 checks per username per minute.
    let (server, client) = Server::start("guess-user", &["--trust-forwarded-for"]);
    let http = http_client();
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..15 {
        answers.push(guess(&server, &http, &client, &format!("198.51.100.{i}"), "ann@example.com").await);
    }
    checked_then_limited(&answers, 10, started.elapsed().as_secs() as usize / 6 + 1);
    // Another username is not held back by ann's bucket.
    let other = guess(&server, &http, &client, "198.51.100.99", "bob@example.com").await;
    assert_eq!(other, (400, "license_not_found".to_owned()));
}

#[tokio::test]
async fn password_guesses_are_bounded_per_address_across_usernames() {
    // Defaults: 60 checks per address per minute.
    let (server, client) = Server::start("guess-ip", &["--trust-forwarded-for"]);
    let http = http_client();
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..90 {
        answers.push(guess(&server, &http, &client, "203.0.113.9", &format!("user-{i}@example.com")).await);
    }
    checked_then_limited(&answers, 60, started.elapsed().as_secs() as usize + 1);
    // Another address is not held back by this one's bucket.
    let other = guess(&server, &http, &client, "203.0.113.10", "user-0@example.com").await;
    assert_eq!(other, (400, "license_not_found".to_owned()));
}

/// A token request for the events' OAuth client with `secret`, as HTTP Basic.
fn token_request(secret: &str) -> http::Request<Bytes> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", events::OAUTH_CLIENT_ID));
    http::Request::builder()
        .method("POST")
        .uri("/api/v4/oauth_token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"))
        .body(Bytes::from_static(b"grant_type=client_credentials"))
        .unwrap()
}

/// The status and RFC 6749 `error` of a token endpoint answer (`ok` for a 200).
fn token_answer(resp: &http::Response<Bytes>) -> (u16, String) {
    let body: Value = serde_json::from_slice(resp.body()).expect("JSON");
    let error = body["error"].as_str().unwrap_or("ok").to_owned();
    (resp.status().as_u16(), error)
}

#[tokio::test]
async fn bearer_requests_spend_their_clients_budget() {
    let (server, client) = Server::start_with_oauth_client(
        "bearer-budget",
        &["--trust-forwarded-for", "--rate-per-key", "1", "--burst-per-key", "5"],
    );
    let http = http_client();
    let resp = server
        .send(&http, via("203.0.113.1", token_request(events::OAUTH_CLIENT_SECRET)))
        .await;
    assert_eq!(token_answer(&resp), (200, "ok".to_owned()), "{:?}", resp.body());
    let token: Value = serde_json::from_slice(resp.body()).unwrap();
    let bearer = |ip: &str| {
        let mut req = via(ip, client.check(&key_body()));
        let value = format!("Bearer {}", token["access_token"].as_str().unwrap());
        req.headers_mut().insert("authorization", value.parse().unwrap());
        req
    };
    // From many addresses, each within its own limit: the client's burst of 5 is spent, then 429.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = server.send(&http, bearer(&format!("198.51.100.{i}"))).await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert_eq!(error_body(&resp), (429, "too_many_requests".to_owned()));
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "the client is limited across addresses: {statuses:?}"
    );
    assert!((5..=7).contains(&statuses.len()), "{statuses:?}");
    // The API key of the same company has a budget of its own.
    let resp = server
        .send(&http, via("192.0.2.99", client.activate(&key_body())))
        .await;
    assert_ne!(resp.status(), 429, "{:?}", resp.body());
}

#[tokio::test]
async fn secret_guesses_at_the_token_endpoint_are_bounded_per_client_across_addresses() {
    // Defaults: 10 secret checks per client id per minute (the per-username bound).
    let (server, _) = Server::start_with_oauth_client("guess-client", &["--trust-forwarded-for"]);
    let http = http_client();
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..15 {
        let resp = server
            .send(&http, via(&format!("198.51.100.{i}"), token_request("wrong-secret")))
            .await;
        answers.push(token_answer(&resp));
    }
    let refilled = started.elapsed().as_secs() as usize / 6 + 1;
    let refused = answers
        .iter()
        .take_while(|a| **a == (401, "invalid_client".to_owned()))
        .count();
    assert!((10..=10 + refilled).contains(&refused), "{answers:?}");
    for answer in &answers[refused..] {
        assert_eq!(*answer, (429, "temporarily_unavailable".to_owned()), "{answers:?}");
    }
    assert!(refused < 15, "{answers:?}");
}
