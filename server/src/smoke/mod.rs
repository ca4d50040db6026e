//! `license-server smoke`: the deployment checks, through the project's own client
//! (`license_api::client`). Against a base URL — `license-server serve`, `cargo lambda watch`,
//! `sam local start-api` or a real deployment after `sam deploy` — it sends a fixed sequence of
//! requests (online activate → check → deactivate, offline uploads, bundles, the error answers) and
//! judges each answer's status, code and body, verifying every signed answer with the signer's public
//! key. With `--invoke-events` it runs every API Gateway event through `sam local invoke` instead and
//! judges the answer against the outcome its file name records (`server/src/events.rs`).
//!
//! It is safe against a live deployment: what it activates it deactivates again, also when a check
//! fails on the way (the cleanup lines at the end), so the smoke-test license ends as it started.

mod checks;
mod invoke;
mod race;
mod transport;

use checks::{Check, Ledger};
use license_api::client::LicenseClient;
use std::path::PathBuf;
use std::time::Duration;
use transport::Transport;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(clap::Args)]
pub struct SmokeArgs {
    /// Where the API answers, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com or
    /// http://127.0.0.1:8080 (the checks append /api/v4/...).
    #[arg(long, value_name = "URL", required_unless_present = "invoke_events")]
    pub base_url: Option<String>,
    /// The API key the checks sign with (catalog `api_keys`).
    #[arg(long, env = "LICENSE_SMOKE_API_KEY", required_unless_present = "invoke_events")]
    pub api_key: Option<String>,
    /// The API key's shared key (prefer the environment variable: a command line is visible to others).
    #[arg(
        long,
        env = "LICENSE_SMOKE_SHARED_KEY",
        hide_env_values = true,
        required_unless_present = "invoke_events"
    )]
    pub shared_key: Option<String>,
    /// The signer's public key (SPKI PEM, `signing-key.pub.pem`) every signed answer must verify with.
    #[arg(long, value_name = "PEM")]
    pub public_key: PathBuf,
    #[command(flatten)]
    pub license: SmokeLicense,
    /// First race 2×N concurrent activations of the license, which must have exactly N free slots:
    /// exactly N must get it (the winners are deactivated again). Off by default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=50))]
    pub race_slots: Option<u16>,
    /// How long one request may take (cargo lambda watch compiles a function on its first request).
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout_seconds: u64,
    /// Instead of HTTP: run every events/*.json file of DIR through `sam local invoke` (arguments for
    /// it after `--`) and judge each answer by the outcome its file name records.
    #[arg(long, value_name = "DIR", conflicts_with = "base_url")]
    pub invoke_events: Option<PathBuf>,
    /// Arguments for every `sam local invoke` (--template, --env-vars, ...), after `--`.
    #[arg(last = true, requires = "invoke_events")]
    pub sam_args: Vec<String>,
}

/// The licenses the checks use: a dedicated smoke-test license of the catalog (docs/deploy.md).
#[derive(clap::Args, Clone)]
pub struct SmokeLicense {
    /// Product short code of the smoke-test license.
    #[arg(long, required_unless_present = "invoke_events")]
    pub product: Option<String>,
    /// Its license key; it needs two free activation slots (one online, one offline device).
    #[arg(long, required_unless_present = "invoke_events")]
    pub license_key: Option<String>,
    /// Hardware id of the online device; the offline device is this with `-offline` appended.
    #[arg(long, default_value = "license-server-smoke")]
    pub hardware_id: String,
    /// A bundle product and license key for the bundle checks (skipped without them).
    #[arg(long, requires = "bundle_license_key")]
    pub bundle_product: Option<String>,
    #[arg(long, requires = "bundle_product")]
    pub bundle_license_key: Option<String>,
    /// A user-based product, username and password for a user activation (skipped without them).
    #[arg(long, requires_all = ["username", "password"])]
    pub user_product: Option<String>,
    #[arg(long, requires = "user_product")]
    pub username: Option<String>,
    /// Ignored without `--user-product`, so the environment variable may stay set for every run.
    #[arg(long, env = "LICENSE_SMOKE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Runs the checks `args` asks for; an error names every failed check.
pub async fn run(args: SmokeArgs) -> Result<(), Error> {
    let public_key = std::fs::read_to_string(&args.public_key)
        .map_err(|e| format!("cannot read the public key {}: {e}", args.public_key.display()))?;
    let timeout = Duration::from_secs(args.timeout_seconds);
    let failed = match &args.invoke_events {
        Some(dir) => invoke::run(dir, &args.sam_args, &public_key)?,
        None => {
            let (base_url, api_key, shared_key) = match (&args.base_url, &args.api_key, &args.shared_key) {
                (Some(u), Some(a), Some(s)) => (u, a, s),
                _ => return Err("--base-url, --api-key and --shared-key are required".into()),
            };
            let client = LicenseClient::new(api_key.as_str(), shared_key.as_str(), public_key);
            let transport = Transport::new(base_url, timeout)?;
            let (checks, skipped) = checks::sequence(&args.license, api_key, shared_key)?;
            for what in skipped {
                say(format_args!("skip  {what}"));
            }
            let mut report = Report::default();
            if let (Some(slots), Some(product), Some(key)) =
                (args.race_slots, &args.license.product, &args.license.license_key)
            {
                let license = (product.as_str(), key.as_str(), args.license.hardware_id.as_str());
                race::run(&mut report, &transport, &client, license, usize::from(slots)).await;
            }
            run_http(report, &transport, &client, checks).await
        }
    };
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("smoke: {} failed: {}", plural(failed.len(), "check"), failed.join("; ")).into())
    }
}

