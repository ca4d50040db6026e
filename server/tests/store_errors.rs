//! What an operator sees of the stores: a missing DynamoDB table is named with what to do about it, a
//! file the embedded store cannot use is named with the system's reason, and the embedded database
//! (which holds password hashes and shared keys) is readable by its owner only.

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
        .args(["import", CATALOG, "--data", dir.to_str().unwrap(), "--create"])
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

/// `license-server ARGS`: whether it succeeded, and its stderr.
fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().expect("run license-server");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Errors of the embedded store's files name the path and the system's reason as plain text, not a
/// `Debug` dump. (Tests may run as root, where permission bits stop nothing, so the failures are a
/// file where the data directory should be and a directory where the database should be.)
#[test]
fn an_unusable_data_path_is_named_with_its_cause() {
    let dir = std::env::temp_dir().join(format!("license-server-paths-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db-is-a-dir/license.db")).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let debug_dump = ["Os {", "kind:", "SqliteFailure", "Error {"];

    let license = [
        "--company",
        "demo",
        "--product",
        "demo",
        "--license-key",
        "DEMO-0000-0000-0001",
    ];
    let (ok, err) = run(&[&["show", "--data", file.to_str().unwrap()][..], &license].concat());
    assert!(!ok);
    let expected = format!("{}: Not a directory (os error 20)", file.join("license.db").display());
    assert!(err.contains(&expected), "{err}");
    assert!(!debug_dump.iter().any(|d| err.contains(d)), "{err}");

    let data = dir.join("db-is-a-dir");
    let (ok, err) = run(&[&["show", "--data", data.to_str().unwrap()][..], &license].concat());
    assert!(!ok);
    let expected = format!("cannot open database {}: ", data.join("license.db").display());
    assert!(
        err.contains(&expected) && err.contains("unable to open database file"),
        "{err}"
    );
    assert!(!debug_dump.iter().any(|d| err.contains(d)), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
