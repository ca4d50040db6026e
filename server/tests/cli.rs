//! The `license-server` binary as an operator uses it: keygen, import (twice, a dry run, and a broken file),
//! serve, a kill -9 between requests, show; a mistyped data directory and the first run in the default
//! one; and `serve --demo` with its printed example request.

use license_api::client::LicenseClient;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use support::{send, BIN};

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("license-server-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run license-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn serve(data: &Path) -> (Child, String) {
    support::serve(data, &[])
}

/// A fresh data directory `name` with a 2048-bit key and the example catalog, served: the directory, the
/// demo API key's client, the server and its address.
fn served_example(name: &str) -> (PathBuf, LicenseClient, Child, String) {
    let data = scratch(name);
    let d = data.to_str().unwrap();
    assert!(run(&["keygen", "--data", d, "--create", "--bits", "2048"]).0);
    let (ok, _, err) = run(&["import", CATALOG, "--data", d, "--create"]);
    assert!(ok, "{err}");
    let public = std::fs::read_to_string(data.join("signing-key.pub.pem")).unwrap();
    let client = LicenseClient::new("demo-api-key", "demo-shared-key-change-me", public);
    let (server, addr) = serve(&data);
    (data, client, server, addr)
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

#[tokio::test]
async fn operator_workflow_survives_kill_9() {
    let data = scratch("workflow");
    let d = data.to_str().unwrap();
    let (ok, out, err) = run(&["keygen", "--data", d, "--create", "--bits", "2048"]);
    assert!(ok, "{err}");
    assert!(out.contains("signing-key.pub.pem"));
    let (ok, _, err) = run(&["keygen", "--data", d]);
    assert!(!ok && err.contains("--force"), "keygen refuses to replace a key: {err}");
    for _ in 0..2 {
        let (ok, out, err) = run(&["import", CATALOG, "--data", d, "--create"]);
        assert!(ok, "{err}");
        assert!(out.contains("10 licenses"), "{out}");
    }

    let public = std::fs::read_to_string(data.join("signing-key.pub.pem")).unwrap();
    let client = LicenseClient::new("demo-api-key", "demo-shared-key-change-me", public);
    let body = json!({"product": "demo", "hardware_id": "pc-1", "license_key": "DEMO-0000-0000-0001"});

    let (mut server, addr) = serve(&data);
    let resp = send(&addr, client.activate(&body)).await;
    client
        .verify_license(&resp, "pc-1", "DEMO-0000-0000-0001")
        .expect("activation acknowledged");
    // SIGKILL right after the acknowledgement: no shutdown, no flush.
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, addr) = serve(&data);
    let resp = send(&addr, client.check(&body)).await;
    let obj = client
        .verify_license(&resp, "pc-1", "DEMO-0000-0000-0001")
        .expect("the activation survived");
    assert_eq!(obj["times_activated"], 1);
    terminate(&mut server);

    let (ok, out, err) = run(&[
        "show",
        "--data",
        d,
        "--company",
        "demo",
        "--product",
        "demo",
        "--license-key",
        "DEMO-0000-0000-0001",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("active devices: 1 of 3") && out.contains("pc-1"), "{out}");
    let (ok, out, _) = run(&[
        "export",
        "--data",
        d,
        "--company",
        "demo",
        "--product",
        "demo",
        "--license-key",
        "DEMO-0000-0000-0001",
    ]);
    assert!(ok);
    let exported: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(exported["devices"][0]["hardware_id"], "pc-1");
    assert_eq!(exported["devices"][0]["active"], true);
    let (ok, _, err) = run(&[
        "show",
        "--data",
        d,
        "--company",
        "demo",
        "--product",
        "demo",
        "--license-key",
        "NOPE",
    ]);
    assert!(!ok && err.contains("no such license"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

/// `keygen --force` over a private key that was loosened (e.g. by a copy) tightens it again to 0600.
#[cfg(unix)]
#[test]
fn keygen_force_resets_the_private_key_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("keygen-mode");
    let d = dir.to_str().unwrap();
    let (ok, _, err) = run(&["keygen", "--out", d, "--bits", "2048"]);
    assert!(ok, "{err}");
    let private = dir.join("signing-key.pem");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&private), 0o600);
    let old = std::fs::read_to_string(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = run(&["keygen", "--out", d, "--bits", "2048", "--force"]);
    assert!(ok, "{err}");
    assert_eq!(mode(&private), 0o600, "--force left the old, wider mode");
    assert_ne!(std::fs::read_to_string(&private).unwrap(), old, "the key was replaced");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `keygen` writes the sealing key and the OAuth token key beside the signing key (0600), and `--force`
/// keeps them: replacing the sealing key
/// would make every sealed secret unreadable. `serve` refuses a named sealing key it cannot read.
#[cfg(unix)]
#[test]
fn keygen_writes_the_sealing_key_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("keygen-sealing");
    let d = dir.to_str().unwrap();
    let (ok, out, err) = run(&["keygen", "--out", d, "--bits", "2048"]);
    assert!(
        ok && out.contains("wrote sealing key") && out.contains("wrote OAuth token key"),
        "{out}{err}"
    );
    let sealing = dir.join("sealing-key");
    assert_eq!(std::fs::metadata(&sealing).unwrap().permissions().mode() & 0o777, 0o600);
    let first = std::fs::read_to_string(&sealing).unwrap();
    assert!(license_api::sealed::SealingKey::from_text(&first).is_ok());
    let (ok, out, err) = run(&["keygen", "--out", d, "--bits", "2048", "--force"]);
    assert!(
        ok && out.contains("kept the existing sealing key") && out.contains("kept the existing OAuth token key"),
        "{out}{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&sealing).unwrap(),
        first,
        "--force replaced the sealing key"
    );
    std::fs::write(&sealing, "not a key").unwrap();
    let (ok, _, err) = run(&[
        "serve",
        "--data",
        d,
        "--signing-key",
        dir.join("signing-key.pem").to_str().unwrap(),
        "--sealing-key",
        sealing.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok && err.contains("sealing-key") && err.contains("keygen"), "{err}");
    let token = dir.join("token-key.pem");
    assert_eq!(std::fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(license_api::token::TokenKeys::from_pem(&std::fs::read_to_string(&token).unwrap()).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broken_catalog_is_rejected_naming_the_field() {
    let data = scratch("broken");
    std::fs::create_dir_all(&data).unwrap();
    let mut catalog: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(CATALOG).unwrap()).unwrap();
    catalog["companies"][0]["products"][1]["prevent_vm"] = json!("sometimes");
    let file = data.join("broken.json");
    std::fs::write(&file, catalog.to_string()).unwrap();
    let (ok, _, err) = run(&["import", file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("broken.json: companies[0].products[1].prevent_vm:"),
        "{err}"
    );
    assert!(
        !data.join("license.db").exists(),
        "validation happens before the store is even opened"
    );
    let _ = std::fs::remove_dir_all(&data);
}

// `import --dry-run` prints each change (here an emptied blacklist) and writes nothing; the import
// then writes it, and a second import of the same file writes nothing.
#[test]
fn a_dry_run_prints_the_changes_and_writes_nothing() {
    let data = scratch("dry-run");
    let d = data.to_str().unwrap();
    let (ok, _, err) = run(&["import", CATALOG, "--data", d, "--create"]);
    assert!(ok, "{err}");
    let mut catalog: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(CATALOG).unwrap()).unwrap();
    catalog["companies"][0]["blacklist"] = json!([]);
    let file = data.join("small.json");
    std::fs::write(&file, catalog.to_string()).unwrap();
    let f = file.to_str().unwrap();
    let (ok, out, err) = run(&["import", f, "--data", d, "--dry-run"]);
    assert!(ok, "{err}");
    let blacklist = r#"  update company demo: blacklist: +[] -["stolen-laptop-1"] (1 → 0 entries)"#;
    assert!(out.starts_with(&format!("{blacklist}\ndry run of {f} on ")), "{out}");
    assert!(
        out.contains(": 1 changes would be written (nothing was), 28 items unchanged"),
        "{out}"
    );
    // Nothing was written: the same change is still pending. (The database file's bytes are no measure:
    // SQLite checkpoints the previous import's log into it when a connection closes.)
    let (ok, again, err) = run(&["import", f, "--data", d, "--dry-run"]);
    assert!(ok, "{err}");
    assert_eq!(again, out, "the dry run wrote nothing");
    let (ok, out, _) = run(&["import", f, "--data", d]);
    assert!(
        ok && out.starts_with(&format!("{blacklist}\nimported {f} into ")),
        "{out}"
    );
    let (ok, out, _) = run(&["import", f, "--data", d]);
    assert!(ok && out.contains(": 0 changes written, 29 items unchanged"), "{out}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_last_seen_interval_out_of_bounds_is_refused_naming_it() {
    let data = scratch("interval");
    let d = data.to_str().unwrap();
    let (ok, _, err) = run(&["serve", "--data", d, "--last-seen-interval-seconds", "86401"]);
    assert!(!ok);
    assert!(
        err.contains("--last-seen-interval-seconds") && err.contains("86400"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--data", d])
        .env("LICENSE_SERVER_LAST_SEEN_INTERVAL", "an hour")
        .output()
        .expect("run license-server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--last-seen-interval-seconds"), "{err}");
}

#[test]
fn serve_without_a_key_explains_what_to_do() {
    let data = scratch("nokey");
    let (ok, _, err) = run(&["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(err.contains("license-server keygen"), "{err}");
}

#[test]
fn demo_prints_a_request_that_works() {
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let mut banner = String::new();
        while let Some(line) = lines.next() {
            banner.push_str(&line);
            banner.push('\n');
            if line == "Try it:" {
                let command = lines.next().unwrap_or_default();
                let _ = tx.send((banner, command));
                return;
            }
        }
    });
    let (banner, command) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("demo prints its example");
    assert!(banner.contains("API key:           demo-api-key"), "{banner}");
    let public_key = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("public key:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(Path::new(&public_key).exists());
    let out = Command::new("bash")
        .args(["-c", &command])
        .output()
        .expect("run the printed command");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(r#""request":"activation""#) && text.contains(r#""hardware_id":"my-laptop""#),
        "{text}"
    );
    let demo_dir = Path::new(&public_key).parent().unwrap().to_path_buf();
    terminate(&mut child);
    assert!(!demo_dir.exists(), "the temporary store is removed on shutdown");
}

const DEMO_LICENSE: [&str; 6] = [
    "--company",
    "demo",
    "--product",
    "demo",
    "--license-key",
    "DEMO-0000-0000-0001",
];

/// Runs `args` expecting the process to exit within 30 s (a `serve` that opened a store would not);
/// returns success and stderr.
fn run_to_exit(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run license-server");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} is still running: it opened a store it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect output");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into())
}

/// A mistyped `--data` creates nothing: every command names the path it looked at and fails; only
/// `keygen`/`import` with `--create` create a data directory given by hand.
#[test]
fn a_mistyped_data_directory_is_named_not_created() {
    let data = scratch("typo");
    let d = data.to_str().unwrap();
    let missing_db = format!("database {} does not exist", data.join("license.db").display());
    for command in [vec!["show", "--data", d], vec!["export", "--data", d]] {
        let args = [command.as_slice(), &DEMO_LICENSE].concat();
        let (ok, _, err) = run(&args);
        assert!(
            !ok && err.contains(&missing_db) && err.contains("--create"),
            "{args:?}: {err}"
        );
        assert!(!data.exists(), "{args:?} created {d}");
    }
    let (ok, _, err) = run(&["import", CATALOG, "--data", d]);
    assert!(!ok && err.contains(&missing_db), "{err}");
    assert!(!data.exists(), "import created {d}");
    let (ok, _, err) = run(&["keygen", "--data", d, "--bits", "2048"]);
    assert!(
        !ok && err.contains(&format!("data directory {d} does not exist")) && err.contains("--create"),
        "{err}"
    );
    assert!(!data.exists(), "keygen created {d}");

    // A key but no database yet: `serve` refuses rather than serving an empty store.
    let (ok, _, err) = run(&["keygen", "--data", d, "--create", "--bits", "2048"]);
    assert!(ok, "{err}");
    let (ok, err) = run_to_exit(&["serve", "--data", d, "--listen", "127.0.0.1:0"]);
    assert!(!ok && err.contains(&missing_db), "{err}");
    assert!(!data.join("license.db").exists(), "serve created the database");
    let _ = std::fs::remove_dir_all(&data);
}

/// The documented first run (README): `keygen` and `import` without `--data` create the default data
/// directory; `show` before the import names the database it did not find.
#[test]
fn the_first_run_creates_the_default_data_directory() {
    let xdg = scratch("first-run");
    let default = xdg.join("license-server");
    let run_default = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("LICENSE_SERVER_DATA")
            .env("XDG_DATA_HOME", &xdg)
            .output()
            .expect("run license-server");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run_default(&["keygen", "--bits", "2048"]);
    assert!(ok, "{err}");
    assert!(default.join("signing-key.pem").exists());
    let show = [&["show"][..], &DEMO_LICENSE].concat();
    let (ok, err) = run_default(&show);
    let missing_db = format!("database {} does not exist", default.join("license.db").display());
    assert!(!ok && err.contains(&missing_db), "{err}");
    assert!(!default.join("license.db").exists(), "show created the database");
    let (ok, err) = run_default(&["import", CATALOG]);
    assert!(ok, "{err}");
    let (ok, err) = run_default(&show);
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(&xdg);
}

/// `show` and `export` print what the SPEC §9 endpoints keep: a device's variables, floating cloud
/// slot holders (held until, borrowed until), consumption totals and their periods (license and
/// features), the product's features (expired ones marked) and each license user's seat with
/// `password_change_disabled`.
#[tokio::test]
async fn show_prints_what_the_section_9_endpoints_keep() {
    use license_api::handlers::Endpoint;
    let (data, client, mut server, addr) = served_example("show-section-9");
    let d = data.to_str().unwrap();
    let float = json!({"product": "demo", "hardware_id": "pc-f", "license_key": "DEMO-FLOAT-0008"});
    let consumption = json!({"product": "demo", "hardware_id": "pc-c", "license_key": "DEMO-UNLIMITED-0004"});
    let mut with_variables = float.clone();
    with_variables["variables"] = json!({"seat": "A1"});
    let until = license_api::time::Timestamp::from_millis(license_api::time::Timestamp::now().millis() + 3_600_000);
    let mut borrow = float.clone();
    borrow["borrowed_until"] = json!(until.to_string());
    let mut add = consumption.clone();
    add["consumptions"] = json!(7);
    let mut add_feature = consumption.clone();
    add_feature["feature"] = json!("cloud-renders");
    add_feature["consumptions"] = json!(3);
    for req in [
        client.activate(&with_variables),
        client.call(Endpoint::FloatingBorrow, &borrow),
        client.activate(&consumption),
        client.call(Endpoint::AddConsumption, &add),
        client.call(Endpoint::AddFeatureConsumption, &add_feature),
    ] {
        let resp = send(&addr, req).await;
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    }
    terminate(&mut server);

    let show = |command: &str, selector: &[&str]| {
        let args = [&[command, "--data", d, "--company", "demo"][..], selector].concat();
        let (ok, out, err) = run(&args);
        assert!(ok, "{err}");
        out
    };
    let floating = show("show", &["--product", "demo", "--license-key", "DEMO-FLOAT-0008"]);
    assert!(floating.contains("variables: seat=A1"), "{floating}");
    assert!(
        floating.contains("Floating slots: 1 recorded of 3 (timeout 30 min"),
        "{floating}"
    );
    let holder = format!("pc-f  held until {until}  borrowed until {until}");
    assert!(floating.contains(&holder), "{holder} in {floating}");
    assert!(
        floating.contains(
            "legacy-import (activation) Import legacy files (retired)  expires 2026-01-01T00:00:00.000Z (expired)"
        ),
        "{floating}"
    );
    let counted = show("show", &["--product", "demo", "--license-key", "DEMO-UNLIMITED-0004"]);
    assert!(
        counted.contains("consumptions: 7 of 1000   overages: true (max 100)   period: monthly, this period since 2"),
        "{counted}"
    );
    assert!(counted.contains("cloud-renders (consumption) Cloud renders  expires —  consumptions: 3 of 500   overages: true (max 50)   period: monthly, this period since 2"), "{counted}");
    let team = show("show", &["--product", "demo-team", "--license-id", "6"]);
    assert!(
        team.contains(
            "carol@example.com  id 503  activations 0 of 1  initial password false  password change disabled true"
        ),
        "{team}"
    );
    assert!(
        team.contains(
            "ann@example.com  id 501  activations 0 of 2  initial password false  password change disabled false"
        ),
        "{team}"
    );
    let exported: serde_json::Value = serde_json::from_str(&show(
        "export",
        &["--product", "demo", "--license-key", "DEMO-FLOAT-0008"],
    ))
    .unwrap();
    assert_eq!(
        exported["floating"]["holders"][0]["borrowed_until"],
        json!(until.to_string())
    );
    assert_eq!(exported["devices"][0]["variables"][0]["variable"], "seat");
    assert_eq!(exported["features"][2]["expired"], true);
    let _ = std::fs::remove_dir_all(&data);
}

/// `audit` prints who changed what, newest first: the import's record of the license (as the OS user
/// running it), then the API key's activation and deactivation — and not the refused second
/// deactivation. `--actor`, `--limit` with its cursor, `--since` and `--json` select as documented,
/// and an out-of-range retention is refused naming the option.
#[tokio::test]
async fn audit_prints_who_changed_what() {
    let (data, client, mut server, addr) = served_example("audit");
    let d = data.to_str().unwrap();
    let body = json!({"product": "demo", "hardware_id": "pc-audit", "license_key": "DEMO-0000-0000-0001"});
    for (req, status) in [
        (client.activate(&body), 200),
        (client.deactivate(&body), 200),
        (client.deactivate(&body), 400),
    ] {
        let resp = send(&addr, req).await;
        assert_eq!(resp.status(), status, "{}", String::from_utf8_lossy(resp.body()));
    }
    terminate(&mut server);

    let audit = |extra: &[&str]| {
        let args = [&["audit", "--data", d, "--company", "demo"][..], extra].concat();
        let (ok, out, err) = run(&args);
        assert!(ok, "{err}");
        out
    };
    let license = ["--product", "demo", "--license-key", "DEMO-0000-0000-0001", "--json"];
    let page: serde_json::Value = serde_json::from_str(&audit(&license)).unwrap();
    let records = page["records"].as_array().unwrap();
    let actions: Vec<_> = records
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions[..2],
        [
            ("license.deactivate", "api_key:demo-api-key"),
            ("license.activate", "api_key:demo-api-key")
        ]
    );
    assert_eq!((actions.len(), actions[2].0), (3, "import.create"), "{actions:?}");
    assert!(actions[2].1.starts_with("cli:"), "{actions:?}");
    assert_eq!(records[0]["subject"], "license:demo/key/DEMO-0000-0000-0001");
    assert_eq!(
        records[0]["detail"],
        json!({"hardware_id": "pc-audit", "via": "online"})
    );
    assert_eq!(page["cursor"], serde_json::Value::Null);

    let first = audit(&["--actor", "api_key:demo-api-key", "--limit", "1"]);
    assert!(
        first.contains("  api_key:demo-api-key  license.deactivate  license:demo/key/DEMO-0000-0000-0001  "),
        "{first}"
    );
    let cursor = first
        .lines()
        .last()
        .unwrap()
        .strip_prefix("more: --cursor ")
        .expect("a cursor")
        .to_owned();
    let second = audit(&["--actor", "api_key:demo-api-key", "--limit", "1", "--cursor", &cursor]);
    assert!(second.contains("  license.activate  "), "{second}");
    assert_eq!(audit(&["--since", "2999-01-01"]), "no audit records\n");

    let (ok, _, err) = run(&["import", CATALOG, "--data", d, "--audit-retention-days", "0"]);
    assert!(!ok && err.contains("--audit-retention-days"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

/// `search`, `license list` and `import --prune` on the embedded store: a device activated through the
/// API is found by its hardware id, a customer by email in any case; a listing pages with its cursor;
/// the preview of `--prune` lists the removal and writes nothing; `--prune` removes the license.
#[tokio::test]
async fn search_list_and_prune_from_the_command_line() {
    let (data, client, mut server, addr) = served_example("search");
    let d = data.to_str().unwrap();
    let body = json!({"product": "demo", "hardware_id": "pc-search", "license_key": "DEMO-0000-0000-0001"});
    let resp = send(&addr, client.activate(&body)).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    terminate(&mut server);
    let cli = |args: &[&str]| {
        let (ok, out, err) = run(args);
        assert!(ok, "{args:?}: {err}");
        out
    };

    let found = cli(&[
        "search",
        "--data",
        d,
        "--company",
        "demo",
        "--hardware-id",
        "pc-search",
        "--json",
    ]);
    let page: serde_json::Value = serde_json::from_str(&found).unwrap();
    let keys: Vec<&str> = page["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["license_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        (keys, &page["cursor"]),
        (vec!["DEMO-0000-0000-0001"], &serde_json::Value::Null)
    );
    assert_eq!(page["licenses"][0]["source"], "catalog");
    let by_email = cli(&[
        "search",
        "--data",
        d,
        "--company",
        "demo",
        "--email",
        "BUYER@example.com",
    ]);
    assert!(
        by_email.starts_with("demo  DEMO-0000-0000-0001  id 1  enabled  source catalog  activations 1/3"),
        "{by_email}"
    );
    let (ok, _, err) = run(&["search", "--data", d, "--company", "demo"]);
    assert!(!ok && err.contains("--key"), "a search needs its term: {err}");

    let all: serde_json::Value =
        serde_json::from_str(&cli(&["license", "list", "--data", d, "--company", "demo", "--json"])).unwrap();
    let total = all["licenses"].as_array().unwrap().len();
    let first = cli(&["license", "list", "--data", d, "--company", "demo", "--limit", "2"]);
    let cursor = first
        .lines()
        .last()
        .unwrap()
        .strip_prefix("more: --cursor ")
        .expect("a cursor")
        .to_owned();
    let rest = cli(&[
        "license",
        "list",
        "--data",
        d,
        "--company",
        "demo",
        "--limit",
        "100",
        "--cursor",
        &cursor,
    ]);
    assert_eq!(first.lines().count() - 1 + rest.lines().count(), total, "{first}{rest}");

    let mut catalog: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(CATALOG).unwrap()).unwrap();
    catalog["companies"][0]["licenses"].as_array_mut().unwrap().remove(0);
    let file = data.join("pruned.json");
    std::fs::write(&file, catalog.to_string()).unwrap();
    let f = file.to_str().unwrap();
    let counted = cli(&["import", f, "--data", d, "--dry-run"]);
    assert!(
        counted.contains(
            "1 license(s) the catalog wrote are no longer in it: --prune would remove them and the 1 item(s)"
        ),
        "{counted}"
    );
    let preview = cli(&["import", f, "--data", d, "--dry-run", "--prune"]);
    let removal =
        "  delete license demo/demo DEMO-0000-0000-0001 and the 1 item(s) beside it (devices, seats, markers)";
    assert!(preview.lines().any(|l| l == removal), "{preview}");
    assert_eq!(
        cli(&["import", f, "--data", d, "--dry-run", "--prune"]),
        preview,
        "the preview wrote nothing"
    );
    cli(&["import", f, "--data", d, "--prune"]);
    let gone = cli(&[
        "search",
        "--data",
        d,
        "--company",
        "demo",
        "--key",
        "DEMO-0000-0000-0001",
    ]);
    assert_eq!(gone, "no licenses\n");
    let _ = std::fs::remove_dir_all(&data);
}
