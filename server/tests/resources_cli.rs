//! `license-server manage METHOD PATH` (docs/management-resources.md, *Command line*): any Management
//! API route run on the command line as the OS user — a product's and an API key's life, each change
//! audited as `cli:<user>`, a refused one failing with its code and recording nothing, and an OAuth
//! client sealed with the data directory's sealing key.

use serde_json::Value;
use std::process::Command;

/// The binary under test (the `support` module's serving helpers are not needed here).
const BIN: &str = env!("CARGO_BIN_EXE_license-server");

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");

/// Runs `manage` on the data directory `d` as OS user `ops`: (success, stdout, stderr).
fn manage(d: &str, method: &str, path: &str, body: Option<&str>) -> (bool, String, String) {
    let mut args = vec!["manage", method, path, "--data", d, "--company", "demo"];
    if let Some(body) = body {
        args.extend(["--body", body]);
    }
    let out = Command::new(BIN)
        .args(&args)
        .env("USER", "ops")
        .output()
        .expect("run license-server");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn json(d: &str, method: &str, path: &str, body: Option<&str>) -> Value {
    let (ok, out, err) = manage(d, method, path, body);
    assert!(ok, "{method} {path}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{method} {path} printed no JSON ({e}): {out}"))
}

#[test]
fn every_route_runs_on_the_command_line_audited_as_the_os_user() {
    let dir = std::env::temp_dir().join(format!("license-server-manage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    assert!(Command::new(BIN)
        .args(["import", CATALOG, "--data", d, "--create"])
        .status()
        .unwrap()
        .success());

    let created = json(
        d,
        "POST",
        "/products",
        Some(r#"{"short_code": "cli-app", "name": "CLI app"}"#),
    );
    assert_eq!(created["code"], "cli-app");
    let renamed = json(d, "patch", "/products/cli-app", Some(r#"{"name": "Renamed"}"#));
    assert_eq!(renamed["name"], "Renamed");
    let key = json(
        d,
        "POST",
        "/api-keys",
        Some(r#"{"api_key": "cli-key", "products": ["cli-app"]}"#),
    );
    assert_eq!(
        key["shared_key"].as_str().map(str::len),
        Some(64),
        "the secret, shown once: {key}"
    );
    let shown = json(d, "GET", "/api-keys/cli-key", None);
    assert!(shown.get("shared_key").is_none(), "{shown}");
    assert_eq!(json(d, "POST", "/api-keys/cli-key/revoke", None)["revoked"], true);

    let (ok, _, err) = manage(d, "DELETE", "/products/nope", None);
    assert!(
        !ok && err.contains("not_found") && err.contains("product nope"),
        "{err}"
    );
    let (ok, _, err) = manage(d, "POST", "/products", Some("{not json"));
    assert!(!ok && err.contains("invalid_json"), "{err}");

    let trail = json(d, "GET", "/audit?actor=cli:ops", None);
    let actions: Vec<&str> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["product.create", "product.update", "api_key.create", "api_key.revoke"],
        "{trail}"
    );

    // Without a sealing key in the data directory, an OAuth client cannot be stored sealed.
    let (ok, _, err) = manage(d, "POST", "/oauth-clients", Some("{}"));
    assert!(!ok && err.contains("sealing key"), "the cause is named: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
