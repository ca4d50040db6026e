//! `license-server smoke` against a running `license-server serve` on SQLite with the example catalog:
//! every check passes and the licenses end as they started; with another public key the first signed
//! answer fails, the exit is non-zero naming the check, and what was activated is still given back.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::BIN;

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("license-server-smoke-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("run license-server");
    assert!(
        out.status.success() || args[0] == "smoke",
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A data directory with a key pair and the example catalog.
fn store(name: &str) -> PathBuf {
    let data = scratch(name);
    let d = data.to_str().unwrap();
    run(&["keygen", "--data", d, "--create", "--bits", "2048"]);
    run(&["import", CATALOG, "--data", d, "--create"]);
    data
}

/// `smoke` with the example catalog's demo, bundle and user licenses.
fn smoke(addr: &str, public_key: &Path, extra: &[&str]) -> Output {
    let base = format!("http://{addr}");
    #[rustfmt::skip]
    let args = [
        "smoke", "--base-url", &base, "--api-key", "demo-api-key", "--shared-key", "demo-shared-key-change-me",
        "--public-key", public_key.to_str().unwrap(), "--product", "demo", "--license-key", "DEMO-0000-0000-0001",
        "--bundle-product", "demo-suite", "--bundle-license-key", "SUITE-0000-0007",
        "--user-product", "demo-team", "--username", "ann@example.com", "--password", "demo-password",
    ];
    run(&[&args[..], extra].concat())
}

/// The devices of a license still active, from `export`.
fn active_devices(data: &Path, product: &str, key: &str) -> Vec<String> {
    #[rustfmt::skip]
    let out = run(&["export", "--data", data.to_str().unwrap(), "--company", "demo", "--product", product, "--license-key", key]);
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    exported["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["active"] == true)
        .map(|d| d["hardware_id"].as_str().unwrap().to_owned())
        .collect()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every device the checks used on the demo and bundle licenses is free again.
fn assert_nothing_left_active(data: &Path) {
    for (product, key) in [("demo", "DEMO-0000-0000-0001"), ("demo-suite", "SUITE-0000-0007")] {
        assert_eq!(
            active_devices(data, product, key),
            Vec::<String>::new(),
            "{product}/{key}"
        );
    }
}

#[test]
fn smoke_passes_against_serve_and_leaves_the_licenses_as_they_were() {
    let data = store("pass");
    let (mut server, addr) = support::serve(&data, &[]);
    // The demo license has 3 slots, all free.
    let out = smoke(&addr, &data.join("signing-key.pub.pem"), &["--race-slots", "3"]);
    let (stdout, stderr) = text(&out);
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "ok    race: 6 concurrent activations, 3 free slots",
        "ok    POST activate_license ",
        "ok    GET check_license (wrong shared key)",
        "ok    POST activate_offline (raw request file)",
        "ok    POST activate_bundle_offline (raw request file)",
        "ok    POST activate_license (user ann@example.com)",
        "ok    GET /api/v4/no_such_endpoint",
        "ok    GET oauth_url",
        "ok    POST oauth_token (unknown client)",
        "ok    POST track_device_variables",
        "ok    GET product_details",
        "ok    GET check_license_feature (unknown feature)",
        "ok    GET user_licenses (user ann@example.com)",
        "ok    POST change_password (wrong password)",
        "ok    GET trial_key (no hardware id)",
        "ok    GET customer_license_users (unknown customer)",
    ] {
        assert!(stdout.contains(line), "no `{line}` in\n{stdout}");
    }
    assert!(
        !stdout.contains("FAIL") && !stdout.contains("\nok    cleanup:"),
        "{stdout}"
    );
    // 36 checks, the race and the deactivation of its 3 winners.
    assert!(stdout.contains("smoke: 40 passed, 0 failed"), "{stdout}");
    // Activated: the licenses' devices were used, and every one of them is free again.
    assert_nothing_left_active(&data);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_wrong_public_key_fails_naming_the_check_and_still_cleans_up() {
    let data = store("wrong-key");
    let other = scratch("other-key");
    run(&["keygen", "--out", other.to_str().unwrap(), "--bits", "2048"]);
    let (mut server, addr) = support::serve(&data, &[]);
    let out = smoke(&addr, &other.join("signing-key.pub.pem"), &[]);
    let (stdout, stderr) = text(&out);
    let _ = server.kill();
    let _ = server.wait();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("FAIL  POST activate_license ") && stdout.contains("does not verify"),
        "{stdout}"
    );
    assert!(
        stderr.contains("failed: ") && stderr.contains("POST activate_license"),
        "{stderr}"
    );
    // Unsigned answers (errors, plain text) still pass: only the signed ones fail.
    assert!(stdout.contains("ok    GET check_license (unsigned)"), "{stdout}");
    assert_nothing_left_active(&data);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&other);
}
