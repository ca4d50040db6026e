//! Cold-start and sizing benchmark (docs/benchmarks.md). Starts each release function binary against a
//! local stub of the Lambda Runtime API (AWS_LAMBDA_RUNTIME_API on 127.0.0.1) and measures, per process
//! start:
//!   - init: from spawn to the function's first `GET /2018-06-01/runtime/invocation/next`
//!     (config load, key parse, AWS config and DynamoDB client build all happen before it);
//!   - first invocation: from spawn to the posted response of the first event (a real request of the
//!     function's own endpoint against DynamoDB Local, so it includes the first connection);
//!   - with `--warm N`, N more invocations of the same process, each timed from the event handed out to
//!     its response posted: what a warm instance bills.
//!
//! With `--cgroup-procs FILE` every binary (the baseline's too) starts inside that cgroup, so a CPU quota
//! set on it (`cpu.max`, or `cpu.cfs_quota_us`) simulates Lambda's CPU share for a memory size
//! (scripts/bench-lambda-size.sh). Binaries run in the order given, once per round, so a round
//! activates, checks and deactivates the same devices. The baseline binary (`baseline_lambda`) is
//! measured in the same run; each function's median init is reported as a ratio to the baseline's.
//! Prints a Markdown table.

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

#[derive(Parser)]
struct Args {
    /// Function binaries (release builds).
    #[arg(long, value_delimiter = ',')]
    functions: Vec<PathBuf>,
    #[arg(long)]
    baseline: PathBuf,
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Invocations after the first, per process start.
    #[arg(long, default_value_t = 0)]
    warm: usize,
    /// A cgroup's `cgroup.procs`: every binary starts inside it.
    #[arg(long)]
    cgroup_procs: Option<PathBuf>,
    /// What the functions are told their memory size is (AWS_LAMBDA_FUNCTION_MEMORY_SIZE).
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// DynamoDB table seeded with examples/catalog.json.
    #[arg(long)]
    table: String,
    #[arg(long)]
    signing_key: PathBuf,
    /// More environment for every binary, `NAME=VALUE`, repeatable: e.g. `SEALING_KEY_BASE64=...` starts
    /// the functions as a deployment with single sign-on configured.
    #[arg(long = "env", value_parser = parse_env)]
    extra_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

/// Per binary: name, init times, first-invocation times, warm invocation times (ms), statuses.
#[derive(Default)]
struct Samples {
    name: String,
    init: Vec<f64>,
    first: Vec<f64>,
    warm: Vec<f64>,
    statuses: Vec<String>,
}

/// One process start: the events still to hand out, and when each was handed out and answered.
#[derive(Default)]
struct Run {
    started: Option<Instant>,
    events: VecDeque<Value>,
    expected: usize,
    handed: Vec<Duration>,
    responded: Vec<Duration>,
    statuses: Vec<u64>,
    error: Option<String>,
}

impl Run {
    fn since_start(&self) -> Duration {
        self.started.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

struct Stub {
    run: Mutex<Run>,
    done: Notify,
}

fn invocation(event: Value, n: usize) -> hyper::Response<Full<Bytes>> {
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 30_000;
    hyper::Response::builder()
        .header("lambda-runtime-aws-request-id", format!("coldstart-request-{n}"))
        .header("lambda-runtime-deadline-ms", deadline.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:coldstart",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Sampled=0",
        )
        .body(Full::new(Bytes::from(event.to_string())))
        .unwrap()
}

async fn runtime_api(
    req: hyper::Request<Incoming>,
    stub: Arc<Stub>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == http::Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        let next = {
            let mut run = stub.run.lock().unwrap();
            let at = run.since_start();
            let n = run.handed.len();
            run.events.pop_front().map(|e| {
                run.handed.push(at);
                (e, n)
            })
        };
        let Some((event, n)) = next else {
            // Every event handed out: park the runtime until the process is killed.
            std::future::pending::<()>().await;
            unreachable!();
        };
        return Ok(invocation(event, n));
    }
    let finished = {
        let mut run = stub.run.lock().unwrap();
        if path.ends_with("/response") {
            let at = run.since_start();
            run.responded.push(at);
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            run.statuses.push(v["statusCode"].as_u64().unwrap_or(0));
        } else {
            run.error = Some(format!("{path}: {}", String::from_utf8_lossy(&body)));
        }
        run.error.is_some() || run.responded.len() == run.expected
    };
    if finished {
        stub.done.notify_one();
    }
    Ok(hyper::Response::builder()
        .status(202)
        .body(Full::new(Bytes::new()))
        .unwrap())
}

/// The request a binary answers in round `run`, invocation `k` (0 = the cold one). Activations of a
/// round's later invocations are new devices (two signatures each), which the round's deactivations
/// then free; its checks all check the round's first device.
fn event_for(events: &HashMap<&str, Value>, binary: &str, run: usize, k: usize) -> Value {
    let hw = if k == 0 || binary == "check_license" {
        format!("coldstart-{run}")
    } else {
        format!("coldstart-{run}-{k}")
    };
    let params = json!({"product": "demo", "hardware_id": hw, "license_key": "DEMO-UNLIMITED-0004"});
    let file = format!("{binary}-ok.json");
    let mut event = match events.get(file.as_str()) {
        Some(e) => e.clone(),
        // Functions without a plain `-ok` event (the multipart ones) answer their first success event,
        // and anything unknown the root check: init, what they are compared on, does not depend on it.
        None => events
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{binary}-")) && name.ends_with("-ok.json"))
            .min_by_key(|(name, _)| *name)
            .map_or_else(|| events["check_license-root-ok.json"].clone(), |(_, e)| e.clone()),
    };
    if !matches!(binary, "activate_license" | "check_license" | "deactivate_license") {
        return event;
    }
    if event["requestContext"]["http"]["method"] == "POST" {
        event["body"] = Value::String(params.to_string());
    } else {
        let q: Vec<String> = params
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        event["rawQueryString"] = Value::String(q.join("&"));
    }
    event
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// The stub Runtime API on a free loopback port.
async fn serve_stub(stub: Arc<Stub>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let stub = stub.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| runtime_api(req, stub.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    api
}

/// The command that starts `binary` like Lambda would, inside the cgroup if one is given: a shell
/// joins it and then becomes the binary, so all of init runs under the quota.
fn command(args: &Args, binary: &PathBuf, name: &str, api: std::net::SocketAddr) -> tokio::process::Command {
    let mut cmd = match &args.cgroup_procs {
        Some(procs) => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(r#"echo $$ > "$0" && exec "$@""#).arg(procs).arg(binary);
            c
        }
        None => tokio::process::Command::new(binary),
    };
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", args.memory_mb.to_string())
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("TABLE_NAME", &args.table)
        .env("SIGNING_KEY_FILE", &args.signing_key)
        .env(
            "DYNAMODB_ENDPOINT",
            std::env::var("DYNAMODB_ENDPOINT").expect("DYNAMODB_ENDPOINT"),
        )
        .env("RUST_LOG", "warn")
        .envs(args.extra_env.iter().cloned())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Starts `binary` once with its round's events and records what it measured into `entry`.
async fn start_once(
    args: &Args,
    stub: &Stub,
    api: std::net::SocketAddr,
    binary: &PathBuf,
    entry: &mut Samples,
    run: usize,
) {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let events: HashMap<_, _> = license_server::events::generate(
        license_server::events::API_KEY,
        license_server::events::SHARED_KEY,
        &date,
    )
    .into_iter()
    .collect();
    let queue: VecDeque<Value> = (0..=args.warm)
        .map(|k| event_for(&events, &entry.name, run, k))
        .collect();
    *stub.run.lock().unwrap() = Run {
        expected: queue.len(),
        events: queue,
        started: Some(Instant::now()),
        ..Run::default()
    };
    let mut child = command(args, binary, &entry.name, api).spawn().expect("spawn function");
    let finished = tokio::time::timeout(Duration::from_secs(60), stub.done.notified()).await;
    let _ = child.kill().await;
    let r = stub.run.lock().unwrap();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    match (finished, r.handed.first(), r.responded.first(), &r.error) {
        (Ok(()), Some(init), Some(first), None) => {
            entry.init.push(ms(init));
            entry.first.push(ms(first));
            entry
                .warm
                .extend(r.handed.iter().zip(&r.responded).skip(1).map(|(h, a)| ms(a) - ms(h)));
            entry.statuses.extend(r.statuses.iter().map(|s| s.to_string()));
        }
        _ => entry.statuses.push(format!("failed: {:?}", r.error)),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let stub = Arc::new(Stub {
        run: Mutex::new(Run::default()),
        done: Notify::new(),
    });
    let api = serve_stub(stub.clone()).await;
    let mut binaries = vec![args.baseline.clone()];
    binaries.extend(args.functions.iter().cloned());
    let mut results: Vec<Samples> = binaries
        .iter()
        .map(|b| Samples {
            name: b.file_name().unwrap().to_string_lossy().into_owned(),
            ..Samples::default()
        })
        .collect();
    for run in 0..args.runs {
        for (binary, entry) in binaries.iter().zip(results.iter_mut()) {
            start_once(&args, &stub, api, binary, entry, run).await;
        }
    }
    report(&binaries, &results);
}

/// Milliseconds for the table; `n/a` where there were no samples (no `--warm`).
fn ms(x: f64) -> String {
    if x.is_nan() {
        "n/a".to_owned()
    } else {
        format!("{x:.2} ms")
    }
}

fn report(binaries: &[PathBuf], results: &[Samples]) {
    let base_init = median(&results[0].init);
    println!("| binary | size (bytes) | median init (spawn → first /next) | ratio to baseline | median first invocation | warm mean | warm p50 | warm p90 | statuses |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (binary, s) in binaries.iter().zip(results) {
        let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
        let mut statuses: Vec<String> = s.statuses.clone();
        statuses.sort();
        statuses.dedup();
        println!(
            "| {} | {size} | {} | {:.2}× | {} | {} | {} | {} | {} |",
            s.name,
            ms(median(&s.init)),
            median(&s.init) / base_init,
            ms(median(&s.first)),
            ms(s.warm.iter().sum::<f64>() / s.warm.len() as f64),
            ms(median(&s.warm)),
            ms(percentile(&s.warm, 0.9)),
            statuses.join(",")
        );
    }
}
