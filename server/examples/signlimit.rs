//! The signing limit for the benchmarks in docs/benchmarks.md (issue 19, item 1): RSA signatures per
//! second this build's own `Signer` makes, with one thread per CPU it may run on, every thread signing a
//! different message (nothing cached) for a fixed time. The server's throughput is divided by this
//! figure (over the signatures a request costs) to give its ratio to the limit, so run it pinned to the
//! same CPUs as the server (`taskset -c`): `available_parallelism` then counts only those.
//!
//! cargo run --profile server -p license-server --example signlimit -- --key signing-key.pem --seconds 5

use clap::Parser;
use license_api::signing::Signer;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The signing key PEM (`license-server keygen`).
    #[arg(long)]
    key: std::path::PathBuf,
    /// How long each thread signs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Threads; defaults to the CPUs this process may run on.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() {
    let args = Args::parse();
    let pem = std::fs::read_to_string(&args.key)
        .unwrap_or_else(|e| panic!("cannot read the signing key {}: {e}", args.key.display()));
    let signer = Signer::from_pem(&pem).unwrap_or_else(|e| panic!("{}: {e}", args.key.display()));
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let signed: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let signer = &signer;
                s.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        // A license-signature-sized message, different every time.
                        let message = format!("load-{t}-{n}#DEMO-UNLIMITED-0004#2027-12-31t00:00:00z");
                        std::hint::black_box(signer.sign(message.as_bytes()));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("signing thread")).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "signatures: {signed}  threads: {threads}  elapsed: {elapsed:.1}s  signatures/s: {:.0}  per thread: {:.0}  ms per signature: {:.3}",
        signed as f64 / elapsed,
        signed as f64 / elapsed / threads as f64,
        elapsed * 1000.0 * threads as f64 / signed as f64,
    );
}
