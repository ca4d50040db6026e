//! `license-server`: the whole License API on one machine, and the operator's tools.

use clap::{Parser, Subcommand};
use license_api::catalog::{import_with, Catalog, ImportOptions};
use license_api::state::AppState;
use license_api::store::sqlite::IfMissing;
use license_api::store::ErrorChain;
use license_server::audit::{AuditQuery, RetentionArg};
use license_server::inspect::{self, LicenseSelector};
use license_server::limits::LimitArgs;
use license_server::stores::StoreArgs;
use license_server::{demo, http_server, keys};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;

// The server answers a panicking request with a 500 and serves on; under abort one panic would drop
// every in-flight request instead (docs/limits.md).
#[cfg(panic = "abort")]
compile_error!(
    "license-server must be built with panic = \"unwind\", Cargo's default (see [profile.release] in Cargo.toml)"
);

#[derive(Parser)]
#[command(name = "license-server", version, about = "Self-hosted License API v4 server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every /api/v4 endpoint over HTTP.
    Serve(ServeArgs),
    /// Load a catalog file (docs/catalog.md) into the store; importing twice changes nothing.
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Sealing key file for the secrets of `oauth_clients` and `customer_accounts` (default:
        /// sealing-key in the data directory; required with --dynamodb-table when the catalog has them).
        #[arg(long, value_name = "FILE")]
        sealing_key: Option<PathBuf>,
        /// Print every change the import would make (created items, changed attributes: blacklists,
        /// limits, terms) and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove the licenses the catalog wrote that it no longer lists, with their devices
        /// (never a trial's or another's; docs/catalog.md).
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        create: CreateArg,
        #[command(flatten)]
        retention: RetentionArg,
    },
    /// Support's operations on a license's devices: list, deactivate, reset, reset-transfers, blacklist.
    #[command(subcommand)]
    Device(license_server::support::DeviceCommand),
    /// Support's operations on license users: set-password, assign, unassign.
    #[command(subcommand)]
    User(license_server::support::UserCommand),
    /// Print a company's audit trail, newest first: who changed what (docs/audit.md).
    Audit {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        query: AuditQuery,
    },
    /// Write a new RSA signing key pair (private PKCS#8 PEM, public SPKI PEM), and a sealing key
    /// (sealing-key) if there is none yet: it is never replaced, even with --force.
    Keygen {
        /// Directory for signing-key.pem and signing-key.pub.pem (default: the data directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Key size in bits: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 3072, value_parser = key_bits)]
        bits: usize,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        create: CreateArg,
    },
    /// Write the API Gateway events (events/*.json) freshly signed; signatures expire after 15 minutes.
    Events {
        #[arg(long, default_value = "events", value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value = license_server::events::API_KEY)]
        api_key: String,
        #[arg(long, default_value = license_server::events::SHARED_KEY)]
        shared_key: String,
        /// Write nothing; print the file names in the order a session runs them (successes first).
        #[arg(long, conflicts_with = "out")]
        list: bool,
        /// Also write the catalog the events run against to FILE: examples/catalog.json with the token
        /// endpoint's OAuth client (import it with a sealing key).
        #[arg(long, value_name = "FILE")]
        catalog: Option<PathBuf>,
    },
    /// Rewrite what the endpoint table implies: functions/*, the `cargo lambda watch` routes in
    /// Cargo.toml and the functions in template.yaml (docs/contributing.md).
    Generate {
        /// The workspace root.
        #[arg(long, default_value = ".", value_name = "DIR")]
        root: PathBuf,
        /// Write nothing; fail if anything is not what the table generates.
        #[arg(long)]
        check: bool,
    },
    /// Print the endpoint table.
    Endpoints {
        /// One line per Lambda function instead: its binary and its logical id in template.yaml.
        #[arg(long)]
        functions: bool,
    },
    /// Check a deployment end to end through the client, cleaning up what it activates (docs/deploy.md).
    Smoke(Box<license_server::smoke::SmokeArgs>),
    /// Management keys of the Management API (docs/management.md).
    #[command(subcommand, visible_alias = "key")]
    ManagementKey(license_server::manage::KeyCommand),
    /// Licenses through the Management API's operations (docs/management.md).
    #[command(subcommand)]
    License(license_server::manage::LicenseCommand),
    /// Find a company's licenses by key, customer email, order id or hardware id.
    Search(Box<license_server::listing::SearchArgs>),
    /// Run any Management API route as the command line: products, users, API keys, OAuth clients,
    /// the audit trail (docs/management-resources.md), e.g. `manage GET /products/app --company acme`.
    Manage(Box<license_server::resources::ManageArgs>),
    /// Give the items of a DynamoDB table written before the listing indexes their index attributes
    /// (docs/data-model.md); idempotent. Nothing to do on the embedded store.
    Reindex(license_server::reindex::ReindexArgs),
    /// Print a license and its devices.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        license: LicenseSelector,
    },
    /// Print a license and its devices as JSON.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        license: LicenseSelector,
    },
}

