//! What an operator sees of the stores: a missing DynamoDB table is named with what to do about it, and
//! the embedded database (which holds password hashes and shared keys) is readable by its owner only.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_license-server");
const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");

#[test]
fn import_into_a_missing_table_says_how_to_create_it() {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT is not set: run the tests with scripts/test.sh, which starts DynamoDB Local");
    let table = format!("missing-{}", std::process::id());
    let out = Command::new(BIN)
        .args([
            "import",
            CATALOG,
            "--dynamodb-table",
            &table,
            "--dynamodb-endpoint",
            &endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run license-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("table {table} does not exist")) && stderr.contains("--create-table"),
        "stderr: {stderr}"
    );
}

#[test]
fn the_database_and_its_wal_are_created_private() {
    let dir = std::env::temp_dir().join(format!("license-server-perms-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(BIN)
        .args(["import", CATALOG, "--data", dir.to_str().unwrap()])
        .output()
        .expect("run license-server");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = dir.join("license.db");
    assert!(db.exists());
    for path in [db.clone(), dir.join("license.db-wal"), dir.join("license.db-shm")] {
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", path.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