/// Sends the checks in order, then undoes what is still activated; returns the failed checks' names.
async fn run_http(
    mut report: Report,
    transport: &Transport,
    client: &LicenseClient,
    checks: Vec<Check>,
) -> Vec<String> {
    let mut open: Vec<(&'static str, Check)> = Vec::new();
    for check in checks {
        let (acknowledged, verdict) = exchange(transport, client, &check).await;
        report.judge(&check.name, verdict);
        match check.ledger {
            Ledger::Opens(tag, undo) if acknowledged => open.push((tag, *undo)),
            Ledger::Closes(tag) if acknowledged => open.retain(|(t, _)| *t != tag),
            _ => {}
        }
    }
    // Newest first, like a client giving back what it took; a failed cleanup is a failed check.
    for (_, undo) in open.into_iter().rev() {
        let (_, verdict) = exchange(transport, client, &undo).await;
        report.judge(&format!("cleanup: {}", undo.name), verdict);
    }
    say(format_args!(
        "smoke: {} passed, {} failed",
        report.passed,
        report.failed.len()
    ));
    report.failed
}

/// Sends a check's request, dated now; whether the server acknowledged it (2xx, whatever the
/// verification says: what it took must be given back) and the verdict with the time it took.
pub(crate) async fn exchange(
    transport: &Transport,
    client: &LicenseClient,
    check: &Check,
) -> (bool, Result<String, String>) {
    let started = std::time::Instant::now();
    let answer = transport.send(check.request.build(client)).await;
    let acknowledged = answer.as_ref().is_ok_and(|r| r.status().is_success());
    let verdict = answer
        .map_err(|e| e.to_string())
        .and_then(|r| check.expect.judge(client, &r))
        .map(|detail| format!("{detail:<32} {:6.2} s", started.elapsed().as_secs_f64()));
    (acknowledged, verdict)
}

/// One line per check; the failed checks' names for the final error.
#[derive(Default)]
pub(crate) struct Report {
    pub passed: usize,
    pub failed: Vec<String>,
}

impl Report {
    pub fn judge(&mut self, name: &str, verdict: Result<String, String>) {
        match verdict {
            Ok(detail) => {
                self.passed += 1;
                say(format_args!("ok    {name:<64} {detail}"));
            }
            Err(why) => {
                say(format_args!("FAIL  {name:<64} {why}"));
                self.failed.push(name.to_owned());
            }
        }
    }
}

/// A report line on standard output; a closed pipe (`| head`) must not stop the checks and their cleanup.
pub(crate) fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::checks::{Body, Expect, Req, Sign};
    use super::*;
    use crate::demo::EXAMPLE_CATALOG;
    use http::Method;
    use license_api::catalog::{import, Catalog};
    use license_api::handlers::Endpoint;
    use license_api::state::AppState;
    use license_api::store::sqlite::SqliteStore;
    use serde_json::json;
    use std::sync::Arc;

    /// `license-server serve`'s handling on a fresh SQLite store with the example catalog, in process.
    async fn server(dir: &std::path::Path) -> (String, String, tokio::sync::oneshot::Sender<()>) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let (signer, _, _) = crate::keys::generate(dir, 2048, true).unwrap();
        let public_key = signer.public_key_pem().to_owned();
        let store = Arc::new(SqliteStore::open(dir.join(crate::stores::DB_FILE)).unwrap());
        import(
            &*store,
            &Catalog::parse(EXAMPLE_CATALOG, "examples/catalog.json").unwrap(),
        )
        .await
        .unwrap();
        let state = Arc::new(AppState::new(store, signer, Duration::ZERO));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = crate::limits::Limits::unlimited();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            crate::http_server::serve_with(listener, state, &limits, shutdown).await
        });
        (base, public_key, stop)
    }

    /// A run whose deactivation fails still gives back what it activated: the cleanup deactivates it,
    /// and the failure names the check, not the cleanup.
    #[tokio::test]
    async fn what_a_failed_run_activated_is_deactivated_at_the_end() {
        let dir = std::env::temp_dir().join(format!("license-server-smoke-unit-{}", std::process::id()));
        let (base, public_key, stop) = server(&dir).await;
        let client = LicenseClient::new("demo-api-key", "demo-shared-key-change-me", public_key);
        let transport = Transport::new(&base, Duration::from_secs(30)).unwrap();
        let device = json!({"product": "demo", "hardware_id": "half-way", "license_key": "DEMO-0000-0000-0001"});
        let deactivate = Req {
            method: Method::POST,
            path: Endpoint::DeactivateLicense.path(),
            body: Body::Json(device.clone()),
            sign: Sign::Client,
        };
        let activate = Req {
            path: Endpoint::ActivateLicense.path(),
            ..deactivate.clone()
        };
        let check = |name: &str, request: Req, expect: Expect, ledger: Ledger| Check {
            name: name.into(),
            request,
            expect,
            ledger,
        };
        let undo = check(
            "deactivate",
            deactivate.clone(),
            Expect::Text("license_deactivated"),
            Ledger::None,
        );
        let license = Expect::License {
            hardware_id: "half-way".into(),
            ident: "DEMO-0000-0000-0001".into(),
        };
        let forged = Req {
            sign: Sign::WrongSharedKey,
            ..deactivate
        };
        let checks = vec![
            check("activate", activate, license, Ledger::Opens("online", Box::new(undo))),
            check(
                "deactivate (fails)",
                forged,
                Expect::Text("license_deactivated"),
                Ledger::Closes("online"),
            ),
        ];
        let failed = run_http(Report::default(), &transport, &client, checks).await;
        assert_eq!(failed, ["deactivate (fails)"]);
        let resp = transport.send(client.check(&device)).await.unwrap();
        let inactive = Expect::error(400, &["device_not_found", "license_not_active"]);
        assert_eq!(inactive.judge(&client, &resp), Ok("400 license_not_active".into()));
        let _ = stop.send(());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
