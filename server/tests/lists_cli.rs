//! `license-server user list` and `license-server reindex` (docs/management-resources.md, *Lists*;
//! docs/data-model.md, *Listing and search*) on the embedded store and on DynamoDB: users a page at a
//! time with the cursor to go on with, as text or JSON, never a password hash; the other lists through
//! `manage GET`; `reindex` has nothing to do on the embedded store and, on a table the import just
//! wrote, finds every item indexed already.

use serde_json::Value;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_license-server");
const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");

/// Runs the binary with `args` then `store` (the store options): its standard output; it must succeed.
fn run(args: &[&str], store: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .args(store)
        .env("USER", "ops")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run license-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The catalog's three license users, two and then one, as text and as JSON; the products through
/// `manage GET /products`.
fn lists_page_through(store: &[&str]) {
    let first = run(&["user", "list", "--company", "demo", "--limit", "2"], store);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 3, "{first}");
    assert!(
        lines[0].starts_with("ann@example.com  id 501  password  licenses ["),
        "{first}"
    );
    assert!(lines[1].starts_with("bob@example.com  id 502"), "{first}");
    assert_eq!(lines[2], "more: --cursor bob@example.com");
    let rest = run(
        &[
            "user",
            "list",
            "--company",
            "demo",
            "--limit",
            "2",
            "--cursor",
            "bob@example.com",
        ],
        store,
    );
    assert!(
        rest.starts_with("carol@example.com  id 503") && !rest.contains("more:"),
        "{rest}"
    );

    let json = run(&["user", "list", "--company", "demo", "--json"], store);
    assert!(!json.contains("hash") && !json.contains("argon2"), "{json}");
    let page: Value = serde_json::from_str(&json).unwrap();
    let emails: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        (emails, page["cursor"].clone()),
        (
            vec!["ann@example.com", "bob@example.com", "carol@example.com"],
            Value::Null
        )
    );

    let products: Value = serde_json::from_str(&run(
        &["manage", "GET", "/products?limit=100", "--company", "demo"],
        store,
    ))
    .unwrap();
    assert_eq!(products["products"].as_array().unwrap().len(), 5, "{products}");
}

#[test]
fn user_list_and_reindex_on_the_embedded_store() {
    let dir = std::env::temp_dir().join(format!("license-server-lists-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = ["--data", dir.to_str().unwrap()];
    run(&["import", CATALOG, "--create"], &store);
    lists_page_through(&store);
    let said = run(&["reindex"], &store);
    assert!(
        said.ends_with("answers every listing from its own tables: nothing to reindex\n"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_list_and_reindex_on_dynamodb() {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT is not set: run the tests with scripts/test.sh, which starts DynamoDB Local");
    let table = format!("lists-cli-{}", std::process::id());
    let store = [
        "--dynamodb-table",
        table.as_str(),
        "--dynamodb-endpoint",
        endpoint.as_str(),
    ];
    run(&["import", CATALOG, "--create-table"], &store);
    lists_page_through(&store);
    let said = run(&["reindex"], &store);
    assert!(
        said.contains("; indexed 0, already indexed ") && said.contains("changed meanwhile (left as they are) 0"),
        "{said}"
    );
}
