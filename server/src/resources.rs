//! `license-server manage METHOD PATH [--body JSON]`: any Management API route (docs/management.md,
//! docs/management-resources.md) run on the store `StoreArgs` opens, as the command line
//! (`Principal::cli`: every right, audited as `cli:<OS user>`). The route table runs the same operation
//! and input as over HTTP (`management::routes::run_as`), so every route — products, license users,
//! API keys, OAuth clients, the audit trail — has its command without one written per route.

use crate::audit::RetentionArg;
use crate::stores::StoreArgs;
use clap::Args;
use license_api::auth::Principal;
use license_api::ids::CompanyId;
use license_api::management::routes;
use license_api::sealed::SealingKey;
use license_api::state::Core;
use license_api::store::sqlite::IfMissing;
use std::path::PathBuf;
use std::sync::Arc;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Args, Debug)]
pub struct ManageArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Company code, as in the catalog.
    #[arg(long, value_parser = |s: &str| CompanyId::parse(s).map_err(|e| e.to_string()))]
    pub company: CompanyId,
    /// The route's method: GET, POST, PATCH, PUT or DELETE.
    #[arg(value_parser = |s: &str| http::Method::from_bytes(s.to_ascii_uppercase().as_bytes()).map_err(|e| e.to_string()))]
    pub method: http::Method,
    /// The route's path under /api/management/v1, with its query: e.g. /products/app or
    /// '/audit?actor=cli:ops&limit=10'.
    pub path: String,
    /// The request's JSON body, e.g. '{"short_code": "app", "name": "App"}'.
    #[arg(long, value_name = "JSON")]
    pub body: Option<String>,
    /// The sealing key file (OAuth clients' secrets are sealed with it); default: the data directory's.
    #[arg(long, value_name = "PATH")]
    pub sealing_key: Option<PathBuf>,
    #[command(flatten)]
    pub retention: RetentionArg,
}

/// Runs the route and prints its JSON body; a refused one is an error naming its code and cause.
pub async fn run(args: ManageArgs, sealing_key: Option<SealingKey>) -> Result<(), Error> {
    let state = Core {
        audit_retention_days: args.retention.audit_retention_days,
        sealing_key: sealing_key.map(Arc::new),
        ..Core::new(args.store.open(IfMissing::Fail).await?)
    };
    let principal = Principal::cli(args.company.clone());
    let path = args.path.strip_prefix(routes::PREFIX).unwrap_or(&args.path);
    let body = args.body.unwrap_or_default();
    match routes::run_as(&state, &principal, &args.method, path, body.as_bytes()).await {
        Ok((_, value)) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        Err(e) => Err(format!(
            "{} {}: {} ({})",
            args.method,
            args.path,
            license_api::store::ErrorChain(&e),
            e.code()
        )
        .into()),
    }
}
