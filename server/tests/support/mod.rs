//! What the binary-level server tests share: starting `license-server serve` as a child process, and
//! sending it a request.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_license-server");

/// Starts `serve` on `data` (plus `args`) on a free port and waits for its "listening" log line;
/// returns the child and its address. The log keeps being drained (one line per request), so the
/// server never blocks on a full pipe.
pub fn serve(data: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server reports its address");
    (child, addr)
}

/// Sends `req` (its path and query; the client's signing headers) to the server at `addr` and reads the
/// whole answer.
#[allow(dead_code)] // Not every test binary that starts a server sends it requests itself.
pub async fn send(addr: &str, req: http::Request<Bytes>) -> http::Response<Bytes> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{addr}{}", parts.uri.path_and_query().unwrap())
        .parse()
        .unwrap();
    let resp = client
        .request(http::Request::from_parts(parts, Full::new(body)))
        .await
        .expect("request");
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}
