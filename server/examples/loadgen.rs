//! Load generator for the benchmark in docs/benchmarks.md: N workers, each repeatedly activating and
//! then deactivating its own device on one license, for a fixed time. Reports activate+deactivate
//! pairs per second and latency percentiles. Loopback only; bounded in time and requests.
//!
//! cargo run --release -p license-server --example loadgen -- \
//!     --url http://127.0.0.1:8080 --api-key demo-api-key --shared-key demo-shared-key-change-me \
//!     --product demo --license-key DEMO-UNLIMITED-0004 --workers 32 --seconds 10

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use license_api::client::LicenseClient;
use serde_json::json;
use std::time::{Duration, Instant};

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
    /// Hard cap on pairs per worker, so a run always ends.
    #[arg(long, default_value_t = 1_000_000)]
    max_pairs: usize,
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
    let mut tasks = Vec::new();
    for w in 0..args.workers {
        let (client, signer) = (client.clone(), signer.clone());
        let (url, product, key) = (args.url.clone(), args.product.clone(), args.license_key.clone());
        let max_pairs = args.max_pairs;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let body = json!({"product": product, "hardware_id": format!("load-{}-{w}", std::process::id()), "license_key": key});
            while Instant::now() < deadline && latencies.len() < max_pairs {
                let t = Instant::now();
                let mut ok = true;
                for req in [signer.activate(&body), signer.deactivate(&body)] {
                    let (mut parts, body) = req.into_parts();
                    parts.uri = format!("{url}{}", parts.uri.path_and_query().unwrap()).parse().unwrap();
                    match client.request(http::Request::from_parts(parts, Full::new(body))).await {
                        Ok(resp) => {
                            ok &= resp.status() == 200;
                            let _ = resp.into_body().collect().await;
                        }
                        Err(_) => ok = false,
                    }
                }
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "pairs: {}  errors: {errors}  elapsed: {elapsed:.1}s  pairs/s: {:.0}  requests/s: {:.0}  pair latency ms p50 {:.2} p90 {:.2} p99 {:.2}",
        all.len(),
        all.len() as f64 / elapsed,
        2.0 * all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
    );
}
