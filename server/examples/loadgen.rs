//! Load generator for the benchmarks in docs/benchmarks.md: N workers, each with its own device on one
//! license, for a fixed time. `--mode pairs` (the default): each worker repeatedly activates and then
//! deactivates its device; reports activate+deactivate pairs per second. `--mode checks`: each worker
//! activates its device once, then checks it repeatedly (the most frequent request; after the first, its
//! license signature comes from the server's cache), then deactivates it; reports checks per second.
//! Latency percentiles either way. Loopback only; bounded in time and requests.
//!
//! cargo run --release -p license-server --example loadgen -- \
//!     --url http://127.0.0.1:8080 --api-key demo-api-key --shared-key demo-shared-key-change-me \
//!     --product demo --license-key DEMO-UNLIMITED-0004 --workers 32 --seconds 10 [--mode checks]

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use license_api::client::LicenseClient;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What each worker repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Activate, then deactivate, its own device: two RSA signatures per pair.
    Pairs,
    /// Check its own device, activated once beforehand: one RSA signature per check once cached.
    Checks,
}

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    api_key: String,
    #[arg(long)]
    shared_key: String,
    #[arg(long)]
    product: String,
    #[arg(long)]
    license_key: String,
    #[arg(long, default_value_t = 32)]
    workers: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, value_enum, default_value_t = Mode::Pairs)]
    mode: Mode,
    /// Hard cap on pairs (or checks) per worker, so a run always ends.
    #[arg(long, default_value_t = 1_000_000)]
    max_pairs: usize,
}

type Http = Client<HttpConnector, Full<Bytes>>;

/// One worker's connection pool, request signer and device.
#[derive(Clone)]
struct Worker {
    client: Http,
    signer: LicenseClient,
    url: String,
    body: Value,
}

impl Worker {
    /// Sends the requests in order; true when every one answered 200.
    async fn all_ok(&self, requests: impl IntoIterator<Item = http::Request<Bytes>>) -> bool {
        let mut ok = true;
        for req in requests {
            let (mut parts, body) = req.into_parts();
            parts.uri = format!("{}{}", self.url, parts.uri.path_and_query().unwrap())
                .parse()
                .unwrap();
            match self
                .client
                .request(http::Request::from_parts(parts, Full::new(body)))
                .await
            {
                Ok(resp) => {
                    ok &= resp.status() == 200;
                    let _ = resp.into_body().collect().await;
                }
                Err(_) => ok = false,
            }
        }
        ok
    }

    /// The latency of each unit of work (a pair or a check) that succeeded until `deadline`, and the
    /// number that failed.
    async fn run(self, mode: Mode, deadline: Instant, max: usize) -> (Vec<Duration>, usize) {
        let (mut latencies, mut errors) = (Vec::new(), 0usize);
        if mode == Mode::Checks && !self.all_ok([self.signer.activate(&self.body)]).await {
            return (latencies, 1);
        }
        while Instant::now() < deadline && latencies.len() < max {
            let t = Instant::now();
            let ok = match mode {
                Mode::Pairs => {
                    self.all_ok([self.signer.activate(&self.body), self.signer.deactivate(&self.body)])
                        .await
                }
                Mode::Checks => self.all_ok([self.signer.check(&self.body)]).await,
            };
            if ok {
                latencies.push(t.elapsed());
            } else {
                errors += 1;
            }
        }
        if mode == Mode::Checks {
            errors += usize::from(!self.all_ok([self.signer.deactivate(&self.body)]).await);
        }
        (latencies, errors)
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        args.url.starts_with("http://127.") || args.url.starts_with("http://localhost"),
        "the load generator only targets loopback addresses"
    );
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.workers)
        .build_http::<Full<Bytes>>();
    let signer = LicenseClient::new(&args.api_key, &args.shared_key, "");
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.workers)
        .map(|w| {
            let worker = Worker {
                client: client.clone(),
                signer: signer.clone(),
                url: args.url.clone(),
                body: json!({"product": args.product, "hardware_id": format!("load-{}-{w}", std::process::id()),
                    "license_key": args.license_key}),
            };
            tokio::spawn(worker.run(args.mode, deadline, args.max_pairs))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    report(args.mode, all, errors, started.elapsed().as_secs_f64());
}

fn report(mode: Mode, mut all: Vec<Duration>, errors: usize, elapsed: f64) {
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let (unit, per_unit) = match mode {
        Mode::Pairs => ("pairs", 2.0),
        Mode::Checks => ("checks", 1.0),
    };
    println!(
        "{unit}: {}  errors: {errors}  elapsed: {elapsed:.1}s  {unit}/s: {:.0}  requests/s: {:.0}  {} latency ms p50 {:.2} p90 {:.2} p99 {:.2}",
        all.len(),
        all.len() as f64 / elapsed,
        per_unit * all.len() as f64 / elapsed,
        unit.trim_end_matches('s'),
        pct(0.50),
        pct(0.90),
        pct(0.99),
    );
}