/// `--create`, for the commands that may create the embedded store (see `StoreArgs::if_missing`).
#[derive(clap::Args)]
struct CreateArg {
    /// Create the data directory and database given with --data if they do not exist (the default
    /// data directory is created on first use without it).
    #[arg(long, conflicts_with = "dynamodb_table")]
    create: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// RSA private key (PEM) that signs responses (default: signing-key.pem in the data directory).
    #[arg(long, value_name = "PEM")]
    signing_key: Option<PathBuf>,
    /// Sealing key file (`keygen` writes it) that opens stored secrets such as OAuth client secrets
    /// (default: sealing-key in the data directory, optional there).
    #[arg(long, value_name = "FILE")]
    sealing_key: Option<PathBuf>,
    /// OAuth token keys (PEM, `keygen` writes them; docs/oauth.md) (default: token-key.pem in the data
    /// directory, optional there: without them no bearer token is accepted).
    #[arg(long, value_name = "PEM")]
    token_key: Option<PathBuf>,
    /// The base URL clients reach this server at (e.g. https://licenses.example.com behind a TLS proxy),
    /// for the URLs it hands out (`oauth_url`); default: each request's own Host and X-Forwarded-Proto.
    #[arg(long, value_name = "URL", value_parser = license_api::config::PublicUrl::parse)]
    public_url: Option<license_api::config::PublicUrl>,
    /// Start on a fresh temporary store seeded with examples/catalog.json and a new key.
    #[arg(long, conflicts_with_all = ["signing_key", "sealing_key", "token_key", "data", "dynamodb_table"])]
    demo: bool,
    /// How long API key records are cached (0–60 s); revocations take effect within this time.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=60))]
    api_key_cache_seconds: u64,
    /// How often a device's checks are recorded (0–86400 s): a check within this time of the device's
    /// last recorded one, with the same hardware details, writes nothing (docs/data-model.md).
    #[arg(long, env = "LICENSE_SERVER_LAST_SEEN_INTERVAL", value_name = "SECONDS",
          default_value_t = license_api::state::DEFAULT_LAST_SEEN_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=license_api::state::MAX_LAST_SEEN_INTERVAL.as_secs()))]
    last_seen_interval_seconds: u64,
    #[command(flatten)]
    retention: RetentionArg,
    /// An origin browsers may call the Management API from (repeat, or comma-separate; none by default).
    #[arg(long = "management-cors-origin", env = license_api::management::cors::ENV, value_name = "ORIGIN",
          value_delimiter = ',', value_parser = license_api::management::cors::parse_origin)]
    management_cors_origins: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

impl ServeArgs {
    /// The handlers' shared state over `store`, configured by these options.
    fn state(
        &self,
        store: Arc<dyn license_api::store::Store>,
        signer: license_api::signing::Signer,
        sealing_key: Option<license_api::sealed::SealingKey>,
        token_keys: Option<license_api::token::TokenKeys>,
    ) -> Arc<AppState> {
        let state = AppState::new(store, signer, Duration::from_secs(self.api_key_cache_seconds))
            .with_last_seen_interval(Duration::from_secs(self.last_seen_interval_seconds))
            .with_audit_retention_days(self.retention.audit_retention_days)
            .with_management_cors(self.cors())
            .with_public_url(self.public_url.clone())
            .with_sealing_key(sealing_key)
            .with_token_keys(token_keys)
            .with_sso(license_api::identity::oidc::ProviderTransport::HttpsOnly);
        Arc::new(state)
    }
}

impl ServeArgs {
    /// The Management API's CORS origins; each was checked as it was parsed, so only their number can fail.
    fn cors(&self) -> license_api::management::cors::Origins {
        license_api::management::cors::Origins::new(self.management_cors_origins.clone()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "CORS for the Management API is off");
            Default::default()
        })
    }
}

