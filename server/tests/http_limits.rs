//! The HTTP server's own defences, with a stand-in route so each is tested alone: a panicking handler
//! answers a SPEC-shaped 500 and the server keeps serving; slow bodies and idle connections are cut
//! off by their timeouts; connections beyond the cap wait until one closes, and one address cannot
//! take them all; the default rates admit a client within LicenseSpring's documented limits; offline
//! uploads get their larger body limit; malformed HTTP gets the SPEC error body.

use futures::FutureExt;
use license_api::http::{ApiRequest, ApiResponse};
use license_server::http_server::{serve_route, Route};
use license_server::limits::{Limits, DEFAULT_BURST_PER_IP, DEFAULT_RATE_PER_IP};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Answers 200 "ok", except `/panic`, which panics.
fn route() -> Route {
    Arc::new(|req: ApiRequest| {
        async move {
            if req.path == "/panic" {
                panic!("a bug in a handler");
            }
            ApiResponse::text("ok")
        }
        .boxed()
    })
}

async fn start(limits: Limits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { serve_route(listener, route(), &limits, std::future::pending()).await });
    addr
}

fn quick(limits: Limits) -> Limits {
    Limits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        ..limits
    }
}

/// Reads one response (headers, and the body by Content-Length) without closing the connection.
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, head, text[end + 4..end + 4 + len].to_owned());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(n > 0, "connection closed before a full response: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn assert_spec_error(body: &str, status: u16, code: &str) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v.as_object().unwrap().len(), 3, "{body}");
    assert_eq!(
        (v["status"].as_u64(), v["code"].as_str()),
        (Some(status as u64), Some(code)),
        "{body}"
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let addr = start(Limits::default()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let (status, head, body) = read_response(&mut conn).await;
    assert_eq!(status, 500);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_spec_error(&body, 500, "internal_error");
    assert!(!body.contains("bug"), "the panic message stays in the log: {body}");
    // The same connection, and the server, carry on.
    conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut conn).await.0, 200);
    let mut other = TcpStream::connect(addr).await.unwrap();
    other.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut other).await.0, 200);
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out_with_a_spec_error() {
    let addr = start(quick(Limits::default())).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .await
        .unwrap();
    let started = Instant::now();
    let (status, head, body) = read_response(&mut conn).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 400);
    assert_spec_error(&body, 400, "validation_error");
    assert!(head.contains("connection: close"), "{head}");
}

#[tokio::test]
async fn idle_and_slow_header_connections_are_closed() {
    let addr = start(quick(Limits::default())).await;
    for sent in [&b""[..], b"GET / HTTP/1.1\r\nhost:"] {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(sent).await.unwrap();
        let mut buf = [0u8; 1024];
        // Closed (EOF or reset) after the 1 s header timeout, not left open.
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the server closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let addr = start(Limits {
        max_connections: 1,
        // The global cap alone (one address could otherwise hold at most half).
        max_connections_per_ip: 0,
        header_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    let holder = TcpStream::connect(addr).await.unwrap();
    // Let the server accept the holder (and take the only slot).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf))
            .await
            .is_err(),
        "served while every slot was taken"
    );
    drop(holder);
    assert_eq!(read_response(&mut waiting).await.0, 200);
}

/// `requests` requests on each of `connections` keep-alive connections at once; their statuses.
async fn burst(addr: SocketAddr, connections: usize, requests: usize) -> Vec<u16> {
    let clients = (0..connections).map(|_| {
        tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            let mut statuses = Vec::new();
            for _ in 0..requests {
                conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
                let (status, _, body) = read_response(&mut conn).await;
                if status == 429 {
                    assert_spec_error(&body, 429, "too_many_requests");
                }
                statuses.push(status);
            }
            statuses
        })
    });
    let mut all = Vec::new();
    for client in futures::future::join_all(clients).await {
        all.extend(client.unwrap());
    }
    all
}

/// An SDK starting up sends about 50 requests within one second from one address; LicenseSpring
/// documents 200 requests per 10 s per IP. With the defaults none of them may answer 429.
#[tokio::test]
async fn a_client_within_the_documented_rates_never_sees_429() {
    let addr = start(Limits::default()).await;
    let startup = burst(addr, 10, 5).await;
    assert!(startup.iter().all(|s| *s == 200), "start-up burst: {startup:?}");
    // The rest of the documented 200 per 10 s, at once.
    let window = burst(addr, 10, 15).await;
    assert!(window.iter().all(|s| *s == 200), "documented window: {window:?}");
}

