//! What the store-backed targets share: one runtime and one `AppState` per fuzzing process, over an
//! SQLite store holding the example catalog. The database lives in `LICENSE_API_FUZZ_DIR` (default: the
//! temporary directory); scripts/fuzz.sh points it at a RAM disk, where SQLite's fsyncs cost nothing.

use license_api::catalog::{import, Catalog};
use license_api::signing::Signer;
use license_api::state::AppState;
use license_api::store::sqlite::SqliteStore;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const CATALOG: &str = include_str!("../../examples/catalog.json");

pub fn world() -> &'static (tokio::runtime::Runtime, AppState) {
    static WORLD: OnceLock<(tokio::runtime::Runtime, AppState)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        let dir = std::env::var_os("LICENSE_API_FUZZ_DIR")
            .map(Into::into)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&dir).expect("fuzz directory");
        let path = dir.join(format!("license-api-fuzz-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let store = Arc::new(SqliteStore::open(&path).expect("open SQLite"));
        let catalog = Catalog::parse(CATALOG, "examples/catalog.json").expect("example catalog");
        runtime.block_on(import(&*store, &catalog)).expect("import");
        let (signer, _) = Signer::generate(2048).expect("RSA key");
        (runtime, AppState::new(store, signer, Duration::from_secs(60)))
    })
}
