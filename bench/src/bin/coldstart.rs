//! Cold-start benchmark. Starts each release function binary against a local stub of the Lambda Runtime
//! API (AWS_LAMBDA_RUNTIME_API on 127.0.0.1) and measures, per process start:
//!   - init: from spawn to the function's first `GET /2018-06-01/runtime/invocation/next`
//!     (config load, key parse, AWS config and DynamoDB client build all happen before it);
//!   - first invocation: from spawn to the posted response of the first event (a real request of the
//!     function's own endpoint against DynamoDB Local, so it includes the first connection).
//!
//! Binaries run in the order given, once per round, so a round activates, checks and deactivates one
//! device. The baseline binary (`baseline_lambda`) is measured in the same run; each function's median init is
//! reported as a ratio to the baseline's. Prints a Markdown table.

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
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
    /// DynamoDB table seeded with examples/catalog.json.
    #[arg(long)]
    table: String,
    #[arg(long)]
    signing_key: PathBuf,
}

/// Per binary: name, init times (ms), first-invocation times (ms), response statuses.
struct Samples {
    name: String,
    init: Vec<f64>,
    first: Vec<f64>,
    statuses: Vec<String>,
}

#[derive(Default)]
struct Run {
    started: Option<Instant>,
    event: Value,
    first_next: Option<Duration>,
    responded: Option<Duration>,
    status: Option<u64>,
    error: Option<String>,
    served: bool,
}

struct Stub {
    run: Mutex<Run>,
    done: Notify,
}

const REQUEST_ID: &str = "coldstart-request-1";

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
        let event = {
            let mut run = stub.run.lock().unwrap();
            if run.served {
                None
            } else {
                run.served = true;
                run.first_next = run.started.map(|s| s.elapsed());
                Some(run.event.to_string())
            }
        };
        let Some(event) = event else {
            // Only one invocation per process: park the runtime until the process is killed.
            std::future::pending::<()>().await;
            unreachable!();
        };
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 30_000;
        let resp = hyper::Response::builder()
            .header("lambda-runtime-aws-request-id", REQUEST_ID)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:coldstart",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0",
            )
            .body(Full::new(Bytes::from(event)))
            .unwrap();
        return Ok(resp);
    }
    {
        let mut run = stub.run.lock().unwrap();
        if path.ends_with("/response") {
            run.responded = run.started.map(|s| s.elapsed());
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            run.status = v["statusCode"].as_u64();
        } else {
            run.error = Some(format!("{path}: {}", String::from_utf8_lossy(&body)));
        }
    }
    stub.done.notify_one();
    Ok(hyper::Response::builder()
        .status(202)
        .body(Full::new(Bytes::new()))
        .unwrap())
}

fn event_for(binary: &str, run: usize) -> Value {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let events: std::collections::HashMap<_, _> = license_server::events::generate(
        license_server::events::API_KEY,
        license_server::events::SHARED_KEY,
        &date,
    )
    .into_iter()
    .collect();
    let device = |hw: String| json!({"product": "demo", "hardware_id": hw, "license_key": "DEMO-UNLIMITED-0004"});
    let (file, params) = match binary {
        "activate_license" => ("activate_license-ok.json", device(format!("coldstart-{run}"))),
        "check_license" => ("check_license-ok.json", device(format!("coldstart-{run}"))),
        "deactivate_license" => ("deactivate_license-ok.json", device(format!("coldstart-{run}"))),
        _ => return events["check_license-root-ok.json"].clone(),
    };
    let mut event = events[file].clone();
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let stub = Arc::new(Stub {
        run: Mutex::new(Run::default()),
        done: Notify::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let server_stub = stub.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let stub = server_stub.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| runtime_api(req, stub.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let mut binaries = vec![args.baseline.clone()];
    binaries.extend(args.functions.iter().cloned());
    let mut results: Vec<Samples> = binaries
        .iter()
        .map(|b| Samples {
            name: b.file_name().unwrap().to_string_lossy().into_owned(),
            init: vec![],
            first: vec![],
            statuses: vec![],
        })
        .collect();
    for run in 0..args.runs {
        for (i, binary) in binaries.iter().enumerate() {
            let name = results[i].name.clone();
            {
                let mut r = stub.run.lock().unwrap();
                *r = Run {
                    event: event_for(&name, run),
                    ..Run::default()
                };
            }
            let started = Instant::now();
            stub.run.lock().unwrap().started = Some(started);
            let mut child = tokio::process::Command::new(binary)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", &name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
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
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn function");
            let finished = tokio::time::timeout(Duration::from_secs(30), stub.done.notified()).await;
            let _ = child.kill().await;
            let r = stub.run.lock().unwrap();
            let entry = &mut results[i];
            match (finished, r.first_next, r.responded, &r.error) {
                (Ok(()), Some(init), Some(first), None) => {
                    entry.init.push(init.as_secs_f64() * 1000.0);
                    entry.first.push(first.as_secs_f64() * 1000.0);
                    entry.statuses.push(r.status.map_or("?".into(), |s| s.to_string()));
                }
                _ => entry.statuses.push(format!("failed: {:?}", r.error)),
            }
        }
    }

    let base_init = median(results[0].init.clone());
    println!("| binary | size (bytes) | median init (spawn → first /next) | ratio to baseline | median first invocation | statuses |");
    println!("|---|---|---|---|---|---|");
    for (
        i,
        Samples {
            name,
            init,
            first,
            statuses,
        },
    ) in results.iter().enumerate()
    {
        let size = std::fs::metadata(&binaries[i]).map(|m| m.len()).unwrap_or(0);
        let mut s = statuses.clone();
        s.dedup();
        println!(
            "| {name} | {size} | {:.2} ms | {:.2}× | {:.2} ms | {} |",
            median(init.clone()),
            median(init.clone()) / base_init,
            median(first.clone()),
            s.join(",")
        );
    }
}
