//! The HTTP server's own defences, with a stand-in route so each is tested alone: a panicking handler
//! answers a SPEC-shaped 500 and the server keeps serving; slow bodies and idle connections are cut
//! off by their timeouts; connections beyond the cap wait until one closes.

use futures::FutureExt;
use license_api::http::{ApiRequest, ApiResponse};
use license_server::http_server::{serve_route, Route};
use license_server::limits::Limits;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