fn key_bits(s: &str) -> Result<usize, String> {
    match s {
        "2048" | "3072" | "4096" => Ok(s.parse().expect("listed values are numbers")),
        _ => Err("use 2048, 3072 or 4096".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ErrorChain(&*e));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Serve(args) => {
            // Before anything (the demo's catalog import included) can start the pool with defaults.
            license_api::password::configure(args.limits.hashing());
            if args.demo {
                serve_demo(args).await
            } else {
                serve(args).await
            }
        }
        Command::Import {
            file,
            store,
            sealing_key,
            dry_run,
            prune,
            create,
            retention,
        } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let catalog = Catalog::parse(&text, &file.display().to_string())?;
            let sealing_key = load_sealing_key(sealing_key.as_deref(), &store)?;
            let target = store.open(store.if_missing(create.create)).await?;
            let options = ImportOptions {
                dry_run,
                prune,
                audit_retention_days: retention.audit_retention_days,
                ..ImportOptions::default()
            };
            let report = import_with(&*target, &catalog, sealing_key.as_ref(), options).await?;
            print!(
                "{}",
                license_server::import::render(&file, &store.describe(), &report, dry_run)
            );
            Ok(())
        }
        Command::Keygen {
            out,
            bits,
            force,
            store,
            create,
        } => {
            // `--out` names a directory for keys alone, created as needed like `events --out`.
            let dir = match out {
                Some(dir) => dir,
                None => store.key_dir(create.create)?,
            };
            let (_, private, public) = keys::generate(&dir, bits, force)?;
            println!(
                "wrote RSA-{bits} signing key {}\nwrote public key {} (configure clients with this one)",
                private.display(),
                public.display()
            );
            match keys::generate_sealing(&dir)? {
                (path, true) => println!("wrote sealing key {} (back it up with the signing key)", path.display()),
                (path, false) => println!("kept the existing sealing key {}", path.display()),
            }
            match keys::generate_token_key(&dir)? {
                (path, true) => println!("wrote OAuth token key {}", path.display()),
                (path, false) => println!("kept the existing OAuth token key {}", path.display()),
            }
            Ok(())
        }
        Command::Events {
            out,
            api_key,
            shared_key,
            list,
            catalog,
        } => {
            if let Some(path) = catalog {
                let text = license_server::events::catalog_with_oauth_client(license_server::demo::EXAMPLE_CATALOG)?;
                std::fs::write(&path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            let events = license_server::events::generate(&api_key, &shared_key, &date);
            if list {
                events.iter().for_each(|(file, _)| println!("{file}"));
                return Ok(());
            }
            std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            for (file, event) in events {
                let path = out.join(file);
                std::fs::write(&path, serde_json::to_string_pretty(&event)? + "\n")
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            println!("signed with API key {api_key} at {date}; valid for 15 minutes");
            Ok(())
        }
        Command::Smoke(args) => license_server::smoke::run(*args).await,
        Command::Generate { root, check } => generate(&root, check),
        Command::Endpoints { functions } => {
            print!("{}", license_server::generate::listing(functions));
            Ok(())
        }
        Command::ManagementKey(command) => license_server::manage::run_key(command).await,
        Command::License(command) => license_server::manage::run_license(command).await,
        Command::Device(command) => {
            print!("{}", command.run().await?);
            Ok(())
        }
        Command::User(command) => {
            print!("{}", command.run().await?);
            Ok(())
        }
        Command::Audit { store, query } => {
            let target = store.open(IfMissing::Fail).await?;
            print!("{}", query.run(&*target).await?);
            Ok(())
        }
        Command::Manage(args) => {
            let sealing_key = load_sealing_key(args.sealing_key.as_deref(), &args.store)?;
            license_server::resources::run(*args, sealing_key).await
        }
        Command::Search(args) => {
            print!("{}", args.run().await?);
            Ok(())
        }
        Command::Reindex(args) => {
            print!("{}", args.run().await?);
            Ok(())
        }
        Command::Show { store, license } => {
            let value = exported(&store, &license).await?;
            print!("{}", inspect::show(&value));
            Ok(())
        }
        Command::Export { store, license } => {
            let value = exported(&store, &license).await?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
    }
}

async fn exported(store: &StoreArgs, license: &LicenseSelector) -> Result<serde_json::Value, Error> {
    let addr = license.addr()?;
    let target = store.open(IfMissing::Fail).await?;
    Ok(inspect::export(&*target, &addr)
        .await?
        .ok_or_else(|| format!("no such license in {}", store.describe()))?)
}

/// The sealing key named with `--sealing-key` (it must exist), else the store's default one if there.
fn load_sealing_key(
    explicit: Option<&std::path::Path>,
    store: &StoreArgs,
) -> Result<Option<license_api::sealed::SealingKey>, keys::KeyFileError> {
    match (explicit, store.default_sealing_key()) {
        (Some(path), _) => keys::load_sealing(path, true),
        (None, Some(path)) => keys::load_sealing(&path, false),
        (None, None) => Ok(None),
    }
}

async fn serve(args: ServeArgs) -> Result<(), Error> {
    let key_path = args
        .signing_key
        .clone()
        .or_else(|| args.store.default_signing_key())
        .ok_or("--signing-key is required with --dynamodb-table")?;
    let signer = keys::load(&key_path)?;
    let sealing_key = load_sealing_key(args.sealing_key.as_deref(), &args.store)?;
    let token_keys = match (&args.token_key, args.store.default_token_key()) {
        (Some(path), _) => keys::load_token_keys(path, true)?,
        (None, Some(path)) => keys::load_token_keys(&path, false)?,
        (None, None) => None,
    };
    let store = args.store.open(IfMissing::Fail).await?;
    tokio::spawn(purge_audit(store.clone()));
    let state = args.state(store, signer, sealing_key, token_keys);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        store = %args.store.describe(),
        last_seen_interval_seconds = args.last_seen_interval_seconds,
        "License API listening"
    );
    serve_limited(listener, state, &args.limits).await?;
    Ok(())
}

async fn serve_demo(args: ServeArgs) -> Result<(), Error> {
    let prepared = demo::prepare().await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    print!("{}", demo::banner(addr, &prepared));
    std::io::Write::flush(&mut std::io::stdout())?;
    let demo::Demo {
        dir,
        store,
        signer,
        sealing_key,
        token_keys,
        ..
    } = prepared;
    let state = args.state(store, signer, Some(sealing_key), Some(token_keys));
    let served = serve_limited(listener, state, &args.limits).await;
    demo::cleanup(&dir);
    Ok(served?)
}

/// How often `serve` deletes the embedded store's expired audit records.
const AUDIT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes expired audit records now and then every [`AUDIT_PURGE_INTERVAL`] (a no-op on DynamoDB,
/// whose TTL does it); a failure is logged and tried again next time.
async fn purge_audit(store: Arc<dyn license_api::store::Store>) {
    let mut every = tokio::time::interval(AUDIT_PURGE_INTERVAL);
    loop {
        every.tick().await;
        match store.purge_audit(license_api::time::Timestamp::now()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired audit records deleted"),
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "deleting expired audit records failed"),
        }
    }
}

/// Applies the limits of docs/limits.md and serves until Ctrl-C or SIGTERM.
async fn serve_limited(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    args: &LimitArgs,
) -> std::io::Result<()> {
    let limits = args.limits();
    let hashing = args.hashing();
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs(),
        body_timeout_s = limits.body_timeout.as_secs(),
        rate_per_ip = ?limits.per_ip.map(|r| (r.per_second, r.burst)),
        rate_per_key = ?limits.per_key.map(|r| (r.per_second, r.burst)),
        trust_forwarded_for = limits.trust_forwarded_for,
        hash_threads = hashing.threads,
        hash_wait_ms = hashing.wait.map(|w| w.as_millis() as u64),
        "limits"
    );
    let served = http_server::serve_with(listener, state.clone(), &limits, http_server::shutdown_signal()).await;
    // What serving cost in RSA, exactly: scripts/bench-server.sh compares it with the signing limit.
    tracing::info!(rsa_signatures = state.signer.signatures(), "stopped");
    served
}

/// `license-server generate [--check]` under the workspace `root`.
fn generate(root: &std::path::Path, check: bool) -> Result<(), Error> {
    use license_server::generate::{stale, write, COMMAND};
    if !root.join("template.yaml").is_file() || !root.join("functions").is_dir() {
        return Err(format!(
            "{} is not the workspace root (no template.yaml and functions/): pass --root",
            root.display()
        )
        .into());
    }
    if check {
        let stale = stale(root)?;
        if stale.is_empty() {
            return Ok(());
        }
        return Err(format!("stale generated files:\n  {}\nrun `{COMMAND}`", stale.join("\n  ")).into());
    }
    for path in write(root)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