#[tokio::test]
async fn above_the_documented_rate_the_ip_limit_still_answers_429() {
    let addr = start(Limits::default()).await;
    let started = Instant::now();
    let statuses = burst(addr, 10, 60).await;
    let elapsed = started.elapsed().as_secs() + 1;
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let limited = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(ok + limited, 600, "{statuses:?}");
    let allowed = u64::from(DEFAULT_BURST_PER_IP) + u64::from(DEFAULT_RATE_PER_IP) * elapsed;
    assert!(ok <= allowed, "{ok} answered 200 in under {elapsed} s");
    assert!(limited > 0 || allowed >= 600, "{ok} answered 200 in under {elapsed} s");
}

/// Connects from `ip` (another loopback address stands for another client).
async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    // The numbers: a cap of 32 and 96 half-open sockets; the default per-address cap is
    // clamped to half the global one, 16.
    let addr = start(Limits {
        max_connections: 32,
        header_timeout: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    // 96 sockets that never send a header, all from 127.0.0.1.
    let mut held = Vec::new();
    for _ in 0..96 {
        held.push(connect_from("127.0.0.1", addr).await);
    }
    // The 17th is over its address's cap: answered 429 in the SPEC shape, not left waiting.
    let (status, head, body) = read_response(&mut held[16]).await;
    assert_eq!(status, 429, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert_spec_error(&body, 429, "too_many_requests");
    // Another address is served while every one of them is still open.
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut other).await.0, 200);
    drop(held);
}

/// Sends `body` to `path` on a fresh connection; its status and body.
async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // The server may answer 413 and stop reading part-way.
    let _ = conn.write_all(body).await;
    let (status, _, body) = read_response(&mut conn).await;
    (status, body)
}

#[tokio::test]
async fn offline_uploads_get_their_documented_128_kib() {
    let addr = start(Limits::default()).await;
    let upload = vec![b'A'; 100 * 1024];
    for endpoint in [
        "activate_offline",
        "deactivate_offline",
        "activate_bundle_offline",
        "deactivate_bundle_offline",
    ] {
        let path = format!("/api/v4/{endpoint}");
        assert_eq!(post(addr, &path, &upload).await.0, 200, "{path}");
        assert_eq!(post(addr, &path, &vec![b'A'; 128 * 1024]).await.0, 200, "{path}");
        let (status, body) = post(addr, &path, &vec![b'A'; 128 * 1024 + 1]).await;
        assert_eq!(status, 413, "{path}");
        assert_spec_error(&body, 413, "payload_too_large");
    }
    // Every other route keeps 64 KiB.
    let (status, body) = post(addr, "/api/v4/activate_license", &upload).await;
    assert_eq!(status, 413);
    assert_spec_error(&body, 413, "payload_too_large");
    assert_eq!(post(addr, "/api/v4/activate_license", &[b' '; 64 * 1024]).await.0, 200);
}

#[tokio::test]
async fn malformed_http_gets_the_spec_error_body() {
    let addr = start(Limits::default()).await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "x-a: b\r\n".repeat(101));
    let cases: [(&[u8], u16); 6] = [
        (b"GET / HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n", 400),
        (long_uri.as_bytes(), 414),
        (many_headers.as_bytes(), 431),
        (b"POST / HTTP/1.1\r\ncontent-length: ten\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ];
    for (request, expected) in cases {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(request).await.unwrap();
        let (status, head, body) = read_response(&mut conn).await;
        let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        assert_eq!(status, expected, "{shown}: {head}");
        assert!(head.contains("content-type: application/json"), "{shown}: {head}");
        assert_spec_error(&body, expected, "validation_error");
    }
}

#[tokio::test]
async fn a_malformed_request_after_good_ones_on_one_connection_gets_the_spec_body() {
    let addr = start(Limits::default()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // Pipelined: a request with a body, one without, then a broken one.
    conn.write_all(
        b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 18\r\n\r\nGET / HTTP/1.1\r\n\r\n\
          GET / HTTP/1.1\r\nhost: x\r\n\r\n\
          GET / HTTP/1.1\r\nhost x\r\n\r\n",
    )
    .await
    .unwrap();
    // Their answers, in order, until the server closes the connection.
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let mut rest = String::from_utf8(all).unwrap();
    let mut answers = Vec::new();
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = rest[..end].to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        answers.push((head[9..12].to_owned(), rest[end + 4..end + 4 + len].to_owned()));
        rest = rest[end + 4 + len..].to_owned();
    }
    let statuses: Vec<&str> = answers.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(statuses, ["200", "200", "400"], "{answers:?}");
    assert_spec_error(&answers[2].1, 400, "validation_error");
}

#[tokio::test]
async fn a_chunked_request_is_served_and_its_connection_closed() {
    let addr = start(Limits::default()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut conn).await;
    assert_eq!(status, 200);
    assert!(head.contains("connection: close"), "{head}");
}
