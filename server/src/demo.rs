//! `serve --demo`: a throw-away store seeded with `examples/catalog.json` and a fresh signing key, and
//! a printed, ready-to-paste request that activates a demo license.

use crate::keys;
use crate::stores::DB_FILE;
use license_api::catalog::{import_sealed, Catalog};
use license_api::sealed::SealingKey;
use license_api::signing::Signer;
use license_api::store::sqlite::SqliteStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const EXAMPLE_CATALOG: &str = include_str!("../../examples/catalog.json");
pub const DEMO_API_KEY: &str = "demo-api-key";
pub const DEMO_PRODUCT: &str = "demo";
pub const DEMO_LICENSE_KEY: &str = "DEMO-0000-0000-0001";

pub struct Demo {
    pub dir: PathBuf,
    pub store: Arc<SqliteStore>,
    pub signer: Signer,
    /// Written beside the signing key as `keygen` does, for the secrets the catalog seals.
    pub sealing_key: SealingKey,
    pub shared_key: String,
}

/// Creates the temporary store, key pair and catalog.
pub async fn prepare() -> Result<Demo, Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::temp_dir().join(format!("license-server-demo-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let (signer, _, _) = keys::generate(&dir, 3072, true)?;
    let (sealing_path, _) = keys::generate_sealing(&dir)?;
    let sealing_key = keys::load_sealing(&sealing_path, true)?.ok_or("the demo sealing key was not written")?;
    let store = Arc::new(SqliteStore::open(dir.join(DB_FILE))?);
    let catalog = Catalog::parse(EXAMPLE_CATALOG, "examples/catalog.json")?;
    import_sealed(&*store, &catalog, Some(&sealing_key)).await?;
    let shared_key = catalog.companies[0]
        .api_keys
        .iter()
        .find(|k| k.id.as_str() == DEMO_API_KEY)
        .map(|k| k.shared_key.clone())
        .ok_or("examples/catalog.json has no demo-api-key")?;
    Ok(Demo {
        dir,
        store,
        signer,
        sealing_key,
        shared_key,
    })
}

/// A shell command that signs and sends one activation (needs `curl` and `openssl`).
pub fn example_request(addr: SocketAddr, shared_key: &str) -> String {
    format!(
        concat!(
            r#"DATE="$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')"; "#,
            r#"SIG="$(printf 'licenseSpring\ndate: %s' "$DATE" | openssl dgst -sha256 -hmac '{shared}' -binary | openssl base64 -A)"; "#,
            r#"curl -sS -i -X POST 'http://{addr}/api/v4/activate_license' -H "Date: $DATE" "#,
            r#"-H "Authorization: algorithm=\"hmac-sha256\",headers=\"date\",signature=\"$SIG\",apikey=\"{key}\"" "#,
            r#"-H 'Content-Type: application/json' "#,
            r#"-d '{{"product":"{product}","hardware_id":"my-laptop","license_key":"{license}"}}'"#
        ),
        shared = shared_key,
        addr = addr,
        key = DEMO_API_KEY,
        product = DEMO_PRODUCT,
        license = DEMO_LICENSE_KEY,
    )
}

/// What the demo prints once it listens. The example request is the line after `Try it:`.
pub fn banner(addr: SocketAddr, demo: &Demo) -> String {
    let public = demo.dir.join(keys::PUBLIC_KEY_FILE);
    format!(
        "License API demo server on http://{addr}\n\
         \x20 store (temporary): {}\n\
         \x20 API key:           {DEMO_API_KEY}\n\
         \x20 shared key:        {}\n\
         \x20 public key:        {}\n\
         \x20 catalog:           examples/catalog.json (product `{DEMO_PRODUCT}`, license key `{DEMO_LICENSE_KEY}`)\n\
         Try it:\n{}\n\
         Inspect it: license-server show --data {} --company demo --product {DEMO_PRODUCT} --license-key {DEMO_LICENSE_KEY}\n\
         Stop with Ctrl-C; the temporary store is removed.\n",
        demo.dir.join(DB_FILE).display(),
        demo.shared_key,
        public.display(),
        example_request(addr, &demo.shared_key),
        demo.dir.display(),
    )
}

pub fn cleanup(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
